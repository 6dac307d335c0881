"""A batch of records kept in one /tmp file, read, extended and written back.

On standard Lambda one environment runs one request at a time, so this is safe there.
On Lambda Managed Instances an environment runs several requests at once, one Python
process each, all sharing /tmp: two requests read the same batch, each adds its record,
and the second write loses the first one's record. (The handler waits until both have
read, so that the interleaving happens every run instead of now and then.)

Events: ``{"record": ...}`` adds a record; ``{"action": "count"}`` says how many there are.
"""

import json
import os
import time

BATCH = "/tmp/batch.json"


def _arrive(request_id: str) -> None:
    """Wait (up to 2 s) until two requests are in flight: they then interleave."""
    open(f"/tmp/arrived-{request_id}", "w").close()
    deadline = time.monotonic() + 2.0
    while sum(name.startswith("arrived-") for name in os.listdir("/tmp")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)


def _read() -> list:
    try:
        with open(BATCH) as f:
            return json.load(f)
    except FileNotFoundError:
        return []


def handler(event, context):
    if event.get("action") == "count":
        return {"records": len(_read())}
    _arrive(context.aws_request_id)
    batch = _read()
    time.sleep(0.05)
    batch.append(event["record"])
    with open(BATCH, "w") as f:
        json.dump(batch, f)
    return {"records": len(batch)}
