/*
 * qpacket.h - ZooKeeper's QuorumPacket on the quorum port (internal to
 * election/).
 *
 * A QuorumPacket is a jute record written straight onto the TCP stream,
 * with no frame length around it:
 *     int type, long zxid, buffer data, vector<Id> authinfo
 * and after a SNAP packet the leader writes the snapshot itself onto the
 * same stream. So the reading side is a buffered stream (qstream) that
 * reads exactly what each field needs, with a deadline per read.
 */
#ifndef ZKD_ELECTION_QPACKET_H
#define ZKD_ELECTION_QPACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/jute.h"

/* Leader.java's packet types. */
enum {
	QP_REQUEST = 1, QP_PROPOSAL = 2, QP_ACK = 3, QP_COMMIT = 4, QP_PING = 5,
	QP_REVALIDATE = 6, QP_SYNC = 7, QP_INFORM = 8, QP_COMMITANDACTIVATE = 9,
	QP_NEWLEADER = 10, QP_FOLLOWERINFO = 11, QP_UPTODATE = 12, QP_DIFF = 13,
	QP_TRUNC = 14, QP_SNAP = 15, QP_OBSERVERINFO = 16, QP_LEADERINFO = 17,
	QP_ACKEPOCH = 18, QP_INFORMANDACTIVATE = 19,
};

#define ZAB_PROTOCOL_VERSION 0x10000

const char *qp_name(int type);

/* Appends one packet. len -1 = a null buffer; auth (a jute vector<Id>,
 * count included) NULL = a null vector, as ZooKeeper sends most packets. */
void qp_write(struct jute_writer *w, int32_t type, int64_t zxid, const void *data, int32_t len,
	      const void *auth, size_t auth_len);

/* A TLS session over a quorum socket (sslQuorum); NULL means plain TCP
 * everywhere one is taken. The socket is non-blocking under it; reads and
 * writes wait in poll(2) with their deadlines, and a mutex lets one thread
 * read while others write (an SSL object is not safe to use from two
 * threads at once). */
struct qtls;
struct quorum_config;

struct qstream {
	int fd;
	struct qtls *tls;           /* NULL = plain: qstream_init sets that */
	int timeout_ms;             /* per read; the owner changes it by phase */
	size_t max_len;             /* bound on any buffer or vector read */
	uint8_t buf[64 * 1024];
	size_t off, len;
	char err[128];              /* why the last read failed */
};

struct qpacket {
	int32_t type;
	int64_t zxid;
	uint8_t *data;              /* malloc'd, NULL for a null or empty buffer */
	int32_t len;                /* -1 = null */
	uint8_t *auth;              /* the vector<Id> bytes, count included; NULL if null */
	size_t auth_len;
};

void qstream_init(struct qstream *s, int fd, int timeout_ms, size_t max_len);
/* Exactly n bytes, or -1 (timeout, EOF, error: s->err says which). */
int qstream_read(struct qstream *s, void *out, size_t n);
int qstream_read_int(struct qstream *s, int32_t *v);
int qstream_read_long(struct qstream *s, int64_t *v);
/* One packet into p (free it with qp_free). -1 on error or a bound broken. */
int qp_read(struct qstream *s, struct qpacket *p);
void qp_free(struct qpacket *p);

/* Writes all of p, or -1. The socket has a send timeout (qp_socket_setup);
 * over TLS the same timeout bounds the wait for room. */
int qp_send_all(int fd, struct qtls *tls, const void *p, size_t len);

/* The TLS handshake on connected socket fd, as the connecting (client) or
 * accepting side, within timeout_ms; then, if cfg asks for hostname
 * verification, the other side's certificate must name the socket's peer
 * address or `host` (the connecting side: what it dialed; NULL on the
 * accepting side, which then tries the server.N hosts that resolve to the
 * peer's address). Writes will wait up to send_timeout_ms. NULL with err. */
struct qtls *qtls_start(const struct quorum_config *cfg, int fd, bool client, const char *host,
			int timeout_ms, int send_timeout_ms, char *err, size_t errlen);
/* Frees the session (not the socket). NULL is fine. */
void qtls_free(struct qtls *t);
/* TCP_NODELAY and a send timeout on a quorum socket. */
void qp_socket_setup(int fd, int send_timeout_ms);
/* A listening socket on host:port (SO_REUSEADDR); fd or -1 with err. */
int qp_listen(const char *host, int port, char *err, size_t errlen);
/* Connects to host:port within timeout_ms; fd or -1 with err. */
int qp_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen);

static inline int32_t qp_get_int(const uint8_t *p)
{
	return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}
static inline int64_t qp_get_long(const uint8_t *p)
{
	return (int64_t)((uint64_t)(uint32_t)qp_get_int(p) << 32 | (uint32_t)qp_get_int(p + 4));
}

#endif
