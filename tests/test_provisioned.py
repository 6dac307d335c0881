"""Provisioned concurrency: N environments run Init at deploy, before any request; their first invocations
are warm; requests beyond them get on-demand environments; a redeploy prepares the new version's
environments before traffic moves; an Init that fails fails the deploy as Lambda fails the configuration."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lambdasim import Simulator, _provision
from lambdasim._provision import ProvisioningFailed
from tests.conftest import SANDBOXES, Code

pytestmark = pytest.mark.sandbox

APP = """
import os, time, uuid
INIT_ID = uuid.uuid4().hex
INIT_TYPE = os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]
print("init as", INIT_TYPE, flush=True)
time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
if os.environ.get("INIT_FAILS"):
    raise RuntimeError("no database at init")
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    time.sleep(event.get("sleep", 0))
    return {"init_id": INIT_ID, "init_type": INIT_TYPE, "calls": CALLS, "version": os.environ.get("V", "1")}
"""


def _kinds(sim: Simulator) -> list[str]:
    return [e.kind for e in sim.trace]


@pytest.mark.parametrize("sandbox_kind", SANDBOXES, indirect=True)
def test_provisioned_environments_run_init_at_deploy_and_their_first_invocations_are_warm(
        sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), provisioned_concurrency=2)
    # Before any request: two environments, initialised, idle.
    instances = fn.instances
    assert [(i.state, i.provisioned, i.init_type, i.restored, i.inflight, i.tenant) for i in instances] == [
        ("idle", True, "provisioned-concurrency", False, 0, None)] * 2
    assert "invoke" not in _kinds(sim)
    provisioned = [e for e in sim.trace if e.kind == "provisioned"]
    assert sorted(e.instance or "" for e in provisioned) == sorted(i.id for i in instances)
    assert all(e.detail["init_ms"] > 0 and "error" not in e.detail for e in provisioned)
    for i in instances:  # Init's log is the environment's, written at provisioning
        assert i.init_logs.startswith("INIT_START Runtime Version: ")
        assert "init as provisioned-concurrency" in i.init_logs
    created = [e.detail for e in sim.trace if e.kind == "instance_created"]
    assert created == [{"init_type": "provisioned-concurrency"}] * 2

    # A wave of 3: two take the provisioned environments (warm), the third an on-demand one (cold).
    invs = fn.invoke_many([{}] * 3, concurrency=3)
    assert all(inv.ok for inv in invs), [inv.error for inv in invs]
    warm, cold = invs[:2], invs[2]
    for inv in warm:
        assert not inv.cold_start and inv.init_duration_ms is None
        assert "INIT_START" not in inv.logs and "Init Duration" not in inv.logs and "init as" not in inv.logs
        assert inv.payload["init_type"] == "provisioned-concurrency" and inv.payload["calls"] == 1
    assert {inv.instance_id for inv in warm} == {i.id for i in instances}
    assert cold.cold_start and cold.init_duration_ms is not None and "Init Duration" in cold.logs
    assert cold.payload["init_type"] == "on-demand" and "init as on-demand" in cold.logs
    on_demand = next(i for i in fn.instances if i.id == cold.instance_id)
    assert (on_demand.provisioned, on_demand.init_type, on_demand.init_logs) == (False, "on-demand", "")

    # Keep-alive reaps the on-demand environment only; scale_down leaves the provisioned ones.
    sim.clock.advance(hours=2)
    assert sorted(i.id for i in fn.instances) == sorted(i.id for i in instances)
    assert fn.scale_down(keep=0) == 0 and len(fn.instances) == 2
    again = fn.invoke({})
    assert not again.cold_start and again.payload["calls"] == 2


def test_provisioned_inits_run_side_by_side_and_may_outlast_the_on_demand_init_timeout(
        make_sim: Callable[..., Simulator], code: Code) -> None:
    # An on-demand Init over 0.5 s would be cut and retried; a provisioned one has 15 minutes.
    sim = make_sim(init_timeout_s=0.5)
    started = time.monotonic()
    fn = sim.deploy("app.handler", code(APP), provisioned_concurrency=3, environment={"INIT_SLEEP": "1.2"})
    took = time.monotonic() - started
    assert took >= 1.2
    assert took < 3.0, f"3 Inits of 1.2 s took {took:.1f} s: they ran one after another"
    assert "reset" not in _kinds(sim)
    assert all(e.detail["init_ms"] >= 1200 for e in sim.trace if e.kind == "provisioned")
    inv = fn.invoke({})
    assert inv.ok and not inv.cold_start


def test_an_init_over_the_provisioned_limit_fails_the_deploy(sim: Simulator, code: Code,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert _provision.PROVISIONED_INIT_TIMEOUT_S == 900.0  # Lambda's 15 minutes
    monkeypatch.setattr(_provision, "PROVISIONED_INIT_TIMEOUT_S", 0.5)
    with pytest.raises(ProvisioningFailed) as failed:
        sim.deploy("app.handler", code(APP), name="slow", provisioned_concurrency=1,
                   environment={"INIT_SLEEP": "5"})
    assert failed.value.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.50 seconds" in failed.value.error["errorMessage"]
    assert "slow" not in sim.functions


def test_an_init_error_at_provisioning_fails_the_deploy_as_lambda_fails_the_configuration(
        sim: Simulator, code: Code) -> None:
    src = code(APP)
    with pytest.raises(ProvisioningFailed) as failed:
        sim.deploy("app.handler", src, name="broken", provisioned_concurrency=2, environment={"INIT_FAILS": "1"})
    e = failed.value
    assert (e.status, e.status_reason) == ("FAILED", "FUNCTION_ERROR_INIT_FAILURE")
    assert ("Provisioned Concurrency configuration failed to be applied. Reason: FUNCTION_ERROR_INIT_FAILURE"
            in str(e))
    assert "RuntimeError: no database at init" in str(e) and "the function is not deployed" in str(e)
    assert e.error["errorType"] == "RuntimeError" and e.error["errorMessage"] == "no database at init"
    assert "init as provisioned-concurrency" in e.logs
    assert any("no database at init" in note for note in e.__notes__)
    # Rolled back: no function, no environment left; the trace says what happened.
    assert "broken" not in sim.functions
    failed_events = [ev for ev in sim.trace if ev.kind == "provisioned"]
    assert len(failed_events) == 2 and all(ev.detail["error"] == "RuntimeError" for ev in failed_events)
    assert "no database at init" in failed_events[0].detail["error_detail"]["logs"]
    destroyed = [ev for ev in sim.trace if ev.kind == "destroyed"]
    assert len(destroyed) == 2 and {ev.detail["reason"] for ev in destroyed} == {"provisioning failed"}
    # The name is free again: the fixed function deploys.
    fn = sim.deploy("app.handler", src, name="broken", provisioned_concurrency=1)
    assert fn.invoke({}).ok


def test_a_reset_provisioned_environment_is_initialised_again_before_its_next_request(
        sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), provisioned_concurrency=1, timeout_s=1)
    (env,) = fn.instances
    first = fn.invoke({})
    timed_out = fn.invoke({"sleep": 3})
    assert timed_out.error is not None and timed_out.error["errorType"] == "Sandbox.Timedout"
    assert env.resets == 1
    reinit = [e for e in sim.trace if e.kind == "provisioned" and e.detail.get("reinit")]
    assert len(reinit) == 1 and reinit[0].instance == env.id
    after = fn.invoke({})
    assert after.instance_id == env.id and not after.cold_start and "INIT_START" not in after.logs
    assert after.payload["init_id"] != first.payload["init_id"] and after.payload["calls"] == 1  # a new Init
    assert after.payload["init_type"] == "provisioned-concurrency"

    env.crash()  # idle: the runtime is killed, and Init runs again at once
    assert len([e for e in sim.trace if e.kind == "provisioned" and e.detail.get("reinit")]) == 2
    assert env.state == "idle" and "INIT_START" in env.init_logs
    crashed = fn.invoke({})
    assert not crashed.cold_start and crashed.payload["calls"] == 1
    assert crashed.payload["init_id"] != after.payload["init_id"]


def _redeploy_code(code: Code, sleep: float, fails: bool = False) -> Path:
    text = APP.replace('os.environ.get("V", "1")', '"2"')
    text = text.replace('float(os.environ.get("INIT_SLEEP", "0"))', str(sleep))
    if fails:
        text = text.replace('if os.environ.get("INIT_FAILS"):', "if True:")
    return code(text)


def _wait_for(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_redeploy_prepares_the_new_versions_environments_before_traffic_moves(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), provisioned_concurrency=1)
    (old,) = fn.instances
    new_code = _redeploy_code(code, sleep=2.0)
    errors: list[BaseException] = []

    def redeploy() -> None:
        try:
            fn.redeploy(new_code)
        except BaseException as e:  # noqa: BLE001 - reported by the test's thread
            errors.append(e)

    thread = threading.Thread(target=redeploy)
    thread.start()
    try:
        _wait_for(lambda: any(e.kind == "instance_created" and e.version == "2" for e in sim.trace),
                  "the new version's environment")
        # Its Init sleeps: meanwhile invocations go to version 1, on its provisioned environment.
        during = fn.invoke({})
        assert thread.is_alive(), "the redeploy returned before its environments were ready"
        assert during.version == "1" and during.payload["version"] == "1" and during.instance_id == old.id
        assert not during.cold_start and fn.version == "1"
    finally:
        thread.join()
    assert not errors, errors
    assert fn.version == "2"
    after = fn.invoke({})
    assert after.version == "2" and after.payload["version"] == "2"
    assert not after.cold_start, "the new version's provisioned environment had run its Init"
    assert after.payload["init_type"] == "provisioned-concurrency"
    # The old version's provisioned environment is shut down once traffic has moved.
    assert old.state == "dead" and [i.version for i in fn.instances] == ["2"]
    kinds = [(e.kind, e.version) for e in sim.trace if e.kind in ("provisioned", "redeploy")]
    assert kinds == [("provisioned", "1"), ("provisioned", "2"), ("redeploy", "2")]


def test_a_redeploy_whose_init_fails_leaves_traffic_on_the_current_version(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), provisioned_concurrency=1)
    (old,) = fn.instances
    with pytest.raises(ProvisioningFailed, match="stays on its current version"):
        fn.redeploy(_redeploy_code(code, sleep=0, fails=True))
    assert fn.version == "1" and [i.id for i in fn.instances] == [old.id]
    inv = fn.invoke({})
    assert inv.version == "1" and inv.instance_id == old.id and not inv.cold_start


def test_instance_inflight_counts_the_running_invocation(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), provisioned_concurrency=1)
    (env,) = fn.instances
    thread = threading.Thread(target=fn.invoke, args=({"sleep": 1.0},))
    thread.start()
    try:
        _wait_for(lambda: env.state == "busy", "the invocation to start")
        assert env.inflight == 1
    finally:
        thread.join()
    assert env.inflight == 0 and env.state == "idle"
