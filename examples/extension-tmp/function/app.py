"""Buffers each event as a record in /tmp; the tmp-flusher extension (in the layer) ships them to S3.

The function never writes to S3 itself: its invocations stay fast, and the extension, which shares
this environment's /tmp, flushes the buffer at SHUTDOWN, before the environment and its /tmp are gone.
"""

import json
import os

SPOOL_DIR = "/tmp/spool"
SPOOL = os.path.join(SPOOL_DIR, "records.jsonl")


def handler(event, context):
    os.makedirs(SPOOL_DIR, exist_ok=True)
    with open(SPOOL, "a") as f:
        f.write(json.dumps({"request_id": context.aws_request_id, "event": event}) + "\n")
    with open(SPOOL) as f:
        pending = sum(1 for _ in f)
    return {"buffered": pending}
