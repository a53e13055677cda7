/*
 * quota.c - quota stats kept up to date in the tree (see quota.h).
 *
 * The set of quota roots is small (an operator sets a handful), so it is a
 * plain array searched linearly; ZooKeeper's PathTrie answers the same
 * question: the longest quota root that is a whole-component prefix of a
 * path.
 */
#include "quota.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

#define QUOTA_ROOT "/zookeeper/quota"
#define LIMIT_NODE "zookeeper_limits"
#define STAT_NODE "zookeeper_stats"

struct quota_set {
	char **paths;
	size_t n, cap;
};

void quota_set_free(struct quota_set *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++)
		free(q->paths[i]);
	free(q->paths);
	free(q);
}

static bool is_prefix(const char *root, size_t rlen, const char *path, size_t len)
{
	if (rlen > len || memcmp(root, path, rlen) != 0)
		return false;
	return rlen == len || path[rlen] == '/';
}

/* getMaxPrefixWithQuota: nothing for paths under /zookeeper itself. */
static const char *max_prefix(struct ztree *t, const char *path, size_t len)
{
	struct quota_set *q = t->quotas;
	if (!q || !q->n || is_prefix("/zookeeper", 10, path, len))
		return NULL;
	const char *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < q->n; i++) {
		size_t l = strlen(q->paths[i]);
		if (l > best_len && is_prefix(q->paths[i], l, path, len)) {
			best = q->paths[i];
			best_len = l;
		}
	}
	return best;
}

static void add_root(struct ztree *t, const char *path, size_t len)
{
	if (!t->quotas && !(t->quotas = calloc(1, sizeof *t->quotas)))
		return;
	struct quota_set *q = t->quotas;
	for (size_t i = 0; i < q->n; i++)
		if (strlen(q->paths[i]) == len && memcmp(q->paths[i], path, len) == 0)
			return;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 4;
		char **p = realloc(q->paths, cap * sizeof *p);
		if (!p)
			return;
		q->paths = p;
		q->cap = cap;
	}
	q->paths[q->n] = strndup(path, len);
	if (q->paths[q->n])
		q->n++;
}

static void remove_root(struct ztree *t, const char *path, size_t len)
{
	struct quota_set *q = t->quotas;
	for (size_t i = 0; q && i < q->n; i++)
		if (strlen(q->paths[i]) == len && memcmp(q->paths[i], path, len) == 0) {
			free(q->paths[i]);
			q->paths[i] = q->paths[--q->n];
			return;
		}
}

/* StatsTrack: "count=N,bytes=M", optionally followed by "=;key=value;..."
 * for newer limits, which are kept as they are. */
struct stats_track {
	int64_t count, bytes;
	char extra[512];
};

static void stats_parse(const uint8_t *p, int32_t len, struct stats_track *s)
{
	char buf[600];
	size_t n = len > 0 ? (size_t)len : 0;
	if (n >= sizeof buf)
		n = sizeof buf - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	s->count = s->bytes = -1;
	s->extra[0] = '\0';
	char *semi = strchr(buf, ';');
	if (semi) {
		snprintf(s->extra, sizeof s->extra, "%s", semi);
		*semi = '\0';
	}
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		if (!strncmp(tok, "count=", 6))
			s->count = strtoll(tok + 6, NULL, 10);
		else if (!strncmp(tok, "bytes=", 6))
			s->bytes = strtoll(tok + 6, NULL, 10);
	}
}

static int stats_format(const struct stats_track *s, char *out, size_t cap)
{
	return snprintf(out, cap, "count=%" PRId64 ",bytes=%" PRId64 "%s%s", s->count, s->bytes,
			s->extra[0] ? "=" : "", s->extra);
}

static int stat_path(const char *root, char *out, size_t cap)
{
	return snprintf(out, cap, QUOTA_ROOT "%s/" STAT_NODE, root);
}

static void write_stats(struct ztree *t, const char *root, int64_t set_count, int64_t set_bytes,
			int64_t d_count, int64_t d_bytes, bool absolute)
{
	char sp[4096];
	int splen = stat_path(root, sp, sizeof sp);
	if (splen <= 0 || (size_t)splen >= sizeof sp)
		return;
	struct znode *n = tree_lookup(t, sp, (size_t)splen);
	if (!n)
		return;   /* ZooKeeper logs "Missing node for stat" and goes on */
	const struct znode_ver *v = tree_ver(n);
	struct stats_track s;
	stats_parse(v->data->bytes, v->data->len, &s);
	if (absolute) {
		s.count = set_count;
		s.bytes = set_bytes;
	} else {
		s.count += d_count;
		s.bytes += d_bytes;
	}
	char data[700];
	int dlen = stats_format(&s, data, sizeof data);
	if (dlen > 0 && (size_t)dlen < sizeof data)
		tree_replace_data(t, sp, (size_t)splen, (const uint8_t *)data, dlen);
}

struct counts { int64_t count, bytes; };

static void count_subtree(struct ztree *t, const char *path, size_t len, struct counts *c, int depth)
{
	struct znode *n = tree_lookup(t, path, len);
	if (!n || depth > 1000)
		return;
	const struct znode_ver *v = tree_ver(n);
	c->count++;
	c->bytes += v->data->len > 0 ? v->data->len : 0;
	for (uint32_t i = 0; v->kids && i < v->kids->n; i++) {
		size_t clen = len + 1 + v->kids->v[i].len;
		char *child = malloc(clen + 1);
		if (!child)
			return;
		memcpy(child, path, len);
		child[len] = '/';
		memcpy(child + len + 1, v->kids->v[i].name, v->kids->v[i].len);
		child[clen] = '\0';
		count_subtree(t, child, clen, c, depth + 1);
		free(child);
	}
}

static void recompute(struct ztree *t, const char *root, size_t len)
{
	char *r = strndup(root, len);
	if (!r)
		return;
	struct counts c = { 0, 0 };
	count_subtree(t, r, len, &c, 0);
	write_stats(t, r, c.count, c.bytes, 0, 0, true);
	free(r);
}

/* For /zookeeper/quota/<root>/<leaf>: true and the root if leaf is `name`. */
static bool quota_leaf(const char *path, size_t len, const char *name, const char **root, size_t *rlen)
{
	size_t qlen = sizeof QUOTA_ROOT - 1, nlen = strlen(name);
	if (len <= qlen + nlen + 1 || memcmp(path, QUOTA_ROOT, qlen) != 0 || path[qlen] != '/')
		return false;
	if (memcmp(path + len - nlen, name, nlen) != 0 || path[len - nlen - 1] != '/')
		return false;
	*root = path + qlen;
	*rlen = len - qlen - nlen - 1;
	return *rlen > 0;
}

void quota_after_create(struct ztree *t, const char *path, size_t len, int32_t data_len)
{
	const char *root;
	size_t rlen;
	if (quota_leaf(path, len, LIMIT_NODE, &root, &rlen))
		add_root(t, root, rlen);
	if (quota_leaf(path, len, STAT_NODE, &root, &rlen))
		recompute(t, root, rlen);
	const char *prefix = max_prefix(t, path, len);
	if (prefix)
		write_stats(t, prefix, 0, 0, 1, data_len > 0 ? data_len : 0, false);
}

void quota_before_delete(struct ztree *t, const char *path, size_t len)
{
	const char *root;
	size_t rlen;
	if (quota_leaf(path, len, LIMIT_NODE, &root, &rlen))
		remove_root(t, root, rlen);
	const char *prefix = max_prefix(t, path, len);
	if (!prefix)
		return;
	struct znode *n = tree_lookup(t, path, len);
	int32_t bytes = n && tree_ver(n)->data->len > 0 ? tree_ver(n)->data->len : 0;
	if (n)
		write_stats(t, prefix, 0, 0, -1, -(int64_t)bytes, false);
}

void quota_after_set_data(struct ztree *t, const char *path, size_t len, int32_t old_len, int32_t new_len)
{
	const char *prefix = max_prefix(t, path, len);
	if (prefix)
		write_stats(t, prefix, 0, 0, 0,
			    (int64_t)(new_len > 0 ? new_len : 0) - (old_len > 0 ? old_len : 0), false);
}

struct rebuild_arg { struct ztree *t; char **limits; size_t n, cap; };

static void find_limits(void *arg, const struct znode *n)
{
	struct rebuild_arg *a = arg;
	const char *root;
	size_t rlen;
	if (!quota_leaf(n->path, n->path_len, LIMIT_NODE, &root, &rlen))
		return;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		char **p = realloc(a->limits, cap * sizeof *p);
		if (!p)
			return;
		a->limits = p;
		a->cap = cap;
	}
	a->limits[a->n] = strndup(root, rlen);
	if (a->limits[a->n])
		a->n++;
}

void quota_rebuild(struct ztree *t)
{
	quota_set_free(t->quotas);
	t->quotas = NULL;
	struct rebuild_arg a = { t, NULL, 0, 0 };
	tree_foreach(t, find_limits, &a);
	for (size_t i = 0; i < a.n; i++) {
		add_root(t, a.limits[i], strlen(a.limits[i]));
		recompute(t, a.limits[i], strlen(a.limits[i]));
		free(a.limits[i]);
	}
	free(a.limits);
}
