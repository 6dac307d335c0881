"""Version 2, buggy: the cached value becomes a mapping ``{"name", "email"}``, under the same
key ``user:<id>`` as version 1.

Redis outlives the deploy, so version 2 finds the strings version 1 cached and fails on
them (``TypeError: string indices must be integers``) until they expire. During the
deploy it is worse: the two versions run side by side (old instances finish their
invocations), and each overwrites the other's entries with a format the other cannot read.
Flushing the cache at deploy time only narrows that window.
"""

import json
import os

import redis

PROFILES = {"1": {"name": "Ada Lovelace", "email": "ada@example.com"}}

cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


def handler(event, context):
    user = str(event["user"])
    cached = cache.get(f"user:{user}")
    if cached is not None:
        profile = json.loads(cached)
        return {"name": profile["name"], "email": profile["email"], "cached": True, "version": 2}
    profile = PROFILES[user]
    cache.set(f"user:{user}", json.dumps(profile), ex=3600)
    return {**profile, "cached": False, "version": 2}
