/*
 * engine.h - zkbench's load engine: sessions on client threads, each thread
 * an epoll loop of its own.
 *
 * The main thread (zkbench.c) drives every worker through one shared phase
 * variable and reads their progress counters; workers never wait for each
 * other. Results stay in per-worker structures (histograms, counts) that the
 * main thread merges after joining them, so the reply path touches no shared
 * cache line except one relaxed progress counter.
 *
 * Two ways to pace requests:
 *   closed loop  every session keeps `depth` requests in flight and sends the
 *                next as soon as a reply arrives; latency is from the send.
 *   open loop    (rate > 0) requests are due at fixed times (rate per second,
 *                spread evenly over the workers); a due request waits for a
 *                free pipeline slot if it must, and its latency is counted
 *                from the time it was DUE, not when it could be sent. A
 *                server that stalls therefore shows its stall in every
 *                request that queued behind it (no coordinated omission).
 */
#ifndef ZKBENCH_ENGINE_H
#define ZKBENCH_ENGINE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "hist.h"

enum op_kind {
	OP_GET, OP_SET, OP_EXISTS, OP_CHILDREN, OP_CREATE, OP_EPHSEQ, OP_MULTI,
	OP_DELETE,          /* the follow-up delete of create and ephseq; not in --mix */
	OP_N
};
#define OP_N_MIX OP_DELETE
extern const char *const op_names[OP_N];

#define BENCH_MAX_SERVERS 8
#define BENCH_PATH_MAX 192

struct bench_cfg {
	struct sockaddr_in servers[BENCH_MAX_SERVERS];
	int n_servers;
	int sessions;
	int threads;
	int depth;
	double duration_s, warmup_s, drain_s;
	double rate;                    /* ops/s over all sessions; 0 = closed loop */
	int mix[OP_N_MIX];              /* weights */
	int value_size;
	int keys;
	int children;                   /* children of <root>/c, for the children op */
	char root[BENCH_PATH_MAX - 64];
	int session_timeout_ms;
	int connect_storm;              /* >0: storm mode with this many sessions */
	int connect_concurrency;        /* connects in flight at once (all threads) */
	double hold_s;                  /* storm: keep sessions open this long */
	double connect_timeout_s;
	int src_addrs;                  /* spread client sockets over 127.0.0.1..N */
	struct ssl_ctx_st *tls;         /* TLS client context; NULL = plain TCP */
	int handshakes;                 /* >0: handshake mode, this many connections in
					 * all, `sessions` of them at a time */
};

enum phase { PH_CONNECT, PH_RUN, PH_HOLD, PH_CLOSE, PH_EXIT };

struct worker;

struct run {
	const struct bench_cfg *cfg;
	const char *const *key_paths;   /* cfg->keys full paths */
	const uint8_t *value;           /* cfg->value_size bytes */
	int mix_cum[OP_N_MIX];
	int mix_total;
	bool storm;
	bool handshakes;                /* connect, session, closeSession, again */
	/* Written by main before it publishes PH_RUN with a release store. */
	uint64_t t0, t_ms, t_me, t_drain_end;
	_Atomic int phase;
	struct worker *w;
	int nw;
};

struct worker {
	pthread_t th;
	int id;
	struct run *run;
	int first_sess, nsess;          /* global session indices [first, first+n) */
	/* results, read by main after the join */
	struct hist h[OP_N];
	uint64_t errors[OP_N];
	int first_err, first_err_op;    /* first server error code seen (0 = none) */
	uint64_t timeouts;              /* due in the window, unanswered at drain end */
	struct hist connect_h;          /* storm: connect()-to-session latency */
	struct hist tls_h;              /* TLS: connect()-to-handshake-done latency */
	char tls_desc[96];              /* protocol, cipher, group of the first one */
	int quota;                      /* handshake mode: connections to make */
	uint64_t lost;                  /* sessions the server closed under us */
	char errmsg[200];
	/* progress, read by main while running */
	_Atomic uint64_t done;          /* replies to measured or warm-up ops */
	_Atomic uint64_t backlog;       /* open loop: due but not yet sent */
	_Atomic int n_connected, n_failed;
	_Atomic bool connect_done, drained, closed;
	void *priv;                     /* engine.c's per-thread state */
};

/* Starts one thread per worker (run->w[0..nw-1] prepared by the caller:
 * id, run, first_sess, nsess). 0 or -1. */
int engine_start(struct run *run);
void engine_join(struct run *run);

#endif
