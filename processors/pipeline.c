/*
 * pipeline.c - builds the chain Prep -> Proposal -> Sync -> Commit -> Final
 * and starts its threads.
 *
 * Standalone, Proposal has nobody to propose to and Commit's quorum is
 * this server alone, so the chain skips them (their threads idle until the
 * ensemble gives them work). Sync is the fsync thread (sync.c).
 */
#include <inttypes.h>
#include <string.h>

#include "final.h"
#include "net/log.h"
#include "pipeline.h"
#include "prep.h"
#include "processors.h"
#include "request.h"
#include "session.h"
#include "stage.h"
#include "sync.h"
#include "watch.h"

enum { ST_PREP, ST_PROPOSAL, ST_SYNC, ST_COMMIT, ST_FINAL, ST_COUNT };

/* Owned by processors_start/stop (the main thread). */
static struct stage stages[ST_COUNT];
static bool started;

static void pass_on(struct stage *s, struct zreq *r)
{
	stage_forward(s, r);
}

int processors_start(struct zk_state *st)
{
	watches_init();
	/* Standalone, Proposal and Commit would only pass each batch on, and
	 * every hand-off costs a wake-up (about 12 us of CPU and more of
	 * latency here): the chain goes Prep -> Sync -> Final and the two wait
	 * for the ensemble, which wires them in. */
	final_init(&stages[ST_FINAL], st);
	stage_init(&stages[ST_COMMIT], "zkd-commit", pass_on, &stages[ST_FINAL], st);
	if (syncer_init(&stages[ST_SYNC], &stages[ST_FINAL], st) != 0)
		return -1;
	stage_init(&stages[ST_PROPOSAL], "zkd-proposal", pass_on, &stages[ST_SYNC], st);
	prep_init(&stages[ST_PREP], &stages[ST_SYNC], st);
	for (int i = ST_COUNT - 1; i >= 0; i--) {
		if (stage_start(&stages[i]) != 0) {
			for (int j = ST_COUNT - 1; j > i; j--)
				stage_stop(&stages[j]);
			return -1;
		}
	}
	started = true;
	return 0;
}

void processors_stop(void)
{
	if (!started)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		stage_stop(&stages[i]);
	syncer_stop();
	started = false;
}

void processors_cleanup(void)
{
	for (int i = 0; i < ST_COUNT; i++) {
		struct cds_wfcq_node *node;
		while ((node = cds_wfcq_dequeue_blocking(&stages[i].head, &stages[i].tail)))
			zreq_free(caa_container_of(node, struct zreq, qnode));
	}
	prep_free();
	watches_free();
}

void pipeline_submit(struct zreq *r)
{
	stage_push(&stages[ST_PREP], r);
}

bool processors_expire_session(struct zk_state *st, int64_t session_id)
{
	rcu_read_lock();
	struct zsession *s = sessions_find(st->sessions, session_id);
	bool mine = s && !atomic_exchange(&s->closing, true);
	rcu_read_unlock();
	if (!mine)
		return false;
	struct zreq *r = zreq_new(session_id, 0, ZOP_CLOSE, NULL, 0);
	if (!r)
		return false;
	log_info("session 0x%" PRIx64 ": expired", (uint64_t)session_id);
	atomic_fetch_add_explicit(&st->stats.outstanding, 1, memory_order_relaxed);
	pipeline_submit(r);
	return true;
}

long processors_watch_count(void)
{
	return watch_total();
}

void processors_delete_container(struct zk_state *st, const char *path, size_t len)
{
	struct zreq *r = zreq_new(0, 0, ZOP_DELETECONTAINER, (const uint8_t *)path, len);
	if (!r)
		return;
	atomic_fetch_add_explicit(&st->stats.outstanding, 1, memory_order_relaxed);
	pipeline_submit(r);
}
