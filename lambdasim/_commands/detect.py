"""``lambdasim detect``: compare warm and fresh instances (the comparison is :mod:`lambdasim._detect`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lambdasim._commands import optional

HELP = "compare warm and fresh instances: find results that depend on warm state (lambdasim detect --help)"


def run_argv(rest: Sequence[str]) -> int:
    """``lambdasim detect ...``: options are lambdasim._detect's.

    When the module defines ``add_arguments(parser)``, the arguments are parsed with it and
    ``run_detect`` gets that namespace; otherwise it gets ``Namespace(argv=[...])``. Either way
    the namespace also carries ``command="detect"`` and ``argv``. An int returned is the exit
    status (None: 0).
    """
    module, run_detect = optional("lambdasim._detect", "run_detect", "lambdasim detect")
    add_arguments = getattr(module, "add_arguments", None)
    if callable(add_arguments):
        parser = argparse.ArgumentParser(prog="lambdasim detect", description=module.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(parser)
        namespace = parser.parse_args(list(rest))
    else:
        namespace = argparse.Namespace()
    namespace.command = "detect"
    namespace.argv = list(rest)
    status = run_detect(namespace)
    return status if isinstance(status, int) else 0
