/*
 * recent.h - the ring of the last txns applied (internal; see recent.c).
 */
#ifndef ZKD_PROCESSORS_RECENT_H
#define ZKD_PROCESSORS_RECENT_H

#include <stddef.h>
#include <stdint.h>

/* Final only: zxid was applied; data is its TxnHeader + record. */
void recent_add(int64_t zxid, const uint8_t *data, size_t len);

#endif
