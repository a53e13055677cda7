/*
 * snapreader.c - walks one snapshot file in file order (see snapreader.h;
 * the format is in snapshot.h).
 *
 * The file is mapped read-only. The body (sessions, ACL map, nodes) is read
 * by snapbody.c, the same parser the loader and the SNAP stream use, so the
 * dump shows exactly what a load would see; this file adds the header, the
 * seals (the checksum SnapStream keeps: Adler-32 of every byte before the
 * seal), the digest, and "nothing after the last seal".
 */
#include "snapreader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapbody.h"
#include "snapshot.h"

struct walk {
	const struct snapreader_cb *cb;
	void *arg;
};

/* snapbody's callbacks, passed on to the tool's */
static int on_session(void *arg, int64_t id, int32_t timeout, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct walk *w = arg;
	if (w->cb->session)
		w->cb->session(w->arg, id, timeout);
	return 0;
}

static int on_acl(void *arg, int64_t id, const uint8_t *acl, size_t len, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct walk *w = arg;
	if (w->cb->acl)
		w->cb->acl(w->arg, id, acl, len);
	return 0;
}

static int on_node(void *arg, const struct snapbody_node *n, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	struct walk *w = arg;
	if (w->cb->node) {
		struct snapreader_node rn = { n->offset, n->path, n->path_len, n->data, n->data_len, n->acl_id, n->stat };
		w->cb->node(w->arg, &rn);
	}
	return 0;
}

/* A seal: long checksum of every byte before it, then the string "/". */
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
	if (sum != running) {
		snprintf(err, errlen, "%s at offset %zu: checksum mismatch (the file says 0x%" PRIx64
			 ", the %zu bytes before it give 0x%08x)", what, at, sum, at, running);
		return -1;
	}
	if (mark.len != 1 || snap_in_ptr(in, mark)[0] != '/') {
		snprintf(err, errlen, "%s at offset %zu: the checksum is not followed by \"/\"", what, at);
		return -1;
	}
	snap_in_next(in);
	return 0;
}

static int walk_image(const uint8_t *p, size_t size, const struct snapreader_cb *cb, void *arg, char *err,
		      size_t errlen)
{
	struct snap_in in;
	snap_in_mem(&in, p, size);
	in.track_sum = true;
	int32_t magic = snap_in_int(&in);
	int32_t version = snap_in_int(&in);
	int64_t dbid = snap_in_long(&in);
	if (!snap_in_ok(&in)) {
		snap_in_describe(&in, "file header", err, errlen);
		return -1;
	}
	if ((uint32_t)magic != SNAP_MAGIC) {
		snprintf(err, errlen, "not a snapshot: magic 0x%08x at offset 0 (want 0x%08x \"ZKSN\")",
			 (uint32_t)magic, SNAP_MAGIC);
		return -1;
	}
	if (cb->header)
		cb->header(arg, magic, version, dbid, size);
	snap_in_next(&in);

	struct walk w = { cb, arg };
	static const struct snapbody_cb body_cb = { on_session, on_acl, on_node };
	if (snapbody_read(&in, &body_cb, &w, err, errlen) != 0)
		return -1;

	size_t seal = snap_in_offset(&in);
	uint32_t running = in.sum;
	if (read_seal(&in, "seal after the nodes", err, errlen) != 0)
		return -1;
	if (cb->sealed)
		cb->sealed(arg, seal, running);
	if (snap_in_left(&in) == 0)
		return 0;               /* a snapshot from before 3.6: no digest */

	int64_t dz = snap_in_long(&in);
	int32_t dv = snap_in_int(&in);
	int64_t digest = 0;
	if (dv < 2)
		snap_in_buffer(&in);    /* old versions wrote the digest as a string */
	else
		digest = snap_in_long(&in);
	if (!snap_in_ok(&in)) {
		snap_in_describe(&in, "ZxidDigest", err, errlen);
		return -1;
	}
	snap_in_next(&in);
	if (read_seal(&in, "seal after the digest", err, errlen) != 0)
		return -1;
	if (cb->digest)
		cb->digest(arg, dz, dv, digest);
	if (snap_in_left(&in) != 0) {
		snprintf(err, errlen, "%zu unexpected byte(s) after the last seal, at offset %zu", snap_in_left(&in),
			 snap_in_offset(&in));
		return -1;
	}
	return 0;
}

int snapreader_walk(const char *path, const struct snapreader_cb *cb, void *arg, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	static const uint8_t nothing[1];
	const uint8_t *p = nothing;
	if (size > 0) {
		void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			snprintf(err, errlen, "%s: cannot map %zu bytes: %s", path, size, strerror(errno));
			close(fd);
			return -1;
		}
		madvise(m, size, MADV_SEQUENTIAL);
		p = m;
	}
	close(fd);
	char why[400];
	int rc = walk_image(p, size, cb, arg, why, sizeof why);
	if (rc != 0)
		snprintf(err, errlen, "%s: %s", path, why);
	if (size > 0)
		munmap((void *)p, size);
	return rc;
}
