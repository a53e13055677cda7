/*
 * digest.c - ZooKeeper's tree digest (see digest.h).
 *
 * CRC-32 is the IEEE one java.util.zip.CRC32 computes (reflected,
 * polynomial 0xedb88320), done four bits at a time from a 16-entry table:
 * slower than zlib's, but the digest is for tests and tools, and it keeps
 * storage/ free of another library.
 */
#include "digest.h"

#include <string.h>

#include "net/jute.h"

static const uint32_t crc_nibble[16] = {
	0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
	0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

uint32_t digest_crc32(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= b[i];
		crc = (crc >> 4) ^ crc_nibble[crc & 15];
		crc = (crc >> 4) ^ crc_nibble[crc & 15];
	}
	return ~crc;
}

static void put64(uint8_t *p, int64_t v)
{
	jute_put_u32(p, (uint32_t)((uint64_t)v >> 32));
	jute_put_u32(p + 4, (uint32_t)v);
}

uint64_t tree_node_digest(const char *path, size_t len, const struct znode_ver *v)
{
	static const char sys[] = "/zookeeper/";
	if (len >= sizeof sys - 1 && memcmp(path, sys, sizeof sys - 1) == 0)
		return 0;
	if (len == 1)
		len = 0;                /* "/" and "" are one node to ZooKeeper: "" counts */
	const struct zk_stat *s = &v->stat;
	uint8_t b[60];              /* DigestCalculator's field order */
	put64(b, s->czxid);
	put64(b + 8, s->mzxid);
	put64(b + 16, s->pzxid);
	put64(b + 24, s->ctime);
	put64(b + 32, s->mtime);
	jute_put_u32(b + 40, (uint32_t)s->version);
	jute_put_u32(b + 44, (uint32_t)s->cversion);
	jute_put_u32(b + 48, (uint32_t)s->aversion);
	put64(b + 52, s->ephemeral_owner);
	uint32_t crc = digest_crc32(0, path, len);
	if (v->data && v->data->len > 0)
		crc = digest_crc32(crc, v->data->bytes, (size_t)v->data->len);
	return digest_crc32(crc, b, sizeof b);
}

static void add_node(void *arg, const struct znode *n)
{
	*(uint64_t *)arg += tree_node_digest(n->path, n->path_len, tree_ver(n));
}

uint64_t tree_digest(struct ztree *t)
{
	uint64_t sum = 0;              /* AdHash: a plain sum, wrapping */
	tree_foreach(t, add_node, &sum);
	return sum;
}
