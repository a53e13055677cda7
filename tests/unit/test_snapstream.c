/*
 * test_snapstream.c - the SNAP sync stream: it is exactly the snapshot
 * file's body plus ZooKeeper's signature; a stream ZooKeeper 3.8 itself
 * wrote loads, digest included; a tree survives the round trip through a
 * socket-like pull source that is read to the signature and not a byte
 * further; a big tree goes out through the sink in pieces; a stream written
 * while a writer races the walk, plus the txns after its zxid, gives the
 * exact tree; truncated, corrupt and over-long input fails with a reason.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/jute.h"
#include "net/records.h"
#include "storage/digest.h"
#include "storage/recovery.h"
#include "storage/snapshot.h"
#include "storage/snapstream.h"
#include "storage/tree.h"
#include "storage/txncodec.h"
#include "helpers.h"

static char dir[256];
static struct ztree *t;
static int64_t zxid = 0x100000000LL;

static void setup(void)
{
	rcu_register_thread();
	test_dir_make(dir, sizeof dir, "snapstream");
	zxid = 0x100000000LL;
	t = tree_new();
	rcu_read_lock();
	tree_init_system_nodes(t);
	rcu_read_unlock();
}

static void teardown(void)
{
	if (t)
		tree_free(t);
	test_dir_remove(dir);
	rcu_unregister_thread();
}

TestSuite(snapstream, .init = setup, .fini = teardown);

static const uint8_t digest_acl[] = {
	0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 6, 'd', 'i', 'g', 'e', 's', 't', 0, 0, 0, 4, 'u', ':', 'p', 'w',
};

/* ---- building trees ------------------------------------------------------ */

static int mk_in(struct ztree *tree, const char *path, const void *data, int32_t len, const uint8_t *acl,
		 size_t acl_len, int64_t owner, int64_t z)
{
	size_t plen, nlen;
	const char *name;
	tree_split(path, strlen(path), &plen, &name, &nlen);
	rcu_read_lock();
	struct znode *p = tree_lookup(tree, path, plen);
	int32_t pcv = p ? tree_ver(p)->stat.cversion + 1 : 1;
	struct tree_create_args a = {
		.path = path, .path_len = strlen(path), .data = data, .data_len = len,
		.acl = acl ? acl : zk_open_acl, .acl_len = acl ? acl_len : zk_open_acl_len,
		.ephemeral_owner = owner, .parent_cversion = pcv, .zxid = z, .time = 1700000000000LL + z,
	};
	int rc = tree_create(tree, &a, NULL);
	rcu_read_unlock();
	return rc;
}

static int mk(const char *path, const void *data, int32_t len, const uint8_t *acl, size_t acl_len, int64_t owner)
{
	return mk_in(t, path, data, len, acl, acl_len, owner, ++zxid);
}

static void build_tree(int n)
{
	cr_assert_eq(mk("/app", "config", 6, NULL, 0, 0), ZOK);
	cr_assert_eq(mk("/app/secret", "s", 1, digest_acl, sizeof digest_acl, 0), ZOK);
	cr_assert_eq(mk("/app/null", NULL, -1, NULL, 0, 0), ZOK);
	cr_assert_eq(mk("/app/empty", "", 0, NULL, 0, 0x1234), ZOK);
	cr_assert_eq(mk("/locks", NULL, -1, NULL, 0, ZK_CONTAINER_OWNER), ZOK);
	cr_assert_eq(mk("/ttl", "t", 1, NULL, 0, ZK_TTL_PREFIX | 5000), ZOK);
	for (int i = 0; i < n; i++) {
		char p[64];
		snprintf(p, sizeof p, "/locks/l-%05d", i);
		cr_assert_eq(mk(p, p, (int32_t)strlen(p), i % 3 ? NULL : digest_acl, sizeof digest_acl,
				i % 7 ? 0 : 0x1234), ZOK);
	}
	zxid++;
	rcu_read_lock();
	cr_assert_eq(tree_set_data(t, "/app", 4, (const uint8_t *)"v2", 2, 1, zxid, 1700000000000LL + zxid, NULL), ZOK);
	rcu_read_unlock();
}

static const struct snap_session sessions[] = { { 0x1234, 30000 }, { 0x7fffffffffffffffLL, 4000 }, { -5, 1 } };

/* ---- a socket-like source ------------------------------------------------ */

struct src {
	const uint8_t *p;
	size_t len, off;
	long calls;
	size_t biggest;             /* the largest single request */
};

/* Returns exactly n bytes or -1, as a blocking socket read loop would. */
static ssize_t src_pull(void *arg, void *buf, size_t n)
{
	struct src *s = arg;
	s->calls++;
	if (n > s->biggest)
		s->biggest = n;
	if (n > s->len - s->off)
		return -1;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

/* An endless source of zeros. */
static ssize_t zeros_pull(void *arg, void *buf, size_t n)
{
	(void)arg;
	memset(buf, 0, n);
	return (ssize_t)n;
}

struct sess { int64_t id[16]; int32_t to[16]; int n; };

static void on_session(void *arg, int64_t id, int32_t timeout)
{
	struct sess *s = arg;
	cr_assert_lt(s->n, 16);
	s->id[s->n] = id;
	s->to[s->n] = timeout;
	s->n++;
}

/* The stream of t in memory. */
static uint8_t *stream_of(struct ztree *tree, int64_t z, const struct snap_session *ss, size_t n, size_t *len)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	char err[256];
	cr_assert_eq(snapstream_write(&w, tree, z, ss, n, NULL, NULL, err, sizeof err), 0, "%s", err);
	uint8_t *b = jute_writer_take(&w, len);
	cr_assert_not_null(b);
	return b;
}

static int read_stream(const uint8_t *p, size_t len, size_t max_buffer, struct sess *s, struct ztree **out,
		       char *err, size_t errlen, struct src *used)
{
	struct src src = { p, len, 0, 0, 0 };
	int rc = snapstream_read(src_pull, &src, max_buffer, s ? on_session : NULL, s, out, err, errlen);
	if (used)
		*used = src;
	return rc;
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

/* ---- the format ---------------------------------------------------------- */

/* What LearnerHandler writes is serializeSnapshot + the signature, and the
 * body is byte for byte what a snapshot file holds between its header and
 * its first seal (the file format is checked against ZooKeeper's in
 * test_snapshot.c). */
Test(snapstream, stream_is_the_snapshot_body_plus_the_signature)
{
	build_tree(100);
	size_t slen, flen;
	uint8_t *s = stream_of(t, zxid, sessions, 3, &slen);
	char err[512], path[400];
	cr_assert_eq(snapshot_write(dir, t, zxid, sessions, 3, err, sizeof err), 0, "%s", err);
	snprintf(path, sizeof path, "%s/version-2/snapshot.%" PRIx64, dir, (uint64_t)zxid);
	uint8_t *f = slurp(path, &flen);
	size_t body = flen - 16 - 13 - 20 - 13;      /* header; seal, ZxidDigest, seal */
	cr_assert_eq(slen, body + 4 + 10);
	cr_assert(memcmp(s, f + 16, body) == 0, "the body differs from the snapshot file's");
	cr_assert(memcmp(s + body, "\0\0\0\x0a" "BenWasHere", 14) == 0);
	/* and it starts with the sessions, as SerializeUtils writes them */
	cr_assert_eq(jute_get_u32(s), 3u);
	cr_assert_eq(jute_get_u32(s + 4), 0u);
	cr_assert_eq(jute_get_u32(s + 8), 0x1234u);
	cr_assert_eq(jute_get_u32(s + 12), 30000u);
	free(s);
	free(f);
}

Test(snapstream, round_trip_reads_to_the_signature_and_no_further)
{
	build_tree(500);
	size_t len;
	uint8_t *s = stream_of(t, zxid, sessions, 3, &len);
	/* the next QuorumPacket follows on the same socket */
	uint8_t *buf = malloc(len + 8);
	memcpy(buf, s, len);
	memcpy(buf + len, "NEXTPKT!", 8);
	struct sess got = { 0 };
	struct ztree *back = NULL;
	char err[512];
	struct src used;
	cr_assert_eq(read_stream(buf, len + 8, 0, &got, &back, err, sizeof err, &used), 0, "%s", err);
	cr_assert_eq(used.off, len, "read %zu of a %zu-byte stream", used.off, len);
	cr_assert_lt(used.biggest, 4096u, "asks for what an item needs, not the whole stream");
	cr_assert_eq(got.n, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(got.id[i], sessions[i].id);
		cr_assert_eq(got.to[i], sessions[i].timeout);
	}
	test_assert_same_tree(t, back);
	tree_free(back);
	free(buf);
	free(s);
}

Test(snapstream, an_empty_tree_and_no_sessions)
{
	size_t len;
	uint8_t *s = stream_of(t, 0, NULL, 0, &len);
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(read_stream(s, len, 0, NULL, &back, err, sizeof err, NULL), 0, "%s", err);
	test_assert_same_tree(t, back);
	tree_free(back);
	free(s);
}

/* Written by ZooKeeper 3.8.0 itself (SerializeUtils.serializeSnapshot, then
 * writeString("BenWasHere"), as LearnerHandler does) for this DataTree:
 *   createNode("/app", "config", OPEN_ACL_UNSAFE, 0, 1, 0x100000001, 1700000000001)
 *   createNode("/app/secret", "s", [digest u:pw ALL], 0, 1, 0x100000002, ...02)
 *   createNode("/app/ro", null, READ_ACL_UNSAFE, 0, 2, 0x100000003, ...03)
 *   createNode("/eph", "", OPEN_ACL_UNSAFE, 0x1234, 2, 0x100000004, ...04)
 *   setData("/app", "v2", 1, 0x100000005, ...05); setACL("/app/ro", [digest u:pw ALL], 1)
 *   createNode("/gone", ..., 0x100000006); deleteNode("/gone", 0x100000007)
 * sessions {0x1234: 30000, 0x7fffffffffffffff: 4000}. Its getTreeDigest()
 * was 0x24eae9f87. (Its ACL map also holds OPEN_ACL_UNSAFE, as id 1, and the
 * READ ACL no node uses any more.) */
static const uint8_t zk_stream[] = {
	  0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34,
	  0x00, 0x00, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0x00, 0x00, 0x0f, 0xa0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
	  0x00, 0x00, 0x00, 0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x00, 0x00, 0x00,
	  0x06, 0x61, 0x6e, 0x79, 0x6f, 0x6e, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1f, 0x00,
	  0x00, 0x00, 0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x00, 0x00, 0x00, 0x06,
	  0x61, 0x6e, 0x79, 0x6f, 0x6e, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00,
	  0x00, 0x06, 0x64, 0x69, 0x67, 0x65, 0x73, 0x74, 0x00, 0x00, 0x00, 0x04,
	  0x75, 0x3a, 0x70, 0x77, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x04,
	  0x2f, 0x61, 0x70, 0x70, 0x00, 0x00, 0x00, 0x02, 0x76, 0x32, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
	  0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00,
	  0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x01, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5,
	  0x68, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x0b, 0x2f, 0x61,
	  0x70, 0x70, 0x2f, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x00, 0x00, 0x00,
	  0x01, 0x73, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
	  0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
	  0x00, 0x02, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x02, 0x00, 0x00,
	  0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
	  0x00, 0x07, 0x2f, 0x61, 0x70, 0x70, 0x2f, 0x72, 0x6f, 0xff, 0xff, 0xff,
	  0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
	  0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
	  0x03, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x03, 0x00, 0x00, 0x01,
	  0x8b, 0xcf, 0xe5, 0x68, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
	  0x0a, 0x2f, 0x7a, 0x6f, 0x6f, 0x6b, 0x65, 0x65, 0x70, 0x65, 0x72, 0x00,
	  0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x11, 0x2f, 0x7a, 0x6f, 0x6f, 0x6b, 0x65, 0x65, 0x70, 0x65,
	  0x72, 0x2f, 0x63, 0x6f, 0x6e, 0x66, 0x69, 0x67, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
	  0x2f, 0x7a, 0x6f, 0x6f, 0x6b, 0x65, 0x65, 0x70, 0x65, 0x72, 0x2f, 0x71,
	  0x75, 0x6f, 0x74, 0x61, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x2f, 0x65, 0x70, 0x68,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
	  0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
	  0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x04,
	  0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x04, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04,
	  0x00, 0x00, 0x00, 0x01, 0x2f, 0x00, 0x00, 0x00, 0x0a, 0x42, 0x65, 0x6e,
	  0x57, 0x61, 0x73, 0x48, 0x65, 0x72, 0x65
};

static const struct zk_stat *stat_of(struct ztree *tree, const char *path)
{
	struct znode *n = tree_lookup(tree, path, strlen(path));
	cr_assert_not_null(n, "%s missing", path);
	return &tree_ver(n)->stat;
}

Test(snapstream, reads_a_stream_zookeeper_wrote)
{
	struct sess got = { 0 };
	struct ztree *back = NULL;
	char err[512];
	struct src used;
	cr_assert_eq(read_stream(zk_stream, sizeof zk_stream, 0, &got, &back, err, sizeof err, &used), 0, "%s", err);
	cr_assert_eq(used.off, sizeof zk_stream);
	cr_assert_eq(got.n, 2);
	cr_assert_eq(got.id[0], 0x1234);
	cr_assert_eq(got.to[0], 30000);
	cr_assert_eq(got.id[1], 0x7fffffffffffffffLL);
	cr_assert_eq(tree_digest(back), 0x24eae9f87ULL, "ZooKeeper's own digest of this tree");
	cr_assert_eq(atomic_load(&back->digest), 0x24eae9f87ULL, "the running digest, kept while loading");
	rcu_read_lock();
	const struct zk_stat *app = stat_of(back, "/app");
	cr_assert_eq(app->version, 1);
	cr_assert_eq(app->mzxid, 0x100000005LL);
	cr_assert_eq(app->cversion, 2);
	const struct znode_ver *v = tree_ver(tree_lookup(back, "/app", 4));
	cr_assert(v->data->len == 2 && memcmp(v->data->bytes, "v2", 2) == 0);
	v = tree_ver(tree_lookup(back, "/app/ro", 7));
	cr_assert_eq(v->data->len, -1, "a null stays null");
	cr_assert(v->acl->len == (int32_t)sizeof digest_acl && memcmp(v->acl->bytes, digest_acl, sizeof digest_acl) == 0);
	cr_assert_eq(v->stat.aversion, 1);
	cr_assert_eq(stat_of(back, "/eph")->ephemeral_owner, 0x1234);
	cr_assert_eq(stat_of(back, "/")->pzxid, 0x100000007LL, "the delete moved the root's pzxid");
	cr_assert_null(tree_lookup(back, "/gone", 5));
	cr_assert_not_null(tree_lookup(back, "/zookeeper/quota", 16));
	rcu_read_unlock();
	/* and what we send back for that tree is what ZooKeeper sent, but for
	 * the ACL ids: ZooKeeper's map keeps ACLs no node uses */
	tree_free(back);
}

/* ---- the sink ------------------------------------------------------------ */

struct sink {
	uint8_t *buf;
	size_t len, cap;
	int calls;
	int fail_at;                /* 0 = never */
};

static int sink_take(void *arg, const void *p, size_t n)
{
	struct sink *s = arg;
	if (++s->calls == s->fail_at)
		return -1;
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->buf = realloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

static void build_big_tree(void)
{
	static uint8_t data[500000];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	cr_assert_eq(mk("/big", NULL, -1, NULL, 0, 0), ZOK);
	for (int i = 0; i < 8; i++) {
		char p[32];
		snprintf(p, sizeof p, "/big/n%d", i);
		cr_assert_eq(mk(p, data, (int32_t)sizeof data - i, i % 2 ? digest_acl : NULL, sizeof digest_acl, 0), ZOK);
	}
}

Test(snapstream, a_big_tree_goes_out_through_the_sink_in_pieces)
{
	build_big_tree();
	struct jute_writer w;
	jute_writer_init(&w, 64);
	jute_write_raw(&w, "SNAPPKT:", 8);      /* the SNAP packet, queued first */
	struct sink sk = { 0 };
	char err[512];
	cr_assert_eq(snapstream_write(&w, t, zxid, sessions, 2, sink_take, &sk, err, sizeof err), 0, "%s", err);
	cr_assert_eq(w.len, 0u, "everything went to the sink");
	cr_assert_geq(sk.calls, 3, "a 4 MB tree goes out in MiB pieces, not at once (%d calls)", sk.calls);
	cr_assert(memcmp(sk.buf, "SNAPPKT:", 8) == 0, "what w held goes first");
	struct ztree *back = NULL;
	struct src used;
	cr_assert_eq(read_stream(sk.buf + 8, sk.len - 8, 0, NULL, &back, err, sizeof err, &used), 0, "%s", err);
	cr_assert_eq(used.off, sk.len - 8);
	test_assert_same_tree(t, back);
	tree_free(back);
	/* the same tree without a sink is the same bytes */
	size_t len;
	uint8_t *s = stream_of(t, zxid, sessions, 2, &len);
	cr_assert(len == sk.len - 8 && memcmp(s, sk.buf + 8, len) == 0);
	free(s);
	free(sk.buf);
	jute_writer_free(&w);
}

Test(snapstream, a_failing_sink_stops_the_stream)
{
	build_big_tree();
	for (int fail_at = 1; fail_at <= 3; fail_at++) {
		struct jute_writer w;
		jute_writer_init(&w, 64);
		struct sink sk = { .fail_at = fail_at };
		char err[512];
		cr_assert_eq(snapstream_write(&w, t, zxid, NULL, 0, sink_take, &sk, err, sizeof err), -1);
		cr_assert(strstr(err, "peer connection failed"), "%s", err);
		cr_assert_eq(sk.calls, fail_at, "nothing more is sent after a failure");
		free(sk.buf);
		jute_writer_free(&w);
	}
}

/* ---- bad input ----------------------------------------------------------- */

Test(snapstream, every_truncation_fails_with_a_reason)
{
	build_tree(5);
	size_t len;
	uint8_t *s = stream_of(t, zxid, sessions, 3, &len);
	for (size_t cut = 0; cut < len; cut++) {
		struct sess got = { 0 };
		struct ztree *back = (struct ztree *)1;
		char err[512] = "";
		cr_assert_eq(read_stream(s, cut, 0, &got, &back, err, sizeof err, NULL), -1, "cut at %zu", cut);
		cr_assert_null(back);
		cr_assert_eq(got.n, 0, "no session is reported from a failed stream");
		cr_assert(strstr(err, "ends early") && strstr(err, "offset"), "cut at %zu: %s", cut, err);
	}
	free(s);
}

Test(snapstream, random_corruption_never_crashes)
{
	build_tree(200);
	size_t len;
	uint8_t *s = stream_of(t, zxid, sessions, 3, &len);
	uint8_t *b = malloc(len);
	srand(7);
	int loaded = 0;
	for (int i = 0; i < 400; i++) {
		memcpy(b, s, len);
		for (int k = 0; k < 3; k++)
			b[(size_t)rand() % (len < 3000 ? len : 3000)] = (uint8_t)rand();
		struct ztree *back = NULL;
		char err[512];
		if (read_stream(b, len, 0, NULL, &back, err, sizeof err, NULL) == 0) {
			loaded++;
			tree_free(back);
		} else {
			cr_assert_null(back);
			cr_assert_neq(err[0], '\0');
		}
	}
	cr_assert_lt(loaded, 400);
	free(b);
	free(s);
}

/* A hand-made stream: sessions, ACL map, nodes; the caller ends it. */
static void head(struct jute_writer *w)
{
	jute_write_int(w, 1);
	jute_write_long(w, 0x42);
	jute_write_int(w, 5000);
	jute_write_int(w, 1);                   /* ACL map: id 1 = digest u:pw */
	jute_write_long(w, 1);
	jute_write_raw(w, digest_acl, sizeof digest_acl);
}

static void node(struct jute_writer *w, const char *path, const void *data, int32_t dlen, int64_t acl)
{
	jute_write_string(w, path);
	jute_write_buffer(w, data, dlen);
	jute_write_long(w, acl);
	for (int i = 0; i < 4; i++)
		jute_write_long(w, 7);
	for (int i = 0; i < 3; i++)
		jute_write_int(w, 0);
	jute_write_long(w, 0);
	jute_write_long(w, 7);
}

static void assert_refused(struct jute_writer *w, size_t max_buffer, const char *what)
{
	struct sess got = { 0 };
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(read_stream(w->buf, w->len, max_buffer, &got, &back, err, sizeof err, NULL), -1, "%s", what);
	cr_assert(strstr(err, what), "want \"%s\": %s", what, err);
	cr_assert_null(back);
	cr_assert_eq(got.n, 0);
	jute_writer_free(w);
}

Test(snapstream, hand_made_stream_loads)
{
	struct jute_writer w;
	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	node(&w, "/a", "x", 1, 1);
	node(&w, "/a/b", NULL, 0, -1);
	jute_write_string(&w, "/");
	jute_write_string(&w, "BenWasHere");
	struct sess got = { 0 };
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(read_stream(w.buf, w.len, 0, &got, &back, err, sizeof err, NULL), 0, "%s", err);
	cr_assert_eq(got.n, 1);
	cr_assert_eq(got.id[0], 0x42);
	rcu_read_lock();
	const struct znode_ver *v = tree_ver(tree_lookup(back, "/a", 2));
	cr_assert(v->acl->len == (int32_t)sizeof digest_acl && memcmp(v->acl->bytes, digest_acl, sizeof digest_acl) == 0);
	cr_assert_eq(v->kids->n, 1u);
	cr_assert_not_null(tree_lookup(back, "/zookeeper/config", 17), "system nodes are added when missing");
	rcu_read_unlock();
	tree_free(back);
	jute_writer_free(&w);
}

Test(snapstream, signature_is_checked)
{
	struct jute_writer w;
	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	jute_write_string(&w, "/");
	jute_write_string(&w, "BenWasHerf");
	assert_refused(&w, 0, "missing signature");

	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	jute_write_string(&w, "/");
	jute_write_int(&w, 0x7ffffff0);         /* a "signature" of 2 GB */
	assert_refused(&w, 0, "bad length");

	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	jute_write_string(&w, "/");            /* and then the socket closes */
	assert_refused(&w, 0, "ends early");
}

Test(snapstream, lengths_are_bounded_by_jute_maxbuffer)
{
	static uint8_t data[300];
	struct jute_writer w;
	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	node(&w, "/a", data, sizeof data, -1);
	jute_write_string(&w, "/");
	jute_write_string(&w, "BenWasHere");
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(read_stream(w.buf, w.len, 300, NULL, &back, err, sizeof err, NULL), 0, "%s", err);
	tree_free(back);
	assert_refused(&w, 299, "bad length");

	jute_writer_init(&w, 256);              /* a data length of 2 GB: refused before any pull */
	head(&w);
	node(&w, "", NULL, -1, -1);
	jute_write_string(&w, "/a");
	jute_write_int(&w, 0x7fffffff);
	assert_refused(&w, 0, "bad length");

	jute_writer_init(&w, 256);
	head(&w);
	jute_write_int(&w, -1);                 /* a null path */
	assert_refused(&w, 0, "null path");

	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	node(&w, "/a", NULL, -1, 9);            /* an ACL id the map lacks */
	jute_write_string(&w, "/");
	assert_refused(&w, 0, "ACL id 9");

	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	node(&w, "a", NULL, -1, -1);
	jute_write_string(&w, "/");
	assert_refused(&w, 0, "malformed path");
}

/* A count is never trusted to size anything: a billion sessions or ACLs
 * read from an endless source end at the item bound or cost nothing but
 * the reading. */
Test(snapstream, endless_garbage_is_bounded)
{
	struct ztree *back = NULL;
	char err[512];
	/* zeros: 0 sessions, 0 ACLs, then a root whose ACL id (0) no map has */
	cr_assert_eq(snapstream_read(zeros_pull, NULL, 1000, NULL, NULL, &back, err, sizeof err), -1);
	cr_assert(strstr(err, "ACL id 0"), "%s", err);

	/* one ACL map entry of 2^30 empty ACLs from a source that never ends */
	struct jute_writer w;
	jute_writer_init(&w, 64);
	jute_write_int(&w, 0);
	jute_write_int(&w, 1);
	jute_write_long(&w, 1);
	jute_write_int(&w, 0x40000000);
	uint8_t *buf = calloc(1, 1 << 20);
	memcpy(buf, w.buf, w.len);
	struct src src = { buf, 1 << 20, 0, 0, 0 };
	cr_assert_eq(snapstream_read(src_pull, &src, 1000, NULL, NULL, &back, err, sizeof err), -1);
	cr_assert(strstr(err, "too large"), "%s", err);
	cr_assert_lt(src.off, 8000u, "stopped at the item bound (%zu bytes read)", src.off);
	free(buf);
	jute_writer_free(&w);
}

/* ---- a stream written while Final keeps applying ------------------------ */

struct race {
	struct ztree *tree;
	atomic_bool stop;
	atomic_llong applied;
	int64_t zxid;
	uint8_t **log;              /* every txn, encoded */
	size_t *loglen;
	size_t n, cap;
	unsigned seed;
	int leaves;
};

static void race_apply(struct race *r, struct ztxn *x)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->log = realloc(r->log, r->cap * sizeof *r->log);
		r->loglen = realloc(r->loglen, r->cap * sizeof *r->loglen);
	}
	struct jute_writer w;
	jute_writer_init(&w, 128);
	char err[256];
	cr_assert_eq(txn_encode(&w, x, err, sizeof err), 0, "%s", err);
	r->log[r->n] = jute_writer_take(&w, &r->loglen[r->n]);
	r->n++;
	rcu_read_lock();
	txn_apply(r->tree, x, NULL, NULL);
	rcu_read_unlock();
	atomic_store(&r->applied, x->zxid);
}

static int32_t cur(struct ztree *tree, const char *p, int which)
{
	rcu_read_lock();
	struct znode *n = tree_lookup(tree, p, strlen(p));
	int32_t v = !n ? -1 : which == 0 ? tree_ver(n)->stat.version
			  : which == 1 ? tree_ver(n)->stat.aversion : tree_ver(n)->stat.cversion;
	rcu_read_unlock();
	return v;
}

static void race_step(struct race *r)
{
	char p[64], parent[32];
	int op = (int)(rand_r(&r->seed) % 6);
	int k = (int)(rand_r(&r->seed) % 30);
	snprintf(parent, sizeof parent, "/r/p%d", k);
	snprintf(p, sizeof p, "%s/l%d", parent, (int)(rand_r(&r->seed) % 20));
	bool exists = cur(r->tree, p, 0) >= 0;
	struct ztxn x = { .session_id = 0x77, .zxid = ++r->zxid, .time = 1700000000000LL + r->zxid };
	x.cxid = (int32_t)r->zxid;
	x.path = strdup(p);
	x.path_len = strlen(p);
	if (!exists) {
		/* a create, often with an ACL nobody has used yet */
		uint8_t acl[64];
		char id[24];
		int n = snprintf(id, sizeof id, "u%d:pw", op < 3 ? (int)(r->zxid % 100000) : 1);
		jute_put_u32(acl, 1);
		jute_put_u32(acl + 4, 31);
		jute_put_u32(acl + 8, 6);
		memcpy(acl + 12, "digest", 6);
		jute_put_u32(acl + 18, (uint32_t)n);
		memcpy(acl + 22, id, (size_t)n);
		x.type = ZOP_CREATE;
		x.acl_len = 22 + (size_t)n;
		x.acl = malloc(x.acl_len);
		memcpy(x.acl, acl, x.acl_len);
		x.data = (const uint8_t *)"leaf";
		x.data_len = 4;
		x.parent_cversion = cur(r->tree, parent, 2) + 1;
	} else if (op < 2) {
		x.type = ZOP_DELETE;
	} else if (op < 4) {
		x.type = ZOP_SETACL;
		x.acl = malloc(zk_open_acl_len);
		memcpy(x.acl, zk_open_acl, zk_open_acl_len);
		x.acl_len = zk_open_acl_len;
		x.version = cur(r->tree, p, 1) + 1;
	} else {
		x.type = ZOP_SETDATA;
		x.data = (const uint8_t *)"changed";
		x.data_len = 7;
		x.version = cur(r->tree, p, 0) + 1;
	}
	race_apply(r, &x);
	ztxn_clear(&x);
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

static void wait_past(struct race *r, int64_t z)
{
	for (int i = 0; i < 100000 && atomic_load(&r->applied) < z; i++)
		usleep(50);
}

Test(snapstream, fuzzy_stream_plus_the_txns_after_it_is_exact, .timeout = 120)
{
	struct race r = { .tree = t, .zxid = zxid, .seed = 5 };
	cr_assert_eq(mk("/r", NULL, -1, NULL, 0, 0), ZOK);
	for (int i = 0; i < 30; i++) {
		char p[32];
		snprintf(p, sizeof p, "/r/p%d", i);
		cr_assert_eq(mk(p, NULL, -1, NULL, 0, 0), ZOK);
	}
	r.zxid = zxid;
	atomic_store(&r.applied, zxid);
	for (int i = 0; i < 3000; i++)
		race_step(&r);
	for (int round = 0; round < 2; round++) {
		atomic_store(&r.stop, false);
		pthread_t th;
		int64_t before = atomic_load(&r.applied);
		pthread_create(&th, NULL, race_writer, &r);
		wait_past(&r, before + 20);              /* the writer is running */
		int64_t z = atomic_load(&r.applied);     /* the SNAP packet's zxid */
		struct sink sk = { 0 };
		struct jute_writer w;
		jute_writer_init(&w, 64);
		char err[512];
		cr_assert_eq(snapstream_write(&w, t, z, NULL, 0, sink_take, &sk, err, sizeof err), 0, "%s", err);
		wait_past(&r, z + 20);                   /* some txns come after z */
		atomic_store(&r.stop, true);
		pthread_join(th, NULL);
		jute_writer_free(&w);

		struct ztree *back = NULL;
		cr_assert_eq(read_stream(sk.buf, sk.len, 0, NULL, &back, err, sizeof err, NULL), 0, "%s", err);
		/* what a learner does next: the committed txns after z, applied
		 * the way replay applies them over a fuzzy snapshot */
		struct recovery_apply *a = recovery_apply_new(back, NULL);
		long replayed = 0;
		for (size_t i = 0; i < r.n; i++) {
			struct ztxn x;
			cr_assert_eq(txn_decode(r.log[i], r.loglen[i], &x, err, sizeof err), 0, "%s", err);
			if (x.zxid > z) {
				recovery_apply_txn(a, &x);
				replayed++;
			}
			ztxn_clear(&x);
		}
		recovery_apply_free(a);
		cr_assert_gt(replayed, 0, "the writer must have raced the walk");
		test_assert_same_tree(t, back);
		tree_free(back);
		free(sk.buf);
	}
	for (size_t i = 0; i < r.n; i++)
		free(r.log[i]);
	free(r.log);
	free(r.loglen);
}

/* ---- the digest ---------------------------------------------------------- */

Test(snapstream, digest_is_zookeepers)
{
	cr_assert_eq(digest_crc32(0, "123456789", 9), 0xcbf43926u, "java.util.zip.CRC32's check value");
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(read_stream(zk_stream, sizeof zk_stream, 0, NULL, &back, err, sizeof err, NULL), 0, "%s", err);
	uint64_t d = tree_digest(back);
	/* nodes below /zookeeper/ are not part of it */
	rcu_read_lock();
	cr_assert_eq(tree_set_data(back, "/zookeeper/config", 17, (const uint8_t *)"x", 1, 1, 9, 9, NULL), ZOK);
	rcu_read_unlock();
	cr_assert_eq(tree_digest(back), d);
	rcu_read_lock();
	cr_assert_eq(tree_set_data(back, "/app", 4, (const uint8_t *)"x", 1, 2, 9, 9, NULL), ZOK);
	rcu_read_unlock();
	cr_assert_neq(tree_digest(back), d);
	tree_free(back);
}

/* The race the fuzzy test may or may not hit, made by hand: the walk copied
 * /p (pzxid 5) and then found its child /p/c deleted (at zxid 9). Replaying
 * that delete finds nothing, and still moves /p's pzxid to 9, as the delete
 * did on the leader. */
Test(snapstream, a_delete_the_walk_missed_still_moves_the_parent_pzxid)
{
	struct jute_writer w;
	jute_writer_init(&w, 256);
	head(&w);
	node(&w, "", NULL, -1, -1);
	node(&w, "/p", NULL, -1, -1);
	jute_write_string(&w, "/");
	jute_write_string(&w, "BenWasHere");
	struct ztree *back = NULL;
	char err[512];
	cr_assert_eq(read_stream(w.buf, w.len, 0, NULL, &back, err, sizeof err, NULL), 0, "%s", err);
	jute_writer_free(&w);
	struct recovery_apply *a = recovery_apply_new(back, NULL);
	struct ztxn del = { .type = ZOP_DELETE, .op = ZOP_DELETE, .session_id = 1, .zxid = 9, .time = 9,
			    .path = strdup("/p/c"), .path_len = 4 };
	cr_assert_eq(recovery_apply_txn(a, &del), 0);
	ztxn_clear(&del);
	/* and a closeSession listing an ephemeral that is gone likewise */
	struct ztxn close = { .type = ZOP_CLOSE, .op = ZOP_CLOSE, .session_id = 0x42, .zxid = 11, .time = 11,
			      .n_close_paths = 1 };
	close.close_paths = calloc(1, sizeof(char *));
	close.close_paths[0] = strdup("/eph");
	cr_assert_eq(recovery_apply_txn(a, &close), 0);
	ztxn_clear(&close);
	recovery_apply_free(a);
	rcu_read_lock();
	cr_assert_eq(stat_of(back, "/p")->pzxid, 9);
	cr_assert_eq(stat_of(back, "/")->pzxid, 11);
	rcu_read_unlock();
	tree_free(back);
}
