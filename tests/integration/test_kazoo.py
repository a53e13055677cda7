"""Integration tests driving a ZooKeeper-compatible server with kazoo.

Target: ZK_ADDR=host:port (default 127.0.0.1:2181), a standalone server with
tickTime=2000 (so session timeouts are clamped to [4 s, 40 s]).  Run with
the system interpreter, which has Debian's python3-kazoo:

    ZK_ADDR=127.0.0.1:2181 /usr/bin/python3 -m pytest tests/integration/test_kazoo.py

Every test works under its own unique top-level znode and removes it.
Session tests route a client through a small loopback TCP proxy so that
the test can cut the client's connection (or refuse new ones) without
closing its session.  Nothing here sleeps and hopes: conditions are polled
against deadlines, and every test is bounded by a SIGALRM watchdog.
"""
import os
import re
import socket
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)

ZK_ADDR = os.environ.get("ZK_ADDR", "127.0.0.1:2181")
TEST_TIMEOUT = 60          # seconds, per test (SIGALRM watchdog)
START_TIMEOUT = 15         # seconds for a client to connect
FAST_RETRY = dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5)


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def wait_for(cond, timeout, what):
    """Polls cond() until it returns a truthy value; fails the test at the
    deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


# --------------------------------------------------------------------------
# fixtures


# watchdog (per-test SIGALRM, TEST_TIMEOUT above): conftest.py


class StateLog:
    """Records a client's KazooState transitions (listener) for polling."""

    def __init__(self, client):
        self.states = []
        self._lock = threading.Lock()
        client.add_listener(self._on_state)

    def _on_state(self, state):
        with self._lock:
            self.states.append(state)

    def snapshot(self):
        with self._lock:
            return list(self.states)

    def seen_after(self, mark, state):
        return state in self.snapshot()[mark:]


@pytest.fixture
def clients(proxy):
    """Factory for started clients; all are stopped at teardown.  (Depends on
    `proxy` only so that the proxy outlives the clients: a proxied client
    must still reach the server to close its session.)"""
    made = []

    def make(hosts=ZK_ADDR, start=True, **kw):
        c = KazooClient(hosts=hosts, **kw)
        made.append(c)
        if start:
            c.start(timeout=START_TIMEOUT)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:  # noqa: BLE001 - best effort teardown
            pass


@pytest.fixture
def zk(clients):
    return clients()


@pytest.fixture
def root(request):
    """A unique top-level znode for this test; removed (recursively) at the
    end by a separate client, so it works even if the test's clients are
    stopped or broken."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]
    path = "/itest-kazoo-%s-%s" % (name, uuid.uuid4().hex[:8])
    c = KazooClient(hosts=ZK_ADDR)
    c.start(timeout=START_TIMEOUT)
    try:
        c.create(path, b"")
        yield path
        c.delete(path, recursive=True)
        assert c.exists(path) is None
    finally:
        c.stop()
        c.close()


class Proxy:
    """Loopback TCP proxy in front of ZK_ADDR.

    drop_all() cuts every proxied connection (the server sees the client's
    socket close, the client sees its connection drop); refuse(True) makes it
    close new connections right after accepting them, so a client keeps
    retrying without reaching the server."""

    def __init__(self, target=ZK_ADDR):
        self.target = split_addr(target)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self._lock = threading.Lock()
        self._socks = []
        self._refusing = False
        self.accepted = 0
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                refusing = self._refusing
            if refusing:
                c.close()
                continue
            try:
                u = socket.create_connection(self.target, timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self._lock:
                self._socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def refuse(self, on):
        with self._lock:
            self._refusing = on

    def drop_all(self):
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for s in socks:
            s.close()

    def close(self):
        self.lsock.close()
        self.drop_all()


@pytest.fixture
def proxy():
    p = Proxy()
    yield p
    p.close()


# --------------------------------------------------------------------------
# tests


def test_connect(zk):
    assert zk.connected
    assert zk.state == KazooState.CONNECTED
    session_id, passwd = zk.client_id
    assert session_id != 0
    assert len(passwd) == 16
    assert zk.command(b"ruok") == "imok"
    # "/" always exists and holds the /zookeeper system node.
    assert "zookeeper" in zk.get_children("/")
    assert zk.exists("/") is not None


def test_server_version_is_3_8(zk):
    # kazoo parses zookeeper.version from the `envi` four-letter word.
    assert zk.server_version()[:2] == (3, 8)


def test_create_get_set_delete(zk, root):
    path = root + "/node"
    assert zk.create(path, b"hello") == path
    data, stat = zk.get(path)
    assert data == b"hello"
    assert stat.version == 0
    assert stat.dataLength == 5

    stat = zk.set(path, b"world!")
    assert stat.version == 1
    data, stat2 = zk.get(path)
    assert data == b"world!"
    assert stat2 == stat

    # binary data round-trips unchanged, including NUL and high bytes
    blob = bytes(range(256)) * 64
    zk.set(path, blob)
    assert zk.get(path)[0] == blob

    # empty data
    zk.set(path, b"")
    data, stat = zk.get(path)
    assert data == b""
    assert stat.dataLength == 0

    zk.delete(path)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.get(path)


def test_create_include_data_returns_stat(zk, root):
    # kazoo sends create2 (opcode 15) for include_data=True
    path, stat = zk.create(root + "/c2", b"abc", include_data=True)
    assert path == root + "/c2"
    assert stat == zk.exists(path)
    assert stat.dataLength == 3
    assert stat.version == 0


def test_ensure_path(zk, root):
    deep = root + "/a/b/c"
    assert zk.ensure_path(deep)
    for p in (root + "/a", root + "/a/b", deep):
        data, stat = zk.get(p)
        assert data == b""
        assert stat.ephemeralOwner == 0
    assert zk.get_children(root + "/a") == ["b"]
    # idempotent: a second call succeeds and changes nothing
    before = zk.exists(deep)
    assert zk.ensure_path(deep)
    assert zk.exists(deep) == before
    # create(makepath=True) also creates missing parents
    assert zk.create(root + "/x/y/z", b"v", makepath=True) == root + "/x/y/z"
    assert zk.get(root + "/x/y/z")[0] == b"v"


def test_ephemeral_vanishes_after_client_stop(clients, root):
    owner = clients()
    observer = clients()
    path = root + "/eph"
    owner.create(path, b"mine", ephemeral=True)
    session_id = owner.client_id[0]

    stat = observer.exists(path)
    assert stat is not None
    assert stat.ephemeralOwner == session_id
    assert observer.get(path)[0] == b"mine"

    # stop() closes the session and returns once the server has answered
    # the close; by then ZooKeeper has deleted the session's ephemerals.
    owner.stop()
    assert observer.exists(path) is None
    assert observer.get_children(root) == []


def test_ephemeral_cannot_have_children(zk, root):
    zk.create(root + "/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(root + "/eph/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(root + "/eph/seq-", sequence=True)


def test_sequence_nodes(zk, root):
    p = root + "/seq"
    zk.create(p)
    assert zk.create(p + "/n-", b"a", sequence=True) == p + "/n-0000000000"
    assert zk.create(p + "/n-", b"b", sequence=True) == p + "/n-0000000001"
    # the counter is per parent and shared by every child name
    assert zk.create(p + "/other-", sequence=True) == p + "/other-0000000002"
    zk.create(p + "/plain")
    assert zk.create(p + "/n-", sequence=True) == p + "/n-0000000004"
    # ephemeral sequential; and an empty prefix (path ending in "/")
    eph = zk.create(p + "/e-", ephemeral=True, sequence=True)
    assert eph == p + "/e-0000000005"
    assert zk.exists(eph).ephemeralOwner == zk.client_id[0]
    assert zk.create(p + "/", sequence=True) == p + "/0000000006"

    # The suffix counts the creates under the parent: deletes do not
    # advance it, although they do advance the parent's cversion.
    assert zk.exists(p).cversion == 7
    zk.delete(p + "/plain")
    zk.delete(p + "/n-0000000000")
    assert zk.exists(p).cversion == 9
    assert zk.create(p + "/n-", sequence=True) == p + "/n-0000000007"
    assert zk.exists(p).cversion == 10

    kids = zk.get_children(p)
    assert sorted(kids) == ["0000000006", "e-0000000005", "n-0000000001",
                            "n-0000000004", "n-0000000007", "other-0000000002"]
    for k in kids:
        assert re.fullmatch(r"(.*-)?\d{10}", k), k
    assert zk.get(p + "/n-0000000001")[0] == b"b"


def test_get_children(zk, root):
    names = ["b", "a", "c-1", "zz", "x.y"]
    for n in names:
        zk.create(root + "/" + n, n.encode())
    assert sorted(zk.get_children(root)) == sorted(names)
    assert zk.get_children(root + "/a") == []

    kids, stat = zk.get_children(root, include_data=True)
    assert sorted(kids) == sorted(names)
    assert stat == zk.exists(root)
    assert stat.numChildren == len(names)

    # grandchildren are not listed
    zk.create(root + "/a/deeper")
    assert sorted(zk.get_children(root)) == sorted(names)
    assert zk.get_children(root + "/a") == ["deeper"]

    with pytest.raises(NoNodeError):
        zk.get_children(root + "/missing")


def test_stat_fields(zk, root):
    p = root + "/s"
    now_ms = time.time() * 1000
    zk.create(p, b"hello")
    st = zk.exists(p)
    assert (st.version, st.cversion, st.aversion) == (0, 0, 0)
    assert st.ephemeralOwner == 0
    assert st.dataLength == 5
    assert st.numChildren == 0
    assert st.czxid == st.mzxid == st.pzxid
    assert st.czxid > zk.exists(root).czxid
    assert st.ctime == st.mtime
    assert abs(st.ctime - now_ms) < 60_000, "ctime is not wall-clock ms"

    st1 = zk.set(p, b"hello world!")
    assert st1.version == 1
    assert st1.dataLength == 12
    assert st1.czxid == st.czxid and st1.ctime == st.ctime
    assert st1.mzxid > st.mzxid
    assert st1.mtime >= st.mtime
    assert st1.pzxid == st.pzxid
    assert st1.cversion == 0
    assert zk.exists(p) == st1
    st2 = zk.set(p, b"x")
    assert st2.version == 2
    assert st2.mzxid > st1.mzxid

    # children: numChildren, cversion and pzxid change; data fields do not
    c1 = zk.create(p + "/c1", include_data=True)[1]
    s = zk.exists(p)
    assert (s.numChildren, s.cversion, s.pzxid) == (1, 1, c1.czxid)
    assert (s.version, s.mzxid, s.dataLength) == (2, st2.mzxid, 1)
    c2 = zk.create(p + "/c2", include_data=True)[1]
    assert c2.czxid > c1.czxid
    s = zk.exists(p)
    assert (s.numChildren, s.cversion, s.pzxid) == (2, 2, c2.czxid)
    mzxid_before = s.mzxid
    zk.delete(p + "/c1")
    s = zk.exists(p)
    assert (s.numChildren, s.cversion) == (1, 3)
    assert s.pzxid > c2.czxid          # the delete's zxid
    assert s.mzxid == mzxid_before
    assert s.version == 2

    # ephemeralOwner is the owning session's id
    e = zk.create(p + "/eph", ephemeral=True, include_data=True)[1]
    assert e.ephemeralOwner == zk.client_id[0]
    assert zk.exists(p + "/eph").ephemeralOwner == zk.client_id[0]


def test_errors(zk, root):
    p = root + "/e"
    missing = root + "/missing"
    with pytest.raises(NoNodeError):
        zk.get(missing)
    with pytest.raises(NoNodeError):
        zk.set(missing, b"x")
    with pytest.raises(NoNodeError):
        zk.delete(missing)
    with pytest.raises(NoNodeError):
        zk.create(missing + "/child")
    assert zk.exists(missing) is None

    zk.create(p, b"v0")
    with pytest.raises(NodeExistsError):
        zk.create(p, b"other")
    assert zk.get(p)[0] == b"v0"

    with pytest.raises(BadVersionError):
        zk.set(p, b"v1", version=1)
    assert zk.set(p, b"v1", version=0).version == 1
    assert zk.set(p, b"v2", version=-1).version == 2   # -1: any version
    with pytest.raises(BadVersionError):
        zk.delete(p, version=0)
    data, stat = zk.get(p)
    assert (data, stat.version) == (b"v2", 2)

    zk.create(p + "/child")
    with pytest.raises(NotEmptyError):
        zk.delete(p)
    assert zk.exists(p) is not None
    zk.delete(p + "/child", version=0)
    zk.delete(p, version=2)
    assert zk.exists(p) is None

    # the session is still healthy after all those errors
    assert zk.connected
    assert zk.create(p, b"again") == p


def test_session_survives_connection_drop(clients, root, proxy):
    c = clients(hosts=proxy.addr, connection_retry=FAST_RETRY)
    log = StateLog(c)
    observer = clients()
    sid, passwd = c.client_id
    path = root + "/eph"
    c.create(path, b"still here", ephemeral=True)

    mark = len(log.snapshot())
    accepted = proxy.accepted
    proxy.drop_all()
    wait_for(lambda: log.seen_after(mark, KazooState.SUSPENDED), 10,
             "the client to notice the dropped connection")
    wait_for(lambda: log.seen_after(mark, KazooState.CONNECTED), 15,
             "the client to reconnect")
    assert proxy.accepted > accepted, "did not reconnect through the proxy"
    assert KazooState.LOST not in log.snapshot()[mark:]
    # same session: same id and password, ephemeral kept
    assert c.client_id == (sid, passwd)
    assert observer.exists(path).ephemeralOwner == sid
    assert c.get(path)[0] == b"still here"
    c.create(root + "/after", b"x")
    assert observer.get(root + "/after")[0] == b"x"


def test_session_reattach_with_client_id(clients, root, proxy):
    a = clients(hosts=proxy.addr, connection_retry=FAST_RETRY)
    log = StateLog(a)
    observer = clients()
    sid, passwd = a.client_id
    path = root + "/eph"
    a.create(path, b"a", ephemeral=True)

    # Cut a off from the server without closing its session.
    mark = len(log.snapshot())
    proxy.refuse(True)
    proxy.drop_all()
    wait_for(lambda: log.seen_after(mark, KazooState.SUSPENDED), 10,
             "client a to lose its connection")

    # b resumes a's session by id + password
    b = clients(client_id=(sid, passwd))
    assert b.client_id[0] == sid
    assert b.exists(path).ephemeralOwner == sid
    b.create(root + "/eph-b", ephemeral=True)
    assert observer.exists(root + "/eph-b").ephemeralOwner == sid

    # a wrong password does not get the session: the client is refused
    # (kazoo then starts a fresh session), and b's session lives on.
    bad = bytes(x ^ 0xFF for x in passwd)
    d = clients(client_id=(sid, bad))
    assert d.client_id[0] not in (0, sid)
    assert b.retry(b.exists, path).ephemeralOwner == sid

    # closing the session (from b) removes both ephemerals at once
    b.stop()
    assert observer.exists(path) is None
    assert observer.exists(root + "/eph-b") is None

    # a closed session cannot be resumed: a new session is created instead
    e = clients(client_id=(sid, passwd))
    assert e.client_id[0] not in (0, sid)

    # a reaches the server again, learns its session is gone (LOST), then
    # kazoo starts a new session.
    proxy.refuse(False)
    wait_for(lambda: log.seen_after(mark, KazooState.LOST), 15,
             "client a to be told its session expired")
    wait_for(lambda: a.connected and a.client_id and a.client_id[0] != sid,
             15, "client a to get a new session")


def test_session_expiry_removes_ephemerals(clients, root, proxy):
    # tickTime=2000: a 4 s session expires between 4 and 6 s after the
    # server last heard from the client.
    a = clients(hosts=proxy.addr, timeout=4.0, connection_retry=FAST_RETRY)
    log = StateLog(a)
    observer = clients()
    sid = a.client_id[0]
    path = root + "/eph"
    a.create(path, ephemeral=True)

    mark = len(log.snapshot())
    proxy.refuse(True)
    assert a.exists(path) is not None      # last message before the cut
    t_cut = time.monotonic()
    proxy.drop_all()

    st = observer.exists(path)
    if time.monotonic() - t_cut < 2.0:
        assert st is not None and st.ephemeralOwner == sid, \
            "session expired long before its timeout"
    wait_for(lambda: observer.exists(path) is None, 4.0 + 2.0 + 4.0,
             "the expired session's ephemeral to be deleted")
    assert time.monotonic() - t_cut >= 3.5, "session expired before 4 s"

    proxy.refuse(False)
    wait_for(lambda: log.seen_after(mark, KazooState.LOST), 15,
             "client a to be told its session expired")
    wait_for(lambda: a.connected and a.client_id and a.client_id[0] != sid,
             15, "client a to get a new session")
