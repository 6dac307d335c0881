"""Declarative YAML scenarios: loaded and validated with the file and line of every
mistake, then run step by step through the public :class:`Simulator` API.

::

    name: lost-tmp state
    simulator: {routing: fresh}
    steps:
      - deploy: {handler: app.handler, code_dir: handlers/lost_tmp}
      - invoke: {event: {action: put}, as: put}
      - expect: {invocation: put, cold_start: true}

Each step type is a frozen dataclass registered under its YAML name with
``@step("name")``. ``from_yaml(node)`` validates the step's settings and builds it;
``check(scope)`` validates, still at load time, what it refers to in earlier steps
(functions, named invocations); ``run(ctx)`` does it, and raises
:class:`ExpectationFailed` (or calls ``ctx.fail``) when what it checks is not so.
The format is documented in ``scenarios/README.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

from lambdasim._errors import ConfigError, LambdaSimError
from lambdasim._model import ROUTING, FunctionConfig
from lambdasim._simulator import Function, Invocation, Simulator

__all__ = [
    "STEPS",
    "ExpectationFailed",
    "Node",
    "RunContext",
    "Scenario",
    "ScenarioError",
    "ScenarioFailure",
    "ScenarioResult",
    "Scope",
    "Step",
    "StepResult",
    "load_scenario",
    "run_file",
    "step",
]

LOG_TAIL_LINES = 10
_SHOW_CHARS = 300

# -- errors -------------------------------------------------------------------------------


class ScenarioError(ConfigError):
    """A scenario file is not valid: ``file:line: key: reason``.

    ``line`` counts from 1 (None when the file could not be read); ``key`` is the
    path of the setting in the file, such as ``steps[2].invoke.count`` (None when the
    mistake is not in one setting).
    """

    def __init__(self, file: str, line: int | None, key: str | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.file, self.line, self.key, self.reason)


class ScenarioFailure(AssertionError):
    """An expectation of a scenario did not hold: ``file:line: step N (kind): reason``.

    ``step_index`` is the 0-based index into ``steps`` (the message counts steps from 1);
    ``result`` holds what ran up to and including the failed step.
    """

    def __init__(self, file: str, line: int, step_index: int, step: str, reason: str,
                 result: ScenarioResult | None = None) -> None:
        self.file = file
        self.line = line
        self.step_index = step_index
        self.step = step
        self.reason = reason
        self.result = result
        super().__init__(f"{file}:{line}: step {step_index + 1} ({step}): {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.file, self.line, self.step_index, self.step, self.reason, self.result)


class ExpectationFailed(Exception):
    """Raised by a step's ``run`` when what it checks is not so; the runner adds the file, line and step."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- YAML with line numbers ---------------------------------------------------------------


class _Map(dict[Any, Any]):
    """A YAML mapping that remembers where it, each key and each value start (lines count from 1)."""

    line: int
    key_lines: dict[Any, int]
    value_lines: dict[Any, int]
    duplicates: list[tuple[Any, int, int]]  # (key, its line, line of the first occurrence)


class _Seq(list[Any]):
    """A YAML sequence that remembers where it and each item start."""

    line: int
    item_lines: list[int]


_TAG = "tag:yaml.org,2002:"
# YAML 1.2's core schema, as JSON reads: only true/false are booleans, numbers are written
# as in JSON, and dates, yes/no, on/off, 0777 and 1:20 stay strings.
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)$")
_LOADER: Any = None


def _loader() -> Any:
    """The SafeLoader subclass, built on first use so that importing lambdasim needs no PyYAML."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - PyYAML is installed with lambdasim
        raise LambdaSimError("Scenario files need PyYAML: pip install pyyaml") from None

    def construct_map(loader: Any, node: Any) -> Iterator[_Map]:
        data = _Map()
        data.line = node.start_mark.line + 1
        data.key_lines, data.value_lines, data.duplicates = {}, {}, []
        yield data
        explicit = {id(key) for key, _ in node.value if key.tag != _TAG + "merge"}
        loader.flatten_mapping(node)  # applies "<<" merge keys; explicit keys override merged ones
        first_explicit: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=False)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found an unhashable key",
                    key_node.start_mark) from None
            line = key_node.start_mark.line + 1
            if id(key_node) in explicit:
                if key in first_explicit:
                    data.duplicates.append((key, line, first_explicit[key]))
                    continue
                first_explicit[key] = line
            data[key] = loader.construct_object(value_node, deep=False)
            data.key_lines[key] = line
            data.value_lines[key] = value_node.start_mark.line + 1

    def construct_seq(loader: Any, node: Any) -> Iterator[_Seq]:
        data = _Seq()
        data.line = node.start_mark.line + 1
        data.item_lines = [child.start_mark.line + 1 for child in node.value]
        yield data
        data.extend(loader.construct_object(child, deep=False) for child in node.value)

    dropped = {_TAG + "bool", _TAG + "int", _TAG + "float", _TAG + "timestamp"}
    resolvers = {first: [(tag, rx) for tag, rx in pairs if tag not in dropped]
                 for first, pairs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    loader: Any = type("ScenarioLoader", (yaml.SafeLoader,), {"yaml_implicit_resolvers": resolvers})
    loader.add_implicit_resolver(_TAG + "bool", _BOOL, list("tTfF"))
    loader.add_implicit_resolver(_TAG + "int", _INT, list("-0123456789"))
    loader.add_implicit_resolver(_TAG + "float", _FLOAT, list("-0123456789"))
    loader.add_constructor(_TAG + "map", construct_map)
    loader.add_constructor(_TAG + "seq", construct_seq)
    _LOADER = loader
    return loader


def _parse_yaml(text: str, file: str) -> Any:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    try:
        return yaml.load(text, Loader=_loader())  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = f"not valid YAML: {e.problem or e.context}"
        if e.problem and e.context:
            started = f" on line {e.context_mark.line + 1}" if e.context_mark is not None else ""
            reason += f" ({e.context}{started})"
        raise ScenarioError(file, line, None, reason) from None
    except yaml.YAMLError as e:
        raise ScenarioError(file, None, None, f"not valid YAML: {e}") from None


# -- validated access to the parsed file ------------------------------------------------------

T = TypeVar("T")


def _show(value: Any) -> str:
    """A setting's value as a message shows it: strings quoted, null/true/false as YAML writes them."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(_plain(value))
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "…"


def _json(value: Any) -> str:
    """A JSON value (a payload, an error) as an expectation's message shows it."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "…"


def _plain(value: Any) -> Any:
    """The parsed value with plain dicts and lists (what the Simulator and the payloads hold)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _child_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _choices(names: Collection[str]) -> str:
    return ", ".join(names)


def _did_you_mean(word: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Node:
    """One value of the scenario file with where it is: ``file`` (as messages name it), ``line``
    (from 1) and ``path`` (``steps[2].invoke.count``); ``base`` is the folder that paths in the
    file are relative to. Steps validate their settings through it."""

    value: Any
    file: str
    line: int
    path: str
    base: Path = field(default=Path(), compare=False, repr=False)

    def _at(self, value: Any, line: int, path: str) -> Node:
        return Node(value, self.file, line, path, self.base)

    def error(self, reason: str) -> ScenarioError:
        return ScenarioError(self.file, self.line, self.path or None, reason)

    def child(self, key: Any) -> Node:
        """The node of a mapping's key or a sequence's index."""
        value = self.value
        if isinstance(value, _Map):
            return self._at(value[key], value.value_lines.get(key, self.line), _child_path(self.path, key))
        if isinstance(value, _Seq):
            return self._at(value[key], value.item_lines[key], _child_path(self.path, key))
        return self._at(value[key], self.line, _child_path(self.path, key))

    def key_node(self, key: Any) -> Node:
        """Like :meth:`child`, on the line of the key itself (for mistakes in the key)."""
        line = self.value.key_lines.get(key, self.line) if isinstance(self.value, _Map) else self.line
        return self._at(key, line, _child_path(self.path, key))

    def items(self) -> list[Node]:
        """The nodes of a sequence."""
        if not isinstance(self.value, list):
            raise self.error(f"{_show(self.value)} is not a list; write one item per line, each after '- '")
        return [self.child(i) for i in range(len(self.value))]

    def _check_mapping(self, what: str) -> _Map | dict[Any, Any]:
        value = self.value
        if not isinstance(value, dict):
            raise self.error(f"{_show(value)} is not a mapping; {what}")
        if isinstance(value, _Map) and value.duplicates:
            key, line, first = value.duplicates[0]
            raise ScenarioError(self.file, line, _child_path(self.path, key),
                                f"the key {key!r} is given twice (first on line {first}); keep one")
        for key in value:
            if not isinstance(key, str):
                raise self.key_node(key).error(f"the key {_show(key)} is not a string; quote it: '{key}'")
        return value

    def fields(self, allowed: Sequence[str], required: Sequence[str] = ()) -> Fields:
        """The settings of a mapping that may hold only ``allowed`` keys and must hold ``required`` ones."""
        value = self._check_mapping(f"use the keys {_choices(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.key_node(key).error(
                    f"unknown key {key!r}{_did_you_mean(key, allowed)}; allowed keys: {_choices(allowed)}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.error(f"missing key {missing[0]!r}; required: {_choices(required)}")
        return Fields(self)

    def as_str(self, hint: str) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.error(f"{_show(self.value)} is not a non-empty string; {hint}")
        return self.value

    def as_bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"{_show(self.value)} is not true or false")
        return self.value

    def as_whole(self, low: int | None, high: int | None = None, hint: str = "") -> int:
        """A whole number from ``low`` to ``high`` (None: no bound; the caller checks the range)."""
        value = self.value
        use = hint or (f"use a number from {low} to {high}" if high is not None else f"use a number >= {low}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"{_show(value)} is not a whole number; {use}")
        if low is not None and value < low:
            raise self.error(f"{value} is too small; {use}")
        if high is not None and value > high:
            raise self.error(f"{value} is too large; {use}")
        return value

    def as_number(self, hint: str) -> float:
        value = self.value
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise self.error(f"{_show(value)} is not a number; {hint}")
        return float(value)

    def as_str_map(self, hint: str) -> dict[str, str]:
        value = self._check_mapping(hint)
        result: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(item, str):
                quoted = "true" if item is True else "false" if item is False else str(item)
                raise self.child(key).error(f"{_show(item)} is not a string; {hint}: quote it, '{quoted}'")
            result[key] = item
        return result

    def as_json(self) -> Any:
        """A JSON value (an event, an expected payload): plain dicts, lists, strings, numbers, booleans, null."""
        value = self.value
        if isinstance(value, dict):
            self._check_mapping("")
            return {key: self.child(key).as_json() for key in value}
        if isinstance(value, list):
            return [node.as_json() for node in self.items()]
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        raise self.error(f"{_show(value)} is not a JSON value; use strings, numbers, true, false, null, "
                         "lists and mappings")


class Fields:
    """The validated keys of one mapping: ``fields.get("count", lambda n: n.as_whole(1), 1)``."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def __contains__(self, key: str) -> bool:
        return key in self.node.value

    def __getitem__(self, key: str) -> Node:
        return self.node.child(key)

    def get(self, key: str, convert: Callable[[Node], T], default: T) -> T:
        return convert(self.node.child(key)) if key in self.node.value else default

    def optional(self, key: str, convert: Callable[[Node], T]) -> T | None:
        """``convert`` the value, or None when the key is absent or null."""
        if key not in self.node.value or self.node.value[key] is None:
            return None
        return convert(self.node.child(key))


# -- steps ------------------------------------------------------------------------------

_NOWHERE = Node(None, "<python>", 0, "")


@dataclass(frozen=True)
class Step:
    """One step of a scenario; subclasses are registered with :func:`step`.

    ``at`` is the step's settings in the file (its line is the step's line); steps built
    in Python get a placeholder.
    """

    kind: ClassVar[str] = ""
    at: Node = field(default=_NOWHERE, kw_only=True, compare=False, repr=False)

    @classmethod
    def from_yaml(cls, node: Node) -> Step:
        """Validate the settings in ``node`` (a mapping, possibly empty) and build the step."""
        raise NotImplementedError

    def check(self, scope: Scope) -> None:
        """Validate references to earlier steps, and record what this step adds, at load time."""

    def run(self, ctx: RunContext) -> str | None:
        """Do the step; return a one-line summary for the result, or None."""
        raise NotImplementedError

    @property
    def line(self) -> int:
        return self.at.line

    def setting(self, key: str) -> Node:
        """The node of one of this step's settings (the step's node when the key is absent)."""
        value = self.at.value
        return self.at.child(key) if isinstance(value, dict) and key in value else self.at


STEPS: dict[str, type[Step]] = {}
S = TypeVar("S", bound=type[Step])


def step(name: str) -> Callable[[S], S]:
    """Register a step type under its YAML name: ``@step("invoke")`` above ``@dataclass(frozen=True)``."""

    def register(cls: S) -> S:
        if name in STEPS:
            raise ValueError(f"a step named {name!r} is already registered ({STEPS[name].__qualname__})")
        cls.kind = name
        STEPS[name] = cls
        return cls

    return register


class Scope:
    """What earlier steps left, as far as it is known when the file is loaded."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionConfig] = {}
        self.invocations: dict[str, int] = {}  # name given with `as` -> index of its step
        self.invoked = False
        self.step_index = 0

    def function(self, current: Step, name: str | None) -> str:
        """The function ``name`` refers to (the only deployed one when None); raises ScenarioError."""
        if name is not None:
            if name not in self.functions:
                deployed = f"deployed: {_choices(self.functions)}" if self.functions else "none is deployed yet"
                raise current.setting("function").error(
                    f"no function {name!r} is deployed by an earlier step{_did_you_mean(name, self.functions)}; "
                    f"{deployed}")
            return name
        if len(self.functions) == 1:
            return next(iter(self.functions))
        if not self.functions:
            raise current.at.error("no function is deployed yet; add a deploy step before this one")
        raise current.at.error(f"{len(self.functions)} functions are deployed ({_choices(self.functions)}); "
                            "say which with function:")


def _code_dir(node: Node, base: Path) -> Path:
    text = node.as_str("use the folder of the handler's code, relative to this file")
    path = (base / text).resolve()
    if not path.is_dir():
        raise node.error(f"{text!r} is not a directory (looked for {path}); code_dir is relative to the "
                         "scenario file")
    return path


_ENV_HINT = "environment values are strings"


@dataclass(frozen=True)
class FunctionSettings:
    """The optional settings of deploy and redeploy; None leaves Simulator.deploy's default (or,
    in a redeploy, the current version's value)."""

    KEYS: ClassVar[tuple[str, ...]] = ("memory_mb", "timeout_s", "ephemeral_storage_mb", "environment",
                                       "reserved_concurrency", "keepalive_s", "layers")

    memory_mb: int | None = None
    timeout_s: float | None = None
    ephemeral_storage_mb: int | None = None
    environment: Mapping[str, str] | None = None
    reserved_concurrency: int | None = None
    keepalive_s: float | None = None
    layers: tuple[Path, ...] | None = None
    given: frozenset[str] = frozenset()  # keys present in the file, so that `reserved_concurrency: null` counts

    @classmethod
    def from_fields(cls, fields: Fields) -> FunctionSettings:
        base = fields.node.base
        whole = "use a whole number of MB"
        seconds = "use a number of seconds"
        return cls(
            memory_mb=fields.optional("memory_mb", lambda n: n.as_whole(None, hint=whole)),
            timeout_s=fields.optional("timeout_s", lambda n: n.as_number(seconds)),
            ephemeral_storage_mb=fields.optional("ephemeral_storage_mb", lambda n: n.as_whole(None, hint=whole)),
            environment=fields.optional("environment", lambda n: n.as_str_map(_ENV_HINT)),
            reserved_concurrency=fields.optional(
                "reserved_concurrency", lambda n: n.as_whole(0, hint="use null or a whole number >= 0")),
            keepalive_s=fields.optional("keepalive_s", lambda n: n.as_number(seconds)),
            layers=fields.optional("layers", lambda n: tuple(_code_dir(item, base) for item in n.items())),
            given=frozenset(k for k in cls.KEYS if k in fields),
        )

    def kwargs(self) -> dict[str, Any]:
        """The given settings, as keyword arguments of Simulator.deploy() and Function.redeploy()."""
        out: dict[str, Any] = {}
        for key in self.KEYS:
            value = getattr(self, key)
            if key in self.given and (value is not None or key == "reserved_concurrency"):
                out[key] = [str(p) for p in value] if key == "layers" else value
        return out


def _validate_config(current: Step, config: FunctionConfig) -> None:
    """FunctionConfig.validate(), reported at the line of the setting it rejects."""
    try:
        config.validate()
    except ConfigError as e:
        reason = str(e).removeprefix(f"Function {config.name!r}: ")
        for key in ("name", *FunctionSettings.KEYS):
            if re.search(rf"\b{key}[=\[]", reason) or (key == "environment" and "environment variables" in reason):
                raise current.setting(key).error(reason) from None
        raise current.at.error(reason) from None


@step("deploy")
@dataclass(frozen=True)
class Deploy(Step):
    """``deploy: {handler, code_dir, name, memory_mb, timeout_s, ...}``: Simulator.deploy()."""

    handler: str
    code_dir: Path
    name: str
    settings: FunctionSettings = FunctionSettings()

    @classmethod
    def from_yaml(cls, node: Node) -> Deploy:
        f = node.fields(("handler", "code_dir", "name", *FunctionSettings.KEYS), required=("handler", "code_dir"))
        handler = _handler(f["handler"])
        # Simulator.deploy's default name, made explicit so that later steps can refer to it.
        default_name = handler.rsplit(".", 1)[0].replace(".", "-").replace("/", "-")
        return cls(handler=handler, code_dir=_code_dir(f["code_dir"], node.base),
                   name=f.get("name", lambda n: n.as_str("use 1 to 64 letters, digits, '-' or '_'"), default_name),
                   settings=FunctionSettings.from_fields(f), at=node)

    def check(self, scope: Scope) -> None:
        if self.name in scope.functions:
            raise self.setting("name").error(
                f"a function named {self.name!r} is already deployed; use redeploy for a new version of it, "
                "or give this one another name:")
        config = FunctionConfig(name=self.name, handler=self.handler, code_dir=str(self.code_dir),
                                **self.settings.kwargs())
        _validate_config(self, config)
        scope.functions[self.name] = config

    def run(self, ctx: RunContext) -> str:
        fn = ctx.sim.deploy(self.handler, code_dir=self.code_dir, name=self.name, **self.settings.kwargs())
        return f"deployed {fn.name} version {fn.version}"


def _handler(node: Node) -> str:
    handler = node.as_str("use module.function, e.g. app.handler")
    if "." not in handler.strip("."):
        raise node.error(f"{handler!r} is not module.function; use e.g. app.handler")
    return handler


@step("redeploy")
@dataclass(frozen=True)
class Redeploy(Step):
    """``redeploy: {function, code_dir, handler, memory_mb, ...}``: Function.redeploy(), a new version."""

    function: str | None = None
    code_dir: Path | None = None
    handler: str | None = None
    settings: FunctionSettings = FunctionSettings()

    @classmethod
    def from_yaml(cls, node: Node) -> Redeploy:
        f = node.fields(("function", "code_dir", "handler", *FunctionSettings.KEYS))
        return cls(function=f.optional("function", _function_name),
                   code_dir=f.optional("code_dir", lambda n: _code_dir(n, node.base)),
                   handler=f.optional("handler", _handler), settings=FunctionSettings.from_fields(f), at=node)

    def check(self, scope: Scope) -> None:
        name = scope.function(self, self.function)
        changes = self.settings.kwargs()
        if self.code_dir is not None:
            changes["code_dir"] = str(self.code_dir)
        if self.handler is not None:
            changes["handler"] = self.handler
        if "layers" in changes:
            changes["layers"] = tuple(changes["layers"])
        config = dataclasses.replace(scope.functions[name], **changes)
        _validate_config(self, config)
        scope.functions[name] = config

    def run(self, ctx: RunContext) -> str:
        fn = ctx.function(self.function)
        changes = self.settings.kwargs()
        if self.handler is not None:
            changes["handler"] = self.handler
        version = fn.redeploy(code_dir=self.code_dir, **changes)
        return f"redeployed {fn.name} as version {version}"


def _function_name(node: Node) -> str:
    return node.as_str("use the name of a function deployed by an earlier step")


def _invocation_name(node: Node) -> str:
    name = node.as_str("use a name such as first")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise node.error(f"{name!r} is not a name; use letters, digits, '_', '-' or '.'")
    return name


def _template(value: Any, i: int) -> Any:
    """``"{i}"`` in the event's strings -> the iteration number (a value that is only "{i}" -> the number;
    keys stay strings)."""
    if isinstance(value, str):
        return i if value == "{i}" else value.replace("{i}", str(i))
    if isinstance(value, dict):
        return {k.replace("{i}", str(i)): _template(v, i) for k, v in value.items()}
    if isinstance(value, list):
        return [_template(v, i) for v in value]
    return value


@step("invoke")
@dataclass(frozen=True)
class Invoke(Step):
    """``invoke: {function, event, count, concurrency, as}``: ``count`` invocations, up to
    ``concurrency`` of them in flight; ``as`` names the last one for later expects."""

    function: str | None = None
    event: Any = dataclasses.field(default_factory=dict)
    count: int = 1
    concurrency: int = 1
    name: str | None = None

    @classmethod
    def from_yaml(cls, node: Node) -> Invoke:
        f = node.fields(("function", "event", "count", "concurrency", "as"))
        return cls(function=f.optional("function", _function_name), event=f.get("event", Node.as_json, {}),
                   count=f.get("count", lambda n: n.as_whole(1), 1),
                   concurrency=f.get("concurrency", lambda n: n.as_whole(1), 1),
                   name=f.optional("as", _invocation_name), at=node)

    def check(self, scope: Scope) -> None:
        scope.function(self, self.function)
        if self.name is not None:
            if self.name in scope.invocations:
                raise self.setting("as").error(
                    f"{self.name!r} already names the invocation of step {scope.invocations[self.name] + 1}; "
                    "use another name")
            scope.invocations[self.name] = scope.step_index
        scope.invoked = True

    def events(self) -> list[Any]:
        return [_template(self.event, i) for i in range(self.count)]

    def run(self, ctx: RunContext) -> str:
        fn = ctx.function(self.function)
        events = self.events()
        if self.concurrency == 1:
            invocations = [fn.invoke(event) for event in events]
        else:
            invocations = fn.invoke_many(events, concurrency=self.concurrency)
        ctx.record(invocations, self.name)
        cold = sum(1 for inv in invocations if inv.cold_start)
        errors = sum(1 for inv in invocations if inv.error is not None)
        return f"{len(invocations)} invocation(s) of {fn.name}: {cold} cold start(s), {errors} error(s)"


@step("scale_down")
@dataclass(frozen=True)
class ScaleDown(Step):
    """``scale_down: {function, keep}``: remove idle instances beyond the ``keep`` most recently used."""

    function: str | None = None
    keep: int = 0

    @classmethod
    def from_yaml(cls, node: Node) -> ScaleDown:
        f = node.fields(("function", "keep"))
        return cls(function=f.optional("function", _function_name), keep=f.get("keep", lambda n: n.as_whole(0), 0),
                   at=node)

    def check(self, scope: Scope) -> None:
        scope.function(self, self.function)

    def run(self, ctx: RunContext) -> str:
        fn = ctx.function(self.function)
        return f"removed {fn.scale_down(keep=self.keep)} instance(s) of {fn.name}"


# -- expectations ---------------------------------------------------------------------------


def _first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where two JSON values first differ, as ``.items[2]``; None when equal."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            if key not in actual:
                return f"{_child_path(path, key)} is missing"
            if key not in expected:
                return f"{_child_path(path, key)} is not expected"
            found = _first_difference(expected[key], actual[key], _child_path(path, key))
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            found = _first_difference(e, a, f"{path}[{i}]")
            if found:
                return found
        if len(expected) != len(actual):
            return f"{path or 'the list'} has {len(actual)} items, not {len(expected)}"
        return None
    if _same(expected, actual):
        return None
    return f"{path or 'the value'} is {_json(actual)}, not {_json(expected)}"


def _same(expected: Any, actual: Any) -> bool:
    """Equal as JSON values: true is not 1, 1 is 1.0."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_same(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
    return bool(expected == actual)


def _contains(expected: Any, actual: Any) -> bool:
    """Mappings: every expected key is there and holds a value that contains the expected one; else equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(v, actual[k]) for k, v in expected.items())
    return _same(expected, actual)


def _payload_mismatch(key: str, expected: Any, inv: Invocation, match: Callable[[Any, Any], bool],
                      what: str) -> str | None:
    if inv.error is not None:
        return f"{key}: expected {what}{_json(expected)}, got an error ({_error_line(inv.error)})"
    actual = inv.payload
    if match(expected, actual):
        return None
    reason = f"{key}: expected {what}{_json(expected)}, got {_json(actual)}"
    if isinstance(expected, (dict, list)) and isinstance(actual, type(expected)):
        if match is _contains:
            missing = [k for k in expected if k not in actual or not _contains(expected[k], actual[k])]
            reason += f" (differs at: {', '.join(map(str, missing))})"
        else:
            reason += f" (first difference: {_first_difference(expected, actual)})"
    return reason


def _error_line(error: Mapping[str, Any]) -> str:
    """``errorType: errorMessage`` (the stack trace is in the logs)."""
    message = str(error.get("errorMessage", "")).strip()
    if len(message) > _SHOW_CHARS:
        message = message[:_SHOW_CHARS] + "…"
    return f"{error.get('errorType')}: {message}" if message else str(error.get("errorType"))


class InvocationCheck:
    """One check of an expect on an invocation: ``verify`` returns why it fails, or None."""

    key: ClassVar[str]

    def verify(self, inv: Invocation) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True)
class PayloadEquals(InvocationCheck):
    key = "payload"
    expected: Any

    def verify(self, inv: Invocation) -> str | None:
        return _payload_mismatch(self.key, self.expected, inv, _same, "")


@dataclass(frozen=True)
class PayloadContains(InvocationCheck):
    key = "payload_contains"
    expected: Mapping[str, Any]

    def verify(self, inv: Invocation) -> str | None:
        return _payload_mismatch(self.key, self.expected, inv, _contains, "a mapping containing ")


@dataclass(frozen=True)
class ErrorMatches(InvocationCheck):
    """``error: {errorType: ...}``: the given keys of the error; ``error: null``: no error."""

    key = "error"
    expected: Mapping[str, Any] | None

    def verify(self, inv: Invocation) -> str | None:
        if self.expected is None:
            return None if inv.error is None else f"error: expected none, got {_json(inv.error)}"
        if inv.error is None:
            return f"error: expected {_json(self.expected)}, got none (payload {_json(inv.payload)})"
        if all(k in inv.error and _same(v, inv.error[k]) for k, v in self.expected.items()):
            return None
        return f"error: expected {_json(self.expected)}, got {_json(inv.error)}"


@dataclass(frozen=True)
class ColdStart(InvocationCheck):
    key = "cold_start"
    expected: bool

    def verify(self, inv: Invocation) -> str | None:
        if inv.cold_start is self.expected:
            return None
        return f"cold_start: expected {_json(self.expected)}, got {_json(inv.cold_start)} (instance {inv.instance_id})"


@dataclass(frozen=True)
class StatusCode(InvocationCheck):
    key = "status_code"
    expected: int

    def verify(self, inv: Invocation) -> str | None:
        if inv.status_code == self.expected:
            return None
        return f"status_code: expected {self.expected}, got {inv.status_code}"


@dataclass(frozen=True)
class LogsContain(InvocationCheck):
    key = "logs_contain"
    expected: str

    def verify(self, inv: Invocation) -> str | None:
        return None if self.expected in inv.logs else f"logs_contain: {self.expected!r} is not in the logs"


def _error_subset(node: Node) -> Mapping[str, Any] | None:
    if node.value is None:
        return None
    value = node.as_json()
    if not isinstance(value, dict) or not value:
        raise node.error(f"{_show(node.value)} is not a mapping of error keys; use e.g. {{errorType: "
                         "Runtime.ImportModuleError}, or null for no error")
    return dict(value)


def _mapping_json(node: Node) -> Mapping[str, Any]:
    value = node.as_json()
    if not isinstance(value, dict):
        raise node.error(f"{_show(node.value)} is not a mapping; payload_contains checks some keys of a mapping "
                         "payload (use payload: to compare any payload whole)")
    return dict(value)


INVOCATION_CHECKS: dict[str, Callable[[Node], InvocationCheck]] = {
    "payload": lambda n: PayloadEquals(n.as_json()),
    "payload_contains": lambda n: PayloadContains(_mapping_json(n)),
    "error": lambda n: ErrorMatches(_error_subset(n)),
    "cold_start": lambda n: ColdStart(n.as_bool()),
    "status_code": lambda n: StatusCode(n.as_whole(100, 599)),
    "logs_contain": lambda n: LogsContain(n.as_str("use the text the logs must contain")),
}
FUNCTION_CHECKS: dict[str, Callable[[Node], int]] = {
    "instances": lambda n: n.as_whole(0),
}


@step("expect")
@dataclass(frozen=True)
class Expect(Step):
    """``expect: {invocation, payload | payload_contains | error | cold_start | status_code | logs_contain}``
    (the last invocation when ``invocation`` is omitted), or ``expect: {function, instances}``."""

    invocation: str | None = None
    function: str | None = None
    checks: tuple[InvocationCheck, ...] = ()
    instances: int | None = None

    @classmethod
    def from_yaml(cls, node: Node) -> Expect:
        allowed = ("invocation", "function", *INVOCATION_CHECKS, *FUNCTION_CHECKS)
        f = node.fields(allowed)
        inv_keys = [k for k in INVOCATION_CHECKS if k in f]
        fn_keys = [k for k in FUNCTION_CHECKS if k in f]
        if not inv_keys and not fn_keys:
            raise node.error(f"nothing to check; use one or more of {_choices([*INVOCATION_CHECKS, *FUNCTION_CHECKS])}")
        if inv_keys and fn_keys:
            raise node.error(f"{inv_keys[0]} checks an invocation and {fn_keys[0]} a function; split them into "
                             "two expects")
        if fn_keys and "invocation" in f:
            raise f["invocation"].error(f"{fn_keys[0]} checks a function; name it with function:, not invocation:")
        if inv_keys and "function" in f:
            raise f["function"].error(f"{inv_keys[0]} checks an invocation; name it with invocation: (the "
                                      "`as` of its invoke step), or leave it out for the last invocation")
        return cls(invocation=f.optional("invocation", _invocation_name),
                   function=f.optional("function", _function_name),
                   checks=tuple(INVOCATION_CHECKS[k](f[k]) for k in inv_keys),
                   instances=f.optional("instances", FUNCTION_CHECKS["instances"]), at=node)

    def check(self, scope: Scope) -> None:
        if not self.checks:
            scope.function(self, self.function)
        elif self.invocation is not None:
            if self.invocation not in scope.invocations:
                named = _choices(scope.invocations) if scope.invocations else "none is named yet"
                raise self.setting("invocation").error(
                    f"no earlier invoke step has as: {self.invocation}"
                    f"{_did_you_mean(self.invocation, scope.invocations)}; named: {named}")
        elif not scope.invoked:
            raise self.at.error("there is no invocation to check yet; add an invoke step before this one")

    def run(self, ctx: RunContext) -> str:
        if not self.checks:
            return self._check_instances(ctx)
        inv, label = ctx.invocation(self.invocation)
        failures = [reason for check in self.checks if (reason := check.verify(inv)) is not None]
        if not failures:
            return f"{label}: {', '.join(c.key for c in self.checks)} as expected"
        details = ""
        if inv.error is not None:
            details += f"\n  its error: {_error_line(inv.error)}"
        tail = inv.logs.rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
        if tail:
            details += f"\n  its logs (last {len(tail)} lines):" + "".join(f"\n    {line}" for line in tail)
        ctx.fail(f"{label} {'; '.join(failures)}{details}")

    def _check_instances(self, ctx: RunContext) -> str:
        fn = ctx.function(self.function)
        instances = fn.instances
        label = f"function {fn.name!r} instances"
        if len(instances) != self.instances:
            listed = ", ".join(f"{i.id} {i.state}" for i in instances) or "none"
            ctx.fail(f"{label}: expected {self.instances}, got {len(instances)} ({listed})")
        return f"{label}: {len(instances)} as expected"


# -- the scenario ---------------------------------------------------------------------------


@dataclass
class StepResult:
    """What one step did: ``outcome`` is ``passed``, ``failed`` (an expectation) or ``error``."""

    index: int
    kind: str
    line: int
    duration_s: float
    outcome: str
    summary: str | None = None
    message: str | None = None


@dataclass
class ScenarioResult:
    """The steps a scenario ran (all of them when ``passed``), the named invocations and the trace."""

    name: str
    file: str
    steps: list[StepResult] = field(default_factory=list)
    duration_s: float = 0.0
    passed: bool = False
    invocations: dict[str, Invocation] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)


class RunContext:
    """What a step's ``run`` works with: the simulator, and the invocations of earlier steps."""

    def __init__(self, scenario: Scenario, sim: Simulator) -> None:
        self.scenario = scenario
        self.sim = sim
        self.step_index = 0
        self.named: dict[str, list[Invocation]] = {}  # `as` name -> every invocation of that step
        self.last: list[Invocation] = []  # the invocations of the latest invoke step
        self.last_step_index = -1

    def function(self, name: str | None) -> Function:
        if name is None:
            if len(self.sim.functions) != 1:
                raise LambdaSimError(f"{len(self.sim.functions)} functions are deployed; name one with function:")
            return next(iter(self.sim.functions.values()))
        return self.sim.functions[name]

    def record(self, invocations: Sequence[Invocation], name: str | None) -> None:
        self.last = list(invocations)
        self.last_step_index = self.step_index
        if name is not None:
            self.named[name] = list(invocations)

    def invocation(self, name: str | None) -> tuple[Invocation, str]:
        """The last invocation of the step named ``name`` (of the latest invoke step when None), and its label."""
        if name is not None:
            return self.named[name][-1], f"invocation {name!r}"
        if not self.last:
            raise LambdaSimError("no invocation has run yet")
        return self.last[-1], f"the last invocation (step {self.last_step_index + 1})"

    def fail(self, reason: str) -> NoReturn:
        raise ExpectationFailed(reason)


@dataclass(frozen=True)
class Scenario:
    """A loaded, validated scenario; :meth:`run` executes it."""

    name: str
    file: str
    steps: tuple[Step, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    base_dir: Path = field(default=Path(), compare=False)
    settings_node: Node | None = field(default=None, compare=False, repr=False)

    def run(self, simulator_factory: Callable[..., Simulator] = Simulator) -> ScenarioResult:
        """Run the steps in order in ``simulator_factory(**settings)``.

        Raises ScenarioFailure at the first expectation that does not hold, ScenarioError
        when the Simulator rejects a setting; other errors (a sandbox that cannot start)
        propagate with a note naming the step.
        """
        result = ScenarioResult(self.name, self.file)
        started = time.perf_counter()
        try:
            sim = simulator_factory(**self.settings)
        except ScenarioError:
            raise
        except ConfigError as e:
            where = self.settings_node or Node(None, self.file, 1, "simulator", self.base_dir)
            raise where.error(str(e)) from e
        try:
            with sim:
                self._run_steps(sim, result)
            result.passed = True
        except ScenarioFailure as e:
            e.result = result
            raise
        finally:
            result.duration_s = time.perf_counter() - started
            result.trace = [event.to_dict() for event in sim.trace]
        return result

    def _run_steps(self, sim: Simulator, result: ScenarioResult) -> None:
        ctx = RunContext(self, sim)
        for index, current in enumerate(self.steps):
            ctx.step_index = index
            began = time.perf_counter()
            record = StepResult(index, current.kind, current.line, 0.0, "error")
            result.steps.append(record)
            try:
                record.summary = current.run(ctx)
                record.outcome = "passed"
            except ExpectationFailed as e:
                record.outcome, record.message = "failed", e.reason
                raise ScenarioFailure(self.file, current.line, index, current.kind, e.reason, result) from None
            except ScenarioError as e:
                record.message = str(e)
                raise
            except ConfigError as e:
                record.message = str(e)
                raise current.at.error(str(e)) from e
            except BaseException as e:
                record.message = f"{type(e).__name__}: {e}"
                e.add_note(f"in {self.file}:{current.line}: step {index + 1} ({current.kind})")
                raise
            finally:
                record.duration_s = time.perf_counter() - began
                result.invocations.update({name: invs[-1] for name, invs in ctx.named.items()})


# -- loading ------------------------------------------------------------------------------------

_SCENARIO_KEYS = ("name", "description", "simulator", "steps")
_SIMULATOR_KEYS = ("sandbox", "routing", "seed", "region", "init_timeout_s", "services")


def _simulator_settings(node: Node) -> dict[str, Any]:
    f = node.fields(_SIMULATOR_KEYS)
    settings: dict[str, Any] = {}
    if "sandbox" in f:
        settings["sandbox"] = f["sandbox"].as_str("use auto or namespace")
    if "routing" in f:
        routing = f["routing"].as_str(f"use one of {_choices(ROUTING)}")
        if routing not in ROUTING:
            raise f["routing"].error(f"{routing!r} is not a routing policy{_did_you_mean(routing, ROUTING)}; "
                                     f"use one of {_choices(ROUTING)}")
        settings["routing"] = routing
    if "seed" in f:
        settings["seed"] = f["seed"].as_whole(0, hint="use a whole number")
    if "region" in f:
        settings["region"] = f["region"].as_str("use an AWS region such as us-east-1")
    if "init_timeout_s" in f:
        settings["init_timeout_s"] = f["init_timeout_s"].as_number("use a number of seconds")
    if "services" in f:
        settings["services"] = _services(f["services"])
    return settings


def _services(node: Node) -> Any:
    from lambdasim._services.service import parse_services

    services: Any
    if isinstance(node.value, list):
        items = {item.as_str("use a service name: aws, redis or memcached"): item for item in node.items()}
        services = list(items)
    else:
        node._check_mapping("use a list of service names, e.g. [aws, redis], or a mapping of name to provider "
                            "or settings")
        items = {name: node.child(name) for name in node.value}
        services = _plain(node.value)
    for name, item in items.items():
        try:
            parse_services({name: services[name]} if isinstance(services, dict) else [name])
        except ConfigError as e:
            raise item.error(re.sub(r"^services(\[[^\]]*\])?: ", "", str(e))) from None
    return services


def _step(item: Node) -> Step:
    value = item.value
    hint = f"write a step as '- name: {{settings}}' with name one of {_choices(sorted(STEPS))}"
    if not isinstance(value, dict):
        raise item.error(f"{_show(value)} is not a step; {hint}")
    item._check_mapping(hint)
    if len(value) != 1:
        names = list(value)
        extra = ""
        if names[0] in STEPS and value[names[0]] is None:
            extra = f"; are the settings meant to be indented under '{names[0]}:'?"
        raise item.error(f"a step has one key, its type, but this one has {len(names)}: {_choices(names)}{extra}")
    (kind,) = value
    if kind not in STEPS:
        raise item.key_node(kind).error(
            f"unknown step {kind!r}{_did_you_mean(kind, STEPS)}; known steps: {_choices(sorted(STEPS))}")
    body = value[kind]
    if body is None:  # `- scale_down:` with no settings
        body = _Map()
        body.line, body.key_lines, body.value_lines, body.duplicates = item.line, {}, {}, []
    node = item._at(body, item.line, _child_path(item.path, kind))
    return STEPS[kind].from_yaml(node)


def load_scenario(path: str | os.PathLike[str], *, display: str | None = None) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError naming the file, line and key.

    Messages name the file ``display`` (default: ``path`` as given), e.g. a path relative
    to the project; ``code_dir`` and ``layers`` are relative to the file's real folder.
    """
    file = display if display is not None else os.fspath(path)
    base = Path(path).resolve().parent
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ScenarioError(file, None, None, f"cannot read the scenario: {reason}") from None
    data = _parse_yaml(text, file)
    root = Node(data, file, data.line if isinstance(data, _Map) else 1, "", base)
    if data is None:
        raise root.error("the file is empty; a scenario needs at least steps:")
    f = root.fields(_SCENARIO_KEYS, required=("steps",))
    name = f.get("name", lambda n: n.as_str("use a short title"), Path(path).stem)
    description = f.optional("description", lambda n: n.as_str("use a sentence or two"))
    settings_node = f["simulator"] if "simulator" in f and f["simulator"].value is not None else None
    settings = _simulator_settings(settings_node) if settings_node is not None else {}
    items = f["steps"].items()
    if not items:
        raise f["steps"].error("there are no steps; add at least one")
    steps = tuple(_step(item) for item in items)
    scope = Scope()
    for index, s in enumerate(steps):
        scope.step_index = index
        s.check(scope)
    return Scenario(name=name, file=file, steps=steps, settings=settings, description=description,
                    base_dir=base, settings_node=settings_node)


def run_file(path: str | os.PathLike[str], simulator_factory: Callable[..., Simulator] = Simulator, *,
             display: str | None = None) -> ScenarioResult:
    """Load and run one scenario file: ScenarioError if it is not valid, ScenarioFailure if an
    expectation does not hold (both carry ``.file`` and ``.line``; ``display`` names the file in them)."""
    return load_scenario(path, display=display).run(simulator_factory)
