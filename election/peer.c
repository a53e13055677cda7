/*
 * peer.c - a server's life in an ensemble (thread zkd-peer), as ZooKeeper's
 * QuorumPeer.run: LOOKING -> elect -> LEADING / FOLLOWING / OBSERVING ->
 * (the leader or the quorum is lost) -> LOOKING ...
 *
 * Between roles nothing runs: no stage thread, no client (the server stops
 * serving and drops its connections, as ZooKeeper does). That is when the
 * state may be replaced wholesale - cut back by a TRUNC, replaced by a SNAP,
 * or reloaded from disk when the log holds txns the tree never saw
 * (proposals logged but not committed when the leader went away: like
 * ZooKeeper's fastForwardDataBase, everything logged counts, and the next
 * leader's TRUNC takes back what it does not have).
 *
 * The tree and session table are swapped by pointer, and the old ones are
 * freed after synchronize_rcu: the I/O threads (4lw), the tracker and the
 * reaper only look at them inside read-side sections.
 *
 * ZooKeeper's unavailable_time runs, like its QuorumPeer's, from the top of
 * the first peer loop after the server last broadcast (or started) until it
 * broadcasts again (epoch_established), so a sync that fails and sends the
 * peer back to LOOKING does not restart the clock; leader_unavailable_time
 * is the same figure, recorded only when the server comes back leading.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <urcu.h>

#include "election.h"
#include "fle.h"
#include "net/grow.h"
#include "net/log.h"
#include "net/metrics.h"
#include "net/tsan.h"
#include "processors/session.h"
#include "storage/datadir.h"
#include "storage/recovery.h"
#include "storage/snapshot.h"
#include "storage/snapstream.h"
#include "storage/txnlog.h"
#include "zab.h"

struct quorum {
	struct quorum_config cfg;
	struct zab_env env;
	atomic_bool stop;
	struct fle *fle;
	pthread_t thread;
	atomic_int state;               /* enum peer_state, for srvr/mntr */
	atomic_llong looking_since;     /* monotonic ms the peer went LOOKING */
	pthread_t ro_thread;            /* zkd-rotimer: read-only mode, if enabled */
	bool ro_started;
	atomic_llong leader;            /* sid of the current leader, 0 = none */
	struct fle_vote vote;           /* the peer thread's: the vote decided last */
	int64_t unavailable_since;      /* peer thread: monotonic ms, 0 = broadcasting */
};

/* ---- the state on disk and in memory --------------------------------------------- */

int zab_set_accepted_epoch(struct zab_env *env, int64_t epoch)
{
	char err[256];
	if (datadir_write_epoch(env->st->storage.data_dir, DATADIR_ACCEPTED_EPOCH, epoch, err, sizeof err) != 0) {
		log_error("cannot write acceptedEpoch %" PRId64 ": %s", epoch, err);
		return -1;
	}
	env->accepted_epoch = epoch;
	return 0;
}

int zab_set_current_epoch(struct zab_env *env, int64_t epoch)
{
	char err[256];
	if (datadir_write_epoch(env->st->storage.data_dir, DATADIR_CURRENT_EPOCH, epoch, err, sizeof err) != 0) {
		log_error("cannot write currentEpoch %" PRId64 ": %s", epoch, err);
		return -1;
	}
	env->current_epoch = epoch;
	return 0;
}

int64_t zab_last_zxid(struct zab_env *env)
{
	int64_t logged = txnlog_last_appended_zxid(env->st->storage.log);
	int64_t applied = atomic_load(&env->st->last_applied);
	return logged > applied ? logged : applied;
}

struct new_sessions {
	struct session_table *table;
};

static void add_session(void *arg, int64_t id, int32_t timeout)
{
	struct new_sessions *ns = arg;
	sessions_add(ns->table, id, timeout);
}

static void drop_session(void *arg, int64_t id)
{
	struct new_sessions *ns = arg;
	rcu_read_lock();
	struct zsession *s = sessions_find(ns->table, id);
	zkd_rcu_read_unlock();
	if (s)
		sessions_remove(ns->table, s);
}

/* The old tree and session table, once synchronize_rcu has waited out
 * every reader that could still hold them (net/tsan.h: the grace period,
 * as ThreadSanitizer is told of it). */
static void free_after_grace(struct ztree *tree, struct session_table *sessions)
{
	synchronize_rcu();
	TSAN_AFTER_GRACE();
	tree_free(tree);
	sessions_free(sessions);
}

/* Puts tree and sessions in place of the current ones at last_zxid. */
static void install(struct zab_env *env, struct ztree *tree, struct session_table *sessions, int64_t last_zxid)
{
	struct zk_state *st = env->st;
	struct ztree *old_tree = st->tree;
	struct session_table *old_sessions = st->sessions;
	rcu_read_lock();
	tree_init_system_nodes(tree);
	zkd_rcu_read_unlock();
	atomic_store(&st->tree, tree);
	atomic_store(&st->sessions, sessions);
	processors_recent_reset();   /* they may not lead up to the new tree */
	atomic_store(&st->last_applied, last_zxid);
	free_after_grace(old_tree, old_sessions);
}

/* The tree and sessions as the disk has them (snapshot + log). */
static int reload(struct zab_env *env)
{
	struct zk_state *st = env->st;
	char err[1024];
	struct new_sessions ns = { sessions_new(st->limits.myid) };
	if (!ns.table)
		return -1;
	struct recovery_cb cb = { add_session, drop_session, &ns, NULL };
	struct recovery_result res;
	if (recovery_run(st->storage.data_dir, st->storage.data_log_dir, false, &cb, &res, err, sizeof err) != 0) {
		log_error("cannot reload the data in %s: %s", st->storage.data_dir, err);
		sessions_free(ns.table);
		return -1;
	}
	install(env, res.tree, ns.table, res.last_zxid);
	log_info("reloaded from disk: last zxid 0x%" PRIx64 ", %ld nodes", (uint64_t)res.last_zxid,
		 atomic_load(&res.tree->node_count));
	return 0;
}

static int reopen_log(struct zab_env *env)
{
	struct zk_storage *s = &env->st->storage;
	char err[512];
	/* prealloc and forceSync as first opened (server/ keeps them) */
	s->log = txnlog_open(s->data_log_dir, s->log_prealloc, s->log_force_sync, err, sizeof err);
	if (!s->log) {
		log_error("cannot reopen the txn log in %s: %s", s->data_log_dir, err);
		return -1;
	}
	return 0;
}

int zab_truncate(struct zab_env *env, int64_t zxid)
{
	struct zk_storage *s = &env->st->storage;
	char err[512];
	txnlog_close(s->log);
	s->log = NULL;
	int rc = storage_truncate(s->data_dir, s->data_log_dir, zxid, err, sizeof err);
	if (rc != 0)
		log_error("TRUNC to 0x%" PRIx64 " failed: %s", (uint64_t)zxid, err);
	if (reopen_log(env) != 0)
		return -1;
	return rc == 0 ? reload(env) : -1;
}

static ssize_t pull(void *arg, void *buf, size_t len)
{
	return qstream_read(arg, buf, len) == 0 ? (ssize_t)len : -1;
}

struct session_list {
	struct snap_session *v;
	size_t n, cap;
};

static void list_session(void *arg, int64_t id, int32_t timeout)
{
	struct session_list *l = arg;
	struct snap_session *v = grow_for(l->v, l->n, &l->cap, sizeof *v, 64);
	if (!v)
		return;
	l->v = v;
	l->v[l->n++] = (struct snap_session){ id, timeout };
}

int zab_install_snapshot(struct zab_env *env, struct qstream *in, int64_t zxid)
{
	struct zk_state *st = env->st;
	char err[512];
	struct ztree *tree = NULL;
	struct session_list l = { 0 };
	if (snapstream_read(pull, in, st->limits.max_buffer, list_session, &l, &tree, err, sizeof err) != 0) {
		log_error("the leader's snapshot at 0x%" PRIx64 " does not read: %s", (uint64_t)zxid, err);
		free(l.v);
		return -1;
	}
	struct session_table *sessions = sessions_new(st->limits.myid);
	if (!sessions) {
		free(l.v);
		tree_free(tree);
		return -1;
	}
	for (size_t i = 0; i < l.n; i++)
		sessions_add(sessions, l.v[i].id, l.v[i].timeout);
	free(l.v);
	/* in memory only until NEWLEADER (zab_persist_snapshot): on disk before
	 * then, a crash would leave a snapshot of an epoch newer than
	 * currentEpoch, which recovery rightly refuses */
	install(env, tree, sessions, zxid);
	env->snap_pending = zxid;
	env->dirty = true;
	return 0;
}

int zab_persist_snapshot(struct zab_env *env)
{
	struct zk_state *st = env->st;
	int64_t zxid = env->snap_pending;
	if (!zxid)
		return 0;
	struct snap_session *sessions;
	size_t n = sessions_list(st->sessions, &sessions);
	char err[512];
	/* recovery starts here; the log goes on in a new file from zxid + 1 */
	int rc = snapshot_write(st->storage.data_dir, st->tree, zxid, sessions, n, err, sizeof err);
	free(sessions);
	if (rc != 0) {
		log_error("cannot keep the leader's snapshot at 0x%" PRIx64 ": %s", (uint64_t)zxid, err);
		return -1;
	}
	txnlog_close(st->storage.log);
	st->storage.log = NULL;
	if (storage_truncate(st->storage.data_dir, st->storage.data_log_dir, zxid, err, sizeof err) != 0)
		log_warn("after SNAP: cannot drop log txns above 0x%" PRIx64 ": %s", (uint64_t)zxid, err);
	if (reopen_log(env) != 0)
		return -1;
	env->snap_pending = 0;
	env->dirty = false;
	return 0;
}

int zab_write_snapshot(struct zab_env *env, struct jute_writer *w, int64_t zxid)
{
	struct zk_state *st = env->st;
	struct snap_session *sessions;
	size_t n = sessions_list(st->sessions, &sessions);
	char err[256];
	int rc = snapstream_write(w, st->tree, zxid, sessions, n, NULL, NULL, err, sizeof err);
	if (rc != 0)
		log_warn("snapshot for a learner failed: %s", err);
	free(sessions);
	return rc;
}

/* ---- the peer thread ----------------------------------------------------------------- */

/* Everything logged is applied before the vote (see the top). */
static int fast_forward(struct zab_env *env)
{
	if (env->dirty) {
		/* a SNAP installed in memory whose sync never reached NEWLEADER:
		 * back to what the disk holds */
		log_info("the sync with the last leader did not complete: reloading from disk");
		env->dirty = false;
		env->snap_pending = 0;
		return reload(env);
	}
	int64_t logged = txnlog_last_appended_zxid(env->st->storage.log);
	if (logged <= atomic_load(&env->st->last_applied))
		return 0;
	log_info("the log holds txns up to 0x%" PRIx64 " beyond the tree's 0x%" PRIx64 ": reloading",
		 (uint64_t)logged, (uint64_t)atomic_load(&env->st->last_applied));
	return reload(env);
}

/* zk_state.revalidate: to the learner running now, if any */
static void revalidate(void *ctx, int64_t session_id, int32_t timeout, net_addr conn)
{
	struct zab_env *env = ctx;
	pthread_mutex_lock(&env->rv_lock);
	if (env->learner)
		learner_revalidate(env->learner, session_id, timeout, conn);
	else
		processors_revalidated(conn, session_id, false);
	pthread_mutex_unlock(&env->rv_lock);
}

static void set_looking(struct quorum *q)
{
	metric_inc(zab_metrics()->looking_count);
	atomic_store(&q->looking_since, quorum_now_ms());
	atomic_store(&q->state, PEER_LOOKING);
}

/* zkd-rotimer: ZooKeeper starts its read-only server once the peer has
 * been LOOKING for max(2 s, tickTime); so do we, by setting read_only. */
static void *ro_main(void *arg)
{
	struct quorum *q = arg;
	log_thread_name("zkd-rotimer");
	int64_t after = q->cfg.tick_time > 2000 ? q->cfg.tick_time : 2000;
	while (!atomic_load(&q->stop)) {
		usleep(50 * 1000);
		struct zk_state *st = q->env.st;
		if (atomic_load(&q->state) == PEER_LOOKING && !atomic_load(&st->serving) &&
		    !atomic_load(&st->read_only) && quorum_now_ms() - atomic_load(&q->looking_since) >= after) {
			atomic_store(&st->read_only, true);
			log_info("no quorum for %lld ms: serving read-only sessions", (long long)after);
		}
	}
	return NULL;
}

/* Leaving read-only mode: its sessions were this server's alone. */
static void end_read_only(struct quorum *q)
{
	if (!atomic_exchange(&q->env.st->read_only, false))
		return;
	processors_close_all_clients("read-only mode ends");
	log_info("read-only mode ends");
}

/* ZooKeeper's names of the peer states, lower case, as its "Peer state
 * changed" lines print them (QuorumPeer.getDetailedPeerState). */
static const char *state_word(int state)
{
	static const char *names[] = { "looking", "following", "leading", "observing" };
	return names[state & 3];
}

static void epoch_established(struct zab_env *env, int64_t epoch)
{
	struct quorum *q = env->peer;
	if (q->unavailable_since) {
		const struct zab_metrics *zm = zab_metrics();
		int64_t took = quorum_now_ms() - q->unavailable_since;
		metric_observe(zm->unavailable_time, took);
		if (atomic_load(&q->state) == PEER_LEADING)
			metric_observe(zm->leader_unavailable_time, took);
		q->unavailable_since = 0;
	}
	q->vote.peer_epoch = epoch;
	fle_set_state(q->fle, atomic_load(&q->state), &q->vote);
	/* the leader and the learner serve clients right after this */
	log_info("Peer state changed: %s - broadcast", state_word(atomic_load(&q->state)));
}

static void role_lost(struct zab_env *env)
{
	struct quorum *q = env->peer;
	set_looking(q);
	fle_set_state(q->fle, PEER_LOOKING, NULL);
}

static void *peer_main(void *arg)
{
	struct quorum *q = arg;
	struct zab_env *env = &q->env;
	log_thread_name("zkd-peer");
	rcu_register_thread();
	const struct quorum_member *me = quorum_member(&q->cfg, q->cfg.myid);
	bool observer = me && me->observer;
	while (!atomic_load(&q->stop)) {
		if (!q->unavailable_since)
			q->unavailable_since = quorum_now_ms();
		if (atomic_load(&q->state) != PEER_LOOKING)
			set_looking(q);
		atomic_store(&q->leader, 0);
		if (fast_forward(env) != 0) {
			log_error("cannot bring the tree up to the log; stopping");
			exit(1);
		}
		struct fle_vote v;
		int64_t last = zab_last_zxid(env);
		log_info("LOOKING: last zxid 0x%" PRIx64 ", epoch %" PRId64, (uint64_t)last, env->current_epoch);
		if (fle_lookup(q->fle, last, env->current_epoch, &v) != 0)
			break;
		atomic_store(&q->leader, v.leader);
		bool leading = v.leader == q->cfg.myid && !observer;
		int state = leading ? PEER_LEADING : observer ? PEER_OBSERVING : PEER_FOLLOWING;
		atomic_store(&q->state, state);   /* first: the read-only timer looks at it */
		/* ZooKeeper's own words, which operators grep for */
		long long took = (long long)(quorum_now_ms() - atomic_load(&q->looking_since));
		metric_observe(zab_metrics()->election_time, took);
		log_info("%s - LEADER ELECTION TOOK - %lld MS", leading ? "LEADING" : observer ? "OBSERVING" : "FOLLOWING",
			 took);
		log_info("Peer state changed: %s", state_word(state));
		end_read_only(q);
		q->vote = v;
		fle_set_state(q->fle, state, &v);
		if (leading)
			leader_run(env);
		else
			learner_run(env, v.leader, observer);
	}
	rcu_unregister_thread();
	return NULL;
}

/* A learner killed after its sync's txns reached the log but before
 * currentEpoch moved on (NEWLEADER) leaves txns of an epoch newer than
 * currentEpoch. ZooKeeper refuses to start then; but this server never
 * acknowledged any of them (its ACKs wait for the NEWLEADER ACK, which
 * follows the epoch write), so no quorum counted on them: they are cut back
 * and the next leader syncs the member again. Only epochs up to
 * acceptedEpoch qualify; anything else is left for datadir_load_epochs to
 * refuse. */
static int drop_unacked_epochs(struct zab_env *env)
{
	struct zk_state *st = env->st;
	char err[512];
	int64_t cur, acc;
	int64_t last = atomic_load(&st->last_applied);
	if (datadir_read_epoch(st->storage.data_dir, DATADIR_CURRENT_EPOCH, &cur, err, sizeof err) != 0 ||
	    datadir_read_epoch(st->storage.data_dir, DATADIR_ACCEPTED_EPOCH, &acc, err, sizeof err) != 0)
		return 0;   /* missing or unreadable: datadir_load_epochs decides */
	int64_t e = zxid_epoch(last);
	if (e <= cur || e > acc)
		return 0;
	int64_t keep = zxid_make(cur + 1, 0) - 1;
	log_warn("the log holds txns up to 0x%" PRIx64 " (epoch %" PRId64 ") but currentEpoch is %" PRId64
		 ": a sync with a leader was cut short before NEWLEADER, and this server never acknowledged "
		 "them; cutting the log back to 0x%" PRIx64 " (ZooKeeper would refuse to start)",
		 (uint64_t)last, e, cur, (uint64_t)keep);
	return zab_truncate(env, keep);
}

struct quorum *quorum_start(const struct quorum_config *cfg, struct zk_state *st,
			    void (*track)(void *arg, int64_t session_id), char *err, size_t errlen)
{
	quorum_metrics_register();
	struct quorum *q = calloc(1, sizeof *q);
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (errlen)
		err[0] = '\0';
	q->cfg = *cfg;
	q->env.st = st;
	q->env.cfg = &q->cfg;
	q->env.stop = &q->stop;
	q->env.track = track;
	q->env.role_lost = role_lost;
	q->env.epoch_established = epoch_established;
	pthread_mutex_init(&q->env.rv_lock, NULL);
	st->revalidate = revalidate;
	st->revalidate_ctx = &q->env;
	q->env.peer = q;
	q->env.max_packet = (size_t)st->limits.max_buffer * 2 + 1024 * 1024;
	atomic_init(&q->env.learner_fd, -1);
	if (drop_unacked_epochs(&q->env) != 0 ||
	    datadir_load_epochs(st->storage.data_dir, atomic_load(&st->last_applied), &q->env.current_epoch,
				&q->env.accepted_epoch, err, errlen) != 0) {
		if (!err[0])
			snprintf(err, errlen, "cannot cut back txns of a sync that never completed");
		free(q);
		return NULL;
	}
	q->cfg.tls_ctx = NULL;
	if (cfg->ssl_quorum || cfg->port_unification) {
		char why[512];
		q->cfg.tls_ctx = qtls_ctx_new(&q->cfg.tls, cfg->reload_cert_files, why, sizeof why);
		if (!q->cfg.tls_ctx) {
			snprintf(err, errlen, "sslQuorum: %s", why);
			free(q);
			return NULL;
		}
		log_info("%s (peer certificates %s, hostname verification %s)",
			 !cfg->port_unification ? "sslQuorum: TLS on the quorum and election ports" :
			 cfg->ssl_quorum ? "portUnification: TLS and plain accepted on the quorum and election "
					   "ports; connecting with TLS (sslQuorum)" :
					   "portUnification: TLS and plain accepted on the quorum and election "
					   "ports; connecting in plain TCP (sslQuorum=false)",
			 cfg->tls.client_auth == NET_TLS_AUTH_NONE ? "not asked for" :
			 cfg->tls.client_auth == NET_TLS_AUTH_WANT ? "optional" : "required",
			 cfg->ssl_hostname_verification ? "on" : "off");
	}
	q->fle = fle_start(&q->cfg, err, errlen);
	if (!q->fle) {
		qtls_ctx_free(q->cfg.tls_ctx);
		free(q);
		return NULL;
	}
	set_looking(q);
	if (cfg->read_only_enabled && pthread_create(&q->ro_thread, NULL, ro_main, q) == 0)
		q->ro_started = true;
	if (pthread_create(&q->thread, NULL, peer_main, q) != 0) {
		snprintf(err, errlen, "cannot start the peer thread");
		fle_stop(q->fle);
		qtls_ctx_free(q->cfg.tls_ctx);
		free(q);
		return NULL;
	}
	return q;
}

void quorum_stop(struct quorum *q)
{
	if (!q)
		return;
	atomic_store(&q->stop, true);
	fle_interrupt(q->fle);   /* a LOOKING peer thread returns */
	int fd = atomic_load(&q->env.learner_fd);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);   /* so does a following one */
	pthread_join(q->thread, NULL);
	if (q->ro_started)
		pthread_join(q->ro_thread, NULL);
	fle_stop(q->fle);
	qtls_ctx_free(q->cfg.tls_ctx);  /* every connection is gone with the threads */
	free(q);
}

int quorum_state(const struct quorum *q)
{
	return q ? atomic_load(&((struct quorum *)q)->state) : PEER_LOOKING;
}

int64_t quorum_leader(const struct quorum *q)
{
	return q ? atomic_load(&((struct quorum *)q)->leader) : 0;
}

void quorum_get_stats(const struct quorum *cq, struct quorum_stats *out)
{
	struct quorum *q = (struct quorum *)cq;
	memset(out, 0, sizeof *out);
	if (!q)
		return;
	struct zab_env *e = &q->env;
	static const char *names[] = { "looking", "following", "leading", "observing" };
	int state = atomic_load(&q->state);
	const char *phase = state == PEER_LOOKING ? "" :
			    atomic_load(&e->st->serving) ? " - broadcast" : " - synchronization";
	snprintf(out->peer_state, sizeof out->peer_state, "%s%s", names[state & 3], phase);
	out->quorum_size = quorum_voters(&q->cfg);
	if (state != PEER_LEADING)
		return;
	int64_t since = atomic_load(&e->leader_since_ms);
	out->leader_uptime = since ? quorum_now_ms() - since : 0;
	out->learners = atomic_load(&e->learners);
	out->synced_followers = atomic_load(&e->synced_followers);
	out->synced_observers = atomic_load(&e->synced_observers);
	out->pending_syncs = atomic_load(&e->pending_syncs);
	out->last_proposal_size = atomic_load(&e->last_proposal_size);
	out->min_proposal_size = atomic_load(&e->min_proposal_size);
	out->max_proposal_size = atomic_load(&e->max_proposal_size);
}
