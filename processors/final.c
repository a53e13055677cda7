/*
 * final.c - the Final stage (zkd-final): ZooKeeper's FinalRequestProcessor.
 *
 * Final is the only writer of the data tree and of the session table. It
 * applies txns strictly in the order Commit hands them over (zxid order),
 * publishes each change, then advances last_applied, and only then builds
 * the reply: a client can never see a reply whose effect a read on another
 * connection could still miss.
 *
 * The reply is encoded here into the zreq and the zreq is posted back to the
 * I/O thread that owns the client's connection; that thread sends it.
 */
#include "final.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "net/log.h"
#include "net/tsan.h"
#include "recent.h"
#include "request.h"
#include "session.h"
#include "watch.h"

struct final {
	struct zk_state *st;
	struct zab_ops ops;         /* leader: sync_done; zeroed standalone */
};

static struct final final_state;

static void reply_header(struct jute_writer *w, const struct zreq *r, int64_t zxid, int err)
{
	struct rec_reply_header h = { r->xid, zxid, err };
	rec_write_reply_header(w, &h);
}

/* Posts a bare "close this connection" notice to the session's old owner. */
static void close_connection(net_addr to)
{
	if (!to)
		return;
	struct zreq *n = zreq_new(0, 0, ZOP_CLOSE, NULL, 0);
	if (!n)
		return;
	n->close_after = true;
	n->msg.to = to;
	net_post(to, &n->msg);
}

static int apply_create_session(struct final *f, struct zreq *r)
{
	struct zsession *s = sessions_add(f->st->sessions, r->session_id, r->txn.timeout);
	atomic_store(&s->conn, r->msg.to);
	if (atomic_load(&f->st->role) == ZK_LEADER)
		atomic_store(&s->owner, r->learner_sid ? r->learner_sid : f->st->limits.myid);
	log_info("session 0x%" PRIx64 ": created, timeout %d ms", (uint64_t)r->session_id, r->txn.timeout);
	if (f->st->on_session_created)
		f->st->on_session_created(f->st->on_session_created_arg, r->session_id);
	return ZOK;
}

static int apply_close_session(struct final *f, struct zreq *r)
{
	txn_apply(f->st->tree, &r->txn, NULL, NULL);   /* its ephemerals */
	struct zsession *s = sessions_find(f->st->sessions, r->session_id);
	if (s) {
		net_addr conn = atomic_load(&s->conn);
		if (conn && conn != r->msg.to)
			close_connection(conn);
		sessions_remove(f->st->sessions, s);
	}
	log_info("session 0x%" PRIx64 ": closed (%s), %d ephemeral node(s) removed",
		 (uint64_t)r->session_id, r->msg.to ? "by client" : "expired", r->txn.n_close_paths);
	r->close_after = true;
	return ZOK;
}

/* Applies r's txn; *stat gets the changed node's client Stat. */
static int apply(struct final *f, struct zreq *r, struct zk_stat *stat, struct zk_stat *multi_stats)
{
	struct ztxn *t = &r->txn;
	switch (t->type) {
	case ZOP_CREATESESSION:
		return apply_create_session(f, r);
	case ZOP_CLOSE:
		return apply_close_session(f, r);
	case 0:
		return ZOK;   /* sync */
	default: {
		int rc = txn_apply(f->st->tree, t, stat, multi_stats);
		if (rc != ZOK && t->type != ZOP_ERROR)
			log_error("session 0x%" PRIx64 ": zxid 0x%" PRIx64 " %s did not apply: %s",
				  (uint64_t)r->session_id, (uint64_t)t->zxid, zk_op_name(r->type), zk_err_name(rc));
		return rc;
	}
	}
}

static void write_multi_response(struct jute_writer *w, const struct ztxn *t, const struct zk_stat *stats)
{
	for (int i = 0; i < t->n_sub; i++) {
		const struct ztxn *sub = &t->sub[i];
		struct rec_multi_header h = { sub->op, false, 0 };
		if (sub->type == ZOP_ERROR) {
			h.type = ZOP_ERROR;
			h.err = sub->err;
			rec_write_multi_header(w, &h);
			jute_write_int(w, sub->err);
			continue;
		}
		if (h.type == ZOP_CREATECONTAINER || h.type == ZOP_CREATETTL)
			h.type = ZOP_CREATE2;   /* CreateResult with a Stat */
		rec_write_multi_header(w, &h);
		switch (h.type) {
		case ZOP_CREATE:
			jute_write_buffer(w, sub->path, (int32_t)sub->path_len);
			break;
		case ZOP_CREATE2:
			jute_write_buffer(w, sub->path, (int32_t)sub->path_len);
			rec_write_stat(w, &stats[i]);
			break;
		case ZOP_SETDATA:
			rec_write_stat(w, &stats[i]);
			break;
		default:
			break;   /* delete, check: no body */
		}
	}
	struct rec_multi_header done = { -1, true, -1 };
	rec_write_multi_header(w, &done);
}

/* ---- watch events (ZooKeeper's DataTree triggers) ------------------------------ */

static int64_t firing_zxid;         /* Final only: the txn fire_txn is firing for */

static void post_hits(const struct watch_hits *h, int type, const char *path, size_t len)
{
	for (int i = 0; i < h->n; i++)
		notify_post(h->v[i], type, path, len, firing_zxid);
}

/* fire_txn walks a txn twice: first collecting the watch stripes it will
 * touch (held across publish and trigger, see watch.c), then firing. */
static struct watch_locks held;     /* Final only */
static bool collecting;

static void fire(int kind, const char *path, size_t len, int type, const struct watch_hits *suppress,
		 struct watch_hits *out)
{
	if (collecting) {
		watch_locks_add(&held, kind, path, len);
		return;
	}
	struct watch_hits h = { 0 };
	watch_trigger(&held, kind, path, len, type, &h, suppress);
	post_hits(&h, type, path, len);
	if (out)
		*out = h;
	else
		hits_free(&h);
}

static void fire_parent(const char *path, size_t len)
{
	size_t plen, nlen;
	const char *name;
	if (tree_split(path, len, &plen, &name, &nlen))
		fire(WATCH_CHILD, path, plen, ZEV_CHILDREN_CHANGED, NULL, NULL);
}

static void fire_deleted(const char *path, size_t len)
{
	struct watch_hits processed = { 0 };
	fire(WATCH_DATA, path, len, ZEV_DELETED, NULL, &processed);
	fire(WATCH_CHILD, path, len, ZEV_DELETED, &processed, NULL);
	hits_free(&processed);
	fire_parent(path, len);
}

static void fire_txn(const struct ztxn *t)
{
	switch (t->type) {
	case ZOP_CREATE:
	case ZOP_CREATECONTAINER:
	case ZOP_CREATETTL:
		fire(WATCH_DATA, t->path, t->path_len, ZEV_CREATED, NULL, NULL);
		fire_parent(t->path, t->path_len);
		break;
	case ZOP_DELETE:
		fire_deleted(t->path, t->path_len);
		break;
	case ZOP_SETDATA:
		fire(WATCH_DATA, t->path, t->path_len, ZEV_DATA_CHANGED, NULL, NULL);
		break;
	case ZOP_CLOSE:
		for (int i = 0; i < t->n_close_paths; i++)
			fire_deleted(t->close_paths[i], strlen(t->close_paths[i]));
		break;
	case ZOP_MULTI:
		for (int i = 0; i < t->n_sub; i++)
			fire_txn(&t->sub[i]);   /* a failed multi's ops are all error txns */
		break;
	default:
		break;
	}
}

static void write_connect_response(struct jute_writer *w, const struct zreq *r)
{
	uint8_t pw[16];
	session_password(r->session_id, pw);
	struct rec_connect_resp resp = {
		.protocol_version = 0, .timeout = r->txn.timeout, .session_id = r->session_id,
		.passwd = pw, .passwd_len = 16, .read_only = false,
	};
	rec_write_connect_resp(w, &resp);
	if (r->old_client)
		w->len--;   /* an old client's response has no readOnly byte */
}

static void write_sync_response(struct jute_writer *w, const struct zreq *r, uint32_t max)
{
	struct jute_reader rd;
	jute_reader_init(&rd, r->body, r->body_len, max);
	struct rec_path req;
	if (rec_read_path(&rd, &req) == 0)
		jute_write_buffer(w, req.path.data, req.path.len);
	else
		jute_write_buffer(w, NULL, -1);
}

static void build_reply(struct final *f, struct zreq *r, int rc, const struct zk_stat *stat,
			const struct zk_stat *multi_stats, int64_t zxid)
{
	struct jute_writer w;
	jute_writer_init(&w, 128);
	size_t mark = net_frame_begin(&w);
	if (r->type == ZOP_CREATESESSION) {
		write_connect_response(&w, r);
	} else {
		reply_header(&w, r, zxid, rc);
		if (rc == ZOK) {
			switch (r->type) {
			case ZOP_CREATE:
				jute_write_buffer(&w, r->txn.path, (int32_t)r->txn.path_len);
				break;
			case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
				jute_write_buffer(&w, r->txn.path, (int32_t)r->txn.path_len);
				rec_write_stat(&w, stat);
				break;
			case ZOP_SETDATA: case ZOP_SETACL:
				rec_write_stat(&w, stat);
				break;
			case ZOP_SYNC:
				write_sync_response(&w, r, f->st->limits.max_buffer);
				break;
			case ZOP_MULTI:
				write_multi_response(&w, &r->txn, multi_stats);
				break;
			default:
				break;
			}
		}
	}
	net_frame_end(&w, mark);
	r->reply = jute_writer_take(&w, &r->reply_len);
}

static void final_handle(struct stage *s, struct zreq *r)
{
	struct final *f = s->ctx;
	struct zk_stat stat = { 0 };
	struct zk_stat *multi_stats = NULL;
	if (r->txn.type == ZOP_MULTI && r->txn.n_sub > 0) {
		multi_stats = calloc((size_t)r->txn.n_sub, sizeof *multi_stats);
		if (!multi_stats)
			abort();
	}
	/* lock stripes -> publish -> events -> unlock -> last_applied: see watch.c */
	memset(&held, 0, sizeof held);
	collecting = true;
	fire_txn(&r->txn);
	collecting = false;
	watch_locks_acquire(&held);
	rcu_read_lock();
	int rc = apply(f, r, &stat, multi_stats);
	zkd_rcu_read_unlock();
	if (rc == ZOK && watch_total() > 0) {
		firing_zxid = r->txn.zxid;
		fire_txn(&r->txn);
	}
	watch_locks_release(&held);
	if (r->txn.zxid) {
		atomic_store_explicit(&f->st->last_applied, r->txn.zxid, memory_order_release);
		processors_note_digest(r->txn.zxid, atomic_load(&atomic_load(&f->st->tree)->digest));
	}
	if (r->qdata && r->txn.zxid)
		recent_add(r->txn.zxid, r->qdata, r->qlen);
	int64_t zxid = atomic_load_explicit(&f->st->last_applied, memory_order_relaxed);
	if (r->learner_sid && r->type == ZOP_SYNC && f->ops.sync_done)
		f->ops.sync_done(f->ops.ctx, r->learner_sid);
	if (r->counted)
		atomic_fetch_sub_explicit(&f->st->stats.outstanding, 1, memory_order_relaxed);
	if (!r->msg.to) {           /* expiry: nobody waits for a reply */
		free(multi_stats);
		metric_observe(s->m.process_time, (metrics_now_ns() - r->take_ns) / 1000);
		zreq_free(r);
		return;
	}
	build_reply(f, r, rc, &stat, multi_stats, zxid);
	free(multi_stats);
	/* Final is the last stage: its time per request ends here (stage.h) */
	metric_observe(s->m.process_time, (metrics_now_ns() - r->take_ns) / 1000);
	net_post(r->msg.to, &r->msg);
}

static void final_batch_done(struct stage *s)
{
	(void)s;
	notify_kick();
}

void final_init(struct stage *s, struct zk_state *st, const struct zab_ops *ops)
{
	final_state.st = st;
	if (ops)
		final_state.ops = *ops;
	else
		memset(&final_state.ops, 0, sizeof final_state.ops);
	stage_init(s, "zkd-final", final_handle, NULL, &final_state);
	s->batch_done = final_batch_done;
}

void final_apply_logged(struct zk_state *st, struct zreq *r)
{
	struct final f = { .st = st };
	struct zk_stat stat;
	struct zk_stat *multi = NULL;
	if (r->txn.type == ZOP_MULTI && r->txn.n_sub > 0) {
		multi = calloc((size_t)r->txn.n_sub, sizeof *multi);
		if (!multi)
			abort();
	}
	rcu_read_lock();
	apply(&f, r, &stat, multi);
	zkd_rcu_read_unlock();
	free(multi);
	atomic_store_explicit(&st->last_applied, r->txn.zxid, memory_order_release);
	processors_note_digest(r->txn.zxid, atomic_load(&atomic_load(&st->tree)->digest));
	if (r->qdata)
		recent_add(r->txn.zxid, r->qdata, r->qlen);
}
