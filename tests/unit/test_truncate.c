/*
 * test_truncate.c - ZAB's TRUNC on disk: after storage_truncate(zxid),
 * recovery yields exactly the tree the history had at zxid, wherever zxid
 * falls (inside a log file, at a file boundary, past the end, before
 * everything, between epochs); newer snapshots are gone; a new txn appended
 * afterwards recovers too; what cannot be done safely is refused without
 * changing anything; failing removals and cuts are reported.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/jute.h"
#include "storage/fileio.h"
#include "storage/logreader.h"
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
	test_dir_make(dir, sizeof dir, "truncate");
	snprintf(vdir, sizeof vdir, "%s/version-2", dir);
	fio_fault_clear();
}

static void teardown(void)
{
	fio_fault_clear();
	test_dir_remove(dir);
	rcu_unregister_thread();
}

TestSuite(truncate, .init = setup, .fini = teardown);

/* ---- a deterministic history --------------------------------------------- */

static int32_t cur(struct ztree *tree, const char *p, bool cversion)
{
	rcu_read_lock();
	struct znode *n = tree_lookup(tree, p, strlen(p));
	int32_t v = !n ? -1 : cversion ? tree_ver(n)->stat.cversion : tree_ver(n)->stat.version;
	rcu_read_unlock();
	return v;
}

static char *str(const char *fmt, int64_t z)
{
	char *s;
	cr_assert(asprintf(&s, fmt, z) > 0);
	return s;
}

static void set_create(struct ztree *tree, struct ztxn *x, char *path, const char *data, int64_t owner)
{
	x->type = ZOP_CREATE;
	x->path = path;
	x->path_len = strlen(path);
	x->data = (const uint8_t *)data;
	x->data_len = (int32_t)strlen(data);
	x->acl = malloc(zk_open_acl_len);
	memcpy(x->acl, zk_open_acl, zk_open_acl_len);
	x->acl_len = zk_open_acl_len;
	x->ephemeral_owner = owner;
	size_t plen, nlen;
	const char *name;
	tree_split(path, x->path_len, &plen, &name, &nlen);
	char parent[128];
	snprintf(parent, sizeof parent, "%.*s", (int)plen, path);
	x->parent_cversion = cur(tree, parent, true) + 1;
}

/* Txn number z of the history, given the tree before it. variant 0 is the
 * original history (sessions, creates, ephemerals, setData, closeSession,
 * in a cycle of five); variant 1 is what a new leader has at z instead;
 * variant 2 is a plain create, for zxids that are not consecutive. */
static void gen(struct ztree *tree, int64_t z, int variant, struct ztxn *x)
{
	*x = (struct ztxn){ .session_id = 0x55, .cxid = (int32_t)z, .zxid = z, .time = 1700000000000LL + z };
	if (variant == 1) {
		set_create(tree, x, str("/other%" PRId64, z), "new leader", 0);
		return;
	}
	if (variant == 2) {
		set_create(tree, x, str("/v%" PRIx64, z), "v", 0);
		return;
	}
	switch (z % 5) {
	case 0:
		x->type = ZOP_CREATESESSION;
		x->session_id = 0x1000 + z;
		x->timeout = 30000;
		break;
	case 1:
		set_create(tree, x, str("/n%" PRId64, z), "data", 0);
		break;
	case 2:
		x->session_id = 0x1000 + z - 2;
		set_create(tree, x, str("/n%" PRId64 "/eph", z - 1), "", 0x1000 + z - 2);
		break;
	case 3:
		x->type = ZOP_SETDATA;
		x->path = str("/n%" PRId64, z - 2);
		x->path_len = strlen(x->path);
		x->data = (const uint8_t *)"changed";
		x->data_len = 7;
		x->version = cur(tree, x->path, false) + 1;
		break;
	default:
		x->type = ZOP_CLOSE;
		x->session_id = 0x1000 + z - 4;
		x->n_close_paths = 1;
		x->close_paths = calloc(1, sizeof(char *));
		x->close_paths[0] = str("/n%" PRId64 "/eph", z - 3);
		break;
	}
}

static void apply(struct ztree *tree, struct ztxn *x)
{
	rcu_read_lock();
	txn_apply(tree, x, NULL, NULL);
	rcu_read_unlock();
}

static struct ztree *empty_tree(void)
{
	struct ztree *tree = tree_new();
	rcu_read_lock();
	tree_init_system_nodes(tree);
	rcu_read_unlock();
	return tree;
}

/* The tree after txns 1..k of variant 0. */
static struct ztree *reference(int64_t k)
{
	struct ztree *tree = empty_tree();
	for (int64_t z = 1; z <= k; z++) {
		struct ztxn x;
		gen(tree, z, 0, &x);
		apply(tree, &x);
		ztxn_clear(&x);
	}
	return tree;
}

/* ---- a server: the log, the tree, snapshots ------------------------------ */

struct srv {
	struct ztree *tree;
	struct txnlog *log;
	const char *logdir;
};

static struct recovery_result recover(const char *logdir)
{
	struct recovery_result r;
	char err[512];
	cr_assert_eq(recovery_run(dir, logdir, false, NULL, &r, err, sizeof err), 0, "%s", err);
	return r;
}

static void srv_open_log(struct srv *s)
{
	char err[512];
	s->log = txnlog_open(s->logdir ? s->logdir : dir, 4096, true, err, sizeof err);
	cr_assert_not_null(s->log, "%s", err);
}

static struct srv srv_start(const char *logdir)
{
	struct srv s = { .logdir = logdir };
	s.tree = recover(logdir).tree;       /* a fresh dataDir: snapshot.0 */
	srv_open_log(&s);
	return s;
}

static void srv_txn(struct srv *s, int64_t z, int variant)
{
	struct ztxn x;
	gen(s->tree, z, variant, &x);
	cr_assert_eq(txnlog_append(s->log, &x), 0, "%s", txnlog_error(s->log));
	cr_assert_eq(txnlog_sync(s->log), 0, "%s", txnlog_error(s->log));
	apply(s->tree, &x);
	ztxn_clear(&x);
}

static void srv_snap(struct srv *s, int64_t z)
{
	char err[512];
	cr_assert_eq(snapshot_write(dir, s->tree, z, NULL, 0, err, sizeof err), 0, "%s", err);
}

/* txns from..to of variant 0, rolling the log every `roll` txns (0 = never)
 * and snapshotting at the zxids in snaps (0-terminated). */
static void srv_history(struct srv *s, int64_t from, int64_t to, int roll, const int64_t *snaps)
{
	for (int64_t z = from; z <= to; z++) {
		srv_txn(s, z, 0);
		if (roll && z % roll == 0)
			cr_assert_eq(txnlog_roll(s->log), 0);
		for (const int64_t *p = snaps; p && *p; p++)
			if (*p == z)
				srv_snap(s, z);
	}
}

static void srv_stop(struct srv *s)
{
	if (s->log)
		cr_assert_eq(txnlog_close(s->log), 0);
	s->log = NULL;
	tree_free(s->tree);
	s->tree = NULL;
}

/* ---- checks -------------------------------------------------------------- */

/* Recovery gives exactly the history up to k. */
static void assert_recovers_to(const char *logdir, int64_t k)
{
	struct recovery_result r = recover(logdir);
	cr_assert_eq(r.last_zxid, k, "last zxid 0x%" PRIx64 ", want 0x%" PRIx64, (uint64_t)r.last_zxid, (uint64_t)k);
	struct ztree *ref = reference(k);
	test_assert_same_tree(ref, r.tree);
	tree_free(ref);
	tree_free(r.tree);
}

/* The names in a version-2 directory, sorted, as one string. */
static char *listing(const char *d)
{
	DIR *dd = opendir(d);
	cr_assert_not_null(dd);
	char *names[256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dd)) != NULL)
		if (e->d_name[0] != '.' && n < 256)
			names[n++] = strdup(e->d_name);
	closedir(dd);
	qsort(names, (size_t)n, sizeof *names, test_cmp_str);
	char *out = calloc(1, 4096);
	for (int i = 0; i < n; i++) {
		strcat(out, names[i]);
		strcat(out, " ");
		free(names[i]);
	}
	return out;
}

static void assert_listing(const char *d, const char *want)
{
	char *got = listing(d);
	cr_assert_str_eq(got, want);
	free(got);
}

static off_t size_of(const char *name)
{
	char p[400];
	snprintf(p, sizeof p, "%s/%s", vdir, name);
	struct stat st;
	cr_assert_eq(stat(p, &st), 0, "%s", p);
	return st.st_size;
}

static void truncate_ok(const char *logdir, int64_t z)
{
	char err[512];
	cr_assert_eq(storage_truncate(dir, logdir, z, err, sizeof err), 0, "%s", err);
}

/* ---- tests --------------------------------------------------------------- */

Test(truncate, inside_a_log_then_a_new_txn_appends_and_recovers)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 60, 0, (const int64_t[]){ 20, 0 });
	srv_stop(&s);
	off_t before = size_of("log.1");

	truncate_ok(NULL, 35);
	assert_listing(vdir, "log.1 snapshot.0 snapshot.14 ");
	cr_assert_lt(size_of("log.1"), before);
	assert_recovers_to(NULL, 35);

	/* the new leader's txn 36 replaces ours */
	struct recovery_result r = recover(NULL);
	s.tree = r.tree;
	srv_open_log(&s);
	srv_txn(&s, 36, 1);
	srv_stop(&s);
	r = recover(NULL);
	cr_assert_eq(r.last_zxid, 36);
	struct ztree *want = reference(35);
	struct ztxn x;
	gen(want, 36, 1, &x);
	apply(want, &x);
	ztxn_clear(&x);
	test_assert_same_tree(want, r.tree);
	rcu_read_lock();
	cr_assert_not_null(tree_lookup(r.tree, "/other36", 8));
	cr_assert_null(tree_lookup(r.tree, "/n36", 4));
	rcu_read_unlock();
	tree_free(want);
	tree_free(r.tree);
}

Test(truncate, across_log_files_and_at_a_file_boundary)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 60, 10, NULL);     /* log.1, log.b, log.15, log.1f, log.29, log.33 */
	srv_stop(&s);
	assert_listing(vdir, "log.1 log.15 log.1f log.29 log.33 log.b snapshot.0 ");

	truncate_ok(NULL, 25);
	assert_listing(vdir, "log.1 log.15 log.b snapshot.0 ");
	assert_recovers_to(NULL, 25);

	truncate_ok(NULL, 20);                /* log.15 starts at 21: it goes whole */
	assert_listing(vdir, "log.1 log.b snapshot.0 ");
	assert_recovers_to(NULL, 20);

	truncate_ok(NULL, 10);                /* the last txn of log.1: log.b goes, log.1 stays whole */
	assert_listing(vdir, "log.1 snapshot.0 ");
	assert_recovers_to(NULL, 10);
}

Test(truncate, snapshots_newer_than_the_zxid_are_removed)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 60, 0, (const int64_t[]){ 10, 30, 35, 50, 0 });
	srv_stop(&s);
	truncate_ok(NULL, 35);
	assert_listing(vdir, "log.1 snapshot.0 snapshot.1e snapshot.23 snapshot.a ");
	assert_recovers_to(NULL, 35);
	truncate_ok(NULL, 32);
	assert_listing(vdir, "log.1 snapshot.0 snapshot.1e snapshot.a ");
	assert_recovers_to(NULL, 32);
}

Test(truncate, nothing_above_the_zxid_changes_nothing)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 30, 0, (const int64_t[]){ 30, 0 });
	srv_stop(&s);
	off_t before = size_of("log.1");
	truncate_ok(NULL, 30);
	truncate_ok(NULL, 1000);
	assert_listing(vdir, "log.1 snapshot.0 snapshot.1e ");
	cr_assert_eq(size_of("log.1"), before, "not even the preallocated tail is cut");
	assert_recovers_to(NULL, 30);
}

Test(truncate, to_zero_leaves_the_empty_tree)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 30, 7, NULL);
	srv_stop(&s);
	truncate_ok(NULL, 0);
	assert_listing(vdir, "snapshot.0 ");
	assert_recovers_to(NULL, 0);
}

Test(truncate, refuses_when_every_snapshot_is_newer)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 50, 0, (const int64_t[]){ 40, 0 });
	srv_stop(&s);
	char p[400];
	snprintf(p, sizeof p, "%s/snapshot.0", vdir);
	cr_assert_eq(unlink(p), 0);
	snprintf(p, sizeof p, "%s/snapshot.5", vdir);   /* an interrupted one: not sealed */
	FILE *f = fopen(p, "wb");
	fputs("ZKSN half a snapshot", f);
	fclose(f);
	char *before = listing(vdir);
	off_t size = size_of("log.1");
	char err[512];
	cr_assert_eq(storage_truncate(dir, NULL, 35, err, sizeof err), -1);
	cr_assert(strstr(err, "every valid snapshot") && strstr(err, "SNAP"), "%s", err);
	assert_listing(vdir, before);
	cr_assert_eq(size_of("log.1"), size);
	free(before);
}

/* A zxid that is not in the log (the txns jump to a new epoch): the cut is
 * before the first txn above it. ZooKeeper would keep that one. */
Test(truncate, a_zxid_between_epochs)
{
	for (int roll = 0; roll < 2; roll++) {
		struct srv s = srv_start(NULL);
		for (int64_t z = 0x100000001LL; z <= 0x100000005LL; z++)
			srv_txn(&s, z, 2);
		if (roll)
			cr_assert_eq(txnlog_roll(s.log), 0);
		for (int64_t z = 0x200000001LL; z <= 0x200000005LL; z++)
			srv_txn(&s, z, 2);
		srv_stop(&s);
		truncate_ok(NULL, 0x100000009LL);
		assert_listing(vdir, "log.100000001 snapshot.0 ");
		struct recovery_result r = recover(NULL);
		cr_assert_eq(r.last_zxid, 0x100000005LL);
		rcu_read_lock();
		cr_assert_not_null(tree_lookup(r.tree, "/v100000005", 11));
		cr_assert_null(tree_lookup(r.tree, "/v200000001", 11));
		rcu_read_unlock();
		tree_free(r.tree);
		test_dir_remove(dir);
		mkdir(dir, 0700);
	}
}

Test(truncate, separate_data_log_dir)
{
	char logdir[300];
	snprintf(logdir, sizeof logdir, "%s/logs", dir);
	struct srv s = srv_start(logdir);
	srv_history(&s, 1, 40, 15, (const int64_t[]){ 12, 33, 0 });
	srv_stop(&s);
	truncate_ok(logdir, 22);
	char lv[400];
	snprintf(lv, sizeof lv, "%s/version-2", logdir);
	assert_listing(lv, "log.1 log.10 ");
	assert_listing(vdir, "snapshot.0 snapshot.c ");
	assert_recovers_to(logdir, 22);
}

/* Offsets of the records of log.1. */
static size_t record_offset(const char *name, int64_t z)
{
	char p[400], err[256];
	snprintf(p, sizeof p, "%s/%s", vdir, name);
	struct logreader r;
	cr_assert_eq(logreader_open(&r, p, err, sizeof err), 0, "%s", err);
	struct logreader_rec rec;
	size_t off = 0;
	while (logreader_next(&r, &rec, err, sizeof err) == 1) {
		if (rec.txn.zxid == z)
			off = rec.offset;
		ztxn_clear(&rec.txn);
	}
	logreader_close(&r);
	cr_assert_neq(off, 0u, "zxid %" PRId64 " not in %s", z, name);
	return off;
}

static void flip(const char *name, size_t off)
{
	char p[400];
	snprintf(p, sizeof p, "%s/%s", vdir, name);
	FILE *f = fopen(p, "r+b");
	cr_assert_not_null(f);
	fseek(f, (long)off, SEEK_SET);
	int c = fgetc(f);
	fseek(f, (long)off, SEEK_SET);
	fputc(c ^ 0x5a, f);
	fclose(f);
}

Test(truncate, a_corrupt_record_above_the_zxid_is_cut_one_below_is_refused)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 30, 0, NULL);
	srv_stop(&s);
	flip("log.1", record_offset("log.1", 21) + 20);   /* inside txn 21, intact txns after it */
	truncate_ok(NULL, 20);                          /* the last good one is 20: all after it goes */
	assert_recovers_to(NULL, 20);

	flip("log.1", record_offset("log.1", 10) + 20);
	char *before = listing(vdir);
	off_t size = size_of("log.1");
	char err[512];
	cr_assert_eq(storage_truncate(dir, NULL, 15, err, sizeof err), -1);
	cr_assert(strstr(err, "log.1") && strstr(err, "refusing"), "%s", err);
	cr_assert_eq(size_of("log.1"), size, "nothing changed");
	assert_listing(vdir, before);
	free(before);
}

Test(truncate, failures_are_reported)
{
	struct srv s = srv_start(NULL);
	srv_history(&s, 1, 40, 10, (const int64_t[]){ 30, 0 });
	srv_stop(&s);
	char err[512];

	struct fio_fault f = { .op = FIO_UNLINK, .nth = 1, .err = EIO };
	cr_assert(fio_fault_add(&f));
	cr_assert_eq(storage_truncate(dir, NULL, 25, err, sizeof err), -1);
	cr_assert(strstr(err, "cannot remove") && strstr(err, "snapshot.1e"), "%s", err);
	fio_fault_clear();
	assert_recovers_to(NULL, 40);                   /* nothing was lost either */

	f = (struct fio_fault){ .op = FIO_FTRUNCATE, .nth = 1, .err = EIO };
	cr_assert(fio_fault_add(&f));
	cr_assert_eq(storage_truncate(dir, NULL, 25, err, sizeof err), -1);
	cr_assert(strstr(err, "ftruncate failed") && strstr(err, "log.15"), "%s", err);
	fio_fault_clear();
	/* the later files went first: what is left is a prefix of the history */
	assert_listing(vdir, "log.1 log.15 log.b snapshot.0 ");
	assert_recovers_to(NULL, 30);

	f = (struct fio_fault){ .op = FIO_FSYNC, .nth = 1, .err = EIO };
	cr_assert(fio_fault_add(&f));
	cr_assert_eq(storage_truncate(dir, NULL, 25, err, sizeof err), -1);
	cr_assert(strstr(err, "fsync"), "%s", err);
	fio_fault_clear();

	truncate_ok(NULL, 25);
	assert_recovers_to(NULL, 25);
}
