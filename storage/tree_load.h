/*
 * tree_load.h - tree writer functions that recovery needs and tree.h does
 * not have: building a tree from a snapshot (nodes arrive with their full
 * persisted stat, parents before children) and ZooKeeper's
 * DataTree.setCversionPzxid, which replay uses when a create meets a node
 * that the fuzzy snapshot already holds.
 *
 * Everything here is a tree writer (the one thread that changes the tree,
 * inside rcu_read_lock), and keeps tree.c's rules: versions are immutable
 * once published, blobs and child lists are shared by refcount and freed
 * with free() when the last reference goes, and a znode's child names point
 * into the children's own paths.
 */
#ifndef ZKD_STORAGE_TREE_LOAD_H
#define ZKD_STORAGE_TREE_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "tree_internal.h"   /* blobs as tree.c makes them */

struct tree_loader;

/* Starts filling t, which must be empty (a fresh tree_new()). */
struct tree_loader *tree_loader_new(struct ztree *t);

/* (writer) Adds the node `path` with the persisted stat fields of `st`
 * (czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeral_owner,
 * pzxid; data_length and num_children are derived), its data and its ACL
 * (the loader takes its own reference on acl). The parent must have been
 * added before; in depth-first order, which is how snapshots are written,
 * each node is linked in O(1): a node enters the hash table once all its
 * children have been seen, with its complete child list. Returns 0, or -1
 * with a reason (no parent, duplicate, malformed path). */
int tree_loader_add(struct tree_loader *ld, const char *path, size_t len, const struct zk_stat *st,
		    const uint8_t *data, int32_t data_len, struct zblob *acl, char *err, size_t errlen);

/* (writer) Puts every node still pending into the tree and frees ld.
 * Returns 0 or -1 with a reason. */
int tree_loader_finish(struct tree_loader *ld, char *err, size_t errlen);

/* Frees ld and the nodes not yet in the tree, after a failed load (the
 * caller then tree_free()s the tree, which owns the rest). */
void tree_loader_abort(struct tree_loader *ld);

/* (writer) DataTree.setCversionPzxid: when cversion (-1 = "current + 1") is
 * above the node's, sets its cversion to it and its pzxid to zxid. Returns
 * ZOK or ZNONODE. */
int tree_set_cversion_pzxid(struct ztree *t, const char *path, size_t len, int32_t cversion, int64_t zxid);

/* (writer) The pzxid a delete of one of path's children at zxid leaves:
 * moved forward to zxid if it is behind. For replay, when the child is
 * already gone from a fuzzy snapshot. Returns ZOK or ZNONODE. */
int tree_advance_pzxid(struct ztree *t, const char *path, size_t len, int64_t zxid);

#endif
