#!/usr/bin/env bash
# Throughput and broker CPU per message with the metrics core on versus off, alternating two
# release builds of the same commit in one run (issue "metrics core", docs/BENCHMARKS.md).
#   "off": built with `--features metrics-record-off` (counters and histograms record nothing)
#          and started with `metrics_enabled = false` in its configuration file (no sampler);
#   "on":  the default build and configuration.
# Usage: RUNS=5 DURATION=10 scripts/metrics_cost.sh   (prints one JSON line per run)
# Builds both binaries into target/release and keeps copies under target/metrics-cost/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
ARGS=${ARGS:--x 1 -y 1 -s 16}
OUT=target/metrics-cost
mkdir -p "$OUT"
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -q -p ottermq --features metrics-record-off
  cp target/release/ottermq "$OUT/ottermq-off"
  cargo build --release -q -p ottermq -p ottermq-perf
  cp target/release/ottermq "$OUT/ottermq-on"
fi
TICK=$(getconf CLK_TCK)

# utime+stime of a pid, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() {
  local mode=$1 data pid before after out
  data=$(mktemp -d)
  local enabled=true
  [ "$mode" = off ] && enabled=false
  echo "metrics_enabled = $enabled" >"$data/config.toml"
  "$OUT/ottermq-$mode" --config "$data/config.toml" --bind 127.0.0.1 --amqp-port 5691 \
    --http-port 15691 --data-dir "$data/data" >"$data/log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/5691) 2>/dev/null && break
    sleep 0.1
  done
  before=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  out=$(target/release/ottermq-perf --quiet -z "$DURATION" --queue metrics-cost \
          --uri amqp://guest:guest@127.0.0.1:5691/%2f $ARGS)
  after=$(cpu_ticks "$pid")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
  python3 - "$mode" "$before" "$after" "$TICK" "$out" <<'EOF'
import json, sys
mode, before, after, tick, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = json.loads(out)
received = r["received"]
cpu_s = (after - before) / tick
print(json.dumps({"mode": mode, "received_per_s": round(r["receive_rate"]),
                  "received": received, "broker_cpu_s": cpu_s,
                  "broker_cpu_us_per_msg": (cpu_s * 1e6 / received) if received else None}))
EOF
}

for run in $(seq 1 "$RUNS"); do
  # Alternate which build goes first, so drift in the machine's load hits both alike.
  if [ $((run % 2)) = 1 ]; then order="off on"; else order="on off"; fi
  for mode in $order; do
    echo "{\"run\":$run,\"result\":$(run_one "$mode")}"
  done
done
