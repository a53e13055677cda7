/*
 * procstat.c - reads /proc/<pid>/stat, status and task/<tid>/stat.
 *
 * Design: /proc/<pid>/stat's comm field is in parentheses and may itself
 * contain spaces or ')', so the numeric fields are parsed from after the
 * LAST ')'. Times come in clock ticks (usually 10 ms), which is why the
 * bench samples over windows of seconds and reports per-op figures only
 * over many thousands of ops.
 */
#include "procstat.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* utime+stime in seconds from a stat line; -1 on a parse failure. */
static double stat_cpu(const char *path)
{
	char buf[1024];
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime(14) stime(15) */
	unsigned long long ut = 0, st = 0;
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void read_status(int pid, struct proc_sample *s)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "VmRSS:", 6))
			s->rss_kb = strtol(line + 6, NULL, 10);
		else if (!strncmp(line, "VmHWM:", 6))
			s->hwm_kb = strtol(line + 6, NULL, 10);
		else if (!strncmp(line, "Threads:", 8))
			s->threads = (int)strtol(line + 8, NULL, 10);
	}
	fclose(f);
}

static void add_group(struct proc_sample *s, const char *comm, double cpu)
{
	char name[24];
	snprintf(name, sizeof name, "%.*s", (int)sizeof name - 1, comm);   /* comm is at most 15 chars anyway */
	size_t len = strlen(name);
	while (len > 0 && (name[len - 1] == '\n' || isdigit((unsigned char)name[len - 1])))
		name[--len] = '\0';
	if (!len)
		snprintf(name, sizeof name, "?");
	for (int i = 0; i < s->ngroups; i++) {
		if (!strcmp(s->g[i].name, name)) {
			s->g[i].cpu_s += cpu;
			return;
		}
	}
	int i;
	if (s->ngroups < PROC_MAX_GROUPS - 1) {
		i = s->ngroups++;
		snprintf(s->g[i].name, sizeof s->g[i].name, "%s", name);
		s->g[i].cpu_s = 0;
	} else {
		/* Too many distinct names: the rest share the last slot. */
		i = PROC_MAX_GROUPS - 1;
		if (s->ngroups == PROC_MAX_GROUPS - 1) {
			s->ngroups++;
			snprintf(s->g[i].name, sizeof s->g[i].name, "(other)");
			s->g[i].cpu_s = 0;
		}
	}
	s->g[i].cpu_s += cpu;
}

void proc_sample(int pid, struct proc_sample *s)
{
	memset(s, 0, sizeof *s);
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	s->cpu_s = stat_cpu(path);
	if (s->cpu_s < 0)
		return;
	s->ok = true;
	read_status(pid, s);
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[128], comm[64] = "";
		snprintf(p, sizeof p, "/proc/%d/task/%.20s/comm", pid, e->d_name);
		FILE *f = fopen(p, "r");
		if (f) {
			if (!fgets(comm, sizeof comm, f))
				comm[0] = '\0';
			fclose(f);
		}
		snprintf(p, sizeof p, "/proc/%d/task/%.20s/stat", pid, e->d_name);
		double cpu = stat_cpu(p);
		if (cpu >= 0)
			add_group(s, comm, cpu);
	}
	closedir(d);
}

double proc_group_cpu(const struct proc_sample *s, const char *name)
{
	for (int i = 0; i < s->ngroups; i++)
		if (!strcmp(s->g[i].name, name))
			return s->g[i].cpu_s;
	return 0;
}
