#!/usr/bin/env python3
"""Turns the JSON lines of scripts/bench.sh into the markdown table of docs/BENCHMARKS.md:
min / median / max per scenario and broker, and OtterMQ's median against RabbitMQ's.
Usage: scripts/bench.sh s1 s2 | tee runs.jsonl; scripts/bench_table.py runs.jsonl"""
import json
import statistics
import sys
from collections import defaultdict

# scenario -> (label, value from one result, unit, higher is better)
METRICS = {
    "s1": [("received msg/s", lambda r: r["receive_rate"], True)],
    "s2": [("received msg/s", lambda r: r["receive_rate"], True)],
    "s3": [("confirmed msg/s", lambda r: r["confirmed"] / r["seconds"], True),
           ("received msg/s", lambda r: r["receive_rate"], True)],
    "s4": [("deliveries/s", lambda r: r["receive_rate"], True)],
    "s5": [("p50 ms", lambda r: r["latency_us"]["p50"] / 1000, False),
           ("p99 ms", lambda r: r["latency_us"]["p99"] / 1000, False)],
    "s5floor": [("p50 ms", lambda r: r["latency_us"]["p50"] / 1000, False),
                ("p99 ms", lambda r: r["latency_us"]["p99"] / 1000, False)],
    "s6": [("broker RSS MiB (peak)", lambda r: r["broker"]["rss_kib_max"] / 1024, False),
           ("broker CPU %", lambda r: r["broker"]["cpu_percent"], False),
           ("received msg/s", lambda r: r["receive_rate"], True)],
    "ceiling": [("sent msg/s", lambda r: r["send_rate"], True)],
}


def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def main():
    runs = defaultdict(list)
    perf_cpu = defaultdict(list)
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        runs[(row["scenario"], row["broker"])].append(row["result"])
        if row["result"].get("perf_cpu_percent") is not None:
            perf_cpu[(row["scenario"], row["broker"])].append(row["result"]["perf_cpu_percent"])
    print("| scenario | measure | broker | runs | min | median | max | perf tool CPU % (median) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for sc in METRICS:
        for label, f, higher in METRICS[sc]:
            med = {}
            for broker in ("ottermq", "rabbitmq", "sink"):
                rs = runs.get((sc, broker))
                if not rs:
                    continue
                vals = []
                for r in rs:
                    try:
                        vals.append(f(r))
                    except (KeyError, TypeError, ZeroDivisionError):
                        pass
                if not vals:
                    continue
                med[broker] = statistics.median(vals)
                cpu = perf_cpu.get((sc, broker))
                cpu_s = fmt(statistics.median(cpu)) if cpu else ""
                print(f"| {sc} | {label} | {broker} | {len(vals)} | {fmt(min(vals))} | "
                      f"{fmt(med[broker])} | {fmt(max(vals))} | {cpu_s} |")
            if "ottermq" in med and "rabbitmq" in med and med["rabbitmq"] and med["ottermq"]:
                x = med["ottermq"] / med["rabbitmq"] if higher else med["rabbitmq"] / med["ottermq"]
                ratios.append((sc, label, x, higher))
    if ratios:
        print()
        print("| scenario | measure | OtterMQ vs RabbitMQ (median) |")
        print("| --- | --- | ---: |")
        for sc, label, x, higher in ratios:
            how = "x RabbitMQ's rate" if higher else "x better (RabbitMQ's / OtterMQ's)"
            print(f"| {sc} | {label} | {x:.2f} {how} |")


if __name__ == "__main__":
    main()
