/*
 * probes.c - the machine's physical limits, so every bench figure can be
 * read as a ratio to what the hardware allows.
 *
 *   probes rtt   [--duration S] [--size B] [--json]
 *       loopback TCP round trip: a child process echoes small messages over
 *       127.0.0.1 with TCP_NODELAY; we time each write-then-read. Measured
 *       three ways, because on a VM the answer depends mostly on where the
 *       two processes run: both pinned to one CPU (the floor: no cross-core
 *       wake-up), pinned to two different CPUs (every message wakes the other
 *       core, as between a busy client and a busy server), and unpinned (as
 *       the scheduler places them; often bimodal, so it varies run to run).
 *   probes fsync [--dir D] [--duration S] [--json]
 *       write 4 KiB + fdatasync, in a loop, in a file in D (put D on the
 *       data disk). Measured twice: appending to a growing file (each sync
 *       also commits the new size and blocks, like a txn log that grows) and
 *       overwriting a file written beforehand (data only: the floor).
 *   probes all   [--dir D] ...   both, one JSON object with --json.
 *
 * Design: the same log-linear histogram as zkbench (hist.c), so the
 * percentiles are comparable bucket for bucket. Each probe runs for a fixed
 * time (bounded) after a short unmeasured warm-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hist.h"

struct popts {
	double duration_s;
	int size;
	const char *dir;
	bool json;
};

static const double pcts[] = { 50, 90, 99, 99.9 };

static void print_hist(const char *name, const struct hist *h, bool json, bool *first)
{
	if (json) {
		printf("%s\"%s\": {\"count\": %llu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
		       "\"p99_9\": %.3f, \"max\": %.3f, \"min\": %.3f, \"mean\": %.3f}",
		       *first ? "" : ", ", name, (unsigned long long)h->count,
		       hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
		       hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3,
		       (double)h->max / 1e3, h->count ? (double)h->min / 1e3 : 0.0, hist_mean(h) / 1e3);
	} else {
		printf("%-22s %9llu samples  ", name, (unsigned long long)h->count);
		for (int i = 0; i < 4; i++)
			printf(" p%g %7.1fus", pcts[i], hist_percentile(h, pcts[i]) / 1e3);
		printf("  max %.1fus\n", (double)h->max / 1e3);
	}
	*first = false;
}

static int read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, (char *)p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	size_t put = 0;
	while (put < n) {
		ssize_t k = write(fd, (const char *)p + put, n - put);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		put += (size_t)k;
	}
	return 0;
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

/* One ping-pong run; -1 when the socket set-up fails. A cpu < 0: no pin. */
static int rtt_run(const struct popts *o, int pin_cpu, int echo_cpu, struct hist *h)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
		perror("probes: rtt: listen");
		return -1;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("probes: fork");
		return -1;
	}
	if (child == 0) {
		/* The echo side: a separate process, as a server would be. */
		if (echo_cpu >= 0)
			pin(echo_cpu);
		alarm((unsigned)o->duration_s + 30);    /* never outlive a dead parent */
		int c = accept(ls, NULL, NULL);
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		char buf[65536];
		for (;;) {
			if (read_full(c, buf, (size_t)o->size) != 0 || write_full(c, buf, (size_t)o->size) != 0)
				_exit(0);
		}
	}
	close(ls);
	if (pin_cpu >= 0)
		pin(pin_cpu);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int rc = -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		perror("probes: rtt: connect");
		goto out;
	}
	char buf[65536];
	memset(buf, 'p', sizeof buf);
	uint64_t start = mono_ns();
	uint64_t measure = start + 200000000u;      /* 0.2 s warm-up */
	uint64_t end = measure + (uint64_t)(o->duration_s * 1e9);
	for (;;) {
		uint64_t t = mono_ns();
		if (t >= end)
			break;
		if (write_full(fd, buf, (size_t)o->size) != 0 || read_full(fd, buf, (size_t)o->size) != 0) {
			fprintf(stderr, "probes: rtt: echo failed\n");
			goto out;
		}
		uint64_t t2 = mono_ns();
		if (t >= measure)
			hist_record(h, t2 - t);
	}
	rc = 0;
out:
	close(fd);
	kill(child, SIGTERM);
	waitpid(child, NULL, 0);
	if (pin_cpu >= 0) {
		/* undo the pin for whatever runs next in this process */
		cpu_set_t set;
		CPU_ZERO(&set);
		for (int i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
		sched_setaffinity(0, sizeof set, &set);
	}
	return rc;
}

/* The first two CPUs this process may run on (-1 if there is only one). */
static void two_cpus(int *a, int *b)
{
	cpu_set_t set;
	*a = 0;
	*b = -1;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return;
	int found = 0;
	for (int i = 0; i < CPU_SETSIZE && found < 2; i++)
		if (CPU_ISSET(i, &set))
			*(found++ ? b : a) = i;
}

static int probe_rtt(const struct popts *o, bool *first)
{
	struct hist hs, hx, hf;
	int c0, c1;
	two_cpus(&c0, &c1);
	hist_init(&hs);
	hist_init(&hx);
	hist_init(&hf);
	if (rtt_run(o, c0, c0, &hs) != 0 || (c1 >= 0 && rtt_run(o, c0, c1, &hx) != 0) ||
	    rtt_run(o, -1, -1, &hf) != 0)
		return -1;
	if (!o->json)
		printf("loopback TCP round trip, %d-byte messages:\n", o->size);
	print_hist("rtt_same_core_us", &hs, o->json, first);
	if (c1 >= 0)
		print_hist("rtt_cross_core_us", &hx, o->json, first);
	print_hist("rtt_us", &hf, o->json, first);
	return 0;
}

/* One fsync run: append (grow the file) or overwrite (a file written and
 * synced beforehand). */
static int fsync_run(const struct popts *o, bool append, struct hist *h)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/zkbench-fsync-probe.%d", o->dir, (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "probes: fsync: %s: %s\n", path, strerror(errno));
		return -1;
	}
	static char block[4096];
	memset(block, 'f', sizeof block);
	/* A bound on the file, so an absurdly fast device cannot fill the disk:
	 * 64 MiB (wrapping for overwrite; for append, the run stops there). */
	const off_t cap = 64 << 20;
	if (!append) {
		for (off_t off = 0; off < cap; off += (off_t)sizeof block)
			if (pwrite(fd, block, sizeof block, off) != (ssize_t)sizeof block) {
				fprintf(stderr, "probes: fsync: prewrite: %s\n", strerror(errno));
				goto fail;
			}
		fsync(fd);
	}
	uint64_t start = mono_ns();
	uint64_t measure = start + 200000000u;
	uint64_t end = measure + (uint64_t)(o->duration_s * 1e9);
	off_t off = 0;
	while (mono_ns() < end) {
		if (off >= cap) {
			if (append)
				break;
			off = 0;
		}
		uint64_t t = mono_ns();
		if (pwrite(fd, block, sizeof block, off) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
			fprintf(stderr, "probes: fsync: %s\n", strerror(errno));
			goto fail;
		}
		uint64_t t2 = mono_ns();
		if (t >= measure)
			hist_record(h, t2 - t);
		off += (off_t)sizeof block;
	}
	close(fd);
	unlink(path);
	return 0;
fail:
	close(fd);
	unlink(path);
	return -1;
}

static int probe_fsync(const struct popts *o, bool *first)
{
	struct hist ha, hw;
	hist_init(&ha);
	hist_init(&hw);
	if (fsync_run(o, true, &ha) != 0 || fsync_run(o, false, &hw) != 0)
		return -1;
	if (o->json) {
		printf("%s\"fsync_dir\": \"", *first ? "" : ", ");
		for (const char *p = o->dir; *p; p++)
			printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
		printf("\"");
		*first = false;
	} else {
		printf("write 4 KiB + fdatasync in %s:\n", o->dir);
	}
	print_hist("fsync_append_us", &ha, o->json, first);
	print_hist("fsync_overwrite_us", &hw, o->json, first);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: probes rtt|fsync|all [--duration S] [--size B] [--dir D] [--json]\n"
		   "  rtt    loopback TCP round trip (p50/p99), free and pinned to one CPU\n"
		   "  fsync  write 4 KiB + fdatasync latency of a file in D (default .)\n"
		   "  all    both\n");
}

int main(int argc, char **argv)
{
	struct popts o = { .duration_s = 2, .size = 64, .dir = "." };
	static const struct option lo[] = {
		{ "duration", 1, 0, 'D' }, { "size", 1, 0, 's' }, { "dir", 1, 0, 'd' },
		{ "json", 0, 0, 'j' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	if (argc < 2 || argv[1][0] == '-') {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *what = argv[1];
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "D:s:d:jh", lo, NULL)) != -1) {
		switch (ch) {
		case 'D':
			o.duration_s = atof(optarg);
			if (o.duration_s <= 0 || o.duration_s > 600) {
				fprintf(stderr, "probes: --duration: 0 < S <= 600\n");
				return 2;
			}
			break;
		case 's':
			o.size = atoi(optarg);
			if (o.size < 1 || o.size > 65536) {
				fprintf(stderr, "probes: --size: 1..65536\n");
				return 2;
			}
			break;
		case 'd': o.dir = optarg; break;
		case 'j': o.json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	bool rtt = !strcmp(what, "rtt") || !strcmp(what, "all");
	bool fs = !strcmp(what, "fsync") || !strcmp(what, "all");
	if (!rtt && !fs) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	bool first = true;
	if (o.json)
		printf("{");
	int rc = 0;
	if (rtt && probe_rtt(&o, &first) != 0)
		rc = 1;
	if (fs && probe_fsync(&o, &first) != 0)
		rc = 1;
	if (o.json)
		printf("}\n");
	return rc;
}
