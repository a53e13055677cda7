/*
 * test_jute.c - the jute primitives: byte order, every length bound, the
 * sticky error, and the writer's growth and failure handling.
 *
 * Inputs that are meant to be cut short are copied into a heap block of
 * exactly their length, so under AddressSanitizer a read past the end is a
 * crash and not a lucky read of the bytes that happen to follow.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "net/jute.h"

/* A heap copy of exactly n bytes (see above). Caller frees. */
static uint8_t *exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	cr_assert_not_null(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

static void be32(uint8_t *p, int32_t v) { jute_put_u32(p, (uint32_t)v); }

/* ---- fixed-size fields ------------------------------------------------- */

Test(jute_read, int_long_bool_are_big_endian)
{
	static const uint8_t in[] = {
		0x12, 0x34, 0x56, 0x78,
		0xff, 0xff, 0xff, 0xfe,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x80, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x01, 0x7f, 0xff,
	};
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_int(&r), 0x12345678);
	cr_assert_eq(jute_read_int(&r), -2);
	cr_assert_eq(jute_read_long(&r), 0x0102030405060708LL);
	cr_assert_eq(jute_read_long(&r), INT64_MIN);
	cr_assert_eq(jute_read_bool(&r), false);
	cr_assert_eq(jute_read_bool(&r), true);
	/* Java's readBoolean: any nonzero byte is true, not just 1. */
	cr_assert_eq(jute_read_bool(&r), true);
	cr_assert_eq(jute_read_bool(&r), true);
	cr_assert(jute_ok(&r));
	cr_assert_eq(jute_remaining(&r), 0);
}

Test(jute_read, short_int_at_every_length)
{
	static const uint8_t full[4] = { 0, 0, 0, 7 };
	for (size_t n = 0; n < sizeof full; n++) {
		uint8_t *in = exact(full, n);
		struct jute_reader r;
		jute_reader_init(&r, in, n, JUTE_DEFAULT_MAXBUFFER);
		cr_assert_eq(jute_read_int(&r), 0, "n=%zu", n);
		cr_assert_eq(r.err, JUTE_SHORT, "n=%zu", n);
		cr_assert_eq(r.off, 0, "a failed read must not move the cursor");
		free(in);
	}
}

Test(jute_read, short_long_at_every_length)
{
	static const uint8_t full[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	for (size_t n = 0; n < sizeof full; n++) {
		uint8_t *in = exact(full, n);
		struct jute_reader r;
		jute_reader_init(&r, in, n, JUTE_DEFAULT_MAXBUFFER);
		cr_assert_eq(jute_read_long(&r), 0, "n=%zu", n);
		cr_assert_eq(r.err, JUTE_SHORT, "n=%zu", n);
		free(in);
	}
}

Test(jute_read, short_bool)
{
	struct jute_reader r;
	jute_reader_init(&r, NULL, 0, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_bool(&r), false);
	cr_assert_eq(r.err, JUTE_SHORT);
}

Test(jute_read, null_input_is_empty)
{
	/* A NULL pointer with a nonzero length must not be dereferenced. */
	struct jute_reader r;
	jute_reader_init(&r, NULL, 100, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_remaining(&r), 0);
	cr_assert_eq(jute_read_int(&r), 0);
	cr_assert_eq(r.err, JUTE_SHORT);
}

Test(jute_read, error_is_sticky_and_keeps_first_cause)
{
	uint8_t in[12];
	be32(in, -5);            /* a bad buffer length */
	be32(in + 4, 42);
	be32(in + 8, 43);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	struct jute_buf b = jute_read_buffer(&r);
	cr_assert_eq(r.err, JUTE_BADLEN);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0, "after an error a view must be {NULL, 0}, not -1");
	size_t off = r.off;
	/* Bytes remain, yet nothing more may be read. */
	cr_assert_eq(jute_read_int(&r), 0);
	cr_assert_eq(jute_read_long(&r), 0);
	cr_assert_eq(jute_read_bool(&r), false);
	cr_assert_eq(jute_read_count(&r, 1), 0);
	cr_assert_eq(r.off, off);
	/* Running off the end later does not overwrite the first cause. */
	jute_read_long(&r);
	jute_read_long(&r);
	cr_assert_eq(r.err, JUTE_BADLEN);
}

/* ---- buffers ----------------------------------------------------------- */

Test(jute_read, buffer_is_a_view)
{
	uint8_t in[4 + 5];
	be32(in, 5);
	memcpy(in + 4, "hello", 5);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	struct jute_buf b = jute_read_buffer(&r);
	cr_assert(jute_ok(&r));
	cr_assert_eq(b.data, in + 4, "buffers are views into the input, not copies");
	cr_assert_eq(b.len, 5);
	cr_assert_eq(jute_remaining(&r), 0);
}

Test(jute_read, buffer_null_and_empty)
{
	uint8_t in[8];
	be32(in, -1);
	be32(in + 4, 0);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	struct jute_buf b = jute_read_buffer(&r);
	cr_assert(jute_ok(&r), "-1 is null, not an error");
	cr_assert_null(b.data);
	cr_assert_eq(b.len, -1);
	b = jute_read_buffer(&r);
	cr_assert(jute_ok(&r));
	cr_assert_not_null(b.data, "empty is distinct from null");
	cr_assert_eq(b.len, 0);
}

Test(jute_read, buffer_negative_lengths)
{
	static const int32_t bad[] = { -2, -3, -100, INT32_MIN };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t in[4];
		be32(in, bad[i]);
		struct jute_reader r;
		jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
		struct jute_buf b = jute_read_buffer(&r);
		cr_assert_eq(r.err, JUTE_BADLEN, "len %d", bad[i]);
		cr_assert_null(b.data);
	}
}

Test(jute_read, buffer_over_max_len_even_when_bytes_are_there)
{
	/* The input really holds the bytes, so only the max_len bound can
	 * refuse it. */
	enum { MAX = 8 };
	uint8_t in[4 + MAX + 1];
	memset(in, 'x', sizeof in);
	be32(in, MAX + 1);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, MAX);
	jute_read_buffer(&r);
	cr_assert_eq(r.err, JUTE_BADLEN);

	be32(in, MAX);
	jute_reader_init(&r, in, sizeof in, MAX);
	struct jute_buf b = jute_read_buffer(&r);
	cr_assert(jute_ok(&r), "exactly max_len is allowed");
	cr_assert_eq(b.len, MAX);
}

Test(jute_read, buffer_huge_length_is_badlen_not_a_read)
{
	uint8_t in[8] = { 0 };
	be32(in, INT32_MAX);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	jute_read_buffer(&r);
	cr_assert_eq(r.err, JUTE_BADLEN);
}

Test(jute_read, buffer_past_end_at_every_cut)
{
	uint8_t full[4 + 6];
	be32(full, 6);
	memcpy(full + 4, "abcdef", 6);
	for (size_t n = 0; n < sizeof full; n++) {
		uint8_t *in = exact(full, n);
		struct jute_reader r;
		jute_reader_init(&r, in, n, JUTE_DEFAULT_MAXBUFFER);
		struct jute_buf b = jute_read_buffer(&r);
		cr_assert_eq(r.err, JUTE_SHORT, "n=%zu", n);
		cr_assert_null(b.data, "n=%zu", n);
		free(in);
	}
}

/* ---- vector counts ----------------------------------------------------- */

Test(jute_read, count_null_and_zero)
{
	uint8_t in[8];
	be32(in, -1);
	be32(in + 4, 0);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_count(&r, 4), -1);
	cr_assert(jute_ok(&r));
	cr_assert_eq(jute_read_count(&r, 4), 0);
	cr_assert(jute_ok(&r));
}

/* Java's BinaryInputArchive reads a count below -1 as an empty vector. */
Test(jute_read, count_negative_is_empty)
{
	uint8_t in[4];
	be32(in, -2);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_count(&r, 4), 0);
	cr_assert(jute_ok(&r));

	be32(in, INT32_MIN);
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_count(&r, 4), 0);
	cr_assert(jute_ok(&r));
}

Test(jute_read, count_huge)
{
	uint8_t in[4 + 16] = { 0 };
	be32(in, INT32_MAX);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, SIZE_MAX);
	cr_assert_eq(jute_read_count(&r, 1), 0, "a bogus count must not be returned");
	cr_assert_eq(r.err, JUTE_BADLEN);
}

Test(jute_read, count_must_fit_remaining_input)
{
	/* 3 elements of at least 4 bytes need 12 bytes; 12 are there. */
	uint8_t in[4 + 12] = { 0 };
	be32(in, 3);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_count(&r, 4), 3);
	cr_assert(jute_ok(&r));

	/* One more element than the input can hold. */
	be32(in, 4);
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_count(&r, 4), 0);
	cr_assert_eq(r.err, JUTE_BADLEN);

	/* The same count is plausible for smaller elements. */
	jute_reader_init(&r, in, sizeof in, JUTE_DEFAULT_MAXBUFFER);
	cr_assert_eq(jute_read_count(&r, 1), 4);
	cr_assert(jute_ok(&r));
}

Test(jute_read, count_over_max_len)
{
	/* Plausible for the input, but over the configured bound. */
	uint8_t in[4 + 64] = { 0 };
	be32(in, 9);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, 8);
	jute_read_count(&r, 1);
	cr_assert_eq(r.err, JUTE_BADLEN);

	be32(in, 8);
	jute_reader_init(&r, in, sizeof in, 8);
	cr_assert_eq(jute_read_count(&r, 1), 8);
	cr_assert(jute_ok(&r));
}

Test(jute_read, count_check_does_not_overflow)
{
	/* count * elem_min_size would wrap around to something small. */
	uint8_t in[4 + 8] = { 0 };
	be32(in, 2);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, SIZE_MAX);
	jute_read_count(&r, SIZE_MAX / 2 + 1);
	cr_assert_eq(r.err, JUTE_BADLEN);
}

Test(jute_read, count_zero_elem_size_still_bounded)
{
	uint8_t in[4 + 2] = { 0 };
	be32(in, 3);
	struct jute_reader r;
	jute_reader_init(&r, in, sizeof in, SIZE_MAX);
	jute_read_count(&r, 0);
	cr_assert_eq(r.err, JUTE_BADLEN, "every element takes at least a byte");
}

Test(jute_read, short_count)
{
	static const uint8_t full[4] = { 0, 0, 0, 0 };
	for (size_t n = 0; n < sizeof full; n++) {
		uint8_t *in = exact(full, n);
		struct jute_reader r;
		jute_reader_init(&r, in, n, JUTE_DEFAULT_MAXBUFFER);
		cr_assert_eq(jute_read_count(&r, 4), 0);
		cr_assert_eq(r.err, JUTE_SHORT);
		free(in);
	}
}

/* ---- writer ------------------------------------------------------------ */

Test(jute_write, encodes_big_endian)
{
	struct jute_writer w;
	jute_writer_init(&w, 0);
	jute_write_int(&w, 0x01020304);
	jute_write_int(&w, -1);
	jute_write_long(&w, 0x1122334455667788LL);
	jute_write_bool(&w, true);
	jute_write_bool(&w, false);
	static const uint8_t want[] = {
		1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff,
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 1, 0,
	};
	cr_assert_eq(w.err, JUTE_OK);
	cr_assert_eq(w.len, sizeof want);
	cr_assert_arr_eq(w.buf, want, sizeof want);
	jute_writer_free(&w);
}

Test(jute_write, buffers_and_strings)
{
	struct jute_writer w;
	jute_writer_init(&w, 4);
	jute_write_string(&w, "ab");
	jute_write_string(&w, NULL);
	jute_write_string(&w, "");
	jute_write_buffer(&w, "xyz", 3);
	jute_write_buffer(&w, NULL, -1);
	jute_write_buffer(&w, NULL, 0);
	jute_write_buffer(&w, NULL, 5);     /* no data: null, never a read of NULL */
	static const uint8_t want[] = {
		0, 0, 0, 2, 'a', 'b',
		0xff, 0xff, 0xff, 0xff,
		0, 0, 0, 0,
		0, 0, 0, 3, 'x', 'y', 'z',
		0xff, 0xff, 0xff, 0xff,
		0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff,
	};
	cr_assert_eq(w.err, JUTE_OK);
	cr_assert_eq(w.len, sizeof want);
	cr_assert_arr_eq(w.buf, want, sizeof want);
	jute_writer_free(&w);
}

Test(jute_write, primitives_round_trip)
{
	static const int32_t ints[] = { 0, 1, -1, INT32_MIN, INT32_MAX, 0x7f008001 };
	static const int64_t longs[] = { 0, -1, INT64_MIN, INT64_MAX, 0x0100000000000001LL };
	struct jute_writer w;
	jute_writer_init(&w, 0);
	for (size_t i = 0; i < 6; i++)
		jute_write_int(&w, ints[i]);
	for (size_t i = 0; i < 5; i++)
		jute_write_long(&w, longs[i]);
	jute_write_buffer(&w, "\0\1\2", 3);
	size_t len;
	uint8_t *buf = jute_writer_take(&w, &len);
	cr_assert_not_null(buf);

	struct jute_reader r;
	jute_reader_init(&r, buf, len, JUTE_DEFAULT_MAXBUFFER);
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(jute_read_int(&r), ints[i]);
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(jute_read_long(&r), longs[i]);
	struct jute_buf b = jute_read_buffer(&r);
	cr_assert_eq(b.len, 3);
	cr_assert_arr_eq(b.data, "\0\1\2", 3);
	cr_assert(jute_ok(&r));
	cr_assert_eq(jute_remaining(&r), 0);
	free(buf);
}

Test(jute_write, grows_by_doubling_and_keeps_contents)
{
	struct jute_writer w;
	jute_writer_init(&w, 1);
	size_t regrowths = 0, cap = w.cap;
	for (int32_t i = 0; i < 100000; i++) {
		jute_write_int(&w, i);
		if (w.cap != cap) {
			cr_assert_geq(w.cap, 2 * cap, "growth must at least double");
			cap = w.cap;
			regrowths++;
		}
	}
	cr_assert_eq(w.err, JUTE_OK);
	cr_assert_eq(w.len, 400000);
	cr_assert_leq(regrowths, 20, "doubling: log2(400000) regrowths, not one per write");
	for (int32_t i = 0; i < 100000; i++)
		cr_assert_eq((int32_t)jute_get_u32(w.buf + 4 * (size_t)i), i);
	jute_writer_free(&w);
	cr_assert_null(w.buf);
	cr_assert_eq(w.len, 0);
}

Test(jute_write, big_raw_write)
{
	size_t n = 3 * 1024 * 1024 + 7;
	uint8_t *src = malloc(n);
	cr_assert_not_null(src);
	for (size_t i = 0; i < n; i++)
		src[i] = (uint8_t)(i * 31);
	struct jute_writer w;
	jute_writer_init(&w, 16);
	jute_write_int(&w, 9);
	jute_write_raw(&w, src, n);
	cr_assert_eq(w.err, JUTE_OK);
	cr_assert_eq(w.len, n + 4);
	cr_assert_arr_eq(w.buf + 4, src, n);
	jute_writer_free(&w);
	free(src);
}

Test(jute_write, take_hands_over_and_resets)
{
	struct jute_writer w;
	jute_writer_init(&w, 0);
	jute_write_int(&w, 5);
	size_t len = 99;
	uint8_t *buf = jute_writer_take(&w, &len);
	cr_assert_not_null(buf);
	cr_assert_eq(len, 4);
	cr_assert_eq(jute_get_u32(buf), 5);
	cr_assert_null(w.buf);
	cr_assert_eq(w.len, 0);
	cr_assert_eq(w.cap, 0);
	/* The writer is usable again. */
	jute_write_int(&w, 6);
	cr_assert_eq(w.len, 4);
	jute_writer_free(&w);
	free(buf);
}

Test(jute_write, take_of_empty_writer_is_not_null)
{
	/* NULL from take means failure, so a healthy empty writer must not
	 * return it. */
	struct jute_writer w;
	jute_writer_init(&w, 0);
	size_t len = 99;
	uint8_t *buf = jute_writer_take(&w, &len);
	cr_assert_not_null(buf);
	cr_assert_eq(len, 0);
	free(buf);
}

Test(jute_write, nomem_is_sticky_and_take_refuses)
{
	struct jute_writer w;
	jute_writer_init(&w, 0);
	jute_write_int(&w, 1);
	/* A size that cannot be added to the current length: the writer must
	 * fail cleanly, without wrapping and without touching the source. */
	jute_write_raw(&w, "", SIZE_MAX - 1);
	cr_assert_eq(w.err, JUTE_NOMEM);
	size_t len = w.len;
	jute_write_int(&w, 2);
	jute_write_long(&w, 3);
	jute_write_string(&w, "abc");
	jute_write_bool(&w, true);
	cr_assert_eq(w.len, len, "writes after a failure are dropped");
	cr_assert_eq(w.err, JUTE_NOMEM);
	size_t out_len = 99;
	cr_assert_null(jute_writer_take(&w, &out_len), "a partial encoding is never handed out");
	cr_assert_eq(out_len, 0);
	cr_assert_null(w.buf);
	jute_writer_free(&w);
}

Test(jute_write, patch_int)
{
	struct jute_writer w;
	jute_writer_init(&w, 0);
	jute_write_int(&w, 0);          /* reserved frame length */
	jute_write_long(&w, 7);
	jute_patch_int(&w, 0, (int32_t)(w.len - 4));
	cr_assert_eq(w.err, JUTE_OK);
	cr_assert_eq(jute_get_u32(w.buf), 8);
	jute_patch_int(&w, 8, -1);      /* the last four bytes */
	cr_assert_eq(w.err, JUTE_OK);
	cr_assert_eq(jute_get_u32(w.buf + 8), 0xffffffffu);
	jute_writer_free(&w);
}

Test(jute_write, patch_outside_written_bytes_is_an_error)
{
	struct jute_writer w;
	jute_writer_init(&w, 64);       /* capacity is there, but not written */
	jute_write_int(&w, 1);
	jute_write_int(&w, 2);
	jute_patch_int(&w, 5, 9);
	cr_assert_eq(w.err, JUTE_BADLEN);
	cr_assert_eq(jute_get_u32(w.buf + 4), 2, "nothing was scribbled");
	jute_writer_free(&w);

	jute_writer_init(&w, 0);
	jute_write_int(&w, 1);
	jute_patch_int(&w, SIZE_MAX - 1, 9);
	cr_assert_eq(w.err, JUTE_BADLEN, "no wrap-around in the bound");
	jute_writer_free(&w);
}
