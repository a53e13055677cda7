/*
 * session.c - the session table, session ids and passwords.
 *
 * Ids and passwords follow ZooKeeper exactly so a client can move its session
 * between zkd and ZooKeeper servers of one ensemble: the first id is
 * ((now_ms << 24) >> 8) | (myid << 56) (logical shifts), then +1 per session;
 * the password is 16 bytes of java.util.Random seeded with id ^ 0xB3415C00,
 * so it need not be stored: a reconnect is checked by recomputing it.
 */
#include "session.h"

#include "net/grow.h"
#include "net/tsan.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t id_hash(int64_t id)
{
	uint64_t x = (uint64_t)id;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static int id_match(struct cds_lfht_node *n, const void *key)
{
	const struct zsession *s = caa_container_of(n, struct zsession, hnode);
	TSAN_ACQUIRE((void *)s);   /* pairs with sessions_add's release */
	return s->id == *(const int64_t *)key;
}

struct session_table *sessions_new(int64_t myid)
{
	struct session_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ht = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	uint64_t first = ((uint64_t)wall_ms() << 24) >> 8;
	first |= (uint64_t)myid << 56;
	atomic_init(&t->next_id, (long long)first);
	return t;
}

static void session_free_cb(struct rcu_head *h)
{
	TSAN_AFTER_GRACE();
	free(caa_container_of(h, struct zsession, rcu));
}

void sessions_free(struct session_table *t)
{
	if (!t)
		return;
	struct cds_lfht_iter it;
	struct zsession *s;
	rcu_read_lock();
	cds_lfht_for_each_entry(t->ht, &it, s, hnode) {
		cds_lfht_del(t->ht, &s->hnode);
		call_rcu(&s->rcu, session_free_cb);
	}
	zkd_rcu_read_unlock();
	rcu_barrier();
	cds_lfht_destroy(t->ht, NULL);
	free(t);
}

void sessions_foreach(struct session_table *t, void (*fn)(void *arg, const struct zsession *s), void *arg)
{
	struct cds_lfht_iter it;
	struct zsession *s;
	cds_lfht_for_each_entry(t->ht, &it, s, hnode) {
		TSAN_ACQUIRE(s);   /* pairs with sessions_add's release */
		fn(arg, s);
	}
}

struct session_list {
	struct snap_session *v;
	size_t n, cap;
};

static void list_one(void *arg, const struct zsession *s)
{
	struct session_list *l = arg;
	struct snap_session *v = grow_for(l->v, l->n, &l->cap, sizeof *v, 64);
	if (!v)
		return;
	l->v = v;
	l->v[l->n++] = (struct snap_session){ s->id, atomic_load(&s->timeout_ms) };
}

size_t sessions_list(struct session_table *t, struct snap_session **out)
{
	struct session_list l = { 0 };
	rcu_read_lock();
	sessions_foreach(t, list_one, &l);
	zkd_rcu_read_unlock();
	*out = l.v;
	return l.n;
}

struct zsession *sessions_find(struct session_table *t, int64_t id)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(t->ht, id_hash(id), id_match, &id, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return n ? caa_container_of(n, struct zsession, hnode) : NULL;
}

struct zsession *sessions_add(struct session_table *t, int64_t id, int timeout_ms)
{
	struct zsession *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	cds_lfht_node_init(&s->hnode);
	s->id = id;
	atomic_init(&s->timeout_ms, timeout_ms);
	atomic_init(&s->deadline_ms, mono_ms() + timeout_ms);
	rcu_read_lock();
	TSAN_RELEASE(s);
	struct cds_lfht_node *got = cds_lfht_add_unique(t->ht, id_hash(id), id_match, &s->id, &s->hnode);
	zkd_rcu_read_unlock();
	if (got != &s->hnode) {
		free(s);
		return caa_container_of(got, struct zsession, hnode);
	}
	atomic_fetch_add(&t->count, 1);
	return s;
}

void sessions_remove(struct session_table *t, struct zsession *s)
{
	rcu_read_lock();
	int rc = cds_lfht_del(t->ht, &s->hnode);
	zkd_rcu_read_unlock();
	if (rc == 0) {
		atomic_fetch_sub(&t->count, 1);
		call_rcu(&s->rcu, session_free_cb);
	}
}

int64_t sessions_next_id(struct session_table *t)
{
	return atomic_fetch_add(&t->next_id, 1);
}

/* java.util.Random: a 48-bit LCG; nextBytes takes 4 bytes per nextInt, low byte first. */
void session_password(int64_t id, uint8_t out[16])
{
	const uint64_t mult = 0x5DEECE66DULL, mask = (1ULL << 48) - 1;
	uint64_t seed = ((uint64_t)id ^ 0xB3415C00ULL ^ mult) & mask;
	for (int i = 0; i < 16;) {
		seed = (seed * mult + 0xB) & mask;
		int32_t rnd = (int32_t)(seed >> 16);
		for (int n = 0; n < 4 && i < 16; n++) {
			out[i++] = (uint8_t)rnd;
			rnd >>= 8;
		}
	}
}
