/*
 * zkbench.c - a load generator for ZooKeeper-protocol servers (zkd, or
 * Apache ZooKeeper for comparison), built on the project's own codec.
 *
 *   zkbench [options]                  a workload: warm-up, measured window,
 *                                      drain; then a table (or --json)
 *   zkbench --connect-storm N          open N sessions as fast as possible
 *   zkbench --write-probe              retry one write until it succeeds
 *                                      (the failover timer's client)
 *   zkbench --handshakes N             N connections, -c at a time, each a
 *                                      whole session (connect, [TLS], session,
 *                                      closeSession); connections per second
 *   --tls [--tls-ca F --tls-cert F --tls-key F] [--tls12]   any of the above
 *                                      over TLS (1.3 unless --tls12)
 *
 * Design: this file is the command line, the node setup and teardown (with
 * the blocking client of zkproto.c), the main thread's clock (it publishes
 * the window's edges, samples the server's /proc at exactly those edges and
 * prints progress) and the report. The load itself is engine.c's.
 *
 * The measured window is [warm-up end, warm-up end + duration). An op belongs
 * to it when it was due (open loop) or sent (closed loop) inside it; ops in
 * flight at its end are waited for (the drain) and counted, so a slow tail
 * cannot fall off the end of the run. Throughput = ops of the window /
 * window length.
 *
 * Every run is bounded: connects, the drain and teardown all have
 * deadlines; a server that stops answering turns into an error, not a hang.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "engine.h"
#include "procstat.h"
#include "writeprobe.h"
#include "zkproto.h"

struct opts {
	struct bench_cfg c;
	bool json, progress, cleanup, write_probe;
	int server_pid;
	const char *label;
	const char *mix_spec;
	struct probe_opts probe;
	bool tls;
	struct zkp_tls_opts tls_o;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: zkbench [options]\n"
"  -s, --server H:P[,H:P]   servers (default 127.0.0.1:2181); sessions go round-robin\n"
"  -c, --sessions N         sessions (default 1)\n"
"  -t, --threads N          client threads, each an epoll loop (default min(2, sessions))\n"
"  -d, --depth N            requests in flight per session (default 1)\n"
"  -D, --duration S         measured seconds (default 10)\n"
"  -w, --warmup S           unmeasured seconds first (default 2)\n"
"  -r, --rate N             open loop: N ops/s in total, latency from the due time\n"
"                           (default 0: closed loop)\n"
"  -m, --mix SPEC           e.g. get=90,set=10; ops: get set exists children create\n"
"                           (create + its delete) ephseq (ephemeral-sequential create\n"
"                           + its delete) multi (create+delete+set in one txn)\n"
"  -v, --value-size B       data size for set/create/keys (default 100)\n"
"  -k, --keys N             nodes to read and write, made under the root (default 1000)\n"
"      --children N         children of <root>/c for the children op (default 16)\n"
"      --root PATH          bench root node (default /zkbench-<pid>); removed at the end\n"
"      --session-timeout MS requested session timeout (default 30000)\n"
"      --drain S            wait at most S for in-flight ops after the window (default 10)\n"
"      --connect-storm N    open N sessions at once; report connect-time percentiles\n"
"      --connect-concurrency N  connects in flight at once (default: storm N, else 256)\n"
"      --connect-timeout S  a session not up after S fails (default 30)\n"
"      --hold S             storm: keep the sessions S seconds before closing (default 0)\n"
"      --src-addrs N        client source addresses 127.0.0.1..N (default: one per\n"
"                           5000 sessions)\n"
"      --server-pid PID     sample the server's CPU and RSS from /proc over the window\n"
"      --json               one JSON object on stdout instead of the table\n"
"      --label NAME         a name carried into the JSON\n"
"      --no-progress        no live line (it is shown only on a terminal anyway)\n"
"      --no-cleanup         leave the bench nodes in place\n"
"      --handshakes N       N connections in all, -c of them at a time: each connects,\n"
"                           (TLS handshake,) opens a session and closes it again;\n"
"                           reports connections/s and connect-to-session percentiles\n"
"      --tls                TLS to the server (TLS 1.3; no session resumption)\n"
"      --tls12              TLS 1.2 instead of 1.3\n"
"      --tls-ca FILE        verify the server against these CAs (PEM; and its address\n"
"                           against the certificate's names); without it: no check\n"
"      --tls-cert FILE      client certificate chain (PEM); --tls-key FILE its key\n"
"                           (one file may hold both, as conf/tls/client.pem does)\n"
"      --write-probe        retry creating an ephemeral-sequential node on every\n"
"                           --server at once until one succeeds (failover timer)\n"
"      --probe-timeout S    (default 60)   --probe-attempt-ms MS (default 1000)\n"
"      --since-ns NS        CLOCK_MONOTONIC mark to measure from\n"
"      --wait-stdin         read that mark from stdin, then start\n");
}

static double num_arg(const char *name, const char *v, double lo, double hi)
{
	char *end = NULL;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || !end || end == v || *end || d < lo || d > hi || isnan(d)) {
		fprintf(stderr, "zkbench: --%s: '%s' is not a number in [%g, %g]\n", name, v, lo, hi);
		exit(2);
	}
	return d;
}

static int parse_mix(const char *spec, int mix[OP_N_MIX])
{
	memset(mix, 0, sizeof(int) * OP_N_MIX);
	char *dup = strdup(spec), *save = NULL;
	int total = 0;
	for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		long wgt = 1;
		if (eq) {
			*eq = '\0';
			char *end;
			wgt = strtol(eq + 1, &end, 10);
			if (*end || wgt < 0 || wgt > 1000000) {
				fprintf(stderr, "zkbench: --mix: bad weight in '%s'\n", spec);
				free(dup);
				return -1;
			}
		}
		int k = -1;
		for (int i = 0; i < OP_N_MIX; i++)
			if (!strcmp(tok, op_names[i]))
				k = i;
		if (!strcmp(tok, "getChildren"))
			k = OP_CHILDREN;
		if (k < 0) {
			fprintf(stderr, "zkbench: --mix: unknown op '%s' (get set exists children create ephseq multi)\n", tok);
			free(dup);
			return -1;
		}
		mix[k] += (int)wgt;
		total += (int)wgt;
	}
	free(dup);
	if (total <= 0) {
		fprintf(stderr, "zkbench: --mix: no op has a weight\n");
		return -1;
	}
	return 0;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_CHILDREN = 1000, O_ROOT, O_STO, O_DRAIN, O_STORM, O_CONC, O_CTO, O_HOLD, O_SRC,
	       O_PID, O_JSON, O_LABEL, O_NOPROG, O_NOCLEAN, O_PROBE, O_PTO, O_PATT, O_SINCE, O_STDIN,
	       O_HS, O_TLS, O_TLS12, O_TLSCA, O_TLSCERT, O_TLSKEY };
	static const struct option lo[] = {
		{ "server", 1, 0, 's' }, { "sessions", 1, 0, 'c' }, { "threads", 1, 0, 't' },
		{ "depth", 1, 0, 'd' }, { "duration", 1, 0, 'D' }, { "warmup", 1, 0, 'w' },
		{ "rate", 1, 0, 'r' }, { "mix", 1, 0, 'm' }, { "value-size", 1, 0, 'v' },
		{ "keys", 1, 0, 'k' }, { "children", 1, 0, O_CHILDREN }, { "root", 1, 0, O_ROOT },
		{ "session-timeout", 1, 0, O_STO }, { "drain", 1, 0, O_DRAIN },
		{ "connect-storm", 1, 0, O_STORM }, { "connect-concurrency", 1, 0, O_CONC },
		{ "connect-timeout", 1, 0, O_CTO }, { "hold", 1, 0, O_HOLD },
		{ "src-addrs", 1, 0, O_SRC }, { "server-pid", 1, 0, O_PID }, { "json", 0, 0, O_JSON },
		{ "label", 1, 0, O_LABEL }, { "no-progress", 0, 0, O_NOPROG },
		{ "no-cleanup", 0, 0, O_NOCLEAN }, { "write-probe", 0, 0, O_PROBE },
		{ "probe-timeout", 1, 0, O_PTO }, { "probe-attempt-ms", 1, 0, O_PATT },
		{ "since-ns", 1, 0, O_SINCE }, { "wait-stdin", 0, 0, O_STDIN },
		{ "handshakes", 1, 0, O_HS }, { "tls", 0, 0, O_TLS }, { "tls12", 0, 0, O_TLS12 },
		{ "tls-ca", 1, 0, O_TLSCA }, { "tls-cert", 1, 0, O_TLSCERT }, { "tls-key", 1, 0, O_TLSKEY },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct bench_cfg *c = &o->c;
	const char *servers = "127.0.0.1:2181";
	int threads = 0, conc = 0, src = 0;
	memset(o, 0, sizeof *o);
	c->sessions = 1;
	c->depth = 1;
	c->duration_s = 10;
	c->warmup_s = 2;
	c->drain_s = 10;
	c->value_size = 100;
	c->keys = 1000;
	c->children = 16;
	c->session_timeout_ms = 30000;
	c->connect_timeout_s = 30;
	snprintf(c->root, sizeof c->root, "/zkbench-%d", (int)getpid());
	o->cleanup = true;
	o->progress = true;
	o->mix_spec = "get=100";
	o->probe = (struct probe_opts){ .timeout_s = 60, .attempt_ms = 1000, .path = "/zkbench-failover-" };
	int ch;
	while ((ch = getopt_long(argc, argv, "s:c:t:d:D:w:r:m:v:k:h", lo, NULL)) != -1) {
		switch (ch) {
		case 's': servers = optarg; break;
		case 'c': c->sessions = (int)num_arg("sessions", optarg, 1, 1000000); break;
		case 't': threads = (int)num_arg("threads", optarg, 1, 64); break;
		case 'd': c->depth = (int)num_arg("depth", optarg, 1, 4096); break;
		case 'D': c->duration_s = num_arg("duration", optarg, 0.1, 86400); break;
		case 'w': c->warmup_s = num_arg("warmup", optarg, 0, 3600); break;
		case 'r': c->rate = num_arg("rate", optarg, 0, 1e8); break;
		case 'm': o->mix_spec = optarg; break;
		case 'v': c->value_size = (int)num_arg("value-size", optarg, 0, 1000000); break;
		case 'k': c->keys = (int)num_arg("keys", optarg, 1, 1000000); break;
		case O_CHILDREN: c->children = (int)num_arg("children", optarg, 0, 100000); break;
		case O_ROOT:
			if (optarg[0] != '/' || strlen(optarg) < 2 || strlen(optarg) >= sizeof c->root ||
			    optarg[strlen(optarg) - 1] == '/') {
				fprintf(stderr, "zkbench: --root: an absolute path other than /, under %zu bytes\n",
					sizeof c->root);
				exit(2);
			}
			snprintf(c->root, sizeof c->root, "%s", optarg);
			break;
		case O_STO: c->session_timeout_ms = (int)num_arg("session-timeout", optarg, 1000, 3600000); break;
		case O_DRAIN: c->drain_s = num_arg("drain", optarg, 0.1, 3600); break;
		case O_STORM: c->connect_storm = (int)num_arg("connect-storm", optarg, 1, 1000000); break;
		case O_CONC: conc = (int)num_arg("connect-concurrency", optarg, 1, 1000000); break;
		case O_CTO: c->connect_timeout_s = num_arg("connect-timeout", optarg, 0.1, 3600); break;
		case O_HOLD: c->hold_s = num_arg("hold", optarg, 0, 86400); break;
		case O_SRC: src = (int)num_arg("src-addrs", optarg, 1, 250); break;
		case O_PID: o->server_pid = (int)num_arg("server-pid", optarg, 1, 1 << 30); break;
		case O_JSON: o->json = true; break;
		case O_LABEL: o->label = optarg; break;
		case O_NOPROG: o->progress = false; break;
		case O_NOCLEAN: o->cleanup = false; break;
		case O_PROBE: o->write_probe = true; break;
		case O_PTO: o->probe.timeout_s = num_arg("probe-timeout", optarg, 0.1, 3600); break;
		case O_PATT: o->probe.attempt_ms = (int)num_arg("probe-attempt-ms", optarg, 1, 600000); break;
		case O_SINCE: o->probe.since_ns = strtoull(optarg, NULL, 10); break;
		case O_STDIN: o->probe.wait_stdin = true; break;
		case O_HS: c->handshakes = (int)num_arg("handshakes", optarg, 1, 100000000); break;
		case O_TLS: o->tls = true; break;
		case O_TLS12: o->tls = o->tls_o.tls12 = true; break;
		case O_TLSCA: o->tls = true; o->tls_o.ca = optarg; break;
		case O_TLSCERT: o->tls = true; o->tls_o.cert = optarg; break;
		case O_TLSKEY: o->tls = true; o->tls_o.key = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "zkbench: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	char err[200];
	c->n_servers = zkp_parse_addrs(servers, c->servers, BENCH_MAX_SERVERS, err, sizeof err);
	if (c->n_servers < 0) {
		fprintf(stderr, "zkbench: --server: %s\n", err);
		exit(2);
	}
	if (parse_mix(o->mix_spec, c->mix) != 0)
		exit(2);
	if (c->connect_storm && c->handshakes) {
		fprintf(stderr, "zkbench: --connect-storm and --handshakes are two different modes\n");
		exit(2);
	}
	if (o->tls && o->write_probe) {
		fprintf(stderr, "zkbench: --write-probe does not speak TLS\n");
		exit(2);
	}
	if (o->tls) {
		c->tls = zkp_tls_ctx(&o->tls_o, err, sizeof err);
		if (!c->tls) {
			fprintf(stderr, "zkbench: %s\n", err);
			exit(2);
		}
		zkp_tls = c->tls;
	}
	if (c->connect_storm)
		c->sessions = c->connect_storm;
	c->threads = threads ? threads : (c->sessions < 2 ? 1 : 2);
	if (c->threads > c->sessions)
		c->threads = c->sessions;
	c->connect_concurrency = conc ? conc : (c->connect_storm ? c->connect_storm : 256);
	/* One source address per 5000 sessions: a loopback address has ~28k
	 * ephemeral ports towards one server port, and the kernel's search for
	 * a free one gets slow long before they run out (and TIME_WAIT sockets
	 * from an earlier storm hold ports too). Spread, a storm measures the
	 * server, not the client's port allocator. */
	c->src_addrs = src ? src : (c->sessions + 4999) / 5000;
	if (c->src_addrs > 250)
		c->src_addrs = 250;
	o->probe.json = o->json;
	if (!isatty(STDOUT_FILENO) || o->json)
		o->progress = false;
}

/* ---- setup and teardown -------------------------------------------------- */

#define SETUP_BATCH 256

/* Runs n requests, SETUP_BATCH at a time; enc(i) appends request i.
 * Replies' error codes go to errs[i] (if errs). 0 or -1 (connection lost). */
typedef void (*enc_fn)(struct jute_writer *w, int32_t xid, int i, void *arg);

static int pipelined(struct zkp_sync *s, int n, enc_fn enc, void *arg, int *errs)
{
	struct jute_writer w;
	jute_writer_init(&w, 65536);
	for (int base = 0; base < n; base += SETUP_BATCH) {
		int m = n - base < SETUP_BATCH ? n - base : SETUP_BATCH;
		for (int i = 0; i < m; i++)
			enc(&w, zkp_sync_xid(s), base + i, arg);
		if (zkp_sync_send(s, &w) != 0)
			goto fail;
		for (int i = 0; i < m; i++) {
			struct zkp_reply r;
			if (zkp_sync_recv(s, &r) != 0)
				goto fail;
			if (errs)
				errs[base + i] = r.h.err;
		}
	}
	jute_writer_free(&w);
	return 0;
fail:
	jute_writer_free(&w);
	return -1;
}

struct setup_ctx {
	const struct bench_cfg *c;
	char **keys;
	const uint8_t *value;
	char **paths;               /* for generic create/delete lists */
};

static void enc_create_key(struct jute_writer *w, int32_t xid, int i, void *arg)
{
	struct setup_ctx *x = arg;
	zkp_create(w, xid, x->keys[i], x->value, x->c->value_size, ZCM_PERSISTENT);
}

static void enc_create_path(struct jute_writer *w, int32_t xid, int i, void *arg)
{
	struct setup_ctx *x = arg;
	zkp_create(w, xid, x->paths[i], NULL, 0, ZCM_PERSISTENT);
}

static void enc_delete_path(struct jute_writer *w, int32_t xid, int i, void *arg)
{
	struct setup_ctx *x = arg;
	zkp_delete(w, xid, x->paths[i]);
}

static int one_request(struct zkp_sync *s, struct jute_writer *w, struct zkp_reply *r)
{
	return zkp_sync_send(s, w) == 0 && zkp_sync_recv(s, r) == 0 ? 0 : -1;
}

/* Children of path as full paths (caller frees), or NULL with *n = -1 when
 * the node does not exist. */
static char **children_of(struct zkp_sync *s, const char *path, int *n)
{
	struct jute_writer w;
	struct zkp_reply r;
	jute_writer_init(&w, 256);
	zkp_children(&w, zkp_sync_xid(s), path);
	int rc = one_request(s, &w, &r);
	jute_writer_free(&w);
	*n = -1;
	if (rc != 0 || r.h.err != 0)
		return NULL;
	struct rec_str_vec v;
	if (rec_read_str_vector(&r.body, &v) != 0)
		return NULL;
	int cnt = v.count > 0 ? v.count : 0;
	char **out = calloc((size_t)cnt + 1, sizeof *out);
	size_t pos = 0;
	struct jute_buf b;
	int k = 0;
	while (out && k < cnt && rec_str_next(&v, &pos, &b)) {
		size_t len = strlen(path) + 1 + (b.len > 0 ? (size_t)b.len : 0) + 1;
		out[k] = malloc(len);
		if (!out[k])
			break;
		snprintf(out[k], len, "%s/%.*s", path, b.len > 0 ? (int)b.len : 0, (const char *)b.data);
		k++;
	}
	*n = k;
	return out;
}

static void free_list(char **l, int n)
{
	for (int i = 0; l && i < n; i++)
		free(l[i]);
	free(l);
}

/* Deletes path and everything under it. Children are deleted in pipelined
 * batches; one that is not empty is descended into and deleted again. */
static int delete_tree(struct zkp_sync *s, const char *path, int level)
{
	if (level > 16)
		return -1;
	int n;
	char **kids = children_of(s, path, &n);
	if (n < 0)
		return 0;                   /* gone already */
	if (n > 0) {
		int *errs = calloc((size_t)n, sizeof *errs);
		struct setup_ctx x = { .paths = kids };
		if (!errs || pipelined(s, n, enc_delete_path, &x, errs) != 0) {
			free(errs);
			free_list(kids, n);
			return -1;
		}
		for (int i = 0; i < n; i++)
			if (errs[i] == ZNOTEMPTY && delete_tree(s, kids[i], level + 1) != 0) {
				free(errs);
				free_list(kids, n);
				return -1;
			}
		free(errs);
	}
	free_list(kids, n);
	struct jute_writer w;
	struct zkp_reply r;
	jute_writer_init(&w, 256);
	zkp_delete(&w, zkp_sync_xid(s), path);
	int rc = one_request(s, &w, &r);
	jute_writer_free(&w);
	return rc == 0 && (r.h.err == 0 || r.h.err == ZNONODE) ? 0 : -1;
}

static int setup_nodes(const struct bench_cfg *c, char **keys, const uint8_t *value)
{
	struct zkp_sync s;
	char err[200];
	if (zkp_sync_open(&s, &c->servers[0], 30000, 30000, err, sizeof err) != 0) {
		fprintf(stderr, "zkbench: setup: %s\n", err);
		return -1;
	}
	int rc = -1;
	if (delete_tree(&s, c->root, 0) != 0) {
		fprintf(stderr, "zkbench: setup: cannot clear an old %s\n", c->root);
		goto out;
	}
	/* root, then its fixed subdirectories, then <root>/c's children */
	int np = 0;
	char *paths[8];
	char dirs[4][BENCH_PATH_MAX];
	snprintf(dirs[0], sizeof dirs[0], "%s", c->root);
	snprintf(dirs[1], sizeof dirs[1], "%s/c", c->root);
	snprintf(dirs[2], sizeof dirs[2], "%s/churn", c->root);
	snprintf(dirs[3], sizeof dirs[3], "%s/eph", c->root);
	for (int i = 0; i < 4; i++)
		paths[np++] = dirs[i];
	int errs[8];
	struct setup_ctx x = { .c = c, .keys = keys, .value = value, .paths = paths };
	if (pipelined(&s, np, enc_create_path, &x, errs) != 0)
		goto lost;
	for (int i = 0; i < np; i++)
		if (errs[i] != 0) {
			fprintf(stderr, "zkbench: setup: create %s: %s\n", paths[i], zk_err_name(errs[i]));
			goto out;
		}
	int *kerr = calloc((size_t)(c->keys > c->children ? c->keys : c->children) + 1, sizeof *kerr);
	if (!kerr)
		goto out;
	if (pipelined(&s, c->keys, enc_create_key, &x, kerr) != 0) {
		free(kerr);
		goto lost;
	}
	for (int i = 0; i < c->keys; i++)
		if (kerr[i] != 0) {
			fprintf(stderr, "zkbench: setup: create %s: %s\n", keys[i], zk_err_name(kerr[i]));
			free(kerr);
			goto out;
		}
	if (c->mix[OP_CHILDREN] && c->children > 0) {
		char **cp = calloc((size_t)c->children, sizeof *cp);
		for (int i = 0; cp && i < c->children; i++) {
			cp[i] = malloc(BENCH_PATH_MAX);
			if (cp[i])
				snprintf(cp[i], BENCH_PATH_MAX, "%s/c/child-%06d", c->root, i);
		}
		x.paths = cp;
		int prc = cp ? pipelined(&s, c->children, enc_create_path, &x, kerr) : -1;
		free_list(cp, c->children);
		if (prc != 0) {
			free(kerr);
			goto lost;
		}
	}
	free(kerr);
	rc = 0;
	goto out;
lost:
	fprintf(stderr, "zkbench: setup: the server stopped answering\n");
out:
	zkp_sync_close(&s);
	return rc;
}

static void teardown_nodes(const struct bench_cfg *c)
{
	struct zkp_sync s;
	char err[200];
	if (zkp_sync_open(&s, &c->servers[0], 30000, 30000, err, sizeof err) != 0) {
		fprintf(stderr, "zkbench: cleanup: %s (%s is left behind)\n", err, c->root);
		return;
	}
	if (delete_tree(&s, c->root, 0) != 0)
		fprintf(stderr, "zkbench: cleanup: could not remove all of %s\n", c->root);
	zkp_sync_close(&s);
}

/* ---- reporting ----------------------------------------------------------- */

static void fmt_lat(char *buf, size_t n, uint64_t ns)
{
	double us = (double)ns / 1e3;
	if (us < 1000)
		snprintf(buf, n, "%.1fus", us);
	else if (us < 1e6)
		snprintf(buf, n, "%.2fms", us / 1e3);
	else
		snprintf(buf, n, "%.2fs", us / 1e6);
}

static const double pcts[] = { 50, 90, 99, 99.9 };
static const char *const pct_names[] = { "p50", "p90", "p99", "p99_9" };

static void json_lat(FILE *f, const struct hist *h)
{
	fprintf(f, "{\"count\": %" PRIu64, h->count);
	for (int i = 0; i < 4; i++)
		fprintf(f, ", \"%s\": %.3f", pct_names[i], (double)hist_percentile(h, pcts[i]) / 1e3);
	fprintf(f, ", \"max\": %.3f, \"min\": %.3f, \"mean\": %.3f}", (double)h->max / 1e3,
		h->count ? (double)h->min / 1e3 : 0.0, hist_mean(h) / 1e3);
}

/* The latency-by-percentile curve HdrHistogram plots: for plots of the tail. */
static void json_spectrum(FILE *f, const struct hist *h)
{
	static const double sp[] = { 0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100 };
	fputs("[", f);
	for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
		fprintf(f, "%s[%g, %.3f]", i ? ", " : "", sp[i],
			(double)(sp[i] == 0 ? (h->count ? h->min : 0) : hist_percentile(h, sp[i])) / 1e3);
	fputs("]", f);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_servers(FILE *f, const struct bench_cfg *c)
{
	fputs("[", f);
	for (int i = 0; i < c->n_servers; i++) {
		char a[64];
		snprintf(a, sizeof a, "%s:%d", inet_ntoa(c->servers[i].sin_addr), ntohs(c->servers[i].sin_port));
		fprintf(f, "%s\"%s\"", i ? ", " : "", a);
	}
	fputs("]", f);
}

static void json_server_stats(FILE *f, int pid, const struct proc_sample *a, const struct proc_sample *b,
			      uint64_t ops, double secs)
{
	if (!pid || !a->ok || !b->ok) {
		fputs("null", f);
		return;
	}
	double cpu = b->cpu_s - a->cpu_s;
	fprintf(f, "{\"pid\": %d, \"cpu_s\": %.3f, \"cpu_util\": %.3f, \"cpu_us_per_op\": %.3f, "
		"\"rss_kb_before\": %ld, \"rss_kb\": %ld, \"hwm_kb\": %ld, \"threads\": %d, \"thread_cpu_s\": {",
		pid, cpu, secs > 0 ? cpu / secs : 0, ops ? cpu * 1e6 / (double)ops : 0,
		a->rss_kb, b->rss_kb, b->hwm_kb, b->threads);
	int first = 1;
	for (int i = 0; i < b->ngroups; i++) {
		double d = b->g[i].cpu_s - proc_group_cpu(a, b->g[i].name);
		if (d <= 0)
			continue;
		fprintf(f, "%s", first ? "" : ", ");
		json_str(f, b->g[i].name);
		fprintf(f, ": %.3f", d);
		first = 0;
	}
	fputs("}}", f);
}

static double client_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* ---- running --------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void raise_nofile(int need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= (rlim_t)need)
		return;
	rlim_t want = (rlim_t)need;
	if (rl.rlim_max < want) {
		/* Raising the hard limit needs CAP_SYS_RESOURCE (root); try. */
		struct rlimit hard = { want, want };
		if (setrlimit(RLIMIT_NOFILE, &hard) == 0)
			return;
		want = rl.rlim_max;
	}
	rl.rlim_cur = want;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)need)
		fprintf(stderr, "zkbench: warning: RLIMIT_NOFILE is %llu, %d sessions need about %d\n",
			(unsigned long long)rl.rlim_cur, need - 64, need);
}

static void sleep_until(uint64_t t)
{
	uint64_t now = mono_ns();
	if (t <= now)
		return;
	struct timespec ts = { (time_t)((t - now) / 1000000000u), (long)((t - now) % 1000000000u) };
	nanosleep(&ts, NULL);
}

static int count_flag(struct run *r, size_t off)
{
	int n = 0;
	for (int i = 0; i < r->nw; i++)
		n += atomic_load((_Atomic bool *)((char *)&r->w[i] + off));
	return n;
}

static int sum_int(struct run *r, size_t off)
{
	int n = 0;
	for (int i = 0; i < r->nw; i++)
		n += atomic_load((_Atomic int *)((char *)&r->w[i] + off));
	return n;
}

static uint64_t sum_u64(struct run *r, size_t off)
{
	uint64_t n = 0;
	for (int i = 0; i < r->nw; i++)
		n += atomic_load((_Atomic uint64_t *)((char *)&r->w[i] + off));
	return n;
}

/* Waits (bounded) until every worker has set the flag at off. */
static bool wait_flag(struct run *r, size_t off, double timeout_s, bool progress, const char *what)
{
	uint64_t end = mono_ns() + (uint64_t)(timeout_s * 1e9);
	uint64_t next = 0;
	while (count_flag(r, off) < r->nw) {
		uint64_t now = mono_ns();
		if (now >= end || interrupted)
			return false;
		if (progress && now >= next) {
			printf("\r%-12s %d/%d sessions up, %d failed   ", what,
			       sum_int(r, offsetof(struct worker, n_connected)), r->cfg->sessions,
			       sum_int(r, offsetof(struct worker, n_failed)));
			fflush(stdout);
			next = now + 250000000u;
		}
		sleep_until(now + 2000000u);
	}
	return true;
}

static void set_phase(struct run *r, int ph)
{
	atomic_store_explicit(&r->phase, ph, memory_order_release);
}

static void print_errors(struct run *r)
{
	for (int i = 0; i < r->nw; i++)
		if (r->w[i].errmsg[0]) {
			fprintf(stderr, "zkbench: %s\n", r->w[i].errmsg);
			break;
		}
}

/* Closes every session (bounded), then lets the workers exit. */
static void finish(struct run *r)
{
	set_phase(r, PH_CLOSE);
	wait_flag(r, offsetof(struct worker, closed), 15, false, "");
	set_phase(r, PH_EXIT);
	engine_join(r);
}

/* The negotiated protocol, cipher and group, as the first TLS connection
 * saw them ("" when plain). */
static const char *tls_desc(const struct run *r)
{
	for (int i = 0; i < r->nw; i++)
		if (r->w[i].tls_desc[0])
			return r->w[i].tls_desc;
	return r->cfg->tls ? "?" : "";
}

static int run_storm(struct opts *o, struct run *r)
{
	const struct bench_cfg *c = &o->c;
	struct proc_sample before = { 0 }, after = { 0 };
	if (o->server_pid)
		proc_sample(o->server_pid, &before);
	double cpu0 = client_cpu_s();
	uint64_t t0 = mono_ns();
	if (engine_start(r) != 0) {
		print_errors(r);
		return 1;
	}
	bool all = wait_flag(r, offsetof(struct worker, connect_done),
			     c->connect_timeout_s + 30, o->progress, "connecting");
	uint64_t t1 = mono_ns();
	if (o->progress)
		printf("\r%60s\r", "");
	set_phase(r, PH_HOLD);
	/* Let the server settle (its accept queues, a GC) before reading RSS. */
	sleep_until(t1 + 200000000u);
	if (o->server_pid)
		proc_sample(o->server_pid, &after);
	if (c->hold_s > 0)
		sleep_until(t1 + (uint64_t)(c->hold_s * 1e9));
	uint64_t t_close = mono_ns();
	finish(r);
	uint64_t t_closed = mono_ns();
	double cpu1 = client_cpu_s();

	struct hist h;
	hist_init(&h);
	uint64_t lost = 0;
	for (int i = 0; i < r->nw; i++) {
		hist_add(&h, &r->w[i].connect_h);
		lost += r->w[i].lost;
	}
	int ok = (int)h.count, failed = c->sessions - ok;
	double total_s = (double)(t1 - t0) / 1e9;
	if (o->json) {
		printf("{\"tool\": \"zkbench\", \"mode\": \"connect-storm\", \"label\": ");
		json_str(stdout, o->label ? o->label : "");
		printf(", \"servers\": ");
		json_servers(stdout, c);
		if (c->tls) {
			printf(", \"tls\": ");
			json_str(stdout, tls_desc(r));
		}
		printf(", \"sessions\": %d, \"threads\": %d, \"concurrency\": %d, \"connected\": %d, "
		       "\"failed\": %d, \"lost\": %" PRIu64 ", \"total_s\": %.3f, \"connects_per_s\": %.1f, "
		       "\"close_s\": %.3f, \"connect_us\": ",
		       c->sessions, c->threads, c->connect_concurrency, ok, failed, lost, total_s,
		       total_s > 0 ? ok / total_s : 0, (double)(t_closed - t_close) / 1e9);
		json_lat(stdout, &h);
		printf(", \"spectrum_us\": ");
		json_spectrum(stdout, &h);
		printf(", \"client_cpu_s\": %.3f, \"server\": ", cpu1 - cpu0);
		json_server_stats(stdout, o->server_pid, &before, &after, (uint64_t)ok, total_s);
		if (o->server_pid && before.ok && after.ok && ok > 0)
			printf(", \"rss_bytes_per_session\": %.0f",
			       (double)(after.rss_kb - before.rss_kb) * 1024.0 / ok);
		if (!all || failed)
			printf(", \"error\": ");
		if (!all || failed) {
			char m[256] = "";
			for (int i = 0; i < r->nw && !m[0]; i++)
				snprintf(m, sizeof m, "%s", r->w[i].errmsg);
			json_str(stdout, m[0] ? m : "not all sessions connected");
		}
		printf("}\n");
	} else {
		char a[32], b[32], d[32], e[32], m[32];
		fmt_lat(a, sizeof a, hist_percentile(&h, 50));
		fmt_lat(b, sizeof b, hist_percentile(&h, 90));
		fmt_lat(d, sizeof d, hist_percentile(&h, 99));
		fmt_lat(e, sizeof e, hist_percentile(&h, 99.9));
		fmt_lat(m, sizeof m, h.max);
		printf("connect storm: %d sessions (%d at a time, %d threads): %d up, %d failed in %.3f s "
		       "(%.0f sessions/s)\n", c->sessions, c->connect_concurrency, c->threads, ok, failed,
		       total_s, total_s > 0 ? ok / total_s : 0);
		printf("  connect time  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", a, b, d, e, m);
		printf("  closing them took %.3f s; client CPU %.2f s\n",
		       (double)(t_closed - t_close) / 1e9, cpu1 - cpu0);
		if (o->server_pid && before.ok && after.ok)
			printf("  server pid %d: RSS %ld -> %ld KiB (%.0f bytes/session), CPU %.2f s\n",
			       o->server_pid, before.rss_kb, after.rss_kb,
			       ok ? (double)(after.rss_kb - before.rss_kb) * 1024.0 / ok : 0,
			       after.cpu_s - before.cpu_s);
		if (failed)
			print_errors(r);
	}
	return failed || !all ? 1 : 0;
}

/* --handshakes N: N connections, `sessions` at a time, each connect, TLS
 * handshake (with --tls), connect request -> session, closeSession -> reply,
 * close. Rate = connections that got a session / elapsed time. */
static int run_handshakes(struct opts *o, struct run *r)
{
	const struct bench_cfg *c = &o->c;
	struct proc_sample before = { 0 }, after = { 0 };
	for (int i = 0; i < r->nw; i++)
		r->w[i].quota = (int)((long)c->handshakes * (i + 1) / r->nw) -
				(int)((long)c->handshakes * i / r->nw);
	if (o->server_pid)
		proc_sample(o->server_pid, &before);
	double cpu0 = client_cpu_s();
	uint64_t t0 = mono_ns();
	if (engine_start(r) != 0) {
		print_errors(r);
		return 1;
	}
	bool all = wait_flag(r, offsetof(struct worker, connect_done), 86400, o->progress, "handshakes");
	uint64_t t1 = mono_ns();
	if (o->server_pid)
		proc_sample(o->server_pid, &after);
	double cpu1 = client_cpu_s();
	if (o->progress)
		printf("\r%60s\r", "");
	finish(r);

	struct hist h, th;
	hist_init(&h);
	hist_init(&th);
	for (int i = 0; i < r->nw; i++) {
		hist_add(&h, &r->w[i].connect_h);
		hist_add(&th, &r->w[i].tls_h);
	}
	int ok = (int)h.count, failed = c->handshakes - ok;
	double secs = (double)(t1 - t0) / 1e9, rate = secs > 0 ? ok / secs : 0;
	if (o->json) {
		printf("{\"tool\": \"zkbench\", \"mode\": \"handshakes\", \"label\": ");
		json_str(stdout, o->label ? o->label : "");
		printf(", \"servers\": ");
		json_servers(stdout, c);
		printf(", \"tls\": ");
		if (c->tls)
			json_str(stdout, tls_desc(r));
		else
			printf("null");
		printf(", \"connections\": %d, \"concurrency\": %d, \"threads\": %d, \"ok\": %d, "
		       "\"failed\": %d, \"total_s\": %.3f, \"per_s\": %.1f, \"connect_us\": ",
		       c->handshakes, c->sessions, c->threads, ok, failed, secs, rate);
		json_lat(stdout, &h);
		printf(", \"tls_us\": ");
		if (c->tls)
			json_lat(stdout, &th);
		else
			printf("null");
		printf(", \"client_cpu_s\": %.3f, \"server\": ", cpu1 - cpu0);
		json_server_stats(stdout, o->server_pid, &before, &after, (uint64_t)ok, secs);
		if (!all || failed) {
			char m[256] = "";
			for (int i = 0; i < r->nw && !m[0]; i++)
				snprintf(m, sizeof m, "%s", r->w[i].errmsg);
			printf(", \"error\": ");
			json_str(stdout, m[0] ? m : "not every connection got a session");
		}
		printf("}\n");
	} else {
		char v[5][32];
		printf("%d connections (%d at a time, %d thread%s)%s%s: %d sessions, %d failed in %.3f s "
		       "(%.0f connections/s)\n", c->handshakes, c->sessions, c->threads,
		       c->threads == 1 ? "" : "s", c->tls ? ", TLS " : ", plain TCP", tls_desc(r), ok,
		       failed, secs, rate);
		for (int k = 0; k < 2; k++) {
			const struct hist *x = k ? &th : &h;
			if (k && !c->tls)
				break;
			for (int i = 0; i < 4; i++)
				fmt_lat(v[i], sizeof v[i], hist_percentile(x, pcts[i]));
			fmt_lat(v[4], sizeof v[4], x->max);
			printf("  %-22s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
			       k ? "connect -> TLS done" : "connect -> session", v[0], v[1], v[2], v[3], v[4]);
		}
		if (o->server_pid && before.ok && after.ok)
			printf("  server pid %d: CPU %.2f s (%.0f%% of a core), %.1f us per connection\n",
			       o->server_pid, after.cpu_s - before.cpu_s,
			       (after.cpu_s - before.cpu_s) * 100 / secs,
			       ok ? (after.cpu_s - before.cpu_s) * 1e6 / ok : 0);
		printf("  client CPU %.2f s\n", cpu1 - cpu0);
		if (failed)
			print_errors(r);
	}
	return failed || !all ? 1 : 0;
}

static int run_load_mode(struct opts *o, struct run *r)
{
	const struct bench_cfg *c = &o->c;
	if (engine_start(r) != 0) {
		print_errors(r);
		return 1;
	}
	bool all = wait_flag(r, offsetof(struct worker, connect_done), c->connect_timeout_s + 30,
			     o->progress, "connecting");
	if (!all || sum_int(r, offsetof(struct worker, n_failed)) > 0) {
		if (o->progress)
			printf("\n");
		fprintf(stderr, "zkbench: not every session connected\n");
		print_errors(r);
		finish(r);
		return 1;
	}
	uint64_t now = mono_ns();
	r->t0 = now + 1000000u;
	r->t_ms = r->t0 + (uint64_t)(c->warmup_s * 1e9);
	r->t_me = r->t_ms + (uint64_t)(c->duration_s * 1e9);
	r->t_drain_end = r->t_me + (uint64_t)(c->drain_s * 1e9);
	set_phase(r, PH_RUN);

	struct proc_sample s0 = { 0 }, s1 = { 0 };
	bool sampled0 = false, sampled1 = false;
	double ccpu0 = 0, ccpu1 = 0;
	uint64_t next_prog = r->t0 + 1000000000u, last_done = 0, last_t = r->t0;
	while (count_flag(r, offsetof(struct worker, drained)) < r->nw && !interrupted) {
		now = mono_ns();
		if (!sampled0 && now >= r->t_ms) {
			if (o->server_pid)
				proc_sample(o->server_pid, &s0);
			ccpu0 = client_cpu_s();
			sampled0 = true;
		}
		if (!sampled1 && now >= r->t_me) {
			if (o->server_pid)
				proc_sample(o->server_pid, &s1);
			ccpu1 = client_cpu_s();
			sampled1 = true;
		}
		if (o->progress && now >= next_prog) {
			uint64_t done = sum_u64(r, offsetof(struct worker, done));
			uint64_t bl = sum_u64(r, offsetof(struct worker, backlog));
			const char *ph = now < r->t_ms ? "warm-up" : now < r->t_me ? "measuring" : "draining";
			double el = now < r->t_ms ? (double)(now - r->t0) / 1e9 : (double)(now - r->t_ms) / 1e9;
			printf("\r%-9s %6.1fs  %9.0f ops/s  %12" PRIu64 " done", ph, el,
			       (double)(done - last_done) * 1e9 / (double)(now - last_t), done);
			if (c->rate > 0)
				printf("  backlog %" PRIu64 "   ", bl);
			fflush(stdout);
			last_done = done;
			last_t = now;
			next_prog = now + 1000000000u;
		}
		uint64_t wake = now + 50000000u;
		if (!sampled0 && r->t_ms < wake)
			wake = r->t_ms;
		else if (!sampled1 && r->t_me < wake)
			wake = r->t_me;
		if (o->progress && next_prog < wake)
			wake = next_prog;
		sleep_until(wake);
	}
	if (!sampled1) {                    /* interrupted */
		if (o->server_pid)
			proc_sample(o->server_pid, &s1);
		ccpu1 = client_cpu_s();
	}
	if (o->progress)
		printf("\r%78s\r", "");
	finish(r);

	/* merge */
	struct hist all_h, per[OP_N];
	uint64_t errors[OP_N] = { 0 }, timeouts = 0, lost = 0;
	int first_err = 0, first_err_op = 0;
	hist_init(&all_h);
	for (int k = 0; k < OP_N; k++)
		hist_init(&per[k]);
	for (int i = 0; i < r->nw; i++) {
		struct worker *w = &r->w[i];
		for (int k = 0; k < OP_N; k++) {
			hist_add(&per[k], &w->h[k]);
			errors[k] += w->errors[k];
		}
		timeouts += w->timeouts;
		lost += w->lost;
		if (!first_err && w->first_err) {
			first_err = w->first_err;
			first_err_op = w->first_err_op;
		}
	}
	uint64_t total = 0, total_err = 0;
	for (int k = 0; k < OP_N; k++) {
		hist_add(&all_h, &per[k]);
		total += per[k].count;
		total_err += errors[k];
	}
	double secs = c->duration_s;
	double tput = (double)total / secs;

	if (o->json) {
		printf("{\"tool\": \"zkbench\", \"mode\": \"load\", \"label\": ");
		json_str(stdout, o->label ? o->label : "");
		printf(", \"config\": {\"servers\": ");
		json_servers(stdout, c);
		printf(", \"sessions\": %d, \"threads\": %d, \"depth\": %d, \"rate\": %.0f, \"mix\": ",
		       c->sessions, c->threads, c->depth, c->rate);
		json_str(stdout, o->mix_spec);
		printf(", \"value_size\": %d, \"keys\": %d, \"duration_s\": %.3f, \"warmup_s\": %.3f",
		       c->value_size, c->keys, c->duration_s, c->warmup_s);
		if (c->tls) {
			printf(", \"tls\": ");
			json_str(stdout, tls_desc(r));
		}
		printf("}");
		printf(", \"ops\": %" PRIu64 ", \"throughput\": %.1f, \"errors\": %" PRIu64
		       ", \"timeouts\": %" PRIu64 ", \"lost_sessions\": %" PRIu64 ", \"latency_us\": ",
		       total, tput, total_err, timeouts, lost);
		json_lat(stdout, &all_h);
		printf(", \"spectrum_us\": ");
		json_spectrum(stdout, &all_h);
		printf(", \"per_op\": {");
		int first = 1;
		for (int k = 0; k < OP_N; k++) {
			if (!per[k].count)
				continue;
			printf("%s\"%s\": {\"throughput\": %.1f, \"errors\": %" PRIu64 ", \"latency_us\": ",
			       first ? "" : ", ", op_names[k], (double)per[k].count / secs, errors[k]);
			json_lat(stdout, &per[k]);
			printf("}");
			first = 0;
		}
		printf("}, \"client_cpu_s\": %.3f, \"server\": ", ccpu1 - ccpu0);
		json_server_stats(stdout, o->server_pid, &s0, &s1, total, secs);
		if (first_err) {
			printf(", \"first_error\": ");
			char m[96];
			snprintf(m, sizeof m, "%s: %s", op_names[first_err_op], zk_err_name(first_err));
			json_str(stdout, m);
		}
		printf("}\n");
	} else {
		printf("%d session%s x depth %d, %d thread%s, %s, mix %s, %d B values, %d keys, "
		       "%.1f s measured after %.1f s warm-up\n",
		       c->sessions, c->sessions == 1 ? "" : "s", c->depth, c->threads,
		       c->threads == 1 ? "" : "s", c->rate > 0 ? "open loop" : "closed loop",
		       o->mix_spec, c->value_size, c->keys, c->duration_s, c->warmup_s);
		if (c->rate > 0)
			printf("target rate %g ops/s; latency counted from each op's due time\n", c->rate);
		if (c->tls)
			printf("TLS: %s\n", tls_desc(r));
		printf("%-9s %10s %11s %7s %9s %9s %9s %9s %9s\n", "op", "count", "ops/s", "errors",
		       "p50", "p90", "p99", "p99.9", "max");
		for (int k = 0; k <= OP_N; k++) {
			const struct hist *h = k < OP_N ? &per[k] : &all_h;
			if (k < OP_N && !h->count)
				continue;
			char v[5][32];
			for (int i = 0; i < 4; i++)
				fmt_lat(v[i], sizeof v[i], hist_percentile(h, pcts[i]));
			fmt_lat(v[4], sizeof v[4], h->max);
			printf("%-9s %10" PRIu64 " %11.0f %7" PRIu64 " %9s %9s %9s %9s %9s\n",
			       k < OP_N ? op_names[k] : "all", h->count, (double)h->count / secs,
			       k < OP_N ? errors[k] : total_err, v[0], v[1], v[2], v[3], v[4]);
		}
		if (timeouts)
			printf("%" PRIu64 " ops unanswered at the drain deadline (counted above with the "
			       "latency they had reached)\n", timeouts);
		if (first_err)
			printf("first error: %s: %s\n", op_names[first_err_op], zk_err_name(first_err));
		if (o->server_pid && s0.ok && s1.ok) {
			double cpu = s1.cpu_s - s0.cpu_s;
			printf("server pid %d: CPU %.2f s (%.0f%% of a core), %.2f us per op, RSS %ld KiB\n",
			       o->server_pid, cpu, cpu * 100 / secs, total ? cpu * 1e6 / (double)total : 0,
			       s1.rss_kb);
		}
		printf("client CPU %.2f s (%.0f%% of a core)\n", ccpu1 - ccpu0, (ccpu1 - ccpu0) * 100 / secs);
	}
	if (lost)
		print_errors(r);
	return lost || timeouts || interrupted ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_args(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	if (o.write_probe)
		return write_probe(&o.c, &o.probe);

	struct bench_cfg *c = &o.c;
	raise_nofile(c->sessions + 64);
	struct sigaction sa = { .sa_handler = on_sigint };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct run r = { .cfg = c, .storm = c->connect_storm > 0, .handshakes = c->handshakes > 0 };
	int cum = 0;
	for (int i = 0; i < OP_N_MIX; i++) {
		cum += c->mix[i];
		r.mix_cum[i] = cum;
	}
	r.mix_total = cum;
	char **keys = NULL;
	uint8_t *value = NULL;
	int rc = 1;
	if (!r.storm && !r.handshakes) {
		keys = calloc((size_t)c->keys, sizeof *keys);
		value = malloc((size_t)c->value_size + 1);
		if (!keys || !value) {
			fprintf(stderr, "zkbench: out of memory\n");
			goto out;
		}
		/* Printable and not all one byte, so nothing on the path can
		 * shortcut or compress it. */
		for (int i = 0; i < c->value_size; i++)
			value[i] = (uint8_t)('a' + (i * 7 + i / 26) % 26);
		for (int i = 0; i < c->keys; i++) {
			keys[i] = malloc(BENCH_PATH_MAX);
			if (!keys[i]) {
				fprintf(stderr, "zkbench: out of memory\n");
				goto out;
			}
			snprintf(keys[i], BENCH_PATH_MAX, "%s/k%07d", c->root, i);
		}
		r.key_paths = (const char *const *)keys;
		r.value = value;
		if (setup_nodes(c, keys, value) != 0)
			goto out;
	}
	r.nw = c->threads;
	r.w = calloc((size_t)r.nw, sizeof *r.w);
	if (!r.w) {
		fprintf(stderr, "zkbench: out of memory\n");
		goto out;
	}
	for (int i = 0; i < r.nw; i++) {
		r.w[i].id = i;
		r.w[i].run = &r;
		r.w[i].first_sess = (int)((long)c->sessions * i / r.nw);
		r.w[i].nsess = (int)((long)c->sessions * (i + 1) / r.nw) - r.w[i].first_sess;
	}
	rc = r.handshakes ? run_handshakes(&o, &r) : r.storm ? run_storm(&o, &r) : run_load_mode(&o, &r);
	if (!r.storm && !r.handshakes && o.cleanup)
		teardown_nodes(c);
out:
	free(r.w);
	if (keys)
		for (int i = 0; i < c->keys; i++)
			free(keys[i]);
	free(keys);
	free(value);
	if (c->tls)
		SSL_CTX_free(c->tls);
	return rc;
}
