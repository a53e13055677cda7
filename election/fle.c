/*
 * fle.c - Fast Leader Election (see fle.h for who calls what).
 *
 * This is ZooKeeper 3.8's FastLeaderElection with its threads folded:
 * ZooKeeper's WorkerReceiver (decode, answer, queue for the election) runs
 * on the election thread as the connection manager's deliver callback;
 * its WorkerSender is gone (cnx_send queues straight into the connection
 * manager's per-peer slot); lookForLeader runs on the peer thread that
 * calls fle_lookup. The rules are ZooKeeper's, down to the quirks that
 * decide who agrees with whom (Vote.equals, checkLeader, the
 * "out of election" votes), because a zkd server must reach the same
 * decisions as the ZooKeeper servers it votes with. What differs:
 *   - the decided vote and the new state are published together, under one
 *     lock, so an answer never pairs a new state with an old vote;
 *   - finalizeWait (also the first notification timeout) is
 *     cfg->finalize_wait_ms, which zkd keeps far below ZooKeeper's 200 ms
 *     because a failover must complete in under 200 ms;
 *   - there is no reconfiguration: the configuration text received is
 *     checked for its length and otherwise ignored, and ours is a static
 *     configuration's (version 0), which never makes a ZooKeeper server
 *     think a reconfiguration is due.
 */
#include "fle.h"

#include "cnxmgr.h"
#include "net/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLE_RECV_CAPACITY 100               /* QuorumCnxManager.RECV_CAPACITY */
#define FLE_DEFAULT_FINALIZE_WAIT_MS 200    /* ZooKeeper's finalizeWait */
#define FLE_DEFAULT_MAX_INTERVAL_MS 60000   /* ZooKeeper's maxNotificationInterval */

struct fle {
	struct quorum_config cfg;   /* immutable copy; cnxmgr points into it */
	bool voter;                 /* our server line is a participant */
	int finalize_wait_ms;
	int max_interval_ms;
	char *config_text;          /* immutable: what we send as our configuration */
	size_t config_len;
	struct cnxmgr *cm;
	pthread_t thread;           /* zkd-election: runs cnx_run, which calls on_message */

	/* mu guards everything below. Writers: the peer thread in fle_lookup
	 * (proposal, round, state, ring pops) and fle_set_state; the election
	 * thread (ring pushes); fle_interrupt and fle_stop (stopping).
	 * Readers: the election thread when it answers, the peer thread when
	 * it waits. Never held while calling into cnxmgr. */
	pthread_mutex_t mu;
	/* Signalled when a notification is queued, when stopping is set and
	 * when a fle_lookup returns; waited on by fle_lookup and fle_stop. */
	pthread_cond_t cond;
	int32_t state;              /* enum peer_state, as we announce it */
	struct fle_vote current;    /* what we answer with when not LOOKING */
	bool have_current;
	int64_t logicalclock;       /* the election round */
	int64_t prop_leader, prop_zxid, prop_epoch;   /* our proposal in this round */
	/* Notifications for the election in progress (ZooKeeper's recvqueue):
	 * pushed by the election thread (and by the peer thread for its own
	 * vote), popped by the peer thread; when full the oldest is dropped. */
	struct fle_notification ring[FLE_RECV_CAPACITY];
	int ring_head, ring_count;
	bool stopping;              /* fle_lookup returns -1 from now on */
	int lookups;                /* fle_lookup calls in progress */
};

/* One sender's vote as the election keeps it (ZooKeeper's Vote). */
struct fle_rec {
	bool set;
	int64_t leader, zxid, election_epoch, peer_epoch;
	int32_t state, version;
};

/* The state of one fle_lookup call, on the peer thread's stack. The vote
 * sets are indexed like cfg.members. */
struct election {
	struct fle *f;
	int64_t init_id, init_zxid, init_epoch;     /* what we propose when we know no better */
	struct fle_rec recvset[QUORUM_MAX_MEMBERS];  /* votes of this round */
	struct fle_rec outofelection[QUORUM_MAX_MEMBERS]; /* FOLLOWING/LEADING answers, any round */
	struct fle_vote *out;
};

/* ---- wire format ------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t get64(const uint8_t *p)
{
	return (int64_t)((uint64_t)get32(p) << 32 | get32(p + 4));
}

size_t fle_encode(const struct fle_notification *n, const char *config, size_t config_len,
		  uint8_t *buf, size_t cap)
{
	size_t len = FLE_MSG_HEADER + config_len;
	if (cap < len || config_len > INT32_MAX)
		return 0;
	put32(buf, (uint32_t)n->state);
	put64(buf + 4, (uint64_t)n->leader);
	put64(buf + 12, (uint64_t)n->zxid);
	put64(buf + 20, (uint64_t)n->election_epoch);
	put64(buf + 28, (uint64_t)n->peer_epoch);
	put32(buf + 36, FLE_MSG_VERSION);
	put32(buf + 40, (uint32_t)config_len);
	if (config_len)
		memcpy(buf + FLE_MSG_HEADER, config, config_len);
	return len;
}

int fle_decode(const uint8_t *msg, size_t len, struct fle_notification *n,
	       const uint8_t **config, size_t *config_len, char *why, size_t whylen)
{
	if (config) {
		*config = NULL;
		*config_len = 0;
	}
	if (len < 28) {
		snprintf(why, whylen, "short notification (%zu bytes)", len);
		return -1;
	}
	n->state = (int32_t)get32(msg);
	n->leader = get64(msg + 4);
	n->zxid = get64(msg + 12);
	n->election_epoch = get64(msg + 20);
	n->version = 0;
	if (len == 28) {                /* before ZOOKEEPER-107: no peer epoch */
		n->peer_epoch = n->zxid >> 32;
		return 0;
	}
	if (len < 36) {
		snprintf(why, whylen, "truncated notification (%zu bytes)", len);
		return -1;
	}
	n->peer_epoch = get64(msg + 28);
	if (len == 40)                  /* before 3.4.6: no version (the last int is not read) */
		return 0;
	if (len < 40) {
		snprintf(why, whylen, "truncated notification (%zu bytes)", len);
		return -1;
	}
	n->version = (int32_t)get32(msg + 36);
	if (n->version <= 1)            /* before reconfiguration: no configuration */
		return 0;
	if (len < FLE_MSG_HEADER) {
		snprintf(why, whylen, "truncated notification (%zu bytes, version %d)", len, n->version);
		return -1;
	}
	int32_t cl = (int32_t)get32(msg + 40);
	if (cl < 0 || (size_t)cl > len - FLE_MSG_HEADER) {
		snprintf(why, whylen, "invalid configuration length %d in a notification of %zu bytes", cl, len);
		return -1;
	}
	if (config) {
		*config = msg + FLE_MSG_HEADER;
		*config_len = (size_t)cl;
	}
	return 0;
}

bool fle_total_order(int64_t new_id, int64_t new_zxid, int64_t new_epoch,
		     int64_t cur_id, int64_t cur_zxid, int64_t cur_epoch)
{
	if (new_epoch != cur_epoch)
		return new_epoch > cur_epoch;
	if (new_zxid != cur_zxid)
		return new_zxid > cur_zxid;
	return new_id > cur_id;
}

static int by_sid(const void *a, const void *b)
{
	int64_t x = (*(const struct quorum_member *const *)a)->sid;
	int64_t y = (*(const struct quorum_member *const *)b)->sid;
	return (x > y) - (x < y);
}

/* Appends like snprintf into out[*len..cap), counting what did not fit. */
__attribute__((format(printf, 4, 5)))
static void text_add(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
	char tmp[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof tmp)
		n = sizeof tmp - 1;
	if (*len < cap) {
		size_t room = cap - *len;
		memcpy(out + *len, tmp, (size_t)n < room ? (size_t)n : room);
	}
	*len += (size_t)n;
}

size_t fle_config_text(const struct quorum_config *cfg, char *out, size_t cap)
{
	const struct quorum_member *sorted[QUORUM_MAX_MEMBERS];
	int n = cfg->n < QUORUM_MAX_MEMBERS ? cfg->n : QUORUM_MAX_MEMBERS;
	for (int i = 0; i < n; i++)
		sorted[i] = &cfg->members[i];
	qsort(sorted, (size_t)n, sizeof sorted[0], by_sid);
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		const struct quorum_member *m = sorted[i];
		text_add(out, cap, &len, "server.%lld=", (long long)m->sid);
		/* QuorumServer.toString(): IPv6 hosts in brackets */
		if (strchr(m->host, ':'))
			text_add(out, cap, &len, "[%s]", m->host);
		else
			text_add(out, cap, &len, "%s", m->host);
		text_add(out, cap, &len, ":%d:%d:%s", m->quorum_port, m->election_port,
			 m->observer ? "observer" : "participant");
		if (m->client_port) {   /* a client address given on the server line */
			const char *h = m->client_host[0] ? m->client_host : "0.0.0.0";
			text_add(out, cap, &len, strchr(h, ':') ? ";[%s]:%d" : ";%s:%d", h, m->client_port);
		}
		text_add(out, cap, &len, "\n");
	}
	text_add(out, cap, &len, "version=0");
	if (cap)
		out[len < cap ? len : cap - 1] = '\0';
	return len;
}

/* ---- helpers --------------------------------------------------------------------- */

static const char *state_name(int32_t s)
{
	switch (s) {
	case PEER_LOOKING: return "LOOKING";
	case PEER_FOLLOWING: return "FOLLOWING";
	case PEER_LEADING: return "LEADING";
	case PEER_OBSERVING: return "OBSERVING";
	default: return "?";
	}
}

/* Index of sid in cfg.members, or -1. */
static int member_index(const struct fle *f, int64_t sid)
{
	for (int i = 0; i < f->cfg.n; i++)
		if (f->cfg.members[i].sid == sid)
			return i;
	return -1;
}

/* A participant of our configuration (ZooKeeper's validVoter). */
static bool valid_voter(const struct fle *f, int64_t sid)
{
	int i = member_index(f, sid);
	return i >= 0 && !f->cfg.members[i].observer;
}

/* Sends one notification to sid; to ourselves it goes straight to
 * on_message, as ZooKeeper loops a message to itself back. */
static void on_message(void *arg, int64_t sid, const uint8_t *msg, size_t len);

static void send_to(struct fle *f, int64_t sid, int32_t state, int64_t leader, int64_t zxid,
		    int64_t election_epoch, int64_t peer_epoch)
{
	struct fle_notification n = {
		.state = state, .leader = leader, .zxid = zxid,
		.election_epoch = election_epoch, .peer_epoch = peer_epoch,
	};
	size_t cap = FLE_MSG_HEADER + f->config_len;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		log_error("election: out of memory sending to sid %lld", (long long)sid);
		return;
	}
	size_t len = fle_encode(&n, f->config_text, f->config_len, buf, cap);
	if (sid == f->cfg.myid)
		on_message(f, sid, buf, len);
	else
		cnx_send(f->cm, sid, buf, len);
	free(buf);
}

/* ---- the receiving side (election thread) ------------------------------------------ */

/* Caller holds mu. */
static void ring_push(struct fle *f, const struct fle_notification *n)
{
	if (f->ring_count == FLE_RECV_CAPACITY) {
		f->ring_head = (f->ring_head + 1) % FLE_RECV_CAPACITY;
		f->ring_count--;
	}
	f->ring[(f->ring_head + f->ring_count) % FLE_RECV_CAPACITY] = *n;
	f->ring_count++;
	pthread_cond_broadcast(&f->cond);
}

struct answer {
	bool send;
	int32_t state;
	int64_t leader, zxid, election_epoch, peer_epoch;
};

/* What ZooKeeper's WorkerReceiver does with a message: answer a non-voter
 * at once; while LOOKING queue a voter's notification for the election
 * (and bring a LOOKING peer of an older round up to date); otherwise answer
 * a LOOKING peer with our current vote. */
static void on_message(void *arg, int64_t sid, const uint8_t *msg, size_t len)
{
	struct fle *f = arg;
	struct fle_notification n;
	char why[128];
	if (fle_decode(msg, len, &n, NULL, NULL, why, sizeof why) < 0) {
		log_warn("election: sid %lld sent a malformed notification: %s", (long long)sid, why);
		return;
	}
	n.sid = sid;
	struct answer a = { .send = false };
	if (!valid_voter(f, sid)) {
		pthread_mutex_lock(&f->mu);
		a = (struct answer){ true, f->state, f->current.leader, f->current.zxid,
				     f->logicalclock, f->current.peer_epoch };
		pthread_mutex_unlock(&f->mu);
		log_debug("election: notification from non-voter sid %lld; answering with our vote for sid %lld",
			  (long long)sid, (long long)a.leader);
		send_to(f, sid, a.state, a.leader, a.zxid, a.election_epoch, a.peer_epoch);
		return;
	}
	if (n.state < PEER_LOOKING || n.state > PEER_OBSERVING) {
		log_warn("election: sid %lld sent a notification with unknown state %d", (long long)sid, n.state);
		return;
	}
	log_debug("election: notification from sid %lld: %s, leader %lld, zxid 0x%llx, round 0x%llx, "
		  "peer epoch 0x%llx, format version %d", (long long)sid, state_name(n.state),
		  (long long)n.leader, (unsigned long long)n.zxid, (unsigned long long)n.election_epoch,
		  (unsigned long long)n.peer_epoch, n.version);
	pthread_mutex_lock(&f->mu);
	if (f->state == PEER_LOOKING) {
		ring_push(f, &n);
		if (n.state == PEER_LOOKING && n.election_epoch < f->logicalclock)
			a = (struct answer){ true, PEER_LOOKING, f->prop_leader, f->prop_zxid,
					     f->logicalclock, f->prop_epoch };
	} else if (n.state == PEER_LOOKING) {
		a = (struct answer){ true, f->state, f->current.leader, f->current.zxid,
				     f->current.election_epoch, f->current.peer_epoch };
	}
	pthread_mutex_unlock(&f->mu);
	if (a.send)
		send_to(f, sid, a.state, a.leader, a.zxid, a.election_epoch, a.peer_epoch);
}

static void *election_main(void *arg)
{
	struct fle *f = arg;
	log_thread_name("zkd-election");
	cnx_run(f->cm);
	return NULL;
}

/* ---- the election (peer thread) ---------------------------------------------------- */

/* Waits up to timeout_ms for a notification. 1 with *n, 0 on timeout, -1
 * once stopping. */
static int ring_pop(struct fle *f, int timeout_ms, struct fle_notification *n)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&f->mu);
	while (f->ring_count == 0 && !f->stopping)
		if (pthread_cond_timedwait(&f->cond, &f->mu, &dl) == ETIMEDOUT)
			break;
	int r = f->stopping ? -1 : f->ring_count == 0 ? 0 : 1;
	if (r == 1) {
		*n = f->ring[f->ring_head];
		f->ring_head = (f->ring_head + 1) % FLE_RECV_CAPACITY;
		f->ring_count--;
	}
	pthread_mutex_unlock(&f->mu);
	return r;
}

/* Our proposal to every voter, ourselves included (sendNotifications). */
static void send_notifications(struct fle *f)
{
	pthread_mutex_lock(&f->mu);
	int64_t leader = f->prop_leader, zxid = f->prop_zxid, epoch = f->prop_epoch, round = f->logicalclock;
	pthread_mutex_unlock(&f->mu);
	log_debug("election: sending notifications: leader %lld, zxid 0x%llx, peer epoch 0x%llx, round 0x%llx",
		  (long long)leader, (unsigned long long)zxid, (unsigned long long)epoch,
		  (unsigned long long)round);
	for (int i = 0; i < f->cfg.n; i++)
		if (!f->cfg.members[i].observer)
			send_to(f, f->cfg.members[i].sid, PEER_LOOKING, leader, zxid, round, epoch);
}

static void set_proposal(struct fle *f, int64_t leader, int64_t zxid, int64_t epoch)
{
	pthread_mutex_lock(&f->mu);
	f->prop_leader = leader;
	f->prop_zxid = zxid;
	f->prop_epoch = epoch;
	pthread_mutex_unlock(&f->mu);
}

/* Vote.equals: while either side is LOOKING all of (leader, zxid, round,
 * peer epoch) must match; between FOLLOWING/LEADING votes the leader and
 * peer epoch, or only the leader if just one of them has a format version. */
static bool rec_equals(const struct fle_rec *a, const struct fle_rec *b)
{
	if (a->state == PEER_LOOKING || b->state == PEER_LOOKING)
		return a->leader == b->leader && a->zxid == b->zxid &&
		       a->election_epoch == b->election_epoch && a->peer_epoch == b->peer_epoch;
	if ((a->version > 0) != (b->version > 0))
		return a->leader == b->leader;
	return a->leader == b->leader && a->peer_epoch == b->peer_epoch;
}

static struct fle_rec rec_of(const struct fle_notification *n, int32_t state, int32_t version)
{
	return (struct fle_rec){ true, n->leader, n->zxid, n->election_epoch, n->peer_epoch, state, version };
}

/* True if the voters whose vote in `set` equals `ref` are a majority
 * (getVoteTracker + hasAllQuorums). */
static bool has_quorum(const struct fle *f, const struct fle_rec *set, const struct fle_rec *ref)
{
	int64_t acked[QUORUM_MAX_MEMBERS];
	int n = 0;
	for (int i = 0; i < f->cfg.n; i++)
		if (set[i].set && rec_equals(&set[i], ref))
			acked[n++] = f->cfg.members[i].sid;
	return quorum_has_majority(&f->cfg, acked, n);
}

/* checkLeader: a leader other than us must have told us it is LEADING; if
 * it is us, the votes must be of our current round. */
static bool check_leader(struct fle *f, const struct fle_rec *set, int64_t leader, int64_t election_epoch)
{
	if (leader != f->cfg.myid) {
		int i = member_index(f, leader);
		return i >= 0 && set[i].set && set[i].state == PEER_LEADING;
	}
	pthread_mutex_lock(&f->mu);
	bool same = f->logicalclock == election_epoch;
	pthread_mutex_unlock(&f->mu);
	return same;
}

/* The election is over: publish the new state and vote together, forget
 * the queued notifications (leaveInstance), fill e->out. adopt_round also
 * moves our logical clock to election_epoch (a late arrival adopting the
 * ensemble's round). */
static void decide(struct election *e, int64_t leader, int64_t zxid, int64_t election_epoch,
		   int64_t peer_epoch, bool adopt_round)
{
	struct fle *f = e->f;
	int32_t st = leader == f->cfg.myid ? PEER_LEADING : f->voter ? PEER_FOLLOWING : PEER_OBSERVING;
	pthread_mutex_lock(&f->mu);
	if (adopt_round)
		f->logicalclock = election_epoch;
	f->state = st;
	f->current = (struct fle_vote){ leader, zxid, election_epoch, peer_epoch, st };
	f->have_current = true;
	f->ring_head = f->ring_count = 0;
	pthread_mutex_unlock(&f->mu);
	*e->out = (struct fle_vote){ leader, zxid, election_epoch, peer_epoch, st };
}

/* A LOOKING voter's notification. True once decided; -1 if stopped. */
static int on_looking(struct election *e, const struct fle_notification *n)
{
	struct fle *f = e->f;
	if (e->init_zxid == -1 || n->zxid == -1) {
		log_debug("election: ignoring a notification from sid %lld: a zxid of -1", (long long)n->sid);
		return 0;
	}
	/* Only this thread writes the round and the proposal: it may read them
	 * without mu. */
	if (n->election_epoch > f->logicalclock) {
		pthread_mutex_lock(&f->mu);
		f->logicalclock = n->election_epoch;
		pthread_mutex_unlock(&f->mu);
		memset(e->recvset, 0, sizeof e->recvset);
		if (fle_total_order(n->leader, n->zxid, n->peer_epoch, e->init_id, e->init_zxid, e->init_epoch))
			set_proposal(f, n->leader, n->zxid, n->peer_epoch);
		else
			set_proposal(f, e->init_id, e->init_zxid, e->init_epoch);
		send_notifications(f);
	} else if (n->election_epoch < f->logicalclock) {
		log_debug("election: ignoring sid %lld's notification of an older round 0x%llx",
			  (long long)n->sid, (unsigned long long)n->election_epoch);
		return 0;
	} else if (fle_total_order(n->leader, n->zxid, n->peer_epoch, f->prop_leader, f->prop_zxid, f->prop_epoch)) {
		set_proposal(f, n->leader, n->zxid, n->peer_epoch);
		send_notifications(f);
	}
	e->recvset[member_index(f, n->sid)] = rec_of(n, PEER_LOOKING, 0);
	struct fle_rec mine = { true, f->prop_leader, f->prop_zxid, f->logicalclock, f->prop_epoch,
				PEER_LOOKING, 0 };
	if (!has_quorum(f, e->recvset, &mine))
		return 0;
	/* A majority holds our proposal: wait finalize_wait_ms for a better one. */
	struct fle_notification later;
	int r;
	while ((r = ring_pop(f, f->finalize_wait_ms, &later)) == 1) {
		if (fle_total_order(later.leader, later.zxid, later.peer_epoch,
				    f->prop_leader, f->prop_zxid, f->prop_epoch)) {
			pthread_mutex_lock(&f->mu);
			ring_push(f, &later);
			pthread_mutex_unlock(&f->mu);
			return 0;
		}
	}
	if (r < 0)
		return -1;
	decide(e, f->prop_leader, f->prop_zxid, f->logicalclock, f->prop_epoch, false);
	return 1;
}

/* A FOLLOWING or LEADING voter's notification (receivedFollowingNotification;
 * the oracle of receivedLeadingNotification only exists for QuorumOracleMaj).
 * True once decided. */
static bool on_settled(struct election *e, const struct fle_notification *n)
{
	struct fle *f = e->f;
	int idx = member_index(f, n->sid);
	struct fle_rec theirs = rec_of(n, n->state, n->version);
	/* Votes of our own round count together with the LOOKING ones. */
	if (n->election_epoch == f->logicalclock) {
		e->recvset[idx] = rec_of(n, n->state, 0);
		if (has_quorum(f, e->recvset, &theirs) &&
		    check_leader(f, e->recvset, n->leader, n->election_epoch)) {
			decide(e, n->leader, n->zxid, n->election_epoch, n->peer_epoch, false);
			return true;
		}
	}
	/* Before joining an established ensemble, a majority must follow the
	 * same leader, and the leader must say it leads. */
	e->outofelection[idx] = theirs;
	if (has_quorum(f, e->outofelection, &theirs) &&
	    check_leader(f, e->outofelection, n->leader, n->election_epoch)) {
		decide(e, n->leader, n->zxid, n->election_epoch, n->peer_epoch, true);
		return true;
	}
	return false;
}

/* lookForLeader's loop, after the first notifications went out. */
static int elect(struct election *e)
{
	struct fle *f = e->f;
	int timeout = f->finalize_wait_ms;
	for (;;) {
		struct fle_notification n;
		int r = ring_pop(f, timeout, &n);
		if (r < 0)
			return -1;
		if (r == 0) {
			/* Nothing new: say it again, or get the connections back. */
			if (cnx_have_delivered(f->cm))
				send_notifications(f);
			else
				cnx_connect_all(f->cm);
			timeout = timeout > f->max_interval_ms / 2 ? f->max_interval_ms : timeout * 2;
			log_debug("election: no notification; next timeout %d ms", timeout);
			continue;
		}
		if (!valid_voter(f, n.sid) || !valid_voter(f, n.leader)) {
			log_warn("election: ignoring sid %lld's vote for sid %lld: %s", (long long)n.sid,
				 (long long)n.leader, valid_voter(f, n.sid) ? "not a voter we know" :
				 "the sender is not a voter");
			continue;
		}
		switch (n.state) {
		case PEER_LOOKING:
			r = on_looking(e, &n);
			if (r != 0)
				return r < 0 ? -1 : 0;
			break;
		case PEER_FOLLOWING:
		case PEER_LEADING:
			if (on_settled(e, &n))
				return 0;
			break;
		default:        /* an observer's notification carries no vote */
			log_debug("election: notification from observer sid %lld", (long long)n.sid);
			break;
		}
	}
}

int fle_lookup(struct fle *f, int64_t last_zxid, int64_t current_epoch, struct fle_vote *out)
{
	struct election *e = calloc(1, sizeof *e);
	if (!e) {
		log_error("election: out of memory");
		return -1;
	}
	e->f = f;
	e->out = out;
	e->init_id = f->voter ? f->cfg.myid : INT64_MIN;
	e->init_zxid = f->voter ? last_zxid : INT64_MIN;
	e->init_epoch = f->voter ? current_epoch : INT64_MIN;
	int64_t start = quorum_now_ms();
	pthread_mutex_lock(&f->mu);
	if (f->stopping) {
		pthread_mutex_unlock(&f->mu);
		free(e);
		return -1;
	}
	f->lookups++;
	f->state = PEER_LOOKING;
	if (!f->have_current) {     /* startLeaderElection: our own vote until we know better */
		f->current = (struct fle_vote){ f->cfg.myid, last_zxid, -1, current_epoch, PEER_LOOKING };
		f->have_current = true;
	}
	f->logicalclock++;
	f->prop_leader = e->init_id;
	f->prop_zxid = e->init_zxid;
	f->prop_epoch = e->init_epoch;
	int64_t round = f->logicalclock;
	pthread_mutex_unlock(&f->mu);
	log_info("election: sid %lld LOOKING, round 0x%llx, last zxid 0x%llx, epoch 0x%llx",
		 (long long)f->cfg.myid, (unsigned long long)round, (unsigned long long)last_zxid,
		 (unsigned long long)current_epoch);
	send_notifications(f);
	int rc = elect(e);
	free(e);
	if (rc == 0)
		log_info("election: sid %lld %s: leader sid %lld, zxid 0x%llx, peer epoch 0x%llx, round 0x%llx "
			 "(%lld ms)", (long long)f->cfg.myid, state_name(out->state), (long long)out->leader,
			 (unsigned long long)out->zxid, (unsigned long long)out->peer_epoch,
			 (unsigned long long)out->election_epoch, (long long)(quorum_now_ms() - start));
	else
		log_info("election: sid %lld stopped while LOOKING", (long long)f->cfg.myid);
	/* the last touch of f: fle_stop may free it as soon as we are counted out */
	pthread_mutex_lock(&f->mu);
	f->lookups--;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void fle_set_state(struct fle *f, int32_t state, const struct fle_vote *current)
{
	pthread_mutex_lock(&f->mu);
	f->state = state;
	if (current) {
		f->current = *current;
		f->current.state = state;
		f->have_current = true;
	}
	pthread_mutex_unlock(&f->mu);
}

/* ---- start and stop ------------------------------------------------------------------ */

static void fle_free(struct fle *f)
{
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
	free(f->config_text);
	free(f);
}

struct fle *fle_start(const struct quorum_config *cfg, char *err, size_t errlen)
{
	const struct quorum_member *me = quorum_member(cfg, cfg->myid);
	if (!me) {
		snprintf(err, errlen, "myid %lld has no server.%lld line", (long long)cfg->myid,
			 (long long)cfg->myid);
		return NULL;
	}
	struct fle *f = calloc(1, sizeof *f);
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->cfg = *cfg;
	f->voter = !me->observer;
	f->finalize_wait_ms = cfg->finalize_wait_ms > 0 ? cfg->finalize_wait_ms : FLE_DEFAULT_FINALIZE_WAIT_MS;
	f->max_interval_ms = cfg->max_notification_interval_ms > 0 ? cfg->max_notification_interval_ms
								   : FLE_DEFAULT_MAX_INTERVAL_MS;
	if (f->max_interval_ms < f->finalize_wait_ms)
		f->max_interval_ms = f->finalize_wait_ms;
	f->config_len = fle_config_text(cfg, NULL, 0);
	f->config_text = malloc(f->config_len + 1);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&f->mu, NULL);
	if (!f->config_text) {
		snprintf(err, errlen, "out of memory");
		fle_free(f);
		return NULL;
	}
	fle_config_text(cfg, f->config_text, f->config_len + 1);
	f->state = PEER_LOOKING;
	f->current = (struct fle_vote){ cfg->myid, -1, -1, -1, PEER_LOOKING };
	f->cm = cnx_create(&f->cfg, on_message, f, err, errlen);
	if (!f->cm) {
		fle_free(f);
		return NULL;
	}
	int r = pthread_create(&f->thread, NULL, election_main, f);
	if (r != 0) {
		snprintf(err, errlen, "cannot start the election thread: %s", strerror(r));
		cnx_destroy(f->cm);
		fle_free(f);
		return NULL;
	}
	log_info("election: sid %lld started as %s of %d voters (finalize wait %d ms, max notification interval %d ms)",
		 (long long)cfg->myid, f->voter ? "one" : "an observer", quorum_voters(cfg),
		 f->finalize_wait_ms, f->max_interval_ms);
	return f;
}

void fle_stop(struct fle *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stopping = true;
	pthread_cond_broadcast(&f->cond);
	while (f->lookups > 0)
		pthread_cond_wait(&f->cond, &f->mu);
	pthread_mutex_unlock(&f->mu);
	cnx_halt(f->cm);
	pthread_join(f->thread, NULL);
	cnx_destroy(f->cm);
	log_info("election: sid %lld stopped", (long long)f->cfg.myid);
	fle_free(f);
}

void fle_interrupt(struct fle *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stopping = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}
