/*
 * net.h - the public face of net/: per-core event loops that own client
 * connections, frame the byte stream and hand whole frames upward.
 *
 * Threads: net_start() starts `n_threads` I/O threads (zkd-io-N). Each has
 * its own epoll set, its own SO_REUSEPORT listening socket on the client
 * port (the kernel spreads accepts across them), its own connections and an
 * inbox: a wfcqueue that any thread may post to (many producers) and only
 * the owning I/O thread drains (one consumer, whole batches via splice),
 * with an eventfd doorbell rung only when the I/O thread is asleep.
 *
 * A connection lives on one I/O thread for its whole life. Every callback
 * below runs on that thread, so upper layers keep per-connection state
 * (net_conn_user) without locks. Other threads never hold a struct net_conn
 * pointer: they address a connection by its 64-bit net_addr (thread, fd,
 * generation); a message to a connection that has since closed is handed to
 * on_msg with conn == NULL so its owner can free it.
 *
 * net/ knows nothing of sessions or the pipeline; server/ registers the
 * callbacks. Plain TCP and TLS are two connection types behind the small
 * vtable in conn.h: the client port speaks plain TCP, the secure client port
 * TLS (OpenSSL, non-blocking, the handshake run by the same event loop).
 * Upper layers see no difference except net_conn_secure and the client
 * certificate's subject (net_conn_x509_subject).
 */
#ifndef ZKD_NET_NET_H
#define ZKD_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu/wfcqueue.h>

#include "jute.h"

struct net_conn;

/* (io thread index << 56) | (fd << 32) | generation; 0 = no connection. */
typedef uint64_t net_addr;

/* A message posted to an I/O thread. Embed it first in your own struct. */
struct net_msg {
	struct cds_wfcq_node node;
	net_addr to;
};

struct net_callbacks {
	void *ctx;
	/* A new connection was accepted (after the per-IP cap let it in and,
	 * on the secure port, the TLS handshake finished). */
	void (*on_open)(void *ctx, struct net_conn *c);
	/* One complete frame: payload without the 4-byte length prefix, valid
	 * only during the call. Return 0 to go on, -1 to close the connection
	 * (the callee has logged why). */
	int (*on_frame)(void *ctx, struct net_conn *c, const uint8_t *p, size_t len);
	/* The first 4 bytes of a connection spelled a four-letter word (e.g.
	 * "ruok") instead of a frame length. The callee writes its answer with
	 * net_conn_send and calls net_conn_close; the connection is not framed. */
	/* `rest`: the bytes that came after the word (stmk's 8-byte mask). */
	void (*on_4lw)(void *ctx, struct net_conn *c, const char cmd[4], const uint8_t *rest, size_t rest_len);
	/* The connection is going away (peer closed, error, or net_conn_close
	 * finished flushing). Free what net_conn_user points to. */
	void (*on_close)(void *ctx, struct net_conn *c);
	/* A message posted with net_post arrived. conn is NULL if the addressed
	 * connection no longer exists. The callee owns m. */
	void (*on_msg)(void *ctx, struct net_conn *c, struct net_msg *m);
	/* Called once per loop iteration after inbox and sockets were handled,
	 * before output is flushed (lets upper layers batch). May be NULL. */
	void (*on_idle)(void *ctx, int io_index);
};

/* TLS on the secure client port, with ZooKeeper's ssl.* settings (zoo.cfg
 * names in the comments). net_start copies what it needs; NULL or "" means
 * not given. */
enum net_tls_client_auth { NET_TLS_AUTH_NEED = 0, NET_TLS_AUTH_WANT, NET_TLS_AUTH_NONE };

struct net_tls_config {
	/* The server's private key and certificate chain: a key store (PEM file
	 * holding key + chain, or PKCS12) ... */
	const char *key_store;              /* ssl.keyStore.location */
	const char *key_store_type;         /* ssl.keyStore.type: PEM, PKCS12; NULL = from the file name */
	const char *key_store_password;     /* ssl.keyStore.password (an encrypted PEM key, PKCS12) */
	const char *key_store_password_path;/* ssl.keyStore.passwordPath: the password in a file */
	/* ... or a PEM certificate chain and a PEM key (zkd's ssl.certFile and
	 * ssl.keyFile; the key defaults to the certificate file). */
	const char *cert_file, *key_file;
	/* The CAs a client certificate must chain to: a trust store (PEM or
	 * PKCS12) or a PEM file (ssl.caFile); neither = the system's CAs. */
	const char *trust_store;            /* ssl.trustStore.location */
	const char *trust_store_type;       /* ssl.trustStore.type */
	const char *trust_store_password;   /* ssl.trustStore.password (PKCS12) */
	const char *trust_store_password_path;
	const char *ca_file;                /* ssl.caFile */
	enum net_tls_client_auth client_auth; /* ssl.clientAuth; ZooKeeper's default is need */
	/* ssl.enabledProtocols ("TLSv1.2,TLSv1.3") wins over ssl.protocol (one
	 * protocol); neither: TLSv1.2 and TLSv1.3. Nothing older is served. */
	const char *protocol;
	const char *enabled_protocols;
	/* ssl.ciphersuites: IANA names as Java writes them (OpenSSL's names are
	 * accepted too), comma separated; NULL = ZooKeeper's default list for
	 * TLSv1.2 and OpenSSL's TLSv1.3 suites. */
	const char *ciphersuites;
	int handshake_timeout_ms;           /* <= 0: 10000 (Netty's SslHandler default) */
	/* How messages name the settings: NULL = "ssl" (ssl.keyStore.location);
	 * the quorum's are "ssl.quorum". */
	const char *key_prefix;
};

struct net_config {
	const char *bind_addr;      /* "" or NULL = all addresses */
	int port;                   /* plain client port; 0 = any free port, < 0 = none */
	/* The secure client port, with tls's settings: 0 = any free port,
	 * < 0 = none (tls may still be given for unify_client_port). */
	const char *secure_bind_addr;
	int secure_port;
	const struct net_tls_config *tls;
	/* client.portUnification: the plain client port also takes TLS clients
	 * (with tls's settings), told apart by their first byte. Needs tls. */
	bool unify_client_port;
	int n_threads;              /* >= 1 */
	uint32_t max_frame;         /* jute.maxbuffer: a larger frame closes the connection */
	int max_cnxns_per_ip;       /* 0 = unlimited */
	int listen_backlog;         /* <= 0 = 1024 */
	/* A connection that has not completed its session handshake (see
	 * net_conn_established) this long after it opened is closed, as
	 * ZooKeeper's zookeeper.nio.sessionlessCnxnTimeout; 0 = never. */
	int sessionless_timeout_ms;
};

/* Binds, listens and starts the I/O threads. Returns 0, or -1 with a
 * message in err (e.g. "127.0.0.1:2181: Address already in use"). */
int net_start(const struct net_config *cfg, const struct net_callbacks *cb, char *err, size_t errlen);
/* The first step of a clean shutdown: every I/O thread closes its
 * listeners and stops reading from its connections (and drops TLS
 * handshakes in progress), but goes on delivering posted messages and
 * writing output, so requests already handed up still get their replies.
 * Returns once every thread has done so, or after timeout_ms (logged).
 * For good: only net_stop follows. Any thread but an I/O thread. */
void net_quiesce(int timeout_ms);
/* Stops the threads, closes every connection (on_close for each).
 * Messages already posted are delivered first, while the connections
 * still live. */
void net_stop(void);
int net_n_threads(void);
/* The port actually bound (useful when cfg->port was 0); -1 = none. */
int net_bound_port(void);
/* The secure port actually bound; -1 = none. */
int net_bound_secure_port(void);
/* Loads the key, certificates and CAs again from the files net_start was
 * given (SIGHUP). New TLS connections use them; established ones keep what
 * they negotiated. On failure the old ones stay in use and err says why.
 * Any thread but an I/O thread. 0 on success (or when TLS is off). */
int net_tls_reload(char *err, size_t errlen);

/* ---- TLS between servers (sslQuorum: quorum and election connections) ----
 * election/ drives the OpenSSL objects itself (on its own sockets); net/
 * only makes them, from the ssl.quorum.* settings (cfg->key_prefix
 * "ssl.quorum"), so that both kinds of TLS read settings the same way. */
struct ssl_ctx_st;      /* OpenSSL's SSL_CTX */
struct ssl_st;          /* OpenSSL's SSL */
/* A context that both accepts and connects, with this server's key and
 * certificate, the trust store the other server's certificate must chain
 * to, and cfg->client_auth for the accepting side (ZooKeeper's quorum TLS:
 * need). NULL with a message naming the setting or file at fault. Free it
 * with SSL_CTX_free. */
struct ssl_ctx_st *net_tls_peer_ctx(const struct net_tls_config *cfg, char *err, size_t errlen);
/* A non-blocking TLS session over the connected socket fd (made
 * non-blocking here): the connecting side (client true) always verifies the
 * other's certificate; the accepting side as the context says. NULL if out
 * of memory. */
struct ssl_st *net_tls_peer_new(struct ssl_ctx_st *ctx, int fd, bool client);
/* After the handshake: hostname verification as ZooKeeper's ZKTrustManager
 * does it for quorum TLS. The other side's certificate (if it sent one) must
 * name the IP address the socket is connected to (subjectAltName IP) or one
 * of `names` (DNS names, wildcards as RFC 6125: what we dialed, or the
 * server.N names that resolve to that address, which stands in for Java's
 * reverse lookup). 0, or -1 with the reason in why. */
int net_tls_peer_check(struct ssl_st *ssl, const char *const *names, int n_names, char *why, size_t whylen);
/* Why a TLS call on ssl failed, for logs ("certificate verify failed:
 * unable to get local issuer certificate"; "" if OpenSSL says nothing):
 * the newest error of this thread (all are cleared) and the certificate
 * check's verdict. Returns buf. */
const char *net_tls_error(struct ssl_st *ssl, char *buf, size_t cap);

/* Any thread: queue m for the I/O thread that owns `to` (m->to is set). */
void net_post(net_addr to, struct net_msg *m);

/* Owner thread only: */
/* The connection has a session now: it is no longer closed by the
 * sessionless timeout. */
void net_conn_established(struct net_conn *c);
/* The live connection at address a, if it belongs to the calling I/O thread. */
struct net_conn *net_conn_lookup(net_addr a);
net_addr net_conn_addr(const struct net_conn *c);
int net_conn_io_index(const struct net_conn *c);
void *net_conn_user(const struct net_conn *c);
void net_conn_set_user(struct net_conn *c, void *user);
const char *net_conn_peer(const struct net_conn *c);   /* "127.0.0.1:53412" */
/* True for a connection accepted on the secure client port: what ZooKeeper
 * keeps in its secure factory (TLS clients of a unified client port are in
 * the plain one there, and not counted here either). */
bool net_conn_secure(const struct net_conn *c);
/* The subject of the client certificate the TLS handshake verified, as
 * Java's X500Principal.getName() writes it (RFC 2253; what ZooKeeper's x509
 * scheme uses as the id). Returns 1 with the name in out, 0 if there is no
 * verified client certificate, -1 if the name does not fit in cap bytes. */
int net_conn_x509_subject(const struct net_conn *c, char *out, size_t cap);
/* Queue bytes for sending (copied). Output is flushed at the end of the loop
 * iteration, so many replies go out in one write. */
void net_conn_send(struct net_conn *c, const void *p, size_t len);
/* The connection's output buffer, to encode a reply in place: reserve the
 * frame length with net_frame_begin, write the record, then net_frame_end. */
struct jute_writer *net_conn_out(struct net_conn *c);
size_t net_frame_begin(struct jute_writer *w);
void net_frame_end(struct jute_writer *w, size_t mark);
/* Stop reading from c (e.g. while a handshake is in the pipeline) / resume. */
void net_conn_pause(struct net_conn *c, bool paused);
/* Flush what is queued, then close. `reason` is logged with the peer. */
void net_conn_close(struct net_conn *c, const char *reason);
bool net_conn_closing(const struct net_conn *c);

/* Counters for four-letter words (relaxed atomics, any thread). */
struct net_stats {
	uint64_t packets_received;
	uint64_t packets_sent;
	uint64_t bytes_received;
	uint64_t bytes_sent;
	uint64_t connections;       /* open now */
	uint64_t accepted;          /* ever */
	uint64_t rejected_cap;      /* refused by maxClientCnxns */
};
void net_get_stats(struct net_stats *out);
void net_count_sent_packet(void);
/* Any thread (srst): packets_received and packets_sent count from now. */
void net_reset_packet_stats(void);

#endif
