/*
 * zab.h - what the peer thread (peer.c) shares with the leader (leader.c)
 * and learner (learner.c) sides of ZAB, and the metrics they record
 * (zabmetrics.c) (internal to election/).
 */
#ifndef ZKD_ELECTION_ZAB_H
#define ZKD_ELECTION_ZAB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "election.h"
#include "net/metrics.h"
#include "processors/processors.h"
#include "qpacket.h"

struct zab_env {
	struct zk_state *st;
	const struct quorum_config *cfg;
	atomic_bool *stop;                  /* set by quorum_stop */
	/* the epochs of ZooKeeper's acceptedEpoch and currentEpoch files; the
	 * peer thread reads and writes them (zab_set_epoch keeps the files) */
	int64_t accepted_epoch, current_epoch;
	void (*track)(void *arg, int64_t session_id);   /* the session tracker */
	/* Called by the leader or learner the moment its role is lost, before
	 * tearing down: the election starts taking notifications at once, so
	 * a vote sent by a faster peer meanwhile is not answered and dropped. */
	void (*role_lost)(struct zab_env *env);
	/* Called once the new epoch is established (leader: NEWLEADER quorum;
	 * learner: UPTODATE): from then on the election answers others with
	 * that epoch as the vote's peer epoch (ZooKeeper's updateElectionVote),
	 * which is what a late ZooKeeper server matches votes by. */
	void (*epoch_established)(struct zab_env *env, int64_t epoch);
	void *peer;                         /* peer.c's own */
	/* for mntr: the leader's threads write, 4lw readers read */
	atomic_int learners, synced_followers, synced_observers, pending_syncs;
	atomic_long last_proposal_size, min_proposal_size, max_proposal_size;
	/* monotonic ms when this server began to serve as the leader (its
	 * NEWLEADER quorum), 0 while it is not one: leader_uptime. The peer
	 * thread writes, 4lw readers read. */
	atomic_llong leader_since_ms;
	/* the running learner, for the I/O threads' revalidations: learner.c
	 * sets and clears it under rv_lock */
	pthread_mutex_t rv_lock;
	struct learner *learner;
	/* packets, per quorum socket, may be this large (data + framing) */
	size_t max_packet;
	/* the learner's socket to the leader, -1 = none: quorum_stop shuts it
	 * down so a following peer thread notices at once */
	atomic_int learner_fd;
	/* peer thread only: the tree is ahead of the disk (a SNAP not yet
	 * persisted at snap_pending); a failed sync reloads from disk */
	bool dirty;
	int64_t snap_pending;
};

/* ZooKeeper's ServerMetrics of the quorum (zabmetrics.c), shown in every
 * role from the start. Recorded by:
 *   diff_count, snap_count       leader.c, a learner handler choosing its sync
 *                                (TRUNC counts as a DIFF, as in ZooKeeper)
 *   revalidate_count             leader.c, per REVALIDATE a learner sends
 *   follower_sync_time,          learner.c: ACKEPOCH sent to UPTODATE taken
 *   observer_sync_time
 *   proposal_latency             learner.c (follower): the txn header's time,
 *                                stamped by the leader's Prep, to now
 *   learner_proposal_received_count,
 *   learner_commit_received_count learner.c, broadcast packets only (those of
 *                                the sync are not counted, as in ZooKeeper)
 *   unavailable_time,            peer.c: from the top of the peer loop that
 *   leader_unavailable_time      left broadcast (or the first) to broadcast
 *                                again; the second only when leading */
struct zab_metrics {
	struct metric_counter *diff_count, *snap_count, *revalidate_count;
	struct metric_summary *follower_sync_time, *observer_sync_time, *proposal_latency;
	struct metric_counter *proposal_received, *commit_received;
	struct metric_summary *unavailable_time, *leader_unavailable_time;
	struct metric_counter *looking_count;     /* the peer thread, per LOOKING */
	struct metric_summary *election_time;     /* the peer thread, LOOKING to a leader (ms) */
};
/* Registers them the first time (any thread); never NULL. */
const struct zab_metrics *zab_metrics(void);

static inline int64_t zxid_epoch(int64_t zxid) { return (int64_t)((uint64_t)zxid >> 32); }
static inline int64_t zxid_make(int64_t epoch, int64_t counter) { return (int64_t)((uint64_t)epoch << 32 | (uint32_t)counter); }

/* Runs this server as the leader until it loses its quorum or stop is set;
 * then returns (the peer goes back to LOOKING). */
void leader_run(struct zab_env *env);
/* Runs this server as a follower (or observer) of leader_sid until the
 * leader is lost or stop is set. */
void learner_run(struct zab_env *env, int64_t leader_sid, bool observer);

/* I/O threads (through zk_state.revalidate): sends REVALIDATE for a
 * session a client resumes on this learner; the answer goes to conn. */
struct learner;
void learner_revalidate(struct learner *l, int64_t session_id, int32_t timeout, net_addr conn);

/* ---- peer.c: the state both sides change -------------------------------------- */

/* Writes acceptedEpoch / currentEpoch (file and env). -1 if the disk
 * refuses, after which the peer cannot take part safely. */
int zab_set_accepted_epoch(struct zab_env *env, int64_t epoch);
int zab_set_current_epoch(struct zab_env *env, int64_t epoch);
/* The last zxid in the log (everything logged is applied once the pipeline
 * has stopped: see peer.c). */
int64_t zab_last_zxid(struct zab_env *env);
/* Learner: TRUNC to zxid: cuts the log and reloads the tree from disk. */
int zab_truncate(struct zab_env *env, int64_t zxid);
/* Learner: SNAP: reads the leader's snapshot off s and installs it as the
 * tree and sessions at zxid, in memory (env->dirty) until ... */
int zab_install_snapshot(struct zab_env *env, struct qstream *s, int64_t zxid);
/* ... NEWLEADER, which writes it as a snapshot (and cuts the log above it)
 * just before currentEpoch moves on, as ZooKeeper's learner does. No-op
 * without a SNAP. */
int zab_persist_snapshot(struct zab_env *env);
/* Leader: appends this server's tree and sessions, as a SNAP's payload at
 * zxid, to w (the tree must stand still at zxid: see leader.c). */
int zab_write_snapshot(struct zab_env *env, struct jute_writer *w, int64_t zxid);

#endif
