"""Buffers uploads in /tmp and writes them to S3 in batches of 25, to save requests.

On one warm instance (a local test, a quiet day) the batches add up. Under load Lambda
scales out: the records are spread over many instances, each with its own /tmp and a
batch that is never full. When those instances are scaled down or reaped, their /tmp
goes with them, and the records never reach S3. Lambda does not run code when it
removes an instance that a batch could be flushed from.
"""

import json
import os
import time

import boto3
from botocore.exceptions import ClientError

BUCKET = os.environ.get("UPLOADS_BUCKET", "uploads")
PENDING = "/tmp/pending.jsonl"
BATCH = 25

s3 = boto3.client("s3")
try:  # for the example: the bucket would be made by the deployment
    s3.create_bucket(Bucket=BUCKET)
except ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise


def handler(event, context):
    time.sleep(event.get("work_s", 0))  # the request's real work
    with open(PENDING, "a") as f:
        f.write(json.dumps(event["record"]) + "\n")
    with open(PENDING) as f:
        lines = f.readlines()
    if len(lines) >= BATCH:
        s3.put_object(Bucket=BUCKET, Key=f"uploads/batch-{context.aws_request_id}.jsonl", Body="".join(lines))
        os.remove(PENDING)
        return {"buffered": 0, "flushed": len(lines)}
    return {"buffered": len(lines), "flushed": 0}
