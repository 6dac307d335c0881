"""``lambdasim chaos``: drive one function through random lifecycles with Hypothesis until an
invariant breaks, then write the shortest sequence found as a scenario file.

A :class:`hypothesis.stateful.RuleBasedStateMachine` has one rule per thing that happens to
a Lambda function in production: an invocation or a burst of concurrent ones; and, each
followed by an invocation, a scale-down, an idle timeout (the virtual clock moved past
``keepalive_s``), a crashed or destroyed instance, a redeploy of the same code, a backing
service stopped, restarted or flushed. Each example runs in a Simulator of its own (created
with the machine, closed in its teardown), and the rules run as scenario steps built from
the same YAML mappings that are written to the file: what chaos ran and what the file runs
are one code path. Rules for steps that this build's scenario format does not know are left
out, so the file always loads.

After every invocation the invariants are checked: ``no-error`` (the invocation returned
without an error), or a Python expression evaluated with ``inv`` (the
:class:`~lambdasim.Invocation`), ``payload`` and ``error`` bound. Such an expression is the
user's own code, run in this process like a test assertion; it is not sandboxed. The file
written for a failure ends in the ``expect`` that states the broken invariant (``error: null``,
or ``holds: EXPR``, evaluated the same way), so running it fails until the bug is fixed.
Hypothesis keeps its files in ``ChaosConfig.hypothesis_dir`` (``--hypothesis-dir``, by default
under the user's cache folder), not in ``.hypothesis/`` of the working directory.

The execution models: with ``--model`` (repeatable: ``on-demand``, ``provisioned``, ``snap-start``,
``tenant-isolation``, ``managed``) each example's deploy picks one (a Hypothesis ``initialize``
rule), so one search runs the function under each; a function with tenant isolation is invoked
as tenants drawn from ``--tenant-id`` (default two), and the built-in invariant
``tenant-isolated`` checks that no environment serves more than one tenant (the scenario states it
as ``holds`` over ``history``). On Managed Instances the concurrent bursts share one environment's
``/tmp`` between worker processes, which is where the invariants of its hazards break.

Hypothesis shrinks a failing sequence (cut short after ``--shrink-runs`` runs, see
:class:`Search`), then :func:`polish` tries single edits on it (a step left out, a burst
made smaller), each checked by a run. Runs are reproducible from ``seed``
(``hypothesis.seed``, no example database): the same seed, handler and options find and
shrink to the same sequence, as long as the function behaves the same each time
(concurrent bursts may not: which instance an invocation lands on is up to timing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any, TextIO

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky, HypothesisException
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from lambdasim._aws_calls import load_setup
from lambdasim._commands import read_template_function, template_overrides
from lambdasim._errors import ConfigError, LambdaSimError
from lambdasim._model import MANAGED_RUNTIMES, PYTHON_VERSION, SNAPSTART_RUNTIMES, FunctionConfig
from lambdasim._scenario import (
    STEPS,
    Node,
    RunContext,
    Scenario,
    ScenarioError,
    ScenarioFailure,
    load_scenario,
    run_file,
)
from lambdasim._scenario.checks import expression_failure
from lambdasim._simulator import Invocation, Simulator
from lambdasim._source import env_argument, read_json_argument, services_text

__all__ = [
    "MODELS",
    "ChaosConfig",
    "Invariant",
    "InvariantViolation",
    "Outcome",
    "Run",
    "Search",
    "chaos_main",
    "config_from_args",
    "default_hypothesis_dir",
    "find_counterexample",
    "flow",
    "make_machine",
    "polish",
    "replay",
    "run_chaos",
    "scenario_yaml",
]

DEFAULT_OUT = "chaos-failure.yaml"
PATIENCE = 30  # shrinking stops after this many runs in a row that do not fail
_INSTANCE_CHOICES = 4  # a rule draws 0..3 and takes it modulo the live instances, so draws stay stable
_SHOW_CHARS = 200

Body = dict[str, Any]
StepRecord = tuple[str, Body]


# -- invariants ---------------------------------------------------------------------------------


TENANT_ISOLATED = ("inv.instance_id is None or all(h.tenant_id == inv.tenant_id for h in history "
                   "if h.instance_id == inv.instance_id)")
"""The built-in invariant ``tenant-isolated``: the invocation's environment served no other tenant."""
BUILT_IN = {"tenant-isolated": TENANT_ISOLATED}


@dataclass(frozen=True)
class Invariant:
    """``no-error``, a built-in (:data:`BUILT_IN`), or a Python expression over ``inv``, ``payload``,
    ``error`` and ``history`` that must be true."""

    text: str
    code: CodeType | None = field(default=None, compare=False, repr=False)
    expression: str = ""
    """The expression the scenario's ``holds`` states (the text itself, or a built-in's)."""

    @property
    def is_no_error(self) -> bool:
        return self.code is None

    @classmethod
    def parse(cls, text: str) -> Invariant:
        if text.strip() == "no-error":
            return cls("no-error")
        if text.strip() in BUILT_IN:
            expression = BUILT_IN[text.strip()]
            return cls(text.strip(), compile(expression, f"<--invariant {text.strip()}>", "eval"), expression)
        try:
            code = compile(text, "<--invariant>", "eval")
        except SyntaxError as e:
            raise ConfigError(f"--invariant {text!r}: not a Python expression ({e.msg}); write no-error, "
                              f"{', '.join(BUILT_IN)}, or an expression over inv, payload and error such as "
                              "'error is None'") from None
        return cls(text, code, text)

    def violation(self, inv: Invocation, history: Sequence[Invocation] = ()) -> str | None:
        """Why ``inv`` breaks the invariant, or None when it holds (``history``: the invocations so far)."""
        if self.code is None:
            return None if inv.error is None else f"the invocation failed with {_error_line(inv.error)}"
        # The user's own expression, evaluated like an assertion in their test; the scenario's
        # `expect: {holds: ...}` evaluates it the same way.
        if self.text in BUILT_IN and expression_failure(self.code, inv, history) is not None:
            tenants = sorted({str(h.tenant_id) for h in history if h.instance_id == inv.instance_id})
            return f"instance {inv.instance_id} served the tenants {', '.join(tenants)}"
        return expression_failure(self.code, inv, history)


class InvariantViolation(Exception):
    """An invariant did not hold after ``steps``; the last step is the invoke that broke it."""

    def __init__(self, invariant: Invariant, reason: str, steps: Sequence[StepRecord], index: int, count: int,
                 inv: Invocation) -> None:
        super().__init__(f"invariant {invariant.text}: {reason}")
        self.invariant = invariant
        self.reason = reason
        self.steps = list(steps)
        self.index = index  # which invocation of the last step, from 0
        self.count = count  # how many the last step made
        self.error = inv.error
        self.payload = inv.payload


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "…"


def _error_line(error: dict[str, Any]) -> str:
    message = _one_line(str(error.get("errorMessage", "")))
    return f"{error.get('errorType')}: {message}" if message else str(error.get("errorType"))


# -- configuration ------------------------------------------------------------------------------

DEFAULT_TENANTS = ("tenant-a", "tenant-b")
_MODEL_KEYS = ("snap_start", "provisioned_concurrency", "tenant_isolation", "capacity_provider", "max_concurrency",
               "min_environments", "max_environments")
MODELS: dict[str, Any] = {
    "on-demand": lambda cfg: {},
    "provisioned": lambda cfg: {"provisioned_concurrency": 1},
    "snap-start": lambda cfg: {"snap_start": True},
    "tenant-isolation": lambda cfg: {"tenant_isolation": True},
    "managed": lambda cfg: {"capacity_provider": "chaos", "max_concurrency": max(2, cfg.concurrency)},
}
"""``--model`` NAME: the deploy settings it adds (Managed Instances: as many workers as a burst has)."""


def _model_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The execution models' settings given as flags (``--snap-start`` ...)."""
    return {key: getattr(args, key, None) for key in _MODEL_KEYS if getattr(args, key, None) is not None}




@dataclass
class ChaosConfig:
    """What ``lambdasim chaos`` tests and how hard."""

    deploy: Body
    """The settings of the scenario's deploy step (``code_dir`` relative to ``out``'s folder)."""
    events: list[Any]
    invariants: list[Invariant]
    out: str = DEFAULT_OUT
    seed: int = 0
    examples: int = 25
    steps: int = 8
    shrink_runs: int = 100
    concurrency: int = 3
    services: dict[str, str] = field(default_factory=dict)
    """Backing services, name -> provider (``auto``, ``binary``, ...): all run, and faults pick among the names."""
    sandbox: str = "auto"
    network: str = "isolated"
    package: str = "host"
    """What functions may import (``Simulator(package=...)``): ``host``, or ``strict`` as on Lambda."""
    verify: bool = True
    hypothesis_dir: str = field(default_factory=lambda: default_hypothesis_dir())
    """Where Hypothesis keeps its files (its ``.hypothesis`` folder): not the working directory."""
    models: list[str] = field(default_factory=list)
    """The execution models (:data:`MODELS`) an example's deploy picks from; none: ``deploy`` as it is."""
    tenants: list[str] = field(default_factory=lambda: list(DEFAULT_TENANTS))
    """The tenant ids invocations of a tenant-isolated deploy are drawn from."""
    setup: list[Body] = field(default_factory=list)
    """``aws:`` steps (boto3 calls, from ``--setup``) made after the deploy in every run, and written after it."""
    runtime: str | None = None
    """The function's runtime where ``deploy`` does not say it (a template's); None: this Python's."""

    def deploys(self) -> list[Body]:
        """The deploy step of each model an example may pick (``deploy`` alone without ``models``)."""
        if not self.models:
            return [dict(self.deploy)]
        base = {k: v for k, v in self.deploy.items() if k not in _MODEL_KEYS}
        runtime = base.get("runtime", self.runtime or f"python{PYTHON_VERSION}")
        out = []
        for model in self.models:
            body = {**base, **MODELS[model](self)}
            if model == "snap-start" and runtime not in SNAPSTART_RUNTIMES:
                body["runtime"] = SNAPSTART_RUNTIMES[0]
            if model == "managed" and runtime not in MANAGED_RUNTIMES:
                body["runtime"] = MANAGED_RUNTIMES[0]
            out.append(body)
        return out

    @property
    def name(self) -> str:
        """The deployed function's name in the simulator (from a template: its logical ID or key)."""
        return str(self.deploy.get("name") or self.deploy["function"])

    @property
    def subject(self) -> str:
        """What is tested, for messages: the handler, or the template's function."""
        if "template" in self.deploy:
            return f"{self.deploy['function']} of {self.deploy['template']}"
        return str(self.deploy["handler"])

    @property
    def base_dir(self) -> Path:
        return Path(os.path.abspath(self.out)).parent

    @property
    def keepalive_s(self) -> float:
        return float(self.deploy.get("keepalive_s", FunctionConfig.keepalive_s))

    def simulator_settings(self) -> dict[str, Any]:
        """The scenario's ``simulator:`` mapping (only what differs from the defaults)."""
        out: dict[str, Any] = {}
        if self.sandbox != "auto":
            out["sandbox"] = self.sandbox
        if self.network != "isolated":
            out["network"] = self.network
        if self.package != "host":
            out["package"] = self.package
        if self.services:
            # A list of names while every provider is auto (the usual case), else a mapping of name to provider.
            auto = all(provider == "auto" for provider in self.services.values())
            out["services"] = list(self.services) if auto else dict(self.services)
        return out


def default_hypothesis_dir() -> str:
    """Where chaos lets Hypothesis keep its files when ``--hypothesis-dir`` is not given.

    ``$HYPOTHESIS_STORAGE_DIRECTORY`` when set (Hypothesis' own setting), else ``lambdasim/hypothesis``
    in the user's cache folder: ``$XDG_CACHE_HOME`` (default ``~/.cache``; ``~/Library/Caches`` on macOS).
    """
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return os.path.abspath(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser(
        "~/Library/Caches" if sys.platform == "darwin" else "~/.cache")
    return os.path.join(os.path.abspath(cache), "lambdasim", "hypothesis")


@contextlib.contextmanager
def _hypothesis_home(path: str) -> Iterator[None]:
    """Hypothesis' files (it caches the constants of local source files) go to ``path`` while the search
    runs; Hypothesis would otherwise create ``.hypothesis/`` in the working directory, unasked."""
    from hypothesis import configuration

    # The folder Hypothesis had settled on (None: not yet), so that Hypothesis in the same process (a
    # test calling chaos) finds its own again afterwards.
    previous = getattr(configuration, "__hypothesis_home_directory", None)
    configuration.set_hypothesis_home_dir(path)
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(previous)


def _path_for(path: str, base: Path) -> str:
    """``path`` relative to the scenario's folder when that reads well, else absolute."""
    real = os.path.realpath(path)
    rel = os.path.relpath(real, os.path.realpath(base))
    return real if rel.startswith(os.path.join("..", "..", "..")) else rel


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _events(args: argparse.Namespace) -> list[Any]:
    if args.events is not None:
        path = args.events[1:] if args.events.startswith("@") else args.events
        events = read_json_argument("@" + path, "--events")
        if not isinstance(events, list) or not events:
            raise ConfigError(f"--events {path}: write a JSON list with at least one event, e.g. "
                              '[{"action": "put"}, {"action": "get"}]')
        return events
    if args.event:
        return [read_json_argument(text, "--event") for text in args.event]
    return [{}]


def config_from_args(args: argparse.Namespace) -> ChaosConfig:
    """Validate the command line of ``lambdasim chaos``; raises ConfigError saying what to fix."""
    out = args.out or DEFAULT_OUT
    base = Path(os.path.abspath(out)).parent
    given: dict[str, Any] = {}  # what the command line changes of a template's function
    target = getattr(args, "target", None)
    if target is not None:
        if args.template is None or args.function is not None:
            raise ConfigError(f"{target!r}: a function named without --function goes with --template (and not with "
                              "--function too); a handler is given with --handler")
        args.function = target
    if args.template is not None:
        if args.handler is not None or args.code_dir is not None:
            raise ConfigError("give either --template and --function, or --handler and --code-dir, not both")
        # Read here to check it, with errors in the command's flags: the template's resources are created by each
        # run's deploy (from the template), so that !Ref and !GetAtt of them give placeholders here. --env adds to
        # (or replaces) its variables.
        given.update(template_overrides(args))  # --layer/--no-layers, --parameter-overrides
        environment = env_argument(args.env) or None
        read = read_template_function(args.template, args.function, environment=environment,
                                      layers=given.get("layers"), parameters=given.get("parameters"))
        function, kwargs = read.name, read.deploy_kwargs()
        given.update({key: value for key, value in (("memory_mb", args.memory), ("timeout_s", args.timeout),
                                                    ("runtime", getattr(args, "runtime", None))) if value is not None})
        given.update(_model_flags(args))
        if environment:
            given["environment"] = environment
        kwargs.update(given)
        if args.name:  # the simulator's handle and the function's name on Lambda, as deploy_from_template(name=)
            kwargs["name"] = args.name
    else:
        if args.function is not None:
            raise ConfigError("--function goes with --template; with --handler, name the function with --name")
        if not args.handler:
            raise ConfigError("say what to test: --handler module.function --code-dir DIR, or --template FILE "
                              "--function NAME")
        kwargs = {"handler": args.handler, "code_dir": args.code_dir or ".",
                  "name": args.name or args.handler.rsplit(".", 1)[0].replace(".", "-").replace("/", "-"),
                  "environment": env_argument(args.env), "layers": list(getattr(args, "layer", None) or ())}
        template_overrides(args)  # refuses --no-layers and --parameter-overrides
        if args.memory is not None:
            kwargs["memory_mb"] = args.memory
        if args.timeout is not None:
            kwargs["timeout_s"] = args.timeout
        kwargs.update(_model_flags(args))
        if getattr(args, "runtime", None):
            kwargs["runtime"] = args.runtime
        if "." not in args.handler.strip("."):
            raise ConfigError(f"--handler {args.handler!r} is not module.function; use e.g. app.handler")
    handler = str(kwargs["handler"])
    code_dir = str(kwargs["code_dir"])
    if not os.path.isdir(code_dir):
        raise ConfigError(f"--code-dir {code_dir!r} is not a directory (looked for {os.path.abspath(code_dir)}); "
                          "pass the folder that holds the handler's module")
    config = FunctionConfig(name=str(kwargs["name"]), handler=handler, code_dir=os.path.realpath(code_dir),
                            **{k: v for k, v in kwargs.items()
                               if k in ("memory_mb", "timeout_s", "ephemeral_storage_mb", "environment",
                                        "reserved_concurrency", "runtime", *_MODEL_KEYS)},
                            layers=tuple(os.path.realpath(p) for p in kwargs.get("layers") or ()))
    config.validate()
    if args.template is not None:
        # The scenario deploys from the template, so that its resources are created in each run and on replay:
        # what the command line changes, and the execution models (which decide how the steps run).
        deploy: Body = {"template": _path_for(args.template, base), "function": function,
                        **({"name": args.name} if args.name else {}),
                        **{k: _number(v) if k in ("memory_mb", "timeout_s") else v for k, v in given.items()
                           if k not in _MODEL_KEYS}}
        if "layers" in given:  # --no-layers: layers: [] (none)
            deploy["layers"] = [_path_for(str(p), base) for p in given["layers"]]
        deploy.update({key: getattr(config, key) for key in _MODEL_KEYS
                       if getattr(config, key) != getattr(FunctionConfig, key)})
        return _chaos_config(args, out, deploy, config.runtime)
    deploy = {"handler": handler, "code_dir": _path_for(code_dir, base), "name": config.name}
    for key in ("memory_mb", "timeout_s", "ephemeral_storage_mb"):
        if key in kwargs and kwargs[key] != getattr(FunctionConfig, key):
            deploy[key] = _number(kwargs[key])
    if kwargs.get("environment"):
        deploy["environment"] = dict(kwargs["environment"])
    if kwargs.get("reserved_concurrency") is not None:
        deploy["reserved_concurrency"] = kwargs["reserved_concurrency"]
    if kwargs.get("layers"):
        deploy["layers"] = [_path_for(str(p), base) for p in kwargs["layers"]]
    if config.runtime != f"python{PYTHON_VERSION}":
        deploy["runtime"] = config.runtime
    deploy.update({key: getattr(config, key) for key in _MODEL_KEYS
                   if getattr(config, key) != getattr(FunctionConfig, key)})
    return _chaos_config(args, out, deploy, config.runtime)


def _chaos_config(args: argparse.Namespace, out: str, deploy: Body, runtime: str) -> ChaosConfig:
    """The ChaosConfig of the command line ``args`` for the deploy step ``deploy`` (of a function of ``runtime``)."""
    models = list(dict.fromkeys(getattr(args, "model", None) or ()))
    for model in models:
        if model not in MODELS:
            raise ConfigError(f"--model {model!r} is not an execution model; use one of {', '.join(MODELS)}")
    tenants = list(dict.fromkeys(getattr(args, "tenant_id", None) or DEFAULT_TENANTS))

    services = services_text(args.services)
    for flag, value, low in (("--examples", args.examples, 1), ("--steps", args.steps, 1), ("--seed", args.seed, 0),
                             ("--shrink-runs", args.shrink_runs, 0), ("--concurrency", args.concurrency, 1)):
        if value < low:
            raise ConfigError(f"{flag} {value}: use a whole number >= {low}")
    return ChaosConfig(deploy=deploy, events=_events(args), invariants=[Invariant.parse(t) for t in args.invariant
                                                                        or ["no-error"]],
                       out=out, seed=args.seed, examples=args.examples, steps=args.steps,
                       shrink_runs=args.shrink_runs, concurrency=args.concurrency, services=services,
                       sandbox=args.sandbox, network=getattr(args, "network", None) or "isolated",
                       package="strict" if getattr(args, "strict_package", False) else "host",
                       verify=not args.no_verify,
                       hypothesis_dir=os.path.abspath(args.hypothesis_dir) if getattr(args, "hypothesis_dir", None)
                       else default_hypothesis_dir(), models=models, tenants=tenants, runtime=runtime,
                       setup=[{"service": c.service, "call": c.method, "args": c.args}
                              for c in (load_setup(args.setup) if getattr(args, "setup", None) else [])])


# -- the state machine ---------------------------------------------------------------------------


class _BudgetSpent(BaseException):
    """Ends Hypothesis's run when shrinking stalls or its budget is spent; a BaseException, so that Hypothesis
    does not take it for a failure of the function (it may wrap it in an error of its own: Search.spent tells)."""


@dataclass
class Search:
    """Bookkeeping across the examples of one run: how many ran, and the smallest violation seen.

    Hypothesis's own answer is the violation its final replay raises. Each run starts a
    Simulator, and Hypothesis's last shrink passes rarely change the steps, so the run is cut
    short once ``patience`` runs in a row did not fail (while shrinking, Hypothesis runs only
    candidates simpler than its current example, so each failing run is progress) or
    ``shrink_runs`` runs followed the first failure; the smallest violation seen then stands
    in, as it does when Hypothesis gives up because the function did not behave the same on a
    replay (timing).
    """

    shrink_runs: int = 100
    patience: int = PATIENCE
    runs: int = 0
    first_failure: int | None = None
    last_failure: int | None = None
    best: InvariantViolation | None = None
    spent: bool = False

    def started(self) -> None:
        self.runs += 1
        if self.first_failure is None or self.last_failure is None:
            return
        if self.runs - self.last_failure > self.patience or self.runs - self.first_failure > self.shrink_runs:
            self.spent = True
            raise _BudgetSpent

    def failed(self, violation: InvariantViolation) -> None:
        if self.first_failure is None:
            self.first_failure = self.runs
        self.last_failure = self.runs
        if self.best is None or _size(violation) <= _size(self.best):
            self.best = violation


def _size(violation: InvariantViolation) -> tuple[int, int, int]:
    """Smaller is simpler: fewer steps, fewer invocations, shorter settings."""
    invocations = sum(int(body.get("count", 1)) for kind, body in violation.steps if kind == "invoke")
    return len(violation.steps), invocations, len(json.dumps(violation.steps, default=str))


class Run:
    """One sequence of steps in a Simulator of its own, with the function deployed; the steps run
    exactly as the scenario file will run them: built from their YAML mappings."""

    def __init__(self, cfg: ChaosConfig, deploy: Body | None = None) -> None:
        self.cfg = cfg
        self.steps: list[StepRecord] = []
        self.stopped: set[str] = set()  # services stopped by a step
        self.sim = Simulator(sandbox=cfg.sandbox, services=dict(cfg.services) or None, network=cfg.network,
                             package=cfg.package)
        self.tenant_isolation = bool((deploy or cfg.deploy).get("tenant_isolation"))
        try:
            self.ctx = RunContext(Scenario(name="chaos", file=cfg.out, steps=(), base_dir=cfg.base_dir), self.sim)
            self.do("deploy", deploy or cfg.deploy)
            for i, body in enumerate(cfg.setup):  # not a step of the sequence: every run makes these calls
                STEPS["aws"].from_yaml(Node(body, cfg.out, 1, f"setup[{i}].aws", cfg.base_dir, ScenarioError)).run(
                    self.ctx)
        except BaseException:
            self.sim.close()
            raise

    def close(self) -> None:
        self.sim.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def live(self) -> int:
        """How many instances of the function are alive."""
        return len(self.sim.functions[self.cfg.name].instances)

    def do(self, kind: str, body: Body) -> None:
        index = len(self.steps)
        node = Node(body, self.cfg.out, index + 1, f"steps[{index}].{kind}", self.cfg.base_dir, ScenarioError)
        current = STEPS[kind].from_yaml(node)
        self.steps.append((kind, body))
        self.ctx.step_index = index
        current.run(self.ctx)
        if kind == "service" and body["action"] in ("stop", "start"):
            (self.stopped.add if body["action"] == "stop" else self.stopped.discard)(body["name"])

    def invoke(self, body: Body) -> None:
        """An invoke step, then the invariants on each of its invocations: InvariantViolation if one breaks."""
        self.do("invoke", body)
        made = self.ctx.last
        for i, inv in enumerate(made):
            for invariant in self.cfg.invariants:
                reason = invariant.violation(inv, self.ctx.history)
                if reason is not None:
                    raise InvariantViolation(invariant, reason, self.steps, i, len(made), inv)

    def step(self, kind: str, body: Body) -> None:
        if kind == "invoke":
            self.invoke(body)
        else:
            self.do(kind, body)


def replay(cfg: ChaosConfig, steps: Sequence[StepRecord]) -> InvariantViolation | None:
    """Run ``steps`` (the deploy first) in a new Simulator: the violation they end in, or None.

    A step that cannot run any more (``instance: 2`` of a function with one instance, a service
    started while it runs) makes the sequence one that does not fail.
    """
    with Run(cfg, steps[0][1] if steps and steps[0][0] == "deploy" else None) as run:
        try:
            for kind, body in steps[1:]:
                run.step(kind, body)
        except InvariantViolation as violation:
            return violation
        except LambdaSimError:  # ScenarioError too: a step that no longer fits
            return None
    return None


def _simpler(steps: Sequence[StepRecord]) -> list[list[StepRecord]]:
    """Candidates one edit simpler than ``steps``: a step left out (latest first), a burst of
    invocations made smaller, an instance index made 0."""
    out: list[list[StepRecord]] = []
    for i in range(len(steps) - 1, 0, -1):
        out.append([*steps[:i], *steps[i + 1:]])
    for i, (kind, body) in enumerate(steps):
        if kind == "invoke" and body.get("count", 1) > 1:
            for count in range(1, int(body["count"])):
                smaller = {"event": body["event"]} if count == 1 else {**body, "count": count, "concurrency": count}
                out.append([*steps[:i], (kind, smaller), *steps[i + 1:]])
        if kind in ("crash", "destroy") and body.get("instance", 0) != 0:
            out.append([*steps[:i], (kind, {**body, "instance": 0}), *steps[i + 1:]])
    return out


def polish(cfg: ChaosConfig, violation: InvariantViolation, budget: int = 40) -> tuple[InvariantViolation, int]:
    """Greedily simplify a failing sequence further, one edit at a time, each checked by a run.

    Hypothesis's shrinking can stop short of this: it is cut at ``--shrink-runs``, it stops when
    the function does not behave the same on a replay, and it rarely turns a burst of concurrent
    invocations into a single one. Returns the simplest violation found and the runs spent.
    """
    best, runs, improved = violation, 0, True
    while improved and runs < budget:
        improved = False
        for candidate in _simpler([(kind, dict(body)) for kind, body in best.steps]):
            if runs >= budget:
                break
            runs += 1
            found = replay(cfg, candidate)
            if found is not None and _size(found) < _size(best):
                best, improved = found, True
                break
    return best, runs


def make_machine(cfg: ChaosConfig, search: Search | None = None) -> type[RuleBasedStateMachine]:
    """A state machine class for ``cfg``; each instance is one example with a Simulator of its own.

    Rules draw only from fixed ranges and have no preconditions on the function's state: with
    concurrent invocations the number and order of instances may differ between replays of the
    same steps, and draws that depended on them would make Hypothesis give up. A rule with
    nothing to act on (no live instance) does nothing and leaves no step. An invocation that
    breaks an invariant raises InvariantViolation, which ends the example.
    """
    events = list(cfg.events)
    services = list(cfg.services)
    known = set(STEPS)
    tracker = search if search is not None else Search()

    deploys = cfg.deploys()
    tenants = list(cfg.tenants)

    class LambdaLifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            tracker.started()
            super().__init__()
            self._run: Run | None = Run(cfg, deploys[0]) if len(deploys) == 1 else None

        @property
        def run(self) -> Run:
            if self._run is None:  # a first step before the deploy rule: the first model's deploy
                self._run = Run(cfg, deploys[0])
            return self._run

        def teardown(self) -> None:
            if self._run is not None:
                self._run.close()

        if len(deploys) > 1:

            @initialize(model=st.integers(0, len(deploys) - 1))
            def r0_deploy_a_model(self, model: int) -> None:
                if self._run is not None:
                    self._run.close()
                self._run = Run(cfg, deploys[model])

        def _live(self) -> int:
            return self.run.live()

        def _do(self, kind: str, body: Body) -> None:
            self.run.do(kind, body)

        def _invoke(self, body: Body, tenant: int = 0) -> None:
            if self.run.tenant_isolation:  # every invocation of a tenant-isolated function needs its tenant
                body = {**body, "tenant_id": tenants[tenant % len(tenants)]}
            try:
                self.run.invoke(body)
            except InvariantViolation as violation:
                tracker.failed(violation)
                raise

        # Hypothesis orders rules by name and shrinks towards the first, so the names put the
        # simplest first. Concurrency is drawn from [1, 1, 2, ...]: half the invocations run
        # alone, and a burst shrinks to a single invocation. Every other rule is something that
        # happens to the function followed by an invocation, since only an invocation can show
        # what it did; polish() drops those invocations again where the failure needs none.

        @rule(event=st.sampled_from(events), count=st.sampled_from([1, 1, *range(2, cfg.concurrency + 1)]),
              tenant=st.integers(0, len(tenants) - 1))
        def r1_invoke(self, event: Any, count: int, tenant: int) -> None:
            self._invoke({"event": event} if count == 1 else {"event": event, "count": count, "concurrency": count},
                         tenant)

        @rule(keep=st.integers(0, 1), then=st.sampled_from(events))
        def r2_scale_down(self, keep: int, then: Any) -> None:
            if self._live() > keep:
                self._do("scale_down", {"keep": keep})
            self._invoke({"event": then})

        if "advance_clock" in known:

            @rule(then=st.sampled_from(events))
            def r3_idle_past_keepalive(self, then: Any) -> None:
                if self._live():
                    self._do("advance_clock", {"seconds": _number(cfg.keepalive_s + 1)})
                self._invoke({"event": then})

        @rule(then=st.sampled_from(events))
        def r4_redeploy(self, then: Any) -> None:
            self._do("redeploy", {})
            self._invoke({"event": then})

        if "crash" in known:

            @rule(pick=st.integers(0, _INSTANCE_CHOICES - 1), then=st.sampled_from(events))
            def r5_crash(self, pick: int, then: Any) -> None:
                live = self._live()
                if live:
                    self._do("crash", {"function": cfg.name, "instance": pick % live})
                self._invoke({"event": then})

        if "destroy" in known:

            @rule(pick=st.integers(0, _INSTANCE_CHOICES - 1), then=st.sampled_from(events))
            def r6_destroy(self, pick: int, then: Any) -> None:
                live = self._live()
                if live:
                    self._do("destroy", {"function": cfg.name, "instance": pick % live})
                self._invoke({"event": then})

        if services and "service" in known:

            @rule(name=st.sampled_from(services), then=st.sampled_from(events))
            def r7_flush_service(self, name: str, then: Any) -> None:
                if name not in self.run.stopped:  # a stopped server has nothing to flush
                    self._do("service", {"name": name, "action": "flush"})
                self._invoke({"event": then})

            @rule(name=st.sampled_from(services), then=st.sampled_from(events))
            def r8_stop_or_start_service(self, name: str, then: Any) -> None:
                self._do("service", {"name": name, "action": "start" if name in self.run.stopped else "stop"})
                self._invoke({"event": then})

    LambdaLifecycle.__name__ = LambdaLifecycle.__qualname__ = "LambdaLifecycle"
    return LambdaLifecycle


# -- writing the scenario -----------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_.][A-Za-z0-9_./-]*")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", ".inf", ".nan"}
# Escaped as \uXXXX inside quotes: what a YAML stream may not hold as it is (PyYAML's reader refuses it), the
# line breaks YAML would fold (NEL, LS, PS) and the byte-order mark.
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
                            "\U00010000-\U0010ffff]")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    quoted = json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
    return _NOT_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def flow(value: Any) -> str:
    """``value`` (JSON data) as one line of YAML flow style that the scenario loader reads back exactly."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(str(k))}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return _scalar(value)


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())


def final_steps(violation: InvariantViolation) -> list[StepRecord]:
    """The counterexample's steps, with the failing invoke named and the expect that states the broken
    invariant: ``error: null`` for no-error, ``holds: EXPR`` for an expression."""
    steps = [(kind, dict(body)) for kind, body in violation.steps]
    kind, body = steps[-1]
    if kind == "invoke":
        body["as"] = "failing"
        invariant = violation.invariant
        check: Body = {"error": None} if invariant.is_no_error else {"holds": invariant.expression}
        steps.append(("expect", {"invocation": "failing", **check}))
    return steps


def scenario_yaml(cfg: ChaosConfig, violation: InvariantViolation) -> str:
    """The counterexample as a scenario file (see scenarios/README.md)."""
    steps = final_steps(violation)
    lifecycle = len(violation.steps) - 1
    header = (f"A counterexample found by `lambdasim chaos` (seed {cfg.seed}, {cfg.examples} examples of up to "
              f"{cfg.steps} steps), shrunk to {lifecycle} step(s) after the deploy.\n"
              f"Invariant: {violation.invariant.text}\n"
              f"It broke at the last invoke: {violation.reason}\n")
    if violation.count > 1:
        header += (f"That was invocation {violation.index + 1} of the {violation.count} run concurrently there; "
                   "expect checks the step's last one, so a run\nmay place the failing one elsewhere.\n")
    header += f"Run it with: lambdasim run {cfg.out}\n"
    lines = [_comment(header), f"name: {_scalar('chaos counterexample for ' + cfg.subject)}\n"]
    simulator = cfg.simulator_settings()
    if simulator:
        lines.append(f"simulator: {flow(simulator)}\n")
    lines.append("steps:\n")
    steps = [*steps[:1], *(("aws", body) for body in cfg.setup), *steps[1:]]
    lines += [f"  - {kind}: {flow(body)}\n" for kind, body in steps]
    return "".join(lines)


# -- running -------------------------------------------------------------------------------------


def _hypothesis_settings(cfg: ChaosConfig) -> settings:
    return settings(max_examples=cfg.examples, stateful_step_count=cfg.steps, database=None, deadline=None,
                    derandomize=False, suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                    report_multiple_bugs=False, print_blob=False,
                    phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink))


@dataclass
class Outcome:
    """What the search found: the violation to write (None: none), and how it was settled."""

    violation: InvariantViolation | None
    how: str = "shrunk"  # shrunk, flaky (Hypothesis gave up on a replay), error (a later run failed), none
    runs: int = 0
    note: str = ""
    polish_runs: int = 0


def find_counterexample(cfg: ChaosConfig) -> Outcome:
    """Run Hypothesis, then polish(), and return the simplest violation found, if any.

    Errors of the harness itself (a sandbox that fails, a step that cannot run) propagate,
    unless a violation was seen before them.
    """
    with _hypothesis_home(cfg.hypothesis_dir):
        outcome = _hypothesis_search(cfg)
    if outcome.violation is not None:
        outcome.violation, outcome.polish_runs = polish(cfg, outcome.violation)
    return outcome


def _hypothesis_search(cfg: ChaosConfig) -> Outcome:
    search = Search(shrink_runs=cfg.shrink_runs)
    machine = make_machine(cfg, search)
    first: Any = machine()  # fail fast, once, on a sandbox or a service that cannot start
    first.teardown()
    run: Any = run_state_machine_as_test  # untyped in Hypothesis
    try:
        run(hypothesis_seed(cfg.seed)(machine), settings=_hypothesis_settings(cfg))
    except InvariantViolation as violation:
        return Outcome(violation, "shrunk", search.runs)
    except BaseException as e:
        if search.spent:
            return Outcome(search.best, "shrunk", search.runs)
        if search.best is None or not isinstance(e, Exception):
            raise
        if isinstance(e, Flaky):
            return Outcome(search.best, "flaky", search.runs, _one_line(str(e).split("\n", 1)[0]))
        return Outcome(search.best, "error", search.runs, f"{type(e).__name__}: {_one_line(str(e))}")
    return Outcome(None, "none", search.runs)


def run_chaos(cfg: ChaosConfig, out: TextIO) -> int:
    """Search for a counterexample; write it to ``cfg.out``. 0: none found, 1: found, 2: harness error."""
    optional = [kind for kind in ("advance_clock", "crash", "destroy", "service") if kind not in STEPS]
    out.write(f"lambdasim chaos: {cfg.subject} ({len(cfg.events)} event(s)), {cfg.examples} examples of "
              f"up to {cfg.steps} steps, seed {cfg.seed}; invariant(s): "
              f"{', '.join(i.text for i in cfg.invariants)}\n"
              f"  (Hypothesis keeps its files in {cfg.hypothesis_dir}; --hypothesis-dir to change)\n")
    if optional:
        out.write(f"  (this build's scenarios have no {', '.join(optional)} step: those rules are off)\n")
    out.flush()
    outcome = find_counterexample(cfg)
    violation = outcome.violation
    if violation is None:
        out.write(f"No counterexample: the invariant(s) held in all {cfg.examples} examples.\n")
        return 0

    text = scenario_yaml(cfg, violation)
    folder = os.path.dirname(os.path.abspath(cfg.out))
    os.makedirs(folder, exist_ok=True)
    with open(cfg.out, "w", encoding="utf-8") as f:
        f.write(text)
    steps = final_steps(violation)
    out.write(f"Counterexample, shrunk to {len(violation.steps) - 1} step(s) after the deploy:\n")
    for number, (kind, body) in enumerate(steps, 1):
        out.write(f"  {number}. {kind}: {flow(body)}\n")
    out.write(f"Invariant {violation.invariant.text} does not hold: {violation.reason}\n")
    if outcome.how == "flaky":
        out.write("Note: the same steps did not always give the same result (timing, e.g. which instance a "
                  "concurrent invocation lands on), so Hypothesis stopped; this is the smallest failing sequence "
                  "seen.\n")
    elif outcome.how == "error":
        out.write(f"Note: a later run failed in the harness ({outcome.note}); this is the smallest failing sequence "
                  "seen before.\n")
    out.write(f"Wrote {cfg.out}; run it with: lambdasim run {cfg.out}\n")
    try:
        load_scenario(cfg.out)
    except ScenarioError as e:  # pragma: no cover - a bug in the writer above
        out.write(f"Warning: the written scenario does not load, which is a lambdasim bug: {e}\n")
        return 1
    if cfg.verify:
        try:
            run_file(cfg.out)
        except ScenarioFailure:
            out.write("Re-ran it: it fails, as it should until the bug is fixed.\n")
        except (LambdaSimError, OSError) as e:
            out.write(f"Re-ran it: it could not run: {_one_line(str(e))}\n")
        else:
            out.write("Re-ran it: it passed this time; the failure depends on timing, so it may need a few runs.\n")
    return 1


def chaos_main(args: argparse.Namespace, out: TextIO) -> int:
    """``lambdasim chaos`` after argparse: configuration errors raise ConfigError (exit 2)."""
    cfg = config_from_args(args)
    try:
        return run_chaos(cfg, out)
    except HypothesisException as e:
        raise LambdaSimError(f"Hypothesis stopped without a counterexample: {type(e).__name__}: "
                             f"{_one_line(str(e))}") from e
