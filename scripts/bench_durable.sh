#!/usr/bin/env bash
# Durability figures: restart time and RSS with N persistent 1 KiB messages on disk (default
# 1,000,000). Starts OtterMQ (release) on 5691 with a fresh data directory, fills a durable
# queue with confirmed persistent publishes (ottermq-perf, no consumer), reads VmRSS, stops it
# with SIGTERM, starts it again and times until /ready answers 200, reads VmRSS again.
# Prints one JSON line. Usage: N=1000000 scripts/bench_durable.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
cargo build --release -q -p ottermq -p ottermq-perf
DATA=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$DATA"' EXIT
start() {
  target/release/ottermq --bind 127.0.0.1 --amqp-port 5691 --http-port 15691 --data-dir "$DATA/d" >>"$DATA/log" 2>&1 &
  PID=$!
}
ready() { curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15691/ready 2>/dev/null || true; }
depth() {
  curl -s -u guest:guest http://127.0.0.1:15691/api/queues |
    python3 -c 'import json,sys; print(sum(q.get("messages_ready", 0) for q in json.load(sys.stdin) if q["name"] == "bench-restart"))' 2>/dev/null || echo 0
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
start
until [ "$(ready)" = 200 ]; do sleep 0.1; done
FILL_START=$(date +%s.%N)
# ottermq-perf purges its queue at start, so one run long enough to pass N (no consumer).
SECS=${SECS:-$((N / 40000 + 5))}
target/release/ottermq-perf --quiet -x 1 -y 0 -s 1024 --confirm 1000 --persistent -z "$SECS" --keep-queue \
  --queue bench-restart --uri amqp://guest:guest@127.0.0.1:5691/%2f >/dev/null
FILL_END=$(date +%s.%N)
QUEUED=$(depth)
RSS_FULL=$(rss_kib)
DISK=$(du -sk "$DATA/d" | cut -f1)
kill -TERM $PID; wait $PID || true
T0=$(date +%s.%N)
start
until [ "$(ready)" = 200 ]; do sleep 0.02; done
T1=$(date +%s.%N)
RECOVERED=$(depth)
RSS_RECOVERED=$(rss_kib)
python3 - <<PY
print('{"queued": %d, "fill_s": %.1f, "rss_full_mib": %.0f, "disk_mib": %.0f, "restart_s": %.2f, "recovered": %d, "rss_after_restart_mib": %.0f}' % (
  $QUEUED, $FILL_END - $FILL_START, $RSS_FULL / 1024, $DISK / 1024, $T1 - $T0, $RECOVERED, $RSS_RECOVERED / 1024))
PY
