/*
 * processors.h - the public face of processors/: ZooKeeper's request
 * processors as a chain of threads, and the read path that runs on the
 * I/O threads.
 *
 *   I/O thread (readpath.c): decode; reads answered in place under RCU;
 *        writes, sync, connect and close become a zreq for ...
 *   Prep (prep.c)         validate, resolve against tree + outstanding
 *                         changes, assign zxid, build the txn
 *   Proposal (stages.c)   leader: propose to followers; standalone: pass
 *   Sync (stages.c)       fsync thread: log + group commit (txn-log issue);
 *                         until then a pass
 *   Commit (stages.c)     quorum of one; commits in zxid order
 *   Final (final.c)       single writer of the tree: apply, build the
 *                         reply, post it to the owning I/O thread
 *
 * Stages hand whole batches to the next through liburcu wfcqueues (stage.h).
 * server/ wires this to net/ with processors_net_callbacks().
 */
#ifndef ZKD_PROCESSORS_PROCESSORS_H
#define ZKD_PROCESSORS_PROCESSORS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/jute.h"
#include "net/net.h"
#include "storage/tree.h"

struct session_table;
struct txnlog;

/* Counters for four-letter words and metrics. Writers: the threads named;
 * readers: anyone (relaxed atomics). */
struct zk_stats {
	atomic_long outstanding;        /* requests inside the pipeline (I/O +, Final -) */
	atomic_long lat_count;          /* I/O threads, at reply time */
	atomic_long lat_total_us;
	atomic_long lat_min_us;
	atomic_long lat_max_us;
	atomic_long reads, writes;      /* I/O threads */
	/* ServerStats' client response sizes (I/O threads): every response but
	 * the ConnectResponse, without its length prefix. Held plus one, so
	 * that 0 is ZooKeeper's -1 (none yet); read through processors_response_sizes. */
	atomic_long resp_last, resp_min, resp_max;
	/* zkd-sync, per group commit: the fdatasync's time and the batch size */
	atomic_long fsync_count, fsync_total_us, fsync_min_us, fsync_max_us;
	atomic_long batch_count, batch_total, batch_min, batch_max;
};

struct zk_limits {
	int tick_time;                  /* ms */
	int min_session_timeout;        /* ms */
	int max_session_timeout;        /* ms */
	uint32_t max_buffer;            /* jute.maxbuffer */
	int global_outstanding_limit;
	int64_t myid;                   /* top byte of session ids */
	bool extended_types;            /* extendedTypesEnabled: TTL nodes allowed */
	char super_digest[256];         /* superDigest, "" = none */
	char x509_super_user[256];      /* X509AuthenticationProvider.superUser, "" = none */
};

/* Where and how txns are made durable (the txn-log issue). */
struct zk_storage {
	char data_dir[1024];            /* snapshots (version-2 is added below it) */
	char data_log_dir[1024];        /* txn logs */
	struct txnlog *log;             /* opened by server/ after recovery; Sync's alone */
	int snap_count;                 /* snapshot after about this many txns */
	int purge_interval_h;           /* autopurge.purgeInterval; 0 = never */
	int snap_retain;                /* autopurge.snapRetainCount */
	int fsync_warn_ms;              /* fsync.warningthresholdms */
	int64_t log_prealloc;           /* preAllocSize in bytes, to reopen the log */
	bool log_force_sync;            /* forceSync */
};

/* The server's state shared by the stages and the read path. */
struct zk_state {
	/* Atomic pointers: an ensemble member replaces both wholesale between
	 * roles (a SNAP, a TRUNC: election/peer.c) and frees the old ones after
	 * synchronize_rcu; every reader loads them inside its read-side
	 * section. Plain moves on x86. */
	struct ztree *_Atomic tree;
	struct session_table *_Atomic sessions;
	struct zk_limits limits;
	struct zk_storage storage;
	struct zk_stats stats;
	/* Last zxid Final applied. Final stores (release) after publishing the
	 * tree change; readers load (acquire). */
	atomic_llong last_applied;
	/* Called by Final when a session is created (the tracker starts timing
	 * it). Set by server/ before start. */
	void (*on_session_created)(void *arg, int64_t session_id);
	void *on_session_created_arg;
	/* Clients are served (connect, requests) only while this is set: always
	 * standalone; in an ensemble from UPTODATE until the peer leaves its
	 * role. Written by the peer thread (election/), read by I/O threads. */
	atomic_bool serving;
	/* readonlymode.enabled and the peer has been LOOKING for a while: while
	 * not serving, clients that said they can be read-only get read-only
	 * sessions (reads served, writes answered NOTREADONLY), as ZooKeeper's
	 * ReadOnlyZooKeeperServer. Written by the peer, read by I/O threads. */
	atomic_bool read_only;
	/* The role the pipeline runs in now (enum zk_role); peer thread writes
	 * while the stages are stopped, anyone reads. */
	atomic_int role;
	/* Prep (leader) sets it when the zxid counter of the epoch is used
	 * up; the leader steps down for a new epoch (peer thread clears it). */
	atomic_bool zxid_exhausted;
	/* Learner: asks the leader whether a session a client resumes here is
	 * still alive (REVALIDATE); the answer comes back through
	 * processors_revalidated. Set once by server/ before start. */
	void (*revalidate)(void *ctx, int64_t session_id, int32_t timeout, net_addr conn);
	void *revalidate_ctx;
};

/* ---- the ensemble's hooks ------------------------------------------------------
 *
 * In an ensemble the chain depends on the role (see pipeline.c):
 *   leader:   Prep -> Proposal -> Sync -> Commit -> Final
 *   follower: Prep (forwards to the leader) -> Commit;  PROPOSAL -> Sync -> Commit -> Final
 *   observer: Prep (forwards) -> Commit;  INFORM -> Sync -> Commit -> Final
 * election/ implements zab_ops (the stages call them on their own threads)
 * and feeds the pipeline with the processors_zab_* functions below. */
enum zk_role { ZK_STANDALONE, ZK_LEADER, ZK_FOLLOWER, ZK_OBSERVER };

struct zreq;

struct zab_ops {
	void *ctx;
	int64_t myid;
	/* leader, zkd-proposal: send PROPOSAL for these txns (r->qdata). */
	void (*propose)(void *ctx, struct zreq **v, int n);
	/* leader, zkd-commit: these are committed, in zxid order: COMMIT to
	 * followers, INFORM to observers, keep them for syncing learners. */
	void (*commit)(void *ctx, struct zreq **v, int n);
	/* leader, zkd-commit: true if these sids hold a quorum. */
	bool (*has_quorum)(void *ctx, const int64_t *sids, int n);
	/* leader, zkd-final: a learner's sync went through; answer it. */
	void (*sync_done)(void *ctx, int64_t learner_sid);
	/* follower, zkd-commit: these zxids are logged: ACK them. */
	void (*ack)(void *ctx, const int64_t *zxids, int n);
	/* learner, zkd-prep: encode these requests as REQUEST packets into out
	 * (Prep hands the requests on to Commit, then calls send). */
	void (*forward)(void *ctx, struct zreq **v, int n, struct jute_writer *out);
	/* learner, zkd-prep: write these encoded packets to the leader. */
	void (*send)(void *ctx, const uint8_t *p, size_t len);
	/* learner, zkd-commit: a marker (processors_zab_marker) got here, so
	 * every txn queued before it is on disk. */
	void (*marker)(void *ctx, int64_t tag);
};

/* The last txns applied (recent.c), oldest first, up to zxid `upto`: fn
 * is called for each under the ring's lock. Returns how many. A new leader
 * fills its committed log from them. */
int processors_recent_each(int64_t upto, void (*fn)(void *arg, int64_t zxid, const uint8_t *data, size_t len),
			   void *arg);
/* Peer thread: forget them (the tree was replaced or cut back). */
void processors_recent_reset(void);

/* For election/'s hooks (the zreq itself is processors/' own): */
int64_t processors_req_zxid(const struct zreq *r);
/* The txn as TxnHeader + record, as PROPOSAL and INFORM carry it. */
const uint8_t *processors_req_txn(const struct zreq *r, size_t *len);
/* A request a learner forwards: the REQUEST packet's data (sessionId,
 * cxid, type, body) appended to body, its identities as a vector<Id> to
 * auth; false when it has none beyond its address. */
bool processors_req_forward(const struct zreq *r, struct jute_writer *body, struct jute_writer *auth);

/* Restarts the stage threads for `role` (stopping them first if running);
 * Prep's next zxid is next_zxid. ops is NULL standalone. */
int processors_start_role(struct zk_state *st, enum zk_role role, const struct zab_ops *ops, int64_t next_zxid);
/* Peer thread: stops the stages and drops whatever they still held (their
 * clients' connections are being closed), syncing the log first. */
void processors_stop_role(void);
/* Any thread: posts a close to every client connection (a server that
 * leaves its role drops its clients, as ZooKeeper does). */
void processors_close_all_clients(const char *why);

/* Learner thread: a PROPOSAL's (or an INFORM's) data -> Sync. -1 if it
 * does not decode. */
int processors_zab_txn(struct zk_state *st, const uint8_t *data, size_t len);
/* Learner thread: COMMIT of zxid (and all before it) -> Commit. */
void processors_zab_commit(int64_t zxid);
/* Learner thread: the leader's SYNC answer -> Commit. */
void processors_zab_sync(void);
/* Learner thread: a marker down Sync -> Commit, which calls ops->marker. */
void processors_zab_marker(int64_t tag);
/* Leader (learner handler threads): sid acked zxid -> Commit. */
void processors_zab_ack(int64_t sid, int64_t zxid);
/* Leader (learner handler threads): a request a learner forwarded -> Prep.
 * authinfo is the packet's vector<Id> (count included), may be NULL. */
int processors_zab_request(struct zk_state *st, int64_t learner_sid, const uint8_t *data, size_t len,
			   const uint8_t *authinfo, size_t authinfo_len);
/* Leader: every live session's deadline restarts at now + its timeout and
 * the tracker files them all (a new leader has not seen their traffic). */
void processors_sessions_touch_all(struct zk_state *st, void (*track)(void *arg, int64_t id));
/* Learner: appends (id, timeout) of every session touched here since the
 * last call as a PING's payload (long, int each). */
void processors_sessions_touched(struct zk_state *st, struct jute_writer *w);
/* Leader: a learner reported a touch. */
void processors_session_touch(struct zk_state *st, int64_t id, int32_t timeout);
/* Leader: REVALIDATE from learner `owner`: true if the session lives (and
 * then touches it and makes owner its owner). */
bool processors_session_valid(struct zk_state *st, int64_t id, int32_t timeout, int64_t owner);
/* Learner: the leader's answer to a revalidation, to the I/O thread that
 * holds conn. */
void processors_revalidated(net_addr conn, int64_t session_id, bool valid);

/* Starts Prep, Proposal, Sync, Commit and Final standalone. The tree must
 * be loaded and last_applied set. Returns 0 or -1 (logged). */
int processors_start(struct zk_state *st);
/* Stops the stage threads. Requests still queued stay there until
 * processors_cleanup, which runs once nothing can submit any more (after
 * net_stop). */
void processors_stop(void);
void processors_cleanup(void);
/* Main thread, at shutdown, once clients are no longer read (net_quiesce)
 * and the tracker and reaper are stopped: requests learners forward are
 * refused from now on, and this waits until the requests in the pipeline
 * are done (applied, replies posted) or timeout_ms passed. Returns how many
 * are left (0: drained). */
long processors_drain(struct zk_state *st, int timeout_ms);

/* The callbacks net/ calls on the I/O threads (ctx = st). */
void processors_net_callbacks(struct zk_state *st, struct net_callbacks *cb);

/* Any thread: asks the pipeline to close a session (expiry). Returns false
 * if the session is gone or already closing. */
bool processors_expire_session(struct zk_state *st, int64_t session_id);

/* Any thread: asks the pipeline to delete a container or expired TTL node
 * (ZooKeeper's deleteContainer request: refused if it has children by now). */
void processors_delete_container(struct zk_state *st, const char *path, size_t len);

/* One open client connection, as cons and the admin `connections` show it
 * (ZooKeeper's ServerCnxn.getConnectionInfo). Latencies in ms. */
struct zk_conn_info {
	const char *peer;               /* "ip:port"; valid during the callback only */
	bool secure;                    /* came in on the secure client port */
	int queued;
	long recved, sent;
	int64_t session_id;             /* 0 before the handshake */
	const char *last_op;            /* "NA" before the first reply */
	int64_t established_ms;         /* wall clock */
	int timeout_ms;
	long last_cxid, last_zxid;      /* -1 before the first reply */
	long last_response_ms;          /* monotonic, 0 before the first reply */
	long last_latency_ms, lat_min_ms, lat_avg_ms, lat_max_ms;
};
/* Any thread: fn for each open client connection, under the registry's
 * lock (fn must not block or call back into processors/). */
void processors_each_conn(void (*fn)(void *arg, const struct zk_conn_info *ci), void *arg);
/* Any thread: the last, smallest and largest response size (-1 = none). */
void processors_response_sizes(const struct zk_state *st, long *last, long *min, long *max);
/* Any thread: zeroes every connection's counters and latencies (crst). */
void processors_reset_conn_stats(void);

/* A data watch set now (getData, exists, persistent), one per (session,
 * path): what ZooKeeper's watch dumps (wchc, wchp, wchs) list. */
struct zk_watch {
	char *path;
	int64_t session_id;
};
/* Any thread: every data watch, sorted by session then path, in a fresh array
 * (NULL and 0 when none); free it with processors_watches_free. */
size_t processors_watches(struct zk_watch **out);
void processors_watches_free(struct zk_watch *w, size_t n);
/* ZooKeeper's digest log, for `hash`: the tree digest after each applied
 * zxid that is a multiple of 128, the last 1024, oldest first. */
struct zk_zxid_digest {
	int64_t zxid;
	uint64_t digest;
};
/* Any thread: copies up to cap entries to out; returns how many. */
size_t processors_digest_log(struct zk_zxid_digest *out, size_t cap);
/* Final, or recovery before it runs: zxid was applied and the tree's
 * digest is now `digest`; kept when zxid is a multiple of 128. */
void processors_note_digest(int64_t zxid, uint64_t digest);

/* Watches set now (data + child managers), for mntr and wchs. */
long processors_watch_count(void);
/* srst, as ZooKeeper's ServerStats.reset: latencies, packet counters and
 * every registered metric. */
void processors_reset_stats(struct zk_state *st);

#endif
