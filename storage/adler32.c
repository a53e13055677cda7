/*
 * adler32.c - Adler-32 (RFC 1950): two running sums modulo 65521.
 *
 * The sums are reduced once every 5552 bytes instead of once per byte: 5552
 * is the largest run after which b cannot have overflowed 32 bits (the same
 * bound zlib uses), so the result is identical to the per-byte definition.
 */
#include "adler32.h"

#define ADLER_MOD 65521u
#define ADLER_NMAX 5552u

uint32_t adler32_update(uint32_t adler, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s1 = adler & 0xffff, s2 = adler >> 16;

	while (n > 0) {
		size_t k = n < ADLER_NMAX ? n : ADLER_NMAX;
		n -= k;
		while (k--) {
			s1 += *b++;
			s2 += s1;
		}
		s1 %= ADLER_MOD;
		s2 %= ADLER_MOD;
	}
	return (s2 << 16) | s1;
}
