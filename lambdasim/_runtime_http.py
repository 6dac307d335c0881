"""The built-in Python runtime as a Runtime API client: ``python -m lambdasim._runtime_http``.

lambdasim starts it for a Python function that Lambda's managed runtime would start behind a
wrapper (``AWS_LAMBDA_EXEC_WRAPPER``) or next to extensions: there the runtime is a process of its
own that talks HTTP to the Runtime API at ``$AWS_LAMBDA_RUNTIME_API``, as awslambdaric does on
Lambda. Init, the context, the JSON rules, the errors and the log records are those of
:mod:`lambdasim._runtime` (one copy); only the transport differs: ``invocation/next``, then the
response or error post, on one keep-alive connection; an Init error goes to ``init/error`` and the
process exits, as awslambdaric's does. The handler is ``argv[1]`` if given, else ``_HANDLER``.

Features of the framed runtime that the simulator asks of its own instances (coverage, /tmp access
tracking, the ``network="isolated"`` address notes) are not measured in this process.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
from typing import Any

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _runtime
from lambdasim._lambda_errors import ErrorDict
from lambdasim._sandbox._layout import RUNTIME_SDK

_PREFIX = "/2018-06-01/runtime"


class _Api:
    """The Runtime API on one keep-alive connection (reopened once if the server closed it)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.conn = http.client.HTTPConnection(address)

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        for attempt in (0, 1):
            try:
                self.conn.request(method, _PREFIX + path, body, headers or {})
                response = self.conn.getresponse()
                return response, response.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post_error(self, path: str, error: ErrorDict, invocation_id: str | None = None) -> None:
        headers = {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": error["errorType"]}
        if invocation_id:
            headers["Lambda-Runtime-Invocation-Id"] = invocation_id
        self.call("POST", path, _runtime._ENCODER.encode(error).encode(), headers)


def _json_header(value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise _runtime.FaultError(lambda_errors.context_unmarshal_error(name, e)) from None


def main(argv: list[str]) -> None:
    handler = argv[1] if len(argv) > 1 else os.environ.get("_HANDLER", "")
    api = _Api(os.environ["AWS_LAMBDA_RUNTIME_API"])
    capture = _runtime.LogCapture(adopt=True)  # fd 1 and 2 are the instance's log already
    root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefix = [root, f"/opt/python/lib/{version}/site-packages", "/opt/python"]
    if os.path.isdir(RUNTIME_SDK):  # on another Python than lambdasim's: the AWS SDK built for it
        prefix.append(RUNTIME_SDK)
    sys.path[:] = prefix + [p for p in sys.path if p not in prefix and p not in ("", os.getcwd())]
    _runtime.start_init(capture)
    fn, error = _runtime.init_function(handler)
    if fn is None:
        assert error is not None
        api.post_error("/init/error", error)
        sys.stdout.flush()
        os._exit(1)  # awslambdaric exits after reporting an Init error

    while True:
        response, event = api.call("GET", "/invocation/next")
        headers = response.headers
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        invocation_id = headers.get("Lambda-Runtime-Invocation-Id")
        tenant_id = headers.get("Lambda-Runtime-Aws-Tenant-Id")
        _runtime.begin_invocation(request_id, headers.get("Lambda-Runtime-Trace-Id"), tenant_id)
        payload: bytes | None = None
        err: ErrorDict | None = None
        try:
            context = _runtime.LambdaContext(
                request_id, headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
                int(headers.get("Lambda-Runtime-Deadline-Ms", "0")),
                _json_header(headers.get("Lambda-Runtime-Client-Context"), "Client Context"),
                _json_header(headers.get("Lambda-Runtime-Cognito-Identity"), "Cognito Identity"), tenant_id)
        except _runtime.FaultError as e:
            err = lambda_errors.make_error(e.message, e.error_type, [], request_id)
        else:
            try:
                payload, err = _runtime.call_handler(fn, event, context)
            except MemoryError:
                os.kill(os.getpid(), signal.SIGKILL)  # as the kernel ends a runtime out of memory
        if err is not None:
            _runtime.log_invocation_error(err)
            api.post_error(f"/invocation/{request_id}/error", err, invocation_id)
            continue
        post_headers = {"Content-Type": "application/json"}
        if invocation_id:
            post_headers["Lambda-Runtime-Invocation-Id"] = invocation_id
        answer, _body = api.call("POST", f"/invocation/{request_id}/response", payload or b"", post_headers)
        if answer.status == 413:
            # Too large for Lambda: it reports Function.ResponseSizeTooLarge, and the runtime
            # process ends (awslambdaric's post raises), so the next invocation starts afresh.
            sys.stdout.flush()
            os._exit(1)


if __name__ == "__main__":
    main(sys.argv)
