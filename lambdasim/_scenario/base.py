"""What every scenario step is built on: the errors, the Step base class and its registry,
the load-time :class:`Scope` and the run-time :class:`RunContext`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from lambdasim._errors import LambdaSimError
from lambdasim._model import FunctionConfig
from lambdasim._simulator import Function, Invocation, Simulator
from lambdasim._source import Node, SourceError, choices, did_you_mean

if TYPE_CHECKING:
    from lambdasim._scenario.runner import Scenario, ScenarioResult

LOG_TAIL_LINES = 10
_SHOW_CHARS = 300



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


@dataclass(frozen=True)
class StepWhere:
    """The step an error that is not the scenario's own was raised in (a sandbox that cannot start,
    a service that does not answer): :func:`step_where` reads it from the error."""

    file: str
    line: int
    step_index: int
    kind: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: step {self.step_index + 1} ({self.kind})"


_STEP_ATTR = "lambdasim_scenario_step"


def mark_step(error: BaseException, where: StepWhere) -> None:
    """Record on ``error`` the step it was raised in, as an attribute and as a note for tracebacks."""
    with contextlib.suppress(AttributeError, TypeError):  # an exception type that takes no attributes
        setattr(error, _STEP_ATTR, where)
    error.add_note(f"in {where}")


def step_where(error: BaseException) -> StepWhere | None:
    """The step ``error`` was raised in, when a scenario ran it."""
    where = getattr(error, _STEP_ATTR, None)
    return where if isinstance(where, StepWhere) else None


class ExpectationFailed(Exception):
    """Raised by a step's ``run`` when what it checks is not so; the runner adds the file, line and step."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason




def _json(value: Any) -> str:
    """A JSON value (a payload, an error) as an expectation's message shows it."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "…"


# -- steps ------------------------------------------------------------------------------

_NOWHERE = Node(None, "<python>", 0, "", error_type=ScenarioError)


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
            started = f"it starts {choices(sorted(self.services))}" if self.services else "it starts none"
            raise current.setting(key).error(
                f"{use} needs the {name} service, but this scenario does not start it ({started}); add it to the "
                f"simulator settings: simulator: {{services: [{listed}]}}")

    def function(self, current: Step, name: str | None) -> str:
        """The function ``name`` refers to (the only deployed one when None); raises ScenarioError."""
        if name is not None:
            if name not in self.functions:
                deployed = f"deployed: {choices(self.functions)}" if self.functions else "none is deployed yet"
                raise current.setting("function").error(
                    f"no function {name!r} is deployed by an earlier step{did_you_mean(name, self.functions)}; "
                    f"{deployed}")
            return name
        if len(self.functions) == 1:
            return next(iter(self.functions))
        if not self.functions:
            raise current.at.error("no function is deployed yet; add a deploy step before this one")
        raise current.at.error(f"{len(self.functions)} functions are deployed ({choices(self.functions)}); "
                            "say which with function:")



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

