/*
 * acl.h - ACL checks and ZooKeeper's fixupACL.
 *
 * ACLs travel and are stored as the jute vector<ACL> bytes of the request.
 * A caller's identities are a small list of (scheme, id) pairs: "ip" with its
 * address (every connection has it) and one "digest" entry per addauth.
 */
#ifndef ZKD_PROCESSORS_ACL_H
#define ZKD_PROCESSORS_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/records.h"

struct auth_id { char scheme[16]; char id[256]; };
struct auth_ids { int n; struct auth_id v[8]; };

/* True if the ACL grants `perm` to someone with these identities. */
bool acl_allows(const uint8_t *acl, size_t acl_len, int perm, const struct auth_ids *ids);
/* ZooKeeper's fixupACL: drops duplicates, expands scheme "auth" into the
 * caller's digest identities, checks every entry. Writes the resulting
 * vector into *out (malloc'd). Returns ZOK or ZINVALIDACL. */
int acl_fixup(const struct rec_acl_vec *in, const struct auth_ids *ids, uint8_t **out, size_t *out_len);
/* "digest" identity for "user:password": user:base64(sha1(user:password));
 * text without a ':' is all user. False if it does not fit in cap. */
bool acl_digest_id(const char *cred, size_t len, char *out, size_t cap);

#endif
