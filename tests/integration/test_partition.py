"""Network partitions of a 3-member zkd ensemble, made with network namespaces.

Layout (one set per ensemble, names and subnet unique per run):

    <pfx>hub   a Linux bridge br0, and v1..v3: the hub ends of the veth pairs
    <pfx>m1..3 eth0 (the member's end of its veth pair, 10.A.B.<sid>/24) and lo;
               zkd member <sid> runs here: `ip netns exec <pfx>m<sid> zkd zoo.cfg`

Quorum and election traffic goes over the bridge. A client of a member runs
in that member's namespace (tests/integration/netns_client.py, one JSON line
per operation) and connects to 127.0.0.1:2181 there, so a cut-off member
stays reachable for its own clients.

A partition sets the member's hub end (v<sid>) down: the member keeps its
address and routes, and its packets to the others vanish silently (no RST, no
ICMP), like a pulled cable. Heal sets it up again.

tickTime=200, initLimit=10, syncLimit=5: a cut-off member must notice within
about a second. Every wait has a deadline.

Needs root and `ip netns` (iproute2); skipped otherwise. ZKD names the zkd
binary (default build/zkd). KEEP_PARTITION=1 keeps the work directory (member
logs) even when the tests pass; it is always kept when one fails, and its
path printed.

    sudo /usr/bin/python3 -m pytest -v tests/integration/test_partition.py
"""

import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HELPER = os.path.join(HERE, "netns_client.py")
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
ZKD = os.environ.get("ZKD") or os.path.join(ROOT, "build", "zkd")
if not os.path.isabs(ZKD):
    ZKD = os.path.join(ROOT, ZKD)
SETPRIV = (["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
           if os.access("/usr/bin/setpriv", os.X_OK) else [])

TEST_TIMEOUT = 45          # conftest's per-test watchdog (s)
N = 3
TICK_MS, INIT_LIMIT, SYNC_LIMIT = 200, 10, 5
SYNC_S = TICK_MS * SYNC_LIMIT / 1000.0      # 1.0 s
CLIENT_PORT, QUORUM_PORT, ELECTION_PORT = 2181, 2888, 3888   # per namespace
NS_PREFIX = "zkpart-"
SERVING = ("leader", "follower", "observer")

# deadlines (s)
T_QUORUM = 12              # first election
T_NEW_LEADER = 8           # majority elects after the leader is cut off
T_STOP_SERVING = SYNC_S + 4  # a cut-off member stops serving
T_WRITE = 5                # one acknowledged write through a serving member
T_REJOIN = 12              # after heal: every member back in the ensemble
T_CONVERGE = 10            # identical trees
MINORITY_FOR = SYNC_S + 2.0  # how long the cut-off member's client keeps trying
MINORITY_TIMEOUT = 1.0     # each of its attempts


class Fail(AssertionError):
    pass


def ip(*args, timeout=10, check=True):
    r = subprocess.run(["ip"] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if check and r.returncode != 0:
        raise Fail("ip %s: status %d: %s" % (" ".join(map(str, args)), r.returncode,
                                             r.stderr.decode(errors="replace").strip()))
    return r


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_namespaces():
    """Namespaces left by runs of this file whose process is gone (killed
    before its cleanup ran). Their zkd members died with it (pdeathsig)."""
    r = ip("netns", "list", check=False)
    for line in r.stdout.decode(errors="replace").splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)-" % re.escape(NS_PREFIX), name)
        if m and not _pid_alive(int(m.group(1))):
            ip("netns", "del", name, check=False)


@pytest.fixture(scope="module")
def netns_ok():
    if os.geteuid() != 0:
        pytest.skip("network-partition tests need root (network namespaces); not root")
    if shutil.which("ip") is None:
        pytest.skip("network-partition tests need iproute2's `ip`; not found")
    probe = "%s%d-probe" % (NS_PREFIX, os.getpid())
    try:
        r = ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip("`ip netns add` failed: %s" % e)
    if r.returncode != 0:
        ip("netns", "del", probe, check=False)
        pytest.skip("`ip netns add` failed: %s" % r.stderr.decode(errors="replace").strip())
    ip("netns", "del", probe, check=False)
    _remove_stale_namespaces()
    if not os.access(ZKD, os.X_OK):
        pytest.fail("no zkd binary at %s (make -j2, or set ZKD)" % ZKD)


def epoch(zxid):
    return zxid >> 32


class NetnsEnsemble:
    """Three zkd members, each in its own namespace, joined by a bridge."""

    def __init__(self, name):
        self.name = name
        tag = "%d-%04x" % (os.getpid(), random.getrandbits(16))
        self.pfx = "%s%s-" % (NS_PREFIX, tag)     # e.g. zkpart-1234-abcd-m1 (<= 32 chars)
        self.hub = self.pfx + "hub"
        self.ns = [self.pfx + "m%d" % (i + 1) for i in range(N)]
        rnd = random.Random()
        self.net = "10.%d.%d" % (rnd.randrange(64, 128), rnd.randrange(0, 256))
        self.addr = ["%s.%d" % (self.net, i + 1) for i in range(N)]
        self.work = tempfile.mkdtemp(prefix="zkd-partition-%s." % name)
        self.dirs = [os.path.join(self.work, "m%d" % (i + 1)) for i in range(N)]
        self.logs = [os.path.join(d, "server.log") for d in self.dirs]
        self.procs = [None] * N
        self.created_ns = []
        self.helpers = []             # background helper processes
        self.t0 = time.monotonic()
        self.marks = []               # (seconds since t0, what) for the report

    # ------------------------------------------------------------ bookkeeping

    def mark(self, what):
        t = time.monotonic() - self.t0
        self.marks.append((t, what))
        return t

    def timeline(self):
        return "; ".join("%.2fs %s" % (t, w) for t, w in self.marks)

    def log_tail(self, i, lines=25):
        try:
            with open(self.logs[i], "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 32768))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "    (no log)"
        return "\n".join("    " + ln for ln in text.splitlines()[-lines:])

    def check_alive(self):
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is not None:
                raise Fail("server.%d exited by itself (status %s); %s:\n%s" % (
                    i + 1, p.returncode, self.logs[i], self.log_tail(i)))

    # ------------------------------------------------------------ network

    def setup_network(self):
        ip("netns", "add", self.hub)
        self.created_ns.append(self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "link", "set", "br0", "up")
        for i, ns in enumerate(self.ns):
            ip("netns", "add", ns)
            self.created_ns.append(ns)
            v = "v%d" % (i + 1)
            ip("-n", self.hub, "link", "add", v, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            ip("-n", self.hub, "link", "set", v, "master", "br0")
            ip("-n", self.hub, "link", "set", v, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", "%s/24" % self.addr[i], "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def partition(self, i):
        ip("-n", self.hub, "link", "set", "v%d" % (i + 1), "down")
        self.mark("server.%d cut off" % (i + 1))

    def heal(self, i):
        ip("-n", self.hub, "link", "set", "v%d" % (i + 1), "up")
        self.mark("server.%d healed" % (i + 1))

    # ------------------------------------------------------------ servers

    def write_configs(self):
        servers = ["server.%d=%s:%d:%d;%d" % (i + 1, self.addr[i], QUORUM_PORT, ELECTION_PORT,
                                              CLIENT_PORT) for i in range(N)]
        for i, d in enumerate(self.dirs):
            os.makedirs(os.path.join(d, "data"))
            with open(os.path.join(d, "data", "myid"), "w") as f:
                f.write("%d\n" % (i + 1))
            with open(os.path.join(d, "zoo.cfg"), "w") as f:
                f.write("\n".join([
                    "# test_partition.py: server.%d in netns %s" % (i + 1, self.ns[i]),
                    "tickTime=%d" % TICK_MS,
                    "initLimit=%d" % INIT_LIMIT,
                    "syncLimit=%d" % SYNC_LIMIT,
                    "dataDir=%s" % os.path.join(d, "data"),
                    "clientPort=%d" % CLIENT_PORT,
                    "maxClientCnxns=0",
                    "4lw.commands.whitelist=*",
                    "admin.enableServer=false",
                ] + servers) + "\n")

    def start_all(self):
        self.setup_network()
        self.write_configs()
        for i in range(N):
            cfg = os.path.join(self.dirs[i], "zoo.cfg")
            argv = SETPRIV + ["ip", "netns", "exec", self.ns[i], ZKD, cfg]
            with open(self.logs[i], "ab") as log:
                log.write(("==== start at %s: %s\n" % (time.strftime("%H:%M:%S"),
                                                       " ".join(argv))).encode())
                log.flush()
                self.procs[i] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                                 stderr=subprocess.STDOUT, cwd=self.dirs[i],
                                                 start_new_session=True)
        self.mark("started")

    # ------------------------------------------------------------ clients

    def _helper_argv(self, i, *args):
        return ["ip", "netns", "exec", self.ns[i], PYTHON, HELPER, str(CLIENT_PORT)] + \
            [str(a) for a in args]

    def run_many(self, calls, timeout):
        """[(member, args...)] run in parallel, each in its member's
        namespace; returns their JSON results in order (a dict with "error"
        for a helper that failed or overran)."""
        procs = [subprocess.Popen(self._helper_argv(c[0], *c[1:]), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for c in calls]
        end = time.monotonic() + timeout
        out = []
        for p in procs:
            try:
                so, se = p.communicate(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                out.append({"error": "helper overran %.1fs" % timeout})
                continue
            try:
                out.append(json.loads(so.decode().strip().splitlines()[-1]))
            except (ValueError, IndexError):
                out.append({"error": "helper status %d: %s" % (
                    p.returncode, (se or so).decode(errors="replace").strip()[-500:])})
        return out

    def run(self, i, *args, timeout=10):
        return self.run_many([(i,) + args], timeout)[0]

    def modes(self, members=range(N)):
        members = list(members)
        res = self.run_many([(i, "srvr", 0.5) for i in members], timeout=3)
        return {i: r.get("mode") for i, r in zip(members, res)}

    def wait_modes(self, want, timeout, what, members=range(N)):
        """Polls srvr of `members` until want(modes) holds; returns modes."""
        end = time.monotonic() + timeout
        while True:
            self.check_alive()
            m = self.modes(members)
            if want(m):
                return m
            if time.monotonic() >= end:
                raise Fail("%s: not within %.0f s; modes %s; timeline: %s" % (
                    what, timeout, self.pretty(m), self.timeline()))
            time.sleep(0.05)

    @staticmethod
    def pretty(modes):
        return {"server.%d" % (i + 1): m for i, m in modes.items()}

    def wait_quorum(self, members, timeout, what):
        """One leader among `members`, the rest followers; returns the leader."""
        members = list(members)
        m = self.wait_modes(lambda m: sorted(map(str, m.values())) ==
                            sorted(["leader"] + ["follower"] * (len(members) - 1)),
                            timeout, what, members)
        return [i for i, md in m.items() if md == "leader"][0]

    def create(self, i, path, data=b"", timeout=T_WRITE):
        """One acknowledged create through member i (retried only while it
        could not be sent); returns its zxid."""
        r = self.run(i, "create", path, data.hex(), timeout, timeout, timeout=timeout * 2 + 5)
        if r.get("outcome") != "ok":
            self.check_alive()
            raise Fail("create %s through server.%d was not acknowledged within %.0f s: %s; "
                       "timeline: %s" % (path, i + 1, timeout, r, self.timeline()))
        return r["zxid"]

    def start_minority(self, i, prefix):
        """The client of member i that goes on writing once it is cut off
        (netns_client.py minority); its session is open when this returns."""
        p = subprocess.Popen(self._helper_argv(i, "minority", prefix, MINORITY_FOR,
                                               MINORITY_TIMEOUT),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.helpers.append(p)
        if not select.select([p.stdout], [], [], 10)[0]:
            raise Fail("the client of server.%d did not open a session within 10 s" % (i + 1))
        line = p.stdout.readline()
        try:
            ready = json.loads(line.decode())
        except ValueError:
            ready = {"ready": False, "why": line.decode(errors="replace")}
        if not ready.get("ready"):
            raise Fail("the client of server.%d could not open a session: %s" % (i + 1, ready))
        return p

    @staticmethod
    def go(p):
        p.stdin.write(b"go\n")
        p.stdin.flush()

    def finish_minority(self, p, timeout):
        try:
            so, se = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise Fail("the minority client did not finish within %.0f s" % timeout)
        try:
            return json.loads(so.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Fail("minority client: status %d: %s" % (
                p.returncode, (se or so).decode(errors="replace")[-800:]))

    def trees(self, members=range(N)):
        members = list(members)
        return dict(zip(members, self.run_many([(i, "tree", 3) for i in members], timeout=6)))

    def wait_converged(self, timeout):
        """Waits until every member has the same tree (read after a sync
        through a client in its namespace); returns {path: node}."""
        end = time.monotonic() + timeout
        while True:
            self.check_alive()
            trees = self.trees()
            errs = {i: t["error"] for i, t in trees.items() if "error" in t}
            if not errs:
                nodes = {i: t["nodes"] for i, t in trees.items()}
                diffs = []
                for i in range(1, N):
                    for p in sorted(set(nodes[0]) | set(nodes[i])):
                        if nodes[0].get(p) != nodes[i].get(p):
                            diffs.append("%s: server.1 %s, server.%d %s" % (
                                p, nodes[0].get(p, "(absent)"), i + 1,
                                nodes[i].get(p, "(absent)")))
                if not diffs:
                    return nodes[0]
                err = "; ".join(diffs[:6])
            else:
                err = "; ".join("server.%d: %s" % (i + 1, e) for i, e in errs.items())
            if time.monotonic() >= end:
                raise Fail("members did not converge within %.0f s: %s; timeline: %s" % (
                    timeout, err, self.timeline()))
            time.sleep(0.1)

    # ------------------------------------------------------------ teardown

    def cleanup(self, failed):
        for p in self.helpers:
            if p.poll() is None:
                p.kill()
                try:
                    p.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for ns in reversed(self.created_ns):
            try:
                ip("netns", "del", ns, check=False)
            except (OSError, subprocess.TimeoutExpired):
                pass
        keep = failed or os.environ.get("KEEP_PARTITION") == "1"
        if keep:
            print("[test_partition] kept %s; member logs: %s" % (self.work, ", ".join(self.logs)),
                  file=sys.stderr)
            if failed:
                for i in range(N):
                    print("[test_partition] tail of %s:\n%s" % (self.logs[i], self.log_tail(i)),
                          file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.cleanup(failed=exc_type is not None)


# ------------------------------------------------------------------ checks

def check_minority(res, member):
    """Every write of the cut-off member's client failed or timed out."""
    atts = res["attempts"]
    acked = [a for a in atts if a["outcome"] == "ok"]
    assert not acked, ("server.%d, cut off from the others, acknowledged %d write(s): %s" % (
        member + 1, len(acked), acked[:5]))
    sent = [a for a in atts if a["sent"]]
    # at least the creates on the session opened before the partition reached it
    assert sent, "no write of the cut-off member's client was even sent: %s" % atts[:5]
    return atts


def outcome_summary(atts):
    c = {}
    for a in atts:
        c[a["outcome"]] = c.get(a["outcome"], 0) + 1
    return c


def check_tree(tree, acked, minority_prefix):
    """acked: {path: (zxid, data)} of acknowledged writes."""
    for path, (zxid, data) in acked.items():
        assert path in tree, "acknowledged %s (zxid %#x) is missing after heal" % (path, zxid)
        assert tree[path]["czxid"] == zxid, "%s: czxid %#x, but the create was acknowledged " \
            "with zxid %#x" % (path, tree[path]["czxid"], zxid)
        assert bytes.fromhex(tree[path]["data"]) == data, "%s: data %r" % (path, tree[path])
    leaked = sorted(p for p in tree if p.startswith(minority_prefix))
    assert not leaked, ("writes attempted on the cut-off side are in the tree after heal: %s" %
                        [(p, tree[p]) for p in leaked[:5]])


def write_round(e, members, tag, acked):
    """One create through each of members; returns the zxids."""
    zx = []
    for i in members:
        path = "/%s-s%d" % (tag, i + 1)
        data = ("%s via server.%d" % (tag, i + 1)).encode()
        z = e.create(i, path, data)
        acked[path] = (z, data)
        zx.append(z)
    return zx


# ------------------------------------------------------------------ tests

def test_leader_isolated(netns_ok):
    with NetnsEnsemble("leader") as e:
        e.start_all()
        old = e.wait_quorum(range(N), T_QUORUM, "first election")
        e.mark("server.%d leads" % (old + 1))
        acked = {}
        zx = write_round(e, range(N), "before", acked)
        epoch0 = epoch(max(zx))
        majority = [i for i in range(N) if i != old]
        mprefix = "/minority-"
        client = e.start_minority(old, mprefix)

        e.partition(old)
        e.go(client)
        t_cut = time.monotonic()

        # (b) the majority elects a leader of its own and takes writes;
        # (a) meanwhile the old leader stops serving.
        new = e.wait_quorum(majority, T_NEW_LEADER, "the majority electing a new leader")
        t_elect = e.mark("server.%d leads the majority" % (new + 1))
        zx = write_round(e, majority, "during", acked)
        t_write = e.mark("writes acknowledged by the majority")
        assert all(epoch(z) > epoch0 for z in zx), (
            "writes of the new majority have zxids %s, not of an epoch after %#x" % (
                [hex(z) for z in zx], epoch0))
        left = T_STOP_SERVING - (time.monotonic() - t_cut)
        e.wait_modes(lambda m: m[old] not in SERVING, max(0.1, left),
                     "cut-off old leader server.%d to stop serving" % (old + 1), [old])
        t_stop = e.mark("server.%d stopped serving" % (old + 1))

        res = e.finish_minority(client, MINORITY_FOR + MINORITY_TIMEOUT + 5)
        atts = check_minority(res, old)
        e.mark("minority client done: %s" % outcome_summary(atts))

        # (c) heal: the old leader follows, everyone converges
        e.heal(old)
        modes = e.wait_modes(lambda m: m[new] == "leader" and
                             all(m[i] == "follower" for i in range(N) if i != new),
                             T_REJOIN, "server.%d rejoining as follower of server.%d" % (
                                 old + 1, new + 1))
        e.mark("rejoined: %s" % e.pretty(modes))
        zx = write_round(e, range(N), "after", acked)
        tree = e.wait_converged(T_CONVERGE)
        e.mark("converged (%d nodes)" % len(tree))
        check_tree(tree, acked, mprefix)
        print("\n[test_partition] leader isolated: %s; majority leader %.2fs, majority writes "
              "%.2fs, old leader stopped serving %.2fs after the cut; timeline: %s" % (
                  outcome_summary(atts), t_elect - (t_cut - e.t0), t_write - (t_cut - e.t0),
                  t_stop - (t_cut - e.t0), e.timeline()))


def test_follower_isolated(netns_ok):
    with NetnsEnsemble("follower") as e:
        e.start_all()
        leader = e.wait_quorum(range(N), T_QUORUM, "first election")
        e.mark("server.%d leads" % (leader + 1))
        acked = {}
        zx = write_round(e, range(N), "before", acked)
        epoch0 = epoch(max(zx))
        cut = [i for i in range(N) if i != leader][0]
        majority = [i for i in range(N) if i != cut]
        mprefix = "/minority-"
        client = e.start_minority(cut, mprefix)

        e.partition(cut)
        e.go(client)
        t_cut = time.monotonic()

        # the leader stays leader: writes go on through the majority, in the
        # same epoch, before and after the cut-off follower is noticed
        zx = write_round(e, majority, "during1", acked)
        t_write = e.mark("majority writes acknowledged")
        left = T_STOP_SERVING - (time.monotonic() - t_cut)
        e.wait_modes(lambda m: m[cut] not in SERVING, max(0.1, left),
                     "cut-off follower server.%d to stop serving" % (cut + 1), [cut])
        t_stop = e.mark("server.%d stopped serving" % (cut + 1))
        res = e.finish_minority(client, MINORITY_FOR + MINORITY_TIMEOUT + 5)
        atts = check_minority(res, cut)
        e.mark("minority client done: %s" % outcome_summary(atts))
        modes = e.modes(majority)
        assert modes[leader] == "leader" and all(
            modes[i] == "follower" for i in majority if i != leader), (
            "the majority changed roles while a follower was cut off: %s" % e.pretty(modes))
        zx += write_round(e, majority, "during2", acked)
        assert all(epoch(z) == epoch0 for z in zx), (
            "a follower's partition changed the epoch (a new election?): %#x before, %s during"
            % (epoch0, [hex(z) for z in zx]))

        e.heal(cut)
        modes = e.wait_modes(lambda m: m[leader] == "leader" and
                             all(m[i] == "follower" for i in range(N) if i != leader),
                             T_REJOIN, "server.%d rejoining as follower" % (cut + 1))
        e.mark("rejoined: %s" % e.pretty(modes))
        zx = write_round(e, range(N), "after", acked)
        assert all(epoch(z) == epoch0 for z in zx), (
            "the epoch changed when the follower rejoined: %#x before, %s after"
            % (epoch0, [hex(z) for z in zx]))
        tree = e.wait_converged(T_CONVERGE)
        e.mark("converged (%d nodes)" % len(tree))
        check_tree(tree, acked, mprefix)
        print("\n[test_partition] follower isolated: %s; majority writes %.2fs, follower stopped "
              "serving %.2fs after the cut; timeline: %s" % (
                  outcome_summary(atts), t_write - (t_cut - e.t0), t_stop - (t_cut - e.t0),
                  e.timeline()))
