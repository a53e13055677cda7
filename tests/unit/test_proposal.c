/*
 * test_proposal.c - a PROPOSAL's data is a txn log entry: what a ZooKeeper
 * 3.8 leader puts there (Leader.propose -> Util.marshallTxnEntry: TxnHeader,
 * the txn record, and a TxnDigest when zookeeper.digest.enabled, its
 * default) txn_decode reads, digest and all; and what txn_encode makes for
 * a proposal is marshallTxnEntry's bytes without the digest, which a 3.8
 * follower accepts (SerializeUtils.deserializeTxn takes the missing digest
 * as null and skips the digest check).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "net/jute.h"
#include "net/records.h"
#include "storage/txncodec.h"

/* Made by ZooKeeper 3.8.0's Util.marshallTxnEntry(hdr, txn, digest):
 * create: TxnHeader(0x1234, 7, 0x100000005, 1700000000123, create),
 *   CreateTxn("/app/x", "hello", [digest u:pw ALL], ephemeral, 3),
 *   TxnDigest(2, 0x0123456789abcdef) */
static const uint8_t zk_create[] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x07,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x01, 0x8b,
	0xcf, 0xe5, 0x68, 0x7b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06,
	0x2f, 0x61, 0x70, 0x70, 0x2f, 0x78, 0x00, 0x00, 0x00, 0x05, 0x68, 0x65,
	0x6c, 0x6c, 0x6f, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1f, 0x00,
	0x00, 0x00, 0x06, 0x64, 0x69, 0x67, 0x65, 0x73, 0x74, 0x00, 0x00, 0x00,
	0x04, 0x75, 0x3a, 0x70, 0x77, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
	0x00, 0x02, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
};
/* closeSession: TxnHeader(0x1234, 8, 0x100000006, ..124, closeSession),
 *   CloseSessionTxn(["/eph1", "/eph2"]), TxnDigest(2, -5) */
static const uint8_t zk_close[] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x08,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0x8b,
	0xcf, 0xe5, 0x68, 0x7c, 0xff, 0xff, 0xff, 0xf5, 0x00, 0x00, 0x00, 0x02,
	0x00, 0x00, 0x00, 0x05, 0x2f, 0x65, 0x70, 0x68, 0x31, 0x00, 0x00, 0x00,
	0x05, 0x2f, 0x65, 0x70, 0x68, 0x32, 0x00, 0x00, 0x00, 0x02, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xfb,
};
/* multi: TxnHeader(0x1234, 10, 0x100000008, ..126, multi),
 *   MultiTxn([Txn(delete, DeleteTxn("/app/x")), Txn(check, CheckVersionTxn("/app", 4))]),
 *   TxnDigest(2, 42) */
static const uint8_t zk_multi[] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x0a,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x01, 0x8b,
	0xcf, 0xe5, 0x68, 0x7e, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x02,
	0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x06,
	0x2f, 0x61, 0x70, 0x70, 0x2f, 0x78, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00,
	0x00, 0x0c, 0x00, 0x00, 0x00, 0x04, 0x2f, 0x61, 0x70, 0x70, 0x00, 0x00,
	0x00, 0x04, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x2a,
};
/* setData without a digest (what a leader with digests disabled sends):
 * TxnHeader(0x1234, 9, 0x100000007, ..125, setData), SetDataTxn("/app", "v", 4) */
static const uint8_t zk_setdata[] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x09,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0x8b,
	0xcf, 0xe5, 0x68, 0x7d, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x04,
	0x2f, 0x61, 0x70, 0x70, 0x00, 0x00, 0x00, 0x01, 0x76, 0x00, 0x00, 0x00,
	0x04,
};

#define DIGEST_BYTES 12             /* TxnDigest{int version, long treeDigest} */

static void decode_ok(const uint8_t *p, size_t len, struct ztxn *t)
{
	char err[256];
	cr_assert_eq(txn_decode(p, len, t, err, sizeof err), 0, "%s", err);
}

/* Our encoding of t: what we would put in a PROPOSAL. */
static uint8_t *encode(const struct ztxn *t, size_t *len)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	char err[256];
	cr_assert_eq(txn_encode(&w, t, err, sizeof err), 0, "%s", err);
	uint8_t *b = jute_writer_take(&w, len);
	cr_assert_not_null(b);
	return b;
}

/* Decoding a ZooKeeper proposal and encoding it again gives its bytes
 * without the digest. */
static void assert_reencodes(const uint8_t *zk, size_t len, size_t digest)
{
	struct ztxn t;
	decode_ok(zk, len, &t);
	size_t n;
	uint8_t *b = encode(&t, &n);
	cr_assert_eq(n, len - digest);
	cr_assert(memcmp(b, zk, n) == 0, "our encoding differs from ZooKeeper's");
	free(b);
	ztxn_clear(&t);
}

static const uint8_t digest_acl[] = {
	0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 6, 'd', 'i', 'g', 'e', 's', 't', 0, 0, 0, 4, 'u', ':', 'p', 'w',
};

Test(proposal, zookeepers_create_with_a_digest)
{
	struct ztxn t;
	decode_ok(zk_create, sizeof zk_create, &t);
	cr_assert_eq(t.session_id, 0x1234);
	cr_assert_eq(t.cxid, 7);
	cr_assert_eq(t.zxid, 0x100000005LL);
	cr_assert_eq(t.time, 1700000000123LL);
	cr_assert_eq(t.type, ZOP_CREATE);
	cr_assert_str_eq(t.path, "/app/x");
	cr_assert(t.data_len == 5 && memcmp(t.data, "hello", 5) == 0);
	cr_assert(t.acl_len == sizeof digest_acl && memcmp(t.acl, digest_acl, sizeof digest_acl) == 0);
	cr_assert_eq(t.ephemeral_owner, 0x1234, "ephemeral: owned by the header's session");
	cr_assert_eq(t.parent_cversion, 3);
	ztxn_clear(&t);
	assert_reencodes(zk_create, sizeof zk_create, DIGEST_BYTES);
}

Test(proposal, zookeepers_close_session_and_multi_with_a_digest)
{
	struct ztxn t;
	decode_ok(zk_close, sizeof zk_close, &t);
	cr_assert_eq(t.type, ZOP_CLOSE);
	cr_assert_eq(t.n_close_paths, 2);
	cr_assert_str_eq(t.close_paths[0], "/eph1");
	cr_assert_str_eq(t.close_paths[1], "/eph2");
	ztxn_clear(&t);
	assert_reencodes(zk_close, sizeof zk_close, DIGEST_BYTES);

	decode_ok(zk_multi, sizeof zk_multi, &t);
	cr_assert_eq(t.type, ZOP_MULTI);
	cr_assert_eq(t.n_sub, 2);
	cr_assert_eq(t.sub[0].type, ZOP_DELETE);
	cr_assert_str_eq(t.sub[0].path, "/app/x");
	cr_assert_eq(t.sub[1].type, ZOP_CHECK);
	cr_assert_eq(t.sub[1].version, 4);
	ztxn_clear(&t);
	assert_reencodes(zk_multi, sizeof zk_multi, DIGEST_BYTES);

	assert_reencodes(zk_setdata, sizeof zk_setdata, 0);
}

/* A record cut anywhere fails; a complete record with a partial digest is
 * read as having none, as ZooKeeper's EOFException on the digest does. Cut
 * inside parentCVersion, a create reads as ZooKeeper reads it too: the EOF
 * makes it a CreateTxnV0, and the bytes left over are ignored. */
Test(proposal, truncated_proposals)
{
	char err[256];
	size_t record = sizeof zk_create - DIGEST_BYTES;
	for (size_t n = 0; n < sizeof zk_create; n++) {
		struct ztxn t;
		int rc = txn_decode(zk_create, n, &t, err, sizeof err);
		if (n >= record - 4 && n < record) {
			cr_assert_eq(rc, 0, "%s", err);
			cr_assert_eq(t.parent_cversion, -1, "CreateTxnV0: the parent's cversion + 1");
			ztxn_clear(&t);
		} else if (n < record) {
			cr_assert_eq(rc, -1, "cut at %zu", n);
		} else {
			cr_assert_eq(rc, 0, "cut at %zu: %s", n, err);
			cr_assert_eq(t.parent_cversion, 3);
			ztxn_clear(&t);
		}
	}
}

/* ---- built by hand, per zookeeper.jute ---------------------------------- */

static void header(struct jute_writer *w, int64_t session, int32_t cxid, int64_t zxid, int32_t type)
{
	jute_write_long(w, session);
	jute_write_int(w, cxid);
	jute_write_long(w, zxid);
	jute_write_long(w, 1700000000000LL);
	jute_write_int(w, type);
}

static void digest(struct jute_writer *w, int64_t d)
{
	jute_write_int(w, 2);
	jute_write_long(w, d);
}

Test(proposal, hand_built_entries_with_digests)
{
	struct jute_writer w;
	struct ztxn t;

	jute_writer_init(&w, 64);                        /* createSession + digest */
	header(&w, 0x99, 0, 0x200000001LL, ZOP_CREATESESSION);
	jute_write_int(&w, 30000);
	digest(&w, 77);
	decode_ok(w.buf, w.len, &t);
	cr_assert_eq(t.type, ZOP_CREATESESSION);
	cr_assert_eq(t.timeout, 30000);
	ztxn_clear(&t);
	jute_writer_free(&w);

	jute_writer_init(&w, 64);                        /* error + digest */
	header(&w, 0x99, 3, 0x200000002LL, ZOP_ERROR);
	jute_write_int(&w, ZNODEEXISTS);
	digest(&w, -1);
	decode_ok(w.buf, w.len, &t);
	cr_assert_eq(t.type, ZOP_ERROR);
	cr_assert_eq(t.err, ZNODEEXISTS);
	ztxn_clear(&t);
	jute_writer_free(&w);

	jute_writer_init(&w, 64);                        /* setACL + digest */
	header(&w, 0x99, 4, 0x200000003LL, ZOP_SETACL);
	jute_write_string(&w, "/a");
	jute_write_raw(&w, digest_acl, sizeof digest_acl);
	jute_write_int(&w, 2);
	digest(&w, 5);
	decode_ok(w.buf, w.len, &t);
	cr_assert_eq(t.type, ZOP_SETACL);
	cr_assert_eq(t.version, 2);
	size_t n;
	uint8_t *b = encode(&t, &n);
	cr_assert(n == w.len - DIGEST_BYTES && memcmp(b, w.buf, n) == 0);
	free(b);
	ztxn_clear(&t);
	jute_writer_free(&w);

	jute_writer_init(&w, 64);                        /* createContainer + digest */
	header(&w, 0x99, 5, 0x200000004LL, ZOP_CREATECONTAINER);
	jute_write_string(&w, "/c");
	jute_write_buffer(&w, NULL, -1);
	jute_write_raw(&w, zk_open_acl, zk_open_acl_len);
	jute_write_int(&w, 1);
	digest(&w, 5);
	decode_ok(w.buf, w.len, &t);
	cr_assert_eq(t.type, ZOP_CREATECONTAINER);
	cr_assert_eq(t.ephemeral_owner, ZK_CONTAINER_OWNER);
	cr_assert_eq(t.data_len, -1);
	ztxn_clear(&t);
	jute_writer_free(&w);
}

/* What zkd sends for the txns it makes: exactly marshallTxnEntry(hdr, txn,
 * null), built here field by field. */
Test(proposal, our_encoding_is_marshall_txn_entry_without_a_digest)
{
	struct ztxn t = { .type = ZOP_CREATE, .op = ZOP_CREATE, .session_id = 0x1234, .cxid = 7,
			  .zxid = 0x100000005LL, .time = 1700000000000LL, .path = (char *)"/app/x", .path_len = 6,
			  .data = (const uint8_t *)"hello", .data_len = 5, .acl = (uint8_t *)digest_acl,
			  .acl_len = sizeof digest_acl, .ephemeral_owner = 0x1234, .parent_cversion = 3 };
	size_t n;
	uint8_t *b = encode(&t, &n);
	struct jute_writer w;
	jute_writer_init(&w, 64);
	header(&w, 0x1234, 7, 0x100000005LL, ZOP_CREATE);
	jute_write_string(&w, "/app/x");
	jute_write_buffer(&w, "hello", 5);
	jute_write_raw(&w, digest_acl, sizeof digest_acl);
	jute_write_bool(&w, true);
	jute_write_int(&w, 3);
	cr_assert(n == w.len && memcmp(b, w.buf, n) == 0);
	free(b);
	jute_writer_free(&w);

	/* a closeSession whose paths were not logged has no record at all,
	 * which 3.8's deserializeTxn takes (EOF on CloseSessionTxn: null) */
	struct ztxn c = { .type = ZOP_CLOSE, .session_id = 0x1234, .cxid = 1, .zxid = 0x100000009LL,
			  .time = 1700000000000LL, .n_close_paths = -1 };
	b = encode(&c, &n);
	cr_assert_eq(n, 32u, "a bare TxnHeader");
	struct ztxn back;
	decode_ok(b, n, &back);
	cr_assert_eq(back.n_close_paths, -1);
	ztxn_clear(&back);
	free(b);
}
