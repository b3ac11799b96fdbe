#!/usr/bin/env bash
# Runs benchmark scenarios with ottermq-perf against OtterMQ and RabbitMQ 3.10 in one run and
# prints one JSON line per run. Usage: scripts/bench.sh [scenario ...] (default: s1)
#   RUNS=3 DURATION=10 scripts/bench.sh s1
# Starts OtterMQ (release build) on 5690 and RabbitMQ on 5673 (scripts/rabbitmq.sh), stops
# what it started, and leaves everything else alone.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
SCENARIOS=${*:-s1}
cargo build --release -q -p ottermq -p ottermq-perf
DATA=$(mktemp -d)
target/release/ottermq --bind 127.0.0.1 --amqp-port 5690 --http-port 15690 --data-dir "$DATA" >"$DATA/log" 2>&1 &
OTTER_PID=$!
trap 'kill $OTTER_PID 2>/dev/null || true' EXIT
STARTED_RABBIT=0
if [ "$(scripts/rabbitmq.sh status)" != up ]; then scripts/rabbitmq.sh start >/dev/null; STARTED_RABBIT=1; fi
sleep 1

args_for() {
  case "$1" in
    s1) echo "-x 1 -y 1 -s 16" ;;                                   # autoack
    s2) echo "-x 1 -y 1 -s 1024 --manual-ack --prefetch 100 --multi-ack 50" ;;
    s3) echo "-x 1 -y 1 -s 1024 --confirm 1000 --persistent --manual-ack --prefetch 100 --multi-ack 50" ;;
    s5) echo "-x 1 -y 1 -s 1024 --rate 1000" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

for sc in $SCENARIOS; do
  for run in $(seq 1 "$RUNS"); do
    for broker in ottermq rabbitmq; do
      port=5690; [ "$broker" = rabbitmq ] && port=5673
      # shellcheck disable=SC2046
      out=$(target/release/ottermq-perf --quiet -z "$DURATION" --queue "bench-$sc" \
              --uri "amqp://guest:guest@127.0.0.1:$port/%2f" $(args_for "$sc"))
      echo "{\"scenario\":\"$sc\",\"run\":$run,\"broker\":\"$broker\",\"result\":$out}"
    done
  done
done
if [ $STARTED_RABBIT = 1 ]; then scripts/rabbitmq.sh stop; fi
