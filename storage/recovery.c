/*
 * recovery.c - startup from dataDir/dataLogDir (see recovery.h), and the
 * replay applier that makes txn_apply behave like ZooKeeper's restore.
 *
 * What replay needs beyond txn_apply, and why:
 * - A fuzzy snapshot can already hold a node whose create is replayed. The
 *   create fails with NodeExists, but the parent's cversion/pzxid must still
 *   move to what the txn says (DataTree.processTxn's setCversionPzxid).
 *   ZooKeeper does this for txns logged as `create` (type 1) only, top level
 *   or inside a multi, and so do we.
 * - closeSession deletes the paths its txn lists, and then, as
 *   DataTree.killSession does, every other ephemeral the session still owns
 *   (a fuzzy snapshot can hold one the list does not name, and a log written
 *   with zookeeper.closeSessionTxn.enabled=false lists none). Finding those
 *   by scanning the tree on every close would be quadratic, so the applier
 *   keeps an append-only index owner -> paths, seeded from the tree and fed
 *   by replayed creates; entries are checked against the tree when used
 *   (the node must still exist and still be owned by that session), so
 *   deletes never need to update it.
 * - A fuzzy snapshot can also lack a node whose parent it copied before the
 *   node was deleted (the walk visits the child after the delete). Replaying
 *   that delete finds nothing, but the parent's pzxid must still move to
 *   the delete's zxid, as the delete moved it. ZooKeeper leaves it behind
 *   (its restored pzxid can be older than the one its leader had); we move
 *   it for every replayed delete - top level, in a multi, or listed by a
 *   closeSession - which is a no-op when the delete did find its node.
 */
#include "recovery.h"

#include "quota.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadir.h"
#include "fileio.h"
#include "net/log.h"
#include "net/tsan.h"
#include "net/records.h"
#include "snapshot.h"
#include "tree_load.h"
#include "txnlog.h"

/* ---- the ephemeral index ------------------------------------------------- */

#define EPH_BUCKETS 4096

struct eph_owner {
	struct eph_owner *next;
	int64_t owner;
	char **paths;
	size_t n, cap;
};

struct recovery_apply {
	struct ztree *tree;
	struct recovery_cb cb;
	struct eph_owner *buckets[EPH_BUCKETS];
	long txns;
};

static bool normal_owner(int64_t owner)
{
	return owner != 0 && owner != ZK_CONTAINER_OWNER && (owner & ZK_TTL_MASK) != ZK_TTL_PREFIX;
}

static size_t eph_bucket(int64_t owner)
{
	uint64_t h = (uint64_t)owner * 0x9e3779b97f4a7c15ULL;
	return (size_t)(h >> 52) % EPH_BUCKETS;
}

static void eph_add(struct recovery_apply *a, int64_t owner, const char *path, size_t len)
{
	struct eph_owner **pp = &a->buckets[eph_bucket(owner)];
	struct eph_owner *e = *pp;
	while (e && e->owner != owner)
		e = e->next;
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e)
			abort();
		e->owner = owner;
		e->next = *pp;
		*pp = e;
	}
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 4;
		e->paths = realloc(e->paths, e->cap * sizeof *e->paths);
		if (!e->paths)
			abort();
	}
	e->paths[e->n] = strndup(path, len);
	if (!e->paths[e->n])
		abort();
	e->n++;
}

static struct eph_owner *eph_take(struct recovery_apply *a, int64_t owner)
{
	struct eph_owner **pp = &a->buckets[eph_bucket(owner)];
	while (*pp && (*pp)->owner != owner)
		pp = &(*pp)->next;
	struct eph_owner *e = *pp;
	if (e)
		*pp = e->next;
	return e;
}

static void eph_free(struct eph_owner *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->paths[i]);
	free(e->paths);
	free(e);
}

static void seed_one(void *arg, const struct znode *n)
{
	int64_t owner = tree_ver(n)->stat.ephemeral_owner;
	if (normal_owner(owner))
		eph_add(arg, owner, n->path, n->path_len);
}

struct recovery_apply *recovery_apply_new(struct ztree *tree, const struct recovery_cb *cb)
{
	struct recovery_apply *a = calloc(1, sizeof *a);
	if (!a)
		abort();
	a->tree = tree;
	if (cb)
		a->cb = *cb;
	tree_foreach(tree, seed_one, a);
	return a;
}

void recovery_apply_free(struct recovery_apply *a)
{
	if (!a)
		return;
	for (size_t b = 0; b < EPH_BUCKETS; b++)
		while (a->buckets[b]) {
			struct eph_owner *e = a->buckets[b];
			a->buckets[b] = e->next;
			eph_free(e);
		}
	free(a);
}

/* ---- applying ------------------------------------------------------------ */

/* ZooKeeper-only types, as the plain operation txn_apply knows. */
static void normalize(struct ztxn *t)
{
	switch (t->type) {
	case ZOP_CREATETTL: t->type = ZOP_CREATE; break;
	case ZOP_DELETECONTAINER: t->type = ZOP_DELETE; break;
	case ZOP_RECONFIG: t->type = ZOP_SETDATA; break;
	default: break;
	}
	for (int i = 0; i < t->n_sub; i++)
		normalize(&t->sub[i]);
}

static struct znode *parent_of(struct ztree *tree, const struct ztxn *t, size_t *plen)
{
	const char *name;
	size_t nlen;
	if (!t->path || !tree_split(t->path, t->path_len, plen, &name, &nlen))
		return NULL;
	return tree_lookup(tree, t->path, *plen);
}

/* CreateTxnV0 has no parentCVersion: DataTree.createNode uses parent's + 1. */
static void fix_v0_create(struct ztree *tree, struct ztxn *t)
{
	size_t plen;
	struct znode *p;
	if (t->type == ZOP_CREATE && t->parent_cversion == -1 && (p = parent_of(tree, t, &plen)) != NULL)
		t->parent_cversion = tree_ver(p)->stat.cversion + 1;
}

static void fix_existing_create(struct ztree *tree, const struct ztxn *t)
{
	size_t plen;
	if (parent_of(tree, t, &plen))
		tree_set_cversion_pzxid(tree, t->path, plen, t->parent_cversion, t->zxid);
}

/* See the top of the file: a delete that found nothing in a fuzzy snapshot. */
static void fix_delete_pzxid(struct ztree *tree, const char *path, size_t len, int64_t zxid)
{
	size_t plen, nlen;
	const char *name;
	if (path && tree_split(path, len, &plen, &name, &nlen))
		tree_advance_pzxid(tree, path, plen, zxid);
}

static void index_create(struct recovery_apply *a, const struct ztxn *t)
{
	if (t->type == ZOP_CREATE && normal_owner(t->ephemeral_owner))
		eph_add(a, t->ephemeral_owner, t->path, t->path_len);
}

static void kill_session(struct recovery_apply *a, struct ztxn *t)
{
	txn_apply(a->tree, t, NULL, NULL);   /* the listed paths */
	for (int i = 0; i < t->n_close_paths; i++)
		fix_delete_pzxid(a->tree, t->close_paths[i], strlen(t->close_paths[i]), t->zxid);
	struct eph_owner *e = eph_take(a, t->session_id);
	if (!e)
		return;
	long extra = 0;
	for (size_t i = 0; i < e->n; i++) {
		size_t len = strlen(e->paths[i]);
		struct znode *n = tree_lookup(a->tree, e->paths[i], len);
		if (n && tree_ver(n)->stat.ephemeral_owner == t->session_id) {
			tree_delete(a->tree, e->paths[i], len, t->zxid);
			extra++;
		}
	}
	if (extra && t->n_close_paths >= 0)
		log_debug("replay: closeSession 0x%" PRIx64 " (zxid 0x%" PRIx64 ") also removed %ld ephemeral(s) "
			  "its txn did not list", (uint64_t)t->session_id, (uint64_t)t->zxid, extra);
	eph_free(e);
}

int recovery_apply_txn(struct recovery_apply *a, struct ztxn *t)
{
	struct ztree *tree = a->tree;
	a->txns++;
	normalize(t);
	switch (t->type) {
	case ZOP_CREATESESSION:
		if (a->cb.session_open)
			a->cb.session_open(a->cb.arg, t->session_id, t->timeout);
		return 0;
	case ZOP_CLOSE:
		rcu_read_lock();
		kill_session(a, t);
		zkd_rcu_read_unlock();
		if (a->cb.session_close)
			a->cb.session_close(a->cb.arg, t->session_id);
		return 0;
	case ZOP_MULTI: {
		bool failed = false;
		for (int i = 0; i < t->n_sub; i++)
			failed |= t->sub[i].type == ZOP_ERROR;
		bool *existed = calloc((size_t)t->n_sub + 1, sizeof *existed);
		if (!existed)
			abort();
		rcu_read_lock();
		for (int i = 0; i < t->n_sub && !failed; i++) {
			struct ztxn *s = &t->sub[i];
			fix_v0_create(tree, s);
			existed[i] = s->op == ZOP_CREATE && tree_lookup(tree, s->path, s->path_len) != NULL;
		}
		txn_apply(tree, t, NULL, NULL);
		for (int i = 0; i < t->n_sub && !failed; i++) {
			struct ztxn *s = &t->sub[i];
			if (existed[i])
				fix_existing_create(tree, s);
			else
				index_create(a, s);
			if (s->type == ZOP_DELETE)
				fix_delete_pzxid(tree, s->path, s->path_len, t->zxid);
		}
		zkd_rcu_read_unlock();
		free(existed);
		return 0;
	}
	default: {
		rcu_read_lock();
		fix_v0_create(tree, t);
		int rc = txn_apply(tree, t, NULL, NULL);
		if (rc == ZNODEEXISTS && t->type == ZOP_CREATE && t->op == ZOP_CREATE)
			fix_existing_create(tree, t);
		else if (rc == ZOK)
			index_create(a, t);
		else if (rc == ZNONODE && t->type == ZOP_DELETE)
			fix_delete_pzxid(tree, t->path, t->path_len, t->zxid);
		else if (t->type != ZOP_ERROR)
			log_debug("replay: zxid 0x%" PRIx64 " %s %s: %s (ignored, as ZooKeeper does)",
				  (uint64_t)t->zxid, zk_op_name(t->type), t->path ? t->path : "", zk_err_name(rc));
		zkd_rcu_read_unlock();
		return 0;
	}
	}
}

/* ---- startup ------------------------------------------------------------- */

static int apply_cb(void *arg, struct ztxn *t, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct recovery_apply *a = arg;
	int rc = recovery_apply_txn(a, t);
	if (rc == 0 && a->cb.applied)
		a->cb.applied(a->cb.arg, t->zxid, atomic_load(&a->tree->digest));
	return rc;
}

/* An interrupted snapshot_write leaves tmp.snapshot.*: never valid, remove. */
static void remove_stale_temps(const char *vdir)
{
	DIR *d = opendir(vdir);
	if (!d)
		return;
	struct dirent *e;
	bool removed = false;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "tmp.snapshot.", 13) != 0)
			continue;
		char *path = datadir_path(vdir, e->d_name);
		if (fio_unlink(path) == 0) {
			log_info("recovery: removed %s, left by an interrupted snapshot", path);
			removed = true;
		}
		free(path);
	}
	closedir(d);
	if (removed)
		fio_fsync_dir(vdir);
}

static struct ztree *empty_tree(void)
{
	struct ztree *t = tree_new();
	if (!t)
		abort();
	rcu_read_lock();
	tree_init_system_nodes(t);
	zkd_rcu_read_unlock();
	return t;
}

int recovery_run(const char *data_dir, const char *data_log_dir, bool trust_empty_snapshot,
		 const struct recovery_cb *cb, struct recovery_result *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!data_log_dir)
		data_log_dir = data_dir;
	char *vdir = datadir_version_dir(data_dir, true, err, errlen);
	if (!vdir)
		return -1;
	remove_stale_temps(vdir);
	free(vdir);

	struct ztree *tree = NULL;
	int64_t snap_zxid = 0;
	int rc = snapshot_load(data_dir, &tree, &snap_zxid, cb ? cb->session_open : NULL, cb ? cb->arg : NULL,
			       err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		if (!txnlog_exists(data_log_dir)) {
			tree = empty_tree();
			if (snapshot_write(data_dir, tree, 0, NULL, 0, err, errlen) != 0) {
				tree_free(tree);
				return -1;
			}
			log_info("recovery: %s holds no data: starting empty (wrote snapshot.0)", data_dir);
			out->tree = tree;
			out->fresh = true;
			return 0;
		}
		if (!trust_empty_snapshot) {
			snprintf(err, errlen, "no snapshot in %s/%s, but there are txn logs in %s/%s: refusing to start "
				 "(as ZooKeeper does; zookeeper.snapshot.trust.empty=true replays the logs over an "
				 "empty tree)", data_dir, DATADIR_VERSION, data_log_dir, DATADIR_VERSION);
			return -1;
		}
		log_warn("recovery: no snapshot in %s; replaying the logs over an empty tree (trust empty snapshot)",
			 data_dir);
		tree = empty_tree();
		snap_zxid = 0;
	}

	struct recovery_apply *a = recovery_apply_new(tree, cb);
	int64_t last = snap_zxid;
	rc = txnlog_replay(data_log_dir, snap_zxid, apply_cb, a, &last, err, errlen);
	out->txns = a->txns;
	recovery_apply_free(a);
	if (rc != 0) {
		tree_free(tree);
		return -1;
	}
	/* zookeeper_stats are derived data: count them again, as ZooKeeper does
	 * after loading */
	rcu_read_lock();
	quota_rebuild(tree);
	zkd_rcu_read_unlock();
	out->tree = tree;
	out->snap_zxid = snap_zxid;
	out->last_zxid = last;
	return 0;
}
