"""Lambda's Runtime API and Extensions API, served inside an instance, with the function's own
runtime (a custom runtime's ``bootstrap``, a container entry point, awslambdaric) and its
extensions (``/opt/extensions/*``) behind them.

This process stands where the built-in runtime (:mod:`lambdasim._runtime`) stands, and speaks
the same framed protocol to the simulator: ``Init`` once (with the log memfd), then ``Result``
(or ``Fatal``) per ``Invoke``, and ``ShutdownDone`` after a ``Shutdown``. So timeouts, resets,
crashes, memory and freezing stay one lifecycle with two transports. When the runtime exits,
this process exits with the same status (or dies of the same signal).

:class:`Lifecycle` is Lambda's state machine, sans I/O: requests (parsed by
:mod:`lambdasim._rapi_http`), invocations, process exits and the clock go in; HTTP answers, what
to tell the simulator and which processes to start or signal come out. :func:`run` is the small
socket loop around it (``selectors``; it sleeps until something happens, never spins).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any, NamedTuple, NoReturn

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _rapi_http as http
from lambdasim._lambda_errors import API_ERRORS, ErrorDict
from lambdasim._model import ACCOUNT_ID
from lambdasim._runtime import LogCapture
from lambdasim._sandbox import _linux
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._wire import (
    SHUTDOWN,
    Channel,
    ChannelClosed,
    Invoke,
    Shutdown,
    as_last,
    close_all_but,
    pack_fatal,
    pack_init,
    pack_result,
    pack_sandbox_failure,
    pack_shutdown_done,
    reader,
)

RUNTIME = "runtime"
"""The runtime's name among the processes (extensions go by their file names)."""
EXTENSIONS_DIR = "/opt/extensions"
RUNTIME_SHARE_S = 0.3
"""The runtime's time between SIGTERM and SIGKILL at shutdown (Lambda's docs; RIE gives 30 % of the budget)."""
RUNTIME_SHARE_INTERNAL_S = 0.5
"""The same when an internal extension is registered."""

_NEXT = "/2018-06-01/runtime/invocation/next"
_INVOCATION = "/2018-06-01/runtime/invocation/"
_INIT_ERROR = "/2018-06-01/runtime/init/error"
_REGISTER = "/2020-01-01/extension/register"
_EVENT_NEXT = "/2020-01-01/extension/event/next"
_EXT_INIT_ERROR = "/2020-01-01/extension/init/error"
_EXT_EXIT_ERROR = "/2020-01-01/extension/exit/error"
_STUBS = ("/2020-08-15/logs", "/2022-07-01/telemetry")
"""The Logs and Telemetry APIs: accepted and ignored, so that vendors' extensions do not fail."""
_EVENTS = ("INVOKE", "SHUTDOWN")
_ACCEPTED = b'{"status":"OK"}'


# -- what the lifecycle asks of its surroundings -------------------------------------------------


class Reply(NamedTuple):
    """Send ``data`` on connection ``conn``, its request answered; close it after when ``close``."""

    conn: int
    data: bytes
    close: bool


class StartRuntime(NamedTuple):
    """Every extension has registered: start the runtime."""


class Signal(NamedTuple):
    who: str
    signum: int


class InitDone(NamedTuple):
    """Tell the simulator Init is over (``error``: it failed)."""

    error: ErrorDict | None


class Complete(NamedTuple):
    """Tell the simulator the invocation is complete: the runtime replied and called ``next``, and
    every extension called ``event/next``."""

    payload: bytes | None
    error: ErrorDict | None
    duration_ms: float
    last: bool = False
    """The runtime ended after its reply: the simulator resets the environment (``_wire.RESULT_LAST``)."""


class Crash(NamedTuple):
    """Tell the simulator an extension ended the environment (``Fatal``)."""

    error_type: str
    duration_ms: float


class ShutdownOver(NamedTuple):
    used_ms: float
    killed: list[str]


class Exit(NamedTuple):
    """End this process, and every process it started: with status ``code``, or of signal -``code``."""

    code: int


Output = Reply | StartRuntime | Signal | InitDone | Complete | Crash | ShutdownOver | Exit
Holder = tuple[int, bool]
"""A request that waits for its answer: its connection, and whether that stays open after."""


def _error_body(key: str) -> tuple[int, bytes]:
    status, error_type, message = API_ERRORS[key]
    return status, json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class _Extension:
    __slots__ = ("busy", "events", "external", "held", "id", "name", "queued", "ready", "shutdown_sent")

    def __init__(self, name: str, ext_id: str, events: list[str], external: bool) -> None:
        self.name = name
        self.id = ext_id
        self.events = frozenset(events)
        self.external = external
        self.held: Holder | None = None  # its event/next, waiting
        self.queued: deque[tuple[list[tuple[str, str]], bytes]] = deque()  # events not yet taken
        self.ready = False  # it called event/next (Init's third phase waits for this)
        self.busy = False  # it was given an event and has not called event/next since
        self.shutdown_sent = False


class _Invocation:
    __slots__ = ("deadline_ms", "done", "error", "id", "payload", "request_id", "started")

    def __init__(self, request_id: str, invocation_id: str, deadline_ms: int, started: float) -> None:
        self.request_id = request_id
        self.id = invocation_id
        self.deadline_ms = deadline_ms
        self.started = started
        self.payload: bytes | None = None
        self.error: ErrorDict | None = None
        self.done = False


def new_id() -> str:
    return str(uuid.uuid4())


class Lifecycle:
    """One environment's Runtime and Extensions API, as Lambda runs them (RIE's ``rapid``): the three
    phases of Init, invocations, and the shutdown phase. Sans I/O: each method takes what happened and
    returns the :data:`Output` s it causes. ``clock`` is the epoch in seconds (deadlines), ``timer`` a
    monotonic one (durations, shutdown times)."""

    def __init__(self, *, external: list[str], handler: str, env: dict[str, str],
                 clock: Callable[[], float] = time.time, timer: Callable[[], float] = time.perf_counter,
                 make_id: Callable[[], str] = new_id) -> None:
        self.clock, self.timer, self.make_id = clock, timer, make_id
        self.external = list(external)  # the extension processes started, by file name
        self.unregistered = set(external)
        self.processes = {*external}  # alive (the runtime joins when it starts)
        self.phase = "extensions"  # extensions, runtime (Init's phases), ready, shutdown, over
        self.extensions: dict[str, _Extension] = {}
        self.runtime = "starting"  # starting, ready (waits in next), invoked, replied
        self.runtime_held: Holder | None = None
        self.pending: tuple[list[tuple[str, str]], bytes] | None = None  # an event the runtime has not taken
        self.inv: _Invocation | None = None
        self.register_body = json.dumps({"functionName": env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
                                         "functionVersion": env.get("AWS_LAMBDA_FUNCTION_VERSION", ""),
                                         "handler": handler}).encode()
        self.shutdown_started = 0.0
        self.shutdown_stage = ""  # runtime, extensions
        self.shutdown_budget_s = 0.0
        self.shutdown_deadline_ms = 0
        self.shutdown_reason = ""
        self.killed: list[str] = []

    # -- the start and the clock -------------------------------------------------------------

    def start(self) -> list[Output]:
        """Init's first phase has begun (the extensions are started): with none, start the runtime."""
        return self._maybe_start_runtime()

    def runtime_started(self) -> None:
        self.processes.add(RUNTIME)

    def runtime_failed(self, error: ErrorDict) -> list[Output]:
        """The runtime could not be started (no bootstrap, exec failed)."""
        self.phase = "over"
        return [InitDone(error), Exit(1)]

    def extension_failed(self, name: str, reason: str) -> list[Output]:
        self.phase = "over"
        return [InitDone(lambda_errors.extension_crash(name, 0, reason)), Exit(1)]

    def next_deadline(self) -> float | None:
        """When :meth:`tick` is next due (on ``timer``), or None."""
        if self.phase != "shutdown":
            return None
        if self.shutdown_stage == "runtime":
            return self.shutdown_started + self._runtime_share()
        if self.shutdown_stage == "extensions":
            return self.shutdown_started + self.shutdown_budget_s
        return None

    def tick(self) -> list[Output]:
        now = self.timer()
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        out: list[Output] = []
        if self.shutdown_stage == "runtime":
            out.append(Signal(RUNTIME, signal.SIGKILL))
            self.killed.append(RUNTIME)
            self._shutdown_extensions(out)
        elif self.shutdown_stage == "extensions":
            self.shutdown_stage = "killing"
            for name in sorted(self.processes):
                out.append(Signal(name, signal.SIGKILL))
                self.killed.append(name)
        return out

    # -- the simulator's messages ------------------------------------------------------------

    def invoke(self, request_id: str, event: bytes, deadline_ms: int, trace_id: str,
               client_context: dict[str, Any] | None, identity: dict[str, Any] | None, tenant_id: str | None,
               function_arn: str) -> list[Output]:
        if self.phase != "ready" or (self.inv is not None and not self.inv.done):
            return []  # the simulator sends an invocation only to an idle instance
        inv = self.inv = _Invocation(request_id, self.make_id(), deadline_ms, self.timer())
        headers = [("Lambda-Runtime-Aws-Request-Id", request_id), ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
                   ("Lambda-Runtime-Invoked-Function-Arn", function_arn), ("Lambda-Runtime-Trace-Id", trace_id)]
        if client_context is not None:
            headers.append(("Lambda-Runtime-Client-Context", json.dumps(client_context)))
        if identity is not None:
            headers.append(("Lambda-Runtime-Cognito-Identity", json.dumps(
                {"cognitoIdentityId": identity.get("cognitoIdentityId"),
                 "cognitoIdentityPoolId": identity.get("cognitoIdentityPoolId")})))
        if tenant_id is not None:
            headers.append(("Lambda-Runtime-Aws-Tenant-Id", tenant_id))
        headers.append(("Lambda-Runtime-Invocation-Id", inv.id))
        out: list[Output] = []
        self.runtime = "invoked"
        if self.runtime_held is not None:
            out.append(self._answer(self.runtime_held, 200, event, headers))
            self.runtime_held = None
        else:
            self.pending = (headers, event)
        body = b""
        for ext in self.extensions.values():
            if "INVOKE" in ext.events:
                body = body or json.dumps({"eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": request_id,
                                           "invokedFunctionArn": function_arn,
                                           "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id}}).encode()
                ext.busy = True
                self._give(ext, body, out)
        return out

    def shutdown(self, reason: str, budget_ms: int) -> list[Output]:
        """Lambda's shutdown phase: SIGTERM to the runtime, then the SHUTDOWN event to the extensions."""
        if self.phase in ("shutdown", "over"):
            return []
        self.phase = "shutdown"
        self.shutdown_reason = reason
        self.shutdown_started = self.timer()
        self.shutdown_budget_s = budget_ms / 1000.0
        self.shutdown_deadline_ms = int(self.clock() * 1000) + budget_ms
        out: list[Output] = []
        if RUNTIME in self.processes:
            self.shutdown_stage = "runtime"
            out.append(Signal(RUNTIME, signal.SIGTERM))
        else:
            self._shutdown_extensions(out)
        return out

    def _runtime_share(self) -> float:
        internal = any(not e.external for e in self.extensions.values())
        return min(RUNTIME_SHARE_INTERNAL_S if internal else RUNTIME_SHARE_S, self.shutdown_budget_s)

    def _shutdown_extensions(self, out: list[Output]) -> None:
        self.shutdown_stage = "extensions"
        body = json.dumps({"eventType": "SHUTDOWN", "deadlineMs": self.shutdown_deadline_ms,
                           "shutdownReason": self.shutdown_reason}).encode()
        for ext in self.extensions.values():
            if not ext.external or ext.name not in self.processes:
                continue
            if "SHUTDOWN" in ext.events:
                ext.queued.clear()
                ext.shutdown_sent = True
                self._give(ext, body, out)
            else:
                out.append(Signal(ext.name, signal.SIGKILL))  # Lambda ends them without an event
        for name in self.unregistered & self.processes:
            out.append(Signal(name, signal.SIGKILL))
        self._maybe_shutdown_over(out)

    def _maybe_shutdown_over(self, out: list[Output]) -> None:
        if self.phase == "shutdown" and self.shutdown_stage != "runtime" and not self.processes:
            self.phase = "over"
            out.append(ShutdownOver((self.timer() - self.shutdown_started) * 1000.0, list(self.killed)))
            out.append(Exit(0))

    # -- processes -----------------------------------------------------------------------------

    def exited(self, who: str, code: int) -> list[Output]:
        """Process ``who`` ended with status ``code`` (-N: killed by signal N)."""
        self.processes.discard(who)
        out: list[Output] = []
        if self.phase == "shutdown":
            if who == RUNTIME and self.shutdown_stage == "runtime":
                self._shutdown_extensions(out)
            else:
                self._maybe_shutdown_over(out)
            return out
        if self.phase == "over":
            return out
        initializing = self.phase in ("extensions", "runtime")
        self.phase = "over"
        if who == RUNTIME and initializing and code != -signal.SIGKILL:
            # Said in an Init, so that the log (what the bootstrap printed before it ended) goes with it;
            # a SIGKILL is left to the simulator, which tells the kernel's out-of-memory kill apart.
            out.append(InitDone({"errorType": lambda_errors.RUNTIME_EXIT_ERROR,
                                 "errorMessage": lambda_errors.exit_reason(code)}))
            out.append(Exit(code))
            return out
        if who == RUNTIME:
            inv = self.inv
            if inv is not None and not inv.done and self.runtime == "replied":
                # The caller had its answer; the environment is reset after it (awslambdaric after a 413).
                inv.done = True
                out.append(Complete(inv.payload, inv.error, (self.timer() - inv.started) * 1000.0, last=True))
            out.append(Exit(code))
            return out
        if initializing:
            out.append(InitDone(lambda_errors.extension_crash(who, code)))
        else:
            out.append(Crash(lambda_errors.EXTENSION_CRASH, self._invocation_ms()))
        out.append(Exit(1))
        return out

    def _invocation_ms(self) -> float:
        inv = self.inv
        return (self.timer() - inv.started) * 1000.0 if inv is not None and not inv.done else 0.0

    # -- HTTP requests ---------------------------------------------------------------------------

    def request(self, conn: int, req: http.Request) -> list[Output]:
        """A request on connection ``conn``; its answer is in the outputs, or comes later (``next``)."""
        holder = (conn, req.keep_alive)
        path, method = req.path, req.method
        out: list[Output] = []
        if path == _NEXT and method == "GET":
            self._runtime_next(holder, out)
        elif path.startswith(_INVOCATION) and method == "POST" and path.count("/") == 5:
            _, _, _, _, request_id, kind = path.split("/")
            if kind in ("response", "error"):
                self._post(holder, req, request_id, kind, out)
            else:
                out.append(self._fail(holder, "not_found"))
        elif path == _INIT_ERROR and method == "POST":
            self._init_error(holder, req, out)
        elif path == _REGISTER and method == "POST":
            self._register(holder, req, out)
        elif path == _EVENT_NEXT and method == "GET":
            self._event_next(holder, req, out)
        elif path in (_EXT_INIT_ERROR, _EXT_EXIT_ERROR) and method == "POST":
            self._extension_error(holder, req, path == _EXT_INIT_ERROR, out)
        elif path in _STUBS and method == "PUT":
            out.append(self._answer(holder, 200, _ACCEPTED))
        else:
            out.append(self._fail(holder, "not_found"))
        return out

    def closed(self, conn: int) -> None:
        """Connection ``conn`` is gone: a request waiting on it waits no more."""
        if self.runtime_held is not None and self.runtime_held[0] == conn:
            self.runtime_held = None
        for ext in self.extensions.values():
            if ext.held is not None and ext.held[0] == conn:
                ext.held = None

    @staticmethod
    def _answer(holder: Holder, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Reply:
        conn, keep_alive = holder
        return Reply(conn, http.render(status, body, headers, keep_alive), not keep_alive)

    def _fail(self, holder: Holder, key: str) -> Reply:
        status, body = _error_body(key)
        return self._answer(holder, status, body)

    def _runtime_next(self, holder: Holder, out: list[Output]) -> None:
        if self.phase == "shutdown":
            self.runtime_held = holder  # never answered: the runtime is being stopped
            return
        if self.pending is not None:
            headers, event = self.pending
            self.pending = None
            out.append(self._answer(holder, 200, event, headers))
            return
        if self.runtime == "invoked" or self.runtime_held is not None:
            out.append(self._fail(holder, "not_ready"))
            return
        self.runtime = "ready"
        self.runtime_held = holder
        if self.phase == "runtime":
            self._maybe_init_done(out)
        else:
            self._maybe_complete(out)

    def _post(self, holder: Holder, req: http.Request, request_id: str, kind: str, out: list[Output]) -> None:
        inv = self.inv
        if inv is None or request_id != inv.request_id:
            out.append(self._fail(holder, "invalid_request_id"))
            return
        given = req.headers.get("lambda-runtime-invocation-id")
        if (given and given != inv.id) or (not inv.done and self.clock() * 1000 > inv.deadline_ms):
            out.append(self._fail(holder, "gone"))
            return
        if inv.done or self.runtime != "invoked":
            out.append(self._fail(holder, "second_response" if kind == "response" else "second_error"))
            return
        self.runtime = "replied"
        if req.oversized:
            inv.error = lambda_errors.response_too_large_sized(req.oversized)
            out.append(self._fail(holder, "too_large"))
        elif kind == "response":
            inv.payload = req.body
            out.append(self._answer(holder, 202, _ACCEPTED))
        else:
            inv.error = lambda_errors.posted_error(req.body, req.headers.get("lambda-runtime-function-error-type", ""))
            out.append(self._answer(holder, 202, _ACCEPTED))
        self._maybe_complete(out)

    def _init_error(self, holder: Holder, req: http.Request, out: list[Output]) -> None:
        if self.phase not in ("extensions", "runtime") or self.runtime != "starting":
            out.append(self._fail(holder, "late_init_error"))
            return
        self.phase = "over"
        out.append(self._answer(holder, 202, _ACCEPTED))
        error = lambda_errors.posted_error(req.body, req.headers.get("lambda-runtime-function-error-type", ""))
        out.append(InitDone(error))
        out.append(Exit(1))

    def _maybe_init_done(self, out: list[Output]) -> None:
        if self.phase != "runtime" or self.runtime != "ready":
            return
        if all(e.ready and not e.busy for e in self.extensions.values()):
            self.phase = "ready"
            out.append(InitDone(None))

    def _maybe_complete(self, out: list[Output]) -> None:
        inv = self.inv
        if inv is None or inv.done or self.runtime != "ready" or self.phase != "ready":
            return
        if any(e.busy for e in self.extensions.values()):
            return
        inv.done = True
        out.append(Complete(inv.payload, inv.error, (self.timer() - inv.started) * 1000.0))

    # -- the Extensions API ----------------------------------------------------------------------

    def _maybe_start_runtime(self) -> list[Output]:
        if self.phase == "extensions" and not self.unregistered:
            self.phase = "runtime"
            return [StartRuntime()]
        return []

    def _register(self, holder: Holder, req: http.Request, out: list[Output]) -> None:
        name = req.headers.get("lambda-extension-name", "")
        if not name:
            out.append(self._fail(holder, "extension_no_name"))
            return
        if self.phase not in ("extensions", "runtime") or self.runtime != "starting":
            out.append(self._fail(holder, "extension_closed"))
            return
        try:
            events = json.loads(req.body)["events"]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            events = None
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            out.append(self._fail(holder, "extension_bad_request"))
            return
        external = name in self.external
        # An internal extension (in the runtime's process) may subscribe to INVOKE only.
        if any(e not in _EVENTS for e in events) or (not external and "SHUTDOWN" in events):
            out.append(self._fail(holder, "extension_bad_event"))
            return
        if any(e.name == name for e in self.extensions.values()):
            out.append(self._fail(holder, "extension_twice"))
            return
        if len(self.extensions) >= lambda_errors.MAX_EXTENSIONS:
            self.unregistered.discard(name)  # it had its answer: Init goes on without it
            out.append(self._fail(holder, "extension_limit"))
            out.extend(self._maybe_start_runtime())
            return
        ext = _Extension(name, self.make_id(), events, external)
        self.extensions[ext.id] = ext
        self.unregistered.discard(name)
        body = self.register_body
        if "accountId" in req.headers.get("lambda-extension-accept-feature", ""):
            body = body[:-1] + f', "accountId": "{ACCOUNT_ID}"}}'.encode()
        out.append(self._answer(holder, 200, body, [("Lambda-Extension-Identifier", ext.id)]))
        out.extend(self._maybe_start_runtime())

    def _extension(self, holder: Holder, req: http.Request, out: list[Output]) -> _Extension | None:
        ext_id = req.headers.get("lambda-extension-identifier")
        if not ext_id:
            out.append(self._fail(holder, "extension_no_id"))
            return None
        try:
            uuid.UUID(ext_id)
        except ValueError:
            out.append(self._fail(holder, "extension_bad_id"))
            return None
        ext = self.extensions.get(ext_id)
        if ext is None:
            out.append(self._fail(holder, "extension_unknown_id"))
        return ext

    def _give(self, ext: _Extension, body: bytes, out: list[Output]) -> None:
        event = ([("Lambda-Extension-Event-Identifier", self.make_id())], body)
        if ext.held is not None:
            out.append(self._answer(ext.held, 200, event[1], event[0]))
            ext.held = None
        else:
            ext.queued.append(event)

    def _event_next(self, holder: Holder, req: http.Request, out: list[Output]) -> None:
        ext = self._extension(holder, req, out)
        if ext is None:
            return
        if ext.held is not None:
            out.append(self._fail(holder, "extension_state"))
            return
        ext.ready = True
        if ext.queued:
            headers, body = ext.queued.popleft()
            out.append(self._answer(holder, 200, body, headers))
            return
        ext.held = holder
        if self.phase == "shutdown":
            return
        ext.busy = False
        if self.phase == "runtime":
            self._maybe_init_done(out)
        else:
            self._maybe_complete(out)

    def _extension_error(self, holder: Holder, req: http.Request, init: bool, out: list[Output]) -> None:
        ext = self._extension(holder, req, out)
        if ext is None:
            return
        error_type = req.headers.get("lambda-extension-function-error-type", "")
        if init and self.phase not in ("extensions", "runtime"):
            out.append(self._fail(holder, "extension_state"))
            return
        out.append(self._answer(holder, 202, _ACCEPTED))
        if self.phase in ("shutdown", "over"):
            return  # an exit error at shutdown: noted by Lambda, nothing more
        initializing = self.phase in ("extensions", "runtime")
        self.phase = "over"
        if initializing:
            error = (lambda_errors.extension_init_error if init else lambda_errors.extension_exit_error)(
                ext.name, error_type)
            out.append(InitDone(error))
        else:
            out.append(Crash(lambda_errors.EXTENSION_EXIT_ERROR, self._invocation_ms()))
        out.append(Exit(1))


# -- the process: starting the runtime and extensions, and the socket loop ------------------------------


def _spawn(argv: list[str], env: dict[str, str], cwd: str, search: bool) -> int:
    """Fork and exec ``argv`` (looked up on the environment's PATH when ``search``) with fds 0-2 of this
    process only and PR_SET_PDEATHSIG, so that it dies with this process; OSError if exec failed."""
    parent = os.getpid()
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)
            close_all_but([w])
            for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.chdir(cwd)
            if search:
                os.execvpe(argv[0], argv, env)
            else:
                os.execve(argv[0], argv, env)
        except OSError as e:
            os.write(w, str(e.errno or 5).encode())
        except BaseException:  # noqa: BLE001 - whatever failed, the parent must hear that exec did not happen
            os.write(w, b"5")
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        failed = f.read()
    if failed:
        os.waitpid(pid, 0)
        errno = int(failed)
        raise OSError(errno, os.strerror(errno))
    return pid


def _find_bootstrap() -> str | None:
    for path in lambda_errors.BOOTSTRAP_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _extension_files() -> list[str]:
    try:
        entries = sorted(os.scandir(EXTENSIONS_DIR), key=lambda e: e.name)
    except OSError:
        return []
    return [e.name for e in entries if e.is_file()]


def _listen(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def _max_memory_kb() -> int:
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def _exit(code: int) -> NoReturn:
    """Exit with ``code``, or die of signal -``code`` as the runtime did (the keeper reports it so)."""
    if code < 0:
        signum = -code
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, signal.SIG_DFL)  # (SIGKILL's cannot be set)
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
            os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # a signal whose default is not to end the process
    os._exit(code)


class _Conn:
    __slots__ = ("busy", "close_after", "out", "parser", "pending", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = http.Parser()
        self.pending: deque[http.Event] = deque()
        self.busy = False  # a request of it waits for its answer: the next ones wait behind it
        self.out = bytearray()
        self.close_after = False


_read_invoke = reader(Invoke, "request_id", "event", "deadline_ms", "trace_id", "client_context", "identity",
                      "tenant_id", "function_arn")


class _Server:
    def __init__(self, chan: Channel, spec: InstanceSpec, logs: LogCapture, listener: socket.socket,
                 env: dict[str, str], started: float) -> None:
        self.chan, self.spec, self.logs, self.listener, self.env = chan, spec, logs, listener, env
        self.started = started
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self.ids = count(1)
        self.pids: dict[str, int] = {}
        self.tracked = bool(spec.get("track_tmp_access"))
        self.machine: Lifecycle | None = None

    def serve(self) -> None:
        sel = self.sel
        sel.register(self.chan.fileno(), selectors.EVENT_READ, ("sim", 0))
        sel.register(self.listener, selectors.EVENT_READ, ("listen", 0))
        names = _extension_files()
        started: list[str] = []
        failed: tuple[str, str] | None = None
        for name in names:
            try:
                self._start(name, [f"{EXTENSIONS_DIR}/{name}"], "/", search=False)
            except OSError as e:
                failed = (name, str(e))
                break
            started.append(name)
        machine = self.machine = Lifecycle(external=started, handler=self.spec["handler"], env=self.env)
        self.apply(machine.extension_failed(*failed) if failed else machine.start())
        timer = machine.timer
        while True:
            due = machine.next_deadline()
            events = sel.select(None if due is None else max(due - timer(), 0.0))
            for key, mask in events:
                kind, ident = key.data
                if kind == "conn":
                    self._on_conn(ident, mask)
                elif kind == "sim":
                    self._on_simulator()
                elif kind == "listen":
                    self._accept()
                elif kind == "proc":
                    self._on_exit(ident, key.fd)
            if due is not None:
                self.apply(machine.tick())

    # -- processes

    def _start(self, name: str, argv: list[str], cwd: str, search: bool) -> None:
        pid = _spawn(argv, self.env, cwd, search)
        self.pids[name] = pid
        fd = os.pidfd_open(pid)
        self.sel.register(fd, selectors.EVENT_READ, ("proc", name))

    def _start_runtime(self) -> list[Output]:
        assert self.machine is not None
        command = list(self.spec.get("command") or [])
        if command:
            try:
                self._start(RUNTIME, command, self.spec["cwd"], search=True)
            except OSError as e:
                reason = (e.strerror or str(e)).lower()
                return self.machine.runtime_failed(lambda_errors.entrypoint_failed(command[0], reason))
        else:
            bootstrap = _find_bootstrap()
            try:
                if bootstrap is None:
                    raise OSError("no bootstrap")
                self._start(RUNTIME, [bootstrap], self.spec["cwd"], search=False)
            except OSError:
                return self.machine.runtime_failed(lambda_errors.invalid_entrypoint())
        self.machine.runtime_started()
        return []

    def _on_exit(self, name: str, fd: int) -> None:
        assert self.machine is not None
        self.sel.unregister(fd)
        os.close(fd)
        pid = self.pids.pop(name)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self.apply(self.machine.exited(name, code))

    # -- the simulator

    def _on_simulator(self) -> None:
        assert self.machine is not None
        while True:
            try:
                msg = self.chan.recv(0.0)
            except TimeoutError:
                return
            except (ChannelClosed, OSError):
                self._end(0)  # the simulator dropped this instance
            if type(msg) is tuple and len(msg) == 3 and msg[0] == SHUTDOWN:
                shutdown = Shutdown._make(msg)
                self.apply(self.machine.shutdown(shutdown.reason, shutdown.budget_ms))
            else:
                self.apply(self.machine.invoke(*_read_invoke(msg)))

    def _send(self, message: tuple[Any, ...], fds: list[int] | None = None) -> None:
        if self.tracked and message[0] in ("init", "result"):
            message = (*message, ([], {}))  # what this process cannot see: another program's /tmp accesses
        self.chan.send(message, fds)

    # -- connections

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # out of descriptors, say: the client sees its connection fail
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ident = next(self.ids)
            self.conns[ident] = _Conn(sock)
            self.sel.register(sock, selectors.EVENT_READ, ("conn", ident))

    def _on_conn(self, ident: int, mask: int) -> None:
        conn = self.conns.get(ident)
        if conn is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(ident, conn)
            if ident not in self.conns:
                return
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = conn.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(ident)
            return
        conn.pending.extend(conn.parser.feed(data))
        self._dispatch(ident, conn)

    def _dispatch(self, ident: int, conn: _Conn) -> None:
        assert self.machine is not None
        while not conn.busy and conn.pending and ident in self.conns:
            event = conn.pending.popleft()
            if isinstance(event, http.Continue):
                self._write(ident, conn, http.CONTINUE, False)
            elif isinstance(event, http.Malformed):
                body = json.dumps({"errorMessage": event.message, "errorType": "InvalidRequestFormat"}).encode()
                self._write(ident, conn, http.render(event.status, body, keep_alive=False), True)
            else:
                conn.busy = True
                self.apply(self.machine.request(ident, event))

    def _write(self, ident: int, conn: _Conn, data: bytes, close: bool) -> None:
        conn.close_after = conn.close_after or close
        if conn.out:
            conn.out += data
        else:
            try:
                sent = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(ident)
                return
            if sent < len(data):
                conn.out += data[sent:]
                self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, ("conn", ident))
        if not conn.out and conn.close_after:
            self._close(ident)

    def _flush(self, ident: int, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(ident)
            return
        del conn.out[:sent]
        if not conn.out:
            self.sel.modify(conn.sock, selectors.EVENT_READ, ("conn", ident))
            if conn.close_after:
                self._close(ident)

    def _close(self, ident: int) -> None:
        conn = self.conns.pop(ident, None)
        if conn is None:
            return
        self.sel.unregister(conn.sock)
        conn.sock.close()
        if self.machine is not None:
            self.machine.closed(ident)

    # -- what the lifecycle asks

    def apply(self, outputs: list[Output]) -> None:
        assert self.machine is not None
        again: list[int] = []
        for item in outputs:
            if isinstance(item, Reply):
                conn = self.conns.get(item.conn)
                if conn is None:
                    continue
                conn.busy = False
                self._write(item.conn, conn, item.data, item.close)
                again.append(item.conn)
            elif isinstance(item, Complete):
                reply = pack_result(payload=item.payload, error=item.error, duration_ms=item.duration_ms,
                                    max_memory_kb=_max_memory_kb(), coverage=None)
                self._send(as_last(reply) if item.last else reply)
            elif isinstance(item, InitDone):
                self._send(pack_init(error=item.error, init_ms=(time.perf_counter() - self.started) * 1000.0,
                                     max_memory_kb=_max_memory_kb(), coverage=None), fds=[self.logs.fd])
            elif isinstance(item, StartRuntime):
                self.apply(self._start_runtime())
            elif isinstance(item, Signal):
                pid = self.pids.get(item.who)
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, item.signum)
            elif isinstance(item, Crash):
                self._send(pack_fatal(error_type=item.error_type, duration_ms=item.duration_ms,
                                      max_memory_kb=_max_memory_kb()))
            elif isinstance(item, ShutdownOver):
                self._send(pack_shutdown_done(used_ms=item.used_ms, killed=item.killed))
            elif isinstance(item, Exit):
                self._end(item.code)
        for ident in again:
            conn = self.conns.get(ident)
            if conn is not None:
                self._dispatch(ident, conn)

    def _end(self, code: int) -> NoReturn:
        # The simulator's channel first: it sees the end at once, not after a freeze that may come
        # (once it has the last Result) while the rest is killed. See _invoke._ended.
        with contextlib.suppress(OSError):
            self.chan.close()
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _exit(code)


def run(sock: socket.socket, spec: InstanceSpec, enter: Callable[[], None] | None = None,
        logs: LogCapture | None = None) -> None:
    """Serve the Runtime and Extensions API at ``spec["api_address"]`` for the instance's runtime
    (``spec["command"]``, else its ``bootstrap``) and extensions. Never returns."""
    started = time.perf_counter()
    chan = Channel(sock)
    if logs is None:
        logs = LogCapture()
    env = dict(spec["env"])
    if enter is not None:
        try:
            enter()
        except Exception as e:  # noqa: BLE001 - the sandbox failed, not the function: the simulator says so
            chan.send(pack_sandbox_failure(reason=f"{type(e).__name__}: {e}"))
            os._exit(70)
    close_all_but([sock.fileno(), logs.fd])
    logs.attach_stdin()
    os.chdir(spec.get("real_cwd", spec["cwd"]))
    if not spec.get("memory_by_use"):
        memory = (spec["memory_mb"] + spec.get("extra_memory_mb", 0)) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    tasks = spec.get("tasks_rlimit")
    if tasks:
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    address = spec.get("api_address", "127.0.0.1:0")
    try:
        listener = _listen(address)
    except OSError as e:
        chan.send(pack_sandbox_failure(reason=(
            f"the Runtime API could not listen on {address} ({e}): another instance in the same network "
            "namespace holds it (give each instance a network namespace of its own, or use "
            "Simulator(network='host'), which takes a free port)")))
        os._exit(70)
    host, port = listener.getsockname()[:2]
    env["AWS_LAMBDA_RUNTIME_API"] = f"{host}:{port}"
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    _Server(chan, spec, logs, listener, env, started).serve()
    os._exit(70)
