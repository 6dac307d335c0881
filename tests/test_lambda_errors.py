"""Lambda's vocabulary, as _lambda_errors defines it once: each error and log line word for word."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from lambdasim import _lambda_errors as E

LAMBDASIM = Path(__file__).resolve().parent.parent / "lambdasim"


def test_the_platform_errors_read_as_lambdas() -> None:
    rid = "8f5c0c3e-1111-4222-8333-444455556666"
    assert json.dumps(E.task_timed_out(rid, 3)) == json.dumps(
        {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {rid} Error: Task timed out after 3.00 seconds"})
    assert E.task_timed_out(rid, 0.5)["errorMessage"].endswith("Task timed out after 0.50 seconds")
    assert json.dumps(E.runtime_exited(rid, 2)) == json.dumps(
        {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: "
                                                           "exit status 2"})
    assert json.dumps(E.out_of_memory(rid)) == json.dumps(
        {"errorType": "Runtime.OutOfMemory",
         "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: signal: killed"})
    assert json.dumps(E.response_too_large()) == json.dumps(
        {"errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
         "errorType": "Function.ResponseSizeTooLarge"})
    assert json.dumps(E.request_too_large()) == json.dumps(
        {"errorType": "RequestEntityTooLargeException",
         "errorMessage": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"})
    assert json.dumps(E.throttled()) == json.dumps(
        {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded.",
         "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User"})


def test_exit_reasons_use_gos_signal_names() -> None:
    assert E.exit_reason(0) == "Runtime exited without providing a reason"
    assert E.exit_reason(1) == "Runtime exited with error: exit status 1"
    assert E.exit_reason(-9) == "Runtime exited with error: signal: killed"
    assert E.exit_reason(-11) == "Runtime exited with error: signal: segmentation fault"
    assert E.exit_reason(-31) == "Runtime exited with error: signal: signal 31"


def test_the_runtime_errors_read_as_awslambdarics() -> None:
    assert E.malformed_handler_name("x", "oops") == {"errorMessage": "Bad handler 'x': oops",
                                                      "errorType": "Runtime.MalformedHandlerName"}
    assert E.builtin_module_conflict("sys") == {"errorMessage": "Cannot use built-in module sys as a handler module",
                                                "errorType": "Runtime.BuiltInModuleConflict"}
    assert E.import_module_error("app", "No module named 'x'") == {
        "errorMessage": "Unable to import module 'app': No module named 'x'", "errorType": "Runtime.ImportModuleError"}
    assert E.user_code_syntax_error("app", "bad") == {"errorMessage": "Syntax error in module 'app': bad",
                                                      "errorType": "Runtime.UserCodeSyntaxError"}
    assert E.handler_not_found("handler", "app") == {"errorMessage": "Handler 'handler' missing on module 'app'",
                                                     "errorType": "Runtime.HandlerNotFound"}
    assert E.marshal_error("no") == {"errorMessage": "Unable to marshal response: no",
                                     "errorType": "Runtime.MarshalError"}
    assert list(E.make_error("m", "T", [], "r")) == ["errorMessage", "errorType", "requestId", "stackTrace"]


def test_the_log_lines() -> None:
    assert E.init_start_line("3.11", "eu-west-1") == (
        "INIT_START Runtime Version: python:3.11.lambdasim\t"
        "Runtime Version ARN: arn:aws:lambda:eu-west-1::runtime:lambdasim\n")
    assert E.start_line("r", "1") == "START RequestId: r Version: 1\n"
    assert E.start_line("r", E.LATEST) == "START RequestId: r Version: $LATEST\n"
    assert E.end_line("r") == "END RequestId: r\n"
    assert E.report_line("r", 1.234, 128, 40, None, "") == (
        "REPORT RequestId: r\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\t\n")
    assert E.report_line("r", 2.0, 256, 41, 80.5, E.STATUS_TIMEOUT) == (
        "REPORT RequestId: r\tDuration: 2.00 ms\tBilled Duration: 2 ms\tMemory Size: 256 MB\t"
        "Max Memory Used: 41 MB\tInit Duration: 80.50 ms\tStatus: timeout\n")
    assert E.error_status("OSError") == "Status: error\tError Type: OSError"
    # REPORT marks errors of the runtime and the platform only, not the function's own exceptions.
    assert E.report_status(E.out_of_memory("r")) == "Status: error\tError Type: Runtime.OutOfMemory"
    assert E.report_status(E.response_too_large()) == "Status: error\tError Type: Function.ResponseSizeTooLarge"
    assert E.report_status({"errorType": "ValueError", "errorMessage": "x"}) == ""
    assert E.report_status(None) == ""
    assert E.runtime_error_log(E.runtime_exited("r", 1)) == (
        "RequestId: r Error: Runtime exited with error: exit status 1\nRuntime.ExitError\n")


def test_every_error_type_is_spelled_here_only() -> None:
    """No other module of lambdasim spells one of Lambda's error types (or $LATEST) as a string literal."""
    types = {value for name, value in vars(E).items()
             if name.isupper() and isinstance(value, str)
             and name not in ("STATUS_TIMEOUT", "LATEST", "LATEST_PUBLISHED", "UNHANDLED_EXCEPTION_WARNING")}
    assert len(types) == 27 and "Sandbox.Timedout" in types and "TooManyRequestsException" in types
    assert {"ResourceNotFoundException", "InvalidRequestContentException", "UnknownOperationException",
            "ServiceException"} <= types  # the Invoke API's (issue 18)
    assert {"Runtime.BeforeSnapshotError", "Runtime.AfterRestoreError", "SnapStartTimeoutException"} <= types
    assert {"Runtime.InvalidEntrypoint", "Extension.Crash", "Extension.InitError", "Extension.ExitError",
            "Runtime.LambdaContextUnmarshalError", "InvalidParameterValueException", "ValidationException"} <= types
    types.update((E.LATEST, E.LATEST_PUBLISHED))
    found = []
    for path in LAMBDASIM.rglob("*.py"):
        if path.name == "_lambda_errors.py" or "examples" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found += [(path.name, t) for t in types if t == node.value or f"{t}:" in node.value]
    assert found == []


def test_the_module_is_small_and_stdlib_only() -> None:
    """The zygotes import it before every instance."""
    code = "import sys, lambdasim._lambda_errors; print(sorted(m for m in sys.modules if m.startswith('lambdasim')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=LAMBDASIM.parent).stdout
    assert out.strip() == "['lambdasim', 'lambdasim._lambda_errors']"
    # The Runtime and Extensions API's errors and awslambdaric's records (issue 13), SnapStart's errors and
    # log lines (issue 14), the Invoke API's answers (issue 18) made it longer; it is still a table of words.
    assert len((LAMBDASIM / "_lambda_errors.py").read_text().splitlines()) < 440
