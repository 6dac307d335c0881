"""A template's log and tracing settings, read into :class:`Observability` for :mod:`lambdasim._templates`.

AWS SAM / CloudFormation (with SAM's Globals): ``LoggingConfig: {LogFormat: JSON|Text, ApplicationLogLevel,
SystemLogLevel, LogGroup}``; ``Tracing: Active|PassThrough|Disabled`` (SAM) or ``TracingConfig: {Mode:
Active|PassThrough}`` (CloudFormation).

The Serverless Framework: ``provider.logs.lambda`` and a function's ``logs``: ``{logFormat,
applicationLogLevel, systemLogLevel, logGroup}`` (the function's keys win); ``provider.tracing.lambda`` and a
function's ``tracing``: ``true``/``Active`` or ``false``/``PassThrough``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambdasim._cfn import _kind, _Loc, _show
from lambdasim._model import APPLICATION_LOG_LEVELS, LOG_FORMATS, SYSTEM_LOG_LEVELS
from lambdasim._source import YamlMap
from lambdasim._template_models import Values, _choice, _mapping


@dataclass(frozen=True)
class Observability:
    """The log and tracing settings of one function, named as ``Simulator.deploy()`` names them."""

    log_format: str = "Text"
    application_log_level: str | None = None
    system_log_level: str | None = None
    tracing: bool = False


_SAM_LOGGING = ("LogFormat", "ApplicationLogLevel", "SystemLogLevel", "LogGroup")
_SLS_LOGGING = ("logFormat", "applicationLogLevel", "systemLogLevel", "logGroup")


def _levels(reader: Values, found: list[tuple[YamlMap, _Loc]], keys: tuple[str, ...]) -> tuple[str, str | None,
                                                                                                 str | None]:
    """(format, application level, system level) of logging mappings, later ones winning key by key."""
    fmt_key, app_key, sys_key = keys[:3]
    picked: dict[str, tuple[YamlMap, _Loc]] = {}
    for config, loc in found:
        for key in (fmt_key, app_key, sys_key):
            if key in config:
                picked[key] = (config, loc)
    values: dict[str, str | None] = {}
    for key, allowed in ((fmt_key, LOG_FORMATS), (app_key, APPLICATION_LOG_LEVELS), (sys_key, SYSTEM_LOG_LEVELS)):
        if key in picked:
            config, loc = picked[key]
            values[key] = _choice(reader, config, key, loc, allowed)
    fmt = values.get(fmt_key) or "Text"
    for key in (app_key, sys_key):
        if values.get(key) is not None and fmt != "JSON":
            config, loc = picked[key]
            reader.ctx.fail(loc.child(config, key), f"log levels filter JSON logs only; set {fmt_key}: JSON too, or "
                                                    "remove it.")
    return fmt, values.get(app_key), values.get(sys_key)


def sam_observability(reader: Values, get: Callable[[str], tuple[Any, _Loc]], sam: bool,
                      containers: list[tuple[YamlMap, _Loc]]) -> Observability:
    """The log and tracing settings of a SAM (``sam``) or CloudFormation function (``get``: a property, with
    SAM's Globals, and where it is; ``containers``: Globals.Function and the Properties, whose LoggingConfig
    maps SAM merges key by key)."""
    found: list[tuple[YamlMap, _Loc]] = []
    for container, where in containers:
        loc = where.child(container, "LoggingConfig")
        logging = _mapping(reader, (container.get("LoggingConfig"), loc),
                           "{LogFormat: JSON, ApplicationLogLevel: ..., ...}", _SAM_LOGGING)
        if logging is not None:
            found.append((logging, loc))
    fmt, app, system = _levels(reader, found, _SAM_LOGGING)
    tracing = False
    if sam and get("Tracing")[0] is not None:
        value, loc = get("Tracing")
        mode = reader.value(value, loc)
        if mode not in ("Active", "PassThrough", "Disabled"):
            reader.ctx.fail(loc, f"{_show(value)} is not valid; SAM allows Active, PassThrough or Disabled.")
        tracing = mode == "Active"
    config = _mapping(reader, get("TracingConfig"), "{Mode: Active}", ("Mode",))
    if config is not None:
        tracing = _choice(reader, config, "Mode", get("TracingConfig")[1], ("Active", "PassThrough")) == "Active"
    return Observability(fmt, app, system, tracing)


def serverless_observability(reader: Values, get: Callable[..., tuple[Any, _Loc]], provider: YamlMap,
                             provider_loc: _Loc) -> Observability:
    """The log and tracing settings of a Serverless function (``get``: its key, and where it is)."""
    found: list[tuple[YamlMap, _Loc]] = []
    logs = provider.get("logs")  # also the API's logs (restApi, httpApi ...)
    if isinstance(logs, YamlMap) and logs.get("lambda") is not None:
        where = provider_loc.child(provider, "logs").child(logs, "lambda")
        provider_logs = _mapping(reader, (logs["lambda"], where), "{logFormat: JSON, ...}", _SLS_LOGGING)
        if provider_logs is not None:
            found.append((provider_logs, where))
    own = _mapping(reader, get("logs"), "{logFormat: JSON, ...}", _SLS_LOGGING)
    if own is not None:
        found.append((own, get("logs")[1]))
    fmt, app, system = _levels(reader, found, _SLS_LOGGING)
    value, loc = get("tracing")
    if value is None and isinstance(provider.get("tracing"), YamlMap):
        section = provider["tracing"]
        value, loc = section.get("lambda"), provider_loc.child(provider, "tracing").child(section, "lambda")
    tracing = False
    if value is not None:
        mode = reader.value(value, loc)
        if mode not in (True, False, "Active", "PassThrough"):
            reader.ctx.fail(loc, f"{_show(value)} is {_kind(mode)}; the Serverless Framework takes true, Active, "
                                 "false or PassThrough.")
        tracing = mode in (True, "Active")
    return Observability(fmt, app, system, tracing)
