/*
 * txn.c - fuzz target: txn_decode (storage/txncodec.c), the decoder of a
 * PROPOSAL's or INFORM's data on a follower and of every txn log record.
 *
 * A txn that decodes must encode again (txn_encode refuses only what
 * decoding cannot produce), and that encoding must decode to the same txn.
 * It is then applied to a small tree, as a follower's Final applies it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>

#include "net/records.h"
#include "storage/tree.h"
#include "storage/txn.h"
#include "storage/txncodec.h"

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                         \
		}                                                                        \
	} while (0)

static bool bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* What decode -> encode -> decode must keep. A top-level check comes back
 * as a multi holding it (txncodec.h), and the top-level op of a create2 as
 * create. */
static void same_txn(const struct ztxn *a, const struct ztxn *b, bool top)
{
	CHECK(a->session_id == b->session_id && a->cxid == b->cxid && a->zxid == b->zxid && a->time == b->time);
	if (top && a->type == ZOP_CHECK) {
		CHECK(b->type == ZOP_MULTI && b->n_sub == 1);
		same_txn(a, &b->sub[0], false);
		return;
	}
	CHECK(a->type == b->type);
	if (!top)
		CHECK(a->op == b->op);
	CHECK(a->err == b->err);
	CHECK((a->path == NULL) == (b->path == NULL));
	if (a->path) {
		CHECK(strlen(a->path) == a->path_len);
		CHECK(bytes_eq(a->path, a->path_len, b->path, b->path_len));
	}
	CHECK(a->data_len == b->data_len);
	if (a->data_len > 0)
		CHECK(memcmp(a->data, b->data, (size_t)a->data_len) == 0);
	CHECK(bytes_eq(a->acl, a->acl_len, b->acl, b->acl_len));
	CHECK(a->ephemeral_owner == b->ephemeral_owner);
	CHECK(a->parent_cversion == b->parent_cversion && a->version == b->version && a->timeout == b->timeout);
	CHECK(a->n_close_paths == b->n_close_paths);
	for (int i = 0; i < a->n_close_paths; i++)
		CHECK(strcmp(a->close_paths[i], b->close_paths[i]) == 0);
	CHECK(a->n_sub == b->n_sub);
	for (int i = 0; i < a->n_sub; i++)
		same_txn(&a->sub[i], &b->sub[i], false);
}

static void apply(struct ztxn *t)
{
	/* recovery's mapping of the types txn_apply does not know */
	if (t->type == ZOP_DELETECONTAINER)
		t->type = ZOP_DELETE;
	if (t->type == ZOP_RECONFIG)
		return;
	struct ztree *tree = tree_new();
	CHECK(tree != NULL);
	rcu_read_lock();
	tree_init_system_nodes(tree);
	struct zk_stat stat;
	struct zk_stat multi[64];
	txn_apply(tree, t, &stat, t->n_sub <= 64 ? multi : NULL);
	rcu_read_unlock();
	tree_free(tree);
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
	/* an exact copy: ASan sees any read past the record */
	uint8_t *p = malloc(size ? size : 1);
	CHECK(p != NULL);
	memcpy(p, data, size);
	struct ztxn t;
	char err[256];
	if (txn_decode(p, size, &t, err, sizeof err) != 0) {
		free(p);
		return 0;
	}
	free(p);   /* a decoded txn owns everything it points to */

	struct jute_writer w;
	jute_writer_init(&w, 128);
	if (txn_encode(&w, &t, err, sizeof err) != 0) {
		fprintf(stderr, "a decoded txn (type %d) does not encode: %s\n", t.type, err);
		abort();
	}
	size_t len;
	uint8_t *q = jute_writer_take(&w, &len);
	CHECK(q != NULL);
	struct ztxn u;
	if (txn_decode(q, len, &u, err, sizeof err) != 0) {
		fprintf(stderr, "a re-encoded txn (type %d) does not decode: %s\n", t.type, err);
		abort();
	}
	same_txn(&t, &u, true);
	free(q);
	ztxn_clear(&u);

	apply(&t);
	ztxn_clear(&t);
	return 0;
}
