/*
 * snapbody.h - the body of a ZooKeeper snapshot, written and read in one
 * place (internal to storage/).
 *
 * ZooKeeper serializes its database the same way wherever it goes
 * (SerializeUtils.serializeSnapshot: the sessions, then DataTree.serialize):
 *
 *   int count, count x {long sessionId, int timeout}
 *   ACL cache: int count, count x {long id, vector<ACL>}
 *   nodes, depth first from the root (whose path is written as ""):
 *       ustring path, DataNode{buffer data, long aclId, StatPersisted{czxid,
 *       mzxid, ctime, mtime, int version, int cversion, int aversion,
 *       ephemeralOwner, pzxid}}
 *   ustring "/"                          end of the nodes
 *
 * A snapshot file wraps it in a file header and Adler-32 seals
 * (snapshot.c); the SNAP sync of a learner sends it bare, followed by the
 * string "BenWasHere" (snapstream.c); bin/zkd-dump walks it item by item
 * (snapreader.c). This file is the one encoder and the one parser of the
 * body, so the three cannot drift apart.
 *
 * The parser reads from a struct snap_in: either a whole image in memory (a
 * mapped file: lengths are bounded by what is left of it) or a pull
 * callback (a socket: the total length is unknown, so lengths are bounded by
 * jute.maxbuffer, and it never asks for a byte past the end of the body, so
 * whatever follows on the socket stays there). It moves item by item - a
 * session, an ACL map entry, a node - and in pull mode keeps only the
 * current item in memory.
 */
#ifndef ZKD_STORAGE_SNAPBODY_H
#define ZKD_STORAGE_SNAPBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/jute.h"
#include "net/records.h"
#include "snapshot.h"
#include "tree.h"

/* ---- writing ------------------------------------------------------------ */

/* While walking, the encoder hands w to flush whenever it holds at least
 * this much, so a large tree never sits in memory whole. */
#define SNAPBODY_FLUSH_BYTES (1u << 20)

/* Takes what w holds (and sets w->len = 0), or leaves it there; 0, or -1 to
 * stop the walk (the caller keeps its own reason). */
typedef int (*snapbody_flush_fn)(void *arg, struct jute_writer *w);

struct snapbody_stats {
	long nodes;                 /* written */
	long late_acl;              /* written with ACL id -1 (setACL during the walk) */
	long skipped;               /* created during the walk: left out with their subtrees */
	size_t acls;                /* entries of the ACL map */
};

/* Appends the body of t to w (fuzzy; see snapbody.c): sessions, ACL map,
 * nodes, "/". zxid is the last zxid applied to t before the call: a node
 * created after it whose ACL appeared during the walk is left out, for the
 * txns after zxid to create again. flush may be NULL (all of it stays in w).
 * The calling thread must be RCU-registered; each node is read in its own
 * short read-side section, so it should not itself hold rcu_read_lock
 * (nesting works, but holds up reclamation for the whole walk). Returns 0,
 * or -1 when flush said stop or w ran out of memory (w->err). */
int snapbody_write(struct jute_writer *w, struct ztree *t, int64_t zxid, const struct snap_session *sessions,
		   size_t n_sessions, snapbody_flush_fn flush, void *arg, struct snapbody_stats *stats);

/* ---- the byte source ---------------------------------------------------- */

/* Reads exactly len bytes into buf: returns len, or anything else (-1) when
 * it cannot (closed, error, timeout). */
typedef ssize_t (*snap_pull_fn)(void *arg, void *buf, size_t len);

enum snap_in_err {
	SNAP_IN_OK = 0,
	SNAP_IN_SHORT,              /* the input ends (or the source fails) inside an item */
	SNAP_IN_BADLEN,             /* a length is negative or over the bound */
	SNAP_IN_TOOBIG,             /* one item is larger than the bound for an item */
};

struct snap_in {
	const uint8_t *mem;         /* memory source: the whole input */
	size_t mem_len;
	snap_pull_fn pull;          /* pull source */
	void *arg;
	uint8_t *buf;               /* pull: the current item's bytes */
	size_t cap;
	size_t base;                /* input offset of the current item */
	size_t have;                /* bytes of the current item available */
	size_t pos;                 /* read position within the current item */
	size_t max_len;             /* bound for one buffer or string */
	size_t max_item;            /* bound for one item */
	bool track_sum;
	uint32_t sum;               /* Adler-32 of the input before the current item */
	int err;                    /* enum snap_in_err, sticky */
	size_t err_off;             /* where the failing item starts */
};

/* A buffer inside the current item: valid until snap_in_next. NULL data and
 * len -1 for a null. Offsets, not pointers, while the item is still being
 * read (a pull buffer may move as it grows); snap_in_ptr resolves one. */
struct snap_view { size_t off; int32_t len; };

void snap_in_mem(struct snap_in *in, const uint8_t *p, size_t len);
/* max_len: the largest buffer accepted (0 = jute.maxbuffer's default plus
 * ZooKeeper's 1 KiB of slack, zookeeper.jute.maxbuffer.extrasize). */
void snap_in_pull(struct snap_in *in, snap_pull_fn pull, void *arg, size_t max_len);
void snap_in_free(struct snap_in *in);

int32_t snap_in_int(struct snap_in *in);
int64_t snap_in_long(struct snap_in *in);
/* Buffer or ustring: int length (-1 = null) + bytes. */
struct snap_view snap_in_buffer(struct snap_in *in);
const uint8_t *snap_in_ptr(const struct snap_in *in, struct snap_view v);
/* Ends the current item: its bytes join the checksum and are released. */
void snap_in_next(struct snap_in *in);
static inline bool snap_in_ok(const struct snap_in *in) { return in->err == SNAP_IN_OK; }
/* Input offset of the next byte. */
static inline size_t snap_in_offset(const struct snap_in *in) { return in->base + in->pos; }
/* Memory source: bytes left (pull: 0). */
size_t snap_in_left(const struct snap_in *in);
/* "what at offset N: why" for the sticky error. */
void snap_in_describe(const struct snap_in *in, const char *what, char *err, size_t errlen);

/* ---- reading ------------------------------------------------------------ */

struct snapbody_node {
	size_t offset;              /* of the node's path in the input */
	const char *path;           /* "/" for the root (stored as ""); not NUL-terminated */
	size_t path_len;
	const uint8_t *data;        /* NULL when data_len is -1 (null) */
	int32_t data_len;
	int64_t acl_id;             /* -1 = OPEN_ACL_UNSAFE */
	struct zk_stat stat;        /* persisted: data_length set, num_children 0 */
};

/* Each callback may be NULL; views live only during the call. A callback
 * returns 0, or -1 with a reason in err to stop the read. */
struct snapbody_cb {
	int (*session)(void *arg, int64_t id, int32_t timeout, char *err, size_t errlen);
	/* acl: the jute vector<ACL>, count included */
	int (*acl)(void *arg, int64_t id, const uint8_t *acl, size_t len, char *err, size_t errlen);
	int (*node)(void *arg, const struct snapbody_node *n, char *err, size_t errlen);
};

/* Reads a body from in, through the "/" after the nodes (and not a byte
 * further), calling cb as it goes. 0, or -1 with a reason naming the input
 * offset. */
int snapbody_read(struct snap_in *in, const struct snapbody_cb *cb, void *arg, char *err, size_t errlen);

struct snapbody_loaded {
	struct ztree *tree;
	struct snap_session *sessions;  /* malloc'd */
	size_t n_sessions;
};

/* Reads a body into a new tree (tree_new + tree_loader; /zookeeper,
 * /zookeeper/quota and /zookeeper/config added when missing) and collects
 * its sessions. The calling thread must be RCU-registered and not inside
 * rcu_read_lock. 0, or -1 with a reason (nothing is left allocated). */
int snapbody_load(struct snap_in *in, struct snapbody_loaded *out, char *err, size_t errlen);
void snapbody_loaded_free(struct snapbody_loaded *l);

#endif
