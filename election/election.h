/*
 * election.h - the public face of election/: how a zkd server takes part in
 * an ensemble.
 *
 *   fle.c / cnxmgr.c   Fast Leader Election on the election port, in
 *                      ZooKeeper 3.8's wire format (thread zkd-election)
 *   qpacket.c          QuorumPacket framing on the quorum port
 *   leader.c           the leader's side of ZAB: discovery, sync, broadcast
 *   learner.c          the follower's and observer's side of ZAB
 *   peer.c             the peer's life: LOOKING -> LEADING / FOLLOWING /
 *                      OBSERVING -> LOOKING ... (thread zkd-peer)
 *   zabmetrics.c       ZooKeeper's ServerMetrics of the quorum (syncs,
 *                      what learners receive, time unavailable)
 *
 * server/ fills a quorum_config from zoo.cfg (server.N lines, myid,
 * initLimit, syncLimit, ...) and calls quorum_start; election/ drives
 * processors/ through the role hooks of processors.h.
 */
#ifndef ZKD_ELECTION_ELECTION_H
#define ZKD_ELECTION_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define QUORUM_MAX_MEMBERS 64

/* ZooKeeper's QuorumPeer.ServerState, by ordinal: the numbers go on the wire
 * in election notifications. */
enum peer_state {
	PEER_LOOKING = 0,
	PEER_FOLLOWING = 1,
	PEER_LEADING = 2,
	PEER_OBSERVING = 3,
};

/* One server.N line. */
struct quorum_member {
	int64_t sid;
	char host[256];
	int quorum_port;
	int election_port;
	bool observer;
	char client_host[256];      /* "" if the line gave none */
	int client_port;            /* 0 if the line gave none */
};

struct quorum_config {
	int64_t myid;
	int n;
	struct quorum_member members[QUORUM_MAX_MEMBERS];
	int tick_time;              /* ms */
	int init_limit, sync_limit; /* ticks */
	bool listen_on_all_ips;     /* quorumListenOnAllIPs */
	int election_bind_retries;  /* electionPortBindRetry; 0 = retry forever */
	/* How long a LOOKING peer waits, once a quorum agrees, for a better vote
	 * (ZooKeeper's finalizeWait, zookeeper.fle.minNotificationInterval,
	 * 200 ms there), and the cap of its back-off between rounds of
	 * notifications (zookeeper.fle.maxNotificationInterval, 60 s there). */
	int finalize_wait_ms;
	int max_notification_interval_ms;
	/* readonlymode.enabled: after max(2 s, tickTime) without a quorum the
	 * server serves read-only sessions */
	bool read_only_enabled;
	/* sslQuorum: TLS on the quorum and election ports, both ways, with
	 * the ssl.quorum.* settings (tls.key_prefix "ssl.quorum"); mutual by
	 * default (ssl.quorum.clientAuth=need, as ZooKeeper). Plain TCP when
	 * false. ssl.quorum.hostnameVerification (default true, as
	 * ZooKeeper): the other server's certificate must name its address
	 * (see net_tls_peer_check). */
	bool ssl_quorum;
	/* portUnification: the quorum and election ports take TLS and plain
	 * connections alike, told apart by the first byte (a TLS handshake
	 * record is 0x16), while ssl_quorum alone says how this server
	 * connects out. ZooKeeper's way to move a running ensemble to TLS one
	 * member at a time. Needs the ssl.quorum.* settings. */
	bool port_unification;
	struct net_tls_config tls;
	bool ssl_hostname_verification;
	/* sslQuorumReloadCertFiles: new quorum connections use the ssl.quorum
	 * files as they are now, not as they were at start (qtls_ctx.c). */
	bool reload_cert_files;
	/* Built by quorum_start from tls when ssl_quorum or port_unification
	 * (NULL otherwise); whatever the caller puts here is ignored. */
	struct qtls_ctx *tls_ctx;
};

/* Monotonic milliseconds: the one clock of every timer and deadline in
 * election/ (quorum.c). */
int64_t quorum_now_ms(void);
/* The member with id sid, or NULL. */
const struct quorum_member *quorum_member(const struct quorum_config *c, int64_t sid);
/* Voting members (participants). */
int quorum_voters(const struct quorum_config *c);
/* True if the sids in `acked` (n of them, no duplicates) hold a majority of
 * the voting members (ZooKeeper's QuorumMaj.containsQuorum). */
bool quorum_has_majority(const struct quorum_config *c, const int64_t *acked, int n);
/* ---- the quorum's TLS context (qtls_ctx.c) ---------------------------------- */

struct qtls_ctx;
struct ssl_st;
/* The context of tls; with reload, qtls_ctx_check rebuilds it when the
 * files change. NULL with err. */
struct qtls_ctx *qtls_ctx_new(const struct net_tls_config *tls, bool reload, char *err, size_t errlen);
/* A new non-blocking TLS session on fd from the context in use (any thread). */
struct ssl_st *qtls_ctx_ssl(struct qtls_ctx *q, int fd, bool client);
/* The election thread, every loop: at most once a second, reloads the
 * context if its files changed. Returns ms until it wants to look again
 * (-1: never, reloading is off or q is NULL). */
int qtls_ctx_check(struct qtls_ctx *q);
void qtls_ctx_free(struct qtls_ctx *q);

/* Whether an accepted quorum or election connection speaks TLS: with
 * port_unification, by a look at its first byte (waiting up to timeout_ms
 * for it; -1 when it never came or the peer left), else as ssl_quorum
 * says. */
int quorum_accepted_tls(const struct quorum_config *c, int fd, int timeout_ms);
/* The same look, without waiting: 1 TLS, 0 plain, -1 peer gone, -2 no byte yet. */
int quorum_sniff_tls(int fd);
/* True if a and b hold the same IP address (an IPv4-mapped IPv6 address
 * equals its IPv4 one); ports are not compared. Quorum TLS uses it to find
 * the server.N hosts that resolve to a peer's address. */
struct sockaddr;
bool quorum_same_ip(const struct sockaddr *a, const struct sockaddr *b);

/* ---- the peer (peer.c) --------------------------------------------------------- */

struct quorum;
struct zk_state;

/* Starts the election thread and the peer thread (zkd-peer), which from
 * now on runs this server's role: st must be recovered and its txn log
 * open, and st->serving false; the peer sets it while it has a leader.
 * track is the session tracker's add (a new leader files every session).
 * NULL and err on failure. */
struct quorum *quorum_start(const struct quorum_config *cfg, struct zk_state *st,
			    void (*track)(void *arg, int64_t session_id), char *err, size_t errlen);
/* Stops both threads; the pipeline is stopped when it returns. */
void quorum_stop(struct quorum *q);
/* enum peer_state now, and the sid it follows or leads (0 while LOOKING). */
int quorum_state(const struct quorum *q);
int64_t quorum_leader(const struct quorum *q);

/* Registers the quorum's metrics (zabmetrics.c) in the metrics registry
 * (net/metrics.h). server/ calls it at start in every mode, standalone
 * too, because ZooKeeper shows its ServerMetrics in every mode. */
void quorum_metrics_register(void);

/* What mntr shows of the ensemble (leader figures are 0 elsewhere). */
struct quorum_stats {
	char peer_state[48];        /* "leading - broadcast", "looking", ... as ZooKeeper */
	int quorum_size;            /* voting members (every role) */
	long long leader_uptime;    /* ms since this leader's NEWLEADER quorum; 0 before */
	int learners;               /* connected learners */
	int synced_followers;       /* followers past UPTODATE */
	int synced_observers;
	int pending_syncs;          /* learners' syncs not answered yet */
	long last_proposal_size, min_proposal_size, max_proposal_size;
};
void quorum_get_stats(const struct quorum *q, struct quorum_stats *out);

#endif
