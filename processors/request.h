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
#include "storage/txn.h"

struct auth_ids;

struct zreq {
	struct net_msg msg;         /* first: Final posts the zreq itself back */
	struct cds_wfcq_node qnode; /* stage queues */
	int64_t session_id;
	int32_t xid;
	int32_t type;               /* ZOP_* of the request */
	int64_t recv_ns;            /* monotonic time it arrived, for latency */
	/* Stage metrics (stage.c): when it was queued at its current stage
	 * (written by the producer before the enqueue publishes it) and when
	 * that stage took it (the stage thread). Monotonic ns. */
	int64_t enq_ns, take_ns;
	uint8_t *body;              /* the request body after the header, owned */
	size_t body_len;
	bool old_client;            /* connect: the client sent no readOnly flag */
	struct auth_ids *ids;       /* the caller's identities (owned copy), NULL = none */
	struct ztxn txn;
	/* Set by Final: the whole reply frame (length prefix included). */
	uint8_t *reply;
	size_t reply_len;
	bool close_after;           /* close the connection once the reply is out */
	/* The ensemble (commit.c, proposal.c): */
	uint8_t *qdata;             /* TxnHeader + txn as a PROPOSAL carries it, owned */
	size_t qlen;
	struct zreq *link;          /* Commit's own lists */
	int64_t *acks;              /* leader's Commit: sids that acked, owned */
	int n_acks, cap_acks;
	int64_t learner_sid;        /* leader: forwarded by this learner (0 = a client here) */
	bool local;                 /* learner: a client's request waiting for its commit */
	bool counted;               /* in zk_stats.outstanding (Final takes it out) */
};

/* Notes election/ sends down the pipeline (zreq.type; never a client op). */
enum {
	ZNOTE_ACK = -1001,          /* leader: session_id = sid acked txn.zxid */
	ZNOTE_COMMIT = -1002,       /* learner: txn.zxid and all before are committed */
	ZNOTE_SYNC = -1003,         /* learner: the leader answered the oldest sync */
	ZNOTE_MARKER = -1004,       /* learner: session_id = tag, down Sync then Commit */
	ZNOTE_REVALIDATED = -1005,  /* learner -> I/O thread: the leader's answer to a
	                               reconnect (xid = 1 if the session is valid) */
};

struct zreq *zreq_new(int64_t session_id, int32_t xid, int32_t type, const uint8_t *body, size_t len);
void zreq_free(struct zreq *r);

#endif
