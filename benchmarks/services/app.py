"""Times GETs against a backing service from inside an instance."""

import os
import statistics
import time

import boto3
import redis
from pymemcache.client.base import Client


def _client(kind):
    if kind == "aws":
        s3 = boto3.client("s3")
        return lambda: s3.get_object(Bucket="bench", Key="k")["Body"].read()
    if kind == "redis":
        r = redis.Redis.from_url(os.environ["REDIS_URL"])
        return lambda: r.get("k")
    host, port = os.environ["MEMCACHED_URL"].split(":")
    mc = Client((host, int(port)))
    return lambda: mc.get("k")


def handler(event, context):
    get = _client(event["kind"])
    for _ in range(event.get("warmup", 20)):
        get()
    samples = []
    for _ in range(event["n"]):
        t = time.perf_counter_ns()
        get()
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    return {"median_ns": statistics.median(samples), "p99_ns": samples[int(len(samples) * 0.99) - 1]}
