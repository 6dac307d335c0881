"""Version 2, fixed: the new format gets a key of its own, ``user:v2:<id>``.

Keys per format version let both versions run side by side during a deploy: version 1
keeps reading and writing ``user:<id>``, version 2 never sees those entries (it starts
with cache misses), and the old entries expire on their own.
"""

import json
import os

import redis

PROFILES = {"1": {"name": "Ada Lovelace", "email": "ada@example.com"}}
CACHE_FORMAT = "v2"  # change it with every change of the cached value's format

cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


def handler(event, context):
    key = f"user:{CACHE_FORMAT}:{event['user']}"
    cached = cache.get(key)
    if cached is not None:
        profile = json.loads(cached)
        return {"name": profile["name"], "email": profile["email"], "cached": True, "version": 2}
    profile = PROFILES[str(event["user"])]
    cache.set(key, json.dumps(profile), ex=3600)
    return {**profile, "cached": False, "version": 2}
