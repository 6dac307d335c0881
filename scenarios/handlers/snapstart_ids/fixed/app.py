"""The id of snapstart_ids, drawn again after each restore.

``snapshot_restore_py`` (in Lambda's managed Python runtime, and pip-installable) runs
the functions registered with ``register_after_restore`` in every environment restored
from the snapshot, before it takes a request: uniqueness belongs there (or in the
handler), not in Init.
"""

import os
import uuid

import redis
from snapshot_restore_py import register_after_restore

WORKER_ID = str(uuid.uuid4())
store = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


@register_after_restore
def draw_a_new_id() -> None:
    global WORKER_ID
    WORKER_ID = str(uuid.uuid4())


def handler(event, context):
    claimed = bool(store.set(f"owner:{WORKER_ID}", context.aws_request_id, nx=True))
    return {"worker_id": WORKER_ID, "claimed": claimed}
