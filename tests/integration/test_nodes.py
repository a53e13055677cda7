"""Node kinds and server features that need their own server configuration:
containers and TTL nodes swept by the reaper, the superDigest identity,
whoAmI, and the watch four-letter words.

Each test runs against a zkd this module starts itself (the binary from $ZKD)
with extendedTypesEnabled=true, znode.container.checkIntervalMs=500 and a
superDigest, so it does not depend on how run.sh configured its server.
"""

import base64
import hashlib
import os
import socket
import time

import pytest

import zkraw
from zkraw import ZKRaw
from standalone import ZkdServer

ZKD = os.environ.get("ZKD")
pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")

CHECK_MS = 500
SUPER = "super:sekret"
CONTAINER = 4                 # CreateMode flags
PERSISTENT_WITH_TTL = 5
PERM_ALL = 31
SESSIONLESS_MS = 800


def digest(cred):
    user = cred.split(":", 1)[0]
    return "%s:%s" % (user, base64.b64encode(hashlib.sha1(cred.encode()).digest()).decode())


@pytest.fixture(scope="module")
def server():
    with ZkdServer({"extendedTypesEnabled": "true", "znode.container.checkIntervalMs": str(CHECK_MS),
                    "zookeeper.DigestAuthenticationProvider.superDigest": digest(SUPER),
                    "zookeeper.nio.sessionlessCnxnTimeout": str(SESSIONLESS_MS)},
                   prefix="zkd-nodes-") as srv:
        yield srv.addr


def raw_create(conn, path, flags=0, op=zkraw.CREATE, ttl=None, data=b""):
    body = (zkraw.string(path) + zkraw.buf(data) + zkraw.acls(zkraw.OPEN_ACL) + zkraw.i32(flags))
    if ttl is not None:
        body += zkraw.i64(ttl)
    return conn.call((op, body))


def wait_gone(conn, path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.call(zkraw.exists(path)).err == zkraw.NONODE:
            return True
        time.sleep(0.05)
    return False


def test_container_is_reaped_after_its_last_child_goes(server):
    with ZKRaw(server) as c:
        assert raw_create(c, "/cont-used", CONTAINER, zkraw.CREATE_CONTAINER).err == 0
        assert raw_create(c, "/cont-never", CONTAINER, zkraw.CREATE_CONTAINER).err == 0
        assert c.call(zkraw.create("/cont-used/child")).err == 0
        assert c.call(zkraw.delete("/cont-used/child")).err == 0
        assert wait_gone(c, "/cont-used", 10), "emptied container was not reaped"
        # the reaper has run at least once since; a container that never
        # had a child stays (ZooKeeper's maxNeverUsedIntervalMs is 0)
        assert c.call(zkraw.exists("/cont-never")).err == 0
        c.call(zkraw.delete("/cont-never"))


def test_ttl_node_is_reaped_after_its_ttl_but_not_with_children(server):
    with ZKRaw(server) as c:
        rep = raw_create(c, "/ttl-leaf", PERSISTENT_WITH_TTL, zkraw.CREATE_TTL, ttl=300)
        assert rep.err == 0, "createTTL failed with %d" % rep.err
        assert raw_create(c, "/ttl-parent", PERSISTENT_WITH_TTL, zkraw.CREATE_TTL,
                          ttl=300).err == 0
        assert c.call(zkraw.create("/ttl-parent/child")).err == 0
        t0 = time.monotonic()
        assert wait_gone(c, "/ttl-leaf", 10), "TTL node outlived its TTL"
        assert time.monotonic() - t0 >= 0.25, "TTL node went before its TTL"
        assert c.call(zkraw.exists("/ttl-parent")).err == 0, "TTL node with a child was reaped"
        c.call(zkraw.delete("/ttl-parent/child"))
        assert wait_gone(c, "/ttl-parent", 10), "TTL node not reaped once childless"


def test_ttl_rules(server):
    with ZKRaw(server) as c:
        bad = raw_create(c, "/ttl-zero", PERSISTENT_WITH_TTL, zkraw.CREATE_TTL, ttl=0)
        assert bad.err == zkraw.BADARGUMENTS
        st = raw_create(c, "/ttl-stat", PERSISTENT_WITH_TTL, zkraw.CREATE_TTL, ttl=60000)
        assert st.err == 0
        path, stat = st.value
        assert stat.ephemeralOwner == 0, "TTL marker must be hidden from clients"
        c.call(zkraw.delete("/ttl-stat"))


def test_super_digest_passes_every_acl(server):
    locked = [(PERM_ALL, "digest", digest("alice:pw"))]
    with ZKRaw(server) as alice:
        assert alice.call(zkraw.auth("digest", b"alice:pw")).err == 0
        assert alice.call(zkraw.create("/locked", b"secret", acl=locked)).err == 0
        with ZKRaw(server) as other:
            assert other.call(zkraw.get_data("/locked")).err == zkraw.NOAUTH
        with ZKRaw(server) as root:
            assert root.call(zkraw.auth("digest", SUPER.encode())).err == 0
            rep = root.call(zkraw.get_data("/locked"))
            assert rep.err == 0 and rep.value[0] == b"secret"
            assert root.call(zkraw.delete("/locked")).err == 0


def test_who_am_i_lists_ip_and_digest_user(server):
    with ZKRaw(server) as c:
        assert c.call(zkraw.auth("digest", b"bob:pw")).err == 0
        rep = c.call((zkraw.WHO_AM_I, b""))
        assert rep.err == 0
        r = zkraw.Reader(rep.value)
        infos = []
        n = r.int()
        for _ in range(n):
            infos.append((r.string(), r.string()))
        assert ("ip", "127.0.0.1") in infos
        assert ("digest", "bob") in infos


def test_watch_four_letter_words(server):
    with ZKRaw(server) as c:
        c.call(zkraw.create("/w4"))
        assert c.call(zkraw.get_data("/w4", watch=True)).err == 0
        assert c.call(zkraw.get_children("/w4", watch=True)).err == 0
        sid = c.session_id
        wchs = zkraw.four_letter(server, "wchs")
        # ZooKeeper's watch words list its data-watch manager only: the
        # child watch is set but not shown (mntr's zk_watch_count has both)
        assert "Total watches:1" in wchs, wchs
        assert "1 connections watching 1 paths" in wchs, wchs
        wchc = zkraw.four_letter(server, "wchc")
        assert "0x%x\n\t/w4\n" % sid in wchc, wchc
        wchp = zkraw.four_letter(server, "wchp")
        assert "/w4\n\t0x%x\n" % sid in wchp, wchp
        c.call(zkraw.delete("/w4"))
        assert "Total watches:0" in zkraw.four_letter(server, "wchs")


def mntr(addr):
    out = {}
    for line in zkraw.four_letter(addr, "mntr").splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k] = v
    return out


def test_mntr_counts_group_commits_and_their_txns(server):
    with ZKRaw(server) as c:
        before = mntr(server)
        reps = zkraw.pipeline(c, [zkraw.create("/gc-%d" % i) for i in range(200)])
        assert all(r.err == 0 for r in reps)
        after = mntr(server)
        txns = int(after["zk_sum_sync_processor_batch_size"]) - int(before["zk_sum_sync_processor_batch_size"])
        commits = int(after["zk_cnt_fsynctime"]) - int(before["zk_cnt_fsynctime"])
        assert txns == 200, "every create is one txn of some group commit (got %d)" % txns
        assert 1 <= commits <= 200, commits
        assert int(after["zk_max_sync_processor_batch_size"]) >= 1
        reps = zkraw.pipeline(c, [zkraw.delete("/gc-%d" % i) for i in range(200)])
        assert all(r.err == 0 for r in reps)


def test_getacl_masks_digest_ids_for_who_may_neither_read_nor_admin(server):
    """Regression: zkd answered getACL with the stored digest hashes to anyone.
    ZooKeeper 3.8 shows a digest id as user:x unless the caller may READ or
    ADMIN the node."""
    from kazoo.client import KazooClient
    from kazoo.security import ACL, Id
    hashed = digest("alice:pw")
    alice = KazooClient(hosts=server, auth_data=[("digest", "alice:pw")])
    other = KazooClient(hosts=server)
    alice.start(timeout=10)
    other.start(timeout=10)
    try:
        alice.create("/acl-masked", b"", acl=[ACL(PERM_ALL, Id("digest", hashed))])
        mine, _ = alice.get_acls("/acl-masked")
        theirs, _ = other.get_acls("/acl-masked")
        assert [a.id.id for a in mine] == [hashed]
        assert [a.id.id for a in theirs] == ["alice:x"]
        assert [a.perms for a in theirs] == [PERM_ALL]
        alice.delete("/acl-masked")
    finally:
        alice.stop()
        other.stop()


def test_connection_without_a_session_is_closed_after_the_sessionless_timeout(server):
    """A connection that never completes its ConnectRequest is closed
    (ZooKeeper's zookeeper.nio.sessionlessCnxnTimeout), and a session that
    did is left alone."""
    host, port = server.split(":")
    with ZKRaw(server) as healthy:
        silent = socket.create_connection((host, int(port)))
        half = socket.create_connection((host, int(port)))
        half.sendall(b"\x00\x00\x00\x2c\x00\x00")   # a ConnectRequest cut short
        t0 = time.monotonic()
        assert zkraw.closed_without_answer(silent, 5), "a silent connection stayed open"
        assert time.monotonic() - t0 >= SESSIONLESS_MS / 1000 * 0.8, "closed before the timeout"
        assert zkraw.closed_without_answer(half, 5), "a connection with half a ConnectRequest stayed open"
        silent.close()
        half.close()
        # the healthy session, opened before both, outlived them
        assert healthy.call(zkraw.exists("/")).err == 0
