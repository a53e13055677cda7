/*
 * truncate.c - ZAB's TRUNC: forgetting every txn after a zxid, on disk
 * (storage_truncate in recovery.h).
 *
 * A leader sends TRUNC when this server logged proposals the new leader
 * never committed. ZooKeeper (FileTxnLog.truncate) cuts the log file that
 * holds the zxid right after it and deletes every later log file, then
 * reloads the database from disk. We do the same, with three differences,
 * each so that recovery afterwards yields exactly the state at zxid:
 *
 * - The cut is before the first txn ABOVE zxid. ZooKeeper cuts after the
 *   first txn AT OR ABOVE it, which keeps one txn too many when zxid itself
 *   is not in the log.
 * - Snapshots named above zxid are deleted. ZooKeeper 3.8 leaves them, and
 *   its reload would then start from one of them. (A snapshot at or below
 *   zxid cannot hold a truncated txn: snapshots are taken of applied, i.e.
 *   committed, state, and committed txns are never truncated.) If that would
 *   leave no valid snapshot, nothing is changed and the call fails: the
 *   leader must send a SNAP instead.
 * - The steps are ordered so that a crash at any point leaves a history
 *   recovery accepts: newer snapshots go first (the older snapshot plus the
 *   intact logs is the state before the TRUNC, which a leader can TRUNC
 *   again), then log files newest first (each step leaves a prefix of the
 *   log), then the cut, each made durable before the next.
 *
 * Everything is decided before anything is changed: a log that cannot be
 * read where it has to be cut refuses the whole call with the file and the
 * offset.
 */
#include "recovery.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "fileio.h"
#include "logreader.h"
#include "net/log.h"
#include "snapshot.h"
#include "txnlog.h"

struct plan {
	char *sdir, *ldir;
	struct dd_file *snaps, *logs;
	int ns, nl;
	int snaps_newer;            /* snapshots above zxid */
	int snaps_kept;
	int first_dropped_log;      /* logs[i] for i >= this are removed whole */
	int cut_log;                /* index of the log cut inside, or -1 */
	size_t cut_off;
	int64_t cut_zxid;           /* the first txn dropped from it (-1: a torn tail) */
};

/* A log whose header never reached the disk (shorter than a header, or
 * zeros where it should be: a crash right after the file was created). */
static bool header_never_written(const char *path)
{
	static const uint8_t zeros[TXNLOG_HEADER_SIZE];
	uint8_t h[TXNLOG_HEADER_SIZE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;           /* logreader_open says why */
	ssize_t n = pread(fd, h, sizeof h, 0);
	close(fd);
	return n >= 0 && (n < (ssize_t)sizeof h || memcmp(h, zeros, sizeof h) == 0);
}

/* Where logs[i] has to be cut to keep only txns <= zxid: 0 with *off set
 * (SIZE_MAX = keep it whole), or -1 with a reason. */
static int find_cut(struct plan *pl, int i, int64_t zxid, size_t *off, int64_t *first_dropped, char *err,
		    size_t errlen)
{
	char *path = datadir_path(pl->ldir, pl->logs[i].name);
	struct logreader r;
	char why[400];
	*off = SIZE_MAX;
	*first_dropped = -1;
	if (header_never_written(path)) {
		free(path);
		return 0;               /* it holds no txn */
	}
	if (logreader_open(&r, path, why, sizeof why) != 0) {
		free(path);
		snprintf(err, errlen, "truncate: %s", why);
		return -1;
	}
	int64_t last_good = -1;
	struct logreader_rec rec;
	int rc;
	while ((rc = logreader_next(&r, &rec, why, sizeof why)) == 1) {
		int64_t z = rec.txn.zxid;
		ztxn_clear(&rec.txn);
		if (z > zxid) {
			*off = rec.offset;
			*first_dropped = z;
			break;
		}
		last_good = z;
	}
	if (rc == -1) {
		/* A bad record. Cutting there is safe when nothing it could hide
		 * is to be kept: zxids ascend, so if the last good one is already
		 * zxid, everything from here on is above it; and a torn tail (no
		 * intact record after it) holds nothing recovery would keep. */
		if (last_good >= zxid || r.next_intact == SIZE_MAX) {
			*off = r.off;
		} else {
			snprintf(err, errlen, "truncate: %s/%s: %s, and intact records follow it (at offset %zu): cannot "
				 "tell which txns up to 0x%" PRIx64 " it holds; refusing to truncate", pl->ldir,
				 pl->logs[i].name, why, r.next_intact, (uint64_t)zxid);
			logreader_close(&r);
			free(path);
			return -1;
		}
	}
	logreader_close(&r);
	free(path);
	return 0;
}

/* Decides what goes, without touching anything. */
static int make_plan(struct plan *pl, int64_t zxid, char *err, size_t errlen)
{
	pl->ns = datadir_list(pl->sdir, "snapshot", false, &pl->snaps, err, errlen);
	if (pl->ns < 0)
		return -1;
	pl->nl = datadir_list(pl->ldir, "log", true, &pl->logs, err, errlen);
	if (pl->nl < 0)
		return -1;
	for (int i = 0; i < pl->ns; i++) {
		if (pl->snaps[i].zxid > zxid) {
			pl->snaps_newer++;
		} else if (!pl->snaps[i].suffix[0]) {
			char *path = datadir_path(pl->sdir, pl->snaps[i].name);
			pl->snaps_kept += snapshot_file_sealed(path);
			free(path);
		}
	}
	if (pl->snaps_newer && !pl->snaps_kept) {
		snprintf(err, errlen, "truncate to 0x%" PRIx64 ": every valid snapshot in %s is newer, and without one "
			 "the txns up to it cannot be recovered; refusing (a SNAP sync is needed)", (uint64_t)zxid,
			 pl->sdir);
		return -1;
	}
	/* A log is named for its first txn: the newest one named at or below
	 * zxid holds zxid's successor, if any; later ones hold only later txns. */
	pl->cut_log = -1;
	pl->first_dropped_log = pl->nl;
	for (int i = 0; i < pl->nl; i++) {
		if (pl->logs[i].zxid > zxid) {
			pl->first_dropped_log = i;
			break;
		}
		pl->cut_log = i;
	}
	if (pl->cut_log >= 0) {
		size_t off;
		if (find_cut(pl, pl->cut_log, zxid, &off, &pl->cut_zxid, err, errlen) != 0)
			return -1;
		if (off == SIZE_MAX)
			pl->cut_log = -1;
		else
			pl->cut_off = off;
	}
	return 0;
}

static int remove_one(const char *vdir, const char *name, char *err, size_t errlen)
{
	char *path = datadir_path(vdir, name);
	int rc = fio_unlink(path);
	if (rc != 0)
		snprintf(err, errlen, "truncate: cannot remove %s: %s", path, strerror(errno));
	else
		log_warn("truncate: removed %s", path);
	free(path);
	return rc;
}

static int sync_dir(const char *vdir, char *err, size_t errlen)
{
	if (fio_fsync_dir(vdir) == 0)
		return 0;
	snprintf(err, errlen, "truncate: cannot fsync %s: %s", vdir, strerror(errno));
	return -1;
}

/* Cuts the file at off (removes it when not even one txn is left). */
static int cut_log(struct plan *pl, char *err, size_t errlen)
{
	const struct dd_file *f = &pl->logs[pl->cut_log];
	if (pl->cut_off <= TXNLOG_HEADER_SIZE)
		return remove_one(pl->ldir, f->name, err, errlen);
	char *path = datadir_path(pl->ldir, f->name);
	int fd = fio_open(path, O_WRONLY | O_CLOEXEC, 0);
	int rc = -1;
	const char *what = "open";
	if (fd >= 0) {
		what = "ftruncate";
		if (fio_ftruncate(fd, (off_t)pl->cut_off) == 0) {
			what = "fsync";
			if (fio_fsync(fd) == 0)
				rc = 0;
		}
	}
	int e = errno;
	if (fd >= 0 && fio_close(fd) != 0 && rc == 0) {
		what = "close";
		e = errno;
		rc = -1;
	}
	if (rc != 0)
		snprintf(err, errlen, "truncate: %s at offset %zu: %s failed: %s%s", path, pl->cut_off, what, strerror(e),
			 e == ENOSPC ? " (the dataLogDir disk is full)" : "");
	else if (pl->cut_zxid >= 0)
		log_warn("truncate: cut %s at offset %zu, before zxid 0x%" PRIx64, path, pl->cut_off,
			 (uint64_t)pl->cut_zxid);
	else
		log_warn("truncate: cut %s at offset %zu, where its records stop being valid", path, pl->cut_off);
	free(path);
	return rc;
}

/* Removes one file and makes that durable before anything else changes. */
static int remove_durably(const char *vdir, const char *name, char *err, size_t errlen)
{
	if (remove_one(vdir, name, err, errlen) != 0)
		return -1;
	return sync_dir(vdir, err, errlen);
}

static int carry_out(struct plan *pl, int64_t zxid, char *err, size_t errlen)
{
	/* snaps are listed newest first */
	for (int i = 0; i < pl->ns && pl->snaps[i].zxid > zxid; i++)
		if (remove_durably(pl->sdir, pl->snaps[i].name, err, errlen) != 0)
			return -1;
	for (int i = pl->nl - 1; i >= pl->first_dropped_log; i--)
		if (remove_durably(pl->ldir, pl->logs[i].name, err, errlen) != 0)
			return -1;
	if (pl->cut_log >= 0) {
		if (cut_log(pl, err, errlen) != 0)
			return -1;
		if (pl->cut_off <= TXNLOG_HEADER_SIZE && sync_dir(pl->ldir, err, errlen) != 0)
			return -1;
	}
	if (!pl->snaps_newer && pl->first_dropped_log == pl->nl && pl->cut_log < 0) {
		log_info("truncate to 0x%" PRIx64 ": nothing on disk is above it", (uint64_t)zxid);
		return 0;
	}
	log_warn("truncate to 0x%" PRIx64 ": removed %d snapshot(s) and %d log file(s)%s%s", (uint64_t)zxid,
		 pl->snaps_newer, pl->nl - pl->first_dropped_log, pl->cut_log >= 0 ? ", cut " : "",
		 pl->cut_log >= 0 ? pl->logs[pl->cut_log].name : "");
	return 0;
}

int storage_truncate(const char *data_dir, const char *data_log_dir, int64_t zxid, char *err, size_t errlen)
{
	if (!data_log_dir)
		data_log_dir = data_dir;
	struct plan pl = { 0 };
	pl.sdir = datadir_version_dir(data_dir, false, err, errlen);
	pl.ldir = datadir_version_dir(data_log_dir, false, err, errlen);
	int rc = make_plan(&pl, zxid, err, errlen);
	if (rc == 0)
		rc = carry_out(&pl, zxid, err, errlen);
	free(pl.snaps);
	free(pl.logs);
	free(pl.sdir);
	free(pl.ldir);
	return rc;
}
