"""moto's server, serving one request at a time.

moto's backends take no locks, so two requests at once can interleave inside one operation:
two concurrent DynamoDB ``UpdateItem ... ADD`` both read the old value, and a counter that AWS
keeps atomic hands out a number twice. AWS makes each single-item operation atomic; serving
requests one at a time gives every operation that guarantee (a concurrent request waits for
the one before it, a few milliseconds). Used by the binary and embedded providers;
``python -m lambdasim._services.moto_app -H HOST -p PORT`` runs it as a server.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serialized(app: WsgiApp) -> WsgiApp:
    """``app`` answering one request at a time, its whole response produced under the lock."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with lock:
            result = app(environ, start_response)
            try:
                return [b"".join(result)]  # a lazily made body still runs moto's code
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return serve


def make_app() -> WsgiApp:
    """moto's server application (every service it implements), serialized."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: WsgiApp = DomainDispatcherApplication(create_backend_app)
    return serialized(app)


def threaded_server(host: str, port: int) -> Any:
    """A werkzeug server of :func:`make_app` (threads accept connections; requests take turns)."""
    from werkzeug.serving import make_server

    return make_server(host, port, make_app(), threaded=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lambdasim._services.moto_app")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    threaded_server(args.host, args.port).serve_forever()


if __name__ == "__main__":
    main()
