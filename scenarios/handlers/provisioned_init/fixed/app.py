"""The settings of provisioned_init, read when a request needs them and kept for a minute.

Init may run long before the first request (provisioned concurrency, SnapStart): what can
change after the deploy is read in the handler, with a time-to-live, not frozen at import.
"""

import contextlib
import json
import os
import time

import boto3

BUCKET = "settings"
TTL_S = 60.0
s3 = boto3.client("s3")
_cached: tuple[float, dict] | None = None


def _fetch() -> dict:
    try:
        return json.loads(s3.get_object(Bucket=BUCKET, Key="settings.json")["Body"].read())
    except s3.exceptions.NoSuchBucket:
        return {"greeting": "default"}
    except s3.exceptions.NoSuchKey:
        return {"greeting": "default"}


def settings() -> dict:
    global _cached
    now = time.monotonic()
    if _cached is None or now - _cached[0] > TTL_S:
        _cached = (now, _fetch())
    return _cached[1]


def handler(event, context):
    if event.get("action") == "configure":
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="settings.json", Body=json.dumps({"greeting": event["greeting"]}))
        return {"configured": True}
    return {"greeting": settings()["greeting"], "init_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
