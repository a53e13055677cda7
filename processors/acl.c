/*
 * acl.c - who may do what to a node.
 *
 * The rules are ZooKeeper's: world:anyone matches everybody; digest matches
 * an identity added with addauth; ip matches the client address (with an
 * optional /bits mask); x509 matches the subject DN of the client's verified
 * TLS certificate, compared exactly as a string (X509AuthenticationProvider
 * .matches; its superUser rule is the "super" identity the connection gets,
 * which passes every ACL); a node whose ACL is empty is open to all.
 * fixupACL refuses an empty list, an unknown scheme or a malformed id with
 * InvalidACL; an x509 id must be a name X500Principal would accept.
 */
#include "acl.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool buf_is(struct jute_buf b, const char *s)
{
	size_t n = strlen(s);
	return b.len >= 0 && (size_t)b.len == n && memcmp(b.data, s, n) == 0;
}

/* "a.b.c.d" or "a.b.c.d/bits" against a client address. */
static bool ip_matches(struct jute_buf pattern, const char *client)
{
	char pat[64];
	if (pattern.len <= 0 || pattern.len >= (int32_t)sizeof pat)
		return false;
	memcpy(pat, pattern.data, (size_t)pattern.len);
	pat[pattern.len] = '\0';
	int bits = 32;
	char *slash = strchr(pat, '/');
	if (slash) {
		*slash = '\0';
		bits = atoi(slash + 1);
		if (bits < 0 || bits > 32)
			return false;
	}
	struct in_addr a, c;
	if (inet_pton(AF_INET, pat, &a) != 1 || inet_pton(AF_INET, client, &c) != 1)
		return false;
	uint32_t mask = bits == 0 ? 0 : htonl(~0u << (32 - bits));
	return (a.s_addr & mask) == (c.s_addr & mask);
}

static bool id_matches(const struct rec_acl *a, const struct auth_ids *ids)
{
	if (buf_is(a->scheme, "world"))
		return buf_is(a->id, "anyone");
	if (!ids)
		return false;
	for (int i = 0; i < ids->n; i++) {
		const struct auth_id *me = &ids->v[i];
		if (!buf_is(a->scheme, me->scheme))
			continue;
		if (strcmp(me->scheme, "ip") == 0 ? ip_matches(a->id, me->id) : buf_is(a->id, me->id))
			return true;
	}
	return false;
}

bool acl_allows(const uint8_t *acl, size_t acl_len, int perm, const struct auth_ids *ids)
{
	if (ids) {
		for (int i = 0; i < ids->n; i++)
			if (strcmp(ids->v[i].scheme, "super") == 0)
				return true;
	}
	struct jute_reader r;
	jute_reader_init(&r, acl, acl_len, acl_len);
	struct rec_acl_vec v;
	if (rec_read_acl_vector(&r, &v) != 0 || v.count <= 0)
		return true; /* no ACL: ZooKeeper lets everybody in */
	size_t pos = 0;
	struct rec_acl a;
	while (rec_acl_next(&v, &pos, &a))
		if ((a.perms & perm) && id_matches(&a, ids))
			return true;
	return false;
}

/* ---- x509 ids: X500Principal(String)'s syntax ----------------------------- */

/* The attribute keywords X500Principal accepts (RFC 1779, RFC 2253 and the
 * ones Java adds), any case. */
static bool dn_keyword(const char *p, size_t n)
{
	static const char *const kw[] = {
		"CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER", "DNQ",
		"SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID",
		"SERIALNUMBER",
	};
	for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
		if (strlen(kw[i]) == n && strncasecmp(kw[i], p, n) == 0)
			return true;
	return false;
}

static bool dn_oid(const char *p, size_t n)
{
	if (n > 4 && strncasecmp(p, "OID.", 4) == 0) {
		p += 4;
		n -= 4;
	}
	int parts = 0;
	for (size_t i = 0; i < n;) {
		size_t d = 0;
		while (i + d < n && p[i + d] >= '0' && p[i + d] <= '9')
			d++;
		if (d == 0)
			return false;
		i += d;
		parts++;
		if (i < n && (p[i] != '.' || ++i == n))
			return false;
	}
	return parts >= 2;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool dn_space(char c) { return c == ' '; }

/* The value of one attribute from p[*i]; *i ends after it. */
static bool dn_value(const char *p, size_t n, size_t *i)
{
	size_t j = *i;
	if (j < n && p[j] == '#') {
		/* the hex of one whole DER value: tag, length, contents */
		uint8_t der[512];
		size_t len = 0;
		for (j++; j + 1 < n && hexval(p[j]) >= 0 && hexval(p[j + 1]) >= 0; j += 2) {
			if (len == sizeof der)
				return false;
			der[len++] = (uint8_t)(hexval(p[j]) << 4 | hexval(p[j + 1]));
		}
		if (j < n && hexval(p[j]) >= 0)
			return false;       /* an odd digit */
		if (len < 2)
			return false;
		size_t l = der[1], h = 2;
		if (l & 0x80) {
			size_t k = l & 0x7f;
			if (k == 0 || k > 2 || 2 + k > len)
				return false;
			for (l = 0; k--; )
				l = l << 8 | der[h++];
		}
		*i = j;
		return h + l == len;
	}
	if (j < n && p[j] == '"') {
		for (j++; j < n && p[j] != '"'; j++)
			if (p[j] == '\\' && ++j == n)
				return false;
		if (j == n)
			return false;
		*i = j + 1;
		return true;
	}
	for (; j < n && p[j] != ',' && p[j] != ';' && p[j] != '+'; j++) {
		if (p[j] == '<' || p[j] == '>' || p[j] == '"')
			return false;
		if (p[j] == '\\') {
			/* a special character, or two hex digits of a byte */
			if (j + 1 < n && p[j + 1] && strchr(",=+<>#;\\\" \n", p[j + 1]))
				j++;
			else if (j + 2 < n && hexval(p[j + 1]) >= 0 && hexval(p[j + 2]) >= 0)
				j += 2;
			else
				return false;
		}
	}
	*i = j;
	return true;
}

/* X509AuthenticationProvider.isValid: new X500Principal(id) would not
 * throw. The empty name is valid. */
static bool valid_dn(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && dn_space(p[i]))
		i++;
	if (i == n)
		return true;
	for (;;) {
		/* type */
		while (i < n && dn_space(p[i]))
			i++;
		size_t t = i;
		while (i < n && p[i] != '=' && !dn_space(p[i]) && p[i] != ',' && p[i] != ';' && p[i] != '+')
			i++;
		if (i == t || !(dn_keyword(p + t, i - t) || dn_oid(p + t, i - t)))
			return false;
		while (i < n && dn_space(p[i]))
			i++;
		if (i == n || p[i] != '=')
			return false;
		i++;
		while (i < n && dn_space(p[i]))
			i++;
		if (!dn_value(p, n, &i))
			return false;
		while (i < n && dn_space(p[i]))
			i++;
		if (i == n)
			return true;
		if (p[i] != ',' && p[i] != ';' && p[i] != '+')
			return false;
		i++;
	}
}

static bool valid_id(const struct rec_acl *a)
{
	if (buf_is(a->scheme, "world"))
		return buf_is(a->id, "anyone");
	if (buf_is(a->scheme, "digest")) {
		/* DigestAuthenticationProvider.isValid: id.split(":") has two
		 * parts. Java's split drops trailing empty parts and keeps a
		 * leading one, so ":h" and "u:h::" pass, "u:" and "u:h:x" fail:
		 * one ':' once the trailing ones are stripped. */
		int32_t len = a->id.len;
		while (len > 0 && a->id.data[len - 1] == ':')
			len--;
		int colons = 0;
		for (int32_t i = 0; i < len; i++)
			colons += a->id.data[i] == ':';
		return colons == 1;
	}
	if (buf_is(a->scheme, "ip")) {
		char pat[64];
		if (a->id.len <= 0 || a->id.len >= (int32_t)sizeof pat)
			return false;
		memcpy(pat, a->id.data, (size_t)a->id.len);
		pat[a->id.len] = '\0';
		char *slash = strchr(pat, '/');
		if (slash)
			*slash = '\0';
		struct in_addr x;
		return inet_pton(AF_INET, pat, &x) == 1;
	}
	if (buf_is(a->scheme, "x509"))
		return a->id.len >= 0 && valid_dn((const char *)a->id.data, (size_t)a->id.len);
	return false;
}

static bool same_acl(const struct rec_acl *a, const struct rec_acl *b)
{
	return a->perms == b->perms && a->scheme.len == b->scheme.len && a->id.len == b->id.len &&
	       memcmp(a->scheme.data, b->scheme.data, (size_t)a->scheme.len) == 0 &&
	       memcmp(a->id.data, b->id.data, (size_t)a->id.len) == 0;
}

int acl_fixup(const struct rec_acl_vec *in, const struct auth_ids *ids, uint8_t **out, size_t *out_len)
{
	if (in->count <= 0)
		return ZINVALIDACL;
	struct jute_writer w;
	jute_writer_init(&w, in->len + 64);
	jute_write_int(&w, 0); /* count, patched below */
	int32_t count = 0;
	size_t pos = 0;
	struct rec_acl a;
	for (int32_t i = 0; rec_acl_next(in, &pos, &a); i++) {
		/* skip an exact duplicate of an earlier entry */
		size_t p2 = 0;
		struct rec_acl b;
		bool dup = false;
		for (int32_t j = 0; j < i && rec_acl_next(in, &p2, &b); j++)
			if (same_acl(&a, &b)) {
				dup = true;
				break;
			}
		if (dup)
			continue;
		if (buf_is(a.scheme, "auth")) {
			int added = 0;
			for (int k = 0; ids && k < ids->n; k++) {
				if (strcmp(ids->v[k].scheme, "digest") != 0)
					continue;
				rec_write_acl(&w, a.perms, "digest", ids->v[k].id);
				count++;
				added++;
			}
			if (!added)
				goto invalid;
			continue;
		}
		if (!valid_id(&a))
			goto invalid;
		jute_write_int(&w, a.perms);
		jute_write_buffer(&w, a.scheme.data, a.scheme.len);
		jute_write_buffer(&w, a.id.data, a.id.len);
		count++;
	}
	if (w.err)
		goto invalid;
	jute_patch_int(&w, 0, count);
	*out = jute_writer_take(&w, out_len);
	return ZOK;
invalid:
	jute_writer_free(&w);
	return ZINVALIDACL;
}

bool acl_digest_id(const char *cred, size_t len, char *out, size_t cap)
{
	/* DigestAuthenticationProvider.generateDigest: the user is the text
	 * before the first ':', or all of it */
	const char *colon = memchr(cred, ':', len);
	if (!colon)
		colon = cred + len;
	unsigned char sha[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)cred, len, sha);
	char b64[64];
	EVP_EncodeBlock((unsigned char *)b64, sha, SHA_DIGEST_LENGTH);
	size_t ulen = (size_t)(colon - cred);
	if (ulen + 1 + strlen(b64) + 1 > cap)
		return false;
	memcpy(out, cred, ulen);
	out[ulen] = ':';
	strcpy(out + ulen + 1, b64);
	return true;
}
