/*
 * main.c - zkd's entry point: read zoo.cfg, build the state, start the
 * threads, wait for SIGINT/SIGTERM, stop in reverse order.
 *
 *   zkd [-Dkey=value ...] conf/zoo.cfg
 *
 * like `zkServer.sh start-foreground`: logs go to stderr, one line each.
 * -D settings are ZooKeeper's Java system properties (jute.maxbuffer, ...)
 * and win over the file.
 *
 * Start order: tree and sessions, then the pipeline (Final first, so every
 * stage has somewhere to send), the session tracker, and last the network,
 * so no client can reach a half-built server. Signals are blocked in every
 * thread and taken by this one with sigwait.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <urcu.h>

#include "net/log.h"
#include "processors/session.h"
#include "server.h"
#include "reaper.h"
#include "session_tracker.h"

static struct zkd_server server;

static void usage(void)
{
	fprintf(stderr, "usage: zkd [-Dkey=value ...] <zoo.cfg>\n"
			"  Starts a ZooKeeper-compatible server in the foreground.\n");
}

static int parse_args(int argc, char **argv, struct zkd_config *cfg)
{
	const char *path = NULL;
	char err[512];
	config_defaults(cfg);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage();
			exit(0);
		}
		if (!strncmp(argv[i], "-D", 2))
			continue;
		if (path) {
			usage();
			return -1;
		}
		path = argv[i];
	}
	if (!path) {
		usage();
		return -1;
	}
	if (config_read(cfg, path, err, sizeof err) != 0) {
		log_error("%s", err);
		return -1;
	}
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "-D", 2) != 0)
			continue;
		char *kv = strdup(argv[i] + 2);
		char *eq = kv ? strchr(kv, '=') : NULL;
		if (!eq) {
			log_error("%s: expected -Dkey=value", argv[i]);
			free(kv);
			return -1;
		}
		*eq = '\0';
		int rc = config_set(cfg, kv, eq + 1, err, sizeof err);
		free(kv);
		if (rc != 0) {
			log_error("%s", err);
			return -1;
		}
	}
	if (config_finish(cfg, err, sizeof err) != 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

static int make_dir(const char *path)
{
	char buf[1100];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void limits_from_config(const struct zkd_config *cfg, struct zk_limits *l)
{
	l->tick_time = cfg->tick_time;
	l->min_session_timeout = cfg->min_session_timeout;
	l->max_session_timeout = cfg->max_session_timeout;
	l->max_buffer = (uint32_t)cfg->jute_maxbuffer;
	l->global_outstanding_limit = cfg->global_outstanding_limit;
	/* ZooKeeper's standalone server makes session ids as server 1 */
	l->myid = cfg->n_servers > 1 ? cfg->myid : 1;
	l->extended_types = cfg->extended_types_enabled;
	snprintf(l->super_digest, sizeof l->super_digest, "%s", cfg->super_digest);
}

static void on_4lw(void *ctx, struct net_conn *c, const char cmd[4])
{
	struct zk_state *st = ctx;
	fourlw_handle(caa_container_of(st, struct zkd_server, st), c, cmd);
}

static int start(struct zkd_server *srv)
{
	struct zkd_config *cfg = &srv->cfg;
	struct zk_state *st = &srv->st;
	char err[512];
	if (make_dir(cfg->data_dir) != 0) {
		log_error("cannot create dataDir %s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	srv->started_ms = wall_ms();
	limits_from_config(cfg, &st->limits);
	st->tree = tree_new();
	st->sessions = sessions_new(st->limits.myid);
	if (!st->tree || !st->sessions) {
		log_error("out of memory building the data tree");
		return -1;
	}
	rcu_read_lock();
	tree_init_system_nodes(st->tree);
	rcu_read_unlock();
	atomic_store(&st->last_applied, 0);
	st->on_session_created = tracker_add;
	if (processors_start(st) != 0 || tracker_start(st) != 0 ||
	    reaper_start(st, cfg->container_check_interval_ms, cfg->container_max_per_minute) != 0)
		return -1;

	struct net_callbacks cb;
	processors_net_callbacks(st, &cb);
	cb.on_4lw = on_4lw;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct net_config nc = {
		.bind_addr = cfg->client_port_address,
		.port = cfg->client_port,
		.n_threads = ncpu > 0 ? (int)ncpu : 1,
		.max_frame = (uint32_t)cfg->jute_maxbuffer,
		.max_cnxns_per_ip = cfg->max_client_cnxns,
	};
	if (net_start(&nc, &cb, err, sizeof err) != 0) {
		log_error("cannot serve clients: %s", err);
		return -1;
	}
	log_info("zkd %s serving %s:%d (standalone), dataDir %s, tickTime %d, session timeouts %d..%d ms",
		 ZKD_VERSION, cfg->client_port_address[0] ? cfg->client_port_address : "0.0.0.0",
		 net_bound_port(), cfg->data_dir, cfg->tick_time, cfg->min_session_timeout,
		 cfg->max_session_timeout);
	return 0;
}

static void stop(struct zkd_server *srv)
{
	reaper_stop();
	tracker_stop();
	processors_stop();
	net_stop();
	processors_cleanup();
	rcu_barrier();
	sessions_free(srv->st.sessions);
	tree_free(srv->st.tree);
}

int main(int argc, char **argv)
{
	log_thread_name("zkd-main");
	const char *lvl = getenv("ZKD_LOG_LEVEL");
	if (lvl && !strcmp(lvl, "debug"))
		log_set_level(LOG_DEBUG);
	if (parse_args(argc, argv, &server.cfg) != 0)
		return 2;

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* inherited by every thread */
	signal(SIGPIPE, SIG_IGN);

	rcu_register_thread();
	if (start(&server) != 0) {
		rcu_unregister_thread();
		return 1;
	}
	int sig = 0;
	sigwait(&set, &sig);
	log_info("signal %d: shutting down", sig);
	stop(&server);
	rcu_unregister_thread();
	return 0;
}
