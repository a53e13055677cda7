/*
 * admin.c - ZooKeeper 3.8's AdminServer: GET <admin.commandURL>/<command>
 * answered with JSON, on admin.serverAddress:admin.serverPort.
 *
 * Operators and tools (zkui, Exhibitor-style dashboards, health checks that
 * curl /commands/ruok) read these answers by key, so each command answers
 * with the keys ZooKeeper's Commands.java puts in its CommandResponse, in
 * the same order, laid out as its JsonOutputter (Jackson, indented) lays
 * them out:
 *   - the command's own keys first, then "command" (its primary name) and
 *     "error" (null): CommandResponse.toMap puts them after the data;
 *   - a command that fails puts "error" among its data (leader standalone,
 *     set_trace_mask without a mask), so "error" comes first there;
 *   - an unknown name answers 200 with {"command": <name>, "error":
 *     "Unknown command: <name>"}, and a command that needs a running server
 *     answers "This ZooKeeper instance is not currently serving requests"
 *     while there is none (an ensemble member without a leader);
 *   - GET <commandURL> lists the primary names as links, as JettyAdminServer
 *     does; a method other than GET is 405, a path outside it 404.
 *
 * The values come from the same sources as the four-letter words
 * (monitor.c, describe.c, processors/), so `mntr` and /commands/monitor,
 * `cons` and /commands/connections never disagree. Where zkd has no such
 * thing (a JVM, observer connection statistics, secure connections told
 * apart) the key is still there, with what stands for it (see each).
 *
 * Threads: the AdminServer is one thread (zkd-admin, net/http.c); every
 * command runs on it inside one RCU read-side section, since an ensemble
 * member may replace the tree and session table (as fourlw_answer does).
 * `admin` below is written by the main thread in admin_start/admin_stop,
 * before the thread starts and after it is joined; the thread only reads it.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <urcu.h>

#include "describe.h"
#include "election/election.h"
#include "monitor.h"
#include "net/grow.h"
#include "net/http.h"
#include "net/json.h"
#include "net/log.h"
#include "net/tsan.h"
#include "processors/session.h"
#include "server.h"
#include "storage/datadir.h"

#define NOT_SERVING "This ZooKeeper instance is not currently serving requests"

static struct {
	struct http_server *http;
	struct zkd_server *srv;
	char *initial_config;       /* zoo.cfg's text as read at start (icfg) */
	char url[256];              /* admin.commandURL without trailing '/' */
} admin;

/* One command being answered. */
struct call {
	struct zkd_server *srv;
	struct json *j;
	const char *query;
	char err[256];              /* an error the command puts among its data */
};

/* ---- helpers ---------------------------------------------------------------- */

/* The version string as ZooKeeper's Version.getFullVersion, as mntr has it. */
static void full_version(char *out, size_t len)
{
	snprintf(out, len, "%s, built on %s", ZKD_VERSION, __DATE__);
}

/* ZooKeeper's "ip:port" / "[v6]:port" (QuorumServer.delimitedHostString). */
static void host_port(char *out, size_t len, const char *host, int port)
{
	snprintf(out, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* The mntr values, kept so srvr/stat can pick theirs (the same numbers mntr
 * shows, by name). */
struct mon_table {
	struct mon_entry {
		char name[96];
		struct mon_value v;
		char s[160];
	} *e;
	size_t n, cap;
};

static void mon_keep(void *arg, const struct mon_value *v)
{
	struct mon_table *t = arg;
	struct mon_entry *e = grow_for(t->e, t->n, &t->cap, sizeof *e, 128);
	if (!e)
		return;
	t->e = e;
	/* the strings are copied: emit's are valid during the call only; v's
	 * pointers are set again on each read (the array moves as it grows) */
	struct mon_entry *m = &t->e[t->n++];
	snprintf(m->name, sizeof m->name, "%s", v->name);
	m->v = *v;
	m->s[0] = '\0';
	if (v->kind == MON_STRING)
		snprintf(m->s, sizeof m->s, "%s", v->s ? v->s : "");
}

static const struct mon_value *mon_at(struct mon_table *t, size_t i)
{
	t->e[i].v.name = t->e[i].name;
	t->e[i].v.s = t->e[i].s;
	return &t->e[i].v;
}

static const struct mon_value *mon_get(struct mon_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].name, name))
			return mon_at(t, i);
	return NULL;
}

static long long mon_long(struct mon_table *t, const char *name, long long dflt)
{
	const struct mon_value *v = mon_get(t, name);
	if (!v)
		return dflt;
	return v->kind == MON_LONG ? v->l : v->kind == MON_DOUBLE ? (long long)v->d : dflt;
}

static double mon_double(struct mon_table *t, const char *name)
{
	const struct mon_value *v = mon_get(t, name);
	if (!v)
		return 0.0;
	return v->kind == MON_DOUBLE ? v->d : v->kind == MON_LONG ? (double)v->l : 0.0;
}

static const char *mon_string(struct mon_table *t, const char *name, const char *dflt)
{
	const struct mon_value *v = mon_get(t, name);
	return v && v->kind == MON_STRING ? v->s : dflt;
}

static void mon_emit_json(void *arg, const struct mon_value *v)
{
	struct json *j = arg;
	switch (v->kind) {
	case MON_LONG: json_kv_int(j, v->name, v->l); break;
	case MON_DOUBLE: json_kv_double(j, v->name, v->d); break;
	case MON_STRING: json_kv_str(j, v->name, v->s); break;
	}
}

/* ServerCnxn.getConnectionInfo(brief) */
static void conn_info(void *arg, const struct zk_conn_info *ci, bool brief)
{
	struct json *j = arg;
	json_obj_begin(j);
	json_kv_str(j, "remote_socket_address", ci->peer);
	json_kv_int(j, "interest_ops", 1);   /* reading: zkd never mutes a connection */
	json_kv_int(j, "outstanding_requests", ci->queued);
	json_kv_int(j, "packets_received", ci->recved);
	json_kv_int(j, "packets_sent", ci->sent);
	if (!brief) {
		json_kv_int(j, "session_id", ci->session_id);
		json_kv_str(j, "last_operation", ci->last_op ? ci->last_op : "NA");
		json_kv_int(j, "established", ci->established_ms);
		json_kv_int(j, "session_timeout", ci->timeout_ms);
		json_kv_int(j, "last_cxid", ci->last_cxid);
		json_kv_int(j, "last_zxid", ci->last_zxid);
		json_kv_int(j, "last_response_time", ci->last_response_ms);
		json_kv_int(j, "last_latency", ci->last_latency_ms);
		json_kv_int(j, "min_latency", ci->lat_min_ms);
		json_kv_int(j, "avg_latency", ci->lat_avg_ms);
		json_kv_int(j, "max_latency", ci->lat_max_ms);
	}
	json_obj_end(j);
}

/* One list of `connections`: the plain factory's or the secure one's. */
struct conn_list {
	struct json *j;
	bool secure, brief;
};

static void conn_listed(void *arg, const struct zk_conn_info *ci)
{
	struct conn_list *l = arg;
	if (ci->secure == l->secure)
		conn_info(l->j, ci, l->brief);
}

/* ZooKeeper keeps the secure client port's connections in a second factory
 * and lists them under secure_connections. */
static void connections(struct json *j, bool brief)
{
	struct conn_list plain = { j, false, brief }, secure = { j, true, brief };
	json_key(j, "connections");
	json_arr_begin(j);
	processors_each_conn(conn_listed, &plain);
	json_arr_end(j);
	json_key(j, "secure_connections");
	json_arr_begin(j);
	processors_each_conn(conn_listed, &secure);
	json_arr_end(j);
}

static bool is_read_only(struct zkd_server *srv)
{
	return atomic_load(&srv->st.read_only) && !atomic_load(&srv->st.serving);
}

/* ---- the commands (Commands.java, in its order) ------------------------------ */

static const char *cmd_crst(struct call *c)
{
	(void)c;
	processors_reset_conn_stats();
	return NULL;
}

/* ZooKeeperServerConf.toMap; ZooKeeper's dataDir there is the snapshot
 * directory itself, version-2 included. */
static const char *cmd_conf(struct call *c)
{
	const struct zkd_config *cfg = &c->srv->cfg;
	char dir[1100];
	json_kv_int(c->j, "client_port", cfg->client_port);
	snprintf(dir, sizeof dir, "%s/%s", cfg->data_dir, DATADIR_VERSION);
	json_kv_str(c->j, "data_dir", dir);
	snprintf(dir, sizeof dir, "%s/%s", cfg->data_log_dir, DATADIR_VERSION);
	json_kv_str(c->j, "data_log_dir", dir);
	json_kv_int(c->j, "tick_time", cfg->tick_time);
	json_kv_int(c->j, "max_client_cnxns", cfg->max_client_cnxns);
	json_kv_int(c->j, "min_session_timeout", cfg->min_session_timeout);
	json_kv_int(c->j, "max_session_timeout", cfg->max_session_timeout);
	json_kv_int(c->j, "server_id", cfg->myid);
	json_kv_int(c->j, "client_port_listen_backlog", cfg->client_port_listen_backlog);
	return NULL;
}

static const char *cmd_cons(struct call *c)
{
	connections(c->j, false);
	return NULL;
}

/* DataTree.getDigestLog: ZxidDigest's getters. zkd's digest is
 * ZooKeeper's DigestCalculator version 2. */
static const char *cmd_hash(struct call *c)
{
	enum { MAX_DIGESTS = 1024 };
	struct zk_zxid_digest *log = malloc(MAX_DIGESTS * sizeof *log);
	size_t n = log ? processors_digest_log(log, MAX_DIGESTS) : 0;
	json_key(c->j, "digests");
	json_arr_begin(c->j);
	for (size_t i = 0; i < n; i++) {
		json_obj_begin(c->j);
		json_kv_int(c->j, "zxid", log[i].zxid);
		json_kv_int(c->j, "digest_version", 2);
		json_kv_int(c->j, "digest", (long long)log[i].digest);
		json_obj_end(c->j);
	}
	json_arr_end(c->j);
	free(log);
	return NULL;
}

static const char *cmd_dirs(struct call *c)
{
	long long data = 0, log = 0;
	describe_dir_sizes(c->srv, &data, &log);
	json_kv_int(c->j, "datadir_size", data);
	json_kv_int(c->j, "logdir_size", log);
	return NULL;
}

/* Both maps of dump arrive grouped (by expiry, by session): a key opens
 * when its group starts and its array closes when the next one does. */
struct grouper {
	struct json *j;
	bool open;
	int64_t key;
};

static void group_to(struct grouper *g, int64_t key)
{
	if (g->open && g->key == key)
		return;
	if (g->open)
		json_arr_end(g->j);
	char k[24];
	snprintf(k, sizeof k, "%" PRId64, key);
	json_key(g->j, k);
	json_arr_begin(g->j);
	g->open = true;
	g->key = key;
}

static void dump_expiry(void *arg, int64_t expiry_ms, int64_t session_id)
{
	struct grouper *g = arg;
	group_to(g, expiry_ms);
	json_int(g->j, session_id);
}

static void dump_ephemeral(void *arg, int64_t session_id, const char *path)
{
	struct grouper *g = arg;
	group_to(g, session_id);
	json_str(g->j, path);
}

static const char *cmd_dump(struct call *c)
{
	long sets = 0;
	json_key(c->j, "expiry_time_to_session_ids");
	json_obj_begin(c->j);
	struct grouper g = { c->j, false, 0 };
	describe_session_expiry(c->srv, &sets, dump_expiry, &g);
	if (g.open)
		json_arr_end(c->j);
	json_obj_end(c->j);

	json_key(c->j, "session_id_to_ephemeral_paths");
	json_obj_begin(c->j);
	g = (struct grouper){ c->j, false, 0 };
	describe_ephemerals(c->srv, dump_ephemeral, &g);
	if (g.open)
		json_arr_end(c->j);
	json_obj_end(c->j);
	return NULL;
}

/* A "<n>MB" figure from a /proc file's "<key>: <kB> kB" line ("" if none). */
static void proc_mb(const char *file, const char *key, char *out, size_t len)
{
	snprintf(out, len, "<NA>");
	FILE *f = fopen(file, "r");
	if (!f)
		return;
	char line[256];
	size_t klen = strlen(key);
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			snprintf(out, len, "%lldMB", atoll(line + klen + 1) / 1024);
			break;
		}
	}
	fclose(f);
}

/* Environment.list's keys, in its order. There is no JVM: the java.* keys
 * say so ("<NA>", as ZooKeeper writes a missing java.compiler), and the
 * os.memory.* ones describe the process and the machine (resident size,
 * memory total, memory available) where ZooKeeper gives the heap's. zkd
 * adds its pid and config file, as its envi does. */
static const char *cmd_env(struct call *c)
{
	struct json *j = c->j;
	char buf[1024];
	full_version(buf, sizeof buf);
	json_kv_str(j, "zookeeper.version", buf);
	if (gethostname(buf, sizeof buf - 1) != 0)
		snprintf(buf, sizeof buf, "<NA>");
	buf[sizeof buf - 1] = '\0';
	json_kv_str(j, "host.name", buf);
	json_kv_str(j, "java.version", "<NA>");
	json_kv_str(j, "java.vendor", "<NA>");
	json_kv_str(j, "java.home", "<NA>");
	json_kv_str(j, "java.class.path", "<NA>");
	json_kv_str(j, "java.library.path", "<NA>");
	const char *tmp = getenv("TMPDIR");
	json_kv_str(j, "java.io.tmpdir", tmp && *tmp ? tmp : "/tmp");
	json_kv_str(j, "java.compiler", "<NA>");
	struct utsname u;
	bool have_uname = uname(&u) == 0;
	json_kv_str(j, "os.name", have_uname ? u.sysname : "Linux");
	json_kv_str(j, "os.arch", have_uname ? u.machine : "<NA>");
	json_kv_str(j, "os.version", have_uname ? u.release : "<NA>");
	struct passwd pw, *pwp = NULL;
	char pwbuf[1024];
	getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &pwp);
	json_kv_str(j, "user.name", pwp ? pwp->pw_name : "<NA>");
	json_kv_str(j, "user.home", pwp ? pwp->pw_dir : "<NA>");
	json_kv_str(j, "user.dir", getcwd(buf, sizeof buf) ? buf : "<NA>");
	proc_mb("/proc/meminfo", "MemAvailable", buf, sizeof buf);
	json_kv_str(j, "os.memory.free", buf);
	proc_mb("/proc/meminfo", "MemTotal", buf, sizeof buf);
	json_kv_str(j, "os.memory.max", buf);
	proc_mb("/proc/self/status", "VmRSS", buf, sizeof buf);
	json_kv_str(j, "os.memory.total", buf);
	json_kv_int(j, "zkd.pid", (long long)getpid());
	json_kv_str(j, "zkd.config", c->srv->cfg.path);
	return NULL;
}

static const char *cmd_gtmk(struct call *c)
{
	json_kv_int(c->j, "tracemask", describe_trace_mask());
	return NULL;
}

static const char *cmd_icfg(struct call *c)
{
	json_kv_str(c->j, "initial_configuration", admin.initial_config ? admin.initial_config : "");
	return NULL;
}

static const char *cmd_isro(struct call *c)
{
	json_kv_bool(c->j, "read_only", is_read_only(c->srv));
	return NULL;
}

/* FileTxnSnapLog.getLastSnapshotInfo: the newest snapshot file, its zxid
 * in hex (Long.toHexString: -1 is ffffffffffffffff) and its mtime in s. */
static const char *cmd_lsnp(struct call *c)
{
	int64_t zxid = -1;
	long long when = -1;
	char err[256];
	char *vdir = datadir_version_dir(c->srv->cfg.data_dir, false, err, sizeof err);
	struct dd_file *files = NULL;
	int n = vdir ? datadir_list(vdir, "snapshot", false, &files, err, sizeof err) : -1;
	for (int i = 0; i < n; i++) {
		if (files[i].suffix[0])
			continue;      /* compressed: not one zkd wrote or could load */
		char *path = datadir_path(vdir, files[i].name);
		struct stat sb;
		if (stat(path, &sb) == 0) {
			zxid = files[i].zxid;
			when = (long long)sb.st_mtime;
		}
		free(path);
		if (zxid != -1)
			break;
	}
	free(files);
	free(vdir);
	char hex[24];
	snprintf(hex, sizeof hex, "%" PRIx64, (uint64_t)zxid);
	json_kv_str(c->j, "zxid", hex);
	json_kv_int(c->j, "timestamp", when);
	return NULL;
}

static const struct zkd_cfg_server *leader_member(struct zkd_server *srv, int64_t sid)
{
	return sid > 0 ? config_find_server(&srv->cfg, sid) : NULL;
}

static const char *cmd_lead(struct call *c)
{
	struct zkd_server *srv = c->srv;
	if (!srv->quorum)
		return "server is not initialized";
	int64_t leader = quorum_leader(srv->quorum);
	const struct zkd_cfg_server *m = leader_member(srv, leader);
	json_kv_bool(c->j, "is_leader", quorum_state(srv->quorum) == PEER_LEADING);
	json_kv_int(c->j, "leader_id", leader > 0 ? leader : -1);
	json_kv_str(c->j, "leader_ip", m ? m->host : "");
	return NULL;
}

/* monitor_collect once into a table, so that a server that stops serving
 * midway cannot leave half the values before the error */
static const char *cmd_mntr(struct call *c)
{
	struct mon_table t = { 0 };
	if (!monitor_collect(c->srv, mon_keep, &t)) {
		free(t.e);
		return NOT_SERVING;
	}
	for (size_t i = 0; i < t.n; i++)
		mon_emit_json(c->j, mon_at(&t, i));
	free(t.e);
	return NULL;
}

static const char *cmd_orst(struct call *c)
{
	/* zkd keeps no per-observer connection statistics to reset */
	(void)c;
	return NULL;
}

static const char *cmd_ruok(struct call *c)
{
	(void)c;
	return NULL;
}

/* Long.parseLong: an optional sign and decimal digits, nothing else. */
static bool parse_java_long(const char *s, long long *out)
{
	const char *d = s + (*s == '-' || *s == '+');
	if (!*d)
		return false;
	for (const char *p = d; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static const char *cmd_stmk(struct call *c)
{
	char arg[200];
	if (!http_query_param(c->query, "traceMask", arg, sizeof arg))
		return "setTraceMask requires long traceMask argument";
	long long mask;
	if (!parse_java_long(arg, &mask)) {
		snprintf(c->err, sizeof c->err, "setTraceMask requires long traceMask argument, got %s", arg);
		return c->err;
	}
	describe_set_trace_mask(mask);
	json_kv_int(c->j, "tracemask", mask);
	return NULL;
}

static void buffer_stats(struct json *j, const char *key, long long last, long long min, long long max)
{
	json_key(j, key);
	json_obj_begin(j);
	json_kv_int(j, "last_buffer_size", last);
	json_kv_int(j, "min_buffer_size", min);
	json_kv_int(j, "max_buffer_size", max);
	json_obj_end(j);
}

/* SrvrCommand: ServerStats as Jackson writes it (its getters, in the order
 * ZooKeeper 3.8 prints them), from the values mntr shows. */
static const char *srvr(struct call *c, bool with_connections)
{
	struct zkd_server *srv = c->srv;
	struct json *j = c->j;
	struct mon_table t = { 0 };
	if (!monitor_collect(srv, mon_keep, &t)) {
		free(t.e);
		return NOT_SERVING;
	}
	char version[128];
	full_version(version, sizeof version);
	long long data = 0, log = 0;
	describe_dir_sizes(srv, &data, &log);
	long long last_resp = mon_long(&t, "last_client_response_size", -1);
	long long min_resp = mon_long(&t, "min_client_response_size", -1);
	long long max_resp = mon_long(&t, "max_client_response_size", -1);

	json_kv_str(j, "version", mon_string(&t, "version", version));
	json_kv_bool(j, "read_only", is_read_only(srv));
	json_key(j, "server_stats");
	json_obj_begin(j);
	json_kv_int(j, "packets_sent", mon_long(&t, "packets_sent", 0));
	json_kv_int(j, "packets_received", mon_long(&t, "packets_received", 0));
	json_kv_int(j, "fsync_threshold_exceed_count", mon_long(&t, "fsync_threshold_exceed_count", 0));
	buffer_stats(j, "client_response_stats", last_resp, min_resp, max_resp);
	json_kv_int(j, "data_dir_size", data);
	json_kv_int(j, "log_dir_size", log);
	json_kv_bool(j, "provider_null", false);
	json_kv_str(j, "server_state", mon_string(&t, "server_state", monitor_mode(srv)));
	json_kv_int(j, "last_processed_zxid", atomic_load(&srv->st.last_applied));
	json_kv_int(j, "outstanding_requests", mon_long(&t, "outstanding_requests", 0));
	json_kv_double(j, "avg_latency", mon_double(&t, "avg_latency"));
	json_kv_int(j, "max_latency", mon_long(&t, "max_latency", 0));
	json_kv_int(j, "min_latency", mon_long(&t, "min_latency", 0));
	json_kv_int(j, "num_alive_client_connections", mon_long(&t, "num_alive_connections", 0));
	json_kv_int(j, "uptime", mon_long(&t, "uptime", 0));
	json_kv_int(j, "auth_failed_count", mon_long(&t, "auth_failed_count", 0));
	/* Jackson's snake case of getNonMTLSRemoteConnCount */
	json_kv_int(j, "non_mtlsremote_conn_count", mon_long(&t, "non_mtls_remote_conn_count", 0));
	json_kv_int(j, "non_mtlslocal_conn_count", mon_long(&t, "non_mtls_local_conn_count", 0));
	json_obj_end(j);
	buffer_stats(j, "client_response", last_resp, min_resp, max_resp);
	if (srv->quorum && quorum_state(srv->quorum) == PEER_LEADING) {
		struct quorum_stats q;
		quorum_get_stats(srv->quorum, &q);
		buffer_stats(j, "proposal_stats", q.last_proposal_size, q.min_proposal_size, q.max_proposal_size);
	}
	json_kv_int(j, "node_count", mon_long(&t, "znode_count", 0));
	if (with_connections)
		connections(j, true);
	free(t.e);
	return NULL;
}

static const char *cmd_srvr(struct call *c) { return srvr(c, false); }
static const char *cmd_stat(struct call *c) { return srvr(c, true); }

static const char *cmd_srst(struct call *c)
{
	processors_reset_stats(&c->srv->st);
	return NULL;
}

/* zkd knows how many observers are synced (the leader counts them) but keeps
 * no per-observer record like ZooKeeper's LearnerHandler info. */
static const char *cmd_obsr(struct call *c)
{
	struct quorum_stats q = { 0 };
	if (c->srv->quorum)
		quorum_get_stats(c->srv->quorum, &q);
	json_kv_int(c->j, "synced_observers", q.synced_observers);
	json_key(c->j, "observers");
	json_arr_begin(c->j);
	json_arr_end(c->j);
	return NULL;
}

/* ---- system_properties -------------------------------------------------------- */

struct prop {
	char *key, *value;
};

struct props {
	struct prop *v;
	size_t n, cap;
};

static void props_add(struct props *p, const char *key, size_t klen, const char *value, size_t vlen)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 32;
		struct prop *v = realloc(p->v, cap * sizeof *v);
		if (!v)
			return;
		p->v = v;
		p->cap = cap;
	}
	char *k = strndup(key, klen), *val = strndup(value, vlen);
	if (!k || !val) {
		free(k);
		free(val);
		return;
	}
	p->v[p->n++] = (struct prop){ k, val };
}

/* The keys QuorumPeerConfig.parseProperties keeps for itself; it makes
 * every other zoo.cfg key the system property "zookeeper.<key>". */
static bool zoo_cfg_own_key(const char *k, size_t n)
{
	static const char *const exact[] = {
		"dataDir", "dataLogDir", "clientPort", "localSessionsEnabled",
		"localSessionsUpgradingEnabled", "clientPortAddress", "secureClientPort",
		"secureClientPortAddress", "observerMasterPort", "clientPortListenBacklog", "tickTime",
		"maxClientCnxns", "minSessionTimeout", "maxSessionTimeout", "initLimit", "syncLimit",
		"connectToLearnerMasterLimit", "electionAlg", "quorumListenOnAllIPs", "peerType",
		"syncEnabled", "dynamicConfigFile", "autopurge.snapRetainCount",
		"autopurge.purgeInterval", "standaloneEnabled", "reconfigEnabled", "sslQuorum",
		"portUnification", "sslQuorumReloadCertFiles", "quorum.auth.enableSasl",
		"quorum.auth.serverRequireSasl", "quorum.auth.learnerRequireSasl",
		"quorum.auth.learner.saslLoginContext", "quorum.auth.server.saslLoginContext",
		"quorum.auth.kerberos.servicePrincipal", "quorum.cnxn.threads.size",
		"jvm.pause.info-threshold.ms", "jvm.pause.warn-threshold.ms", "jvm.pause.sleep.time.ms",
		"jvm.pause.monitor", "multiAddress.enabled", "multiAddress.reachabilityCheckTimeoutMs",
		"multiAddress.reachabilityCheckEnabled", "oraclePath",
	};
	static const char *const prefix[] = { "server.", "group", "weight", "metricsProvider." };
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (strlen(exact[i]) == n && !memcmp(exact[i], k, n))
			return true;
	for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
		if (n >= strlen(prefix[i]) && !memcmp(prefix[i], k, strlen(prefix[i])))
			return true;
	return false;
}

/* zoo.cfg's "key=value" lines (and "key value", "key:value"), as far as
 * this listing needs them: no continuation lines or escapes (config.c
 * reads the file properly; this only names what it held). */
static void props_from_zoo_cfg(struct props *p, const char *text)
{
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *s = line, *e = line + len;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (s < e && *s != '#' && *s != '!') {
			const char *k = s;
			while (s < e && *s != '=' && *s != ':' && !isspace((unsigned char)*s))
				s++;
			size_t klen = (size_t)(s - k);
			while (s < e && isspace((unsigned char)*s))
				s++;
			if (s < e && (*s == '=' || *s == ':'))
				s++;
			while (s < e && isspace((unsigned char)*s))
				s++;
			if (klen && !zoo_cfg_own_key(k, klen)) {
				char key[300];
				int n = snprintf(key, sizeof key, "zookeeper.%.*s", (int)klen, k);
				if (n > 0 && (size_t)n < sizeof key)
					props_add(p, key, (size_t)n, s, (size_t)(e - s));
			}
		}
		line = end ? end + 1 : NULL;
	}
}

/* -Dkey=value on zkd's command line: the system properties proper. */
static void props_from_cmdline(struct props *p)
{
	FILE *f = fopen("/proc/self/cmdline", "r");
	if (!f)
		return;
	char *arg = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getdelim(&arg, &cap, '\0', f)) > 0) {
		if (strncmp(arg, "-D", 2) != 0)
			continue;
		const char *kv = arg + 2;
		const char *eq = strchr(kv, '=');
		if (eq && eq > kv)
			props_add(p, kv, (size_t)(eq - kv), eq + 1, strlen(eq + 1));
	}
	free(arg);
	fclose(f);
}

static int prop_cmp(const void *a, const void *b)
{
	return strcmp(((const struct prop *)a)->key, ((const struct prop *)b)->key);
}

/* System.getProperties, sorted: what a JVM would hold that has meaning
 * here (the os.*, user.* and separators), the zoo.cfg keys ZooKeeper turns
 * into properties, and -D settings, which win over zoo.cfg in zkd. */
static const char *cmd_sysp(struct call *c)
{
	struct props p = { 0 };
	char buf[1024];
	struct utsname u;
	if (uname(&u) == 0) {
		props_add(&p, "os.name", 7, u.sysname, strlen(u.sysname));
		props_add(&p, "os.arch", 7, u.machine, strlen(u.machine));
		props_add(&p, "os.version", 10, u.release, strlen(u.release));
	}
	struct passwd pw, *pwp = NULL;
	char pwbuf[1024];
	getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &pwp);
	if (pwp) {
		props_add(&p, "user.name", 9, pwp->pw_name, strlen(pwp->pw_name));
		props_add(&p, "user.home", 9, pwp->pw_dir, strlen(pwp->pw_dir));
	}
	if (getcwd(buf, sizeof buf))
		props_add(&p, "user.dir", 8, buf, strlen(buf));
	props_add(&p, "file.separator", 14, "/", 1);
	props_add(&p, "line.separator", 14, "\n", 1);
	props_add(&p, "path.separator", 14, ":", 1);
	props_from_zoo_cfg(&p, admin.initial_config);
	props_from_cmdline(&p);
	/* later sources win: of equal keys only the last keeps its value */
	for (size_t i = 0; i < p.n; i++)
		for (size_t k = i + 1; k < p.n; k++)
			if (!strcmp(p.v[i].key, p.v[k].key)) {
				free(p.v[i].value);
				p.v[i].value = NULL;
				break;
			}
	if (p.n)
		qsort(p.v, p.n, sizeof *p.v, prop_cmp);
	for (size_t i = 0; i < p.n; i++) {
		if (p.v[i].value)
			json_kv_str(c->j, p.v[i].key, p.v[i].value);
		free(p.v[i].key);
		free(p.v[i].value);
	}
	free(p.v);
	return NULL;
}

/* VotingViewCommand: the participants, by sid; QuorumServerView's fields. */
static const char *cmd_voting_view(struct call *c)
{
	const struct zkd_config *cfg = &c->srv->cfg;
	struct json *j = c->j;
	json_key(j, "current_config");
	json_obj_begin(j);
	for (int i = 0; c->srv->quorum && i < cfg->n_servers; i++) {
		const struct zkd_cfg_server *s = &cfg->servers[i];
		if (s->observer)
			continue;
		char key[24], addr[300];
		snprintf(key, sizeof key, "%" PRId64, s->id);
		json_key(j, key);
		json_obj_begin(j);
		json_key(j, "server_addresses");
		json_arr_begin(j);
		host_port(addr, sizeof addr, s->host, s->quorum_port);
		json_str(j, addr);
		json_arr_end(j);
		json_key(j, "election_addresses");
		json_arr_begin(j);
		host_port(addr, sizeof addr, s->host, s->election_port);
		json_str(j, addr);
		json_arr_end(j);
		if (s->client_port) {
			host_port(addr, sizeof addr, s->client_host[0] ? s->client_host : "0.0.0.0", s->client_port);
			json_kv_str(j, "client_address", addr);
		} else {
			json_kv_str(j, "client_address", "");
		}
		json_kv_str(j, "learner_type", "participant");
		json_obj_end(j);
	}
	json_obj_end(j);
	return NULL;
}

static int watch_by_path(const void *a, const void *b)
{
	const struct zk_watch *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	return c ? c : (x->session_id > y->session_id) - (x->session_id < y->session_id);
}

/* mode 'c': paths by session; 'p': sessions by path; 's': the summary */
static const char *watches(struct call *c, char mode)
{
	struct json *j = c->j;
	struct zk_watch *w = NULL;
	size_t n = processors_watches(&w);   /* by session, then path */
	if (mode == 'c') {
		json_key(j, "session_id_to_watched_paths");
		json_obj_begin(j);
		struct grouper g = { j, false, 0 };
		for (size_t i = 0; i < n; i++) {
			group_to(&g, w[i].session_id);
			json_str(j, w[i].path);
		}
		if (g.open)
			json_arr_end(j);
		json_obj_end(j);
	} else {
		size_t sessions = 0, paths = 0;
		for (size_t i = 0; i < n; i++)
			sessions += i == 0 || w[i].session_id != w[i - 1].session_id;
		if (n)
			qsort(w, n, sizeof *w, watch_by_path);
		if (mode == 'p') {
			json_key(j, "path_to_session_ids");
			json_obj_begin(j);
			for (size_t i = 0; i < n; i++) {
				if (i == 0 || strcmp(w[i].path, w[i - 1].path) != 0) {
					if (i)
						json_arr_end(j);
					json_key(j, w[i].path);
					json_arr_begin(j);
				}
				json_int(j, w[i].session_id);
			}
			if (n)
				json_arr_end(j);
			json_obj_end(j);
		} else {
			for (size_t i = 0; i < n; i++)
				paths += i == 0 || strcmp(w[i].path, w[i - 1].path) != 0;
			json_kv_int(j, "num_connections", (long long)sessions);
			json_kv_int(j, "num_paths", (long long)paths);
			json_kv_int(j, "num_total_watches", (long long)n);
		}
	}
	processors_watches_free(w, n);
	return NULL;
}

static const char *cmd_wchc(struct call *c) { return watches(c, 'c'); }
static const char *cmd_wchp(struct call *c) { return watches(c, 'p'); }
static const char *cmd_wchs(struct call *c) { return watches(c, 's'); }

/* A MultipleAddresses as Jackson writes the bean (its getters): zabstate's
 * quorum_address and election_address. zkd's members have one address. */
static void multiple_addresses(struct json *j, const char *key, const char *host, int port)
{
	char addr[300], any[64];
	host_port(addr, sizeof addr, host, port);
	snprintf(any, sizeof any, "0.0.0.0:%d", port);
	json_key(j, key);
	json_obj_begin(j);
	json_kv_bool(j, "empty", false);
	static const char *const lists[] = { "all_addresses", "all_reachable_addresses" };
	for (size_t i = 0; i < 2; i++) {
		json_key(j, lists[i]);
		json_arr_begin(j);
		json_str(j, addr);
		json_arr_end(j);
	}
	json_kv_str(j, "one", addr);
	json_kv_str(j, "reachable_address", addr);
	json_key(j, "wildcard_addresses");
	json_arr_begin(j);
	json_str(j, any);
	json_arr_end(j);
	json_key(j, "all_ports");
	json_arr_begin(j);
	json_int(j, port);
	json_arr_end(j);
	json_key(j, "all_host_strings");
	json_arr_begin(j);
	json_str(j, host);
	json_arr_end(j);
	json_key(j, "all_reachable_addresses_or_all");
	json_arr_begin(j);
	json_str(j, addr);
	json_arr_end(j);
	json_kv_str(j, "reachable_or_one", addr);
	json_obj_end(j);
}

/* ZabStateCommand. ZooKeeper's AdminServer has no ZooKeeperServer while
 * its peer is LOOKING, and then answers as a standalone server does
 * (voting false, zabstate ""). zkd's peer reports synchronization until it
 * serves, then broadcast; it does not single out ZAB's discovery phase. */
static const char *cmd_zabstate(struct call *c)
{
	struct zkd_server *srv = c->srv;
	struct json *j = c->j;
	if (!srv->quorum || quorum_state(srv->quorum) == PEER_LOOKING) {
		json_kv_bool(j, "voting", false);
		json_kv_str(j, "zabstate", "");
		return NULL;
	}
	const struct zkd_config *cfg = &srv->cfg;
	const struct zkd_cfg_server *me = config_find_server(cfg, cfg->myid);
	char addr[300];
	json_kv_int(j, "myid", cfg->myid);
	json_kv_bool(j, "is_leader", quorum_state(srv->quorum) == PEER_LEADING);
	multiple_addresses(j, "quorum_address", me ? me->host : "", me ? me->quorum_port : 0);
	multiple_addresses(j, "election_address", me ? me->host : "", me ? me->election_port : 0);
	/* the client address of this server's server.N line, else the bound one */
	if (me && me->client_port) {
		host_port(addr, sizeof addr, me->client_host[0] ? me->client_host : "0.0.0.0", me->client_port);
	} else {
		int port = net_bound_port();
		host_port(addr, sizeof addr, cfg->client_port_address[0] ? cfg->client_port_address : "0.0.0.0",
			  port >= 0 ? port : cfg->client_port);
	}
	json_kv_str(j, "client_address", addr);
	json_kv_bool(j, "voting", me && !me->observer);
	int64_t zxid = atomic_load(&srv->st.last_applied);
	char hex[24];
	snprintf(hex, sizeof hex, "0x%" PRIx64, (uint64_t)zxid);
	json_kv_str(j, "last_zxid", hex);
	json_kv_int(j, "zab_epoch", zxid >> 32);
	json_kv_int(j, "zab_counter", zxid & 0xffffffffLL);
	json_kv_str(j, "zabstate", atomic_load(&srv->st.serving) ? "broadcast" : "synchronization");
	return NULL;
}

/* ---- the table and the servlet ---------------------------------------------- */

struct command {
	const char *names[4];       /* the primary name first */
	bool server_required;       /* CommandBase.isServerRequired */
	const char *(*run)(struct call *c);
};

static const struct command commands[] = {
	{ { "connection_stat_reset", "crst" }, true, cmd_crst },
	{ { "configuration", "conf", "config" }, true, cmd_conf },
	{ { "connections", "cons" }, true, cmd_cons },
	{ { "hash" }, true, cmd_hash },
	{ { "dirs" }, true, cmd_dirs },
	{ { "dump" }, true, cmd_dump },
	{ { "environment", "env", "envi" }, false, cmd_env },
	{ { "get_trace_mask", "gtmk" }, false, cmd_gtmk },
	{ { "initial_configuration", "icfg" }, true, cmd_icfg },
	{ { "is_read_only", "isro" }, true, cmd_isro },
	{ { "last_snapshot", "lsnp" }, true, cmd_lsnp },
	{ { "leader", "lead" }, true, cmd_lead },
	{ { "monitor", "mntr" }, false, cmd_mntr },
	{ { "observer_connection_stat_reset", "orst" }, true, cmd_orst },
	{ { "ruok" }, true, cmd_ruok },
	{ { "set_trace_mask", "stmk" }, false, cmd_stmk },
	{ { "server_stats", "srvr" }, true, cmd_srvr },
	{ { "stats", "stat" }, true, cmd_stat },
	{ { "stat_reset", "srst" }, true, cmd_srst },
	{ { "observers", "obsr" }, true, cmd_obsr },
	{ { "system_properties", "sysp" }, false, cmd_sysp },
	{ { "voting_view" }, true, cmd_voting_view },
	{ { "watches", "wchc" }, true, cmd_wchc },
	{ { "watches_by_path", "wchp" }, true, cmd_wchp },
	{ { "watch_summary", "wchs" }, true, cmd_wchs },
	{ { "zabstate" }, false, cmd_zabstate },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		for (int k = 0; k < 4 && commands[i].names[k]; k++)
			if (!strcmp(commands[i].names[k], name))
				return &commands[i];
	return NULL;
}

/* A ZooKeeper server that runs read-only is running; one without a leader
 * is not (its AdminServer has no ZooKeeperServer). */
static bool running(struct zkd_server *srv)
{
	return atomic_load(&srv->st.serving) || atomic_load(&srv->st.read_only);
}

/* Commands.runCommand + JsonOutputter */
static void run_command(struct zkd_server *srv, const char *name, const char *query, struct outbuf *o)
{
	struct json j;
	json_init(&j, o, true);
	json_obj_begin(&j);
	const struct command *cmd = find_command(name);
	if (!cmd) {
		char err[300];
		snprintf(err, sizeof err, "Unknown command: %s", name);
		json_kv_str(&j, "command", name);
		json_kv_str(&j, "error", err);
	} else if (cmd->server_required && !running(srv)) {
		json_kv_str(&j, "command", name);
		json_kv_str(&j, "error", NOT_SERVING);
	} else {
		struct call c = { .srv = srv, .j = &j, .query = query };
		rcu_read_lock();
		const char *err = cmd->run(&c);
		zkd_rcu_read_unlock();
		if (err) {
			json_kv_str(&j, "error", err);
			json_kv_str(&j, "command", cmd->names[0]);
		} else {
			json_kv_str(&j, "command", cmd->names[0]);
			json_kv_null(&j, "error");
		}
	}
	json_obj_end(&j);
	if (j.failed)
		log_warn("admin: command '%s' wrote malformed JSON", name);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* JettyAdminServer.commandLinks: the primary names, sorted, as links. */
static void list_commands(struct outbuf *o)
{
	const char *names[N_COMMANDS];
	for (size_t i = 0; i < N_COMMANDS; i++)
		names[i] = commands[i].names[0];
	qsort(names, N_COMMANDS, sizeof names[0], name_cmp);
	for (size_t i = 0; i < N_COMMANDS; i++)
		ob_printf(o, "<a href=\"%s/%s\">%s</a>\n<br/>\n", admin.url, names[i], names[i]);
}

static void handle(void *ctx, const struct http_request *req, struct http_response *resp)
{
	struct zkd_server *srv = ctx;
	size_t ulen = strlen(admin.url);
	const char *rest = NULL;
	if (!strncmp(req->path, admin.url, ulen) && (req->path[ulen] == '\0' || req->path[ulen] == '/'))
		rest = req->path + ulen;
	if (!rest) {
		resp->status = 404;
		ob_printf(&resp->body, "404 Not Found: %s\n", req->path);
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		resp->status = 405;
		ob_printf(&resp->body, "405 HTTP method %s is not supported by this URL\n", req->method);
		return;
	}
	if (!strcmp(rest, "") || !strcmp(rest, "/")) {
		resp->content_type = "text/html; charset=utf-8";
		list_commands(&resp->body);
		return;
	}
	resp->content_type = "application/json";
	run_command(srv, rest + 1, req->query, &resp->body);
}

/* ---- start and stop ------------------------------------------------------------- */

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	struct outbuf o = OUTBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0 && o.len < (1u << 20))
		ob_write(&o, buf, n);
	fclose(f);
	if (o.failed) {
		ob_free(&o);
		return NULL;
	}
	return o.buf ? o.buf : strdup("");
}

int admin_start(struct zkd_server *srv, char *err, size_t errlen)
{
	const struct zkd_config *cfg = &srv->cfg;
	if (!cfg->admin_enable) {
		log_info("AdminServer disabled (admin.enableServer=false)");
		return 0;
	}
	admin.srv = srv;
	snprintf(admin.url, sizeof admin.url, "%s", cfg->admin_command_url);
	size_t n = strlen(admin.url);
	while (n && admin.url[n - 1] == '/')
		admin.url[--n] = '\0';
	free(admin.initial_config);
	admin.initial_config = read_text(cfg->path);
	admin.http = http_start("zkd-admin", cfg->admin_address, cfg->admin_port, handle, srv, err, errlen);
	if (!admin.http) {
		free(admin.initial_config);
		admin.initial_config = NULL;
		return -1;
	}
	log_info("Started AdminServer on address %s, port %d and command URL %s",
		 cfg->admin_address[0] ? cfg->admin_address : "0.0.0.0", http_port(admin.http),
		 cfg->admin_command_url);
	return 0;
}

void admin_stop(void)
{
	http_stop(admin.http);
	admin.http = NULL;
	free(admin.initial_config);
	admin.initial_config = NULL;
}
