"""kazoo's recipes (Debian's python3-kazoo) against a ZooKeeper-compatible
server: the coordination patterns Python applications build on.

Target: ZK_ADDR=host:port (default 127.0.0.1:2181).  Run with the system
interpreter, which has python3-kazoo:

    ZK_ADDR=127.0.0.1:2181 /usr/bin/python3 -m pytest -p no:cacheprovider \
        tests/integration/test_kazoo_recipes.py -v

Every participant is its own KazooClient (its own session), every test works
under its own unique top-level znode and removes it, and every wait polls a
condition against a deadline; a SIGALRM watchdog bounds each test.  The only
sleeps are short "work" inside critical sections, which widen the window in
which an overlap would show.
"""
import os
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout, NoNodeError

# kazoo 2.8's recipes call Event.isSet(): not ours to fix, and only noise
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ZK_ADDR = os.environ.get("ZK_ADDR", "127.0.0.1:2181")
TEST_TIMEOUT = 30          # seconds, per test (SIGALRM watchdog)
WAIT = 15                  # seconds, default deadline of a single wait
START_TIMEOUT = 15         # seconds for a client to connect
# Contending recipes (Counter) retry on BadVersion through client.retry;
# kazoo's default gives up after one retry.
CONTENTION_RETRY = dict(max_tries=-1, delay=0.005, backoff=1.5, max_delay=0.1)


def wait_for(cond, what, timeout=WAIT):
    """Polls cond() until it returns a truthy value; fails the test at the
    deadline.  `what` may be a callable, evaluated then (to show state)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s"
                        % (timeout, what() if callable(what) else what))
        time.sleep(0.005)


def kids(client, path):
    """Sorted children of path; [] if it does not exist (yet)."""
    try:
        return sorted(client.get_children(path))
    except NoNodeError:
        return []


class Threads:
    """Runs functions on daemon threads; join() re-raises the first failure
    (pytest's own assertion errors included) in the test's thread."""

    def __init__(self):
        self.threads = []
        self.errors = []

    def start(self, fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 - reported by join()
                self.errors.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def join(self, timeout=WAIT, what="worker threads"):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.errors:
            raise self.errors[0]
        alive = sum(t.is_alive() for t in self.threads)
        if alive:
            pytest.fail("%d of %s still running after %.1fs" % (alive, what, timeout))


class Violations:
    """Invariant breaches seen by callbacks/threads, checked by the test."""

    def __init__(self):
        self.items = []
        self._lock = threading.Lock()

    def add(self, msg):
        with self._lock:
            self.items.append(msg)

    def check(self):
        with self._lock:
            assert not self.items, self.items


# --------------------------------------------------------------------------
# fixtures


# watchdog (per-test SIGALRM, TEST_TIMEOUT above): conftest.py


@pytest.fixture
def clients():
    """Factory for started clients, each with its own session; all are
    stopped at teardown."""
    made = []

    def make(**kw):
        c = KazooClient(hosts=ZK_ADDR, **kw)
        made.append(c)
        c.start(timeout=START_TIMEOUT)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:  # noqa: BLE001 - best effort teardown
            pass


@pytest.fixture
def zk(clients):
    """The test's admin client: sets up, inspects, cleans up."""
    return clients()


@pytest.fixture
def base(request, zk):
    """This test's own top-level znode, removed afterwards."""
    path = "/kazoo-recipes-%s-%s" % (request.node.name.replace("test_", ""), uuid.uuid4().hex[:8])
    zk.create(path)
    yield path
    try:
        zk.delete(path, recursive=True)
    except NoNodeError:
        pass


# --------------------------------------------------------------------------
# Lock


def test_lock_mutual_exclusion_under_contention(clients, zk, base):
    """4 clients x 10 read-modify-write increments of a counter znode under
    one Lock: never two holders, no lost update (the write is conditional on
    the version read), final value and version exact, no lock node left."""
    n_clients, iters = 4, 10
    lock_path, counter = base + "/lock", base + "/counter"
    zk.create(counter, b"0")
    holders = [0]
    guard = threading.Lock()
    bad = Violations()

    def worker(i):
        c = clients()
        lock = c.Lock(lock_path, "worker-%d" % i)
        for _ in range(iters):
            assert lock.acquire(timeout=WAIT), "acquire timed out"
            try:
                with guard:
                    holders[0] += 1
                    if holders[0] != 1:
                        bad.add("%d holders at once" % holders[0])
                data, stat = c.get(counter)
                time.sleep(0.002)   # work inside the critical section
                c.set(counter, str(int(data) + 1).encode(), version=stat.version)
                with guard:
                    holders[0] -= 1
            finally:
                lock.release()

    ts = Threads()
    for i in range(n_clients):
        ts.start(worker, i)
    ts.join(what="lock workers")
    bad.check()
    data, stat = zk.get(counter)
    assert int(data) == n_clients * iters
    assert stat.version == n_clients * iters
    assert zk.get_children(lock_path) == []


def test_lock_handover_and_session_loss(clients, zk, base):
    """A held lock refuses others (non-blocking and timed acquire); waiters
    queue in order behind the holder; release hands it to the next in line;
    a holder whose session closes loses the lock to the next waiter."""
    path = base + "/lock"
    a, b, c = clients(), clients(), clients()
    la, lb, lc = a.Lock(path, "A"), b.Lock(path, "B"), c.Lock(path, "C")
    assert la.acquire(timeout=WAIT)
    assert la.is_acquired
    assert lb.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        lb.acquire(timeout=0.3)
    assert zk.get_children(path) and len(zk.get_children(path)) == 1, \
        "a failed acquire left its node behind"

    got = []
    ts = Threads()
    ts.start(lambda: (lb.acquire(timeout=WAIT) and got.append("B")))
    wait_for(lambda: la.contenders() == ["A", "B"], "B to queue behind A")
    ts.start(lambda: (lc.acquire(timeout=WAIT) and got.append("C")))
    wait_for(lambda: la.contenders() == ["A", "B", "C"], "C to queue behind B")
    assert got == []

    la.release()
    wait_for(lambda: got == ["B"], "the lock to pass from A to B")
    assert lb.is_acquired and not lc.is_acquired
    assert lc.contenders() == ["B", "C"]

    b.stop()                # B's session closes while it holds the lock
    wait_for(lambda: got == ["B", "C"], "the lock to pass to C when B's session closed")
    assert lc.contenders() == ["C"]
    lc.release()
    ts.join(what="lock waiters")
    assert zk.get_children(path) == []


# --------------------------------------------------------------------------
# Election


def test_election_one_leader_reelected_when_it_leaves(clients, zk, base):
    """3 candidates: exactly one leader at a time, in the order they joined;
    when the leader leaves -- its session closes, or it returns from its
    leadership function -- the next candidate is elected."""
    path = base + "/election"
    n = 3
    leading = []            # leaders currently in their leadership function
    history = []
    guard = threading.Lock()
    resign = [threading.Event() for _ in range(n)]
    bad = Violations()
    cs = [clients() for _ in range(n)]
    elections = [cs[i].Election(path, "cand-%d" % i) for i in range(n)]

    def lead(i):
        with guard:
            if leading:
                bad.add("cand-%d elected while %s led" % (i, leading))
            leading.append(i)
            history.append(i)
        resign[i].wait(WAIT)
        with guard:
            if i in leading:
                leading.remove(i)

    def candidate(i):
        try:
            elections[i].run(lead, i)
        except Exception:   # noqa: BLE001 - the client of cand-0 is stopped under it
            if i != 0:
                raise

    ts = Threads()
    for i in range(n):
        ts.start(candidate, i)
        # join one at a time, so the order of the contenders is known
        wait_for(lambda: len(kids(zk, path)) == i + 1, "cand-%d to join" % i)
    wait_for(lambda: history == [0], "cand-0 to be elected")
    assert elections[2].contenders() == ["cand-0", "cand-1", "cand-2"]

    # the leader's session closes (it stops leading first, as a real leader
    # would on losing its session)
    with guard:
        leading.remove(0)
    cs[0].stop()
    resign[0].set()
    wait_for(lambda: history == [0, 1], "cand-1 to be elected after cand-0's session closed")
    assert elections[2].contenders() == ["cand-1", "cand-2"]

    # the leader returns from its leadership function
    resign[1].set()
    wait_for(lambda: history == [0, 1, 2], "cand-2 to be elected after cand-1 resigned")
    assert elections[2].contenders() == ["cand-2"]
    resign[2].set()
    ts.join(what="candidates")
    bad.check()
    assert zk.get_children(path) == []


# --------------------------------------------------------------------------
# Counter


def test_counter_concurrent_increments_exact(clients, zk, base):
    """4 clients x 25 increments of one Counter: the final value is exact
    and every increment saw a distinct value (1..100), i.e. each
    version-conditional set applied exactly once."""
    path = base + "/counter"
    n_clients, iters = 4, 25
    seen = []
    guard = threading.Lock()

    def worker():
        counter = clients(command_retry=CONTENTION_RETRY).Counter(path)
        for _ in range(iters):
            counter += 1
            with guard:
                seen.append(counter.post_value)

    ts = Threads()
    for _ in range(n_clients):
        ts.start(worker)
    ts.join(what="counter workers")
    assert zk.Counter(path).value == n_clients * iters
    assert sorted(seen) == list(range(1, n_clients * iters + 1))

    counter = zk.Counter(path)
    counter -= 30
    assert (counter.pre_value, counter.post_value) == (100, 70)
    assert zk.Counter(path).value == 70

    fc = zk.Counter(base + "/float", default=0.0)
    fc += 2.5
    fc -= 1.0
    assert zk.Counter(base + "/float", default=0.0).value == 1.5


# --------------------------------------------------------------------------
# Barrier / DoubleBarrier


def test_barrier_releases_waiters_when_removed(clients, zk, base):
    """Waiters in 3 other sessions block while the barrier exists (a timed
    wait returns False) and all return True once it is removed -- not
    before."""
    path = base + "/barrier"
    zk.Barrier(path).create()
    removed = threading.Event()
    released = []
    bad = Violations()
    blocked = threading.Barrier(4)

    def waiter(i):
        b = clients().Barrier(path)
        if b.wait(timeout=0.2):
            bad.add("waiter-%d passed a barrier that was set" % i)
        blocked.wait(WAIT)
        ok = b.wait(timeout=WAIT)
        if ok and not removed.is_set():
            bad.add("waiter-%d released before the barrier was removed" % i)
        released.append((i, ok))

    ts = Threads()
    for i in range(3):
        ts.start(waiter, i)
    blocked.wait(WAIT)
    bad.check()
    assert released == []
    removed.set()
    assert zk.Barrier(path).remove() is True
    ts.join(what="barrier waiters")
    bad.check()
    assert sorted(released) == [(0, True), (1, True), (2, True)]
    assert zk.Barrier(path).wait(timeout=0.01) is True


def test_double_barrier_enter_and_leave_together(clients, zk, base):
    """3 members: nobody gets past enter() before all 3 have entered, and
    nobody gets past leave() before all 3 have left; no member node stays."""
    path = base + "/double"
    n = 3
    entering, leaving = [0], [0]
    guard = threading.Lock()
    bad = Violations()

    def member(i):
        db = clients().DoubleBarrier(path, n, identifier="member-%d" % i)
        with guard:
            entering[0] += 1
        db.enter()
        assert db.participating, "member-%d failed to enter" % i
        with guard:
            if entering[0] != n:
                bad.add("member-%d passed enter() with %d of %d members" % (i, entering[0], n))
            leaving[0] += 1
        db.leave()
        with guard:
            if leaving[0] != n:
                bad.add("member-%d passed leave() with %d of %d members" % (i, leaving[0], n))

    ts = Threads()
    ts.start(member, 0)
    ts.start(member, 1)
    # the third member comes only once the first two are inside, waiting
    wait_for(lambda: len(kids(zk, path)) == 2, "2 members to enter")
    assert not zk.exists(path + "/ready")
    ts.start(member, 2)
    ts.join(what="barrier members")
    bad.check()
    assert zk.get_children(path) == []


# --------------------------------------------------------------------------
# Queue / LockingQueue


def test_queue_fifo_priority_exactly_once(clients, zk, base):
    """Items put by one client are taken by another in FIFO order within a
    priority, lower priority values first; then two competing consumers take
    every item exactly once."""
    path = base + "/queue"
    producer, consumer = clients().Queue(path), clients().Queue(path)
    items = [b"item-%03d" % i for i in range(30)]
    for it in items:
        producer.put(it)
    producer.put(b"urgent-1", priority=1)
    producer.put(b"urgent-2", priority=1)
    producer.put(b"later", priority=500)
    assert len(consumer) == 33
    got = []
    while True:
        v = consumer.get()
        if v is None:
            break
        got.append(v)
    assert got == [b"urgent-1", b"urgent-2"] + items + [b"later"]
    assert len(consumer) == 0

    many = [b"job-%03d" % i for i in range(100)]
    for it in many:
        producer.put(it)
    taken = [[], []]

    def consume(k):
        q = clients().Queue(path)
        while True:
            v = q.get()
            if v is None:
                return
            taken[k].append(v)

    ts = Threads()
    ts.start(consume, 0)
    ts.start(consume, 1)
    ts.join(what="consumers")
    everything = taken[0] + taken[1]
    assert len(everything) == len(set(everything)), "an item was consumed twice"
    assert sorted(everything) == many
    assert zk.get_children(path) == []


def test_locking_queue_exactly_once(clients, zk, base):
    """LockingQueue: a taken entry is invisible to other consumers until it
    is consumed; release() or the taker's session closing puts it back; two
    competing consumers process every entry exactly once."""
    path = base + "/lq"
    producer = clients().LockingQueue(path)
    producer.put(b"first")
    producer.put_all([b"second", b"third"])          # one multi transaction
    q1, q2 = clients().LockingQueue(path), clients().LockingQueue(path)
    c3 = clients()
    q3 = c3.LockingQueue(path)

    assert q1.get(timeout=WAIT) == b"first"
    assert q1.holds_lock()
    assert q2.get(timeout=WAIT) == b"second", "a locked entry was handed out again"
    assert q3.get(timeout=WAIT) == b"third"
    assert len(producer) == 3, "entries are only removed by consume()"

    assert q2.release()                              # back in the queue
    c3.stop()                                        # "third" is unlocked by the session close
    q4 = clients().LockingQueue(path)
    got = [q4.get(timeout=WAIT)]
    assert q4.consume()
    got.append(q4.get(timeout=WAIT))
    assert q4.consume()
    assert sorted(got) == [b"second", b"third"]
    assert q1.consume()
    assert len(producer) == 0
    assert q4.get(timeout=0.2) is None

    many = [b"job-%03d" % i for i in range(60)]
    producer.put_all(many[:30])
    for it in many[30:]:
        producer.put(it)
    done = [[], []]

    def worker(k):
        q = clients().LockingQueue(path)
        while True:
            v = q.get(timeout=0.5)
            if v is None:
                if len(q) == 0:
                    return
                continue
            done[k].append(v)
            assert q.consume(), "consume() of a held entry failed"

    ts = Threads()
    ts.start(worker, 0)
    ts.start(worker, 1)
    ts.join(what="locking-queue consumers")
    everything = done[0] + done[1]
    assert len(everything) == len(set(everything)), "an entry was processed twice"
    assert sorted(everything) == many
    assert zk.get_children(path + "/entries") == []
    assert zk.get_children(path + "/taken") == []


# --------------------------------------------------------------------------
# Party


def test_party_membership(clients, zk, base):
    """Members that join are listed (by identifier) by every client;
    leave() removes a member; a member whose session closes disappears."""
    path = base + "/party"
    cs = [clients() for _ in range(3)]
    parties = [cs[i].Party(path, "member-%d" % i) for i in range(3)]
    observer = zk.Party(path)
    for p in parties:
        p.join()
    assert len(observer) == 3
    assert sorted(observer) == ["member-0", "member-1", "member-2"]
    parties[1].leave()
    assert sorted(observer) == ["member-0", "member-2"]
    cs[2].stop()
    assert sorted(observer) == ["member-0"], "a closed session's member is still listed"
    parties[0].leave()
    assert len(observer) == 0

    shallow = [cs[0].ShallowParty(path + "-shallow", "s-%d" % i) for i in range(2)]
    for p in shallow:
        p.join()
    assert sorted(zk.ShallowParty(path + "-shallow")) == ["s-0", "s-1"]
    for p in shallow:
        p.leave()
    assert len(zk.ShallowParty(path + "-shallow")) == 0
    zk.delete(path + "-shallow", recursive=True)


# --------------------------------------------------------------------------
# DataWatch / ChildrenWatch


def test_data_watch_sees_every_change_in_order(clients, zk, base):
    """DataWatch on a node changed by another client, one change at a time:
    it is called for the initial state, each set (with the new data and
    version), the delete (None) and the re-create, in order, once each; and
    it keeps up with bursts of pipelined sets."""
    path = base + "/watched"
    writer = clients()
    writer.create(path, b"v0")
    calls = []

    watcher = clients()

    @watcher.DataWatch(path)
    def on_change(data, stat):
        calls.append((data, stat.version if stat else None))

    expected = [(b"v0", 0)]
    wait_for(lambda: len(calls) >= 1, "the initial call")
    steps = [
        (lambda: writer.set(path, b"v1"), (b"v1", 1)),
        (lambda: writer.set(path, b"v2"), (b"v2", 2)),
        (lambda: writer.delete(path), (None, None)),
        (lambda: writer.create(path, b"again"), (b"again", 0)),
        (lambda: writer.set(path, b""), (b"", 1)),
    ]
    for act, want in steps:
        act()
        expected.append(want)
        wait_for(lambda: len(calls) >= len(expected), "DataWatch call %r (have %r)" % (want, calls))
        assert calls == expected

    # bursts of pipelined sets: the watch, re-set while they are in flight,
    # must converge on the last value each time
    for rnd in range(3):
        last = b"burst-%d-%03d" % (rnd, 199)
        for r in [writer.set_async(path, b"burst-%d-%03d" % (rnd, i)) for i in range(200)]:
            r.get(timeout=WAIT)
        wait_for(lambda: calls[-1][0] == last,
                 lambda: "the DataWatch to see %r (its last call saw %r)" % (last, calls[-1]))
        assert calls[-1][1] == 1 + 200 * (rnd + 1)


def test_children_watch_sees_every_change_in_order(clients, zk, base):
    """ChildrenWatch (with events) on a node whose children another client
    adds and removes one at a time: called with the right child list after
    each change, in order, once each; it keeps up with bursts of pipelined
    creates and deletes; deleting the watched node fires a child watch as
    DELETED."""
    path = base + "/parent"
    writer = clients()
    writer.create(path)
    writer.create(path + "/a")
    calls = []

    watcher = clients()

    def on_children(children, event):
        calls.append((sorted(children), event.type if event else None))

    watcher.ChildrenWatch(path, on_children, send_event=True)
    wait_for(lambda: len(calls) >= 1, "the initial call")
    expected = [(["a"], None)]
    steps = [
        (lambda: writer.create(path + "/b"), ["a", "b"]),
        (lambda: writer.create(path + "/c", ephemeral=True), ["a", "b", "c"]),
        (lambda: writer.delete(path + "/a"), ["b", "c"]),
        (lambda: (writer.set(path + "/b", b"data changes are not child changes"),
                  writer.create(path + "/d")), ["b", "c", "d"]),
        (lambda: writer.delete(path + "/c"), ["b", "d"]),
    ]
    for act, want in steps:
        act()
        expected.append((want, "CHILD"))
        wait_for(lambda: len(calls) >= len(expected), "ChildrenWatch call %r (have %r)" % (want, calls))
        assert calls == expected

    # bursts from another session, pipelined, so that the watch is re-set
    # while changes are in flight: it must converge on the final list each
    # time.  (A watch event that overtakes the reply of the read that set the
    # watch is dropped by the client, and the watch is then lost for good.)
    for rnd in range(4):
        burst = ["x%d-%03d" % (rnd, i) for i in range(400)]
        for r in [writer.create_async(path + "/" + x) for x in burst]:
            r.get(timeout=WAIT)
        wait_for(lambda: calls[-1][0] == sorted(["b", "d"] + burst),
                 lambda: "the ChildrenWatch to see burst %d (its last call has %d of %d children)"
                 % (rnd, len(calls[-1][0]), len(burst) + 2))
        for r in [writer.delete_async(path + "/" + x) for x in burst]:
            r.get(timeout=WAIT)
        wait_for(lambda: calls[-1][0] == ["b", "d"],
                 lambda: "the ChildrenWatch to see burst %d deleted (its last call has %d children)"
                 % (rnd, len(calls[-1][0])))
    writer.delete(path + "/b")
    writer.delete(path + "/d")
    wait_for(lambda: calls[-1] == ([], "CHILD"), lambda: "the ChildrenWatch to see no children (%r)" % (calls[-1],))

    # deleting the watched node itself fires a child watch as DELETED
    events = []
    got = threading.Event()
    zk.get_children(path, watch=lambda e: (events.append(e), got.set()))
    writer.delete(path)
    assert got.wait(WAIT), "no event for the deleted parent"
    assert [(e.type, e.path) for e in events] == [("DELETED", path)]


def test_watch_rearmed_under_concurrent_writes_is_never_lost(clients, zk, base):
    """The pattern under DataWatch, ChildrenWatch and every queue/lock
    recipe: a client re-sets a one-shot watch (get / get_children with a
    watch) each time it fires, while another client keeps changing the node.
    Every watch set must fire.  (kazoo, like the Java client, attaches the
    watcher when the reply arrives, so an event sent ahead of the reply of
    the read that set its watch is dropped and the watch is lost.)"""
    path = base + "/rearm"
    zk.create(path, b"0")
    writer, watcher = clients(), clients()
    stop = threading.Event()

    def churn():
        n = 0
        while not stop.is_set():
            rs = []
            for _ in range(20):
                n += 1
                rs.append(writer.create_async(path + "/c"))
                rs.append(writer.delete_async(path + "/c"))
                rs.append(writer.set_async(path, b"%d" % n))
            for r in rs:
                r.get(timeout=WAIT)

    ts = Threads()
    ts.start(churn)
    try:
        for kind, arm in (("child", watcher.get_children), ("data", watcher.get)):
            rounds = 0
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                fired = threading.Event()
                arm(path, watch=lambda event: fired.set())
                assert fired.wait(5), \
                    "%s watch set in round %d never fired, though the node kept changing" % (kind, rounds)
                rounds += 1
            assert rounds >= 20, "only %d %s watch rounds in 2.5 s" % (rounds, kind)
    finally:
        stop.set()
        for t in ts.threads:      # before the teardown removes the nodes
            t.join(WAIT)
    ts.join(what="the writer")
