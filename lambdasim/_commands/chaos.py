"""``lambdasim chaos``: search random lifecycles for an invocation that breaks an invariant
(the search is :mod:`lambdasim._chaos`)."""

from __future__ import annotations

import argparse
import sys

from lambdasim._aws_calls import SETUP_HELP
from lambdasim._commands import (
    add_env_argument,
    add_layer_arguments,
    add_model_arguments,
    add_network_argument,
    add_package_argument,
    add_parameter_overrides_argument,
    add_sandbox_argument,
    services_help,
)
from lambdasim._errors import LambdaSimError

HELP = "search random lifecycles for an invocation that breaks an invariant"
DESCRIPTION = ("Drive one function through random sequences of invocations, concurrent bursts, scale-downs, idle "
               "timeouts, crashes, redeploys and service faults (Hypothesis stateful testing), check the invariants "
               "after every invocation, and write the shortest failing sequence found as a scenario file. Exit "
               "status: 0 when none is found, 1 when one is, 2 on a usage error.")
EPILOG = ("An --invariant expression is your own Python code: it runs in this process, unsandboxed, with inv (the "
          "Invocation), payload and error bound, like an assertion in a test. The scenario written for it checks "
          "the same expression (expect: {holds: EXPR}), so it fails when run until the bug is fixed.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("the function (one of)")
    what.add_argument("--handler", help="module.function, with --code-dir")
    what.add_argument("--code-dir", help="the folder with the handler's code (default: .)")
    what.add_argument("--template", "-t", metavar="T.yaml", help="an AWS SAM template or serverless.yml (or its "
                                                                 "folder), with --function")
    what.add_argument("--function", metavar="F", help="the function's logical ID (SAM) or key (Serverless), or its "
                                                      "name on Lambda; may be left out when the template defines one")
    what.add_argument("target", nargs="?", metavar="FUNCTION",
                      help="with --template, the function as --function gives it (as in sam local invoke)")
    add_parameter_overrides_argument(parser)
    add_layer_arguments(parser)
    parser.add_argument("--name", help="function name (default: from the handler; with --template, the name Lambda "
                                       "gives the template's function, addressed by --function)")
    parser.add_argument("--memory", type=int, help="memory in MB")
    parser.add_argument("--timeout", type=float, help="timeout in seconds")
    parser.add_argument("--runtime", help="the function's runtime, e.g. python3.12 (for SnapStart on an older Python)")
    add_model_arguments(parser)
    parser.add_argument("--model", action="append", metavar="MODEL",
                        choices=("on-demand", "provisioned", "snap-start", "tenant-isolation", "managed"),
                        help="an execution model each example's deploy may pick: on-demand, provisioned, "
                             "snap-start, tenant-isolation, managed (Managed Instances, as many workers as a burst); "
                             "repeat for more (default: the function as configured)")
    parser.add_argument("--tenant-id", action="append", metavar="ID",
                        help="a tenant id invocations of a tenant-isolated function are drawn from; repeat for more "
                             "(default: tenant-a, tenant-b)")
    add_env_argument(parser)
    events = parser.add_mutually_exclusive_group()
    events.add_argument("--events", metavar="FILE.json", help="a JSON list of events to draw from")
    events.add_argument("--event", action="append", metavar="JSON",
                        help="an event as JSON or @FILE (@-: stdin); repeat for more (default: {})")
    parser.add_argument("--invariant", action="append", metavar="no-error|tenant-isolated|EXPR",
                        help="no-error (the default), tenant-isolated (no environment serves two tenants), or a Python "
                             "expression over inv, payload, error and history (the invocations so far) that must be "
                             "true after every invocation; repeat for more")
    parser.add_argument("--seed", type=int, default=0, help="random seed: for a function that behaves the same "
                                                            "each time, the same seed finds the same sequence "
                                                            "(default: 0)")
    parser.add_argument("--examples", type=int, default=25, help="sequences to try (default: 25)")
    parser.add_argument("--steps", type=int, default=8, help="most steps per sequence (default: 8)")
    parser.add_argument("--concurrency", type=int, default=3,
                        help="most invocations in flight in one burst; 1: invocations one at a time (default: 3)")
    parser.add_argument("--shrink-runs", type=int, default=100,
                        help="most runs spent shrinking a failing sequence; each run starts a Simulator "
                             "(default: 100)")
    parser.add_argument("--out", "-o", metavar="FILE.yaml", help="where to write a failing sequence "
                                                               "(default: chaos-failure.yaml)")
    parser.add_argument("--services", metavar="LIST", help=services_help("backing services to run, and to fault"))
    add_sandbox_argument(parser)
    add_network_argument(parser)
    add_package_argument(parser)
    parser.add_argument("--setup", metavar="FILE", help=SETUP_HELP + " (in every run, after the deploy; written "
                                                                    "into the scenario as aws: steps)")
    parser.add_argument("--no-verify", action="store_true", help="do not re-run the written scenario")
    parser.add_argument("--hypothesis-dir", metavar="DIR",
                        help="where Hypothesis keeps its files (default: $HYPOTHESIS_STORAGE_DIRECTORY, else "
                             "lambdasim/hypothesis in $XDG_CACHE_HOME or ~/.cache); never .hypothesis/ in the "
                             "working directory unless you name it")


def run(args: argparse.Namespace) -> int:
    try:
        from lambdasim._chaos import chaos_main
    except ModuleNotFoundError as e:
        if e.name in ("hypothesis", "hypothesis.stateful"):
            raise LambdaSimError("lambdasim chaos needs Hypothesis: pip install 'lambdasim[chaos]'") from None
        raise
    return chaos_main(args, sys.stdout)
