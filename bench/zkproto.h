/*
 * zkproto.h - the client side of ZooKeeper's wire protocol, for the bench.
 *
 * The bench speaks the protocol through the project's own codec (net/jute.h,
 * net/records.h), so what it measures is the server and not a client library,
 * and so that a codec bug shows up here as well as in the server.
 *
 * Requests are appended, each as a whole frame (4-byte big-endian length,
 * then the record), to a jute_writer that doubles as a connection's output
 * buffer: a pipelined burst is one buffer and one write(2).
 *
 * The blocking "sync" client below is for the slow paths only (setting up
 * and removing the bench's nodes, the failover write probe); the measured
 * traffic goes through engine.c's epoll loop.
 */
#ifndef ZKBENCH_ZKPROTO_H
#define ZKBENCH_ZKPROTO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/jute.h"
#include "net/records.h"

/* The largest reply frame the bench accepts: jute.maxbuffer plus headers. */
#define ZKP_MAX_FRAME (JUTE_DEFAULT_MAXBUFFER + 4096)

/* Encoders: each appends one complete frame. Paths are NUL-terminated. */
void zkp_connect_req(struct jute_writer *w, int32_t timeout_ms);
void zkp_get(struct jute_writer *w, int32_t xid, const char *path);
void zkp_exists(struct jute_writer *w, int32_t xid, const char *path);
void zkp_children(struct jute_writer *w, int32_t xid, const char *path);
void zkp_set(struct jute_writer *w, int32_t xid, const char *path, const void *data, int32_t len);
/* create with OPEN_ACL_UNSAFE (world:anyone, all perms) */
void zkp_create(struct jute_writer *w, int32_t xid, const char *path, const void *data,
		int32_t len, int32_t flags);
void zkp_delete(struct jute_writer *w, int32_t xid, const char *path);
void zkp_ping(struct jute_writer *w);
void zkp_close(struct jute_writer *w, int32_t xid);
/* multi [create tmp, delete tmp, setData key]: one txn touching three nodes
 * that leaves the tree as it found it (apart from the key's data). */
void zkp_multi_cds(struct jute_writer *w, int32_t xid, const char *tmp, const char *key,
		   const void *data, int32_t len);

/* Splits "host:port[,host:port...]" into up to max IPv4 addresses; returns
 * the number parsed, or -1 with a message in err. */
int zkp_parse_addrs(const char *spec, struct sockaddr_in *out, int max, char *err, size_t errlen);

/* ---- TLS (OpenSSL; zkbench --tls) -------------------------------------------
 * One client SSL_CTX for the whole run. TLS 1.3 only unless tls12 (then
 * TLS 1.2 only), so a run measures exactly one protocol version. With a CA
 * the server's certificate is verified, and its name checked against the
 * address connected to (the certificates of conf/tls-certs.sh name
 * 127.0.0.1); a client certificate is presented when cert and key are set.
 * No session resumption: every connection is a full handshake. */
struct ssl_ctx_st;
struct ssl_st;
struct zkp_tls_opts {
	const char *ca, *cert, *key;
	bool tls12;
};
struct ssl_ctx_st *zkp_tls_ctx(const struct zkp_tls_opts *o, char *err, size_t errlen);
/* A client SSL on a connected (or connecting) fd, in connect state. */
struct ssl_st *zkp_tls_new(struct ssl_ctx_st *ctx, int fd, const struct sockaddr_in *dst);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519" of an established connection. */
void zkp_tls_describe(struct ssl_st *ssl, char *buf, size_t n);
/* The reason of the last OpenSSL failure on this thread (and clears it). */
void zkp_tls_error(char *buf, size_t n, int ssl_err);
/* The context the blocking client uses (NULL = plain TCP). */
extern struct ssl_ctx_st *zkp_tls;

/* A reply frame as received: header plus a reader positioned on the body
 * (a view into the connection's buffer, valid until the next receive). */
struct zkp_reply {
	struct rec_reply_header h;
	struct jute_reader body;
};

/* Blocking client with timeouts on every call. */
struct zkp_sync {
	int fd;
	struct ssl_st *ssl;         /* when zkp_tls is set */
	int32_t xid;
	int64_t session_id;
	int32_t timeout_ms;         /* negotiated session timeout */
	uint8_t *in;
	size_t in_len, in_cap;
	size_t consumed;            /* bytes of `in` already handed out */
};

/* Connects and opens a session. src may be NULL (kernel picks 127.0.0.1).
 * io_timeout_ms bounds every later send/receive as well. 0 or -1 (err set). */
int zkp_sync_open(struct zkp_sync *s, const struct sockaddr_in *dst, int32_t session_timeout_ms,
		  int io_timeout_ms, char *err, size_t errlen);
/* Writes the whole buffer (and resets the writer); 0 or -1. */
int zkp_sync_send(struct zkp_sync *s, struct jute_writer *w);
/* The next reply other than a ping reply or a watch event; 0 or -1. */
int zkp_sync_recv(struct zkp_sync *s, struct zkp_reply *out);
/* Sends closeSession and waits briefly for its reply, then closes. */
void zkp_sync_close(struct zkp_sync *s);
int32_t zkp_sync_xid(struct zkp_sync *s);

#endif
