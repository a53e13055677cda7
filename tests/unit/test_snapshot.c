/*
 * test_snapshot.c - snapshots: a tree with every kind of node survives a
 * write and a load exactly; the file is ZooKeeper's format; a truncated or
 * corrupt newest snapshot makes the loader fall back to the previous one;
 * hostile content fails cleanly; a failing fsync/write/rename never leaves
 * a snapshot that looks valid.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/jute.h"
#include "net/records.h"
#include "storage/adler32.h"
#include "storage/fileio.h"
#include "storage/snapshot.h"
#include "storage/tree.h"
#include "storage/txncodec.h"
#include "helpers.h"

static char dir[256];
static char vdir[300];
static struct ztree *t;

static void setup(void)
{
	rcu_register_thread();
	test_dir_make(dir, sizeof dir, "snap");
	snprintf(vdir, sizeof vdir, "%s/version-2", dir);
	fio_fault_clear();
	t = tree_new();
	rcu_read_lock();
	tree_init_system_nodes(t);
	rcu_read_unlock();
}

static void teardown(void)
{
	fio_fault_clear();
	if (t)
		tree_free(t);
	test_dir_remove(dir);
	rcu_unregister_thread();
}

TestSuite(snapshot, .init = setup, .fini = teardown);

static const uint8_t digest_acl[] = {
	0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 6, 'd', 'i', 'g', 'e', 's', 't', 0, 0, 0, 4, 'u', ':', 'p', 'w',
};
static const uint8_t read_acl[] = {
	0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 'w', 'o', 'r', 'l', 'd', 0, 0, 0, 6, 'a', 'n', 'y', 'o', 'n', 'e',
};

static int64_t zxid = 0x100000000LL;

static int mk(const char *path, const void *data, int32_t len, const uint8_t *acl, size_t acl_len, int64_t owner)
{
	size_t plen, nlen;
	const char *name;
	tree_split(path, strlen(path), &plen, &name, &nlen);
	rcu_read_lock();
	struct znode *p = tree_lookup(t, path, plen);
	int32_t pcv = p ? tree_ver(p)->stat.cversion + 1 : 1;
	zxid++;
	struct tree_create_args a = {
		.path = path, .path_len = strlen(path), .data = data, .data_len = len,
		.acl = acl ? acl : zk_open_acl, .acl_len = acl ? acl_len : zk_open_acl_len,
		.ephemeral_owner = owner, .parent_cversion = pcv, .zxid = zxid, .time = 1700000000000LL + zxid,
	};
	int rc = tree_create(t, &a, NULL);
	rcu_read_unlock();
	return rc;
}

static void set_data(const char *path, const void *d, int32_t len, int32_t version)
{
	rcu_read_lock();
	zxid++;
	cr_assert_eq(tree_set_data(t, path, strlen(path), d, len, version, zxid, 1700000000000LL + zxid, NULL), ZOK);
	rcu_read_unlock();
}

static void del(const char *path)
{
	rcu_read_lock();
	zxid++;
	cr_assert_eq(tree_delete(t, path, strlen(path), zxid), ZOK);
	rcu_read_unlock();
}

struct sessions {
	int64_t id[64];
	int32_t to[64];
	int n;
};

static void on_session(void *arg, int64_t id, int32_t timeout)
{
	struct sessions *s = arg;
	s->id[s->n] = id;
	s->to[s->n] = timeout;
	s->n++;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n + 1);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(b, 1, len, f), len);
	fclose(f);
}

static char *vpath(const char *name)
{
	static char p[400];
	snprintf(p, sizeof p, "%s/%s", vdir, name);
	return p;
}

/* A tree with every kind of node ZooKeeper can hold. */
static void build_rich_tree(void)
{
	static uint8_t big[1 << 20];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7 + 3);
	cr_assert_eq(mk("/app", "config", 6, NULL, 0, 0), ZOK);
	cr_assert_eq(mk("/app/secret", "s", 1, digest_acl, sizeof digest_acl, 0), ZOK);
	cr_assert_eq(mk("/app/readonly", NULL, -1, read_acl, sizeof read_acl, 0), ZOK);
	cr_assert_eq(mk("/app/empty", "", 0, NULL, 0, 0), ZOK);
	int32_t sizes[] = { 1, 2, 255, 256, 4095, 4096, 65536, 100000, 1 << 20 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char p[64];
		snprintf(p, sizeof p, "/app/size%d", sizes[i]);
		cr_assert_eq(mk(p, big, sizes[i], NULL, 0, 0), ZOK);
	}
	cr_assert_eq(mk("/locks", NULL, -1, NULL, 0, ZK_CONTAINER_OWNER), ZOK);
	cr_assert_eq(mk("/locks/lock-0000000000", "", 0, NULL, 0, 0x100000abcLL), ZOK);
	cr_assert_eq(mk("/locks/lock-0000000001", "", 0, digest_acl, sizeof digest_acl, 0x200000abcLL), ZOK);
	cr_assert_eq(mk("/ttl", "t", 1, NULL, 0, ZK_TTL_PREFIX | 5000), ZOK);
	cr_assert_eq(mk("/many", NULL, -1, NULL, 0, 0), ZOK);
	for (int i = 0; i < 5000; i++) {
		char p[64];
		snprintf(p, sizeof p, "/many/child-%05d", i);
		cr_assert_eq(mk(p, p, (int32_t)strlen(p), i % 3 ? NULL : digest_acl, sizeof digest_acl,
				i % 10 == 0 ? 0x100000abcLL : 0), ZOK);
	}
	for (int i = 0; i < 5000; i += 3)
		if (i % 10 != 0) {
			char p[64];
			snprintf(p, sizeof p, "/many/child-%05d", i);
			del(p);   /* cversion (creations) now differs from the child count */
		}
	char deep[1024] = "";
	for (int i = 0; i < 60; i++) {
		strcat(deep, "/d");
		cr_assert_eq(mk(deep, deep, (int32_t)strlen(deep), NULL, 0, 0), ZOK);
	}
	set_data("/app", "v2", 2, 1);
	set_data("/app", "v3", 2, 2);
	rcu_read_lock();
	cr_assert_eq(tree_set_acl(t, "/app/empty", 10, digest_acl, sizeof digest_acl, 3, NULL), ZOK);
	rcu_read_unlock();
	set_data("/zookeeper/config", "server.1=127.0.0.1:2888:3888", 28, 1);
}

static const struct snap_session three[] = {
	{ 0x100000abcLL, 30000 }, { 0x200000abcLL, 4000 }, { 0x7fffffffffffffffLL, 40000 },
};

Test(snapshot, round_trip_of_a_rich_tree)
{
	build_rich_tree();
	char err[512];
	cr_assert_eq(snapshot_write(dir, t, 0x1234, three, 3, err, sizeof err), 0, "%s", err);
	cr_assert_eq(access(vpath("snapshot.1234"), F_OK), 0);
	cr_assert_eq(access(vpath("tmp.snapshot.1234"), F_OK), -1);
	struct ztree *back = NULL;
	int64_t z = 0;
	struct sessions s = { 0 };
	cr_assert_eq(snapshot_load(dir, &back, &z, on_session, &s, err, sizeof err), 0, "%s", err);
	cr_assert_eq(z, 0x1234);
	cr_assert_eq(s.n, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(s.id[i], three[i].id);
		cr_assert_eq(s.to[i], three[i].timeout);
	}
	cr_assert_eq(atomic_load(&back->node_count), atomic_load(&t->node_count));
	test_assert_same_tree(t, back);
	/* client-visible stat (children count, cversion) agrees too */
	rcu_read_lock();
	struct zk_stat a, b;
	tree_client_stat(tree_ver(tree_lookup(t, "/many", 5)), &a);
	tree_client_stat(tree_ver(tree_lookup(back, "/many", 5)), &b);
	rcu_read_unlock();
	cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
	cr_assert_eq(b.num_children, 5000 - 1500);
	tree_free(back);
}

Test(snapshot, file_is_zookeepers_format)
{
	cr_assert_eq(mk("/a", "x", 1, NULL, 0, 0), ZOK);
	cr_assert_eq(mk("/b", "y", 1, digest_acl, sizeof digest_acl, 0), ZOK);
	char err[512];
	cr_assert_eq(snapshot_write(dir, t, 0x5, three, 1, err, sizeof err), 0, "%s", err);
	size_t len;
	uint8_t *f = slurp(vpath("snapshot.5"), &len);
	struct jute_reader r;
	jute_reader_init(&r, f, len, len);
	cr_assert_eq((uint32_t)jute_read_int(&r), 0x5a4b534eu);   /* ZKSN */
	cr_assert_eq(jute_read_int(&r), 2);
	cr_assert_eq(jute_read_long(&r), -1);
	cr_assert_eq(jute_read_int(&r), 1);                        /* sessions */
	cr_assert_eq(jute_read_long(&r), three[0].id);
	cr_assert_eq(jute_read_int(&r), three[0].timeout);
	/* two ACLs: /b's digest ACL and /zookeeper/config's world READ; the
	 * open one is -1 and not in the map */
	cr_assert_eq(jute_read_int(&r), 2);
	int64_t digest_id = 0, read_id = 0;
	for (int i = 0; i < 2; i++) {
		int64_t id = jute_read_long(&r);
		struct rec_acl_vec v;
		cr_assert_eq(rec_read_acl_vector(&r, &v), 0);
		cr_assert_eq(v.count, 1);
		size_t pos = 0;
		struct rec_acl a;
		cr_assert(rec_acl_next(&v, &pos, &a));
		if (a.scheme.len == 6 && memcmp(a.scheme.data, "digest", 6) == 0)
			digest_id = id;
		else
			read_id = id;
	}
	cr_assert(digest_id >= 1 && read_id >= 1 && digest_id != read_id);
	struct jute_buf path = jute_read_buffer(&r);
	cr_assert_eq(path.len, 0, "the root is written as \"\"");
	int nodes = 1, open_ids = 0, digest_ids = 0, read_ids = 0;
	for (;;) {
		jute_read_buffer(&r);                                   /* data */
		int64_t id = jute_read_long(&r);
		open_ids += id == -1;
		digest_ids += id == digest_id;
		read_ids += id == read_id;
		for (int i = 0; i < 4; i++)
			jute_read_long(&r);
		for (int i = 0; i < 3; i++)
			jute_read_int(&r);
		jute_read_long(&r);
		jute_read_long(&r);
		path = jute_read_buffer(&r);
		cr_assert(jute_ok(&r));
		if (path.len == 1 && path.data[0] == '/')
			break;
		cr_assert_eq(path.data[0], '/');
		nodes++;
	}
	cr_assert_eq(nodes, 6);     /* "", /zookeeper, quota, config, /a, /b */
	cr_assert_eq(digest_ids, 1);
	cr_assert_eq(read_ids, 1);
	cr_assert_eq(open_ids, 4);
	size_t seal = r.off;
	cr_assert_eq((uint64_t)jute_read_long(&r), adler32(f, seal));
	path = jute_read_buffer(&r);
	cr_assert(path.len == 1 && path.data[0] == '/');
	cr_assert_eq(jute_read_long(&r), 0);                       /* empty ZxidDigest */
	cr_assert_eq(jute_read_int(&r), 2);
	cr_assert_eq(jute_read_long(&r), 0);
	size_t seal2 = r.off;
	cr_assert_eq((uint64_t)jute_read_long(&r), adler32(f, seal2));
	path = jute_read_buffer(&r);
	cr_assert(jute_ok(&r) && path.len == 1 && path.data[0] == '/');
	cr_assert_eq(jute_remaining(&r), 0u);
	free(f);
}

/* Two snapshots: 0x10 of the tree as it was, 0x20 after more changes. */
static char *two_snapshots(void)
{
	char err[512];
	cr_assert_eq(mk("/x", "1", 1, NULL, 0, 0), ZOK);
	cr_assert_eq(snapshot_write(dir, t, 0x10, three, 2, err, sizeof err), 0, "%s", err);
	char *first = test_tree_dump(t);
	for (int i = 0; i < 200; i++) {
		char p[32];
		snprintf(p, sizeof p, "/x/%d", i);
		cr_assert_eq(mk(p, p, (int32_t)strlen(p), digest_acl, sizeof digest_acl, 0), ZOK);
	}
	cr_assert_eq(snapshot_write(dir, t, 0x20, three, 3, err, sizeof err), 0, "%s", err);
	return first;
}

static void assert_loads_previous(const char *first)
{
	struct ztree *back = NULL;
	int64_t z = 0;
	struct sessions s = { 0 };
	char err[512];
	cr_assert_eq(snapshot_load(dir, &back, &z, on_session, &s, err, sizeof err), 0, "%s", err);
	cr_assert_eq(z, 0x10);
	cr_assert_eq(s.n, 2, "only the loaded snapshot's sessions are reported (%d)", s.n);
	char *got = test_tree_dump(back);
	cr_assert_str_eq(got, first);
	free(got);
	tree_free(back);
}

Test(snapshot, truncated_newest_falls_back_to_the_previous)
{
	char *first = two_snapshots();
	size_t len;
	uint8_t *img = slurp(vpath("snapshot.20"), &len);
	for (size_t cut = 0; cut < len; cut += 1 + cut / 8) {
		spit(vpath("snapshot.20"), img, cut);
		assert_loads_previous(first);
	}
	free(img);
	free(first);
}

Test(snapshot, corrupt_newest_falls_back_to_the_previous)
{
	char *first = two_snapshots();
	size_t len;
	uint8_t *img = slurp(vpath("snapshot.20"), &len);
	size_t spots[] = { 0, 5, 20, 40, len / 3, len / 2, len - 30, len - 14 };
	for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
		img[spots[i]] ^= 0x10;
		spit(vpath("snapshot.20"), img, len);
		assert_loads_previous(first);
		img[spots[i]] ^= 0x10;
	}
	free(img);
	free(first);
}

Test(snapshot, no_valid_snapshot_is_an_error_and_none_at_all_is_not)
{
	struct ztree *back = NULL;
	int64_t z = 0;
	char err[512];
	cr_assert_eq(snapshot_load(dir, &back, &z, NULL, NULL, err, sizeof err), 1);
	char *first = two_snapshots();
	free(first);
	truncate(vpath("snapshot.10"), 100);
	truncate(vpath("snapshot.20"), 100);
	cr_assert_eq(snapshot_load(dir, &back, &z, NULL, NULL, err, sizeof err), -1);
	cr_assert(strstr(err, "none of the 2 snapshot(s)") && strstr(err, "snapshot.20"), "%s", err);
	cr_assert_null(back);
}

Test(snapshot, compressed_newest_is_refused)
{
	char *first = two_snapshots();
	free(first);
	spit(vpath("snapshot.30.snappy"), (const uint8_t *)"whatever", 8);
	struct ztree *back = NULL;
	int64_t z = 0;
	char err[512];
	cr_assert_eq(snapshot_load(dir, &back, &z, NULL, NULL, err, sizeof err), -1);
	cr_assert(strstr(err, "snapshot.30.snappy") && strstr(err, "compressed"), "%s", err);
}

Test(snapshot, files_that_are_not_snapshots_are_ignored)
{
	char *first = two_snapshots();
	spit(vpath("snapshot.ff.bak"), (const uint8_t *)"x", 1);
	spit(vpath("snapshotX"), (const uint8_t *)"x", 1);
	spit(vpath("tmp.snapshot.40"), (const uint8_t *)"partial", 7);
	truncate(vpath("snapshot.20"), 1000);
	assert_loads_previous(first);
	free(first);
}

/* ---- faults -------------------------------------------------------------- */

/* Enough bytes (2.5 MiB) that the snapshot takes several writes. */
static void build_small_tree(void)
{
	static uint8_t big[1 << 20];
	memset(big, 0x5a, sizeof big);
	cr_assert_eq(mk("/app", "config", 6, NULL, 0, 0), ZOK);
	cr_assert_eq(mk("/app/secret", "s", 1, digest_acl, sizeof digest_acl, 0), ZOK);
	cr_assert_eq(mk("/app/big1", big, (int32_t)sizeof big, NULL, 0, 0), ZOK);
	cr_assert_eq(mk("/app/big2", big, (int32_t)sizeof big, read_acl, sizeof read_acl, 0), ZOK);
	cr_assert_eq(mk("/app/big3", big, (int32_t)sizeof big / 2, NULL, 0, 0x100000abcLL), ZOK);
}

static void assert_write_fails(const struct fio_fault *f, const char *expect)
{
	build_small_tree();
	mkdir(vdir, 0755);    /* so that the fault hits the snapshot, not the directory's creation */
	fio_fault_add(f);
	char err[512];
	cr_assert_eq(snapshot_write(dir, t, 0x99, three, 3, err, sizeof err), -1);
	cr_assert(strstr(err, expect), "%s", err);
	fio_fault_clear();
	cr_assert_eq(access(vpath("snapshot.99"), F_OK), -1, "no snapshot may be left behind");
	cr_assert_eq(access(vpath("tmp.snapshot.99"), F_OK), -1, "no temp file may be left behind");
	struct ztree *back = NULL;
	int64_t z;
	cr_assert_eq(snapshot_load(dir, &back, &z, NULL, NULL, err, sizeof err), 1);
}

Test(snapshot, failing_fsync_leaves_nothing)
{
	assert_write_fails(&(struct fio_fault){ .op = FIO_FSYNC, .nth = 1, .err = EIO }, "fsync failed");
}

Test(snapshot, full_disk_leaves_nothing)
{
	assert_write_fails(&(struct fio_fault){ .op = FIO_WRITE, .nth = 2, .err = ENOSPC, .partial = true },
			   "disk is full");
}

Test(snapshot, failing_rename_leaves_nothing)
{
	assert_write_fails(&(struct fio_fault){ .op = FIO_RENAME, .nth = 1, .err = EXDEV }, "rename failed");
}

Test(snapshot, failing_close_leaves_nothing)
{
	assert_write_fails(&(struct fio_fault){ .op = FIO_CLOSE, .nth = 1, .err = EIO }, "close failed");
}

/* ---- hostile content ----------------------------------------------------- */

/* A snapshot image with correct checksums around an arbitrary body. */
static void write_sealed(const char *name, const uint8_t *body, size_t n)
{
	struct jute_writer w;
	jute_writer_init(&w, 256);
	jute_write_int(&w, 0x5a4b534e);
	jute_write_int(&w, 2);
	jute_write_long(&w, -1);
	jute_write_raw(&w, body, n);
	jute_write_long(&w, adler32(w.buf, w.len));
	jute_write_string(&w, "/");
	spit(vpath(name), w.buf, w.len);
	jute_writer_free(&w);
}

static void assert_rejected(const char *what)
{
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(snapshot_load_file(vpath("snapshot.1"), &back, NULL, NULL, err, sizeof err), -1);
	cr_assert(strstr(err, what), "%s", err);
	cr_assert_null(back);
}

static void node(struct jute_writer *w, const char *path, int64_t acl)
{
	jute_write_string(w, path);
	jute_write_buffer(w, "d", 1);
	jute_write_long(w, acl);
	for (int i = 0; i < 4; i++)
		jute_write_long(w, 1);
	for (int i = 0; i < 3; i++)
		jute_write_int(w, 0);
	jute_write_long(w, 0);
	jute_write_long(w, 1);
}

Test(snapshot, hostile_but_checksummed_content_fails_cleanly)
{
	mkdir(dir, 0755);
	mkdir(vdir, 0755);
	struct jute_writer w;

	jute_writer_init(&w, 64);                  /* a session count far beyond the file */
	jute_write_int(&w, 0x7fffffff);
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	assert_rejected("bad length");

	jute_writer_init(&w, 64);                  /* an ACL map count far beyond the file */
	jute_write_int(&w, 0);
	jute_write_int(&w, 0x40000000);
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	assert_rejected("bad length");

	jute_writer_init(&w, 64);                  /* a node whose ACL id is not in the map */
	jute_write_int(&w, 0);
	jute_write_int(&w, 0);
	node(&w, "", -1);
	node(&w, "/a", 42);
	jute_write_string(&w, "/");
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	assert_rejected("ACL id 42");

	jute_writer_init(&w, 64);                  /* a child before its parent */
	jute_write_int(&w, 0);
	jute_write_int(&w, 0);
	node(&w, "", -1);
	node(&w, "/a/b", -1);
	jute_write_string(&w, "/");
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	assert_rejected("before (or without) its parent");

	jute_writer_init(&w, 64);                  /* the same node twice */
	jute_write_int(&w, 0);
	jute_write_int(&w, 0);
	node(&w, "", -1);
	node(&w, "/a", -1);
	node(&w, "/b", -1);
	node(&w, "/a", -1);
	jute_write_string(&w, "/");
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	assert_rejected("twice");

	jute_writer_init(&w, 64);                  /* a path that is not absolute */
	jute_write_int(&w, 0);
	jute_write_int(&w, 0);
	node(&w, "", -1);
	node(&w, "relative", -1);
	jute_write_string(&w, "/");
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	assert_rejected("malformed path");

	jute_writer_init(&w, 64);                  /* no root */
	jute_write_int(&w, 0);
	jute_write_int(&w, 0);
	jute_write_string(&w, "/");
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	assert_rejected("no root");
}

/* Nodes in an order no writer uses still load (slowly) as long as parents come first. */
Test(snapshot, non_depth_first_order_loads)
{
	mkdir(dir, 0755);
	mkdir(vdir, 0755);
	struct jute_writer w;
	jute_writer_init(&w, 64);
	jute_write_int(&w, 0);
	jute_write_int(&w, 0);
	node(&w, "", -1);
	node(&w, "/a", -1);
	node(&w, "/b", -1);
	node(&w, "/a/x", -1);
	node(&w, "/b/y", -1);
	node(&w, "/a/z", -1);
	jute_write_string(&w, "/");
	write_sealed("snapshot.1", w.buf, w.len);
	jute_writer_free(&w);
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(snapshot_load_file(vpath("snapshot.1"), &back, NULL, NULL, err, sizeof err), 0, "%s", err);
	rcu_read_lock();
	cr_assert_eq(tree_ver(tree_lookup(back, "/a", 2))->kids->n, 2u);
	cr_assert_eq(tree_ver(tree_lookup(back, "/b", 2))->kids->n, 1u);
	cr_assert_not_null(tree_lookup(back, "/zookeeper/config", 17), "system nodes are added when missing");
	rcu_read_unlock();
	tree_free(back);
}

Test(snapshot, random_corruption_never_crashes)
{
	cr_assert_eq(mk("/app", "config", 6, NULL, 0, 0), ZOK);
	cr_assert_eq(mk("/app/secret", "s", 1, digest_acl, sizeof digest_acl, 0), ZOK);
	cr_assert_eq(mk("/app/readonly", NULL, -1, read_acl, sizeof read_acl, 0), ZOK);
	for (int i = 0; i < 200; i++) {
		char p[32];
		snprintf(p, sizeof p, "/app/secret/%d", i);
		cr_assert_eq(mk(p, p, (int32_t)strlen(p), i % 2 ? digest_acl : read_acl,
				i % 2 ? sizeof digest_acl : sizeof read_acl, i % 3), ZOK);
	}
	char err[512];
	cr_assert_eq(snapshot_write(dir, t, 0x1, three, 3, err, sizeof err), 0, "%s", err);
	size_t len;
	uint8_t *orig = slurp(vpath("snapshot.1"), &len);
	srand(3);
	size_t head = len < 20000 ? len : 20000;    /* ACL map, first nodes: where lengths live */
	for (int i = 0; i < 200; i++) {
		uint8_t *b = malloc(len);
		memcpy(b, orig, len);
		for (int k = 0; k < 4; k++)
			b[(size_t)rand() % head] = (uint8_t)rand();
		/* re-seal so the parser, not the checksum, meets the damage */
		size_t seal = len - 13 - 20 - 13;
		jute_put_u32(b + seal, 0);
		jute_put_u32(b + seal + 4, adler32(b, seal));
		jute_put_u32(b + len - 13, 0);
		jute_put_u32(b + len - 13 + 4, adler32(b, len - 13));
		spit(vpath("snapshot.1"), b, len);
		struct ztree *back = NULL;
		if (snapshot_load_file(vpath("snapshot.1"), &back, NULL, NULL, err, sizeof err) == 0)
			tree_free(back);
		free(b);
	}
	free(orig);
}

Test(snapshot, big_tree)
{
	/* (wide but not flat: tree_create copies the parent's child list, so
	 * building one node with 100k children would take minutes) */
	for (int i = 0; i < 150; i++) {
		char p[32];
		snprintf(p, sizeof p, "/n%d", i);
		cr_assert_eq(mk(p, NULL, -1, NULL, 0, 0), ZOK);
		for (int j = 0; j < 200; j++) {
			char c[48];
			snprintf(c, sizeof c, "/n%d/c%d", i, j);
			cr_assert_eq(mk(c, c, 4, NULL, 0, 0), ZOK);
		}
	}
	char err[512];
	cr_assert_eq(snapshot_write(dir, t, 0x77, NULL, 0, err, sizeof err), 0, "%s", err);
	struct ztree *back = NULL;
	int64_t z;
	cr_assert_eq(snapshot_load(dir, &back, &z, NULL, NULL, err, sizeof err), 0, "%s", err);
	test_assert_same_tree(t, back);
	tree_free(back);
}
