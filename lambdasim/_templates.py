"""Functions defined in an AWS SAM template or a Serverless Framework config.

``load_function("template.yaml", "OrdersFunction")`` reads one function's settings
into a :class:`TemplateFunction`, whose ``deploy_kwargs()`` are the arguments of
``Simulator.deploy()``, so the template stays the one place where they are written.

Only what is known without AWS is resolved: ``!Ref`` to a parameter's Default or to
a pseudo parameter (``AWS::Region`` ...), ``!Sub``, ``!Join``, ``!Select``,
``!Split``, ``!FindInMap``, ``!Base64``, ``!If`` on conditions over parameters; in
Serverless configs ``${self:...}``, ``${env:...}``, ``${opt:...}``, ``${sls:stage}``
and ``${aws:region|accountId}``, with fallbacks; a capacity provider of the template by
``!Ref`` or ``!GetAtt X.Arn`` (see :mod:`lambdasim._template_models` for the execution
models' properties). Given ``resources`` (what :mod:`lambdasim._template_resources`
created in moto: ``Simulator.deploy_from_template`` does), ``!Ref``, ``!GetAtt`` and
``${X.Attribute}`` of the template's resources and functions resolve too. Anything else
(``!ImportValue``, ``${ssm:...}`` ...) is a SourceError naming the file, the line, the
key and what to do instead.

Layers are local folders (a layer of the template, from its folder); a layer ARN of AWS Lambda Powertools
for Python is built from PyPI (``aws-lambda-powertools[all]`` of its major version, for the function's
Python), any other ARN is left out with a :class:`TemplateWarning`.

Folders are mounted as they are: point at ``.aws-sam/build/template.yaml`` after
``sam build`` to run the built artifacts (with their installed requirements).
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from lambdasim._cfn import (
    _NO_VALUE,
    Hints,
    Stack,
    _Context,
    _intrinsic,
    _kind,
    _Loc,
    _Resolver,
    _section,
    _show,
    _stringify,
    _tag,
)
from lambdasim._interpreters import find_python
from lambdasim._model import CUSTOM_RUNTIMES, PYTHON_RUNTIMES_TEXT, PYTHON_VERSION, RESERVED_ENV, known_runtime
from lambdasim._package import inline_code, powertools_layer
from lambdasim._sls_text import split_sources, variable_spans
from lambdasim._source import SourceError, YamlMap, YamlSeq, load_yaml, read_text
from lambdasim._template_events import TemplateEvent, sam_events, serverless_events
from lambdasim._template_invoke import FunctionUrl, Invoking, sam_invoking, serverless_invoking
from lambdasim._template_models import Models, sam_models, serverless_models
from lambdasim._template_props import (
    Observability,
    TemplateWarning,
    _outside_lambdasim,
    sam_observability,
    sam_unmodelled,
    serverless_observability,
    serverless_unmodelled,
)

__all__ = ["PYTHON_HINTS", "Hints", "TemplateFunction", "TemplateWarning", "load_function"]


class FunctionNotFound(SourceError):
    """The template defines no function of the name asked for (or, asked for none, not exactly one);
    the message lists those it defines."""


PYTHON_HINTS = Hints(
    environment="set the value with environment={{{name!r}: '...'}} (an override for load_function() or "
                "Simulator.deploy_from_template())",
    parameter="pass parameters={{{name!r}: ...}} to load_function()",
    layers="pass layers=[folder, ...]",
    function="name one: load_function(path, 'LogicalId')",
)


@dataclass(frozen=True)
class TemplateFunction:
    """One function's settings, as a template defines them."""

    name: str
    """The logical ID (SAM) or the key under ``functions`` (Serverless): the simulator's handle of it."""
    handler: str
    code_dir: str
    """Absolute path of the folder mounted at /var/task."""
    runtime: str
    memory_mb: int
    timeout_s: float
    ephemeral_storage_mb: int
    environment: dict[str, str]
    reserved_concurrency: int | None
    layers: tuple[str, ...]
    """Absolute paths of local layer folders, in the order they are mounted at /opt."""
    source: str
    """``file:line`` of the function's definition."""
    entry_point: tuple[str, ...] = ()
    """A container image function's ``ImageConfig.EntryPoint`` (SAM ``PackageType: Image``)."""
    snap_start: bool = False
    """``SnapStart: {ApplyOn: PublishedVersions}`` (Serverless: ``snapStart: true``)."""
    provisioned_concurrency: int = 0
    """``ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions`` (Serverless: ``provisionedConcurrency``)."""
    tenant_isolation: bool = False
    """``TenancyConfig: {TenantIsolationMode: PER_TENANT}`` (Serverless: ``tenancy: {mode: per_tenant}``)."""
    capacity_provider: str | None = None
    """Lambda Managed Instances: the ``CapacityProviderConfig``'s capacity provider (an ARN or a name)."""
    max_concurrency: int | None = None
    """``PerExecutionEnvironmentMaxConcurrency`` (Serverless: ``capacityProvider.maxConcurrency``)."""
    min_environments: int = 0
    """``FunctionScalingConfig.MinExecutionEnvironments`` (Serverless: ``capacityProvider.scaling.min``)."""
    max_environments: int | None = None
    """``FunctionScalingConfig.MaxExecutionEnvironments`` (Serverless: ``capacityProvider.scaling.max``)."""
    log_format: str = "Text"
    """``LoggingConfig.LogFormat`` (Serverless: ``logs.logFormat``, ``provider.logs.lambda.logFormat``)."""
    application_log_level: str | None = None
    """``LoggingConfig.ApplicationLogLevel`` (Serverless: ``applicationLogLevel``)."""
    system_log_level: str | None = None
    """``LoggingConfig.SystemLogLevel`` (Serverless: ``systemLogLevel``)."""
    tracing: bool = False
    """``Tracing: Active`` / ``TracingConfig: {Mode: Active}`` (Serverless: ``tracing: Active``)."""
    events: Mapping[str, TemplateEvent] = field(default_factory=dict)
    """The function's ``Events`` (SAM), by name: ``events["GetPerson"].event(path_parameters=...)`` (see
    :mod:`lambdasim._template_events`); not a setting of ``Simulator.deploy()``."""
    function_name: str | None = None
    """Its name on Lambda, what the function sees: ``FunctionName`` (SAM/CloudFormation) or ``name``, else the
    tool's: Serverless' ``service-stage-function``, CloudFormation's ``<stack>-<LogicalId>-<RANDOM>`` (known
    only from the created stack, ``resources``; None without it)."""
    function_url: FunctionUrl | None = None
    """Its function URL (``FunctionUrlConfig``, an ``AWS::Lambda::Url``, Serverless ``url``), served by
    ``Simulator.serve()``; not a setting of ``Simulator.deploy()``."""
    max_retry_attempts: int | None = None
    """``EventInvokeConfig.MaximumRetryAttempts`` (Serverless: ``maximumRetryAttempts``)."""
    max_event_age_s: int | None = None
    """``EventInvokeConfig.MaximumEventAgeInSeconds`` (Serverless: ``maximumEventAge``)."""

    def deploy_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``Simulator.deploy(**kwargs)`` for this function."""
        return {
            "handler": self.handler, "code_dir": self.code_dir, "name": self.name, "memory_mb": self.memory_mb,
            "timeout_s": self.timeout_s, "ephemeral_storage_mb": self.ephemeral_storage_mb,
            "environment": dict(self.environment), "reserved_concurrency": self.reserved_concurrency,
            "layers": list(self.layers), "runtime": self.runtime, "entry_point": list(self.entry_point),
            "snap_start": self.snap_start, "provisioned_concurrency": self.provisioned_concurrency,
            "tenant_isolation": self.tenant_isolation, "capacity_provider": self.capacity_provider,
            "max_concurrency": self.max_concurrency, "min_environments": self.min_environments,
            "max_environments": self.max_environments, "log_format": self.log_format,
            "application_log_level": self.application_log_level, "system_log_level": self.system_log_level,
            "tracing": self.tracing, "function_name": self.function_name,
            # Only where the template sets them (Simulator.deploy() takes them where it models retries).
            **({"max_retry_attempts": self.max_retry_attempts} if self.max_retry_attempts is not None else {}),
            **({"max_event_age_s": self.max_event_age_s} if self.max_event_age_s is not None else {}),
        }


def load_function(path: str | os.PathLike[str], function: str | None, *,
                  environment: Mapping[str, str] | None = None,
                  layers: Sequence[str | os.PathLike[str]] | None = None,
                  parameters: Mapping[str, Any] | None = None,
                  region: str = "us-east-1", hints: Hints = PYTHON_HINTS,
                  resources: Stack | None = None) -> TemplateFunction:
    """Read ``function`` from a SAM template or a Serverless config (or a folder holding one).

    Args:
        path: ``template.yaml`` / ``serverless.yml``, or the folder that holds it.
        function: the function's logical ID (SAM) or its key under ``functions`` (Serverless);
            None for the only function the file defines (like ``sam local invoke`` without one).
        environment: variables that replace or add to the template's; the template's values
            for these keys are not resolved (so an unresolvable ``!GetAtt`` can be set here).
        layers: local layer folders that replace the template's ``Layers`` (e.g. for layer ARNs other
            than Powertools', which are not mounted).
        parameters: SAM parameter values (like ``sam --parameter-overrides``), or Serverless
            CLI options for ``${opt:...}`` (``{"stage": "prod"}``).
        region: what ``AWS::Region`` and ``${aws:region}`` resolve to.
        hints: how errors say to set what the template cannot (the caller's own words for the
            overrides above); the default names these keyword arguments.
        resources: the template's resources as created in moto (see
            :func:`lambdasim._template_resources.create_resources`): ``!Ref``, ``!GetAtt`` and ``!Sub``
            of them resolve to their names and ARNs, and the function's generated name is the stack's.
            None: they cannot be resolved.
    """
    display, file = _find_file(os.fspath(path))
    doc = _read_yaml(display, file)
    sam = [k for k in _SAM_KEYS if k in doc]
    sls = [k for k in _SLS_KEYS if k in doc]
    if bool(sam) == bool(sls):
        found = f"it has both {', '.join(sam)} and {', '.join(sls)}" if sam else "it has none of their keys"
        raise SourceError(
            display, None, None,
            "cannot tell whether this is an AWS SAM/CloudFormation template (AWSTemplateFormatVersion, "
            f"Transform, Resources) or a Serverless Framework config (service, provider, functions): {found}.",
        )
    ctx = _Context(display, os.path.dirname(file), doc, region, dict(parameters or {}),
                   dict(environment) if environment is not None else None,
                   tuple(os.path.abspath(os.fspath(p)) for p in layers) if layers is not None else None, hints,
                   stack=resources)
    return _Sam(ctx).load(function) if sam else _Serverless(ctx).load(function)


def _function_keys(section: YamlMap, sam: bool) -> list[str]:
    """The functions of a template's ``Resources`` (SAM/CloudFormation: the function resources) or of a
    serverless.yml's ``functions`` (every key)."""
    return [str(k) for k, v in section.items()
            if not sam or (isinstance(v, YamlMap) and v.get("Type") in (_SAM_FUNCTION, _CFN_FUNCTION))]


def function_keys(path: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """(the template's name in messages, the logical IDs or keys of its functions), for front ends that look
    for a function by what it has (an event's name)."""
    display, file = _find_file(os.fspath(path))
    doc = _read_yaml(display, file)
    sam = any(k in doc for k in _SAM_KEYS)
    section = doc.get("Resources" if sam else "functions")
    return display, _function_keys(section, sam) if isinstance(section, YamlMap) else []


def function_named(path: str | os.PathLike[str], name: str, *, parameters: Mapping[str, Any] | None = None,
                   region: str = "us-east-1") -> str | None:
    """The logical ID (SAM) or key (Serverless) of the function whose name on Lambda is ``name`` (its
    ``FunctionName`` or ``name``, or Serverless' ``service-stage-function``; CloudFormation's generated names
    are known only once the stack exists), for front ends that take either; None if there is none."""
    display, file = _find_file(os.fspath(path))
    doc = _read_yaml(display, file)
    ctx = _Context(display, os.path.dirname(file), doc, region, dict(parameters or {}), None, None, PYTHON_HINTS)
    sam = any(k in doc for k in _SAM_KEYS)
    section = doc.get("Resources" if sam else "functions")
    section = section if isinstance(section, YamlMap) else YamlMap()
    for key in _function_keys(section, sam):
        definition = section[key]
        try:
            if sam:
                props = definition.get("Properties")
                if not isinstance(props, YamlMap) or props.get("FunctionName") is None:
                    continue
                found = _Sam(ctx).lambda_name(props["FunctionName"], _Loc(f"Resources.{key}", 0))
            else:
                found = _Serverless(ctx).function_name(str(key), definition)
        except SourceError:
            continue  # reading that function says what is wrong with it
        if found == name:
            return str(key)
    return None


# -- YAML with line numbers and CloudFormation tags ---------------------------------------

_SAM_KEYS = ("AWSTemplateFormatVersion", "Transform", "Resources")
_SLS_KEYS = ("service", "provider", "functions")
_CANDIDATES = ("template.yaml", "template.yml", "serverless.yml", "serverless.yaml")


def _find_file(given: str) -> tuple[str, str]:
    """(the name used in messages, the absolute path) of the template ``given`` names."""
    absolute = os.path.abspath(given)
    if os.path.isdir(absolute):
        found = [name for name in _CANDIDATES if os.path.isfile(os.path.join(absolute, name))]
        if not found:
            raise SourceError(given, None, None, f"this folder holds none of {', '.join(_CANDIDATES)}; "
                                                 "pass the path of the SAM template or Serverless config.")
        if len(found) > 1:
            raise SourceError(given, None, None, f"this folder holds {' and '.join(found)}; pass the path of the one "
                                                 "to use.")
        return os.path.normpath(os.path.join(given, found[0])), os.path.join(absolute, found[0])
    if not os.path.exists(absolute):
        raise SourceError(given, None, None, f"no such file (looked for {absolute}); pass the path of a SAM "
                                             "template.yaml or a serverless.yml.")
    return given, absolute


def _read_yaml(display: str, file: str) -> YamlMap:
    text = read_text(file, display, "it")
    # CloudFormation and the Serverless Framework read YAML 1.1 scalars, and the last of a key given twice.
    doc = load_yaml(text, display, scalars="yaml1.1", tags=_tag, keep="last")
    if not isinstance(doc, YamlMap):
        raise SourceError(display, None, None, "expected a mapping (a SAM template or a Serverless config) at the "
                                               f"top, found {_kind(doc)}.")
    return doc


# -- reading values ---------------------------------------------------------------------------

_RUNTIMES = (f"lambdasim runs Python functions ({PYTHON_RUNTIMES_TEXT}) and custom runtimes "
             f"({', '.join(CUSTOM_RUNTIMES)}: an executable bootstrap in the code or a layer)")
_ENV_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
_LAMBDA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MEMORY = (128, 10240, "Lambda allows 128 to 10240 MB")
_TIMEOUT = (1, 900, "Lambda allows 1 to 900 seconds")
_STORAGE = (512, 10240, "Lambda allows 512 to 10240 MB")
_CONCURRENCY = (0, 2**31 - 1, "use a whole number >= 0")
_ON_DEMAND = Models()
_TEXT_LOGS = Observability()
_NOT_INVOKED = Invoking()


class _Reader:
    """What SAM and Serverless have in common: checking values and building the TemplateFunction."""

    resolver: _Resolver

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx

    def value(self, value: Any, loc: _Loc) -> Any:
        return self.resolver.resolve(value, loc)

    def string(self, value: Any, loc: _Loc, what: str) -> str:
        resolved = self.value(value, loc)
        if not isinstance(resolved, str) or not resolved:
            self.ctx.fail(loc, f"{_show(value)} is not {what}.")
        return resolved

    def handler(self, found: tuple[Any, _Loc], runtime: Callable[[], str]) -> str:
        """The handler; for a custom ``runtime`` (read once the handler is there) any text: its bootstrap
        reads it in ``_HANDLER``."""
        value, loc = found
        if value is None:
            self.ctx.fail(loc, "missing; set it to module.function, e.g. app.handler (for a custom runtime: what "
                               "its bootstrap reads in _HANDLER).")
        custom = runtime() in CUSTOM_RUNTIMES
        handler = self.string(value, loc, "a handler")
        module, _, function = handler.rpartition(".")
        if not custom and (not module or not function):
            self.ctx.fail(loc, f"{handler!r} is not a handler; write it as module.function, e.g. app.handler.")
        return handler

    runtime_name = ""
    """The function's runtime, once read (a layer ARN's build is for its Python)."""

    def runtime(self, value: Any, loc: _Loc) -> str:
        if value is None:
            self.ctx.fail(loc, f"missing; set it to a Python runtime ({PYTHON_RUNTIMES_TEXT}) or a custom runtime "
                               f"({', '.join(CUSTOM_RUNTIMES)}).")
        runtime = self.value(value, loc)
        if not known_runtime(runtime):
            shown = _show(value) if runtime is value else f"{_show(value)} ({runtime!r})"
            self.ctx.fail(loc, f"{shown} is not a Python runtime or a custom one; {_RUNTIMES}.")
        assert isinstance(runtime, str)
        self.runtime_name = runtime
        return runtime

    def strings(self, value: Any, loc: _Loc, what: str) -> tuple[str, ...]:
        """A list of non-empty strings (an image's EntryPoint or Command), resolved."""
        items = self.value(value, loc)
        if not isinstance(items, list) or not items:
            self.ctx.fail(loc, f"{_show(value)} is not {what}: write a list of strings, e.g. "
                               "[python3, -m, awslambdaric].")
        out = tuple(self.string(item, loc.item(items, i), "a non-empty string") if isinstance(items, YamlSeq)
                    else self.string(item, loc, "a non-empty string") for i, item in enumerate(items))
        return out

    def whole(self, value: Any, loc: _Loc, limits: tuple[int, int, str]) -> int:
        low, high, allowed = limits
        number = self.value(value, loc)
        if isinstance(number, str) and number.strip().isdigit():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int):
            self.ctx.fail(loc, f"{_show(value)} is not a whole number; {allowed}.")
        if not low <= number <= high:
            self.ctx.fail(loc, f"{number} is out of range; {allowed}.")
        return number

    def folder(self, value: Any, loc: _Loc, what: str) -> str:
        """The absolute path of a local folder ``value`` names, relative to the template's folder."""
        path = self.value(value, loc)
        if isinstance(path, dict) or (isinstance(path, str) and path.startswith("s3://")):
            self.ctx.fail(loc, f"{_show(value)} is in S3; lambdasim mounts local folders: set {what} to the "
                               "folder's path, relative to the template.")
        if not isinstance(path, str) or not path:
            self.ctx.fail(loc, f"{_show(value)} is not a folder's path.")
        folder = os.path.normpath(os.path.join(self.ctx.folder, os.path.expanduser(path)))
        if os.path.isfile(folder):
            self.ctx.fail(loc, f"{path!r} is a file ({folder}); lambdasim mounts folders: unzip it, or point "
                               f"{what} at the source folder.")
        if not os.path.isdir(folder):
            self.ctx.fail(loc, f"{path!r}: no such folder ({folder}).")
        return folder

    def environment(self, variables: list[tuple[Any, Any, _Loc]]) -> dict[str, str]:
        """Variables in order of precedence (later wins), resolved; the overrides replace theirs."""
        overrides = self.ctx.environment or {}
        merged: dict[str, tuple[Any, _Loc]] = {}
        for key, value, loc in variables:
            if key in overrides:
                continue
            if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
                self.ctx.fail(loc, f"{key!r} is not a valid variable name; Lambda wants 2 or more letters, "
                                   "digits and '_', starting with a letter.")
            if key in RESERVED_ENV:
                self.ctx.fail(loc, f"{key} is reserved by Lambda, which sets it; remove it from the template.")
            merged[key] = (value, loc)
        result: dict[str, str] = {}
        for key, (value, loc) in merged.items():
            resolved = self.value(value, loc)
            if resolved is _NO_VALUE:
                continue
            if resolved is None:
                self.ctx.fail(loc, f"has no value; write '' for an empty string, or {loc.hint}.")
            text = _stringify(resolved)
            if text is None:
                self.ctx.fail(loc, f"{_show(value)} is {_kind(resolved)}; environment variables are strings.")
            result[key] = text
        result.update(overrides)
        return result

    def env_hint(self, key: Any) -> str:
        return self.ctx.hints.environment.format(name=key)

    def layers_hint(self, whose: str) -> str:
        return f"{self.ctx.hints.layers} to replace the {whose}'s layers"

    def build(self, name: str, line: int, handler: str, code_dir: str, runtime: str, memory: int, timeout: int,
              storage: int, environment: dict[str, str], concurrency: int | None,
              layers: Callable[[], tuple[str, ...]], entry_point: tuple[str, ...] = (),
              models: Models = _ON_DEMAND, props: Observability = _TEXT_LOGS,
              events: Mapping[str, TemplateEvent] | None = None, function_name: str | None = None,
              invoking: Invoking = _NOT_INVOKED) -> TemplateFunction:
        self.runtime_name = runtime  # an image function's is not read by runtime()
        return TemplateFunction(
            name=name, handler=handler, code_dir=code_dir, runtime=runtime, memory_mb=memory,
            timeout_s=float(timeout), ephemeral_storage_mb=storage, environment=environment,
            reserved_concurrency=concurrency, layers=self.ctx.layers if self.ctx.layers is not None else layers(),
            source=f"{self.ctx.display}:{line}", entry_point=entry_point, events=dict(events or {}), **vars(models),
            **vars(props), function_name=function_name, **vars(invoking),
        )

    def lambda_name(self, value: Any, loc: _Loc) -> str:
        """A function's name on Lambda (``FunctionName``, Serverless ``name``), resolved and checked."""
        name = self.string(value, loc, "a function name")
        if not _LAMBDA_NAME.fullmatch(name):
            shown = _show(value) if name is value else f"{_show(value)} ({name!r})"
            self.ctx.fail(loc, f"{shown} is not a Lambda function name; Lambda wants 1 to 64 letters, digits, '-' "
                               "or '_'.")
        return name

    def pick(self, function: str | None, where: str, functions: dict[str, int]) -> str:
        """``function``, or when None the only one of ``functions`` (name: line)."""
        if function is not None:
            return function
        if len(functions) == 1:
            return next(iter(functions))
        listed = ", ".join(f"{name} (line {line})" for name, line in functions.items())
        raise FunctionNotFound(self.ctx.display, None, None, f"which function? There are {len(functions)} in "
                                                             f"{where}: {listed}; {self.ctx.hints.function}."
                               if functions else f"no function to read: {where} defines no functions.")

    def missing(self, function: str, where: str, functions: dict[str, int]) -> NoReturn:
        if not functions:
            raise FunctionNotFound(self.ctx.display, None, None, f"no function {function!r}: {where} defines no "
                                                                 "functions.")
        close = difflib.get_close_matches(function, list(functions), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(f"{name} (line {line})" for name, line in functions.items())
        raise FunctionNotFound(self.ctx.display, None, None, f"no function {function!r} in {where}; the functions "
                                                             f"are: {listed}.{hint}")

    def arn_layer(self, loc: _Loc, shown: str, arn: str, whose: str) -> str | None:
        """The folder mounted for a layer ARN: the AWS Lambda Powertools for Python layer is built from PyPI
        (:func:`lambdasim._package.powertools_layer`); any other is not mounted (None), with a TemplateWarning
        in the same words whoever asks (a front end reads the template before deploying it: one warning)."""
        match = _POWERTOOLS.fullmatch(arn)
        runtime = self.runtime_name
        if match is None or not runtime.startswith("python3."):
            warnings.warn(TemplateWarning(
                f"{self.ctx.display}:{loc.line}: {loc.key}: {shown} is a layer ARN, which lambdasim cannot fetch: "
                "not mounted: what it provides is missing (to mount it, put its content in a folder and give the "
                "function's layers as local folders)."), stacklevel=_outside_lambdasim())
            return None
        version = runtime.removeprefix("python")
        found = None if version == PYTHON_VERSION else find_python(version)
        # Built for the Python the function runs on: its runtime's where that is installed, else lambdasim's
        # (compiled dependencies, like pydantic-core's, import only on the Python they are built for).
        python, interpreter = (version, found) if found is not None else (PYTHON_VERSION, "")
        try:
            return powertools_layer(int(match.group(1)), python, interpreter)
        except OSError as e:
            self.ctx.fail(loc, f"{shown} is the AWS Lambda Powertools layer, which lambdasim builds from PyPI "
                               f"(pip install 'aws-lambda-powertools[all]' for Python {python}), but the build "
                               f"failed: {e}; {self.layers_hint(whose)}.")


# -- AWS SAM / CloudFormation -------------------------------------------------------------------

_SAM_FUNCTION = "AWS::Serverless::Function"
_CFN_FUNCTION = "AWS::Lambda::Function"
_LAYER_CONTENT = {"AWS::Serverless::LayerVersion": "ContentUri", "AWS::Lambda::LayerVersion": "Content"}
# AWS's Powertools for AWS Lambda (Python) layers: AWSLambdaPowertoolsPythonV2[-Arm64],
# AWSLambdaPowertoolsPythonV3-python3XX-x86_64|arm64, published by AWS's accounts.
_POWERTOOLS = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:(?:017000801446|094274105915):layer:"
                         r"AWSLambdaPowertoolsPythonV([2-9])(?:-[A-Za-z0-9_-]+)?:\d+")


class _Sam(_Reader):
    def __init__(self, ctx: _Context) -> None:
        super().__init__(ctx)
        self.resolver = _Resolver(ctx)

    def load(self, function: str | None) -> TemplateFunction:
        ctx = self.ctx
        resources, _ = _section(ctx, ctx.doc, "Resources", None)
        functions = {name: resources.key_line(name, 0) for name in _function_keys(resources, True)}
        function = self.pick(function, "Resources", functions)
        if function not in resources:
            self.missing(function, "Resources", functions)
        res_loc = _Loc(f"Resources.{function}", resources.key_line(function, resources.line))
        resource = resources[function]
        kind = resource.get("Type") if isinstance(resource, YamlMap) else None
        if kind not in (_SAM_FUNCTION, _CFN_FUNCTION):
            others = f"; the functions are: {', '.join(functions)}" if functions else ""
            ctx.fail(res_loc, f"it is {kind or _kind(resource)}, not a function ({_SAM_FUNCTION} or "
                              f"{_CFN_FUNCTION}){others}.")
        assert isinstance(resource, YamlMap)
        props, props_loc = _section(ctx, resource, "Properties", res_loc)
        sam = kind == _SAM_FUNCTION
        # SAM's Globals: the function's own properties win; Environment.Variables merge; lists add up.
        found: dict[str, tuple[Any, _Loc]] = {}
        globals_: list[tuple[YamlMap, _Loc]] = []
        if sam and "Globals" in ctx.doc:
            section, where = _section(ctx, ctx.doc, "Globals", None)
            function_globals, where = _section(ctx, section, "Function", where)
            globals_.append((function_globals, where))
        for container, where in [*globals_, (props, props_loc)]:
            for key, value in container.items():
                found[key] = (value, where.child(container, key))

        def get(key: str) -> tuple[Any, _Loc]:
            value, loc = found.get(key, (None, props_loc.child(props, key)))
            if _intrinsic(value) is not None and self.value(value, loc) is _NO_VALUE:
                return None, loc  # e.g. !If [IsProd, 100, !Ref AWS::NoValue]
            return value, loc

        package, package_loc = get("PackageType")
        code, code_loc = get("CodeUri" if sam else "Code")
        entry_point: tuple[str, ...] = ()
        if self.value(package, package_loc) == "Image" or "ImageUri" in found or (
                isinstance(code, dict) and "ImageUri" in code):
            code_dir, handler, entry_point = self.image(resource, res_loc, get, sam)
            # The AWS base image for Python, its runtime lambdasim's (or the image's ENTRYPOINT).
            runtime = f"python{PYTHON_VERSION}" if get("Runtime")[0] is None else self.runtime(*get("Runtime"))
        else:
            inline = "InlineCode" in found or (isinstance(code, dict) and "ZipFile" in code)
            if code is None and not sam and not inline:
                ctx.fail(code_loc, "missing; set Code to the folder that holds the handler's module.")
            if inline:  # Lambda writes it to index.py in the package (the handler is index.<function>)
                text, text_loc = (get("InlineCode") if "InlineCode" in found
                                  else (code["ZipFile"], code_loc.child(code, "ZipFile")))
                text = self.value(text, text_loc)
                if not isinstance(text, str):
                    ctx.fail(text_loc, f"expected the function's code as a string, found {_kind(text)}.")
                code_dir = inline_code(text)
            else:
                code_dir = self.folder("." if code is None else code, code_loc, "CodeUri" if sam else "Code")
            handler = self.handler(get("Handler"), lambda: self.runtime(*get("Runtime")))
            runtime = self.runtime(*get("Runtime"))
        memory = self.whole(*self.get_or(get("MemorySize"), 128), _MEMORY)
        timeout = self.whole(*self.get_or(get("Timeout"), 3), _TIMEOUT)
        storage = 512
        ephemeral, ephemeral_loc = get("EphemeralStorage")
        if ephemeral is not None:
            ephemeral = self.value(ephemeral, ephemeral_loc)
            if not isinstance(ephemeral, YamlMap) or "Size" not in ephemeral:
                ctx.fail(ephemeral_loc, f"expected {{Size: megabytes}}, found {_kind(ephemeral)}.")
            storage = self.whole(ephemeral["Size"], ephemeral_loc.child(ephemeral, "Size"), _STORAGE)
        concurrency, concurrency_loc = get("ReservedConcurrentExecutions")
        reserved = None if concurrency is None else self.whole(concurrency, concurrency_loc, _CONCURRENCY)
        variables: list[tuple[Any, Any, _Loc]] = []
        for container, where in [*globals_, (props, props_loc)]:
            if "Environment" not in container:
                continue
            env, env_loc = _section(ctx, container, "Environment", where)
            values, values_loc = _section(ctx, env, "Variables", env_loc)
            variables += [(key, value, values_loc.child(values, key, self.env_hint(key)))
                          for key, value in values.items()]
        environment = self.environment(variables)

        def layers() -> tuple[str, ...]:
            paths: list[str] = []
            for container, where in [*globals_, (props, props_loc)]:
                entries, entries_loc = container.get("Layers"), where.child(container, "Layers")
                if entries is None:
                    continue
                if not isinstance(entries, YamlSeq):
                    ctx.fail(entries_loc, f"expected a list of layers, found {_kind(entries)}.")
                for i, entry in enumerate(entries):
                    path = self.layer(entry, entries_loc.item(entries, i))
                    if path is not None:
                        paths.append(path)
            return tuple(paths)

        models = sam_models(self, get, function, sam)
        events = sam_events(self, function, props, props_loc) if sam else {}
        sam_unmodelled(ctx.display, found)
        if props.get("FunctionName") is not None:
            function_name: str | None = self.lambda_name(props["FunctionName"],
                                                          props_loc.child(props, "FunctionName"))
        else:  # CloudFormation's <stack>-<LogicalId>-<RANDOM>, as the created stack has it
            function_name = ctx.stack.ref(function) if ctx.stack is not None else None
        invoking = sam_invoking(self, get, function, (function_name,))
        return self.build(function, res_loc.line, handler, code_dir, runtime, memory, timeout, storage, environment,
                          reserved, layers, entry_point, models,
                          sam_observability(self, get, sam, [*globals_, (props, props_loc)]), events, function_name,
                          invoking)

    def image(self, resource: YamlMap, res_loc: _Loc, get: Callable[[str], tuple[Any, _Loc]],
              sam: bool) -> tuple[str, str, tuple[str, ...]]:
        """A container image function (``PackageType: Image``): (the folder mounted at /var/task, the
        handler, the entry point). The image is not built: its code is the Docker context's folder
        (``Metadata.DockerContext``, as ``sam build`` reads it), or CodeUri."""
        ctx = self.ctx
        metadata, meta_loc = _section(ctx, resource, "Metadata", res_loc)
        if "DockerContext" in metadata:
            code_dir = self.folder(metadata["DockerContext"], meta_loc.child(metadata, "DockerContext"),
                                   "Metadata.DockerContext")
        else:
            code, code_loc = get("CodeUri" if sam else "Code")
            if not isinstance(code, str):
                ctx.fail(meta_loc.child(metadata, "DockerContext"),
                         "missing; lambdasim does not build or pull images: it mounts the image's code from a local "
                         "folder at /var/task. Set Metadata.DockerContext (as sam build reads it) to the folder whose "
                         "files the Dockerfile copies into ${LAMBDA_TASK_ROOT}.")
            code_dir = self.folder(code, code_loc, "CodeUri")
        config, config_loc = get("ImageConfig")
        config = self.value(config, config_loc) if config is not None else YamlMap(resource.file)
        if not isinstance(config, YamlMap):
            ctx.fail(config_loc, f"expected {{EntryPoint: [...], Command: [handler]}}, found {_kind(config)}.")
        unknown = sorted(set(config) - {"EntryPoint", "Command", "WorkingDirectory"})
        if unknown:
            ctx.fail(config_loc.child(config, unknown[0]), "not an ImageConfig key; ImageConfig takes EntryPoint, "
                                                           "Command and WorkingDirectory.")
        command_loc = config_loc.child(config, "Command")
        if "Command" not in config:
            ctx.fail(command_loc, "missing; lambdasim does not read the image's CMD: set Command to the handler, "
                                  "e.g. [app.handler], as the Dockerfile's CMD gives it.")
        command = self.strings(config["Command"], command_loc, "a command")
        if len(command) != 1:
            ctx.fail(command_loc, f"{list(command)!r}: lambdasim passes the entry point one argument, the handler; "
                                  "write Command: [handler].")
        entry_point: tuple[str, ...] = ()
        if "EntryPoint" in config:
            entry_point = self.strings(config["EntryPoint"], config_loc.child(config, "EntryPoint"), "an entry point")
        if "WorkingDirectory" in config:
            where = config_loc.child(config, "WorkingDirectory")
            if self.value(config["WorkingDirectory"], where) not in ("/var/task", "/var/task/"):
                ctx.fail(where, f"{_show(config['WorkingDirectory'])}: lambdasim mounts the image's code at "
                                "/var/task and runs it there; remove WorkingDirectory, or set it to /var/task.")
        return code_dir, command[0], entry_point

    @staticmethod
    def get_or(found: tuple[Any, _Loc], default: int) -> tuple[Any, _Loc]:
        value, loc = found
        return (default if value is None else value), loc

    def layer(self, entry: Any, loc: _Loc) -> str | None:
        loc = _Loc(loc.key, loc.line, self.layers_hint("template"))
        call = _intrinsic(entry)
        if call is not None and call[0] == "Ref" and isinstance(call[1], str) and call[1] in self.resolver.resources:
            name = call[1]
            resource = self.resolver.resources[name]
            resources = self.ctx.doc["Resources"]
            res_loc = _Loc(f"Resources.{name}", resources.key_line(name, resources.line))
            kind = resource.get("Type") if isinstance(resource, YamlMap) else None
            if kind not in _LAYER_CONTENT:
                self.ctx.fail(loc, f"{_show(entry)} names {res_loc.key} (line {res_loc.line}), which is {kind}, "
                                   "not a layer (AWS::Serverless::LayerVersion or AWS::Lambda::LayerVersion).")
            assert isinstance(resource, YamlMap)
            props, props_loc = _section(self.ctx, resource, "Properties", res_loc)
            content = _LAYER_CONTENT[kind]
            if content not in props:
                self.ctx.fail(props_loc.child(props, content), f"missing; set {content} to the layer's folder.")
            return self.folder(props[content], props_loc.child(props, content), content)
        value = self.value(entry, loc)
        if value is _NO_VALUE:
            return None
        if isinstance(value, str) and value.startswith("arn:"):
            shown = _show(entry) if value is entry else f"{_show(entry)} ({value!r})"
            return self.arn_layer(loc, shown, value, "template")
        self.ctx.fail(loc, f"{_show(entry)} is neither a layer ARN nor a !Ref to a layer in this template; "
                           f"{self.layers_hint('template')}.")


# -- Serverless Framework ------------------------------------------------------------------------

_VARIABLE_SOURCES = "lambdasim resolves ${self:...}, ${env:...}, ${opt:...}, ${sls:stage}, ${aws:region|accountId}"


# What the Serverless Framework gives provider.stage and provider.region where the config sets none.
_SLS_PROVIDER_DEFAULTS = {"provider.stage": "dev", "provider.region": "us-east-1"}
_SOURCE = re.compile(r"([a-zA-Z][\w]*)(\([^)]*\))?:(.*)", re.DOTALL)
_CFN_SUB_VARIABLE = re.compile(r"\s*(AWS::\w+|[A-Za-z0-9]+(\.[\w.]+)?|!.*)\s*", re.DOTALL)


def sls_logical_id(key: str, suffix: str = "LambdaFunction") -> str:
    """The Serverless Framework's logical ID of the function (or, with ``LambdaLayer``, the layer) ``key``."""
    return (key[:1].upper() + key[1:]).replace("-", "Dash").replace("_", "Underscore") + suffix


class _Serverless(_Reader):
    def __init__(self, ctx: _Context) -> None:
        super().__init__(ctx)
        ctx.hint = "write the value itself in the config"
        self.resolver = _Resolver(ctx, self.text)
        self.provider, self.provider_loc = _section(ctx, ctx.doc, "provider", None)
        extra = ctx.doc.get("resources")
        if isinstance(extra, YamlMap) and isinstance(extra.get("Resources"), YamlMap):
            self.resolver.resources = extra["Resources"]  # for messages about !Ref to them
        self._depth = 0

    def load(self, function: str | None) -> TemplateFunction:
        ctx = self.ctx
        functions, _ = _section(ctx, ctx.doc, "functions", None)
        lines = {k: functions.key_line(k, 0) for k in functions}
        function = self.pick(function, "functions", lines)
        if function not in functions:
            self.missing(function, "functions", lines)
        fn_loc = _Loc(f"functions.{function}", functions.key_line(function, functions.line))
        definition, fn_loc = _section(ctx, functions, function, _Loc("functions", functions.line))
        if "image" in definition:
            ctx.fail(fn_loc.child(definition, "image"), "container image functions are not supported; lambdasim "
                                                        "runs .zip functions: define it with handler and runtime.")

        def get(key: str, default: Any = None, provider_key: str | None = None) -> tuple[Any, _Loc]:
            if key in definition:
                return definition[key], fn_loc.child(definition, key)
            if provider_key and provider_key in self.provider:
                return self.provider[provider_key], self.provider_loc.child(self.provider, provider_key)
            return default, fn_loc.child(definition, key)

        def runtime_of() -> str:
            runtime, runtime_loc = get("runtime", provider_key="runtime")
            if runtime is None:
                ctx.fail(self.provider_loc.child(self.provider, "runtime"),
                         "missing; set provider.runtime (or the function's runtime) to a Python runtime, e.g. "
                         "python3.12, or a custom one, e.g. provided.al2023 (the Serverless Framework's default is "
                         "Node.js).")
            return self.runtime(runtime, runtime_loc)

        handler = self.handler(get("handler"), runtime_of)
        runtime = runtime_of()
        # The Serverless Framework's defaults: 1024 MB and 6 seconds.
        memory = self.whole(*get("memorySize", 1024, "memorySize"), _MEMORY)
        timeout = self.whole(*get("timeout", 6, "timeout"), _TIMEOUT)
        storage = self.whole(*get("ephemeralStorageSize", 512, "ephemeralStorageSize"), _STORAGE)
        concurrency, concurrency_loc = get("reservedConcurrency")
        reserved = None if concurrency is None else self.whole(concurrency, concurrency_loc, _CONCURRENCY)
        variables: list[tuple[Any, Any, _Loc]] = []
        for container, where in ((self.provider, self.provider_loc), (definition, fn_loc)):
            if container.get("environment") is None:
                continue
            env_loc = where.child(container, "environment")
            env = self.value(container["environment"], env_loc)
            if not isinstance(env, YamlMap):
                ctx.fail(env_loc, f"expected a mapping of variables, found {_kind(env)}.")
            variables += [(key, value, env_loc.child(env, key, self.env_hint(key))) for key, value in env.items()]
        environment = self.environment(variables)

        def layers() -> tuple[str, ...]:
            entries, loc = get("layers", provider_key="layers")  # the function's layers replace the provider's
            if entries is None:
                return ()
            entries = self.value(entries, loc)
            if not isinstance(entries, YamlSeq):
                ctx.fail(loc, f"expected a list of layers, found {_kind(entries)}.")
            found = (self.layer(entry, loc.item(entries, i)) for i, entry in enumerate(entries))
            return tuple(path for path in found if path is not None)

        models = serverless_models(self, get, self.provider, self.provider_loc)
        events = serverless_events(self, function, definition, fn_loc, str(self.stage(fn_loc)))
        props = serverless_observability(self, get, self.provider, self.provider_loc)
        invoking = serverless_invoking(self, get)
        serverless_unmodelled(ctx.display, definition, fn_loc, self.provider, self.provider_loc)
        return self.build(function, fn_loc.line, handler, ctx.folder, runtime, memory, timeout, storage,
                          environment, reserved, layers, models=models, props=props, events=events,
                          function_name=self.function_name(function, definition), invoking=invoking)

    def function_name(self, key: str, definition: Any) -> str:
        """The function ``key``'s name on Lambda: its ``name``, else ``service-stage-key``."""
        functions = self.ctx.doc.get("functions")
        line = functions.key_line(key, 0) if isinstance(functions, YamlMap) else 0
        if isinstance(definition, YamlMap) and definition.get("name") is not None:
            return self.lambda_name(definition["name"], _Loc(f"functions.{key}", line).child(definition, "name"))
        doc = self.ctx.doc
        service_loc = _Loc("service", doc.key_line("service", 0))
        service = self.value(doc.get("service"), service_loc)
        if isinstance(service, YamlMap):  # the older form, service: {name: ...}
            service_loc = service_loc.child(service, "name")
            service = self.value(service.get("name"), service_loc)
        if not isinstance(service, str) or not service:
            self.ctx.fail(service_loc, f"{_show(service)} is not a service name; set service to the service's name.")
        name = f"{service}-{self.stage(service_loc)}-{key}"
        if not _LAMBDA_NAME.fullmatch(name):
            self.ctx.fail(_Loc(f"functions.{key}", line), f"the Serverless Framework names it {name!r}, which is not "
                                                          "a Lambda function name (1 to 64 letters, digits, '-' or "
                                                          "'_'); give it a shorter one with name:.")
        return name

    def layer(self, entry: Any, loc: _Loc) -> str | None:
        loc = _Loc(loc.key, loc.line, self.layers_hint("config"))
        call = _intrinsic(entry)
        if call is not None and call[0] == "Ref" and isinstance(call[1], str):
            defined, defined_loc = _section(self.ctx, self.ctx.doc, "layers", None)
            names = {sls_logical_id(k, "LambdaLayer"): k for k in defined if isinstance(k, str)}
            if call[1] in names:
                name = names[call[1]]
                layer, layer_loc = _section(self.ctx, defined, name, defined_loc)
                if "path" not in layer:
                    self.ctx.fail(layer_loc.child(layer, "path"), "missing; set it to the layer's folder.")
                return self.folder(layer["path"], layer_loc.child(layer, "path"), "path")
            known = f" (the layers here are {', '.join(names)})" if names else ""
            self.ctx.fail(loc, f"{_show(entry)} names no layer under layers{known}.")
        value = self.value(entry, loc)
        if isinstance(value, str) and value.startswith("arn:"):
            return self.arn_layer(loc, _show(entry) if value is entry else f"{_show(entry)} ({value!r})", value,
                                  "config")
        self.ctx.fail(loc, f"{_show(entry)} is neither a layer ARN nor {{Ref: <Name>LambdaLayer}} for a layer "
                           f"under layers; {self.layers_hint('config')}.")

    # ${...} variables

    def text(self, text: str, loc: _Loc) -> Any:
        """``text`` with its variables resolved; a value that is one variable keeps its type."""
        spans = [(start, end) for start, end in variable_spans(text) if self.is_variable(text[start + 2:end - 1])]
        if not spans:
            return text
        if spans == [(0, len(text))]:
            return self.variable(text, loc)
        parts, last = [], 0
        for start, end in spans:
            value = self.variable(text[start:end], loc)
            part = _stringify(value)
            if part is None:
                self.ctx.fail(loc, f"{text!r}: {text[start:end]} is {_kind(value)}, which cannot be part of text.")
            parts += [text[last:start], part]
            last = end
        return "".join([*parts, text[last:]])

    @staticmethod
    def is_variable(inner: str) -> bool:
        """Whether ``${inner}`` is the Serverless Framework's, not CloudFormation's (``${AWS::Region}``,
        ``${Name}``, ``${Name.Attribute}``, ``${!Literal}``, left for !Sub)."""
        return _CFN_SUB_VARIABLE.fullmatch(inner) is None

    def variable(self, variable: str, loc: _Loc) -> Any:
        """The value of ``${source:address, fallback, ...}``: the first source that has one."""
        value = self.first(variable, loc)
        if value is None:
            first = split_sources(variable[2:-1])[0]
            kind, _, address = first.partition(":")
            address = str(self.text(address.strip(), loc))
            why = {
                "env": f"the environment variable {address} is not set",
                "opt": f"the option {address} is not given ({self.ctx.hints.parameter.format(name=address)})",
                "self": f"there is no {address or '(empty)'} in this file",
            }.get(kind, "it has no value")
            fallback = f"${{{first}, 'default'}}"
            self.ctx.fail(loc, f"{variable} has no value: {why}; give a fallback ({fallback}) or "
                               f"{self.ctx.what_to_do(loc)}.")
        return value

    def first(self, variable: str, loc: _Loc) -> Any:
        """The value of the first source of ``variable`` that has one, or None."""
        self._depth += 1
        try:
            if self._depth > 20:
                self.ctx.fail(loc, f"{variable}: the variables refer to each other in a loop.")
            for index, source in enumerate(split_sources(variable[2:-1])):
                value = self.source(source, variable, loc, fallback=index > 0)
                if value is not None:
                    return value
            return None
        finally:
            self._depth -= 1

    def source(self, source: str, variable: str, loc: _Loc, fallback: bool) -> Any:
        if len(source) >= 2 and source[0] == source[-1] and source[0] in "'\"":
            return source[1:-1]
        if re.fullmatch(r"-?\d+", source):
            return int(source)
        if re.fullmatch(r"-?\d+\.\d*", source):
            return float(source)
        if source.startswith("${") and variable_spans(source) == [(0, len(source))]:
            return self.first(source, loc) if self.is_variable(source[2:-1]) else source
        match = _SOURCE.fullmatch(source)
        if match is None and fallback:
            return source  # a bare word: a literal fallback
        if match is None:
            self.ctx.unresolvable(loc, variable, f"{_VARIABLE_SOURCES}, not {source}")
        address = self.text(match.group(3).strip(), loc)  # ${self:custom.${opt:stage}}
        kind, address = match.group(1), str(address)
        if kind == "self":
            value: Any = self.ctx.doc
            for part in address.split(".") if address else []:
                if isinstance(value, dict):
                    value = value.get(part)
                elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                    value = value[int(part)]
                else:
                    value = None
            if value is None and address in _SLS_PROVIDER_DEFAULTS:
                return _SLS_PROVIDER_DEFAULTS[address]
            return self.text(value, loc) if isinstance(value, str) else value
        if kind == "env":
            return os.environ.get(address)
        if kind == "opt":
            return self.ctx.parameters.get(address)
        if kind == "sls" and address == "stage":
            return self.stage(loc)
        if kind == "aws" and address in ("region", "accountId"):
            pseudo = self.resolver.pseudo
            return pseudo["AWS::Region"] if address == "region" else pseudo["AWS::AccountId"]
        self.ctx.unresolvable(loc, variable, f"{_VARIABLE_SOURCES}, not {kind}{match.group(2) or ''}:")

    def stage(self, loc: _Loc) -> Any:
        if "stage" in self.ctx.parameters:
            return self.ctx.parameters["stage"]
        if self.provider.get("stage") is not None:
            return self.value(self.provider["stage"], self.provider_loc.child(self.provider, "stage"))
        return "dev"
