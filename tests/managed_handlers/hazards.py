"""The /tmp hazards of Lambda Managed Instances, and their fixes (AWS: "care is required for shared resources
such as the /tmp directory"). Every request of an environment runs in its own process, but all of them share
one /tmp: what one request writes or removes there, the others see at once.

Each handler takes ``{"order": ...}`` and meets the other request of the test at a barrier (``sync``) at the
moment that makes the race happen every time, as it happens now and then under real traffic.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from typing import Any

import sync  # type: ignore[import-not-found]  # beside it in the code dir (/var/task)

ORDERS = "/tmp/orders.json"
SCRATCH = "/tmp/work"


def _read_orders() -> list[Any]:
    if not os.path.exists(ORDERS):
        return []
    with open(ORDERS) as f:
        orders: list[Any] = json.load(f)
    return orders


# -- one JSON file that every request appends to ---------------------------------------------------


def append_unsafe(event: dict[str, Any], context: Any) -> int:
    """Read the file, add this order, write it back: two requests at once each write what they read, and the
    first one's order is lost."""
    orders = _read_orders()
    sync.arrive("read", 2)  # both have read the file before either writes it
    orders.append(event["order"])
    with open(ORDERS, "w") as f:
        json.dump(orders, f)
    return len(orders)


def append_locked(event: dict[str, Any], context: Any) -> int:
    """The fix with a lock: ``fcntl.flock`` on a lock file around the read and the write."""
    sync.arrive("read", 2)  # both are here at once, as above
    with open("/tmp/orders.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        orders = _read_orders()
        orders.append(event["order"])
        with open(ORDERS + ".tmp", "w") as f:
            json.dump(orders, f)
        os.replace(ORDERS + ".tmp", ORDERS)
    return len(orders)


def append_per_request(event: dict[str, Any], context: Any) -> str:
    """The fix with names: each request writes a file of its own (named by its request id)."""
    sync.arrive("read", 2)
    os.makedirs("/tmp/orders", exist_ok=True)
    path = f"/tmp/orders/{context.aws_request_id}.json"
    with open(path, "w") as f:
        json.dump(event["order"], f)
    return path


# -- a scratch directory cleaned at the start of each request ---------------------------------------


def _work(scratch: str, event: dict[str, Any]) -> bool:
    """The first request writes its work file, the second cleans its scratch directory meanwhile; whether the
    first one's file is still there when it reads it back."""
    if event["order"] == "second":
        sync.wait_for("first-wrote")
    shutil.rmtree(scratch, ignore_errors=True)  # "start from a clean /tmp"
    os.makedirs(scratch, exist_ok=True)
    mine = os.path.join(scratch, "work.json")
    if event["order"] == "first":
        with open(mine, "w") as f:
            json.dump(event, f)
        sync.signal("first-wrote")
        sync.wait_for("second-cleaned")
        return os.path.exists(mine)
    sync.signal("second-cleaned")
    return True


def clean_unsafe(event: dict[str, Any], context: Any) -> bool:
    """Cleans the one scratch directory all requests share: it deletes the other request's files."""
    return _work(SCRATCH, event)


def clean_per_request(event: dict[str, Any], context: Any) -> bool:
    """The fix: a scratch directory per request (and only its own cleaned)."""
    return _work(os.path.join(SCRATCH, context.aws_request_id), event)
