/*
 * leader.c - the leader's side of ZAB, as ZooKeeper 3.8's Leader and
 * LearnerHandler speak it on the quorum port.
 *
 * Threads:
 *   the peer thread (leader_run)   discovery waits, then a ping every half
 *                                   tick and the check that a quorum is still
 *                                   in touch; it tears everything down.
 *   zkd-lacceptor                   accepts learner connections.
 *   zkd-lh-<sid> (one per learner)  reads: the handshake, then ACK, PING,
 *                                   REQUEST, REVALIDATE for as long as the
 *                                   learner stays.
 *   zkd-ls-<sid> (one per learner)  writes the learner's queue, so neither
 *                                   Proposal nor Commit ever waits for a slow
 *                                   follower's socket.
 *
 * Phases per learner (ZooKeeper's names): FOLLOWERINFO / OBSERVERINFO ->
 * LEADERINFO (the new epoch, once a quorum has connected) -> ACKEPOCH ->
 * DIFF, TRUNC or SNAP from the committed log -> NEWLEADER -> ACK -> (once a
 * quorum acked NEWLEADER) UPTODATE -> broadcast.
 *
 * `lock` is the leader's one lock. Proposal (propose), Commit (commit) and a
 * learner handler deciding how to sync all take it, so a learner joining
 * mid-stream gets every txn exactly once: those committed before it
 * registered from the committed log, those after from its queue.
 *
 * Metrics (ZooKeeper's LearnerHandler and Leader): diff_count / snap_count
 * per sync chosen, revalidate_count, leader_uptime (env->leader_since_ms),
 * and per learner, keyed by its sid, learner_handler_qp_size and
 * learner_handler_qp_time_ms. ZooKeeper's sender takes one packet at a time
 * and records the queue left behind it, and times a marker packet queued
 * every 1000; zkd's sender takes the whole queue at once, so it records,
 * per take, how many packets the queue held and how long the oldest of
 * them waited. Both are recorded by the sender, off Proposal's and
 * Commit's way; a producer only counts packets and stamps the time when it
 * finds the queue empty, under the qlock it takes anyway.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "net/log.h"
#include "storage/txncodec.h"
#include "storage/txnlog.h"
#include "zab.h"

#define COMMITTED_LOG_MAX 500        /* ZooKeeper's commitLogCount default */

enum lh_phase { LH_DISCOVERY, LH_SYNCING, LH_SYNCED };

struct lh {                          /* one learner connection */
	struct leader *ld;
	int fd;
	struct qtls *tls;                /* sslQuorum: set by the reader before the sender starts */
	int64_t sid;
	bool observer;
	pthread_t reader, sender;
	bool sender_started;             /* reader thread only */
	bool joined;                     /* the peer thread joined both threads */
	/* the send queue: producers are Proposal, Commit, Final (sync) and the
	 * peer thread (pings) and the reader (sync packets); the sender drains */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct jute_writer q;
	bool dead;                       /* qlock */
	int q_packets;                   /* qlock: packets in q */
	int64_t q_since_ns;              /* qlock: when q last became non-empty */
	/* learner_handler_qp_size / _qp_time_ms of this sid: set by the reader
	 * before it starts the sender, which records them */
	struct metric_summary *qp_size, *qp_time;
	atomic_llong last_heard_ms;      /* reader writes, peer thread reads */
	/* under ld->lock: */
	enum lh_phase phase;
	bool forwarding;                 /* gets PROPOSAL / COMMIT / INFORM */
	bool gone;                       /* reader finished; the peer thread joins it */
	struct lh *next;
};

struct entry {                       /* a txn as PROPOSAL / INFORM carry it */
	int64_t zxid;
	uint8_t *data;
	size_t len;
	bool owned;                      /* committed log: a copy; outstanding: the zreq's */
};

struct leader {
	struct zab_env *env;
	int listen_fd;
	pthread_t acceptor;
	pthread_mutex_t lock;
	pthread_cond_t cond;             /* phase changes below */
	/* learners: changed only with both `lock` and list_lock held (in that
	 * order); read under either. Final answers syncs under list_lock alone,
	 * so it never waits for `lock` (see take_snapshot). */
	pthread_mutex_t list_lock;
	struct lh *learners;
	bool stopping;
	/* discovery (lock) */
	int64_t epoch;                   /* proposed; decided once a quorum connected */
	bool epoch_decided;
	int64_t connecting[QUORUM_MAX_MEMBERS]; int n_connecting;
	int64_t epoch_acked[QUORUM_MAX_MEMBERS]; int n_epoch_acked;
	bool epoch_acks_done;
	int64_t newleader_acked[QUORUM_MAX_MEMBERS]; int n_newleader_acked;
	bool established;                /* NEWLEADER quorum: UPTODATE may go */
	int64_t my_last_zxid;            /* with my_epoch: our state when we began to lead */
	int64_t my_epoch;
	/* broadcast (lock) */
	int64_t last_committed;
	struct entry *outstanding; int n_out, cap_out;       /* proposed, not committed */
	struct entry committed[COMMITTED_LOG_MAX]; int c_head, c_n;  /* ring */
	struct zab_ops ops;
	const struct zab_metrics *metrics;
};

static void deadline_ts(struct timespec *ts, int64_t deadline_mono_ms)
{
	/* the condition variables use CLOCK_MONOTONIC (leader_run) */
	ts->tv_sec = deadline_mono_ms / 1000;
	ts->tv_nsec = (deadline_mono_ms % 1000) * 1000000;
}

static bool is_voter(struct leader *ld, int64_t sid)
{
	const struct quorum_member *m = quorum_member(ld->env->cfg, sid);
	return m && !m->observer;
}

static bool add_sid(int64_t *v, int *n, int64_t sid)
{
	for (int i = 0; i < *n; i++)
		if (v[i] == sid)
			return false;
	if (*n < QUORUM_MAX_MEMBERS)
		v[(*n)++] = sid;
	return true;
}

/* ---- learner queues -------------------------------------------------------------- */

/* p holds n whole packets. */
static void lh_queue(struct lh *h, const uint8_t *p, size_t len, int n)
{
	pthread_mutex_lock(&h->qlock);
	if (!h->dead) {
		if (h->q_packets == 0)
			h->q_since_ns = metrics_now_ns();
		jute_write_raw(&h->q, p, len);
		h->q_packets += n;
		pthread_cond_signal(&h->qcond);
	}
	pthread_mutex_unlock(&h->qlock);
}

static void lh_queue_packet(struct lh *h, int32_t type, int64_t zxid, const void *data, int32_t len)
{
	struct jute_writer w;
	jute_writer_init(&w, 64 + (len > 0 ? (size_t)len : 0));
	qp_write(&w, type, zxid, data, len, NULL, 0);
	lh_queue(h, w.buf, w.len, 1);
	jute_writer_free(&w);
}

static void lh_kill(struct lh *h)
{
	pthread_mutex_lock(&h->qlock);
	h->dead = true;
	pthread_cond_signal(&h->qcond);
	pthread_mutex_unlock(&h->qlock);
	shutdown(h->fd, SHUT_RDWR);
}

static void *sender_main(void *arg)
{
	struct lh *h = arg;
	char name[16];
	snprintf(name, sizeof name, "zkd-ls-%" PRId64, h->sid);
	log_thread_name(name);
	struct jute_writer out;
	jute_writer_init(&out, 64 * 1024);
	for (;;) {
		pthread_mutex_lock(&h->qlock);
		while (h->q.len == 0 && !h->dead)
			pthread_cond_wait(&h->qcond, &h->qlock);
		if (h->dead) {
			pthread_mutex_unlock(&h->qlock);
			break;
		}
		struct jute_writer t = h->q;   /* take the whole queue */
		h->q = out;
		h->q.len = 0;
		out = t;
		int n = h->q_packets;
		int64_t since = h->q_since_ns;
		h->q_packets = 0;
		pthread_mutex_unlock(&h->qlock);
		metric_observe(h->qp_size, n);
		metric_observe(h->qp_time, (metrics_now_ns() - since) / 1000);
		if (qp_send_all(h->fd, h->tls, out.buf, out.len) != 0) {
			log_warn("learner %" PRId64 ": send failed: %s; dropping it", h->sid, strerror(errno));
			lh_kill(h);
			break;
		}
		out.len = 0;
	}
	jute_writer_free(&out);
	return NULL;
}

/* ---- the committed log --------------------------------------------------------------- */

static struct entry *committed_at(struct leader *ld, int i)
{
	return &ld->committed[(ld->c_head + i) % COMMITTED_LOG_MAX];
}

static void committed_add(struct leader *ld, int64_t zxid, const uint8_t *data, size_t len)
{
	struct entry *e;
	if (ld->c_n == COMMITTED_LOG_MAX) {
		e = committed_at(ld, 0);
		free(e->data);
		ld->c_head = (ld->c_head + 1) % COMMITTED_LOG_MAX;
		ld->c_n--;
	}
	e = committed_at(ld, ld->c_n++);
	e->zxid = zxid;
	e->data = malloc(len ? len : 1);
	if (!e->data)
		abort();
	memcpy(e->data, data, len);
	e->len = len;
	e->owned = true;
}

/* The last txns of the log, so that a learner a little behind gets a DIFF
 * from a new leader rather than a whole snapshot (ZooKeeper fills its
 * committed log while loading the database). */
static int warm_one(void *arg, struct ztxn *t, char *err, size_t errlen)
{
	struct leader *ld = arg;
	if (t->zxid > ld->last_committed)
		return 0;
	struct jute_writer w;
	jute_writer_init(&w, 256);
	int rc = txn_encode(&w, t, err, errlen);
	if (rc == 0)
		committed_add(ld, t->zxid, w.buf, w.len);
	jute_writer_free(&w);
	return rc;
}

static void warm_from_recent(void *arg, int64_t zxid, const uint8_t *data, size_t len)
{
	committed_add(arg, zxid, data, len);
}

static void warm_committed_log(struct leader *ld)
{
	/* what Final kept of the txns it applied as a follower: no disk read */
	if (processors_recent_each(ld->last_committed, warm_from_recent, ld) > 0 &&
	    committed_at(ld, ld->c_n - 1)->zxid == ld->last_committed)
		return;
	for (int i = 0; i < ld->c_n; i++)
		free(committed_at(ld, i)->data);
	ld->c_n = ld->c_head = 0;
	int64_t last = ld->last_committed;
	int64_t counter = last & 0xffffffffLL;
	int64_t after = counter > COMMITTED_LOG_MAX ? last - COMMITTED_LOG_MAX : zxid_make(zxid_epoch(last), 0);
	char err[256];
	int64_t got = 0;
	if (last > 0 && txnlog_replay(ld->env->st->storage.data_log_dir, after, warm_one, ld, &got, err, sizeof err) != 0) {
		log_warn("cannot read the log's last txns for syncing learners (they will get snapshots): %s", err);
		for (int i = 0; i < ld->c_n; i++)
			free(committed_at(ld, i)->data);
		ld->c_n = ld->c_head = 0;
	}
}

/* ---- the pipeline's hooks (zab_ops) ------------------------------------------------------ */

static void hook_propose(void *ctx, struct zreq **v, int n)
{
	struct leader *ld = ctx;
	struct jute_writer w;
	jute_writer_init(&w, 4096);
	struct zab_env *env = ld->env;
	for (int i = 0; i < n; i++) {
		size_t len;
		const uint8_t *txn = processors_req_txn(v[i], &len);
		qp_write(&w, QP_PROPOSAL, processors_req_zxid(v[i]), txn, (int32_t)len, NULL, 0);
		long sz = (long)len;
		atomic_store(&env->last_proposal_size, sz);
		if (sz > atomic_load(&env->max_proposal_size))
			atomic_store(&env->max_proposal_size, sz);
		long mn = atomic_load(&env->min_proposal_size);
		if (mn == 0 || sz < mn)
			atomic_store(&env->min_proposal_size, sz);
	}
	pthread_mutex_lock(&ld->lock);
	for (int i = 0; i < n; i++) {
		if (ld->n_out == ld->cap_out) {
			int cap = ld->cap_out ? ld->cap_out * 2 : 256;
			struct entry *e = realloc(ld->outstanding, (size_t)cap * sizeof *e);
			if (!e)
				abort();
			ld->outstanding = e;
			ld->cap_out = cap;
		}
		/* the zreq's bytes: it lives until Commit removes it from here */
		size_t len;
		uint8_t *txn = (uint8_t *)processors_req_txn(v[i], &len);
		ld->outstanding[ld->n_out++] = (struct entry){ processors_req_zxid(v[i]), txn, len, false };
	}
	for (struct lh *h = ld->learners; h; h = h->next)
		if (h->forwarding && !h->observer)
			lh_queue(h, w.buf, w.len, n);
	pthread_mutex_unlock(&ld->lock);
	jute_writer_free(&w);
}

static void hook_commit(void *ctx, struct zreq **v, int n)
{
	struct leader *ld = ctx;
	struct jute_writer commits, informs;
	jute_writer_init(&commits, 64 * (size_t)n);
	jute_writer_init(&informs, 4096);
	for (int i = 0; i < n; i++) {
		size_t len;
		const uint8_t *txn = processors_req_txn(v[i], &len);
		qp_write(&commits, QP_COMMIT, processors_req_zxid(v[i]), NULL, -1, NULL, 0);
		qp_write(&informs, QP_INFORM, processors_req_zxid(v[i]), txn, (int32_t)len, NULL, 0);
	}
	pthread_mutex_lock(&ld->lock);
	for (int i = 0; i < n; i++) {
		size_t len;
		const uint8_t *txn = processors_req_txn(v[i], &len);
		committed_add(ld, processors_req_zxid(v[i]), txn, len);
		ld->last_committed = processors_req_zxid(v[i]);
	}
	/* commits are in zxid order, and so is `outstanding` */
	int k = 0;
	while (k < ld->n_out && ld->outstanding[k].zxid <= ld->last_committed)
		k++;
	memmove(ld->outstanding, ld->outstanding + k, (size_t)(ld->n_out - k) * sizeof *ld->outstanding);
	ld->n_out -= k;
	for (struct lh *h = ld->learners; h; h = h->next) {
		if (!h->forwarding)
			continue;
		if (h->observer)
			lh_queue(h, informs.buf, informs.len, n);
		else
			lh_queue(h, commits.buf, commits.len, n);
	}
	pthread_mutex_unlock(&ld->lock);
	jute_writer_free(&commits);
	jute_writer_free(&informs);
}

static bool hook_has_quorum(void *ctx, const int64_t *sids, int n)
{
	struct leader *ld = ctx;
	return quorum_has_majority(ld->env->cfg, sids, n);
}

static void hook_sync_done(void *ctx, int64_t sid)
{
	struct leader *ld = ctx;
	atomic_fetch_sub(&ld->env->pending_syncs, 1);
	pthread_mutex_lock(&ld->list_lock);
	for (struct lh *h = ld->learners; h; h = h->next)
		if (h->sid == sid)
			lh_queue_packet(h, QP_SYNC, 0, NULL, -1);   /* a dead one drops it */
	pthread_mutex_unlock(&ld->list_lock);
}

/* ---- one learner: handshake, sync, then its packets ---------------------------------- */

/* Waits on ld->cond until *flag or the deadline or a stop. */
/* Under ld->lock. Wakes every STOP_POLL_MS as well, because the server's
 * stop (SIGTERM: env->stop) is an atomic nobody signals ld->cond for; a
 * leader waiting out initLimit for its followers would otherwise hold the
 * shutdown for that long. */
#define STOP_POLL_MS 100

static bool stop_asked(const struct leader *ld)
{
	return ld->stopping || atomic_load(ld->env->stop);
}

static void wait_slice(struct leader *ld, int64_t deadline)
{
	struct timespec ts;
	int64_t slice = quorum_now_ms() + STOP_POLL_MS;
	deadline_ts(&ts, slice < deadline ? slice : deadline);
	pthread_cond_timedwait(&ld->cond, &ld->lock, &ts);
}

static bool wait_for(struct leader *ld, const bool *flag, int64_t deadline)
{
	while (!*flag && !stop_asked(ld) && quorum_now_ms() < deadline)
		wait_slice(ld, deadline);
	return *flag && !stop_asked(ld);
}

static int64_t init_deadline(struct leader *ld)
{
	return quorum_now_ms() + (int64_t)ld->env->cfg->tick_time * ld->env->cfg->init_limit;
}

static void queue_committed(struct lh *h, struct leader *ld, int from)
{
	for (int i = from; i < ld->c_n; i++) {
		struct entry *e = committed_at(ld, i);
		lh_queue_packet(h, QP_PROPOSAL, e->zxid, e->data, (int32_t)e->len);
		lh_queue_packet(h, QP_COMMIT, e->zxid, NULL, -1);
	}
}

/* Under ld->lock, so Commit cannot hand Final anything past zxid: once
 * Final has applied up to zxid the tree stands still at exactly zxid, and
 * the snapshot taken then is exact, not fuzzy (the txns after it reach the
 * learner once each, from its queue). Commits wait meanwhile; a SNAP is
 * rare (a learner far behind). Final never takes ld->lock (sync answers go
 * through list_lock), so it cannot be the one waiting. */
static int take_snapshot(struct lh *h, int64_t zxid, struct jute_writer *w)
{
	struct zab_env *env = h->ld->env;
	int64_t deadline = init_deadline(h->ld);
	while (atomic_load(&env->st->last_applied) < zxid) {
		if (quorum_now_ms() > deadline || h->ld->stopping)
			return -1;
		usleep(100);
	}
	qp_write(w, QP_SNAP, zxid, NULL, -1, NULL, 0);
	return zab_write_snapshot(env, w, zxid);
}

/* ZooKeeper's syncFollower, under ld->lock: queues DIFF or TRUNC and the
 * txns the learner lacks, or writes a SNAP with the snapshot into snap_out
 * and returns 1 (*snap_zxid); -1 if the snapshot failed. Then the
 * learner starts getting the txns proposed from now on. */
static int plan_sync(struct lh *h, int64_t peer_zxid, int64_t *snap_zxid, struct jute_writer *snap_out)
{
	struct leader *ld = h->ld;
	int64_t last = ld->last_committed;
	int64_t minc = ld->c_n ? committed_at(ld, 0)->zxid : last;
	int64_t maxc = ld->c_n ? committed_at(ld, ld->c_n - 1)->zxid : last;
	bool new_epoch_zxid = (peer_zxid & 0xffffffffLL) == 0;
	bool snap = false;
	const struct zab_metrics *zm = ld->metrics;
	if (peer_zxid == last) {
		log_info("learner %" PRId64 ": in sync at 0x%" PRIx64 ": DIFF", h->sid, (uint64_t)peer_zxid);
		lh_queue_packet(h, QP_DIFF, last, NULL, -1);
	} else if (peer_zxid > maxc && !new_epoch_zxid) {
		log_info("learner %" PRId64 ": ahead at 0x%" PRIx64 ": TRUNC to 0x%" PRIx64, h->sid,
			 (uint64_t)peer_zxid, (uint64_t)maxc);
		lh_queue_packet(h, QP_TRUNC, maxc, NULL, -1);
	} else if (ld->c_n && minc <= peer_zxid && peer_zxid <= maxc) {
		int at = -1, prev = -1;
		for (int i = 0; i < ld->c_n; i++) {
			int64_t z = committed_at(ld, i)->zxid;
			if (z == peer_zxid)
				at = i;
			if (z < peer_zxid)
				prev = i;
		}
		if (at >= 0) {
			log_info("learner %" PRId64 ": behind at 0x%" PRIx64 ": DIFF of %d txn(s)", h->sid,
				 (uint64_t)peer_zxid, ld->c_n - at - 1);
			lh_queue_packet(h, QP_DIFF, maxc, NULL, -1);
			queue_committed(h, ld, at + 1);
		} else {
			/* its last txn is not ours: cut it back to the one before */
			int64_t to = prev >= 0 ? committed_at(ld, prev)->zxid : minc;
			log_info("learner %" PRId64 ": diverged at 0x%" PRIx64 ": TRUNC to 0x%" PRIx64 " then DIFF",
				 h->sid, (uint64_t)peer_zxid, (uint64_t)to);
			lh_queue_packet(h, QP_TRUNC, to, NULL, -1);
			queue_committed(h, ld, prev + 1);
		}
	} else {
		snap = true;
		*snap_zxid = last;
		/* counted even if the snapshot fails, as ZooKeeper counts it */
		metric_inc(zm->snap_count);
		log_info("learner %" PRId64 ": at 0x%" PRIx64 ", leader at 0x%" PRIx64 ": SNAP", h->sid,
			 (uint64_t)peer_zxid, (uint64_t)last);
		if (take_snapshot(h, last, snap_out) != 0)
			return -1;
	}
	if (!snap)
		metric_inc(zm->diff_count);
	/* startForwarding: what is proposed but not committed yet, then all new */
	for (int i = 0; i < ld->n_out; i++)
		if (!h->observer)
			lh_queue_packet(h, QP_PROPOSAL, ld->outstanding[i].zxid, ld->outstanding[i].data,
					(int32_t)ld->outstanding[i].len);
	h->forwarding = true;
	h->phase = LH_SYNCING;
	return snap ? 1 : 0;
}


static void handle_ping(struct lh *h, const struct qpacket *p)
{
	/* the learner's touched sessions: (long id, int timeout) each */
	for (int32_t off = 0; p->len > 0 && off + 12 <= p->len; off += 12)
		processors_session_touch(h->ld->env->st, qp_get_long(p->data + off), qp_get_int(p->data + off + 8));
}

static void handle_revalidate(struct lh *h, const struct qpacket *p)
{
	metric_inc(h->ld->metrics->revalidate_count);
	if (p->len < 12)
		return;
	int64_t id = qp_get_long(p->data);
	int32_t timeout = qp_get_int(p->data + 8);
	bool valid = processors_session_valid(h->ld->env->st, id, timeout, h->sid);
	uint8_t out[9];
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)((uint64_t)id >> (56 - 8 * i));
	out[8] = valid;
	lh_queue_packet(h, QP_REVALIDATE, p->zxid, out, 9);
}

static int discovery(struct lh *h, struct qstream *in, int64_t *peer_zxid)
{
	struct leader *ld = h->ld;
	struct qpacket p;
	if (qp_read(in, &p) != 0) {
		log_warn("learner connection: no FOLLOWERINFO: %s", in->err);
		return -1;
	}
	if ((p.type != QP_FOLLOWERINFO && p.type != QP_OBSERVERINFO) || p.len < 8) {
		log_warn("learner connection: first packet is %s, not FOLLOWERINFO/OBSERVERINFO", qp_name(p.type));
		qp_free(&p);
		return -1;
	}
	h->sid = qp_get_long(p.data);
	h->observer = p.type == QP_OBSERVERINFO;
	int64_t accepted = zxid_epoch(p.zxid);
	qp_free(&p);
	if (!quorum_member(ld->env->cfg, h->sid)) {
		log_warn("learner %" PRId64 ": not in our configuration; closing", h->sid);
		return -1;
	}
	log_info("learner %" PRId64 ": connected as %s, accepted epoch %" PRId64, h->sid,
		 h->observer ? "observer" : "follower", accepted);
	/* ZooKeeper's summary sets, keyed by sid; a learner that comes back
	 * finds its series (registration is cold: once per connection) */
	char key[24];
	snprintf(key, sizeof key, "%" PRId64, h->sid);
	h->qp_size = metrics_summary_l("learner_handler_qp_size",
				       "Leader: packets a learner's send queue held when its sender took them",
				       METRIC_BASIC, METRIC_UNIT, "key", key);
	h->qp_time = metrics_summary_l("learner_handler_qp_time_ms",
				       "Leader: time the oldest packet of a learner's send queue waited for its "
				       "sender (ms)",
				       METRIC_ADVANCED, METRIC_US_AS_MS, "key", key);

	/* getEpochToPropose: one epoch past every epoch a quorum accepted */
	pthread_mutex_lock(&ld->lock);
	if (!ld->epoch_decided) {
		if (accepted >= ld->epoch)
			ld->epoch = accepted + 1;
		if (is_voter(ld, h->sid))
			add_sid(ld->connecting, &ld->n_connecting, h->sid);
		if (quorum_has_majority(ld->env->cfg, ld->connecting, ld->n_connecting)) {
			ld->epoch_decided = true;
			pthread_cond_broadcast(&ld->cond);
		}
	}
	bool ok = wait_for(ld, &ld->epoch_decided, init_deadline(ld));
	int64_t epoch = ld->epoch;
	pthread_mutex_unlock(&ld->lock);
	if (!ok)
		return -1;

	uint8_t ver[4] = { 0, 1, 0, 0 };   /* 0x10000 */
	struct jute_writer w;
	jute_writer_init(&w, 64);
	qp_write(&w, QP_LEADERINFO, zxid_make(epoch, 0), ver, 4, NULL, 0);
	int rc = qp_send_all(h->fd, h->tls, w.buf, w.len);
	jute_writer_free(&w);
	if (rc != 0)
		return -1;
	if (qp_read(in, &p) != 0 || p.type != QP_ACKEPOCH || p.len < 4) {
		log_warn("learner %" PRId64 ": no ACKEPOCH (%s)", h->sid, in->err[0] ? in->err : qp_name(p.type));
		qp_free(&p);
		return -1;
	}
	int32_t their_epoch = qp_get_int(p.data);
	*peer_zxid = p.zxid;
	qp_free(&p);

	/* waitForEpochAck: a learner more recent than us means we should not lead */
	pthread_mutex_lock(&ld->lock);
	if (their_epoch != -1) {
		bool ahead = their_epoch > ld->my_epoch ||
			     (their_epoch == ld->my_epoch && *peer_zxid > ld->my_last_zxid);
		if (ahead) {
			log_warn("learner %" PRId64 " is ahead of the leader (epoch %d, zxid 0x%" PRIx64 ")", h->sid,
				 their_epoch, (uint64_t)*peer_zxid);
			pthread_mutex_unlock(&ld->lock);
			return -1;
		}
		if (is_voter(ld, h->sid))
			add_sid(ld->epoch_acked, &ld->n_epoch_acked, h->sid);
	}
	if (!ld->epoch_acks_done && quorum_has_majority(ld->env->cfg, ld->epoch_acked, ld->n_epoch_acked)) {
		ld->epoch_acks_done = true;
		pthread_cond_broadcast(&ld->cond);
	}
	ok = wait_for(ld, &ld->epoch_acks_done, init_deadline(ld));
	pthread_mutex_unlock(&ld->lock);
	return ok ? 0 : -1;
}

static int synchronize(struct lh *h, struct qstream *in, int64_t peer_zxid)
{
	struct leader *ld = h->ld;
	int64_t snap_zxid = 0;
	struct jute_writer snap;
	jute_writer_init(&snap, 64);
	pthread_mutex_lock(&ld->lock);
	int planned = plan_sync(h, peer_zxid, &snap_zxid, &snap);
	int64_t epoch = ld->epoch;
	pthread_mutex_unlock(&ld->lock);
	/* the queue is held until the sender starts: the SNAP goes first */
	int rc = planned == 1 ? qp_send_all(h->fd, h->tls, snap.buf, snap.len) : 0;
	if (planned == 1)
		log_info("learner %" PRId64 ": sent a snapshot at 0x%" PRIx64 " (%zu bytes)%s", h->sid,
			 (uint64_t)snap_zxid, snap.len, rc ? ": failed" : "");
	jute_writer_free(&snap);
	if (planned < 0 || rc != 0)
		return -1;
	lh_queue_packet(h, QP_NEWLEADER, zxid_make(epoch, 0), NULL, -1);
	if (pthread_create(&h->sender, NULL, sender_main, h) != 0)
		return -1;
	h->sender_started = true;

	struct qpacket p;
	if (qp_read(in, &p) != 0) {
		log_warn("learner %" PRId64 ": no ACK of NEWLEADER: %s", h->sid, in->err);
		return -1;
	}
	bool acked = p.type == QP_ACK && p.zxid == zxid_make(epoch, 0);
	qp_free(&p);
	if (!acked) {
		log_warn("learner %" PRId64 ": first packet after NEWLEADER is not its ACK", h->sid);
		return -1;
	}
	pthread_mutex_lock(&ld->lock);
	if (is_voter(ld, h->sid))
		add_sid(ld->newleader_acked, &ld->n_newleader_acked, h->sid);
	pthread_cond_broadcast(&ld->cond);
	bool ok = wait_for(ld, &ld->established, init_deadline(ld));
	if (ok)
		h->phase = LH_SYNCED;
	pthread_mutex_unlock(&ld->lock);
	if (!ok)
		return -1;
	lh_queue_packet(h, QP_UPTODATE, -1, NULL, -1);
	log_info("learner %" PRId64 ": synced, UPTODATE sent", h->sid);
	return 0;
}

static void broadcast_loop(struct lh *h, struct qstream *in)
{
	struct leader *ld = h->ld;
	in->timeout_ms = ld->env->cfg->tick_time * ld->env->cfg->sync_limit;
	for (;;) {
		struct qpacket p;
		if (qp_read(in, &p) != 0) {
			log_warn("learner %" PRId64 ": lost: %s", h->sid, in->err);
			return;
		}
		atomic_store(&h->last_heard_ms, quorum_now_ms());
		switch (p.type) {
		case QP_ACK:
			if (!h->observer && (p.zxid & 0xffffffffLL) != 0)
				processors_zab_ack(h->sid, p.zxid);
			break;
		case QP_PING:
			handle_ping(h, &p);
			break;
		case QP_REVALIDATE:
			handle_revalidate(h, &p);
			break;
		case QP_REQUEST:
			if (p.len >= 16 && qp_get_int(p.data + 12) == 9 /* OpCode.sync */)
				atomic_fetch_add(&ld->env->pending_syncs, 1);
			if (p.len < 16 || processors_zab_request(ld->env->st, h->sid, p.data, (size_t)p.len,
								  p.auth, p.auth_len) != 0)
				log_warn("learner %" PRId64 ": malformed REQUEST (%d bytes) ignored", h->sid, p.len);
			break;
		default:
			log_warn("learner %" PRId64 ": unexpected %s ignored", h->sid, qp_name(p.type));
			break;
		}
		qp_free(&p);
	}
}

static void *reader_main(void *arg)
{
	struct lh *h = arg;
	struct leader *ld = h->ld;
	log_thread_name("zkd-lh");
	rcu_register_thread();   /* the snapshot walk and session lookups */
	struct qstream *in = malloc(sizeof *in);
	int64_t peer_zxid = 0;
	if (!in)
		goto out;
	const struct quorum_config *cfg = ld->env->cfg;
	/* here, not on the acceptor: a slow handshake (or first byte) holds up
	 * no one else */
	int tls = quorum_accepted_tls(cfg, h->fd, cfg->tick_time * cfg->init_limit);
	if (tls < 0) {
		log_info("learner connection closed before it sent anything");
		goto out;
	}
	if (tls) {
		char err[512];
		h->tls = qtls_start(cfg, h->fd, false, NULL, cfg->tick_time * cfg->init_limit,
				    cfg->tick_time * cfg->sync_limit, err, sizeof err);
		if (!h->tls) {
			log_warn("learner connection refused: %s", err);
			goto out;
		}
	}
	qstream_init(in, h->fd, cfg->tick_time * cfg->init_limit, ld->env->max_packet);
	in->tls = h->tls;
	atomic_store(&h->last_heard_ms, quorum_now_ms());
	if (discovery(h, in, &peer_zxid) != 0 || synchronize(h, in, peer_zxid) != 0)
		goto out;
	broadcast_loop(h, in);
out:
	free(in);
	lh_kill(h);
	pthread_mutex_lock(&ld->lock);
	if (h->phase == LH_SYNCED)
		atomic_fetch_sub(h->observer ? &ld->env->synced_observers : &ld->env->synced_followers, 1);
	atomic_fetch_sub(&ld->env->learners, 1);
	h->phase = LH_DISCOVERY;
	h->forwarding = false;
	h->gone = true;
	pthread_cond_broadcast(&ld->cond);
	pthread_mutex_unlock(&ld->lock);
	rcu_unregister_thread();
	return NULL;
}

/* ---- accepting learners ---------------------------------------------------------------- */

static void *acceptor_main(void *arg)
{
	struct leader *ld = arg;
	log_thread_name("zkd-lacceptor");
	for (;;) {
		int fd = accept4(ld->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;   /* the listener was shut down */
		}
		qp_socket_setup(fd, ld->env->cfg->tick_time * ld->env->cfg->sync_limit);
		struct lh *h = calloc(1, sizeof *h);
		if (!h) {
			close(fd);
			continue;
		}
		h->ld = ld;
		h->fd = fd;
		pthread_mutex_init(&h->qlock, NULL);
		pthread_cond_init(&h->qcond, NULL);
		jute_writer_init(&h->q, 64 * 1024);
		pthread_mutex_lock(&ld->lock);
		if (ld->stopping || pthread_create(&h->reader, NULL, reader_main, h) != 0) {
			pthread_mutex_unlock(&ld->lock);
			close(fd);
			jute_writer_free(&h->q);
			free(h);
			continue;
		}
		pthread_mutex_lock(&ld->list_lock);
		h->next = ld->learners;
		ld->learners = h;
		pthread_mutex_unlock(&ld->list_lock);
		atomic_fetch_add(&ld->env->learners, 1);
		pthread_mutex_unlock(&ld->lock);
	}
	return NULL;
}

static void lh_join(struct lh *h)
{
	if (h->joined)
		return;
	pthread_join(h->reader, NULL);
	if (h->sender_started)
		pthread_join(h->sender, NULL);
	h->joined = true;
}

static void lh_join_free(struct lh *h)
{
	lh_join(h);
	qtls_free(h->tls);
	close(h->fd);
	jute_writer_free(&h->q);
	pthread_mutex_destroy(&h->qlock);
	pthread_cond_destroy(&h->qcond);
	free(h);
}

/* The peer thread: joins handlers whose learner went away. */
static void reap_gone(struct leader *ld)
{
	pthread_mutex_lock(&ld->lock);
	pthread_mutex_lock(&ld->list_lock);
	struct lh **pp = &ld->learners, *dead = NULL;
	while (*pp) {
		struct lh *h = *pp;
		if (h->gone) {
			*pp = h->next;
			h->next = dead;
			dead = h;
		} else {
			pp = &h->next;
		}
	}
	pthread_mutex_unlock(&ld->list_lock);
	pthread_mutex_unlock(&ld->lock);
	while (dead) {
		struct lh *h = dead;
		dead = h->next;
		lh_join_free(h);
	}
}

static int open_listener(struct leader *ld)
{
	const struct quorum_config *cfg = ld->env->cfg;
	const struct quorum_member *me = quorum_member(cfg, cfg->myid);
	char err[256];
	ld->listen_fd = qp_listen(cfg->listen_on_all_ips ? "0.0.0.0" : me->host, me->quorum_port, err, sizeof err);
	if (ld->listen_fd < 0) {
		log_error("cannot listen on the quorum port: %s", err);
		return -1;
	}
	return 0;
}

/* ---- the peer thread's side --------------------------------------------------------------- */

/* Followers in touch within syncLimit, plus us: still a quorum? */
static bool still_quorum(struct leader *ld, int64_t now)
{
	int64_t in_touch[QUORUM_MAX_MEMBERS];
	int n = 0;
	int64_t limit = (int64_t)ld->env->cfg->tick_time * ld->env->cfg->sync_limit;
	in_touch[n++] = ld->env->cfg->myid;
	pthread_mutex_lock(&ld->lock);
	for (struct lh *h = ld->learners; h; h = h->next)
		if (h->phase == LH_SYNCED && !h->gone && is_voter(ld, h->sid) &&
		    now - atomic_load(&h->last_heard_ms) <= limit)
			add_sid(in_touch, &n, h->sid);
	pthread_mutex_unlock(&ld->lock);
	return quorum_has_majority(ld->env->cfg, in_touch, n);
}

static void ping_all(struct leader *ld)
{
	pthread_mutex_lock(&ld->lock);
	int64_t z = ld->last_committed;
	for (struct lh *h = ld->learners; h; h = h->next)
		if (h->phase == LH_SYNCED && !h->gone)
			lh_queue_packet(h, QP_PING, z, NULL, -1);
	pthread_mutex_unlock(&ld->lock);
}

/* Discovery and sync, on the peer thread's side: our own votes, then wait
 * for a quorum at each step. */
static int establish(struct leader *ld)
{
	struct zab_env *env = ld->env;
	pthread_mutex_lock(&ld->lock);
	add_sid(ld->connecting, &ld->n_connecting, env->cfg->myid);
	if (quorum_has_majority(env->cfg, ld->connecting, ld->n_connecting))
		ld->epoch_decided = true;
	pthread_cond_broadcast(&ld->cond);
	bool ok = wait_for(ld, &ld->epoch_decided, init_deadline(ld));
	int64_t epoch = ld->epoch;
	pthread_mutex_unlock(&ld->lock);
	if (!ok) {
		log_warn("no quorum of followers connected within initLimit; back to LOOKING");
		return -1;
	}
	if (zab_set_accepted_epoch(env, epoch) != 0)
		return -1;
	pthread_mutex_lock(&ld->lock);
	add_sid(ld->epoch_acked, &ld->n_epoch_acked, env->cfg->myid);
	if (quorum_has_majority(env->cfg, ld->epoch_acked, ld->n_epoch_acked))
		ld->epoch_acks_done = true;
	pthread_cond_broadcast(&ld->cond);
	ok = wait_for(ld, &ld->epoch_acks_done, init_deadline(ld));
	pthread_mutex_unlock(&ld->lock);
	if (!ok) {
		log_warn("no quorum acked epoch %" PRId64 " within initLimit; back to LOOKING", epoch);
		return -1;
	}
	/* the pipeline runs from here; clients wait for `established` */
	if (processors_start_role(env->st, ZK_LEADER, &ld->ops, zxid_make(epoch, 1)) != 0)
		return -1;
	pthread_mutex_lock(&ld->lock);
	add_sid(ld->newleader_acked, &ld->n_newleader_acked, env->cfg->myid);
	int64_t deadline = init_deadline(ld);
	while (!quorum_has_majority(env->cfg, ld->newleader_acked, ld->n_newleader_acked) && !stop_asked(ld) &&
	       quorum_now_ms() < deadline)
		wait_slice(ld, deadline);
	ok = quorum_has_majority(env->cfg, ld->newleader_acked, ld->n_newleader_acked) && !stop_asked(ld);
	pthread_mutex_unlock(&ld->lock);
	if (!ok) {
		log_warn("no quorum acked NEWLEADER within initLimit; back to LOOKING");
		return -1;
	}
	if (zab_set_current_epoch(env, epoch) != 0)
		return -1;
	/* ZooKeeper's leaderStartTime: set as the leader starts serving */
	atomic_store(&env->leader_since_ms, quorum_now_ms());
	env->epoch_established(env, epoch);
	processors_sessions_touch_all(env->st, env->track);
	pthread_mutex_lock(&ld->lock);
	ld->established = true;
	pthread_cond_broadcast(&ld->cond);
	pthread_mutex_unlock(&ld->lock);
	atomic_store(&env->st->serving, true);
	log_info("LEADING: epoch %" PRId64 " established with a quorum; serving clients", epoch);
	return 0;
}

void leader_run(struct zab_env *env)
{
	struct leader *ld = calloc(1, sizeof *ld);
	if (!ld)
		return;
	ld->env = env;
	ld->metrics = zab_metrics();
	atomic_store(&env->leader_since_ms, 0);
	pthread_mutex_init(&ld->list_lock, NULL);
	atomic_store(&env->learners, 0);
	atomic_store(&env->synced_followers, 0);
	atomic_store(&env->synced_observers, 0);
	atomic_store(&env->pending_syncs, 0);
	pthread_mutex_init(&ld->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ld->cond, &ca);
	pthread_condattr_destroy(&ca);
	ld->epoch = env->accepted_epoch + 1;
	ld->my_last_zxid = zab_last_zxid(env);
	ld->my_epoch = env->current_epoch;
	atomic_store(&env->st->zxid_exhausted, false);
	ld->last_committed = atomic_load(&env->st->last_applied);
	ld->ops = (struct zab_ops){
		.ctx = ld, .myid = env->cfg->myid, .propose = hook_propose, .commit = hook_commit,
		.has_quorum = hook_has_quorum, .sync_done = hook_sync_done,
	};
	if (open_listener(ld) != 0) {
		free(ld);
		return;
	}
	if (pthread_create(&ld->acceptor, NULL, acceptor_main, ld) != 0) {
		close(ld->listen_fd);
		free(ld);
		return;
	}
	/* learners may connect meanwhile: they wait for the epoch below */
	int64_t t0 = quorum_now_ms();
	pthread_mutex_lock(&ld->lock);
	warm_committed_log(ld);
	pthread_mutex_unlock(&ld->lock);
	log_debug("committed log: %d txn(s) from the log in %lld ms", ld->c_n, (long long)(quorum_now_ms() - t0));
	if (establish(ld) == 0) {
		int half = env->cfg->tick_time / 2 > 0 ? env->cfg->tick_time / 2 : 1;
		while (!atomic_load(env->stop)) {
			usleep((useconds_t)half * 1000);
			reap_gone(ld);
			ping_all(ld);
			if (atomic_load(&env->st->zxid_exhausted)) {
				log_warn("LEADING: zxid counter of epoch %" PRId64 " used up; back to LOOKING for a new epoch",
					 ld->epoch);
				break;
			}
			if (!still_quorum(ld, quorum_now_ms())) {
				log_warn("LEADING: lost the quorum (no word from enough followers within syncLimit); "
					 "back to LOOKING");
				break;
			}
		}
	}
	/* teardown: no client may write on, then every thread goes */
	atomic_store(&env->leader_since_ms, 0);
	env->role_lost(env);
	atomic_store(&env->st->serving, false);
	processors_close_all_clients("the leader steps down");
	pthread_mutex_lock(&ld->lock);
	ld->stopping = true;
	pthread_cond_broadcast(&ld->cond);
	for (struct lh *h = ld->learners; h; h = h->next)
		lh_kill(h);
	pthread_mutex_unlock(&ld->lock);
	shutdown(ld->listen_fd, SHUT_RDWR);
	pthread_join(ld->acceptor, NULL);
	close(ld->listen_fd);
	for (struct lh *h = ld->learners; h; h = h->next)
		lh_join(h);
	/* the pipeline before the handlers are freed: its hooks use their queues */
	processors_stop_role();
	while (ld->learners) {
		struct lh *h = ld->learners;
		ld->learners = h->next;
		lh_join_free(h);
	}
	for (int i = 0; i < ld->c_n; i++)
		free(committed_at(ld, i)->data);
	free(ld->outstanding);
	pthread_mutex_destroy(&ld->lock);
	pthread_mutex_destroy(&ld->list_lock);
	pthread_cond_destroy(&ld->cond);
	free(ld);
}
