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

#endif
