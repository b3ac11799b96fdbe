#!/usr/bin/env bash
# Throughput with tracing off, on at ratio 0.1 and on at ratio 1.0, alternating, in one run.
#   RUNS=3 DURATION=10 scripts/bench-tracing.sh
# ottermq-perf sends no trace headers, so the traced modes turn on tracing_start_untraced:
# the broker starts a trace for each message and keeps the ratio of them (every kept message
# gets a publish, a queue-wait and a deliver span). Spans go to a counting OTLP/gRPC receiver
# (tests/tracing/otlp_sink.py) on 127.0.0.1. Stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
ARGS=${ARGS:--x 1 -y 1 -s 16}
cargo build --release -q -p ottermq -p ottermq-perf
[ -x .venv-test/bin/python ] || bash scripts/test.sh --deps-only
source tests/lib.sh   # free_port
WORK=$(mktemp -d)
OTLP_PORT=$(free_port)
.venv-test/bin/python tests/tracing/otlp_sink.py "$OTLP_PORT" "$WORK/spans" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
BROKER_PID=
cleanup() {
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
  kill "$SINK_PID" 2>/dev/null || true
}
trap cleanup EXIT
sleep 1
for run in $(seq 1 "$RUNS"); do
  for mode in off 0.1 1.0; do
    port=$(free_port)
    before=$(cat "$WORK/spans" 2>/dev/null || echo 0)
    env_args=(OTTERMQ_TRACING_ENABLED=false)
    if [ "$mode" != off ]; then
      env_args=(OTTERMQ_TRACING_ENABLED=true OTTERMQ_TRACING_START_UNTRACED=true
        OTTERMQ_TRACING_SAMPLE_RATIO="$mode" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT")
    fi
    env "${env_args[@]}" target/release/ottermq --bind 127.0.0.1 --amqp-port "$port" --http-port 0 \
      --data-dir "$WORK/data-$run-$mode" >"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    # shellcheck disable=SC2086
    out=$(target/release/ottermq-perf --quiet -z "$DURATION" --queue "bench-trace" \
            --uri "amqp://guest:guest@127.0.0.1:$port/%2f" $ARGS)
    kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true; BROKER_PID=
    sleep 0.5
    after=$(cat "$WORK/spans" 2>/dev/null || echo 0)
    echo "{\"run\":$run,\"tracing\":\"$mode\",\"spans_received\":$((after - before)),\"result\":$out}"
  done
done
