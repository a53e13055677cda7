/*
 * request.h - a request on its way through the pipeline (internal).
 *
 * The I/O thread that received it allocates the zreq and owns it until it is
 * pushed to Prep; from then each stage owns it in turn; Final posts it back
 * to the I/O thread (as a net_msg), which sends the reply and frees it. A
 * zreq made by the session tracker (expiry) has no connection (msg.to == 0)
 * and Final frees it.
 */
#ifndef ZKD_PROCESSORS_REQUEST_H
#define ZKD_PROCESSORS_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <urcu/wfcqueue.h>

#include "net/net.h"
#include "net/records.h"

struct auth_ids;

/* The txn Prep builds and Final applies; fields as ZooKeeper's txn records. */
struct ztxn {
	int32_t type;               /* ZOP_CREATE..., ZOP_ERROR, or 0 = no txn (sync) */
	int64_t zxid;
	int64_t time;               /* wall ms */
	int32_t err;                /* ZOP_ERROR: the code */
	char *path;                 /* owned; NUL-terminated */
	size_t path_len;
	const uint8_t *data;        /* view into the request body */
	int32_t data_len;           /* -1 = null */
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

struct zreq {
	struct net_msg msg;         /* first: Final posts the zreq itself back */
	struct cds_wfcq_node qnode; /* stage queues */
	int64_t session_id;
	int32_t xid;
	int32_t type;               /* ZOP_* of the request */
	int64_t recv_ns;            /* monotonic time it arrived, for latency */
	uint8_t *body;              /* the request body after the header, owned */
	size_t body_len;
	bool old_client;            /* connect: the client sent no readOnly flag */
	struct auth_ids *ids;       /* the caller's identities (owned copy), NULL = none */
	struct ztxn txn;
	/* Set by Final: the whole reply frame (length prefix included). */
	uint8_t *reply;
	size_t reply_len;
	bool close_after;           /* close the connection once the reply is out */
};

struct zreq *zreq_new(int64_t session_id, int32_t xid, int32_t type, const uint8_t *body, size_t len);
void zreq_free(struct zreq *r);

#endif
