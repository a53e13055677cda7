/*
 * writeprobe.c - "how long until a write succeeds again": the client half of
 * the failover timer (bench/failover kills the leader; this finds the moment
 * the ensemble takes writes again).
 *
 * Design: one attempt runs against every given server at once (in practice
 * the survivors of the kill), each a fresh TCP connection, a fresh session
 * and one create of an ephemeral-sequential node. Parallel, because we
 * cannot know which survivor will serve first, and a serial walk would add
 * its own waits to the figure. A failed attempt (refused, reset, refused
 * session, error reply, or no answer within the attempt timeout) is retried
 * against the same server after a short back-off. The first success ends
 * the probe; its CLOCK_MONOTONIC time is printed, and so is the time since
 * --since-ns (the kill), which is the failover figure. Python's
 * time.monotonic_ns() reads the same clock, so the script and the probe
 * agree on "when".
 *
 * With --wait-stdin the probe is started before the kill and waits for one
 * line on stdin holding the kill time: the attempts then begin within
 * microseconds of the kill instead of after a fork and exec.
 */
#include "writeprobe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "zkproto.h"

enum pstate { P_WAIT, P_CONNECTING, P_HANDSHAKE, P_WRITE };

struct pconn {
	int fd;
	int state;
	uint64_t t_next;            /* P_WAIT: when to try again */
	uint64_t deadline;          /* this attempt's end */
	struct jute_writer out;
	size_t out_off;
	uint8_t in[4096];
	size_t in_len;
	int attempts;
	char last_err[96];
};

static void drop(struct pconn *p, uint64_t now, uint64_t backoff, const char *why)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->state = P_WAIT;
	p->t_next = now + backoff;
	p->out.len = 0;
	p->out_off = 0;
	p->in_len = 0;
	snprintf(p->last_err, sizeof p->last_err, "%s", why);
}

static void begin(struct pconn *p, const struct sockaddr_in *dst, uint64_t now, uint64_t attempt_ns)
{
	p->attempts++;
	p->deadline = now + attempt_ns;
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		drop(p, now, 10000000u, strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(p->fd, (const struct sockaddr *)dst, sizeof *dst) != 0 && errno != EINPROGRESS) {
		drop(p, now, 10000000u, strerror(errno));
		return;
	}
	zkp_connect_req(&p->out, 10000);
	p->state = P_CONNECTING;
}

/* Reads what is there; returns the payload length of a complete frame at
 * p->in + 4, 0 if none yet, -1 on EOF/error. */
static long read_frame(struct pconn *p)
{
	ssize_t k = recv(p->fd, p->in + p->in_len, sizeof p->in - p->in_len, MSG_DONTWAIT);
	if (k == 0)
		return -1;
	if (k < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	p->in_len += (size_t)k;
	if (p->in_len < 4)
		return 0;
	uint32_t n = jute_get_u32(p->in);
	if (n > sizeof p->in - 4)
		return -1;
	return p->in_len - 4 >= n ? (long)n : 0;
}

static int flush_out(struct pconn *p)
{
	while (p->out_off < p->out.len) {
		ssize_t k = send(p->fd, p->out.buf + p->out_off, p->out.len - p->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		p->out_off += (size_t)k;
	}
	return 0;
}

int write_probe(const struct bench_cfg *c, const struct probe_opts *o)
{
	uint64_t since = o->since_ns;
	if (o->wait_stdin) {
		char line[64];
		if (!fgets(line, sizeof line, stdin)) {
			fprintf(stderr, "zkbench: --wait-stdin: no start line\n");
			return 2;
		}
		since = strtoull(line, NULL, 10);
	}
	uint64_t start = mono_ns();
	if (!since)
		since = start;
	uint64_t end = start + (uint64_t)(o->timeout_s * 1e9);
	uint64_t attempt_ns = (uint64_t)o->attempt_ms * 1000000u;
	struct pconn pc[BENCH_MAX_SERVERS];
	for (int i = 0; i < c->n_servers; i++) {
		memset(&pc[i], 0, sizeof pc[i]);
		pc[i].fd = -1;
		pc[i].state = P_WAIT;
		pc[i].t_next = start;
		jute_writer_init(&pc[i].out, 256);
	}
	int winner = -1;
	uint64_t t_ok = 0;
	while (winner < 0) {
		uint64_t now = mono_ns();
		if (now >= end)
			break;
		struct pollfd pf[BENCH_MAX_SERVERS];
		uint64_t wake = end;
		for (int i = 0; i < c->n_servers; i++) {
			struct pconn *p = &pc[i];
			if (p->state == P_WAIT && now >= p->t_next)
				begin(p, &c->servers[i], now, attempt_ns);
			if (p->state != P_WAIT && now >= p->deadline)
				drop(p, now, 0, "attempt timed out");
			if (p->state == P_WAIT && now >= p->t_next)
				begin(p, &c->servers[i], now, attempt_ns);
			pf[i].fd = p->fd;
			pf[i].events = p->state == P_CONNECTING || p->out_off < p->out.len ? POLLOUT | POLLIN : POLLIN;
			pf[i].revents = 0;
			uint64_t t = p->state == P_WAIT ? p->t_next : p->deadline;
			if (t < wake)
				wake = t;
		}
		int ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		if (poll(pf, (nfds_t)c->n_servers, ms) < 0 && errno != EINTR)
			break;
		now = mono_ns();
		for (int i = 0; i < c->n_servers && winner < 0; i++) {
			struct pconn *p = &pc[i];
			if (p->fd < 0 || !pf[i].revents)
				continue;
			if (p->state == P_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof err;
				getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err) {
					drop(p, now, 10000000u, strerror(err));
					continue;
				}
				p->state = P_HANDSHAKE;
			}
			if (flush_out(p) != 0) {
				drop(p, now, 10000000u, "send failed");
				continue;
			}
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			long n = read_frame(p);
			if (n < 0) {
				drop(p, now, 10000000u, "connection closed");
				continue;
			}
			if (n == 0)
				continue;
			struct jute_reader rd;
			jute_reader_init(&rd, p->in + 4, (size_t)n, ZKP_MAX_FRAME);
			if (p->state == P_HANDSHAKE) {
				struct rec_connect_resp cr;
				if (rec_read_connect_resp(&rd, &cr) != 0 || cr.session_id == 0) {
					drop(p, now, 10000000u, "session refused");
					continue;
				}
				p->in_len = 0;      /* nothing else arrives before our request */
				p->out.len = 0;
				p->out_off = 0;
				zkp_create(&p->out, 1, o->path, "x", 1, ZCM_EPHEMERAL_SEQUENTIAL);
				p->state = P_WRITE;
				if (flush_out(p) != 0)
					drop(p, now, 10000000u, "send failed");
				continue;
			}
			struct rec_reply_header h;
			if (rec_read_reply_header(&rd, &h) != 0) {
				drop(p, now, 10000000u, "bad reply");
				continue;
			}
			if (h.xid == ZXID_PING || h.xid == ZXID_NOTIFICATION) {
				memmove(p->in, p->in + 4 + n, p->in_len - 4 - (size_t)n);
				p->in_len -= 4 + (size_t)n;
				continue;
			}
			if (h.err != 0) {
				char m[64];
				snprintf(m, sizeof m, "write failed: %s", zk_err_name(h.err));
				drop(p, now, 10000000u, m);
				continue;
			}
			winner = i;
			t_ok = now;
		}
	}
	char addr[INET_ADDRSTRLEN] = "";
	if (winner >= 0)
		inet_ntop(AF_INET, &c->servers[winner].sin_addr, addr, sizeof addr);
	int attempts = 0;
	for (int i = 0; i < c->n_servers; i++)
		attempts += pc[i].attempts;
	double ms = winner >= 0 ? (double)(t_ok - since) / 1e6 : -1;
	if (o->json) {
		printf("{\"ok\": %s, \"failover_ms\": %.3f, \"t_ok_ns\": %llu, \"since_ns\": %llu, "
		       "\"server\": \"%s:%d\", \"attempts\": %d, \"last_error\": \"%s\"}\n",
		       winner >= 0 ? "true" : "false", ms, (unsigned long long)t_ok,
		       (unsigned long long)since, addr,
		       winner >= 0 ? ntohs(c->servers[winner].sin_port) : 0, attempts,
		       c->n_servers ? pc[0].last_err : "");
	} else if (winner >= 0) {
		printf("write succeeded %.1f ms after the start mark, through %s:%d (%d attempts)\n",
		       ms, addr, ntohs(c->servers[winner].sin_port), attempts);
	} else {
		printf("no write succeeded within %.1f s (%d attempts; last error: %s)\n",
		       o->timeout_s, attempts, c->n_servers ? pc[0].last_err : "");
	}
	if (winner >= 0) {
		/* Best effort: close the session now so its ephemeral goes with it
		 * instead of at the session timeout. */
		struct pconn *p = &pc[winner];
		p->out.len = 0;
		p->out_off = 0;
		zkp_close(&p->out, 2);
		(void)flush_out(p);
	}
	for (int i = 0; i < c->n_servers; i++) {
		if (pc[i].fd >= 0)
			close(pc[i].fd);
		jute_writer_free(&pc[i].out);
	}
	return winner >= 0 ? 0 : 1;
}
