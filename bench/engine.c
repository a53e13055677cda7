/*
 * engine.c - the client threads: non-blocking sessions on an epoll loop.
 *
 * Design:
 * - A session is a socket, an output buffer (a jute_writer frames are
 *   encoded straight into), an input buffer, and a FIFO of the requests it
 *   has in flight. ZooKeeper answers a session's requests in order, so a
 *   reply always belongs to the FIFO's head; its xid is checked anyway, and a
 *   mismatch fails the session loudly rather than mis-attributing latencies.
 * - Requests made while handling one batch of epoll events are written once
 *   per session at the end of the batch (the "dirty" list): with a deep
 *   pipeline that is one write(2) for many requests, as a real async client
 *   would do, so the bench spends its CPU on the server's behalf, not on
 *   syscalls of its own. Both servers see the same client.
 * - Level-triggered epoll; EPOLLOUT is armed only while an output buffer is
 *   backed up, so an idle session costs nothing.
 * - Waits use epoll_pwait2 (nanosecond timeout) so the open loop can send
 *   each request at its due time instead of on millisecond boundaries.
 * - Pings: a session that has sent nothing for a third of its negotiated
 *   timeout sends a ping, as the real clients do, so long runs and held
 *   storm sessions never expire.
 * - Buffers start small and grow on demand: the connect storm holds tens of
 *   thousands of sessions in one process, and each only ever needs a few
 *   hundred bytes.
 * - TLS (cfg->tls): a session gets an SSL on its socket after connect()
 *   and does a non-blocking handshake (S_TLS) before the connect request.
 *   SSL_read can hold decrypted or read-ahead bytes the socket no longer
 *   shows to epoll, so a TLS session is read until SSL_read wants the
 *   socket again. Plain sessions (ssl == NULL) take the same path as
 *   before: one pointer test per read and write.
 * - Handshake mode (cfg->handshakes): each worker has `nsess` slots and a
 *   quota of connections; a slot connects, (TLS handshake), opens a
 *   session, closes it with closeSession, and starts over until the quota
 *   is done.
 */
#include "engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "zkproto.h"

const char *const op_names[OP_N] = {
	"get", "set", "exists", "children", "create", "ephseq", "multi", "delete",
};

#define K_CLOSE 100             /* the closeSession request in a FIFO */
#define MAX_EVENTS 512
#define IN_MAX_CAP (ZKP_MAX_FRAME + 4)
#define IN_READ_CAP 65536       /* read-buffer size once a session is busy */

struct pend {
	int32_t xid;
	uint8_t kind;
	bool record;                /* due inside the measured window */
	uint64_t t;                 /* due time (open loop) or send time */
	uint64_t aux;               /* create: the name's sequence number */
};

enum sstate { S_IDLE, S_CONNECTING, S_TLS, S_HANDSHAKE, S_READY, S_CLOSING, S_DONE, S_FAILED };

struct sess {
	int fd;
	SSL *ssl;                   /* NULL: plain TCP */
	uint8_t state;
	bool dirty, want_out;
	int idx;                    /* global session number */
	struct jute_writer out;
	size_t out_off;
	uint8_t *in;
	uint32_t in_len, in_cap;
	struct pend *q;
	uint32_t qh, qt, qmask;
	uint32_t inflight;          /* ops holding a pipeline slot */
	int32_t xid;
	uint64_t last_send, t_conn, ping_ns;
	uint64_t seq;
	char (*fu)[BENCH_PATH_MAX]; /* follow-up deletes: nodes this session made */
	uint32_t fu_h, fu_t;
};

struct wstate {
	struct worker *w;
	struct run *r;
	const struct bench_cfg *c;
	int ep;
	struct sess *s;
	int n;
	struct sess **dirty;
	int ndirty;
	uint64_t rng;
	uint64_t now;
	/* connecting */
	int next_connect, connecting, conc, resolved;
	/* running */
	bool open;                  /* open loop */
	bool issuing;               /* still making new ops */
	bool starved;               /* open loop: an op is due and no slot is free */
	uint64_t interval, first_due, next_seq;
	int cursor;
	uint64_t inflight_total;
	uint32_t fu_cap;            /* 0 when the mix makes no follow-ups */
	/* sized so that "<churn>/s<int>-<u64>" always fits a BENCH_PATH_MAX buffer */
	char churn[BENCH_PATH_MAX - 40], eph[BENCH_PATH_MAX - 40], cdir[BENCH_PATH_MAX - 40];
};

static uint64_t rnd(struct wstate *ws)
{
	/* xorshift64*: fast, and good enough to pick keys and ops. */
	uint64_t x = ws->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	ws->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void set_err(struct worker *w, const char *msg)
{
	if (!w->errmsg[0])
		snprintf(w->errmsg, sizeof w->errmsg, "%s", msg);
}

static void mark_dirty(struct wstate *ws, struct sess *s)
{
	if (!s->dirty) {
		s->dirty = true;
		ws->dirty[ws->ndirty++] = s;
	}
}

static void epoll_events(struct wstate *ws, struct sess *s, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = s };
	epoll_ctl(ws->ep, EPOLL_CTL_MOD, s->fd, &ev);
	s->want_out = out;
}

/* Closes the socket; an established TLS connection says close_notify first
 * (one record, not waited for), as a well-behaved client does. */
static void sess_close_fd(struct sess *s, bool graceful)
{
	if (s->ssl) {
		if (graceful && SSL_is_init_finished(s->ssl))
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
		ERR_clear_error();
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* The server went away under a session, or it broke the protocol. Its
 * measured requests in flight are errors: they were never answered. */
static void sess_fail(struct wstate *ws, struct sess *s, const char *why)
{
	struct worker *w = ws->w;
	if (s->state == S_DONE || s->state == S_FAILED)
		return;
	if (s->state == S_CONNECTING || s->state == S_TLS || s->state == S_HANDSHAKE) {
		ws->connecting--;
		ws->resolved++;
		atomic_fetch_add_explicit(&w->n_failed, 1, memory_order_relaxed);
		char m[180];
		snprintf(m, sizeof m, "session %d: connect failed: %s", s->idx, why);
		set_err(w, m);
	} else if (s->state != S_CLOSING) {
		w->lost++;
		char m[180];
		snprintf(m, sizeof m, "session %d lost: %s", s->idx, why);
		set_err(w, m);
	}
	for (uint32_t i = s->qh; i != s->qt; i++) {
		struct pend *p = &s->q[i & s->qmask];
		if (p->kind == K_CLOSE)
			continue;
		if (p->record)
			w->errors[p->kind]++;
		ws->inflight_total--;
	}
	s->qh = s->qt;
	s->inflight = 0;
	sess_close_fd(s, false);
	s->state = S_FAILED;
}

static void sess_flush(struct wstate *ws, struct sess *s)
{
	if (s->fd < 0 || s->state == S_CONNECTING || s->state == S_TLS)
		return;
	if (s->out.err) {
		sess_fail(ws, s, "out of memory encoding a request");
		return;
	}
	while (s->out_off < s->out.len) {
		if (s->ssl) {
			size_t k;
			int rc = SSL_write_ex(s->ssl, s->out.buf + s->out_off, s->out.len - s->out_off, &k);
			if (rc != 1) {
				int e = SSL_get_error(s->ssl, rc);
				if (e == SSL_ERROR_WANT_WRITE) {
					if (!s->want_out)
						epoll_events(ws, s, true);
					return;
				}
				if (e == SSL_ERROR_WANT_READ)
					return;     /* EPOLLIN is always armed */
				char m[200];
				zkp_tls_error(m, sizeof m, e);
				sess_fail(ws, s, m);
				return;
			}
			s->out_off += k;
			continue;
		}
		ssize_t k = send(s->fd, s->out.buf + s->out_off, s->out.len - s->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!s->want_out)
					epoll_events(ws, s, true);
				return;
			}
			sess_fail(ws, s, strerror(errno));
			return;
		}
		s->out_off += (size_t)k;
	}
	s->out.len = 0;
	s->out_off = 0;
	if (s->want_out)
		epoll_events(ws, s, false);
}

static void flush_dirty(struct wstate *ws)
{
	for (int i = 0; i < ws->ndirty; i++) {
		struct sess *s = ws->dirty[i];
		s->dirty = false;
		sess_flush(ws, s);
	}
	ws->ndirty = 0;
}

static int32_t next_xid(struct sess *s)
{
	int32_t x = s->xid++;
	if (s->xid <= 0)            /* negative xids are the protocol's own */
		s->xid = 1;
	return x;
}

static void push(struct sess *s, int32_t xid, int kind, uint64_t t, bool record, uint64_t aux)
{
	struct pend *p = &s->q[s->qt++ & s->qmask];
	*p = (struct pend){ xid, (uint8_t)kind, record, t, aux };
}

static bool in_window(const struct run *r, uint64_t t)
{
	return t >= r->t_ms && t < r->t_me;
}

/* Encodes one op on s and puts it in flight; t is its due time. */
static void issue(struct wstate *ws, struct sess *s, int kind, uint64_t t)
{
	const struct run *r = ws->r;
	const struct bench_cfg *c = ws->c;
	const char *key = r->key_paths[rnd(ws) % (uint64_t)c->keys];
	int32_t xid = next_xid(s);
	uint64_t aux = 0;
	char path[BENCH_PATH_MAX];

	switch (kind) {
	case OP_GET: zkp_get(&s->out, xid, key); break;
	case OP_SET: zkp_set(&s->out, xid, key, r->value, c->value_size); break;
	case OP_EXISTS: zkp_exists(&s->out, xid, key); break;
	case OP_CHILDREN: zkp_children(&s->out, xid, ws->cdir); break;
	case OP_CREATE:
		aux = s->seq++;
		snprintf(path, sizeof path, "%s/s%d-%llu", ws->churn, s->idx, (unsigned long long)aux);
		zkp_create(&s->out, xid, path, r->value, c->value_size, ZCM_PERSISTENT);
		break;
	case OP_EPHSEQ:
		zkp_create(&s->out, xid, ws->eph, r->value, c->value_size, ZCM_EPHEMERAL_SEQUENTIAL);
		break;
	case OP_MULTI:
		snprintf(path, sizeof path, "%s/m%d-%llu", ws->churn, s->idx, (unsigned long long)s->seq++);
		zkp_multi_cds(&s->out, xid, path, key, r->value, c->value_size);
		break;
	case OP_DELETE:
		zkp_delete(&s->out, xid, s->fu[s->fu_h++ % ws->fu_cap]);
		break;
	}
	push(s, xid, kind, t, in_window(r, t), aux);
	s->inflight++;
	ws->inflight_total++;
	s->last_send = ws->now;
	mark_dirty(ws, s);
}

static int choose_op(struct wstate *ws)
{
	int x = (int)(rnd(ws) % (uint64_t)ws->r->mix_total);
	for (int i = 0; i < OP_N_MIX; i++)
		if (x < ws->r->mix_cum[i])
			return i;
	return OP_GET;
}

/* Follow-up deletes first (they keep the tree from growing), then, in the
 * closed loop, new ops until the pipeline is full. */
static void fill(struct wstate *ws, struct sess *s)
{
	if (s->state != S_READY)
		return;
	uint32_t depth = (uint32_t)ws->c->depth;
	while (s->inflight < depth && s->fu_h != s->fu_t && ws->issuing)
		issue(ws, s, OP_DELETE, ws->now);
	if (!ws->open && ws->issuing)
		while (s->inflight < depth)
			issue(ws, s, choose_op(ws), ws->now);
}

static void push_followup(struct wstate *ws, struct sess *s, const char *p, size_t len)
{
	if (!ws->fu_cap || len >= BENCH_PATH_MAX || s->fu_t - s->fu_h >= ws->fu_cap)
		return;
	char *dst = s->fu[s->fu_t++ % ws->fu_cap];
	memcpy(dst, p, len);
	dst[len] = '\0';
}

static void on_handshake(struct wstate *ws, struct sess *s, const uint8_t *p, size_t len)
{
	struct jute_reader rd;
	struct rec_connect_resp cr;
	jute_reader_init(&rd, p, len, ZKP_MAX_FRAME);
	if (rec_read_connect_resp(&rd, &cr) != 0 || cr.session_id == 0 || cr.timeout <= 0) {
		sess_fail(ws, s, "session refused by the server");
		return;
	}
	s->state = S_READY;
	s->ping_ns = (uint64_t)cr.timeout * 1000000u / 3;
	s->last_send = ws->now;
	ws->connecting--;
	ws->resolved++;
	atomic_fetch_add_explicit(&ws->w->n_connected, 1, memory_order_relaxed);
	hist_record(&ws->w->connect_h, ws->now - s->t_conn);
	if (ws->r->handshakes) {
		int32_t xid = next_xid(s);
		zkp_close(&s->out, xid);
		push(s, xid, K_CLOSE, ws->now, false, 0);
		s->state = S_CLOSING;
		mark_dirty(ws, s);
	}
}

static void on_reply(struct wstate *ws, struct sess *s, const uint8_t *p, size_t len)
{
	struct worker *w = ws->w;
	struct jute_reader rd;
	struct rec_reply_header h;
	jute_reader_init(&rd, p, len, ZKP_MAX_FRAME);
	if (rec_read_reply_header(&rd, &h) != 0) {
		sess_fail(ws, s, "malformed reply header");
		return;
	}
	if (h.xid == ZXID_PING || h.xid == ZXID_NOTIFICATION)
		return;
	if (s->qh == s->qt || s->q[s->qh & s->qmask].xid != h.xid) {
		char m[120];
		snprintf(m, sizeof m, "reply xid %d out of order (expected %d)", h.xid,
			 s->qh == s->qt ? -999 : s->q[s->qh & s->qmask].xid);
		sess_fail(ws, s, m);
		return;
	}
	struct pend pe = s->q[s->qh++ & s->qmask];
	if (pe.kind == K_CLOSE) {
		sess_close_fd(s, true);
		s->state = S_DONE;
		return;
	}
	s->inflight--;
	ws->inflight_total--;
	atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
	if (pe.record) {
		hist_record(&w->h[pe.kind], ws->now - pe.t);
		if (h.err != 0)
			w->errors[pe.kind]++;
	}
	if (h.err != 0) {
		if (!w->first_err) {
			w->first_err = h.err;
			w->first_err_op = pe.kind;
		}
		return;
	}
	if (pe.kind == OP_CREATE) {
		char path[BENCH_PATH_MAX];
		int n = snprintf(path, sizeof path, "%s/s%d-%llu", ws->churn, s->idx, (unsigned long long)pe.aux);
		push_followup(ws, s, path, (size_t)n);
	} else if (pe.kind == OP_EPHSEQ) {
		/* CreateResponse is the name the server chose. */
		struct jute_buf name = jute_read_buffer(&rd);
		if (jute_ok(&rd) && name.len > 0)
			push_followup(ws, s, (const char *)name.data, (size_t)name.len);
	}
}

static void on_readable(struct wstate *ws, struct sess *s)
{
	/* TLS: read until SSL_read wants the socket (see the top); a session's
	 * replies are bounded by its depth, so this ends. */
	for (int round = 0; round < 8 || s->ssl; round++) {
		if (s->in_cap - s->in_len < 512) {
			uint32_t cap = s->in_cap ? s->in_cap * 2 : 1024;
			if (s->in_cap && cap < IN_READ_CAP && s->state >= S_READY)
				cap = IN_READ_CAP;
			if (cap > IN_MAX_CAP)
				cap = IN_MAX_CAP;
			if (cap <= s->in_cap) {
				sess_fail(ws, s, "reply larger than jute.maxbuffer");
				return;
			}
			uint8_t *np = realloc(s->in, cap);
			if (!np) {
				sess_fail(ws, s, "out of memory");
				return;
			}
			s->in = np;
			s->in_cap = cap;
		}
		size_t room = s->in_cap - s->in_len;
		ssize_t k;
		if (s->ssl) {
			size_t got;
			int rc = SSL_read_ex(s->ssl, s->in + s->in_len, room, &got);
			if (rc != 1) {
				int e = SSL_get_error(s->ssl, rc);
				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					/* (a TLS 1.3 key update's answer backed up) */
					if (!s->want_out)
						epoll_events(ws, s, true);
					return;
				}
				if (e == SSL_ERROR_ZERO_RETURN) {
					sess_fail(ws, s, "connection closed by the server (TLS close_notify)");
					return;
				}
				char m[200];
				zkp_tls_error(m, sizeof m, e);
				sess_fail(ws, s, m);
				return;
			}
			k = (ssize_t)got;
			goto got_bytes;
		}
		k = recv(s->fd, s->in + s->in_len, room, MSG_DONTWAIT);
		if (k == 0) {
			sess_fail(ws, s, "connection closed by the server");
			return;
		}
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			sess_fail(ws, s, strerror(errno));
			return;
		}
got_bytes:
		s->in_len += (uint32_t)k;
		ws->now = mono_ns();
		uint32_t off = 0;
		while (s->in_len - off >= 4) {
			uint32_t n = jute_get_u32(s->in + off);
			if (n > ZKP_MAX_FRAME) {
				sess_fail(ws, s, "reply frame over jute.maxbuffer");
				return;
			}
			if (s->in_len - off - 4 < n) {
				/* Incomplete: make sure the whole frame will fit. */
				if (4 + n > s->in_cap) {
					uint8_t *np = realloc(s->in, 4 + n);
					if (!np) {
						sess_fail(ws, s, "out of memory");
						return;
					}
					s->in = np;
					s->in_cap = 4 + n;
				}
				break;
			}
			if (s->state == S_HANDSHAKE)
				on_handshake(ws, s, s->in + off + 4, n);
			else
				on_reply(ws, s, s->in + off + 4, n);
			off += 4 + n;
			if (s->state == S_DONE || s->state == S_FAILED)
				return;
		}
		if (off) {
			memmove(s->in, s->in + off, s->in_len - off);
			s->in_len -= off;
		}
		fill(ws, s);
		if ((size_t)k < room && !s->ssl)
			return;     /* the socket is drained */
	}
}

/* One step of a non-blocking TLS handshake; when it is done, the connect
 * request (already in the output buffer) goes out. */
static void tls_step(struct wstate *ws, struct sess *s)
{
	int rc = SSL_do_handshake(s->ssl);
	if (rc == 1) {
		hist_record(&ws->w->tls_h, ws->now - s->t_conn);
		if (!ws->w->tls_desc[0])
			zkp_tls_describe(s->ssl, ws->w->tls_desc, sizeof ws->w->tls_desc);
		s->state = S_HANDSHAKE;
		sess_flush(ws, s);
		return;
	}
	int e = SSL_get_error(s->ssl, rc);
	if (e == SSL_ERROR_WANT_READ) {
		if (s->want_out)
			epoll_events(ws, s, false);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		if (!s->want_out)
			epoll_events(ws, s, true);
		return;
	}
	char m[200];
	zkp_tls_error(m, sizeof m, e);
	sess_fail(ws, s, m);
}

static void on_event(struct wstate *ws, struct sess *s, uint32_t ev)
{
	if (s->state == S_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			err = errno;
		if (err) {
			sess_fail(ws, s, strerror(err));
			return;
		}
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (s->ssl) {
			s->state = S_TLS;
			tls_step(ws, s);
			return;
		}
		s->state = S_HANDSHAKE;
		sess_flush(ws, s);
		return;
	}
	if (s->state == S_TLS) {
		tls_step(ws, s);
		return;
	}
	if (ev & EPOLLIN)
		on_readable(ws, s);
	if (s->state == S_DONE || s->state == S_FAILED)
		return;
	if (ev & (EPOLLERR | EPOLLHUP)) {
		sess_fail(ws, s, "socket error or hang-up");
		return;
	}
	if (ev & EPOLLOUT) {
		sess_flush(ws, s);
		if (s->ssl && s->state != S_FAILED && s->state != S_DONE)
			on_readable(ws, s);     /* a read that waited for the socket to drain */
	}
}

static void start_connect(struct wstate *ws, struct sess *s)
{
	const struct bench_cfg *c = ws->c;
	const struct sockaddr_in *dst = &c->servers[s->idx % c->n_servers];
	s->t_conn = mono_ns();
	ws->connecting++;
	s->state = S_CONNECTING;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		sess_fail(ws, s, strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (c->src_addrs > 1) {
		/* One source address has ~28k ephemeral ports towards one server
		 * port; more sessions than that need more loopback sources. The
		 * port is picked at connect time (IP_BIND_ADDRESS_NO_PORT) so
		 * binding does not use up ports on its own. */
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(s->idx % c->src_addrs));
		setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(s->fd, (struct sockaddr *)&src, sizeof src) != 0) {
			sess_fail(ws, s, strerror(errno));
			return;
		}
	}
	if (connect(s->fd, (const struct sockaddr *)dst, sizeof *dst) != 0 && errno != EINPROGRESS) {
		sess_fail(ws, s, strerror(errno));
		return;
	}
	if (c->tls && !(s->ssl = zkp_tls_new(c->tls, s->fd, dst))) {
		sess_fail(ws, s, "cannot make an SSL object");
		return;
	}
	zkp_connect_req(&s->out, c->session_timeout_ms);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = s };
	if (epoll_ctl(ws->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
		sess_fail(ws, s, strerror(errno));
		return;
	}
	s->want_out = true;
}

static void ping_scan(struct wstate *ws)
{
	for (int i = 0; i < ws->n; i++) {
		struct sess *s = &ws->s[i];
		if (s->state == S_READY && ws->now - s->last_send >= s->ping_ns) {
			zkp_ping(&s->out);
			s->last_send = ws->now;
			mark_dirty(ws, s);
		}
	}
}

/* Connect timeouts: a session not established in time fails (a server that
 * drops SYNs or never answers must not hang the storm). */
static void connect_timeouts(struct wstate *ws)
{
	uint64_t limit = (uint64_t)(ws->c->connect_timeout_s * 1e9);
	for (int i = 0; i < ws->n; i++) {
		struct sess *s = &ws->s[i];
		if ((s->state == S_CONNECTING || s->state == S_TLS || s->state == S_HANDSHAKE) &&
		    ws->now - s->t_conn > limit)
			sess_fail(ws, s, "timed out");
	}
}

static void poll_once(struct wstate *ws, uint64_t timeout_ns)
{
	struct epoll_event evs[MAX_EVENTS];
	struct timespec ts = { (time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u) };
	int k = epoll_pwait2(ws->ep, evs, MAX_EVENTS, &ts, NULL);
	ws->now = mono_ns();
	for (int i = 0; i < k; i++)
		on_event(ws, evs[i].data.ptr, evs[i].events);
	flush_dirty(ws);
}

static int phase(const struct wstate *ws)
{
	return atomic_load_explicit(&ws->r->phase, memory_order_acquire);
}

/* Services sessions (pings, stray replies) until main moves past `ph`. */
static void idle_while(struct wstate *ws, int ph)
{
	uint64_t next_scan = 0;
	while (phase(ws) == ph) {
		poll_once(ws, 20000000u);
		if (ws->now >= next_scan) {
			ping_scan(ws);
			flush_dirty(ws);
			next_scan = ws->now + 100000000u;
		}
	}
}

static void connect_all(struct wstate *ws)
{
	uint64_t next_scan = 0;
	while (ws->resolved < ws->n && phase(ws) == PH_CONNECT) {
		while (ws->connecting < ws->conc && ws->next_connect < ws->n)
			start_connect(ws, &ws->s[ws->next_connect++]);
		poll_once(ws, 10000000u);
		if (ws->now >= next_scan) {
			connect_timeouts(ws);
			ping_scan(ws);
			flush_dirty(ws);
			next_scan = ws->now + 100000000u;
		}
	}
	atomic_store_explicit(&ws->w->connect_done, true, memory_order_release);
}

/* Handshake mode: every slot connects, opens a session, closes it and starts
 * over, until this worker's quota of connections is made. */
static void handshake_loop(struct wstate *ws)
{
	int quota = ws->w->quota, started = 0;
	uint64_t next_scan = 0;
	while (phase(ws) == PH_CONNECT) {
		int active = 0;
		for (int i = 0; i < ws->n; i++) {
			struct sess *s = &ws->s[i];
			if (s->state == S_IDLE || s->state == S_DONE || s->state == S_FAILED) {
				if (started >= quota)
					continue;
				s->in_len = 0;
				s->out.len = 0;
				s->out_off = 0;
				s->qh = s->qt = 0;
				s->inflight = 0;
				s->xid = 1;
				s->want_out = false;
				started++;
				start_connect(ws, s);
			}
			active += s->state != S_DONE && s->state != S_FAILED && s->state != S_IDLE;
		}
		if (!active && started >= quota)
			break;
		poll_once(ws, 10000000u);
		if (ws->now >= next_scan) {
			connect_timeouts(ws);
			flush_dirty(ws);
			next_scan = ws->now + 100000000u;
		}
	}
	atomic_store_explicit(&ws->w->connect_done, true, memory_order_release);
}

/* Open loop: send every op that is due, as long as a session has a free
 * pipeline slot. What cannot be sent waits, keeping its due time. */
static void ol_issue(struct wstate *ws)
{
	const struct run *r = ws->r;
	uint32_t depth = (uint32_t)ws->c->depth;
	ws->starved = false;
	while (ws->issuing) {
		uint64_t due = ws->first_due + ws->next_seq * ws->interval;
		if (due >= r->t_me) {
			ws->issuing = false;
			break;
		}
		if (due > ws->now)
			break;
		struct sess *found = NULL;
		for (int k = 0; k < ws->n; k++) {
			struct sess *s = &ws->s[ws->cursor];
			ws->cursor = (ws->cursor + 1) % ws->n;
			if (s->state == S_READY && s->inflight < depth) {
				found = s;
				break;
			}
		}
		if (!found) {
			ws->starved = true;     /* only a reply can free a slot */
			break;
		}
		issue(ws, found, choose_op(ws), due);
		ws->next_seq++;
	}
	uint64_t lim = ws->now < r->t_me ? ws->now : r->t_me;
	uint64_t due_n = lim >= ws->first_due ? (lim - ws->first_due) / ws->interval + 1 : 0;
	atomic_store_explicit(&ws->w->backlog, due_n > ws->next_seq ? due_n - ws->next_seq : 0,
			      memory_order_relaxed);
}

/* At the drain deadline: whatever was due in the window and has no answer is
 * recorded with the latency it has at least reached, and counted. */
static void account_timeouts(struct wstate *ws)
{
	const struct run *r = ws->r;
	struct worker *w = ws->w;
	uint64_t end = r->t_drain_end;
	for (int i = 0; i < ws->n; i++) {
		struct sess *s = &ws->s[i];
		for (uint32_t j = s->qh; j != s->qt; j++) {
			struct pend *p = &s->q[j & s->qmask];
			if (p->kind != K_CLOSE && p->record) {
				hist_record(&w->h[p->kind], end - p->t);
				w->timeouts++;
			}
		}
	}
	if (ws->open) {
		for (;; ws->next_seq++) {
			uint64_t due = ws->first_due + ws->next_seq * ws->interval;
			if (due >= r->t_me)
				break;
			if (due >= r->t_ms) {
				hist_record(&w->h[choose_op(ws)], end - due);
				w->timeouts++;
			}
		}
	}
}

static void run_load(struct wstate *ws)
{
	const struct run *r = ws->r;
	ws->now = mono_ns();
	ws->issuing = true;
	if (ws->open) {
		double per = 1e9 / ws->c->rate;
		ws->interval = (uint64_t)(per * r->nw);
		if (ws->interval == 0)
			ws->interval = 1;
		ws->first_due = r->t0 + (uint64_t)(per * ws->w->id);
	}
	for (int i = 0; i < ws->n; i++)
		fill(ws, &ws->s[i]);
	uint64_t next_scan = ws->now + 100000000u;
	for (;;) {
		ws->now = mono_ns();
		if (!ws->open && ws->issuing && ws->now >= r->t_me)
			ws->issuing = false;
		if (ws->open)
			ol_issue(ws);
		if (ws->now >= next_scan) {
			ping_scan(ws);
			next_scan = ws->now + 100000000u;
		}
		flush_dirty(ws);
		if (!ws->issuing && ws->inflight_total == 0)
			break;
		if (ws->now >= r->t_drain_end) {
			account_timeouts(ws);
			break;
		}
		if (phase(ws) >= PH_CLOSE)
			break;                      /* main gave up on the run */
		uint64_t wake = ws->now + 50000000u;
		if (ws->issuing) {
			if (ws->open && !ws->starved) {
				/* (when starved, waking at the due time would spin: wait
				 * for the reply that frees a slot instead) */
				uint64_t due = ws->first_due + ws->next_seq * ws->interval;
				if (due < wake)
					wake = due;
			} else if (r->t_me < wake) {
				wake = r->t_me;
			}
		}
		if (r->t_drain_end < wake)
			wake = r->t_drain_end;
		poll_once(ws, wake > ws->now ? wake - ws->now : 0);
	}
	atomic_store_explicit(&ws->w->backlog, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->w->drained, true, memory_order_release);
}

/* closeSession for every live session, so the server forgets them now
 * rather than after their timeout (and drops their ephemerals). */
static void close_all(struct wstate *ws)
{
	ws->issuing = false;
	ws->now = mono_ns();
	for (int i = 0; i < ws->n; i++) {
		struct sess *s = &ws->s[i];
		if (s->state == S_READY) {
			int32_t xid = next_xid(s);
			zkp_close(&s->out, xid);
			push(s, xid, K_CLOSE, ws->now, false, 0);
			s->state = S_CLOSING;
			mark_dirty(ws, s);
		} else if (s->state == S_CONNECTING || s->state == S_TLS || s->state == S_HANDSHAKE) {
			sess_fail(ws, s, "still connecting at close");
		}
	}
	flush_dirty(ws);
	for (;;) {
		int open = 0;
		for (int i = 0; i < ws->n; i++)
			open += ws->s[i].state == S_CLOSING;
		if (!open || phase(ws) >= PH_EXIT)
			break;
		poll_once(ws, 20000000u);
	}
	atomic_store_explicit(&ws->w->closed, true, memory_order_release);
}

static void *worker_main(void *arg)
{
	struct wstate *ws = arg;
	struct worker *w = ws->w;
	char name[16];
	snprintf(name, sizeof name, "zkbench-%d", w->id);
	pthread_setname_np(pthread_self(), name);

	if (ws->r->handshakes)
		handshake_loop(ws);
	else
		connect_all(ws);
	idle_while(ws, PH_CONNECT);
	if (phase(ws) == PH_RUN)
		run_load(ws);
	while (phase(ws) == PH_RUN || phase(ws) == PH_HOLD)
		idle_while(ws, phase(ws));
	if (phase(ws) == PH_CLOSE)
		close_all(ws);
	while (phase(ws) < PH_EXIT)
		idle_while(ws, phase(ws));
	for (int i = 0; i < ws->n; i++)
		sess_close_fd(&ws->s[i], false);
	atomic_store_explicit(&w->closed, true, memory_order_release);
	return NULL;
}

static void free_state(struct wstate *ws)
{
	if (!ws)
		return;
	for (int i = 0; ws->s && i < ws->n; i++) {
		jute_writer_free(&ws->s[i].out);
		free(ws->s[i].in);
		free(ws->s[i].q);
		free(ws->s[i].fu);
	}
	free(ws->s);
	free(ws->dirty);
	if (ws->ep >= 0)
		close(ws->ep);
	free(ws);
}

static struct wstate *make_state(struct run *r, struct worker *w)
{
	const struct bench_cfg *c = r->cfg;
	struct wstate *ws = calloc(1, sizeof *ws);
	if (!ws)
		return NULL;
	ws->w = w;
	ws->r = r;
	ws->c = c;
	ws->n = w->nsess;
	ws->ep = epoll_create1(EPOLL_CLOEXEC);
	ws->s = calloc((size_t)ws->n, sizeof *ws->s);
	ws->dirty = calloc((size_t)ws->n + 1, sizeof *ws->dirty);
	ws->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->id + 1) ^ mono_ns();
	if (!ws->rng)
		ws->rng = 1;
	ws->open = c->rate > 0;
	int conc = c->connect_concurrency / r->nw;
	ws->conc = conc > 0 ? conc : 1;
	snprintf(ws->churn, sizeof ws->churn, "%s/churn", c->root);
	snprintf(ws->eph, sizeof ws->eph, "%s/eph/e-", c->root);
	snprintf(ws->cdir, sizeof ws->cdir, "%s/c", c->root);
	if (!r->storm && !r->handshakes && (c->mix[OP_CREATE] || c->mix[OP_EPHSEQ]))
		ws->fu_cap = (uint32_t)c->depth + 1;
	uint32_t qcap = 4;
	while (qcap < (uint32_t)c->depth + 4)
		qcap *= 2;
	if (ws->ep < 0 || !ws->s || !ws->dirty)
		goto fail;
	for (int i = 0; i < ws->n; i++) {
		struct sess *s = &ws->s[i];
		s->fd = -1;
		s->idx = w->first_sess + i;
		s->xid = 1;
		s->qmask = qcap - 1;
		s->q = malloc(qcap * sizeof *s->q);
		jute_writer_init(&s->out, 0);
		if (!s->q)
			goto fail;
		if (ws->fu_cap && !(s->fu = malloc(ws->fu_cap * sizeof *s->fu)))
			goto fail;
	}
	return ws;
fail:
	free_state(ws);
	return NULL;
}

int engine_start(struct run *r)
{
	for (int i = 0; i < r->nw; i++) {
		struct worker *w = &r->w[i];
		for (int k = 0; k < OP_N; k++)
			hist_init(&w->h[k]);
		hist_init(&w->connect_h);
		hist_init(&w->tls_h);
		struct wstate *ws = make_state(r, w);
		if (!ws) {
			snprintf(w->errmsg, sizeof w->errmsg, "out of memory for %d sessions", w->nsess);
			return -1;
		}
		w->priv = ws;
	}
	for (int i = 0; i < r->nw; i++) {
		if (pthread_create(&r->w[i].th, NULL, worker_main, r->w[i].priv) != 0) {
			snprintf(r->w[i].errmsg, sizeof r->w[i].errmsg, "cannot start a thread");
			/* Let the started ones finish, then report. */
			atomic_store(&r->phase, PH_EXIT);
			for (int k = 0; k < i; k++)
				pthread_join(r->w[k].th, NULL);
			return -1;
		}
	}
	return 0;
}

void engine_join(struct run *r)
{
	for (int i = 0; i < r->nw; i++) {
		pthread_join(r->w[i].th, NULL);
		free_state(r->w[i].priv);
		r->w[i].priv = NULL;
	}
}
