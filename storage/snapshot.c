/*
 * snapshot.c - writing and loading ZooKeeper snapshot files (format in
 * snapshot.h).
 *
 * The body - sessions, ACL map, nodes - is snapbody.c's, which the SNAP
 * stream to a learner shares; this file adds what only a file has: the
 * header, the Adler-32 seals, the ZxidDigest, and writing it so a crash
 * leaves either the old set of snapshots or a complete new one.
 *
 * Writing is fuzzy (snapbody.c explains how a walk over a changing tree
 * stays exact once the log after zxid is replayed over it). The output
 * buffer is written out between nodes once it holds a MiB; the checksum
 * follows the bytes as they go.
 *
 * Loading maps the file read-only and parses it from memory, so each length
 * is checked against the bytes left; the checksum is verified at the seal,
 * after which the loaded tree is kept, or thrown away and the next older
 * snapshot tried.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adler32.h"
#include "datadir.h"
#include "fileio.h"
#include "net/jute.h"
#include "net/log.h"
#include "net/metrics.h"
#include "snapbody.h"

#define SNAP_DBID (-1LL)
#define DIGEST_VERSION 2          /* DigestCalculator.DIGEST_VERSION */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- writing ------------------------------------------------------------ */

struct snap_writer {
	int fd;
	struct jute_writer w;
	uint32_t adler;             /* of everything flushed */
	int64_t bytes;
	int err;                    /* errno of the first failure */
	const char *what;           /* the call that failed */
};

static int out_flush(struct snap_writer *s)
{
	if (s->err)
		return -1;
	if (s->w.err != JUTE_OK) {
		s->err = ENOMEM;
		s->what = "encoding";
		return -1;
	}
	if (s->w.len == 0)
		return 0;
	s->adler = adler32_update(s->adler, s->w.buf, s->w.len);
	if (fio_write_all(s->fd, s->w.buf, s->w.len) != 0) {
		s->err = errno;
		s->what = "write";
		return -1;
	}
	s->bytes += (int64_t)s->w.len;
	s->w.len = 0;
	return 0;
}

/* SnapStream.sealStream: the checksum of everything before it, then "/". */
static int out_seal(struct snap_writer *s)
{
	if (out_flush(s) != 0)
		return -1;
	jute_write_long(&s->w, (int64_t)s->adler);
	jute_write_string(&s->w, "/");
	return 0;
}

/* snapbody's flush hook: the body's bytes go to the file as it grows. */
static int body_flush(void *arg, struct jute_writer *w)
{
	(void)w;
	return out_flush(arg);
}

int snapshot_write(const char *dir, struct ztree *t, int64_t zxid, const struct snap_session *sessions,
		   size_t n_sessions, char *err, size_t errlen)
{
	int64_t t0 = now_ms();
	char *vdir = datadir_version_dir(dir, true, err, errlen);
	if (!vdir)
		return -1;
	char name[DATADIR_NAME_MAX], tmpname[DATADIR_NAME_MAX + 8];
	datadir_name(name, sizeof name, "snapshot", zxid);
	snprintf(tmpname, sizeof tmpname, "tmp.%s", name);
	char *final = datadir_path(vdir, name), *tmp = datadir_path(vdir, tmpname);

	struct snap_writer s = { .fd = -1, .adler = ADLER32_INIT };
	jute_writer_init(&s.w, SNAPBODY_FLUSH_BYTES + 64 * 1024);
	struct snapbody_stats st = { 0 };

	s.fd = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s.fd < 0) {
		s.err = errno;
		s.what = "open";
		goto out;
	}
	jute_write_int(&s.w, SNAP_MAGIC);
	jute_write_int(&s.w, SNAP_VERSION);
	jute_write_long(&s.w, SNAP_DBID);
	if (snapbody_write(&s.w, t, zxid, sessions, n_sessions, body_flush, &s, &st) != 0) {
		out_flush(&s);          /* names an encoding failure if the flush did not fail */
		goto out;
	}
	if (out_seal(&s) != 0)
		goto out;
	/* the empty ZxidDigest ZooKeeper writes when it has none */
	jute_write_long(&s.w, 0);
	jute_write_int(&s.w, DIGEST_VERSION);
	jute_write_long(&s.w, 0);
	if (out_seal(&s) != 0 || out_flush(&s) != 0)
		goto out;
	if (fio_fsync(s.fd) != 0) {
		s.err = errno;
		s.what = "fsync";
		goto out;
	}
	int fd = s.fd;
	s.fd = -1;
	if (fio_close(fd) != 0) {
		s.err = errno;
		s.what = "close";
		goto out;
	}
	if (fio_rename(tmp, final) != 0) {
		s.err = errno;
		s.what = "rename";
		goto out;
	}
	if (fio_fsync_dir(vdir) != 0) {
		/* The file is complete, but its name may not survive a crash;
		 * that leaves the older snapshot, which is fine, but say so. */
		s.err = errno;
		s.what = "fsync of the directory";
		goto out;
	}
	/* ZooKeeper's snapshottime (rare: the registry's lookup is fine). Not
	 * its snap_count: that counts snapshots a leader sends learners (SNAP
	 * syncs), not the ones written here. */
	metric_observe(metrics_summary("snapshottime", "Time to write a snapshot (ms)", METRIC_BASIC, METRIC_UNIT),
		       now_ms() - t0);
	log_info("snapshot: wrote %s/%s: %ld nodes, %zu ACLs, %zu sessions, %" PRId64 " bytes in %" PRId64 " ms"
		 "%s", vdir, name, st.nodes, st.acls, n_sessions, s.bytes, now_ms() - t0,
		 st.late_acl || st.skipped ? " (some nodes changed during the walk; the log covers them)" : "");
out:
	if (s.err) {
		snprintf(err, errlen, "snapshot %s/%s: %s failed: %s%s", vdir, name, s.what, strerror(s.err),
			 s.err == ENOSPC ? " (the dataDir disk is full)" : "");
		if (s.fd >= 0)
			fio_close(s.fd);
		if (strcmp(s.what, "fsync of the directory") != 0)
			fio_unlink(tmp);
	}
	jute_writer_free(&s.w);
	free(final);
	free(tmp);
	free(vdir);
	return s.err ? -1 : 0;
}

/* ---- loading ------------------------------------------------------------ */

/* A seal: long Adler-32 of every byte before it, then the string "/". */
static int read_seal(struct snap_in *in, const char *what, char *err, size_t errlen)
{
	size_t at = snap_in_offset(in);
	uint32_t running = in->sum;
	uint64_t sum = (uint64_t)snap_in_long(in);
	struct snap_view mark = snap_in_buffer(in);
	if (!snap_in_ok(in)) {
		snap_in_describe(in, what, err, errlen);
		return -1;
	}
	if (sum != running || mark.len != 1 || snap_in_ptr(in, mark)[0] != '/') {
		snprintf(err, errlen, "%s: checksum mismatch at offset %zu (file says 0x%" PRIx64 ", content gives "
			 "0x%08x)", what, at, sum, running);
		return -1;
	}
	snap_in_next(in);
	return 0;
}

/* Parses a whole snapshot image. 0, or -1 with a reason naming the offset. */
static int parse_image(const uint8_t *p, size_t size, struct snapbody_loaded *out, char *err, size_t errlen)
{
	struct snap_in in;
	snap_in_mem(&in, p, size);
	in.track_sum = true;
	int32_t magic = snap_in_int(&in);
	snap_in_int(&in);            /* version: ZooKeeper does not check it either */
	snap_in_long(&in);           /* dbid */
	if (!snap_in_ok(&in)) {
		snap_in_describe(&in, "file header", err, errlen);
		return -1;
	}
	if ((uint32_t)magic != SNAP_MAGIC) {
		snprintf(err, errlen, "not a snapshot (magic 0x%08x)", (uint32_t)magic);
		return -1;
	}
	snap_in_next(&in);
	if (snapbody_load(&in, out, err, errlen) != 0)
		return -1;
	if (read_seal(&in, "seal after the nodes", err, errlen) != 0)
		goto fail;
	if (snap_in_left(&in) > 0) {
		/* ZxidDigest and its own seal (3.6+); the value itself is not used */
		snap_in_long(&in);
		int32_t dv = snap_in_int(&in);
		if (dv < 2)
			snap_in_buffer(&in);   /* old versions wrote the digest as a hex string */
		else
			snap_in_long(&in);
		if (!snap_in_ok(&in)) {
			snap_in_describe(&in, "ZxidDigest", err, errlen);
			goto fail;
		}
		snap_in_next(&in);
		if (read_seal(&in, "seal after the digest", err, errlen) != 0)
			goto fail;
	}
	return 0;
fail:
	snapbody_loaded_free(out);
	return -1;
}

/* SnapStream.isValidSnapshot: at least 10 bytes, ending with the "/" of a
 * seal (int 1, '/'). */
static bool looks_complete(const uint8_t *p, size_t size)
{
	static const uint8_t tail[5] = { 0, 0, 0, 1, '/' };
	return size >= 10 && memcmp(p + size - 5, tail, 5) == 0;
}

bool snapshot_file_sealed(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	uint8_t tail[10];
	bool ok = fstat(fd, &st) == 0 && st.st_size >= 10 &&
		  pread(fd, tail, sizeof tail, st.st_size - 10) == (ssize_t)sizeof tail &&
		  looks_complete(tail, sizeof tail);
	close(fd);
	return ok;
}

/* 0 loaded, 1 skipped (reason in err), -1 I/O error. */
static int load_one(const char *path, struct snapbody_loaded *out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	if (size < 10) {
		close(fd);
		snprintf(err, errlen, "only %zu bytes: incomplete", size);
		return 1;
	}
	void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "cannot map %zu bytes: %s", size, strerror(errno));
		return -1;
	}
	madvise(m, size, MADV_SEQUENTIAL);
	int rc;
	if (!looks_complete(m, size)) {
		snprintf(err, errlen, "incomplete: does not end with a seal (%zu bytes)", size);
		rc = 1;
	} else {
		rc = parse_image(m, size, out, err, errlen) == 0 ? 0 : 1;
	}
	munmap(m, size);
	return rc;
}

static void deliver_sessions(struct snapbody_loaded *l, snap_session_fn fn, void *arg)
{
	for (size_t i = 0; fn && i < l->n_sessions; i++)
		fn(arg, l->sessions[i].id, l->sessions[i].timeout);
	free(l->sessions);
}

int snapshot_load_file(const char *path, struct ztree **tree_out, snap_session_fn on_session, void *arg,
		       char *err, size_t errlen)
{
	struct snapbody_loaded l = { 0 };
	char why[400];
	int rc = load_one(path, &l, why, sizeof why);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	deliver_sessions(&l, on_session, arg);
	*tree_out = l.tree;
	return 0;
}

int snapshot_load(const char *dir, struct ztree **tree_out, int64_t *zxid_out, snap_session_fn on_session,
		  void *arg, char *err, size_t errlen)
{
	*tree_out = NULL;
	char *vdir = datadir_version_dir(dir, false, err, errlen);
	struct dd_file *files = NULL;
	int n = datadir_list(vdir, "snapshot", false, &files, err, errlen);
	int rc = n < 0 ? -1 : 1;
	char first_why[512] = "";
	for (int i = 0; i < n && i < SNAP_MAX_TRIES; i++) {
		const struct dd_file *f = &files[i];
		if (f->suffix[0]) {
			snprintf(err, errlen, "%s/%s is compressed: zkd reads only uncompressed snapshots "
				 "(zookeeper.snapshot.compression.method=none); refusing to start from an older one",
				 vdir, f->name);
			rc = -1;
			break;
		}
		char *path = datadir_path(vdir, f->name);
		int64_t t0 = now_ms();
		struct snapbody_loaded l = { 0 };
		char why[400];
		log_info("snapshot: reading %s", path);
		int r = load_one(path, &l, why, sizeof why);
		free(path);
		if (r < 0) {
			snprintf(err, errlen, "%s/%s: %s", vdir, f->name, why);
			rc = -1;
			break;
		}
		if (r == 1) {
			log_warn("snapshot %s/%s: %s; trying an older one", vdir, f->name, why);
			if (!first_why[0])
				snprintf(first_why, sizeof first_why, "%s: %s", f->name, why);
			continue;
		}
		log_info("snapshot: loaded %s/%s: %ld nodes, %zu sessions in %" PRId64 " ms", vdir, f->name,
			 (long)atomic_load(&l.tree->node_count), l.n_sessions, now_ms() - t0);
		deliver_sessions(&l, on_session, arg);
		*tree_out = l.tree;
		*zxid_out = f->zxid;
		rc = 0;
		break;
	}
	if (rc == 1 && n > 0) {
		snprintf(err, errlen, "none of the %d snapshot(s) in %s is valid (newest: %s)", n, vdir, first_why);
		rc = -1;
	}
	free(files);
	free(vdir);
	return rc;
}
