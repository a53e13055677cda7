/*
 * fuzz_log.c - net/log.c for the fuzz targets: every line is formatted (so
 * ASan sees a format that reads past a buffer, e.g. "%.*s" with a bad
 * length) but nothing is written unless FUZZ_LOG is set in the
 * environment. Replaces net/log.o when a target is linked.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "net/log.h"

static int enabled = -1;

void log_set_level(enum log_level lvl)
{
	(void)lvl;
}

void log_thread_name(const char *name)
{
	(void)name;
}

void zlog(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (enabled < 0)
		enabled = getenv("FUZZ_LOG") != NULL;
	if (enabled && n >= 0)
		fprintf(stderr, "[%d] %s\n", (int)lvl, line);
}
