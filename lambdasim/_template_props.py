"""A template's log and tracing settings, read into :class:`Observability` for :mod:`lambdasim._templates`;
the one list of the function properties lambdasim models (:data:`SAM_MODELLED`, :data:`SERVERLESS_MODELLED`),
and a :class:`TemplateWarning` naming each other one with its file:line.

AWS SAM / CloudFormation (with SAM's Globals): ``LoggingConfig: {LogFormat: JSON|Text, ApplicationLogLevel,
SystemLogLevel, LogGroup}``; ``Tracing: Active|PassThrough|Disabled`` (SAM) or ``TracingConfig: {Mode:
Active|PassThrough}`` (CloudFormation).

The Serverless Framework: ``provider.logs.lambda`` and a function's ``logs``: ``{logFormat,
applicationLogLevel, systemLogLevel, logGroup}`` (the function's keys win); ``provider.tracing.lambda`` and a
function's ``tracing``: ``true``/``Active`` or ``false``/``PassThrough``.
"""

from __future__ import annotations

import os
import sys
import warnings
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


# -- what lambdasim models of a function's definition, and a warning for the rest ------------------------


class TemplateWarning(UserWarning):
    """A template property lambdasim does not model: the function runs as if it were not there. The message
    names the property and its ``file:line`` (one warning a property each time the template is read)."""


SAM_MODELLED = frozenset({
    "Handler", "Runtime", "CodeUri", "Code", "InlineCode", "PackageType", "ImageUri", "ImageConfig", "MemorySize",
    "Timeout", "EphemeralStorage", "ReservedConcurrentExecutions", "Environment", "Layers", "SnapStart",
    "ProvisionedConcurrencyConfig", "TenancyConfig", "CapacityProviderConfig", "FunctionScalingConfig",
    "LoggingConfig", "Tracing", "TracingConfig", "Events", "FunctionName", "FunctionUrlConfig", "EventInvokeConfig",
})
"""The properties of ``AWS::Serverless::Function`` / ``AWS::Lambda::Function`` (and ``Globals.Function``)
that lambdasim reads (see :mod:`lambdasim._templates`, :mod:`lambdasim._template_models` and this module)."""
SERVERLESS_MODELLED = frozenset({
    "handler", "runtime", "memorySize", "timeout", "ephemeralStorageSize", "reservedConcurrency", "environment",
    "layers", "snapStart", "provisionedConcurrency", "tenancy", "capacityProvider", "logs", "tracing", "image",
    "events", "url", "maximumRetryAttempts", "maximumEventAge",
})
"""The keys of a Serverless function (``functions.NAME``) that lambdasim reads."""
SERVERLESS_PROVIDER_UNMODELLED = ("architecture", "vpc", "role", "iam", "kmsKeyArn")
"""The function defaults under ``provider`` that lambdasim does not model (the provider's other keys are
about deploying: stage, region, deploymentBucket, apiGateway ...; those it reads are in
:data:`SERVERLESS_MODELLED`)."""
INERT = frozenset({"Description", "Tags", "PropagateTags", "description", "tags", "name"})
"""Properties that change nothing about how a function runs: not modelled, and not warned about."""

_ADVICE = {
    "Architectures": "it runs on this machine's architecture",
    "architecture": "it runs on this machine's architecture",
    "VpcConfig": "network='isolated' is the closest: no way out but the simulator's services",
    "vpc": "network='isolated' is the closest: no way out but the simulator's services",
    "Role": "IAM permissions are not checked", "Policies": "IAM permissions are not checked",
    "role": "IAM permissions are not checked", "iam": "IAM permissions are not checked",
    "LogGroup": "the log is the invocation's logs",
    "logGroup": "the log is the invocation's logs",
}


def _outside_lambdasim() -> int:
    """The ``stacklevel`` of the first caller outside lambdasim, for a warning raised by our caller."""
    root = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1  # 1: warn_unmodelled, which warns
    while frame.f_back is not None and frame.f_code.co_filename.startswith(root):
        frame, level = frame.f_back, level + 1
    return level


def warn_unmodelled(display: str, props: list[tuple[str, _Loc]], modelled: frozenset[str]) -> None:
    """One :class:`TemplateWarning` for each of ``props`` (name, where) that lambdasim does not model."""
    for name, loc in sorted(props, key=lambda p: p[1].line):  # in the file's order
        if name in modelled or name in INERT:
            continue
        advice = _ADVICE.get(name)
        warnings.warn(TemplateWarning(f"{display}:{loc.line}: {loc.key}: lambdasim does not model {name}; the "
                                      f"function runs without it{f' ({advice})' if advice else ''}."),
                      stacklevel=_outside_lambdasim())


def sam_unmodelled(display: str, found: dict[str, tuple[Any, _Loc]]) -> None:
    """Warn about the properties of a SAM/CloudFormation function (with Globals) lambdasim does not model,
    and LoggingConfig's LogGroup."""
    props = [(name, loc) for name, (_, loc) in found.items()]
    logging = found.get("LoggingConfig", (None, None))
    if isinstance(logging[0], YamlMap) and "LogGroup" in logging[0] and logging[1] is not None:
        props.append(("LogGroup", logging[1].child(logging[0], "LogGroup")))
    warn_unmodelled(display, props, SAM_MODELLED)


def serverless_unmodelled(display: str, definition: YamlMap, fn_loc: _Loc, provider: YamlMap,
                          provider_loc: _Loc) -> None:
    """Warn about the keys of a Serverless function, and the provider's function defaults, that lambdasim
    does not model (and ``logGroup`` of the logs settings)."""
    props = [(str(key), fn_loc.child(definition, str(key))) for key in definition]
    props += [(key, provider_loc.child(provider, key)) for key in SERVERLESS_PROVIDER_UNMODELLED if key in provider]
    own = definition.get("logs")
    if isinstance(own, YamlMap) and "logGroup" in own:
        props.append(("logGroup", fn_loc.child(definition, "logs").child(own, "logGroup")))
    logs = provider.get("logs")
    if isinstance(logs, YamlMap) and isinstance(logs.get("lambda"), YamlMap) and "logGroup" in logs["lambda"]:
        where = provider_loc.child(provider, "logs").child(logs, "lambda")
        props.append(("logGroup", where.child(logs["lambda"], "logGroup")))
    warn_unmodelled(display, props, SERVERLESS_MODELLED)
