/*
 * commit.c - the Commit stage (zkd-commit): ZooKeeper's CommitProcessor and
 * the leader's ack counting, in one thread that owns every list below.
 *
 * Leader: txns arrive from Sync in zxid order, each already acked by this
 * server (Sync made it durable). Followers' ACKs arrive as ZNOTE_ACK notes
 * from the learner handler threads, possibly before the txn itself (a fast
 * follower can beat our own fsync); those wait in `early`. At the end of
 * every batch the head of `pending` is committed while it holds a quorum,
 * strictly in zxid order: zab_ops.commit sends COMMIT/INFORM, and the txn
 * goes on to Final. A request without a txn (sync) waits its turn in the
 * same line, so it passes Final only after everything before it.
 *
 * Learner: two lines meet here. Txns the leader proposed come from Sync
 * (logged, so a follower ACKs them); the leader's COMMITs come as a
 * watermark (ZNOTE_COMMIT: commits are in zxid order, so "everything up to
 * z" is all there is to know). Requests of this server's own clients come
 * from Prep (`local`): when a committed txn is one of theirs (same session,
 * cxid = xid) it takes over the client's connection and the reply goes back
 * to it. A local sync is released when the leader's SYNC answer came and
 * every txn committed before that answer has been released.
 */
#include "commit.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "net/log.h"
#include "request.h"

struct list {
	struct zreq *head, *tail;
};

struct early_ack {
	int64_t zxid, sid;
};

struct commit {
	struct zk_state *st;
	enum zk_role role;
	struct zab_ops ops;
	struct list pending;          /* leader: from Sync; learner: proposals from Sync */
	struct list local;            /* learner: clients' requests from Prep */
	struct early_ack *early;      /* leader: acks for txns not here yet */
	int n_early, cap_early;
	int64_t last_committed;       /* leader: last zxid committed */
	int64_t commit_upto;          /* learner: leader's COMMIT watermark */
	int64_t released_upto;        /* learner: last zxid handed to Final */
	int64_t *sync_at;             /* learner: per SYNC answer, commit_upto when it came */
	int n_sync, cap_sync;
	int64_t *to_ack;              /* follower: zxids logged in this batch */
	int n_ack, cap_ack;
	struct zreq **batch;          /* leader: committed in this batch */
	int n_batch, cap_batch;
	/* Registered by commit_init, recorded by zkd-commit (net/metrics.h) */
	struct metric_summary *quorum_ack_latency;
	struct metric_counter *commit_count;
};

static struct commit commit_state;

static void grow(void **v, int *cap, int need, size_t size)
{
	if (need <= *cap)
		return;
	int cap2 = *cap ? *cap * 2 : 64;
	while (cap2 < need)
		cap2 *= 2;
	void *nv = realloc(*v, (size_t)cap2 * size);
	if (!nv)
		abort();   /* nothing sensible is left to do without memory */
	*v = nv;
	*cap = cap2;
}

static void list_push(struct list *l, struct zreq *r)
{
	r->link = NULL;
	if (l->tail)
		l->tail->link = r;
	else
		l->head = r;
	l->tail = r;
}

static struct zreq *list_pop(struct list *l)
{
	struct zreq *r = l->head;
	if (r) {
		l->head = r->link;
		if (!l->head)
			l->tail = NULL;
		r->link = NULL;
	}
	return r;
}

static void list_free(struct list *l)
{
	struct zreq *r;
	while ((r = list_pop(l)))
		zreq_free(r);
}

/* ---- leader ------------------------------------------------------------------ */

static void add_ack(struct zreq *r, int64_t sid)
{
	for (int i = 0; i < r->n_acks; i++)
		if (r->acks[i] == sid)
			return;
	grow((void **)&r->acks, &r->cap_acks, r->n_acks + 1, sizeof *r->acks);
	r->acks[r->n_acks++] = sid;
}

static void leader_ack(struct commit *c, int64_t sid, int64_t zxid)
{
	if (zxid <= c->last_committed)
		return;   /* late: committed without it */
	for (struct zreq *r = c->pending.head; r; r = r->link) {
		if (r->txn.zxid == zxid) {
			add_ack(r, sid);
			return;
		}
	}
	grow((void **)&c->early, &c->cap_early, c->n_early + 1, sizeof *c->early);
	c->early[c->n_early++] = (struct early_ack){ zxid, sid };
}

static void leader_take(struct commit *c, struct zreq *r)
{
	if (r->txn.zxid) {
		add_ack(r, c->ops.myid);
		for (int i = 0; i < c->n_early;) {
			if (c->early[i].zxid == r->txn.zxid) {
				add_ack(r, c->early[i].sid);
				c->early[i] = c->early[--c->n_early];
			} else {
				i++;
			}
		}
	}
	list_push(&c->pending, r);
}

static void leader_commit_ready(struct stage *s, struct commit *c)
{
	c->n_batch = 0;
	struct zreq *r;
	int64_t now = 0;
	while ((r = c->pending.head)) {
		bool has_txn = r->txn.zxid != 0;
		if (has_txn && !c->ops.has_quorum(c->ops.ctx, r->acks, r->n_acks))
			break;
		list_pop(&c->pending);
		if (has_txn) {
			/* ZooKeeper's quorum_ack_latency: from the request's arrival
			 * here to its quorum of acks (one clock read per batch) */
			if (!now)
				now = metrics_now_ns();
			metric_observe(c->quorum_ack_latency, (now - r->recv_ns) / 1000);
			c->last_committed = r->txn.zxid;
			grow((void **)&c->batch, &c->cap_batch, c->n_batch + 1, sizeof *c->batch);
			c->batch[c->n_batch++] = r;
		}
		stage_forward(s, r);
	}
	/* ops.commit reads the batch before stage.c hands it to Final */
	if (c->n_batch) {
		c->ops.commit(c->ops.ctx, c->batch, c->n_batch);
		metric_add(c->commit_count, c->n_batch);
	}
	/* acks that can no longer matter */
	for (int i = 0; i < c->n_early;) {
		if (c->early[i].zxid <= c->last_committed)
			c->early[i] = c->early[--c->n_early];
		else
			i++;
	}
}

/* ---- learner ----------------------------------------------------------------- */

/* The local request a committed txn answers, unlinked from `local`: the
 * oldest of that session's, if its xid is the txn's cxid. */
static struct zreq *take_local(struct commit *c, const struct zreq *t)
{
	struct zreq *prev = NULL;
	for (struct zreq *r = c->local.head; r; prev = r, r = r->link) {
		if (r->session_id != t->txn.session_id || r->type == ZOP_SYNC)
			continue;
		if (r->xid != t->txn.cxid)
			return NULL;
		if (prev)
			prev->link = r->link;
		else
			c->local.head = r->link;
		if (c->local.tail == r)
			c->local.tail = prev;
		r->link = NULL;
		return r;
	}
	return NULL;
}

/* The committed txn t takes over the client request it answers. */
static void adopt(struct zreq *t, struct zreq *l)
{
	t->msg.to = l->msg.to;
	t->xid = l->xid;
	t->type = l->type;
	t->recv_ns = l->recv_ns;
	t->old_client = l->old_client;
	t->counted = l->counted;
	zreq_free(l);
}

static void release_syncs(struct stage *s, struct commit *c)
{
	/* a sync is answered in the order the client sent it among its own
	 * requests: the oldest local sync only, once its answer came */
	while (c->n_sync > 0 && c->released_upto >= c->sync_at[0]) {
		struct zreq *prev = NULL, *r = c->local.head;
		while (r && r->type != ZOP_SYNC) {
			prev = r;
			r = r->link;
		}
		if (!r) {
			log_warn("leader answered a sync nobody here asked for; ignored");
		} else {
			if (prev)
				prev->link = r->link;
			else
				c->local.head = r->link;
			if (c->local.tail == r)
				c->local.tail = prev;
			r->link = NULL;
			stage_forward(s, r);
		}
		memmove(c->sync_at, c->sync_at + 1, (size_t)(c->n_sync - 1) * sizeof *c->sync_at);
		c->n_sync--;
	}
}

static void learner_release(struct stage *s, struct commit *c)
{
	struct zreq *t;
	while ((t = c->pending.head) && t->txn.zxid <= c->commit_upto) {
		list_pop(&c->pending);
		struct zreq *l = take_local(c, t);
		if (l)
			adopt(t, l);
		c->released_upto = t->txn.zxid;
		stage_forward(s, t);
	}
	release_syncs(s, c);
}

static void learner_take(struct commit *c, struct zreq *r)
{
	if (r->type == ZNOTE_MARKER) {
		/* everything Sync had before the marker is on disk; the acks for
		 * them go first, the marker's consequence after */
		if (c->n_ack) {
			c->ops.ack(c->ops.ctx, c->to_ack, c->n_ack);
			c->n_ack = 0;
		}
		c->ops.marker(c->ops.ctx, r->session_id);
		zreq_free(r);
		return;
	}
	if (c->role == ZK_OBSERVER) {
		/* an INFORM is committed already */
		if (r->txn.zxid > c->commit_upto)
			c->commit_upto = r->txn.zxid;
	} else {
		grow((void **)&c->to_ack, &c->cap_ack, c->n_ack + 1, sizeof *c->to_ack);
		c->to_ack[c->n_ack++] = r->txn.zxid;
	}
	list_push(&c->pending, r);
}

/* ---- the stage ----------------------------------------------------------------- */

static void commit_handle(struct stage *s, struct zreq *r)
{
	struct commit *c = s->ctx;
	switch (r->type) {
	case ZNOTE_ACK:
		leader_ack(c, r->session_id, r->txn.zxid);
		zreq_free(r);
		return;
	case ZNOTE_COMMIT:
		if (r->txn.zxid > c->commit_upto)
			c->commit_upto = r->txn.zxid;
		zreq_free(r);
		return;
	case ZNOTE_SYNC:
		grow((void **)&c->sync_at, &c->cap_sync, c->n_sync + 1, sizeof *c->sync_at);
		c->sync_at[c->n_sync++] = c->commit_upto;
		zreq_free(r);
		return;
	default:
		break;
	}
	if (c->role == ZK_LEADER)
		leader_take(c, r);
	else if (r->local)
		list_push(&c->local, r);
	else
		learner_take(c, r);
}

static void commit_batch_done(struct stage *s)
{
	struct commit *c = s->ctx;
	if (c->role == ZK_LEADER) {
		leader_commit_ready(s, c);
		return;
	}
	if (c->n_ack) {
		c->ops.ack(c->ops.ctx, c->to_ack, c->n_ack);
		c->n_ack = 0;
	}
	learner_release(s, c);
}

void commit_init(struct stage *s, struct stage *next, struct zk_state *st, enum zk_role role,
		 const struct zab_ops *ops, int64_t last_committed)
{
	struct commit *c = &commit_state;
	commit_free();
	c->st = st;
	c->role = role;
	c->ops = *ops;
	c->last_committed = last_committed;
	c->commit_upto = last_committed;
	c->released_upto = last_committed;
	/* registered with their help by reqmetrics.c */
	c->quorum_ack_latency = metrics_summary("quorum_ack_latency", NULL, METRIC_ADVANCED, METRIC_US_AS_MS);
	c->commit_count = metrics_counter("commit_count", NULL);
	stage_init(s, "zkd-commit", commit_handle, next, c);
	s->batch_done = commit_batch_done;
}

struct zreq *commit_take_logged(void)
{
	struct commit *c = &commit_state;
	struct zreq *out = c->pending.head;   /* leader and learner: all came from Sync */
	c->pending.head = c->pending.tail = NULL;
	return out;
}

void commit_free(void)
{
	struct commit *c = &commit_state;
	list_free(&c->pending);
	list_free(&c->local);
	free(c->early);
	free(c->sync_at);
	free(c->to_ack);
	free(c->batch);
	memset(c, 0, sizeof *c);
}
