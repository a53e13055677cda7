/*
 * jute.c - the bounded jute reader and the growable jute writer.
 *
 * Design: every byte from the wire is hostile. The reader is a cursor
 * (p, len, off) that only ever moves forward after checking that the bytes it
 * is about to consume exist, and every length it reads is compared, in this
 * order, against the encoding's rules (-1 is null, other negatives are
 * invalid), against max_len (jute.maxbuffer), and against what is left of the
 * input. Only then is a view handed out. No length from the wire ever reaches
 * malloc or memcpy.
 *
 * The first failure is sticky. A decoder therefore reads a whole record
 * straight through and checks once at the end; after a failure each read
 * returns zeros, a {NULL, 0} view and a 0 count, which are harmless even to a
 * caller that forgot to check (a 0 count runs no loop, a 0 length copies
 * nothing), unlike -1, which would turn into SIZE_MAX in a size_t.
 *
 * The writer grows by doubling so that encoding a record costs amortised
 * O(bytes). A failed allocation is sticky just like a reader error: the
 * caller encodes a whole reply and looks at w->err (or the NULL from
 * jute_writer_take) once.
 */
#include "jute.h"

#include <stdlib.h>
#include <string.h>

/* ---- reader ------------------------------------------------------------ */

void jute_reader_init(struct jute_reader *r, const void *p, size_t len, size_t max_len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->off = 0;
	r->max_len = max_len;
	r->err = JUTE_OK;
}

static void reader_fail(struct jute_reader *r, int err)
{
	/* Keep the first cause: it is the one worth reporting. */
	if (r->err == JUTE_OK)
		r->err = err;
}

/* Consumes n bytes and returns where they start, or NULL (with the sticky
 * error set) when they are not all there. */
static const uint8_t *reader_take(struct jute_reader *r, size_t n)
{
	if (r->err != JUTE_OK)
		return NULL;
	if (n > jute_remaining(r)) {
		reader_fail(r, JUTE_SHORT);
		return NULL;
	}
	const uint8_t *at = r->p + r->off;
	r->off += n;
	return at;
}

int32_t jute_read_int(struct jute_reader *r)
{
	const uint8_t *b = reader_take(r, 4);
	return b ? (int32_t)jute_get_u32(b) : 0;
}

int64_t jute_read_long(struct jute_reader *r)
{
	const uint8_t *b = reader_take(r, 8);
	if (!b)
		return 0;
	uint64_t v = ((uint64_t)jute_get_u32(b) << 32) | jute_get_u32(b + 4);
	return (int64_t)v;
}

bool jute_read_bool(struct jute_reader *r)
{
	/* Java's DataInput.readBoolean: any nonzero byte is true. */
	const uint8_t *b = reader_take(r, 1);
	return b ? *b != 0 : false;
}

struct jute_buf jute_read_buffer(struct jute_reader *r)
{
	struct jute_buf none = { NULL, 0 };
	int32_t n = jute_read_int(r);

	if (r->err != JUTE_OK)
		return none;
	if (n == -1)
		return (struct jute_buf){ NULL, -1 };
	if ((size_t)n > r->max_len) {
		reader_fail(r, JUTE_BADLEN);
		return none;
	}
	const uint8_t *data = reader_take(r, (size_t)n);
	if (!data)
		return none;
	return (struct jute_buf){ data, n };
}

int32_t jute_read_count(struct jute_reader *r, size_t elem_min_size)
{
	int32_t n = jute_read_int(r);

	if (r->err != JUTE_OK)
		return 0;
	if (n == -1)
		return -1;
	/* Java's reader treats any other negative count as an empty vector
	 * (BinaryIndex.done() is nelems <= 0), and clients see the difference:
	 * ZooKeeper answers a create whose ACL count is -2 as for an empty
	 * ACL, not as a marshalling error. */
	if (n < -1)
		return 0;
	/* Every jute element takes at least one byte; treating 0 as 1 keeps the
	 * plausibility check meaningful whatever the caller passes. */
	if (elem_min_size == 0)
		elem_min_size = 1;
	/* Divide rather than multiply so that the check cannot overflow. A count
	 * the remaining input cannot hold is a lie, and reporting it now keeps a
	 * caller that sizes an array by the count from allocating for it. */
	if ((size_t)n > r->max_len || (size_t)n > jute_remaining(r) / elem_min_size) {
		reader_fail(r, JUTE_BADLEN);
		return 0;
	}
	return n;
}

/* ---- writer ------------------------------------------------------------ */

void jute_writer_init(struct jute_writer *w, size_t initial_cap)
{
	w->buf = NULL;
	w->len = 0;
	w->cap = 0;
	w->err = JUTE_OK;
	if (initial_cap == 0)
		return;
	w->buf = malloc(initial_cap);
	if (!w->buf)
		w->err = JUTE_NOMEM;
	else
		w->cap = initial_cap;
}

void jute_writer_free(struct jute_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = 0;
	w->cap = 0;
	w->err = JUTE_OK;
}

/* Makes room for n more bytes; false (and sticky JUTE_NOMEM) if it cannot. */
static bool writer_reserve(struct jute_writer *w, size_t n)
{
	if (w->err != JUTE_OK)
		return false;
	if (n <= w->cap - w->len)
		return true;
	if (n > SIZE_MAX - w->len) {
		w->err = JUTE_NOMEM;
		return false;
	}
	size_t need = w->len + n;
	size_t cap = w->cap ? w->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	uint8_t *grown = realloc(w->buf, cap);
	if (!grown) {
		/* The old buffer stays valid and owned; jute_writer_free frees it. */
		w->err = JUTE_NOMEM;
		return false;
	}
	w->buf = grown;
	w->cap = cap;
	return true;
}

uint8_t *jute_writer_take(struct jute_writer *w, size_t *len)
{
	/* A writer that failed holds a truncated encoding; handing it out would
	 * put a malformed frame on the wire, so the caller gets NULL instead. An
	 * empty but healthy writer still returns a real allocation so that NULL
	 * means only "failed". */
	if (w->err == JUTE_OK && !w->buf)
		writer_reserve(w, 1);
	uint8_t *out = w->err == JUTE_OK ? w->buf : NULL;
	size_t out_len = out ? w->len : 0;

	if (!out)
		free(w->buf);
	w->buf = NULL;
	w->len = 0;
	w->cap = 0;
	w->err = JUTE_OK;
	if (len)
		*len = out_len;
	return out;
}

void jute_write_raw(struct jute_writer *w, const void *p, size_t len)
{
	/* memcpy with a NULL source is undefined even for 0 bytes. */
	if (len == 0 || !writer_reserve(w, len))
		return;
	memcpy(w->buf + w->len, p, len);
	w->len += len;
}

void jute_write_int(struct jute_writer *w, int32_t v)
{
	uint8_t b[4];
	jute_put_u32(b, (uint32_t)v);
	jute_write_raw(w, b, sizeof b);
}

void jute_write_long(struct jute_writer *w, int64_t v)
{
	uint8_t b[8];
	jute_put_u32(b, (uint32_t)((uint64_t)v >> 32));
	jute_put_u32(b + 4, (uint32_t)v);
	jute_write_raw(w, b, sizeof b);
}

void jute_write_bool(struct jute_writer *w, bool v)
{
	uint8_t b = v ? 1 : 0;
	jute_write_raw(w, &b, 1);
}

void jute_write_buffer(struct jute_writer *w, const void *p, int32_t len)
{
	/* Any negative length, or a missing pointer, can only mean "no value";
	 * jute has one spelling for that. */
	if (len < 0 || (!p && len > 0)) {
		jute_write_int(w, -1);
		return;
	}
	jute_write_int(w, len);
	jute_write_raw(w, p, (size_t)len);
}

void jute_write_string(struct jute_writer *w, const char *s)
{
	if (!s) {
		jute_write_int(w, -1);
		return;
	}
	size_t n = strlen(s);
	if (n > INT32_MAX) {
		/* Not representable in jute; refuse rather than truncate. */
		if (w->err == JUTE_OK)
			w->err = JUTE_BADLEN;
		return;
	}
	jute_write_buffer(w, s, (int32_t)n);
}

void jute_patch_int(struct jute_writer *w, size_t at, int32_t v)
{
	if (w->err != JUTE_OK)
		return;
	if (at > w->len || w->len - at < 4) {
		/* A patch outside what was written is a caller bug; make it visible
		 * through the same sticky check instead of scribbling on the heap. */
		w->err = JUTE_BADLEN;
		return;
	}
	jute_put_u32(w->buf + at, (uint32_t)v);
}
