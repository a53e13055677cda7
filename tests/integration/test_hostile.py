"""Bad input never crashes the server or disturbs another session.

    ZK_ADDR=host:port /usr/bin/python3 -m pytest tests/integration/test_hostile.py -v

While a healthy session keeps reading and writing in a background thread
(zkraw, so that any hiccup -- an error, a dropped connection, a stall of
several seconds -- is seen, not papered over by a client library's
reconnect), other connections send bad input.  After every case:

  * the server answers `ruok` with `imok`;
  * the healthy session is still the same session and makes progress
    (its writes and reads keep succeeding and read back what it wrote);
  * a brand-new session can connect, write and read;
  * the bad connection got what ZooKeeper gives it: where ZooKeeper 3.8
    closes the connection, it must be closed; where ZooKeeper answers an
    error, an error reply (for that xid) or a close is acceptable -- never
    silence and never success for a request that cannot be decoded.  When
    the connection stays open after an error reply, it must still work
    (the framing was not lost).

What ZooKeeper 3.8.0 does (measured with these tests against the Debian
package, zk38-standalone.sh):

  frame length > jute.maxbuffer or negative   close (before or after the handshake)
  ConnectRequest frame too short / bad passwd length / random bytes   close
  ConnectRequest for an unknown session id    ConnectResponse(timeout 0, id 0), close
  ConnectRequest with lastZxidSeen ahead      close, no response
  request frame shorter than its 8-byte header   close
  truncated body, any opcode but auth         MarshallingError (-5), connection stays usable
  truncated auth (or bad lengths in it)       close
  bad lengths inside records (past the end, huge, negative but -1)
                                              MarshallingError (-5), except: negative ACL
                                              counts (create: BadArguments -8, setACL:
                                              InvalidACL -114)
  null (-1) strings                           an error, except sync(null) which answers OK
  unknown opcode                              Unimplemented (-6), then close
  half a frame, then nothing                  nothing (the connection waits; its session
                                              expires in due course); others unaffected

Time is bounded: every wait has a deadline and each test has a SIGALRM
watchdog.  ZK_HOSTILE_SEED fixes the random cases' seed (printed).
"""
import os
import random
import socket
import struct
import threading
import time
import uuid

import pytest

import zkraw as z
from zkraw import boolean, buf, i32, i64, string

ZK_ADDR = os.environ.get("ZK_ADDR", "127.0.0.1:2181")
TEST_TIMEOUT = 90            # s per test (SIGALRM watchdog)
ANSWER_TIMEOUT = 10.0        # s the server may take to answer or close a bad connection
HANG = 5.0                   # s without progress on the healthy session = disturbed
SEED = int(os.environ.get("ZK_HOSTILE_SEED", "0")) or random.randrange(1, 1 << 30)


# ---------------------------------------------------------------- fixtures

# watchdog (per-test SIGALRM, TEST_TIMEOUT above): conftest.py


@pytest.fixture
def rng(request):
    seed = SEED + sum(map(ord, request.node.name))
    print("random seed for %s: %d (ZK_HOSTILE_SEED=%d)" % (request.node.name, seed, SEED))
    return random.Random(seed)


@pytest.fixture
def root(request):
    name = request.node.name.replace("[", "-").replace("]", "")
    path = "/itest-hostile-%s-%s" % ("".join(ch if ch.isalnum() or ch in "-_" else "_"
                                            for ch in name[5:45]), uuid.uuid4().hex[:8])
    c = z.ZKRaw(ZK_ADDR, timeout_ms=30000)
    try:
        c.ok(z.create(path))
        yield path
        z.rmr(c, path, timeout=60)
    finally:
        c.close()


class Healthy:
    """A session that reads and writes in a loop on its own thread:
    setData(h<i>) then getData, which must return h<i> at version i."""

    def __init__(self, root):
        self.node = root + "/healthy"
        self.conn = z.ZKRaw(ZK_ADDR, timeout_ms=30000)
        self.conn.ok(z.create(self.node, b"h0"))
        self.session_id = self.conn.session_id
        self.rounds = 0
        self.error = None
        self.max_gap = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        last = time.monotonic()
        try:
            while not self._stop.is_set():
                i += 1
                data = b"h%d" % i
                reps = z.pipeline(self.conn, [z.set_data(self.node, data), z.get_data(self.node)],
                                  timeout=30)
                if reps[0].err != z.OK or reps[1].err != z.OK:
                    raise AssertionError("healthy session: errors %d, %d"
                                         % (reps[0].err, reps[1].err))
                if reps[1].value[0] != data or reps[1].value[1].version != i:
                    raise AssertionError("healthy session: read %r version %d after writing %r "
                                         "(version %d)" % (reps[1].value[0], reps[1].value[1].version,
                                                           data, i))
                now = time.monotonic()
                with self._lock:
                    self.rounds = i
                    self.max_gap = max(self.max_gap, now - last)
                last = now
                self._stop.wait(0.002)      # pace: leave the CPU to the attack
        except BaseException as e:  # noqa: BLE001 - reported by check()
            self.error = "%s: %s" % (type(e).__name__, e)

    def check(self, what):
        """The session is still alive, the same, and makes progress now."""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        with self._lock:
            start = self.rounds
        while True:
            assert self.error is None, "healthy session broken after %s: %s" % (what, self.error)
            with self._lock:
                if self.rounds >= start + 3:
                    break
            assert time.monotonic() < deadline, (
                "healthy session made no progress for %.0fs after %s" % (ANSWER_TIMEOUT, what))
            time.sleep(0.01)
        assert self.conn.session_id == self.session_id and not self.conn.closed
        assert self.max_gap < HANG, (
            "healthy session stalled for %.1fs during %s" % (self.max_gap, what))

    def stop(self):
        self._stop.set()
        self.thread.join(30)
        self.conn.close()


@pytest.fixture
def healthy(root):
    h = Healthy(root)
    yield h
    h.stop()
    assert h.error is None, h.error


@pytest.fixture
def conns():
    """Factory for raw connections (handshake=False: no session); all are
    dropped at teardown, sessions closed where the connection still works."""
    made = []

    def make(handshake=True, **kw):
        c = z.ZKRaw(ZK_ADDR, handshake=handshake, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        if c.closed or not c.session_id:
            c.abort()
        else:
            c.close(timeout=2)


def server_ok(healthy, what):
    """The checks made after every case."""
    try:
        answer = z.four_letter(ZK_ADDR, "ruok", timeout=ANSWER_TIMEOUT)
    except (OSError, z.Timeout) as e:
        pytest.fail("server does not answer ruok after %s: %s" % (what, e))
    assert answer == "imok", "ruok after %s answered %r" % (what, answer)
    healthy.check(what)
    with z.ZKRaw(ZK_ADDR, timeout_ms=10000) as c:
        p = healthy.node + "-fresh"
        c.ok(z.create(p, b"fresh"))
        assert c.ok(z.get_data(p))[0] == b"fresh"
        c.ok(z.delete(p))


def expect_closed(conn, what):
    assert conn.wait_closed(ANSWER_TIMEOUT), (
        "%s: the server left the connection open (ZooKeeper closes it)" % what)


def expect_error_or_close(conn, xid, what, must_close=False, allow_ok=False):
    """The server answers xid with an error (then the connection must still
    work), or closes the connection.  Returns 'close' or the error code."""
    kind, rep = conn.reply_or_close(ANSWER_TIMEOUT)
    assert kind != "silent", "%s: no reply and no close within %.0fs" % (what, ANSWER_TIMEOUT)
    if kind == "close":
        return "close"
    assert rep.xid == xid, "%s: reply for xid %d, expected %d" % (what, rep.xid, xid)
    if not allow_ok:
        assert rep.err != z.OK, "%s: the server answered OK to a request it cannot decode" % what
    if must_close:
        expect_closed(conn, what + " (after its error reply)")
        return rep.err
    try:
        alive = conn.call(z.exists("/"), timeout=ANSWER_TIMEOUT)
    except z.ConnectionClosed:
        return rep.err                   # an error reply, then a close: fine
    except z.Timeout:
        pytest.fail("%s: after the error reply the connection neither works nor closes" % what)
    assert alive.err == z.OK and alive.op == z.EXISTS, (
        "%s: connection unusable after the error reply: %s" % (what, alive))
    return rep.err


# ---------------------------------------------------------------- framing

@pytest.mark.parametrize("when", ["before-handshake", "after-handshake"])
def test_frame_length_over_maxbuffer_closes_connection(healthy, conns, when):
    for length in (z.MAXBUFFER + 1, 0x100000 * 16, 0x7FFFFFFF):
        c = conns(handshake=(when == "after-handshake"))
        c.send_raw(i32(length) + b"\0" * 64)
        expect_closed(c, "frame length %d %s" % (length, when))
        server_ok(healthy, "frame length %d %s" % (length, when))


@pytest.mark.parametrize("when", ["before-handshake", "after-handshake"])
def test_negative_frame_length_closes_connection(healthy, conns, when):
    for length in (-1, -2, -0x80000000):
        c = conns(handshake=(when == "after-handshake"))
        c.send_raw(i32(length) + b"\0" * 64)
        expect_closed(c, "frame length %d %s" % (length, when))
        server_ok(healthy, "frame length %d %s" % (length, when))


def test_truncated_connect_request_then_client_closes(healthy, conns):
    full = z.frame(z.connect_request())
    for cut in range(1, len(full)):
        for rst in (False, True):
            c = conns(handshake=False)
            c.send_raw(full[:cut])
            c.abort(rst=rst)
    server_ok(healthy, "truncated ConnectRequests")


def test_connect_request_frame_too_short_closes_connection(healthy, conns):
    body = z.connect_request()
    for cut in range(0, 44, 3):       # 44: the request without its optional readOnly flag
        c = conns(handshake=False)
        c.send_frame(body[:cut])
        expect_closed(c, "ConnectRequest cut to %d bytes" % cut)
    server_ok(healthy, "short ConnectRequests")


def connect_refused(c, what):
    """Reads what the server says to a bad ConnectRequest: nothing or a
    refusing ConnectResponse (timeout <= 0), then the connection must close."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    try:
        while True:
            p = c.read_frame(deadline)
            r = z.Reader(p)
            r.int()
            timeout, sid = r.int(), r.long()
            assert timeout <= 0, (
                "%s: the server granted a session (%#x, timeout %d)" % (what, sid, timeout))
    except z.ConnectionClosed:
        return
    except z.Timeout:
        pytest.fail("%s: the connection was not closed within %.0fs" % (what, ANSWER_TIMEOUT))


def test_garbage_connect_request_closes_connection(healthy, conns, rng):
    pw = b"\0" * 16
    cases = [
        ("all 0xff", b"\xff" * 44),
        ("passwd length past the end", i32(0) + i64(0) + i32(10000) + i64(0) + i32(100) + pw + b"\0"),
        ("passwd length huge", i32(0) + i64(0) + i32(10000) + i64(0) + i32(0x7FFFFFFF) + pw + b"\0"),
        ("passwd length -2", i32(0) + i64(0) + i32(10000) + i64(0) + i32(-2) + pw + b"\0"),
        ("unknown session id", z.connect_request(session_id=0x7E57DEAD)),
        ("lastZxidSeen ahead of the server", z.connect_request(last_zxid=0x7FFFFFFF00000000)),
    ]
    for k in range(20):
        n = rng.choice([44, 45, rng.randrange(1, 120)])
        cases.append(("random %d bytes #%d" % (n, k), bytes(rng.getrandbits(8) for _ in range(n))))
    for what, payload in cases:
        c = conns(handshake=False)
        c.send_frame(payload)
        connect_refused(c, "garbage ConnectRequest (%s)" % what)
    server_ok(healthy, "garbage ConnectRequests")


def test_frame_too_short_for_request_header_closes_connection(healthy, conns):
    for n in range(0, 8):
        c = conns()
        c.send_frame(b"\x01" * n)
        expect_closed(c, "a %d-byte request frame" % n)
        server_ok(healthy, "a %d-byte request frame" % n)


# ---------------------------------------------------------------- truncated bodies

def valid_requests(root):
    n = root + "/x"
    return {
        "create": z.create(n, b"data"),
        "create2": z.create2(n, b"data"),
        "delete": z.delete(n),
        "exists": z.exists(n),
        "getData": z.get_data(n),
        "setData": z.set_data(n, b"data"),
        "getACL": z.get_acl(n),
        "setACL": z.set_acl(n),
        "getChildren": z.get_children(n),
        "getChildren2": z.get_children2(n),
        "check": z.check(n, 0),
        "multi": z.multi([z.create(n + "-m"), z.set_data(n + "-m", b"d"), z.delete(n + "-m")]),
        "sync": z.sync(n),
        "auth": z.auth("digest", b"user:password"),
        "setWatches": z.set_watches(0, [n], [n + "-e"], [n]),
    }


@pytest.mark.parametrize("opname", sorted(valid_requests("/")))
def test_truncated_request_body(healthy, conns, root, opname):
    """Every cut of the body: ZooKeeper answers MarshallingError (auth: it
    closes); zkd must answer an error for that xid or close."""
    op, body = valid_requests(root)[opname]
    c = conns()
    outcomes = {}
    for cut in range(len(body)):
        if c.closed:
            c = conns()
        xid = c.send((op, body[:cut]))
        what = "%s with its %d-byte body cut to %d bytes" % (opname, len(body), cut)
        got = expect_error_or_close(c, xid, what, must_close=(op == z.AUTH))
        outcomes.setdefault(got, []).append(cut)
    print("%s: outcome -> cuts %s" % (opname, outcomes))
    server_ok(healthy, "truncated %s bodies" % opname)


# ---------------------------------------------------------------- lengths inside records

def lie(length, content):
    """A jute string/buffer/vector length that does not match its content."""
    return i32(length) + content


ACL_TAIL = i32(31) + string("world") + string("anyone")
RECORD_LENGTHS = {
    # name: (opcode, body with the length under test = L); ZooKeeper closes for auth
    "getData.path": (z.GET_DATA, lambda L: lie(L, b"/x") + boolean(False)),
    "exists.path": (z.EXISTS, lambda L: lie(L, b"/x") + boolean(False)),
    "getChildren.path": (z.GET_CHILDREN, lambda L: lie(L, b"/x") + boolean(False)),
    "getChildren2.path": (z.GET_CHILDREN2, lambda L: lie(L, b"/x") + boolean(False)),
    "getACL.path": (z.GET_ACL, lambda L: lie(L, b"/x")),
    "sync.path": (z.SYNC, lambda L: lie(L, b"/x")),
    "delete.path": (z.DELETE, lambda L: lie(L, b"/x") + i32(-1)),
    "create.path": (z.CREATE, lambda L: lie(L, b"/x") + buf(b"") + z.acls(z.OPEN_ACL) + i32(0)),
    "create.data": (z.CREATE, lambda L: string("/x") + lie(L, b"abc") + z.acls(z.OPEN_ACL) + i32(0)),
    "create.acl-count": (z.CREATE, lambda L: string("/x") + buf(b"") + lie(L, ACL_TAIL) + i32(0)),
    "create.acl-scheme": (z.CREATE, lambda L: string("/x") + buf(b"") + i32(1) + i32(31)
                          + lie(L, b"world") + string("anyone") + i32(0)),
    "create.acl-id": (z.CREATE, lambda L: string("/x") + buf(b"") + i32(1) + i32(31)
                      + string("world") + lie(L, b"anyone") + i32(0)),
    "setData.data": (z.SET_DATA, lambda L: string("/x") + lie(L, b"abc") + i32(-1)),
    "setACL.acl-count": (z.SET_ACL, lambda L: string("/x") + lie(L, ACL_TAIL) + i32(-1)),
    "setWatches.data-count": (z.SET_WATCHES, lambda L: i64(0) + lie(L, string("/x")) + i32(0) + i32(0)),
    "setWatches.child-path": (z.SET_WATCHES, lambda L: i64(0) + i32(0) + i32(0) + i32(1) + lie(L, b"/x")),
    "multi.op-path": (z.MULTI, lambda L: i32(z.CREATE) + boolean(False) + i32(-1) + lie(L, b"/x")
                      + buf(b"") + z.acls(z.OPEN_ACL) + i32(0) + i32(-1) + boolean(True) + i32(-1)),
    "multi.op-data": (z.MULTI, lambda L: i32(z.SET_DATA) + boolean(False) + i32(-1) + string("/x")
                      + lie(L, b"abc") + i32(-1) + i32(-1) + boolean(True) + i32(-1)),
    "auth.scheme": (z.AUTH, lambda L: i32(0) + lie(L, b"digest") + buf(b"u:p")),
    "auth.data": (z.AUTH, lambda L: i32(0) + string("digest") + lie(L, b"u:p")),
}
BAD_LENGTHS = (1000, z.MAXBUFFER, z.MAXBUFFER + 1, 0x7FFFFFFF, -2, -0x80000000)


@pytest.mark.parametrize("field", sorted(RECORD_LENGTHS))
def test_lengths_inside_records(healthy, conns, root, field):
    """A length that points past the frame's end, is huge, or negative: an
    error reply or a close (auth: close, as ZooKeeper).  -1 is a null
    string/vector, legal on the wire: any reply or a close, not a hang."""
    op, make = RECORD_LENGTHS[field]
    c = conns()
    outcomes = {}
    for L in BAD_LENGTHS + (-1,):
        body = make(L)
        if c.closed:
            c = conns()
        xid = c.send((op, body))
        what = "%s with length %d" % (field, L)
        if L == -1:
            got = expect_error_or_close(c, xid, what, allow_ok=True,
                                        must_close=(field == "auth.data"))
        else:
            got = expect_error_or_close(c, xid, what, must_close=(op == z.AUTH))
        outcomes.setdefault(got, []).append(L)
    print("%s: outcome -> lengths %s" % (field, outcomes))
    server_ok(healthy, "bad lengths in %s" % field)


# ---------------------------------------------------------------- opcodes

UNKNOWN_OPS = [0, 10, 23, 50, 99, 108, 200, 12345, -3, -10, -12, -1000, 0x7FFFFFFF, -0x80000000]
# Opcodes ZooKeeper 3.8 has (some not implemented by zkd yet), with a body
# that is not a valid record for them.
OTHER_OPS = [z.RECONFIG, z.CHECK_WATCHES, z.REMOVE_WATCHES, z.CREATE_CONTAINER, z.DELETE_CONTAINER,
             z.CREATE_TTL, z.MULTI_READ, z.SASL, z.GET_EPHEMERALS, z.GET_ALL_CHILDREN_NUMBER,
             z.SET_WATCHES2, z.ADD_WATCH, z.WHO_AM_I]


def test_unknown_opcodes_close_connection(healthy, conns):
    """ZooKeeper answers Unimplemented (-6) and closes the connection."""
    for op in UNKNOWN_OPS:
        c = conns()
        xid = c.send((op, string("/") + b"\0\0\0\0"))
        what = "unknown opcode %d" % op
        kind, rep = c.reply_or_close(ANSWER_TIMEOUT)
        assert kind != "silent", "%s: no reply and no close" % what
        if kind == "reply":
            assert rep.xid in (xid, 0) and rep.err != z.OK, "%s: answered %s" % (what, rep)
            expect_closed(c, what)
    server_ok(healthy, "unknown opcodes")


def test_other_opcodes_with_bad_bodies(healthy, conns):
    """Opcodes of ZooKeeper 3.8 with bodies that do not decode: an answer
    (ZooKeeper: MarshallingError, or OK for sasl/whoAmI/getEphemerals/
    getAllChildrenNumber, which read less than was sent) or a close."""
    for op in OTHER_OPS:
        c = conns()
        xid = c.send((op, string("/") + b"\0"))
        expect_error_or_close(c, xid, "opcode %d with a bad body" % op, allow_ok=True)
    server_ok(healthy, "other opcodes")


# ---------------------------------------------------------------- random frames

KNOWN_OPS = [z.CREATE, z.DELETE, z.EXISTS, z.GET_DATA, z.SET_DATA, z.GET_ACL, z.SET_ACL,
             z.GET_CHILDREN, z.SYNC, z.PING, z.GET_CHILDREN2, z.CHECK, z.MULTI, z.CREATE2,
             z.AUTH, z.SET_WATCHES, z.CLOSE_SESSION] + OTHER_OPS
INTERESTING_INTS = [0, 1, -1, -2, 4, 1000, z.MAXBUFFER, z.MAXBUFFER + 1, 0x7FFFFFFF, -0x80000000]


def random_frame(rng, root, xid):
    """One frame payload: fully random, a random header and body, a valid
    request truncated, with bytes flipped, or with an int overwritten."""
    n = root + "/r" + str(rng.randrange(3))
    templates = [
        z.create(n, b"x" * rng.randrange(20)), z.create2(n), z.delete(n), z.exists(n, True),
        z.get_data(n, rng.random() < 0.5), z.set_data(n, b"y"), z.get_acl(n), z.get_children(n),
        z.get_children2(n, True), z.sync(n), z.check(n, 0), z.ping(),
        z.multi([z.create(n + "m"), z.check(n, 0), z.delete(n + "m")]),
        z.set_watches(0, [n], [n], [n]), z.auth("digest", b"u:p"),
    ]
    kind = rng.randrange(5)
    if kind == 0:
        return "random bytes", bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
    if kind == 1:
        op = rng.choice(KNOWN_OPS + [rng.randrange(-2 ** 31, 2 ** 31)])
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 48)))
        return "random body, op %d" % op, i32(rng.randrange(1, 2 ** 31)) + i32(op) + body
    op, body = rng.choice(templates)
    payload = bytearray(i32(z.SPECIAL_XID.get(op, xid)) + i32(op) + body)
    if kind == 2:
        cut = rng.randrange(0, len(payload))
        return "op %d truncated to %d bytes" % (op, cut), bytes(payload[:cut])
    if kind == 3:
        for _ in range(rng.randrange(1, 4)):
            payload[rng.randrange(len(payload))] = rng.getrandbits(8)
        return "op %d with flipped bytes" % op, bytes(payload)
    at = rng.randrange(0, max(1, len(payload) - 3))
    payload[at:at + 4] = i32(rng.choice(INTERESTING_INTS))
    return "op %d with an int at %d overwritten" % (op, at), bytes(payload[:len(payload)])


def test_random_frames_after_handshake(healthy, conns, root, rng):
    """1000 random frames on handshaken connections (a new one whenever the
    server closes one): each is answered or its connection is closed."""
    watcher = z.ZKRaw(ZK_ADDR, timeout_ms=30000)
    top_before = set(watcher.ok(z.get_children("/")))
    base = root + "/rnd"
    watcher.ok(z.create(base))
    c = conns()
    answered = closed = 0
    try:
        for i in range(1000):
            if c.closed:
                c = conns()
            what, payload = random_frame(rng, base, 1000 + i)
            try:
                c.send_frame(payload)
                c.read_frame(time.monotonic() + ANSWER_TIMEOUT)     # any frame is an answer
                answered += 1
            except z.ConnectionClosed:
                closed += 1
            except z.Timeout:
                pytest.fail("random frame #%d (%s: %s) got no answer and no close within %.0fs"
                            % (i, what, payload.hex(), ANSWER_TIMEOUT))
            if i % 200 == 199:
                server_ok(healthy, "random frames up to #%d" % i)
        print("1000 random frames: %d answered, %d closed the connection" % (answered, closed))
        server_ok(healthy, "1000 random frames")
    finally:
        # a flipped byte can turn a path under the test root into a new
        # top-level znode: remove whatever appeared
        for name in set(watcher.ok(z.get_children("/"))) - top_before:
            if name != root[1:]:
                print("removing stray /%s made by a mutated request" % name)
                z.rmr(watcher, "/" + name)
        watcher.close()


# ---------------------------------------------------------------- stalls

def big_ping(length):
    """A ping frame padded to `length` payload bytes (ZooKeeper ignores a
    ping's body)."""
    return z.i32(length) + i32(z.XID_PING) + i32(z.PING) + b"\0" * (length - 8)


@pytest.mark.parametrize("where", ["length-prefix", "connect-request", "request", "big-frame"])
def test_half_frame_stall_does_not_disturb_others(healthy, conns, root, where):
    """A connection sends part of a frame and stops.  Meanwhile the healthy
    session makes progress, new sessions work and ruok answers.  Then the
    rest of the frame arrives and is served."""
    if where in ("length-prefix", "connect-request"):
        c = conns(handshake=False)
        full = z.frame(z.connect_request(timeout_ms=30000))
        half = 2 if where == "length-prefix" else len(full) // 2
    elif where == "request":
        c = conns(timeout_ms=30000)
        full = z.request_frame(1, z.GET_DATA, z.get_data(root)[1])
        c.ops[1] = z.GET_DATA
        half = len(full) // 2
    else:
        c = conns(timeout_ms=30000)
        full = big_ping(z.MAXBUFFER)
        c.ops[z.XID_PING] = z.PING
        half = 256 * 1024
    c.send_raw(full[:half])
    start = healthy.rounds
    server_ok(healthy, "a stalled half frame (%s)" % where)
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while healthy.rounds < start + 100:         # the stall lasts 100 healthy round trips
        assert time.monotonic() < deadline, "healthy session slowed to a crawl by a stall"
        healthy.check("a stalled half frame (%s)" % where)
    server_ok(healthy, "a stalled half frame (%s)" % where)
    assert not c.wait_closed(0.05), "the server closed a connection that was only slow"
    c.send_raw(full[half:])
    if where in ("length-prefix", "connect-request"):
        p = c.read_frame(time.monotonic() + ANSWER_TIMEOUT)
        r = z.Reader(p)
        r.int()
        c.timeout_ms, c.session_id = r.int(), r.long()
        assert c.timeout_ms > 0 and c.session_id, "the completed handshake was refused"
    else:
        rep = c.read_reply(time.monotonic() + ANSWER_TIMEOUT)
        assert rep.err == z.OK, "the completed %s frame failed: %s" % (where, rep)
    server_ok(healthy, "a completed half frame (%s)" % where)


def test_many_connections_closed_abruptly_mid_frame(healthy, root, rng):
    """Hundreds of connections, 50 at a time, each cut (FIN or RST) in the
    middle of something: a handshake, a request, a burst of pipelined
    requests whose replies are not read, a four-letter word."""
    full_connect = z.frame(z.connect_request(timeout_ms=4000))
    req = z.request_frame(1, z.GET_DATA, z.get_data(healthy.node)[1])
    burst = b"".join(z.request_frame(k, z.GET_DATA, z.get_data(healthy.node)[1])
                     for k in range(1, 200))
    counts = {}
    for wave in range(6):
        socks = []
        for _ in range(50):
            mode = rng.choice(["nothing", "half-connect", "half-request", "burst", "half-4lw",
                               "half-big-frame"])
            counts[mode] = counts.get(mode, 0) + 1
            s = socket.create_connection(z.split_addr(ZK_ADDR), timeout=ANSWER_TIMEOUT)
            try:
                if mode == "half-connect":
                    s.sendall(full_connect[:rng.randrange(1, len(full_connect))])
                elif mode == "half-4lw":
                    s.sendall(b"ruok"[:rng.randrange(1, 4)])
                elif mode != "nothing":
                    s.sendall(full_connect)
                    (n,) = struct.unpack(">i", recv_exact(s, 4))
                    recv_exact(s, n)
                    if mode == "half-request":
                        s.sendall(req[:rng.randrange(1, len(req))])
                    elif mode == "burst":
                        s.sendall(burst)
                    else:
                        s.sendall(big_ping(z.MAXBUFFER)[:rng.randrange(8, 300000)])
            except OSError as e:
                pytest.fail("%s connection failed: %s" % (mode, e))
            socks.append(s)
        for s in socks:
            if rng.random() < 0.5:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        server_ok(healthy, "wave %d of abruptly closed connections" % wave)
    print("abrupt connections by mode: %s" % counts)


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed by the server")
        out += chunk
    return out
