/*
 * x509_dn.c - a certificate subject written the way Java's
 * X500Principal.getName() writes it.
 *
 * ZooKeeper's X509AuthenticationProvider authenticates a TLS client as
 * x509:<subject.getName()>, and x509 ACLs match that string exactly, so zkd
 * must produce the same bytes Java does for the same certificate, not
 * OpenSSL's own RFC 2253 rendering (which differs in several places). What
 * Java (17) does, and therefore what this file does:
 *
 *   - RDNs from the last in the certificate to the first, joined by ',';
 *     the attributes of a multi-valued RDN in their encoded order, joined
 *     by '+'; no spaces anywhere.
 *   - The type as an RFC 2253 keyword only for CN C L ST O OU STREET DC UID;
 *     every other type as its dotted OID (emailAddress is
 *     1.2.840.113549.1.9.1, SERIALNUMBER is 2.5.4.5).
 *   - The value as '#' and the lowercase hex of its whole DER encoding
 *     (tag, length, contents) when the type is an OID or the value is not
 *     one of PrintableString, TeletexString, IA5String, GeneralString,
 *     BMPString, UTF8String. Otherwise the contents bytes decoded as UTF-8
 *     whatever the string type (so a BMPString's zero bytes show), each
 *     malformed sequence becoming U+FFFD, then escaped: a backslash before
 *     each of , = + < > # ; " and backslash, NUL as \00, and a backslash
 *     before every space or CR in the leading and trailing runs of them.
 *     Other characters, control characters included, go out as they are.
 *
 * tests/integration/test_tls.py compares this with Java's output for
 * certificates full of the awkward cases.
 */
#include "tls.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>

/* Output with a fixed capacity; `over` once anything did not fit. */
struct dnbuf {
	char *p;
	size_t len, cap;
	bool over;
};

static void put(struct dnbuf *b, const void *s, size_t n)
{
	if (b->over || b->len + n + 1 > b->cap) {
		b->over = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void putc1(struct dnbuf *b, char c) { put(b, &c, 1); }

/* The RFC 2253 keywords Java uses; every other type is written as an OID. */
static const char *keyword(int nid)
{
	switch (nid) {
	case NID_commonName: return "CN";
	case NID_countryName: return "C";
	case NID_localityName: return "L";
	case NID_stateOrProvinceName: return "ST";
	case NID_organizationName: return "O";
	case NID_organizationalUnitName: return "OU";
	case NID_streetAddress: return "STREET";
	case NID_domainComponent: return "DC";
	case NID_userId: return "UID";
	default: return NULL;
	}
}

/* The string types Java renders as text (AVA.isDerString, not canonical). */
static bool text_type(int tag)
{
	switch (tag) {
	case V_ASN1_PRINTABLESTRING: case V_ASN1_T61STRING: case V_ASN1_IA5STRING:
	case V_ASN1_GENERALSTRING: case V_ASN1_BMPSTRING: case V_ASN1_UTF8STRING:
		return true;
	default:
		return false;
	}
}

/* One DER header at p[0, n): the tag's first byte, and the offset and length
 * of the contents. False if malformed. */
static bool der_header(const uint8_t *p, size_t n, int *tag, size_t *hdr, size_t *len)
{
	size_t i = 0;
	if (n < 2)
		return false;
	*tag = p[i++];
	if ((*tag & 0x1f) == 0x1f) {        /* high tag number: skip its bytes */
		while (i < n && (p[i] & 0x80))
			i++;
		if (++i >= n)
			return false;
	}
	size_t l = p[i++];
	if (l & 0x80) {
		size_t k = l & 0x7f;
		if (k == 0 || k > sizeof(size_t) || i + k > n)
			return false;
		l = 0;
		while (k--)
			l = (l << 8) | p[i++];
	}
	if (l > n - i)
		return false;
	*hdr = i;
	*len = l;
	return true;
}

/* Java's UTF-8 decoder (String(bytes, UTF_8)) with replacement: how many
 * bytes from p[0, n) form the next character, and whether it is malformed
 * (then it becomes one U+FFFD). The malformed lengths are Java's: the
 * longest valid prefix of a sequence, except that a complete three-byte
 * encoding of a surrogate is one malformed character of three bytes. */
static size_t utf8_next(const uint8_t *p, size_t n, bool *bad)
{
	uint8_t b = p[0];
	*bad = false;
	if (b < 0x80)
		return 1;
	*bad = true;
	if (b >= 0xc2 && b <= 0xdf) {
		if (n < 2 || (p[1] & 0xc0) != 0x80)
			return 1;
		*bad = false;
		return 2;
	}
	if (b >= 0xe0 && b <= 0xef) {
		if (n < 2 || (p[1] & 0xc0) != 0x80 || (b == 0xe0 && p[1] < 0xa0))
			return 1;
		if (n < 3 || (p[2] & 0xc0) != 0x80)
			return 2;
		*bad = b == 0xed && p[1] >= 0xa0;   /* U+D800..U+DFFF */
		return 3;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		if (n < 2 || (p[1] & 0xc0) != 0x80 || (b == 0xf0 && p[1] < 0x90) ||
		    (b == 0xf4 && p[1] > 0x8f))
			return 1;
		if (n < 3 || (p[2] & 0xc0) != 0x80)
			return 2;
		if (n < 4 || (p[3] & 0xc0) != 0x80)
			return 3;
		*bad = false;
		return 4;
	}
	return 1;
}

/* The value of one attribute as text, escaped (see the top of the file).
 * False if out of memory. */
static bool put_text(struct dnbuf *b, const uint8_t *p, size_t n)
{
	/* First the value decoded and escaped (at most 3 bytes per byte)... */
	struct dnbuf e = { malloc(3 * n + 1), 0, 3 * n + 1, false };
	if (!e.p)
		return false;
	for (size_t i = 0; i < n;) {
		bool bad;
		size_t k = utf8_next(p + i, n - i, &bad);
		if (bad) {
			put(&e, "\xef\xbf\xbd", 3);
		} else if (k == 1 && p[i] == 0) {
			put(&e, "\\00", 3);
		} else if (k == 1 && strchr(",=+<>#;\"\\", p[i])) {
			putc1(&e, '\\');
			putc1(&e, (char)p[i]);
		} else {
			put(&e, p + i, k);
		}
		i += k;
	}
	/* ... then a backslash before each space or CR of its leading and
	 * trailing runs (a value of only spaces gets one before every one). */
	size_t lead = 0, trail = 0;
	while (lead < e.len && (e.p[lead] == ' ' || e.p[lead] == '\r'))
		lead++;
	while (trail < e.len - lead && (e.p[e.len - 1 - trail] == ' ' || e.p[e.len - 1 - trail] == '\r'))
		trail++;
	for (size_t i = 0; i < e.len; i++) {
		if (i < lead || i >= e.len - trail)
			putc1(b, '\\');
		putc1(b, e.p[i]);
	}
	free(e.p);
	return true;
}

static void put_hex(struct dnbuf *b, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	putc1(b, '#');
	for (size_t i = 0; i < n; i++) {
		putc1(b, digits[p[i] >> 4]);
		putc1(b, digits[p[i] & 15]);
	}
}

/* type=value of one attribute. False if its encoding is unreadable. */
static bool put_ava(struct dnbuf *b, const X509_NAME_ENTRY *e)
{
	const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
	const char *kw = keyword(OBJ_obj2nid(obj));
	if (kw) {
		put(b, kw, strlen(kw));
	} else {
		char oid[128];
		int n = OBJ_obj2txt(oid, sizeof oid, obj, 1);
		if (n <= 0 || (size_t)n >= sizeof oid)
			return false;
		put(b, oid, (size_t)n);
	}
	putc1(b, '=');

	/* The value's DER: the entry is SEQUENCE { OID, value }. */
	unsigned char *der = NULL;
	int dlen = i2d_X509_NAME_ENTRY(e, &der);
	bool ok = false;
	int tag;
	size_t hdr, len, ohdr, olen, vhdr, vlen;
	if (dlen > 0 && der_header(der, (size_t)dlen, &tag, &hdr, &len) && tag == 0x30) {
		const uint8_t *q = der + hdr;
		int otag;
		if (der_header(q, len, &otag, &ohdr, &olen) && otag == V_ASN1_OBJECT) {
			const uint8_t *v = q + ohdr + olen;
			size_t vn = len - ohdr - olen;
			if (der_header(v, vn, &tag, &vhdr, &vlen) && vhdr + vlen == vn) {
				if (!kw || !text_type(tag))
					put_hex(b, v, vn);
				else if (!put_text(b, v + vhdr, vlen))
					b->over = true;
				ok = true;
			}
		}
	}
	OPENSSL_free(der);
	return ok;
}

long tls_dn_rfc2253(const X509_NAME *name, char *out, size_t cap)
{
	struct dnbuf b = { out, 0, cap, cap == 0 };
	if (cap)
		out[0] = '\0';
	int n = X509_NAME_entry_count(name);
	/* Walk the RDNs backwards; the entries of one RDN share a set number
	 * and sit next to each other, and go out in their own order. */
	for (int i = n - 1; i >= 0;) {
		int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(name, i));
		int first = i;
		while (first > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(name, first - 1)) == set)
			first--;
		if (i != n - 1)
			putc1(&b, ',');
		for (int j = first; j <= i; j++) {
			if (j != first)
				putc1(&b, '+');
			if (!put_ava(&b, X509_NAME_get_entry(name, j)))
				return -1;
		}
		i = first - 1;
	}
	return b.over ? -1 : (long)b.len;
}
