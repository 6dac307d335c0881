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
SNAPSTART_RUNTIMES = tuple(f"python3.{minor}" for minor in range(12, 15))
"""The Python runtimes Lambda offers SnapStart for."""
MANAGED_RUNTIMES = (*(f"python3.{minor}" for minor in range(13, 15)), "provided.al2023")
"""The runtimes of lambdasim's that Lambda Managed Instances run (Python 3.13 and later; the OS-only
provided.al2023, as for Rust)."""
MANAGED_DEFAULT_CONCURRENCY = 16
"""Managed Instances' default ``PerExecutionEnvironmentMaxConcurrency`` for Python (16 per vCPU)."""


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
LOG_FORMATS = ("Text", "JSON")
APPLICATION_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")
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
    snap_start: bool = False
    """SnapStart (``SnapStart: {ApplyOn: PublishedVersions}``): Init runs once per version, then every
    environment of the version is restored from that one snapshot (memory and /tmp)."""
    provisioned_concurrency: int = 0
    """Provisioned concurrency (``ProvisionedConcurrencyConfig``): environments initialised at deploy."""
    tenant_isolation: bool = False
    """Tenant isolation (``TenancyConfig: {TenantIsolationMode: PER_TENANT}``): environments per tenant id;
    fixed when the function is created."""
    capacity_provider: str | None = None
    """Lambda Managed Instances (``CapacityProviderConfig``): the capacity provider's name or ARN. Its
    environments run up to :attr:`max_concurrency` requests at once, one runtime process each."""
    max_concurrency: int | None = None
    """Managed Instances: ``PerExecutionEnvironmentMaxConcurrency`` (None: Python's default, 16)."""
    min_environments: int = 0
    """Managed Instances: ``FunctionScalingConfig.MinExecutionEnvironments``, started at deploy."""
    max_environments: int | None = None
    """Managed Instances: ``FunctionScalingConfig.MaxExecutionEnvironments``; beyond them, with every
    worker busy, requests are throttled (None: no limit)."""
    log_format: str = "Text"
    """``LoggingConfig.LogFormat``: ``Text`` or ``JSON`` (records and platform lines as JSON objects)."""
    application_log_level: str | None = None
    """``LoggingConfig.ApplicationLogLevel`` (JSON format only; None: INFO): :data:`APPLICATION_LOG_LEVELS`."""
    system_log_level: str | None = None
    """``LoggingConfig.SystemLogLevel`` (JSON format only; None: INFO): :data:`SYSTEM_LOG_LEVELS`."""
    tracing: bool = False
    """``TracingConfig: {Mode: Active}`` (SAM ``Tracing: Active``): requests are sampled for X-Ray."""
    function_name: str | None = None
    """Lambda's name of the function when it is not :attr:`name` (a template's function, addressed by its
    logical ID, named ``FunctionName`` or as CloudFormation/Serverless name it): what the function sees
    (``AWS_LAMBDA_FUNCTION_NAME``, its ARN, its log group). None: :attr:`name`."""
    max_retry_attempts: int = 2
    """``EventInvokeConfig.MaximumRetryAttempts``: how often an ``Event`` invocation whose function failed is
    retried (0 to 2)."""
    max_event_age_s: int = 21600
    """``EventInvokeConfig.MaximumEventAgeInSeconds``: how long an ``Event`` invocation may wait in the queue,
    retries and throttles included, before it is dropped (60 to 21600)."""
    interpreter: str = ""
    """Set by the simulator at deploy (``_interpreters.choose``): the host's ``python3.X`` that a function whose
    runtime names another Python than lambdasim's runs on; empty: lambdasim's own Python."""

    @property
    def lambda_name(self) -> str:
        """What Lambda names the function, and what it sees (its name, ARN, log group): :attr:`function_name`, else
        :attr:`name`."""
        return self.function_name or self.name

    @property
    def json_system_level(self) -> str | None:
        """The ``SystemLogLevel`` that filters the platform lines when they are JSON (``log_format`` JSON; Managed
        Instances always write JSON); None: the Text format."""
        return (self.system_log_level or "INFO") if self.log_format == "JSON" or self.managed else None

    @property
    def python_version(self) -> str:
        """The ``3.X`` the function's code runs on: its runtime's with :attr:`interpreter`, else lambdasim's."""
        return self.runtime.removeprefix("python") if self.interpreter else PYTHON_VERSION

    @property
    def managed(self) -> bool:
        """Whether the function runs on Lambda Managed Instances."""
        return self.capacity_provider is not None

    @property
    def concurrency_per_environment(self) -> int:
        """How many requests one environment runs at once: 1, or Managed Instances' maximum."""
        if not self.managed:
            return 1
        return self.max_concurrency if self.max_concurrency is not None else MANAGED_DEFAULT_CONCURRENCY

    @property
    def initialization_type(self) -> str:
        """``AWS_LAMBDA_INITIALIZATION_TYPE`` of an on-demand environment of this version (provisioned
        environments say ``provisioned-concurrency``)."""
        if self.snap_start:
            return "snap-start"
        if self.managed:
            return "lambda-managed-instances"
        return "on-demand"

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
        self._validate_models(bad, whole)
        if not whole(self.max_retry_attempts, 0, 2):
            raise bad("max_retry_attempts", self.max_retry_attempts, "Lambda allows 0 to 2 (retries of an Event "
                                                                     "invocation whose function failed)")
        if not whole(self.max_event_age_s, 60, 21600):
            raise bad("max_event_age_s", self.max_event_age_s, "Lambda allows a whole number of seconds from 60 to "
                                                               "21600 (6 hours)")
        self._validate_logging(bad)
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


    def _validate_logging(self, bad: Callable[..., SettingError]) -> None:
        if self.log_format not in LOG_FORMATS:
            raise bad("log_format", self.log_format, "Lambda allows 'Text' or 'JSON'")
        for key, allowed in (("application_log_level", APPLICATION_LOG_LEVELS),
                             ("system_log_level", SYSTEM_LOG_LEVELS)):
            level = getattr(self, key)
            if level is not None and level not in allowed:
                raise bad(key, level, f"Lambda allows {', '.join(allowed)} (or None)")
            if level is not None and self.log_format != "JSON":
                raise SettingError(self.name, key, f"{key} filters JSON logs only; give log_format='JSON' too, or "
                                                   "leave it out (Lambda sets log levels for the JSON format).")
        if not isinstance(self.tracing, bool):
            raise bad("tracing", self.tracing, "use True (TracingConfig Mode Active) or False")

    def log_environment(self) -> dict[str, str]:
        """What Lambda tells the runtime of :attr:`log_format` and :attr:`application_log_level`
        (``AWS_LAMBDA_LOG_FORMAT``, ``AWS_LAMBDA_LOG_LEVEL``): nothing for the Text format."""
        if self.log_format != "JSON":
            return {}
        return {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": self.application_log_level or "INFO"}

    def _validate_models(self, bad: Callable[..., SettingError], whole: Callable[[object, int, int], bool]) -> None:
        """The execution models' settings, and the combinations Lambda refuses."""
        for key in ("snap_start", "tenant_isolation"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, getattr(self, key), "use True or False")
        if not whole(self.provisioned_concurrency, 0, 2**31 - 1):
            raise bad("provisioned_concurrency", self.provisioned_concurrency, "use a whole number >= 0")
        provider: object = self.capacity_provider
        if provider is not None and (not isinstance(provider, str) or not provider):
            raise bad("capacity_provider", self.capacity_provider, "use the capacity provider's name or ARN, or None")
        if self.max_concurrency is not None and not whole(self.max_concurrency, 1, 1600):
            raise bad("max_concurrency", self.max_concurrency, "Lambda allows 1 to 1600 requests per environment")
        if not whole(self.min_environments, 0, 15000):
            raise bad("min_environments", self.min_environments, "Lambda allows 0 to 15000")
        if self.max_environments is not None and not whole(self.max_environments, 0, 15000):
            raise bad("max_environments", self.max_environments, "Lambda allows 0 to 15000, or None")
        if not self.managed:
            for key, default in (("max_concurrency", None), ("min_environments", 0), ("max_environments", None)):
                if getattr(self, key) != default:
                    raise SettingError(self.name, key, f"{key} is a setting of Lambda Managed Instances; give "
                                                       "capacity_provider= too, or leave it out.")
        elif self.runtime not in MANAGED_RUNTIMES:
            raise SettingError(self.name, "capacity_provider",
                               f"Lambda Managed Instances do not support {self.runtime}; they run "
                               f"{', '.join(MANAGED_RUNTIMES)}.")
        elif self.max_environments is not None and self.min_environments > self.max_environments:
            raise SettingError(self.name, "min_environments", f"min_environments={self.min_environments} is more "
                                                              f"than max_environments={self.max_environments}.")
        if self.snap_start:
            if self.runtime not in SNAPSTART_RUNTIMES:
                raise SettingError(self.name, "snap_start", f"SnapStart is not supported for {self.runtime}; "
                                                            f"Lambda offers it for {', '.join(SNAPSTART_RUNTIMES)}.")
            if self.ephemeral_storage_mb > 512:
                raise SettingError(self.name, "snap_start", "SnapStart is not supported for functions with "
                                                            "ephemeral storage greater than 512 MB.")
            if self.provisioned_concurrency:
                raise SettingError(self.name, "snap_start", "SnapStart is not supported with provisioned "
                                                            "concurrency.")
            if self.managed:
                raise SettingError(self.name, "snap_start", "SnapStart is not supported for functions on Lambda "
                                                            "Managed Instances.")
        if self.tenant_isolation and (self.snap_start or self.provisioned_concurrency or self.managed):
            other = ("SnapStart" if self.snap_start else "provisioned concurrency" if self.provisioned_concurrency
                     else "Lambda Managed Instances")
            raise SettingError(self.name, "tenant_isolation", f"Tenant isolation is not supported with {other}.")
        if self.managed and self.provisioned_concurrency:
            raise SettingError(self.name, "provisioned_concurrency", "Provisioned concurrency is not supported for "
                                                                     "functions on Lambda Managed Instances.")


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
    tenant: str | None = None
    """Tenant isolation: the one tenant whose invocations this environment serves."""
    init_type: str = "on-demand"
    """Its ``AWS_LAMBDA_INITIALIZATION_TYPE``."""
    provisioned: bool = False
    """Initialised ahead of requests by provisioned concurrency (or a Managed Instances minimum)."""
    restored: bool = False
    """SnapStart: restored from its version's snapshot, not initialised itself."""
    inflight: int = 0
    """Invocations running in it now (up to ``capacity``)."""
    capacity: int = 1
    """How many invocations it runs at once: 1, or Managed Instances' ``max_concurrency``."""


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

    def _new_record(self, now: float, version: str, tenant: str | None, provisioned: bool = False) -> InstanceRecord:
        config = self.versions[version]
        self._counter += 1
        self._seq += 1
        record = InstanceRecord(
            id=f"{self.name}-{self._counter}", function=self.name, version=version, created_at=now,
            last_used=now, seq=self._seq, tenant=tenant,
            init_type="provisioned-concurrency" if provisioned and not config.managed else config.initialization_type,
            provisioned=provisioned, restored=config.snap_start, capacity=config.concurrency_per_environment,
        )
        self.instances[record.id] = record
        return record

    def acquire(self, policy: RoutingPolicy, rng: random.Random, now: float,
                tenant: str | None = None) -> tuple[InstanceRecord, bool]:
        """Take an instance for one invocation; (record, is_new). Raises Throttled.

        Provisioned environments are used before on-demand ones; with tenant isolation only the
        tenant's own; on Managed Instances an environment with a free worker before a new one.
        """
        config = self.config
        current = [i for i in self.instances.values()
                   if i.version == self.version and not i.retiring and i.tenant == tenant]
        # Reserved concurrency caps invocations in flight, whichever instance would take one.
        limit = config.reserved_concurrency
        running = sum(i.inflight for i in self.instances.values() if i.state is not InstanceState.DEAD)
        if limit is not None and running >= limit:
            raise Throttled
        if config.managed:
            # Fill the environments that have free workers (oldest first) before a new one starts; one still
            # starting counts (its invocations wait for its workers' Init).
            free = [i for i in current if i.state is not InstanceState.DEAD and i.inflight < i.capacity]
            if free:
                env = free[0]
                env.inflight += 1
                if env.state is not InstanceState.STARTING:
                    env.state = InstanceState.BUSY
                return env, False
            live = [i for i in current if i.state is not InstanceState.DEAD]
            if config.max_environments is not None and len(live) >= config.max_environments:
                raise Throttled
            record = self._new_record(now, self.version, tenant)
            record.inflight = 1
            return record, True
        idle = sorted((i for i in current if i.state is InstanceState.IDLE), key=lambda i: i.seq)
        provisioned = [i for i in idle if i.provisioned]
        pick = (policy.choose(provisioned, rng) if provisioned else None) or policy.choose(
            [i for i in idle if not i.provisioned], rng)
        if pick is not None:
            pick.state = InstanceState.BUSY
            pick.inflight = 1
            return pick, False
        record = self._new_record(now, self.version, tenant)
        record.inflight = 1
        return record, True

    def acquire_wave(self, count: int, policy: RoutingPolicy, rng: random.Random, now: float,
                     tenants: Sequence[str | None] | None = None) -> list[tuple[InstanceRecord, bool] | None]:
        """Route ``count`` invocations that arrive together, in their order: each gets an
        instance (record, is_new) before any of them completes, so none can reuse another's;
        None for each one beyond the free reserved concurrency: the last ones are throttled.
        ``tenants`` gives each one's tenant id (tenant isolation)."""
        wave: list[tuple[InstanceRecord, bool] | None] = []
        for k in range(count):
            try:
                wave.append(self.acquire(policy, rng, now, tenants[k] if tenants is not None else None))
            except Throttled:
                wave.append(None)
        return wave

    def provision(self, count: int, now: float, version: str | None = None) -> list[InstanceRecord]:
        """``count`` environments of ``version`` (the current one by default) to initialise ahead of
        requests: provisioned concurrency, or a Managed Instances minimum. They start STARTING."""
        return [self._new_record(now, version or self.version, None, provisioned=True) for _ in range(count)]

    def release(self, record: InstanceRecord, now: float, policy: RoutingPolicy) -> bool:
        """End an invocation; True when the instance must now be destroyed."""
        record.invocations += 1
        record.last_used = now
        record.inflight = max(record.inflight - 1, 0)
        self._seq += 1
        record.seq = self._seq
        if record.state is InstanceState.DEAD:
            return False
        if record.inflight:
            return False  # Managed Instances: other requests still run in it
        if record.retiring or (policy.destroy_after_use and not record.provisioned) or record.version != self.version:
            return True
        record.state = InstanceState.IDLE
        return False

    def publish(self, config: FunctionConfig) -> str:
        """Add a version without moving traffic to it (see :meth:`activate`); returns its number."""
        version = str(max(int(v) for v in self.versions) + 1)
        self.versions[version] = config
        return version

    def activate(self, version: str) -> list[InstanceRecord]:
        """Move new invocations to ``version``; returns the older versions' idle instances to destroy now.

        Busy instances of older versions finish their invocation and are retired then.
        """
        self.version = version
        doomed = []
        for record in self.live():
            if record.version == version:
                continue
            record.retiring = True
            if record.state is InstanceState.IDLE:
                doomed.append(record)
        return doomed

    def redeploy(self, config: FunctionConfig) -> list[InstanceRecord]:
        """Publish a new version and move traffic to it at once; returns the old idle instances to destroy."""
        return self.activate(self.publish(config))

    def scale_down(self, keep: int) -> list[InstanceRecord]:
        """Idle instances beyond the ``keep`` most recently used ones."""
        idle = sorted((i for i in self.live() if i.state is InstanceState.IDLE and not i.provisioned),
                      key=lambda i: i.seq, reverse=True)
        return idle[max(keep, 0):]

    def expired(self, now: float) -> list[InstanceRecord]:
        """Idle instances whose keep-alive ran out at virtual time ``now`` (provisioned ones stay)."""
        keepalive = {v: c.keepalive_s for v, c in self.versions.items()}
        return [i for i in self.live()
                if i.state is InstanceState.IDLE and not i.provisioned and now - i.last_used > keepalive[i.version]]


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
