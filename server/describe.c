/*
 * describe.c - data for dump, dirs, gtmk and stmk (see describe.h).
 *
 * The session wheel is the tracker thread's alone, so dump does not read
 * it: it files each live session under the tick its deadline rounds up
 * to, which is the bucket the tracker would hold it in.
 */
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <urcu.h>

#include "describe.h"
#include "net/grow.h"
#include "net/tsan.h"
#include "processors/session.h"
#include "server.h"

/* ---- sessions by expiry ------------------------------------------------ */

struct expiry { int64_t due, id; };
struct expiry_list { struct expiry *v; size_t n, cap; int64_t tick; };

static void add_expiry(void *arg, const struct zsession *s)
{
	struct expiry_list *l = arg;
	if (atomic_load(&s->closing))
		return;
	struct expiry *v = grow_for(l->v, l->n, &l->cap, sizeof *v, 64);
	if (!v)
		return;
	l->v = v;
	int64_t deadline = atomic_load(&s->deadline_ms);
	l->v[l->n++] = (struct expiry){ (deadline / l->tick + 1) * l->tick, s->id };
}

static int by_due_then_id(const void *a, const void *b)
{
	const struct expiry *x = a, *y = b;
	if (x->due != y->due)
		return x->due < y->due ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

long describe_session_expiry(struct zkd_server *srv, long *n_sets,
			     void (*fn)(void *arg, int64_t expiry_ms, int64_t session_id), void *arg)
{
	struct expiry_list l = { .tick = srv->cfg.tick_time > 0 ? srv->cfg.tick_time : 1 };
	rcu_read_lock();
	sessions_foreach(atomic_load(&srv->st.sessions), add_expiry, &l);
	zkd_rcu_read_unlock();
	if (l.n)
		qsort(l.v, l.n, sizeof *l.v, by_due_then_id);
	int64_t mono_to_wall = wall_ms() - mono_ms();
	*n_sets = 0;
	for (size_t i = 0; i < l.n; i++) {
		*n_sets += i == 0 || l.v[i].due != l.v[i - 1].due;
		fn(arg, l.v[i].due + mono_to_wall, l.v[i].id);
	}
	free(l.v);
	return (long)l.n;
}

/* ---- ephemerals by session --------------------------------------------- */

struct eph { int64_t owner; char *path; };
struct eph_list { struct eph *v; size_t n, cap; };

static void add_ephemeral(void *arg, const struct znode *n)
{
	struct eph_list *l = arg;
	int64_t owner = tree_ver(n)->stat.ephemeral_owner;
	if (owner == 0 || owner == ZK_CONTAINER_OWNER || (owner & ZK_TTL_MASK) == ZK_TTL_PREFIX)
		return;
	struct eph *v = grow_for(l->v, l->n, &l->cap, sizeof *v, 64);
	if (!v)
		return;
	l->v = v;
	char *path = strndup(n->path, n->path_len);
	if (path)
		l->v[l->n++] = (struct eph){ owner, path };
}

static int by_owner_then_path(const void *a, const void *b)
{
	const struct eph *x = a, *y = b;
	if (x->owner != y->owner)
		return x->owner < y->owner ? -1 : 1;
	return strcmp(x->path, y->path);
}

long describe_ephemerals(struct zkd_server *srv, void (*fn)(void *arg, int64_t session_id, const char *path),
			 void *arg)
{
	struct eph_list l = { 0 };
	rcu_read_lock();
	tree_foreach(atomic_load(&srv->st.tree), add_ephemeral, &l);
	zkd_rcu_read_unlock();
	if (l.n)
		qsort(l.v, l.n, sizeof *l.v, by_owner_then_path);
	long sessions = 0;
	for (size_t i = 0; i < l.n; i++) {
		sessions += i == 0 || l.v[i].owner != l.v[i - 1].owner;
		fn(arg, l.v[i].owner, l.v[i].path);
		free(l.v[i].path);
	}
	free(l.v);
	return sessions;
}

/* ---- dirs ---------------------------------------------------------------- */

/* ZooKeeper's getDirSize: every regular file below dir, recursively. */
static long long dir_size(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	long long total = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char path[PATH_MAX];
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
			continue;
		struct stat st;
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISREG(st.st_mode))
			total += st.st_size;
		else if (S_ISDIR(st.st_mode) && depth < 8)
			total += dir_size(path, depth + 1);
	}
	closedir(d);
	return total;
}

void describe_dir_sizes(struct zkd_server *srv, long long *data_bytes, long long *log_bytes)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/version-2", srv->st.storage.data_dir);
	*data_bytes = dir_size(path, 0);
	snprintf(path, sizeof path, "%s/version-2", srv->st.storage.data_log_dir);
	*log_bytes = dir_size(path, 0);
}

/* ---- trace mask ---------------------------------------------------------- */

/* ZooTrace's default: CLIENT_REQUEST_TRACE_MASK | ... = 0b100110010.
 * Any thread writes (stmk) and reads (gtmk); nothing else depends on it. */
static atomic_llong trace_mask = 306;

long long describe_trace_mask(void)
{
	return atomic_load(&trace_mask);
}

void describe_set_trace_mask(long long mask)
{
	atomic_store(&trace_mask, mask);
}

/* ---- hash ---------------------------------------------------------------- */

/* DigestCommand: "<zxid in hex>: <digest as a signed long>" per entry. */
void describe_digests(struct zkd_server *srv, struct outbuf *o)
{
	(void)srv;
	static struct zk_zxid_digest log[1024];   /* 16 KB: not on an I/O thread's stack */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&lock);
	size_t n = processors_digest_log(log, sizeof log / sizeof log[0]);
	for (size_t i = 0; i < n; i++)
		ob_printf(o, "%llx: %lld\n", (unsigned long long)log[i].zxid, (long long)log[i].digest);
	pthread_mutex_unlock(&lock);
}
