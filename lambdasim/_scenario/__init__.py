"""Declarative YAML scenarios: loaded and validated with the file and line of every
mistake, then run step by step through the public :class:`Simulator` API.

::

    name: lost-tmp state
    simulator: {routing: fresh, services: [redis]}
    steps:
      - deploy: {handler: app.handler, code_dir: handlers/lost_tmp/fixed}
      - invoke: {event: {action: put, items: [apple]}, as: put}
      - expect: {invocation: put, cold_start: true}
      - service: {name: redis, action: restart}
      - expect: {redis_key: {key: cart, exists: false}}

Steps: deploy (also from a SAM template or serverless.yml), invoke, scale_down, redeploy,
advance_clock, crash, destroy, fill_tmp, service and expect; expect checks an invocation
(:data:`INVOCATION_CHECKS`) or the state of functions and services (:data:`STATE_CHECKS`).

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
import errno
import json
import math
import os
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

from lambdasim._errors import ConfigError, LambdaSimError, ServiceError
from lambdasim._model import ROUTING, FunctionConfig
from lambdasim._simulator import Function, Instance, Invocation, Simulator
from lambdasim._source import SourceError

__all__ = [
    "STATE_CHECKS",
    "STEPS",
    "ExpectationFailed",
    "Node",
    "RunContext",
    "Scenario",
    "ScenarioError",
    "ScenarioFailure",
    "ScenarioResult",
    "Scope",
    "StateCheck",
    "Step",
    "StepResult",
    "load_scenario",
    "run_file",
    "step",
]

LOG_TAIL_LINES = 10
_SHOW_CHARS = 300

# -- errors -------------------------------------------------------------------------------


class ScenarioError(SourceError):
    """A scenario file is not valid: ``file:line: key: reason``.

    ``line`` counts from 1 (None when the file could not be read); ``key`` is the
    path of the setting in the file, such as ``steps[2].invoke.count`` (None when the
    mistake is not in one setting).
    """


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
        self.services: frozenset[str] = frozenset()  # the services `simulator: {services: ...}` starts

    def service(self, current: Step, name: str, key: str, use: str) -> None:
        """Check that the service ``name`` (which ``use`` needs) is started by the scenario; raises ScenarioError."""
        if name not in self.services:
            listed = ", ".join([*sorted(self.services), name])
            started = f"it starts {_choices(sorted(self.services))}" if self.services else "it starts none"
            raise current.setting(key).error(
                f"{use} needs the {name} service, but this scenario does not start it ({started}); add it to the "
                f"simulator settings: simulator: {{services: [{listed}]}}")

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


def _validate_config(current: Step, config: FunctionConfig, fallback: Node | None = None) -> None:
    """FunctionConfig.validate(), reported at the line of the setting it rejects (``fallback``, else the
    step, when the setting is not in the step: a template's)."""
    try:
        config.validate()
    except ConfigError as e:
        reason = str(e).removeprefix(f"Function {config.name!r}: ")
        given = current.at.value if isinstance(current.at.value, dict) else {}
        for key in ("name", *FunctionSettings.KEYS):
            if re.search(rf"\b{key}[=\[]", reason) or (key == "environment" and "environment variables" in reason):
                where = current.setting(key) if key in given or fallback is None else fallback
                raise where.error(reason) from None
        raise (fallback or current.at).error(reason) from None


_DEPLOY_KEYS = ("handler", "code_dir", "name", *FunctionSettings.KEYS, "template", "function", "parameters")
_TEMPLATE_SETTINGS = ("memory_mb", "timeout_s", "ephemeral_storage_mb", "environment", "reserved_concurrency",
                      "layers")


@step("deploy")
@dataclass(frozen=True)
class Deploy(Step):
    """``deploy: {handler, code_dir, name, memory_mb, timeout_s, ...}``: Simulator.deploy(); or
    ``deploy: {template, function, name, parameters, ...overrides}``: Simulator.deploy_from_template().

    With a template, ``handler``, ``code_dir`` and ``name`` are the template's (read at load time)
    unless given; ``overrides`` says which were given.
    """

    handler: str
    code_dir: Path
    name: str
    settings: FunctionSettings = FunctionSettings()
    template: Path | None = None
    function: str | None = None
    parameters: Mapping[str, Any] | None = None
    overrides: frozenset[str] = frozenset()
    template_settings: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_yaml(cls, node: Node) -> Deploy:
        templated = isinstance(node.value, dict) and "template" in node.value
        f = node.fields(_DEPLOY_KEYS, required=("template", "function") if templated else ("handler", "code_dir"))
        if not templated:
            for key in ("function", "parameters"):
                if key in f:
                    raise f[key].error(f"{key} belongs to a deploy from a template; add template: "
                                       "path/to/template.yaml (to name the function, use name:)")
            handler = _handler(f["handler"])
            # Simulator.deploy's default name, made explicit so that later steps can refer to it.
            default_name = handler.rsplit(".", 1)[0].replace(".", "-").replace("/", "-")
            return cls(handler=handler, code_dir=_code_dir(f["code_dir"], node.base),
                       name=f.get("name", _deploy_name, default_name), settings=FunctionSettings.from_fields(f),
                       at=node)
        settings = FunctionSettings.from_fields(f)
        template = _template_path(f["template"], node.base)
        function = f["function"].as_str("use the function's logical ID in the template, e.g. OrdersFunction")
        parameters = f.optional("parameters", _parameters)
        given_handler = f.optional("handler", _handler)
        given_code_dir = f.optional("code_dir", lambda n: _code_dir(n, node.base))
        given_name = f.optional("name", _deploy_name)
        from lambdasim._templates import load_function

        try:
            loaded = load_function(template, function, environment=settings.environment,
                                   layers=[str(p) for p in settings.layers] if settings.layers is not None else None,
                                   parameters=parameters)
        except ConfigError as e:
            where = f["function"] if f"no function {function!r}" in str(e) else f["template"]
            raise where.error(str(e)) from None
        defaults = loaded.deploy_kwargs()
        return cls(handler=given_handler or loaded.handler, code_dir=given_code_dir or Path(loaded.code_dir),
                   name=given_name or loaded.name, settings=settings, template=template, function=function,
                   parameters=parameters,
                   overrides=frozenset(k for k in ("handler", "code_dir", "name") if k in f),
                   template_settings={k: defaults[k] for k in _TEMPLATE_SETTINGS}, at=node)

    def check(self, scope: Scope) -> None:
        if self.name in scope.functions:
            raise self.setting("name").error(
                f"a function named {self.name!r} is already deployed; use redeploy for a new version of it, "
                "or give this one another name:")
        if self.template is None:
            config = FunctionConfig(name=self.name, handler=self.handler, code_dir=str(self.code_dir),
                                    **self.settings.kwargs())
            _validate_config(self, config)
        else:
            # environment and layers are already merged into the template's by load_function.
            given = {k: v for k, v in self.settings.kwargs().items() if k not in ("environment", "layers")}
            settings = {**self.template_settings, "layers": tuple(self.template_settings["layers"]), **given}
            config = FunctionConfig(name=self.name, handler=self.handler, code_dir=str(self.code_dir), **settings)
            _validate_config(self, config, self.setting("template"))
        scope.functions[self.name] = config

    def run(self, ctx: RunContext) -> str:
        if self.template is None or self.function is None:
            fn = ctx.sim.deploy(self.handler, code_dir=self.code_dir, name=self.name, **self.settings.kwargs())
            return f"deployed {fn.name} version {fn.version}"
        overrides = self.settings.kwargs()
        for key in self.overrides:
            overrides[key] = str(self.code_dir) if key == "code_dir" else getattr(self, key)
        if self.parameters is not None:
            overrides["parameters"] = dict(self.parameters)
        fn = ctx.sim.deploy_from_template(self.template, self.function, **overrides)
        return f"deployed {fn.name} version {fn.version} from {self.template.name} ({self.function})"


def _deploy_name(node: Node) -> str:
    return node.as_str("use 1 to 64 letters, digits, '-' or '_'")


def _template_path(node: Node, base: Path) -> Path:
    text = node.as_str("use the path of an AWS SAM template.yaml or a serverless.yml, relative to this file")
    path = (base / text).resolve()
    if not path.exists():
        raise node.error(f"{text!r} does not exist (looked for {path}); template is relative to the scenario file")
    return path


def _parameters(node: Node) -> Mapping[str, Any]:
    value = node.as_json()
    if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
        raise node.error(f"{_show(node.value)} is not a mapping of parameter names to values; use e.g. "
                         "{Stage: prod}")
    return dict(value)


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
    """``invoke: {function, event | event_template, count, concurrency, as}``: ``count`` invocations, up to
    ``concurrency`` of them in flight; ``as`` names the last one for later expects. ``event_template``
    is another name for ``event`` (both number the invocations with ``"{i}"``)."""

    function: str | None = None
    event: Any = dataclasses.field(default_factory=dict)
    count: int = 1
    concurrency: int = 1
    name: str | None = None

    @classmethod
    def from_yaml(cls, node: Node) -> Invoke:
        f = node.fields(("function", "event", "event_template", "count", "concurrency", "as"))
        if "event" in f and "event_template" in f:
            raise f["event_template"].error("event_template is another name for event, which is given too; keep one "
                                            "(both replace \"{i}\" with the number of the invocation)")
        key = "event_template" if "event_template" in f else "event"
        return cls(function=f.optional("function", _function_name), event=f.get(key, Node.as_json, {}),
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


@step("advance_clock")
@dataclass(frozen=True)
class AdvanceClock(Step):
    """``advance_clock: {seconds, minutes, hours}``: ``sim.clock.advance(...)``; instances idle for longer
    than their function's ``keepalive_s`` are reaped, with their /tmp."""

    seconds: float = 0.0
    minutes: float = 0.0
    hours: float = 0.0

    @classmethod
    def from_yaml(cls, node: Node) -> AdvanceClock:
        units = ("seconds", "minutes", "hours")
        f = node.fields(units)
        if not any(k in f for k in units):
            raise node.error("how far? give seconds, minutes or hours, e.g. advance_clock: {minutes: 15}")

        def duration(n: Node) -> float:
            value = n.as_number(f"use a number of {n.path.rsplit('.', 1)[-1]} >= 0")
            if value < 0:
                raise n.error(f"{_show(n.value)} would go back in time; use a number >= 0")
            return value

        return cls(seconds=f.get("seconds", duration, 0.0), minutes=f.get("minutes", duration, 0.0),
                   hours=f.get("hours", duration, 0.0), at=node)

    def run(self, ctx: RunContext) -> str:
        before = {i.id for fn in ctx.sim.functions.values() for i in fn.instances}
        now = ctx.sim.clock.advance(self.seconds, minutes=self.minutes, hours=self.hours)
        after = {i.id for fn in ctx.sim.functions.values() for i in fn.instances}
        reaped = sorted(before - after)
        delta = self.seconds + 60 * self.minutes + 3600 * self.hours
        gone = f"reaped {len(reaped)} idle instance(s)" + (f": {', '.join(reaped)}" if reaped else "")
        return f"advanced the clock by {delta:g} s to {now:g} s; {gone}"


_ALL = "all"
_FIRST: int | None = 0


def _instance_choice(node: Node) -> int | None:
    """``instance: 0`` (an index into the live instances, oldest first) or ``instance: all`` (None)."""
    if node.value == _ALL:
        return None
    hint = "use the index of a live instance (0 is the oldest) or all"
    if isinstance(node.value, str):
        raise node.error(f"{_show(node.value)} is not an instance; {hint}")
    return node.as_whole(0, hint=hint)


def _chosen_instances(current: Step, fn: Function, index: int | None) -> list[Instance]:
    """The live instances an ``instance:`` setting picks; a ScenarioError when the index is beyond them."""
    instances = fn.instances
    if index is None:
        return instances
    if index >= len(instances):
        listed = ", ".join(f"{i}: {inst.id} {inst.state}" for i, inst in enumerate(instances)) or "none"
        raise current.setting("instance").error(
            f"function {fn.name!r} has {len(instances)} live instance(s), so there is no instance {index} "
            f"(live: {listed})")
    return [instances[index]]


@dataclass(frozen=True)
class _OnInstances(Step):
    """A step that does something to some live instances of a function: ``{function, instance: 0 | all}``."""

    KEYS: ClassVar[tuple[str, ...]] = ("function", "instance")
    DONE: ClassVar[str] = ""  # what the summary says was done, e.g. "crashed"

    function: str | None = None
    instance: int | None = 0  # None: every live instance

    @classmethod
    def from_yaml(cls, node: Node) -> _OnInstances:
        f = node.fields(cls.KEYS)
        return cls(function=f.optional("function", _function_name),
                   instance=f.get("instance", _instance_choice, _FIRST), at=node)

    def check(self, scope: Scope) -> None:
        scope.function(self, self.function)

    def act(self, instance: Instance) -> None:
        raise NotImplementedError

    def run(self, ctx: RunContext) -> str:
        fn = ctx.function(self.function)
        chosen = _chosen_instances(self, fn, self.instance)
        for instance in chosen:
            self.act(instance)
        return f"{self.DONE} {', '.join(i.id for i in chosen) or 'no instance (none is live)'}"


@step("crash")
@dataclass(frozen=True)
class Crash(_OnInstances):
    """``crash: {function, instance: 0 | all}``: ``instance.crash()``: the runtime dies; the next invocation
    runs Init again, and /tmp stays."""

    DONE = "crashed"

    def act(self, instance: Instance) -> None:
        instance.crash()


@step("destroy")
@dataclass(frozen=True)
class Destroy(_OnInstances):
    """``destroy: {function, instance: 0 | all}``: ``instance.destroy()``: the instance and its /tmp are gone."""

    DONE = "destroyed"

    def act(self, instance: Instance) -> None:
        instance.destroy()


_UNITS = {"b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20, "gb": 1 << 30, "gib": 1 << 30}
_SIZE = re.compile(r"(?i)\s*([0-9]+(?:\.[0-9]+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*")
_SIZE_HINT = "use a number of bytes, or a size such as 512KB, 400MB or 1GB (powers of 1024)"


def _size(node: Node) -> int:
    """A size: a whole number of bytes, or a string with a unit (KB, MB, GB: powers of 1024)."""
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise node.error(f"{value} is too small; {_SIZE_HINT}")
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise node.error(f"{_show(value)} is not a size; {_SIZE_HINT}")
    number, unit = match.groups()
    if "." in number and unit is None:
        raise node.error(f"{_show(value)} is not a whole number of bytes; {_SIZE_HINT}")
    return int(float(number) * _UNITS[(unit or "b").lower()])


def _size_text(size: int) -> str:
    """``400 MB``, ``1.5 GB``, ``300 bytes`` (powers of 1024)."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


_FILL_PREFIX = ".lambdasim-fill-"
_FILL_CHUNK = 1 << 20


@step("fill_tmp")
@dataclass(frozen=True)
class FillTmp(_OnInstances):
    """``fill_tmp: {function, instance: 0 | all, bytes, allow_partial}``: write a file of ``bytes`` into each
    chosen instance's /tmp (``/tmp/.lambdasim-fill-N``), as earlier invocations might have; more than
    fits is an error unless ``allow_partial: true``, which fills /tmp up."""

    KEYS = ("function", "instance", "bytes", "allow_partial")

    size: int = 0
    allow_partial: bool = False

    @classmethod
    def from_yaml(cls, node: Node) -> FillTmp:
        f = node.fields(cls.KEYS, required=("bytes",))
        return cls(function=f.optional("function", _function_name),
                   instance=f.get("instance", _instance_choice, _FIRST), size=_size(f["bytes"]),
                   allow_partial=f.get("allow_partial", Node.as_bool, False), at=node)

    def check(self, scope: Scope) -> None:
        config = scope.functions[scope.function(self, self.function)]
        capacity = config.ephemeral_storage_mb << 20
        if self.size > capacity and not self.allow_partial:
            raise self.setting("bytes").error(
                f"{_size_text(self.size)} is more than the /tmp of function {config.name!r} holds "
                f"(ephemeral_storage_mb: {config.ephemeral_storage_mb}); use a smaller size, or allow_partial: true "
                "to fill /tmp up")

    def run(self, ctx: RunContext) -> str:
        fn = ctx.function(self.function)
        chosen = _chosen_instances(self, fn, self.instance)
        done = []
        for inst in chosen:
            written, full = self._fill(inst)
            done.append(f"{inst.id}: {_size_text(written)}{' (/tmp is full)' if full else ''}")
        return f"filled /tmp of {', '.join(done) if done else 'no instance (none is live)'}"

    def _fill(self, instance: Instance) -> tuple[int, bool]:
        """Write the file into the instance's /tmp through the host's view of it: the bytes written, and
        whether /tmp ran out of space (only with allow_partial)."""
        root = instance._live.sbx.tmp_root()
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            free = _free_bytes(dir_fd)
            if self.size > free and not self.allow_partial:
                raise self._too_big(instance, free)
            fd, name = _create_fill_file(dir_fd)
            written, full = 0, False
            try:
                chunk = bytes(min(_FILL_CHUNK, self.size))
                while written < self.size:
                    try:
                        written += os.write(fd, chunk[:self.size - written])
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        if not self.allow_partial:
                            os.unlink(name, dir_fd=dir_fd)
                            raise self._too_big(instance, free) from None
                        full = True
                        break
            finally:
                os.close(fd)
            return written, full
        finally:
            os.close(dir_fd)

    def _too_big(self, instance: Instance, free: int) -> ScenarioError:
        return self.setting("bytes").error(
            f"[Errno 28] No space left on device: {_size_text(self.size)} do not fit in /tmp of instance "
            f"{instance.id}, which has {_size_text(free)} free; use a smaller size, or allow_partial: true to fill "
            "it up")


def _free_bytes(dir_fd: int) -> int:
    st = os.statvfs(dir_fd)
    return st.f_bavail * st.f_frsize


def _create_fill_file(dir_fd: int) -> tuple[int, str]:
    """A new file ``.lambdasim-fill-N`` (the first free N) in the directory; never follows a link."""
    n = 0
    while True:
        name = f"{_FILL_PREFIX}{n}"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd)
        except FileExistsError:
            n += 1
            continue
        return fd, name


SERVICE_NAMES = ("aws", "redis", "memcached")
SERVICE_ACTIONS = ("stop", "start", "restart", "flush", "pause", "resume", "latency", "cut", "heal")


@step("service")
@dataclass(frozen=True)
class ServiceFault(Step):
    """``service: {name: redis, action: stop | start | restart | flush | pause | resume | latency | cut | heal,
    seconds}``: ``sim.services[name].<action>()`` (``set_latency(seconds)`` for latency)."""

    name: str = ""
    action: str = ""
    seconds: float | None = None

    @classmethod
    def from_yaml(cls, node: Node) -> ServiceFault:
        f = node.fields(("name", "action", "seconds"), required=("name", "action"))
        name = _one_of(f["name"], SERVICE_NAMES, "a service")
        return cls._build(node, name, f)

    @classmethod
    def _build(cls, node: Node, name: str, f: Fields) -> ServiceFault:
        action = _one_of(f["action"], SERVICE_ACTIONS, "an action")
        seconds: float | None = None
        if action == "latency":
            if "seconds" not in f:
                raise node.error("missing key 'seconds'; latency needs the delay each way, e.g. seconds: 0.2 "
                                 "(0 turns it off)")
            seconds = f["seconds"].as_number("use a number of seconds >= 0")
            if seconds < 0:
                raise f["seconds"].error(f"{_show(f['seconds'].value)} is too small; use a number of seconds >= 0")
        elif "seconds" in f:
            raise f["seconds"].error(f"seconds is the delay of action: latency; {action} takes none")
        return cls(name=name, action=action, seconds=seconds, at=node)

    def check(self, scope: Scope) -> None:
        scope.service(self, self.name, "name", f"service: {{action: {self.action}}}")

    def run(self, ctx: RunContext) -> str:
        service = ctx.sim.services[self.name]
        try:
            if self.action == "latency":
                assert self.seconds is not None
                service.set_latency(self.seconds)
            else:
                getattr(service, self.action)()
        except ServiceError as e:
            raise self.setting("action").error(str(e)) from e
        if self.action == "latency":
            return f"{self.name}: latency {self.seconds:g} s each way" if self.seconds else f"{self.name}: latency off"
        return f"{self.name}: {self.action}"


def _service_shorthand(service: str) -> None:
    """``redis: stop`` or ``redis: {action: latency, seconds: 0.2}``: ``service:`` for one service."""

    @step(service)
    @dataclass(frozen=True)
    class Shorthand(ServiceFault):
        @classmethod
        def from_yaml(cls, node: Node) -> ServiceFault:
            if isinstance(node.value, str):
                if node.value == "latency":
                    raise node.error(f"latency needs the delay: write {service}: {{action: latency, seconds: 0.2}}")
                return cls(name=service, action=_one_of(node, SERVICE_ACTIONS, "an action"), at=node)
            return cls._build(node, service, node.fields(("action", "seconds"), required=("action",)))

    Shorthand.__name__ = Shorthand.__qualname__ = f"{service.capitalize()}Fault"


for _service in SERVICE_NAMES:
    _service_shorthand(_service)


def _one_of(node: Node, names: Sequence[str], what: str) -> str:
    value = node.as_str(f"use one of {_choices(names)}")
    if value not in names:
        raise node.error(f"{value!r} is not {what}{_did_you_mean(value, names)}; use one of {_choices(names)}")
    return value


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
class StateCheck:
    """One check of an expect on what a function or a service holds (not on one invocation).

    ``of_function``: it checks a function, named with ``function:``; ``needs_function``: the only
    deployed function is meant when none is named (else, with ``of_function``, every function);
    ``service``: the service it reads, which the scenario must start. ``verify`` returns why the
    check fails, or None.
    """

    key: ClassVar[str]
    of_function: ClassVar[bool] = False
    needs_function: ClassVar[bool] = False
    service: ClassVar[str | None] = None

    @classmethod
    def from_node(cls, node: Node) -> StateCheck:
        raise NotImplementedError

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        raise NotImplementedError


def _text(data: bytes | str) -> str:
    """Stored text (a file, an object, a value) as a message shows it."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    shown = json.dumps(text[:_SHOW_CHARS], ensure_ascii=False)
    return shown + ("…" if len(text) > _SHOW_CHARS else "") + f" ({len(data)} bytes)"


def _listed(names: Sequence[str], limit: int = 10) -> str:
    if not names:
        return "nothing"
    more = f", … ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@dataclass(frozen=True)
class InstancesCount(StateCheck):
    """``instances: N``: the function's live instances."""

    key = "instances"
    of_function = True
    needs_function = True
    expected: int

    @classmethod
    def from_node(cls, node: Node) -> InstancesCount:
        return cls(node.as_whole(0))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        fn = ctx.function(function)
        instances = fn.instances
        if len(instances) == self.expected:
            return None
        listed = ", ".join(f"{i.id} {i.state}" for i in instances) or "none"
        return f"function {fn.name!r} instances: expected {self.expected}, got {len(instances)} ({listed})"


@dataclass(frozen=True)
class ColdStartCount(StateCheck):
    """``cold_starts: N``: the invocations of the scenario so far that were cold starts (of ``function``
    when it is named, else of every function)."""

    key = "cold_starts"
    of_function = True
    expected: int

    @classmethod
    def from_node(cls, node: Node) -> ColdStartCount:
        return cls(node.as_whole(0))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        invocations = [inv for inv in ctx.history if function is None or inv.function == function]
        cold = [inv for inv in invocations if inv.cold_start]
        if len(cold) == self.expected:
            return None
        label = f"function {function!r} cold_starts" if function is not None else "cold_starts (every function)"
        where = f": on {_listed([str(inv.instance_id) for inv in cold])}" if cold else ""
        return (f"{label}: expected {self.expected}, got {len(cold)} (of {len(invocations)} invocation(s) so far"
                f"{where})")


def _tmp_path(node: Node) -> str:
    text = node.as_str("use a path in /tmp, such as cache/rates.json or /tmp/cache/rates.json")
    relative = text.removeprefix("/tmp/") if text.startswith("/tmp/") else text
    parts = relative.split("/")
    if relative.startswith("/") or ".." in parts or not relative.strip("/"):
        raise node.error(f"{text!r} is not a path in /tmp; use e.g. cache/rates.json or /tmp/cache/rates.json")
    return relative.strip("/")


def _must_exist(f: Fields, text_key: str) -> bool:
    exists = f.get("exists", Node.as_bool, True)
    if not exists and text_key in f:
        raise f[text_key].error(f"{text_key} checks the contents, but exists: false says there is none; "
                                "remove one of them")
    return exists


@dataclass(frozen=True)
class TmpFile(StateCheck):
    """``tmp_file: {instance, path, exists, contains}``: a file in the /tmp of a live instance (0: the oldest)."""

    key = "tmp_file"
    of_function = True
    needs_function = True
    path: str
    instance: int = 0
    exists: bool = True
    contains: str | None = None

    @classmethod
    def from_node(cls, node: Node) -> TmpFile:
        f = node.fields(("instance", "path", "exists", "contains"), required=("path",))
        exists = _must_exist(f, "contains")
        return cls(path=_tmp_path(f["path"]),
                   instance=f.get("instance", lambda n: n.as_whole(0, hint="use the index of a live instance "
                                                                          "(0 is the oldest)"), 0),
                   exists=exists, contains=f.optional("contains", lambda n: n.as_str("use the text to find")))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        fn = ctx.function(function)
        instances = fn.instances
        label = f"tmp_file /tmp/{self.path} of function {fn.name!r} instance {self.instance}"
        if self.instance >= len(instances):
            listed = ", ".join(f"{i}: {inst.id}" for i, inst in enumerate(instances)) or "none"
            return f"{label}: there is no such instance (live instances: {listed})"
        inst = instances[self.instance]
        label += f" ({inst.id})"
        tmp = inst.tmp
        found = tmp.exists(self.path)
        if found and not self.exists:
            return f"{label}: expected it not to exist, but it does"
        if not found:
            if not self.exists:
                return None
            parent = self.path.rsplit("/", 1)[0] if "/" in self.path else ""
            try:
                listing = f"{'/tmp/' + parent if parent else '/tmp'} holds {_listed(tmp.listdir(parent))}"
            except OSError:
                listing = f"/tmp/{parent} does not exist either"
            return f"{label}: expected it to exist, but it does not ({listing})"
        if self.contains is None:
            return None
        try:
            data = tmp.read_bytes(self.path)
        except OSError as e:
            return f"{label}: expected a file containing {json.dumps(self.contains)}, but cannot read it ({e})"
        if self.contains in data.decode("utf-8", "replace"):
            return None
        return f"{label}: expected it to contain {json.dumps(self.contains)}, got {_text(data)}"


def _aws_error(e: Exception) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return str(error.get("Code", "")) or str(e)
    return ""


@dataclass(frozen=True)
class S3Object(StateCheck):
    """``s3_object: {bucket, key, exists, body_contains}``: an object in the simulator's S3."""

    key = "s3_object"
    service = "aws"
    bucket: str
    object_key: str
    exists: bool = True
    body_contains: str | None = None

    @classmethod
    def from_node(cls, node: Node) -> S3Object:
        f = node.fields(("bucket", "key", "exists", "body_contains"), required=("bucket", "key"))
        exists = _must_exist(f, "body_contains")
        return cls(bucket=f["bucket"].as_str("use a bucket name"), object_key=f["key"].as_str("use an object key"),
                   exists=exists,
                   body_contains=f.optional("body_contains", lambda n: n.as_str("use the text to find")))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        label = f"s3_object s3://{self.bucket}/{self.object_key}"
        s3 = ctx.aws_client("s3")
        try:
            body: bytes | None = s3.get_object(Bucket=self.bucket, Key=self.object_key)["Body"].read()
        except ctx.aws_errors() as e:
            code = _aws_error(e)
            if code == "NoSuchBucket":
                return f"{label}: {_no_bucket(s3, self.bucket)}"
            if code not in ("NoSuchKey", "404"):
                return f"{label}: cannot read it: {type(e).__name__}: {e}"
            body = None
        if body is not None and not self.exists:
            return f"{label}: expected it not to exist, but it does ({len(body)} bytes)"
        if body is None:
            if not self.exists:
                return None
            keys = _s3_keys(s3, self.bucket, "")
            return f"{label}: expected it to exist, but it does not (the bucket holds {len(keys)} object(s): " \
                   f"{_listed(keys, 5)})"
        if self.body_contains is None or self.body_contains in body.decode("utf-8", "replace"):
            return None
        return f"{label}: expected its body to contain {json.dumps(self.body_contains)}, got {_text(body)}"


def _s3_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _no_bucket(s3: Any, bucket: str) -> str:
    names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    return f"the bucket {bucket!r} does not exist{_did_you_mean(bucket, names)}; buckets: {_listed(names)}"


@dataclass(frozen=True)
class S3Count(StateCheck):
    """``s3_count: {bucket, prefix, count}``: how many objects of the bucket have keys that start with ``prefix``."""

    key = "s3_count"
    service = "aws"
    bucket: str
    count: int
    prefix: str = ""

    @classmethod
    def from_node(cls, node: Node) -> S3Count:
        f = node.fields(("bucket", "prefix", "count"), required=("bucket", "count"))
        prefix = f.get("prefix", lambda n: n.value if n.value == "" else n.as_str("use the start of the keys"), "")
        return cls(bucket=f["bucket"].as_str("use a bucket name"), prefix=prefix, count=f["count"].as_whole(0))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        label = f"s3_count s3://{self.bucket}/{self.prefix}*"
        s3 = ctx.aws_client("s3")
        try:
            keys = _s3_keys(s3, self.bucket, self.prefix)
        except ctx.aws_errors() as e:
            if _aws_error(e) == "NoSuchBucket":
                return f"{label}: {_no_bucket(s3, self.bucket)}"
            return f"{label}: cannot list it: {type(e).__name__}: {e}"
        if len(keys) == self.count:
            return None
        return f"{label}: expected {self.count} object(s), got {len(keys)}" + (f" ({_listed(keys, 5)})" if keys else "")


@dataclass(frozen=True)
class RedisKey(StateCheck):
    """``redis_key: {key, exists, value}``: a key in the simulator's Redis, and its string value."""

    key = "redis_key"
    service = "redis"
    name: str
    exists: bool = True
    value: str | None = None

    @classmethod
    def from_node(cls, node: Node) -> RedisKey:
        f = node.fields(("key", "exists", "value"), required=("key",))
        exists = _must_exist(f, "value")
        return cls(name=f["key"].as_str("use a Redis key"), exists=exists,
                   value=f.optional("value", lambda n: n.value if n.value == "" else n.as_str("use the whole value, "
                                                                                              "as a string")))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        label = f"redis_key {self.name!r}"
        client = ctx.redis_client()
        import redis

        try:
            kind = client.type(self.name).decode()
            value: bytes | None = client.get(self.name) if kind == "string" else None
        except redis.RedisError as e:
            return f"{label}: cannot read it from Redis: {type(e).__name__}: {e}"
        if kind == "none":
            return f"{label}: expected it to exist, but it does not" if self.exists else None
        if not self.exists:
            shown = f": {_text(value)}" if value is not None else f" (a {kind})"
            return f"{label}: expected it not to exist, but it does{shown}"
        if self.value is None:
            return None
        if value is None:
            return f"{label}: expected the value {json.dumps(self.value)}, but the key holds a {kind}, not a string"
        if value.decode("utf-8", "replace") == self.value:
            return None
        return f"{label}: expected the value {json.dumps(self.value)}, got {_text(value)}"


_DYNAMODB_TYPES = ("S", "N", "B")
_DYNAMODB_HINT = "use DynamoDB's JSON for the key attributes, e.g. {id: {S: \"1\"}} or {pk: {S: a}, sk: {N: \"2\"}}"


def _dynamodb_key(node: Node) -> dict[str, dict[str, str]]:
    value = node._check_mapping(_DYNAMODB_HINT)
    if not value:
        raise node.error(f"the key is empty; {_DYNAMODB_HINT}")
    key: dict[str, dict[str, str]] = {}
    for name in value:
        attribute = node.child(name)
        typed = attribute._check_mapping(_DYNAMODB_HINT)
        if len(typed) != 1 or next(iter(typed)) not in _DYNAMODB_TYPES:
            raise attribute.error(f"{_show(typed)} is not a typed key value; give one of "
                                  f"{_choices(_DYNAMODB_TYPES)}: {_DYNAMODB_HINT}")
        (kind,) = typed
        item = attribute.child(kind)
        if kind == "N" and isinstance(item.value, (int, float)) and not isinstance(item.value, bool):
            key[name] = {kind: str(item.value)}
        else:
            key[name] = {kind: item.as_str(_DYNAMODB_HINT)}
    return key


@dataclass(frozen=True)
class DynamoDBItem(StateCheck):
    """``dynamodb_item: {table, key, exists}``: an item in the simulator's DynamoDB, read consistently."""

    key = "dynamodb_item"
    service = "aws"
    table: str
    item_key: Mapping[str, Mapping[str, str]]
    exists: bool = True

    @classmethod
    def from_node(cls, node: Node) -> DynamoDBItem:
        f = node.fields(("table", "key", "exists"), required=("table", "key"))
        return cls(table=f["table"].as_str("use a table name"), item_key=_dynamodb_key(f["key"]),
                   exists=f.get("exists", Node.as_bool, True))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        label = f"dynamodb_item {json.dumps(dict(self.item_key))} in table {self.table!r}"
        dynamodb = ctx.aws_client("dynamodb")
        try:
            item = dynamodb.get_item(TableName=self.table, Key=dict(self.item_key), ConsistentRead=True).get("Item")
        except ctx.aws_errors() as e:
            if _aws_error(e) == "ResourceNotFoundException":
                tables = dynamodb.list_tables().get("TableNames", [])
                return (f"{label}: the table {self.table!r} does not exist{_did_you_mean(self.table, tables)}; "
                        f"tables: {_listed(tables)}")
            return f"{label}: cannot read it: {type(e).__name__}: {e}"
        if item is None:
            return f"{label}: expected it to exist, but it does not" if self.exists else None
        if not self.exists:
            return f"{label}: expected it not to exist, but it does: {_json(item)}"
        return None


STATE_CHECKS: dict[str, type[StateCheck]] = {
    check.key: check for check in (InstancesCount, ColdStartCount, TmpFile, S3Object, S3Count, RedisKey,
                                   DynamoDBItem)
}


def _what_it_checks(check: type[StateCheck]) -> str:
    return "a function" if check.of_function else f"the {check.service} service"


@step("expect")
@dataclass(frozen=True)
class Expect(Step):
    """``expect: {invocation, payload | payload_contains | error | cold_start | status_code | logs_contain}``
    (the last invocation when ``invocation`` is omitted), or ``expect: {function, instances | cold_starts |
    tmp_file | s3_object | s3_count | redis_key | dynamodb_item}``: what a function and the services hold."""

    invocation: str | None = None
    function: str | None = None
    checks: tuple[InvocationCheck, ...] = ()
    instances: int | None = None
    state: tuple[StateCheck, ...] = ()

    @classmethod
    def from_yaml(cls, node: Node) -> Expect:
        allowed = ("invocation", "function", *INVOCATION_CHECKS, *STATE_CHECKS)
        f = node.fields(allowed)
        inv_keys = [k for k in INVOCATION_CHECKS if k in f]
        state_keys = [k for k in STATE_CHECKS if k in f]
        if not inv_keys and not state_keys:
            raise node.error(f"nothing to check; use one or more of {_choices([*INVOCATION_CHECKS, *STATE_CHECKS])}")
        if inv_keys and state_keys:
            raise node.error(f"{inv_keys[0]} checks an invocation and {state_keys[0]} "
                             f"{_what_it_checks(STATE_CHECKS[state_keys[0]])}; split them into two expects")
        if state_keys and "invocation" in f:
            first = STATE_CHECKS[state_keys[0]]
            if first.of_function:
                raise f["invocation"].error(f"{first.key} checks a function; name it with function:, not invocation:")
            raise f["invocation"].error(f"{first.key} checks {_what_it_checks(first)}, not an invocation; leave "
                                        "invocation: out")
        if inv_keys and "function" in f:
            raise f["function"].error(f"{inv_keys[0]} checks an invocation; name it with invocation: (the "
                                      "`as` of its invoke step), or leave it out for the last invocation")
        if "function" in f and not any(STATE_CHECKS[k].of_function for k in state_keys):
            first = STATE_CHECKS[state_keys[0]]
            raise f["function"].error(f"{first.key} checks {_what_it_checks(first)}, not a function; leave "
                                      "function: out")
        state = tuple(STATE_CHECKS[k].from_node(f[k]) for k in state_keys)
        instances = next((c.expected for c in state if isinstance(c, InstancesCount)), None)
        return cls(invocation=f.optional("invocation", _invocation_name),
                   function=f.optional("function", _function_name),
                   checks=tuple(INVOCATION_CHECKS[k](f[k]) for k in inv_keys),
                   instances=instances, state=state, at=node)

    def check(self, scope: Scope) -> None:
        if self.state:
            if self.function is not None or any(c.needs_function for c in self.state):
                scope.function(self, self.function)
            for c in self.state:
                if c.service is not None:
                    scope.service(self, c.service, c.key, c.key)
        elif self.invocation is not None:
            if self.invocation not in scope.invocations:
                named = _choices(scope.invocations) if scope.invocations else "none is named yet"
                raise self.setting("invocation").error(
                    f"no earlier invoke step has as: {self.invocation}"
                    f"{_did_you_mean(self.invocation, scope.invocations)}; named: {named}")
        elif not scope.invoked:
            raise self.at.error("there is no invocation to check yet; add an invoke step before this one")

    def run(self, ctx: RunContext) -> str:
        if self.state:
            return self._check_state(ctx)
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

    def _check_state(self, ctx: RunContext) -> str:
        function = self.function
        if function is None and any(c.needs_function for c in self.state):
            function = ctx.function(None).name  # the only one
        # Checks that need no function (cold_starts) see only the one named in the file.
        failures = [reason for c in self.state
                    if (reason := c.verify(ctx, function if c.needs_function else self.function)) is not None]
        if failures:
            ctx.fail("; ".join(failures))
        if [c.key for c in self.state] == ["instances"]:
            return f"function {function!r} instances: {self.instances} as expected"
        return f"{', '.join(c.key for c in self.state)} as expected"


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
        self.history: list[Invocation] = []  # every invocation of the scenario so far, in order
        self._clients: dict[str, Any] = {}

    def function(self, name: str | None) -> Function:
        if name is None:
            if len(self.sim.functions) != 1:
                raise LambdaSimError(f"{len(self.sim.functions)} functions are deployed; name one with function:")
            return next(iter(self.sim.functions.values()))
        return self.sim.functions[name]

    def record(self, invocations: Sequence[Invocation], name: str | None) -> None:
        self.history.extend(invocations)
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

    def aws_client(self, service_name: str) -> Any:
        """A test-side boto3 client of the simulator's AWS (made once per scenario run)."""
        key = f"aws:{service_name}"
        if key not in self._clients:
            from botocore.config import Config

            config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1})
            self._clients[key] = self.sim.boto3_client(service_name, config=config)
        return self._clients[key]

    @staticmethod
    def aws_errors() -> tuple[type[Exception], ...]:
        """What a boto3 call raises when AWS says no or does not answer."""
        from botocore.exceptions import BotoCoreError, ClientError

        return (ClientError, BotoCoreError)

    def redis_client(self) -> Any:
        """A test-side redis-py client of the simulator's Redis, without retries (made once per scenario run)."""
        if "redis" not in self._clients:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._clients["redis"] = self.sim.redis_client(socket_timeout=5, socket_connect_timeout=5,
                                                           retry=Retry(NoBackoff(), 0))
        return self._clients["redis"]

    def close(self) -> None:
        """Close the test-side clients."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()


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
        try:
            self._run_each(ctx, result)
        finally:
            ctx.close()

    def _run_each(self, ctx: RunContext, result: ScenarioResult) -> None:
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


def _service_names(services: Any) -> list[str]:
    """The names in a valid ``services`` setting: a list of names, or a mapping of name to settings."""
    if services is None:
        return []
    return [str(name) for name in services]


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
    scope.services = frozenset(_service_names(settings.get("services")))
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
