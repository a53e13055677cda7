/*
 * quorum.c - fuzz target: what a server reads on the quorum port.
 *
 * The input is the byte stream a peer sends: QuorumPackets read with
 * qp_read (election/qpacket.c) from a real socket (a socketpair this target
 * writes the input into and then shuts down, so the qstream sees the bytes
 * and then end-of-stream), handled as a learner handles them: the data of a
 * PROPOSAL or INFORM goes through txn_decode (storage/txncodec.c), and a
 * SNAP packet is followed on the same stream by the snapshot, read with
 * snapstream_read (storage/snapstream.c) exactly as election/peer.c does.
 * Checks: a packet's buffers are as qpacket.h says (NULL data for a null
 * or empty buffer; auth is a well-formed vector<Id>).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <urcu.h>

#include "election/qpacket.h"
#include "storage/snapstream.h"
#include "storage/tree.h"
#include "storage/txncodec.h"

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                         \
		}                                                                        \
	} while (0)

#define MAX_PACKETS 256

static struct qstream stream;   /* 64 KiB of buffer: not on the stack */

static ssize_t pull(void *arg, void *buf, size_t len)
{
	return qstream_read(arg, buf, len) == 0 ? (ssize_t)len : -1;
}

static void on_session(void *arg, int64_t id, int32_t timeout)
{
	(void)arg;
	(void)id;
	(void)timeout;
}

static void check_packet(const struct qpacket *p)
{
	CHECK(p->len >= -1);
	CHECK((p->data == NULL) == (p->len <= 0));
	if (!p->auth) {
		CHECK(p->auth_len == 0);
		return;
	}
	struct jute_reader r;
	jute_reader_init(&r, p->auth, p->auth_len, p->auth_len);
	int32_t n = jute_read_count(&r, 8);
	CHECK(jute_ok(&r) && n > 0);
	for (int32_t i = 0; i < n; i++) {
		jute_read_buffer(&r);
		jute_read_buffer(&r);
	}
	CHECK(jute_ok(&r) && jute_remaining(&r) == 0);
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
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		perror("socketpair");
		abort();
	}
	int sndbuf = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	/* what does not fit the socket's buffer is cut (the input bound keeps
	 * this rare); the reader sees end-of-stream after it */
	size_t off = 0;
	while (off < size) {
		ssize_t n = send(sv[0], data + off, size - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[0], SHUT_WR);

	/* the bound a learner reads with: jute.maxbuffer */
	qstream_init(&stream, sv[1], 1000, JUTE_DEFAULT_MAXBUFFER);
	for (int i = 0; i < MAX_PACKETS; i++) {
		struct qpacket p;
		if (qp_read(&stream, &p) != 0)
			break;
		check_packet(&p);
		(void)qp_name(p.type);
		bool stop = false;
		switch (p.type) {
		case QP_PROPOSAL:
		case QP_INFORM: {
			struct ztxn t;
			char err[256];
			if (txn_decode(p.data, p.len > 0 ? (size_t)p.len : 0, &t, err, sizeof err) == 0)
				ztxn_clear(&t);
			break;
		}
		case QP_SNAP: {
			struct ztree *tree = NULL;
			char err[512];
			if (snapstream_read(pull, &stream, JUTE_DEFAULT_MAXBUFFER, on_session, NULL, &tree, err,
					    sizeof err) == 0) {
				CHECK(tree != NULL);
				tree_free(tree);
			} else {
				CHECK(tree == NULL);
				stop = true;   /* the learner gives up on this leader */
			}
			break;
		}
		default:
			break;
		}
		qp_free(&p);
		if (stop)
			break;
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}
