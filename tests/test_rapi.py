"""The Runtime and Extensions API inside an instance, sans I/O: the HTTP parser (``_rapi_http``) and
Lambda's lifecycle (``_rapi.Lifecycle``), bytes and events in, answers and frames out; and the
shutdown sequence of the real process loop, driven over a socketpair in a forked process."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from itertools import count
from pathlib import Path
from typing import Any, cast

import pytest

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _rapi
from lambdasim import _rapi_http as http
from lambdasim._rapi import (
    RUNTIME,
    Complete,
    Crash,
    Exit,
    InitDone,
    Lifecycle,
    Reply,
    ShutdownOver,
    Signal,
    StartRuntime,
)
from lambdasim._wire import Channel, pack_shutdown

# -- the HTTP parser ---------------------------------------------------------------------------


def feed_all(data: bytes, step: int = 0) -> list[http.Event]:
    parser = http.Parser()
    if not step:
        return parser.feed(data)
    events: list[http.Event] = []
    for i in range(0, len(data), step):
        events += parser.feed(data[i:i + step])
    return events


def test_keep_alive_for_http_1_1_and_close_for_1_0() -> None:
    (r11,) = feed_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
    (r10,) = feed_all(b"GET /a?b=c HTTP/1.0\r\n\r\n")
    (r10k,) = feed_all(b"GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    (r11c,) = feed_all(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert isinstance(r11, http.Request) and r11.keep_alive and r11.method == "GET" and r11.headers == {"host": "x"}
    assert isinstance(r10, http.Request) and not r10.keep_alive and r10.path == "/a"
    assert isinstance(r10k, http.Request) and r10k.keep_alive
    assert isinstance(r11c, http.Request) and not r11c.keep_alive


@pytest.mark.parametrize("step", [0, 1, 7])
def test_content_length_and_chunked_bodies_in_any_pieces(step: int) -> None:
    data = (b"POST /p HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world"
            b"POST /q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n"
            b"Trailer: x\r\n\r\n"
            b"GET /r HTTP/1.1\r\n\r\n")
    events = feed_all(data, step)
    assert [(e.path, e.body) for e in events if isinstance(e, http.Request)] == [
        ("/p", b"hello world"), ("/q", b"hello world"), ("/r", b"")]
    assert len(events) == 3


def test_expect_100_continue_is_answered_before_the_body_comes() -> None:
    parser = http.Parser()
    events = parser.feed(b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert events == [http.Continue()]
    (req,) = parser.feed(b"abc")
    assert isinstance(req, http.Request) and req.body == b"abc"
    assert http.CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_read_and_dropped_with_its_size(chunked: bool) -> None:
    for size, oversized in ((http.BODY_LIMIT, 0), (http.BODY_LIMIT + 1, http.BODY_LIMIT + 1)):
        body = b"x" * size
        if chunked:
            head = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            data = head + b"%x\r\n" % (size - 10) + body[10:] + b"\r\na\r\n" + body[:10] + b"\r\n0\r\n\r\n"
        else:
            data = b"POST /p HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size + body
        (req,) = feed_all(data + b"GET /next HTTP/1.1\r\n\r\n")[:1]
        assert isinstance(req, http.Request)
        assert req.oversized == oversized
        assert len(req.body) == (0 if oversized else size)
    assert http.BODY_LIMIT == 6_291_556 == lambda_errors.MAX_RESPONSE_BYTES


@pytest.mark.parametrize(("data", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /a HTTP/2\r\n\r\n", 400),
    (b"GET /a HTTP/1.1\r\nbad header\r\n\r\n", 400),
    (b"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET /a HTTP/1.1\r\nX: " + b"a" * (64 * 1024) + b"\r\n\r\n", 431),
])
def test_malformed_requests_are_refused_and_end_the_connection(data: bytes, status: int) -> None:
    parser = http.Parser()
    events = parser.feed(data)
    assert len(events) == 1 and isinstance(events[0], http.Malformed) and events[0].status == status
    assert parser.feed(b"GET /a HTTP/1.1\r\n\r\n") == []


def test_a_response_is_one_buffer_with_its_length() -> None:
    data = http.render(202, b'{"status":"OK"}', [("A", "b")], keep_alive=False)
    assert data == (b"HTTP/1.1 202 Accepted\r\nA: b\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
                    b"Connection: close\r\n\r\n{\"status\":\"OK\"}")


# -- the lifecycle -----------------------------------------------------------------------------


def approx(value: float) -> float:
    return cast(float, pytest.approx(value))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def parse(reply: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower case) and body of a :class:`Reply`."""
    assert isinstance(reply, Reply), reply
    head, _, body = reply.data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return int(lines[0].split()[1]), headers, body


def error_of(reply: Any) -> tuple[int, str, str]:
    status, _, body = parse(reply)
    data = json.loads(body)
    assert list(data) == ["errorMessage", "errorType"]
    return status, data["errorType"], data["errorMessage"]


class Env:
    """A lifecycle with a fake clock and numbered ids, and requests as one-liners."""

    def __init__(self, external: list[str] | None = None) -> None:
        self.clock = Clock()
        ids = count(1)
        self.lc = Lifecycle(external=external or [], handler="app.handler",
                            env={"AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST"},
                            clock=self.clock, timer=self.clock,
                            make_id=lambda: f"00000000-0000-4000-8000-{next(ids):012d}")
        self.conns = count(1)

    def req(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            conn: int = 0, keep_alive: bool = True, oversized: int = 0) -> list[Any]:
        request = http.Request(method, path, {k.lower(): v for k, v in (headers or {}).items()}, body,
                               keep_alive, oversized)
        return self.lc.request(conn or next(self.conns), request)

    def next(self, conn: int = 0) -> list[Any]:
        return self.req("GET", "/2018-06-01/runtime/invocation/next", conn=conn)

    def post(self, rid: str, kind: str = "response", body: bytes = b"{}", **kw: Any) -> list[Any]:
        return self.req("POST", f"/2018-06-01/runtime/invocation/{rid}/{kind}", body, **kw)

    def register(self, name: str, events: list[str], **headers: str) -> list[Any]:
        return self.req("POST", "/2020-01-01/extension/register", json.dumps({"events": events}).encode(),
                        {"Lambda-Extension-Name": name, **headers})

    def ext_id(self, name: str, events: list[str]) -> str:
        out = self.register(name, events)
        return parse(out[0])[1]["lambda-extension-identifier"]

    def ext_next(self, ext_id: str, conn: int = 0) -> list[Any]:
        return self.req("GET", "/2020-01-01/extension/event/next",
                        headers={"Lambda-Extension-Identifier": ext_id}, conn=conn)

    def invoke(self, rid: str = "req-1", deadline_ms: int = 0, **kw: Any) -> list[Any]:
        args: dict[str, Any] = {"client_context": None, "identity": None, "tenant_id": None, **kw}
        return self.lc.invoke(rid, b'{"a": 1}', deadline_ms or int(self.clock.now * 1000) + 3000,
                              "Root=1-abc", args["client_context"], args["identity"], args["tenant_id"],
                              "arn:aws:lambda:us-east-1:123456789012:function:fn")

    def ready(self) -> None:
        """Init over, the runtime waiting in next on connection 100."""
        assert self.lc.start() == [StartRuntime()]
        self.lc.runtime_started()
        assert self.next(conn=100) == [InitDone(None)]


def test_init_ends_when_the_runtime_calls_next() -> None:
    env = Env()
    assert env.lc.start() == [StartRuntime()]
    env.lc.runtime_started()
    assert env.next(conn=5) == [InitDone(None)]


def test_next_answers_with_the_event_and_every_header() -> None:
    env = Env()
    env.ready()
    deadline = int(env.clock.now * 1000) + 3000
    (reply,) = env.invoke("req-1", deadline, client_context={"custom": {"k": "v"}},
                          identity={"cognitoIdentityId": "id", "cognitoIdentityPoolId": "pool"}, tenant_id="t1")
    assert reply.conn == 100 and not reply.close
    status, headers, body = parse(reply)
    assert status == 200 and body == b'{"a": 1}'
    assert headers["lambda-runtime-aws-request-id"] == "req-1"
    assert headers["lambda-runtime-deadline-ms"] == str(deadline)
    assert headers["lambda-runtime-invoked-function-arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert headers["lambda-runtime-trace-id"] == "Root=1-abc"
    assert json.loads(headers["lambda-runtime-client-context"]) == {"custom": {"k": "v"}}
    assert json.loads(headers["lambda-runtime-cognito-identity"]) == {"cognitoIdentityId": "id",
                                                                      "cognitoIdentityPoolId": "pool"}
    assert headers["lambda-runtime-aws-tenant-id"] == "t1"
    assert headers["lambda-runtime-invocation-id"] == "00000000-0000-4000-8000-000000000001"
    assert headers["content-type"] == "application/json"


def test_headers_of_what_is_not_set_are_left_out() -> None:
    env = Env()
    env.ready()
    _, headers, _ = parse(env.invoke()[0])
    assert not {"lambda-runtime-client-context", "lambda-runtime-cognito-identity",
                "lambda-runtime-aws-tenant-id"} & set(headers)


def test_an_invocation_is_complete_when_the_runtime_replied_and_called_next_again() -> None:
    env = Env()
    env.ready()
    env.invoke()
    env.clock.now += 0.25
    (accepted,) = env.post("req-1", body=b'"ok"')
    assert parse(accepted)[:1] == (202,) and parse(accepted)[2] == b'{"status":"OK"}'
    env.clock.now += 0.25
    (done,) = env.next()
    assert done == Complete(b'"ok"', None, approx(500.0))


def test_a_second_next_while_the_invocation_is_unanswered_is_refused() -> None:
    env = Env()
    env.ready()
    env.invoke()
    assert error_of(env.next()[0]) == (
        403, "InvalidStateTransition",
        "State transition from Running to Ready failed for runtime. Error: State transition is not allowed")


def test_a_reply_for_another_request_id_is_refused() -> None:
    env = Env()
    env.ready()
    env.invoke()
    assert error_of(env.post("other")[0]) == (400, "InvalidRequestID", "Invalid request ID")
    assert error_of(env.post("other", "error")[0]) == (400, "InvalidRequestID", "Invalid request ID")


@pytest.mark.parametrize(("first", "second", "word"), [
    ("response", "response", "InvocationResponse"), ("response", "error", "InvocationErrorResponse"),
    ("error", "response", "InvocationResponse")])
def test_a_second_reply_is_refused(first: str, second: str, word: str) -> None:
    env = Env()
    env.ready()
    env.invoke()
    env.post("req-1", first)
    assert error_of(env.post("req-1", second)[0]) == (
        403, "InvalidStateTransition",
        f"State transition from RuntimeResponseSentState to {word} failed for runtime. "
        "Error: State transition is not allowed")


def test_a_reply_after_the_deadline_or_for_a_stale_attempt_is_gone() -> None:
    env = Env()
    env.ready()
    env.invoke()
    stale = {"Lambda-Runtime-Invocation-Id": "00000000-0000-4000-8000-000000000099"}
    status, error_type, _ = error_of(env.post("req-1", headers=stale)[0])
    assert (status, error_type) == (410, "ErrorRuntimeInvokeTimeout")
    current = {"Lambda-Runtime-Invocation-Id": "00000000-0000-4000-8000-000000000001"}
    env.clock.now += 3.001
    assert error_of(env.post("req-1", headers=current)[0])[0] == 410
    env.clock.now -= 0.002
    assert parse(env.post("req-1", headers=current)[0])[0] == 202


def test_an_error_post_takes_its_type_from_the_body() -> None:
    env = Env()
    env.ready()
    env.invoke()
    body = json.dumps({"errorMessage": "boom", "errorType": "ValueError", "requestId": "req-1",
                       "stackTrace": ["  File \"/var/task/app.py\", line 2\n"]}).encode()
    env.post("req-1", "error", body)
    (done,) = env.next()
    assert done.error == {"errorMessage": "boom", "errorType": "ValueError", "requestId": "req-1",
                          "stackTrace": ["  File \"/var/task/app.py\", line 2\n"]}
    assert done.payload is None


@pytest.mark.parametrize(("body", "header", "expected"), [
    (b'{"errorMessage": "m"}', "Function.MyError", {"errorMessage": "m", "errorType": "Function.MyError"}),
    (b'{"errorMessage": "m"}', "MyError", {"errorMessage": "m", "errorType": "Runtime.Unknown"}),
    (b"not json", "", {"errorMessage": "not json", "errorType": "Runtime.Unknown"}),
    (b"", "Runtime.Custom", {"errorMessage": "", "errorType": "Runtime.Custom"}),
    (b'{"errorType": "E", "errorMessage": 5, "stackTrace": "a\\nb"}', "",
     {"errorType": "E", "errorMessage": "5", "stackTrace": ["a", "b"]}),
])
def test_an_error_without_a_type_in_its_body_takes_the_header_checked(
        body: bytes, header: str, expected: dict[str, Any]) -> None:
    env = Env()
    env.ready()
    env.invoke()
    env.post("req-1", "error", body, headers={"Lambda-Runtime-Function-Error-Type": header} if header else {})
    assert env.next()[0].error == expected


def test_an_oversized_response_is_413_and_the_invocation_fails() -> None:
    env = Env()
    env.ready()
    env.invoke()
    status, error_type, message = error_of(env.post("req-1", body=b"", oversized=6_291_557)[0])
    assert (status, error_type, message) == (413, "RequestEntityTooLarge",
                                             "Exceeded maximum allowed payload size (6291556 bytes).")
    (done,) = env.next()
    assert done.error == {"errorMessage": "Response payload size (6291557 bytes) exceeded maximum allowed "
                                          "payload size (6291556 bytes).",
                          "errorType": "Function.ResponseSizeTooLarge"}


def test_init_error_fails_init_with_the_posted_error() -> None:
    env = Env()
    env.lc.start()
    env.lc.runtime_started()
    out = env.req("POST", "/2018-06-01/runtime/init/error", b'{"errorMessage": "no config", "errorType": "X"}',
                  {"Lambda-Runtime-Function-Error-Type": "Runtime.UnknownReason"})
    assert parse(out[0])[0] == 202
    assert out[1:] == [InitDone({"errorMessage": "no config", "errorType": "X"}), Exit(1)]
    env2 = Env()
    env2.lc.start()
    out = env2.req("POST", "/2018-06-01/runtime/init/error", b"{}",
                   {"Lambda-Runtime-Function-Error-Type": "Runtime.UnknownReason"})
    assert out[1] == InitDone({"errorType": "Runtime.UnknownReason", "errorMessage": ""})


def test_init_error_after_init_is_refused() -> None:
    env = Env()
    env.ready()
    status, error_type, _ = error_of(env.req("POST", "/2018-06-01/runtime/init/error", b"{}")[0])
    assert (status, error_type) == (403, "InvalidStateTransition")


@pytest.mark.parametrize("path", ["/2018-06-01/runtime/restore/next", "/runtime/invocation/next",
                                  "/2018-06-01/runtime/invocation/x/other", "/"])
def test_unknown_paths_are_404(path: str) -> None:
    env = Env()
    env.ready()
    assert error_of(env.req("GET", path)[0])[0] == 404


def test_the_logs_and_telemetry_apis_are_accepted() -> None:
    env = Env()
    for path in ("/2020-08-15/logs", "/2022-07-01/telemetry"):
        assert parse(env.req("PUT", path, b"{}")[0])[0] == 200


def test_an_http_1_0_client_gets_its_answer_and_the_connection_closed() -> None:
    env = Env()
    env.lc.start()
    env.lc.runtime_started()
    env.req("GET", "/2018-06-01/runtime/invocation/next", conn=7, keep_alive=False)
    (reply,) = env.invoke()
    assert reply.conn == 7 and reply.close and b"Connection: close" in reply.data


def test_the_runtime_exit_status_passes_through() -> None:
    env = Env()
    env.lc.start()
    env.lc.runtime_started()
    # During Init: said in an Init (its log goes with it), then the same status.
    assert env.lc.exited(RUNTIME, 3) == [InitDone({"errorType": "Runtime.ExitError",
                                                   "errorMessage": "Runtime exited with error: exit status 3"}),
                                         Exit(3)]
    env = Env()
    env.lc.start()
    env.lc.runtime_started()
    assert env.lc.exited(RUNTIME, -9) == [Exit(-9)]  # SIGKILL: the simulator tells out-of-memory apart
    env = Env()
    env.ready()
    env.invoke()
    assert env.lc.exited(RUNTIME, -9) == [Exit(-9)]


def test_a_runtime_that_exits_after_its_reply_completes_the_invocation_first() -> None:
    env = Env()
    env.ready()
    env.invoke()
    env.post("req-1", body=b"1")
    assert env.lc.exited(RUNTIME, 1) == [Complete(b"1", None, 0.0, last=True), Exit(1)]


def test_a_connection_that_closes_drops_the_waiting_next() -> None:
    env = Env()
    env.ready()
    env.lc.closed(100)
    assert env.invoke() == []  # kept for the runtime's next call
    status, headers, _ = parse(env.next(conn=9)[0])
    assert status == 200 and headers["lambda-runtime-aws-request-id"] == "req-1"


# -- the Extensions API --------------------------------------------------------------------------


def test_the_runtime_starts_once_every_extension_registered() -> None:
    env = Env(["a", "b"])
    assert env.lc.start() == []
    out = env.register("a", ["INVOKE"])
    assert len(out) == 1
    status, headers, body = parse(out[0])
    assert status == 200 and headers["lambda-extension-identifier"] == "00000000-0000-4000-8000-000000000001"
    assert json.loads(body) == {"functionName": "fn", "functionVersion": "$LATEST", "handler": "app.handler"}
    out = env.register("b", ["SHUTDOWN"], **{"Lambda-Extension-Accept-Feature": "accountId"})
    assert json.loads(parse(out[0])[2])["accountId"] == "123456789012"
    assert out[1:] == [StartRuntime()]


@pytest.mark.parametrize(("name", "body", "error_type"), [
    ("", b'{"events": []}', "Extension.InvalidExtensionName"),
    ("a", b"nope", "InvalidRequestFormat"),
    ("a", b'{"events": "INVOKE"}', "InvalidRequestFormat"),
    ("a", b'{"events": ["INVOKE", "RESTORE"]}', "Extension.InvalidEventType"),
    ("internal", b'{"events": ["SHUTDOWN"]}', "Extension.InvalidEventType"),
])
def test_bad_registrations_are_refused(name: str, body: bytes, error_type: str) -> None:
    env = Env(["a"])
    out = env.req("POST", "/2020-01-01/extension/register", body, {"Lambda-Extension-Name": name})
    assert error_of(out[0])[:2] == (403, error_type)


def test_a_name_registers_once() -> None:
    env = Env(["a"])
    env.register("x", ["INVOKE"])
    assert error_of(env.register("x", ["INVOKE"])[0])[:2] == (403, "Extension.InvalidExtensionState")


def test_the_eleventh_extension_is_refused() -> None:
    names = [f"e{i:02d}" for i in range(11)]
    env = Env(names)
    for name in names[:10]:
        assert parse(env.register(name, ["INVOKE"])[0])[0] == 200
    out = env.register(names[10], ["INVOKE"])
    assert error_of(out[0]) == (403, "Extension.TooManyExtensions", "Extension limit (10) reached")
    assert out[1:] == [StartRuntime()]  # Init goes on without it


def test_registration_closes_with_the_runtimes_first_next() -> None:
    env = Env()
    env.lc.start()
    env.lc.runtime_started()
    assert parse(env.register("internal", ["INVOKE"])[0])[0] == 200  # an internal extension, in the runtime
    env.next()
    assert error_of(env.register("late", ["INVOKE"])[0]) == (
        403, "Extension.RegistrationClosed", "Extension registration closed already")


@pytest.mark.parametrize(("headers", "error_type"), [
    ({}, "Extension.MissingExtensionIdentifier"),
    ({"Lambda-Extension-Identifier": "not-a-uuid"}, "Extension.InvalidExtensionIdentifier"),
    ({"Lambda-Extension-Identifier": "00000000-0000-4000-8000-000000000777"}, "Extension.UnknownExtensionIdentifier"),
])
@pytest.mark.parametrize("path", ["/2020-01-01/extension/event/next", "/2020-01-01/extension/init/error",
                                  "/2020-01-01/extension/exit/error"])
def test_an_extension_identifier_must_be_known(path: str, headers: dict[str, str], error_type: str) -> None:
    env = Env(["a"])
    env.register("a", ["INVOKE"])
    assert error_of(env.req("GET" if path.endswith("next") else "POST", path, headers=headers)[0])[:2] == (
        403, error_type)


def test_a_second_event_next_while_one_waits_is_refused() -> None:
    env = Env(["a"])
    ext = env.ext_id("a", ["INVOKE"])
    assert env.ext_next(ext) == []
    assert error_of(env.ext_next(ext)[0])[:2] == (403, "Extension.InvalidExtensionState")


def extension_env(events: list[str] | None = None) -> tuple[Env, str]:
    """Init done with one external extension ``a`` waiting in event/next on connection 200."""
    env = Env(["a"])
    env.lc.start()
    ext = env.ext_id("a", events or ["INVOKE", "SHUTDOWN"])
    env.lc.runtime_started()
    assert env.next(conn=100) == []  # Init's third phase: the extension has not called event/next yet
    assert env.ext_next(ext, conn=200) == [InitDone(None)]
    return env, ext


def test_an_invocation_waits_for_every_extension_and_counts_its_time() -> None:
    env, ext = extension_env()
    deadline = int(env.clock.now * 1000) + 3000
    out = env.invoke("req-1", deadline)
    assert [r.conn for r in out] == [100, 200]
    status, headers, body = parse(out[1])
    assert status == 200 and "lambda-extension-event-identifier" in headers
    assert json.loads(body) == {"eventType": "INVOKE", "deadlineMs": deadline, "requestId": "req-1",
                                "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
                                "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-abc"}}
    env.clock.now += 0.1
    env.post("req-1", body=b"1")
    assert env.next(conn=100) == []  # the extension is still at work
    env.clock.now += 0.2
    assert env.ext_next(ext, conn=200) == [Complete(b"1", None, approx(300.0))]


def test_an_extension_of_shutdown_only_is_not_waited_for() -> None:
    env, _ = extension_env(["SHUTDOWN"])
    assert [r.conn for r in env.invoke()] == [100]
    env.post("req-1")
    assert isinstance(env.next(conn=100)[0], Complete)


def test_an_extension_that_crashes() -> None:
    env = Env(["a"])
    env.lc.start()
    assert env.lc.exited("a", 0) == [
        InitDone({"errorType": "Extension.Crash", "errorMessage": "Extension a exited with error: exit status 0"}),
        Exit(1)]
    env, _ = extension_env()
    env.invoke()
    env.clock.now += 0.01
    assert env.lc.exited("a", -11) == [Crash("Extension.Crash", approx(10.0)), Exit(1)]


def test_extension_init_and_exit_errors() -> None:
    env = Env(["a"])
    ext = env.ext_id("a", ["INVOKE"])
    out = env.req("POST", "/2020-01-01/extension/init/error",
                  headers={"Lambda-Extension-Identifier": ext, "Lambda-Extension-Function-Error-Type": "Ext.Bad"})
    assert parse(out[0])[0] == 202
    assert out[1:] == [InitDone({"errorType": "Extension.InitError",
                                 "errorMessage": "Extension a failed to initialize: Ext.Bad"}), Exit(1)]
    env, ext = extension_env()
    out = env.req("POST", "/2020-01-01/extension/exit/error",
                  headers={"Lambda-Extension-Identifier": ext, "Lambda-Extension-Function-Error-Type": "Ext.Bad"})
    assert out[1:] == [Crash("Extension.ExitError", 0.0), Exit(1)]
    env, ext = extension_env()
    assert error_of(env.req("POST", "/2020-01-01/extension/init/error",
                            headers={"Lambda-Extension-Identifier": ext})[0])[:2] == (
        403, "Extension.InvalidExtensionState")  # Init is over


def test_shutdown_terms_the_runtime_then_sends_shutdown_to_extensions() -> None:
    env, ext = extension_env()
    start_ms = int(env.clock.now * 1000)
    assert env.lc.shutdown("spindown", 2000) == [Signal(RUNTIME, signal.SIGTERM)]
    assert env.lc.next_deadline() == pytest.approx(env.clock.now + 0.3)
    env.clock.now += 0.1
    assert env.lc.tick() == []
    out = env.lc.exited(RUNTIME, -15)
    assert len(out) == 1 and isinstance(out[0], Reply) and out[0].conn == 200
    assert json.loads(parse(out[0])[2]) == {"eventType": "SHUTDOWN", "deadlineMs": start_ms + 2000,
                                            "shutdownReason": "spindown"}
    assert env.ext_next(ext) == []  # after SHUTDOWN, nothing more
    env.clock.now += 0.5
    assert env.lc.exited("a", 0) == [ShutdownOver(approx(600.0), []), Exit(0)]


def test_shutdown_kills_what_overruns_its_share() -> None:
    env, _ = extension_env()
    env.lc.shutdown("timeout", 2000)
    env.clock.now += 0.3
    out = env.lc.tick()
    assert out[0] == Signal(RUNTIME, signal.SIGKILL)
    assert json.loads(parse(out[1])[2])["shutdownReason"] == "timeout"
    assert env.lc.exited(RUNTIME, -9) == []
    env.clock.now += 1.7
    assert env.lc.tick() == [Signal("a", signal.SIGKILL)]
    assert env.lc.exited("a", -9) == [ShutdownOver(approx(2000.0), [RUNTIME, "a"]), Exit(0)]


def test_shutdown_gives_the_runtime_500_ms_with_an_internal_extension() -> None:
    env = Env()
    env.lc.start()
    env.lc.runtime_started()
    env.register("internal", ["INVOKE"])
    env.next()
    env.lc.shutdown("spindown", 2000)
    assert env.lc.next_deadline() == pytest.approx(env.clock.now + 0.5)


def test_shutdown_kills_extensions_not_subscribed_to_it() -> None:
    env, _ = extension_env(["INVOKE"])
    env.lc.shutdown("spindown", 2000)
    assert env.lc.exited(RUNTIME, 0) == [Signal("a", signal.SIGKILL)]
    assert env.lc.exited("a", -9) == [ShutdownOver(0.0, []), Exit(0)]


# -- the process loop: shutdown over a socketpair ------------------------------------------------

RUNTIME_SCRIPT = """\
import http.client, os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print("runtime got SIGTERM", flush=True), {ignore} or sys.exit(0)))
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
c = http.client.HTTPConnection(host, int(port))
while True:
    c.request("GET", "/2018-06-01/runtime/invocation/next")
    r = c.getresponse(); event = r.read(); rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    c.request("POST", f"/2018-06-01/runtime/invocation/{{rid}}/response", body=event)
    c.getresponse().read()
"""

EXTENSION_SCRIPT = """\
#!{python}
import http.client, json, os, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
c = http.client.HTTPConnection(host, int(port))
c.request("POST", "/2020-01-01/extension/register", body=json.dumps({{"events": ["INVOKE", "SHUTDOWN"]}}),
          headers={{"Lambda-Extension-Name": os.path.basename(__file__)}})
r = c.getresponse(); r.read(); ext = r.getheader("Lambda-Extension-Identifier")
while True:
    c.request("GET", "/2020-01-01/extension/event/next", headers={{"Lambda-Extension-Identifier": ext}})
    event = json.loads(c.getresponse().read())
    if event["eventType"] == "SHUTDOWN":
        print("extension got", event["shutdownReason"], flush=True)
        time.sleep({linger})
        break
"""


def run_forked(tmp_path: Path, ignore_term: bool, linger: float) -> tuple[Channel, int]:
    """``_rapi.run`` in a forked process, with a Python runtime and one extension, over a socketpair."""
    (tmp_path / "rt.py").write_text(RUNTIME_SCRIPT.format(ignore="True" if ignore_term else "False"))
    exts = tmp_path / "extensions"
    exts.mkdir()
    (exts / "ext").write_text(EXTENSION_SCRIPT.format(python=sys.executable, linger=linger))
    (exts / "ext").chmod(0o755)
    env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST"}
    spec: Any = {"handler": "x", "code_dir": str(tmp_path), "layers": [], "tmp_mb": 512, "memory_mb": 512,
                 "env": env, "cwd": str(tmp_path), "sys_path_prefix": [], "coverage": None, "memory_by_use": True,
                 "runtime_kind": "api", "command": [sys.executable, str(tmp_path / "rt.py")],
                 "api_address": "127.0.0.1:0"}
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            mine.close()
            _rapi.EXTENSIONS_DIR = str(exts)
            _rapi.run(theirs, spec)
        finally:
            os._exit(70)
    theirs.close()
    return Channel(mine), pid


@pytest.mark.parametrize(("ignore_term", "linger", "killed"), [
    (False, 0.0, []), (True, 0.0, ["runtime"]), (True, 5.0, ["runtime", "ext"])])
def test_the_process_shuts_down_within_its_budget(tmp_path: Path, ignore_term: bool, linger: float,
                                                  killed: list[str]) -> None:
    chan, pid = run_forked(tmp_path, ignore_term, linger)
    try:
        init = chan.recv(10.0, fds=True)
        (logfd,) = chan.take_fds(1)
        assert init[0] == "init" and init[1] is None
        chan.send(("req-1", b'{"x": 1}', int(time.time() * 1000) + 3000, "Root=1", None, None, None, "arn", 0.0))
        result = chan.recv(10.0)
        assert result[0] == "result" and result[1] == b'{"x": 1}' and result[2] is None
        started = time.monotonic()
        chan.send(pack_shutdown(reason="spindown", budget_ms=2000))
        done = chan.recv(10.0)
        took = time.monotonic() - started
        assert done[0] == "shutdown_done" and done[2] == killed
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        logs = os.pread(logfd, 1 << 16, 0).decode()
        os.close(logfd)
        assert "runtime got SIGTERM" in logs and "extension got spindown" in logs
        if "ext" in killed:
            assert 1.9 < took < 3.0 and 1900 <= done[1] < 3000
        elif killed:
            assert 0.25 < took < 1.5
        else:
            assert took < 1.0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        chan.close()


def test_the_process_dies_of_the_runtimes_signal(tmp_path: Path) -> None:
    chan, pid = run_forked(tmp_path, False, 0.0)
    try:
        chan.recv(10.0, fds=True)
        chan.discard_fds()
        chan.send(("req-1", b'{"x": 1}', int(time.time() * 1000) + 3000, "Root=1", None, None, None, "arn", 0.0))
        chan.recv(10.0)
        out = os.popen(f"pgrep -P {pid} -f rt.py").read().split()
        assert len(out) == 1
        os.kill(int(out[0]), signal.SIGSEGV)
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        chan.close()
