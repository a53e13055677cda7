/*
 * session_tracker.c - expires silent sessions, like ZooKeeper's
 * SessionTrackerImpl and its ExpiryQueue.
 *
 * Time is cut into ticks of tickTime. A session belongs to the bucket of the
 * first tick boundary at or after its deadline (last packet + timeout), so it
 * expires between `timeout` and `timeout + tickTime` after it went quiet,
 * as in ZooKeeper.
 *
 * The wheel is this thread's alone. I/O threads never move a session between
 * buckets: a packet only stores a new deadline in the session (an atomic).
 * When a bucket comes due, each session in it is looked at again: if its
 * deadline moved, it is filed under its new bucket; if not, it expires and
 * becomes a closeSession txn. New sessions arrive through a wfcqueue fed by
 * Final (many producers allowed, this thread the one consumer). Buckets hold
 * session ids, not pointers, because a session may be freed (call_rcu) while
 * it sits in a bucket.
 */
#include "session_tracker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>
#include <urcu/wfcqueue.h>

#include "net/log.h"
#include "net/metrics.h"
#include "net/tsan.h"
#include "processors/session.h"

struct bucket {
	int64_t *ids;
	size_t n, cap;
};

struct new_session {
	struct cds_wfcq_node node;
	int64_t id;
};

struct tracker {
	struct zk_state *st;
	pthread_t thread;
	atomic_bool stop;
	struct cds_wfcq_head head;      /* producers: Final; consumer: zkd-session */
	struct cds_wfcq_tail tail;
	int64_t tick;
	size_t n_buckets;
	struct bucket *buckets;         /* zkd-session only */
	int64_t next_due;               /* tick boundary processed next (mono ms) */
};

static struct tracker tracker;

static int64_t round_up_tick(int64_t t, int64_t tick)
{
	return (t / tick + 1) * tick;
}

static void bucket_add(struct tracker *t, int64_t due, int64_t id)
{
	struct bucket *b = &t->buckets[(size_t)(due / t->tick) % t->n_buckets];
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->ids = realloc(b->ids, b->cap * sizeof *b->ids);
		if (!b->ids)
			abort();
	}
	b->ids[b->n++] = id;
}

/* Files a session under the bucket of its current deadline; false if gone. */
static bool file_session(struct tracker *t, int64_t id, int64_t now, bool *expired)
{
	*expired = false;
	rcu_read_lock();
	struct zsession *s = sessions_find(t->st->sessions, id);
	bool live = s && !atomic_load(&s->closing);
	int64_t deadline = live ? atomic_load(&s->deadline_ms) : 0;
	zkd_rcu_read_unlock();
	if (!live)
		return false;
	int64_t due = round_up_tick(deadline, t->tick);
	if (due <= now) {
		*expired = true;
		return true;
	}
	/* never behind the bucket being processed, which would wrap the wheel */
	if (due < t->next_due)
		due = t->next_due;
	bucket_add(t, due, id);
	return true;
}

/* ZooKeeper's stale_sessions_expired; zkd-session adds. */
static struct metric_counter *expired_count;

static void expire(struct tracker *t, int64_t id)
{
	if (processors_expire_session(t->st, id))
		metric_inc(expired_count);
}

static void take_new_sessions(struct tracker *t, int64_t now)
{
	struct cds_wfcq_head h;
	struct cds_wfcq_tail tl;
	cds_wfcq_init(&h, &tl);
	if (cds_wfcq_splice_blocking(&h, &tl, &t->head, &t->tail) == CDS_WFCQ_RET_SRC_EMPTY)
		return;
	TSAN_ACQUIRE(t);
	struct cds_wfcq_node *node, *tmp;
	__cds_wfcq_for_each_blocking_safe(&h, &tl, node, tmp) {
		struct new_session *ns = caa_container_of(node, struct new_session, node);
		bool expired;
		if (file_session(t, ns->id, now, &expired) && expired)
			expire(t, ns->id);
		free(ns);
	}
}

static void process_due(struct tracker *t, int64_t due, int64_t now)
{
	struct bucket *b = &t->buckets[(size_t)(due / t->tick) % t->n_buckets];
	int64_t *ids = b->ids;
	size_t n = b->n;
	b->ids = NULL;
	b->n = b->cap = 0;
	for (size_t i = 0; i < n; i++) {
		bool expired;
		if (file_session(t, ids[i], now, &expired) && expired)
			expire(t, ids[i]);
	}
	free(ids);
}

static void sleep_until(int64_t mono_target_ms)
{
	struct timespec ts = { mono_target_ms / 1000, (mono_target_ms % 1000) * 1000000 };
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void *tracker_main(void *arg)
{
	struct tracker *t = arg;
	log_thread_name("zkd-session");
	rcu_register_thread();
	t->next_due = round_up_tick(mono_ms(), t->tick);
	while (!atomic_load(&t->stop)) {
		/* wake at least every 100 ms so a stop is noticed promptly */
		int64_t now = mono_ms();
		if (now < t->next_due) {
			sleep_until(now + 100 < t->next_due ? now + 100 : t->next_due);
			continue;
		}
		take_new_sessions(t, now);
		while (t->next_due <= now) {
			process_due(t, t->next_due, now);
			t->next_due += t->tick;
		}
	}
	rcu_unregister_thread();
	return NULL;
}

void tracker_add(void *arg, int64_t session_id)
{
	(void)arg;
	struct new_session *ns = malloc(sizeof *ns);
	if (!ns)
		return;
	cds_wfcq_node_init(&ns->node);
	ns->id = session_id;
	TSAN_RELEASE(&tracker);
	cds_wfcq_enqueue(&tracker.head, &tracker.tail, &ns->node);
}

int tracker_start(struct zk_state *st)
{
	expired_count = metrics_counter("stale_sessions_expired", "Sessions expired for silence");
	struct tracker *t = &tracker;
	t->st = st;
	t->tick = st->limits.tick_time > 0 ? st->limits.tick_time : 2000;
	t->n_buckets = (size_t)(st->limits.max_session_timeout / t->tick) + 4;
	t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
	if (!t->buckets)
		return -1;
	cds_wfcq_init(&t->head, &t->tail);
	atomic_init(&t->stop, false);
	if (pthread_create(&t->thread, NULL, tracker_main, t) != 0)
		return -1;
	return 0;
}

void tracker_stop(void)
{
	struct tracker *t = &tracker;
	if (!t->buckets)
		return;
	atomic_store(&t->stop, true);
	pthread_join(t->thread, NULL);
	TSAN_ACQUIRE(t);
	struct cds_wfcq_node *node;
	while ((node = cds_wfcq_dequeue_blocking(&t->head, &t->tail)))
		free(caa_container_of(node, struct new_session, node));
	for (size_t i = 0; i < t->n_buckets; i++)
		free(t->buckets[i].ids);
	free(t->buckets);
	t->buckets = NULL;
}
