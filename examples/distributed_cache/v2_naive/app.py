"""v2, NAIVE: caches each price as JSON {"amount": 1250, "currency": "EUR"}, under v1's keys.

v1's entries ("12.50") are still in Redis after the deploy, for up to their TTL, and
json.loads("12.50") is the float 12.5: ``price["amount"]`` raises TypeError. While v1
invocations are still running, they read v2's JSON and fail too. Either flush the
cache when deploying, or give each cache format its own keys (v2_versioned_keys).
"""

import json
import os
import time

import boto3
import redis

CACHE_TTL_S = 3600
cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)
prices = boto3.resource("dynamodb").Table(os.environ["PRICES_TABLE"])


def load_price(sku):
    item = prices.get_item(Key={"sku": sku})["Item"]
    return {"amount": int(item["amount_cents"]), "currency": item["currency"]}


def handler(event, context):
    time.sleep(float(event.get("sleep", 0)))  # work done before the price is needed (e.g. checking stock)
    sku, quantity = event["sku"], int(event.get("quantity", 1))
    key = f"price:{sku}"
    cached = cache.get(key)
    if cached is not None:
        price, source = json.loads(cached), "cache"
    else:
        price, source = load_price(sku), "database"
        cache.set(key, json.dumps(price), ex=CACHE_TTL_S)
    total = {"amount": price["amount"] * quantity, "currency": price["currency"]}
    return {"sku": sku, "unit_price": price, "total": total, "source": source}
