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
 * thread and taken by this one with sigwait: SIGINT and SIGTERM stop the
 * server; SIGHUP reloads the TLS key, certificates and CAs from their files
 * (new TLS connections get them; sessions and connections stay).
 *
 * A clean stop (stop()) loses no session: clients are no longer read,
 * the requests already inside the pipeline finish (logged, applied,
 * answered), then the connections close without closeSession txns, so the
 * next start recovers every session from the log and a client that comes
 * back within its timeout finds its session and its ephemerals.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <urcu.h>

#include "election/election.h"
#include "net/log.h"
#include "net/tsan.h"
#include "net/metrics.h"
#include "processors/session.h"
#include "reaper.h"
#include "server.h"
#include "session_tracker.h"
#include "storage/recovery.h"
#include "storage/txnlog.h"

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
	log_info("Reading configuration from: %s", path);
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

/* ---- start-up lines -------------------------------------------------------------
 *
 * Operators grep ZooKeeper's logs for a few fixed phrases; zkd logs the same
 * phrases (in its own line format) for the same events. */

/* host:port as ZooKeeper's NetUtils.formatInetAddr writes a configured
 * address ("0.0.0.0:2181", "[::1]:2181"). */
static const char *format_addr(const char *host, int port, char *buf, size_t cap)
{
	if (!host || !*host)
		host = "0.0.0.0";
	snprintf(buf, cap, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	return buf;
}

/* As Java's InetSocketAddress.toString, which ZooKeeper's "binding to port"
 * line prints: "0.0.0.0/0.0.0.0:2181", "/127.0.0.1:2181",
 * "localhost/127.0.0.1:2181". */
static const char *format_bind(const char *host, int port, char *buf, size_t cap)
{
	unsigned char bin[16];
	if (!host || !*host) {
		snprintf(buf, cap, "0.0.0.0/0.0.0.0:%d", port);
	} else if (inet_pton(AF_INET, host, bin) == 1) {
		snprintf(buf, cap, "/%s:%d", host, port);
	} else if (inet_pton(AF_INET6, host, bin) == 1) {
		snprintf(buf, cap, "/[%s]:%d", host, port);
	} else {
		char ip[INET6_ADDRSTRLEN] = "";
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
		if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai) {
			const void *a = ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
								 : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
			inet_ntop(ai->ai_family, a, ip, sizeof ip);
		}
		if (ai)
			freeaddrinfo(ai);
		snprintf(buf, cap, "%s/%s:%d", host, ip, port);
	}
	return buf;
}

/* QuorumPeerConfig's and ZooKeeperServer's lines, once the file is read. */
static void log_config(const struct zkd_config *cfg)
{
	char a[600];
	if (cfg->client_port)
		log_info("clientPortAddress is %s", format_addr(cfg->client_port_address, cfg->client_port, a, sizeof a));
	else
		log_info("clientPort is not set");
	if (cfg->secure_client_port)
		log_info("secureClientPortAddress is %s",
			 format_addr(cfg->secure_client_port_address, cfg->secure_client_port, a, sizeof a));
	else
		log_info("secureClientPort is not set");
	if (config_is_distributed(cfg))
		log_info("Starting quorum peer, myid=%lld", (long long)cfg->myid);
	else
		log_info("Either no config or no quorum defined in config, running in standalone mode");

	/* ZooKeeper's Environment.list, with what stands for the JVM here */
	struct utsname u;
	if (uname(&u) != 0)
		memset(&u, 0, sizeof u);
	char host[256] = "", cwd[1024] = "";
	gethostname(host, sizeof host - 1);
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = '\0';
	struct passwd *pw = getpwuid(geteuid());
	log_info("Server environment:zookeeper.version=%s, built on %s %s", ZKD_VERSION, __DATE__, __TIME__);
	log_info("Server environment:host.name=%s", host);
#if defined(__GNUC__) && !defined(__clang__)
	log_info("Server environment:zkd.compiler=gcc %s", __VERSION__);
#elif defined(__VERSION__)
	log_info("Server environment:zkd.compiler=%s", __VERSION__);
#endif
	log_info("Server environment:zkd.openssl=%s", OpenSSL_version(OPENSSL_VERSION));
	log_info("Server environment:zkd.config=%s", cfg->path);
	log_info("Server environment:zkd.pid=%ld", (long)getpid());
	log_info("Server environment:zkd.cpus=%ld", sysconf(_SC_NPROCESSORS_ONLN));
	log_info("Server environment:os.name=%s", u.sysname);
	log_info("Server environment:os.arch=%s", u.machine);
	log_info("Server environment:os.version=%s", u.release);
	log_info("Server environment:user.name=%s", pw ? pw->pw_name : "?");
	log_info("Server environment:user.home=%s", pw ? pw->pw_dir : "?");
	log_info("Server environment:user.dir=%s", cwd);

	log_info("minSessionTimeout set to %d ms", cfg->min_session_timeout);
	log_info("maxSessionTimeout set to %d ms", cfg->max_session_timeout);
	/* ZooKeeper's datadir is where the txn logs go, its snapdir dataDir */
	log_info("Created server with tickTime %d ms minSessionTimeout %d ms maxSessionTimeout %d ms "
		 "clientPortListenBacklog %d datadir %s/version-2 snapdir %s/version-2",
		 cfg->tick_time, cfg->min_session_timeout, cfg->max_session_timeout, cfg->client_port_listen_backlog,
		 cfg->data_log_dir[0] ? cfg->data_log_dir : cfg->data_dir, cfg->data_dir);
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
	snprintf(l->x509_super_user, sizeof l->x509_super_user, "%s", cfg->x509_super_user);
}

/* zoo.cfg's ssl.* settings as net/ takes them (pointers into cfg). */
static void tls_from_config(const struct zkd_config *cfg, struct net_tls_config *t)
{
	memset(t, 0, sizeof *t);
	t->key_store = cfg->ssl_keystore_location;
	t->key_store_type = cfg->ssl_keystore_type;
	t->key_store_password = cfg->ssl_keystore_password;
	t->key_store_password_path = cfg->ssl_keystore_password_path;
	t->cert_file = cfg->ssl_cert_file;
	t->key_file = cfg->ssl_key_file;
	t->trust_store = cfg->ssl_truststore_location;
	t->trust_store_type = cfg->ssl_truststore_type;
	t->trust_store_password = cfg->ssl_truststore_password;
	t->trust_store_password_path = cfg->ssl_truststore_password_path;
	t->ca_file = cfg->ssl_ca_file;
	/* checked by config_finish: "", none, want or need */
	t->client_auth = !strcasecmp(cfg->ssl_client_auth, "none") ? NET_TLS_AUTH_NONE :
			 !strcasecmp(cfg->ssl_client_auth, "want") ? NET_TLS_AUTH_WANT : NET_TLS_AUTH_NEED;
	t->protocol = cfg->ssl_protocol;
	t->enabled_protocols = cfg->ssl_enabled_protocols;
	t->ciphersuites = cfg->ssl_ciphersuites;
}

static void storage_from_config(const struct zkd_config *cfg, struct zk_storage *s)
{
	snprintf(s->data_dir, sizeof s->data_dir, "%s", cfg->data_dir);
	snprintf(s->data_log_dir, sizeof s->data_log_dir, "%s", cfg->data_log_dir);
	s->snap_count = cfg->snap_count;
	s->purge_interval_h = cfg->autopurge_purge_interval;
	s->snap_retain = cfg->autopurge_snap_retain_count;
	s->fsync_warn_ms = cfg->fsync_warning_threshold_ms;
	s->log_prealloc = (int64_t)cfg->pre_alloc_size_kb * 1024;
	s->log_force_sync = cfg->force_sync;
}

/* Sessions found on disk, kept until the tracker runs (main thread only). */
static struct {
	int64_t *ids;
	size_t n, cap;
	struct session_table *table;
} restored;

static void session_restored(void *arg, int64_t id, int32_t timeout)
{
	(void)arg;
	sessions_add(restored.table, id, timeout);
	if (restored.n == restored.cap) {
		size_t cap = restored.cap ? restored.cap * 2 : 64;
		int64_t *v = realloc(restored.ids, cap * sizeof *v);
		if (!v)
			return;
		restored.ids = v;
		restored.cap = cap;
	}
	restored.ids[restored.n++] = id;
}

static void session_closed(void *arg, int64_t id)
{
	(void)arg;
	rcu_read_lock();
	struct zsession *s = sessions_find(restored.table, id);
	zkd_rcu_read_unlock();
	if (s)
		sessions_remove(restored.table, s);
	/* a closed id left in `restored` is skipped by the tracker (not found) */
}

/* Newest valid snapshot + the logs after it: the tree, the sessions and
 * the last zxid, or a refusal naming the file and offset. */
/* ZooKeeper refills its digest log (the `hash` command) while replaying */
static void txn_replayed(void *arg, int64_t zxid, uint64_t digest)
{
	(void)arg;
	processors_note_digest(zxid, digest);
}

static int recover(struct zk_state *st)
{
	char err[1024];
	restored.table = st->sessions;
	struct recovery_cb cb = { session_restored, session_closed, NULL, txn_replayed };
	struct recovery_result res;
	int64_t t0 = mono_ms();
	if (recovery_run(st->storage.data_dir, st->storage.data_log_dir, false, &cb, &res, err, sizeof err) != 0) {
		log_error("cannot recover the data in %s: %s", st->storage.data_dir, err);
		return -1;
	}
	/* ZooKeeper's ZKDatabase line, snapshot and log replay together */
	long long took = (long long)(mono_ms() - t0);
	log_info("Snapshot loaded in %lld ms, highest zxid is 0x%llx", took, (unsigned long long)res.last_zxid);
	metric_observe(metrics_summary("dbinittime", "Time to load the data at start (ms)", METRIC_BASIC, METRIC_UNIT),
		       took);
	metric_observe(metrics_summary("startup_txns_loaded", "Txns replayed from the log at start", METRIC_BASIC,
				       METRIC_UNIT),
		       res.txns);
	st->tree = res.tree;
	rcu_read_lock();
	tree_init_system_nodes(st->tree);   /* a snapshot of another server may lack them */
	zkd_rcu_read_unlock();
	atomic_store(&st->last_applied, res.last_zxid);
	log_info("recovered %s: snapshot 0x%llx + %ld txns, last zxid 0x%llx, %ld nodes, %zu sessions%s",
		 st->storage.data_dir, (unsigned long long)res.snap_zxid, res.txns,
		 (unsigned long long)res.last_zxid, atomic_load(&st->tree->node_count), restored.n,
		 res.fresh ? " (new dataDir)" : "");
	return 0;
}

static void quorum_from_config(const struct zkd_config *cfg, struct quorum_config *q)
{
	memset(q, 0, sizeof *q);
	q->myid = cfg->myid;
	for (int i = 0; i < cfg->n_servers && i < QUORUM_MAX_MEMBERS; i++) {
		const struct zkd_cfg_server *s = &cfg->servers[i];
		struct quorum_member *m = &q->members[q->n++];
		m->sid = s->id;
		snprintf(m->host, sizeof m->host, "%s", s->host);
		m->quorum_port = s->quorum_port;
		m->election_port = s->election_port;
		m->observer = s->observer || (s->id == cfg->myid && !strcasecmp(cfg->peer_type, "observer"));
		snprintf(m->client_host, sizeof m->client_host, "%s", s->client_host);
		m->client_port = s->client_port;
	}
	q->tick_time = cfg->tick_time;
	q->init_limit = cfg->init_limit;
	q->sync_limit = cfg->sync_limit;
	q->listen_on_all_ips = cfg->quorum_listen_on_all_ips;
	q->election_bind_retries = cfg->election_port_bind_retry;
	q->finalize_wait_ms = cfg->fle_min_notification_interval;
	q->max_notification_interval_ms = cfg->fle_max_notification_interval;
	q->read_only_enabled = cfg->readonly_mode_enabled;
	q->ssl_quorum = cfg->ssl_quorum;
	q->port_unification = cfg->port_unification;
	q->reload_cert_files = cfg->ssl_quorum_reload_cert_files;
	q->ssl_hostname_verification = cfg->ssl_q_hostname_verification;
	struct net_tls_config *t = &q->tls;   /* pointers into cfg, which lives as long as zkd */
	t->key_prefix = "ssl.quorum";
	t->key_store = cfg->ssl_q_keystore_location;
	t->key_store_type = cfg->ssl_q_keystore_type;
	t->key_store_password = cfg->ssl_q_keystore_password;
	t->key_store_password_path = cfg->ssl_q_keystore_password_path;
	t->cert_file = cfg->ssl_q_cert_file;
	t->key_file = cfg->ssl_q_key_file;
	t->trust_store = cfg->ssl_q_truststore_location;
	t->trust_store_type = cfg->ssl_q_truststore_type;
	t->trust_store_password = cfg->ssl_q_truststore_password;
	t->trust_store_password_path = cfg->ssl_q_truststore_password_path;
	t->ca_file = cfg->ssl_q_ca_file;
	t->client_auth = !strcasecmp(cfg->ssl_q_client_auth, "none") ? NET_TLS_AUTH_NONE :
			 !strcasecmp(cfg->ssl_q_client_auth, "want") ? NET_TLS_AUTH_WANT : NET_TLS_AUTH_NEED;
	t->protocol = cfg->ssl_q_protocol;
	t->enabled_protocols = cfg->ssl_q_enabled_protocols;
	t->ciphersuites = cfg->ssl_q_ciphersuites;
}

static void on_4lw(void *ctx, struct net_conn *c, const char cmd[4], const uint8_t *rest, size_t rest_len)
{
	struct zk_state *st = ctx;
	fourlw_handle(caa_container_of(st, struct zkd_server, st), c, cmd, rest, rest_len);
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
	storage_from_config(cfg, &st->storage);
	st->sessions = sessions_new(st->limits.myid);
	if (!st->sessions) {
		log_error("out of memory building the session table");
		return -1;
	}
	if (recover(st) != 0)
		return -1;
	st->storage.log = txnlog_open(st->storage.data_log_dir, (int64_t)cfg->pre_alloc_size_kb * 1024,
				      cfg->force_sync, err, sizeof err);
	if (!st->storage.log) {
		log_error("cannot open the txn log in %s: %s", st->storage.data_log_dir, err);
		return -1;
	}
	st->on_session_created = tracker_add;
	quorum_metrics_register();   /* ZooKeeper shows them standalone too, at 0 */
	bool ensemble = config_is_distributed(cfg);
	if (ensemble) {
		/* the peer thread runs the pipeline in the role it is elected to
		 * and serves clients only while it has a leader */
		struct quorum_config qc;
		quorum_from_config(cfg, &qc);
		log_info("myid %lld of an ensemble of %d; quorum port %d, election port %d",
			 (long long)cfg->myid, qc.n, quorum_member(&qc, cfg->myid)->quorum_port,
			 quorum_member(&qc, cfg->myid)->election_port);
		srv->quorum = quorum_start(&qc, st, tracker_add, err, sizeof err);
		if (!srv->quorum) {
			log_error("cannot join the ensemble: %s", err);
			return -1;
		}
	} else {
		atomic_store(&st->serving, true);
		if (processors_start(st) != 0)
			return -1;
	}
	if (tracker_start(st) != 0 ||
	    reaper_start(st, cfg->container_check_interval_ms, cfg->container_max_per_minute) != 0)
		return -1;
	/* restored sessions expire like any other unless their clients return */
	for (size_t i = 0; i < restored.n; i++)
		tracker_add(NULL, restored.ids[i]);
	free(restored.ids);
	restored.ids = NULL;
	if (prometheus_start(srv, err, sizeof err) != 0) {
		log_error("cannot serve Prometheus metrics on port %d: %s", cfg->metrics_port, err);
		return -1;
	}

	struct net_callbacks cb;
	processors_net_callbacks(st, &cb);
	cb.on_4lw = on_4lw;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct net_tls_config tls;
	tls_from_config(cfg, &tls);
	struct net_config nc = {
		.bind_addr = cfg->client_port_address,
		.port = cfg->client_port ? cfg->client_port : -1,  /* TLS only without one */
		.secure_bind_addr = cfg->secure_client_port_address,
		.secure_port = cfg->secure_client_port ? cfg->secure_client_port : -1,
		.tls = cfg->secure_client_port || cfg->client_port_unification ? &tls : NULL,
		.unify_client_port = cfg->client_port_unification,
		.n_threads = ncpu > 0 ? (int)ncpu : 1,
		.max_frame = (uint32_t)cfg->jute_maxbuffer,
		.max_cnxns_per_ip = cfg->max_client_cnxns,
		.listen_backlog = cfg->client_port_listen_backlog,   /* <= 0: net/'s default */
		.sessionless_timeout_ms = cfg->sessionless_cnxn_timeout_ms,
	};
	char a[600];
	if (cfg->client_port)
		log_info("binding to port %s", format_bind(cfg->client_port_address, cfg->client_port, a, sizeof a));
	if (cfg->secure_client_port)
		log_info("binding to port %s",
			 format_bind(cfg->secure_client_port_address, cfg->secure_client_port, a, sizeof a));
	if (net_start(&nc, &cb, err, sizeof err) != 0) {
		log_error("cannot serve clients: %s", err);
		return -1;
	}
	if (admin_start(srv, err, sizeof err) != 0)
		log_warn("Problem starting AdminServer on port %d, going on without it: %s", cfg->admin_port, err);
	char where[600] = "";
	if (net_bound_port() >= 0)
		snprintf(where, sizeof where, "%s:%d", cfg->client_port_address[0] ? cfg->client_port_address : "0.0.0.0",
			 net_bound_port());
	if (net_bound_secure_port() >= 0)
		snprintf(where + strlen(where), sizeof where - strlen(where), "%sTLS on %s:%d", where[0] ? " and " : "",
			 cfg->secure_client_port_address[0] ? cfg->secure_client_port_address : "0.0.0.0",
			 net_bound_secure_port());
	log_info("zkd %s serving %s (%s), dataDir %s, tickTime %d, session timeouts %d..%d ms",
		 ZKD_VERSION, where, ensemble ? "ensemble member" : "standalone", cfg->data_dir, cfg->tick_time,
		 cfg->min_session_timeout, cfg->max_session_timeout);
	return 0;
}

/* How long the I/O threads get to stop reading, and the pipeline to finish
 * what it holds, at shutdown. Both are normally done in milliseconds; the
 * bounds matter only without a quorum (a follower's forwarded writes wait
 * for a leader), and stay below the stop timeouts of init systems and of
 * our test harnesses (5 s and more), so a stop is never a kill. */
#define QUIESCE_MS 2000
#define DRAIN_MS   3000

/* The clean stop (SIGTERM, SIGINT): the threads in the reverse order of
 * start(), the network in two steps around the drain. One line per step.
 * Returns the exit status: 0, or 1 if the txn log could not be synced. */
static int stop(struct zkd_server *srv, int sig)
{
	struct zk_state *st = &srv->st;
	int64_t t0 = mono_ms();
	log_info("shutting down on signal %d (%s)", sig, strsignal(sig));
	net_quiesce(QUIESCE_MS);
	prometheus_stop();
	admin_stop();
	int64_t t_quiet = mono_ms();
	long before = atomic_load(&st->stats.outstanding);
	log_info("shutdown: stopped accepting connections and reading requests (%ld request(s) in flight)",
		 before > 0 ? before : 0);
	reaper_stop();
	tracker_stop();
	log_info("shutdown: session tracker and container reaper stopped (no session expires from here on)");
	long left = processors_drain(st, DRAIN_MS);
	if (left)
		log_warn("shutdown: %ld request(s) still in the pipeline after %d ms are dropped (none of them "
			 "was acknowledged)", left, DRAIN_MS);
	else
		log_info("shutdown: pipeline drained %lld ms after reading stopped (requests in flight finished "
			 "and answered)", (long long)(mono_ms() - t_quiet));
	struct net_stats ns;    /* before an ensemble's teardown closes its clients */
	net_get_stats(&ns);
	if (srv->quorum) {
		quorum_stop(srv->quorum);
		srv->quorum = NULL;
		log_info("shutdown: left the ensemble");
	}
	processors_stop();
	log_info("shutdown: request processors stopped");
	net_stop();
	log_info("shutdown: %llu client connection(s) closed; their sessions stay open for their clients "
		 "to resume after a restart", (unsigned long long)ns.connections);
	processors_cleanup();
	int rc = 0;
	struct txnlog *l = st->storage.log;
	if (l && txnlog_failed(l)) {
		log_error("shutdown: the txn log failed earlier: %s", txnlog_error(l));
		rc = 1;
	}
	if (txnlog_close(l) != 0)
		rc = 1;
	st->storage.log = NULL;
	if (!rc)
		log_info("shutdown: txn log synced and closed");
	rcu_barrier();
	sessions_free(st->sessions);
	tree_free(st->tree);
	log_info("shutdown: done in %lld ms; exiting%s", (long long)(mono_ms() - t0), rc ? " with status 1" : " normally");
	return rc;
}

int main(int argc, char **argv)
{
	log_thread_name("zkd-main");
	/* ZKD_LOG_LEVEL=debug|info|warn|error: lines below it are dropped */
	const char *lvl = getenv("ZKD_LOG_LEVEL");
	if (lvl && *lvl) {
		static const char *names[] = { "debug", "info", "warn", "error" };
		int i = 0;
		while (i < 4 && strcasecmp(lvl, names[i]) != 0)
			i++;
		if (i < 4)
			log_set_level((enum log_level)i);
		else
			log_warn("ZKD_LOG_LEVEL=%s: not one of debug, info, warn, error; logging at info", lvl);
	}
	if (parse_args(argc, argv, &server.cfg) != 0)
		return 2;
	log_config(&server.cfg);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* inherited by every thread */
	/* A signal ignored when it arrives is discarded, never seen by
	 * sigwait: nohup (zkdctl start) ignores SIGHUP, a shell's background
	 * job SIGINT. Blocked, the default action never runs. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);

	rcu_register_thread();
	if (start(&server) != 0) {
		rcu_unregister_thread();
		return 1;
	}
	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		char err[512];
		if (!server.cfg.secure_client_port)
			log_info("SIGHUP: no secureClientPort, nothing to reload");
		else if (net_tls_reload(err, sizeof err) != 0)
			log_error("SIGHUP: TLS certificates not reloaded, the old ones stay in use: %s", err);
	}
	int rc = stop(&server, sig);
	rcu_unregister_thread();
	return rc;
}
