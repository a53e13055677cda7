/*
 * readpath.c - what an I/O thread does with a client's frames.
 *
 * The I/O thread that owns a connection decodes every frame. Reads (exists,
 * getData, getChildren, getACL, ping, ...) are answered right here from the
 * RCU tree, without a hand-off. Writes, sync, connect and close go to Prep as
 * a zreq; Final posts the zreq back here with its reply.
 *
 * Ordering (DESIGN.md rules 1 and 2): a session's replies leave in request
 * order and its reads see its own writes. So while a write of this
 * connection is in the pipeline, a read must wait: it is parked, and every
 * frame after it is parked too, until the writes before it have come back.
 * A write that arrives while nothing is parked goes straight to Prep even if
 * other writes are in flight: the pipeline keeps their order.
 *
 * Every function here runs on the connection's I/O thread; struct client is
 * that thread's alone. The connection list for `cons` is the one shared
 * piece, under a mutex taken only on open, close and by `cons`.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "net/grow.h"
#include "net/log.h"
#include "net/tsan.h"
#include "net/metrics.h"
#include "path.h"
#include "pipeline.h"
#include "processors.h"
#include "reqmetrics.h"
#include "request.h"
#include "session.h"
#include "watch.h"

enum client_state {
	CL_NEW,             /* waiting for ConnectRequest */
	CL_CONNECTING,      /* createSession is in the pipeline */
	CL_REVALIDATING,    /* a learner asked the leader about a resumed session */
	CL_READY,
	CL_CLOSING,         /* closeSession sent or connection refused */
};

struct parked {
	struct parked *next;
	size_t len;
	uint8_t bytes[];
};

struct client {
	struct client *prev, *next;     /* registry for `cons` (registry_lock) */
	struct net_conn *conn;
	net_addr addr;                  /* immutable: registry readers may use it */
	bool secure;                    /* immutable: on the secure client port */
	struct zk_state *st;
	enum client_state state;
	int64_t session_id;
	int timeout_ms;
	int in_flight;                  /* zreqs of this connection inside the pipeline */
	struct parked *parked_head, *parked_tail;
	int n_parked;
	struct auth_ids ids;            /* ip + addauth identities */
	char peer[64];
	int64_t established_ms;
	/* Watches this connection registered (the table is in watch.c); kept to
	 * remove them when the connection closes. May hold stale entries (fired
	 * one-shot watches), compacted when it doubles. */
	struct wreg { int kind; uint32_t len; char *path; } *watches;
	int n_watches, cap_watches, compact_at;
	int64_t seen_zxid;              /* the newest change the current read looked at */
	bool throttled;                 /* paused by globalOutstandingLimit */
	bool read_only;                 /* a read-only session (no quorum) */
	struct client *throttle_next;
	/* `cons` reads these without the owner's knowledge: relaxed atomics. */
	atomic_long recved, sent, last_zxid, last_cxid, lat_min, lat_max, lat_total, lat_count;
	atomic_long last_resp_ms, last_lat;     /* monotonic ms of the last reply (ZooKeeper's
	                                           elapsed time), its latency (µs) */
	atomic_int last_op;
};

#define PARK_PAUSE_LIMIT 1024       /* stop reading a connection with this many parked */
#define MAX_IO 256

/* Connections paused because the pipeline holds more than
 * globalOutstandingLimit requests, per I/O thread (each list its thread's). */
static struct client *throttled[MAX_IO];

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

/* addauth requests refused (mntr's auth_failed_count); I/O threads add. */
static struct metric_counter *auth_failed;
static struct client *registry;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void atomic_min(atomic_long *v, long x)
{
	long cur = atomic_load_explicit(v, memory_order_relaxed);
	while ((cur == 0 || x < cur) && !atomic_compare_exchange_weak(v, &cur, x))
		;
}

static void atomic_max(atomic_long *v, long x)
{
	long cur = atomic_load_explicit(v, memory_order_relaxed);
	while (x > cur && !atomic_compare_exchange_weak(v, &cur, x))
		;
}

/* ServerStats.updateClientResponseSize (see zk_stats for the encoding). */
static void note_response(struct client *cl, size_t len)
{
	struct zk_stats *s = &cl->st->stats;
	long v = (long)len + 1;
	atomic_store_explicit(&s->resp_last, v, memory_order_relaxed);
	atomic_min(&s->resp_min, v);
	atomic_max(&s->resp_max, v);
}

void processors_response_sizes(const struct zk_state *st, long *last, long *min, long *max)
{
	*last = atomic_load_explicit(&st->stats.resp_last, memory_order_relaxed) - 1;
	*min = atomic_load_explicit(&st->stats.resp_min, memory_order_relaxed) - 1;
	*max = atomic_load_explicit(&st->stats.resp_max, memory_order_relaxed) - 1;
}

static void count_reply(struct client *cl, int op, int64_t recv_ns, int64_t zxid, int32_t xid)
{
	long us = (long)((now_ns() - recv_ns) / 1000);
	reqmetrics_reply(op, us);
	struct zk_stats *s = &cl->st->stats;
	atomic_fetch_add_explicit(&s->lat_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->lat_total_us, us, memory_order_relaxed);
	atomic_min(&s->lat_min_us, us ? us : 1);
	atomic_max(&s->lat_max_us, us);
	atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&cl->lat_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&cl->lat_total, us, memory_order_relaxed);
	atomic_min(&cl->lat_min, us ? us : 1);
	atomic_max(&cl->lat_max, us);
	atomic_store_explicit(&cl->last_lat, us, memory_order_relaxed);
	atomic_store_explicit(&cl->last_resp_ms, (long)mono_ms(), memory_order_relaxed);
	atomic_store_explicit(&cl->last_op, op, memory_order_relaxed);
	atomic_store_explicit(&cl->last_zxid, zxid, memory_order_relaxed);
	if (xid > 0)
		atomic_store_explicit(&cl->last_cxid, xid, memory_order_relaxed);
	net_count_sent_packet();
}

static int64_t last_applied(const struct client *cl)
{
	return atomic_load_explicit(&cl->st->last_applied, memory_order_acquire);
}

/* ---- replies encoded in place ----------------------------------------------- */

static void send_header_only(struct client *cl, int32_t xid, int64_t zxid, int err)
{
	struct jute_writer *w = net_conn_out(cl->conn);
	size_t mark = net_frame_begin(w);
	struct rec_reply_header h = { xid, zxid, err };
	rec_write_reply_header(w, &h);
	net_frame_end(w, mark);
	note_response(cl, 16);          /* xid, zxid, err */
}

static void send_connect_response(struct client *cl, bool valid, int timeout, bool old_client)
{
	bool ro = cl->read_only;
	uint8_t pw[16] = { 0 };
	if (valid)
		session_password(cl->session_id, pw);
	struct rec_connect_resp resp = {
		.protocol_version = 0, .timeout = valid ? timeout : 0,
		.session_id = valid ? cl->session_id : 0, .passwd = pw, .passwd_len = 16,
		.read_only = ro,
	};
	struct jute_writer *w = net_conn_out(cl->conn);
	size_t mark = net_frame_begin(w);
	rec_write_connect_resp(w, &resp);
	if (old_client)
		w->len--;
	net_frame_end(w, mark);
}

/* ---- sessions ------------------------------------------------------------------ */

static void touch_session(struct client *cl)
{
	if (!cl->session_id)
		return;
	rcu_read_lock();
	struct zsession *s = sessions_find(cl->st->sessions, cl->session_id);
	if (s) {
		atomic_store_explicit(&s->deadline_ms, mono_ms() + cl->timeout_ms, memory_order_relaxed);
		if (!atomic_load_explicit(&s->touched, memory_order_relaxed))
			atomic_store_explicit(&s->touched, true, memory_order_relaxed);
	}
	zkd_rcu_read_unlock();
}

static int clamp_timeout(const struct zk_limits *l, int t)
{
	if (t < l->min_session_timeout)
		t = l->min_session_timeout;
	if (t > l->max_session_timeout)
		t = l->max_session_timeout;
	return t;
}

static struct zreq *new_zreq(struct client *cl, int32_t xid, int32_t type, const uint8_t *body, size_t len)
{
	struct zreq *r = zreq_new(cl->session_id, xid, type, body, len);
	if (!r)
		return NULL;
	r->msg.to = net_conn_addr(cl->conn);
	/* beyond the ip identity every connection has; a learner forwards them
	 * all (a ZooKeeper leader checks ACLs against the packet's authinfo) */
	int role = atomic_load_explicit(&cl->st->role, memory_order_relaxed);
	if (cl->ids.n > 1 || role == ZK_FOLLOWER || role == ZK_OBSERVER) {
		r->ids = malloc(sizeof *r->ids);
		if (r->ids)
			*r->ids = cl->ids;
	}
	return r;
}

/* ZooKeeper stops reading from clients while more than
 * globalOutstandingLimit requests are in flight; so do we, per connection
 * that adds to the backlog, until on_idle sees it drained or the
 * connection's own last request comes back (release_if_idle). */
static void throttle_if_needed(struct client *cl, long outstanding)
{
	int limit = cl->st->limits.global_outstanding_limit;
	if (limit <= 0 || outstanding <= limit || cl->throttled)
		return;
	int io = net_conn_io_index(cl->conn) % MAX_IO;
	cl->throttled = true;
	cl->throttle_next = throttled[io];
	throttled[io] = cl;
	net_conn_pause(cl->conn, true);
}

static void unthrottle_all(int io_index, struct zk_state *st)
{
	int io = io_index % MAX_IO;
	int limit = st->limits.global_outstanding_limit;
	if (!throttled[io] || atomic_load_explicit(&st->stats.outstanding, memory_order_relaxed) > limit)
		return;
	for (struct client *cl = throttled[io], *next; cl; cl = next) {
		next = cl->throttle_next;
		cl->throttled = false;
		cl->throttle_next = NULL;
		if (cl->n_parked < PARK_PAUSE_LIMIT)
			net_conn_pause(cl->conn, false);
	}
	throttled[io] = NULL;
}

static void unthrottle_one(struct client *cl)
{
	if (!cl->throttled)
		return;
	struct client **pp = &throttled[net_conn_io_index(cl->conn) % MAX_IO];
	while (*pp && *pp != cl)
		pp = &(*pp)->throttle_next;
	if (*pp)
		*pp = cl->throttle_next;
	cl->throttled = false;
}

/* As ZooKeeper's shouldThrottle, which holds only a connection with
 * requests of its own in flight: its last reply resumes it even while the
 * backlog is over the limit. Waiting for the backlog alone could wait
 * forever: on_idle runs on this connection's I/O thread, and once this
 * connection's replies are out nothing may wake that thread again while
 * other threads' clients drain the pipeline. */
static void release_if_idle(struct client *cl)
{
	if (!cl->throttled || cl->in_flight > 0)
		return;
	unthrottle_one(cl);
	if (cl->n_parked < PARK_PAUSE_LIMIT)
		net_conn_pause(cl->conn, false);
}

static void submit(struct client *cl, struct zreq *r)
{
	cl->in_flight++;
	r->counted = true;
	long n = atomic_fetch_add_explicit(&cl->st->stats.outstanding, 1, memory_order_relaxed) + 1;
	throttle_if_needed(cl, n);
	pipeline_submit(r);
}

/* The end of a reconnect: the answer to the client, and the session's
 * connection moves here. */
static void finish_reconnect(struct client *cl, bool valid, const char *why)
{
	net_addr old = 0, me = net_conn_addr(cl->conn);
	if (valid) {
		rcu_read_lock();
		struct zsession *s = sessions_find(cl->st->sessions, cl->session_id);
		if (s && !atomic_load(&s->closing)) {
			atomic_store(&s->timeout_ms, cl->timeout_ms);
			atomic_store(&s->deadline_ms, mono_ms() + cl->timeout_ms);
			old = atomic_exchange(&s->conn, me);
			if (atomic_load(&cl->st->role) == ZK_LEADER)
				atomic_store(&s->owner, cl->st->limits.myid);
		} else {
			valid = false;
			why = "session expired";
		}
		zkd_rcu_read_unlock();
	}
	send_connect_response(cl, valid, cl->timeout_ms, false);
	if (!valid) {
		log_info("session 0x%" PRIx64 ": reconnect from %s refused (%s)", (uint64_t)cl->session_id,
			 cl->peer, why);
		cl->state = CL_CLOSING;
		net_conn_close(cl->conn, "session expired or wrong password");
		return;
	}
	if (old && old != me) {
		struct zreq *n = zreq_new(0, 0, ZOP_CLOSE, NULL, 0);
		if (n) {
			n->close_after = true;
			n->msg.to = old;
			net_post(old, &n->msg);
		}
	}
	log_info("session 0x%" PRIx64 ": resumed from %s, timeout %d ms", (uint64_t)cl->session_id,
		 cl->peer, cl->timeout_ms);
	cl->state = CL_READY;
	net_conn_established(cl->conn);
}

/* Resumes a session on this connection (id + password). A learner asks
 * the leader first (REVALIDATE), which also makes this server the
 * session's owner; everyone else answers at once. */
static int reconnect(struct client *cl, const struct rec_connect_req *req, int timeout)
{
	uint8_t pw[16];
	session_password(req->session_id, pw);
	bool pw_ok = req->passwd.len == 16 && memcmp(pw, req->passwd.data, 16) == 0;
	rcu_read_lock();
	struct zsession *s = sessions_find(cl->st->sessions, req->session_id);
	bool live = s && !atomic_load(&s->closing);
	zkd_rcu_read_unlock();
	cl->session_id = req->session_id;
	cl->timeout_ms = timeout;
	if (!pw_ok || !live) {
		finish_reconnect(cl, false, !pw_ok ? "wrong password" : "session expired");
		return 0;
	}
	int role = atomic_load(&cl->st->role);
	if ((role == ZK_FOLLOWER || role == ZK_OBSERVER) && cl->st->revalidate) {
		cl->state = CL_REVALIDATING;
		cl->st->revalidate(cl->st->revalidate_ctx, req->session_id, timeout, net_conn_addr(cl->conn));
		return 0;
	}
	finish_reconnect(cl, true, NULL);
	return 0;
}

/* Without a quorum (read-only mode): a client that can be read-only gets a
 * session only this server knows, or resumes its own if the table still
 * has it; nothing goes through the pipeline (ZooKeeper's
 * ReadOnlyZooKeeperServer). Others are refused. */
static int connect_read_only(struct client *cl, const struct rec_connect_req *req, int timeout, bool old_client)
{
	if (!req->read_only) {
		log_info("client %s: refusing a session that cannot be read-only: this server has no quorum",
			 cl->peer);
		return -1;
	}
	cl->read_only = true;
	cl->timeout_ms = timeout;
	bool valid = true;
	if (req->session_id) {
		uint8_t pw[16];
		session_password(req->session_id, pw);
		rcu_read_lock();
		struct zsession *s = sessions_find(cl->st->sessions, req->session_id);
		valid = s && !atomic_load(&s->closing) && req->passwd.len == 16 && !memcmp(pw, req->passwd.data, 16);
		zkd_rcu_read_unlock();
		cl->session_id = req->session_id;
	} else {
		cl->session_id = sessions_next_id(cl->st->sessions);
	}
	send_connect_response(cl, valid, timeout, old_client);
	if (!valid) {
		cl->state = CL_CLOSING;
		net_conn_close(cl->conn, "session expired");
		return 0;
	}
	log_info("session 0x%" PRIx64 ": read-only for %s (no quorum), timeout %d ms", (uint64_t)cl->session_id,
		 cl->peer, timeout);
	cl->state = CL_READY;
	net_conn_established(cl->conn);
	return 0;
}

static int handle_connect(struct client *cl, const uint8_t *p, size_t len)
{
	struct jute_reader r;
	jute_reader_init(&r, p, len, cl->st->limits.max_buffer);
	struct rec_connect_req req;
	if (rec_read_connect_req(&r, &req) != 0) {
		log_warn("client %s: malformed ConnectRequest (%zu bytes), closing", cl->peer, len);
		return -1;
	}
	/* protocolVersion, lastZxidSeen, timeOut, sessionId, passwd: an old
	 * client stops there, without the readOnly byte */
	size_t without_ro = 4 + 8 + 4 + 8 + 4 + (req.passwd.len > 0 ? (size_t)req.passwd.len : 0);
	bool old_client = len <= without_ro;
	int64_t ours = last_applied(cl);
	if (req.last_zxid_seen > ours) {
		log_info("client %s: refusing session request: it has seen zxid 0x%" PRIx64
			 ", our last zxid is 0x%" PRIx64 "; client must try another server",
			 cl->peer, (uint64_t)req.last_zxid_seen, (uint64_t)ours);
		return -1;
	}
	int timeout = clamp_timeout(&cl->st->limits, req.timeout);
	if (!atomic_load(&cl->st->serving))
		return connect_read_only(cl, &req, timeout, old_client);
	if (req.session_id != 0)
		return reconnect(cl, &req, timeout);

	cl->session_id = sessions_next_id(cl->st->sessions);
	cl->timeout_ms = timeout;
	struct zreq *z = new_zreq(cl, 0, ZOP_CREATESESSION, NULL, 0);
	if (!z)
		return -1;
	z->txn.timeout = timeout;
	z->old_client = old_client;
	cl->state = CL_CONNECTING;
	submit(cl, z);
	return 0;
}

/* ---- reads served in place ------------------------------------------------------ */

static bool path_has_nul(struct jute_buf b)
{
	return b.len > 0 && memchr(b.data, '\0', (size_t)b.len) != NULL;
}

/* Looks the node up and checks `perm` (0 = none needed). Inside rcu_read_lock. */
static void saw(struct client *cl, int64_t zxid)
{
	if (zxid > cl->seen_zxid)
		cl->seen_zxid = zxid;
}

/* What a NoNode answer shows: a delete publishes the parent (with its new
 * pzxid) before it unlinks the node, and a create links the node before it
 * publishes the parent, so the nearest existing ancestor's pzxid, read after
 * the failed lookup, is the newest change this absence reflects. */
static void saw_absence(struct client *cl, const char *path, size_t len)
{
	size_t plen, nlen;
	const char *name;
	while (tree_split(path, len, &plen, &name, &nlen)) {
		struct znode *p = tree_lookup(cl->st->tree, path, plen);
		if (p) {
			saw(cl, tree_ver(p)->stat.pzxid);
			return;
		}
		len = plen;
	}
}

static int find_node(struct client *cl, struct jute_buf path, int perm, const struct znode_ver **out)
{
	if (path.len < 0)
		return ZMARSHALLINGERROR;      /* a null path: Java fails to use it */
	if (path.len == 0)
		path = (struct jute_buf){ (const uint8_t *)"/", 1 };   /* ZooKeeper keys the root as "" */
	struct znode *n = tree_lookup(cl->st->tree, (const char *)path.data, (size_t)path.len);
	if (!n) {
		saw_absence(cl, (const char *)path.data, (size_t)path.len);
		return ZNONODE;
	}
	const struct znode_ver *v = tree_ver(n);
	saw(cl, v->stat.mzxid);
	saw(cl, v->stat.pzxid);
	saw(cl, v->stat.czxid);
	if (perm && !acl_allows(v->acl->bytes, (size_t)v->acl->len, perm, &cl->ids))
		return ZNOAUTH;
	*out = v;
	return ZOK;
}

static void write_children(struct jute_writer *w, const struct znode_ver *v)
{
	uint32_t n = v->kids ? v->kids->n : 0;
	jute_write_int(w, (int32_t)n);
	for (uint32_t i = 0; i < n; i++)
		jute_write_buffer(w, v->kids->v[i].name, (int32_t)v->kids->v[i].len);
}

struct count_arg { const char *prefix; size_t len; int64_t session; int count; struct jute_writer *w; };

static bool under(const struct znode *n, const char *prefix, size_t len)
{
	if (len == 1 && prefix[0] == '/')
		return n->path_len > 1;
	return n->path_len > len && memcmp(n->path, prefix, len) == 0 && n->path[len] == '/';
}

static void count_descendant(void *arg, const struct znode *n)
{
	struct count_arg *a = arg;
	if (under(n, a->prefix, a->len))
		a->count++;
}

static void list_ephemeral(void *arg, const struct znode *n)
{
	struct count_arg *a = arg;
	if (tree_ver(n)->stat.ephemeral_owner != a->session)
		return;
	if (a->len == 1 || (n->path_len >= a->len && memcmp(n->path, a->prefix, a->len) == 0)) {
		jute_write_buffer(a->w, n->path, (int32_t)n->path_len);
		a->count++;
	}
}

static int serve_read(struct client *cl, int32_t type, struct jute_reader *r, struct jute_writer *w);
static int watch_op(struct client *cl, int32_t type, struct jute_reader *r, struct jute_writer *w);

static bool wreg_live(struct client *cl, const struct wreg *e)
{
	return watch_contains(e->kind, e->path, e->len, net_conn_addr(cl->conn));
}

/* Drops fired one-shot watches and duplicates from the connection's list. */
static void compact_watches(struct client *cl)
{
	int n = 0;
	for (int i = 0; i < cl->n_watches; i++) {
		struct wreg *e = &cl->watches[i];
		bool keep = wreg_live(cl, e);
		for (int j = 0; keep && j < n; j++)
			keep = !(cl->watches[j].kind == e->kind && cl->watches[j].len == e->len &&
				 memcmp(cl->watches[j].path, e->path, e->len) == 0);
		if (keep)
			cl->watches[n++] = *e;
		else
			free(e->path);
	}
	cl->n_watches = n;
	cl->compact_at = n * 2 > 64 ? n * 2 : 64;
}

/* Records a watch in the connection's list; `held`: the caller holds the
 * path's stripe (watch_read_begin) around this and its read. */
static void register_watch_as(struct client *cl, int kind, struct jute_buf path, int mode, bool held)
{
	if (path.len <= 0)
		return;
	/* compaction takes stripe locks: never while the caller holds one */
	if (!held && cl->n_watches >= cl->compact_at)
		compact_watches(cl);
	if (cl->n_watches == cl->cap_watches) {
		int cap = cl->cap_watches ? cl->cap_watches * 2 : 8;
		struct wreg *v = realloc(cl->watches, (size_t)cap * sizeof *v);
		if (!v)
			return;
		cl->watches = v;
		cl->cap_watches = cap;
	}
	char *copy = malloc((size_t)path.len);
	if (!copy)
		return;
	memcpy(copy, path.data, (size_t)path.len);
	cl->watches[cl->n_watches++] = (struct wreg){ kind, (uint32_t)path.len, copy };
	if (held)
		watch_add_held(kind, (const char *)path.data, (size_t)path.len, net_conn_addr(cl->conn), mode);
	else
		watch_add(kind, (const char *)path.data, (size_t)path.len, net_conn_addr(cl->conn), mode);
}

static void register_watch(struct client *cl, int kind, struct jute_buf path, int mode)
{
	register_watch_as(cl, kind, path, mode, false);
}

/* A watch=true read: the registration and the read under one stripe lock. */
static int watched_find(struct client *cl, int kind, struct jute_buf path, int perm, const struct znode_ver **v)
{
	if (path.len <= 0)
		return find_node(cl, path, perm, v);
	if (cl->n_watches >= cl->compact_at)
		compact_watches(cl);
	watch_read_begin(kind, (const char *)path.data, (size_t)path.len);
	register_watch_as(cl, kind, path, WM_STANDARD, true);
	int rc = find_node(cl, path, perm, v);
	/* getData/getChildren leave no watch on a node they cannot read
	 * (exists, perm 0, keeps its watch on a missing node) */
	if (rc != ZOK && perm)
		watch_remove_held(kind, (const char *)path.data, (size_t)path.len, net_conn_addr(cl->conn));
	watch_read_end(kind, (const char *)path.data, (size_t)path.len);
	return rc;
}

static void drop_watches(struct client *cl)
{
	net_addr me = net_conn_addr(cl->conn);
	for (int i = 0; i < cl->n_watches; i++) {
		watch_remove(cl->watches[i].kind, cl->watches[i].path, cl->watches[i].len, me);
		free(cl->watches[i].path);
	}
	free(cl->watches);
	cl->watches = NULL;
	cl->n_watches = cl->cap_watches = 0;
}

/* multiRead: getData and getChildren ops, each answered or failed alone. */
static int serve_multi_read(struct client *cl, struct jute_reader *r, struct jute_writer *w)
{
	for (;;) {
		struct rec_multi_header h;
		if (rec_read_multi_header(r, &h) != 0)
			return ZMARSHALLINGERROR;
		if (h.done)
			break;
		if (h.type != ZOP_GETDATA && h.type != ZOP_GETCHILDREN)
			return ZMARSHALLINGERROR;
		size_t hdr_at = w->len;
		struct rec_multi_header out = { h.type, false, 0 };
		rec_write_multi_header(w, &out);
		int rc = serve_read(cl, h.type, r, w);
		if (rc == ZMARSHALLINGERROR)
			return rc;
		if (rc != ZOK) {
			w->len = hdr_at;
			out.type = ZOP_ERROR;
			out.err = rc;
			rec_write_multi_header(w, &out);
			jute_write_int(w, rc);
		}
	}
	struct rec_multi_header done = { -1, true, -1 };
	rec_write_multi_header(w, &done);
	return ZOK;
}

/* Encodes the reply to a read; returns the error code for the header. */
/* getACL as ZooKeeper 3.8 answers it: whoever may neither READ nor ADMIN
 * the node sees digest ids as user:x, never the password hash. */
static void write_acl_for(struct client *cl, const struct znode_ver *v, struct jute_writer *w)
{
	const uint8_t *acl = v->acl->bytes;
	size_t len = (size_t)v->acl->len;
	if (acl_allows(acl, len, ZPERM_READ | ZPERM_ADMIN, &cl->ids)) {
		jute_write_raw(w, acl, len);
		return;
	}
	struct jute_reader r;
	jute_reader_init(&r, acl, len, len);
	struct rec_acl_vec vec;
	if (rec_read_acl_vector(&r, &vec) != 0 || vec.count < 0) {
		jute_write_raw(w, acl, len);
		return;
	}
	jute_write_int(w, vec.count);
	size_t pos = 0;
	struct rec_acl a;
	char scheme[64], id[512];
	while (rec_acl_next(&vec, &pos, &a)) {
		snprintf(scheme, sizeof scheme, "%.*s", a.scheme.len > 0 ? a.scheme.len : 0, (const char *)a.scheme.data);
		snprintf(id, sizeof id, "%.*s", a.id.len > 0 ? a.id.len : 0, (const char *)a.id.data);
		char *colon = strchr(id, ':');
		if (!strcmp(scheme, "digest") && colon && (size_t)(colon - id) + 3 <= sizeof id)
			strcpy(colon + 1, "x");
		rec_write_acl(w, a.perms, scheme, id);
	}
}

static int serve_read(struct client *cl, int32_t type, struct jute_reader *r, struct jute_writer *w)
{
	const struct znode_ver *v;
	struct zk_stat stat;
	int rc;
	switch (type) {
	case ZOP_EXISTS: {
		struct rec_path_watch req;
		if (rec_read_path_watch(r, &req) != 0)
			return ZMARSHALLINGERROR;
		if (path_has_nul(req.path))
			return ZBADARGUMENTS;
		/* an exists watch is set whether or not the node is there;
		 * exists needs no permission (ZooKeeper 3.8) */
		rc = req.watch ? watched_find(cl, WATCH_DATA, req.path, 0, &v) : find_node(cl, req.path, 0, &v);
		if (rc != ZOK)
			return rc;
		tree_client_stat(v, &stat);
		rec_write_stat(w, &stat);
		return ZOK;
	}
	case ZOP_GETDATA: {
		struct rec_path_watch req;
		if (rec_read_path_watch(r, &req) != 0)
			return ZMARSHALLINGERROR;
		if ((rc = find_node(cl, req.path, ZPERM_READ, &v)) != ZOK)
			return rc;
		/* only an existing, readable node gets the watch: read again with it
		 * (a node deleted in between leaves a watch that the delete fired,
		 * or one that waits on a missing node: ZooKeeper's answer in both
		 * orders is NoNode) */
		if (req.watch && (rc = watched_find(cl, WATCH_DATA, req.path, ZPERM_READ, &v)) != ZOK)
			return rc;
		jute_write_buffer(w, v->data->len >= 0 ? v->data->bytes : NULL, v->data->len);
		tree_client_stat(v, &stat);
		rec_write_stat(w, &stat);
		return ZOK;
	}
	case ZOP_GETCHILDREN:
	case ZOP_GETCHILDREN2: {
		struct rec_path_watch req;
		if (rec_read_path_watch(r, &req) != 0)
			return ZMARSHALLINGERROR;
		if ((rc = find_node(cl, req.path, ZPERM_READ, &v)) != ZOK)
			return rc;
		if (req.watch && (rc = watched_find(cl, WATCH_CHILD, req.path, ZPERM_READ, &v)) != ZOK)
			return rc;
		write_children(w, v);
		if (type == ZOP_GETCHILDREN2) {
			tree_client_stat(v, &stat);
			rec_write_stat(w, &stat);
		}
		return ZOK;
	}
	case ZOP_GETACL: {
		struct rec_path req;
		if (rec_read_path(r, &req) != 0)
			return ZMARSHALLINGERROR;
		if ((rc = find_node(cl, req.path, 0, &v)) != ZOK)
			return rc;
		write_acl_for(cl, v, w);
		tree_client_stat(v, &stat);
		rec_write_stat(w, &stat);
		return ZOK;
	}
	case ZOP_GETALLCHILDRENNUMBER: {
		struct rec_path req;
		if (rec_read_path(r, &req) != 0)
			return ZMARSHALLINGERROR;
		if ((rc = find_node(cl, req.path, ZPERM_READ, &v)) != ZOK)
			return rc;
		struct count_arg a = { (const char *)req.path.data, (size_t)req.path.len, 0, 0, NULL };
		tree_foreach(cl->st->tree, count_descendant, &a);
		jute_write_int(w, a.count);
		return ZOK;
	}
	case ZOP_GETEPHEMERALS: {
		struct rec_path req;
		if (rec_read_path(r, &req) != 0)
			return ZMARSHALLINGERROR;
		size_t at = w->len;
		jute_write_int(w, 0);
		struct count_arg a = { (const char *)req.path.data, req.path.len > 0 ? (size_t)req.path.len : 1,
				       cl->session_id, 0, w };
		if (req.path.len <= 0)
			a.prefix = "/";
		tree_foreach(cl->st->tree, list_ephemeral, &a);
		jute_patch_int(w, at, a.count);
		return ZOK;
	}
	case ZOP_MULTIREAD:
		return serve_multi_read(cl, r, w);
	case ZOP_ADDWATCH:
	case ZOP_REMOVEWATCHES:
	case ZOP_CHECKWATCHES:
		return watch_op(cl, type, r, w);
	case ZOP_WHOAMI:
		/* ClientInfo per identity: the scheme and the provider's user name */
		jute_write_int(w, cl->ids.n);
		for (int i = 0; i < cl->ids.n; i++) {
			const struct auth_id *id = &cl->ids.v[i];
			const char *colon = strchr(id->id, ':');
			size_t ulen = strcmp(id->scheme, "digest") == 0 && colon ? (size_t)(colon - id->id)
										 : strlen(id->id);
			jute_write_string(w, id->scheme);
			jute_write_buffer(w, id->id, (int32_t)ulen);
		}
		return ZOK;
	default:
		return ZUNIMPLEMENTED;
	}
}

static void on_event_delivered(struct net_conn *c, int type, const char *path, size_t len)
{
	(void)type; (void)path; (void)len;
	struct client *cl = net_conn_user(c);
	if (cl)
		atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
}

/* Rule 3: before a reply that shows state up to `shown` goes out, every
 * event of those changes must be queued (Final queues them before it
 * advances last_applied, so wait for that: a few hundred ns at most) and be
 * written ahead of the reply; events of this connection for later changes
 * go after it, as in ZooKeeper, where those changes came after the read.
 * The reply being built sits at [at, w->len) of the connection's output. */
static void events_around_reply(struct client *cl, struct jute_writer *w, size_t at, int64_t shown)
{
	int io = net_conn_io_index(cl->conn);
	for (int spins = 0; last_applied(cl) < shown; spins++)
		if (spins > 1000)
			sched_yield();
		else
			caa_cpu_relax();
	if (!notify_pending(io))
		return;
	size_t n = w->len - at;
	uint8_t *reply = malloc(n);
	if (!reply) {
		notify_drain(io, NULL, on_event_delivered);   /* order lost; better than none */
		return;
	}
	memcpy(reply, w->buf + at, n);
	w->len = at;
	struct notify_hold hold = { cl->addr, shown, NULL };
	notify_drain(io, &hold, on_event_delivered);
	jute_write_raw(w, reply, n);
	free(reply);
	notify_release(&hold, on_event_delivered);
}

static void answer_read(struct client *cl, const struct rec_request_header *h, struct jute_reader *r, int64_t recv)
{
	struct jute_writer *w = net_conn_out(cl->conn);
	size_t frame_at = w->len;
	size_t mark = net_frame_begin(w);
	size_t hdr_at = w->len;
	struct rec_reply_header rh = { h->xid, 0, 0 };
	rec_write_reply_header(w, &rh);
	/* everything up to `before` is in what the read sees; the header says
	 * the state the reply shows, not what was applied after it */
	int64_t before = last_applied(cl);
	cl->seen_zxid = 0;
	rcu_read_lock();
	int rc = serve_read(cl, h->type, r, w);
	zkd_rcu_read_unlock();
	int64_t zxid = before > cl->seen_zxid ? before : cl->seen_zxid;
	if (rc != ZOK)
		w->len = hdr_at + 16;     /* an error reply is the header alone */
	rh.zxid = zxid;
	rh.err = rc;
	size_t end = w->len;
	w->len = hdr_at;
	rec_write_reply_header(w, &rh);
	w->len = end;
	net_frame_end(w, mark);
	note_response(cl, w->len - frame_at - 4);
	events_around_reply(cl, w, frame_at, zxid);
	atomic_fetch_add_explicit(&cl->st->stats.reads, 1, memory_order_relaxed);
	count_reply(cl, h->type, recv, zxid, h->xid);
}

static void send_event(struct client *cl, int type, struct jute_buf path)
{
	struct jute_writer *w = net_conn_out(cl->conn);
	size_t start = w->len;
	size_t mark = net_frame_begin(w);
	struct rec_reply_header rh = { ZXID_NOTIFICATION, -1, 0 };
	rec_write_reply_header(w, &rh);
	rec_write_watcher_event(w, type, ZSTATE_SYNC_CONNECTED, (const char *)path.data, path.len);
	net_frame_end(w, mark);
	note_response(cl, w->len - start - 4);
	net_count_sent_packet();
	atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
}

/* Re-arms one list of a setWatches: as ZooKeeper's DataTree.setWatches, a
 * change the client missed while away fires at once instead. The watch is
 * registered before the node is looked at (rule 4) and withdrawn if it
 * fires here. */
static void rearm(struct client *cl, const struct rec_str_vec *v, int kind, bool exist, int64_t rel)
{
	size_t pos = 0;
	struct jute_buf path;
	net_addr me = net_conn_addr(cl->conn);
	while (rec_str_next(v, &pos, &path)) {
		if (path.len <= 0)
			continue;
		register_watch(cl, kind, path, WM_STANDARD);
		rcu_read_lock();
		struct znode *n = tree_lookup(cl->st->tree, (const char *)path.data, (size_t)path.len);
		int event = 0;
		if (exist) {
			if (n)
				event = ZEV_CREATED;
		} else if (!n) {
			event = ZEV_DELETED;
		} else {
			const struct znode_ver *ver = tree_ver(n);
			int64_t z = kind == WATCH_DATA ? ver->stat.mzxid : ver->stat.pzxid;
			if (z > rel)
				event = kind == WATCH_DATA ? ZEV_DATA_CHANGED : ZEV_CHILDREN_CHANGED;
		}
		zkd_rcu_read_unlock();
		if (event && watch_remove(kind, (const char *)path.data, (size_t)path.len, me))
			send_event(cl, event, path);
	}
}

static void rearm_persistent(struct client *cl, const struct rec_str_vec *v, int mode)
{
	size_t pos = 0;
	struct jute_buf path;
	while (rec_str_next(v, &pos, &path)) {
		register_watch(cl, WATCH_DATA, path, mode);
		if (mode != WM_RECURSIVE)
			register_watch(cl, WATCH_CHILD, path, mode);
	}
}

static int handle_set_watches(struct client *cl, struct jute_reader *r, int32_t xid, bool v2, int64_t recv)
{
	struct rec_set_watches sw;
	if (rec_read_set_watches(r, v2, &sw) != 0) {
		/* ZooKeeper answers MarshallingError and keeps the connection */
		send_header_only(cl, xid, last_applied(cl), ZMARSHALLINGERROR);
		count_reply(cl, v2 ? ZOP_SETWATCHES2 : ZOP_SETWATCHES, recv, last_applied(cl), 0);
		return 0;
	}
	rearm(cl, &sw.data, WATCH_DATA, false, sw.relative_zxid);
	rearm(cl, &sw.exist, WATCH_DATA, true, sw.relative_zxid);
	rearm(cl, &sw.child, WATCH_CHILD, false, sw.relative_zxid);
	if (v2) {
		rearm_persistent(cl, &sw.persistent, WM_PERSISTENT);
		rearm_persistent(cl, &sw.persistent_recursive, WM_RECURSIVE);
	}
	send_header_only(cl, xid, last_applied(cl), ZOK);
	count_reply(cl, v2 ? ZOP_SETWATCHES2 : ZOP_SETWATCHES, recv, last_applied(cl), 0);
	return 0;
}

/* addWatch, removeWatches, checkWatches: header-only answers. */
static int watch_op(struct client *cl, int32_t type, struct jute_reader *r, struct jute_writer *w)
{
	struct rec_path_mode req;
	if (rec_read_path_mode(r, &req) != 0)
		return ZMARSHALLINGERROR;
	if (req.path.len <= 0)
		return ZBADARGUMENTS;
	const char *p = (const char *)req.path.data;
	size_t len = (size_t)req.path.len;
	net_addr me = net_conn_addr(cl->conn);
	if (type == ZOP_ADDWATCH) {
		if (req.mode != 0 && req.mode != 1)
			return ZBADARGUMENTS;
		int mode = req.mode == 1 ? WM_RECURSIVE : WM_PERSISTENT;
		register_watch(cl, WATCH_DATA, req.path, mode);
		if (mode != WM_RECURSIVE)
			register_watch(cl, WATCH_CHILD, req.path, mode);
		jute_write_int(w, ZOK);   /* ZooKeeper answers addWatch with ErrorResponse(0) */
		return ZOK;
	}
	/* WatcherType: 1 children, 2 data, 3 any */
	bool child = req.mode == 1 || req.mode == 3, data = req.mode == 2 || req.mode == 3;
	if (!child && !data)
		return ZBADARGUMENTS;
	bool hit = false;
	if (type == ZOP_CHECKWATCHES) {
		hit = (child && watch_contains(WATCH_CHILD, p, len, me)) ||
		      (data && watch_contains(WATCH_DATA, p, len, me));
	} else {
		if (child)
			hit |= watch_remove(WATCH_CHILD, p, len, me);
		if (data)
			hit |= watch_remove(WATCH_DATA, p, len, me);
	}
	return hit ? ZOK : ZNOWATCHER;
}

/* Adds an identity unless the connection has it already (ZooKeeper's
 * addAuthInfo keeps a set). False only when the fixed table is full. */
static bool add_identity(struct client *cl, const char *scheme, const char *id)
{
	for (int i = 0; i < cl->ids.n; i++)
		if (strcmp(cl->ids.v[i].scheme, scheme) == 0 && strcmp(cl->ids.v[i].id, id) == 0)
			return true;
	if (cl->ids.n >= (int)(sizeof cl->ids.v / sizeof cl->ids.v[0]))
		return false;
	snprintf(cl->ids.v[cl->ids.n].scheme, sizeof cl->ids.v[0].scheme, "%s", scheme);
	snprintf(cl->ids.v[cl->ids.n].id, sizeof cl->ids.v[0].id, "%s", id);
	cl->ids.n++;
	return true;
}

static bool has_scheme(const struct client *cl, const char *scheme)
{
	for (int i = 0; i < cl->ids.n; i++)
		if (strcmp(cl->ids.v[i].scheme, scheme) == 0)
			return true;
	return false;
}

static bool scheme_is(struct jute_buf scheme, const char *name)
{
	return scheme.len == (int32_t)strlen(name) && memcmp(scheme.data, name, (size_t)scheme.len) == 0;
}

/* addauth, as ZooKeeper's providers answer it:
 *   digest  any text: the user is what precedes the first ':' (all of it
 *           without one), the password hash covers the whole text;
 *   ip      the connection's own address, whatever the text;
 *   x509    succeeds only on a connection whose client certificate was
 *           verified (it already holds that x509 identity);
 * anything else is AuthFailed, which closes the connection. */
static int handle_auth(struct client *cl, struct jute_reader *r)
{
	struct rec_auth_packet a;
	if (rec_read_auth_packet(r, &a) != 0)
		return -1;
	const char *why = "unknown scheme";
	bool ok = false;
	if (scheme_is(a.scheme, "digest") && a.auth.len >= 0) {
		char id[sizeof cl->ids.v[0].id];
		why = "identity too long";
		const char *text = a.auth.len > 0 ? (const char *)a.auth.data : "";
		if (acl_digest_id(text, (size_t)a.auth.len, id, sizeof id)) {
			/* DigestAuthenticationProvider: the superDigest holder is also "super" */
			const char *super = cl->st->limits.super_digest;
			ok = (!super[0] || strcmp(super, id) != 0 || add_identity(cl, "super", "")) &&
			     add_identity(cl, "digest", id);
			why = "too many identities on one connection";
		}
	} else if (scheme_is(a.scheme, "ip")) {
		ok = add_identity(cl, "ip", cl->ids.v[0].id);     /* v[0] is the peer's ip (on_open) */
		why = "too many identities on one connection";
	} else if (scheme_is(a.scheme, "x509")) {
		ok = has_scheme(cl, "x509");
		why = "no verified client certificate";
	}
	if (!ok)
		metric_inc(auth_failed);
	send_header_only(cl, ZXID_AUTH, 0, ok ? ZOK : ZAUTHFAILED);
	if (!ok) {
		log_warn("session 0x%" PRIx64 ": authentication failed for scheme '%.*s' (%s)",
			 (uint64_t)cl->session_id, a.scheme.len > 0 ? (int)a.scheme.len : 0,
			 a.scheme.len > 0 ? (const char *)a.scheme.data : "", why);
		cl->state = CL_CLOSING;
		net_conn_close(cl->conn, "authentication failed");
	}
	return 0;
}

static bool goes_through_pipeline(int type)
{
	switch (type) {
	case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
	case ZOP_DELETE: case ZOP_SETDATA: case ZOP_SETACL: case ZOP_CHECK: case ZOP_SYNC:
	case ZOP_MULTI: case ZOP_CLOSE:
		return true;
	default:
		return false;
	}
}

static bool is_known_op(int type)
{
	switch (type) {
	case ZOP_EXISTS: case ZOP_GETDATA: case ZOP_GETCHILDREN: case ZOP_GETCHILDREN2:
	case ZOP_GETACL: case ZOP_GETALLCHILDRENNUMBER: case ZOP_GETEPHEMERALS: case ZOP_PING:
	case ZOP_AUTH: case ZOP_MULTIREAD: case ZOP_ADDWATCH: case ZOP_REMOVEWATCHES:
	case ZOP_CHECKWATCHES: case ZOP_SETWATCHES: case ZOP_SETWATCHES2: case ZOP_WHOAMI:
		return true;
	default:
		return goes_through_pipeline(type);
	}
}

/* SASL: an opcode we know but do not serve (zkd has no SASL provider),
 * answered Unimplemented without dropping the session. */
static bool is_later_op(int type)
{
	switch (type) {
	case ZOP_SASL:
		return true;
	default:
		return false;
	}
}

/* One request of a ready session whose turn it is. */
static int process(struct client *cl, const uint8_t *p, size_t len, int64_t recv)
{
	struct jute_reader r;
	jute_reader_init(&r, p, len, cl->st->limits.max_buffer);
	struct rec_request_header h;
	if (rec_read_request_header(&r, &h) != 0) {
		log_warn("session 0x%" PRIx64 ": frame of %zu bytes too short for a request header, closing",
			 (uint64_t)cl->session_id, len);
		return -1;
	}
	atomic_fetch_add_explicit(&cl->recved, 1, memory_order_relaxed);
	if (h.type == ZOP_SYNC) {
		/* sync has no txn: Prep never decodes it, so check it here */
		struct rec_path sp;
		struct jute_reader sr = r;
		if (rec_read_path(&sr, &sp) != 0 || sp.path.len < 0) {
			send_header_only(cl, h.xid, last_applied(cl), ZMARSHALLINGERROR);
			count_reply(cl, h.type, recv, last_applied(cl), h.xid);
			return 0;
		}
	}
	if (cl->read_only && goes_through_pipeline(h.type)) {
		if (h.type == ZOP_CLOSE) {
			/* a session only this server knew: nothing to replicate */
			send_header_only(cl, h.xid, last_applied(cl), ZOK);
			cl->state = CL_CLOSING;
			net_conn_close(cl->conn, "session closed");
			return 0;
		}
		send_header_only(cl, h.xid, last_applied(cl), ZNOTREADONLY);
		count_reply(cl, h.type, recv, last_applied(cl), h.xid);
		return 0;
	}
	if (goes_through_pipeline(h.type)) {
		struct zreq *z = new_zreq(cl, h.xid, h.type, p + 8, len - 8);
		if (!z)
			return -1;
		z->recv_ns = recv;
		if (h.type == ZOP_CLOSE) {
			rcu_read_lock();
			struct zsession *s = sessions_find(cl->st->sessions, cl->session_id);
			if (s)
				atomic_store(&s->closing, true);
			zkd_rcu_read_unlock();
			cl->state = CL_CLOSING;
		}
		atomic_fetch_add_explicit(&cl->st->stats.writes, 1, memory_order_relaxed);
		submit(cl, z);
		return 0;
	}
	switch (h.type) {
	case ZOP_PING:
		send_header_only(cl, ZXID_PING, last_applied(cl), ZOK);
		count_reply(cl, h.type, recv, last_applied(cl), 0);
		return 0;
	case ZOP_AUTH:
		return handle_auth(cl, &r);
	case ZOP_SETWATCHES:
	case ZOP_SETWATCHES2:
		return handle_set_watches(cl, &r, h.xid, h.type == ZOP_SETWATCHES2, recv);
	default:
		break;
	}
	if (is_known_op(h.type)) {
		answer_read(cl, &h, &r, recv);
		return 0;
	}
	if (h.type == ZOP_RECONFIG) {
		/* ReconfigRequest {joiningServers, leavingServers, newMembers,
		 * curConfigId}: ZooKeeper decodes it first, then refuses it as
		 * reconfigEnabled is false (its default; and this is standalone) */
		struct jute_buf b;
		for (int i = 0; i < 3; i++)
			b = jute_read_buffer(&r);
		(void)b;
		jute_read_long(&r);
		send_header_only(cl, h.xid, last_applied(cl), jute_ok(&r) ? ZRECONFIGDISABLED : ZMARSHALLINGERROR);
		return 0;
	}
	send_header_only(cl, h.xid, last_applied(cl), ZUNIMPLEMENTED);
	if (is_later_op(h.type))
		return 0;
	log_warn("session 0x%" PRIx64 ": unknown request type %d, closing", (uint64_t)cl->session_id, h.type);
	cl->state = CL_CLOSING;
	net_conn_close(cl->conn, "unknown request type");
	return 0;
}

static bool is_pipelined_frame(const uint8_t *p, size_t len)
{
	return len >= 8 && goes_through_pipeline((int32_t)jute_get_u32(p + 4));
}

static int park(struct client *cl, const uint8_t *p, size_t len)
{
	struct parked *k = malloc(sizeof *k + len);
	if (!k)
		return -1;
	k->next = NULL;
	k->len = len;
	memcpy(k->bytes, p, len);
	if (cl->parked_tail)
		cl->parked_tail->next = k;
	else
		cl->parked_head = k;
	cl->parked_tail = k;
	if (++cl->n_parked >= PARK_PAUSE_LIMIT)
		net_conn_pause(cl->conn, true);
	return 0;
}

/* Runs parked frames whose turn has come. */
static int drain_parked(struct client *cl)
{
	int n = 0;
	while (cl->parked_head && cl->state == CL_READY) {
		struct parked *k = cl->parked_head;
		if (cl->in_flight > 0 && !is_pipelined_frame(k->bytes, k->len))
			break;
		cl->parked_head = k->next;
		if (!cl->parked_head)
			cl->parked_tail = NULL;
		cl->n_parked--;
		int rc = process(cl, k->bytes, k->len, now_ns());
		free(k);
		n++;
		if (rc != 0)
			return -1;
	}
	if (n && cl->n_parked < PARK_PAUSE_LIMIT && !cl->throttled)
		net_conn_pause(cl->conn, false);
	return 0;
}

/* ---- net callbacks ------------------------------------------------------------------ */

/* X509AuthenticationProvider.handleAuthentication, which ZooKeeper runs
 * when the TLS handshake is done: a verified client certificate makes the
 * connection x509:<subject DN>, and the configured superUser also super
 * (added first, as ZooKeeper adds it). */
static void add_x509_identity(struct client *cl, struct net_conn *c)
{
	char dn[sizeof cl->ids.v[0].id];
	int rc = net_conn_x509_subject(c, dn, sizeof dn);
	if (rc == 0)
		return;
	if (rc < 0) {
		log_warn("client %s: the subject of its certificate is longer than %zu bytes; "
			 "not authenticated as x509", cl->peer, sizeof dn - 1);
		return;
	}
	const char *super = cl->st->limits.x509_super_user;
	if (super[0] && strcmp(super, dn) == 0) {
		strcpy(cl->ids.v[cl->ids.n].scheme, "super");
		cl->ids.v[cl->ids.n].id[0] = '\0';   /* as for the superDigest holder */
		cl->ids.n++;
		log_info("client %s: x509 superUser, authenticated as super", cl->peer);
	}
	strcpy(cl->ids.v[cl->ids.n].scheme, "x509");
	memcpy(cl->ids.v[cl->ids.n].id, dn, sizeof dn);
	cl->ids.n++;
	log_info("client %s: authenticated as x509:%s", cl->peer, dn);
}

static void on_open(void *ctx, struct net_conn *c)
{
	struct client *cl = calloc(1, sizeof *cl);
	if (!cl) {
		net_conn_close(c, "out of memory");
		return;
	}
	cl->conn = c;
	cl->addr = net_conn_addr(c);
	cl->secure = net_conn_secure(c);
	cl->st = ctx;
	cl->compact_at = 64;
	cl->established_ms = wall_ms();
	snprintf(cl->peer, sizeof cl->peer, "%s", net_conn_peer(c));
	/* every connection has its address as an "ip" identity */
	strcpy(cl->ids.v[0].scheme, "ip");
	snprintf(cl->ids.v[0].id, sizeof cl->ids.v[0].id, "%s", cl->peer);
	char *colon = strrchr(cl->ids.v[0].id, ':');
	if (colon)
		*colon = '\0';
	cl->ids.n = 1;
	add_x509_identity(cl, c);
	net_conn_set_user(c, cl);
	pthread_mutex_lock(&registry_lock);
	cl->next = registry;
	if (registry)
		registry->prev = cl;
	registry = cl;
	pthread_mutex_unlock(&registry_lock);
}

static int on_frame(void *ctx, struct net_conn *c, const uint8_t *p, size_t len)
{
	(void)ctx;
	struct client *cl = net_conn_user(c);
	if (!cl)
		return -1;
	if (!atomic_load_explicit(&cl->st->serving, memory_order_acquire) &&
	    !(atomic_load_explicit(&cl->st->read_only, memory_order_acquire) && (cl->state == CL_NEW || cl->read_only))) {
		/* ZooKeeper: "ZooKeeperServer not running"; the client tries
		 * another server */
		log_info("client %s: closing, this server is not serving (no leader or quorum)", cl->peer);
		return -1;
	}
	switch (cl->state) {
	case CL_NEW:
		return handle_connect(cl, p, len);
	case CL_CLOSING:
		return 0;          /* ZooKeeper ignores what follows a close */
	default:
		break;
	}
	touch_session(cl);
	bool must_wait = cl->parked_head || cl->state == CL_CONNECTING || cl->state == CL_REVALIDATING ||
			 (cl->in_flight > 0 && !is_pipelined_frame(p, len));
	if (!must_wait)
		return process(cl, p, len, now_ns());
	return park(cl, p, len);
}

static void on_close(void *ctx, struct net_conn *c)
{
	(void)ctx;
	struct client *cl = net_conn_user(c);
	if (!cl)
		return;
	net_conn_set_user(c, NULL);
	pthread_mutex_lock(&registry_lock);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		registry = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	pthread_mutex_unlock(&registry_lock);
	while (cl->parked_head) {
		struct parked *k = cl->parked_head;
		cl->parked_head = k->next;
		free(k);
	}
	drop_watches(cl);
	unthrottle_one(cl);
	if (cl->session_id)
		log_info("session 0x%" PRIx64 ": connection from %s closed", (uint64_t)cl->session_id, cl->peer);
	free(cl);
}

static void on_msg(void *ctx, struct net_conn *c, struct net_msg *m)
{
	(void)ctx;
	struct zreq *r = caa_container_of(m, struct zreq, msg);
	struct client *cl = c ? net_conn_user(c) : NULL;
	if (!cl) {
		zreq_free(r);
		return;
	}
	if (r->type == ZNOTE_REVALIDATED) {
		bool valid = r->xid == 1 && r->session_id == cl->session_id;
		zreq_free(r);
		if (cl->state != CL_REVALIDATING)
			return;
		finish_reconnect(cl, valid, "the leader says the session expired");
		if (cl->state == CL_READY && drain_parked(cl) != 0)
			net_conn_close(c, "bad parked request");
		return;
	}
	if (r->reply) {
		/* events of changes up to this reply's go out first (rule 3); this
		 * connection's events of later changes after it */
		int io = net_conn_io_index(c);
		struct notify_hold hold = { cl->addr, r->txn.zxid ? r->txn.zxid : last_applied(cl), NULL };
		if (notify_pending(io))
			notify_drain(io, &hold, on_event_delivered);
		net_conn_send(c, r->reply, r->reply_len);
		if (r->type != ZOP_CREATESESSION && r->reply_len >= 4)
			note_response(cl, r->reply_len - 4);   /* ZooKeeper does not count the ConnectResponse */
		notify_release(&hold, on_event_delivered);
		cl->in_flight--;
		count_reply(cl, r->type, r->recv_ns, r->txn.zxid ? r->txn.zxid : last_applied(cl), r->xid);
		release_if_idle(cl);
	}
	if (r->type == ZOP_CREATESESSION && cl->state == CL_CONNECTING) {
		cl->state = CL_READY;
		net_conn_established(c);
		log_info("session 0x%" PRIx64 ": established for %s", (uint64_t)cl->session_id, cl->peer);
	}
	bool close_after = r->close_after;
	zreq_free(r);
	if (close_after) {
		cl->state = CL_CLOSING;
		net_conn_close(c, "session closed");
		return;
	}
	if (drain_parked(cl) != 0)
		net_conn_close(c, "bad parked request");
}

/* Each loop turn: write the watch events Final queued for this thread. */
static void on_idle(void *ctx, int io_index)
{
	unthrottle_all(io_index, ctx);
	if (notify_pending(io_index))
		notify_drain(io_index, NULL, on_event_delivered);
}

void processors_net_callbacks(struct zk_state *st, struct net_callbacks *cb)
{
	auth_failed = metrics_counter("auth_failed_count", "addauth requests refused");
	memset(cb, 0, sizeof *cb);
	cb->ctx = st;
	cb->on_open = on_open;
	cb->on_frame = on_frame;
	cb->on_close = on_close;
	cb->on_msg = on_msg;
	cb->on_idle = on_idle;
}

/* ---- `cons` and `srst` ---------------------------------------------------------------- */

void processors_close_all_clients(const char *why)
{
	int n = 0;
	pthread_mutex_lock(&registry_lock);
	for (struct client *cl = registry; cl; cl = cl->next) {
		struct zreq *z = zreq_new(0, 0, ZOP_CLOSE, NULL, 0);
		if (!z)
			continue;
		z->close_after = true;
		z->msg.to = cl->addr;
		net_post(cl->addr, &z->msg);
		n++;
	}
	pthread_mutex_unlock(&registry_lock);
	if (n)
		log_info("closing %d client connection(s): %s", n, why);
}

void processors_each_conn(void (*fn)(void *arg, const struct zk_conn_info *ci), void *arg)
{
	pthread_mutex_lock(&registry_lock);
	for (struct client *cl = registry; cl; cl = cl->next) {
		long n = atomic_load(&cl->lat_count);
		struct zk_conn_info ci = {
			.peer = cl->peer,
			.secure = cl->secure,
			.queued = cl->in_flight,
			.recved = atomic_load(&cl->recved),
			.sent = atomic_load(&cl->sent),
			.session_id = cl->session_id,
			.last_op = n ? zk_op_short_name(atomic_load(&cl->last_op)) : "NA",
			.established_ms = cl->established_ms,
			.timeout_ms = cl->timeout_ms,
			.last_cxid = n ? atomic_load(&cl->last_cxid) : -1,
			.last_zxid = n ? atomic_load(&cl->last_zxid) : -1,
			.last_response_ms = atomic_load(&cl->last_resp_ms),
			.last_latency_ms = atomic_load(&cl->last_lat) / 1000,
			.lat_min_ms = atomic_load(&cl->lat_min) / 1000,
			.lat_avg_ms = n ? atomic_load(&cl->lat_total) / n / 1000 : 0,
			.lat_max_ms = atomic_load(&cl->lat_max) / 1000,
		};
		fn(arg, &ci);
	}
	pthread_mutex_unlock(&registry_lock);
}

/* ZooKeeper's ServerCnxn.resetStats: counters, latencies and the last op. */
void processors_reset_conn_stats(void)
{
	pthread_mutex_lock(&registry_lock);
	for (struct client *cl = registry; cl; cl = cl->next) {
		atomic_store(&cl->recved, 0);
		atomic_store(&cl->sent, 0);
		atomic_store(&cl->lat_count, 0);
		atomic_store(&cl->lat_total, 0);
		atomic_store(&cl->lat_min, 0);
		atomic_store(&cl->lat_max, 0);
		atomic_store(&cl->last_resp_ms, 0);
		atomic_store(&cl->last_lat, 0);
	}
	pthread_mutex_unlock(&registry_lock);
}

void processors_reset_stats(struct zk_state *st)
{
	atomic_store(&st->stats.lat_count, 0);
	atomic_store(&st->stats.lat_total_us, 0);
	atomic_store(&st->stats.lat_min_us, 0);
	atomic_store(&st->stats.lat_max_us, 0);
	atomic_store(&st->stats.resp_last, 0);
	atomic_store(&st->stats.resp_min, 0);
	atomic_store(&st->stats.resp_max, 0);
	net_reset_packet_stats();
	metrics_reset();
}

/* ---- wchs / wchc / wchp ------------------------------------------------------------ */

struct wpair { char *path; int64_t sid; };
struct wlist { struct wpair *v; size_t n, cap; };

/* Inside registry_lock. */
static int64_t session_of(net_addr a)
{
	for (struct client *cl = registry; cl; cl = cl->next)
		if (cl->addr == a)
			return cl->session_id;
	return 0;
}

/* ZooKeeper's watch dumps show its data-watch manager only: getData and
 * exists watches, and persistent ones (which it files in both managers). */
static void collect(void *arg, int kind, const char *path, size_t len, net_addr who)
{
	struct wlist *l = arg;
	if (kind != WATCH_DATA)
		return;
	struct wpair *v = grow_for(l->v, l->n, &l->cap, sizeof *v, 64);
	if (!v)
		return;
	l->v = v;
	l->v[l->n].path = strndup(path, len);
	l->v[l->n].sid = (int64_t)who;   /* the address for now; mapped below */
	if (l->v[l->n].path)
		l->n++;
}

static int by_sid(const void *a, const void *b)
{
	const struct wpair *x = a, *y = b;
	if (x->sid != y->sid)
		return x->sid < y->sid ? -1 : 1;
	return strcmp(x->path, y->path);
}

size_t processors_watches(struct zk_watch **out)
{
	struct wlist l = { 0 };
	watch_foreach(collect, &l);
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < l.n; i++)
		l.v[i].sid = session_of((net_addr)l.v[i].sid);
	pthread_mutex_unlock(&registry_lock);
	if (l.n)   /* qsort(NULL, 0, ...) is undefined */
		qsort(l.v, l.n, sizeof *l.v, by_sid);
	/* one entry per (session, path) */
	size_t n = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (n && l.v[n - 1].sid == l.v[i].sid && strcmp(l.v[n - 1].path, l.v[i].path) == 0) {
			free(l.v[i].path);
			continue;
		}
		l.v[n++] = l.v[i];
	}
	struct zk_watch *w = n ? malloc(n * sizeof *w) : NULL;
	for (size_t i = 0; i < n; i++) {
		if (w)
			w[i] = (struct zk_watch){ l.v[i].path, l.v[i].sid };
		else
			free(l.v[i].path);
	}
	free(l.v);
	*out = w;
	return w ? n : 0;
}

void processors_watches_free(struct zk_watch *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(w[i].path);
	free(w);
}
