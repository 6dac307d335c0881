"""The ``lambdasim`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from lambdasim._errors import LambdaSimError
from lambdasim._simulator import Simulator
from lambdasim.examples import HELLO_DIR


def _event(text: str) -> Any:
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise LambdaSimError(f"--event {text}: cannot read {path}: {e.strerror}") from None
        where = path
    else:
        where = "--event"
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LambdaSimError(f"{where}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def _env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise LambdaSimError(f"--env {pair!r}: write it as KEY=VALUE")
        env[key] = value
    return env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambdasim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    inv = sub.add_parser("invoke", help="invoke a handler once in a simulated Lambda instance",
                         description="Invoke a handler once, like `sam local invoke`: the response JSON goes to "
                                     "stdout, the function's logs to stderr. Without a handler, runs the bundled "
                                     "example.")
    inv.add_argument("handler", nargs="?", help="module.function, e.g. app.main.handler (default: bundled example)")
    inv.add_argument("--code-dir", help="the folder with the handler's code (default: bundled example)")
    inv.add_argument("--event", "-e", default="{}", help="the event as JSON, or @FILE (default: {})")
    inv.add_argument("--name", help="function name (default: from the handler)")
    inv.add_argument("--memory", type=int, default=128, help="memory in MB (default: 128)")
    inv.add_argument("--timeout", type=float, default=3.0, help="timeout in seconds (default: 3)")
    inv.add_argument("--ephemeral-storage", type=int, default=512, help="/tmp size in MB (default: 512)")
    inv.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable")
    inv.add_argument("--layer", action="append", default=[], metavar="DIR", help="a layer folder, mounted at /opt")
    inv.add_argument("--sandbox", default="auto", help="sandbox: auto or namespace (default: auto)")
    inv.add_argument("--quiet", "-q", action="store_true", help="do not print the logs")
    return parser


def _invoke(args: argparse.Namespace) -> int:
    handler = args.handler or "app.handler"
    code_dir = args.code_dir or (HELLO_DIR if args.handler is None else ".")
    event = _event(args.event)
    with Simulator(sandbox=args.sandbox) as sim:
        fn = sim.deploy(handler, code_dir=code_dir, name=args.name, memory_mb=args.memory, timeout_s=args.timeout,
                        ephemeral_storage_mb=args.ephemeral_storage, environment=_env(args.env),
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "invoke":
            return _invoke(args)
    except LambdaSimError as e:
        sys.stderr.write(f"lambdasim: error: {e}\n")
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
