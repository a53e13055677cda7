/*
 * json.c - the streaming JSON writer (json.h says why it streams and why
 * its layout copies Jackson's).
 *
 * Single-threaded by construction: a struct json belongs to the one handler
 * call that writes an answer.
 */
#include <math.h>   /* isfinite, a macro: no -lm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void json_init(struct json *j, struct outbuf *o, bool pretty)
{
	memset(j, 0, sizeof *j);
	j->o = o;
	j->pretty = pretty;
}

static void indent(struct json *j, int level)
{
	static const char spaces[] = "                                ";
	ob_write(j->o, "\n", 1);
	for (int i = 0; i < level; i++)
		ob_write(j->o, spaces, 2);
}

/* What goes before a value: in an array the separator from the previous
 * item; in an object nothing, the key placed it. A value without a key in
 * an object is a caller's bug: written anyway, marked failed. */
static void before_value(struct json *j)
{
	if (j->depth == 0)
		return;
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (!j->stack[j->depth - 1].array) {
		j->failed = true;
		return;
	}
	long n = j->stack[j->depth - 1].count++;
	if (n > 0)
		ob_write(j->o, j->pretty ? ", " : ",", j->pretty ? 2 : 1);
	else if (j->pretty)
		ob_write(j->o, " ", 1);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp, min;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void write_string(struct json *j, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	ob_write(j->o, "\"", 1);
	size_t run = 0;   /* bytes at p[i - run] .. p[i - 1] that need no escape */
	for (size_t i = 0; i < n;) {
		unsigned c = p[i];
		const char *esc = NULL;
		char ubuf[8];
		size_t step = 1;
		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c == '\b')
			esc = "\\b";
		else if (c == '\f')
			esc = "\\f";
		else if (c < 0x20) {
			snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
			esc = ubuf;
		} else if (c >= 0x80) {
			step = utf8_len(p + i, n - i);
			if (step == 0) {
				esc = "\\ufffd";
				step = 1;
			}
		}
		if (esc) {
			if (run)
				ob_write(j->o, p + i - run, run);
			run = 0;
			ob_write(j->o, esc, strlen(esc));
		} else {
			run += step;
		}
		i += step;
	}
	if (run)
		ob_write(j->o, p + n - run, run);
	ob_write(j->o, "\"", 1);
}

/* Jackson indents by objects only: arrays stay on their line. */
static int object_level(const struct json *j)
{
	int n = 0;
	for (int i = 0; i < j->depth; i++)
		n += !j->stack[i].array;
	return n;
}

static void begin(struct json *j, bool array)
{
	before_value(j);
	ob_write(j->o, array ? "[" : "{", 1);
	if (j->depth == JSON_MAX_DEPTH) {
		j->failed = true;
		return;
	}
	j->stack[j->depth].array = array;
	j->stack[j->depth].count = 0;
	j->depth++;
}

static void end(struct json *j, bool array)
{
	if (j->depth == 0 || j->stack[j->depth - 1].array != array || j->after_key) {
		j->failed = true;
		return;
	}
	long n = j->stack[--j->depth].count;
	if (j->pretty) {
		if (n == 0 || array)
			ob_write(j->o, " ", 1);
		else
			indent(j, object_level(j));
	}
	ob_write(j->o, array ? "]" : "}", 1);
}

void json_obj_begin(struct json *j) { begin(j, false); }
void json_obj_end(struct json *j) { end(j, false); }
void json_arr_begin(struct json *j) { begin(j, true); }
void json_arr_end(struct json *j) { end(j, true); }

void json_key(struct json *j, const char *key)
{
	if (j->depth == 0 || j->stack[j->depth - 1].array || j->after_key) {
		j->failed = true;
		return;
	}
	if (j->stack[j->depth - 1].count++ > 0)
		ob_write(j->o, ",", 1);
	if (j->pretty)
		indent(j, object_level(j));
	write_string(j, key, strlen(key));
	if (j->pretty)
		ob_write(j->o, " : ", 3);
	else
		ob_write(j->o, ":", 1);
	j->after_key = true;
}

void json_strn(struct json *j, const char *s, size_t n)
{
	before_value(j);
	write_string(j, s, n);
}

void json_str(struct json *j, const char *s)
{
	if (!s) {
		json_null(j);
		return;
	}
	json_strn(j, s, strlen(s));
}

void json_int(struct json *j, long long v)
{
	before_value(j);
	ob_printf(j->o, "%lld", v);
}

/* The shortest %g precision that reads back as the same double, as Java's
 * Double.toString picks its digits; ".0" keeps an integral value a double
 * to a reader that types by the text. Java switches to E notation outside
 * [1e-3, 1e7); so does this. */
void json_double(struct json *j, double v)
{
	before_value(j);
	if (!isfinite(v)) {
		ob_write(j->o, "null", 4);
		return;
	}
	char buf[40];
	double a = v < 0 ? -v : v;
	bool sci = a != 0.0 && (a < 1e-3 || a >= 1e7);
	for (int prec = 1; prec <= (sci ? 17 : 24); prec++) {
		snprintf(buf, sizeof buf, sci ? "%.*e" : "%.*f", sci ? prec - 1 : prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	if (!sci) {
		/* %.Nf keeps trailing zeros of a shorter form: trim to one */
		size_t len = strlen(buf);
		while (len > 2 && buf[len - 1] == '0' && buf[len - 2] != '.')
			buf[--len] = '\0';
	}
	ob_write(j->o, buf, strlen(buf));
}

void json_bool(struct json *j, bool v)
{
	before_value(j);
	ob_write(j->o, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json *j)
{
	before_value(j);
	ob_write(j->o, "null", 4);
}

void json_kv_str(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_str(j, s);
}

void json_kv_int(struct json *j, const char *key, long long v)
{
	json_key(j, key);
	json_int(j, v);
}

void json_kv_double(struct json *j, const char *key, double v)
{
	json_key(j, key);
	json_double(j, v);
}

void json_kv_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_bool(j, v);
}

void json_kv_null(struct json *j, const char *key)
{
	json_key(j, key);
	json_null(j);
}
