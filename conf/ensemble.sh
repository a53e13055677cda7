#!/usr/bin/env bash
# conf/ensemble.sh - the sample 3-server ensemble of conf/zoo-ensemble-{1,2,3}.cfg
# on this machine (client ports 127.0.0.1:2181-2183, quorum 2889-2891,
# election 3889-3891).
#
#   conf/ensemble.sh start [BINARY | --zk]   start the three servers, wait until they
#                                            form an ensemble, print their modes
#   conf/ensemble.sh stop                    stop them (SIGTERM; SIGKILL after 10 s)
#   conf/ensemble.sh status                  each server's pid and Mode (srvr)
#   conf/ensemble.sh restart [BINARY | --zk]
#
# BINARY defaults to bin/zkd (`make` builds it); --zk runs the same three
# zoo.cfg files with Apache ZooKeeper 3.8 instead (Debian's `zookeeper`
# package: java ... QuorumPeerMain <cfg>), for comparison.
#
# Run from anywhere: it works in the project directory, so the configs'
# relative dataDirs are data/zk1, data/zk2, data/zk3. `start` creates each
# dataDir and its myid; the servers keep their data across stop/start
# (rm -rf data/zk1 data/zk2 data/zk3 for a fresh ensemble, servers stopped).
# Server N's log is data/zkN.log, its pid data/zkN.pid. Each server runs in
# its own session (setsid), so it outlives the calling shell.
#
# `start` returns once one server reports Mode: leader and the other two
# Mode: follower (limit ENSEMBLE_START_TIMEOUT s, default 60); otherwise it
# prints the modes and the logs' tails, leaves the servers running for a
# look, and exits 1 (at once, stopping them, if one reports Mode:
# standalone: a server without ensemble support). `status` exits 0 only
# when all three serve.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
N=3
JAVA="${JAVA:-/usr/bin/java}"
ZK_CP="/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
START_TIMEOUT="${ENSEMBLE_START_TIMEOUT:-60}"

say() { printf '[ensemble] %s\n' "$*"; }

cfg_of() { echo "conf/zoo-ensemble-$1.cfg"; }
# cfg_get N KEY: the value of KEY in server N's zoo.cfg
cfg_get() { sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*\\([^[:space:]]*\\).*/\\1/p" "$(cfg_of "$1")" | tail -n 1; }
datadir_of() { cfg_get "$1" dataDir; }
port_of() { cfg_get "$1" clientPort; }
pidfile_of() { echo "$(datadir_of "$1").pid"; }
logfile_of() { echo "$(datadir_of "$1").log"; }

# pid_of N: the pid of server N if it runs (recorded pid, alive, and its
# command line names its zoo.cfg: pids get reused)
pid_of() {
  local f pid
  f="$(pidfile_of "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(cfg_of "$1")" || return 1
  echo "$pid"
}

kind_of_pid() {
  if tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q QuorumPeerMain; then echo zk; else echo zkd; fi
}

# four-letter word over bash's /dev/tcp (no nc needed); $1/$2 expand in the inner bash
# shellcheck disable=SC2016
flw() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; printf %s "$2" >&3; cat <&3' _ "$1" "$2" 2>/dev/null
}
mode_of() {
  local out
  out="$(flw "$(port_of "$1")" srvr)" || true
  if [[ -z "$out" ]]; then echo "no answer"
  elif grep -q '^Mode:' <<<"$out"; then sed -n 's/^Mode: *//p' <<<"$out"
  else echo "not serving"
  fi
}
# shellcheck disable=SC2016
port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

do_status() {
  local i pid all=0 mode
  for i in $(seq 1 $N); do
    if pid="$(pid_of "$i")"; then
      mode="$(mode_of "$i")"
      printf 'server.%d  127.0.0.1:%s  pid %-7s %-4s Mode: %s\n' "$i" "$(port_of "$i")" "$pid" \
        "$(kind_of_pid "$pid")" "$mode"
      [[ "$mode" == leader || "$mode" == follower || "$mode" == observer ]] || all=1
    else
      printf 'server.%d  127.0.0.1:%s  not running\n' "$i" "$(port_of "$i")"
      all=1
    fi
  done
  return $all
}

do_start() {
  local kind=zkd bin="bin/zkd" i pid port d
  case "${1:-}" in
    --zk) kind=zk ;;
    "") ;;
    -*) echo "usage: $0 start [BINARY | --zk]" >&2; exit 2 ;;
    *) bin="$1" ;;
  esac
  if [[ $kind == zkd && ! -x "$bin" ]]; then
    say "no executable $bin (build it with make, or name a binary, or use --zk)"
    exit 1
  fi
  if [[ $kind == zk && ! -r /usr/share/java/zookeeper.jar ]]; then
    say "--zk: /usr/share/java/zookeeper.jar missing (apt-get install zookeeper)"
    exit 1
  fi
  for i in $(seq 1 $N); do
    if pid="$(pid_of "$i")"; then
      say "server.$i is already running (pid $pid); conf/ensemble.sh stop first"
      exit 1
    fi
    port="$(port_of "$i")"
    if port_busy "$port"; then
      say "127.0.0.1:$port (server.$i's client port) is taken by another process"
      exit 1
    fi
  done
  for i in $(seq 1 $N); do
    d="$(datadir_of "$i")"
    mkdir -p "$d"
    echo "$i" >"$d/myid"
    echo "==== start $(date '+%F %T') ($kind)" >>"$(logfile_of "$i")"
    if [[ $kind == zk ]]; then
      setsid "$JAVA" -Xmx512m -Dzookeeper.log.dir="$d" \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$(cfg_of "$i")" \
        >>"$(logfile_of "$i")" 2>&1 </dev/null &
    else
      setsid "$bin" "$(cfg_of "$i")" >>"$(logfile_of "$i")" 2>&1 </dev/null &
    fi
    echo $! >"$(pidfile_of "$i")"
    say "started server.$i ($kind, pid $!, $(cfg_of "$i"), log $(logfile_of "$i"))"
  done
  local end=$((SECONDS + START_TIMEOUT)) modes leaders followers
  while :; do
    modes=()
    leaders=0
    followers=0
    for i in $(seq 1 $N); do
      if ! pid_of "$i" >/dev/null; then
        say "server.$i exited; tail of $(logfile_of "$i"):"
        tail -n 20 "$(logfile_of "$i")" | sed 's/^/    /'
        exit 1
      fi
      modes+=("$(mode_of "$i")")
    done
    for i in $(seq 1 $N); do
      m="${modes[$((i - 1))]}"
      [[ $m == leader ]] && leaders=$((leaders + 1))
      [[ $m == follower ]] && followers=$((followers + 1))
      if [[ $m == standalone ]]; then
        say "server.$i reports Mode: standalone: this server ignores the server.N lines" \
          "(no ensemble support); stopping the three"
        do_stop
        exit 1
      fi
    done
    if ((leaders == 1 && followers == N - 1)); then
      do_status
      return 0
    fi
    if ((SECONDS >= end)); then
      say "no ensemble after ${START_TIMEOUT}s (modes: ${modes[*]}); the servers are left running"
      for i in $(seq 1 $N); do
        say "tail of $(logfile_of "$i"):"
        grep -v "four-letter word" "$(logfile_of "$i")" | tail -n 10 | sed 's/^/    /'
      done
      do_status
      exit 1
    fi
    sleep 0.2
  done
}

do_stop() {
  local i pid end
  for i in $(seq 1 $N); do
    if ! pid="$(pid_of "$i")"; then
      say "server.$i: not running"
      rm -f "$(pidfile_of "$i")"
      continue
    fi
    kill -TERM "$pid"
    end=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; do
      if ((SECONDS >= end)); then
        say "server.$i (pid $pid) still there 10 s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        break
      fi
      sleep 0.1
    done
    rm -f "$(pidfile_of "$i")"
    say "server.$i: stopped (pid $pid)"
  done
}

case "${1:-}" in
  start) do_start "${2:-}" ;;
  stop) do_stop ;;
  status) do_status ;;
  restart) do_stop; do_start "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|restart [BINARY | --zk]" >&2; exit 2 ;;
esac
