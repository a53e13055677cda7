/*
 * fle.c - fuzz target: fle_decode (election/fle.c), a Fast Leader Election
 * notification as it arrives from a peer (the 28-byte, 40-byte and
 * versioned forms).
 *
 * Checks: the configuration text returned lies inside the message, and a
 * notification that decodes encodes (fle_encode, the version-2 form zkd
 * sends) into one that decodes to the same vote and configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "election/fle.h"

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                         \
		}                                                                        \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *msg = malloc(size ? size : 1);   /* exact: ASan sees over-reads */
	CHECK(msg != NULL);
	memcpy(msg, data, size);
	struct fle_notification n;
	const uint8_t *config;
	size_t config_len;
	char why[200];
	memset(&n, 0, sizeof n);
	if (fle_decode(msg, size, &n, &config, &config_len, why, sizeof why) != 0) {
		free(msg);
		return 0;
	}
	/* without the config pointers too, as the election thread calls it */
	struct fle_notification n2;
	memset(&n2, 0, sizeof n2);
	CHECK(fle_decode(msg, size, &n2, NULL, NULL, why, sizeof why) == 0);
	CHECK(memcmp(&n, &n2, sizeof n) == 0);
	if (config) {
		CHECK(n.version > 1);
		CHECK(config >= msg && config + config_len <= msg + size);
	} else {
		CHECK(config_len == 0);
	}

	size_t cap = FLE_MSG_HEADER + config_len;
	uint8_t *out = malloc(cap);
	CHECK(out != NULL);
	size_t len = fle_encode(&n, (const char *)config, config_len, out, cap);
	CHECK(len == cap);
	struct fle_notification m;
	const uint8_t *config2;
	size_t config2_len;
	memset(&m, 0, sizeof m);
	CHECK(fle_decode(out, len, &m, &config2, &config2_len, why, sizeof why) == 0);
	CHECK(m.state == n.state && m.leader == n.leader && m.zxid == n.zxid &&
	      m.election_epoch == n.election_epoch && m.peer_epoch == n.peer_epoch);
	CHECK(m.version == FLE_MSG_VERSION);
	CHECK(config2_len == config_len);
	CHECK(config_len == 0 || memcmp(config2, config, config_len) == 0);
	free(out);
	free(msg);
	return 0;
}
