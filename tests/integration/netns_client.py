"""netns_client: one ZooKeeper operation against 127.0.0.1:<port>, printed as
one line of JSON. test_partition.py runs it inside a member's network
namespace, so a partitioned member stays reachable for its own client:

    ip netns exec <ns> /usr/bin/python3 netns_client.py <port> <command> [args]

Commands (every wait is bounded; nothing here retries a request that was sent):

  srvr TIMEOUT
      {"mode": "leader"|"follower"|...|null, "text": "..."}; mode is null when
      the server is not serving (or could not be reached).
  create PATH DATA_HEX TIMEOUT RETRY_FOR
      Opens a session and sends one create. While the request has not been
      sent yet (connection refused/closed, handshake refused or timed out) it
      starts over with a fresh connection, for up to RETRY_FOR seconds; once
      the create is sent, its outcome is final. TIMEOUT bounds each attempt.
      {"outcome": "ok"|"error"|"timeout"|"closed"|"unsent", "err": int|null,
       "zxid": int|null, "sent": bool, "tries": int, "elapsed": s, "why": str}
  minority PREFIX DURATION TIMEOUT
      The writes of a member about to be cut off. First opens a session and
      prints {"ready": true, "session": "0x..."}; then waits for a line on
      stdin (the test sends it once the member is partitioned). Then, for
      DURATION seconds: while that session's connection is open, one create
      of PREFIX"s<i>" on it every 100 ms without waiting (pipelined; each
      reply is awaited until TIMEOUT after its send); once the server has
      closed it, fresh connections, each with a session and one create of
      PREFIX"f<i>" within TIMEOUT. Data is always b"minority". Prints
      {"attempts": [{"path", "outcome", "err", "zxid", "sent", "at", "elapsed", "why"}],
       "session_closed_at": s|null}
      where outcome is "ok" (acknowledged), "error" (a reply with err != 0),
      "timeout", "closed" (connection closed before the reply) or "unsent".
  tree TIMEOUT
      A session, sync("/"), then every node but /zookeeper and its children:
      {"nodes": {path: {"data": hex, "czxid": ..., "mzxid": ..., ...}}, "zxid": int}
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import zkraw  # noqa: E402

STAT_FIELDS = ("czxid", "mzxid", "pzxid", "version", "cversion", "aversion",
               "ephemeralOwner", "dataLength", "numChildren")


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def srvr(addr, timeout):
    try:
        text = zkraw.four_letter(addr, "srvr", timeout)
    except (OSError, zkraw.Timeout) as e:
        return {"mode": None, "text": "", "why": "%s: %s" % (type(e).__name__, e)}
    mode = None
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() == "Mode":
            mode = v.strip()
    return {"mode": mode, "text": text}


def one_create(addr, path, data, timeout):
    """One connection, one session, one create, all before a deadline."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    res = {"path": path, "outcome": "unsent", "err": None, "zxid": None, "sent": False,
           "why": ""}
    conn = None
    try:
        try:
            conn = zkraw.ZKRaw(addr, timeout_ms=4000, io_timeout=timeout)
        except (OSError, zkraw.ConnectionClosed, zkraw.Timeout, zkraw.ProtocolError) as e:
            res["why"] = "no session: %s: %s" % (type(e).__name__, e)
            return res
        if time.monotonic() >= deadline:
            res["why"] = "no session before the deadline"
            return res
        try:
            xid = conn.send(zkraw.create(path, data), timeout=max(0.01, deadline - time.monotonic()))
            res["sent"] = True
            rep = conn.wait_reply(xid, deadline)
        except zkraw.Timeout:
            res["outcome"] = "timeout" if res["sent"] else "unsent"
            res["why"] = "no reply within %.2fs" % timeout
            return res
        except (zkraw.ConnectionClosed, OSError) as e:
            res["outcome"] = "closed" if res["sent"] else "unsent"
            res["why"] = "%s: %s" % (type(e).__name__, e)
            return res
        res["zxid"] = rep.zxid
        res["err"] = rep.err
        res["outcome"] = "ok" if rep.err == zkraw.OK else "error"
        return res
    finally:
        res["elapsed"] = round(time.monotonic() - t0, 3)
        if conn is not None:
            try:
                conn.close(timeout=0.5)
            except Exception:
                conn.abort()


def create(addr, path, data, timeout, retry_for):
    t0 = time.monotonic()
    tries = 0
    while True:
        tries += 1
        res = one_create(addr, path, data, timeout)
        if res["sent"] or time.monotonic() - t0 >= retry_for:
            break
        time.sleep(0.05)
    res["tries"] = tries
    res["elapsed"] = round(time.monotonic() - t0, 3)
    return res


def minority(addr, prefix, duration, timeout):
    try:
        conn = zkraw.ZKRaw(addr, timeout_ms=4000, io_timeout=timeout)
    except (OSError, zkraw.ConnectionClosed, zkraw.Timeout, zkraw.ProtocolError) as e:
        out({"ready": False, "why": "%s: %s" % (type(e).__name__, e)})
        return None
    out({"ready": True, "session": "%#x" % conn.session_id})
    sys.stdin.readline()                       # "go" (or EOF: the test is gone)
    t0 = time.monotonic()
    end = t0 + duration
    recs = []
    pending = {}                               # xid -> (record, deadline)
    closed_at = None
    next_send = t0
    i = j = 0

    def settle(now_deadline):
        """Reads replies on the session until now_deadline."""
        nonlocal closed_at
        while pending and not conn.closed:
            try:
                f = conn.next(now_deadline)
            except zkraw.Timeout:
                break
            except (zkraw.ConnectionClosed, OSError):
                closed_at = round(time.monotonic() - t0, 3)
                break
            if isinstance(f, zkraw.Reply) and f.xid in pending:
                rec, _ = pending.pop(f.xid)
                rec["zxid"], rec["err"] = f.zxid, f.err
                rec["outcome"] = "ok" if f.err == zkraw.OK else "error"
                rec["elapsed"] = round(time.monotonic() - t0 - rec["at"], 3)
        now = time.monotonic()
        for xid, (rec, dl) in list(pending.items()):
            if conn.closed:
                rec["outcome"], rec["why"] = "closed", "connection closed before the reply"
                del pending[xid]
            elif now >= dl:
                rec["outcome"], rec["why"] = "timeout", "no reply within %.2fs" % timeout
                del pending[xid]

    while time.monotonic() < end:
        if not conn.closed:
            now = time.monotonic()
            if now >= next_send:
                rec = {"path": "%ss%d" % (prefix, i), "outcome": "unsent", "err": None,
                       "zxid": None, "sent": False, "at": round(now - t0, 3), "why": ""}
                recs.append(rec)
                i += 1
                try:
                    xid = conn.send(zkraw.create(rec["path"], b"minority"), timeout=0.5)
                    rec["sent"] = True
                    pending[xid] = (rec, now + timeout)
                except zkraw.Timeout:
                    rec["why"] = "could not send within 0.5s"
                except (zkraw.ConnectionClosed, OSError) as e:
                    closed_at = round(time.monotonic() - t0, 3)
                    rec["why"] = "%s: %s" % (type(e).__name__, e)
                next_send = now + 0.1
            if not pending:
                # nothing to read for: still notice a close
                try:
                    conn.next(min(next_send, end))
                except zkraw.Timeout:
                    pass
                except (zkraw.ConnectionClosed, OSError):
                    closed_at = round(time.monotonic() - t0, 3)
            settle(min(next_send, end))
        else:
            settle(time.monotonic())
            rec = one_create(addr, "%sf%d" % (prefix, j), b"minority",
                             min(timeout, max(0.05, end - time.monotonic())))
            j += 1
            rec["at"] = round(time.monotonic() - t0 - rec["elapsed"], 3)
            recs.append(rec)
            if not rec["sent"]:
                time.sleep(0.05)               # refused at once: don't spin
    # replies still owed on the session: wait for them until their deadlines
    if pending:
        settle(max(dl for _, dl in pending.values()))
    settle(time.monotonic())
    conn.abort()
    return {"attempts": recs, "session_closed_at": closed_at}


def tree(addr, timeout):
    deadline = time.monotonic() + timeout
    conn = zkraw.ZKRaw(addr, timeout_ms=4000, io_timeout=timeout)
    try:
        rep = conn.call(zkraw.sync("/"), timeout=max(0.01, deadline - time.monotonic()))
        if rep.err != zkraw.OK:
            raise zkraw.ProtocolError("sync failed with %d" % rep.err)
        nodes = {}
        level = ["/"]
        while level:
            left = max(0.01, deadline - time.monotonic())
            reqs = []
            for p in level:
                reqs += [zkraw.get_data(p), zkraw.get_children(p)]
            reps = zkraw.pipeline(conn, reqs, left)
            # replies arrive in request order (ZooKeeper's per-session order)
            nxt = []
            for k, p in enumerate(level):
                d, c = reps[2 * k], reps[2 * k + 1]
                if d.err == zkraw.NONODE:
                    continue
                if d.err != zkraw.OK or c.err != zkraw.OK:
                    raise zkraw.ProtocolError("read of %s failed: %d/%d" % (p, d.err, c.err))
                data, st = d.value
                ent = {"data": (data or b"").hex()}
                ent.update({f: getattr(st, f) for f in STAT_FIELDS})
                nodes[p] = ent
                for child in sorted(c.value):
                    cp = ("/" if p == "/" else p + "/") + child
                    if cp != "/zookeeper":
                        nxt.append(cp)
            level = nxt
        return {"nodes": nodes, "zxid": rep.zxid}
    finally:
        conn.close(timeout=0.5)


def main(argv):
    addr = "127.0.0.1:%d" % int(argv[1])
    cmd = argv[2]
    if cmd == "srvr":
        out(srvr(addr, float(argv[3])))
    elif cmd == "create":
        out(create(addr, argv[3], bytes.fromhex(argv[4]), float(argv[5]), float(argv[6])))
    elif cmd == "minority":
        res = minority(addr, argv[3], float(argv[4]), float(argv[5]))
        if res is not None:
            out(res)
    elif cmd == "tree":
        try:
            out(tree(addr, float(argv[3])))
        except (OSError, zkraw.ConnectionClosed, zkraw.Timeout, zkraw.ProtocolError) as e:
            out({"error": "%s: %s" % (type(e).__name__, e)})
    else:
        sys.exit("unknown command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv)
