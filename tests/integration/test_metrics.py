"""Prometheus metrics (metricsProvider.className = ZooKeeper's
PrometheusMetricsProvider): /metrics on metricsProvider.httpPort in the text
exposition format 0.0.4, parsed with prometheus_client's own parser.

The module starts its own zkd (the binary from $ZKD) with the provider on a
free port, drives it with kazoo and checks what a scrape shows: requests by
type, every pipeline stage's queue and time series, the group commit's
fsync and batch size, the tree's gauges, and the metric types.
"""

import os
import time
import urllib.error
import urllib.request

import pytest

from standalone import ZkdServer, free_port

ZKD = os.environ.get("ZKD")
pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")

prometheus_parser = pytest.importorskip("prometheus_client.parser")
kazoo_client = pytest.importorskip("kazoo.client")

TEST_TIMEOUT = 60
STAGES = ("prep", "proposal", "sync", "commit", "final")
PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


class Server:
    def __init__(self, addr, metrics_url):
        self.addr = addr
        self.metrics_url = metrics_url

    def fetch(self, path="/metrics"):
        base = self.metrics_url.rsplit("/", 1)[0]
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()

    def scrape(self):
        """{family name: Metric} of one scrape, parsed by prometheus_client."""
        _, _, text = self.fetch()
        return {f.name: f for f in prometheus_parser.text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def server():
    mport = free_port()
    with ZkdServer({"metricsProvider.className": PROVIDER, "metricsProvider.httpHost": "127.0.0.1",
                    "metricsProvider.httpPort": str(mport)}, prefix="zkd-metrics-") as zkd:
        srv = Server(zkd.addr, "http://127.0.0.1:%d/metrics" % mport)
        deadline = time.monotonic() + 20
        while True:                  # ZkdServer waited for ruok; /metrics comes up beside it
            try:
                if srv.fetch()[0] == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            assert time.monotonic() < deadline, "no /metrics; see %s" % zkd.log_path
            time.sleep(0.05)
        yield srv


@pytest.fixture
def zk(server):
    c = kazoo_client.KazooClient(hosts=server.addr, timeout=10)
    c.start(timeout=10)
    yield c
    c.stop()
    c.close()


def value(families, family, sample=None, **labels):
    """The value of one sample (the family's name by default) with exactly
    these labels; None if absent."""
    f = families.get(family)
    if f is None:
        return None
    for s in f.samples:
        if s.name == (sample or family) and s.labels == labels:
            return s.value
    return None


def requests_of(families, op):
    return value(families, "zkd_requests", "zkd_requests_total", type=op) or 0


def wait_for(server, check, what, timeout=10):
    """Scrapes until check(families) holds; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        fams = server.scrape()
        if check(fams):
            return fams
        assert time.monotonic() < deadline, "%s: not seen within %ds" % (what, timeout)
        time.sleep(0.05)


def test_endpoint_speaks_the_text_format(server):
    status, ctype, text = server.fetch()
    assert status == 200
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    # every family has its HELP and TYPE before its samples
    seen = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            seen.add(("help", line.split()[2]))
        elif line.startswith("# TYPE "):
            name = line.split()[2]
            assert ("help", name) in seen, "TYPE before HELP for %s" % name
            seen.add(("type", name))
    with pytest.raises(urllib.error.HTTPError) as e:
        server.fetch("/nope")
    assert e.value.code == 404


def test_types_are_zookeepers(server):
    fams = server.scrape()
    for name in ("znode_count", "watch_count", "ephemerals_count", "approximate_data_size",
                 "num_alive_connections", "outstanding_requests", "packets_received", "packets_sent",
                 "uptime", "zkd_stage_queue_depth"):
        assert name in fams, "%s missing" % name
        assert fams[name].type == "gauge", "%s is %s" % (name, fams[name].type)
    for name in ("fsynctime", "sync_processor_batch_size", "readlatency", "updatelatency",
                 "prep_processor_queue_size", "prep_processor_queue_time_ms", "prep_process_time",
                 "sync_processor_queue_size", "sync_processor_queue_time_ms",
                 "sync_processor_queue_and_flush_time_ms", "commit_process_time",
                 "write_final_proc_time_ms", "read_final_proc_time_ms", "quorum_ack_latency",
                 "zkd_stage_queue_time_ms", "zkd_stage_process_time_ms", "zkd_stage_batch_size",
                 "zkd_request_latency_ms"):
        assert name in fams, "%s missing" % name
        assert fams[name].type == "summary", "%s is %s" % (name, fams[name].type)
    assert fams["zkd_requests"].type == "counter"
    assert fams["proposal_count"].type == "counter"
    # quantiles as ZooKeeper's provider exports them: BASIC 0.5; ADVANCED 0.5 0.9 0.99
    q = lambda name: sorted({s.labels["quantile"] for s in fams[name].samples if "quantile" in s.labels})
    assert q("fsynctime") == ["0.5"]
    assert q("updatelatency") == ["0.5", "0.9", "0.99"]
    assert q("write_final_proc_time_ms") == ["0.5", "0.9", "0.99"]


def test_every_stage_has_queue_and_time_series(server, zk):
    zk.create("/metrics-stages", b"x")
    zk.delete("/metrics-stages")
    fams = server.scrape()
    for stage in STAGES:
        assert value(fams, "zkd_stage_queue_depth", stage=stage) is not None, stage
        for fam in ("zkd_stage_queue_time_ms", "zkd_stage_process_time_ms", "zkd_stage_batch_size"):
            assert value(fams, fam, fam + "_count", stage=stage) is not None, (fam, stage)
            assert value(fams, fam, fam + "_sum", stage=stage) is not None, (fam, stage)
            assert value(fams, fam, quantile="0.5", stage=stage) is not None, (fam, stage)
    # standalone, writes go Prep -> Sync -> Final: those saw them
    for stage in ("prep", "sync", "final"):
        assert value(fams, "zkd_stage_process_time_ms", "zkd_stage_process_time_ms_count", stage=stage) >= 2
        assert value(fams, "zkd_stage_queue_time_ms", "zkd_stage_queue_time_ms_count", stage=stage) >= 2
    # nothing left in any queue once the writes are answered
    wait_for(server, lambda f: all(value(f, "zkd_stage_queue_depth", stage=s) == 0 for s in STAGES),
             "empty stage queues")


def test_requests_by_type_count_what_was_sent(server, zk):
    zk.ensure_path("/metrics-load")
    before = server.scrape()
    n_create, n_set, n_get = 7, 5, 11
    for i in range(n_create):
        zk.create("/metrics-load/n%d" % i, b"v")
    for i in range(n_set):
        zk.set("/metrics-load/n0", b"w%d" % i)
    for i in range(n_get):
        zk.get("/metrics-load/n1")
    t = zk.transaction()
    t.create("/metrics-load/m", b"m")
    t.set_data("/metrics-load/n2", b"m")
    results = t.commit()
    assert not any(isinstance(r, Exception) for r in results), results

    expect = {"create": n_create, "setData": n_set, "getData": n_get, "multi": 1}
    fams = wait_for(server, lambda f: all(requests_of(f, op) - requests_of(before, op) >= n
                                          for op, n in expect.items()), "request counts")
    for op, n in expect.items():
        assert requests_of(fams, op) - requests_of(before, op) == n, op
        lat = "zkd_request_latency_ms"
        assert (value(fams, lat, lat + "_count", type=op) - value(before, lat, lat + "_count", type=op)) == n
        assert value(fams, lat, quantile="0.99", type=op) >= 0
    # writes are updates, reads are reads (ZooKeeper's ServerStats split)
    upd = value(fams, "updatelatency", "updatelatency_count") - value(before, "updatelatency", "updatelatency_count")
    rd = value(fams, "readlatency", "readlatency_count") - value(before, "readlatency", "readlatency_count")
    assert upd >= n_create + n_set + 1
    assert rd >= n_get


def test_fsync_and_group_commit_are_measured(server, zk):
    zk.create("/metrics-fsync", b"x")
    fams = server.scrape()
    assert value(fams, "fsynctime", "fsynctime_count") > 0
    assert value(fams, "fsynctime", "fsynctime_sum") >= 0
    assert value(fams, "fsynctime", quantile="0.5") >= 0
    n = value(fams, "sync_processor_batch_size", "sync_processor_batch_size_count")
    total = value(fams, "sync_processor_batch_size", "sync_processor_batch_size_sum")
    assert n > 0 and total >= n
    assert value(fams, "sync_processor_batch_size", quantile="0.5") >= 1
    zk.delete("/metrics-fsync")


def count_nodes(zk, path="/"):
    n = 1
    for child in zk.get_children(path):
        n += count_nodes(zk, (path.rstrip("/") + "/" + child))
    return n


def test_tree_gauges_match_the_tree(server, zk):
    before = value(server.scrape(), "znode_count")
    zk.ensure_path("/metrics-tree/a/b")
    zk.create("/metrics-tree/e", b"", ephemeral=True)
    # ZooKeeper's DataTree files the root under both "" and "/", and its
    # znode_count counts it twice; zkd reports the same number
    nodes = count_nodes(zk) + 1
    fams = wait_for(server, lambda f: value(f, "znode_count") == nodes, "znode_count == %d" % nodes)
    assert nodes - before == 4, "the four nodes made here"
    assert value(fams, "ephemerals_count") >= 1
    assert value(fams, "num_alive_connections") >= 1
    assert value(fams, "approximate_data_size") > 0
    zk.get("/metrics-tree/a", watch=lambda e: None)
    fams = wait_for(server, lambda f: value(f, "watch_count") >= 1, "watch_count")
