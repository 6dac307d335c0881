"""Lambda's own words: the errors it reports (type and message) and the log lines that
frame an invocation (``INIT_START``, ``START``, ``END``, ``REPORT``).

Each is defined once, here, the way moto keeps AWS's error codes: a constant per error
type, and a function per error that returns its ``errorType``/``errorMessage`` dict
(keys in the order Lambda writes them). The host (:mod:`lambdasim._invoke`) and the
runtime inside each instance (:mod:`lambdasim._runtime`) both use them. The zygotes
import this module before every instance: keep it small and standard-library only.
"""

from __future__ import annotations

import json
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


def is_platform_error(error_type: str) -> bool:
    """Whether Lambda itself reports an error of this type (its message begins with the request id, and
    the log gets :func:`runtime_error_log`): the runtime could not start, an extension failed."""
    return error_type in (RUNTIME_INVALID_ENTRYPOINT, RUNTIME_EXIT_ERROR) or error_type.startswith("Extension.")


def platform_error(request_id: str, error_type: str, reason: str) -> ErrorDict:
    """An error Lambda reports for the environment, e.g. ``Extension.Crash``, "RequestId: ... Error: exit
    status 1", or ``Runtime.InvalidEntrypoint``, "RequestId: ... Error: Couldn't find valid bootstrap(s): ..."."""
    return {"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {reason}"}


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


# -- the Invoke API's refusals of a request's parameters (HTTP 400, the function does not run) ---

INVALID_PARAMETER_VALUE = "InvalidParameterValueException"
VALIDATION_EXCEPTION = "ValidationException"


def tenant_mismatch() -> ErrorDict:
    """A tenant-isolated function invoked without a tenant id, or another with one (Lambda's troubleshooting page)."""
    return {"errorType": INVALID_PARAMETER_VALUE, "errorMessage": "Tenant ID configuration not specified or "
            "passed to a function when tenant isolation is not enabled.", "Type": "User"}


def validation_error(value: str, member: str, constraints: list[str]) -> ErrorDict:
    """The API's answer to a parameter outside its model's constraints (each "Member must ...")."""
    errors = "1 validation error" if len(constraints) == 1 else f"{len(constraints)} validation errors"
    return {"errorType": VALIDATION_EXCEPTION, "errorMessage": f"{errors} detected: " + "; ".join(
        f"Value '{value}' at '{member}' failed to satisfy constraint: {c}" for c in constraints)}


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
LATEST_PUBLISHED = "$LATEST.PUBLISHED"
"""What an unqualified invocation of a Lambda Managed Instances function runs instead of ``$LATEST``."""

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


def runtime_version(runtime: str) -> str:
    """A runtime identifier as INIT_START names its versions: ``python3.12`` -> ``python:3.12``,
    ``provided.al2023`` -> ``provided:al2023``, ``provided`` (Amazon Linux 1) -> ``provided:al1``."""
    if runtime.startswith("python"):
        return f"python:{runtime.removeprefix('python')}"
    family, _, os_name = runtime.partition(".")
    return f"{family}:{os_name or 'al1'}"


def init_start_line(python: str, region: str, runtime: str | None = None) -> str:
    """The INIT_START line: the built-in runtime's (``python``, e.g. ``3.12``), or ``runtime``'s (an
    identifier, e.g. ``provided.al2023``) when given."""
    version = runtime_version(runtime) if runtime is not None else f"python:{python}"
    return (f"INIT_START Runtime Version: {version}.lambdasim\t"
            f"Runtime Version ARN: arn:aws:lambda:{region}::runtime:lambdasim\n")


def start_line(request_id: str, version: str | None) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int, init_ms: float | None,
                status: str, billed_init: bool = False, restore_ms: float | None = None,
                billed_restore_ms: float | None = None) -> str:
    """The REPORT line; ``init_ms`` is given after a cold start. ``billed_init``: the Init is billed with
    the first invocation (custom runtimes and container images), so Billed Duration includes it.
    ``restore_ms`` (SnapStart: the first invocation of a restored environment) replaces Init Duration
    with ``Restore Duration`` and ``Billed Restore Duration`` (``billed_restore_ms``: the after-restore hooks)."""
    billed = duration_ms + ((init_ms or 0.0) if billed_init else 0.0)
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(billed)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_mb} MB\t"
    )
    if restore_ms is not None:
        report += (f"Restore Duration: {restore_ms:.2f} ms\t"
                   f"Billed Restore Duration: {math.ceil(billed_restore_ms or 0.0)} ms\t")
    elif init_ms is not None:
        report += f"Init Duration: {init_ms:.2f} ms\t"
    return f"{report}{status}\n"



# -- the Runtime API and Extensions API: what a runtime or an extension behind them causes ---------

RUNTIME_INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
RUNTIME_UNKNOWN = "Runtime.Unknown"
EXTENSION_CRASH = "Extension.Crash"
EXTENSION_INIT_ERROR = "Extension.InitError"
EXTENSION_EXIT_ERROR = "Extension.ExitError"
BOOTSTRAP_PATHS = ("/var/task/bootstrap", "/opt/bootstrap")
MAX_EXTENSIONS = 10


def invalid_entrypoint() -> ErrorDict:
    return {"errorType": RUNTIME_INVALID_ENTRYPOINT,
            "errorMessage": f"Couldn't find valid bootstrap(s): [{' '.join(BOOTSTRAP_PATHS)}]"}


def entrypoint_failed(path: str, reason: str) -> ErrorDict:
    """A container-style entry point that cannot be started (Go's words, as Lambda reports them)."""
    return {"errorType": RUNTIME_INVALID_ENTRYPOINT, "errorMessage": f"fork/exec {path}: {reason}"}


def extension_crash(name: str, code: int, reason: str = "") -> ErrorDict:
    """An extension ended (``code``: -N for signal N), or could not be started (``reason``)."""
    status = f"signal: {SIGNAL_NAMES.get(-code, f'signal {-code}')}" if code < 0 else f"exit status {code}"
    what = f"could not be started: {reason}" if reason else f"exited with error: {status}"
    return {"errorType": EXTENSION_CRASH, "errorMessage": f"Extension {name} {what}"}


def extension_init_error(name: str, error_type: str) -> ErrorDict:
    return {"errorType": EXTENSION_INIT_ERROR,
            "errorMessage": f"Extension {name} failed to initialize: {error_type or 'no error type given'}"}


def extension_exit_error(name: str, error_type: str) -> ErrorDict:
    return {"errorType": EXTENSION_EXIT_ERROR,
            "errorMessage": f"Extension {name} reported an exit error: {error_type or 'no error type given'}"}


def response_too_large_sized(size: int) -> ErrorDict:
    """A response over the limit posted to the Runtime API, whose size is known (RIE's words)."""
    return {"errorMessage": f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                            f"({MAX_RESPONSE_BYTES} bytes).", "errorType": FUNCTION_RESPONSE_SIZE_TOO_LARGE}


def posted_error(body: bytes, header: str) -> ErrorDict:
    """The error a runtime posted (``invocation/{id}/error``, ``init/error``): its JSON body, whose own
    ``errorType`` wins (awslambdaric sends no header on invocation errors), else the error-type header's
    as RIE checks it (``Runtime.X``/``Function.X``, else Runtime.Unknown); other bodies are the message."""
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        data = body.decode("utf-8", "replace")
    error: ErrorDict = ({str(k): v for k, v in data.items()} if isinstance(data, dict)
                        else {"errorMessage": data if isinstance(data, str) else json.dumps(data)})
    if not isinstance(error.get("errorType"), str) or not error["errorType"]:
        prefix, _, rest = header.partition(".")
        valid = prefix in ("Runtime", "Function") and rest[:1].isupper() and rest.isalpha() and rest.isascii()
        error["errorType"] = header if valid else RUNTIME_UNKNOWN
    message = error.get("errorMessage", "")
    error["errorMessage"] = message if isinstance(message, str) else json.dumps(message)
    trace = error.get("stackTrace")
    if trace is not None and not (isinstance(trace, list) and all(isinstance(f, str) for f in trace)):
        error["stackTrace"] = ([f if isinstance(f, str) else json.dumps(f) for f in trace] if isinstance(trace, list)
                               else str(trace).splitlines())
    return error


def _transition(state: str, to: str) -> str:
    return f"State transition from {state} to {to} failed for runtime. Error: State transition is not allowed"


API_ERRORS: dict[str, tuple[int, str, str]] = {  # what went wrong: (HTTP status, errorType, errorMessage)
    "invalid_request_id": (400, "InvalidRequestID", "Invalid request ID"),
    "not_ready": (403, "InvalidStateTransition", _transition("Running", "Ready")),
    "second_response": (403, "InvalidStateTransition", _transition("RuntimeResponseSentState", "InvocationResponse")),
    "second_error": (403, "InvalidStateTransition", _transition("RuntimeResponseSentState", "InvocationErrorResponse")),
    "late_init_error": (403, "InvalidStateTransition", _transition("Ready", "InitError")),
    "gone": (410, "ErrorRuntimeInvokeTimeout", "Invocation is over: it timed out, or a later attempt superseded it"),
    "too_large": (413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
    "not_found": (404, "InvalidPath", "The requested path was not found"),
    "extension_no_name": (403, "Extension.InvalidExtensionName", "Empty extension name"),
    "extension_bad_request": (403, "InvalidRequestFormat", "The body is not JSON with an 'events' list"),
    "extension_bad_event": (403, "Extension.InvalidEventType", "Invalid event type"),
    "extension_closed": (403, "Extension.RegistrationClosed", "Extension registration closed already"),
    "extension_twice": (403, "Extension.InvalidExtensionState", "Extension with this name already registered"),
    "extension_limit": (403, "Extension.TooManyExtensions", f"Extension limit ({MAX_EXTENSIONS}) reached"),
    "extension_no_id": (403, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header"),
    "extension_bad_id": (403, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier"),
    "extension_unknown_id": (403, "Extension.UnknownExtensionIdentifier", "Unknown extension"),
    "extension_state": (403, "Extension.InvalidExtensionState", "State transition is not allowed"),
}
"""The Runtime and Extensions API's error answers (RIE ``rapi/handler``, ``core/states.go``); the 410's type
is aws-lambda-dotnet's report, its message lambdasim's (Lambda's is not published)."""


# -- SnapStart ------------------------------------------------------------------------------------

RUNTIME_BEFORE_SNAPSHOT_ERROR = "Runtime.BeforeSnapshotError"
RUNTIME_AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"
SNAPSTART_TIMEOUT = "SnapStartTimeoutException"  # an Invoke API error, HTTP 408
RESTORE_TIMEOUT_S = 10.0
"""Lambda's limit on a restore and its after-restore hooks (a test may lower it with monkeypatch)."""
SNAPSHOT_INIT_MIN_S = 130.0  # a SnapStart version's Init may take this long, or the function's timeout if longer


def hook_error(error_type: str, message: str, stack: list[str]) -> ErrorDict:
    """A runtime hook that raised, as awslambdaric reports it (the exception's message and trace) with the type
    Lambda gives it: ``Runtime.BeforeSnapshotError`` (``/runtime/init/error``), ``Runtime.AfterRestoreError``."""
    return {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": stack}


def snapstart_timeout() -> ErrorDict:
    return {"errorType": SNAPSTART_TIMEOUT, "errorMessage": "Lambda couldn't restore the snapshot within the "
                                                            "timeout limit."}


def phase_line(phase: str, ms: float = 0.0, status: str = "", python: str = "", region: str = "") -> str:
    """SnapStart's log lines: ``INIT_REPORT`` (Init at publishing), ``RESTORE_START``, ``RESTORE_REPORT``."""
    if phase == "RESTORE_START":
        return init_start_line(python, region).replace("INIT_START", phase, 1)
    duration = "Init Duration" if phase == "INIT_REPORT" else "Restore Duration"
    return f"{phase} {duration}: {ms:.2f} ms" + (f"\t{status}\n" if status else "\n")


# -- the Invoke API's other answers (``POST /2015-03-31/functions/{name}/invocations``; the function does not run) ---

RESOURCE_NOT_FOUND = "ResourceNotFoundException"
INVALID_REQUEST_CONTENT = "InvalidRequestContentException"
UNKNOWN_OPERATION = "UnknownOperationException"
SERVICE_EXCEPTION = "ServiceException"
MAX_ASYNC_REQUEST_BYTES = 1048576  # an Event invocation's payload: 1 MB since October 2025 (it was 256 KB)
INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")
API_STATUS = {INVALID_PARAMETER_VALUE: 400, VALIDATION_EXCEPTION: 400, INVALID_REQUEST_CONTENT: 400,
              RESOURCE_NOT_FOUND: 404, UNKNOWN_OPERATION: 404, SNAPSTART_TIMEOUT: 408,
              REQUEST_ENTITY_TOO_LARGE: 413, TOO_MANY_REQUESTS: 429, SERVICE_EXCEPTION: 500}
"""The HTTP status of each error the Invoke API answers with (its ``x-amzn-ErrorType``)."""


def api_error(error_type: str, message: str, kind: str = "User") -> ErrorDict:
    return {"errorType": error_type, "errorMessage": message, "Type": kind}


def function_not_found(arn: str) -> ErrorDict:
    """``arn``: the function's ARN as the request named it (with ``:QUALIFIER`` when it had one)."""
    return api_error(RESOURCE_NOT_FOUND, f"Function not found: {arn}")


def region_unreachable(region: str, own: str) -> ErrorDict:
    return api_error(RESOURCE_NOT_FOUND, f"Functions from '{region}' are not reachable in this region ('{own}')")


def qualifier_conflict() -> ErrorDict:
    """A qualified ARN (or ``name:qualifier``) and a ``Qualifier`` parameter that differ."""
    return api_error(INVALID_PARAMETER_VALUE,
                     "The derived qualifier from the function name does not match the specified qualifier.")


def bad_client_context() -> ErrorDict:
    return api_error(INVALID_REQUEST_CONTENT, "Client context must be a valid Base64-encoded JSON object.")


def bad_payload(reason: object) -> ErrorDict:
    """A payload that is not JSON (Lambda's opening words; the reason is Python's, not Lambda's parser's)."""
    return api_error(INVALID_REQUEST_CONTENT, f"Could not parse request body into json: Could not parse payload "
                                              f"into json: {reason}")


def async_request_too_large(size: int) -> ErrorDict:
    return api_error(REQUEST_ENTITY_TOO_LARGE, f"{size} byte payload is too large for the Event invocation type "
                                               f"(limit {MAX_ASYNC_REQUEST_BYTES} bytes)")


def unknown_operation(method: str, path: str) -> ErrorDict:
    return api_error(UNKNOWN_OPERATION, f"Unknown operation: {method} {path}")


def api_body(error: ErrorDict) -> dict[str, Any]:
    """The JSON body of an Invoke API error: ``Type``, ``message`` and the error's other fields (``Reason``)."""
    extra = {k: v for k, v in error.items() if k not in ("errorType", "errorMessage", "Type")}
    return {"Type": error.get("Type", "User"), "message": error["errorMessage"], **extra}
