/*
 * txncodec.c - ztxn <-> TxnHeader + txn record (see txncodec.h for the
 * format and the choices).
 *
 * Decoding trusts nothing: it runs on bytes from disk or from a peer. All
 * reads go through the bounded jute reader (every length is checked against
 * what is left of this one entry), paths are refused if they contain a NUL
 * (the tree and closeSession treat paths as C strings), and allocations are
 * sized by what was actually read, never by a count alone, except the
 * multi's op array whose count jute_read_count already bounds by the bytes
 * left (each op takes at least 8).
 */
#include "txncodec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/records.h"

const uint8_t zk_open_acl[] = {
	0, 0, 0, 1,                                   /* one ACL */
	0, 0, 0, 31,                                  /* Perms.ALL */
	0, 0, 0, 5, 'w', 'o', 'r', 'l', 'd',
	0, 0, 0, 6, 'a', 'n', 'y', 'o', 'n', 'e',
};
const size_t zk_open_acl_len = sizeof zk_open_acl;

/* EphemeralType.TTL: owner = 0xff00000000000000 | ttl, ttl in the low 48 bits. */
#define TTL_VALUE_MASK ((int64_t)0x0000ffffffffffffLL)

/* Smallest encodings, used to bound vector counts: a Txn is int + buffer
 * length, a ustring its length. */
#define TXN_MIN_SIZE 8
#define USTRING_MIN_SIZE 4

/* ---- encoding ----------------------------------------------------------- */

static void put_path(struct jute_writer *w, const struct ztxn *t)
{
	jute_write_buffer(w, t->path, t->path ? (int32_t)t->path_len : -1);
}

static void put_data(struct jute_writer *w, const struct ztxn *t)
{
	jute_write_buffer(w, t->data, t->data ? t->data_len : (t->data_len < 0 ? -1 : 0));
}

static void put_acl(struct jute_writer *w, const struct ztxn *t)
{
	/* The tree's ACL blob is already a whole jute vector, count included. */
	if (t->acl && t->acl_len >= 4)
		jute_write_raw(w, t->acl, t->acl_len);
	else
		jute_write_int(w, -1);
}

static bool is_ttl_owner(int64_t owner)
{
	return (owner & ZK_TTL_MASK) == ZK_TTL_PREFIX && (owner & TTL_VALUE_MASK) != 0;
}

/* The type a txn is logged under. */
static int32_t logged_type(const struct ztxn *t, bool in_multi)
{
	if (t->type == ZOP_CREATE && in_multi && t->op == ZOP_CREATE2)
		return ZOP_CREATE2;
	return t->type;
}

/* The record of one txn (no header). `session` is the header's clientId,
 * which an ephemeral create must be owned by. */
static int put_record(struct jute_writer *w, const struct ztxn *t, int64_t session, bool in_multi,
		      char *err, size_t errlen)
{
	switch (t->type) {
	case ZOP_CREATE:
		if (t->ephemeral_owner != 0 && t->ephemeral_owner != session) {
			snprintf(err, errlen, "create %s: ephemeral owner 0x%" PRIx64 " is not the txn's session 0x%" PRIx64
				 " (CreateTxn cannot say so)", t->path ? t->path : "",
				 (uint64_t)t->ephemeral_owner, (uint64_t)session);
			return -1;
		}
		put_path(w, t);
		put_data(w, t);
		put_acl(w, t);
		jute_write_bool(w, t->ephemeral_owner != 0);
		jute_write_int(w, t->parent_cversion);
		return 0;
	case ZOP_CREATECONTAINER:
		put_path(w, t);
		put_data(w, t);
		put_acl(w, t);
		jute_write_int(w, t->parent_cversion);
		return 0;
	case ZOP_CREATETTL:
		if (!is_ttl_owner(t->ephemeral_owner)) {
			snprintf(err, errlen, "createTTL %s: owner 0x%" PRIx64 " is not a TTL marker",
				 t->path ? t->path : "", (uint64_t)t->ephemeral_owner);
			return -1;
		}
		put_path(w, t);
		put_data(w, t);
		put_acl(w, t);
		jute_write_int(w, t->parent_cversion);
		jute_write_long(w, t->ephemeral_owner & TTL_VALUE_MASK);
		return 0;
	case ZOP_DELETE:
	case ZOP_DELETECONTAINER:
		put_path(w, t);
		return 0;
	case ZOP_SETDATA:
	case ZOP_RECONFIG:
		put_path(w, t);
		put_data(w, t);
		jute_write_int(w, t->version);
		return 0;
	case ZOP_SETACL:
		put_path(w, t);
		put_acl(w, t);
		jute_write_int(w, t->version);
		return 0;
	case ZOP_CHECK:
		put_path(w, t);
		jute_write_int(w, t->version);
		return 0;
	case ZOP_CREATESESSION:
		jute_write_int(w, t->timeout);
		return 0;
	case ZOP_CLOSE:
		if (t->n_close_paths < 0)
			return 0;           /* the list was never logged: no record */
		jute_write_int(w, t->n_close_paths);
		for (int i = 0; i < t->n_close_paths; i++)
			jute_write_string(w, t->close_paths[i]);
		return 0;
	case ZOP_ERROR:
		jute_write_int(w, t->err);
		return 0;
	case ZOP_MULTI:
		if (in_multi) {
			snprintf(err, errlen, "a multi inside a multi cannot be logged");
			return -1;
		}
		jute_write_int(w, t->n_sub);
		for (int i = 0; i < t->n_sub; i++) {
			const struct ztxn *s = &t->sub[i];
			jute_write_int(w, logged_type(s, true));
			size_t at = w->len;
			jute_write_int(w, 0);   /* the op's record length, patched below */
			if (put_record(w, s, session, true, err, errlen) != 0)
				return -1;
			size_t n = w->len - at - 4;
			if (n > INT32_MAX) {
				snprintf(err, errlen, "multi op %d is too large to log", i);
				return -1;
			}
			jute_patch_int(w, at, (int32_t)n);
		}
		return 0;
	default:
		snprintf(err, errlen, "txn type %d (%s) has no log record", t->type, zk_op_name(t->type));
		return -1;
	}
}

int txn_encode(struct jute_writer *w, const struct ztxn *t, char *err, size_t errlen)
{
	bool wrap_check = t->type == ZOP_CHECK;
	jute_write_long(w, t->session_id);
	jute_write_int(w, t->cxid);
	jute_write_long(w, t->zxid);
	jute_write_long(w, t->time);
	jute_write_int(w, wrap_check ? ZOP_MULTI : logged_type(t, false));
	if (wrap_check) {
		/* See txncodec.h: ZooKeeper cannot read a top-level check back. */
		struct ztxn multi = { .type = ZOP_MULTI, .sub = (struct ztxn *)t, .n_sub = 1 };
		if (put_record(w, &multi, t->session_id, false, err, errlen) != 0)
			return -1;
	} else if (put_record(w, t, t->session_id, false, err, errlen) != 0) {
		return -1;
	}
	if (w->err != JUTE_OK) {
		snprintf(err, errlen, "out of memory encoding txn 0x%" PRIx64, (uint64_t)t->zxid);
		return -1;
	}
	return 0;
}

/* ---- decoding ----------------------------------------------------------- */

struct dec {
	struct jute_reader *r;
	char *err;
	size_t errlen;
	int failed;
};

static void dec_fail(struct dec *d, const char *what)
{
	if (!d->failed)
		snprintf(d->err, d->errlen, "%s", what);
	d->failed = 1;
}

static void check_reader(struct dec *d, const char *what)
{
	if (!jute_ok(d->r)) {
		char m[160];
		snprintf(m, sizeof m, "%s: %s at byte %zu", what,
			 d->r->err == JUTE_SHORT ? "record ends early" : "bad length", d->r->off);
		dec_fail(d, m);
	}
}

static void *dup_bytes(const void *p, size_t n)
{
	void *c = malloc(n ? n : 1);
	if (!c)
		abort();
	if (n)
		memcpy(c, p, n);
	return c;
}

static char *dup_str(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void get_path(struct dec *d, struct ztxn *t)
{
	struct jute_buf b = jute_read_buffer(d->r);
	check_reader(d, "path");
	if (d->failed)
		return;
	if (b.len < 0) {
		dec_fail(d, "null path");
		return;
	}
	if (memchr(b.data, '\0', (size_t)b.len)) {
		dec_fail(d, "path contains a NUL byte");
		return;
	}
	t->path = dup_str(b.data, (size_t)b.len);
	t->path_len = (size_t)b.len;
}

static void get_data(struct dec *d, struct ztxn *t)
{
	struct jute_buf b = jute_read_buffer(d->r);
	check_reader(d, "data");
	if (d->failed)
		return;
	t->data_owned = true;
	t->data_len = b.len;
	t->data = b.len > 0 ? dup_bytes(b.data, (size_t)b.len) : NULL;
}

static void get_acl(struct dec *d, struct ztxn *t)
{
	size_t start = d->r->off;
	struct rec_acl_vec v;
	if (rec_read_acl_vector(d->r, &v) != 0) {
		check_reader(d, "acl");
		dec_fail(d, "acl");
		return;
	}
	if (v.count < 0) {
		t->acl = dup_bytes(zk_open_acl, zk_open_acl_len);
		t->acl_len = zk_open_acl_len;
		return;
	}
	t->acl_len = d->r->off - start;
	t->acl = dup_bytes(d->r->p + start, t->acl_len);
}

static void get_close_paths(struct dec *d, struct ztxn *t)
{
	int32_t n = jute_read_count(d->r, USTRING_MIN_SIZE);
	check_reader(d, "paths2Delete");
	if (d->failed)
		return;
	if (n <= 0) {
		/* a null vector reads as an empty list, as in Java */
		t->n_close_paths = 0;
		return;
	}
	t->close_paths = calloc((size_t)n, sizeof *t->close_paths);
	if (!t->close_paths)
		abort();
	for (int32_t i = 0; i < n && !d->failed; i++) {
		struct ztxn tmp = { 0 };
		get_path(d, &tmp);
		if (d->failed)
			break;
		t->close_paths[t->n_close_paths++] = tmp.path;
	}
}

/* Reads the record of `type` into t. `owner_session` is the header's
 * clientId (for CreateTxn.ephemeral). */
static void get_record(struct dec *d, int32_t type, int64_t owner_session, bool in_multi, struct ztxn *t);

static void get_multi(struct dec *d, int64_t owner_session, struct ztxn *t)
{
	int32_t n = jute_read_count(d->r, TXN_MIN_SIZE);
	check_reader(d, "multi");
	if (d->failed || n <= 0)
		return;
	t->sub = calloc((size_t)n, sizeof *t->sub);
	if (!t->sub)
		abort();
	t->cap_sub = n;
	for (int32_t i = 0; i < n && !d->failed; i++) {
		int32_t type = jute_read_int(d->r);
		struct jute_buf b = jute_read_buffer(d->r);
		check_reader(d, "multi op");
		if (d->failed)
			break;
		if (b.len < 0) {
			dec_fail(d, "multi op without a record");
			break;
		}
		struct jute_reader sr;
		jute_reader_init(&sr, b.data, (size_t)b.len, (size_t)b.len);
		struct dec sd = { &sr, d->err, d->errlen, 0 };
		struct ztxn *s = &t->sub[t->n_sub++];
		s->session_id = t->session_id;
		s->cxid = t->cxid;
		s->zxid = t->zxid;
		s->time = t->time;
		get_record(&sd, type, owner_session, true, s);
		d->failed |= sd.failed;
	}
}

static void get_record(struct dec *d, int32_t type, int64_t owner_session, bool in_multi, struct ztxn *t)
{
	t->op = type;
	t->type = type == ZOP_CREATE2 ? ZOP_CREATE : type;
	switch (type) {
	case ZOP_CREATE:
	case ZOP_CREATE2:
		get_path(d, t);
		get_data(d, t);
		get_acl(d, t);
		t->ephemeral_owner = jute_read_bool(d->r) ? owner_session : 0;
		t->parent_cversion = jute_read_int(d->r);
		check_reader(d, "CreateTxn");
		break;
	case ZOP_CREATECONTAINER:
		get_path(d, t);
		get_data(d, t);
		get_acl(d, t);
		t->parent_cversion = jute_read_int(d->r);
		t->ephemeral_owner = ZK_CONTAINER_OWNER;
		check_reader(d, "CreateContainerTxn");
		break;
	case ZOP_CREATETTL: {
		get_path(d, t);
		get_data(d, t);
		get_acl(d, t);
		t->parent_cversion = jute_read_int(d->r);
		int64_t ttl = jute_read_long(d->r);
		check_reader(d, "CreateTTLTxn");
		if (!d->failed && (ttl <= 0 || ttl > TTL_VALUE_MASK))
			dec_fail(d, "CreateTTLTxn: ttl out of range");
		t->ephemeral_owner = ZK_TTL_PREFIX | (ttl & TTL_VALUE_MASK);
		break;
	}
	case ZOP_DELETE:
	case ZOP_DELETECONTAINER:
		get_path(d, t);
		break;
	case ZOP_SETDATA:
	case ZOP_RECONFIG:
		get_path(d, t);
		get_data(d, t);
		t->version = jute_read_int(d->r);
		check_reader(d, "SetDataTxn");
		break;
	case ZOP_SETACL:
		if (in_multi) {
			dec_fail(d, "setACL inside a multi");
			break;
		}
		get_path(d, t);
		get_acl(d, t);
		t->version = jute_read_int(d->r);
		check_reader(d, "SetACLTxn");
		break;
	case ZOP_CHECK:
		get_path(d, t);
		t->version = jute_read_int(d->r);
		check_reader(d, "CheckVersionTxn");
		break;
	case ZOP_CREATESESSION:
		if (in_multi) {
			dec_fail(d, "createSession inside a multi");
			break;
		}
		t->timeout = jute_read_int(d->r);
		check_reader(d, "CreateSessionTxn");
		break;
	case ZOP_CLOSE:
		if (in_multi) {
			dec_fail(d, "closeSession inside a multi");
			break;
		}
		if (jute_remaining(d->r) == 0)
			t->n_close_paths = -1;      /* no CloseSessionTxn was logged */
		else
			get_close_paths(d, t);
		break;
	case ZOP_ERROR:
		t->err = jute_read_int(d->r);
		check_reader(d, "ErrorTxn");
		break;
	case ZOP_MULTI:
		if (in_multi) {
			dec_fail(d, "multi inside a multi");
			break;
		}
		get_multi(d, owner_session, t);
		break;
	default: {
		char m[64];
		snprintf(m, sizeof m, "unsupported txn type %d", type);
		dec_fail(d, m);
	}
	}
}

int txn_decode(const uint8_t *p, size_t len, struct ztxn *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	struct jute_reader r;
	jute_reader_init(&r, p, len, len);
	struct dec d = { &r, err, errlen, 0 };

	out->session_id = jute_read_long(&r);
	out->cxid = jute_read_int(&r);
	out->zxid = jute_read_long(&r);
	out->time = jute_read_long(&r);
	int32_t type = jute_read_int(&r);
	check_reader(&d, "TxnHeader");
	if (d.failed)
		return -1;
	size_t body = r.off;
	get_record(&d, type, out->session_id, false, out);
	if (d.failed && type == ZOP_CREATE && r.err == JUTE_SHORT) {
		/* Perhaps a CreateTxnV0 (no parentCVersion), as ZooKeeper guesses
		 * on the same EOF; -1 asks the applier for "parent's + 1". */
		struct ztxn hdr = *out;
		hdr.path = NULL;
		hdr.acl = NULL;
		hdr.data = NULL;
		ztxn_clear(out);
		*out = (struct ztxn){ .session_id = hdr.session_id, .cxid = hdr.cxid, .zxid = hdr.zxid,
				      .time = hdr.time, .type = ZOP_CREATE, .op = ZOP_CREATE };
		jute_reader_init(&r, p, len, len);
		r.off = body;
		d.failed = 0;
		get_path(&d, out);
		get_data(&d, out);
		get_acl(&d, out);
		out->ephemeral_owner = jute_read_bool(&r) ? out->session_id : 0;
		out->parent_cversion = -1;
		check_reader(&d, "CreateTxnV0");
	}
	if (d.failed) {
		ztxn_clear(out);
		return -1;
	}
	return 0;
}
