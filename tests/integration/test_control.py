"""Operating zkd (issue 8): bin/zkdctl, the clean SIGTERM shutdown and the
start-up log.

  zkdctl          start / status / stop / restart / start-foreground /
                  print-cmd on a temporary zoo.cfg with a free port, with
                  zkServer.sh's words and exit codes (status: exit 0 and
                  "Mode: standalone"; 1 and "Error contacting service" when
                  down; start on a running server: exit 1); the conf given
                  as --config dir, as a directory, as ZOOCFGDIR + ZOOCFG.
  ensemble        zkdctl status on each member of a 3-member zkd ensemble:
                  one "Mode: leader", two "Mode: follower"; a member stopped
                  with SIGTERM leaves with status 0, the others go on, and
                  it rejoins.
  SIGTERM         under write load: zkd exits 0 after draining; after a
                  restart every acknowledged write is there, and a raw
                  client resuming with its session id and password, as well
                  as a kazoo client that simply reconnects, keep their
                  sessions and their ephemeral nodes.
  start-up log    the lines operators grep ZooKeeper's log for ("Reading
                  configuration from:", "binding to port", "Server
                  environment:", "Created server with", ...), and
                  ZKD_LOG_LEVEL.

Environment: ZKD (required; the zkd binary), KEEP_TMP=1 (keep the work
directories).
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

import zkraw
from zkraw import ConnectionClosed, ProtocolError, Timeout, ZKRaw

ZKD = os.environ.get("ZKD")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ZKDCTL = os.path.join(ROOT, "bin", "zkdctl")
KEEP = os.environ.get("KEEP_TMP") == "1"
TEST_TIMEOUT = 180
CLIENT_ERRORS = (ConnectionClosed, Timeout, ProtocolError, OSError)
SANITIZER = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer")

pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")


def zkd_path():
    return os.path.abspath(ZKD)


_port_locks = []


def free_port():
    """A free loopback port below the ephemeral range, locked against the
    other users of ensemble.py's port blocks for the rest of the run: a
    server restarted on its port must find it free, so it must be one no
    client socket can be given meanwhile."""
    from ensemble import _reserve_block
    base, fd = _reserve_block(1)
    _port_locks.append(fd)
    return base


def write_cfg(work, port, data=None, extra="", whitelist="*"):
    """A zoo.cfg in work; whitelist None leaves 4lw.commands.whitelist out
    (ZooKeeper's default: srvr only)."""
    data = data or os.path.join(work, "data")
    cfg = os.path.join(work, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                "maxClientCnxns=0\nadmin.enableServer=false\n%s%s"
                % (data, port, "4lw.commands.whitelist=%s\n" % whitelist if whitelist else "", extra))
    return cfg


def zkdctl(*args, env=None, timeout=60, cwd=None):
    e = dict(os.environ)
    e["ZKD"] = zkd_path()
    for k in ("ZOOCFGDIR", "ZOOCFG", "ZOO_LOG_DIR", "ZOOPIDFILE"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([ZKDCTL] + list(args), env=e, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, "%s: not within %.0f s" % (what, timeout)
        time.sleep(0.05)


def wait_session(addr, proc=None, timeout=20.0):
    """Until addr completes a session handshake (closed again)."""
    def ok():
        if proc is not None:
            assert proc.poll() is None, "zkd exited (status %s)" % proc.returncode
        try:
            ZKRaw(addr, timeout_ms=4000, io_timeout=1.0).close(timeout=1.0)
            return True
        except CLIENT_ERRORS:
            return False
    wait_until(ok, timeout, "a session on %s" % addr)


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="zkd-control-")
    pids = []
    yield d, pids
    for pid in pids:                       # whatever a failed test left running
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    reports = []                           # a sanitizer build reports at the fault or at exit
    for top, _, names in os.walk(d):
        for n in names:
            if n.endswith((".log", ".out")):
                with open(os.path.join(top, n), errors="replace") as f:
                    text = f.read()
                m = SANITIZER.search(text)
                if m:
                    reports.append("%s:\n%s" % (os.path.join(top, n), text[m.start():m.start() + 2000]))
    while _port_locks:
        os.close(_port_locks.pop())
    if KEEP or reports:
        print("kept %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    assert not reports, "sanitizer report in a zkd log:\n" + "\n".join(reports)


def read_pid(data):
    with open(os.path.join(data, "zookeeper_server.pid")) as f:
        return int(f.read().strip())


# ---------------------------------------------------------------- zkdctl

def test_start_status_stop(work):
    d, pids = work
    port = free_port()
    cfg = write_cfg(d, port)
    data = os.path.join(d, "data")

    r = zkdctl("start", cfg)
    assert r.returncode == 0 and r.stdout.strip() == "Starting zkd ... STARTED", (r.stdout, r.stderr)
    assert "Using config: %s" % cfg in r.stderr
    pid = read_pid(data)
    pids.append(pid)
    assert alive(pid)

    r = zkdctl("status", cfg)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.splitlines() == [
        "Client port found: %d. Client address: 127.0.0.1. Client SSL: false." % port,
        "Mode: standalone"], r.stdout

    # zkServer.sh: a second start finds the pid alive and refuses
    r = zkdctl("start", cfg)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "already running as process %d." % pid in r.stdout
    assert read_pid(data) == pid and alive(pid)

    r = zkdctl("stop", cfg)
    assert r.returncode == 0 and r.stdout.strip() == "Stopping zkd ... STOPPED", (r.stdout, r.stderr)
    assert not alive(pid), "zkd still runs after zkdctl stop"
    assert not os.path.exists(os.path.join(data, "zookeeper_server.pid"))
    with open(os.path.join(data, "zkd.out")) as f:
        out = f.read()
    assert "shutting down on signal 15" in out and "exiting normally" in out, out[-2000:]

    r = zkdctl("status", cfg)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1] == "Error contacting service. It is probably not running."

    r = zkdctl("stop", cfg)
    assert r.returncode == 0 and "no zkd to stop" in r.stdout, r.stdout


def test_restart_and_stale_pid_file(work):
    d, pids = work
    port = free_port()
    cfg = write_cfg(d, port, whitelist=None)   # ruok refused: start still sees the port answer
    data = os.path.join(d, "data")
    t0 = time.monotonic()
    r = zkdctl("start", cfg, env={"ZKD_START_WAIT": "20"})
    assert r.returncode == 0 and "did not answer" not in r.stderr, (r.stdout, r.stderr)
    assert time.monotonic() - t0 < 15
    pid1 = read_pid(data)
    pids.append(pid1)

    r = zkdctl("restart", cfg)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.splitlines() == ["Stopping zkd ... STOPPED", "Starting zkd ... STARTED"], r.stdout
    pid2 = read_pid(data)
    pids.append(pid2)
    assert pid2 != pid1 and not alive(pid1) and alive(pid2)
    r = zkdctl("status", cfg)
    assert r.returncode == 0 and "Mode: standalone" in r.stdout

    assert zkdctl("stop", cfg).returncode == 0
    # a pid file left by a crash, naming a pid that is not zkd (this test):
    # start goes ahead, stop says there is nothing to stop
    with open(os.path.join(data, "zookeeper_server.pid"), "w") as f:
        f.write(str(os.getpid()))
    r = zkdctl("stop", cfg)
    assert r.returncode == 0 and "no zkd to stop" in r.stdout, r.stdout
    with open(os.path.join(data, "zookeeper_server.pid"), "w") as f:
        f.write(str(os.getpid()))
    r = zkdctl("start", cfg)
    assert r.returncode == 0 and "STARTED" in r.stdout, (r.stdout, r.stderr)
    pids.append(read_pid(data))
    assert read_pid(data) != os.getpid()
    assert zkdctl("stop", cfg).returncode == 0


def test_status_on_the_secure_client_port(work):
    d, pids = work
    tls = os.path.join(d, "tls")
    r = subprocess.run(["bash", os.path.join(ROOT, "conf", "tls-certs.sh"), tls], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    port = free_port()
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:         # TLS only; ssl.clientAuth: ZooKeeper's default, need
        f.write("tickTime=2000\ndataDir=%s/data\nsecureClientPort=%d\nsecureClientPortAddress=127.0.0.1\n"
                "ssl.keyStore.location=%s/server.pem\nssl.trustStore.location=%s/ca.pem\n"
                "admin.enableServer=false\n" % (d, port, tls, tls))
    r = zkdctl("start", cfg)
    assert r.returncode == 0 and "STARTED" in r.stdout, (r.stdout, r.stderr)
    pids.append(read_pid(os.path.join(d, "data")))
    # zkServer.sh's search: no clientPort, no server.N line, then secureClientPort
    env = {"ZKD_CLIENT_CERT": os.path.join(tls, "client.pem")}
    r = wait_until(lambda: (lambda r: r if r.returncode == 0 else None)(zkdctl("status", cfg, env=env)),
                   20, "status over TLS")
    assert r.stdout.splitlines()[-2:] == [
        "Client port found: %d. Client address: 127.0.0.1. Client SSL: true." % port,
        "Mode: standalone"], r.stdout
    # without a client certificate a server that needs one cannot be asked
    r = zkdctl("status", cfg)
    assert r.returncode == 1 and r.stdout.splitlines()[-1].startswith("Error contacting service"), r.stdout
    r = zkdctl("stop", cfg)
    assert r.returncode == 0 and "STOPPED" in r.stdout


def test_where_the_config_comes_from(work):
    d, _ = work
    cfg = write_cfg(d, free_port())
    other = os.path.join(d, "other.cfg")
    shutil.copy(cfg, other)
    sub = os.path.join(d, "sub")
    os.makedirs(sub)
    shutil.copy(cfg, os.path.join(sub, "zoo.cfg"))
    cases = [   # (argv, environment, working directory, the zoo.cfg it must pick)
        (["--config", d, "print-cmd"], {}, None, cfg),                 # zkServer.sh's --config <dir>
        (["--config", other, "print-cmd"], {}, None, other),           # or the file itself
        (["print-cmd", cfg], {}, None, cfg),                           # the path after the command
        (["print-cmd", sub], {}, None, os.path.join(sub, "zoo.cfg")),  # a directory holding zoo.cfg
        (["print-cmd", "other.cfg"], {"ZOOCFGDIR": d}, None, other),   # a name inside ZOOCFGDIR
        (["print-cmd"], {"ZOOCFGDIR": d, "ZOOCFG": "other.cfg"}, None, other),
        (["print-cmd", "./other.cfg"], {}, d, other),                  # a relative path
    ]
    for args, env, cwd, want in cases:
        r = zkdctl(*args, env=env, cwd=cwd)
        assert r.returncode == 0, (args, env, r.stdout, r.stderr)
        assert "Using config: %s" % want in r.stderr, (args, env, r.stderr)
        assert r.stdout.strip() == '"%s" "%s" >> "%s" 2>&1 < /dev/null' % (
            zkd_path(), want, os.path.join(d, "data", "zkd.out")), (args, r.stdout)
    # ZOO_LOG_DIR takes the log
    r = zkdctl("print-cmd", cfg, env={"ZOO_LOG_DIR": os.path.join(d, "logs")})
    assert r.stdout.strip().endswith('>> "%s" 2>&1 < /dev/null' % os.path.join(d, "logs", "zkd.out"))
    r = zkdctl("frobnicate", cfg)
    assert r.returncode == 1 and "Usage:" in r.stderr


START_LINES = [
    r"Reading configuration from: {cfg}$",
    r"clientPortAddress is 127\.0\.0\.1:{port}$",
    r"secureClientPort is not set$",
    r"Either no config or no quorum defined in config, running in standalone mode$",
    r"Server environment:zookeeper\.version=3\.8\.\S+",
    r"Server environment:host\.name=\S+",
    r"Server environment:os\.name=Linux$",
    r"Server environment:os\.arch=\S+",
    r"Server environment:user\.name=\S+",
    r"Server environment:user\.dir={cwd}$",
    r"minSessionTimeout set to 4000 ms$",
    r"maxSessionTimeout set to 40000 ms$",
    r"Created server with tickTime 2000 ms minSessionTimeout 4000 ms maxSessionTimeout 40000 ms "
    r"clientPortListenBacklog -1 datadir {data}/version-2 snapdir {data}/version-2$",
    r"Snapshot loaded in \d+ ms, highest zxid is 0x[0-9a-f]+$",
    r"binding to port /127\.0\.0\.1:{port}$",
]
STOP_LINES = [
    r"shutting down on signal 2 \(Interrupt\)$",
    r"shutdown: stopped accepting connections and reading requests \(\d+ request\(s\) in flight\)$",
    r"shutdown: pipeline drained",
    r"shutdown: request processors stopped$",
    r"shutdown: txn log synced and closed$",
    r"shutdown: done in \d+ ms; exiting normally$",
]
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) \[[\w-]+\] ")


def test_start_foreground_and_the_log(work):
    d, pids = work
    port = free_port()
    data = os.path.join(d, "data")
    cfg = write_cfg(d, port)
    log_path = os.path.join(d, "fg.log")
    with open(log_path, "wb") as log:
        p = subprocess.Popen([ZKDCTL, "start-foreground", cfg], stdout=log, stderr=log, cwd=d,
                             env=dict(os.environ, ZKD=zkd_path()))
    pids.append(p.pid)
    addr = "127.0.0.1:%d" % port
    wait_session(addr, p)
    # exec: the pid is zkd's, and zkdctl status finds it (no pid file: status
    # only asks the port)
    assert os.readlink("/proc/%d/exe" % p.pid) == os.path.realpath(zkd_path())
    r = zkdctl("status", cfg)
    assert r.returncode == 0 and "Mode: standalone" in r.stdout, r.stdout
    p.send_signal(signal.SIGINT)                  # Ctrl-C stops it as cleanly as SIGTERM
    assert p.wait(20) == 0
    with open(log_path) as f:
        text = f.read()
    lines = [ln for ln in text.splitlines() if not ln.startswith("Using config:")]
    bad = [ln for ln in lines if not LINE.match(ln)]
    assert not bad, "lines not in zkd's log format: %s" % bad[:5]
    msgs = [LINE.sub("", ln) for ln in lines]
    pos = -1
    for pat in START_LINES + STOP_LINES:
        rx = re.compile(pat.format(cfg=re.escape(cfg), port=port, data=re.escape(data),
                                   cwd=re.escape(os.path.realpath(d))))
        hit = [i for i, m in enumerate(msgs) if rx.search(m)]
        assert hit, "no line matching %r in the log:\n%s" % (pat, text[-3000:])
        assert hit[0] > pos, "%r comes before the line before it in the list" % pat
        pos = hit[0]


def test_log_level(work):
    d, pids = work
    port = free_port()
    cfg = write_cfg(d, port)
    log_path = os.path.join(d, "level.log")

    def log_at(level):
        """The log of one start and clean stop under ZKD_LOG_LEVEL=level."""
        with open(log_path, "wb") as log:
            p = subprocess.Popen([zkd_path(), cfg], stdout=log, stderr=log,
                                 env=dict(os.environ, ZKD_LOG_LEVEL=level))
        pids.append(p.pid)
        wait_session("127.0.0.1:%d" % port, p)
        p.terminate()
        assert p.wait(20) == 0
        with open(log_path) as f:
            return f.read()

    text = log_at("warn")
    assert " INFO " not in text and " DEBUG " not in text, text[:2000]
    assert " DEBUG [" in log_at("debug"), "ZKD_LOG_LEVEL=debug logged no DEBUG line"


# ---------------------------------------------------------------- ensemble

def test_status_of_every_ensemble_member():
    from ensemble import Ensemble
    with Ensemble(["zkd", "zkd", "zkd"], name="control") as e:
        e.start_all()
        leader = e.wait_quorum(timeout=30)

        def statuses():
            out = {}
            for m in e.members:
                r = zkdctl("status", m.cfg)
                out[m.idx] = (r.returncode, r.stdout.splitlines())
            return out
        st = statuses()
        for i, (rc, lines) in st.items():
            m = e.members[i]
            assert lines[0] == "Client port found: %d. Client address: 127.0.0.1. Client SSL: false." % (
                m.client_port), lines
            assert rc == 0, st
            assert lines[-1] == ("Mode: leader" if i == leader else "Mode: follower"), st
        assert sorted(lines[-1] for _, lines in st.values()) == [
            "Mode: follower", "Mode: follower", "Mode: leader"], st

        # the leader leaves on SIGTERM with status 0; the other two elect
        # one of them and go on; it comes back as a follower
        assert e.stop(leader, timeout=15) == 0
        with open(e.members[leader].log) as f:
            text = f.read()
        assert "shutdown: left the ensemble" in text and "exiting normally" in text, text[-3000:]
        new = e.wait_quorum(timeout=30)
        assert new != leader
        r = zkdctl("status", e.members[leader].cfg)
        assert r.returncode == 1 and "Error contacting service" in r.stdout, r.stdout
        e.start(leader)
        assert e.wait_quorum(timeout=30) == new
        st = statuses()
        assert sorted(lines[-1] for _, lines in st.values()) == [
            "Mode: follower", "Mode: follower", "Mode: leader"], st
        assert st[leader][1][-1] == "Mode: follower"

        for m in e.members:
            with open(m.log) as f:
                text = f.read()
            assert "Starting quorum peer, myid=%d" % m.sid in text
            assert re.search(r"(LEADING|FOLLOWING) - LEADER ELECTION TOOK - \d+ MS", text), m
            assert re.search(r"Peer state changed: (leading|following) - broadcast", text), m
        with open(e.members[new].log) as f:
            assert "Peer state changed: leading - broadcast" in f.read()
        for i in range(e.n):
            assert e.stop(i, timeout=15) == 0, "member %d did not exit 0 on SIGTERM" % i
        assert not e.sanitizer_reports(), e.sanitizer_reports()


# ---------------------------------------------------------------- SIGTERM under load

class Writer(threading.Thread):
    """Pipelined creates of /load/<name>-<n>, WINDOW at a time, until the
    server goes away; `acked` holds the paths whose reply said OK."""
    WINDOW = 16

    def __init__(self, addr, name, started):
        super().__init__(daemon=True)
        self.addr, self.name, self.started = addr, name, started
        self.acked, self.sent = [], 0
        self.acked_after_signal = 0
        self.signalled = threading.Event()
        self.error = None

    def run(self):
        try:
            c = ZKRaw(self.addr, timeout_ms=10000)
        except CLIENT_ERRORS as e:
            self.error = e
            return
        inflight = {}
        n = 0
        try:
            while True:
                while len(inflight) < self.WINDOW:
                    path = "/load/%s-%06d" % (self.name, n)
                    n += 1
                    inflight[c.send(zkraw.create(path, b"v"), flush=False)] = path
                c.flush(10)
                self.sent = n
                rep = c.read_reply(time.monotonic() + 15)
                path = inflight.pop(rep.xid)
                assert rep.err == zkraw.OK, "create %s: error %d" % (path, rep.err)
                self.acked.append(path)
                if self.signalled.is_set():
                    self.acked_after_signal += 1
                self.started.set()
        except (ConnectionClosed, OSError):
            pass                            # the server closed us: expected
        except Exception as e:               # Timeout, a bad reply: a failure
            self.error = e
        finally:
            c.abort()


def test_sigterm_under_write_load_keeps_writes_and_sessions(work):
    d, _ = work
    log_path = os.path.join(d, "zkd.log")
    try:
        sigterm_under_write_load(work, log_path)
    except BaseException:
        if os.path.exists(log_path):       # shown by pytest with the failure
            with open(log_path, errors="replace") as f:
                print("zkd log (%s), last lines:\n%s" % (log_path, "\n".join(f.read().splitlines()[-80:])))
        raise


def sigterm_under_write_load(work, log_path):
    from kazoo.client import KazooClient, KazooState
    d, pids = work
    port = free_port()
    cfg = write_cfg(d, port)
    addr = "127.0.0.1:%d" % port

    def start():
        log = open(log_path, "ab")
        p = subprocess.Popen([zkd_path(), cfg], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        pids.append(p.pid)
        wait_session(addr, p)
        return p

    p = start()
    with ZKRaw(addr) as c:
        c.ok(zkraw.create("/load"))
    # a raw session with an ephemeral, resumed by hand after the restart
    raw = ZKRaw(addr, timeout_ms=15000)
    raw.ok(zkraw.create("/eph-raw", b"r", zkraw.EPHEMERAL))
    sid, pw, tmo = raw.session_id, raw.passwd, raw.timeout_ms
    # a kazoo session with an ephemeral, which kazoo resumes by itself
    states = []
    kz = KazooClient(hosts=addr, timeout=15.0,
                     connection_retry=dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5))
    kz.add_listener(states.append)
    kz.start(timeout=10)
    try:
        kz.create("/eph-kazoo", b"k", ephemeral=True)
        kz_sid = kz.client_id[0]

        started = threading.Event()
        writers = [Writer(addr, "w%d" % i, started) for i in range(4)]
        for w in writers:
            w.start()
        wait_until(lambda: sum(len(w.acked) for w in writers) >= 400, 30, "400 acknowledged writes")
        for w in writers:
            w.signalled.set()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(20)
        for w in writers:
            w.join(20)
            assert not w.is_alive(), "a writer still runs after zkd exited"
            assert w.error is None, "writer %s: %r" % (w.name, w.error)
        assert rc == 0, "zkd exited with status %s on SIGTERM" % rc
        with open(log_path) as f:
            text = f.read()
        assert re.search(r"shutdown: pipeline drained \d+ ms after reading stopped", text), text[-3000:]
        acked = [path for w in writers for path in w.acked]
        print("acked %d writes, %d of them after SIGTERM was sent" % (
            len(acked), sum(w.acked_after_signal for w in writers)))

        p = start()                           # same dataDir, same port
        # the raw client: same session id and password -> the same session
        raw.abort()
        back = ZKRaw(addr, timeout_ms=tmo, session_id=sid, passwd=pw)
        assert back.session_id == sid, "session 0x%x came back as 0x%x" % (sid, back.session_id)
        st = back.ok(zkraw.exists("/eph-raw"))
        assert st.ephemeralOwner == sid
        # every acknowledged write is there
        have = set(back.ok(zkraw.get_children("/load")))
        missing = [path for path in acked if path.rsplit("/", 1)[1] not in have]
        assert not missing, "%d acknowledged writes lost, e.g. %s" % (len(missing), missing[:5])

        # kazoo reconnects on its own and finds its session alive
        wait_until(lambda: kz.state == KazooState.CONNECTED and states and states[-1] == KazooState.CONNECTED,
                   20, "kazoo reconnected")
        assert KazooState.LOST not in states, states
        assert kz.client_id[0] == kz_sid
        data, zst = kz.get("/eph-kazoo")
        assert data == b"k" and zst.ephemeralOwner == kz_sid

        # and the sessions still end as sessions do
        back.close()
        with ZKRaw(addr) as c:
            assert c.call(zkraw.exists("/eph-raw")).err == zkraw.NONODE
    finally:
        kz.stop()
        kz.close()
    p.terminate()
    assert p.wait(20) == 0
