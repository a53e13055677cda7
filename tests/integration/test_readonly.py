"""Read-only mode (readonlymode.enabled): a member that has lost its quorum
serves clients that can be read-only, as ZooKeeper's ReadOnlyZooKeeperServer.

The second test runs against an all-ZooKeeper ensemble too (the oracle).
The first cannot: kazoo fails to parse ZooKeeper 3.8's connect response on
its read-only server (struct.error in read_buffer, 16-byte response), so
with ZooKeeper it never gets a read-only session at all.

  ro after quorum loss   with readonlymode.enabled, the last member standing
                         answers isro "ro" (after ZooKeeper's max(2 s,
                         tickTime)); a client with canBeReadOnly gets a
                         read-only session that reads what was written
                         before, and a write through it fails NOTREADONLY;
                         a client that cannot be read-only gets no session.
                         When a second member returns, the quorum is back:
                         isro "rw" and writes succeed again.
  no ro without the key  the same loss without readonlymode.enabled: isro
                         stays "rw" and not even a read-only client gets a
                         session.
"""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ensemble import Ensemble, four_letter  # noqa: E402

KINDS = [pytest.param("zkd", id="zkd"), pytest.param("zk", id="zk")]


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("%s: not within %.0f s" % (what, timeout))
        time.sleep(0.05)


def isro(e, i):
    try:
        return four_letter(e.members[i].client_port, "isro").strip()
    except OSError:
        return ""


def gets_session(e, i, read_only, timeout=4):
    """A started kazoo client on member i, or None if no session came."""
    from kazoo.client import KazooClient
    from kazoo.handlers.threading import KazooTimeoutError
    c = KazooClient(hosts=e.members[i].addr, read_only=read_only, timeout=10,
                    connection_retry=dict(max_tries=-1, delay=0.1, max_delay=0.5))
    try:
        c.start(timeout=timeout)
        return c
    except KazooTimeoutError:
        c.stop()
        c.close()
        return None


def ensemble(kind, ro):
    extra = {"readonlymode.enabled": "true"} if ro else {}
    if kind == "zk" and ro:
        # ZooKeeper reads it as a system property only
        return Ensemble([kind] * 3, tick_ms=300, extra=extra, java_opts="-Dreadonlymode.enabled=true")
    return Ensemble([kind] * 3, tick_ms=300, extra=extra)


@pytest.mark.parametrize("kind", [pytest.param("zkd", id="zkd")])
def test_read_only_after_quorum_loss(kind):
    from kazoo.exceptions import NotReadOnlyCallError
    with ensemble(kind, True) as e:
        e.start_all()
        e.wait_quorum(timeout=60)
        c = e.client(0)
        c.create("/ro", b"before")
        e.close_client(c)
        e.kill(1)
        e.kill(2)
        e.wait_not_serving([0], timeout=30)
        wait_for(lambda: isro(e, 0) == "ro", 30, "isro answers ro on the last member")

        ro = gets_session(e, 0, read_only=True, timeout=10)
        assert ro is not None, "no read-only session on a read-only server"
        try:
            assert ro.get("/ro")[0] == b"before"
            with pytest.raises(NotReadOnlyCallError):
                ro.create("/during", b"x")
        finally:
            ro.stop()
            ro.close()
        rw = gets_session(e, 0, read_only=False, timeout=3)
        if rw is not None:
            rw.stop()
            rw.close()
        assert rw is None, "a client that cannot be read-only got a session without a quorum"

        e.start(1)
        e.wait_quorum(timeout=60, members=[0, 1])
        wait_for(lambda: isro(e, 0) == "rw", 30, "isro back to rw once the quorum returns")
        c = e.client(0)
        c.create("/after", b"y")
        assert c.exists("/during") is None
        e.close_client(c)


@pytest.mark.parametrize("kind", KINDS)
def test_no_read_only_without_the_key(kind):
    with ensemble(kind, False) as e:
        e.start_all()
        e.wait_quorum(timeout=60)
        e.kill(1)
        e.kill(2)
        e.wait_not_serving([0], timeout=30)
        time.sleep(0)   # nothing to wait for: the mode must never come
        end = time.monotonic() + 3.5    # past ZooKeeper's 2 s read-only delay
        while time.monotonic() < end:
            assert isro(e, 0) != "ro"
            time.sleep(0.1)
        ro = gets_session(e, 0, read_only=True, timeout=2)
        if ro is not None:
            ro.stop()
            ro.close()
        assert ro is None, "a read-only session without readonlymode.enabled"
