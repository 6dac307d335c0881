"""CloudFormation values without AWS: the YAML tags (``!Ref`` ...), where a value is in its file
(:class:`_Loc`), and the intrinsic functions evaluated as far as they can be locally (:class:`_Resolver`).
Used by :mod:`lambdasim._templates` for SAM templates and the ``resources`` of Serverless configs."""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, Protocol

from lambdasim._source import Mark, SourceError, YamlMap, YamlSeq


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


class Stack(Protocol):
    """The template's resources as created (by :mod:`lambdasim._template_resources`): what ``!Ref`` and
    ``!GetAtt`` of a resource give. None: not known, and ``why(...)`` says why."""

    name: str
    """The stack's name: what ``AWS::StackName`` gives."""

    def ref(self, logical_id: str) -> str | None: ...

    def attribute(self, logical_id: str, attribute: str) -> str | None: ...

    def why(self, logical_id: str, attribute: str | None) -> str: ...


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


_NO_VALUE = object()  # !Ref AWS::NoValue: the property (or variable) is left out


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
    stack: Stack | None = None
    """The template's resources, created: !Ref and !GetAtt of them resolve (else they cannot)."""

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
        if ctx.stack is not None:
            self.pseudo["AWS::StackName"] = ctx.stack.name
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
        if method is None or (name == "Fn::GetAtt" and self.ctx.stack is None):
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
        stack = self.ctx.stack
        if stack is not None and (name in self.resources or stack.ref(name) is not None):
            value = stack.ref(name)
            if value is None:
                self.ctx.unresolvable(loc, shown, stack.why(name, None))
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
            if "." in inner and inner not in self.pseudo and self.ctx.stack is not None:
                return self.attribute(inner.split(".", 1), loc, shown)
            if "." in inner and inner not in self.pseudo:
                self.ctx.unresolvable(loc, shown, f"${{{inner}}} is an attribute of a resource (like !GetAtt), "
                                                  "known only once deployed")
            value = self.ref(inner, loc, shown)
            if value is _NO_VALUE or isinstance(value, list):
                self.ctx.fail(loc, f"{shown}: ${{{inner}}} is not a single value.")
            return self.scalar(value, loc, shown)

        return re.sub(r"\$\{([^}]*)\}", substitute, template)

    def attribute(self, arg: Any, loc: _Loc, shown: str) -> str:
        """``!GetAtt Resource.Attribute`` of a created resource (only with a stack)."""
        assert self.ctx.stack is not None
        parts = self.args(arg, 2, loc, shown, "!GetAtt Resource.Attribute")
        name, attribute = parts[0], self.resolve(parts[1], loc, shown)
        if not isinstance(name, str) or not isinstance(attribute, str):
            self.ctx.fail(loc, f"{shown}: expected !GetAtt Resource.Attribute.")
        value = self.ctx.stack.attribute(name, attribute)
        if value is None:
            self.ctx.unresolvable(loc, shown, self.ctx.stack.why(name, attribute))
        return value

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
        "Fn::FindInMap": _find_in_map, "Fn::Base64": _base64, "Fn::If": _if, "Fn::GetAtt": attribute,
    }
