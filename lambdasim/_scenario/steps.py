"""The steps of a scenario that do something: deploy (also from a template), redeploy, invoke,
scale_down, advance_clock, crash, destroy, fill_tmp and the service faults. Each is a frozen
dataclass registered with ``@step("name")``; ``expect`` is in :mod:`lambdasim._scenario.checks`."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lambdasim._aws_calls import AwsCall, parse_call
from lambdasim._errors import ConfigError, ServiceError, SettingError
from lambdasim._model import FunctionConfig
from lambdasim._scenario.base import RunContext, Scope, Step, step
from lambdasim._simulator import Function, Instance
from lambdasim._source import Fields, Node, SourceError, choices, did_you_mean, show


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

    MODEL_KEYS: ClassVar[tuple[str, ...]] = ("snap_start", "provisioned_concurrency", "tenant_isolation",
                                             "capacity_provider", "max_concurrency", "min_environments",
                                             "max_environments")
    """The execution models' settings (SnapStart, provisioned concurrency, tenant isolation, Managed Instances)."""
    KEYS: ClassVar[tuple[str, ...]] = ("memory_mb", "timeout_s", "ephemeral_storage_mb", "environment",
                                       "reserved_concurrency", "keepalive_s", "layers", "runtime", *MODEL_KEYS)
    NULLABLE: ClassVar[tuple[str, ...]] = ("reserved_concurrency", "capacity_provider", "max_concurrency",
                                           "max_environments")
    """The settings whose ``null`` means something (no limit, not on Managed Instances)."""

    memory_mb: int | None = None
    timeout_s: float | None = None
    ephemeral_storage_mb: int | None = None
    environment: Mapping[str, str] | None = None
    reserved_concurrency: int | None = None
    keepalive_s: float | None = None
    layers: tuple[Path, ...] | None = None
    runtime: str | None = None
    snap_start: bool | None = None
    provisioned_concurrency: int | None = None
    tenant_isolation: bool | None = None
    capacity_provider: str | None = None
    max_concurrency: int | None = None
    min_environments: int | None = None
    max_environments: int | None = None
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
            runtime=fields.optional("runtime", lambda n: n.as_str("use a runtime, e.g. python3.12")),
            snap_start=fields.optional("snap_start", Node.as_bool),
            provisioned_concurrency=fields.optional(
                "provisioned_concurrency", lambda n: n.as_whole(0, hint="use a whole number of environments >= 0")),
            tenant_isolation=fields.optional("tenant_isolation", Node.as_bool),
            capacity_provider=fields.optional(
                "capacity_provider", lambda n: n.as_str("use the capacity provider's name or ARN, or null")),
            max_concurrency=fields.optional(
                "max_concurrency", lambda n: n.as_whole(1, hint="use null or a whole number of requests >= 1")),
            min_environments=fields.optional(
                "min_environments", lambda n: n.as_whole(0, hint="use a whole number of environments >= 0")),
            max_environments=fields.optional(
                "max_environments", lambda n: n.as_whole(0, hint="use null or a whole number of environments")),
            given=frozenset(k for k in cls.KEYS if k in fields),
        )

    def kwargs(self) -> dict[str, Any]:
        """The given settings, as keyword arguments of Simulator.deploy() and Function.redeploy()."""
        out: dict[str, Any] = {}
        for key in self.KEYS:
            value = getattr(self, key)
            if key in self.given and (value is not None or key in self.NULLABLE):
                out[key] = [str(p) for p in value] if key == "layers" else value
        return out


def _validate_config(current: Step, config: FunctionConfig, fallback: Node | None = None) -> None:
    """FunctionConfig.validate(), reported at the line of the setting it rejects (``fallback``, else the
    step, when the setting is not in the step: a template's)."""
    try:
        config.validate()
    except SettingError as e:
        given = current.at.value if isinstance(current.at.value, dict) else {}
        if e.setting in ("name", *FunctionSettings.KEYS):
            where = current.setting(e.setting) if e.setting in given or fallback is None else fallback
            raise where.error(e.reason) from None
        raise (fallback or current.at).error(e.reason) from None


_DEPLOY_KEYS = ("handler", "code_dir", "name", *FunctionSettings.KEYS, "template", "function", "parameters")
# How a template error says to set what the template cannot (see _templates.Hints), in the deploy step's keys.
_TEMPLATE_HINTS = {
    "environment": "set the value with environment: {{{name}: ...}} in the deploy step",
    "parameter": "set parameters: {{{name}: ...}} in the deploy step",
    "layers": "set layers: [folder, ...] in the deploy step",
    "function": "name one with function:",
}
_TEMPLATE_SETTINGS = ("memory_mb", "timeout_s", "ephemeral_storage_mb", "environment", "reserved_concurrency",
                      "layers", "runtime", *FunctionSettings.MODEL_KEYS)
"""The template's settings a deploy step's check validates with its own (``handler`` and ``code_dir`` apart)."""


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
    creates_resources: bool = False
    """The template has resources that its deploy creates in moto (which starts aws)."""

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
        from lambdasim._template_resources import preview_resources
        from lambdasim._templates import FunctionNotFound, Hints, load_function

        try:
            # The template's resources are created when the step runs: !Ref and !GetAtt of them are placeholders here.
            resources = preview_resources(template, parameters, hints=Hints(**_TEMPLATE_HINTS))
            loaded = load_function(template, function, environment=settings.environment,
                                   layers=[str(p) for p in settings.layers] if settings.layers is not None else None,
                                   parameters=parameters, hints=Hints(**_TEMPLATE_HINTS), resources=resources)
        except ConfigError as e:
            where = f["function"] if isinstance(e, FunctionNotFound) else f["template"]
            raise where.error(str(e)) from None
        defaults = loaded.deploy_kwargs()
        return cls(handler=given_handler or loaded.handler, code_dir=given_code_dir or Path(loaded.code_dir),
                   name=given_name or loaded.name, settings=settings, template=template, function=function,
                   parameters=parameters,
                   overrides=frozenset(k for k in ("handler", "code_dir", "name") if k in f),
                   template_settings={k: defaults[k] for k in _TEMPLATE_SETTINGS},
                   creates_resources=resources.creates_resources, at=node)

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
            if self.creates_resources:  # the deploy starts aws for them: later steps may use it
                scope.services = scope.services | {"aws"}
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
        raise node.error(f"{show(node.value)} is not a mapping of parameter names to values; use e.g. "
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
        current = scope.functions[name]
        if changes.get("tenant_isolation", current.tenant_isolation) != current.tenant_isolation:
            raise self.setting("tenant_isolation").error(
                "Tenant isolation is set when a function is created and cannot be changed; deploy a new function.")
        config = dataclasses.replace(current, **changes)
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
    """``invoke: {function, event | event_template | template_event, count, concurrency, interval_s, tenant_id, as}``:
    ``count``
    invocations arriving in waves of ``concurrency`` (``fn.invoke_many``): each wave when the previous one
    has completed, or with ``interval_s`` one wave every so many seconds of virtual time; ``as`` names the
    last one for later expects. ``event_template`` is another name for ``event`` (both number the
    invocations with ``"{i}"``). ``tenant_id`` (tenant isolation) is every invocation's tenant (``"{i}"``
    numbers it too, e.g. ``tenant-{i}``), or a list of one per invocation. ``template_event`` is the event an
    entry of the function's template ``Events`` sends (``fn.event``): its name, or ``{name, <field>: value}``
    with the fields of its kind (``path_parameters: {id: "{i}"}``)."""

    function: str | None = None
    event: Any = dataclasses.field(default_factory=dict)
    count: int = 1
    concurrency: int = 1
    interval_s: float | None = None
    name: str | None = None
    tenant_id: str | tuple[str, ...] | None = None
    source: str | None = None
    """``template_event``'s name: the event is ``fn.event(source, **event)``."""

    @classmethod
    def from_yaml(cls, node: Node) -> Invoke:
        f = node.fields(("function", "event", "event_template", "template_event", "count", "concurrency",
                         "interval_s", "tenant_id", "as"))
        if "event" in f and "event_template" in f:
            raise f["event_template"].error("event_template is another name for event, which is given too; keep one "
                                            "(both replace \"{i}\" with the number of the invocation)")
        key = "event_template" if "event_template" in f else "event"
        source = None
        if "template_event" in f:
            if key in f:
                raise f["template_event"].error(f"template_event builds the event, and {key} is given too; keep "
                                                "one (template_event takes the event's fields beside its name)")
            source, fields = _template_event(f["template_event"])

        def interval(n: Node) -> float:
            hint = "use a number of seconds >= 0 between the arrival of one wave and the next"
            value = n.as_number(hint)
            if value < 0:
                raise n.error(f"{show(n.value)} is negative; {hint}")
            return value

        count = f.get("count", lambda n: n.as_whole(1), 1)
        return cls(function=f.optional("function", _function_name),
                   event=fields if source is not None else f.get(key, Node.as_json, {}), source=source,
                   count=count, concurrency=f.get("concurrency", lambda n: n.as_whole(1), 1),
                   interval_s=f.optional("interval_s", interval),
                   name=f.optional("as", _invocation_name),
                   tenant_id=f.optional("tenant_id", lambda n: _tenant_ids(n, count)), at=node)

    def check(self, scope: Scope) -> None:
        scope.function(self, self.function)
        if self.name is not None:
            if self.name in scope.invocations:
                raise self.setting("as").error(
                    f"{self.name!r} already names the invocation of step {scope.invocations[self.name] + 1}; "
                    "use another name")
            scope.invocations[self.name] = scope.step_index
        scope.invoked = True

    def events(self, fn: Function | None = None) -> list[Any]:
        """The invocations' events (a ``template_event``'s are built by ``fn``)."""
        if self.source is not None:
            assert fn is not None, "a template_event is built by its function"
            return [fn.event(self.source, **_template(self.event, i)) for i in range(self.count)]
        return [_template(self.event, i) for i in range(self.count)]

    def tenants(self) -> list[str | None]:
        """Each invocation's tenant id."""
        if isinstance(self.tenant_id, tuple):
            return list(self.tenant_id)
        return [None if self.tenant_id is None else self.tenant_id.replace("{i}", str(i)) for i in range(self.count)]

    def run(self, ctx: RunContext) -> str:
        fn = ctx.function(self.function)
        events = self.events(fn)
        tenants = self.tenants()
        if self.concurrency == 1 and self.interval_s is None:
            invocations = [fn.invoke(event, tenant_id=tenant) for event, tenant in zip(events, tenants, strict=True)]
        elif self.tenant_id is None:
            invocations = fn.invoke_many(events, concurrency=self.concurrency, interval_s=self.interval_s)
        else:
            tenanted: dict[str, Any] = {"tenant_id": tenants}  # invoke_many's tenant_id= (tenant isolation)
            invocations = fn.invoke_many(events, concurrency=self.concurrency, interval_s=self.interval_s,
                                         **tenanted)
        ctx.record(invocations, self.name)
        cold = sum(1 for inv in invocations if inv.cold_start)
        errors = sum(1 for inv in invocations if inv.error is not None)
        clock = "" if self.interval_s is None else f"; the clock is at {ctx.sim.clock.now():g} s"
        return f"{len(invocations)} invocation(s) of {fn.name}: {cold} cold start(s), {errors} error(s){clock}"


def _template_event(node: Node) -> tuple[str, dict[str, Any]]:
    """``template_event``: a name, or ``{name, <field>: value ...}`` -> (the name, the fields)."""
    hint = "use the name of an entry of the function's template Events, or {name: GetPerson, <field>: value}"
    if not isinstance(node.value, dict):
        return node.as_str(hint), {}
    node.mapping(hint)
    if "name" not in node.value:
        raise node.error(f"missing key 'name'; {hint}")
    fields = {key: node.child(key).as_json() for key in node.value if key != "name"}
    return node.child("name").as_str(hint), fields


def _tenant_ids(node: Node, count: int) -> str | tuple[str, ...]:
    hint = "use a tenant id (\"{i}\" numbers the invocations, e.g. tenant-{i}), or a list of one per invocation"
    if not isinstance(node.value, list):
        return node.as_str(hint)
    ids = tuple(item.as_str(hint) for item in node.items())
    if len(ids) != count:
        raise node.error(f"{len(ids)} tenant id(s) for count: {count} invocation(s); give one per invocation, or "
                         "one tenant id for all")
    return ids


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
                raise n.error(f"{show(n.value)} would go back in time; use a number >= 0")
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
        raise node.error(f"{show(node.value)} is not an instance; {hint}")
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
        raise node.error(f"{show(value)} is not a size; {_SIZE_HINT}")
    number, unit = match.groups()
    if "." in number and unit is None:
        raise node.error(f"{show(value)} is not a whole number of bytes; {_SIZE_HINT}")
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

    def _too_big(self, instance: Instance, free: int) -> SourceError:
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
    def from_yaml(cls, node: Node) -> Step:
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
                raise f["seconds"].error(f"{show(f['seconds'].value)} is too small; use a number of seconds >= 0")
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
        def from_yaml(cls, node: Node) -> Step:
            if service == "aws" and isinstance(node.value, dict) and "call" in node.value:
                return AwsCallStep.from_yaml(node)
            if isinstance(node.value, str):
                if node.value == "latency":
                    raise node.error(f"latency needs the delay: write {service}: {{action: latency, seconds: 0.2}}")
                return cls(name=service, action=_one_of(node, SERVICE_ACTIONS, "an action"), at=node)
            return cls._build(node, service, node.fields(("action", "seconds"), required=("action",)))

    Shorthand.__name__ = Shorthand.__qualname__ = f"{service.capitalize()}Fault"


@dataclass(frozen=True)
class AwsCallStep(Step):
    """``aws: {service: dynamodb, call: put_item, args: {...}}``: any boto3 call on the simulator's moto
    (seeding a table, a bucket ...), checked against botocore when the file is read. The ``aws:`` step
    with ``call``; without it, ``aws:`` is the service fault shorthand."""

    kind: ClassVar[str] = "aws"
    call: AwsCall | None = None

    @classmethod
    def from_yaml(cls, node: Node) -> AwsCallStep:
        return cls(call=parse_call(node), at=node)

    def run(self, ctx: RunContext) -> str:
        assert self.call is not None
        self.call.run(ctx.sim)  # started on first use, as a template's deploy starts it
        return f"aws: {self.call}"


for _service in SERVICE_NAMES:
    _service_shorthand(_service)


def _one_of(node: Node, names: Sequence[str], what: str) -> str:
    value = node.as_str(f"use one of {choices(names)}")
    if value not in names:
        raise node.error(f"{value!r} is not {what}{did_you_mean(value, names)}; use one of {choices(names)}")
    return value

