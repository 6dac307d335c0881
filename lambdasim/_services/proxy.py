"""A TCP proxy that injects network faults between instances and a backing service.

One :class:`FaultProxy` forwards every connection it accepts to a *target* (Redis,
Memcached, moto, ...) and can, at any moment and for connections already open, add
latency, freeze all traffic (:meth:`~FaultProxy.pause`) or drop everything with resets
(:meth:`~FaultProxy.cut`). All sockets are non-blocking and served by one selector
thread, so hundreds of idle connections cost no threads and no CPU.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

__all__ = ["FaultProxy", "ProxyStats"]

_CHUNK = 64 * 1024
# Stop reading a side once this much is waiting for the other: the kernel buffers then
# push back on the sender instead of the proxy growing without bound (latency, pause).
_HIGH_WATER = 1024 * 1024
_BACKLOG = 1024
# Accepts per readiness event, so a burst of connects cannot starve open connections.
_ACCEPTS_PER_EVENT = 64
_ACCEPT_BACKOFF = 0.1
_LINGER_RESET = struct.pack("ii", 1, 0)

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of a proxy's counters since :meth:`FaultProxy.start`."""

    accepted: int  # connections accepted, including those reset at once while cut
    refused: int  # of those, the ones reset at once because the proxy was cut
    active: int  # connections open now
    bytes_up: int  # bytes delivered client -> target
    bytes_down: int  # bytes delivered target -> client


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN, so the peer fails at once and no TIME_WAIT is left."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


@dataclass(eq=False)
class _Pipe:
    """One direction of a connection: bytes read from ``src`` wait here until sent to ``dst``."""

    conn: _Conn
    src: socket.socket
    dst: socket.socket
    upward: bool  # client -> target
    # (read time, data); b"" marks the sender's EOF, queued so it keeps its place behind the data.
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    queued: int = 0
    eof_read: bool = False
    eof_sent: bool = False
    blocked: bool = False  # dst's send buffer is full: wait for it to become writable


@dataclass(eq=False)
class _Conn:
    """A client connection and its upstream, which is still connecting until ``connecting`` is false."""

    client: socket.socket
    upstream: socket.socket
    targets: list[tuple[socket.AddressFamily, Any]]  # (family, address) still to try if this connect fails
    connecting: bool = True
    closed: bool = False
    up: _Pipe = field(init=False)
    down: _Pipe = field(init=False)

    def __post_init__(self) -> None:
        self.up = _Pipe(self, self.client, self.upstream, upward=True)
        self.down = _Pipe(self, self.upstream, self.client, upward=False)

    def set_upstream(self, sock: socket.socket) -> None:
        self.upstream = self.up.dst = self.down.src = sock


class FaultProxy:
    """Forward TCP connections to ``target`` and inject faults into them on demand.

    Every fault applies at once, to open connections too: ``set_latency`` delays each
    forwarded chunk; ``pause`` freezes both directions (clients hit their own
    timeouts); ``cut`` resets every connection and resets new ones on accept.
    The control methods are thread-safe and return once the proxy thread has applied them.
    """

    def __init__(self, target: tuple[str, int], listen_host: str = "127.0.0.1", listen_port: int = 0) -> None:
        self._target = target
        self._listen = (listen_host, listen_port)
        self._address: tuple[str, int] | None = None
        self._latency = 0.0
        self._paused = False
        self._cut = False
        self._accepted = self._refused = self._bytes_up = self._bytes_down = 0
        self._conns: set[_Conn] = set()
        self._waiting: set[_Pipe] = set()  # pipes holding data that is not due yet (latency)
        self._accept_again: float | None = None  # when to watch the listener again after EMFILE
        self._lock = threading.Lock()
        self._commands: list[tuple[Callable[[], Any], _Result]] = []
        self._running = False
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Bind, start serving in a background thread and return the bound ``(host, port)``."""
        with self._lock:
            if self._closed or self._thread is not None:
                raise RuntimeError("FaultProxy.start() called twice or after close()")
            family = socket.AF_INET6 if ":" in self._listen[0] else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            try:
                # Lets a restarted proxy take its old port while old connections sit in TIME_WAIT.
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(self._listen)
                listener.listen(_BACKLOG)
                listener.setblocking(False)
                sel = selectors.DefaultSelector()
                wake_r, wake_w = socket.socketpair()
            except BaseException:
                listener.close()
                raise
            wake_r.setblocking(False)
            wake_w.setblocking(False)
            sel.register(listener, _READ)
            sel.register(wake_r, _READ)
            self._listener, self._sel, self._wake_r, self._wake_w = listener, sel, wake_r, wake_w
            host, port = listener.getsockname()[:2]
            self._address = (host, port)
            self._running = True
            self._thread = threading.Thread(target=self._run, name=f"FaultProxy:{port}", daemon=True)
            self._thread.start()
            return self._address

    def close(self) -> None:
        """Reset every connection, close all sockets and join the thread. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._call(self._stop)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` clients should connect to."""
        if self._address is None:
            raise RuntimeError("FaultProxy is not started")
        return self._address

    @property
    def target(self) -> tuple[str, int]:
        """Where connections accepted from now on are forwarded."""
        return self._target

    # -- faults ----------------------------------------------------------------------

    def retarget(self, target: tuple[str, int]) -> None:
        """Send connections accepted from now on to ``target``; open ones keep theirs."""

        def apply() -> None:
            self._target = target

        self._call(apply)

    def set_latency(self, seconds: float) -> None:
        """Delay every chunk, both ways, by ``seconds`` (0 turns it off); order is kept."""
        if seconds < 0:
            raise ValueError(f"latency must be >= 0, not {seconds}")

        def apply() -> None:
            # Queued chunks are timed by when they were read, so a lower latency releases them now.
            self._latency = float(seconds)

        self._call(apply)

    def cut(self) -> None:
        """Reset all connections and reset new ones as soon as they are accepted."""

        def apply() -> None:
            self._cut = True
            for conn in list(self._conns):
                self._drop(conn, reset=True)

        self._call(apply)

    def heal(self) -> None:
        """Undo :meth:`cut`: forward new connections again."""

        def apply() -> None:
            self._cut = False

        self._call(apply)

    def pause(self) -> None:
        """Stop forwarding both ways; connections stay open and new ones are accepted but stall."""

        def apply() -> None:
            self._paused = True
            for conn in self._conns:
                self._update(conn)

        self._call(apply)

    def resume(self) -> None:
        """Forward again, first delivering (in order) what was held during the pause."""

        def apply() -> None:
            self._paused = False
            for conn in list(self._conns):
                for pipe in (conn.up, conn.down):
                    if not conn.closed:
                        self._flush(pipe)
                if not conn.closed:
                    self._update(conn)

        self._call(apply)

    def stats(self) -> ProxyStats:
        """Counters since start: connections accepted and bytes delivered each way."""

        def snapshot() -> ProxyStats:
            return ProxyStats(self._accepted, self._refused, len(self._conns), self._bytes_up, self._bytes_down)

        result: ProxyStats = self._call(snapshot)
        return result

    # -- plumbing between callers and the proxy thread --------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the proxy thread and wait for it, so a fault is in force when we return.

        Before start, after the thread ended, or on the thread itself, ``fn`` runs right here.
        """
        result = _Result()
        with self._lock:
            queued = self._running and threading.current_thread() is not self._thread
            if queued:
                self._commands.append((fn, result))
        if not queued:
            result.run(fn)
            return result.get()
        assert self._wake_w is not None
        with contextlib.suppress(BlockingIOError):  # full means a wake-up is already pending
            self._wake_w.send(b"\0")
        return result.get()

    def _run_commands(self) -> None:
        assert self._wake_r is not None
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        with self._lock:
            commands, self._commands = self._commands, []
        for fn, result in commands:
            result.run(fn)

    def _stop(self) -> None:
        self._stopping = True

    # -- the proxy thread ------------------------------------------------------------

    def _run(self) -> None:
        assert self._sel is not None
        try:
            while not self._stopping:
                for key, events in self._sel.select(self._timeout()):
                    if key.fileobj is self._wake_r:
                        self._run_commands()
                    elif key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._on_event(key.data, cast(socket.socket, key.fileobj), events)
                self._on_timers()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        for conn in list(self._conns):
            self._drop(conn, reset=True)
        with self._lock:
            self._running = False
            commands, self._commands = self._commands, []
        # Callers that queued a command while we were stopping must not wait forever.
        for fn, result in commands:
            result.run(fn)
        assert self._sel is not None
        self._sel.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _timeout(self) -> float | None:
        """Sleep until the earliest delayed chunk or accept retry is due, or indefinitely when none is."""
        due = [] if self._accept_again is None else [self._accept_again]
        if not self._paused and self._waiting:
            due.append(min(pipe.queue[0][0] for pipe in self._waiting) + self._latency)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(_ACCEPTS_PER_EVENT):
            try:
                client, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued; take the next one
            except OSError:
                # Out of descriptors (EMFILE, ENFILE): the listener stays readable, so stop watching it
                # for a moment instead of spinning; queued clients wait in the backlog meanwhile.
                self._unregister(self._listener)
                self._accept_again = time.monotonic() + _ACCEPT_BACKOFF
                return
            self._accepted += 1
            if self._cut:
                self._refused += 1
                _reset(client)
                continue
            self._open(client)

    def _open(self, client: socket.socket) -> None:
        client.setblocking(False)
        # The proxy must not add Nagle delays that the real network path would not have.
        with contextlib.suppress(OSError):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = self._target
        try:
            # Targets are loopback services, so this resolves from /etc/hosts without blocking the loop.
            targets: list[tuple[socket.AddressFamily, Any]] = [
                (info[0], info[4]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            ]
        except OSError:
            self._refuse_client(client)
            return
        upstream = self._connect_next(targets)
        if upstream is None:
            self._refuse_client(client)
            return
        conn = _Conn(client, upstream, targets)
        self._conns.add(conn)
        self._update(conn)

    def _connect_next(self, targets: list[tuple[socket.AddressFamily, Any]]) -> socket.socket | None:
        """Start a non-blocking connect to the next address that does not fail outright."""
        while targets:
            family, addr = targets.pop(0)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(addr)
            if err in (0, errno.EINPROGRESS, errno.EAGAIN):
                return sock
            sock.close()
        return None

    def _refuse_client(self, client: socket.socket) -> None:
        """The target is unreachable: end the client's connection with a FIN, as a dead server would."""
        # Unread bytes would turn close() into an RST; drain them so the client sees a clean EOF.
        with contextlib.suppress(OSError):
            while client.recv(_CHUNK):
                pass
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
        client.close()

    def _on_event(self, conn: _Conn, sock: socket.socket, events: int) -> None:
        if conn.closed:  # dropped earlier in this same batch of events
            return
        if conn.connecting:
            if sock is conn.upstream and events & _WRITE:
                self._finish_connect(conn)
            return
        if events & _READ:
            self._read(conn.up if sock is conn.client else conn.down)
        if events & _WRITE and not conn.closed:
            pipe = conn.down if sock is conn.client else conn.up
            pipe.blocked = False
            self._flush(pipe)
        if not conn.closed:
            self._update(conn)

    def _finish_connect(self, conn: _Conn) -> None:
        err = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            conn.connecting = False
            self._update(conn)
            return
        self._unregister(conn.upstream)
        conn.upstream.close()
        upstream = self._connect_next(conn.targets)
        if upstream is None:
            conn.closed = True
            self._conns.discard(conn)
            self._unregister(conn.client)
            self._refuse_client(conn.client)
            return
        conn.set_upstream(upstream)
        self._update(conn)

    def _read(self, pipe: _Pipe) -> None:
        try:
            data = pipe.src.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pipe.conn, reset=True)  # the peer reset: pass the reset on
            return
        if not data:
            pipe.eof_read = True
        pipe.queue.append((time.monotonic(), data))
        pipe.queued += len(data)
        self._flush(pipe)

    def _flush(self, pipe: _Pipe) -> None:
        """Send every due chunk until the queue is empty, the next one is not due, or dst is full."""
        if self._paused or pipe.blocked:
            return
        now = time.monotonic()
        while pipe.queue:
            read_at, data = pipe.queue[0]
            if read_at + self._latency > now:
                self._waiting.add(pipe)
                return
            if not data:
                pipe.queue.popleft()
                pipe.eof_sent = True
                with contextlib.suppress(OSError):
                    pipe.dst.shutdown(socket.SHUT_WR)
                continue
            try:
                sent = pipe.dst.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(pipe.conn, reset=True)
                return
            pipe.queued -= sent
            if pipe.upward:
                self._bytes_up += sent
            else:
                self._bytes_down += sent
            if sent < len(data):
                pipe.queue[0] = (read_at, data[sent:])
                pipe.blocked = True
                break
            pipe.queue.popleft()
        self._waiting.discard(pipe)
        conn = pipe.conn
        if conn.up.eof_sent and conn.down.eof_sent:
            self._drop(conn, reset=False)  # both sides said goodbye: a clean close

    def _on_timers(self) -> None:
        now = time.monotonic()
        if self._accept_again is not None and self._accept_again <= now:
            assert self._sel is not None and self._listener is not None
            self._accept_again = None
            self._sel.register(self._listener, _READ)
        if self._paused or not self._waiting:
            return
        for pipe in [p for p in self._waiting if p.queue[0][0] + self._latency <= now]:
            if not pipe.conn.closed:
                self._flush(pipe)
                if not pipe.conn.closed:
                    self._update(pipe.conn)

    def _update(self, conn: _Conn) -> None:
        """Register for exactly the events each socket can act on now (none while paused)."""
        if conn.closed:
            return
        if self._paused:
            client_mask = upstream_mask = 0
        elif conn.connecting:
            client_mask, upstream_mask = 0, _WRITE
        else:
            client_mask = self._want_read(conn.up) | (_WRITE if conn.down.blocked else 0)
            upstream_mask = self._want_read(conn.down) | (_WRITE if conn.up.blocked else 0)
        self._register(conn.client, client_mask, conn)
        self._register(conn.upstream, upstream_mask, conn)

    @staticmethod
    def _want_read(pipe: _Pipe) -> int:
        return _READ if not pipe.eof_read and pipe.queued < _HIGH_WATER else 0

    def _register(self, sock: socket.socket, mask: int, conn: _Conn) -> None:
        assert self._sel is not None
        try:
            key = self._sel.get_key(sock)
        except KeyError:
            if mask:
                self._sel.register(sock, mask, conn)
            return
        if not mask:
            self._sel.unregister(sock)
        elif key.events != mask:
            self._sel.modify(sock, mask, conn)

    def _unregister(self, sock: socket.socket) -> None:
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(sock)

    def _drop(self, conn: _Conn, *, reset: bool) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        self._waiting.discard(conn.up)
        self._waiting.discard(conn.down)
        for sock in (conn.client, conn.upstream):
            self._unregister(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()


class _Result:
    """The outcome of a command run on the proxy thread, handed back to the waiting caller."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller, who re-raises it
            self._error = e
        finally:
            self._done.set()

    def get(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
