"""Length-prefixed ``marshal`` frames over a Unix stream socket, used between the
simulator, the sandbox helpers and the runtime.

``marshal`` is used rather than ``pickle`` or JSON because it is the fastest codec
for the plain tuples, dicts, strings and bytes that cross here, and it cannot run
code on load. Payloads themselves stay JSON text, as on Lambda.
"""

from __future__ import annotations

import marshal
import select
import socket
import struct
from typing import Any

_HEADER = struct.Struct("<I")
_CHUNK = 1 << 18


class ChannelClosed(EOFError):
    """The peer process closed its end (it exited or was killed)."""


class Channel:
    """One end of a framed, bidirectional channel.

    A message that carries file descriptors says how many in its body; the
    receiver takes that many from :meth:`take_fds`.
    """

    __slots__ = ("_buf", "_fds", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._fds: list[int] = []

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

    def _fill(self, timeout: float | None) -> None:
        if timeout is not None:
            ready, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
            if not ready:
                raise TimeoutError
        data, fds, _flags, _addr = socket.recv_fds(self.sock, _CHUNK, 16)
        if fds:
            self._fds.extend(fds)
        if not data:
            raise ChannelClosed("peer closed the channel")
        self._buf += data

    def recv(self, timeout: float | None = None) -> Any:
        """Return the next message; raise TimeoutError or ChannelClosed."""
        buf = self._buf
        while len(buf) < 4:
            self._fill(timeout)
        (size,) = _HEADER.unpack_from(buf)
        while len(buf) < 4 + size:
            self._fill(timeout)
        message = marshal.loads(buf[4 : 4 + size])
        del buf[: 4 + size]
        return message

    def has_buffered(self) -> bool:
        return len(self._buf) > 0

    def take_fds(self, count: int) -> list[int]:
        taken, self._fds = self._fds[:count], self._fds[count:]
        if len(taken) != count:
            raise ChannelClosed(f"expected {count} file descriptors, got {len(taken)}")
        return taken

    def close(self) -> None:
        self.sock.close()
