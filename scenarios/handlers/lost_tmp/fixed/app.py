"""The shopping cart of lost_tmp, kept where every instance finds it: in Redis.

"put" stores the cart under the key ``cart`` in the Redis at ``REDIS_URL``, "get" reads it
back, so it does not matter which execution environment takes the next invocation (a
concurrent one, a new one after a scale-down, an idle timeout or a deploy). Any shared
store works the same way: S3, DynamoDB, Memcached.
"""

import json
import os

import redis

CART = "cart"
# Made once per execution environment (during Init) and reused by warm invocations.
cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


def handler(event, context):
    if event.get("action") == "put":
        had_cart = bool(cache.exists(CART))
        cache.set(CART, json.dumps(event["items"]))
        return {"stored": event["items"], "replaced_a_cart": had_cart}
    raw = cache.get(CART)
    if raw is None:
        return {"found": False}
    return {"found": True, "items": json.loads(raw)}
