/*
 * fle_probe.c - zkd's leader election alone, as one member of an ensemble,
 * so that it can vote with real ZooKeeper servers (test_fle_interop.sh).
 *
 *   fle_probe [-f finalize_ms] [-m max_interval_ms] MYID LAST_ZXID EPOCH STAY_SECONDS SERVER...
 *     SERVER = sid=host:quorumPort:electionPort[:observer]
 *     LAST_ZXID and EPOCH in C notation (0x... for hex)
 *
 * It starts the election (fle_start), runs one election (fle_lookup) and
 * prints the result on one line of stdout:
 *
 *   leader=2 zxid=0x100000000 epoch=1 round=0x1 state=FOLLOWING
 *
 * then stays in that state, answering other servers' notifications, for
 * STAY_SECONDS, and exits 0 (1 on bad arguments or a failed start). It
 * never opens the quorum port: a server that follows it finds nobody there,
 * which is fine, only the vote matters. The log goes to stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "election/fle.h"
#include "net/log.h"

static const char *state_name(int32_t s)
{
	switch (s) {
	case PEER_FOLLOWING: return "FOLLOWING";
	case PEER_LEADING: return "LEADING";
	case PEER_OBSERVING: return "OBSERVING";
	default: return "LOOKING";
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: fle_probe [-f finalize_ms] [-m max_interval_ms] MYID LAST_ZXID EPOCH "
			"STAY_SECONDS sid=host:quorumPort:electionPort[:observer]...\n");
	return 1;
}

static bool parse_i64(const char *s, int64_t *v)
{
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 0);
	if (errno || end == s || *end)
		return false;
	*v = x;
	return true;
}

/* "sid=host:qport:eport[:observer]" (IPv6 hosts in brackets) into m. */
static bool parse_server(const char *arg, struct quorum_member *m)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", arg);
	char *eq = strchr(buf, '=');
	if (!eq)
		return false;
	*eq = '\0';
	memset(m, 0, sizeof *m);
	if (!parse_i64(buf, &m->sid))
		return false;
	char *host = eq + 1, *rest;
	if (*host == '[') {
		char *close = strchr(host, ']');
		if (!close || close[1] != ':')
			return false;
		*close = '\0';
		host++;
		rest = close + 2;
	} else {
		char *colon = strchr(host, ':');
		if (!colon)
			return false;
		*colon = '\0';
		rest = colon + 1;
	}
	snprintf(m->host, sizeof m->host, "%s", host);
	char role[32] = "";
	if (sscanf(rest, "%d:%d:%31s", &m->quorum_port, &m->election_port, role) < 2)
		return false;
	if (role[0] && strcmp(role, "observer") != 0 && strcmp(role, "participant") != 0)
		return false;
	m->observer = strcmp(role, "observer") == 0;
	return m->quorum_port > 0 && m->quorum_port < 65536 && m->election_port > 0 && m->election_port < 65536;
}

int main(int argc, char **argv)
{
	struct quorum_config cfg = {
		.tick_time = 2000, .init_limit = 10, .sync_limit = 5, .election_bind_retries = 3,
		.finalize_wait_ms = 200, .max_notification_interval_ms = 2000,
	};
	int opt;
	while ((opt = getopt(argc, argv, "f:m:")) != -1) {
		if (opt == 'f')
			cfg.finalize_wait_ms = atoi(optarg);
		else if (opt == 'm')
			cfg.max_notification_interval_ms = atoi(optarg);
		else
			return usage();
	}
	int64_t zxid, epoch, stay;
	if (argc - optind < 5 || !parse_i64(argv[optind], &cfg.myid) || !parse_i64(argv[optind + 1], &zxid) ||
	    !parse_i64(argv[optind + 2], &epoch) || !parse_i64(argv[optind + 3], &stay))
		return usage();
	for (int i = optind + 4; i < argc; i++) {
		if (cfg.n == QUORUM_MAX_MEMBERS || !parse_server(argv[i], &cfg.members[cfg.n])) {
			fprintf(stderr, "fle_probe: bad server '%s'\n", argv[i]);
			return usage();
		}
		cfg.n++;
	}
	log_thread_name("fle-probe");
	char err[256];
	struct fle *f = fle_start(&cfg, err, sizeof err);
	if (!f) {
		fprintf(stderr, "fle_probe: %s\n", err);
		return 1;
	}
	struct fle_vote v;
	if (fle_lookup(f, zxid, epoch, &v) != 0) {
		fle_stop(f);
		return 1;
	}
	printf("leader=%" PRId64 " zxid=0x%" PRIx64 " epoch=%" PRId64 " round=0x%" PRIx64 " state=%s\n", v.leader,
	       (uint64_t)v.zxid, v.peer_epoch, (uint64_t)v.election_epoch, state_name(v.state));
	fflush(stdout);
	struct timespec ts = { .tv_sec = (time_t)stay };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	fle_stop(f);
	return 0;
}
