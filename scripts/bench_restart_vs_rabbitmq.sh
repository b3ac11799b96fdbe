#!/usr/bin/env bash
# Restart with N persistent 1 KiB messages on disk, OtterMQ and RabbitMQ 3.10 in one run, the
# same N for both (ottermq-perf --count): fills a durable queue with confirmed persistent
# publishes (1,000 in flight, no consumer), reads the broker's RSS with them queued and its data
# directory size, stops it gracefully (SIGTERM), starts it again on the same data and times
# until the queue answers a passive declare with all N messages (for OtterMQ also /ready), then
# reads RSS again (and OtterMQ's VmHWM, the peak of its recovery). One JSON line per broker.
#   N=1000000 scripts/bench_restart_vs_rabbitmq.sh
# Needs the release build (built here) and .venv-test (pika; `bash scripts/test.sh --deps-only`).
# RabbitMQ runs from a fresh base directory on RABBIT_PORT (default 5673), default settings.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
RABBIT_PORT=${RABBIT_PORT:-5673}
cargo build --release -q -p ottermq -p ottermq-perf
[ -x .venv-test/bin/python ] || bash scripts/test.sh --deps-only
PERF=target/release/ottermq-perf
DATA=$(mktemp -d)
chmod 755 "$DATA"  # RabbitMQ runs as user rabbitmq and needs to reach its base under it
RBASE=$DATA/rabbit
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  RABBIT_PORT=$RABBIT_PORT RABBIT_BASE=$RBASE scripts/rabbitmq.sh stop >/dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT
source tests/lib.sh   # free_port
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Seconds until queue $2 on port $1 holds N messages (passive declare), polling.
wait_depth() {
  .venv-test/bin/python - "$1" "$2" "$N" <<'PY'
import sys, time, pika
port, queue, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline = time.time() + 600
while time.time() < deadline:
    try:
        c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, socket_timeout=2, blocked_connection_timeout=5))
        got = c.channel().queue_declare(queue, passive=True).method.message_count
        c.close()
        if got >= n:
            print(got)
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit("queue never reached its depth")
PY
}
fill() { "$PERF" --quiet -x 1 -y 0 -s 1024 --confirm 1000 --persistent --count "$N" -z 3600 --keep-queue \
  --queue bench-restart --uri "amqp://guest:guest@127.0.0.1:$1/%2f" --broker-pid "$2"; }
report() {
  python3 - "$@" <<'PY'
import json, sys
b, fill, rss_full, disk, restart, depth, rss_after, hwm = sys.argv[1:9]
f = json.loads(fill)
print(json.dumps({"broker": b, "messages": int(depth), "fill_confirmed_per_s": round(f["confirmed"] / f["seconds"]),
  "rss_queued_mib": round(int(rss_full) / 1024), "disk_mib": round(int(disk) / 1024),
  "restart_s": round(float(restart), 2), "rss_after_restart_mib": round(int(rss_after) / 1024),
  "restart_peak_rss_mib": round(int(hwm) / 1024) if hwm != "-" else None}))
PY
}

# OtterMQ
AMQP=$(free_port)
HTTP=$(free_port)
start_otter() {
  target/release/ottermq --bind 127.0.0.1 --amqp-port "$AMQP" --http-port "$HTTP" --data-dir "$DATA/otter" >>"$DATA/otter.log" 2>&1 &
  PID=$!
}
ready() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/ready" 2>/dev/null || true; }
start_otter
until [ "$(ready)" = 200 ]; do sleep 0.1; done
FILL=$(fill "$AMQP" "$PID")
sleep 1
RSS_FULL=$(kib "$PID" VmRSS)
DISK=$(du -sk "$DATA/otter" | cut -f1)
kill -TERM "$PID"; wait "$PID" || true
T0=$(date +%s.%N)
start_otter
until [ "$(ready)" = 200 ]; do sleep 0.02; done
DEPTH=$(wait_depth "$AMQP" bench-restart)
T1=$(date +%s.%N)
report OtterMQ "$FILL" "$RSS_FULL" "$DISK" "$(echo "$T1 - $T0" | bc)" "$DEPTH" "$(kib "$PID" VmRSS)" "$(kib "$PID" VmHWM)"
kill -TERM "$PID"; wait "$PID" || true
PID=

# RabbitMQ 3.10, from a fresh base directory
export RABBIT_PORT RABBIT_BASE=$RBASE
scripts/rabbitmq.sh start >/dev/null
BEAM=$(cat "$RBASE/rabbit.pid")
FILL=$(fill "$RABBIT_PORT" "$BEAM")
sleep 1
RSS_FULL=$(kib "$BEAM" VmRSS)
DISK=$(du -sk "$RBASE/mnesia" | cut -f1)
scripts/rabbitmq.sh stop
while kill -0 "$BEAM" 2>/dev/null; do sleep 0.1; done
T0=$(date +%s.%N)
scripts/rabbitmq.sh start >/dev/null
DEPTH=$(wait_depth "$RABBIT_PORT" bench-restart)
T1=$(date +%s.%N)
BEAM=$(cat "$RBASE/rabbit.pid")
report "RabbitMQ 3.10" "$FILL" "$RSS_FULL" "$DISK" "$(echo "$T1 - $T0" | bc)" "$DEPTH" "$(kib "$BEAM" VmRSS)" -
