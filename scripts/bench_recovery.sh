#!/usr/bin/env bash
# Restart peak memory: fills a durable queue with confirmed persistent 1 KiB publishes for SECS
# seconds (ottermq-perf, no consumer), stops the broker with SIGTERM, starts it again on the same
# data directory and, once /ready answers 200, reads VmHWM (the peak RSS of the restarted
# process, that is of recovery) and VmRSS from /proc/PID/status. Prints one JSON line.
# Free ports are picked by the kernel; nothing is built (pass the binaries). RESTARTS lists
# binaries to restart with in turn on the same data (default: BIN, which also fills).
#   BIN=target/debug/ottermq PERF=target/debug/ottermq-perf SECS=25 scripts/bench_recovery.sh
#   RESTARTS="/tmp/old/ottermq target/debug/ottermq" SECS=20 scripts/bench_recovery.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/ottermq}
PERF=${PERF:-target/debug/ottermq-perf}
SECS=${SECS:-25}
DATA=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DATA"' EXIT
source tests/lib.sh   # free_port
AMQP=$(free_port)
HTTP=$(free_port)
start() {
  "$BIN" --bind 127.0.0.1 --amqp-port "$AMQP" --http-port "$HTTP" --data-dir "$DATA/d" >>"$DATA/log" 2>&1 &
  PID=$!
}
ready() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/ready" 2>/dev/null || true; }
depth() {
  curl -s -u guest:guest "http://127.0.0.1:$HTTP/api/queues" |
    python3 -c 'import json,sys; print(sum(q.get("messages_ready", 0) for q in json.load(sys.stdin) if q["name"] == "bench-recovery"))' 2>/dev/null || echo 0
}
status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; }
start
until [ "$(ready)" = 200 ]; do sleep 0.1; done
"$PERF" --quiet -x 1 -y 0 -s 1024 --confirm 1000 --persistent -z "$SECS" --keep-queue \
  --queue bench-recovery --uri "amqp://guest:guest@127.0.0.1:$AMQP/%2f" >/dev/null
QUEUED=$(depth)
HWM_FILL=$(status_kib VmHWM)
DISK=$(du -sk "$DATA/d" | cut -f1)
kill -TERM "$PID"; wait "$PID" || true
PID=
# Each binary of RESTARTS (default: BIN) restarts on the same data directory in turn, so
# builds are compared on the same data; one JSON line per restart.
for B in ${RESTARTS:-$BIN}; do
  BIN=$B
  T0=$(date +%s.%N)
  start
  until [ "$(ready)" = 200 ]; do sleep 0.02; done
  T1=$(date +%s.%N)
  HWM=$(status_kib VmHWM)
  RSS=$(status_kib VmRSS)
  RECOVERED=$(depth)
  kill -TERM "$PID"; wait "$PID" || true
  PID=
  python3 - <<PY
print('{"bin": "$B", "queued": %d, "disk_mib": %.0f, "fill_peak_rss_mib": %.0f, "restart_s": %.2f, "recovered": %d, "restart_peak_rss_mib": %.0f, "rss_after_restart_mib": %.0f}' % (
  $QUEUED, $DISK / 1024, $HWM_FILL / 1024, $T1 - $T0, $RECOVERED, $HWM / 1024, $RSS / 1024))
PY
done
