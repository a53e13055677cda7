/*
 * conn.h - connection types: how bytes move over one accepted socket.
 * Internal to net/; nothing outside net/ includes this file.
 *
 * The event loop (loop.c) owns readiness, buffering, framing and lifetime;
 * a connection type owns only the transport: plain TCP (conn_plain.c),
 * TLS (conn_tls.c), or either on a unified port (conn_sniff.c). The
 * loop never calls read(2)/write(2)/close(2) on a client socket itself; it
 * calls the type's functions through this small vtable, so a TLS type can be
 * added without touching the loop's logic.
 *
 * What a type must report so the loop can drive it:
 *   - read/writev return bytes moved, 0 from read for an orderly end of
 *     stream, or -1 with errno set. errno EAGAIN means "not now": the type
 *     then sets s->wants to the readiness it is waiting for. A TLS read can
 *     need the socket writable (and a TLS write readable), which is why this
 *     is reported rather than assumed.
 *   - handshake runs once after attach until it says done (plain: no
 *     handshake, the pointer is NULL). The loop calls it again whenever the
 *     readiness in s->wants arrives.
 *   - has_pending says the type holds input it already took off the socket
 *     (decrypted TLS records) that epoll will therefore never report; the
 *     loop reads again without waiting. Plain TCP never does (NULL).
 *   - why, after a failed call (-1 or CONN_HS_ERROR), may describe the
 *     failure better than errno can (a TLS alert, a certificate that did
 *     not verify); NULL or "" = errno says it all.
 *
 * Threads: a struct conn_sock belongs to the I/O thread that accepted the
 * socket; every function here is called only by that thread.
 */
#ifndef ZKD_NET_CONN_H
#define ZKD_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Readiness a type waits for after an EAGAIN (bits of conn_sock.wants). */
enum { CONN_WANT_READ = 1, CONN_WANT_WRITE = 2 };

/* Result of a handshake step. */
enum conn_hs { CONN_HS_DONE = 0, CONN_HS_AGAIN = 1, CONN_HS_ERROR = -1 };

struct conn_type;

/* One transport endpoint. Written and read by the owning I/O thread only. */
struct conn_sock {
	const struct conn_type *type;
	int fd;
	void *priv;         /* the type's own state (e.g. an SSL *); NULL for plain */
	unsigned wants;     /* CONN_WANT_*: set by the type when a call returned EAGAIN */
};

struct conn_type {
	const char *name;
	/* Takes ownership of the connected, non-blocking fd. 0, or -1 with
	 * errno (the fd is then closed by the type). */
	int (*attach)(struct conn_sock *s, int fd);
	/* One step of the handshake (NULL = none). CONN_HS_AGAIN sets s->wants. */
	int (*handshake)(struct conn_sock *s);
	ssize_t (*read)(struct conn_sock *s, void *buf, size_t len);
	ssize_t (*writev)(struct conn_sock *s, const struct iovec *iov, int iovcnt);
	/* Input already taken off the socket and not yet returned by read
	 * (NULL = never). */
	bool (*has_pending)(const struct conn_sock *s);
	/* Releases the type's state and closes the fd. Called exactly once. */
	void (*close)(struct conn_sock *s);
	/* What went wrong in the last failed call (NULL = never anything). */
	const char *(*why)(const struct conn_sock *s);
};

extern const struct conn_type conn_plain;
extern const struct conn_type conn_tls;     /* conn_tls.c; see tls.h */
/* client.portUnification: becomes conn_tls or conn_plain by the first byte
 * the client sends (conn_sniff.c) */
extern const struct conn_type conn_sniff;
/* Registers conn_tls's gauges (net_start, before any connection). */
void conn_tls_metrics_init(void);

#endif
