/*
 * client_harness.c - see client_harness.h.
 */
#include "client_harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>

#include "fake_net.h"
#include "net/log.h"
#include "processors/acl.h"
#include "processors/final.h"
#include "processors/pipeline.h"
#include "processors/prep.h"
#include "processors/request.h"
#include "processors/session.h"
#include "processors/stage.h"
#include "processors/watch.h"
#include "storage/quota.h"
#include "storage/txncodec.h"

struct zk_state harness_state;

static struct net_callbacks callbacks;
static struct stage prep_stage, final_stage;
static struct zreq *pending_head, **pending_tail = &pending_head;
static struct ztree *replica;
static struct harness_opts opts;

/* ---- the pipeline, on this thread ---------------------------------------------- */

void pipeline_submit(struct zreq *r)
{
	r->link = NULL;
	*pending_tail = r;
	pending_tail = &r->link;
}

static void fake_revalidate(void *ctx, int64_t session_id, int32_t timeout, net_addr conn)
{
	(void)ctx;
	(void)timeout;
	struct zreq *r = zreq_new(session_id, opts.revalidate_ok, ZNOTE_REVALIDATED, NULL, 0);
	if (!r)
		abort();
	r->msg.to = conn;
	net_post(conn, &r->msg);
}

/* What Proposal/Sync do with the txn, and what a follower makes of it. */
static void replicate(struct zreq *r, struct ztxn *decoded, bool *have)
{
	*have = false;
	if (!r->txn.zxid || !r->txn.type)
		return;
	struct jute_writer w;
	char err[256];
	jute_writer_init(&w, 128);
	if (txn_encode(&w, &r->txn, err, sizeof err) != 0) {
		fprintf(stderr, "harness: Prep built a txn that cannot be encoded (type %d, zxid 0x%" PRIx64 "): %s\n",
			r->txn.type, (uint64_t)r->txn.zxid, err);
		abort();
	}
	size_t len;
	uint8_t *p = jute_writer_take(&w, &len);
	if (!p)
		abort();
	if (txn_decode(p, len, decoded, err, sizeof err) != 0) {
		fprintf(stderr, "harness: a txn Prep built does not decode (type %d, zxid 0x%" PRIx64 "): %s\n",
			r->txn.type, (uint64_t)r->txn.zxid, err);
		abort();
	}
	/* decoded owns its data (data_owned): p can go */
	free(p);
	*have = true;
}

static void replica_apply(struct ztxn *t)
{
	if (t->type == ZOP_CREATESESSION)
		return;
	rcu_read_lock();
	txn_apply(replica, t, NULL, NULL);
	rcu_read_unlock();
}

static void run_final(struct zreq *r)
{
	struct ztxn decoded;
	bool have;
	replicate(r, &decoded, &have);
	/* Final applies and posts (or frees) r; the trees are compared at the end */
	final_stage.handle(&final_stage, r);
	if (have) {
		replica_apply(&decoded);
		ztxn_clear(&decoded);
	}
}

void harness_pump(void)
{
	for (int rounds = 0; pending_head && rounds < 1000; rounds++) {
		struct zreq *batch = pending_head;
		pending_head = NULL;
		pending_tail = &pending_head;
		while (batch) {
			struct zreq *r = batch;
			batch = r->link;
			r->link = NULL;
			prep_stage.handle(&prep_stage, r);
		}
		struct cds_wfcq_node *node;
		while ((node = __cds_wfcq_dequeue_blocking(&prep_stage.out_head, &prep_stage.out_tail)) != NULL)
			run_final(caa_container_of(node, struct zreq, qnode));
		if (final_stage.batch_done)
			final_stage.batch_done(&final_stage);
		fake_net_run();
	}
	fake_net_run();
}

void harness_feed(struct net_conn *c, const uint8_t *p, size_t len, int batch)
{
	size_t off = 0;
	while (off < len && fake_net_reading(c)) {
		if (fake_net_paused(c)) {
			harness_pump();
			if (fake_net_paused(c))
				break;          /* nothing will unpause it */
		}
		size_t used = fake_net_feed(c, p + off, len - off, opts.max_buffer, batch);
		off += used;
		if (used == 0 && !fake_net_paused(c))
			break;
		if (batch)
			harness_pump();
	}
	harness_pump();
}

/* ---- the starting tree ---------------------------------------------------------- */

static int64_t seed_zxid;

static void seed_create(struct ztree *t, const char *path, const char *data, const uint8_t *acl, size_t acl_len,
			int64_t owner)
{
	size_t len = strlen(path), plen = 0, nlen = 0;
	const char *name;
	if (!tree_split(path, len, &plen, &name, &nlen))
		abort();
	rcu_read_lock();
	struct znode *parent = tree_lookup(t, path, plen);
	int32_t cv = parent ? tree_ver(parent)->stat.cversion + 1 : 1;
	int64_t zxid = ++seed_zxid;
	struct ztxn x = {
		.type = owner == ZK_CONTAINER_OWNER ? ZOP_CREATECONTAINER :
			(owner & ZK_TTL_MASK) == ZK_TTL_PREFIX && owner ? ZOP_CREATETTL : ZOP_CREATE,
		.session_id = owner, .zxid = zxid, .time = 1700000000000LL + zxid,
		.path = (char *)path, .path_len = len,
		.data = (const uint8_t *)data, .data_len = data ? (int32_t)strlen(data) : -1,
		.acl = (uint8_t *)acl, .acl_len = acl_len,
		.ephemeral_owner = owner, .parent_cversion = cv,
	};
	int rc = txn_apply(t, &x, NULL, NULL);
	rcu_read_unlock();
	if (rc != ZOK) {
		fprintf(stderr, "harness: seeding %s: %d\n", path, rc);
		abort();
	}
}

static size_t make_acl(uint8_t *out, size_t cap, int32_t perms, const char *scheme, const char *id)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);
	jute_write_int(&w, 1);
	rec_write_acl(&w, perms, scheme, id);
	size_t len;
	uint8_t *p = jute_writer_take(&w, &len);
	if (!p || len > cap)
		abort();
	memcpy(out, p, len);
	free(p);
	return len;
}

static struct ztree *seed_tree(void)
{
	struct ztree *t = tree_new();
	if (!t)
		abort();
	rcu_read_lock();
	tree_init_system_nodes(t);
	rcu_read_unlock();
	seed_zxid = 0;
	char digest[300];
	if (!acl_digest_id("u:p", 3, digest, sizeof digest))
		abort();
	uint8_t dacl[400], iacl[100], racl[100];
	size_t dlen = make_acl(dacl, sizeof dacl, ZPERM_ALL, "digest", digest);
	size_t ilen = make_acl(iacl, sizeof iacl, ZPERM_READ | ZPERM_CREATE, "ip", "127.0.0.0/8");
	size_t rlen = make_acl(racl, sizeof racl, ZPERM_READ, "world", "anyone");
	seed_create(t, "/a", "hello", zk_open_acl, zk_open_acl_len, 0);
	seed_create(t, "/a/b", NULL, zk_open_acl, zk_open_acl_len, 0);
	seed_create(t, "/eph", "e", zk_open_acl, zk_open_acl_len, HARNESS_SESSION);
	seed_create(t, "/digest", "secret", dacl, dlen, 0);
	seed_create(t, "/ip", "ip", iacl, ilen, 0);
	seed_create(t, "/ro", "ro", racl, rlen, 0);
	seed_create(t, "/cont", NULL, zk_open_acl, zk_open_acl_len, ZK_CONTAINER_OWNER);
	seed_create(t, "/ttl", "t", zk_open_acl, zk_open_acl_len, ZK_TTL_PREFIX | 60000);
	seed_create(t, "/zookeeper/quota/a", NULL, zk_open_acl, zk_open_acl_len, 0);
	seed_create(t, "/zookeeper/quota/a/zookeeper_limits", "count=5,bytes=100", zk_open_acl, zk_open_acl_len, 0);
	seed_create(t, "/zookeeper/quota/a/zookeeper_stats", "count=2,bytes=5", zk_open_acl, zk_open_acl_len, 0);
	rcu_read_lock();
	quota_rebuild(t);
	rcu_read_unlock();
	return t;
}

/* ---- the replica check ------------------------------------------------------------ */

static int mismatches;

static bool stat_eq(const struct zk_stat *a, const struct zk_stat *b)
{
	return a->czxid == b->czxid && a->mzxid == b->mzxid && a->ctime == b->ctime && a->mtime == b->mtime &&
	       a->version == b->version && a->cversion == b->cversion && a->aversion == b->aversion &&
	       a->ephemeral_owner == b->ephemeral_owner && a->data_length == b->data_length &&
	       a->num_children == b->num_children && a->pzxid == b->pzxid;
}

static bool blob_eq(const struct zblob *a, const struct zblob *b)
{
	if (!a || !b)
		return a == b;
	return a->len == b->len && (a->len <= 0 || memcmp(a->bytes, b->bytes, (size_t)a->len) == 0);
}

static void compare_node(void *arg, const struct znode *n)
{
	struct ztree *other = arg;
	struct znode *m = tree_lookup(other, n->path, n->path_len);
	if (!m) {
		fprintf(stderr, "harness: replica lacks %s\n", n->path);
		mismatches++;
		return;
	}
	const struct znode_ver *a = tree_ver(n), *b = tree_ver(m);
	struct zk_stat sa, sb;
	tree_client_stat(a, &sa);
	tree_client_stat(b, &sb);
	if (!stat_eq(&sa, &sb) || !blob_eq(a->data, b->data) || !blob_eq(a->acl, b->acl)) {
		fprintf(stderr, "harness: %s differs on the replica (version %d/%d, cversion %d/%d, "
			"aversion %d/%d, mzxid 0x%" PRIx64 "/0x%" PRIx64 ", pzxid 0x%" PRIx64 "/0x%" PRIx64
			", owner 0x%" PRIx64 "/0x%" PRIx64 ", children %d/%d)\n",
			n->path, sa.version, sb.version, sa.cversion, sb.cversion, sa.aversion, sb.aversion,
			(uint64_t)sa.mzxid, (uint64_t)sb.mzxid, (uint64_t)sa.pzxid, (uint64_t)sb.pzxid,
			(uint64_t)sa.ephemeral_owner, (uint64_t)sb.ephemeral_owner, sa.num_children,
			sb.num_children);
		mismatches++;
	}
}

static void check_replica(void)
{
	mismatches = 0;
	tree_foreach(harness_state.tree, compare_node, replica);
	long a = atomic_load(&harness_state.tree->node_count), b = atomic_load(&replica->node_count);
	if (a != b) {
		fprintf(stderr, "harness: %ld nodes on the leader, %ld on the replica\n", a, b);
		mismatches++;
	}
	if (mismatches)
		abort();
}

/* ---- lifecycle ----------------------------------------------------------------------- */

void harness_init(void)
{
	rcu_register_thread();
	log_set_level(LOG_DEBUG);
	watches_init();
	processors_net_callbacks(&harness_state, &callbacks);
	fake_net_init(&callbacks);
}

void harness_begin(const struct harness_opts *o)
{
	opts = *o;
	struct zk_state *st = &harness_state;
	/* the stats and atomics start at zero, as a fresh server's */
	memset(st, 0, sizeof *st);
	st->tree = seed_tree();
	replica = seed_tree();
	st->sessions = sessions_new(1);
	if (!st->sessions)
		abort();
	/* new session ids as ZooKeeper makes them, but from a fixed clock, so
	 * that an input runs the same way every time */
	atomic_store(&st->sessions->next_id, (long long)(((uint64_t)1700000000000LL << 24 >> 8) | (1ULL << 56)));
	sessions_add(st->sessions, HARNESS_SESSION, 30000);
	st->limits.tick_time = 2000;
	st->limits.min_session_timeout = o->min_timeout;
	st->limits.max_session_timeout = o->max_timeout;
	st->limits.max_buffer = o->max_buffer;
	st->limits.global_outstanding_limit = o->outstanding_limit;
	st->limits.myid = 1;
	st->limits.extended_types = o->extended_types;
	if (o->super_digest && !acl_digest_id("super:pw", 8, st->limits.super_digest, sizeof st->limits.super_digest))
		abort();
	if (o->x509_super)
		snprintf(st->limits.x509_super_user, sizeof st->limits.x509_super_user, "%s", HARNESS_X509);
	st->storage.snap_count = 100000;
	atomic_store(&st->last_applied, seed_zxid);
	atomic_store(&st->serving, o->serving);
	atomic_store(&st->read_only, o->read_only);
	atomic_store(&st->role, o->learner ? ZK_FOLLOWER : ZK_STANDALONE);
	st->revalidate = fake_revalidate;
	memset(&prep_stage, 0, sizeof prep_stage);
	memset(&final_stage, 0, sizeof final_stage);
	/* stage.h: the input queues are initialised once, before stage_init */
	cds_wfcq_init(&prep_stage.head, &prep_stage.tail);
	cds_wfcq_init(&final_stage.head, &final_stage.tail);
	final_init(&final_stage, st, NULL);
	prep_init(&prep_stage, &final_stage, st);
}

static size_t conns_seen;   /* keeps the walk from being optimised away */

static void count_conn(void *arg, const struct zk_conn_info *ci)
{
	(void)arg;
	conns_seen += strlen(ci->peer) + (size_t)ci->queued;
}

void harness_end(void)
{
	harness_pump();
	/* what the four-letter words cons, wchs, wchc and wchp read: the
	 * fuzzed paths and sessions */
	processors_each_conn(count_conn, NULL);
	struct zk_watch *w;
	size_t nw = processors_watches(&w);
	processors_watches_free(w, nw);
	(void)watch_total();   /* not processors_watch_count: pipeline.c must stay out of the link */
	fake_net_shutdown();
	/* requests of closed connections still queued (a pause that never
	 * ended): through the pipeline, their replies find nobody */
	harness_pump();
	check_replica();
	prep_free();
	sessions_free(harness_state.sessions);
	tree_free(harness_state.tree);
	tree_free(replica);
	harness_state.sessions = NULL;
	harness_state.tree = replica = NULL;
}

size_t harness_connect_frame(uint8_t *buf, size_t cap, int64_t session_id, bool good_password, int32_t timeout,
			     bool read_only)
{
	uint8_t pw[16] = { 0 };
	if (good_password)
		session_password(session_id, pw);
	struct rec_connect_req req = {
		.protocol_version = 0, .last_zxid_seen = 0, .timeout = timeout, .session_id = session_id,
		.passwd = { pw, 16 }, .read_only = read_only,
	};
	struct jute_writer w;
	jute_writer_init(&w, 64);
	jute_write_int(&w, 0);
	rec_write_connect_req(&w, &req);
	jute_patch_int(&w, 0, (int32_t)(w.len - 4));
	size_t len;
	uint8_t *p = jute_writer_take(&w, &len);
	if (!p || len > cap)
		abort();
	memcpy(buf, p, len);
	free(p);
	return len;
}
