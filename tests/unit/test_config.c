/*
 * test_config.c - the zoo.cfg reader (server/config.c).
 *
 * Each test writes a zoo.cfg into its own mkdtemp directory ($D in the
 * texts below stands for it) and loads it. Warnings are checked by pointing
 * stderr, where net/log.c writes, at a file for the duration of a load.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"

static char dir[64];
static char cfg_path[128];
static struct zkd_config cfg;
static char err[1024];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	strcpy(dir, "/tmp/zkd-config-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cfg_path, sizeof cfg_path, "%s/zoo.cfg", dir);
	config_defaults(&cfg);
	err[0] = '\0';
}

static void teardown(void)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 10);

/* text with every "$D" replaced by this test's directory */
static char *expand(const char *text)
{
	static char out[8192];
	size_t w = 0;
	for (const char *p = text; *p && w < sizeof out - 64; p++) {
		if (p[0] == '$' && p[1] == 'D') {
			w += (size_t)snprintf(out + w, sizeof out - w, "%s", dir);
			p++;
		} else {
			out[w++] = *p;
		}
	}
	out[w] = '\0';
	return out;
}

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

static int load(const char *text)
{
	write_file("zoo.cfg", expand(text));
	return config_load(&cfg, cfg_path, err, sizeof err);
}

static void assert_loads(const char *text)
{
	cr_assert_eq(load(text), 0, "load failed: %s", err);
}

/* Asserts the load is refused with exactly "<cfg_path>:<msg>". */
static void assert_refused(const char *text, const char *msg)
{
	cr_assert_eq(load(text), -1, "accepted: %s", text);
	char want[1024];
	snprintf(want, sizeof want, "%s:%s", cfg_path, msg);
	cr_assert_str_eq(err, want);
}

static int saved_stderr = -1;

static void capture_stderr(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/stderr.txt", dir);
	fflush(stderr);
	saved_stderr = dup(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	dup2(fd, 2);
	close(fd);
}

static const char *captured(void)
{
	static char buf[8192];
	char path[256];
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	snprintf(path, sizeof path, "%s/stderr.txt", dir);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* the sample files, found from this source file's path */
static void project_path(char *out, size_t n, const char *rel)
{
	const char *p = strstr(__FILE__, "tests/unit/test_config.c");
	snprintf(out, n, "%.*s%s", p ? (int)(p - __FILE__) : 0, __FILE__, rel);
}

#define BASE "dataDir=$D\nclientPort=2181\n"
#define ENSEMBLE BASE "server.1=127.0.0.1:2889:3889\nserver.2=127.0.0.1:2890:3890\n" \
	"server.3=127.0.0.1:2891:3891\n"

/* ---- defaults ---- */

Test(config, defaults_are_zookeepers)
{
	assert_loads(BASE);
	cr_assert_eq(cfg.tick_time, 2000);
	cr_assert_eq(cfg.init_limit, 10);
	cr_assert_eq(cfg.sync_limit, 5);
	cr_assert_eq(cfg.max_client_cnxns, 60);
	cr_assert_eq(cfg.min_session_timeout, 4000);
	cr_assert_eq(cfg.max_session_timeout, 40000);
	cr_assert_str_eq(cfg.fourlw_whitelist, "srvr");
	cr_assert_eq(cfg.jute_maxbuffer, 0xfffff);
	cr_assert_eq(cfg.global_outstanding_limit, 1000);
	cr_assert_eq(cfg.snap_count, 100000);
	cr_assert_eq(cfg.autopurge_snap_retain_count, 3);
	cr_assert_eq(cfg.autopurge_purge_interval, 0);
	cr_assert(cfg.force_sync);
	cr_assert_eq(cfg.pre_alloc_size_kb, 65536);
	cr_assert(cfg.standalone_enabled);
	cr_assert_not(cfg.reconfig_enabled);
	cr_assert(cfg.admin_enable);
	cr_assert_eq(cfg.admin_port, 8080);
	cr_assert_str_eq(cfg.admin_address, "0.0.0.0");
	cr_assert_not(cfg.extended_types_enabled);
	cr_assert_not(cfg.local_session_enabled);
	cr_assert_eq(cfg.secure_client_port, 0);
	cr_assert_str_eq(cfg.client_port_address, "");
	cr_assert_eq(cfg.client_port_listen_backlog, -1);
	cr_assert_eq(cfg.myid, 0);
	cr_assert_eq(cfg.n_servers, 0);
}

Test(config, data_log_dir_defaults_to_data_dir)
{
	assert_loads(BASE);
	cr_assert_str_eq(cfg.data_log_dir, dir);
}

Test(config, session_timeouts_follow_tick_time)
{
	assert_loads(BASE "tickTime=3000\nminSessionTimeout=-1\n");
	cr_assert_eq(cfg.min_session_timeout, 6000);
	cr_assert_eq(cfg.max_session_timeout, 60000);
}

/* ---- each parsed key ---- */

Test(config, parses_number_keys)
{
	assert_loads(BASE "tickTime=3000\ninitLimit=7\nsyncLimit=3\nsecureClientPort=2282\n"
		     "maxClientCnxns=0\nminSessionTimeout=5000\nmaxSessionTimeout=50000\n"
		     "globalOutstandingLimit=500\nsnapCount=5000\nautopurge.snapRetainCount=5\n"
		     "autopurge.purgeInterval=24\npreAllocSize=1024\nadmin.serverPort=9090\n"
		     "clientPortListenBacklog=100\n");
	cr_assert_eq(cfg.client_port, 2181);
	cr_assert_eq(cfg.tick_time, 3000);
	cr_assert_eq(cfg.init_limit, 7);
	cr_assert_eq(cfg.sync_limit, 3);
	cr_assert_eq(cfg.secure_client_port, 2282);
	cr_assert_eq(cfg.max_client_cnxns, 0);
	cr_assert_eq(cfg.min_session_timeout, 5000);
	cr_assert_eq(cfg.max_session_timeout, 50000);
	cr_assert_eq(cfg.global_outstanding_limit, 500);
	cr_assert_eq(cfg.snap_count, 5000);
	cr_assert_eq(cfg.autopurge_snap_retain_count, 5);
	cr_assert_eq(cfg.autopurge_purge_interval, 24);
	cr_assert_eq(cfg.pre_alloc_size_kb, 1024);
	cr_assert_eq(cfg.admin_port, 9090);
	cr_assert_eq(cfg.client_port_listen_backlog, 100);
}

Test(config, parses_string_keys)
{
	assert_loads("dataDir=$D\ndataLogDir=$D/log\nclientPort=2181\nclientPortAddress=127.0.0.1\n"
		     "secureClientPort=2281\nsecureClientPortAddress=::1\n"
		     "4lw.commands.whitelist=ruok, stat\nadmin.serverAddress=127.0.0.2\n");
	cr_assert_str_eq(cfg.data_dir, dir);
	cr_assert_str_eq(cfg.data_log_dir, expand("$D/log"));
	cr_assert_str_eq(cfg.client_port_address, "127.0.0.1");
	cr_assert_str_eq(cfg.secure_client_port_address, "::1");
	cr_assert_str_eq(cfg.fourlw_whitelist, "ruok, stat");
	cr_assert_str_eq(cfg.admin_address, "127.0.0.2");
}

Test(config, parses_boolean_keys)
{
	write_file("myid", "1\n");
	assert_loads(BASE "forceSync=no\nstandaloneEnabled=false\nreconfigEnabled=true\n"
		     "admin.enableServer=false\nextendedTypesEnabled=true\nlocalSessionsEnabled=true\n"
		     "server.1=127.0.0.1:2889:3889\n");
	cr_assert_not(cfg.force_sync);
	cr_assert_not(cfg.standalone_enabled);
	cr_assert(cfg.reconfig_enabled);
	cr_assert_not(cfg.admin_enable);
	cr_assert(cfg.extended_types_enabled);
	cr_assert(cfg.local_session_enabled);
}

Test(config, booleans_take_yes_no_true_false_in_any_case)
{
	assert_loads(BASE "forceSync=YES\nreconfigEnabled=True\nextendedTypesEnabled=yes\n"
		     "admin.enableServer=No\n");
	cr_assert(cfg.force_sync);
	cr_assert(cfg.reconfig_enabled);
	cr_assert(cfg.extended_types_enabled);
	cr_assert_not(cfg.admin_enable);
}

Test(config, jute_maxbuffer_takes_decimal_and_hex)
{
	assert_loads(BASE "jute.maxbuffer=0x200000\n");
	cr_assert_eq(cfg.jute_maxbuffer, 0x200000);
	config_defaults(&cfg);
	assert_loads(BASE "jute.maxbuffer=4194304\n");
	cr_assert_eq(cfg.jute_maxbuffer, 4194304);
}

Test(config, system_properties_take_the_zookeeper_prefix)
{
	assert_loads(BASE "zookeeper.jute.maxbuffer=0x100\nzookeeper.globalOutstandingLimit=7\n"
		     "zookeeper.snapCount=300\nzookeeper.preAllocSize=16\n"
		     "zookeeper.extendedTypesEnabled=true\nzookeeper.forceSync=no\n"
		     "zookeeper.4lw.commands.whitelist=ruok\nzookeeper.admin.enableServer=false\n");
	cr_assert_eq(cfg.jute_maxbuffer, 0x100);
	cr_assert_eq(cfg.global_outstanding_limit, 7);
	cr_assert_eq(cfg.snap_count, 300);
	cr_assert_eq(cfg.pre_alloc_size_kb, 16);
	cr_assert(cfg.extended_types_enabled);
	cr_assert_not(cfg.force_sync);
	cr_assert_str_eq(cfg.fourlw_whitelist, "ruok");
	cr_assert_not(cfg.admin_enable);
}

Test(config, admin_and_metrics_keys_default_as_zookeeper)
{
	assert_loads(BASE);
	cr_assert(cfg.admin_enable);
	cr_assert_str_eq(cfg.admin_address, "0.0.0.0");
	cr_assert_eq(cfg.admin_port, 8080);
	cr_assert_str_eq(cfg.admin_command_url, "/commands");
	cr_assert_str_eq(cfg.metrics_class, "");
	cr_assert_str_eq(cfg.metrics_host, "0.0.0.0");
	cr_assert_eq(cfg.metrics_port, 7000);
}

Test(config, parses_admin_and_metrics_keys)
{
	capture_stderr();
	int rc = load(BASE "admin.enableServer=false\nadmin.serverAddress=127.0.0.1\n"
		      "admin.serverPort=18080\nadmin.commandURL=/cmds\nadmin.idleTimeout=5000\n"
		      "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n"
		      "metricsProvider.httpHost=127.0.0.2\nmetricsProvider.httpPort=17000\n"
		      "metricsProvider.exportJvmInfo=false\n");
	const char *log = captured();
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_null(strstr(log, "unknown key"), "log: %s", log);
	cr_assert_not(cfg.admin_enable);
	cr_assert_str_eq(cfg.admin_address, "127.0.0.1");
	cr_assert_eq(cfg.admin_port, 18080);
	cr_assert_str_eq(cfg.admin_command_url, "/cmds");
	cr_assert_str_eq(cfg.metrics_class,
			 "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider");
	cr_assert_str_eq(cfg.metrics_host, "127.0.0.2");
	cr_assert_eq(cfg.metrics_port, 17000);
}

Test(config, admin_keys_as_system_properties)
{
	assert_loads(BASE "zookeeper.admin.serverPort=9191\nzookeeper.admin.commandURL=/c\n"
		     "zookeeper.admin.serverAddress=127.0.0.3\n");
	cr_assert_eq(cfg.admin_port, 9191);
	cr_assert_str_eq(cfg.admin_command_url, "/c");
	cr_assert_str_eq(cfg.admin_address, "127.0.0.3");
	cr_assert_eq(config_set(&cfg, "zookeeper.admin.enableServer", "false", err, sizeof err), 0, "%s", err);
	cr_assert_eq(config_set(&cfg, "zookeeper.admin.serverPort", "9292", err, sizeof err), 0, "%s", err);
	cr_assert_eq(config_finish(&cfg, err, sizeof err), 0, "%s", err);
	cr_assert_not(cfg.admin_enable);
	cr_assert_eq(cfg.admin_port, 9292);
}

Test(config, metrics_keys_are_not_system_properties)
{
	/* PrometheusMetricsProvider reads them from zoo.cfg only */
	assert_loads(BASE "zookeeper.metricsProvider.httpPort=1234\n");
	cr_assert_eq(cfg.metrics_port, 7000);
}

Test(config, refuses_a_bad_metrics_port)
{
	assert_refused(BASE "metricsProvider.httpPort=70000\n",
		       "3: metricsProvider.httpPort: '70000' must be between 0 and 65535");
}

Test(config, zoo_cfg_keys_do_not_take_the_zookeeper_prefix)
{
	/* tickTime is read from zoo.cfg, never as a system property */
	assert_loads(BASE "zookeeper.tickTime=5\n");
	cr_assert_eq(cfg.tick_time, 2000);
}

Test(config, parses_server_lines)
{
	write_file("myid", "2\n");
	assert_loads(BASE "server.1=zk1.example:2889:3889\n"
		     "server.2=127.0.0.1:2890:3890:participant;2181\n"
		     "server.3=[::1]:2891:3891:observer;[::1]:2183\n"
		     "server.4=10.0.0.4:2892:3892:PARTICIPANT;10.0.0.4:2184\n");
	cr_assert_eq(cfg.n_servers, 4);
	const struct zkd_cfg_server *s = config_find_server(&cfg, 1);
	cr_assert_not_null(s);
	cr_assert_str_eq(s->host, "zk1.example");
	cr_assert_eq(s->quorum_port, 2889);
	cr_assert_eq(s->election_port, 3889);
	cr_assert_not(s->observer);
	cr_assert_str_eq(s->client_host, "");
	cr_assert_eq(s->client_port, 0);
	s = config_find_server(&cfg, 2);
	cr_assert_eq(s->client_port, 2181);
	cr_assert_str_eq(s->client_host, "");
	s = config_find_server(&cfg, 3);
	cr_assert_str_eq(s->host, "::1");
	cr_assert_eq(s->quorum_port, 2891);
	cr_assert(s->observer);
	cr_assert_str_eq(s->client_host, "::1");
	cr_assert_eq(s->client_port, 2183);
	s = config_find_server(&cfg, 4);
	cr_assert_not(s->observer);
	cr_assert_str_eq(s->client_host, "10.0.0.4");
	cr_assert(config_is_distributed(&cfg));
}

Test(config, later_duplicate_keys_win)
{
	write_file("myid", "1\n");
	assert_loads(BASE "tickTime=1000\ntickTime=3000\nserver.1=a:1:2\nserver.2=b:3:4\nserver.1=c:5:6\n");
	cr_assert_eq(cfg.tick_time, 3000);
	cr_assert_eq(cfg.n_servers, 2);
	cr_assert_str_eq(config_find_server(&cfg, 1)->host, "c");
}

Test(config, clamps_counts_as_zookeeper_does)
{
	assert_loads(BASE "autopurge.snapRetainCount=1\nsnapCount=1\nautopurge.purgeInterval=-5\n");
	cr_assert_eq(cfg.autopurge_snap_retain_count, 3);
	cr_assert_eq(cfg.snap_count, 2);
	cr_assert_eq(cfg.autopurge_purge_interval, 0);
}

/* ---- malformed values refuse the file, naming the line ---- */

Test(config, refuses_a_non_number)
{
	assert_refused(BASE "tickTime=abc\n", "3: tickTime: 'abc' is not a number");
}

Test(config, refuses_trailing_garbage)
{
	assert_refused("dataDir=$D\nclientPort=2181x\n", "2: clientPort: '2181x' is not a number");
	/* '#' only starts a comment at the start of a line, as in Properties */
	assert_refused("dataDir=$D\nclientPort=2181 # the port\n",
		       "2: clientPort: '2181 # the port' is not a number");
}

Test(config, refuses_an_overflowing_number)
{
	assert_refused(BASE "tickTime=99999999999\n",
		       "3: tickTime: '99999999999' must be at least 1");
	assert_refused(BASE "maxClientCnxns=99999999999999999999\n",
		       "3: maxClientCnxns: '99999999999999999999' is not a number");
}

Test(config, refuses_a_negative_port)
{
	assert_refused("dataDir=$D\nclientPort=-1\n", "2: clientPort: '-1' must be between 0 and 65535");
}

Test(config, refuses_a_port_above_65535)
{
	assert_refused(BASE "secureClientPort=70000\n",
		       "3: secureClientPort: '70000' must be between 0 and 65535");
	assert_refused(BASE "admin.serverPort=65536\n",
		       "3: admin.serverPort: '65536' must be between 0 and 65535");
}

Test(config, refuses_a_tick_time_below_one)
{
	assert_refused(BASE "tickTime=0\n", "3: tickTime: '0' must be at least 1");
	assert_refused(BASE "tickTime=-2000\n", "3: tickTime: '-2000' must be at least 1");
}

Test(config, refuses_a_bad_boolean)
{
	assert_refused(BASE "\nforceSync=maybe\n", "4: forceSync: 'maybe' is not true/false or yes/no");
	assert_refused(BASE "standaloneEnabled=1\n",
		       "3: standaloneEnabled: '1' is not true/false or yes/no");
}

Test(config, refuses_bad_jute_maxbuffer)
{
	assert_refused(BASE "jute.maxbuffer=0xZZ\n", "3: jute.maxbuffer: '0xZZ' is not a number");
	assert_refused(BASE "jute.maxbuffer=0\n", "3: jute.maxbuffer: '0' must be at least 1");
}

Test(config, refuses_an_empty_data_dir)
{
	assert_refused("clientPort=2181\ndataDir=\n", "2: dataDir: the value is empty");
}

Test(config, refuses_bad_server_lines)
{
	static const struct { const char *line, *msg; } bad[] = {
		{ "server.1=127.0.0.1:2888",
		  "server.1: '127.0.0.1:2888': expected host:quorumPort:electionPort"
		  "[:participant|observer][;[clientHost:]clientPort]" },
		{ "server.1=127.0.0.1:x:3888", "server.1: '127.0.0.1:x:3888': quorum port 'x' is not a port number" },
		{ "server.1=127.0.0.1:2888:99999",
		  "server.1: '127.0.0.1:2888:99999': election port '99999' is not a port number" },
		{ "server.1=127.0.0.1:2888:3888:leader",
		  "server.1: '127.0.0.1:2888:3888:leader': role 'leader' is not participant or observer" },
		{ "server.1=h:1:2:observer:9", "server.1: 'h:1:2:observer:9': too many ':'-separated fields" },
		{ "server.1=[::1:2888:3888", "server.1: '[::1:2888:3888': '[' without a matching ']:'" },
		{ "server.1=:2888:3888", "server.1: ':2888:3888': bad host" },
		{ "server.1=h:1:2;a:b:3", "server.1: 'h:1:2;a:b:3': too many ':'-separated fields" },
		{ "server.1=h:1:2;3;4", "server.1: 'h:1:2;3;4': more than one ';'" },
		{ "server.1=h:1:2;h:0", "server.1: 'h:1:2;h:0': client port '0' is not a port number" },
		{ "server.x=h:1:2", "server.x: 'x' is not a server id" },
		{ "server.-1=h:1:2", "server.-1: '-1' is not a server id" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[512], msg[512];
		config_defaults(&cfg);
		snprintf(text, sizeof text, BASE "%s\n", bad[i].line);
		snprintf(msg, sizeof msg, "3: %s", bad[i].msg);
		assert_refused(text, msg);
	}
}

Test(config, refuses_a_malformed_unicode_escape)
{
	assert_refused(BASE "clientPortAddress=\\u12\n", "3: malformed \\uxxxx escape");
}

Test(config, names_the_first_line_of_a_continued_line)
{
	assert_refused(BASE "tickTime=\\\n  12\\\n  x\n", "3: tickTime: '12x' is not a number");
}

Test(config, refuses_a_missing_file)
{
	cr_assert_eq(config_load(&cfg, "/nonexistent/zoo.cfg", err, sizeof err), -1);
	cr_assert_str_eq(err, "/nonexistent/zoo.cfg: No such file or directory");
}

/* ---- unknown and quiet keys ---- */

Test(config, warns_about_an_unknown_key_and_goes_on)
{
	capture_stderr();
	int rc = load(BASE "fooBar=1\ntickTime=3000\n");
	const char *log = captured();
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(cfg.tick_time, 3000);
	char want[256];
	snprintf(want, sizeof want, "%s:3: unknown key 'fooBar' ignored", cfg_path);
	cr_assert_not_null(strstr(log, want), "log: %s", log);
	cr_assert_not_null(strstr(log, "WARN"), "log: %s", log);
}

Test(config, accepts_known_zookeeper_keys_quietly)
{
	capture_stderr();
	int rc = load(BASE "electionAlg=3\npeerType=participant\nsyncEnabled=true\n"
		      "quorumListenOnAllIPs=false\nserverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
		      "ssl.keyStore.location=/k\nssl.quorum.trustStore.location=/t\n"
		      "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
		      "metricsProvider.className=x\nzookeeper.something=1\nquorum.auth.enableSasl=false\n"
		      "sslQuorum=false\nportUnification=false\nadmin.commandURL=/commands\n"
		      "audit.enable=false\nconnectToLearnerMasterLimit=10\nmultiAddress.enabled=false\n"
		      "skipACL=no\nsnapshot.trust.empty=true\nversion=0\n");
	const char *log = captured();
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_null(strstr(log, "unknown key"), "log: %s", log);
}

/* ---- Properties syntax ---- */

Test(config, reads_comments_blank_lines_and_every_separator)
{
	capture_stderr();
	int rc = load("# a comment\n"
		     "! another comment = with an equals\n"
		     "\n"
		     "   \t\n"
		     "   tickTime = 3000\n"
		     "initLimit 7\n"
		     "syncLimit:3\n"
		     "clientPort\t 2182   \n"
		     "maxClientCnxns  =  9\n"
		     "\tdataDir=$D\n");
	const char *log = captured();
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(log, "", "comment lines must not be read as keys");
	cr_assert_eq(cfg.tick_time, 3000);
	cr_assert_eq(cfg.init_limit, 7);
	cr_assert_eq(cfg.sync_limit, 3);
	cr_assert_eq(cfg.client_port, 2182);
	cr_assert_eq(cfg.max_client_cnxns, 9);
	cr_assert_str_eq(cfg.data_dir, dir);
}

Test(config, reads_crlf_and_cr_line_ends)
{
	assert_loads("dataDir=$D\r\nclientPort=2182\r\ntickTime=3000\rinitLimit=4\r\n");
	cr_assert_eq(cfg.client_port, 2182);
	cr_assert_eq(cfg.tick_time, 3000);
	cr_assert_eq(cfg.init_limit, 4);
}

Test(config, joins_continued_lines_and_undoes_escapes)
{
	assert_loads("dataDir=$D/a\\\n    b\n"
		     "clientPort=2181\n"
		     "clientPortAddress=127.0.0.\\u0031\n"
		     "4lw.commands.whitelist=ruok,\\\n   stat\n"
		     "# a comment ending in a backslash continues nothing \\\n"
		     "tickTime=3000\n"
		     "admin.server\\Address=x\\:y\n");
	cr_assert_str_eq(cfg.data_dir, expand("$D/ab"));
	cr_assert_str_eq(cfg.client_port_address, "127.0.0.1");
	cr_assert_str_eq(cfg.fourlw_whitelist, "ruok,stat");
	cr_assert_eq(cfg.tick_time, 3000);
	cr_assert_str_eq(cfg.admin_address, "x:y");
}

Test(config, keeps_a_relative_data_dir_as_written)
{
	assert_loads("dataDir=relative/zkd-config-test\nclientPort=2181\n");
	cr_assert_str_eq(cfg.data_dir, "relative/zkd-config-test");
	cr_assert_str_eq(cfg.data_log_dir, "relative/zkd-config-test");
}

/* ---- what config_finish derives and checks ---- */

Test(config, refuses_a_file_without_data_dir)
{
	assert_refused("clientPort=2181\n", " dataDir is not set");
}

Test(config, refuses_standalone_without_client_port)
{
	assert_refused("dataDir=$D\n", " clientPort is not set");
}

Test(config, accepts_a_secure_port_alone)
{
	assert_loads("dataDir=$D\nsecureClientPort=2281\n");
	cr_assert_eq(cfg.client_port, 0);
	cr_assert_eq(cfg.secure_client_port, 2281);
}

Test(config, refuses_client_port_address_without_client_port)
{
	assert_refused("dataDir=$D\nsecureClientPort=2281\nclientPortAddress=127.0.0.1\n",
		       " clientPortAddress is set but clientPort is not set");
}

Test(config, refuses_min_session_timeout_above_max)
{
	assert_refused(BASE "minSessionTimeout=50000\n",
		       " minSessionTimeout (50000) must not be larger than maxSessionTimeout (40000)");
}

Test(config, takes_the_client_port_from_its_own_server_line)
{
	write_file("myid", "2\n");
	assert_loads("dataDir=$D\nserver.1=127.0.0.1:2889:3889;2181\n"
		     "server.2=127.0.0.1:2890:3890;127.0.0.2:2182\nserver.3=127.0.0.1:2891:3891;2183\n");
	cr_assert_eq(cfg.client_port, 2182);
	cr_assert_str_eq(cfg.client_port_address, "127.0.0.2");
}

Test(config, refuses_a_client_port_differing_from_its_server_line)
{
	write_file("myid", "1\n");
	assert_refused(BASE "server.1=127.0.0.1:2889:3889;2185\nserver.2=127.0.0.1:2890:3890\n",
		       " clientPort=2181 differs from the client port 2185 in server.1");
}

Test(config, refuses_no_servers_without_standalone)
{
	assert_refused(BASE "standaloneEnabled=false\n",
		       " standaloneEnabled=false needs at least one participant server.N line");
}

Test(config, refuses_observers_without_participants)
{
	assert_refused(BASE "server.1=127.0.0.1:2889:3889:observer\n",
		       " observers without participants");
}

Test(config, reads_myid_in_an_ensemble)
{
	write_file("myid", "2\n");
	assert_loads(ENSEMBLE);
	cr_assert_eq(cfg.myid, 2);
	cr_assert(config_is_distributed(&cfg));
}

Test(config, refuses_an_ensemble_without_myid)
{
	cr_assert_eq(load(ENSEMBLE), -1);
	char want[256];
	snprintf(want, sizeof want, "%s: %s/myid: No such file or directory", cfg_path, dir);
	cr_assert_not_null(strstr(err, want), "err: %s", err);
}

Test(config, standalone_needs_no_myid)
{
	assert_loads(BASE);
	cr_assert_eq(cfg.myid, 0);
	config_defaults(&cfg);
	assert_loads(BASE "server.1=127.0.0.1:2889:3889\n");
	cr_assert_eq(cfg.myid, 0);
	cr_assert_not(config_is_distributed(&cfg));
}

Test(config, standalone_reads_myid_if_present)
{
	write_file("myid", "7");
	assert_loads(BASE);
	cr_assert_eq(cfg.myid, 7);
}

Test(config, one_server_without_standalone_is_an_ensemble)
{
	cr_assert_eq(load(BASE "standaloneEnabled=false\nserver.1=127.0.0.1:2889:3889\n"), -1);
	cr_assert_not_null(strstr(err, "/myid: No such file"), "err: %s", err);
}

Test(config, refuses_a_myid_that_is_not_a_number)
{
	write_file("myid", "abc\n");
	char want[256];
	snprintf(want, sizeof want, " %s/myid: 'abc' is not a server id", dir);
	assert_refused(ENSEMBLE, want);
}

Test(config, refuses_a_myid_without_a_server_line)
{
	write_file("myid", "9\n");
	char want[256];
	snprintf(want, sizeof want, " myid 9 (in %s/myid) has no server.9 line", dir);
	assert_refused(ENSEMBLE, want);
}

/* ---- command-line settings ---- */

Test(config, set_then_finish_derives_again)
{
	assert_loads(BASE);
	cr_assert_eq(config_set(&cfg, "tickTime", "3000", err, sizeof err), 0, "%s", err);
	cr_assert_eq(config_set(&cfg, "zookeeper.snapCount", " 42 ", err, sizeof err), 0, "%s", err);
	cr_assert_eq(config_finish(&cfg, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cfg.min_session_timeout, 6000);
	cr_assert_eq(cfg.max_session_timeout, 60000);
	cr_assert_eq(cfg.snap_count, 42);
}

Test(config, set_names_the_command_line_in_errors)
{
	cr_assert_eq(config_set(&cfg, "tickTime", "abc", err, sizeof err), -1);
	cr_assert_str_eq(err, "command line: tickTime: 'abc' is not a number");
}

Test(config, read_lets_the_command_line_supply_data_dir)
{
	write_file("zoo.cfg", "clientPort=2181\n");
	cr_assert_eq(config_read(&cfg, cfg_path, err, sizeof err), 0, "%s", err);
	cr_assert_eq(config_set(&cfg, "dataDir", dir, err, sizeof err), 0, "%s", err);
	cr_assert_eq(config_finish(&cfg, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(cfg.data_log_dir, dir);
}

/* ---- the 4lw whitelist ---- */

Test(config, whitelist_default_allows_only_srvr)
{
	assert_loads(BASE);
	cr_assert(config_4lw_allowed(&cfg, "srvr"));
	cr_assert_not(config_4lw_allowed(&cfg, "ruok"));
	cr_assert_not(config_4lw_allowed(&cfg, "stat"));
}

Test(config, whitelist_is_a_trimmed_list)
{
	assert_loads(BASE "4lw.commands.whitelist= ruok , stat,,mntr \n");
	cr_assert(config_4lw_allowed(&cfg, "ruok"));
	cr_assert(config_4lw_allowed(&cfg, "stat"));
	cr_assert(config_4lw_allowed(&cfg, "mntr"));
	cr_assert_not(config_4lw_allowed(&cfg, "conf"));
	cr_assert_not(config_4lw_allowed(&cfg, "ruo"));
	cr_assert_not(config_4lw_allowed(&cfg, ""));
}

Test(config, whitelist_star_allows_every_known_word)
{
	assert_loads(BASE "4lw.commands.whitelist=*\n");
	static const char *const all[] = { "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk",
		"ruok", "stmk", "srst", "srvr", "stat", "wchc", "wchp", "wchs", "mntr", "isro",
		"hash" };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		cr_assert(config_4lw_allowed(&cfg, all[i]), "%s", all[i]);
	cr_assert_not(config_4lw_allowed(&cfg, "abcd"));
	/* admin-only commands are not four-letter words in 3.8 */
	cr_assert_not(config_4lw_allowed(&cfg, "icfg"));
	cr_assert_not(config_4lw_allowed(&cfg, "sysp"));
}

Test(config, readonlymode_allows_isro)
{
	assert_loads(BASE "4lw.commands.whitelist=ruok\nreadonlymode.enabled=true\n");
	cr_assert(config_4lw_allowed(&cfg, "isro"));
}

Test(config, isro_needs_the_whitelist_without_readonlymode)
{
	assert_loads(BASE "4lw.commands.whitelist=ruok\n");
	cr_assert_not(config_4lw_allowed(&cfg, "isro"));
}

Test(config, whitelist_star_ends_the_list)
{
	assert_loads(BASE "4lw.commands.whitelist=abcd, *, efgh\n");
	cr_assert(config_4lw_allowed(&cfg, "abcd"));
	cr_assert(config_4lw_allowed(&cfg, "ruok"));
	cr_assert_not(config_4lw_allowed(&cfg, "efgh"));
}

Test(config, whitelist_always_allows_srvr)
{
	assert_loads(BASE "4lw.commands.whitelist=ruok\n");
	cr_assert(config_4lw_allowed(&cfg, "srvr"));
	cr_assert(config_4lw_allowed(&cfg, "ruok"));
}

/* ---- the `conf` output ---- */

Test(config, describes_a_standalone_server)
{
	assert_loads(BASE "maxClientCnxns=10\n");
	char out[2048], want[2048];
	size_t n = config_describe(&cfg, out, sizeof out);
	snprintf(want, sizeof want,
		 "clientPort=2181\nsecureClientPort=-1\ndataDir=%s/version-2\ndataLogDir=%s/version-2\n"
		 "tickTime=2000\nmaxClientCnxns=10\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n"
		 "clientPortListenBacklog=-1\nserverId=0\n", dir, dir);
	cr_assert_str_eq(out, want);
	cr_assert_eq(n, strlen(want));
}

Test(config, describes_a_relative_data_dir_as_absolute)
{
	assert_loads("dataDir=relative/zkd-config-test/\nclientPort=2181\n");
	char out[2048], cwd[1024], want[2048];
	config_describe(&cfg, out, sizeof out);
	cr_assert_not_null(getcwd(cwd, sizeof cwd));
	snprintf(want, sizeof want, "dataDir=%s/relative/zkd-config-test/version-2\n", cwd);
	cr_assert_not_null(strstr(out, want), "out: %s", out);
}

Test(config, describes_an_ensemble_member_with_membership)
{
	write_file("myid", "2\n");
	assert_loads(BASE "server.1=127.0.0.1:2889:3889\nserver.2=127.0.0.1:2890:3890;2181\n"
		     "server.3=127.0.0.1:2891:3891\nserver.4=[::1]:2892:3892:observer;[::1]:2184\n");
	char out[4096], want[4096];
	config_describe(&cfg, out, sizeof out);
	snprintf(want, sizeof want,
		 "clientPortListenBacklog=-1\nserverId=2\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\n"
		 "electionPort=3890\nquorumPort=2890\npeerType=0\nmembership: \n"
		 "server.1=127.0.0.1:2889:3889:participant\n"
		 "server.2=127.0.0.1:2890:3890:participant;0.0.0.0:2181\n"
		 "server.3=127.0.0.1:2891:3891:participant\n"
		 "server.4=[::1]:2892:3892:observer;[::1]:2184\n"
		 "version=0\n");
	cr_assert_not_null(strstr(out, want), "out: %s", out);
}

Test(config, describe_cuts_short_within_the_buffer)
{
	assert_loads(BASE);
	char out[20];
	memset(out, 'x', sizeof out);
	size_t n = config_describe(&cfg, out, sizeof out);
	cr_assert_lt(n, sizeof out);
	cr_assert_eq(out[n], '\0');
	cr_assert_eq(strncmp(out, "clientPort=2181\nsec", n), 0, "out: %s", out);
}

/* ---- the sample files in conf/ ---- */

Test(config, sample_zoo_cfg_loads_as_documented)
{
	char path[512];
	project_path(path, sizeof path, "conf/zoo.cfg");
	capture_stderr();
	int rc = config_load(&cfg, path, err, sizeof err);
	const char *log = captured();
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(log, "");
	cr_assert_eq(cfg.tick_time, 2000);
	cr_assert_str_eq(cfg.data_dir, "data");
	cr_assert_eq(cfg.client_port, 2181);
	cr_assert_str_eq(cfg.client_port_address, "127.0.0.1");
	cr_assert_str_eq(cfg.fourlw_whitelist, "*");
	cr_assert_eq(cfg.max_client_cnxns, 60);
	cr_assert_not(cfg.admin_enable);
	cr_assert_eq(cfg.n_servers, 0);
}

Test(config, sample_ensemble_files_describe_one_ensemble)
{
	for (int i = 1; i <= 3; i++) {
		char path[512], rel[64], data[64];
		snprintf(rel, sizeof rel, "conf/zoo-ensemble-%d.cfg", i);
		project_path(path, sizeof path, rel);
		config_defaults(&cfg);
		capture_stderr();
		int rc = config_read(&cfg, path, err, sizeof err);
		const char *log = captured();
		cr_assert_eq(rc, 0, "%s", err);
		cr_assert_str_eq(log, "");
		snprintf(data, sizeof data, "data/zk%d", i);
		cr_assert_str_eq(cfg.data_dir, data);
		cr_assert_eq(cfg.client_port, 2180 + i);
		cr_assert_eq(cfg.n_servers, 3);
		for (int id = 1; id <= 3; id++) {
			const struct zkd_cfg_server *s = config_find_server(&cfg, id);
			cr_assert_not_null(s);
			cr_assert_str_eq(s->host, "127.0.0.1");
			cr_assert_eq(s->quorum_port, 2888 + id);
			cr_assert_eq(s->election_port, 3888 + id);
		}
	}
}

Test(config, sample_tls_file_reads_without_warnings)
{
	char path[512];
	project_path(path, sizeof path, "conf/zoo-tls.cfg");
	capture_stderr();
	int rc = config_read(&cfg, path, err, sizeof err);
	const char *log = captured();
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(log, "");
	cr_assert_eq(cfg.secure_client_port, 2281);
}

Test(config, container_checker_and_super_digest_keys)
{
	assert_loads("dataDir=$D\nclientPort=2181\n");
	cr_assert_eq(cfg.container_check_interval_ms, 60000, "ZooKeeper's default check interval");
	cr_assert_eq(cfg.container_max_per_minute, 10000);
	cr_assert_str_eq(cfg.super_digest, "");
	assert_loads("dataDir=$D\nclientPort=2181\nznode.container.checkIntervalMs=1000\n"
		     "znode.container.maxPerMinute=60\n"
		     "zookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n");
	cr_assert_eq(cfg.container_check_interval_ms, 1000);
	cr_assert_eq(cfg.container_max_per_minute, 60);
	cr_assert_str_eq(cfg.super_digest, "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
}

Test(config, container_interval_must_be_positive)
{
	cr_assert_eq(load("dataDir=$D\nclientPort=2181\nznode.container.checkIntervalMs=0\n"), -1);
}

Test(config, fsync_warning_threshold)
{
	assert_loads("dataDir=$D\nclientPort=2181\n");
	cr_assert_eq(cfg.fsync_warning_threshold_ms, 1000, "ZooKeeper's default");
	assert_loads("dataDir=$D\nclientPort=2181\nzookeeper.fsync.warningthresholdms=50\n");
	cr_assert_eq(cfg.fsync_warning_threshold_ms, 50);
}
