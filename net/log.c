/*
 * log.c - the logger behind log.h. Lines are built whole in a stack buffer
 * and written with one write(2) to stderr, so lines of different threads
 * never interleave.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = LOG_INFO;
static _Thread_local char thread_name[16];

void log_set_level(enum log_level lvl) { atomic_store(&min_level, (int)lvl); }

void log_thread_name(const char *name)
{
	snprintf(thread_name, sizeof thread_name, "%s", name);
	pthread_setname_np(pthread_self(), thread_name);
}

static const char *level_name(enum log_level lvl)
{
	switch (lvl) {
	case LOG_DEBUG: return "DEBUG";
	case LOG_INFO: return "INFO ";
	case LOG_WARN: return "WARN ";
	default: return "ERROR";
	}
}

void zlog(enum log_level lvl, const char *fmt, ...)
{
	if ((int)lvl < atomic_load_explicit(&min_level, memory_order_relaxed))
		return;
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, level_name(lvl),
			 thread_name[0] ? thread_name : "main");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	/* one event, one line: fold embedded newlines */
	for (size_t i = (size_t)n; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
