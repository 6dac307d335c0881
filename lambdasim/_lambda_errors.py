"""Lambda's own words: the errors it reports (type and message) and the log lines that
frame an invocation (``INIT_START``, ``START``, ``END``, ``REPORT``).

Each is defined once, here, the way moto keeps AWS's error codes: a constant per error
type, and a function per error that returns its ``errorType``/``errorMessage`` dict
(keys in the order Lambda writes them). The host (:mod:`lambdasim._invoke`) and the
runtime inside each instance (:mod:`lambdasim._runtime`) both use them. The zygotes
import this module before every instance: keep it small and standard-library only.
"""

from __future__ import annotations

import math
from typing import Any

ErrorDict = dict[str, Any]
"""An error as the Invoke API returns it: ``errorMessage``, ``errorType`` (and, from the
runtime, ``requestId`` and ``stackTrace``)."""

# -- error types ------------------------------------------------------------------------

SANDBOX_TIMEDOUT = "Sandbox.Timedout"
RUNTIME_EXIT_ERROR = "Runtime.ExitError"
RUNTIME_OUT_OF_MEMORY = "Runtime.OutOfMemory"
RUNTIME_MARSHAL_ERROR = "Runtime.MarshalError"
RUNTIME_IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
RUNTIME_USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
RUNTIME_HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
RUNTIME_MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
RUNTIME_BUILTIN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
RUNTIME_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"
FUNCTION_RESPONSE_SIZE_TOO_LARGE = "Function.ResponseSizeTooLarge"
# Errors of the Invoke API itself (the function never runs): HTTP 413 and 429.
REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLargeException"
TOO_MANY_REQUESTS = "TooManyRequestsException"

# -- limits -----------------------------------------------------------------------------

MAX_REQUEST_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100

# -- errors the platform reports (the host) ---------------------------------------------

# Go's names for signals, which Lambda's "Runtime exited with error: signal: ..." uses.
SIGNAL_NAMES = {
    1: "hangup", 2: "interrupt", 3: "quit", 4: "illegal instruction", 5: "trace/breakpoint trap",
    6: "aborted", 7: "bus error", 8: "floating point exception", 9: "killed", 10: "user defined signal 1",
    11: "segmentation fault", 12: "user defined signal 2", 13: "broken pipe", 14: "alarm clock", 15: "terminated",
}


def exit_reason(code: int) -> str:
    """Why the runtime ended, from its exit status (``-N``: killed by signal N)."""
    if code == 0:
        return "Runtime exited without providing a reason"
    if code < 0:
        return f"Runtime exited with error: signal: {SIGNAL_NAMES.get(-code, f'signal {-code}')}"
    return f"Runtime exited with error: exit status {code}"


def task_timed_out(request_id: str, timeout_s: float) -> ErrorDict:
    message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
    return {"errorType": SANDBOX_TIMEDOUT, "errorMessage": message}


def runtime_exited(request_id: str, code: int) -> ErrorDict:
    return {"errorType": RUNTIME_EXIT_ERROR, "errorMessage": f"RequestId: {request_id} Error: {exit_reason(code)}"}


def out_of_memory(request_id: str) -> ErrorDict:
    message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    return {"errorType": RUNTIME_OUT_OF_MEMORY, "errorMessage": message}


def response_too_large() -> ErrorDict:
    return {"errorMessage": f"Response payload size exceeded maximum allowed payload size "
                            f"({MAX_RESPONSE_BYTES} bytes).",
            "errorType": FUNCTION_RESPONSE_SIZE_TOO_LARGE}


def request_too_large() -> ErrorDict:
    return {"errorType": REQUEST_ENTITY_TOO_LARGE,
            "errorMessage": f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the "
                            "InvokeFunction operation"}


def throttled() -> ErrorDict:
    return {"errorType": TOO_MANY_REQUESTS, "errorMessage": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User"}


# -- errors the Python runtime reports (awslambdaric) -----------------------------------


def make_error(message: str, error_type: str, stack: list[str], request_id: str) -> ErrorDict:
    """An error in the shape the Python runtime reports it."""
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack}


def malformed_handler_name(handler: str, reason: object) -> ErrorDict:
    return {"errorMessage": f"Bad handler '{handler}': {reason}", "errorType": RUNTIME_MALFORMED_HANDLER_NAME}


def builtin_module_conflict(module: str) -> ErrorDict:
    return {"errorMessage": f"Cannot use built-in module {module} as a handler module",
            "errorType": RUNTIME_BUILTIN_MODULE_CONFLICT}


def import_module_error(module: str, reason: object) -> ErrorDict:
    return {"errorMessage": f"Unable to import module '{module}': {reason}", "errorType": RUNTIME_IMPORT_MODULE_ERROR}


def user_code_syntax_error(module: str, reason: object) -> ErrorDict:
    return {"errorMessage": f"Syntax error in module '{module}': {reason}",
            "errorType": RUNTIME_USER_CODE_SYNTAX_ERROR}


def handler_not_found(function: str, module: str) -> ErrorDict:
    return {"errorMessage": f"Handler '{function}' missing on module '{module}'",
            "errorType": RUNTIME_HANDLER_NOT_FOUND}


def context_unmarshal_error(header: str, reason: object) -> ErrorDict:
    """A client context or Cognito identity header that is not JSON (``header``: "Client Context")."""
    return {"errorMessage": f"Unable to parse {header} JSON: {reason}", "errorType": RUNTIME_CONTEXT_UNMARSHAL_ERROR}


def marshal_error(reason: object) -> ErrorDict:
    return {"errorMessage": f"Unable to marshal response: {reason}", "errorType": RUNTIME_MARSHAL_ERROR}


# -- log lines --------------------------------------------------------------------------

UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. However, in "
    "rare cases, a Lambda runtime update can cause unexpected function behavior. For functions using managed "
    "runtimes, runtime updates can be triggered by a function change, or can be applied automatically. To "
    "determine if the runtime has been updated, check the runtime version in the INIT_START log entry. If this "
    "error correlates with a change in the runtime version, you may be able to mitigate this error by temporarily "
    "rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)
"""The warning the Python runtime logs (through ``logging``) before the record of a failed Init."""

LATEST = "$LATEST"
"""The version an unqualified invocation runs, in ``AWS_LAMBDA_FUNCTION_VERSION``, the
context's ``function_version``, the log stream's name and the ``START`` line."""

STATUS_TIMEOUT = "Status: timeout"


def error_status(error_type: str) -> str:
    """The status field of a REPORT line after an error."""
    return f"Status: error\tError Type: {error_type}"


def report_status(error: ErrorDict | None) -> str:
    """The status field of a REPORT line after an invocation that returned ``error``: only
    errors of the runtime and the platform are marked, not the function's exceptions."""
    if error is None or not error["errorType"].startswith(("Runtime.", "Function.")):
        return ""
    return error_status(error["errorType"])


def runtime_error_log(error: ErrorDict) -> str:
    """The lines Lambda adds to the log when the runtime ended (exit, out of memory)."""
    return f"{error['errorMessage']}\n{error['errorType']}\n"


def init_start_line(python: str, region: str) -> str:
    return (f"INIT_START Runtime Version: python:{python}.lambdasim\t"
            f"Runtime Version ARN: arn:aws:lambda:{region}::runtime:lambdasim\n")


def start_line(request_id: str, version: str | None) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int, init_ms: float | None,
                status: str) -> str:
    """The REPORT line; ``init_ms`` is given after a cold start."""
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_mb} MB\t"
    )
    if init_ms is not None:
        report += f"Init Duration: {init_ms:.2f} ms\t"
    return f"{report}{status}\n"
