"""The AdminServer (server/admin.c, net/http.c): ZooKeeper 3.8's /commands
over HTTP.

Every command and alias is queried over HTTP; each answer must be 200,
application/json, carry "command" (the primary name) and "error", and the
keys ZooKeeper's Commands.java puts there, with values that follow what a
kazoo session did (nodes, an ephemeral, watches). Hostile HTTP (garbage, a
huge head, a body too big, a client that never finishes) must cost only
that connection.

When the Debian ZooKeeper package can run its own AdminServer (Jetty and the
servlet API in /usr/share/java), a real ZooKeeper 3.8 is started as an
oracle and each command's key set is compared with zkd's.

The module starts its own zkd (the binary from $ZKD) with the AdminServer on
a free port, so it does not depend on how run.sh configured its server.
Every wait polls against a deadline.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import zkraw
from standalone import ZkdServer, free_port

ZKD = os.environ.get("ZKD")
pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")

# primary name -> aliases (Commands.java, ZooKeeper 3.8)
COMMANDS = {
    "connection_stat_reset": ["crst"],
    "configuration": ["conf", "config"],
    "connections": ["cons"],
    "hash": [],
    "dirs": [],
    "dump": [],
    "environment": ["env", "envi"],
    "get_trace_mask": ["gtmk"],
    "initial_configuration": ["icfg"],
    "is_read_only": ["isro"],
    "last_snapshot": ["lsnp"],
    "leader": ["lead"],
    "monitor": ["mntr"],
    "observer_connection_stat_reset": ["orst"],
    "ruok": [],
    "set_trace_mask": ["stmk"],
    "server_stats": ["srvr"],
    "stats": ["stat"],
    "stat_reset": ["srst"],
    "observers": ["obsr"],
    "system_properties": ["sysp"],
    "voting_view": [],
    "watches": ["wchc"],
    "watches_by_path": ["wchp"],
    "watch_summary": ["wchs"],
    "zabstate": [],
}

# the keys each command answers with on a standalone server, besides
# "command" and "error" (as ZooKeeper 3.8.x answers them)
KEYS = {
    "connection_stat_reset": set(),
    "configuration": {"client_port", "data_dir", "data_log_dir", "tick_time", "max_client_cnxns",
                      "min_session_timeout", "max_session_timeout", "server_id",
                      "client_port_listen_backlog"},
    "connections": {"connections", "secure_connections"},
    "hash": {"digests"},
    "dirs": {"datadir_size", "logdir_size"},
    "dump": {"expiry_time_to_session_ids", "session_id_to_ephemeral_paths"},
    "environment": {"zookeeper.version", "host.name", "java.version", "java.vendor", "java.home",
                    "java.class.path", "java.library.path", "java.io.tmpdir", "java.compiler",
                    "os.name", "os.arch", "os.version", "user.name", "user.home", "user.dir",
                    "os.memory.free", "os.memory.max", "os.memory.total"},
    "get_trace_mask": {"tracemask"},
    "initial_configuration": {"initial_configuration"},
    "is_read_only": {"read_only"},
    "last_snapshot": {"zxid", "timestamp"},
    "leader": set(),            # standalone: only an error
    "observer_connection_stat_reset": set(),
    "ruok": set(),
    "set_trace_mask": set(),    # without traceMask: only an error
    "server_stats": {"version", "read_only", "server_stats", "client_response", "node_count"},
    "stats": {"version", "read_only", "server_stats", "client_response", "node_count",
              "connections", "secure_connections"},
    "stat_reset": set(),
    "observers": {"synced_observers", "observers"},
    "voting_view": {"current_config"},
    "watches": {"session_id_to_watched_paths"},
    "watches_by_path": {"path_to_session_ids"},
    "watch_summary": {"num_connections", "num_paths", "num_total_watches"},
    "zabstate": {"voting", "zabstate"},
}
# zkd's additions to environment (its envi shows them too)
ENV_EXTRA = {"zkd.pid", "zkd.config"}
# the monitor values every mntr reader relies on (a subset of both servers')
MNTR_CORE = {"version", "server_state", "ephemerals_count", "num_alive_connections", "avg_latency",
             "outstanding_requests", "znode_count", "global_sessions", "packets_sent",
             "packets_received", "watch_count", "min_latency", "max_latency",
             "max_file_descriptor_count", "approximate_data_size", "open_file_descriptor_count",
             "local_sessions", "uptime"}
SERVER_STATS_KEYS = {"packets_sent", "packets_received", "fsync_threshold_exceed_count",
                     "client_response_stats", "data_dir_size", "log_dir_size", "provider_null",
                     "server_state", "last_processed_zxid", "outstanding_requests", "avg_latency",
                     "max_latency", "min_latency", "num_alive_client_connections", "uptime",
                     "auth_failed_count", "non_mtlsremote_conn_count", "non_mtlslocal_conn_count"}
BUFFER_KEYS = {"last_buffer_size", "min_buffer_size", "max_buffer_size"}
CONN_BRIEF = {"remote_socket_address", "interest_ops", "outstanding_requests", "packets_received",
              "packets_sent"}
CONN_FULL = CONN_BRIEF | {"session_id", "last_operation", "established", "session_timeout",
                          "last_cxid", "last_zxid", "last_response_time", "last_latency",
                          "min_latency", "avg_latency", "max_latency"}
NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
# the errors a standalone server answers these with, without arguments
EXPECTED_ERROR = {
    "leader": "server is not initialized",
    "set_trace_mask": "setTraceMask requires long traceMask argument",
}

JAVA = "/usr/bin/java"
ZK_JARS = ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar",
           "/usr/share/java/servlet-api.jar"]
JETTY_JAR = "/usr/share/java/jetty9-server.jar"


class Http:
    """GETs against one AdminServer; every answer is (status, content type, body)."""

    def __init__(self, port):
        self.port = port
        self.base = "http://127.0.0.1:%d" % port

    def request(self, path, method="GET", data=None, timeout=10):
        req = urllib.request.Request(self.base + path, method=method, data=data)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read()

    def command(self, name, query=""):
        status, ctype, body = self.request("/commands/" + name + (("?" + query) if query else ""))
        assert status == 200, "%s: status %d: %r" % (name, status, body[:200])
        assert ctype.split(";")[0].strip() == "application/json", "%s: content type %r" % (name, ctype)
        return json.loads(body)

    def command_at(self, path):
        status, ctype, body = self.request(path)
        assert status == 200 and ctype.startswith("application/json"), (status, ctype, body[:200])
        return json.loads(body)

    def ready(self):
        try:
            return self.request("/commands/ruok", timeout=1)[0] == 200
        except OSError:
            return False


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def start_zkd(work, extra_cfg="", args=(), admin_port=None):
    """A zkd with its AdminServer on 127.0.0.1:admin_port (a free one by
    default); its admin_port attribute says which."""
    admin_port = admin_port or free_port()
    zkd = ZkdServer({"admin.enableServer": None, "admin.serverAddress": "127.0.0.1",
                     "admin.serverPort": str(admin_port)}, args=args, work=work, extra_text=extra_cfg)
    zkd.admin_port = admin_port
    return zkd.start()


def stop_proc(proc, log=None):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if log:
        log.close()


@pytest.fixture(scope="module")
def server():
    zkd = start_zkd(tempfile.mkdtemp(prefix="zkd-admin-"), args=["-Dzkd.test.flag=on"])
    http = Http(zkd.admin_port)
    wait_for(http.ready, 10, "the AdminServer")
    yield {"proc": zkd.proc, "addr": zkd.addr, "http": http, "cfg": zkd.cfg_path, "cfg_text": zkd.cfg_text,
           "port": zkd.port, "work": zkd.dir}
    zkd.stop()
    assert_clean_log(zkd.log_path)
    zkd.cleanup()


def assert_clean_log(path):
    """A sanitizer build reports in the log; any report fails the module."""
    with open(path, errors="replace") as f:
        text = f.read()
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "ThreadSanitizer"):
        assert marker not in text, "%s in %s" % (marker, path)


@pytest.fixture(scope="module")
def kazoo_session(server):
    """A kazoo session with nodes, an ephemeral and two watches: what the
    commands that describe sessions have to show."""
    from kazoo.client import KazooClient
    kz = KazooClient(hosts=server["addr"], timeout=10.0)
    kz.start(timeout=15)
    kz.ensure_path("/adm")
    for i in range(5):
        kz.create("/adm/n%d" % i, b"x")
    kz.create("/adm/eph", b"", ephemeral=True)
    kz.get("/adm/n0", watch=lambda e: None)
    kz.exists("/adm/missing", watch=lambda e: None)
    yield kz
    kz.stop()
    kz.close()


def session_hex(kz):
    return kz.client_id[0]


# ---------------------------------------------------------------- routing


def test_listing_links_every_command_sorted(server):
    status, ctype, body = server["http"].request("/commands")
    assert status == 200
    text = body.decode()
    links = [line for line in text.splitlines() if line.startswith("<a href")]
    names = [line.split(">", 1)[1].split("<", 1)[0] for line in links]
    assert names == sorted(COMMANDS), text
    assert '<a href="/commands/stats">stats</a>' in text
    assert text.count("<br/>") == len(COMMANDS)
    # with a trailing slash too, as Jetty's path info "/" means the same
    assert server["http"].request("/commands/")[2] == body


@pytest.mark.parametrize("name", sorted(set(COMMANDS) | {a for v in COMMANDS.values() for a in v}))
def test_every_command_and_alias_answers_json(server, kazoo_session, name):
    primary = name if name in COMMANDS else next(p for p, al in COMMANDS.items() if name in al)
    r = server["http"].command(name)
    assert "command" in r and "error" in r, r
    assert r["command"] == primary, r
    assert r["error"] == EXPECTED_ERROR.get(primary), r
    keys = set(r) - {"command", "error"}
    if primary == "monitor":
        assert MNTR_CORE <= keys, MNTR_CORE - keys
    elif primary == "system_properties":
        assert "zkd.test.flag" in keys and "os.name" in keys, keys
    elif primary == "environment":
        assert keys == KEYS[primary] | ENV_EXTRA, keys ^ (KEYS[primary] | ENV_EXTRA)
    else:
        assert keys == KEYS[primary], keys ^ KEYS[primary]


def test_answer_is_laid_out_as_zookeeper_does(server):
    status, _, body = server["http"].request("/commands/ruok")
    assert status == 200
    assert body == b'{\n  "command" : "ruok",\n  "error" : null\n}'


def test_unknown_command_is_200_with_an_error(server):
    r = server["http"].command("no_such_command")
    assert r == {"command": "no_such_command", "error": "Unknown command: no_such_command"}
    r = server["http"].command("stat/extra")
    assert r["error"] == "Unknown command: stat/extra"


def test_other_paths_are_404_and_other_methods_405(server):
    http = server["http"]
    assert http.request("/")[0] == 404
    assert http.request("/metrics")[0] == 404
    assert http.request("/commandsx")[0] == 404
    status, _, _ = http.request("/commands/ruok", method="POST", data=b"a=1")
    assert status == 405
    assert http.request("/commands/ruok", method="DELETE")[0] == 405
    status, ctype, body = http.request("/commands/ruok", method="HEAD")
    assert status == 200 and body == b"" and ctype.startswith("application/json")


def test_percent_encoded_names_and_query_arguments(server):
    http = server["http"]
    assert http.command("%72uok")["command"] == "ruok"
    r = http.command("stmk", "traceMask=%2B306")
    assert r["tracemask"] == 306 and r["error"] is None


# ---------------------------------------------------------------- values


def test_configuration_matches_zoo_cfg(server):
    r = server["http"].command("configuration")
    assert r["client_port"] == server["port"]
    assert r["tick_time"] == 2000
    assert r["max_client_cnxns"] == 0
    assert r["min_session_timeout"] == 4000 and r["max_session_timeout"] == 40000
    assert r["data_dir"] == os.path.join(server["work"], "data", "version-2")
    assert r["data_log_dir"] == r["data_dir"]
    assert r["server_id"] == 0
    assert r["client_port_listen_backlog"] == -1


def test_initial_configuration_is_the_file(server):
    r = server["http"].command("icfg")
    assert r["initial_configuration"] == server["cfg_text"]


def test_system_properties_hold_command_line_and_zoo_cfg(server):
    r = server["http"].command("sysp")
    assert r["zkd.test.flag"] == "on"
    # zoo.cfg keys that are not QuorumPeerConfig's own become zookeeper.<key>
    assert r["zookeeper.4lw.commands.whitelist"] == "*"
    assert r["zookeeper.admin.serverPort"] == str(server["http"].port)
    assert "zookeeper.tickTime" not in r and "zookeeper.dataDir" not in r
    keys = [k for k in r if k not in ("command", "error")]
    assert keys == sorted(keys)


def test_node_count_follows_creates(server):
    from kazoo.client import KazooClient
    http = server["http"]
    before = http.command("mntr")["znode_count"]
    kz = KazooClient(hosts=server["addr"], timeout=10.0)
    kz.start(timeout=15)
    try:
        kz.ensure_path("/count")
        for i in range(7):
            kz.create("/count/c%d" % i)
        assert http.command("monitor")["znode_count"] == before + 8
        assert http.command("server_stats")["node_count"] == before + 8
        assert http.command("stats")["node_count"] == before + 8
        r = http.command("srvr")
        assert r["server_stats"]["server_state"] == "standalone"
        assert r["server_stats"]["last_processed_zxid"] > 0
        assert set(r["server_stats"]) == SERVER_STATS_KEYS
        assert set(r["client_response"]) == BUFFER_KEYS
        assert set(r["server_stats"]["client_response_stats"]) == BUFFER_KEYS
        assert r["read_only"] is False
        for i in range(7):
            kz.delete("/count/c%d" % i)
        kz.delete("/count")
        assert http.command("mntr")["znode_count"] == before
    finally:
        kz.stop()
        kz.close()


def our_connection(conns, kz):
    sid = session_hex(kz)
    mine = [c for c in conns if c.get("session_id") == sid]
    assert len(mine) == 1, (sid, conns)
    return mine[0]


def test_a_kazoo_session_shows_in_connections_and_dump(server, kazoo_session):
    http = server["http"]
    kz = kazoo_session
    sid = session_hex(kz)
    r = http.command("connections")
    c = our_connection(r["connections"], kz)
    assert set(c) == CONN_FULL
    assert c["session_timeout"] == 10000
    host, port = kz._connection._socket.getsockname()[:2]
    assert c["remote_socket_address"] == "%s:%d" % (host, port)
    assert r["secure_connections"] == []
    brief = http.command("stats")["connections"]
    assert any(set(b) == CONN_BRIEF and b["remote_socket_address"] == c["remote_socket_address"]
               for b in brief), brief

    d = http.command("dump")
    expiring = [int(s) for ids in d["expiry_time_to_session_ids"].values() for s in ids]
    assert sid in expiring, d
    assert d["session_id_to_ephemeral_paths"][str(sid)] == ["/adm/eph"]
    assert http.command("mntr")["ephemerals_count"] >= 1


def test_watches_show_in_every_watch_command(server, kazoo_session):
    http = server["http"]
    sid = session_hex(kazoo_session)
    w = http.command("watches")["session_id_to_watched_paths"]
    assert set(w[str(sid)]) >= {"/adm/n0", "/adm/missing"}, w
    p = http.command("watches_by_path")["path_to_session_ids"]
    assert sid in p["/adm/n0"] and sid in p["/adm/missing"], p
    s = http.command("watch_summary")
    assert s["num_connections"] >= 1 and s["num_paths"] >= 2 and s["num_total_watches"] >= 2
    assert http.command("mntr")["watch_count"] >= 2


def test_connection_stat_reset_resets(server, kazoo_session):
    http = server["http"]
    kz = kazoo_session
    for _ in range(30):
        kz.exists("/adm")
    before = our_connection(http.command("cons")["connections"], kz)
    assert before["packets_received"] >= 30 and before["packets_sent"] >= 30
    assert before["last_operation"] != "NA"
    r = http.command("crst")
    assert r == {"command": "connection_stat_reset", "error": None}
    after = our_connection(http.command("cons")["connections"], kz)
    # a ping or two may arrive in between; 30 requests may not
    assert after["packets_received"] < 5 and after["packets_sent"] < 5, after
    assert after["max_latency"] <= before["max_latency"]


def test_stat_reset_resets_server_counters(server, kazoo_session):
    http = server["http"]
    for _ in range(30):
        kazoo_session.exists("/adm")
    before = http.command("srvr")["server_stats"]
    assert before["packets_received"] >= 30
    assert http.command("srst") == {"command": "stat_reset", "error": None}
    after = http.command("srvr")["server_stats"]
    # latencies start again (a ping may come in between, well under 1 ms)
    assert after["max_latency"] == 0 and after["min_latency"] == 0, (before, after)


def test_trace_mask_set_and_get(server):
    http = server["http"]
    assert http.command("stmk", "traceMask=0")["tracemask"] == 0
    assert http.command("gtmk")["tracemask"] == 0
    assert http.command("set_trace_mask", "traceMask=306")["tracemask"] == 306
    assert http.command("get_trace_mask")["tracemask"] == 306
    r = http.command("stmk", "traceMask=abc")
    assert r["error"] == "setTraceMask requires long traceMask argument, got abc"
    assert "tracemask" not in r
    assert http.command("gtmk")["tracemask"] == 306


def test_standalone_role_commands(server):
    http = server["http"]
    assert http.command("isro")["read_only"] is False
    assert http.command("leader") == {"error": "server is not initialized", "command": "leader"}
    assert http.command("zabstate") == {"voting": False, "zabstate": "", "command": "zabstate",
                                        "error": None}
    assert http.command("voting_view")["current_config"] == {}
    o = http.command("observers")
    assert o["synced_observers"] == 0 and o["observers"] == []


def test_dirs_and_last_snapshot(server):
    http = server["http"]
    d = http.command("dirs")
    assert d["datadir_size"] > 0 and d["logdir_size"] > 0
    s = http.command("lsnp")
    int(s["zxid"], 16)
    assert s["timestamp"] > 1_000_000_000 or s["timestamp"] == -1


# ---------------------------------------------------------------- hostile input


def raw_exchange(port, payload, timeout=15):
    """Sends payload, then reads until the server closes; returns what it said."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return zkraw.read_until_closed(s, timeout)


def status_of(answer):
    line = answer.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.") else None


def still_serving(server):
    assert server["proc"].poll() is None, "zkd died"
    assert server["http"].command("ruok")["error"] is None
    assert zkraw.four_letter(server["addr"], "ruok") == "imok"


@pytest.mark.parametrize("payload,status", [
    (b"garbage\r\n\r\n", 400),
    (b"\x00\x01\x02\xff\xfe\r\n\r\n", 400),
    (b"GET /commands/ruok\r\n\r\n", 400),                     # HTTP/0.9
    (b"GET /commands/ruok HTTP/2.0\r\n\r\n", 505),
    (b"GET commands HTTP/1.1\r\n\r\n", 400),
    (b"GET /commands/ruok HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /commands/ruok HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
    (b"GET /commands/ruok HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET /commands/ruok HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST /commands/ruok HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", 413),
    (b"POST /commands/ruok HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    (b"GET /commands/%zz HTTP/1.1\r\n\r\n", 400),
    (b"GET /commands/%00 HTTP/1.1\r\n\r\n", 400),
])
def test_malformed_requests_get_a_clear_answer(server, payload, status):
    answer = raw_exchange(server["http"].port, payload)
    assert status_of(answer) == status, answer[:300]
    assert b"Connection: close" in answer
    still_serving(server)


def test_random_requests_never_hurt_the_server(server):
    """Seeded mutations of a valid request (ADMIN_FUZZ_SEED replays a run)."""
    import random
    seed = int(os.environ.get("ADMIN_FUZZ_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    base = (b"GET /commands/stmk?traceMask=306&x=%41 HTTP/1.1\r\nHost: h\r\n"
            b"Content-Length: 3\r\n\r\nabc")
    for _ in range(150):
        b = bytearray(base)
        for _ in range(rnd.randint(1, 8)):
            op = rnd.randrange(3)
            pos = rnd.randrange(len(b) + 1)
            if op == 0 and b:
                del b[min(pos, len(b) - 1)]
            elif op == 1:
                b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
            else:
                b[pos:pos] = rnd.choice([b"\r\n", b"\n", b"%", b"%00", b" ", b":", b"?", b"\x00",
                                         b"Content-Length: 99999999\r\n", b"\r\n\r\n"])
        with socket.create_connection(("127.0.0.1", server["http"].port), timeout=15) as sock:
            try:
                sock.sendall(bytes(b))
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            except (BrokenPipeError, ConnectionResetError):
                pass
        assert server["proc"].poll() is None, "zkd died (ADMIN_FUZZ_SEED=%d)" % seed
    still_serving(server)


def test_huge_head_is_refused_and_only_that_connection_closed(server):
    answer = raw_exchange(server["http"].port,
                          b"GET /commands/ruok HTTP/1.1\r\nX-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n")
    assert status_of(answer) in (413, 431), answer[:200]
    still_serving(server)


def test_many_headers_and_a_body_are_fine(server):
    head = b"GET /commands/ruok HTTP/1.0\r\n" + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(200))
    answer = raw_exchange(server["http"].port, head + b"Content-Length: 5\r\n\r\nhello")
    assert status_of(answer) == 200, answer[:200]
    assert answer.endswith(b'"error" : null\n}')


def test_request_in_pieces_is_answered(server):
    with socket.create_connection(("127.0.0.1", server["http"].port), timeout=10) as s:
        for piece in (b"GE", b"T /comma", b"nds/ruok HT", b"TP/1.1\r\nHost: x\r", b"\n\r\n"):
            s.sendall(piece)
            time.sleep(0.02)
        out = zkraw.read_until_closed(s, 10)
    assert status_of(out) == 200 and b'"command" : "ruok"' in out


def test_slow_and_idle_clients_do_not_block_others_and_are_cut(server):
    port = server["http"].port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(40)]
    slow = socket.create_connection(("127.0.0.1", port), timeout=20)
    slow.sendall(b"GET /commands/ruok HTTP/1.1\r\nX-Slow: ")
    try:
        # others are served at once while these hang
        t0 = time.monotonic()
        assert server["http"].command("ruok")["error"] is None
        assert time.monotonic() - t0 < 2
        # the slow one keeps dribbling; the request deadline still ends it
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline:
            try:
                slow.sendall(b"a")
                slow.settimeout(1.0)
                data = slow.recv(4096)
                if not data or status_of(data) == 408:
                    closed = True
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed, "a request that never completes was not cut off"
        # the idle ones are closed by then too
        for s in idle:
            s.settimeout(5)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        slow.close()
        for s in idle:
            s.close()
    still_serving(server)


def test_client_that_does_not_read_its_answer(server, kazoo_session):
    # asks for a big answer many times without reading: the server must
    # neither block nor die
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server["http"].port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        s.sendall(b"GET /commands/environment HTTP/1.1\r\n\r\n")
        socks.append(s)
    try:
        still_serving(server)
    finally:
        for s in socks:
            s.close()
    still_serving(server)


# ---------------------------------------------------------------- config


def test_disabled_admin_server_does_not_listen(tmp_path):
    admin_port = free_port()
    zkd = start_zkd(str(tmp_path), args=["-Dzookeeper.admin.enableServer=false"], admin_port=admin_port)
    try:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", admin_port), timeout=2).close()
    finally:
        zkd.stop()


def test_taken_admin_port_is_logged_and_zkd_serves_on(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        zkd = start_zkd(str(tmp_path), admin_port=blocker.getsockname()[1])
        try:
            assert zkraw.four_letter(zkd.addr, "ruok") == "imok"
            # the client port opens before the AdminServer is tried: wait
            # for its line rather than read the log at once
            wait_for(lambda: re.search(r"WARN .*AdminServer", zkd.log_text()), 15,
                     "the AdminServer's failure in the log")
        finally:
            zkd.stop()
    finally:
        blocker.close()


def test_command_url_and_system_property_spellings(tmp_path):
    sys_port = free_port()
    zkd = start_zkd(str(tmp_path), extra_cfg="admin.commandURL=/cmds/\n",
                    args=["-Dzookeeper.admin.serverPort=%d" % sys_port])
    cfg_port = zkd.admin_port
    try:
        # -D wins over zoo.cfg's admin.serverPort
        http = Http(sys_port)
        wait_for(lambda: http.request("/cmds/ruok", timeout=1)[0] == 200, 10, "/cmds/ruok")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", cfg_port), timeout=2).close()
        assert http.request("/commands/ruok")[0] == 404
        status, _, body = http.request("/cmds")
        assert status == 200 and b'<a href="/cmds/ruok">ruok</a>' in body
        assert http.command_at("/cmds/srvr")["command"] == "server_stats"
    finally:
        zkd.stop()


# ---------------------------------------------------------------- the oracle


def zk_oracle_available():
    if not os.path.exists(JAVA):
        return "no java"
    for jar in ZK_JARS + [JETTY_JAR]:
        if not os.path.exists(jar):
            return "%s is missing (ZooKeeper's AdminServer needs Jetty and the servlet API)" % jar
    return None


@pytest.fixture(scope="module")
def zk_oracle():
    why = zk_oracle_available()
    if why:
        pytest.skip("no ZooKeeper 3.8 oracle: " + why)
    work = tempfile.mkdtemp(prefix="zk38-admin-")
    port, admin_port = free_port(), free_port()
    cfg = os.path.join(work, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write("tickTime=2000\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                "maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=true\n"
                "admin.serverAddress=127.0.0.1\nadmin.serverPort=%d\n" % (work, port, admin_port))
    log = open(os.path.join(work, "zk.log"), "w")
    proc = subprocess.Popen([JAVA, "-Xmx256m", "-Dzookeeper.log.dir=" + work, "-cp", ":".join(ZK_JARS),
                             "org.apache.zookeeper.server.ZooKeeperServerMain", cfg],
                            stdout=log, stderr=log, cwd=work)
    http = Http(admin_port)
    try:
        def up():
            assert proc.poll() is None, "ZooKeeper exited; see %s/zk.log" % work
            return http.ready()
        wait_for(up, 60, "ZooKeeper's AdminServer")
        yield {"addr": "127.0.0.1:%d" % port, "http": http}
    finally:
        stop_proc(proc, log)
        shutil.rmtree(work, ignore_errors=True)


def same_scene(addr):
    """The same session, nodes, ephemeral and watches on either server."""
    from kazoo.client import KazooClient
    kz = KazooClient(hosts=addr, timeout=10.0)
    kz.start(timeout=30)
    kz.ensure_path("/oracle")
    kz.create("/oracle/eph", b"", ephemeral=True)
    kz.get("/oracle", watch=lambda e: None)
    return kz


def nested_keys(name, r):
    """The key sets of the parts of an answer whose shape is fixed."""
    out = {}
    if "server_stats" in r:
        out["server_stats"] = set(r["server_stats"])
        out["server_stats.client_response_stats"] = set(r["server_stats"]["client_response_stats"])
        out["client_response"] = set(r["client_response"])
    if r.get("connections"):
        out["connections[]"] = set().union(*(set(c) for c in r["connections"]))
    if r.get("digests"):
        out["digests[]"] = set(r["digests"][0])
    return out


def test_key_sets_match_zookeeper(server, zk_oracle):
    kz_zkd = same_scene(server["addr"])
    kz_zk = same_scene(zk_oracle["addr"])
    try:
        mismatches = []
        for name in COMMANDS:
            ours = server["http"].command(name)
            theirs = zk_oracle["http"].command(name)
            assert theirs["command"] == ours["command"] == name
            assert theirs["error"] == ours["error"], (name, theirs["error"], ours["error"])
            a, b = set(ours), set(theirs)
            if name == "monitor":
                # ZooKeeper adds every metric it registers; the core must match
                if not (MNTR_CORE <= a and MNTR_CORE <= b):
                    mismatches.append((name, MNTR_CORE - a, MNTR_CORE - b))
                continue
            if name == "system_properties":
                continue        # a JVM's properties: nothing to compare key by key
            if name == "environment":
                a -= ENV_EXTRA
            if a != b:
                mismatches.append((name, "zkd only: %s" % (a - b), "ZooKeeper only: %s" % (b - a)))
            na, nb = nested_keys(name, ours), nested_keys(name, theirs)
            for part in set(na) & set(nb):
                if na[part] != nb[part]:
                    mismatches.append(("%s.%s" % (name, part), na[part] ^ nb[part]))
        assert not mismatches, mismatches
        # the unknown-command answer is the same document
        assert (server["http"].command("bogus") == zk_oracle["http"].command("bogus"))
        # and both list the same commands
        ours = server["http"].request("/commands")[2]
        theirs = zk_oracle["http"].request("/commands")[2]
        assert ours.replace(b"\r\n", b"\n").strip() == theirs.replace(b"\r\n", b"\n").strip()
    finally:
        kz_zkd.stop()
        kz_zkd.close()
        kz_zk.stop()
        kz_zk.close()


# ---------------------------------------------------------------- an ensemble


def test_ensemble_roles(tmp_path):
    """Two zkd members and, when its AdminServer can run, a ZooKeeper 3.8
    one: leader, zabstate, voting_view and observers describe the quorum
    with ZooKeeper's keys; a member without a quorum says it is not serving
    for the commands that need a server, and still answers the others."""
    import ensemble
    with_zk = zk_oracle_available() is None
    kinds = ["zkd", "zkd", "zk" if with_zk else "zkd"]
    admin_ports = [free_port() for _ in kinds]
    extra = [{"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
              "admin.serverPort": p} for p in admin_ports]
    saved_cp = ensemble.ZK_CP
    ensemble.ZK_CP = ":".join(ZK_JARS)          # ZooKeeper's AdminServer needs the servlet API
    e = ensemble.Ensemble(kinds, extra=extra, zkd=os.path.abspath(ZKD), name="admin")
    try:
        e.start_all()
        leader = e.wait_quorum(timeout=60)
        https = [Http(p) for p in admin_ports]
        for h in https:
            wait_for(h.ready, 30, "an AdminServer")
        views = {}
        for i, h in enumerate(https):
            lead = h.command("leader")
            assert lead["error"] is None, lead
            assert lead["is_leader"] == (i == leader), (i, lead)
            assert lead["leader_id"] == leader + 1
            assert lead["leader_ip"] == "127.0.0.1"
            z = h.command("zabstate")
            assert z["zabstate"] == "broadcast" and z["voting"] is True, z
            assert z["myid"] == i + 1 and z["is_leader"] == (i == leader)
            assert z["quorum_address"]["one"] == "127.0.0.1:%d" % e.members[i].quorum_port, z
            assert z["election_address"]["all_ports"] == [e.members[i].election_port], z
            assert z["client_address"] == "127.0.0.1:%d" % e.members[i].client_port, z
            assert z["last_zxid"].startswith("0x") and z["zab_epoch"] >= 1
            v = h.command("voting_view")["current_config"]
            assert set(v) == {"1", "2", "3"}, v
            for sid, m in zip(("1", "2", "3"), e.members):
                assert v[sid]["server_addresses"] == ["127.0.0.1:%d" % m.quorum_port]
                assert v[sid]["election_addresses"] == ["127.0.0.1:%d" % m.election_port]
                assert v[sid]["client_address"] == "127.0.0.1:%d" % m.client_port
                assert v[sid]["learner_type"] == "participant"
            o = h.command("observers")
            assert o["synced_observers"] == 0 and o["observers"] == []
            s = h.command("srvr")
            assert s["server_stats"]["server_state"] == ("leader" if i == leader else "follower")
            assert ("proposal_stats" in s) == (i == leader), s
            views[i] = {name: h.command(name) for name in
                        ("leader", "zabstate", "voting_view", "observers", "configuration")}
        if with_zk:
            zk_i, zkd_i = 2, 0
            for name in views[zk_i]:
                a, b = set(views[zkd_i][name]), set(views[zk_i][name])
                assert a == b, (name, "zkd only", a - b, "ZooKeeper only", b - a)
            for part in ("quorum_address", "election_address"):
                a = set(views[zkd_i]["zabstate"][part])
                b = set(views[zk_i]["zabstate"][part])
                assert a == b, (part, a ^ b)
            a = views[zkd_i]["voting_view"]["current_config"]["1"]
            b = views[zk_i]["voting_view"]["current_config"]["1"]
            assert set(a) == set(b) and a == b, (a, b)
            assert views[zkd_i]["configuration"]["server_id"] == zkd_i + 1

        # one zkd left alone: no quorum, no server
        alone = 0
        for i in range(len(kinds)):
            if i != alone:
                e.kill(i)
        h = https[alone]

        def not_serving():
            return h.command("stats")["error"] == NOT_SERVING
        wait_for(not_serving, 30, "the lone member to stop serving")
        assert h.command("stat") == {"command": "stat", "error": NOT_SERVING}
        assert h.command("leader") == {"command": "leader", "error": NOT_SERVING}
        assert h.command("monitor")["error"] == NOT_SERVING
        assert h.command("environment")["error"] is None
        assert h.command("gtmk")["error"] is None
        # ZooKeeper's AdminServer has no server while LOOKING
        assert h.command("zabstate") == {"voting": False, "zabstate": "", "command": "zabstate",
                                         "error": None}
    finally:
        ensemble.ZK_CP = saved_cp
        reports = e.sanitizer_reports()
        e.cleanup()
        assert not reports, reports
