/*
 * connect.c - fuzz target: the connect handshake (processors/readpath.c
 * handle_connect: ConnectRequest decode, lastZxidSeen check, timeout clamp,
 * new session through Prep and Final, resume with id + password, a
 * learner's revalidation, read-only sessions) on a fresh connection, then
 * whatever frames follow. Same seam as client_frames (lib/client_harness.h).
 *
 * Input: bytes 0-1 = options, then the client's byte stream from its first
 * byte: frames as on the wire, the first being the ConnectRequest.
 *   bit 0  the server has a quorum (serving)
 *   bit 1  readonlymode: without a quorum, read-only sessions are served
 *   bit 2  role follower: a resumed session is revalidated with the leader
 *   bit 3  ... who says the session is valid
 *   bit 4  min = max session timeout (10 s) instead of [4 s, 40 s]
 *   bit 5  first another connection resumes the harness's session (the
 *          fuzzed one may take it over: the old one is told to close)
 *   bits 6-7  pump after every 1, 2 or 8 frames, or only at pauses
 * byte 1 = more options:
 *   bit 0  a TLS connection with a client certificate (HARNESS_X509)
 *   bit 1  ... which is the x509 superUser
 * The harness's session is HARNESS_SESSION with session_password(id).
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
	if (size < 2)
		return 0;
	uint8_t f = data[0], g = data[1];
	static const int batches[] = { 1, 2, 8, 0 };
	struct harness_opts o = {
		.max_buffer = JUTE_DEFAULT_MAXBUFFER,
		.serving = f & 0x01,
		.read_only = f & 0x02,
		.learner = f & 0x04,
		.revalidate_ok = f & 0x08,
		.outstanding_limit = 1000,
		.min_timeout = f & 0x10 ? 10000 : 4000,
		.max_timeout = f & 0x10 ? 10000 : 40000,
		.x509_super = g & 0x02,
	};
	harness_begin(&o);
	if (f & 0x20) {
		struct net_conn *first = fake_net_open("127.0.0.1:40001", NULL);
		uint8_t hello[64];
		size_t n = harness_connect_frame(hello, sizeof hello, HARNESS_SESSION, true, 20000, !o.serving);
		harness_feed(first, hello, n, 1);
	}
	struct net_conn *c = fake_net_open(HARNESS_PEER, g & 0x01 ? HARNESS_X509 : NULL);
	harness_feed(c, data + 2, size - 2, batches[f >> 6]);
	harness_end();
	return 0;
}
