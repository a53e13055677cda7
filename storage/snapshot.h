/*
 * snapshot.h - ZooKeeper's snapshots (FileSnap), byte for byte.
 *
 * <dataDir>/version-2/snapshot.<zxid hex>, where zxid is the last txn applied
 * before the snapshot began. The file is one Adler-32-checked stream:
 *
 *   FileHeader{int magic "ZKSN", int version 2, long dbid -1}
 *   int count, count x {long sessionId, int timeout}
 *   ACL cache: int count, count x {long id, vector<ACL>}
 *   nodes, depth first from the root (whose path is written as ""):
 *       ustring path, DataNode{buffer data, long aclId,
 *       StatPersisted{czxid, mzxid, ctime, mtime, int version, int cversion,
 *       int aversion, ephemeralOwner, pzxid}}
 *   ustring "/"                          end of the nodes
 *   long Adler-32 of all bytes so far, ustring "/"     the seal
 *   ZxidDigest{long zxid, int version, long digest}    (3.6+)
 *   long Adler-32 of all bytes so far, ustring "/"     second seal
 *
 * Between the header and the first seal is the body ZooKeeper also sends a
 * learner in a SNAP sync; snapbody.c encodes and parses it for both.
 *
 * ACL ids: -1 is OPEN_ACL_UNSAFE and is never in the map
 * (ReferenceCountedACLCache); the others count from 1. We give every
 * distinct ACL encoding an id and write world:anyone/ALL as -1.
 *
 * The digest: zkd keeps no running tree digest (digest.h computes one on
 * demand, for tests and tools), so it writes the "empty" ZxidDigest
 * ZooKeeper itself writes when it has none (zxid 0, version 2, digest 0),
 * which ZooKeeper reads as "nothing to compare". On load a digest is
 * checked for its seal and otherwise ignored.
 *
 * Writing is fuzzy, like ZooKeeper's: the tree keeps changing while it is
 * walked (each node is copied in its own short RCU read-side section, so a
 * big tree never holds up reclamation), and replaying the log from zxid + 1
 * over the loaded snapshot gives the exact state. The file is written as
 * tmp.snapshot.<zxid>, fsynced, renamed into place and the directory fsynced,
 * so a crash leaves either no snapshot or a complete one.
 */
#ifndef ZKD_STORAGE_SNAPSHOT_H
#define ZKD_STORAGE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tree.h"

#define SNAP_MAGIC 0x5a4b534e            /* "ZKSN" */
#define SNAP_VERSION 2
#define SNAP_MAX_TRIES 100               /* ZooKeeper gives up after 100 snapshots too */

struct snap_session {
	int64_t id;
	int32_t timeout;
};

/* Writes snapshot.<zxid> of t into <dir>/version-2 (created if missing).
 * zxid must be the last zxid applied to t before this call: every change
 * after it must be in the log, to be replayed over the snapshot. The calling
 * thread must be RCU-registered and must not be inside rcu_read_lock.
 * Returns 0, or -1 with a reason (nothing is left behind but possibly an
 * older snapshot). */
int snapshot_write(const char *dir, struct ztree *t, int64_t zxid, const struct snap_session *sessions,
		   size_t n_sessions, char *err, size_t errlen);

typedef void (*snap_session_fn)(void *arg, int64_t id, int32_t timeout);

/* Loads the newest valid snapshot of <dir>/version-2 into a new tree.
 * Newer snapshots that are incomplete (no end marker) or fail to load (bad
 * checksum, bad content) are skipped with a log line naming file and
 * offset, as ZooKeeper does. /zookeeper, /zookeeper/quota and
 * /zookeeper/config are added if the snapshot lacks them. on_session is
 * called for each session of the snapshot that loaded (only that one).
 * The calling thread must be RCU-registered and not inside rcu_read_lock.
 *
 * Returns 0 (*tree_out, *zxid_out set), 1 when there is no snapshot file at
 * all, or -1 with a reason: there are snapshots but none loads, the one to
 * use is compressed (zkd reads uncompressed snapshots only), I/O error. */
int snapshot_load(const char *dir, struct ztree **tree_out, int64_t *zxid_out, snap_session_fn on_session,
		  void *arg, char *err, size_t errlen);

/* ZooKeeper's cheap validity test (SnapStream.isValidSnapshot): the file
 * has at least 10 bytes and ends with a seal's "/". What purge and
 * truncation count as a snapshot recovery could start from. */
bool snapshot_file_sealed(const char *path);

/* Loads one snapshot file (full path) the same way (for tools and tests). */
int snapshot_load_file(const char *path, struct ztree **tree_out, snap_session_fn on_session, void *arg,
		       char *err, size_t errlen);

#endif
