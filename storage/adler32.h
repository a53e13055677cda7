/*
 * adler32.h - Adler-32, the checksum ZooKeeper's txn logs and snapshots carry.
 *
 * ZooKeeper computes it with java.util.zip.Adler32 and stores getValue() as a
 * jute long, so on disk it is 8 bytes whose upper 4 are always zero. We carry
 * our own instead of linking zlib for ~20 lines.
 */
#ifndef ZKD_STORAGE_ADLER32_H
#define ZKD_STORAGE_ADLER32_H

#include <stddef.h>
#include <stdint.h>

#define ADLER32_INIT 1u   /* the checksum of no bytes */

/* Continues `adler` over n more bytes. */
uint32_t adler32_update(uint32_t adler, const void *p, size_t n);

static inline uint32_t adler32(const void *p, size_t n)
{
	return adler32_update(ADLER32_INIT, p, n);
}

#endif
