#!/usr/bin/env bash
# Integration tests: real ZooKeeper clients (zkCli.sh, kazoo, the C client)
# against zkd -- or against any already-running server.
#
#   ZKD=build/zkd ZKC_TEST=build/zkc_test bash tests/integration/run.sh
#       starts $ZKD on a free loopback port with a temporary zoo.cfg, runs
#       every test against it, stops it.  (This is what `make integration`
#       does.)
#   ZK_ADDR=127.0.0.1:23181 bash tests/integration/run.sh
#       tests the server already listening there (e.g. a real ZooKeeper 3.8
#       from shared/conformance/zk38-standalone.sh).  It must be fresh
#       (only /zookeeper under /) and use tickTime=2000.
#
# Optional: ZKC_TEST (built here from zkc_test.c when unset), ZK_ORACLE_ADDR
# (a fresh real ZooKeeper 3.8 for the zkCli oracle; one is started when
# unset), PYTHON (default /usr/bin/python3, which has python3-kazoo),
# ZK_START_TIMEOUT (s, default 30), KEEP_TMP=1 (keep the temp dir),
# ZKD_NO_WATCHES=1 (deselect the tests marked needs_watches: ordering rules
# 3 and 4), ZK_ORDERING_SEED / ZK_HOSTILE_SEED (replay a random run).
#
# Prints "N passed, M failed" as its last line; exits non-zero if any failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# a ThreadSanitizer zkd: liburcu's own internals are suppressed (tests/tsan.supp)
export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$HERE/../tsan.supp}"
PY="${PYTHON:-/usr/bin/python3}"
START_TIMEOUT="${ZK_START_TIMEOUT:-30}"
STOP_TIMEOUT=10
TMP="$(mktemp -d "${TMPDIR:-/tmp}/zkd-integration.XXXXXX")"
LOG="$TMP/zkd.log"
ZKD_PID=""
passed=0
failed=0
failures=()

say() { printf '[integration] %s\n' "$*"; }

# ---------------------------------------------------------------- helpers

free_port() {
  "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready ADDR TIMEOUT [PID]: polls until ADDR completes a ZooKeeper
# session handshake (the session is closed right away).  Exit 0 when ready,
# 1 at the deadline, 2 if PID exited.  A handshake rather than `ruok`:
# ZooKeeper 3.8 answers imok before it accepts sessions.
wait_ready() {
  "$PY" - "$@" <<'PYEOF'
import os, socket, struct, sys, time
addr, timeout = sys.argv[1], float(sys.argv[2])
pid = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else 0
host, _, port = addr.rpartition(":")

def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("closed")
        buf += chunk
    return buf

def handshake():
    try:
        with socket.create_connection((host, int(port)), timeout=2) as s:
            req = struct.pack(">iqiqi16s?", 0, 0, 4000, 0, 16, b"\0" * 16, False)
            s.sendall(struct.pack(">i", len(req)) + req)
            (n,) = struct.unpack(">i", recv_exact(s, 4))
            _, to, sid = struct.unpack(">iiq", recv_exact(s, n)[:16])
            if to <= 0 or sid == 0:
                return False
            try:
                s.sendall(struct.pack(">iii", 8, 1, -11))   # closeSession
                recv_exact(s, 16)
            except OSError:
                pass
            return True
    except (OSError, struct.error):
        return False

deadline = time.monotonic() + timeout
while True:
    if pid and not alive(pid):
        sys.exit(2)
    if handshake():
        sys.exit(0)
    if time.monotonic() >= deadline:
        sys.exit(1)
    time.sleep(0.1)
PYEOF
}

start_zkd() {
  local attempt port rc
  for attempt in 1 2 3; do
    port="$(free_port)" || return 1
    mkdir -p "$TMP/data"
    cat >"$TMP/zoo.cfg" <<EOF
tickTime=2000
dataDir=$TMP/data
clientPort=$port
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
maxClientCnxns=0
admin.enableServer=false
EOF
    echo "==== zkd start (attempt $attempt, port $port) ====" >>"$LOG"
    "$ZKD" "$TMP/zoo.cfg" >>"$LOG" 2>&1 </dev/null &
    ZKD_PID=$!
    wait_ready "127.0.0.1:$port" "$START_TIMEOUT" "$ZKD_PID"
    rc=$?
    if [[ $rc == 0 ]]; then
      ZK_ADDR="127.0.0.1:$port"
      say "zkd (pid $ZKD_PID) is serving on $ZK_ADDR"
      return 0
    fi
    if [[ $rc == 2 ]]; then
      wait "$ZKD_PID"
      say "zkd exited during startup (status $?)"
      ZKD_PID=""
      continue        # perhaps the port was taken meanwhile: try another
    fi
    say "zkd did not accept a session on 127.0.0.1:$port within ${START_TIMEOUT}s"
    return 1
  done
  return 1
}

# stop_zkd: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL.  Returns 0 if
# zkd exited on SIGTERM with status 0 (or died of the SIGTERM itself).
ZKD_STATUS=""
stop_zkd() {
  [[ -n "$ZKD_PID" ]] || return 0
  local pid=$ZKD_PID deadline=$((SECONDS + STOP_TIMEOUT)) killed=0
  ZKD_PID=""
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; do
    if ((SECONDS >= deadline)); then
      say "zkd did not exit within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      killed=1
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null
  ZKD_STATUS=$?
  [[ $killed == 0 && ( $ZKD_STATUS == 0 || $ZKD_STATUS == 143 ) ]]
}

cleanup() {
  stop_zkd >/dev/null 2>&1
  if [[ "${KEEP_TMP:-}" == 1 ]]; then
    say "kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

record() {  # record NAME STATUS [SECONDS]
  if [[ $2 == 0 ]]; then
    passed=$((passed + 1))
    say "PASS $1${3:+ (${3}s)}"
  else
    failed=$((failed + 1))
    failures+=("$1")
    say "FAIL $1${3:+ (${3}s)}"
  fi
}

# ---------------------------------------------------------------- setup

if [[ -n "${ZK_ADDR:-}" ]]; then
  say "testing the server at $ZK_ADDR"
  if ! wait_ready "$ZK_ADDR" "$START_TIMEOUT"; then
    say "$ZK_ADDR does not accept ZooKeeper sessions"
    echo "0 passed, 1 failed"
    exit 1
  fi
else
  if [[ -z "${ZKD:-}" || ! -x "${ZKD}" ]]; then
    say "set ZKD=<path to the zkd binary> or ZK_ADDR=host:port"
    echo "0 passed, 1 failed"
    exit 2
  fi
  if ! start_zkd; then
    say "zkd log ($LOG):"
    tail -n 60 "$LOG" | sed 's/^/    /'
    echo "0 passed, 1 failed"
    exit 1
  fi
fi
export ZK_ADDR

zkc_ok=1
if [[ -z "${ZKC_TEST:-}" ]]; then
  ZKC_TEST="$TMP/zkc_test"
  say "building $ZKC_TEST"
  if ! ${CC:-cc} -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread \
      -Wno-deprecated-declarations -o "$ZKC_TEST" "$HERE/zkc_test.c" \
      -lzookeeper_mt -pthread; then
    record "zkc_test (build)" 1
    zkc_ok=0
  fi
elif [[ ! -x "$ZKC_TEST" ]]; then
  record "zkc_test (not found: $ZKC_TEST)" 1
  zkc_ok=0
fi

# ---------------------------------------------------------------- tests

# 1. zkCli.sh tutorial, diffed against a real ZooKeeper 3.8.  First, while
#    the server's tree is still pristine ("ls /" must show only zookeeper).
say "=== zkCli tutorial (oracle diff)"
t0=$SECONDS
timeout -k 10 300 "$PY" "$HERE/zkcli_tutorial.py"
record "zkcli_tutorial" $? $((SECONDS - t0))

# 2. kazoo (each pytest test case counts on its own)
say "=== kazoo (pytest)"
t0=$SECONDS
xml="$TMP/kazoo-junit.xml"
timeout -k 10 300 "$PY" -m pytest -p no:cacheprovider --rootdir "$HERE" -v \
  --junitxml "$xml" "$HERE/test_kazoo.py"
rc=$?
counts="$("$PY" - "$xml" <<'PYEOF' 2>/dev/null
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get(k, 0)) for s in suites for k in ("failures", "errors", "skipped"))
print(tests - bad, bad)
PYEOF
)"
if [[ -n "$counts" ]]; then
  read -r kp kf <<<"$counts"
  passed=$((passed + kp))
  failed=$((failed + kf))
  ((kf > 0)) && failures+=("kazoo: $kf test(s)")
  say "kazoo: $kp passed, $kf failed/errored/skipped ($((SECONDS - t0))s)"
  if ((kf == 0 && rc != 0)); then record "kazoo (pytest exit status $rc)" 1; fi
else
  record "kazoo (pytest produced no results, exit status $rc)" 1
fi

# 3. the C client
if [[ $zkc_ok == 1 ]]; then
  say "=== C client (zkc_test)"
  t0=$SECONDS
  timeout -k 5 120 "$ZKC_TEST" "$ZK_ADDR"
  record "zkc_test" $? $((SECONDS - t0))
fi

# 4. raw-wire suites (zkraw.py): the ordering rules and bad input.  Each
#    pytest case counts on its own, as for kazoo.
# pytest_suite LABEL FILE: runs one pytest file and adds its cases to the totals.
pytest_suite() {
  local label=$1 file=$2 xml="$TMP/$1-junit.xml" rc counts sp sf
  local args=(-o "markers=needs_watches: needs watches (deselected by ZKD_NO_WATCHES=1)")
  if [[ "${ZKD_NO_WATCHES:-}" == 1 ]] && grep -q needs_watches "$HERE/$file"; then
    args+=(-m "not needs_watches")
    say "ZKD_NO_WATCHES=1: the needs_watches tests of $file are deselected"
  fi
  say "=== $label (pytest)"
  t0=$SECONDS
  timeout -k 10 300 "$PY" -m pytest -p no:cacheprovider --rootdir "$HERE" -v \
    "${args[@]}" --junitxml "$xml" "$HERE/$file"
  rc=$?
  counts="$("$PY" - "$xml" <<'PYEOF' 2>/dev/null
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get(k, 0)) for s in suites for k in ("failures", "errors", "skipped"))
print(tests - bad, bad)
PYEOF
)"
  if [[ -n "$counts" ]]; then
    read -r sp sf <<<"$counts"
    passed=$((passed + sp))
    failed=$((failed + sf))
    ((sf > 0)) && failures+=("$label: $sf test(s)")
    say "$label: $sp passed, $sf failed/errored/skipped ($((SECONDS - t0))s)"
    # exit status 5: every test was deselected
    if ((sf == 0 && rc != 0 && rc != 5)); then record "$label (pytest exit status $rc)" 1; fi
  else
    record "$label (pytest produced no results, exit status $rc)" 1
  fi
}
pytest_suite ordering test_ordering.py
pytest_suite hostile test_hostile.py
pytest_suite auth test_auth.py        # addauth schemes and digest ACL ids, as ZooKeeper 3.8 answers them
pytest_suite kazoo-recipes test_kazoo_recipes.py

# shell_suite LABEL SECONDS SCRIPT: a script that prints "LABEL: N passed,
# M failed" last (or "SKIPPED: why" when it cannot run here); each check
# counts on its own.
shell_suite() {
  local label=$1 limit=$2 script=$3 out="$TMP/$1.out" rc counts sp sf
  say "=== $label (shell)"
  t0=$SECONDS
  timeout -k 10 "$limit" bash "$HERE/$script" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  counts="$(sed -n "s/^$label: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed\$/\1 \2/p" "$out" | tail -n 1)"
  if grep -q '^SKIPPED:' "$out"; then
    say "$label: $(grep -m1 '^SKIPPED:' "$out")"
  elif [[ -n "$counts" ]]; then
    read -r sp sf <<<"$counts"
    passed=$((passed + sp))
    failed=$((failed + sf))
    ((sf > 0)) && failures+=("$label: $sf check(s)")
    say "$label: $sp passed, $sf failed ($((SECONDS - t0))s)"
    if ((sf == 0 && rc != 0)); then record "$label (exit status $rc)" 1; fi
  else
    record "$label (no result, exit status $rc)" 1
  fi
}

# 5. Apache Curator recipes (Java); SKIPPED without a JDK or libcurator-recipes-java.
ZKD_SERVER_LOG="$LOG" shell_suite curator 100 test_curator.sh

# zkd-only: these start their own zkd (needs $ZKD) with settings of their own
if [[ -n "${ZKD_PID:-}" ]]; then
  pytest_suite nodes test_nodes.py
  pytest_suite control test_control.py  # bin/zkdctl, clean SIGTERM (sessions survive a restart), start-up log
  pytest_suite admin test_admin.py      # the AdminServer's /commands (every command; ZooKeeper 3.8 as oracle)
  pytest_suite fourlw test_fourlw.py    # every four-letter word, shaped like ZooKeeper 3.8's answers (oracle)
  pytest_suite limits test_limits.py    # maxClientCnxns, unread replies, globalOutstandingLimit, logged reasons
  pytest_suite metrics test_metrics.py  # Prometheus /metrics (metricsProvider.*), parsed by prometheus_client
  pytest_suite ensemble-metrics test_ensemble_metrics.py  # ZooKeeper's quorum and watch metrics in mntr (ZooKeeper 3.8 as oracle)
  pytest_suite crash test_crash.py      # kill -9, torn/corrupt logs, disk full, zkd-dump (needs zkd-dump beside $ZKD)
  # ensembles on loopback: all zkd, and mixed with Apache ZooKeeper 3.8
  ENSEMBLE_KINDS="${ENSEMBLE_KINDS:-zkd,zkd,zkd;zkd,zkd,zk;zkd,zk,zk}" pytest_suite ensemble test_ensemble.py
  pytest_suite chaos test_chaos.py           # seeded kill/restart sequences (CHAOS_SEED, CHAOS_STEPS)
  pytest_suite readonly test_readonly.py
  pytest_suite tls test_tls.py               # secureClientPort: kazoo and zkCli.sh over TLS, x509 ids
  pytest_suite quorum-tls test_quorum_tls.py # sslQuorum: zkd and mixed zkd+ZooKeeper ensembles over TLS
  pytest_suite partition test_partition.py   # network namespaces (skipped without root)
  # fast leader election against real ZooKeeper servers, wire format only
  shell_suite "fle interop" 120 test_fle_interop.sh
fi

# ---------------------------------------------------------------- teardown

if [[ -n "$ZKD_PID" ]]; then
  if ! kill -0 "$ZKD_PID" 2>/dev/null || [[ "$(awk '{print $3}' "/proc/$ZKD_PID/stat" 2>/dev/null)" == Z ]]; then
    say "zkd died during the tests"
  fi
  stop_zkd
  record "zkd exits cleanly on SIGTERM (status $ZKD_STATUS)" $?
  # a sanitizer build reports at exit (or at the fault): any report fails
  if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$LOG"; then
    grep -m1 -A20 -E "ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$LOG" | sed 's/^/    /'
    record "no sanitizer report in the zkd log" 1
  fi
fi

if ((failed > 0)); then
  say "failed: ${failures[*]}"
  if [[ -s "$LOG" ]]; then
    say "zkd log tail ($LOG):"
    tail -n 80 "$LOG" | sed 's/^/    /'
  fi
fi
echo "$passed passed, $failed failed"
((failed == 0))
