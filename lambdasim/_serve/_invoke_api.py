"""Lambda's Invoke API on the simulator's functions: ``POST /2015-03-31/functions/{FunctionName}/invocations``,
as boto3's Lambda client (``endpoint_url=``) and a handler's (``AWS_ENDPOINT_URL_LAMBDA``) call it.

- ``FunctionName``: the function's Lambda name (``fn.config.lambda_name``), its simulator name (a key of
  ``sim.functions``, e.g. a template's logical ID, as ``sam local start-lambda`` accepts it), ``name:qualifier``,
  a partial ARN (``ACCOUNT:function:NAME[:QUALIFIER]``) or a full one (``arn:aws:lambda:REGION:ACCOUNT:function:
  NAME[:QUALIFIER]``; another region is not reachable, another account not found).
- ``Qualifier`` (the query's, or the name's; both and different: 400): ``$LATEST`` or the function's current
  version (``fn.version``). lambdasim runs only the current version's code (an older version's instances
  retire at a redeploy), so an older version number, like any alias, is ``ResourceNotFoundException``.
  ``X-Amz-Executed-Version`` is the version asked for (``$LATEST`` without one); the function itself sees
  ``$LATEST`` either way (its ``AWS_LAMBDA_FUNCTION_VERSION``), where Lambda would show it the version.
- ``X-Amz-Invocation-Type``: ``RequestResponse`` (200 and the result; a function error adds
  ``X-Amz-Function-Error: Unhandled`` and the body is the error), ``Event`` (202 at once; run later by
  :mod:`lambdasim._async`, with Lambda's retries) or ``DryRun`` (204, nothing runs).
- ``X-Amz-Log-Type: Tail``: ``X-Amz-Log-Result``, base64 of the last 4 KB of the invocation's log.
- ``X-Amz-Client-Context`` (base64 of a JSON object: the handler's ``context.client_context``; passed to
  synchronous invocations only, as on Lambda) and ``X-Amz-Tenant-Id``.
- The errors are Lambda's (``_lambda_errors``): the status, ``x-amzn-ErrorType`` and a JSON body
  ``{"Type": "User", "message": ...}``, which botocore turns into ``ClientError`` codes.

Lambda's other operations (a path that begins with an API version, ``/2015-03-31/functions``,
``/2019-09-25/...``) are proxied to the simulator's AWS (``services["aws"]``, moto) where it runs, through the
address the instances are given (so a handler's ``list_functions()`` reaches moto as it did before it had this
endpoint, fault proxy included); where it does not run, they are ``UnknownOperationException`` (404).

A handler's request carries ``X-Amzn-Trace-Id`` (botocore sends the runtime's ``_X_AMZN_TRACE_ID``): the
invocation in flight with that trace header is the caller, named in the callee's ``invoke`` event as
``caller: {"function", "request_id"}``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lambdasim import _lambda_errors as E
from lambdasim._errors import LambdaSimError
from lambdasim._model import ACCOUNT_ID, function_arn
from lambdasim._provision import refusal
from lambdasim._serve._http import HttpServer, Request, Response

if TYPE_CHECKING:
    from lambdasim._simulator import Function, Simulator

_API_PATH = re.compile(r"/\d{4}-\d{2}-\d{2}(?:/|$)")
"""Lambda's API: every operation's path begins with its API version."""
_INVOKE_PATH = re.compile(r"/2015-03-31/functions/([^/]*)/invocations/?")
_REFERENCE = re.compile(
    r"(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?(?:(\d{12}):)?(?:function:)?"
    r"([a-zA-Z0-9_.-]+)(?::(\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_-]+))?")
_NAME_PATTERN = ("(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
                 "(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_]+))?")
_TAIL_BYTES = 4096
_JSON = ("Content-Type", "application/json")
_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length",
                         "proxy-connection", "te", "trailer", "upgrade"})
_PROXY_TIMEOUT_S = 60.0


class _Refused(Exception):
    """The API's answer to a request it turns away: an error of ``_lambda_errors``."""

    def __init__(self, error: E.ErrorDict) -> None:
        super().__init__(error["errorMessage"])
        self.error = error


def is_invoke_api(path: str) -> bool:
    """Whether ``path`` (percent-encoded) is Lambda's API's: the Invoke API, or an operation proxied to moto."""
    return _API_PATH.match(path) is not None


def instance_server(sim: Simulator) -> HttpServer:
    """The Invoke API that the simulator's instances reach (``AWS_ENDPOINT_URL_LAMBDA``), on a free port."""
    return HttpServer(lambda request: handle(sim, request), "127.0.0.1", 0, name="lambdasim-invoke-api")


def handle(sim: Simulator, request: Request) -> Response:
    """Answer one request of Lambda's API (any path: one that is not the API's is an unknown operation)."""
    try:
        match = _INVOKE_PATH.fullmatch(request.path)
        if match is None or request.method != "POST":
            return _other(sim, request)
        return _invoke(sim, request, match.group(1))
    except _Refused as refused:
        return error_response(refused.error)
    except LambdaSimError as e:  # the simulator closed meanwhile, a sandbox failed
        return error_response(E.api_error(E.SERVICE_EXCEPTION, f"lambdasim: {type(e).__name__}: {e}", "Service"))


def error_response(error: E.ErrorDict, status: int | None = None) -> Response:
    """An error as Lambda's API answers it: status, ``x-amzn-ErrorType``, ``{"Type", "message", ...}``."""
    kind = error["errorType"]
    code = status if status is not None else E.API_STATUS.get(kind, 400)
    return Response(code, (_JSON, ("x-amzn-ErrorType", kind)), json.dumps(E.api_body(error)).encode())


def _header(request: Request, name: str) -> str | None:
    value = request.header(name)
    return value if value else None


def _invoke(sim: Simulator, request: Request, encoded_name: str) -> Response:
    kind = _header(request, "X-Amz-Invocation-Type") or "RequestResponse"
    if kind not in E.INVOCATION_TYPES:
        raise _Refused(E.validation_error(kind, "invocationType",
                                          [f"Member must satisfy enum value set: [{', '.join(E.INVOCATION_TYPES)}]"]))
    log_type = _header(request, "X-Amz-Log-Type") or "None"
    if log_type not in ("None", "Tail"):
        raise _Refused(E.validation_error(log_type, "logType", ["Member must satisfy enum value set: [None, Tail]"]))
    if request.too_large:
        size = int(request.header("Content-Length") or 0)
        raise _Refused(E.async_request_too_large(size) if kind == "Event" and size else E.request_too_large())
    query = dict(request.query())
    fn, qualifier = _function(sim, unquote(encoded_name), query.get("Qualifier") or None)
    client_context = _client_context(request.header("X-Amz-Client-Context"))
    tenant = request.header("X-Amz-Tenant-Id")
    payload = request.body if request.body.strip() else b"{}"  # no payload: the function gets {}
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise _Refused(E.bad_payload(e)) from None
    caller = _caller(sim, request.header("X-Amzn-Trace-Id"))
    if kind == "Event":
        if len(payload) > E.MAX_ASYNC_REQUEST_BYTES:
            raise _Refused(E.async_request_too_large(len(payload)))
        _check(payload, fn, tenant)
        request_id = sim._async.submit(fn, payload, tenant, caller)
        return Response(202, (_JSON, ("x-amzn-RequestId", request_id)))
    if kind == "DryRun":
        _check(payload, fn, tenant)
        return Response(204, (_JSON, ("x-amzn-RequestId", sim._new_id())))
    inv = sim._invoke(fn, payload, client_context, None, tenant, {"caller": caller} if caller else None)
    if inv.status_code != 200:  # turned away before it ran: 400, 413, 429 (408: SnapStart)
        assert inv.error is not None
        return error_response(inv.error, inv.status_code)
    headers = [_JSON, ("x-amzn-RequestId", inv.request_id),
               ("X-Amz-Executed-Version", qualifier or inv.executed_version or E.LATEST)]
    if inv.error is not None:
        headers.append(("X-Amz-Function-Error", "Unhandled"))
    if log_type == "Tail":
        headers.append(("X-Amz-Log-Result", base64.b64encode(inv.logs.encode()[-_TAIL_BYTES:]).decode()))
    body = json.dumps(inv.error).encode() if inv.error is not None else (inv.raw_payload or b"")
    return Response(200, tuple(headers), body)


def _check(payload: bytes, fn: Function, tenant: str | None) -> None:
    """What the API refuses before it queues (Event) or answers (DryRun): a tenant id, the size."""
    turned = refusal(len(payload), fn.config.tenant_isolation, tenant)
    if turned is not None:
        raise _Refused(turned[1])


def _function(sim: Simulator, reference: str, qualifier: str | None) -> tuple[Function, str | None]:
    """The function (and qualifier) a request names; ``_Refused`` when Lambda would not find it."""
    match = _REFERENCE.fullmatch(reference) if len(reference) <= 256 else None
    if match is None:
        raise _Refused(E.validation_error(reference, "functionName",
                                          [f"Member must satisfy regular expression pattern: {_NAME_PATTERN}"]))
    region, account, name, named_qualifier = match.groups()
    if qualifier is not None and named_qualifier is not None and qualifier != named_qualifier:
        raise _Refused(E.qualifier_conflict())
    qualifier = qualifier or named_qualifier
    if region is not None and region != sim.region:
        raise _Refused(E.region_unreachable(region, sim.region))
    not_found = E.function_not_found(function_arn(sim.region, name) + (f":{qualifier}" if qualifier else ""))
    with sim._lock:
        fn = sim.functions.get(name) or next(
            (f for f in sim.functions.values() if f.config.lambda_name == name), None)
    if fn is None or (account is not None and account != ACCOUNT_ID):
        raise _Refused(not_found)
    if qualifier is not None and qualifier not in _qualifiers(fn):
        raise _Refused(not_found)
    return fn, qualifier


def _qualifiers(fn: Function) -> tuple[str, ...]:
    """What a function can be invoked as: ``$LATEST`` (``$LATEST.PUBLISHED`` on Managed Instances) and its
    current version; lambdasim knows no aliases."""
    return (E.LATEST, E.LATEST_PUBLISHED, fn.version) if fn.config.managed else (E.LATEST, fn.version)


def _client_context(header: str | None) -> dict[str, Any] | None:
    if not header:
        return None
    try:
        context = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _Refused(E.bad_client_context()) from None
    if not isinstance(context, dict):
        raise _Refused(E.bad_client_context())
    return context


def _caller(sim: Simulator, trace: str | None) -> dict[str, str] | None:
    """The invocation in flight whose trace header a request carries (botocore percent-encodes some of it)."""
    if not trace:
        return None
    with sim._lock:
        found = sim._in_flight.get(trace) or sim._in_flight.get(unquote(trace))
    return dict(found) if found is not None else None


def _other(sim: Simulator, request: Request) -> Response:
    """Lambda's other operations: to moto where it runs, else ``UnknownOperationException``."""
    unknown = error_response(E.unknown_operation(request.method, request.path))
    if not is_invoke_api(request.path):
        return unknown
    service = sim.services.get("aws")
    endpoint = None if service is None else (service.instance_endpoint or service.endpoint)
    if endpoint is None or not service.running:
        return unknown
    headers = {k: v for k, v in request.headers if k.lower() not in _HOP_BY_HOP}
    connection = http.client.HTTPConnection(endpoint.host, int(endpoint.port), timeout=_PROXY_TIMEOUT_S)
    try:
        connection.request(request.method, request.target, request.body or None, headers)
        answer = connection.getresponse()
        body = answer.read()
    except OSError as e:
        return error_response(E.api_error(E.SERVICE_EXCEPTION, f"lambdasim: the simulator's AWS (moto) did not "
                                                                f"answer: {e}", "Service"))
    finally:
        with contextlib.suppress(OSError):
            connection.close()
    kept = tuple((k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP)
    return Response(answer.status, kept, body)
