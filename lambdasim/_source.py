"""The one way in for what users write: scenario files, templates, command-line values.

Every reader of user input goes through this module, so a mistake is reported the same
way wherever it was made: :class:`SourceError` carries ``file``, ``line``, ``key`` and
``reason``, and callers read those attributes instead of parsing a message.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self, TypeVar

from lambdasim._errors import ConfigError, LambdaSimError

__all__ = [
    "Fields",
    "Mark",
    "Node",
    "SourceError",
    "YamlMap",
    "YamlSeq",
    "did_you_mean",
    "env_argument",
    "load_yaml",
    "parameters_argument",
    "read_json_argument",
    "read_text",
    "services_text",
    "show",
]

T = TypeVar("T")
_SHOW_CHARS = 300


class SourceError(ConfigError):
    """What a user wrote is not valid: ``file:line: key: reason``.

    ``line`` counts from 1 (None when there is no line, e.g. a command-line option or a
    file that could not be read); ``key`` is the path of the setting, such as
    ``steps[2].invoke.count`` or ``Resources.Fn.Properties.Timeout`` (None when the
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


# -- values several commands share --------------------------------------------------------


def read_json_argument(text: str, option: str) -> Any:
    """The JSON given to ``option``, inline or as ``@FILE`` (``@-`` or ``-``: stdin); errors say where and what."""
    if text in ("-", "@-"):  # `lambdasim event ... | lambdasim invoke --event @-`
        text, where = sys.stdin.read(), f"{option} {text} (stdin)"
    elif text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"{option} @{path}: cannot read {path}: {e.strerror}") from None
        where = path
    else:
        where = option
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def env_argument(pairs: Iterable[str], option: str = "--env") -> dict[str, str]:
    """``--env KEY=VALUE`` options as a dict; errors say which one is malformed."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"{option} {pair!r}: write it as KEY=VALUE")
        env[key] = value
    return env


_LONG_PARAMETER = re.compile(r"ParameterKey=([^,]*),ParameterValue=(.*)", re.DOTALL)


def parameters_argument(values: Iterable[str], option: str = "--parameter-overrides") -> dict[str, str]:
    """``--parameter-overrides`` values as ``sam`` reads them: ``KEY=VALUE`` or
    ``ParameterKey=KEY,ParameterValue=VALUE``, several to an argument when separated by spaces
    (``"Stage=prod Table=t"``, as in samconfig.toml); a value with spaces is quoted inside it."""
    parameters: dict[str, str] = {}
    for value in values:
        try:
            pairs = shlex.split(value)
        except ValueError as e:
            raise ConfigError(f"{option} {value!r}: {e}") from None
        for pair in pairs:
            long = _LONG_PARAMETER.fullmatch(pair)
            key, sep, text = (long.group(1), "=", long.group(2)) if long else pair.partition("=")
            if not sep or not key:
                raise ConfigError(f"{option} {pair!r}: write it as KEY=VALUE (or ParameterKey=KEY,ParameterValue="
                                  "VALUE); quote a value that has spaces inside the argument: 'KEY=\"a b\"'")
            parameters[key] = text
    return parameters


def services_text(text: str | None, source: str = "--services") -> dict[str, str]:
    """``"aws,redis=binary,memcached"`` -> ``{"aws": "auto", "redis": "binary", "memcached": "auto"}``.

    The one grammar of the services text, on the command line and in pytest's option and
    ini key: names separated by commas (or new lines, for an ini value), each optionally
    ``=PROVIDER``. The result is validated as ``Simulator(services=...)`` validates it;
    an error names ``source``.
    """
    services: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").replace("\n", ",").split(","))):
        kind, _, provider = part.partition("=")
        services[kind.strip()] = provider.strip() or "auto"
    from lambdasim._services.service import parse_services

    try:
        parse_services(services)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return services



# -- YAML that knows where everything is -----------------------------------------------------


class Mark(NamedTuple):
    """Where a value starts in its file; both count from 1."""

    line: int
    column: int


_NOWHERE = Mark(0, 0)


def _mark(node: Any) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class YamlMap(dict[Any, Any]):
    """A YAML mapping that remembers its file, where it starts, and where each key and value start.

    ``duplicates`` lists keys given twice as (key, where, where the first one is); the first
    value is kept, and each reader decides whether a duplicate is a mistake.
    """

    def __init__(self, file: str = "", mark: Mark = _NOWHERE) -> None:
        super().__init__()
        self.file = file
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}
        self.duplicates: list[tuple[Any, Mark, Mark]] = []

    @property
    def line(self) -> int:
        return self.mark.line

    def key_line(self, key: Any, default: int | None = None) -> int:
        """The line of ``key`` (``default``, else the mapping's own line, when the key is not there)."""
        mark = self.key_marks.get(key)
        return mark.line if mark is not None else self.line if default is None else default

    def value_line(self, key: Any, default: int | None = None) -> int:
        mark = self.value_marks.get(key)
        return mark.line if mark is not None else self.line if default is None else default


class YamlSeq(list[Any]):
    """A YAML sequence that remembers its file, where it starts, and where each item starts."""

    def __init__(self, file: str = "", mark: Mark = _NOWHERE) -> None:
        super().__init__()
        self.file = file
        self.mark = mark
        self.item_marks: list[Mark] = []

    @property
    def line(self) -> int:
        return self.mark.line

    def item_line(self, index: int) -> int:
        return self.item_marks[index].line if 0 <= index < len(self.item_marks) else self.line


Scalars = Literal["json", "yaml1.1"]
TagFactory = Callable[[str, Any, Mark], Any]
"""Builds the value of a local tag (``!Ref X``): (the tag without ``!``, its constructed value, where)."""

_TAG = "tag:yaml.org,2002:"
# YAML 1.2's core schema, as JSON reads: only true/false are booleans, numbers are written
# as in JSON, and dates, yes/no, on/off, 0777 and 1:20 stay strings.
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)$")
_LOADERS: dict[tuple[Scalars, TagFactory | None, str], Any] = {}


def _yaml() -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - PyYAML is installed with lambdasim
        raise LambdaSimError("lambdasim needs PyYAML to read YAML: pip install pyyaml") from None
    return yaml


def _fill_map(loader: Any, node: Any, data: YamlMap, deep: bool, keep: Literal["first", "last"]) -> None:
    yaml = _yaml()
    explicit = {id(key) for key, _ in node.value if key.tag != _TAG + "merge"}
    loader.flatten_mapping(node)  # applies "<<" merge keys; explicit keys override merged ones
    first_explicit: dict[Any, Mark] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key",
                key_node.start_mark) from None
        where = _mark(key_node)
        if id(key_node) in explicit:
            if key in first_explicit:
                data.duplicates.append((key, where, first_explicit[key]))
                if keep == "first":
                    continue
            else:
                first_explicit[key] = where
        data[key] = loader.construct_object(value_node, deep=deep)
        data.key_marks[key] = where
        data.value_marks[key] = _mark(value_node)


def _fill_seq(loader: Any, node: Any, data: YamlSeq, deep: bool) -> None:
    for child in node.value:
        data.append(loader.construct_object(child, deep=deep))
        data.item_marks.append(_mark(child))


def _loader(scalars: Scalars, tags: TagFactory | None, keep: Literal["first", "last"]) -> Any:
    """A SafeLoader subclass for these options, built on first use (importing lambdasim needs no PyYAML)."""
    cache_key = (scalars, tags, keep)
    cached = _LOADERS.get(cache_key)
    if cached is not None:
        return cached
    yaml = _yaml()

    def construct_map(loader: Any, node: Any) -> Iterator[YamlMap]:
        data = YamlMap(loader.lambdasim_file, _mark(node))
        yield data
        _fill_map(loader, node, data, deep=False, keep=keep)

    def construct_seq(loader: Any, node: Any) -> Iterator[YamlSeq]:
        data = YamlSeq(loader.lambdasim_file, _mark(node))
        yield data
        _fill_seq(loader, node, data, deep=False)

    attrs: dict[str, Any] = {"lambdasim_file": ""}
    if scalars == "json":
        dropped = {_TAG + "bool", _TAG + "int", _TAG + "float", _TAG + "timestamp"}
        attrs["yaml_implicit_resolvers"] = {
            first: [(tag, rx) for tag, rx in pairs if tag not in dropped]
            for first, pairs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    loader: Any = type("LambdasimLoader", (yaml.SafeLoader,), attrs)
    # SafeLoader's class-level registries are copied on first add_*, so this loader's changes stay its own.
    if scalars == "json":
        loader.add_implicit_resolver(_TAG + "bool", _BOOL, list("tTfF"))
        loader.add_implicit_resolver(_TAG + "int", _INT, list("-0123456789"))
        loader.add_implicit_resolver(_TAG + "float", _FLOAT, list("-0123456789"))
    loader.add_constructor(_TAG + "map", construct_map)
    loader.add_constructor(_TAG + "seq", construct_seq)
    if tags is not None:
        factory = tags

        def construct_tag(loader: Any, suffix: str, node: Any) -> Any:
            where = _mark(node)
            value: Any
            if isinstance(node, yaml.ScalarNode):
                value = loader.construct_scalar(node)
            elif isinstance(node, yaml.SequenceNode):
                value = YamlSeq(loader.lambdasim_file, where)
                _fill_seq(loader, node, value, deep=True)
            else:
                value = YamlMap(loader.lambdasim_file, where)
                _fill_map(loader, node, value, deep=True, keep=keep)
            return factory(suffix, value, where)

        # Every local tag (!Ref, !Sub, !GetAtt, ... and any future one) goes to the factory.
        loader.add_multi_constructor("!", construct_tag)
    _LOADERS[cache_key] = loader
    return loader


def load_yaml(text: str, file: str, *, scalars: Scalars = "json", tags: TagFactory | None = None,
              keep: Literal["first", "last"] = "first", error_type: type[SourceError] | None = None) -> Any:
    """Parse one YAML document into plain values, :class:`YamlMap` and :class:`YamlSeq`.

    ``scalars="json"`` reads scalars as YAML 1.2's core schema (what scenario files use);
    ``"yaml1.1"`` as PyYAML's SafeLoader (what CloudFormation and Serverless read: dates,
    ``yes``/``no``). ``tags`` builds the values of local tags such as CloudFormation's
    ``!Ref``; without it they are a mistake. ``keep`` says which value of a key given twice
    is kept (both are recorded in ``duplicates``). Invalid YAML raises ``error_type`` (a
    :class:`SourceError`) with the line of the problem.
    """
    error = error_type or SourceError
    yaml = _yaml()
    loader_type = _loader(scalars, tags, keep)
    loader = loader_type(text)
    loader.lambdasim_file = file
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = f"not valid YAML: {e.problem or e.context}"
        if e.problem and e.context:
            started = f" on line {e.context_mark.line + 1}" if e.context_mark is not None else ""
            reason += f" ({e.context}{started})"
        raise error(file, line, None, reason) from None
    except yaml.YAMLError as e:
        raise error(file, None, None, f"not valid YAML: {e}") from None
    finally:
        loader.dispose()


def read_text(path: str | os.PathLike[str], file: str, what: str, error_type: type[SourceError] | None = None) -> str:
    """The UTF-8 text of ``path``; an unreadable file raises ``error_type`` (a :class:`SourceError`) naming ``file``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = f"not UTF-8 text ({e.reason})" if isinstance(e, UnicodeDecodeError) else e.strerror or str(e)
        raise (error_type or SourceError)(file, None, None, f"cannot read {what}: {reason}") from None


# -- validated access to what was read --------------------------------------------------------


def plain(value: Any) -> Any:
    """The parsed value with plain dicts and lists (what the Simulator and the payloads hold)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def show(value: Any) -> str:
    """A setting's value as a message shows it: strings quoted, null/true/false as YAML writes them."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(plain(value))
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "…"


def child_path(path: str, key: Any) -> str:
    """``steps[2]`` + ``invoke`` -> ``steps[2].invoke``; odd keys are quoted."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def choices(names: Collection[str]) -> str:
    return ", ".join(names)


def did_you_mean(word: str, names: Collection[str]) -> str:
    """`` (did you mean 'count'?)`` when a name close to ``word`` is among ``names``, else ``""``."""
    close = difflib.get_close_matches(word, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Node:
    """One value of a file with where it is: ``file`` (as messages name it), ``line`` (from 1)
    and ``path`` (``steps[2].invoke.count``); ``base`` is the folder that paths in the file are
    relative to; ``error_type`` is the :class:`SourceError` subclass its mistakes raise.
    Readers validate settings through it."""

    value: Any
    file: str
    line: int
    path: str
    base: Path = field(default=Path(), compare=False, repr=False)
    error_type: type[SourceError] = field(default=SourceError, compare=False, repr=False)

    def _at(self, value: Any, line: int, path: str) -> Self:
        # type(self): a reader's subclass (with its own error_type) stays that subclass.
        return type(self)(value, self.file, line, path, self.base, self.error_type)

    def error(self, reason: str) -> SourceError:
        return self.error_type(self.file, self.line, self.path or None, reason)

    def child(self, key: Any) -> Self:
        """The node of a mapping's key or a sequence's index."""
        value = self.value
        if isinstance(value, YamlMap):
            return self._at(value[key], value.value_line(key, self.line), child_path(self.path, key))
        if isinstance(value, YamlSeq):
            return self._at(value[key], value.item_line(key), child_path(self.path, key))
        return self._at(value[key], self.line, child_path(self.path, key))

    def key_node(self, key: Any) -> Self:
        """Like :meth:`child`, on the line of the key itself (for mistakes in the key)."""
        line = self.value.key_line(key, self.line) if isinstance(self.value, YamlMap) else self.line
        return self._at(key, line, child_path(self.path, key))

    def with_value(self, value: Any, path: str) -> Self:
        """A node for ``value`` on this node's line (a value that the file implies, such as an empty body)."""
        return self._at(value, self.line, path)

    def items(self) -> list[Self]:
        """The nodes of a sequence."""
        if not isinstance(self.value, list):
            raise self.error(f"{show(self.value)} is not a list; write one item per line, each after '- '")
        return [self.child(i) for i in range(len(self.value))]

    def mapping(self, what: str) -> dict[Any, Any]:
        """The value as a mapping with string keys given once; ``what`` says what to write instead."""
        value = self.value
        if not isinstance(value, dict):
            raise self.error(f"{show(value)} is not a mapping; {what}")
        if isinstance(value, YamlMap) and value.duplicates:
            key, where, first = value.duplicates[0]
            raise self.error_type(self.file, where.line, child_path(self.path, key),
                                  f"the key {key!r} is given twice (first on line {first.line}); keep one")
        for key in value:
            if not isinstance(key, str):
                raise self.key_node(key).error(f"the key {show(key)} is not a string; quote it: '{key}'")
        return value

    def fields(self, allowed: Sequence[str], required: Sequence[str] = ()) -> Fields:
        """The settings of a mapping that may hold only ``allowed`` keys and must hold ``required`` ones."""
        value = self.mapping(f"use the keys {choices(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.key_node(key).error(
                    f"unknown key {key!r}{did_you_mean(key, allowed)}; allowed keys: {choices(allowed)}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.error(f"missing key {missing[0]!r}; required: {choices(required)}")
        return Fields(self)

    def as_str(self, hint: str) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.error(f"{show(self.value)} is not a non-empty string; {hint}")
        return self.value

    def as_bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"{show(self.value)} is not true or false")
        return self.value

    def as_whole(self, low: int | None, high: int | None = None, hint: str = "") -> int:
        """A whole number from ``low`` to ``high`` (None: no bound; the caller checks the range)."""
        value = self.value
        use = hint or (f"use a number from {low} to {high}" if high is not None else f"use a number >= {low}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"{show(value)} is not a whole number; {use}")
        if low is not None and value < low:
            raise self.error(f"{value} is too small; {use}")
        if high is not None and value > high:
            raise self.error(f"{value} is too large; {use}")
        return value

    def as_number(self, hint: str) -> float:
        value = self.value
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise self.error(f"{show(value)} is not a number; {hint}")
        return float(value)

    def as_str_map(self, hint: str) -> dict[str, str]:
        value = self.mapping(hint)
        result: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(item, str):
                quoted = "true" if item is True else "false" if item is False else str(item)
                raise self.child(key).error(f"{show(item)} is not a string; {hint}: quote it, '{quoted}'")
            result[key] = item
        return result

    def as_json(self) -> Any:
        """A JSON value (an event, an expected payload): plain dicts, lists, strings, numbers, booleans, null."""
        value = self.value
        if isinstance(value, dict):
            self.mapping("")
            return {key: self.child(key).as_json() for key in value}
        if isinstance(value, list):
            return [node.as_json() for node in self.items()]
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        raise self.error(f"{show(value)} is not a JSON value; use strings, numbers, true, false, null, "
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
