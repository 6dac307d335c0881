"""FaultProxy forwards TCP faithfully and injects latency, pauses and cuts on demand."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lambdasim._services.proxy import FaultProxy

try:
    import fakeredis
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - optional client libraries
    HAVE_REDIS = False
else:
    HAVE_REDIS = True

needs_redis = pytest.mark.skipif(not HAVE_REDIS, reason="fakeredis and redis are not installed")

Handler = Callable[[socket.socket], None]


class TcpServer:
    """A tiny threaded TCP server on 127.0.0.1 that runs ``handler`` per connection and cleans up fully."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, name="test-server", daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # the listener was shut down by close()
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="test-server-conn", daemon=True)
            with self.lock:
                self.conns.append(conn)
                self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        """Stop accepting, end every connection and join all threads; safe to call twice."""
        # shutdown(), unlike close(), wakes a thread blocked in accept() or recv().
        for sock in [self.listener, *self.conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(5)
        for thread in self.threads:
            thread.join(5)
        self.listener.close()


def echo(conn: socket.socket) -> None:
    """Echo until EOF, then half-close back, so the client still reads everything after its SHUT_WR."""
    while data := conn.recv(65536):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


@pytest.fixture
def echo_server() -> Iterator[TcpServer]:
    server = TcpServer(echo)
    yield server
    server.close()


@pytest.fixture
def proxy(echo_server: TcpServer) -> Iterator[FaultProxy]:
    with FaultProxy(echo_server.address) as p:
        yield p


def connect(proxy: FaultProxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=timeout)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def recv_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    return recv_exactly(sock, len(payload))


def unused_port() -> int:
    """A port nothing listens on (bound, never listened, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- plain forwarding ----------------------------------------------------------------


def test_start_returns_bound_address_and_forwards(echo_server: TcpServer) -> None:
    proxy = FaultProxy(echo_server.address)
    try:
        host, port = proxy.start()
        assert host == "127.0.0.1" and port > 0 and proxy.address == (host, port)
        with connect(proxy) as c:
            assert roundtrip(c, b"hello") == b"hello"
            assert roundtrip(c, b"again") == b"again"
        stats = proxy.stats()
        assert stats.accepted == 1 and stats.refused == 0
        assert stats.bytes_up == 10 and stats.bytes_down == 10
        with pytest.raises(RuntimeError):
            proxy.start()
    finally:
        proxy.close()
    proxy.close()  # a second close is a no-op


def test_bulk_transfer_with_backpressure(proxy: FaultProxy) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    with connect(proxy) as c:
        # Send from another thread: the echo comes back while we are still sending, through full buffers.
        def send() -> None:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        received = recv_all(c)
        sender.join()
    assert received == payload
    stats = proxy.stats()
    assert stats.bytes_up == stats.bytes_down == len(payload)


def test_200_concurrent_connections(proxy: FaultProxy) -> None:
    socks = [connect(proxy) for _ in range(200)]
    try:
        payloads = [f"conn-{i}:".encode() * 500 for i in range(len(socks))]
        for sock, payload in zip(socks, payloads, strict=True):
            sock.sendall(payload)
        for sock, payload in zip(socks, payloads, strict=True):
            assert recv_exactly(sock, len(payload)) == payload
        assert proxy.stats().active == 200
    finally:
        for sock in socks:
            sock.close()
    assert proxy.stats().accepted == 200


def test_half_close_from_client_is_propagated(proxy: FaultProxy) -> None:
    with connect(proxy) as c:
        c.sendall(b"last words")
        c.shutdown(socket.SHUT_WR)
        # The echo server only answers and closes once it sees our EOF through the proxy.
        assert recv_all(c) == b"last words"
        # Both directions ended cleanly, so the proxy let go of the connection without a reset.
        deadline = time.monotonic() + 5
        while proxy.stats().active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.stats().active == 0


def test_half_close_from_target_is_propagated() -> None:
    got = bytearray()

    def greet_then_listen(conn: socket.socket) -> None:
        conn.sendall(b"bye")
        conn.shutdown(socket.SHUT_WR)  # done talking, still listening
        while data := conn.recv(65536):
            got.extend(data)

    server = TcpServer(greet_then_listen)
    try:
        with FaultProxy(server.address) as proxy, connect(proxy) as c:
            assert recv_all(c) == b"bye"  # EOF reached the client...
            c.sendall(b"still here")  # ...which can still send the other way
            c.shutdown(socket.SHUT_WR)
            assert c.recv(1) == b""
            deadline = time.monotonic() + 5
            while bytes(got) != b"still here" and time.monotonic() < deadline:
                time.sleep(0.01)
            assert bytes(got) == b"still here"
    finally:
        server.close()


def test_target_down_closes_client_then_retarget(echo_server: TcpServer) -> None:
    with FaultProxy(("127.0.0.1", unused_port())) as proxy:
        with connect(proxy) as c:
            assert c.recv(1) == b""  # a clean EOF, like a server that went away
        proxy.retarget(echo_server.address)
        assert proxy.target == echo_server.address
        with connect(proxy) as c:
            assert roundtrip(c, b"found it") == b"found it"


def test_hostname_target_tries_every_address(echo_server: TcpServer) -> None:
    # "localhost" may resolve to ::1 first, where the echo server does not listen.
    with FaultProxy(("localhost", echo_server.address[1])) as proxy, connect(proxy) as c:
        assert roundtrip(c, b"x") == b"x"


# -- latency -------------------------------------------------------------------------


def test_latency_applies_to_open_connections_and_keeps_order(proxy: FaultProxy) -> None:
    with connect(proxy) as c:
        assert roundtrip(c, b"warm") == b"warm"
        proxy.set_latency(0.15)
        start = time.monotonic()
        for i in range(5):
            c.sendall(b"%d," % i)
            time.sleep(0.01)
        assert recv_exactly(c, 10) == b"0,1,2,3,4,"
        assert time.monotonic() - start >= 0.3  # delayed going up and again coming back
        proxy.set_latency(0)
        start = time.monotonic()
        assert roundtrip(c, b"fast") == b"fast"
        assert time.monotonic() - start < 0.1


def test_lowering_latency_releases_queued_data(proxy: FaultProxy) -> None:
    with connect(proxy) as c:
        proxy.set_latency(30)
        c.sendall(b"stuck")
        c.settimeout(0.1)
        with pytest.raises(TimeoutError):
            c.recv(5)
        proxy.set_latency(0)
        c.settimeout(2)
        assert recv_exactly(c, 5) == b"stuck"


def test_negative_latency_is_rejected(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="latency"):
        proxy.set_latency(-1)


# -- pause ---------------------------------------------------------------------------


def test_pause_holds_traffic_then_resume_delivers_in_order(proxy: FaultProxy) -> None:
    with connect(proxy, timeout=0.2) as old:
        assert roundtrip(old, b"before") == b"before"
        proxy.pause()
        old.sendall(b"one,")
        old.sendall(b"two")
        with pytest.raises(TimeoutError):
            old.recv(1)
        with connect(proxy, timeout=0.2) as new:  # still accepted, but nothing flows
            new.sendall(b"new")
            with pytest.raises(TimeoutError):
                new.recv(1)
            proxy.resume()
            new.settimeout(2)
            assert recv_exactly(new, 3) == b"new"
        old.settimeout(2)
        assert recv_exactly(old, 7) == b"one,two"
        assert roundtrip(old, b"after") == b"after"


# -- cut -----------------------------------------------------------------------------


def test_cut_resets_open_connections_and_refuses_new_ones_until_heal(proxy: FaultProxy) -> None:
    with connect(proxy) as c:
        assert roundtrip(c, b"ok") == b"ok"
        start = time.monotonic()
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            c.recv(1)
        assert time.monotonic() - start < 1

    def connect_and_read() -> bytes:
        # The kernel completes the handshake before the proxy accepts and resets, so the reset
        # shows up either in connect() (when it lands first) or in the first read.
        with connect(proxy) as c:
            return c.recv(1)

    with pytest.raises((ConnectionResetError, ConnectionRefusedError)):
        connect_and_read()
    assert proxy.stats().refused == 1
    proxy.heal()
    with connect(proxy) as c:
        assert roundtrip(c, b"back") == b"back"


# -- cleanup -------------------------------------------------------------------------


def _socket_fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                fds.add(fd)
        except OSError:
            pass
    return fds


def test_close_leaves_no_threads_or_sockets(echo_server: TcpServer) -> None:
    threads_before = set(threading.enumerate())
    fds_before = _socket_fds()
    proxy = FaultProxy(echo_server.address)
    _, port = proxy.start()
    socks = [connect(proxy) for _ in range(10)]
    for sock in socks:
        assert roundtrip(sock, b"x") == b"x"
    proxy.set_latency(5)
    socks[0].sendall(b"in flight")  # held in the proxy when it closes
    proxy.close()
    proxy.close()
    for sock in socks:
        sock.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("FaultProxy")]
    # Stop the echo server too (joining its handlers), so every socket and thread can be accounted for.
    echo_server.close()
    assert set(threading.enumerate()) <= threads_before
    assert _socket_fds() <= fds_before
    # The listening port is free again, even for a bind without SO_REUSEADDR.
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_close_before_start_and_context_manager(echo_server: TcpServer) -> None:
    FaultProxy(echo_server.address).close()
    with FaultProxy(echo_server.address) as proxy, connect(proxy) as c:
        assert roundtrip(c, b"cm") == b"cm"
    with pytest.raises(RuntimeError):
        proxy.start()


# -- real clients: redis-py against fakeredis ---------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[tuple[str, int]]:
    if not HAVE_REDIS:
        pytest.skip("fakeredis and redis are not installed")
    server = fakeredis.TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield (str(host), int(port))
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def redis_proxy(redis_server: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(redis_server) as p:
        yield p


def redis_client(proxy: FaultProxy, socket_timeout: float = 2.0) -> redis.Redis:
    # No retries: each fault must surface as the client's own exception, at once.
    host, port = proxy.address
    return redis.Redis(
        host=host, port=port, socket_timeout=socket_timeout, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


@needs_redis
def test_redis_set_get_and_latency(redis_proxy: FaultProxy) -> None:
    with redis_client(redis_proxy) as r:
        assert r.set("k", "v")
        assert r.get("k") == b"v"
        redis_proxy.set_latency(0.2)
        start = time.monotonic()
        assert r.get("k") == b"v"
        assert time.monotonic() - start >= 0.2
        redis_proxy.set_latency(0)


@needs_redis
def test_redis_pause_times_out_then_resume_works(redis_proxy: FaultProxy) -> None:
    with redis_client(redis_proxy, socket_timeout=0.5) as r:
        assert r.set("p", "1")
        redis_proxy.pause()
        start = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            r.get("p")
        assert time.monotonic() - start >= 0.5
        with redis_client(redis_proxy, socket_timeout=0.3) as fresh, pytest.raises(redis.exceptions.TimeoutError):
            fresh.ping()  # new connections are accepted during a pause, but stall too
        redis_proxy.resume()
        assert r.get("p") == b"1"


@needs_redis
def test_redis_cut_raises_connection_error_then_heal_works(redis_proxy: FaultProxy) -> None:
    with redis_client(redis_proxy) as r:
        assert r.set("c", "1")
        redis_proxy.cut()
        with pytest.raises(redis.exceptions.ConnectionError):
            r.get("c")
        with redis_client(redis_proxy) as fresh, pytest.raises(redis.exceptions.ConnectionError):
            fresh.ping()
        redis_proxy.heal()
    with redis_client(redis_proxy) as r:
        assert r.get("c") == b"1"
