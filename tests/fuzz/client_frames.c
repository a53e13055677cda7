/*
 * client_frames.c - fuzz target: client frames after the handshake, through
 * the server's own request path (processors/readpath.c on_frame: decode,
 * reads served in place, parking behind writes; Prep's checks and txn
 * building; Final's apply and replies; watches and their events). See
 * lib/client_harness.h for the seam: net/'s loop and the stage threads are
 * replaced, nothing of processors/ or storage/ is.
 *
 * Input: byte 0 = options, then the client's byte stream after the
 * ConnectRequest (which the harness sends itself), framed as on the wire
 * (int32 length + request header + body, repeated).
 *   bits 0-1  pump the pipeline after every 1, 2 or 8 frames, or only when
 *             the connection pauses (3): replies arrive later, so reads
 *             park behind writes
 *   bit 2     extendedTypesEnabled (TTL nodes)
 *   bit 3     superDigest set (for super:pw)
 *   bit 4     jute.maxbuffer 4096 instead of 0xfffff
 *   bit 5     globalOutstandingLimit 2 (throttling)
 *   bit 6     resume the harness's session (owner of /eph) instead of a new one
 *   bit 7     read-only session: the server has no quorum, readonlymode on
 */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/lib/client_harness.h"
#include "tests/fuzz/lib/fake_net.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	harness_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t f = data[0];
	static const int batches[] = { 1, 2, 8, 0 };
	bool read_only = f & 0x80;
	struct harness_opts o = {
		.max_buffer = f & 0x10 ? 4096 : JUTE_DEFAULT_MAXBUFFER,
		.extended_types = f & 0x04,
		.super_digest = f & 0x08,
		.outstanding_limit = f & 0x20 ? 2 : 1000,
		.serving = !read_only,
		.read_only = read_only,
		.min_timeout = 4000,
		.max_timeout = 40000,
	};
	harness_begin(&o);
	struct net_conn *c = fake_net_open(HARNESS_PEER, NULL);
	uint8_t hello[64];
	bool resume = f & 0x40;
	size_t n = harness_connect_frame(hello, sizeof hello, resume ? HARNESS_SESSION : 0, resume, 30000, read_only);
	harness_feed(c, hello, n, 1);
	harness_feed(c, data + 1, size - 1, batches[f & 3]);
	harness_end();
	return 0;
}
