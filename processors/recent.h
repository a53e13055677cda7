/*
 * recent.h - the ring of the last txns applied (internal; see recent.c).
 */
#ifndef ZKD_PROCESSORS_RECENT_H
#define ZKD_PROCESSORS_RECENT_H

#include <stddef.h>
#include <stdint.h>

/* Final only: zxid was applied; data is its TxnHeader + record. */
void recent_add(int64_t zxid, const uint8_t *data, size_t len);

/* Final only: zxid was applied and the tree's digest is now `digest`;
 * kept when zxid is a multiple of 128 (ZooKeeper's digest log). */
void recent_note_digest(int64_t zxid, uint64_t digest);

#endif
