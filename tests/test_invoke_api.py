"""Lambda's Invoke API (``Simulator.serve()`` and the instances' ``AWS_ENDPOINT_URL_LAMBDA``), with boto3's own
Lambda client as the caller: invocation types, tail logs, function errors, qualifiers, Lambda's errors with
their codes and statuses, handler-to-handler invocations on both sandboxes, Event invocations' retries, and the
trace that links caller and callee."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdasim import ConfigError, Simulator
from lambdasim import _lambda_errors as E
from tests.conftest import SANDBOXES, Code, simulator_or_skip

pytestmark = pytest.mark.sandbox


APP = """
import json, os, time
import boto3

CALLS = 0

def lam():
    return boto3.client("lambda")

def handler(event, context):
    global CALLS
    CALLS += 1
    print("handled", json.dumps(event)[:100])
    op = event.get("op")
    if op == "fail":
        raise ValueError("boom")
    if op == "flaky" and CALLS == 1:
        raise RuntimeError("first time")
    if op == "context":
        cc = context.client_context
        return {"custom": cc and cc.custom, "env": cc and cc.env, "tenant": context.tenant_id}
    if op == "noisy":
        print("x" * 10000)
    if op == "call":
        r = lam().invoke(FunctionName=event["name"], Payload=json.dumps(event.get("payload", {})))
        return {"status": r["StatusCode"], "error": r.get("FunctionError"), "payload": json.loads(r["Payload"].read()),
                "me": context.aws_request_id}
    if op == "recurse":
        n = event["n"]
        if n == 0:
            return {"depth": 0, "ids": [context.aws_request_id]}
        r = lam().invoke(FunctionName=context.function_name, Payload=json.dumps({"op": "recurse", "n": n - 1}))
        inner = json.loads(r["Payload"].read())
        return {"depth": n, "ids": [context.aws_request_id] + inner["ids"]}
    if op == "event":
        r = lam().invoke(FunctionName=event["name"], InvocationType="Event", Payload=b'{"op": "echo"}')
        return {"status": r["StatusCode"], "request_id": r["ResponseMetadata"]["RequestId"],
                "me": context.aws_request_id}
    if op == "list":
        return [f["FunctionName"] for f in lam().list_functions()["Functions"]]
    if op == "sleep":
        time.sleep(event["s"])
    return {"event": event, "calls": CALLS, "version": context.function_version}
"""

ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


def client(url: str, **config: Any) -> Any:
    """boto3's Lambda client on ``url``, without retries (a test sees each answer)."""
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=120, **config))


def invoke(lam: Any, name: str, event: Any = None, **kwargs: Any) -> dict[str, Any]:
    """An invoke whose payload is read and decoded (``body``)."""
    payload = kwargs.pop("raw", None)
    r = lam.invoke(FunctionName=name, Payload=payload if payload is not None else json.dumps(event or {}), **kwargs)
    raw = r["Payload"].read()
    r["body"] = json.loads(raw) if raw else None
    return dict(r)


def refused(call: Callable[[], Any]) -> tuple[str, int, str]:
    """The ClientError of ``call``: its code, HTTP status and message."""
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Message"]


def serving(lam: Any, name: str) -> None:
    """The server still answers."""
    assert invoke(lam, name, {"op": "echo"})["StatusCode"] == 200


@pytest.fixture
def api(sim: Simulator, code: Code) -> Iterator[tuple[Simulator, Any, str]]:
    """The simulator (functions ``app`` and, named ``stack-Orders-X1`` on Lambda, ``Orders``) served, its client
    and its URL."""
    folder = code(APP)
    sim.deploy("app.handler", folder, timeout_s=30)
    sim.deploy("app.handler", folder, name="Orders", function_name="stack-Orders-X1")
    with sim.serve() as url:
        yield sim, client(url), url


def invokes(sim: Simulator, kind: str = "invoke") -> list[Any]:
    return [e for e in sim.trace if e.kind == kind]


# -- RequestResponse ----------------------------------------------------------------------------------------------


def test_request_response_returns_the_payload_the_version_and_the_request_id(api: tuple[Simulator, Any, str]) -> None:
    sim, lam, _ = api
    r = invoke(lam, "app", {"op": "echo", "n": 1})
    assert r["StatusCode"] == 200 and "FunctionError" not in r and "LogResult" not in r
    assert r["body"] == {"event": {"op": "echo", "n": 1}, "calls": 1, "version": "$LATEST"}
    assert r["ExecutedVersion"] == "$LATEST"
    (event,) = invokes(sim)
    assert r["ResponseMetadata"]["RequestId"] == event.request_id and event.function == "app"
    assert "invocation_type" not in event.detail and "caller" not in event.detail
    # No payload: the function gets {}.
    assert lam.invoke(FunctionName="app")["Payload"].read() == b'{"event": {}, "calls": 2, "version": "$LATEST"}'


@pytest.mark.parametrize("name", ["Orders", "stack-Orders-X1", f"{ARN}stack-Orders-X1", "123456789012:function:Orders",
                                  "stack-Orders-X1:$LATEST", f"{ARN}Orders:1"])
def test_a_function_is_named_by_either_name_or_an_arn(api: tuple[Simulator, Any, str], name: str) -> None:
    sim, lam, _ = api
    r = invoke(lam, name, {"op": "echo"})
    assert r["StatusCode"] == 200 and r["body"]["calls"] == 1
    assert r["ExecutedVersion"] == ("1" if name.endswith(":1") else "$LATEST")
    assert [e.function for e in invokes(sim)] == ["Orders"]


def test_a_function_error_is_unhandled_with_the_error_as_body(api: tuple[Simulator, Any, str]) -> None:
    _, lam, _ = api
    r = invoke(lam, "app", {"op": "fail"})
    assert r["StatusCode"] == 200 and r["FunctionError"] == "Unhandled" and r["ExecutedVersion"] == "$LATEST"
    assert r["body"]["errorType"] == "ValueError" and r["body"]["errorMessage"] == "boom"
    assert r["body"]["requestId"] == r["ResponseMetadata"]["RequestId"]
    assert any("raise ValueError" in frame for frame in r["body"]["stackTrace"])
    serving(lam, "app")


def test_the_tail_log_is_the_last_4_kb_of_the_invocations_log(api: tuple[Simulator, Any, str]) -> None:
    _, lam, _ = api
    r = invoke(lam, "app", {"op": "echo"}, LogType="Tail")
    log = base64.b64decode(r["LogResult"]).decode()
    rid = r["ResponseMetadata"]["RequestId"]
    assert log.startswith("INIT_START") or log.startswith("START")
    assert 'handled {"op": "echo"}' in log and f"START RequestId: {rid} Version: $LATEST" in log
    assert f"REPORT RequestId: {rid}\tDuration:" in log.splitlines()[-1]
    noisy = base64.b64decode(invoke(lam, "app", {"op": "noisy"}, LogType="Tail")["LogResult"])
    assert len(noisy) == 4096 and noisy.decode().rstrip("\n").splitlines()[-1].startswith("REPORT RequestId:")
    assert "LogResult" not in invoke(lam, "app", {"op": "echo"}, LogType="None")


def test_the_client_context_and_the_tenant_reach_the_handler(sim: Simulator, code: Code) -> None:
    sim.deploy("app.handler", code(APP))
    sim.deploy("app.handler", code(APP), name="tenanted", tenant_isolation=True)
    context = base64.b64encode(json.dumps({"custom": {"user": "ada"}, "env": {"locale": "en"}}).encode()).decode()
    with sim.serve() as url:
        lam = client(url)
        assert invoke(lam, "app", {"op": "context"}, ClientContext=context)["body"] == {
            "custom": {"user": "ada"}, "env": {"locale": "en"}, "tenant": None}
        assert invoke(lam, "tenanted", {"op": "context"}, TenantId="acme")["body"]["tenant"] == "acme"
        assert refused(lambda: invoke(lam, "tenanted", {"op": "context"})) == (
            "InvalidParameterValueException", 400, E.tenant_mismatch()["errorMessage"])
        assert refused(lambda: invoke(lam, "app", {}, TenantId="acme"))[:2] == ("InvalidParameterValueException", 400)
        assert refused(lambda: invoke(lam, "app", {}, ClientContext="bm90IGpzb24=")) == (  # "not json"
            "InvalidRequestContentException", 400, "Client context must be a valid Base64-encoded JSON object.")
        assert refused(lambda: invoke(lam, "app", {}, ClientContext="%%%"))[:2] == (
            "InvalidRequestContentException", 400)
        serving(lam, "app")


def test_qualifiers_are_latest_and_the_current_version(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP))
    with sim.serve() as url:
        lam = client(url)
        assert invoke(lam, "app", {"op": "echo"}, Qualifier="$LATEST")["ExecutedVersion"] == "$LATEST"
        assert invoke(lam, "app", {"op": "echo"}, Qualifier="1")["ExecutedVersion"] == "1"
        assert fn.redeploy() == "2"
        assert invoke(lam, "app", {"op": "echo"}, Qualifier="2")["ExecutedVersion"] == "2"
        assert invoke(lam, f"{ARN}app:2", {"op": "echo"})["ExecutedVersion"] == "2"
        # An older version (its instances retired at the redeploy) and an alias are not found.
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as info:
            invoke(lam, "app", {}, Qualifier="1")
        assert info.value.response["Error"]["Message"] == f"Function not found: {ARN}app:1"
        assert refused(lambda: invoke(lam, "app", {}, Qualifier="live")) == (
            "ResourceNotFoundException", 404, f"Function not found: {ARN}app:live")
        assert refused(lambda: invoke(lam, f"{ARN}app:2", {}, Qualifier="1")) == (
            "InvalidParameterValueException", 400,
            "The derived qualifier from the function name does not match the specified qualifier.")
        assert refused(lambda: invoke(lam, "arn:aws:lambda:eu-west-1:123456789012:function:app", {})) == (
            "ResourceNotFoundException", 404,
            "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')")
        assert refused(lambda: invoke(lam, "arn:aws:lambda:us-east-1:210987654321:function:app", {}))[:2] == (
            "ResourceNotFoundException", 404)
        serving(lam, "app")


# -- Lambda's errors --------------------------------------------------------------------------------------------------


def test_the_apis_errors_have_lambdas_codes_and_statuses(api: tuple[Simulator, Any, str], code: Code) -> None:
    sim, lam, _ = api
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as info:
        invoke(lam, "nope", {})
    assert info.value.response["Error"] == {"Code": "ResourceNotFoundException",
                                            "Message": f"Function not found: {ARN}nope"}
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert refused(lambda: invoke(lam, "nope", {}, Qualifier="3"))[2] == f"Function not found: {ARN}nope:3"
    serving(lam, "app")
    code_, status, message = refused(lambda: invoke(lam, "app", {}, InvocationType="Later"))
    assert (code_, status) == ("ValidationException", 400) and "Member must satisfy enum value set" in message
    assert refused(lambda: invoke(lam, "app", raw=b"{not json"))[:2] == ("InvalidRequestContentException", 400)
    serving(lam, "app")
    # 7 MB: over the 6 MB of a synchronous invocation; the function does not run.
    big = json.dumps({"op": "echo", "blob": "x" * (7 << 20)}).encode()
    assert refused(lambda: invoke(lam, "app", raw=big)) == (
        "RequestEntityTooLargeException", 413, "Request must be smaller than 6291456 bytes for the InvokeFunction "
                                               "operation")
    serving(lam, "app")
    # An Event invocation's limit is 1 MB.
    event = json.dumps({"blob": "x" * (1 << 20)}).encode()
    assert refused(lambda: invoke(lam, "app", raw=event, InvocationType="Event")) == (
        "RequestEntityTooLargeException", 413,
        f"{len(event)} byte payload is too large for the Event invocation type (limit 1048576 bytes)")
    serving(lam, "app")
    sim.deploy("app.handler", code(APP), name="capped", reserved_concurrency=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as throttled:
        invoke(lam, "capped", {})
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert throttled.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert [e.kind for e in sim.trace if e.function == "capped"][-1] == "throttled"
    serving(lam, "app")
    assert [e.detail["error"] for e in sim.trace if e.kind == "rejected"] == ["RequestEntityTooLargeException"]


def _raw(url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         ) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        sent = {"Content-Length": str(len(body)), **(headers or {})}
        for key, value in sent.items():
            conn.putheader(key, value)
        conn.endheaders(body or None)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def test_malformed_paths_and_bodies_are_answered_and_the_server_keeps_serving(api: tuple[Simulator, Any, str]) -> None:
    sim, lam, url = api
    for path in ("/2015-03-31/functions/%zz/invocations", "/2015-03-31/functions//invocations",
                 "/2015-03-31/functions/a%2Fb/invocations", "/2015-03-31/functions/" + "a" * 300 + "/invocations"):
        status, headers, body = _raw(url, "POST", path, b"{}")
        assert (status, headers["x-amzn-errortype"]) == (400, "ValidationException"), path
        assert json.loads(body)["Type"] == "User" and "functionName" in json.loads(body)["message"]
    # Not an operation (no moto to take it): Lambda's UnknownOperationException.
    for method, path in (("GET", "/2015-03-31/functions/app/invocations"), ("POST", "/2099-01-01/nothing"),
                         ("DELETE", "/2015-03-31/functions/app")):
        status, headers, body = _raw(url, method, path)
        assert (status, headers["x-amzn-errortype"]) == (404, "UnknownOperationException"), path
        assert json.loads(body)["message"] == f"Unknown operation: {method} {path}"
    # A body over the server's 10 MB is refused unread, as a synchronous invocation over 6 MB.
    status, headers, body = _raw(url, "POST", "/2015-03-31/functions/app/invocations",
                                 headers={"Content-Length": str(11 << 20)})
    assert (status, headers["x-amzn-errortype"]) == (413, "RequestEntityTooLargeException")
    status, headers, _ = _raw(url, "POST", "/2015-03-31/functions/app/invocations", b"{}",
                              {"X-Amz-Log-Type": "Everything"})
    assert (status, headers["x-amzn-errortype"]) == (400, "ValidationException")
    assert not invokes(sim)
    serving(lam, "app")


def test_dry_run_checks_the_request_and_runs_nothing(api: tuple[Simulator, Any, str]) -> None:
    sim, lam, _ = api
    r = lam.invoke(FunctionName="app", InvocationType="DryRun", Payload=b"{}")
    assert r["StatusCode"] == 204 and r["Payload"].read() == b""
    assert refused(lambda: lam.invoke(FunctionName="nope", InvocationType="DryRun"))[:2] == (
        "ResourceNotFoundException", 404)
    assert refused(lambda: lam.invoke(FunctionName="app", InvocationType="DryRun", TenantId="t"))[:2] == (
        "InvalidParameterValueException", 400)
    assert not invokes(sim) and not sim.functions["app"].instances


# -- Event invocations ----------------------------------------------------------------------------------------------


def test_an_event_invocation_is_accepted_at_once_and_runs_in_the_background(sim: Simulator, code: Code) -> None:
    sim.deploy("app.handler", code(APP))
    with sim.serve() as url:
        lam = client(url)
        began = time.monotonic()
        r = lam.invoke(FunctionName="app", InvocationType="Event", Payload=b'{"op": "sleep", "s": 0.5}')
        assert time.monotonic() - began < 0.4, "202 before the function has run"
        assert r["StatusCode"] == 202 and r["Payload"].read() == b"" and "ExecutedVersion" not in r
        sim.wait_async(30)
    (event,) = invokes(sim)
    assert event.request_id == r["ResponseMetadata"]["RequestId"]
    assert event.detail["invocation_type"] == "Event" and event.detail["attempt"] == 1 and event.detail["error"] is None
    assert [e.kind for e in sim.trace if e.request_id == event.request_id] == ["async_queued", "invoke"]


def _async_sim(code: Code, **deploy: Any) -> Simulator:
    sim = simulator_or_skip(sandbox="namespace", async_time_scale=0.001)
    sim.deploy("app.handler", code(APP), **deploy)
    return sim


@pytest.mark.parametrize("retries", [2, 1, 0])
def test_a_failing_event_is_tried_once_and_retried_max_retry_attempts_times(code: Code, retries: int) -> None:
    with _async_sim(code, max_retry_attempts=retries) as sim, sim.serve() as url:
        began = time.monotonic()
        rid = client(url).invoke(FunctionName="app", InvocationType="Event",
                                 Payload=b'{"op": "fail"}')["ResponseMetadata"]["RequestId"]
        sim.wait_async(30)
        took = time.monotonic() - began
    attempts = invokes(sim)
    assert [(e.request_id, e.detail["attempt"], e.detail["error"]) for e in attempts] == [
        (rid, n, "ValueError") for n in range(1, retries + 2)]
    assert [(e.detail["attempt"], e.detail["delay_s"]) for e in invokes(sim, "async_retry")] == [
        (2, 60.0), (3, 120.0)][:retries]
    (dropped,) = invokes(sim, "async_dropped")
    assert dropped.request_id == rid and dropped.detail["reason"] == "retries exhausted"
    assert dropped.detail["attempts"] == retries + 1 and dropped.detail["max_retry_attempts"] == retries
    assert took >= [0, 0.06, 0.18][retries], "the retries wait Lambda's minute and two, scaled"


def test_an_event_that_fails_once_runs_twice(code: Code) -> None:
    with _async_sim(code) as sim, sim.serve() as url:
        client(url).invoke(FunctionName="app", InvocationType="Event", Payload=b'{"op": "flaky"}')
        sim.wait_async(30)
    assert [(e.detail["attempt"], e.detail["error"]) for e in invokes(sim)] == [(1, "RuntimeError"), (2, None)]
    assert not invokes(sim, "async_dropped")


def test_a_throttled_event_is_retried_with_backoff_until_its_age_is_up(code: Code) -> None:
    with _async_sim(code, reserved_concurrency=0, max_event_age_s=60) as sim, sim.serve() as url:
        client(url).invoke(FunctionName="app", InvocationType="Event", Payload=b"{}")
        sim.wait_async(30)
    throttles = invokes(sim, "throttled")
    assert [e.detail["attempt"] for e in throttles] == list(range(1, len(throttles) + 1))
    assert all(e.detail["invocation_type"] == "Event" for e in throttles)
    delays = [e.detail["delay_s"] for e in invokes(sim, "async_retry")]
    assert delays[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0][: len(delays)] and sum(delays[:-1]) <= 60
    (dropped,) = invokes(sim, "async_dropped")
    assert dropped.detail["reason"] == "event age exceeded" and dropped.detail["age_s"] > 60
    assert not invokes(sim)


def test_events_run_in_arrival_order(code: Code) -> None:
    with _async_sim(code) as sim, sim.serve() as url:
        lam = client(url)
        ids = [lam.invoke(FunctionName="app", InvocationType="Event",
                          Payload=json.dumps({"n": n}).encode())["ResponseMetadata"]["RequestId"] for n in range(5)]
        sim.wait_async(30)
    assert [e.request_id for e in invokes(sim)] == ids


def test_close_stops_the_queue_without_waiting_for_its_retries(code: Code) -> None:
    sim = simulator_or_skip(sandbox="namespace")  # Lambda's own delays: the retry would come in a minute
    sim.deploy("app.handler", code(APP))
    with sim.serve() as url:
        client(url).invoke(FunctionName="app", InvocationType="Event", Payload=b'{"op": "fail"}')
        deadline = time.monotonic() + 30
        while not invokes(sim, "async_retry") and time.monotonic() < deadline:
            time.sleep(0.01)
    with pytest.raises(TimeoutError, match="1 Event invocation"):
        sim.wait_async(0.05)
    began = time.monotonic()
    sim.close()
    assert time.monotonic() - began < 5
    assert len(invokes(sim)) == 1
    (dropped,) = invokes(sim, "async_dropped")
    assert dropped.detail["reason"] == "simulator closed" and dropped.detail["attempts"] == 1


def test_async_settings_are_validated(sim: Simulator, code: Code) -> None:
    for value in (0, -1, float("inf"), "fast", True):
        with pytest.raises(ConfigError, match="async_time_scale"):
            Simulator(sandbox="fakefs", async_time_scale=value)  # type: ignore[arg-type]
    settings: tuple[tuple[str, Any], ...] = (("max_retry_attempts", 3), ("max_retry_attempts", -1),
                                             ("max_retry_attempts", 1.0),
                                             ("max_event_age_s", 59), ("max_event_age_s", 21601),
                                             ("max_event_age_s", 60.5))
    for key, value in settings:
        with pytest.raises(ConfigError, match=key):
            sim.deploy("app.handler", code(APP), **{key: value})
    fn = sim.deploy("app.handler", code(APP), max_retry_attempts=0, max_event_age_s=60)
    assert (fn.config.max_retry_attempts, fn.config.max_event_age_s) == (0, 60)
    fn.redeploy(max_retry_attempts=1)
    assert fn.config.max_retry_attempts == 1
    with pytest.raises(ConfigError, match="max_event_age_s"):
        fn.redeploy(max_event_age_s=0)


# -- functions that invoke functions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["isolated", "host"])
@pytest.mark.parametrize("sandbox_kind", SANDBOXES, indirect=True)
def test_a_handler_invokes_the_simulators_functions(make_sim: Callable[..., Simulator], code: Code,
                                                     network: str) -> None:
    sim = make_sim(network=network, async_time_scale=0.001)
    caller = sim.deploy("app.handler", code(APP), timeout_s=60)
    sim.deploy("app.handler", code(APP), name="other", function_name="stack-other-X")
    # Synchronous, by the other function's Lambda name.
    inv = caller.invoke({"op": "call", "name": "stack-other-X", "payload": {"op": "echo", "n": 7}})
    assert inv.ok, inv.error
    assert inv.payload["status"] == 200 and inv.payload["payload"]["event"] == {"op": "echo", "n": 7}
    callee = next(e for e in invokes(sim) if e.function == "other")
    assert callee.detail["caller"] == {"function": "app", "request_id": inv.request_id}
    # A function error comes back as Lambda gives it.
    failed = caller.invoke({"op": "call", "name": "other", "payload": {"op": "fail"}}).payload
    assert failed["error"] == "Unhandled" and failed["payload"]["errorType"] == "ValueError"
    # Itself, three levels down: each level keeps its instance busy while the next runs on another.
    deep = caller.invoke({"op": "recurse", "n": 3})
    assert deep.ok, deep.error
    assert deep.payload["depth"] == 3 and len(set(deep.payload["ids"])) == 4
    assert len(caller.instances) == 4
    chain = {e.request_id: e.detail.get("caller") for e in invokes(sim) if e.request_id in deep.payload["ids"]}
    ids = deep.payload["ids"]
    assert [chain[rid] for rid in ids] == [None] + [{"function": "app", "request_id": rid} for rid in ids[:-1]]
    # An Event invocation from a handler: 202 at once, run by the simulator's queue.
    queued = caller.invoke({"op": "event", "name": "other"})
    assert queued.ok and queued.payload["status"] == 202
    sim.wait_async(30)
    background = next(e for e in invokes(sim) if e.request_id == queued.payload["request_id"])
    assert background.function == "other" and background.detail["invocation_type"] == "Event"
    assert background.detail["caller"] == {"function": "app", "request_id": queued.request_id}


def test_invokes_from_several_threads_at_once_each_get_an_instance(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(APP))
    fn.invoke({})
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(fn.invoke({"op": "sleep", "s": 0.3})))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(inv.ok for inv in results) and len({inv.instance_id for inv in results}) == 3


def test_other_lambda_operations_go_on_to_moto(code: Code) -> None:
    sim = simulator_or_skip(sandbox="namespace", services=["aws"])
    with sim:
        fn = sim.deploy("app.handler", code(APP))
        inv = fn.invoke({"op": "list"})
        assert inv.ok, inv.error
        assert inv.payload == []  # moto's functions: lambdasim's are not deployed there
        with sim.serve() as url:
            lam = client(url)
            assert lam.list_functions()["Functions"] == []
            assert refused(lambda: lam.get_function(FunctionName="app"))[:2] == ("ResourceNotFoundException", 404)
            serving(lam, "app")


def test_the_instances_endpoint_costs_little(code: Code) -> None:
    with simulator_or_skip(sandbox="namespace") as sim:
        began = time.perf_counter()
        url = sim._invoke_api_url()
        started = time.perf_counter() - began
        assert sim._invoke_api_url() == url and ("127.0.0.1", int(url.rsplit(":", 1)[1])) in sim._forwarded()
        api = sim._api
        assert api is not None
    assert started < 0.05 and api._stopping
