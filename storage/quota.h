/*
 * quota.h - ZooKeeper's quota bookkeeping in the tree (internal to storage/).
 *
 * zkCli's setquota creates /zookeeper/quota/<path>/zookeeper_limits and
 * .../zookeeper_stats with ordinary creates. The server then keeps
 * zookeeper_stats ("count=N,bytes=M") equal to the node count and data bytes
 * of <path>'s subtree as it changes, rewriting its data without a new zxid,
 * as ZooKeeper's DataTree does. Quotas are only counted, never enforced
 * (ZooKeeper 3.8's default, enforceQuota=false).
 *
 * All of it runs in the tree writer, from txn_apply.
 */
#ifndef ZKD_STORAGE_QUOTA_H
#define ZKD_STORAGE_QUOTA_H

#include <stddef.h>
#include <stdint.h>

struct ztree;
struct quota_set;

void quota_set_free(struct quota_set *q);
/* After a node was created / before it is deleted / after its data changed. */
void quota_after_create(struct ztree *t, const char *path, size_t len, int32_t data_len);
void quota_before_delete(struct ztree *t, const char *path, size_t len);
void quota_after_set_data(struct ztree *t, const char *path, size_t len, int32_t old_len, int32_t new_len);
/* Rebuilds the quota list and every stats node from the tree (after a load). */
void quota_rebuild(struct ztree *t);

#endif
