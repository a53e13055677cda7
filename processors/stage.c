/*
 * stage.c - the stage thread loop (see stage.h): splice the inbox, handle
 * each request, pass the whole batch on with one splice and one doorbell.
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

void stage_push(struct stage *s, struct zreq *r)
{
	cds_wfcq_node_init(&r->qnode);
	TSAN_RELEASE(s);
	cds_wfcq_enqueue(&s->head, &s->tail, &r->qnode);
	ring(s);
}

void stage_forward(struct stage *s, struct zreq *r)
{
	cds_wfcq_node_init(&r->qnode);
	cds_wfcq_enqueue(&s->out_head, &s->out_tail, &r->qnode);
}

void stage_flush(struct stage *s)
{
	if (!s->next || cds_wfcq_empty(&s->out_head, &s->out_tail))
		return;
	TSAN_RELEASE(s->next);
	cds_wfcq_splice_blocking(&s->next->head, &s->next->tail, &s->out_head, &s->out_tail);
	ring(s->next);
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

void stage_init(struct stage *s, const char *name, void (*handle)(struct stage *, struct zreq *),
		struct stage *next, void *ctx)
{
	s->name = name;
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
