"""How the events of one ``invoke_many`` call arrive: together in waves of ``concurrency``,
each wave routed as a whole before any of its invocations runs, or (``interval_s``) one wave
every so many seconds of virtual time. The routing must not depend on how fast the machine is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lambdasim import ConfigError, SandboxError, ScenarioError, Simulator, load_scenario
from tests.conftest import Code

BOTH_SANDBOXES = True

QUICK = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return event
"""


def _labels(ids: list[str | None]) -> list[int]:
    """Instance ids as 1, 2, ... in the order they first appear (None stays None: throttled)."""
    first: dict[str, int] = {}
    return [first.setdefault(i, len(first) + 1) if i is not None else 0 for i in ids]


def test_two_events_that_arrive_together_get_two_instances(sim: Simulator, code: Code) -> None:
    # Before, with one instance idle, the first invocation took it and, the handler being quick,
    # finished before the second one asked: most runs both shared it. On Lambda the second finds
    # the only environment busy and gets a new one. Three functions: each must scale out to two.
    source = code(QUICK)
    for n in range(3):
        fn = sim.deploy("app.handler", code_dir=source, name=f"pair{n}")
        a, b = fn.invoke_many([{}, {}], concurrency=2)
        assert a.instance_id != b.instance_id and (a.cold_start, b.cold_start) == (True, True)
        c, d = fn.invoke_many([{}, {}], concurrency=2)  # both idle now: both reused
        assert {c.instance_id, d.instance_id} == {a.instance_id, b.instance_id}
        fn.scale_down(keep=1)
        e, f = fn.invoke_many([{}, {}], concurrency=2)
        assert e.instance_id != f.instance_id and (e.cold_start, f.cold_start) == (False, True)
        assert len(fn.instances) == 2


def test_a_wave_that_finds_no_idle_instance_starts_one_per_event(sim: Simulator, code: Code,
                                                                 sandbox_kind: str) -> None:
    # Before: 200 events with concurrency=200 made about 120 to 175 instances. The routing is decided
    # before any sandbox work, so the sandbox cannot change it; a fakefs cold start costs several
    # times a namespace one (200 take ~17 s against ~3 s on two shared cores), so fakefs runs 50.
    count = 200 if sandbox_kind == "namespace" else 50
    fn = sim.deploy("app.handler", code_dir=code(QUICK))
    invs = fn.invoke_many([{"n": i} for i in range(count)], concurrency=count)
    assert [inv.payload for inv in invs] == [{"n": i} for i in range(count)]
    assert len({inv.instance_id for inv in invs}) == count
    assert all(inv.cold_start for inv in invs)
    assert len(fn.instances) == count and {i.invocations for i in fn.instances} == {1}
    # The next wave arrives after this one completed: it finds them all idle and starts none.
    again = fn.invoke_many([{}] * count, concurrency=count)
    assert {inv.instance_id for inv in again} == {inv.instance_id for inv in invs}
    assert not any(inv.cold_start for inv in again)


def test_the_same_invoke_many_routes_the_same_way_every_time(sim: Simulator, code: Code,
                                                             sandbox_kind: str) -> None:
    # One idle instance, then 5 events in waves of 3: the first wave takes the idle instance and
    # starts two; they complete in event order, so the second wave takes the most recently used.
    source = code(QUICK)
    repeats = 50 if sandbox_kind == "namespace" else 10  # 3 cold starts each: see the test above
    for n in range(repeats):
        fn = sim.deploy("app.handler", code_dir=source, name=f"repeat{n}")
        fn.invoke({})
        invs = fn.invoke_many([{"i": i} for i in range(5)], concurrency=3)
        assert (_labels([inv.instance_id for inv in invs]), [inv.cold_start for inv in invs]) == (
            [1, 2, 3, 3, 2], [False, True, True, False, False]), f"repeat {n}"
        assert [inv.payload for inv in invs] == [{"i": i} for i in range(5)]
        for instance in fn.instances:
            instance.destroy()


@pytest.mark.parametrize("routing", ["warm", "fresh", "random"])
def test_a_seeded_simulator_routes_waves_the_same_way(make_sim: Callable[..., Simulator], code: Code,
                                                      routing: str) -> None:
    source = code(QUICK)
    routed: list[list[tuple[str | None, bool, str]]] = []
    traced: list[list[tuple[str, str | None, str | None]]] = []
    for _ in range(2):
        sim = make_sim(routing=routing, seed=11)
        fn = sim.deploy("app.handler", code_dir=source)
        invs = [fn.invoke({}), fn.invoke({}), *fn.invoke_many([{}] * 7, concurrency=3),
                *fn.invoke_many([{}] * 4, concurrency=4)]
        routed.append([(inv.instance_id, inv.cold_start, inv.request_id) for inv in invs])
        traced.append([(e.kind, e.instance, e.request_id) for e in sim.trace])
    assert routed[0] == routed[1] and traced[0] == traced[1]
    if routing == "fresh":
        assert all(cold for _, cold, _ in routed[0])


def test_reserved_concurrency_throttles_the_last_events_of_a_wave(sim: Simulator, code: Code) -> None:
    # A quick handler: before, the first invocations finished before the last ones arrived and
    # fewer were throttled, a different number each run.
    fn = sim.deploy("app.handler", code_dir=code(QUICK), reserved_concurrency=2)
    invs = fn.invoke_many([{"n": i} for i in range(5)], concurrency=5)
    assert [inv.status_code for inv in invs] == [200, 200, 429, 429, 429]
    assert [inv.payload for inv in invs] == [{"n": 0}, {"n": 1}, None, None, None]
    assert {inv.error["errorType"] for inv in invs[2:] if inv.error} == {"TooManyRequestsException"}
    assert len(fn.instances) == 2
    # Waves of 2 fit: none is throttled, and the second wave reuses the first one's instances.
    invs = fn.invoke_many([{}] * 4, concurrency=2)
    assert [inv.status_code for inv in invs] == [200] * 4 and not any(inv.cold_start for inv in invs)
    # One idle instance and a free slot for one more: a wave of 3 gets 200, 200, 429.
    fn.scale_down(keep=1)
    invs = fn.invoke_many([{}] * 3, concurrency=3)
    assert [(inv.status_code, inv.cold_start) for inv in invs] == [(200, False), (200, True), (429, False)]
    kinds = [e.kind for e in sim.trace if e.kind in ("throttled", "invoke")][-3:]
    assert kinds == ["throttled", "invoke", "invoke"]  # turned away on arrival, the others on completion


def test_staggered_arrival_reuses_the_instance_of_a_completed_invocation(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(QUICK))
    invs = fn.invoke_many([{"n": i} for i in range(4)], concurrency=1, interval_s=60)
    assert len({inv.instance_id for inv in invs}) == 1
    assert [inv.cold_start for inv in invs] == [True, False, False, False]
    assert [inv.payload for inv in invs] == [{"n": i} for i in range(4)]
    # The clock moved on to each arrival and ends at the last completion.
    done = [e.t for e in sim.trace if e.kind == "invoke"]
    assert [int(t // 60) for t in done] == [0, 1, 2, 3]
    assert 180 < sim.clock.now() == done[-1] < 181


def test_staggered_arrival_scales_out_while_earlier_invocations_run(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(QUICK))
    # Every 0.35 s of virtual time one event sleeping 0.4 s: the second arrives while the first runs
    # and gets an instance of its own; the third arrives at 0.7 s, when only the first has completed.
    invs = fn.invoke_many([{"sleep": 0.4}] * 3, concurrency=1, interval_s=0.35)
    assert _labels([inv.instance_id for inv in invs]) == [1, 2, 1]
    assert [inv.cold_start for inv in invs] == [True, True, False]
    # interval_s=0: every wave arrives at once, as one wave would.
    other = sim.deploy("app.handler", code_dir=code(QUICK), name="burst")
    invs = other.invoke_many([{}] * 3, concurrency=1, interval_s=0)
    assert len({inv.instance_id for inv in invs}) == 3


def test_staggered_arrival_throttles_what_arrives_while_the_reserved_concurrency_is_used(
        sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(QUICK), reserved_concurrency=1)
    assert [inv.status_code for inv in fn.invoke_many([{"sleep": 0.2}] * 3, concurrency=1, interval_s=0.05)] == [
        200, 429, 429]
    assert [inv.status_code for inv in fn.invoke_many([{}] * 3, concurrency=1, interval_s=10)] == [200] * 3


def test_staggered_arrival_reaps_instances_idle_past_their_keepalive(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(QUICK), keepalive_s=30)
    invs = fn.invoke_many([{}] * 3, concurrency=1, interval_s=31)
    assert [inv.cold_start for inv in invs] == [True, True, True]
    assert len({inv.instance_id for inv in invs}) == 3
    assert [e.detail["reason"] for e in sim.trace if e.kind == "destroyed"] == ["idle", "idle"]


def test_invoke_many_says_what_was_wrong(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(QUICK))
    with pytest.raises(ConfigError, match=r"concurrency=0\): use a whole number, 1 or more"):
        fn.invoke_many([{}], concurrency=0)
    with pytest.raises(ConfigError, match=r"interval_s=-1\): use a number of seconds >= 0"):
        fn.invoke_many([{}], interval_s=-1)
    with pytest.raises(ConfigError, match=r"interval_s=nan\)"):
        fn.invoke_many([{}], interval_s=float("nan"))
    with pytest.raises(ConfigError, match=r"The event events\[1\] for 'app' cannot be sent as JSON"):
        fn.invoke_many([{}, {"x": object()}])
    assert fn.instances == [], "nothing ran: the events are checked before the first wave"


def test_a_scenario_invoke_step_takes_interval_s(tmp_path: Path, code: Code, sandbox_kind: str) -> None:
    source = code(QUICK)
    path = tmp_path / "s.yaml"
    path.write_text(
        f"simulator: {{sandbox: {sandbox_kind}}}\n"
        "steps:\n"
        f"  - deploy: {{handler: app.handler, code_dir: {source}}}\n"
        "  - invoke: {count: 3, concurrency: 1, interval_s: 60}\n"
        "  - expect: {instances: 1, cold_starts: 1}\n"
        "  - invoke: {count: 4, concurrency: 4}\n"
        "  - expect: {instances: 4, cold_starts: 4}\n")
    result = load_scenario(path).run()
    assert result.passed, result
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"steps:\n  - deploy: {{handler: app.handler, code_dir: {source}}}\n"
                   "  - invoke: {interval_s: -2}\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml:3: steps\[1\].invoke.interval_s: -2 is negative"):
        load_scenario(bad)


def test_a_harness_failure_in_a_wave_frees_the_other_instances_before_it_is_raised(
        sim: Simulator, code: Code, monkeypatch: pytest.MonkeyPatch) -> None:
    fn = sim.deploy("app.handler", code_dir=code(QUICK))
    spawn, calls = sim._sandbox.spawn, []

    def failing_second(spec: Any) -> Any:
        calls.append(spec)
        if len(calls) == 2:
            raise SandboxError("no room for this one")
        return spawn(spec)

    monkeypatch.setattr(sim._sandbox, "spawn", failing_second)
    with pytest.raises(SandboxError, match="no room for this one"):
        fn.invoke_many([{}] * 3, concurrency=3)
    assert sorted(i.state for i in fn.instances) == ["idle", "idle"], "the others completed and are free"
    assert [e.detail["reason"] for e in sim.trace if e.kind == "destroyed"] == ["failed to start"]
    invs = fn.invoke_many([{}] * 2, concurrency=2)
    assert not any(inv.cold_start for inv in invs)
