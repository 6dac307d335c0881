"""``Simulator.serve()``: Lambda's Invoke API and the template's HTTP routes of every function on one port,
each function URL on a port of its own, and the counters the live view shows.

One port for both, because the Invoke API's paths (``/2015-03-31/functions/...``) cannot be an API's
routes in practice, so ``boto3.client("lambda", endpoint_url=url)`` and ``requests.get(url + "/orders")``
take the same address.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from lambdasim._serve._http import App, HttpServer, Request, Response

if TYPE_CHECKING:
    from lambdasim._simulator import Simulator


@dataclasses.dataclass
class Counters:
    """What the server has answered, for the live view and the benchmark (guarded by ``lock``)."""

    requests: int = 0
    by_status: dict[int, int] = dataclasses.field(default_factory=dict)
    errors: deque[str] = dataclasses.field(default_factory=lambda: deque(maxlen=5))
    """The last error answers: ``HH:MM:SS status method path``."""
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def count(self, request: Request, response: Response) -> None:
        with self.lock:
            self.requests += 1
            self.by_status[response.status] = self.by_status.get(response.status, 0) + 1
            if response.status >= 400 or any(k.lower() == "x-amz-function-error" for k, _ in response.headers):
                self.errors.append(f"{time.strftime('%H:%M:%S')} {response.status} {request.method} {request.path}")


class Served(str):
    """The base URL of :meth:`Simulator.serve` (a ``str``: ``with sim.serve() as url``), with the rest:

    - ``url``: the same, ``http://127.0.0.1:PORT``: the Invoke API (``endpoint_url`` of boto3's Lambda
      client) and the template's API routes;
    - ``function_urls``: each function with a function URL, by its name: its own ``http://127.0.0.1:PORT``;
    - ``counters``: what has been answered.
    """

    url: str
    function_urls: dict[str, str]
    counters: Counters

    def __new__(cls, url: str, function_urls: dict[str, str], counters: Counters) -> Served:
        self = super().__new__(cls, url)
        self.url = url
        self.function_urls = function_urls
        self.counters = counters
        return self


def app_for(sim: Simulator, counters: Counters | None = None) -> App:
    """The app of the main port: the Invoke API, else the template's routes."""
    from lambdasim._serve import _invoke_api, _routes

    routes = _routes.Routes.from_simulator(sim)

    def app(request: Request) -> Response:
        if _invoke_api.is_invoke_api(request.path):
            response = _invoke_api.handle(sim, request)
        else:
            response = routes.handle(request)
        if counters is not None:
            counters.count(request, response)
        return response

    return app


@contextmanager
def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> Iterator[Served]:
    """See :meth:`Simulator.serve`."""
    from lambdasim._serve import _routes

    counters = Counters()
    servers: list[HttpServer] = []
    try:
        main = HttpServer(app_for(sim, counters), host, port, name="lambdasim-serve")
        servers.append(main)
        urls: dict[str, str] = {}
        for name, url_app in _routes.function_url_apps(sim).items():
            def counted(request: Request, url_app: App = url_app) -> Response:
                response = url_app(request)
                counters.count(request, response)
                return response

            server = HttpServer(counted, host, 0, name=f"lambdasim-url-{name}")
            servers.append(server)
            urls[name] = server.url
        yield Served(main.url, urls, counters)
    finally:
        for server in servers:
            server.close()
