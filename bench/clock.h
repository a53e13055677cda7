/*
 * clock.h - the one clock every bench figure is taken with.
 *
 * CLOCK_MONOTONIC: never steps with NTP, read through the vDSO (tens of
 * nanoseconds, no syscall), and the same clock as Python's
 * time.monotonic_ns(), so bench/failover and zkbench --write-probe can
 * subtract each other's timestamps.
 */
#ifndef ZKBENCH_CLOCK_H
#define ZKBENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
