#!/usr/bin/env bash
# Runs ../shared/conformance (the black-box ZooKeeper 3.8 suite) against a
# zkd it starts on a free loopback port with a fresh dataDir, configured as
# the suite's reference ZooKeeper (zk38-standalone.sh) is.
#
#   tests/conformance.sh build/zkd [extra pytest args]
#
# Tests that need features of later issues are deselected here, each with the
# issue it waits for (README.md lists them too).
set -euo pipefail
ZKD=${1:?usage: conformance.sh path/to/zkd}
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
suite="$here/../shared/conformance"
[ -d "$suite" ] || { echo "no conformance suite at $suite"; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d /tmp/zkd-conformance.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
extendedTypesEnabled=true
znode.container.checkIntervalMs=1000
CFG

deselect=()

export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$here/tests/tsan.supp}"
ZK_ADDR=127.0.0.1:$port \
ZK_START="exec $(readlink -f "$ZKD") $work/zoo.cfg 2>>$work/zkd.log" \
/usr/bin/python3 -m pytest "$suite" -q "${deselect[@]}" "$@" || {
  status=$?
  echo "---- zkd log (tail) ----"; tail -n 60 "$work/zkd.log" || true
  exit $status
}
# A sanitizer build reports at exit; any report fails the run.
if grep -qE "ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$work/zkd.log"; then
  echo "---- sanitizer report in the zkd log ----"
  grep -A30 -E "ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$work/zkd.log" | head -80 || true
  exit 1
fi
