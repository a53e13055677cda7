/*
 * txn.h - a transaction: one change to the data tree or the session set, as
 * Prep decides it, the txn log records it and Final applies it.
 *
 * The fields follow ZooKeeper's txn records (TxnHeader + CreateTxn,
 * DeleteTxn, SetDataTxn, SetACLTxn, CheckVersionTxn, CreateSessionTxn,
 * CloseSessionTxn, ErrorTxn, MultiTxn), so the log can be written in
 * ZooKeeper's format and read back.
 */
#ifndef ZKD_STORAGE_TXN_H
#define ZKD_STORAGE_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tree.h"

/* The txn Prep builds and Final applies; fields as ZooKeeper's txn records. */
struct ztxn {
	int32_t type;               /* ZOP_CREATE..., ZOP_ERROR, or 0 = no txn (sync) */
	int64_t session_id;         /* TxnHeader.clientId */
	int32_t cxid;               /* TxnHeader.cxid: the request's xid */
	int64_t zxid;
	int64_t time;               /* wall ms */
	int32_t err;                /* ZOP_ERROR: the code */
	char *path;                 /* owned; NUL-terminated */
	size_t path_len;
	const uint8_t *data;        /* view into the request body, or owned if data_owned */
	int32_t data_len;           /* -1 = null */
	bool data_owned;
	uint8_t *acl;               /* owned; jute vector<ACL> */
	size_t acl_len;
	int64_t ephemeral_owner;
	int32_t parent_cversion;    /* create */
	int32_t version;            /* setData / setACL: the new version */
	int32_t timeout;            /* createSession */
	char **close_paths;         /* closeSession: ephemerals to delete, owned */
	int n_close_paths;
	int32_t op;                 /* in a multi: the op as requested (create vs create2) */
	struct ztxn *sub;           /* multi: one txn per op, owned */
	int n_sub, cap_sub;
};

/* Frees what t owns and zeroes it. */
void ztxn_clear(struct ztxn *t);

/* (tree writer) Applies t to the tree, as ZooKeeper's DataTree.processTxn:
 * create, delete, setData, setACL, check, error, multi (all or nothing; each
 * op's Stat into multi_stats[i] when given) and closeSession's ephemeral
 * deletes. The session set is the caller's. Returns the ZooKeeper code. */
int txn_apply(struct ztree *tree, struct ztxn *t, struct zk_stat *stat, struct zk_stat *multi_stats);

#endif
