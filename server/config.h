/*
 * config.h - zoo.cfg, read the way Apache ZooKeeper 3.8 reads it.
 *
 * A zoo.cfg is a Java properties file of key=value lines. zkd accepts every
 * key ZooKeeper accepts: the ones zkd acts on are parsed into struct
 * zkd_config; the ones it knows but does not act on yet are accepted quietly
 * (listed in config.c); anything else is warned about and ignored, as
 * ZooKeeper ignores unknown keys. A malformed value of a key zkd parses
 * refuses the whole file with a message naming the line.
 *
 * Java system properties that ZooKeeper reads (jute.maxbuffer,
 * zookeeper.globalOutstandingLimit, ...) may also be given as keys in zoo.cfg
 * or as -Dkey=value on zkd's command line; the command line wins.
 */
#ifndef ZKD_SERVER_CONFIG_H
#define ZKD_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZKD_CFG_MAX_SERVERS 64

struct zkd_cfg_server {         /* server.N=host:quorumPort:electionPort[:role][;clientAddr:port] */
	int64_t id;
	char host[256];
	int quorum_port;
	int election_port;
	bool observer;
	char client_host[256];      /* "" if not given */
	int client_port;            /* 0 if not given */
};

struct zkd_config {
	char path[1024];            /* the file read, for messages */
	int tick_time;              /* ms; default 2000 */
	int init_limit, sync_limit; /* ticks; defaults 10, 5 */
	char data_dir[1024];        /* required */
	char data_log_dir[1024];    /* defaults to data_dir */
	int client_port;            /* 0 = none given (config_finish refuses that unless
	                               secureClientPort or this server's server.N line gives one) */
	char client_port_address[256]; /* "" = all addresses (0.0.0.0) */
	int secure_client_port;     /* 0 = off */
	char secure_client_port_address[256]; /* secureClientPortAddress; "" = all addresses */
	int client_port_listen_backlog; /* clientPortListenBacklog; -1 = the system's default */
	int max_client_cnxns;       /* per IP; default 60; 0 = unlimited */
	int min_session_timeout;    /* ms; default 2 * tick_time (-1 in file = default) */
	int max_session_timeout;    /* ms; default 20 * tick_time */
	char fourlw_whitelist[1024];/* 4lw.commands.whitelist; default "srvr" (ZooKeeper's default) */
	int64_t jute_maxbuffer;     /* default 0xfffff */
	int global_outstanding_limit; /* default 1000 */
	int snap_count;             /* default 100000 */
	int autopurge_snap_retain_count; /* default 3 */
	int autopurge_purge_interval;    /* hours; default 0 */
	bool force_sync;            /* forceSync; default yes */
	int fsync_warning_threshold_ms; /* fsync.warningthresholdms; default 1000 */
	int pre_alloc_size_kb;      /* preAllocSize; default 65536 */
	bool standalone_enabled;    /* default true */
	bool reconfig_enabled;      /* default false */
	/* The AdminServer (server/admin.c), ZooKeeper's zookeeper.admin.* */
	bool admin_enable;          /* admin.enableServer; default true */
	int admin_port;             /* admin.serverPort; default 8080 */
	char admin_address[256];    /* admin.serverAddress; default 0.0.0.0 */
	char admin_command_url[256];/* admin.commandURL; default /commands */
	/* metricsProvider.*: zkd serves Prometheus text when className names
	 * ZooKeeper's PrometheusMetricsProvider; "" = no provider configured */
	char metrics_class[256];    /* metricsProvider.className; default "" */
	char metrics_host[256];     /* metricsProvider.httpHost; default 0.0.0.0 */
	int metrics_port;           /* metricsProvider.httpPort; default 7000 */
	bool extended_types_enabled; /* default false */
	int container_check_interval_ms; /* znode.container.checkIntervalMs; default 60000 */
	int container_max_per_minute;    /* znode.container.maxPerMinute; default 10000 */
	char super_digest[256];     /* zookeeper.DigestAuthenticationProvider.superDigest; "" = none */
	/* TLS on secureClientPort: ZooKeeper's ssl.* settings (also as
	 * zookeeper.ssl.*), "" = not given; net/tls_ctx.c says what each means.
	 * ssl.certFile, ssl.keyFile and ssl.caFile are zkd's plain-PEM
	 * alternatives to the key and trust stores. */
	char ssl_keystore_location[1024], ssl_keystore_type[16];
	char ssl_keystore_password[256], ssl_keystore_password_path[1024];
	char ssl_truststore_location[1024], ssl_truststore_type[16];
	char ssl_truststore_password[256], ssl_truststore_password_path[1024];
	char ssl_cert_file[1024], ssl_key_file[1024], ssl_ca_file[1024];
	char ssl_client_auth[16];   /* none, want, need (any case); "" = need, as ZooKeeper */
	char ssl_protocol[32];      /* one protocol, e.g. TLSv1.2; "" = TLSv1.2 and TLSv1.3 */
	char ssl_enabled_protocols[128]; /* "TLSv1.2,TLSv1.3"; wins over ssl.protocol */
	char ssl_ciphersuites[4096];/* IANA names, comma separated; "" = ZooKeeper's default */
	char ssl_auth_provider[128];/* ssl.authProvider: the scheme of TLS clients; only x509 */
	bool ssl_crl, ssl_ocsp;     /* not supported: warned about when true */
	bool client_port_unification; /* client.portUnification: TLS on clientPort too */
	/* Quorum TLS: sslQuorum and ZooKeeper's ssl.quorum.* settings (also as
	 * zookeeper.ssl.quorum.*), meaning what the ssl.* ones mean but for the
	 * quorum and election connections (election.h). */
	bool ssl_quorum;            /* sslQuorum; default false */
	bool port_unification;      /* portUnification: TLS and plain on the quorum ports */
	bool ssl_quorum_reload_cert_files; /* sslQuorumReloadCertFiles: reload the ssl.quorum files on change */
	char ssl_q_keystore_location[1024], ssl_q_keystore_type[16];
	char ssl_q_keystore_password[256], ssl_q_keystore_password_path[1024];
	char ssl_q_truststore_location[1024], ssl_q_truststore_type[16];
	char ssl_q_truststore_password[256], ssl_q_truststore_password_path[1024];
	char ssl_q_cert_file[1024], ssl_q_key_file[1024], ssl_q_ca_file[1024];
	char ssl_q_client_auth[16];
	char ssl_q_protocol[32];
	char ssl_q_enabled_protocols[128];
	char ssl_q_ciphersuites[4096];
	bool ssl_q_hostname_verification; /* ssl.quorum.hostnameVerification; default true */
	/* X509AuthenticationProvider.superUser: this subject DN is also "super" */
	char x509_super_user[256];
	bool local_session_enabled;
	bool quorum_listen_on_all_ips;  /* quorumListenOnAllIPs; default false */
	char peer_type[32];         /* peerType: "participant" (default) or "observer" */
	int election_port_bind_retry; /* electionPortBindRetry; default 3, 0 = for ever */
	/* FastLeaderElection's finalizeWait (zookeeper.fle.minNotificationInterval):
	 * ZooKeeper waits 200 ms; zkd 30 ms by default, because a whole failover
	 * must take under 200 ms. */
	int fle_min_notification_interval;
	int fle_max_notification_interval; /* default 60000, as ZooKeeper */
	bool readonly_mode_enabled;  /* readonlymode.enabled; default false */
	int sessionless_cnxn_timeout_ms; /* nio.sessionlessCnxnTimeout; default 10000 */
	int64_t myid;               /* from dataDir/myid when servers are listed; 0 otherwise */
	int n_servers;
	struct zkd_cfg_server servers[ZKD_CFG_MAX_SERVERS];

	/* The values as the file gave them, so that config_finish can derive the
	 * fields above again after config_set (-D on the command line). */
	int min_session_timeout_given; /* -1 = 2 * tick_time */
	int max_session_timeout_given; /* -1 = 20 * tick_time */
	bool data_log_dir_given;       /* false = dataLogDir follows dataDir */
};

/* Sets every field to ZooKeeper's default (data_dir empty). */
void config_defaults(struct zkd_config *cfg);

/* Reads `path` into cfg (which config_defaults has prepared), then applies
 * the derived defaults (session timeouts from tickTime, dataLogDir from
 * dataDir). On error returns -1 and writes a one-line message naming the
 * file and line into err. Warnings (unknown keys) go to the log. */
int config_load(struct zkd_config *cfg, const char *path, char *err, size_t errlen);

/* config_load without the config_finish step: for a caller that applies
 * config_set (-D) settings before finishing, so that the command line can
 * supply what the file lacks. */
int config_read(struct zkd_config *cfg, const char *path, char *err, size_t errlen);

/* Parses one "key=value" setting as if it were a line of zoo.cfg (used for
 * -Dkey=value on the command line). Returns 0, or -1 with a message. */
int config_set(struct zkd_config *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Applies the defaults that depend on other keys. config_load calls it; call
 * it again after config_set. Returns -1 with a message if the result is
 * inconsistent (no dataDir, minSessionTimeout > maxSessionTimeout, ...). */
int config_finish(struct zkd_config *cfg, char *err, size_t errlen);

/* Writes the settings as ZooKeeper's `conf` four-letter word shows them.
 * Returns the length written (less than outlen; the output is cut short,
 * still NUL-terminated, if outlen is too small). */
size_t config_describe(const struct zkd_config *cfg, char *out, size_t outlen);

/* True if this server is an ensemble member (as ZooKeeper's
 * QuorumPeerConfig.isDistributed): more than one participant is listed, or
 * standaloneEnabled=false and at least one is. False: run standalone. */
bool config_is_distributed(const struct zkd_config *cfg);

/* The server.N line with id `id`, or NULL. */
const struct zkd_cfg_server *config_find_server(const struct zkd_config *cfg, int64_t id);

/* True if the 4lw whitelist allows `cmd` ("ruok", ...); "*" allows all. */
bool config_4lw_allowed(const struct zkd_config *cfg, const char *cmd);

#endif
