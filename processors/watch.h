/*
 * watch.h - ZooKeeper's two watch managers (data and child watches) and
 * the delivery of their events to the I/O threads (internal to processors/).
 *
 * A watcher is a connection (its net_addr), as in ZooKeeper, where watches
 * belong to the ServerCnxn and a client re-registers them with setWatches
 * after it reconnects.
 *
 * Who touches what:
 *  - I/O threads register and remove watches (watch=true reads, addWatch,
 *    removeWatches, setWatches, connection close);
 *  - Final triggers them after applying a txn and queues the events;
 *  - each I/O thread drains the events queued for its connections.
 * The table is striped by path hash, a mutex per stripe. A read without
 * watch=true never touches it; Final takes the stripes of the paths each
 * txn changes (uncontended unless a client is registering a watch on the
 * same stripe at that moment).
 */
#ifndef ZKD_PROCESSORS_WATCH_H
#define ZKD_PROCESSORS_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

enum watch_kind { WATCH_DATA = 0, WATCH_CHILD = 1 };
enum watch_mode { WM_STANDARD = 0, WM_PERSISTENT = 1, WM_RECURSIVE = 2 };

void watches_init(void);
void watches_free(void);

/* Registers who on path (ZooKeeper keeps one watch per watcher, path and
 * manager: registering twice is one watch). */
void watch_add(int kind, const char *path, size_t len, net_addr who, int mode);
/* (I/O thread) A watch=true read: begin locks the path's stripe, so that
 * watch_add_held and the read of the node that follows are one step
 * against Final's change of that path; end unlocks. */
void watch_read_begin(int kind, const char *path, size_t len);
void watch_add_held(int kind, const char *path, size_t len, net_addr who, int mode);
bool watch_remove_held(int kind, const char *path, size_t len, net_addr who);
void watch_read_end(int kind, const char *path, size_t len);

/* (Final) The stripes of the paths a txn changes, held across its publish
 * and its trigger. */
struct watch_locks { uint64_t mask[2]; };
void watch_locks_add(struct watch_locks *l, int kind, const char *path, size_t len);
void watch_locks_acquire(const struct watch_locks *l);
void watch_locks_release(const struct watch_locks *l);
/* Removes who's watch on path from one manager; true if there was one. */
bool watch_remove(int kind, const char *path, size_t len, net_addr who);
bool watch_contains(int kind, const char *path, size_t len, net_addr who);
long watch_total(void);
/* Calls fn for every watch, one stripe lock held at a time (for wchc/wchp). */
void watch_foreach(void (*fn)(void *arg, int kind, const char *path, size_t len, net_addr who), void *arg);

/* The watchers an event reaches, as a small set. */
struct watch_hits {
	net_addr *v;
	int n, cap;
};
bool hits_contains(const struct watch_hits *h, net_addr a);
void hits_free(struct watch_hits *h);

/* (Final) Collects into hits the watchers of `kind` that an event of `type`
 * on path reaches, leaving out those in `suppress`; one-shot watches fire
 * once and are gone, persistent ones stay, recursive ones on any ancestor
 * fire for everything but NodeChildrenChanged (ZooKeeper's triggerWatch,
 * and like it records how many it reached: node_*_watch_count). */
void watch_trigger(const struct watch_locks *held, int kind, const char *path, size_t len, int type,
		   struct watch_hits *hits, const struct watch_hits *suppress);

/* ---- delivery --------------------------------------------------------------- */

/* (Final) Queues a WatcherEvent for the connection at `to`, fired by the
 * change with this zxid. */
void notify_post(net_addr to, int type, const char *path, size_t len, int64_t zxid);
/* (Final, after a batch) Wakes each I/O thread that has events queued. */
void notify_kick(void);
/* (I/O thread) True if events are queued for this thread. */
bool notify_pending(int io_index);
/* Events to hold back while a reply is being written: those for `conn` of
 * changes after the state the reply shows (max_zxid) go after the reply, as
 * they would in ZooKeeper, where the change came after the read. */
struct event;
struct notify_hold {
	net_addr conn;
	int64_t max_zxid;
	struct event *held;             /* filled by notify_drain */
};
/* (I/O thread) Writes every queued event into its connection's output,
 * except those `hold` holds back (hold may be NULL); calls on_event for each
 * delivered one (for the connection's bookkeeping). */
void notify_drain(int io_index, const struct notify_hold *hold,
		  void (*on_event)(struct net_conn *c, int type, const char *path, size_t len));
/* (I/O thread) Writes the events a notify_drain held back. */
void notify_release(struct notify_hold *hold,
		    void (*on_event)(struct net_conn *c, int type, const char *path, size_t len));

#endif
