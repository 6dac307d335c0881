"""The subcommands of the ``lambdasim`` command line, one module each.

Each module has ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status);
:mod:`lambdasim.cli` builds the top parser from them and dispatches. The engines they
drive stay where they are (:mod:`lambdasim._chaos`, :mod:`lambdasim._detect`,
:mod:`lambdasim._report`, :mod:`lambdasim._scenario.suite`) and are imported when the
command runs.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lambdasim._cfn import Hints
from lambdasim._errors import ConfigError, LambdaSimError
from lambdasim._sandbox import NETWORKS, sandbox_names

if TYPE_CHECKING:
    from lambdasim._templates import TemplateFunction


def add_sandbox_argument(parser: argparse.ArgumentParser) -> None:
    """``--sandbox`` (validated by the Simulator, which names the sandboxes it knows)."""
    parser.add_argument("--sandbox", default="auto", help=f"sandbox: {sandbox_names()} (default: auto)")


def add_network_argument(parser: argparse.ArgumentParser, default: str = "isolated") -> None:
    """``--network`` (None when not given; ``default`` says in the help what applies then)."""
    parser.add_argument("--network", choices=NETWORKS, default=None,
                        help="what the instances reach: isolated (the simulator's services only, as a function in "
                             "a VPC without NAT), internet (outbound traffic too, through pasta or slirp4netns) or "
                             f"host (the host's network, shared with this process) (default: {default})")


def add_package_argument(parser: argparse.ArgumentParser) -> None:
    """``--strict-package``: Simulator(package="strict")."""
    parser.add_argument("--strict-package", action="store_true",
                        help="an import from outside the function's package, layers and Lambda's runtime fails, "
                             "as on Lambda (default: it works with the host's packages, and is named on stderr)")


def add_interpreter_argument(parser: argparse.ArgumentParser) -> None:
    """``--strict-interpreter``: Simulator(interpreter="strict")."""
    parser.add_argument("--strict-interpreter", action="store_true",
                        help="a function whose Runtime python3.X is not installed here (pyenv, uv, PATH) is refused, "
                             "with how to install it (default: it runs on lambdasim's Python, with a warning)")


def outside_imports_note(function: str, names: tuple[str, ...]) -> str:
    """What the CLI says on stderr of a function's imports from outside its package (empty: none)."""
    if not names:
        return ""
    return (f"lambdasim: {function} imported from outside its package: {', '.join(names)} \u2014 would fail on "
            f"Lambda: No module named {names[0]!r} (--strict-package makes it fail here too)\n")


def services_help(what: str) -> str:
    """The help of a ``--services`` option: ``what`` they are for, then the one grammar (see _source.services_text)."""
    from lambdasim._services import KINDS, PROVIDERS

    return (f"{what}; LIST is NAME[=PROVIDER],..., e.g. aws,redis=binary,memcached (names: {', '.join(KINDS)}; "
            f"providers: auto, {', '.join(PROVIDERS)}; default auto)")


def add_env_argument(parser: argparse.ArgumentParser) -> None:
    """``--env KEY=VALUE``, repeatable (read with _source.env_argument)."""
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The execution models' settings of Simulator.deploy(), as flags (None when not given; read them with
    :func:`model_settings`)."""
    models = parser.add_argument_group("execution models (with --template: they replace the template's)")
    models.add_argument("--snap-start", action=argparse.BooleanOptionalAction, default=None,
                        help="SnapStart: Init once, every environment restored from its snapshot (python3.12 and "
                             "later: give --runtime python3.12 on an older Python)")
    models.add_argument("--provisioned-concurrency", type=int, metavar="N",
                        help="N environments initialised at deploy, before any invocation")
    models.add_argument("--tenant-isolation", action=argparse.BooleanOptionalAction, default=None,
                        help="environments per tenant id (give --tenant-id)")
    models.add_argument("--capacity-provider", metavar="NAME",
                        help="Lambda Managed Instances: the capacity provider's name or ARN")
    models.add_argument("--max-concurrency", type=int, metavar="N",
                        help="Managed Instances: requests per environment at once (default 16)")
    models.add_argument("--min-environments", type=int, metavar="N",
                        help="Managed Instances: environments started at deploy")
    models.add_argument("--max-environments", type=int, metavar="N",
                        help="Managed Instances: the most environments; beyond them requests are throttled")


def add_parameter_overrides_argument(parser: argparse.ArgumentParser) -> None:
    """``--parameter-overrides KEY=VALUE ...`` (read with _source.parameters_argument); :func:`split_overrides`
    keeps it from taking the positional argument after its values."""
    parser.add_argument("--parameter-overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="template parameters (SAM) or ${opt:...} options (Serverless), as sam takes them: "
                             "KEY=VALUE or ParameterKey=KEY,ParameterValue=VALUE; the values end at the first "
                             "argument without =")


def add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--layer DIR`` (repeatable) or ``--no-layers``: read them with :func:`template_overrides`."""
    layers = parser.add_mutually_exclusive_group()
    layers.add_argument("--layer", action="append", default=[], metavar="DIR",
                        help="a layer folder, mounted at /opt (with --template: replaces the template's layers)")
    layers.add_argument("--no-layers", action="store_true",
                        help="with --template: the function runs without the template's layers (e.g. layer ARNs "
                             "whose packages are installed here)")


# How a template error says to set what the template cannot (see _cfn.Hints), in the commands' flags.
CLI_HINTS = Hints(
    environment="set the value with --env {name}=VALUE",
    parameter="pass --parameter-overrides {name}=VALUE",
    layers="pass --layer FOLDER (once for each layer) or --no-layers",
    function="name one with --function LOGICAL_ID",
)


def template_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--layer``/``--no-layers`` and ``--parameter-overrides`` change of a template's function, as
    overrides of Simulator.deploy_from_template(); without ``--template``, they are refused."""
    from lambdasim._source import parameters_argument

    overrides: dict[str, Any] = {}
    if getattr(args, "no_layers", False):
        overrides["layers"] = []
    elif getattr(args, "layer", None) and getattr(args, "template", None) is not None:
        overrides["layers"] = list(args.layer)
    if getattr(args, "parameter_overrides", None):
        overrides["parameters"] = parameters_argument(args.parameter_overrides)
    if getattr(args, "template", None) is None:
        for flag, key in (("--no-layers", "layers"), ("--parameter-overrides", "parameters")):
            if key in overrides:
                raise ConfigError(f"{flag} names what to read from a template; add --template template.yaml (or "
                                  "serverless.yml)")
    return overrides


def read_template_function(template: str, function: str | None, *, environment: Mapping[str, str] | None = None,
                           layers: Sequence[str] | None = None,
                           parameters: Mapping[str, Any] | None = None) -> TemplateFunction:
    """``function`` of ``template`` (its logical ID or key, or its name on Lambda; None: the only one), read as a
    command does before it starts anything, so that errors name the command's flags (:data:`CLI_HINTS`)."""
    from lambdasim._template_resources import preview_resources
    from lambdasim._templates import FunctionNotFound, function_named, load_function

    # The template's resources are created at deploy: here !Ref and !GetAtt of them give placeholders.
    resources = preview_resources(template, parameters, hints=CLI_HINTS)

    def load(name: str | None) -> TemplateFunction:
        return load_function(template, name, environment=environment, layers=layers, parameters=parameters,
                             hints=CLI_HINTS, resources=resources)

    try:
        return load(function)
    except FunctionNotFound:
        # Not a logical ID or key: the function's name on Lambda, e.g. a Serverless function's service-stage-fn?
        named = function_named(template, function, parameters=parameters) if function else None
        if named is None:
            raise
        return load(named)


def split_overrides(argv: Sequence[str]) -> list[str]:
    """``argv`` with each value of ``--parameter-overrides`` attached to its own copy of the option
    (``--parameter-overrides=A=1 --parameter-overrides=B=2``), as far as they are KEY=VALUE: argparse's
    ``nargs="+"`` would also take a positional argument that follows them (``... Stage=dev http``)."""
    option = "--parameter-overrides"
    out: list[str] = []
    state = ""  # "bare": just after the option; "values": after its values; "": elsewhere
    for i, arg in enumerate(argv):
        if state and "=" in arg and not arg.startswith("-"):
            out.append(f"{option}={arg}")
            state = "values"
            continue
        if state == "bare":
            out.append(option)  # no KEY=VALUE after it: left to argparse, which takes or refuses what follows
        if arg == "--":
            return [*out, *argv[i:]]
        state = "bare" if arg == option else ""
        if not state:
            out.append(arg)
    return [*out, option] if state == "bare" else out


MODEL_FLAGS = ("snap_start", "provisioned_concurrency", "tenant_isolation", "capacity_provider", "max_concurrency",
               "min_environments", "max_environments")
"""The keywords of Simulator.deploy() that :func:`add_model_arguments` adds, named as argparse names them."""


def model_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The execution models' settings given on the command line."""
    return {key: getattr(args, key, None) for key in MODEL_FLAGS if getattr(args, key, None) is not None}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that a blank line in a description or epilog starts a new
    paragraph (argparse would run them together); each paragraph is wrapped to the terminal."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(HelpFormatter, self)._fill_text(p, width, indent) for p in text.split("\n\n"))


class Unavailable(LambdaSimError):
    """A subcommand whose module is not part of this build."""


def optional(module: str, attr: str, command: str) -> tuple[ModuleType, Callable[..., Any]]:
    """``module`` and its ``attr``, imported now; Unavailable when this build does not have them."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise Unavailable(f"{command} needs the package {e.name}, which is not installed: {e}") from None
        raise Unavailable(f"{command} is not available in this build (there is no {module})") from None
    func = getattr(mod, attr, None)
    if not callable(func):
        raise Unavailable(f"{command} is not available in this build ({module} has no {attr}())")
    return mod, func
