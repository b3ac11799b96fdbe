#!/usr/bin/env bash
# UI cost with many queues: starts the release broker (default 5 s metrics interval), declares
# $QUEUES queues (default 1000) with pika, runs a light load, then tests/ui/bench.mjs.
#   bash tests/ui/bench.sh            (QUEUES=1000 MEASURE_SECS=60)
set -euo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
OTTERMQ_BIN=${OTTERMQ_BIN:-$REPO_ROOT/target/release/ottermq}
PERF_BIN=${PERF_BIN:-$(dirname "$OTTERMQ_BIN")/ottermq-perf}
QUEUES=${QUEUES:-1000}
source "$REPO_ROOT/tests/lib.sh"
cd "$REPO_ROOT"
start_broker
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  stop_broker
  rm -rf "$BROKER_DATA"
}
trap cleanup EXIT
.venv-test/bin/python - "$AMQP_URL" "$QUEUES" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
for i in range(int(sys.argv[2])):
    name = "bench-%04d" % i
    ch.queue_declare(name)
    for _ in range(i % 7):
        ch.basic_publish("", name, b"x" * 32)
c.close()
PY
"$PERF_BIN" --uri "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f" -x 1 -y 1 --queue bench-load --confirm 50 --manual-ack --rate 1000 -z 900 --quiet >/dev/null 2>&1 &
PIDS+=($!)
BASE_URL="http://127.0.0.1:$HTTP_PORT" node tests/ui/bench.mjs
