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

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
};

/* The server's state shared by the stages and the read path. */
struct zk_state {
	struct ztree *tree;
	struct session_table *sessions;
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
};

/* Starts Prep, Proposal, Sync, Commit and Final. The tree must be loaded and
 * last_applied set. Returns 0 or -1 (logged). */
int processors_start(struct zk_state *st);
/* Stops the stage threads. Requests still queued stay there until
 * processors_cleanup, which runs once nothing can submit any more (after
 * net_stop). */
void processors_stop(void);
void processors_cleanup(void);

/* The callbacks net/ calls on the I/O threads (ctx = st). */
void processors_net_callbacks(struct zk_state *st, struct net_callbacks *cb);

/* Any thread: asks the pipeline to close a session (expiry). Returns false
 * if the session is gone or already closing. */
bool processors_expire_session(struct zk_state *st, int64_t session_id);

/* Any thread: asks the pipeline to delete a container or expired TTL node
 * (ZooKeeper's deleteContainer request: refused if it has children by now). */
void processors_delete_container(struct zk_state *st, const char *path, size_t len);

/* Watches for wchs / wchc / wchp: appends ZooKeeper's text to out. */
size_t processors_describe_watches(char *out, size_t cap, char mode);

/* Connections for the `cons` four-letter word: appends one line per open
 * client connection to out (NUL-terminated, truncated at cap). */
size_t processors_describe_conns(char *out, size_t cap);
/* Watches set now (data + child managers), for mntr and wchs. */
long processors_watch_count(void);
/* Resets the latency and packet counters (`srst`). */
void processors_reset_stats(struct zk_state *st);

#endif
