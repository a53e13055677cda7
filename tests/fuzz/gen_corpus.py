#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/.

Valid samples of what each target reads (ZooKeeper 3.8's encodings, from
zookeeper.jute and the quorum/election code), so that fuzzing starts from
inputs that get deep. The files are checked in; run this again after
changing a target's input format:

    python3 tests/fuzz/gen_corpus.py        (from the project root)

Each target's input layout is described at the top of tests/fuzz/<target>.c.
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# ---- jute -------------------------------------------------------------------


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def b(v):
    return b"\x01" if v else b"\x00"


def buf(v):
    if v is None:
        return i32(-1)
    if isinstance(v, str):
        v = v.encode()
    return i32(len(v)) + v


def vec(items):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(items)


def acl(perms, scheme, ident):
    return i32(perms) + buf(scheme) + buf(ident)


OPEN_ACL = [acl(31, "world", "anyone")]
READ_ACL = [acl(1, "world", "anyone")]


def frame(payload):
    return i32(len(payload)) + payload


# ---- client protocol --------------------------------------------------------

OP = dict(create=1, delete=2, exists=3, getData=4, setData=5, getACL=6, setACL=7,
          getChildren=8, sync=9, ping=11, getChildren2=12, check=13, multi=14, create2=15,
          reconfig=16, checkWatches=17, removeWatches=18, createContainer=19,
          deleteContainer=20, createTTL=21, multiRead=22, auth=100, setWatches=101, sasl=102,
          getEphemerals=103, getAllChildrenNumber=104, setWatches2=105, addWatch=106,
          whoAmI=107, createSession=-10, close=-11)

HARNESS_SESSION = 0x0101020304050607


def java_password(session_id):
    """ZooKeeper's session password: java.util.Random(id ^ 0xB3415C00).nextBytes(16)."""
    mult, mask = 0x5DEECE66D, (1 << 48) - 1
    seed = ((session_id ^ 0xB3415C00) ^ mult) & mask
    out = bytearray()
    while len(out) < 16:
        seed = (seed * mult + 0xB) & mask
        rnd = seed >> 16
        if rnd & 0x80000000:
            rnd -= 1 << 32
        for _ in range(4):
            if len(out) == 16:
                break
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def connect_req(session=0, passwd=b"\0" * 16, timeout=30000, last_zxid=0, read_only=None):
    p = i32(0) + i64(last_zxid) + i32(timeout) + i64(session) + buf(passwd)
    if read_only is not None:
        p += b(read_only)
    return frame(p)


class Session:
    """Builds a client's request stream (xids counting up)."""

    def __init__(self):
        self.xid = 0
        self.out = b""

    def req(self, op, body=b"", xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.out += frame(i32(xid) + i32(OP[op]) + body)
        return self

    def create(self, path, data=b"", flags=0, acls=None, op="create", ttl=None):
        body = buf(path) + buf(data) + vec(OPEN_ACL if acls is None else acls) + i32(flags)
        if ttl is not None:
            body += i64(ttl)
        return self.req(op, body)

    def path_watch(self, op, path, watch=False):
        return self.req(op, buf(path) + b(watch))

    def path_version(self, op, path, version=-1):
        return self.req(op, buf(path) + i32(version))


def multi_ops(ops):
    body = b""
    for op, rec in ops:
        body += i32(OP[op]) + b(False) + i32(-1) + rec
    return body + i32(-1) + b(True) + i32(-1)


def client_streams():
    """(name, option byte, stream after the handshake) for client_frames."""
    s = []
    a = Session()
    a.create("/x", b"data").path_watch("getData", "/x", True).req("setData", buf("/x") + buf("new") + i32(-1))
    a.path_watch("exists", "/x", True).path_watch("getChildren2", "/", True).path_version("delete", "/x")
    a.req("ping", xid=-2).req("close")
    s.append(("basic", 0x00, a.out))

    a = Session()
    a.req("multi", multi_ops([
        ("create", buf("/m") + buf("1") + vec(OPEN_ACL) + i32(0)),
        ("create2", buf("/m/c") + buf(None) + vec(OPEN_ACL) + i32(2)),
        ("setData", buf("/m") + buf("2") + i32(0)),
        ("check", buf("/a") + i32(0)),
        ("delete", buf("/a/b") + i32(-1)),
    ]))
    a.req("multi", multi_ops([
        ("create", buf("/n") + buf("") + vec(OPEN_ACL) + i32(0)),
        ("check", buf("/a") + i32(7)),
    ]))
    a.req("multiRead", multi_ops([
        ("getData", buf("/a") + b(False)),
        ("getChildren", buf("/") + b(False)),
        ("getData", buf("/nope") + b(False)),
    ]))
    s.append(("multi", 0x01, a.out))

    a = Session()
    a.req("auth", i32(0) + buf("digest") + buf("u:p"), xid=-4)
    a.path_watch("getData", "/digest").req("getACL", buf("/digest"))
    a.req("setACL", buf("/digest") + vec([acl(31, "auth", ""), acl(1, "ip", "10.0.0.0/8")]) + i32(-1))
    a.create("/d", b"", 0, [acl(31, "digest", "u:kV1ZmmyOKf3SBfb+MNGIWB3lbdM=")])
    a.create("/x509", b"", 0, [acl(31, "x509", "CN=client,OU=fuzz,O=zkd")])
    a.req("whoAmI")
    s.append(("auth", 0x08, a.out))

    a = Session()
    a.create("/e", b"", 3).create("/e", b"", 3).create("/eph/child", b"")
    a.create("/t", b"", 5, ttl=1000, op="createTTL").create("/c", b"", 4, op="createContainer")
    a.req("getEphemerals", buf("/")).req("getAllChildrenNumber", buf("/a"))
    a.req("sync", buf("/a")).req("close")
    s.append(("ephemeral-ttl", 0x04 | 0x40, a.out))

    a = Session()
    a.req("setWatches", i64(0) + vec([buf("/a")]) + vec([buf("/nope")]) + vec([buf("/a/b")]), xid=-8)
    a.req("setWatches2", i64(5) + vec([buf("/a")]) + vec([buf("/x")]) + vec([buf("/")])
          + vec([buf("/a")]) + vec([buf("/zookeeper")]), xid=-8)
    a.req("addWatch", buf("/a") + i32(1)).req("addWatch", buf("/q") + i32(0))
    a.req("checkWatches", buf("/a") + i32(3)).req("removeWatches", buf("/a") + i32(2))
    a.create("/a/z", b"").req("setData", buf("/a") + buf("v") + i32(-1)).path_version("delete", "/a/z")
    s.append(("watches", 0x02, a.out))

    a = Session()
    a.path_watch("getData", "/a", True)
    for i in range(6):
        a.create("/p%d" % i, b"x" * i)
        a.path_watch("exists", "/p%d" % i)
    a.req("reconfig", buf("") + buf("") + buf("") + i64(-1)).req("sasl", buf("x"))
    s.append(("pipelined", 0x03 | 0x20, a.out))

    a = Session()
    a.create("/zookeeper/quota/a/b", b"").create("/a/q", b"123456")
    a.req("setData", buf("/zookeeper/quota/a/zookeeper_limits") + buf("count=1,bytes=2") + i32(-1))
    a.create("/ro/x", b"").path_watch("getData", "/ro")
    s.append(("quota", 0x10, a.out))

    a = Session()
    a.path_watch("getData", "/a", True).create("/w", b"").path_watch("getChildren", "/")
    s.append(("read-only", 0x80, a.out))
    return s


def connect_streams():
    """(name, option bytes, stream from the first byte) for connect."""
    pw = java_password(HARNESS_SESSION)
    after = Session().path_watch("getData", "/a", True).create("/k", b"", 1).req("ping", xid=-2).out
    return [
        ("new", b"\x01\x00", connect_req() + after),
        ("new-old-client", b"\x01\x00", connect_req(read_only=None)),
        ("new-readonly-flag", b"\x01\x00", connect_req(read_only=False) + after),
        ("resume", b"\x01\x00", connect_req(HARNESS_SESSION, pw, read_only=False) + after),
        ("resume-bad-password", b"\x01\x00", connect_req(HARNESS_SESSION, b"\x01" * 16, read_only=False)),
        ("resume-takeover", b"\x21\x00", connect_req(HARNESS_SESSION, pw, read_only=False) + after),
        ("zxid-ahead", b"\x01\x00", connect_req(last_zxid=1 << 40, read_only=False)),
        ("learner-revalidate", b"\x0d\x00", connect_req(HARNESS_SESSION, pw, read_only=False) + after),
        ("learner-revalidate-no", b"\x05\x00", connect_req(HARNESS_SESSION, pw, read_only=False)),
        ("read-only", b"\x02\x00", connect_req(read_only=True) + after),
        ("not-serving", b"\x00\x00", connect_req(read_only=True)),
        ("timeouts", b"\x11\x00", connect_req(timeout=1, read_only=False) + after),
        ("x509", b"\x01\x01", connect_req(read_only=False) + after),
        ("x509-super", b"\x01\x03", connect_req(read_only=False)
         + Session().path_version("delete", "/digest").out),
    ]


# ---- txns ---------------------------------------------------------------------

def txn_header(type_, session=0x10000, cxid=1, zxid=0x100000001, time=1700000000000):
    return i64(session) + i32(cxid) + i64(zxid) + i64(time) + i32(type_)


def txns():
    acls = vec(OPEN_ACL)
    create = buf("/a/n") + buf("d") + acls + b(False) + i32(1)
    return [
        ("create", txn_header(1) + create),
        ("create-ephemeral", txn_header(1) + buf("/e") + buf(None) + acls + b(True) + i32(3)),
        ("create-v0", txn_header(1) + buf("/v0") + buf("d") + vec(None) + b(False)),
        ("create2", txn_header(15) + create),
        ("container", txn_header(19) + buf("/c") + buf("") + acls + i32(1)),
        ("ttl", txn_header(21) + buf("/t") + buf("") + acls + i32(1) + i64(5000)),
        ("delete", txn_header(2) + buf("/a")),
        ("delete-container", txn_header(20) + buf("/c")),
        ("setdata", txn_header(5) + buf("/a") + buf("new") + i32(3)),
        ("setacl", txn_header(7) + buf("/a") + vec(READ_ACL + OPEN_ACL) + i32(1)),
        ("check", txn_header(13) + buf("/a") + i32(2)),
        ("session", txn_header(-10) + i32(30000)),
        ("close", txn_header(-11) + vec([buf("/e"), buf("/f/g")])),
        ("close-old", txn_header(-11)),
        ("error", txn_header(-1) + i32(-101)),
        ("multi", txn_header(14) + vec([
            i32(1) + buf(create),
            i32(15) + buf(buf("/a/m") + buf(None) + acls + b(False) + i32(2)),
            i32(5) + buf(buf("/a") + buf("x") + i32(1)),
            i32(13) + buf(buf("/a") + i32(1)),
            i32(2) + buf(buf("/a/n")),
        ])),
        ("multi-failed", txn_header(14) + vec([i32(-1) + buf(i32(0)), i32(-1) + buf(i32(-110))])),
        ("reconfig", txn_header(16) + buf("/zookeeper/config") + buf("server.1=a:1:2") + i32(-1)),
    ]


# ---- snapshot stream ------------------------------------------------------------

def stat_persisted(czxid, mzxid, version=0, cversion=0, aversion=0, owner=0, pzxid=None):
    return (i64(czxid) + i64(mzxid) + i64(1700000000000) + i64(1700000000000) + i32(version)
            + i32(cversion) + i32(aversion) + i64(owner) + i64(pzxid if pzxid is not None else mzxid))


def snap_body(extra_nodes=True, sessions=((0x10000, 30000), (0x10001, 4000))):
    out = i32(len(sessions)) + b"".join(i64(s) + i32(t) for s, t in sessions)
    acl_map = [(1, vec(OPEN_ACL)), (2, vec(READ_ACL + [acl(31, "digest", "u:kV1ZmmyOKf3SBfb+MNGIWB3lbdM=")]))]
    out += i32(len(acl_map)) + b"".join(i64(i) + v for i, v in acl_map)
    nodes = [("", None, -1, stat_persisted(0, 0, cversion=3, pzxid=5)),
             ("/zookeeper", b"", -1, stat_persisted(0, 0)),
             ("/zookeeper/quota", b"", -1, stat_persisted(0, 0))]
    if extra_nodes:
        nodes += [("/a", b"hello", 1, stat_persisted(1, 2, version=1, cversion=1, pzxid=3)),
                  ("/a/b", None, 2, stat_persisted(3, 3)),
                  ("/e", b"", 1, stat_persisted(4, 4, owner=0x10000)),
                  ("/c", b"", 1, stat_persisted(5, 5, owner=-0x8000000000000000)),
                  ("/zookeeper/quota/a", b"", 1, stat_persisted(6, 6)),
                  ("/zookeeper/quota/a/zookeeper_limits", b"count=5,bytes=100", 1, stat_persisted(7, 7)),
                  ("/zookeeper/quota/a/zookeeper_stats", b"count=1,bytes=5", 1, stat_persisted(8, 8))]
    for path, data, acl_id, st in nodes:
        out += buf(path) + buf(data) + i64(acl_id) + st
    return out + buf("/")


def snap_stream(**kw):
    return snap_body(**kw) + buf("BenWasHere")


# ---- quorum packets ---------------------------------------------------------------

def qp(type_, zxid=0, data=None, auth=None):
    return i32(type_) + i64(zxid) + buf(data) + vec(auth)


def quorum_streams():
    t = dict(txns())
    auth = [buf("digest") + buf("u:kV1ZmmyOKf3SBfb+MNGIWB3lbdM="), buf("ip") + buf("127.0.0.1")]
    return [
        ("leaderinfo", qp(17, 0x100000000, i32(0x10000))),
        ("diff-proposals", qp(13, 0x100000003) + qp(2, 0x100000004, t["create"]) + qp(4, 0x100000004)
         + qp(2, 0x100000005, t["multi"]) + qp(10, 0x100000000) + qp(12)),
        ("snap", qp(15, 0x100000008) + snap_stream() + qp(10, 0x100000008) + qp(12)),
        ("snap-bare", qp(15, 0x100000000) + snap_stream(extra_nodes=False, sessions=()) + qp(12)),
        ("trunc", qp(14, 0x100000002) + qp(10) + qp(12)),
        ("broadcast", qp(8, 0x100000006, t["setdata"]) + qp(5, 0, i64(0x10000) + i32(30000))
         + qp(6, 0, i64(0x10000) + b(True)) + qp(7) + qp(2, 0x100000007, t["close"])),
        ("request-auth", qp(1, 0, i64(0x10000) + i32(3) + i32(1) + buf("/x") + buf("") + vec(OPEN_ACL) + i32(0),
                           auth)),
        ("followerinfo", qp(11, 0x100000000, i64(2) + i32(0x10000) + i64(0)) + qp(18, 0x100000000, i32(1))),
    ]


# ---- election -----------------------------------------------------------------------

def notification(version=2, state=0, leader=3, zxid=0x100000005, epoch=7, peer_epoch=1,
                 config=b"server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nversion=0"):
    body = i32(state) + i64(leader) + i64(zxid) + i64(epoch)
    if version is None:
        return body                                # 28 bytes: before peer epochs
    body += i64(peer_epoch)
    if version == 0:
        return body + i32(0)                        # 40 bytes: no version read
    body += i32(version)
    if version > 1:
        body += i32(len(config)) + config
    return body


def fle_seeds():
    return [
        ("v2", notification()),
        ("v2-empty-config", notification(config=b"")),
        ("v1", notification(version=1)),
        ("40", notification(version=0)),
        ("28", notification(version=None)),
        ("following", notification(state=1, leader=1)),
        ("observing", notification(state=3, config=b"version=100000000")),
    ]


def cnx_streams():
    addr = b"127.0.0.1:3888"
    v1 = i64(-65536) + i64(5) + i32(len(addr)) + addr
    v2addr = b"[::1]:3888|127.0.0.1:3889|0.0.0.0:3890"
    v2 = i64(-65535) + i64(5) + i32(len(v2addr)) + v2addr
    msgs = frame(notification()) + frame(notification(version=None)) + frame(notification(state=2))
    return [
        ("v1", b"\x00" + v1 + msgs),
        ("v2", b"\x07" + v2 + msgs),
        ("old", b"\x03" + i64(5) + msgs),
        ("messages", b"\x41" + msgs),
        ("observer", b"\x00" + i64(-65536) + i64(0x7fffffffffffffff) + i32(len(addr)) + addr),
    ]


# ---- jute records ---------------------------------------------------------------------

def jute_seeds():
    return [
        ("connect", connect_req(read_only=True)[4:]),
        ("connect-old", connect_req()[4:]),
        ("create", buf("/a/b") + buf("data") + vec(OPEN_ACL + [acl(3, "ip", "10.1.0.0/16")]) + i32(3) + i64(100)),
        ("create-null-acl", buf("/a") + buf(None) + vec(None) + i32(0)),
        ("setwatches2", i64(10) + vec([buf("/a"), buf("/b")]) + vec([buf(None)]) + vec([]) + vec([buf("/")])
         + vec(None)),
        ("multi", multi_ops([("create", buf("/m") + buf("") + vec(OPEN_ACL) + i32(0)),
                             ("delete", buf("/m") + i32(-1))])),
        ("auth", i32(0) + buf("digest") + buf("u:p")),
        ("stat", stat_persisted(1, 2, 3, 4, 5, 6, 7) + i32(0) + i32(0)),
        ("reply", i32(-1) + i64(-1) + i32(0) + i32(1) + i32(3) + buf("/a")),
        ("program", bytes([5, 0, 1, 2, 3, 9]) + i32(4) + b"abcd" + i64(7) + i32(2)),
    ]


# -----------------------------------------------------------------------------------------

def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, data in jute_seeds():
        write("jute", name, data)
    for name, opt, stream in client_streams():
        write("client_frames", name, bytes([opt]) + stream)
    for name, opts, stream in connect_streams():
        write("connect", name, opts + stream)
    for name, data in txns():
        write("txn", name, data)
    for name, data in quorum_streams():
        write("quorum", name, data)
    write("snapstream", "full", b"\x00" + snap_stream())
    write("snapstream", "minimal", b"\x02" + snap_stream(extra_nodes=False, sessions=()))
    write("snapstream", "small-bound", b"\x01" + snap_stream())
    write("snapstream", "no-signature", b"\x00" + snap_body())
    for name, data in fle_seeds():
        write("fle", name, data)
    for name, data in cnx_streams():
        write("cnx", name, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
