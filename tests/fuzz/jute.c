/*
 * jute.c - fuzz target: the jute reader (net/jute.c) and every client record
 * decoder (net/records.c rec_read_*).
 *
 * Each input is decoded by every decoder, with jute.maxbuffer's default and
 * with a tiny bound. Beyond "no crash", it checks what the decoders promise:
 * a view is a null ({NULL, -1}) or lies inside the input; a vector that was
 * accepted iterates to exactly its count, ending at its last byte; the
 * reader never moves past the end; a record that decodes re-encodes to
 * bytes that decode to the same values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/jute.h"
#include "net/records.h"

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                         \
		}                                                                        \
	} while (0)

static const uint8_t *in_p;
static size_t in_len;

static void check_view(struct jute_buf b)
{
	if (b.len == -1) {
		CHECK(b.data == NULL);
		return;
	}
	CHECK(b.len >= 0);
	if (b.len == 0)
		return;
	CHECK(b.data >= in_p && b.data + b.len <= in_p + in_len);
}

static void check_reader(const struct jute_reader *r)
{
	CHECK(r->off <= r->len);
}

static void check_acls(const struct rec_acl_vec *v)
{
	if (v->count <= 0) {
		CHECK(v->count == 0 || v->count == -1);
		return;
	}
	CHECK(v->p >= in_p && v->p + v->len <= in_p + in_len);
	size_t pos = 0;
	int32_t n = 0;
	struct rec_acl a;
	while (rec_acl_next(v, &pos, &a)) {
		check_view(a.scheme);
		check_view(a.id);
		n++;
	}
	CHECK(n == v->count);
	CHECK(pos == v->len);
}

static void check_strs(const struct rec_str_vec *v)
{
	if (v->count <= 0) {
		CHECK(v->count == 0 || v->count == -1);
		return;
	}
	CHECK(v->p >= in_p && v->p + v->len <= in_p + in_len);
	size_t pos = 0;
	int32_t n = 0;
	struct jute_buf b;
	while (rec_str_next(v, &pos, &b)) {
		check_view(b);
		n++;
	}
	CHECK(n == v->count);
	CHECK(pos == v->len);
}

/* Encodes with the record's writer and decodes again. */
static uint8_t *take(struct jute_writer *w, size_t *len)
{
	uint8_t *p = jute_writer_take(w, len);
	CHECK(p != NULL);
	return p;
}

static bool buf_eq(struct jute_buf a, struct jute_buf b)
{
	if (a.len != b.len)
		return false;
	return a.len <= 0 || memcmp(a.data, b.data, (size_t)a.len) == 0;
}

static void roundtrip_connect_req(const struct rec_connect_req *v)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	rec_write_connect_req(&w, v);
	size_t len;
	uint8_t *p = take(&w, &len);
	struct jute_reader r;
	struct rec_connect_req u;
	jute_reader_init(&r, p, len, JUTE_DEFAULT_MAXBUFFER);
	CHECK(rec_read_connect_req(&r, &u) == 0);
	CHECK(u.protocol_version == v->protocol_version && u.last_zxid_seen == v->last_zxid_seen &&
	      u.timeout == v->timeout && u.session_id == v->session_id && u.read_only == v->read_only);
	CHECK(buf_eq(u.passwd, v->passwd));
	CHECK(r.off == len);
	free(p);
}

static void roundtrip_connect_resp(const struct rec_connect_resp *v)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	rec_write_connect_resp(&w, v);
	size_t len;
	uint8_t *p = take(&w, &len);
	struct jute_reader r;
	struct rec_connect_resp u;
	jute_reader_init(&r, p, len, JUTE_DEFAULT_MAXBUFFER);
	CHECK(rec_read_connect_resp(&r, &u) == 0);
	CHECK(u.protocol_version == v->protocol_version && u.timeout == v->timeout &&
	      u.session_id == v->session_id && u.read_only == v->read_only && u.passwd_len == v->passwd_len);
	CHECK(u.passwd_len <= 0 || memcmp(u.passwd, v->passwd, (size_t)u.passwd_len) == 0);
	free(p);
}

static void roundtrip_stat(const struct zk_stat *v)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	rec_write_stat(&w, v);
	size_t len;
	uint8_t *p = take(&w, &len);
	CHECK(len == 68);
	struct jute_reader r;
	struct zk_stat u;
	jute_reader_init(&r, p, len, JUTE_DEFAULT_MAXBUFFER);
	CHECK(rec_read_stat(&r, &u) == 0);
	CHECK(u.czxid == v->czxid && u.mzxid == v->mzxid && u.ctime == v->ctime && u.mtime == v->mtime &&
	      u.version == v->version && u.cversion == v->cversion && u.aversion == v->aversion &&
	      u.ephemeral_owner == v->ephemeral_owner && u.data_length == v->data_length &&
	      u.num_children == v->num_children && u.pzxid == v->pzxid);
	free(p);
}

static void roundtrip_headers(const struct rec_request_header *rq, const struct rec_reply_header *rp,
			      const struct rec_multi_header *mh)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	if (rq)
		rec_write_request_header(&w, rq);
	if (rp)
		rec_write_reply_header(&w, rp);
	if (mh)
		rec_write_multi_header(&w, mh);
	size_t len;
	uint8_t *p = take(&w, &len);
	struct jute_reader r;
	jute_reader_init(&r, p, len, JUTE_DEFAULT_MAXBUFFER);
	if (rq) {
		struct rec_request_header u;
		CHECK(rec_read_request_header(&r, &u) == 0 && u.xid == rq->xid && u.type == rq->type);
	}
	if (rp) {
		struct rec_reply_header u;
		CHECK(rec_read_reply_header(&r, &u) == 0 && u.xid == rp->xid && u.zxid == rp->zxid && u.err == rp->err);
	}
	if (mh) {
		struct rec_multi_header u;
		CHECK(rec_read_multi_header(&r, &u) == 0 && u.type == mh->type && u.done == mh->done &&
		      u.err == mh->err);
	}
	CHECK(r.off == len);
	free(p);
}

static void roundtrip_watcher_event(const struct rec_watcher_event *v)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	rec_write_watcher_event(&w, v->type, v->state, v->path, v->path_len);
	size_t len;
	uint8_t *p = take(&w, &len);
	struct jute_reader r;
	struct rec_watcher_event u;
	jute_reader_init(&r, p, len, JUTE_DEFAULT_MAXBUFFER);
	CHECK(rec_read_watcher_event(&r, &u) == 0);
	CHECK(u.type == v->type && u.state == v->state && u.path_len == v->path_len);
	CHECK(u.path_len <= 0 || memcmp(u.path, v->path, (size_t)u.path_len) == 0);
	free(p);
}

/* The primitives alone: the input as a program of reads (op byte, then
 * whatever the op reads). After the first failure every read gives zeros. */
static void primitives(const uint8_t *data, size_t size, size_t max)
{
	if (size == 0)
		return;
	/* ops from the first bytes, values from the whole input */
	size_t nops = data[0] % 16;
	if (nops > size - 1)
		nops = size - 1;
	struct jute_reader r;
	jute_reader_init(&r, data + 1 + nops, size - 1 - nops, max);
	for (size_t i = 0; i < nops; i++) {
		bool failed = !jute_ok(&r);
		size_t before = r.off;
		switch (data[1 + i] % 6) {
		case 0: {
			int32_t v = jute_read_int(&r);
			CHECK(!failed || v == 0);
			break;
		}
		case 1: {
			int64_t v = jute_read_long(&r);
			CHECK(!failed || v == 0);
			break;
		}
		case 2: {
			bool v = jute_read_bool(&r);
			CHECK(!failed || !v);
			break;
		}
		case 3: {
			struct jute_buf b = jute_read_buffer(&r);
			if (!jute_ok(&r))
				CHECK(b.data == NULL && b.len == 0);
			else if (b.len > 0)
				CHECK((size_t)b.len <= max && b.data >= r.p && b.data + b.len <= r.p + r.len);
			break;
		}
		default: {
			size_t elem = data[1 + i] / 6 % 16;
			int32_t n = jute_read_count(&r, elem);
			if (!jute_ok(&r)) {
				CHECK(n == 0);
			} else {
				CHECK(n >= -1);
				if (n > 0)
					CHECK((size_t)n <= max && (size_t)n * (elem ? elem : 1) <= jute_remaining(&r));
			}
			break;
		}
		}
		check_reader(&r);
		if (failed)
			CHECK(r.off == before);
	}
}

static void decode_all(const uint8_t *data, size_t size, size_t max)
{
	struct jute_reader r;
#define READER() jute_reader_init(&r, data, size, max)

	READER();
	struct rec_connect_req cq;
	if (rec_read_connect_req(&r, &cq) == 0) {
		check_view(cq.passwd);
		roundtrip_connect_req(&cq);
	}
	check_reader(&r);

	READER();
	struct rec_connect_resp cr;
	if (rec_read_connect_resp(&r, &cr) == 0)
		roundtrip_connect_resp(&cr);
	check_reader(&r);

	READER();
	struct rec_request_header rq;
	if (rec_read_request_header(&r, &rq) == 0)
		roundtrip_headers(&rq, NULL, NULL);
	check_reader(&r);

	READER();
	struct rec_reply_header rp;
	if (rec_read_reply_header(&r, &rp) == 0)
		roundtrip_headers(NULL, &rp, NULL);
	check_reader(&r);

	READER();
	struct zk_stat st;
	if (rec_read_stat(&r, &st) == 0)
		roundtrip_stat(&st);
	check_reader(&r);

	READER();
	struct rec_acl_vec av;
	if (rec_read_acl_vector(&r, &av) == 0)
		check_acls(&av);
	check_reader(&r);

	READER();
	struct rec_str_vec sv;
	if (rec_read_str_vector(&r, &sv) == 0)
		check_strs(&sv);
	check_reader(&r);

	for (int ttl = 0; ttl < 2; ttl++) {
		READER();
		struct rec_create_req c;
		if (rec_read_create_req(&r, ttl, &c) == 0) {
			check_view(c.path);
			check_view(c.data);
			check_acls(&c.acl);
			CHECK(ttl || c.ttl == -1);
		}
		check_reader(&r);
	}

	READER();
	struct rec_path_version pv;
	if (rec_read_path_version(&r, &pv) == 0)
		check_view(pv.path);
	check_reader(&r);

	READER();
	struct rec_path_watch pw;
	if (rec_read_path_watch(&r, &pw) == 0)
		check_view(pw.path);
	check_reader(&r);

	READER();
	struct rec_set_data_req sd;
	if (rec_read_set_data_req(&r, &sd) == 0) {
		check_view(sd.path);
		check_view(sd.data);
	}
	check_reader(&r);

	READER();
	struct rec_set_acl_req sa;
	if (rec_read_set_acl_req(&r, &sa) == 0) {
		check_view(sa.path);
		check_acls(&sa.acl);
	}
	check_reader(&r);

	READER();
	struct rec_path p;
	if (rec_read_path(&r, &p) == 0)
		check_view(p.path);
	check_reader(&r);

	READER();
	struct rec_path_mode pm;
	if (rec_read_path_mode(&r, &pm) == 0)
		check_view(pm.path);
	check_reader(&r);

	READER();
	struct rec_auth_packet ap;
	if (rec_read_auth_packet(&r, &ap) == 0) {
		check_view(ap.scheme);
		check_view(ap.auth);
	}
	check_reader(&r);

	READER();
	struct rec_multi_header mh;
	if (rec_read_multi_header(&r, &mh) == 0)
		roundtrip_headers(NULL, NULL, &mh);
	check_reader(&r);

	for (int v2 = 0; v2 < 2; v2++) {
		READER();
		struct rec_set_watches sw;
		if (rec_read_set_watches(&r, v2, &sw) == 0) {
			check_strs(&sw.data);
			check_strs(&sw.exist);
			check_strs(&sw.child);
			check_strs(&sw.persistent);
			check_strs(&sw.persistent_recursive);
			CHECK(v2 || (sw.persistent.count == 0 && sw.persistent_recursive.count == 0));
		}
		check_reader(&r);
	}

	READER();
	struct rec_watcher_event we;
	if (rec_read_watcher_event(&r, &we) == 0) {
		check_view((struct jute_buf){ (const uint8_t *)we.path, we.path_len });
		roundtrip_watcher_event(&we);
	}
	check_reader(&r);
#undef READER

	/* a multi request as readpath.c and prep.c walk it: headers and bodies
	 * until done, each body by its op's decoder */
	jute_reader_init(&r, data, size, max);
	for (int i = 0; i < 64; i++) {
		struct rec_multi_header h;
		if (rec_read_multi_header(&r, &h) != 0 || h.done)
			break;
		int rc;
		union {
			struct rec_create_req c;
			struct rec_path_version pv;
			struct rec_set_data_req sd;
			struct rec_path_watch pw;
		} u;
		switch (h.type) {
		case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
			rc = rec_read_create_req(&r, h.type == ZOP_CREATETTL, &u.c);
			if (rc == 0)
				check_acls(&u.c.acl);
			break;
		case ZOP_DELETE: case ZOP_CHECK:
			rc = rec_read_path_version(&r, &u.pv);
			break;
		case ZOP_SETDATA:
			rc = rec_read_set_data_req(&r, &u.sd);
			break;
		case ZOP_GETDATA: case ZOP_GETCHILDREN:
			rc = rec_read_path_watch(&r, &u.pw);
			break;
		default:
			rc = -1;
		}
		check_reader(&r);
		if (rc != 0)
			break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	in_p = data;
	in_len = size;
	decode_all(data, size, JUTE_DEFAULT_MAXBUFFER);
	decode_all(data, size, 16);
	primitives(data, size, JUTE_DEFAULT_MAXBUFFER);
	primitives(data, size, 8);
	return 0;
}
