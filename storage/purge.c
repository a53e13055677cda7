/*
 * purge.c - removing old snapshots and the logs no kept snapshot needs, by
 * ZooKeeper's rule (PurgeTxnLog.purge, used by autopurge): keep the N newest
 * valid snapshots; the oldest of them starts from its zxid, so keep the log
 * file that covers that zxid (the newest one starting at or before it) and
 * every later one; everything older goes.
 *
 * "Valid" is ZooKeeper's cheap test: the file ends with a seal. A snapshot
 * that fails it (interrupted, truncated) is not counted among the N, so
 * purging never leaves fewer than N loadable snapshots. Compressed
 * snapshots, which zkd cannot check, are never counted either.
 */
#include "recovery.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadir.h"
#include "fileio.h"
#include "net/log.h"
#include "snapshot.h"

static int remove_file(const char *vdir, const char *name)
{
	char *path = datadir_path(vdir, name);
	int rc = fio_unlink(path);
	if (rc == 0)
		log_info("purge: removed %s", path);
	else
		log_warn("purge: cannot remove %s: %s", path, strerror(errno));
	free(path);
	return rc == 0;
}

int storage_purge(const char *data_dir, const char *data_log_dir, int keep, char *err, size_t errlen)
{
	if (keep < 3) {
		snprintf(err, errlen, "purge: the number of snapshots to keep must be at least 3 (got %d)", keep);
		return -1;
	}
	if (!data_log_dir)
		data_log_dir = data_dir;
	char *sdir = datadir_version_dir(data_dir, false, err, errlen);
	char *ldir = datadir_version_dir(data_log_dir, false, err, errlen);
	struct dd_file *snaps = NULL, *logs = NULL;
	int removed = -1;
	int ns = datadir_list(sdir, "snapshot", false, &snaps, err, errlen);
	int nl = ns < 0 ? -1 : datadir_list(ldir, "log", true, &logs, err, errlen);
	if (ns < 0 || nl < 0)
		goto out;

	removed = 0;
	int valid = 0;
	int64_t least = -1;
	for (int i = 0; i < ns && valid < keep; i++) {
		if (snaps[i].suffix[0])
			continue;
		char *path = datadir_path(sdir, snaps[i].name);
		if (snapshot_file_sealed(path)) {
			valid++;
			least = snaps[i].zxid;
		}
		free(path);
	}
	if (valid == 0)
		goto out;       /* nothing proven loadable: keep everything */

	int keep_log = -1;
	for (int i = 0; i < nl; i++)
		if (logs[i].zxid <= least)
			keep_log = i;
	for (int i = 0; i < nl; i++)
		if (logs[i].zxid < least && i != keep_log)
			removed += remove_file(ldir, logs[i].name);
	for (int i = 0; i < ns; i++)
		if (snaps[i].zxid < least)
			removed += remove_file(sdir, snaps[i].name);
	if (removed) {
		fio_fsync_dir(sdir);
		if (strcmp(sdir, ldir) != 0)
			fio_fsync_dir(ldir);
	}
	log_info("purge: kept %d snapshot(s) from 0x%" PRIx64 " on and the logs they need; removed %d file(s)",
		 valid, (uint64_t)least, removed);
out:
	free(snaps);
	free(logs);
	free(sdir);
	free(ldir);
	return removed;
}
