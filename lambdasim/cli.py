"""The lambdasim command line: invoke a handler, run scenario files, search a function's
lifecycles for a broken invariant (chaos), compare warm and fresh instances (detect),
write the HTML report of a trace, and print an event source's event (event)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lambdasim._commands import HelpFormatter, chaos, detect, event, invoke, report, run
from lambdasim._errors import LambdaSimError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambdasim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in (("invoke", invoke), ("run", run), ("chaos", chaos), ("detect", detect), ("report", report),
                         ("event", event)):
        command = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                 epilog=getattr(module, "EPILOG", None), formatter_class=HelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
        status: int = args.run(args)
        return status
    except LambdaSimError as e:
        sys.stderr.write(f"lambdasim: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
