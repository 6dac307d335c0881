"""The ``expect`` step and its checks: on one invocation (:data:`INVOCATION_CHECKS`) or on what
a function or a service holds (:data:`STATE_CHECKS`). Each check is a frozen dataclass
registered with ``@check``; ``from_node`` reads its setting and ``verify`` says why it fails."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, ClassVar, TypeVar

from lambdasim._lambda_errors import RESOURCE_NOT_FOUND
from lambdasim._scenario.base import _SHOW_CHARS, LOG_TAIL_LINES, RunContext, Scope, Step, _json, step
from lambdasim._scenario.steps import _function_name, _invocation_name
from lambdasim._simulator import Invocation
from lambdasim._source import Fields, Node, child_path, choices, did_you_mean, show

# -- expectations ---------------------------------------------------------------------------


def _first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where two JSON values first differ, as ``.items[2]``; None when equal."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            if key not in actual:
                return f"{child_path(path, key)} is missing"
            if key not in expected:
                return f"{child_path(path, key)} is not expected"
            found = _first_difference(expected[key], actual[key], child_path(path, key))
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
    """One check of an expect on an invocation: ``from_node`` reads its setting, ``verify`` returns
    why it fails, or None."""

    key: ClassVar[str]

    @classmethod
    def from_node(cls, node: Node) -> InvocationCheck:
        raise NotImplementedError

    def verify(self, inv: Invocation) -> str | None:
        raise NotImplementedError

    def verify_in(self, inv: Invocation, history: Sequence[Invocation]) -> str | None:
        """:meth:`verify`, for a check that also reads the scenario's invocations so far (``history``)."""
        return self.verify(inv)


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


INVOCATION_CHECKS: dict[str, type[InvocationCheck]] = {}
STATE_CHECKS: dict[str, type[StateCheck]] = {}
C = TypeVar("C", bound=type[InvocationCheck | StateCheck])


def check(key: str) -> Callable[[C], C]:
    """Register a check of ``expect`` under its key: ``@check("payload")`` above ``@dataclass(frozen=True)``;
    a subclass of InvocationCheck checks one invocation, a subclass of StateCheck what a function or service holds."""

    def register(cls: C) -> C:
        registry: dict[str, Any] = INVOCATION_CHECKS if issubclass(cls, InvocationCheck) else STATE_CHECKS
        if key in INVOCATION_CHECKS or key in STATE_CHECKS:
            raise ValueError(f"a check named {key!r} is already registered")
        cls.key = key
        registry[key] = cls
        return cls

    return register


@check("payload")
@dataclass(frozen=True)
class PayloadEquals(InvocationCheck):
    expected: Any

    @classmethod
    def from_node(cls, node: Node) -> PayloadEquals:
        return cls(node.as_json())

    def verify(self, inv: Invocation) -> str | None:
        return _payload_mismatch(self.key, self.expected, inv, _same, "")


@check("payload_contains")
@dataclass(frozen=True)
class PayloadContains(InvocationCheck):
    expected: Mapping[str, Any]

    @classmethod
    def from_node(cls, node: Node) -> PayloadContains:
        return cls(_mapping_json(node))

    def verify(self, inv: Invocation) -> str | None:
        return _payload_mismatch(self.key, self.expected, inv, _contains, "a mapping containing ")


@check("error")
@dataclass(frozen=True)
class ErrorMatches(InvocationCheck):
    """``error: {errorType: ...}``: the given keys of the error; ``error: null``: no error."""

    expected: Mapping[str, Any] | None

    @classmethod
    def from_node(cls, node: Node) -> ErrorMatches:
        return cls(_error_subset(node))

    def verify(self, inv: Invocation) -> str | None:
        if self.expected is None:
            return None if inv.error is None else f"error: expected none, got {_json(inv.error)}"
        if inv.error is None:
            return f"error: expected {_json(self.expected)}, got none (payload {_json(inv.payload)})"
        if all(k in inv.error and _same(v, inv.error[k]) for k, v in self.expected.items()):
            return None
        return f"error: expected {_json(self.expected)}, got {_json(inv.error)}"


@check("cold_start")
@dataclass(frozen=True)
class ColdStart(InvocationCheck):
    expected: bool

    @classmethod
    def from_node(cls, node: Node) -> ColdStart:
        return cls(node.as_bool())

    def verify(self, inv: Invocation) -> str | None:
        if inv.cold_start is self.expected:
            return None
        return f"cold_start: expected {_json(self.expected)}, got {_json(inv.cold_start)} (instance {inv.instance_id})"


@check("status_code")
@dataclass(frozen=True)
class StatusCode(InvocationCheck):
    expected: int

    @classmethod
    def from_node(cls, node: Node) -> StatusCode:
        return cls(node.as_whole(100, 599))

    def verify(self, inv: Invocation) -> str | None:
        if inv.status_code == self.expected:
            return None
        return f"status_code: expected {self.expected}, got {inv.status_code}"


@check("logs_contain")
@dataclass(frozen=True)
class LogsContain(InvocationCheck):
    expected: str

    @classmethod
    def from_node(cls, node: Node) -> LogsContain:
        return cls(node.as_str("use the text the logs must contain"))

    def verify(self, inv: Invocation) -> str | None:
        return None if self.expected in inv.logs else f"logs_contain: {self.expected!r} is not in the logs"


EXPRESSION_NAMES = ("inv", "payload", "error", "history")
"""The names an expression of ``holds`` (and of ``lambdasim chaos --invariant``) sees."""


def expression_failure(code: CodeType, inv: Invocation, history: Sequence[Invocation] = ()) -> str | None:
    """Why the expression ``code`` does not hold for ``inv`` (it is false, or it raised), or None when it does.

    The expression is the user's own Python, evaluated in this process like an assertion in a
    test, with ``inv`` (the :class:`~lambdasim.Invocation`), ``payload``, ``error`` and ``history``
    (every invocation of the scenario so far, in order) bound.
    """
    names = {"inv": inv, "payload": inv.payload, "error": inv.error, "history": list(history)}
    try:
        # The names are globals, so that a comprehension in the expression sees them too.
        ok = eval(code, {"__builtins__": builtins, **names})
    except Exception as e:  # noqa: BLE001 - an expression that raises does not hold
        message = " ".join(str(e).split())
        message = message if len(message) <= _SHOW_CHARS else message[:_SHOW_CHARS] + "…"
        return f"evaluating it raised {type(e).__name__}: {message}"
    if ok:
        return None
    return f"it is false (payload {_json(inv.payload)}, error {_json(inv.error)})"


@check("holds")
@dataclass(frozen=True)
class Holds(InvocationCheck):
    """``holds: EXPR``: a Python expression over ``inv``, ``payload``, ``error`` and ``history`` (the
    invocations so far) is true (what ``lambdasim chaos --invariant EXPR`` checks, so the scenario it
    writes states the same)."""

    expression: str
    code: CodeType = field(compare=False, repr=False)

    @classmethod
    def from_node(cls, node: Node) -> Holds:
        text = node.as_str("use a Python expression over inv, payload and error, e.g. \"payload['n'] < 3\"")
        try:
            code = compile(text, f"{node.file}:{node.line}", "eval")
        except SyntaxError as e:
            raise node.error(f"{text!r} is not a Python expression ({e.msg}); write one over "
                             f"{', '.join(EXPRESSION_NAMES)}, e.g. \"error is None and payload['n'] < 3\"") from None
        return cls(text, code)

    def verify(self, inv: Invocation) -> str | None:
        return self.verify_in(inv, ())

    def verify_in(self, inv: Invocation, history: Sequence[Invocation]) -> str | None:
        reason = expression_failure(self.code, inv, history)
        return None if reason is None else f"holds {json.dumps(self.expression, ensure_ascii=False)}: {reason}"


def _error_subset(node: Node) -> Mapping[str, Any] | None:
    if node.value is None:
        return None
    value = node.as_json()
    if not isinstance(value, dict) or not value:
        raise node.error(f"{show(node.value)} is not a mapping of error keys; use e.g. {{errorType: "
                         "Runtime.ImportModuleError}, or null for no error")
    return dict(value)


def _mapping_json(node: Node) -> Mapping[str, Any]:
    value = node.as_json()
    if not isinstance(value, dict):
        raise node.error(f"{show(node.value)} is not a mapping; payload_contains checks some keys of a mapping "
                         "payload (use payload: to compare any payload whole)")
    return dict(value)


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


@check("instances")
@dataclass(frozen=True)
class InstancesCount(StateCheck):
    """``instances: N``: the function's live instances."""

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


@check("cold_starts")
@dataclass(frozen=True)
class ColdStartCount(StateCheck):
    """``cold_starts: N``: the invocations of the scenario so far that were cold starts (of ``function``
    when it is named, else of every function)."""

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


@check("tmp_file")
@dataclass(frozen=True)
class TmpFile(StateCheck):
    """``tmp_file: {instance, path, exists, contains}``: a file in the /tmp of a live instance (0: the oldest)."""

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


@check("s3_object")
@dataclass(frozen=True)
class S3Object(StateCheck):
    """``s3_object: {bucket, key, exists, body_contains}``: an object in the simulator's S3."""

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
    return f"the bucket {bucket!r} does not exist{did_you_mean(bucket, names)}; buckets: {_listed(names)}"


@check("s3_count")
@dataclass(frozen=True)
class S3Count(StateCheck):
    """``s3_count: {bucket, prefix, count}``: how many objects of the bucket have keys that start with ``prefix``."""

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


@check("redis_key")
@dataclass(frozen=True)
class RedisKey(StateCheck):
    """``redis_key: {key, exists, value}``: a key in the simulator's Redis, and its string value."""

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
    value = node.mapping(_DYNAMODB_HINT)
    if not value:
        raise node.error(f"the key is empty; {_DYNAMODB_HINT}")
    key: dict[str, dict[str, str]] = {}
    for name in value:
        attribute = node.child(name)
        typed = attribute.mapping(_DYNAMODB_HINT)
        if len(typed) != 1 or next(iter(typed)) not in _DYNAMODB_TYPES:
            raise attribute.error(f"{show(typed)} is not a typed key value; give one of "
                                  f"{choices(_DYNAMODB_TYPES)}: {_DYNAMODB_HINT}")
        (kind,) = typed
        item = attribute.child(kind)
        if kind == "N" and isinstance(item.value, (int, float)) and not isinstance(item.value, bool):
            key[name] = {kind: str(item.value)}
        else:
            key[name] = {kind: item.as_str(_DYNAMODB_HINT)}
    return key


@check("dynamodb_item")
@dataclass(frozen=True)
class DynamoDBItem(StateCheck):
    """``dynamodb_item: {table, key, exists}``: an item in the simulator's DynamoDB, read consistently."""

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
            if _aws_error(e) == RESOURCE_NOT_FOUND:  # DynamoDB's code is the same word as Lambda's
                tables = dynamodb.list_tables().get("TableNames", [])
                return (f"{label}: the table {self.table!r} does not exist{did_you_mean(self.table, tables)}; "
                        f"tables: {_listed(tables)}")
            return f"{label}: cannot read it: {type(e).__name__}: {e}"
        if item is None:
            return f"{label}: expected it to exist, but it does not" if self.exists else None
        if not self.exists:
            return f"{label}: expected it not to exist, but it does: {_json(item)}"
        return None




def _what_it_checks(check: type[StateCheck]) -> str:
    return "a function" if check.of_function else f"the {check.service} service"


@step("expect")
@dataclass(frozen=True)
class Expect(Step):
    """``expect: {invocation, payload | payload_contains | error | cold_start | status_code | logs_contain | holds}``
    (the last invocation when ``invocation`` is omitted), or ``expect: {function, instances | cold_starts |
    tmp_file | s3_object | s3_count | redis_key | dynamodb_item}``: what a function and the services hold.
    The execution models' checks (``restore``, ``tenant``, ``worker``, ``instances_per_tenant`` ...) are in
    :mod:`lambdasim._scenario.models`."""

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
            raise node.error(f"nothing to check; use one or more of {choices([*INVOCATION_CHECKS, *STATE_CHECKS])}")
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
                   checks=tuple(INVOCATION_CHECKS[k].from_node(f[k]) for k in inv_keys),
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
                named = choices(scope.invocations) if scope.invocations else "none is named yet"
                raise self.setting("invocation").error(
                    f"no earlier invoke step has as: {self.invocation}"
                    f"{did_you_mean(self.invocation, scope.invocations)}; named: {named}")
        elif not scope.invoked:
            raise self.at.error("there is no invocation to check yet; add an invoke step before this one")

    def run(self, ctx: RunContext) -> str:
        if self.state:
            return self._check_state(ctx)
        inv, label = ctx.invocation(self.invocation)
        failures = [reason for check in self.checks if (reason := check.verify_in(inv, ctx.history)) is not None]
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

