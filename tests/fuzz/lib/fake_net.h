/*
 * fake_net.h - net/'s connection API (net.h) without sockets or threads, for
 * the fuzz targets that drive processors/'s client callbacks.
 *
 * It implements every net_* function processors/ calls, for connections
 * that live in memory on the calling thread (which plays I/O thread 0).
 * What the real loop guarantees is kept: callbacks run on one thread,
 * net_post queues a message that fake_net_run delivers afterwards (with a
 * NULL connection once the addressee is gone), net_conn_close makes the
 * connection stop reading and on_close follows, output is frames.
 * fake_net_run also checks what was written: the output must be whole,
 * well-formed frames (a length prefix that matches), or it aborts.
 */
#ifndef ZKD_FUZZ_FAKE_NET_H
#define ZKD_FUZZ_FAKE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

void fake_net_init(const struct net_callbacks *cb);
/* A new connection (on_open has run); x509_subject non-NULL: a TLS
 * connection whose client certificate has that subject. */
struct net_conn *fake_net_open(const char *peer, const char *x509_subject);
/* True while frames may still be handed to c (open, not closing). */
bool fake_net_reading(const struct net_conn *c);
bool fake_net_paused(const struct net_conn *c);
/* Hands one frame to on_frame, closing c if it refuses. */
void fake_net_frame(struct net_conn *c, const uint8_t *p, size_t len);
/* Feeds a byte stream the way the loop frames it (4-byte length, bounded
 * by max_frame; a bad length closes the connection). Returns the bytes
 * consumed. Stops early when c stops reading or is paused, or after
 * max_frames frames (0 = no limit). */
size_t fake_net_feed(struct net_conn *c, const uint8_t *p, size_t len, uint32_t max_frame, int max_frames);
/* One loop turn: delivers posted messages, runs on_idle, checks and drops
 * the output, and finishes connections that are closing (on_close). */
void fake_net_run(void);
/* Closes every connection (on_close) and delivers what is still posted. */
void fake_net_shutdown(void);

#endif
