/*
 * qpacket.c - QuorumPacket encoding and the buffered, deadline-bound stream
 * the quorum connections are read with (see qpacket.h).
 */
#include "qpacket.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "election.h"

const char *qp_name(int type)
{
	static const char *names[] = {
		[QP_REQUEST] = "REQUEST", [QP_PROPOSAL] = "PROPOSAL", [QP_ACK] = "ACK",
		[QP_COMMIT] = "COMMIT", [QP_PING] = "PING", [QP_REVALIDATE] = "REVALIDATE",
		[QP_SYNC] = "SYNC", [QP_INFORM] = "INFORM", [QP_COMMITANDACTIVATE] = "COMMITANDACTIVATE",
		[QP_NEWLEADER] = "NEWLEADER", [QP_FOLLOWERINFO] = "FOLLOWERINFO", [QP_UPTODATE] = "UPTODATE",
		[QP_DIFF] = "DIFF", [QP_TRUNC] = "TRUNC", [QP_SNAP] = "SNAP", [QP_OBSERVERINFO] = "OBSERVERINFO",
		[QP_LEADERINFO] = "LEADERINFO", [QP_ACKEPOCH] = "ACKEPOCH",
		[QP_INFORMANDACTIVATE] = "INFORMANDACTIVATE",
	};
	if (type > 0 && type < (int)(sizeof names / sizeof names[0]) && names[type])
		return names[type];
	return "UNKNOWN";
}

void qp_write(struct jute_writer *w, int32_t type, int64_t zxid, const void *data, int32_t len,
	      const void *auth, size_t auth_len)
{
	jute_write_int(w, type);
	jute_write_long(w, zxid);
	jute_write_buffer(w, data, len);
	if (auth && auth_len)
		jute_write_raw(w, auth, auth_len);
	else
		jute_write_int(w, -1);
}

void qstream_init(struct qstream *s, int fd, int timeout_ms, size_t max_len)
{
	s->fd = fd;
	s->tls = NULL;
	s->timeout_ms = timeout_ms;
	s->max_len = max_len;
	s->off = s->len = 0;
	s->err[0] = '\0';
}

/* ---- TLS (sslQuorum) ------------------------------------------------------------ */

struct qtls {
	SSL *ssl;
	pthread_mutex_t mu;         /* every call on ssl */
	int send_timeout_ms;
};

/* Waits until fd is ready for ev or deadline passes; false on timeout. */
static bool wait_fd(int fd, short ev, int64_t deadline)
{
	int64_t left = deadline - quorum_now_ms();
	if (left <= 0)
		return false;
	struct pollfd pfd = { .fd = fd, .events = ev };
	if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
		return false;
	return true;
}

enum tls_op { TLS_READ, TLS_WRITE, TLS_HANDSHAKE };

/* One SSL call under the lock, and what to wait for next: 1 done (*n
 * bytes), 0 wait for *ev, -1 failed (why). */
static int tls_call(struct qtls *t, enum tls_op op, void *buf, size_t len, size_t *n, short *ev,
		    char *why, size_t whylen)
{
	pthread_mutex_lock(&t->mu);
	ERR_clear_error();
	errno = 0;
	int r = op == TLS_READ ? SSL_read_ex(t->ssl, buf, len, n) :
		op == TLS_WRITE ? SSL_write_ex(t->ssl, buf, len, n) : SSL_do_handshake(t->ssl);
	int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
	int saved = errno;
	char ssl_why[256] = "";
	if (e == SSL_ERROR_SSL)
		net_tls_error(t->ssl, ssl_why, sizeof ssl_why);
	pthread_mutex_unlock(&t->mu);
	switch (e) {
	case SSL_ERROR_NONE:
		return 1;
	case SSL_ERROR_WANT_READ:
		*ev = POLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*ev = POLLOUT;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(why, whylen, "connection closed by peer");
		return -1;
	case SSL_ERROR_SYSCALL:
		snprintf(why, whylen, "%s", saved ? strerror(saved) : "connection closed by peer");
		return -1;
	default:
		snprintf(why, whylen, "TLS: %s", ssl_why[0] ? ssl_why : "protocol error");
		return -1;
	}
}

static int tls_fill(struct qstream *s, int64_t deadline)
{
	for (;;) {
		size_t n = 0;
		short ev = 0;
		int r = tls_call(s->tls, TLS_READ, s->buf + s->len, sizeof s->buf - s->len, &n, &ev, s->err,
				 sizeof s->err);
		if (r == 1) {
			s->len += n;
			return 0;
		}
		if (r < 0)
			return -1;
		if (!wait_fd(s->fd, ev, deadline)) {
			snprintf(s->err, sizeof s->err, "nothing heard for %d ms", s->timeout_ms);
			return -1;
		}
	}
}

static int tls_send_all(int fd, struct qtls *t, const uint8_t *b, size_t len)
{
	int64_t deadline = quorum_now_ms() + t->send_timeout_ms;
	char why[256];
	while (len > 0) {
		size_t n = 0;
		short ev = 0;
		int r = tls_call(t, TLS_WRITE, (void *)b, len, &n, &ev, why, sizeof why);
		if (r == 1) {
			b += n;
			len -= n;
			deadline = quorum_now_ms() + t->send_timeout_ms;   /* progress: as SO_SNDTIMEO counts */
			continue;
		}
		if (r < 0) {
			errno = EPIPE;
			return -1;
		}
		/* a write that waits for input (a TLS 1.3 key update) while
		 * another thread reads: look again soon rather than sleep on an
		 * input the reader will take */
		int64_t until = ev == POLLIN && deadline - quorum_now_ms() > 10 ? quorum_now_ms() + 10 : deadline;
		if (!wait_fd(fd, ev, until) && quorum_now_ms() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

struct qtls *qtls_start(const struct quorum_config *cfg, int fd, bool client, const char *host,
			int timeout_ms, int send_timeout_ms, char *err, size_t errlen)
{
	struct qtls *t = calloc(1, sizeof *t);
	if (!t || !(t->ssl = qtls_ctx_ssl(cfg->tls_ctx, fd, client))) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->send_timeout_ms = send_timeout_ms;
	int64_t deadline = quorum_now_ms() + timeout_ms;
	char why[256];
	for (;;) {
		size_t n;
		short ev = 0;
		int r = tls_call(t, TLS_HANDSHAKE, NULL, 0, &n, &ev, why, sizeof why);
		if (r == 1)
			break;
		if (r < 0) {
			snprintf(err, errlen, "TLS handshake failed: %s", why);
			qtls_free(t);
			return NULL;
		}
		if (!wait_fd(fd, ev, deadline)) {
			snprintf(err, errlen, "TLS handshake not done within %d ms", timeout_ms);
			qtls_free(t);
			return NULL;
		}
	}
	if (cfg->ssl_hostname_verification) {
		const char *names[QUORUM_MAX_MEMBERS];
		int n = 0;
		if (client) {
			names[n++] = host;
		} else {
			/* the server.N hosts that resolve to the peer's address */
			struct sockaddr_storage peer;
			socklen_t pl = sizeof peer;
			if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0) {
				for (int i = 0; i < cfg->n && n < QUORUM_MAX_MEMBERS; i++) {
					struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
					if (getaddrinfo(cfg->members[i].host, NULL, &hints, &res) != 0)
						continue;
					for (ai = res; ai; ai = ai->ai_next)
						if (quorum_same_ip(ai->ai_addr, (struct sockaddr *)&peer))
							break;
					if (ai)
						names[n++] = cfg->members[i].host;
					freeaddrinfo(res);
				}
			}
		}
		if (net_tls_peer_check(t->ssl, names, n, why, sizeof why) != 0) {
			snprintf(err, errlen, "%s", why);
			qtls_free(t);
			return NULL;
		}
	}
	return t;
}

void qtls_free(struct qtls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* Refills the buffer; waits at most until deadline. */
static int fill(struct qstream *s, int64_t deadline)
{
	if (s->off == s->len)
		s->off = s->len = 0;
	if (s->tls)
		return tls_fill(s, deadline);
	for (;;) {
		ssize_t n = recv(s->fd, s->buf + s->len, sizeof s->buf - s->len, MSG_DONTWAIT);
		if (n > 0) {
			s->len += (size_t)n;
			return 0;
		}
		if (n == 0) {
			snprintf(s->err, sizeof s->err, "connection closed by peer");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(s->err, sizeof s->err, "read: %s", strerror(errno));
			return -1;
		}
		int64_t left = deadline - quorum_now_ms();
		if (left <= 0) {
			snprintf(s->err, sizeof s->err, "nothing heard for %d ms", s->timeout_ms);
			return -1;
		}
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			snprintf(s->err, sizeof s->err, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

int qstream_read(struct qstream *s, void *out, size_t n)
{
	int64_t deadline = quorum_now_ms() + s->timeout_ms;
	uint8_t *o = out;
	while (n > 0) {
		if (s->off == s->len && fill(s, deadline) != 0)
			return -1;
		size_t take = s->len - s->off < n ? s->len - s->off : n;
		memcpy(o, s->buf + s->off, take);
		s->off += take;
		o += take;
		n -= take;
	}
	return 0;
}

int qstream_read_int(struct qstream *s, int32_t *v)
{
	uint8_t b[4];
	if (qstream_read(s, b, 4) != 0)
		return -1;
	*v = qp_get_int(b);
	return 0;
}

int qstream_read_long(struct qstream *s, int64_t *v)
{
	uint8_t b[8];
	if (qstream_read(s, b, 8) != 0)
		return -1;
	*v = qp_get_long(b);
	return 0;
}

/* A length-prefixed buffer appended (prefix included) to w, or read into
 * *out when out is given. */
static int read_buffer(struct qstream *s, struct jute_writer *w, uint8_t **out, int32_t *len)
{
	int32_t n;
	if (qstream_read_int(s, &n) != 0)
		return -1;
	if (n < -1 || (n > 0 && (size_t)n > s->max_len)) {
		snprintf(s->err, sizeof s->err, "buffer length %d out of bounds", n);
		return -1;
	}
	if (w)
		jute_write_int(w, n);
	if (len)
		*len = n;
	if (n <= 0)
		return 0;
	uint8_t *b = malloc((size_t)n);
	if (!b) {
		snprintf(s->err, sizeof s->err, "out of memory");
		return -1;
	}
	if (qstream_read(s, b, (size_t)n) != 0) {
		free(b);
		return -1;
	}
	if (w)
		jute_write_raw(w, b, (size_t)n);
	if (out)
		*out = b;
	else
		free(b);
	return 0;
}

int qp_read(struct qstream *s, struct qpacket *p)
{
	memset(p, 0, sizeof *p);
	if (qstream_read_int(s, &p->type) != 0 || qstream_read_long(s, &p->zxid) != 0 ||
	    read_buffer(s, NULL, &p->data, &p->len) != 0)
		goto fail;
	int32_t count;
	if (qstream_read_int(s, &count) != 0)
		goto fail;
	if (count < -1 || count > 64) {
		snprintf(s->err, sizeof s->err, "authinfo count %d out of bounds", count);
		goto fail;
	}
	if (count > 0) {
		struct jute_writer w;
		jute_writer_init(&w, 64);
		jute_write_int(&w, count);
		for (int32_t i = 0; i < count; i++) {
			if (read_buffer(s, &w, NULL, NULL) != 0 || read_buffer(s, &w, NULL, NULL) != 0) {
				jute_writer_free(&w);
				goto fail;
			}
		}
		p->auth = jute_writer_take(&w, &p->auth_len);
	}
	return 0;
fail:
	qp_free(p);
	return -1;
}

void qp_free(struct qpacket *p)
{
	free(p->data);
	free(p->auth);
	p->data = p->auth = NULL;
}

int qp_send_all(int fd, struct qtls *tls, const void *p, size_t len)
{
	const uint8_t *b = p;
	if (tls)
		return tls_send_all(fd, tls, b, len);
	while (len > 0) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

void qp_socket_setup(int fd, int send_timeout_ms)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = { send_timeout_ms / 1000, (send_timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int qp_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	rc = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rc != 0 && errno == EINPROGRESS) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (poll(&pfd, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && !soerr) {
			rc = 0;
		} else {
			errno = soerr ? soerr : ETIMEDOUT;
			rc = -1;
		}
	}
	if (rc != 0) {
		snprintf(err, errlen, "connect %s:%d: %s", host, port, strerror(errno));
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int qp_listen(const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
		snprintf(err, errlen, "listen on %s:%d: %s", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}
