"""Writes each upload to S3 before the invocation returns.

Nothing is kept on the instance, so however many instances Lambda scales out to, and
whenever it removes them, every record is in S3. (To batch, put the records on a queue,
e.g. SQS or Kinesis, and let a consumer write the batches.)
"""

import json
import os
import time

import boto3
from botocore.exceptions import ClientError

BUCKET = os.environ.get("UPLOADS_BUCKET", "uploads")

s3 = boto3.client("s3")
try:  # for the example: the bucket would be made by the deployment
    s3.create_bucket(Bucket=BUCKET)
except ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise


def handler(event, context):
    time.sleep(event.get("work_s", 0))  # the request's real work
    record = event["record"]
    s3.put_object(Bucket=BUCKET, Key=f"uploads/{record['id']}.json", Body=json.dumps(record).encode())
    return {"stored": f"uploads/{record['id']}.json"}
