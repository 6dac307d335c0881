"""``lambdasim invoke``: invoke a handler once in a simulated Lambda instance."""

from __future__ import annotations

import argparse
import json
import sys

from lambdasim._commands import add_env_argument, add_sandbox_argument, services_help
from lambdasim._simulator import Simulator
from lambdasim._source import env_argument, read_json_argument, services_text
from lambdasim.examples import HELLO_DIR

HELP = "invoke a handler once in a simulated Lambda instance"
DESCRIPTION = ("Invoke a handler once, like `sam local invoke`: the response JSON goes to stdout, the function's logs "
               "to stderr. Without a handler, runs the bundled example.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("handler", nargs="?", help="module.function, e.g. app.main.handler (default: bundled example)")
    parser.add_argument("--code-dir", help="the folder with the handler's code (default: bundled example)")
    parser.add_argument("--event", "-e", default="{}", help="the event as JSON, or @FILE (default: {})")
    parser.add_argument("--name", help="function name (default: from the handler)")
    parser.add_argument("--memory", type=int, default=128, help="memory in MB (default: 128)")
    parser.add_argument("--timeout", type=float, default=3.0, help="timeout in seconds (default: 3)")
    parser.add_argument("--ephemeral-storage", type=int, default=512, help="/tmp size in MB (default: 512)")
    add_env_argument(parser)
    parser.add_argument("--layer", action="append", default=[], metavar="DIR", help="a layer folder, mounted at /opt")
    parser.add_argument("--services", metavar="LIST",
                        help=services_help("backing services to start for the function (they are stopped after it)"))
    add_sandbox_argument(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="do not print the logs")


def run(args: argparse.Namespace) -> int:
    handler = args.handler or "app.handler"
    code_dir = args.code_dir or (HELLO_DIR if args.handler is None else ".")
    event = read_json_argument(args.event, "--event")
    services = services_text(args.services)
    with Simulator(sandbox=args.sandbox, services=services or None) as sim:
        fn = sim.deploy(handler, code_dir=code_dir, name=args.name, memory_mb=args.memory, timeout_s=args.timeout,
                        ephemeral_storage_mb=args.ephemeral_storage, environment=env_argument(args.env),
                        layers=args.layer)
        inv = fn.invoke(event)
    if not args.quiet:
        sys.stderr.write(inv.logs)
    if inv.error is not None:
        sys.stdout.write(json.dumps(inv.error) + "\n")
        return 1
    raw = inv.raw_payload or b"null"
    sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
    return 0
