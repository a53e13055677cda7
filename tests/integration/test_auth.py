"""addauth answers as ZooKeeper 3.8's authentication providers do.

    ZK_ADDR=host:port /usr/bin/python3 -m pytest tests/integration/test_auth.py -v

Measured against the Debian package (zk38-standalone.sh), whose providers are
ip and digest (x509 only when configured, which test_tls.py covers):

  digest "user:password"   OK; ACLs for digest:user:base64(sha1(user:password)) admit it
  digest without a ':'     OK: the whole text is the user (generateDigest)
  digest ""                OK (user "", as above)
  ip <anything>            OK: the connection's own address, whatever the text
  digest ACL ids           valid when id.split(":") has two parts, as Java splits
  x509 without a verified client certificate, and every unknown scheme
                           AuthFailed (-115), then the connection is closed

Each case runs on its own connection; after a refusal the server answers a
fresh session as before.
"""
import base64
import hashlib
import os
import time
import uuid

import pytest

import zkraw as z

ZK_ADDR = os.environ.get("ZK_ADDR", "127.0.0.1:2181")
READ = 1
ALL = 31


def digest_id(text):
    user = text.split(":", 1)[0]
    return "%s:%s" % (user, base64.b64encode(hashlib.sha1(text.encode()).digest()).decode())


def addauth(c, scheme, text):
    c.send(z.auth(scheme, text.encode()))
    return c.read_reply(time.monotonic() + 10).err


@pytest.fixture
def root():
    path = "/itest-auth-%s" % uuid.uuid4().hex[:8]
    with z.ZKRaw(ZK_ADDR) as c:
        assert c.call(z.create(path)).err == z.OK
    yield path
    with z.ZKRaw(ZK_ADDR) as c:
        for child in c.call(z.get_children(path)).value or []:
            c.call(z.delete(path + "/" + child))
        c.call(z.delete(path))


@pytest.mark.parametrize("text", ["alice:secret", "nocolon", "", "a:b:c"])
def test_digest_identity_is_accepted_and_opens_its_acl(root, text):
    node = root + "/d"
    with z.ZKRaw(ZK_ADDR) as owner:
        acl = [(ALL, "digest", digest_id(text))]
        assert owner.call(z.create(node, b"only for the digest", acl=acl)).err == z.OK
        assert owner.call(z.get_data(node)).err == z.NOAUTH
    with z.ZKRaw(ZK_ADDR) as c:
        assert addauth(c, "digest", text) == z.OK
        rep = c.call(z.get_data(node))
        assert rep.err == z.OK and rep.value[0] == b"only for the digest"


@pytest.mark.parametrize("text", ["10.9.8.7", "", "whatever"])
def test_ip_scheme_adds_the_connections_own_address_whatever_the_text(root, text):
    node = root + "/ip"
    with z.ZKRaw(ZK_ADDR) as owner:
        assert owner.call(z.create(node, b"x", acl=[(READ, "ip", "10.9.8.7")])).err == z.OK
    with z.ZKRaw(ZK_ADDR) as c:
        assert addauth(c, "ip", text) == z.OK
        # the text named no identity: 10.9.8.7 is still not this client
        assert c.call(z.get_data(node)).err == z.NOAUTH
        assert c.call(z.exists(root)).err == z.OK     # the connection stays usable


@pytest.mark.parametrize("scheme", ["x509", "nosuch", "world", "super", "sasl", "auth"])
def test_unknown_or_unprovable_scheme_is_auth_failed_and_closes(scheme):
    c = z.ZKRaw(ZK_ADDR)
    try:
        assert addauth(c, scheme, "anything") == z.AUTHFAILED
        with pytest.raises(z.ConnectionClosed):
            c.send(z.exists("/"))
            c.read_reply(time.monotonic() + 10)
    finally:
        c.abort()
    with z.ZKRaw(ZK_ADDR) as other:
        assert other.call(z.exists("/")).err == z.OK


# DigestAuthenticationProvider.isValid is id.split(":").length == 2, with
# Java's split: trailing empty parts dropped, a leading one kept.
@pytest.mark.parametrize("acl_id,err", [
    ("user:hash", z.OK), (":hash", z.OK), ("user:hash:", z.OK), ("user:hash::", z.OK),
    ("user:", z.INVALIDACL), ("user::", z.INVALIDACL), ("a:b:c", z.INVALIDACL),
    (":", z.INVALIDACL), ("::", z.INVALIDACL), ("", z.INVALIDACL), ("user", z.INVALIDACL),
])
def test_digest_acl_ids_are_checked_as_javas_split_counts_them(root, acl_id, err):
    with z.ZKRaw(ZK_ADDR) as c:
        assert c.call(z.create(root + "/n", acl=[(ALL, "digest", acl_id)])).err == err
