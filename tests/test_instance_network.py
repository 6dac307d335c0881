"""Resets that end every process of the instance but its keeper."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lambdasim import Simulator
from tests.conftest import Code

pytestmark = pytest.mark.sandbox


# -- a reset ends every process of the instance but the keeper ------------------------------------------------

RESET = """
import os, time

def processes():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

def handler(event, context):
    if event.get("start"):
        pid = os.fork()
        if pid == 0:  # a background process the handler leaves, in a session of its own
            os.setsid()
            if os.fork():
                os._exit(0)
            while True:
                time.sleep(0.01)
        os.waitpid(pid, 0)
        time.sleep(0.05)
    if event.get("then") == "sleep":
        time.sleep(5)
    if event.get("then") == "exit":
        os._exit(3)
    if event.get("then") == "memory":
        hog = [bytearray(1 << 20) for _ in range(400)]
    return {"processes": processes(), "me": os.getpid()}
"""


@pytest.mark.parametrize("how", ["timeout", "crash", "exit", "memory"])
def test_a_reset_kills_what_the_function_started(make_sim: Callable[..., Simulator], code: Code, how: str) -> None:
    sim = make_sim()
    fn = sim.deploy("app.handler", code_dir=code(RESET), timeout_s=1, memory_mb=128)
    started = fn.invoke({"start": True}).payload
    assert len(started["processes"]) == 3, f"the keeper, the runtime and the handler's: {started}"
    if how == "crash":
        fn.instances[0].crash()
    else:
        failed = fn.invoke({"then": {"timeout": "sleep", "exit": "exit", "memory": "memory"}[how]})
        assert not failed.ok
    assert fn.instances[0].resets == 1
    after = fn.invoke({}).payload
    assert after["me"] != started["me"], "a new runtime"
    assert after["processes"] == sorted([1, after["me"]]), "only the keeper and the new runtime are left"
