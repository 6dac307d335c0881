"""``lambdasim invoke``: invoke a handler once in a simulated Lambda instance."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from lambdasim._aws_calls import SETUP_HELP, load_setup
from lambdasim._commands import (
    add_env_argument,
    add_interpreter_argument,
    add_layer_arguments,
    add_model_arguments,
    add_network_argument,
    add_package_argument,
    add_parameter_overrides_argument,
    add_sandbox_argument,
    model_settings,
    outside_imports_note,
    read_template_function,
    services_help,
    template_overrides,
)
from lambdasim._errors import ConfigError
from lambdasim._lambda_errors import INVALID_PARAMETER_VALUE
from lambdasim._model import CUSTOM_RUNTIMES, PYTHON_RUNTIMES_TEXT, known_runtime
from lambdasim._simulator import Simulator
from lambdasim._source import env_argument, read_json_argument, services_text
from lambdasim.examples import HELLO_DIR

HELP = "invoke a handler once in a simulated Lambda instance"
DESCRIPTION = ("Invoke a handler once, like `sam local invoke`: the response JSON goes to stdout, the function's logs "
               "to stderr. Without a handler, runs the bundled example.")
EPILOG = (
    "From a template, like `sam local invoke -t template.yaml Fn -e event.json`: `lambdasim invoke --template "
    "template.yaml --function Fn --event @event.json` (or `lambdasim invoke -t template.yaml Fn -e @event.json`). "
    "The function's settings are the template's (an AWS SAM template.yaml or a serverless.yml); the options given "
    "replace them: a handler and --code-dir replace its Handler and CodeUri, --memory, --timeout, "
    "--ephemeral-storage, --runtime, --entry-point and --name its settings, --layer its layers (--no-layers: none); "
    "--env adds to its variables, or replaces them (also one it cannot resolve, like !GetAtt Table.Arn). "
    "--parameter-overrides gives SAM parameters, or Serverless ${opt:...} options (its values end at the first "
    "argument without =)."
    "\n\n"
    "Defaults without --template: --memory 128, --timeout 3, --ephemeral-storage 512, the Python runtime."
    "\n\n"
    "A custom runtime: `lambdasim invoke --runtime provided.al2023 --code-dir fn --sandbox namespace "
    "function.handler` starts fn/bootstrap (or /opt/bootstrap from a --layer), which talks to the Runtime API. "
    "A container image's entry point: `--entry-point 'python3 -m awslambdaric' app.handler`."
    "\n\n"
    "Lambda's execution models: `--snap-start --runtime python3.12`, `--provisioned-concurrency 2`, "
    "`--tenant-isolation --tenant-id acme`, `--capacity-provider fleet --max-concurrency 4` (Managed Instances); "
    "with --template they replace the template's SnapStart, ProvisionedConcurrencyConfig, TenancyConfig and "
    "CapacityProviderConfig (--no-snap-start turns the template's SnapStart off)."
)

_DEFAULTS = {"memory_mb": 128, "timeout_s": 3.0, "ephemeral_storage_mb": 512}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("handler", nargs="?", help="module.function, e.g. app.main.handler (default: the template's, "
                                                   "else the bundled example); with --template and no --function, a "
                                                   "name without a dot is the function, as in sam local invoke")
    parser.add_argument("--code-dir", help="the folder with the handler's code (default: the template's, else the "
                                           "bundled example)")
    parser.add_argument("--template", "-t", metavar="FILE",
                        help="an AWS SAM template.yaml or a serverless.yml (or its folder) that defines the function")
    parser.add_argument("--function", metavar="LOGICAL_ID",
                        help="the function in --template: its logical ID (SAM) or its key under functions "
                             "(Serverless), or its name on Lambda (FunctionName, name, Serverless' "
                             "service-stage-function); may be left out when the template defines one function")
    add_parameter_overrides_argument(parser)
    parser.add_argument("--event", "-e", default="{}", help="the event as JSON, or @FILE (@-: stdin) (default: {})")
    parser.add_argument("--name", help="function name (default: the template's logical ID, else from the handler)")
    parser.add_argument("--memory", type=int, help="memory in MB (default: the template's, else 128)")
    parser.add_argument("--timeout", type=float, help="timeout in seconds (default: the template's, else 3)")
    parser.add_argument("--ephemeral-storage", type=int, help="/tmp size in MB (default: the template's, else 512)")
    parser.add_argument("--runtime", help=f"{PYTHON_RUNTIMES_TEXT} (lambdasim's built-in Python runtime) or "
                                          f"{', '.join(CUSTOM_RUNTIMES)} (a bootstrap in the code or a layer) "
                                          "(default: the template's, else this Python's)")
    parser.add_argument("--entry-point", metavar="COMMAND",
                        help="a container image's ENTRYPOINT, run with the handler as its argument, as a command "
                             "line ('python3 -m awslambdaric') or a JSON list (default: the template's ImageConfig)")
    add_model_arguments(parser)
    parser.add_argument("--tenant-id", metavar="ID",
                        help="the invocation's tenant id (for a function with --tenant-isolation, or a template's "
                             "TenancyConfig: PER_TENANT); the handler reads it in context.tenant_id")
    add_env_argument(parser)
    add_layer_arguments(parser)
    parser.add_argument("--services", metavar="LIST",
                        help=services_help("backing services to start for the function (they are stopped after it)"))
    add_sandbox_argument(parser)
    add_network_argument(parser)
    add_package_argument(parser)
    add_interpreter_argument(parser)
    parser.add_argument("--setup", metavar="FILE", help=SETUP_HELP)
    parser.add_argument("--quiet", "-q", action="store_true", help="do not print the logs")


def run(args: argparse.Namespace) -> int:
    event = read_json_argument(args.event, "--event")
    services = services_text(args.services)
    environment = env_argument(args.env)
    settings = {key: value for key, value in (("memory_mb", args.memory), ("timeout_s", args.timeout),
                                              ("ephemeral_storage_mb", args.ephemeral_storage),
                                              ("runtime", _runtime_argument(args.runtime)),
                                              ("entry_point", _entry_point_argument(args.entry_point)))
                if value is not None}
    settings.update(model_settings(args))
    template_options = template_overrides(args)  # refused without --template
    if args.template is None:
        if args.function:
            raise ConfigError("--function names what to read from a template; add --template template.yaml (or "
                              "serverless.yml)")
        handler = args.handler or "app.handler"
        code_dir = args.code_dir or (HELLO_DIR if args.handler is None else ".")
        deploy = {"handler": handler, "code_dir": code_dir, "name": args.name, **_DEFAULTS, **settings,
                  "environment": environment, "layers": args.layer}
    else:
        deploy = _template_overrides(args, environment, {**settings, **template_options})
    calls = load_setup(args.setup) if args.setup else []  # checked before anything starts
    with Simulator(sandbox=args.sandbox, services=services or None, network=args.network or "isolated",
                   package="strict" if args.strict_package else "host",
                   interpreter="strict" if args.strict_interpreter else "fallback") as sim:
        if args.template is None:
            fn = sim.deploy(**deploy)
        else:
            fn = sim.deploy_from_template(args.template, deploy.pop("function"), **deploy)
        for call in calls:  # after the deploy: the template's tables and buckets exist
            call.run(sim)
        inv = fn.invoke(event, tenant_id=args.tenant_id)
    if not args.quiet:
        sys.stderr.write(inv.logs)
    sys.stderr.write(outside_imports_note(fn.name, inv.outside_imports))
    if inv.error is not None:
        sys.stdout.write(json.dumps(inv.error) + "\n")
        if inv.status_code == 400 and inv.error.get("errorType") == INVALID_PARAMETER_VALUE:
            # Lambda's words fit both mistakes; say which one this was.
            hint = (f"{fn.name} has tenant isolation: pass --tenant-id ID" if fn.config.tenant_isolation
                    else f"{fn.name} has no tenant isolation: leave out --tenant-id, or add --tenant-isolation")
            sys.stderr.write(f"lambdasim: {hint}\n")
        return 1
    raw = inv.raw_payload or b"null"
    sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
    return 0


def _runtime_argument(value: str | None) -> str | None:
    if value is not None and not known_runtime(value):
        raise ConfigError(f"--runtime {value!r}: lambdasim runs {PYTHON_RUNTIMES_TEXT} and the custom runtimes "
                          f"{', '.join(CUSTOM_RUNTIMES)}")
    return value


def _entry_point_argument(value: str | None) -> list[str] | None:
    """``--entry-point``: a command line (split as a shell does) or a JSON list of strings."""
    if value is None:
        return None
    try:
        parts = json.loads(value) if value.lstrip().startswith("[") else shlex.split(value)
    except ValueError as e:
        raise ConfigError(f"--entry-point {value!r}: {e}") from None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and p for p in parts):
        raise ConfigError(f"--entry-point {value!r}: give a command, e.g. 'python3 -m awslambdaric' or "
                          '\'["python3", "-m", "awslambdaric"]\'')
    return parts


def _template_overrides(args: argparse.Namespace, environment: dict[str, str],
                        settings: dict[str, Any]) -> dict[str, Any]:
    """The arguments of Simulator.deploy_from_template() (with ``function``) for ``--template``: the options
    given (``settings``, with layers and parameters) replace the template's settings, as its overrides do.
    The template is read here first, so that its errors name this command's flags, and before any service
    starts."""
    handler, function = args.handler, args.function
    if function is None and handler is not None and "." not in handler:
        handler, function = None, handler  # `sam local invoke -t template.yaml Fn`: a handler always has a dot
    overrides: dict[str, Any] = dict(settings)
    if environment:
        overrides["environment"] = environment
    template = read_template_function(args.template, function, environment=overrides.get("environment"),
                                      layers=overrides.get("layers"), parameters=overrides.get("parameters"))
    for key, value in (("handler", handler), ("code_dir", args.code_dir), ("name", args.name)):
        if value is not None:
            overrides[key] = value
    return {"function": template.name, **overrides}
