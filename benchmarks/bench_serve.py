"""Benchmark ``Simulator.serve()`` (issue 18): what the Invoke API and an HTTP route add over ``fn.invoke()``.

    python benchmarks/bench_serve.py [--quick] [--sandbox NAME] [--json PATH]

On a warm no-op function, in one run:

1. latency, one client, one request at a time (median and p95): ``fn.invoke()`` directly; the Invoke API with
   a raw kept-alive ``http.client`` connection; the Invoke API with boto3's Lambda client (what most callers
   use: botocore's signing and parsing are in the figure); an HTTP API route (``GET /noop``) with
   ``http.client``. The difference to ``fn.invoke()`` is what the endpoint adds.
2. throughput: requests per second from 1, 4 and 16 client threads on the route and on the Invoke API (raw),
   each thread on its own kept-alive connection; the instances scale with the requests in flight.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lambdasim import Simulator
from lambdasim._services.service import AWS_CREDENTIALS

NOOP = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"
TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Noop:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: app.handler
      Runtime: python3.11
      Events:
        Get:
          Type: HttpApi
          Properties: {Path: /noop, Method: get}
"""


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": statistics.median(ordered) * 1e6, "p95_us": ordered[int(len(ordered) * 0.95)] * 1e6}


def _timed(call: Callable[[], Any], n: int) -> list[float]:
    for _ in range(min(50, n)):
        call()  # warm-up: connections open, instance warm
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


def _raw_invoke(conn: http.client.HTTPConnection) -> None:
    conn.request("POST", "/2015-03-31/functions/Noop/invocations", body=b"{}")
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"Invoke API answered {response.status}")


def _route(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/noop")
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"the route answered {response.status}")


def _throughput(host: str, port: int, call: Callable[[http.client.HTTPConnection], None], threads: int,
                seconds: float) -> float:
    counts = [0] * threads
    stop = time.perf_counter() + seconds
    errors: list[BaseException] = []

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            call(conn)  # connected, warm
            while time.perf_counter() < stop:
                call(conn)
                counts[k] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            conn.close()

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise RuntimeError(errors[0])
    return sum(counts) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--sandbox", default="namespace")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    n, seconds = (200, 1.0) if args.quick else (2000, 4.0)
    import boto3
    from botocore.config import Config

    figures: dict[str, Any] = {"sandbox": args.sandbox, "samples": n}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "code").mkdir()
        (Path(tmp) / "code" / "app.py").write_text(NOOP)
        (Path(tmp) / "template.yaml").write_text(TEMPLATE)
        with Simulator(sandbox=args.sandbox) as sim:
            fn = sim.deploy_from_template(Path(tmp) / "template.yaml", "Noop")
            with sim.serve() as url:
                parts = urlsplit(url)
                host, port = str(parts.hostname), int(parts.port or 80)
                conn = http.client.HTTPConnection(host, port)
                client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                                      config=Config(retries={"max_attempts": 0}), **AWS_CREDENTIALS)
                latency = {
                    "fn.invoke()": _stats(_timed(lambda: fn.invoke({}), n)),
                    "Invoke API, http.client": _stats(_timed(lambda: _raw_invoke(conn), n)),
                    "Invoke API, boto3": _stats(_timed(lambda: client.invoke(FunctionName="Noop", Payload=b"{}"),
                                                       n)),
                    "HTTP API route, http.client": _stats(_timed(lambda: _route(conn), n)),
                }
                conn.close()
                base = latency["fn.invoke()"]["median_us"]
                for row in latency.values():
                    row["added_us"] = row["median_us"] - base
                figures["latency"] = latency
                figures["throughput_rps"] = {
                    f"{what}, {threads} threads": _throughput(host, port, call, threads, seconds)
                    for what, call in (("route", _route), ("Invoke API", _raw_invoke)) for threads in (1, 4, 16)}
                figures["instances"] = len(fn.instances)
    print(f"bench_serve ({args.sandbox}, {n} samples each)")
    for name, row in figures["latency"].items():
        print(f"  {name:<30} median {row['median_us']:8.1f} µs  p95 {row['p95_us']:8.1f} µs  "
              f"added {row['added_us']:8.1f} µs")
    for name, rps in figures["throughput_rps"].items():
        print(f"  {name:<30} {rps:8.0f} requests/s")
    print(f"  instances at the end: {figures['instances']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
