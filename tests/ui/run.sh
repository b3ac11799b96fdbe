#!/usr/bin/env bash
# Management UI test: the release broker (metrics every second), ottermq-perf publishing,
# then tests/ui/ui.test.mjs in headless /usr/bin/chromium via playwright-core.
# Screenshots go to test-output/ui/. Everything started here is stopped by PID on exit.
set -euo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
OTTERMQ_BIN=${OTTERMQ_BIN:-$REPO_ROOT/target/release/ottermq}
PERF_BIN=${PERF_BIN:-$(dirname "$OTTERMQ_BIN")/ottermq-perf}
source "$REPO_ROOT/tests/lib.sh"
cd "$REPO_ROOT"
[ -x "$OTTERMQ_BIN" ] || { echo "no broker binary at $OTTERMQ_BIN (cargo build --release)"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$PERF_BIN" ] || { echo "no load generator at $PERF_BIN"; echo "0 passed, 1 failed"; exit 1; }
[ -d tests/ui/node_modules/playwright-core ] || (cd tests/ui && npm ci --silent --no-audit --no-fund)

CONFIG=$(mktemp --suffix=.toml)
echo 'metrics_interval_secs = 1' >"$CONFIG"
start_broker --config "$CONFIG"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  stop_broker
  rm -rf "$CONFIG" "$BROKER_DATA"
}
trap cleanup EXIT

URI="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
# Steady traffic for the overview: publish with confirms, consume with manual acks. Prefetch 1,
# so a message that arrives while the previous one is unacknowledged waits in the queue for the
# ack's round trip (a few per cent of them): the time-in-queue chart then has something above
# zero to draw (a message delivered as it arrives waits 0 µs).
"$PERF_BIN" --uri "$URI" -x 1 -y 1 --queue ui-load --confirm 50 --manual-ack --prefetch 1 --rate 300 -z 600 --quiet >/dev/null 2>&1 &
PIDS+=($!)
# A queue that only fills (no consumer), for the purge test.
"$PERF_BIN" --uri "$URI" -x 1 -y 0 --queue ui-purge --rate 10 -z 600 --quiet >/dev/null 2>&1 &
PIDS+=($!)

OUT="$REPO_ROOT/test-output/ui"
mkdir -p "$OUT"
set +e
BASE_URL="http://127.0.0.1:$HTTP_PORT" OUT_DIR="$OUT" LOAD_QUEUE=ui-load PURGE_QUEUE=ui-purge \
  timeout 300 node tests/ui/ui.test.mjs 2>&1 | tee "$OUT/log.txt"
rc=${PIPESTATUS[0]}
set -e
# A crash before the script's own summary (browser did not start, timeout) still ends with one.
grep -q ' passed, [0-9]* failed' "$OUT/log.txt" || echo "0 passed, 1 failed (ui.test.mjs exited with $rc)"
if [ "$rc" -ne 0 ]; then echo "broker log: $BROKER_LOG"; tail -20 "$BROKER_LOG" || true; fi
exit "$rc"
