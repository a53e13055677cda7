/*
 * outbuf.h - a growing text buffer for the operator-facing answers
 * (four-letter words, admin JSON, Prometheus text). It lives in net/ so
 * that every directory may use it.
 *
 * Writers never check for errors: on allocation failure the buffer stops
 * growing, keeps what it has and sets `failed`; the caller decides at the
 * end whether a truncated answer is worth sending.
 */
#ifndef ZKD_NET_OUTBUF_H
#define ZKD_NET_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct outbuf {
	char *buf;      /* always NUL-terminated once anything was written */
	size_t len, cap;
	bool failed;    /* an allocation failed; the text is truncated */
};

#define OUTBUF_INIT { NULL, 0, 0, false }

void ob_printf(struct outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ob_write(struct outbuf *o, const void *p, size_t n);
/* Space for at least n more bytes at o->buf + o->len (NULL if none could be
 * had); the writer then adds what it used with ob_commit. */
char *ob_reserve(struct outbuf *o, size_t n);
void ob_commit(struct outbuf *o, size_t used);
void ob_free(struct outbuf *o);

#endif
