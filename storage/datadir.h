/*
 * datadir.h - ZooKeeper's data directory layout: names and listings.
 *
 * Both the snapshots (dataDir) and the txn logs (dataLogDir, by default the
 * same directory) live in a "version-2" subdirectory, named
 * <prefix>.<zxid in lowercase hex, no padding> - log.1a2b, snapshot.0 - the
 * zxid being the first txn of a log and the last applied txn of a snapshot.
 * Every API in storage/ takes the configured dataDir/dataLogDir and adds
 * "version-2" itself, so callers pass exactly what zoo.cfg says.
 *
 * ZooKeeper reads the zxid as the text between the first and second '.'.
 * We accept "<prefix>.<hex>" and, for snapshots, the ".gz"/".snappy"
 * suffixes of ZooKeeper's compressed snapshots (so that we can say we cannot
 * read them rather than silently ignoring them). Our own temporary files are
 * named "tmp.snapshot.<hex>", which no ZooKeeper listing mistakes for a
 * snapshot.
 */
#ifndef ZKD_STORAGE_DATADIR_H
#define ZKD_STORAGE_DATADIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DATADIR_VERSION "version-2"
#define DATADIR_NAME_MAX 64

struct dd_file {
	int64_t zxid;
	char name[DATADIR_NAME_MAX];  /* file name inside version-2 */
	char suffix[16];              /* after the zxid ("" normally, ".gz", ".snappy") */
};

/* "<dir>/version-2" (malloc'd). With create, makes dir and version-2 when
 * missing (and fsyncs their parents so the new names survive a crash).
 * NULL with a message in err on failure. */
char *datadir_version_dir(const char *dir, bool create, char *err, size_t errlen);

/* The files "<prefix>.<hex>" in vdir (for snapshots also "<prefix>.<hex>.gz"
 * and ".snappy"), sorted by zxid (ascending, or descending when !ascending).
 * Returns the count (*out malloc'd, NULL when 0) or -1 with err. A missing
 * directory is an empty listing. */
int datadir_list(const char *vdir, const char *prefix, bool ascending, struct dd_file **out,
		 char *err, size_t errlen);

/* "<vdir>/<name>" (malloc'd; aborts on OOM like the tree does). */
char *datadir_path(const char *vdir, const char *name);

/* "log.1a" / "snapshot.1a": ZooKeeper's Util.makeLogName / makeSnapshotName. */
void datadir_name(char *buf, size_t len, const char *prefix, int64_t zxid);

/* ---- the epoch files ------------------------------------------------------
 *
 * ZAB's two durable numbers, kept by ZooKeeper's QuorumPeer as files in the
 * snapshot directory, i.e. <dataDir>/version-2: acceptedEpoch (the newest
 * epoch this server promised a leader, NEWEPOCH) and currentEpoch (the
 * epoch of the leader it last synced with, NEWLEADER). Each holds the
 * number as decimal text, no newline (Long.toString); a reader takes the
 * first line (Long.parseLong, so an optional sign, digits, nothing else).
 * Writes are atomic as ZooKeeper's AtomicFileOutputStream makes them:
 * "<name>.tmp" written, fsynced, renamed over <name> - and here the
 * directory fsynced too, so the rename survives a crash. The ".tmp" name
 * matters: QuorumPeer.loadDataBase looks for currentEpoch.tmp (see
 * datadir_load_epochs). */

#define DATADIR_ACCEPTED_EPOCH "acceptedEpoch"
#define DATADIR_CURRENT_EPOCH "currentEpoch"
#define DATADIR_EPOCH_TMP ".tmp"

/* ZxidUtils.getEpochFromZxid: the high 32 bits. */
static inline int64_t datadir_zxid_epoch(int64_t zxid) { return zxid >> 32; }

/* Reads <data_dir>/version-2/<name>. 0 with *out set, 1 when the file does
 * not exist, -1 with a reason (unreadable, not a number: ZooKeeper refuses
 * to start on those too). */
int datadir_read_epoch(const char *data_dir, const char *name, int64_t *out, char *err, size_t errlen);

/* Writes value to <data_dir>/version-2/<name> atomically (creating the
 * directories if needed); every write, fsync, rename goes through fileio.
 * 0, or -1 with a reason: then the file holds its old value, or - only when
 * the final directory fsync failed - the new value, not yet durable. */
int datadir_write_epoch(const char *data_dir, const char *name, int64_t value, char *err, size_t errlen);

/* QuorumPeer.loadDataBase's rules, after recovery gave last_zxid:
 * - currentEpoch missing: the epoch of last_zxid, written (a dataDir from
 *   before the file existed, or a fresh one);
 * - the epoch of last_zxid above currentEpoch: currentEpoch.tmp is taken
 *   and written as currentEpoch if it exists (a crash between the log and
 *   the epoch file), otherwise -1 ("the current epoch is older than the
 *   last zxid");
 * - acceptedEpoch missing: the epoch of last_zxid, written;
 * - acceptedEpoch below currentEpoch: -1.
 * 0 with both set, or -1 with a reason. */
int datadir_load_epochs(const char *data_dir, int64_t last_zxid, int64_t *current, int64_t *accepted, char *err,
			size_t errlen);

#endif
