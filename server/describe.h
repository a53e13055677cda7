/*
 * describe.h - the server's insides as the operator commands show them:
 * sessions by expiry time and ephemerals by session (dump), the size of
 * the data directories (dirs), ZooKeeper's trace mask (gtmk, stmk).
 *
 * Each gives data, not text, because two front ends print it: the
 * four-letter words (fourlw.c, ZooKeeper's text) and the AdminServer
 * (admin.c, ZooKeeper's JSON).
 */
#ifndef ZKD_SERVER_DESCRIBE_H
#define ZKD_SERVER_DESCRIBE_H

#include <stdint.h>

struct zkd_server;

/* Sessions grouped by the tick at which they expire unless heard from,
 * earliest first: fn once per session, with that tick as wall-clock ms.
 * Returns the number of sessions; *n_sets gets the number of ticks. */
long describe_session_expiry(struct zkd_server *srv, long *n_sets,
			     void (*fn)(void *arg, int64_t expiry_ms, int64_t session_id), void *arg);

/* Ephemeral nodes by owning session, sessions ascending, each session's
 * paths sorted: fn once per node. Returns the number of sessions. */
long describe_ephemerals(struct zkd_server *srv, void (*fn)(void *arg, int64_t session_id, const char *path),
			 void *arg);

/* Bytes in the snapshot and txn-log directories (their version-2/), as
 * ZooKeeper's getDataDirSize/getLogDirSize count them. */
void describe_dir_sizes(struct zkd_server *srv, long long *data_bytes, long long *log_bytes);

/* ZooKeeper's ZooTrace text trace mask: zkd traces nothing by it, but
 * gtmk/stmk read and set it as ZooKeeper does (default 306). */
long long describe_trace_mask(void);
void describe_set_trace_mask(long long mask);

/* ZooKeeper's digest log as `hash` prints it, appended to o. */
struct outbuf;
void describe_digests(struct zkd_server *srv, struct outbuf *o);

#endif
