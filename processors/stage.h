/*
 * stage.h - one pipeline stage: a thread, its input queue and its doorbell.
 *
 * The queue is a liburcu wfcqueue: any thread enqueues wait-free, the stage's
 * own thread is its only consumer and takes everything queued at once
 * (splice), which is the batch it works on. The doorbell is a futex word the
 * consumer sets before sleeping; a producer rings it only if it was set, so
 * a busy stage costs its producers no syscall. Before sleeping the consumer
 * spins briefly, because on these machines a futex wake-up costs tens of
 * microseconds.
 *
 * A stage forwards its batch to the next with stage_push_batch: one splice
 * and at most one wake-up per batch, never one per request.
 *
 * Metrics (net/metrics.h), registered by stage_init under the stage's name
 * ("zkd-sync" -> stage="sync"): the queue's depth, requests per batch, and
 * per request the time waited in the queue and the time spent in the stage
 * (taken -> handed to the next stage). A request carries the time it was
 * queued (zreq.enq_ns) and taken (zreq.take_ns); the stage reads the clock
 * once per batch taken and once per batch handed on, not per request.
 */
#ifndef ZKD_PROCESSORS_STAGE_H
#define ZKD_PROCESSORS_STAGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <urcu/wfcqueue.h>

#include "net/metrics.h"

struct zreq;

struct stage {
	const char *name;                 /* thread name, zkd-... */
	struct cds_wfcq_head head;        /* producers: the previous stage (or I/O threads) */
	struct cds_wfcq_tail tail;        /* consumer: this stage's thread */
	atomic_int sleeping;              /* futex word; consumer sets, producers clear */
	atomic_bool stop;
	pthread_t thread;
	/* Called on the stage thread for every request of a batch, in order. */
	void (*handle)(struct stage *s, struct zreq *r);
	/* Called after each batch (Sync flushes here). May be NULL. */
	void (*batch_done)(struct stage *s);
	struct stage *next;               /* where handle() usually forwards */
	void *ctx;
	/* The batch being built for `next` (stage thread only). */
	struct cds_wfcq_head out_head;
	struct cds_wfcq_tail out_tail;
	long out_n;                       /* requests in it (stage thread only) */
	/* The queue's depth is pushed - taken, read by the depth gauge's
	 * callback: producers count what they enqueue each in its own shard
	 * (no cache line shared between producers), the stage thread what it
	 * takes (stage_init also adds what was dropped while it was stopped). */
	struct metric_counter pushed;
	atomic_llong taken;
	/* Set by the first stage_init; recorded by this stage's thread, except depth,
	 * which producers raise by what they enqueue and the stage thread
	 * lowers by what it takes (readers: the metrics endpoints). */
	struct {
		const char *stage;                   /* the label: "sync" */
		struct metric_gauge *depth;          /* queued, not yet taken (pushed - taken) */
		struct metric_summary *batch;        /* requests per batch taken */
		struct metric_summary *queue_time;   /* µs: queued -> taken */
		struct metric_summary *process_time; /* µs: taken -> handed on (Final: replied) */
		struct metric_summary *through;      /* µs: queued -> handed on; NULL = not kept */
	} m;
};

/* The input queue (head/tail) must have been cds_wfcq_init'ed once before. */
void stage_init(struct stage *s, const char *name, void (*handle)(struct stage *, struct zreq *),
		struct stage *next, void *ctx);
int stage_start(struct stage *s);
/* Sets stop, wakes the thread, joins it. Pending requests are dropped. */
void stage_stop(struct stage *s);
/* Any thread: enqueue one request and ring the doorbell if needed. */
void stage_push(struct stage *s, struct zreq *r);
/* Stage thread: add r to the batch for s->next (sent when the batch ends). */
void stage_forward(struct stage *s, struct zreq *r);
/* Stage thread: send the batch built so far to s->next now. */
void stage_flush(struct stage *s);

#endif
