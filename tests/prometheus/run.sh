#!/usr/bin/env bash
# Prometheus end to end, with the real Debian prometheus/promtool:
#  - promtool check config / rules on prometheus.yml and its alert rules;
#  - docker-compose config on docker-compose.monitoring.yml;
#  - a scrape of /metrics taken under load passes `promtool check metrics`;
#  - a real Prometheus scrapes the running broker every second under load (OpenMetrics, as
#    Prometheus negotiates it), its alert rules evaluate without error, and every PromQL
#    expression of the grafana/ dashboards returns data (no panel without data).
# Every process started here is stopped by PID on exit.
set -uo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$REPO_ROOT"
export OTTERMQ_BIN=${OTTERMQ_BIN:-$REPO_ROOT/target/release/ottermq}
PERF_BIN=${PERF_BIN:-$(dirname "$OTTERMQ_BIN")/ottermq-perf}
PY=$REPO_ROOT/.venv-test/bin/python
[ -x "$PY" ] || PY=python3
source "$REPO_ROOT/tests/lib.sh"

PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
check() { # check "name" command...
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name"; echo "$out" | tail -20; fi
}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  stop_broker
  rm -rf "$WORK"
}
trap cleanup EXIT

check "promtool check config prometheus.yml" promtool check config prometheus.yml
check "promtool check rules prometheus/alerts.yml" promtool check rules prometheus/alerts.yml
check "docker-compose -f docker-compose.monitoring.yml config" \
  docker-compose -f docker-compose.monitoring.yml config -q

for bin in "$OTTERMQ_BIN" "$PERF_BIN"; do
  if [ ! -x "$bin" ]; then
    fail "binary $bin missing (cargo build --release --bins)"
    echo "$PASSED passed, $FAILED failed"
    exit 1
  fi
done

start_broker || { fail "broker start"; echo "$PASSED passed, $FAILED failed"; exit 1; }
trap cleanup EXIT # start_broker replaced the trap
METRICS="http://127.0.0.1:$HTTP_PORT/metrics"

# Load: publishers with confirms, manual-ack consumers, rate-limited so the shared CI machine
# is not saturated. Long enough to outlast every query below.
QUEUE=prom-e2e
"$PERF_BIN" --uri "$AMQP_URL" --producers 2 --consumers 2 --size 512 --duration 90 \
  --queue "$QUEUE" --manual-ack --confirm 100 --rate 2000 --quiet >"$WORK/perf.log" 2>&1 &
PIDS+=($!)
sleep 3

curl -sf "$METRICS" -o "$WORK/scrape.txt"
check "promtool check metrics on a scrape under load ($(wc -l <"$WORK/scrape.txt") lines)" \
  bash -c "promtool check metrics <'$WORK/scrape.txt'"
check "scrape under load has publishes" grep -qE '^ottermq_messages_published_total [1-9]' "$WORK/scrape.txt"
curl -sf -H 'Accept: application/openmetrics-text;version=1.0.0' "$METRICS" -o "$WORK/om.txt"
check "OpenMetrics scrape ends with # EOF" bash -c "tail -1 '$WORK/om.txt' | grep -qx '# EOF'"

PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $REPO_ROOT/prometheus/alerts.yml
scrape_configs:
  - job_name: ottermq
    static_configs:
      - targets: ["127.0.0.1:$HTTP_PORT"]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)

PROM_URL="http://127.0.0.1:$PROM_PORT" QUEUE="$QUEUE" WORK="$WORK" "$PY" - <<'PY'
import glob, json, math, os, sys, time, urllib.parse, urllib.request

prom = os.environ["PROM_URL"]
queue = os.environ["QUEUE"]

def api(path, **params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)

passed = failed = 0
def result(good, what, detail=""):
    global passed, failed
    if good:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what} {detail}")

# Wait for Prometheus and for at least 10 successful scrapes.
deadline = time.time() + 60
scrapes = 0
while time.time() < deadline:
    try:
        r = api("/api/v1/query", query='sum_over_time(up{job="ottermq"}[1m])')
        res = r["data"]["result"]
        scrapes = float(res[0]["value"][1]) if res else 0
        if scrapes >= 10:
            break
    except Exception:
        pass
    time.sleep(1)
result(scrapes >= 10, f"Prometheus scraped OtterMQ successfully {scrapes:.0f} times")
targets = api("/api/v1/targets")["data"]["activeTargets"]
result(all(t["health"] == "up" and not t["lastError"] for t in targets),
       "scrape target healthy", json.dumps([(t["health"], t["lastError"]) for t in targets]))

def exprs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                yield v
            else:
                yield from exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)

dashboards = sorted(glob.glob("grafana/dashboards/*.json"))
result(len(dashboards) >= 2, f"{len(dashboards)} dashboards")
subst = {"$__rate_interval": "15s", "$__interval": "5s", "$vhost": "/", "$queue": queue}
for path in dashboards:
    with open(path) as f:
        dash = json.load(f)
    for expr in exprs(dash.get("panels", [])):
        q = expr
        for k, v in subst.items():
            q = q.replace("${" + k[1:] + "}", v).replace(k, v)
        try:
            r = api("/api/v1/query", query=q)
            values = [float(s["value"][1]) for s in r["data"]["result"]]
            good = r["status"] == "success" and values and not all(math.isnan(v) for v in values)
            result(good, f"{os.path.basename(path)}: {expr}", f"-> {r['data']['result']}")
        except Exception as e:
            result(False, f"{os.path.basename(path)}: {expr}", repr(e))

# Template variables resolve to the load's queue.
r = api("/api/v1/series", **{"match[]": 'ottermq_queue_messages_ready{vhost="/"}'})
names = {s.get("queue") for s in r["data"]}
result(queue in names, "queue variable values include the load's queue", str(sorted(names))[:200])

# The alert rules load and evaluate without errors against real data.
groups = api("/api/v1/rules")["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
result(len(rules) >= 6, f"{len(rules)} alert rules loaded")
bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"]
result(not bad, "every alert rule evaluates (health ok)", str(bad))

with open(os.path.join(os.environ["WORK"], "py.counts"), "w") as f:
    f.write(f"{passed} {failed}\n")
PY
if [ -f "$WORK/py.counts" ]; then
  read -r p f <"$WORK/py.counts"
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
else
  fail "prometheus queries did not run"
  tail -20 "$WORK/prometheus.log"
fi
if [ "$FAILED" -gt 0 ]; then
  echo "--- prometheus log (tail)"; tail -5 "$WORK/prometheus.log"
  echo "--- perf log"; cat "$WORK/perf.log"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
