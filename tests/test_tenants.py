"""Tenant isolation: environments per tenant id, never shared, so /tmp and globals are per tenant; the tenant
id reaches the function (context.tenant_id, the Runtime API's header); Lambda's refusals of a missing,
unexpected or invalid tenant id; reserved concurrency and reaping per function."""

from __future__ import annotations

import pytest

from lambdasim import ConfigError, Simulator
from lambdasim import _lambda_errors as E
from lambdasim._provision import TENANT_ID_MAX
from tests.conftest import Code
from tests.test_runtime_api import HEADERS_HANDLER, py_function

pytestmark = pytest.mark.sandbox

APP = """
import os, time
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    if not os.path.exists("/tmp/owner"):  # the first tenant to write it would own it for every other
        with open("/tmp/owner", "w") as f:
            f.write(context.tenant_id)
    time.sleep(event.get("sleep", 0))
    return {"tenant": context.tenant_id, "calls": CALLS, "owner": open("/tmp/owner").read()}
"""

MISMATCH = "Tenant ID configuration not specified or passed to a function when tenant isolation is not enabled."


def test_environments_globals_and_tmp_are_per_tenant(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), tenant_isolation=True)
    seen = [fn.invoke({}, tenant_id=t) for t in ("acme", "acme", "globex", "acme", "globex")]
    assert all(inv.ok for inv in seen), [inv.error for inv in seen]
    assert [(inv.payload["tenant"], inv.payload["calls"], inv.payload["owner"]) for inv in seen] == [
        ("acme", 1, "acme"), ("acme", 2, "acme"), ("globex", 1, "globex"), ("acme", 3, "acme"),
        ("globex", 2, "globex")]
    assert [inv.tenant_id for inv in seen] == ["acme", "acme", "globex", "acme", "globex"]
    assert [inv.cold_start for inv in seen] == [True, False, True, False, False]
    by_tenant = {i.tenant: i for i in fn.instances}
    assert sorted(t or "" for t in by_tenant) == ["acme", "globex"]
    assert by_tenant["acme"].tmp.read_text("owner") == "acme"
    assert by_tenant["globex"].tmp.read_text("owner") == "globex"
    assert {inv.instance_id for inv in seen if inv.tenant_id == "acme"} == {by_tenant["acme"].id}
    created = [(e.instance, dict(e.detail)) for e in sim.trace if e.kind == "instance_created"]
    assert created == [(by_tenant["acme"].id, {"init_type": "on-demand", "tenant": "acme"}),
                       (by_tenant["globex"].id, {"init_type": "on-demand", "tenant": "globex"})]
    assert [e.detail["tenant"] for e in sim.trace if e.kind == "invoke"] == [inv.tenant_id for inv in seen]


def test_invoke_many_routes_each_event_to_its_tenants_environments(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), tenant_isolation=True)
    # One wave: two acme events at once need two acme environments; globex gets its own.
    first = fn.invoke_many([{}] * 3, concurrency=3, tenant_id=["acme", "globex", "acme"])
    assert all(inv.ok for inv in first) and all(inv.cold_start for inv in first)
    assert [inv.payload["tenant"] for inv in first] == ["acme", "globex", "acme"]
    assert sorted(i.tenant or "" for i in fn.instances) == ["acme", "acme", "globex"]
    # One id for every event: only globex's environment is warm for it, once; the second starts another.
    second = fn.invoke_many([{}] * 2, concurrency=2, tenant_id="globex")
    assert [inv.tenant_id for inv in second] == ["globex", "globex"]
    assert sorted(inv.cold_start for inv in second) == [False, True]
    assert all(inv.payload["owner"] == "globex" for inv in second)
    with pytest.raises(ConfigError, match=r"a list of 2 \(one per event"):
        fn.invoke_many([{}, {}], tenant_id=["acme"])
    with pytest.raises(ConfigError, match=r"invoke\(tenant_id=7\): a tenant id is a string, or None"):
        fn.invoke({}, tenant_id=7)  # type: ignore[arg-type]


def test_a_missing_or_unexpected_tenant_id_is_refused_as_lambda_refuses_it(sim: Simulator, code: Code) -> None:
    isolated = sim.deploy("app.handler", code(APP), name="isolated", tenant_isolation=True)
    plain = sim.deploy("app.handler", code(APP), name="plain")
    for inv in (isolated.invoke({}), plain.invoke({}, tenant_id="acme")):
        assert inv.status_code == 400 and inv.function_error is None and inv.payload is None
        assert inv.error == {"errorType": "InvalidParameterValueException", "errorMessage": MISMATCH, "Type": "User"}
        assert inv.version is None and inv.instance_id is None and inv.logs == ""
    assert isolated.instances == [] and plain.instances == [], "the function does not run"
    rejected = [e for e in sim.trace if e.kind == "rejected"]
    assert [(e.function, e.detail["status"], e.detail["error"]) for e in rejected] == [
        ("isolated", 400, "InvalidParameterValueException"), ("plain", 400, "InvalidParameterValueException")]
    # In a wave, only the events without their tenant id are refused.
    wave = isolated.invoke_many([{}] * 2, concurrency=2, tenant_id=["acme", None])
    assert [inv.status_code for inv in wave] == [200, 400]


@pytest.mark.parametrize(("tenant_id", "constraints"), [
    ("acme#1", ["Member must satisfy regular expression pattern: [a-zA-Z0-9\\._:\\/=+\\-@ ]+"]),
    ("", ["Member must have length greater than or equal to 1"]),
    ("x" * 257, ["Member must have length less than or equal to 256"]),
    ("é" * 257, ["Member must have length less than or equal to 256",
                 "Member must satisfy regular expression pattern: [a-zA-Z0-9\\._:\\/=+\\-@ ]+"]),
])
def test_a_tenant_id_outside_the_apis_constraints_is_a_validation_error(
        sim: Simulator, code: Code, tenant_id: str, constraints: list[str]) -> None:
    fn = sim.deploy("app.handler", code(APP), tenant_isolation=True)
    inv = fn.invoke({}, tenant_id=tenant_id)
    count = "1 validation error" if len(constraints) == 1 else f"{len(constraints)} validation errors"
    assert inv.status_code == 400 and inv.error == {
        "errorType": "ValidationException",
        "errorMessage": f"{count} detected: " + "; ".join(
            f"Value '{tenant_id}' at 'tenantId' failed to satisfy constraint: {c}" for c in constraints)}
    assert fn.instances == []


def test_valid_tenant_ids_use_the_apis_whole_alphabet(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), tenant_isolation=True)
    tenant = "Org-1_a.b:c/d=e+f@g h" + "z" * 235
    assert len(tenant) == TENANT_ID_MAX
    inv = fn.invoke({}, tenant_id=tenant)
    assert inv.ok and inv.payload["tenant"] == tenant


def test_reserved_concurrency_and_reaping_apply_per_function(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP), tenant_isolation=True, reserved_concurrency=2, keepalive_s=60)
    wave = fn.invoke_many([{}] * 3, concurrency=3, tenant_id=["acme", "globex", "initech"])
    assert [inv.status_code for inv in wave] == [200, 200, 429], "all tenants count against one reservation"
    assert wave[2].error == E.throttled() and wave[2].tenant_id == "initech"
    assert len(fn.instances) == 2
    sim.clock.advance(61)  # every tenant's environments are reaped as the function's are
    assert fn.instances == []
    assert fn.invoke({}, tenant_id="acme").cold_start


def test_a_runtime_api_runtime_sees_the_tenant_header(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", py_function(code, HEADERS_HANDLER), name="headers", runtime="provided.al2023",
                    tenant_isolation=True)
    inv = fn.invoke({}, tenant_id="acme")
    assert inv.ok, inv.logs
    assert inv.payload["headers"]["lambda-runtime-aws-tenant-id"] == "acme"
    assert fn.instances[0].tenant == "acme"
