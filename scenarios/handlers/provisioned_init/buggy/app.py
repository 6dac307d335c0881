"""Settings read from S3 once, during Init.

With on-demand environments Init runs at the first request, after the settings were
uploaded. With provisioned concurrency Lambda runs Init when the version is deployed,
before any request and before the settings exist: the environment keeps the defaults
for as long as it lives.

Events: ``{"action": "configure", "greeting": ...}`` uploads the settings (as an admin
tool would); anything else answers with the greeting.
"""

import contextlib
import json
import os

import boto3

BUCKET = "settings"
s3 = boto3.client("s3")


def _fetch() -> dict:
    try:
        return json.loads(s3.get_object(Bucket=BUCKET, Key="settings.json")["Body"].read())
    except s3.exceptions.NoSuchBucket:
        return {"greeting": "default"}
    except s3.exceptions.NoSuchKey:
        return {"greeting": "default"}


SETTINGS = _fetch()  # Init: at deploy, with provisioned concurrency


def handler(event, context):
    if event.get("action") == "configure":
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="settings.json", Body=json.dumps({"greeting": event["greeting"]}))
        return {"configured": True}
    return {"greeting": SETTINGS["greeting"], "init_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
