/*
 * http.c - the small HTTP/1.x server behind the operator endpoints
 * (http.h says what it serves and why it is one thread).
 *
 * Why it is built this way:
 *  - One poll loop per server, every socket non-blocking. The endpoints are
 *    read by a monitoring system every few seconds, so throughput does not
 *    matter; what matters is that one bad client (never finishing its
 *    request, never reading the answer, sending garbage) costs nothing but
 *    its own connection. Each connection has a deadline for its request and
 *    one for its answer, and a cap on the request's size; past either it is
 *    answered with an error (if it can still be) or closed.
 *  - One request per connection, answered with "Connection: close". Keeping
 *    connections alive would save a scraper a handshake every 15 s at the
 *    cost of tracking idle connections; HTTP/1.1 lets the server close.
 *  - After the answer the connection is half-closed and read until the
 *    client closes (bounded): closing with unread bytes in the socket would
 *    send a reset, which may destroy an error answer before the client
 *    reads it.
 *  - Bodies come with Content-Length only; chunked uploads are refused
 *    (501). Nothing here needs a body, but POSTs must not confuse framing.
 *
 * Threads: the server's own thread owns every connection, the buffers and
 * the poll set; nothing else touches them. http_stop (another thread) only
 * writes the wake pipe and joins. http_port reads a field set before the
 * thread starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "http.h"
#include "log.h"

#define HTTP_MAX_REQUEST (64 * 1024)   /* head and body together */
#define HTTP_REQUEST_MS 10000          /* to send the whole request */
#define HTTP_ANSWER_MS 30000           /* to read the whole answer */
#define HTTP_LINGER_MS 2000            /* to close after the answer */
#define HTTP_MAX_CONNS 128             /* more wait in the listen backlog */
#define HTTP_ACCEPT_PAUSE_MS 200       /* after accept ran out of descriptors */

enum conn_state { C_READ, C_WRITE, C_LINGER };

struct http_conn {
	int fd;
	enum conn_state state;
	int64_t deadline;          /* monotonic ms */
	char peer[64];
	char *in;                  /* the request so far, NUL-terminated */
	size_t in_len;
	size_t head_len;           /* 0 until the head is whole and parsed */
	size_t body_len;           /* its Content-Length */
	struct http_request req;   /* once parsed: pointers into `in` */
	struct outbuf out;         /* status line, headers and body */
	size_t out_off;            /* bytes of out already sent */
	const char *server;        /* the server's name, for log lines */
};

struct http_server {
	char name[16];
	int listen_fd;
	int wake[2];               /* http_stop writes, the thread reads */
	int port;
	http_handler handler;
	void *ctx;
	pthread_t thread;
	struct http_conn *conns[HTTP_MAX_CONNS];
	int n_conns;
	/* out of descriptors or memory: the listener is not polled until
	 * then (monotonic ms), or poll would report it ready in a busy loop */
	int64_t accept_paused_until;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 505: return "HTTP Version Not Supported";
	default:  return status < 400 ? "OK" : "Error";
	}
}

/* ---- answers ------------------------------------------------------------ */

static void set_answer(struct http_conn *c, int status, const char *content_type, const char *body,
		       size_t body_len, bool head_only)
{
	ob_free(&c->out);
	ob_printf(&c->out,
		  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		  "Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
		  status, reason(status), content_type, body_len,
		  status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head_only && body_len)
		ob_write(&c->out, body, body_len);
	c->out_off = 0;
	c->state = C_WRITE;
	c->deadline = mono_ms() + HTTP_ANSWER_MS;
}

static void answer_error(struct http_conn *c, int status, const char *why)
{
	char body[256];
	int n = snprintf(body, sizeof body, "%d %s: %s\n", status, reason(status), why);
	log_info("%s: client %s: answered %d: %s", c->server, c->peer, status, why);
	set_answer(c, status, "text/plain; charset=utf-8", body, (size_t)n, false);
}

/* ---- parsing -------------------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Decodes %XX in place (and '+' as space if plus_space); false on a bad
 * escape or an encoded NUL, which no path or argument may hold. */
static bool pct_decode(char *s, bool plus_space)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (*r == '%') {
			int hi = hexval((unsigned char)r[1]), lo = hi < 0 ? -1 : hexval((unsigned char)r[2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return false;
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w++ = plus_space && *r == '+' ? ' ' : *r;
		}
	}
	*w = '\0';
	return true;
}

bool http_query_param(const char *query, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		if (klen == nlen && memcmp(p, name, nlen) == 0) {
			size_t vlen = eq ? len - klen - 1 : 0;
			if (vlen >= outlen)
				return false;
			memcpy(out, eq ? eq + 1 : "", vlen);
			out[vlen] = '\0';
			return pct_decode(out, true);
		}
		p = amp ? amp + 1 : p + len;
	}
	return false;
}

/* Where the head ends (the byte after its blank line), 0 if not yet. Bare
 * LF line ends are taken too, as most servers do. */
static size_t head_end(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\n')
			continue;
		if (s[i + 1] == '\n')
			return i + 2;
		if (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Splits the next line off *p (the head is NUL-terminated); NULL at the end. */
static char *next_line(char **p)
{
	char *s = *p;
	if (!*s)
		return NULL;
	char *nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = s + strlen(s);
	}
	size_t n = strlen(s);
	if (n && s[n - 1] == '\r')
		s[n - 1] = '\0';
	return s;
}

/* Parses the head (the request line and headers) in place, once it is
 * whole: c->req points into it afterwards, and the body after it stays
 * untouched. Returns 0 when more bytes are needed, 1 when parsed, -1 when
 * answered with an error. */
static int parse_head(struct http_conn *c)
{
	size_t hend = head_end(c->in, c->in_len);
	if (!hend) {
		if (c->in_len >= HTTP_MAX_REQUEST) {
			answer_error(c, 431, "request head too large");
			return -1;
		}
		return 0;
	}
	char saved = c->in[hend];
	c->in[hend] = '\0';
	char *p = c->in;
	char *line = next_line(&p);
	if (line && !*line)            /* a stray CRLF before the request line (RFC 9112 2.2) */
		line = next_line(&p);
	if (!line) {
		answer_error(c, 400, "no request line");
		return -1;
	}

	/* METHOD SP target SP HTTP/1.x */
	char *method = line;
	char *sp1 = strchr(line, ' ');
	char *target = sp1 ? sp1 + 1 : NULL;
	char *sp2 = target ? strchr(target, ' ') : NULL;
	char *version = sp2 ? sp2 + 1 : NULL;
	if (!sp1 || !sp2 || strchr(version, ' ')) {
		answer_error(c, 400, "malformed request line");
		return -1;
	}
	*sp1 = *sp2 = '\0';
	if (!*method) {
		answer_error(c, 400, "malformed method");
		return -1;
	}
	for (const char *m = method; *m; m++)
		if (!is_tchar((unsigned char)*m)) {
			answer_error(c, 400, "malformed method");
			return -1;
		}
	if (strncmp(version, "HTTP/", 5) != 0 || !version[5]) {
		answer_error(c, 400, "malformed HTTP version");
		return -1;
	}
	if (strcmp(version, "HTTP/1.0") != 0 && strcmp(version, "HTTP/1.1") != 0) {
		answer_error(c, 505, "only HTTP/1.0 and HTTP/1.1");
		return -1;
	}
	for (const char *t = target; *t; t++)
		if ((unsigned char)*t <= ' ' || *t == 0x7f) {
			answer_error(c, 400, "malformed request target");
			return -1;
		}
	/* absolute-form (RFC 9112 3.2.2): the path is what follows the authority */
	if (!strncasecmp(target, "http://", 7) || !strncasecmp(target, "https://", 8)) {
		char *slash = strchr(strstr(target, "//") + 2, '/');
		target = slash ? slash : (char *)"/";
	}
	if (target[0] != '/') {
		answer_error(c, 400, "request target must be a path");
		return -1;
	}

	long long content_length = -1;
	const char *authorization = "";
	while ((line = next_line(&p)) != NULL) {
		if (!*line)
			break;             /* the blank line that ends the head */
		if (line[0] == ' ' || line[0] == '\t') {
			answer_error(c, 400, "folded header lines are not allowed");
			return -1;
		}
		char *colon = strchr(line, ':');
		if (!colon || colon == line) {
			answer_error(c, 400, "malformed header line");
			return -1;
		}
		*colon = '\0';
		for (const char *h = line; *h; h++)
			if (!is_tchar((unsigned char)*h)) {
				answer_error(c, 400, "malformed header name");
				return -1;
			}
		char *value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		size_t vlen = strlen(value);
		while (vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
			value[--vlen] = '\0';
		if (!strcasecmp(line, "Content-Length")) {
			char *end = value;
			errno = 0;
			long long n = (value[0] >= '0' && value[0] <= '9') ? strtoll(value, &end, 10) : -1;
			if (n < 0 || errno || *end || (content_length >= 0 && content_length != n)) {
				answer_error(c, 400, "bad Content-Length");
				return -1;
			}
			content_length = n;
		} else if (!strcasecmp(line, "Transfer-Encoding")) {
			answer_error(c, 501, "Transfer-Encoding is not supported; send Content-Length");
			return -1;
		} else if (!strcasecmp(line, "Authorization")) {
			authorization = value;
		}
	}
	if (content_length < 0)
		content_length = 0;
	if ((unsigned long long)content_length > HTTP_MAX_REQUEST - hend) {
		answer_error(c, 413, "request too large");
		return -1;
	}

	char *query = strchr(target, '?');
	if (query)
		*query++ = '\0';
	char *frag = strchr(query ? query : target, '#');
	if (frag)
		*frag = '\0';
	if (!pct_decode(target, false)) {
		answer_error(c, 400, "malformed percent-encoding in path");
		return -1;
	}
	c->in[hend] = saved;
	c->head_len = hend;
	c->body_len = (size_t)content_length;
	c->req = (struct http_request){
		.method = method,
		.path = target,
		.query = query ? query : "",
		.authorization = authorization,
	};
	return 1;
}

/* Answers the request in c->in once it is whole. Returns 0 when more bytes
 * are needed, 1 when an answer is set. */
static int try_request(struct http_server *srv, struct http_conn *c)
{
	if (!c->head_len) {
		int rc = parse_head(c);
		if (rc <= 0)
			return rc < 0;
	}
	if (c->in_len < c->head_len + c->body_len)
		return 0;
	struct http_request req = c->req;
	req.body = c->in + c->head_len;
	req.body_len = c->body_len;
	/* NUL-terminated for handlers that read it as text; what a client sent
	 * past it is not read (one request per connection) */
	c->in[c->head_len + c->body_len] = '\0';
	bool head = !strcmp(req.method, "HEAD");
	if (head)
		req.method = "GET";   /* answered as GET, without the body */
	struct http_response resp = { .status = 200, .content_type = NULL, .body = OUTBUF_INIT };
	srv->handler(srv->ctx, &req, &resp);
	if (resp.body.failed) {
		answer_error(c, 500, "out of memory building the answer");
	} else {
		set_answer(c, resp.status, resp.content_type ? resp.content_type : "text/plain; charset=utf-8",
			   resp.body.buf ? resp.body.buf : "", resp.body.len, head);
		if (c->out.failed)
			answer_error(c, 500, "out of memory sending the answer");
	}
	ob_free(&resp.body);
	return 1;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_close(struct http_server *srv, int i)
{
	struct http_conn *c = srv->conns[i];
	close(c->fd);
	free(c->in);
	ob_free(&c->out);
	free(c);
	srv->conns[i] = srv->conns[--srv->n_conns];
}

static void conn_accept(struct http_server *srv)
{
	while (srv->n_conns < HTTP_MAX_CONNS) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof sa;
		int fd = accept4(srv->listen_fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warn("%s: accept: %s; not accepting for %d ms", srv->name, strerror(errno),
					 HTTP_ACCEPT_PAUSE_MS);
				srv->accept_paused_until = mono_ms() + HTTP_ACCEPT_PAUSE_MS;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
				   errno != ECONNABORTED) {
				log_warn("%s: accept: %s", srv->name, strerror(errno));
			}
			return;
		}
		struct http_conn *c = calloc(1, sizeof *c);
		char *in = malloc(HTTP_MAX_REQUEST + 1);
		if (!c || !in) {
			free(c);
			free(in);
			close(fd);
			log_warn("%s: out of memory accepting a connection", srv->name);
			return;
		}
		c->fd = fd;
		c->server = srv->name;
		c->in = in;
		c->in[0] = '\0';
		c->state = C_READ;
		c->deadline = mono_ms() + HTTP_REQUEST_MS;
		char host[48] = "?", port[8] = "?";
		getnameinfo((struct sockaddr *)&sa, salen, host, sizeof host, port, sizeof port,
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(c->peer, sizeof c->peer, "%s:%s", host, port);
		srv->conns[srv->n_conns++] = c;
	}
}

/* Reads what is there; false when the connection is finished with. */
static bool conn_read(struct http_server *srv, struct http_conn *c)
{
	for (;;) {
		if (c->state == C_LINGER) {
			char sink[4096];
			ssize_t n = read(c->fd, sink, sizeof sink);
			if (n > 0)
				continue;
			return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
		}
		if (c->state != C_READ)
			return true;
		size_t room = HTTP_MAX_REQUEST - c->in_len;
		if (room == 0) {
			/* full and still incomplete: try_request has answered by now */
			return true;
		}
		ssize_t n = read(c->fd, c->in + c->in_len, room);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		if (n == 0) {
			/* the client gave up before its request was whole */
			return false;
		}
		c->in_len += (size_t)n;
		c->in[c->in_len] = '\0';
		if (try_request(srv, c))
			return true;
	}
}

/* Sends what it can; false when the connection is finished with. */
static bool conn_write(struct http_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.buf + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		c->out_off += (size_t)n;
	}
	shutdown(c->fd, SHUT_WR);
	ob_free(&c->out);
	c->state = C_LINGER;
	c->deadline = mono_ms() + HTTP_LINGER_MS;
	return true;
}

static void *http_main(void *arg)
{
	struct http_server *srv = arg;
	log_thread_name(srv->name);
	rcu_register_thread();
	struct pollfd pfd[HTTP_MAX_CONNS + 2];
	for (;;) {
		int64_t now = mono_ms();
		int timeout = -1;
		for (int i = 0; i < srv->n_conns;) {
			struct http_conn *c = srv->conns[i];
			if (c->deadline <= now) {
				if (c->state == C_READ && c->in_len > 0) {
					/* one last try to tell it why, if its socket takes it */
					answer_error(c, 408, "request not complete in time");
					conn_write(c);
				}
				conn_close(srv, i);
				continue;
			}
			int left = (int)(c->deadline - now);
			if (timeout < 0 || left < timeout)
				timeout = left;
			i++;
		}
		bool accepting = srv->n_conns < HTTP_MAX_CONNS;
		if (srv->accept_paused_until > now) {
			int left = (int)(srv->accept_paused_until - now);
			accepting = false;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		pfd[0] = (struct pollfd){ .fd = srv->wake[0], .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = srv->listen_fd, .events = accepting ? POLLIN : 0 };
		for (int i = 0; i < srv->n_conns; i++)
			pfd[i + 2] = (struct pollfd){ .fd = srv->conns[i]->fd,
						      .events = srv->conns[i]->state == C_WRITE ? POLLOUT : POLLIN };
		int n_polled = srv->n_conns;
		if (poll(pfd, (nfds_t)n_polled + 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("%s: poll: %s", srv->name, strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		/* connections first, from the end, so conn_close's swap with the
		 * last entry never moves one not yet looked at into a done slot */
		for (int i = n_polled - 1; i >= 0; i--) {
			short re = pfd[i + 2].revents;
			if (!re)
				continue;
			struct http_conn *c = srv->conns[i];
			bool keep = true;
			if (re & (POLLIN | POLLHUP | POLLERR))
				keep = conn_read(srv, c);
			if (keep && c->state == C_WRITE)
				keep = conn_write(c);
			if (!keep || (re & POLLERR) || ((re & POLLHUP) && c->state == C_LINGER))
				conn_close(srv, i);
		}
		if (pfd[1].revents & POLLIN)
			conn_accept(srv);
	}
	while (srv->n_conns)
		conn_close(srv, srv->n_conns - 1);
	rcu_unregister_thread();
	return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

static int listen_on(const char *bind_addr, int port, int *bound, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	char service[8];
	snprintf(service, sizeof service, "%d", port);
	const char *host = bind_addr && *bind_addr ? bind_addr : NULL;
	if (!host)
		hints.ai_family = AF_INET;   /* "all addresses" is 0.0.0.0, as ZooKeeper's default */
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", bind_addr, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	const char *why = "no address";
	int saved = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			why = "socket", saved = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
			break;
		why = "bind", saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "%s %s:%d: %s", why, host ? host : "0.0.0.0", port, strerror(saved));
		return -1;
	}
	struct sockaddr_storage sa;
	socklen_t salen = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &salen);
	char portbuf[8];
	getnameinfo((struct sockaddr *)&sa, salen, NULL, 0, portbuf, sizeof portbuf, NI_NUMERICSERV);
	*bound = atoi(portbuf);
	return fd;
}

struct http_server *http_start(const char *name, const char *bind_addr, int port, http_handler handler,
			       void *ctx, char *err, size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(srv->name, sizeof srv->name, "%s", name);
	srv->handler = handler;
	srv->ctx = ctx;
	srv->wake[0] = srv->wake[1] = -1;
	srv->listen_fd = listen_on(bind_addr, port, &srv->port, err, errlen);
	if (srv->listen_fd < 0)
		goto fail;
	if (pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	int rc = pthread_create(&srv->thread, NULL, http_main, srv);
	if (rc != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		goto fail;
	}
	return srv;
fail:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->wake[0] >= 0) {
		close(srv->wake[0]);
		close(srv->wake[1]);
	}
	free(srv);
	return NULL;
}

int http_port(const struct http_server *s)
{
	return s ? s->port : -1;
}

void http_stop(struct http_server *s)
{
	if (!s)
		return;
	ssize_t n;
	do
		n = write(s->wake[1], "x", 1);
	while (n < 0 && errno == EINTR);
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	close(s->wake[0]);
	close(s->wake[1]);
	free(s);
}
