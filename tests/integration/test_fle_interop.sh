#!/usr/bin/env bash
# test_fle_interop.sh - zkd's leader election votes together with real
# Apache ZooKeeper 3.8 servers (Debian's `zookeeper` package).
#
#   bash tests/integration/test_fle_interop.sh
#
# Two ZooKeeper servers (ids 1 and 2, QuorumPeerMain from zookeeper.jar) and
# fle_probe (id 3, zkd's election alone: tests/integration/fle_probe.c) form
# one 3-member ensemble on loopback, on unused ports, with temporary data
# directories. Two cases:
#
#   zk-leads     the ZooKeeper servers have the newer epoch (currentEpoch=1
#                written into their dataDir, the probe says 0): one of them
#                leads (`srvr` shows Mode: leader on it, follower on the
#                other; usually server 2, but server 1 when it and the probe
#                agree before server 2's JVM is up) and the probe reports
#                leader=<that id> state=FOLLOWING.
#   probe-leads  the probe has the best vote (zxid 0x500000003, epoch 5): the
#                probe reports leader=3 state=LEADING, and both ZooKeeper
#                servers follow it (their logs show them connecting to the
#                probe's quorum port, where nobody listens; that is fine:
#                only the election result is checked here).
#
# In both, the ZooKeeper logs must show notifications received from sid 3
# and no complaint about the configuration it sent.
#
# Prints PASS/FAIL per case, then "fle interop: N passed, M failed"; exits
# non-zero if any case failed. Without java or zookeeper.jar it prints
# "SKIPPED: <why>" and exits 0.
#
# Optional: FLE_PROBE (a built fle_probe; default: built here with $CC from
# the sources), JAVA, ZK_JAR_DIR (default /usr/share/java), PYTHON,
# FLE_INTEROP_TIMEOUT (seconds per case, default 60), KEEP_TMP=1.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-/usr/bin/python3}"
JAVA="${JAVA:-$(command -v java || true)}"
LIB="${ZK_JAR_DIR:-/usr/share/java}"
DEADLINE_S="${FLE_INTEROP_TIMEOUT:-60}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/zkd-fle-interop.XXXXXX")"
PIDS=()
passed=0
failed=0

say() { printf '[fle-interop] %s\n' "$*"; }

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}

cleanup() {
  stop_all
  if [[ "${KEEP_TMP:-}" == 1 ]]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "$JAVA" || ! -x "$JAVA" ]]; then
  echo "SKIPPED: no java (apt-get install -y default-jre-headless)"
  exit 0
fi
if [[ ! -f "$LIB/zookeeper.jar" ]]; then
  echo "SKIPPED: no $LIB/zookeeper.jar (apt-get install -y zookeeper)"
  exit 0
fi
CP="$LIB/zookeeper.jar"
[[ -f "$LIB/slf4j-simple.jar" ]] && CP="$CP:$LIB/slf4j-simple.jar"

PROBE="${FLE_PROBE:-}"
if [[ -z "$PROBE" ]]; then
  PROBE="$TMP/fle_probe"
  # the election needs TLS from net/ and more: link the library make built
  if ! ${CC:-cc} -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -I"$ROOT" \
      -o "$PROBE" "$HERE/fle_probe.c" "$ROOT/build/libzkd.a" \
      -lurcu-memb -lurcu-cds -lurcu-common -lssl -lcrypto -pthread; then
    say "FAIL: cannot build fle_probe"
    echo "fle interop: 0 passed, 1 failed"
    exit 1
  fi
fi

# free_ports N: N distinct loopback ports nobody listens on (all held at
# once while choosing, so they differ).
free_ports() {
  "$PY" - "$1" <<'PYEOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PYEOF
}

# four_letter PORT WORD: the server's answer (empty if none within 2 s).
four_letter() {
  "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        s.sendall(sys.argv[2].encode())
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
        print(out.decode(errors="replace"))
except OSError:
    pass
PYEOF
}

mode_of() { four_letter "$1" srvr | sed -n 's/^Mode: //p'; }

# start_zk ID EPOCH: ZooKeeper server ID of the ensemble in $CASE_DIR; EPOCH
# (if not empty) goes into its currentEpoch and acceptedEpoch files.
start_zk() {
  local id=$1 epoch=$2 dir="$CASE_DIR/zk$1"
  mkdir -p "$dir/data/version-2"
  echo "$id" >"$dir/data/myid"
  if [[ -n "$epoch" ]]; then
    echo "$epoch" >"$dir/data/version-2/currentEpoch"
    echo "$epoch" >"$dir/data/version-2/acceptedEpoch"
  fi
  cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=${CPORT[$id]}
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
server.1=127.0.0.1:${QPORT[1]}:${EPORT[1]}
server.2=127.0.0.1:${QPORT[2]}:${EPORT[2]}
server.3=127.0.0.1:${QPORT[3]}:${EPORT[3]}
EOF
  setsid "$JAVA" -Xmx256m -Dzookeeper.log.dir="$dir" \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
    >"$dir/zk.log" 2>&1 </dev/null &
  PIDS+=($!)
}

# start_probe ZXID EPOCH: fle_probe as server 3; its result line goes to
# $CASE_DIR/probe.out, its log to $CASE_DIR/probe.log.
start_probe() {
  "$PROBE" 3 "$1" "$2" $((DEADLINE_S + 30)) \
    "1=127.0.0.1:${QPORT[1]}:${EPORT[1]}" "2=127.0.0.1:${QPORT[2]}:${EPORT[2]}" \
    "3=127.0.0.1:${QPORT[3]}:${EPORT[3]}" >"$CASE_DIR/probe.out" 2>"$CASE_DIR/probe.log" </dev/null &
  PIDS+=($!)
}

new_case() {
  CASE_DIR="$TMP/$1"
  mkdir -p "$CASE_DIR"
  local p
  read -r -a p <<<"$(free_ports 8)"
  QPORT=([1]=${p[0]} [2]=${p[1]} [3]=${p[2]})
  EPORT=([1]=${p[3]} [2]=${p[4]} [3]=${p[5]})
  CPORT=([1]=${p[6]} [2]=${p[7]})
  say "=== $1 (election ports ${EPORT[1]} ${EPORT[2]} ${EPORT[3]})"
}

# The ZooKeeper side of every case: it heard sid 3, and liked what it heard.
zk_heard_probe() {
  local id log ok=0
  for id in 1 2; do
    log="$CASE_DIR/zk$id/zk.log"
    grep -q 'n.sid:3,' "$log" && ok=1
    if grep -qE 'Something went wrong while processing config received from 3|Invalid configLength|Backward compatibility mode.*server id: 3' "$log"; then
      say "zk$id complained about sid 3's notifications:"
      grep -E 'Something went wrong|Invalid configLength|Backward compatibility' "$log" | head -3 | sed 's/^/    /'
      return 1
    fi
  done
  [[ $ok == 1 ]] || say "no ZooKeeper server logged a notification from sid 3"
  [[ $ok == 1 ]]
}

finish_case() {  # finish_case NAME STATUS WHY
  if [[ $2 == 0 ]]; then
    passed=$((passed + 1))
    say "PASS $1"
  else
    failed=$((failed + 1))
    say "FAIL $1: $3"
    local f
    for f in "$CASE_DIR/probe.out" "$CASE_DIR/probe.log" "$CASE_DIR/zk1/zk.log" "$CASE_DIR/zk2/zk.log"; do
      [[ -f "$f" ]] || continue
      say "--- tail of $f"
      grep -vE 'INFO .*(Client environment|Server environment|zookeeper\.|QuorumPeerConfig)' "$f" | tail -n 25 | sed 's/^/    /'
    done
  fi
  stop_all
}

# ---------------------------------------------------------------- zk-leads
new_case zk-leads
start_zk 1 1
start_zk 2 1
start_probe 0 0
deadline=$((SECONDS + DEADLINE_S))
m1="" m2="" line=""
while ((SECONDS < deadline)); do
  line="$(head -n 1 "$CASE_DIR/probe.out" 2>/dev/null)"
  m1="$(mode_of "${CPORT[1]}")"
  m2="$(mode_of "${CPORT[2]}")"
  [[ -n "$line" && -n "$m1" && -n "$m2" ]] && break
  sleep 0.3
done
say "probe: ${line:-<nothing>}; zk1 mode: ${m1:-<none>}; zk2 mode: ${m2:-<none>}"
why="" zk_leader=""
[[ "$m1" == leader && "$m2" == follower ]] && zk_leader=1
[[ "$m2" == leader && "$m1" == follower ]] && zk_leader=2
if [[ -z "$zk_leader" ]]; then why="the ZooKeeper servers did not settle as one leader and one follower"
elif [[ "$line" != "leader=$zk_leader "*state=FOLLOWING* ]]; then why="the probe does not follow server $zk_leader"
elif ! zk_heard_probe; then why="ZooKeeper did not take the probe's notifications"
fi
finish_case zk-leads "$([[ -z "$why" ]] && echo 0 || echo 1)" "$why"

# ---------------------------------------------------------------- probe-leads
new_case probe-leads
start_probe 0x500000003 5
start_zk 1 ""
start_zk 2 ""
deadline=$((SECONDS + DEADLINE_S))
line="" f1=0 f2=0
while ((SECONDS < deadline)); do
  line="$(head -n 1 "$CASE_DIR/probe.out" 2>/dev/null)"
  grep -q "connecting to .*:${QPORT[3]}" "$CASE_DIR/zk1/zk.log" 2>/dev/null && f1=1
  grep -q "connecting to .*:${QPORT[3]}" "$CASE_DIR/zk2/zk.log" 2>/dev/null && f2=1
  [[ -n "$line" && $f1 == 1 && $f2 == 1 ]] && break
  sleep 0.3
done
say "probe: ${line:-<nothing>}; zk1 follows the probe: $f1; zk2 follows the probe: $f2"
why=""
if [[ "$line" != leader=3\ *state=LEADING* ]]; then why="the probe did not lead"
elif [[ $f1 != 1 || $f2 != 1 ]]; then why="the ZooKeeper servers did not both follow server 3"
elif grep -q "LEADING - LEADER ELECTION TOOK" "$CASE_DIR/zk1/zk.log" "$CASE_DIR/zk2/zk.log"; then
  why="a ZooKeeper server led instead"
elif ! zk_heard_probe; then why="ZooKeeper did not take the probe's notifications"
fi
finish_case probe-leads "$([[ -z "$why" ]] && echo 0 || echo 1)" "$why"

echo "fle interop: $passed passed, $failed failed"
((failed == 0))
