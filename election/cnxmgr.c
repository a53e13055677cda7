/*
 * cnxmgr.c - the election port's connections, ZooKeeper's QuorumCnxManager
 * in one thread.
 *
 * ZooKeeper runs a listener thread, a connecting thread per attempt and a
 * sender plus a receiver thread per peer, all blocking. Here the election
 * thread (zkd-election) does all of it with non-blocking sockets and one
 * poll(2): a peer that is partitioned away costs a connect() in flight with
 * a deadline, never a stalled thread, and a dead peer on loopback (connection
 * refused) costs one failed connect, so the survivors keep talking to each
 * other at full speed. The rules of the game are ZooKeeper's, so that
 * ZooKeeper servers and zkd share connections without noticing:
 *
 *   - A connection is kept only if the higher sid initiated it. To reach a
 *     higher sid we connect, send the handshake and hang up ("hello"); the
 *     higher sid answers a lower sid's handshake by dropping its own
 *     connection to that sid, if any, and connecting back.
 *   - Each peer has a send slot holding one message: a newer message
 *     replaces one not yet written (ZooKeeper's send queues of capacity 1;
 *     only the latest vote matters). The last message written is kept and
 *     written again on a new connection if the slot is empty, in case the
 *     old connection lost it.
 *   - We connect when there is something to send (cnx_send) or when the
 *     election asks (cnx_connect_all), never on a timer of our own, so the
 *     election's back-off paces the reconnects to a dead peer.
 *   - Peers are the other server.N lines plus "strangers": servers not in our
 *     configuration that connected to us (a server being added with a newer
 *     configuration). They are answered like anybody else; a bounded number
 *     of them is remembered.
 *
 * Every length read from the wire is checked before anything is sized by it
 * (handshake address 1..2048 bytes, messages 1..512 KiB); a bad handshake or
 * frame closes that connection with a logged reason and nothing else.
 *
 * Host names are resolved once at start (blocking is fine there) and again
 * after a failed connect, in the background: a short-lived detached thread
 * (zkd-elect-dns) runs getaddrinfo and wakes the election thread, so DNS
 * never blocks the election. (Not getaddrinfo_a: glibc runs it on threads
 * that ThreadSanitizer does not know, which crashes a TSan build.)
 */
#include "cnxmgr.h"

#include "net/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define CNX_MAX_STRANGERS 16
#define CNX_MAX_PEERS (QUORUM_MAX_MEMBERS + CNX_MAX_STRANGERS)
#define CNX_MAX_CONNS (2 * CNX_MAX_PEERS + 32)
#define CNX_CONNECT_TIMEOUT_MS 5000     /* zookeeper.cnxTimeout's default */
#define CNX_BIND_RETRY_MS 1000          /* ZooKeeper's listener sleeps 1 s between binds */
#define CNX_READ_ROOM 4096
#define CNX_READS_PER_EVENT 16          /* so one chatty peer cannot starve the rest */
#define CNX_HANDSHAKE_FIXED 20          /* version + sid + address length */
#define CNX_ACCEPT_PAUSE_MS 100         /* out of file descriptors: stop accepting this long */

enum conn_state {
	CONN_FREE,
	CONN_CONNECTING,    /* outgoing, connect() in flight */
	CONN_HELLO,         /* outgoing to a higher sid: write the handshake, then hang up */
	CONN_HANDSHAKE,     /* incoming, reading the handshake */
	CONN_SNIFF,         /* portUnification: incoming, waiting for the first
	                       byte to tell TLS from plain */
	CONN_TLS,           /* sslQuorum: the TLS handshake, before CONNECTING's or
	                       HANDSHAKE's successor (outgoing tells which) */
	CONN_UP,            /* carries messages to and from conn->peer */
};

struct cnx_peer;

/* One background name lookup. Shared by the election thread (which starts
 * it and takes the result) and the lookup thread (which fills it in); each
 * holds a reference and the last one to let go frees it, so neither waits
 * for the other (fle_stop never waits for a slow DNS server). */
struct cnx_lookup {
	atomic_int refs;
	atomic_bool done;           /* set by the lookup thread once the result is final */
	int wake_fd;                /* a dup of cm->wake_fd, owned by the lookup thread */
	char host[256];
	char port[12];
	struct sockaddr_storage addr;
	socklen_t addrlen;          /* 0 if the lookup failed */
	int err;                    /* getaddrinfo's result */
};

/* A socket and its buffers. Election thread only. */
struct cnx_conn {
	enum conn_state st;
	unsigned gen;               /* bumped on close, so a stale poll event is recognised */
	int fd;
	bool outgoing;
	struct cnx_peer *peer;      /* CONNECTING, HELLO: the target; UP: the peer; HANDSHAKE: NULL */
	int64_t deadline;           /* monotonic ms; 0 = none */
	char remote[80];            /* "ip:port", for logs */
	SSL *ssl;                   /* sslQuorum, else NULL */
	short tls_ev;               /* the event the last SSL call is waiting for (0 = none) */
	bool tls_failed;            /* a fatal TLS error: no close_notify */
	char tls_why[200];          /* why the last SSL call failed */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
};

struct cnx_peer {
	/* Written by the election thread under cm->mu; read under mu by any
	 * thread, and by the election thread without it. */
	bool used;
	int64_t sid;
	bool member;                /* a server.N line (else a stranger) */

	/* Election thread only. */
	char host[256];             /* where to connect; "" = unknown */
	int port;
	struct sockaddr_storage addr;
	socklen_t addrlen;          /* 0 = not resolved (yet) */
	struct cnx_lookup *lookup;  /* a lookup in flight, or NULL */
	bool connect_when_resolved;
	struct cnx_conn *conn;      /* the UP connection */
	struct cnx_conn *dialing;   /* our attempt in progress (CONNECTING or HELLO) */
	int failures;               /* consecutive failed connects: the first is a warning */
	uint8_t *last;              /* the last message written, framed */
	size_t last_len, last_cap;

	/* Under cm->mu: written by cnx_send/cnx_connect_all (any thread) and
	 * by the election thread when it takes the message. */
	bool has_slot;              /* something was ever queued for it */
	bool queued;
	uint8_t *slot;              /* framed message waiting to be written */
	size_t slot_len, slot_cap;
	bool want_connect;
	bool up;                    /* conn != NULL, for other threads */
};

struct cnxmgr {
	const struct quorum_config *cfg;   /* immutable, owned by the caller */
	cnx_deliver_fn deliver;
	void *arg;
	char my_address[300];              /* our election address, as sent in handshakes */
	int socket_timeout_ms;             /* for an incoming handshake */
	int listen_fd;
	int64_t accept_paused_until;       /* election thread: monotonic ms, 0 = accepting */
	/* eventfd: any thread writes it after giving the election thread work
	 * (send slot, connect request, halt); the election thread reads it. */
	int wake_fd;
	atomic_bool halted;                /* set by cnx_halt, read by the election thread */
	int64_t next_observer_id;          /* election thread: ids for OBSERVER_ID handshakes */
	/* Guards the peers' "under mu" fields and their used/sid/member. Taken
	 * briefly by the election thread and by callers of cnx_send & co.; never
	 * held while calling out of this file. */
	pthread_mutex_t mu;
	struct cnx_peer peers[CNX_MAX_PEERS];
	struct cnx_conn conns[CNX_MAX_CONNS];   /* election thread only */
};

/* ---- small helpers ------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* Makes room for `need` bytes in *buf; false if out of memory. */
static bool reserve(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	uint8_t *p = realloc(*buf, n);
	if (!p)
		return false;
	*buf = p;
	*cap = n;
	return true;
}

static void wake(struct cnxmgr *cm)
{
	uint64_t one = 1;
	ssize_t w = write(cm->wake_fd, &one, sizeof one);
	(void)w;    /* a full counter still wakes the reader */
}

static void sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		port = ntohs(in->sin_port);
		snprintf(out, outlen, "%s:%d", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		port = ntohs(in6->sin6_port);
		snprintf(out, outlen, "[%s]:%d", ip, port);
	} else {
		snprintf(out, outlen, "?");
	}
}

/* "host:port", IPv6 literals in brackets (NetUtils.formatInetAddr). */
static void format_address(char *out, size_t outlen, const char *host, int port)
{
	snprintf(out, outlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

static bool is_numeric_host(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;
	return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- peers --------------------------------------------------------------- */

static struct cnx_peer *peer_find(struct cnxmgr *cm, int64_t sid)
{
	for (int i = 0; i < CNX_MAX_PEERS; i++)
		if (cm->peers[i].used && cm->peers[i].sid == sid)
			return &cm->peers[i];
	return NULL;
}

/* Resolves p->host now (blocking), for the start. */
static void resolve_blocking(struct cnx_peer *p)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char port[12];
	snprintf(port, sizeof port, "%d", p->port);
	int r = getaddrinfo(p->host, port, &hints, &res);
	if (r != 0 || !res) {
		log_warn("election: cannot resolve %s, the election address of sid %lld: %s",
			 p->host, (long long)p->sid, gai_strerror(r));
		return;
	}
	memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
	p->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void lookup_release(struct cnx_lookup *l)
{
	if (atomic_fetch_sub(&l->refs, 1) == 1)
		free(l);
}

static void *lookup_main(void *arg)
{
	struct cnx_lookup *l = arg;
	pthread_setname_np(pthread_self(), "zkd-elect-dns");
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	l->err = getaddrinfo(l->host, l->port, &hints, &res);
	if (l->err == 0 && res) {
		memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
		l->addrlen = res->ai_addrlen;
	}
	if (res)
		freeaddrinfo(res);
	atomic_store(&l->done, true);
	uint64_t one = 1;
	ssize_t w = write(l->wake_fd, &one, sizeof one);
	(void)w;
	close(l->wake_fd);
	lookup_release(l);
	return NULL;
}

/* Starts a background lookup of p->host (a name, not a literal). */
static void resolve_async(struct cnxmgr *cm, struct cnx_peer *p)
{
	if (p->lookup || !p->host[0] || is_numeric_host(p->host))
		return;
	struct cnx_lookup *l = calloc(1, sizeof *l);
	if (!l)
		return;
	atomic_init(&l->refs, 2);
	snprintf(l->host, sizeof l->host, "%s", p->host);
	snprintf(l->port, sizeof l->port, "%d", p->port);
	l->wake_fd = fcntl(cm->wake_fd, F_DUPFD_CLOEXEC, 0);
	pthread_attr_t attr;
	pthread_t th;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int r = l->wake_fd < 0 ? errno : pthread_create(&th, &attr, lookup_main, l);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		log_warn("election: cannot start resolving %s for sid %lld: %s", p->host, (long long)p->sid,
			 strerror(r));
		if (l->wake_fd >= 0)
			close(l->wake_fd);
		free(l);
		return;
	}
	p->lookup = l;
}

/* Sets where to reach a stranger, from its handshake. */
static void peer_set_address(struct cnx_peer *p, const char *host, int port)
{
	if (!host[0] || (strcmp(p->host, host) == 0 && p->port == port))
		return;
	snprintf(p->host, sizeof p->host, "%s", host);
	p->port = port;
	p->addrlen = 0;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *res = NULL;
	char ps[12];
	snprintf(ps, sizeof ps, "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) == 0 && res) {
		memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
		p->addrlen = res->ai_addrlen;
		freeaddrinfo(res);
	}
}

static void peer_release_buffers(struct cnx_peer *p)
{
	free(p->last);
	free(p->slot);
	p->last = p->slot = NULL;
	p->last_len = p->last_cap = p->slot_len = p->slot_cap = 0;
}

/* A slot for a server not in our configuration; reuses the slot of a
 * stranger that is idle when all are taken. NULL if none is free. */
static struct cnx_peer *stranger_add(struct cnxmgr *cm, int64_t sid)
{
	struct cnx_peer *free_slot = NULL, *idle = NULL;
	for (int i = 0; i < CNX_MAX_PEERS; i++) {
		struct cnx_peer *p = &cm->peers[i];
		if (!p->used && !free_slot)
			free_slot = p;
		else if (p->used && !p->member && !p->conn && !p->dialing && !p->lookup && !idle)
			idle = p;
	}
	struct cnx_peer *p = free_slot ? free_slot : idle;
	if (!p)
		return NULL;
	if (p == idle)
		log_info("election: forgetting idle non-member sid %lld to make room for sid %lld",
			 (long long)p->sid, (long long)sid);
	pthread_mutex_lock(&cm->mu);
	peer_release_buffers(p);
	memset(p, 0, sizeof *p);
	p->used = true;
	p->sid = sid;
	p->member = false;
	pthread_mutex_unlock(&cm->mu);
	return p;
}

/* ---- connections ------------------------------------------------------------ */

static struct cnx_conn *conn_alloc(struct cnxmgr *cm, int fd, enum conn_state st)
{
	for (int i = 0; i < CNX_MAX_CONNS; i++) {
		struct cnx_conn *c = &cm->conns[i];
		if (c->st == CONN_FREE) {
			c->st = st;
			c->fd = fd;
			c->peer = NULL;
			c->outgoing = false;
			c->deadline = 0;
			c->remote[0] = '\0';
			c->ssl = NULL;
			c->tls_ev = 0;
			c->tls_failed = false;
			c->tls_why[0] = '\0';
			c->in_len = c->out_off = c->out_len = 0;
			return c;
		}
	}
	return NULL;
}

/* Closes c. reason is logged (at info if it carried a peer's messages, else
 * at `lvl`), unless NULL. */
static void conn_close(struct cnxmgr *cm, struct cnx_conn *c, enum log_level lvl, const char *reason)
{
	struct cnx_peer *p = c->peer;
	if (p && p->conn == c) {
		p->conn = NULL;
		pthread_mutex_lock(&cm->mu);
		p->up = false;
		pthread_mutex_unlock(&cm->mu);
		if (reason)
			log_info("election: connection to sid %lld (%s) closed: %s", (long long)p->sid,
				 c->remote, reason);
	} else if (reason) {
		if (p)
			zlog(lvl, "election: connection to sid %lld (%s) closed: %s", (long long)p->sid,
			     c->remote, reason);
		else
			zlog(lvl, "election: connection from %s closed: %s", c->remote, reason);
	}
	if (p && p->dialing == c)
		p->dialing = NULL;
	if (c->ssl) {
		if (!c->tls_failed && SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);   /* close_notify, best effort: never waits */
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
	}
	close(c->fd);
	c->fd = -1;
	c->peer = NULL;
	c->st = CONN_FREE;
	c->gen++;
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->in_len = c->in_cap = c->out_off = c->out_len = c->out_cap = 0;
}

/* ---- plain or TLS I/O ----------------------------------------------------------- */

/* What an SSL call's failure means as recv/send would say it: -1 with errno
 * EAGAIN (c->tls_ev says what to wait for), 0 for the end of the stream, or
 * -1 with EPROTO and the reason in c->tls_why. */
static ssize_t tls_result(struct cnx_conn *c, int r)
{
	int saved = errno;
	int e = SSL_get_error(c->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		c->tls_ev = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		c->tls_ev = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		c->tls_failed = true;
		ERR_clear_error();
		if (!saved)
			return 0;           /* closed without close_notify */
		errno = saved;
		return -1;
	default:
		c->tls_failed = true;
		net_tls_error(c->ssl, c->tls_why, sizeof c->tls_why);
		errno = EPROTO;
		return -1;
	}
}

/* recv(2) on c, through TLS if it has it. */
static ssize_t conn_recv(struct cnx_conn *c, void *buf, size_t len, int flags)
{
	if (!c->ssl)
		return recv(c->fd, buf, len, flags);
	size_t n = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_read_ex(c->ssl, buf, len, &n);
	if (r == 1) {
		c->tls_ev = 0;
		return (ssize_t)n;
	}
	return tls_result(c, r);
}

/* send(2) on c, through TLS if it has it. */
static ssize_t conn_send(struct cnx_conn *c, const void *buf, size_t len)
{
	if (!c->ssl)
		return send(c->fd, buf, len, MSG_NOSIGNAL);
	size_t n = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_write_ex(c->ssl, buf, len, &n);
	if (r == 1) {
		c->tls_ev = 0;
		return (ssize_t)n;
	}
	return tls_result(c, r);
}

/* A failed conn_recv / conn_send, for logs. */
static const char *io_error(const struct cnx_conn *c, int err)
{
	return err == EPROTO && c->tls_why[0] ? c->tls_why : strerror(err);
}

static bool conn_append(struct cnx_conn *c, const uint8_t *bytes, size_t len)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (!reserve(&c->out, &c->out_cap, c->out_len + len))
		return false;
	memcpy(c->out + c->out_len, bytes, len);
	c->out_len += len;
	return true;
}

/* Moves the peer's queued message (or, on a fresh connection with nothing
 * queued, the last one written) into c's output. Takes cm->mu. */
static void conn_take_message(struct cnxmgr *cm, struct cnx_conn *c, bool fresh)
{
	struct cnx_peer *p = c->peer;
	pthread_mutex_lock(&cm->mu);
	if (p->queued) {
		if (conn_append(c, p->slot, p->slot_len) &&
		    reserve(&p->last, &p->last_cap, p->slot_len)) {
			memcpy(p->last, p->slot, p->slot_len);
			p->last_len = p->slot_len;
		}
		p->queued = false;
	} else if (fresh && p->last_len) {
		conn_append(c, p->last, p->last_len);
	}
	pthread_mutex_unlock(&cm->mu);
}

static bool conn_parse(struct cnxmgr *cm, struct cnx_conn *c);
static size_t conn_wanted(const struct cnx_conn *c);

/* Closes an UP connection that is being replaced, after delivering the
 * messages already waiting in its receive buffer: they are the peer's latest
 * votes, and closing a socket with unread input resets the connection,
 * which also destroys what we wrote to it that the peer has not read yet. */
static void conn_retire(struct cnxmgr *cm, struct cnx_conn *c, const char *reason)
{
	for (int i = 0; i < CNX_READS_PER_EVENT; i++) {
		size_t want = conn_wanted(c);
		if (!reserve(&c->in, &c->in_cap, want > c->in_len + CNX_READ_ROOM ? want : c->in_len + CNX_READ_ROOM))
			break;
		ssize_t n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n <= 0)
			break;      /* drained, ended or failed: nothing more to save */
		c->in_len += (size_t)n;
		if (!conn_parse(cm, c))
			return;     /* closed for a bad frame */
	}
	conn_close(cm, c, LOG_INFO, reason);
}

/* c now carries messages for p: replaces p's previous connection. */
static void conn_attach(struct cnxmgr *cm, struct cnx_conn *c, struct cnx_peer *p)
{
	if (p->conn && p->conn != c)
		conn_retire(cm, p->conn, "replaced by a new connection");
	if (p->dialing == c)
		p->dialing = NULL;
	c->st = CONN_UP;
	c->peer = p;
	c->deadline = 0;
	p->conn = c;
	p->failures = 0;
	pthread_mutex_lock(&cm->mu);
	p->up = true;
	pthread_mutex_unlock(&cm->mu);
	log_info("election: connection to sid %lld up (%s, %s)", (long long)p->sid, c->remote,
		 c->outgoing ? "we connected" : "it connected");
	conn_take_message(cm, c, true);
}

/* Writes what c has queued. False if c was closed. */
static bool conn_flush(struct cnxmgr *cm, struct cnx_conn *c)
{
	for (;;) {
		while (c->out_off < c->out_len) {
			ssize_t n = conn_send(c, c->out + c->out_off, c->out_len - c->out_off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return true;
			if (n <= 0) {
				char why[256];
				snprintf(why, sizeof why, "write failed: %s", n == 0 ? "closed by the peer" :
					 io_error(c, errno));
				conn_close(cm, c, LOG_INFO, why);
				return false;
			}
			c->out_off += (size_t)n;
		}
		c->out_off = c->out_len = 0;
		if (c->st == CONN_HELLO) {
			log_debug("election: handshake sent to higher sid %lld; hanging up so that it connects back",
				  (long long)c->peer->sid);
			conn_close(cm, c, LOG_DEBUG, NULL);
			return false;
		}
		if (c->st != CONN_UP)
			return true;
		conn_take_message(cm, c, false);
		if (c->out_len == 0)
			return true;
	}
}

static void connect_failed(struct cnxmgr *cm, struct cnx_peer *p, const char *why)
{
	p->failures++;
	zlog(p->failures == 1 ? LOG_WARN : LOG_DEBUG,
	     "election: cannot open channel to sid %lld at %s:%d: %s", (long long)p->sid, p->host,
	     p->port, why);
	resolve_async(cm, p);   /* a name may point elsewhere by the next attempt */
}

/* The TCP connection to c->peer is established: say who we are. */
static void on_connected(struct cnxmgr *cm, struct cnx_conn *c)
{
	struct cnx_peer *p = c->peer;
	size_t alen = strlen(cm->my_address);
	uint8_t hello[CNX_HANDSHAKE_FIXED + sizeof cm->my_address];
	put_be64(hello, (uint64_t)CNX_PROTOCOL_V1);
	put_be64(hello + 8, (uint64_t)cm->cfg->myid);
	put_be32(hello + 16, (uint32_t)alen);
	memcpy(hello + CNX_HANDSHAKE_FIXED, cm->my_address, alen);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_text((struct sockaddr *)&ss, c->remote, sizeof c->remote);
	if (!conn_append(c, hello, CNX_HANDSHAKE_FIXED + alen)) {
		conn_close(cm, c, LOG_ERROR, "out of memory");
		return;
	}
	if (p->sid > cm->cfg->myid) {
		c->st = CONN_HELLO;
		c->deadline = quorum_now_ms() + CNX_CONNECT_TIMEOUT_MS;
		p->failures = 0;
	} else {
		conn_attach(cm, c, p);
	}
	conn_flush(cm, c);
}

/* ---- TLS (sslQuorum) ---------------------------------------------------------------
 * The handshake runs in this loop like any other I/O: CONN_TLS waits for
 * whatever SSL_do_handshake wants (tls_ev), under the same deadline as a
 * connect (outgoing) or a handshake (incoming). No thread of its own: the
 * handshake is a few round trips of CPU-cheap work per connection, and the
 * election must never wait on one peer. */

static void on_connected(struct cnxmgr *cm, struct cnx_conn *c);
static void conn_read(struct cnxmgr *cm, struct cnx_conn *c);

/* A TLS connection failed before it carried anything. */
static void tls_failed(struct cnxmgr *cm, struct cnx_conn *c, const char *why)
{
	struct cnx_peer *p = c->outgoing ? c->peer : NULL;
	char msg[400];
	snprintf(msg, sizeof msg, "%s%s", why,
		 strstr(why, "wrong version number") || strstr(why, "packet length too long") ||
		 strstr(why, "http request") ? " (a server without sslQuorum?)" : "");
	if (p) {
		conn_close(cm, c, LOG_DEBUG, NULL);
		connect_failed(cm, p, msg);
	} else {
		conn_close(cm, c, LOG_WARN, msg);
	}
}

/* Advances c's TLS handshake; once done (and the certificate names the
 * peer, with hostname verification), goes on as a plain connection would. */
static void tls_step(struct cnxmgr *cm, struct cnx_conn *c)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		ssize_t v = tls_result(c, r);
		if (v < 0 && errno == EAGAIN)
			return;
		char why[300];
		snprintf(why, sizeof why, "TLS handshake failed: %s",
			 v == 0 ? "closed by the peer" : io_error(c, errno));
		tls_failed(cm, c, why);
		return;
	}
	c->tls_ev = 0;
	if (cm->cfg->ssl_hostname_verification) {
		const char *names[CNX_MAX_PEERS];
		int n = 0;
		if (c->outgoing) {
			names[n++] = c->peer->host;
		} else {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof ss;
			if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
				for (int i = 0; i < CNX_MAX_PEERS; i++) {
					struct cnx_peer *p = &cm->peers[i];
					if (p->used && p->member && p->addrlen &&
					    quorum_same_ip((struct sockaddr *)&p->addr, (struct sockaddr *)&ss))
						names[n++] = p->host;
				}
		}
		char why[600];
		if (net_tls_peer_check(c->ssl, names, n, why, sizeof why) != 0) {
			tls_failed(cm, c, why);
			return;
		}
	}
	log_debug("election: TLS with %s up (%s, %s)", c->remote, SSL_get_version(c->ssl),
		  SSL_get_cipher_name(c->ssl));
	if (c->outgoing) {
		on_connected(cm, c);
	} else {
		c->st = CONN_HANDSHAKE;
		c->deadline = quorum_now_ms() + cm->socket_timeout_ms;
		conn_read(cm, c);      /* the handshake may have come with the last flight */
	}
}

/* The TCP connection to c->peer is established: TLS first if asked. */
static void on_tcp_connected(struct cnxmgr *cm, struct cnx_conn *c)
{
	if (!cm->cfg->ssl_quorum) {
		on_connected(cm, c);
		return;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_text((struct sockaddr *)&ss, c->remote, sizeof c->remote);
	c->ssl = qtls_ctx_ssl(cm->cfg->tls_ctx, c->fd, true);
	if (!c->ssl) {
		struct cnx_peer *p = c->peer;
		conn_close(cm, c, LOG_DEBUG, NULL);
		connect_failed(cm, p, "out of memory");
		return;
	}
	c->st = CONN_TLS;
	c->deadline = quorum_now_ms() + CNX_CONNECT_TIMEOUT_MS;
	tls_step(cm, c);
}

/* Starts a connection to p unless one is up or under way (connectOne). */
static void connect_one(struct cnxmgr *cm, struct cnx_peer *p)
{
	if (p->conn || p->dialing)
		return;
	if (!p->host[0]) {
		log_warn("election: no election address known for sid %lld; cannot connect", (long long)p->sid);
		return;
	}
	if (p->addrlen == 0) {
		p->connect_when_resolved = true;
		resolve_async(cm, p);
		return;
	}
	int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		connect_failed(cm, p, strerror(errno));
		return;
	}
	set_nodelay(fd);
	struct cnx_conn *c = conn_alloc(cm, fd, CONN_CONNECTING);
	if (!c) {
		close(fd);
		connect_failed(cm, p, "too many election connections");
		return;
	}
	c->peer = p;
	c->outgoing = true;
	p->dialing = c;
	format_address(c->remote, sizeof c->remote, p->host, p->port);
	int r;
	do
		r = connect(fd, (struct sockaddr *)&p->addr, p->addrlen);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		on_tcp_connected(cm, c);
	} else if (errno == EINPROGRESS) {
		c->deadline = quorum_now_ms() + CNX_CONNECT_TIMEOUT_MS;
	} else {
		int err = errno;
		conn_close(cm, c, LOG_DEBUG, NULL);
		connect_failed(cm, p, strerror(err));
	}
}

/* ---- the handshake ----------------------------------------------------------- */

enum hs_result { HS_MORE, HS_DONE, HS_BAD };

/* Parses "host:port" or "[v6]:port" (ConfigUtils.getHostAndPort) into
 * host/port. False if malformed. */
static bool parse_host_port(const char *s, size_t len, char *host, size_t hostcap, int *port)
{
	const char *end = s + len, *port_at;
	size_t hlen;
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close || close + 1 >= end || close[1] != ':')
			return false;
		hlen = (size_t)(close - s - 1);
		port_at = close + 2;
		s++;
	} else {
		const char *colon = memchr(s, ':', len);
		if (!colon || memchr(colon + 1, ':', (size_t)(end - colon - 1)))
			return false;
		hlen = (size_t)(colon - s);
		port_at = colon + 1;
	}
	if (hlen == 0 || hlen >= hostcap || port_at >= end || end - port_at > 5)
		return false;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	int v = 0;
	for (const char *q = port_at; q < end; q++) {
		if (*q < '0' || *q > '9')
			return false;
		v = v * 10 + (*q - '0');
	}
	if (v > 65535)
		return false;
	*port = v;
	return true;
}

static bool is_wildcard(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return a4.s_addr == htonl(INADDR_ANY);
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_UNSPECIFIED(&a6);
	return false;
}

/* Parses the handshake at the start of c->in. On HS_DONE: *sid, the first
 * usable address (host "" if none) and *used bytes; on HS_BAD: why. */
static enum hs_result parse_handshake(const struct cnx_conn *c, int64_t *sid, char *host, size_t hostcap,
				      int *port, size_t *used, char *why, size_t whylen)
{
	host[0] = '\0';
	*port = 0;
	if (c->in_len < 8)
		return HS_MORE;
	int64_t version = (int64_t)get_be64(c->in);
	if (version >= 0) {             /* a pre-3.5 server: just its sid */
		*sid = version;
		*used = 8;
		return HS_DONE;
	}
	if (version != CNX_PROTOCOL_V1 && version != CNX_PROTOCOL_V2) {
		snprintf(why, whylen, "unknown protocol version %lld", (long long)version);
		return HS_BAD;
	}
	if (c->in_len < CNX_HANDSHAKE_FIXED)
		return HS_MORE;
	*sid = (int64_t)get_be64(c->in + 8);
	int32_t alen = (int32_t)get_be32(c->in + 16);
	if (alen <= 0 || alen > CNX_MAX_ADDRESS) {
		snprintf(why, whylen, "unreasonable address length %d from sid %lld", alen, (long long)*sid);
		return HS_BAD;
	}
	if (c->in_len < CNX_HANDSHAKE_FIXED + (size_t)alen)
		return HS_MORE;
	const char *a = (const char *)c->in + CNX_HANDSHAKE_FIXED, *end = a + alen;
	while (a <= end) {              /* '|'-separated in V2; take the first usable one */
		const char *bar = memchr(a, '|', (size_t)(end - a));
		const char *stop = bar ? bar : end;
		char h[256];
		int p;
		if (!parse_host_port(a, (size_t)(stop - a), h, sizeof h, &p)) {
			snprintf(why, whylen, "badly formed address '%.*s' from sid %lld",
				 (int)(stop - a > 64 ? 64 : stop - a), a, (long long)*sid);
			return HS_BAD;
		}
		if (!host[0] && !is_wildcard(h) && strlen(h) < hostcap) {
			strcpy(host, h);
			*port = p;
		}
		a = stop + 1;
	}
	*used = CNX_HANDSHAKE_FIXED + (size_t)alen;
	return HS_DONE;
}

/* An incoming connection said who it is: keep it, or (from a lower sid)
 * drop it and connect back (handleConnection). False if c was closed. */
static bool handshake_done(struct cnxmgr *cm, struct cnx_conn *c, int64_t sid, const char *host, int port)
{
	int64_t myid = cm->cfg->myid;
	if (sid == CNX_OBSERVER_ID) {
		sid = cm->next_observer_id--;
		log_info("election: observer without a sid at %s; calling it %lld", c->remote, (long long)sid);
	}
	if (sid == myid) {
		log_warn("election: connection from %s claims our own sid %lld (a configuration error?); closing",
			 c->remote, (long long)sid);
		conn_close(cm, c, LOG_DEBUG, NULL);
		return false;
	}
	struct cnx_peer *p = peer_find(cm, sid);
	if (!p) {
		p = stranger_add(cm, sid);
		if (!p) {
			log_warn("election: connection from %s (sid %lld, not in our configuration) refused: "
				 "too many such servers", c->remote, (long long)sid);
			conn_close(cm, c, LOG_DEBUG, NULL);
			return false;
		}
		log_info("election: sid %lld (%s) is not in our configuration; answering it anyway",
			 (long long)sid, c->remote);
	}
	if (!p->member)
		peer_set_address(p, host, port);
	if (sid < myid) {
		log_debug("election: sid %lld connected to us but is lower; connecting back", (long long)sid);
		conn_close(cm, c, LOG_DEBUG, NULL);
		if (p->conn)
			conn_retire(cm, p->conn, "the peer connected again");
		connect_one(cm, p);
		return false;
	}
	c->peer = p;
	conn_attach(cm, c, p);
	return conn_flush(cm, c);
}

/* ---- input ------------------------------------------------------------------ */

/* Consumes what c->in holds: the handshake, then messages. False if c was
 * closed. */
static bool conn_parse(struct cnxmgr *cm, struct cnx_conn *c)
{
	size_t off = 0;
	if (c->st == CONN_HANDSHAKE) {
		int64_t sid = 0;
		char host[256], why[160];
		int port;
		size_t used = 0;
		switch (parse_handshake(c, &sid, host, sizeof host, &port, &used, why, sizeof why)) {
		case HS_MORE:
			return true;
		case HS_BAD:
			conn_close(cm, c, LOG_WARN, why);
			return false;
		case HS_DONE:
			break;
		}
		off = used;
		if (!handshake_done(cm, c, sid, host, port))
			return false;
	}
	while (c->st == CONN_UP && c->in_len - off >= 4) {
		int32_t len = (int32_t)get_be32(c->in + off);
		if (len <= 0 || len > CNX_MAX_MESSAGE) {
			char why[96];
			snprintf(why, sizeof why, "invalid message length %d", len);
			conn_close(cm, c, LOG_WARN, why);
			return false;
		}
		if (c->in_len - off - 4 < (size_t)len)
			break;
		cm->deliver(cm->arg, c->peer->sid, c->in + off + 4, (size_t)len);
		off += 4 + (size_t)len;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return true;
}

/* Bytes c needs before the next thing in c->in can be parsed. */
static size_t conn_wanted(const struct cnx_conn *c)
{
	if (c->st == CONN_UP && c->in_len >= 4) {
		int32_t len = (int32_t)get_be32(c->in);
		if (len > 0 && len <= CNX_MAX_MESSAGE)
			return 4 + (size_t)len;
	}
	return c->in_len + CNX_READ_ROOM;
}

static void conn_read(struct cnxmgr *cm, struct cnx_conn *c)
{
	for (int i = 0; i < CNX_READS_PER_EVENT; i++) {
		size_t want = conn_wanted(c);
		if (want < c->in_len + CNX_READ_ROOM)
			want = c->in_len + CNX_READ_ROOM;
		if (!reserve(&c->in, &c->in_cap, want)) {
			conn_close(cm, c, LOG_ERROR, "out of memory");
			return;
		}
		ssize_t n = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			char why[256];
			snprintf(why, sizeof why, "%s", n == 0 ? "closed by the peer" : io_error(c, errno));
			conn_close(cm, c, c->st == CONN_HANDSHAKE ? LOG_WARN : LOG_INFO, why);
			return;
		}
		c->in_len += (size_t)n;
		if (!conn_parse(cm, c))
			return;
	}
}

/* The server side of a TLS connection: the handshake starts with the
 * other side's ClientHello. */
static void accept_tls(struct cnxmgr *cm, struct cnx_conn *c)
{
	c->ssl = qtls_ctx_ssl(cm->cfg->tls_ctx, c->fd, false);
	if (!c->ssl) {
		conn_close(cm, c, LOG_WARN, "out of memory");
		return;
	}
	c->st = CONN_TLS;
	c->tls_ev = POLLIN;
}

/* portUnification: the first byte says TLS or plain; it stays on the
 * socket for whichever reads it. */
static void sniff(struct cnxmgr *cm, struct cnx_conn *c)
{
	switch (quorum_sniff_tls(c->fd)) {
	case 1:
		accept_tls(cm, c);
		if (c->st == CONN_TLS)
			tls_step(cm, c);
		return;
	case 0:
		c->st = CONN_HANDSHAKE;
		conn_read(cm, c);
		return;
	case -2:
		return;                 /* woken without a byte: wait on */
	default:
		conn_close(cm, c, LOG_DEBUG, NULL);
		return;
	}
}

static void accept_all(struct cnxmgr *cm)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(cm->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* e.g. EMFILE: the connection stays queued and poll would
				 * report it again at once, so look away for a while */
				log_warn("election: accept failed: %s; not accepting for %d ms", strerror(errno),
					 CNX_ACCEPT_PAUSE_MS);
				cm->accept_paused_until = quorum_now_ms() + CNX_ACCEPT_PAUSE_MS;
			}
			return;
		}
		char remote[80];
		sockaddr_text((struct sockaddr *)&ss, remote, sizeof remote);
		struct cnx_conn *c = conn_alloc(cm, fd, CONN_HANDSHAKE);
		if (!c) {
			log_warn("election: connection from %s refused: too many election connections", remote);
			close(fd);
			continue;
		}
		set_nodelay(fd);
		snprintf(c->remote, sizeof c->remote, "%s", remote);
		c->deadline = quorum_now_ms() + cm->socket_timeout_ms;
		if (cm->cfg->port_unification)
			c->st = CONN_SNIFF;
		else if (cm->cfg->ssl_quorum)
			accept_tls(cm, c);
		log_debug("election: connection request from %s", remote);
	}
}

/* ---- the loop ------------------------------------------------------------------ */

static void conn_event(struct cnxmgr *cm, struct cnx_conn *c, short revents)
{
	if (c->st == CONN_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err == 0 && !(revents & POLLOUT))
			return;
		if (err) {
			struct cnx_peer *p = c->peer;
			conn_close(cm, c, LOG_DEBUG, NULL);
			connect_failed(cm, p, strerror(err));
			return;
		}
		on_tcp_connected(cm, c);
		return;
	}
	if (c->st == CONN_TLS) {
		tls_step(cm, c);
		return;
	}
	if (c->st == CONN_SNIFF) {
		sniff(cm, c);
		return;
	}
	if (c->st == CONN_HELLO) {
		conn_flush(cm, c);
		return;
	}
	if (c->ssl) {
		/* TLS: either call may want either event; both are cheap to try */
		if (revents & (POLLIN | POLLOUT | POLLHUP | POLLERR)) {
			conn_read(cm, c);
			if (c->st == CONN_FREE)
				return;
		}
		if (c->out_len > c->out_off)
			conn_flush(cm, c);
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		conn_read(cm, c);
		if (c->st == CONN_FREE)
			return;
	}
	if (revents & POLLOUT)
		conn_flush(cm, c);
}

/* Takes the work other threads queued: connects where asked, moves queued
 * messages onto idle connections. */
static void pump(struct cnxmgr *cm)
{
	bool dial[CNX_MAX_PEERS];
	pthread_mutex_lock(&cm->mu);
	for (int i = 0; i < CNX_MAX_PEERS; i++) {
		struct cnx_peer *p = &cm->peers[i];
		dial[i] = p->used && p->want_connect;
		p->want_connect = false;
	}
	pthread_mutex_unlock(&cm->mu);
	for (int i = 0; i < CNX_MAX_PEERS; i++)
		if (dial[i])
			connect_one(cm, &cm->peers[i]);
	for (int i = 0; i < CNX_MAX_PEERS; i++) {
		struct cnx_conn *c = cm->peers[i].used ? cm->peers[i].conn : NULL;
		if (c && c->out_len == 0) {
			conn_take_message(cm, c, false);
			if (c->out_len)
				conn_flush(cm, c);
		}
	}
}

static void check_lookups(struct cnxmgr *cm)
{
	for (int i = 0; i < CNX_MAX_PEERS; i++) {
		struct cnx_peer *p = &cm->peers[i];
		struct cnx_lookup *l = p->used ? p->lookup : NULL;
		if (!l || !atomic_load(&l->done))
			continue;
		if (l->addrlen) {
			memcpy(&p->addr, &l->addr, l->addrlen);
			p->addrlen = l->addrlen;
			log_debug("election: resolved %s for sid %lld", p->host, (long long)p->sid);
		} else {
			log_warn("election: cannot resolve %s, the election address of sid %lld: %s",
				 p->host, (long long)p->sid, gai_strerror(l->err));
		}
		p->lookup = NULL;
		lookup_release(l);
		bool dial = p->connect_when_resolved && p->addrlen;
		p->connect_when_resolved = false;
		if (dial)
			connect_one(cm, p);
	}
}

static void expire(struct cnxmgr *cm)
{
	int64_t now = quorum_now_ms();
	for (int i = 0; i < CNX_MAX_CONNS; i++) {
		struct cnx_conn *c = &cm->conns[i];
		if (c->st == CONN_FREE || !c->deadline || now < c->deadline)
			continue;
		if (c->st == CONN_CONNECTING) {
			struct cnx_peer *p = c->peer;
			conn_close(cm, c, LOG_DEBUG, NULL);
			connect_failed(cm, p, "connect timed out");
		} else if (c->st == CONN_TLS) {
			tls_failed(cm, c, "TLS handshake not done in time");
		} else if (c->st == CONN_HELLO) {
			conn_close(cm, c, LOG_WARN, "timed out sending the handshake");
		} else {
			conn_close(cm, c, LOG_WARN, "no handshake in time");
		}
	}
}

static int next_timeout(const struct cnxmgr *cm)
{
	int64_t now = quorum_now_ms(), t = -1;
	if (cm->accept_paused_until)
		t = cm->accept_paused_until > now ? cm->accept_paused_until - now : 0;
	for (int i = 0; i < CNX_MAX_CONNS; i++) {
		const struct cnx_conn *c = &cm->conns[i];
		if (c->st != CONN_FREE && c->deadline) {
			int64_t left = c->deadline > now ? c->deadline - now : 0;
			if (t < 0 || left < t)
				t = left;
		}
	}
	return (int)t;
}

void cnx_run(struct cnxmgr *cm)
{
	struct pollfd pfd[2 + CNX_MAX_CONNS];
	struct { int idx; unsigned gen; bool pending; } map[CNX_MAX_CONNS];
	while (!atomic_load(&cm->halted)) {
		bool any_pending = false;
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = cm->wake_fd, .events = POLLIN };
		if (cm->accept_paused_until && quorum_now_ms() >= cm->accept_paused_until)
			cm->accept_paused_until = 0;
		/* a negative fd is ignored by poll: the listener while paused */
		pfd[n++] = (struct pollfd){ .fd = cm->accept_paused_until ? -1 : cm->listen_fd, .events = POLLIN };
		int first = n;
		for (int i = 0; i < CNX_MAX_CONNS; i++) {
			struct cnx_conn *c = &cm->conns[i];
			short ev;
			switch (c->st) {
			case CONN_FREE: continue;
			case CONN_CONNECTING: ev = POLLOUT; break;
			case CONN_HELLO: ev = POLLOUT; break;
			case CONN_HANDSHAKE: case CONN_SNIFF: ev = POLLIN; break;
			case CONN_TLS: ev = c->tls_ev ? c->tls_ev : POLLIN; break;
			default: ev = (short)(POLLIN | (c->out_len > c->out_off ? POLLOUT : 0)); break;
			}
			if (c->ssl && c->st != CONN_TLS)
				ev |= c->tls_ev;
			map[n - first].idx = i;
			map[n - first].gen = c->gen;
			/* TLS: a record read in part is in OpenSSL, not the socket */
			map[n - first].pending = c->ssl && c->st != CONN_TLS && SSL_pending(c->ssl) > 0;
			any_pending |= map[n - first].pending;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		int timeout = next_timeout(cm), reload_in = qtls_ctx_check(cm->cfg->tls_ctx);
		if (reload_in >= 0 && (timeout < 0 || reload_in < timeout))
			timeout = reload_in;
		int r = poll(pfd, (nfds_t)n, any_pending ? 0 : timeout);
		if (r < 0 && errno != EINTR) {
			log_error("election: poll failed: %s", strerror(errno));
			usleep(10000);
			continue;
		}
		if (r > 0 && pfd[0].revents) {
			uint64_t v;
			ssize_t rd = read(cm->wake_fd, &v, sizeof v);
			(void)rd;
		}
		if (r > 0 && pfd[1].revents)
			accept_all(cm);
		for (int k = first; (r > 0 || any_pending) && k < n; k++) {
			struct cnx_conn *c = &cm->conns[map[k - first].idx];
			short rev = pfd[k].revents;
			if (r >= 0 && map[k - first].pending)
				rev |= POLLIN;
			if (rev && c->st != CONN_FREE && c->gen == map[k - first].gen)
				conn_event(cm, c, rev);
		}
		pump(cm);
		check_lookups(cm);
		expire(cm);
	}
}

/* ---- the API for other threads ------------------------------------------------ */

void cnx_send(struct cnxmgr *cm, int64_t sid, const uint8_t *msg, size_t len)
{
	if (len == 0 || len > CNX_MAX_MESSAGE) {
		log_error("election: not sending a message of %zu bytes to sid %lld", len, (long long)sid);
		return;
	}
	pthread_mutex_lock(&cm->mu);
	struct cnx_peer *p = peer_find(cm, sid);
	bool ok = p && reserve(&p->slot, &p->slot_cap, len + 4);
	if (ok) {
		put_be32(p->slot, (uint32_t)len);
		memcpy(p->slot + 4, msg, len);
		p->slot_len = len + 4;
		p->queued = true;
		p->has_slot = true;
		p->want_connect = true;
	}
	pthread_mutex_unlock(&cm->mu);
	if (!ok) {
		log_warn("election: cannot send to sid %lld: %s", (long long)sid,
			 p ? "out of memory" : "unknown server");
		return;
	}
	wake(cm);
}

void cnx_connect_all(struct cnxmgr *cm)
{
	pthread_mutex_lock(&cm->mu);
	for (int i = 0; i < CNX_MAX_PEERS; i++)
		if (cm->peers[i].used && cm->peers[i].has_slot)
			cm->peers[i].want_connect = true;
	pthread_mutex_unlock(&cm->mu);
	wake(cm);
}

bool cnx_have_delivered(const struct cnxmgr *cm)
{
	struct cnxmgr *m = (struct cnxmgr *)cm;
	bool any = false;
	pthread_mutex_lock(&m->mu);
	for (int i = 0; i < CNX_MAX_PEERS && !any; i++)
		any = m->peers[i].used && m->peers[i].has_slot && !m->peers[i].queued;
	pthread_mutex_unlock(&m->mu);
	return any;
}

bool cnx_connected(const struct cnxmgr *cm, int64_t sid)
{
	struct cnxmgr *m = (struct cnxmgr *)cm;
	pthread_mutex_lock(&m->mu);
	struct cnx_peer *p = peer_find(m, sid);
	bool up = p && p->up;
	pthread_mutex_unlock(&m->mu);
	return up;
}

void cnx_halt(struct cnxmgr *cm)
{
	atomic_store(&cm->halted, true);
	wake(cm);
}

/* ---- start and end ---------------------------------------------------------------- */

/* Binds and listens on one of the addresses in res; -1 and errno if none. */
static int listen_on(const struct addrinfo *res, bool wildcard)
{
	int saved = EADDRNOTAVAIL;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		int one = 1, zero = 0;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (wildcard && ai->ai_family == AF_INET6)  /* "::" takes IPv4 too */
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
			return fd;
		saved = errno;
		close(fd);
	}
	errno = saved;
	return -1;
}

/* One attempt to bind the election port: our server line's host, or the
 * wildcard address ("::" dual stack, else 0.0.0.0). -1 and err on failure. */
static int bind_once(const struct cnxmgr *cm, const struct quorum_member *me, char *err, size_t errlen)
{
	bool wildcard = cm->cfg->listen_on_all_ips;
	char port[12];
	snprintf(port, sizeof port, "%d", me->election_port);
	static const int families[] = { AF_INET6, AF_INET };
	int fd = -1, saved = 0;
	for (int f = 0; f < (wildcard ? 2 : 1) && fd < 0; f++) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res = NULL;
		if (wildcard)
			hints.ai_family = families[f];
		int r = getaddrinfo(wildcard ? NULL : me->host, port, &hints, &res);
		if (r != 0) {
			if (!wildcard) {
				snprintf(err, errlen, "cannot resolve %s: %s", me->host, gai_strerror(r));
				return -1;
			}
			saved = EAFNOSUPPORT;
			continue;
		}
		fd = listen_on(res, wildcard);
		saved = errno;
		freeaddrinfo(res);
		if (fd < 0 && saved != EAFNOSUPPORT)
			break;      /* e.g. EADDRINUSE: the other family will not do better */
	}
	if (fd < 0)
		snprintf(err, errlen, "cannot bind the election port %s:%d: %s",
			 wildcard ? "*" : me->host, me->election_port, strerror(saved));
	return fd;
}

struct cnxmgr *cnx_create(const struct quorum_config *cfg, cnx_deliver_fn deliver, void *arg,
			  char *err, size_t errlen)
{
	const struct quorum_member *me = quorum_member(cfg, cfg->myid);
	if (!me) {
		snprintf(err, errlen, "myid %lld has no server.%lld line", (long long)cfg->myid,
			 (long long)cfg->myid);
		return NULL;
	}
	struct cnxmgr *cm = calloc(1, sizeof *cm);
	if (!cm) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cm->cfg = cfg;
	cm->deliver = deliver;
	cm->arg = arg;
	cm->listen_fd = -1;
	cm->next_observer_id = -1;
	int st = cfg->tick_time * cfg->sync_limit;
	cm->socket_timeout_ms = st > 0 ? st : CNX_CONNECT_TIMEOUT_MS;
	format_address(cm->my_address, sizeof cm->my_address, me->host, me->election_port);
	for (int i = 0; i < CNX_MAX_CONNS; i++)
		cm->conns[i].fd = -1;
	pthread_mutex_init(&cm->mu, NULL);
	cm->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cm->wake_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		pthread_mutex_destroy(&cm->mu);
		free(cm);
		return NULL;
	}
	for (int tries = 0;;) {
		cm->listen_fd = bind_once(cm, me, err, errlen);
		if (cm->listen_fd >= 0)
			break;
		tries++;
		if (cfg->election_bind_retries > 0 && tries >= cfg->election_bind_retries) {
			cnx_destroy(cm);
			return NULL;
		}
		log_warn("election: %s; retrying in %d ms (attempt %d)", err, CNX_BIND_RETRY_MS, tries);
		usleep(CNX_BIND_RETRY_MS * 1000);
	}
	log_info("election: sid %lld accepting connections on %s%s", (long long)cfg->myid,
		 cfg->listen_on_all_ips ? "all addresses, port of " : "", cm->my_address);
	int n = 0;
	for (int i = 0; i < cfg->n; i++) {
		const struct quorum_member *m = &cfg->members[i];
		if (m->sid == cfg->myid)
			continue;
		struct cnx_peer *p = &cm->peers[n++];
		p->used = true;
		p->member = true;
		p->sid = m->sid;
		snprintf(p->host, sizeof p->host, "%s", m->host);
		p->port = m->election_port;
		resolve_blocking(p);
	}
	return cm;
}

void cnx_destroy(struct cnxmgr *cm)
{
	if (!cm)
		return;
	for (int i = 0; i < CNX_MAX_CONNS; i++)
		if (cm->conns[i].st != CONN_FREE)
			conn_close(cm, &cm->conns[i], LOG_DEBUG, NULL);
	for (int i = 0; i < CNX_MAX_PEERS; i++) {
		struct cnx_peer *p = &cm->peers[i];
		if (p->lookup)
			lookup_release(p->lookup);     /* the lookup thread frees it if still running */
		peer_release_buffers(p);
	}
	if (cm->listen_fd >= 0)
		close(cm->listen_fd);
	close(cm->wake_fd);
	pthread_mutex_destroy(&cm->mu);
	free(cm);
}
