"""A probe of Managed Instances workers: which process ran a request, what it kept, what it saw."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import sync  # type: ignore[import-not-found]  # beside it in the code dir (/var/task)

PID = os.getpid()  # each worker process runs this Init of its own
INVOCATIONS = 0
logger = logging.getLogger()
logger.setLevel(logging.INFO)


def _tick() -> None:
    while True:  # runs on between requests: Managed Instances environments are never frozen
        with open(f"/tmp/ticks-{PID}", "a") as f:
            f.write(".")
        time.sleep(0.01)


if os.environ.get("PROBE_TICKS"):
    threading.Thread(target=_tick, daemon=True).start()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS
    INVOCATIONS += 1
    op = event.get("op", "info")
    logger.info("probe %s", op)
    if op == "barrier":
        sync.arrive(event["name"], event["count"])
    elif op == "late":  # outlives its timeout, then leaves a mark in /tmp
        with open("/tmp/late-pid", "w") as f:
            f.write(str(PID))
        time.sleep(event["s"])
        open("/tmp/late-done", "w").close()
    elif op == "exit":  # crashes its worker process once the other request has started
        if "after" in event:
            sync.wait_for(event["after"])
        os._exit(event.get("code", 3))
    elif op == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif op == "outlive":  # runs while another request of the environment crashes, then answers
        sync.signal(event["name"])
        time.sleep(event.get("s", 0.5))
    elif op == "sleep":
        time.sleep(event["s"])
    return {"pid": PID, "invocations": INVOCATIONS, "request_id": context.aws_request_id,
            "env": {k: os.environ.get(k) for k in ("AWS_LAMBDA_MAX_CONCURRENCY", "AWS_LAMBDA_INITIALIZATION_TYPE",
                                                   "AWS_LAMBDA_LOG_FORMAT")}}
