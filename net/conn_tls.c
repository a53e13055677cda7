/*
 * conn_tls.c - the TLS connection type: the conn.h vtable over one OpenSSL
 * SSL object on a non-blocking socket.
 *
 * Nothing here ever waits. Every SSL call runs with an empty error queue
 * (cleared first, so a reason read afterwards is this call's), and its
 * outcome is mapped onto conn.h's terms:
 *
 *   WANT_READ / WANT_WRITE  -> EAGAIN (or CONN_HS_AGAIN) with s->wants set to
 *                              the readiness OpenSSL is waiting for; the
 *                              loop re-arms epoll for exactly that. A read can
 *                              want writability (TLSv1.3 key updates, alerts
 *                              to flush) and a write readability, which the
 *                              loop honours because `wants` is reported, not
 *                              assumed.
 *   ZERO_RETURN, bare EOF   -> 0 from read: the peer ended the stream.
 *   anything else           -> -1 / CONN_HS_ERROR; why() gives OpenSSL's
 *                              reason (and the certificate check's verdict),
 *                              and the connection is closed without a
 *                              close_notify, which OpenSSL forbids after a
 *                              fatal error.
 *
 * The handshake runs step by step from the event loop (loop.c) as the
 * socket becomes ready; loop.c also bounds how long it may take.
 *
 * Writes: OpenSSL wants a write that returned WANT_* to be repeated with
 * the same bytes. The loop always retries from the first unsent byte of its
 * output buffer, which may meanwhile have grown and moved (realloc,
 * compaction) but still starts with the same bytes, which is exactly what
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER and SSL_MODE_ENABLE_PARTIAL_WRITE
 * (set in tls_ctx.c) allow.
 *
 * Reads: decrypted bytes and read-ahead records may stay inside OpenSSL
 * after a read; has_pending tells the loop so, because epoll never will.
 *
 * The socket is driven through a small BIO of our own instead of OpenSSL's
 * socket BIO only so that writes use MSG_NOSIGNAL: a vanished peer must
 * cost its own connection an EPIPE, never the process a SIGPIPE.
 *
 * Threads: a struct tls_sock belongs to the I/O thread that owns the
 * connection (conn.h); only the SSL_CTX behind it is shared, and OpenSSL
 * reference-counts it.
 */
#include "tls.h"

#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

struct tls_sock {
	SSL *ssl;
	int fd;
	bool eof;           /* the BIO read end of stream */
	bool established;   /* the handshake finished */
	bool failed;        /* a fatal error: close without close_notify */
	char why[192];      /* the last failure, for the loop's log line */
};

/* ---- the socket BIO ------------------------------------------------------ */

static int bio_write(BIO *b, const char *buf, int len)
{
	struct tls_sock *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct tls_sock *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(t->fd, buf, (size_t)len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	if (n == 0)
		t->eof = true;
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_sock *t = BIO_get_data(b);
	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;       /* nothing is buffered here */
	case BIO_CTRL_EOF:
		return t && t->eof;
	case BIO_C_GET_FD:
		if (ptr && t)
			*(int *)ptr = t->fd;
		return t ? t->fd : -1;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
				     "zkd socket");
	if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
	    BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
		bio_method = m;
	else
		BIO_meth_free(m);
}

/* ---- failures -------------------------------------------------------------- */

/* Records why the SSL call that returned `ret` failed, with OpenSSL's
 * reason and, for a certificate that did not verify, the verdict. Sets
 * errno for the loop. */
static void note_failure(struct tls_sock *t, int err, int ret_errno, const char *when)
{
	unsigned long e = ERR_peek_error();
	t->failed = true;
	if (err == SSL_ERROR_SYSCALL && !e) {
		if (ret_errno) {
			snprintf(t->why, sizeof t->why, "%s: %s", when, strerror(ret_errno));
			errno = ret_errno;
		} else {
			snprintf(t->why, sizeof t->why, "%s: the peer closed the connection", when);
			errno = ECONNRESET;
		}
		return;
	}
	const char *reason = e ? ERR_reason_error_string(e) : NULL;
	char buf[64];
	if (!reason) {
		snprintf(buf, sizeof buf, "OpenSSL error 0x%lx", e);
		reason = buf;
	}
	long vr = SSL_get_verify_result(t->ssl);
	if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
		snprintf(t->why, sizeof t->why, "%s: %s: %s", when, reason, X509_verify_cert_error_string(vr));
	else
		snprintf(t->why, sizeof t->why, "%s: %s", when, reason);
	ERR_clear_error();
	errno = EPROTO;
}

/* ---- the vtable -------------------------------------------------------------- */

/* TLS connections whose handshake has not finished (mntr's
 * outstanding_tls_handshake): +1 at attach, -1 when the handshake ends or
 * the connection closes before it does. Any I/O thread writes. */
static struct metric_gauge *handshaking;

void conn_tls_metrics_init(void)
{
	handshaking = metrics_gauge("outstanding_tls_handshake", "TLS handshakes in progress");
}

static int tls_attach(struct conn_sock *s, int fd)
{
	s->type = &conn_tls;
	s->fd = fd;
	s->priv = NULL;
	s->wants = CONN_WANT_READ;
	pthread_once(&bio_once, bio_method_init);
	struct tls_sock *t = calloc(1, sizeof *t);
	BIO *bio = NULL;
	ERR_clear_error();
	if (t && bio_method && (t->ssl = tls_new_ssl()) != NULL && (bio = BIO_new(bio_method)) != NULL) {
		t->fd = fd;
		BIO_set_data(bio, t);
		SSL_set_bio(t->ssl, bio, bio);
		SSL_set_accept_state(t->ssl);
		s->priv = t;
		metric_gauge_add(handshaking, 1);
		return 0;
	}
	if (t)
		SSL_free(t->ssl);
	free(t);
	ERR_clear_error();
	close(fd);
	s->fd = -1;
	errno = ENOMEM;
	return -1;
}

static int tls_handshake(struct conn_sock *s)
{
	struct tls_sock *t = s->priv;

	ERR_clear_error();
	errno = 0;
	int n = SSL_do_handshake(t->ssl);
	if (n == 1) {
		t->established = true;
		metric_gauge_add(handshaking, -1);
		s->wants = CONN_WANT_READ;
		return CONN_HS_DONE;
	}
	int saved = errno;
	int err = SSL_get_error(t->ssl, n);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		s->wants = err == SSL_ERROR_WANT_READ ? CONN_WANT_READ : CONN_WANT_WRITE;
		return CONN_HS_AGAIN;
	}
	note_failure(t, err, err == SSL_ERROR_ZERO_RETURN ? 0 : saved, "TLS handshake failed");
	return CONN_HS_ERROR;
}

static ssize_t tls_read(struct conn_sock *s, void *buf, size_t len)
{
	struct tls_sock *t = s->priv;

	ERR_clear_error();
	errno = 0;
	int n = SSL_read(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0)
		return n;
	int saved = errno;
	int err = SSL_get_error(t->ssl, n);
	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		s->wants = err == SSL_ERROR_WANT_READ ? CONN_WANT_READ : CONN_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;       /* close_notify: answered with ours at close */
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error() && saved == 0) {
			t->failed = true;   /* plain EOF: nobody is left to notify */
			return 0;
		}
		/* fall through */
	default:
		note_failure(t, err, saved, "TLS read");
		return -1;
	}
}

static ssize_t tls_writev(struct conn_sock *s, const struct iovec *iov, int iovcnt)
{
	struct tls_sock *t = s->priv;
	int i = 0;

	while (i < iovcnt && iov[i].iov_len == 0)
		i++;
	if (i == iovcnt)
		return 0;
	size_t len = iov[i].iov_len > INT_MAX ? INT_MAX : iov[i].iov_len;
	ERR_clear_error();
	errno = 0;
	int n = SSL_write(t->ssl, iov[i].iov_base, (int)len);
	if (n > 0)
		return n;
	int saved = errno;
	int err = SSL_get_error(t->ssl, n);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		s->wants = err == SSL_ERROR_WANT_READ ? CONN_WANT_READ : CONN_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	}
	if (err == SSL_ERROR_ZERO_RETURN) {
		t->failed = true;
		errno = EPIPE;
		return -1;
	}
	note_failure(t, err, saved, "TLS write");
	return -1;
}

static bool tls_has_pending(const struct conn_sock *s)
{
	const struct tls_sock *t = s->priv;
	return t && SSL_has_pending(t->ssl);
}

static void tls_close(struct conn_sock *s)
{
	struct tls_sock *t = s->priv;

	if (t) {
		if (!t->established)
			metric_gauge_add(handshaking, -1);
		if (t->established && !t->failed) {
			/* One close_notify, sent if the socket takes it now; the
			 * peer's answer is not waited for. */
			ERR_clear_error();
			SSL_shutdown(t->ssl);
		}
		ERR_clear_error();
		SSL_free(t->ssl);
		free(t);
		s->priv = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static const char *tls_why(const struct conn_sock *s)
{
	const struct tls_sock *t = s->priv;
	return t && t->why[0] ? t->why : NULL;
}

const struct conn_type conn_tls = {
	.name = "tls",
	.attach = tls_attach,
	.handshake = tls_handshake,
	.read = tls_read,
	.writev = tls_writev,
	.has_pending = tls_has_pending,
	.close = tls_close,
	.why = tls_why,
};

/* ---- the client's certificate ------------------------------------------------ */

int conn_tls_subject(const struct conn_sock *s, char *out, size_t cap)
{
	const struct tls_sock *t = s->type == &conn_tls ? s->priv : NULL;
	if (!t || !t->established)
		return 0;
	/* A certificate is there only if clientAuth asked for one, and then
	 * the handshake went through only if it verified; the verify result
	 * says so once more. */
	X509 *peer = SSL_get1_peer_certificate(t->ssl);
	if (!peer)
		return 0;
	int rc = 0;
	if (SSL_get_verify_result(t->ssl) == X509_V_OK)
		rc = tls_dn_rfc2253(X509_get_subject_name(peer), out, cap) < 0 ? -1 : 1;
	X509_free(peer);
	return rc;
}
