"""Durability under crashes and disk faults, and bin/zkd-dump (issue 4).

Each test starts its own zkd (the binary from $ZKD) on a dataDir of its own:

  kill -9 under load  CYCLES (default 8) rounds of: start zkd on the same
                      dataDir (snapCount=50, so fuzzy snapshots and log rolls
                      happen all the time), run writer threads (creates with
                      known data, setData with version checks, pipelined),
                      a sequential-node thread (creates and deletes) and
                      sessions that create ephemerals, kill -9 zkd at a random
                      moment, restart. After every restart: each create and
                      setData whose reply arrived is there with its data and
                      version, no sequential number was handed out twice, the
                      ephemerals of the killed sessions are still there; at
                      the end they go once their 4 s session timeout passes.
  torn tail           the newest log cut (truncated, or zeroed as a write
                      that never reached the disk) inside its last records:
                      zkd starts, logs the cut with the file name and offset,
                      serves every txn before it and none from it on.
  corruption          a byte flipped in a record in the middle of the log:
                      zkd refuses to start (exit status != 0) naming the file
                      and the record's offset, and leaves the file alone.
  disk full           dataDir on a 4 MiB tmpfs (or a loop-mounted ext4 image):
                      zkd stops (exit status != 0) saying the disk is full,
                      and after space comes back every acknowledged write is
                      there. Skipped, with the reason, when nothing can be
                      mounted (not root, no tmpfs, no loop devices).
  zkd-dump            a log and a snapshot written by zkd print the txns and
                      nodes that were made (zxid, time, session, type, path,
                      versions); damaged files exit 1 naming the offset.

Environment: ZKD (required), ZKD_DUMP (default: zkd-dump next to $ZKD),
ZK_CRASH_SEED (replay a run: the seed is printed), ZK_CRASH_CYCLES,
ZK_CRASH_FS=loop (disk full on a loop-mounted ext4 image, not tmpfs),
ZK_CRASH_KNOWN_BUGS=1 (also the disk-full case that hits the replay SIGBUS
described at DISK_FULL_PREALLOC), KEEP_TMP=1 (keep the work directories).
"""

import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import pytest

import zkraw
from zkraw import ConnectionClosed, ProtocolError, Timeout, ZKRaw
from standalone import free_port

ZKD = os.environ.get("ZKD")
ZKD_DUMP = os.environ.get("ZKD_DUMP") or (
    os.path.join(os.path.dirname(os.path.abspath(ZKD)), "zkd-dump") if ZKD else None)
SEED = int(os.environ.get("ZK_CRASH_SEED") or random.SystemRandom().randrange(1 << 31))
CYCLES = int(os.environ.get("ZK_CRASH_CYCLES", "8"))
KEEP = os.environ.get("KEEP_TMP") == "1"
SESSION_MS = 4000             # the minimum session timeout at tickTime=2000
TICK_MS = 2000

pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")

print("test_crash: seed %d (ZK_CRASH_SEED=%d replays it)" % (SEED, SEED))
sys.stdout.flush()

CLIENT_ERRORS = (ConnectionClosed, Timeout, ProtocolError, OSError)
SANITIZER = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer")


# ---------------------------------------------------------------- zkd process


class Zkd:
    """One zkd on one dataDir; start() may be called again after it died.
    Its stdout and stderr go to <work>/zkd.log (appended across starts)."""

    def __init__(self, work, data_dir, extra=""):
        self.work = work
        self.data_dir = data_dir
        self.extra = extra
        self.log_path = os.path.join(work, "zkd.log")
        self.proc = None
        self.addr = None
        self.started = 0.0    # time.monotonic() just before the last exec
        self.ready_at = 0.0   # ... and once it accepted a session (recovery done)
        self.mark = 0         # log size when the last start began
        self.starts = 0

    def start(self, wait=True, timeout=20.0):
        assert self.proc is None or self.proc.poll() is not None, "zkd is already running"
        port = free_port()
        self.addr = "127.0.0.1:%d" % port
        cfg = os.path.join(self.work, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("tickTime=%d\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n%s"
                    % (TICK_MS, self.data_dir, port, self.extra))
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(b"==== start %d (port %d) ====\n" % (self.starts, port))
            log.flush()
            self.mark = log.tell()
            self.started = time.monotonic()
            self.proc = subprocess.Popen([ZKD, cfg], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20.0):
        """Until a session handshake succeeds (and is closed again)."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("zkd exited with status %d at start (seed %d):\n%s"
                                     % (rc, SEED, self.tail()))
            try:
                c = ZKRaw(self.addr, timeout_ms=SESSION_MS, io_timeout=1.0)
                self.ready_at = time.monotonic()
                c.close(timeout=1.0)
                return
            except CLIENT_ERRORS:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError("zkd did not accept a session within %.0fs:\n%s" % (timeout, self.tail()))
            time.sleep(0.02)

    def wait_exit(self, timeout):
        """The exit status (negative: killed by that signal), or None if it
        is still running at the deadline."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(10)
        assert rc == -signal.SIGKILL, "zkd was not killed by SIGKILL (status %s)" % rc

    def stop(self, timeout=10.0):
        """SIGTERM; the exit status (SIGKILL and None if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        rc = self.wait_exit(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        return rc

    def run_log(self):
        """What zkd wrote since the last start began."""
        with open(self.log_path, "rb") as f:
            f.seek(self.mark)
            return f.read().decode("utf-8", "replace")

    def tail(self, n=40):
        return "\n".join(self.run_log().splitlines()[-n:])


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="zkd-crash-")
    servers = []
    yield d, servers
    for s in servers:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
    reports = []
    for s in servers:                     # a sanitizer build reports at the fault or at exit
        if os.path.exists(s.log_path):
            with open(s.log_path, errors="replace") as f:
                text = f.read()
            m = SANITIZER.search(text)
            if m:
                reports.append("%s:\n%s" % (s.log_path, text[m.start():m.start() + 2000]))
    if KEEP or reports:
        print("kept %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    assert not reports, "sanitizer report in a zkd log:\n" + "\n".join(reports)


def vdir(data_dir):
    return os.path.join(data_dir, "version-2")


def files(data_dir, prefix):
    """[(zxid, name)] of prefix.<hex> in version-2, by zxid."""
    out = []
    for n in os.listdir(vdir(data_dir)):
        m = re.fullmatch(re.escape(prefix) + r"\.([0-9a-f]+)", n)
        if m:
            out.append((int(m.group(1), 16), n))
    return sorted(out)


# ---------------------------------------------------------------- log files, parsed here

class Rec:
    def __init__(self, off, length, zxid, type_):
        self.off, self.length, self.zxid, self.type = off, length, zxid, type_

    @property
    def end(self):
        return self.off + 13 + self.length


def log_records(path):
    """Every record of a txn log, checked independently of zkd's reader:
    FileHeader magic, Adler-32 of each entry, the 'B' after it."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:4] == b"ZKLG", "%s: bad magic %r" % (path, b[:4])
    off, out = 16, []
    while off + 12 <= len(b):
        crc, n = struct.unpack(">qi", b[off:off + 12])
        if n == 0:
            break
        entry = b[off + 12:off + 12 + n]
        assert len(entry) == n and b[off + 12 + n] == ord("B"), "%s: bad record at %d" % (path, off)
        assert zlib.adler32(entry) == crc, "%s: checksum of the record at %d" % (path, off)
        zxid, = struct.unpack(">q", entry[12:20])
        type_, = struct.unpack(">i", entry[28:32])
        out.append(Rec(off, n, zxid, type_))
        off += 13 + n
    return out


# ---------------------------------------------------------------- kill -9 under load

WRITERS = 4
WINDOW = 6                      # requests in flight per connection
EPH_SESSIONS = 2
EPH_PER_SESSION = 30


def wdata(path, version):
    """The data a writer puts in `path` at `version` (so any version's data is known)."""
    return ("%s@%d;" % (path, version)).encode() * (1 + (version * 7 + len(path)) % 5)


class State:
    """What the clients were told, across every kill cycle. Only the load
    threads touch it during a cycle (each its own part); only the main
    thread between cycles."""

    def __init__(self):
        self.lock = threading.Lock()
        self.failures = []
        # writer nodes: path -> [acked version or None (create not acked), pending version or None]
        self.nodes = {}
        self.acked_paths = [[] for _ in range(WRITERS)]
        self.next_node = [0] * WRITERS
        self.acked_ops = 0
        # sequential: numbers the server handed out (acked, or seen on the server)
        self.seq_seen = {}
        self.seq_live = set()       # acked creates, no delete sent
        self.seq_deleting = set()   # delete sent, no reply
        self.seq_deleted = set()    # delete acked
        # ephemerals: (path, session id, cycle) acked
        self.eph = []
        self.eph_sessions = set()

    def fail(self, msg):
        with self.lock:
            self.failures.append(msg)

    def saw_seq(self, path, where):
        num = int(path[-10:])
        with self.lock:
            prev = self.seq_seen.get(num)
            if prev is not None and prev != path:
                self.failures.append("sequential number %d handed out twice: %s, then %s (%s)"
                                     % (num, prev, path, where))
            self.seq_seen[num] = path


def writer(addr, t, st, rng, stop):
    try:
        conn = ZKRaw(addr, timeout_ms=SESSION_MS, io_timeout=10.0)
    except CLIENT_ERRORS:
        return
    pending = {}
    try:
        while True:
            while not stop.is_set() and len(pending) < WINDOW:
                paths = st.acked_paths[t]
                target = None
                if paths and rng.random() < 0.65:
                    for _ in range(4):
                        p = rng.choice(paths)
                        if st.nodes[p][1] is None:
                            target = p
                            break
                if target is None:
                    path = "/crash/w%d/n%d" % (t, st.next_node[t])
                    st.next_node[t] += 1
                    st.nodes[path] = [None, 0]
                    xid = conn.send(zkraw.create(path, wdata(path, 0)))
                    pending[xid] = ("create", path, 0)
                else:
                    v = st.nodes[target][0]
                    st.nodes[target][1] = v + 1
                    xid = conn.send(zkraw.set_data(target, wdata(target, v + 1), v))
                    pending[xid] = ("set", target, v + 1)
            if not pending:
                return
            rep = conn.read_reply(time.monotonic() + 10.0)
            kind, path, v = pending.pop(rep.xid)
            node = st.nodes[path]
            if rep.err != zkraw.OK:
                st.fail("%s %s (version %d) failed with error %d" % (kind, path, v, rep.err))
                node[1] = None
                continue
            if kind == "set" and rep.value.version != v:
                st.fail("setData %s answered version %d, expected %d" % (path, rep.value.version, v))
            node[0], node[1] = v, None
            if kind == "create":
                st.acked_paths[t].append(path)
            with st.lock:
                st.acked_ops += 1
    except Timeout:
        if not stop.is_set():
            st.fail("writer %d: no reply within 10 s while zkd was up" % t)
    except (ConnectionClosed, OSError):
        pass
    finally:
        conn.abort()


def sequencer(addr, st, rng, stop):
    try:
        conn = ZKRaw(addr, timeout_ms=SESSION_MS, io_timeout=10.0)
    except CLIENT_ERRORS:
        return
    pending = {}
    try:
        while True:
            while not stop.is_set() and len(pending) < WINDOW:
                if st.seq_live and rng.random() < 0.25:
                    victim = rng.choice(list(st.seq_live))
                    st.seq_live.discard(victim)
                    st.seq_deleting.add(victim)
                    pending[conn.send(zkraw.delete(victim))] = ("delete", victim)
                else:
                    pending[conn.send(zkraw.create("/crash/seq/s-", b"seq",
                                                   zkraw.PERSISTENT_SEQUENTIAL))] = ("create", None)
            if not pending:
                return
            rep = conn.read_reply(time.monotonic() + 10.0)
            kind, path = pending.pop(rep.xid)
            if rep.err != zkraw.OK:
                st.fail("sequential %s %s failed with error %d" % (kind, path or "", rep.err))
                continue
            if kind == "create":
                st.saw_seq(rep.value, "acked create")
                st.seq_live.add(rep.value)
            else:
                st.seq_deleting.discard(path)
                st.seq_deleted.add(path)
            with st.lock:
                st.acked_ops += 1
    except Timeout:
        if not stop.is_set():
            st.fail("sequencer: no reply within 10 s while zkd was up")
    except (ConnectionClosed, OSError):
        pass
    finally:
        conn.abort()


def ephemeral_owner(addr, cycle, j, st, stop):
    """A session that creates ephemerals (plain and sequential) and then
    idles; it dies with the server (its socket is dropped, never closed)."""
    try:
        conn = ZKRaw(addr, timeout_ms=SESSION_MS, io_timeout=10.0)
    except CLIENT_ERRORS:
        return
    try:
        if conn.timeout_ms != SESSION_MS:
            st.fail("session timeout negotiated to %d, not %d" % (conn.timeout_ms, SESSION_MS))
        with st.lock:
            st.eph_sessions.add(conn.session_id)
        for k in range(EPH_PER_SESSION):
            if stop.is_set():
                return
            if k % 2 == 0:
                path = "/crash/eph/c%d-s%d-%d" % (cycle, j, k)
                rep = conn.call(zkraw.create(path, b"e", zkraw.EPHEMERAL))
            else:
                rep = conn.call(zkraw.create("/crash/seq/e-", b"e", zkraw.EPHEMERAL | zkraw.PERSISTENT_SEQUENTIAL))
                path = rep.value if rep.err == zkraw.OK else None
            if rep.err != zkraw.OK:
                st.fail("ephemeral create in session %#x failed with %d" % (conn.session_id, rep.err))
                continue
            if k % 2:
                st.saw_seq(path, "acked ephemeral sequential create")
            with st.lock:
                st.eph.append((path, conn.session_id, cycle))
                st.acked_ops += 1
        while not stop.wait(0.5):
            conn.call(zkraw.ping())
    except Timeout:
        if not stop.is_set():
            st.fail("ephemeral session: no reply within 10 s while zkd was up")
    except (ConnectionClosed, OSError):
        pass
    finally:
        conn.abort()          # never closeSession: the session dies with the server


def read_all(conn, paths, op):
    """{path: Reply} for get_data/exists of every path, pipelined."""
    out = {}
    paths = list(paths)
    for i in range(0, len(paths), 500):
        chunk = paths[i:i + 500]
        for p, rep in zip(chunk, zkraw.pipeline(conn, [op(p) for p in chunk], timeout=30.0)):
            out[p] = rep
    return out


def verify_after_restart(srv, st, cycle, notes):
    conn = ZKRaw(srv.addr, timeout_ms=SESSION_MS, io_timeout=10.0)
    try:
        # 1. the killed cycle's ephemerals: their sessions were restored with
        #    a full timeout, so they must all be there now
        last = [(p, sid) for p, sid, c in st.eph if c == cycle - 1]
        reps = read_all(conn, [p for p, _ in last], zkraw.exists)
        checked_at = time.monotonic()
        if checked_at - srv.started < (SESSION_MS - 1000) / 1000.0:
            for p, sid in last:
                rep = reps[p]
                if rep.err != zkraw.OK:
                    st.fail("cycle %d: acknowledged ephemeral %s (session %#x) is missing %.1fs after the "
                            "restart, before its session could expire (error %d)"
                            % (cycle, p, sid, checked_at - srv.started, rep.err))
                elif rep.value.ephemeralOwner != sid:
                    st.fail("cycle %d: ephemeral %s is owned by %#x, not %#x"
                            % (cycle, p, rep.value.ephemeralOwner, sid))
        else:
            notes.append("cycle %d: ephemeral presence not checked (%.1fs after the start)"
                         % (cycle, checked_at - srv.started))

        # 2. writer nodes: every acked create and setData, with its data
        reps = read_all(conn, sorted(st.nodes), zkraw.get_data)
        for path, node in sorted(st.nodes.items()):
            acked, pend = node
            rep = reps[path]
            if rep.err == zkraw.NONODE:
                if acked is not None:
                    st.fail("cycle %d: acknowledged create %s (version %d acknowledged) is missing"
                            % (cycle, path, acked))
                del st.nodes[path]          # an unacknowledged create that did not survive
                continue
            if rep.err != zkraw.OK:
                st.fail("cycle %d: getData %s failed with %d" % (cycle, path, rep.err))
                continue
            data, stat = rep.value
            allowed = {acked} if acked is not None else set()
            if pend is not None:
                allowed.add(pend)
            if stat.version not in allowed:
                st.fail("cycle %d: %s has version %d; acknowledged %s, in flight at the kill %s"
                        % (cycle, path, stat.version, acked, pend))
            elif data != wdata(path, stat.version):
                st.fail("cycle %d: %s version %d has data %r, expected %r"
                        % (cycle, path, stat.version, data[:60], wdata(path, stat.version)[:60]))
            node[0], node[1] = stat.version, None
        for t in range(WRITERS):
            st.acked_paths[t] = sorted(p for p in st.nodes if p.startswith("/crash/w%d/" % t))

        # 3. sequential nodes
        rep = conn.call(zkraw.get_children("/crash/seq"))
        assert rep.err == zkraw.OK, "getChildren /crash/seq: %d" % rep.err
        present = {"/crash/seq/" + c for c in rep.value}
        for p in sorted(st.seq_live - present):
            st.fail("cycle %d: acknowledged sequential create %s is missing" % (cycle, p))
        for p in sorted(st.seq_deleted & present):
            st.fail("cycle %d: %s is back although its delete was acknowledged" % (cycle, p))
        for p in sorted(present):
            st.saw_seq(p, "present after restart %d" % cycle)   # unacked creates that survived count too
        st.seq_deleted |= st.seq_deleting - present
        st.seq_live = {p for p in present if p.startswith("/crash/seq/s-")}
        st.seq_deleting = set()
    finally:
        conn.close()


def test_kill9_under_write_load_loses_nothing_acknowledged(work):
    d, servers = work
    print("seed %d, %d kill cycles" % (SEED, CYCLES))
    rng = random.Random(SEED)
    st = State()
    srv = Zkd(d, os.path.join(d, "data"), "snapCount=50\n")
    servers.append(srv)
    notes = []
    srv.start()
    with ZKRaw(srv.addr) as c:
        for p in ["/crash", "/crash/seq", "/crash/eph"] + ["/crash/w%d" % t for t in range(WRITERS)]:
            assert c.call(zkraw.create(p)).err == zkraw.OK
    for cycle in range(CYCLES):
        if cycle:
            srv.start()
            verify_after_restart(srv, st, cycle, notes)
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(srv.addr, t, st, random.Random(rng.random()), stop))
                   for t in range(WRITERS)]
        threads.append(threading.Thread(target=sequencer, args=(srv.addr, st, random.Random(rng.random()), stop)))
        threads += [threading.Thread(target=ephemeral_owner, args=(srv.addr, cycle, j, st, stop))
                    for j in range(EPH_SESSIONS)]
        before = st.acked_ops
        for th in threads:
            th.start()
        # the kill comes at a random moment, once the load is under way
        deadline = time.monotonic() + 10.0
        while st.acked_ops - before < 50 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.8))
        srv.kill9()
        stop.set()
        for th in threads:
            th.join(15.0)
            assert not th.is_alive(), "a load thread did not notice the kill within 15 s"
        notes.append("cycle %d: %d acknowledged ops, killed" % (cycle, st.acked_ops - before))
        assert not st.failures, "seed %d:\n%s" % (SEED, "\n".join(st.failures[:20]))

    srv.start()
    verify_after_restart(srv, st, CYCLES, notes)
    assert not st.failures, "seed %d:\n%s" % (SEED, "\n".join(st.failures[:20]))

    # the ephemerals of every killed session go once its timeout has passed
    # (counted from the restart that restored it), and not before: at the
    # earliest a timeout after the exec, at the latest a timeout (and two
    # ticks) after recovery finished, which a slow (sanitized) build makes
    # much later than the exec
    deadline = srv.ready_at + (SESSION_MS + 2 * TICK_MS) / 1000.0 + 8.0
    initially = None
    with ZKRaw(srv.addr, timeout_ms=SESSION_MS) as c:
        while True:
            reps = zkraw.pipeline(c, [zkraw.get_children("/crash/eph"), zkraw.get_children("/crash/seq")])
            assert all(r.err == zkraw.OK for r in reps)
            left = reps[0].value + [n for n in reps[1].value if n.startswith("e-")]
            if initially is None:
                initially = len(left)
            if not left:
                gone_after = time.monotonic() - srv.started
                break
            assert time.monotonic() < deadline, (
                "seed %d: %d ephemerals of dead sessions are still there %.1fs after the restart "
                "(session timeout %d ms), e.g. %s" % (SEED, len(left), time.monotonic() - srv.started,
                                                       SESSION_MS, left[:5]))
            time.sleep(0.1)
    assert not initially or gone_after >= (SESSION_MS - 500) / 1000.0, (
        "ephemerals of restored sessions went %.1fs after the restart, before the %d ms timeout"
        % (gone_after, SESSION_MS))
    assert len(st.eph) > 0 and st.acked_ops > 500, "the load did too little to test anything (%d ops)" % st.acked_ops

    # the history went through snapshots, and restarts recovered from them
    snaps = [z for z, _ in files(srv.data_dir, "snapshot") if z > 0]
    assert snaps, "no snapshot was written with snapCount=50"
    with open(srv.log_path, errors="replace") as f:
        log = f.read()
    assert re.search(r"recovered \S+: snapshot 0x(?!0 )[0-9a-f]+ \+ \d+ txns", log), \
        "no restart recovered from a snapshot other than snapshot.0"
    assert srv.stop() == 0, "zkd did not exit cleanly on SIGTERM:\n%s" % srv.tail()
    print("seed %d: %d acknowledged ops, %d ephemerals, %d sequential numbers, %d snapshots; "
          "ephemerals gone %.1fs after the last restart\n%s"
          % (SEED, st.acked_ops, len(st.eph), len(st.seq_seen), len(snaps), gone_after, "\n".join(notes)))


# ---------------------------------------------------------------- torn tail and corruption

N_NODES = 30


@pytest.fixture(scope="module")
def pristine():
    """A dataDir whose only log ends with N_NODES creates, written by zkd and
    stopped cleanly: (dir, log name, records, {zxid: (path, data)})."""
    d = tempfile.mkdtemp(prefix="zkd-crash-pristine-")
    srv = Zkd(d, os.path.join(d, "data"), "snapCount=100000\n")
    try:
        srv.start()
        made = {}
        c = ZKRaw(srv.addr, timeout_ms=30000)
        assert c.call(zkraw.create("/t")).err == zkraw.OK
        for i in range(N_NODES):
            path, data = "/t/n%02d" % i, ("node %d " % i).encode() * (3 + i % 7)
            rep = c.call(zkraw.create2(path, data))
            assert rep.err == zkraw.OK
            made[rep.value[1].czxid] = (path, data)
        c.abort()             # no closeSession: the creates are the last records
        assert srv.stop() == 0, srv.tail()
        logs = files(srv.data_dir, "log")
        assert len(logs) == 1, "expected one log file, found %s" % logs
        name = logs[-1][1]
        recs = log_records(os.path.join(vdir(srv.data_dir), name))
        assert [r.zxid for r in recs[-N_NODES:]] == sorted(made), "the log does not end with the creates"
        yield srv.data_dir, name, recs, made
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()
        if not KEEP:
            shutil.rmtree(d, ignore_errors=True)


def copy_datadir(src, work, label):
    dst = os.path.join(work, label, "data")
    shutil.copytree(src, dst)
    return dst


def test_torn_tail_is_cut_logged_and_everything_before_it_served(work, pristine):
    d, servers = work
    src, name, recs, made = pristine
    r1, r2, r3 = recs[-3:]
    cuts = [  # (offset, how): every one inside a record, each with non-zero bytes left of it
        (r3.off + 8, "truncate"),                 # inside the length field
        (r3.off + 12, "truncate"),                # header complete, no entry
        (r3.off + 12 + r3.length // 2, "truncate"),
        (r3.off + 12 + r3.length, "truncate"),    # only the 'B' missing
        (r3.off + 12 + r3.length // 3, "zero"),   # a write that never reached the disk
        (r2.off + 10, "truncate"),
        (r2.off + 12 + r2.length // 2, "zero"),
        (r1.off + 12 + r1.length - 1, "truncate"),
    ]
    for i, (cut, how) in enumerate(cuts):
        dd = copy_datadir(src, d, "cut%d" % i)
        path = os.path.join(vdir(dd), name)
        size = os.path.getsize(path)
        if how == "truncate":
            os.truncate(path, cut)
        else:
            with open(path, "r+b") as f:
                f.seek(cut)
                f.write(b"\0" * (size - cut))
        torn = next(r for r in recs if r.off <= cut < r.end)
        srv = Zkd(os.path.join(d, "cut%d" % i), dd)
        servers.append(srv)
        srv.start()
        log = srv.run_log()
        said = [l for l in log.splitlines() if name in l and re.search(r"\boffset %d\b" % torn.off, l)]
        assert said, ("cut at %d (%s): zkd did not log the cut of %s at offset %d:\n%s"
                      % (cut, how, name, torn.off, srv.tail()))
        assert os.path.getsize(path) == torn.off, (
            "cut at %d (%s): %s is %d bytes after recovery; the torn record at %d should be cut off"
            % (cut, how, name, os.path.getsize(path), torn.off))
        with ZKRaw(srv.addr) as c:
            reps = read_all(c, [p for p, _ in made.values()], zkraw.get_data)
            for zxid, (p, data) in sorted(made.items()):
                rep = reps[p]
                if zxid < torn.zxid:
                    assert rep.err == zkraw.OK and rep.value[0] == data, (
                        "cut at %d (%s): %s (zxid %#x, before the cut) is not served as written (error %d)"
                        % (cut, how, p, zxid, rep.err))
                else:
                    assert rep.err == zkraw.NONODE, (
                        "cut at %d (%s): %s (zxid %#x, from the torn record on) is there" % (cut, how, p, zxid))
            if i == 0:
                # the server goes on from the cut: a new txn, a clean restart, both still there
                assert c.call(zkraw.create("/after-cut", b"x")).err == zkraw.OK
        if i == 0:
            assert srv.stop() == 0
            srv.start()
            with ZKRaw(srv.addr) as c:
                assert c.call(zkraw.get_data("/after-cut")).err == zkraw.OK
                p, data = made[r2.zxid]
                rep = c.call(zkraw.get_data(p))
                assert rep.err == zkraw.OK and rep.value[0] == data
        assert srv.stop() == 0, srv.tail()


def test_corruption_in_the_middle_refuses_to_start_naming_file_and_offset(work, pristine):
    d, servers = work
    src, name, recs, made = pristine
    mid = recs[len(recs) // 2]
    flips = [  # (offset, xor, what)
        (mid.off + 12 + mid.length - 9, 0x01, "a byte of the entry"),
        (mid.off + 6, 0x40, "the checksum"),
        (mid.off + 1, 0x01, "the checksum's zero upper half"),
        (mid.off + 11, 0x02, "the length"),
        (mid.off + 12 + mid.length, 0x01, "the end-of-record marker"),
    ]
    for i, (at, xor, what) in enumerate(flips):
        dd = copy_datadir(src, d, "flip%d" % i)
        path = os.path.join(vdir(dd), name)
        with open(path, "r+b") as f:
            f.seek(at)
            b = f.read(1)[0]
            f.seek(at)
            f.write(bytes([b ^ xor]))
        with open(path, "rb") as f:
            damaged = f.read()
        srv = Zkd(os.path.join(d, "flip%d" % i), dd)
        servers.append(srv)
        srv.start(wait=False)
        rc = srv.wait_exit(20.0)
        assert rc is not None, "flipped %s at %d: zkd is running on a corrupt log:\n%s" % (what, at, srv.tail())
        assert rc > 0, "flipped %s at %d: zkd exit status %d (not a clean refusal)" % (what, at, rc)
        log = srv.run_log()
        said = [l for l in log.splitlines() if name in l and re.search(r"\boffset %d\b" % mid.off, l)]
        assert said, ("flipped %s at %d: zkd's refusal does not name %s and offset %d:\n%s"
                      % (what, at, name, mid.off, srv.tail()))
        with open(path, "rb") as f:
            assert f.read() == damaged, "flipped %s at %d: zkd changed the corrupt log" % (what, at)


# ---------------------------------------------------------------- disk full

def mount_small_fs(mnt, work):
    """Mounts a 4 MiB filesystem at mnt: tmpfs, else (or with ZK_CRASH_FS=loop)
    an 8 MiB loop-mounted ext4 image. Returns a description, or skips the
    test with the reason."""
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to mount a small filesystem")
    why = "not tried (ZK_CRASH_FS=loop)"
    if os.environ.get("ZK_CRASH_FS") != "loop":
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode == 0:
            return "tmpfs"
        why = "mount -t tmpfs: %s" % r.stdout.decode().strip()
    img = os.path.join(work, "disk.img")
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", img], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode == 0:
        r = subprocess.run(["mount", "-o", "loop", img, mnt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode == 0:
            return "loop ext4"
    pytest.skip("cannot mount a small filesystem: %s; loop ext4: %s" % (why, r.stdout.decode().strip()))


def filler(addr, t, acked, lock, stop):
    try:
        conn = ZKRaw(addr, timeout_ms=30000, io_timeout=20.0)
    except CLIENT_ERRORS:
        return
    pending, k = {}, 0
    try:
        while not stop.is_set():
            while len(pending) < 8:
                path = "/full/w%d-%d" % (t, k)
                k += 1
                pending[conn.send(zkraw.create(path, wdata(path, 0) * 20))] = path
            rep = conn.read_reply(time.monotonic() + 20.0)
            path = pending.pop(rep.xid)
            if rep.err == zkraw.OK:
                with lock:
                    acked.append(path)
    except CLIENT_ERRORS:
        pass
    finally:
        conn.abort()


# preAllocSize (KiB) for the disk-full test: small, as for a small disk.
# ZooKeeper's default (64 MiB) hits two bugs of txnlog.c, so that case runs
# only with ZK_CRASH_KNOWN_BUGS=1 (it fails until they are fixed):
# - tmpfs: near a full disk the log is extended sparsely (fallocate has no
#   room) and replay reads it through mmap; a read fault on a tmpfs hole
#   allocates a page, so zkd dies of SIGBUS at start unless the space given
#   back covers every hole (read() would allocate nothing);
# - ext4 (ZK_CRASH_FS=loop): a fallocate that fails with ENOSPC keeps the
#   blocks it got, so the disk is full before the first record and zkd stops
#   at its first write on any disk with less than 64 MiB free (ZooKeeper
#   never fallocates: it writes one byte at the new end).
DISK_FULL_PREALLOC = [64] + ([None] if os.environ.get("ZK_CRASH_KNOWN_BUGS") == "1" else [])


@pytest.mark.parametrize("prealloc_kb", DISK_FULL_PREALLOC,
                         ids=["prealloc-%s" % ("default" if p is None else "%dk" % p) for p in DISK_FULL_PREALLOC])
def test_disk_full_stops_zkd_and_loses_nothing_acknowledged(work, prealloc_kb):
    d, servers = work
    mnt = os.path.join(d, "mnt")
    os.mkdir(mnt)
    kind = mount_small_fs(mnt, d)
    try:
        scratch = os.path.join(mnt, "scratch")
        with open(scratch, "wb") as f:          # space to give back later
            f.write(os.urandom(2 << 20))
            f.flush()
            os.fsync(f.fileno())
        extra = "snapCount=500\n" + ("preAllocSize=%d\n" % prealloc_kb if prealloc_kb else "")
        srv = Zkd(d, os.path.join(mnt, "data"), extra)
        servers.append(srv)
        srv.start()
        with ZKRaw(srv.addr) as c:
            assert c.call(zkraw.create("/full")).err == zkraw.OK
        acked, lock, stop = [], threading.Lock(), threading.Event()
        threads = [threading.Thread(target=filler, args=(srv.addr, t, acked, lock, stop)) for t in range(3)]
        for th in threads:
            th.start()
        rc = srv.wait_exit(60.0)
        stop.set()
        for th in threads:
            th.join(30.0)
        assert rc is not None, "zkd still runs after 60 s of writes to a 4 MiB %s:\n%s" % (kind, srv.tail())
        assert rc > 0, "zkd died of signal %d on a full disk instead of stopping:\n%s" % (-rc, srv.tail())
        log = srv.run_log()
        assert re.search(r"No space left on device|disk is full", log), (
            "zkd stopped (status %d) without saying the disk is full:\n%s" % (rc, srv.tail()))
        assert len(acked) > 100, "only %d writes were acknowledged before the disk filled" % len(acked)

        os.unlink(scratch)                      # space comes back
        srv.start()
        with ZKRaw(srv.addr) as c:
            reps = read_all(c, acked, zkraw.get_data)
            missing = [p for p in acked if reps[p].err != zkraw.OK]
            assert not missing, ("%d of %d acknowledged creates are missing after the restart, e.g. %s"
                                 % (len(missing), len(acked), missing[:5]))
            wrong = [p for p in acked if reps[p].value[0] != wdata(p, 0) * 20]
            assert not wrong, "acknowledged creates with the wrong data: %s" % wrong[:5]
            assert c.call(zkraw.create("/full/after", b"ok")).err == zkraw.OK
        assert srv.stop() == 0, srv.tail()
        print("%s: %d writes acknowledged before zkd stopped with status %d; all there after the restart"
              % (kind, len(acked), rc))
    finally:
        for s in servers:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        subprocess.run(["umount", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------- zkd-dump

def dump(*args):
    r = subprocess.run([ZKD_DUMP] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


TXN_LINE = re.compile(r"^zxid=0x(?P<zxid>[0-9a-f]+) time=(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) "
                      r"session=0x(?P<session>[0-9a-f]+) cxid=0x(?P<cxid>[0-9a-f]+) type=(?P<type>\w+)"
                      r"(?: path=(?P<path>\S+))?(?P<rest>.*) offset=(?P<offset>\d+)$")


def test_zkd_dump_prints_what_zkd_wrote(work):
    assert ZKD_DUMP and os.access(ZKD_DUMP, os.X_OK), "zkd-dump not found at %s (set ZKD_DUMP)" % ZKD_DUMP
    d, servers = work
    srv = Zkd(d, os.path.join(d, "data"), "snapCount=20\nextendedTypesEnabled=true\n")
    servers.append(srv)
    srv.start()
    c = ZKRaw(srv.addr, timeout_ms=30000)
    rep = c.call(zkraw.create2("/dump", b"hello"))
    assert rep.err == zkraw.OK
    dump_czxid = rep.value[1].czxid
    rep = c.call(zkraw.set_data("/dump", b"world", 0))
    assert rep.err == zkraw.OK and rep.value.version == 1
    set_mzxid = rep.value.mzxid
    seq = c.ok(zkraw.create("/dump/s-", b"", zkraw.PERSISTENT_SEQUENTIAL))
    ttl_body = zkraw.string("/dump/ttl") + zkraw.buf(b"t") + zkraw.acls(zkraw.OPEN_ACL) + zkraw.i32(5) + zkraw.i64(60000)
    assert c.call((zkraw.CREATE_TTL, ttl_body)).err == zkraw.OK
    secret = [(31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="), (1, "world", "anyone")]
    assert c.call(zkraw.create("/dump/acl", b"a")).err == zkraw.OK
    assert c.call(zkraw.set_acl("/dump/acl", secret, 0)).err == zkraw.OK
    assert c.call(zkraw.multi([zkraw.create("/dump/m", b"mm"), zkraw.set_data("/dump", b"multi", 1),
                               zkraw.check("/dump/m", 0), zkraw.delete("/dump/m")])).err == zkraw.OK
    e = ZKRaw(srv.addr, timeout_ms=30000)
    assert e.call(zkraw.create("/dump/eph", b"", zkraw.EPHEMERAL)).err == zkraw.OK
    eph_session = e.session_id
    e.close()                       # closeSession deletes /dump/eph
    for i in range(40):             # enough txns for snapshots (snapCount=20)
        assert c.call(zkraw.create("/dump/n%d" % i, b"%d" % i)).err == zkraw.OK
    stat = c.call(zkraw.exists("/dump")).value
    session = c.session_id
    c.abort()
    assert srv.stop() == 0, srv.tail()

    # every log file, one txn per line
    logs = files(srv.data_dir, "log")
    lines = []
    for _, name in logs:
        rc, out, err = dump(os.path.join(vdir(srv.data_dir), name))
        assert rc == 0, "zkd-dump %s: status %d: %s" % (name, rc, err)
        assert out.startswith("# txn log ") and "magic ZKLG, version 2" in out.splitlines()[0]
        lines += out.splitlines()
    txns = [TXN_LINE.match(l) for l in lines if l.startswith("zxid=")]
    assert all(txns), "lines zkd-dump printed that do not parse: %s" % [l for l in lines if l.startswith("zxid=")
                                                                        and not TXN_LINE.match(l)][:3]
    by_zxid = {int(m.group("zxid"), 16): m for m in txns}

    def one(pred, what):
        found = [m for m in txns if pred(m)]
        assert len(found) == 1, "expected one %s line, found %d:\n%s" % (what, len(found),
                                                                         "\n".join(m.group(0) for m in found))
        return found[0]

    m = by_zxid.get(dump_czxid)
    assert m and m.group("type") == "create" and m.group("path") == "/dump", "create /dump at its zxid"
    assert int(m.group("session"), 16) == session
    assert 'dataLength=5 data="hello"' in m.group("rest") and "ephemeral=false" in m.group("rest")
    m = by_zxid.get(set_mzxid)
    assert m and m.group("type") == "setData" and m.group("path") == "/dump"
    assert 'version=1 dataLength=5 data="world"' in m.group("rest")
    one(lambda m: m.group("type") == "create" and m.group("path") == seq, "sequential create")
    m = one(lambda m: m.group("type") == "createTTL", "createTTL")
    assert m.group("path") == "/dump/ttl" and "ttl=60000" in m.group("rest")
    m = one(lambda m: m.group("type") == "setACL", "setACL")
    assert m.group("path") == "/dump/acl"
    assert "version=1 acl=digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa,world:anyone:r" in m.group("rest")
    m = one(lambda m: m.group("type") == "multi", "multi")
    assert "ops=4" in m.group("rest")
    at = lines.index(m.group(0))
    assert [l.split()[1:3] for l in lines[at + 1:at + 5]] == [
        ["type=create", "path=/dump/m"], ["type=setData", "path=/dump"],
        ["type=check", "path=/dump/m"], ["type=delete", "path=/dump/m"]], lines[at:at + 5]
    m = one(lambda m: m.group("type") == "create" and m.group("path") == "/dump/eph", "ephemeral create")
    assert "ephemeral=true" in m.group("rest") and int(m.group("session"), 16) == eph_session
    m = one(lambda m: m.group("type") == "closeSession" and int(m.group("session"), 16) == eph_session,
            "closeSession")
    assert "paths2Delete=[/dump/eph]" in m.group("rest")
    assert any(m.group("type") == "createSession" and "timeout=30000" in m.group("rest") for m in txns)
    zx = [int(m.group("zxid"), 16) for m in txns]
    assert zx == sorted(zx) and len(set(zx)) == len(zx), "txns out of zxid order"

    # the newest snapshot: header, sessions, one node per line
    snaps = files(srv.data_dir, "snapshot")
    assert len(snaps) > 1, "no snapshot after %d txns with snapCount=20" % len(txns)
    snap = os.path.join(vdir(srv.data_dir), snaps[-1][1])
    rc, out, err = dump(snap)
    assert rc == 0, "zkd-dump %s: status %d: %s" % (snap, rc, err)
    slines = out.splitlines()
    assert slines[0].startswith("# snapshot ") and "magic ZKSN, version 2, dbid -1" in slines[0], slines[0]
    assert "session=0x%x timeout=30000" % session in slines
    nodes = {}
    for l in slines:
        if l.startswith("path="):
            f = dict(kv.split("=", 1) for kv in l.split(" ") if "=" in kv)
            nodes[f["path"]] = f
    assert {"/", "/zookeeper", "/dump", "/dump/ttl", "/dump/acl"} <= set(nodes), sorted(nodes)[:10]
    n = nodes["/dump"]
    assert (int(n["czxid"], 16), int(n["version"]), int(n["ephemeralOwner"], 16), int(n["dataLength"])) == \
        (stat.czxid, stat.version, 0, stat.dataLength), n
    if int(snaps[-1][0]) >= stat.mzxid:
        assert int(n["mzxid"], 16) == stat.mzxid, n
    assert n["data"] == '"multi"', n
    assert nodes["/dump/ttl"]["ephemeralOwner"].endswith("(ttl=60000)"), nodes["/dump/ttl"]
    assert re.search(r"^# \d+ session\(s\), \d+ ACL\(s\), \d+ node\(s\) .*checksum 0x[0-9a-f]+ at offset \d+: ok$",
                     out, re.M), out[-400:]

    # a whole dataDir, in zxid order
    rc, out, err = dump(srv.data_dir)
    assert rc == 0, err
    heads = [l for l in out.splitlines() if l.startswith("# txn log ") or l.startswith("# snapshot ")]
    assert len(heads) == len(logs) + len(snaps)

    # damage: a flipped byte in the middle of a log, a torn tail, a short snapshot
    name = logs[0][1]
    recs = log_records(os.path.join(vdir(srv.data_dir), name))
    mid = recs[len(recs) // 2]
    bad = os.path.join(d, "bad.log")
    shutil.copy(os.path.join(vdir(srv.data_dir), name), bad)
    with open(bad, "r+b") as f:
        f.seek(mid.off + 12 + mid.length - 3)
        b = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([b ^ 0x10]))
    rc, out, err = dump(bad)
    assert rc == 1, (rc, err)
    assert bad in err and "bad record at offset %d" % mid.off in err and "intact records follow" in err, err
    assert "offset=%d" % recs[len(recs) // 2 - 1].off in out     # what came before is printed
    assert "offset=%d" % mid.off not in out
    os.truncate(bad, recs[-1].off + 20)
    with open(bad, "r+b") as f:          # undo the flip: only the tail is bad now
        f.seek(mid.off + 12 + mid.length - 3)
        f.write(bytes([b]))
    rc, out, err = dump(bad)
    assert rc == 1 and "bad record at offset %d" % recs[-1].off in err and "torn tail" in err, err
    short = os.path.join(d, "short.snap")
    with open(snap, "rb") as f:
        img = f.read()
    with open(short, "wb") as f:
        f.write(img[:len(img) * 2 // 3])
    rc, out, err = dump(short)
    assert rc == 1 and short in err and re.search(r"at offset \d+", err), err
    rc, out, err = dump(os.path.join(d, "zoo.cfg"))
    assert rc == 1 and "neither a txn log" in err, err
