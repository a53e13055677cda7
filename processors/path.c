/*
 * path.c - node path validation, byte for byte what ZooKeeper decides.
 */
#include "path.h"

#include <stdint.h>
#include <string.h>

/* Decodes one UTF-8 code point at p (n bytes left); returns its length and
 * sets *cp, or returns 1 with *cp = 0xFFFD for a malformed sequence (what
 * Java's decoder substitutes). */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xE0) == 0xC0) {
		len = 2; v = c & 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3; v = c & 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4; v = c & 0x07;
	} else {
		*cp = 0xFFFD;
		return 1;
	}
	if (len > n) {
		*cp = 0xFFFD;
		return 1;
	}
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80) {
			*cp = 0xFFFD;
			return 1;
		}
		v = (v << 6) | (p[i] & 0x3F);
	}
	*cp = v;
	return len;
}

static bool char_forbidden(uint32_t c)
{
	return (c > 0 && c <= 0x1F) || (c >= 0x7F && c <= 0x9F) ||
	       (c >= 0xD800 && c <= 0xF8FF) || c >= 0xFFF0; /* >= 0x10000: a surrogate pair in Java */
}

bool path_valid(const char *path, size_t len)
{
	const unsigned char *p = (const unsigned char *)path;
	if (len == 0 || p[0] != '/')
		return false;
	if (len == 1)
		return true;
	if (p[len - 1] == '/')
		return false;
	for (size_t i = 1; i < len;) {
		uint32_t c;
		size_t n = utf8_next(p + i, len - i, &c);
		if (c == 0 || char_forbidden(c))
			return false;
		if (c == '/' && p[i - 1] == '/')
			return false;
		if (c == '.' && p[i - 1] == '/') {
			/* "/." or "/.." as a whole component */
			size_t j = i + 1;
			if (j < len && p[j] == '.')
				j++;
			if (j == len || p[j] == '/')
				return false;
		}
		i += n;
	}
	return true;
}

bool path_special(const char *path, size_t len)
{
	static const char *special[] = { "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config" };
	for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
		if (strlen(special[i]) == len && memcmp(special[i], path, len) == 0)
			return true;
	return false;
}
