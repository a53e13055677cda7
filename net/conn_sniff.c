/*
 * conn_sniff.c - the connection type of a unified client port
 * (client.portUnification): plain and TLS clients on one port, told apart by
 * the first byte each sends.
 *
 * ZooKeeper's DualModeSslHandler asks Netty whether the first bytes are a
 * TLS record. One byte is enough here: a TLS client opens with a handshake
 * record, content type 22 (0x16). A ZooKeeper client opens with the length
 * of its ConnectRequest, big-endian, so its first byte is 0 (0x16 would
 * announce a frame of over 350 MB, refused anyway), and a four-letter word
 * opens with a lower-case letter.
 *
 * The "handshake" peeks at that byte without taking it off the socket and
 * then re-attaches the socket as conn_tls or conn_plain, which from then on
 * own it: the loop calls through s->type, so every later call reaches the
 * chosen type. A TLS client's handshake starts at once, in the same step.
 *
 * Threads: as every type, called only by the I/O thread that owns the
 * socket.
 */
#include "conn.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#define TLS_RECORD_HANDSHAKE 0x16

static int sniff_attach(struct conn_sock *s, int fd)
{
	s->type = &conn_sniff;
	s->fd = fd;
	s->priv = NULL;
	s->wants = CONN_WANT_READ;
	return 0;
}

static int sniff_handshake(struct conn_sock *s)
{
	unsigned char first;
	ssize_t n;

	do
		n = recv(s->fd, &first, 1, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		s->wants = CONN_WANT_READ;
		return CONN_HS_AGAIN;
	}
	if (n < 0) {
		int err = errno;
		close(s->fd);
		s->fd = -1;
		errno = err;
		return CONN_HS_ERROR;
	}
	/* n == 0 (the peer left without a byte) goes plain: its first read
	 * then reports the end of stream as for any plain client */
	if (n == 1 && first == TLS_RECORD_HANDSHAKE) {
		if (conn_tls.attach(s, s->fd) < 0)
			return CONN_HS_ERROR;       /* the fd is closed by the type */
		return conn_tls.handshake(s);
	}
	conn_plain.attach(s, s->fd);
	return CONN_HS_DONE;
}

/* Never called before the handshake chose a type; the type is replaced. */
static ssize_t sniff_read(struct conn_sock *s, void *buf, size_t len)
{
	(void)s, (void)buf, (void)len;
	errno = ENOTCONN;
	return -1;
}

static ssize_t sniff_writev(struct conn_sock *s, const struct iovec *iov, int iovcnt)
{
	(void)s, (void)iov, (void)iovcnt;
	errno = ENOTCONN;
	return -1;
}

static void sniff_close(struct conn_sock *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

const struct conn_type conn_sniff = {
	.name = "plain or TLS",
	.attach = sniff_attach,
	.handshake = sniff_handshake,
	.read = sniff_read,
	.writev = sniff_writev,
	.close = sniff_close,
};
