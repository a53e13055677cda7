/*
 * snapshot.c - writing and loading ZooKeeper snapshots (format in
 * snapshot.h).
 *
 * Writing walks the tree depth-first from the root by path: each node is
 * looked up, copied into the output buffer and its child names copied out,
 * all inside one short rcu_read_lock section; the buffer goes to the file
 * between sections. That is ZooKeeper's fuzzy snapshot: a node added after
 * its parent was visited is missed, one deleted before it is visited is
 * skipped, and the log replayed from the snapshot's zxid repairs both.
 *
 * The ACL map comes before the nodes in the file, but the walk is what
 * finds the ACLs, so the tree is walked twice: the first walk interns every
 * ACL, the second writes the nodes. An ACL that appears only between the two
 * walks belongs to a change made after the snapshot began (its zxid is above
 * the snapshot's, so it is in the log):
 * - a node created after the snapshot began (czxid > zxid) is left out with
 *   its subtree; replay creates them all again;
 * - a node older than that had its ACL replaced by a setACL that replay
 *   applies again; until then the node is written with ACL id -1. Either way
 *   the tree after replay is exact, and the snapshot is never abandoned
 *   because clients keep making new ACLs.
 *
 * Loading maps the file read-only and parses it with the bounded jute reader
 * (each length is checked against the bytes left); the checksum is verified
 * at the seal, after which the loaded tree is kept, or thrown away and the
 * next older snapshot tried.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adler32.h"
#include "datadir.h"
#include "fileio.h"
#include "net/jute.h"
#include "net/log.h"
#include "net/records.h"
#include "tree_load.h"
#include "txncodec.h"

#define SNAP_DBID (-1LL)
#define OPEN_ACL_ID (-1LL)
#define DIGEST_VERSION 2          /* DigestCalculator.DIGEST_VERSION */
#define OUT_FLUSH_BYTES (1u << 20)
/* Smallest encodings: a session is long+int, an ACL map entry long+count. */
#define SESSION_SIZE 12
#define ACL_ENTRY_MIN 12

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
/* Called between sections (where I/O may happen): 0 or -1 to stop. */
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
		rcu_read_unlock();
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
	rcu_read_unlock();
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

struct snap_writer {
	int fd;
	struct jute_writer w;
	uint32_t adler;             /* of everything flushed */
	int64_t bytes;
	int err;                    /* errno of the first failure */
	const char *what;           /* the call that failed */
	struct acl_table acls;
	int64_t zxid;
	long nodes, late_acl, skipped;
};

static int out_flush(struct snap_writer *s)
{
	if (s->err)
		return -1;
	if (s->w.err != JUTE_OK) {
		s->err = ENOMEM;
		s->what = "encoding";
		return -1;
	}
	if (s->w.len == 0)
		return 0;
	s->adler = adler32_update(s->adler, s->w.buf, s->w.len);
	if (fio_write_all(s->fd, s->w.buf, s->w.len) != 0) {
		s->err = errno;
		s->what = "write";
		return -1;
	}
	s->bytes += (int64_t)s->w.len;
	s->w.len = 0;
	return 0;
}

/* SnapStream.sealStream: the checksum of everything before it, then "/". */
static int out_seal(struct snap_writer *s)
{
	if (out_flush(s) != 0)
		return -1;
	jute_write_long(&s->w, (int64_t)s->adler);
	jute_write_string(&s->w, "/");
	return 0;
}

static int collect_acl(void *ctx, const char *path, size_t len, const struct znode_ver *v)
{
	(void)path;
	(void)len;
	struct snap_writer *s = ctx;
	if (v->acl && v->acl->len >= 4)
		acl_id(&s->acls, v->acl->bytes, (size_t)v->acl->len, true);
	return 1;
}

static int write_node(void *ctx, const char *path, size_t len, const struct znode_ver *v)
{
	struct snap_writer *s = ctx;
	int64_t id = OPEN_ACL_ID;
	if (v->acl && v->acl->len >= 4) {
		id = acl_id(&s->acls, v->acl->bytes, (size_t)v->acl->len, false);
		if (id == 0) {
			/* An ACL set after the snapshot began: see the top of the file. */
			if (v->stat.czxid > s->zxid) {
				s->skipped++;
				return 0;
			}
			s->late_acl++;
			id = OPEN_ACL_ID;
		}
	}
	/* DataTree.serializeNode names the root "" and its children "/a". */
	jute_write_buffer(&s->w, path, len == 1 ? 0 : (int32_t)len);
	const struct zblob *d = v->data;
	jute_write_buffer(&s->w, d && d->len > 0 ? d->bytes : NULL, d ? (d->len < 0 ? -1 : d->len) : 0);
	jute_write_long(&s->w, id);
	const struct zk_stat *st = &v->stat;
	jute_write_long(&s->w, st->czxid);
	jute_write_long(&s->w, st->mzxid);
	jute_write_long(&s->w, st->ctime);
	jute_write_long(&s->w, st->mtime);
	jute_write_int(&s->w, st->version);
	jute_write_int(&s->w, st->cversion);
	jute_write_int(&s->w, st->aversion);
	jute_write_long(&s->w, st->ephemeral_owner);
	jute_write_long(&s->w, st->pzxid);
	s->nodes++;
	return 1;
}

static int flush_if_full(void *ctx)
{
	struct snap_writer *s = ctx;
	return s->w.len >= OUT_FLUSH_BYTES ? out_flush(s) : (s->err ? -1 : 0);
}

int snapshot_write(const char *dir, struct ztree *t, int64_t zxid, const struct snap_session *sessions,
		   size_t n_sessions, char *err, size_t errlen)
{
	int64_t t0 = now_ms();
	char *vdir = datadir_version_dir(dir, true, err, errlen);
	if (!vdir)
		return -1;
	char name[DATADIR_NAME_MAX], tmpname[DATADIR_NAME_MAX + 8];
	datadir_name(name, sizeof name, "snapshot", zxid);
	snprintf(tmpname, sizeof tmpname, "tmp.%s", name);
	char *final = datadir_path(vdir, name), *tmp = datadir_path(vdir, tmpname);

	struct snap_writer s = { .fd = -1, .adler = ADLER32_INIT, .zxid = zxid };
	jute_writer_init(&s.w, OUT_FLUSH_BYTES + 64 * 1024);
	walk(t, collect_acl, NULL, &s);

	s.fd = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s.fd < 0) {
		s.err = errno;
		s.what = "open";
		goto out;
	}
	jute_write_int(&s.w, SNAP_MAGIC);
	jute_write_int(&s.w, SNAP_VERSION);
	jute_write_long(&s.w, SNAP_DBID);
	jute_write_int(&s.w, (int32_t)n_sessions);
	for (size_t i = 0; i < n_sessions; i++) {
		jute_write_long(&s.w, sessions[i].id);
		jute_write_int(&s.w, sessions[i].timeout);
	}
	jute_write_int(&s.w, (int32_t)s.acls.n);
	for (size_t i = 0; i < s.acls.n; i++) {
		jute_write_long(&s.w, s.acls.v[i].id);
		jute_write_raw(&s.w, s.acls.v[i].bytes, s.acls.v[i].len);
	}
	if (walk(t, write_node, flush_if_full, &s) != 0)
		goto out;
	jute_write_string(&s.w, "/");          /* end of the nodes */
	if (out_seal(&s) != 0)
		goto out;
	/* the empty ZxidDigest ZooKeeper writes when it has none */
	jute_write_long(&s.w, 0);
	jute_write_int(&s.w, DIGEST_VERSION);
	jute_write_long(&s.w, 0);
	if (out_seal(&s) != 0 || out_flush(&s) != 0)
		goto out;
	if (fio_fsync(s.fd) != 0) {
		s.err = errno;
		s.what = "fsync";
		goto out;
	}
	int fd = s.fd;
	s.fd = -1;
	if (fio_close(fd) != 0) {
		s.err = errno;
		s.what = "close";
		goto out;
	}
	if (fio_rename(tmp, final) != 0) {
		s.err = errno;
		s.what = "rename";
		goto out;
	}
	if (fio_fsync_dir(vdir) != 0) {
		/* The file is complete, but its name may not survive a crash;
		 * that leaves the older snapshot, which is fine, but say so. */
		s.err = errno;
		s.what = "fsync of the directory";
		goto out;
	}
	log_info("snapshot: wrote %s/%s: %ld nodes, %zu ACLs, %zu sessions, %" PRId64 " bytes in %" PRId64 " ms"
		 "%s", vdir, name, s.nodes, s.acls.n, n_sessions, s.bytes, now_ms() - t0,
		 s.late_acl || s.skipped ? " (some nodes changed during the walk; the log covers them)" : "");
out:
	if (s.err) {
		snprintf(err, errlen, "snapshot %s/%s: %s failed: %s%s", vdir, name, s.what, strerror(s.err),
			 s.err == ENOSPC ? " (the dataDir disk is full)" : "");
		if (s.fd >= 0)
			fio_close(s.fd);
		if (strcmp(s.what, "fsync of the directory") != 0)
			fio_unlink(tmp);
	}
	jute_writer_free(&s.w);
	acl_table_free(&s.acls);
	free(final);
	free(tmp);
	free(vdir);
	return s.err ? -1 : 0;
}

/* ---- loading ------------------------------------------------------------ */

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

static struct zblob *acl_lookup(struct acl_ref *v, size_t n, int64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo].id == id ? v[lo].blob : NULL;
}

struct loaded {
	struct ztree *tree;
	struct snap_session *sessions;
	size_t n_sessions;
};

/* Parses a whole snapshot image. 0, or -1 with a reason naming the offset. */
static int parse_image(const uint8_t *p, size_t size, struct loaded *out, char *err, size_t errlen)
{
	struct jute_reader r;
	jute_reader_init(&r, p, size, size);
	struct acl_ref *acls = NULL;
	size_t n_acls = 0;
	struct zblob *open_blob = tree_blob_new(zk_open_acl, (int32_t)zk_open_acl_len);
	struct ztree *t = NULL;
	struct tree_loader *ld = NULL;
	int rc = -1;
	size_t at = 0;

	int32_t magic = jute_read_int(&r);
	jute_read_int(&r);           /* version: ZooKeeper does not check it either */
	jute_read_long(&r);          /* dbid */
	if (!jute_ok(&r))
		goto short_read;
	if ((uint32_t)magic != SNAP_MAGIC) {
		snprintf(err, errlen, "not a snapshot (magic 0x%08x)", (uint32_t)magic);
		goto out;
	}
	at = r.off;
	int32_t ns = jute_read_count(&r, SESSION_SIZE);
	if (!jute_ok(&r))
		goto short_read;
	if (ns > 0) {
		out->sessions = malloc((size_t)ns * sizeof *out->sessions);
		if (!out->sessions)
			abort();
	}
	for (int32_t i = 0; i < ns; i++) {
		out->sessions[i].id = jute_read_long(&r);
		out->sessions[i].timeout = jute_read_int(&r);
	}
	out->n_sessions = ns > 0 ? (size_t)ns : 0;
	at = r.off;
	int32_t na = jute_read_count(&r, ACL_ENTRY_MIN);
	if (!jute_ok(&r))
		goto short_read;
	if (na > 0) {
		acls = calloc((size_t)na, sizeof *acls);
		if (!acls)
			abort();
	}
	for (int32_t i = 0; i < na; i++) {
		at = r.off;
		int64_t id = jute_read_long(&r);
		size_t start = r.off;
		struct rec_acl_vec v;
		if (rec_read_acl_vector(&r, &v) != 0)
			goto short_read;
		if (v.count < 0) {
			snprintf(err, errlen, "ACL map entry %" PRId64 " at offset %zu is a null list", id, at);
			goto out;
		}
		acls[n_acls++] = (struct acl_ref){ id, (size_t)i, tree_blob_new(p + start, (int32_t)(r.off - start)) };
	}
	/* ZooKeeper reads the map into a HashMap: a repeated id keeps the last. */
	if (n_acls)
		qsort(acls, n_acls, sizeof *acls, cmp_acl_ref);
	size_t k = 0;
	for (size_t i = 0; i < n_acls; i++) {
		if (k && acls[k - 1].id == acls[i].id) {
			tree_blob_unref(acls[k - 1].blob);
			acls[k - 1] = acls[i];
		} else {
			acls[k++] = acls[i];
		}
	}
	n_acls = k;

	t = tree_new();
	if (!t)
		abort();
	ld = tree_loader_new(t);
	for (;;) {
		at = r.off;
		struct jute_buf path = jute_read_buffer(&r);
		if (!jute_ok(&r))
			goto short_read;
		if (path.len == 1 && path.data[0] == '/')
			break;
		if (path.len < 0) {
			snprintf(err, errlen, "null path at offset %zu", at);
			goto out;
		}
		struct jute_buf data = jute_read_buffer(&r);
		int64_t acl = jute_read_long(&r);
		struct zk_stat st = { 0 };
		st.czxid = jute_read_long(&r);
		st.mzxid = jute_read_long(&r);
		st.ctime = jute_read_long(&r);
		st.mtime = jute_read_long(&r);
		st.version = jute_read_int(&r);
		st.cversion = jute_read_int(&r);
		st.aversion = jute_read_int(&r);
		st.ephemeral_owner = jute_read_long(&r);
		st.pzxid = jute_read_long(&r);
		if (!jute_ok(&r))
			goto short_read;
		struct zblob *ab = acl == OPEN_ACL_ID ? open_blob : acl_lookup(acls, n_acls, acl);
		if (!ab) {
			snprintf(err, errlen, "node %.*s at offset %zu refers to ACL id %" PRId64 ", which the ACL map "
				 "does not have", path.len > 200 ? 200 : path.len, (const char *)path.data, at, acl);
			goto out;
		}
		const char *pp = path.len == 0 ? "/" : (const char *)path.data;
		size_t plen = path.len == 0 ? 1 : (size_t)path.len;
		char why[256];
		rcu_read_lock();
		int a = tree_loader_add(ld, pp, plen, &st, data.data, data.len, ab, why, sizeof why);
		rcu_read_unlock();
		if (a != 0) {
			snprintf(err, errlen, "at offset %zu: %s", at, why);
			goto out;
		}
	}
	/* the seal: checksum of everything before it, then "/" */
	size_t seal = r.off;
	uint64_t sum = (uint64_t)jute_read_long(&r);
	struct jute_buf mark = jute_read_buffer(&r);
	if (!jute_ok(&r))
		goto short_read;
	uint32_t running = adler32(p, seal);
	if (sum != running || mark.len != 1 || mark.data[0] != '/') {
		snprintf(err, errlen, "checksum mismatch at offset %zu (file says 0x%" PRIx64 ", content gives 0x%08x)",
			 seal, sum, running);
		goto out;
	}
	if (jute_remaining(&r) > 0) {
		/* ZxidDigest and its own seal (3.6+); the value itself is not used */
		at = r.off;
		jute_read_long(&r);
		int32_t dv = jute_read_int(&r);
		if (dv < 2)
			jute_read_buffer(&r);   /* old versions wrote the digest as a hex string */
		else
			jute_read_long(&r);
		size_t seal2 = r.off;
		uint64_t sum2 = (uint64_t)jute_read_long(&r);
		struct jute_buf mark2 = jute_read_buffer(&r);
		if (!jute_ok(&r))
			goto short_read;
		running = adler32_update(running, p + seal, seal2 - seal);
		if (sum2 != running || mark2.len != 1 || mark2.data[0] != '/') {
			snprintf(err, errlen, "digest checksum mismatch at offset %zu", seal2);
			goto out;
		}
	}
	char why[256];
	rcu_read_lock();
	int f = tree_loader_finish(ld, why, sizeof why);
	ld = NULL;
	if (f == 0 && !tree_lookup(t, "/", 1)) {
		snprintf(why, sizeof why, "no root node");
		f = -1;
	}
	if (f == 0)
		tree_init_system_nodes(t);
	rcu_read_unlock();
	if (f != 0) {
		snprintf(err, errlen, "%s", why);
		goto out;
	}
	out->tree = t;
	t = NULL;
	rc = 0;
	goto out;
short_read:
	snprintf(err, errlen, "%s in the record at offset %zu",
		 r.err == JUTE_SHORT ? "file ends early" : "bad length", at);
out:
	if (ld)
		tree_loader_abort(ld);
	if (t)
		tree_free(t);
	for (size_t i = 0; i < n_acls; i++)
		tree_blob_unref(acls[i].blob);
	free(acls);
	tree_blob_unref(open_blob);
	if (rc != 0) {
		free(out->sessions);
		out->sessions = NULL;
		out->n_sessions = 0;
	}
	return rc;
}

/* SnapStream.isValidSnapshot: at least 10 bytes, ending with the "/" of a
 * seal (int 1, '/'). */
static bool looks_complete(const uint8_t *p, size_t size)
{
	static const uint8_t tail[5] = { 0, 0, 0, 1, '/' };
	return size >= 10 && memcmp(p + size - 5, tail, 5) == 0;
}

/* 0 loaded, 1 skipped (reason in err), -1 I/O error. */
static int load_one(const char *path, struct loaded *out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	if (size < 10) {
		close(fd);
		snprintf(err, errlen, "only %zu bytes: incomplete", size);
		return 1;
	}
	void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "cannot map %zu bytes: %s", size, strerror(errno));
		return -1;
	}
	madvise(m, size, MADV_SEQUENTIAL);
	int rc;
	if (!looks_complete(m, size)) {
		snprintf(err, errlen, "incomplete: does not end with a seal (%zu bytes)", size);
		rc = 1;
	} else {
		rc = parse_image(m, size, out, err, errlen) == 0 ? 0 : 1;
	}
	munmap(m, size);
	return rc;
}

static void deliver_sessions(struct loaded *l, snap_session_fn fn, void *arg)
{
	for (size_t i = 0; fn && i < l->n_sessions; i++)
		fn(arg, l->sessions[i].id, l->sessions[i].timeout);
	free(l->sessions);
}

int snapshot_load_file(const char *path, struct ztree **tree_out, snap_session_fn on_session, void *arg,
		       char *err, size_t errlen)
{
	struct loaded l = { 0 };
	char why[400];
	int rc = load_one(path, &l, why, sizeof why);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	deliver_sessions(&l, on_session, arg);
	*tree_out = l.tree;
	return 0;
}

int snapshot_load(const char *dir, struct ztree **tree_out, int64_t *zxid_out, snap_session_fn on_session,
		  void *arg, char *err, size_t errlen)
{
	*tree_out = NULL;
	char *vdir = datadir_version_dir(dir, false, err, errlen);
	struct dd_file *files = NULL;
	int n = datadir_list(vdir, "snapshot", false, &files, err, errlen);
	int rc = n < 0 ? -1 : 1;
	char first_why[512] = "";
	for (int i = 0; i < n && i < SNAP_MAX_TRIES; i++) {
		const struct dd_file *f = &files[i];
		if (f->suffix[0]) {
			snprintf(err, errlen, "%s/%s is compressed: zkd reads only uncompressed snapshots "
				 "(zookeeper.snapshot.compression.method=none); refusing to start from an older one",
				 vdir, f->name);
			rc = -1;
			break;
		}
		char *path = datadir_path(vdir, f->name);
		int64_t t0 = now_ms();
		struct loaded l = { 0 };
		char why[400];
		log_info("snapshot: reading %s", path);
		int r = load_one(path, &l, why, sizeof why);
		free(path);
		if (r < 0) {
			snprintf(err, errlen, "%s/%s: %s", vdir, f->name, why);
			rc = -1;
			break;
		}
		if (r == 1) {
			log_warn("snapshot %s/%s: %s; trying an older one", vdir, f->name, why);
			if (!first_why[0])
				snprintf(first_why, sizeof first_why, "%s: %s", f->name, why);
			continue;
		}
		log_info("snapshot: loaded %s/%s: %ld nodes, %zu sessions in %" PRId64 " ms", vdir, f->name,
			 (long)atomic_load(&l.tree->node_count), l.n_sessions, now_ms() - t0);
		deliver_sessions(&l, on_session, arg);
		*tree_out = l.tree;
		*zxid_out = f->zxid;
		rc = 0;
		break;
	}
	if (rc == 1 && n > 0) {
		snprintf(err, errlen, "none of the %d snapshot(s) in %s is valid (newest: %s)", n, vdir, first_why);
		rc = -1;
	}
	free(files);
	free(vdir);
	return rc;
}
