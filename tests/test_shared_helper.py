"""The sandbox's helper process is shared by the simulators of one process (issue 16), and nothing else is:
each Simulator still gets its own instances, /tmps, globals, clock, ids and trace; the services' addresses one
simulator had relayed are not reachable from the next; a helper that was killed is replaced."""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any

import pytest

import lambdasim
from lambdasim import Simulator
from tests.conftest import Code, PingServer, namespace_only

pytestmark = pytest.mark.sandbox
BOTH_SANDBOXES = True

STATE = """
import os, socket
COUNT = 0

def handler(event, context):
    global COUNT
    COUNT += 1
    seen = sorted(os.listdir("/tmp"))
    with open(f"/tmp/{event.get('mark', 'x')}", "w") as f:
        f.write("1")
    out = {"count": COUNT, "tmp": seen, "request": context.aws_request_id}
    if "connect" in event:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", event["connect"]))
            s.sendall(b"PING")
            out["reply"] = s.recv(10).decode()
        except OSError as e:
            out["errno"] = e.errno
        finally:
            s.close()
    return out
"""


def _helper(sim: Simulator) -> int:
    return int(sim._sandbox._helper._proc.pid)  # type: ignore[attr-defined]


def _run(sim: Simulator, src: Any, event: dict[str, Any]) -> Any:
    return sim.deploy("app.handler", code_dir=src, name="stateful").invoke(event).payload


def test_the_next_simulator_takes_the_helper_and_nothing_else(sandbox_kind: str, code: Code) -> None:
    src = code(STATE)
    with Simulator(sandbox=sandbox_kind, seed=7) as first:
        one = _run(first, src, {"mark": "from-first"})
        first.clock.advance(100)
        helper = _helper(first)
    with Simulator(sandbox=sandbox_kind, seed=7) as second:
        two = _run(second, src, {"mark": "from-second"})
        assert _helper(second) == helper, "the helper process is shared"
        assert second.clock.now() == 0.0
        assert [e.kind for e in second.trace][:2] == ["deploy", "instance_created"], "its own trace"
    assert one["count"] == two["count"] == 1, "a fresh instance: module globals start again"
    assert "from-first" not in two["tmp"], "a fresh /tmp"
    assert one["request"] == two["request"], "ids come from the simulator's seed, not from the helper's history"


def test_two_simulators_at_once_have_a_helper_each(sandbox_kind: str, code: Code) -> None:
    src = code(STATE)
    with Simulator(sandbox=sandbox_kind) as a, Simulator(sandbox=sandbox_kind) as b:
        assert _helper(a) != _helper(b)
        assert _run(a, src, {})["count"] == _run(b, src, {})["count"] == 1


def _kill_tree(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and os.waitpid(pid, os.WNOHANG) == (0, 0):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_helper_killed_between_simulators_is_replaced(sandbox_kind: str, code: Code) -> None:
    src = code(STATE)
    with Simulator(sandbox=sandbox_kind) as first:
        _run(first, src, {})
        helper = _helper(first)
    _kill_tree(helper)
    with Simulator(sandbox=sandbox_kind) as second:
        assert _run(second, src, {})["count"] == 1
        assert _helper(second) != helper


def test_a_helper_killed_by_a_test_does_not_fail_the_next(sandbox_kind: str, code: Code) -> None:
    src = code(STATE)
    with Simulator(sandbox=sandbox_kind) as first:
        fn = first.deploy("app.handler", code_dir=src)
        fn.invoke({})
        helper = _helper(first)
        _kill_tree(helper)  # what a test that kills the sandbox does; its close() must not fail
    with Simulator(sandbox=sandbox_kind) as second:
        assert _run(second, src, {})["count"] == 1


def test_a_helper_that_dies_before_the_first_spawn_is_replaced_then(sandbox_kind: str, code: Code) -> None:
    src = code(STATE)
    with Simulator(sandbox=sandbox_kind):
        pass  # leaves a helper for the next one
    with Simulator(sandbox=sandbox_kind) as sim:
        _kill_tree(_helper(sim))
        assert _run(sim, src, {})["count"] == 1


@namespace_only("the fakefs sandbox has no network namespace: instances are on the host's network")
def test_a_simulators_relayed_addresses_are_not_the_next_ones(sandbox_kind: str, code: Code,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = code(STATE)
    server = PingServer()
    port = int(server.address[1])
    try:
        lambdasim.shutdown()  # one helper for both simulators below
        first = Simulator(sandbox="namespace")
        # As if one of its services listened there: the zygote relays it into the instances' namespace.
        monkeypatch.setattr(first, "_forwarded", lambda: [("127.0.0.1", port)])
        with first:
            assert _run(first, src, {"connect": port}).get("reply") == "PONG"
            helper = _helper(first)
        with Simulator(sandbox="namespace") as second:
            assert _helper(second) == helper
            assert _run(second, src, {"connect": port}).get("errno") == errno.ECONNREFUSED
        with Simulator(sandbox="namespace") as third:  # the address can be relayed again
            monkeypatch.setattr(third, "_forwarded", lambda: [("127.0.0.1", port)])
            assert _run(third, src, {"connect": port}).get("reply") == "PONG"
    finally:
        server.close()


def test_shutdown_stops_the_kept_helpers_and_a_later_simulator_starts_one(sandbox_kind: str, code: Code) -> None:
    src = code(STATE)
    with Simulator(sandbox=sandbox_kind) as sim:
        _run(sim, src, {})
        helper = _helper(sim)
    lambdasim.shutdown()
    assert not os.path.exists(f"/proc/{helper}"), "stopped and reaped"
    with Simulator(sandbox=sandbox_kind) as again:
        assert _helper(again) != helper
        assert _run(again, src, {})["count"] == 1
