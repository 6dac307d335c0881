"""An id drawn during Init, meant to be unique per execution environment.

Each environment claims its ``WORKER_ID`` in Redis (``SET owner:<id> NX``) before it
processes anything, as a lock owner or a sequence of upload names would. With SnapStart,
Init runs once per version and every environment is restored from that snapshot: the
uuid drawn at import is the same in all of them, so the second environment finds "its"
id taken (``claimed: false``), and two environments would write under one name.
"""

import os
import uuid

import redis

WORKER_ID = str(uuid.uuid4())  # drawn at Init: part of the snapshot
store = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


def handler(event, context):
    claimed = bool(store.set(f"owner:{WORKER_ID}", context.aws_request_id, nx=True))
    return {"worker_id": WORKER_ID, "claimed": claimed}
