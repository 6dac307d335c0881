"""Handlers for benchmarks/bench_fakefs.py: boto3's first clients, and a large /tmp write."""

import os
import time


def clients(event, context):
    started = time.perf_counter()
    import boto3

    imported = time.perf_counter()
    boto3.client("dynamodb", region_name="us-east-1")
    boto3.client("s3", region_name="us-east-1")
    done = time.perf_counter()
    return {"import_s": imported - started, "clients_s": done - imported, "total_s": done - started}


def write(event, context):
    chunk = b"x" * (1 << 20)
    started = time.perf_counter()
    with open("/tmp/big.bin", "wb") as f:
        for _ in range(event["mib"]):
            f.write(chunk)
    elapsed = time.perf_counter() - started
    os.remove("/tmp/big.bin")
    return {"write_s": elapsed}
