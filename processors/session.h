/*
 * session.h - the table of live sessions (internal to processors/ and
 * server/'s tracker, through processors.h's opaque pointer).
 *
 * A cds_lfht keyed by session id. Final is the only thread that adds and
 * removes (createSession / closeSession txns are applied there, so every
 * server of an ensemble agrees on the set); I/O threads, Prep and the
 * session tracker look sessions up under rcu_read_lock. A removed session
 * is freed with call_rcu.
 *
 * The fields a session changes after creation are atomics with one writer
 * each, named beside them.
 */
#ifndef ZKD_PROCESSORS_SESSION_H
#define ZKD_PROCESSORS_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu.h>
#include <urcu/rculfhash.h>

#include "net/net.h"
#include "storage/snapshot.h"

struct zsession {
	struct cds_lfht_node hnode;
	struct rcu_head rcu;
	int64_t id;
	atomic_int timeout_ms;          /* the owning I/O thread, on (re)connect */
	atomic_llong deadline_ms;       /* I/O thread on every packet: now + timeout (monotonic) */
	atomic_ullong conn;             /* net_addr of its connection; I/O threads on (re)connect */
	atomic_bool closing;            /* set once (exchange) by whoever submits the close */
	/* The server whose client holds the session (ZooKeeper's session
	 * owner), leader only: set by Final on createSession and by a
	 * REVALIDATE or a reconnect on the leader; Prep refuses a request
	 * from any other server with SESSIONMOVED. 0 = not known. */
	atomic_llong owner;
	atomic_bool touched;            /* I/O threads set on traffic; a learner's PING
	                                   reporter clears (reports it to the leader) */
};

struct session_table {
	struct cds_lfht *ht;
	atomic_long count;
	atomic_llong next_id;           /* I/O threads, fetch_add on each new session */
};

struct session_table *sessions_new(int64_t myid);
void sessions_free(struct session_table *t);
/* Reader: inside rcu_read_lock. */
struct zsession *sessions_find(struct session_table *t, int64_t id);
/* Any thread: every session's (id, timeout), as a snapshot records them,
 * in a fresh array (free it); returns how many. */
size_t sessions_list(struct session_table *t, struct snap_session **out);
/* Reader: inside rcu_read_lock; fn sees every session in no order. */
void sessions_foreach(struct session_table *t, void (*fn)(void *arg, const struct zsession *s), void *arg);
/* Final only. */
struct zsession *sessions_add(struct session_table *t, int64_t id, int timeout_ms);
void sessions_remove(struct session_table *t, struct zsession *s);
/* A new session id, made the way ZooKeeper makes them. */
int64_t sessions_next_id(struct session_table *t);
/* ZooKeeper's password for a session: java.util.Random(id ^ 0xB3415C00).nextBytes(16). */
void session_password(int64_t id, uint8_t out[16]);
int64_t mono_ms(void);
int64_t wall_ms(void);

#endif
