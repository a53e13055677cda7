/*
 * fourlw.c - ZooKeeper's four-letter words on the client port.
 *
 * A connection whose first four bytes spell a command gets a text answer
 * and is closed, as in ZooKeeper. The texts follow ZooKeeper 3.8's
 * (the command classes of its server/command package), since monitoring scripts and zktop parse
 * them. A command left out of 4lw.commands.whitelist is answered with
 * ZooKeeper's refusal sentence. The values come from monitor.c and
 * describe.c, which the AdminServer prints as JSON too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pwd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <urcu.h>

#include "describe.h"
#include "monitor.h"
#include "net/grow.h"
#include "net/jute.h"
#include "net/log.h"
#include "net/tsan.h"
#include "processors/session.h"
#include "server.h"

/* ZooKeeper's answer while it has no leader (or no quorum) to serve with */
static bool not_serving(struct outbuf *o, struct zkd_server *srv)
{
	if (atomic_load(&srv->st.serving))
		return false;
	ob_printf(o, "This ZooKeeper instance is not currently serving requests\n");
	return true;
}

/* ---- cons ------------------------------------------------------------------ */

/* NIOServerCnxn.dumpConnectionInfo; [1] is the interest set (reading). */
static void cons_line(void *arg, const struct zk_conn_info *ci)
{
	struct outbuf *o = arg;
	ob_printf(o, " /%s[1](queued=%d,recved=%ld,sent=%ld", ci->peer, ci->queued, ci->recved, ci->sent);
	if (ci->session_id)
		ob_printf(o, ",sid=0x%" PRIx64 ",lop=%s,est=%" PRId64 ",to=%d,lcxid=0x%lx,lzxid=0x%lx,lresp=%ld"
			  ",llat=%ld,minlat=%ld,avglat=%ld,maxlat=%ld",
			  (uint64_t)ci->session_id, ci->last_op, ci->established_ms, ci->timeout_ms,
			  (unsigned long)ci->last_cxid, (unsigned long)ci->last_zxid, ci->last_response_ms,
			  ci->last_latency_ms, ci->lat_min_ms, ci->lat_avg_ms, ci->lat_max_ms);
	ob_printf(o, ")\n");
}

/* stat lists the same connections briefly: no session part */
static void cons_line_brief(void *arg, const struct zk_conn_info *ci)
{
	ob_printf(arg, " /%s[1](queued=%d,recved=%ld,sent=%ld)\n", ci->peer, ci->queued, ci->recved, ci->sent);
}

static void cons(struct outbuf *o, bool brief)
{
	processors_each_conn(brief ? cons_line_brief : cons_line, o);
	ob_printf(o, "\n");
}

/* ---- srvr / stat ----------------------------------------------------------- */

static void srvr(struct outbuf *o, struct zkd_server *srv, bool with_clients)
{
	if (not_serving(o, srv))
		return;
	struct zk_stats *s = &srv->st.stats;
	struct net_stats ns;
	net_get_stats(&ns);
	long n = atomic_load(&s->lat_count);
	ob_printf(o, "Zookeeper version: %s, built on %s\n", ZKD_VERSION, __DATE__);
	if (with_clients) {
		ob_printf(o, "Clients:\n");
		cons(o, true);
	}
	ob_printf(o, "Latency min/avg/max: %ld/%.4f/%ld\n", atomic_load(&s->lat_min_us) / 1000,
		  n ? (double)atomic_load(&s->lat_total_us) / (double)n / 1000.0 : 0.0,
		  atomic_load(&s->lat_max_us) / 1000);
	ob_printf(o, "Received: %" PRIu64 "\n", ns.packets_received);
	ob_printf(o, "Sent: %" PRIu64 "\n", ns.packets_sent);
	ob_printf(o, "Connections: %" PRIu64 "\n", ns.connections);
	ob_printf(o, "Outstanding: %ld\n", atomic_load(&s->outstanding));
	ob_printf(o, "Zxid: 0x%llx\n", (unsigned long long)atomic_load(&srv->st.last_applied));
	ob_printf(o, "Mode: %s\n", monitor_mode(srv));
	ob_printf(o, "Node count: %ld\n", monitor_znode_count(srv));
}

/* ---- mntr -------------------------------------------------------------------- */

static void mntr_line(void *arg, const struct mon_value *v)
{
	struct outbuf *o = arg;
	switch (v->kind) {
	case MON_LONG: ob_printf(o, "zk_%s\t%lld\n", v->name, v->l); break;
	case MON_DOUBLE: ob_printf(o, "zk_%s\t%.4f\n", v->name, v->d); break;
	case MON_STRING: ob_printf(o, "zk_%s\t%s\n", v->name, v->s); break;
	}
}

static void mntr(struct outbuf *o, struct zkd_server *srv)
{
	if (!monitor_collect(srv, mntr_line, o))
		not_serving(o, srv);
}

/* ---- conf ---------------------------------------------------------------------- */

/* config_describe's text with the two sizes ZooKeeper's conf adds after
 * the directories (ZooKeeperServer.dumpConf). */
static void conf(struct outbuf *o, struct zkd_server *srv)
{
	char *text = malloc(64 * 1024);
	if (!text)
		return;
	config_describe(&srv->cfg, text, 64 * 1024);
	long long data, log;
	describe_dir_sizes(srv, &data, &log);
	for (char *line = text, *nl; *line; line = nl) {
		nl = strchr(line, '\n');
		nl = nl ? nl + 1 : line + strlen(line);
		ob_write(o, line, (size_t)(nl - line));
		if (!strncmp(line, "dataDir=", 8))
			ob_printf(o, "dataDirSize=%lld\n", data);
		else if (!strncmp(line, "dataLogDir=", 11))
			ob_printf(o, "dataLogSize=%lld\n", log);
	}
	free(text);
}

/* ---- envi ---------------------------------------------------------------------- */

static void envi(struct outbuf *o, struct zkd_server *srv)
{
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	char cwd[1024] = "";
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = '\0';
	ob_printf(o, "Environment:\n");
	ob_printf(o, "zookeeper.version=%s, built on %s\n", ZKD_VERSION, __DATE__);
	ob_printf(o, "host.name=%s\n", host);
	struct utsname u;
	if (uname(&u) == 0) {
		ob_printf(o, "os.name=%s\n", u.sysname);
		ob_printf(o, "os.arch=%s\n", u.machine);
		ob_printf(o, "os.version=%s\n", u.release);
	}
	struct passwd pw, *who = NULL;
	char pwbuf[1024];
	if (getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &who) == 0 && who) {
		ob_printf(o, "user.name=%s\n", who->pw_name);
		ob_printf(o, "user.home=%s\n", who->pw_dir);
	}
	ob_printf(o, "user.dir=%s\n", cwd);
	ob_printf(o, "zkd.pid=%ld\n", (long)getpid());
	ob_printf(o, "zkd.config=%s\n", srv->cfg.path);
}

/* ---- wchs / wchc / wchp ---------------------------------------------------------- */

static int by_path_then_session(const void *a, const void *b)
{
	const struct zk_watch *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	return c ? c : (x->session_id < y->session_id ? -1 : x->session_id > y->session_id);
}

/* mode 's': the summary; 'c': paths under each session; 'p': sessions under
 * each path (ZooKeeper's WatchManager dumps of its data watches). */
static void watches(struct outbuf *o, struct zkd_server *srv, char mode)
{
	if (not_serving(o, srv))
		return;
	struct zk_watch *w;
	size_t n = processors_watches(&w);   /* by session, then path */
	if (mode == 's') {
		size_t sessions = 0, paths = 0;
		for (size_t i = 0; i < n; i++)
			sessions += i == 0 || w[i].session_id != w[i - 1].session_id;
		if (n)
			qsort(w, n, sizeof *w, by_path_then_session);
		for (size_t i = 0; i < n; i++)
			paths += i == 0 || strcmp(w[i].path, w[i - 1].path) != 0;
		ob_printf(o, "%zu connections watching %zu paths\nTotal watches:%zu\n", sessions, paths, n);
	} else if (mode == 'c') {
		for (size_t i = 0; i < n; i++) {
			if (i == 0 || w[i].session_id != w[i - 1].session_id)
				ob_printf(o, "0x%" PRIx64 "\n", (uint64_t)w[i].session_id);
			ob_printf(o, "\t%s\n", w[i].path);
		}
	} else {
		if (n)
			qsort(w, n, sizeof *w, by_path_then_session);
		for (size_t i = 0; i < n; i++) {
			if (i == 0 || strcmp(w[i].path, w[i - 1].path) != 0)
				ob_printf(o, "%s\n", w[i].path);
			ob_printf(o, "\t0x%" PRIx64 "\n", (uint64_t)w[i].session_id);
		}
	}
	processors_watches_free(w, n);
	if (mode != 's')
		ob_printf(o, "\n");   /* WatchCommand's closing println */
}

/* ---- dump ---------------------------------------------------------------------- */

/* java.util.Date.toString(): "Sun Nov 22 06:31:58 UTC 2026" */
static void java_date(char *out, size_t cap, int64_t wall)
{
	time_t t = (time_t)(wall / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, cap, "%a %b %d %H:%M:%S %Z %Y", &tm);
}

struct expiry_out {
	struct { int64_t due, id; } *v;   /* the sessions, grouped by due below */
	size_t n, cap;
};

static void collect_expiry(void *arg, int64_t expiry_ms, int64_t id)
{
	struct expiry_out *e = arg;
	void *v = grow_for(e->v, e->n, &e->cap, sizeof *e->v, 64);
	if (!v)
		return;
	e->v = v;
	e->v[e->n].due = expiry_ms;
	e->v[e->n++].id = id;
}

static void print_ephemeral(void *arg, int64_t session_id, const char *path)
{
	struct { struct outbuf *o; int64_t last; } *p = arg;
	if (session_id != p->last)
		ob_printf(p->o, "0x%" PRIx64 ":\n", (uint64_t)session_id);
	p->last = session_id;
	ob_printf(p->o, "\t%s\n", path);
}

static void conn_for_dump(void *arg, const struct zk_conn_info *ci)
{
	ob_printf(arg, "\tip: /%s sessionId: 0x%" PRIx64 "\n", ci->peer, (uint64_t)ci->session_id);
}

static void dump(struct outbuf *o, struct zkd_server *srv)
{
	if (not_serving(o, srv))
		return;
	struct expiry_out e = { 0 };
	long sets = 0;
	describe_session_expiry(srv, &sets, collect_expiry, &e);
	ob_printf(o, "SessionTracker dump:\nSession Sets (%ld)/(%zu):\n", sets, e.n);
	for (size_t i = 0; i < e.n;) {
		size_t j = i;
		while (j < e.n && e.v[j].due == e.v[i].due)
			j++;
		char date[64];
		java_date(date, sizeof date, e.v[i].due);
		ob_printf(o, "%zu expire at %s:\n", j - i, date);
		for (; i < j; i++)
			ob_printf(o, "\t0x%" PRIx64 "\n", (uint64_t)e.v[i].id);
	}
	free(e.v);

	struct outbuf eph = OUTBUF_INIT;
	struct { struct outbuf *o; int64_t last; } p = { &eph, 0 };
	long with_eph = describe_ephemerals(srv, print_ephemeral, &p);
	ob_printf(o, "ephemeral nodes dump:\nSessions with Ephemerals (%ld):\n", with_eph);
	if (eph.len)
		ob_write(o, eph.buf, eph.len);
	ob_free(&eph);

	/* ZooKeeper's NIO factory lists its connections by idle deadline; zkd
	 * keeps no such queue, so they are one set. */
	struct outbuf cn = OUTBUF_INIT;
	processors_each_conn(conn_for_dump, &cn);
	size_t ncons = 0;
	for (size_t i = 0; i < cn.len; i++)
		ncons += cn.buf[i] == '\n';
	ob_printf(o, "Connections dump:\nConnections Sets (%d)/(%zu):\n", ncons ? 1 : 0, ncons);
	if (ncons) {
		char date[64];
		java_date(date, sizeof date, wall_ms() + srv->cfg.tick_time);
		ob_printf(o, "%zu expire at %s:\n", ncons, date);
		ob_write(o, cn.buf, cn.len);
	}
	ob_free(&cn);
}

/* ---- the words --------------------------------------------------------------- */

static void answer(struct zkd_server *srv, const char *cmd, const uint8_t *arg, size_t arg_len,
		   struct outbuf *o)
{
	if (!config_4lw_allowed(&srv->cfg, cmd)) {
		ob_printf(o, "%s is not executed because it is not in the whitelist.\n", cmd);
		return;
	}
	if (!strcmp(cmd, "ruok"))
		ob_printf(o, "imok");
	else if (!strcmp(cmd, "srvr"))
		srvr(o, srv, false);
	else if (!strcmp(cmd, "stat"))
		srvr(o, srv, true);
	else if (!strcmp(cmd, "mntr"))
		mntr(o, srv);
	else if (!strcmp(cmd, "conf"))
		conf(o, srv);
	else if (!strcmp(cmd, "cons"))
		cons(o, false);
	else if (!strcmp(cmd, "crst")) {
		if (!not_serving(o, srv)) {
			processors_reset_conn_stats();
			ob_printf(o, "Connection stats reset.\n");
		}
	} else if (!strcmp(cmd, "dump"))
		dump(o, srv);
	else if (!strcmp(cmd, "envi"))
		envi(o, srv);
	else if (!strcmp(cmd, "dirs")) {
		if (!not_serving(o, srv)) {
			long long data, log;
			describe_dir_sizes(srv, &data, &log);
			ob_printf(o, "datadir_size: %lld\nlogdir_size: %lld\n", data, log);
		}
	} else if (!strcmp(cmd, "gtmk"))
		ob_printf(o, "%lld", describe_trace_mask());
	else if (!strcmp(cmd, "stmk")) {
		long long mask = arg_len >= 8 ? (long long)((uint64_t)jute_get_u32(arg) << 32 | jute_get_u32(arg + 4))
					      : describe_trace_mask();
		describe_set_trace_mask(mask);
		ob_printf(o, "%lld", mask);
	} else if (!strcmp(cmd, "wchs") || !strcmp(cmd, "wchc") || !strcmp(cmd, "wchp"))
		watches(o, srv, cmd[3]);
	else if (!strcmp(cmd, "isro"))
		ob_printf(o, atomic_load(&srv->st.read_only) && !atomic_load(&srv->st.serving) ? "ro" : "rw");
	else if (!strcmp(cmd, "srst")) {
		processors_reset_stats(&srv->st);
		ob_printf(o, "Server stats reset.\n");
	} else if (!strcmp(cmd, "hash")) {
		if (!not_serving(o, srv))
			describe_digests(srv, o);
	}
}

/* Inside one read-side section: an ensemble member may replace the tree
 * and session table (SNAP, TRUNC) and free the old ones after a grace
 * period; srvr, mntr and their kin read both. */
void fourlw_answer(struct zkd_server *srv, const char *cmd, const uint8_t *arg, size_t arg_len,
		   struct outbuf *o)
{
	rcu_read_lock();
	answer(srv, cmd, arg, arg_len, o);
	zkd_rcu_read_unlock();
}

void fourlw_handle(void *ctx, struct net_conn *c, const char cmd4[4], const uint8_t *arg, size_t arg_len)
{
	struct zkd_server *srv = ctx;
	char cmd[5];
	memcpy(cmd, cmd4, 4);
	cmd[4] = '\0';
	struct outbuf o = OUTBUF_INIT;
	fourlw_answer(srv, cmd, arg, arg_len, &o);
	if (o.failed)
		log_warn("client %s: four-letter word '%s': out of memory, answer cut at %zu bytes",
			 net_conn_peer(c), cmd, o.len);
	if (o.len)
		net_conn_send(c, o.buf, o.len);
	ob_free(&o);
	log_info("client %s: four-letter word '%s'", net_conn_peer(c), cmd);
	net_conn_close(c, "four-letter word answered");
}
