"""The engine: deploys functions and runs their invocations in sandboxed instances."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import random
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _managed, _runtime
from lambdasim._async import AsyncQueue, time_scale
from lambdasim._coverage import CoverageSink
from lambdasim._errors import ConfigError, InstanceGone, LambdaSimError, SandboxError, SettingError
from lambdasim._instance import Instance
from lambdasim._interpreters import api_command, choose, interpreter_mode, python_home, runtime_sdk
from lambdasim._invoke import (
    Invocation,
    Invoker,
    Live,
    error_detail,
    has_extensions,
    read_only_paths,
    shut_down,
    trace_id,
)
from lambdasim._model import ACCOUNT_ID as ACCOUNT_ID  # re-exported: it was defined here
from lambdasim._model import (
    PYTHON_VERSION,
    FunctionConfig,
    FunctionModel,
    InstanceRecord,
    InstanceState,
    RoutingPolicy,
    TraceEvent,
    VirtualClock,
    function_arn,
    routing_policy,
)
from lambdasim._package import build, package_view, prepare
from lambdasim._provision import provision, refusal, reinitialize, tenant_ids
from lambdasim._sandbox import NETWORKS, InstanceSpec, Sandbox, create_sandbox
from lambdasim._services.service import AWS_CREDENTIALS, AWS_CREDENTIALS_ENV, Services, parse_services
from lambdasim._services.xray import XRaySink, xray_environment
from lambdasim._snapstart import SnapStart
from lambdasim._template_deploy import check_function_name, deploy_from_template
from lambdasim._tmpview import TmpView as TmpView  # re-exported

if TYPE_CHECKING:
    from lambdasim._serve._http import HttpServer
    from lambdasim._serve._served import Served

_SHUTDOWN_REASONS = frozenset({"scale_down", "idle", "redeploy", "retired", "close", "destroy"})
"""Why instances are removed when Lambda would shut them down (the SHUTDOWN event), not kill them."""

_DEFAULT_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
_DEFAULT_LD_PATH = "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"


class Function:
    """A deployed function; each deploy or redeploy is a new version."""

    def __init__(self, sim: Simulator, config: FunctionConfig) -> None:
        self._sim = sim
        self._model = FunctionModel(config)
        self._live: dict[str, Live] = {}
        self._template_events: Mapping[str, Any] = {}  # deploy_from_template(): the template's Events
        self._function_url: Any = None  # deploy_from_template(): its FunctionUrl (lambdasim._template_invoke)

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def version(self) -> str:
        """The current version: new invocations go to it."""
        return self._model.version

    @property
    def config(self) -> FunctionConfig:
        return self._model.config

    @property
    def instances(self) -> list[Instance]:
        """The live instances, oldest first."""
        with self._sim._lock:
            return [Instance(self, self._live[r.id]) for r in self._model.live()]

    def invoke(self, event: Any = None, *, client_context: Mapping[str, Any] | None = None,
               identity: Mapping[str, Any] | None = None, tenant_id: str | None = None) -> Invocation:
        """Invoke synchronously (RequestResponse) and return the outcome.

        ``tenant_id``: the tenant (``X-Amz-Tenant-Id``) a function with tenant isolation runs the invocation
        for; Lambda refuses it (400 InvalidParameterValueException) when missing there, or given to another
        function."""
        (tenant,) = tenant_ids(tenant_id, 1, "invoke")
        return self._sim._invoke(self, self._sim._encode(self, event), client_context, identity, tenant)

    def event(self, name: str, **fields: Any) -> Any:
        """The event that the template's ``Events`` entry ``name`` sends (a function deployed with
        :meth:`Simulator.deploy_from_template`), built by :mod:`lambdasim.events` with the route's method
        and path, the queue ...; ``fields`` replace the template's, e.g. ``path_parameters={"id": "1"}``."""
        from lambdasim._template_events import event_of

        return event_of(self.name, self._template_events, name, fields)

    def debug_invoke(self, event: Any = None) -> Any:
        """Run the handler in *this* process so that ``breakpoint()`` and ``pytest --pdb`` reach it.

        Returns the JSON-decoded result; exceptions propagate. No sandbox, no lifecycle:
        use it to debug, and :meth:`invoke` to test.
        """
        from lambdasim._debug import debug_invoke

        sim = self._sim
        config = self.config
        record = InstanceRecord(id=f"{self.name}-debug", function=self.name, version=self.version, created_at=0.0)
        env = sim._spec(self, record, config)["env"]
        return debug_invoke(config.handler, config.code_dir, env, config.timeout_s, event, sim._new_id(),
                            function_arn(sim.region, config.lambda_name), config.layers)

    def invoke_many(self, events: Iterable[Any], concurrency: int = 8, *, interval_s: float | None = None,
                    tenant_id: str | Sequence[str | None] | None = None) -> list[Invocation]:
        """Invoke once per event, the events arriving in waves of ``concurrency``; results in event order.

        The invocations of a wave arrive together: each is routed to an instance (an idle one, else a
        new one) before any of them runs, so a wave of N that finds no idle instance starts exactly
        N instances, on any machine and however quick the handler. Beyond the function's free
        reserved concurrency, the last invocations of the wave (in event order) get 429
        TooManyRequestsException, with ``status_code=429``, as they would on Lambda.

        ``interval_s`` is when the waves arrive:

        - ``None`` (the default): each wave when the one before has completed, so it finds that
          wave's instances idle; the virtual clock stands still, as it does for :meth:`invoke`.
        - a number of seconds: one wave every ``interval_s`` seconds of virtual time
          (``sim.clock``), whether or not the earlier ones have completed. An invocation keeps its
          instance busy for its Init and duration (as its REPORT line gives them), and a wave reuses
          only the instances that were free when it arrived. ``concurrency=1, interval_s=0.1`` sends one
          event every 100 ms. The clock moves on to each arrival and completion (reaping idle
          instances past their keep-alive) and ends at the last completion. The waves run one after
          another on the host: only their overlap in virtual time decides the routing. Whether an
          earlier invocation has completed depends on how long it took, so keep ``interval_s`` well
          clear of the handler's duration where the test needs the same routing every run.

        ``tenant_id`` (tenant isolation): one tenant id for every event, or a sequence of them, one per
        event (None for an event without one).
        """
        items = list(events)
        given: tuple[object, object] = (concurrency, interval_s)  # from users' code: check the types too
        n, interval = given
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"invoke_many(concurrency={concurrency!r}): use a whole number, 1 or more.")
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float))
                                     or not math.isfinite(interval) or interval < 0):
            raise ConfigError(f"invoke_many(interval_s={interval_s!r}): use a number of seconds >= 0 between "
                              "the arrival of one wave and the next, or None for waves that arrive as the "
                              "previous one completes.")
        tenants = tenant_ids(tenant_id, len(items))
        if not items:
            return []
        return self._sim._invoke_many(self, items, concurrency, None if interval_s is None else float(interval_s),
                                      tenants)

    def scale_down(self, keep: int = 0) -> int:
        """Destroy idle instances beyond the ``keep`` most recently used; returns how many."""
        sim = self._sim
        with sim._lock:
            doomed = [self._live[r.id] for r in self._model.scale_down(keep)]
            sim._mark_dead(doomed)
        sim._destroy(doomed, "scale_down", marked=True)
        return len(doomed)

    def redeploy(self, code_dir: str | os.PathLike[str] | None = None, **changes: Any) -> str:
        """Publish a new version (new code and/or configuration); returns its number.

        New invocations go to new instances of it; invocations running on older
        versions finish there, and those instances are retired afterwards. With SnapStart the
        new version's Init runs now; if it fails, ``SnapshotFailed`` is raised and traffic stays.
        """
        sim = self._sim
        if code_dir is not None:
            changes["code_dir"] = sim._code_dir(code_dir)
        if "environment" in changes:
            changes["environment"] = dict(changes["environment"] or {})
        if "layers" in changes:
            changes["layers"] = sim._layers(changes["layers"])
        if isinstance(changes.get("entry_point"), list):
            changes["entry_point"] = tuple(changes["entry_point"])
        try:
            config = dataclasses.replace(self._model.config, **changes)
        except TypeError as e:
            raise ConfigError(f"redeploy(): {e}; the settings are those of Simulator.deploy().") from None
        config.validate()
        if config.runtime != self._model.config.runtime:
            config = choose(config, sim._sandbox.name, sim.interpreter)
        prepare(config)
        if config.tenant_isolation != self._model.config.tenant_isolation:
            raise SettingError(self.name, "tenant_isolation", "Tenant isolation is set when a function is created "
                                                              "and cannot be changed; deploy a new function.")
        sim._refuse_unconfinable(config)
        with sim._lock:
            version = self._model.publish(config)
        # What must be ready before traffic moves (a failure leaves traffic where it is): a SnapStart
        # version's snapshot (its Init), a Managed Instances minimum, or provisioned concurrency.
        if config.snap_start:
            sim._snapstart.take(self, version, self._model.version)
        _managed.provision(sim, self, version)
        provision(sim, self, version, redeploy=True)
        with sim._lock:
            doomed = [self._live[r.id] for r in self._model.activate(version)]
            sim._mark_dead(doomed)
            sim._event("redeploy", self.name, version=self._model.version)
        sim._destroy(doomed, "redeploy", marked=True)
        sim._snapstart.collect()
        return self._model.version

    def __repr__(self) -> str:
        return f"<Function {self.name} version={self.version} handler={self.config.handler}>"


@dataclasses.dataclass
class _Routed:
    """An invocation that has its instance and has not completed yet."""

    live: Live
    new: bool
    request_id: str
    event: bytes
    trace: str
    tenant: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What its ``invoke`` event adds: ``invocation_type`` and ``attempt`` (Event), ``caller``."""


def _instance_python() -> str:
    """This Python as an instance sees it (the host's Python is mounted at its own path)."""
    # Not its real path: a virtualenv's interpreter is what finds the virtualenv's packages.
    return _runtime.host_tmp_path(os.path.abspath(sys.executable))


def _api_command(config: FunctionConfig) -> list[str] | None:
    return api_command(config, has_extensions(config.layers))


class Simulator:
    """Runs Lambda functions in simulated execution environments.

    Args:
        sandbox: how instances are isolated: ``"namespace"`` (Linux namespaces: the kernel enforces
            Lambda's filesystem), ``"fakefs"`` (pyfakefs: Python-level file access only, runs
            anywhere), or ``"auto"`` (namespace where it runs, else fakefs with a warning).
        routing: ``"warm"``, ``"fresh"`` or ``"random"``: which instance takes an invocation.
        seed: seeds random routing and the ids (request, trace and log-stream ids). Given, a run
            repeats: the same seed gives the same ids and the same random routing. None (the
            default) draws a new seed, so that ids differ between runs as on Lambda; ``sim.seed``
            says which, to repeat a run.
        region: the AWS region the functions see.
        init_timeout_s: how long Init may take before it is retried under the function timeout.
        services: backing services to start now and share with every instance, e.g.
            ``["aws", "redis", "memcached"]`` or ``{"redis": {"provider": "binary"}}``;
            others start on first use of ``sim.services[kind]`` or a client method.
        track_tmp: record each instance's /tmp usage after every invocation in the trace
            (``tmp_bytes``); costs a statvfs call per invocation.
        track_tmp_access: record which /tmp files each invocation reads that another invocation
            of the same instance wrote last: ``tmp_reads_from`` (``[{"path", "writer"}]``, the
            writer's request id) in the trace's invoke events. Costs an audit hook in the instances.
        freeze: freeze each instance's processes between invocations, as Lambda does (namespace
            sandbox): background threads and child processes make no progress while the instance
            is idle, and a frozen instance is destroyed without being thawed. ``frozen`` and
            ``thawed`` events in the trace. False lets them run on, as before.
        network: what the instances can reach (namespace sandbox): ``"isolated"`` (the default) is a
            function in a VPC without a NAT gateway: the simulator's services at the addresses their
            environment variables give, nothing else (a connection elsewhere fails at once with the
            kernel's error, and the address is in ``Invocation.refused_addresses``, the trace and the
            plugin's summary), and nothing reaches a listener of the function. ``"internet"`` adds
            outbound traffic and DNS through a user-mode network stack (pasta from the passt package,
            or slirp4netns). ``"host"`` is the host's network, shared with the tests, as before
            lambdasim had network namespaces. The fakefs sandbox is always on the host's network; under
            ``"isolated"`` its runtimes refuse Python's connections elsewhere than the services.
        package: what the built-in runtime may import besides the package, its layers and Lambda's
            runtime (see ``_package``): ``"host"`` (the default) the host's other packages too, each noted
            in ``Invocation.outside_imports`` and the trace; ``"strict"`` nothing else, as on Lambda.
        interpreter: a function whose ``python3.X`` runtime is not lambdasim's Python runs on that Python where
            it is installed (see ``_interpreters``); where not, ``"fallback"`` (the default) runs it on
            lambdasim's with a RuntimeVersionWarning, ``"strict"`` refuses it at deploy.
        async_time_scale: Lambda's waits for ``Event`` invocations (the minute before a retry, the backoff after a
            throttle, ``max_event_age_s``) are multiplied by it: ``0.001`` retries a failed event after 60 ms and
            120 ms (see ``_async``, :meth:`wait_async`).

    Every instance reaches Lambda's Invoke API of the simulator at ``AWS_ENDPOINT_URL_LAMBDA`` (a server started
    with the first instance), so ``boto3.client("lambda").invoke(FunctionName="other")`` in a handler runs the
    simulator's function ``other``; Lambda's other operations go on to ``services["aws"]`` (moto).
    """

    def __init__(self, sandbox: str = "auto", routing: str | RoutingPolicy = "warm", seed: int | None = None,
                 region: str = "us-east-1", init_timeout_s: float = 10.0, services: Any = None,
                 track_tmp: bool = False, track_tmp_access: bool = False, freeze: bool = True,
                 network: str = "isolated", package: str = "host", interpreter: str = "fallback",
                 async_time_scale: float = 1.0) -> None:
        self.package = package_view(package)
        self.interpreter = interpreter_mode(interpreter)
        scale = time_scale(async_time_scale)
        if network not in NETWORKS:
            raise ConfigError(f"network={network!r} is not a network lambdasim knows; use 'isolated' (the "
                              "simulator's services only, the default), 'internet' (outbound traffic too) or "
                              "'host' (the host's network).")
        self.network = network
        self._policy = routing_policy(routing)
        self.seed: int = random.SystemRandom().getrandbits(32) if seed is None else seed
        self._rng = random.Random(self.seed)
        self._ids = random.Random(self.seed ^ 0x5EED)
        self.region = region
        self.init_timeout_s = init_timeout_s
        self._lock = threading.RLock()
        self.clock = VirtualClock(self._reap)
        self.functions: dict[str, Function] = {}
        self.trace: list[TraceEvent] = []
        self._closed = False
        self._inflight = 0
        self._in_flight: dict[str, dict[str, str]] = {}
        """The invocations running now by their trace header (``_X_AMZN_TRACE_ID``): the Invoke API finds the
        caller of a function that a function invokes by the ``X-Amzn-Trace-Id`` that botocore sends."""
        # A Services object passed in is shared (e.g. one per pytest session) and not ours to close.
        self._owns_services = not isinstance(services, Services)
        self.services = services if isinstance(services, Services) else Services(parse_services(services))
        self.track_tmp = track_tmp
        self.services.listeners.append(self._on_service_event)
        self.track_tmp_access = track_tmp_access
        self.freeze = freeze
        self._coverage = CoverageSink()
        self._xray: XRaySink | None = None  # started for the first function with active tracing
        self._sandbox: Sandbox = create_sandbox(sandbox, network)
        if track_tmp_access and self._sandbox.name != "namespace":
            self._sandbox.close()
            raise ConfigError(
                "track_tmp_access needs the namespace sandbox: under fakefs /tmp is pyfakefs' and "
                "Python's audit events do not see it. Use sandbox='namespace' (Linux).")
        self._invoker = Invoker(self._sandbox.name, self._reset, self._coverage.add, lambda: self._inflight == 1)
        self._snapstart = SnapStart(self)
        self._async = AsyncQueue(self, scale)
        self._api: HttpServer | None = None  # the instances' Invoke API, started with the first instance
        try:
            self.services.start_configured()
        except BaseException:
            self.close()
            raise

    @property
    def sandbox(self) -> str:
        return self._sandbox.name

    @property
    def routing(self) -> str:
        """The routing policy's name; set it to route the next invocations another way."""
        return self._policy.name

    @routing.setter
    def routing(self, routing: str | RoutingPolicy) -> None:
        policy = routing_policy(routing)
        with self._lock:
            self._policy = policy

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Destroy every instance and stop the sandbox. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            doomed = [live for fn in self.functions.values() for live in fn._live.values()
                      if live.record.state is not InstanceState.DEAD]
            self._mark_dead(doomed)
        self._async.close()  # what is still queued is dropped; the attempt running ends with its instance
        try:
            try:
                self._destroy(doomed, "close", marked=True)
            finally:
                self._snapstart.close()
            self._async.join()
            self._coverage.save()
        finally:
            try:
                self._sandbox.close()
            finally:
                if self._api is not None:
                    self._api.close()
                if self._xray is not None:
                    self._xray.close()
                with contextlib.suppress(ValueError):
                    self.services.listeners.remove(self._on_service_event)
                if self._owns_services:
                    self.services.close()

    # -- deploying -----------------------------------------------------------------

    def _code_dir(self, code_dir: str | os.PathLike[str]) -> str:
        path = os.path.realpath(os.fspath(code_dir))
        if not os.path.isdir(path):
            raise ConfigError(f"code_dir={os.fspath(code_dir)!r} is not a directory (looked for {path}); pass the "
                              "folder that holds the handler's module, as it would be zipped for Lambda.")
        return path

    def _layers(self, layers: Sequence[str | os.PathLike[str]] | None) -> tuple[str, ...]:
        return tuple(self._code_dir(p) for p in layers or ())

    def deploy(self, handler: str, code_dir: str | os.PathLike[str], name: str | None = None, *,
               memory_mb: int = 128, timeout_s: float = 3.0, ephemeral_storage_mb: int = 512,
               environment: Mapping[str, str] | None = None, reserved_concurrency: int | None = None,
               keepalive_s: float = 600.0, layers: Sequence[str | os.PathLike[str]] | None = None,
               runtime: str | None = None, entry_point: Sequence[str] | None = None, snap_start: bool = False,
               provisioned_concurrency: int = 0, tenant_isolation: bool = False,
               capacity_provider: str | None = None, max_concurrency: int | None = None,
               min_environments: int = 0, max_environments: int | None = None, log_format: str = "Text",
               application_log_level: str | None = None, system_log_level: str | None = None,
               tracing: bool = False, function_name: str | None = None, max_retry_attempts: int = 2,
               max_event_age_s: int = 21600) -> Function:
        """Deploy ``handler`` (``module.path.function``) from ``code_dir`` as version 1 of a function.

        ``runtime`` is ``python3.X`` (the default: this Python, with lambdasim's built-in runtime) or
        ``provided.al2023`` / ``provided.al2`` / ``provided`` (the code or a layer brings an executable
        ``bootstrap`` that talks to the Runtime API). ``entry_point`` is a container image's
        ``ENTRYPOINT``, run with the handler as its argument (e.g. ``["python3", "-m", "awslambdaric"]``).

        Lambda's other execution models (see the README): ``snap_start=True`` (SnapStart: Init once per
        version, now, environments restored from its snapshot; python3.12 and later; an Init that fails
        raises ``SnapshotFailed``), ``provisioned_concurrency=N``
        (N environments initialised now, before any request), ``tenant_isolation=True`` (environments per
        ``tenant_id``), and ``capacity_provider=`` (Lambda Managed Instances: each environment runs up to
        ``max_concurrency`` requests at once; ``min_environments`` start now, ``max_environments`` caps them).
        ``log_format``/``application_log_level``/``system_log_level`` are ``LoggingConfig``'s; ``tracing=True``
        is X-Ray's active tracing (see :meth:`xray_segments`). ``function_name``: Lambda's name of the function,
        what it sees (default ``name``), when ``name`` is another handle (a template's logical ID).
        ``max_retry_attempts`` (0 to 2) and ``max_event_age_s`` (60 to 21600) are ``EventInvokeConfig``'s: the
        retries of an ``Event`` invocation whose function failed, and how long one may wait (see :meth:`serve`).
        """
        if name is None:
            name = handler.rsplit(".", 1)[0].replace(".", "-").replace("/", "-")
        config = FunctionConfig(
            name=name, handler=handler, code_dir=self._code_dir(code_dir), memory_mb=memory_mb,
            timeout_s=float(timeout_s), ephemeral_storage_mb=ephemeral_storage_mb,
            environment=dict(environment or {}), reserved_concurrency=reserved_concurrency,
            keepalive_s=float(keepalive_s), layers=self._layers(layers),
            runtime=runtime or f"python{PYTHON_VERSION}",
            entry_point=tuple(entry_point) if isinstance(entry_point, (list, tuple)) else (entry_point or ()),  # type: ignore[arg-type]
            snap_start=snap_start, provisioned_concurrency=provisioned_concurrency,
            tenant_isolation=tenant_isolation, capacity_provider=capacity_provider,
            max_concurrency=max_concurrency, min_environments=min_environments, max_environments=max_environments,
            log_format=log_format, application_log_level=application_log_level, system_log_level=system_log_level,
            tracing=tracing, function_name=function_name, max_retry_attempts=max_retry_attempts,
            max_event_age_s=max_event_age_s,
        )
        config.validate()
        check_function_name(config)
        config = choose(config, self._sandbox.name, self.interpreter)
        prepare(config)
        self._refuse_unconfinable(config)
        with self._lock:
            self._check_open()
            if name in self.functions:
                raise ConfigError(f"A function named {name!r} is already deployed; use its redeploy() for a new "
                                  "version, or pass another name=.")
            fn = Function(self, config)
            self.functions[name] = fn
            self._event("deploy", name, version="1")
        _managed.provision(self, fn)  # Managed Instances' min_environments, started before any request
        try:
            if config.snap_start:
                self._snapstart.take(fn, "1", None)  # Init runs now, for version 1's snapshot
            provision(self, fn, "1")  # provisioned concurrency: its environments are ready when deploy returns
        except BaseException:
            with self._lock:
                self.functions.pop(name, None)
            raise
        return fn

    def _refuse_unconfinable(self, config: FunctionConfig) -> None:
        """The fakefs sandbox confines the built-in runtime only: a function with processes of its own
        (a Runtime API runtime) is refused there, before it is deployed."""
        _managed.refuse(config, self._sandbox.name, _api_command(config) is not None)
        self._snapstart.check(config)
        if self._sandbox.name != "fakefs" or _api_command(config) is None:
            return
        from lambdasim._sandbox.fakefs import runtime_api_refusal

        wrapper = config.environment.get("AWS_LAMBDA_EXEC_WRAPPER")
        what = (f"entry point ({' '.join(config.entry_point)})" if config.entry_point
                else f"runtime {config.runtime} (a bootstrap)" if config.custom_runtime
                else f"wrapper script ({wrapper})" if wrapper else "layers' extensions (/opt/extensions)")
        raise SettingError(config.name, "runtime", runtime_api_refusal(what))

    def deploy_from_template(self, path: str | os.PathLike[str], function: str, **overrides: Any) -> Function:
        """Deploy ``function`` as an AWS SAM template or a Serverless Framework config defines it.

        ``overrides`` are settings of :meth:`deploy` that replace the template's, except that
        ``environment`` adds to the template's variables (and stands in for those it cannot
        resolve, like ``!GetAtt``), ``layers`` replaces the template's layers (e.g. layer ARNs),
        and ``parameters`` gives SAM parameter values or Serverless ``${opt:...}`` options.
        The template's other resources (tables, buckets, queues ...) are created in ``services["aws"]``
        (once per template), and ``!Ref``/``!GetAtt`` of them give their names and ARNs. The function is
        addressed by ``function`` (``sim.functions[function]``), and sees the name Lambda would give it
        (``FunctionName``; CloudFormation's ``<stack>-<LogicalId>-<RANDOM>``; Serverless' ``service-stage-fn``).
        Errors name the file, the line and the key.
        """
        return deploy_from_template(self, path, function, overrides)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> contextlib.AbstractContextManager[Served]:
        """Serve Lambda's Invoke API and the template's HTTP routes of every function on ``host:port`` (0: a free
        port) while the ``with`` block runs; it gives the base URL (a ``str``), with ``.function_urls``::

            with sim.serve() as url:
                boto3.client("lambda", endpoint_url=url).invoke(FunctionName="orders", Payload=b"{}")
                urllib.request.urlopen(url + "/orders")

        The functions run in this simulator's instances, as with :meth:`Function.invoke`."""
        from lambdasim._serve._served import serve

        return serve(self, host, port)

    def wait_async(self, timeout_s: float = 60.0) -> None:
        """Wait until every ``Event`` invocation has run, its retries included (none queued, none running);
        ``TimeoutError`` after ``timeout_s``. Retries wait Lambda's minutes times ``async_time_scale``."""
        self._async.wait(timeout_s)

    def _invoke_api_url(self) -> str:
        """The instances' Invoke API (``AWS_ENDPOINT_URL_LAMBDA``), started at the first call (under the lock)."""
        if self._api is None:
            from lambdasim._serve._invoke_api import instance_server

            self._api = instance_server(self)
        return self._api.url

    # -- clients for the test side -----------------------------------------------------

    def boto3_client(self, service_name: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service_name`` (``"s3"``, ``"dynamodb"``, ...) on the simulator's AWS (moto);
        the same as ``sim.services["aws"].client(service_name)`` in the simulator's region. ``"lambda"`` is the
        simulator's own Invoke API, as handlers reach it (``AWS_ENDPOINT_URL_LAMBDA``): ``invoke()`` runs its
        functions, the other operations go on to moto."""
        if service_name == "lambda":
            import boto3

            with self._lock:
                url = self._invoke_api_url()
            return boto3.client("lambda", **{"region_name": self.region, "endpoint_url": url,
                                             **AWS_CREDENTIALS, **kwargs})
        return self.services["aws"].client(service_name, **{"region_name": self.region, **kwargs})

    def redis_client(self, **kwargs: Any) -> Any:
        """A redis-py client connected straight to the simulator's Redis (not through the fault proxy)."""
        return self.services["redis"].client(**kwargs)

    def memcached_client(self, **kwargs: Any) -> Any:
        """A pymemcache client connected straight to the simulator's Memcached."""
        return self.services["memcached"].client(**kwargs)

    def _on_service_event(self, service: str, action: str, detail: dict[str, Any]) -> None:
        if not self._closed:
            self.record_service_event(service, action, **detail)

    def record_service_event(self, service: str, action: str, **detail: Any) -> None:
        """Add a ``service`` event (say ``"redis"``, ``"cut"``) to the trace, for reports to mark."""
        with self._lock:
            self._event("service", "", service=service, action=action, **detail)

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LambdaSimError("This Simulator is closed; create a new one.")

    def _event(self, kind: str, function: str, instance: str | None = None, version: str | None = None,
               request_id: str | None = None, **detail: Any) -> None:
        self.trace.append(TraceEvent(self.clock.now(), kind, function, instance, version, request_id, detail))

    def _new_id(self) -> str:
        """A version-4 UUID from the seeded generator (uuid.UUID is slow on the hot path)."""
        h = f"{self._ids.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _spec(self, fn: Function, record: InstanceRecord, config: FunctionConfig) -> InstanceSpec:
        # Invocations without a qualifier run $LATEST on Lambda (Managed Instances: $LATEST.PUBLISHED),
        # whatever lambdasim's count of deploys.
        version = lambda_errors.LATEST_PUBLISHED if config.managed else lambda_errors.LATEST
        stream = f"{datetime.date.today():%Y/%m/%d}/[{version}]{self._ids.getrandbits(128):032x}"
        env = {
            "LANG": "en_US.UTF-8", "PATH": _DEFAULT_PATH, "LD_LIBRARY_PATH": _DEFAULT_LD_PATH, "TZ": ":UTC",
            **self.services.environment(), "AWS_ENDPOINT_URL_LAMBDA": self._invoke_api_url(),
            **config.environment, **config.log_environment(), **xray_environment(self._xray_sink(config)),
            "_HANDLER": config.handler, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{config.python_version}",
            "AWS_LAMBDA_FUNCTION_NAME": config.lambda_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": version, "AWS_LAMBDA_INITIALIZATION_TYPE": record.init_type,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.lambda_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            **AWS_CREDENTIALS_ENV, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
        }
        spec: InstanceSpec = {
            "coverage": self._coverage.settings,
            "handler": config.handler, "code_dir": config.code_dir, "layers": list(config.layers),
            "tmp_mb": config.ephemeral_storage_mb, "memory_mb": config.memory_mb, "env": env, "cwd": "/var/task",
            "sys_path_prefix": ["/var/task", f"/opt/python/lib/python{config.python_version}/site-packages",
                                "/opt/python"],
        }
        if config.interpreter:  # another Python than lambdasim's, and the AWS SDK built for it
            spec["python_home"] = python_home(config.interpreter)
            sdk = runtime_sdk(config.python_version, config.interpreter)
            if sdk is not None:
                spec["runtime_sdk"] = os.path.join(sdk, "python")
        if self.track_tmp_access:
            spec["track_tmp_access"] = True
        built = build(config)  # requirements.txt's dependencies (built at deploy): mounted with the code
        if built is not None:
            spec["layers"] = [built, *spec["layers"]]
        if self.package == "strict" or built is not None:
            spec["package"] = "strict"
        if self.network != "host":
            spec["network"] = self.network
            spec["forward"] = self._forwarded()
        command = _api_command(config)
        if command is not None:
            # Served by lambdasim._rapi inside the instance; at Lambda's address where the instance
            # can have a network namespace of its own, else on a free port.
            own = self._sandbox.name == "namespace" and self.network == "isolated"
            spec["runtime_kind"] = "api"
            spec["command"] = command
            spec["api_address"] = "127.0.0.1:9001" if own else "127.0.0.1:0"
            if own:
                spec["own_network"] = True
            if config.custom_runtime:
                env.pop("AWS_EXECUTION_ENV", None)  # Lambda sets it for its managed runtimes only
        elif config.managed:
            _managed.spec_for(spec, config)
        return spec

    def _xray_sink(self, config: FunctionConfig) -> XRaySink | None:
        if config.tracing and self._xray is None:
            self._xray = XRaySink()
        return self._xray if config.tracing else None

    def xray_segments(self) -> list[dict[str, Any]]:
        """The X-Ray segments that functions with active tracing (``tracing=True``, ``Tracing: Active``) sent
        to their daemon address (``AWS_XRAY_DAEMON_ADDRESS``, a UDP sink of lambdasim's), in arrival order."""
        return self._xray.segments() if self._xray is not None else []

    def _forwarded(self) -> list[tuple[str, int] | tuple[str, int, str]]:
        """The loopback endpoints instances are given (services, fault proxies, the X-Ray sink over UDP): what
        an instance's network namespace must reach on the host."""
        found: list[tuple[str, int] | tuple[str, int, str]] = []
        if self._api is not None:
            found.append(("127.0.0.1", self._api.port))
        if self._xray is not None:
            self._xray.relayed = True
            found.append(("127.0.0.1", self._xray.port, "udp"))
        for kind in list(self.services):
            service = self.services.get(kind)
            ep = service.instance_endpoint if service is not None else None
            if ep is not None and ep.host in ("127.0.0.1", "localhost"):
                found.append(("127.0.0.1", int(ep.port)))
        return found

    def _mark_dead(self, lives: Sequence[Live], quiet: bool | None = None) -> None:
        """Mark ``lives`` dead; ``quiet``: no invocation holds their runtime's channel (by default: those
        that were idle), so that they can have Lambda's Shutdown phase (see _invoke.shut_down)."""
        for live in lives:
            live.quiet = live.record.state is InstanceState.IDLE if quiet is None else quiet
            live.record.state = InstanceState.DEAD

    def _destroy(self, lives: Sequence[Live], reason: str, marked: bool = False) -> None:
        if not marked:
            with self._lock:
                lives = [lv for lv in lives if lv.record.state is not InstanceState.DEAD]
                self._mark_dead(lives)
        if reason in _SHUTDOWN_REASONS:  # all at once: close() does not wait 2 s per instance
            for live, detail in shut_down(lives):
                with self._lock:
                    record = live.record
                    self._event("shutdown", record.function, record.id, record.version, **detail)
        failures: list[BaseException] = []
        for live in lives:
            try:
                if live.sbx is not None:
                    live.sbx.destroy()
            except Exception as e:  # noqa: BLE001 - destroy the others, then report the first failure
                failures.append(e)
            finally:
                live.drop_runtime()
                record = live.record
                with self._lock:
                    # Forget the dead so routing stays cheap however many instances came and went;
                    # Instance views keep their record and report it dead.
                    fn = self.functions.get(record.function)
                    if fn is not None:
                        fn._live.pop(record.id, None)
                        fn._model.instances.pop(record.id, None)
                    self._event("destroyed", record.function, record.id, record.version, reason=reason)
        self._snapstart.collect()  # a snapshot goes with its old version's last instance
        if failures:
            raise SandboxError(f"Could not remove {len(failures)} instance(s): {failures[0]}") from failures[0]

    def _reap(self, now: float) -> None:
        with self._lock:
            doomed = [fn._live[r.id] for fn in self.functions.values() for r in fn._model.expired(now)]
            self._mark_dead(doomed)
        self._destroy(doomed, "idle", marked=True)

    def _crash(self, live: Live) -> None:
        with self._lock:
            state = live.record.state
            if state is InstanceState.DEAD:
                raise InstanceGone(f"Instance {live.record.id} is gone; it cannot crash.")
            if live.sbx is None:
                raise LambdaSimError(f"Instance {live.record.id} is still starting; crash it once it has started.")
            if state is InstanceState.IDLE:
                live.record.state = InstanceState.BUSY  # keep routing away while it restarts
            self._event("crash", live.record.function, live.record.id, live.record.version)
        if state is not InstanceState.IDLE:
            live.sbx.kill_runtime()  # the running invocation sees the runtime die
            return
        try:
            if live.rt is not None:
                live.sbx.kill_runtime()
                live.sbx.wait_runtime_exit(10.0)
                self._reset(live, "crash")
            live.record.needs_init = True
            reinitialize(self, live, idle=True)  # a provisioned environment: initialised again at once
        finally:
            with self._lock:
                retire = live.record.retiring and live.record.state is InstanceState.BUSY
                if retire:  # a redeploy came while it restarted: it is an old version's instance
                    self._mark_dead([live])
                elif live.record.state is InstanceState.BUSY:
                    live.record.state = InstanceState.IDLE
            if retire:
                self._destroy([live], "retired", marked=True)

    def _encode(self, fn: Function, event: Any, where: str = "") -> bytes:
        try:
            return json.dumps(event).encode()
        except (TypeError, ValueError) as e:
            raise ConfigError(f"The event{where} for {fn.name!r} cannot be sent as JSON: {e}") from None

    def _route(self, fn: Function, events: Sequence[bytes], tenants: Sequence[str | None] | None = None,
               detail: Mapping[str, Any] | None = None, request_id: str | None = None) -> list[Invocation | _Routed]:
        """Route invocations that arrive together, in their order (see FunctionModel.acquire_wave):
        a _Routed for each that has its instance, the outcome of each that Lambda turns away.
        ``tenants``: each one's tenant id (tenant isolation); ``detail``: what their trace events add (the
        Invoke API's); ``request_id``: the one invocation's (an Event invocation keeps its id across attempts)."""
        detail = dict(detail or {})
        with self._lock:
            self._check_open()
            request_ids = [request_id or self._new_id() for _ in events]
            tenants = list(tenants) if tenants is not None else [None] * len(events)
            isolated = fn._model.config.tenant_isolation
            refusals = [refusal(len(event_bytes), isolated, tenant)
                        for event_bytes, tenant in zip(events, tenants, strict=True)]
            admitted = [tenant for tenant, turned in zip(tenants, refusals, strict=True) if turned is None]
            slots = iter(fn._model.acquire_wave(len(admitted), self._policy, self._rng, self.clock.now(),
                                                tenants=admitted))
            out: list[Invocation | _Routed] = []
            for request_id, event_bytes, tenant, turned in zip(request_ids, events, tenants, refusals, strict=True):
                if turned is not None:  # the function does not run
                    status, error = turned
                    self._event("rejected", fn.name, request_id=request_id, status=status, error=error["errorType"],
                                **detail)
                    out.append(Invocation(request_id, fn.name, None, None, False, error, None, 0.0, None,
                                          status_code=status, tenant_id=tenant))
                    continue
                slot = next(slots)
                if slot is None:
                    self._event("throttled", fn.name, request_id=request_id, status=429, **detail)
                    out.append(Invocation(request_id, fn.name, None, None, False, lambda_errors.throttled(),
                                          None, 0.0, None, status_code=429, tenant_id=tenant))
                    continue
                record, new = slot
                config = fn._model.versions[record.version]
                if new:
                    live = (_managed.ManagedLive if config.managed else Live)(record, config,
                                                                             self._spec(fn, record, config))
                    fn._live[record.id] = live
                    created: dict[str, Any] = {"init_type": record.init_type}
                    if record.tenant is not None:
                        created["tenant"] = record.tenant
                    self._event("instance_created", fn.name, record.id, record.version, **created)
                else:
                    live = fn._live[record.id]
                    # In event order, so a seed repeats the trace (a Managed Instances environment may be starting).
                    if record.state is not InstanceState.STARTING and live.sbx.frozen:
                        self._event("thawed", fn.name, record.id, record.version, request_id)
                self._inflight += 1
                routed = _Routed(live, new, request_id, event_bytes, trace_id(self._ids, config.tracing), tenant,
                                 detail)
                self._in_flight[routed.trace] = {"function": fn.name, "request_id": request_id}
                out.append(routed)
            return out

    def _invoke(self, fn: Function, event: bytes, client_context: Mapping[str, Any] | None,
                identity: Mapping[str, Any] | None, tenant_id: str | None,
                detail: Mapping[str, Any] | None = None, request_id: str | None = None) -> Invocation:
        """One invocation of the JSON ``event``: routed, run and finished (``detail``: see :meth:`_route`)."""
        (routed,) = self._route(fn, [event], [tenant_id], detail, request_id)
        if isinstance(routed, Invocation):
            return routed
        inv = self._run(routed, client_context, identity)
        self._finish(fn, routed, inv)
        return inv

    def _run(self, routed: _Routed, client_context: Mapping[str, Any] | None = None,
             identity: Mapping[str, Any] | None = None) -> Invocation:
        """Run a routed invocation: start its instance if it is new, then Init when due and the request."""
        live, record = routed.live, routed.live.record
        if isinstance(live, _managed.ManagedLive):  # many at once, never frozen
            return _managed.run(self, routed, client_context, identity, routed.tenant)
        try:
            if routed.new:
                self._start_new(live, lambda r: InstanceState.BUSY)
            live.sbx.thaw()  # before the request is sent (traced as it was routed)
            inv = self._invoker.run(live, routed.request_id, routed.event, client_context, identity, routed.tenant,
                                    self.init_timeout_s, self.region, routed.trace)
            reinitialize(self, live)  # a provisioned environment that was reset: initialised again at once
            # Frozen before the instance can take another invocation (it is still busy); the
            # keeper does it while the result goes back to the caller.
            if self.freeze and record.state is not InstanceState.DEAD:
                live.sbx.freeze()
        except BaseException:
            self._destroy([live], "harness error")
            raise
        finally:
            with self._lock:
                self._inflight -= 1
                self._in_flight.pop(routed.trace, None)
        if inv.cold_start:
            self._sandbox.refill()
        return inv

    def _start(self, live: Live) -> None:
        """Make a new instance's sandbox and start its first runtime (Init follows), or restore it (SnapStart)."""
        if live.record.restored:
            self._snapstart.restore(live)
            return
        live.sbx, live.rt = self._sandbox.spawn(live.spec)

    def _start_new(self, live: Live, state: Callable[[InstanceRecord], InstanceState]) -> None:
        """Start a routed new instance (see :meth:`_start`), which then takes ``state(record)``; InstanceGone
        when destroy() came while it started (it never ran)."""
        record = live.record
        try:
            self._start(live)
        except BaseException:
            self._destroy([live], "failed to start")
            raise
        with self._lock:
            gone = record.state is InstanceState.DEAD
            if not gone:
                record.state = state(record)
        if gone:
            live.sbx.destroy()
            live.drop_runtime()
            raise InstanceGone(f"Instance {record.id} was destroyed while it started.")

    def _finish(self, fn: Function, routed: _Routed, inv: Invocation) -> None:
        """An invocation completes at the clock's time: trace it, and free its instance (or retire it)."""
        live, record = routed.live, routed.live.record
        detail: dict[str, Any] = {"cold_start": inv.cold_start, "duration_ms": inv.duration_ms, "error": None,
                                  "max_memory_used_mb": inv.max_memory_used_mb}
        if inv.max_tasks is not None:  # measured by the sandbox (namespace)
            detail["max_tasks"], detail["max_fds"] = inv.max_tasks, inv.max_fds
        if inv.error:
            detail["error"] = inv.error["errorType"]
            detail["error_detail"] = error_detail(inv)
        erofs = read_only_paths(inv)
        if erofs:
            detail["erofs"] = erofs
        if inv.refused_counts:
            detail["refused"] = dict(inv.refused_counts)
        if inv.outside_imports:
            detail["outside_imports"] = list(inv.outside_imports)
        if inv.worker is not None:
            detail["worker"] = inv.worker
        if inv.tenant_id is not None:
            detail["tenant"] = inv.tenant_id
        if inv.restore_duration_ms is not None:
            detail["restore_ms"] = round(inv.restore_duration_ms, 3)
        if self.track_tmp and record.state is not InstanceState.DEAD:
            with contextlib.suppress(OSError, InstanceGone):
                detail["tmp_bytes"] = Instance(fn, live).tmp.usage_bytes()
        if live.tmp_writers is not None:  # track_tmp_access
            detail["tmp_reads_from"], live.tmp_reads_from = live.tmp_reads_from, []
        with self._lock:
            destroy = fn._model.release(record, self.clock.now(), self._policy)
            if inv.restore_duration_ms is not None:
                self._event("restored", fn.name, record.id, record.version, routed.request_id,
                            restore_ms=detail["restore_ms"])
            self._event("invoke", fn.name, record.id, record.version, routed.request_id, **detail, **routed.detail)
            if destroy:
                self._mark_dead([live], quiet=True)  # its invocation has completed
            elif live.sbx.frozen:
                self._event("frozen", fn.name, record.id, record.version)
        if destroy:
            self._destroy([live], "retired", marked=True)

    def _invoke_many(self, fn: Function, events: list[Any], concurrency: int, interval_s: float | None,
                     tenants: list[str | None]) -> list[Invocation]:
        encoded = [self._encode(fn, event, f" events[{i}]") for i, event in enumerate(events)]
        results: list[Invocation | None] = [None] * len(encoded)
        # Completed on the host, still running in virtual time (interval_s): (ends at, event index, ...).
        running: list[tuple[float, int, _Routed, Invocation]] = []
        start = self.clock.now()
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=min(concurrency, len(encoded)), thread_name_prefix="lambdasim") as pool:
            try:
                for first in range(0, len(encoded), concurrency):
                    if interval_s is not None:
                        arrival = start + interval_s * (first // concurrency)
                        self._complete(fn, running, until=arrival)
                        self._advance_to(arrival)
                    wave = self._route(fn, encoded[first:first + concurrency], tenants[first:first + concurrency])
                    # Every invocation of the wave has its instance: now they run, side by side.
                    runs = {i: pool.submit(self._run, routed) for i, routed in enumerate(wave)
                            if isinstance(routed, _Routed)}
                    for i, routed in enumerate(wave):
                        if isinstance(routed, Invocation):
                            results[first + i] = routed
                            continue
                        try:
                            inv = runs[i].result()
                        except BaseException as e:  # noqa: BLE001 - finish the others, then raise it
                            failure = failure or e
                            continue
                        results[first + i] = inv
                        if interval_s is None:  # completes now, in event order: the next wave finds it idle
                            self._finish(fn, routed, inv)
                        else:
                            busy_ms = (inv.init_duration_ms or inv.restore_duration_ms or 0.0) + inv.duration_ms
                            running.append((self.clock.now() + busy_ms / 1000.0, first + i, routed, inv))
                    if failure is not None:
                        raise failure
                self._complete(fn, running, until=math.inf)
            finally:
                for _, _, routed, inv in running:  # after a failure: free them without moving the clock
                    self._finish(fn, routed, inv)
        assert all(inv is not None for inv in results)
        return results  # type: ignore[return-value]  # every event has its outcome

    def _complete(self, fn: Function, running: list[tuple[float, int, _Routed, Invocation]], until: float) -> None:
        """Complete, in the order of their end in virtual time, the invocations that end by ``until``."""
        running.sort(key=lambda r: (r[0], r[1]))
        while running and running[0][0] <= until:
            ends, _, routed, inv = running.pop(0)
            self._advance_to(ends)
            self._finish(fn, routed, inv)

    def _advance_to(self, t: float) -> None:
        delta = t - self.clock.now()
        if delta > 0:
            self.clock.advance(delta)

    def _reset(self, live: Live, reason: str) -> None:
        live.drop_runtime()
        live.record.needs_init = True
        live.record.resets += 1
        with self._lock:
            self._event("reset", live.record.function, live.record.id, live.record.version, reason=reason)


__all__ = ["Function", "Instance", "Invocation", "SandboxError", "Simulator", "TmpView"]
