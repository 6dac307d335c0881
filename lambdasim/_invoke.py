"""Running one invocation: Init when it is due, the request over the runtime's channel,
and what Lambda reports of it (the :class:`Invocation`, its logs and its trace details)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _platform_log, _runtime
from lambdasim._errors import SandboxError
from lambdasim._lambda_errors import MAX_RESPONSE_BYTES, ErrorDict
from lambdasim._model import PYTHON_VERSION, FunctionConfig, InstanceRecord, InstanceState, function_arn
from lambdasim._sandbox import SandboxInstance
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._sandbox._usage import SAMPLE_S, Usage
from lambdasim._wire import (
    FATAL,
    INIT,
    OUT_OF_MEMORY_AT_INIT,
    RESULT,
    RESULT_LAST,
    RUNTIME_MAX_FRAME,
    SANDBOX_ERROR,
    SHUTDOWN_DONE,
    Channel,
    ChannelClosed,
    Fatal,
    Init,
    ProtocolError,
    Result,
    SandboxFailure,
    ShutdownDone,
    TmpAccessReport,
    check_runtime_message,
    pack_invoke,
    pack_shutdown,
    reader,
)

# How long one side polls for the other's next message before it sleeps (see Channel.spin).
_SPIN_S = 0.0002

_UNSET = object()

LOG_CAP_BYTES = 4 << 20
"""Output kept of Init and of each invocation: the first 4 MiB, then :func:`truncated_line`.
Lambda sends output to CloudWatch Logs, which cuts it into events of at most 256 KB; lambdasim
keeps one stream per invocation in the test's memory, so it keeps its start and says how much
more there was."""


def truncated_line(dropped: int) -> str:
    """The line that ends output cut at :data:`LOG_CAP_BYTES`."""
    return (f"[lambdasim] output truncated: {dropped} more bytes were written than the "
            f"{LOG_CAP_BYTES} kept per invocation\n")


@dataclasses.dataclass(eq=False)
class Invocation:
    """The outcome of one invocation, as Lambda's Invoke API and logs report it.

    ``version`` is lambdasim's count of the function's deploys whose code ran ("1", then
    "2" after a redeploy), as in the trace and reports; the function itself, like Lambda's
    Invoke response, sees ``$LATEST`` (:attr:`executed_version`).
    """

    request_id: str
    function: str
    version: str | None
    instance_id: str | None
    cold_start: bool
    error: dict[str, Any] | None
    raw_payload: bytes | None
    duration_ms: float
    init_duration_ms: float | None
    status_code: int = 200
    memory_size_mb: int = 128
    max_memory_used_mb: int = 0
    max_tasks: int | None = None
    """The most processes and threads the function had at once (Lambda allows 1,024), as sampled;
    None where the sandbox does not measure it (fakefs)."""
    max_fds: int | None = None
    """The most file descriptors the function's processes held at once, as sampled (None: not measured)."""
    refused_addresses: tuple[str, ...] = ()
    """Under ``network="isolated"``: the addresses (``host:port``, or a name looked up) that Init and this
    invocation tried to reach and could not, as on Lambda in a VPC without a NAT gateway; Python's
    connections and lookups only (the kernel refuses C code's and subprocesses' too, unrecorded)."""
    refused_counts: dict[str, int] = dataclasses.field(default_factory=dict, repr=False)
    """How often each of :attr:`refused_addresses` was refused."""
    outside_imports: tuple[str, ...] = ()
    """The top-level modules Init (of a cold start) and this invocation imported from outside the package,
    its layers and Lambda's runtime (standard library, boto3 and botocore with their dependencies): on
    Lambda, ``No module named ...`` (with ``Simulator(package="strict")``, here too)."""
    restore_duration_ms: float | None = None
    """SnapStart: how long the restore of a new environment took (snapshot copy and after-restore hooks),
    reported in place of Init (``Restore Duration`` in REPORT); None for other invocations."""
    tenant_id: str | None = None
    """Tenant isolation: the tenant the invocation ran for."""
    worker: int | None = None
    """Managed Instances: which runtime process (worker) of the environment ran it."""
    _body_logs: str = dataclasses.field(default="", repr=False)
    _init_logs: str = dataclasses.field(default="", repr=False)
    _report_status: str = dataclasses.field(default="", repr=False)
    _billed_init: bool = dataclasses.field(default=False, repr=False)
    _billed_restore_ms: float | None = dataclasses.field(default=None, repr=False)
    _payload: Any = dataclasses.field(default=_UNSET, repr=False)
    _qualifier: str = dataclasses.field(default=lambda_errors.LATEST, repr=False)
    _system_log: str | None = dataclasses.field(default=None, repr=False)
    """The JSON log format's ``SystemLogLevel`` (None: the Text format)."""
    _trace: str | None = dataclasses.field(default=None, repr=False)
    """Under active tracing: the invocation's trace header, which REPORT names (None: not traced)."""
    _managed: bool = dataclasses.field(default=False, repr=False)
    """A Managed Instances invocation (its ``platform.report`` has the duration alone, no runtimeDone)."""

    @property
    def payload(self) -> Any:
        """The JSON-decoded return value (None on error; bytes if the handler returned bytes)."""
        if self._payload is _UNSET:
            raw = self.raw_payload
            if raw is None or self.error is not None:
                self._payload = None
            else:
                try:
                    self._payload = json.loads(raw)
                except ValueError:
                    self._payload = raw
        return self._payload

    @property
    def executed_version(self) -> str | None:
        """The version Lambda ran, as the Invoke response's ``ExecutedVersion``: ``$LATEST`` for an
        invocation without a qualifier, ``$LATEST.PUBLISHED`` on Managed Instances (None when the function
        did not run: 413, 429)."""
        return self._qualifier if self.version is not None else None

    @property
    def function_error(self) -> str | None:
        """``"Unhandled"`` when the function failed, as in the Invoke response's FunctionError."""
        return "Unhandled" if self.error is not None and self.status_code == 200 else None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def logs(self) -> str:
        """The log stream of this invocation, framed with START, END and REPORT lines."""
        if self.version is None:  # turned away before it ran (413, 429)
            return ""
        rid = self.request_id
        if self._system_log is not None:
            metrics = _platform_log.report_metrics(
                self.duration_ms, self.memory_size_mb, self.max_memory_used_mb,
                self.init_duration_ms if self.cold_start else None, self._report_status, self._billed_init,
                self.restore_duration_ms if self.cold_start else None, self._billed_restore_ms)
            start, end, done = _platform_log.frame(self._system_log, rid, self.executed_version, metrics,
                                                   self._trace, self._managed)
            return f"{self._init_logs}{start}{self._body_logs}{end}{done}"
        report = lambda_errors.report_line(rid, self.duration_ms, self.memory_size_mb, self.max_memory_used_mb,
                                           self.init_duration_ms if self.cold_start else None, self._report_status,
                                           self._billed_init, self.restore_duration_ms if self.cold_start else None,
                                           self._billed_restore_ms)
        if self._trace is not None:
            report += _platform_log.xray_line(self._trace)
        return (f"{self._init_logs}{lambda_errors.start_line(rid, self.executed_version)}"
                f"{self._body_logs}{lambda_errors.end_line(rid)}{report}")


def has_extensions(layers: Sequence[str]) -> bool:
    """Whether a layer brings extensions (executables in ``extensions/``, seen at /opt/extensions)."""
    for layer in layers:
        with contextlib.suppress(OSError):
            if any(e.is_file() for e in os.scandir(os.path.join(layer, "extensions"))):
                return True
    return False


def take_log(fd: int) -> str:
    """What a runtime wrote to its log file ``fd`` since the last call (see :meth:`Live.take_logs`);
    "" for no file (``fd`` < 0)."""
    if fd < 0:
        return ""
    try:
        # The function may have made the file any size (ftruncate(1, 1 << 40)): only the
        # cap is read, and the file is emptied after.
        size = os.fstat(fd).st_size
        if not size:
            return ""
        data = os.pread(fd, min(size, LOG_CAP_BYTES), 0)
        os.ftruncate(fd, 0)
    except OSError as e:  # the function did what a log file cannot do: say so in the log
        return f"[lambdasim] the function's output could not be read: {e}\n"
    text = data.decode("utf-8", "replace") + ("" if data.endswith(b"\n") else "\n")
    return text if size <= len(data) else text + truncated_line(size - len(data))


class Live:
    """Engine-side state of one instance: its sandbox handle and runtime channel."""

    def __init__(self, record: InstanceRecord, config: FunctionConfig, spec: InstanceSpec) -> None:
        self.record = record
        self.config = config
        self.spec = spec
        self.sbx: SandboxInstance = None  # type: ignore[assignment]  # set once spawned
        self.rt: Channel | None = None
        self.logfd = -1
        # Shut down as Lambda does (the SHUTDOWN event) rather than killed: a Runtime API instance whose
        # layers bring extensions, when no invocation holds its channel as it is removed (``quiet``).
        self.extensions = spec.get("runtime_kind") == "api" and has_extensions(config.layers)
        self.quiet = False
        self._drop_lock = threading.Lock()
        # track_tmp_access: /tmp path -> (request id of its last writer, written by Init); kept here,
        # not in the runtime, so that it outlives resets; and the current invocation's reads of
        # files another invocation wrote.
        self.tmp_writers: dict[str, tuple[str, bool]] | None = {} if spec.get("track_tmp_access") else None
        self.tmp_reads_from: list[dict[str, Any]] = []
        self.oom_kills = 0  # the kernel's count of OOM kills in the instance, when last asked
        self.init_logs = ""  # the log of an Init run ahead of requests (provisioned concurrency)
        self.restore_started: float | None = None  # SnapStart: when its restore began (time.monotonic())

    def take_logs(self) -> str:
        """What the runtime wrote since the last call, its last line ended: Lambda ends the
        output of Init and of each invocation with a newline, before ``START`` or ``END``."""
        with self._drop_lock:
            return take_log(self.logfd)

    def drop_runtime(self) -> None:
        # destroy() and the invoking thread may both get here.
        with self._drop_lock:
            if self.rt is not None:
                self.rt.close()
                self.rt = None
            if self.logfd >= 0:
                os.close(self.logfd)
                self.logfd = -1


class _Measured(Protocol):
    """A sandbox instance that can say what it uses (the namespace sandbox's: see ``_usage``)."""

    def usage(self, log_bytes: int = 0) -> Usage | None: ...

    def oom_kills(self) -> int: ...


class _OverMemory(Exception):
    """A sample found the function over its memory: it is killed, as on Lambda."""


class _Watch:
    """Samples an instance while Init or an invocation runs (every ``SAMPLE_S``) and once at
    the end: the peaks it saw, and :class:`_OverMemory` when the function uses more memory
    than it has. Does nothing for a sandbox that cannot measure (fakefs limits memory itself)."""

    def __init__(self, live: Live) -> None:
        sbx = live.sbx
        self.live = live
        # Looked up, not isinstance() of the Protocol: that costs a warm invocation ~8 us.
        self.sbx = cast(_Measured, sbx) if hasattr(sbx, "usage") else None
        self.measure = self.sbx.usage if self.sbx is not None else None
        self.limit = live.config.memory_mb * 1024 * 1024
        self.memory = self.tasks = self.fds = 0
        self.seen = False

    def sample(self) -> Usage | None:
        if self.measure is None:
            return None
        fd = self.live.logfd
        try:
            log_bytes = os.fstat(fd).st_size if fd >= 0 else 0
        except OSError:
            log_bytes = 0
        usage = self.measure(log_bytes)
        if usage is None:
            return None
        self.seen = True
        self.memory, self.tasks, self.fds = (max(self.memory, usage.memory), max(self.tasks, usage.tasks),
                                             max(self.fds, usage.fds))
        if usage.memory > self.limit:
            raise _OverMemory
        return usage

    def killed_by_kernel(self) -> bool:
        """Whether the kernel's OOM killer ended a process of the instance since the watch began."""
        if self.sbx is None:
            return False
        seen, self.live.oom_kills = self.live.oom_kills, self.sbx.oom_kills()
        return self.live.oom_kills > seen

    def recv(self, chan: Channel, timeout: float, fds: bool = False) -> Any:
        """``chan.recv(timeout)``, sampling while it waits."""
        if self.measure is None:
            return chan.recv(timeout, fds)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return chan.recv(min(SAMPLE_S, max(left, 0.0)), fds)
            except TimeoutError:
                if left <= SAMPLE_S:
                    raise
            self.sample()


_read_result = reader(Result, "payload", "error", "duration_ms", "max_memory_kb", "coverage", "refused",
                      "outside_imports")


class Invoker:
    """Runs invocations on live instances, for one Simulator.

    ``reset`` replaces an instance's runtime after a timeout, crash or failed Init (the
    simulator records it); ``coverage`` takes the lines an instance measured; ``lone``
    says whether this is the only invocation in flight.
    """

    def __init__(self, sandbox_name: str, reset: Callable[[Live, str], None],
                 coverage: Callable[[FunctionConfig, dict[str, Any] | None], None], lone: Callable[[], bool]) -> None:
        self._sandbox_name = sandbox_name
        self._reset = reset
        self._coverage = coverage
        self._lone = lone

    def wait_init(self, live: Live, timeout: float, watch: _Watch | None = None) -> Init:
        """The runtime's :class:`Init`, and its log file; :class:`ProtocolError` when what
        came is not that (the function wrote to the channel itself)."""
        if live.rt is None:
            live.rt = live.sbx.start_runtime()
        # Only Init carries a descriptor (the log memfd): one is held, others are closed.
        live.rt.guard(RUNTIME_MAX_FRAME, 1)
        got = live.rt.recv(timeout, fds=True) if watch is None else watch.recv(live.rt, timeout, fds=True)
        msg = check_runtime_message(got, INIT, SANDBOX_ERROR)
        if msg[0] == SANDBOX_ERROR:
            live.rt.discard_fds()
            raise SandboxError(f"The {self._sandbox_name} sandbox could not prepare instance {live.record.id}'s "
                               f"runtime: {SandboxFailure._make(msg).reason}")
        try:
            (fd,) = live.rt.take_fds(1)
        except ChannelClosed:
            raise ProtocolError("an init message without the runtime's log file") from None
        live.rt.discard_fds()
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        if not regular:
            os.close(fd)
            raise ProtocolError("an init message whose log file is not a regular file")
        live.logfd = fd
        return Init(*msg)

    def initialize(self, live: Live, request_id: str, init_timeout_s: float, region: str) -> Invocation:
        """Run Init on ``live`` ahead of any request (provisioned concurrency), as a first invocation runs it
        but within ``init_timeout_s`` and without the retry under the function's timeout; the first request
        that follows is warm. The outcome is an :class:`Invocation` that sent no request: its
        ``init_duration_ms``, its ``error`` (Init's) and Init's log (``_init_logs``); ``request_id`` is only
        used in the words of an error."""
        assert live.record.needs_init, f"{live.record.id} has run its Init"
        return self.run(live, request_id, None, None, None, None, init_timeout_s, region, "")

    def run(self, live: Live, request_id: str, event_bytes: bytes | None, client_context: Mapping[str, Any] | None,
            identity: Mapping[str, Any] | None, tenant_id: str | None, init_timeout_s: float,
            region: str, trace: str) -> Invocation:
        """Run one invocation on ``live``: Init first when it is due, then the request
        (``trace`` is its X-Ray trace header, drawn when it was routed: see :func:`trace_id`).
        ``event_bytes`` None: Init alone (see :meth:`initialize`)."""
        record, config = live.record, live.config
        init_only = event_bytes is None
        carried = ""
        if not record.needs_init and live.rt is not None and _ended(live.rt):
            # The runtime ended after its last answer (awslambdaric after a 413, a bootstrap that
            # exits): Lambda resets the environment then, and this invocation starts it afresh. What
            # the runtime wrote on its way out comes first in the log, as in Lambda's log stream.
            live.sbx.wait_runtime_exit(10.0)
            carried = live.take_logs()
            self._reset(live, "exit")
        cold = record.needs_init
        budget = config.timeout_s
        init_ms: float | None = None
        restore_ms: float | None = None
        billed_restore_ms: float | None = None
        init_logs = ""
        max_kb = 0
        watch = _Watch(live)
        refused: dict[str, int] = {}  # see _runtime.NetworkWatch
        system_log = config.json_system_level
        outside: list[str] = []  # see _package.ImportWatch
        traced = trace if config.tracing and trace else None  # REPORT names its trace (see _platform_log)

        def result(error: ErrorDict | None, payload: bytes | None, duration: float, body: str,
                   status: str = "", status_code: int = 200) -> Invocation:
            measured = watch.seen
            return Invocation(
                request_id, record.function, record.version, record.id, cold, error, payload, duration,
                init_ms, memory_size_mb=config.memory_mb,
                max_memory_used_mb=math.ceil((watch.memory if measured else max_kb * 1024) / (1024 * 1024)),
                max_tasks=watch.tasks if measured else None, max_fds=watch.fds if measured else None,
                refused_addresses=tuple(refused), refused_counts=refused, outside_imports=tuple(outside),
                tenant_id=tenant_id, _body_logs=body,
                _init_logs=init_logs, _report_status=status, _billed_init=config.bills_init,
                restore_duration_ms=restore_ms, _billed_restore_ms=billed_restore_ms, status_code=status_code,
                _system_log=system_log, _trace=traced)

        def timed_out(duration_s: float) -> Invocation:
            live.sbx.kill_runtime()
            live.sbx.wait_runtime_exit(10.0)
            body = live.take_logs()
            self._reset(live, "timeout")
            return result(lambda_errors.task_timed_out(request_id, duration_s), None, duration_s * 1000.0, body,
                          lambda_errors.STATUS_TIMEOUT)

        def exited(duration: float) -> Invocation:
            # After destroy() the keeper is gone too: the runtime was killed with it.
            destroyed = record.state is InstanceState.DEAD
            code = -9 if destroyed else live.sbx.wait_runtime_exit(10.0)
            if not destroyed and code == -9 and watch.killed_by_kernel():
                return out_of_memory(duration, waited=True)
            body = live.take_logs()
            if not destroyed:
                self._reset(live, "exit")
            error = lambda_errors.runtime_exited(request_id, code)
            return result(error, None, duration, body + lambda_errors.runtime_error_log(error),
                          lambda_errors.error_status(error["errorType"]))

        def protocol_error(duration: float) -> Invocation:
            # The runtime's channel carried something no runtime sends: the function wrote to it.
            # The runtime is ended, as Lambda ends one that breaks the Runtime API's rules.
            live.sbx.kill_runtime()
            code = live.sbx.wait_runtime_exit(10.0)
            body = live.take_logs()
            self._reset(live, "exit")
            error = lambda_errors.runtime_exited(request_id, code)
            return result(error, None, duration, body + lambda_errors.runtime_error_log(error),
                          lambda_errors.error_status(error["errorType"]))

        def platform_failure(error_type: str, reason: str, duration: float, body: str = "") -> Invocation:
            # The environment failed (an extension crashed, no bootstrap): the runtime process exits
            # after saying so, and the environment is reset, as Lambda resets it.
            live.sbx.wait_runtime_exit(10.0)
            body += live.take_logs()
            self._reset(live, "init error" if cold and record.needs_init else "exit")
            error = lambda_errors.platform_error(request_id, error_type, reason)
            return result(error, None, duration, body + lambda_errors.runtime_error_log(error),
                          lambda_errors.error_status(error_type))

        def out_of_memory(duration: float, kill: bool = False, waited: bool = False) -> Invocation:
            if kill:  # over its memory at a sample: killed as the kernel kills it on Lambda
                live.sbx.kill_runtime()
            if not waited:
                live.sbx.wait_runtime_exit(10.0)
            body = live.take_logs()
            self._reset(live, "out of memory")
            error = lambda_errors.out_of_memory(request_id)
            return result(error, None, duration, body + lambda_errors.runtime_error_log(error),
                          lambda_errors.error_status(error["errorType"]))

        if cold and record.restored:  # SnapStart: restored from the version's snapshot, not initialised
            restored = self._restore(live, watch, request_id, region, system_log, traced, exited, protocol_error,
                                     out_of_memory)
            if isinstance(restored, Invocation):
                return restored
            msg, restore_ms, billed_restore_ms, init_logs = restored
            max_kb = msg.max_memory_kb
            if msg.refused:
                refused.update(msg.refused)
            outside.extend(msg.outside_imports or ())
            if msg.error is not None:  # an after-restore hook raised: the runtime exits, as awslambdaric
                live.sbx.wait_runtime_exit(10.0)
                self._reset(live, "restore error")
                return result(msg.error, None, 0.0, "", lambda_errors.error_status(msg.error["errorType"]))
            record.needs_init = False
        elif cold:
            started = time.monotonic()
            try:
                try:
                    msg = self.wait_init(live, min(init_timeout_s, budget + init_timeout_s), watch)
                except TimeoutError:
                    if init_only:
                        raise
                    # Lambda retries an Init that overran its 10 s on the first invocation,
                    # under the function's timeout.
                    live.sbx.kill_runtime()
                    live.sbx.wait_runtime_exit(10.0)
                    live.drop_runtime()
                    started = time.monotonic()
                    msg = self.wait_init(live, budget, watch)
                    budget -= time.monotonic() - started
            except TimeoutError:
                return timed_out(init_timeout_s if init_only else config.timeout_s)
            except ChannelClosed:
                return exited(0.0)
            except ProtocolError:
                return protocol_error(0.0)
            except _OverMemory:
                return out_of_memory(0.0, kill=True)
            if live.tmp_writers is not None:  # track_tmp_access
                _note_tmp_access(live, request_id, msg.tmp_access, init=True)
            init_error, init_ms, max_kb = msg.error, msg.init_ms, msg.max_memory_kb
            if msg.refused:
                refused.update(msg.refused)
            outside.extend(msg.outside_imports or ())
            self._coverage(live.config, msg.coverage)
            custom = config.runtime if config.custom_runtime else None
            init_logs = (carried + _platform_log.init_start(
                system_log, lambda_errors.init_start_line(config.python_version, region, custom),
                initialization_type=record.init_type,
                runtime_version=_platform_log.runtime_version(config.python_version, custom), region=region,
                function=record.function, version=lambda_errors.LATEST) + live.take_logs())
            if init_error is not None:
                if init_error == OUT_OF_MEMORY_AT_INIT:
                    return out_of_memory(0.0)
                error_type = init_error.get("errorType")
                if isinstance(error_type, str) and lambda_errors.is_platform_error(error_type):
                    return platform_failure(error_type, str(init_error.get("errorMessage", "")), 0.0)
                live.sbx.wait_runtime_exit(10.0)
                self._reset(live, "init error")
                return result(init_error, None, 0.0, "", lambda_errors.error_status(init_error["errorType"]))
            record.needs_init = False
            if init_only:
                return result(None, None, 0.0, "")

        assert live.rt is not None and event_bytes is not None
        deadline = time.time() + budget
        sent = time.monotonic()
        try:
            # Only a lone warm invocation polls for its answer: with several in flight
            # the CPUs are better spent running them, and a first invocation is slow anyway.
            # On a single CPU polling only delays the other side.
            spin = _SPIN_S if self._lone() and not cold and _runtime.usable_cpus() > 1 else 0.0
            live.rt.send(pack_invoke(
                request_id=request_id, event=event_bytes, deadline_ms=int(deadline * 1000),
                trace_id=trace,
                client_context=dict(client_context) if client_context is not None else None,
                identity=dict(identity) if identity is not None else None, tenant_id=tenant_id,
                function_arn=function_arn(region, config.lambda_name), spin=spin))
            if spin:
                live.rt.spin(spin)
            reply = check_runtime_message(watch.recv(live.rt, budget), RESULT, RESULT_LAST, FATAL)
            watch.sample()  # the real measure at the end, however short the invocation was
        except TimeoutError:
            return timed_out(config.timeout_s)
        except (ChannelClosed, OSError):
            return exited((time.monotonic() - sent) * 1000.0)
        except ProtocolError:
            return protocol_error((time.monotonic() - sent) * 1000.0)
        except _OverMemory:
            return out_of_memory((time.monotonic() - sent) * 1000.0, kill=True)
        if reply[0] == FATAL:
            fatal = Fatal._make(reply)
            max_kb = fatal.max_memory_kb
            if fatal.error_type != lambda_errors.RUNTIME_OUT_OF_MEMORY:
                # From the Runtime API runtime (_rapi): "Extension.Crash", or "Extension.Crash\nexit status 1"
                # with the reason Lambda gives after the error type.
                error_type, _, reason = fatal.error_type.partition("\n")
                return platform_failure(error_type, reason or _PLATFORM_REASONS.get(error_type, "exited"),
                                        fatal.duration_ms)
            return out_of_memory(fatal.duration_ms)
        payload, error, duration, max_kb, measured, refused_now, outside_now = _read_result(reply)
        outside.extend(n for n in outside_now or () if n not in outside)
        if refused_now:
            for where, n in refused_now.items():
                refused[where] = refused.get(where, 0) + n
        if live.tmp_writers is not None:  # track_tmp_access
            _note_tmp_access(live, request_id, Result(*reply).tmp_access, init=False)
        self._coverage(config, measured)
        if reply[0] == RESULT_LAST:
            # The runtime ends after this answer (see RESULT_LAST): as on Lambda, which freezes only once
            # a runtime asks for its next event, the end is seen now (with what it wrote on its way out)
            # and the next invocation starts afresh.
            live.sbx.wait_runtime_exit(10.0)
            body = live.take_logs()
            self._reset(live, "exit")
        else:
            body = live.take_logs()
        if error is None and payload is not None and len(payload) > MAX_RESPONSE_BYTES:
            error = lambda_errors.response_too_large()
            payload = None
        return result(error, payload, duration, body, lambda_errors.report_status(error))


    def _restore(self, live: Live, watch: _Watch, request_id: str, region: str, system_log: str | None,
                 traced: str | None, exited: Callable[[float], Invocation],
                 protocol_error: Callable[[float], Invocation],
                 out_of_memory: Callable[..., Invocation]) -> Invocation | tuple[Init, float, float, str]:
        """A restored instance's first invocation: wait for its restore (after-restore hooks included) within
        Lambda's limit; (its Init message, Restore Duration, Billed Restore Duration, the restore's logs), or
        the invocation's outcome when it failed."""
        if live.rt is None:  # after a reset: the keeper forks a new runtime from the snapshot's memory
            live.restore_started = time.monotonic()
            live.rt = live.sbx.start_runtime()
        started = live.restore_started or time.monotonic()
        try:
            left = lambda_errors.RESTORE_TIMEOUT_S - (time.monotonic() - started)
            msg = self.wait_init(live, max(left, 0.0), watch)
        except TimeoutError:
            live.sbx.kill_runtime()
            live.sbx.wait_runtime_exit(10.0)
            logs = _restore_start(live, system_log, region) + live.take_logs()
            self._reset(live, "restore timeout")
            restore_ms = (time.monotonic() - started) * 1000.0
            error = lambda_errors.snapstart_timeout()
            return Invocation(request_id, live.record.function, live.record.version, live.record.id, True, error,
                              None, 0.0, None, status_code=408,  # the Invoke API answers SnapStartTimeoutException
                              memory_size_mb=live.config.memory_mb, restore_duration_ms=restore_ms,
                              _billed_restore_ms=restore_ms, _init_logs=logs, _system_log=system_log, _trace=traced,
                              _report_status=lambda_errors.error_status(error["errorType"]))
        except ChannelClosed:
            return exited(0.0)
        except ProtocolError:
            return protocol_error(0.0)
        except _OverMemory:
            return out_of_memory(0.0, kill=True)
        restore_ms = (time.monotonic() - started) * 1000.0
        if live.tmp_writers is not None:  # track_tmp_access
            _note_tmp_access(live, request_id, msg.tmp_access, init=True)
        self._coverage(live.config, msg.coverage)
        status = lambda_errors.error_status(msg.error["errorType"]) if msg.error is not None else ""
        text = lambda_errors.phase_line("RESTORE_REPORT", restore_ms, status)
        logs = (_restore_start(live, system_log, region) + live.take_logs()
                + _platform_log.restore_report(system_log, text, restore_ms, status))
        return msg, restore_ms, msg.init_ms, logs


def _restore_start(live: Live, system_log: str | None, region: str) -> str:
    """SnapStart's RESTORE_START line in the function's log format."""
    return _platform_log.restore_start(
        system_log, lambda_errors.phase_line("RESTORE_START", python=PYTHON_VERSION, region=region),
        runtime_version=_platform_log.runtime_version(PYTHON_VERSION, None), region=region,
        function=live.record.function, version=lambda_errors.LATEST)  # as START says (executed_version)


_PLATFORM_REASONS = {lambda_errors.EXTENSION_CRASH: "an extension exited"}
"""The reason said of a :class:`Fatal` that gives none."""

def _ended(chan: Channel) -> bool:
    """Whether the runtime's end of ``chan`` is closed (it exited), without waiting or reading."""
    if chan.has_buffered():
        return False
    try:
        return chan.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


_EROFS = re.compile(r"\[Errno 30\] Read-only file system: '([^']*)'")


def read_only_paths(inv: Invocation) -> list[str]:
    """Paths of the read-only-filesystem errors an invocation ran into (its error or its logs)."""
    found: list[str] = []
    if inv.error is not None and "Read-only file system" in str(inv.error.get("errorMessage", "")):
        found += _EROFS.findall(inv.error["errorMessage"])
    if "Read-only file system" in inv._body_logs or "Read-only file system" in inv._init_logs:
        found += _EROFS.findall(inv._init_logs + inv._body_logs)
    return list(dict.fromkeys(found))


# -- trace details: errors, /tmp provenance ------------------------------------------------

_ERROR_LOG_LINES = 50
_ERROR_LOG_CHARS = 16384


def error_detail(inv: Invocation) -> dict[str, Any]:
    """A failed invocation's error and the last lines of its logs, for the trace (and its HTML report)."""
    error = inv.error or {}
    logs = "\n".join(inv.logs.splitlines()[-_ERROR_LOG_LINES:])
    if len(logs) > _ERROR_LOG_CHARS:
        logs = "\u2026" + logs[-_ERROR_LOG_CHARS:]
    return {"errorType": error.get("errorType"), "errorMessage": error.get("errorMessage"), "logs": logs}


def _note_tmp_access(live: Live, request_id: str, report: TmpAccessReport | None, init: bool) -> None:
    """Note the /tmp accesses an :class:`Init` or :class:`Result` reported (see _runtime.TmpAccess):
    reads of files another invocation wrote last, then the writes."""
    writers = live.tmp_writers
    assert writers is not None and report is not None
    reads, changes = report
    for path in reads:
        last = writers.get(path)
        # What Init wrote, every new instance (and every reset) writes again: not a dependency.
        if last is not None and last[0] != request_id and not last[1]:
            read = {"path": path, "writer": last[0]}
            if init:
                read["during"] = "init"
            live.tmp_reads_from.append(read)
    for path, written in changes.items():
        if written:
            writers[path] = (request_id, init)
        else:
            for gone in [p for p in writers if p == path or p.startswith(path + "/")]:
                del writers[gone]


def trace_id(rng: random.Random, sampled: bool = False) -> str:
    """An invocation's X-Ray trace header (``_X_AMZN_TRACE_ID``): sampled (``Sampled=1``) under active tracing."""
    h = f"{rng.getrandbits(192):048x}"
    return (f"Root=1-{int(time.time()):08x}-{h[:24]};Parent={h[24:40]};Sampled={int(sampled)};"
            f"Lineage=1:{h[40:]}:0")


# -- the Shutdown phase ------------------------------------------------------------------------

SHUTDOWN_BUDGET_MS = 2000
"""Lambda's Shutdown phase: 2,000 ms in all for the runtime's SIGTERM and the extensions' SHUTDOWN event."""
_SHUTDOWN_MARGIN_S = 1.0  # for the runtime process to answer once the budget is used up
_SHUTDOWN_LOG_LINES = 20


def shuts_down(live: Live) -> bool:
    """Whether ``live`` has a Shutdown phase before it is destroyed (else it is killed at once, as
    Lambda kills an environment without extensions)."""
    return live.extensions and live.quiet and live.rt is not None and not live.record.needs_init


def shut_down(lives: Sequence[Live], reason: str = "spindown",
              budget_ms: int = SHUTDOWN_BUDGET_MS) -> list[tuple[Live, dict[str, Any]]]:
    """Run the Shutdown phase of those of ``lives`` that have one (:func:`shuts_down`), all at once:
    each is thawed and sent :class:`~lambdasim._wire.Shutdown`, then each answer is awaited until the
    budget (and a margin) ends. Returns each one's trace detail: ``duration_ms``, ``killed`` (what had to
    be SIGKILLed), ``logs`` (the last lines written meanwhile), or ``error`` when it did not answer."""
    started = time.monotonic()
    sent: list[tuple[Live, bool]] = []
    out: list[tuple[Live, dict[str, Any]]] = []
    for live in lives:
        if not shuts_down(live):
            continue
        assert live.rt is not None
        try:
            was_frozen = live.sbx.frozen
            live.sbx.thaw()
            live.rt.send(pack_shutdown(reason=reason, budget_ms=budget_ms))
        except (OSError, ChannelClosed, SandboxError) as e:
            out.append((live, {"reason": reason, "error": f"the SHUTDOWN could not be sent: {e}"}))
            continue
        sent.append((live, was_frozen))
    deadline = started + budget_ms / 1000.0 + _SHUTDOWN_MARGIN_S
    for live, was_frozen in sent:
        assert live.rt is not None
        detail: dict[str, Any] = {"reason": reason, "budget_ms": budget_ms, "thawed": was_frozen}
        try:
            done = ShutdownDone._make(check_runtime_message(
                live.rt.recv(max(deadline - time.monotonic(), 0.0)), SHUTDOWN_DONE))
            detail.update(duration_ms=round(done.used_ms, 3), killed=list(done.killed))
        except TimeoutError:
            detail["error"] = f"no answer within {budget_ms} ms and a margin of {_SHUTDOWN_MARGIN_S:g} s"
        except (ChannelClosed, OSError):
            detail["error"] = "the runtime process exited before it answered"
        except ProtocolError as e:
            detail["error"] = f"the runtime process answered with {e}"
        logs = live.take_logs()
        if logs:
            detail["logs"] = "\n".join(logs.splitlines()[-_SHUTDOWN_LOG_LINES:])[-_ERROR_LOG_CHARS:]
        out.append((live, detail))
    return out
