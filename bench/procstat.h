/*
 * procstat.h - what /proc says about the server under test.
 *
 * The bench reads the server's CPU time and memory itself, at the exact
 * edges of the measured window, so "server CPU per op" covers exactly the
 * ops that were counted (not the setup, warm-up or teardown around them).
 * Per-thread CPU is grouped by thread name with trailing digits removed
 * ("zkd-io-0" and "zkd-io-1" -> "zkd-io-", "NIOWorkerThread-7" ->
 * "NIOWorkerThread-"), which shows where a server spends its time per op.
 */
#ifndef ZKBENCH_PROCSTAT_H
#define ZKBENCH_PROCSTAT_H

#include <stdbool.h>

#define PROC_MAX_GROUPS 48

struct proc_sample {
	bool ok;
	double cpu_s;               /* utime + stime of the whole process */
	long rss_kb, hwm_kb;        /* VmRSS, VmHWM */
	int threads;
	int ngroups;
	struct { char name[24]; double cpu_s; } g[PROC_MAX_GROUPS];
};

/* Fills s from /proc/<pid>; s->ok false if the process is gone. */
void proc_sample(int pid, struct proc_sample *s);
/* CPU seconds of group `name` in s, 0 if absent. */
double proc_group_cpu(const struct proc_sample *s, const char *name);

#endif
