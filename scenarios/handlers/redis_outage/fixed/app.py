"""Orders kept in S3, with Redis as a cache in front of it.

S3 holds every order; Redis only saves reads, and each use of it is allowed to fail.
When Redis is down, invocations read S3 instead (slower, but they work), and when it
comes back empty the cache fills up again from S3.
"""

import json
import logging
import os

import boto3
import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry

BUCKET = os.environ.get("ORDERS_BUCKET", "orders")
log = logging.getLogger()

s3 = boto3.client("s3")
cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1,
                             retry=Retry(NoBackoff(), 1))
try:  # for the example: the bucket would be made by the deployment (a template, terraform ...)
    s3.create_bucket(Bucket=BUCKET)
except ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise


def cache_get(key):
    try:
        return cache.get(key)
    except redis.RedisError as e:
        log.warning("cache unavailable, reading S3: %s", e)
        return None


def cache_set(key, value):
    try:
        cache.set(key, value, ex=300)
    except redis.RedisError as e:
        log.warning("cache unavailable, not caching: %s", e)


def handler(event, context):
    order = str(event["order"])
    key = f"order:{order}"
    if event["action"] == "put":
        body = json.dumps(event["data"])
        s3.put_object(Bucket=BUCKET, Key=f"orders/{order}.json", Body=body.encode())
        cache_set(key, body)
        return {"stored": event["order"]}
    raw = cache_get(key)
    if raw is not None:
        return {"found": True, "order": json.loads(raw), "from": "redis"}
    try:
        raw = s3.get_object(Bucket=BUCKET, Key=f"orders/{order}.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return {"found": False}
    cache_set(key, raw)
    return {"found": True, "order": json.loads(raw), "from": "s3"}
