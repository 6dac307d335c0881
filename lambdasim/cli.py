"""The lambdasim command line: invoke a handler, run scenario files, search a function's
lifecycles for a broken invariant (chaos), compare warm and fresh instances (detect), and
write the HTML report of a trace."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lambdasim._commands import chaos, detect, invoke, report, run
from lambdasim._errors import LambdaSimError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambdasim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in (("invoke", invoke), ("run", run), ("chaos", chaos), ("report", report)):
        command = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                 epilog=getattr(module, "EPILOG", None))
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    # `detect` takes its options from lambdasim._detect (see detect.run_argv); listed here for --help.
    sub.add_parser("detect", help=detect.HELP, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["detect"]:
            return detect.run_argv(argv[1:])
        args = _parser().parse_args(argv)
        status: int = args.run(args)
        return status
    except LambdaSimError as e:
        sys.stderr.write(f"lambdasim: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
