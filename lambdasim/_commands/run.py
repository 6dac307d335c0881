"""``lambdasim run``: run YAML scenario files (the runner is :mod:`lambdasim._scenario.suite`)."""

from __future__ import annotations

import argparse

from lambdasim._commands import add_network_argument, add_package_argument, services_help
from lambdasim._source import services_text

HELP = "run YAML scenario files"
DESCRIPTION = ("Run scenario files (format: scenarios/README.md), each in a Simulator of its own; print each result "
               "once, as it finishes (with why it did not pass), then the totals. "
               "Exit status: 0 when all pass, 1 when any fails, 2 when a file is not valid or the sandbox cannot "
               "start.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="a scenario file (.yaml)")
    parser.add_argument("--junit-xml", metavar="PATH", help="also write the results as JUnit XML")
    parser.add_argument("--services", metavar="LIST",
                        help=services_help("backing services to start in every scenario's Simulator, besides "
                                           "those its simulator: services lists (for a service it lists, the "
                                           "scenario's own setting wins)"))
    add_network_argument(parser, default="each scenario's simulator: network, else isolated")
    add_package_argument(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="print only failures and the totals")


def run(args: argparse.Namespace) -> int:
    from lambdasim._scenario.suite import run_files

    services = services_text(args.services)
    return run_files(args.scenarios, junit_xml=args.junit_xml, quiet=args.quiet, services=services,
                     network=args.network, package="strict" if args.strict_package else None)
