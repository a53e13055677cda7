/*
 * cnxmgr.h - the election port's connections (ZooKeeper's QuorumCnxManager),
 * used by fle.c only.
 *
 * The manager keeps at most one TCP connection per pair of servers on the
 * election port and moves whole messages over it: the election hands it
 * "send these bytes to sid N" and gets back "sid N sent these bytes". It does
 * not know what a message means.
 *
 * Wire format, as ZooKeeper 3.8 speaks it (all integers big-endian):
 *   handshake, by the side that connects:
 *     long  protocol version: -65536 (V1, one "host:port") or -65535 (V2,
 *           '|'-separated "host:port"s); a value >= 0 is a pre-3.5 peer's sid
 *           and nothing follows it
 *     long  sid of the connecting server
 *     int   length (1..2048), then that many bytes of its election address
 *   then, both ways, messages: int length (1..512 KiB) + that many bytes.
 * Who keeps a connection: only one initiated by the higher sid. A server
 * that wants to talk to a higher sid still connects and sends the handshake,
 * then hangs up; the higher sid, seeing a lower sid connect, drops whatever
 * connection it had to it and connects back.
 *
 * With sslQuorum every connection is TLS first, both ways, and all of the
 * above runs inside it; the TLS handshake is one more non-blocking step of
 * the same loop (cnxmgr.c). With portUnification an accepted connection is
 * TLS or plain as its first byte says, and sslQuorum alone decides how this
 * server connects out.
 *
 * Threads: cnx_run is the body of the election thread (zkd-election) and
 * owns every socket. cnx_send, cnx_connect_all and cnx_have_delivered may be
 * called from any thread; the deliver callback runs on the election thread.
 */
#ifndef ZKD_ELECTION_CNXMGR_H
#define ZKD_ELECTION_CNXMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "election.h"

#define CNX_PROTOCOL_V1 (-65536LL)
#define CNX_PROTOCOL_V2 (-65535LL)
#define CNX_MAX_ADDRESS 2048            /* QuorumCnxManager.maxBuffer */
#define CNX_MAX_MESSAGE (512 * 1024)    /* QuorumCnxManager.PACKETMAXSIZE */
#define CNX_OBSERVER_ID INT64_MAX       /* QuorumPeer.OBSERVER_ID */

struct cnxmgr;

/* A whole message of len bytes (1..CNX_MAX_MESSAGE) arrived from sid. Runs
 * on the election thread; msg is valid during the call only. */
typedef void (*cnx_deliver_fn)(void *arg, int64_t sid, const uint8_t *msg, size_t len);

/* Binds the election port of cfg->myid's server line (the wildcard address
 * if cfg->listen_on_all_ips), retrying a failed bind once a second up to
 * cfg->election_bind_retries times (0: for ever). cfg must outlive the
 * manager. NULL and a reason in err on failure. */
struct cnxmgr *cnx_create(const struct quorum_config *cfg, cnx_deliver_fn deliver, void *arg,
			  char *err, size_t errlen);

/* The election thread's loop: accepts, connects, reads and writes until
 * cnx_halt. */
void cnx_run(struct cnxmgr *cm);

/* Queues msg for sid, replacing a message still queued for it (one slot per
 * peer, as ZooKeeper's send queues of capacity 1), and connects to sid if
 * there is no connection. Any thread. */
void cnx_send(struct cnxmgr *cm, int64_t sid, const uint8_t *msg, size_t len);

/* Connects to every peer ever sent to that has no connection. Any thread. */
void cnx_connect_all(struct cnxmgr *cm);

/* True if some peer's slot is empty (ZooKeeper's haveDelivered: any queue
 * drained, not all). Any thread. */
bool cnx_have_delivered(const struct cnxmgr *cm);

/* True if a connection to sid is up (for tests and logs). Any thread. */
bool cnx_connected(const struct cnxmgr *cm, int64_t sid);

/* Makes cnx_run return. Any thread. */
void cnx_halt(struct cnxmgr *cm);

/* Closes every socket and frees the manager; cnx_run must have returned
 * (or never run). */
void cnx_destroy(struct cnxmgr *cm);

#endif
