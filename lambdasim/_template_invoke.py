"""How a template says a function is invoked besides its events: its function URL and its asynchronous
invocation settings, read into :class:`Invoking` for :mod:`lambdasim._templates`.

AWS SAM / CloudFormation: a SAM function's ``FunctionUrlConfig: {AuthType: NONE|AWS_IAM, Cors, InvokeMode:
BUFFERED|RESPONSE_STREAM}`` (with Globals), or an ``AWS::Lambda::Url`` resource whose ``TargetFunctionArn``
is the function (``!GetAtt Fn.Arn``, ``!Ref Fn``, or its name); a SAM function's ``EventInvokeConfig:
{MaximumRetryAttempts, MaximumEventAgeInSeconds}``, or an ``AWS::Lambda::EventInvokeConfig`` resource whose
``FunctionName`` is the function. A ``DestinationConfig`` is not modelled (a :class:`TemplateWarning`).

The Serverless Framework: a function's ``url: true`` or ``url: {authorizer: aws_iam, cors: true|{...},
invokeMode: RESPONSE_STREAM}``; ``maximumRetryAttempts`` and ``maximumEventAge``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdasim._cfn import _intrinsic, _Loc, _section, _show
from lambdasim._source import YamlMap
from lambdasim._template_models import Values, _choice, _mapping
from lambdasim._template_props import TemplateWarning, _outside_lambdasim

_RETRIES = (0, 2, "Lambda allows 0 to 2 retries")
_EVENT_AGE = (60, 21600, "Lambda allows 60 to 21600 seconds")
_URL_KEYS = ("AuthType", "Cors", "InvokeMode")
_CORS_KEYS = ("AllowCredentials", "AllowHeaders", "AllowMethods", "AllowOrigins", "ExposeHeaders", "MaxAge")
_SLS_CORS = {"allowCredentials": "AllowCredentials", "allowedHeaders": "AllowHeaders",
             "allowedMethods": "AllowMethods", "allowedOrigins": "AllowOrigins", "exposedResponseHeaders":
             "ExposeHeaders", "maxAge": "MaxAge"}


@dataclass(frozen=True)
class FunctionUrl:
    """A function URL's settings, as the template gives them."""

    auth_type: str = "NONE"
    """``NONE`` or ``AWS_IAM`` (the request's signature is not checked: the event says IAM, that is all)."""
    cors: Mapping[str, Any] | None = None
    """CloudFormation's ``Cors`` keys (``AllowOrigins``, ``AllowMethods`` ...); None: no CORS."""
    invoke_mode: str = "BUFFERED"
    """``BUFFERED`` or ``RESPONSE_STREAM`` (served buffered, with a warning)."""
    source: str = ""
    """``file:line`` of the setting."""


@dataclass(frozen=True)
class Invoking:
    """A function's URL and asynchronous invocation settings, named as :class:`TemplateFunction` names them."""

    function_url: FunctionUrl | None = None
    max_retry_attempts: int | None = None
    max_event_age_s: int | None = None


def _refers_to(reader: Values, value: Any, loc: _Loc, function: str, names: tuple[str | None, ...]) -> bool:
    """Whether ``value`` (a TargetFunctionArn or FunctionName) is the function ``function``."""
    call = _intrinsic(value)
    if call is not None and call[0] == "Ref":
        return bool(call[1] == function)
    if call is not None and call[0] == "Fn::GetAtt":
        target = call[1].split(".") if isinstance(call[1], str) else list(call[1])
        return bool(target and target[0] == function)
    if call is not None and call[0] == "Fn::Sub" and isinstance(call[1], str):
        return call[1].strip() in (f"${{{function}.Arn}}", f"${{{function}}}")
    try:
        resolved = reader.value(value, loc)
    except Exception:  # noqa: BLE001 - not resolvable here: not this function's, as far as we can tell
        return False
    if not isinstance(resolved, str):
        return False
    name = resolved.split(":function:", 1)[-1].split(":", 1)[0] if resolved.startswith("arn:") else resolved
    return name in {n for n in names if n}


def _resources(reader: Values, kind: str, key: str, function: str,
               names: tuple[str | None, ...]) -> list[tuple[YamlMap, _Loc]]:
    """The properties (and where) of the template's resources of type ``kind`` whose ``key`` is the function."""
    resources = reader.resolver.resources
    found = []
    for name, resource in resources.items():
        if not isinstance(resource, YamlMap) or resource.get("Type") != kind:
            continue
        res_loc = _Loc(f"Resources.{name}", resources.key_line(name, resources.line))
        props, props_loc = _section(reader.ctx, resource, "Properties", res_loc)
        if key in props and _refers_to(reader, props[key], props_loc.child(props, key), function, names):
            found.append((props, props_loc))
    return found


def _cors(reader: Values, value: Any, loc: _Loc) -> dict[str, Any]:
    cors = reader.value(value, loc)
    if not isinstance(cors, Mapping):
        reader.ctx.fail(loc, f"{_show(value)} is not a CORS setting; write {{AllowOrigins: ['*'], ...}}.")
    unknown = [k for k in cors if k not in _CORS_KEYS]
    if unknown:
        reader.ctx.fail(loc, f"{unknown[0]} is not a key of Cors; it takes {', '.join(_CORS_KEYS)}.")
    return {str(k): reader.value(v, loc) for k, v in cors.items()}


def _url(reader: Values, config: YamlMap, loc: _Loc) -> FunctionUrl:
    auth = _choice(reader, config, "AuthType", loc, ("NONE", "AWS_IAM"))
    mode = "BUFFERED"
    if "InvokeMode" in config:
        mode = _choice(reader, config, "InvokeMode", loc, ("BUFFERED", "RESPONSE_STREAM"))
    cors = _cors(reader, config["Cors"], loc.child(config, "Cors")) if "Cors" in config else None
    return FunctionUrl(auth, cors, mode, f"{reader.ctx.display}:{loc.line}")


def _event_config(reader: Values, config: YamlMap, loc: _Loc, retries_key: str,
                  age_key: str) -> tuple[int | None, int | None]:
    retries = age = None
    if retries_key in config:
        retries = reader.whole(config[retries_key], loc.child(config, retries_key), _RETRIES)
    if age_key in config:
        age = reader.whole(config[age_key], loc.child(config, age_key), _EVENT_AGE)
    return retries, age


def _warn_destinations(reader: Values, where: _Loc) -> None:
    warnings.warn(TemplateWarning(
        f"{reader.ctx.display}:{where.line}: {where.key}: lambdasim does not model DestinationConfig; the function "
        "runs without it (an asynchronous invocation's outcome goes nowhere)."), stacklevel=_outside_lambdasim())


def sam_invoking(reader: Values, get: Callable[[str], tuple[Any, _Loc]], function: str,
                 names: tuple[str | None, ...]) -> Invoking:
    """The function URL and EventInvokeConfig of the SAM or CloudFormation function ``function`` (``get``: a
    property, with SAM's Globals; ``names``: its names on Lambda, which a resource's plain name may give)."""
    ctx = reader.ctx
    urls: list[tuple[YamlMap, _Loc]] = []
    config = _mapping(reader, get("FunctionUrlConfig"), "{AuthType: NONE, ...}", _URL_KEYS)
    if config is not None:
        urls.append((config, get("FunctionUrlConfig")[1]))
    urls += _resources(reader, "AWS::Lambda::Url", "TargetFunctionArn", function, names)
    if len(urls) > 1:
        first = urls[0][1]
        ctx.fail(urls[1][1], f"a second function URL for {function} (the first at {first.key}, line {first.line}); "
                             "lambdasim serves one (of its unqualified version): keep one.")
    function_url = _url(reader, *urls[0]) if urls else None
    if function_url is not None and function_url.invoke_mode == "RESPONSE_STREAM":
        warnings.warn(TemplateWarning(
            f"{function_url.source}: InvokeMode RESPONSE_STREAM: lambdasim serves the function URL buffered (the "
            "whole response at once, as BUFFERED does)."), stacklevel=_outside_lambdasim())
    configs: list[tuple[YamlMap, _Loc]] = []
    own = _mapping(reader, get("EventInvokeConfig"), "{MaximumRetryAttempts: N, MaximumEventAgeInSeconds: N}",
                   ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"))
    if own is not None:
        configs.append((own, get("EventInvokeConfig")[1]))
    configs += _resources(reader, "AWS::Lambda::EventInvokeConfig", "FunctionName", function, names)
    if len(configs) > 1:
        first = configs[0][1]
        ctx.fail(configs[1][1], f"EventInvokeConfig is set twice for {function} (also at {first.key}, line "
                                f"{first.line}); keep one.")
    retries = age = None
    if configs:
        config, where = configs[0]
        retries, age = _event_config(reader, config, where, "MaximumRetryAttempts", "MaximumEventAgeInSeconds")
        if "DestinationConfig" in config:
            _warn_destinations(reader, where.child(config, "DestinationConfig"))
    return Invoking(function_url, retries, age)


def serverless_invoking(reader: Values, get: Callable[..., tuple[Any, _Loc]]) -> Invoking:
    """The ``url``, ``maximumRetryAttempts`` and ``maximumEventAge`` of a Serverless function."""
    value, loc = get("url")
    function_url = None
    if value is not None:
        url = reader.value(value, loc)
        if url is True or isinstance(url, YamlMap):
            given = url if isinstance(url, YamlMap) else YamlMap()
            unknown = [k for k in given if k not in ("authorizer", "cors", "invokeMode")]
            if unknown:
                reader.ctx.fail(loc.child(given, str(unknown[0])), "not a key of url; it takes authorizer, cors and "
                                                                   "invokeMode.")
            authorizer = reader.value(given.get("authorizer"), loc) if "authorizer" in given else None
            if authorizer not in (None, "aws_iam"):
                reader.ctx.fail(loc.child(given, "authorizer"), f"{_show(authorizer)} is not valid; the Serverless "
                                                                "Framework takes aws_iam (or none).")
            mode = reader.value(given.get("invokeMode"), loc) if "invokeMode" in given else "BUFFERED"
            if mode not in ("BUFFERED", "RESPONSE_STREAM"):
                reader.ctx.fail(loc.child(given, "invokeMode"), f"{_show(mode)} is not valid; Lambda allows "
                                                                "BUFFERED or RESPONSE_STREAM.")
            cors: dict[str, Any] | None = None
            if "cors" in given:
                raw = reader.value(given["cors"], loc.child(given, "cors"))
                if raw is True:  # the Serverless Framework's defaults
                    cors = {"AllowOrigins": ["*"], "AllowHeaders": ["Content-Type", "X-Amz-Date", "Authorization",
                                                                    "X-Api-Key", "X-Amz-Security-Token"],
                            "AllowMethods": ["*"]}
                elif isinstance(raw, Mapping):
                    cors = {_SLS_CORS.get(str(k), str(k)): reader.value(v, loc) for k, v in raw.items()}
                elif raw not in (None, False):
                    reader.ctx.fail(loc.child(given, "cors"), f"{_show(raw)} is not valid; write true or "
                                                              "{allowedOrigins: [...], ...}.")
            function_url = FunctionUrl("AWS_IAM" if authorizer == "aws_iam" else "NONE", cors, str(mode),
                                       f"{reader.ctx.display}:{loc.line}")
            if mode == "RESPONSE_STREAM":
                warnings.warn(TemplateWarning(
                    f"{function_url.source}: invokeMode RESPONSE_STREAM: lambdasim serves the function URL buffered "
                    "(the whole response at once)."), stacklevel=_outside_lambdasim())
        elif url not in (False, None):
            reader.ctx.fail(loc, f"{_show(value)} is not valid; write url: true, or url: {{authorizer: aws_iam, "
                                 "cors: true}}.")
    retries = age = None
    value, loc = get("maximumRetryAttempts")
    if value is not None:
        retries = reader.whole(value, loc, _RETRIES)
    value, loc = get("maximumEventAge")
    if value is not None:
        age = reader.whole(value, loc, _EVENT_AGE)
    return Invoking(function_url, retries, age)
