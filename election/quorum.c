/*
 * quorum.c - who the ensemble is: lookups over the server.N lines and the
 * majority rule (ZooKeeper's QuorumMaj), shared by the election and ZAB;
 * and which accepted connections speak TLS (portUnification).
 */
#include "election.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int64_t quorum_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const struct quorum_member *quorum_member(const struct quorum_config *c, int64_t sid)
{
	for (int i = 0; i < c->n; i++)
		if (c->members[i].sid == sid)
			return &c->members[i];
	return NULL;
}

int quorum_voters(const struct quorum_config *c)
{
	int n = 0;
	for (int i = 0; i < c->n; i++)
		n += !c->members[i].observer;
	return n;
}

bool quorum_has_majority(const struct quorum_config *c, const int64_t *acked, int n)
{
	int votes = 0;
	for (int i = 0; i < n; i++) {
		const struct quorum_member *m = quorum_member(c, acked[i]);
		votes += m && !m->observer;
	}
	return votes > quorum_voters(c) / 2;
}

bool quorum_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	const uint8_t *p[2] = { NULL, NULL };
	size_t l[2] = { 0, 0 };
	const struct sockaddr *sa[2] = { a, b };
	for (int i = 0; i < 2; i++) {
		if (sa[i]->sa_family == AF_INET) {
			p[i] = (const uint8_t *)&((const struct sockaddr_in *)sa[i])->sin_addr;
			l[i] = 4;
		} else if (sa[i]->sa_family == AF_INET6) {
			const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa[i])->sin6_addr;
			bool mapped = IN6_IS_ADDR_V4MAPPED(a6);
			p[i] = mapped ? &a6->s6_addr[12] : a6->s6_addr;
			l[i] = mapped ? 4 : 16;
		}
	}
	return p[0] && p[1] && l[0] == l[1] && memcmp(p[0], p[1], l[0]) == 0;
}

/* A TLS client opens with a handshake record, content type 22; ZooKeeper's
 * quorum and election protocols open with a big-endian long (a sid or a
 * protocol version) whose first byte is 0 or 0xff. */
#define TLS_RECORD_HANDSHAKE 0x16

int quorum_sniff_tls(int fd)
{
	unsigned char first;
	ssize_t n;
	do
		n = recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
	if (n == 0)
		return -1;
	return first == TLS_RECORD_HANDSHAKE;
}

int quorum_accepted_tls(const struct quorum_config *c, int fd, int timeout_ms)
{
	if (!c->port_unification)
		return c->ssl_quorum;
	int64_t deadline = quorum_now_ms() + timeout_ms;
	for (;;) {
		int r = quorum_sniff_tls(fd);
		if (r != -2)
			return r;
		int64_t left = deadline - quorum_now_ms();
		if (left <= 0)
			return -1;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -1;
	}
}
