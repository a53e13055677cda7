"""One client cannot take the server's connections, memory or pipeline, and
what it is refused for is logged.

    ZKD=build/zkd /usr/bin/python3 -m pytest tests/integration/test_limits.py -v

Each test runs a zkd of its own (standalone.py) with the limit it checks:

  maxClientCnxns            the next connection from that IP is closed, with
                            ZooKeeper's log line; a slot freed is usable again
  unread replies            a client that pipelines reads of a large node and
                            never reads the replies is no longer read from once
                            4 MB of replies wait for it: the server's memory
                            stays flat while another session carries on;
                            reads held back by that limit are answered once
                            the replies before them are read
  globalOutstandingLimit    a client flooding writes never has more than the
                            limit (plus the one request that crossed it) inside
                            the pipeline, and every throttled client is read
                            again once its own requests are answered
  hostile frames            the reason a connection was dropped is in the log
"""
import re
import socket
import threading
import time

import pytest

import zkraw as z
from standalone import ZKD, ZkdServer

TEST_TIMEOUT = 120
pytestmark = pytest.mark.skipif(not ZKD, reason="ZKD (path to the zkd binary) is not set")


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def test_max_client_cnxns_per_ip_closes_the_next_connection_and_logs_why():
    with ZkdServer({"maxClientCnxns": "4"}, prefix="zkd-limits-") as srv:
        held = [z.ZKRaw(srv.addr) for _ in range(4)]
        extra = socket.create_connection(("127.0.0.1", srv.port))
        extra.sendall(z.frame(z.connect_request()))
        assert z.closed_without_answer(extra), "a fifth connection from 127.0.0.1 was served"
        extra.close()
        wait_for(lambda: "Too many connections from 127.0.0.1 - max is 4" in srv.log_text(), 10,
                 "ZooKeeper's 'Too many connections' line in the log")
        for c in held:                      # the four are untouched
            assert c.call(z.exists("/")).err == z.OK
        held.pop().close()
        # the freed slot is usable (the close is seen by the server shortly)
        deadline = time.monotonic() + 10
        while True:
            try:
                c = z.ZKRaw(srv.addr, io_timeout=3)
                break
            except (z.ConnectionClosed, z.Timeout, OSError):
                assert time.monotonic() < deadline, "the freed slot never became usable"
                time.sleep(0.05)
        assert c.call(z.exists("/")).err == z.OK
        for h in held + [c]:
            h.close()
        # counted for mntr (asked once the slots are free: a 4lw is a connection too)
        def rejected():
            try:
                return mntr_value(srv.addr, "connection_rejected")
            except (OSError, z.Timeout, AttributeError):
                return 0                    # a slot not freed yet: refused again
        wait_for(lambda: rejected() >= 1, 10, "zk_connection_rejected in mntr")


def test_a_client_that_never_reads_replies_does_not_grow_server_memory():
    node_size = 900 * 1024
    requests = 1000                         # 900 MB of replies if they all piled up
    with ZkdServer({"jute.maxbuffer": str(2 << 20)}, prefix="zkd-limits-") as srv:
        with z.ZKRaw(srv.addr) as setup:
            assert setup.call(z.create("/big", b"x" * node_size)).err == z.OK
        base = rss_kb(srv.proc.pid)

        greedy = z.ZKRaw(srv.addr)
        burst = b"".join(z.request_frame(i + 1, z.GET_DATA, z.string("/big") + z.boolean(False))
                         for i in range(requests))
        greedy.sock.setblocking(True)
        greedy.sock.settimeout(0.5)
        sent = 0
        deadline = time.monotonic() + 20
        while sent < len(burst) and time.monotonic() < deadline:
            try:
                sent += greedy.sock.send(burst[sent:sent + 65536])
            except socket.timeout:
                pass                        # the server stopped reading: as it should
        # a well-behaved session is not held up meanwhile
        with z.ZKRaw(srv.addr) as other:
            for i in range(20):
                assert other.call(z.set_data("/big", b"y" * 10)).err == z.OK
                assert other.call(z.get_data("/small-missing")).err == z.NONODE
        grown_mb = (rss_kb(srv.proc.pid) - base) / 1024.0
        assert grown_mb < 150, ("server memory grew %.0f MB for one client that reads nothing "
                                "(%d of %d request bytes accepted)" % (grown_mb, sent, len(burst)))
        greedy.abort(rst=True)
        assert z.four_letter(srv.addr, "ruok") == "imok"


def test_regression_frames_held_at_the_output_limit_are_answered_once_it_drains():
    # Twelve reads of a 900 KB node arrive in one segment. Parsing stops once
    # the first replies pass 4 MB, and the rest wait in the connection's
    # input buffer. The client reads everything, so the output drains in one
    # write; zkd used to miss that and leave the held frames unanswered.
    node_size = 900 * 1024
    count = 12
    with ZkdServer({"jute.maxbuffer": str(2 << 20)}, prefix="zkd-limits-") as srv:
        with z.ZKRaw(srv.addr) as c:
            assert c.call(z.create("/big", b"x" * node_size)).err == z.OK
            xids = [c.send(z.get_data("/big"), flush=False) for _ in range(count)]
            c.flush()
            deadline = time.monotonic() + 8     # within the 10 s session timeout
            got = []
            try:
                while len(got) < count:
                    got.append(c.read_reply(deadline))
            except (z.Timeout, z.ConnectionClosed):
                pass
            assert [r.xid for r in got] == xids, (
                "%d of %d pipelined reads answered" % (len(got), count))
            assert all(r.err == z.OK and len(r.value[0]) == node_size for r in got)


def mntr_value(addr, key):
    text = z.four_letter(addr, "mntr")
    return int(re.search(r"^zk_%s\t(\d+)" % key, text, re.M).group(1))


def test_global_outstanding_limit_bounds_requests_in_the_pipeline():
    limit = 20
    with ZkdServer({"globalOutstandingLimit": str(limit)}, prefix="zkd-limits-") as srv:
        with z.ZKRaw(srv.addr) as setup:
            assert setup.call(z.create("/w", b"")).err == z.OK
        flood = z.ZKRaw(srv.addr)
        n = 20000
        burst = b"".join(z.request_frame(i + 1, z.SET_DATA, z.string("/w") + z.buf(b"v") + z.i32(-1))
                         for i in range(n))
        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], mntr_value(srv.addr, "outstanding_requests"))
                except (OSError, z.Timeout, AttributeError):
                    pass
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            flood.send_raw(burst, timeout=60)
            got = 0
            deadline = time.monotonic() + 60
            while got < n:
                assert time.monotonic() < deadline, "only %d of %d replies" % (got, n)
                rep = flood.read_reply(deadline)
                assert rep.err == z.OK, rep
                got += 1
        finally:
            stop.set()
            t.join(10)
            flood.close()
        # the request that crossed the limit is inside before the connection pauses
        assert 0 < peak[0] <= limit + 1, "peak outstanding %d with globalOutstandingLimit=%d" % (peak[0], limit)


def test_regression_every_throttled_client_is_resumed_when_the_backlog_is_others():
    # Four clients flood writes at once with globalOutstandingLimit=20, so a
    # client's last reply often leaves while the others keep the backlog over
    # the limit. zkd used to resume a throttled client only from its own I/O
    # thread's idle pass with the backlog under the limit; with its replies
    # all out, that thread could sleep for good and the client never be read
    # again (three of four stopped after about ten replies).
    limit, clients, n = 20, 4, 3000
    with ZkdServer({"globalOutstandingLimit": str(limit)}, prefix="zkd-limits-") as srv:
        with z.ZKRaw(srv.addr) as setup:
            for k in range(clients):
                assert setup.call(z.create("/w%d" % k, b"")).err == z.OK
        answered = [0] * clients
        failure = [None] * clients

        def flood(k):
            try:
                with z.ZKRaw(srv.addr, timeout_ms=30000) as c:
                    c.send_raw(b"".join(
                        z.request_frame(i + 1, z.SET_DATA, z.string("/w%d" % k) + z.buf(b"v") + z.i32(-1))
                        for i in range(n)), flush=False)
                    deadline = time.monotonic() + 25
                    while answered[k] < n:
                        rep = c.read_reply(deadline)     # also sends what is left
                        assert rep.err == z.OK, rep
                        answered[k] += 1
            except Exception as e:                      # reported below, by client
                failure[k] = e
        threads = [threading.Thread(target=flood, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        assert answered == [n] * clients, "replies per client %s of %d (%s)" % (answered, n, failure)


@pytest.mark.parametrize("what,payload,reason", [
    ("a frame of 2^31-1 bytes", z.i32(0x7FFFFFFF), r"Len error 2147483647"),
    ("a frame of -1 bytes", z.i32(-1), r"Len error -1"),
    ("a frame just over jute.maxbuffer", z.i32((1 << 20) + 1), r"Len error 1048577"),
    ("a frame of 0 bytes", z.i32(0), r"malformed ConnectRequest \(0 bytes\)"),
    ("a request before the handshake", z.request_frame(1, z.GET_DATA, z.string("/") + z.boolean(False)),
     r"malformed ConnectRequest"),
])
def test_a_dropped_connection_says_why_in_the_log(what, payload, reason):
    with ZkdServer({"jute.maxbuffer": str(1 << 20)}, prefix="zkd-limits-") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(payload + b"\0" * 32)
        assert z.closed_without_answer(s), what + ": not closed"
        s.close()
        wait_for(lambda: re.search(reason, srv.log_text()), 10, "the reason for %s in the log" % what)
        assert z.four_letter(srv.addr, "ruok") == "imok"


def test_an_empty_request_frame_after_the_handshake_says_why_in_the_log():
    with ZkdServer(prefix="zkd-limits-") as srv:
        c = z.ZKRaw(srv.addr)
        c.send_raw(z.i32(0))
        wait_for(lambda: c.reply_or_close(1.0)[0] == "close", 10, "the empty frame's connection to close")
        wait_for(lambda: re.search(r"session 0x%x: frame of 0 bytes too short for a request header"
                                   % c.session_id, srv.log_text()), 10, "the reason in the log")
        assert z.four_letter(srv.addr, "ruok") == "imok"
