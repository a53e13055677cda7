/*
 * test_tls.c - TLS in net/: the subject DN as Java writes it (x509_dn.c),
 * the context built from ssl.* settings (tls_ctx.c), and the TLS connection
 * type driven by the event loop (conn_tls.c + loop.c) against an OpenSSL
 * client in the test thread.
 *
 * Every test makes its own throw-away CA, server and client certificates
 * (EC P-256) in a temp dir, starts the loop with an echo server on an
 * ephemeral secure port and plays the client with a blocking socket whose
 * every receive is bounded by SO_RCVTIMEO, as test_net.c does: a broken
 * server fails a test, never hangs it.
 *
 * The expected DNs are what Java 17's X500Principal.getName() printed for
 * the same names (tests/integration/test_tls.py checks that against Java
 * itself for whole certificates).
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net/jute.h"
#include "net/net.h"
#include "net/tls.h"
#include "helpers.h"

#define WAIT_MS 10000

/* ---- DN formatting ------------------------------------------------------------ */

/* The name after a DER round trip (so entries are in encoded order, as in
 * a certificate received), written as Java does. */
static char *dn_of(X509_NAME *name)
{
	unsigned char *der = NULL;
	int len = i2d_X509_NAME(name, &der);
	cr_assert_gt(len, 0);
	const unsigned char *p = der;
	X509_NAME *back = d2i_X509_NAME(NULL, &p, len);
	cr_assert_not_null(back);
	static char out[2048];
	long n = tls_dn_rfc2253(back, out, sizeof out);
	cr_assert_geq(n, 0, "tls_dn_rfc2253 failed");
	cr_assert_eq((size_t)n, strlen(out));
	X509_NAME_free(back);
	OPENSSL_free(der);
	X509_NAME_free(name);
	return out;
}

/* Adds field=value: MBSTRING_UTF8 lets OpenSSL pick the type as `openssl
 * req` does; any other type stores the bytes as that ASN.1 type. */
static void add(X509_NAME *n, const char *field, int type, const void *v, int len, int set)
{
	cr_assert_eq(X509_NAME_add_entry_by_txt(n, field, type, v, len, -1, set), 1, "add %s", field);
}

Test(tls_dn, openssl_req_style_name_as_java_prints_it)
{
	X509_NAME *n = X509_NAME_new();
	add(n, "C", MBSTRING_UTF8, "US", -1, 0);
	add(n, "ST", MBSTRING_UTF8, "Some State", -1, 0);
	add(n, "L", MBSTRING_UTF8, "Town", -1, 0);
	add(n, "O", MBSTRING_UTF8, "Acme, Inc.", -1, 0);
	add(n, "OU", MBSTRING_UTF8, "a", -1, 0);
	add(n, "CN", MBSTRING_UTF8, "client #1 <x>;\"q\"\\z ", -1, 0);
	add(n, "emailAddress", MBSTRING_UTF8, "a@b.c", -1, 0);
	add(n, "serialNumber", MBSTRING_UTF8, "42", -1, 0);
	add(n, "DC", MBSTRING_UTF8, "example", -1, 0);
	add(n, "DC", MBSTRING_UTF8, "com", -1, 0);
	add(n, "UID", MBSTRING_UTF8, "u1", -1, 0);
	add(n, "title", MBSTRING_UTF8, "Boss", -1, 0);
	cr_assert_str_eq(dn_of(n),
			 "2.5.4.12=#0c04426f7373,UID=u1,DC=com,DC=example,2.5.4.5=#13023432,"
			 "1.2.840.113549.1.9.1=#16056140622e63,CN=client \\#1 \\<x\\>\\;\\\"q\\\"\\\\z\\ ,"
			 "OU=a,O=Acme\\, Inc.,L=Town,ST=Some State,C=US");
}

Test(tls_dn, escapes_and_whitespace_as_java)
{
	X509_NAME *n = X509_NAME_new();
	add(n, "CN", V_ASN1_UTF8STRING, "a=b+c#d", -1, 0);
	add(n, "O", V_ASN1_UTF8STRING, "#lead", -1, 0);
	add(n, "OU", V_ASN1_UTF8STRING, "x\ry\r", -1, 0);
	add(n, "L", V_ASN1_UTF8STRING, " \r sp", -1, 0);
	add(n, "ST", V_ASN1_UTF8STRING, "   ", -1, 0);
	cr_assert_str_eq(dn_of(n), "ST=\\ \\ \\ ,L=\\ \\\r\\ sp,OU=x\ry\\\r,O=\\#lead,CN=a\\=b\\+c\\#d");
}

Test(tls_dn, string_types_and_oids_as_java)
{
	static const unsigned char bmp[] = { 0, 'J', 0, 'o', 0, 's', 0, 0xe9, 0, ' ', 0, 'B' };
	X509_NAME *n = X509_NAME_new();
	add(n, "CN", V_ASN1_BMPSTRING, bmp, sizeof bmp, 0);
	add(n, "O", V_ASN1_T61STRING, "t61", -1, 0);
	add(n, "OU", V_ASN1_UNIVERSALSTRING, "\0\0\0u", 4, 0);
	add(n, "L", V_ASN1_IA5STRING, "ia5", -1, 0);
	add(n, "C", V_ASN1_PRINTABLESTRING, "US", -1, 0);
	add(n, "L", V_ASN1_NUMERICSTRING, "123", -1, 0);
	add(n, "1.2.3.4", V_ASN1_UTF8STRING, "custom", -1, 0);
	add(n, "CN", V_ASN1_UTF8STRING, "\ta\n\x01\x7f", -1, 0);
	add(n, "CN", V_ASN1_UTF8STRING, "\xe6\x97\xa5 \xf0\x9f\x98\x80", -1, 0);
	cr_assert_str_eq(dn_of(n),
			 "CN=\xe6\x97\xa5 \xf0\x9f\x98\x80,CN=\ta\n\x01\x7f,1.2.3.4=#0c06637573746f6d,L=#1203313233,"
			 "C=US,L=ia5,OU=#1c0400000075,O=t61,"
			 "CN=\\00J\\00o\\00s\\00\xef\xbf\xbd\\00 \\00B");
}

Test(tls_dn, malformed_utf8_is_replaced_as_java_does)
{
	/* E9 at the end: one U+FFFD; ED A0 80 (a surrogate): one U+FFFD;
	 * C0 80: two; F0 9F 98 at the end: one. (TeletexStrings, whose bytes
	 * OpenSSL does not check; Java decodes them as UTF-8 all the same.) */
	X509_NAME *n = X509_NAME_new();
	add(n, "CN", V_ASN1_T61STRING, "a\xe9", 2, 0);
	add(n, "O", V_ASN1_T61STRING, "\xed\xa0\x80|\xc0\x80|\xf0\x9f\x98", 10, 0);
	cr_assert_str_eq(dn_of(n), "O=\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd,CN=a\xef\xbf\xbd");
}

Test(tls_dn, multi_valued_rdn_in_encoded_order_and_empty_name)
{
	X509_NAME *n = X509_NAME_new();
	add(n, "CN", V_ASN1_UTF8STRING, "x", -1, 0);
	add(n, "O", V_ASN1_UTF8STRING, "a+b", -1, 0);
	add(n, "OU", V_ASN1_UTF8STRING, "multi", -1, -1);  /* same RDN as O */
	cr_assert_str_eq(dn_of(n), "O=a\\+b+OU=multi,CN=x");
	cr_assert_str_eq(dn_of(X509_NAME_new()), "");
}

Test(tls_dn, too_small_a_buffer_is_refused)
{
	X509_NAME *n = X509_NAME_new();
	add(n, "CN", MBSTRING_UTF8, "abcdefgh", -1, 0);
	char out[8];
	cr_assert_eq(tls_dn_rfc2253(n, out, sizeof out), -1);
	char ok[12];
	cr_assert_eq(tls_dn_rfc2253(n, ok, sizeof ok), 11);
	cr_assert_str_eq(ok, "CN=abcdefgh");
	X509_NAME_free(n);
}

/* ---- certificates on disk --------------------------------------------------------- */

static char dir[64];

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	cr_assert_not_null(k);
	return k;
}

/* A certificate for key with subject CN=cn (and the O given), signed by
 * ca/ca_key, or self-signed when ca is NULL. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *o, X509 *ca, EVP_PKEY *ca_key,
		      bool is_ca, long serial)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *n = X509_get_subject_name(x);
	if (o)
		add(n, "O", MBSTRING_UTF8, o, -1, 0);
	add(n, "CN", MBSTRING_UTF8, cn, -1, 0);
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : n);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
						is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (!is_ca) {
		e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	cr_assert_gt(X509_sign(x, ca_key ? ca_key : key, EVP_sha256()), 0);
	return x;
}

static char *path_of(const char *name)
{
	static char p[8][128];
	static int i;
	char *s = p[i++ % 8];
	snprintf(s, 128, "%s/%s", dir, name);
	return s;
}

/* Writes the key (if any) then the certificates to dir/name. */
static void write_pem(const char *name, EVP_PKEY *key, X509 *c1, X509 *c2)
{
	FILE *f = fopen(path_of(name), "w");
	cr_assert_not_null(f);
	if (key)
		PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (c1)
		PEM_write_X509(f, c1);
	if (c2)
		PEM_write_X509(f, c2);
	fclose(f);
}

static struct {
	EVP_PKEY *ca_key, *srv_key, *cli_key, *other_key;
	X509 *ca, *srv, *cli, *other_ca, *other_cli;
} pki;

/* ca.pem; server.pem (key + cert + CA); client-cert.pem/client-key.pem
 * (subject CN=alice,O=Acme, Inc.); rogue-*.pem: a client from another CA. */
static void make_pki(void)
{
	strcpy(dir, "/tmp/zkd-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	pki.ca_key = new_key();
	pki.ca = new_cert(pki.ca_key, "test CA", NULL, NULL, NULL, true, 1);
	pki.srv_key = new_key();
	pki.srv = new_cert(pki.srv_key, "localhost", NULL, pki.ca, pki.ca_key, false, 2);
	pki.cli_key = new_key();
	pki.cli = new_cert(pki.cli_key, "alice", "Acme, Inc.", pki.ca, pki.ca_key, false, 3);
	pki.other_key = new_key();
	pki.other_ca = new_cert(pki.other_key, "rogue CA", NULL, NULL, NULL, true, 4);
	pki.other_cli = new_cert(pki.cli_key, "mallory", NULL, pki.other_ca, pki.other_key, false, 5);
	write_pem("ca.pem", NULL, pki.ca, NULL);
	write_pem("server.pem", pki.srv_key, pki.srv, pki.ca);
	write_pem("server-cert.pem", NULL, pki.srv, NULL);
	write_pem("server-key.pem", pki.srv_key, NULL, NULL);
	write_pem("client-cert.pem", NULL, pki.cli, NULL);
	write_pem("client-key.pem", pki.cli_key, NULL, NULL);
	write_pem("rogue-cert.pem", NULL, pki.other_cli, NULL);
}

/* ---- the server --------------------------------------------------------------------- */

static struct {
	atomic_int opens, closes, frames;
	pthread_mutex_t lock;
	char subject[512];          /* of the last connection opened */
	int subject_rc;
	bool secure;
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void t_open(void *ctx, struct net_conn *c)
{
	(void)ctx;
	char s[512];
	int rc = net_conn_x509_subject(c, s, sizeof s);
	pthread_mutex_lock(&srv.lock);
	snprintf(srv.subject, sizeof srv.subject, "%s", rc > 0 ? s : "");
	srv.subject_rc = rc;
	srv.secure = net_conn_secure(c);
	pthread_mutex_unlock(&srv.lock);
	atomic_fetch_add(&srv.opens, 1);
}

static int t_frame(void *ctx, struct net_conn *c, const uint8_t *p, size_t len)
{
	(void)ctx;
	atomic_fetch_add(&srv.frames, 1);
	struct jute_writer *w = net_conn_out(c);
	size_t mark = net_frame_begin(w);
	jute_write_raw(w, p, len);
	net_frame_end(w, mark);
	return 0;
}

static void t_close(void *ctx, struct net_conn *c)
{
	(void)ctx;
	(void)c;
	atomic_fetch_add(&srv.closes, 1);
}

static void t_msg(void *ctx, struct net_conn *c, struct net_msg *m)
{
	(void)ctx;
	(void)c;
	free(m);
}

static void t_4lw(void *ctx, struct net_conn *c, const char cmd[4], const uint8_t *rest, size_t rest_len)
{
	(void)ctx;
	(void)rest;
	(void)rest_len;
	net_conn_send(c, cmd, 4);
	net_conn_close(c, "four-letter word answered");
}

static const struct net_callbacks cb = {
	.on_open = t_open, .on_frame = t_frame, .on_close = t_close, .on_msg = t_msg, .on_4lw = t_4lw,
};

static int port, tls_port;

static struct net_tls_config base_tls(void)
{
	struct net_tls_config t = {
		.key_store = path_of("server.pem"),
		.key_store_type = "PEM",
		.trust_store = path_of("ca.pem"),
		.client_auth = NET_TLS_AUTH_WANT,
	};
	return t;
}

static void start(const struct net_tls_config *t, bool plain)
{
	struct net_config cfg = {
		.bind_addr = "127.0.0.1", .port = plain ? 0 : -1,
		.secure_bind_addr = "127.0.0.1", .secure_port = 0, .tls = t,
		.n_threads = 2, .max_frame = 2 << 20,
	};
	char err[512] = "";
	cr_assert_eq(net_start(&cfg, &cb, err, sizeof err), 0, "net_start: %s", err);
	port = net_bound_port();
	tls_port = net_bound_secure_port();
	cr_assert_gt(tls_port, 0);
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);   /* the test's own client writes */
	make_pki();
}

static void teardown(void)
{
	net_stop();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- the client -------------------------------------------------------------------- */

static int tcp_connect(int p)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
	return fd;
}

struct cli {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

/* Connects and handshakes; version 0 = any. cert/key NULL = no client
 * certificate. Returns false if the handshake failed. */
static bool tls_connect(struct cli *c, int version, const char *cert, const char *key)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	cr_assert_not_null(c->ctx);
	if (version) {
		SSL_CTX_set_min_proto_version(c->ctx, version);
		SSL_CTX_set_max_proto_version(c->ctx, version);
	}
	cr_assert_eq(SSL_CTX_load_verify_locations(c->ctx, path_of("ca.pem"), NULL), 1);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (cert) {
		cr_assert_eq(SSL_CTX_use_certificate_file(c->ctx, cert, SSL_FILETYPE_PEM), 1);
		cr_assert_eq(SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM), 1);
	}
	c->fd = tcp_connect(tls_port);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set1_host(c->ssl, "localhost");
	return SSL_connect(c->ssl) == 1;
}

static void tls_close(struct cli *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	close(c->fd);
	memset(c, 0, sizeof *c);
}

static bool tls_write_all(struct cli *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		int k = SSL_write(c->ssl, b, n > INT32_MAX ? INT32_MAX : (int)n);
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

static bool tls_read_exact(struct cli *c, void *buf, size_t n)
{
	uint8_t *b = buf;
	while (n > 0) {
		int k = SSL_read(c->ssl, b, n > INT32_MAX ? INT32_MAX : (int)n);
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

static void send_frame(struct cli *c, const void *p, uint32_t n)
{
	uint8_t *b = malloc(4 + (size_t)n);
	jute_put_u32(b, n);
	memcpy(b + 4, p, n);
	cr_assert(tls_write_all(c, b, 4 + (size_t)n), "TLS write failed");
	free(b);
}

static void expect_frame(struct cli *c, const void *p, size_t n)
{
	uint8_t h[4];
	cr_assert(tls_read_exact(c, h, 4), "no frame header");
	size_t len = jute_get_u32(h);
	cr_assert_eq(len, n, "frame length %zu, expected %zu", len, n);
	uint8_t *got = malloc(len + 1);
	cr_assert(tls_read_exact(c, got, len), "short frame");
	cr_assert(memcmp(got, p, n) == 0, "frame content differs");
	free(got);
}

static void expect_echo(struct cli *c, const char *s)
{
	send_frame(c, s, (uint32_t)strlen(s));
	expect_frame(c, s, strlen(s));
}

/* True if the server closed the TLS connection (EOF, alert or reset) within
 * the bound. */
static bool tls_closed(struct cli *c)
{
	uint8_t b[256];
	for (;;) {
		int k = SSL_read(c->ssl, b, sizeof b);
		if (k > 0)
			continue;
		int e = SSL_get_error(c->ssl, k);
		if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SSL)
			return true;
		if (e == SSL_ERROR_SYSCALL)
			return errno == 0 || errno == ECONNRESET || errno == EPIPE;
		return false;
	}
}

/* True if the server closed the raw socket (EOF or reset) within the bound. */
static bool raw_closed(int fd)
{
	uint8_t b[4096];
	for (;;) {
		ssize_t k = recv(fd, b, sizeof b, 0);
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return true;
		if (k < 0 && errno != EINTR)
			return false;
	}
}

static char *subject_seen(void)
{
	static char s[512];
	pthread_mutex_lock(&srv.lock);
	snprintf(s, sizeof s, "%s", srv.subject);
	pthread_mutex_unlock(&srv.lock);
	return s;
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the loop with TLS ----------------------------------------------------------------- */

Test(tls, echo_over_tls13_and_tls12_with_and_without_client_certificate)
{
	struct net_tls_config t = base_tls();
	start(&t, true);
	int versions[] = { TLS1_3_VERSION, TLS1_2_VERSION };
	for (int i = 0; i < 2; i++) {
		struct cli c;
		cr_assert(tls_connect(&c, versions[i], path_of("client-cert.pem"), path_of("client-key.pem")),
			  "handshake failed");
		cr_assert_eq(SSL_version(c.ssl), versions[i]);
		expect_echo(&c, "hello");
		expect_echo(&c, "");
		cr_assert(WAIT_FOR(atomic_load(&srv.opens) == 2 * i + 1));
		cr_assert_str_eq(subject_seen(), "CN=alice,O=Acme\\, Inc.");
		cr_assert(srv.secure);
		tls_close(&c);

		cr_assert(tls_connect(&c, versions[i], NULL, NULL), "handshake without a certificate failed");
		expect_echo(&c, "anonymous");
		cr_assert(WAIT_FOR(atomic_load(&srv.opens) == 2 * i + 2));
		cr_assert_eq(srv.subject_rc, 0);
		tls_close(&c);
	}
	/* the plain port is served beside it */
	int fd = tcp_connect(port);
	uint8_t f[9] = { 0, 0, 0, 5, 'p', 'l', 'a', 'i', 'n' }, back[9];
	cr_assert_eq(send(fd, f, sizeof f, 0), (ssize_t)sizeof f);
	cr_assert_eq(recv(fd, back, sizeof back, MSG_WAITALL), (ssize_t)sizeof back);
	cr_assert(memcmp(f, back, sizeof f) == 0);
	close(fd);
}

Test(tls, big_frames_to_a_client_that_reads_late)
{
	struct net_tls_config t = base_tls();
	start(&t, false);
	struct cli c;
	cr_assert(tls_connect(&c, 0, NULL, NULL));
	/* 8 frames of 1 MB, sent before reading anything back: the server's
	 * replies pile up against a full socket (WANT_WRITE) while it reads. */
	enum { N = 8, SZ = 1 << 20 };
	uint8_t *data = malloc(SZ);
	for (size_t i = 0; i < SZ; i++)
		data[i] = (uint8_t)(i * 131 + 7);
	for (int i = 0; i < N; i++) {
		data[0] = (uint8_t)i;
		send_frame(&c, data, SZ);
	}
	for (int i = 0; i < N; i++) {
		data[0] = (uint8_t)i;
		expect_frame(&c, data, SZ);
	}
	expect_echo(&c, "after");
	free(data);
	tls_close(&c);
}

Test(tls, need_refuses_no_certificate_and_foreign_ca)
{
	struct net_tls_config t = base_tls();
	t.client_auth = NET_TLS_AUTH_NEED;
	start(&t, false);
	struct cli ok;
	cr_assert(tls_connect(&ok, 0, path_of("client-cert.pem"), path_of("client-key.pem")));
	expect_echo(&ok, "first");

	/* TLS 1.3: the client may only learn of the refusal when it reads */
	struct cli c;
	if (tls_connect(&c, 0, NULL, NULL))
		cr_assert(tls_closed(&c), "no certificate, but the connection stayed");
	tls_close(&c);
	if (tls_connect(&c, 0, path_of("rogue-cert.pem"), path_of("client-key.pem")))
		cr_assert(tls_closed(&c), "untrusted certificate, but the connection stayed");
	tls_close(&c);

	expect_echo(&ok, "still here");
	cr_assert_eq(atomic_load(&srv.opens), 1, "a refused handshake reached on_open");
	tls_close(&ok);
}

Test(tls, garbage_and_plaintext_close_only_their_connection)
{
	struct net_tls_config t = base_tls();
	t.handshake_timeout_ms = 1000;  /* "ruok" is less than a record header: it waits */
	start(&t, true);
	struct cli ok;
	cr_assert(tls_connect(&ok, 0, NULL, NULL));
	expect_echo(&ok, "before");

	/* a plaintext ZooKeeper ConnectRequest on the TLS port */
	int fd = tcp_connect(tls_port);
	uint8_t req[48] = { 0, 0, 0, 44 };
	cr_assert_eq(send(fd, req, sizeof req, 0), (ssize_t)sizeof req);
	cr_assert(raw_closed(fd));
	close(fd);
	/* a TLS record header announcing a huge record, then junk */
	fd = tcp_connect(tls_port);
	uint8_t junk[64] = { 0x16, 0x03, 0x01, 0xff, 0xff };
	for (size_t i = 5; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 37);
	cr_assert_eq(send(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
	cr_assert(raw_closed(fd));
	close(fd);
	/* a four-letter word before any handshake */
	fd = tcp_connect(tls_port);
	cr_assert_eq(send(fd, "ruok", 4, 0), 4);
	cr_assert(raw_closed(fd));
	close(fd);

	expect_echo(&ok, "after");
	cr_assert_eq(atomic_load(&srv.opens), 1);
	tls_close(&ok);
}

Test(tls, four_letter_words_work_over_tls)
{
	struct net_tls_config t = base_tls();
	start(&t, false);
	struct cli c;
	cr_assert(tls_connect(&c, 0, NULL, NULL));
	cr_assert(tls_write_all(&c, "ruok", 4));
	char back[4];
	cr_assert(tls_read_exact(&c, back, 4));
	cr_assert(memcmp(back, "ruok", 4) == 0);
	cr_assert(tls_closed(&c));
	tls_close(&c);
}

Test(tls, a_stalled_handshake_is_closed_at_the_bound_and_blocks_nobody)
{
	struct net_tls_config t = base_tls();
	t.handshake_timeout_ms = 500;
	start(&t, false);
	int silent = tcp_connect(tls_port);
	int partial = tcp_connect(tls_port);
	uint8_t hello_start[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00 };
	cr_assert_eq(send(partial, hello_start, sizeof hello_start, 0), (ssize_t)sizeof hello_start);
	int64_t t0 = test_now_ms();
	/* meanwhile others are served at once */
	struct cli ok;
	cr_assert(tls_connect(&ok, 0, NULL, NULL));
	expect_echo(&ok, "not blocked");
	cr_assert_lt(test_now_ms() - t0, 400);
	cr_assert(raw_closed(silent));
	cr_assert(raw_closed(partial));
	int64_t took = test_now_ms() - t0;
	cr_assert(took >= 400 && took < 3000, "closed after %lld ms", (long long)took);
	/* an established connection is not subject to the bound */
	nanosleep(&(struct timespec){ 0, 700 * 1000000 }, NULL);
	expect_echo(&ok, "still open");
	tls_close(&ok);
	close(silent);
	close(partial);
}

Test(tls, reload_swaps_certificates_for_new_connections_only)
{
	struct net_tls_config t = base_tls();
	start(&t, false);
	struct cli old;
	cr_assert(tls_connect(&old, 0, path_of("client-cert.pem"), path_of("client-key.pem")));
	expect_echo(&old, "before");
	X509 *peer = SSL_get1_peer_certificate(old.ssl);
	cr_assert_eq(ASN1_INTEGER_get(X509_get_serialNumber(peer)), 2);
	X509_free(peer);

	/* a new server certificate in the same files */
	EVP_PKEY *k2 = new_key();
	X509 *c2 = new_cert(k2, "localhost", "renewed", pki.ca, pki.ca_key, false, 42);
	write_pem("server.pem", k2, c2, pki.ca);
	char err[512];
	cr_assert_eq(net_tls_reload(err, sizeof err), 0, "reload: %s", err);
	struct cli fresh;
	cr_assert(tls_connect(&fresh, 0, NULL, NULL));
	peer = SSL_get1_peer_certificate(fresh.ssl);
	cr_assert_eq(ASN1_INTEGER_get(X509_get_serialNumber(peer)), 42);
	X509_free(peer);
	expect_echo(&fresh, "new");
	expect_echo(&old, "old connection lives on");

	/* a broken file: the reload fails and the current certificate stays */
	FILE *f = fopen(path_of("server.pem"), "w");
	fputs("not a certificate\n", f);
	fclose(f);
	cr_assert_eq(net_tls_reload(err, sizeof err), -1);
	cr_assert(strstr(err, "server.pem"), "message does not name the file: %s", err);
	struct cli third;
	cr_assert(tls_connect(&third, 0, NULL, NULL));
	peer = SSL_get1_peer_certificate(third.ssl);
	cr_assert_eq(ASN1_INTEGER_get(X509_get_serialNumber(peer)), 42);
	X509_free(peer);
	expect_echo(&third, "third");
	tls_close(&third);
	tls_close(&fresh);
	tls_close(&old);
	X509_free(c2);
	EVP_PKEY_free(k2);
}

Test(tls, tls_only_server_and_cert_key_files)
{
	struct net_tls_config t = {
		.cert_file = path_of("server-cert.pem"),
		.key_file = path_of("server-key.pem"),
		.ca_file = path_of("ca.pem"),
		.client_auth = NET_TLS_AUTH_NEED,
	};
	start(&t, false);
	cr_assert_eq(net_bound_port(), -1);
	struct cli c;
	cr_assert(tls_connect(&c, 0, path_of("client-cert.pem"), path_of("client-key.pem")));
	expect_echo(&c, "tls only");
	cr_assert(WAIT_FOR(atomic_load(&srv.opens) == 1));
	cr_assert_str_eq(subject_seen(), "CN=alice,O=Acme\\, Inc.");
	tls_close(&c);
}

/* ---- settings ------------------------------------------------------------------------------- */

static SSL_CTX *build(const struct net_tls_config *t, char *err, size_t len)
{
	return tls_ctx_build(t, err, len);
}

static void refused(const struct net_tls_config *t, const char *needle)
{
	char err[512];
	SSL_CTX *ctx = build(t, err, sizeof err);
	cr_assert_null(ctx, "accepted; expected an error with '%s'", needle);
	cr_assert(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
}

static bool has_cipher(SSL_CTX *ctx, const char *name)
{
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
	for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++)
		if (strcmp(SSL_CIPHER_get_name(sk_SSL_CIPHER_value(sk, i)), name) == 0)
			return true;
	return false;
}

Test(tls, protocols_and_suites_follow_zookeeper_settings)
{
	char err[512];
	struct net_tls_config t = base_tls();
	SSL_CTX *ctx = build(&t, err, sizeof err);
	cr_assert_not_null(ctx, "%s", err);
	cr_assert_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	cr_assert_eq(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	cr_assert(has_cipher(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256"));
	cr_assert(has_cipher(ctx, "ECDHE-RSA-AES256-SHA"));
	cr_assert(!has_cipher(ctx, "AES128-SHA"), "a suite outside ZooKeeper's default list");
	SSL_CTX_free(ctx);

	t.protocol = "TLSv1.3";
	ctx = build(&t, err, sizeof err);
	cr_assert_not_null(ctx, "%s", err);
	cr_assert_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	SSL_CTX_free(ctx);

	t.enabled_protocols = "TLSv1.1, TLSv1.2";     /* wins over ssl.protocol; 1.1 dropped */
	ctx = build(&t, err, sizeof err);
	cr_assert_not_null(ctx, "%s", err);
	cr_assert_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	cr_assert_eq(SSL_CTX_get_max_proto_version(ctx), TLS1_2_VERSION);
	SSL_CTX_free(ctx);

	t.enabled_protocols = "TLSv1,TLSv1.1";
	refused(&t, "no protocol left");
	t.enabled_protocols = "TLSv9";
	refused(&t, "unknown protocol 'TLSv9'");
	t.enabled_protocols = NULL;
	t.protocol = NULL;

	/* Java names map to OpenSSL's; a list without TLSv1.3 suites turns
	 * TLSv1.3 off */
	t.ciphersuites = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, NO_SUCH_SUITE";
	ctx = build(&t, err, sizeof err);
	cr_assert_not_null(ctx, "%s", err);
	cr_assert(has_cipher(ctx, "ECDHE-ECDSA-AES256-GCM-SHA384"));
	cr_assert(!has_cipher(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256"));
	cr_assert_eq(SSL_CTX_get_max_proto_version(ctx), TLS1_2_VERSION);
	SSL_CTX_free(ctx);
	t.ciphersuites = "TLS_AES_128_GCM_SHA256";
	ctx = build(&t, err, sizeof err);
	cr_assert_not_null(ctx, "%s", err);
	cr_assert_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	SSL_CTX_free(ctx);
	t.ciphersuites = "NO_SUCH_SUITE";
	refused(&t, "no usable suite");
}

Test(tls, key_and_trust_store_errors_name_the_setting_and_file)
{
	struct net_tls_config t = base_tls();
	t.key_store = path_of("missing.pem");
	refused(&t, "missing.pem: No such file");
	t = base_tls();
	t.key_store_type = "JKS";
	refused(&t, "Java-only");
	t.key_store_type = "XYZ";
	refused(&t, "unknown store type 'XYZ'");
	t = base_tls();
	t.key_store_type = NULL;
	t.key_store = path_of("server.store");
	refused(&t, "set ssl.keyStore.type");
	t = base_tls();
	t.key_store = path_of("ca.pem");        /* certificates, no key */
	refused(&t, "cannot read the private key");
	t = base_tls();
	t.trust_store = path_of("server-key.pem");      /* a key, no certificate */
	refused(&t, "no readable certificate");
	/* a key that is not the certificate's */
	t = (struct net_tls_config){ .cert_file = path_of("server-cert.pem"), .key_file = path_of("client-key.pem") };
	refused(&t, "does not belong");
	t = (struct net_tls_config){ .client_auth = NET_TLS_AUTH_NONE };
	refused(&t, "no server certificate");
}

Test(tls, encrypted_pem_and_pkcs12_key_stores)
{
	/* an encrypted PKCS#8 key with its certificate, password in a file */
	FILE *f = fopen(path_of("enc.pem"), "w");
	PEM_write_PKCS8PrivateKey(f, pki.srv_key, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"s3cret");
	PEM_write_X509(f, pki.srv);
	fclose(f);
	f = fopen(path_of("pw.txt"), "w");
	fputs("s3cret\n", f);
	fclose(f);
	char err[512];
	struct net_tls_config t = base_tls();
	t.key_store = path_of("enc.pem");
	refused(&t, "give its password");
	t.key_store_password = "wrong";
	refused(&t, "cannot read the private key");
	t.key_store_password_path = path_of("pw.txt");  /* wins over the plain password */
	SSL_CTX *ctx = build(&t, err, sizeof err);
	cr_assert_not_null(ctx, "%s", err);
	SSL_CTX_free(ctx);

	/* PKCS12, type from the .p12 name */
	STACK_OF(X509) *ca = sk_X509_new_null();
	sk_X509_push(ca, pki.ca);
	PKCS12 *p12 = PKCS12_create("p12pw", "server", pki.srv_key, pki.srv, ca, 0, 0, 0, 0, 0);
	cr_assert_not_null(p12);
	f = fopen(path_of("server.p12"), "wb");
	i2d_PKCS12_fp(f, p12);
	fclose(f);
	PKCS12_free(p12);
	sk_X509_free(ca);
	t = base_tls();
	t.key_store = path_of("server.p12");
	t.key_store_type = NULL;
	t.key_store_password = "p12pw";
	ctx = build(&t, err, sizeof err);
	cr_assert_not_null(ctx, "%s", err);
	SSL_CTX_free(ctx);
	t.key_store_password = "nope";
	refused(&t, "wrong password");

	/* and a server that serves it */
	t.key_store_password = "p12pw";
	start(&t, false);
	struct cli c;
	cr_assert(tls_connect(&c, 0, NULL, NULL));
	expect_echo(&c, "pkcs12");
	tls_close(&c);
}
