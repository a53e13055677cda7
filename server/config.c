/*
 * config.c - the zoo.cfg reader.
 *
 * Operators swap zkd in for ZooKeeper 3.8 without touching zoo.cfg, so a
 * file must mean here what it means to QuorumPeerConfig. Reading it takes
 * three layers, top to bottom in this file:
 *
 *   1. The java.util.Properties syntax (props_*): comment lines, "key=value",
 *      "key value" and "key:value", backslash continuations and escapes.
 *      ZooKeeper loads the file with Properties.load, so lines are split
 *      exactly as Java splits them; a simpler reader would give some files
 *      ZooKeeper accepts another meaning.
 *
 *   2. One setting at a time (apply_setting): key_specs says what type a
 *      value has, what range it must be in and which field it goes to;
 *      server.N lines have their own parser. Keys ZooKeeper knows but zkd
 *      does not act on yet are in quiet_keys; any other key is warned about
 *      and ignored, because ZooKeeper turns unknown keys into system
 *      properties instead of refusing them. A bad value of a key zkd acts on
 *      refuses the file, naming the line: starting with a default in place
 *      of a typo would be worse than not starting.
 *
 *   3. config_finish: what depends on several keys (session timeouts from
 *      tickTime, dataLogDir from dataDir, myid, the client port a server.N
 *      line gives) and the cross-checks ZooKeeper makes. It derives from the
 *      *_given fields only, so it can run again after -D settings.
 *
 * Then the two readers of the result: config_describe (the `conf` 4lw) and
 * config_4lw_allowed.
 */
#include "server/config.h"

#include "net/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A zoo.cfg is a few hundred bytes; anything this big is not one. */
#define MAX_FILE_BYTES (16u << 20)

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Copies src into a char array of `size` bytes; false if it does not fit. */
static bool copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

/* ------------------------------------------------------------------ */
/* Defaults                                                            */
/* ------------------------------------------------------------------ */

void config_defaults(struct zkd_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->tick_time = 2000;
	cfg->init_limit = 10;
	cfg->sync_limit = 5;
	cfg->max_client_cnxns = 60;
	cfg->min_session_timeout_given = -1;
	cfg->max_session_timeout_given = -1;
	cfg->min_session_timeout = 2 * cfg->tick_time;
	cfg->max_session_timeout = 20 * cfg->tick_time;
	cfg->client_port_listen_backlog = -1;
	/* ZooKeeper 3.8 enables only srvr unless told otherwise (FourLetterCommands) */
	copy_str(cfg->fourlw_whitelist, sizeof cfg->fourlw_whitelist, "srvr");
	cfg->jute_maxbuffer = 0xfffff;
	cfg->global_outstanding_limit = 1000;
	cfg->snap_count = 100000;
	cfg->autopurge_snap_retain_count = 3;
	cfg->autopurge_purge_interval = 0;
	cfg->force_sync = true;
	cfg->pre_alloc_size_kb = 65536;
	cfg->standalone_enabled = true;
	cfg->ssl_q_hostname_verification = true;
	snprintf(cfg->peer_type, sizeof cfg->peer_type, "participant");
	cfg->election_port_bind_retry = 3;
	cfg->fle_min_notification_interval = 30;
	cfg->fle_max_notification_interval = 60000;
	cfg->sessionless_cnxn_timeout_ms = 10000;
	cfg->reconfig_enabled = false;
	cfg->admin_enable = true;
	cfg->admin_port = 8080;
	copy_str(cfg->admin_address, sizeof cfg->admin_address, "0.0.0.0");
	copy_str(cfg->admin_command_url, sizeof cfg->admin_command_url, "/commands");
	copy_str(cfg->metrics_host, sizeof cfg->metrics_host, "0.0.0.0");
	cfg->metrics_port = 7000;
	cfg->container_check_interval_ms = 60000;
	cfg->fsync_warning_threshold_ms = 1000;
	cfg->container_max_per_minute = 10000;
}

/* ------------------------------------------------------------------ */
/* Layer 1: java.util.Properties syntax                                */
/* ------------------------------------------------------------------ */

/* A growable line buffer; always has room for a terminating NUL. */
struct strbuf {
	char *s;
	size_t len, cap;
};

static bool strbuf_append(struct strbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s)
			return false;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
	return true;
}

/* The file in memory and how far the reader has come. */
struct props {
	const char *p, *end;
	int line;                   /* natural line p is on, from 1 */
};

/* Properties' whitespace: no newlines, but form feed. */
static bool props_blank(char c) { return c == ' ' || c == '\t' || c == '\f'; }

static bool props_at_eol(const struct props *r)
{
	return r->p == r->end || *r->p == '\n' || *r->p == '\r';
}

/* Steps over one terminator: Properties accepts \n, \r and \r\n. */
static void props_skip_eol(struct props *r)
{
	if (r->p < r->end && *r->p == '\r')
		r->p++;
	if (r->p < r->end && *r->p == '\n')
		r->p++;
	r->line++;
}

static void props_skip_blanks(struct props *r)
{
	while (r->p < r->end && props_blank(*r->p))
		r->p++;
}

/* Moves to the first character of the next line that is neither blank nor
 * a comment ('#' or '!' first after leading whitespace). False at the end. */
static bool props_skip_to_content(struct props *r)
{
	for (;;) {
		props_skip_blanks(r);
		if (r->p == r->end)
			return false;
		if (*r->p == '#' || *r->p == '!') {
			while (!props_at_eol(r))
				r->p++;
		}
		if (!props_at_eol(r))
			return true;
		props_skip_eol(r);
	}
}

/* Reads one logical line into out: a natural line ending in an odd number
 * of backslashes continues on the next, whose leading whitespace is dropped
 * (a comment character there is content, as in Java). Returns 1 with the
 * line, 0 at the end of the file, -1 out of memory. */
static int props_next_line(struct props *r, struct strbuf *out, int *first_line)
{
	if (!props_skip_to_content(r))
		return 0;
	*first_line = r->line;
	out->len = 0;
	if (!strbuf_append(out, "", 0))
		return -1;
	for (;;) {
		const char *start = r->p;
		while (!props_at_eol(r))
			r->p++;
		size_t n = (size_t)(r->p - start), slashes = 0;
		while (slashes < n && start[n - 1 - slashes] == '\\')
			slashes++;
		bool continued = slashes % 2 == 1;
		if (!strbuf_append(out, start, continued ? n - 1 : n))
			return -1;
		/* a backslash on the file's last line continues nothing: Java drops it */
		if (!continued || r->p == r->end) {
			if (r->p < r->end)
				props_skip_eol(r);
			return 1;
		}
		props_skip_eol(r);
		props_skip_blanks(r);
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Writes a \uXXXX code unit as UTF-8 (what Java hands the OS for a path). */
static size_t put_utf8(char *w, unsigned cp)
{
	if (cp < 0x80) {
		w[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		w[0] = (char)(0xc0 | (cp >> 6));
		w[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	w[0] = (char)(0xe0 | (cp >> 12));
	w[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	w[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

/* Undoes Properties escapes in s[0..n) in place (output never grows): \t \n
 * \r \f, \uXXXX, and backslash-anything for the thing itself. Returns the
 * new length, or -1 for a malformed \uXXXX, which Java refuses too. Bytes
 * above 0x7f pass through unchanged, so UTF-8 paths work. */
static long props_unescape(char *s, size_t n)
{
	size_t r = 0, w = 0;
	while (r < n) {
		char c = s[r++];
		if (c != '\\' || r == n) {
			s[w++] = c;
			continue;
		}
		c = s[r++];
		switch (c) {
		case 't': s[w++] = '\t'; break;
		case 'n': s[w++] = '\n'; break;
		case 'r': s[w++] = '\r'; break;
		case 'f': s[w++] = '\f'; break;
		case 'u': {
			unsigned cp = 0;
			for (int i = 0; i < 4; i++) {
				int d = r < n ? hex_digit(s[r++]) : -1;
				if (d < 0)
					return -1;
				cp = cp * 16 + (unsigned)d;
			}
			w += put_utf8(s + w, cp);
			break;
		}
		default: s[w++] = c; break;
		}
	}
	return (long)w;
}

/* Splits a logical line as Properties.load does: the key ends at the first
 * unescaped '=', ':' or whitespace; then whitespace and at most one '=' or
 * ':' are skipped; the rest is the value. Both are unescaped in place and
 * NUL-terminated inside line. Returns -1 for a malformed \uXXXX. */
static int props_split(char *line, size_t len, char **key, char **value)
{
	size_t key_len = 0, value_start = len;
	bool escaped = false, has_sep = false;
	for (; key_len < len; key_len++) {
		char c = line[key_len];
		if (!escaped && (c == '=' || c == ':' || props_blank(c))) {
			has_sep = c == '=' || c == ':';
			value_start = key_len + 1;
			break;
		}
		escaped = c == '\\' && !escaped;
	}
	while (value_start < len) {
		char c = line[value_start];
		if (!props_blank(c)) {
			if (has_sep || (c != '=' && c != ':'))
				break;
			has_sep = true;
		}
		value_start++;
	}
	/* value first: the key's terminator may land where an empty value starts */
	long vlen = props_unescape(line + value_start, len - value_start);
	if (vlen < 0)
		return -1;
	line[value_start + (size_t)vlen] = '\0';
	long klen = props_unescape(line, key_len);
	if (klen < 0)
		return -1;
	line[klen] = '\0';
	*key = line;
	*value = line + value_start;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Layer 2: one setting                                                */
/* ------------------------------------------------------------------ */

enum value_kind {
	V_INT,      /* int, decimal */
	V_SIZE,     /* int64_t, decimal or 0x hex (jute.maxbuffer, as Integer.decode) */
	V_BOOL,     /* true/false/yes/no, any case */
	V_PATH,     /* char[], must not be empty */
	V_STR,      /* char[] */
};

struct key_spec {
	const char *name;
	enum value_kind kind;
	size_t offset, size;        /* the field in struct zkd_config */
	long long min, max;         /* V_INT, V_SIZE */
	bool clamp;                 /* below min: raise to min with a warning, as ZooKeeper does */
	bool sysprop;               /* ZooKeeper reads it as Java system property
	                               "zookeeper.<name>", so that spelling is accepted too */
};

#define FIELD(f) offsetof(struct zkd_config, f), sizeof(((struct zkd_config *)0)->f)
#define INT_KEY(n, f, lo, hi)  { n, V_INT, FIELD(f), lo, hi, false, false }
#define PORT_KEY(n, f)         INT_KEY(n, f, 0, 65535)
#define BOOL_KEY(n, f)         { n, V_BOOL, FIELD(f), 0, 0, false, false }
#define PATH_KEY(n, f)         { n, V_PATH, FIELD(f), 0, 0, false, false }
#define STR_KEY(n, f)          { n, V_STR, FIELD(f), 0, 0, false, false }
#define SYS_INT_KEY(n, f, lo, hi) { n, V_INT, FIELD(f), lo, hi, false, true }
#define SYS_BOOL_KEY(n, f)     { n, V_BOOL, FIELD(f), 0, 0, false, true }
#define SYS_STR_KEY(n, f)      { n, V_STR, FIELD(f), 0, 0, false, true }
#define CLAMPED_KEY(n, f, lo, sys) { n, V_INT, FIELD(f), lo, INT_MAX, true, sys }

/* The keys zkd acts on. Ranges: ZooKeeper takes any int, but negative ports
 * or a zero tickTime would only fail later and less clearly. */
static const struct key_spec key_specs[] = {
	INT_KEY("tickTime", tick_time, 1, INT_MAX),
	INT_KEY("initLimit", init_limit, 1, INT_MAX),
	INT_KEY("syncLimit", sync_limit, 1, INT_MAX),
	PATH_KEY("dataDir", data_dir),
	PATH_KEY("dataLogDir", data_log_dir),
	PORT_KEY("clientPort", client_port),          /* 0 = not set, as in ZooKeeper */
	STR_KEY("clientPortAddress", client_port_address),
	PORT_KEY("secureClientPort", secure_client_port),
	STR_KEY("secureClientPortAddress", secure_client_port_address),
	INT_KEY("clientPortListenBacklog", client_port_listen_backlog, -1, INT_MAX),
	INT_KEY("maxClientCnxns", max_client_cnxns, 0, INT_MAX),
	INT_KEY("minSessionTimeout", min_session_timeout_given, -1, INT_MAX),
	INT_KEY("maxSessionTimeout", max_session_timeout_given, -1, INT_MAX),
	/* PurgeTxnLog keeps at least 3 snapshots; ZooKeeper raises lower counts */
	CLAMPED_KEY("autopurge.snapRetainCount", autopurge_snap_retain_count, 3, false),
	/* 0 or less disables purging in ZooKeeper; 0 says that here */
	CLAMPED_KEY("autopurge.purgeInterval", autopurge_purge_interval, 0, false),
	BOOL_KEY("standaloneEnabled", standalone_enabled),
	BOOL_KEY("reconfigEnabled", reconfig_enabled),
	BOOL_KEY("localSessionsEnabled", local_session_enabled),
	BOOL_KEY("quorumListenOnAllIPs", quorum_listen_on_all_ips),
	STR_KEY("peerType", peer_type),
	SYS_INT_KEY("electionPortBindRetry", election_port_bind_retry, 0, INT_MAX),
	SYS_INT_KEY("fle.minNotificationInterval", fle_min_notification_interval, 1, INT_MAX),
	SYS_INT_KEY("fle.maxNotificationInterval", fle_max_notification_interval, 1, INT_MAX),
	SYS_BOOL_KEY("readonlymode.enabled", readonly_mode_enabled),
	/* a connection that never completes its session handshake is closed */
	SYS_INT_KEY("nio.sessionlessCnxnTimeout", sessionless_cnxn_timeout_ms, 0, INT_MAX),
	SYS_STR_KEY("4lw.commands.whitelist", fourlw_whitelist),
	{ "jute.maxbuffer", V_SIZE, FIELD(jute_maxbuffer), 1, INT32_MAX, false, true },
	SYS_INT_KEY("globalOutstandingLimit", global_outstanding_limit, 0, INT_MAX),
	/* SyncRequestProcessor needs 2 or more; ZooKeeper raises lower counts */
	CLAMPED_KEY("snapCount", snap_count, 2, true),
	/* ZooKeeper syncs unless this is "no"; yes/no/true/false all mean what they say here */
	SYS_BOOL_KEY("forceSync", force_sync),
	/* SyncRequestProcessor warns when one fsync takes longer than this */
	SYS_INT_KEY("fsync.warningthresholdms", fsync_warning_threshold_ms, 0, INT_MAX),
	SYS_INT_KEY("preAllocSize", pre_alloc_size_kb, 1, INT_MAX),
	/* JettyAdminServer's zookeeper.admin.*; admin.idleTimeout is quiet */
	SYS_BOOL_KEY("admin.enableServer", admin_enable),
	SYS_INT_KEY("admin.serverPort", admin_port, 0, 65535),
	SYS_STR_KEY("admin.serverAddress", admin_address),
	SYS_STR_KEY("admin.commandURL", admin_command_url),
	/* QuorumPeerConfig hands metricsProvider.* (prefix cut) to the provider;
	 * they are never system properties. exportJvmInfo is quiet: no JVM. */
	STR_KEY("metricsProvider.className", metrics_class),
	STR_KEY("metricsProvider.httpHost", metrics_host),
	PORT_KEY("metricsProvider.httpPort", metrics_port),
	SYS_BOOL_KEY("extendedTypesEnabled", extended_types_enabled),
	/* ContainerManager: how often containers and TTL nodes are swept */
	SYS_INT_KEY("znode.container.checkIntervalMs", container_check_interval_ms, 1, INT_MAX),
	SYS_INT_KEY("znode.container.maxPerMinute", container_max_per_minute, 1, INT_MAX),
	/* user:base64(sha1(user:password)) whose holder passes every ACL */
	SYS_STR_KEY("DigestAuthenticationProvider.superDigest", super_digest),
	/* TLS on secureClientPort (X509Util's keys, read as zookeeper.ssl.*) */
	SYS_STR_KEY("ssl.keyStore.location", ssl_keystore_location),
	SYS_STR_KEY("ssl.keyStore.type", ssl_keystore_type),
	SYS_STR_KEY("ssl.keyStore.password", ssl_keystore_password),
	SYS_STR_KEY("ssl.keyStore.passwordPath", ssl_keystore_password_path),
	SYS_STR_KEY("ssl.trustStore.location", ssl_truststore_location),
	SYS_STR_KEY("ssl.trustStore.type", ssl_truststore_type),
	SYS_STR_KEY("ssl.trustStore.password", ssl_truststore_password),
	SYS_STR_KEY("ssl.trustStore.passwordPath", ssl_truststore_password_path),
	SYS_STR_KEY("ssl.certFile", ssl_cert_file),
	SYS_STR_KEY("ssl.keyFile", ssl_key_file),
	SYS_STR_KEY("ssl.caFile", ssl_ca_file),
	SYS_STR_KEY("ssl.clientAuth", ssl_client_auth),
	SYS_STR_KEY("ssl.protocol", ssl_protocol),
	SYS_STR_KEY("ssl.enabledProtocols", ssl_enabled_protocols),
	SYS_STR_KEY("ssl.ciphersuites", ssl_ciphersuites),
	SYS_STR_KEY("ssl.authProvider", ssl_auth_provider),
	SYS_BOOL_KEY("ssl.crl", ssl_crl),
	SYS_BOOL_KEY("ssl.ocsp", ssl_ocsp),
	SYS_STR_KEY("X509AuthenticationProvider.superUser", x509_super_user),
	/* NettyServerCnxnFactory's zookeeper.client.portUnification */
	SYS_BOOL_KEY("client.portUnification", client_port_unification),
	/* quorum TLS (QuorumPeerConfig; QuorumX509Util's zookeeper.ssl.quorum.*) */
	BOOL_KEY("sslQuorum", ssl_quorum),
	BOOL_KEY("portUnification", port_unification),
	BOOL_KEY("sslQuorumReloadCertFiles", ssl_quorum_reload_cert_files),
	SYS_STR_KEY("ssl.quorum.keyStore.location", ssl_q_keystore_location),
	SYS_STR_KEY("ssl.quorum.keyStore.type", ssl_q_keystore_type),
	SYS_STR_KEY("ssl.quorum.keyStore.password", ssl_q_keystore_password),
	SYS_STR_KEY("ssl.quorum.keyStore.passwordPath", ssl_q_keystore_password_path),
	SYS_STR_KEY("ssl.quorum.trustStore.location", ssl_q_truststore_location),
	SYS_STR_KEY("ssl.quorum.trustStore.type", ssl_q_truststore_type),
	SYS_STR_KEY("ssl.quorum.trustStore.password", ssl_q_truststore_password),
	SYS_STR_KEY("ssl.quorum.trustStore.passwordPath", ssl_q_truststore_password_path),
	SYS_STR_KEY("ssl.quorum.certFile", ssl_q_cert_file),
	SYS_STR_KEY("ssl.quorum.keyFile", ssl_q_key_file),
	SYS_STR_KEY("ssl.quorum.caFile", ssl_q_ca_file),
	SYS_STR_KEY("ssl.quorum.clientAuth", ssl_q_client_auth),
	SYS_STR_KEY("ssl.quorum.protocol", ssl_q_protocol),
	SYS_STR_KEY("ssl.quorum.enabledProtocols", ssl_q_enabled_protocols),
	SYS_STR_KEY("ssl.quorum.ciphersuites", ssl_q_ciphersuites),
	SYS_BOOL_KEY("ssl.quorum.hostnameVerification", ssl_q_hostname_verification),
};

/* Keys ZooKeeper 3.8 knows that zkd accepts without acting on them (yet).
 * A trailing '*' matches any key with that prefix. Listing them keeps the
 * log free of warnings for files that are fine; a key missing here only
 * costs a warning line. */
static const char *const quiet_keys[] = {
	/* QuorumPeerConfig.parseProperties */
	"localSessionsUpgradingEnabled", "observerMasterPort", "connectToLearnerMasterLimit",
	"electionAlg", "syncEnabled", "dynamicConfigFile",
	"quorum.auth.*",
	"quorum.cnxn.threads.size", "jvm.pause.*", "metricsProvider.*", "multiAddress.*",
	"oraclePath", "version", "group.*", "weight.*",
	/* system properties, which ZooKeeper takes from zoo.cfg as zookeeper.<key> */
	"zookeeper.*", "serverCnxnFactory", "ssl.*", "authProvider.*", "admin.*",
	"audit.enable", "skipACL", "superUser", "DigestAuthenticationProvider.*",
	"X509AuthenticationProvider.*", "sessionRequireClientSASLAuth", "enforce.auth.*",
	"ensembleAuthName", "kerberos.*", "sasl.*", "client.*", "clientCnxnSocket",
	"fsync.warningthresholdms", "maxCnxns", "cnxTimeout",
	"tcpKeepAlive", "clientTcpKeepAlive",
	"netty.*", "nio.*", "outstandingHandshake.limit", "connection_throttle_*",
	"commitLogCount", "snapSizeLimitInKb", "txnLogSizeLimitInKb", "snapshot.*",
	"digest.enabled", "serializeLastProcessedZxid.enabled", "closeSessionTxn.enabled",
	"flushDelay", "maxWriteQueuePollTime", "maxBatchSize", "requestThrottle*",
	"requestStale*", "request_throttler.*", "largeRequestMaxBytes", "largeRequestThreshold",
	"throttledOpWaitTime", "maxResponseCacheSize", "maxGetChildrenResponseCacheSize",
	"learner.*", "leader.*", "leaderServes", "forward_learner_requests_to_commit_processor_disabled",
	"fastleader.*", "observer.*", "watchManagerName", "watcherCleanThreshold",
	"watcherCleanIntervalInSeconds", "watcherCleanThreadsNum", "maxInProcessingWatches",
	"maxConcurrentSnapSyncs", "maxConcurrentDiffSyncs", "jute.maxbuffer.extrasize",
	"enforceQuota", "emulate353TTLNodes", "znode.container.*", "intBufferStartingSizeBytes",
	"messageTracker.*",
};

static const struct key_spec *find_spec(const char *key, bool sysprop_only)
{
	for (size_t i = 0; i < sizeof key_specs / sizeof key_specs[0]; i++)
		if (strcmp(key_specs[i].name, key) == 0 && (!sysprop_only || key_specs[i].sysprop))
			return &key_specs[i];
	return NULL;
}

/* The spec for key as written, or for "zookeeper.<key>" of a system property. */
static const struct key_spec *lookup_key(const char *key)
{
	const struct key_spec *spec = find_spec(key, false);
	if (!spec && strncmp(key, "zookeeper.", 10) == 0)
		spec = find_spec(key + 10, true);
	return spec;
}

static bool is_quiet_key(const char *key)
{
	for (size_t i = 0; i < sizeof quiet_keys / sizeof quiet_keys[0]; i++) {
		const char *q = quiet_keys[i];
		size_t n = strlen(q);
		if (q[n - 1] == '*' ? strncmp(key, q, n - 1) == 0 : strcmp(key, q) == 0)
			return true;
	}
	return false;
}

/* Parses a whole string as a number: decimal (or 0x hex if hex_ok), an
 * optional sign, surrounding whitespace, nothing else. */
static bool parse_int64(const char *s, bool hex_ok, int64_t *out)
{
	while (isspace((unsigned char)*s))
		s++;
	const char *digits = s + (*s == '+' || *s == '-');
	int base = 10;
	if (hex_ok && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
		base = 16;
		digits += 2;
	}
	if (base == 10 ? !isdigit((unsigned char)*digits) : !isxdigit((unsigned char)*digits))
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, base);
	if (errno == ERANGE)
		return false;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return false;
	*out = v;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
		*out = true;
	else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)
		*out = false;
	else
		return false;
	return true;
}

static int set_number(struct zkd_config *cfg, const struct key_spec *spec, const char *key,
		      const char *value, const char *where, char *err, size_t errlen)
{
	int64_t v;
	if (!parse_int64(value, spec->kind == V_SIZE, &v))
		return fail(err, errlen, "%s: %s: '%s' is not a number", where, key, value);
	if (spec->clamp && v < spec->min) {
		log_warn("%s: %s: %" PRId64 " is less than %lld; using %lld", where, key, v,
			 spec->min, spec->min);
		v = spec->min;
	}
	if (v < spec->min || v > spec->max) {
		if (spec->max == INT_MAX || spec->max == INT32_MAX)
			return fail(err, errlen, "%s: %s: '%s' must be at least %lld", where, key,
				    value, spec->min);
		return fail(err, errlen, "%s: %s: '%s' must be between %lld and %lld", where, key,
			    value, spec->min, spec->max);
	}
	char *field = (char *)cfg + spec->offset;
	if (spec->kind == V_SIZE) {
		memcpy(field, &v, sizeof v);
	} else {
		int iv = (int)v;
		memcpy(field, &iv, sizeof iv);
	}
	return 0;
}

static int set_value(struct zkd_config *cfg, const struct key_spec *spec, const char *key,
		     const char *value, const char *where, char *err, size_t errlen)
{
	char *field = (char *)cfg + spec->offset;
	switch (spec->kind) {
	case V_INT:
	case V_SIZE:
		return set_number(cfg, spec, key, value, where, err, errlen);
	case V_BOOL: {
		bool b;
		if (!parse_bool(value, &b))
			return fail(err, errlen, "%s: %s: '%s' is not true/false or yes/no",
				    where, key, value);
		memcpy(field, &b, sizeof b);
		return 0;
	}
	case V_PATH:
		if (!*value)
			return fail(err, errlen, "%s: %s: the value is empty", where, key);
		/* fall through */
	case V_STR:
		if (!copy_str(field, spec->size, value))
			return fail(err, errlen, "%s: %s: the value is longer than %zu bytes",
				    where, key, spec->size - 1);
		if (spec->offset == offsetof(struct zkd_config, data_log_dir))
			cfg->data_log_dir_given = true;
		return 0;
	}
	return 0;
}

/* Splits "[v6addr]:a:b" or "host:a:b" at ':' into at most max fields, in
 * place. Returns the field count, or -1 (with why) if there are more. */
static int split_host_ports(char *s, char **fields, int max, char *why, size_t whylen)
{
	int n = 0;
	if (*s == '[') {
		char *close = strstr(s, "]:");
		if (!close) {
			snprintf(why, whylen, "'[' without a matching ']:'");
			return -1;
		}
		*close = '\0';
		fields[n++] = s + 1;
		s = close + 2;
	}
	for (;;) {
		if (n == max) {
			snprintf(why, whylen, "too many ':'-separated fields");
			return -1;
		}
		fields[n++] = s;
		char *colon = strchr(s, ':');
		if (!colon)
			return n;
		*colon = '\0';
		s = colon + 1;
	}
}

static bool parse_port(const char *s, int *port)
{
	int64_t v;
	if (!parse_int64(s, false, &v) || v < 1 || v > 65535)
		return false;
	*port = (int)v;
	return true;
}

static bool copy_host(char *dst, size_t size, const char *host)
{
	return *host && copy_str(dst, size, host);
}

#define SERVER_FORM "host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort]"

/* "[clientHost:]clientPort", the part of a server.N line after ';'. */
static int parse_server_client(char *s, struct zkd_cfg_server *srv, char *why, size_t whylen)
{
	char *f[2];
	int n = split_host_ports(s, f, 2, why, whylen);
	if (n < 0)
		return -1;
	if (n == 2 && !copy_host(srv->client_host, sizeof srv->client_host, f[0])) {
		snprintf(why, whylen, "bad client host");
		return -1;
	}
	if (!parse_port(f[n - 1], &srv->client_port)) {
		snprintf(why, whylen, "client port '%.32s' is not a port number", f[n - 1]);
		return -1;
	}
	return 0;
}

/* Parses a server.N value (QuorumPeer.QuorumServer's syntax) into srv.
 * ZooKeeper 3.8 also takes several '|'-separated addresses per server;
 * zkd uses the first and sets *more_addresses. */
static int parse_server(const char *value, struct zkd_cfg_server *srv, bool *more_addresses,
			char *why, size_t whylen)
{
	char buf[1024];
	if (!copy_str(buf, sizeof buf, value)) {
		snprintf(why, whylen, "too long");
		return -1;
	}
	char *client = strchr(buf, ';');
	if (client) {
		*client++ = '\0';
		if (strchr(client, ';')) {
			snprintf(why, whylen, "more than one ';'");
			return -1;
		}
	}
	char *pipe = strchr(buf, '|');
	*more_addresses = pipe != NULL;
	if (pipe)
		*pipe = '\0';
	char *f[4];
	int n = split_host_ports(buf, f, 4, why, whylen);
	if (n < 0)
		return -1;
	if (n < 3) {
		snprintf(why, whylen, "expected " SERVER_FORM);
		return -1;
	}
	if (!copy_host(srv->host, sizeof srv->host, f[0])) {
		snprintf(why, whylen, "bad host");
		return -1;
	}
	if (!parse_port(f[1], &srv->quorum_port)) {
		snprintf(why, whylen, "quorum port '%.32s' is not a port number", f[1]);
		return -1;
	}
	if (!parse_port(f[2], &srv->election_port)) {
		snprintf(why, whylen, "election port '%.32s' is not a port number", f[2]);
		return -1;
	}
	if (n == 4 && strcasecmp(f[3], "observer") != 0 && strcasecmp(f[3], "participant") != 0) {
		snprintf(why, whylen, "role '%.32s' is not participant or observer", f[3]);
		return -1;
	}
	srv->observer = n == 4 && strcasecmp(f[3], "observer") == 0;
	return client ? parse_server_client(client, srv, why, whylen) : 0;
}

const struct zkd_cfg_server *config_find_server(const struct zkd_config *cfg, int64_t id)
{
	for (int i = 0; i < cfg->n_servers; i++)
		if (cfg->servers[i].id == id)
			return &cfg->servers[i];
	return NULL;
}

/* A server.N line. A second line for the same N replaces the first, as
 * the later of two equal keys wins in a Properties file. */
static int set_server(struct zkd_config *cfg, const char *key, const char *value,
		      const char *where, char *err, size_t errlen)
{
	int64_t id;
	if (!parse_int64(key + 7, false, &id) || id < 0)
		return fail(err, errlen, "%s: %s: '%s' is not a server id", where, key, key + 7);
	struct zkd_cfg_server srv = { .id = id };
	bool more;
	char why[160];
	if (parse_server(value, &srv, &more, why, sizeof why) != 0)
		return fail(err, errlen, "%s: %s: '%s': %s", where, key, value, why);
	if (more)
		log_warn("%s: %s lists several addresses; zkd uses only the first", where, key);
	struct zkd_cfg_server *slot = (struct zkd_cfg_server *)config_find_server(cfg, id);
	if (!slot) {
		if (cfg->n_servers == ZKD_CFG_MAX_SERVERS)
			return fail(err, errlen, "%s: %s: more than %d servers", where, key,
				    ZKD_CFG_MAX_SERVERS);
		slot = &cfg->servers[cfg->n_servers++];
	}
	*slot = srv;
	return 0;
}

/* Java's String.trim(): every character up to ' ' goes, both ends. */
static char *dup_trimmed(const char *s)
{
	while (*s && (unsigned char)*s <= ' ')
		s++;
	size_t n = strlen(s);
	while (n && (unsigned char)s[n - 1] <= ' ')
		n--;
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* One key=value, from the file or the command line; where names it in messages. */
static int apply_trimmed(struct zkd_config *cfg, const char *key, const char *value,
			 const char *where, char *err, size_t errlen)
{
	if (strncmp(key, "server.", 7) == 0)
		return set_server(cfg, key, value, where, err, errlen);
	const struct key_spec *spec = lookup_key(key);
	if (spec)
		return set_value(cfg, spec, key, value, where, err, errlen);
	if (strcmp(key, "dynamicConfigFile") == 0)
		/* accepted, but the ensemble it describes would be missing: say so */
		log_warn("%s: dynamicConfigFile is not supported yet; the server.N lines in %s are not read",
			 where, value);
	else if (!is_quiet_key(key))
		log_warn("%s: unknown key '%s' ignored", where, key);
	return 0;
}

static int apply_setting(struct zkd_config *cfg, const char *key, const char *value,
			 const char *where, char *err, size_t errlen)
{
	char *k = dup_trimmed(key), *v = dup_trimmed(value);
	int rc = k && v ? apply_trimmed(cfg, k, v, where, err, errlen)
			: fail(err, errlen, "%s: out of memory", where);
	free(k);
	free(v);
	return rc;
}

int config_set(struct zkd_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	return apply_setting(cfg, key, value, "command line", err, errlen);
}

/* ------------------------------------------------------------------ */
/* Reading a file                                                      */
/* ------------------------------------------------------------------ */

/* Reads the whole file; *len excludes the NUL added after it. */
static int slurp(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	struct strbuf b = { 0 };
	char chunk[4096];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (b.len + n > MAX_FILE_BYTES) {
			errno = EFBIG;
			rc = -1;
			break;
		}
		if (!strbuf_append(&b, chunk, n)) {
			errno = ENOMEM;
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f))
		rc = -1;
	fclose(f);
	if (rc == 0 && !b.s && !strbuf_append(&b, "", 0)) {
		errno = ENOMEM;
		rc = -1;
	}
	if (rc != 0) {
		int e = errno;
		free(b.s);
		errno = e;
		return -1;
	}
	*text = b.s;
	*len = b.len;
	return 0;
}

static int apply_lines(struct zkd_config *cfg, const char *text, size_t len,
		       char *err, size_t errlen)
{
	struct props r = { text, text + len, 1 };
	struct strbuf line = { 0 };
	int lineno = 0, got, rc = 0;
	while (rc == 0 && (got = props_next_line(&r, &line, &lineno)) != 0) {
		char where[sizeof cfg->path + 16];
		snprintf(where, sizeof where, "%s:%d", cfg->path, lineno);
		char *key, *value;
		if (got < 0)
			rc = fail(err, errlen, "%s: out of memory", where);
		else if (props_split(line.s, line.len, &key, &value) != 0)
			rc = fail(err, errlen, "%s: malformed \\uxxxx escape", where);
		else
			rc = apply_setting(cfg, key, value, where, err, errlen);
	}
	free(line.s);
	return rc;
}

int config_read(struct zkd_config *cfg, const char *path, char *err, size_t errlen)
{
	if (!copy_str(cfg->path, sizeof cfg->path, path))
		return fail(err, errlen, "%.64s...: path too long", path);
	char *text;
	size_t len;
	if (slurp(path, &text, &len) != 0)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	int rc = apply_lines(cfg, text, len, err, errlen);
	free(text);
	return rc;
}

int config_load(struct zkd_config *cfg, const char *path, char *err, size_t errlen)
{
	if (config_read(cfg, path, err, errlen) != 0)
		return -1;
	return config_finish(cfg, err, errlen);
}

/* ------------------------------------------------------------------ */
/* Layer 3: what depends on several keys                               */
/* ------------------------------------------------------------------ */

static void count_servers(const struct zkd_config *cfg, int *voters, int *observers)
{
	*voters = *observers = 0;
	for (int i = 0; i < cfg->n_servers; i++)
		++*(cfg->servers[i].observer ? observers : voters);
}

bool config_is_distributed(const struct zkd_config *cfg)
{
	int voters, observers;
	count_servers(cfg, &voters, &observers);
	return voters > 1 || (voters == 1 && !cfg->standalone_enabled);
}

static const char *cfg_name(const struct zkd_config *cfg)
{
	return cfg->path[0] ? cfg->path : "zoo.cfg";
}

/* QuorumPeerConfig.parseDynamicConfig's checks of the server list. */
static int check_servers(const struct zkd_config *cfg, char *err, size_t errlen)
{
	int voters, observers;
	count_servers(cfg, &voters, &observers);
	const char *file = cfg_name(cfg);
	if (voters == 0 && !cfg->standalone_enabled)
		return fail(err, errlen, "%s: standaloneEnabled=false needs at least one participant server.N line", file);
	if (voters == 0 && observers > 0)
		return fail(err, errlen, "%s: observers without participants", file);
	if (voters == 1 && cfg->standalone_enabled) {
		if (observers > 0)
			return fail(err, errlen, "%s: observers without a quorum (one participant)", file);
		/* HBase writes one server line; ZooKeeper runs standalone then */
		log_warn("%s: only one server.N line; running standalone", file);
	} else if (voters == 2) {
		log_warn("%s: no server failure will be tolerated; an ensemble needs at least 3 servers", file);
	} else if (voters > 2 && voters % 2 == 0) {
		log_warn("%s: an even number of servers tolerates no more failures than one fewer", file);
	}
	return 0;
}

/* dataDir/myid: required for an ensemble member, optional standalone. */
static int read_myid(struct zkd_config *cfg, char *err, size_t errlen)
{
	char path[sizeof cfg->data_dir + 8];
	snprintf(path, sizeof path, "%s/myid", cfg->data_dir);
	cfg->myid = 0;
	FILE *f = fopen(path, "r");
	if (!f && errno == ENOENT && !config_is_distributed(cfg))
		return 0;
	if (!f)
		return fail(err, errlen, "%s: %s: %s (an ensemble member reads its server id there)",
			    cfg_name(cfg), path, strerror(errno));
	char line[64] = "";
	bool ok = fgets(line, sizeof line, f) != NULL || feof(f);
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	int64_t id;
	if (!ok || !parse_int64(line, false, &id) || id < 0)
		return fail(err, errlen, "%s: %s: '%s' is not a server id", cfg_name(cfg), path, line);
	cfg->myid = id;
	return 0;
}

/* QuorumPeerConfig.setupClientPort: this server's own server.N line may
 * give its client port, which must then agree with clientPort. */
static int use_own_server_line(struct zkd_config *cfg, char *err, size_t errlen)
{
	const struct zkd_cfg_server *me = config_find_server(cfg, cfg->myid);
	if (!me) {
		if (config_is_distributed(cfg))
			return fail(err, errlen, "%s: myid %" PRId64 " (in %s/myid) has no server.%" PRId64 " line",
				    cfg_name(cfg), cfg->myid, cfg->data_dir, cfg->myid);
		return 0;
	}
	if (!me->client_port)
		return 0;
	if (cfg->client_port && cfg->client_port != me->client_port)
		return fail(err, errlen, "%s: clientPort=%d differs from the client port %d in server.%" PRId64,
			    cfg_name(cfg), cfg->client_port, me->client_port, me->id);
	cfg->client_port = me->client_port;
	if (!cfg->client_port_address[0])
		copy_str(cfg->client_port_address, sizeof cfg->client_port_address, me->client_host);
	return 0;
}

/* QuorumPeerConfig refuses an address without its port, before it looks
 * at server.N lines. */
static int check_ports(const struct zkd_config *cfg, char *err, size_t errlen)
{
	if (cfg->client_port_address[0] && !cfg->client_port)
		return fail(err, errlen, "%s: clientPortAddress is set but clientPort is not set", cfg_name(cfg));
	if (cfg->secure_client_port_address[0] && !cfg->secure_client_port)
		return fail(err, errlen, "%s: secureClientPortAddress is set but secureClientPort is not set",
			    cfg_name(cfg));
	return 0;
}

/* The ssl.* settings, when a secure client port or a unified client port
 * uses them:
 * what can be told from the file alone is checked here; the key and
 * certificate files are read (and their absence refused) when the network
 * starts. */
static int check_tls(const struct zkd_config *cfg, char *err, size_t errlen)
{
	if (cfg->client_port_unification && !cfg->client_port)
		return fail(err, errlen, "%s: client.portUnification=true needs a clientPort to take TLS on",
			    cfg_name(cfg));
	if (!cfg->secure_client_port && !cfg->client_port_unification)
		return 0;
	const char *ca = cfg->ssl_client_auth;
	if (ca[0] && strcasecmp(ca, "none") != 0 && strcasecmp(ca, "want") != 0 && strcasecmp(ca, "need") != 0)
		return fail(err, errlen, "%s: ssl.clientAuth: '%s' must be none, want or need", cfg_name(cfg), ca);
	if (cfg->ssl_keystore_location[0] && cfg->ssl_cert_file[0])
		return fail(err, errlen, "%s: both ssl.keyStore.location and ssl.certFile are set; give one",
			    cfg_name(cfg));
	if (cfg->ssl_truststore_location[0] && cfg->ssl_ca_file[0])
		return fail(err, errlen, "%s: both ssl.trustStore.location and ssl.caFile are set; give one",
			    cfg_name(cfg));
	if (cfg->ssl_crl || cfg->ssl_ocsp)
		log_warn("%s: ssl.crl and ssl.ocsp are not supported; client certificates are not checked "
			 "for revocation", cfg_name(cfg));
	if (cfg->ssl_auth_provider[0] && strcmp(cfg->ssl_auth_provider, "x509") != 0)
		log_warn("%s: ssl.authProvider=%s: zkd authenticates TLS clients with the x509 scheme only",
			 cfg_name(cfg), cfg->ssl_auth_provider);
	return 0;
}

/* sslQuorum, portUnification and the ssl.quorum.* settings: the files are
 * read when the quorum starts. */
static int check_quorum_tls(const struct zkd_config *cfg, char *err, size_t errlen)
{
	if (!cfg->ssl_quorum && !cfg->port_unification)
		return 0;
	const char *what = cfg->ssl_quorum ? "sslQuorum=true" : "portUnification=true";
	const char *ca = cfg->ssl_q_client_auth;
	if (ca[0] && strcasecmp(ca, "none") != 0 && strcasecmp(ca, "want") != 0 && strcasecmp(ca, "need") != 0)
		return fail(err, errlen, "%s: ssl.quorum.clientAuth: '%s' must be none, want or need", cfg_name(cfg), ca);
	if (cfg->ssl_q_keystore_location[0] && cfg->ssl_q_cert_file[0])
		return fail(err, errlen, "%s: both ssl.quorum.keyStore.location and ssl.quorum.certFile are set; "
			    "give one", cfg_name(cfg));
	if (cfg->ssl_q_truststore_location[0] && cfg->ssl_q_ca_file[0])
		return fail(err, errlen, "%s: both ssl.quorum.trustStore.location and ssl.quorum.caFile are set; "
			    "give one", cfg_name(cfg));
	if (!cfg->ssl_q_keystore_location[0] && !cfg->ssl_q_cert_file[0])
		return fail(err, errlen, "%s: %s needs ssl.quorum.keyStore.location (or "
			    "ssl.quorum.certFile and ssl.quorum.keyFile)", cfg_name(cfg), what);
	if (!cfg->ssl_q_hostname_verification)
		log_warn("%s: ssl.quorum.hostnameVerification=false: any certificate the trust store vouches "
			 "for is accepted from any address", cfg_name(cfg));
	return 0;
}

static int derive_session_timeouts(struct zkd_config *cfg, char *err, size_t errlen)
{
	cfg->min_session_timeout = cfg->min_session_timeout_given == -1
		? 2 * cfg->tick_time : cfg->min_session_timeout_given;
	cfg->max_session_timeout = cfg->max_session_timeout_given == -1
		? 20 * cfg->tick_time : cfg->max_session_timeout_given;
	if (cfg->min_session_timeout > cfg->max_session_timeout)
		return fail(err, errlen, "%s: minSessionTimeout (%d) must not be larger than maxSessionTimeout (%d)",
			    cfg_name(cfg), cfg->min_session_timeout, cfg->max_session_timeout);
	return 0;
}

int config_finish(struct zkd_config *cfg, char *err, size_t errlen)
{
	if (!cfg->data_dir[0])
		return fail(err, errlen, "%s: dataDir is not set", cfg_name(cfg));
	if (!cfg->data_log_dir_given)
		memcpy(cfg->data_log_dir, cfg->data_dir, sizeof cfg->data_log_dir);
	if (check_ports(cfg, err, errlen) != 0 ||
	    check_tls(cfg, err, errlen) != 0 || check_quorum_tls(cfg, err, errlen) != 0 ||
	    derive_session_timeouts(cfg, err, errlen) != 0 ||
	    check_servers(cfg, err, errlen) != 0 ||
	    read_myid(cfg, err, errlen) != 0 ||
	    use_own_server_line(cfg, err, errlen) != 0)
		return -1;
	/* ZooKeeper 3.8 would start standalone listening nowhere; that is never meant */
	if (!cfg->client_port && !cfg->secure_client_port)
		return fail(err, errlen, "%s: clientPort is not set", cfg_name(cfg));
	return 0;
}

/* ------------------------------------------------------------------ */
/* The `conf` four-letter word                                         */
/* ------------------------------------------------------------------ */

struct out {
	char *buf;
	size_t cap, len;
};

__attribute__((format(printf, 2, 3)))
static void out_printf(struct out *o, const char *fmt, ...)
{
	if (o->len + 1 >= o->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
}

/* ZooKeeper prints File.getAbsolutePath() of the snapshot directory,
 * which is <dataDir>/version-2 made absolute against the working directory. */
static void out_version2_dir(struct out *o, const char *key, const char *dir)
{
	char cwd[4096];
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (dir[0] != '/' && getcwd(cwd, sizeof cwd))
		out_printf(o, "%s=%s/%.*s/version-2\n", key, cwd, (int)n, dir);
	else
		out_printf(o, "%s=%.*s/version-2\n", key, (int)n, dir);
}

/* QuorumPeer.QuorumServer.toString(): IPv6 hosts in brackets. */
static void out_host(struct out *o, const char *host)
{
	out_printf(o, strchr(host, ':') ? "[%s]" : "%s", host);
}

/* QuorumZooKeeperServer.dumpConf's additions, for an ensemble member. */
static void describe_quorum(const struct zkd_config *cfg, struct out *o)
{
	const struct zkd_cfg_server *me = config_find_server(cfg, cfg->myid);
	out_printf(o, "initLimit=%d\nsyncLimit=%d\nelectionAlg=3\n", cfg->init_limit, cfg->sync_limit);
	if (me)
		out_printf(o, "electionPort=%d\nquorumPort=%d\npeerType=%d\n",
			   me->election_port, me->quorum_port, me->observer ? 1 : 0);
	out_printf(o, "membership: \n");
	for (int i = 0; i < cfg->n_servers; i++) {
		const struct zkd_cfg_server *s = &cfg->servers[i];
		out_printf(o, "server.%" PRId64 "=", s->id);
		out_host(o, s->host);
		out_printf(o, ":%d:%d:%s", s->quorum_port, s->election_port,
			   s->observer ? "observer" : "participant");
		if (s->client_port) {
			out_printf(o, ";");
			out_host(o, s->client_host[0] ? s->client_host : "0.0.0.0");
			out_printf(o, ":%d", s->client_port);
		}
		out_printf(o, "\n");
	}
	out_printf(o, "version=0\n");
}

/* ZooKeeperServer.dumpConf. dataDirSize and dataLogSize are left out: they
 * are facts about the disk, not the configuration. Unset ports show as -1,
 * as ZooKeeper shows a listener that does not exist. */
size_t config_describe(const struct zkd_config *cfg, char *out, size_t outlen)
{
	struct out o = { out, outlen, 0 };
	if (outlen)
		out[0] = '\0';
	bool quorum = config_is_distributed(cfg);
	out_printf(&o, "clientPort=%d\n", cfg->client_port ? cfg->client_port : -1);
	out_printf(&o, "secureClientPort=%d\n", cfg->secure_client_port ? cfg->secure_client_port : -1);
	out_version2_dir(&o, "dataDir", cfg->data_dir);
	out_version2_dir(&o, "dataLogDir", cfg->data_log_dir[0] ? cfg->data_log_dir : cfg->data_dir);
	out_printf(&o, "tickTime=%d\nmaxClientCnxns=%d\nminSessionTimeout=%d\nmaxSessionTimeout=%d\n",
		   cfg->tick_time, cfg->max_client_cnxns, cfg->min_session_timeout,
		   cfg->max_session_timeout);
	out_printf(&o, "clientPortListenBacklog=%d\n", cfg->client_port_listen_backlog);
	/* a standalone ZooKeeperServer reports 0 whatever dataDir/myid says */
	out_printf(&o, "serverId=%" PRId64 "\n", quorum ? cfg->myid : 0);
	if (quorum)
		describe_quorum(cfg, &o);
	return o.len;
}

/* ------------------------------------------------------------------ */
/* The four-letter-word whitelist                                      */
/* ------------------------------------------------------------------ */

/* The words ZooKeeper 3.8 knows (FourLetterCommands); "*" means these. */
static const char *const known_4lw[] = {
	"conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst",
	"srvr", "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash",
};

static bool is_known_4lw(const char *cmd)
{
	for (size_t i = 0; i < sizeof known_4lw / sizeof known_4lw[0]; i++)
		if (strcmp(known_4lw[i], cmd) == 0)
			return true;
	return false;
}

/* Same answers as FourLetterCommands.isEnabled: entries are trimmed and
 * compared exactly; "*" adds every known word and ends the list, so an
 * entry before it still counts and one after it does not. */
bool config_4lw_allowed(const struct zkd_config *cfg, const char *cmd)
{
	/* zkServer.sh status depends on srvr, so ZooKeeper always allows it */
	if (strcmp(cmd, "srvr") == 0)
		return true;
	/* and isro, which read-only clients probe servers with */
	if (cfg->readonly_mode_enabled && strcmp(cmd, "isro") == 0)
		return true;
	size_t cmd_len = strlen(cmd);
	const char *p = cfg->fourlw_whitelist;
	while (*p) {
		size_t n = strcspn(p, ",");
		const char *s = p, *e = p + n;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (e - s == 1 && *s == '*')
			return is_known_4lw(cmd);
		if ((size_t)(e - s) == cmd_len && cmd_len && memcmp(s, cmd, cmd_len) == 0)
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}
