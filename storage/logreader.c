/*
 * logreader.c - walks one txn log file record by record (see logreader.h).
 *
 * The file is mapped read-only; every length read from it is checked
 * against the bytes left before it is used, so a damaged file can only
 * produce an error, never a read outside the mapping or an allocation sized
 * by the file.
 */
#include "logreader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adler32.h"
#include "net/jute.h"
#include "txncodec.h"
#include "txnlog.h"

#define REC_OVERHEAD 13              /* checksum 8, length 4, 'B' 1 */
#define REC_EOR 'B'
#define TXN_HEADER_SIZE 32           /* no entry is shorter than a TxnHeader */

static const uint8_t empty_map[1];

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)jute_get_u32(p) << 32 | jute_get_u32(p + 4);
}

bool logreader_zeros_to_end(const struct logreader *r, size_t from)
{
	for (size_t i = from; i < r->size; i++)
		if (r->p[i])
			return false;
	return true;
}

int logreader_open(struct logreader *r, const char *path, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->p = empty_map;
	r->next_intact = SIZE_MAX;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	r->size = (size_t)st.st_size;
	if (r->size > 0) {
		void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			snprintf(err, errlen, "%s: cannot map %zu bytes: %s", path, r->size, strerror(errno));
			close(fd);
			r->size = 0;
			return -1;
		}
		madvise(m, r->size, MADV_SEQUENTIAL);
		r->p = m;
	}
	close(fd);
	if (r->size < TXNLOG_HEADER_SIZE) {
		snprintf(err, errlen, "%s: %zu bytes, shorter than the %d-byte file header (at offset 0)", path,
			 r->size, TXNLOG_HEADER_SIZE);
		logreader_close(r);
		return -1;
	}
	r->magic = (int32_t)jute_get_u32(r->p);
	r->version = (int32_t)jute_get_u32(r->p + 4);
	r->dbid = (int64_t)be64(r->p + 8);
	if ((uint32_t)r->magic != TXNLOG_MAGIC) {
		snprintf(err, errlen, "%s: not a txn log: magic 0x%08x at offset 0 (want 0x%08x \"ZKLG\")%s", path,
			 (uint32_t)r->magic, TXNLOG_MAGIC,
			 logreader_zeros_to_end(r, 0) ? "; the file is all zeros (its header was never written)" : "");
		logreader_close(r);
		return -1;
	}
	r->off = TXNLOG_HEADER_SIZE;
	return 0;
}

/* Is there a complete record with the right checksum and end marker at y? */
static bool intact_at(const struct logreader *r, size_t y)
{
	if (r->size - y < REC_OVERHEAD + TXN_HEADER_SIZE)
		return false;
	uint64_t crc = be64(r->p + y);
	int32_t len = (int32_t)jute_get_u32(r->p + y + 8);
	if ((crc >> 32) != 0 || len < TXN_HEADER_SIZE || (size_t)len > r->size - y - REC_OVERHEAD)
		return false;
	return r->p[y + 12 + (size_t)len] == REC_EOR && adler32(r->p + y + 12, (size_t)len) == (uint32_t)crc;
}

static size_t find_intact(const struct logreader *r, size_t from)
{
	for (size_t y = from; y + REC_OVERHEAD + TXN_HEADER_SIZE <= r->size; y++) {
		/* the length field (bytes 8..11 of a record) is never zero: skip
		 * zero runs (the preallocated tail) quickly */
		if (!r->p[y + 8] && !r->p[y + 9] && !r->p[y + 10] && !r->p[y + 11])
			continue;
		if (intact_at(r, y))
			return y;
	}
	return SIZE_MAX;
}

static int bad(struct logreader *r, char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "bad record at offset %zu: %s", r->off, why);
	r->next_intact = find_intact(r, r->off + 1);
	return -1;
}

int logreader_next(struct logreader *r, struct logreader_rec *rec, char *err, size_t errlen)
{
	memset(rec, 0, sizeof *rec);
	size_t rem = r->size - r->off;
	if (rem == 0)
		return 0;
	if (rem < 12) {
		if (logreader_zeros_to_end(r, r->off))
			return 0;
		return bad(r, err, errlen, "the file ends inside the record header");
	}
	uint64_t crc = be64(r->p + r->off);
	int32_t len = (int32_t)jute_get_u32(r->p + r->off + 8);
	char why[256];
	if (len == 0) {
		if (logreader_zeros_to_end(r, r->off))
			return 0;
		return bad(r, err, errlen, "zero length (end of the records) but non-zero bytes follow");
	}
	if (len < 0 || rem < REC_OVERHEAD || (size_t)len > rem - REC_OVERHEAD) {
		snprintf(why, sizeof why, "length %d runs past the end of the file (%zu bytes left)", len, rem);
		return bad(r, err, errlen, why);
	}
	const uint8_t *entry = r->p + r->off + 12;
	uint32_t sum = adler32(entry, (size_t)len);
	if ((crc >> 32) != 0 || sum != (uint32_t)crc) {
		snprintf(why, sizeof why, "checksum mismatch (stored 0x%016llx, the %d entry bytes give 0x%08x)",
			 (unsigned long long)crc, len, sum);
		return bad(r, err, errlen, why);
	}
	if (entry[len] != REC_EOR) {
		snprintf(why, sizeof why, "end-of-record byte is 0x%02x, not 'B'", entry[len]);
		return bad(r, err, errlen, why);
	}
	char derr[200];
	if (txn_decode(entry, (size_t)len, &rec->txn, derr, sizeof derr) != 0) {
		snprintf(why, sizeof why, "the checksum is right but the entry is not a txn: %.180s", derr);
		return bad(r, err, errlen, why);
	}
	rec->offset = r->off;
	rec->length = (size_t)len;
	rec->checksum = sum;
	r->off += REC_OVERHEAD + (size_t)len;
	r->records++;
	return 1;
}

void logreader_close(struct logreader *r)
{
	if (r->p && r->p != empty_map && r->size)
		munmap((void *)r->p, r->size);
	r->p = empty_map;
	r->size = 0;
}
