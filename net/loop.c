/*
 * loop.c - the I/O threads behind net.h.
 *
 * Each I/O thread (zkd-io-N) runs one loop over its own epoll set:
 *
 *   sleep in epoll_wait -> handle socket events (accept, read + frame,
 *   writable) -> drain the inbox (on_msg) -> parse input of connections that
 *   were resumed (the ready list) -> on_idle -> flush every connection with
 *   queued output, finish closes.
 *
 * Ownership. A thread's connections, its fd table, its flush and ready lists
 * and its scratch buffer are touched by that thread only; there is no lock on
 * any of it. Other threads reach a connection only by posting to its net_addr
 * (thread, fd, generation) through the thread's inbox. Shared state is small
 * and each piece says who writes and who reads it: the inbox (a wfcqueue,
 * many producers, the owner the only consumer), the `sleeping`, `stop` and
 * `quiesce` flags (and net_quiesce's count of threads done), the
 * statistics (relaxed atomics, one writer per slot), and the per-IP
 * connection counts (a mutex, taken on accept and close only).
 *
 * Wake-ups. The owner announces it is about to block by setting `sleeping`,
 * issues a full barrier, and looks at the inbox once more; a poster enqueues,
 * issues a full barrier and looks at `sleeping`. Whichever way the two race,
 * one of them sees the other (Dekker), so a message is never left waiting for
 * a wake-up that does not come, and the eventfd is written only when the
 * owner really is (about to be) asleep.
 *
 * Input. Sockets are read level-triggered with a byte budget per connection
 * per iteration, so one busy peer cannot starve the others: whatever is left
 * is reported again by the next epoll_wait. Bytes go into the thread's
 * scratch buffer and frames are handed up straight from it; only the tail of
 * an incomplete frame (or frames held while the connection is paused) is
 * copied into the connection's own buffer, which is freed again once empty,
 * so an idle connection holds no input memory. Only a frame too large for
 * the scratch buffer is read straight into the connection's buffer. A frame length is checked
 * before anything is sized by it: negative or above max_frame closes the
 * connection, so a buffer never grows past max_frame + 4. The first four
 * bytes of a connection are also compared with ZooKeeper's four-letter words.
 *
 * Output. Replies are appended to the connection's jute_writer and written at
 * the end of the iteration, many replies per write. A write that would block
 * arms the writability interest; it is disarmed once the buffer drained.
 *
 * TLS. The secure client port has listeners of its own beside the plain
 * ones (every thread has one of each that is configured); a connection
 * accepted there gets the TLS connection type (conn_tls.c) and starts in
 * HANDSHAKE, which this loop drives like any other I/O: each step runs when
 * the readiness the type asked for arrives. A handshake must finish within
 * the handshake timeout: every thread keeps its handshaking connections on
 * a list in accept order, which is therefore also deadline order, so the
 * loop sleeps no longer than until the first deadline and closes what has
 * expired from the head. A failed or expired handshake closes that one
 * connection with a log line; upper layers never see it (on_open comes
 * only once the handshake is done).
 *
 * Lifetime. A connection is HANDSHAKE (type-level setup, e.g. TLS), OPEN,
 * CLOSING (net_conn_close or end of stream: no more reading, flush, then
 * close), DEAD (socket error: close without flushing) or FINAL (on_close is
 * running, memory about to be freed). Connections are only freed in the
 * flush phase of the loop (and at shutdown), never while a callback or the
 * frame parser may still hold the pointer. on_close is owed exactly once to
 * every connection that got on_open. epoll events carry (fd, generation),
 * not pointers, so an event for a connection that went away is ignored, and
 * a net_addr of a closed connection never reaches a new one on the same fd.
 *
 * All socket I/O goes through the connection type vtable (conn.h).
 */
#include "net.h"

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "tsan.h"

#define MAX_THREADS     255             /* the thread index has 8 bits in a net_addr */
#define MAX_FD          (1 << 24)       /* the fd has 24 bits in a net_addr */
#define MAX_EVENTS      256
#define READ_BUDGET     (256 * 1024)    /* bytes per connection per iteration */
#define SCRATCH_SIZE    (64 * 1024)
#define IN_MIN_CAP      4096
#define OUT_KEEP_CAP    (256 * 1024)    /* a drained output buffer larger than this is freed */
#define OUT_COMPACT     (64 * 1024)
/* A client that sends requests but does not read the replies would make
 * its output grow without end: past OUT_HIGH unsent bytes the connection
 * stops reading (its requests wait in the kernel's buffers, then in the
 * client's), and resumes once under OUT_HIGH / 2. */
#define OUT_HIGH        (4u << 20)
#define ACCEPT_BUDGET   64              /* accepts per listener event per iteration */
#define ACCEPT_PAUSE_MS 100             /* listener rest after EMFILE and the like */
#define TAG_WAKE        UINT64_MAX      /* epoll data of the eventfd */
#define TAG_LISTEN      (UINT64_MAX - 1) /* epoll data of the plain listener */
#define TAG_LISTEN_TLS  (UINT64_MAX - 2) /* epoll data of the TLS listener */
#define HS_TIMEOUT_MS   10000           /* default handshake bound (Netty's SslHandler) */
#define LOG_NONE        (-1)            /* close without a log line (already logged) */

enum conn_state { ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DEAD, ST_FINAL };

/* The listeners of a thread: plain client port, secure client port. */
enum { LST_PLAIN, LST_TLS, N_LST };

/* A client connection. Owned by one I/O thread; only it reads or writes any
 * field, from the loop or from the callbacks it runs. */
struct net_conn {
	struct io_thread *io;
	struct conn_sock sock;
	uint32_t gen;               /* with sock.fd and io->index: the net_addr */
	enum conn_state state;
	bool opened;                /* on_open was called, so on_close is owed */
	bool paused;                /* net_conn_pause: neither read nor parse */
	bool seen_first;            /* the first 4 bytes were checked for a 4lw */
	bool fourlw;                /* spoke a four-letter word: input is ignored */
	bool ip_counted;            /* holds a slot in the per-IP counts */
	bool secure_port;           /* accepted on the secure client port */
	bool out_blocked;           /* a write hit EAGAIN: waiting for write_wants */
	bool out_full;              /* OUT_HIGH unsent: reading stops until it drains */
	bool on_flush, on_ready;    /* linked on io->flush / io->ready */
	/* The two bounded waits of a new connection, each a list of its own
	 * (struct dlist): the TLS handshake, then the ZooKeeper session
	 * handshake (until net_conn_established). */
	struct dlink { struct net_conn *prev, *next; int64_t deadline_ms; bool on; } wait[2];
	unsigned read_wants;        /* CONN_WANT_* a blocked read waits for */
	unsigned write_wants;       /* CONN_WANT_* a blocked write waits for */
	uint32_t events;            /* epoll interest currently registered */
	void *user;
	uint8_t *in;                /* stashed input: a partial frame, or frames held while paused */
	size_t in_len, in_cap;
	struct jute_writer out;     /* queued output; out.buf[0, out_off) already sent */
	size_t out_off;
	struct net_conn *flush_next, *ready_next;
	char ip[INET6_ADDRSTRLEN];
	char peer[INET6_ADDRSTRLEN + 8];
};

/* One I/O thread. The inbox tail and `sleeping` are written by posters (any
 * thread); everything from `index` on is set up by net_start before the
 * thread starts and from then on belongs to the thread alone. */
struct io_thread {
	/* Inbox: producers are any thread (net_post), the consumer is this
	 * thread only (splice in drain_inbox). */
	_Alignas(64) struct cds_wfcq_tail inbox_tail;
	/* Set by this thread just before epoll_wait, cleared by it after; a
	 * poster that sees it set clears it and rings the eventfd. */
	atomic_bool sleeping;
	_Alignas(64) struct __cds_wfcq_head inbox_head;
	atomic_bool stop;           /* written by net_stop, read by this thread */
	/* Written by net_quiesce, read by this thread, which then stops
	 * accepting and reading for good (`quiesced`, its own). */
	atomic_bool quiesce;
	bool quiesced;
	int index;
	pthread_t tid;
	int epfd, wake_fd;
	int listen_fd[N_LST];       /* -1 = that port is not served */
	struct net_conn **conns;    /* indexed by fd */
	size_t conns_cap;
	uint32_t next_gen;
	struct net_conn *flush;     /* connections with output or a close to finish */
	struct net_conn *ready;     /* connections with buffered input to parse */
	/* per wait kind: its connections, oldest (so first deadline) first,
	 * since every connection of a kind waits equally long */
	struct dlist { struct net_conn *head, *tail; } waits[2];
	int64_t accept_resume_ms;   /* listeners paused until then (0 = armed) */
	uint8_t *scratch;
};

/* Counters. Slot i is written only by I/O thread i (load + store, no
 * read-modify-write); the last slot takes net_count_sent_packet calls from
 * other threads (fetch_add). Any thread reads them all (net_get_stats). */
struct io_stats {
	_Atomic uint64_t packets_received, packets_sent, bytes_received, bytes_sent;
	_Atomic uint64_t accepted, closed, rejected_cap;
};
static struct { _Alignas(64) struct io_stats s; } stats[MAX_THREADS + 1];
#define STATS_OTHER (&stats[MAX_THREADS].s)

#define STAT_ADD(io, field, n)                                                          \
	atomic_store_explicit(&stats[(io)->index].s.field,                              \
			      atomic_load_explicit(&stats[(io)->index].s.field,         \
						   memory_order_relaxed) + (uint64_t)(n), \
			      memory_order_relaxed)

/* Set by net_start before any I/O thread exists, read by everyone after,
 * cleared by net_stop after every thread was joined. */
static struct {
	struct net_callbacks cb;
	uint32_t max_frame;
	int max_per_ip;
	int n_threads;
	int port, secure_port;      /* bound ports; -1 = not served */
	int hs_timeout_ms;
	int sessionless_ms;         /* a connection without a session is closed after this */
	bool unify;                 /* the plain port also takes TLS (conn_sniff) */
	struct io_thread *threads;
} net;

/* net_quiesce waits here until every I/O thread has stopped reading:
 * `done` is counted up by the I/O threads and read by net_quiesce's
 * caller, both under `lock`. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
} quiet = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* The I/O thread running on this thread; NULL on any other thread. */
static _Thread_local struct io_thread *self;

/* Per-IP connection counts (maxClientCnxns). Written and read by every I/O
 * thread under `lock`, on accept and on close only. */
#define IP_BUCKETS 1024
struct ip_count {
	struct ip_count *next;
	int n;
	char ip[INET6_ADDRSTRLEN];
};
static struct {
	pthread_mutex_t lock;
	struct ip_count *bucket[IP_BUCKETS];
} ipmap = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ZooKeeper's four-letter words (FourLetterCommands). */
static const char fourlw_words[][4] = {
	{ 'r', 'u', 'o', 'k' }, { 's', 't', 'a', 't' }, { 's', 'r', 'v', 'r' },
	{ 'c', 'o', 'n', 'f' }, { 'c', 'o', 'n', 's' }, { 'c', 'r', 's', 't' },
	{ 'd', 'u', 'm', 'p' }, { 'e', 'n', 'v', 'i' }, { 'g', 't', 'm', 'k' },
	{ 's', 't', 'm', 'k' }, { 's', 'r', 's', 't' }, { 'w', 'c', 'h', 'c' },
	{ 'w', 'c', 'h', 'p' }, { 'w', 'c', 'h', 's' }, { 'm', 'n', 't', 'r' },
	{ 'i', 's', 'r', 'o' }, { 'h', 'a', 's', 'h' }, { 'd', 'i', 'r', 's' },
};

static atomic_int running_threads;
/* mntr's counters of connections closed or refused by a bound (net_start
 * registers; I/O threads add). */
static struct metric_counter *sessionless_expired, *connection_rejected;
static int open_listeners(const char *bind_addr, int port, int backlog, int slot, int *bound,
			  char *err, size_t errlen);
static int setup_thread(struct io_thread *io, char *err, size_t errlen);
static void release_threads(int n);
static void *io_main(void *arg);
static void loop_once(struct io_thread *io);
static int wait_timeout(struct io_thread *io);
static int wait_events(struct io_thread *io, struct epoll_event *evs, int timeout);
static void handle_event(struct io_thread *io, const struct epoll_event *ev);
static void accept_some(struct io_thread *io, int slot);
static void admit(struct io_thread *io, int fd, const struct sockaddr_storage *ss, int slot);
enum { WAIT_TLS, WAIT_SESSION };
static void expire_waits(struct io_thread *io);
static void wait_append(struct net_conn *c, int kind, int timeout_ms);
static void wait_unlink(struct net_conn *c, int kind);
static void do_handshake(struct net_conn *c);
static void open_conn(struct net_conn *c);
static void read_some(struct net_conn *c);
static void drop_input(struct net_conn *c);
static void consume_scratch(struct net_conn *c, const uint8_t *p, size_t n);
static void consume_stash(struct net_conn *c);
static size_t parse_frames(struct net_conn *c, const uint8_t *p, size_t n, size_t *need);
static void drain_inbox(struct io_thread *io);
static void run_ready(struct io_thread *io);
static void flush_all(struct io_thread *io);
static void flush_conn(struct net_conn *c);
static void write_out(struct net_conn *c);
static void finalize(struct net_conn *c);
static void shutdown_thread(struct io_thread *io);
static void quiesce_thread(struct io_thread *io);
static void begin_close(struct net_conn *c, int level, const char *reason);
static void conn_fail(struct net_conn *c, const char *what, int err);
static void update_interest(struct net_conn *c);
static void want_flush(struct net_conn *c);
static void want_ready(struct net_conn *c);
static bool conn_reading(const struct net_conn *c);
static uint32_t wants_to_epoll(unsigned wants);
static bool ip_acquire(const char *ip, bool *nomem);
static void ip_release(const char *ip);
static void ring(struct io_thread *io);
static int64_t now_ms(void);

/* ---- start and stop -------------------------------------------------- */

int net_start(const struct net_config *cfg, const struct net_callbacks *cb, char *err, size_t errlen)
{
	if (net.threads) {
		snprintf(err, errlen, "net_start: already running");
		return -1;
	}
	if (cfg->n_threads < 1 || cfg->n_threads > MAX_THREADS) {
		snprintf(err, errlen, "n_threads must be 1..%d, not %d", MAX_THREADS, cfg->n_threads);
		return -1;
	}
	if (!cb->on_frame || !cb->on_msg) {
		snprintf(err, errlen, "net_start: on_frame and on_msg are required");
		return -1;
	}
	net.cb = *cb;
	net.max_frame = cfg->max_frame ? cfg->max_frame : JUTE_DEFAULT_MAXBUFFER;
	if (net.max_frame > INT32_MAX - 4)
		net.max_frame = INT32_MAX - 4;
	net.max_per_ip = cfg->max_cnxns_per_ip > 0 ? cfg->max_cnxns_per_ip : 0;
	net.n_threads = cfg->n_threads;
	net.port = net.secure_port = -1;
	net.sessionless_ms = cfg->sessionless_timeout_ms;
	net.hs_timeout_ms = cfg->tls && cfg->tls->handshake_timeout_ms > 0 ? cfg->tls->handshake_timeout_ms
									   : HS_TIMEOUT_MS;
	bool secure = cfg->tls && cfg->secure_port >= 0;
	if (cfg->port < 0 && !secure) {
		snprintf(err, errlen, "net_start: neither a client port nor a secure client port");
		return -1;
	}
	if (cfg->unify_client_port && (!cfg->tls || cfg->port < 0)) {
		snprintf(err, errlen, "net_start: port unification needs a client port and TLS settings");
		return -1;
	}
	net.unify = cfg->unify_client_port;
	memset(stats, 0, sizeof stats);
	conn_tls_metrics_init();
	sessionless_expired = metrics_counter("sessionless_connections_expired",
					      "Connections closed for sending no ConnectRequest in time");
	connection_rejected = metrics_counter("connection_rejected", "Connections refused by maxClientCnxns");
	if (cfg->tls && tls_setup(cfg->tls, err, errlen) != 0)
		return -1;

	size_t size = (size_t)net.n_threads * sizeof(struct io_thread);
	net.threads = aligned_alloc(_Alignof(struct io_thread), size);
	if (!net.threads) {
		snprintf(err, errlen, "net_start: out of memory");
		tls_teardown();
		return -1;
	}
	memset(net.threads, 0, size);
	for (int i = 0; i < net.n_threads; i++) {
		struct io_thread *io = &net.threads[i];
		io->index = i;
		io->epfd = io->wake_fd = -1;
		for (int l = 0; l < N_LST; l++)
			io->listen_fd[l] = -1;
		__cds_wfcq_init(&io->inbox_head, &io->inbox_tail);
	}

	int backlog = cfg->listen_backlog > 0 ? cfg->listen_backlog : 1024;
	if ((cfg->port >= 0 &&
	     open_listeners(cfg->bind_addr, cfg->port, backlog, LST_PLAIN, &net.port, err, errlen) < 0) ||
	    (secure &&
	     open_listeners(cfg->secure_bind_addr, cfg->secure_port, backlog, LST_TLS, &net.secure_port,
			    err, errlen) < 0)) {
		release_threads(0);
		return -1;
	}
	for (int i = 0; i < net.n_threads; i++) {
		if (setup_thread(&net.threads[i], err, errlen) < 0) {
			release_threads(0);
			return -1;
		}
	}
	for (int i = 0; i < net.n_threads; i++) {
		int rc = pthread_create(&net.threads[i].tid, NULL, io_main, &net.threads[i]);
		if (rc != 0) {
			snprintf(err, errlen, "net_start: pthread_create: %s", strerror(rc));
			release_threads(i);
			return -1;
		}
	}
	atomic_store_explicit(&running_threads, net.n_threads, memory_order_release);
	if (net.port >= 0)
		log_info("listening on %s:%d%s with %d I/O threads, max frame %u, max %d connections per IP",
			 cfg->bind_addr && *cfg->bind_addr ? cfg->bind_addr : "0.0.0.0", net.port,
			 net.unify ? " (plain and TLS: client.portUnification)" : "",
			 net.n_threads, net.max_frame, net.max_per_ip);
	if (net.secure_port >= 0)
		log_info("listening for TLS on %s:%d with %d I/O threads, handshakes bounded to %d ms",
			 cfg->secure_bind_addr && *cfg->secure_bind_addr ? cfg->secure_bind_addr : "0.0.0.0",
			 net.secure_port, net.n_threads, net.hs_timeout_ms);
	return 0;
}

void net_stop(void)
{
	if (!net.threads)
		return;
	for (int i = 0; i < net.n_threads; i++) {
		atomic_store_explicit(&net.threads[i].stop, true, memory_order_release);
		ring(&net.threads[i]);
	}
	release_threads(net.n_threads);
	log_info("network stopped");
}

void net_quiesce(int timeout_ms)
{
	if (!net.threads)
		return;
	for (int i = 0; i < net.n_threads; i++) {
		atomic_store_explicit(&net.threads[i].quiesce, true, memory_order_release);
		ring(&net.threads[i]);
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&quiet.lock);
	while (quiet.done < net.n_threads)
		if (pthread_cond_timedwait(&quiet.cond, &quiet.lock, &until) == ETIMEDOUT)
			break;
	int done = quiet.done;
	pthread_mutex_unlock(&quiet.lock);
	if (done < net.n_threads)
		log_warn("%d of %d I/O threads did not stop reading within %d ms", net.n_threads - done,
			 net.n_threads, timeout_ms);
}

/* Joins the first `started` threads, then frees everything net_start made. */
static void release_threads(int started)
{
	atomic_store_explicit(&running_threads, 0, memory_order_release);
	for (int i = 0; i < started; i++) {
		struct io_thread *io = &net.threads[i];
		atomic_store_explicit(&io->stop, true, memory_order_release);
		ring(io);
		pthread_join(io->tid, NULL);
	}
	for (int i = 0; i < net.n_threads; i++) {
		struct io_thread *io = &net.threads[i];
		for (int l = 0; l < N_LST; l++)
			if (io->listen_fd[l] >= 0)
				close(io->listen_fd[l]);
		if (io->wake_fd >= 0)
			close(io->wake_fd);
		if (io->epfd >= 0)
			close(io->epfd);
		free(io->scratch);
		free(io->conns);
	}
	free(net.threads);
	net.threads = NULL;
	pthread_mutex_lock(&quiet.lock);
	quiet.done = 0;     /* a later net_start begins unquiesced */
	pthread_mutex_unlock(&quiet.lock);
	net.n_threads = 0;
	net.port = net.secure_port = -1;
	tls_teardown();     /* no thread uses the context any more */
	pthread_mutex_lock(&ipmap.lock);
	for (size_t b = 0; b < IP_BUCKETS; b++) {
		while (ipmap.bucket[b]) {
			struct ip_count *e = ipmap.bucket[b];
			ipmap.bucket[b] = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&ipmap.lock);
}

/* One listening socket per thread on the same address and port, in
 * listen_fd[slot] of every thread. The first is bound without SO_REUSEPORT,
 * so a second server on the same port fails with "Address already in use"
 * instead of silently sharing the port; the option is turned on after that
 * bind so the others can join. *bound is the port bound. */
static int open_listeners(const char *bind_addr, int port, int backlog, int slot, int *bound,
			  char *err, size_t errlen)
{
	const char *host = bind_addr && *bind_addr ? bind_addr : NULL;
	struct addrinfo hints = { .ai_family = host ? AF_UNSPEC : AF_INET,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, "0", &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "%s:%d: %s", host ? host : "0.0.0.0", port, gai_strerror(rc));
		return -1;
	}
	struct sockaddr_storage addr;
	socklen_t alen = ai->ai_addrlen;
	memcpy(&addr, ai->ai_addr, alen);
	freeaddrinfo(ai);

	const int one = 1;
	for (int i = 0; i < net.n_threads; i++) {
		struct io_thread *io = &net.threads[i];
		if (addr.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port);
		else
			((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
		int fd = io->listen_fd[slot] = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (i > 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
			goto fail;
		if (bind(fd, (struct sockaddr *)&addr, alen) < 0)
			goto fail;
		if (i == 0) {
			struct sockaddr_storage got;
			socklen_t glen = sizeof got;
			if (getsockname(fd, (struct sockaddr *)&got, &glen) < 0)
				goto fail;
			port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
							       : ((struct sockaddr_in *)&got)->sin_port);
			if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
				goto fail;
		}
		if (listen(fd, backlog) < 0)
			goto fail;
	}
	*bound = port;
	return 0;
fail:
	snprintf(err, errlen, "%s:%d: %s", host ? host : "0.0.0.0", port, strerror(errno));
	return -1;
}

static int setup_thread(struct io_thread *io, char *err, size_t errlen)
{
	io->epfd = epoll_create1(EPOLL_CLOEXEC);
	io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	io->scratch = malloc(SCRATCH_SIZE);
	io->next_gen = 1;
	if (io->epfd < 0 || io->wake_fd < 0 || !io->scratch) {
		snprintf(err, errlen, "net_start: I/O thread setup: %s", strerror(errno));
		return -1;
	}
	struct epoll_event wake = { .events = EPOLLIN, .data.u64 = TAG_WAKE };
	if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->wake_fd, &wake) < 0)
		goto fail;
	for (int l = 0; l < N_LST; l++) {
		struct epoll_event lst = { .events = EPOLLIN, .data.u64 = l == LST_TLS ? TAG_LISTEN_TLS : TAG_LISTEN };
		if (io->listen_fd[l] >= 0 && epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->listen_fd[l], &lst) < 0)
			goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "net_start: epoll_ctl: %s", strerror(errno));
	return -1;
}

/* ---- the loop -------------------------------------------------------- */

static void *io_main(void *arg)
{
	struct io_thread *io = arg;
	char name[16];

	snprintf(name, sizeof name, "zkd-io-%d", io->index);
	log_thread_name(name);
	rcu_register_thread();
	self = io;
	while (!atomic_load_explicit(&io->stop, memory_order_acquire))
		loop_once(io);
	shutdown_thread(io);
	self = NULL;
	rcu_unregister_thread();
	return NULL;
}

static void loop_once(struct io_thread *io)
{
	struct epoll_event evs[MAX_EVENTS];
	int n = wait_events(io, evs, wait_timeout(io));

	/* before the events: input they report is no longer read */
	if (!io->quiesced && atomic_load_explicit(&io->quiesce, memory_order_acquire))
		quiesce_thread(io);
	for (int i = 0; i < n; i++)
		handle_event(io, &evs[i]);
	if (io->waits[WAIT_TLS].head || io->waits[WAIT_SESSION].head)
		expire_waits(io);
	drain_inbox(io);
	run_ready(io);
	if (net.cb.on_idle)
		net.cb.on_idle(net.cb.ctx, io->index);
	flush_all(io);
}

/* Arms (or with events 0 disarms) every listener of the thread. */
static void arm_listeners(struct io_thread *io, uint32_t events)
{
	for (int l = 0; l < N_LST; l++) {
		struct epoll_event lst = { .events = events, .data.u64 = l == LST_TLS ? TAG_LISTEN_TLS : TAG_LISTEN };
		if (io->listen_fd[l] >= 0)
			epoll_ctl(io->epfd, EPOLL_CTL_MOD, io->listen_fd[l], &lst);
	}
}

/* 0 if there is work already; else until the end of a listener pause or
 * the first handshake deadline, whichever comes first; else forever. */
static int wait_timeout(struct io_thread *io)
{
	if (io->ready)
		return 0;
	if (io->accept_resume_ms == 0 && !io->waits[WAIT_TLS].head && !io->waits[WAIT_SESSION].head)
		return -1;
	int64_t now = now_ms(), left = INT32_MAX;
	if (io->accept_resume_ms != 0) {
		left = io->accept_resume_ms - now;
		if (left <= 0) {
			arm_listeners(io, EPOLLIN);
			io->accept_resume_ms = 0;
			return 0;
		}
	}
	for (int k = 0; k < 2; k++) {
		if (!io->waits[k].head)
			continue;
		int64_t d = io->waits[k].head->wait[k].deadline_ms - now;
		if (d < left)
			left = d > 0 ? d : 0;
	}
	return (int)left;
}

static int wait_events(struct io_thread *io, struct epoll_event *evs, int timeout)
{
	if (timeout != 0) {
		/* Dekker with net_post: publish `sleeping`, full barrier, then
		 * look at the inbox. A poster enqueues, full barrier, then looks
		 * at `sleeping`. At least one side sees the other's write. */
		atomic_store(&io->sleeping, true);
		cmm_smp_mb();
		if (!cds_wfcq_empty(&io->inbox_head, &io->inbox_tail))
			timeout = 0;
	}
	int n = epoll_wait(io->epfd, evs, MAX_EVENTS, timeout);
	atomic_store(&io->sleeping, false);
	if (n < 0) {
		if (errno != EINTR)
			log_error("epoll_wait: %s", strerror(errno));
		return 0;
	}
	return n;
}

static void handle_event(struct io_thread *io, const struct epoll_event *ev)
{
	if (ev->data.u64 == TAG_WAKE) {
		uint64_t v;
		ssize_t r = read(io->wake_fd, &v, sizeof v);   /* resets the counter */
		(void)r;
		return;
	}
	if (ev->data.u64 == TAG_LISTEN || ev->data.u64 == TAG_LISTEN_TLS) {
		accept_some(io, ev->data.u64 == TAG_LISTEN_TLS ? LST_TLS : LST_PLAIN);
		return;
	}
	size_t fd = (size_t)(ev->data.u64 >> 32);
	struct net_conn *c = fd < io->conns_cap ? io->conns[fd] : NULL;
	if (!c || c->gen != (uint32_t)ev->data.u64 || c->state >= ST_DEAD)
		return;     /* an event for a connection already gone or going */
	if (ev->events & (EPOLLERR | EPOLLHUP)) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		getsockopt(c->sock.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		conn_fail(c, "connection lost", soerr ? soerr : ECONNRESET);
		return;
	}
	if (c->state == ST_HANDSHAKE) {
		do_handshake(c);
		return;
	}
	if (conn_reading(c) && (ev->events & wants_to_epoll(c->read_wants)))
		read_some(c);
	if (c->out_blocked && (ev->events & wants_to_epoll(c->write_wants))) {
		c->out_blocked = false;
		want_flush(c);
	}
}

/* ---- accepting ------------------------------------------------------- */

static void accept_some(struct io_thread *io, int slot)
{
	for (int i = 0; i < ACCEPT_BUDGET; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(io->listen_fd[slot], (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			admit(io, fd, &ss, slot);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR: case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN:
		case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH:
		case EOPNOTSUPP: case ENETUNREACH:
			continue;   /* that one connection failed; the listener is fine */
		default: {
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener stays readable
			 * and would spin the loop; rest them all for a moment. */
			arm_listeners(io, 0);
			io->accept_resume_ms = now_ms() + ACCEPT_PAUSE_MS;
			log_warn("accept: %s; not accepting for %d ms", strerror(errno), ACCEPT_PAUSE_MS);
			return;
		}
		}
	}
}

static void format_peer(const struct sockaddr_storage *ss, char *ip, size_t iplen, char *peer, size_t peerlen)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
		snprintf(peer, peerlen, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
		snprintf(peer, peerlen, "%s:%u", ip, ntohs(a->sin_port));
	} else {
		snprintf(ip, iplen, "?");
		snprintf(peer, peerlen, "?");
	}
}

/* A freshly accepted socket: apply the per-IP cap, make it a connection
 * (plain or TLS, by the listener it came from). */
static void admit(struct io_thread *io, int fd, const struct sockaddr_storage *ss, int slot)
{
	char ip[INET6_ADDRSTRLEN], peer[INET6_ADDRSTRLEN + 8];
	format_peer(ss, ip, sizeof ip, peer, sizeof peer);

	if (fd >= MAX_FD) {
		log_warn("%s: refused: descriptor %d out of range", peer, fd);
		close(fd);
		return;
	}
	bool counted = false;
	if (net.max_per_ip > 0) {
		bool nomem = false;
		if (!ip_acquire(ip, &nomem)) {
			if (nomem) {
				log_error("%s: refused: out of memory", peer);
			} else {
				log_warn("Too many connections from %s - max is %d", ip, net.max_per_ip);
				metric_inc(connection_rejected);
				STAT_ADD(io, rejected_cap, 1);
			}
			close(fd);
			return;
		}
		counted = true;
	}

	struct net_conn *c = calloc(1, sizeof *c);
	if (c && (size_t)fd >= io->conns_cap) {
		size_t cap = io->conns_cap ? io->conns_cap : 64;
		while (cap <= (size_t)fd)
			cap *= 2;
		struct net_conn **t = realloc(io->conns, cap * sizeof *t);
		if (t) {
			memset(t + io->conns_cap, 0, (cap - io->conns_cap) * sizeof *t);
			io->conns = t;
			io->conns_cap = cap;
		}
	}
	if (!c || (size_t)fd >= io->conns_cap) {
		log_error("%s: refused: out of memory", peer);
		free(c);
		if (counted)
			ip_release(ip);
		close(fd);
		return;
	}

	const int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->io = io;
	c->gen = io->next_gen++;
	if (io->next_gen == 0)
		io->next_gen = 1;   /* generation 0 never names a connection */
	c->state = ST_HANDSHAKE;
	c->ip_counted = counted;
	c->secure_port = slot == LST_TLS;
	c->read_wants = CONN_WANT_READ;
	c->write_wants = CONN_WANT_WRITE;
	c->sock.wants = CONN_WANT_READ;
	jute_writer_init(&c->out, 0);
	memcpy(c->ip, ip, sizeof ip);
	memcpy(c->peer, peer, sizeof peer);
	const struct conn_type *type = slot == LST_TLS ? &conn_tls : net.unify ? &conn_sniff : &conn_plain;
	if (type->attach(&c->sock, fd) < 0) {
		log_error("%s: refused: %s", peer, strerror(errno));
		if (counted)
			ip_release(ip);
		free(c);
		return;
	}
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = ((uint64_t)fd << 32) | c->gen };
	if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		log_error("%s: refused: epoll_ctl: %s", peer, strerror(errno));
		c->sock.type->close(&c->sock);
		if (counted)
			ip_release(ip);
		free(c);
		return;
	}
	c->events = EPOLLIN;
	io->conns[fd] = c;
	STAT_ADD(io, accepted, 1);
	log_debug("%s: accepted (%s)", peer, type->name);
	if (c->sock.type->handshake) {
		wait_append(c, WAIT_TLS, net.hs_timeout_ms);
		do_handshake(c);
	} else {
		open_conn(c);
	}
}

/* Onto the tail of a wait list: every connection of a kind waits equally
 * long, so the list stays in deadline order. */
static void wait_append(struct net_conn *c, int kind, int timeout_ms)
{
	struct dlist *l = &c->io->waits[kind];
	struct dlink *k = &c->wait[kind];
	k->deadline_ms = now_ms() + timeout_ms;
	k->on = true;
	k->prev = l->tail;
	k->next = NULL;
	if (l->tail)
		l->tail->wait[kind].next = c;
	else
		l->head = c;
	l->tail = c;
}

static void wait_unlink(struct net_conn *c, int kind)
{
	struct dlist *l = &c->io->waits[kind];
	struct dlink *k = &c->wait[kind];
	if (!k->on)
		return;
	if (k->prev)
		k->prev->wait[kind].next = k->next;
	else
		l->head = k->next;
	if (k->next)
		k->next->wait[kind].prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
	k->on = false;
}

/* Closes every connection whose TLS handshake, or whose ZooKeeper session
 * handshake, outlived its bound (ZooKeeper closes a sessionless connection
 * after zookeeper.nio.sessionlessCnxnTimeout, 10 s). */
static void expire_waits(struct io_thread *io)
{
	int64_t now = now_ms();
	struct dlist *tls = &io->waits[WAIT_TLS], *ses = &io->waits[WAIT_SESSION];
	while (tls->head && tls->head->wait[WAIT_TLS].deadline_ms <= now) {
		struct net_conn *c = tls->head;
		wait_unlink(c, WAIT_TLS);
		if (c->state != ST_HANDSHAKE)
			continue;
		log_info("%s: TLS handshake not finished within %d ms, closing", c->peer, net.hs_timeout_ms);
		c->state = ST_DEAD;
		want_flush(c);
	}
	while (ses->head && ses->head->wait[WAIT_SESSION].deadline_ms <= now) {
		struct net_conn *c = ses->head;
		wait_unlink(c, WAIT_SESSION);
		if (c->state == ST_OPEN) {
			metric_inc(sessionless_expired);
			begin_close(c, LOG_INFO, "no session (ConnectRequest) within the sessionless timeout");
		}
	}
}

static void do_handshake(struct net_conn *c)
{
	int r = c->sock.type->handshake(&c->sock);
	if (r == CONN_HS_AGAIN) {
		update_interest(c);
		return;
	}
	wait_unlink(c, WAIT_TLS);
	if (r == CONN_HS_ERROR) {
		conn_fail(c, "handshake failed", errno ? errno : EPROTO);
		return;
	}
	open_conn(c);
}

static void open_conn(struct net_conn *c)
{
	wait_unlink(c, WAIT_TLS);
	if (net.sessionless_ms > 0)
		wait_append(c, WAIT_SESSION, net.sessionless_ms);
	c->state = ST_OPEN;
	c->opened = true;
	update_interest(c);
	if (net.cb.on_open)
		net.cb.on_open(net.cb.ctx, c);
	if (c->sock.type->has_pending && c->sock.type->has_pending(&c->sock))
		want_ready(c);
}

/* ---- input ----------------------------------------------------------- */

/* Reads up to READ_BUDGET bytes and hands up every complete frame. Small
 * frames are read into the thread's scratch buffer (a stashed partial frame
 * is copied in front first); only a frame larger than the scratch buffer is
 * read straight into the connection's own buffer. */
static void read_some(struct net_conn *c)
{
	struct io_thread *io = c->io;
	size_t budget = READ_BUDGET;
	size_t scratch_room = net.max_frame + 4 < SCRATCH_SIZE ? net.max_frame + 4 : SCRATCH_SIZE;

	if (c->in_len > 0)
		consume_stash(c);   /* frames held while paused come first */
	while (budget > 0 && conn_reading(c)) {
		bool big = c->in_len > 0 && c->in_cap > scratch_room;
		uint8_t *base = big ? c->in : io->scratch;
		size_t have = c->in_len;
		size_t room = (big ? c->in_cap : scratch_room) - have;
		if (room > budget)
			room = budget;
		if (room == 0)
			break;      /* cannot happen: a partial frame always fits its buffer */
		if (!big && have > 0)
			memcpy(base, c->in, have);  /* the stash stays valid until bytes arrive */
		ssize_t n = c->sock.type->read(&c->sock, base + have, room);
		if (n == 0) {
			begin_close(c, LOG_DEBUG, "closed by peer");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN) {
				c->read_wants = c->sock.wants ? c->sock.wants : CONN_WANT_READ;
				update_interest(c);
			} else {
				conn_fail(c, "read", errno);
			}
			return;
		}
		STAT_ADD(io, bytes_received, n);
		budget -= (size_t)n;
		if (c->read_wants != CONN_WANT_READ) {
			/* a TLS read that needed writability got it: back to
			 * waiting for input */
			c->read_wants = CONN_WANT_READ;
			update_interest(c);
		}
		if (big) {
			c->in_len += (size_t)n;
			consume_stash(c);
		} else {
			drop_input(c);
			consume_scratch(c, base, have + (size_t)n);
		}
		if ((size_t)n < room)
			break;      /* drained for now; epoll reports what comes next */
	}
	if (conn_reading(c) && c->sock.type->has_pending && c->sock.type->has_pending(&c->sock))
		want_ready(c);
}

static void drop_input(struct net_conn *c)
{
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
}

/* Frames read into the thread's scratch buffer: parse them in place and
 * keep only what could not be handed up yet. */
static void consume_scratch(struct net_conn *c, const uint8_t *p, size_t n)
{
	size_t need;
	size_t used = parse_frames(c, p, n, &need);

	if (c->state != ST_OPEN || c->fourlw)
		return;     /* closing: the rest of the input does not matter */
	size_t left = n - used;
	if (left == 0)
		return;
	size_t cap = IN_MIN_CAP < net.max_frame + 4 ? IN_MIN_CAP : net.max_frame + 4;
	if (cap < need)
		cap = need;
	if (cap < left)
		cap = left;
	c->in = malloc(cap);
	if (!c->in) {
		c->in_cap = 0;
		conn_fail(c, "input buffer", ENOMEM);
		return;
	}
	memcpy(c->in, p + used, left);
	c->in_len = left;
	c->in_cap = cap;
}

/* Frames in the connection's own buffer: parse, compact, size for the next
 * frame (never past max_frame + 4), or free when nothing is left. */
static void consume_stash(struct net_conn *c)
{
	size_t need;
	size_t used = parse_frames(c, c->in, c->in_len, &need);

	if (c->state != ST_OPEN || c->fourlw) {
		drop_input(c);
		return;
	}
	c->in_len -= used;
	if (c->in_len == 0) {
		drop_input(c);
		return;
	}
	if (used > 0)
		memmove(c->in, c->in + used, c->in_len);
	/* Grow for the next frame, or give back a big buffer once what is
	 * left fits the scratch buffer again. */
	size_t want = need > c->in_len ? need : c->in_len;
	if (want > c->in_cap || (c->in_cap > SCRATCH_SIZE && want <= SCRATCH_SIZE)) {
		uint8_t *sized = realloc(c->in, want);
		if (!sized) {
			conn_fail(c, "input buffer", ENOMEM);
			return;
		}
		c->in = sized;
		c->in_cap = want;
	}
}

static bool is_fourlw(const uint8_t *p)
{
	for (size_t i = 0; i < sizeof fourlw_words / sizeof fourlw_words[0]; i++)
		if (memcmp(p, fourlw_words[i], 4) == 0)
			return true;
	return false;
}

static void handle_fourlw(struct net_conn *c, const uint8_t *p, size_t n)
{
	char cmd[4];

	memcpy(cmd, p, 4);
	c->fourlw = true;
	update_interest(c);     /* no more reading: the rest is ignored */
	if (net.cb.on_4lw)
		net.cb.on_4lw(net.cb.ctx, c, cmd, p + 4, n - 4);
	else
		begin_close(c, LOG_INFO, "four-letter words are not served");
}

/* Hands up every complete frame in p[0, n) while the connection reads.
 * Returns the bytes used; *need is the size of the first frame (with its
 * prefix) that is not complete yet, 4 while its length is unknown. */
static size_t parse_frames(struct net_conn *c, const uint8_t *p, size_t n, size_t *need)
{
	size_t off = 0;

	*need = 4;
	while (conn_reading(c) && n - off >= 4) {
		const uint8_t *at = p + off;
		if (!c->seen_first) {
			/* ZooKeeper reads a 4lw as the first frame's length, so only
			 * the first four bytes of a connection can be one. */
			if (memcmp(at, "stmk", 4) == 0 && n - off < 12) {
				*need = 12;     /* the word and its 8-byte mask */
				break;
			}
			c->seen_first = true;
			if (is_fourlw(at)) {
				handle_fourlw(c, at, n - off);
				return n;
			}
		}
		int32_t len = (int32_t)jute_get_u32(at);
		if (len < 0 || (uint32_t)len > net.max_frame) {
			log_warn("%s: Len error %d (max %u), closing", c->peer, len, net.max_frame);
			begin_close(c, LOG_NONE, NULL);
			return n;
		}
		if (n - off - 4 < (size_t)len) {
			*need = 4 + (size_t)len;
			break;
		}
		STAT_ADD(c->io, packets_received, 1);
		off += 4 + (size_t)len;
		if (net.cb.on_frame(net.cb.ctx, c, at + 4, (size_t)len) < 0)
			begin_close(c, LOG_DEBUG, "request refused");
	}
	return off;
}

/* ---- inbox and ready list -------------------------------------------- */

static struct net_conn *conn_by_addr(struct io_thread *io, net_addr a)
{
	size_t fd = (size_t)((a >> 32) & (MAX_FD - 1));
	if ((int)(a >> 56) != io->index || fd >= io->conns_cap)
		return NULL;
	struct net_conn *c = io->conns[fd];
	if (!c || c->gen != (uint32_t)a || c->state == ST_HANDSHAKE || c->state == ST_FINAL)
		return NULL;
	return c;
}

/* Takes the whole inbox at once and delivers it in order. */
static void drain_inbox(struct io_thread *io)
{
	struct __cds_wfcq_head head;
	struct cds_wfcq_tail tail;
	struct cds_wfcq_node *node, *next;

	__cds_wfcq_init(&head, &tail);
	if (__cds_wfcq_splice_blocking(&head, &tail, &io->inbox_head, &io->inbox_tail) ==
	    CDS_WFCQ_RET_SRC_EMPTY)
		return;
	TSAN_ACQUIRE(io);
	__cds_wfcq_for_each_blocking_safe(&head, &tail, node, next) {
		struct net_msg *m = caa_container_of(node, struct net_msg, node);
		net.cb.on_msg(net.cb.ctx, conn_by_addr(io, m->to), m);
	}
}

/* Connections resumed (or holding type-buffered input) since they last
 * read: parse what they hold without waiting for new bytes. Connections
 * queued while this runs wait for the next iteration (which then does not
 * sleep). */
static void run_ready(struct io_thread *io)
{
	struct net_conn *list = io->ready;

	io->ready = NULL;
	while (list) {
		struct net_conn *c = list;
		list = c->ready_next;
		c->ready_next = NULL;
		c->on_ready = false;
		if (!conn_reading(c))
			continue;
		if (c->in_len > 0)
			consume_stash(c);
		if (conn_reading(c) && c->sock.type->has_pending && c->sock.type->has_pending(&c->sock))
			read_some(c);
	}
}

/* ---- output and closing ---------------------------------------------- */

/* Writes every connection on the flush list and finishes closes. Closes
 * queued by on_close callbacks while this runs are handled in the same
 * pass. */
static void flush_all(struct io_thread *io)
{
	while (io->flush) {
		struct net_conn *c = io->flush;
		io->flush = c->flush_next;
		c->flush_next = NULL;
		c->on_flush = false;
		flush_conn(c);
	}
}

static void flush_conn(struct net_conn *c)
{
	if (c->state < ST_DEAD && c->out.err != JUTE_OK)
		conn_fail(c, "encoding output", ENOMEM);
	/* Measured before writing: parsing stops as soon as replies pass
	 * OUT_HIGH (conn_reading), possibly with frames left in the stash. If
	 * the write below then drained everything, nothing would mark the
	 * connection full, nothing would resume the stash, and a client
	 * waiting for those replies would wait forever. */
	size_t unsent = c->out.len - c->out_off;
	if (!c->out_full && unsent >= OUT_HIGH) {
		c->out_full = true;
		log_debug("%s: %zu reply bytes unread by the client; not reading its requests until it catches up",
			  c->peer, unsent);
	}
	if (c->state == ST_OPEN || c->state == ST_CLOSING) {
		if (!c->out_blocked)
			write_out(c);
	}
	if (c->state == ST_DEAD || (c->state == ST_CLOSING && c->out_off == c->out.len)) {
		finalize(c);
		return;
	}
	unsent = c->out.len - c->out_off;
	if (c->out_full && unsent < OUT_HIGH / 2) {
		c->out_full = false;
		if (c->in_len > 0 || (c->sock.type->has_pending && c->sock.type->has_pending(&c->sock)))
			want_ready(c);   /* frames already read wait to be parsed */
	}
	update_interest(c);
}

static void write_out(struct net_conn *c)
{
	while (c->out_off < c->out.len) {
		struct iovec iov = { c->out.buf + c->out_off, c->out.len - c->out_off };
		ssize_t n = c->sock.type->writev(&c->sock, &iov, 1);
		if (n < 0) {
			if (errno != EAGAIN) {
				conn_fail(c, "write", errno);
				return;
			}
			c->out_blocked = true;
			c->write_wants = c->sock.wants ? c->sock.wants : CONN_WANT_WRITE;
			break;
		}
		c->out_off += (size_t)n;
		STAT_ADD(c->io, bytes_sent, n);
	}
	if (c->out_off == c->out.len) {
		c->out.len = c->out_off = 0;
		if (c->out.cap > OUT_KEEP_CAP)
			jute_writer_free(&c->out);
	} else if (c->out_off >= OUT_COMPACT && c->out_off * 2 >= c->out.len) {
		memmove(c->out.buf, c->out.buf + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
}

static void unlink_from(struct net_conn **list, struct net_conn *c, bool ready)
{
	for (struct net_conn **pp = list; *pp; pp = ready ? &(*pp)->ready_next : &(*pp)->flush_next) {
		if (*pp == c) {
			*pp = ready ? c->ready_next : c->flush_next;
			return;
		}
	}
}

/* The end of a connection: on_close (if on_open was called), close the
 * socket, free. The only place a struct net_conn is freed. */
static void finalize(struct net_conn *c)
{
	struct io_thread *io = c->io;
	int fd = c->sock.fd;

	if (c->on_ready)
		unlink_from(&io->ready, c, true);
	if (c->on_flush)
		unlink_from(&io->flush, c, false);
	wait_unlink(c, WAIT_TLS);
	wait_unlink(c, WAIT_SESSION);
	c->on_ready = c->on_flush = false;
	c->state = ST_FINAL;
	if (c->opened && net.cb.on_close)
		net.cb.on_close(net.cb.ctx, c);
	epoll_ctl(io->epfd, EPOLL_CTL_DEL, fd, NULL);
	c->sock.type->close(&c->sock);
	io->conns[fd] = NULL;
	if (c->ip_counted)
		ip_release(c->ip);
	STAT_ADD(io, closed, 1);
	drop_input(c);
	jute_writer_free(&c->out);
	free(c);
}

static void close_listeners(struct io_thread *io)
{
	for (int l = 0; l < N_LST; l++) {
		if (io->listen_fd[l] < 0)
			continue;
		epoll_ctl(io->epfd, EPOLL_CTL_DEL, io->listen_fd[l], NULL);
		close(io->listen_fd[l]);
		io->listen_fd[l] = -1;
	}
}

/* net_quiesce, on the I/O thread: the listeners close (a client trying to
 * connect is refused at once instead of waiting in a backlog nobody
 * accepts from), connections stop reading (input already read but not yet
 * handed up stays unread), TLS handshakes in progress are dropped. Output
 * and the inbox go on, so replies of requests already in the pipeline still
 * reach their clients. */
static void quiesce_thread(struct io_thread *io)
{
	io->quiesced = true;
	close_listeners(io);
	io->accept_resume_ms = 0;
	for (size_t fd = 0; fd < io->conns_cap; fd++) {
		struct net_conn *c = io->conns[fd];
		if (!c)
			continue;
		if (c->state == ST_HANDSHAKE) {
			c->state = ST_DEAD;   /* never opened: nothing above knows it */
			want_flush(c);
		} else {
			update_interest(c);   /* conn_reading is false now */
		}
	}
	pthread_mutex_lock(&quiet.lock);
	quiet.done++;
	pthread_cond_broadcast(&quiet.cond);
	pthread_mutex_unlock(&quiet.lock);
}

/* net_stop: no more accepts; the inbox's messages are delivered while the
 * connections still live (replies the pipeline finished just before the
 * stop go out), one last flush for everyone, then close all and hand what
 * reached the inbox since back with conn == NULL. */
static void shutdown_thread(struct io_thread *io)
{
	close_listeners(io);
	drain_inbox(io);
	for (size_t fd = 0; fd < io->conns_cap; fd++)
		if (io->conns[fd])
			begin_close(io->conns[fd], LOG_NONE, NULL);
	flush_all(io);
	for (size_t fd = 0; fd < io->conns_cap; fd++)
		if (io->conns[fd])
			finalize(io->conns[fd]);
	drain_inbox(io);
}

static void begin_close(struct net_conn *c, int level, const char *reason)
{
	if (c->state >= ST_CLOSING)
		return;
	if (level != LOG_NONE)
		zlog((enum log_level)level, "%s: closing: %s", c->peer, reason);
	c->state = ST_CLOSING;
	update_interest(c);     /* stop reading */
	want_flush(c);
}

/* The socket is unusable: close without flushing (at the end of the loop
 * iteration, when nothing holds the pointer any more). */
static void conn_fail(struct net_conn *c, const char *what, int err)
{
	if (c->state >= ST_DEAD)
		return;
	char buf[128];
	const char *why = c->sock.type->why ? c->sock.type->why(&c->sock) : NULL;
	if (why)
		/* the type's own account (a TLS alert, a certificate that
		 * did not verify) names the step itself; a peer that just
		 * went away is no news, as below */
		zlog(err == ECONNRESET || err == EPIPE ? LOG_DEBUG : LOG_INFO, "%s: %s, closing", c->peer, why);
	else if (err == ECONNRESET || err == EPIPE)
		log_debug("%s: %s: %s", c->peer, what, strerror_r(err, buf, sizeof buf));
	else
		log_info("%s: %s: %s, closing", c->peer, what, strerror_r(err, buf, sizeof buf));
	c->state = ST_DEAD;
	want_flush(c);
}

static bool conn_reading(const struct net_conn *c)
{
	/* unsent bytes are checked as well as the flag: frames parsed in one
	 * read can add replies before the next flush sets it */
	return c->state == ST_OPEN && !c->paused && !c->out_full && c->out.len - c->out_off < OUT_HIGH &&
	       !c->fourlw && !c->io->quiesced;
}

static uint32_t wants_to_epoll(unsigned wants)
{
	return (wants & CONN_WANT_READ ? EPOLLIN : 0) | (wants & CONN_WANT_WRITE ? EPOLLOUT : 0);
}

/* Registers the readiness the connection's state needs, if it changed. */
static void update_interest(struct net_conn *c)
{
	uint32_t ev = 0;

	if (c->state >= ST_DEAD)
		return;
	if (c->state == ST_HANDSHAKE) {
		ev = wants_to_epoll(c->sock.wants ? c->sock.wants : CONN_WANT_READ);
	} else {
		if (conn_reading(c))
			ev |= wants_to_epoll(c->read_wants);
		if (c->out_blocked)
			ev |= wants_to_epoll(c->write_wants);
	}
	if (ev == c->events)
		return;
	struct epoll_event e = { .events = ev, .data.u64 = ((uint64_t)c->sock.fd << 32) | c->gen };
	if (epoll_ctl(c->io->epfd, EPOLL_CTL_MOD, c->sock.fd, &e) < 0) {
		conn_fail(c, "epoll_ctl", errno);
		return;
	}
	c->events = ev;
}

static void want_flush(struct net_conn *c)
{
	if (c->on_flush || c->state == ST_FINAL)
		return;
	c->on_flush = true;
	c->flush_next = c->io->flush;
	c->io->flush = c;
}

static void want_ready(struct net_conn *c)
{
	if (c->on_ready || c->state != ST_OPEN)
		return;
	c->on_ready = true;
	c->ready_next = c->io->ready;
	c->io->ready = c;
}

/* ---- per-IP counts ---------------------------------------------------- */

static size_t ip_hash(const char *ip)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (; *ip; ip++)
		h = (h ^ (uint8_t)*ip) * 16777619u;
	return h % IP_BUCKETS;
}

/* Takes one slot for ip unless it already holds max_per_ip. */
static bool ip_acquire(const char *ip, bool *nomem)
{
	size_t b = ip_hash(ip);
	bool ok = false;

	pthread_mutex_lock(&ipmap.lock);
	struct ip_count *e = ipmap.bucket[b];
	while (e && strcmp(e->ip, ip) != 0)
		e = e->next;
	if (!e) {
		e = calloc(1, sizeof *e);
		if (e) {
			snprintf(e->ip, sizeof e->ip, "%s", ip);
			e->next = ipmap.bucket[b];
			ipmap.bucket[b] = e;
		}
	}
	if (!e)
		*nomem = true;
	else if (e->n < net.max_per_ip)
		ok = ++e->n > 0;
	pthread_mutex_unlock(&ipmap.lock);
	return ok;
}

static void ip_release(const char *ip)
{
	size_t b = ip_hash(ip);

	pthread_mutex_lock(&ipmap.lock);
	for (struct ip_count **pp = &ipmap.bucket[b]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->ip, ip) == 0) {
			struct ip_count *e = *pp;
			if (--e->n == 0) {
				*pp = e->next;
				free(e);
			}
			break;
		}
	}
	pthread_mutex_unlock(&ipmap.lock);
}

/* ---- small helpers ----------------------------------------------------- */

static void ring(struct io_thread *io)
{
	uint64_t one = 1;
	ssize_t r = write(io->wake_fd, &one, sizeof one);
	(void)r;    /* EAGAIN only if the counter is saturated: already rung */
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- public API --------------------------------------------------------- */

/* Other threads ask how many I/O threads there are (Final's kicks) while
 * net_start may still be writing net: they read this instead, published
 * (release) once every thread runs and withdrawn before they stop. */
int net_n_threads(void) { return atomic_load_explicit(&running_threads, memory_order_acquire); }
int net_bound_port(void) { return net.port; }
int net_bound_secure_port(void) { return net.secure_port; }

int net_tls_reload(char *err, size_t errlen)
{
	assert(!self);
	return tls_reload(err, errlen);
}

/* Valid between net_start and net_stop. A message posted to a thread that
 * has already stopped is never delivered (the caller's pipeline must be
 * stopped first). An address naming no thread goes to thread 0, which hands
 * it back with conn == NULL. */
void net_post(net_addr to, struct net_msg *m)
{
	size_t idx = (size_t)(to >> 56);
	struct io_thread *io = &net.threads[idx < (size_t)net.n_threads ? idx : 0];

	m->to = to;
	cds_wfcq_node_init(&m->node);
	TSAN_RELEASE(io);
	cds_wfcq_enqueue(&io->inbox_head, &io->inbox_tail, &m->node);
	/* Dekker with wait_events: enqueue, full barrier, then look at
	 * `sleeping`. Only the poster that flips it rings. */
	cmm_smp_mb();
	if (atomic_load(&io->sleeping) && atomic_exchange(&io->sleeping, false))
		ring(io);
}

net_addr net_conn_addr(const struct net_conn *c)
{
	return ((uint64_t)c->io->index << 56) | ((uint64_t)c->sock.fd << 32) | c->gen;
}

int net_conn_io_index(const struct net_conn *c) { return c->io->index; }
void *net_conn_user(const struct net_conn *c) { return c->user; }
void net_conn_set_user(struct net_conn *c, void *user) { c->user = user; }
const char *net_conn_peer(const struct net_conn *c) { return c->peer; }
bool net_conn_secure(const struct net_conn *c) { return c->secure_port; }

int net_conn_x509_subject(const struct net_conn *c, char *out, size_t cap)
{
	assert(self == c->io);
	if (cap)
		out[0] = '\0';
	return conn_tls_subject(&c->sock, out, cap);
}

bool net_conn_closing(const struct net_conn *c)
{
	return c->state != ST_OPEN;
}

void net_conn_send(struct net_conn *c, const void *p, size_t len)
{
	assert(self == c->io);
	if (c->state >= ST_DEAD)
		return;     /* nobody will read it */
	jute_write_raw(&c->out, p, len);
	want_flush(c);
}

struct jute_writer *net_conn_out(struct net_conn *c)
{
	assert(self == c->io);
	want_flush(c);
	return &c->out;
}

void net_conn_pause(struct net_conn *c, bool paused)
{
	assert(self == c->io);
	if (c->state >= ST_DEAD)
		return;
	c->paused = paused;
	update_interest(c);
	if (!paused && (c->in_len > 0 || (c->sock.type->has_pending && c->sock.type->has_pending(&c->sock))))
		want_ready(c);
}

void net_conn_close(struct net_conn *c, const char *reason)
{
	assert(self == c->io);
	begin_close(c, LOG_INFO, reason ? reason : "closed by server");
}

/* srst: the packet counters restart from zero. Each I/O thread is the only
 * writer of its own counters, so they are not zeroed under it: the totals
 * at the reset are kept and subtracted (any thread writes, readers load). */
static atomic_ullong packets_received_base, packets_sent_base;

void net_get_stats(struct net_stats *out)
{
	/* the bases first: a base is a past total, never above the totals summed below */
	uint64_t received_base = atomic_load(&packets_received_base);
	uint64_t sent_base = atomic_load(&packets_sent_base);
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i <= MAX_THREADS; i++) {
		struct io_stats *s = &stats[i].s;
		/* closed before accepted, so "open now" never goes negative */
		uint64_t closed = atomic_load_explicit(&s->closed, memory_order_relaxed);
		uint64_t accepted = atomic_load_explicit(&s->accepted, memory_order_relaxed);
		out->packets_received += atomic_load_explicit(&s->packets_received, memory_order_relaxed);
		out->packets_sent += atomic_load_explicit(&s->packets_sent, memory_order_relaxed);
		out->bytes_received += atomic_load_explicit(&s->bytes_received, memory_order_relaxed);
		out->bytes_sent += atomic_load_explicit(&s->bytes_sent, memory_order_relaxed);
		out->rejected_cap += atomic_load_explicit(&s->rejected_cap, memory_order_relaxed);
		out->accepted += accepted;
		out->connections += accepted - closed;
	}
	out->packets_received -= received_base;
	out->packets_sent -= sent_base;
}

void net_reset_packet_stats(void)
{
	struct net_stats now;
	net_get_stats(&now);
	atomic_fetch_add(&packets_received_base, now.packets_received);
	atomic_fetch_add(&packets_sent_base, now.packets_sent);
}

void net_count_sent_packet(void)
{
	if (self)
		STAT_ADD(self, packets_sent, 1);
	else
		atomic_fetch_add_explicit(&STATS_OTHER->packets_sent, 1, memory_order_relaxed);
}

struct net_conn *net_conn_lookup(net_addr a)
{
	if (!self || (int)(a >> 56) != self->index)
		return NULL;
	return conn_by_addr(self, a);
}

void net_conn_established(struct net_conn *c)
{
	wait_unlink(c, WAIT_SESSION);
}
