/*
 * learner.c - the follower's and observer's side of ZAB, as ZooKeeper 3.8's
 * Learner, Follower and Observer speak it.
 *
 * The peer thread runs it all: connect to the leader's quorum port,
 * FOLLOWERINFO (or OBSERVERINFO) -> LEADERINFO -> ACKEPOCH, then the sync
 * (DIFF, TRUNC or SNAP, txns, NEWLEADER, UPTODATE), then it reads the
 * leader's packets until the connection fails or stays silent for
 * syncLimit ticks. Detection does not wait for the timeout when the leader
 * is gone: a killed leader's socket reads EOF at once.
 *
 * Txns go down the pipeline (PROPOSAL -> Sync -> Commit -> Final); COMMITs
 * and SYNCs go straight to Commit. Three threads write to the leader: Prep
 * (forwarded requests), Commit (ACKs) and this one (PING answers and the
 * sync's ACKs); `wlock` keeps their packets whole.
 *
 * ZooKeeper's leader insists that the first packet after NEWLEADER is the
 * ACK of NEWLEADER, and that ACK means "everything before NEWLEADER is on
 * disk". So ACKs of txns are held back until then, and the NEWLEADER ACK
 * waits for a marker to come out of Sync behind those txns.
 *
 * Metrics (ZooKeeper's Follower and Observer): the sync's duration, and in
 * broadcast only (ZooKeeper counts in processPacket, which the sync does
 * not use) the PROPOSALs and COMMITs (observer: INFORMs) received and each
 * PROPOSAL's latency from the leader's stamp in its txn header. That
 * latency compares two servers' wall clocks, as ZooKeeper's does; a
 * negative one (clock skew) is left out.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/log.h"
#include "zab.h"

#define MARKER_NEWLEADER 1

struct learner {
	struct zab_env *env;
	int64_t leader_sid;
	bool observer;
	int fd;
	struct qtls *tls;               /* sslQuorum; NULL = plain */
	pthread_mutex_t wlock;          /* writes to fd, held_acks, newleader_acked */
	struct jute_writer held_acks;   /* ACKs waiting for the NEWLEADER ACK */
	bool newleader_acked;
	bool broken;                    /* a write failed (wlock) */
	pthread_mutex_t mlock;          /* marker hand-off: Commit signals the peer thread */
	pthread_cond_t mcond;
	bool marker_seen;
	struct { int64_t session; net_addr conn; } *rv;   /* revalidations asked (wlock) */
	int n_rv, cap_rv;
	/* Peer thread: the sync's PROPOSAL/COMMIT/INFORM packets before
	 * NEWLEADER, held back so that nothing of the new history reaches the
	 * disk long before currentEpoch does (ZooKeeper's packetsNotCommitted). */
	struct qpacket *pre;
	int n_pre, cap_pre;
	bool before_newleader;
	bool broadcasting;              /* peer thread: past UPTODATE */
	const struct zab_metrics *metrics;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_locked(struct learner *l, const uint8_t *p, size_t len)
{
	if (l->broken || !len)
		return;
	if (qp_send_all(l->fd, l->tls, p, len) != 0) {
		l->broken = true;
		shutdown(l->fd, SHUT_RDWR);   /* the peer thread's read fails and it leaves */
	}
}

static void send_packet(struct learner *l, int32_t type, int64_t zxid, const void *data, int32_t len)
{
	struct jute_writer w;
	jute_writer_init(&w, 64 + (len > 0 ? (size_t)len : 0));
	qp_write(&w, type, zxid, data, len, NULL, 0);
	pthread_mutex_lock(&l->wlock);
	send_locked(l, w.buf, w.len);
	pthread_mutex_unlock(&l->wlock);
	jute_writer_free(&w);
}

/* ---- the pipeline's hooks -------------------------------------------------------------- */

static void hook_ack(void *ctx, const int64_t *zxids, int n)
{
	struct learner *l = ctx;
	struct jute_writer w;
	jute_writer_init(&w, 32 * (size_t)n);
	for (int i = 0; i < n; i++)
		qp_write(&w, QP_ACK, zxids[i], NULL, -1, NULL, 0);
	pthread_mutex_lock(&l->wlock);
	if (l->newleader_acked)
		send_locked(l, w.buf, w.len);
	else
		jute_write_raw(&l->held_acks, w.buf, w.len);
	pthread_mutex_unlock(&l->wlock);
	jute_writer_free(&w);
}

static void hook_forward(void *ctx, struct zreq **v, int n, struct jute_writer *out)
{
	(void)ctx;
	struct jute_writer body, auth;
	jute_writer_init(&body, 256);
	jute_writer_init(&auth, 64);
	for (int i = 0; i < n; i++) {
		body.len = auth.len = 0;
		bool has_auth = processors_req_forward(v[i], &body, &auth);
		qp_write(out, QP_REQUEST, -1, body.buf, (int32_t)body.len, has_auth ? auth.buf : NULL, auth.len);
	}
	jute_writer_free(&body);
	jute_writer_free(&auth);
}

static void hook_send(void *ctx, const uint8_t *p, size_t len)
{
	struct learner *l = ctx;
	pthread_mutex_lock(&l->wlock);
	send_locked(l, p, len);
	pthread_mutex_unlock(&l->wlock);
}

static void hook_marker(void *ctx, int64_t tag)
{
	struct learner *l = ctx;
	if (tag != MARKER_NEWLEADER)
		return;
	pthread_mutex_lock(&l->mlock);
	l->marker_seen = true;
	pthread_cond_signal(&l->mcond);
	pthread_mutex_unlock(&l->mlock);
}

void learner_revalidate(struct learner *l, int64_t session_id, int32_t timeout, net_addr conn)
{
	struct jute_writer w, d;
	jute_writer_init(&d, 16);
	jute_write_long(&d, session_id);
	jute_write_int(&d, timeout);
	jute_writer_init(&w, 64);
	qp_write(&w, QP_REVALIDATE, -1, d.buf, (int32_t)d.len, NULL, 0);
	pthread_mutex_lock(&l->wlock);
	if (l->n_rv == l->cap_rv) {
		int cap = l->cap_rv ? l->cap_rv * 2 : 16;
		void *v = realloc(l->rv, (size_t)cap * sizeof *l->rv);
		if (!v) {
			pthread_mutex_unlock(&l->wlock);
			processors_revalidated(conn, session_id, false);
			goto out;
		}
		l->rv = v;
		l->cap_rv = cap;
	}
	l->rv[l->n_rv].session = session_id;
	l->rv[l->n_rv].conn = conn;
	l->n_rv++;
	send_locked(l, w.buf, w.len);
	pthread_mutex_unlock(&l->wlock);
out:
	jute_writer_free(&w);
	jute_writer_free(&d);
}

static void revalidated(struct learner *l, const struct qpacket *p)
{
	if (p->len < 9)
		return;
	int64_t session = qp_get_long(p->data);
	bool valid = p->data[8] != 0;
	net_addr conn = 0;
	pthread_mutex_lock(&l->wlock);
	for (int i = 0; i < l->n_rv; i++) {
		if (l->rv[i].session == session) {
			conn = l->rv[i].conn;
			memmove(&l->rv[i], &l->rv[i + 1], (size_t)(l->n_rv - i - 1) * sizeof *l->rv);
			l->n_rv--;
			break;
		}
	}
	pthread_mutex_unlock(&l->wlock);
	if (conn)
		processors_revalidated(conn, session, valid);
}

/* ---- the protocol ----------------------------------------------------------------------- */

static int connect_leader(struct learner *l)
{
	const struct quorum_config *cfg = l->env->cfg;
	const struct quorum_member *m = quorum_member(cfg, l->leader_sid);
	if (!m)
		return -1;
	/* the leader may not listen yet: it opens its port when it learns it
	 * leads, maybe a moment after us; retry briefly for initLimit */
	int64_t deadline = quorum_now_ms() + (int64_t)cfg->tick_time * cfg->init_limit;
	char err[256];
	for (int delay = 1; !atomic_load(l->env->stop); delay = delay < 8 ? delay * 2 : 8) {
		l->fd = qp_connect(m->host, m->quorum_port, cfg->tick_time * cfg->sync_limit, err, sizeof err);
		if (l->fd >= 0) {
			qp_socket_setup(l->fd, cfg->tick_time * cfg->sync_limit);
			if (!cfg->ssl_quorum)
				return 0;
			l->tls = qtls_start(cfg, l->fd, true, m->host, cfg->tick_time * cfg->sync_limit,
					    cfg->tick_time * cfg->sync_limit, err, sizeof err);
			if (l->tls)
				return 0;
			close(l->fd);
			l->fd = -1;
		}
		if (quorum_now_ms() > deadline)
			break;
		usleep((useconds_t)delay * 1000);
	}
	log_warn("cannot reach leader %" PRId64 ": %s", l->leader_sid, err);
	return -1;
}

/* FOLLOWERINFO -> LEADERINFO -> ACKEPOCH; *new_epoch from the leader. */
static int register_with_leader(struct learner *l, struct qstream *in, int64_t *new_epoch)
{
	struct zab_env *env = l->env;
	uint8_t info[20];
	struct jute_writer w;
	jute_writer_init(&w, 64);
	jute_write_long(&w, env->cfg->myid);          /* LearnerInfo: serverid, */
	jute_write_int(&w, ZAB_PROTOCOL_VERSION);      /* protocolVersion, */
	jute_write_long(&w, 0);                        /* configVersion (static config) */
	memcpy(info, w.buf, 20);
	w.len = 0;
	qp_write(&w, l->observer ? QP_OBSERVERINFO : QP_FOLLOWERINFO, zxid_make(env->accepted_epoch, 0), info, 20,
		 NULL, 0);
	int rc = qp_send_all(l->fd, l->tls, w.buf, w.len);
	jute_writer_free(&w);
	if (rc != 0)
		return -1;
	struct qpacket p;
	if (qp_read(in, &p) != 0) {
		log_warn("leader %" PRId64 ": no LEADERINFO: %s", l->leader_sid, in->err);
		return -1;
	}
	if (p.type != QP_LEADERINFO) {
		log_warn("leader %" PRId64 ": expected LEADERINFO, got %s", l->leader_sid, qp_name(p.type));
		qp_free(&p);
		return -1;
	}
	*new_epoch = zxid_epoch(p.zxid);
	qp_free(&p);
	int32_t ack;
	if (*new_epoch > env->accepted_epoch) {
		ack = (int32_t)env->current_epoch;
		if (zab_set_accepted_epoch(env, *new_epoch) != 0)
			return -1;
	} else if (*new_epoch == env->accepted_epoch) {
		ack = -1;   /* acked this epoch before: tell our zxid, but no second vote */
	} else {
		log_warn("leader %" PRId64 ": epoch %" PRId64 " is older than our accepted epoch %" PRId64,
			 l->leader_sid, *new_epoch, env->accepted_epoch);
		return -1;
	}
	uint8_t eb[4] = { (uint8_t)((uint32_t)ack >> 24), (uint8_t)((uint32_t)ack >> 16), (uint8_t)((uint32_t)ack >> 8),
			  (uint8_t)ack };
	send_packet(l, QP_ACKEPOCH, zab_last_zxid(env), eb, 4);
	return l->broken ? -1 : 0;
}

static int dispatch(struct learner *l, const struct qpacket *p);

/* NEWLEADER: the SNAP and the txns held back go to disk, then the epoch,
 * then the ACK. */
static int ack_newleader(struct learner *l, int64_t newleader_zxid)
{
	const struct quorum_config *cfg = l->env->cfg;
	if (zab_persist_snapshot(l->env) != 0)
		return -1;
	l->before_newleader = false;
	int rc = 0;
	for (int i = 0; i < l->n_pre; i++) {
		if (rc == 0 && dispatch(l, &l->pre[i]) < 0)
			rc = -1;
		qp_free(&l->pre[i]);
	}
	l->n_pre = 0;
	if (rc != 0)
		return -1;
	processors_zab_marker(MARKER_NEWLEADER);
	int64_t deadline = quorum_now_ms() + (int64_t)cfg->tick_time * cfg->init_limit;
	pthread_mutex_lock(&l->mlock);
	while (!l->marker_seen && quorum_now_ms() < deadline && !atomic_load(l->env->stop)) {
		pthread_mutex_unlock(&l->mlock);
		usleep(200);
		pthread_mutex_lock(&l->mlock);
	}
	bool seen = l->marker_seen;
	pthread_mutex_unlock(&l->mlock);
	if (!seen) {
		log_warn("leader %" PRId64 ": the txns before NEWLEADER did not reach the disk in time", l->leader_sid);
		return -1;
	}
	if (zab_set_current_epoch(l->env, zxid_epoch(newleader_zxid)) != 0)
		return -1;
	struct jute_writer w;
	jute_writer_init(&w, 64);
	qp_write(&w, QP_ACK, newleader_zxid, NULL, -1, NULL, 0);
	pthread_mutex_lock(&l->wlock);
	send_locked(l, w.buf, w.len);
	send_locked(l, l->held_acks.buf, l->held_acks.len);
	l->held_acks.len = 0;
	l->newleader_acked = true;
	pthread_mutex_unlock(&l->wlock);
	jute_writer_free(&w);
	return l->broken ? -1 : 0;
}

/* One packet of the leader's stream, in sync or broadcast. 1 = UPTODATE. */
static int dispatch(struct learner *l, const struct qpacket *p)
{
	struct zk_state *st = l->env->st;
	if (l->before_newleader &&
	    (p->type == QP_PROPOSAL || p->type == QP_COMMIT || p->type == QP_INFORM)) {
		if (l->n_pre == l->cap_pre) {
			int cap = l->cap_pre ? l->cap_pre * 2 : 256;
			struct qpacket *v = realloc(l->pre, (size_t)cap * sizeof *v);
			if (!v)
				return -1;
			l->pre = v;
			l->cap_pre = cap;
		}
		/* keep a copy: the caller frees p */
		struct qpacket *k = &l->pre[l->n_pre];
		*k = (struct qpacket){ .type = p->type, .zxid = p->zxid, .len = p->len };
		if (p->len > 0) {
			k->data = malloc((size_t)p->len);
			if (!k->data)
				return -1;
			memcpy(k->data, p->data, (size_t)p->len);
		}
		l->n_pre++;
		return 0;
	}
	switch (p->type) {
	case QP_PROPOSAL:
		if (l->observer)
			return 0;
		if (l->broadcasting) {
			metric_inc(l->metrics->proposal_received);
			/* TxnHeader: clientId, cxid, zxid, then time (ms) */
			if (p->len >= 28) {
				int64_t lat = wall_ms() - qp_get_long(p->data + 20);
				if (lat >= 0)
					metric_observe(l->metrics->proposal_latency, lat);
			}
		}
		return processors_zab_txn(st, p->data, p->len > 0 ? (size_t)p->len : 0) == 0 ? 0 : -1;
	case QP_COMMIT:
		if (l->broadcasting && !l->observer)
			metric_inc(l->metrics->commit_received);
		processors_zab_commit(p->zxid);
		return 0;
	case QP_INFORM:
		if (l->broadcasting)
			metric_inc(l->metrics->commit_received);
		if (processors_zab_txn(st, p->data, p->len > 0 ? (size_t)p->len : 0) != 0)
			return -1;
		processors_zab_commit(p->zxid);
		return 0;
	case QP_NEWLEADER:
		return ack_newleader(l, p->zxid);
	case QP_UPTODATE:
		return 1;
	case QP_PING: {
		struct jute_writer w;
		jute_writer_init(&w, 256);
		processors_sessions_touched(st, &w);
		send_packet(l, QP_PING, p->zxid, w.buf, (int32_t)w.len);
		jute_writer_free(&w);
		return 0;
	}
	case QP_SYNC:
		processors_zab_sync();
		return 0;
	case QP_REVALIDATE:
		revalidated(l, p);
		return 0;
	default:
		log_warn("leader %" PRId64 ": unexpected %s ignored", l->leader_sid, qp_name(p->type));
		return 0;
	}
}

static int sync_with_leader(struct learner *l, struct qstream *in, int64_t new_epoch)
{
	struct zab_env *env = l->env;
	struct qpacket p;
	if (qp_read(in, &p) != 0) {
		log_warn("leader %" PRId64 ": no DIFF/TRUNC/SNAP: %s", l->leader_sid, in->err);
		return -1;
	}
	int rc = 0;
	switch (p.type) {
	case QP_DIFF:
		log_info("leader %" PRId64 ": DIFF sync from 0x%" PRIx64, l->leader_sid, (uint64_t)zab_last_zxid(env));
		break;
	case QP_TRUNC:
		log_info("leader %" PRId64 ": TRUNC to 0x%" PRIx64, l->leader_sid, (uint64_t)p.zxid);
		rc = zab_truncate(env, p.zxid);
		break;
	case QP_SNAP:
		log_info("leader %" PRId64 ": SNAP at 0x%" PRIx64, l->leader_sid, (uint64_t)p.zxid);
		rc = zab_install_snapshot(env, in, p.zxid);
		break;
	default:
		log_warn("leader %" PRId64 ": expected DIFF/TRUNC/SNAP, got %s", l->leader_sid, qp_name(p.type));
		rc = -1;
	}
	qp_free(&p);
	if (rc != 0)
		return -1;
	struct zab_ops ops = {
		.ctx = l, .myid = env->cfg->myid, .ack = hook_ack, .forward = hook_forward, .send = hook_send,
		.marker = hook_marker,
	};
	if (processors_start_role(env->st, l->observer ? ZK_OBSERVER : ZK_FOLLOWER, &ops, 0) != 0)
		return -1;
	for (;;) {
		if (qp_read(in, &p) != 0) {
			log_warn("leader %" PRId64 ": lost during sync: %s", l->leader_sid, in->err);
			return -1;
		}
		rc = dispatch(l, &p);
		qp_free(&p);
		if (rc < 0)
			return -1;
		if (rc == 1)
			break;
	}
	send_packet(l, QP_ACK, zxid_make(new_epoch, 0), NULL, -1);
	return l->broken ? -1 : 0;
}

void learner_run(struct zab_env *env, int64_t leader_sid, bool observer)
{
	struct learner *l = calloc(1, sizeof *l);
	struct qstream *in = malloc(sizeof *in);
	if (!l || !in) {
		free(l);
		free(in);
		return;
	}
	l->env = env;
	l->leader_sid = leader_sid;
	l->observer = observer;
	l->fd = -1;
	l->before_newleader = true;
	l->metrics = zab_metrics();
	pthread_mutex_init(&l->wlock, NULL);
	pthread_mutex_init(&l->mlock, NULL);
	pthread_cond_init(&l->mcond, NULL);
	jute_writer_init(&l->held_acks, 1024);
	const char *mode = observer ? "OBSERVING" : "FOLLOWING";
	int64_t new_epoch = 0;
	if (connect_leader(l) != 0)
		goto out;
	atomic_store(&env->learner_fd, l->fd);
	qstream_init(in, l->fd, env->cfg->tick_time * env->cfg->init_limit, env->max_packet);
	in->tls = l->tls;
	if (register_with_leader(l, in, &new_epoch) != 0)
		goto out;
	int64_t sync_start = quorum_now_ms();
	if (sync_with_leader(l, in, new_epoch) != 0)
		goto out;
	metric_observe(observer ? l->metrics->observer_sync_time : l->metrics->follower_sync_time,
		       quorum_now_ms() - sync_start);
	l->broadcasting = true;
	pthread_mutex_lock(&env->rv_lock);
	env->learner = l;
	pthread_mutex_unlock(&env->rv_lock);
	env->epoch_established(env, new_epoch);
	atomic_store(&env->st->serving, true);
	log_info("%s leader %" PRId64 " in epoch %" PRId64 "; serving clients", mode, leader_sid, new_epoch);
	in->timeout_ms = env->cfg->tick_time * env->cfg->sync_limit;
	while (!atomic_load(env->stop)) {
		struct qpacket p;
		if (qp_read(in, &p) != 0) {
			log_warn("%s: lost leader %" PRId64 ": %s; back to LOOKING", mode, leader_sid, in->err);
			break;
		}
		int rc = dispatch(l, &p);
		qp_free(&p);
		if (rc != 0)
			break;
	}
out:
	env->role_lost(env);
	pthread_mutex_lock(&env->rv_lock);
	env->learner = NULL;
	pthread_mutex_unlock(&env->rv_lock);
	atomic_store(&env->st->serving, false);
	processors_close_all_clients("lost the leader");
	atomic_store(&env->learner_fd, -1);
	if (l->fd >= 0)
		shutdown(l->fd, SHUT_RDWR);
	processors_stop_role();   /* no stage may use l after this */
	qtls_free(l->tls);
	if (l->fd >= 0)
		close(l->fd);
	jute_writer_free(&l->held_acks);
	free(l->rv);
	for (int i = 0; i < l->n_pre; i++)
		qp_free(&l->pre[i]);
	free(l->pre);
	pthread_mutex_destroy(&l->wlock);
	pthread_mutex_destroy(&l->mlock);
	pthread_cond_destroy(&l->mcond);
	free(in);
	free(l);
}
