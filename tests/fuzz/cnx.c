/*
 * cnx.c - fuzz target: the election port's input (election/cnxmgr.c): the
 * connection handshake an incoming peer sends (parse_handshake: protocol
 * version, sid, '|'-separated election addresses) and the length-framed
 * messages after it (conn_parse), each delivered message decoded as the
 * election thread does (fle_decode).
 *
 * The functions are static, so this file includes cnxmgr.c itself (no test
 * seam needed in the source). Both run on an in-memory connection (fd -1):
 * parse_handshake is pure; conn_parse is driven in the CONN_UP state, where
 * it only frames, delivers and, on a bad length, closes. The handshake's
 * follow-up (handshake_done) connects back to peers, so it is not run.
 *
 * Input: byte 0 picks the mode (bit 0: also feed the messages in chunks of
 * (byte 0 >> 1) + 1 bytes, as recv hands them over), the rest is the stream.
 * Checks: parse_handshake gives the same answer for every prefix of the
 * input, "more" until it has all it needs; a connection that conn_parse
 * keeps holds only an incomplete message; every message delivered is inside
 * the input, in order, and within CNX_MAX_MESSAGE.
 */
#include "election/cnxmgr.c"

#include "election/fle.h"

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                         \
		}                                                                        \
	} while (0)

static struct cnxmgr *cm;
static size_t delivered;            /* bytes of messages (with prefixes) so far */

static void deliver(void *arg, int64_t sid, const uint8_t *msg, size_t len)
{
	(void)arg;
	CHECK(sid == 2);
	CHECK(len >= 1 && len <= CNX_MAX_MESSAGE);
	delivered += 4 + len;
	struct fle_notification n;
	char why[200];
	(void)fle_decode(msg, len, &n, NULL, NULL, why, sizeof why);
}

static enum hs_result handshake(const uint8_t *p, size_t len, int64_t *sid, char *host, int *port, size_t *used)
{
	struct cnx_conn c = { .st = CONN_HANDSHAKE, .fd = -1 };
	c.in = malloc(len ? len : 1);   /* exact: ASan sees over-reads */
	CHECK(c.in != NULL);
	memcpy(c.in, p, len);
	c.in_len = c.in_cap = len;
	char why[160];
	*used = 0;
	enum hs_result r = parse_handshake(&c, sid, host, 256, port, used, why, sizeof why);
	free(c.in);
	return r;
}

static void fuzz_handshake(const uint8_t *p, size_t len)
{
	int64_t sid = 0;
	char host[256];
	int port;
	size_t used;
	enum hs_result all = handshake(p, len, &sid, host, &port, &used);
	if (all == HS_DONE) {
		CHECK(used <= len && used >= 8);
		CHECK(strlen(host) < sizeof host);
		CHECK(port >= 0 && port <= 65535);
	}
	/* the prefixes recv may have delivered first */
	size_t step = len > 64 ? len / 32 : 1;
	for (size_t k = 0; k < len; k += step) {
		int64_t s2 = 0;
		char h2[256];
		int p2;
		size_t u2;
		enum hs_result r = handshake(p, k, &s2, h2, &p2, &u2);
		if (all == HS_DONE && k >= used) {
			CHECK(r == HS_DONE && s2 == sid && u2 == used && p2 == port && strcmp(h2, host) == 0);
		} else if (all == HS_DONE) {
			CHECK(r == HS_MORE);
		} else {
			CHECK(r == HS_MORE || r == all);
		}
	}
}

static void fuzz_messages(const uint8_t *p, size_t len, size_t chunk)
{
	struct cnx_peer *peer = &cm->peers[0];
	struct cnx_conn *c = &cm->conns[0];
	memset(c, 0, sizeof *c);
	c->st = CONN_UP;
	c->fd = -1;
	c->peer = peer;
	peer->used = true;
	peer->sid = 2;
	peer->conn = c;
	delivered = 0;
	size_t off = 0;
	bool open = true;
	while (off < len && open) {
		size_t n = len - off < chunk ? len - off : chunk;
		/* as conn_read: room for what is wanted, then the bytes */
		size_t want = conn_wanted(c);
		if (want < c->in_len + n)
			want = c->in_len + n;
		CHECK(reserve(&c->in, &c->in_cap, want));
		memcpy(c->in + c->in_len, p + off, n);
		c->in_len += n;
		off += n;
		open = conn_parse(cm, c);
		if (open) {
			CHECK(c->st == CONN_UP);
			CHECK(delivered + c->in_len == off);
			/* what is kept is less than one whole message */
			if (c->in_len >= 4) {
				int32_t l = (int32_t)get_be32(c->in);
				CHECK(l > 0 && l <= CNX_MAX_MESSAGE && c->in_len < 4 + (size_t)l);
			}
		} else {
			CHECK(c->st == CONN_FREE && c->in == NULL);
		}
	}
	if (open) {
		free(c->in);
		c->in = NULL;
		c->in_len = c->in_cap = 0;
	}
	c->st = CONN_FREE;
	peer->conn = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cm = calloc(1, sizeof *cm);
	CHECK(cm != NULL);
	pthread_mutex_init(&cm->mu, NULL);
	cm->deliver = deliver;
	cm->listen_fd = -1;
	cm->wake_fd = -1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	const uint8_t *p = data + 1;
	size_t len = size - 1;
	fuzz_handshake(p, len);
	fuzz_messages(p, len, len ? len : 1);
	if (mode & 1)
		fuzz_messages(p, len, (size_t)(mode >> 1) + 1);
	return 0;
}
