/*
 * snapreader.c - walks one snapshot file in file order (see snapreader.h;
 * the format is in snapshot.h).
 *
 * The file is mapped read-only and read with the bounded jute reader, so a
 * damaged file ends the walk with an offset, never with a read past the
 * mapping. The checksum is the one SnapStream keeps: Adler-32 of every byte
 * before the seal.
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

#include "adler32.h"
#include "net/jute.h"
#include "snapshot.h"

#define SESSION_SIZE 12             /* long id + int timeout */
#define ACL_ENTRY_MIN 12            /* long id + vector count */

struct walk {
	const uint8_t *p;
	size_t size;
	const struct snapreader_cb *cb;
	void *arg;
	char *err;
	size_t errlen;
};

static int short_read(struct walk *w, const struct jute_reader *r, size_t at, const char *what)
{
	snprintf(w->err, w->errlen, "%s at offset %zu: %s", what, at,
		 r->err == JUTE_SHORT ? "the file ends inside it" : "a length is negative or runs past the end of the file");
	return -1;
}

/* A seal: long checksum of p[0, at), then the string "/". */
static int read_seal(struct walk *w, struct jute_reader *r, uint32_t running, const char *what)
{
	size_t at = r->off;
	uint64_t sum = (uint64_t)jute_read_long(r);
	struct jute_buf mark = jute_read_buffer(r);
	if (!jute_ok(r))
		return short_read(w, r, at, what);
	if (sum != running) {
		snprintf(w->err, w->errlen, "%s at offset %zu: checksum mismatch (the file says 0x%" PRIx64
			 ", the %zu bytes before it give 0x%08x)", what, at, sum, at, running);
		return -1;
	}
	if (mark.len != 1 || mark.data[0] != '/') {
		snprintf(w->err, w->errlen, "%s at offset %zu: the checksum is not followed by \"/\"", what, at);
		return -1;
	}
	return 0;
}

static int walk_image(struct walk *w)
{
	struct jute_reader r;
	jute_reader_init(&r, w->p, w->size, w->size);
	const struct snapreader_cb *cb = w->cb;

	int32_t magic = jute_read_int(&r);
	int32_t version = jute_read_int(&r);
	int64_t dbid = jute_read_long(&r);
	if (!jute_ok(&r))
		return short_read(w, &r, 0, "file header");
	if ((uint32_t)magic != SNAP_MAGIC) {
		snprintf(w->err, w->errlen, "not a snapshot: magic 0x%08x at offset 0 (want 0x%08x \"ZKSN\")",
			 (uint32_t)magic, SNAP_MAGIC);
		return -1;
	}
	if (cb->header)
		cb->header(w->arg, magic, version, dbid, w->size);

	size_t at = r.off;
	int32_t ns = jute_read_count(&r, SESSION_SIZE);
	if (!jute_ok(&r))
		return short_read(w, &r, at, "session count");
	for (int32_t i = 0; i < ns; i++) {
		at = r.off;
		int64_t id = jute_read_long(&r);
		int32_t to = jute_read_int(&r);
		if (!jute_ok(&r))
			return short_read(w, &r, at, "session");
		if (cb->session)
			cb->session(w->arg, id, to);
	}

	at = r.off;
	int32_t na = jute_read_count(&r, ACL_ENTRY_MIN);
	if (!jute_ok(&r))
		return short_read(w, &r, at, "ACL map count");
	for (int32_t i = 0; i < na; i++) {
		at = r.off;
		int64_t id = jute_read_long(&r);
		size_t start = r.off;
		struct rec_acl_vec v;
		if (rec_read_acl_vector(&r, &v) != 0)
			return short_read(w, &r, at, "ACL map entry");
		if (v.count < 0) {
			snprintf(w->err, w->errlen, "ACL map entry %" PRId64 " at offset %zu is a null list", id, at);
			return -1;
		}
		if (cb->acl)
			cb->acl(w->arg, id, w->p + start, r.off - start);
	}

	for (;;) {
		at = r.off;
		struct jute_buf path = jute_read_buffer(&r);
		if (!jute_ok(&r))
			return short_read(w, &r, at, "node path");
		if (path.len == 1 && path.data[0] == '/')
			break;                  /* end of the nodes */
		if (path.len < 0) {
			snprintf(w->err, w->errlen, "node at offset %zu has a null path", at);
			return -1;
		}
		struct snapreader_node n = { .offset = at };
		n.path = path.len == 0 ? "/" : (const char *)path.data;
		n.path_len = path.len == 0 ? 1 : (size_t)path.len;
		struct jute_buf data = jute_read_buffer(&r);
		n.data = data.data;
		n.data_len = data.len;
		n.acl_id = jute_read_long(&r);
		struct zk_stat *st = &n.stat;
		st->czxid = jute_read_long(&r);
		st->mzxid = jute_read_long(&r);
		st->ctime = jute_read_long(&r);
		st->mtime = jute_read_long(&r);
		st->version = jute_read_int(&r);
		st->cversion = jute_read_int(&r);
		st->aversion = jute_read_int(&r);
		st->ephemeral_owner = jute_read_long(&r);
		st->pzxid = jute_read_long(&r);
		st->data_length = data.len > 0 ? data.len : 0;
		if (!jute_ok(&r))
			return short_read(w, &r, at, "node");
		if (n.path[0] != '/') {
			snprintf(w->err, w->errlen, "node at offset %zu: path \"%.*s\" does not start with '/'", at,
				 (int)(n.path_len > 100 ? 100 : n.path_len), n.path);
			return -1;
		}
		if (cb->node)
			cb->node(w->arg, &n);
	}

	size_t seal = r.off;
	uint32_t running = adler32(w->p, seal);
	if (read_seal(w, &r, running, "seal after the nodes") != 0)
		return -1;
	if (cb->sealed)
		cb->sealed(w->arg, seal, running);
	if (jute_remaining(&r) == 0)
		return 0;               /* a snapshot from before 3.6: no digest */

	at = r.off;
	int64_t dz = jute_read_long(&r);
	int32_t dv = jute_read_int(&r);
	int64_t digest = 0;
	if (dv < 2)
		jute_read_buffer(&r);   /* old versions wrote the digest as a string */
	else
		digest = jute_read_long(&r);
	if (!jute_ok(&r))
		return short_read(w, &r, at, "ZxidDigest");
	size_t seal2 = r.off;
	running = adler32_update(running, w->p + seal, seal2 - seal);
	if (read_seal(w, &r, running, "seal after the digest") != 0)
		return -1;
	if (cb->digest)
		cb->digest(w->arg, dz, dv, digest);
	if (jute_remaining(&r) != 0) {
		snprintf(w->err, w->errlen, "%zu unexpected byte(s) after the last seal, at offset %zu",
			 jute_remaining(&r), r.off);
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
	struct walk w = { p, size, cb, arg, why, sizeof why };
	int rc = walk_image(&w);
	if (rc != 0)
		snprintf(err, errlen, "%s: %s", path, why);
	if (size > 0)
		munmap((void *)p, size);
	return rc;
}
