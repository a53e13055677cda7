#!/usr/bin/env bash
# The ordering stress: tests/integration/test_ordering.py (rules 1-4: many
# sessions, concurrent watches, writes and reads) run N times in a row
# against one zkd, by default a ThreadSanitizer build. Fails on the first
# lost or reordered event, or on any sanitizer report in the server's log.
#
#   tests/stress.sh build-tsan/zkd [N]        (make stress: N=100)
set -uo pipefail
ZKD=${1:?usage: stress.sh path/to/zkd [rounds]}
N=${2:-100}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/zkd-stress.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
CFG
# flush_memory_ms: without it a TSan zkd keeps ~3 GB of shadow per round of
# this load and is OOM-killed around round 8 (the plain build stays ~20 MB)
export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$here/tsan.supp:flush_memory_ms=5000}"
"$ZKD" "$work/zoo.cfg" 2>"$work/zkd.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  [[ "$(/usr/bin/python3 -c "
import socket,sys
try:
    s=socket.create_connection(('127.0.0.1',$port),timeout=1); s.sendall(b'ruok'); print(s.recv(4).decode())
except Exception: pass")" == imok ]] && break
  sleep 0.1
done
sanitizer_report() {
  grep -qE "WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer|runtime error:" "$work/zkd.log"
}
start=$SECONDS
for i in $(seq 1 "$N"); do
  if ! ZK_ADDR=127.0.0.1:$port timeout 600 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
       -o "markers=needs_watches: needs watches" "$here/integration/test_ordering.py" >"$work/round.out" 2>&1; then
    tail -n 40 "$work/round.out"
    echo "stress: round $i of $N FAILED (log: $work)"
    trap - EXIT; cleanup; exit 1
  fi
  if sanitizer_report; then
    grep -m1 -A30 -E "WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer|runtime error:" "$work/zkd.log"
    echo "stress: sanitizer report after round $i (log: $work/zkd.log)"
    trap - EXIT; cleanup; exit 1
  fi
  echo "stress: round $i of $N passed ($(tail -n 1 "$work/round.out")) [$((SECONDS - start))s]"
done
cleanup
trap - EXIT
if sanitizer_report; then
  echo "stress: sanitizer report at shutdown (log: $work/zkd.log)"; exit 1
fi
rm -rf "$work"
echo "stress: $N rounds passed, 0 failed"
