/*
 * test_records.c - the client-protocol records: every decoder against its
 * own encoding cut at every byte, against bad lengths and counts, and in
 * round trips; plus the error and opcode names.
 *
 * Records the server only reads (CreateRequest, SetWatches, ...) have no
 * rec_write_*; the tests encode them field by field with the jute writer,
 * following zookeeper.jute, which also pins the field order independently
 * of the decoder under test.
 *
 * Cut-short inputs live in heap blocks of exactly their length, so an
 * over-read is an AddressSanitizer crash rather than a silent success.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "net/records.h"

#define MAXBUF JUTE_DEFAULT_MAXBUFFER

/* ---- helpers ------------------------------------------------------------ */

/* Room for the output of any decoder. */
union any_rec {
	struct rec_connect_req connect_req;
	struct rec_connect_resp connect_resp;
	struct rec_request_header request_header;
	struct rec_reply_header reply_header;
	struct zk_stat stat;
	struct rec_acl_vec acl_vec;
	struct rec_str_vec str_vec;
	struct rec_create_req create_req;
	struct rec_path_version path_version;
	struct rec_path_watch path_watch;
	struct rec_set_data_req set_data;
	struct rec_set_acl_req set_acl;
	struct rec_path path;
	struct rec_path_mode path_mode;
	struct rec_auth_packet auth;
	struct rec_multi_header multi_header;
	struct rec_set_watches set_watches;
	struct rec_watcher_event watcher_event;
};

typedef int (*decode_fn)(struct jute_reader *r, union any_rec *out);

static int dec_connect_req(struct jute_reader *r, union any_rec *o) { return rec_read_connect_req(r, &o->connect_req); }
static int dec_connect_resp(struct jute_reader *r, union any_rec *o) { return rec_read_connect_resp(r, &o->connect_resp); }
static int dec_request_header(struct jute_reader *r, union any_rec *o) { return rec_read_request_header(r, &o->request_header); }
static int dec_reply_header(struct jute_reader *r, union any_rec *o) { return rec_read_reply_header(r, &o->reply_header); }
static int dec_stat(struct jute_reader *r, union any_rec *o) { return rec_read_stat(r, &o->stat); }
static int dec_acl_vec(struct jute_reader *r, union any_rec *o) { return rec_read_acl_vector(r, &o->acl_vec); }
static int dec_str_vec(struct jute_reader *r, union any_rec *o) { return rec_read_str_vector(r, &o->str_vec); }
static int dec_create(struct jute_reader *r, union any_rec *o) { return rec_read_create_req(r, false, &o->create_req); }
static int dec_create_ttl(struct jute_reader *r, union any_rec *o) { return rec_read_create_req(r, true, &o->create_req); }
static int dec_path_version(struct jute_reader *r, union any_rec *o) { return rec_read_path_version(r, &o->path_version); }
static int dec_path_watch(struct jute_reader *r, union any_rec *o) { return rec_read_path_watch(r, &o->path_watch); }
static int dec_set_data(struct jute_reader *r, union any_rec *o) { return rec_read_set_data_req(r, &o->set_data); }
static int dec_set_acl(struct jute_reader *r, union any_rec *o) { return rec_read_set_acl_req(r, &o->set_acl); }
static int dec_path(struct jute_reader *r, union any_rec *o) { return rec_read_path(r, &o->path); }
static int dec_path_mode(struct jute_reader *r, union any_rec *o) { return rec_read_path_mode(r, &o->path_mode); }
static int dec_auth(struct jute_reader *r, union any_rec *o) { return rec_read_auth_packet(r, &o->auth); }
static int dec_multi_header(struct jute_reader *r, union any_rec *o) { return rec_read_multi_header(r, &o->multi_header); }
static int dec_set_watches(struct jute_reader *r, union any_rec *o) { return rec_read_set_watches(r, false, &o->set_watches); }
static int dec_set_watches2(struct jute_reader *r, union any_rec *o) { return rec_read_set_watches(r, true, &o->set_watches); }
static int dec_watcher_event(struct jute_reader *r, union any_rec *o) { return rec_read_watcher_event(r, &o->watcher_event); }

static uint8_t *exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	cr_assert_not_null(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* An encoding under construction; finish() hands out the bytes. */
struct enc { struct jute_writer w; };

static void enc_init(struct enc *e) { jute_writer_init(&e->w, 0); }

static uint8_t *enc_finish(struct enc *e, size_t *len)
{
	cr_assert_eq(e->w.err, JUTE_OK);
	uint8_t *buf = jute_writer_take(&e->w, len);
	cr_assert_not_null(buf);
	return buf;
}

/*
 * Decodes buf[0, n) from an exact-size heap copy and returns the decoder's
 * result; *err gets the reader's error.
 */
static int decode_prefix(const uint8_t *buf, size_t n, size_t max_len, decode_fn dec, int *err)
{
	uint8_t *in = exact(buf, n);
	struct jute_reader r;
	union any_rec out;
	jute_reader_init(&r, in, n, max_len);
	int rc = dec(&r, &out);
	cr_assert_leq(r.off, n);
	*err = r.err;
	free(in);
	return rc;
}

/*
 * The full encoding decodes; every shorter prefix fails, except that a
 * record whose last `optional_tail` bytes are optional also decodes when cut
 * exactly before them. If any bound were missing, a prefix would "succeed"
 * or ASan would catch the over-read.
 */
static void check_every_cut(const uint8_t *buf, size_t len, decode_fn dec, size_t optional_tail)
{
	int err;
	cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec, &err), 0, "full encoding of %zu bytes", len);
	cr_assert_eq(err, JUTE_OK);
	for (size_t n = 0; n < len; n++) {
		int rc = decode_prefix(buf, n, MAXBUF, dec, &err);
		if (optional_tail && n == len - optional_tail) {
			cr_assert_eq(rc, 0, "cut before the optional tail (%zu of %zu)", n, len);
			continue;
		}
		cr_assert_eq(rc, -1, "prefix of %zu of %zu bytes decoded", n, len);
		cr_assert(err == JUTE_SHORT || err == JUTE_BADLEN, "prefix %zu: err %d", n, err);
	}
}

static bool buf_is(struct jute_buf b, const char *s)
{
	if (!s)
		return b.data == NULL && b.len == -1;
	size_t n = strlen(s);
	return b.data && b.len >= 0 && (size_t)b.len == n && memcmp(b.data, s, n) == 0;
}

/* A view handed out by a decoder must lie inside its input. */
static bool view_inside(struct jute_buf b, const uint8_t *in, size_t len)
{
	if (b.len == -1)
		return b.data == NULL;
	return b.len >= 0 && b.data >= in && (size_t)b.len <= len && b.data + b.len <= in + len;
}

struct acl_in { int32_t perms; const char *scheme, *id; };

static void enc_acls(struct jute_writer *w, const struct acl_in *a, int32_t n)
{
	jute_write_int(w, n);
	for (int32_t i = 0; i < n; i++)
		rec_write_acl(w, a[i].perms, a[i].scheme, a[i].id);
}

static void enc_strs(struct jute_writer *w, const char *const *s, int32_t n)
{
	jute_write_int(w, n);
	for (int32_t i = 0; i < n; i++)
		jute_write_string(w, s[i]);
}

static void check_acls(const struct rec_acl_vec *v, const struct acl_in *want, int32_t n)
{
	cr_assert_eq(v->count, n);
	size_t pos = 0;
	struct rec_acl a;
	for (int32_t i = 0; i < n; i++) {
		cr_assert(rec_acl_next(v, &pos, &a), "acl %d missing", i);
		cr_assert_eq(a.perms, want[i].perms);
		cr_assert(buf_is(a.scheme, want[i].scheme), "acl %d scheme", i);
		cr_assert(buf_is(a.id, want[i].id), "acl %d id", i);
	}
	cr_assert_not(rec_acl_next(v, &pos, &a), "more acls than count");
	cr_assert_eq(pos, v->len);
}

static void check_strs(const struct rec_str_vec *v, const char *const *want, int32_t n)
{
	cr_assert_eq(v->count, n);
	size_t pos = 0;
	struct jute_buf b;
	for (int32_t i = 0; i < n; i++) {
		cr_assert(rec_str_next(v, &pos, &b), "string %d missing", i);
		cr_assert(buf_is(b, want[i]), "string %d", i);
	}
	cr_assert_not(rec_str_next(v, &pos, &b), "more strings than count");
}

static const struct acl_in sample_acls[] = {
	{ ZPERM_ALL, "world", "anyone" },
	{ ZPERM_READ | ZPERM_ADMIN, "digest", "bob:4y+ZdLJ5fKVgmHEd3rUUY3gnOeM=" },
	{ ZPERM_CREATE, "ip", "10.0.0.0/8" },
};

/* ---- names --------------------------------------------------------------- */

Test(names, errors)
{
	cr_assert_str_eq(zk_err_name(ZOK), "OK");
	cr_assert_str_eq(zk_err_name(ZNONODE), "NoNode");
	cr_assert_str_eq(zk_err_name(ZNODEEXISTS), "NodeExists");
	cr_assert_str_eq(zk_err_name(ZBADVERSION), "BadVersion");
	cr_assert_str_eq(zk_err_name(ZNOTEMPTY), "NotEmpty");
	cr_assert_str_eq(zk_err_name(ZSESSIONEXPIRED), "SessionExpired");
	cr_assert_str_eq(zk_err_name(ZINVALIDACL), "InvalidACL");
	cr_assert_str_eq(zk_err_name(ZAPIERROR), "APIError");
	cr_assert_str_eq(zk_err_name(ZUNKNOWNSESSION), "UnknownSession");
	cr_assert_str_eq(zk_err_name(ZTHROTTLEDOP), "ThrottledOp");
	cr_assert_str_eq(zk_err_name(12345), "Unknown");
	cr_assert_str_eq(zk_err_name(-104), "Unknown");
}

Test(names, every_error_code_has_a_name)
{
	static const int codes[] = {
		ZOK, ZSYSTEMERROR, ZRUNTIMEINCONSISTENCY, ZDATAINCONSISTENCY,
		ZCONNECTIONLOSS, ZMARSHALLINGERROR, ZUNIMPLEMENTED, ZOPERATIONTIMEOUT,
		ZBADARGUMENTS, ZNEWCONFIGNOQUORUM, ZRECONFIGINPROGRESS, ZUNKNOWNSESSION,
		ZAPIERROR, ZNONODE, ZNOAUTH, ZBADVERSION, ZNOCHILDRENFOREPHEMERALS,
		ZNODEEXISTS, ZNOTEMPTY, ZSESSIONEXPIRED, ZINVALIDCALLBACK, ZINVALIDACL,
		ZAUTHFAILED, ZSESSIONMOVED, ZNOTREADONLY, ZEPHEMERALONLOCALSESSION,
		ZNOWATCHER, ZRECONFIGDISABLED, ZSESSIONCLOSEDREQUIRESASLAUTH,
		ZQUOTAEXCEEDED, ZTHROTTLEDOP,
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		cr_assert_str_neq(zk_err_name(codes[i]), "Unknown", "code %d", codes[i]);
}

Test(names, ops)
{
	cr_assert_str_eq(zk_op_name(ZOP_CREATE), "create");
	cr_assert_str_eq(zk_op_name(ZOP_GETDATA), "getData");
	cr_assert_str_eq(zk_op_name(ZOP_GETCHILDREN2), "getChildren2");
	cr_assert_str_eq(zk_op_name(ZOP_CREATETTL), "createTTL");
	cr_assert_str_eq(zk_op_name(ZOP_SETWATCHES2), "setWatches2");
	cr_assert_str_eq(zk_op_name(ZOP_CREATESESSION), "createSession");
	cr_assert_str_eq(zk_op_name(ZOP_CLOSE), "closeSession");
	cr_assert_str_eq(zk_op_name(ZOP_PING), "ping");
	cr_assert_str_eq(zk_op_name(10), "unknown");
	cr_assert_str_eq(zk_op_name(999), "unknown");
}

/* ---- connect ------------------------------------------------------------ */

static uint8_t *sample_connect_req(bool with_read_only, bool read_only, size_t *len)
{
	struct enc e;
	enc_init(&e);
	jute_write_int(&e.w, 0);
	jute_write_long(&e.w, 0x0000000100000005LL);
	jute_write_int(&e.w, 30000);
	jute_write_long(&e.w, 0x1000a2b3c4d0000LL);
	jute_write_buffer(&e.w, "0123456789abcdef", 16);
	if (with_read_only)
		jute_write_bool(&e.w, read_only);
	return enc_finish(&e, len);
}

Test(connect_req, with_read_only)
{
	size_t len;
	uint8_t *buf = sample_connect_req(true, true, &len);
	cr_assert_eq(len, 4 + 8 + 4 + 8 + 4 + 16 + 1);
	struct jute_reader r;
	struct rec_connect_req c;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &c), 0);
	cr_assert_eq(c.protocol_version, 0);
	cr_assert_eq(c.last_zxid_seen, 0x0000000100000005LL);
	cr_assert_eq(c.timeout, 30000);
	cr_assert_eq(c.session_id, 0x1000a2b3c4d0000LL);
	cr_assert_eq(c.passwd.len, 16);
	cr_assert_arr_eq(c.passwd.data, "0123456789abcdef", 16);
	cr_assert(c.read_only);
	cr_assert_eq(jute_remaining(&r), 0);
	free(buf);
}

Test(connect_req, read_only_absent_is_false_not_an_error)
{
	size_t len;
	uint8_t *buf = sample_connect_req(false, false, &len);
	uint8_t *in = exact(buf, len);
	struct jute_reader r;
	struct rec_connect_req c;
	c.read_only = true;
	jute_reader_init(&r, in, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &c), 0);
	cr_assert(jute_ok(&r));
	cr_assert_not(c.read_only);
	cr_assert_eq(c.passwd.len, 16);
	free(in);
	free(buf);
}

Test(connect_req, read_only_false_and_nonzero)
{
	size_t len;
	uint8_t *buf = sample_connect_req(true, false, &len);
	struct jute_reader r;
	struct rec_connect_req c;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &c), 0);
	cr_assert_not(c.read_only);

	buf[len - 1] = 0x80;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &c), 0);
	cr_assert(c.read_only);
	free(buf);
}

Test(connect_req, every_cut)
{
	size_t len;
	uint8_t *buf = sample_connect_req(true, true, &len);
	check_every_cut(buf, len, dec_connect_req, 1);
	free(buf);
	/* Without the flag, every cut fails. */
	buf = sample_connect_req(false, false, &len);
	check_every_cut(buf, len, dec_connect_req, 0);
	free(buf);
}

Test(connect_req, round_trip)
{
	struct rec_connect_req in = {
		.protocol_version = 0, .last_zxid_seen = -1, .timeout = 4000,
		.session_id = INT64_MIN + 3,
		.passwd = { (const uint8_t *)"pw", 2 }, .read_only = true,
	};
	struct enc e;
	enc_init(&e);
	rec_write_connect_req(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_connect_req out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &out), 0);
	cr_assert_eq(out.protocol_version, in.protocol_version);
	cr_assert_eq(out.last_zxid_seen, in.last_zxid_seen);
	cr_assert_eq(out.timeout, in.timeout);
	cr_assert_eq(out.session_id, in.session_id);
	cr_assert(buf_is(out.passwd, "pw"));
	cr_assert_eq(out.read_only, true);
	cr_assert_eq(jute_remaining(&r), 0);
	free(buf);
}

Test(connect_req, null_and_bad_passwd)
{
	struct rec_connect_req in = { .timeout = 1, .passwd = { NULL, -1 } };
	struct enc e;
	enc_init(&e);
	rec_write_connect_req(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_connect_req out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &out), 0, "a null password is the server's call");
	cr_assert_null(out.passwd.data);
	cr_assert_eq(out.passwd.len, -1);

	/* passwd length sits after int+long+int+long = 24 bytes. */
	jute_put_u32(buf + 24, (uint32_t)-2);
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &out), -1);
	cr_assert_eq(r.err, JUTE_BADLEN);

	/* Longer than max_len, and longer than the input. */
	jute_put_u32(buf + 24, 0x7fffffff);
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &out), -1);
	cr_assert_eq(r.err, JUTE_BADLEN);
	free(buf);
}

Test(connect_req, trailing_bytes_are_ignored)
{
	size_t len;
	uint8_t *buf = sample_connect_req(true, true, &len);
	uint8_t *big = calloc(1, len + 10);
	cr_assert_not_null(big);
	memcpy(big, buf, len);
	struct jute_reader r;
	struct rec_connect_req c;
	jute_reader_init(&r, big, len + 10, MAXBUF);
	cr_assert_eq(rec_read_connect_req(&r, &c), 0);
	cr_assert(c.read_only);
	cr_assert_eq(jute_remaining(&r), 10);
	free(big);
	free(buf);
}

Test(connect_resp, round_trip_and_every_cut)
{
	static const uint8_t pw[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	struct rec_connect_resp in = {
		.protocol_version = 0, .timeout = 30000, .session_id = 0x7234567890abcdefLL,
		.passwd = pw, .passwd_len = 16, .read_only = true,
	};
	struct enc e;
	enc_init(&e);
	rec_write_connect_resp(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	cr_assert_eq(len, 4 + 4 + 8 + 4 + 16 + 1);
	struct jute_reader r;
	struct rec_connect_resp out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_resp(&r, &out), 0);
	cr_assert_eq(out.protocol_version, 0);
	cr_assert_eq(out.timeout, 30000);
	cr_assert_eq(out.session_id, 0x7234567890abcdefLL);
	cr_assert_eq(out.passwd_len, 16);
	cr_assert_arr_eq(out.passwd, pw, 16);
	cr_assert(out.read_only);
	check_every_cut(buf, len, dec_connect_resp, 1);
	free(buf);
}

Test(connect_resp, null_passwd)
{
	struct rec_connect_resp in = { .timeout = 5, .passwd = NULL, .passwd_len = -1 };
	struct enc e;
	enc_init(&e);
	rec_write_connect_resp(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_connect_resp out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_connect_resp(&r, &out), 0);
	cr_assert_null(out.passwd);
	cr_assert_eq(out.passwd_len, -1);
	cr_assert_not(out.read_only);
	free(buf);
}

/* ---- headers and stat ----------------------------------------------------- */

Test(headers, request_header)
{
	struct rec_request_header in = { .xid = 0x01020304, .type = ZOP_GETCHILDREN2 };
	struct enc e;
	enc_init(&e);
	rec_write_request_header(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	static const uint8_t want[] = { 1, 2, 3, 4, 0, 0, 0, 12 };
	cr_assert_eq(len, sizeof want);
	cr_assert_arr_eq(buf, want, sizeof want);
	struct jute_reader r;
	struct rec_request_header out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_request_header(&r, &out), 0);
	cr_assert_eq(out.xid, in.xid);
	cr_assert_eq(out.type, in.type);
	check_every_cut(buf, len, dec_request_header, 0);
	free(buf);
}

Test(headers, reply_header)
{
	struct rec_reply_header in = { .xid = ZXID_NOTIFICATION, .zxid = 0x500000007LL, .err = ZNONODE };
	struct enc e;
	enc_init(&e);
	rec_write_reply_header(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	cr_assert_eq(len, 16);
	cr_assert_eq(jute_get_u32(buf), 0xffffffffu);
	cr_assert_eq(jute_get_u32(buf + 12), (uint32_t)ZNONODE);
	struct jute_reader r;
	struct rec_reply_header out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_reply_header(&r, &out), 0);
	cr_assert_eq(out.xid, in.xid);
	cr_assert_eq(out.zxid, in.zxid);
	cr_assert_eq(out.err, in.err);
	check_every_cut(buf, len, dec_reply_header, 0);
	free(buf);
}

Test(stat, wire_order_round_trip_and_every_cut)
{
	struct zk_stat in = {
		.czxid = 0x1111111111111111LL, .mzxid = 0x2222222222222222LL,
		.ctime = 0x3333333333333333LL, .mtime = 0x4444444444444444LL,
		.version = 0x55555555, .cversion = 0x66666666, .aversion = 0x77777777,
		.ephemeral_owner = 0x0888888888888888LL,
		.data_length = 0x09999999, .num_children = 0x0aaaaaaa,
		.pzxid = 0x0bbbbbbbbbbbbbbbLL,
	};
	struct enc e;
	enc_init(&e);
	rec_write_stat(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	cr_assert_eq(len, 68);
	/* The documented wire order, by offset. */
	cr_assert_eq(buf[0], 0x11);
	cr_assert_eq(buf[8], 0x22);
	cr_assert_eq(buf[16], 0x33);
	cr_assert_eq(buf[24], 0x44);
	cr_assert_eq(buf[32], 0x55);
	cr_assert_eq(buf[36], 0x66);
	cr_assert_eq(buf[40], 0x77);
	cr_assert_eq(buf[44], 0x08);
	cr_assert_eq(buf[52], 0x09);
	cr_assert_eq(buf[56], 0x0a);
	cr_assert_eq(buf[60], 0x0b);
	struct jute_reader r;
	struct zk_stat out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_stat(&r, &out), 0);
	/* Field by field: the struct has padding, so memcmp would compare junk. */
	cr_assert_eq(out.czxid, in.czxid);
	cr_assert_eq(out.mzxid, in.mzxid);
	cr_assert_eq(out.ctime, in.ctime);
	cr_assert_eq(out.mtime, in.mtime);
	cr_assert_eq(out.version, in.version);
	cr_assert_eq(out.cversion, in.cversion);
	cr_assert_eq(out.aversion, in.aversion);
	cr_assert_eq(out.ephemeral_owner, in.ephemeral_owner);
	cr_assert_eq(out.data_length, in.data_length);
	cr_assert_eq(out.num_children, in.num_children);
	cr_assert_eq(out.pzxid, in.pzxid);
	check_every_cut(buf, len, dec_stat, 0);
	free(buf);
}

/* ---- ACL vectors ----------------------------------------------------------- */

Test(acl_vector, round_trip_and_span)
{
	struct enc e;
	enc_init(&e);
	enc_acls(&e.w, sample_acls, 3);
	jute_write_int(&e.w, 0x5a5a5a5a);   /* whatever follows the vector */
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_acl_vec v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_acl_vector(&r, &v), 0);
	cr_assert_eq(v.p, buf + 4, "the span starts after the count");
	cr_assert_eq(v.len, len - 8, "the span ends where the vector ends");
	check_acls(&v, sample_acls, 3);
	cr_assert_eq(jute_read_int(&r), 0x5a5a5a5a, "the reader stops right after the vector");
	free(buf);
}

Test(acl_vector, every_cut)
{
	struct enc e;
	enc_init(&e);
	enc_acls(&e.w, sample_acls, 3);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	check_every_cut(buf, len, dec_acl_vec, 0);
	free(buf);
}

Test(acl_vector, null_is_count_minus_one)
{
	uint8_t in[4];
	jute_put_u32(in, (uint32_t)-1);
	struct jute_reader r;
	struct rec_acl_vec v;
	jute_reader_init(&r, in, sizeof in, MAXBUF);
	cr_assert_eq(rec_read_acl_vector(&r, &v), 0);
	cr_assert_eq(v.count, -1);
	cr_assert_eq(v.len, 0);
	size_t pos = 0;
	struct rec_acl a;
	cr_assert_not(rec_acl_next(&v, &pos, &a));
}

Test(acl_vector, empty)
{
	uint8_t in[4] = { 0 };
	struct jute_reader r;
	struct rec_acl_vec v;
	jute_reader_init(&r, in, sizeof in, MAXBUF);
	cr_assert_eq(rec_read_acl_vector(&r, &v), 0);
	cr_assert_eq(v.count, 0);
	size_t pos = 0;
	struct rec_acl a;
	cr_assert_not(rec_acl_next(&v, &pos, &a));
}

Test(acl_vector, null_scheme_and_id_are_valid_jute)
{
	static const struct acl_in acls[] = { { 1, NULL, NULL }, { 2, "world", NULL } };
	struct enc e;
	enc_init(&e);
	enc_acls(&e.w, acls, 2);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_acl_vec v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_acl_vector(&r, &v), 0);
	check_acls(&v, acls, 2);
	free(buf);
}

Test(acl_vector, bad_counts)
{
	static const int32_t counts[] = { INT32_MAX, 0x10000000, 3 };
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		/* Room for two minimal (12-byte) ACLs: a count of 3 or more is
		 * impossible before a single element is read. */
		uint8_t in[4 + 24];
		memset(in, 0xff, sizeof in);
		jute_put_u32(in, (uint32_t)counts[i]);
		jute_put_u32(in + 4, 1);
		jute_put_u32(in + 16, 1);
		struct jute_reader r;
		struct rec_acl_vec v;
		jute_reader_init(&r, in, sizeof in, MAXBUF);
		cr_assert_eq(rec_read_acl_vector(&r, &v), -1, "count %d", counts[i]);
		cr_assert_eq(r.err, JUTE_BADLEN, "count %d", counts[i]);
		cr_assert_eq(r.off, 4, "no element was read for count %d", counts[i]);
	}
}

/* Negative counts other than -1 are empty vectors, as Java reads them. */
Test(acl_vector, negative_count_is_empty)
{
	static const int32_t counts[] = { -2, INT32_MIN };
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		uint8_t in[4];
		jute_put_u32(in, (uint32_t)counts[i]);
		struct jute_reader r;
		struct rec_acl_vec v;
		jute_reader_init(&r, in, sizeof in, MAXBUF);
		cr_assert_eq(rec_read_acl_vector(&r, &v), 0, "count %d", counts[i]);
		cr_assert_eq(v.count, 0);
		size_t pos = 0;
		struct rec_acl a;
		cr_assert_not(rec_acl_next(&v, &pos, &a));
	}
}

Test(acl_vector, count_at_plausibility_limit)
{
	/* Two minimal ACLs exactly fill the input: accepted. */
	uint8_t in[4 + 24];
	memset(in, 0xff, sizeof in);
	jute_put_u32(in, 2);
	jute_put_u32(in + 4, 1);
	jute_put_u32(in + 16, 1);
	struct jute_reader r;
	struct rec_acl_vec v;
	jute_reader_init(&r, in, sizeof in, MAXBUF);
	cr_assert_eq(rec_read_acl_vector(&r, &v), 0);
	cr_assert_eq(v.count, 2);
	cr_assert_eq(v.len, 24);
}

Test(acl_vector, count_over_max_len)
{
	struct enc e;
	enc_init(&e);
	enc_acls(&e.w, sample_acls, 3);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	int err;
	cr_assert_eq(decode_prefix(buf, len, 2, dec_acl_vec, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
}

Test(acl_vector, bad_element_lengths)
{
	/* Patch the first ACL's scheme length (after count and perms). */
	static const int32_t lens[] = { -2, INT32_MIN, MAXBUF + 1, 1000 };
	static const int want_err[] = { JUTE_BADLEN, JUTE_BADLEN, JUTE_BADLEN, JUTE_SHORT };
	for (size_t i = 0; i < 4; i++) {
		struct enc e;
		enc_init(&e);
		enc_acls(&e.w, sample_acls, 3);
		size_t len;
		uint8_t *buf = enc_finish(&e, &len);
		jute_put_u32(buf + 8, (uint32_t)lens[i]);
		int err;
		cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec_acl_vec, &err), -1, "len %d", lens[i]);
		cr_assert_eq(err, want_err[i], "len %d", lens[i]);
		free(buf);
	}
}

Test(acl_vector, bad_last_element_fails_whole_vector)
{
	struct enc e;
	enc_init(&e);
	enc_acls(&e.w, sample_acls, 3);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	/* The last id ("10.0.0.0/8", 10 bytes) has its length at len - 14. */
	jute_put_u32(buf + len - 14, 11);
	int err;
	cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec_acl_vec, &err), -1,
		     "every element is validated, not just the first");
	cr_assert_eq(err, JUTE_SHORT);
	free(buf);
}

Test(acl_vector, iterator_stops_on_a_corrupt_span)
{
	/* A span that never went through rec_read_acl_vector (say, from a
	 * damaged snapshot): the iterator must stop, not over-read. */
	struct enc e;
	enc_init(&e);
	rec_write_acl(&e.w, 31, "world", "anyone");
	rec_write_acl(&e.w, 1, "x", "y");
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	jute_put_u32(buf + len - 5, 200);   /* the second id's length */
	uint8_t *span = exact(buf, len);
	struct rec_acl_vec v = { span, len, 2 };
	size_t pos = 0;
	struct rec_acl a;
	cr_assert(rec_acl_next(&v, &pos, &a));
	cr_assert(buf_is(a.id, "anyone"));
	cr_assert_not(rec_acl_next(&v, &pos, &a));
	/* A position past the end is also just the end. */
	pos = len + 100;
	cr_assert_not(rec_acl_next(&v, &pos, &a));
	free(span);
	free(buf);
}

/* ---- string vectors ------------------------------------------------------ */

Test(str_vector, round_trip_span_and_every_cut)
{
	static const char *const strs[] = { "/a", "", "/b/c", NULL, "/zk" };
	struct enc e;
	enc_init(&e);
	enc_strs(&e.w, strs, 5);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_str_vec v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_str_vector(&r, &v), 0);
	cr_assert_eq(v.p, buf + 4);
	cr_assert_eq(v.len, len - 4);
	check_strs(&v, strs, 5);
	check_every_cut(buf, len, dec_str_vec, 0);
	free(buf);
}

Test(str_vector, null_and_empty)
{
	uint8_t in[8];
	jute_put_u32(in, (uint32_t)-1);
	jute_put_u32(in + 4, 0);
	struct jute_reader r;
	struct rec_str_vec v;
	jute_reader_init(&r, in, sizeof in, MAXBUF);
	cr_assert_eq(rec_read_str_vector(&r, &v), 0);
	cr_assert_eq(v.count, -1);
	size_t pos = 0;
	struct jute_buf b;
	cr_assert_not(rec_str_next(&v, &pos, &b));
	cr_assert_eq(rec_read_str_vector(&r, &v), 0);
	cr_assert_eq(v.count, 0);
	cr_assert_not(rec_str_next(&v, &pos, &b));
}

Test(str_vector, bad_counts)
{
	static const int32_t counts[] = { INT32_MAX, 5 };
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		uint8_t in[4 + 16];
		memset(in, 0xff, sizeof in);   /* four null strings */
		jute_put_u32(in, (uint32_t)counts[i]);
		struct jute_reader r;
		struct rec_str_vec v;
		jute_reader_init(&r, in, sizeof in, MAXBUF);
		cr_assert_eq(rec_read_str_vector(&r, &v), -1, "count %d", counts[i]);
		cr_assert_eq(r.err, JUTE_BADLEN, "count %d", counts[i]);
	}
	/* Four null strings exactly fill it. */
	uint8_t in[4 + 16];
	memset(in, 0xff, sizeof in);
	jute_put_u32(in, 4);
	struct jute_reader r;
	struct rec_str_vec v;
	jute_reader_init(&r, in, sizeof in, MAXBUF);
	cr_assert_eq(rec_read_str_vector(&r, &v), 0);
	check_strs(&v, (const char *const[]){ NULL, NULL, NULL, NULL }, 4);
}

Test(str_vector, count_over_max_len)
{
	static const char *const strs[] = { "a", "b", "c" };
	struct enc e;
	enc_init(&e);
	enc_strs(&e.w, strs, 3);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	int err;
	cr_assert_eq(decode_prefix(buf, len, 2, dec_str_vec, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
}

Test(str_vector, bad_element_lengths)
{
	static const char *const strs[] = { "/one", "/two" };
	static const int32_t lens[] = { -2, INT32_MIN, MAXBUF + 1, 5 };
	static const int want_err[] = { JUTE_BADLEN, JUTE_BADLEN, JUTE_BADLEN, JUTE_SHORT };
	for (size_t i = 0; i < 4; i++) {
		struct enc e;
		enc_init(&e);
		enc_strs(&e.w, strs, 2);
		size_t len;
		uint8_t *buf = enc_finish(&e, &len);
		jute_put_u32(buf + 12, (uint32_t)lens[i]);   /* the second string */
		int err;
		cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec_str_vec, &err), -1, "len %d", lens[i]);
		cr_assert_eq(err, want_err[i], "len %d", lens[i]);
		free(buf);
	}
}

Test(str_vector, iterator_stops_on_a_corrupt_span)
{
	uint8_t span[4 + 2];
	jute_put_u32(span, 3);
	span[4] = 'a';
	span[5] = 'b';
	uint8_t *in = exact(span, sizeof span);
	struct rec_str_vec v = { in, sizeof span, 1 };
	size_t pos = 0;
	struct jute_buf b;
	cr_assert_not(rec_str_next(&v, &pos, &b));
	cr_assert_eq(pos, 0);
	free(in);
}

/* ---- create ---------------------------------------------------------------- */

static uint8_t *sample_create(const char *path, const void *data, int32_t data_len,
			      const struct acl_in *acls, int32_t nacl, int32_t flags,
			      bool ttl, int64_t ttl_ms, size_t *len)
{
	struct enc e;
	enc_init(&e);
	jute_write_string(&e.w, path);
	jute_write_buffer(&e.w, data, data_len);
	if (acls)
		enc_acls(&e.w, acls, nacl);
	else
		jute_write_int(&e.w, -1);
	jute_write_int(&e.w, flags);
	if (ttl)
		jute_write_long(&e.w, ttl_ms);
	return enc_finish(&e, len);
}

Test(create, round_trip)
{
	size_t len;
	uint8_t *buf = sample_create("/app/node", "\0data\xff", 6, sample_acls, 3,
				     ZCM_EPHEMERAL_SEQUENTIAL, false, 0, &len);
	struct jute_reader r;
	struct rec_create_req c;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_create_req(&r, false, &c), 0);
	cr_assert(buf_is(c.path, "/app/node"));
	cr_assert_eq(c.data.len, 6);
	cr_assert_arr_eq(c.data.data, "\0data\xff", 6);
	check_acls(&c.acl, sample_acls, 3);
	cr_assert_eq(c.flags, ZCM_EPHEMERAL_SEQUENTIAL);
	cr_assert_eq(c.ttl, -1, "no TTL is -1, as in ZooKeeper");
	cr_assert_eq(jute_remaining(&r), 0);
	check_every_cut(buf, len, dec_create, 0);
	free(buf);
}

Test(create, ttl_round_trip)
{
	size_t len;
	uint8_t *buf = sample_create("/t", NULL, -1, sample_acls, 1,
				     ZCM_PERSISTENT_WITH_TTL, true, 0x123456789aLL, &len);
	struct jute_reader r;
	struct rec_create_req c;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_create_req(&r, true, &c), 0);
	cr_assert(buf_is(c.path, "/t"));
	cr_assert_null(c.data.data);
	cr_assert_eq(c.data.len, -1);
	check_acls(&c.acl, sample_acls, 1);
	cr_assert_eq(c.flags, ZCM_PERSISTENT_WITH_TTL);
	cr_assert_eq(c.ttl, 0x123456789aLL);
	cr_assert_eq(jute_remaining(&r), 0);
	/* The TTL is required for createTTL: every cut, including the one
	 * that drops exactly the ttl, fails. */
	check_every_cut(buf, len, dec_create_ttl, 0);
	free(buf);
}

Test(create, null_acl_is_not_a_decode_error)
{
	size_t len;
	uint8_t *buf = sample_create("/n", "", 0, NULL, 0, 0, false, 0, &len);
	struct jute_reader r;
	struct rec_create_req c;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_create_req(&r, false, &c), 0);
	cr_assert_eq(c.acl.count, -1);
	cr_assert_eq(c.flags, 0);
	free(buf);
}

Test(create, data_over_max_len)
{
	enum { MAX = 16 };
	char data[MAX + 1];
	memset(data, 'd', sizeof data);
	size_t len;
	uint8_t *buf = sample_create("/big", data, MAX + 1, sample_acls, 1, 0, false, 0, &len);
	int err;
	cr_assert_eq(decode_prefix(buf, len, MAX, dec_create, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
	buf = sample_create("/big", data, MAX, sample_acls, 1, 0, false, 0, &len);
	cr_assert_eq(decode_prefix(buf, len, MAX, dec_create, &err), 0);
	free(buf);
}

Test(create, negative_path_length)
{
	size_t len;
	uint8_t *buf = sample_create("/x", "", 0, sample_acls, 1, 0, false, 0, &len);
	jute_put_u32(buf, (uint32_t)-7);
	int err;
	cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec_create, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
}

Test(create, bad_acl_count)
{
	size_t len;
	uint8_t *buf = sample_create("/x", "", 0, sample_acls, 1, 0, false, 0, &len);
	jute_put_u32(buf + 6 + 4, 0x7fffffff);   /* after path "/x" and empty data */
	int err;
	cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec_create, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
}

/* ---- small path records ------------------------------------------------- */

Test(path_records, path_version)
{
	struct enc e;
	enc_init(&e);
	jute_write_string(&e.w, "/del");
	jute_write_int(&e.w, -1);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_path_version v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_path_version(&r, &v), 0);
	cr_assert(buf_is(v.path, "/del"));
	cr_assert_eq(v.version, -1);
	check_every_cut(buf, len, dec_path_version, 0);
	free(buf);
}

Test(path_records, path_watch)
{
	for (int watch = 0; watch < 2; watch++) {
		struct enc e;
		enc_init(&e);
		jute_write_string(&e.w, "/w");
		jute_write_bool(&e.w, watch);
		size_t len;
		uint8_t *buf = enc_finish(&e, &len);
		struct jute_reader r;
		struct rec_path_watch v;
		jute_reader_init(&r, buf, len, MAXBUF);
		cr_assert_eq(rec_read_path_watch(&r, &v), 0);
		cr_assert(buf_is(v.path, "/w"));
		cr_assert_eq(v.watch, (bool)watch);
		check_every_cut(buf, len, dec_path_watch, 0);
		free(buf);
	}
}

Test(path_records, set_data)
{
	struct enc e;
	enc_init(&e);
	jute_write_string(&e.w, "/s");
	jute_write_buffer(&e.w, "v\0v", 3);
	jute_write_int(&e.w, 42);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_set_data_req v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_set_data_req(&r, &v), 0);
	cr_assert(buf_is(v.path, "/s"));
	cr_assert_eq(v.data.len, 3);
	cr_assert_arr_eq(v.data.data, "v\0v", 3);
	cr_assert_eq(v.version, 42);
	check_every_cut(buf, len, dec_set_data, 0);
	/* Data longer than max_len (the path is not), with the bytes present. */
	int err;
	cr_assert_eq(decode_prefix(buf, len, 2, dec_set_data, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
}

Test(path_records, set_acl)
{
	struct enc e;
	enc_init(&e);
	jute_write_string(&e.w, "/sa");
	enc_acls(&e.w, sample_acls, 2);
	jute_write_int(&e.w, 7);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_set_acl_req v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_set_acl_req(&r, &v), 0);
	cr_assert(buf_is(v.path, "/sa"));
	check_acls(&v.acl, sample_acls, 2);
	cr_assert_eq(v.version, 7, "the version follows the whole ACL vector");
	check_every_cut(buf, len, dec_set_acl, 0);
	free(buf);
}

Test(path_records, path_and_null_path)
{
	struct enc e;
	enc_init(&e);
	jute_write_string(&e.w, "/sync/me");
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_path v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_path(&r, &v), 0);
	cr_assert(buf_is(v.path, "/sync/me"));
	check_every_cut(buf, len, dec_path, 0);
	free(buf);

	uint8_t null_path[4];
	jute_put_u32(null_path, (uint32_t)-1);
	jute_reader_init(&r, null_path, 4, MAXBUF);
	cr_assert_eq(rec_read_path(&r, &v), 0, "null paths are the server's to reject");
	cr_assert_null(v.path.data);
	cr_assert_eq(v.path.len, -1);
}

Test(path_records, path_mode)
{
	struct enc e;
	enc_init(&e);
	jute_write_string(&e.w, "/aw");
	jute_write_int(&e.w, 1);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_path_mode v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_path_mode(&r, &v), 0);
	cr_assert(buf_is(v.path, "/aw"));
	cr_assert_eq(v.mode, 1);
	check_every_cut(buf, len, dec_path_mode, 0);
	free(buf);
}

/* ---- auth, multi, watches ---------------------------------------------- */

Test(auth_packet, round_trip_and_every_cut)
{
	struct enc e;
	enc_init(&e);
	jute_write_int(&e.w, 0);
	jute_write_string(&e.w, "digest");
	jute_write_buffer(&e.w, "user:pass", 9);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_auth_packet v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_auth_packet(&r, &v), 0);
	cr_assert_eq(v.type, 0);
	cr_assert(buf_is(v.scheme, "digest"));
	cr_assert(buf_is(v.auth, "user:pass"));
	check_every_cut(buf, len, dec_auth, 0);
	/* auth length over the bound, bytes present */
	int err;
	cr_assert_eq(decode_prefix(buf, len, 8, dec_auth, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
}

Test(multi_header, round_trip_and_every_cut)
{
	struct rec_multi_header in = { .type = ZOP_ERROR, .done = true, .err = ZBADVERSION };
	struct enc e;
	enc_init(&e);
	rec_write_multi_header(&e.w, &in);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	static const uint8_t want[] = { 0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0x99 };
	cr_assert_eq(len, sizeof want);
	cr_assert_arr_eq(buf, want, sizeof want);
	struct jute_reader r;
	struct rec_multi_header out;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_multi_header(&r, &out), 0);
	cr_assert_eq(out.type, in.type);
	cr_assert_eq(out.done, in.done);
	cr_assert_eq(out.err, in.err);
	check_every_cut(buf, len, dec_multi_header, 0);
	free(buf);
}

static const char *const w_data[] = { "/d1", "/d2" };
static const char *const w_exist[] = { "/e1" };
static const char *const w_child[] = { "/c1", "/c2", "/c3" };
static const char *const w_pers[] = { "/p" };
static const char *const w_rec[] = { "/r1", "/r2" };

static uint8_t *sample_set_watches(bool v2, size_t *len)
{
	struct enc e;
	enc_init(&e);
	jute_write_long(&e.w, 0x600000009LL);
	enc_strs(&e.w, w_data, 2);
	enc_strs(&e.w, w_exist, 1);
	enc_strs(&e.w, w_child, 3);
	if (v2) {
		enc_strs(&e.w, w_pers, 1);
		enc_strs(&e.w, w_rec, 2);
	}
	return enc_finish(&e, len);
}

Test(set_watches, v1_round_trip_and_every_cut)
{
	size_t len;
	uint8_t *buf = sample_set_watches(false, &len);
	struct jute_reader r;
	struct rec_set_watches v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_set_watches(&r, false, &v), 0);
	cr_assert_eq(v.relative_zxid, 0x600000009LL);
	check_strs(&v.data, w_data, 2);
	check_strs(&v.exist, w_exist, 1);
	check_strs(&v.child, w_child, 3);
	check_strs(&v.persistent, NULL, 0);
	check_strs(&v.persistent_recursive, NULL, 0);
	cr_assert_eq(jute_remaining(&r), 0);
	check_every_cut(buf, len, dec_set_watches, 0);
	free(buf);
}

Test(set_watches, v2_round_trip_and_every_cut)
{
	size_t len;
	uint8_t *buf = sample_set_watches(true, &len);
	struct jute_reader r;
	struct rec_set_watches v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_set_watches(&r, true, &v), 0);
	cr_assert_eq(v.relative_zxid, 0x600000009LL);
	check_strs(&v.data, w_data, 2);
	check_strs(&v.exist, w_exist, 1);
	check_strs(&v.child, w_child, 3);
	check_strs(&v.persistent, w_pers, 1);
	check_strs(&v.persistent_recursive, w_rec, 2);
	cr_assert_eq(jute_remaining(&r), 0);
	check_every_cut(buf, len, dec_set_watches2, 0);
	free(buf);
}

Test(set_watches, v2_needs_the_persistent_vectors)
{
	/* A v1 body read as v2 is short. */
	size_t len;
	uint8_t *buf = sample_set_watches(false, &len);
	int err;
	cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec_set_watches2, &err), -1);
	cr_assert_eq(err, JUTE_SHORT);
	free(buf);
}

Test(set_watches, huge_count_in_a_later_vector)
{
	size_t len;
	uint8_t *buf = sample_set_watches(true, &len);
	/* The last vector's count: 2 strings of 3 bytes (7 each) + count = 18. */
	jute_put_u32(buf + len - 18, 0x40000000);
	int err;
	cr_assert_eq(decode_prefix(buf, len, MAXBUF, dec_set_watches2, &err), -1);
	cr_assert_eq(err, JUTE_BADLEN);
	free(buf);
}

Test(watcher_event, round_trip_and_every_cut)
{
	struct enc e;
	enc_init(&e);
	rec_write_watcher_event(&e.w, ZEV_CHILDREN_CHANGED, ZSTATE_SYNC_CONNECTED, "/a/b/c", 4);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	cr_assert_eq(len, 4 + 4 + 4 + 4, "path_len bytes, not strlen");
	struct jute_reader r;
	struct rec_watcher_event v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_watcher_event(&r, &v), 0);
	cr_assert_eq(v.type, ZEV_CHILDREN_CHANGED);
	cr_assert_eq(v.state, ZSTATE_SYNC_CONNECTED);
	cr_assert_eq(v.path_len, 4);
	cr_assert_arr_eq(v.path, "/a/b", 4);
	check_every_cut(buf, len, dec_watcher_event, 0);
	free(buf);
}

Test(watcher_event, null_path)
{
	struct enc e;
	enc_init(&e);
	rec_write_watcher_event(&e.w, ZEV_NONE, ZSTATE_SYNC_CONNECTED, NULL, -1);
	size_t len;
	uint8_t *buf = enc_finish(&e, &len);
	struct jute_reader r;
	struct rec_watcher_event v;
	jute_reader_init(&r, buf, len, MAXBUF);
	cr_assert_eq(rec_read_watcher_event(&r, &v), 0);
	cr_assert_null(v.path);
	cr_assert_eq(v.path_len, -1);
	free(buf);
}

/* ---- every decoder, against noise -------------------------------------- */

static const decode_fn all_decoders[] = {
	dec_connect_req, dec_connect_resp, dec_request_header, dec_reply_header,
	dec_stat, dec_acl_vec, dec_str_vec, dec_create, dec_create_ttl,
	dec_path_version, dec_path_watch, dec_set_data, dec_set_acl, dec_path,
	dec_path_mode, dec_auth, dec_multi_header, dec_set_watches,
	dec_set_watches2, dec_watcher_event,
};

Test(all_decoders, fail_on_a_reader_already_in_error)
{
	uint8_t in[256];
	memset(in, 0, sizeof in);
	for (size_t i = 0; i < sizeof all_decoders / sizeof all_decoders[0]; i++) {
		struct jute_reader r;
		union any_rec out;
		jute_reader_init(&r, in, sizeof in, MAXBUF);
		r.err = JUTE_SHORT;
		cr_assert_eq(all_decoders[i](&r, &out), -1, "decoder %zu", i);
		cr_assert_eq(r.off, 0, "decoder %zu consumed input after an error", i);
	}
}

/* A small deterministic generator (xorshift), so failures reproduce. */
static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

Test(all_decoders, noise_never_reads_out_of_bounds)
{
	/* Random bytes, biased towards small and negative lengths so that the
	 * decoders get past their first field. Under ASan any over-read is a
	 * crash; views that come back must lie inside the input. */
	static const uint32_t words[] = { 0, 1, 2, 3, 4, 0xffffffff, 0xfffffffe, 0x7fffffff, 0x80000000 };
	uint32_t seed = 0x2545f491;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rng_next(&seed) % 96;
		uint8_t *in = malloc(n ? n : 1);
		cr_assert_not_null(in);
		for (size_t i = 0; i < n;) {
			uint32_t x = rng_next(&seed);
			if ((x & 3) == 0 && n - i >= 4) {
				jute_put_u32(in + i, words[(x >> 2) % (sizeof words / sizeof words[0])]);
				i += 4;
			} else {
				in[i++] = (uint8_t)(x >> 8);
			}
		}
		for (size_t d = 0; d < sizeof all_decoders / sizeof all_decoders[0]; d++) {
			struct jute_reader r;
			union any_rec out;
			jute_reader_init(&r, in, n, 64);
			int rc = all_decoders[d](&r, &out);
			cr_assert_leq(r.off, n);
			cr_assert_eq(rc == 0, jute_ok(&r));
			if (rc != 0)
				continue;
			if (all_decoders[d] == dec_path || all_decoders[d] == dec_path_version ||
			    all_decoders[d] == dec_path_watch || all_decoders[d] == dec_path_mode)
				cr_assert(view_inside(out.path.path, in, n));
			if (all_decoders[d] == dec_str_vec) {
				size_t pos = 0;
				int32_t count = 0;
				struct jute_buf b;
				while (rec_str_next(&out.str_vec, &pos, &b)) {
					cr_assert(view_inside(b, in, n));
					count++;
				}
				cr_assert_eq(count, out.str_vec.count < 0 ? 0 : out.str_vec.count);
			}
			if (all_decoders[d] == dec_acl_vec) {
				size_t pos = 0;
				int32_t count = 0;
				struct rec_acl a;
				while (rec_acl_next(&out.acl_vec, &pos, &a)) {
					cr_assert(view_inside(a.scheme, in, n));
					cr_assert(view_inside(a.id, in, n));
					count++;
				}
				cr_assert_eq(count, out.acl_vec.count < 0 ? 0 : out.acl_vec.count);
			}
		}
		free(in);
	}
}
