"""Prime counts, memoised in /tmp (per instance) and, when Redis is configured, in Redis (shared).

The result for a given ``limit`` never changes and takes a moment to compute, which
is what /tmp is good for: a warm instance answers from its own /tmp, a new instance
simply computes again. Nothing needs clearing on deploy, since a new version starts
with an empty /tmp. /tmp is never shared: when REDIS_URL is set, results are also
published to Redis so that other instances (and later versions) can skip the work.
"""

import json
import logging
import os
import time

import redis

logger = logging.getLogger()
CACHE_TTL_S = 24 * 3600
REDIS_KEY = "primes:v1:below:{limit}"  # the format version is part of the key
TMP_FILE = "/tmp/primes-below-{limit}.json"

shared = None
if os.environ.get("REDIS_URL"):
    shared = redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)


def count_primes(limit):
    """The number of primes below ``limit`` and the largest of them (sieve of Eratosthenes)."""
    if limit < 3:
        return {"limit": limit, "count": 0, "largest": None}
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit, n)))
    return {"limit": limit, "count": sum(sieve), "largest": sieve.rindex(1)}


def read_tmp(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def write_tmp(path, result):
    # Write then rename: a reader never sees half a file, even after a crash or timeout.
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(partial, path)


def read_shared(key):
    if shared is None:
        return None
    try:
        raw = shared.get(key)
    except redis.RedisError:
        logger.warning("Redis unavailable; computing instead", exc_info=True)
        return None
    return json.loads(raw) if raw is not None else None


def write_shared(key, result):
    if shared is None:
        return
    try:
        shared.set(key, json.dumps(result), ex=CACHE_TTL_S)
    except redis.RedisError:
        logger.warning("Redis unavailable; result not shared", exc_info=True)


def handler(event, context):
    limit = int(event["limit"])
    path, key = TMP_FILE.format(limit=limit), REDIS_KEY.format(limit=limit)
    result, source = read_tmp(path), "tmp"
    if result is None:
        result, source = read_shared(key), "redis"
        if result is None:
            result, source = count_primes(limit), "computed"
            write_shared(key, result)
        write_tmp(path, result)
    time.sleep(float(event.get("sleep", 0)))  # the rest of the request's work
    return {**result, "source": source}
