/*
 * test_json.c - the JSON writer (net/json.c): escaping, numbers, and the
 * Jackson layout the AdminServer copies from ZooKeeper.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "net/json.h"

static struct outbuf o;
static struct json j;

static void setup(void)
{
	o = (struct outbuf)OUTBUF_INIT;
}

static void teardown(void)
{
	ob_free(&o);
}

TestSuite(json, .init = setup, .fini = teardown);

static const char *compact_string(const char *s, size_t n)
{
	json_init(&j, &o, false);
	json_strn(&j, s, n);
	return o.buf;
}

Test(json, escapes_quotes_backslashes_and_controls)
{
	const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f/";
	cr_assert_str_eq(compact_string(in, sizeof in - 1), "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/\"");
}

Test(json, keeps_valid_utf8_and_replaces_invalid_bytes)
{
	const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82";
	cr_assert_str_eq(compact_string(in, sizeof in - 1),
			 "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
			 "\\ufffd\\ufffd\"");
}

Test(json, keeps_nul_bytes_as_escapes)
{
	cr_assert_str_eq(compact_string("a\0b", 3), "\"a\\u0000b\"");
}

static const char *dbl(double v)
{
	ob_free(&o);
	json_init(&j, &o, false);
	json_double(&j, v);
	return o.buf;
}

Test(json, writes_doubles_as_java_does)
{
	cr_assert_str_eq(dbl(0.0), "0.0");
	cr_assert_str_eq(dbl(4.4), "4.4");
	cr_assert_str_eq(dbl(0.3333), "0.3333");
	cr_assert_str_eq(dbl(10), "10.0");
	cr_assert_str_eq(dbl(-2.5), "-2.5");
	cr_assert_str_eq(dbl(0.1 + 0.2), "0.30000000000000004");
	cr_assert_str_eq(dbl(NAN), "null");
	cr_assert_str_eq(dbl(INFINITY), "null");
	cr_assert_eq(strtod(dbl(1e-9), NULL), 1e-9);
	cr_assert_eq(strtod(dbl(1.5e300), NULL), 1.5e300);
}

Test(json, lays_out_like_jackson)
{
	json_init(&j, &o, true);
	json_obj_begin(&j);
	json_kv_str(&j, "command", "stats");
	json_kv_null(&j, "error");
	json_key(&j, "list");
	json_arr_begin(&j);
	json_obj_begin(&j);
	json_kv_int(&j, "a", 1);
	json_kv_bool(&j, "b", true);
	json_obj_end(&j);
	json_obj_begin(&j);
	json_obj_end(&j);
	json_arr_end(&j);
	json_key(&j, "empty");
	json_arr_begin(&j);
	json_arr_end(&j);
	json_key(&j, "ids");
	json_arr_begin(&j);
	json_int(&j, 1);
	json_str(&j, "/a");
	json_arr_end(&j);
	json_key(&j, "o");
	json_obj_begin(&j);
	json_kv_double(&j, "d", 1.5);
	json_obj_end(&j);
	json_obj_end(&j);
	cr_assert_not(j.failed);
	cr_assert_str_eq(o.buf, "{\n"
				"  \"command\" : \"stats\",\n"
				"  \"error\" : null,\n"
				"  \"list\" : [ {\n"
				"    \"a\" : 1,\n"
				"    \"b\" : true\n"
				"  }, { } ],\n"
				"  \"empty\" : [ ],\n"
				"  \"ids\" : [ 1, \"/a\" ],\n"
				"  \"o\" : {\n"
				"    \"d\" : 1.5\n"
				"  }\n"
				"}");
}

Test(json, compact_has_no_spaces)
{
	json_init(&j, &o, false);
	json_obj_begin(&j);
	json_kv_int(&j, "a", -7);
	json_key(&j, "b");
	json_arr_begin(&j);
	json_bool(&j, false);
	json_null(&j);
	json_arr_end(&j);
	json_obj_end(&j);
	cr_assert_str_eq(o.buf, "{\"a\":-7,\"b\":[false,null]}");
}

Test(json, marks_misuse_failed)
{
	json_init(&j, &o, false);
	json_obj_begin(&j);
	json_int(&j, 1);        /* a value without a key */
	cr_assert(j.failed);

	json_init(&j, &o, false);
	json_arr_end(&j);       /* nothing open */
	cr_assert(j.failed);

	json_init(&j, &o, false);
	for (int i = 0; i <= JSON_MAX_DEPTH; i++)
		json_arr_begin(&j);
	cr_assert(j.failed);
}
