/*
 * snapreader.h - one snapshot file, item by item, in file order: for tools
 * (bin/zkd-dump) that show a file as it is rather than load a tree from it.
 * The format is snapshot.h's; this reader checks the same things the loader
 * does (every length against the bytes left, the Adler-32 seals) and says
 * where the file stops making sense, but builds nothing.
 */
#ifndef ZKD_STORAGE_SNAPREADER_H
#define ZKD_STORAGE_SNAPREADER_H

#include <stddef.h>
#include <stdint.h>

#include "net/records.h"

struct snapreader_node {
	size_t offset;              /* of the node's path in the file */
	const char *path;           /* "/" for the root (stored as ""); not NUL-terminated */
	size_t path_len;
	const uint8_t *data;        /* NULL when data_len is -1 (null) */
	int32_t data_len;
	int64_t acl_id;             /* -1 = OPEN_ACL_UNSAFE */
	struct zk_stat stat;        /* persisted: data_length set, num_children 0 */
};

/* Every callback may be NULL. Views (paths, data, ACL bytes) point into the
 * mapped file and live only during the call. */
struct snapreader_cb {
	void (*header)(void *arg, int32_t magic, int32_t version, int64_t dbid, size_t file_size);
	void (*session)(void *arg, int64_t id, int32_t timeout);
	/* acl: the jute vector<ACL>, count included */
	void (*acl)(void *arg, int64_t id, const uint8_t *acl, size_t len);
	void (*node)(void *arg, const struct snapreader_node *n);
	/* after the nodes: the first seal, verified */
	void (*sealed)(void *arg, size_t offset, uint32_t checksum);
	/* ZxidDigest (3.6+), when present, its own seal verified */
	void (*digest)(void *arg, int64_t zxid, int32_t version, int64_t digest);
};

/* Walks the file at path, calling cb as it goes. 0 when the whole file is
 * a valid snapshot (magic, every record, the seal(s), nothing after them),
 * or -1 with a reason that names the offset (what was walked before it has
 * been reported through cb). */
int snapreader_walk(const char *path, const struct snapreader_cb *cb, void *arg, char *err, size_t errlen);

#endif
