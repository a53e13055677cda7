"""ZooKeeper 3.8's ensemble metrics in mntr, on a 3-member loopback ensemble.

One history, played on an all-zkd ensemble and on an all-ZooKeeper one
(Debian's 3.8, the oracle):

  watches       one connection on a follower holds two exists watches on a
                missing node, a child watch and two data watches; a client
                of the leader creates the node (NodeCreated reaching two
                watchers, NodeChildrenChanged), sets one node (NodeDataChanged)
                and deletes the other (NodeDeleted), and every event arrives;
  writes        WRITES creates through the leader;
  revalidate    a session made on the follower is dropped without closing
                and resumed there (the follower asks the leader: REVALIDATE);
  DIFF          the other follower is stopped, more writes go in, it comes
                back (a DIFF sync);
  SNAP          it is stopped again, its dataDir emptied (myid kept), and it
                comes back (a SNAP sync).
snapCount is small, so the leader writes snapshots on the way.

zkd (test_zkd_metrics_follow_the_history): every key below is in mntr on the
role it belongs to, and each moved as ZooKeeper's would: the watch counts
say how many watchers one event reached; the follower counts the PROPOSALs
and COMMITs of the writes and their proposal_latency; the leader counts the
REVALIDATE, one more DIFF and one more SNAP sync (and snap_count does not
count the snapshots it wrote: snapshottime does), has learner_handler_qp_*
series for each follower's sid, and a leader_uptime that grows; a restarted
follower records its sync time and its time unavailable; quorum_size is 3.

ZooKeeper (test_zookeeper_has_the_same_keys): after the same history every
one of those keys is in ZooKeeper's mntr on the same role (presence only:
the values are its own), and leader_uptime is on neither follower.

Every wait has a deadline; conftest.py's watchdog bounds each test.
"""

import os
import shutil
import time

import pytest

import zkraw
from ensemble import four_letter
from test_ensemble import make_ensemble  # noqa: F401 (fixture: teardown, sanitizer reports)

TEST_TIMEOUT = 240           # s per test (ZooKeeper's JVMs start slowly on 2 cores)
START_S = 90
WRITES = 30
SNAP_COUNT = 10              # zoo.cfg snapCount: the leader snapshots every few writes

ZKD = os.environ.get("ZKD")

BASIC = ("avg_", "min_", "max_", "cnt_", "sum_")
ADVANCED = BASIC + ("p50_", "p95_", "p99_", "p999_")


def summary_keys(name, detail=BASIC):
    return ["zk_%s%s" % (p, name) for p in detail]


# Keys every quorum role shows (ZooKeeper's ServerMetrics and QuorumZooKeeperServer)
EVERY_ROLE = (["zk_quorum_size", "zk_diff_count", "zk_snap_count", "zk_revalidate_count",
               "zk_learner_proposal_received_count", "zk_learner_commit_received_count"]
              + summary_keys("proposal_latency", ADVANCED)
              + [k for n in ("follower_sync_time", "observer_sync_time", "unavailable_time",
                             "leader_unavailable_time", "node_created_watch_count",
                             "node_deleted_watch_count", "node_changed_watch_count",
                             "node_children_watch_count")
                 for k in summary_keys(n)])


def leader_keys(follower_sids):
    """Keys only the leader shows: its uptime, and a summary set per learner."""
    keys = ["zk_leader_uptime"]
    for sid in follower_sids:
        keys += summary_keys("%d_learner_handler_qp_size" % sid)
        keys += summary_keys("%d_learner_handler_qp_time_ms" % sid, ADVANCED)
    return keys


def mntr(e, i):
    """Member i's mntr as {key: str}; {} when it does not answer (not serving)."""
    text = four_letter(e.members[i].client_port, "mntr")
    return dict(ln.split("\t", 1) for ln in text.splitlines() if "\t" in ln)


def num(m, key):
    return float(m[key])


def wait_mntr(e, i, pred, what, timeout=30):
    """Polls member i's mntr until pred(mntr) holds; returns that mntr."""
    end = time.monotonic() + timeout
    last = {}
    while True:
        m = mntr(e, i)
        if m:
            last = m
            try:
                if pred(m):
                    return m
            except KeyError:
                pass
        if time.monotonic() >= end:
            shown = {k: v for k, v in last.items() if any(w in k for w in what.split())}
            raise AssertionError("server.%d: %s: not within %.0f s (mntr: %s)" % (
                e.members[i].sid, what, timeout, shown or "(none of those keys)"))
        time.sleep(0.05)


def assert_keys(m, keys, where):
    missing = [k for k in keys if k not in m]
    assert not missing, "%s lacks %s" % (where, missing)


def wipe_data(e, i):
    """Empties member i's dataDir but for myid: it comes back with nothing."""
    data = e.members[i].data
    for name in os.listdir(data):
        if name == "myid":
            continue
        p = os.path.join(data, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def play_history(e, on_step=lambda step, **kw: None):
    """Runs the history of the module's docstring on a fresh ensemble;
    on_step(name, ...) is called after each step, for the checks.
    Returns (leader, kept follower, bounced follower)."""
    e.start_all()
    leader = e.wait_quorum(timeout=START_S)
    kept, bounced = [i for i in range(e.n) if i != leader]
    on_step("formed", leader=leader, kept=kept, bounced=bounced)
    zk = e.client(leader)
    zk.ensure_path("/wm")
    zk.create("/wm/data", b"d")
    zk.create("/wm/gone", b"g")
    zk.sync("/")

    # watches on the kept follower: two on one missing node, so one
    # NodeCreated reaches two watchers
    w1 = zkraw.ZKRaw(e.members[kept].addr)
    w2 = zkraw.ZKRaw(e.members[kept].addr)
    try:
        for c in (w1, w2):
            assert c.call(zkraw.sync("/wm")).err == zkraw.OK   # the follower has the nodes
            assert c.call(zkraw.exists("/wm/created", watch=True)).err == zkraw.NONODE
        w1.ok(zkraw.get_children("/wm", watch=True))
        w1.ok(zkraw.get_data("/wm/data", watch=True))
        w1.ok(zkraw.get_data("/wm/gone", watch=True))
        zk.create("/wm/created", b"c")
        zk.set("/wm/data", b"d2")
        zk.delete("/wm/gone")
        deadline = time.monotonic() + 20
        got = sorted((ev.type, ev.path) for ev in
                     [w1.wait_event(lambda ev, t=t: ev.type == t, deadline)
                      for t in (zkraw.EV_CREATED, zkraw.EV_CHILDREN_CHANGED, zkraw.EV_DATA_CHANGED,
                                zkraw.EV_DELETED)]
                     + [w2.wait_event(lambda ev: ev.type == zkraw.EV_CREATED, deadline)])
        assert got == sorted([(zkraw.EV_CREATED, "/wm/created"), (zkraw.EV_CREATED, "/wm/created"),
                              (zkraw.EV_CHILDREN_CHANGED, "/wm"), (zkraw.EV_DATA_CHANGED, "/wm/data"),
                              (zkraw.EV_DELETED, "/wm/gone")]), got
    finally:
        w1.close()
        w2.close()
    on_step("watches", leader=leader, kept=kept, bounced=bounced)

    for n in range(WRITES):
        zk.create("/wm/n-%03d" % n, b"x" * 100)
    on_step("writes", leader=leader, kept=kept, bounced=bounced)

    # a session resumed on a follower is revalidated with the leader
    c = zkraw.ZKRaw(e.members[kept].addr)
    sid, passwd = c.session_id, c.passwd
    c.abort()
    c = zkraw.ZKRaw(e.members[kept].addr, session_id=sid, passwd=passwd)
    assert c.session_id == sid
    c.close()
    on_step("revalidate", leader=leader, kept=kept, bounced=bounced)

    on_step("before-diff", leader=leader, kept=kept, bounced=bounced)
    e.stop(bounced)
    for n in range(10):
        zk.create("/wm/while-down-%d" % n, b"y")
    e.start(bounced)
    assert e.wait_quorum(timeout=START_S) == leader
    on_step("diff", leader=leader, kept=kept, bounced=bounced)

    on_step("before-snap", leader=leader, kept=kept, bounced=bounced)
    e.stop(bounced)
    wipe_data(e, bounced)
    zk.create("/wm/after-wipe", b"z")
    e.start(bounced)
    assert e.wait_quorum(timeout=START_S) == leader
    e.wait_converged(timeout=60)
    on_step("snap", leader=leader, kept=kept, bounced=bounced)
    return leader, kept, bounced


@pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")
def test_zkd_metrics_follow_the_history(make_ensemble):
    e = make_ensemble(["zkd"] * 3, extra={"snapCount": str(SNAP_COUNT)})
    seen = {}

    def check(step, leader, kept, bounced):
        sids = [e.members[i].sid for i in (kept, bounced)]
        if step == "formed":
            for i in range(e.n):
                m = wait_mntr(e, i, lambda m: m["zk_quorum_size"] == "3", "zk_quorum_size")
                assert_keys(m, EVERY_ROLE, "server.%d" % e.members[i].sid)
                # one time unavailable, from start to broadcast; leading
                # only on the leader
                assert num(m, "zk_cnt_unavailable_time") == 1
                if i == leader:
                    assert num(m, "zk_cnt_leader_unavailable_time") == 1
                    assert num(m, "zk_cnt_follower_sync_time") == 0
                else:
                    assert "zk_leader_uptime" not in m
                    assert num(m, "zk_cnt_follower_sync_time") == 1
                    assert num(m, "zk_cnt_observer_sync_time") == 0
            m = wait_mntr(e, leader, lambda m: all(
                "zk_cnt_%d_learner_handler_qp_size" % s in m for s in sids), "learner_handler_qp")
            assert_keys(m, leader_keys(sids), "the leader")
            # both followers synced (in sync at zxid 0: DIFF), no snapshot sent
            assert num(m, "zk_diff_count") >= 2
            assert num(m, "zk_snap_count") == 0
            first = num(m, "zk_leader_uptime")
            wait_mntr(e, leader, lambda m: num(m, "zk_leader_uptime") > first, "zk_leader_uptime grows")
        elif step == "watches":
            m = wait_mntr(e, kept, lambda m: num(m, "zk_cnt_node_deleted_watch_count") >= 1,
                          "node_created_watch_count node_deleted_watch_count")
            # one event each; NodeCreated reached both watchers
            assert (num(m, "zk_cnt_node_created_watch_count"), num(m, "zk_sum_node_created_watch_count"),
                    num(m, "zk_max_node_created_watch_count")) == (1, 2, 2)
            for kind in ("node_children_watch_count", "node_changed_watch_count", "node_deleted_watch_count"):
                assert (num(m, "zk_cnt_" + kind), num(m, "zk_sum_" + kind)) == (1, 1), kind
            # the leader's client set no watch
            m = mntr(e, leader)
            assert num(m, "zk_cnt_node_created_watch_count") == 0
        elif step == "writes":
            m = wait_mntr(e, kept, lambda m: num(m, "zk_learner_commit_received_count") >= WRITES + 5,
                          "learner_proposal_received_count learner_commit_received_count proposal_latency")
            assert num(m, "zk_learner_proposal_received_count") >= WRITES + 5
            assert num(m, "zk_cnt_proposal_latency") >= WRITES + 5
            assert num(m, "zk_min_proposal_latency") >= 0
            m = mntr(e, leader)
            # the leader receives no PROPOSAL; it queued plenty to each follower
            assert num(m, "zk_learner_proposal_received_count") == 0
            for s in sids:
                assert num(m, "zk_cnt_%d_learner_handler_qp_size" % s) >= 1
                assert num(m, "zk_max_%d_learner_handler_qp_size" % s) >= 1
                assert num(m, "zk_cnt_%d_learner_handler_qp_time_ms" % s) >= 1
            # snapCount made the leader write snapshots: snapshottime counts
            # them, snap_count (SNAP syncs) does not
            m = wait_mntr(e, leader, lambda m: num(m, "zk_cnt_snapshottime") >= 1, "snapshottime")
            assert num(m, "zk_snap_count") == 0
        elif step == "revalidate":
            wait_mntr(e, leader, lambda m: num(m, "zk_revalidate_count") >= 1, "zk_revalidate_count")
        elif step in ("before-diff", "before-snap"):
            seen[step] = mntr(e, leader)
        elif step == "diff":
            m = wait_mntr(e, leader, lambda m: num(m, "zk_diff_count") > num(seen["before-diff"], "zk_diff_count"),
                          "zk_diff_count zk_snap_count")
            assert num(m, "zk_snap_count") == 0
            m = wait_mntr(e, bounced, lambda m: num(m, "zk_cnt_follower_sync_time") == 1,
                          "follower_sync_time unavailable_time")
            assert num(m, "zk_cnt_unavailable_time") == 1
            assert num(m, "zk_cnt_leader_unavailable_time") == 0
        elif step == "snap":
            before = seen["before-snap"]
            m = wait_mntr(e, leader, lambda m: num(m, "zk_snap_count") >= num(before, "zk_snap_count") + 1,
                          "zk_snap_count zk_diff_count")
            assert num(m, "zk_diff_count") == num(before, "zk_diff_count")
            # the leader never stopped broadcasting
            assert num(m, "zk_cnt_unavailable_time") == 1
            assert num(m, "zk_cnt_leader_unavailable_time") == 1
            for i in range(e.n):
                assert mntr(e, i)["zk_quorum_size"] == "3"

    play_history(e, check)


def test_zookeeper_has_the_same_keys(make_ensemble):
    e = make_ensemble(["zk"] * 3, extra={"snapCount": str(SNAP_COUNT)})
    leader, kept, bounced = play_history(e)
    sids = [e.members[i].sid for i in (kept, bounced)]
    m = wait_mntr(e, leader, lambda m: all("zk_cnt_%d_learner_handler_qp_size" % s in m for s in sids),
                  "learner_handler_qp", timeout=30)
    assert_keys(m, EVERY_ROLE + leader_keys(sids), "ZooKeeper's leader")
    for i in (kept, bounced):
        m = wait_mntr(e, i, lambda m: "zk_quorum_size" in m, "zk_quorum_size", timeout=30)
        assert_keys(m, EVERY_ROLE, "ZooKeeper's follower server.%d" % e.members[i].sid)
        assert "zk_leader_uptime" not in m
