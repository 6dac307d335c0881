"""A threaded HTTP/1.1 server whose requests and responses are plain values.

``http.server`` parses (and answers a malformed request line or header block with 400 itself); this
module adds what a local Lambda endpoint needs on top: requests as :class:`Request` values for an app
(``Callable[[Request], Response]``), bodies read whole (``Content-Length`` or chunked) up to a limit, a
body beyond it answered without being read (the connection is closed after), a client that goes away
mid-request or mid-response ignored, and a stop that returns at once: the accept loop waits on a wake-up
pipe as well as the socket, so no poll interval delays ``close()`` (a Simulator per test stops one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import logging
import os
import selectors
import socket
import socketserver
import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("lambdasim.serve")

MAX_BODY_BYTES = 10 * 1024 * 1024
"""The largest body read: API Gateway's payload limit (10 MB); Lambda's Invoke API refuses over 6 MB itself."""


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request, read whole."""

    method: str
    target: str
    """The request target as sent (path and query string)."""
    headers: tuple[tuple[str, str], ...]
    """The headers in order, names as sent (repeated ones repeated)."""
    body: bytes
    client: str
    """The client's address."""
    too_large: bool = False
    """The body was over :data:`MAX_BODY_BYTES` and was not read (``body`` is empty)."""
    port: int = 0
    """The local port it came in on (each function URL has a listener of its own)."""

    @property
    def path(self) -> str:
        """The path, still percent-encoded."""
        return urlsplit(self.target).path or "/"

    @property
    def query_string(self) -> str:
        return urlsplit(self.target).query

    def query(self) -> list[tuple[str, str]]:
        """The query string's parameters in order (blank values kept)."""
        return parse_qsl(self.query_string, keep_blank_values=True)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The last value of the header ``name`` (any case)."""
        lowered = name.lower()
        found = [v for k, v in self.headers if k.lower() == lowered]
        return found[-1] if found else default


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


App = Callable[[Request], Response]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    # Small answers in one segment, sent at once: with Nagle's algorithm a response written in two parts waited
    # for the client's delayed ACK of the first (40 ms per request on Linux).
    disable_nagle_algorithm = True
    # A request line that is not HTTP/1.x gets a status line too (http.server answers "HTTP/0.9" with a bare
    # page), and http.server's own refusals are JSON, as API Gateway's and Lambda's are.
    default_request_version = "HTTP/1.0"
    error_message_format = '{"message": "%(message)s"}'
    error_content_type = "application/json"
    server_version = "lambdasim"
    server: _Listener

    def do_request(self) -> None:
        close = False
        try:
            body, too_large = self._read_body()
        except (OSError, ValueError):  # the client went away mid-body, or sent a broken chunk
            self.close_connection = True
            return
        if too_large:
            close = True  # the unread body would be taken for the next request
        request = Request(self.command, self.path, tuple(self.headers.items()), body,
                          str(self.client_address[0]), too_large,
                          self.server.server_address[1])
        try:
            response = self.server.app(request)
        except Exception:
            log.exception("lambdasim serve: %s %s failed", self.command, self.path)
            response = Response(500, (("Content-Type", "application/json"),),
                                b'{"message": "lambdasim: the request failed in the server; see its log"}')
        try:
            self.send_response(response.status)
            names = {k.lower() for k, _ in response.headers}
            for key, value in response.headers:
                self.send_header(key, value)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(response.body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            # end_headers(), with the body in the same write as the headers
            buffered: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]
            buffered.append(b"\r\n")
            if self.command != "HEAD":
                buffered.append(response.body)
            self.flush_headers()
        except OSError:  # the client disconnected while the function ran: nobody to answer
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_request

    def _read_body(self) -> tuple[bytes, bool]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY_BYTES:
            return b"", True
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise ConnectionResetError("the client closed the connection mid-body")
        return body, False

    def _read_chunked(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionResetError("the client closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts), False
            total += size
            if total > MAX_BODY_BYTES:
                return b"", True
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionResetError("the client closed the connection mid-body")
            parts.append(chunk)
            self.rfile.readline(3)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The message goes into error_message_format's JSON string (HTML-escaped, but quotes kept).
        safe = None if message is None else message.replace("\\", "/").replace('"', "'")
        super().send_error(code, safe, explain)

    def version_string(self) -> str:
        return self.server_version  # without Python's version after it

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Listener(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up (socket.getfqdn): milliseconds, for nothing here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket],
                        client_address: object) -> None:
        if isinstance(request, socket.socket):
            with self.connections_lock:
                self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self.connections_lock:
                self.connections.discard(request)
        super().shutdown_request(request)


class HttpServer:
    """``app`` served on ``host:port`` (0: a free port) from a thread of its own, until :meth:`close`."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, name: str = "lambdasim-serve") -> None:
        self._listener = _Listener((host, port), app)
        self._wake_r, self._wake_w = os.pipe()
        os.set_inheritable(self._wake_r, False)
        os.set_inheritable(self._wake_w, False)
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._listener.server_address[0])

    @property
    def port(self) -> int:
        return int(self._listener.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener.fileno(), selectors.EVENT_READ, "accept")
            sel.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stopping:
                for key, _ in sel.select():
                    if key.data == "wake":
                        return
                    self._listener.handle_request()  # readable: accepts at once

    def close(self) -> None:
        """Stop accepting, end the open connections, and free the port; at once (requests whose function is
        still running finish on their own threads, their answers going nowhere). Safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        with self._listener.connections_lock:
            open_connections = list(self._listener.connections)
        for conn in open_connections:  # idle keep-alive connections: their threads wait in a read
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._listener.server_close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
