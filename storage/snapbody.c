/*
 * snapbody.c - encoding and parsing the body of a snapshot (format in
 * snapbody.h), shared by the snapshot file, the SNAP stream and the dump
 * tool.
 *
 * Writing walks the tree depth-first from the root by path: each node is
 * looked up, copied into the output buffer and its child names copied out,
 * all inside one short rcu_read_lock section; the buffer goes to the sink
 * (file or socket) between sections. That is ZooKeeper's fuzzy snapshot: a
 * node added after its parent was visited is missed, one deleted before it
 * is visited is skipped, and the txns after the snapshot's zxid, replayed
 * over it, repair both.
 *
 * The ACL map comes before the nodes, but the walk is what finds the ACLs,
 * so the tree is walked twice: the first walk interns every ACL, the second
 * writes the nodes. An ACL that appears only between the two walks belongs
 * to a change made after the body began (its zxid is above the body's, so
 * it will be replayed):
 * - a node created after the body began (czxid > zxid) is left out with its
 *   subtree; replay creates them all again;
 * - a node older than that had its ACL replaced by a setACL that replay
 *   applies again; until then the node is written with ACL id -1. Either way
 *   the tree after replay is exact, and a snapshot is never abandoned
 *   because clients keep making new ACLs.
 *
 * Reading never trusts a length: from memory each one is checked against
 * the bytes left; from a pull source against jute.maxbuffer, and an item
 * (a session, an ACL map entry, a node) may not grow past twice that. No
 * count sizes an allocation: arrays grow with what was actually read.
 */
#include "snapbody.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adler32.h"
#include "net/tsan.h"
#include "tree_load.h"
#include "txncodec.h"

#define OPEN_ACL_ID (-1LL)
/* Smallest encodings, to bound counts read from memory: a session is
 * long+int, an ACL map entry long+count, one ACL int+two lengths. */
#define SESSION_SIZE 12
#define ACL_ENTRY_MIN 12
#define ACL_MIN 12
/* ZooKeeper's zookeeper.jute.maxbuffer.extrasize default: the slack its
 * BinaryInputArchive allows over jute.maxbuffer. */
#define MAXBUFFER_EXTRA 1024

static bool is_open_acl(const uint8_t *p, size_t len)
{
	return len == zk_open_acl_len && memcmp(p, zk_open_acl, len) == 0;
}

/* ---- ACL interning (writing) -------------------------------------------- */

struct acl_entry {
	uint8_t *bytes;
	size_t len;
	int64_t id;
};

struct acl_table {
	struct acl_entry *v;
	size_t n, cap;
	size_t *slots;              /* open addressing: index + 1, 0 = empty */
	size_t nslots;              /* power of two */
};

static uint64_t acl_hash(const uint8_t *p, size_t len) { return tree_hash((const char *)p, len); }

static void acl_rehash(struct acl_table *a, size_t nslots)
{
	free(a->slots);
	a->slots = calloc(nslots, sizeof *a->slots);
	if (!a->slots)
		abort();
	a->nslots = nslots;
	for (size_t i = 0; i < a->n; i++) {
		size_t s = acl_hash(a->v[i].bytes, a->v[i].len) & (nslots - 1);
		while (a->slots[s])
			s = (s + 1) & (nslots - 1);
		a->slots[s] = i + 1;
	}
}

/* The id of this encoding: -1 for OPEN_ACL_UNSAFE, 0 when unknown and !add. */
static int64_t acl_id(struct acl_table *a, const uint8_t *p, size_t len, bool add)
{
	if (is_open_acl(p, len))
		return OPEN_ACL_ID;
	if (a->nslots) {
		size_t s = acl_hash(p, len) & (a->nslots - 1);
		for (; a->slots[s]; s = (s + 1) & (a->nslots - 1)) {
			const struct acl_entry *e = &a->v[a->slots[s] - 1];
			if (e->len == len && memcmp(e->bytes, p, len) == 0)
				return e->id;
		}
	}
	if (!add)
		return 0;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = realloc(a->v, a->cap * sizeof *a->v);
		if (!a->v)
			abort();
	}
	struct acl_entry *e = &a->v[a->n++];
	e->bytes = malloc(len ? len : 1);
	if (!e->bytes)
		abort();
	memcpy(e->bytes, p, len);
	e->len = len;
	e->id = (int64_t)a->n;      /* ZooKeeper's ids count from 1 */
	if (a->n * 2 > a->nslots)
		acl_rehash(a, a->nslots ? a->nslots * 2 : 64);
	else {
		size_t s = acl_hash(p, len) & (a->nslots - 1);
		while (a->slots[s])
			s = (s + 1) & (a->nslots - 1);
		a->slots[s] = a->n;
	}
	return e->id;
}

static void acl_table_free(struct acl_table *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i].bytes);
	free(a->v);
	free(a->slots);
}

/* ---- the depth-first walk ----------------------------------------------- */

/* Called inside a read-side section for each node reached: 1 = descend into
 * its children, 0 = skip them. */
typedef int (*visit_fn)(void *ctx, const char *path, size_t len, const struct znode_ver *v);
/* Called between sections (where I/O may happen): 0, or -1 to stop. */
typedef int (*idle_fn)(void *ctx);

struct wframe {
	char *path;
	size_t len;
	char *names;                /* the children's names, copied */
	uint32_t *off, *nlen;
	uint32_t n, next;
};

static void wframe_free(struct wframe *f)
{
	free(f->path);
	free(f->names);
	free(f->off);
	free(f->nlen);
}

/* Visits path; on "descend" pushes a frame with a copy of its child names. */
static void walk_visit(struct ztree *t, char *path, size_t len, visit_fn visit, void *ctx,
		       struct wframe **stack, size_t *depth, size_t *cap)
{
	rcu_read_lock();
	struct znode *n = tree_lookup(t, path, len);
	const struct znode_ver *v = n ? tree_ver(n) : NULL;
	if (!v || visit(ctx, path, len, v) != 1) {
		zkd_rcu_read_unlock();
		free(path);
		return;
	}
	struct wframe f = { .path = path, .len = len };
	const struct zkids *k = v->kids;
	if (k && k->n) {
		size_t total = 0;
		for (uint32_t i = 0; i < k->n; i++)
			total += k->v[i].len;
		f.names = malloc(total ? total : 1);
		f.off = malloc(k->n * sizeof *f.off);
		f.nlen = malloc(k->n * sizeof *f.nlen);
		if (!f.names || !f.off || !f.nlen)
			abort();
		size_t at = 0;
		for (uint32_t i = 0; i < k->n; i++) {
			memcpy(f.names + at, k->v[i].name, k->v[i].len);
			f.off[i] = (uint32_t)at;
			f.nlen[i] = k->v[i].len;
			at += k->v[i].len;
		}
		f.n = k->n;
	}
	zkd_rcu_read_unlock();
	if (*depth == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*stack = realloc(*stack, *cap * sizeof **stack);
		if (!*stack)
			abort();
	}
	(*stack)[(*depth)++] = f;
}

static int walk(struct ztree *t, visit_fn visit, idle_fn idle, void *ctx)
{
	struct wframe *stack = NULL;
	size_t depth = 0, cap = 0;
	int rc = 0;
	char *root = strdup("/");
	if (!root)
		abort();
	walk_visit(t, root, 1, visit, ctx, &stack, &depth, &cap);
	while (depth && rc == 0) {
		struct wframe *f = &stack[depth - 1];
		if (f->next == f->n) {
			wframe_free(f);
			depth--;
			continue;
		}
		uint32_t i = f->next++;
		size_t base = f->len == 1 ? 0 : f->len;    /* "/" + name, or parent + "/" + name */
		size_t len = base + 1 + f->nlen[i];
		char *path = malloc(len + 1);
		if (!path)
			abort();
		memcpy(path, f->path, base);
		path[base] = '/';
		memcpy(path + base + 1, f->names + f->off[i], f->nlen[i]);
		path[len] = '\0';
		walk_visit(t, path, len, visit, ctx, &stack, &depth, &cap);   /* may move stack */
		if (idle)
			rc = idle(ctx);
	}
	while (depth)
		wframe_free(&stack[--depth]);
	free(stack);
	return rc;
}

/* ---- writing ------------------------------------------------------------ */

struct body_writer {
	struct jute_writer *w;
	int64_t zxid;
	snapbody_flush_fn flush;
	void *arg;
	struct acl_table acls;
	struct snapbody_stats st;
};

static int collect_acl(void *ctx, const char *path, size_t len, const struct znode_ver *v)
{
	(void)path;
	(void)len;
	struct body_writer *b = ctx;
	if (v->acl && v->acl->len >= 4)
		acl_id(&b->acls, v->acl->bytes, (size_t)v->acl->len, true);
	return 1;
}

static int write_node(void *ctx, const char *path, size_t len, const struct znode_ver *v)
{
	struct body_writer *b = ctx;
	struct jute_writer *w = b->w;
	int64_t id = OPEN_ACL_ID;
	if (v->acl && v->acl->len >= 4) {
		id = acl_id(&b->acls, v->acl->bytes, (size_t)v->acl->len, false);
		if (id == 0) {
			/* An ACL set after the body began: see the top of the file. */
			if (v->stat.czxid > b->zxid) {
				b->st.skipped++;
				return 0;
			}
			b->st.late_acl++;
			id = OPEN_ACL_ID;
		}
	}
	/* DataTree.serializeNode names the root "" and its children "/a". */
	jute_write_buffer(w, path, len == 1 ? 0 : (int32_t)len);
	const struct zblob *d = v->data;
	jute_write_buffer(w, d && d->len > 0 ? d->bytes : NULL, d ? (d->len < 0 ? -1 : d->len) : 0);
	jute_write_long(w, id);
	const struct zk_stat *st = &v->stat;
	jute_write_long(w, st->czxid);
	jute_write_long(w, st->mzxid);
	jute_write_long(w, st->ctime);
	jute_write_long(w, st->mtime);
	jute_write_int(w, st->version);
	jute_write_int(w, st->cversion);
	jute_write_int(w, st->aversion);
	jute_write_long(w, st->ephemeral_owner);
	jute_write_long(w, st->pzxid);
	b->st.nodes++;
	return 1;
}

static int flush_if_full(void *ctx)
{
	struct body_writer *b = ctx;
	if (b->w->err != JUTE_OK)
		return -1;
	if (b->flush && b->w->len >= SNAPBODY_FLUSH_BYTES)
		return b->flush(b->arg, b->w);
	return 0;
}

int snapbody_write(struct jute_writer *w, struct ztree *t, int64_t zxid, const struct snap_session *sessions,
		   size_t n_sessions, snapbody_flush_fn flush, void *arg, struct snapbody_stats *stats)
{
	struct body_writer b = { .w = w, .zxid = zxid, .flush = flush, .arg = arg };
	walk(t, collect_acl, NULL, &b);

	jute_write_int(w, (int32_t)n_sessions);
	for (size_t i = 0; i < n_sessions; i++) {
		jute_write_long(w, sessions[i].id);
		jute_write_int(w, sessions[i].timeout);
	}
	jute_write_int(w, (int32_t)b.acls.n);
	for (size_t i = 0; i < b.acls.n; i++) {
		jute_write_long(w, b.acls.v[i].id);
		jute_write_raw(w, b.acls.v[i].bytes, b.acls.v[i].len);
	}
	int rc = walk(t, write_node, flush_if_full, &b);
	if (rc == 0)
		jute_write_string(w, "/");          /* end of the nodes */
	b.st.acls = b.acls.n;
	if (stats)
		*stats = b.st;
	acl_table_free(&b.acls);
	return rc == 0 && w->err == JUTE_OK ? 0 : -1;
}

/* ---- the byte source ---------------------------------------------------- */

void snap_in_mem(struct snap_in *in, const uint8_t *p, size_t len)
{
	*in = (struct snap_in){ .mem = p, .mem_len = len, .have = len, .max_len = len, .max_item = SIZE_MAX,
				.sum = ADLER32_INIT };
}

void snap_in_pull(struct snap_in *in, snap_pull_fn pull, void *arg, size_t max_len)
{
	if (max_len == 0)
		max_len = JUTE_DEFAULT_MAXBUFFER + MAXBUFFER_EXTRA;
	*in = (struct snap_in){ .pull = pull, .arg = arg, .max_len = max_len, .max_item = 2 * max_len + 4096,
				.sum = ADLER32_INIT };
}

void snap_in_free(struct snap_in *in)
{
	free(in->buf);
	in->buf = NULL;
	in->cap = 0;
}

static const uint8_t *window(const struct snap_in *in)
{
	return in->mem ? in->mem + in->base : in->buf;
}

static void in_fail(struct snap_in *in, int err)
{
	if (in->err == SNAP_IN_OK) {
		in->err = err;
		in->err_off = in->base;
	}
}

/* Makes n more bytes of the current item available. From a pull source it
 * asks for exactly the bytes missing, never more: what follows the body on
 * a socket is not ours to consume. */
static bool need(struct snap_in *in, size_t n)
{
	if (in->err)
		return false;
	if (in->have - in->pos >= n)
		return true;
	if (in->mem) {
		in_fail(in, SNAP_IN_SHORT);
		return false;
	}
	if (n > in->max_item - in->pos) {
		in_fail(in, SNAP_IN_TOOBIG);
		return false;
	}
	size_t want = in->pos + n;
	if (want > in->cap) {
		size_t cap = in->cap ? in->cap : 256;
		while (cap < want)
			cap *= 2;
		uint8_t *b = realloc(in->buf, cap);
		if (!b)
			abort();
		in->buf = b;
		in->cap = cap;
	}
	size_t missing = want - in->have;
	if (in->pull(in->arg, in->buf + in->have, missing) != (ssize_t)missing) {
		in_fail(in, SNAP_IN_SHORT);
		return false;
	}
	in->have = want;
	return true;
}

int32_t snap_in_int(struct snap_in *in)
{
	if (!need(in, 4))
		return 0;
	int32_t v = (int32_t)jute_get_u32(window(in) + in->pos);
	in->pos += 4;
	return v;
}

int64_t snap_in_long(struct snap_in *in)
{
	uint64_t hi = (uint32_t)snap_in_int(in);
	uint64_t lo = (uint32_t)snap_in_int(in);
	return (int64_t)(hi << 32 | lo);
}

struct snap_view snap_in_buffer(struct snap_in *in)
{
	int32_t len = snap_in_int(in);
	if (!snap_in_ok(in) || len == -1)
		return (struct snap_view){ 0, -1 };
	if (len < 0 || (size_t)len > in->max_len) {
		in_fail(in, SNAP_IN_BADLEN);
		return (struct snap_view){ 0, -1 };
	}
	if (!need(in, (size_t)len))
		return (struct snap_view){ 0, -1 };
	struct snap_view v = { in->pos, len };
	in->pos += (size_t)len;
	return v;
}

const uint8_t *snap_in_ptr(const struct snap_in *in, struct snap_view v)
{
	return v.len < 0 ? NULL : window(in) + v.off;
}

/* A vector or map count as Java reads it: -1 is null, other negatives are
 * empty. From memory, a count that cannot fit in what is left is refused at
 * once; from a pull source the item bound catches it as it is read. */
static int32_t in_count(struct snap_in *in, size_t elem_min)
{
	int32_t n = snap_in_int(in);
	if (!snap_in_ok(in) || n == -1)
		return n;
	if (n < 0)
		return 0;
	if (in->mem && (size_t)n > snap_in_left(in) / elem_min) {
		in_fail(in, SNAP_IN_BADLEN);
		return 0;
	}
	return n;
}

void snap_in_next(struct snap_in *in)
{
	if (in->err)
		return;
	if (in->track_sum)
		in->sum = adler32_update(in->sum, window(in), in->pos);
	in->base += in->pos;
	in->have -= in->pos;
	in->pos = 0;
}

size_t snap_in_left(const struct snap_in *in)
{
	return in->mem ? in->have - in->pos : 0;
}

void snap_in_describe(const struct snap_in *in, const char *what, char *err, size_t errlen)
{
	const char *why;
	switch (in->err) {
	case SNAP_IN_SHORT:
		why = in->mem ? "ends early: the input ends inside it" : "ends early: the stream ended or failed inside it";
		break;
	case SNAP_IN_BADLEN:
		why = in->mem ? "bad length: a length or count is negative or runs past the end"
			      : "bad length: a length is negative or over jute.maxbuffer";
		break;
	case SNAP_IN_TOOBIG:
		why = "too large: one item over twice jute.maxbuffer";
		break;
	default:
		why = "no error";
	}
	snprintf(err, errlen, "%s at offset %zu: %s", what, in->err_off, why);
}

/* ---- reading ------------------------------------------------------------ */

static int in_error(struct snap_in *in, const char *what, char *err, size_t errlen)
{
	snap_in_describe(in, what, err, errlen);
	return -1;
}

static int read_sessions(struct snap_in *in, const struct snapbody_cb *cb, void *arg, char *err, size_t errlen)
{
	int32_t n = in_count(in, SESSION_SIZE);
	if (!snap_in_ok(in))
		return in_error(in, "session count", err, errlen);
	snap_in_next(in);
	for (int32_t i = 0; i < n; i++) {
		int64_t id = snap_in_long(in);
		int32_t to = snap_in_int(in);
		if (!snap_in_ok(in))
			return in_error(in, "session", err, errlen);
		if (cb->session && cb->session(arg, id, to, err, errlen) != 0)
			return -1;
		snap_in_next(in);
	}
	return 0;
}

/* One ACL map entry: long id, vector<ACL>; the vector is handed on as bytes. */
static int read_acl_entry(struct snap_in *in, const struct snapbody_cb *cb, void *arg, char *err, size_t errlen)
{
	size_t at = snap_in_offset(in);
	int64_t id = snap_in_long(in);
	size_t start = in->pos;
	int32_t n = in_count(in, ACL_MIN);
	if (snap_in_ok(in) && n == -1) {
		/* ReferenceCountedACLCache.deserialize refuses it too */
		snprintf(err, errlen, "ACL map entry %" PRId64 " at offset %zu is a null list", id, at);
		return -1;
	}
	for (int32_t i = 0; i < n && snap_in_ok(in); i++) {
		snap_in_int(in);            /* perms */
		snap_in_buffer(in);         /* scheme */
		snap_in_buffer(in);         /* id */
	}
	if (!snap_in_ok(in))
		return in_error(in, "ACL map entry", err, errlen);
	if (cb->acl && cb->acl(arg, id, window(in) + start, in->pos - start, err, errlen) != 0)
		return -1;
	snap_in_next(in);
	return 0;
}

static int read_acls(struct snap_in *in, const struct snapbody_cb *cb, void *arg, char *err, size_t errlen)
{
	int32_t n = in_count(in, ACL_ENTRY_MIN);
	if (!snap_in_ok(in))
		return in_error(in, "ACL map count", err, errlen);
	snap_in_next(in);
	for (int32_t i = 0; i < n; i++)
		if (read_acl_entry(in, cb, arg, err, errlen) != 0)
			return -1;
	return 0;
}

/* One node, or the "/" that ends them: 1 = a node, 0 = the end, -1 = error. */
static int read_node(struct snap_in *in, const struct snapbody_cb *cb, void *arg, char *err, size_t errlen)
{
	struct snapbody_node n = { .offset = snap_in_offset(in) };
	struct snap_view path = snap_in_buffer(in);
	if (!snap_in_ok(in))
		return in_error(in, "node path", err, errlen);
	if (path.len == 1 && snap_in_ptr(in, path)[0] == '/') {
		snap_in_next(in);
		return 0;
	}
	if (path.len < 0) {
		snprintf(err, errlen, "node at offset %zu has a null path", n.offset);
		return -1;
	}
	struct snap_view data = snap_in_buffer(in);
	n.acl_id = snap_in_long(in);
	struct zk_stat *st = &n.stat;
	st->czxid = snap_in_long(in);
	st->mzxid = snap_in_long(in);
	st->ctime = snap_in_long(in);
	st->mtime = snap_in_long(in);
	st->version = snap_in_int(in);
	st->cversion = snap_in_int(in);
	st->aversion = snap_in_int(in);
	st->ephemeral_owner = snap_in_long(in);
	st->pzxid = snap_in_long(in);
	if (!snap_in_ok(in))
		return in_error(in, "node", err, errlen);
	/* only now: the item's buffer no longer moves */
	n.path = path.len == 0 ? "/" : (const char *)snap_in_ptr(in, path);
	n.path_len = path.len == 0 ? 1 : (size_t)path.len;
	n.data = snap_in_ptr(in, data);
	n.data_len = data.len;
	st->data_length = data.len > 0 ? data.len : 0;
	if (n.path[0] != '/') {
		snprintf(err, errlen, "node at offset %zu: malformed path \"%.*s\" (does not start with '/')", n.offset,
			 (int)(n.path_len > 100 ? 100 : n.path_len), n.path);
		return -1;
	}
	if (cb->node && cb->node(arg, &n, err, errlen) != 0)
		return -1;
	snap_in_next(in);
	return 1;
}

int snapbody_read(struct snap_in *in, const struct snapbody_cb *cb, void *arg, char *err, size_t errlen)
{
	if (read_sessions(in, cb, arg, err, errlen) != 0 || read_acls(in, cb, arg, err, errlen) != 0)
		return -1;
	int rc;
	while ((rc = read_node(in, cb, arg, err, errlen)) == 1)
		;
	return rc;
}

/* ---- loading into a tree ------------------------------------------------ */

struct acl_ref {
	int64_t id;
	size_t order;
	struct zblob *blob;
};

static int cmp_acl_ref(const void *a, const void *b)
{
	const struct acl_ref *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

struct builder {
	struct snapbody_loaded *out;
	size_t sessions_cap;
	struct acl_ref *acls;
	size_t n_acls, acls_cap;
	bool acls_sorted;
	struct zblob *open_blob;
	struct ztree *t;
	struct tree_loader *ld;
};

static int on_session(void *arg, int64_t id, int32_t timeout, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct builder *b = arg;
	struct snapbody_loaded *o = b->out;
	if (o->n_sessions == b->sessions_cap) {
		b->sessions_cap = b->sessions_cap ? b->sessions_cap * 2 : 64;
		o->sessions = realloc(o->sessions, b->sessions_cap * sizeof *o->sessions);
		if (!o->sessions)
			abort();
	}
	o->sessions[o->n_sessions++] = (struct snap_session){ id, timeout };
	return 0;
}

static int on_acl(void *arg, int64_t id, const uint8_t *acl, size_t len, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct builder *b = arg;
	if (b->n_acls == b->acls_cap) {
		b->acls_cap = b->acls_cap ? b->acls_cap * 2 : 16;
		b->acls = realloc(b->acls, b->acls_cap * sizeof *b->acls);
		if (!b->acls)
			abort();
	}
	b->acls[b->n_acls] = (struct acl_ref){ id, b->n_acls, tree_blob_new(acl, (int32_t)len) };
	b->n_acls++;
	return 0;
}

/* ZooKeeper reads the map into a HashMap: a repeated id keeps the last. */
static void sort_acls(struct builder *b)
{
	if (b->n_acls)
		qsort(b->acls, b->n_acls, sizeof *b->acls, cmp_acl_ref);
	size_t k = 0;
	for (size_t i = 0; i < b->n_acls; i++) {
		if (k && b->acls[k - 1].id == b->acls[i].id) {
			tree_blob_unref(b->acls[k - 1].blob);
			b->acls[k - 1] = b->acls[i];
		} else {
			b->acls[k++] = b->acls[i];
		}
	}
	b->n_acls = k;
	b->acls_sorted = true;
}

static struct zblob *acl_lookup(const struct builder *b, int64_t id)
{
	if (id == OPEN_ACL_ID)
		return b->open_blob;
	size_t lo = 0, hi = b->n_acls;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->acls[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < b->n_acls && b->acls[lo].id == id ? b->acls[lo].blob : NULL;
}

static int on_node(void *arg, const struct snapbody_node *n, char *err, size_t errlen)
{
	struct builder *b = arg;
	if (!b->acls_sorted)
		sort_acls(b);           /* the map is complete once nodes begin */
	struct zblob *ab = acl_lookup(b, n->acl_id);
	if (!ab) {
		snprintf(err, errlen, "node %.*s at offset %zu refers to ACL id %" PRId64 ", which the ACL map "
			 "does not have", (int)(n->path_len > 200 ? 200 : n->path_len), n->path, n->offset, n->acl_id);
		return -1;
	}
	char why[256];
	rcu_read_lock();
	int a = tree_loader_add(b->ld, n->path, n->path_len, &n->stat, n->data, n->data_len, ab, why, sizeof why);
	zkd_rcu_read_unlock();
	if (a != 0) {
		snprintf(err, errlen, "at offset %zu: %s", n->offset, why);
		return -1;
	}
	return 0;
}

static int finish_tree(struct builder *b, char *err, size_t errlen)
{
	char why[256];
	rcu_read_lock();
	int f = tree_loader_finish(b->ld, why, sizeof why);
	b->ld = NULL;
	if (f == 0 && !tree_lookup(b->t, "/", 1)) {
		snprintf(why, sizeof why, "no root node");
		f = -1;
	}
	if (f == 0)
		tree_init_system_nodes(b->t);
	zkd_rcu_read_unlock();
	if (f != 0)
		snprintf(err, errlen, "%s", why);
	return f;
}

int snapbody_load(struct snap_in *in, struct snapbody_loaded *out, char *err, size_t errlen)
{
	*out = (struct snapbody_loaded){ 0 };
	struct builder b = { .out = out };
	b.open_blob = tree_blob_new(zk_open_acl, (int32_t)zk_open_acl_len);
	b.t = tree_new();
	if (!b.t)
		abort();
	b.ld = tree_loader_new(b.t);
	static const struct snapbody_cb cb = { on_session, on_acl, on_node };
	int rc = snapbody_read(in, &cb, &b, err, errlen);
	if (rc == 0)
		rc = finish_tree(&b, err, errlen);
	if (b.ld)
		tree_loader_abort(b.ld);
	for (size_t i = 0; i < b.n_acls; i++)
		tree_blob_unref(b.acls[i].blob);
	free(b.acls);
	tree_blob_unref(b.open_blob);
	if (rc == 0) {
		out->tree = b.t;
	} else {
		tree_free(b.t);
		snapbody_loaded_free(out);
	}
	return rc;
}

void snapbody_loaded_free(struct snapbody_loaded *l)
{
	if (l->tree)
		tree_free(l->tree);
	free(l->sessions);
	*l = (struct snapbody_loaded){ 0 };
}
