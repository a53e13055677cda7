/*
 * stage.c - the stage thread loop (see stage.h): splice the inbox, handle
 * each request, pass the whole batch on with one splice and one doorbell.
 *
 * Metrics cost one clock read per batch taken and one per batch handed on;
 * the per-request times of a batch are mostly equal (a batch was queued by
 * one splice), so they are recorded as runs of equal values: usually one
 * atomic update of a summary per batch, not one per request.
 */
#include "stage.h"

#include <errno.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "net/log.h"
#include "net/tsan.h"
#include "reqmetrics.h"
#include "request.h"

/* About 2 µs of polling before a stage sleeps: long enough to catch the next
 * request of a busy client, short enough not to starve the other core. */
#define STAGE_SPIN 200

static void futex_wait(atomic_int *word, int val)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 }; /* re-check stop at least every 100 ms */
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(atomic_int *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void ring(struct stage *s)
{
	/* Pairs with the barrier in wait_for_work: either the consumer sees our
	 * enqueue, or we see its sleeping flag. */
	cmm_smp_mb();
	if (atomic_load_explicit(&s->sleeping, memory_order_relaxed) &&
	    atomic_exchange(&s->sleeping, 0))
		futex_wake(&s->sleeping);
}

/* Equal values in a row, recorded as one metric_observe_n. */
struct run {
	struct metric_summary *to;
	long long v, n;
};

static inline void run_add(struct run *u, long long v)
{
	if (v == u->v) {
		u->n++;
		return;
	}
	metric_observe_n(u->to, u->v, u->n);
	u->v = v;
	u->n = 1;
}

static inline void run_end(struct run *u)
{
	metric_observe_n(u->to, u->v, u->n);
	u->n = 0;
}

void stage_push(struct stage *s, struct zreq *r)
{
	cds_wfcq_node_init(&r->qnode);
	r->enq_ns = metrics_now_ns();
	metric_inc(&s->pushed);
	TSAN_RELEASE(s);
	cds_wfcq_enqueue(&s->head, &s->tail, &r->qnode);
	ring(s);
}

void stage_forward(struct stage *s, struct zreq *r)
{
	cds_wfcq_node_init(&r->qnode);
	cds_wfcq_enqueue(&s->out_head, &s->out_tail, &r->qnode);
	s->out_n++;
}

void stage_flush(struct stage *s)
{
	if (!s->next || cds_wfcq_empty(&s->out_head, &s->out_tail))
		return;
	/* time in this stage ends, and the queue time at the next starts, now */
	int64_t now = metrics_now_ns();
	struct run proc = { s->m.process_time, -1, 0 }, thr = { s->m.through, -1, 0 };
	struct cds_wfcq_node *node;
	__cds_wfcq_for_each_blocking(&s->out_head, &s->out_tail, node) {
		struct zreq *r = caa_container_of(node, struct zreq, qnode);
		/* made by this stage (never taken): no time in it */
		run_add(&proc, r->take_ns ? (now - r->take_ns) / 1000 : 0);
		if (thr.to)
			run_add(&thr, r->enq_ns ? (now - r->enq_ns) / 1000 : 0);
		r->enq_ns = now;
	}
	run_end(&proc);
	if (thr.to)
		run_end(&thr);
	metric_add(&s->next->pushed, s->out_n);
	s->out_n = 0;
	TSAN_RELEASE(s->next);
	cds_wfcq_splice_blocking(&s->next->head, &s->next->tail, &s->out_head, &s->out_tail);
	ring(s->next);
}

/* Stage thread, a batch just taken: queue times, batch size, depth. */
static void batch_taken(struct stage *s, struct cds_wfcq_head *bh, struct cds_wfcq_tail *bt)
{
	int64_t now = metrics_now_ns();
	struct run q = { s->m.queue_time, -1, 0 };
	long n = 0;
	struct cds_wfcq_node *node;
	__cds_wfcq_for_each_blocking(bh, bt, node) {
		struct zreq *r = caa_container_of(node, struct zreq, qnode);
		run_add(&q, (now - r->enq_ns) / 1000);
		r->take_ns = now;
		n++;
	}
	run_end(&q);
	atomic_fetch_add_explicit(&s->taken, n, memory_order_relaxed);
	metric_observe(s->m.batch, n);
}

static void wait_for_work(struct stage *s)
{
	for (int i = 0; i < STAGE_SPIN; i++) {
		if (!cds_wfcq_empty(&s->head, &s->tail) || atomic_load(&s->stop))
			return;
		caa_cpu_relax();
	}
	atomic_store(&s->sleeping, 1);
	cmm_smp_mb();
	if (cds_wfcq_empty(&s->head, &s->tail) && !atomic_load(&s->stop))
		futex_wait(&s->sleeping, 1);
	atomic_store(&s->sleeping, 0);
}

static void *stage_main(void *arg)
{
	struct stage *s = arg;
	log_thread_name(s->name);
	rcu_register_thread();
	struct cds_wfcq_head bh;
	struct cds_wfcq_tail bt;
	while (!atomic_load(&s->stop)) {
		cds_wfcq_init(&bh, &bt);
		if (cds_wfcq_splice_blocking(&bh, &bt, &s->head, &s->tail) == CDS_WFCQ_RET_SRC_EMPTY) {
			wait_for_work(s);
			continue;
		}
		TSAN_ACQUIRE(s);
		batch_taken(s, &bh, &bt);
		struct cds_wfcq_node *node, *tmp;
		__cds_wfcq_for_each_blocking_safe(&bh, &bt, node, tmp) {
			struct zreq *r = caa_container_of(node, struct zreq, qnode);
			s->handle(s, r);
		}
		if (s->batch_done)
			s->batch_done(s);
		stage_flush(s);
	}
	rcu_unregister_thread();
	return NULL;
}

/* ZooKeeper's names for some of a stage's series (its processors'). */
static void zookeeper_aliases(struct stage *s, const char *stage)
{
	if (strcmp(stage, "prep") == 0) {
		metrics_summary_alias("prep_processor_queue_size",
				      "Requests PrepRequestProcessor took at once (zkd: per batch)",
				      METRIC_BASIC, s->m.batch);
		metrics_summary_alias("prep_processor_queue_time_ms", "Time a request waited in Prep's queue (ms)",
				      METRIC_ADVANCED, s->m.queue_time);
		metrics_summary_alias("prep_process_time", "Time a request spent in Prep (ms)", METRIC_BASIC,
				      s->m.process_time);
	} else if (strcmp(stage, "proposal") == 0) {
		metrics_summary_alias("proposal_process_time", "Time a request spent in Proposal (ms)",
				      METRIC_BASIC, s->m.process_time);
	} else if (strcmp(stage, "sync") == 0) {
		metrics_summary_alias("sync_processor_queue_size",
				      "Requests SyncRequestProcessor took at once (zkd: per batch)", METRIC_BASIC,
				      s->m.batch);
		metrics_summary_alias("sync_processor_queue_time_ms", "Time a request waited in Sync's queue (ms)",
				      METRIC_ADVANCED, s->m.queue_time);
		s->m.through = metrics_summary("sync_processor_queue_and_flush_time_ms",
					       "Time from a request's arrival at Sync until its txn was flushed (ms)",
					       METRIC_ADVANCED, METRIC_US_AS_MS);
	} else if (strcmp(stage, "commit") == 0) {
		metrics_summary_alias("commit_process_time",
				      "Time a request spent in Commit, quorum wait included (ms)", METRIC_BASIC,
				      s->m.process_time);
	} else if (strcmp(stage, "final") == 0) {
		metrics_summary_alias("write_final_proc_time_ms",
				      "Time a write spent in Final: apply, watches, reply (ms)", METRIC_ADVANCED,
				      s->m.process_time);
	}
}

/* Sets s->m once, at the stage's first stage_init: later ones (a new role)
 * find the same series, and producers that read s->m.depth while the stage
 * is re-initialised must not see it written. */
static long long pushed_total(struct stage *s)
{
	long long v = 0;
	for (int i = 0; i < METRIC_SHARDS; i++)
		v += atomic_load_explicit(&s->pushed.shard[i].v, memory_order_relaxed);
	return v;
}

static double depth_of(void *arg)
{
	struct stage *s = arg;
	if (!s)
		return 0;   /* a stage not set up yet */
	long long d = pushed_total(s) - atomic_load_explicit(&s->taken, memory_order_relaxed);
	return d > 0 ? (double)d : 0;   /* a push counted before its enqueue */
}

static void stage_metrics(struct stage *s, const char *name)
{
	static atomic_flag ordered = ATOMIC_FLAG_INIT;   /* the first stage_init */
	if (!atomic_flag_test_and_set(&ordered)) {
		/* every stage's series from the start, in the pipeline's order,
		 * whichever stages this role runs */
		static const char *const chain[] = { "zkd-prep", "zkd-proposal", "zkd-sync", "zkd-commit", "zkd-final" };
		struct stage tmp;
		for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
			memset(&tmp, 0, sizeof tmp);
			stage_metrics(&tmp, chain[i]);
		}
		reqmetrics_register();   /* and the requests' series, by type */
	}
	const char *stage = strncmp(name, "zkd-", 4) == 0 ? name + 4 : name;
	if (s->m.depth && s->m.stage && strcmp(s->m.stage, stage) == 0)
		return;
	s->m.stage = stage;
	s->m.depth = metrics_gauge_fn_l("zkd_stage_queue_depth", "Requests queued at a pipeline stage, not yet taken",
					"stage", stage, depth_of, s->name ? s : NULL);
	s->m.batch = metrics_summary_l("zkd_stage_batch_size", "Requests a pipeline stage took in one batch",
				       METRIC_BASIC, METRIC_UNIT, "stage", stage);
	s->m.queue_time = metrics_summary_l("zkd_stage_queue_time_ms",
					    "Time a request waited in a pipeline stage's queue (ms)", METRIC_ADVANCED,
					    METRIC_US_AS_MS, "stage", stage);
	s->m.process_time = metrics_summary_l(
		"zkd_stage_process_time_ms",
		"Time a request spent in a pipeline stage, from taken to handed to the next (Final: to the reply) (ms)",
		METRIC_ADVANCED, METRIC_US_AS_MS, "stage", stage);
	s->m.through = NULL;
	zookeeper_aliases(s, stage);
}

void stage_init(struct stage *s, const char *name, void (*handle)(struct stage *, struct zreq *),
		struct stage *next, void *ctx)
{
	s->name = name;
	stage_metrics(s, name);
	/* What a stopped stage left queued was dropped before this, without
	 * lowering depth (pipeline.c): count what is queued now (the stage
	 * thread is not running, so this thread is the only consumer). A push
	 * racing this count can leave depth one off until the next role. */
	long queued = 0;
	struct cds_wfcq_node *node;
	__cds_wfcq_for_each_blocking(&s->head, &s->tail, node)
		queued++;
	atomic_store_explicit(&s->taken, pushed_total(s) - queued, memory_order_relaxed);
	s->out_n = 0;
	/* the input queue outlives a role change: pipeline.c initialises it
	 * once and drops what a stopped stage left in it */
	cds_wfcq_init(&s->out_head, &s->out_tail);
	atomic_init(&s->sleeping, 0);
	atomic_init(&s->stop, false);
	s->handle = handle;
	s->batch_done = NULL;
	s->next = next;
	s->ctx = ctx;
}

int stage_start(struct stage *s)
{
	int rc = pthread_create(&s->thread, NULL, stage_main, s);
	if (rc) {
		log_error("cannot start stage %s: %s", s->name, strerror(rc));
		return -1;
	}
	return 0;
}

void stage_stop(struct stage *s)
{
	atomic_store(&s->stop, true);
	atomic_store(&s->sleeping, 0);
	futex_wake(&s->sleeping);
	pthread_join(s->thread, NULL);
}
