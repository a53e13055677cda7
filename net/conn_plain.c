/*
 * conn_plain.c - the plain TCP connection type: the conn.h vtable mapped
 * straight onto the socket calls.
 *
 * There is no handshake and nothing is ever buffered inside the type, so a
 * read can only wait for readability and a write only for writability.
 * Writes go through sendmsg(MSG_NOSIGNAL): a peer that vanished must give
 * EPIPE to the one connection, never SIGPIPE to the process.
 */
#include "conn.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static int plain_attach(struct conn_sock *s, int fd)
{
	s->type = &conn_plain;
	s->fd = fd;
	s->priv = NULL;
	s->wants = 0;
	return 0;
}

static ssize_t plain_read(struct conn_sock *s, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(s->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		errno = EAGAIN;
		s->wants = CONN_WANT_READ;
	}
	return n;
}

static ssize_t plain_writev(struct conn_sock *s, const struct iovec *iov, int iovcnt)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n;

	do
		n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		errno = EAGAIN;
		s->wants = CONN_WANT_WRITE;
	}
	return n;
}

static void plain_close(struct conn_sock *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

const struct conn_type conn_plain = {
	.name = "plain",
	.attach = plain_attach,
	.handshake = NULL,
	.read = plain_read,
	.writev = plain_writev,
	.has_pending = NULL,
	.close = plain_close,
};
