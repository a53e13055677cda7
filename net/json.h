/*
 * json.h - a streaming JSON writer on top of outbuf, for the AdminServer's
 * answers (server/admin.c).
 *
 * Streaming, not a tree: a `dump` or `connections` of many thousand
 * sessions is written straight out, one value at a time, without building
 * and freeing a document first. The writer keeps the nesting (a small fixed
 * stack) so it places commas itself and the caller cannot produce invalid
 * JSON by forgetting one.
 *
 * `pretty` lays the text out as ZooKeeper's JsonOutputter does (Jackson's
 * default pretty printer: objects one member a line, indented by two,
 * `"key" : value`; arrays on one line, `[ 1, 2 ]`; empty ones `{ }`, `[ ]`),
 * so that an operator diffing zkd against ZooKeeper sees only the values
 * differ. Without it the text is compact.
 *
 * Strings are taken as UTF-8; bytes that are not valid UTF-8 (a znode path
 * is whatever a client sent) become U+FFFD, so the answer is always valid
 * JSON. Doubles are written in the shortest form that reads back the same,
 * with ".0" when integral, as Java's Double.toString; NaN and infinities,
 * which JSON cannot express, as null.
 */
#ifndef ZKD_NET_JSON_H
#define ZKD_NET_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "outbuf.h"

#define JSON_MAX_DEPTH 32

struct json {
	struct outbuf *o;
	bool pretty;
	bool after_key;             /* a key was written; its value comes next */
	bool failed;                /* nested too deep or closed too often: the
	                               text is not valid JSON (a caller's bug) */
	int depth;
	struct {
		bool array;
		long count;         /* members or items written so far */
	} stack[JSON_MAX_DEPTH];
};

void json_init(struct json *j, struct outbuf *o, bool pretty);

void json_obj_begin(struct json *j);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j);
void json_arr_end(struct json *j);

/* Inside an object: the member's name; then exactly one value. */
void json_key(struct json *j, const char *key);

void json_str(struct json *j, const char *s);     /* NULL writes null */
void json_strn(struct json *j, const char *s, size_t n);
void json_int(struct json *j, long long v);
void json_double(struct json *j, double v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/* key + value in one call, the common case in an object */
void json_kv_str(struct json *j, const char *key, const char *s);
void json_kv_int(struct json *j, const char *key, long long v);
void json_kv_double(struct json *j, const char *key, double v);
void json_kv_bool(struct json *j, const char *key, bool v);
void json_kv_null(struct json *j, const char *key);

#endif
