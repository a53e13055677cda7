/*
 * test_net.c - the event loop (net/loop.c) against real sockets.
 *
 * Each test starts the loop on an ephemeral port with an echo server: every
 * frame is sent back framed, except a few command frames ("PAUSE", "CLOSE",
 * "REJECT") that exercise pause, close-after-flush and refusal. Messages
 * posted with net_post either send a frame, resume a paused connection or
 * just count. The test thread plays the clients with blocking sockets whose
 * every receive is bounded by SO_RCVTIMEO, and waits for server-side effects
 * by polling counters against a deadline: nothing depends on timing luck,
 * and a broken server makes a test fail, never hang.
 *
 * Server-side counters are written by the I/O threads and read by the test
 * thread, so they are atomics.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/jute.h"
#include "net/net.h"
#include "helpers.h"

#define WAIT_MS 10000

/* ---- the test server (callbacks run on the I/O threads) ------------------ */

static struct {
	atomic_int opens, closes, double_closes, no_user_closes;
	atomic_int frames, fourlw, msgs, null_msgs, counted;
	atomic_ullong last_addr, paused_addr;
	_Atomic char last_cmd[4];
} srv;

struct cuser {
	int closes;
};

enum msg_kind { MSG_SEND, MSG_RESUME, MSG_COUNT };

struct tmsg {
	struct net_msg m;   /* first, as net.h asks */
	enum msg_kind kind;
	char text[16];
};

static void send_framed(struct net_conn *c, const void *p, size_t len)
{
	struct jute_writer *w = net_conn_out(c);
	size_t mark = net_frame_begin(w);
	jute_write_raw(w, p, len);
	net_frame_end(w, mark);
	net_count_sent_packet();
}

static void t_open(void *ctx, struct net_conn *c)
{
	(void)ctx;
	net_conn_set_user(c, calloc(1, sizeof(struct cuser)));
	atomic_store(&srv.last_addr, net_conn_addr(c));
	atomic_fetch_add(&srv.opens, 1);
}

static int t_frame(void *ctx, struct net_conn *c, const uint8_t *p, size_t len)
{
	(void)ctx;
	atomic_fetch_add(&srv.frames, 1);
	if (len == 5 && memcmp(p, "PAUSE", 5) == 0) {
		send_framed(c, p, len);
		net_conn_pause(c, true);
		atomic_store(&srv.paused_addr, net_conn_addr(c));
		return 0;
	}
	if (len == 6 && memcmp(p, "REJECT", 6) == 0)
		return -1;
	if (len >= 4 && memcmp(p, "SINK", 4) == 0)
		return 0;   /* swallowed: a client may stream without reading */
	if (len == 9 && memcmp(p, "CLOSE", 5) == 0) {
		/* "CLOSE" + n: queue n bytes of a pattern, then close. */
		uint32_t n = jute_get_u32(p + 5);
		uint8_t chunk[4096];
		for (uint32_t off = 0; off < n; off += sizeof chunk) {
			size_t k = n - off < sizeof chunk ? n - off : sizeof chunk;
			for (size_t i = 0; i < k; i++)
				chunk[i] = (uint8_t)((off + i) * 7u);
			net_conn_send(c, chunk, k);
		}
		net_conn_close(c, "test asked to close");
		return 0;
	}
	send_framed(c, p, len);
	return 0;
}

static void t_4lw(void *ctx, struct net_conn *c, const char cmd[4], const uint8_t *rest, size_t rest_len)
{
	(void)ctx;
	(void)rest;
	(void)rest_len;
	for (int i = 0; i < 4; i++)
		atomic_store(&srv.last_cmd[i], cmd[i]);
	atomic_fetch_add(&srv.fourlw, 1);
	if (memcmp(cmd, "ruok", 4) == 0)
		net_conn_send(c, "imok", 4);
	else
		net_conn_send(c, cmd, 4);
	net_conn_close(c, "four-letter word answered");
}

static void t_close(void *ctx, struct net_conn *c)
{
	(void)ctx;
	struct cuser *u = net_conn_user(c);
	if (!u) {
		atomic_fetch_add(&srv.no_user_closes, 1);
		return;
	}
	if (u->closes++ > 0)
		atomic_fetch_add(&srv.double_closes, 1);
	free(u);
	net_conn_set_user(c, NULL);
	atomic_fetch_add(&srv.closes, 1);
}

static void t_msg(void *ctx, struct net_conn *c, struct net_msg *m)
{
	(void)ctx;
	struct tmsg *t = (struct tmsg *)m;
	if (!c) {
		atomic_fetch_add(&srv.null_msgs, 1);
	} else if (t->kind == MSG_SEND) {
		send_framed(c, t->text, strlen(t->text));
	} else if (t->kind == MSG_RESUME) {
		net_conn_pause(c, false);
	} else {
		atomic_fetch_add(&srv.counted, 1);
	}
	free(t);
	atomic_fetch_add(&srv.msgs, 1);
}

static const struct net_callbacks test_cb = {
	.on_open = t_open, .on_frame = t_frame, .on_4lw = t_4lw,
	.on_close = t_close, .on_msg = t_msg,
};

static int port;

static void start_server_max(int n_threads, int max_per_ip, uint32_t max_frame)
{
	struct net_config cfg = {
		.bind_addr = "127.0.0.1",
		.port = 0,
		.n_threads = n_threads,
		.max_frame = max_frame,
		.max_cnxns_per_ip = max_per_ip,
	};
	char err[256] = "";
	cr_assert_eq(net_start(&cfg, &test_cb, err, sizeof err), 0, "net_start: %s", err);
	port = net_bound_port();
	cr_assert_gt(port, 0);
	cr_assert_eq(net_n_threads(), n_threads);
}

static void start_server(int n_threads, int max_per_ip)
{
	start_server_max(n_threads, max_per_ip, JUTE_DEFAULT_MAXBUFFER);
}

static void teardown(void) { net_stop(); }

/* ---- client helpers --------------------------------------------------------- */

static int cli_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
	return fd;
}

/* Writes everything; false if the server closed on us. */
static bool cli_write(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

static void put_frame(uint8_t *dst, const void *p, uint32_t n)
{
	jute_put_u32(dst, n);
	memcpy(dst + 4, p, n);
}

static void cli_frame(int fd, const void *p, uint32_t n)
{
	uint8_t *b = malloc(4 + (size_t)n);
	put_frame(b, p, n);
	cr_assert(cli_write(fd, b, 4 + (size_t)n), "write: %s", strerror(errno));
	free(b);
}

static bool cli_read_exact(int fd, void *buf, size_t n)
{
	uint8_t *b = buf;
	while (n > 0) {
		ssize_t k = recv(fd, b, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

/* Reads one frame into buf (malloc'd, caller frees); returns its length. */
static size_t cli_read_frame(int fd, uint8_t **buf)
{
	uint8_t h[4];
	cr_assert(cli_read_exact(fd, h, 4), "no frame header: %s", strerror(errno));
	size_t n = jute_get_u32(h);
	*buf = malloc(n + 1);
	cr_assert(cli_read_exact(fd, *buf, n), "short frame");
	(*buf)[n] = 0;
	return n;
}

static void expect_frame(int fd, const void *p, size_t n)
{
	uint8_t *got;
	size_t len = cli_read_frame(fd, &got);
	cr_assert_eq(len, n, "frame length %zu, expected %zu", len, n);
	cr_assert(memcmp(got, p, n) == 0, "frame content differs");
	free(got);
}

static void expect_echo(int fd, const char *s)
{
	cli_frame(fd, s, (uint32_t)strlen(s));
	expect_frame(fd, s, strlen(s));
}

/* True if the server closed the connection (EOF or reset) within the bound;
 * any data before that is discarded. */
static bool cli_closed(int fd)
{
	uint8_t b[4096];
	for (;;) {
		ssize_t k = recv(fd, b, sizeof b, 0);
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return true;
		if (k < 0 && errno != EINTR)
			return false;   /* timeout */
	}
}

/* True if nothing arrives within ms (the connection stays open and quiet). */
static bool cli_quiet(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, ms) == 0;
}

static void post(net_addr to, enum msg_kind kind, const char *text)
{
	struct tmsg *t = calloc(1, sizeof *t);
	t->kind = kind;
	if (text)
		snprintf(t->text, sizeof t->text, "%s", text);
	net_post(to, &t->m);
}

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Every test starts its own server (the suite only stops it). */
TestSuite(net, .fini = teardown, .timeout = 60);

/* ---- framing ---------------------------------------------------------------- */

Test(net, frames_split_across_many_writes_are_reassembled)
{
	start_server(2, 0);
	int fd = cli_connect();
	uint32_t seed = 12345;
	enum { N = 40 };
	uint8_t *stream = malloc(N * (4 + 3000));
	size_t len = 0, sizes[N], offs[N];
	for (int i = 0; i < N; i++) {
		sizes[i] = rnd(&seed) % 3000;
		offs[i] = len + 4;
		uint8_t payload[3000];
		for (size_t j = 0; j < sizes[i]; j++)
			payload[j] = (uint8_t)rnd(&seed);
		put_frame(stream + len, payload, (uint32_t)sizes[i]);
		len += 4 + sizes[i];
	}
	/* 1..13 bytes per write, so headers are cut too. */
	for (size_t off = 0; off < len;) {
		size_t k = 1 + rnd(&seed) % 13;
		if (k > len - off)
			k = len - off;
		cr_assert(cli_write(fd, stream + off, k));
		off += k;
	}
	for (int i = 0; i < N; i++)
		expect_frame(fd, stream + offs[i], sizes[i]);
	free(stream);
	close(fd);
}

Test(net, many_frames_in_one_write_arrive_in_order)
{
	start_server(2, 0);
	int fd = cli_connect();
	enum { N = 2000 };
	uint8_t *stream = malloc(N * (4 + 16));
	size_t len = 0;
	for (int i = 0; i < N; i++) {
		char s[16];
		int n = snprintf(s, sizeof s, "f%d", i);
		put_frame(stream + len, s, (uint32_t)n);
		len += 4 + (size_t)n;
	}
	cr_assert(cli_write(fd, stream, len));
	for (int i = 0; i < N; i++) {
		char s[16];
		int n = snprintf(s, sizeof s, "f%d", i);
		expect_frame(fd, s, (size_t)n);
	}
	free(stream);
	struct net_stats st;
	net_get_stats(&st);
	cr_assert_geq(st.packets_received, N);
	cr_assert_geq(st.packets_sent, N);
	cr_assert_geq(st.bytes_received, len);
	close(fd);
}

Test(net, empty_frame_is_a_frame)
{
	start_server(2, 0);
	int fd = cli_connect();
	cli_frame(fd, "", 0);
	expect_frame(fd, "", 0);
	expect_echo(fd, "after");
	close(fd);
}

Test(net, one_megabyte_frames_work)
{
	start_server(2, 0);
	int fd = cli_connect();
	size_t n = JUTE_DEFAULT_MAXBUFFER;      /* the largest frame allowed */
	uint8_t *big = malloc(2 * (4 + n));
	uint32_t seed = 99;
	for (size_t i = 0; i < n; i++)
		big[4 + i] = (uint8_t)rnd(&seed);
	jute_put_u32(big, (uint32_t)n);
	memcpy(big + 4 + n, big, 4 + n);        /* two of them back to back */
	big[4 + n + 4] ^= 0xff;
	cr_assert(cli_write(fd, big, 2 * (4 + n)));
	expect_frame(fd, big + 4, n);
	expect_frame(fd, big + 4 + n + 4, n);
	expect_echo(fd, "still fine");
	free(big);
	close(fd);
}

Test(net, small_max_frame_is_enforced_exactly)
{
	start_server_max(1, 0, 100);
	int fd = cli_connect();
	uint8_t big[100];
	memset(big, 'm', sizeof big);
	uint8_t stream[3 * 104];
	for (int i = 0; i < 3; i++)
		put_frame(stream + i * 104, big, 100);
	for (size_t off = 0; off < sizeof stream; off += 50)     /* split across frames */
		cr_assert(cli_write(fd, stream + off, sizeof stream - off < 50 ? sizeof stream - off : 50));
	for (int i = 0; i < 3; i++)
		expect_frame(fd, big, 100);
	uint8_t over[105];
	put_frame(over, big, 100);
	jute_put_u32(over, 101);
	cr_assert(cli_write(fd, over, 4));
	cr_assert(cli_closed(fd), "a frame of max_frame + 1 was accepted");
	close(fd);
	cr_assert_eq(atomic_load(&srv.frames), 3);
}

Test(net, oversized_length_closes_and_others_keep_working)
{
	start_server(2, 0);
	int good = cli_connect();
	int bad = cli_connect();
	expect_echo(good, "before");
	expect_echo(bad, "first");
	uint8_t h[4];
	jute_put_u32(h, JUTE_DEFAULT_MAXBUFFER + 1);
	cr_assert(cli_write(bad, h, 4));
	cr_assert(cli_closed(bad), "oversized frame did not close");
	expect_echo(good, "after");
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == 1));
	close(bad);
	close(good);
}

Test(net, negative_length_closes)
{
	start_server(2, 0);
	int fd = cli_connect();
	uint8_t h[8];
	jute_put_u32(h, 0xffffffffu);
	jute_put_u32(h + 4, 0);
	cr_assert(cli_write(fd, h, sizeof h));
	cr_assert(cli_closed(fd), "negative length did not close");
	close(fd);
	fd = cli_connect();
	jute_put_u32(h, 0x80000000u);
	cr_assert(cli_write(fd, h, 4));
	cr_assert(cli_closed(fd));
	close(fd);
	cr_assert_eq(atomic_load(&srv.frames), 0);
}

Test(net, on_frame_error_closes)
{
	start_server(2, 0);
	int fd = cli_connect();
	expect_echo(fd, "x");
	cli_frame(fd, "REJECT", 6);
	cr_assert(cli_closed(fd));
	close(fd);
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == 1));
}

/* ---- four-letter words ---------------------------------------------------------- */

Test(net, fourlw_at_connection_start_calls_on_4lw)
{
	start_server(2, 0);
	int fd = cli_connect();
	cr_assert(cli_write(fd, "ruok", 4));
	char b[4];
	cr_assert(cli_read_exact(fd, b, 4));
	cr_assert(memcmp(b, "imok", 4) == 0);
	cr_assert(cli_closed(fd));
	close(fd);
	cr_assert_eq(atomic_load(&srv.fourlw), 1);
	cr_assert_eq(atomic_load(&srv.frames), 0);

	/* nc style: the word, a newline, end of input. */
	fd = cli_connect();
	cr_assert(cli_write(fd, "mntr\n", 5));
	shutdown(fd, SHUT_WR);
	cr_assert(cli_read_exact(fd, b, 4));
	cr_assert(memcmp(b, "mntr", 4) == 0);
	cr_assert(cli_closed(fd));
	close(fd);
	cr_assert_eq(atomic_load(&srv.fourlw), 2);
	char cmd[4];
	for (int i = 0; i < 4; i++)
		cmd[i] = atomic_load(&srv.last_cmd[i]);
	cr_assert(memcmp(cmd, "mntr", 4) == 0);
}

Test(net, fourlw_looking_bytes_after_the_start_are_not_a_4lw)
{
	start_server(2, 0);
	/* A frame whose payload is "ruok" is just a frame, first or not. */
	int fd = cli_connect();
	expect_echo(fd, "ruok");
	expect_echo(fd, "ruok");
	/* Bare "ruok" after the first frame is a frame length (0x72756f6b),
	 * far over max_frame: Len error, not a four-letter word. */
	cr_assert(cli_write(fd, "ruok", 4));
	cr_assert(cli_closed(fd));
	close(fd);
	cr_assert_eq(atomic_load(&srv.fourlw), 0);
	cr_assert_eq(atomic_load(&srv.frames), 2);
}

/* ---- messages ------------------------------------------------------------------ */

Test(net, post_to_live_connection_reaches_it)
{
	start_server(2, 0);
	int fd = cli_connect();
	cr_assert(WAIT_FOR(atomic_load(&srv.opens) == 1));
	net_addr a = atomic_load(&srv.last_addr);
	cr_assert_neq(a, 0);
	post(a, MSG_SEND, "hello");
	expect_frame(fd, "hello", 5);
	cr_assert_eq(atomic_load(&srv.null_msgs), 0);
	close(fd);
}

Test(net, post_to_closed_connection_gets_null_conn)
{
	start_server(2, 0);
	int fd = cli_connect();
	cr_assert(WAIT_FOR(atomic_load(&srv.opens) == 1));
	net_addr a = atomic_load(&srv.last_addr);
	close(fd);
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == 1));
	post(a, MSG_SEND, "lost");
	cr_assert(WAIT_FOR(atomic_load(&srv.null_msgs) == 1));
	cr_assert_eq(atomic_load(&srv.msgs), 1);
}

Test(net, stale_address_never_reaches_new_connection_on_same_fd)
{
	start_server(1, 0);     /* one thread: the next accept reuses the fd */
	int fd = cli_connect();
	cr_assert(WAIT_FOR(atomic_load(&srv.opens) == 1));
	net_addr old = atomic_load(&srv.last_addr);
	close(fd);
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == 1));
	fd = cli_connect();
	cr_assert(WAIT_FOR(atomic_load(&srv.opens) == 2));
	net_addr now = atomic_load(&srv.last_addr);
	cr_assert_neq(old, now);
	cr_assert_eq((old >> 32) & 0xffffff, (now >> 32) & 0xffffff, "expected the fd to be reused");
	post(old, MSG_SEND, "stale");
	cr_assert(WAIT_FOR(atomic_load(&srv.null_msgs) == 1));
	post(now, MSG_SEND, "fresh");
	expect_frame(fd, "fresh", 5);   /* and not "stale" before it */
	close(fd);
}

struct poster_arg {
	net_addr to;
	int n;
};

static void *poster(void *arg)
{
	struct poster_arg *pa = arg;
	for (int i = 0; i < pa->n; i++)
		post(pa->to, MSG_COUNT, NULL);
	return NULL;
}

Test(net, posts_from_many_threads_are_all_delivered)
{
	start_server(4, 0);
	enum { CONNS = 8, THREADS = 4, PER = 20000 };
	int fds[CONNS];
	net_addr addrs[CONNS];
	for (int i = 0; i < CONNS; i++) {
		fds[i] = cli_connect();
		cr_assert(WAIT_FOR(atomic_load(&srv.opens) == i + 1));
		addrs[i] = atomic_load(&srv.last_addr);
	}
	pthread_t t[THREADS];
	struct poster_arg pa[THREADS];
	for (int i = 0; i < THREADS; i++) {
		pa[i] = (struct poster_arg){ addrs[i % CONNS], PER };
		pthread_create(&t[i], NULL, poster, &pa[i]);
	}
	/* Meanwhile the I/O threads keep going to sleep and waking up. */
	for (int i = 0; i < CONNS; i++)
		expect_echo(fds[i], "busy");
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert(WAIT_FOR(atomic_load(&srv.counted) == THREADS * PER),
		  "only %d of %d messages delivered", atomic_load(&srv.counted), THREADS * PER);
	/* Single posts to idle threads: each needs a wake-up. */
	for (int round = 0; round < 200; round++) {
		int before = atomic_load(&srv.counted);
		post(addrs[round % CONNS], MSG_COUNT, NULL);
		cr_assert(WAIT_FOR(atomic_load(&srv.counted) == before + 1), "lost wake-up");
	}
	for (int i = 0; i < CONNS; i++)
		close(fds[i]);
}

/* ---- flow control and closing ----------------------------------------------- */

Test(net, pause_then_resume_delivers_buffered_frames)
{
	start_server(2, 0);
	int fd = cli_connect();
	uint8_t stream[64];
	size_t len = 0;
	put_frame(stream + len, "PAUSE", 5);
	len += 9;
	put_frame(stream + len, "a", 1);
	len += 5;
	put_frame(stream + len, "bb", 2);
	len += 6;
	put_frame(stream + len, "ccc", 3);
	len += 7;
	cr_assert(cli_write(fd, stream, len));
	expect_frame(fd, "PAUSE", 5);
	/* Every byte is in the server's hands, yet only PAUSE was handled. */
	struct net_stats st;
	cr_assert(WAIT_FOR((net_get_stats(&st), st.bytes_received == len)));
	cr_assert(cli_quiet(fd, 100), "frames delivered while paused");
	cr_assert_eq(atomic_load(&srv.frames), 1);
	/* Resuming must deliver them although no new byte arrives. */
	post(atomic_load(&srv.paused_addr), MSG_RESUME, NULL);
	expect_frame(fd, "a", 1);
	expect_frame(fd, "bb", 2);
	expect_frame(fd, "ccc", 3);
	expect_echo(fd, "more");
	close(fd);
}

Test(net, pause_stops_reading_new_bytes)
{
	start_server(2, 0);
	int fd = cli_connect();
	cli_frame(fd, "PAUSE", 5);
	expect_frame(fd, "PAUSE", 5);
	cli_frame(fd, "late", 4);
	cr_assert(cli_quiet(fd, 100));
	cr_assert_eq(atomic_load(&srv.frames), 1);
	post(atomic_load(&srv.paused_addr), MSG_RESUME, NULL);
	expect_frame(fd, "late", 4);
	close(fd);
}

Test(net, close_flushes_queued_output_first)
{
	start_server(2, 0);
	int fd = cli_connect();
	uint32_t n = 8u << 20;          /* far more than the socket buffers */
	uint8_t req[9];
	memcpy(req, "CLOSE", 5);
	jute_put_u32(req + 5, n);
	cli_frame(fd, req, 9);
	uint8_t *got = malloc(n);
	cr_assert(cli_read_exact(fd, got, n), "connection ended before all output arrived");
	for (uint32_t i = 0; i < n; i++)
		if (got[i] != (uint8_t)(i * 7u))
			cr_assert_fail("byte %u differs", i);
	free(got);
	uint8_t b;
	cr_assert_eq(recv(fd, &b, 1, 0), 0, "expected EOF after the output");
	close(fd);
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == 1));
}

Test(net, per_ip_cap_refuses_the_next_connection)
{
	enum { CAP = 3 };
	start_server(4, CAP);
	int fds[CAP];
	for (int i = 0; i < CAP; i++) {
		fds[i] = cli_connect();
		expect_echo(fds[i], "in");
	}
	int extra = cli_connect();
	cr_assert(cli_closed(extra), "connection over the cap was served");
	close(extra);
	struct net_stats st;
	net_get_stats(&st);
	cr_assert_eq(st.rejected_cap, 1);
	cr_assert_eq(st.connections, CAP);
	cr_assert_eq(atomic_load(&srv.opens), CAP);
	/* A freed slot can be taken again. */
	close(fds[0]);
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == 1));
	fds[0] = cli_connect();
	expect_echo(fds[0], "back");
	for (int i = 0; i < CAP; i++)
		close(fds[i]);
}

static atomic_bool streaming;

static void *stream_sink_frames(void *arg)
{
	int fd = *(int *)arg;
	uint8_t chunk[64 * 1024];
	size_t len = 0;
	while (len + 4 + 1000 <= sizeof chunk) {
		uint8_t payload[1000];
		memset(payload, 's', sizeof payload);
		memcpy(payload, "SINK", 4);
		put_frame(chunk + len, payload, sizeof payload);
		len += 4 + sizeof payload;
	}
	while (atomic_load(&streaming))
		if (!cli_write(fd, chunk, len))
			break;
	return NULL;
}

Test(net, a_busy_connection_does_not_starve_others)
{
	start_server(1, 0);     /* both on the same I/O thread */
	int busy = cli_connect();
	int other = cli_connect();
	expect_echo(other, "warm");
	atomic_store(&streaming, true);
	pthread_t t;
	pthread_create(&t, NULL, stream_sink_frames, &busy);
	/* The busy client writes as fast as it can until we are done. */
	struct net_stats st;
	cr_assert(WAIT_FOR((net_get_stats(&st), st.bytes_received > (8u << 20))));
	for (int i = 0; i < 20; i++)
		expect_echo(other, "served");
	atomic_store(&streaming, false);
	shutdown(busy, SHUT_RDWR);
	pthread_join(t, NULL);
	close(busy);
	close(other);
}

/* ---- lifetime ------------------------------------------------------------------ */

Test(net, on_close_exactly_once_per_connection)
{
	start_server(2, 0);
	int n = 0;
	/* peer closes */
	for (int i = 0; i < 5; i++, n++) {
		int fd = cli_connect();
		expect_echo(fd, "x");
		close(fd);
	}
	/* peer resets */
	for (int i = 0; i < 5; i++, n++) {
		int fd = cli_connect();
		expect_echo(fd, "x");
		struct linger lg = { 1, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		close(fd);
	}
	/* server closes: on request, on a bad length, after a 4lw, on refusal */
	int fd = cli_connect();
	uint8_t req[9];
	memcpy(req, "CLOSE", 5);
	jute_put_u32(req + 5, 10);
	cli_frame(fd, req, 9);
	cr_assert(cli_closed(fd));
	close(fd), n++;
	fd = cli_connect();
	cr_assert(cli_write(fd, "\xff\xff\xff\xff", 4));
	cr_assert(cli_closed(fd));
	close(fd), n++;
	fd = cli_connect();
	cr_assert(cli_write(fd, "srvr", 4));
	cr_assert(cli_closed(fd));
	close(fd), n++;
	fd = cli_connect();
	cli_frame(fd, "REJECT", 6);
	cr_assert(cli_closed(fd));
	close(fd), n++;
	/* The peer leaves while the connection is paused with input buffered:
	 * a paused connection does not read, so its end of stream is seen
	 * once it is resumed. */
	fd = cli_connect();
	cli_frame(fd, "PAUSE", 5);
	cli_frame(fd, "held", 4);
	expect_frame(fd, "PAUSE", 5);
	close(fd), n++;
	post(atomic_load(&srv.paused_addr), MSG_RESUME, NULL);
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == n), "%d of %d closed", atomic_load(&srv.closes), n);

	/* still open at net_stop */
	int open_fds[5];
	for (int i = 0; i < 5; i++, n++) {
		open_fds[i] = cli_connect();
		expect_echo(open_fds[i], "x");
	}
	net_stop();
	cr_assert_eq(atomic_load(&srv.opens), n);
	cr_assert_eq(atomic_load(&srv.closes), n);
	cr_assert_eq(atomic_load(&srv.double_closes), 0);
	cr_assert_eq(atomic_load(&srv.no_user_closes), 0);
	for (int i = 0; i < 5; i++) {
		cr_assert(cli_closed(open_fds[i]));
		close(open_fds[i]);
	}
	struct net_stats st;
	net_get_stats(&st);
	cr_assert_eq(st.connections, 0);
	cr_assert_eq(st.accepted, (uint64_t)n);
}

Test(net, hostile_byte_streams_do_not_hurt_the_server)
{
	start_server(2, 0);
	uint32_t seed = 777;
	int good = cli_connect();
	expect_echo(good, "hi");
	for (int round = 0; round < 60; round++) {
		int fd = cli_connect();
		size_t len = 1 + rnd(&seed) % 20000;
		uint8_t *junk = malloc(len + 8);
		for (size_t i = 0; i < len; i++)
			junk[i] = (uint8_t)rnd(&seed);
		if (round % 3 == 0) {
			/* plausible small lengths followed by garbage */
			jute_put_u32(junk, (uint32_t)(rnd(&seed) % 64));
		} else if (round % 3 == 1) {
			memcpy(junk, "stat", 4);
		}
		(void)cli_write(fd, junk, len);     /* may fail: the server may close first */
		free(junk);
		if (round % 2)
			shutdown(fd, SHUT_WR);
		close(fd);
	}
	expect_echo(good, "still here");
	cr_assert(WAIT_FOR(atomic_load(&srv.closes) == 60));
	close(good);
}
