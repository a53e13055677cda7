/*
 * client_harness.h - a zkd server in one thread, for the client-port fuzz
 * targets (client_frames, connect).
 *
 * The seam: processors/ meets net/ only through the callbacks of
 * processors_net_callbacks (on_open, on_frame, on_msg, on_idle, on_close)
 * and the net_* functions, and meets the stage threads only through
 * pipeline_submit. This harness links processors/ and storage/ as they are,
 * with net/'s loop replaced by fake_net.c and pipeline.c's pipeline_submit by
 * its own, which queues the request; harness_pump then runs it through the
 * real Prep (prep_init + the stage's handle function) and Final (final_init
 * + handle) on the calling thread, and delivers Final's replies back to
 * readpath.c's on_msg. So a frame takes the server's own path: on_frame ->
 * decode -> read served in place, or write -> Prep -> txn -> Final -> tree ->
 * reply, watch events included. No source file of the server is changed.
 *
 * Between Prep and Final every txn is also encoded the way Proposal and
 * Sync do (txn_encode: it must succeed, as Proposal aborts otherwise),
 * decoded back as a follower does (txn_decode: must succeed), and the
 * decoded txn applied to a replica tree; at the end both trees must be the
 * same node for node. A txn that a follower would apply differently from
 * the leader aborts the target.
 *
 * The tree starts with a few nodes (see client_harness.c: /a, /a/b, /eph,
 * /digest, /ip, /cont, /ttl, a quota on /a) and the session table with
 * HARNESS_SESSION (password: session_password), which owns /eph.
 */
#ifndef ZKD_FUZZ_CLIENT_HARNESS_H
#define ZKD_FUZZ_CLIENT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "processors/processors.h"

#define HARNESS_SESSION ((int64_t)0x0101020304050607LL)
#define HARNESS_PEER "127.0.0.1:40000"

struct harness_opts {
	uint32_t max_buffer;        /* jute.maxbuffer */
	bool extended_types;        /* extendedTypesEnabled */
	bool super_digest;          /* superDigest = super:<digest of super:pw> */
	int outstanding_limit;      /* globalOutstandingLimit */
	bool serving;               /* has a quorum */
	bool read_only;             /* readonlymode: no quorum but read-only sessions */
	bool learner;               /* role follower: reconnects are revalidated */
	bool revalidate_ok;         /* what the "leader" answers a revalidation */
	int min_timeout, max_timeout;
	bool x509_super;            /* x509 superUser = HARNESS_X509 */
};

/* The client certificate subject the targets may give a connection. */
#define HARNESS_X509 "CN=client,OU=fuzz,O=zkd"


extern struct zk_state harness_state;

/* Once per process (LLVMFuzzerInitialize). */
void harness_init(void);
/* A fresh server: tree, sessions, stages. */
void harness_begin(const struct harness_opts *o);
/* Runs every submitted request through Prep and Final, then one loop turn. */
void harness_pump(void);
/* Feeds a client byte stream through c, pumping after every `batch` frames
 * (0: only when the connection pauses and at the end). */
void harness_feed(struct net_conn *c, const uint8_t *p, size_t len, int batch);
/* Closes the connections, checks the replica, frees everything. */
void harness_end(void);

/* A ConnectRequest frame (length prefix included) into buf; returns its length. */
size_t harness_connect_frame(uint8_t *buf, size_t cap, int64_t session_id, bool good_password, int32_t timeout,
			     bool read_only);

#endif
