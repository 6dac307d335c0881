"""Orders kept in Redis alone: Redis used as the database.

While Redis is up this works, and fast. When the cache node goes away (a failover, a
replacement, maintenance), every invocation fails with ``redis.exceptions.ConnectionError``,
and when it comes back it is empty: the orders are gone for good. A cache may lose its
data at any time; the data must live somewhere durable (S3, DynamoDB, a database).
"""

import json
import os

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# One quick retry (a pooled connection may be stale), short timeouts: fail fast.
db = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1,
                          retry=Retry(NoBackoff(), 1))


def handler(event, context):
    key = f"order:{event['order']}"
    if event["action"] == "put":
        db.set(key, json.dumps(event["data"]))
        return {"stored": event["order"]}
    raw = db.get(key)
    if raw is None:
        return {"found": False}
    return {"found": True, "order": json.loads(raw)}
