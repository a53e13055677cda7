"""Chaos: converge to the identical tree after any sequence of member kills
and restarts.

An all-zkd ensemble of 3 and of 5 members (tickTime 200 ms, built by
ensemble.py) takes writes from WRITERS writer threads while a seeded random
schedule kill -9s and restarts members: the leader, a follower, a member
killed and started again at once, two at once (5 members), a dead member
or every dead member restarted. Up to a majority may be down at once, so
the quorum is sometimes lost for a while: writes then fail until it is back.
Between steps: a random pause (0.05 .. 1.2 s; 1 in 10: 2 .. 5 s, longer
than the writers' 4 s session timeout).

Each writer has its own kazoo client over all members (its "home" member
first, the others after it, so it reconnects elsewhere when its member
dies) and moves its home to the next member every 1.5 .. 3.5 s (a fresh
session each time). It issues, one at a time:

  creates   sequential nodes /load/n-, each holding a unique token
            "<wid>:<k>" (3 of 4 operations);
  sets      unconditional setData of "<wid>:set:<k>" on one of COUNTERS
            counters /counters/c<j> (1 of 4).

A reply within OP_TIMEOUT_S that said OK is acknowledged; anything else is
unknown (may or may not have been applied, now or later). Nothing is ever
retried.

At the end every dead member is started, the quorum of all members is
waited for, each writer must get 5 more creates acknowledged, the writers
stop, and then:

  identical trees   every member's tree (read after a sync) has the same
                    digest (on a mismatch: the digests and the first
                    differing paths);
  creates           check_load from test_ensemble.py: every acknowledged
                    create is there, at the path its reply named; no token
                    is there twice; no token nobody sent; each writer's
                    acknowledged sequence numbers rise in the order issued;
  counters          check_counters: acknowledged sets got distinct
                    versions, rising per writer in issue order; the final
                    version v has acked <= max acked version <= v <=
                    attempted sets; the final data is a token that was
                    sent to that counter (b"init" only if v == 0); if v is
                    the highest acknowledged version the data and mzxid
                    are that set's.

Running:

    ZKD=build/zkd /usr/bin/python3 -m pytest -q tests/integration/test_chaos.py
    CHAOS_SEED=1234 CHAOS_STEPS=30 ... -s     # a given schedule, longer; -s shows it

CHAOS_SEED (default: random; each test prints "CHAOS_SEED=<n>" first, so
pytest shows it with a failure, and the checks' messages name it) seeds the schedule and the writers (the 3- and 5-member runs
each derive their own generator from it). CHAOS_STEPS (default 20) is the
number of schedule steps per ensemble
(the whole file takes 35 .. 50 s with 20). The timing of the servers is not
seeded, so a seed gives the same choices, not the same run. A failed test
keeps its ensemble's work directory (member logs) and prints where it is.
"""

import collections
import os
import random
import threading
import time

import pytest
from kazoo.client import KazooClient

from ensemble import Ensemble
from test_ensemble import check_load, make_ensemble, wait_until  # noqa: F401 (fixture)

TEST_TIMEOUT = 120           # s per test (SIGALRM watchdog in conftest.py)
TICK_MS = 200
START_S = 30
RECOVER_S = 60               # everyone back: quorum of all members, at most
CONVERGE_S = 20
WRITERS = 3
COUNTERS = 3
WRITE_RATE = 25              # operations/s per writer
OP_TIMEOUT_S = 3.0
PAUSE_S = (0.05, 1.2)
LONG_PAUSE_S = (2.0, 5.0)    # 1 step in 10: long enough for sessions to expire
HOP_S = (1.5, 3.5)

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10 ** 9))
STEPS = int(os.environ.get("CHAOS_STEPS") or 20)


def counter_path(j):
    return "/counters/c%d" % j


# ------------------------------------------------------------ writers

class ChaosWriter(threading.Thread):
    """Creates and sets through a moving home member (see the module
    docstring). acked/unknown are check_load's: [(k, token, path)] and
    [(k, token, error)]; sets: [(k, counter, token, version or None,
    mzxid or None, error or None)] (version set = acknowledged)."""

    def __init__(self, e, wid, home, seed):
        super().__init__(name="chaos-writer-%s" % wid, daemon=True)
        self.e = e
        self.wid = wid
        self.home = home
        self.rng = random.Random(seed)
        self.acked = []
        self.unknown = []
        self.sets = []
        self.hops = 0
        self.halt = threading.Event()
        self.crash = None
        self.client = None

    def _connect(self):
        n = self.e.n
        order = [(self.home + d) % n for d in range(n)]
        hosts = ",".join(self.e.members[i].addr for i in order)
        c = KazooClient(hosts=hosts, randomize_hosts=False,
                        timeout=20.0 * self.e.tick_ms / 1000,
                        connection_retry=dict(max_tries=-1, delay=0.05, backoff=1.5,
                                              max_delay=0.5, max_jitter=0.05))
        # No blocking start: without a quorum nobody takes the session; the
        # client keeps trying and the operations fail (unknown) meanwhile.
        c.start_async().wait(OP_TIMEOUT_S)
        return c

    def _drop(self):
        c, self.client = self.client, None
        if c is not None:
            try:
                c.stop()
                c.close()
            except Exception:
                pass

    def run(self):
        try:
            self.client = self._connect()
            k = 0
            t_next = time.monotonic()
            t_hop = time.monotonic() + self.rng.uniform(*HOP_S)
            while not self.halt.is_set():
                if time.monotonic() >= t_hop:
                    self._drop()
                    self.home = (self.home + 1) % self.e.n
                    self.hops += 1
                    self.client = self._connect()
                    t_hop = time.monotonic() + self.rng.uniform(*HOP_S)
                k += 1
                if self.rng.random() < 0.25:
                    j = self.rng.randrange(COUNTERS)
                    token = "%s:set:%d" % (self.wid, k)
                    try:
                        st = self.client.set_async(counter_path(j), token.encode()).get(
                            timeout=OP_TIMEOUT_S)
                        self.sets.append((k, j, token, st.version, st.mzxid, None))
                    except Exception as ex:
                        self.sets.append((k, j, token, None, None, type(ex).__name__))
                else:
                    token = "%s:%d" % (self.wid, k)
                    try:
                        path = self.client.create_async("/load/n-", token.encode(),
                                                        sequence=True).get(timeout=OP_TIMEOUT_S)
                        self.acked.append((k, token, path))
                    except Exception as ex:
                        self.unknown.append((k, token, type(ex).__name__))
                t_next = max(t_next + 1.0 / WRITE_RATE, time.monotonic() - 1.0)
                self.halt.wait(max(0.0, t_next - time.monotonic()))
        except BaseException as ex:          # reported by stop()
            self.crash = ex
        finally:
            self._drop()

    def n_set_acked(self):
        return sum(1 for s in self.sets if s[3] is not None)

    def summary(self):
        errors = collections.Counter([u[2] for u in self.unknown] +
                                     [s[5] for s in self.sets if s[5] is not None])
        return "%s: %d/%d creates acked, %d/%d sets acked, %d hops, errors %s" % (
            self.wid, len(self.acked), len(self.acked) + len(self.unknown),
            self.n_set_acked(), len(self.sets), self.hops, dict(errors))

    def stop(self):
        self.halt.set()
        self.join(30)
        assert not self.is_alive(), "writer %s did not stop within 30 s" % self.wid
        assert self.crash is None, "writer %s crashed: %r" % (self.wid, self.crash)


def check_counters(tree, writers):
    """The counter rules (module docstring) over /counters/c<j>. Returns
    {j: (final version, acked sets, attempted sets)}."""
    out = {}
    for j in range(COUNTERS):
        path = counter_path(j)
        assert path in tree, "%s is missing" % path
        data, st = tree[path]
        v = st["version"]
        attempted = [(w.wid, s) for w in writers for s in w.sets if s[1] == j]
        acked = [(wid, s) for wid, s in attempted if s[3] is not None]
        versions = [s[3] for _wid, s in acked]
        dup = [x for x, c in collections.Counter(versions).items() if c > 1]
        assert not dup, "%s: acknowledged sets share versions %s: %s" % (
            path, dup, [(wid, s) for wid, s in acked if s[3] in dup][:6])
        for w in writers:
            mine = [s[3] for s in w.sets if s[1] == j and s[3] is not None]
            assert mine == sorted(mine), (
                "%s: writer %s's acknowledged sets got versions %s, not rising in issue order"
                % (path, w.wid, mine))
        top = max(acked, key=lambda a: a[1][3], default=None)
        top_v = top[1][3] if top else 0
        assert len(acked) <= top_v or not acked, (
            "%s: %d acknowledged sets, but the highest version acknowledged is %d" % (
                path, len(acked), top_v))
        assert v >= top_v and v >= len(acked), (
            "%s: final version %d < acknowledged sets (%d; highest acked version %d): an "
            "acknowledged set was lost" % (path, v, len(acked), top_v))
        assert v <= len(attempted), (
            "%s: final version %d > %d sets ever sent: a set was applied more than once" % (
                path, v, len(attempted)))
        tokens = {s[2] for _wid, s in attempted}
        if v == 0:
            assert data == b"init", "%s: version 0 but data %r" % (path, data)
        else:
            assert data.decode() in tokens, (
                "%s: final data %r (version %d) is no set anybody sent to it" % (path, data, v))
        if top and v == top_v:
            assert (data.decode(), st["mzxid"]) == (top[1][2], top[1][4]), (
                "%s: final version %d is the highest acknowledged one (%s), but data/mzxid are "
                "%r/%#x, not %r/%#x" % (path, v, top[0], data, st["mzxid"], top[1][2], top[1][4]))
        out[j] = (v, len(acked), len(attempted))
    return out


# ------------------------------------------------------------ chaos

def check_no_crash(e):
    """Fails if a member exited without being killed (with its log tail)."""
    for i, m in enumerate(e.members):
        if m.proc is not None and not m.expected_exit and m.proc.poll() is not None:
            raise AssertionError("%s exited by itself (status %s); %s:\n%s" % (
                m, m.proc.returncode, m.log, e.log_tail(i)))


def current_leader(e):
    for i in e.live():
        if e.mode(i) == "leader":
            return i
    return None


def chaos_step(e, rng, max_down):
    """One random step; returns a description of it."""
    n = e.n
    up = e.live()
    down = [i for i in range(n) if i not in up]
    leader = current_leader(e)
    followers = [i for i in up if i != leader]
    choices = []
    if len(down) < max_down:
        if leader is not None:
            choices += [("kill-leader", 3), ("bounce-leader", 1)]
        if followers:
            choices += [("kill-follower", 3), ("bounce-follower", 1)]
        if n >= 5 and len(down) + 2 <= max_down and len(up) >= 2:
            choices.append(("kill-two", 2))
    if down:
        choices.append(("start-one", 3 if len(down) < max_down else 6))
        if len(down) > 1:
            choices.append(("start-all", 2))
    names, weights = zip(*choices)
    what = rng.choices(names, weights)[0]
    sids = lambda idxs: ",".join("server.%d" % e.members[i].sid for i in sorted(idxs))  # noqa: E731
    if what in ("kill-leader", "bounce-leader"):
        victims = [leader]
    elif what in ("kill-follower", "bounce-follower"):
        victims = [rng.choice(followers)]
    elif what == "kill-two":
        victims = rng.sample(up, 2)
    else:
        victims = []
    for i in victims:
        e.kill(i)
    if what.startswith("bounce"):
        for i in victims:
            e.start(i)
    if what == "start-one":
        starts = [rng.choice(down)]
    elif what == "start-all":
        starts = list(down)
    else:
        starts = []
    for i in starts:
        e.start(i)
    return "%s %s (leader was %s; down now: %s)" % (
        what, sids(victims or starts), "server.%d" % e.members[leader].sid
        if leader is not None else "none", sids(i for i in range(n) if not e.alive(i)) or "-")


def assert_identical_trees(e, seed, timeout=CONVERGE_S):
    """Every member's tree read after a sync has one digest; retried until
    timeout (a write that was unknown may still be applied late). Returns
    the tree."""
    end = time.monotonic() + timeout
    mismatches = 0
    while True:
        check_no_crash(e)
        err = None
        try:
            trees = {i: e.tree(i, timeout=10) for i in range(e.n)}
        except Exception as ex:
            err = "reading trees: %s: %s" % (type(ex).__name__, ex)
        else:
            digests = {i: Ensemble.digest_of(t) for i, t in trees.items()}
            if len(set(digests.values())) == 1:
                if mismatches:
                    print("trees matched after %d mismatched reads" % mismatches)
                return trees[0]
            mismatches += 1
            ref = max(set(digests.values()), key=list(digests.values()).count)
            r = next(i for i in trees if digests[i] == ref)
            err = "digests %s; %s" % (
                {"server.%d" % e.members[i].sid: "%s (%d nodes)" % (d[:12], len(trees[i]))
                 for i, d in digests.items()},
                "; ".join("server.%d vs server.%d: %s" % (
                    e.members[r].sid, e.members[i].sid,
                    " | ".join(Ensemble.tree_diff(trees[r], trees[i], limit=8)))
                    for i in trees if digests[i] != ref))
        if time.monotonic() >= end:
            raise AssertionError("CHAOS_SEED=%d: members' trees differ %.0f s after recovery: %s"
                                 % (seed, timeout, err))
        time.sleep(0.2)


@pytest.mark.parametrize("n", [3, 5], ids=["3-zkd", "5-zkd"])
def test_chaos_converges(n, make_ensemble):
    seed = SEED
    rng = random.Random("%d/%d" % (seed, n))
    print("CHAOS_SEED=%d CHAOS_STEPS=%d members=%d tick=%d ms" % (seed, STEPS, n, TICK_MS))
    e = make_ensemble(["zkd"] * n, tick_ms=TICK_MS)
    e.start_all()
    e.wait_quorum(START_S, members=range(n))
    setup = e.client(0)
    setup.create("/load")
    setup.create("/counters")
    for j in range(COUNTERS):
        setup.create(counter_path(j), b"init")
    e.close_client(setup)

    writers = [ChaosWriter(e, "w%d" % (w + 1), w % n, rng.randrange(1 << 30))
               for w in range(WRITERS)]
    for w in writers:
        w.start()
    try:
        wait_until(lambda: all(len(w.acked) >= 5 for w in writers), 20,
                   "every writer has 5 creates acknowledged before the chaos")
        max_down = n // 2 + 1               # a majority: the quorum is lost then
        t0 = time.monotonic()
        for step in range(1, STEPS + 1):
            check_no_crash(e)
            desc = chaos_step(e, rng, max_down)
            pause = rng.uniform(*(LONG_PAUSE_S if rng.random() < 0.1 else PAUSE_S))
            print("[%6.2f s] step %d: %s; acked creates %s; pause %.2f s" % (
                time.monotonic() - t0, step, desc, [len(w.acked) for w in writers], pause))
            time.sleep(pause)               # chaos timing, not a wait for a condition
        check_no_crash(e)

        down = [i for i in range(n) if not e.alive(i)]
        for i in down:
            e.start(i)
        t1 = time.monotonic()
        leader = e.wait_quorum(RECOVER_S, members=range(n))
        print("[%6.2f s] all %d up (started %s); quorum with leader server.%d after %.2f s" % (
            time.monotonic() - t0, n, [e.members[i].sid for i in down], e.members[leader].sid,
            time.monotonic() - t1))
        marks = [len(w.acked) for w in writers]
        wait_until(lambda: all(len(w.acked) >= m + 5 or w.crash for w, m in zip(writers, marks)),
                   30, "CHAOS_SEED=%d: 5 more acknowledged creates per writer after recovery "
                   "(%s)" % (seed, [w.summary() for w in writers]))
    finally:
        for w in writers:
            w.halt.set()
    for w in writers:
        w.stop()
        print(w.summary())

    tree = assert_identical_trees(e, seed)
    try:
        acked, applied, not_applied = check_load(tree, writers)
        counters = check_counters(tree, writers)
    except AssertionError as ex:
        raise AssertionError("CHAOS_SEED=%d: %s" % (seed, ex)) from None
    print("identical trees on all %d members (%d nodes); %d acked creates, of the unknown ones "
          "%d applied, %d not; counters (version, acked, attempted): %s" % (
              n, len(tree), acked, applied, not_applied, counters))
    assert acked > 0


# ------------------------------------------------------------ the checker itself

def test_counter_checker_catches_lost_and_doubled_sets():
    """check_counters on made-up trees (no ensemble)."""
    class W:
        def __init__(self, wid, sets):
            self.wid, self.sets = wid, sets

    def tree(v, data, mzxid, others=(0,) * (COUNTERS - 1)):
        t = {counter_path(0): (data, {"version": v, "mzxid": mzxid})}
        for j, ov in enumerate(others, 1):
            t[counter_path(j)] = (b"init", {"version": ov, "mzxid": 1})
        return t
    w = W("w1", [(1, 0, "w1:set:1", 1, 0x10, None), (2, 0, "w1:set:2", None, None, "Loss"),
                 (3, 0, "w1:set:3", 3, 0x30, None)])
    assert check_counters(tree(3, b"w1:set:3", 0x30), [w])[0] == (3, 2, 3)
    bad = {
        "lost": tree(1, b"w1:set:1", 0x10),
        "doubled": tree(4, b"w1:set:3", 0x40),
        "unsent data": tree(3, b"w9:set:1", 0x30),
        "stale data": tree(3, b"w1:set:2", 0x30),
    }
    for name, t in bad.items():
        with pytest.raises(AssertionError):
            check_counters(t, [w])
            raise RuntimeError("check_counters passed a %s counter" % name)
    w_rev = W("w1", [(1, 0, "w1:set:1", 2, 0x20, None), (2, 0, "w1:set:2", 1, 0x10, None)])
    with pytest.raises(AssertionError):
        check_counters(tree(2, b"w1:set:1", 0x20), [w_rev])
    w_dup = W("w1", [(1, 0, "w1:set:1", 1, 0x10, None)])
    w_dup2 = W("w2", [(1, 0, "w2:set:1", 1, 0x11, None)])
    with pytest.raises(AssertionError):
        check_counters(tree(2, b"w2:set:1", 0x11), [w_dup, w_dup2])
