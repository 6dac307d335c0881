"""The simulator's state: functions, versions, instances, routing, the virtual
clock and the trace. Plain data and decisions, no processes and no I/O, so every
rule here can be tested on its own.
"""

from __future__ import annotations

import enum
import math
import random
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambdasim._errors import ConfigError, SettingError

ACCOUNT_ID = "123456789012"
"""The AWS account every simulated function, ARN and template pseudo parameter belongs to."""
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
"""The functions' runtime: python3.X, the Python that runs lambdasim."""


CUSTOM_RUNTIMES = ("provided.al2023", "provided.al2", "provided")
"""Lambda's OS-only runtimes: the function brings its runtime, an executable ``bootstrap``."""
_PYTHON_RUNTIME = re.compile(r"^python3\.(9|1[0-4])$")
PYTHON_RUNTIMES_TEXT = "python3.9 ... python3.14"


def known_runtime(runtime: object) -> bool:
    """Whether lambdasim runs ``runtime``: a Python runtime (its built-in runtime, on this Python) or an
    OS-only one (:data:`CUSTOM_RUNTIMES`)."""
    return isinstance(runtime, str) and (runtime in CUSTOM_RUNTIMES or bool(_PYTHON_RUNTIME.fullmatch(runtime)))


def function_arn(region: str, function: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function}"

RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENV_KEY = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_])+$")


@dataclass(frozen=True)
class FunctionConfig:
    """One version's configuration, validated as Lambda's API validates it."""

    name: str
    handler: str
    code_dir: str
    memory_mb: int = 128
    timeout_s: float = 3.0
    ephemeral_storage_mb: int = 512
    environment: Mapping[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    keepalive_s: float = 600.0
    layers: tuple[str, ...] = ()
    runtime: str = f"python{PYTHON_VERSION}"
    """``python3.X`` (run on this process's Python) or one of :data:`CUSTOM_RUNTIMES`."""
    entry_point: tuple[str, ...] = ()
    """A container image's ``ENTRYPOINT`` (``ImageConfig.EntryPoint``): the instance runs it with the
    handler as its argument, in place of the runtime's own start (e.g. ``python -m awslambdaric``)."""

    @property
    def custom_runtime(self) -> bool:
        return self.runtime in CUSTOM_RUNTIMES

    @property
    def bills_init(self) -> bool:
        """Whether Lambda bills Init with the first invocation (REPORT's Billed Duration includes it):
        for custom runtimes and container images (an ``entry_point``)."""
        return self.custom_runtime or bool(self.entry_point)

    def validate(self) -> None:
        def bad(key: str, value: Any, allowed: str, setting: str | None = None) -> SettingError:
            return SettingError(self.name, setting or key, f"{key}={value!r} is not valid; {allowed}.")

        # Configs come from users' code and files: check types that the annotations only promise.
        def whole(value: object, low: int, high: int) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

        def seconds(value: object, high: float) -> bool:
            return (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and 0 < value <= high)

        name: object = self.name
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise bad("name", self.name, "use 1 to 64 letters, digits, '-' or '_'")
        runtime = self.runtime
        if not known_runtime(runtime):
            raise bad("runtime", self.runtime, f"use {PYTHON_RUNTIMES_TEXT} or one of {', '.join(CUSTOM_RUNTIMES)}")
        entry: object = self.entry_point
        if not isinstance(entry, tuple) or not all(isinstance(a, str) and a for a in entry):
            raise bad("entry_point", self.entry_point, "use a list of non-empty strings (the image's ENTRYPOINT)")
        if not whole(self.memory_mb, 128, 10240):
            raise bad("memory_mb", self.memory_mb, "Lambda allows 128 to 10240 MB")
        if not seconds(self.timeout_s, 900):
            raise bad("timeout_s", self.timeout_s, "Lambda allows more than 0 and at most 900 seconds")
        if not whole(self.ephemeral_storage_mb, 512, 10240):
            raise bad("ephemeral_storage_mb", self.ephemeral_storage_mb, "Lambda allows 512 to 10240 MB")
        if self.reserved_concurrency is not None and not whole(self.reserved_concurrency, 0, 2**31 - 1):
            raise bad("reserved_concurrency", self.reserved_concurrency, "use None or a whole number >= 0")
        if not seconds(self.keepalive_s, math.inf):
            raise bad("keepalive_s", self.keepalive_s, "use a positive number of seconds")
        reserved = sorted(k for k in self.environment if k in RESERVED_ENV)
        if reserved:
            raise SettingError(
                self.name, "environment",
                "Lambda was unable to configure your environment variables because "
                "the environment variables you have provided contains reserved keys that are currently not "
                f"supported for modification. Reserved keys used in this request: {', '.join(reserved)}",
            )
        items: list[tuple[object, object]] = list(self.environment.items())
        for key, value in items:
            if not isinstance(key, str) or not _ENV_KEY.fullmatch(key) or not isinstance(value, str):
                raise bad(f"environment[{key!r}]", value,
                          "keys start with a letter and hold letters, digits and '_'; values are strings",
                          "environment")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in self.environment.items())
        if size > 4096:
            raise SettingError(
                self.name, "environment",
                "Lambda was unable to configure your environment variables because "
                f"the environment variables you have provided exceeded the 4KB limit (they take {size} bytes).",
            )


class InstanceState(enum.StrEnum):
    """Where an execution environment is in its life."""

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


@dataclass
class InstanceRecord:
    """The model of one execution environment."""

    id: str
    function: str
    version: str
    created_at: float
    state: InstanceState = InstanceState.STARTING
    last_used: float = 0.0
    invocations: int = 0
    resets: int = 0
    needs_init: bool = True
    retiring: bool = False
    seq: int = 0
    """Order of last use: virtual time often stands still between invocations."""


class RoutingPolicy(Protocol):
    """Chooses which idle instance takes an invocation (None: start a new one)."""

    name: str
    destroy_after_use: bool

    def choose(self, idle: Sequence[InstanceRecord], rng: random.Random) -> InstanceRecord | None:
        """Pick from ``idle``, ordered least to most recently used."""


class WarmRouting:
    """Lambda's behaviour: the most recently used idle instance, else a new one."""

    name = "warm"
    destroy_after_use = False

    def choose(self, idle: Sequence[InstanceRecord], rng: random.Random) -> InstanceRecord | None:
        return idle[-1] if idle else None


class FreshRouting:
    """Every invocation on a new instance; the previous one is destroyed."""

    name = "fresh"
    destroy_after_use = True

    def choose(self, idle: Sequence[InstanceRecord], rng: random.Random) -> InstanceRecord | None:
        return None


class RandomRouting:
    """A random idle instance or a new one, with equal odds, from the seeded RNG."""

    name = "random"
    destroy_after_use = False

    def choose(self, idle: Sequence[InstanceRecord], rng: random.Random) -> InstanceRecord | None:
        pick = rng.randrange(len(idle) + 1)
        return idle[pick] if pick < len(idle) else None


ROUTING: dict[str, Callable[[], RoutingPolicy]] = {
    "warm": WarmRouting, "fresh": FreshRouting, "random": RandomRouting,
}


def routing_policy(name: str | RoutingPolicy) -> RoutingPolicy:
    if not isinstance(name, str):
        return name
    try:
        return ROUTING[name]()
    except KeyError:
        raise ConfigError(f"routing={name!r} is not a routing policy; use one of {', '.join(ROUTING)}.") from None


class Throttled(Exception):
    """The function's reserved concurrency is used up."""


class FunctionModel:
    """Versions and instances of one function, and the routing decisions."""

    def __init__(self, config: FunctionConfig) -> None:
        self.name = config.name
        self.versions: dict[str, FunctionConfig] = {"1": config}
        self.version = "1"
        self.instances: dict[str, InstanceRecord] = {}
        self._counter = 0
        self._seq = 0

    @property
    def config(self) -> FunctionConfig:
        return self.versions[self.version]

    def live(self) -> list[InstanceRecord]:
        return [i for i in self.instances.values() if i.state is not InstanceState.DEAD]

    def acquire(self, policy: RoutingPolicy, rng: random.Random, now: float) -> tuple[InstanceRecord, bool]:
        """Take an instance for one invocation; (record, is_new). Raises Throttled."""
        idle = sorted(
            (i for i in self.instances.values()
             if i.state is InstanceState.IDLE and i.version == self.version and not i.retiring),
            key=lambda i: i.seq,
        )
        # Reserved concurrency caps invocations in flight, whichever instance would take one.
        limit = self.config.reserved_concurrency
        running = sum(1 for i in self.instances.values() if i.state in (InstanceState.BUSY, InstanceState.STARTING))
        if limit is not None and running >= limit:
            raise Throttled
        chosen = policy.choose(idle, rng)
        if chosen is not None:
            chosen.state = InstanceState.BUSY
            return chosen, False
        self._counter += 1
        self._seq += 1
        record = InstanceRecord(
            id=f"{self.name}-{self._counter}", function=self.name, version=self.version, created_at=now,
            last_used=now, seq=self._seq,
        )
        self.instances[record.id] = record
        return record, True

    def acquire_wave(self, count: int, policy: RoutingPolicy, rng: random.Random,
                     now: float) -> list[tuple[InstanceRecord, bool] | None]:
        """Route ``count`` invocations that arrive together, in their order: each gets an
        instance (record, is_new) before any of them completes, so none can reuse another's;
        None for each one beyond the free reserved concurrency: the last ones are throttled."""
        wave: list[tuple[InstanceRecord, bool] | None] = []
        for _ in range(count):
            try:
                wave.append(self.acquire(policy, rng, now))
            except Throttled:
                wave.append(None)
        return wave

    def release(self, record: InstanceRecord, now: float, policy: RoutingPolicy) -> bool:
        """End an invocation; True when the instance must now be destroyed."""
        record.invocations += 1
        record.last_used = now
        self._seq += 1
        record.seq = self._seq
        if record.state is InstanceState.DEAD:
            return False
        if record.retiring or policy.destroy_after_use or record.version != self.version:
            return True
        record.state = InstanceState.IDLE
        return False

    def redeploy(self, config: FunctionConfig) -> list[InstanceRecord]:
        """Publish a new version; returns the old idle instances to destroy now.

        Busy instances of older versions finish their invocation and are retired then.
        """
        self.version = str(int(self.version) + 1)
        self.versions[self.version] = config
        doomed = []
        for record in self.live():
            record.retiring = True
            if record.state is InstanceState.IDLE:
                doomed.append(record)
        return doomed

    def scale_down(self, keep: int) -> list[InstanceRecord]:
        """Idle instances beyond the ``keep`` most recently used ones."""
        idle = sorted((i for i in self.live() if i.state is InstanceState.IDLE), key=lambda i: i.seq, reverse=True)
        return idle[max(keep, 0):]

    def expired(self, now: float) -> list[InstanceRecord]:
        """Idle instances whose keep-alive ran out at virtual time ``now``."""
        keepalive = {v: c.keepalive_s for v, c in self.versions.items()}
        return [i for i in self.live()
                if i.state is InstanceState.IDLE and now - i.last_used > keepalive[i.version]]


class VirtualClock:
    """Virtual time in seconds. It moves only when told; idle reaping follows it."""

    def __init__(self, on_advance: Callable[[float], None] | None = None) -> None:
        self._now = 0.0
        self._on_advance = on_advance

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0, hours: float = 0.0) -> float:
        """Move time forward and reap instances idle for longer than their keep-alive."""
        delta = seconds + 60.0 * minutes + 3600.0 * hours
        if not delta >= 0 or math.isinf(delta):  # also NaN
            raise ConfigError(f"clock.advance({delta}) would go back in time; use a positive duration.")
        self._now += delta
        if self._on_advance is not None:
            self._on_advance(self._now)
        return self._now


@dataclass(frozen=True)
class TraceEvent:
    """One thing that happened, at virtual time ``t``."""

    t: float
    kind: str
    function: str
    instance: str | None = None
    version: str | None = None
    request_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t, "kind": self.kind, "function": self.function, "instance": self.instance,
                "version": self.version, "request_id": self.request_id, "detail": dict(self.detail)}
