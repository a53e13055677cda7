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
 * The table is striped by path hash, a mutex per stripe; nothing here runs
 * for a read without watch=true or a write that triggers nothing, except an
 * atomic load of the watch count.
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
 * fire for everything but NodeChildrenChanged (ZooKeeper's triggerWatch). */
void watch_trigger(int kind, const char *path, size_t len, int type, struct watch_hits *hits,
		   const struct watch_hits *suppress);

/* ---- delivery --------------------------------------------------------------- */

/* (Final) Queues a WatcherEvent for the connection at `to`. */
void notify_post(net_addr to, int type, const char *path, size_t len);
/* (Final, after a batch) Wakes each I/O thread that has events queued. */
void notify_kick(void);
/* (I/O thread) True if events are queued for this thread. */
bool notify_pending(int io_index);
/* (I/O thread) Writes every queued event into its connection's output;
 * calls on_event for each delivered one (for the connection's bookkeeping). */
void notify_drain(int io_index, void (*on_event)(struct net_conn *c, int type, const char *path, size_t len));

#endif
