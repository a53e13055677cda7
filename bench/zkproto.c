/*
 * zkproto.c - request encoders, address parsing and the blocking client.
 *
 * Design: every encoder is "reserve the length, write the records from
 * net/records.h, patch the length", so a frame is built in place in the
 * output buffer with no intermediate copy. The blocking client sets
 * SO_RCVTIMEO/SO_SNDTIMEO once, so no call in the setup or teardown path can
 * hang a run: a server that stops answering turns into an error message.
 * With --tls the blocking client runs TLS over the same blocking socket
 * (SSL_read/SSL_write obey the same timeouts).
 */
#include "zkproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static size_t frame_begin(struct jute_writer *w)
{
	size_t at = w->len;
	jute_write_int(w, 0);
	return at;
}

static void frame_end(struct jute_writer *w, size_t at)
{
	jute_patch_int(w, at, (int32_t)(w->len - at - 4));
}

static void req_header(struct jute_writer *w, int32_t xid, int32_t type)
{
	struct rec_request_header h = { xid, type };
	rec_write_request_header(w, &h);
}

/* OPEN_ACL_UNSAFE: the bench measures the data path, not ACL checks. */
static void open_acl(struct jute_writer *w)
{
	jute_write_int(w, 1);
	rec_write_acl(w, ZPERM_ALL, "world", "anyone");
}

void zkp_connect_req(struct jute_writer *w, int32_t timeout_ms)
{
	static const uint8_t zero_pw[16];
	struct rec_connect_req c = {
		.protocol_version = 0, .last_zxid_seen = 0, .timeout = timeout_ms,
		.session_id = 0, .passwd = { zero_pw, 16 }, .read_only = false,
	};
	size_t at = frame_begin(w);
	rec_write_connect_req(w, &c);
	frame_end(w, at);
}

static void path_watch(struct jute_writer *w, int32_t xid, int32_t op, const char *path)
{
	size_t at = frame_begin(w);
	req_header(w, xid, op);
	jute_write_string(w, path);
	jute_write_bool(w, false);
	frame_end(w, at);
}

void zkp_get(struct jute_writer *w, int32_t xid, const char *path) { path_watch(w, xid, ZOP_GETDATA, path); }
void zkp_exists(struct jute_writer *w, int32_t xid, const char *path) { path_watch(w, xid, ZOP_EXISTS, path); }
void zkp_children(struct jute_writer *w, int32_t xid, const char *path) { path_watch(w, xid, ZOP_GETCHILDREN, path); }

void zkp_set(struct jute_writer *w, int32_t xid, const char *path, const void *data, int32_t len)
{
	size_t at = frame_begin(w);
	req_header(w, xid, ZOP_SETDATA);
	jute_write_string(w, path);
	jute_write_buffer(w, data, len);
	jute_write_int(w, -1);              /* any version */
	frame_end(w, at);
}

static void create_body(struct jute_writer *w, const char *path, const void *data, int32_t len, int32_t flags)
{
	jute_write_string(w, path);
	jute_write_buffer(w, data, len);
	open_acl(w);
	jute_write_int(w, flags);
}

void zkp_create(struct jute_writer *w, int32_t xid, const char *path, const void *data,
		int32_t len, int32_t flags)
{
	size_t at = frame_begin(w);
	req_header(w, xid, ZOP_CREATE);
	create_body(w, path, data, len, flags);
	frame_end(w, at);
}

void zkp_delete(struct jute_writer *w, int32_t xid, const char *path)
{
	size_t at = frame_begin(w);
	req_header(w, xid, ZOP_DELETE);
	jute_write_string(w, path);
	jute_write_int(w, -1);
	frame_end(w, at);
}

void zkp_ping(struct jute_writer *w)
{
	size_t at = frame_begin(w);
	req_header(w, ZXID_PING, ZOP_PING);
	frame_end(w, at);
}

void zkp_close(struct jute_writer *w, int32_t xid)
{
	size_t at = frame_begin(w);
	req_header(w, xid, ZOP_CLOSE);
	frame_end(w, at);
}

void zkp_multi_cds(struct jute_writer *w, int32_t xid, const char *tmp, const char *key,
		   const void *data, int32_t len)
{
	size_t at = frame_begin(w);
	req_header(w, xid, ZOP_MULTI);
	struct rec_multi_header mh = { ZOP_CREATE, false, -1 };
	rec_write_multi_header(w, &mh);
	create_body(w, tmp, NULL, 0, ZCM_PERSISTENT);
	mh.type = ZOP_DELETE;
	rec_write_multi_header(w, &mh);
	jute_write_string(w, tmp);
	jute_write_int(w, -1);
	mh.type = ZOP_SETDATA;
	rec_write_multi_header(w, &mh);
	jute_write_string(w, key);
	jute_write_buffer(w, data, len);
	jute_write_int(w, -1);
	mh = (struct rec_multi_header){ -1, true, -1 };
	rec_write_multi_header(w, &mh);
	frame_end(w, at);
}

int zkp_parse_addrs(const char *spec, struct sockaddr_in *out, int max, char *err, size_t errlen)
{
	int n = 0;
	const char *p = spec;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char item[128];
		if (len == 0 || len >= sizeof item) {
			snprintf(err, errlen, "bad address list '%s'", spec);
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		char *colon = strrchr(item, ':');
		char *tail = NULL;
		long port = colon ? strtol(colon + 1, &tail, 10) : 0;
		if (!colon || !tail || *tail || port <= 0 || port > 65535) {
			snprintf(err, errlen, "'%s': expected host:port", item);
			return -1;
		}
		*colon = '\0';
		if (n == max) {
			snprintf(err, errlen, "too many addresses in '%s' (at most %d)", spec, max);
			return -1;
		}
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		const char *host = !strcmp(item, "localhost") ? "127.0.0.1" : item;
		if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
			snprintf(err, errlen, "'%s': not an IPv4 address (the bench talks to loopback only)", item);
			return -1;
		}
		out[n++] = a;
		p += len;
		if (*p == ',')
			p++;
	}
	if (n == 0)
		snprintf(err, errlen, "empty address list");
	return n ? n : -1;
}

/* ---- TLS ------------------------------------------------------------------ */

struct ssl_ctx_st *zkp_tls;

void zkp_tls_error(char *buf, size_t n, int ssl_err)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, n);
	else if (ssl_err == SSL_ERROR_SYSCALL && errno)
		snprintf(buf, n, "%s", strerror(errno));
	else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, n, "connection closed during TLS");
	else
		snprintf(buf, n, "TLS error %d", ssl_err);
	ERR_clear_error();
}

struct ssl_ctx_st *zkp_tls_ctx(const struct zkp_tls_opts *o, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		zkp_tls_error(err, errlen, 0);
		return NULL;
	}
	int v = o->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
	SSL_CTX_set_min_proto_version(ctx, v);
	SSL_CTX_set_max_proto_version(ctx, v);
	/* Every connection a full handshake: what a client that does not keep
	 * sessions (as ZooKeeper's Java and C clients do not) costs a server. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* Appending requests may move the output buffer between a write that
	 * would block and its retry; partial writes keep the retry simple. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	if (o->ca) {
		if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
			char e[200];
			zkp_tls_error(e, sizeof e, 0);
			snprintf(err, errlen, "--tls-ca %s: %s", o->ca, e);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (o->cert || o->key) {
		const char *cert = o->cert ? o->cert : o->key, *key = o->key ? o->key : o->cert;
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			char e[200];
			zkp_tls_error(e, sizeof e, 0);
			snprintf(err, errlen, "--tls-cert %s / --tls-key %s: %s", cert, key, e);
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct ssl_st *zkp_tls_new(struct ssl_ctx_st *ctx, int fd, const struct sockaddr_in *dst)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &dst->sin_addr, a, sizeof a);
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), a);
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

void zkp_tls_describe(struct ssl_st *ssl, char *buf, size_t n)
{
	int g = SSL_get_negotiated_group(ssl);
	const char *gn = g ? OBJ_nid2sn(g & ~TLSEXT_nid_unknown) : NULL;
	snprintf(buf, n, "%s %s%s%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		 gn ? " " : "", gn ? gn : "");
}

/* ---- the blocking client ------------------------------------------------ */

static int send_all(struct zkp_sync *s, const uint8_t *p, size_t len)
{
	int fd = s->fd;
	while (len > 0) {
		if (s->ssl) {
			size_t k;
			if (SSL_write_ex(s->ssl, p, len, &k) != 1)
				return -1;
			p += k;
			len -= k;
			continue;
		}
		ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

/* Makes sure `in` holds at least `need` unconsumed bytes. */
static int fill(struct zkp_sync *s, size_t need)
{
	if (s->consumed > 0) {
		memmove(s->in, s->in + s->consumed, s->in_len - s->consumed);
		s->in_len -= s->consumed;
		s->consumed = 0;
	}
	if (need > s->in_cap) {
		size_t cap = s->in_cap ? s->in_cap : 65536;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(s->in, cap);
		if (!p)
			return -1;
		s->in = p;
		s->in_cap = cap;
	}
	while (s->in_len < need) {
		if (s->ssl) {
			size_t k;
			if (SSL_read_ex(s->ssl, s->in + s->in_len, s->in_cap - s->in_len, &k) != 1)
				return -1;
			s->in_len += k;
			continue;
		}
		ssize_t k = recv(s->fd, s->in + s->in_len, s->in_cap - s->in_len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		s->in_len += (size_t)k;
	}
	return 0;
}

/* The next frame's payload; valid until the next call. */
static int next_frame(struct zkp_sync *s, const uint8_t **p, size_t *len)
{
	if (fill(s, 4) != 0)
		return -1;
	uint32_t n = jute_get_u32(s->in);
	if (n > ZKP_MAX_FRAME)
		return -1;
	if (fill(s, 4 + (size_t)n) != 0)
		return -1;
	*p = s->in + 4;
	*len = n;
	s->consumed = 4 + (size_t)n;
	return 0;
}

int zkp_sync_open(struct zkp_sync *s, const struct sockaddr_in *dst, int32_t session_timeout_ms,
		  int io_timeout_ms, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	struct timeval tv = { io_timeout_ms / 1000, (io_timeout_ms % 1000) * 1000 };
	int one = 1;
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char addr[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &dst->sin_addr, addr, sizeof addr);
	if (connect(s->fd, (const struct sockaddr *)dst, sizeof *dst) != 0) {
		snprintf(err, errlen, "connect %s:%d: %s", addr, ntohs(dst->sin_port), strerror(errno));
		goto fail;
	}
	if (zkp_tls) {
		s->ssl = zkp_tls_new(zkp_tls, s->fd, dst);
		int rc = s->ssl ? SSL_connect(s->ssl) : -1;
		if (rc != 1) {
			char e[200];
			zkp_tls_error(e, sizeof e, s->ssl ? SSL_get_error(s->ssl, rc) : 0);
			snprintf(err, errlen, "%s:%d: TLS handshake: %s", addr, ntohs(dst->sin_port), e);
			goto fail;
		}
	}
	struct jute_writer w;
	jute_writer_init(&w, 128);
	zkp_connect_req(&w, session_timeout_ms);
	int rc = send_all(s, w.buf, w.len);
	jute_writer_free(&w);
	const uint8_t *p;
	size_t len;
	if (rc != 0 || next_frame(s, &p, &len) != 0) {
		snprintf(err, errlen, "%s:%d: no session handshake (%s)", addr, ntohs(dst->sin_port),
			 errno ? strerror(errno) : "closed");
		goto fail;
	}
	struct jute_reader r;
	struct rec_connect_resp cr;
	jute_reader_init(&r, p, len, ZKP_MAX_FRAME);
	if (rec_read_connect_resp(&r, &cr) != 0 || cr.session_id == 0) {
		snprintf(err, errlen, "%s:%d: session refused", addr, ntohs(dst->sin_port));
		goto fail;
	}
	s->session_id = cr.session_id;
	s->timeout_ms = cr.timeout;
	s->xid = 1;
	return 0;
fail:
	SSL_free(s->ssl);
	s->ssl = NULL;
	close(s->fd);
	s->fd = -1;
	free(s->in);
	s->in = NULL;
	return -1;
}

int zkp_sync_send(struct zkp_sync *s, struct jute_writer *w)
{
	int rc = w->err ? -1 : send_all(s, w->buf, w->len);
	w->len = 0;
	return rc;
}

int zkp_sync_recv(struct zkp_sync *s, struct zkp_reply *out)
{
	for (;;) {
		const uint8_t *p;
		size_t len;
		if (next_frame(s, &p, &len) != 0)
			return -1;
		jute_reader_init(&out->body, p, len, ZKP_MAX_FRAME);
		if (rec_read_reply_header(&out->body, &out->h) != 0)
			return -1;
		if (out->h.xid == ZXID_PING || out->h.xid == ZXID_NOTIFICATION)
			continue;
		return 0;
	}
}

int32_t zkp_sync_xid(struct zkp_sync *s)
{
	int32_t x = s->xid++;
	if (s->xid <= 0)
		s->xid = 1;
	return x;
}

void zkp_sync_close(struct zkp_sync *s)
{
	if (s->fd < 0)
		return;
	struct jute_writer w;
	jute_writer_init(&w, 64);
	zkp_close(&w, zkp_sync_xid(s));
	if (zkp_sync_send(s, &w) == 0) {
		struct zkp_reply r;
		(void)zkp_sync_recv(s, &r);
	}
	jute_writer_free(&w);
	if (s->ssl) {
		SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	close(s->fd);
	s->fd = -1;
	free(s->in);
	s->in = NULL;
}
