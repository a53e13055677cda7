/*
 * server.h - the public face of server/: one running zkd and what the
 * operator-facing parts (four-letter words) need to describe it.
 */
#ifndef ZKD_SERVER_SERVER_H
#define ZKD_SERVER_SERVER_H

#include <stdint.h>

#include "config.h"
#include "net/net.h"
#include "net/outbuf.h"
#include "processors/processors.h"

#define ZKD_VERSION "3.8.0-zkd-0.1"

struct zkd_server {
	struct zkd_config cfg;      /* read-only once started */
	struct zk_state st;
	int64_t started_ms;         /* wall clock */
	struct quorum *quorum;      /* NULL standalone (election/election.h) */
};

/* The four-letter-word handler for net's on_4lw (ctx = struct zkd_server *);
 * arg holds what followed the word (stmk's mask). */
void fourlw_handle(void *ctx, struct net_conn *c, const char cmd[4], const uint8_t *arg, size_t arg_len);
/* Appends the answer to `cmd` to o (tests and the AdminServer use it). */
void fourlw_answer(struct zkd_server *srv, const char *cmd, const uint8_t *arg, size_t arg_len,
		   struct outbuf *o);

/* The AdminServer (server/admin.c): ZooKeeper's /commands over HTTP on
 * admin.serverAddress:admin.serverPort unless admin.enableServer=false
 * (then does nothing and returns 0). -1 with err filled if it cannot
 * start; ZooKeeper then logs and runs on without it, and so does zkd. */
int admin_start(struct zkd_server *srv, char *err, size_t errlen);
void admin_stop(void);
/* Prometheus /metrics (server/prometheus.c): serves it when
 * metricsProvider.className names ZooKeeper's PrometheusMetricsProvider
 * (otherwise does nothing and returns 0); -1 with err filled if the port
 * cannot be had (ZooKeeper then refuses to start too). */
int prometheus_start(struct zkd_server *srv, char *err, size_t errlen);
/* The port /metrics is served on, -1 if none. */
int prometheus_port(void);
void prometheus_stop(void);
/* The /metrics text: mntr's values as gauges, then the metrics registry. */
void prometheus_render(struct zkd_server *srv, struct outbuf *o);

#endif
