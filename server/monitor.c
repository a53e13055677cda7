/*
 * monitor.c - what mntr reports (see monitor.h). The server's own values
 * come first, in ZooKeeper 3.8's order so a diff against its mntr reads
 * easily; then the quorum's, on the members that have them.
 */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>

#include <urcu.h>

#include "election/election.h"
#include "monitor.h"
#include "net/metrics.h"
#include "processors/session.h"
#include "server.h"

struct emitter {
	void (*fn)(void *arg, const struct mon_value *v);
	void *arg;
};

static void put_long(struct emitter *e, const char *name, long long v)
{
	struct mon_value mv = { .name = name, .kind = MON_LONG, .l = v };
	e->fn(e->arg, &mv);
}

static void put_double(struct emitter *e, const char *name, double v)
{
	struct mon_value mv = { .name = name, .kind = MON_DOUBLE, .d = v };
	e->fn(e->arg, &mv);
}

static void put_string(struct emitter *e, const char *name, const char *v)
{
	struct mon_value mv = { .name = name, .kind = MON_STRING, .s = v };
	e->fn(e->arg, &mv);
}

const char *monitor_mode(struct zkd_server *srv)
{
	if (!srv->quorum)
		return "standalone";
	switch (quorum_state(srv->quorum)) {
	case PEER_LEADING: return "leader";
	case PEER_FOLLOWING: return "follower";
	case PEER_OBSERVING: return "observer";
	default: return "looking";
	}
}

/* ZooKeeper's DataTree files its root under both "" and "/", and its node
 * count (mntr, srvr, the AdminServer) counts it twice; dashboards and
 * alerts built on those numbers see the same here. */
long monitor_znode_count(struct zkd_server *srv)
{
	return atomic_load(&atomic_load(&srv->st.tree)->node_count) + 1;
}

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the DIR's own fd */
}

static void count_ephemeral(void *arg, const struct znode *n)
{
	int64_t owner = tree_ver(n)->stat.ephemeral_owner;
	if (owner != 0 && owner != ZK_CONTAINER_OWNER && (owner & ZK_TTL_MASK) != ZK_TTL_PREFIX)
		(*(long *)arg)++;
}

/* One series of the metrics registry as mntr prints it (ZooKeeper's
 * DefaultMetricsProvider): counters and gauges as they are; a summary as
 * avg_, min_, max_, cnt_, sum_ and, for detailed ones, p50_ ... p999_. A
 * labelled series puts its label value before the name, as ZooKeeper's
 * summary sets do (avg_<key>_<name>). */
static void registry_value(void *arg, const struct metric_view *v)
{
	struct emitter *e = arg;
	char name[160];
	if (v->label_value)
		snprintf(name, sizeof name, "%s_%s", v->label_value, v->name);
	else
		snprintf(name, sizeof name, "%s", v->name);
	if (v->kind != METRIC_SUMMARY) {
		put_long(e, name, (long long)v->value);
		return;
	}
	char key[200];
	snprintf(key, sizeof key, "avg_%s", name);
	put_double(e, key, v->avg);
	snprintf(key, sizeof key, "min_%s", name);
	put_long(e, key, (long long)v->min);
	snprintf(key, sizeof key, "max_%s", name);
	put_long(e, key, (long long)v->max);
	snprintf(key, sizeof key, "cnt_%s", name);
	put_long(e, key, v->cnt);
	snprintf(key, sizeof key, "sum_%s", name);
	put_long(e, key, (long long)v->sum);
	if (v->detail != METRIC_ADVANCED)
		return;
	static const struct { const char *tag; double q; } pct[] = {
		{ "p50", 0.5 }, { "p95", 0.95 }, { "p99", 0.99 }, { "p999", 0.999 },
	};
	for (size_t i = 0; i < sizeof pct / sizeof pct[0]; i++) {
		snprintf(key, sizeof key, "%s_%s", pct[i].tag, name);
		double q = metric_view_quantile(v, pct[i].q);   /* NaN: nothing in the window */
		put_long(e, key, isnan(q) ? 0 : (long long)q);
	}
}

static void quorum_values(struct emitter *e, struct zkd_server *srv)
{
	struct quorum_stats q;
	quorum_get_stats(srv->quorum, &q);
	put_string(e, "peer_state", q.peer_state);
	/* ZooKeeper's QuorumZooKeeperServer gauge: every quorum role, never
	 * standalone */
	put_long(e, "quorum_size", q.quorum_size);
	if (quorum_state(srv->quorum) != PEER_LEADING)
		return;
	put_long(e, "leader_uptime", q.leader_uptime);
	put_long(e, "learners", q.learners);
	put_long(e, "followers", q.learners);
	put_long(e, "synced_followers", q.synced_followers);
	put_long(e, "synced_non_voting_followers", 0);
	put_long(e, "synced_observers", q.synced_observers);
	put_long(e, "pending_syncs", q.pending_syncs);
	put_long(e, "last_proposal_size", q.last_proposal_size);
	put_long(e, "max_proposal_size", q.max_proposal_size);
	put_long(e, "min_proposal_size", q.min_proposal_size);
}

bool monitor_collect(struct zkd_server *srv, void (*emit)(void *arg, const struct mon_value *v), void *arg)
{
	if (!atomic_load(&srv->st.serving))
		return false;
	struct emitter e = { emit, arg };
	struct zk_state *st = &srv->st;
	struct zk_stats *s = &st->stats;
	struct ztree *tree = atomic_load(&st->tree);
	struct net_stats ns;
	net_get_stats(&ns);
	struct rlimit rl = { 0 };
	getrlimit(RLIMIT_NOFILE, &rl);
	long ephemerals = 0;
	tree_foreach(tree, count_ephemeral, &ephemerals);
	long n = atomic_load(&s->lat_count);
	char version[128];
	snprintf(version, sizeof version, "%s, built on %s", ZKD_VERSION, __DATE__);

	put_string(&e, "version", version);
	put_string(&e, "server_state", monitor_mode(srv));
	put_long(&e, "ephemerals_count", ephemerals);
	put_long(&e, "num_alive_connections", (long long)ns.connections);
	put_double(&e, "avg_latency", n ? (double)atomic_load(&s->lat_total_us) / (double)n / 1000.0 : 0.0);
	put_long(&e, "outstanding_requests", atomic_load(&s->outstanding));
	put_long(&e, "znode_count", monitor_znode_count(srv));
	put_long(&e, "global_sessions", atomic_load(&atomic_load(&st->sessions)->count));
	put_long(&e, "packets_sent", (long long)ns.packets_sent);
	put_long(&e, "packets_received", (long long)ns.packets_received);
	put_long(&e, "watch_count", processors_watch_count());
	put_long(&e, "min_latency", atomic_load(&s->lat_min_us) / 1000);
	put_long(&e, "max_file_descriptor_count", (long long)rl.rlim_cur);
	put_long(&e, "approximate_data_size", atomic_load(&tree->data_bytes));
	put_long(&e, "open_file_descriptor_count", count_fds());
	put_long(&e, "local_sessions", 0);
	put_long(&e, "uptime", wall_ms() - srv->started_ms);
	put_long(&e, "max_latency", atomic_load(&s->lat_max_us) / 1000);
	if (srv->quorum)
		quorum_values(&e, srv);
	put_long(&e, "read_requests", atomic_load(&s->reads));
	put_long(&e, "write_requests", atomic_load(&s->writes));
	put_double(&e, "connection_drop_probability", 0.0);   /* zkd never sheds connections at random */
	put_long(&e, "bytes_received_count", (long long)ns.bytes_received);
	put_long(&e, "response_bytes", (long long)ns.bytes_sent);
	long last, min, max;
	processors_response_sizes(st, &last, &min, &max);
	put_long(&e, "last_client_response_size", last);
	put_long(&e, "max_client_response_size", max);
	put_long(&e, "min_client_response_size", min);
	metrics_each(registry_value, &e);
	return true;
}
