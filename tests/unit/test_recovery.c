/*
 * test_recovery.c - startup from disk: a server's history (txns logged,
 * synced and applied, snapshots taken along the way) is recovered into
 * exactly the tree the server had; fuzzy snapshots taken while a writer
 * races the walk replay into the exact tree; ZooKeeper's replay fix-ups;
 * the session callbacks; refusing to start without a snapshot; purge.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/records.h"
#include "storage/fileio.h"
#include "storage/recovery.h"
#include "storage/snapshot.h"
#include "storage/tree.h"
#include "storage/txncodec.h"
#include "storage/txnlog.h"
#include "helpers.h"

static char dir[256];
static char vdir[300];

static void setup(void)
{
	rcu_register_thread();
	test_dir_make(dir, sizeof dir, "recovery");
	snprintf(vdir, sizeof vdir, "%s/version-2", dir);
	fio_fault_clear();
}

static void teardown(void)
{
	test_dir_remove(dir);
	rcu_unregister_thread();
}

TestSuite(recovery, .init = setup, .fini = teardown);

static char *vpath(const char *name)
{
	static char p[400];
	snprintf(p, sizeof p, "%s/%s", vdir, name);
	return p;
}

/* ---- a small "server": Prep's decisions, the log, the tree ---------------- */

struct server {
	struct ztree *tree;
	struct txnlog *log;
	int64_t zxid;               /* last applied */
	int64_t time;
	bool own_log;
};

static struct server *srv_new(bool with_log)
{
	struct server *s = calloc(1, sizeof *s);
	s->tree = tree_new();
	rcu_read_lock();
	tree_init_system_nodes(s->tree);
	rcu_read_unlock();
	if (with_log) {
		char err[256];
		s->log = txnlog_open(dir, 64 * 1024, true, err, sizeof err);
		cr_assert_not_null(s->log, "%s", err);
	}
	s->time = 1700000000000LL;
	return s;
}

static void srv_free(struct server *s)
{
	if (s->log)
		cr_assert_eq(txnlog_close(s->log), 0);
	tree_free(s->tree);
	free(s);
}

static void srv_snapshot(struct server *s, const struct snap_session *ss, size_t n)
{
	char err[512];
	cr_assert_eq(snapshot_write(dir, s->tree, s->zxid, ss, n, err, sizeof err), 0, "%s", err);
}

static const uint8_t *acl_for(int64_t k, size_t *len)
{
	static uint8_t buf[64];
	if (k == 0) {
		*len = zk_open_acl_len;
		return zk_open_acl;
	}
	char id[32];
	int n = snprintf(id, sizeof id, "u%" PRId64 ":pw", k);
	uint8_t *p = buf;
	jute_put_u32(p, 1);
	jute_put_u32(p + 4, 31);
	jute_put_u32(p + 8, 6);
	memcpy(p + 12, "digest", 6);
	jute_put_u32(p + 18, (uint32_t)n);
	memcpy(p + 22, id, (size_t)n);
	*len = 22 + (size_t)n;
	return buf;
}

static struct ztxn base(struct server *s, int32_t type, int64_t session)
{
	s->zxid++;
	s->time += 3;
	return (struct ztxn){ .type = type, .session_id = session, .cxid = (int32_t)s->zxid, .zxid = s->zxid,
			      .time = s->time };
}

static int32_t parent_cv(struct ztree *tree, const char *path)
{
	size_t plen, nlen;
	const char *name;
	tree_split(path, strlen(path), &plen, &name, &nlen);
	rcu_read_lock();
	struct znode *p = tree_lookup(tree, path, plen);
	int32_t cv = p ? tree_ver(p)->stat.cversion + 1 : 1;
	rcu_read_unlock();
	return cv;
}

static void fill_create(struct server *s, struct ztxn *t, const char *path, const char *data, int64_t acl, int64_t owner)
{
	t->path = strdup(path);
	t->path_len = strlen(path);
	t->data = (const uint8_t *)data;
	t->data_len = data ? (int32_t)strlen(data) : -1;
	size_t al;
	const uint8_t *a = acl_for(acl, &al);
	t->acl = malloc(al);
	memcpy(t->acl, a, al);
	t->acl_len = al;
	t->ephemeral_owner = owner;
	t->parent_cversion = parent_cv(s->tree, path);
}

/* What the Sync and Final stages do with a txn: log it, apply it. */
static void srv_commit(struct server *s, struct ztxn *t)
{
	if (s->log)
		cr_assert_eq(txnlog_append(s->log, t), 0, "%s", txnlog_error(s->log));
	rcu_read_lock();
	txn_apply(s->tree, t, NULL, NULL);
	rcu_read_unlock();
	ztxn_clear(t);
}

static void srv_sync(struct server *s)
{
	cr_assert_eq(txnlog_sync(s->log), 0, "%s", txnlog_error(s->log));
}

static void c_create(struct server *s, const char *path, const char *data, int64_t acl, int64_t owner)
{
	struct ztxn t = base(s, owner == ZK_CONTAINER_OWNER ? ZOP_CREATECONTAINER : ZOP_CREATE,
			     owner && owner != ZK_CONTAINER_OWNER ? owner : 0x55);
	fill_create(s, &t, path, data, acl, owner);
	srv_commit(s, &t);
}

static int32_t node_int(struct ztree *tree, const char *path, int which)
{
	rcu_read_lock();
	struct znode *n = tree_lookup(tree, path, strlen(path));
	int32_t v = !n ? -1 : which == 0 ? tree_ver(n)->stat.version : tree_ver(n)->stat.aversion;
	rcu_read_unlock();
	return v;
}

static void c_set(struct server *s, const char *path, const char *data)
{
	struct ztxn t = base(s, ZOP_SETDATA, 0x55);
	t.path = strdup(path);
	t.path_len = strlen(path);
	t.data = (const uint8_t *)data;
	t.data_len = (int32_t)strlen(data);
	t.version = node_int(s->tree, path, 0) + 1;
	srv_commit(s, &t);
}

static void c_setacl(struct server *s, const char *path, int64_t acl)
{
	struct ztxn t = base(s, ZOP_SETACL, 0x55);
	t.path = strdup(path);
	t.path_len = strlen(path);
	size_t al;
	const uint8_t *a = acl_for(acl, &al);
	t.acl = malloc(al);
	memcpy(t.acl, a, al);
	t.acl_len = al;
	t.version = node_int(s->tree, path, 1) + 1;
	srv_commit(s, &t);
}

static void c_delete(struct server *s, const char *path)
{
	struct ztxn t = base(s, ZOP_DELETE, 0x55);
	t.path = strdup(path);
	t.path_len = strlen(path);
	srv_commit(s, &t);
}

static void c_session(struct server *s, int64_t id, int32_t timeout)
{
	struct ztxn t = base(s, ZOP_CREATESESSION, id);
	t.timeout = timeout;
	srv_commit(s, &t);
}

static void c_close(struct server *s, int64_t id, const char **paths, int n)
{
	struct ztxn t = base(s, ZOP_CLOSE, id);
	t.n_close_paths = n;
	if (n > 0) {
		t.close_paths = calloc((size_t)n, sizeof(char *));
		for (int i = 0; i < n; i++)
			t.close_paths[i] = strdup(paths[i]);
	}
	srv_commit(s, &t);
}

static void c_error(struct server *s, int err)
{
	struct ztxn t = base(s, ZOP_ERROR, 0x55);
	t.err = err;
	srv_commit(s, &t);
}

static void c_multi(struct server *s, const char *dirpath, bool fail)
{
	struct ztxn t = base(s, ZOP_MULTI, 0x55);
	t.cap_sub = 3;
	t.sub = calloc(3, sizeof *t.sub);
	char a[128], b[128];
	snprintf(a, sizeof a, "%s/m%" PRId64, dirpath, t.zxid);
	snprintf(b, sizeof b, "%s/m%" PRId64 "x", dirpath, t.zxid);
	for (int i = 0; i < 2; i++) {
		struct ztxn *c = &t.sub[t.n_sub++];
		c->type = ZOP_CREATE;
		c->op = i ? ZOP_CREATE2 : ZOP_CREATE;
		c->zxid = t.zxid;
		c->time = t.time;
		fill_create(s, c, i ? b : a, "multi", i, 0);
		c->parent_cversion += i;   /* the second create sees the first */
	}
	struct ztxn *c = &t.sub[t.n_sub++];
	if (fail) {
		c->type = ZOP_ERROR;
		c->err = ZNONODE;
	} else {
		c->type = ZOP_SETDATA;
		c->zxid = t.zxid;
		c->time = t.time;
		c->path = strdup(a);
		c->path_len = strlen(a);
		c->data = (const uint8_t *)"changed";
		c->data_len = 7;
		c->version = 1;
	}
	srv_commit(s, &t);
}

struct sess_log {
	int64_t open[256];
	int n_open;
	int64_t closed[256];
	int n_closed;
};

static void on_open(void *arg, int64_t id, int32_t timeout)
{
	(void)timeout;
	struct sess_log *l = arg;
	l->open[l->n_open++] = id;
}

static void on_close(void *arg, int64_t id)
{
	struct sess_log *l = arg;
	l->closed[l->n_closed++] = id;
}

static struct recovery_result recover(struct sess_log *sl)
{
	struct recovery_cb cb = { on_open, on_close, sl, NULL };
	struct recovery_result r;
	char err[512];
	cr_assert_eq(recovery_run(dir, NULL, false, &cb, &r, err, sizeof err), 0, "%s", err);
	return r;
}

/* A history with every kind of txn. */
static void history(struct server *s, int from, int to)
{
	for (int i = from; i < to; i++) {
		char p[64], q[64];
		snprintf(p, sizeof p, "/h%d", i);
		c_create(s, p, "data", i % 4, 0);
		snprintf(q, sizeof q, "/h%d/eph", i);
		c_session(s, 0x1000 + i, 30000);
		c_create(s, q, NULL, 0, 0x1000 + i);
		snprintf(q, sizeof q, "/h%d/c", i);
		c_create(s, q, "", 1, ZK_CONTAINER_OWNER);
		c_set(s, p, "v1");
		c_setacl(s, p, 7);
		c_multi(s, p, i % 2);
		c_error(s, ZNODEEXISTS);
		if (i % 3 == 0) {
			snprintf(q, sizeof q, "/h%d/eph", i);
			const char *paths[] = { q };
			c_close(s, 0x1000 + i, paths, 1);
		}
		if (i % 5 == 0) {
			snprintf(q, sizeof q, "/h%d/c", i);
			c_delete(s, q);
		}
		if (i % 2)
			srv_sync(s);
	}
	srv_sync(s);
}

/* ---- tests --------------------------------------------------------------- */

Test(recovery, fresh_directory_starts_empty_and_writes_snapshot_0)
{
	struct sess_log sl = { 0 };
	struct recovery_result r = recover(&sl);
	cr_assert(r.fresh);
	cr_assert_eq(r.last_zxid, 0);
	cr_assert_eq(access(vpath("snapshot.0"), F_OK), 0);
	rcu_read_lock();
	cr_assert_not_null(tree_lookup(r.tree, "/zookeeper/quota", 16));
	rcu_read_unlock();
	tree_free(r.tree);
	/* and the second start loads it */
	r = recover(&sl);
	cr_assert(!r.fresh);
	cr_assert_eq(r.snap_zxid, 0);
	tree_free(r.tree);
}

Test(recovery, history_is_recovered_exactly)
{
	struct server *s = srv_new(true);
	struct recovery_result r0 = recover(&(struct sess_log){ 0 });   /* snapshot.0, as at first start */
	tree_free(r0.tree);
	history(s, 0, 30);
	srv_snapshot(s, (struct snap_session[]){ { 0x1001, 30000 } }, 1);
	cr_assert_eq(txnlog_roll(s->log), 0);
	history(s, 30, 60);

	struct sess_log sl = { 0 };
	struct recovery_result r = recover(&sl);
	cr_assert_eq(r.last_zxid, s->zxid);
	cr_assert_neq(r.snap_zxid, 0);
	cr_assert_eq(r.txns, s->zxid - r.snap_zxid);
	test_assert_same_tree(s->tree, r.tree);
	cr_assert_eq(sl.open[0], 0x1001, "the snapshot's session first");
	cr_assert_eq(sl.n_open, 1 + 30);
	cr_assert_eq(sl.n_closed, 10);
	tree_free(r.tree);
	srv_free(s);
}

Test(recovery, newest_snapshot_truncated_uses_the_previous_and_more_log)
{
	struct server *s = srv_new(true);
	srv_snapshot(s, NULL, 0);
	history(s, 0, 20);
	srv_snapshot(s, NULL, 0);
	history(s, 20, 40);
	srv_snapshot(s, NULL, 0);
	history(s, 40, 45);
	/* truncate the newest snapshot (found by zxid) */
	struct stat st;
	char newest[64];
	int64_t z = s->zxid;
	for (; z >= 0; z--) {
		snprintf(newest, sizeof newest, "snapshot.%" PRIx64, z);
		if (stat(vpath(newest), &st) == 0)
			break;
	}
	cr_assert_geq(z, 1);
	truncate(vpath(newest), st.st_size / 2);
	struct recovery_result r = recover(&(struct sess_log){ 0 });
	cr_assert_lt(r.snap_zxid, z);
	cr_assert_gt(r.snap_zxid, 0);
	test_assert_same_tree(s->tree, r.tree);
	tree_free(r.tree);
	srv_free(s);
}

Test(recovery, logs_without_a_snapshot_are_refused_unless_trusted)
{
	struct server *s = srv_new(true);
	history(s, 0, 5);
	struct recovery_result r;
	char err[512];
	cr_assert_eq(recovery_run(dir, NULL, false, NULL, &r, err, sizeof err), -1);
	cr_assert(strstr(err, "no snapshot") && strstr(err, "refusing"), "%s", err);
	cr_assert_null(r.tree);
	cr_assert_eq(recovery_run(dir, NULL, true, NULL, &r, err, sizeof err), 0, "%s", err);
	test_assert_same_tree(s->tree, r.tree);
	tree_free(r.tree);
	srv_free(s);
}

Test(recovery, separate_data_log_dir)
{
	char logdir[300];
	snprintf(logdir, sizeof logdir, "%s/logs", dir);
	struct server *s = srv_new(false);
	char err[512];
	s->log = txnlog_open(logdir, 4096, true, err, sizeof err);
	srv_snapshot(s, NULL, 0);
	history(s, 0, 10);
	struct recovery_result r;
	cr_assert_eq(recovery_run(dir, logdir, false, NULL, &r, err, sizeof err), 0, "%s", err);
	test_assert_same_tree(s->tree, r.tree);
	tree_free(r.tree);
	srv_free(s);
}

Test(recovery, torn_tail_is_cut_and_the_server_carries_on)
{
	struct server *s = srv_new(true);
	srv_snapshot(s, NULL, 0);
	history(s, 0, 10);
	char *before = test_tree_dump(s->tree);
	int64_t good = s->zxid;
	/* a batch that is written but never synced, then a "crash" mid-write */
	fio_fault_add(&(struct fio_fault){ .op = FIO_PWRITE, .nth = 1, .err = EIO, .partial = true });
	for (int i = 0; i < 20; i++)
		c_create(s, "/lost", "x", 0, 0);   /* (applied to s->tree, but never durable) */
	cr_assert_eq(txnlog_sync(s->log), -1);
	cr_assert_eq(txnlog_durable_zxid(s->log), good);
	txnlog_close(s->log);
	s->log = NULL;
	fio_fault_clear();

	struct recovery_result r = recover(&(struct sess_log){ 0 });
	cr_assert_geq(r.last_zxid, good);
	char *got = test_tree_dump(r.tree);
	if (r.last_zxid == good)
		cr_assert_str_eq(got, before);
	free(got);
	/* the restarted server logs on from there, and restarts again cleanly */
	char err[256];
	struct server *s2 = calloc(1, sizeof *s2);
	s2->tree = r.tree;
	s2->zxid = r.last_zxid;
	s2->time = 1800000000000LL;
	s2->log = txnlog_open(dir, 4096, true, err, sizeof err);
	history(s2, 100, 105);
	struct recovery_result r2 = recover(&(struct sess_log){ 0 });
	test_assert_same_tree(s2->tree, r2.tree);
	tree_free(r2.tree);
	srv_free(s2);
	free(before);
	srv_free(s);
}

Test(recovery, close_session_without_a_list_removes_the_sessions_ephemerals)
{
	struct server *s = srv_new(true);
	c_session(s, 0xabc, 10000);
	c_create(s, "/e1", NULL, 0, 0xabc);
	c_create(s, "/keep", NULL, 0, 0xdef);
	srv_sync(s);
	srv_snapshot(s, NULL, 0);      /* /e1 is in the snapshot */
	c_create(s, "/e2", NULL, 0, 0xabc);
	c_create(s, "/e3", NULL, 0, 0xabc);
	c_delete(s, "/e3");
	c_create(s, "/e3", NULL, 0, 0xdef);   /* same path, another owner: must stay */
	/* closeSession as ZooKeeper logs it with closeSessionTxn disabled: no list */
	struct ztxn t = base(s, ZOP_CLOSE, 0xabc);
	t.n_close_paths = -1;
	cr_assert_eq(txnlog_append(s->log, &t), 0);
	srv_sync(s);
	struct sess_log sl = { 0 };
	struct recovery_result r = recover(&sl);
	rcu_read_lock();
	cr_assert_null(tree_lookup(r.tree, "/e1", 3));
	cr_assert_null(tree_lookup(r.tree, "/e2", 3));
	cr_assert_not_null(tree_lookup(r.tree, "/e3", 3));
	cr_assert_not_null(tree_lookup(r.tree, "/keep", 5));
	rcu_read_unlock();
	cr_assert_eq(sl.n_closed, 1);
	cr_assert_eq(sl.closed[0], 0xabc);
	tree_free(r.tree);
	srv_free(s);
}

/* The fuzzy-snapshot case ZooKeeper fixes up: the snapshot holds the child
 * but its parent was copied before the create. */
Test(recovery, create_of_a_node_the_snapshot_has_moves_parent_cversion)
{
	struct server *s = srv_new(false);
	c_create(s, "/p", NULL, 0, 0);
	s->zxid = 9;
	/* /p/c as the walk saw it: present, but /p's stat from before its create */
	struct ztxn t = base(s, ZOP_CREATE, 0x55);   /* zxid 10 */
	fill_create(s, &t, "/p/c", "x", 0, 0);
	t.parent_cversion = 0;
	rcu_read_lock();
	txn_apply(s->tree, &t, NULL, NULL);
	rcu_read_unlock();
	s->zxid = 9;
	srv_snapshot(s, NULL, 0);
	ztxn_clear(&t);
	char err[256];
	s->log = txnlog_open(dir, 4096, true, err, sizeof err);
	t = base(s, ZOP_CREATE, 0x55);               /* the create, replayed: zxid 10 */
	fill_create(s, &t, "/p/c", "x", 0, 0);
	t.parent_cversion = 1;
	cr_assert_eq(txnlog_append(s->log, &t), 0);
	ztxn_clear(&t);
	srv_sync(s);
	struct recovery_result r = recover(&(struct sess_log){ 0 });
	rcu_read_lock();
	const struct znode_ver *v = tree_ver(tree_lookup(r.tree, "/p", 2));
	cr_assert_eq(v->stat.cversion, 1);
	cr_assert_eq(v->stat.pzxid, 10);
	rcu_read_unlock();
	tree_free(r.tree);
	srv_free(s);
}

Test(recovery, zookeeper_only_txn_types_are_applied)
{
	struct server *s = srv_new(false);
	srv_snapshot(s, NULL, 0);
	char err[256];
	s->log = txnlog_open(dir, 4096, true, err, sizeof err);
	struct ztxn t = base(s, ZOP_CREATETTL, 0x55);
	fill_create(s, &t, "/ttl", "t", 0, ZK_TTL_PREFIX | 1000);
	cr_assert_eq(txnlog_append(s->log, &t), 0);
	ztxn_clear(&t);
	t = base(s, ZOP_CREATECONTAINER, 0x55);
	fill_create(s, &t, "/box", "", 0, ZK_CONTAINER_OWNER);
	cr_assert_eq(txnlog_append(s->log, &t), 0);
	ztxn_clear(&t);
	t = base(s, ZOP_DELETECONTAINER, 0x55);
	t.path = strdup("/box");
	t.path_len = 4;
	cr_assert_eq(txnlog_append(s->log, &t), 0);
	ztxn_clear(&t);
	t = base(s, ZOP_RECONFIG, 0x55);
	t.path = strdup("/zookeeper/config");
	t.path_len = 17;
	t.data = (const uint8_t *)"server.1=a";
	t.data_len = 10;
	t.version = 1;
	cr_assert_eq(txnlog_append(s->log, &t), 0);
	ztxn_clear(&t);
	srv_sync(s);
	struct recovery_result r = recover(&(struct sess_log){ 0 });
	rcu_read_lock();
	struct znode *n = tree_lookup(r.tree, "/ttl", 4);
	cr_assert_not_null(n);
	cr_assert_eq(tree_ver(n)->stat.ephemeral_owner, ZK_TTL_PREFIX | 1000);
	cr_assert_null(tree_lookup(r.tree, "/box", 4));
	n = tree_lookup(r.tree, "/zookeeper/config", 17);
	cr_assert_eq(tree_ver(n)->data->len, 10);
	cr_assert_eq(tree_ver(n)->stat.version, 1);
	rcu_read_unlock();
	tree_free(r.tree);
	srv_free(s);
}

Test(recovery, purge_keeps_what_the_newest_snapshots_need)
{
	struct server *s = srv_new(true);
	srv_snapshot(s, NULL, 0);
	int64_t snaps[6];
	for (int k = 0; k < 6; k++) {
		history(s, k * 5, k * 5 + 5);
		cr_assert_eq(txnlog_roll(s->log), 0);
		snaps[k] = s->zxid;
		srv_snapshot(s, NULL, 0);
	}
	history(s, 100, 103);
	char err[256];
	cr_assert_eq(storage_purge(dir, NULL, 2, err, sizeof err), -1);
	int removed = storage_purge(dir, NULL, 3, err, sizeof err);
	cr_assert_gt(removed, 0, "%s", err);
	char name[64];
	for (int k = 0; k < 6; k++) {
		snprintf(name, sizeof name, "snapshot.%" PRIx64, snaps[k]);
		cr_assert_eq(access(vpath(name), F_OK) == 0, k >= 3, "%s", name);
	}
	cr_assert_eq(access(vpath("snapshot.0"), F_OK), -1);
	cr_assert_eq(access(vpath("log.1"), F_OK), -1);
	/* every kept snapshot still recovers to the same tree */
	struct recovery_result r = recover(&(struct sess_log){ 0 });
	test_assert_same_tree(s->tree, r.tree);
	tree_free(r.tree);
	for (int k = 5; k >= 4; k--) {
		snprintf(name, sizeof name, "snapshot.%" PRIx64, snaps[k]);
		unlink(vpath(name));
		r = recover(&(struct sess_log){ 0 });
		cr_assert_eq(r.snap_zxid, snaps[k - 1]);
		test_assert_same_tree(s->tree, r.tree);
		tree_free(r.tree);
	}
	cr_assert_eq(storage_purge(dir, NULL, 3, err, sizeof err), 0);
	srv_free(s);
}

Test(recovery, stale_temp_snapshot_is_removed)
{
	struct server *s = srv_new(false);
	srv_snapshot(s, NULL, 0);
	FILE *f = fopen(vpath("tmp.snapshot.5"), "w");
	fputs("half", f);
	fclose(f);
	struct recovery_result r = recover(&(struct sess_log){ 0 });
	cr_assert_eq(access(vpath("tmp.snapshot.5"), F_OK), -1);
	tree_free(r.tree);
	srv_free(s);
}

/* ---- fuzzy snapshots against a racing writer ------------------------------ */

struct race {
	struct server *s;
	atomic_bool stop;
	atomic_llong applied;        /* last zxid applied, published after the apply */
	struct ztxn *log;            /* every txn, kept for the replay */
	size_t n, cap;
	char **leaves;
	size_t n_leaves, cap_leaves;
	unsigned seed;
};

static void race_keep(struct race *r, struct ztxn *t)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->log = realloc(r->log, r->cap * sizeof *r->log);
	}
	/* a deep enough copy: the encoding round trip */
	struct jute_writer w;
	jute_writer_init(&w, 256);
	char err[256];
	cr_assert_eq(txn_encode(&w, t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(txn_decode(w.buf, w.len, &r->log[r->n], err, sizeof err), 0, "%s", err);
	r->n++;
	jute_writer_free(&w);
}

static void race_leaf_add(struct race *r, const char *p)
{
	if (r->n_leaves == r->cap_leaves) {
		r->cap_leaves = r->cap_leaves ? r->cap_leaves * 2 : 1024;
		r->leaves = realloc(r->leaves, r->cap_leaves * sizeof *r->leaves);
	}
	r->leaves[r->n_leaves++] = strdup(p);
}

static void race_apply(struct race *r, struct ztxn *t)
{
	race_keep(r, t);
	rcu_read_lock();
	txn_apply(r->s->tree, t, NULL, NULL);
	rcu_read_unlock();
	atomic_store(&r->applied, t->zxid);
	ztxn_clear(t);
}

static void race_step(struct race *r)
{
	struct server *s = r->s;
	int op = rand_r(&r->seed) % 8;
	char p[96];
	if (op <= 1 || r->n_leaves < 50) {
		/* a leaf under an old parent; sometimes with a brand-new ACL */
		snprintf(p, sizeof p, "/fz/a%d/l%" PRId64, rand_r(&r->seed) % 40, s->zxid + 1);
		struct ztxn t = base(s, ZOP_CREATE, 0x77);
		fill_create(s, &t, p, "leaf", op == 0 ? s->zxid + 1000 : 1, op == 1 ? 0x77 : 0);
		race_apply(r, &t);
		race_leaf_add(r, p);
	} else if (op == 2) {
		/* a new subtree whose ACL nobody has seen yet */
		snprintf(p, sizeof p, "/fz/b%" PRId64, s->zxid + 1);
		struct ztxn t = base(s, ZOP_CREATE, 0x77);
		fill_create(s, &t, p, "new", s->zxid + 5000, 0);
		race_apply(r, &t);
		strcat(p, "/kid");
		t = base(s, ZOP_CREATE, 0x77);
		fill_create(s, &t, p, "new", s->zxid + 5000, 0);
		race_apply(r, &t);
		race_leaf_add(r, p);
	} else {
		size_t i = (size_t)rand_r(&r->seed) % r->n_leaves;
		const char *leaf = r->leaves[i];
		struct ztxn t;
		if (op == 3) {
			t = base(s, ZOP_DELETE, 0x77);
			t.path = strdup(leaf);
			t.path_len = strlen(leaf);
			race_apply(r, &t);
			free(r->leaves[i]);
			r->leaves[i] = r->leaves[--r->n_leaves];
		} else if (op <= 5) {
			t = base(s, ZOP_SETACL, 0x77);
			t.path = strdup(leaf);
			t.path_len = strlen(leaf);
			size_t al;
			const uint8_t *a = acl_for(s->zxid + 9000, &al);   /* a new ACL */
			t.acl = malloc(al);
			memcpy(t.acl, a, al);
			t.acl_len = al;
			t.version = node_int(s->tree, leaf, 1) + 1;
			race_apply(r, &t);
		} else {
			t = base(s, ZOP_SETDATA, 0x77);
			t.path = strdup(leaf);
			t.path_len = strlen(leaf);
			t.data = (const uint8_t *)"changed";
			t.data_len = 7;
			t.version = node_int(s->tree, leaf, 0) + 1;
			race_apply(r, &t);
		}
	}
}

static void *race_writer(void *arg)
{
	struct race *r = arg;
	rcu_register_thread();
	while (!atomic_load(&r->stop))
		race_step(r);
	rcu_unregister_thread();
	return NULL;
}

Test(recovery, fuzzy_snapshot_plus_replay_is_exact, .timeout = 120)
{
	struct server *s = srv_new(false);
	struct race r = { .s = s, .seed = 11 };
	c_create(s, "/fz", NULL, 0, 0);
	for (int i = 0; i < 40; i++) {
		char p[32];
		snprintf(p, sizeof p, "/fz/a%d", i);
		c_create(s, p, NULL, i % 3, 0);
	}
	for (int i = 0; i < 4000; i++)
		race_step(&r);
	for (int round = 0; round < 4; round++) {
		atomic_store(&r.stop, false);
		pthread_t th;
		pthread_create(&th, NULL, race_writer, &r);
		usleep(2000);
		int64_t z = atomic_load(&r.applied);    /* Final's last applied, before the walk */
		char err[512];
		cr_assert_eq(snapshot_write(dir, s->tree, z, NULL, 0, err, sizeof err), 0, "%s", err);
		usleep(2000);
		atomic_store(&r.stop, true);
		pthread_join(th, NULL);

		char name[400];
		snprintf(name, sizeof name, "%s/snapshot.%" PRIx64, vdir, (uint64_t)z);
		struct ztree *back = NULL;
		cr_assert_eq(snapshot_load_file(name, &back, NULL, NULL, err, sizeof err), 0, "%s", err);
		struct recovery_apply *a = recovery_apply_new(back, NULL);
		long replayed = 0;
		for (size_t i = 0; i < r.n; i++)
			if (r.log[i].zxid > z) {
				struct jute_writer w;     /* replay a copy: the kept one serves later rounds */
				jute_writer_init(&w, 256);
				cr_assert_eq(txn_encode(&w, &r.log[i], err, sizeof err), 0);
				struct ztxn t;
				cr_assert_eq(txn_decode(w.buf, w.len, &t, err, sizeof err), 0);
				jute_writer_free(&w);
				recovery_apply_txn(a, &t);
				ztxn_clear(&t);
				replayed++;
			}
		recovery_apply_free(a);
		cr_assert_gt(replayed, 0, "the writer must have raced the walk");
		test_assert_same_tree(s->tree, back);
		tree_free(back);
		unlink(name);
	}
	for (size_t i = 0; i < r.n; i++)
		ztxn_clear(&r.log[i]);
	free(r.log);
	for (size_t i = 0; i < r.n_leaves; i++)
		free(r.leaves[i]);
	free(r.leaves);
	srv_free(s);
}
