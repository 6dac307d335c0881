"""Length-prefixed ``marshal`` frames over a Unix stream socket, used between the
simulator, the sandbox helpers and the runtime.

``marshal`` is used rather than ``pickle`` or JSON because it is the fastest codec
for the plain tuples, dicts, strings and bytes that cross here, and it cannot run
code on load. Payloads themselves stay JSON text, as on Lambda.

The messages between the simulator and a runtime are laid out once, below: a NamedTuple
per layout names its fields, in order. A sender builds the plain tuple (``marshal`` takes
no NamedTuples) with the ``pack_*`` function beside it, by field name; a receiver reads it
with ``Layout._make(message)``, or ``Layout(*message)`` where the last fields may be left
out, and uses the same names. On the warm path, where making a NamedTuple costs more than
the rest of the exchange's Python code, a receiver takes the fields it names with a
:func:`reader` instead. Every message from the runtime begins with its kind.
"""

from __future__ import annotations

import marshal
import math
import operator
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

_HEADER = struct.Struct("<I")
_CHUNK = 1 << 16
_MAX_FDS = 16
"""Descriptors a trusted peer may send with one message."""


class ChannelClosed(EOFError):
    """The peer process closed its end (it exited or was killed)."""


class ProtocolError(ValueError):
    """A guarded channel's peer sent something that is not a message of the protocol: a frame
    over the size limit, bytes that do not decode, or a message of the wrong layout."""


class Channel:
    """One end of a framed, bidirectional channel.

    A message that carries file descriptors says how many in its body; the
    receiver takes that many from :meth:`take_fds`.

    A channel whose peer runs code it must not trust (a runtime: the handler can write to
    the runtime's socket) is :meth:`guard`-ed: then a frame over the limit, or one that does
    not decode as plain data, raises :class:`ProtocolError`, and descriptors beyond the
    number expected are closed as they arrive.
    """

    __slots__ = ("_buf", "_chunk", "_fds", "_limit", "_max_fds", "_poll", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._chunk = memoryview(bytearray(_CHUNK))
        self._fds: list[int] = []
        self._limit = 0  # 0: the peer is trusted (see guard)
        self._max_fds = _MAX_FDS
        # poll, not select: select cannot watch descriptors numbered 1024 and above.
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: Any, fds: list[int] | None = None) -> None:
        body = marshal.dumps(message)
        data = _HEADER.pack(len(body)) + body
        if fds:
            rights = struct.pack(f"{len(fds)}i", *fds)
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            if sent < len(data):
                self.sock.sendall(data[sent:])
        else:
            self.sock.sendall(data)

    def guard(self, max_frame: int, max_fds: int) -> None:
        """Treat the peer as untrusted from now on: frames of at most ``max_frame`` bytes, and at
        most ``max_fds`` descriptors held (the protocol's count), the rest closed on arrival."""
        self._limit = max_frame
        self._max_fds = max_fds

    def _fill(self, timeout: float | None, fds: bool) -> None:
        if timeout is not None and not self._poll.poll(math.ceil(max(timeout, 0.0) * 1000)):
            raise TimeoutError
        if fds:
            data, received, _flags, _addr = socket.recv_fds(self.sock, _CHUNK, self._max_fds)
            room = self._max_fds - len(self._fds)
            self._fds.extend(received[:max(room, 0)])
            for fd in received[max(room, 0):]:
                os.close(fd)
            if not data:
                raise ChannelClosed("peer closed the channel")
            self._buf += data
            return
        n = self.sock.recv_into(self._chunk)
        if not n:
            raise ChannelClosed("peer closed the channel")
        self._buf += self._chunk[:n]

    def recv(self, timeout: float | None = None, fds: bool = False) -> Any:
        """Return the next message; raise TimeoutError or ChannelClosed.

        ``fds=True`` when the message may carry file descriptors (see :meth:`take_fds`).
        """
        buf = self._buf
        while len(buf) < 4:
            self._fill(timeout, fds)
        (size,) = _HEADER.unpack_from(buf)
        if self._limit and size > self._limit:
            raise ProtocolError(f"a frame of {size} bytes, over the limit of {self._limit}")
        while len(buf) < 4 + size:
            self._fill(timeout, fds)
        if not self._limit:
            message = marshal.loads(buf[4 : 4 + size])
        else:
            body = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            try:
                check_plain_marshal(body)
                message = marshal.loads(body)
            except (ValueError, EOFError, TypeError) as e:
                raise ProtocolError(f"a frame that is not a message ({e})") from None
            return message
        del buf[: 4 + size]
        return message

    def spin(self, seconds: float) -> bool:
        """Poll without sleeping for up to ``seconds``; True once a message is waiting.

        Waking a sleeping process on another CPU costs tens of microseconds; when
        the answer is due within a few, polling for it is cheaper.
        """
        if self._buf:
            return True
        poll = self._poll.poll
        end = time.perf_counter() + seconds
        while True:
            if poll(0):
                return True
            if time.perf_counter() >= end:
                return False

    def has_buffered(self) -> bool:
        return len(self._buf) > 0

    def take_fds(self, count: int) -> list[int]:
        taken, self._fds = self._fds[:count], self._fds[count:]
        if len(taken) != count:
            for fd in taken:
                os.close(fd)
            raise ChannelClosed(f"expected {count} file descriptors, got {len(taken)}")
        return taken

    def discard_fds(self) -> None:
        """Close the descriptors received and not taken."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def close(self) -> None:
        self.discard_fds()
        self.sock.close()


# -- reading frames from an untrusted peer -----------------------------------------------------

_CHECK_BELOW = 2048
"""Frames shorter than this are decoded unchecked: whatever lengths they claim, what marshal
allocates for them before it finds the data short stays under a few MB."""
_FLAG_REF = 0x80
_FIXED = {ord("N"): 0, ord("F"): 0, ord("T"): 0, ord("."): 0, ord("i"): 4, ord("g"): 8, ord("y"): 16,
          ord("r"): 4}
_SIZED = {ord(c) for c in "stuaA"}  # a 4-byte length, then that many bytes
_SHORT = {ord(c) for c in "zZ"}  # a 1-byte length, then that many bytes
_COUNTED = {ord(c) for c in "([<>"}  # a 4-byte count, then that many objects
_INT32 = struct.Struct("<i")
_DICT = -1


def check_plain_marshal(data: bytes) -> None:
    """Raise ValueError unless ``data`` is one marshal object made of plain data (None, bools,
    numbers, strings, bytes, tuples, lists, sets, dicts) whose every length fits in ``data``.

    ``marshal.loads`` allocates a tuple or list of the length a frame claims before it reads
    the items, so five bytes could make it allocate gigabytes; code objects are refused too.
    """
    if len(data) < _CHECK_BELOW:
        return
    end = len(data)
    pos = 0
    claimed = 0  # items all counted containers claim: each takes a byte at least
    stack = [1]  # per open container, the items still to read (_DICT: until its NULL)
    unpack = _INT32.unpack_from
    while stack:
        top = stack[-1]
        if top == 0:  # a container is complete: one item of the one around it
            stack.pop()
            if stack and stack[-1] != _DICT:
                stack[-1] -= 1
            continue
        if pos >= end:
            raise ValueError("marshal data too short")
        code = data[pos] & ~_FLAG_REF
        pos += 1
        if code == 0x30:  # "0": the NULL that ends a dict
            if top != _DICT:
                raise ValueError("a NULL outside a dict")
            stack[-1] = 0
            continue
        if code == 0x7B:  # "{"
            stack.append(_DICT)
            continue
        if code in _COUNTED or code == 0x29:  # ")": a small tuple, with a 1-byte count
            if code == 0x29:
                n = data[pos] if pos < end else -1
                pos += 1
            else:
                n = unpack(data, pos)[0] if pos + 4 <= end else -1
                pos += 4
            claimed += n
            if n < 0 or claimed > end:
                raise ValueError(f"a container of {n} items in a frame of {end} bytes")
            stack.append(n)
            continue
        if code in _FIXED:
            pos += _FIXED[code]
        elif code in _SIZED or code == 0x6C:  # "l": a count of 2-byte digits
            n = unpack(data, pos)[0] if pos + 4 <= end else -1
            pos += 4
            n = abs(n) * 2 if code == 0x6C else n
            if n < 0 or n > end - pos:
                raise ValueError(f"a length of {n} where {end - pos} bytes are left")
            pos += n
        elif code in _SHORT:
            pos += 1 + (data[pos] if pos < end else 0)
        else:
            raise ValueError(f"marshal type {chr(code)!r} is not plain data")
        if pos > end:
            raise ValueError("marshal data too short")
        if top != _DICT:
            stack[-1] -= 1
    if pos != end:
        raise ValueError(f"{end - pos} bytes after the message")


def close_all_but(keep: Sequence[int]) -> None:
    """Close every descriptor above stderr except ``keep``.

    A fork inherits every descriptor, close-on-exec or not. A process made while its
    parent holds another instance's sockets must not keep them open: the simulator
    would then never see that instance's runtime die (no end-of-file).
    """
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    limit = os.sysconf("SC_OPEN_MAX")
    os.closerange(low, limit if limit > 0 else 1 << 20)


def fork_with_channel(child: Callable[[Channel], None], keep: Sequence[int] = ()) -> tuple[int, Channel]:
    """Fork a child that runs ``child`` on its end of a new channel, with only that channel
    and ``keep`` open, and never returns; the parent gets the child's pid and its own end."""
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            close_all_but([theirs.fileno(), *keep])
            child(Channel(theirs))
        finally:
            os._exit(70)
    theirs.close()
    return pid, Channel(mine)


# -- the runtime channel's messages ------------------------------------------------------------


def reader(layout: type[tuple[Any, ...]], *names: str) -> Callable[[tuple[Any, ...]], Any]:
    """A function that returns the fields ``names`` of a message laid out as ``layout``, in
    that order (an ``operator.itemgetter`` at their positions); an unknown name fails here."""
    fields: tuple[str, ...] = layout._fields  # type: ignore[attr-defined]
    return operator.itemgetter(*(fields.index(name) for name in names))


INIT = "init"
RESULT = "result"
RESULT_LAST = "result_last"
"""A :class:`Result` after which the runtime ends (awslambdaric after a refused response, a bootstrap
that exits after its answer): the environment is reset before the next invocation. As its own kind,
so that a freeze that comes before the end cannot make the next invocation meet a closed channel."""
FATAL = "fatal"
SANDBOX_ERROR = "sandbox_error"
SHUTDOWN = "shutdown"
SHUTDOWN_DONE = "shutdown_done"

OUT_OF_MEMORY_AT_INIT: dict[str, Any] = {"oom": True}
"""The ``error`` of an :class:`Init` whose import ran out of memory (the host reports it)."""

RefusedReport = dict[str, int]
"""Addresses (``host:port``, or a name looked up) that a runtime's connections and lookups were refused
under ``network="isolated"``, and how often; see ``_runtime.NetworkWatch``. None when there were none."""
OutsideImports = list[str]
"""Top-level modules the function imported from outside its package, layers and runtime, in order;
see ``_package.ImportWatch``. None when there were none."""
TmpAccessReport = tuple[list[str], dict[str, bool]]
"""/tmp files read (in order) and changed (True: written, False: removed); see ``_runtime.TmpAccess``."""


class Invoke(NamedTuple):
    """simulator -> runtime: run one invocation."""

    request_id: str
    event: bytes
    deadline_ms: int
    trace_id: str
    client_context: dict[str, Any] | None
    identity: dict[str, Any] | None
    tenant_id: str | None
    function_arn: str
    spin: float
    """How long the runtime polls for the next invocation after answering (0: it does not)."""


def pack_invoke(*, request_id: str, event: bytes, deadline_ms: int, trace_id: str,
                client_context: dict[str, Any] | None, identity: dict[str, Any] | None, tenant_id: str | None,
                function_arn: str, spin: float) -> tuple[Any, ...]:
    return (request_id, event, deadline_ms, trace_id, client_context, identity, tenant_id, function_arn, spin)


class Init(NamedTuple):
    """runtime -> simulator, once, after Init; carries the runtime's log memfd."""

    kind: str  # INIT
    error: dict[str, Any] | None
    init_ms: float
    max_memory_kb: int
    coverage: dict[str, Any] | None
    refused: RefusedReport | None
    outside_imports: OutsideImports | None
    tmp_access: TmpAccessReport | None = None
    """Added last, by ``_runtime.TmpAccessChannel``, when the spec asks for ``track_tmp_access``."""


def pack_init(*, error: dict[str, Any] | None, init_ms: float, max_memory_kb: int,
              coverage: dict[str, Any] | None, refused: RefusedReport | None = None,
              outside_imports: OutsideImports | None = None) -> tuple[Any, ...]:
    return (INIT, error, init_ms, max_memory_kb, coverage, refused, outside_imports)


class Result(NamedTuple):
    """runtime -> simulator: the handler returned (``payload``, JSON text or bytes) or raised (``error``)."""

    kind: str  # RESULT
    payload: bytes | None
    error: dict[str, Any] | None
    duration_ms: float
    max_memory_kb: int
    coverage: dict[str, Any] | None
    refused: RefusedReport | None
    outside_imports: OutsideImports | None
    tmp_access: TmpAccessReport | None = None
    """Added last, by ``_runtime.TmpAccessChannel``, when the spec asks for ``track_tmp_access``."""


def pack_result(*, payload: bytes | None, error: dict[str, Any] | None, duration_ms: float, max_memory_kb: int,
                coverage: dict[str, Any] | None, refused: RefusedReport | None = None,
                outside_imports: OutsideImports | None = None) -> tuple[Any, ...]:
    return (RESULT, payload, error, duration_ms, max_memory_kb, coverage, refused, outside_imports)


def as_last(result: tuple[Any, ...]) -> tuple[Any, ...]:
    """A packed :class:`Result` as the runtime's last message (``RESULT_LAST``)."""
    return (RESULT_LAST, *result[1:])


class Fatal(NamedTuple):
    """runtime -> simulator, just before it exits: the invocation killed it (out of memory)."""

    kind: str  # FATAL
    error_type: str
    duration_ms: float
    max_memory_kb: int


def pack_fatal(*, error_type: str, duration_ms: float, max_memory_kb: int) -> tuple[Any, ...]:
    return (FATAL, error_type, duration_ms, max_memory_kb)


class SandboxFailure(NamedTuple):
    """runtime -> simulator, instead of :class:`Init`: the sandbox could not finish the instance."""

    kind: str  # SANDBOX_ERROR
    reason: str


def pack_sandbox_failure(*, reason: str) -> tuple[Any, ...]:
    return (SANDBOX_ERROR, reason)


class Shutdown(NamedTuple):
    """simulator -> the Runtime API runtime (``_rapi``, never the built-in one), thawed: shut the
    environment down as Lambda does (SIGTERM to the runtime, the SHUTDOWN event to extensions,
    within ``budget_ms``), answer :class:`ShutdownDone`, then exit."""

    kind: str  # SHUTDOWN
    reason: str
    """Lambda's ``shutdownReason``: ``spindown``, ``timeout`` or ``failure``."""
    budget_ms: int


def pack_shutdown(*, reason: str, budget_ms: int) -> tuple[Any, ...]:
    return (SHUTDOWN, reason, budget_ms)


class ShutdownDone(NamedTuple):
    """Runtime API runtime -> simulator: the shutdown phase is over (``used_ms`` of its budget);
    ``killed`` names the processes (``runtime``, extension names) that had to be SIGKILLed."""

    kind: str  # SHUTDOWN_DONE
    used_ms: float
    killed: list[str]


def pack_shutdown_done(*, used_ms: float, killed: list[str]) -> tuple[Any, ...]:
    return (SHUTDOWN_DONE, used_ms, killed)


# What the simulator checks of each message from a runtime before it reads a field: a runtime
# runs the function's code, which can write to the channel (its descriptor is the process's).

RUNTIME_MAX_FRAME = 32 << 20
"""The largest frame a runtime may send: a 6 MB response (the runtime reports a larger one as
``Function.ResponseSizeTooLarge`` itself) with room for coverage data and /tmp access reports."""
_MAX_COUNT = 1 << 53  # a count the host may turn into a float
_MAX_REFUSED = 10_000  # distinct refused addresses in one message (a runtime notes each once)


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < _MAX_COUNT


def _is_ms(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < _MAX_COUNT  # NaN fails the comparison


def _is_error(value: Any) -> bool:
    return value is None or (type(value) is dict and type(value.get("errorType")) is str
                             and type(value.get("errorMessage")) is str
                             and all(type(k) is str for k in value)
                             and (value.get("stackTrace") is None or (
                                 type(value["stackTrace"]) is list
                                 and all(type(f) is str for f in value["stackTrace"]))))


def _is_coverage(value: Any) -> bool:
    if value is None:
        return True
    if type(value) is not dict or not set(value) <= {"lines", "arcs"}:
        return False
    lines, arcs = value.get("lines", {}), value.get("arcs", {})
    return (type(lines) is dict and type(arcs) is dict
            and all(type(k) is str and type(v) is list and all(type(n) is int for n in v) for k, v in lines.items())
            and all(type(k) is str and type(v) is list
                    and all(type(a) in (tuple, list) and len(a) == 2 and all(type(n) is int for n in a) for a in v)
                    for k, v in arcs.items()))


def _is_refused(value: Any) -> bool:
    return value is None or (type(value) is dict and len(value) <= _MAX_REFUSED and all(
        type(k) is str and len(k) <= 300 and _is_count(v) for k, v in value.items()))


def _is_outside_imports(value: Any) -> bool:
    return value is None or (type(value) is list and len(value) <= _MAX_REFUSED
                             and all(type(n) is str and len(n) <= 300 for n in value))


def _is_tmp_access(value: Any) -> bool:
    return value is None or (
        type(value) is tuple and len(value) == 2 and type(value[0]) is list and type(value[1]) is dict
        and all(type(p) is str for p in value[0])
        and all(type(p) is str and type(w) is bool for p, w in value[1].items()))


def _result_fields(m: tuple[Any, ...]) -> bool:
    return ((m[1] is None or type(m[1]) is bytes) and _is_error(m[2]) and _is_ms(m[3])
            and _is_count(m[4]) and _is_coverage(m[5]) and _is_refused(m[6]) and _is_outside_imports(m[7]))

_RUNTIME_CHECKS: dict[str, tuple[int, Callable[[tuple[Any, ...]], bool]]] = {
    # kind: (fields without tmp_access, check of the fields after the kind)
    INIT: (7, lambda m: (m[1] == OUT_OF_MEMORY_AT_INIT or _is_error(m[1])) and _is_ms(m[2]) and _is_count(m[3])
           and _is_coverage(m[4]) and _is_refused(m[5]) and _is_outside_imports(m[6])),
    RESULT: (8, _result_fields),
    RESULT_LAST: (8, _result_fields),
    FATAL: (4, lambda m: type(m[1]) is str and _is_ms(m[2]) and _is_count(m[3])),
    SANDBOX_ERROR: (2, lambda m: type(m[1]) is str),
    SHUTDOWN_DONE: (3, lambda m: _is_ms(m[1]) and type(m[2]) is list and len(m[2]) <= 64
                    and all(type(x) is str and len(x) <= 256 for x in m[2])),
}


def check_runtime_message(message: Any, *kinds: str) -> tuple[Any, ...]:
    """``message`` if it is one of ``kinds``, laid out as :class:`Init`, :class:`Result`,
    :class:`Fatal` or :class:`SandboxFailure` say, with fields of their types; else raise
    :class:`ProtocolError`, saying what was wrong."""
    kind = message[0] if type(message) is tuple and message else None
    if kind not in kinds or type(kind) is not str:
        raise ProtocolError(f"a message of kind {str(kind)[:40]!r} where {' or '.join(kinds)} was due")
    size, check = _RUNTIME_CHECKS[kind]
    tracked = kind in (INIT, RESULT, RESULT_LAST) and len(message) == size + 1
    if len(message) != size and not tracked:
        raise ProtocolError(f"a {kind} message of {len(message)} fields, not {size}")
    if not check(message) or (tracked and not _is_tmp_access(message[-1])):
        raise ProtocolError(f"a {kind} message with fields of the wrong types")
    return message  # type: ignore[no-any-return]


# -- the sandboxes' control messages -----------------------------------------------------------
# Between the simulator, a sandbox's helper process (its zygote) and the keeper of each
# instance. Each begins with its kind; those without fields are sent as ``(KIND,)``.

READY = "ready"
"""helper -> simulator: :class:`HelperReady`; keeper -> simulator: :class:`KeeperReady` with a
pidfd of the keeper and, but for freezer ``signals``, a descriptor of the instance's cgroup freeze
file (namespace, see ``_sandbox._freeze``); :class:`FakefsKeeperReady` (fakefs)."""
ERROR = "error"
"""helper or keeper -> simulator, instead of READY: :class:`Refusal`."""
SPAWN = "spawn"
"""simulator -> helper, helper -> keeper (namespace): :class:`Spawn`, with the fds of the
keeper's control channel and of its first runtime's channel."""
SPAWNED = "spawned"
"""helper -> simulator: the keeper is forked."""
REFILL = "refill"
"""simulator -> helper (namespace): a cold start is over; prepare the next keeper."""
START = "start"
"""simulator -> keeper: start a runtime, with the fd of its channel."""
KILL = "kill"
"""simulator -> keeper: SIGKILL the runtime (and thaw the instance if it was frozen)."""
FREEZE = "freeze"
"""simulator -> keeper (namespace): freeze every process of the instance but the keeper."""
THAW = "thaw"
"""simulator -> keeper (namespace): thaw them."""
EXITED = "exited"
"""keeper -> simulator: :class:`Exited`."""
DESTROY = "destroy"
"""simulator -> keeper (fakefs): remove the instance; the keeper answers GONE."""
GONE = "gone"
"""keeper -> simulator (fakefs): the runtime is dead and /tmp removed."""
SPEC = "spec"
"""keeper -> its first runtime (namespace): :class:`Spawn` of kind SPEC, with the fd of the
runtime's channel to the simulator."""
GO = "go"
"""keeper -> its first runtime (namespace): the root is finished and locked; enter it. zygote ->
its network stack's process (namespace, ``network="internet"``): with the fd of the network namespace."""
RESET = "reset"
"""simulator -> helper: the simulator that used the helper is closed and the helper waits for the next one
in the same process (see ``_sandbox._common.shared_helper``): it forgets what that one asked for (the
services' addresses it relays) before it reads another request."""
UNLISTEN = "unlisten"
"""zygote -> its relay (namespace): close every listener of the shared namespace; the relay answers
UNLISTEN once they are closed, so that the addresses can be listened on again."""
LISTEN = "listen"
"""zygote -> its relay (namespace): ``(LISTEN, host, port)`` with the fd of a listener inside the
instances' network namespace, whose connections go to ``host:port`` on the host (see ``_sandbox._network``)."""


class HelperReady(NamedTuple):
    kind: str  # READY
    python_paths: list[str]
    """The host's Python directories the instances see."""
    limits: str
    """How processes and memory are limited: ``cgroup v1``, ``cgroup v2``, ``rlimit+procfs``, ``rlimit``."""


def pack_helper_ready(*, python_paths: list[str], limits: str) -> tuple[Any, ...]:
    return (READY, python_paths, limits)


class KeeperReady(NamedTuple):
    kind: str  # READY
    freezer: str
    """How the instance is frozen: ``cgroup2``, ``freezer`` (v1) or ``signals``."""
    cgroup_version: int
    cgroup_paths: dict[str, str]
    """The instance's groups by controller (see ``_sandbox._cgroup.InstanceCgroup``); {} without."""


def pack_keeper_ready(*, freezer: str, cgroup_version: int, cgroup_paths: dict[str, str]) -> tuple[Any, ...]:
    return (READY, freezer, cgroup_version, cgroup_paths)


class Refusal(NamedTuple):
    kind: str  # ERROR
    reason: str


def pack_refusal(*, reason: str) -> tuple[Any, ...]:
    return (ERROR, reason)


class Spawn(NamedTuple):
    kind: str  # SPAWN or SPEC
    spec: Any
    """The instance's ``lambdasim._sandbox.InstanceSpec``."""


def pack_spawn(*, spec: Any, kind: str = SPAWN) -> tuple[Any, ...]:
    return (kind, spec)


class Exited(NamedTuple):
    kind: str  # EXITED
    code: int
    """The runtime's exit status, or -N when signal N killed it."""


def pack_exited(*, code: int) -> tuple[Any, ...]:
    return (EXITED, code)


class FakefsKeeperReady(NamedTuple):
    kind: str  # READY
    pid: int
    tmp_dir: str
    """The host directory that holds the instance's /tmp."""


def pack_fakefs_keeper_ready(*, pid: int, tmp_dir: str) -> tuple[Any, ...]:
    return (READY, pid, tmp_dir)


# -- Lambda Managed Instances: the supervisor's channel (see ``_managed_rt``) -------------------
# Its environment's runtime process is a supervisor of worker processes, one per concurrent
# request; the simulator talks to it alone, and every message names the worker it is about.

MANAGED_INVOKE = "managed_invoke"
"""simulator -> supervisor: ``(MANAGED_INVOKE, worker, invoke)``, ``invoke`` a packed :class:`Invoke`."""
MANAGED_START = "managed_start"
"""simulator -> supervisor: ``(MANAGED_START, worker)``: start that worker again (a new process, its own Init)."""
MANAGED_INIT = "managed_init"
"""supervisor -> simulator: ``(MANAGED_INIT, worker, init)``, the worker's :class:`Init` with its log memfd."""
MANAGED_RESULT = "managed_result"
"""supervisor -> simulator: ``(MANAGED_RESULT, worker, message)``, the worker's :class:`Result` (``RESULT`` or
``RESULT_LAST``) or :class:`Fatal`."""
MANAGED_EXITED = "managed_exited"
"""supervisor -> simulator: ``(MANAGED_EXITED, worker, code)``: the worker process ended (code as :class:`Exited`)."""
MANAGED_MAX_WORKERS = 1600
"""The most workers an environment has (Lambda's largest ``PerExecutionEnvironmentMaxConcurrency``)."""


def check_managed_message(message: Any) -> tuple[str, int, Any]:
    """``(kind, worker, body)`` of a supervisor's message, checked as :func:`check_runtime_message` checks a
    runtime's (the supervisor shares its environment with the function's code); else :class:`ProtocolError`.
    A :data:`SANDBOX_ERROR` comes as ``(SANDBOX_ERROR, -1, message)``."""
    if type(message) is tuple and message and message[0] == SANDBOX_ERROR:
        return SANDBOX_ERROR, -1, check_runtime_message(message, SANDBOX_ERROR)
    if type(message) is not tuple or len(message) != 3:
        raise ProtocolError("a supervisor message that is not (kind, worker, body)")
    kind, worker, body = message
    if type(worker) is not int or not 0 <= worker < MANAGED_MAX_WORKERS:
        raise ProtocolError(f"a supervisor message for worker {str(worker)[:20]!r}")
    if kind == MANAGED_INIT:
        return kind, worker, check_runtime_message(body, INIT)
    if kind == MANAGED_RESULT:
        return kind, worker, check_runtime_message(body, RESULT, RESULT_LAST, FATAL)
    if kind == MANAGED_EXITED and type(body) is int and -64 <= body <= 255:
        return kind, worker, body
    raise ProtocolError(f"a supervisor message of kind {str(kind)[:40]!r}")


RESTORE = "restore"
"""simulator -> a SnapStart version's snapshot runtime (which held Init's state, see ``_sandbox._restore``):
:class:`Restore`, with the fds of the restored instance's control channel and of its runtime's channel."""


class Restore(NamedTuple):
    kind: str  # RESTORE
    options: dict[str, Any]
    """``tmp_mb`` (the restored /tmp's size), ``tasks_rlimit`` (RLIMIT_NPROC of its processes, 0: none),
    ``tmp_dir`` (fakefs: the host directory for its /tmp)."""


def pack_restore(*, options: dict[str, Any]) -> tuple[Any, ...]:
    return (RESTORE, options)
