/*
 * monitor.h - the values `mntr` prints, gathered once for every way an
 * operator reads them: the mntr four-letter word (zk_<name>\t<value>),
 * the AdminServer's `monitor` command (JSON) and Prometheus (/metrics).
 *
 * ZooKeeper builds mntr the same way: a fixed set of server values first
 * (ZooKeeperServer's stats), then every registered metric.
 */
#ifndef ZKD_SERVER_MONITOR_H
#define ZKD_SERVER_MONITOR_H

#include <stdbool.h>

struct zkd_server;

enum mon_kind { MON_LONG, MON_DOUBLE, MON_STRING };

struct mon_value {
	const char *name;   /* without mntr's "zk_" prefix: "znode_count" */
	enum mon_kind kind;
	long long l;
	double d;
	const char *s;      /* valid during the callback only */
};

/* Calls emit for every mntr value, in mntr's order. Must run inside an RCU
 * read-side section (the tree and session table may be replaced). Returns
 * false, emitting nothing, while the server is not serving (mntr then
 * answers ZooKeeper's "not currently serving" sentence). */
bool monitor_collect(struct zkd_server *srv, void (*emit)(void *arg, const struct mon_value *v), void *arg);

/* Its peer state, as srvr's Mode line and mntr's zk_server_state name it. */
const char *monitor_mode(struct zkd_server *srv);

/* The node count as ZooKeeper reports it (its root counts twice). Inside
 * an RCU read-side section. */
long monitor_znode_count(struct zkd_server *srv);

#endif
