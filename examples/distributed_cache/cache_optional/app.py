"""Redis as an OPTIONAL cache: a miss, or Redis being down, only costs a database read.

Redis restarts without persistence (maintenance, failover, eviction under memory
pressure) empty the cache. This handler does not care: the price comes from DynamoDB
whenever Redis has nothing, or cannot be reached, and is cached again.
"""

import json
import logging
import os

import boto3
import redis

logger = logging.getLogger()
CACHE_FORMAT = "v2"
CACHE_TTL_S = 3600
cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)
prices = boto3.resource("dynamodb").Table(os.environ["PRICES_TABLE"])


def load_price(sku):
    item = prices.get_item(Key={"sku": sku})["Item"]
    return {"amount": int(item["amount_cents"]), "currency": item["currency"]}


def cache_get(key):
    try:
        cached = cache.get(key)
    except redis.RedisError:
        logger.warning("cache unavailable, reading the database", exc_info=True)
        return None
    return json.loads(cached) if cached is not None else None


def cache_set(key, value):
    try:
        cache.set(key, json.dumps(value), ex=CACHE_TTL_S)
    except redis.RedisError:
        logger.warning("cache unavailable, not caching", exc_info=True)


def handler(event, context):
    sku = event["sku"]
    key = f"price:{CACHE_FORMAT}:{sku}"
    price, source = cache_get(key), "cache"
    if price is None:
        price, source = load_price(sku), "database"
        cache_set(key, price)
    return {"sku": sku, "unit_price": price, "source": source}
