#!/usr/bin/env bash
# Apache Curator recipes (Debian's libcurator-recipes-java) against a
# ZooKeeper-compatible server: compiles tests/integration/curator/*.java with
# javac into a temp dir and runs it against $ZK_ADDR (default 127.0.0.1:2181).
#
#   ZK_ADDR=127.0.0.1:2181 bash tests/integration/test_curator.sh [check ...]
#
# Prints one PASS/FAIL line per check, then "curator: N passed, M failed";
# exits non-zero if anything failed.  If java/javac or the Curator jars are
# missing it prints "SKIPPED: <why>" and exits 0.  Bounded: the whole run is
# killed after CURATOR_TIMEOUT seconds (default 80).
#
# Optional: JAVA_LIB_DIR (default /usr/share/java), JAVA_HOME,
# ZKD_SERVER_LOG (the server's log: on a failure naming a session, its lines
# are printed), CURATOR_TIMEOUT, CURATOR_BUDGET_MS (the Java program's own budget for all
# checks; default: what compiling left of CURATOR_TIMEOUT, less 15 s for the
# last check's cleanup), CURATOR_LOG_LEVEL (slf4j-simple level of the client
# library log, default warn), KEEP_TMP=1.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ZK_ADDR="${ZK_ADDR:-127.0.0.1:2181}"
LIB="${JAVA_LIB_DIR:-/usr/share/java}"
TOTAL="${CURATOR_TIMEOUT:-80}"
START=$SECONDS

if [[ -n "${JAVA_HOME:-}" ]]; then
  JAVA="$JAVA_HOME/bin/java"; JAVAC="$JAVA_HOME/bin/javac"
else
  JAVA="$(command -v java || true)"; JAVAC="$(command -v javac || true)"
fi
if [[ -z "$JAVA" || ! -x "$JAVA" ]]; then
  echo "SKIPPED: no java (install a JDK, e.g. apt-get install -y default-jdk-headless)"
  exit 0
fi
if [[ -z "$JAVAC" || ! -x "$JAVAC" ]]; then
  echo "SKIPPED: no javac (install a JDK, e.g. apt-get install -y default-jdk-headless)"
  exit 0
fi

# The Curator jars' manifests name their dependencies (guava, slf4j-api,
# zookeeper, zookeeper-jute, jackson) by absolute path; they are listed here
# too so that a missing one is reported instead of failing at run time.
need=(curator-recipes curator-framework curator-client zookeeper zookeeper-jute guava slf4j-api)
cp=""
missing=()
for j in "${need[@]}"; do
  if [[ -f "$LIB/$j.jar" ]]; then
    cp="${cp:+$cp:}$LIB/$j.jar"
  else
    missing+=("$LIB/$j.jar")
  fi
done
if ((${#missing[@]})); then
  echo "SKIPPED: missing ${missing[*]} (apt-get install -y libcurator-recipes-java)"
  exit 0
fi
# a logging backend so that the client library's warnings are kept
logcp=""
for j in slf4j-simple slf4j-nop; do
  if [[ -f "$LIB/$j.jar" ]]; then logcp="$LIB/$j.jar"; break; fi
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/zkd-curator.XXXXXX")"
cleanup() {
  if [[ "${KEEP_TMP:-}" == 1 ]]; then echo "[curator] kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

mkdir -p "$TMP/classes"
if ! timeout -k 5 60 "$JAVAC" -nowarn -d "$TMP/classes" -cp "$cp" "$HERE"/curator/*.java; then
  echo "FAIL curator: javac failed"
  echo "curator: 0 passed, 1 failed"
  exit 1
fi

left=$((TOTAL - (SECONDS - START)))
((left < 20)) && left=20
budget_ms="${CURATOR_BUDGET_MS:-$(( (left - 15) * 1000 ))}"
LOGFILE="$TMP/curator-client.log"
CURATOR_BUDGET_MS="$budget_ms" ZK_ADDR="$ZK_ADDR" timeout -k 5 "$left" \
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dorg.slf4j.simpleLogger.defaultLogLevel="${CURATOR_LOG_LEVEL:-warn}" \
    -Dorg.slf4j.simpleLogger.logFile="$LOGFILE" \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
    -cp "$TMP/classes:$cp${logcp:+:$logcp}" CuratorRecipes "$ZK_ADDR" "$@" | tee "$TMP/checks.out"
rc=${PIPESTATUS[0]}
if ((rc == 124 || rc == 137)); then
  echo "FAIL curator: killed after ${left}s"
  echo "curator: 0 passed, 1 failed"
fi
if ((rc != 0)) && [[ -s "$LOGFILE" ]]; then
  echo "[curator] client library log (tail of $LOGFILE):"
  tail -n 40 "$LOGFILE" | sed 's/^/    /'
fi
# A failed check may name a session ("its session 0x..."): the server's own
# lines about it, when run.sh says where the server logs (ZKD_SERVER_LOG).
if ((rc != 0)) && [[ -n "${ZKD_SERVER_LOG:-}" && -s "$ZKD_SERVER_LOG" ]]; then
  for sid in $(grep -o 'its session 0x[0-9a-f]*' "$TMP/checks.out" 2>/dev/null | awk '{print $3}' | sort -u); do
    echo "[curator] server log lines for session $sid:"
    grep -F "session $sid" "$ZKD_SERVER_LOG" | tail -n 40 | sed 's/^/    /'
  done
fi
exit $((rc == 0 ? 0 : 1))
