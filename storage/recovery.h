/*
 * recovery.h - startup: the newest valid snapshot, then the txn logs after
 * it, as ZooKeeper's FileTxnSnapLog.restore does; and purging old files, as
 * autopurge (PurgeTxnLog) does.
 *
 * The caller owns the session set; recovery reports sessions through
 * callbacks: every session in the loaded snapshot and every createSession
 * replayed opens one, every closeSession replayed closes one (after its
 * ephemerals are deleted from the tree). Treat them as upserts and removals:
 * a fuzzy snapshot can already hold a session whose createSession is then
 * replayed, and a close can name a session the caller never saw.
 */
#ifndef ZKD_STORAGE_RECOVERY_H
#define ZKD_STORAGE_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tree.h"
#include "txn.h"

struct recovery_cb {
	void (*session_open)(void *arg, int64_t id, int32_t timeout);   /* may be NULL */
	void (*session_close)(void *arg, int64_t id);                   /* may be NULL */
	void *arg;
	/* after each txn replayed from the log, with the tree's digest then
	 * (ZooKeeper's digest log is refilled this way); may be NULL */
	void (*applied)(void *arg, int64_t zxid, uint64_t digest);
};

struct recovery_result {
	struct ztree *tree;         /* the recovered tree (caller frees) */
	int64_t last_zxid;          /* the last zxid applied: the next txn is last_zxid + 1 */
	int64_t snap_zxid;          /* the snapshot it started from */
	long txns;                  /* txns replayed from the logs */
	bool fresh;                 /* nothing on disk: an empty tree, and snapshot.0 written */
};

/* Recovers the state kept in data_dir (snapshots) and data_log_dir (logs;
 * the same directory when NULL), each with ZooKeeper's version-2 below it.
 *
 * - No snapshot and no log: a fresh tree (/zookeeper...), and snapshot.0 is
 *   written, as ZooKeeper writes one, so that ZooKeeper itself can start
 *   from this dataDir.
 * - No snapshot but logs: refused, as ZooKeeper refuses ("No snapshot found,
 *   but there are log entries. Something is broken!"), unless
 *   trust_empty_snapshot (zookeeper.snapshot.trust.empty), which replays the
 *   logs over an empty tree.
 * - Otherwise the newest valid snapshot plus every logged txn after it.
 *   A torn log tail is cut; anything not recoverable refuses with the file
 *   and the offset (see txnlog_replay).
 *
 * Stale tmp.snapshot.* files from an interrupted snapshot are removed. The
 * calling thread must be RCU-registered and not inside rcu_read_lock.
 * Returns 0, or -1 with the reason in err (out->tree is then NULL). */
int recovery_run(const char *data_dir, const char *data_log_dir, bool trust_empty_snapshot,
		 const struct recovery_cb *cb, struct recovery_result *out, char *err, size_t errlen);

/* (tree writer) Applies one replayed txn as ZooKeeper's restore does: the
 * plain txn_apply, plus the fix-ups of a fuzzy snapshot (a create of a node
 * the snapshot already has moves the parent's cversion/pzxid forward; a
 * CreateTxnV0's parent cversion is the parent's + 1), the ZooKeeper-only
 * types (createTTL, deleteContainer, reconfig) mapped to what txn_apply
 * knows, and closeSession deleting every ephemeral the session still owns.
 * Exposed for a follower that applies a leader's txns the same way;
 * recovery_run uses it with its own state. */
struct recovery_apply;
struct recovery_apply *recovery_apply_new(struct ztree *tree, const struct recovery_cb *cb);
int recovery_apply_txn(struct recovery_apply *a, struct ztxn *t);
void recovery_apply_free(struct recovery_apply *a);

/* Keeps the `keep` newest valid snapshots in data_dir and the logs they
 * need in data_log_dir (the newest log starting at or before the oldest kept
 * snapshot, and all later ones); removes older snapshot.* and log.* files.
 * keep must be >= 3, as ZooKeeper insists. Returns the number of files
 * removed, or -1 with err. */
int storage_purge(const char *data_dir, const char *data_log_dir, int keep, char *err, size_t errlen);

/* ZAB's TRUNC (ZooKeeper's FileTxnSnapLog.truncateLog): removes every txn
 * with a zxid above `zxid` from the logs in data_log_dir (NULL = data_dir) -
 * the log file holding the first such txn is cut right before it, later log
 * files are deleted - and deletes the snapshots in data_dir named above
 * zxid, so that recovery_run afterwards yields exactly the state at zxid
 * (last_zxid = zxid when the logs or a snapshot reach it). The txn log must
 * not be open (txnlog_close first, txnlog_open after: appends then start a
 * new file). Each removal and the cut are durable before the next step, so
 * a crash midway leaves a history recovery accepts (truncate.c says why).
 *
 * Differences from ZooKeeper 3.8, which cuts AFTER the first txn >= zxid and
 * leaves newer snapshots in place (both can leave state beyond zxid): the
 * cut is before the first txn > zxid, and snapshots above zxid go.
 *
 * Returns 0 (also when there was nothing to remove), or -1 with a reason,
 * having changed nothing, when: every valid (sealed) snapshot is above zxid
 * (nothing would be left to recover from: the leader must send a SNAP), or
 * the log file to cut holds a corrupt record with intact ones after it
 * below zxid; or -1 with the file and the call when a removal or the cut
 * itself fails. */
int storage_truncate(const char *data_dir, const char *data_log_dir, int64_t zxid, char *err, size_t errlen);

#endif
