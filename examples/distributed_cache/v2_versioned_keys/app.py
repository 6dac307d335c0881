"""v2 with VERSIONED KEYS: the cache format is part of every key ("price:v2:A1").

v1's entries ("price:A1" = "12.50") are never read by v2, and v1 invocations still
running during the deploy never read v2's entries, so both versions work side by
side and nothing has to be flushed; the old entries simply expire (TTL). Bump
CACHE_FORMAT whenever the format of the cached values changes.
"""

import json
import os
import time

import boto3
import redis

CACHE_FORMAT = "v2"
CACHE_TTL_S = 3600
cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)
prices = boto3.resource("dynamodb").Table(os.environ["PRICES_TABLE"])


def load_price(sku):
    item = prices.get_item(Key={"sku": sku})["Item"]
    return {"amount": int(item["amount_cents"]), "currency": item["currency"]}


def handler(event, context):
    time.sleep(float(event.get("sleep", 0)))  # work done before the price is needed (e.g. checking stock)
    sku, quantity = event["sku"], int(event.get("quantity", 1))
    key = f"price:{CACHE_FORMAT}:{sku}"
    cached = cache.get(key)
    if cached is not None:
        price, source = json.loads(cached), "cache"
    else:
        price, source = load_price(sku), "database"
        cache.set(key, json.dumps(price), ex=CACHE_TTL_S)
    total = {"amount": price["amount"] * quantity, "currency": price["currency"]}
    return {"sku": sku, "unit_price": price, "total": total, "source": source}
