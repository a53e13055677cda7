/*
 * snapstream.c - fuzz target: snapstream_read (storage/snapstream.c), the
 * SNAP sync stream a learner reads from its leader (snapshot body through
 * snapbody.c's parser into a new tree, then the "BenWasHere" signature),
 * from a memory pull callback.
 *
 * The first input byte picks the bound (jute.maxbuffer: the default, or a
 * small one) and how the pull callback hands out bytes; the rest is the
 * stream. Checks: a stream that loads writes back out (snapstream_write)
 * into a stream that loads again with the same nodes and sessions, and
 * that second read stops exactly at the end of the signature (the next
 * QuorumPacket must stay in the socket).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>

#include "storage/snapstream.h"
#include "storage/tree.h"

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                         \
		}                                                                        \
	} while (0)

struct src {
	const uint8_t *p;
	size_t len, off;
	bool fail_short;        /* a short read fails (a socket that closed) */
};

static ssize_t pull(void *arg, void *buf, size_t len)
{
	struct src *s = arg;
	if (len > s->len - s->off) {
		if (s->fail_short)
			return -1;
		/* a source that returns what it has: anything but len is failure */
		size_t n = s->len - s->off;
		memcpy(buf, s->p + s->off, n);
		s->off += n;
		return (ssize_t)n;
	}
	memcpy(buf, s->p + s->off, len);
	s->off += len;
	return (ssize_t)len;
}

struct sessions {
	struct snap_session v[64];
	size_t n;
};

static void on_session(void *arg, int64_t id, int32_t timeout)
{
	struct sessions *s = arg;
	if (s->n < 64)
		s->v[s->n++] = (struct snap_session){ id, timeout };
}

static void roundtrip(struct ztree *tree, const struct sessions *ss, size_t max)
{
	struct jute_writer w;
	jute_writer_init(&w, 4096);
	char err[512];
	CHECK(snapstream_write(&w, tree, INT64_MAX, ss->v, ss->n, NULL, NULL, err, sizeof err) == 0);
	/* what follows on the socket (the next QuorumPacket) must stay there */
	jute_write_int(&w, 0x7f7f7f7f);
	CHECK(w.err == JUTE_OK);
	struct src s = { w.buf, w.len, 0, true };
	struct ztree *again = NULL;
	struct sessions ss2 = { .n = 0 };
	if (snapstream_read(pull, &s, max, on_session, &ss2, &again, err, sizeof err) != 0) {
		fprintf(stderr, "a SNAP stream zkd wrote does not read back: %s\n", err);
		abort();
	}
	CHECK(s.off == s.len - 4);
	CHECK(atomic_load(&again->node_count) == atomic_load(&tree->node_count));
	CHECK(ss2.n == ss->n);
	tree_free(again);
	jute_writer_free(&w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	rcu_register_thread();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size_t max = mode & 1 ? 64 : 0;
	struct src s = { data + 1, size - 1, 0, (mode & 2) != 0 };
	struct ztree *tree = NULL;
	struct sessions ss = { .n = 0 };
	char err[512];
	int rc = snapstream_read(pull, &s, max, on_session, &ss, &tree, err, sizeof err);
	CHECK(s.off <= s.len);
	if (rc != 0) {
		CHECK(tree == NULL);
		return 0;
	}
	CHECK(tree != NULL);
	if (!(mode & 4) && ss.n < 64)
		roundtrip(tree, &ss, max);
	tree_free(tree);
	return 0;
}
