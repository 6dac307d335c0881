"""The lambdasim command line: invoke a handler, run scenario files, search a function's
lifecycles for a broken invariant (chaos), compare warm and fresh instances (detect),
write the HTML report of a trace, print an event source's event (event), and serve a template's
functions over Lambda's Invoke API and their HTTP routes (serve)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from lambdasim._commands import HelpFormatter, chaos, detect, event, invoke, report, run, serve, split_overrides
from lambdasim._errors import LambdaSimError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambdasim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in (("invoke", invoke), ("run", run), ("chaos", chaos), ("detect", detect), ("report", report),
                         ("event", event), ("serve", serve)):
        command = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                 epilog=getattr(module, "EPILOG", None), formatter_class=HelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """lambdasim's warnings as ``lambdasim: warning: MESSAGE`` lines on stderr, each distinct message once:
    Python's own format names the entry-point script's line (``bin/lambdasim:8``) and repeats its source,
    which says nothing to a shell user. Other packages' warnings keep Python's format."""
    said: set[str] = set()
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if category.__module__.partition(".")[0] != "lambdasim":
            original(message, category, filename, lineno, file, line)
            return
        text = " ".join(str(message).split())
        if text not in said:
            said.add(text)
            sys.stderr.write(f"lambdasim: warning: {text}\n")

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _warnings_as_lines():
        try:
            args = _parser().parse_args(split_overrides(argv))
            status: int = args.run(args)
            return status
        except LambdaSimError as e:
            sys.stderr.write(f"lambdasim: error: {e}\n")
            return 2


if __name__ == "__main__":
    sys.exit(main())
