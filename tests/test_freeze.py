"""Freeze between invocations: an idle instance's processes make no progress, as on Lambda."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable

import pytest

import lambdasim
from lambdasim import Simulator
from tests.conftest import Code, namespace_only
from tests.test_leaks import _descendants, _wait_gone

pytestmark = namespace_only("the fakefs sandbox does not freeze instances: its threads run on between invocations")

BOTH_SANDBOXES = True

BACKGROUND = """
import os, threading, time
ticks = 0
slept = None
child = None

def tick():
    global ticks
    while True:
        time.sleep(0.002)
        ticks += 1

def sleeper(seconds):
    global slept
    t0, m0 = time.time(), time.monotonic()
    time.sleep(seconds)
    slept = {"wall": time.time() - t0, "monotonic": time.monotonic() - m0}

def handler(event, context):
    global child
    if event.get("start_ticker"):
        threading.Thread(target=tick, daemon=True).start()
    if event.get("sleep"):
        threading.Thread(target=sleeper, args=(event["sleep"],), daemon=True).start()
    if event.get("fork") and child is None:
        child = os.fork()
        if child == 0:  # a child process that counts into /tmp
            n = 0
            while True:
                n += 1
                with open("/tmp/child.tmp", "w") as f:
                    f.write(str(n))
                os.replace("/tmp/child.tmp", "/tmp/child")
                time.sleep(0.002)
    if event.get("wait_slept"):
        deadline = time.monotonic() + 5
        while slept is None and time.monotonic() < deadline:
            time.sleep(0.01)
    counted = None
    if os.path.exists("/tmp/child"):
        with open("/tmp/child") as f:
            counted = int(f.read())
    return {"ticks": ticks, "slept": slept, "child": counted}
"""


def _wait_started(fn: object, key: str) -> None:
    """Invoke until the background work has visibly started (a thread may need a moment)."""
    deadline = time.monotonic() + 10
    while fn.invoke({}).payload[key] in (None, 0):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"the handler's background {key} never started"
        time.sleep(0.01)


@pytest.mark.parametrize("freeze", [True, False])
def test_background_thread_makes_no_progress_between_invocations(
        make_sim: Callable[..., Simulator], code: Code, freeze: bool) -> None:
    sim = make_sim(freeze=freeze)
    fn = sim.deploy("app.handler", code_dir=code(BACKGROUND))
    fn.invoke({"start_ticker": True})
    _wait_started(fn, "ticks")
    before = fn.invoke({}).payload["ticks"]
    time.sleep(0.6)  # ~300 ticks for a thread that runs
    after = fn.invoke({}).payload["ticks"]
    if freeze:
        assert after - before < 30, f"the thread ran {after - before} times while the instance was idle"
    else:
        assert after - before > 60, "with freeze=False the thread runs on between invocations"
    kinds = [e.kind for e in sim.trace if e.kind in ("invoke", "frozen", "thawed")]
    invokes = kinds.count("invoke")
    expected = ["invoke", "frozen"] + ["thawed", "invoke", "frozen"] * (invokes - 1)
    assert kinds == (expected if freeze else ["invoke"] * invokes), kinds


@pytest.mark.parametrize("freeze", [True, False])
def test_child_process_makes_no_progress_between_invocations(
        make_sim: Callable[..., Simulator], code: Code, freeze: bool) -> None:
    fn = make_sim(freeze=freeze).deploy("app.handler", code_dir=code(BACKGROUND))
    fn.invoke({"fork": True})
    _wait_started(fn, "child")
    before = fn.invoke({}).payload["child"]
    time.sleep(0.6)
    after = fn.invoke({}).payload["child"]
    if freeze:
        assert after - before < 30, f"the child counted {after - before} times while the instance was idle"
    else:
        assert after - before > 60


@pytest.mark.parametrize("freeze", [True, False])
def test_a_thread_sleeping_across_the_freeze_sees_the_wall_clock_jump(
        make_sim: Callable[..., Simulator], code: Code, freeze: bool) -> None:
    fn = make_sim(freeze=freeze).deploy("app.handler", code_dir=code(BACKGROUND))
    fn.invoke({"sleep": 0.2})  # returns at once; the thread sleeps 0.2 s
    time.sleep(1.0)
    slept = fn.invoke({"wait_slept": True}).payload["slept"]
    assert slept is not None
    if freeze:
        # Frozen with 0.2 s to go, it wakes only on the thaw, a second later: both clocks moved on.
        assert slept["wall"] > 0.9 and slept["monotonic"] > 0.9, slept
    else:
        assert slept["wall"] < 0.7, slept


def _cgroups(pids: set[int]) -> set[str]:
    """The host paths of the freezer cgroups (v1 or v2) that ``pids`` are in, below lambdasim's."""
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            _, names, path = line.split(":", 2)
            if "lambdasim-" in path and names in ("freezer", ""):
                found.add(("/sys/fs/cgroup/freezer" if names else "/sys/fs/cgroup") + path)
    return found


def _frozen(pids: set[int]) -> set[int]:
    """Those of ``pids`` that are frozen: in a frozen cgroup, or stopped by a signal."""
    frozen = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().split(") ")[-1][0]
        except FileNotFoundError:
            continue
        cgroups = _cgroups({pid})
        for cgroup in cgroups:
            name = "freezer.state" if cgroup.startswith("/sys/fs/cgroup/freezer/") else "cgroup.freeze"
            with open(os.path.join(cgroup, name)) as f:
                if f.read().strip() in ("FROZEN", "1"):
                    frozen.add(pid)
        if not cgroups and state == "T":
            frozen.add(pid)
    return frozen


@pytest.mark.parametrize("how", ["scale_down", "idle", "redeploy", "close"])
def test_a_frozen_instance_is_destroyed_without_a_trace(
        make_sim: Callable[..., Simulator], code: Code, how: str) -> None:
    sim = make_sim()
    fn = sim.deploy("app.handler", code_dir=code(BACKGROUND), keepalive_s=60)
    fn.invoke({"start_ticker": True, "fork": True})
    _wait_started(fn, "child")
    deadline = time.monotonic() + 5
    while len(pids := _frozen(_descendants(os.getpid()))) < 2:  # the v1 freezer takes a moment
        assert time.monotonic() < deadline, "the runtime and its child process are frozen"
        time.sleep(0.01)
    cgroups = _cgroups(pids)
    assert all(os.path.isdir(c) for c in cgroups)
    assert [e.kind for e in sim.trace][-1] == "frozen"
    if how == "scale_down":
        assert fn.scale_down() == 1
    elif how == "idle":
        sim.clock.advance(61)
    elif how == "redeploy":
        fn.redeploy()
    else:
        sim.close()
    assert [e.kind for e in sim.trace][-1] == "destroyed", "destroyed as it was, with no thaw before"
    assert fn.instances == []
    assert _wait_gone(pids, 10.0) == set(), "the runtime, its thread and its child are gone"
    assert _paths_gone(cgroups) == [], "the instance's cgroup is removed (by the reaper, a moment later)"
    if how == "close":
        parents = {os.path.dirname(c) for c in cgroups}
        assert all(os.path.exists(p) for p in parents), "the place of the helper kept for the next Simulator"
        lambdasim.shutdown()
        assert _paths_gone(parents) == [], "ends with it"


def _paths_gone(paths: Iterable[str], timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in paths if os.path.exists(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def test_crash_of_a_frozen_instance(make_sim: Callable[..., Simulator], code: Code) -> None:
    fn = make_sim().deploy("app.handler", code_dir=code(BACKGROUND))
    fn.invoke({"start_ticker": True})
    (instance,) = fn.instances
    instance.crash()  # a SIGKILL to a frozen runtime: it dies, and the next invocation runs Init
    again = fn.invoke({})
    assert again.ok and again.cold_start and instance.resets == 1
    assert fn.invoke({}).ok


@pytest.mark.parametrize("freeze", [True, False])
def test_the_report_draws_frozen_spans(make_sim: Callable[..., Simulator], code: Code, freeze: bool) -> None:
    from lambdasim._report import render

    sim = make_sim(freeze=freeze)
    fn = sim.deploy("app.handler", code_dir=code(BACKGROUND))
    for _ in range(3):
        fn.invoke({})
    fn.scale_down()
    page = render(sim.trace)
    # Between the three invocations, and from the last one to the destroy.
    assert page.count('class="frozen" data-marker="frozen"') == (3 if freeze else 0)
    drawn = len(re.findall(r'<g class="inv[^"]*" data-run="0" data-inv="\d+"', page))
    assert drawn == 3
