/*
 * pipeline.c - builds the chain of stages for the server's role and starts
 * their threads; the entry points election/ uses to feed it.
 *
 *   standalone: Prep -> Sync -> Final
 *   leader:     Prep -> Proposal -> Sync -> Commit -> Final
 *   learner:    Prep -> Commit (the leader decides);
 *               PROPOSAL / INFORM -> Sync -> Commit -> Final
 *
 * Standalone, Proposal has nobody to propose to and Commit's quorum is
 * this server alone: every hand-off costs a wake-up (about 12 us of CPU and
 * more of latency here), so the chain skips them. A role change (the peer
 * thread, election/peer.c) stops every stage, drops what they held (the
 * clients it belonged to are being disconnected) and starts the chain of
 * the new role; the tree, the sessions and the log stay.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "commit.h"
#include "final.h"
#include "net/log.h"
#include "net/tsan.h"
#include "pipeline.h"
#include "prep.h"
#include "processors.h"
#include "proposal.h"
#include "request.h"
#include "session.h"
#include "stage.h"
#include "storage/txncodec.h"
#include "sync.h"
#include "watch.h"

enum { ST_PREP, ST_PROPOSAL, ST_SYNC, ST_COMMIT, ST_FINAL, ST_COUNT };

/* Owned by whoever starts and stops the pipeline (main thread standalone,
 * the peer thread in an ensemble); the stage threads read them. */
static struct stage stages[ST_COUNT];
static bool started, watches_ready;
static struct zk_state *state;
/* Set once by processors_drain (main thread, at shutdown); read by the
 * leader's learner handler threads, which then refuse forwarded requests
 * so the pipeline can run dry. */
static atomic_bool draining;

static void pass_on(struct stage *s, struct zreq *r)
{
	stage_forward(s, r);
}

static int start_threads(void)
{
	for (int i = ST_COUNT - 1; i >= 0; i--) {
		if (stage_start(&stages[i]) != 0) {
			for (int j = ST_COUNT - 1; j > i; j--)
				stage_stop(&stages[j]);
			syncer_stop();
			return -1;
		}
	}
	started = true;
	return 0;
}

static void drop_queued(void)
{
	static bool queues_ready;   /* the first start: nothing queued yet */
	if (!queues_ready) {
		for (int i = 0; i < ST_COUNT; i++)
			cds_wfcq_init(&stages[i].head, &stages[i].tail);
		queues_ready = true;
	}
	for (int i = 0; i < ST_COUNT; i++) {
		struct cds_wfcq_node *node;
		while ((node = cds_wfcq_dequeue_blocking(&stages[i].head, &stages[i].tail)))
			zreq_free(caa_container_of(node, struct zreq, qnode));
	}
}

int processors_start(struct zk_state *st)
{
	return processors_start_role(st, ZK_STANDALONE, NULL, atomic_load(&st->last_applied) + 1);
}

int processors_start_role(struct zk_state *st, enum zk_role role, const struct zab_ops *ops, int64_t next_zxid)
{
	processors_stop_role();
	drop_queued();   /* notes pushed while no stage ran belong to the old role */
	if (!watches_ready) {
		watches_init();
		watches_ready = true;
	}
	state = st;
	int64_t applied = atomic_load(&st->last_applied);
	struct stage *final = &stages[ST_FINAL], *commit = &stages[ST_COMMIT], *sync = &stages[ST_SYNC];
	final_init(final, st, ops);
	switch (role) {
	case ZK_STANDALONE:
		stage_init(commit, "zkd-commit", pass_on, final, st);
		if (syncer_init(sync, final, st) != 0)
			return -1;
		stage_init(&stages[ST_PROPOSAL], "zkd-proposal", pass_on, sync, st);
		prep_init_role(&stages[ST_PREP], sync, st, role, NULL, next_zxid);
		break;
	case ZK_LEADER:
		commit_init(commit, final, st, role, ops, applied);
		if (syncer_init(sync, commit, st) != 0)
			return -1;
		proposal_init(&stages[ST_PROPOSAL], sync, ops);
		prep_init_role(&stages[ST_PREP], &stages[ST_PROPOSAL], st, role, ops, next_zxid);
		break;
	case ZK_FOLLOWER:
	case ZK_OBSERVER:
		commit_init(commit, final, st, role, ops, applied);
		if (syncer_init(sync, commit, st) != 0)
			return -1;
		stage_init(&stages[ST_PROPOSAL], "zkd-proposal", pass_on, sync, st);
		prep_init_role(&stages[ST_PREP], commit, st, role, ops, next_zxid);
		break;
	}
	atomic_store(&st->role, role);
	return start_threads();
}

static int by_zxid(const void *a, const void *b)
{
	int64_t x = (*(struct zreq *const *)a)->txn.zxid, y = (*(struct zreq *const *)b)->txn.zxid;
	return x < y ? -1 : x > y;
}

static void take_queue(struct stage *s, struct zreq ***v, int *n, int *cap, bool logged)
{
	struct cds_wfcq_node *node;
	while ((node = cds_wfcq_dequeue_blocking(&s->head, &s->tail))) {
		struct zreq *r = caa_container_of(node, struct zreq, qnode);
		bool note = r->type <= ZNOTE_ACK;   /* the ZNOTE_ values lie below every op */
		if (!logged || note || r->local || !r->txn.zxid || !r->txn.type) {
			zreq_free(r);   /* a note, a client's request, or no txn */
			continue;
		}
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 64;
			*v = realloc(*v, (size_t)*cap * sizeof **v);
			if (!*v)
				abort();
		}
		(*v)[(*n)++] = r;
	}
}

/* ZooKeeper's fastForwardDataBase, in memory: every txn in the log is
 * applied before the next election, also those the stopped stages held
 * between Sync and Final (their commit never came, or Final did not get to
 * them). The next leader's TRUNC takes back what it does not have. */
static void apply_logged(struct zk_state *st)
{
	struct zreq **v = NULL;
	int n = 0, cap = 0;
	take_queue(&stages[ST_FINAL], &v, &n, &cap, true);
	take_queue(&stages[ST_COMMIT], &v, &n, &cap, true);
	for (struct zreq *r = commit_take_logged(), *next; r; r = next) {
		next = r->link;
		r->link = NULL;
		if (!r->txn.zxid || !r->txn.type || r->local) {
			zreq_free(r);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(v, (size_t)cap * sizeof *v);
			if (!v)
				abort();
		}
		v[n++] = r;
	}
	if (n > 1)
		qsort(v, (size_t)n, sizeof *v, by_zxid);
	int applied = 0;
	for (int i = 0; i < n; i++) {
		if (v[i]->txn.zxid > atomic_load(&st->last_applied)) {
			final_apply_logged(st, v[i]);
			applied++;
		}
		zreq_free(v[i]);
	}
	free(v);
	if (applied)
		log_info("applied %d logged txn(s) the pipeline still held; last zxid now 0x%" PRIx64, applied,
			 (uint64_t)atomic_load(&st->last_applied));
}

void processors_stop_role(void)
{
	if (!started)
		return;
	/* in chain order: nothing a later stage holds can be sent back */
	for (int i = 0; i < ST_COUNT; i++)
		stage_stop(&stages[i]);
	syncer_stop();
	started = false;
	if (state && atomic_load(&state->role) != ZK_STANDALONE)
		apply_logged(state);
	drop_queued();
	commit_free();
	proposal_free();
	prep_free();
	if (state)
		atomic_store(&state->stats.outstanding, 0);
}

void processors_stop(void)
{
	processors_stop_role();
}

void processors_cleanup(void)
{
	drop_queued();
	commit_free();
	proposal_free();
	prep_free();
	if (watches_ready)
		watches_free();
	watches_ready = false;
}

long processors_drain(struct zk_state *st, int timeout_ms)
{
	atomic_store(&draining, true);
	/* Final counts requests out as it applies them; nothing signals the
	 * last one (the hot path stays free of it), so this looks every
	 * millisecond: it runs once, at shutdown, for as long as the
	 * pipeline's tail takes. */
	struct timespec ms = { 0, 1000 * 1000 };
	int64_t until = mono_ms() + timeout_ms;
	long left;
	while ((left = atomic_load_explicit(&st->stats.outstanding, memory_order_relaxed)) > 0 &&
	       mono_ms() < until)
		nanosleep(&ms, NULL);
	return left > 0 ? left : 0;
}

void pipeline_submit(struct zreq *r)
{
	stage_push(&stages[ST_PREP], r);
}

/* Only the leader (or a standalone server) decides that sessions expire or
 * containers go: learners hear of it through the leader's txns. */
static bool decides(struct zk_state *st)
{
	int role = atomic_load(&st->role);
	return (role == ZK_STANDALONE || role == ZK_LEADER) && atomic_load(&st->serving);
}

bool processors_expire_session(struct zk_state *st, int64_t session_id)
{
	if (!decides(st))
		return false;
	rcu_read_lock();
	struct zsession *s = sessions_find(st->sessions, session_id);
	bool mine = s && !atomic_exchange(&s->closing, true);
	zkd_rcu_read_unlock();
	if (!mine)
		return false;
	struct zreq *r = zreq_new(session_id, 0, ZOP_CLOSE, NULL, 0);
	if (!r)
		return false;
	log_info("session 0x%" PRIx64 ": expired", (uint64_t)session_id);
	r->counted = true;
	atomic_fetch_add_explicit(&st->stats.outstanding, 1, memory_order_relaxed);
	pipeline_submit(r);
	return true;
}

long processors_watch_count(void)
{
	return watch_total();
}

void processors_delete_container(struct zk_state *st, const char *path, size_t len)
{
	if (!decides(st))
		return;
	struct zreq *r = zreq_new(0, 0, ZOP_DELETECONTAINER, (const uint8_t *)path, len);
	if (!r)
		return;
	r->counted = true;
	atomic_fetch_add_explicit(&st->stats.outstanding, 1, memory_order_relaxed);
	pipeline_submit(r);
}

/* ---- what election/ feeds in ------------------------------------------------------ */

static struct zreq *note(int type, int64_t a, int64_t zxid)
{
	struct zreq *r = zreq_new(a, 0, type, NULL, 0);
	if (!r)
		abort();   /* a lost note would stall the pipeline for good */
	r->txn.zxid = zxid;
	return r;
}

int processors_zab_txn(struct zk_state *st, const uint8_t *data, size_t len)
{
	(void)st;
	struct zreq *r = zreq_new(0, 0, 0, NULL, 0);
	if (!r)
		abort();
	r->qdata = malloc(len ? len : 1);
	if (!r->qdata)
		abort();
	memcpy(r->qdata, data, len);
	r->qlen = len;
	char err[256];
	/* the txn's views point into qdata, which lives as long as r */
	if (txn_decode(r->qdata, r->qlen, &r->txn, err, sizeof err) != 0) {
		log_error("a txn from the leader does not decode: %s", err);
		zreq_free(r);
		return -1;
	}
	r->session_id = r->txn.session_id;
	r->xid = r->txn.cxid;
	r->type = r->txn.type;
	stage_push(&stages[ST_SYNC], r);
	return 0;
}

void processors_zab_commit(int64_t zxid)
{
	stage_push(&stages[ST_COMMIT], note(ZNOTE_COMMIT, 0, zxid));
}

void processors_zab_sync(void)
{
	stage_push(&stages[ST_COMMIT], note(ZNOTE_SYNC, 0, 0));
}

void processors_zab_marker(int64_t tag)
{
	stage_push(&stages[ST_SYNC], note(ZNOTE_MARKER, tag, 0));
}

void processors_zab_ack(int64_t sid, int64_t zxid)
{
	stage_push(&stages[ST_COMMIT], note(ZNOTE_ACK, sid, zxid));
}

static bool forwardable(int32_t type)
{
	switch (type) {
	case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER: case ZOP_CREATETTL:
	case ZOP_DELETE: case ZOP_SETDATA: case ZOP_SETACL: case ZOP_CHECK: case ZOP_MULTI:
	case ZOP_SYNC: case ZOP_CREATESESSION: case ZOP_CLOSE:
		return true;
	default:
		return false;
	}
}

/* vector<Id> of a QuorumPacket -> the identities Prep checks ACLs with */
static int read_auth(const uint8_t *p, size_t len, struct auth_ids *ids, uint32_t max)
{
	struct jute_reader rd;
	jute_reader_init(&rd, p, len, max);
	int32_t n = jute_read_count(&rd, 8);
	for (int32_t i = 0; i < n && jute_ok(&rd); i++) {
		struct jute_buf scheme = jute_read_buffer(&rd);
		struct jute_buf id = jute_read_buffer(&rd);
		if (!jute_ok(&rd))
			return -1;
		if (ids->n >= (int)(sizeof ids->v / sizeof ids->v[0]))
			continue;
		struct auth_id *a = &ids->v[ids->n++];
		snprintf(a->scheme, sizeof a->scheme, "%.*s", scheme.len > 0 ? scheme.len : 0, (const char *)scheme.data);
		snprintf(a->id, sizeof a->id, "%.*s", id.len > 0 ? id.len : 0, (const char *)id.data);
	}
	return jute_ok(&rd) ? 0 : -1;
}

int processors_zab_request(struct zk_state *st, int64_t learner_sid, const uint8_t *data, size_t len,
			   const uint8_t *authinfo, size_t authinfo_len)
{
	struct jute_reader rd;
	jute_reader_init(&rd, data, len, st->limits.max_buffer);
	int64_t session = jute_read_long(&rd);
	int32_t cxid = jute_read_int(&rd);
	int32_t type = jute_read_int(&rd);
	if (!jute_ok(&rd))
		return -1;
	if (atomic_load(&draining)) {
		/* this server is shutting down: the learner's client gets no
		 * reply and retries once the ensemble has a new leader */
		log_debug("learner %" PRId64 ": forwarded request of session 0x%" PRIx64 " refused: shutting down",
			  learner_sid, (uint64_t)session);
		return 0;
	}
	if (!forwardable(type)) {
		log_warn("learner %" PRId64 ": forwarded request of type %d for session 0x%" PRIx64
			 " is not one a learner forwards; dropped", learner_sid, type, (uint64_t)session);
		return 0;
	}
	const uint8_t *body = data + 16;
	size_t body_len = len - 16;
	struct zreq *r = zreq_new(session, cxid, type, body, body_len);
	if (!r)
		abort();
	r->learner_sid = learner_sid;
	if (type == ZOP_CREATESESSION) {
		/* the body is the timeout the learner agreed with its client */
		int32_t timeout = 0;
		if (body_len >= 4)
			timeout = (int32_t)((uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 |
					    (uint32_t)body[2] << 8 | body[3]);
		r->txn.timeout = timeout;
	}
	if (authinfo && authinfo_len) {
		r->ids = calloc(1, sizeof *r->ids);
		if (!r->ids || read_auth(authinfo, authinfo_len, r->ids, st->limits.max_buffer) != 0) {
			log_warn("learner %" PRId64 ": bad authinfo on a forwarded request; dropped", learner_sid);
			zreq_free(r);
			return -1;
		}
	}
	r->counted = true;
	atomic_fetch_add_explicit(&st->stats.outstanding, 1, memory_order_relaxed);
	pipeline_submit(r);
	return 0;
}

/* ---- sessions across the ensemble --------------------------------------------------- */

void processors_sessions_touch_all(struct zk_state *st, void (*track)(void *arg, int64_t id))
{
	struct cds_lfht_iter it;
	struct zsession *s;
	int64_t now = mono_ms();
	rcu_read_lock();
	cds_lfht_for_each_entry(st->sessions->ht, &it, s, hnode) {
		TSAN_ACQUIRE(s);   /* pairs with sessions_add's release */
		atomic_store(&s->deadline_ms, now + atomic_load(&s->timeout_ms));
		atomic_store(&s->owner, 0);   /* learned again from the next request */
		if (track)
			track(NULL, s->id);
	}
	zkd_rcu_read_unlock();
}

void processors_sessions_touched(struct zk_state *st, struct jute_writer *w)
{
	struct cds_lfht_iter it;
	struct zsession *s;
	rcu_read_lock();
	cds_lfht_for_each_entry(st->sessions->ht, &it, s, hnode) {
		TSAN_ACQUIRE(s);   /* pairs with sessions_add's release */
		if (!atomic_load_explicit(&s->touched, memory_order_relaxed))
			continue;
		atomic_store_explicit(&s->touched, false, memory_order_relaxed);
		jute_write_long(w, s->id);
		jute_write_int(w, atomic_load(&s->timeout_ms));
	}
	zkd_rcu_read_unlock();
}

void processors_session_touch(struct zk_state *st, int64_t id, int32_t timeout)
{
	rcu_read_lock();
	struct zsession *s = sessions_find(st->sessions, id);
	if (s)
		atomic_store(&s->deadline_ms, mono_ms() + (timeout > 0 ? timeout : atomic_load(&s->timeout_ms)));
	zkd_rcu_read_unlock();
}

bool processors_session_valid(struct zk_state *st, int64_t id, int32_t timeout, int64_t owner)
{
	rcu_read_lock();
	struct zsession *s = sessions_find(st->sessions, id);
	bool ok = s && !atomic_load(&s->closing);
	if (ok) {
		atomic_store(&s->deadline_ms, mono_ms() + (timeout > 0 ? timeout : atomic_load(&s->timeout_ms)));
		atomic_store(&s->owner, owner);
	}
	zkd_rcu_read_unlock();
	return ok;
}

void processors_revalidated(net_addr conn, int64_t session_id, bool valid)
{
	struct zreq *r = zreq_new(session_id, valid, ZNOTE_REVALIDATED, NULL, 0);
	if (!r)
		return;
	r->msg.to = conn;
	net_post(conn, &r->msg);
}
