/*
 * reqmetrics.c - requests by type (see reqmetrics.h).
 *
 * Every op type's series are registered at once, at the first reply, so a
 * scrape shows each type from the start (at 0) and a recorder only indexes
 * a table: one counter add and one summary observation per reply, on
 * memory no lock guards. The table is written once (pthread_once) and read
 * by every I/O thread after that.
 */
#include "reqmetrics.h"

#include <pthread.h>

#include "net/metrics.h"
#include "net/records.h"

#define OP_MIN (-16)
#define OP_MAX 127

struct op_metrics {
	struct metric_counter *count;
	struct metric_summary *latency;
	struct metric_summary *kind;    /* updatelatency or readlatency */
};

/* Written by init (once), read by the I/O threads afterwards. */
static struct op_metrics ops[OP_MAX - OP_MIN + 1];
static struct op_metrics unknown;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The ops a client may send, as ZooKeeper's Request.op2String names them. */
static const int client_ops[] = {
	ZOP_CREATESESSION, ZOP_CLOSE, ZOP_CREATE, ZOP_CREATE2, ZOP_CREATECONTAINER, ZOP_CREATETTL,
	ZOP_DELETE, ZOP_DELETECONTAINER, ZOP_SETDATA, ZOP_SETACL, ZOP_CHECK, ZOP_MULTI, ZOP_RECONFIG,
	ZOP_SYNC, ZOP_EXISTS, ZOP_GETDATA, ZOP_GETACL, ZOP_GETCHILDREN, ZOP_GETCHILDREN2, ZOP_MULTIREAD,
	ZOP_GETEPHEMERALS, ZOP_GETALLCHILDRENNUMBER, ZOP_PING, ZOP_AUTH, ZOP_SETWATCHES, ZOP_SETWATCHES2,
	ZOP_ADDWATCH, ZOP_CHECKWATCHES, ZOP_REMOVEWATCHES, ZOP_WHOAMI, ZOP_SASL,
};

/* ZooKeeper counts a request with a txn header as an update (ServerStats). */
static bool is_update(int op)
{
	switch (op) {
	case ZOP_CREATESESSION: case ZOP_CLOSE: case ZOP_CREATE: case ZOP_CREATE2: case ZOP_CREATECONTAINER:
	case ZOP_CREATETTL: case ZOP_DELETE: case ZOP_DELETECONTAINER: case ZOP_SETDATA: case ZOP_SETACL:
	case ZOP_CHECK: case ZOP_MULTI: case ZOP_RECONFIG:
		return true;
	default:
		return false;
	}
}

static void init(void)
{
	struct metric_summary *upd = metrics_summary("updatelatency",
						     "Time from a write's arrival to its reply (ms)",
						     METRIC_ADVANCED, METRIC_US_AS_MS);
	struct metric_summary *rd = metrics_summary("readlatency", "Time from a read's arrival to its reply (ms)",
						    METRIC_ADVANCED, METRIC_US_AS_MS);
	metrics_summary_alias("read_final_proc_time_ms",
			      "Time to serve a read (zkd: on the I/O thread, arrival to reply; as readlatency) (ms)",
			      METRIC_ADVANCED, rd);
	for (size_t i = 0; i < sizeof client_ops / sizeof client_ops[0]; i++) {
		int op = client_ops[i];
		struct op_metrics *m = &ops[op - OP_MIN];
		const char *name = zk_op_name(op);
		m->count = metrics_counter_l("zkd_requests_total", "Requests answered, by ZooKeeper op type", "type",
					     name);
		m->latency = metrics_summary_l("zkd_request_latency_ms",
					       "Time from a request's arrival to its reply, by op type (ms)",
					       METRIC_ADVANCED, METRIC_US_AS_MS, "type", name);
		m->kind = is_update(op) ? upd : rd;
	}
	unknown.count = metrics_counter_l("zkd_requests_total", "Requests answered, by ZooKeeper op type", "type",
					  "unknown");
	unknown.latency = metrics_summary_l("zkd_request_latency_ms",
					    "Time from a request's arrival to its reply, by op type (ms)",
					    METRIC_ADVANCED, METRIC_US_AS_MS, "type", "unknown");
	unknown.kind = rd;
	/* the leader's, registered here so that every role shows them from the
	 * start (as ZooKeeper's ServerMetrics); commit.c and proposal.c look
	 * them up by name */
	metrics_summary("quorum_ack_latency", "Leader: time from a write's arrival to its quorum of acks (ms)",
			METRIC_ADVANCED, METRIC_US_AS_MS);
	metrics_counter("commit_count", "Leader: txns committed");
	metrics_counter("proposal_count", "Leader: txns proposed to the followers");
}

void reqmetrics_register(void)
{
	pthread_once(&once, init);
}

void reqmetrics_reply(int op, long us)
{
	pthread_once(&once, init);
	struct op_metrics *m = op >= OP_MIN && op <= OP_MAX && ops[op - OP_MIN].count ? &ops[op - OP_MIN] : &unknown;
	metric_inc(m->count);
	metric_observe(m->latency, us);
	metric_observe(m->kind, us);
}
