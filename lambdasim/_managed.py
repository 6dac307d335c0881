"""Lambda Managed Instances, the engine's side: environments that run many invocations at once.

A Managed Instances environment (``capacity_provider=``) runs up to ``max_concurrency``
invocations at the same time, each in its own worker process with its own Init (globals per
process), all sharing the environment's one /tmp, memory and limits: its runtime process is a
supervisor of workers (``_managed_rt``). Here, per environment (:class:`ManagedLive`), one reader
thread takes the supervisor's messages and hands each answer to the invocation waiting for it, so
that several threads (``invoke_many``) run invocations on one environment at once.

As Lambda documents it (LMI-env, LMI-py in /work/shared/lambda-facts.md):

- the workers' Init runs when the environment starts, all of them at once; an invocation takes a
  worker that is ready. Managed Instances have no cold starts: no invocation reports an Init
  (a worker's Init output comes first in the log of its first invocation);
- environments are never frozen between invocations;
- a timeout fails that invocation alone (``Sandbox.Timedout``) and is not enforced: the worker
  runs on, and takes invocations again once its handler returns (its late answer is dropped);
- a worker that crashes fails its invocation (``Runtime.ExitError``) and is replaced by a new
  process (with its own Init) without a reset: the other workers, their globals and /tmp stay;
- when every worker of every environment is busy and no other may start (``max_environments``),
  the invocation is throttled (``FunctionModel.acquire``).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import socket
import stat
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _platform_log
from lambdasim._errors import InstanceGone, SandboxError, SettingError
from lambdasim._invoke import Invocation, Live, _note_tmp_access, take_log
from lambdasim._lambda_errors import ErrorDict
from lambdasim._model import PYTHON_VERSION, FunctionConfig, InstanceRecord, InstanceState, function_arn
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._sandbox._usage import SAMPLE_S, Usage
from lambdasim._wire import (
    FATAL,
    MANAGED_INIT,
    MANAGED_INVOKE,
    MANAGED_RESULT,
    MANAGED_START,
    OUT_OF_MEMORY_AT_INIT,
    RESULT_LAST,
    RUNTIME_MAX_FRAME,
    SANDBOX_ERROR,
    Channel,
    ChannelClosed,
    Fatal,
    Init,
    ProtocolError,
    Result,
    SandboxFailure,
    check_managed_message,
    pack_invoke,
)

if TYPE_CHECKING:
    from lambdasim._simulator import Function, Simulator, _Routed

INIT_LIMIT_S = 130.0
"""How long a Managed Instances Init may take: 130 s, or the function's timeout when that is longer."""

# A worker's states: starting (its Init runs), ready, busy (an invocation), late (its invocation timed out
# and its handler runs on), exiting (its last answer came, or its Init failed: it ends), dead (to start again).
_ALIVE = frozenset({"starting", "ready", "busy", "late", "exiting"})


def spec_for(spec: InstanceSpec, config: FunctionConfig) -> None:
    """Make ``spec`` a Managed Instances environment's: its supervisor, and the variables Lambda sets there."""
    env = spec["env"]
    env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(config.concurrency_per_environment)
    env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"  # always JSON on Managed Instances, whatever the function says
    spec["runtime_kind"] = "managed"


def refuse(config: FunctionConfig, sandbox: str, runtime_api: bool) -> None:
    """Raise :class:`SettingError` for a Managed Instances function lambdasim cannot run as Lambda would."""
    if not config.managed:
        return
    if sandbox == "fakefs":
        raise SettingError(config.name, "capacity_provider", (
            "the fakefs sandbox cannot run Lambda Managed Instances: their worker processes share one /tmp, and "
            "fakefs keeps each process's /tmp in that process's memory (pyfakefs), so the workers could not see "
            "each other's files. Use the namespace sandbox: Simulator(sandbox='namespace') or --sandbox namespace "
            "(Linux with user namespaces)."))
    if runtime_api:
        raise SettingError(config.name, "capacity_provider", (
            "lambdasim runs Lambda Managed Instances functions on its built-in Python runtime only, not behind the "
            "Runtime API (a custom runtime, a container image's entry point, a wrapper script or extensions)."))


class _Request:
    """One invocation on a worker, until its answer (``reply``), its worker's end (``code``) or its timeout."""

    __slots__ = ("body", "code", "done", "reply", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.reply: tuple[Any, ...] | None = None
        self.code: int | None = None
        self.body = ""
        self.done = threading.Event()  # its own: an answer wakes only the invocation it is for

    def pending(self, gen: _Generation) -> bool:
        """Whether nothing has come for it yet (and its supervisor is still there)."""
        return self.reply is None and self.code is None and not gen.down


class _InitFailure(NamedTuple):
    """The Init error of a worker started for an invocation that waited: that invocation's outcome."""

    error: ErrorDict
    logs: str
    code: int | None = None
    """The worker's exit status when it ended in its Init (the error is then made for the invocation)."""
    outside: tuple[str, ...] = ()
    """What its Init imported from outside the package (see ``Invocation.outside_imports``)."""


class _Worker:
    __slots__ = ("index", "init_logs", "init_ms", "inited", "logfd", "outside", "refused", "request", "state")

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = "dead"
        self.logfd = -1
        self.request: _Request | None = None
        self.init_logs = ""  # its Init's output: first in the log of its first invocation
        self.init_ms = 0.0
        self.refused: dict[str, int] = {}
        self.outside: list[str] = []  # its Init's imports from outside the package: told with its first invocation
        self.inited = False  # its Init succeeded: if it ends now, it is replaced


class _Generation:
    """One supervisor process, on its channel: the environment resets (a new one) when it ends."""

    __slots__ = ("chan", "code", "down")

    def __init__(self, chan: Channel) -> None:
        self.chan = chan
        self.down = False
        self.code: int | None = None


class ManagedLive(Live):
    """Engine-side state of one Managed Instances environment: its workers and the supervisor's channel."""

    def __init__(self, record: InstanceRecord, config: FunctionConfig, spec: InstanceSpec) -> None:
        super().__init__(record, config, spec)
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()  # never held with cond: see _send
        self.restart_lock = threading.Lock()
        self.workers = [_Worker(i) for i in range(config.concurrency_per_environment)]
        self.gen: _Generation | None = None
        self.failures: collections.deque[_InitFailure] = collections.deque()
        self.waiting = 0
        self.started = threading.Event()
        self.start_failed = False
        self.sandbox_failure = ""
        self._sample: tuple[float, Usage | None] | None = None

    def usage(self) -> Usage | None:
        """What the whole environment (all its workers) uses, sampled at most every ``SAMPLE_S``: the invocations
        that end at about the same time share a sample (the namespace sandbox's; None for others)."""
        measure = getattr(self.sbx, "usage", None)
        if measure is None:
            return None
        now = time.monotonic()
        last = self._sample
        if last is None or now - last[0] > SAMPLE_S:
            last = self._sample = (now, measure())
        return last[1]

    def alive(self) -> int:
        with self.cond:
            return sum(w.state in _ALIVE for w in self.workers)

    def drop_runtime(self) -> None:
        rt = self.rt
        if rt is not None:  # wakes the reader thread (a close alone would not)
            with contextlib.suppress(OSError):
                rt.sock.shutdown(socket.SHUT_RDWR)
        super().drop_runtime()
        with self.cond:
            for w in self.workers:
                if w.logfd >= 0:
                    os.close(w.logfd)
                    w.logfd = -1
            self.cond.notify_all()


def workers(live: Live) -> int:
    """The live worker processes of ``live`` (0 unless it is a Managed Instances environment)."""
    return live.alive() if isinstance(live, ManagedLive) else 0


# -- the reader thread ---------------------------------------------------------------------------


def _event(sim: Simulator, live: Live, kind: str, **detail: Any) -> None:
    with sim._lock:
        record = live.record
        sim._event(kind, record.function, record.id, record.version, **detail)


def _log_fd(chan: Channel) -> int:
    (fd,) = chan.take_fds(1)
    chan.discard_fds()
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        raise ProtocolError("an init message whose log file is not a regular file")
    return fd


def _read(sim: Simulator, live: ManagedLive, gen: _Generation) -> None:
    """Take the supervisor's messages until its channel closes (it ended, or the environment was reset)."""
    chan = gen.chan
    region = sim.region
    while True:
        try:
            kind, index, body = check_managed_message(chan.recv(None, fds=True))
            fd = _log_fd(chan) if kind == MANAGED_INIT else -1
        except (ChannelClosed, OSError):
            break
        except ValueError:  # ProtocolError: the supervisor shares its environment with the function's code
            live.sbx.kill_runtime()
            break
        events: list[dict[str, Any]] = []
        freed = False
        send: tuple[Any, ...] | None = None
        coverage: dict[str, Any] | None = None
        with live.cond:
            if kind == SANDBOX_ERROR:
                live.sandbox_failure = SandboxFailure._make(body).reason
            elif index >= len(live.workers):
                if fd >= 0:
                    os.close(fd)
            elif kind == MANAGED_INIT:
                coverage = _on_init(live, live.workers[index], Init(*body), fd, region, events)
            elif kind == MANAGED_RESULT:
                freed, coverage = _on_result(live, live.workers[index], body)
            else:
                freed, send = _on_exit(live, live.workers[index], body, events)
            if live.waiting:  # invocations waiting for a worker
                live.cond.notify_all()
        if coverage is not None:
            sim._coverage.add(live.config, coverage)
        if send is not None:
            _send(live, gen, send)
        for detail in events:
            _event(sim, live, "worker", **detail)
        if freed:
            _free_late_slot(sim, live)
    with live.cond:
        gen.down = True
        for w in live.workers:
            if w.request is not None:
                w.request.body = take_log(w.logfd)
                w.request.done.set()
        live.cond.notify_all()


def _on_init(live: ManagedLive, w: _Worker, msg: Init, fd: int, region: str,
             events: list[dict[str, Any]]) -> dict[str, Any] | None:
    if w.state != "starting":  # not asked for: a worker sends one Init
        os.close(fd)
        return None
    if w.logfd >= 0:
        os.close(w.logfd)
    w.logfd = fd
    logs = _platform_log.init_start(
        live.config.json_system_level, lambda_errors.init_start_line(PYTHON_VERSION, region),
        initialization_type=live.record.init_type, runtime_version=_platform_log.runtime_version(PYTHON_VERSION, None),
        region=region, function=live.record.function, version=lambda_errors.LATEST_PUBLISHED) + take_log(fd)
    if live.tmp_writers is not None:  # track_tmp_access
        _note_tmp_access(live, f"init of worker {w.index}", msg.tmp_access, init=True)
    w.refused = dict(msg.refused or {})
    w.outside = list(msg.outside_imports or ())
    error = msg.error
    if error is None:
        w.state, w.inited, w.init_logs, w.init_ms = "ready", True, logs, msg.init_ms
        events.append({"action": "started", "worker": w.index, "init_ms": round(msg.init_ms, 3)})
        return msg.coverage
    # Its process ends after an Init error: the error goes to an invocation waiting for a worker, as
    # Lambda gives an invocation the Init error of the environment it started.
    w.state = "exiting"
    oom = error == OUT_OF_MEMORY_AT_INIT
    failure = lambda_errors.out_of_memory("") if oom else error
    if live.waiting > len(live.failures):
        live.failures.append(_InitFailure(failure, logs, -9 if oom else None, tuple(w.outside)))
    events.append({"action": "exited", "worker": w.index, "reason": "init error",
                   "error": failure.get("errorType")})
    return msg.coverage


def _on_result(live: ManagedLive, w: _Worker, reply: tuple[Any, ...]) -> tuple[bool, dict[str, Any] | None]:
    last = reply[0] in (RESULT_LAST, FATAL)  # the worker ends after it
    coverage = None if reply[0] == FATAL else Result(*reply).coverage
    if w.state == "busy" and w.request is not None:
        w.request.reply, w.request.body = reply, take_log(w.logfd)
        w.request.done.set()
        w.request = None
        w.state = "exiting" if last else "ready"
        return False, coverage
    if w.state == "late":  # the answer of an invocation that timed out: dropped, and the worker is free
        take_log(w.logfd)
        w.state = "exiting" if last else "ready"
        return True, coverage
    return False, None  # an answer no invocation asked for


def _on_exit(live: ManagedLive, w: _Worker, code: int,
             events: list[dict[str, Any]]) -> tuple[bool, tuple[Any, ...] | None]:
    previous = w.state
    freed = previous == "late"
    body = take_log(w.logfd)
    if w.logfd >= 0:
        os.close(w.logfd)
        w.logfd = -1
    if previous == "busy" and w.request is not None:
        w.request.code, w.request.body = code, body
        w.request.done.set()
        w.request = None
    elif previous == "starting" and live.waiting > len(live.failures):  # it died in its Init
        live.failures.append(_InitFailure(lambda_errors.runtime_exited("", code), body, code))
    if previous == "dead":
        return False, None
    reason = "init error" if previous in ("starting", "exiting") and not w.inited else (
        "exit" if previous == "exiting" else "crash")
    if previous != "exiting" or w.inited:
        events.append({"action": "exited", "worker": w.index, "reason": reason, "code": code})
    if w.inited:  # replaced at once, without a reset: the other workers and /tmp stay
        w.state, w.inited = "starting", False
        events.append({"action": "replaced", "worker": w.index})
        return freed, (MANAGED_START, w.index)
    w.state = "dead"
    return freed, None


def _send(live: ManagedLive, gen: _Generation, message: tuple[Any, ...]) -> bool:
    """Send to the supervisor; False when it is gone. Never with ``live.cond`` held: the supervisor may be
    waiting for the reader thread to take its own message first."""
    try:
        with live.send_lock:
            gen.chan.send(message)
    except OSError:
        return False
    return True


def _free_late_slot(sim: Simulator, live: ManagedLive) -> None:
    """A worker whose invocation timed out is free again: its environment may take one more invocation
    (or, the last to finish in an environment that a redeploy retired, is destroyed)."""
    record = live.record
    with sim._lock:
        record.inflight = max(record.inflight - 1, 0)
        if record.inflight or record.state is not InstanceState.BUSY:
            return
        fn = sim.functions.get(record.function)
        retire = record.retiring or fn is None or record.version != fn._model.version
        if retire:
            sim._mark_dead([live], quiet=True)
        else:
            record.state = InstanceState.IDLE
    if retire:
        sim._destroy([live], "retired", marked=True)


# -- starting and restarting ------------------------------------------------------------------------


def _attach(sim: Simulator, live: ManagedLive) -> None:
    """Read the supervisor that ``live.rt`` talks to: all its workers start their Init now."""
    assert live.rt is not None
    chan = live.rt
    chan.guard(RUNTIME_MAX_FRAME + 4096, 1)
    gen = _Generation(chan)
    with live.cond:
        for w in live.workers:
            if w.logfd >= 0:
                os.close(w.logfd)
            w.state, w.logfd, w.request, w.inited, w.init_logs = "starting", -1, None, False, ""
        live.failures.clear()
        live.gen = gen
        live.cond.notify_all()
    threading.Thread(target=_read, args=(sim, live, gen), name=f"lambdasim-{live.record.id}", daemon=True).start()


def _settle(sim: Simulator, live: ManagedLive, gen: _Generation) -> int:
    """How the supervisor of ``gen`` ended (its exit status), the environment reset once for it."""
    with live.restart_lock:
        if gen.code is None:
            if live.record.state is InstanceState.DEAD:
                gen.code = -9  # destroyed: killed with its keeper
            elif live.rt is gen.chan:
                gen.code = live.sbx.wait_runtime_exit(10.0)
                sim._reset(live, "exit")
            else:
                gen.code = -9  # reset already (Instance.crash)
        return gen.code


def _restart(sim: Simulator, live: ManagedLive, gen: _Generation | None) -> None:
    """A new supervisor (and workers) for an environment whose supervisor ended: Lambda resets it."""
    if gen is not None:
        _settle(sim, live, gen)
    with live.restart_lock:
        if live.gen is not gen:
            return  # another invocation did it
        if live.record.state is InstanceState.DEAD:
            raise InstanceGone(f"Instance {live.record.id} was destroyed.")
        if live.rt is None:
            live.rt = live.sbx.start_runtime()
        _attach(sim, live)


def _take_worker(sim: Simulator, live: ManagedLive, request: _Request,
                 deadline: float) -> tuple[_Worker, _Generation, str] | _InitFailure | None:
    """A ready worker for ``request`` (with the generation and its Init logs, given once), or the Init failure
    it must report, or None when no worker was ready in time."""
    while True:
        restart: list[_Generation | None] = []
        start: tuple[_Generation, int] | None = None
        with live.cond:
            if live.sandbox_failure:
                raise SandboxError(f"The namespace sandbox could not prepare instance {live.record.id}'s "
                                   f"runtime: {live.sandbox_failure}")
            gen = live.gen
            if gen is None or gen.down or live.rt is not gen.chan:
                restart.append(gen)
            else:
                w = next((w for w in live.workers if w.state == "ready"), None)
                if w is not None:
                    w.state, w.request = "busy", request
                    logs, w.init_logs = w.init_logs, ""
                    return w, gen, logs
                if live.failures:
                    return live.failures.popleft()
                live.waiting += 1
                try:
                    coming = sum(w.state in ("starting", "exiting") for w in live.workers)
                    dead = next((w for w in live.workers if w.state == "dead"), None)
                    if dead is not None and coming < live.waiting:
                        dead.state = "starting"  # a worker that ended after an Init error: once more, for this one
                        start = gen, dead.index
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    if start is None:
                        live.cond.wait(min(left, 1.0))
                finally:
                    live.waiting -= 1
        if restart:
            _restart(sim, live, restart[0])
        elif start is not None:
            _send(live, start[0], (MANAGED_START, start[1]))


def _wait_started(live: ManagedLive) -> None:
    live.started.wait()
    if live.start_failed or live.record.state is InstanceState.DEAD:
        raise InstanceGone(f"Instance {live.record.id} failed to start, or was destroyed while it started.")


def start(sim: Simulator, live: ManagedLive) -> None:
    """Make a new environment's sandbox and supervisor; its workers' Init begins."""
    record = live.record
    try:
        # Requests routed to it while it started keep it busy.
        sim._start_new(live, lambda r: r.state if r.state is not InstanceState.STARTING
                       else InstanceState.BUSY if r.inflight else InstanceState.IDLE)
        _attach(sim, live)
        record.needs_init = False
    except BaseException:
        live.start_failed = True
        raise
    finally:
        live.started.set()
    sim._sandbox.refill()


def provision(sim: Simulator, fn: Function, version: str | None = None) -> list[ManagedLive]:
    """Start the ``min_environments`` of ``version`` (the current one) ahead of requests; return when each has
    run its workers' Init (``provisioned`` events, with the slowest worker's ``init_ms``)."""
    config = fn._model.versions[version or fn._model.version]
    if not config.managed or not config.min_environments:
        return []
    with sim._lock:
        lives = []
        for record in fn._model.provision(config.min_environments, sim.clock.now(), version):
            live = ManagedLive(record, config, sim._spec(fn, record, config))
            fn._live[record.id] = live
            lives.append(live)
            sim._event("instance_created", fn.name, record.id, record.version, init_type=record.init_type)
    for live in lives:
        start(sim, live)
        limit = time.monotonic() + max(INIT_LIMIT_S, config.timeout_s)
        with live.cond:
            while any(w.state == "starting" for w in live.workers) and time.monotonic() < limit:
                if live.sandbox_failure or (live.gen is not None and live.gen.down):
                    break
                live.cond.wait(1.0)
            init_ms = max((w.init_ms for w in live.workers if w.inited), default=0.0)
        _event(sim, live, "provisioned", init_ms=round(init_ms, 3))
    return lives


# -- one invocation ------------------------------------------------------------------------------------


def run(sim: Simulator, routed: _Routed, client_context: Mapping[str, Any] | None,
        identity: Mapping[str, Any] | None, tenant_id: str | None) -> Invocation:
    """Run a routed invocation on its Managed Instances environment (starting it if it is new)."""
    live = routed.live
    assert isinstance(live, ManagedLive)
    try:
        if routed.new:
            start(sim, live)
        else:
            _wait_started(live)
        return _invoke(sim, live, routed, client_context, identity, tenant_id)
    except BaseException:
        sim._destroy([live], "harness error")
        raise
    finally:
        with sim._lock:
            sim._inflight -= 1
            sim._in_flight.pop(routed.trace, None)


def _invoke(sim: Simulator, live: ManagedLive, routed: _Routed, client_context: Mapping[str, Any] | None,
            identity: Mapping[str, Any] | None, tenant_id: str | None) -> Invocation:
    config, record = live.config, live.record
    request_id = routed.request_id
    request = _Request(request_id)

    outside: list[str] = []  # see _package.ImportWatch: the worker's Init's (with its first invocation), then its own

    def outcome(error: ErrorDict | None, payload: bytes | None, duration: float, body: str, status: str,
                init_logs: str = "", worker: int | None = None, max_kb: int = 0,
                refused: dict[str, int] | None = None) -> Invocation:
        usage = live.usage() if record.state is not InstanceState.DEAD else None
        memory = usage.memory if usage is not None else max_kb * 1024
        return Invocation(
            request_id, record.function, record.version, record.id, False, error, payload, duration, None,
            memory_size_mb=config.memory_mb, max_memory_used_mb=math.ceil(memory / (1024 * 1024)),
            max_tasks=usage.tasks if usage is not None else None, max_fds=usage.fds if usage is not None else None,
            refused_addresses=tuple(refused or ()), refused_counts=dict(refused or {}), worker=worker,
            outside_imports=tuple(outside), _body_logs=body, _init_logs=init_logs, _report_status=status,
            _qualifier=lambda_errors.LATEST_PUBLISHED, _system_log=config.json_system_level, _managed=True,
            _trace=routed.trace if config.tracing and routed.trace else None)

    def failed(error: ErrorDict, body: str, init_logs: str = "", worker: int | None = None,
               duration: float = 0.0) -> Invocation:
        return outcome(error, None, duration, body + lambda_errors.runtime_error_log(error),
                       lambda_errors.error_status(error["errorType"]), init_logs, worker)

    taken = _take_worker(sim, live, request, time.monotonic() + max(INIT_LIMIT_S, config.timeout_s))
    if taken is None:  # no worker finished its Init in time
        return outcome(lambda_errors.task_timed_out(request_id, max(INIT_LIMIT_S, config.timeout_s)), None,
                       0.0, "", lambda_errors.STATUS_TIMEOUT)
    if isinstance(taken, _InitFailure):  # the Init error of the worker started for it
        outside.extend(taken.outside)
        if taken.code is not None:  # it ended (or ran out of memory) in its Init: said with this request's id
            oom = taken.error["errorType"] == lambda_errors.RUNTIME_OUT_OF_MEMORY
            error = lambda_errors.out_of_memory(request_id) if oom else lambda_errors.runtime_exited(
                request_id, taken.code)
            return failed(error, "", taken.logs)
        return outcome(taken.error, None, 0.0, "", lambda_errors.error_status(taken.error["errorType"]), taken.logs)
    w, gen, init_logs = taken
    refused = dict(w.refused)
    w.refused = {}
    outside.extend(w.outside)  # the worker is this invocation's now: its Init does not write these again
    w.outside = []
    budget = config.timeout_s
    sent = time.monotonic()
    _send(live, gen, (MANAGED_INVOKE, w.index, pack_invoke(
        request_id=request_id, event=routed.event, deadline_ms=int((time.time() + budget) * 1000),
        trace_id=routed.trace, client_context=dict(client_context) if client_context is not None else None,
        identity=dict(identity) if identity is not None else None, tenant_id=tenant_id,
        function_arn=function_arn(sim.region, config.lambda_name), spin=0.0)))
    request.done.wait(budget)
    elapsed = (time.monotonic() - sent) * 1000.0
    if request.pending(gen):
        with sim._lock, live.cond:  # in this order: see _free_late_slot
            late = request.pending(gen)
            if late:  # not enforced: the worker runs on, and holds its place in the environment until it returns
                w.state, w.request = "late", None
                request.body = take_log(w.logfd)
                record.inflight += 1
        if late:
            return outcome(lambda_errors.task_timed_out(request_id, budget), None, budget * 1000.0, request.body,
                           lambda_errors.STATUS_TIMEOUT, init_logs, w.index, refused=refused)
    if request.reply is not None:
        reply = request.reply
        if reply[0] == FATAL:
            fatal = Fatal._make(reply)
            error = lambda_errors.out_of_memory(request_id) if fatal.error_type == lambda_errors.RUNTIME_OUT_OF_MEMORY \
                else lambda_errors.platform_error(request_id, fatal.error_type.partition("\n")[0], "exited")
            return failed(error, request.body, init_logs, w.index, fatal.duration_ms)
        result = Result(*reply)
        outside.extend(n for n in result.outside_imports or () if n not in outside)
        for where, n in (result.refused or {}).items():
            refused[where] = refused.get(where, 0) + n
        if live.tmp_writers is not None:  # track_tmp_access
            with live.cond:
                _note_tmp_access(live, request_id, result.tmp_access, init=False)
        answer, payload = result.error, result.payload
        if answer is None and payload is not None and len(payload) > lambda_errors.MAX_RESPONSE_BYTES:
            answer, payload = lambda_errors.response_too_large(), None
        return outcome(answer, payload, result.duration_ms, request.body, lambda_errors.report_status(answer),
                       init_logs, w.index, result.max_memory_kb, refused)
    if request.code is not None:  # the worker ended in the invocation (os._exit, a signal, out of memory)
        code = request.code
        kills = getattr(live.sbx, "oom_kills", None)
        seen = kills() if kills is not None and code == -9 else live.oom_kills
        oom, live.oom_kills = seen > live.oom_kills, seen
        error = lambda_errors.out_of_memory(request_id) if oom else lambda_errors.runtime_exited(request_id, code)
        return failed(error, request.body, init_logs, w.index, elapsed)
    # The supervisor ended, and every worker with it (Instance.crash(), a destroy, the function killed it).
    code = _settle(sim, live, gen)
    return failed(lambda_errors.runtime_exited(request_id, code), request.body, init_logs, w.index, elapsed)
