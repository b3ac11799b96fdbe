#!/usr/bin/env bash
# Runs benchmark scenarios with ottermq-perf against OtterMQ and RabbitMQ 3.10 in one run and
# prints one JSON line per run. Usage: scripts/bench.sh [scenario ...] (default: s1)
#   RUNS=3 DURATION=10 scripts/bench.sh s1
#   RUNS=3 RUNS_s5=9 scripts/bench.sh s1 s5   (RUNS_<scenario> overrides RUNS for that one)
#   BROKERS=ottermq DURATION=3 RUNS=1 scripts/bench.sh s4 s6 ceiling   (OtterMQ only)
# Starts OtterMQ (release build) on 5690 and RabbitMQ on 5673 (scripts/rabbitmq.sh), stops
# what it started, and leaves everything else alone. Each report carries the broker's CPU
# share and RSS ("broker", from /proc/<pid>) and ottermq-perf's own CPU share.
# Scenario "ceiling" runs the S1 producer against ottermq-perf's own --sink (no broker):
# the load generator's maximum publish rate, to compare the broker figures against.
# Scenario "s5floor" runs S5 against the sink, which forwards each publish to the consumer:
# the latency floor of the load generator and the machine, included in every broker's S5.
# S5 and s5floor run the load generator as one thread that sleeps in ppoll between sends
# and deliveries (--poll-loop); S5_MODE=single runs it on a current-thread tokio runtime
# instead (--single-thread, the fifth session's figures), S5_MODE=multi on the multi-thread
# runtime the other scenarios use. The sink runs on one thread unless S5_MODE=multi.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
SCENARIOS=${*:-s1}
BROKERS=${BROKERS:-ottermq rabbitmq}
# S6 opens a thousand connections; each side needs a descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release -q -p ottermq -p ottermq-perf
DATA=$(mktemp -d)
target/release/ottermq --bind 127.0.0.1 --amqp-port 5690 --http-port 15690 --data-dir "$DATA" >"$DATA/log" 2>&1 &
OTTER_PID=$!
SINK_PID=
trap 'kill $OTTER_PID $SINK_PID 2>/dev/null || true' EXIT
STARTED_RABBIT=0
RABBIT_PID_FILE=${RABBIT_BASE:-/tmp/ottermq-rabbit-5673}/rabbit.pid
case " $BROKERS " in
  *" rabbitmq "*)
    if [ "$(scripts/rabbitmq.sh status)" != up ]; then scripts/rabbitmq.sh start >/dev/null; STARTED_RABBIT=1; fi ;;
esac
# The sink (scenario "ceiling") on a free port; it prints {"sink":"127.0.0.1:PORT"} first.
case " $SCENARIOS " in
  *" ceiling "*|*" s5floor "*)
    target/release/ottermq-perf --sink 127.0.0.1:0 $([ "${S5_MODE:-poll}" = multi ] || echo --single-thread) >"$DATA/sink" &
    SINK_PID=$!
    for _ in $(seq 1 50); do [ -s "$DATA/sink" ] && break; sleep 0.1; done
    SINK_ADDR=$(sed -n 's/.*"sink":"\([^"]*\)".*/\1/p' "$DATA/sink" | head -1) ;;
esac
sleep 1

s5_mode() {
  case "${S5_MODE:-poll}" in
    poll) echo --poll-loop ;;
    single) echo --single-thread ;;
    multi) ;;
    *) echo "S5_MODE is poll, single or multi" >&2; exit 2 ;;
  esac
}
args_for() {
  case "$1" in
    s1) echo "-x 1 -y 1 -s 16" ;;                                   # autoack
    s2) echo "-x 1 -y 1 -s 1024 --manual-ack --prefetch 100 --multi-ack 50" ;;
    s3) echo "-x 1 -y 1 -s 1024 --confirm 1000 --persistent --manual-ack --prefetch 100 --multi-ack 50" ;;
    s4) echo "-x 1 -y 10 -s 256 --queues 10 --exchange bench-s4 --exchange-type fanout" ;;  # fanout, one consumer per queue
    s5) echo "-x 1 -y 1 -s 1024 --rate 1000 $(s5_mode)" ;;
    s6) echo "-x 500 -y 500 -s 256 --queues 500 --rate 10" ;;      # 500 connections each way at 10 msg/s
    ceiling) echo "-x 1 -y 0 -s 16" ;;                              # S1's producer against the sink
    s5floor) echo "-x 1 -y 1 -s 1024 --rate 1000 $(s5_mode)" ;;  # S5 against the forwarding sink
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

for sc in $SCENARIOS; do
  runs_var="RUNS_$sc"   # RUNS_s5=9: more runs of one scenario (a p99 on a shared VM is noisy)
  for run in $(seq 1 "${!runs_var:-$RUNS}"); do
    for broker in $BROKERS; do
      host=127.0.0.1:5690; pid=$OTTER_PID
      if [ "$broker" = rabbitmq ]; then host=127.0.0.1:5673; pid=$(cat "$RABBIT_PID_FILE" 2>/dev/null || echo); fi
      if [ "$sc" = ceiling ] || [ "$sc" = s5floor ]; then
        [ "$broker" = ottermq ] || continue   # one sink run per round
        broker=sink; host=$SINK_ADDR; pid=$SINK_PID
      fi
      # shellcheck disable=SC2046
      out=$(target/release/ottermq-perf --quiet -z "$DURATION" --queue "bench-$sc" \
              --uri "amqp://guest:guest@$host/%2f" ${pid:+--broker-pid "$pid"} $(args_for "$sc"))
      echo "{\"scenario\":\"$sc\",\"run\":$run,\"broker\":\"$broker\",\"result\":$out}"
    done
  done
done
if [ $STARTED_RABBIT = 1 ]; then scripts/rabbitmq.sh stop; fi
