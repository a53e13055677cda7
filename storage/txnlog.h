/*
 * txnlog.h - ZooKeeper's transaction log (FileTxnLog), byte for byte.
 *
 * Files: <dataLogDir>/version-2/log.<zxid of its first txn, hex>. Each starts
 * with FileHeader{int magic "ZKLG", int version 2, long dbid 0} and holds
 * records
 *
 *     long  checksum   Adler-32 of the entry bytes (upper 32 bits zero)
 *     int   length     of the entry
 *     byte  entry[length]   TxnHeader + txn record (txncodec.h)
 *     byte  'B'        end of record
 *
 * and is preallocated with zeros in chunks of preAllocSize (ZooKeeper's
 * default 64 MiB), so a zero length marks the end of what was written.
 *
 * Writing (the Sync stage; one thread owns a struct txnlog):
 *
 *     txnlog_append(l, txn)   for each txn of a batch (encodes into a buffer)
 *     txnlog_sync(l)          one write + one fdatasync for the whole batch:
 *                             the group commit. 0 = everything appended is
 *                             durable and may be acknowledged.
 *
 * Any failure (encode, write, preallocation, fdatasync, directory fsync) is
 * sticky: that call and every later one return -1 and nothing after the
 * last successful txnlog_sync is ever reported durable
 * (txnlog_durable_zxid). After a failed fdatasync the page cache may claim
 * data the disk does not have, so the only safe reaction is the one
 * ZooKeeper has: stop the server. A new log file is created lazily by the
 * first append after open or after txnlog_roll, and its directory entry is
 * fsynced by the sync that first makes a txn in it durable.
 *
 * Reading (recovery): txnlog_replay. See its comment for how torn tails and
 * corruption are told apart.
 */
#ifndef ZKD_STORAGE_TXNLOG_H
#define ZKD_STORAGE_TXNLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "txn.h"

#define TXNLOG_MAGIC 0x5a4b4c47          /* "ZKLG" */
#define TXNLOG_VERSION 2
#define TXNLOG_HEADER_SIZE 16
#define TXNLOG_DEFAULT_PREALLOC (64LL << 20)  /* zookeeper.preAllocSize default (KiB * 1024) */

struct txnlog;

/* Opens the log for appending in <dir>/version-2 (creating the directories).
 * Nothing is created until the first append. prealloc_bytes <= 0 disables
 * preallocation; force_sync = false skips fdatasync (ZooKeeper's
 * forceSync=no: fast, and not durable). NULL with err on failure. */
struct txnlog *txnlog_open(const char *dir, int64_t prealloc_bytes, bool force_sync, char *err, size_t errlen);

/* Encodes t into the pending buffer (and writes the buffer out, without
 * syncing, once it passes a few MiB). A txn of type 0 (sync) has no log
 * record and is skipped (returns 0). -1 on any failure (sticky). */
int txnlog_append(struct txnlog *l, const struct ztxn *t);

/* Writes out what is pending and fdatasyncs it: after 0, every appended txn
 * is durable. -1 on any failure: stop acknowledging, stop the server. */
int txnlog_sync(struct txnlog *l);

/* Makes the next append start a new file log.<its zxid>. What is pending is
 * written and synced first, so the old file is complete. 0 or -1 (sticky). */
int txnlog_roll(struct txnlog *l);

/* Syncs what is pending (unless failed) and closes. 0, or -1 if anything
 * failed now or before. */
int txnlog_close(struct txnlog *l);

bool txnlog_failed(const struct txnlog *l);
/* Why it failed ("" if it did not): names the file, the call and errno. */
const char *txnlog_error(const struct txnlog *l);
/* The last zxid a successful txnlog_sync made durable (-1 before any). */
int64_t txnlog_durable_zxid(const struct txnlog *l);
/* How long the fdatasync of the last txnlog_sync took (0 if it had none). */
int64_t txnlog_last_fsync_us(const struct txnlog *l);
/* Bytes written to the current log file (not counting preallocation). */
int64_t txnlog_file_size(const struct txnlog *l);
/* The last zxid appended (-1 before any). */
int64_t txnlog_last_appended_zxid(const struct txnlog *l);
/* The current file's name ("" when none is open). */
const char *txnlog_current_file(const struct txnlog *l);

/* Called by replay for each txn with zxid > after_zxid, in log order. The
 * txn is fully owned (txn_decode); replay ztxn_clear()s it after fn returns,
 * so fn may keep parts by moving them out and zeroing the fields. fn returns
 * 0 to go on, or -1 with a reason in err to stop the replay. */
typedef int (*txnlog_replay_fn)(void *arg, struct ztxn *t, char *err, size_t errlen);

/* Reads <dir>/version-2/log.* in zxid order, starting with the newest file
 * that begins at or before after_zxid + 1 (ZooKeeper's getLogFiles), and
 * calls fn for every txn after after_zxid. *last_zxid gets the last zxid
 * read (after_zxid if none). Returns 0, or -1 with a message naming the file
 * and the byte offset.
 *
 * End of a file: a zero length with only zeros after it (the preallocated
 * tail), or the end of the file.
 *
 * A bad record (short, bad length, bad checksum, no 'B', zero length with
 * data after it) at offset X of the LAST file is a torn tail when nothing
 * valid follows it, or when the record's bytes include a sector-aligned run
 * of zeros (a write that never reached the disk: the file was preallocated
 * with zeros, and records after it belong to the same unsynced batch). Then
 * the file is truncated at X, which is logged with the file name, the offset
 * and what is dropped. Nothing acknowledged is dropped: an acknowledged txn
 * was fdatasynced, and fdatasync covers the whole batch before it.
 *
 * The same bad record in an earlier file (ZooKeeper starts a new file after
 * a crash and leaves the torn one as it is) is accepted, without changing the
 * file, only when the next file continues the history: it starts at or before
 * the last good zxid + 1, or in a later epoch (after which ZAB synced this
 * server from the leader). Anything else - a bad record followed by intact
 * ones, a record whose checksum is right but whose content is not a txn, a
 * missing stretch of zxids within an epoch - refuses with file and offset.
 * A record that decodes fine is never second-guessed. */
int txnlog_replay(const char *dir, int64_t after_zxid, txnlog_replay_fn fn, void *arg,
		  int64_t *last_zxid, char *err, size_t errlen);

/* True if <dir>/version-2 holds any log.* file (ZooKeeper's "there are log
 * entries" test before it refuses to start without a snapshot). */
bool txnlog_exists(const char *dir);

#endif
