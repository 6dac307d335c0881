"""Barriers between the concurrent requests of one Managed Instances environment, through its shared /tmp.

A request that waits here for another one proves that both ran at the same time in the same environment:
run one at a time (standard Lambda), or in environments of their own, the wait times out.
"""

from __future__ import annotations

import os
import time
import uuid

SYNC_DIR = "/tmp/.sync"


def arrive(name: str, count: int, timeout_s: float = 5.0) -> int:
    """Wait until ``count`` requests have arrived at barrier ``name``; the number that had when it opened."""
    where = os.path.join(SYNC_DIR, name)
    os.makedirs(where, exist_ok=True)
    open(os.path.join(where, uuid.uuid4().hex), "w").close()
    deadline = time.monotonic() + timeout_s
    while len(os.listdir(where)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {name!r}: {len(os.listdir(where))} of {count} requests arrived")
        time.sleep(0.002)
    return len(os.listdir(where))


def signal(name: str) -> None:
    """Say that this request has reached ``name`` (see :func:`wait_for`)."""
    os.makedirs(SYNC_DIR, exist_ok=True)
    open(os.path.join(SYNC_DIR, f"{name}.done"), "w").close()


def wait_for(name: str, timeout_s: float = 5.0) -> None:
    """Wait until another request has called ``signal(name)``."""
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(os.path.join(SYNC_DIR, f"{name}.done")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no request signalled {name!r}")
        time.sleep(0.002)
