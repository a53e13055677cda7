/*
 * server.h - the public face of server/: one running zkd and what the
 * operator-facing parts (four-letter words) need to describe it.
 */
#ifndef ZKD_SERVER_SERVER_H
#define ZKD_SERVER_SERVER_H

#include <stdint.h>

#include "config.h"
#include "net/net.h"
#include "processors/processors.h"

#define ZKD_VERSION "3.8.0-zkd-0.1"

struct zkd_server {
	struct zkd_config cfg;      /* read-only once started */
	struct zk_state st;
	int64_t started_ms;         /* wall clock */
	struct quorum *quorum;      /* NULL standalone (election/election.h) */
};

/* The four-letter-word handler for net's on_4lw (ctx = struct zkd_server *). */
void fourlw_handle(void *ctx, struct net_conn *c, const char cmd[4]);
/* Writes the answer to `cmd` into out; returns its length (tests use it). */
size_t fourlw_answer(struct zkd_server *srv, const char *cmd, char *out, size_t cap);

#endif
