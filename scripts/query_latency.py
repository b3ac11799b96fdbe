#!/usr/bin/env python3
"""Time-series query latency of the metrics API with many queues.

Declares N queues on a running OtterMQ (pika), puts a message in each, waits for the sampler to
take a few samples, then times sequential requests over one keep-alive HTTP connection to each
metrics endpoint and prints p50/p95/p99/max in milliseconds as JSON. The figures include this
client's own time (a few tens of microseconds per request), so they overstate the server's.

    .venv-test/bin/python scripts/query_latency.py --amqp-port 5672 --http-port 15672 \
        --queues 1000 --requests 2000
"""

import argparse
import base64
import http.client
import json
import random
import time

import pika


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--amqp-port", type=int, default=5672)
    ap.add_argument("--http-port", type=int, default=15672)
    ap.add_argument("--queues", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=12.0,
                    help="seconds to wait for sampler ticks after declaring")
    args = ap.parse_args()

    conn = pika.BlockingConnection(pika.ConnectionParameters(args.host, args.amqp_port))
    ch = conn.channel()
    names = [f"ql-{i}" for i in range(args.queues)]
    for name in names:
        ch.queue_declare(name)
        ch.basic_publish("", name, b"x" * 16)
    time.sleep(args.settle)

    auth = "Basic " + base64.b64encode(b"guest:guest").decode()
    hc = http.client.HTTPConnection(args.host, args.http_port)
    endpoints = {
        "queue_series_10m": lambda: f"/api/metrics/queues/%2F/{random.choice(names)}?duration=10m",
        "timeseries_publish_5m": lambda: "/api/metrics/timeseries/publish?duration=5m",
        "queue_depths_top10_5m": lambda: "/api/metrics/timeseries/queue-depths?duration=5m",
        "overview": lambda: "/api/metrics/overview",
    }
    result = {"queues": args.queues, "requests_per_endpoint": args.requests}
    for label, path in endpoints.items():
        times = []
        for _ in range(args.requests):
            p = path()
            t0 = time.perf_counter()
            hc.request("GET", p, headers={"Authorization": auth})
            r = hc.getresponse()
            body = r.read()
            times.append((time.perf_counter() - t0) * 1000.0)
            if r.status != 200:
                raise SystemExit(f"{p}: HTTP {r.status} {body[:200]!r}")
        times.sort()
        result[label] = {
            "p50_ms": round(percentile(times, 50), 3),
            "p95_ms": round(percentile(times, 95), 3),
            "p99_ms": round(percentile(times, 99), 3),
            "max_ms": round(times[-1], 3),
            "bytes": len(body),
        }
    for name in names:
        ch.queue_delete(name)
    conn.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
