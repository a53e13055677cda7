"""The ordering rules of DESIGN.md, hammered over the raw wire (zkraw).

    ZK_ADDR=host:port /usr/bin/python3 -m pytest tests/integration/test_ordering.py -v

Each test is named for the rule it checks and fails when the server breaks
that rule:

  1. Replies to one session leave in the order its requests arrived.
  2. A session reads its own writes.
  3. A watcher sees the event before any reply that shows the new state.
  4. Registering a watch and reading the node are atomic against the change
     (no change slips between them unseen: never old data and no event).

Rules 3 and 4 need watches and carry the `needs_watches` marker, so run.sh
can deselect them (ZKD_NO_WATCHES=1) while zkd has no watches.

Requests are pipelined (sent without waiting) across several sessions at
once so that the server has reads and writes of one session in flight
together -- which is where a staged server could reorder them.  All waits
have deadlines, every test has a SIGALRM watchdog, and the stress loops are
bounded both in rounds and in time (ZK_ORDERING_SCALE multiplies the
rounds, for longer soak runs).  Every test works under its own top-level
znode, removed at the end.  Validated against Apache ZooKeeper 3.8.
"""
import collections
import os
import random
import threading
import time
import uuid

import pytest

import zkraw as z

ZK_ADDR = os.environ.get("ZK_ADDR", "127.0.0.1:2181")
SCALE = float(os.environ.get("ZK_ORDERING_SCALE", "1"))
TEST_TIMEOUT = 120                      # s per test (SIGALRM watchdog)
EVENT_GRACE = 5.0                       # s an owed watch event may take
SEED = int(os.environ.get("ZK_ORDERING_SEED", "0")) or random.randrange(1, 1 << 30)

needs_watches = pytest.mark.needs_watches


def rounds(n):
    return max(1, int(n * SCALE))


# ---------------------------------------------------------------- fixtures

# watchdog (per-test SIGALRM, TEST_TIMEOUT above): conftest.py


@pytest.fixture
def rng(request):
    seed = SEED + sum(map(ord, request.node.name))
    print("random seed for %s: %d (ZK_ORDERING_SEED=%d)" % (request.node.name, seed, SEED))
    return random.Random(seed)


@pytest.fixture
def sessions():
    """Factory for raw sessions; all are closed at teardown."""
    made = []

    def make():
        c = z.ZKRaw(ZK_ADDR, timeout_ms=30000)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close(timeout=5)


@pytest.fixture
def root(request):
    path = "/itest-ordering-%s-%s" % (request.node.name.split("[")[0][5:40],
                                      uuid.uuid4().hex[:8])
    c = z.ZKRaw(ZK_ADDR, timeout_ms=30000)
    try:
        c.ok(z.create(path))
        yield path
        z.rmr(c, path, timeout=60)
        assert c.call(z.exists(path)).err == z.NONODE
    finally:
        c.close()


def run_threads(fns):
    """Runs the callables concurrently; re-raises the first failure."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TEST_TIMEOUT)
        assert not t.is_alive(), "a session thread did not finish"
    if errors:
        raise errors[0]


# ---------------------------------------------------------------- rule 1

def mixed_requests(rng, base, n):
    """n reads and writes on base's subtree, many of which fail (NoNode,
    NodeExists, BadVersion, NotEmpty), plus sync and ping."""
    names = [base + "/n%d" % j for j in range(12)]
    out = []
    for _ in range(n):
        p = rng.choice(names)
        k = rng.randrange(15)
        if k == 0:
            out.append(z.create(p, b"x" * rng.randrange(0, 200)))
        elif k == 1:
            out.append(z.delete(p))                          # OK, NoNode, NotEmpty
        elif k == 2:
            out.append(z.set_data(p, os.urandom(rng.randrange(0, 100))))
        elif k == 3:
            out.append(z.set_data(p, b"v", version=99999))   # BadVersion / NoNode
        elif k == 4:
            out.append(z.get_data(p))
        elif k == 5:
            out.append(z.exists(p))
        elif k == 6:
            out.append(z.exists(base + "/missing"))          # NoNode
        elif k == 7:
            out.append(z.get_data(base + "/missing/deeper"))  # NoNode
        elif k == 8:
            out.append(z.get_children(base))
        elif k == 9:
            out.append(z.get_children2(p))
        elif k == 10:
            out.append(z.sync(base))
        elif k == 11:
            out.append(z.ping())                             # xid -2
        elif k == 12:
            out.append(z.multi([z.create(p + "/m"), z.delete(p + "/m")]))
        elif k == 13:
            out.append(z.create(p + "/child"))               # NoNode if p is missing
        else:
            out.append(z.get_acl(p))
    return out


EXPECTED_ERRS = {z.OK, z.NONODE, z.NODEEXISTS, z.BADVERSION, z.NOTEMPTY}


def test_rule1_replies_leave_in_request_order(root, sessions, rng):
    n_sessions, per_round, n_rounds = 6, 500, rounds(3)
    conns = [sessions() for _ in range(n_sessions)]
    bases = []
    for k, c in enumerate(conns):
        bases.append(root + "/s%d" % k)
        c.ok(z.create(bases[-1]))
    plans = [[mixed_requests(random.Random(rng.random()), bases[k], per_round)
              for _ in range(n_rounds)] for k in range(n_sessions)]

    def session(k):
        c = conns[k]
        for rnd in range(n_rounds):
            reqs = plans[k][rnd]
            mark = len(c.sent)
            reps = z.pipeline(c, reqs, timeout=60)
            sent = c.sent[mark:]
            got = [r.xid for r in reps]
            if got != sent:
                i = next(i for i, (a, b) in enumerate(zip(got, sent)) if a != b)
                pytest.fail("session %d round %d: reply #%d has xid %d but request #%d "
                            "(the next one sent) had xid %d; sent %s..., got %s..."
                            % (k, rnd, i, got[i], i, sent[i], sent[max(0, i - 3):i + 4],
                               got[max(0, i - 3):i + 4]))
            bad = [(r.xid, r.op, r.err) for r in reps if r.err not in EXPECTED_ERRS]
            assert not bad, "unexpected error codes (xid, op, err): %s" % bad[:5]
            assert not c.events, "unexpected watch events: %s" % list(c.events)[:3]

    run_threads([lambda k=k: session(k) for k in range(n_sessions)])


# ---------------------------------------------------------------- rule 2

def in_send_order(c, reqs):
    """Pipelines reqs; returns the replies matched to them by xid (so that
    a reordering shows up as what it breaks, not as a decoding error)."""
    mark = len(c.sent)
    by_xid = {r.xid: r for r in z.pipeline(c, reqs, timeout=60)}
    return [by_xid[x] for x in c.sent[mark:]]


def test_rule2_session_reads_its_own_writes(root, sessions):
    n_sessions, pairs, creates = 4, rounds(400), rounds(150)
    conns = [sessions() for _ in range(n_sessions)]

    def session(k):
        c = conns[k]
        base = root + "/rw%d" % k
        node = base + "/v"
        c.ok(z.create(base))
        c.ok(z.create(node, b"initial"))

        # setData(v_i) immediately followed by a read of the same node
        reqs, kinds = [], []
        for i in range(pairs):
            reqs.append(z.set_data(node, b"s%d-v%d" % (k, i)))
            kinds.append(("set", i))
            if i % 3 == 2:
                reqs.append(z.exists(node))
                kinds.append(("exists", i))
            reqs.append(z.get_data(node))
            kinds.append(("get", i))
        reps = in_send_order(c, reqs)
        last_set = None
        for (kind, i), rep in zip(kinds, reps):
            where = "session %d, write #%d" % (k, i)
            assert rep.err == z.OK, "%s: %s failed with %d" % (where, kind, rep.err)
            if kind == "set":
                last_set = rep
                continue
            stat = rep.value[1] if kind == "get" else rep.value
            if kind == "get":
                assert rep.value[0] == b"s%d-v%d" % (k, i), (
                    "%s: getData right after setData(%r) returned %r"
                    % (where, b"s%d-v%d" % (k, i), rep.value[0]))
            assert stat.version == last_set.value.version, (
                "%s: %s shows version %d, the write made version %d"
                % (where, kind, stat.version, last_set.value.version))
            assert stat.mzxid == last_set.value.mzxid, (
                "%s: %s shows mzxid %#x, the write's is %#x"
                % (where, kind, stat.mzxid, last_set.value.mzxid))
            assert rep.zxid >= last_set.zxid, (
                "%s: %s reply header zxid %#x is behind the write's %#x"
                % (where, kind, rep.zxid, last_set.zxid))

        # create, then read it at once; delete, then read it at once
        reqs, kinds = [], []
        for i in range(creates):
            p = base + "/c%d" % i
            reqs += [z.create2(p, b"d%d" % i), z.exists(p), z.get_children(base),
                     z.get_data(p), z.delete(p), z.exists(p), z.get_children2(base)]
            kinds += [(x, i) for x in ("create", "exists", "children", "get",
                                       "delete", "exists-gone", "children-gone")]
        reps = in_send_order(c, reqs)
        created = None
        for (kind, i), rep in zip(kinds, reps):
            name = "c%d" % i
            where = "session %d, node %s: %s" % (k, name, kind)
            if kind == "exists-gone":
                assert rep.err == z.NONODE, "%s: deleted node still exists (err %d)" % (where, rep.err)
                continue
            assert rep.err == z.OK, "%s failed with %d" % (where, rep.err)
            if kind == "create":
                created = rep
            elif kind == "exists":
                assert rep.value.czxid == created.value[1].czxid, where
                assert rep.zxid >= created.zxid, where
            elif kind == "children":
                assert name in rep.value, "%s: %s missing from %s" % (where, name, rep.value)
            elif kind == "get":
                assert rep.value[0] == b"d%d" % i, where
            elif kind == "children-gone":
                assert name not in rep.value[0], "%s: %s still listed" % (where, name)

    run_threads([lambda k=k: session(k) for k in range(n_sessions)])


# ---------------------------------------------------------------- rule 3

def stat_of(rep):
    """The Stat in an OK reply to exists/getData/getChildren2/setData."""
    v = rep.value
    return v if isinstance(v, z.Stat) else v[1]


# Each scenario: how the node starts, the read that sets the watch, the
# change, a read that shows whether the change is visible, and the event
# the change owes the watcher.
SCENARIOS = {
    # name: (node exists at start, watch read, change, poll read, is_new, event)
    "getData-setData": (True, lambda n: z.get_data(n, True), lambda n: z.set_data(n, b"new"),
                        lambda n: z.get_data(n),
                        lambda r: r.err == z.OK and stat_of(r).version >= 1, z.EV_DATA_CHANGED),
    "exists-setData": (True, lambda n: z.exists(n, True), lambda n: z.set_data(n, b"new"),
                       lambda n: z.exists(n),
                       lambda r: r.err == z.OK and stat_of(r).version >= 1, z.EV_DATA_CHANGED),
    "getChildren-create": (True, lambda n: z.get_children(n, True), lambda n: z.create(n + "/c"),
                           lambda n: z.get_children(n),
                           lambda r: r.err == z.OK and "c" in r.value, z.EV_CHILDREN_CHANGED),
    "exists-create": (False, lambda n: z.exists(n, True), lambda n: z.create(n),
                      lambda n: z.exists(n),
                      lambda r: r.err == z.OK, z.EV_CREATED),
    "getData-delete": (True, lambda n: z.get_data(n, True), lambda n: z.delete(n),
                       lambda n: z.exists(n),
                       lambda r: r.err == z.NONODE, z.EV_DELETED),
}


def describe(conn, upto=12):
    return "; ".join(
        ("event %s %s" % (z.EVENT_NAMES.get(f.type, f.type), f.path)) if kind == "event"
        else ("reply xid %d err %d" % (f.xid, f.err)) for kind, f in conn.log[-upto:])


def late_event(conn, pred, timeout):
    """For failure messages: does the owed event come later, or never?"""
    try:
        ev = conn.wait_event(pred, time.monotonic() + timeout)
        return "it arrived later (frame #%d)" % ev.seq
    except z.Timeout:
        return "it never arrived (waited %.0fs)" % timeout
    except z.ConnectionClosed:
        return "the connection closed"


@needs_watches
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rule3_watch_event_precedes_reply_showing_change(root, sessions, rng, scenario):
    """A watches, B changes, A polls with pipelined reads: the first reply on
    A that shows the change must come after the event on A's wire."""
    exists_at_start, watch, change, poll, is_new, ev_type = SCENARIOS[scenario]
    a, b = sessions(), sessions()
    window = 6
    for i in range(rounds(60)):
        n = root + "/r%d" % i
        if exists_at_start:
            b.ok(z.create(n, b"old"))
        before = a.call(watch(n))
        assert not is_new(before), "round %d: the watch read already shows the change" % i
        a.events.clear()
        deadline = time.monotonic() + 10
        outstanding = collections.deque()
        b_first = rng.random() < 0.5
        if b_first:
            bx = b.send(change(n))
        for _ in range(window):
            outstanding.append(a.send(poll(n), flush=False))
        a.flush()
        if not b_first:
            bx = b.send(change(n))
        event = None
        shown = None
        while shown is None:
            f = a.next(deadline)
            if isinstance(f, z.Event):
                if f.type == ev_type and f.path == n and event is None:
                    event = f
                continue
            assert f.xid == outstanding.popleft(), "replies out of order on A"
            if is_new(f):
                shown = f
            else:
                outstanding.append(a.send(poll(n)))
        if event is None:
            why = late_event(a, lambda ev: ev.type == ev_type and ev.path == n, EVENT_GRACE)
            pytest.fail("round %d (%s): reply xid %d on A shows the change of %s, but the %s "
                        "event had not arrived before it; %s. A's wire: %s"
                        % (i, scenario, shown.xid, n, z.EVENT_NAMES[ev_type], why, describe(a)))
        assert event.seq < shown.seq
        while outstanding:                          # drain the rest of the window
            f = a.read_reply(deadline)
            assert f.xid == outstanding.popleft(), "replies out of order on A"
        assert b.wait_reply(bx, deadline).err == z.OK
        extra = [ev for ev in a.events if ev.path == n and ev is not event]
        assert not extra, "round %d: more than one event for one change: %s" % (i, extra)
        a.events.clear()


@needs_watches
@pytest.mark.parametrize("pipelined", [False, True], ids=["watch-then-change", "pipelined"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rule3_own_change_reply_follows_own_watch_event(root, sessions, scenario, pipelined):
    """A watches and makes the change itself: the reply to its own change
    (which shows the new state) must come after the event.  `pipelined`
    sends the watch read, the change and a read together without waiting."""
    exists_at_start, watch, change, poll, is_new, ev_type = SCENARIOS[scenario]
    a = sessions()
    for i in range(rounds(40)):
        n = root + "/o%d" % i
        if exists_at_start:
            a.ok(z.create(n, b"old"))
        deadline = time.monotonic() + 10
        a.events.clear()
        if pipelined:
            wx = a.send(watch(n), flush=False)
        else:
            assert not is_new(a.call(watch(n)))
        cx = a.send(change(n), flush=False)
        px = a.send(poll(n))
        if pipelined:
            w = a.read_reply(deadline)
            assert w.xid == wx and not is_new(w), (
                "round %d: the watch read, sent before the change, shows the change" % i)
        c = a.read_reply(deadline)
        assert c.xid == cx and c.err == z.OK, "round %d: change failed: %s" % (i, c)
        p = a.read_reply(deadline)
        assert p.xid == px and is_new(p), "round %d: read after own change: %s" % (i, p)
        evs = [ev for ev in a.events if ev.type == ev_type and ev.path == n]
        if not evs:
            why = late_event(a, lambda ev: ev.type == ev_type and ev.path == n, EVENT_GRACE)
            pytest.fail("round %d (%s): the reply to A's own change of %s came before the %s "
                        "event for A's watch; %s. A's wire: %s"
                        % (i, scenario, n, z.EVENT_NAMES[ev_type], why, describe(a)))
        assert evs[0].seq < c.seq
        assert len(evs) == 1, "round %d: %d events for one change" % (i, len(evs))


# ---------------------------------------------------------------- rule 4

RACES = {
    # name: (node exists at start, watch read, concurrent change, read shows the change, event)
    "getData-vs-setData": (True, lambda n: z.get_data(n, True), lambda n: z.set_data(n, b"new"),
                           lambda r: r.err == z.OK and stat_of(r).version >= 1, z.EV_DATA_CHANGED),
    "exists-vs-setData": (True, lambda n: z.exists(n, True), lambda n: z.set_data(n, b"new"),
                          lambda r: r.err == z.OK and stat_of(r).version >= 1, z.EV_DATA_CHANGED),
    "getChildren-vs-create": (True, lambda n: z.get_children(n, True), lambda n: z.create(n + "/c"),
                              lambda r: r.err == z.OK and "c" in r.value, z.EV_CHILDREN_CHANGED),
    "exists-vs-create": (False, lambda n: z.exists(n, True), lambda n: z.create(n),
                         lambda r: r.err == z.OK, z.EV_CREATED),
}


@needs_watches
@pytest.mark.parametrize("race", sorted(RACES))
def test_rule4_watch_registration_atomic_with_read(root, sessions, rng, race):
    """A reads with watch=true while B changes the same node, on thousands
    of fresh nodes.  For every node: either A's read shows the change, or A
    gets the event.  Old data and no event is a lost event."""
    exists_at_start, watch, change, shows_change, ev_type = RACES[race]
    a, b, setup = sessions(), sessions(), sessions()
    batch, target, budget = 250, rounds(3000), 20.0 * SCALE
    t_end = time.monotonic() + budget
    owed = {}             # path -> A's reply: it showed the old state, so an event is owed
    saw_new = {}          # path -> A's reply: it already showed the change
    done = bno = 0
    while done < target and (done < batch * 2 or time.monotonic() < t_end):
        nodes = ["%s/b%d-%d" % (root, bno, i) for i in range(batch)]
        bno += 1
        if exists_at_start:
            reps = z.pipeline(setup, [z.create(n) for n in nodes], timeout=60)
            assert all(r.err == z.OK for r in reps)
        # B runs `lead` rounds ahead of A (negative: behind); sends are
        # flushed in random small groups so the two arrive interleaved.  A
        # long lead now and then makes sure some reads come after the change.
        lead = rng.randrange(-8, 16) if bno % 3 else rng.randrange(16, batch)
        ax, bx, b_early = [], [], []
        for j in range(min(0, lead), batch + max(0, lead)):
            if j - lead == 0 and lead >= 16:
                # a long lead: let B's first changes land before A starts, so
                # the "new state" outcome occurs even on a slow server (TSan)
                # whose pipeline lags far behind its inline reads
                b.flush()
                early_deadline = time.monotonic() + 60
                b_early = [b.read_reply(early_deadline) for _ in bx]
            pair = []
            if 0 <= j < batch:
                pair.append(lambda j=j: bx.append(b.send(change(nodes[j]), flush=False)))
            if 0 <= j - lead < batch:
                pair.append(lambda j=j: ax.append(a.send(watch(nodes[j - lead]), flush=False)))
            rng.shuffle(pair)
            for fn in pair:
                fn()
            if rng.random() < 0.4:
                a.flush()
                b.flush()
        a.flush()
        b.flush()
        deadline = time.monotonic() + 60
        a_reps = [a.read_reply(deadline) for _ in ax]
        b_reps = b_early + [b.read_reply(deadline) for _ in bx[len(b_early):]]
        assert [r.xid for r in a_reps] == ax and [r.xid for r in b_reps] == bx
        bad = [r for r in b_reps if r.err != z.OK]
        assert not bad, "B's changes failed: %s" % bad[:3]
        for n, r in zip(nodes, a_reps):
            assert r.err in (z.OK, z.NONODE), "A's read of %s failed: %s" % (n, r)
            if shows_change(r):
                saw_new[n] = r
            else:
                owed[n] = r
        done += batch

    # Every owed event must arrive, once.  Where A's read already showed the
    # change, ZooKeeper sends no event (its read and registration are one
    # step); an event that comes *before* that reply is harmless (the client
    # just reads again), one that comes after it breaks rule 3 as well.
    got, early, late, unexpected = {}, {}, [], []
    deadline = time.monotonic() + EVENT_GRACE

    def take(ev):
        if ev.type == ev_type and ev.path in owed and ev.path not in got:
            got[ev.path] = ev
        elif ev.type == ev_type and ev.path in saw_new and ev.path not in early:
            if ev.seq < saw_new[ev.path].seq:
                early[ev.path] = ev
            else:
                late.append((ev, saw_new[ev.path]))
        else:
            unexpected.append(ev)

    while a.events:
        take(a.events.popleft())
    while len(got) < len(owed):
        try:
            take(a.wait_event(deadline=deadline))
        except z.Timeout:
            break
    a.call(z.ping())              # whatever the server queued for A before this, is here now
    while a.events:
        take(a.events.popleft())
    print("%s: %d rounds: A's read showed the old state in %d (event owed), the new state "
          "in %d (%d of them preceded by an event for the change)"
          % (race, done, len(owed), len(saw_new), len(early)))
    lost = sorted(set(owed) - set(got))
    assert not lost, (
        "%d of %d rounds lost the event: A's watch read showed the old state and no %s event "
        "arrived within %.0fs (e.g. %s: %s)" % (len(lost), len(owed), z.EVENT_NAMES[ev_type],
                                                EVENT_GRACE, lost[0], owed[lost[0]]))
    assert not late, (
        "%d events came after a reply of A that already showed their change (the watch was "
        "registered in time to fire, so the event had to come first), e.g. reply %s then %s"
        % (len(late), late[0][1], late[0][0]))
    assert not unexpected, "unexpected or duplicate events: %s" % unexpected[:3]
    # The race must actually have been run both ways, or this proved nothing.
    assert owed and saw_new, (
        "the stress produced only one outcome (old %d, new %d): the reads and the changes "
        "did not overlap" % (len(owed), len(saw_new)))
