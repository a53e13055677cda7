/*
 * tree.h - the data tree: ZooKeeper's znodes in an RCU hash table.
 *
 * Every znode is an entry of a cds_lfht keyed by its full path. What a
 * reader sees of a node is one immutable version {stat, data, acl, children}
 * published with rcu_assign_pointer; a change builds the next version and
 * retires the old one through call_rcu. Readers (the I/O threads, Prep) take
 * rcu_read_lock, look up, rcu_dereference the version and never block.
 *
 * One writer: every function marked (writer) must be called from a single
 * thread at a time - the Final stage in a running server, the loader at
 * start. Versions share their blobs (data, acl, children) by refcount, so a
 * setData does not copy the children and a child create does not copy the
 * data.
 *
 * Stat is kept as ZooKeeper persists it: stat.cversion counts child
 * creations (which is also the sequential-name counter); tree_client_stat()
 * turns it into what clients see (ZooKeeper reports 2*creations - children,
 * i.e. creations plus deletions), and hides the container/TTL markers in
 * ephemeralOwner.
 */
#ifndef ZKD_STORAGE_TREE_H
#define ZKD_STORAGE_TREE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu.h>
#include <urcu/rculfhash.h>

#include "net/records.h"
#include "net/tsan.h"

/* ephemeralOwner markers ZooKeeper uses for containers and TTL nodes. */
#define ZK_CONTAINER_OWNER ((int64_t)0x8000000000000000ULL)
#define ZK_TTL_MASK        ((int64_t)0xff00000000000000ULL)
#define ZK_TTL_PREFIX      ((int64_t)0xff00000000000000ULL)
#define ZK_TTL_MAX         ((int64_t)0x000000ffffffffffULL)   /* EphemeralType.TTL.maxValue() */

struct zblob {                  /* immutable bytes shared by versions */
	atomic_int ref;
	int32_t len;                /* -1 = null (getData answers a null buffer) */
	uint8_t bytes[];
};

struct zkid { const char *name; uint32_t len; };  /* points into the child's path */
struct zkids {                  /* immutable child list shared by versions */
	atomic_int ref;
	uint32_t n;
	struct zkid v[];
};

struct znode_ver {
	struct rcu_head rcu;
	struct zk_stat stat;        /* persisted form: cversion = creations */
	struct zblob *data;
	struct zblob *acl;          /* the ACL vector, jute-encoded as on the wire */
	struct zkids *kids;         /* NULL = no children */
	uint64_t digest;            /* this version's share of the tree digest (digest.h) */
};

struct znode {
	struct cds_lfht_node hnode;
	struct rcu_head rcu;
	/* RCU-published; the writer replaces it. An atomic (release store,
	 * acquire load: plain moves on x86) rather than rcu_assign_pointer, so
	 * ThreadSanitizer sees the publication too. */
	_Atomic(struct znode_ver *) ver;
	uint32_t path_len;
	char path[];                /* NUL-terminated */
};

struct quota_set;

struct ztree {
	struct cds_lfht *ht;
	atomic_long node_count;     /* writer updates, anyone reads */
	atomic_long data_bytes;     /* approximate: paths + data */
	/* ZooKeeper's running tree digest (digest.h): the writer adds and
	 * subtracts node digests as versions come and go; anyone reads. */
	atomic_ullong digest;
	struct quota_set *quotas;   /* writer only: paths with a quota (quota.c) */
};

struct ztree *tree_new(void);
/* Frees everything; no reader may be active and the writer is gone. */
void tree_free(struct ztree *t);

/* Reader (inside rcu_read_lock): the node at path, or NULL. */
struct znode *tree_lookup(struct ztree *t, const char *path, size_t len);
static inline const struct znode_ver *tree_ver(const struct znode *n)
{
	return atomic_load_explicit(&((struct znode *)n)->ver, memory_order_acquire);
}
/* The Stat a client sees for this version. */
void tree_client_stat(const struct znode_ver *v, struct zk_stat *out);

/* Splits "/a/b" into parent "/a" (len 2) and name "b"; "/a" -> "/" and "a".
 * Returns false for "/" or a path without '/'. */
bool tree_split(const char *path, size_t len, size_t *parent_len, const char **name, size_t *name_len);

/* (writer) Creates /zookeeper, /zookeeper/quota, /zookeeper/config and the root. */
void tree_init_system_nodes(struct ztree *t);

struct tree_create_args {
	const char *path; size_t path_len;
	const uint8_t *data; int32_t data_len;      /* -1 = null */
	const uint8_t *acl; size_t acl_len;         /* jute vector<ACL> bytes, count included */
	int64_t ephemeral_owner;
	int32_t parent_cversion;                    /* the parent's new creation count */
	int64_t zxid, time;
};
/* (writer) Returns ZOK, ZNONODE (no parent) or ZNODEEXISTS. *out gets the
 * client Stat of the new node when out != NULL. */
int tree_create(struct ztree *t, const struct tree_create_args *a, struct zk_stat *out);
/* (writer) ZOK or ZNONODE. */
int tree_delete(struct ztree *t, const char *path, size_t len, int64_t zxid);
/* (writer) Sets data and version; ZOK or ZNONODE. */
int tree_set_data(struct ztree *t, const char *path, size_t len, const uint8_t *data,
		  int32_t data_len, int32_t version, int64_t zxid, int64_t time, struct zk_stat *out);
/* (writer) Replaces the data but not the Stat (ZooKeeper updates quota stat
 * nodes this way: no new mzxid or version); ZOK or ZNONODE. */
int tree_replace_data(struct ztree *t, const char *path, size_t len, const uint8_t *data, int32_t data_len);
/* (writer) Sets the ACL and aversion; ZOK or ZNONODE. */
int tree_set_acl(struct ztree *t, const char *path, size_t len, const uint8_t *acl,
		 size_t acl_len, int32_t aversion, struct zk_stat *out);

/* Reader: calls fn for each node (any order), inside one read-side section. */
void tree_foreach(struct ztree *t, void (*fn)(void *arg, const struct znode *n), void *arg);

/* 32-bit FNV-1a of a path, the table's hash. */
uint64_t tree_hash(const char *path, size_t len);

#endif
