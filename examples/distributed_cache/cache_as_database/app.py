"""Redis used as a DATABASE (the anti-pattern): prices exist only in Redis.

An import job ({"action": "import", "prices": {...}}) writes the price list straight
into Redis and quotes read it from there; there is no other copy. The first Redis
restart without persistence (or a flush, or an eviction) loses the price list and
every quote fails with KeyError until someone re-imports it. Compare cache_optional,
where Redis only holds copies of data that lives in DynamoDB.
"""

import json
import os

import redis

store = redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)


def handler(event, context):
    if event.get("action") == "import":
        store.hset("prices", mapping={sku: json.dumps(p) for sku, p in event["prices"].items()})
        return {"imported": len(event["prices"])}
    sku = event["sku"]
    raw = store.hget("prices", sku)
    if raw is None:
        raise KeyError(f"No price for {sku!r}")
    return {"sku": sku, "unit_price": json.loads(raw)}
