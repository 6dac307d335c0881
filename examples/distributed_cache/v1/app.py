"""v1: a price cache in Redis; each price is cached as a decimal string, e.g. "12.50".

Prices live in DynamoDB (the source of truth, amounts in cents); Redis holds a copy
for an hour so that most requests skip the database. The cache outlives instances
and deploys and is shared by all of them, which is the point, and also the catch
when the next version stores something else under the same key.
"""

import os
import time
from decimal import Decimal

import boto3
import redis

CACHE_TTL_S = 3600
cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)
prices = boto3.resource("dynamodb").Table(os.environ["PRICES_TABLE"])


def load_price(sku):
    item = prices.get_item(Key={"sku": sku})["Item"]
    return Decimal(int(item["amount_cents"])) / 100


def handler(event, context):
    time.sleep(float(event.get("sleep", 0)))  # work done before the price is needed (e.g. checking stock)
    sku, quantity = event["sku"], int(event.get("quantity", 1))
    key = f"price:{sku}"
    cached = cache.get(key)
    if cached is not None:
        unit, source = Decimal(cached.decode()), "cache"
    else:
        unit, source = load_price(sku), "database"
        cache.set(key, f"{unit:.2f}", ex=CACHE_TTL_S)
    return {"sku": sku, "unit_price": f"{unit:.2f}", "total": f"{unit * quantity:.2f}", "source": source}
