/*
 * sync.c - the Sync stage (zkd-sync): ZooKeeper's SyncRequestProcessor.
 *
 * Every txn of a batch is appended to the log; at the end of the batch one
 * txnlog_sync writes them out with a single fdatasync (the group commit),
 * and only then does stage.c hand the batch to Commit. So no reply can
 * leave before its txn is on disk. A failed write or fsync stops the
 * process at once: the txns of that batch were never acknowledged, and
 * nothing after them may be.
 *
 * After about snapCount txns (ZooKeeper's randomised threshold, so the
 * servers of an ensemble do not all snapshot at once) Sync rolls the log
 * and wakes zkd-snap, which writes a fuzzy snapshot of the tree as Final
 * has it, off the hot path, and purges old files if autopurge says so.
 */
#include "sync.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/grow.h"
#include "net/log.h"
#include "net/tsan.h"
#include "request.h"
#include "session.h"
#include "storage/recovery.h"
#include "storage/snapshot.h"
#include "storage/txnlog.h"

struct syncer {
	struct zk_state *st;
	long batch;                     /* zkd-sync only: txns appended in this batch */
	long since_snap;                /* zkd-sync only */
	long snap_at;
	/* zkd-snap's wake-up: Sync sets `pending` under the lock and signals */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pending, stop, started;
	pthread_t thread;
	int64_t last_purge_ms;          /* zkd-snap only */
	/* Registered by syncer_init, recorded by zkd-sync once per group
	 * commit (net/metrics.h; the metrics endpoints read them). */
	struct metric_summary *fsync_time, *batch_size, *flush_time;
};

static struct syncer syncer = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static long next_threshold(int snap_count)
{
	long half = snap_count / 2 > 0 ? snap_count / 2 : 1;
	return half + random() % half;
}

static void die(struct syncer *y, const char *what)
{
	log_error("txn log %s failed: %s; stopping now: no txn after zxid 0x%" PRIx64
		  " was acknowledged", what, txnlog_error(y->st->storage.log),
		  (uint64_t)txnlog_durable_zxid(y->st->storage.log));
	_exit(1);
}

static void sync_handle(struct stage *s, struct zreq *r)
{
	struct syncer *y = s->ctx;
	if (r->txn.zxid && r->txn.type) {
		if (txnlog_append(y->st->storage.log, &r->txn) != 0)
			die(y, "append");
		y->since_snap++;
		y->batch++;
	}
	stage_forward(s, r);
}

/* min/max/count/total of a summary: one writer (zkd-sync), mntr reads */
static void summary_add(atomic_long *count, atomic_long *total, atomic_long *min, atomic_long *max, long v)
{
	long n = atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(total, v, memory_order_relaxed);
	if (n == 0 || v < atomic_load_explicit(min, memory_order_relaxed))
		atomic_store_explicit(min, v, memory_order_relaxed);
	if (v > atomic_load_explicit(max, memory_order_relaxed))
		atomic_store_explicit(max, v, memory_order_relaxed);
}

static void sync_batch_done(struct stage *s)
{
	struct syncer *y = s->ctx;
	struct zk_stats *k = &y->st->stats;
	int64_t t0 = y->batch ? metrics_now_ns() : 0;
	if (txnlog_sync(y->st->storage.log) != 0)
		die(y, "write or fdatasync");
	if (y->batch) {
		long us = (long)txnlog_last_fsync_us(y->st->storage.log);
		metric_observe(y->flush_time, (metrics_now_ns() - t0) / 1000);
		metric_observe(y->fsync_time, us);
		metric_observe(y->batch_size, y->batch);
		/* zk_stats' copies: until mntr reads the registry (server/monitor.c) */
		summary_add(&k->fsync_count, &k->fsync_total_us, &k->fsync_min_us, &k->fsync_max_us, us);
		summary_add(&k->batch_count, &k->batch_total, &k->batch_min, &k->batch_max, y->batch);
		y->batch = 0;
		if (us / 1000 > y->st->storage.fsync_warn_ms)
			log_warn("fsync-ing the write ahead log in zkd-sync took %ld ms which will adversely "
				 "effect operation latency; file size is %" PRId64 " bytes (fsync.warningthresholdms=%d)",
				 us / 1000, txnlog_file_size(y->st->storage.log), y->st->storage.fsync_warn_ms);
	}
	if (y->since_snap < y->snap_at)
		return;
	y->since_snap = 0;
	y->snap_at = next_threshold(y->st->storage.snap_count);
	if (txnlog_roll(y->st->storage.log) != 0)
		die(y, "roll");
	pthread_mutex_lock(&y->lock);
	y->pending = true;
	pthread_cond_signal(&y->cond);
	pthread_mutex_unlock(&y->lock);
}

/* ---- zkd-snap ------------------------------------------------------------------ */

static void take_snapshot(struct syncer *y)
{
	struct zk_state *st = y->st;
	/* what Final has applied now; changes during the walk are replayed
	 * from the log on recovery (a fuzzy snapshot, as ZooKeeper's) */
	int64_t zxid = atomic_load_explicit(&st->last_applied, memory_order_acquire);
	struct snap_session *sessions;
	size_t n = sessions_list(st->sessions, &sessions);
	char err[512];
	/* snapshot_write logs what it wrote */
	if (snapshot_write(st->storage.data_dir, st->tree, zxid, sessions, n, err, sizeof err) != 0)
		log_warn("snapshot at zxid 0x%" PRIx64 " failed: %s", (uint64_t)zxid, err);
	free(sessions);
	int64_t interval = (int64_t)st->storage.purge_interval_h * 3600 * 1000;
	if (interval > 0 && mono_ms() - y->last_purge_ms >= interval) {
		y->last_purge_ms = mono_ms();
		if (storage_purge(st->storage.data_dir, st->storage.data_log_dir, st->storage.snap_retain,
				  err, sizeof err) != 0)
			log_warn("autopurge failed: %s", err);
	}
}

static void *snap_main(void *arg)
{
	struct syncer *y = arg;
	log_thread_name("zkd-snap");
	rcu_register_thread();
	y->last_purge_ms = mono_ms();
	pthread_mutex_lock(&y->lock);
	for (;;) {
		while (!y->pending && !y->stop)
			pthread_cond_wait(&y->cond, &y->lock);
		if (y->stop)
			break;
		y->pending = false;
		pthread_mutex_unlock(&y->lock);
		take_snapshot(y);
		pthread_mutex_lock(&y->lock);
	}
	pthread_mutex_unlock(&y->lock);
	rcu_unregister_thread();
	return NULL;
}

int syncer_init(struct stage *s, struct stage *next, struct zk_state *st)
{
	struct syncer *y = &syncer;
	y->st = st;
	y->since_snap = 0;
	y->snap_at = next_threshold(st->storage.snap_count);
	y->pending = y->stop = false;
	y->fsync_time = metrics_summary("fsynctime", "Time of the txn log's fdatasync per group commit (ms)",
					METRIC_BASIC, METRIC_US_AS_MS);
	y->batch_size = metrics_summary("sync_processor_batch_size", "Txns written per group commit (one fdatasync)",
					METRIC_BASIC, METRIC_UNIT);
	y->flush_time = metrics_summary("sync_processor_queue_flush_time_ms",
					"Time to write and fdatasync the txn log per group commit (ms)",
					METRIC_ADVANCED, METRIC_US_AS_MS);
	stage_init(s, "zkd-sync", sync_handle, next, y);
	s->batch_done = sync_batch_done;
	if (pthread_create(&y->thread, NULL, snap_main, y) != 0) {
		log_error("cannot start the snapshot thread");
		return -1;
	}
	y->started = true;
	return 0;
}

void syncer_stop(void)
{
	struct syncer *y = &syncer;
	if (!y->started)
		return;
	pthread_mutex_lock(&y->lock);
	y->stop = true;
	pthread_cond_signal(&y->cond);
	pthread_mutex_unlock(&y->lock);
	pthread_join(y->thread, NULL);
	y->started = false;
}
