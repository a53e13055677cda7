/*
 * prometheus.c - ZooKeeper's PrometheusMetricsProvider: GET /metrics on
 * metricsProvider.httpHost:httpPort (default 0.0.0.0:7000) answers in the
 * Prometheus text exposition format 0.0.4.
 *
 * Why it is built this way: what a scrape shows is (1) the server values
 * mntr computes on demand (znode_count, watch_count, connections, ...),
 * gathered by monitor_collect and exported as gauges, as ZooKeeper
 * registers them (ZooKeeperServer.registerMetrics), and (2) everything in
 * the metrics registry (net/metrics.h): counters, gauges and summaries that
 * the pipeline records as it runs. The registry renders itself; this file
 * only adds (1), skipping what the registry already shows, and serves the
 * text over net/http.h's server (its own thread, zkd-metrics), so a scrape
 * never touches a client's I/O thread.
 *
 * Threads: prometheus_start/stop run on the main thread; the handler on
 * zkd-metrics. `server` is written only by start/stop, while zkd-metrics
 * is not running.
 */
#include <stdio.h>
#include <string.h>

#include <urcu.h>

#include "monitor.h"
#include "net/http.h"
#include "net/log.h"
#include "net/tsan.h"
#include "net/metrics.h"
#include "server.h"

#define PROVIDER_CLASS "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"

static struct http_server *server;

/* HELP lines for the values mntr computes (ZooKeeper's HELP is the name). */
static const struct {
	const char *name, *help;
} helps[] = {
	{ "znode_count", "Znodes in the data tree" },
	{ "watch_count", "Watches set (data and child watches)" },
	{ "ephemerals_count", "Ephemeral znodes" },
	{ "approximate_data_size", "Bytes of znode data and paths in the tree (approximate)" },
	{ "num_alive_connections", "Open client connections" },
	{ "outstanding_requests", "Requests received and not yet answered" },
	{ "packets_received", "Client packets received" },
	{ "packets_sent", "Client packets sent" },
	{ "avg_latency", "Average request latency since start or srst (ms)" },
	{ "min_latency", "Minimum request latency since start or srst (ms)" },
	{ "max_latency", "Maximum request latency since start or srst (ms)" },
	{ "global_sessions", "Sessions open in the ensemble" },
	{ "local_sessions", "Local sessions" },
	{ "uptime", "Time since the server started (ms)" },
	{ "open_file_descriptor_count", "Open file descriptors" },
	{ "max_file_descriptor_count", "File descriptor limit" },
	{ "read_requests", "Read requests received" },
	{ "write_requests", "Write requests received" },
	{ "quorum_size", "Voting members of the ensemble" },
	{ "leader_uptime", "Time since this server began to serve as the leader (ms)" },
	{ "synced_followers", "Followers in sync with this leader" },
	{ "synced_observers", "Observers in sync with this leader" },
	{ "pending_syncs", "Learners this leader is syncing" },
	{ "learners", "Learners connected to this leader" },
	{ "synced_non_voting_followers", "Non-voting followers in sync with this leader" },
};

/* String values that become an info-style gauge (name_info{name="v"} 1);
 * the rest (last_zxid, ...) change too often to be label values. */
static const char *const info_strings[] = { "version", "server_state" };

static const char *help_for(const char *name)
{
	for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
		if (strcmp(helps[i].name, name) == 0)
			return helps[i].help;
	return name;
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t m)
{
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* The registry's family names, collected once per scrape. */
struct families {
	const char *v[1024];
	int n;
};

static void collect_family(void *arg, const struct metric_view *v)
{
	struct families *f = arg;
	if (v->first && f->n < (int)(sizeof f->v / sizeof f->v[0]))
		f->v[f->n++] = v->name;
}

/* True if mntr's value `name` is one of the registry's series under mntr's
 * spelling: the family x itself, or x as a whole '_'-separated part of it
 * (avg_x, p99_x, x_<label>, avg_<label>_x, avg_x_<label>). */
static bool in_registry(const struct families *f, const char *name)
{
	size_t n = strlen(name);
	for (int i = 0; i < f->n; i++) {
		const char *x = f->v[i];
		size_t m = strlen(x);
		if (strcmp(name, x) == 0)
			return true;
		if (n > m && name[n - m - 1] == '_' && ends_with(name, n, x, m))
			return true;
		if (n > m && name[m] == '_' && strncmp(name, x, m) == 0)
			return true;
		for (const char *p = strstr(name, x); p; p = strstr(p + 1, x))
			if (p > name && p[-1] == '_' && p[m] == '_')
				return true;
	}
	return false;
}

struct scrape {
	struct outbuf *o;
	struct families fam;
};

static void emit_mon(void *arg, const struct mon_value *v)
{
	struct scrape *sc = arg;
	if (!v->name || in_registry(&sc->fam, v->name))
		return;
	switch (v->kind) {
	case MON_LONG:
		prom_gauge(sc->o, v->name, help_for(v->name), (double)v->l);
		break;
	case MON_DOUBLE:
		prom_gauge(sc->o, v->name, help_for(v->name), v->d);
		break;
	case MON_STRING:
		for (size_t i = 0; i < sizeof info_strings / sizeof info_strings[0]; i++) {
			if (strcmp(v->name, info_strings[i]) != 0 || !v->s)
				continue;
			char name[128], help[160];
			snprintf(name, sizeof name, "%s_info", v->name);
			snprintf(help, sizeof help, "The server's %s, as a label", v->name);
			prom_header(sc->o, name, help, "gauge");
			prom_name(sc->o, name);
			ob_write(sc->o, "{", 1);
			prom_name(sc->o, v->name);
			ob_write(sc->o, "=\"", 2);
			for (const char *p = v->s; *p; p++) {
				if (*p == '\\' || *p == '"')
					ob_write(sc->o, "\\", 1);
				if (*p == '\n')
					ob_write(sc->o, "\\n", 2);
				else
					ob_write(sc->o, p, 1);
			}
			ob_write(sc->o, "\"} 1\n", 5);
		}
		break;
	}
}

void prometheus_render(struct zkd_server *srv, struct outbuf *o)
{
	struct scrape sc = { .o = o };
	metrics_each(collect_family, &sc.fam);
	if (srv) {
		rcu_read_lock();
		monitor_collect(srv, emit_mon, &sc);
		zkd_rcu_read_unlock();
	}
	metrics_write_prometheus(o);
}

static void handle(void *ctx, const struct http_request *req, struct http_response *resp)
{
	if (strcmp(req->path, "/metrics") != 0) {
		resp->status = 404;
		ob_printf(&resp->body, "Not Found: zkd serves Prometheus metrics at /metrics\n");
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		resp->status = 405;
		ob_printf(&resp->body, "Method Not Allowed\n");
		return;
	}
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	prometheus_render(ctx, &resp->body);
}

int prometheus_start(struct zkd_server *srv, char *err, size_t errlen)
{
	const char *cls = srv->cfg.metrics_class;
	if (!cls[0])
		return 0;
	if (strcmp(cls, PROVIDER_CLASS) != 0) {
		if (!strstr(cls, "NullMetricsProvider") && !strstr(cls, "DefaultMetricsProvider"))
			log_warn("metricsProvider.className=%s is not one zkd knows; no metrics endpoint "
				 "(zkd serves " PROVIDER_CLASS ")", cls);
		return 0;
	}
	const char *host = srv->cfg.metrics_host;
	if (strcmp(host, "0.0.0.0") == 0)
		host = "";
	server = http_start("zkd-metrics", host, srv->cfg.metrics_port, handle, srv, err, errlen);
	if (!server)
		return -1;
	log_info("Prometheus metrics at http://%s:%d/metrics", srv->cfg.metrics_host[0] ? srv->cfg.metrics_host : "0.0.0.0",
		 http_port(server));
	return 0;
}

int prometheus_port(void)
{
	return server ? http_port(server) : -1;
}

void prometheus_stop(void)
{
	http_stop(server);
	server = NULL;
}
