/*
 * fast_rcu.c - call_rcu and rcu_barrier for the fuzz targets (liburcu-memb's
 * urcu_memb_call_rcu and urcu_memb_barrier, which the executable's
 * definitions here take the place of).
 *
 * liburcu runs call_rcu callbacks on a worker thread that sleeps 10 ms after
 * every wake-up (to batch), so each rcu_barrier costs 10-12 ms; tree_free
 * and sessions_free end with one, and a target that builds a fresh tree per
 * input would run at 30 inputs a second. Here a callback is queued and
 * rcu_barrier runs the queue itself after a grace period
 * (synchronize_rcu): the same guarantee (a callback runs only after every
 * reader that could see the object is done, and rcu_barrier returns once
 * all callbacks queued before it have run) without the sleeping thread.
 * Callbacks queued without a barrier wait for the next one (the targets
 * free their trees, and so barrier, at the end of every input).
 *
 * Like liburcu's, rcu_barrier must not be called from a read-side section.
 */
#include <pthread.h>
#include <stdlib.h>

#include <urcu.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct rcu_head **queue;
static size_t n, cap;

void urcu_memb_call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head));
void urcu_memb_barrier(void);

void urcu_memb_call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head))
{
	head->func = func;
	pthread_mutex_lock(&mu);
	if (n == cap) {
		size_t c = cap ? cap * 2 : 1024;
		struct rcu_head **q = realloc(queue, c * sizeof *q);
		if (!q)
			abort();
		queue = q;
		cap = c;
	}
	queue[n++] = head;
	pthread_mutex_unlock(&mu);
}

void urcu_memb_barrier(void)
{
	for (;;) {
		pthread_mutex_lock(&mu);
		size_t k = n;
		struct rcu_head **q = queue;
		queue = NULL;
		n = cap = 0;
		pthread_mutex_unlock(&mu);
		if (k == 0) {
			free(q);
			return;
		}
		synchronize_rcu();
		for (size_t i = 0; i < k; i++)
			q[i]->func(q[i]);   /* may queue more: the loop takes those too */
		free(q);
	}
}
