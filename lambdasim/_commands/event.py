"""``lambdasim event KIND``: print an event source's event as JSON (the builders are :mod:`lambdasim.events`).

Each kind's options are its builder's keyword arguments, read from its signature and docstring, so
the command line and the Python API cannot drift apart: ``--path-parameters`` is ``path_parameters``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lambdasim._commands import HelpFormatter, add_env_argument, add_parameter_overrides_argument
from lambdasim._errors import ConfigError
from lambdasim._source import env_argument, parameters_argument, read_json_argument
from lambdasim.events import KINDS, build

if TYPE_CHECKING:
    from lambdasim._templates import TemplateFunction

HELP = "print an event of an event source (API Gateway, SQS, S3 ...) as JSON, like sam local generate-event"
DESCRIPTION = """\
Print the event an event source sends a function, as JSON on stdout: pipe it to lambdasim invoke --event @-, or \
save it for a test.

The kinds are those of the Python module lambdasim.events, and each option is a keyword argument of its builder: \
lambdasim event api --method GET --path '/person/{id}' --path-parameters '{"id": "1"}' is \
events.api("GET", "/person/{id}", path_parameters={"id": "1"}). Options that take a mapping or a list take JSON \
(or @FILE); --body and other text options take the text as it is.

With --template, KIND is the name of one of the function's events (its Events in a SAM template): lambdasim event \
GetPerson --template template.yaml --path-parameters '{"id": "1"}' prints the event of that route, with its method \
and path, as fn.event("GetPerson", path_parameters={"id": "1"}) returns it."""
EPILOG = ("Exit status: 0 when the event is printed; 2 on a usage error (an unknown kind, event or option, a bad "
          "value, a template that cannot be read).")


def _doc_args(builder: Callable[..., Any]) -> dict[str, str]:
    """The ``Args:`` section of ``builder``'s docstring: name -> description."""
    doc = inspect.getdoc(builder) or ""
    section = doc.partition("Args:")[2]
    found: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        match = re.match(r"    (\w+): (.*)", line)
        if match:
            name, found[match.group(1)] = match.group(1), match.group(2)
        elif name and line.startswith("        "):
            found[name] += " " + line.strip()
        elif line.strip():
            break
    return found


def _kind_of(hint: Any) -> str:
    """How an option's value is read: ``bool``, ``int``, ``text`` (as given) or ``json``."""
    args = set(typing.get_args(hint)) - {type(None)} if isinstance(hint, types.UnionType) or typing.get_origin(
        hint) is typing.Union else {hint}
    if args == {bool}:
        return "bool"
    if args == {int}:
        return "int"
    if str in args:
        return "text"
    return "json"


def _json_option(option: str) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return read_json_argument(text, option)
        except ConfigError as e:  # argparse would print only "invalid value"
            raise argparse.ArgumentTypeError(str(e)) from None

    return read


def _kind_parser(prog: str, builder: Callable[..., Any]) -> argparse.ArgumentParser:
    """The options of one kind: its builder's keyword arguments."""
    doc = inspect.getdoc(builder) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ").replace("``", "")
    parser = argparse.ArgumentParser(prog=prog, description=summary, formatter_class=HelpFormatter)
    described = _doc_args(builder)
    hints = typing.get_type_hints(builder)
    for param in inspect.signature(builder).parameters.values():
        option = "--" + param.name.replace("_", "-")
        kind = _kind_of(hints[param.name])
        default = "" if param.default in (None, inspect.Parameter.empty) else f" (default: {param.default})"
        text = described.get(param.name, "").replace("``", "") + default
        if kind == "bool":
            parser.add_argument(option, dest=param.name, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        elif kind == "int":
            parser.add_argument(option, dest=param.name, type=int, metavar="N", help=text)
        elif kind == "text":
            parser.add_argument(option, dest=param.name, metavar="TEXT", help=text)
        else:
            parser.add_argument(option, dest=param.name, type=_json_option(option), metavar="JSON",
                                help=f"{text} (JSON, or @FILE)")
    return parser


def _template_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", "-t", help="a SAM template or serverless.yml: KIND is then the name of one of "
                                                 "the function's events (Events in SAM; in a serverless.yml the "
                                                 "event's key, numbered when there are several: http, sqs-1, sqs-2)")
    parser.add_argument("--function", help="the function's logical ID (SAM) or key (Serverless) in --template "
                                           "(default: its only function, else the one that has the event KIND)")
    add_parameter_overrides_argument(parser)
    add_env_argument(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", metavar="KIND", help=f"the event source: {', '.join(KINDS)} (lambdasim event KIND "
                                                     "--help describes it and lists its options); with --template, "
                                                     "the name of one of the function's events")
    parser.add_argument("fields", nargs=argparse.REMAINDER, metavar="--FIELD VALUE",
                        help="the builder's keyword arguments, e.g. --path-parameters '{\"id\": \"1\"}' "
                             "(lambdasim event KIND --help lists them)")
    _template_options(parser)


def run(args: argparse.Namespace) -> int:
    # The template's options may also follow KIND, among the builder's.
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _template_options(pre)
    given, rest = pre.parse_known_args(args.fields, namespace=args)
    if given.template is None:
        builder = KINDS.get(args.kind)
        if builder is None:
            raise ConfigError(f"no event kind {args.kind!r}; the kinds are: {', '.join(KINDS)} (or, with --template, "
                              "the name of one of the function's events).")
        fields = vars(_kind_parser(f"lambdasim event {args.kind}", builder).parse_args(rest))
        event = build(args.kind, **{k: v for k, v in fields.items() if v is not None})
    else:
        event = _template_event(given, rest)
    sys.stdout.write(json.dumps(event, indent=2) + "\n")
    return 0


def _template_event(args: argparse.Namespace, rest: list[str]) -> Any:
    """The event ``args.kind`` of ``--template``'s function, with the fields of ``rest``."""
    from lambdasim._commands import CLI_HINTS
    from lambdasim._template_events import event_of
    from lambdasim._templates import FunctionNotFound, load_function

    environment = env_argument(args.env)
    parameters = parameters_argument(args.parameter_overrides) or None

    def load(name: str | None) -> TemplateFunction:
        return load_function(args.template, name, environment=environment or None, layers=(), parameters=parameters,
                             hints=CLI_HINTS)

    try:
        function = load(args.function)
    except FunctionNotFound as e:
        if args.function is not None:
            raise
        function = _function_with_event(args.template, args.kind, load, e)
    found = function.events.get(args.kind)
    if found is None or found.kind is None:
        return event_of(function.name, function.events, args.kind, {})  # says what is wrong
    parser = _kind_parser(f"lambdasim event {args.kind} --template {args.template}", KINDS[found.kind])
    fields = vars(parser.parse_args(rest))
    return found.event(**{k: v for k, v in fields.items() if v is not None})


def _function_with_event(template: str, kind: str, load: Callable[[str], TemplateFunction],
                         error: ConfigError) -> TemplateFunction:
    """The one function of ``template`` that has the event ``kind`` (``error``, which asks which function,
    when none or several have it): an event's name often says which function it is for."""
    from lambdasim._templates import function_keys

    display, names = function_keys(template)
    having = []
    for name in names:
        try:
            function = load(name)
        except ConfigError:  # a function that cannot be read cannot be the one meant
            continue
        if kind in function.events:
            having.append(function)
    if len(having) == 1:
        return having[0]
    if having:
        raise ConfigError(f"{display}: the event {kind!r} is in {len(having)} functions: "
                          f"{', '.join(f.name for f in having)}; name one with --function LOGICAL_ID.")
    raise error
