/*
 * helpers.c - the helpers several unit suites share (see helpers.h).
 */
#include "helpers.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/adler32.h"
#include "storage/digest.h"
#include "storage/tree.h"

int64_t test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- scratch directories ------------------------------------------------- */

void test_dir_make(char *dir, size_t cap, const char *name)
{
	snprintf(dir, cap, "/tmp/zkd-%s-XXXXXX", name);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s;
	(void)f;
	(void)w;
	return remove(p);
}

void test_dir_remove(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- tree dumps ---------------------------------------------------------- */

struct dump {
	char **lines;
	size_t n, cap;
};

int test_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hex(char *out, const uint8_t *p, size_t n, size_t max)
{
	static const char d[] = "0123456789abcdef";
	size_t i;
	for (i = 0; i < n && i < max; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * i] = '\0';
}

/* The children's names, sorted, each followed by a comma. */
static char *kid_list(const struct znode_ver *v)
{
	uint32_t nk = v->kids ? v->kids->n : 0;
	char **kids = calloc(nk + 1, sizeof *kids);
	size_t len = 1;
	for (uint32_t i = 0; i < nk; i++) {
		kids[i] = strndup(v->kids->v[i].name, v->kids->v[i].len);
		len += v->kids->v[i].len + 1;
	}
	qsort(kids, nk, sizeof *kids, test_cmp_str);
	char *out = malloc(len), *p = out;
	*p = '\0';
	for (uint32_t i = 0; i < nk; i++) {
		p = stpcpy(p, kids[i]);
		p = stpcpy(p, ",");
		free(kids[i]);
	}
	free(kids);
	return out;
}

static void dump_one(void *arg, const struct znode *n)
{
	struct dump *d = arg;
	const struct znode_ver *v = tree_ver(n);
	const struct zk_stat *s = &v->stat;
	char acl[512], data[80];
	hex(acl, v->acl->bytes, (size_t)v->acl->len, 250);
	int32_t dl = v->data ? v->data->len : -2;
	hex(data, v->data ? v->data->bytes : NULL, dl > 0 ? (size_t)dl : 0, 32);
	char *kids = kid_list(v);
	char *line;
	cr_assert(asprintf(&line, "%s czxid=%" PRIx64 " mzxid=%" PRIx64 " pzxid=%" PRIx64 " ctime=%" PRId64
			   " mtime=%" PRId64 " v=%d cv=%d av=%d owner=%" PRIx64 " dlen=%d data=%s sum=%08x"
			   " acl=%s/%d kids=%s",
			   n->path, (uint64_t)s->czxid, (uint64_t)s->mzxid, (uint64_t)s->pzxid, s->ctime, s->mtime,
			   s->version, s->cversion, s->aversion, (uint64_t)s->ephemeral_owner, dl, data,
			   dl > 0 ? adler32(v->data->bytes, (size_t)dl) : 0, acl, v->acl->len, kids) > 0);
	free(kids);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 256;
		d->lines = realloc(d->lines, d->cap * sizeof *d->lines);
		cr_assert_not_null(d->lines);
	}
	d->lines[d->n++] = line;
}

char *test_tree_dump(struct ztree *t)
{
	struct dump d = { 0 };
	rcu_read_lock();
	tree_foreach(t, dump_one, &d);
	rcu_read_unlock();
	if (d.n)
		qsort(d.lines, d.n, sizeof *d.lines, test_cmp_str);
	size_t total = 1;
	for (size_t i = 0; i < d.n; i++)
		total += strlen(d.lines[i]) + 1;
	char *out = malloc(total), *p = out;
	*p = '\0';
	for (size_t i = 0; i < d.n; i++) {
		p = stpcpy(p, d.lines[i]);
		p = stpcpy(p, "\n");
		free(d.lines[i]);
	}
	free(d.lines);
	return out;
}

void test_assert_same_tree(struct ztree *a, struct ztree *b)
{
	char *x = test_tree_dump(a), *y = test_tree_dump(b);
	if (strcmp(x, y) != 0) {
		size_t i = 0;
		while (x[i] && x[i] == y[i])
			i++;
		size_t s = i > 300 ? i - 300 : 0;
		cr_assert_fail("trees differ at byte %zu:\n...%.600s\n---- vs ----\n...%.600s", i, x + s, y + s);
	}
	free(x);
	free(y);
	rcu_read_lock();
	cr_assert_eq(tree_digest(a), tree_digest(b), "same nodes, different digests");
	rcu_read_unlock();
}
