/*
 * tree_internal.h - the tree's building blocks, shared by tree.c and the
 * snapshot loader (tree_load.c) so both keep versions, blobs and nodes the
 * same way. Internal to storage/; other directories use tree.h.
 */
#ifndef ZKD_STORAGE_TREE_INTERNAL_H
#define ZKD_STORAGE_TREE_INTERNAL_H

#include "tree.h"

/* The hash-table key: a path that need not be NUL-terminated. */
struct path_key { const char *p; size_t len; };
int tree_node_match(struct cds_lfht_node *ht_node, const void *key);

/* Refcounted blobs shared by successive versions; the last unref frees. */
struct zblob *tree_blob_new(const uint8_t *p, int32_t len);
struct zblob *tree_blob_ref(struct zblob *b);
void tree_blob_unref(struct zblob *b);
void tree_kids_unref(struct zkids *k);

/* A new version sharing every blob of `old`; the caller then swaps one. */
struct znode_ver *tree_ver_clone(const struct znode_ver *old);
/* Frees a version and drops its blobs (the call_rcu callback). */
void tree_ver_free_cb(struct rcu_head *h);
/* (writer) Publishes nv as n's version, moves t's digest from the old
 * version's share to nv's, and retires the old one. */
void tree_node_publish(struct ztree *t, struct znode *n, struct znode_ver *nv);
/* (writer) A node enters or leaves the tree: its version's share of the
 * digest is computed (enter) and added, or subtracted (leave). */
void tree_digest_enter(struct ztree *t, const struct znode *n);
void tree_digest_leave(struct ztree *t, const struct znode *n);

#endif
