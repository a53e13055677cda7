/*
 * jute.h - ZooKeeper's "jute" binary encoding, bounded.
 *
 * Jute is big-endian: int = 4 bytes, long = 8, bool = 1 byte, buffer and
 * ustring = int32 length + bytes (length -1 means null), vector = int32
 * count + elements (-1 means null).
 *
 * Readers never trust a length from the wire. A jute_reader carries a sticky
 * error: the first short read or out-of-bound length sets `err` and every
 * later call returns zeros/NULLs, so a decoder can read a whole record and
 * check once at the end. Buffers and strings are returned as views into the
 * input (no copies); they live as long as the input frame.
 *
 * Writers grow a heap buffer. Allocation failure is sticky in the same way.
 * This file knows nothing of ZooKeeper records; records.h builds on it.
 */
#ifndef ZKD_NET_JUTE_H
#define ZKD_NET_JUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default jute.maxbuffer (ZooKeeper's 0xfffff): the largest frame payload and
 * so the largest buffer a record may carry. */
#define JUTE_DEFAULT_MAXBUFFER 0xfffff

/* Sticky error kinds of a reader (0 = fine). */
enum jute_err {
	JUTE_OK = 0,
	JUTE_SHORT = 1,     /* input ended inside a field */
	JUTE_BADLEN = 2,    /* a length is negative (where null is not allowed) or too big */
	JUTE_NOMEM = 3,     /* writer could not grow */
};

struct jute_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	size_t max_len;     /* bound for any single buffer/string/vector length */
	int err;            /* enum jute_err, sticky */
};

/* A view into the reader's input; data == NULL and len == -1 for a null. */
struct jute_buf {
	const uint8_t *data;
	int32_t len;
};

void jute_reader_init(struct jute_reader *r, const void *p, size_t len, size_t max_len);
int32_t jute_read_int(struct jute_reader *r);
int64_t jute_read_long(struct jute_reader *r);
bool jute_read_bool(struct jute_reader *r);
/* Buffer or string: length-prefixed bytes. A null (-1) is allowed and gives
 * {NULL, -1}; any other negative length or one over max_len sets JUTE_BADLEN. */
struct jute_buf jute_read_buffer(struct jute_reader *r);
/* Vector count: -1 (null) is returned as -1; any other negative count is an
 * empty vector (0), as Java's jute reads it; a count that cannot fit in the
 * remaining input (elem_min_size bytes each) sets JUTE_BADLEN. */
int32_t jute_read_count(struct jute_reader *r, size_t elem_min_size);
static inline size_t jute_remaining(const struct jute_reader *r) { return r->len - r->off; }
static inline bool jute_ok(const struct jute_reader *r) { return r->err == JUTE_OK; }

struct jute_writer {
	uint8_t *buf;       /* heap, owned by the writer until jute_writer_take */
	size_t len;
	size_t cap;
	int err;            /* JUTE_NOMEM, sticky (JUTE_BADLEN for a string too long
	                     * for jute or a patch outside what was written) */
};

void jute_writer_init(struct jute_writer *w, size_t initial_cap);
void jute_writer_free(struct jute_writer *w);
/* Hands the buffer to the caller (who frees it) and resets the writer.
 * Returns NULL (and frees what was written) iff the writer had failed: a
 * partial encoding is never handed out. */
uint8_t *jute_writer_take(struct jute_writer *w, size_t *len);
void jute_write_int(struct jute_writer *w, int32_t v);
void jute_write_long(struct jute_writer *w, int64_t v);
void jute_write_bool(struct jute_writer *w, bool v);
/* len -1 (any negative, or p == NULL with len > 0) writes a null buffer. */
void jute_write_buffer(struct jute_writer *w, const void *p, int32_t len);
void jute_write_string(struct jute_writer *w, const char *s);   /* NULL = null */
void jute_write_raw(struct jute_writer *w, const void *p, size_t len);
/* Overwrites 4 bytes at `at` (e.g. a frame length reserved earlier). */
void jute_patch_int(struct jute_writer *w, size_t at, int32_t v);

/* Big-endian helpers for code that frames by hand. */
static inline uint32_t jute_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void jute_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

#endif
