/*
 * storage_tool.c - zkd's storage code as a command-line tool, for the
 * ZooKeeper interop checks in test_storage_interop.py.
 *
 *   storage_tool gen DATADIR        a history written the way zkd writes it:
 *                                   snapshot.0 at the first start, txns logged
 *                                   in group commits, fuzzy snapshots, rolls
 *   storage_tool dump DATADIR [LOGDIR]   recover (snapshot + logs) and print the
 *                                   tree as clients see it, and the open sessions
 *   storage_tool dumplog DATADIR    every logged txn: zxid, session, cxid, type, path
 *   storage_tool dumpsnap FILE      one snapshot, persisted stats, as
 *                                   ZooKeeper's SnapshotFormatter shows them
 *
 * Output lines are canonical (sorted, hex) so a script can compare them with
 * what ZooKeeper's own tools and a real ZooKeeper server report.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/jute.h"
#include "net/log.h"
#include "net/records.h"
#include "storage/recovery.h"
#include "storage/snapshot.h"
#include "storage/tree.h"
#include "storage/txncodec.h"
#include "storage/txnlog.h"

static void die(const char *what, const char *err)
{
	fprintf(stderr, "storage_tool: %s: %s\n", what, err);
	exit(1);
}

/* ---- dumps ---------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

struct lines { char **v; size_t n, cap; };

static void add_line(struct lines *l, char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = s;
}

static void print_lines(struct lines *l)
{
	qsort(l->v, l->n, sizeof *l->v, cmp_str);
	for (size_t i = 0; i < l->n; i++) {
		puts(l->v[i]);
		free(l->v[i]);
	}
	free(l->v);
}

static char *hexs(const uint8_t *p, int32_t n)
{
	if (n < 0)
		return strdup("null");
	char *s = malloc((size_t)n * 2 + 1);
	for (int32_t i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", p[i]);
	s[2 * n] = '\0';
	return s;
}

/* "perms:scheme:id,..." */
static char *acl_text(const struct zblob *b)
{
	struct jute_reader r;
	jute_reader_init(&r, b->bytes, (size_t)(b->len > 0 ? b->len : 0), SIZE_MAX);
	struct rec_acl_vec v;
	size_t cap = 64 + (size_t)(b->len > 0 ? b->len : 0) * 2, at = 0;
	char *s = malloc(cap);
	s[0] = '\0';
	if (rec_read_acl_vector(&r, &v) != 0)
		return strcpy(s, "?");
	size_t pos = 0;
	struct rec_acl a;
	while (rec_acl_next(&v, &pos, &a))
		at += (size_t)snprintf(s + at, cap - at, "%s%d:%.*s:%.*s", at ? "," : "", a.perms,
				       a.scheme.len, (const char *)a.scheme.data, a.id.len, (const char *)a.id.data);
	return s;
}

static bool persisted;   /* dumpsnap: the stat as stored, not as clients see it */

static void node_line(void *arg, const struct znode *n)
{
	const struct znode_ver *v = tree_ver(n);
	struct zk_stat s;
	if (persisted)
		s = v->stat;
	else
		tree_client_stat(v, &s);
	char *data = hexs(v->data->bytes, v->data->len);
	char *acl = acl_text(v->acl);
	char *line;
	if (persisted)
		asprintf(&line, "node %s czxid=%" PRIx64 " mzxid=%" PRIx64 " pzxid=%" PRIx64 " cversion=%d version=%d "
			 "aversion=%d owner=%" PRIx64 " data=%s", n->path, (uint64_t)s.czxid, (uint64_t)s.mzxid,
			 (uint64_t)s.pzxid, s.cversion, s.version, s.aversion, (uint64_t)s.ephemeral_owner,
			 v->data->len > 0 ? data : "");
	else
		asprintf(&line, "node %s czxid=%" PRIx64 " mzxid=%" PRIx64 " pzxid=%" PRIx64 " ctime=%" PRId64
			 " mtime=%" PRId64 " version=%d cversion=%d aversion=%d owner=%" PRIx64 " dataLength=%d "
			 "numChildren=%d data=%s acl=%s", n->path, (uint64_t)s.czxid, (uint64_t)s.mzxid,
			 (uint64_t)s.pzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion,
			 (uint64_t)s.ephemeral_owner, s.data_length, s.num_children, data, acl);
	free(data);
	free(acl);
	add_line(arg, line);
}

struct sessions { int64_t id[4096]; int32_t to[4096]; int n; };

static void s_open(void *arg, int64_t id, int32_t to)
{
	struct sessions *s = arg;
	for (int i = 0; i < s->n; i++)
		if (s->id[i] == id) {
			s->to[i] = to;
			return;
		}
	if (s->n < 4096) {
		s->id[s->n] = id;
		s->to[s->n++] = to;
	}
}

static void s_close(void *arg, int64_t id)
{
	struct sessions *s = arg;
	for (int i = 0; i < s->n; i++)
		if (s->id[i] == id) {
			s->id[i] = s->id[--s->n];
			s->to[i] = s->to[s->n];
			return;
		}
}

static void print_tree_and_sessions(struct ztree *t, struct sessions *ss)
{
	struct lines l = { 0 };
	tree_foreach(t, node_line, &l);
	for (int i = 0; ss && i < ss->n; i++) {
		char *line;
		asprintf(&line, "session %" PRIx64 " timeout=%d", (uint64_t)ss->id[i], ss->to[i]);
		add_line(&l, line);
	}
	print_lines(&l);
}

static int cmd_dump(const char *data_dir, const char *log_dir)
{
	struct sessions ss = { .n = 0 };
	struct recovery_cb cb = { s_open, s_close, &ss, NULL };
	struct recovery_result r;
	char err[1024];
	if (recovery_run(data_dir, log_dir, false, &cb, &r, err, sizeof err) != 0)
		die("recovery", err);
	print_tree_and_sessions(r.tree, &ss);
	printf("last_zxid %" PRIx64 "\n", (uint64_t)r.last_zxid);
	tree_free(r.tree);
	return 0;
}

static int cmd_dumpsnap(const char *file)
{
	struct sessions ss = { .n = 0 };
	struct ztree *t;
	char err[1024];
	if (snapshot_load_file(file, &t, s_open, &ss, err, sizeof err) != 0)
		die("snapshot", err);
	persisted = true;
	print_tree_and_sessions(t, &ss);
	tree_free(t);
	return 0;
}

/* Request.op2String */
static const char *op_string(int type)
{
	switch (type) {
	case ZOP_CREATE: return "create";
	case ZOP_CREATE2: return "create2";
	case ZOP_CREATECONTAINER: return "createContainer";
	case ZOP_CREATETTL: return "createTtl";
	case ZOP_DELETE: return "delete";
	case ZOP_DELETECONTAINER: return "deleteContainer";
	case ZOP_SETDATA: return "setData";
	case ZOP_SETACL: return "setACL";
	case ZOP_CHECK: return "check";
	case ZOP_MULTI: return "multi";
	case ZOP_RECONFIG: return "reconfig";
	case ZOP_CREATESESSION: return "createSession";
	case ZOP_CLOSE: return "closeSession";
	case ZOP_ERROR: return "error";
	default: return "unknown";
	}
}

static int print_txn(void *arg, struct ztxn *t, char *err, size_t errlen)
{
	(void)arg; (void)err; (void)errlen;
	printf("txn zxid=%" PRIx64 " session=%" PRIx64 " cxid=%" PRIx64 " type=%s", (uint64_t)t->zxid,
	       (uint64_t)t->session_id, (uint64_t)(int64_t)t->cxid, op_string(t->op ? t->op : t->type));
	if (t->path)
		printf(" path=%s", t->path);
	if (t->type == ZOP_MULTI) {
		printf(" ops=");
		for (int i = 0; i < t->n_sub; i++)
			printf("%s%s", i ? ";" : "", op_string(t->sub[i].op));
	}
	putchar('\n');
	return 0;
}

static int cmd_dumplog(const char *dir)
{
	int64_t last;
	char err[1024];
	if (txnlog_replay(dir, 0, print_txn, NULL, &last, err, sizeof err) != 0)
		die("replay", err);
	return 0;
}

/* ---- gen: a history written as zkd writes it ------------------------------ */

struct gen {
	struct ztree *tree;
	struct txnlog *log;
	int64_t zxid, now;
	const char *dir;
	struct sessions ss;
};

static const uint8_t *digest_acl(size_t *len)
{
	/* digest user "alice" with password "secret": ZooKeeper's SHA-1 form */
	static const char id[] = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";
	static uint8_t buf[128];
	size_t n = strlen(id);
	jute_put_u32(buf, 2);
	jute_put_u32(buf + 4, 31);
	jute_put_u32(buf + 8, 6);
	memcpy(buf + 12, "digest", 6);
	jute_put_u32(buf + 18, (uint32_t)n);
	memcpy(buf + 22, id, n);
	size_t o = 22 + n;
	jute_put_u32(buf + o, 1);                      /* and world:anyone may read */
	jute_put_u32(buf + o + 4, 5);
	memcpy(buf + o + 8, "world", 5);
	jute_put_u32(buf + o + 13, 6);
	memcpy(buf + o + 17, "anyone", 6);
	*len = o + 23;
	return buf;
}

static struct ztxn next(struct gen *g, int32_t type, int64_t session)
{
	g->zxid++;
	g->now += 7;
	return (struct ztxn){ .type = type, .session_id = session, .cxid = (int32_t)(g->zxid % 1000), .zxid = g->zxid,
			      .time = g->now };
}

static void commit(struct gen *g, struct ztxn *t)
{
	char err[512];
	if (txnlog_append(g->log, t) != 0)
		die("append", txnlog_error(g->log));
	rcu_read_lock();
	txn_apply(g->tree, t, NULL, NULL);
	rcu_read_unlock();
	if (t->type == ZOP_CREATESESSION)
		s_open(&g->ss, t->session_id, t->timeout);
	if (t->type == ZOP_CLOSE)
		s_close(&g->ss, t->session_id);
	ztxn_clear(t);
	(void)err;
}

static int32_t parent_cv(struct gen *g, const char *path)
{
	size_t plen, nlen;
	const char *name;
	tree_split(path, strlen(path), &plen, &name, &nlen);
	rcu_read_lock();
	struct znode *p = tree_lookup(g->tree, path, plen);
	int32_t cv = p ? tree_ver(p)->stat.cversion + 1 : 0;
	rcu_read_unlock();
	return cv;
}

static void fill(struct gen *g, struct ztxn *t, const char *path, const void *data, int32_t len, bool secret,
		 int64_t owner)
{
	t->path = strdup(path);
	t->path_len = strlen(path);
	if (len >= 0) {
		uint8_t *d = malloc(len ? (size_t)len : 1);
		memcpy(d, data, (size_t)len);
		t->data = d;
	}
	t->data_len = len;
	t->data_owned = true;
	size_t al = zk_open_acl_len;
	const uint8_t *a = secret ? digest_acl(&al) : zk_open_acl;
	t->acl = malloc(al);
	memcpy(t->acl, a, al);
	t->acl_len = al;
	t->ephemeral_owner = owner;
	t->parent_cversion = parent_cv(g, path);
}

static void g_create(struct gen *g, const char *path, const void *data, int32_t len, bool secret, int64_t owner,
		     int64_t session)
{
	int32_t type = owner == ZK_CONTAINER_OWNER ? ZOP_CREATECONTAINER : ZOP_CREATE;
	struct ztxn t = next(g, type, session);
	fill(g, &t, path, data, len, secret, owner);
	commit(g, &t);
}

static int32_t version_of(struct gen *g, const char *path, bool acl)
{
	rcu_read_lock();
	struct znode *n = tree_lookup(g->tree, path, strlen(path));
	int32_t v = acl ? tree_ver(n)->stat.aversion : tree_ver(n)->stat.version;
	rcu_read_unlock();
	return v;
}

static void g_set(struct gen *g, const char *path, const char *data, int64_t session)
{
	struct ztxn t = next(g, ZOP_SETDATA, session);
	t.path = strdup(path);
	t.path_len = strlen(path);
	t.data = (const uint8_t *)data;
	t.data_len = (int32_t)strlen(data);
	t.version = version_of(g, path, false) + 1;
	commit(g, &t);
}

static void g_sync(struct gen *g)
{
	if (txnlog_sync(g->log) != 0)
		die("sync", txnlog_error(g->log));
}

static void g_snapshot(struct gen *g)
{
	struct snap_session ss[4096];
	for (int i = 0; i < g->ss.n; i++)
		ss[i] = (struct snap_session){ g->ss.id[i], g->ss.to[i] };
	char err[512];
	if (txnlog_roll(g->log) != 0)
		die("roll", txnlog_error(g->log));
	if (snapshot_write(g->dir, g->tree, g->zxid, ss, (size_t)g->ss.n, err, sizeof err) != 0)
		die("snapshot", err);
}

static int cmd_gen(const char *dir)
{
	struct gen g = { .dir = dir };
	char err[512];
	struct recovery_result r;
	if (recovery_run(dir, NULL, false, NULL, &r, err, sizeof err) != 0)   /* writes snapshot.0 */
		die("recovery", err);
	g.tree = r.tree;
	g.zxid = r.last_zxid;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	g.now = (int64_t)ts.tv_sec * 1000 - 60000;
	g.log = txnlog_open(dir, 256 * 1024, true, err, sizeof err);
	if (!g.log)
		die("open", err);

	/* session ids as ZooKeeper makes them: (ms << 24) >>> 8, myid in the top byte */
	int64_t s1 = (int64_t)(((uint64_t)ts.tv_sec * 1000 << 24) >> 8 | (1ULL << 56)), s2 = s1 + 1, s3 = s1 + 2;
	struct ztxn t = next(&g, ZOP_CREATESESSION, s1);
	t.timeout = 30000;
	commit(&g, &t);
	t = next(&g, ZOP_CREATESESSION, s2);
	t.timeout = 40000;
	commit(&g, &t);
	g_sync(&g);

	static uint8_t big[300000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 31 + 7);
	g_create(&g, "/app", "config", 6, false, 0, s1);
	g_create(&g, "/app/null", NULL, -1, false, 0, s1);
	g_create(&g, "/app/empty", "", 0, false, 0, s1);
	g_create(&g, "/app/big", big, (int32_t)sizeof big, false, 0, s1);
	g_create(&g, "/app/secret", "s3cr3t", 6, true, 0, s1);
	g_create(&g, "/app/eph", "e", 1, false, s1, s1);
	g_create(&g, "/app/eph2", "e", 1, false, s2, s2);
	g_create(&g, "/locks", NULL, -1, false, ZK_CONTAINER_OWNER, s1);
	g_create(&g, "/locks/l1", "", 0, false, s1, s1);
	g_sync(&g);
	for (int i = 0; i < 40; i++) {
		char p[64];
		snprintf(p, sizeof p, "/app/item-%010d", parent_cv(&g, "/app/x") - 1);
		g_create(&g, p, p, (int32_t)strlen(p), i % 4 == 0, 0, s1);
		if (i % 5 == 0)
			g_set(&g, "/app", p, s1);
		if (i % 7 == 0)
			g_sync(&g);
	}
	g_sync(&g);
	g_snapshot(&g);

	/* setACL, delete, multi (ok and failed), error, check, closeSession */
	t = next(&g, ZOP_SETACL, s1);
	t.path = strdup("/app/empty");
	t.path_len = strlen(t.path);
	size_t al;
	const uint8_t *a = digest_acl(&al);
	t.acl = malloc(al);
	memcpy(t.acl, a, al);
	t.acl_len = al;
	t.version = version_of(&g, "/app/empty", true) + 1;
	commit(&g, &t);
	for (int i = 0; i < 40; i += 3) {
		char p[64];
		snprintf(p, sizeof p, "/app/item-%010d", i);
		t = next(&g, ZOP_DELETE, s1);
		t.path = strdup(p);
		t.path_len = strlen(p);
		commit(&g, &t);
	}
	t = next(&g, ZOP_MULTI, s1);
	t.sub = calloc(4, sizeof *t.sub);
	t.cap_sub = 4;
	for (int i = 0; i < 2; i++) {
		struct ztxn *c = &t.sub[t.n_sub++];
		c->type = ZOP_CREATE;
		c->op = i ? ZOP_CREATE2 : ZOP_CREATE;
		c->zxid = t.zxid;
		c->time = t.time;
		fill(&g, c, i ? "/m2" : "/m1", "multi", 5, false, 0);
		c->parent_cversion += i;
	}
	struct ztxn *c = &t.sub[t.n_sub++];
	c->type = ZOP_SETDATA;
	c->op = ZOP_SETDATA;
	c->path = strdup("/m1");
	c->path_len = 3;
	c->data = (const uint8_t *)"changed";
	c->data_len = 7;
	c->version = 1;
	c = &t.sub[t.n_sub++];
	c->type = ZOP_CHECK;
	c->op = ZOP_CHECK;
	c->path = strdup("/m2");
	c->path_len = 3;
	c->version = 0;
	commit(&g, &t);
	t = next(&g, ZOP_MULTI, s2);           /* a failed multi: every op an error */
	t.sub = calloc(2, sizeof *t.sub);
	t.cap_sub = 2;
	t.n_sub = 2;
	t.sub[0] = (struct ztxn){ .type = ZOP_ERROR, .op = ZOP_ERROR, .err = ZOK };
	t.sub[1] = (struct ztxn){ .type = ZOP_ERROR, .op = ZOP_ERROR, .err = ZNODEEXISTS };
	commit(&g, &t);
	t = next(&g, ZOP_ERROR, s2);
	t.err = ZNONODE;
	commit(&g, &t);
	t = next(&g, ZOP_CHECK, s1);          /* logged as a multi holding the check */
	t.path = strdup("/app");
	t.path_len = 4;
	t.version = version_of(&g, "/app", false);
	commit(&g, &t);
	g_sync(&g);

	t = next(&g, ZOP_CREATESESSION, s3);
	t.timeout = 10000;
	commit(&g, &t);
	g_create(&g, "/app/eph3", "x", 1, false, s3, s3);
	g_create(&g, "/app/eph4", "x", 1, false, s3, s3);
	t = next(&g, ZOP_CLOSE, s3);
	t.n_close_paths = 2;
	t.close_paths = calloc(2, sizeof(char *));
	t.close_paths[0] = strdup("/app/eph3");
	t.close_paths[1] = strdup("/app/eph4");
	commit(&g, &t);
	g_snapshot(&g);
	for (int i = 0; i < 10; i++)
		g_set(&g, "/app/null", "now set", s2);
	g_create(&g, "/tail", "after the last snapshot", 23, false, 0, s2);
	g_sync(&g);
	if (txnlog_close(g.log) != 0)
		die("close", "failed");
	printf("generated %s: last zxid %" PRIx64 "\n", dir, (uint64_t)g.zxid);
	tree_free(g.tree);
	return 0;
}

int main(int argc, char **argv)
{
	log_set_level(LOG_WARN);
	rcu_register_thread();
	int rc = 2;
	if (argc >= 3 && strcmp(argv[1], "gen") == 0)
		rc = cmd_gen(argv[2]);
	else if (argc >= 3 && strcmp(argv[1], "dump") == 0)
		rc = cmd_dump(argv[2], argc > 3 ? argv[3] : NULL);
	else if (argc >= 3 && strcmp(argv[1], "dumplog") == 0)
		rc = cmd_dumplog(argv[2]);
	else if (argc >= 3 && strcmp(argv[1], "dumpsnap") == 0)
		rc = cmd_dumpsnap(argv[2]);
	else
		fprintf(stderr, "usage: storage_tool gen|dump|dumplog|dumpsnap DIR|FILE [LOGDIR]\n");
	rcu_unregister_thread();
	return rc;
}
