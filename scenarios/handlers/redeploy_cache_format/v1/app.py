"""Version 1 of a profile service, the one running before the deploy: caches each user's
display name in Redis under ``user:<id>``, as a JSON string."""

import json
import os

import redis

# Stands in for the database the profiles come from.
PROFILES = {"1": {"name": "Ada Lovelace", "email": "ada@example.com"}}

cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


def handler(event, context):
    user = str(event["user"])
    cached = cache.get(f"user:{user}")
    if cached is not None:
        return {"name": json.loads(cached), "cached": True, "version": 1}
    name = PROFILES[user]["name"]
    cache.set(f"user:{user}", json.dumps(name), ex=3600)
    return {"name": name, "cached": False, "version": 1}
