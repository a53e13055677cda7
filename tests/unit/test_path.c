/*
 * test_path.c - path validation matches ZooKeeper's PathUtils.validatePath.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "processors/path.h"

static bool ok(const char *p) { return path_valid(p, strlen(p)); }

Test(path, accepts_ordinary_paths)
{
	cr_assert(ok("/"));
	cr_assert(ok("/a"));
	cr_assert(ok("/a/b-c_d.e"));
	cr_assert(ok("/.a"));
	cr_assert(ok("/..."));
	cr_assert(ok("/a..b"));
	cr_assert(ok("/caf\xc3\xa9"), "two-byte UTF-8 is fine");
	cr_assert(ok("/\xe4\xb8\xad"), "a BMP CJK character is fine");
}

Test(path, refuses_shapes)
{
	cr_assert_not(ok(""));
	cr_assert_not(ok("a"));
	cr_assert_not(ok("/a/"));
	cr_assert_not(ok("//a"));
	cr_assert_not(ok("/a//b"));
	cr_assert_not(ok("/."));
	cr_assert_not(ok("/.."));
	cr_assert_not(ok("/a/./b"));
	cr_assert_not(ok("/a/../b"));
}

Test(path, refuses_characters_java_refuses)
{
	cr_assert_not(path_valid("/a\0b", 4), "NUL");
	cr_assert_not(ok("/a\x01"), "control");
	cr_assert_not(ok("/a\x7f"), "DEL");
	cr_assert_not(ok("/a\xc2\x85"), "U+0085");
	cr_assert_not(ok("/\xee\x80\x80"), "U+E000 private use");
	cr_assert_not(ok("/\xef\xbf\xb0"), "U+FFF0");
	cr_assert_not(ok("/\xf0\x9f\x98\x80"), "outside the BMP: a surrogate pair in Java");
	cr_assert_not(ok("/\xff"), "not UTF-8");
	cr_assert_not(ok("/\xc3"), "truncated UTF-8");
}

Test(path, special_paths)
{
	cr_assert(path_special("/", 1));
	cr_assert(path_special("/zookeeper", 10));
	cr_assert(path_special("/zookeeper/quota", 16));
	cr_assert(path_special("/zookeeper/config", 17));
	cr_assert_not(path_special("/zookeeper2", 11));
}
