"""HTTP/1.x for the Runtime and Extensions API inside an instance, sans I/O: a request parser fed
the bytes a connection receives, and the bytes of a response.

The clients are the function's runtime and extensions: curl, libcurl (awslambdaric, Bref),
Python's ``http.client``, PHP's ``http://`` stream wrapper (HTTP/1.0). So: HTTP/1.1 with
keep-alive and HTTP/1.0 with close, ``Content-Length`` and chunked request bodies, and
``Expect: 100-continue`` answered at once (curl waits a second for it otherwise). A body
over :data:`BODY_LIMIT` is read and thrown away, and the request says how long it was
(the API answers 413). Malformed requests get 400 and the connection is closed.
Standard library only; imported by the zygote before every instance.
"""

from __future__ import annotations

from typing import NamedTuple

BODY_LIMIT = 6 * 1024 * 1024 + 100
"""The largest body the API takes (a 6 MB response; RIE's ``interop.MaxPayloadSize``)."""
HEADER_LIMIT = 64 * 1024
"""The most bytes of request line and headers."""

_REASONS = {100: "Continue", 200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 410: "Gone", 413: "Request Entity Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Request(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    """Names in lower case; a repeated header keeps its last value."""
    body: bytes
    keep_alive: bool
    oversized: int = 0
    """The body's length when it was over :data:`BODY_LIMIT` (``body`` is then empty)."""


class Continue(NamedTuple):
    """The client waits for ``100 Continue`` before it sends the body."""


class Malformed(NamedTuple):
    """Not HTTP the parser takes: answer ``status`` and close the connection."""

    status: int
    message: str


Event = Request | Continue | Malformed


class ParseError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Parser:
    """One connection's requests: :meth:`feed` the bytes received, get the events they complete."""

    __slots__ = ("_body", "_buf", "_chunk_left", "_dead", "_head", "_left", "_mode", "_size", "_trailers")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._dead = False
        self._reset()

    def _reset(self) -> None:
        self._head: tuple[str, str, dict[str, str], bool] | None = None
        self._mode = ""  # "length" or "chunked" while a body is read
        self._left = 0  # length: bytes still to come
        self._chunk_left = -1  # chunked: bytes left of the current chunk; -1: a size line is due
        self._trailers = False
        self._body = bytearray()
        self._size = 0

    def feed(self, data: bytes) -> list[Event]:
        if self._dead:
            return []
        self._buf += data
        events: list[Event] = []
        try:
            while self._step(events):
                pass
        except ParseError as e:
            self._dead = True
            self._buf.clear()
            events.append(Malformed(e.status, str(e)))
        return events

    def _step(self, events: list[Event]) -> bool:
        """Parse what the buffer holds of the next part; False when more bytes are needed."""
        if self._head is None:
            return self._parse_head(events)
        if self._mode == "length":
            return self._read_length(events)
        return self._read_chunked(events)

    def _parse_head(self, events: list[Event]) -> bool:
        buf = self._buf
        while buf[:2] == b"\r\n":  # empty lines before a request are allowed (RFC 9112 2.2)
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > HEADER_LIMIT:
                raise ParseError(431, "request headers over 64 KiB")
            return False
        if end > HEADER_LIMIT:
            raise ParseError(431, "request headers over 64 KiB")
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[1].startswith("/") or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
            raise ParseError(400, f"malformed request line {lines[0][:100]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ParseError(400, f"malformed header line {line[:100]!r}")
            headers[name.lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        path = target.split("?", 1)[0]
        self._head = (method, path, headers, keep_alive)
        encoding = headers.get("transfer-encoding", "").lower()
        if encoding:
            if encoding != "chunked":
                raise ParseError(400, f"unsupported Transfer-Encoding {encoding!r}")
            self._mode = "chunked"
        else:
            length = headers.get("content-length", "0")
            if not length.isdigit():
                raise ParseError(400, f"malformed Content-Length {length[:40]!r}")
            self._mode = "length"
            self._left = int(length)
        if (self._mode == "chunked" or self._left) and headers.get("expect", "").lower() == "100-continue":
            events.append(Continue())
        return True

    def _take(self, data: bytes | bytearray) -> None:
        self._size += len(data)
        if self._size <= BODY_LIMIT:
            self._body += data

    def _read_length(self, events: list[Event]) -> bool:
        buf = self._buf
        if self._left:
            if not buf:
                return False
            n = min(self._left, len(buf))
            self._take(buf[:n])
            del buf[:n]
            self._left -= n
            if self._left:
                return False
        self._finish(events)
        return True

    def _read_chunked(self, events: list[Event]) -> bool:
        buf = self._buf
        if self._trailers:
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > HEADER_LIMIT:
                    raise ParseError(431, "chunked trailers over 64 KiB")
                return False
            del buf[: end + 2]
            if end == 0:
                self._finish(events)
            return True
        if self._chunk_left < 0:
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise ParseError(400, "malformed chunk size line")
                return False
            text = bytes(buf[:end]).split(b";", 1)[0].strip()
            try:
                size = int(text, 16)
            except ValueError:
                raise ParseError(400, f"malformed chunk size {text[:20]!r}") from None
            if size < 0:
                raise ParseError(400, "negative chunk size")
            del buf[: end + 2]
            if size == 0:
                self._trailers = True
            else:
                self._chunk_left = size
            return True
        if self._chunk_left:
            if not buf:
                return False
            n = min(self._chunk_left, len(buf))
            self._take(buf[:n])
            del buf[:n]
            self._chunk_left -= n
            if self._chunk_left:
                return False
        if len(buf) < 2:
            return False
        if buf[:2] != b"\r\n":
            raise ParseError(400, "a chunk not followed by CRLF")
        del buf[:2]
        self._chunk_left = -1
        return True

    def _finish(self, events: list[Event]) -> None:
        assert self._head is not None
        method, path, headers, keep_alive = self._head
        over = self._size > BODY_LIMIT
        events.append(Request(method, path, headers, b"" if over else bytes(self._body), keep_alive,
                              self._size if over else 0))
        self._reset()


def render(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
           keep_alive: bool = True, content_type: str = "application/json") -> bytes:
    """The bytes of one response (sent with one ``send``)."""
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    if headers:
        head.extend(f"{name}: {value}" for name, value in headers)
    head.append(f"Content-Type: {content_type}")
    head.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
