"""The runtime process of a Lambda Managed Instances environment: a supervisor of workers.

On Managed Instances the Python runtime runs one process per concurrent request, as many as
``AWS_LAMBDA_MAX_CONCURRENCY``, each with its own Init, all of them in the one execution
environment (its /tmp, memory and limits). Here the environment's runtime process (the one its
keeper starts, see ``_sandbox._zygote``) forks that many *workers* at once, each the built-in
runtime (``_runtime.run``) on a channel of its own, and relays between them and the simulator,
every message tagged with its worker (``MANAGED_*`` in ``_wire``): the simulator says which worker
runs which invocation, and answers come back as the workers send them, in any order.

A worker that ends (``os._exit``, a signal, the end after an Init error) is reported as
:data:`~lambdasim._wire.MANAGED_EXITED`; the simulator decides whether to start it again
(:data:`~lambdasim._wire.MANAGED_START`). The supervisor is forked before the function's code
runs anywhere and never runs it itself, so a new worker has nothing of the others' state.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from collections.abc import Callable
from typing import Any

from lambdasim import _runtime
from lambdasim import _wire as wire
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._wire import Channel, ChannelClosed, ProtocolError

_FRAME_WAIT_S = 5.0
"""How long a worker may take to finish a frame it has begun; past it, the worker is killed."""


class _Worker:
    __slots__ = ("chan", "index", "open", "pid", "pidfd")

    def __init__(self, index: int, pid: int, chan: Channel) -> None:
        self.index = index
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.chan = chan
        self.open = True  # its channel is watched (until it closes or misbehaves)


def _worker(sock: socket.socket, spec: InstanceSpec) -> None:
    """A worker: the built-in runtime with a log of its own. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _runtime.run(sock, spec, None, _runtime.LogCapture())


class Supervisor:
    """Forks the workers and relays between them and the simulator's channel ``chan``."""

    def __init__(self, chan: Channel, spec: InstanceSpec) -> None:
        self.chan = chan
        self.spec = spec
        self.count = min(int(spec["env"]["AWS_LAMBDA_MAX_CONCURRENCY"]), wire.MANAGED_MAX_WORKERS)
        self.workers: dict[int, _Worker] = {}
        self.poll = select.poll()
        self.poll.register(chan.fileno(), select.POLLIN)
        self.watched: dict[int, tuple[Callable[[_Worker], None], _Worker]] = {}

    def send(self, message: Any, fds: list[int] | None = None) -> None:
        try:
            self.chan.send(message, fds)
        except OSError:
            os._exit(0)  # the simulator is gone: the keeper ends the environment

    def start(self, index: int) -> None:
        if index in self.workers or not 0 <= index < self.count:
            return
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                mine.close()  # the rest (the simulator's channel, the other workers') closes before Init
                _worker(theirs, self.spec)
            finally:
                os._exit(70)
        theirs.close()
        chan = Channel(mine)
        chan.guard(wire.RUNTIME_MAX_FRAME, 1)  # the worker runs the function's code
        worker = self.workers[index] = _Worker(index, pid, chan)
        self.watch(chan.fileno(), self.from_worker, worker)
        self.watch(worker.pidfd, self.reap, worker)

    def watch(self, fd: int, handler: Callable[[_Worker], None], worker: _Worker) -> None:
        self.poll.register(fd, select.POLLIN)
        self.watched[fd] = (handler, worker)

    def unwatch(self, fd: int) -> None:
        if self.watched.pop(fd, None) is not None:
            self.poll.unregister(fd)

    def kill(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(worker.pidfd, signal.SIGKILL)

    def from_worker(self, worker: _Worker, drain: bool = False) -> None:
        """Relay what the worker sent (all of it, once it has exited: ``drain``)."""
        while True:
            try:
                msg = worker.chan.recv(0.0 if drain else _FRAME_WAIT_S, fds=True)
            except (ChannelClosed, OSError):  # it is ending: its pidfd says when
                self.close_channel(worker)
                return
            except TimeoutError:
                if not drain:  # a frame begun and never finished
                    self.kill(worker)
                    self.close_channel(worker)
                return
            except ProtocolError:
                self.kill(worker)
                self.close_channel(worker)
                return
            kind = msg[0] if type(msg) is tuple and msg else None
            if kind == wire.INIT:
                try:
                    fds = worker.chan.take_fds(1)
                except ChannelClosed:
                    self.kill(worker)
                    self.close_channel(worker)
                    return
                self.send((wire.MANAGED_INIT, worker.index, msg), fds)
                os.close(fds[0])
            elif kind in (wire.RESULT, wire.RESULT_LAST, wire.FATAL):
                self.send((wire.MANAGED_RESULT, worker.index, msg))
            else:  # not a runtime's message: the function wrote to the channel, and its worker ends
                self.kill(worker)
                self.close_channel(worker)
                return
            worker.chan.discard_fds()
            if not worker.chan.has_buffered() and not drain:
                return

    def close_channel(self, worker: _Worker) -> None:
        if worker.open:
            worker.open = False
            self.unwatch(worker.chan.fileno())

    def reap(self, worker: _Worker) -> None:
        _, status = os.waitpid(worker.pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if worker.open:
            self.from_worker(worker, drain=True)  # its last answer comes before its end
        self.close_channel(worker)
        self.unwatch(worker.pidfd)
        worker.chan.close()
        os.close(worker.pidfd)
        del self.workers[worker.index]
        self.send((wire.MANAGED_EXITED, worker.index, code))

    def from_simulator(self) -> None:
        try:
            msg = self.chan.recv()
        except (ChannelClosed, OSError):
            os._exit(0)
        if msg[0] == wire.MANAGED_INVOKE:
            worker = self.workers.get(msg[1])
            if worker is not None and worker.open:  # else it has just ended, and the simulator hears so
                with contextlib.suppress(OSError):
                    worker.chan.send(msg[2])
        elif msg[0] == wire.MANAGED_START:
            self.start(msg[1])

    def serve(self) -> None:
        for index in range(self.count):
            self.start(index)
        own = self.chan.fileno()
        while True:
            ready = [(own, select.POLLIN)] if self.chan.has_buffered() else self.poll.poll()
            for fd, _ in ready:
                if fd == own:
                    self.from_simulator()
                    continue
                entry = self.watched.get(fd)
                if entry is not None:
                    handler, worker = entry
                    handler(worker)


def run(sock: socket.socket, spec: InstanceSpec, enter: Callable[[], None] | None = None,
        logs: _runtime.LogCapture | None = None) -> None:
    """Be the environment's runtime process: enter the instance (``enter``, as ``_runtime.run``), then fork
    the workers and serve until the simulator's channel closes. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    chan = Channel(sock)
    if logs is None:
        logs = _runtime.LogCapture()  # the supervisor's own output stays out of the host's
    if enter is not None:
        try:
            enter()
        except Exception as e:  # noqa: BLE001 - the sandbox failed, not the function: the simulator says so
            chan.send(wire.pack_sandbox_failure(reason=f"{type(e).__name__}: {e}"))
            os._exit(70)
    wire.close_all_but([sock.fileno(), logs.fd])
    try:
        Supervisor(chan, spec).serve()
    finally:
        os._exit(70)
