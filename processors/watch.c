/*
 * watch.c - watch managers and event delivery (see watch.h).
 *
 * Ordering (DESIGN.md rules 3 and 4). Final does, for each txn:
 *   lock the stripes of the paths it changes -> publish the change ->
 *   trigger their watches, queue the events -> unlock -> last_applied = zxid
 * and an I/O thread does, for a watch=true read:
 *   lock the path's stripe -> register the watch -> read the node -> unlock.
 * Rule 4: so a registration and its read happen wholly before or wholly
 * after a change of that path, as if ZooKeeper had run them one after the
 * other: the read shows the old state and the watch fires, or it shows the
 * new state and the watch waits for the next change. Reads without a watch
 * take no lock. Rule 3: a reader that sees a version newer than
 * last_applied waits (briefly: Final is between publish and last_applied)
 * and then drains its event queue before it writes the reply (readpath.c).
 * Only Final ever holds two stripe locks at once (taken in index order, and
 * an ancestor's for recursive watches by try-lock), so there is no
 * lock-order cycle.
 *
 * Events travel in a wfcqueue per I/O thread: Final is the producer (any
 * thread could be), the I/O thread the one consumer; Final rings a thread
 * with an empty net_post (a kick) once per batch, not once per event.
 *
 * ZooKeeper's node_{created,deleted,changed,children}_watch_count: one
 * observation per trigger that reached anyone, of how many distinct
 * watchers it reached, suppressed ones included (ZooKeeper counts the set
 * it collected before leaving those out). A delete triggers both managers,
 * so it may record twice, as ZooKeeper's does.
 */
#include "watch.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/wfcqueue.h>

#include "net/log.h"
#include "net/metrics.h"
#include "net/tsan.h"
#include "net/records.h"
#include "request.h"
#include "storage/tree.h"

#define STRIPES 64

struct watcher {
	net_addr who;
	int mode;
};

struct wpath {
	struct wpath *next;
	struct watcher *v;
	int n, cap;
	size_t len;
	char path[];
};

struct stripe {
	pthread_mutex_t lock;       /* guards this stripe's chains */
	struct wpath **buckets;
	size_t n_buckets, n_paths;
};

struct manager {
	struct stripe stripes[STRIPES];
	atomic_long count;          /* watches in this manager */
	atomic_long recursive;      /* of which recursive: triggers then walk the ancestors */
};

static struct manager managers[2];

/* Registered by watches_init, recorded by Final; by event type (ZEV_*). */
static struct metric_summary *fired[ZEV_CHILDREN_CHANGED + 1];

void watches_init(void)
{
	fired[ZEV_CREATED] = metrics_summary("node_created_watch_count",
					     "Watchers one NodeCreated event reached", METRIC_BASIC, METRIC_UNIT);
	fired[ZEV_DELETED] = metrics_summary("node_deleted_watch_count",
					     "Watchers one NodeDeleted event reached", METRIC_BASIC, METRIC_UNIT);
	fired[ZEV_DATA_CHANGED] = metrics_summary("node_changed_watch_count",
						  "Watchers one NodeDataChanged event reached", METRIC_BASIC,
						  METRIC_UNIT);
	fired[ZEV_CHILDREN_CHANGED] = metrics_summary("node_children_watch_count",
						      "Watchers one NodeChildrenChanged event reached", METRIC_BASIC,
						      METRIC_UNIT);
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < STRIPES; i++) {
			struct stripe *s = &managers[k].stripes[i];
			pthread_mutex_init(&s->lock, NULL);
			s->n_buckets = 64;
			s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
			if (!s->buckets)
				abort();
			s->n_paths = 0;
		}
		atomic_store(&managers[k].count, 0);
		atomic_store(&managers[k].recursive, 0);
	}
}

void watches_free(void)
{
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < STRIPES; i++) {
			struct stripe *s = &managers[k].stripes[i];
			for (size_t b = 0; b < s->n_buckets; b++)
				while (s->buckets[b]) {
					struct wpath *w = s->buckets[b];
					s->buckets[b] = w->next;
					free(w->v);
					free(w);
				}
			free(s->buckets);
			s->buckets = NULL;
			pthread_mutex_destroy(&s->lock);
		}
}

long watch_total(void)
{
	return atomic_load_explicit(&managers[0].count, memory_order_relaxed) +
	       atomic_load_explicit(&managers[1].count, memory_order_relaxed);
}

void watch_foreach(void (*fn)(void *arg, int kind, const char *path, size_t len, net_addr who), void *arg)
{
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < STRIPES; i++) {
			struct stripe *s = &managers[k].stripes[i];
			pthread_mutex_lock(&s->lock);
			for (size_t b = 0; b < s->n_buckets; b++)
				for (struct wpath *w = s->buckets[b]; w; w = w->next)
					for (int j = 0; j < w->n; j++)
						fn(arg, k, w->path, w->len, w->v[j].who);
			pthread_mutex_unlock(&s->lock);
		}
}

static struct stripe *stripe_of(int kind, uint64_t h)
{
	return &managers[kind].stripes[h % STRIPES];
}

/* Inside the stripe lock. */
static struct wpath **find_slot(struct stripe *s, uint64_t h, const char *path, size_t len)
{
	struct wpath **pp = &s->buckets[(h / STRIPES) % s->n_buckets];
	while (*pp && !((*pp)->len == len && memcmp((*pp)->path, path, len) == 0))
		pp = &(*pp)->next;
	return pp;
}

static void grow(struct stripe *s)
{
	size_t nb = s->n_buckets * 2;
	struct wpath **b = calloc(nb, sizeof *b);
	if (!b)
		return;   /* keep the longer chains */
	for (size_t i = 0; i < s->n_buckets; i++)
		while (s->buckets[i]) {
			struct wpath *w = s->buckets[i];
			s->buckets[i] = w->next;
			size_t at = (tree_hash(w->path, w->len) / STRIPES) % nb;
			w->next = b[at];
			b[at] = w;
		}
	free(s->buckets);
	s->buckets = b;
	s->n_buckets = nb;
}

static void unlink_if_empty(struct stripe *s, struct wpath **pp)
{
	struct wpath *w = *pp;
	if (w->n)
		return;
	*pp = w->next;
	free(w->v);
	free(w);
	s->n_paths--;
}

static struct stripe *stripe_for(int kind, const char *path, size_t len)
{
	return stripe_of(kind, tree_hash(path, len));
}

void watch_read_begin(int kind, const char *path, size_t len)
{
	pthread_mutex_lock(&stripe_for(kind, path, len)->lock);
}

void watch_read_end(int kind, const char *path, size_t len)
{
	pthread_mutex_unlock(&stripe_for(kind, path, len)->lock);
}

void watch_add_held(int kind, const char *path, size_t len, net_addr who, int mode)
{
	uint64_t h = tree_hash(path, len);
	struct stripe *s = stripe_of(kind, h);
	struct manager *m = &managers[kind];
	struct wpath **pp = find_slot(s, h, path, len);
	if (!*pp) {
		if (s->n_paths >= s->n_buckets * 2) {
			grow(s);
			pp = find_slot(s, h, path, len);
		}
		struct wpath *w = calloc(1, sizeof *w + len + 1);
		if (!w)
			return;
		w->len = len;
		memcpy(w->path, path, len);
		*pp = w;
		s->n_paths++;
	}
	struct wpath *w = *pp;
	for (int i = 0; i < w->n; i++)
		if (w->v[i].who == who) {
			/* one watch per watcher and path; a persistent mode wins */
			if (mode != WM_STANDARD && w->v[i].mode != mode) {
				if (w->v[i].mode == WM_RECURSIVE)
					atomic_fetch_sub(&m->recursive, 1);
				if (mode == WM_RECURSIVE)
					atomic_fetch_add(&m->recursive, 1);
				w->v[i].mode = mode;
			}
			return;
		}
	if (w->n == w->cap) {
		int cap = w->cap ? w->cap * 2 : 2;
		struct watcher *v = realloc(w->v, (size_t)cap * sizeof *v);
		if (!v)
			return;
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n].who = who;
	w->v[w->n].mode = mode;
	w->n++;
	atomic_fetch_add(&m->count, 1);
	if (mode == WM_RECURSIVE)
		atomic_fetch_add(&m->recursive, 1);
}

void watch_add(int kind, const char *path, size_t len, net_addr who, int mode)
{
	watch_read_begin(kind, path, len);
	watch_add_held(kind, path, len, who, mode);
	watch_read_end(kind, path, len);
}

bool watch_remove_held(int kind, const char *path, size_t len, net_addr who)
{
	uint64_t h = tree_hash(path, len);
	struct stripe *s = stripe_of(kind, h);
	struct manager *m = &managers[kind];
	struct wpath **pp = find_slot(s, h, path, len);
	if (!*pp)
		return false;
	struct wpath *w = *pp;
	bool found = false;
	for (int i = 0; i < w->n; i++)
		if (w->v[i].who == who) {
			if (w->v[i].mode == WM_RECURSIVE)
				atomic_fetch_sub(&m->recursive, 1);
			w->v[i] = w->v[--w->n];
			atomic_fetch_sub(&m->count, 1);
			found = true;
			break;
		}
	unlink_if_empty(s, pp);
	return found;
}

bool watch_remove(int kind, const char *path, size_t len, net_addr who)
{
	watch_read_begin(kind, path, len);
	bool found = watch_remove_held(kind, path, len, who);
	watch_read_end(kind, path, len);
	return found;
}

bool watch_contains(int kind, const char *path, size_t len, net_addr who)
{
	uint64_t h = tree_hash(path, len);
	struct stripe *s = stripe_of(kind, h);
	bool found = false;
	pthread_mutex_lock(&s->lock);
	struct wpath **pp = find_slot(s, h, path, len);
	if (*pp)
		for (int i = 0; i < (*pp)->n && !found; i++)
			found = (*pp)->v[i].who == who;
	pthread_mutex_unlock(&s->lock);
	return found;
}

void watch_locks_add(struct watch_locks *l, int kind, const char *path, size_t len)
{
	l->mask[kind] |= 1ULL << (tree_hash(path, len) % STRIPES);
}

void watch_locks_acquire(const struct watch_locks *l)
{
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < STRIPES; i++)
			if (l->mask[k] & (1ULL << i))
				pthread_mutex_lock(&managers[k].stripes[i].lock);
}

void watch_locks_release(const struct watch_locks *l)
{
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < STRIPES; i++)
			if (l->mask[k] & (1ULL << i))
				pthread_mutex_unlock(&managers[k].stripes[i].lock);
}

bool hits_contains(const struct watch_hits *h, net_addr a)
{
	for (int i = 0; h && i < h->n; i++)
		if (h->v[i] == a)
			return true;
	return false;
}

static void hits_add(struct watch_hits *h, net_addr a)
{
	if (hits_contains(h, a))
		return;
	if (h->n == h->cap) {
		int cap = h->cap ? h->cap * 2 : 8;
		net_addr *v = realloc(h->v, (size_t)cap * sizeof *v);
		if (!v)
			return;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = a;
}

void hits_free(struct watch_hits *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

/* Final, holding the stripes of the paths it changes, also needs an
 * ancestor's stripe for recursive watches, out of index order. No thread
 * but Final ever holds two stripes, so a plain lock could not deadlock;
 * but a try-lock loop states it in the code (and to ThreadSanitizer's
 * lock-order checker): this acquisition never waits while holding. The
 * holder is an I/O thread in a short read, so the loop is brief. */
static void lock_nested(struct stripe *s)
{
	while (pthread_mutex_trylock(&s->lock) != 0)
		sched_yield();
}

/* The watchers registered exactly at `at`; at_parent: `at` is an ancestor
 * of the event's path, where only recursive watches count. */
static void trigger_at(const struct watch_locks *held, int kind, const char *at, size_t len, int type,
		       bool at_parent, struct watch_hits *hits)
{
	uint64_t h = tree_hash(at, len);
	struct stripe *s = stripe_of(kind, h);
	struct manager *m = &managers[kind];
	bool mine = !(held->mask[kind] & (1ULL << (h % STRIPES)));
	if (mine)
		lock_nested(s);
	struct wpath **pp = find_slot(s, h, at, len);
	if (*pp) {
		struct wpath *w = *pp;
		for (int i = 0; i < w->n;) {
			struct watcher *x = &w->v[i];
			if (x->mode == WM_RECURSIVE) {
				if (type != ZEV_CHILDREN_CHANGED)
					hits_add(hits, x->who);
			} else if (!at_parent) {
				hits_add(hits, x->who);
				if (x->mode == WM_STANDARD) {
					w->v[i] = w->v[--w->n];
					atomic_fetch_sub(&m->count, 1);
					continue;
				}
			}
			i++;
		}
		unlink_if_empty(s, pp);
	}
	if (mine)
		pthread_mutex_unlock(&s->lock);
}

void watch_trigger(const struct watch_locks *held, int kind, const char *path, size_t len, int type,
		   struct watch_hits *hits, const struct watch_hits *suppress)
{
	struct manager *m = &managers[kind];
	if (atomic_load_explicit(&m->count, memory_order_relaxed) == 0)
		return;
	struct watch_hits found = { 0 };
	trigger_at(held, kind, path, len, type, false, &found);
	if (atomic_load_explicit(&m->recursive, memory_order_relaxed) > 0) {
		/* every ancestor, root included */
		size_t l = len;
		while (l > 1) {
			while (l > 0 && path[l - 1] != '/')
				l--;
			size_t plen = l > 1 ? l - 1 : 1;
			trigger_at(held, kind, path, plen, type, true, &found);
			l = plen;
		}
	}
	if (found.n && type >= ZEV_CREATED && type <= ZEV_CHILDREN_CHANGED && fired[type])
		metric_observe(fired[type], found.n);
	for (int i = 0; i < found.n; i++)
		if (!hits_contains(suppress, found.v[i]))
			hits_add(hits, found.v[i]);
	hits_free(&found);
}

/* ---- delivery ------------------------------------------------------------------ */

#define MAX_IO 256

struct event {
	struct cds_wfcq_node node;
	struct event *held_next;        /* in a notify_hold list (I/O thread) */
	net_addr to;
	int64_t zxid;                   /* of the change that fired it */
	int32_t type;
	uint32_t len;
	char path[];
};

struct evq {
	struct cds_wfcq_head head;      /* producer: Final */
	struct cds_wfcq_tail tail;      /* consumer: the I/O thread of that index */
	bool kick;                      /* Final only: queued since the last notify_kick */
};

static struct evq queues[MAX_IO];
static pthread_once_t queues_once = PTHREAD_ONCE_INIT;

static void queues_init(void)
{
	for (int i = 0; i < MAX_IO; i++)
		cds_wfcq_init(&queues[i].head, &queues[i].tail);
}

void notify_post(net_addr to, int type, const char *path, size_t len, int64_t zxid)
{
	pthread_once(&queues_once, queues_init);
	struct event *e = malloc(sizeof *e + len);
	if (!e)
		return;
	cds_wfcq_node_init(&e->node);
	e->to = to;
	e->zxid = zxid;
	e->type = type;
	e->len = (uint32_t)len;
	memcpy(e->path, path, len);
	struct evq *q = &queues[(to >> 56) % MAX_IO];
	TSAN_RELEASE(q);
	cds_wfcq_enqueue(&q->head, &q->tail, &e->node);
	q->kick = true;
}

void notify_kick(void)
{
	for (int i = 0; i < MAX_IO && i < net_n_threads(); i++) {
		if (!queues[i].kick)
			continue;
		queues[i].kick = false;
		/* an empty request addressed to no connection: on_msg frees it,
		 * and the I/O thread drains its events in the same loop turn */
		struct zreq *k = zreq_new(0, 0, ZOP_NOTIFICATION, NULL, 0);
		if (k)
			net_post((net_addr)i << 56, &k->msg);
	}
}

bool notify_pending(int io_index)
{
	pthread_once(&queues_once, queues_init);
	struct evq *q = &queues[io_index % MAX_IO];
	return !cds_wfcq_empty(&q->head, &q->tail);
}

static void write_event(struct event *e, void (*on_event)(struct net_conn *c, int type, const char *path, size_t len))
{
	struct net_conn *c = net_conn_lookup(e->to);
	if (c && !net_conn_closing(c)) {
		struct jute_writer *w = net_conn_out(c);
		size_t mark = net_frame_begin(w);
		struct rec_reply_header rh = { ZXID_NOTIFICATION, -1, 0 };
		rec_write_reply_header(w, &rh);
		rec_write_watcher_event(w, e->type, ZSTATE_SYNC_CONNECTED, e->path, (int32_t)e->len);
		net_frame_end(w, mark);
		net_count_sent_packet();
		if (on_event)
			on_event(c, e->type, e->path, e->len);
	}
	free(e);
}

void notify_drain(int io_index, const struct notify_hold *hold,
		  void (*on_event)(struct net_conn *c, int type, const char *path, size_t len))
{
	pthread_once(&queues_once, queues_init);
	struct evq *q = &queues[io_index % MAX_IO];
	struct cds_wfcq_head h;
	struct cds_wfcq_tail t;
	cds_wfcq_init(&h, &t);
	if (cds_wfcq_splice_blocking(&h, &t, &q->head, &q->tail) == CDS_WFCQ_RET_SRC_EMPTY)
		return;
	TSAN_ACQUIRE(q);
	struct cds_wfcq_node *node, *tmp;
	struct event **tail = NULL;
	if (hold) {
		tail = (struct event **)&((struct notify_hold *)hold)->held;
		while (*tail)
			tail = &(*tail)->held_next;
	}
	__cds_wfcq_for_each_blocking_safe(&h, &t, node, tmp) {
		struct event *e = caa_container_of(node, struct event, node);
		if (hold && e->to == hold->conn && e->zxid > hold->max_zxid) {
			e->held_next = NULL;
			*tail = e;
			tail = &e->held_next;
			continue;
		}
		write_event(e, on_event);
	}
}

void notify_release(struct notify_hold *hold,
		    void (*on_event)(struct net_conn *c, int type, const char *path, size_t len))
{
	struct event *e = hold->held;
	hold->held = NULL;
	while (e) {
		struct event *next = e->held_next;
		write_event(e, on_event);
		e = next;
	}
}
