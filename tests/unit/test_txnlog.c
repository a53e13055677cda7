/*
 * test_txnlog.c - the txn codec and the txn log: every txn type round-trips
 * in ZooKeeper's encoding; logs written are replayed; a torn tail is cut at
 * every byte offset of the last record and everything before it survives;
 * corruption elsewhere is refused naming file and offset; and through the
 * fault seam, a failing write or fdatasync is never reported as durable.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
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
#include "storage/txncodec.h"
#include "storage/txnlog.h"
#include "helpers.h"

/* ---- helpers ------------------------------------------------------------- */

static char dir[256];
static char vdir[300];

static void setup(void)
{
	test_dir_make(dir, sizeof dir, "txnlog");
	snprintf(vdir, sizeof vdir, "%s/version-2", dir);
	fio_fault_clear();
}

static void teardown(void)
{
	fio_fault_clear();
	test_dir_remove(dir);
}

TestSuite(txncodec);
TestSuite(txnlog, .init = setup, .fini = teardown);

static const uint8_t digest_acl[] = {
	0, 0, 0, 2,
	0, 0, 0, 31, 0, 0, 0, 6, 'd', 'i', 'g', 'e', 's', 't', 0, 0, 0, 4, 'u', ':', 'p', 'w',
	0, 0, 0, 1, 0, 0, 0, 5, 'w', 'o', 'r', 'l', 'd', 0, 0, 0, 6, 'a', 'n', 'y', 'o', 'n', 'e',
};

static char *xstrdup(const char *s) { char *d = strdup(s); cr_assert_not_null(d); return d; }

static void set_path(struct ztxn *t, const char *p) { t->path = xstrdup(p); t->path_len = strlen(p); }

static void set_acl(struct ztxn *t, const uint8_t *a, size_t n)
{
	t->acl = malloc(n);
	memcpy(t->acl, a, n);
	t->acl_len = n;
}

static void set_data(struct ztxn *t, const void *d, int32_t n)
{
	t->data_len = n;
	t->data_owned = true;
	if (n > 0) {
		uint8_t *c = malloc((size_t)n);
		memcpy(c, d, (size_t)n);
		t->data = c;
	}
}

static struct ztxn hdr(int32_t type, int64_t zxid)
{
	return (struct ztxn){ .type = type, .session_id = 0x1000000abcdLL, .cxid = (int32_t)zxid * 3,
			      .zxid = zxid, .time = 1700000000000LL + zxid };
}

static struct ztxn mk_create(int64_t zxid, const char *path, const char *data, int64_t owner, int32_t pcv)
{
	struct ztxn t = hdr(ZOP_CREATE, zxid);
	set_path(&t, path);
	set_data(&t, data, data ? (int32_t)strlen(data) : -1);
	set_acl(&t, zk_open_acl, zk_open_acl_len);
	t.ephemeral_owner = owner;
	t.parent_cversion = pcv;
	return t;
}

static void sub_push(struct ztxn *m, struct ztxn s)
{
	if (m->n_sub == m->cap_sub) {
		m->cap_sub = m->cap_sub ? m->cap_sub * 2 : 4;
		m->sub = realloc(m->sub, (size_t)m->cap_sub * sizeof *m->sub);
	}
	m->sub[m->n_sub++] = s;
}

/* One txn of every kind zkd logs, cycling on zxid. */
static struct ztxn mk_any(int64_t zxid)
{
	struct ztxn t;
	char path[64];
	snprintf(path, sizeof path, "/n%" PRId64, zxid);
	switch (zxid % 11) {
	case 0: t = mk_create(zxid, path, "data", 0, 1); break;
	case 1: t = mk_create(zxid, path, NULL, 0x1000000abcdLL, 2); break;
	case 2: t = hdr(ZOP_CREATECONTAINER, zxid); set_path(&t, path); set_data(&t, "", 0);
		set_acl(&t, digest_acl, sizeof digest_acl); t.ephemeral_owner = ZK_CONTAINER_OWNER;
		t.parent_cversion = 7; break;
	case 3: t = hdr(ZOP_DELETE, zxid); set_path(&t, path); break;
	case 4: t = hdr(ZOP_SETDATA, zxid); set_path(&t, path); set_data(&t, "\0\1\2binary", 9); t.version = 4; break;
	case 5: t = hdr(ZOP_SETACL, zxid); set_path(&t, path); set_acl(&t, digest_acl, sizeof digest_acl);
		t.version = 2; break;
	case 6: t = hdr(ZOP_CREATESESSION, zxid); t.timeout = 30000; break;
	case 7: t = hdr(ZOP_CLOSE, zxid); t.n_close_paths = 2; t.close_paths = calloc(2, sizeof(char *));
		t.close_paths[0] = xstrdup("/e1"); t.close_paths[1] = xstrdup("/a/e2"); break;
	case 8: t = hdr(ZOP_ERROR, zxid); t.err = ZNONODE; break;
	case 9: {
		t = hdr(ZOP_MULTI, zxid);
		struct ztxn c = mk_create(zxid, "/m1", "x", 0x1000000abcdLL, 3);
		c.op = ZOP_CREATE2;
		sub_push(&t, c);
		struct ztxn sd = hdr(ZOP_SETDATA, zxid); set_path(&sd, "/m1"); set_data(&sd, "y", 1); sd.version = 1;
		sub_push(&t, sd);
		struct ztxn ck = hdr(ZOP_CHECK, zxid); set_path(&ck, "/m1"); ck.version = 2;
		sub_push(&t, ck);
		struct ztxn d = hdr(ZOP_DELETE, zxid); set_path(&d, "/m1");
		sub_push(&t, d);
		break;
	}
	default: {
		t = hdr(ZOP_MULTI, zxid);   /* a failed multi: its ops are error txns */
		struct ztxn e1 = hdr(ZOP_ERROR, zxid); e1.err = ZOK; sub_push(&t, e1);
		struct ztxn e2 = hdr(ZOP_ERROR, zxid); e2.err = ZNODEEXISTS; sub_push(&t, e2);
		struct ztxn e3 = hdr(ZOP_ERROR, zxid); e3.err = ZRUNTIMEINCONSISTENCY; sub_push(&t, e3);
		break;
	}
	}
	return t;
}

static void assert_same_txn(const struct ztxn *a, const struct ztxn *b, bool top)
{
	cr_assert_eq(a->type, b->type, "type %d vs %d (zxid %" PRId64 ")", a->type, b->type, a->zxid);
	cr_assert_eq(a->zxid, b->zxid);
	if (top) {
		cr_assert_eq(a->session_id, b->session_id);
		cr_assert_eq(a->cxid, b->cxid);
		cr_assert_eq(a->time, b->time);
	}
	cr_assert_eq(a->path_len, b->path_len);
	if (a->path)
		cr_assert_str_eq(a->path, b->path);
	cr_assert_eq(a->data_len, b->data_len);
	if (a->data_len > 0)
		cr_assert_eq(memcmp(a->data, b->data, (size_t)a->data_len), 0);
	cr_assert_eq(a->acl_len, b->acl_len);
	if (a->acl_len)
		cr_assert_eq(memcmp(a->acl, b->acl, a->acl_len), 0);
	cr_assert_eq(a->ephemeral_owner, b->ephemeral_owner, "owner of %s", a->path ? a->path : "");
	if (a->type == ZOP_CREATE || a->type == ZOP_CREATECONTAINER || a->type == ZOP_CREATETTL)
		cr_assert_eq(a->parent_cversion, b->parent_cversion);
	if (a->type == ZOP_SETDATA || a->type == ZOP_SETACL || a->type == ZOP_CHECK)
		cr_assert_eq(a->version, b->version);
	if (a->type == ZOP_CREATESESSION)
		cr_assert_eq(a->timeout, b->timeout);
	if (a->type == ZOP_ERROR)
		cr_assert_eq(a->err, b->err);
	cr_assert_eq(a->n_close_paths, b->n_close_paths);
	for (int i = 0; i < a->n_close_paths; i++)
		cr_assert_str_eq(a->close_paths[i], b->close_paths[i]);
	cr_assert_eq(a->n_sub, b->n_sub);
	for (int i = 0; i < a->n_sub; i++) {
		assert_same_txn(&a->sub[i], &b->sub[i], false);
		if (a->sub[i].op == ZOP_CREATE2)
			cr_assert_eq(b->sub[i].op, ZOP_CREATE2);
	}
}

static uint8_t *encode(const struct ztxn *t, size_t *len)
{
	struct jute_writer w;
	jute_writer_init(&w, 256);
	char err[256];
	cr_assert_eq(txn_encode(&w, t, err, sizeof err), 0, "%s", err);
	return jute_writer_take(&w, len);
}

/* ---- Adler-32 and the codec ---------------------------------------------- */

Test(txncodec, adler32_known_values)
{
	cr_assert_eq(adler32("", 0), 1u);
	cr_assert_eq(adler32("Wikipedia", 9), 0x11e60398u);
	/* long input: the modulo must be applied in blocks without changing the value */
	static uint8_t big[100000];
	memset(big, 0xff, sizeof big);
	uint32_t a = 1, b = 0;
	for (size_t i = 0; i < sizeof big; i++) {
		a = (a + big[i]) % 65521;
		b = (b + a) % 65521;
	}
	cr_assert_eq(adler32(big, sizeof big), (b << 16) | a);
	cr_assert_eq(adler32_update(adler32(big, 777), big + 777, sizeof big - 777), (b << 16) | a);
}

Test(txncodec, every_type_round_trips)
{
	for (int64_t z = 0; z < 22; z++) {
		struct ztxn t = mk_any(z + 1);
		size_t len;
		uint8_t *b = encode(&t, &len);
		struct ztxn back;
		char err[256];
		cr_assert_eq(txn_decode(b, len, &back, err, sizeof err), 0, "zxid %" PRId64 ": %s", z + 1, err);
		assert_same_txn(&t, &back, true);
		cr_assert(back.data_owned || back.data == NULL);
		ztxn_clear(&back);
		ztxn_clear(&t);
		free(b);
	}
}

Test(txncodec, ttl_deletecontainer_reconfig_round_trip)
{
	struct ztxn t = hdr(ZOP_CREATETTL, 5);
	set_path(&t, "/ttl");
	set_data(&t, "v", 1);
	set_acl(&t, zk_open_acl, zk_open_acl_len);
	t.ephemeral_owner = ZK_TTL_PREFIX | 60000;
	t.parent_cversion = 9;
	size_t len;
	uint8_t *b = encode(&t, &len);
	/* CreateTTLTxn ends with parentCVersion and the ttl itself */
	cr_assert_eq(jute_get_u32(b + len - 12), 9u);
	cr_assert_eq(jute_get_u32(b + len - 4), 60000u);
	struct ztxn back;
	char err[256];
	cr_assert_eq(txn_decode(b, len, &back, err, sizeof err), 0, "%s", err);
	assert_same_txn(&t, &back, true);
	ztxn_clear(&back);
	free(b);
	ztxn_clear(&t);

	int types[] = { ZOP_DELETECONTAINER, ZOP_RECONFIG };
	for (int i = 0; i < 2; i++) {
		t = hdr(types[i], 6);
		set_path(&t, "/zookeeper/config");
		if (types[i] == ZOP_RECONFIG) {
			set_data(&t, "server.1=x", 10);
			t.version = 3;
		}
		b = encode(&t, &len);
		cr_assert_eq(txn_decode(b, len, &back, err, sizeof err), 0, "%s", err);
		assert_same_txn(&t, &back, true);
		ztxn_clear(&back);
		free(b);
		ztxn_clear(&t);
	}
}

/* The exact bytes of a createSession entry: TxnHeader + CreateSessionTxn. */
Test(txncodec, create_session_bytes)
{
	struct ztxn t = { .type = ZOP_CREATESESSION, .session_id = 0x0102030405060708LL, .cxid = 0,
			  .zxid = 0x100000001LL, .time = 0x0000018b00000000LL, .timeout = 30000 };
	size_t len;
	uint8_t *b = encode(&t, &len);
	static const uint8_t want[] = {
		1, 2, 3, 4, 5, 6, 7, 8,              /* clientId */
		0, 0, 0, 0,                          /* cxid */
		0, 0, 0, 1, 0, 0, 0, 1,              /* zxid */
		0, 0, 1, 0x8b, 0, 0, 0, 0,           /* time */
		0xff, 0xff, 0xff, 0xf6,              /* type -10 */
		0, 0, 0x75, 0x30,                    /* timeOut 30000 */
	};
	cr_assert_eq(len, sizeof want);
	cr_assert_eq(memcmp(b, want, len), 0);
	free(b);
}

Test(txncodec, create_is_zookeepers_createtxn)
{
	struct ztxn t = mk_create(7, "/a", "hi", 0x1000000abcdLL, 4);
	size_t len;
	uint8_t *b = encode(&t, &len);
	size_t off = 32;                                     /* TxnHeader */
	cr_assert_eq(jute_get_u32(b + 28), (uint32_t)ZOP_CREATE);
	cr_assert_eq(jute_get_u32(b + off), 2u);             /* path length */
	cr_assert_eq(memcmp(b + off + 4, "/a", 2), 0);
	off += 6;
	cr_assert_eq(jute_get_u32(b + off), 2u);             /* data */
	off += 6;
	cr_assert_eq(memcmp(b + off, zk_open_acl, zk_open_acl_len), 0);
	off += zk_open_acl_len;
	cr_assert_eq(b[off], 1);                             /* ephemeral: the owner is the clientId */
	cr_assert_eq(jute_get_u32(b + off + 1), 4u);         /* parentCVersion */
	cr_assert_eq(len, off + 5);
	free(b);
	ztxn_clear(&t);
}

Test(txncodec, top_level_check_is_logged_as_a_multi)
{
	struct ztxn t = hdr(ZOP_CHECK, 9);
	set_path(&t, "/c");
	t.version = 5;
	size_t len;
	uint8_t *b = encode(&t, &len);
	cr_assert_eq(jute_get_u32(b + 28), (uint32_t)ZOP_MULTI);
	struct ztxn back;
	char err[256];
	cr_assert_eq(txn_decode(b, len, &back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back.type, ZOP_MULTI);
	cr_assert_eq(back.n_sub, 1);
	cr_assert_eq(back.sub[0].type, ZOP_CHECK);
	cr_assert_str_eq(back.sub[0].path, "/c");
	cr_assert_eq(back.sub[0].version, 5);
	ztxn_clear(&back);
	free(b);
	ztxn_clear(&t);
}

Test(txncodec, refuses_what_zookeeper_cannot_say)
{
	struct jute_writer w;
	char err[256];
	struct ztxn t = mk_create(1, "/x", "d", 0x777, 1);   /* owner is not the session */
	jute_writer_init(&w, 64);
	cr_assert_eq(txn_encode(&w, &t, err, sizeof err), -1);
	cr_assert(strstr(err, "owner"), "%s", err);
	jute_writer_free(&w);
	ztxn_clear(&t);

	t = hdr(0, 2);                                        /* sync: no txn */
	jute_writer_init(&w, 64);
	cr_assert_eq(txn_encode(&w, &t, err, sizeof err), -1);
	jute_writer_free(&w);

	t = hdr(ZOP_MULTI, 3);                                /* multi in a multi */
	sub_push(&t, hdr(ZOP_MULTI, 3));
	jute_writer_init(&w, 64);
	cr_assert_eq(txn_encode(&w, &t, err, sizeof err), -1);
	jute_writer_free(&w);
	ztxn_clear(&t);
}

Test(txncodec, close_session_without_a_record)
{
	struct ztxn t = hdr(ZOP_CLOSE, 4);
	t.n_close_paths = -1;
	size_t len;
	uint8_t *b = encode(&t, &len);
	cr_assert_eq(len, 32u);
	struct ztxn back;
	char err[256];
	cr_assert_eq(txn_decode(b, len, &back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back.n_close_paths, -1);
	ztxn_clear(&back);
	free(b);
}

Test(txncodec, digest_and_trailing_bytes_are_ignored)
{
	struct ztxn t = mk_create(3, "/d", "x", 0, 1);
	size_t len;
	uint8_t *b = encode(&t, &len);
	uint8_t *withd = malloc(len + 12);
	memcpy(withd, b, len);
	memcpy(withd + len, "\0\0\0\2\x11\x22\x33\x44\x55\x66\x77\x88", 12);   /* TxnDigest{2, ...} */
	struct ztxn back;
	char err[256];
	cr_assert_eq(txn_decode(withd, len + 12, &back, err, sizeof err), 0, "%s", err);
	assert_same_txn(&t, &back, true);
	ztxn_clear(&back);
	free(withd);
	free(b);
	ztxn_clear(&t);
}

Test(txncodec, create_v0_has_no_parent_cversion)
{
	struct ztxn t = mk_create(3, "/v0", "x", 0, 1);
	size_t len;
	uint8_t *b = encode(&t, &len);
	struct ztxn back;
	char err[256];
	cr_assert_eq(txn_decode(b, len - 4, &back, err, sizeof err), 0, "%s", err);   /* drop parentCVersion */
	cr_assert_str_eq(back.path, "/v0");
	cr_assert_eq(back.parent_cversion, -1);
	ztxn_clear(&back);
	free(b);
	ztxn_clear(&t);
}

Test(txncodec, truncated_and_garbage_input_fails_cleanly)
{
	char err[256];
	for (int64_t z = 1; z <= 11; z++) {
		struct ztxn t = mk_any(z);
		size_t len;
		uint8_t *b = encode(&t, &len);
		for (size_t cut = 0; cut < len; cut++) {
			struct ztxn back;
			uint8_t *c = malloc(cut ? cut : 1);       /* exact size: ASan sees any overread */
			memcpy(c, b, cut);
			int rc = txn_decode(c, cut, &back, err, sizeof err);
			if (rc == 0)
				ztxn_clear(&back);   /* a prefix may legitimately decode (V0 create, closeSession) */
			free(c);
		}
		free(b);
		ztxn_clear(&t);
	}
	srand(42);
	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)(rand() % 96);
		uint8_t *c = malloc(len ? len : 1);
		for (size_t k = 0; k < len; k++)
			c[k] = (uint8_t)(rand() % 4 == 0 ? 0xff : rand());
		if (len > 31)
			jute_put_u32(c + 28, (uint32_t)(rand() % 24) - 11);   /* plausible types */
		struct ztxn back;
		if (txn_decode(c, len, &back, err, sizeof err) == 0)
			ztxn_clear(&back);
		free(c);
	}
}

/* ---- the log ------------------------------------------------------------- */

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

struct collected {
	int64_t zxids[4096];
	int n;
	int stop_at;
};

static int collect(void *arg, struct ztxn *t, char *err, size_t errlen)
{
	struct collected *c = arg;
	if (c->stop_at && c->n == c->stop_at) {
		snprintf(err, errlen, "stop here");
		return -1;
	}
	if (c->n < 4096)
		c->zxids[c->n] = t->zxid;
	c->n++;
	struct ztxn want = mk_any(t->zxid);
	assert_same_txn(&want, t, true);
	ztxn_clear(&want);
	return 0;
}

static int replay(int64_t after, struct collected *c, int64_t *last, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	return txnlog_replay(dir, after, collect, c, last, err, errlen);
}

/* Writes txns first..last (mk_any), syncing every `batch`. */
static void write_log(int64_t first, int64_t last, int batch, int64_t prealloc)
{
	char err[256];
	struct txnlog *l = txnlog_open(dir, prealloc, true, err, sizeof err);
	cr_assert_not_null(l, "%s", err);
	for (int64_t z = first; z <= last; z++) {
		struct ztxn t = mk_any(z);
		cr_assert_eq(txnlog_append(l, &t), 0, "%s", txnlog_error(l));
		ztxn_clear(&t);
		if ((z - first + 1) % batch == 0)
			cr_assert_eq(txnlog_sync(l), 0, "%s", txnlog_error(l));
	}
	cr_assert_eq(txnlog_close(l), 0);
}

/* Offsets of the records of a log image (framing only). */
static int record_offsets(const uint8_t *b, size_t len, size_t *offs, int max)
{
	size_t off = 16;
	int n = 0;
	while (off + 12 <= len && n < max) {
		int32_t l = (int32_t)jute_get_u32(b + off + 8);
		if (l <= 0)
			break;
		offs[n++] = off;
		off += 13 + (size_t)l;
	}
	if (n < max)
		offs[n] = off;   /* end of the last record */
	return n;
}

Test(txnlog, write_then_replay_everything)
{
	write_log(1, 200, 7, 64 * 1024);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 200);
	for (int i = 0; i < 200; i++)
		cr_assert_eq(c.zxids[i], i + 1);
	cr_assert_eq(last, 200);

	cr_assert_eq(replay(150, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 50);
	cr_assert_eq(c.zxids[0], 151);
	cr_assert_eq(last, 200);
	cr_assert_eq(replay(200, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 0);
	cr_assert_eq(last, 200);
}

Test(txnlog, file_layout_is_zookeepers)
{
	write_log(0x100000001LL, 0x100000003LL, 1, 64 * 1024);
	size_t len;
	uint8_t *b = slurp(vpath("log.100000001"), &len);
	cr_assert_eq(len % (64 * 1024), 0u, "preallocated in whole chunks (%zu)", len);
	cr_assert_eq(jute_get_u32(b), 0x5a4b4c47u);          /* ZKLG */
	cr_assert_eq(jute_get_u32(b + 4), 2u);
	cr_assert_eq(jute_get_u32(b + 8), 0u);               /* dbid 0 */
	cr_assert_eq(jute_get_u32(b + 12), 0u);
	size_t offs[8];
	cr_assert_eq(record_offsets(b, len, offs, 8), 3);
	for (int i = 0; i < 3; i++) {
		size_t o = offs[i];
		uint32_t n = jute_get_u32(b + o + 8);
		cr_assert_eq(jute_get_u32(b + o), 0u);          /* upper half of the long checksum */
		cr_assert_eq(jute_get_u32(b + o + 4), adler32(b + o + 12, n));
		cr_assert_eq(b[o + 12 + n], 'B');
	}
	for (size_t i = offs[3]; i < len; i++)
		cr_assert_eq(b[i], 0);
	free(b);
}

Test(txnlog, roll_starts_a_new_file_and_replay_crosses_files)
{
	char err[512];
	struct txnlog *l = txnlog_open(dir, 4096, true, err, sizeof err);
	for (int64_t z = 1; z <= 30; z++) {
		struct ztxn t = mk_any(z);
		cr_assert_eq(txnlog_append(l, &t), 0);
		ztxn_clear(&t);
		if (z % 10 == 0) {
			cr_assert_eq(txnlog_roll(l), 0);
			cr_assert_str_eq(txnlog_current_file(l), "");
		}
	}
	cr_assert_eq(txnlog_sync(l), 0);
	cr_assert_eq(txnlog_durable_zxid(l), 30);
	cr_assert_eq(txnlog_close(l), 0);
	cr_assert_eq(access(vpath("log.1"), F_OK), 0);
	cr_assert_eq(access(vpath("log.b"), F_OK), 0);
	cr_assert_eq(access(vpath("log.15"), F_OK), 0);
	struct collected c;
	int64_t last;
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 30);
	/* the first file is skipped entirely when the snapshot is past it */
	cr_assert_eq(replay(12, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 18);
	cr_assert_eq(c.zxids[0], 13);
}

Test(txnlog, group_commit_is_one_fdatasync_per_batch)
{
	char err[256];
	struct txnlog *l = txnlog_open(dir, 1 << 20, true, err, sizeof err);
	for (int64_t z = 1; z <= 100; z++) {
		struct ztxn t = mk_any(z);
		cr_assert_eq(txnlog_append(l, &t), 0);
		ztxn_clear(&t);
	}
	cr_assert_eq(fio_calls(FIO_FDATASYNC), 0);
	long dirsyncs = fio_calls(FIO_FSYNC);        /* open made version-2 */
	cr_assert_eq(txnlog_sync(l), 0);
	cr_assert_eq(fio_calls(FIO_FDATASYNC), 1);
	cr_assert_eq(fio_calls(FIO_PWRITE), 1);
	cr_assert_eq(fio_calls(FIO_FSYNC), dirsyncs + 1);   /* the new file's directory entry, once */
	cr_assert_eq(txnlog_sync(l), 0);             /* nothing new: no syscall */
	cr_assert_eq(fio_calls(FIO_FDATASYNC), 1);
	struct ztxn t = mk_any(101);
	txnlog_append(l, &t);
	ztxn_clear(&t);
	cr_assert_eq(txnlog_sync(l), 0);
	cr_assert_eq(fio_calls(FIO_FDATASYNC), 2);
	cr_assert_eq(fio_calls(FIO_FSYNC), dirsyncs + 1);
	cr_assert_eq(txnlog_close(l), 0);
}

Test(txnlog, force_sync_off_never_syncs)
{
	char err[256];
	struct txnlog *l = txnlog_open(dir, 0, false, err, sizeof err);
	struct ztxn t = mk_any(1);
	txnlog_append(l, &t);
	ztxn_clear(&t);
	cr_assert_eq(txnlog_sync(l), 0);
	cr_assert_eq(txnlog_close(l), 0);
	cr_assert_eq(fio_calls(FIO_FDATASYNC), 0);
	cr_assert_eq(fio_calls(FIO_FALLOCATE), 0);
}

Test(txnlog, sync_type_zero_is_not_logged)
{
	char err[256];
	struct txnlog *l = txnlog_open(dir, 0, true, err, sizeof err);
	struct ztxn t = hdr(0, 0);
	cr_assert_eq(txnlog_append(l, &t), 0);
	cr_assert_eq(txnlog_sync(l), 0);
	cr_assert_eq(txnlog_close(l), 0);
	cr_assert_eq(access(vpath("log.0"), F_OK), -1);
}

/* The heart of crash safety: whatever prefix of the last record reached the
 * disk, replay keeps every record before it and cuts the file there. */
static void torn_tail_at_every_offset(bool zero_fill)
{
	write_log(1, 12, 4, 0);
	size_t len;
	uint8_t *orig = slurp(vpath("log.1"), &len);
	size_t offs[16];
	int n = record_offsets(orig, len, offs, 16);
	cr_assert_eq(n, 12);
	size_t start = offs[11], end = offs[12];
	for (size_t cut = start; cut < end; cut++) {
		size_t flen = zero_fill ? end + 4096 : cut;
		uint8_t *img = calloc(1, flen);
		memcpy(img, orig, cut);
		spit(vpath("log.1"), img, flen);
		free(img);
		struct collected c;
		int64_t last;
		char err[512];
		cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "cut at %zu: %s", cut, err);
		cr_assert_eq(c.n, 11, "cut at %zu: %d txns", cut, c.n);
		cr_assert_eq(last, 11);
		/* the file now holds the 11 records and nothing but zeros after them */
		size_t rlen;
		uint8_t *r = slurp(vpath("log.1"), &rlen);
		cr_assert_geq(rlen, start, "cut at %zu: file is %zu bytes", cut, rlen);
		cr_assert_eq(memcmp(r, orig, start), 0);
		for (size_t i = start; i < rlen; i++)
			cr_assert_eq(r[i], 0, "cut at %zu: byte %zu is not zero", cut, i);
		free(r);
		/* and replaying the repaired file again is clean */
		cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
		cr_assert_eq(c.n, 11);
	}
	free(orig);
}

Test(txnlog, torn_tail_cut_at_every_byte_offset) { torn_tail_at_every_offset(false); }
Test(txnlog, torn_tail_cut_at_every_byte_offset_in_preallocated_file) { torn_tail_at_every_offset(true); }

Test(txnlog, corrupt_last_record_is_cut)
{
	write_log(1, 5, 5, 64 * 1024);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	size_t offs[8];
	record_offsets(b, len, offs, 8);
	b[offs[4] + 20] ^= 0x40;                    /* a bit flip in the last record */
	spit(vpath("log.1"), b, len);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 4);
	struct stat st;
	stat(vpath("log.1"), &st);
	cr_assert_eq((size_t)st.st_size, offs[4]);
	free(b);
}

Test(txnlog, corruption_in_the_middle_is_refused_with_file_and_offset)
{
	write_log(1, 10, 10, 64 * 1024);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	size_t offs[16];
	record_offsets(b, len, offs, 16);
	b[offs[3] + 30] ^= 0x01;
	spit(vpath("log.1"), b, len);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), -1);
	char want[64];
	snprintf(want, sizeof want, "log.1: corrupt record at offset %zu", offs[3]);
	cr_assert(strstr(err, want), "%s", err);
	cr_assert(strstr(err, "checksum"), "%s", err);
	/* nothing was changed on disk */
	size_t len2;
	uint8_t *b2 = slurp(vpath("log.1"), &len2);
	cr_assert_eq(len2, len);
	cr_assert_eq(memcmp(b, b2, len), 0);
	free(b);
	free(b2);
}

Test(txnlog, bad_length_in_the_middle_is_refused)
{
	write_log(1, 10, 10, 64 * 1024);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	size_t offs[16];
	record_offsets(b, len, offs, 16);
	jute_put_u32(b + offs[5] + 8, 0x7ffffff0);
	spit(vpath("log.1"), b, len);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), -1);
	cr_assert(strstr(err, "log.1") && strstr(err, "offset"), "%s", err);
	free(b);
}

/* A batch torn across sectors: a sector in the middle never reached the
 * disk, later ones did. Nothing of that batch was acknowledged, so replay
 * cuts at the hole even though intact records follow it. */
Test(txnlog, torn_batch_with_a_hole_is_cut)
{
	write_log(1, 40, 40, 1 << 20);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	size_t offs[64];
	record_offsets(b, len, offs, 64);
	size_t hole = (offs[30] / 512 + 1) * 512;     /* the sector after record 31 starts */
	cr_assert(hole + 512 < offs[40]);
	memset(b + hole, 0, 512);
	int victim = 30;
	while (offs[victim + 1] <= hole)
		victim++;
	spit(vpath("log.1"), b, len);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, victim, "%d", c.n);
	struct stat st;
	stat(vpath("log.1"), &st);
	cr_assert_eq((size_t)st.st_size, offs[victim]);
	free(b);
}

Test(txnlog, torn_tail_of_an_earlier_file_is_accepted_when_the_next_continues)
{
	write_log(1, 8, 8, 4096);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	size_t offs[16];
	record_offsets(b, len, offs, 16);
	memset(b + offs[6] + 10, 0, len - offs[6] - 10);   /* 7 and 8 torn, as after a crash */
	spit(vpath("log.1"), b, len);
	free(b);
	write_log(7, 12, 6, 4096);                         /* the restarted server goes on at 7 */
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 12);
	cr_assert_eq(last, 12);
	cr_assert_eq(access(vpath("log.1"), F_OK), 0);    /* not modified, like ZooKeeper */
}

Test(txnlog, torn_tail_of_an_earlier_file_with_a_gap_is_refused)
{
	write_log(1, 8, 8, 4096);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	size_t offs[16];
	record_offsets(b, len, offs, 16);
	memset(b + offs[6] + 10, 0, len - offs[6] - 10);
	spit(vpath("log.1"), b, len);
	free(b);
	write_log(9, 12, 4, 4096);                         /* 7 and 8 exist nowhere */
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), -1);
	cr_assert(strstr(err, "log.1") && strstr(err, "log.9"), "%s", err);
}

Test(txnlog, a_missing_log_file_is_refused)
{
	write_log(1, 5, 5, 4096);
	write_log(6, 10, 5, 4096);
	write_log(11, 15, 5, 4096);
	unlink(vpath("log.6"));
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), -1);
	cr_assert(strstr(err, "missing") && strstr(err, "log.b"), "%s", err);
	/* a new epoch may start anywhere */
	unlink(vpath("log.b"));
	write_log(0x200000001LL, 0x200000003LL, 3, 4096);
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 8);
	cr_assert_eq(last, 0x200000003LL);
}

Test(txnlog, empty_or_headerless_last_file_is_removed)
{
	write_log(1, 3, 3, 4096);
	spit(vpath("log.4"), (const uint8_t *)"", 0);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 3);
	cr_assert_eq(access(vpath("log.4"), F_OK), -1);
	spit(vpath("log.4"), (const uint8_t *)"ZK", 2);
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(access(vpath("log.4"), F_OK), -1);
}

Test(txnlog, not_a_log_is_refused)
{
	write_log(1, 3, 3, 4096);
	spit(vpath("log.4"), (const uint8_t *)"this is not a log file at all", 29);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), -1);
	cr_assert(strstr(err, "log.4") && strstr(err, "magic"), "%s", err);
}

Test(txnlog, checksum_right_but_not_a_txn_is_refused)
{
	write_log(1, 2, 2, 0);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	/* append a record of an unknown type, with a correct checksum */
	uint8_t entry[36] = { 0 };
	entry[15] = 3;                    /* zxid 3 */
	jute_put_u32(entry + 28, 77);     /* type 77 */
	uint8_t *img = malloc(len + 13 + sizeof entry);
	memcpy(img, b, len);
	memset(img + len, 0, 4);
	jute_put_u32(img + len + 4, adler32(entry, sizeof entry));
	jute_put_u32(img + len + 8, sizeof entry);
	memcpy(img + len + 12, entry, sizeof entry);
	img[len + 12 + sizeof entry] = 'B';
	spit(vpath("log.1"), img, len + 13 + sizeof entry);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), -1);
	cr_assert(strstr(err, "unsupported txn type 77"), "%s", err);
	free(b);
	free(img);
}

Test(txnlog, callback_error_names_the_place)
{
	write_log(1, 5, 5, 4096);
	struct collected c = { .stop_at = 2 };
	int64_t last;
	char err[512];
	cr_assert_eq(txnlog_replay(dir, 0, collect, &c, &last, err, sizeof err), -1);
	cr_assert(strstr(err, "log.1 offset") && strstr(err, "stop here"), "%s", err);
}

Test(txnlog, random_corruption_never_crashes)
{
	write_log(1, 30, 30, 8192);
	size_t len;
	uint8_t *orig = slurp(vpath("log.1"), &len);
	srand(7);
	for (int i = 0; i < 300; i++) {
		uint8_t *b = malloc(len);
		memcpy(b, orig, len);
		int flips = 1 + rand() % 8;
		for (int k = 0; k < flips; k++)
			b[(size_t)rand() % 3000] = (uint8_t)rand();
		spit(vpath("log.1"), b, len);
		struct collected c;
		int64_t last;
		char err[512];
		(void)replay(0, &c, &last, err, sizeof err);    /* any outcome but a crash */
		free(b);
	}
	free(orig);
}

/* ---- faults: a disk failure is never reported as durable ----------------- */

static struct txnlog *log_with(int64_t upto, int64_t prealloc)
{
	char err[256];
	struct txnlog *l = txnlog_open(dir, prealloc, true, err, sizeof err);
	cr_assert_not_null(l);
	for (int64_t z = 1; z <= upto; z++) {
		struct ztxn t = mk_any(z);
		cr_assert_eq(txnlog_append(l, &t), 0);
		ztxn_clear(&t);
	}
	if (upto)
		cr_assert_eq(txnlog_sync(l), 0);
	return l;
}

static void append_range(struct txnlog *l, int64_t a, int64_t b)
{
	for (int64_t z = a; z <= b; z++) {
		struct ztxn t = mk_any(z);
		txnlog_append(l, &t);
		ztxn_clear(&t);
	}
}

/* A small snapCount rolls the log every few dozen txns; each closed file
 * used to keep a whole preallocated chunk of disk (64 MiB by default). */
Test(txnlog, regression_a_rolled_or_closed_file_gives_back_its_unused_preallocation)
{
	const int64_t chunk = 8 << 20;
	char err[512];
	struct txnlog *l = txnlog_open(dir, chunk, true, err, sizeof err);
	cr_assert_not_null(l, "%s", err);
	append_range(l, 1, 5);
	cr_assert_eq(txnlog_roll(l), 0, "%s", txnlog_error(l));
	append_range(l, 6, 10);
	cr_assert_eq(txnlog_close(l), 0);
	for (int i = 0; i < 2; i++) {
		struct stat st;
		const char *name = i == 0 ? "log.1" : "log.6";
		cr_assert_eq(stat(vpath(name), &st), 0);
		cr_assert_eq(st.st_size, chunk, "%s keeps its size as ZooKeeper's padding does", name);
		cr_assert_lt((long long)st.st_blocks * 512, 1 << 20, "%s still holds %lld bytes of disk", name,
			     (long long)st.st_blocks * 512);
	}
	struct collected c;
	int64_t last;
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 10);
	cr_assert_eq(last, 10);
}

Test(txnlog, failed_write_is_not_durable)
{
	struct txnlog *l = log_with(5, 1 << 20);
	fio_fault_add(&(struct fio_fault){ .op = FIO_PWRITE, .nth = 1, .err = ENOSPC });
	append_range(l, 6, 9);
	cr_assert_eq(txnlog_sync(l), -1);
	cr_assert_eq(txnlog_durable_zxid(l), 5);
	cr_assert(txnlog_failed(l));
	cr_assert(strstr(txnlog_error(l), "No space left") && strstr(txnlog_error(l), "disk is full"), "%s",
		  txnlog_error(l));
	/* sticky: even though the disk "recovered", nothing more is accepted */
	fio_fault_clear();
	struct ztxn t = mk_any(10);
	cr_assert_eq(txnlog_append(l, &t), -1);
	ztxn_clear(&t);
	cr_assert_eq(txnlog_sync(l), -1);
	cr_assert_eq(txnlog_roll(l), -1);
	cr_assert_eq(txnlog_durable_zxid(l), 5);
	cr_assert_eq(txnlog_close(l), -1);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 5);
}

Test(txnlog, failed_fdatasync_is_not_durable)
{
	struct txnlog *l = log_with(3, 1 << 20);
	fio_fault_add(&(struct fio_fault){ .op = FIO_FDATASYNC, .nth = 1, .err = EIO });
	append_range(l, 4, 6);
	cr_assert_eq(txnlog_sync(l), -1);
	cr_assert_eq(txnlog_durable_zxid(l), 3);
	cr_assert(strstr(txnlog_error(l), "fdatasync") && strstr(txnlog_error(l), "Input/output"), "%s",
		  txnlog_error(l));
	fio_fault_clear();
	cr_assert_eq(txnlog_sync(l), -1);   /* never retried: the page cache may lie after a failed fsync */
	cr_assert_eq(fio_calls(FIO_FDATASYNC), 0);
	cr_assert_eq(txnlog_close(l), -1);
}

Test(txnlog, short_write_then_disk_full_is_not_durable_and_recovers_to_the_last_sync)
{
	struct txnlog *l = log_with(4, 0);
	fio_fault_add(&(struct fio_fault){ .op = FIO_PWRITE, .nth = 1, .err = ENOSPC, .partial = true });
	append_range(l, 5, 20);
	cr_assert_eq(txnlog_sync(l), -1);
	cr_assert_eq(txnlog_durable_zxid(l), 4);
	cr_assert_eq(fio_calls(FIO_PWRITE), 2);        /* the short one, then the refused retry */
	txnlog_close(l);
	fio_fault_clear();
	/* half a batch is on disk: replay keeps the whole records, cuts the rest */
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_geq(c.n, 4);
	cr_assert_lt(c.n, 20);
	cr_assert_eq(last, c.n);
}

Test(txnlog, failed_directory_fsync_is_not_durable)
{
	char err[256];
	struct txnlog *l = txnlog_open(dir, 4096, true, err, sizeof err);
	fio_fault_add(&(struct fio_fault){ .op = FIO_FSYNC, .nth = 1, .err = EIO });
	append_range(l, 1, 2);
	cr_assert_eq(txnlog_sync(l), -1);
	cr_assert_eq(txnlog_durable_zxid(l), -1);
	cr_assert(strstr(txnlog_error(l), "directory"), "%s", txnlog_error(l));
	txnlog_close(l);
}

Test(txnlog, failed_file_creation_is_reported)
{
	char err[256];
	struct txnlog *l = txnlog_open(dir, 4096, true, err, sizeof err);
	fio_fault_add(&(struct fio_fault){ .op = FIO_OPEN, .nth = 1, .err = EACCES });
	struct ztxn t = mk_any(1);
	cr_assert_eq(txnlog_append(l, &t), -1);
	ztxn_clear(&t);
	cr_assert_eq(txnlog_sync(l), -1);
	txnlog_close(l);
}

Test(txnlog, preallocation_without_space_falls_back_to_a_sparse_file)
{
	struct txnlog *l = log_with(0, 1 << 20);
	fio_fault_add(&(struct fio_fault){ .op = FIO_FALLOCATE, .nth = 1, .err = ENOSPC, .sticky = true });
	append_range(l, 1, 3);
	cr_assert_eq(txnlog_sync(l), 0, "%s", txnlog_error(l));
	cr_assert_eq(txnlog_durable_zxid(l), 3);
	cr_assert_eq(txnlog_close(l), 0);
	struct stat st;
	stat(vpath("log.1"), &st);
	cr_assert_eq(st.st_size, 1 << 20);
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), 0, "%s", err);
	cr_assert_eq(c.n, 3);
}

Test(txnlog, preallocation_io_error_fails)
{
	struct txnlog *l = log_with(0, 1 << 20);
	fio_fault_add(&(struct fio_fault){ .op = FIO_FALLOCATE, .nth = 1, .err = EIO });
	append_range(l, 1, 3);
	cr_assert_eq(txnlog_sync(l), -1);
	cr_assert_eq(txnlog_durable_zxid(l), -1);
	txnlog_close(l);
}

Test(txnlog, failed_close_at_roll_is_reported)
{
	struct txnlog *l = log_with(3, 4096);
	fio_fault_add(&(struct fio_fault){ .op = FIO_CLOSE, .nth = 1, .err = EIO });
	cr_assert_eq(txnlog_roll(l), -1);
	cr_assert_eq(txnlog_durable_zxid(l), 3);   /* the sync before the close did succeed */
	txnlog_close(l);
}

Test(txnlog, truncation_failure_during_repair_refuses)
{
	write_log(1, 5, 5, 0);
	size_t len;
	uint8_t *b = slurp(vpath("log.1"), &len);
	spit(vpath("log.1"), b, len - 3);
	free(b);
	fio_fault_add(&(struct fio_fault){ .op = FIO_FTRUNCATE, .nth = 1, .err = EROFS });
	struct collected c;
	int64_t last;
	char err[512];
	cr_assert_eq(replay(0, &c, &last, err, sizeof err), -1);
	cr_assert(strstr(err, "cannot truncate") && strstr(err, "log.1"), "%s", err);
}
