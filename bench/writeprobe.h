/*
 * writeprobe.h - zkbench --write-probe: retry a write against a set of
 * servers until one succeeds; the measuring half of bench/failover.
 */
#ifndef ZKBENCH_WRITEPROBE_H
#define ZKBENCH_WRITEPROBE_H

#include <stdbool.h>
#include <stdint.h>

struct bench_cfg;

struct probe_opts {
	double timeout_s;           /* give up after this long */
	int attempt_ms;             /* one attempt's limit */
	uint64_t since_ns;          /* CLOCK_MONOTONIC mark to measure from (0: start) */
	bool wait_stdin;            /* read the mark from stdin before starting */
	bool json;
	const char *path;           /* ephemeral-sequential node to create */
};

/* 0 when a write succeeded, 1 when none did in time, 2 on bad input. */
int write_probe(const struct bench_cfg *c, const struct probe_opts *o);

#endif
