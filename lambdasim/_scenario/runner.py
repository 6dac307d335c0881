"""Loading and running one scenario file: :func:`load_scenario` validates it all (every
mistake is a ScenarioError with its file, line and key) and :meth:`Scenario.run` runs the
steps in one Simulator."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdasim._errors import ConfigError, ServiceSettingError
from lambdasim._interpreters import INTERPRETER_MODES
from lambdasim._model import ROUTING
from lambdasim._package import PACKAGE_VIEWS
from lambdasim._sandbox import NETWORKS, network_names, sandbox_names
from lambdasim._scenario.base import (
    STEPS,
    ExpectationFailed,
    RunContext,
    ScenarioError,
    ScenarioFailure,
    Scope,
    Step,
    StepWhere,
    mark_step,
)
from lambdasim._simulator import Invocation, Simulator
from lambdasim._source import Mark, Node, YamlMap, child_path, choices, did_you_mean, load_yaml, plain, read_text, show

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
            where = self.settings_node or Node(None, self.file, 1, "simulator", self.base_dir, ScenarioError)
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
                mark_step(e, StepWhere(self.file, current.line, index, current.kind))
                raise
            finally:
                record.duration_s = time.perf_counter() - began
                result.invocations.update({name: invs[-1] for name, invs in ctx.named.items()})


# -- loading ------------------------------------------------------------------------------------

_SCENARIO_KEYS = ("name", "description", "simulator", "steps")
_SIMULATOR_KEYS = ("sandbox", "network", "package", "interpreter", "routing", "seed", "region", "init_timeout_s",
                   "services")


def _one_of(node: Node, allowed: Collection[str], what: str, hint: str) -> str:
    """The string at ``node``, which must be one of ``allowed`` (``what`` it is, ``hint`` what to write)."""
    value = node.as_str(hint)
    if value not in allowed:
        raise node.error(f"{value!r} is not {what}{did_you_mean(value, allowed)}; {hint}")
    return value


def _simulator_settings(node: Node) -> dict[str, Any]:
    f = node.fields(_SIMULATOR_KEYS)
    settings: dict[str, Any] = {}
    if "sandbox" in f:
        settings["sandbox"] = f["sandbox"].as_str(f"use {sandbox_names()}")
    if "network" in f:
        settings["network"] = _one_of(f["network"], NETWORKS, "a network", f"use {network_names()}")
    if "package" in f:
        settings["package"] = _one_of(f["package"], PACKAGE_VIEWS, "a package view",
                                      f"use {' or '.join(PACKAGE_VIEWS)} (strict: imports from outside the "
                                      "function's package fail, as on Lambda)")
    if "interpreter" in f:
        settings["interpreter"] = _one_of(f["interpreter"], INTERPRETER_MODES, "an interpreter mode",
                                          f"use {' or '.join(INTERPRETER_MODES)} (strict: a function whose Runtime "
                                          "python3.X is not installed here is refused at deploy)")
    if "routing" in f:
        settings["routing"] = _one_of(f["routing"], ROUTING, "a routing policy", f"use one of {choices(ROUTING)}")
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
        node.mapping("use a list of service names, e.g. [aws, redis], or a mapping of name to provider "
                            "or settings")
        items = {name: node.child(name) for name in node.value}
        services = plain(node.value)
    for name, item in items.items():
        try:
            parse_services({name: services[name]} if isinstance(services, dict) else [name])
        except ServiceSettingError as e:
            raise item.error(e.reason) from None
    return services


def _service_names(services: Any) -> list[str]:
    """The names in a valid ``services`` setting: a list of names, or a mapping of name to settings."""
    if services is None:
        return []
    return [str(name) for name in services]


def _step(item: Node) -> Step:
    value = item.value
    hint = f"write a step as '- name: {{settings}}' with name one of {choices(sorted(STEPS))}"
    if not isinstance(value, dict):
        raise item.error(f"{show(value)} is not a step; {hint}")
    item.mapping(hint)
    if len(value) != 1:
        names = list(value)
        extra = ""
        if names[0] in STEPS and value[names[0]] is None:
            extra = f"; are the settings meant to be indented under '{names[0]}:'?"
        raise item.error(f"a step has one key, its type, but this one has {len(names)}: {choices(names)}{extra}")
    (kind,) = value
    if kind not in STEPS:
        raise item.key_node(kind).error(
            f"unknown step {kind!r}{did_you_mean(kind, STEPS)}; known steps: {choices(sorted(STEPS))}")
    body = value[kind]
    if body is None:  # `- scale_down:` with no settings
        body = YamlMap(item.file, Mark(item.line, 1))
    node = item.with_value(body, child_path(item.path, kind))
    return STEPS[kind].from_yaml(node)


def load_scenario(path: str | os.PathLike[str], *, display: str | None = None) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError naming the file, line and key.

    Messages name the file ``display`` (default: ``path`` as given), e.g. a path relative
    to the project; ``code_dir`` and ``layers`` are relative to the file's real folder.
    """
    file = display if display is not None else os.fspath(path)
    base = Path(path).resolve().parent
    text = read_text(path, file, "the scenario", ScenarioError)
    data = load_yaml(text, file, error_type=ScenarioError)
    root = Node(data, file, data.line if isinstance(data, YamlMap) else 1, "", base, ScenarioError)
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
