#!/usr/bin/env bash
# Instructions the broker executes per message with the metrics core on versus off, counted by
# callgrind (valgrind), so the figure does not depend on how busy the machine is. Each build
# runs twice for the same duration at two fixed publish rates; the difference in instructions
# divided by the difference in messages is the per-message cost (start-up, the sampler's ticks
# and timers cancel out). Uses the binaries scripts/metrics_cost.sh leaves in target/metrics-cost.
# Usage: DURATION=10 LOW=2000 HIGH=6000 scripts/metrics_instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
LOW=${LOW:-2000}
HIGH=${HIGH:-6000}
OUT=target/metrics-cost
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null

# Total instructions (Ir) the broker ran while a producer published at $2 msg/s for DURATION s.
instructions() {
  local mode=$1 rate=$2 data pid enabled=true out
  [ "$mode" = off ] && enabled=false
  data=$(mktemp -d)
  echo "metrics_enabled = $enabled" >"$data/config.toml"
  valgrind --tool=callgrind --callgrind-out-file="$data/cg.out" "$OUT/ottermq-$mode" \
    --config "$data/config.toml" --bind 127.0.0.1 --amqp-port 5693 --http-port 15693 \
    --data-dir "$data/data" >"$data/log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/5693) 2>/dev/null && break
    sleep 0.1
  done
  out=$(target/release/ottermq-perf --quiet -z "$DURATION" --rate "$rate" --queue cg \
          --uri amqp://guest:guest@127.0.0.1:5693/%2f -x 1 -y 1 -s 16)
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  local ir
  ir=$(grep -m1 '^summary:' "$data/cg.out" | awk '{print $2}')
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(sys.argv[2], r["received"])' "$out" "$ir"
  rm -rf "$data"
}

for mode in off on; do
  read -r ir_lo n_lo < <(instructions "$mode" "$LOW")
  read -r ir_hi n_hi < <(instructions "$mode" "$HIGH")
  python3 -c '
import json, sys
mode, a, na, b, nb = sys.argv[1], *map(int, sys.argv[2:])
print(json.dumps({"mode": mode, "messages": [na, nb], "instructions": [a, b],
                  "instructions_per_msg": round((b - a) / (nb - na), 1)}))' \
    "$mode" "$ir_lo" "$n_lo" "$ir_hi" "$n_hi"
done
