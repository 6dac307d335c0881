"""Lambda Managed Instances: environments that run many requests at once, one worker process each.

The handlers are in tests/managed_handlers/ (``probe`` for the engine, ``hazards`` for the /tmp hazards the
README shows); ``sync`` makes the concurrent requests of one environment meet in its shared /tmp, so that a
test proves they ran at the same time (one at a time, or in separate environments, the wait times out).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdasim import Function, Invocation, Simulator
from lambdasim import _lambda_errors as lambda_errors
from lambdasim._errors import SettingError
from tests.conftest import simulator_or_skip

HANDLERS = Path(__file__).parent / "managed_handlers"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_or_skip(sandbox="namespace") as s:
        yield s


def deploy(sim: Simulator, handler: str = "probe.handler", **kwargs: Any) -> Function:
    kwargs.setdefault("capacity_provider", "cp")
    kwargs.setdefault("runtime", "python3.13")
    kwargs.setdefault("timeout_s", 10.0)
    return sim.deploy(handler, HANDLERS, **kwargs)


def events_of(sim: Simulator, kind: str, instance: str | None = None) -> list[dict[str, Any]]:
    return [dict(e.detail) for e in sim.trace if e.kind == kind and (instance is None or e.instance == instance)]


def ok(invs: list[Invocation]) -> list[Any]:
    for inv in invs:
        assert inv.ok, (inv.error, inv.logs)
    return [inv.payload for inv in invs]


def platform(inv: Invocation, kind: str | None = None) -> list[dict[str, Any]]:
    """The platform events of ``inv``'s log (JSON on Managed Instances), or those of type ``kind``."""
    events = [json.loads(line) for line in inv.logs.splitlines() if line.startswith('{"time"')]
    return [e for e in events if e.get("type", "").startswith("platform.") and kind in (None, e["type"])]


def report(inv: Invocation) -> dict[str, Any]:
    (event,) = platform(inv, "platform.report")
    return dict(event["record"])


def wait_until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- 1. concurrent requests, a worker process each --------------------------------------------------


def test_an_environment_runs_its_requests_at_once_each_in_a_worker_process_of_its_own(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=4)
    invs = fn.invoke_many([{"op": "barrier", "name": "four", "count": 4}] * 4, concurrency=4)
    payloads = ok(invs)
    (env,) = fn.instances
    assert {inv.instance_id for inv in invs} == {env.id}
    assert sorted(inv.worker for inv in invs if inv.worker is not None) == [0, 1, 2, 3]
    assert len({p["pid"] for p in payloads}) == 4  # a process each...
    assert [p["invocations"] for p in payloads] == [1, 1, 1, 1]  # ...with globals of its own
    assert payloads[0]["env"] == {"AWS_LAMBDA_MAX_CONCURRENCY": "4",
                                  "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances",
                                  "AWS_LAMBDA_LOG_FORMAT": "JSON"}
    assert env.workers == 4
    for inv in invs:  # no cold starts on Managed Instances; each worker's Init output opens its first log
        assert not inv.cold_start and inv.init_duration_ms is None
        assert platform(inv)[0]["type"] == "platform.initStart" and "initDurationMs" not in report(inv)["metrics"]
        record = json.loads(next(line for line in inv.logs.splitlines() if '"message"' in line))
        assert record["requestId"] == inv.request_id and record["message"] == "probe barrier"
    assert sorted(e["worker"] for e in events_of(sim, "worker", env.id) if e["action"] == "started") == [0, 1, 2, 3]
    assert sorted(e["worker"] for e in events_of(sim, "invoke", env.id)) == [0, 1, 2, 3]
    # The second request of a worker has no Init of its own in its log.
    again = fn.invoke({})
    assert again.ok and not platform(again, "platform.initStart") and again.payload["invocations"] == 2


def test_every_worker_runs_its_init_when_the_environment_starts(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=3)
    assert fn.invoke({}).ok  # one request: all three workers start all the same
    (env,) = fn.instances
    wait_until(lambda: len([e for e in events_of(sim, "worker", env.id) if e["action"] == "started"]) == 3)
    assert env.workers == 3 and env.invocations == 1


# -- 2. never frozen; timeouts not enforced; crashed workers replaced ------------------------------


def test_environments_are_never_frozen_between_requests(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=1, environment={"PROBE_TICKS": "1"})
    pid = fn.invoke({}).payload["pid"]
    (env,) = fn.instances
    before = len(env.tmp.read_text(f"ticks-{pid}"))
    time.sleep(0.3)  # no request meanwhile: the Init's thread runs on
    assert len(env.tmp.read_text(f"ticks-{pid}")) > before + 5
    assert not events_of(sim, "frozen") and not events_of(sim, "thawed")


def test_a_timeout_fails_its_request_alone_and_its_code_runs_on(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=2, max_environments=1, timeout_s=1.0)
    late, other = fn.invoke_many([{"op": "late", "s": 2.0}, {"op": "sleep", "s": 0.1}], concurrency=2)
    assert late.error == lambda_errors.task_timed_out(late.request_id, 1.0)
    assert report(late)["status"] == "timeout" and late.duration_ms == 1000.0
    assert other.ok and other.worker != late.worker
    (env,) = fn.instances
    assert not env.tmp.exists("late-done")  # not killed: it writes this one second later
    # Its worker is busy until the handler returns: the environment has one free worker, not two.
    first, throttled = fn.invoke_many([{"op": "sleep", "s": 0.3}] * 2, concurrency=2)
    assert first.ok and first.worker == other.worker
    assert throttled.status_code == 429 and throttled.error == lambda_errors.throttled()
    wait_until(lambda: env.tmp.exists("late-done"))
    wait_until(lambda: env.inflight == 0)  # the file is written just before the handler returns
    # Its late answer is dropped, and the same worker process takes requests again; nothing was reset.
    both = ok(fn.invoke_many([{"op": "barrier", "name": "again", "count": 2}] * 2, concurrency=2))
    assert str(env.tmp.read_text("late-pid")) in {str(p["pid"]) for p in both}
    assert env.resets == 0 and env.workers == 2
    assert not [e for e in events_of(sim, "worker") if e["action"] != "started"]


def test_a_crashed_worker_fails_its_request_and_is_replaced_without_a_reset(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=2, max_environments=1)
    first = ok(fn.invoke_many([{"op": "barrier", "name": "one", "count": 2}] * 2, concurrency=2))
    (env,) = fn.instances
    crashed, survivor = fn.invoke_many([{"op": "exit", "code": 3, "after": "running"},
                                        {"op": "outlive", "name": "running", "s": 0.5}], concurrency=2)
    assert crashed.error == lambda_errors.runtime_exited(crashed.request_id, 3)
    assert crashed.error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert (report(crashed)["status"], report(crashed)["errorType"]) == ("error", "Runtime.ExitError")
    assert survivor.ok and survivor.payload["invocations"] == 2  # its globals stayed: no reset
    assert env.resets == 0 and env.tmp.exists(".sync/one")  # nor did /tmp
    worker_events = [e for e in events_of(sim, "worker", env.id) if e["action"] != "started"]
    assert worker_events == [{"action": "exited", "worker": crashed.worker, "reason": "crash", "code": 3},
                             {"action": "replaced", "worker": crashed.worker}]
    wait_until(lambda: len(events_of(sim, "worker", env.id)) == 5)  # the replacement's Init
    assert events_of(sim, "worker", env.id)[-1] == {"action": "started", "worker": crashed.worker,
                                                    "init_ms": events_of(sim, "worker", env.id)[-1]["init_ms"]}
    after = ok(fn.invoke_many([{"op": "barrier", "name": "two", "count": 2}] * 2, concurrency=2))
    pids = {p["pid"] for p in after}
    assert survivor.payload["pid"] in pids and len(pids - {p["pid"] for p in first}) == 1  # one new process
    assert sorted(p["invocations"] for p in after) == [1, 3]  # the new one ran an Init of its own
    killed = fn.invoke({"op": "kill"})
    assert killed.error == lambda_errors.runtime_exited(killed.request_id, -9)
    assert killed.error["errorMessage"].endswith("signal: killed") and env.resets == 0


# -- 3. backpressure and the minimum --------------------------------------------------------------


def test_requests_beyond_every_busy_worker_are_throttled(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=2, max_environments=1)
    invs = fn.invoke_many([{"op": "barrier", "name": "busy", "count": 2}] * 3, concurrency=3)
    assert ok(invs[:2]) and {inv.instance_id for inv in invs[:2]} == {fn.instances[0].id}
    assert invs[2].status_code == 429 and invs[2].error == lambda_errors.throttled()
    assert invs[2].function_error is None and events_of(sim, "throttled")
    assert ok([fn.invoke({})])  # once a worker is free, requests are served again


def test_min_environments_start_at_deploy_before_any_request(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=2, min_environments=2, max_environments=2)
    envs = fn.instances
    assert len(envs) == 2 and all(e.state == "idle" and e.invocations == 0 and e.workers == 2 for e in envs)
    provisioned = events_of(sim, "provisioned")
    assert len(provisioned) == 2 and all(p["init_ms"] > 0 for p in provisioned)
    assert len([e for e in events_of(sim, "worker") if e["action"] == "started"]) == 4  # all Init at deploy
    assert all(e["init_type"] == "lambda-managed-instances" for e in events_of(sim, "instance_created"))
    invs = fn.invoke_many([{"op": "barrier", "name": "min", "count": 2}] * 4, concurrency=4)
    ok(invs)
    assert {inv.instance_id for inv in invs} == {e.id for e in envs}  # no environment started for them
    assert not any(inv.cold_start for inv in invs) and len(events_of(sim, "instance_created")) == 2


def test_a_redeploy_starts_the_new_versions_minimum_before_traffic_moves(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=1, min_environments=1)
    (old,) = fn.instances
    fn.redeploy(environment={"VERSION": "2"})
    (new,) = fn.instances
    assert new.version == "2" and new.state == "idle" and old.state == "dead"
    kinds = [e.kind for e in sim.trace if e.kind in ("provisioned", "redeploy")]
    assert kinds == ["provisioned", "provisioned", "redeploy"]
    assert fn.invoke({}).instance_id == new.id


# -- 4. routing ---------------------------------------------------------------------------------------


def test_a_wave_fills_an_environments_workers_before_another_starts(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=4)
    # Each environment's four requests meet in its own /tmp: they ran at once, in that environment.
    invs = fn.invoke_many([{"op": "barrier", "name": "wave", "count": 4}] * 8, concurrency=8)
    ok(invs)
    envs = fn.instances
    assert len(envs) == 2
    assert [inv.instance_id for inv in invs] == [envs[0].id] * 4 + [envs[1].id] * 4
    assert [e.invocations for e in envs] == [4, 4]
    assert len(events_of(sim, "instance_created")) == 2


# -- 5. the /tmp hazards the README shows -------------------------------------------------------------


def two_at_once(sim: Simulator, handler: str, events: list[dict[str, Any]]) -> tuple[Function, list[Invocation]]:
    fn = deploy(sim, handler, max_concurrency=2, max_environments=1, timeout_s=10.0)
    invs = fn.invoke_many(events, concurrency=2)
    ok(invs)
    return fn, invs


def test_two_requests_writing_one_tmp_file_lose_an_order(sim: Simulator) -> None:
    fn, invs = two_at_once(sim, "hazards.append_unsafe", [{"order": "a"}, {"order": "b"}])
    assert [inv.payload for inv in invs] == [1, 1]  # each wrote the one order it read plus its own
    (env,) = fn.instances
    assert json.loads(env.tmp.read_text("orders.json")) in (["a"], ["b"])  # the other one is lost


def test_an_fcntl_lock_keeps_every_order(sim: Simulator) -> None:
    fn, invs = two_at_once(sim, "hazards.append_locked", [{"order": "a"}, {"order": "b"}])
    assert sorted(inv.payload for inv in invs) == [1, 2]
    assert sorted(json.loads(fn.instances[0].tmp.read_text("orders.json"))) == ["a", "b"]


def test_a_file_per_request_keeps_every_order(sim: Simulator) -> None:
    fn, invs = two_at_once(sim, "hazards.append_per_request", [{"order": "a"}, {"order": "b"}])
    tmp = fn.instances[0].tmp
    assert sorted(tmp.listdir("orders")) == sorted(f"{inv.request_id}.json" for inv in invs)
    assert sorted(json.loads(tmp.read_text(f"orders/{name}")) for name in tmp.listdir("orders")) == ["a", "b"]


def test_cleaning_tmp_at_the_start_deletes_another_requests_files(sim: Simulator) -> None:
    _, (first, second) = two_at_once(sim, "hazards.clean_unsafe", [{"order": "first"}, {"order": "second"}])
    assert first.payload is False and second.payload is True


def test_a_scratch_directory_per_request_keeps_the_other_requests_files(sim: Simulator) -> None:
    _, (first, second) = two_at_once(sim, "hazards.clean_per_request", [{"order": "first"}, {"order": "second"}])
    assert first.payload is True and second.payload is True


# -- what else an environment does ---------------------------------------------------------------------


def test_an_init_error_fails_the_request_that_waited_for_it(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("raise RuntimeError('no config')\ndef handler(e, c):\n    return 1\n")
    fn = sim.deploy("app.handler", tmp_path, capacity_provider="cp", max_concurrency=2, runtime="python3.13")
    for _ in range(2):  # every request that needs a worker gets one started, and its Init error
        inv = fn.invoke({})
        assert inv.error is not None and inv.error["errorType"] == "RuntimeError", inv.logs
        assert inv.error["errorMessage"] == "no config" and "no config" in inv.logs
        assert (report(inv)["status"], report(inv)["errorType"]) == ("error", "RuntimeError")
    exits = [e for e in events_of(sim, "worker") if e["action"] == "exited"]
    assert exits and all(e["reason"] == "init error" for e in exits)


def test_instance_crash_resets_the_whole_environment(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=2)
    pid = fn.invoke({}).payload["pid"]
    (env,) = fn.instances
    env.crash()
    assert env.resets == 1
    again = fn.invoke({})  # a new supervisor, and new workers with an Init of their own
    assert again.ok and again.payload["invocations"] == 1 and again.payload["pid"] != pid
    reset = next(i for i, e in enumerate(sim.trace) if e.kind == "reset")
    wait_until(lambda: len([e for e in sim.trace[reset:] if e.kind == "worker" and e.detail["action"] == "started"])
               == 2)


def test_the_fakefs_sandbox_refuses_managed_instances(tmp_path: Path) -> None:
    with simulator_or_skip(sandbox="fakefs") as sim:
        with pytest.raises(SettingError, match="fakefs sandbox cannot run Lambda Managed Instances"):
            deploy(sim)
        fn = sim.deploy("probe.handler", HANDLERS)
        with pytest.raises(SettingError, match="fakefs sandbox cannot run Lambda Managed Instances"):
            fn.redeploy(capacity_provider="cp", runtime="python3.13")


def test_a_runtime_behind_the_runtime_api_is_refused_on_managed_instances(sim: Simulator) -> None:
    with pytest.raises(SettingError, match="built-in Python runtime only"):
        deploy(sim, runtime="provided.al2023")


def test_an_unqualified_invocation_runs_latest_published(sim: Simulator) -> None:
    """On Managed Instances an invocation without a qualifier runs $LATEST.PUBLISHED, not $LATEST."""
    fn = deploy(sim, max_concurrency=2)
    inv = fn.invoke({"op": "sleep", "s": 0})
    assert inv.ok and inv.executed_version == "$LATEST.PUBLISHED"
    (start,) = platform(inv, "platform.start")
    assert start["record"] == {"requestId": inv.request_id, "version": "$LATEST.PUBLISHED"}


# -- platform lines, tracing and imports -----------------------------------------------------------------


def test_platform_lines_are_json_records_as_on_managed_instances(sim: Simulator) -> None:
    """Managed Instances write JSON logs whatever the function says: INIT_START, START and REPORT are
    platform.initStart, platform.start and platform.report, whose metrics are the duration alone (the Telemetry
    API's schema for Managed Instances), and there is no platform.runtimeDone, not even at DEBUG."""
    fn = deploy(sim, max_concurrency=1, system_log_level="DEBUG", log_format="JSON")
    inv = fn.invoke({})
    assert inv.ok, inv.logs
    assert not [line for line in inv.logs.splitlines() if line.startswith(("INIT_START", "START", "END", "REPORT"))]
    kinds = [e["type"] for e in platform(inv)]
    assert kinds == ["platform.initStart", "platform.start", "platform.report"], inv.logs
    init = platform(inv, "platform.initStart")[0]["record"]
    assert (init["initializationType"], init["functionName"], init["functionVersion"], init["phase"]) == \
        ("lambda-managed-instances", "probe", "$LATEST.PUBLISHED", "init")
    record = report(inv)
    assert record == {"requestId": inv.request_id, "status": "success",
                      "metrics": {"durationMs": round(inv.duration_ms, 3)}}
    # The Text format of the function's settings does not apply: still JSON.
    text = sim.deploy("probe.handler", HANDLERS, name="text", capacity_provider="cp", runtime="python3.13")
    assert platform(text.invoke({}), "platform.report")


def test_system_log_level_filters_managed_platform_lines(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=1, log_format="JSON", system_log_level="WARN")
    inv = fn.invoke({})
    assert inv.ok and platform(inv) == [], inv.logs


def test_active_tracing_on_managed_instances_names_the_trace_in_the_report(sim: Simulator) -> None:
    fn = deploy(sim, max_concurrency=1, tracing=True)
    inv = fn.invoke({})
    assert inv.ok, inv.logs
    tracing = report(inv)["tracing"]
    assert tracing["type"] == "X-Amzn-Trace-Id" and len(tracing["spanId"]) == 16
    assert tracing["value"].startswith("Root=1-") and tracing["value"].endswith(f"Parent={tracing['spanId']};Sampled=1")
    assert platform(inv, "platform.start")[0]["record"]["tracing"] == tracing
    untraced = deploy(sim, name="untraced", max_concurrency=1).invoke({})
    assert "tracing" not in report(untraced)


def test_managed_invocations_list_their_outside_imports(sim: Simulator, tmp_path: Path) -> None:
    """As the framed runtime's: a worker's Init imports come with its first invocation, each later import with
    the invocation that made it, and the trace has them."""
    (tmp_path / "app.py").write_text(
        "import yaml\n"
        "def handler(event, context):\n"
        "    if event.get('late'):\n"
        "        import pytest  # noqa: F401\n"
        "    return 1\n")
    fn = sim.deploy("app.handler", tmp_path, capacity_provider="cp", max_concurrency=1, runtime="python3.13")
    first, late, again = fn.invoke({}), fn.invoke({"late": True}), fn.invoke({"late": True})
    assert first.ok and late.ok and again.ok, (first.logs, late.logs)
    assert (first.outside_imports, late.outside_imports, again.outside_imports) == (("yaml",), ("pytest",), ())
    assert [e.detail.get("outside_imports") for e in sim.trace if e.kind == "invoke"] == [["yaml"], ["pytest"], None]


def test_an_init_error_on_managed_instances_lists_its_outside_imports(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import yaml\nraise RuntimeError('no config')\n")
    inv = sim.deploy("app.handler", tmp_path, capacity_provider="cp", max_concurrency=1,
                     runtime="python3.13").invoke({})
    assert inv.error is not None and inv.error["errorType"] == "RuntimeError", inv.logs
    assert inv.outside_imports == ("yaml",)
