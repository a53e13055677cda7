/*
 * recent.c - the last txns this server applied, as PROPOSALs carry them
 * (ZooKeeper's committedLog in ZKDatabase, kept on every server).
 *
 * A server that becomes leader syncs learners that are a little behind
 * with a DIFF of these instead of a snapshot, and it has them at once: no
 * reading back the txn log in the middle of a failover.
 *
 * Final appends (it applies txns in zxid order, so the ring is contiguous);
 * the peer thread resets it when the tree is replaced and reads it when it
 * starts to lead. `lock` is taken once per Final batch and once per role
 * change, so it is never contended on the hot path.
 */
#include <stdlib.h>
#include <string.h>

#include "processors.h"
#include "recent.h"

#define RECENT_MAX 500               /* ZooKeeper's commitLogCount default */

struct recent_txn {
	int64_t zxid;
	uint8_t *data;
	size_t len;
};

static struct {
	pthread_mutex_t lock;
	struct recent_txn v[RECENT_MAX]; /* ring */
	int head, n;
} recent = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct recent_txn *at(int i)
{
	return &recent.v[(recent.head + i) % RECENT_MAX];
}

static void clear_locked(void)
{
	for (int i = 0; i < recent.n; i++)
		free(at(i)->data);
	recent.head = recent.n = 0;
}

void recent_add(int64_t zxid, const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, data, len);
	pthread_mutex_lock(&recent.lock);
	if (recent.n && at(recent.n - 1)->zxid >= zxid)
		clear_locked();   /* not contiguous any more: start again */
	if (recent.n == RECENT_MAX) {
		free(at(0)->data);
		recent.head = (recent.head + 1) % RECENT_MAX;
		recent.n--;
	}
	*at(recent.n++) = (struct recent_txn){ zxid, copy, len };
	pthread_mutex_unlock(&recent.lock);
}

void processors_recent_reset(void)
{
	pthread_mutex_lock(&recent.lock);
	clear_locked();
	pthread_mutex_unlock(&recent.lock);
}

int processors_recent_each(int64_t upto, void (*fn)(void *arg, int64_t zxid, const uint8_t *data, size_t len),
			   void *arg)
{
	int n = 0;
	pthread_mutex_lock(&recent.lock);
	for (int i = 0; i < recent.n; i++) {
		if (at(i)->zxid > upto)
			break;
		fn(arg, at(i)->zxid, at(i)->data, at(i)->len);
		n++;
	}
	pthread_mutex_unlock(&recent.lock);
	return n;
}

/* ---- the digest log ---------------------------------------------------------
 *
 * ZooKeeper's DataTree.digestLog: the tree digest after every txn whose
 * zxid is a multiple of 128, the last 1024 of them, which the `hash`
 * command prints so that operators can compare servers at the same zxids.
 * Final appends (and recovery, replaying the log at start, before Final
 * runs); hash readers copy under the lock. */

#define DIGEST_LOG_INTERVAL 128
#define DIGEST_LOG_MAX 1024

static struct {
	pthread_mutex_t lock;
	struct zk_zxid_digest v[DIGEST_LOG_MAX];   /* ring */
	int head, n;
} digests = { .lock = PTHREAD_MUTEX_INITIALIZER };

void processors_note_digest(int64_t zxid, uint64_t digest)
{
	if (zxid % DIGEST_LOG_INTERVAL != 0)
		return;
	pthread_mutex_lock(&digests.lock);
	if (digests.n == DIGEST_LOG_MAX) {
		digests.head = (digests.head + 1) % DIGEST_LOG_MAX;
		digests.n--;
	}
	digests.v[(digests.head + digests.n++) % DIGEST_LOG_MAX] = (struct zk_zxid_digest){ zxid, digest };
	pthread_mutex_unlock(&digests.lock);
}

size_t processors_digest_log(struct zk_zxid_digest *out, size_t cap)
{
	pthread_mutex_lock(&digests.lock);
	size_t n = 0;
	for (; n < (size_t)digests.n && n < cap; n++)
		out[n] = digests.v[(digests.head + (int)n) % DIGEST_LOG_MAX];
	pthread_mutex_unlock(&digests.lock);
	return n;
}
