"""Functions defined in an AWS SAM template or a Serverless Framework config.

``load_function("template.yaml", "OrdersFunction")`` reads one function's settings
into a :class:`TemplateFunction`, whose ``deploy_kwargs()`` are the arguments of
``Simulator.deploy()``, so the template stays the one place where they are written.

Only what is known without AWS is resolved: ``!Ref`` to a parameter's Default or to
a pseudo parameter (``AWS::Region`` ...), ``!Sub``, ``!Join``, ``!Select``,
``!Split``, ``!FindInMap``, ``!Base64``, ``!If`` on conditions over parameters; in
Serverless configs ``${self:...}``, ``${env:...}``, ``${opt:...}``, ``${sls:stage}``
and ``${aws:region|accountId}``, with fallbacks. Anything else (``!GetAtt``,
``!ImportValue``, ``${ssm:...}`` ...) is a SourceError naming the file, the line, the
key and what to do instead.

Folders are mounted as they are: point at ``.aws-sam/build/template.yaml`` after
``sam build`` to run the built artifacts (with their installed requirements).
"""

from __future__ import annotations

import base64
import datetime
import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from lambdasim._model import RESERVED_ENV
from lambdasim._sls_text import split_sources, variable_spans
from lambdasim._source import Mark, SourceError, YamlMap, YamlSeq, load_yaml, read_text

__all__ = ["PYTHON_HINTS", "Hints", "TemplateFunction", "load_function"]


class FunctionNotFound(SourceError):
    """The template defines no function of the name asked for (or, asked for none, not exactly one);
    the message lists those it defines."""


@dataclass(frozen=True)
class Hints:
    """How the one asking sets what a template does not say usably: the "what to do" of load_function()'s
    errors, in the words of the front end (Python, the command line, a scenario). Each is a format string
    of ``name`` (the variable, parameter or option); ``{{`` and ``}}`` are braces."""

    environment: str
    """How to set the environment variable ``name``, e.g. ``set the value with --env {name}=...``."""
    parameter: str
    """How to give the SAM parameter or Serverless option ``name``, e.g. ``pass --parameter-overrides {name}=...``."""
    layers: str
    """How to give local layer folders instead of the template's, e.g. ``pass --layer FOLDER``."""
    function: str
    """How to name the function to read, when none was named and the template defines several."""


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
    """The logical ID (SAM) or the key under ``functions`` (Serverless)."""
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

    def deploy_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``Simulator.deploy(**kwargs)`` for this function."""
        return {
            "handler": self.handler, "code_dir": self.code_dir, "name": self.name, "memory_mb": self.memory_mb,
            "timeout_s": self.timeout_s, "ephemeral_storage_mb": self.ephemeral_storage_mb,
            "environment": dict(self.environment), "reserved_concurrency": self.reserved_concurrency,
            "layers": list(self.layers),
        }


def load_function(path: str | os.PathLike[str], function: str | None, *,
                  environment: Mapping[str, str] | None = None,
                  layers: Sequence[str | os.PathLike[str]] | None = None,
                  parameters: Mapping[str, Any] | None = None,
                  region: str = "us-east-1", hints: Hints = PYTHON_HINTS) -> TemplateFunction:
    """Read ``function`` from a SAM template or a Serverless config (or a folder holding one).

    Args:
        path: ``template.yaml`` / ``serverless.yml``, or the folder that holds it.
        function: the function's logical ID (SAM) or its key under ``functions`` (Serverless);
            None for the only function the file defines (like ``sam local invoke`` without one).
        environment: variables that replace or add to the template's; the template's values
            for these keys are not resolved (so an unresolvable ``!GetAtt`` can be set here).
        layers: local layer folders that replace the template's ``Layers`` (e.g. for layer ARNs).
        parameters: SAM parameter values (like ``sam --parameter-overrides``), or Serverless
            CLI options for ``${opt:...}`` (``{"stage": "prod"}``).
        region: what ``AWS::Region`` and ``${aws:region}`` resolve to.
        hints: how errors say to set what the template cannot (the caller's own words for the
            overrides above); the default names these keyword arguments.
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
                   tuple(os.path.abspath(os.fspath(p)) for p in layers) if layers is not None else None, hints)
    return _Sam(ctx).load(function) if sam else _Serverless(ctx).load(function)


# -- YAML with line numbers and CloudFormation tags ---------------------------------------

_SAM_KEYS = ("AWSTemplateFormatVersion", "Transform", "Resources")
_SLS_KEYS = ("service", "provider", "functions")
_CANDIDATES = ("template.yaml", "template.yml", "serverless.yml", "serverless.yaml")


@dataclass(frozen=True, eq=False)
class _Intrinsic:
    """A CloudFormation short-form tag: ``!Ref X`` is ``_Intrinsic("Ref", "X", line)``."""

    name: str
    value: Any
    line: int


def _tag(suffix: str, value: Any, mark: Mark) -> _Intrinsic:
    """``!Ref X``, ``!GetAtt A.B``, ``!Sub ...`` ... as the intrinsic function they stand for."""
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return _Intrinsic(name, value, mark.line)


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

_NO_VALUE = object()  # !Ref AWS::NoValue: the property (or variable) is left out
_PY_RUNTIME = re.compile(r"python3\.\d+")
_ENV_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
_MEMORY = (128, 10240, "Lambda allows 128 to 10240 MB")
_TIMEOUT = (1, 900, "Lambda allows 1 to 900 seconds")
_STORAGE = (512, 10240, "Lambda allows 512 to 10240 MB")
_CONCURRENCY = (0, 2**31 - 1, "use a whole number >= 0")
_RESOLVED = ("lambdasim resolves !Ref to pseudo parameters and to parameters' Defaults, !Sub, !Join, !Select, "
             "!Split, !FindInMap, !Base64 and !If")


@dataclass(frozen=True)
class _Loc:
    """Where a value is: its key path, its line, and what to do if it cannot be used."""

    key: str
    line: int
    hint: str = ""

    def child(self, container: YamlMap, key: str, hint: str | None = None) -> _Loc:
        # A key that is not there is reported at its would-be parent's key.
        return _Loc(f"{self.key}.{key}", container.key_line(key, self.line), hint or self.hint)

    def item(self, container: YamlSeq, index: int) -> _Loc:
        line = container.item_line(index)
        return _Loc(f"{self.key}[{index}]", line, self.hint)


class _Shown(str):
    """A value as written in the template, for messages."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _plain(value: Any) -> Any:
    if isinstance(value, _Intrinsic):
        return _Shown(_show(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    """``value`` as written: ``!GetAtt Table.Arn``, ``'nodejs20.x'``, ``{'Bucket': 'b'}``."""
    if isinstance(value, _Intrinsic):
        tag = "!" + value.name.removeprefix("Fn::")
        arg = value.value
        if value.name == "Fn::GetAtt" and isinstance(arg, list) and all(isinstance(a, str) for a in arg):
            return f"{tag} {'.'.join(arg)}"
        if isinstance(arg, str) and re.fullmatch(r"[\w:.-]+", arg):
            return f"{tag} {arg}"
        return f"{tag} {_plain(arg)!r}"
    return repr(_plain(value))


def _stringify(value: Any) -> str | None:
    """A scalar as CloudFormation turns it into a string (None if it is not a scalar)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float, datetime.date)):
        return str(value)
    return None


def _kind(value: Any) -> str:
    if value is _NO_VALUE:
        return "!Ref AWS::NoValue"
    if isinstance(value, _Intrinsic):
        return _show(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else repr(value)


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    """(name, argument) of an intrinsic function, short (``!Ref X``) or long (``{Ref: X}``) form."""
    if isinstance(value, _Intrinsic):
        return value.name, value.value
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if isinstance(key, str) and (key == "Ref" or key.startswith("Fn::")):
            return key, arg
    return None


def _pseudo(region: str) -> dict[str, Any]:
    from lambdasim._model import ACCOUNT_ID  # the account the simulator reports

    partition, suffix = "aws", "amazonaws.com"
    if region.startswith("cn-"):
        partition, suffix = "aws-cn", "amazonaws.com.cn"
    elif region.startswith("us-gov-"):
        partition = "aws-us-gov"
    return {
        "AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": partition, "AWS::URLSuffix": suffix,
        "AWS::StackName": "lambdasim",
        "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{ACCOUNT_ID}:stack/lambdasim/"
                        "00000000-0000-4000-8000-000000000000",
        "AWS::NotificationARNs": [], "AWS::NoValue": _NO_VALUE,
    }


@dataclass
class _Context:
    display: str
    folder: str
    doc: YamlMap
    region: str
    parameters: dict[str, Any]
    environment: dict[str, str] | None
    layers: tuple[str, ...] | None
    hints: Hints
    hint: str = "write the value itself in the template, or !Ref a parameter that has a Default"

    def fail(self, loc: _Loc, message: str) -> NoReturn:
        raise SourceError(self.display, loc.line, loc.key, message)

    def unresolvable(self, loc: _Loc, shown: str, reason: str) -> NoReturn:
        self.fail(loc, f"{shown} cannot be resolved locally: {reason}; {self.what_to_do(loc)}.")

    def what_to_do(self, loc: _Loc) -> str:
        return loc.hint or self.hint


def _section(ctx: _Context, parent: YamlMap, key: str, loc: _Loc | None) -> tuple[YamlMap, _Loc]:
    """``parent[key]`` as a mapping (empty if absent or null), and its location."""
    where = loc.child(parent, key) if loc is not None else _Loc(key, parent.key_line(key, parent.line))
    value = parent.get(key)
    if value is None:
        return YamlMap(parent.file, Mark(where.line, 1)), where
    if not isinstance(value, YamlMap) or _intrinsic(value) is not None:
        ctx.fail(where, f"expected a mapping, found {_kind(value)}.")
    return value, where


def _mapping(parent: YamlMap, key: str) -> YamlMap:
    value = parent.get(key)
    return value if isinstance(value, YamlMap) else YamlMap(parent.file)


class _Resolver:
    """Evaluates CloudFormation intrinsic functions as far as they can be without AWS."""

    def __init__(self, ctx: _Context, text: Callable[[str, _Loc], Any] | None = None) -> None:
        doc = ctx.doc
        self.ctx = ctx
        self.text = text
        self.pseudo = _pseudo(ctx.region)
        self.parameters = _mapping(doc, "Parameters")
        self.mappings = _mapping(doc, "Mappings")
        self.conditions = _mapping(doc, "Conditions")
        self.resources = _mapping(doc, "Resources")
        self._evaluating: list[str] = []

    def resolve(self, value: Any, loc: _Loc, shown: str | None = None) -> Any:
        """``value`` with its intrinsic functions evaluated (``shown``: the whole value, for messages)."""
        shown = shown or _show(value)
        if isinstance(value, str):
            return self.text(value, loc) if self.text is not None else value
        call = _intrinsic(value)
        if call is None:
            return value
        name, arg = call
        method = self._functions.get(name)
        if method is None:
            this = "it" if _show(value) == shown else _show(value)  # which part, when it is inside another
            reasons = {
                "Fn::GetAtt": f"{this} is an attribute of a resource, known only once deployed",
                "Fn::ImportValue": f"{this} is an export of another stack",
                "Fn::GetAZs": f"{this}: the availability zones come from AWS",
            }
            self.ctx.unresolvable(loc, shown, reasons.get(name, f"{_RESOLVED}, not {name.removeprefix('Fn::')}"))
        return method(self, arg, loc, shown)

    def scalar(self, value: Any, loc: _Loc, shown: str) -> str:
        """``value`` resolved, as text."""
        text = _stringify(self.resolve(value, loc, shown))
        if text is None:
            self.ctx.fail(loc, f"{shown}: expected a string, found {_kind(self.resolve(value, loc, shown))}.")
        return text

    def args(self, arg: Any, count: int, loc: _Loc, shown: str, form: str) -> list[Any]:
        if isinstance(arg, _Intrinsic) or _intrinsic(arg) is not None:
            arg = self.resolve(arg, loc, shown)
        if not isinstance(arg, list) or len(arg) != count:
            self.ctx.fail(loc, f"{shown}: expected {form}.")
        return list(arg)

    def ref(self, name: Any, loc: _Loc, shown: str) -> Any:
        if not isinstance(name, str):
            self.ctx.fail(loc, f"{shown}: !Ref takes a name, found {_kind(name)}.")
        if name in self.pseudo:
            return self.pseudo[name]
        parameter = self.parameters.get(name)
        if name in self.ctx.parameters or isinstance(parameter, YamlMap):
            if name in self.ctx.parameters:
                value = self.ctx.parameters[name]
            else:
                value = parameter.get("Default") if isinstance(parameter, YamlMap) else None
            if value is None:
                self.ctx.unresolvable(loc, shown, f"parameter {name!r} has no Default (give it one, or "
                                                  f"{self.ctx.hints.parameter.format(name=name)})")
            kind = parameter.get("Type") if isinstance(parameter, YamlMap) else None
            if isinstance(kind, str) and (kind == "CommaDelimitedList" or kind.startswith("List<")):
                return [part.strip() for part in str(value).split(",")]
            return value
        if name in self.resources:
            kind = self.resources[name].get("Type") if isinstance(self.resources[name], YamlMap) else None
            self.ctx.unresolvable(loc, shown, f"{name!r} is a resource ({kind}), whose name or ARN exists only "
                                              "once deployed")
        self.ctx.unresolvable(loc, shown, f"there is no parameter or resource {name!r} in the template")

    def _sub(self, arg: Any, loc: _Loc, shown: str) -> str:
        variables: Any = YamlMap()
        if isinstance(arg, list):
            arg = self.args(arg, 2, loc, shown, "!Sub 'text' or !Sub ['text', {Name: value}]")
            arg, variables = arg
        if not isinstance(arg, str) or not isinstance(variables, dict):
            self.ctx.fail(loc, f"{shown}: expected !Sub 'text' or !Sub ['text', {{Name: value}}].")
        template = self.text(arg, loc) if self.text is not None else arg
        if not isinstance(template, str):
            self.ctx.fail(loc, f"{shown}: expected text, found {_kind(template)}.")

        def substitute(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            inner = inner.strip()
            if inner in variables:
                return self.scalar(variables[inner], loc, shown)
            if "." in inner and inner not in self.pseudo:
                self.ctx.unresolvable(loc, shown, f"${{{inner}}} is an attribute of a resource (like !GetAtt), "
                                                  "known only once deployed")
            value = self.ref(inner, loc, shown)
            if value is _NO_VALUE or isinstance(value, list):
                self.ctx.fail(loc, f"{shown}: ${{{inner}}} is not a single value.")
            return self.scalar(value, loc, shown)

        return re.sub(r"\$\{([^}]*)\}", substitute, template)

    def _join(self, arg: Any, loc: _Loc, shown: str) -> str:
        delimiter, items = self.args(arg, 2, loc, shown, "!Join [delimiter, [values]]")
        items = self.resolve(items, loc, shown)
        if not isinstance(delimiter, str) or not isinstance(items, list):
            self.ctx.fail(loc, f"{shown}: expected !Join [delimiter, [values]].")
        values = [self.resolve(item, loc, shown) for item in items]
        return str(delimiter).join(self.scalar(v, loc, shown) for v in values if v is not _NO_VALUE)

    def _select(self, arg: Any, loc: _Loc, shown: str) -> Any:
        index, items = self.args(arg, 2, loc, shown, "!Select [index, [values]]")
        index = self.resolve(index, loc, shown)
        items = self.resolve(items, loc, shown)
        if isinstance(index, str) and index.isdigit():
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, int) or not isinstance(items, list):
            self.ctx.fail(loc, f"{shown}: expected !Select [index, [values]].")
        if not 0 <= index < len(items):
            self.ctx.fail(loc, f"{shown}: index {index} is out of range for {len(items)} values.")
        return self.resolve(items[index], loc, shown)

    def _split(self, arg: Any, loc: _Loc, shown: str) -> list[str]:
        delimiter, source = self.args(arg, 2, loc, shown, "!Split [delimiter, 'text']")
        if not isinstance(delimiter, str) or not delimiter:
            self.ctx.fail(loc, f"{shown}: expected !Split [delimiter, 'text'].")
        return self.scalar(source, loc, shown).split(delimiter)

    def _find_in_map(self, arg: Any, loc: _Loc, shown: str) -> Any:
        if isinstance(arg, list) and len(arg) == 4:  # AWS::LanguageExtensions' {DefaultValue: ...}
            arg = arg[:3]
        keys = [self.scalar(key, loc, shown) for key in self.args(arg, 3, loc, shown,
                                                                  "!FindInMap [MapName, TopKey, SecondKey]")]
        value: Any = self.mappings
        for depth, key in enumerate(keys):
            if not isinstance(value, dict) or key not in value:
                where = "Mappings" + "".join(f".{k}" for k in keys[:depth])
                self.ctx.fail(loc, f"{shown}: {where} has no key {key!r}.")
            value = value[key]
        return self.resolve(value, loc, shown)

    def _base64(self, arg: Any, loc: _Loc, shown: str) -> str:
        return base64.b64encode(self.scalar(arg, loc, shown).encode()).decode()

    def _if(self, arg: Any, loc: _Loc, shown: str) -> Any:
        condition, if_true, if_false = self.args(arg, 3, loc, shown, "!If [Condition, value_if_true, value_if_false]")
        return self.resolve(if_true if self.condition(condition, loc, shown) else if_false, loc, shown)

    def condition(self, name: Any, loc: _Loc, shown: str) -> bool:
        if not isinstance(name, str) or name not in self.conditions:
            self.ctx.fail(loc, f"{shown}: there is no condition {name!r} in Conditions.")
        if name in self._evaluating:
            self.ctx.fail(loc, f"{shown}: the conditions {' -> '.join([*self._evaluating, name])} form a loop.")
        self._evaluating.append(name)
        try:
            return self._truth(self.conditions[name], loc, shown)
        finally:
            self._evaluating.pop()

    def _truth(self, value: Any, loc: _Loc, shown: str) -> bool:
        call = _intrinsic(value)
        if call is None and isinstance(value, dict) and list(value) == ["Condition"]:
            call = ("Condition", value["Condition"])
        name, arg = call if call is not None else ("", value)
        if name == "Condition":
            return self.condition(arg, loc, shown)
        if name == "Fn::Equals":
            left, right = self.args(arg, 2, loc, shown, "!Equals [value, value]")
            return self.scalar(left, loc, shown) == self.scalar(right, loc, shown)
        if name == "Fn::Not":
            return not self._truth(self.args(arg, 1, loc, shown, "!Not [condition]")[0], loc, shown)
        if name in ("Fn::And", "Fn::Or") and isinstance(arg, list):
            truths = [self._truth(item, loc, shown) for item in arg]
            return all(truths) if name == "Fn::And" else any(truths)
        self.ctx.unresolvable(loc, shown, f"the condition {_show(value)} is not built of !Equals, !And, !Or, !Not "
                                          "and !Condition")

    _functions: ClassVar[dict[str, Callable[[_Resolver, Any, _Loc, str], Any]]] = {
        "Ref": ref, "Fn::Sub": _sub, "Fn::Join": _join, "Fn::Select": _select, "Fn::Split": _split,
        "Fn::FindInMap": _find_in_map, "Fn::Base64": _base64, "Fn::If": _if,
    }


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

    def handler(self, value: Any, loc: _Loc) -> str:
        if value is None:
            self.ctx.fail(loc, "missing; set it to module.function, e.g. app.handler.")
        handler = self.string(value, loc, "a handler")
        module, _, function = handler.rpartition(".")
        if not module or not function:
            self.ctx.fail(loc, f"{handler!r} is not a handler; write it as module.function, e.g. app.handler.")
        return handler

    def runtime(self, value: Any, loc: _Loc) -> str:
        if value is None:
            self.ctx.fail(loc, "missing; set it to a Python runtime (python3.9 ... python3.13).")
        runtime = self.value(value, loc)
        if not isinstance(runtime, str) or not _PY_RUNTIME.fullmatch(runtime):
            shown = _show(value) if runtime is value else f"{_show(value)} ({runtime!r})"
            self.ctx.fail(loc, f"{shown} is not a Python runtime; lambdasim runs Python functions "
                               "(python3.9 ... python3.13).")
        return runtime

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
              layers: Callable[[], tuple[str, ...]]) -> TemplateFunction:
        return TemplateFunction(
            name=name, handler=handler, code_dir=code_dir, runtime=runtime, memory_mb=memory,
            timeout_s=float(timeout), ephemeral_storage_mb=storage, environment=environment,
            reserved_concurrency=concurrency, layers=self.ctx.layers if self.ctx.layers is not None else layers(),
            source=f"{self.ctx.display}:{line}",
        )

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

    def arn_layer(self, loc: _Loc, shown: str) -> NoReturn:
        self.ctx.fail(loc, f"{shown} is a layer ARN; lambdasim can only mount local layers (a layer defined in "
                           f"this file from a local folder). Put the layer's content in a folder and "
                           f"{self.layers_hint('template')}.")


# -- AWS SAM / CloudFormation -------------------------------------------------------------------

_SAM_FUNCTION = "AWS::Serverless::Function"
_CFN_FUNCTION = "AWS::Lambda::Function"
_LAYER_CONTENT = {"AWS::Serverless::LayerVersion": "ContentUri", "AWS::Lambda::LayerVersion": "Content"}


class _Sam(_Reader):
    def __init__(self, ctx: _Context) -> None:
        super().__init__(ctx)
        self.resolver = _Resolver(ctx)

    def load(self, function: str | None) -> TemplateFunction:
        ctx = self.ctx
        resources, _ = _section(ctx, ctx.doc, "Resources", None)
        functions = {name: resources.key_line(name, 0) for name, res in resources.items()
                     if isinstance(res, YamlMap) and res.get("Type") in (_SAM_FUNCTION, _CFN_FUNCTION)}
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
        if self.value(package, package_loc) == "Image" or "ImageUri" in found or (
                isinstance(code, dict) and "ImageUri" in code):
            ctx.fail(res_loc, "it is a container image function (PackageType: Image); lambdasim runs .zip "
                              "functions only: define it with Handler, Runtime and CodeUri.")
        if "InlineCode" in found or (isinstance(code, dict) and "ZipFile" in code):
            inline_loc = get("InlineCode")[1] if "InlineCode" in found else code_loc
            ctx.fail(inline_loc, "inline code is not supported; move the code to a file in a folder and set "
                                 f"{'CodeUri' if sam else 'Code'} to that folder.")
        if code is None and not sam:
            ctx.fail(code_loc, "missing; set Code to the folder that holds the handler's module.")
        code_dir = self.folder("." if code is None else code, code_loc, "CodeUri" if sam else "Code")
        handler = self.handler(*get("Handler"))
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

        return self.build(function, res_loc.line, handler, code_dir, runtime, memory, timeout, storage, environment,
                          reserved, layers)

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
            self.arn_layer(loc, shown)
        self.ctx.fail(loc, f"{_show(entry)} is neither a layer ARN nor a !Ref to a layer in this template.")


# -- Serverless Framework ------------------------------------------------------------------------

_VARIABLE_SOURCES = "lambdasim resolves ${self:...}, ${env:...}, ${opt:...}, ${sls:stage}, ${aws:region|accountId}"


_SOURCE = re.compile(r"([a-zA-Z][\w]*)(\([^)]*\))?:(.*)", re.DOTALL)
_CFN_SUB_VARIABLE = re.compile(r"\s*(AWS::\w+|[A-Za-z0-9]+(\.[\w.]+)?|!.*)\s*", re.DOTALL)


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

        handler = self.handler(*get("handler"))
        runtime, runtime_loc = get("runtime", provider_key="runtime")
        if runtime is None:
            ctx.fail(self.provider_loc.child(self.provider, "runtime"),
                     "missing; set provider.runtime (or the function's runtime) to a Python runtime, e.g. "
                     "python3.12 (the Serverless Framework's default is Node.js).")
        runtime = self.runtime(runtime, runtime_loc)
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
            return tuple(self.layer(entry, loc.item(entries, i)) for i, entry in enumerate(entries))

        return self.build(function, fn_loc.line, handler, ctx.folder, runtime, memory, timeout, storage,
                          environment, reserved, layers)

    def layer(self, entry: Any, loc: _Loc) -> str:
        loc = _Loc(loc.key, loc.line, self.layers_hint("config"))
        call = _intrinsic(entry)
        if call is not None and call[0] == "Ref" and isinstance(call[1], str):
            defined, defined_loc = _section(self.ctx, self.ctx.doc, "layers", None)
            # The Serverless Framework names a layer `name`'s resource <Name>LambdaLayer.
            names = {(k[:1].upper() + k[1:]).replace("-", "Dash").replace("_", "Underscore") + "LambdaLayer": k
                     for k in defined if isinstance(k, str)}
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
            self.arn_layer(loc, _show(entry) if value is entry else f"{_show(entry)} ({value!r})")
        self.ctx.fail(loc, f"{_show(entry)} is neither a layer ARN nor {{Ref: <Name>LambdaLayer}} for a layer "
                           "under layers.")

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
