/*
 * test_fle.c - Fast Leader Election (election/fle.c, election/cnxmgr.c).
 *
 * The pure parts first: the vote order, the notification codec (the current
 * form and the 28/40-byte legacy ones, truncated and inconsistent bodies
 * refused) and the configuration text. Then whole elections: several fle
 * instances in this process, each on its own loopback election port, each
 * fle_lookup on a thread of its own playing that server's peer thread. The
 * test thread waits for results against a deadline, so a broken election
 * fails a test rather than hanging it, and nothing depends on a sleep being
 * long enough. Last, raw sockets play a hostile or foreign peer.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "election/cnxmgr.h"
#include "election/fle.h"

#define WAIT_MS 10000

/* ---- the pure parts --------------------------------------------------------------------- */

Test(fle, total_order)
{
	/* peer epoch first */
	cr_assert(fle_total_order(1, 0x100000000LL, 2, 3, 0x1000000ffLL, 1));
	cr_assert(!fle_total_order(3, 0x1000000ffLL, 1, 1, 0x100000000LL, 2));
	/* then zxid */
	cr_assert(fle_total_order(1, 0x100000002LL, 1, 3, 0x100000001LL, 1));
	cr_assert(!fle_total_order(3, 0x100000001LL, 1, 1, 0x100000002LL, 1));
	/* then sid */
	cr_assert(fle_total_order(3, 5, 1, 2, 5, 1));
	cr_assert(!fle_total_order(2, 5, 1, 3, 5, 1));
	/* a vote never beats itself */
	cr_assert(!fle_total_order(2, 5, 1, 2, 5, 1));
	/* an observer's "nobody" proposal loses to anyone */
	cr_assert(fle_total_order(1, 0, 0, INT64_MIN, INT64_MIN, INT64_MIN));
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

Test(fle, codec_roundtrip)
{
	const char *cfgtext = "server.1=127.0.0.1:2888:3888:participant\nversion=0";
	struct fle_notification n = { .state = PEER_FOLLOWING, .leader = 3, .zxid = 0x500000007LL,
				      .election_epoch = 9, .peer_epoch = 5 };
	uint8_t buf[256];
	cr_assert_eq(fle_encode(&n, cfgtext, strlen(cfgtext), buf, 10), 0, "too small a buffer is refused");
	size_t len = fle_encode(&n, cfgtext, strlen(cfgtext), buf, sizeof buf);
	cr_assert_eq(len, FLE_MSG_HEADER + strlen(cfgtext));
	/* byte layout: state, leader, zxid, round, peer epoch, version, config */
	cr_assert_eq(buf[3], PEER_FOLLOWING);
	cr_assert_eq(buf[11], 3);
	cr_assert_eq(buf[39], FLE_MSG_VERSION);
	cr_assert_eq(buf[43], strlen(cfgtext));

	struct fle_notification d;
	const uint8_t *cfg;
	size_t cfglen;
	char why[128];
	cr_assert_eq(fle_decode(buf, len, &d, &cfg, &cfglen, why, sizeof why), 0, "%s", why);
	cr_assert_eq(d.state, PEER_FOLLOWING);
	cr_assert_eq(d.leader, 3);
	cr_assert_eq(d.zxid, 0x500000007LL);
	cr_assert_eq(d.election_epoch, 9);
	cr_assert_eq(d.peer_epoch, 5);
	cr_assert_eq(d.version, FLE_MSG_VERSION);
	cr_assert_eq(cfglen, strlen(cfgtext));
	cr_assert(memcmp(cfg, cfgtext, cfglen) == 0);

	/* negative values survive */
	n.leader = INT64_MIN;
	n.zxid = -1;
	len = fle_encode(&n, "", 0, buf, sizeof buf);
	cr_assert_eq(len, FLE_MSG_HEADER);
	cr_assert_eq(fle_decode(buf, len, &d, NULL, NULL, why, sizeof why), 0);
	cr_assert_eq(d.leader, INT64_MIN);
	cr_assert_eq(d.zxid, -1);
}

Test(fle, codec_legacy_forms)
{
	uint8_t b[40];
	struct fle_notification d;
	char why[128];
	/* 28 bytes (before ZOOKEEPER-107): the peer epoch comes from the zxid */
	put32(b, PEER_LOOKING);
	put64(b + 4, 2);
	put64(b + 12, 0x700000003LL);
	put64(b + 20, 4);
	cr_assert_eq(fle_decode(b, 28, &d, NULL, NULL, why, sizeof why), 0, "%s", why);
	cr_assert_eq(d.leader, 2);
	cr_assert_eq(d.zxid, 0x700000003LL);
	cr_assert_eq(d.election_epoch, 4);
	cr_assert_eq(d.peer_epoch, 7);
	cr_assert_eq(d.version, 0);
	/* 40 bytes (before 3.4.6): peer epoch, and a version int that is not read */
	put64(b + 28, 6);
	put32(b + 36, 1);
	cr_assert_eq(fle_decode(b, 40, &d, NULL, NULL, why, sizeof why), 0, "%s", why);
	cr_assert_eq(d.peer_epoch, 6);
	cr_assert_eq(d.version, 0);
}

Test(fle, codec_rejects_bad_bodies)
{
	uint8_t b[64] = { 0 };
	struct fle_notification d;
	char why[128];
	const uint8_t *cfg;
	size_t cl;
	put32(b + 36, 2);       /* version 2 */
	cr_assert_eq(fle_decode(b, 0, &d, NULL, NULL, why, sizeof why), -1);
	cr_assert_eq(fle_decode(b, 27, &d, NULL, NULL, why, sizeof why), -1, "short");
	cr_assert_eq(fle_decode(b, 30, &d, NULL, NULL, why, sizeof why), -1, "cut in the peer epoch");
	cr_assert_eq(fle_decode(b, 38, &d, NULL, NULL, why, sizeof why), -1, "cut in the version");
	cr_assert_eq(fle_decode(b, 42, &d, NULL, NULL, why, sizeof why), -1, "version 2 without its config length");
	put32(b + 40, 21);      /* 21 bytes of configuration promised, 20 present */
	cr_assert_eq(fle_decode(b, 64, &d, NULL, NULL, why, sizeof why), -1, "config longer than the body");
	put32(b + 40, 0xffffffffu);
	cr_assert_eq(fle_decode(b, 64, &d, NULL, NULL, why, sizeof why), -1, "negative config length");
	put32(b + 40, 20);      /* exactly what is there: fine */
	cr_assert_eq(fle_decode(b, 64, &d, &cfg, &cl, why, sizeof why), 0, "%s", why);
	cr_assert_eq(cl, 20);
	put32(b + 36, 1);       /* version 1: no configuration follows, trailing bytes ignored */
	cr_assert_eq(fle_decode(b, 44, &d, &cfg, &cl, why, sizeof why), 0, "%s", why);
	cr_assert_eq(cl, 0);
}

static void add_member(struct quorum_config *c, int64_t sid, const char *host, int qport, int eport,
		       bool observer)
{
	struct quorum_member *m = &c->members[c->n++];
	memset(m, 0, sizeof *m);
	m->sid = sid;
	snprintf(m->host, sizeof m->host, "%s", host);
	m->quorum_port = qport;
	m->election_port = eport;
	m->observer = observer;
}

Test(fle, config_text)
{
	struct quorum_config c = { .myid = 1 };
	add_member(&c, 3, "zk3.example", 2890, 3890, false);
	add_member(&c, 1, "127.0.0.1", 2888, 3888, false);
	add_member(&c, 2, "::1", 2889, 3889, true);
	c.members[1].client_port = 2181;
	char out[512];
	size_t len = fle_config_text(&c, out, sizeof out);
	const char *want = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n"
			   "server.2=[::1]:2889:3889:observer\n"
			   "server.3=zk3.example:2890:3890:participant\n"
			   "version=0";
	cr_assert_str_eq(out, want);
	cr_assert_eq(len, strlen(want));
	char small[10];
	cr_assert_eq(fle_config_text(&c, small, sizeof small), len, "the full length, like snprintf");
	cr_assert_eq(strlen(small), sizeof small - 1);
}

/* ---- elections ------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Test ports are reserved for the length of a test: a socket bound to the
 * port (not listening) that other processes cannot bind over, while our own
 * fle_start, binding with SO_REUSEADDR as the reservation now also has it,
 * can. They are picked at random below the ephemeral range, so that no
 * outgoing connection takes one either. */
static int reserved[64];
static int n_reserved;

static int free_port(void)
{
	static unsigned seed;
	int lo = 32768;
	FILE *pr = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (pr) {
		if (fscanf(pr, "%d", &lo) != 1)
			lo = 32768;
		fclose(pr);
	}
	if (lo > 60000 || lo < 12000)
		lo = 32768;
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)now_ms();
	cr_assert(n_reserved < 64);
	for (;;) {
		int port = 10000 + (int)(rand_r(&seed) % (unsigned)(lo - 10000));
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) {
			int one = 1;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
			reserved[n_reserved++] = fd;
			return port;
		}
		close(fd);
	}
}

static void release_ports(void)
{
	while (n_reserved > 0)
		close(reserved[--n_reserved]);
}

/* One server: its fle and the thread playing its peer thread. */
struct node {
	struct quorum_config cfg;
	struct fle *f;
	int64_t zxid, epoch;
	pthread_t th;
	bool running;
	atomic_int done;
	int rc;
	struct fle_vote v;
};

struct ensemble {
	int n;
	struct node node[8];
};

/* n members with sids 1..n, the sids in `observers` non-voting, on fresh
 * loopback ports. Nothing started. Which leader wins depends on timing when
 * a majority can agree before the best vote arrives; tests that check the
 * winner among more servers than a bare majority use ZooKeeper's 200 ms
 * finalize wait (FINAL_ZK), tests where every server must agree anyway use
 * zkd's short one (FINAL_FAST). */
#define FINAL_ZK 200
#define FINAL_FAST 20

static void ensemble_init(struct ensemble *e, int n, const int64_t *observers, int n_obs, int finalize_ms)
{
	memset(e, 0, sizeof *e);
	e->n = n;
	struct quorum_config c = { .tick_time = 100, .init_limit = 10, .sync_limit = 5,
				   .election_bind_retries = 1, .finalize_wait_ms = finalize_ms,
				   .max_notification_interval_ms = 2000 };
	for (int i = 0; i < n; i++) {
		bool obs = false;
		for (int k = 0; k < n_obs; k++)
			obs |= observers[k] == i + 1;
		add_member(&c, i + 1, "127.0.0.1", 0, 0, obs);
	}
	for (int i = 0; i < n; i++) {
		c.members[i].quorum_port = free_port();
		c.members[i].election_port = free_port();
	}
	for (int i = 0; i < n; i++) {
		e->node[i].cfg = c;
		e->node[i].cfg.myid = i + 1;
	}
}

static void node_start(struct node *nd)
{
	char err[256];
	nd->f = fle_start(&nd->cfg, err, sizeof err);
	cr_assert_not_null(nd->f, "fle_start sid %lld: %s", (long long)nd->cfg.myid, err);
}

static void *lookup_main(void *arg)
{
	struct node *nd = arg;
	nd->rc = fle_lookup(nd->f, nd->zxid, nd->epoch, &nd->v);
	atomic_store(&nd->done, 1);
	return NULL;
}

static void lookup_begin(struct node *nd)
{
	atomic_store(&nd->done, 0);
	cr_assert_eq(pthread_create(&nd->th, NULL, lookup_main, nd), 0);
	nd->running = true;
}

/* Waits until nd's fle_lookup returned, up to the deadline. */
static bool lookup_wait(struct node *nd, int64_t deadline)
{
	while (!atomic_load(&nd->done) && now_ms() < deadline)
		usleep(1000);
	if (!atomic_load(&nd->done))
		return false;
	pthread_join(nd->th, NULL);
	nd->running = false;
	return true;
}

static void node_stop(struct node *nd)
{
	fle_stop(nd->f);   /* a lookup in progress returns -1 */
	if (nd->running) {
		pthread_join(nd->th, NULL);
		nd->running = false;
	}
	nd->f = NULL;
}

static void ensemble_stop(struct ensemble *e)
{
	for (int i = 0; i < e->n; i++)
		if (e->node[i].f)
			node_stop(&e->node[i]);
	release_ports();
}

/* Runs fle_lookup on the nodes listed (indexes), all at once, and checks
 * that they agree on `leader`. */
static void elect(struct ensemble *e, const int *idx, int k, int64_t leader)
{
	for (int i = 0; i < k; i++)
		lookup_begin(&e->node[idx[i]]);
	int64_t deadline = now_ms() + WAIT_MS;
	for (int i = 0; i < k; i++) {
		struct node *nd = &e->node[idx[i]];
		cr_assert(lookup_wait(nd, deadline), "sid %lld did not decide within %d ms",
			  (long long)nd->cfg.myid, WAIT_MS);
		cr_assert_eq(nd->rc, 0);
		cr_assert_eq(nd->v.leader, leader, "sid %lld elected %lld, not %lld", (long long)nd->cfg.myid,
			     (long long)nd->v.leader, (long long)leader);
		bool obs = quorum_member(&nd->cfg, nd->cfg.myid)->observer;
		int32_t want = nd->cfg.myid == leader ? PEER_LEADING : obs ? PEER_OBSERVING : PEER_FOLLOWING;
		cr_assert_eq(nd->v.state, want, "sid %lld is in state %d", (long long)nd->cfg.myid, nd->v.state);
	}
}

Test(fle, elects_the_highest_zxid)
{
	struct ensemble e;
	ensemble_init(&e, 3, NULL, 0, FINAL_ZK);
	e.node[0].zxid = 0x100000005LL;
	e.node[1].zxid = 0x100000009LL;     /* the highest zxid: sid 2 leads */
	e.node[2].zxid = 0x100000002LL;
	for (int i = 0; i < 3; i++) {
		e.node[i].epoch = 1;
		node_start(&e.node[i]);
	}
	elect(&e, (int[]){ 0, 1, 2 }, 3, 2);
	cr_assert_eq(e.node[0].v.zxid, 0x100000009LL);
	cr_assert_eq(e.node[0].v.peer_epoch, 1);
	ensemble_stop(&e);
}

/* The leader goes away (its election port now refuses connections); the
 * two survivors look again and, both being needed for a majority, agree on
 * the better of them. */
Test(fle, survivors_reelect_after_the_leader_stops)
{
	struct ensemble e;
	ensemble_init(&e, 3, NULL, 0, FINAL_FAST);
	e.node[0].zxid = 0x100000005LL;
	e.node[1].zxid = 0x100000009LL;
	e.node[2].zxid = 0x100000002LL;
	for (int i = 0; i < 3; i++) {
		e.node[i].epoch = 1;
		node_start(&e.node[i]);
	}
	for (int i = 0; i < 3; i++)
		lookup_begin(&e.node[i]);
	int64_t deadline = now_ms() + WAIT_MS;
	for (int i = 0; i < 3; i++) {
		cr_assert(lookup_wait(&e.node[i], deadline));
		cr_assert_eq(e.node[i].rc, 0);
		cr_assert_eq(e.node[i].v.leader, e.node[0].v.leader, "all agree");
	}
	int leader = (int)e.node[0].v.leader - 1;
	node_stop(&e.node[leader]);
	int s[2], k = 0;
	for (int i = 0; i < 3; i++)
		if (i != leader)
			s[k++] = i;
	int best = e.node[s[0]].zxid > e.node[s[1]].zxid ? s[0] : s[1];
	int64_t t0 = now_ms();
	elect(&e, s, 2, best + 1);
	cr_log_info("re-election of 2 survivors took %lld ms", (long long)(now_ms() - t0));
	cr_assert_eq(e.node[s[0]].v.election_epoch, e.node[s[1]].v.election_epoch);
	ensemble_stop(&e);
}

Test(fle, peer_epoch_beats_zxid)
{
	struct ensemble e;
	ensemble_init(&e, 3, NULL, 0, FINAL_ZK);
	e.node[0].zxid = 0x100000001LL;
	e.node[0].epoch = 2;                /* a newer epoch, an older log */
	for (int i = 1; i < 3; i++) {
		e.node[i].zxid = 0x100000009LL;
		e.node[i].epoch = 1;
	}
	for (int i = 0; i < 3; i++)
		node_start(&e.node[i]);
	elect(&e, (int[]){ 0, 1, 2 }, 3, 1);
	ensemble_stop(&e);
}

Test(fle, observer_learns_the_leader)
{
	struct ensemble e;
	ensemble_init(&e, 4, (int64_t[]){ 4 }, 1, FINAL_ZK);
	for (int i = 0; i < 4; i++) {
		e.node[i].zxid = 0x200000000LL + (i == 3 ? 99 : i);  /* the observer's zxid does not count */
		e.node[i].epoch = 2;
		node_start(&e.node[i]);
	}
	elect(&e, (int[]){ 0, 1, 2, 3 }, 4, 3);
	/* and again after the voters settled */
	elect(&e, (int[]){ 3 }, 1, 3);
	ensemble_stop(&e);
}

Test(fle, late_server_follows_the_established_leader)
{
	struct ensemble e;
	ensemble_init(&e, 3, NULL, 0, FINAL_FAST);
	e.node[0].zxid = 0x100000001LL;
	e.node[1].zxid = 0x100000002LL;
	e.node[2].zxid = 0x1000000ffLL;     /* the best log, but it comes late */
	for (int i = 0; i < 3; i++)
		e.node[i].epoch = 1;
	node_start(&e.node[0]);
	node_start(&e.node[1]);
	elect(&e, (int[]){ 0, 1 }, 2, 2);
	node_start(&e.node[2]);
	elect(&e, (int[]){ 2 }, 1, 2);
	ensemble_stop(&e);
}

Test(fle, stop_interrupts_a_lookup)
{
	struct ensemble e;
	ensemble_init(&e, 3, NULL, 0, FINAL_FAST);
	node_start(&e.node[0]);             /* alone: no quorum, it keeps looking */
	lookup_begin(&e.node[0]);
	usleep(50000);
	cr_assert(!atomic_load(&e.node[0].done));
	fle_stop(e.node[0].f);
	e.node[0].f = NULL;
	cr_assert(lookup_wait(&e.node[0], now_ms() + WAIT_MS));
	cr_assert_eq(e.node[0].rc, -1);
	release_ports();
}

/* ---- foreign and hostile peers ------------------------------------------------------------------ */

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static void send_all(int fd, const void *p, size_t len)
{
	cr_assert_eq(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* True if the server closed fd (rather than the 5 s receive timeout firing). */
static bool closed_by_server(int fd)
{
	char b[64];
	ssize_t n;
	while ((n = recv(fd, b, sizeof b, 0)) > 0)
		;
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static size_t handshake(uint8_t *b, int64_t version, int64_t sid, const char *addr, int32_t alen)
{
	put64(b, (uint64_t)version);
	put64(b + 8, (uint64_t)sid);
	put32(b + 16, (uint32_t)alen);
	size_t n = strlen(addr);
	memcpy(b + 20, addr, n);
	return 20 + n;
}

static bool recv_exact(int fd, uint8_t *p, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, p + got, len - got, 0);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

Test(fle, hostile_handshakes_and_frames_are_closed)
{
	struct ensemble e;
	ensemble_init(&e, 3, NULL, 0, FINAL_FAST);
	node_start(&e.node[0]);
	int port = e.node[0].cfg.members[0].election_port;
	uint8_t b[4096];

	int fd = dial(port);
	size_t n = handshake(b, -5, 9, "127.0.0.1:1", 11);
	send_all(fd, b, n);
	cr_assert(closed_by_server(fd), "an unknown protocol version is refused");
	close(fd);

	fd = dial(port);
	n = handshake(b, CNX_PROTOCOL_V1, 9, "", 100000);
	send_all(fd, b, n);
	cr_assert(closed_by_server(fd), "an address length over 2048 is refused");
	close(fd);

	fd = dial(port);
	n = handshake(b, CNX_PROTOCOL_V2, 9, "no-port-here", 12);
	send_all(fd, b, n);
	cr_assert(closed_by_server(fd), "a malformed address is refused");
	close(fd);

	fd = dial(port);
	n = handshake(b, CNX_PROTOCOL_V1, 9, "127.0.0.1:1", 11);
	put32(b + n, 0x7fffffff);
	send_all(fd, b, n + 4);
	cr_assert(closed_by_server(fd), "a message over 512 KiB is refused");
	close(fd);

	fd = dial(port);
	n = handshake(b, CNX_PROTOCOL_V1, 9, "127.0.0.1:1", 11);
	put32(b + n, 0);
	send_all(fd, b, n + 4);
	cr_assert(closed_by_server(fd), "an empty message is refused");
	close(fd);

	/* Still alive: it answers a well-behaved stranger. */
	fd = dial(port);
	n = handshake(b, CNX_PROTOCOL_V1, 9, "127.0.0.1:1", 11);
	struct fle_notification q = { .state = PEER_LOOKING, .leader = 9, .zxid = 5, .election_epoch = 1,
				      .peer_epoch = 1 };
	size_t m = fle_encode(&q, "", 0, b + n + 4, sizeof b - n - 4);
	put32(b + n, (uint32_t)m);
	send_all(fd, b, n + 4 + m);
	uint8_t hdr[4], body[4096];
	cr_assert(recv_exact(fd, hdr, 4), "a non-voter is answered");
	uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	cr_assert(len >= FLE_MSG_HEADER && len < sizeof body);
	cr_assert(recv_exact(fd, body, len));
	struct fle_notification a;
	const uint8_t *cfg;
	size_t cl;
	char why[128];
	cr_assert_eq(fle_decode(body, len, &a, &cfg, &cl, why, sizeof why), 0, "%s", why);
	cr_assert_eq(a.state, PEER_LOOKING);
	cr_assert_eq(a.leader, 1, "our own vote before any election");
	cr_assert(cl > 0 && memmem(cfg, cl, "version=0", 9), "the configuration text comes along");
	close(fd);
	ensemble_stop(&e);
}

/* A lower sid connecting is hung up on and called back; a higher sid's
 * connection is kept (the ZooKeeper rule), and a 28-byte notification from
 * an old server is understood. */
Test(fle, connection_direction_and_legacy_peer)
{
	struct ensemble e;
	ensemble_init(&e, 3, NULL, 0, FINAL_FAST);
	node_start(&e.node[1]);             /* sid 2 */
	int port2 = e.node[1].cfg.members[1].election_port;

	/* Play sid 1 (lower than 2): listen on its election port, connect to 2. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)e.node[1].cfg.members[0].election_port) };
	cr_assert(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
	cr_assert(listen(lfd, 4) == 0);
	uint8_t b[256];
	int fd = dial(port2);
	size_t n = handshake(b, CNX_PROTOCOL_V1, 1, "127.0.0.1:1", 11);
	send_all(fd, b, n);
	cr_assert(closed_by_server(fd), "sid 2 hangs up on the lower sid 1");
	close(fd);
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 5000), 1, "sid 2 connects back to sid 1");
	int in = accept(lfd, NULL, NULL);
	cr_assert(in >= 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(in, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	uint8_t hs[20];
	cr_assert(recv_exact(in, hs, 20));
	cr_assert_eq(hs[7], 0x00);
	cr_assert_eq(hs[5], 0xff, "protocol version V1 (-65536)");
	cr_assert_eq(hs[6], 0x00);
	cr_assert_eq(hs[15], 2, "it says it is sid 2");
	uint32_t alen = (uint32_t)hs[16] << 24 | (uint32_t)hs[17] << 16 | (uint32_t)hs[18] << 8 | hs[19];
	char addr[64] = { 0 };
	cr_assert(alen < sizeof addr && recv_exact(in, (uint8_t *)addr, alen));
	char want[64];
	snprintf(want, sizeof want, "127.0.0.1:%d", port2);
	cr_assert_str_eq(addr, want);

	/* Over that connection, sid 1 speaks the 28-byte form as a LOOKING
	 * server of a newer round; sid 2, not yet looking, queues it, and once
	 * it looks it adopts the round. Sid 2 answers here with its own
	 * notifications (it is LOOKING now). */
	lookup_begin(&e.node[1]);
	put32(b, 28);
	put32(b + 4, PEER_LOOKING);
	put64(b + 8, 1);
	put64(b + 16, 0x100000000LL);
	put64(b + 24, 7);
	send_all(in, b, 32);
	uint8_t hdr[4], body[1024];
	bool saw_round7 = false;
	for (int i = 0; i < 20 && !saw_round7; i++) {
		cr_assert(recv_exact(in, hdr, 4), "sid 2 sends notifications to sid 1");
		uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
		cr_assert(len < sizeof body && recv_exact(in, body, len));
		struct fle_notification got;
		char why[128];
		cr_assert_eq(fle_decode(body, len, &got, NULL, NULL, why, sizeof why), 0, "%s", why);
		saw_round7 = got.election_epoch == 7;
	}
	cr_assert(saw_round7, "sid 2 adopted round 7 from the legacy notification");
	close(in);
	close(lfd);
	ensemble_stop(&e);
}
