/*
 * hist.h - a log-linear latency histogram (HdrHistogram's layout, our code).
 *
 * Why not a sample or a reservoir: a tail percentile taken from a sample is a
 * guess, and p99.9 over a few thousand samples is one value. Every recorded
 * latency lands in a bucket here, and no value is ever dropped.
 *
 * Layout: values (nanoseconds) below 256 get a bucket each (exact). Above
 * that, each power of two [2^k, 2^(k+1)) is cut into 128 equal buckets, so a
 * bucket is at most 1/128 (0.78%) of the values it holds wide: "two
 * significant digits", enough to tell 41 us from 42 us and 1.00 s from
 * 1.01 s. Values up to 2^41 ns (about 36 minutes) fit; larger ones are
 * clamped into the last bucket (max still records them exactly).
 *
 * A percentile is reported as the highest value its bucket can hold (what
 * HdrHistogram calls the highest equivalent value): the report may be at
 * most 0.78% pessimistic, never optimistic. min, max and the mean are exact.
 *
 * One histogram belongs to one thread (no atomics on the hot path); threads
 * merge theirs at the end with hist_add.
 */
#ifndef ZKBENCH_HIST_H
#define ZKBENCH_HIST_H

#include <stdint.h>

#define HIST_LINEAR_BITS 8                      /* 0..255 exact */
#define HIST_SUB_BITS 7                         /* 128 buckets per power of two */
#define HIST_MAX_EXP 41                         /* values below 2^41 ns */
#define HIST_NBUCKETS ((1u << HIST_LINEAR_BITS) + \
		       (HIST_MAX_EXP - HIST_LINEAR_BITS) * (1u << HIST_SUB_BITS))

struct hist {
	uint64_t count;
	uint64_t min, max;          /* exact; min is UINT64_MAX when empty */
	long double sum;            /* for the mean; long double so a billion
	                             * values of a few ms still add exactly enough */
	uint64_t b[HIST_NBUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v_ns);
/* dst += src */
void hist_add(struct hist *dst, const struct hist *src);
/* The value at percentile p (0..100]: the smallest bucket upper bound with at
 * least ceil(p% of count) values at or below it; max for p >= 100; 0 if empty. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);

#endif
