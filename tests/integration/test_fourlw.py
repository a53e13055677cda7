"""Every four-letter word of ZooKeeper 3.8, answered as ZooKeeper answers it.

    ZKD=build/zkd /usr/bin/python3 -m pytest tests/integration/test_fourlw.py -v

A zkd of this module's own and a real ZooKeeper 3.8 (the oracle, started
like shared/conformance/zk38-standalone.sh) go through the same steps with
kazoo: a session that owns an ephemeral, sets two watches and writes 300
times (so the digest log passes two multiples of 128). Then each word is
asked of both, and the answers are compared after the parts that must
differ (ids, ports, times, sizes, versions) are reduced to placeholders.
Monitoring scripts and zktop parse these texts line by line, so their
shape is the contract.
"""
import re
import socket
import struct
import time

import pytest
from kazoo.client import KazooClient

import zkraw
from standalone import ZKD, ZkdServer
from zkcli_tutorial import Oracle

TEST_TIMEOUT = 120
pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")

WRITES = 300
# Keys zkd's mntr prints that ZooKeeper's does not: zkd's read/write split
# (and its own metrics, all named zkd_...).
ZKD_ONLY_MNTR = {"zk_read_requests", "zk_write_requests"}
# Keys of ZooKeeper's server section (the first lines of its mntr) that zkd
# leaves out, and why.
ZK_ONLY_MNTR = {
    "zk_non_mtls_remote_conn_count": "counts JVM X509 trust-manager outcomes",
    "zk_non_mtls_local_conn_count": "counts JVM X509 trust-manager outcomes",
}


def ask(addr, word, extra=b"", timeout=10.0):
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(word.encode() + extra)
        out = b""
        while True:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk
            assert time.monotonic() < deadline, "%s: no end of answer" % word


def shape(text):
    """The answer with what differs between any two servers replaced."""
    t = re.sub(r"(Zookeeper version: |zookeeper\.version=|zk_version\t).*", r"\1VERSION", text)
    t = re.sub(r"\w{3} \w{3} \d\d \d\d:\d\d:\d\d \w+ \d{4}", "DATE", t)
    t = re.sub(r"/?\d+\.\d+\.\d+\.\d+:\d+", "ADDR", t)
    t = re.sub(r"lop=\w+", "lop=OP", t)
    t = re.sub(r"0x[0-9a-f]+", "0xH", t)
    t = re.sub(r"-?\d+(\.\d+)?", "N", t)
    return t


def scenario(addr):
    """The same history on both servers; returns the client (left open)."""
    k = KazooClient(hosts=addr, timeout=30)
    k.start(timeout=20)
    k.create("/fourlw", b"")
    k.create("/fourlw/e", b"", ephemeral=True)
    k.get("/fourlw", watch=lambda e: None)
    k.exists("/fourlw/missing", watch=lambda e: None)
    for i in range(WRITES):
        k.set("/fourlw/e", b"v%d" % i)
    return k


@pytest.fixture(scope="module")
def pair():
    zk = Oracle()
    zk.start()
    zkd = ZkdServer(prefix="zkd-fourlw-").start()
    clients = [scenario(zk.addr), scenario(zkd.addr)]
    yield zk.addr, zkd.addr
    for c in clients:
        c.stop()
        c.close()
    zkd.cleanup()
    zk.stop()


def both(pair, word, extra=b""):
    return ask(pair[0], word, extra), ask(pair[1], word, extra)


@pytest.mark.parametrize("word", ["ruok", "isro", "srvr", "dirs", "wchc", "wchp", "wchs", "gtmk"])
def test_word_has_zookeepers_shape(pair, word):
    zk, zkd = both(pair, word)
    assert shape(zkd) == shape(zk), "%s\n--- ZooKeeper:\n%s\n--- zkd:\n%s" % (word, zk, zkd)


def test_stat_lists_clients_briefly_then_the_srvr_lines(pair):
    zk, zkd = both(pair, "stat")
    # ZooKeeper lists the asking connection as not reading ([0]); zkd as
    # reading ([1]) until its answer is written: the one difference
    assert shape(zkd).replace("[N]", "[I]") == shape(zk).replace("[N]", "[I]"), (zk, zkd)
    assert re.search(r"^ /127\.0\.0\.1:\d+\[1\]\(queued=0,recved=\d+,sent=\d+\)$", zkd, re.M)


def test_cons_describes_the_session_connection_like_zookeeper(pair):
    zk, zkd = both(pair, "cons")
    session_line = [l for l in zkd.splitlines() if "sid=" in l]
    zk_line = [l for l in zk.splitlines() if "sid=" in l]
    assert len(session_line) == 1 and len(zk_line) == 1, (zk, zkd)
    assert shape(session_line[0]) == shape(zk_line[0])
    assert re.search(r"lop=(SETD|PING)", session_line[0]), session_line[0]


def test_crst_resets_every_connection(pair):
    zk, zkd = both(pair, "crst")
    assert zkd == zk == "Connection stats reset.\n"
    line = [l for l in ask(pair[1], "cons").splitlines() if "sid=" in l][0]
    assert "recved=0,sent=0" in line and "lop=NA" in line and "lcxid=0xffffffffffffffff" in line, line


def srvr_value(addr, key):
    return re.search(r"^%s: (\S+)$" % key, ask(addr, "srvr"), re.M).group(1)


def test_srst_resets_server_stats(pair):
    before = [int(srvr_value(pair[1], k)) for k in ("Received", "Sent")]
    assert min(before) >= WRITES
    zk, zkd = both(pair, "srst")
    assert zkd == zk
    after = [int(srvr_value(pair[1], k)) for k in ("Received", "Sent")]
    assert max(after) < 10, after        # a ping or two may come in between
    assert srvr_value(pair[1], "Latency min/avg/max").startswith("0/")


def test_dump_lists_sessions_ephemerals_and_connections(pair):
    zk, zkd = both(pair, "dump")
    # ZooKeeper's expiry queue keeps emptied sets until their time comes
    zk = re.sub(r"(?m)^0 expire at .*:\n", "", zk)
    head_zk, _, conns_zk = zk.partition("Connections dump:\n")
    head_zkd, _, conns_zkd = zkd.partition("Connections dump:\n")
    assert shape(head_zkd) == shape(head_zk), (zk, zkd)
    assert "\t/fourlw/e\n" in head_zkd
    # connections: one set line, then one line per connection (the session's
    # and the asking one); ZooKeeper groups them by idle deadline
    for text in (conns_zk, conns_zkd):
        lines = text.splitlines()
        assert re.match(r"Connections Sets \(\d+\)/\(2\):$", lines[0]), text
        assert sorted(shape(l) for l in lines if l.startswith("\tip:")) == \
            [shape("\tip: /127.0.0.1:1 sessionId: 0x1")] * 2, text


def test_stmk_sets_the_mask_gtmk_reads(pair):
    for addr in pair:
        assert ask(addr, "stmk", struct.pack(">q", 0x1234)) == str(0x1234)
        assert ask(addr, "gtmk") == str(0x1234)
        assert ask(addr, "stmk", struct.pack(">q", 306)) == "306"


def test_hash_logs_the_digest_at_the_same_zxids(pair):
    zk, zkd = both(pair, "hash")
    zk_zxids = [l.split(":")[0] for l in zk.splitlines()]
    zkd_zxids = [l.split(":")[0] for l in zkd.splitlines()]
    assert len(zkd_zxids) >= WRITES // 128, zkd
    assert zkd_zxids == zk_zxids, (zk, zkd)
    for line in zkd.splitlines():
        assert re.match(r"^[0-9a-f]+: -?\d+$", line), line
        assert int(line.split(":")[0], 16) % 128 == 0


def test_hash_digest_changes_only_with_the_tree(pair):
    before = ask(pair[1], "hash").splitlines()
    k = KazooClient(hosts=pair[1], timeout=30)
    k.start(timeout=20)
    try:
        k.get("/fourlw")            # reads add no txn and no digest line
        assert ask(pair[1], "hash").splitlines() == before
    finally:
        k.stop()
        k.close()


def test_conf_has_zookeepers_keys(pair):
    zk, zkd = both(pair, "conf")
    keys = lambda t: [l.split("=")[0] for l in t.splitlines() if "=" in l]
    assert keys(zkd) == keys(zk), (zk, zkd)


def test_envi_keys_are_zookeepers(pair):
    zk, zkd = both(pair, "envi")
    keys = lambda t: {l.split("=")[0] for l in t.splitlines() if "=" in l}
    assert zkd.startswith("Environment:\n")
    extra = keys(zkd) - keys(zk)
    assert extra <= {"zkd.pid", "zkd.config"}, extra
    for k in ("zookeeper.version", "host.name", "os.name", "os.arch", "os.version", "user.name",
              "user.home", "user.dir"):
        assert k in keys(zkd), k


def mntr_map(text):
    return dict(l.split("\t", 1) for l in text.splitlines() if "\t" in l)


def test_mntr_keys_are_zookeepers(pair):
    zk, zkd = both(pair, "mntr")
    zk_keys, zkd_keys = mntr_map(zk), mntr_map(zkd)
    unknown = {k for k in set(zkd_keys) - set(zk_keys) - ZKD_ONLY_MNTR if "zkd_" not in k}
    assert not unknown, "zkd prints keys ZooKeeper does not: %s" % sorted(unknown)
    # ZooKeeper's server section: its first lines, before the metrics
    server_section = [k for k in zk_keys][:26]
    missing = [k for k in server_section if k not in zkd_keys and k not in ZK_ONLY_MNTR]
    assert not missing, "zkd lacks ZooKeeper's server keys %s" % missing
    for key in ("zk_avg_fsynctime", "zk_cnt_fsynctime", "zk_avg_sync_processor_batch_size"):
        assert key in zkd_keys, key
    # ZooKeeper registers its quorum metrics in every mode: a standalone
    # server shows them at 0, and dashboards rely on finding the series
    for key in ("zk_looking_count", "zk_avg_election_time", "zk_diff_count", "zk_snap_count",
                "zk_learner_proposal_received_count", "zk_avg_unavailable_time"):
        assert key in zk_keys and key in zkd_keys and float(zkd_keys[key]) == float(zk_keys[key]) == 0, \
            (key, zkd_keys.get(key), zk_keys.get(key))


def test_mntr_values_follow_the_scenario(pair):
    zk, zkd = (mntr_map(t) for t in both(pair, "mntr"))
    assert zkd["zk_server_state"] == "standalone"
    for key in ("zk_ephemerals_count", "zk_znode_count", "zk_watch_count", "zk_global_sessions"):
        assert zkd[key] == zk[key], key
    assert int(zkd["zk_ephemerals_count"]) == 1
    assert int(zkd["zk_watch_count"]) == 2
    assert int(zkd["zk_cnt_fsynctime"]) >= 1


def test_client_response_sizes_are_counted_as_zookeeper_counts_them(pair):
    """ServerStats.updateClientResponseSize: every response's length without
    its prefix. After srst, the same three requests on both servers: a
    create, a getData of 100 bytes (16 + 4 + 100 + 68 = 188) and an exists of
    a missing node (a bare header, 16; as is any ping in between)."""
    sizes = []
    for addr in pair:
        assert ask(addr, "srst") == "Server stats reset.\n"
        with zkraw.ZKRaw(addr) as c:
            assert c.call(zkraw.create("/response-size", b"x" * 100)).err == zkraw.OK
            assert c.call(zkraw.get_data("/response-size")).err == zkraw.OK
            assert c.call(zkraw.exists("/response-size-missing")).err == zkraw.NONODE
        m = mntr_map(ask(addr, "mntr"))
        sizes.append({k: int(m["zk_%s_client_response_size" % k]) for k in ("last", "min", "max")})
    zk, zkd = sizes
    assert zkd == zk == {"last": 16, "min": 16, "max": 188}, sizes


def test_zktop_reads_zkd_like_zookeeper(pair):
    """zktop (Debian's) parses stat into a server row and session rows."""
    import sys
    argv, sys.argv = sys.argv, ["zktop"]     # zktop parses its options at import
    try:
        zktop = pytest.importorskip("zktop", reason="zktop is not installed (make deps installs it)")
    finally:
        sys.argv = argv
    zk, zkd = (zktop.ZKServer(addr, i) for i, addr in enumerate(pair))
    assert not zk.unavailable, "zktop cannot read ZooKeeper itself"
    assert not zkd.unavailable, "zktop cannot parse zkd's stat"
    assert zkd.mode == "standalone" and zkd.version == "3.8.0"
    common = lambda s: {k for k in vars(s) if k not in ("server_id", "host", "port")}
    assert common(zkd) == common(zk), common(zk) ^ common(zkd)
    assert int(zkd.node_count) == int(zk.node_count)
    assert len(zkd.sessions) >= 1 and all(s.host == "127.0.0.1" for s in zkd.sessions)


def test_hash_is_refilled_from_the_log_after_a_restart():
    """ZooKeeper rebuilds its digest log while replaying the txn log."""
    srv = ZkdServer(prefix="zkd-fourlw-hash-").start()
    try:
        k = KazooClient(hosts=srv.addr, timeout=30)
        k.start(timeout=20)
        k.create("/h", b"")
        for i in range(2 * 128 + 10):
            k.set("/h", b"%d" % i)
        k.stop()
        k.close()
        before = ask(srv.addr, "hash")
        assert len(before.splitlines()) >= 2, before
        assert srv.stop() == 0
        srv.start()
        assert ask(srv.addr, "hash") == before
    finally:
        srv.cleanup()
