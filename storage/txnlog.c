/*
 * txnlog.c - ZooKeeper's FileTxnLog: appending with group commit, and replay
 * with torn-tail repair (see txnlog.h for the format and the contract).
 *
 * Writing. Appends encode into one in-memory buffer; txnlog_sync writes it
 * with pwrite at the file's logical end and then fdatasyncs once. The file
 * is preallocated ahead of the writes (fallocate, with ZooKeeper's sizing
 * rule from FilePadding), so the common fdatasync has no size change to
 * journal and, just as important, whatever was never written reads back as
 * zeros, which is what lets replay tell a torn write from corruption. When
 * fallocate is not supported, or the disk cannot hold another chunk, the file
 * is extended sparsely by writing its last byte, as ZooKeeper always does:
 * running out of space then shows up at the write, where it is reported.
 *
 * Replay. Each file is mapped read-only and walked record by record. Only a
 * record whose checksum and end marker are right is decoded and delivered;
 * the first one that is not ends the walk of that file and is classified
 * (txnlog.h explains the rules). Every length read from the file is checked
 * against the bytes left in the file before it is used, and the mapping
 * means no length ever sizes an allocation.
 */
#include "txnlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adler32.h"
#include "datadir.h"
#include "fileio.h"
#include "net/jute.h"
#include "net/log.h"
#include "txncodec.h"

/* The pending buffer is written out (not synced) once it passes this, so a
 * huge batch does not have to fit in memory twice. */
#define TXNLOG_FLUSH_BYTES (4u << 20)
/* Record framing around the entry: checksum, length, 'B'. */
#define REC_OVERHEAD 13
#define REC_EOR 'B'
/* TxnHeader is 32 bytes; no entry can be shorter. */
#define TXN_HEADER_SIZE 32
/* Torn-write detection granularity: the smallest unit a disk writes. */
#define SECTOR 512

struct txnlog {
	char *vdir;
	int64_t prealloc;
	bool force_sync;

	int fd;                     /* current file, -1 = none (next append creates one) */
	char name[DATADIR_NAME_MAX];
	struct jute_writer buf;     /* encoded, not yet written */
	int64_t file_off;           /* bytes of the file written so far: buf goes here */
	int64_t file_size;          /* size including preallocation */
	bool data_dirty;            /* written since the last fdatasync */
	bool dir_dirty;             /* a file was created since the last dir fsync */

	bool failed;
	char errmsg[320];
	int64_t last_appended;
	int64_t last_durable;
	int64_t last_fsync_us;      /* how long the last txnlog_sync's fdatasync took */
};

/* ---- writing ------------------------------------------------------------ */

static int fail(struct txnlog *l, const char *what, int err)
{
	if (!l->failed) {
		snprintf(l->errmsg, sizeof l->errmsg, "txn log %s/%s: %s at offset %" PRId64 ": %s%s",
			 l->vdir, l->name[0] ? l->name : "-", what, l->file_off, strerror(err),
			 err == ENOSPC ? " (the dataLogDir disk is full)" : "");
		log_error("%s; nothing after zxid 0x%" PRIx64 " is durable", l->errmsg,
			  (uint64_t)l->last_durable);
	}
	l->failed = true;
	return -1;
}

struct txnlog *txnlog_open(const char *dir, int64_t prealloc_bytes, bool force_sync, char *err, size_t errlen)
{
	char *vdir = datadir_version_dir(dir, true, err, errlen);
	if (!vdir)
		return NULL;
	struct txnlog *l = calloc(1, sizeof *l);
	if (!l)
		abort();
	l->vdir = vdir;
	l->prealloc = prealloc_bytes;
	l->force_sync = force_sync;
	l->fd = -1;
	l->last_appended = -1;
	l->last_durable = -1;
	jute_writer_init(&l->buf, 64 * 1024);
	return l;
}

/* Starts log.<zxid>: the header goes into the buffer, to be written with the
 * first records. */
static int start_file(struct txnlog *l, int64_t zxid)
{
	datadir_name(l->name, sizeof l->name, "log", zxid);
	char *path = datadir_path(l->vdir, l->name);
	/* O_TRUNC like ZooKeeper's FileOutputStream: a file of this name can
	 * only be one that recovery left without any txn in it. */
	l->fd = fio_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	free(path);
	l->file_off = 0;
	l->file_size = 0;
	if (l->fd < 0)
		return fail(l, "cannot create the file", errno);
	log_info("txn log: new file %s/%s", l->vdir, l->name);
	l->dir_dirty = true;
	jute_write_int(&l->buf, TXNLOG_MAGIC);
	jute_write_int(&l->buf, TXNLOG_VERSION);
	jute_write_long(&l->buf, 0);   /* dbid: ZooKeeper always writes 0 */
	return 0;
}

/* FilePadding.calculateFileSizeWithPadding: grow by whole chunks once the
 * data comes within 4 KiB of the preallocated end. */
static int64_t padded_size(int64_t position, int64_t size, int64_t chunk)
{
	if (chunk > 0 && position + 4096 >= size) {
		if (position > size) {
			size = position + chunk;
			size -= size % chunk;
		} else {
			size += chunk;
		}
	}
	return size;
}

static int preallocate(struct txnlog *l, int64_t end)
{
	int64_t want = padded_size(end, l->file_size, l->prealloc);
	if (want <= l->file_size)
		return 0;
	if (fio_fallocate(l->fd, 0, l->file_size, want - l->file_size) == 0) {
		l->file_size = want;
		return 0;
	}
	int e = errno;
	if (e != EOPNOTSUPP && e != ENOSYS && e != ENOSPC && e != EINVAL)
		return fail(l, "cannot preallocate", e);
	if (e == ENOSPC) {
		/* ext4 keeps what a failed fallocate got: give it back first */
		if (fio_ftruncate(l->fd, l->file_size) != 0)
			return fail(l, "cannot undo a failed preallocation", errno);
		log_warn("txn log %s/%s: no room to preallocate %" PRId64 " bytes; extending sparsely (the disk is nearly full)",
			 l->vdir, l->name, want - l->file_size);
	}
	static const uint8_t zero = 0;
	if (fio_pwrite_all(l->fd, &zero, 1, (off_t)(want - 1)) != 0)
		return fail(l, "cannot extend the file", errno);
	l->file_size = want;
	return 0;
}

static int write_out(struct txnlog *l)
{
	if (l->buf.len == 0)
		return 0;
	int64_t end = l->file_off + (int64_t)l->buf.len;
	if (preallocate(l, end) != 0)
		return -1;
	if (fio_pwrite_all(l->fd, l->buf.buf, l->buf.len, (off_t)l->file_off) != 0)
		return fail(l, "write failed", errno);
	l->file_off = end;
	if (l->file_size < end)
		l->file_size = end;
	l->buf.len = 0;
	l->data_dirty = true;
	return 0;
}

int txnlog_append(struct txnlog *l, const struct ztxn *t)
{
	if (l->failed)
		return -1;
	if (t->type == 0)
		return 0;   /* sync: rides the pipeline, has no txn */
	if (l->fd < 0 && start_file(l, t->zxid) != 0)
		return -1;
	size_t at = l->buf.len;
	jute_write_long(&l->buf, 0);   /* checksum, patched below */
	jute_write_int(&l->buf, 0);    /* length, patched below */
	size_t body = l->buf.len;
	char why[200];
	if (txn_encode(&l->buf, t, why, sizeof why) != 0) {
		l->buf.len = at;
		snprintf(l->errmsg, sizeof l->errmsg, "txn log: cannot log zxid 0x%" PRIx64 ": %s",
			 (uint64_t)t->zxid, why);
		log_error("%s", l->errmsg);
		l->failed = true;
		return -1;
	}
	if (l->buf.err != JUTE_OK)
		return fail(l, "out of memory", ENOMEM);
	size_t n = l->buf.len - body;
	uint32_t sum = adler32(l->buf.buf + body, n);
	jute_patch_int(&l->buf, at, 0);
	jute_patch_int(&l->buf, at + 4, (int32_t)sum);
	jute_patch_int(&l->buf, at + 8, (int32_t)n);
	jute_write_raw(&l->buf, &(uint8_t){ REC_EOR }, 1);
	if (l->buf.err != JUTE_OK)
		return fail(l, "out of memory", ENOMEM);
	if (t->zxid <= l->last_appended)
		log_warn("txn log: zxid 0x%" PRIx64 " appended after 0x%" PRIx64, (uint64_t)t->zxid,
			 (uint64_t)l->last_appended);
	l->last_appended = t->zxid;
	if (l->buf.len >= TXNLOG_FLUSH_BYTES)
		return write_out(l);
	return 0;
}

int txnlog_sync(struct txnlog *l)
{
	if (l->failed)
		return -1;
	if (l->fd >= 0 && write_out(l) != 0)
		return -1;
	l->last_fsync_us = 0;
	if (l->force_sync) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (l->data_dirty && fio_fdatasync(l->fd) != 0)
			return fail(l, "fdatasync failed", errno);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (l->data_dirty)
			l->last_fsync_us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
		if (l->dir_dirty && fio_fsync_dir(l->vdir) != 0)
			return fail(l, "fsync of the directory failed", errno);
	}
	l->data_dirty = false;
	l->dir_dirty = false;
	l->last_durable = l->last_appended;
	return 0;
}

/* A file that takes no more appends gives back the preallocation it did
 * not use: the blocks are released and the file keeps its size, so it
 * reads as before (zeros after the last record) and looks as ZooKeeper's
 * own sparse padding leaves its files. Without this a small snapCount, which
 * rolls the log every few dozen txns, leaves a whole preallocation chunk of
 * disk per file. Only disk space is at stake, so a failure is logged, not
 * fatal. */
static void release_unused(struct txnlog *l)
{
	if (l->fd < 0 || l->file_size <= l->file_off)
		return;
	if (fio_fallocate(l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)l->file_off,
			  (off_t)(l->file_size - l->file_off)) != 0)
		log_debug("txn log %s/%s: the unused preallocation stays allocated: %s", l->vdir, l->name,
			  strerror(errno));
}

int txnlog_roll(struct txnlog *l)
{
	if (l->failed)
		return -1;
	if (l->fd < 0)
		return 0;
	if (txnlog_sync(l) != 0)
		return -1;
	release_unused(l);
	int fd = l->fd;
	l->fd = -1;
	if (fio_close(fd) != 0)
		return fail(l, "close failed", errno);
	l->name[0] = '\0';
	return 0;
}

int txnlog_close(struct txnlog *l)
{
	if (!l)
		return 0;
	int rc = 0;
	if (!l->failed && l->fd >= 0)
		rc = txnlog_sync(l);
	if (rc == 0 && !l->failed)
		release_unused(l);      /* the next start begins a new file */
	if (l->fd >= 0 && fio_close(l->fd) != 0 && !l->failed)
		rc = fail(l, "close failed", errno);
	if (l->failed)
		rc = -1;
	jute_writer_free(&l->buf);
	free(l->vdir);
	free(l);
	return rc;
}

bool txnlog_failed(const struct txnlog *l) { return l->failed; }
const char *txnlog_error(const struct txnlog *l) { return l->failed ? l->errmsg : ""; }
int64_t txnlog_durable_zxid(const struct txnlog *l) { return l->last_durable; }
int64_t txnlog_last_appended_zxid(const struct txnlog *l) { return l->last_appended; }
const char *txnlog_current_file(const struct txnlog *l) { return l->fd >= 0 ? l->name : ""; }

bool txnlog_exists(const char *dir)
{
	char err[256];
	char *vdir = datadir_version_dir(dir, false, err, sizeof err);
	struct dd_file *files = NULL;
	int n = datadir_list(vdir, "log", true, &files, err, sizeof err);
	free(files);
	free(vdir);
	return n > 0;
}

/* ---- replay ------------------------------------------------------------- */

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)jute_get_u32(p) << 32 | jute_get_u32(p + 4);
}

static int32_t epoch_of(int64_t zxid) { return (int32_t)((uint64_t)zxid >> 32); }

/* Offset of the first non-zero byte in [from, size), or size. */
static size_t first_nonzero(const uint8_t *p, size_t from, size_t size)
{
	size_t i = from;
	while (i < size && (i & 7))
		if (p[i++])
			return i - 1;
	while (i + 8 <= size) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w)
			break;
		i += 8;
	}
	while (i < size && !p[i])
		i++;
	return i;
}

static bool all_zero(const uint8_t *p, size_t from, size_t to)
{
	return first_nonzero(p, from, to) == to;
}

/* Does the byte range [a, b), cut at sector boundaries, contain a piece that
 * is all zeros? Such a piece is a sector (or the part of one this record
 * covers) that never reached the disk. The first 4 bytes of a record are the
 * checksum's upper half, always zero, and are left out. */
static bool has_zero_sector(const uint8_t *p, size_t a, size_t b)
{
	a += 4;
	while (a < b) {
		size_t end = (a / SECTOR + 1) * SECTOR;
		if (end > b)
			end = b;
		if (all_zero(p, a, end))
			return true;
		a = end;
	}
	return false;
}

/* Is there a complete, checksummed record at y? */
static bool record_at(const uint8_t *p, size_t size, size_t y, size_t *rec_len, int64_t *zxid)
{
	if (size - y < REC_OVERHEAD + TXN_HEADER_SIZE)
		return false;
	uint64_t crc = be64(p + y);
	int32_t len = (int32_t)jute_get_u32(p + y + 8);
	if ((crc >> 32) != 0 || len < TXN_HEADER_SIZE || (size_t)len > size - y - REC_OVERHEAD)
		return false;
	if (p[y + 12 + (size_t)len] != REC_EOR || adler32(p + y + 12, (size_t)len) != (uint32_t)crc)
		return false;
	*rec_len = REC_OVERHEAD + (size_t)len;
	*zxid = (int64_t)be64(p + y + 12 + 12);
	return true;
}

struct follow {
	long count;             /* intact records found after the bad one */
	size_t first_off;
	int64_t zmin, zmax;
};

/* Looks for intact records anywhere in (from, size). Zero runs, which make up
 * the preallocated tail, are skipped a word at a time. */
static void find_following(const uint8_t *p, size_t size, size_t from, struct follow *f)
{
	memset(f, 0, sizeof *f);
	size_t y = from;
	while (y + REC_OVERHEAD + TXN_HEADER_SIZE <= size) {
		/* a record's length field (bytes 8..11) is non-zero */
		size_t nz = first_nonzero(p, y + 8, size);
		if (nz >= size)
			break;
		if (nz > y + 11)
			y = nz - 11;
		size_t rec_len;
		int64_t zxid;
		if (record_at(p, size, y, &rec_len, &zxid)) {
			if (f->count == 0) {
				f->first_off = y;
				f->zmin = f->zmax = zxid;
			}
			f->zmin = zxid < f->zmin ? zxid : f->zmin;
			f->zmax = zxid > f->zmax ? zxid : f->zmax;
			f->count++;
			y += rec_len;
		} else {
			y++;
		}
	}
}

struct replay {
	const char *vdir;
	txnlog_replay_fn fn;
	void *arg;
	char *err;
	size_t errlen;
	int64_t after;
	int64_t prev;           /* highest zxid seen: after_zxid, then what was read */
	long delivered;
};

/* Truncates the last file at off (or removes it when even its header is
 * torn) and makes that durable. */
static int cut_file(struct replay *rp, const char *name, size_t off)
{
	char *path = datadir_path(rp->vdir, name);
	int rc = -1;
	if (off < TXNLOG_HEADER_SIZE) {
		if (fio_unlink(path) == 0 && fio_fsync_dir(rp->vdir) == 0)
			rc = 0;
		else
			snprintf(rp->err, rp->errlen, "%s/%s: cannot remove the torn file: %s", rp->vdir, name,
				 strerror(errno));
		free(path);
		return rc;
	}
	int fd = fio_open(path, O_RDWR | O_CLOEXEC, 0);
	if (fd >= 0 && fio_ftruncate(fd, (off_t)off) == 0 && fio_fsync(fd) == 0)
		rc = 0;
	if (rc != 0)
		snprintf(rp->err, rp->errlen, "%s/%s: cannot truncate the torn tail at offset %zu: %s", rp->vdir,
			 name, off, strerror(errno));
	if (fd >= 0 && fio_close(fd) != 0 && rc == 0) {
		snprintf(rp->err, rp->errlen, "%s/%s: close after truncating failed: %s", rp->vdir, name,
			 strerror(errno));
		rc = -1;
	}
	free(path);
	return rc;
}

/* A bad record at off: torn tail (cut or skip) or refusal. */
static int bad_record(struct replay *rp, const uint8_t *p, size_t size, const struct dd_file *f,
		      bool is_last, const struct dd_file *next, size_t off, size_t extent_end,
		      const char *why)
{
	struct follow fl;
	find_following(p, size, off + 1, &fl);
	bool torn = has_zero_sector(p, off, extent_end);
	char dropped[160] = "nothing";
	if (fl.count)
		snprintf(dropped, sizeof dropped, "%ld intact record(s) after it (zxid 0x%" PRIx64 "..0x%" PRIx64 ")",
			 fl.count, (uint64_t)fl.zmin, (uint64_t)fl.zmax);

	if (fl.count && !torn) {
		snprintf(rp->err, rp->errlen,
			 "%s/%s: corrupt record at offset %zu (%s), and intact records follow it (first at offset %zu, "
			 "zxid 0x%" PRIx64 "): refusing to start; the log must be repaired by hand",
			 rp->vdir, f->name, off, why, fl.first_off, (uint64_t)fl.zmin);
		return -1;
	}
	if (is_last) {
		log_warn("%s/%s: torn write at offset %zu (%s); truncating the file there. Dropped: %s. "
			 "The last good zxid is 0x%" PRIx64 "; nothing after it was acknowledged.",
			 rp->vdir, f->name, off, why, dropped, (uint64_t)rp->prev);
		return cut_file(rp, f->name, off);
	}
	if (next->zxid <= rp->prev + 1 || epoch_of(next->zxid) > epoch_of(rp->prev)) {
		log_warn("%s/%s: torn record at offset %zu (%s) ends this file (dropped: %s); %s continues after "
			 "zxid 0x%" PRIx64, rp->vdir, f->name, off, why, dropped, next->name, (uint64_t)rp->prev);
		return 0;
	}
	snprintf(rp->err, rp->errlen,
		 "%s/%s: corrupt record at offset %zu (%s) after zxid 0x%" PRIx64 ", and the next file %s starts at "
		 "0x%" PRIx64 ": the txns in between are lost; refusing to start",
		 rp->vdir, f->name, off, why, (uint64_t)rp->prev, next->name, (uint64_t)next->zxid);
	return -1;
}

/* Decodes and delivers the record at off, whose framing is known good. */
static int deliver(struct replay *rp, const struct dd_file *f, size_t off, const uint8_t *entry, size_t len)
{
	struct ztxn t;
	char why[200];
	if (txn_decode(entry, len, &t, why, sizeof why) != 0) {
		snprintf(rp->err, rp->errlen, "%s/%s: record at offset %zu has a valid checksum but is not a txn "
			 "zkd can read: %s", rp->vdir, f->name, off, why);
		return -1;
	}
	int rc = 0;
	int64_t z = t.zxid;
	if (z > rp->after) {
		if (z <= rp->prev) {
			log_warn("%s/%s offset %zu: zxid 0x%" PRIx64 " is not above 0x%" PRIx64 " (replayed anyway, as "
				 "ZooKeeper does)", rp->vdir, f->name, off, (uint64_t)z, (uint64_t)rp->prev);
		} else if (z > rp->prev + 1 && epoch_of(z) == epoch_of(rp->prev)) {
			snprintf(rp->err, rp->errlen, "%s/%s offset %zu: zxid 0x%" PRIx64 " follows 0x%" PRIx64
				 ": txns 0x%" PRIx64 "..0x%" PRIx64 " are missing (a log file lost?); refusing to start",
				 rp->vdir, f->name, off, (uint64_t)z, (uint64_t)rp->prev, (uint64_t)(rp->prev + 1),
				 (uint64_t)(z - 1));
			ztxn_clear(&t);
			return -1;
		}
		char ferr[240] = "";
		if (rp->fn(rp->arg, &t, ferr, sizeof ferr) != 0) {
			snprintf(rp->err, rp->errlen, "%s/%s offset %zu, zxid 0x%" PRIx64 ": %s", rp->vdir, f->name, off,
				 (uint64_t)z, ferr[0] ? ferr : "replay stopped");
			rc = -1;
		}
		rp->delivered++;
		if (z > rp->prev)
			rp->prev = z;
	}
	ztxn_clear(&t);
	return rc;
}

/* Walks one mapped file. */
static int replay_map(struct replay *rp, const uint8_t *p, size_t size, const struct dd_file *f, bool is_last,
		      const struct dd_file *next)
{
	if (size < TXNLOG_HEADER_SIZE)
		return bad_record(rp, p, size, f, is_last, next, 0, size, size ? "file shorter than its header" : "empty file");
	if (jute_get_u32(p) != TXNLOG_MAGIC) {
		if (all_zero(p, 0, TXNLOG_HEADER_SIZE))
			return bad_record(rp, p, size, f, is_last, next, 0, TXNLOG_HEADER_SIZE, "header never written");
		snprintf(rp->err, rp->errlen, "%s/%s: not a ZooKeeper txn log (magic 0x%08x at offset 0)", rp->vdir,
			 f->name, jute_get_u32(p));
		return -1;
	}
	size_t off = TXNLOG_HEADER_SIZE;
	for (;;) {
		size_t rem = size - off;
		if (rem == 0)
			return 0;
		if (rem < 12) {
			if (all_zero(p, off, size))
				return 0;
			return bad_record(rp, p, size, f, is_last, next, off, size, "record header cut short");
		}
		uint64_t crc = be64(p + off);
		int32_t len = (int32_t)jute_get_u32(p + off + 8);
		char why[96];
		if (len == 0) {
			/* ZooKeeper's end of file (the preallocated zeros) */
			if (all_zero(p, off, size))
				return 0;
			return bad_record(rp, p, size, f, is_last, next, off, off + 12,
					  "empty record followed by non-zero bytes");
		}
		if (len < 0 || rem < REC_OVERHEAD || (size_t)len > rem - REC_OVERHEAD) {
			snprintf(why, sizeof why, "length %d runs past the end of the file", len);
			size_t ext = len > 0 && (size_t)len <= rem - 12 ? off + 12 + (size_t)len : off + 12;
			return bad_record(rp, p, size, f, is_last, next, off, ext, why);
		}
		const uint8_t *entry = p + off + 12;
		size_t end = off + REC_OVERHEAD + (size_t)len;
		if ((crc >> 32) != 0 || adler32(entry, (size_t)len) != (uint32_t)crc)
			return bad_record(rp, p, size, f, is_last, next, off, end, "checksum mismatch");
		if (entry[len] != REC_EOR) {
			snprintf(why, sizeof why, "end-of-record byte is 0x%02x, not 'B'", entry[len]);
			return bad_record(rp, p, size, f, is_last, next, off, end, why);
		}
		if (deliver(rp, f, off, entry, (size_t)len) != 0)
			return -1;
		off = end;
	}
}

static int replay_file(struct replay *rp, const struct dd_file *f, bool is_last, const struct dd_file *next)
{
	char *path = datadir_path(rp->vdir, f->name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(rp->err, rp->errlen, "%s/%s: cannot open: %s", rp->vdir, f->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* read, not mmap: a read fault on a sparse tail (tmpfs near full) or a
	 * disk error would be a SIGBUS, not a message naming the file */
	size_t size = (size_t)st.st_size;
	uint8_t *p = size ? malloc(size) : NULL;
	if (size && !p) {
		snprintf(rp->err, rp->errlen, "%s/%s: cannot allocate %zu bytes to read it", rp->vdir, f->name, size);
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, p + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(rp->err, rp->errlen, "%s/%s: read error at offset %zu: %s", rp->vdir, f->name, got,
				 r < 0 ? strerror(errno) : "unexpected end of file");
			free(p);
			close(fd);
			return -1;
		}
		got += (size_t)r;
	}
	close(fd);
	static const uint8_t nothing[1];
	int rc = replay_map(rp, p ? p : nothing, size, f, is_last, next);
	free(p);
	return rc;
}

int txnlog_replay(const char *dir, int64_t after_zxid, txnlog_replay_fn fn, void *arg,
		  int64_t *last_zxid, char *err, size_t errlen)
{
	*last_zxid = after_zxid;
	char *vdir = datadir_version_dir(dir, false, err, errlen);
	struct dd_file *files = NULL;
	int n = datadir_list(vdir, "log", true, &files, err, errlen);
	if (n < 0) {
		free(vdir);
		return -1;
	}
	/* ZooKeeper's getLogFiles: the newest file starting at or before the
	 * first zxid wanted holds it; every later file follows. */
	int start = 0;
	for (int i = 0; i < n; i++)
		if (files[i].zxid <= after_zxid + 1)
			start = i;
	struct replay rp = { vdir, fn, arg, err, errlen, after_zxid, after_zxid, 0 };
	int rc = 0;
	for (int i = start; i < n && rc == 0; i++)
		rc = replay_file(&rp, &files[i], i == n - 1, i + 1 < n ? &files[i + 1] : NULL);
	if (rc == 0) {
		*last_zxid = rp.prev;
		log_info("txn log %s: replayed %ld txn(s) after 0x%" PRIx64 " from %d file(s); last zxid 0x%" PRIx64,
			 vdir, rp.delivered, (uint64_t)after_zxid, n - start, (uint64_t)rp.prev);
	}
	free(files);
	free(vdir);
	return rc;
}

int64_t txnlog_last_fsync_us(const struct txnlog *l)
{
	return l->last_fsync_us;
}

int64_t txnlog_file_size(const struct txnlog *l)
{
	return l->file_off;
}
