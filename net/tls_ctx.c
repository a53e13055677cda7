/*
 * tls_ctx.c - the server's OpenSSL context: built from ZooKeeper's ssl.*
 * settings, handed to the I/O threads, swapped on reload.
 *
 * What the settings mean is what they mean to ZooKeeper 3.8 (X509Util,
 * SSLContextAndOptions, KeyStoreFileType), as far as OpenSSL can follow:
 *
 *   - The key store holds the private key and the certificate chain, the
 *     leaf first: PEM (key and certificates in one file; an encrypted PKCS#8
 *     key is opened with the key store password) or PKCS12. Its type comes
 *     from ssl.keyStore.type, else from the file name (.pem, .p12), as in
 *     ZooKeeper. JKS and BCFKS are Java-only formats: zkd says so and stops.
 *     zkd also takes ssl.certFile + ssl.keyFile (PEM) for the same thing.
 *   - The trust store (or ssl.caFile) holds the CAs a client certificate
 *     must chain to; without one the system's CAs are used, as Java falls
 *     back to its own cacerts.
 *   - ssl.clientAuth: need (ZooKeeper's default) asks for a certificate and
 *     refuses a client without one; want asks but lets such a client in;
 *     none does not ask. A certificate that is presented must verify either
 *     way, as with Java's trust manager.
 *   - ssl.enabledProtocols, else ssl.protocol, names the protocols; neither
 *     gives TLSv1.2 and TLSv1.3. Nothing older is ever served: an older name
 *     is dropped with a warning.
 *   - ssl.ciphersuites lists IANA suite names (Java's); they are mapped to
 *     OpenSSL's (whose own names are accepted as well). Unknown names are
 *     dropped with a warning. A protocol left with no suite is turned off,
 *     as it would be in Java. The default is ZooKeeper's list (ECDHE with
 *     AES-GCM, then AES-CBC) for TLSv1.2, and OpenSSL's TLSv1.3 suites.
 *   - Client-initiated renegotiation is refused, as ZooKeeper sets
 *     jdk.tls.rejectClientInitiatedRenegotiation.
 *
 * Publication. The context in use is one pointer, `current`. I/O threads
 * read it under rcu_read_lock only to call SSL_new, which takes a reference
 * of its own, so a connection keeps the context it started with for its
 * whole life. tls_reload builds a complete new context first (any error
 * leaves the old one in place), swaps the pointer, waits for an RCU grace
 * period so that no I/O thread can still be about to use the old pointer,
 * and drops the old reference; OpenSSL frees the context when its last
 * connection goes. Reloads are serialized by `reload_lock`.
 */
#include "tls.h"

#include "log.h"
#include "tsan.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include <urcu.h>

/* ZooKeeper's default TLSv1.2 suites (X509Util, Java 9 and later order). */
static const char default_suites[] =
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
	"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,"
	"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,"
	"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,"
	"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA";

static const char all_tls13_suites[] =
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
	"TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256";

/* The settings, copied by tls_setup (strings owned here). Written by
 * tls_setup and tls_teardown (net_start / net_stop), read by tls_reload;
 * all three under reload_lock. */
static struct {
	bool on;
	struct net_tls_config cfg;
	char *strs[16];
	int n_strs;
} settings;

/* The context new connections get. Written by tls_setup, tls_reload and
 * tls_teardown; read by the I/O threads under rcu_read_lock. (A C11 atomic
 * rather than rcu_assign_pointer/rcu_dereference, so ThreadSanitizer sees
 * the hand-over too.) */
static _Atomic(SSL_CTX *) current;
/* Serializes tls_reload (the signal-waiting thread; tests). */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- messages ------------------------------------------------------------ */

/* The reason of the newest OpenSSL error ("bad decrypt"), "" if none. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "";
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *why = ssl_reason();
	if (*why)
		snprintf(err, errlen, "%s (%s)", msg, why);
	else
		snprintf(err, errlen, "%s", msg);
	ERR_clear_error();
	return -1;
}

static bool given(const char *s) { return s && *s; }

/* The zoo.cfg name of a setting: "ssl.<suffix>", or "<key_prefix>.<suffix>"
 * for the quorum's settings ("ssl.quorum.keyStore.location"). Good for a
 * few calls: a small per-thread ring of buffers. */
static const char *kn(const struct net_tls_config *cfg, const char *suffix)
{
	static _Thread_local char ring[8][96];
	static _Thread_local unsigned next;
	char *b = ring[next++ % 8];
	snprintf(b, sizeof ring[0], "%s.%s", given(cfg->key_prefix) ? cfg->key_prefix : "ssl", suffix);
	return b;
}

/* ---- passwords and files ------------------------------------------------- */

/* The password from ssl.*.passwordPath if given (the file's contents less
 * one trailing newline, as ZooKeeper's SecretUtils reads it), else the
 * plain setting. Returns 0, or -1 with err set. */
static int get_password(const char *plain, const char *path, const char *key, char *out,
			size_t cap, char *err, size_t errlen)
{
	out[0] = '\0';
	if (!given(path)) {
		if (given(plain) && strlen(plain) >= cap)
			return fail(err, errlen, "%s.password: too long", key);
		snprintf(out, cap, "%s", given(plain) ? plain : "");
		return 0;
	}
	FILE *f = fopen(path, "rb");
	if (!f)
		return fail(err, errlen, "%s.passwordPath %s: %s", key, path, strerror(errno));
	size_t n = fread(out, 1, cap - 1, f);
	bool more = fgetc(f) != EOF;
	fclose(f);
	if (more)
		return fail(err, errlen, "%s.passwordPath %s: too long", key, path);
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	return 0;
}

static int pem_password(char *buf, int size, int rwflag, void *u)
{
	(void)rwflag;
	const char *pw = u;
	int n = (int)strlen(pw);
	if (n >= size)
		return -1;
	memcpy(buf, pw, (size_t)n);
	return n;
}

enum store_type { STORE_PEM, STORE_PKCS12 };

/* ZooKeeper's KeyStoreFileType: the type setting, else the file name's
 * extension. */
static int store_type(const char *type, const char *path, const char *key, enum store_type *out,
		      char *err, size_t errlen)
{
	const char *t = type;
	if (!given(t)) {
		const char *dot = strrchr(path, '.');
		if (dot && strcmp(dot, ".pem") == 0)
			t = "PEM";
		else if (dot && strcmp(dot, ".p12") == 0)
			t = "PKCS12";
		else if (dot && strcmp(dot, ".jks") == 0)
			t = "JKS";
		else if (dot && strcmp(dot, ".bcfks") == 0)
			t = "BCFKS";
		else
			return fail(err, errlen, "%s.location %s: cannot tell the store type from the file name; "
				    "set %s.type (PEM or PKCS12)", key, path, key);
	}
	if (strcasecmp(t, "PEM") == 0) {
		*out = STORE_PEM;
	} else if (strcasecmp(t, "PKCS12") == 0) {
		*out = STORE_PKCS12;
	} else if (strcasecmp(t, "JKS") == 0 || strcasecmp(t, "BCFKS") == 0) {
		return fail(err, errlen, "%s %s: %s stores are Java-only; zkd reads PEM and PKCS12 "
			    "(keytool -importkeystore -deststoretype PKCS12 converts one)", key, path, t);
	} else {
		return fail(err, errlen, "%s.type: unknown store type '%s' (PEM or PKCS12)", key, t);
	}
	return 0;
}

static BIO *open_file(const char *path, const char *what, char *err, size_t errlen)
{
	BIO *b = BIO_new_file(path, "rb");
	if (!b) {
		int e = errno;
		ERR_clear_error();
		fail(err, errlen, "%s %s: %s", what, path, strerror(e ? e : ENOENT));
	}
	return b;
}

/* Every certificate in a PEM file, in order (other blocks are skipped). */
static STACK_OF(X509) *read_pem_certs(const char *path, const char *what, char *err, size_t errlen)
{
	BIO *b = open_file(path, what, err, errlen);
	if (!b)
		return NULL;
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509 *x;
	while (certs && (x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			break;
		}
	}
	BIO_free(b);
	unsigned long e = ERR_peek_last_error();
	if (certs && sk_X509_num(certs) > 0 && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		ERR_clear_error();          /* the normal end of the file */
	if (!certs || sk_X509_num(certs) == 0 || ERR_peek_error()) {
		sk_X509_pop_free(certs, X509_free);
		fail(err, errlen, "%s %s: no readable certificate", what, path);
		return NULL;
	}
	return certs;
}

/* ---- the server's key and certificate chain --------------------------------- */

static int use_key_and_chain(SSL_CTX *ctx, EVP_PKEY *key, STACK_OF(X509) *certs, const char *what,
			     char *err, size_t errlen)
{
	X509 *leaf = sk_X509_shift(certs);
	int rc = 0;
	if (!X509_check_private_key(leaf, key))
		rc = fail(err, errlen, "%s: the private key does not belong to the first certificate", what);
	else if (SSL_CTX_use_cert_and_key(ctx, leaf, key, certs, 1) != 1)
		rc = fail(err, errlen, "%s: cannot use the key and certificates", what);
	X509_free(leaf);
	return rc;
}

static int load_pem_key(const char *path, const char *password, const char *what, EVP_PKEY **key,
			char *err, size_t errlen)
{
	BIO *b = open_file(path, what, err, errlen);
	if (!b)
		return -1;
	*key = PEM_read_bio_PrivateKey(b, NULL, pem_password, (void *)password);
	BIO_free(b);
	if (!*key)
		return fail(err, errlen, "%s %s: cannot read the private key%s", what, path,
			    *password ? "" : " (if it is encrypted, give its password)");
	ERR_clear_error();
	return 0;
}

static int load_pkcs12(const char *path, const char *password, const char *what, EVP_PKEY **key,
		       X509 **cert, STACK_OF(X509) **ca, char *err, size_t errlen)
{
	BIO *b = open_file(path, what, err, errlen);
	if (!b)
		return -1;
	PKCS12 *p12 = d2i_PKCS12_bio(b, NULL);
	BIO_free(b);
	if (!p12)
		return fail(err, errlen, "%s %s: not a PKCS12 file", what, path);
	int ok = PKCS12_parse(p12, password, key, cert, ca);
	PKCS12_free(p12);
	if (!ok)
		return fail(err, errlen, "%s %s: cannot open the PKCS12 store (wrong password?)", what, path);
	ERR_clear_error();
	return 0;
}

static int load_identity(SSL_CTX *ctx, const struct net_tls_config *cfg, char *err, size_t errlen)
{
	char pw[1024];
	if (get_password(cfg->key_store_password, cfg->key_store_password_path, kn(cfg, "keyStore"), pw,
			 sizeof pw, err, errlen) != 0)
		return -1;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *certs = NULL;
	int rc = -1;
	if (given(cfg->cert_file)) {
		const char *key_file = given(cfg->key_file) ? cfg->key_file : cfg->cert_file;
		if (load_pem_key(key_file, pw, kn(cfg, "keyFile"), &key, err, errlen) == 0 &&
		    (certs = read_pem_certs(cfg->cert_file, kn(cfg, "certFile"), err, errlen)) != NULL)
			rc = use_key_and_chain(ctx, key, certs, cfg->cert_file, err, errlen);
	} else if (given(cfg->key_store)) {
		enum store_type t;
		if (store_type(cfg->key_store_type, cfg->key_store, kn(cfg, "keyStore"), &t, err, errlen) != 0) {
			rc = -1;
		} else if (t == STORE_PEM) {
			if (load_pem_key(cfg->key_store, pw, kn(cfg, "keyStore.location"), &key, err, errlen) == 0 &&
			    (certs = read_pem_certs(cfg->key_store, kn(cfg, "keyStore.location"), err, errlen)) != NULL)
				rc = use_key_and_chain(ctx, key, certs, cfg->key_store, err, errlen);
		} else {
			X509 *leaf = NULL;
			if (load_pkcs12(cfg->key_store, pw, kn(cfg, "keyStore.location"), &key, &leaf, &certs,
					err, errlen) == 0) {
				if (!key || !leaf) {
					rc = fail(err, errlen, "%s %s: no private key with its certificate",
						  kn(cfg, "keyStore.location"), cfg->key_store);
				} else {
					if (!certs)
						certs = sk_X509_new_null();
					if (certs && sk_X509_unshift(certs, leaf) > 0) {
						leaf = NULL;
						rc = use_key_and_chain(ctx, key, certs, cfg->key_store, err, errlen);
					} else {
						rc = fail(err, errlen, "out of memory");
					}
				}
			}
			X509_free(leaf);
		}
	} else {
		rc = fail(err, errlen, "no %s certificate: set %s "
			  "(a PEM file with the key and the certificate chain) or %s and %s",
			  cfg->key_prefix ? "peer" : "server", kn(cfg, "keyStore.location"), kn(cfg, "certFile"),
			  kn(cfg, "keyFile"));
	}
	OPENSSL_cleanse(pw, sizeof pw);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* ---- the CAs client certificates are checked against --------------------------- */

static int load_trust(SSL_CTX *ctx, const struct net_tls_config *cfg, char *err, size_t errlen)
{
	const char *path = given(cfg->ca_file) ? cfg->ca_file : cfg->trust_store;
	const char *what = given(cfg->ca_file) ? kn(cfg, "caFile") : kn(cfg, "trustStore.location");
	if (!given(path)) {
		if (cfg->client_auth != NET_TLS_AUTH_NONE)
			log_warn("TLS: neither %s nor %s is set; %s "
				 "certificates are checked against the system's CAs",
				 kn(cfg, "trustStore.location"), kn(cfg, "caFile"),
				 given(cfg->key_prefix) ? "peer" : "client");
		if (SSL_CTX_set_default_verify_paths(ctx) != 1)
			return fail(err, errlen, "cannot load the system's CAs");
		return 0;
	}
	enum store_type t = STORE_PEM;
	if (!given(cfg->ca_file) &&
	    store_type(cfg->trust_store_type, path, kn(cfg, "trustStore"), &t, err, errlen) != 0)
		return -1;
	STACK_OF(X509) *certs = NULL;
	if (t == STORE_PEM) {
		certs = read_pem_certs(path, what, err, errlen);
		if (!certs)
			return -1;
	} else {
		char pw[1024];
		EVP_PKEY *key = NULL;
		X509 *cert = NULL;
		int rc = get_password(cfg->trust_store_password, cfg->trust_store_password_path,
				      kn(cfg, "trustStore"), pw, sizeof pw, err, errlen);
		if (rc == 0)
			rc = load_pkcs12(path, pw, what, &key, &cert, &certs, err, errlen);
		OPENSSL_cleanse(pw, sizeof pw);
		EVP_PKEY_free(key);
		if (rc != 0) {
			X509_free(cert);
			return -1;
		}
		if (!certs)
			certs = sk_X509_new_null();
		if (cert && (!certs || !sk_X509_push(certs, cert)))
			X509_free(cert);
		if (!certs || sk_X509_num(certs) == 0) {
			sk_X509_pop_free(certs, X509_free);
			return fail(err, errlen, "%s %s: no certificate in the store", what, path);
		}
	}
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	int rc = 0;
	for (int i = 0; i < sk_X509_num(certs) && rc == 0; i++) {
		X509 *x = sk_X509_value(certs, i);
		if (X509_STORE_add_cert(store, x) != 1 || SSL_CTX_add_client_CA(ctx, x) != 1)
			rc = fail(err, errlen, "%s %s: cannot use certificate %d", what, path, i + 1);
	}
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* ---- protocols and suites ---------------------------------------------------- */

/* The comma-separated items of a list, one at a time: copies the item at
 * p, trimmed, into buf and returns where the search for the next one
 * starts; NULL when there are no more. */
static const char *next_item(const char *p, char *buf, size_t cap)
{
	while (*p == ',' || *p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	size_t n = strcspn(p, ",");
	const char *next = p + n;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	snprintf(buf, cap, "%.*s", (int)n, p);
	return next;
}

static int set_protocols(const struct net_tls_config *cfg, bool *v12, bool *v13, char *err, size_t errlen)
{
	const char *key = given(cfg->enabled_protocols) ? kn(cfg, "enabledProtocols") : kn(cfg, "protocol");
	const char *list = given(cfg->enabled_protocols) ? cfg->enabled_protocols : cfg->protocol;
	*v12 = *v13 = !given(list);
	char item[64];
	for (const char *p = list; given(p) && (p = next_item(p, item, sizeof item)) != NULL;) {
		if (strcasecmp(item, "TLSv1.2") == 0)
			*v12 = true;
		else if (strcasecmp(item, "TLSv1.3") == 0)
			*v13 = true;
		else if (strcasecmp(item, "TLS") == 0)
			*v12 = *v13 = true;
		else if (!strcasecmp(item, "TLSv1") || !strcasecmp(item, "TLSv1.1") || !strcasecmp(item, "SSLv3") ||
			 !strcasecmp(item, "SSL") || !strcasecmp(item, "SSLv2Hello"))
			log_warn("TLS: %s lists %s; zkd serves TLSv1.2 and TLSv1.3 only", key, item);
		else
			return fail(err, errlen, "%s: unknown protocol '%s' (TLSv1.2, TLSv1.3)", key, item);
	}
	if (!*v12 && !*v13)
		return fail(err, errlen, "%s=%s: no protocol left (zkd serves TLSv1.2 and TLSv1.3)", key, list);
	return 0;
}

/* The OpenSSL name of a suite given by its IANA or OpenSSL name, and
 * whether it is a TLSv1.3 suite; NULL if unknown. */
static const char *find_suite(STACK_OF(SSL_CIPHER) *all, const char *name, bool *tls13)
{
	for (int i = 0; i < sk_SSL_CIPHER_num(all); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(all, i);
		const char *std = SSL_CIPHER_standard_name(c);
		if ((std && strcmp(std, name) == 0) || strcmp(SSL_CIPHER_get_name(c), name) == 0) {
			*tls13 = strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0;
			return SSL_CIPHER_get_name(c);
		}
	}
	return NULL;
}

static void append(char *buf, size_t cap, const char *s)
{
	size_t n = strlen(buf);
	snprintf(buf + n, cap - n, "%s%s", n ? ":" : "", s);
}

static int set_suites(SSL_CTX *ctx, const struct net_tls_config *cfg, bool *v12, bool *v13,
		      char *err, size_t errlen)
{
	const char *list = given(cfg->ciphersuites) ? cfg->ciphersuites : default_suites;
	/* Every suite this OpenSSL knows, to look names up in. */
	SSL_CTX *all_ctx = SSL_CTX_new(TLS_method());
	if (!all_ctx || SSL_CTX_set_cipher_list(all_ctx, "ALL:COMPLEMENTOFALL:@SECLEVEL=0") != 1 ||
	    SSL_CTX_set_ciphersuites(all_ctx, all_tls13_suites) != 1) {
		SSL_CTX_free(all_ctx);
		return fail(err, errlen, "cannot list the cipher suites");
	}
	STACK_OF(SSL_CIPHER) *all = SSL_CTX_get_ciphers(all_ctx);
	char s12[4096] = "", s13[512] = "", item[128];
	for (const char *p = list; (p = next_item(p, item, sizeof item)) != NULL;) {
		bool is13 = false;
		const char *name = find_suite(all, item, &is13);
		if (!name) {
			log_warn("TLS: %s: '%s' is not a suite this OpenSSL knows; dropped", kn(cfg, "ciphersuites"), item);
			continue;
		}
		append(is13 ? s13 : s12, is13 ? sizeof s13 : sizeof s12, name);
	}
	SSL_CTX_free(all_ctx);
	bool default13 = !given(cfg->ciphersuites);
	if (*v12 && !s12[0]) {
		if (*v13 && (s13[0] || default13))
			log_warn("TLS: %s names no TLSv1.2 suite; TLSv1.2 is off", kn(cfg, "ciphersuites"));
		*v12 = false;
	}
	if (*v13 && !s13[0] && !default13) {
		if (*v12)
			log_warn("TLS: %s names no TLSv1.3 suite; TLSv1.3 is off", kn(cfg, "ciphersuites"));
		*v13 = false;
	}
	if (!*v12 && !*v13)
		return fail(err, errlen, "%s: no usable suite for the enabled protocols", kn(cfg, "ciphersuites"));
	if (s12[0] && SSL_CTX_set_cipher_list(ctx, s12) != 1)
		return fail(err, errlen, "%s: OpenSSL refuses %s", kn(cfg, "ciphersuites"), s12);
	if (!default13 && SSL_CTX_set_ciphersuites(ctx, s13) != 1)
		return fail(err, errlen, "%s: OpenSSL refuses %s", kn(cfg, "ciphersuites"), s13);
	return 0;
}

/* ---- the context ---------------------------------------------------------------- */

SSL_CTX *tls_ctx_build(const struct net_tls_config *cfg, char *err, size_t errlen)
{
	return tls_ctx_make(cfg, false, err, errlen);
}

SSL_CTX *tls_ctx_make(const struct net_tls_config *cfg, bool peer, char *err, size_t errlen)
{
	err[0] = '\0';
	ERR_clear_error();
	/* a server's peer context both accepts and connects */
	SSL_CTX *ctx = SSL_CTX_new(peer ? TLS_method() : TLS_server_method());
	if (!ctx) {
		fail(err, errlen, "cannot create an OpenSSL context");
		return NULL;
	}
	bool v12, v13;
	if (set_protocols(cfg, &v12, &v13, err, errlen) != 0 ||
	    set_suites(ctx, cfg, &v12, &v13, err, errlen) != 0 ||
	    SSL_CTX_set_min_proto_version(ctx, v12 ? TLS1_2_VERSION : TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, v13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1 ||
	    load_identity(ctx, cfg, err, errlen) != 0 ||
	    load_trust(ctx, cfg, err, errlen) != 0) {
		if (!err[0])
			fail(err, errlen, "cannot set the TLS protocol versions");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
				 /* a peer that just closes the socket ends the
				  * stream; the frames carry their own lengths */
				 | SSL_OP_IGNORE_UNEXPECTED_EOF
#endif
	);
	/* Partial writes with a buffer that may move between retries: the
	 * loop's output buffer grows and compacts (conn_tls.c). Idle
	 * connections give their record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (peer) {
		/* Between servers: no resumption, so no session tickets either
		 * (a ticket left unread makes a close reset the connection,
		 * which the election's connect-and-hang-up relies on not
		 * doing); no read-ahead, so that all a socket holds beyond
		 * what SSL_read returned is one record's rest (SSL_pending). */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"zkd-quorum", 10);
		SSL_CTX_set_verify(ctx, cfg->client_auth == NET_TLS_AUTH_NONE ? SSL_VERIFY_NONE :
				   cfg->client_auth == NET_TLS_AUTH_WANT ? SSL_VERIFY_PEER :
				   SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		return ctx;
	}
	/* Whole socket reads rather than one per record header and body;
	 * what is read ahead is reported by has_pending (conn_tls.c). */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* Resumption by tickets only (no server-side cache to share between
	 * threads); the id context is what lets a verified client resume. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"zkd", 3);
	switch (cfg->client_auth) {
	case NET_TLS_AUTH_NEED:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		break;
	case NET_TLS_AUTH_WANT:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		break;
	default:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		break;
	}
	return ctx;
}

static const char *describe(const SSL_CTX *ctx, const struct net_tls_config *cfg, char *buf, size_t cap)
{
	long min = SSL_CTX_get_min_proto_version((SSL_CTX *)ctx);
	long max = SSL_CTX_get_max_proto_version((SSL_CTX *)ctx);
	snprintf(buf, cap, "%s%s%s, client certificates %s, key and certificates from %s",
		 min <= TLS1_2_VERSION ? "TLSv1.2" : "", min <= TLS1_2_VERSION && max >= TLS1_3_VERSION ? " and " : "",
		 max >= TLS1_3_VERSION ? "TLSv1.3" : "",
		 cfg->client_auth == NET_TLS_AUTH_NEED ? "required" :
		 cfg->client_auth == NET_TLS_AUTH_WANT ? "optional" : "not asked for",
		 given(cfg->cert_file) ? cfg->cert_file : cfg->key_store);
	return buf;
}

static char *keep(const char *s)
{
	if (!given(s) || settings.n_strs == (int)(sizeof settings.strs / sizeof settings.strs[0]))
		return NULL;
	char *d = strdup(s);
	if (d)
		settings.strs[settings.n_strs++] = d;
	return d;
}

int tls_setup(const struct net_tls_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	SSL_CTX *ctx = tls_ctx_build(cfg, err, errlen);
	if (!ctx)
		return -1;
	pthread_mutex_lock(&reload_lock);
	struct net_tls_config *c = &settings.cfg;
	*c = *cfg;
	c->key_store = keep(cfg->key_store);
	c->key_store_type = keep(cfg->key_store_type);
	c->key_store_password = keep(cfg->key_store_password);
	c->key_store_password_path = keep(cfg->key_store_password_path);
	c->cert_file = keep(cfg->cert_file);
	c->key_file = keep(cfg->key_file);
	c->trust_store = keep(cfg->trust_store);
	c->trust_store_type = keep(cfg->trust_store_type);
	c->trust_store_password = keep(cfg->trust_store_password);
	c->trust_store_password_path = keep(cfg->trust_store_password_path);
	c->ca_file = keep(cfg->ca_file);
	c->protocol = keep(cfg->protocol);
	c->enabled_protocols = keep(cfg->enabled_protocols);
	c->ciphersuites = keep(cfg->ciphersuites);
	settings.on = true;
	atomic_store_explicit(&current, ctx, memory_order_release);
	char d[512];
	log_info("TLS: %s", describe(ctx, c, d, sizeof d));
	pthread_mutex_unlock(&reload_lock);
	return 0;
}

int tls_reload(char *err, size_t errlen)
{
	err[0] = '\0';
	pthread_mutex_lock(&reload_lock);
	if (!settings.on) {
		pthread_mutex_unlock(&reload_lock);
		return 0;
	}
	SSL_CTX *ctx = tls_ctx_build(&settings.cfg, err, errlen);
	if (!ctx) {
		pthread_mutex_unlock(&reload_lock);
		return -1;
	}
	SSL_CTX *old = atomic_exchange_explicit(&current, ctx, memory_order_acq_rel);
	synchronize_rcu();      /* no I/O thread still holds `old` outside SSL_new */
	SSL_CTX_free(old);      /* connections made with it keep their reference */
	char d[512];
	log_info("TLS: reloaded: %s", describe(ctx, &settings.cfg, d, sizeof d));
	pthread_mutex_unlock(&reload_lock);
	return 0;
}

void tls_teardown(void)
{
	pthread_mutex_lock(&reload_lock);
	SSL_CTX *old = atomic_exchange_explicit(&current, NULL, memory_order_acq_rel);
	if (old) {
		synchronize_rcu();
		SSL_CTX_free(old);
	}
	for (int i = 0; i < settings.n_strs; i++)
		free(settings.strs[i]);
	memset(&settings, 0, sizeof settings);
	pthread_mutex_unlock(&reload_lock);
}

SSL *tls_new_ssl(void)
{
	rcu_read_lock();
	SSL_CTX *ctx = atomic_load_explicit(&current, memory_order_acquire);
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	zkd_rcu_read_unlock();
	return ssl;
}
