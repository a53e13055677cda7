/*
 * zabmetrics.c - ZooKeeper 3.8's ServerMetrics of the quorum: elections,
 * how learners were synced, what a learner receives, how long the server
 * could not serve (see zab.h for who records each).
 *
 * ZooKeeper registers its ServerMetrics once per process, whatever the
 * role, so a dashboard finds every series (at 0) on a standalone server, a
 * follower and a leader alike, and a series keeps its history across role
 * changes. zkd does the same: registered once (pthread_once), by server/
 * at start in every mode or by the first recorder, never again. The
 * recorders cache the pointers, so recording stays a relaxed atomic add.
 */
#include <pthread.h>

#include "zab.h"

static struct zab_metrics m;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	m.looking_count = metrics_counter("looking_count", "Times this server started looking for a leader");
	m.election_time = metrics_summary("election_time", "Time from looking to knowing the leader (ms)",
					  METRIC_BASIC, METRIC_UNIT);
	m.diff_count = metrics_counter("diff_count", "Leader: learners synced without a snapshot (DIFF or TRUNC)");
	m.snap_count = metrics_counter("snap_count", "Leader: learners synced with a snapshot (SNAP)");
	m.revalidate_count = metrics_counter("revalidate_count",
					     "Leader: session revalidations asked by learners (REVALIDATE)");
	m.follower_sync_time = metrics_summary("follower_sync_time",
					       "Follower: time to sync with the leader, ACKEPOCH sent to UPTODATE "
					       "taken (ms)",
					       METRIC_BASIC, METRIC_UNIT);
	m.observer_sync_time = metrics_summary("observer_sync_time",
					       "Observer: time to sync with the leader, ACKEPOCH sent to UPTODATE "
					       "taken (ms)",
					       METRIC_BASIC, METRIC_UNIT);
	m.proposal_latency = metrics_summary("proposal_latency",
					     "Follower: time from the leader stamping a txn to its PROPOSAL arriving "
					     "here (wall clocks, ms)",
					     METRIC_ADVANCED, METRIC_UNIT);
	m.proposal_received = metrics_counter("learner_proposal_received_count",
					       "Follower: PROPOSALs received from the leader after the sync");
	m.commit_received = metrics_counter("learner_commit_received_count",
					    "Learner: COMMITs (observer: INFORMs) received from the leader after the sync");
	m.unavailable_time = metrics_summary("unavailable_time",
					     "Time from leaving broadcast (or starting) to broadcasting again, any role "
					     "(ms)",
					     METRIC_BASIC, METRIC_UNIT);
	m.leader_unavailable_time = metrics_summary("leader_unavailable_time",
						    "unavailable_time, recorded only when this server came back as the "
						    "leader (ms)",
						    METRIC_BASIC, METRIC_UNIT);
}

const struct zab_metrics *zab_metrics(void)
{
	pthread_once(&once, init);
	return &m;
}

void quorum_metrics_register(void)
{
	(void)zab_metrics();
}
