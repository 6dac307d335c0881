"""A template's HTTP routes and function URLs, served: requests become the events API Gateway (REST and HTTP
APIs) and Lambda's function URLs send, and the function's results become their HTTP responses.

The routes are the ``Api`` / ``HttpApi`` events (serverless.yml: ``http`` / ``httpApi``) of every function
deployed from a template (``Simulator.deploy_from_template``), served from the root (no stage prefix, as
``sam local start-api``), by API Gateway's rules:

- a route's literal segment beats a ``{param}``, which beats a greedy ``{proxy+}`` (which takes at least one
  segment: ``/{proxy+}`` is not ``/``); a route of the request's method beats one of ANY; an HTTP API's
  ``$default`` route (an ``HttpApi`` event without a path) takes whatever no other route does. One trailing
  slash is ignored (``/items/1/`` is ``/items/1``). Two functions with the same route (the same method and
  segments, whatever the parameters are called): the first deployed is served, with a :class:`RouteWarning`
  naming both.
- the event: :func:`lambdasim.events.api` (REST, and an HTTP API's payload 1.0) or
  :func:`~lambdasim.events.http_api` (payload 2.0), with the request's method, headers and query (repeated
  ones kept), its path as sent, the path parameters decoded, the client's address, cookies (2.0) and the
  route's stage. A body is text when its ``Content-Type`` is textual (``text/*``, JSON, XML, JavaScript,
  form-encoded, or none) and it is valid UTF-8; otherwise it is base64 (``isBase64Encoded``), as an HTTP API
  decides (a REST API decides by its ``BinaryMediaTypes``, which lambdasim does not read).
- the answer: the REST API's proxy response (``statusCode``, ``headers``, ``multiValueHeaders``, ``body``,
  ``isBase64Encoded``; ``Content-Type: application/json`` where none is given), the HTTP API's 2.0 response
  (the same with ``cookies``, without ``multiValueHeaders``; a result without ``statusCode`` is a 200 JSON
  body). A function error or a malformed result: a REST API's 502 ``{"message": "Internal server error"}``,
  an HTTP API's 500 ``{"message":"Internal Server Error"}``; the Invoke API turning the request away
  (throttled, an event over 6 MB): 500 with the same body, as API Gateway answers when Lambda refuses the
  invocation; a body over 10 MB: 413.
- no route: a REST API answers 403 ``{"message":"Missing Authentication Token"}``, an HTTP API 404
  ``{"message":"Not Found"}``. On one server with both, a path of a REST route (another method) is the REST
  API's 403, any other path the HTTP API's 404 (404 too when there is no route at all).

A function URL (``FunctionUrlConfig``, ``AWS::Lambda::Url``, serverless.yml ``url``) has a port of its own;
every path and method is the function's: :func:`lambdasim.events.function_url` events (AWS_IAM gives the IAM
``authorizer`` in the event: the request's signature is not checked), the 2.0 response, the URL's ``Cors``
(preflight answered, ``Access-Control-*`` headers added), and Lambda's answers: 502 ``Internal Server Error``
for a function error or a malformed result, the Invoke API's status and error for a refusal (429, 413).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lambdasim import events
from lambdasim._serve._http import App, Request, Response

if TYPE_CHECKING:
    from lambdasim._invoke import Invocation
    from lambdasim._simulator import Function, Simulator
    from lambdasim._template_events import TemplateEvent
    from lambdasim._template_invoke import FunctionUrl

_JSON = ("Content-Type", "application/json")
_REST_TYPES = ("Api", "http")
_HTTP_API_TYPES = ("HttpApi", "httpApi")
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript",
                         "application/x-www-form-urlencoded", "application/graphql", "application/yaml",
                         "application/x-yaml", "application/ld+json"})


class RouteWarning(UserWarning):
    """Two functions of the served templates have the same route: the first deployed is served."""


# -- the route table ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One ``Api``/``HttpApi`` event of a function: what it matches and how its event is built."""

    function: str
    """The function's name in the simulator."""
    event: TemplateEvent
    method: str | None
    """The route's method; None: ANY."""
    segments: tuple[str, ...] | None
    """The route's path segments (``("items", "{id}")``); None: an HTTP API's ``$default`` route."""
    http_api: bool
    """An HTTP API's route (else a REST API's)."""
    v1: bool
    """Payload format 1.0 (the REST API's event and response)."""

    @property
    def path(self) -> str:
        return "$default" if self.segments is None else "/" + "/".join(self.segments)

    @property
    def shown(self) -> str:
        return f"{self.method or 'ANY'} {self.path}"

    @property
    def rank(self) -> tuple[tuple[int, ...], int]:
        """Most specific first: literal < {param} < {proxy+} segment by segment, then a method before ANY."""
        if self.segments is None:
            return (3,), 1
        return tuple(_segment_kind(s) for s in self.segments), 0 if self.method else 1

    @property
    def signature(self) -> tuple[str | None, tuple[str, ...] | None]:
        """What makes two routes the same one (the parameters' names do not)."""
        if self.segments is None:
            return self.method, None
        return self.method, tuple(("{+}" if _segment_kind(s) == 2 else "{}") if _segment_kind(s) else s.lower()
                                  for s in self.segments)

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The path parameters (decoded) if the request path's ``parts`` (percent-encoded) are this route's."""
        if self.segments is None:
            return {}
        params: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            kind = _segment_kind(segment)
            if kind == 2:  # greedy: the rest, at least one segment
                rest = parts[index:]
                if not rest or not "/".join(rest):
                    return None
                params[segment[1:-2]] = unquote("/".join(rest))
                return params
            if index >= len(parts):
                return None
            if kind == 1:
                if not parts[index]:
                    return None
                params[segment[1:-1]] = unquote(parts[index])
            elif unquote(parts[index]) != segment:
                return None
        return params if len(parts) == len(self.segments) else None


def _segment_kind(segment: str) -> int:
    """0 a literal, 1 ``{param}``, 2 greedy ``{param+}``."""
    if segment.startswith("{") and segment.endswith("+}"):
        return 2
    if segment.startswith("{") and segment.endswith("}"):
        return 1
    return 0


def _parts(path: str) -> list[str]:
    """A path's segments (percent-encoded), one trailing slash ignored: ``/a/b/`` -> ``["a", "b"]``."""
    if path.endswith("/") and path != "/":
        path = path[:-1]
    return [] if path in ("", "/") else path.lstrip("/").split("/")


def _routes_of(name: str, fn: Function) -> list[Route]:
    out = []
    for event in fn._template_events.values():
        if event.type not in _REST_TYPES + _HTTP_API_TYPES or event.kind is None:
            continue
        fields = event.fields
        http_api = event.type in _HTTP_API_TYPES
        path = fields.get("path")
        segments = None if path is None and http_api else tuple(_parts(str(path or "/")))
        method = fields.get("method")
        out.append(Route(name, event, str(method).upper() if method else None, segments, http_api,
                         event.kind == "api"))
    return out


class Routes:
    """The route table of a simulator's functions, and the app that serves it (see the module)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._lock = threading.Lock()
        self._seen: tuple[tuple[str, int], ...] = ()
        self._routes: list[Route] = []

    @classmethod
    def from_simulator(cls, sim: Simulator) -> Routes:
        routes = cls(sim)
        routes.table()
        return routes

    def table(self) -> list[Route]:
        """The routes, most specific first; read again when functions were deployed since."""
        with self._lock:
            seen = tuple((name, id(fn)) for name, fn in list(self.sim.functions.items()))
            if seen != self._seen:
                self._seen, self._routes = seen, self._build()
            return self._routes

    def _build(self) -> list[Route]:
        kept: dict[tuple[str | None, tuple[str, ...] | None], Route] = {}
        for name, fn in list(self.sim.functions.items()):
            for route in _routes_of(name, fn):
                first = kept.get(route.signature)
                if first is None:
                    kept[route.signature] = route
                    continue
                warnings.warn(RouteWarning(
                    f"{route.event.source}: {route.shown} of {route.function} is also the route of "
                    f"{first.function} ({first.event.source}, {first.shown}); lambdasim serves {first.function}'s, "
                    "the first deployed."), stacklevel=2)
        return sorted(kept.values(), key=lambda r: r.rank)

    def describe(self) -> list[str]:
        """``GET /items/{id} -> Items (template.yaml:12)``, one per route."""
        return [f"{r.shown} -> {r.function} ({r.event.source})" for r in self.table()]

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        parts = _parts(path)
        for route in self.table():
            if route.method is not None and route.method != method.upper():
                continue
            params = route.match(parts)
            if params is not None:
                return route, params
        return None

    def handle(self, request: Request) -> Response:
        routes = self.table()
        if request.too_large:
            return Response(413, (_JSON,), b'{"message":"Request Too Long"}')
        found = self.find(request.method, request.path)
        if found is None:
            return self._no_route(routes, request)
        route, params = found
        event = _event(route, request, params, self.sim.region)
        fn = self.sim.functions[route.function]
        inv = fn.invoke(event, tenant_id=_tenant(fn, request))
        request_id = str(event["requestContext"]["requestId"])
        own = (("apigw-requestid", request_id),) if route.http_api else (
            ("x-amzn-RequestId", request_id), ("x-amz-apigw-id", _apigw_id(request_id)))
        if inv.error is not None or inv.status_code != 200:
            # The function failed (502), or the Invoke API turned it away (500): API Gateway's internal error.
            return _internal_error(route.http_api, 502 if inv.status_code == 200 else 500, own)
        response = _v1_response(inv) if route.v1 else _v2_response(inv)
        if response is None:  # a malformed proxy response
            return _internal_error(route.http_api, 502, own)
        return Response(response.status, (*response.headers, *own), response.body)

    @staticmethod
    def _no_route(routes: list[Route], request: Request) -> Response:
        parts = _parts(request.path)
        rest = [r for r in routes if not r.http_api]
        if rest and (all(not r.http_api for r in routes) or any(r.match(parts) is not None for r in rest)):
            return Response(403, (_JSON, ("x-amzn-ErrorType", "MissingAuthenticationTokenException")),
                            b'{"message":"Missing Authentication Token"}')
        return Response(404, (_JSON,), b'{"message":"Not Found"}')


def _internal_error(http_api: bool, status: int, own: tuple[tuple[str, str], ...]) -> Response:
    if http_api:
        return Response(500, (_JSON, *own), b'{"message":"Internal Server Error"}')
    return Response(status, (_JSON, ("x-amzn-ErrorType", "InternalServerErrorException"), *own),
                    b'{"message": "Internal server error"}')


def _apigw_id(request_id: str) -> str:
    return base64.b64encode(hashlib.sha256(request_id.encode()).digest()[:10]).decode()[:16]


def _tenant(fn: Function, request: Request) -> str | None:
    """A tenant-isolated function's tenant: the request's ``X-Amz-Tenant-Id`` (an API maps one to it)."""
    return request.header("x-amz-tenant-id") if fn.config.tenant_isolation else None


# -- requests -> events ------------------------------------------------------------------------------------------


def request_body(request: Request) -> str | bytes | None:
    """The body as the event carries it: text (textual Content-Type, valid UTF-8), else bytes (base64)."""
    if not request.body:
        return None
    ctype = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
    textual = (not ctype or ctype.startswith("text/") or ctype in _TEXT_TYPES
               or ctype.endswith(("+json", "+xml")))
    if textual:
        try:
            return request.body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return request.body


def _multi(pairs: Sequence[tuple[str, str]], fold: bool) -> dict[str, list[str]]:
    """Pairs as name -> values, in order; ``fold``: names matched in any case (headers)."""
    out: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for key, value in pairs:
        name = names.setdefault(key.lower(), key) if fold else key
        out.setdefault(name, []).append(value)
    return out


def _cookies(headers: dict[str, list[str]]) -> list[str]:
    """The ``Cookie`` header's cookies, taken out of ``headers`` (a 2.0 event carries them apart)."""
    found: list[str] = []
    for name in [k for k in headers if k.lower() == "cookie"]:
        for value in headers.pop(name):
            found += [c.strip() for c in value.split(";") if c.strip()]
    return found


def _event(route: Route, request: Request, params: dict[str, str], region: str) -> dict[str, Any]:
    fields = route.event.fields
    headers = _multi(request.headers, fold=True)
    query = _multi(request.query(), fold=False)
    common: dict[str, Any] = {"body": request_body(request), "query": query, "source_ip": request.client,
                              "region": region}
    if route.segments is None:
        path, path_parameters = "/", None
    else:
        path, path_parameters = str(fields.get("path") or "/"), params
    stage = fields.get("stage")
    if route.v1:
        built = events.api(request.method, path, headers=headers, path_parameters=path_parameters,
                           **({"stage": stage} if stage else {}), **common)
        built["path"] = request.path
        built["requestContext"]["path"] = f"/{built['requestContext']['stage']}{request.path}"
        if route.segments is None:
            built["resource"] = built["requestContext"]["resourcePath"] = "$default"
        return built
    cookies = _cookies(headers)
    route_key = fields.get("route_key")
    built = events.http_api(request.method, path, headers=headers, path_parameters=path_parameters,
                            cookies=cookies or None, route_key=route_key,
                            **({"stage": stage} if stage else {}), **common)
    _v2_request_path(built, request)
    return built


def _v2_request_path(event: dict[str, Any], request: Request) -> None:
    event["rawPath"] = request.path
    event["rawQueryString"] = request.query_string
    event["requestContext"]["http"]["path"] = request.path


# -- results -> responses ----------------------------------------------------------------------------------------


def _scalar(value: Any) -> str | None:
    """A header's value as API Gateway takes it (strings, numbers, booleans); None: not one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _status(result: Mapping[str, Any]) -> int | None:
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return None
    return status


def _body_bytes(result: Mapping[str, Any]) -> bytes | None:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        return None
    encoded = result.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        return None
    if not encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        return None


def _headers(value: Any) -> list[tuple[str, str]] | None:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return None
    out = []
    for key, item in value.items():
        text = _scalar(item)
        if text is None:
            return None
        out.append((str(key), text))
    return out


def _v1_response(inv: Invocation) -> Response | None:
    """A REST API's proxy response (payload 1.0) from the result; None when API Gateway finds it malformed."""
    result = inv.payload
    if not isinstance(result, dict):
        return None
    status, body, single = _status(result), _body_bytes(result), _headers(result.get("headers"))
    multi_given = result.get("multiValueHeaders")
    if status is None or body is None or single is None or not isinstance(multi_given, Mapping | None):
        return None
    multi: dict[str, list[str]] = {}
    for key, values in (multi_given or {}).items():
        texts = [_scalar(v) for v in values] if isinstance(values, list) else [None]
        if any(t is None for t in texts):
            return None
        multi[str(key)] = [t for t in texts if t is not None]
    # Both given: one list a header, a value in both once (API Gateway's merge).
    lowered = {k.lower(): k for k in multi}
    for key, text in single:
        name = lowered.setdefault(key.lower(), key)
        if text not in multi.setdefault(name, []):
            multi[name].append(text)
    headers = [(k, v) for k, values in multi.items() for v in values]
    if "content-type" not in lowered:
        headers.append(_JSON)
    return Response(status, tuple(headers), body)


def _v2_response(inv: Invocation) -> Response | None:
    """An HTTP API's or a function URL's response (payload 2.0) from the result; None when malformed."""
    raw = inv.raw_payload or b"null"
    try:
        result = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(result, dict) or "statusCode" not in result:
        # Valid JSON without a statusCode: a 200 whose body is the result (API Gateway's rule for 2.0).
        return Response(200, (_JSON,), raw)
    status, body, headers = _status(result), _body_bytes(result), _headers(result.get("headers"))
    cookies = result.get("cookies")
    if status is None or body is None or headers is None or not (
            cookies is None or (isinstance(cookies, list) and all(isinstance(c, str) for c in cookies))):
        return None
    out = list(headers) + [("Set-Cookie", c) for c in cookies or []]
    if not any(k.lower() == "content-type" for k, _ in out):
        out.append(("Content-Type", "text/plain; charset=utf-8"))
    return Response(status, tuple(out), body)


# -- function URLs ----------------------------------------------------------------------------------------------


def _url_id(name: str) -> str:
    """A function URL's id (32 lower-case letters and digits), the same for the same function."""
    return hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()


class FunctionUrlApp:
    """One function's URL: every request is the function's (see the module)."""

    def __init__(self, sim: Simulator, name: str, config: FunctionUrl) -> None:
        self.sim = sim
        self.name = name
        self.config = config

    def __call__(self, request: Request) -> Response:
        fn = self.sim.functions[self.name]
        cors = _Cors(self.config.cors, request) if self.config.cors is not None else None
        if cors is not None and cors.preflight:
            return Response(200, cors.preflight_headers())
        if request.too_large:
            return self._answer(Response(413, (_JSON,), json.dumps(
                {"Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"}).encode()),
                cors, None)
        headers = _multi(request.headers, fold=True)
        cookies = _cookies(headers)
        event = events.function_url(request.method, "/", body=request_body(request), headers=headers,
                                    query=_multi(request.query(), fold=False), cookies=cookies or None,
                                    url_id=_url_id(self.name), source_ip=request.client,
                                    iam=self.config.auth_type == "AWS_IAM", region=self.sim.region)
        _v2_request_path(event, request)
        inv = fn.invoke(event, tenant_id=_tenant(fn, request))
        if inv.status_code != 200 and inv.error is not None:  # the Invoke API refused it: its status and error
            error = {k: v for k, v in inv.error.items() if k not in ("errorType", "errorMessage")}
            body = {**error, "Message": inv.error.get("errorMessage")}
            return self._answer(Response(inv.status_code, (_JSON, ("x-amzn-ErrorType", str(inv.error["errorType"]))),
                                         json.dumps(body).encode()), cors, inv)
        response = None if inv.error is not None else _v2_response(inv)
        if response is None:  # a function error, or a malformed result
            response = Response(502, (("Content-Type", "text/plain"),), b"Internal Server Error")
        return self._answer(response, cors, inv)

    @staticmethod
    def _answer(response: Response, cors: _Cors | None, inv: Invocation | None) -> Response:
        headers = list(response.headers)
        if cors is not None:
            names = {k.lower() for k, _ in cors.headers()}
            headers = [(k, v) for k, v in headers if k.lower() not in names] + cors.headers()
        if inv is not None:
            headers.append(("x-amzn-RequestId", inv.request_id))
        return Response(response.status, tuple(headers), response.body)


class _Cors:
    """A function URL's CORS settings applied to one request (Lambda answers preflights itself, and its
    headers replace the function's)."""

    def __init__(self, config: Mapping[str, Any], request: Request) -> None:
        self.config = config
        self.origin = request.header("origin")
        self.preflight = (request.method == "OPTIONS" and self.origin is not None
                          and request.header("access-control-request-method") is not None)

    def _list(self, key: str) -> list[str]:
        value = self.config.get(key)
        return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []

    def allowed_origin(self) -> str | None:
        origins = self._list("AllowOrigins")
        if self.origin is None:
            return None
        if "*" in origins:
            return "*" if not self.config.get("AllowCredentials") else self.origin
        return self.origin if self.origin in origins else None

    def headers(self) -> list[tuple[str, str]]:
        origin = self.allowed_origin()
        if origin is None:
            return []
        out = [("Access-Control-Allow-Origin", origin)]
        if self.config.get("AllowCredentials"):
            out.append(("Access-Control-Allow-Credentials", "true"))
        if self._list("ExposeHeaders"):
            out.append(("Access-Control-Expose-Headers", ",".join(self._list("ExposeHeaders"))))
        if origin != "*":
            out.append(("Vary", "Origin"))
        return out

    def preflight_headers(self) -> tuple[tuple[str, str], ...]:
        out = self.headers()
        if not out:
            return ()
        for key, header in (("AllowMethods", "Access-Control-Allow-Methods"),
                            ("AllowHeaders", "Access-Control-Allow-Headers")):
            if self._list(key):
                out.append((header, ",".join(self._list(key))))
        if self.config.get("MaxAge") is not None:
            out.append(("Access-Control-Max-Age", str(self.config["MaxAge"])))
        return tuple(out)


def function_url_apps(sim: Simulator) -> dict[str, App]:
    """One app per function with a function URL, by the function's name in the simulator."""
    apps: dict[str, App] = {}
    for name, fn in list(sim.functions.items()):
        config = fn._function_url
        if config is not None:
            apps[name] = FunctionUrlApp(sim, name, config)
    return apps
