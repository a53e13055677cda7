"""zkraw: a small raw ZooKeeper wire client for the integration tests.

Client libraries hide exactly what the ordering and bad-input tests need to
see, so this speaks jute over TCP itself:

  * the session handshake (ConnectRequest / ConnectResponse), or none at all;
  * requests sent without waiting for their replies (pipelining), each one
    numbered with the next xid and remembered in `sent`;
  * every frame the server sends, decoded and logged in arrival order in
    `log`: ("reply", Reply) or ("event", Event).  Watch notifications
    (xid -1) are also queued in `events`;
  * arbitrary bytes (`send_raw`) and hand-made frames (`send_frame`);
  * noticing that the server closed the connection (`wait_closed`).

Wire format (big-endian): a frame is an int32 length then the payload.
Requests are RequestHeader{int xid, int type} + body; replies are
ReplyHeader{int xid, long zxid, int err} + body.  Strings and buffers are
int32 length + bytes (-1 = null), vectors int32 count + elements, bool one
byte.  (zookeeper.jute, ZooDefs.OpCode, KeeperException.Code.)

Everything is bounded: every wait takes a deadline and raises
`Timeout` when it passes.  Sending never deadlocks against a server whose
replies fill the socket: while output is pending, input is read as well.
"""

import collections
import select
import socket
import struct
import time

# ---- opcodes (ZooDefs.OpCode)
NOTIFICATION = 0
CREATE = 1
DELETE = 2
EXISTS = 3
GET_DATA = 4
SET_DATA = 5
GET_ACL = 6
SET_ACL = 7
GET_CHILDREN = 8
SYNC = 9
PING = 11
GET_CHILDREN2 = 12
CHECK = 13
MULTI = 14
CREATE2 = 15
RECONFIG = 16
CHECK_WATCHES = 17
REMOVE_WATCHES = 18
CREATE_CONTAINER = 19
DELETE_CONTAINER = 20
CREATE_TTL = 21
MULTI_READ = 22
AUTH = 100
SET_WATCHES = 101
SASL = 102
GET_EPHEMERALS = 103
GET_ALL_CHILDREN_NUMBER = 104
SET_WATCHES2 = 105
ADD_WATCH = 106
WHO_AM_I = 107
CREATE_SESSION = -10
CLOSE_SESSION = -11
ERROR = -1

# ---- special xids
XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8

# ---- error codes (KeeperException.Code)
OK = 0
SYSTEMERROR = -1
MARSHALLINGERROR = -5
UNIMPLEMENTED = -6
BADARGUMENTS = -8
NONODE = -101
NOAUTH = -102
BADVERSION = -103
NODEEXISTS = -110
NOTEMPTY = -111
SESSIONEXPIRED = -112
INVALIDACL = -114
AUTHFAILED = -115

# ---- watch event types (Watcher.Event.EventType)
EV_CREATED = 1
EV_DELETED = 2
EV_DATA_CHANGED = 3
EV_CHILDREN_CHANGED = 4
EVENT_NAMES = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
               4: "NodeChildrenChanged"}

PERSISTENT = 0
EPHEMERAL = 1
PERSISTENT_SEQUENTIAL = 2

MAXBUFFER = 0xFFFFF          # jute.maxbuffer default (1048575)

OPEN_ACL = [(31, "world", "anyone")]

Stat = collections.namedtuple(
    "Stat", "czxid mzxid ctime mtime version cversion aversion "
            "ephemeralOwner dataLength numChildren pzxid")
# op is the request's opcode when the xid was one we sent (else None);
# value is the decoded body for OK replies we know how to decode (else the
# raw body bytes); seq numbers every frame of the connection in arrival order.
Reply = collections.namedtuple("Reply", "xid zxid err op value seq")
Event = collections.namedtuple("Event", "type state path seq")


class ConnectionClosed(Exception):
    """The server closed the connection (EOF or reset)."""


class Timeout(Exception):
    """A deadline passed before the awaited data arrived."""


class ProtocolError(Exception):
    pass


# ------------------------------------------------------------ jute encoding

def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def buf(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + bytes(b)


def string(s):
    if s is None:
        return i32(-1)
    return buf(s.encode() if isinstance(s, str) else s)


def strings(lst):
    return i32(len(lst)) + b"".join(string(s) for s in lst)


def acls(lst):
    if lst is None:
        return i32(-1)
    return i32(len(lst)) + b"".join(i32(p) + string(s) + string(i) for p, s, i in lst)


class Reader:
    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("short frame: wanted %d bytes at %d of %d"
                                % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def long(self):
        return struct.unpack(">q", self.take(8))[0]

    def bool(self):
        return self.take(1) != b"\x00"

    def buffer(self):
        n = self.int()
        return None if n < 0 else self.take(n)

    def string(self):
        b = self.buffer()
        return None if b is None else b.decode("utf-8", "replace")

    def strings(self):
        n = self.int()
        return None if n < 0 else [self.string() for _ in range(n)]

    def stat(self):
        return Stat(self.long(), self.long(), self.long(), self.long(),
                    self.int(), self.int(), self.int(), self.long(),
                    self.int(), self.int(), self.long())

    def acls(self):
        n = self.int()
        return None if n < 0 else [(self.int(), self.string(), self.string())
                                   for _ in range(n)]

    def rest(self):
        return self.data[self.pos:]

    def remaining(self):
        return len(self.data) - self.pos


# ------------------------------------------------------------ request bodies
# Each returns (opcode, body bytes).

def create(path, data=b"", flags=PERSISTENT, acl=None):
    return CREATE, string(path) + buf(data) + acls(OPEN_ACL if acl is None else acl) + i32(flags)


def create2(path, data=b"", flags=PERSISTENT, acl=None):
    return CREATE2, create(path, data, flags, acl)[1]


def delete(path, version=-1):
    return DELETE, string(path) + i32(version)


def exists(path, watch=False):
    return EXISTS, string(path) + boolean(watch)


def get_data(path, watch=False):
    return GET_DATA, string(path) + boolean(watch)


def set_data(path, data, version=-1):
    return SET_DATA, string(path) + buf(data) + i32(version)


def get_acl(path):
    return GET_ACL, string(path)


def set_acl(path, acl=None, version=-1):
    return SET_ACL, string(path) + acls(OPEN_ACL if acl is None else acl) + i32(version)


def get_children(path, watch=False):
    return GET_CHILDREN, string(path) + boolean(watch)


def get_children2(path, watch=False):
    return GET_CHILDREN2, string(path) + boolean(watch)


def check(path, version):
    return CHECK, string(path) + i32(version)


def sync(path):
    return SYNC, string(path)


def ping():
    return PING, b""


def close_session():
    return CLOSE_SESSION, b""


def auth(scheme, auth_bytes, type_=0):
    return AUTH, i32(type_) + string(scheme) + buf(auth_bytes)


def set_watches(rel_zxid=0, data=(), exist=(), child=()):
    return SET_WATCHES, i64(rel_zxid) + strings(list(data)) + strings(list(exist)) + strings(list(child))


def multi(ops):
    """ops: (opcode, body) pairs, e.g. [create(...), check(...), delete(...)]."""
    out = b"".join(i32(op) + boolean(False) + i32(-1) + body for op, body in ops)
    return MULTI, out + i32(-1) + boolean(True) + i32(-1)


# the xid a request of this type must carry (ZooKeeper's client does this)
SPECIAL_XID = {PING: XID_PING, AUTH: XID_AUTH, SET_WATCHES: XID_SET_WATCHES}


def connect_request(timeout_ms=10000, session_id=0, passwd=b"\0" * 16,
                    last_zxid=0, read_only=False, protocol_version=0):
    return (i32(protocol_version) + i64(last_zxid) + i32(timeout_ms)
            + i64(session_id) + buf(passwd) + boolean(read_only))


def frame(payload):
    return i32(len(payload)) + payload


def request_frame(xid, op, body):
    return frame(i32(xid) + i32(op) + body)


# ------------------------------------------------------------ reply decoding

def _decode(op, r):
    if op in (CREATE,):
        return r.string()
    if op in (CREATE2, CREATE_CONTAINER, CREATE_TTL):
        return r.string(), r.stat()
    if op in (EXISTS, SET_DATA, SET_ACL):
        return r.stat()
    if op == GET_DATA:
        return r.buffer(), r.stat()
    if op == GET_ACL:
        return r.acls(), r.stat()
    if op == GET_CHILDREN:
        return r.strings()
    if op == GET_CHILDREN2:
        return r.strings(), r.stat()
    if op == SYNC:
        return r.string()
    if op == MULTI:
        results = []
        while True:
            typ, done, err = r.int(), r.bool(), r.int()
            if done:
                return results
            if typ == ERROR:
                results.append((typ, r.int()))
            elif typ in (CREATE,):
                results.append((typ, r.string()))
            elif typ in (CREATE2,):
                results.append((typ, (r.string(), r.stat())))
            elif typ == SET_DATA:
                results.append((typ, r.stat()))
            else:
                results.append((typ, None))
    return r.rest()


def closed_without_answer(sock, timeout=5.0):
    """True if the server closes a plain socket (EOF or reset) within
    timeout seconds without sending anything first."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def read_until_closed(sock, timeout, what="the reply"):
    """Everything the server sends on sock (plain or TLS) until it closes
    the connection (EOF or reset), as bytes.  Raises Timeout if it has not
    closed within timeout seconds."""
    deadline = time.monotonic() + timeout
    out = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("no end of %s within %.1fs" % (what, timeout))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise Timeout("no end of %s within %.1fs" % (what, timeout))
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def four_letter(addr, word, timeout=5.0):
    """Sends a four-letter word, returns everything the server says until
    it closes (str).  Raises Timeout/OSError."""
    with socket.create_connection(split_addr(addr), timeout=timeout) as s:
        s.sendall(word.encode())
        out = read_until_closed(s, timeout, "%r reply" % word)
    return out.decode("utf-8", "replace")


def split_addr(addr):
    host, _, port = addr.split(",")[0].strip().rpartition(":")
    return host or "127.0.0.1", int(port)


class ZKRaw:
    """One TCP connection, normally carrying one session.

    ZKRaw(addr) connects and does the handshake (handshake=False: only
    connects).  Attributes after the handshake: session_id, passwd,
    timeout_ms (negotiated).
    """

    def __init__(self, addr, timeout_ms=10000, handshake=True, io_timeout=10.0,
                 session_id=0, passwd=b"\0" * 16):
        self.addr = addr
        self.io_timeout = io_timeout
        self.sock = socket.create_connection(split_addr(addr), timeout=io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self._in = bytearray()
        self._out = bytearray()
        self._xid = 0
        self.closed = False           # the server closed (EOF or reset)
        self.sent = []                # xids in send order (pings: -2, ...)
        self.ops = {}                 # xid -> opcode of requests in flight
        self.log = []                 # ("reply", Reply) / ("event", Event)
        self.events = collections.deque()
        self.replies = collections.deque()   # replies not yet taken
        self._seq = 0
        self.session_id = None
        self.passwd = None
        self.timeout_ms = None
        if handshake:
            self.handshake(timeout_ms, session_id, passwd)

    # ---- lifecycle
    def handshake(self, timeout_ms=10000, session_id=0, passwd=b"\0" * 16):
        self.send_frame(connect_request(timeout_ms, session_id, passwd))
        payload = self.read_frame(self._deadline())
        r = Reader(payload)
        r.int()                                   # protocolVersion
        self.timeout_ms = r.int()
        self.session_id = r.long()
        self.passwd = r.buffer()
        if self.timeout_ms <= 0 or self.session_id == 0:
            raise ProtocolError("session refused (timeout %d, id %#x)"
                                % (self.timeout_ms, self.session_id))
        return self

    def close(self, close_session=True, timeout=5.0):
        """Closes the session (waits for the reply, bounded) and the socket."""
        try:
            if close_session and not self.closed and self.session_id:
                try:
                    self.call(close_session_op(), timeout=timeout)
                except (ConnectionClosed, Timeout, OSError):
                    pass
        finally:
            self.abort()

    def abort(self, rst=False):
        """Drops the TCP connection without closing the session; rst=True
        resets it (SO_LINGER 0) instead of a FIN."""
        try:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _deadline(self, timeout=None):
        return time.monotonic() + (self.io_timeout if timeout is None else timeout)

    # ---- output
    def send_raw(self, data, flush=True, timeout=None):
        self._out += data
        if flush:
            self.flush(timeout)

    def send_frame(self, payload, flush=True, timeout=None):
        self.send_raw(frame(payload), flush, timeout)

    def send(self, req, xid=None, flush=True, timeout=None):
        """Sends (opcode, body) without waiting for the reply; returns the
        xid.  Pings, auth and setWatches get their fixed xids, as
        ZooKeeper's clients send them."""
        op, body = req
        if xid is None:
            xid = SPECIAL_XID.get(op)
        if xid is None:
            self._xid += 1
            xid = self._xid
        self.sent.append(xid)
        self.ops[xid] = op
        self.send_raw(request_frame(xid, op, body), flush, timeout)
        return xid

    def flush(self, timeout=None):
        deadline = self._deadline(timeout)
        while self._out:
            self._io(deadline, want_write=True)

    # ---- input
    def _io(self, deadline, want_write):
        """One select round: writes what it can of the output, reads what is
        there.  Raises Timeout at the deadline, ConnectionClosed on EOF."""
        if self.closed:
            raise ConnectionClosed("server closed the connection")
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("timed out")
        w = [self.sock] if (want_write and self._out) else []
        rr, ww, _ = select.select([self.sock], w, [], left)
        if ww:
            try:
                n = self.sock.send(self._out)
                del self._out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except (BrokenPipeError, ConnectionResetError) as e:
                self.closed = True
                raise ConnectionClosed("send failed: %s" % e)
        if rr:
            try:
                chunk = self.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                return
            except (ConnectionResetError, ConnectionAbortedError) as e:
                self.closed = True
                raise ConnectionClosed("connection reset: %s" % e)
            if not chunk:
                self.closed = True
                raise ConnectionClosed("server closed the connection")
            self._in += chunk
        if not rr and not ww and time.monotonic() >= deadline:
            raise Timeout("timed out")

    def _take_frame(self):
        if len(self._in) < 4:
            return None
        (n,) = struct.unpack(">i", self._in[:4])
        if n < 0 or n > (64 << 20):
            raise ProtocolError("bad frame length from server: %d" % n)
        if len(self._in) < 4 + n:
            return None
        payload = bytes(self._in[4:4 + n])
        del self._in[:4 + n]
        return payload

    def read_frame(self, deadline):
        """The next raw frame payload from the server."""
        while True:
            p = self._take_frame()
            if p is not None:
                return p
            self._io(deadline, want_write=True)

    def next(self, deadline=None):
        """The next frame, decoded: a Reply or an Event (both logged)."""
        if deadline is None:
            deadline = self._deadline()
        p = self.read_frame(deadline)
        r = Reader(p)
        xid, zxid, err = r.int(), r.long(), r.int()
        self._seq += 1
        if xid == XID_NOTIFICATION and r.remaining() >= 12:
            ev = Event(r.int(), r.int(), r.string(), self._seq)
            self.log.append(("event", ev))
            self.events.append(ev)
            return ev
        op = self.ops.pop(xid, None)
        value = r.rest()
        if err == OK and op is not None:
            try:
                value = _decode(op, r)
            except ProtocolError as e:
                raise ProtocolError("cannot decode reply to op %d xid %d: %s" % (op, xid, e))
        rep = Reply(xid, zxid, err, op, value, self._seq)
        self.log.append(("reply", rep))
        return rep

    def read_reply(self, deadline=None):
        """The next reply (events that come first are logged and queued)."""
        if self.replies:
            return self.replies.popleft()
        while True:
            f = self.next(deadline)
            if isinstance(f, Reply):
                return f

    def wait_reply(self, xid, deadline=None):
        """Reads until the reply for xid; replies for other xids on the way
        are kept in `replies` (in order)."""
        for i, rep in enumerate(self.replies):
            if rep.xid == xid:
                del self.replies[i]
                return rep
        while True:
            f = self.next(deadline)
            if isinstance(f, Reply):
                if f.xid == xid:
                    return f
                self.replies.append(f)

    def wait_event(self, pred=lambda ev: True, deadline=None):
        """Pops the first queued event matching pred, reading until one comes."""
        while True:
            for i, ev in enumerate(self.events):
                if pred(ev):
                    del self.events[i]
                    return ev
            f = self.next(deadline)
            if isinstance(f, Reply):
                self.replies.append(f)

    def call(self, req, timeout=None):
        """Sends one request and waits for its reply."""
        deadline = self._deadline(timeout)
        xid = self.send(req, timeout=timeout)
        return self.wait_reply(xid, deadline)

    def ok(self, req, timeout=None):
        """call() that insists on OK and returns the decoded value."""
        rep = self.call(req, timeout)
        if rep.err != OK:
            raise ProtocolError("request op %d failed with error %d" % (req[0], rep.err))
        return rep.value

    def wait_closed(self, timeout):
        """Reads (and logs) until the server closes the connection.  True if
        it did within timeout, False if it was still open at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.next(deadline)
            except ConnectionClosed:
                return True
            except Timeout:
                return False
            except ProtocolError:
                continue

    def reply_or_close(self, timeout):
        """What the server does next: ('reply', Reply), ('close', None) or
        ('silent', None) when nothing happened within timeout."""
        deadline = time.monotonic() + timeout
        try:
            return "reply", self.read_reply(deadline)
        except ConnectionClosed:
            return "close", None
        except Timeout:
            return "silent", None


def close_session_op():
    return close_session()


def pipeline(conn, reqs, timeout=30.0):
    """Sends every (opcode, body) in reqs without waiting, then reads as many
    replies; returns them in arrival order (events meanwhile are logged)."""
    deadline = time.monotonic() + timeout
    for req in reqs:
        conn.send(req, flush=False)
    conn.flush(timeout)
    return [conn.read_reply(deadline) for _ in reqs]


def rmr(conn, path, timeout=30.0):
    """Deletes path and everything under it (missing is fine)."""
    deadline = time.monotonic() + timeout
    level, nodes = [path], []
    while level:
        nodes.extend(level)
        reps = pipeline(conn, [get_children(p) for p in level],
                        max(0.1, deadline - time.monotonic()))
        level = [p.rstrip("/") + "/" + c for p, rep in zip(level, reps)
                 if rep.err == OK for c in rep.value]
    reps = pipeline(conn, [delete(p) for p in reversed(nodes)],
                    max(0.1, deadline - time.monotonic()))
    bad = [(p, rep.err) for p, rep in zip(reversed(nodes), reps)
           if rep.err not in (OK, NONODE)]
    if bad:
        raise ProtocolError("rmr %s: could not delete %s" % (path, bad[:5]))
