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


class ChannelClosed(EOFError):
    """The peer process closed its end (it exited or was killed)."""


class Channel:
    """One end of a framed, bidirectional channel.

    A message that carries file descriptors says how many in its body; the
    receiver takes that many from :meth:`take_fds`.
    """

    __slots__ = ("_buf", "_chunk", "_fds", "_poll", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._chunk = memoryview(bytearray(_CHUNK))
        self._fds: list[int] = []
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

    def _fill(self, timeout: float | None, fds: bool) -> None:
        if timeout is not None and not self._poll.poll(math.ceil(max(timeout, 0.0) * 1000)):
            raise TimeoutError
        if fds:
            data, received, _flags, _addr = socket.recv_fds(self.sock, _CHUNK, 16)
            self._fds.extend(received)
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
        while len(buf) < 4 + size:
            self._fill(timeout, fds)
        message = marshal.loads(buf[4 : 4 + size])
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
            raise ChannelClosed(f"expected {count} file descriptors, got {len(taken)}")
        return taken

    def close(self) -> None:
        self.sock.close()


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


# -- the runtime channel's messages ------------------------------------------------------------


def reader(layout: type[tuple[Any, ...]], *names: str) -> Callable[[tuple[Any, ...]], Any]:
    """A function that returns the fields ``names`` of a message laid out as ``layout``, in
    that order (an ``operator.itemgetter`` at their positions); an unknown name fails here."""
    fields: tuple[str, ...] = layout._fields  # type: ignore[attr-defined]
    return operator.itemgetter(*(fields.index(name) for name in names))


INIT = "init"
RESULT = "result"
FATAL = "fatal"
SANDBOX_ERROR = "sandbox_error"

OUT_OF_MEMORY_AT_INIT: dict[str, Any] = {"oom": True}
"""The ``error`` of an :class:`Init` whose import ran out of memory (the host reports it)."""

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
    tmp_access: TmpAccessReport | None = None
    """Added last, by ``_runtime.TmpAccessChannel``, when the spec asks for ``track_tmp_access``."""


def pack_init(*, error: dict[str, Any] | None, init_ms: float, max_memory_kb: int,
              coverage: dict[str, Any] | None) -> tuple[Any, ...]:
    return (INIT, error, init_ms, max_memory_kb, coverage)


class Result(NamedTuple):
    """runtime -> simulator: the handler returned (``payload``, JSON text or bytes) or raised (``error``)."""

    kind: str  # RESULT
    payload: bytes | None
    error: dict[str, Any] | None
    duration_ms: float
    max_memory_kb: int
    coverage: dict[str, Any] | None
    tmp_access: TmpAccessReport | None = None
    """Added last, by ``_runtime.TmpAccessChannel``, when the spec asks for ``track_tmp_access``."""


def pack_result(*, payload: bytes | None, error: dict[str, Any] | None, duration_ms: float, max_memory_kb: int,
                coverage: dict[str, Any] | None) -> tuple[Any, ...]:
    return (RESULT, payload, error, duration_ms, max_memory_kb, coverage)


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


# -- the sandboxes' control messages -----------------------------------------------------------
# Between the simulator, a sandbox's helper process (its zygote) and the keeper of each
# instance. Each begins with its kind; those without fields are sent as ``(KIND,)``.

READY = "ready"
"""helper -> simulator: :class:`HelperReady`; keeper -> simulator: ``(READY, freezer kind)`` with a
pidfd of the keeper and, but for kind ``signals``, a descriptor of the instance's cgroup freeze file
(namespace, see ``_sandbox._freeze``); :class:`FakefsKeeperReady` (fakefs)."""
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
"""keeper -> its first runtime (namespace): the root is finished and locked; enter it."""


class HelperReady(NamedTuple):
    kind: str  # READY
    python_paths: list[str]
    """The host's Python directories the instances see."""


def pack_helper_ready(*, python_paths: list[str]) -> tuple[Any, ...]:
    return (READY, python_paths)


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
