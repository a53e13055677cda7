/*
 * digest.h - ZooKeeper's tree digest, for comparing a zkd tree with a
 * ZooKeeper one (tests, tools).
 *
 * ZooKeeper 3.6+ keeps a running digest of its DataTree (DigestCalculator,
 * digest version 2, summed by AdHash): the sum, modulo 2^64, over every node
 * of CRC-32(path, data, czxid, mzxid, pzxid, ctime, mtime, version,
 * cversion, aversion, ephemeralOwner), the numbers big-endian, the root's
 * path taken as "" and every node below "/zookeeper/" left out (their
 * quota stats change locally). The stat is the persisted one, which is also
 * what zkd's tree holds (cversion = creations). Two trees with the same
 * digest hold the same nodes, data and stats with overwhelming likelihood;
 * ACLs and child order are not in it.
 */
#ifndef ZKD_STORAGE_DIGEST_H
#define ZKD_STORAGE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "tree.h"

#define TREE_DIGEST_VERSION 2       /* DigestCalculator.DIGEST_VERSION */

/* java.util.zip.CRC32 over n bytes, continuing crc (0 to start). */
uint32_t digest_crc32(uint32_t crc, const void *p, size_t n);

/* One node's contribution (0 for the nodes below /zookeeper/). */
uint64_t tree_node_digest(const char *path, size_t len, const struct znode_ver *v);

/* The digest of the whole tree, as DataTree.getTreeDigest() gives it for the
 * same content. A reader (one read-side section); a tree that changes
 * meanwhile gives a mix, so call it on a quiet tree. */
uint64_t tree_digest(struct ztree *t);

#endif
