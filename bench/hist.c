/*
 * hist.c - the log-linear histogram of hist.h.
 *
 * Design: the bucket index is computed with one count-leading-zeros and two
 * shifts, so recording costs a few nanoseconds and can sit on the client's
 * reply path without disturbing what it measures. The bucket for v >= 256 is
 * found from e = floor(log2 v): the top HIST_SUB_BITS+1 bits of v (always
 * 1xxxxxxx) pick one of 128 sub-buckets of that power of two.
 */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << HIST_LINEAR_BITS))
		return (unsigned)v;
	unsigned lg = 63u - (unsigned)__builtin_clzll(v);       /* >= 8 */
	if (lg >= HIST_MAX_EXP)
		return HIST_NBUCKETS - 1;
	unsigned shift = lg - HIST_SUB_BITS;                     /* >= 1 */
	unsigned sub = (unsigned)(v >> shift) - (1u << HIST_SUB_BITS);   /* 0..127 */
	return (1u << HIST_LINEAR_BITS) + (lg - HIST_LINEAR_BITS) * (1u << HIST_SUB_BITS) + sub;
}

/* The largest value that falls into bucket i. */
static uint64_t bucket_high(unsigned i)
{
	if (i < (1u << HIST_LINEAR_BITS))
		return i;
	unsigned j = i - (1u << HIST_LINEAR_BITS);
	unsigned lg = HIST_LINEAR_BITS + j / (1u << HIST_SUB_BITS);
	unsigned sub = j % (1u << HIST_SUB_BITS) + (1u << HIST_SUB_BITS);
	unsigned shift = lg - HIST_SUB_BITS;
	return (((uint64_t)sub + 1) << shift) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
	h->b[bucket_of(v)]++;
	h->count++;
	h->sum += (long double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_add(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_NBUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p >= 100.0)
		return h->max;
	/* The rank of the value at p: ceil(p% of count), at least 1. */
	double want_d = p / 100.0 * (double)h->count;
	uint64_t want = (uint64_t)want_d;
	if ((double)want < want_d)
		want++;
	if (want == 0)
		want = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_NBUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			/* A bucket's bound can lie above the largest value really
			 * recorded; never report more than max. */
			uint64_t hi = bucket_high(i);
			return hi < h->max ? hi : h->max;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
