"""Readiness checks and resets that speak each service's own protocol (no client libraries)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from lambdasim._services import Endpoint

_PROBES: dict[str, tuple[bytes, bytes]] = {
    "redis": (b"*1\r\n$4\r\nPING\r\n", b"+PONG"),
    "memcached": (b"version\r\n", b"VERSION"),
    "aws": (b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n", b"HTTP/1."),
}
_FLUSH: dict[str, tuple[bytes, bytes]] = {
    "redis": (b"*1\r\n$8\r\nFLUSHALL\r\n", b"+OK"),
    "memcached": (b"flush_all\r\n", b"OK"),
    "aws": (b"POST /moto-api/reset HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.0 200"),
}


def _exchange(endpoint: Endpoint, request: bytes, expect: bytes, timeout: float) -> bool:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            sock.sendall(request)
            data = b""
            while len(data) < len(expect):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(expect) or (expect == b"HTTP/1.0 200" and data.startswith(b"HTTP/1.1 200"))
    except OSError:
        return False


def answers(kind: str, endpoint: Endpoint, timeout: float = 1.0) -> bool:
    """True when a server of ``kind`` answers its protocol's ping at ``endpoint``."""
    request, expect = _PROBES[kind]
    return _exchange(endpoint, request, expect, timeout)


def wait_until_ready(kind: str, endpoint: Endpoint, deadline_s: float, alive: Callable[[], bool]) -> bool:
    """Poll the server's own protocol until it answers, it dies, or the deadline passes."""
    end = time.monotonic() + deadline_s
    delay = 0.005
    while time.monotonic() < end:
        if answers(kind, endpoint, timeout=min(1.0, max(end - time.monotonic(), 0.05))):
            return True
        if not alive():
            return False
        # Back off a little between connection attempts; this polls readiness, it does
        # not guess a start-up time.
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return False


def flush(kind: str, endpoint: Endpoint, timeout: float = 10.0) -> bool:
    """Empty the server: FLUSHALL, flush_all, or moto's reset."""
    request, expect = _FLUSH[kind]
    return _exchange(endpoint, request, expect, timeout)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
