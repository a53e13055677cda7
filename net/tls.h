/*
 * tls.h - TLS inside net/: the server's OpenSSL context, the TLS connection
 * type and the client certificate's subject. Internal to net/ (and its unit
 * tests); the rest of zkd sees only net.h.
 *
 * Three files, one concern each:
 *   tls_ctx.c   builds the SSL_CTX from ZooKeeper's ssl.* settings (key
 *               store, trust store, clientAuth, protocols, cipher suites),
 *               publishes it to the I/O threads and swaps it on reload;
 *   conn_tls.c  the conn.h connection type: non-blocking handshake, read,
 *               write and shutdown over one SSL object;
 *   x509_dn.c   a certificate subject written as Java's
 *               X500Principal.getName() writes it, which is the id of
 *               ZooKeeper's x509 auth scheme.
 */
#ifndef ZKD_NET_TLS_H
#define ZKD_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conn.h"
#include "net.h"

/* ---- tls_ctx.c ---- */

/* Builds the first context from cfg (copied). 0, or -1 with a message in
 * err naming the setting or file at fault. Called by net_start before any
 * I/O thread runs. */
int tls_setup(const struct net_tls_config *cfg, char *err, size_t errlen);
/* Builds a new context from the same settings and files and publishes it;
 * on failure the current one stays. Not from an I/O thread (it waits for
 * them to let go of the old context). */
int tls_reload(char *err, size_t errlen);
/* Frees the context; net_stop, after the I/O threads were joined. */
void tls_teardown(void);
/* A new server-side SSL on the current context (NULL if out of memory).
 * Called by the I/O threads (which are RCU readers). */
SSL *tls_new_ssl(void);
/* Builds a context from cfg without publishing it (the unit tests use it
 * to check settings). NULL with a message in err. */
SSL_CTX *tls_ctx_build(const struct net_tls_config *cfg, char *err, size_t errlen);
/* tls_ctx_build for either use: peer false = the client port's server
 * context; true = a context that accepts and connects between servers
 * (tls_peer.c). */
SSL_CTX *tls_ctx_make(const struct net_tls_config *cfg, bool peer, char *err, size_t errlen);

/* ---- conn_tls.c ---- */

/* The subject of the verified client certificate of a TLS connection, as
 * net_conn_x509_subject says: 1, 0 (none) or -1 (does not fit). */
int conn_tls_subject(const struct conn_sock *s, char *out, size_t cap);

/* ---- x509_dn.c ---- */

/* Writes name as X500Principal.getName() (RFC 2253) does, NUL-terminated.
 * Returns its length, or -1 if it does not fit in cap bytes (or name is
 * unreadable). */
long tls_dn_rfc2253(const X509_NAME *name, char *out, size_t cap);

#endif
