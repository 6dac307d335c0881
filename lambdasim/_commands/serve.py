"""``lambdasim serve``: every function of a template behind Lambda's Invoke API and the template's HTTP routes
on localhost (the endpoints are :mod:`lambdasim._serve`; the view :mod:`lambdasim._serve._live`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from typing import Any

from lambdasim._commands import (
    add_network_argument,
    add_package_argument,
    add_parameter_overrides_argument,
    add_sandbox_argument,
    read_template_function,
    services_help,
    template_overrides,
)
from lambdasim._errors import ConfigError
from lambdasim._source import services_text

HELP = "serve a template's functions: Lambda's Invoke API and the HTTP routes, on localhost"
DESCRIPTION = (
    "Deploy every function of a SAM template or serverless.yml and serve, on one port, Lambda's Invoke API "
    "(boto3.client('lambda', endpoint_url=URL), or AWS_ENDPOINT_URL_LAMBDA=URL) and the template's Api/HttpApi "
    "(http/httpApi) routes, plus each function URL on a port of its own, like sam local start-lambda and "
    "start-api together. The functions run in lambdasim's instances: cold starts, warm reuse, /tmp per instance, "
    "scaling with the requests in flight. Inside them AWS_ENDPOINT_URL_LAMBDA reaches the same functions, so a "
    "function that invokes another runs it here. On a terminal a live view shows each function's instances; "
    "elsewhere one line per request. Ctrl-C (or SIGTERM) stops everything; --report writes the trace for "
    "lambdasim report. Exit status: 0 after a stop, 2 when the template is not valid or the port is taken.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", "-t", metavar="FILE", default=None,
                        help="an AWS SAM template.yaml or a serverless.yml (or its folder) (default: the one in the "
                             "working directory)")
    add_parameter_overrides_argument(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default: 127.0.0.1; other addresses expose the functions "
                             "to the network)")
    parser.add_argument("--port", "-p", type=int, default=3000, help="the port (default: 3000; 0: a free one)")
    parser.add_argument("--services", metavar="LIST",
                        help=services_help("backing services to start (a template with resources starts aws)"))
    add_sandbox_argument(parser)
    add_network_argument(parser)
    add_package_argument(parser)
    parser.add_argument("--async-time-scale", type=float, default=1.0, metavar="X",
                        help="Event invocations' waits (a retry 1 and 2 minutes after a function error, the backoff "
                             "after a throttle, the event's maximum age) times X, e.g. 0.01 (default: 1, Lambda's)")
    parser.add_argument("--report", metavar="PATH", help="at the stop, write the trace as JSON for lambdasim report")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--live", dest="live", action="store_true", default=None,
                      help="the live view even when stdout is not a terminal")
    view.add_argument("--no-live", dest="live", action="store_false",
                      help="one line per request instead of the live view")


class _Signals:
    """While installed, SIGINT and SIGTERM set ``stop`` (the main thread waits on it), and a second one while
    everything stops is ignored rather than interrupting the clean-up."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, lambda signum, frame: self.stop.set())

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()


def run(args: argparse.Namespace) -> int:
    from lambdasim._templates import function_keys

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: give a port from 1 to 65535, or 0 for a free one")
    template = args.template or "."  # a folder: its template.yaml or serverless.yml, as every command finds it
    overrides = template_overrides(args)
    display, names = function_keys(template)
    if not names:
        raise ConfigError(f"{display} defines no function to serve")
    services = services_text(args.services)
    stop = threading.Event()
    live = sys.stdout.isatty() if args.live is None else args.live
    for name in names:  # read first, so that errors name this command's flags, before anything starts
        read_template_function(template, name, parameters=overrides.get("parameters"),
                               layers=overrides.get("layers"))
    signals = _Signals(stop)
    try:
        _serve(args, template, names, display, overrides, services, signals, live)
    finally:
        signals.restore()  # after the clean-up: a Ctrl-C during it does not cut it short
    return 0


def _serve(args: argparse.Namespace, template: str, names: list[str], display: str, overrides: dict[str, Any],
           services: Any, signals: _Signals, live: bool) -> None:
    from lambdasim import Simulator
    from lambdasim._serve import _live

    out = sys.stdout
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(Simulator(sandbox=args.sandbox, services=services or None,
                                            network=args.network or "isolated",
                                            package="strict" if args.strict_package else "host",
                                            async_time_scale=args.async_time_scale))
        if args.report:
            stack.callback(_write_trace, args.report, sim)  # also after a failure: what happened until then
        for name in names:
            sim.deploy_from_template(template, name, **overrides)
        try:
            served = stack.enter_context(sim.serve(args.host, args.port))
        except OSError as e:
            raise ConfigError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}; pass --port N (0: a "
                              "free one)") from None
        signals.install()  # before the banner: whoever waits for it may stop us at once
        out.write(_banner(display, served, names))
        out.flush()
        _live.run(sim, served, out, live, signals.stop)


def _banner(display: str, served: Any, names: list[str]) -> str:
    lines = [f"lambdasim serve: {display}, {len(names)} function{'s' if len(names) != 1 else ''}",
             f"  Invoke API  {served.url}  (boto3.client('lambda', endpoint_url='{served.url}'))"]
    for method, path, function in served.routes():
        lines.append(f"  {method:<7} {served.url}{path}  -> {function}")
    for function, url in served.function_urls.items():
        lines.append(f"  URL     {url}/  -> {function}")
    lines.append("ready; Ctrl-C stops")
    return "\n".join(lines) + "\n"


def _write_trace(path: str, sim: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"name": "lambdasim serve", "trace": [e.to_dict() for e in sim.trace]}, f, indent=1, default=str)
    sys.stderr.write(f"lambdasim: trace written to {path} (lambdasim report {path} -o report.html)\n")

