/*
 * txn.c - transactions: freeing what they own.
 */
#include "txn.h"

#include <stdlib.h>
#include <string.h>

#include "net/log.h"
#include "net/records.h"
#include "quota.h"

void ztxn_clear(struct ztxn *t)
{
	if (t->data_owned)
		free((void *)t->data);
	free(t->path);
	free(t->acl);
	for (int i = 0; i < t->n_close_paths; i++)
		free(t->close_paths[i]);
	free(t->close_paths);
	for (int i = 0; i < t->n_sub; i++)
		ztxn_clear(&t->sub[i]);
	free(t->sub);
	memset(t, 0, sizeof *t);
}

static int apply_one(struct ztree *tree, const struct ztxn *t, struct zk_stat *stat)
{
	switch (t->type) {
	case ZOP_CREATE:
	case ZOP_CREATECONTAINER:
	case ZOP_CREATETTL: {
		struct tree_create_args a = {
			.path = t->path, .path_len = t->path_len,
			.data = t->data, .data_len = t->data_len,
			.acl = t->acl, .acl_len = t->acl_len,
			.ephemeral_owner = t->ephemeral_owner,
			.parent_cversion = t->parent_cversion,
			.zxid = t->zxid, .time = t->time,
		};
		int rc = tree_create(tree, &a, stat);
		if (rc == ZOK)
			quota_after_create(tree, t->path, t->path_len, t->data_len);
		return rc;
	}
	case ZOP_DELETE:
		quota_before_delete(tree, t->path, t->path_len);
		return tree_delete(tree, t->path, t->path_len, t->zxid);
	case ZOP_SETDATA: {
		struct znode *n = tree_lookup(tree, t->path, t->path_len);
		int32_t old_len = n ? tree_ver(n)->data->len : 0;
		int rc = tree_set_data(tree, t->path, t->path_len, t->data, t->data_len, t->version,
				       t->zxid, t->time, stat);
		if (rc == ZOK)
			quota_after_set_data(tree, t->path, t->path_len, old_len, t->data_len);
		return rc;
	}
	case ZOP_SETACL:
		return tree_set_acl(tree, t->path, t->path_len, t->acl, t->acl_len, t->version, stat);
	case ZOP_CLOSE:
		for (int i = 0; i < t->n_close_paths; i++) {
			size_t len = strlen(t->close_paths[i]);
			quota_before_delete(tree, t->close_paths[i], len);
			tree_delete(tree, t->close_paths[i], len, t->zxid);
		}
		return ZOK;
	case ZOP_ERROR:
		return t->err;
	default:
		return ZOK;   /* check, createSession: nothing in the tree */
	}
}

/* A multi applies all its ops or none. Prep decided already: if any op is an
 * error txn nothing is applied, and each op before the failing one becomes an
 * error txn with code 0 (ZooKeeper answers those ErrorResult(0)). */
static int apply_multi(struct ztree *tree, struct ztxn *t, struct zk_stat *stats)
{
	bool failed = false;
	for (int i = 0; i < t->n_sub; i++)
		failed |= t->sub[i].type == ZOP_ERROR;
	for (int i = 0; i < t->n_sub; i++) {
		struct ztxn *sub = &t->sub[i];
		if (failed) {
			if (sub->type != ZOP_ERROR) {
				sub->type = ZOP_ERROR;
				sub->err = ZOK;
			}
			continue;
		}
		int rc = apply_one(tree, sub, stats ? &stats[i] : NULL);
		if (rc != ZOK)
			log_error("zxid 0x%llx: multi op %d (%s %s) did not apply: %s",
				  (unsigned long long)t->zxid, i, zk_op_name(sub->op),
				  sub->path ? sub->path : "", zk_err_name(rc));
	}
	return ZOK;
}

int txn_apply(struct ztree *tree, struct ztxn *t, struct zk_stat *stat, struct zk_stat *multi_stats)
{
	if (t->type == ZOP_MULTI)
		return apply_multi(tree, t, multi_stats);
	return apply_one(tree, t, stat);
}
