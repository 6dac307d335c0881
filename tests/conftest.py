from __future__ import annotations

import os
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdasim import SandboxUnavailable, ServiceError, Simulator

pytest_plugins = ["pytester"]

# CI sets this so that a sandbox that cannot start fails the run instead of skipping.
REQUIRE_SANDBOX = os.environ.get("LAMBDASIM_REQUIRE_SANDBOX") == "1"
REQUIRE_SERVICES = os.environ.get("LAMBDASIM_REQUIRE_SERVICES") == "1"

Code = Callable[..., Path]


@pytest.fixture
def code(tmp_path: Path) -> Code:
    """Write a function's code: ``code("print(1)")`` -> a code dir with app.py."""
    counter = iter(range(1000))

    def make(source: str = "", files: dict[str, str] | None = None, module: str = "app") -> Path:
        root = tmp_path / f"code{next(counter)}"
        root.mkdir()
        if source:
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        for name, text in (files or {}).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return root

    return make


SANDBOXES = ["namespace", "fakefs"]


def simulator_or_skip(cls: type[Simulator] = Simulator, **kwargs: Any) -> Simulator:
    """``cls(**kwargs)``, or a skip where its sandbox or services cannot start here (a failure where
    CI requires them: LAMBDASIM_REQUIRE_SANDBOX, LAMBDASIM_REQUIRE_SERVICES)."""
    try:
        return cls(**kwargs)
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"{kwargs.get('sandbox', 'auto')} sandbox unavailable here: {e}")
    except ServiceError as e:
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"services {kwargs.get('services')!r} are not available here: {e}")


def _simulator(sandbox: str, **kwargs: Any) -> Simulator:
    kwargs.setdefault("sandbox", sandbox)
    return simulator_or_skip(**kwargs)


@pytest.fixture
def sandbox_kind(request: pytest.FixtureRequest) -> str:
    """The sandbox of ``sim`` and ``make_sim``: the namespace sandbox, unless a module runs
    its tests against both (``both_sandboxes``)."""
    kind = getattr(request, "param", "namespace")
    marker = request.node.get_closest_marker("namespace_only")
    if kind != "namespace" and marker is not None:
        pytest.skip(f"a documented difference of the {kind} sandbox: {marker.args[0]}")
    return str(kind)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Modules with ``BOTH_SANDBOXES = True`` run every test that uses sim/make_sim on each sandbox.
    if getattr(metafunc.module, "BOTH_SANDBOXES", False) and "sandbox_kind" in metafunc.fixturenames:
        metafunc.parametrize("sandbox_kind", SANDBOXES, indirect=True)


def namespace_only(reason: str) -> pytest.MarkDecorator:
    """An engine test the fakefs sandbox does not pass, for the reason README's table gives."""
    return pytest.mark.namespace_only(reason)


@pytest.fixture
def sim(sandbox_kind: str) -> Iterator[Simulator]:
    with _simulator(sandbox_kind) as s:
        yield s


@pytest.fixture
def make_sim(sandbox_kind: str) -> Iterator[Callable[..., Simulator]]:
    made: list[Simulator] = []

    def make(**kwargs: object) -> Simulator:
        s = _simulator(sandbox_kind, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


class PingServer:
    """A listener of the test process that answers PING with PONG, on TCP or an abstract Unix socket."""

    def __init__(self, family: int = socket.AF_INET, address: object = ("127.0.0.1", 0)) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)  # type: ignore[arg-type]  # a (host, port) or an abstract name
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(100)
                    conn.sendall(b"PONG")
                except OSError:
                    pass

    def target(self) -> list[object]:
        if isinstance(self.address, tuple):
            return [self.address[0], self.address[1]]
        return ["\0" + self.address[1:].decode() if isinstance(self.address, bytes) else self.address, None]

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()
