"""``Simulator.serve()``: Lambda's Invoke API and the template's HTTP routes of every function on one port,
each function URL on a port of its own, and the counters the live view shows.

One port for both, because the Invoke API's paths (``/2015-03-31/functions/...``) cannot be an API's
routes in practice, so ``boto3.client("lambda", endpoint_url=url)`` and ``requests.get(url + "/orders")``
take the same address. The routes follow the simulator's functions: a function deployed (or redeployed)
while the server runs is served from its next request on, and its function URL gets its listener when
``function_urls`` is next read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from lambdasim._serve._http import App, HttpServer, Request, Response
from lambdasim._serve._routes import Routes, function_url_apps

if TYPE_CHECKING:
    from lambdasim._simulator import Simulator

Listener = Callable[[Request, Response, float], None]
"""Called after each answer with the request, the response and the seconds it took."""


@dataclasses.dataclass
class Counters:
    """What the server has answered, for the live view and the benchmark (guarded by ``lock``)."""

    requests: int = 0
    by_status: dict[int, int] = dataclasses.field(default_factory=dict)
    errors: deque[str] = dataclasses.field(default_factory=lambda: deque(maxlen=5))
    """The last error answers: ``HH:MM:SS status method path``."""
    listeners: list[Listener] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def count(self, request: Request, response: Response, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.by_status[response.status] = self.by_status.get(response.status, 0) + 1
            if response.status >= 400 or any(k.lower() == "x-amz-function-error" for k, _ in response.headers):
                self.errors.append(f"{time.strftime('%H:%M:%S')} {response.status} {request.method} {request.path}")
            listeners = list(self.listeners)
        for listener in listeners:
            with contextlib.suppress(Exception):  # a broken view must not fail the request
                listener(request, response, seconds)


def _counted(app: App, counters: Counters) -> App:
    def counted(request: Request) -> Response:
        start = time.perf_counter()
        response = app(request)
        counters.count(request, response, time.perf_counter() - start)
        return response

    return counted


class _Endpoints:
    """The listeners of one ``serve()``: the main port, and a port per function URL."""

    def __init__(self, sim: Simulator, host: str, port: int) -> None:
        self.sim = sim
        self.host = host
        self.counters = Counters()
        self._lock = threading.Lock()
        self.routes = Routes.from_simulator(sim)  # which follows the simulator's functions itself
        self._url_servers: dict[str, HttpServer] = {}
        self.main = HttpServer(_counted(self._app, self.counters), host, port, name="lambdasim-serve")

    def _app(self, request: Request) -> Response:
        from lambdasim._serve import _invoke_api

        if _invoke_api.is_invoke_api(request.path):
            return _invoke_api.handle(self.sim, request)
        return self.routes.handle(request)

    def function_urls(self) -> dict[str, str]:
        """The function URLs, a listener started for each function that has none yet."""
        apps = function_url_apps(self.sim)
        with self._lock:
            for name, app in apps.items():
                if name not in self._url_servers:
                    self._url_servers[name] = HttpServer(_counted(app, self.counters), self.host, 0,
                                                         name=f"lambdasim-url-{name}")
            return {name: server.url for name, server in self._url_servers.items()}

    def close(self) -> None:
        self.main.close()
        with self._lock:
            servers = list(self._url_servers.values())
        for server in servers:
            server.close()


class Served(str):
    """The base URL of :meth:`Simulator.serve` (a ``str``: ``with sim.serve() as url``), with the rest:

    - ``url``: the same, ``http://127.0.0.1:PORT``: the Invoke API (``endpoint_url`` of boto3's Lambda
      client) and the template's API routes;
    - ``function_urls``: each function with a function URL, by its name: its own ``http://127.0.0.1:PORT``;
    - ``counters``: what has been answered.
    """

    url: str
    counters: Counters
    _endpoints: _Endpoints

    def __new__(cls, endpoints: _Endpoints) -> Served:
        self = super().__new__(cls, endpoints.main.url)
        self.url = endpoints.main.url
        self.counters = endpoints.counters
        self._endpoints = endpoints
        return self

    @property
    def function_urls(self) -> dict[str, str]:
        return self._endpoints.function_urls()

    @property
    def port(self) -> int:
        return self._endpoints.main.port

    def routes(self) -> list[tuple[str, str, str]]:
        """The API routes served: (method, path, function) each, in match order."""
        return [(r.method or "ANY", r.path, r.function) for r in self._endpoints.routes.table()]


@contextmanager
def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> Iterator[Served]:
    """See :meth:`Simulator.serve`."""
    endpoints = _Endpoints(sim, host, port)
    try:
        yield Served(endpoints)
    finally:
        endpoints.close()
