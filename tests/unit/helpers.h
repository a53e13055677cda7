/*
 * helpers.h - what several unit suites need alike: a scratch directory per
 * test, and a canonical dump of a tree to compare two trees by.
 */
#ifndef ZKD_TESTS_UNIT_HELPERS_H
#define ZKD_TESTS_UNIT_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct ztree;

/* Makes /tmp/zkd-<name>-XXXXXX into dir (asserts on failure). */
void test_dir_make(char *dir, size_t cap, const char *name);
/* Removes dir and everything below it. */
void test_dir_remove(const char *dir);

/* The monotonic clock in ms. */
int64_t test_now_ms(void);

/* Polls `cond` every millisecond until it holds or WAIT_MS (the suite's
 * bound) passed; evaluates to whether it held. */
#define WAIT_FOR(cond)                                                          \
	({                                                                      \
		int64_t deadline_ = test_now_ms() + WAIT_MS;                    \
		while (!(cond) && test_now_ms() < deadline_)                    \
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);      \
		(bool)(cond);                                                   \
	})

/* qsort's comparison for an array of C strings. */
int test_cmp_str(const void *a, const void *b);

/* Every node of t, one line each, sorted: path, every Stat field, data
 * (length, first 32 bytes, Adler-32), ACL (bytes, length) and children
 * (sorted). Two trees are the same tree exactly when their dumps are
 * equal. The caller frees it. Inside or outside a read-side section. */
char *test_tree_dump(struct ztree *t);
/* Asserts a and b hold the same nodes, showing the first difference, and
 * the same ZooKeeper digest. */
void test_assert_same_tree(struct ztree *a, struct ztree *b);

#endif
