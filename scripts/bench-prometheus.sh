#!/usr/bin/env bash
# Prometheus endpoint benchmarks (docs/BENCHMARKS.md, "Prometheus /metrics"):
#  1. scrape duration and size of /metrics with 1,000 queues (both text formats, and
#     /metrics/per-object), 30 scrapes each, reported as min / median / max;
#  2. ottermq-perf throughput while a real Prometheus scrapes /metrics every second versus
#     no scraper at all, alternated, RUNS runs each of SECS seconds.
# LIMIT sets prometheus_per_object_limit (default 1000). Needs release binaries (cargo build --release --bins), prometheus, and .venv-test (pika).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO_ROOT"
export OTTERMQ_BIN=${OTTERMQ_BIN:-$REPO_ROOT/target/release/ottermq}
PERF=$(dirname "$OTTERMQ_BIN")/ottermq-perf
QUEUES=${QUEUES:-1000}
RUNS=${RUNS:-3}
SECS=${SECS:-10}
LIMIT=${LIMIT:-1000}
source tests/lib.sh
WORK=$(mktemp -d)
PROM_PID=
cleanup() {
  if [ -n "$PROM_PID" ]; then kill "$PROM_PID" 2>/dev/null || true; wait "$PROM_PID" 2>/dev/null || true; fi
  stop_broker
  rm -rf "$WORK"
}
start_broker --prometheus-per-object-limit "$LIMIT"
trap cleanup EXIT

# 1,000 queues with 10 messages each, 5 of them consumed and acked (non-empty histograms).
AMQP_URL=$AMQP_URL QUEUES=$QUEUES .venv-test/bin/python - <<'PY'
import os, pika
conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
ch = conn.channel()
for i in range(int(os.environ["QUEUES"])):
    q = f"bench-q-{i:05}"
    ch.queue_declare(q)
    for _ in range(10):
        ch.basic_publish("", q, b"x" * 100)
    for _ in range(5):
        m, _, _ = ch.basic_get(q)
        ch.basic_ack(m.delivery_tag)
conn.close()
PY

stats() { sort -n | awk '{a[NR]=$1} END {printf "min %s median %s max %s", a[1], a[int((NR+1)/2)], a[NR]}'; }
scrape_bench() { # path accept
  local t=() s=()
  for _ in $(seq 1 30); do
    curl -s -o /dev/null -H "Accept: $2" -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$HTTP_PORT$1"
  done >"$WORK/scrapes"
  echo "$1 ($2): time_total s: $(cut -d' ' -f1 "$WORK/scrapes" | stats); bytes: $(cut -d' ' -f2 "$WORK/scrapes" | stats); lines: $(curl -s -H "Accept: $2" "http://127.0.0.1:$HTTP_PORT$1" | wc -l)"
}
echo "== scrape with $QUEUES queues (prometheus_per_object_limit $LIMIT)"
scrape_bench /metrics "text/plain"
scrape_bench /metrics "application/openmetrics-text;version=1.0.0"
scrape_bench /metrics/per-object "text/plain"

PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ottermq
    static_configs:
      - targets: ["127.0.0.1:$HTTP_PORT"]
YAML
perf_run() {
  "$PERF" --uri "$AMQP_URL" --producers 1 --consumers 1 --size 16 --duration "$SECS" \
    --queue bench-perf --quiet | tail -1
}
echo "== ottermq-perf 1 producer 1 consumer 16 B, ${SECS}s runs"
for r in $(seq 1 "$RUNS"); do
  echo "run $r no-scrape: $(perf_run)"
  prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb-$r" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prom.log" 2>&1 &
  PROM_PID=$!
  sleep 3
  echo "run $r scrape-1s: $(perf_run)"
  scrapes=$(curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=sum_over_time(up{job="ottermq"}[1m])' | grep -o '"value":\[[^]]*\]' || true)
  echo "   successful scrapes in the last minute: $scrapes"
  kill "$PROM_PID"; wait "$PROM_PID" 2>/dev/null || true; PROM_PID=
done
