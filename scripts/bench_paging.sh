#!/usr/bin/env bash
# Lazy paging figures: RSS with N transient 1 KiB messages queued and no consumer (default
# 1,000,000). Starts OtterMQ (release, or $BIN) on two free ports with a fresh data directory, fills a
# queue (ottermq-perf, no consumer, confirms on so the count is exact), waits for the depth to
# settle and reads VmRSS and the queue's message_bytes_ram. Prints one JSON line.
# Usage: N=1000000 scripts/bench_paging.sh   (BIN=/path/ottermq PERF=/path/ottermq-perf to
# measure another build; BUDGET=bytes sets queue_memory_budget_bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
BIN=${BIN:-target/release/ottermq}
PERF=${PERF:-target/release/ottermq-perf}
[ "$BIN" = target/release/ottermq ] && cargo build --release -q -p ottermq -p ottermq-perf
source tests/lib.sh   # free_port
AMQP=$(free_port)
HTTP=$(free_port)
DATA=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$DATA"' EXIT
CONF=()
if [ -n "${BUDGET:-}" ]; then
  echo "queue_memory_budget_bytes = $BUDGET" >"$DATA/c.toml"
  CONF=(--config "$DATA/c.toml")
fi
"$BIN" --bind 127.0.0.1 --amqp-port $AMQP --http-port $HTTP --data-dir "$DATA/d" "${CONF[@]}" >>"$DATA/log" 2>&1 &
PID=$!
sleep 0.5
kill -0 $PID  # the broker must be ours (a port taken by another process fails here)
ready() { curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$HTTP/ready 2>/dev/null || true; }
until [ "$(ready)" = 200 ]; do sleep 0.1; done
q() { curl -s -u guest:guest http://127.0.0.1:$HTTP/api/queues/%2f/bench-paging; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', -1))"; }
SECS=${SECS:-$((N / 40000 + 5))}
T0=$(date +%s.%N)
# One run long enough to pass N (ottermq-perf purges its queue at start).
"$PERF" --quiet -x 1 -y 0 -s 1024 --confirm 1000 -z "$SECS" --keep-queue \
  --queue bench-paging --uri amqp://guest:guest@127.0.0.1:$AMQP/%2f >/dev/null
T1=$(date +%s.%N)
QUEUED=$(q | field messages_ready)
RAM=$(q | field message_bytes_ram)
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
DISK=$(du -sk "$DATA/d" | cut -f1)
python3 - <<PY
print('{"queued": %d, "fill_s": %.1f, "rss_mib": %.0f, "message_bytes_ram": %d, "data_dir_mib": %.0f}' % (
  $QUEUED, $T1 - $T0, $RSS / 1024, $RAM, $DISK / 1024))
PY
