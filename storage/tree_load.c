/*
 * tree_load.c - bulk loading of the data tree from a snapshot, and the one
 * stat fix-up replay needs (see tree_load.h).
 *
 * Why a stack: a snapshot lists nodes depth-first, so the nodes whose child
 * lists are still growing are exactly the current node's ancestors. Each of
 * them waits on a stack with its children's names gathered in a plain array;
 * when a path arrives that is not below the top of the stack, the top is
 * complete: it gets its child list, built once, and enters the hash table.
 * Linking through tree_create instead would copy the parent's child list for
 * every child, O(n^2) for a node with many children. A node whose parent
 * has already left the stack (an order no snapshot writer produces, but a
 * file may) is linked the slow, ordinary way: a new parent version.
 *
 * Nodes enter the table only when complete, so a load that fails midway
 * leaves a table of complete nodes (tree_free frees those) plus the stack
 * (tree_loader_abort frees that).
 *
 * This file builds tree.c's structures directly and so must follow its
 * ownership rules (tree.h): blobs and child lists are refcounted and freed
 * with free() at zero, versions are retired through call_rcu, nodes are
 * malloc'd with their path inline. Should tree.c change those rules, this
 * file changes with it; better still, these functions could move there.
 */
#include "tree_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/records.h"
#include "tree_internal.h"

/* ---- child lists built in one go ------------------------------------------ */

static struct zkids *kids_build(const struct zkid *v, uint32_t n, const struct zkid *extra)
{
	uint32_t total = n + (extra ? 1 : 0);
	if (total == 0)
		return NULL;
	struct zkids *k = malloc(sizeof *k + (size_t)total * sizeof(struct zkid));
	if (!k)
		abort();
	atomic_init(&k->ref, 1);
	k->n = total;
	if (n)
		memcpy(k->v, v, (size_t)n * sizeof(struct zkid));
	if (extra)
		k->v[n] = *extra;
	return k;
}

static void ver_free(struct znode_ver *v)
{
	tree_ver_free_cb(&v->rcu);
}

/* ---- the loader ---------------------------------------------------------- */

struct ld_frame {
	struct znode *node;         /* complete except its child list; not in the table */
	struct zkid *kids;
	uint32_t n, cap;
};

struct tree_loader {
	struct ztree *t;
	struct ld_frame *stack;
	size_t depth, cap;
};

struct tree_loader *tree_loader_new(struct ztree *t)
{
	struct tree_loader *ld = calloc(1, sizeof *ld);
	if (!ld)
		abort();
	ld->t = t;
	return ld;
}

static void frame_push(struct tree_loader *ld, struct znode *n)
{
	if (ld->depth == ld->cap) {
		ld->cap = ld->cap ? ld->cap * 2 : 32;
		ld->stack = realloc(ld->stack, ld->cap * sizeof *ld->stack);
		if (!ld->stack)
			abort();
	}
	ld->stack[ld->depth++] = (struct ld_frame){ .node = n };
}

static void frame_add_kid(struct ld_frame *f, const char *name, uint32_t len)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->kids = realloc(f->kids, (size_t)f->cap * sizeof *f->kids);
		if (!f->kids)
			abort();
	}
	f->kids[f->n++] = (struct zkid){ name, len };
}

static void node_free(struct znode *n)
{
	ver_free(n->ver);
	free(n);
}

/* The top of the stack is complete: give it its children, put it in the table. */
static int frame_pop(struct tree_loader *ld, char *err, size_t errlen)
{
	struct ld_frame f = ld->stack[--ld->depth];
	struct znode *n = f.node;
	n->ver->kids = kids_build(f.kids, f.n, NULL);
	free(f.kids);
	struct path_key k = { n->path, n->path_len };
	struct cds_lfht_node *got = cds_lfht_add_unique(ld->t->ht, tree_hash(n->path, n->path_len), tree_node_match,
							&k, &n->hnode);
	if (got != &n->hnode) {
		snprintf(err, errlen, "node %s appears twice", n->path);
		node_free(n);
		return -1;
	}
	int32_t dlen = n->ver->data && n->ver->data->len > 0 ? n->ver->data->len : 0;
	atomic_fetch_add(&ld->t->node_count, 1);
	atomic_fetch_add(&ld->t->data_bytes, (long)n->path_len + dlen);
	tree_digest_enter(ld->t, n);
	return 0;
}

static bool is_path_of(const struct znode *n, const char *p, size_t len)
{
	return n->path_len == len && memcmp(n->path, p, len) == 0;
}

int tree_loader_add(struct tree_loader *ld, const char *path, size_t len, const struct zk_stat *st,
		    const uint8_t *data, int32_t data_len, struct zblob *acl, char *err, size_t errlen)
{
	if (len == 0 || path[0] != '/' || memchr(path, '\0', len) || (len > 1 && path[len - 1] == '/') ||
	    len > UINT32_MAX) {
		snprintf(err, errlen, "malformed path \"%.*s\"", (int)(len > 200 ? 200 : len), path);
		return -1;
	}
	size_t plen = 0, nlen = 0;
	const char *name = NULL;
	bool root = len == 1;
	if (!root)
		tree_split(path, len, &plen, &name, &nlen);

	struct znode *parent = NULL;
	if (root) {
		if (ld->depth || tree_lookup(ld->t, "/", 1)) {
			snprintf(err, errlen, "the root appears twice");
			return -1;
		}
	} else {
		while (ld->depth && !is_path_of(ld->stack[ld->depth - 1].node, path, plen))
			if (frame_pop(ld, err, errlen) != 0)
				return -1;
		if (!ld->depth) {
			parent = tree_lookup(ld->t, path, plen);
			if (!parent) {
				snprintf(err, errlen, "node %.*s comes before (or without) its parent",
					 (int)(len > 200 ? 200 : len), path);
				return -1;
			}
		}
	}

	struct znode_ver *v = malloc(sizeof *v);
	if (!v)
		abort();
	memset(v, 0, sizeof *v);
	v->stat = *st;
	v->stat.data_length = 0;      /* derived: tree_client_stat computes them */
	v->stat.num_children = 0;
	v->data = tree_blob_new(data, data_len);
	v->acl = tree_blob_ref(acl);
	struct znode *n = malloc(sizeof *n + len + 1);
	if (!n)
		abort();
	cds_lfht_node_init(&n->hnode);
	n->path_len = (uint32_t)len;
	memcpy(n->path, path, len);
	n->path[len] = '\0';
	n->ver = v;

	if (!root) {
		const char *kid = n->path + (name - path);   /* names point into the child's path */
		if (parent) {
			/* slow path: the parent is already published */
			struct znode_ver *pv = tree_ver_clone(parent->ver);
			tree_kids_unref(pv->kids);
			struct zkid extra = { kid, (uint32_t)nlen };
			const struct zkids *old = parent->ver->kids;
			pv->kids = kids_build(old ? old->v : NULL, old ? old->n : 0, &extra);
			tree_node_publish(ld->t, parent, pv);
		} else {
			frame_add_kid(&ld->stack[ld->depth - 1], kid, (uint32_t)nlen);
		}
	}
	frame_push(ld, n);
	return 0;
}

int tree_loader_finish(struct tree_loader *ld, char *err, size_t errlen)
{
	int rc = 0;
	while (ld->depth && rc == 0)
		rc = frame_pop(ld, err, errlen);
	if (rc != 0) {
		tree_loader_abort(ld);
		return -1;
	}
	free(ld->stack);
	free(ld);
	return 0;
}

void tree_loader_abort(struct tree_loader *ld)
{
	if (!ld)
		return;
	for (size_t i = 0; i < ld->depth; i++) {
		free(ld->stack[i].kids);
		node_free(ld->stack[i].node);
	}
	free(ld->stack);
	free(ld);
}

/* ---- replay's fix-up ----------------------------------------------------- */

int tree_set_cversion_pzxid(struct ztree *t, const char *path, size_t len, int32_t cversion, int64_t zxid)
{
	struct znode *n = tree_lookup(t, path, len);
	if (!n)
		return ZNONODE;
	const struct znode_ver *old = tree_ver(n);
	if (cversion == -1)
		cversion = old->stat.cversion + 1;
	if (cversion > old->stat.cversion) {
		struct znode_ver *v = tree_ver_clone(old);
		v->stat.cversion = cversion;
		v->stat.pzxid = zxid;
		tree_node_publish(t, n, v);
	}
	return ZOK;
}

int tree_advance_pzxid(struct ztree *t, const char *path, size_t len, int64_t zxid)
{
	struct znode *n = tree_lookup(t, path, len);
	if (!n)
		return ZNONODE;
	const struct znode_ver *old = tree_ver(n);
	if (zxid > old->stat.pzxid) {
		struct znode_ver *v = tree_ver_clone(old);
		v->stat.pzxid = zxid;
		tree_node_publish(t, n, v);
	}
	return ZOK;
}
