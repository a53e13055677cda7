/*
 * logreader.h - one txn log file, record by record, exactly as it is on
 * disk: for tools (bin/zkd-dump) that show a file rather than recover from
 * a directory. Nothing is changed: a torn tail is reported, never cut
 * (txnlog_replay is what cuts, at start).
 *
 *     struct logreader r;
 *     if (logreader_open(&r, path, err, sizeof err) != 0) ...   // header checked
 *     struct logreader_rec rec;
 *     int rc;
 *     while ((rc = logreader_next(&r, &rec, err, sizeof err)) == 1) {
 *             ... rec.offset, rec.txn ...
 *             ztxn_clear(&rec.txn);
 *     }
 *     // rc == 0: end of the records at r.off (EOF, or the preallocated zeros)
 *     // rc == -1: bad record at r.off; err says why, r.next_intact whether
 *     //           intact records follow it (corruption) or not (a torn tail)
 *     logreader_close(&r);
 *
 * The record framing is txnlog.h's (checksum, length, entry, 'B').
 */
#ifndef ZKD_STORAGE_LOGREADER_H
#define ZKD_STORAGE_LOGREADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "txn.h"

struct logreader {
	const uint8_t *p;           /* the file, mapped read-only */
	size_t size;
	size_t off;                 /* the next record; after the walk: where it stopped */
	int32_t magic, version;
	int64_t dbid;
	long records;               /* records returned so far */
	size_t next_intact;         /* after a bad record: offset of the first intact record after it, or SIZE_MAX */
};

struct logreader_rec {
	size_t offset;              /* of the record (its checksum field) */
	size_t length;              /* of the entry (TxnHeader + txn record) */
	uint32_t checksum;          /* Adler-32 of the entry, as stored and verified */
	struct ztxn txn;            /* decoded and owned: ztxn_clear() it */
};

/* Maps path and checks its FileHeader (magic "ZKLG"). -1 with a reason
 * naming the offset when it cannot be opened or is not a txn log. */
int logreader_open(struct logreader *r, const char *path, char *err, size_t errlen);

/* 1: the record at r->off, verified and decoded, is in *rec and r->off moved
 * past it. 0: no more records (end of file, or a zero length followed only by
 * zeros: ZooKeeper's preallocated tail). -1: the record at r->off is bad
 * (short, bad length, checksum, end marker, or a valid checksum around bytes
 * that are not a txn); err names the offset and the fault, and
 * r->next_intact tells corruption (intact records follow) from a torn tail. */
int logreader_next(struct logreader *r, struct logreader_rec *rec, char *err, size_t errlen);

/* Bytes from `from` to the end that are all zero (the preallocated tail). */
bool logreader_zeros_to_end(const struct logreader *r, size_t from);

void logreader_close(struct logreader *r);

#endif
