/*
 * reaper.c - ZooKeeper's ContainerManager: every checkIntervalMs, delete the
 * containers that have had children and have none left, and the TTL nodes
 * without children whose mtime is older than their TTL.
 *
 * The reaper only finds candidates (walking the tree under RCU); each
 * deletion is an ordinary deleteContainer request through the pipeline, so
 * Prep re-checks it against changes in flight (a child created meanwhile
 * wins) and every server of an ensemble applies the same delete. Deletes
 * are paced to at most maxPerMinute, as in ZooKeeper.
 */
#include "reaper.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu.h>

#include "net/log.h"
#include "net/tsan.h"
#include "processors/session.h"

struct candidates {
	char **paths;
	size_t n, cap;
	int64_t now;
};

struct reaper {
	struct zk_state *st;
	int interval_ms;
	int max_per_minute;
	pthread_t thread;
	atomic_bool stop;
	bool started;
};

static struct reaper reaper;

static void consider(void *arg, const struct znode *n)
{
	struct candidates *c = arg;
	const struct znode_ver *v = tree_ver(n);
	if (v->kids && v->kids->n)
		return;
	int64_t owner = v->stat.ephemeral_owner;
	bool due;
	if (owner == ZK_CONTAINER_OWNER)
		due = v->stat.cversion > 0;          /* it had children once */
	else if ((owner & ZK_TTL_MASK) == ZK_TTL_PREFIX) {
		int64_t ttl = owner & ZK_TTL_MAX;
		due = ttl != 0 && c->now - v->stat.mtime > ttl;
	} else
		return;
	if (!due)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char **p = realloc(c->paths, cap * sizeof *p);
		if (!p)
			return;
		c->paths = p;
		c->cap = cap;
	}
	c->paths[c->n] = strdup(n->path);
	if (c->paths[c->n])
		c->n++;
}

/* Sleeps up to ms, returning early (true) when asked to stop. */
static bool nap(struct reaper *r, int64_t ms)
{
	int64_t until = mono_ms() + ms;
	while (!atomic_load(&r->stop)) {
		int64_t left = until - mono_ms();
		if (left <= 0)
			return false;
		if (left > 100)
			left = 100;
		struct timespec ts = { left / 1000, (left % 1000) * 1000000 };
		nanosleep(&ts, NULL);
	}
	return true;
}

static void *reaper_main(void *arg)
{
	struct reaper *r = arg;
	log_thread_name("zkd-reaper");
	rcu_register_thread();
	int64_t gap_ms = 60000 / (r->max_per_minute > 0 ? r->max_per_minute : 10000);
	while (!nap(r, r->interval_ms)) {
		struct candidates c = { .now = wall_ms() };
		rcu_read_lock();   /* the tree pointer too: an ensemble member may replace it */
		tree_foreach(r->st->tree, consider, &c);
		zkd_rcu_read_unlock();
		for (size_t i = 0; i < c.n; i++) {
			if (i && !atomic_load(&r->stop) && gap_ms > 0)
				nap(r, gap_ms);
			if (!atomic_load(&r->stop)) {
				log_info("reaper: deleting %s", c.paths[i]);
				processors_delete_container(r->st, c.paths[i], strlen(c.paths[i]));
			}
			free(c.paths[i]);
		}
		free(c.paths);
	}
	rcu_unregister_thread();
	return NULL;
}

int reaper_start(struct zk_state *st, int interval_ms, int max_per_minute)
{
	struct reaper *r = &reaper;
	r->st = st;
	r->interval_ms = interval_ms > 0 ? interval_ms : 60000;
	r->max_per_minute = max_per_minute;
	atomic_init(&r->stop, false);
	if (pthread_create(&r->thread, NULL, reaper_main, r) != 0)
		return -1;
	r->started = true;
	return 0;
}

void reaper_stop(void)
{
	if (!reaper.started)
		return;
	atomic_store(&reaper.stop, true);
	pthread_join(reaper.thread, NULL);
	reaper.started = false;
}
