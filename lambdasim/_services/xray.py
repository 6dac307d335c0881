"""A local X-Ray daemon stand-in: a UDP sink on 127.0.0.1 that keeps the segments functions send.

With active tracing (``TracingConfig: {Mode: Active}``) Lambda samples requests (``Sampled=1`` in
``_X_AMZN_TRACE_ID``) and points ``AWS_XRAY_DAEMON_ADDRESS`` at its X-Ray daemon; the X-Ray SDKs send
each segment there as one UDP datagram: a header line ``{"format": "json", "version": 1}`` then the
segment's JSON. This sink reads them so that a test can see what its function traced
(``Simulator.xray_segments()``); nothing goes to AWS.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from typing import Any

_HEADER = {"format": "json", "version": 1}


def parse_datagram(data: bytes) -> dict[str, Any] | None:
    """The segment of one daemon datagram (header line, then the segment's JSON); None if it is not one."""
    header, _, body = data.partition(b"\n")
    try:
        if json.loads(header) != _HEADER:
            return None
        segment = json.loads(body)
    except ValueError:
        return None
    return segment if isinstance(segment, dict) else None


class XRaySink:
    """Receives X-Ray daemon datagrams on ``127.0.0.1:<port>``. No thread: the kernel queues what functions
    send (a local datagram is queued before ``sendto`` returns), and :meth:`segments` reads the queue, so a
    segment sent before an invocation returned is there when the test asks."""

    BUFFER_BYTES = 8 << 20
    SETTLE_S = 0.05
    WAIT_S = 2.0

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER_BYTES)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setblocking(False)
        self.port: int = self._sock.getsockname()[1]
        self._segments: list[dict[str, Any]] = []
        self.ignored = 0
        self.relayed = False
        """Whether instances reach this sink through the sandbox's relay (see :meth:`segments`)."""
        """Datagrams that were not a daemon's segment (no header line, not JSON)."""
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """``host:port``, as ``AWS_XRAY_DAEMON_ADDRESS`` gives it."""
        return f"127.0.0.1:{self.port}"

    def _drain(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, OSError):
                return
            segment = parse_datagram(data)
            if segment is None:
                self.ignored += 1
            else:
                self._segments.append(segment)

    def segments(self) -> list[dict[str, Any]]:
        """The segments received so far, in arrival order (a copy). Where a relay carries the datagrams
        (:attr:`relayed`: instances in a network namespace of their own) they arrive a moment after the
        function sent them: this waits until none came for :data:`SETTLE_S` (at most :data:`WAIT_S`)."""
        with self._lock:
            self._drain()
            if self.relayed:
                deadline = time.monotonic() + self.WAIT_S
                while time.monotonic() < deadline and select.select([self._sock], [], [], self.SETTLE_S)[0]:
                    self._drain()
            return list(self._segments)

    def clear(self) -> None:
        with self._lock:
            self._drain()
            self._segments.clear()

    def close(self) -> None:
        self._sock.close()


def xray_environment(sink: XRaySink | None) -> dict[str, str]:
    """The X-Ray variables Lambda sets for a function with active tracing, pointing at ``sink`` (None: a
    function without active tracing, which gets none of them)."""
    if sink is None:
        return {}
    return {"AWS_XRAY_DAEMON_ADDRESS": sink.address, "_AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1",
            "_AWS_XRAY_DAEMON_PORT": str(sink.port), "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR"}
