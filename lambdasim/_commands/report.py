"""``lambdasim report``: write the HTML report of a trace (the drawing is :mod:`lambdasim._report`)."""

from __future__ import annotations

import argparse
import os
import sys

from lambdasim._commands import optional
from lambdasim._errors import LambdaSimError

HELP = "write the HTML report of a trace"
DESCRIPTION = ("Write the HTML report (a timeline per instance) of a trace JSON file: pytest --lambda-sim-report's, "
               "lambdasim detect --json's, or a list of events.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE.json", help="the trace JSON file")
    parser.add_argument("--output", "-o", metavar="OUT.html", help="the HTML file (default: TRACE.html)")


def run(args: argparse.Namespace) -> int:
    _, write_report = optional("lambdasim._report", "write_report", "lambdasim report")
    output = args.output or os.path.splitext(args.trace)[0] + ".html"
    try:
        write_report(args.trace, output)
    except OSError as e:
        raise LambdaSimError(f"{e.filename or args.trace}: {e.strerror or e}") from None
    except ValueError as e:  # a trace that is not valid JSON, or not a trace
        raise LambdaSimError(f"{args.trace}: {e}") from None
    sys.stdout.write(f"report written to {output}\n")
    return 0
