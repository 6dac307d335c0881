"""``lambdasim report``: write the HTML report of a trace, or of several (the drawing is :mod:`lambdasim._report`,
the merging of shards :mod:`lambdasim._report_merge`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from lambdasim._commands import optional
from lambdasim._errors import LambdaSimError

HELP = "write the HTML report of a trace, or of several"
DESCRIPTION = ("Write the HTML report (a timeline per instance) of a trace JSON file: pytest --lambda-sim-report's, "
               "lambdasim detect --json's, or a list of events. Several files (the shards of a suite run by "
               "pytest-split or CI matrix jobs) make one report with a section per file, each labelled with its "
               "file name.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("traces", nargs="+", metavar="TRACE.json", help="the trace JSON file(s)")
    parser.add_argument("--output", "-o", metavar="OUT.html",
                        help="the HTML file (default for one trace: TRACE.html; several need it)")


def run(args: argparse.Namespace) -> int:
    traces: list[str] = args.traces
    if len(traces) == 1:
        _, write = optional("lambdasim._report", "write_report", "lambdasim report")
        source: str | list[str] = traces[0]
        output = args.output or os.path.splitext(traces[0])[0] + ".html"
    elif args.output:
        _, write = optional("lambdasim._report_merge", "write_merged_report", "lambdasim report")
        source, output = traces, args.output
    else:
        shown = " ".join(shlex.quote(t) for t in traces[:2]) + (" ..." if len(traces) > 2 else "")
        raise LambdaSimError(f"{len(traces)} traces make one report: name its file with -o, e.g. lambdasim report "
                             f"{shown} -o report.html")
    write(source, output)  # its LambdaSimError names the file that cannot be read, is not a trace, or cannot be written
    sys.stdout.write(f"report written to {output}\n")
    return 0
