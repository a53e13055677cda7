/*
 * fourlw.c - ZooKeeper's four-letter words on the client port.
 *
 * A connection whose first four bytes spell a command gets a text answer
 * and is closed, as in ZooKeeper. The texts follow ZooKeeper 3.8's
 * (FourLetterCommands and the admin Commands behind mntr), since monitoring
 * scripts parse them. A command left out of 4lw.commands.whitelist is
 * answered with ZooKeeper's refusal sentence.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <dirent.h>
#include <unistd.h>

#include <urcu.h>

#include "election/election.h"
#include "net/log.h"
#include "processors/session.h"
#include "server.h"

struct out {
	char *buf;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void say(struct out *o, const char *fmt, ...)
{
	if (o->len + 1 >= o->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
}

static const char *mode(struct zkd_server *srv)
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

static void latency_line(struct out *o, struct zkd_server *srv)
{
	struct zk_stats *s = &srv->st.stats;
	long n = atomic_load(&s->lat_count);
	say(o, "Latency min/avg/max: %ld/%.4f/%ld\n", atomic_load(&s->lat_min_us) / 1000,
	    n ? (double)atomic_load(&s->lat_total_us) / (double)n / 1000.0 : 0.0,
	    atomic_load(&s->lat_max_us) / 1000);
}

/* ZooKeeper's answer while it has no leader (or no quorum) to serve with */
static bool not_serving(struct out *o, struct zkd_server *srv)
{
	if (atomic_load(&srv->st.serving))
		return false;
	say(o, "This ZooKeeper instance is not currently serving requests\n");
	return true;
}

static void srvr(struct out *o, struct zkd_server *srv, bool with_clients)
{
	if (not_serving(o, srv))
		return;
	struct net_stats ns;
	net_get_stats(&ns);
	say(o, "Zookeeper version: %s, built on %s\n", ZKD_VERSION, __DATE__);
	if (with_clients) {
		say(o, "Clients:\n");
		o->len += processors_describe_conns(o->buf + o->len, o->cap - o->len);
		say(o, "\n");
	}
	latency_line(o, srv);
	say(o, "Received: %" PRIu64 "\n", ns.packets_received);
	say(o, "Sent: %" PRIu64 "\n", ns.packets_sent);
	say(o, "Connections: %" PRIu64 "\n", ns.connections);
	say(o, "Outstanding: %ld\n", atomic_load(&srv->st.stats.outstanding));
	say(o, "Zxid: 0x%llx\n", (unsigned long long)atomic_load(&srv->st.last_applied));
	say(o, "Mode: %s\n", mode(srv));
	say(o, "Node count: %ld\n", atomic_load(&srv->st.tree->node_count));
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

struct eph_count { long n; };

static void count_ephemeral(void *arg, const struct znode *n)
{
	int64_t owner = tree_ver(n)->stat.ephemeral_owner;
	if (owner != 0 && owner != ZK_CONTAINER_OWNER && (owner & ZK_TTL_MASK) != ZK_TTL_PREFIX)
		((struct eph_count *)arg)->n++;
}

/* A ZooKeeper summary metric as mntr prints it: avg, min, max, cnt, sum
 * (times in ms: `scale` turns our µs into them). */
static void summary(struct out *o, const char *name, atomic_long *cnt, atomic_long *sum,
		    atomic_long *min, atomic_long *max, double scale)
{
	long n = atomic_load(cnt), total = atomic_load(sum);
	say(o, "zk_avg_%s\t%.4f\n", name, n ? (double)total / (double)n / scale : 0.0);
	say(o, "zk_min_%s\t%.0f\n", name, (double)atomic_load(min) / scale);
	say(o, "zk_max_%s\t%.0f\n", name, (double)atomic_load(max) / scale);
	say(o, "zk_cnt_%s\t%ld\n", name, n);
	say(o, "zk_sum_%s\t%.0f\n", name, (double)total / scale);
}

static void mntr(struct out *o, struct zkd_server *srv)
{
	if (not_serving(o, srv))
		return;
	struct net_stats ns;
	net_get_stats(&ns);
	struct zk_stats *s = &srv->st.stats;
	long n = atomic_load(&s->lat_count);
	struct rlimit rl = { 0 };
	getrlimit(RLIMIT_NOFILE, &rl);
	struct eph_count eph = { 0 };
	tree_foreach(srv->st.tree, count_ephemeral, &eph);
	say(o, "zk_version\t%s, built on %s\n", ZKD_VERSION, __DATE__);
	say(o, "zk_server_state\t%s\n", mode(srv));
	if (srv->quorum) {
		struct quorum_stats q;
		quorum_get_stats(srv->quorum, &q);
		say(o, "zk_peer_state\t%s\n", q.peer_state);
		if (quorum_state(srv->quorum) == PEER_LEADING) {
			say(o, "zk_learners\t%d\n", q.learners);
			say(o, "zk_followers\t%d\n", q.learners);
			say(o, "zk_synced_followers\t%d\n", q.synced_followers);
			say(o, "zk_synced_non_voting_followers\t0\n");
			say(o, "zk_synced_observers\t%d\n", q.synced_observers);
			say(o, "zk_pending_syncs\t%d\n", q.pending_syncs);
			say(o, "zk_last_proposal_size\t%ld\n", q.last_proposal_size);
			say(o, "zk_max_proposal_size\t%ld\n", q.max_proposal_size);
			say(o, "zk_min_proposal_size\t%ld\n", q.min_proposal_size);
		}
	}
	say(o, "zk_avg_latency\t%.4f\n", n ? (double)atomic_load(&s->lat_total_us) / (double)n / 1000.0 : 0.0);
	say(o, "zk_max_latency\t%ld\n", atomic_load(&s->lat_max_us) / 1000);
	say(o, "zk_min_latency\t%ld\n", atomic_load(&s->lat_min_us) / 1000);
	say(o, "zk_packets_received\t%" PRIu64 "\n", ns.packets_received);
	say(o, "zk_packets_sent\t%" PRIu64 "\n", ns.packets_sent);
	say(o, "zk_num_alive_connections\t%" PRIu64 "\n", ns.connections);
	say(o, "zk_outstanding_requests\t%ld\n", atomic_load(&s->outstanding));
	say(o, "zk_znode_count\t%ld\n", atomic_load(&srv->st.tree->node_count));
	say(o, "zk_watch_count\t%ld\n", processors_watch_count());
	say(o, "zk_ephemerals_count\t%ld\n", eph.n);
	say(o, "zk_approximate_data_size\t%ld\n", atomic_load(&srv->st.tree->data_bytes));
	say(o, "zk_open_file_descriptor_count\t%ld\n", count_fds());
	say(o, "zk_max_file_descriptor_count\t%llu\n", (unsigned long long)rl.rlim_cur);
	say(o, "zk_global_sessions\t%ld\n", atomic_load(&srv->st.sessions->count));
	say(o, "zk_local_sessions\t0\n");
	say(o, "zk_uptime\t%" PRId64 "\n", wall_ms() - srv->started_ms);
	say(o, "zk_last_zxid\t0x%llx\n", (unsigned long long)atomic_load(&srv->st.last_applied));
	summary(o, "fsynctime", &s->fsync_count, &s->fsync_total_us, &s->fsync_min_us, &s->fsync_max_us, 1000.0);
	summary(o, "sync_processor_batch_size", &s->batch_count, &s->batch_total, &s->batch_min,
		&s->batch_max, 1.0);
	say(o, "zk_read_requests\t%ld\n", atomic_load(&s->reads));
	say(o, "zk_write_requests\t%ld\n", atomic_load(&s->writes));
}

static void envi(struct out *o, struct zkd_server *srv)
{
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	char cwd[1024] = "";
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = '\0';
	say(o, "Environment:\n");
	say(o, "zookeeper.version=%s, built on %s\n", ZKD_VERSION, __DATE__);
	say(o, "host.name=%s\n", host);
	say(o, "os.name=Linux\n");
	say(o, "user.dir=%s\n", cwd);
	say(o, "zkd.pid=%ld\n", (long)getpid());
	say(o, "zkd.config=%s\n", srv->cfg.path);
}

static size_t answer(struct zkd_server *srv, const char *cmd, char *buf, size_t cap);

/* Inside one read-side section: an ensemble member may replace the tree
 * and session table (SNAP, TRUNC) and free the old ones after a grace
 * period; srvr, mntr and their kin read both. */
size_t fourlw_answer(struct zkd_server *srv, const char *cmd, char *buf, size_t cap)
{
	rcu_read_lock();
	size_t n = answer(srv, cmd, buf, cap);
	rcu_read_unlock();
	return n;
}

static size_t answer(struct zkd_server *srv, const char *cmd, char *buf, size_t cap)
{
	struct out o = { buf, 0, cap };
	if (cap)
		buf[0] = '\0';
	if (!config_4lw_allowed(&srv->cfg, cmd)) {
		say(&o, "%s is not executed because it is not in the whitelist.\n", cmd);
		return o.len;
	}
	if (!strcmp(cmd, "ruok"))
		say(&o, "imok");
	else if (!strcmp(cmd, "srvr"))
		srvr(&o, srv, false);
	else if (!strcmp(cmd, "stat"))
		srvr(&o, srv, true);
	else if (!strcmp(cmd, "mntr"))
		mntr(&o, srv);
	else if (!strcmp(cmd, "conf"))
		o.len += config_describe(&srv->cfg, o.buf, o.cap);
	else if (!strcmp(cmd, "cons")) {
		o.len += processors_describe_conns(o.buf, o.cap);
		say(&o, "\n");
	} else if (!strcmp(cmd, "envi"))
		envi(&o, srv);
	else if (!strcmp(cmd, "wchs") || !strcmp(cmd, "wchc") || !strcmp(cmd, "wchp"))
		o.len += processors_describe_watches(o.buf + o.len, o.cap - o.len, cmd[3]);
	else if (!strcmp(cmd, "isro"))
		say(&o, atomic_load(&srv->st.read_only) && !atomic_load(&srv->st.serving) ? "ro" : "rw");
	else if (!strcmp(cmd, "srst")) {
		processors_reset_stats(&srv->st);
		say(&o, "Server stats reset.\n");
	} else
		say(&o, "%s is not supported by zkd yet.\n", cmd);
	return o.len;
}

void fourlw_handle(void *ctx, struct net_conn *c, const char cmd4[4])
{
	struct zkd_server *srv = ctx;
	char cmd[5];
	memcpy(cmd, cmd4, 4);
	cmd[4] = '\0';
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	if (buf) {
		size_t n = fourlw_answer(srv, cmd, buf, cap);
		net_conn_send(c, buf, n);
		free(buf);
	}
	log_info("client %s: four-letter word '%s'", net_conn_peer(c), cmd);
	net_conn_close(c, "four-letter word answered");
}
