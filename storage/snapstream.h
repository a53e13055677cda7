/*
 * snapstream.h - the database as a ZooKeeper 3.8 leader sends it to a
 * learner in a SNAP sync, and as the learner reads it.
 *
 * After the SNAP QuorumPacket (whose zxid is the leader's last processed
 * zxid), LearnerHandler.syncFollower writes, on the same stream and without
 * any framing of its own:
 *
 *   ZKDatabase.serializeSnapshot: the snapshot body (snapbody.h) - int count
 *       + sessions, the ACL map, the nodes, ustring "/" - and nothing else:
 *       no file header, no Adler-32 seals, no ZxidDigest
 *   ustring "BenWasHere"
 *
 * Learner.syncWithLeader reads exactly that (deserializeSnapshot, then the
 * signature, refusing anything else) and goes on reading QuorumPackets from
 * the same stream (NEWLEADER and the txns committed after the SNAP zxid).
 *
 * The body is fuzzy, as ZooKeeper's is: the leader's tree keeps changing
 * while it is walked. The learner must apply the txns after the SNAP zxid
 * over it the way recovery replays a log over a fuzzy snapshot
 * (recovery_apply_txn: a create of a node already there moves the parent's
 * cversion/pzxid instead of failing the sync).
 */
#ifndef ZKD_STORAGE_SNAPSTREAM_H
#define ZKD_STORAGE_SNAPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/jute.h"
#include "snapshot.h"
#include "tree.h"

#define SNAPSTREAM_SIGNATURE "BenWasHere"

/* Takes len bytes for the peer: 0, or -1 to give up (the socket failed). */
typedef int (*snapstream_sink_fn)(void *arg, const void *buf, size_t len);

/* Appends the SNAP stream of t (body + signature) to w. zxid is the last
 * zxid applied to t before the call - the zxid of the SNAP packet; the
 * sessions are the leader's session table at that point.
 *
 * sink NULL: all of it stays in w (for a small tree, or a test).
 * sink set: whenever w holds a MiB (between nodes) and once at the end,
 * everything in w - including what it held before the call, such as the
 * SNAP packet itself - is handed to sink and w emptied; w is empty on
 * return. Memory stays bounded however big the tree is.
 *
 * Called by the leader's learner thread while Final keeps applying: the
 * thread must be RCU-registered and need not (should not) hold
 * rcu_read_lock: each node is read in its own short read-side section, so a
 * slow peer never holds up reclamation. Returns 0, or -1 with a reason (the
 * sink gave up, out of memory). */
int snapstream_write(struct jute_writer *w, struct ztree *t, int64_t zxid, const struct snap_session *sessions,
		     size_t n_sessions, snapstream_sink_fn sink, void *arg, char *err, size_t errlen);

/* Reads exactly len bytes into buf: returns len, or anything else (-1) when
 * it cannot (peer closed, error, timeout). */
typedef ssize_t (*snapstream_pull_fn)(void *arg, void *buf, size_t len);

/* Reads a SNAP stream from pull into a new tree: the body, then the
 * signature, and not one byte more (the next QuorumPacket stays in the
 * source). The length of the stream need not be known: it is read item by
 * item, each length bounded by max_buffer (the learner's jute.maxbuffer;
 * 0 = the default 0xfffff, plus ZooKeeper's 1 KiB of slack), each item -
 * a session, an ACL map entry, a node - by twice that.
 *
 * On success: *tree_out is the new tree (with /zookeeper, /zookeeper/quota
 * and /zookeeper/config added if missing, and quota stats recounted, as
 * DataTree.deserialize does), on_session (may be NULL) has been called for
 * each session of the stream, and 0 is returned. Otherwise -1 with a reason
 * naming the stream offset (garbage, a length over the bound, a missing
 * signature, the source failing), nothing reported and nothing allocated.
 * The calling thread must be RCU-registered and not inside rcu_read_lock. */
int snapstream_read(snapstream_pull_fn pull, void *arg, size_t max_buffer, snap_session_fn on_session,
		    void *session_arg, struct ztree **tree_out, char *err, size_t errlen);

#endif
