/*
 * outbuf.c - the growing text buffer behind every operator-facing answer.
 * Doubling keeps appends amortised O(1); a mntr is a few KB, a dump or cons
 * of many thousand sessions a few MB.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbuf.h"

char *ob_reserve(struct outbuf *o, size_t n)
{
	if (o->failed)
		return NULL;
	if (o->cap - o->len > n)   /* > : room for the NUL too */
		return o->buf + o->len;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap - o->len <= n)
		cap *= 2;
	char *b = realloc(o->buf, cap);
	if (!b) {
		o->failed = true;
		return NULL;
	}
	o->buf = b;
	o->cap = cap;
	return o->buf + o->len;
}

void ob_commit(struct outbuf *o, size_t used)
{
	o->len += used;
	o->buf[o->len] = '\0';
}

void ob_write(struct outbuf *o, const void *p, size_t n)
{
	char *dst = ob_reserve(o, n);
	if (!dst)
		return;
	memcpy(dst, p, n);
	ob_commit(o, n);
}

void ob_printf(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	char *dst = ob_reserve(o, (size_t)n);
	if (!dst)
		return;
	va_start(ap, fmt);
	vsnprintf(dst, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ob_commit(o, (size_t)n);
}

void ob_free(struct outbuf *o)
{
	free(o->buf);
	*o = (struct outbuf)OUTBUF_INIT;
}
