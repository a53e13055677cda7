/*
 * fle.h - Fast Leader Election, ZooKeeper 3.8's FastLeaderElection on the
 * wire and in its rules, so zkd and ZooKeeper servers elect leaders together.
 *
 * Two threads take part:
 *   - zkd-election (started by fle_start) owns the election port: it keeps
 *     the connections to the other servers (cnxmgr.c) and answers
 *     notifications at all times, the way ZooKeeper's WorkerReceiver does:
 *     a LOOKING peer that asks while we FOLLOW/LEAD/OBSERVE is told our
 *     current vote, a non-voter is always told it, and a LOOKING peer from
 *     an older round is told our proposal.
 *   - the peer thread (the caller of fle_lookup) runs one election when it
 *     is LOOKING (ZooKeeper's lookForLeader) and blocks until it is decided.
 *
 * Votes are ordered by (peer epoch, zxid, sid). A LOOKING server decides
 * once a majority of the voters (quorum_has_majority) hold its proposal and
 * nothing better arrives within cfg->finalize_wait_ms; a server arriving
 * late learns the leader from the FOLLOWING/LEADING answers of a majority
 * that includes the leader saying it is LEADING. Observers do not vote:
 * they learn the leader the same way.
 */
#ifndef ZKD_ELECTION_FLE_H
#define ZKD_ELECTION_FLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "election.h"

struct fle;

struct fle_vote {
	int64_t leader;         /* sid to follow (or ourselves: lead) */
	int64_t zxid;           /* the leader's last zxid as voted */
	int64_t election_epoch; /* the round ("logical clock") the vote is from */
	int64_t peer_epoch;     /* the leader's current epoch as voted */
	int32_t state;          /* enum peer_state */
};

/* Binds the election port of cfg->myid's server.N line (all addresses if
 * cfg->listen_on_all_ips; a failed bind is retried once a second,
 * cfg->election_bind_retries times, 0 = for ever) and starts thread
 * zkd-election, which connects to the other members and answers
 * notifications from now on. cfg is copied. NULL and a reason in err on
 * failure. */
struct fle *fle_start(const struct quorum_config *cfg, char *err, size_t errlen);

/* Runs one election (the caller is LOOKING) and fills *out with the result:
 * out->leader is the sid to follow, or our own to lead; out->state is
 * PEER_LEADING, PEER_FOLLOWING or (for an observer) PEER_OBSERVING, which is
 * also what we answer others with from then on. last_zxid and
 * current_epoch are our log's last zxid and our current epoch (ignored by
 * an observer, which proposes nobody). Blocks the caller. Returns 0, or -1
 * once fle_interrupt or fle_stop has been called (also if it is called
 * meanwhile). */
int fle_lookup(struct fle *f, int64_t last_zxid, int64_t current_epoch, struct fle_vote *out);

/* What we answer others with outside an election: our state and, unless
 * NULL, our current vote (e.g. the peer epoch agreed with the leader, as
 * ZooKeeper's updateElectionVote does). PEER_LOOKING makes new notifications
 * queue up for the next fle_lookup. Any thread. */
void fle_set_state(struct fle *f, int32_t state, const struct fle_vote *current);

/* Makes a fle_lookup in progress, and every later one, return -1 at once
 * (the peer thread is told to stop before fle_stop frees f). The election
 * thread keeps answering until fle_stop. Any thread. */
void fle_interrupt(struct fle *f);

/* Stops the election thread, waits for a fle_lookup in progress to return
 * -1, closes every socket and frees f. */
void fle_stop(struct fle *f);

/* ---- the wire format and the vote order (exposed for tests) ---------------- */

#define FLE_MSG_VERSION 2           /* Notification.CURRENTVERSION */
#define FLE_MSG_HEADER 44           /* fixed part of a version-2 notification */

/* A notification. sid is the sender (known from the connection, not sent). */
struct fle_notification {
	int64_t sid;
	int32_t state;
	int64_t leader, zxid, election_epoch, peer_epoch;
	int32_t version;            /* 0 for the 28- and 40-byte forms */
};

/* Writes n in the version-2 form (n->version is not used) with `config`
 * as the configuration text. Returns its length, or 0 if cap is too small
 * (FLE_MSG_HEADER + config_len is enough). */
size_t fle_encode(const struct fle_notification *n, const char *config, size_t config_len,
		  uint8_t *buf, size_t cap);

/* Reads a notification body (without the length prefix), accepting the
 * 28-byte (no peer epoch: it is taken from the zxid), 40-byte (no version)
 * and versioned forms as ZooKeeper 3.8 does. The configuration text, if
 * any, is returned in *config and *config_len (pointing into msg) when those are
 * not NULL. n->sid is left alone. 0, or -1 and a reason. */
int fle_decode(const uint8_t *msg, size_t len, struct fle_notification *n,
	       const uint8_t **config, size_t *config_len, char *why, size_t whylen);

/* ZooKeeper's totalOrderPredicate: true if vote (new_id, new_zxid,
 * new_epoch) beats (cur_id, cur_zxid, cur_epoch): higher peer epoch, then
 * higher zxid, then higher sid. */
bool fle_total_order(int64_t new_id, int64_t new_zxid, int64_t new_epoch,
		     int64_t cur_id, int64_t cur_zxid, int64_t cur_epoch);

/* The configuration text sent in notifications: QuorumMaj.toString() of a
 * static configuration ("server.N=host:qport:eport:participant[;host:port]"
 * lines by sid, then "version=0"). Like snprintf: returns the full length,
 * writes at most cap bytes including the NUL. */
size_t fle_config_text(const struct quorum_config *cfg, char *out, size_t cap);

#endif
