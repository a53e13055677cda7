#!/usr/bin/env python3
"""Storage interop with Apache ZooKeeper 3.8: zkd's txn logs and snapshots
must be ZooKeeper's files, in both directions.

  /usr/bin/python3 tests/integration/test_storage_interop.py

zkd -> ZooKeeper
  gen       storage_tool writes a history the way zkd does (snapshot.0 at the
            first start, group-committed log files, fuzzy snapshots, rolls)
  toolkit   ZooKeeper's TxnLogToolkit reads every log file: same txns (zxid,
            session, cxid, type, path), no CRC error, the txn count
  formatter ZooKeeper's SnapshotFormatter reads every snapshot: same nodes
            with the same persisted stat and data, same sessions
  server    a real ZooKeeper 3.8 starts from that dataDir (it checks every
            checksum), and kazoo sees exactly the tree, ACLs, stats, last zxid
            and sessions-with-ephemerals that zkd recovers from it
  back      after that ZooKeeper wrote its own snapshot of it, zkd recovers the
            same tree again
ZooKeeper -> zkd
  server    a real ZooKeeper 3.8 (snapCount=20, so several snapshots and log
            files) gets creates of every kind (zkCli for containers and TTL),
            ACLs, sequential and ephemeral nodes, multis, closed sessions;
            kazoo reads the whole tree; ZooKeeper stops
  recover   zkd recovers the same tree, last zxid and open sessions
  log       zkd decodes every txn of ZooKeeper's logs (with their TxnDigest
            trailers) as TxnLogToolkit reads them

Environment: ZK_INTEROP_PORT (default: a free loopback port; a free one is
also used when the given one is taken), CC (default cc), KEEP_TMP=1 keeps the temp dir. Prints one line per
check and "N passed, M failed" last; exits non-zero if anything failed.
"""
import base64
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry
from kazoo.security import make_digest_acl
from standalone import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CP = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar"
JAVA = os.environ.get("JAVA", "/usr/bin/java")

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s%s" % (name, ("\n     " + detail.replace("\n", "\n     ")) if detail else ""))
    sys.stdout.flush()
    return ok


def diff(a, b, what_a, what_b, limit=8):
    """The first differences between two dicts, as text ('' when equal)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s\n  %s: %s\n  %s: %s" % (k, what_a, a.get(k), what_b, b.get(k)))
            if len(out) >= limit:
                out.append("...")
                break
    return "\n".join(out)


def run(cmd, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def java(cls, *args, stdin=None):
    r = run([JAVA, "-Xmx256m", "-cp", CP, cls] + list(args), input=stdin)
    return r.stdout.decode("utf-8", "replace")


def port_free(p):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as ZooKeeper binds: TIME_WAIT is no obstacle
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------- zkd's tool

def build_tool(tmp):
    out = os.path.join(tmp, "storage_tool")
    srcs = sorted(os.path.join(ROOT, "storage", f) for f in os.listdir(os.path.join(ROOT, "storage"))
                  if f.endswith(".c"))
    srcs += [os.path.join(ROOT, "net", f) for f in ("jute.c", "records.c", "log.c", "metrics.c", "outbuf.c")]
    srcs.append(os.path.join(HERE, "storage_tool.c"))
    cmd = [os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           "-I" + ROOT] + srcs + ["-o", out, "-lurcu-memb", "-lurcu-cds", "-lurcu-common", "-pthread"]
    r = run(cmd)
    if r.returncode != 0:
        print(r.stdout.decode())
        return None
    return out


def tool(t, *args):
    r = run([t] + list(args))
    if r.returncode != 0:
        raise RuntimeError("storage_tool %s: %s" % (" ".join(args), r.stdout.decode()))
    return r.stdout.decode()


def parse_dump(text):
    """storage_tool dump/dumpsnap -> ({path: fields}, {session: timeout}, last_zxid)."""
    nodes, sessions, last = {}, {}, None
    for line in text.splitlines():
        if line.startswith("node "):
            path, rest = line[5:].split(" ", 1)
            nodes[path] = dict(kv.split("=", 1) for kv in rest.split(" "))
        elif line.startswith("session "):
            sid, to = line[8:].split(" timeout=")
            sessions[int(sid, 16)] = int(to)
        elif line.startswith("last_zxid "):
            last = int(line.split()[1], 16)
    return nodes, sessions, last


# ---------------------------------------------------------------- ZooKeeper

class ZooKeeper:
    def __init__(self, base, data_dir, port, extra_jvm=(), level="warn"):
        self.base, self.data_dir, self.port = base, data_dir, port
        os.makedirs(base, exist_ok=True)
        self.cfg = os.path.join(base, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "maxClientCnxns=0\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\n"
                    "admin.enableServer=false\n" % (data_dir, port))
        self.log = os.path.join(base, "zk.log")
        cp = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
        self.proc = subprocess.Popen(
            [JAVA, "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=" + level] + list(extra_jvm) +
            ["-cp", cp, "org.apache.zookeeper.server.ZooKeeperServerMain", self.cfg],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def client(self, **kw):
        """A connected kazoo client (the server is ready once a session is made)."""
        deadline = time.time() + 30
        while True:
            c = KazooClient(hosts="127.0.0.1:%d" % self.port, timeout=10,
                            connection_retry=KazooRetry(max_tries=3, delay=0.1), **kw)
            try:
                c.start(timeout=3)
                return c
            except Exception:
                try:
                    c.stop()
                    c.close()
                except Exception:
                    pass
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("ZooKeeper did not start; its log:\n" + self.tail())
                time.sleep(0.3)

    def four(self, word):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(word.encode())
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        s.close()
        return out.decode()

    def zkcli(self, commands):
        return java("org.apache.zookeeper.ZooKeeperMain", "-server", "127.0.0.1:%d" % self.port,
                    stdin=("\n".join(commands) + "\nquit\n").encode())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self):
        try:
            with open(self.log, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""


def kazoo_tree(c):
    """Every node as a client sees it: the same fields storage_tool dump prints."""
    nodes = {}

    def walk(path):
        data, st = c.get(path)
        acls, _ = c.get_acls(path)
        nodes[path] = {
            "czxid": "%x" % st.czxid, "mzxid": "%x" % st.mzxid, "pzxid": "%x" % st.pzxid,
            "ctime": str(st.ctime), "mtime": str(st.mtime), "version": str(st.version),
            "cversion": str(st.cversion), "aversion": str(st.aversion),
            "owner": "%x" % (st.ephemeralOwner & 0xffffffffffffffff), "dataLength": str(st.dataLength),
            "numChildren": str(st.numChildren),
            "data": "null" if data is None else data.hex(),
            "acl": ",".join("%d:%s:%s" % (a.perms, a.id.scheme, a.id.id) for a in acls),
        }
        for kid in c.get_children(path):
            walk(path.rstrip("/") + "/" + kid)

    walk("/")
    return nodes


def null_as_empty(nodes):
    # kazoo returns b"" for a null value, so null and empty look alike to it
    return {p: dict(f, data="" if f["data"] == "null" else f["data"]) for p, f in nodes.items()}


def srvr_zxid(zk):
    m = re.search(r"Zxid: 0x([0-9a-f]+)", zk.four("srvr"))
    return int(m.group(1), 16) if m else None


def sessions_with_ephemerals(zk):
    """4lw 'dump': {session: [paths]}."""
    out, cur = {}, None
    for line in zk.four("dump").splitlines():
        m = re.match(r"^0x([0-9a-f]+):$", line.strip())
        if m:
            cur = int(m.group(1), 16)
            out[cur] = []
        elif line.startswith("\t/") and cur is not None:
            out[cur].append(line.strip())
    return {k: sorted(v) for k, v in out.items() if v}


def zkd_ephemerals(nodes):
    out = {}
    for p, f in nodes.items():
        o = int(f["owner"], 16)
        if o:
            out.setdefault(o, []).append(p)
    return {k: sorted(v) for k, v in out.items()}


# ---------------------------------------------------------------- ZooKeeper's tools

TXN_HEAD_RE = re.compile(r"session 0x([0-9a-f]+) cxid 0x([0-9a-f]+) zxid 0x([0-9a-f]+) (\w+)")


def toolkit_txns(path):
    """TxnLogToolkit's dump of one log file -> (txns, count it reports, text)."""
    out = java("org.apache.zookeeper.server.persistence.TxnLogToolkit", path)
    txns = []
    heads = list(TXN_HEAD_RE.finditer(out))
    for i, m in enumerate(heads):
        sid, cxid, zxid, op = m.groups()
        # a txn's text runs to the next txn: records print raw bytes, newlines included
        rest = out[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(out)]
        if op == "create" or op == "create2":
            p = re.match(r" (/[^,\n]*),", rest)
        else:
            p = re.match(r" '(/[^,\n]*)", rest)
        txns.append({"zxid": int(zxid, 16), "session": int(sid, 16), "cxid": int(cxid, 16) & 0xffffffff,
                     "type": op, "path": p.group(1) if p and op not in ("multi",) else None, "rest": rest})
    m = re.search(r"EOF reached after (\d+) txns", out)
    return txns, int(m.group(1)) if m else None, out


def tool_txns(t, data_dir):
    txns = []
    for line in tool(t, "dumplog", data_dir).splitlines():
        f = dict(kv.split("=", 1) for kv in line[4:].split(" "))
        txns.append({"zxid": int(f["zxid"], 16), "session": int(f["session"], 16),
                     "cxid": int(f["cxid"], 16) & 0xffffffff, "type": f["type"], "path": f.get("path"),
                     "ops": f["ops"].split(";") if "ops" in f else None})
    return txns


def compare_logs(name, t, data_dir):
    """TxnLogToolkit on every log file vs zkd's own reading of the same files."""
    vdir = os.path.join(data_dir, "version-2")
    logs = sorted((f for f in os.listdir(vdir) if re.match(r"^log\.[0-9a-f]+$", f)), key=lambda f: int(f[4:], 16))
    zk_txns, problems = [], []
    for f in logs:
        txns, count, text = toolkit_txns(os.path.join(vdir, f))
        if "CRC ERROR" in text or "Exception" in text or count is None:
            problems.append("%s: %s" % (f, text[-800:]))
        elif count != len(txns):
            problems.append("%s: TxnLogToolkit counted %d txns but printed %d" % (f, count, len(txns)))
        zk_txns += txns
    check("%s: TxnLogToolkit reads all %d log file(s) without error" % (name, len(logs)), not problems,
          "\n".join(problems))
    ours = tool_txns(t, data_dir)
    by_zxid = {x["zxid"]: x for x in zk_txns}
    bad = []
    for o in ours:
        z = by_zxid.get(o["zxid"])
        if z is None:
            bad.append("zxid %x: missing in TxnLogToolkit's output" % o["zxid"])
            continue
        for k in ("session", "cxid", "type"):
            if o[k] != z[k]:
                bad.append("zxid %x: %s is %r for zkd, %r for ZooKeeper" % (o["zxid"], k, o[k], z[k]))
        if o["path"] and z["path"] is not None and o["path"] != z["path"]:
            bad.append("zxid %x: path %s vs %s" % (o["zxid"], o["path"], z["path"]))
        if o["ops"]:
            at = 0
            for op in o["ops"]:
                i = z["rest"].find(op + ":", at)
                if i < 0:
                    bad.append("zxid %x: multi op %s not in %r" % (o["zxid"], op, z["rest"][:200]))
                    break
                at = i + len(op)
    check("%s: every txn (%d) reads the same in zkd and in TxnLogToolkit" % (name, len(ours)),
          not bad and len(ours) == len(zk_txns) and len(ours) > 0,
          "\n".join(bad[:10]) + "\nzkd read %d txns, TxnLogToolkit %d" % (len(ours), len(zk_txns)))


def formatter_snapshot(path):
    """SnapshotFormatter -d -> ({path: persisted fields}, {session: timeout})."""
    out = java("org.apache.zookeeper.server.SnapshotFormatter", "-d", path)
    nodes, sessions, cur = {}, {}, None
    in_sessions = False
    for line in out.splitlines():
        if line.startswith("Session Details"):
            in_sessions = True
            continue
        if in_sessions:
            m = re.match(r"^0x([0-9a-f]+), (-?\d+), (\d+)$", line)
            if m:
                sessions[int(m.group(1), 16)] = int(m.group(2))
            continue
        if line.startswith("/"):
            cur = {}
            nodes[line] = cur
            continue
        m = re.match(r"^  (\w+) = (.*)$", line)
        if m and cur is not None:
            k, v = m.groups()
            if k in ("cZxid", "mZxid", "pZxid", "ephemeralOwner"):
                cur[{"cZxid": "czxid", "mZxid": "mzxid", "pZxid": "pzxid", "ephemeralOwner": "owner"}[k]] = \
                    "%x" % int(v, 16)
            elif k in ("cversion", "dataVersion", "aclVersion"):
                cur[{"cversion": "cversion", "dataVersion": "version", "aclVersion": "aversion"}[k]] = v
            elif k == "data":
                cur["data"] = base64.b64decode(v).hex() if v else ""
    return nodes, sessions, out


def compare_snapshots(name, t, data_dir):
    vdir = os.path.join(data_dir, "version-2")
    snaps = sorted((f for f in os.listdir(vdir) if re.match(r"^snapshot\.[0-9a-f]+$", f)),
                   key=lambda f: int(f[9:], 16))
    for f in snaps:
        p = os.path.join(vdir, f)
        zn, zs, text = formatter_snapshot(p)
        on, os_, _ = parse_dump(tool(t, "dumpsnap", p))
        ok = zn == on and zs == os_ and len(on) > 0
        check("%s: SnapshotFormatter reads %s like zkd (%d nodes, %d sessions)" % (name, f, len(on), len(os_)), ok,
              (diff(on, zn, "zkd", "ZooKeeper") or diff(os_, zs, "zkd", "ZooKeeper") or text[-800:]))


# ---------------------------------------------------------------- the two directions

def zkd_to_zookeeper(tmp, t, port):
    d1 = os.path.join(tmp, "zkd-data")
    print(tool(t, "gen", d1).strip())
    compare_logs("zkd->ZK", t, d1)
    compare_snapshots("zkd->ZK", t, d1)

    want_nodes, want_sessions, want_zxid = parse_dump(tool(t, "dump", d1))
    d1z = os.path.join(tmp, "zkd-data-for-zk")
    shutil.copytree(d1, d1z)
    zk = ZooKeeper(os.path.join(tmp, "zk-a"), d1z, port, level="info")
    try:
        # as alice: ZooKeeper shows digest ids only to a client with ADMIN on the node
        c = zk.client(auth_data=[("digest", "alice:secret")])
        got = kazoo_tree(c)
        check("zkd->ZK: ZooKeeper 3.8 starts from zkd's dataDir and serves the same %d nodes "
              "(data, stat, ACLs)" % len(want_nodes),
              null_as_empty(got) == null_as_empty(want_nodes), diff(want_nodes, got, "zkd", "ZooKeeper"))
        nulls = [p for p, f in want_nodes.items() if f["data"] == "null"]
        check("zkd->ZK: null data stays null (%d nodes)" % len(nulls),
              all(c.get(p)[0] in (None, b"") and c.get(p)[1].dataLength == 0 for p in nulls) and len(nulls) > 0)
        zx = srvr_zxid(zk)
        check("zkd->ZK: ZooKeeper goes on from zkd's last zxid (0x%x; kazoo's createSession is the next)"
              % want_zxid, zx == want_zxid + 1, "ZooKeeper says 0x%x" % (zx or 0))
        eph = sessions_with_ephemerals(zk)
        check("zkd->ZK: sessions with ephemerals agree", eph == zkd_ephemerals(want_nodes) and eph,
              "ZooKeeper: %r\nzkd: %r" % (eph, zkd_ephemerals(want_nodes)))
        c.stop()
        c.close()
    finally:
        zk.stop()
    log = open(zk.log, errors="replace").read()
    newest = sorted((f for f in os.listdir(os.path.join(d1, "version-2")) if f.startswith("snapshot.")),
                    key=lambda f: int(f[9:], 16))[-1]
    reading = re.findall(r"Reading snapshot (\S+)", log)
    check("zkd->ZK: ZooKeeper loads zkd's newest snapshot (%s) first time, seals and digest included" % newest,
          len(reading) == 1 and reading[0].endswith("/" + newest) and
          "The digest value is empty in snapshot" in log and "problem reading snap" not in log,
          "snapshots read: %r\n%s" % (reading, zk.tail()))
    # storage trouble only: client connections coming and going log harmless exceptions
    trouble = [l for l in log.splitlines()
               if re.search(r" ERROR |CRC|Unsupported|problem reading|Invalid snapshot|[Dd]igest.*(mismatch|not match)|"
                            r"WARN org\.apache\.zookeeper\.server\.(persistence|DataTree|ZKDatabase)", l)]
    check("zkd->ZK: the ZooKeeper server logged no storage error, warning or CRC complaint", not trouble,
          "\n".join(trouble[:20]))
    # ZooKeeper wrote its own snapshot of zkd's data at startup: zkd must read it back
    snaps = [f for f in os.listdir(os.path.join(d1z, "version-2")) if f.startswith("snapshot.")]
    back_nodes, back_sessions, back_zxid = parse_dump(tool(t, "dump", d1z))
    # (plus kazoo's createSession and closeSession)
    check("zkd->ZK->zkd: zkd recovers the same tree from ZooKeeper's own snapshot of it (%d snapshots)" % len(snaps),
          back_nodes == want_nodes and back_zxid == want_zxid + 2 and back_sessions == want_sessions,
          diff(want_nodes, back_nodes, "before", "after") or "%r %r / %r %r" % (want_zxid, back_zxid,
                                                                                  want_sessions, back_sessions))


def zookeeper_to_zkd(tmp, t, port):
    d2 = os.path.join(tmp, "zk-data")
    os.makedirs(d2)
    zk = ZooKeeper(os.path.join(tmp, "zk-b"), d2, port,
                   extra_jvm=["-Dzookeeper.snapCount=20", "-Dzookeeper.preAllocSize=256"])
    clients = []
    try:
        alice = zk.client(auth_data=[("digest", "alice:secret")])
        clients.append(alice)
        bob = zk.client()
        clients.append(bob)
        secret = [make_digest_acl("alice", "secret", all=True), make_digest_acl("bob", "x", read=True)]
        alice.create("/zk", b"root of the test")
        for i, size in enumerate((0, 1, 100, 1000, 4096, 65537, 300000)):
            alice.create("/zk/data-%d" % i, bytes((j * 7 + i) & 0xff for j in range(size)))
        alice.create("/zk/secret", b"s3cr3t", acl=secret)
        seq = [alice.create("/zk/seq-", b"s", sequence=True) for _ in range(5)]
        bob.create("/zk/eph-bob", b"e", ephemeral=True)
        bob.create("/zk/eph-seq-", b"e", ephemeral=True, sequence=True)
        alice.create("/zk/many")
        for i in range(150):
            alice.create("/zk/many/c%03d" % i, str(i).encode())
        for i in range(0, 150, 4):
            alice.delete("/zk/many/c%03d" % i)
        for i in range(60):
            alice.set("/zk/data-1", b"version %d" % i)
        alice.set_acls("/zk/data-2", secret)
        tx = alice.transaction()
        tx.create("/zk/multi-a", b"a")
        tx.create("/zk/multi-b", b"b")
        tx.set_data("/zk/data-3", b"set in a multi")
        tx.check("/zk/data-4", 0)
        tx.delete(seq[0])
        res = tx.commit()
        check("ZK->zkd: a multi commits", not any(isinstance(r, Exception) for r in res), repr(res))
        tx = alice.transaction()
        tx.create("/zk/multi-c", b"c")
        tx.create("/zk/multi-a", b"exists")
        res = tx.commit()
        check("ZK->zkd: a failing multi rolls back", any(isinstance(r, KazooException) for r in res))
        carol = zk.client()
        carol.create("/zk/eph-carol-1", b"", ephemeral=True)
        carol.create("/zk/eph-carol-2", b"", ephemeral=True)
        carol_id = carol.client_id[0]
        carol.stop()
        carol.close()
        out = zk.zkcli(["create -c /zk/box", "create /zk/box/item x", "create -t 600000 /zk/ttl tdata",
                        "create /zk/nulldata"])
        check("ZK->zkd: zkCli created a container, a TTL node and a null-data node",
              out.count("Created ") == 4, out[-600:])
        for i in range(30):
            alice.set("/zk", b"round %d" % i)
        want = kazoo_tree(alice)
        want_zxid = srvr_zxid(zk)
        open_ids = {alice.client_id[0], bob.client_id[0]}
        eph = sessions_with_ephemerals(zk)
    finally:
        zk.stop()                 # with alice and bob still connected: their sessions stay open
        for c in clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
    vdir = os.path.join(d2, "version-2")
    files = sorted(os.listdir(vdir))
    check("ZK->zkd: ZooKeeper left several snapshots and logs (%s)" % " ".join(files),
          sum(f.startswith("snapshot.") for f in files) >= 3 and sum(f.startswith("log.") for f in files) >= 3)

    got, sessions, zxid = parse_dump(tool(t, "dump", d2))
    check("ZK->zkd: zkd recovers the %d nodes kazoo saw (data, stat, ACLs)" % len(want),
          null_as_empty(got) == null_as_empty(want), diff(want, got, "ZooKeeper", "zkd"))
    check("ZK->zkd: null data is recovered as null", got.get("/zk/nulldata", {}).get("data") == "null")
    check("ZK->zkd: last zxid 0x%x" % (want_zxid or 0), zxid == want_zxid, "zkd says %r" % zxid)
    check("ZK->zkd: open sessions are the connected clients, not the closed one",
          open_ids <= set(sessions) and carol_id not in sessions, "zkd: %r, open: %r, closed: %r" %
          ({"%x" % s for s in sessions}, {"%x" % s for s in open_ids}, "%x" % carol_id))
    check("ZK->zkd: ephemerals by session agree", zkd_ephemerals(got) == eph,
          "zkd %r\nZooKeeper %r" % (zkd_ephemerals(got), eph))
    check("ZK->zkd: TTL and container markers survive", got["/zk/ttl"]["owner"] == "0" and
          "/zk/box" in got, repr(got.get("/zk/ttl")))
    snap = sorted((f for f in files if f.startswith("snapshot.")), key=lambda f: int(f[9:], 16))[-1]
    _, _, _ = parse_dump(tool(t, "dumpsnap", os.path.join(vdir, snap)))
    compare_logs("ZK->zkd", t, d2)
    compare_snapshots("ZK->zkd", t, d2)


def main():
    logging.basicConfig(level=logging.CRITICAL)    # kazoo's reconnect chatter once ZooKeeper stops
    tmp = tempfile.mkdtemp(prefix="zkd-storage-interop.")
    # a fresh ephemeral port by default: a fixed one (24181, say) may be what some other
    # test running at the same time expects its own server on
    port = int(os.environ.get("ZK_INTEROP_PORT", "0")) or free_port()
    if not port_free(port):
        port = free_port()
    started = time.time()
    try:
        t = build_tool(tmp)
        if not check("storage_tool builds from storage/ and net/", t is not None):
            return 1
        for part in (zkd_to_zookeeper, zookeeper_to_zkd):
            try:
                part(tmp, t, port)
            except Exception as e:  # a crash in one direction is one failure, not the end
                import traceback
                check("%s ran to the end" % part.__name__, False, traceback.format_exc())
    finally:
        if os.environ.get("KEEP_TMP"):
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("storage interop: %.1f s" % (time.time() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
