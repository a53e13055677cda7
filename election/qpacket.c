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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
	s->timeout_ms = timeout_ms;
	s->max_len = max_len;
	s->off = s->len = 0;
	s->err[0] = '\0';
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Refills the buffer; waits at most until deadline. */
static int fill(struct qstream *s, int64_t deadline)
{
	if (s->off == s->len)
		s->off = s->len = 0;
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
		int64_t left = deadline - now_ms();
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
	int64_t deadline = now_ms() + s->timeout_ms;
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

int qp_send_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
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
