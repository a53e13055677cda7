"""ensemble: a loopback ensemble of zkd and/or Apache ZooKeeper 3.8 servers.

    from ensemble import Ensemble
    with Ensemble(["zkd", "zkd", "zk"]) as e:    # member kinds, server.1 .. server.N
        e.start_all()
        leader = e.wait_quorum(timeout=30)       # index of the one leader
        zk = e.client(1)                         # kazoo, connected to member 1 only
        zk.create("/x", b"v")
        e.kill(leader)                           # SIGKILL (stop(): SIGTERM, restart())
        e.wait_quorum(timeout=30)
        e.start(leader)
        e.wait_converged(timeout=30)             # every live member has the same tree

Members are indexed from 0 (member i is server.<i+1>, myid i+1). A member is

  "zk"   Apache ZooKeeper 3.8 (Debian's `zookeeper` package):
         java ... org.apache.zookeeper.server.quorum.QuorumPeerMain <cfg>, in
         the foreground, its slf4j-simple log (stderr) in <member>/server.log;
  "zkd"  $ZKD (default build/zkd): `zkd <cfg>`, stdout+stderr in
         <member>/server.log.

Each ensemble gets a work directory (under $TMPDIR) with one directory per
member: zoo.cfg, data/ (with myid), server.log (appended to across restarts,
one "==== start" line each). Ports: one block of 100 below the ephemeral
range (27000-32699, so no client socket can take one meanwhile), reserved
with a lock file (/tmp/zkd-ensemble-ports/<base>.lock) so ensembles of
concurrent runs never share one, and checked free; client base+i, quorum
base+30+i, election base+60+i. admin.enableServer=false.

zoo.cfg per member: tickTime (default $ENSEMBLE_TICK_MS or 300), initLimit,
syncLimit, dataDir, clientPort + clientPortAddress=127.0.0.1,
server.N=127.0.0.1:<quorum>:<election>[:observer];127.0.0.1:<client>,
4lw.commands.whitelist=*, admin.enableServer=false, maxClientCnxns=0,
peerType=observer for observers, then `extra` keys.

Every wait takes a timeout and raises EnsembleError when it passes (with what
was seen); a member that exits by itself fails the wait at once, with the
tail of its log. Servers are started in their own session with
PR_SET_PDEATHSIG=SIGKILL (through setpriv), so they die with the process
that started them (call start() from the main thread: the signal follows
the thread that started the server).

cleanup() (also on `with` exit and at interpreter exit): stops kazoo clients,
SIGTERMs zkd members (bounded, so sanitizer reports reach their logs) and
SIGKILLs ZooKeeper members, releases the ports, and removes the work
directory unless keep=True, $KEEP_ENSEMBLE=1, or cleanup(keep=True) (the
pytest fixture keeps it when the test failed and prints where it is).

Environment: ZKD (zkd binary), JAVA (default /usr/bin/java),
ENSEMBLE_JAVA_OPTS (JVM flags for "zk" members), ENSEMBLE_TICK_MS,
KEEP_ENSEMBLE=1.
"""

import atexit
import fcntl
import hashlib
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import zkraw  # noqa: E402  (tests/integration/zkraw.py)

JAVA = os.environ.get("JAVA", "/usr/bin/java")
ZK_CP = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
# Small heap, serial GC, C1 only: a JVM starts in ~1 s and five fit on two
# cores. bench/failover passes its own (JIT on).
ZK_JAVA_OPTS = os.environ.get(
    "ENSEMBLE_JAVA_OPTS",
    "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.net.preferIPv4Stack=true")
DEFAULT_TICK_MS = int(os.environ.get("ENSEMBLE_TICK_MS", "300"))
PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "zkd-ensemble-ports")
PORT_BLOCK = 100             # client +0.., quorum +30.., election +60..
MAX_MEMBERS = 30
SERVING = ("leader", "follower", "observer")
# stat fields that every member must agree on (ctime/mtime are left out)
STAT_FIELDS = ("czxid", "mzxid", "pzxid", "version", "cversion", "aversion",
               "ephemeralOwner", "numChildren")
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory)Sanitizer|runtime error:|"
                          r"WARNING: ThreadSanitizer")


class EnsembleError(AssertionError):
    """A wait ran out, or a member misbehaved (exited, wrong mode)."""


def _zkd_default():
    z = os.environ.get("ZKD") or os.path.join(ROOT, "build", "zkd")
    return z if os.path.isabs(z) else os.path.join(ROOT, z)


# setpriv (util-linux) sets PR_SET_PDEATHSIG and execs the server: the pid
# stays the server's. (A preexec_fn would do the same but is unsafe once
# kazoo's threads run.)
SETPRIV = (["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
           if os.access("/usr/bin/setpriv", os.X_OK) else [])


def _port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _reserve_block(n):
    """(base, lock fd): a block of ports whose 3n ports are all free, locked
    against every other user of this module until the fd is closed."""
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    bases = list(range(27000, 32700, PORT_BLOCK))
    random.Random(os.getpid() ^ time.monotonic_ns()).shuffle(bases)
    for base in bases:
        fd = os.open(os.path.join(PORT_LOCK_DIR, "%d.lock" % base), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if all(_port_free(base + off + i) for off in (0, 30, 60) for i in range(n)):
            return base, fd
        os.close(fd)
    raise EnsembleError("no free block of loopback ports in 27000-32699 for %d members" % n)


def four_letter(port, word, timeout=3.0):
    """The server's answer to a four-letter word ("" if it could not be had)."""
    try:
        return zkraw.four_letter("127.0.0.1:%d" % port, word, timeout)
    except (OSError, zkraw.Timeout):
        return ""


def parse_srvr(text):
    """srvr's "Key: value" lines as a dict ("Mode" is absent when the server
    is not serving: "This ZooKeeper instance is not currently serving")."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


class Member:
    def __init__(self, ens, idx, kind, observer):
        if kind not in ("zk", "zkd"):
            raise ValueError("member kind must be 'zk' or 'zkd', not %r" % kind)
        self.idx = idx
        self.sid = idx + 1
        self.kind = kind
        self.observer = observer
        self.dir = os.path.join(ens.work, "m%d-%s" % (self.sid, kind))
        self.data = os.path.join(self.dir, "data")
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        self.log = os.path.join(self.dir, "server.log")
        self.client_port = ens.base + idx
        self.quorum_port = ens.base + 30 + idx
        self.election_port = ens.base + 60 + idx
        self.addr = "127.0.0.1:%d" % self.client_port
        self.proc = None
        self.starts = 0
        self.expected_exit = False
        self.log_start = 0          # size of server.log when this run began

    def __repr__(self):
        return "member %d (server.%d, %s%s, %s)" % (
            self.idx, self.sid, self.kind, ", observer" if self.observer else "", self.addr)


class Ensemble:
    def __init__(self, kinds, observers=(), tick_ms=None, init_limit=10, sync_limit=5,
                 extra=None, work=None, zkd=None, java_opts=None, server_cmd=None,
                 keep=None, name="ensemble"):
        """kinds: one "zk"/"zkd" per member. observers: member indexes that
        are observers. extra: dict of further zoo.cfg keys (all members), or
        a list of dicts (one per member). server_cmd: a command line template
        for every member ({cfg} = its zoo.cfg, {dir} = its directory)
        instead of the kind's own."""
        kinds = list(kinds)
        if not 1 <= len(kinds) <= MAX_MEMBERS:
            raise ValueError("1..%d members" % MAX_MEMBERS)
        self.n = len(kinds)
        self.tick_ms = tick_ms or DEFAULT_TICK_MS
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.zkd = zkd or _zkd_default()
        self.java_opts = shlex.split(ZK_JAVA_OPTS if java_opts is None else java_opts)
        self.server_cmd = server_cmd
        self.keep = keep if keep is not None else os.environ.get("KEEP_ENSEMBLE") == "1"
        self.base, self._lock_fd = _reserve_block(self.n)
        self.work = work or tempfile.mkdtemp(prefix="zkd-%s." % name)
        os.makedirs(self.work, exist_ok=True)
        self.members = [Member(self, i, k, i in observers) for i, k in enumerate(kinds)]
        self._clients = []
        self._lock = threading.Lock()
        self._closed = False
        if isinstance(extra, (list, tuple)):
            extras = list(extra)
        else:
            extras = [extra or {}] * self.n
        for m in self.members:
            self._write_config(m, extras[m.idx] or {})
        atexit.register(self.cleanup)

    # ------------------------------------------------------------ config

    def server_lines(self):
        out = []
        for m in self.members:
            out.append("server.%d=127.0.0.1:%d:%d%s;127.0.0.1:%d" % (
                m.sid, m.quorum_port, m.election_port,
                ":observer" if m.observer else "", m.client_port))
        return out

    def _write_config(self, m, extra):
        os.makedirs(m.data, exist_ok=True)
        with open(os.path.join(m.data, "myid"), "w") as f:
            f.write("%d\n" % m.sid)
        lines = [
            "# %s: written by tests/integration/ensemble.py" % m,
            "tickTime=%d" % self.tick_ms,
            "initLimit=%d" % self.init_limit,
            "syncLimit=%d" % self.sync_limit,
            "dataDir=%s" % m.data,
            "clientPort=%d" % m.client_port,
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
        ]
        if m.observer:
            lines.append("peerType=observer")
        lines += self.server_lines()
        lines += ["%s=%s" % (k, v) for k, v in extra.items()]
        with open(m.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _argv(self, m):
        if self.server_cmd:
            return [a.replace("{cfg}", m.cfg).replace("{dir}", m.dir)
                    for a in shlex.split(self.server_cmd)]
        if m.kind == "zkd":
            if not os.access(self.zkd, os.X_OK):
                raise EnsembleError("no zkd binary at %s (set ZKD, or make build/zkd)" % self.zkd)
            return [self.zkd, m.cfg]
        return ([JAVA] + self.java_opts +
                ["-Dzookeeper.log.dir=" + m.dir,
                 "-Dorg.slf4j.simpleLogger.showDateTime=true",
                 "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                 "-cp", ZK_CP, "org.apache.zookeeper.server.quorum.QuorumPeerMain", m.cfg])

    # ------------------------------------------------------------ processes

    def start(self, i):
        m = self.members[i]
        if self.alive(i):
            raise EnsembleError("%s is already running (pid %d)" % (m, m.proc.pid))
        argv = self._argv(m)
        m.starts += 1
        m.log_start = os.path.getsize(m.log) if os.path.exists(m.log) else 0
        with open(m.log, "ab") as log:
            log.write(("==== start %d at %s: %s\n" % (
                m.starts, time.strftime("%H:%M:%S"), " ".join(argv))).encode())
            log.flush()
            m.proc = subprocess.Popen(SETPRIV + argv, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, cwd=m.dir,
                                      start_new_session=True)
        m.expected_exit = False

    def start_all(self):
        for i in range(self.n):
            self.start(i)

    def alive(self, i):
        p = self.members[i].proc
        return p is not None and p.poll() is None

    def live(self):
        return [i for i in range(self.n) if self.alive(i)]

    def pid(self, i):
        return self.members[i].proc.pid if self.alive(i) else None

    def _signal_and_wait(self, i, sig, timeout):
        m = self.members[i]
        if m.proc is None:
            return None
        m.expected_exit = True
        if m.proc.poll() is None:
            try:
                m.proc.send_signal(sig)
                m.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=10)
        return m.proc.returncode

    def kill(self, i):
        """SIGKILL member i and reap it. Returns its exit status."""
        return self._signal_and_wait(i, signal.SIGKILL, 10)

    def stop(self, i, timeout=10):
        """SIGTERM member i, SIGKILL if it is still there after timeout s."""
        return self._signal_and_wait(i, signal.SIGTERM, timeout)

    def restart(self, i):
        self.stop(i)
        self.start(i)

    def log_tail(self, i, lines=40):
        try:
            with open(self.members[i].log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + ln for ln in text.splitlines()[-lines:])

    # ZooKeeper 3.8's own follower bug (ZOOKEEPER-4394): a COMMIT that
    # arrives between NEWLEADER and UPTODATE of a DIFF sync finds no
    # proposal and the follower's sync dies with this NullPointerException,
    # leaving the server up but never serving again. It needs a leader that
    # commits while a ZooKeeper follower syncs, which loaded mixed ensembles
    # do often. An operator restarts such a server; so does the harness,
    # loudly, for ZooKeeper members only (a zkd member gets no such help).
    ZK_4394 = b'because "pif" is null'

    def _restart_zk_4394(self, i):
        m = self.members[i]
        if m.kind != "zk" or not self.alive(i):
            return False
        try:
            with open(m.log, "rb") as f:
                f.seek(m.log_start)
                hit = self.ZK_4394 in f.read()
        except OSError:
            return False
        if not hit:
            return False
        sys.stderr.write("[ensemble] server.%d (ZooKeeper) hit ZOOKEEPER-4394 (NullPointerException in "
                         "Learner.syncWithLeader); restarting it as an operator would\n" % m.sid)
        self.restart(i)
        return True

    def _check_alive(self, idxs):
        for i in idxs:
            m = self.members[i]
            if m.proc is not None and not m.expected_exit and m.proc.poll() is not None:
                raise EnsembleError("%s exited by itself (status %s); %s:\n%s" % (
                    m, m.proc.returncode, m.log, self.log_tail(i)))

    # ------------------------------------------------------------ modes

    def srvr(self, i):
        return parse_srvr(four_letter(self.members[i].client_port, "srvr"))

    def mode(self, i):
        """Member i's Mode from srvr now: 'leader', 'follower', 'observer',
        'standalone', or None (down, or not serving)."""
        if not self.alive(i):
            return None
        return self.srvr(i).get("Mode")

    def modes(self):
        return [self.mode(i) for i in range(self.n)]

    def _refuse_standalone(self, i, mode):
        if mode == "standalone":
            raise EnsembleError(
                "%s reports Mode: standalone although its zoo.cfg has %d server.N lines: "
                "it does not run as an ensemble member (%s)" % (self.members[i], self.n,
                                                               self.members[i].log))

    def wait_mode(self, i, timeout=30, modes=SERVING):
        """Polls srvr until member i reports one of `modes`; returns it."""
        end = time.monotonic() + timeout
        last = None
        while True:
            self._check_alive([i])
            if not self.alive(i):
                raise EnsembleError("%s is not running" % self.members[i])
            last = self.mode(i)
            if last in modes:
                return last
            self._refuse_standalone(i, last)
            self._restart_zk_4394(i)
            if time.monotonic() >= end:
                raise EnsembleError("%s: no Mode in %s within %.0f s (last: %s); %s:\n%s" % (
                    self.members[i], modes, timeout, last, self.members[i].log,
                    self.log_tail(i, 20)))
            time.sleep(0.05)

    def serving(self, i, timeout=2.0):
        """True if member i completes a session handshake now (the session is
        closed again). ZooKeeper answers srvr before it takes sessions."""
        try:
            c = zkraw.ZKRaw(self.members[i].addr, timeout_ms=4000, io_timeout=timeout)
        except (OSError, zkraw.ConnectionClosed, zkraw.Timeout, zkraw.ProtocolError):
            return False
        c.close(timeout=timeout)
        return True

    def wait_quorum(self, timeout=30, members=None):
        """Waits until every live member (or every one of `members`, which
        must be running) reports leader/follower/observer, exactly one of
        all live members is the leader, and each of them takes a session.
        Returns the leader's index."""
        end = time.monotonic() + timeout
        last = None
        while True:
            live = self.live()
            want = live if members is None else list(members)
            self._check_alive(range(self.n))
            modes = {i: self.mode(i) for i in live}
            for i, md in modes.items():
                self._refuse_standalone(i, md)
                if md not in SERVING:
                    self._restart_zk_4394(i)
            leaders = [i for i, md in modes.items() if md == "leader"]
            last = modes
            if (len(leaders) == 1 and all(modes.get(i) in SERVING for i in want)
                    and all(self.serving(i) for i in want)):
                return leaders[0]
            if time.monotonic() >= end:
                raise EnsembleError("no quorum within %.0f s: modes %s (want one leader and %s "
                                    "serving); logs under %s" % (
                                        timeout, {self.members[i].sid: md for i, md in last.items()},
                                        ["server.%d" % self.members[i].sid for i in want],
                                        self.work))
            time.sleep(0.05)

    def leader(self, timeout=30):
        """The index of the leader, once there is a quorum (wait_quorum)."""
        return self.wait_quorum(timeout)

    def wait_not_serving(self, idxs, timeout=30):
        """Waits until none of members idxs reports a serving Mode (lost
        quorum)."""
        end = time.monotonic() + timeout
        while True:
            modes = {i: self.mode(i) for i in idxs}
            if not any(md in SERVING for md in modes.values()):
                return
            if time.monotonic() >= end:
                raise EnsembleError("members still serving %.0f s after losing their quorum: %s"
                                    % (timeout, {self.members[i].sid: md for i, md in modes.items()}))
            time.sleep(0.05)

    # ------------------------------------------------------------ clients

    def client(self, i, timeout=None, start_timeout=15, **kw):
        """A started kazoo client connected to member i only, reconnecting
        with a short back-off (50 ms .. 500 ms). Stopped by cleanup()."""
        from kazoo.client import KazooClient
        kw.setdefault("connection_retry", dict(max_tries=-1, delay=0.05, backoff=1.5,
                                               max_delay=0.5, max_jitter=0.05))
        c = KazooClient(hosts=self.members[i].addr, timeout=timeout or 20.0 * self.tick_ms / 1000,
                        **kw)
        c.start(timeout=start_timeout)
        with self._lock:
            self._clients.append(c)
        return c

    def close_client(self, c):
        try:
            c.stop()
        except Exception:
            pass
        try:
            c.close()
        except Exception:
            pass
        with self._lock:
            if c in self._clients:
                self._clients.remove(c)

    # ------------------------------------------------------------ trees

    def tree(self, i, timeout=15):
        """{path: (data, {stat field: value})} of member i's whole tree but
        /zookeeper, read after a sync of /, through a fresh kazoo client."""
        from kazoo.exceptions import NoNodeError
        c = self.client(i, start_timeout=timeout)
        try:
            c.sync_async("/").get(timeout=timeout)
            out = {}
            level = ["/"]
            while level:
                gets = [(p, c.get_async(p), c.get_children_async(p)) for p in level]
                level = []
                for p, g, ch in gets:
                    try:
                        data, st = g.get(timeout=timeout)
                        kids = ch.get(timeout=timeout)
                    except NoNodeError:
                        continue
                    out[p] = (data, {f: getattr(st, f) for f in STAT_FIELDS})
                    for k in sorted(kids):
                        path = ("/" if p == "/" else p + "/") + k
                        if path != "/zookeeper":
                            level.append(path)
            return out
        finally:
            self.close_client(c)

    @staticmethod
    def digest_of(tree):
        h = hashlib.sha256()
        for p in sorted(tree):
            data, st = tree[p]
            h.update(repr((p, data, [st[f] for f in STAT_FIELDS])).encode())
        return h.hexdigest()

    def digest(self, i, timeout=15):
        """A digest of member i's tree: paths, data and STAT_FIELDS, all but
        /zookeeper, read after a sync."""
        return self.digest_of(self.tree(i, timeout))

    @staticmethod
    def tree_diff(a, b, limit=5):
        out = []
        for p in sorted(set(a) | set(b)):
            if a.get(p) != b.get(p):
                out.append("%s: %s != %s" % (p, a.get(p, "(absent)"), b.get(p, "(absent)")))
                if len(out) >= limit:
                    break
        return out

    def wait_converged(self, timeout=30, members=None):
        """Waits until every live member (or each of `members`) has the same
        tree (read after a sync); returns {path: (data, stats)}."""
        end = time.monotonic() + timeout
        err = "nothing read"
        while True:
            idxs = self.live() if members is None else list(members)
            self._check_alive(range(self.n))
            trees = {}
            try:
                for i in idxs:
                    trees[i] = self.tree(i, timeout=max(1.0, min(10.0, end - time.monotonic())))
            except Exception as e:          # not serving yet, timeouts, ...
                err = "%s: %s: %s" % (self.members[i], type(e).__name__, e)
            else:
                first = idxs[0]
                bad = [i for i in idxs if trees[i] != trees[first]]
                if not bad:
                    return trees[first]
                err = "; ".join("server.%d vs server.%d (%d vs %d nodes): %s" % (
                    self.members[first].sid, self.members[i].sid, len(trees[first]),
                    len(trees[i]), " | ".join(self.tree_diff(trees[first], trees[i])))
                    for i in bad)
            if time.monotonic() >= end:
                raise EnsembleError("members did not converge within %.0f s: %s" % (timeout, err))
            time.sleep(0.1)

    # ------------------------------------------------------------ teardown

    def sanitizer_reports(self):
        """[(member, first line)] of sanitizer reports in zkd members' logs."""
        out = []
        for m in self.members:
            if m.kind != "zkd":
                continue
            try:
                with open(m.log, "r", errors="replace") as f:
                    for line in f:
                        if SANITIZER_RE.search(line):
                            out.append((m, line.strip()))
                            break
            except OSError:
                pass
        return out

    def cleanup(self, keep=None):
        if self._closed:
            return
        self._closed = True
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
        for i, m in enumerate(self.members):
            if m.kind == "zkd" and not self.server_cmd:
                self.stop(i, timeout=5)
            else:
                self.kill(i)
        os.close(self._lock_fd)
        keep = self.keep if keep is None else keep
        if keep:
            print("[ensemble] kept %s (member logs: %s)" % (
                self.work, ", ".join(m.log for m in self.members)), file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        try:
            atexit.unregister(self.cleanup)
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.cleanup(keep=True if exc_type is not None else None)
