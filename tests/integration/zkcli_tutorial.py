#!/usr/bin/python3
"""zkCli.sh oracle test: ZooKeeper's getting-started tutorial, diffed against
a real Apache ZooKeeper 3.8.

The same zkCli command scripts run (piped on stdin, one JVM per session)
against the server under test (ZK_ADDR=host:port) and against a real
ZooKeeper 3.8 (ZK_ORACLE_ADDR=host:port if given, otherwise one is started
here on a free loopback port from Debian's zookeeper.jar).  The two
transcripts are normalized (zxids, times, session ids, JVM noise) and must be
identical; any difference fails and is printed as a unified diff.

Both servers must be fresh: the tutorial lists "/" and expects to see only
/zookeeper there, and it uses /zk_test (removed again at the end).

Exit status: 0 if identical, 1 on a difference, 2 if the test could not run.
"""
import difflib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from standalone import free_port

ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
JAVA = os.environ.get("JAVA", "/usr/bin/java")
ZK_CP = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
ZKCLI_TIMEOUT = 60.0        # seconds for one zkCli session
ORACLE_START_TIMEOUT = 30.0

# "printwatches" (no argument) is a purely client-side command that prints
# "printwatches is on".  It is sent before every real command as a marker so
# that the transcript can be annotated with the command that produced each
# piece of output (see normalize()).
MARKER_CMD = "printwatches"
MARKER_OUT = "printwatches is on"

# Each inner list is one zkCli session (one JVM, one ZooKeeper session).
SESSIONS = [
    [   # the tutorial, plus the error paths a user hits along the way
        "ls /",
        "ls /zookeeper",
        "create /zk_test my_data",
        "ls /",
        "get /zk_test",
        "get -s /zk_test",
        "set /zk_test junk",
        "get -s /zk_test",
        "stat /zk_test",
        "getAcl /zk_test",
        "create /zk_test my_data",               # Node already exists
        "create /zk_test/nodata",                # null data -> get prints "null"
        "get /zk_test/nodata",
        "create -e /zk_test/ephemeral eph_data",
        "get -s /zk_test/ephemeral",             # ephemeralOwner = this session
        "create -e /zk_test/ephemeral/child x",  # Ephemerals cannot have children
        "create -s /zk_test/seq- seq_data",      # name from the parent's cversion
        "create -s /zk_test/seq- seq_data",
        "create -e -s /zk_test/eseq- x",
        "create -s /zk_test/ x",                 # sequence with an empty prefix
        "ls /zk_test",
        "ls -s /zk_test",
        "ls -R /zk_test",
        "stat /zk_test",
        "set -v 7 /zk_test stale",               # bad version
        "set -v 1 /zk_test fresh",
        "get -s /zk_test",
        "delete /zk_test",                       # Node not empty
        "delete -v 3 /zk_test/nodata",           # bad version
        "delete /zk_test/seq-0000000002",
        "create /no/such/node x",                # parent missing
        "get /zk_test/nope",
        "stat /zk_test/nope",
        "ls /zk_test/nope",
        "set /zk_test/nope x",
        "delete /zk_test/nope",
        "ls /zk_test",
        "quit",
    ],
    [   # a new session: the previous session's ephemerals are gone
        "ls /zk_test",
        "get -s /zk_test",
        "create -s /zk_test/seq- again",
        "deleteall /zk_test",
        "ls /",
        "stat /zk_test",
        "deleteall /zk_test",
        "quit",
    ],
    [   # quotas: the server keeps zookeeper_stats in step with the subtree
        "create /zk_quota",
        "create /zk_quota/a hello",
        "setquota -n 10 /zk_quota",
        "listquota /zk_quota",
        "create /zk_quota/b 12345",
        "create /zk_quota/a/c x",
        "set /zk_quota/a hi",
        "listquota /zk_quota",
        "delete /zk_quota/b",
        "listquota /zk_quota",
        "delquota /zk_quota",
        "listquota /zk_quota",
        "deleteall /zk_quota",
        "ls /zookeeper/quota",
        "quit",
    ],
]


def log(msg):
    print("[zkcli] " + msg, flush=True)


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def handshake(addr, timeout=2.0):
    """True once addr completes a ZooKeeper session handshake (the session is
    closed again right away).  `ruok` is not enough: ZooKeeper 3.8 answers
    imok a few hundred ms before it accepts sessions, and a client that
    connects in that window gets ConnectionLoss."""
    try:
        with socket.create_connection(split_addr(addr), timeout=timeout) as s:
            # ConnectRequest: protocolVersion, lastZxidSeen, timeOut,
            # sessionId, passwd (16 zero bytes), readOnly
            req = struct.pack(">iqiqi16s?", 0, 0, 4000, 0, 16, b"\0" * 16,
                              False)
            s.sendall(struct.pack(">i", len(req)) + req)
            (n,) = struct.unpack(">i", _recv_exact(s, 4))
            body = _recv_exact(s, n)
            _, negotiated, session_id = struct.unpack(">iiq", body[:16])
            if negotiated <= 0 or session_id == 0:
                return False
            try:   # closeSession (xid 1, type -11); the reply does not matter
                s.sendall(struct.pack(">iii", 8, 1, -11))
                _recv_exact(s, 16)
            except OSError:
                pass
            return True
    except (OSError, struct.error):
        return False


def wait_ready(addr, timeout, proc=None):
    """Polls handshake() until it succeeds (True), the deadline passes or
    proc exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if handshake(addr):
            return True
        time.sleep(0.1)
    return False


class Oracle:
    """A throw-away Apache ZooKeeper 3.8 standalone server (same settings as
    shared/conformance/zk38-standalone.sh), in its own temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="zkcli-oracle-")
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.proc = None
        self.logpath = os.path.join(self.dir, "zk.log")

    def start(self):
        os.makedirs(os.path.join(self.dir, "data"))
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("tickTime=2000\ndataDir=%s/data\nclientPort=%d\n"
                    "clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n"
                    "4lw.commands.whitelist=*\nadmin.enableServer=false\n"
                    % (self.dir, self.port))
        cmd = [JAVA, "-Xmx256m", "-Dzookeeper.log.dir=" + self.dir,
               "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
               "-cp", ZK_CP, "org.apache.zookeeper.server.ZooKeeperServerMain",
               cfg]
        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        if not wait_ready(self.addr, ORACLE_START_TIMEOUT, self.proc):
            raise RuntimeError("oracle ZooKeeper did not accept a session on "
                               "%s within %.0fs:\n%s"
                               % (self.addr, ORACLE_START_TIMEOUT,
                                  self.log_tail()))

    def log_tail(self, n=30):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_zkcli(addr, commands):
    """Runs one zkCli session; returns (exit code, merged stdout+stderr)."""
    script = "".join("%s\n%s\n" % (MARKER_CMD, c) for c in commands)
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    env.pop("_JAVA_OPTIONS", None)
    env.pop("JDK_JAVA_OPTIONS", None)
    # The zkCli log file would otherwise go to Debian's /var/log/zookeeper.
    logdir = tempfile.mkdtemp(prefix="zkcli-log-")
    env["ZOO_LOG_DIR"] = logdir
    try:
        # stderr is merged into stdout: zkCli prints "Created ..." and all
        # error messages on stderr, and the relative order matters.  Both
        # Java streams auto-flush per line and are written by the one
        # command thread, so the merged order is deterministic.
        # zkCli.sh does not exec java: run it in its own process group so
        # that a timeout (or our own termination) kills the JVM as well.
        p = subprocess.Popen([ZKCLI, "-server", addr], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
        try:
            out, _ = p.communicate(script.encode(), timeout=ZKCLI_TIMEOUT)
            return p.returncode, out.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            return ("timeout after %.0fs" % ZKCLI_TIMEOUT,
                    out.decode("utf-8", "replace"))
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


ZXID_RE = re.compile(r"^([cmp]Zxid) = (0x[0-9a-f]+)$")
TIME_RE = re.compile(r"^([cm]time) = (.*)$")
# e.g. "Sun Nov 22 01:03:33 UTC 2026" (java.util.Date.toString())
DATE_RE = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-3]\d \d\d:\d\d:\d\d \S+ \d{4}$")
OWNER_RE = re.compile(r"^ephemeralOwner = (0x[0-9a-f]+)$")
# Connection-state events printed asynchronously by zkCli's event thread
# (their position relative to command output is racy): the expected ones are
# dropped, anything else (Disconnected, Expired, ...) stays and shows up.
EXPECTED_EVENT_RE = re.compile(
    r"^WatchedEvent state:(SyncConnected|Closed) type:None path:null$")
NOISE_RES = [
    re.compile(r"^SLF4J: "),
    re.compile(r"^Picked up (JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS)"),
    re.compile(r"^(OpenJDK|Java HotSpot\(TM\)) .*VM warning: "),
    re.compile(r"^WATCHER::$"),
    re.compile(r"^\s*$"),
    EXPECTED_EVENT_RE,
]


def normalize(results, sessions):
    """results: [(rc, output)] per session -> list of normalized lines.

    zxids are renamed by rank among all zxids seen in the whole transcript
    (so equalities and ordering are checked, absolute values are not);
    non-zero ephemeralOwners are renamed by order of first appearance (so
    "same session" / "other session" is checked)."""
    zxids = set()
    for _, out in results:
        for line in out.splitlines():
            m = ZXID_RE.match(line.strip())
            if m:
                zxids.add(int(m.group(2), 16))
    zxid_name = {z: "Z%d" % i for i, z in enumerate(sorted(zxids), 1)}
    owners = {}
    lines = []
    for si, ((rc, out), cmds) in enumerate(zip(results, sessions), 1):
        lines.append("=== zkCli session %d" % si)
        ci = 0
        for raw in out.splitlines():
            line = raw.rstrip()
            if any(r.match(line) for r in NOISE_RES):
                continue
            if line.startswith("Connecting to "):
                lines.append("Connecting to <server>")
                continue
            if line == MARKER_OUT:
                cmd = cmds[ci] if ci < len(cmds) else "<extra marker>"
                ci += 1
                lines.append("> " + cmd)
                continue
            m = ZXID_RE.match(line)
            if m:
                lines.append("%s = <%s>" % (m.group(1),
                                            zxid_name[int(m.group(2), 16)]))
                continue
            m = TIME_RE.match(line)
            if m:
                ok = "date" if DATE_RE.match(m.group(2)) else "BAD DATE FORMAT"
                lines.append("%s = <%s>" % (m.group(1), ok))
                continue
            m = OWNER_RE.match(line)
            if m and int(m.group(1), 16) != 0:
                sid = int(m.group(1), 16)
                owners.setdefault(sid, "session-%d" % (len(owners) + 1))
                lines.append("ephemeralOwner = <%s>" % owners[sid])
                continue
            lines.append(line)
        if ci != len(cmds):
            lines.append("!!! only %d of %d commands ran" % (ci, len(cmds)))
        lines.append("=== exit status %s" % (rc,))
    return lines


def transcript(addr):
    results = []
    for cmds in SESSIONS:
        results.append(run_zkcli(addr, cmds))
    return normalize(results, SESSIONS), results


def main():
    target = os.environ.get("ZK_ADDR")
    if not target:
        print("usage: ZK_ADDR=host:port [ZK_ORACLE_ADDR=host:port] %s"
              % sys.argv[0], file=sys.stderr)
        return 2
    if not os.access(ZKCLI, os.X_OK):
        print("zkCli not found at %s (install the zookeeper package)" % ZKCLI,
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    oracle = None
    try:
        oracle_addr = os.environ.get("ZK_ORACLE_ADDR")
        if not oracle_addr:
            oracle = Oracle()
            log("starting oracle ZooKeeper 3.8 on %s" % oracle.addr)
            oracle.start()
            oracle_addr = oracle.addr
        for addr in (oracle_addr, target):
            if not wait_ready(addr, ORACLE_START_TIMEOUT):
                raise RuntimeError("%s does not accept sessions" % addr)
        log("oracle: %s, server under test: %s" % (oracle_addr, target))
        want, want_raw = transcript(oracle_addr)
        got, got_raw = transcript(target)
    except Exception as e:  # noqa: BLE001 - report any setup failure
        print("zkcli_tutorial: could not run: %s" % e, file=sys.stderr)
        return 2
    finally:
        if oracle is not None:
            oracle.stop()
    if os.environ.get("ZKCLI_VERBOSE"):
        print("\n".join(want))
    if want == got:
        log("PASS: zkCli transcript identical to ZooKeeper 3.8 "
            "(%d lines, %d sessions, %.1fs)"
            % (len(want), len(SESSIONS), time.monotonic() - t0))
        return 0
    log("FAIL: zkCli transcript differs from ZooKeeper 3.8 "
        "(--- ZooKeeper 3.8, +++ server under test):")
    sys.stdout.writelines(difflib.unified_diff(
        [l + "\n" for l in want], [l + "\n" for l in got],
        "zookeeper-3.8", "server-under-test", n=4))
    log("raw zkCli output from the server under test:")
    for i, (rc, out) in enumerate(got_raw, 1):
        print("--- session %d (exit %s)" % (i, rc))
        print(out)
    return 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    sys.exit(main())
