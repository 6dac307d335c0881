"""Benchmark the backing services: start-up time per provider, and a GET's round trip
from inside an instance (through the fault proxy, and direct) next to the same GET
from the test process.

    python benchmarks/bench_services.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lambdasim import ServiceError, Simulator

HERE = Path(__file__).resolve().parent
PROVIDERS = {"aws": ["binary", "docker", "embedded"], "redis": ["binary", "docker", "embedded"],
             "memcached": ["binary", "docker"]}


def _time_gets(get: Callable[[], object], n: int, warmup: int = 20) -> tuple[float, float]:
    for _ in range(warmup):
        get()
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        get()
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def _seed_and_client(sim: Simulator, kind: str) -> Callable[[], object]:
    if kind == "aws":
        s3 = sim.boto3_client("s3")
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="k", Body=b"v" * 100)
        return lambda: s3.get_object(Bucket="bench", Key="k")["Body"].read()
    if kind == "redis":
        r = sim.redis_client()
        r.set("k", b"v" * 100)
        return lambda: r.get("k")
    mc = sim.memcached_client()
    mc.set("k", b"v" * 100)
    return lambda: mc.get("k")


def bench(kind: str, provider: str, n: int) -> dict[str, Any]:
    row: dict[str, Any] = {"service": kind, "provider": provider}
    results: dict[str, tuple[float, float]] = {}
    for faults in (True, False):
        started = time.perf_counter()
        try:
            sim = Simulator(services={kind: {"provider": provider, "faults": faults}})
        except ServiceError as e:
            row["skipped"] = str(e).splitlines()[-1].strip()
            return row
        try:
            if faults:
                row["start_s"] = time.perf_counter() - started
                results["test process"] = _time_gets(_seed_and_client(sim, kind), n)
            else:
                _seed_and_client(sim, kind)
            fn = sim.deploy("app.handler", code_dir=HERE / "services", name="bench", timeout_s=120, memory_mb=512)
            inv = fn.invoke({"kind": kind, "n": n})
            if inv.error is not None:
                raise RuntimeError(f"{kind}/{provider}: {inv.error}")
            label = "instance, via fault proxy" if faults else "instance, direct"
            results[label] = (inv.payload["median_ns"], inv.payload["p99_ns"])
        finally:
            sim.close()
    row["gets"] = {k: {"median_us": m / 1e3, "p99_us": p / 1e3} for k, (m, p) in results.items()}
    return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer GETs")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    n = 200 if args.quick else 2000
    print(f"machine: nproc={os.cpu_count()}, {os.uname().release}, CPython {sys.version.split()[0]}; {n} GETs each")
    rows = [bench(kind, provider, n) for kind, providers in PROVIDERS.items() for provider in providers]
    print(f"\n{'service':10} {'provider':9} {'start':>8}  {'GET from':28} {'median':>10} {'p99':>10}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['service']:10} {row['provider']:9} {'-':>8}  skipped: {row['skipped']}")
            continue
        first = True
        for where, figures in row["gets"].items():
            start = f"{row['start_s'] * 1000:.0f} ms" if first else ""
            print(f"{row['service'] if first else '':10} {row['provider'] if first else '':9} {start:>8}  "
                  f"{where:28} {figures['median_us']:8.1f} µs {figures['p99_us']:8.1f} µs")
            first = False
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
