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
from typing import Any

from lambdasim._commands import HelpFormatter
from lambdasim._errors import ConfigError
from lambdasim._source import read_json_argument
from lambdasim.events import KINDS, build

HELP = "print an event of an event source (API Gateway, SQS, S3 ...) as JSON, like sam local generate-event"
DESCRIPTION = """\
Print the event an event source sends a function, as JSON on stdout: pipe it to lambdasim invoke --event @-, or \
save it for a test.

The kinds are those of the Python module lambdasim.events, and each option is a keyword argument of its builder: \
lambdasim event api --method GET --path '/person/{id}' --path-parameters '{"id": "1"}' is \
events.api("GET", "/person/{id}", path_parameters={"id": "1"}). Options that take a mapping or a list take JSON \
(or @FILE); --body and other text options take the text as it is."""
EPILOG = "Exit status: 0 when the event is printed; 2 on a usage error (an unknown kind or option, a bad value)."


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND",
                                  help=f"the event source: {', '.join(KINDS)}")
    for name, builder in KINDS.items():
        doc = inspect.getdoc(builder) or ""
        summary = doc.split("\n\n")[0].replace("\n", " ").replace("``", "")
        sub = kinds.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)
        described = _doc_args(builder)
        hints = typing.get_type_hints(builder)
        for param in inspect.signature(builder).parameters.values():
            option = "--" + param.name.replace("_", "-")
            kind = _kind_of(hints[param.name])
            default = "" if param.default in (None, inspect.Parameter.empty) else f" (default: {param.default})"
            text = described.get(param.name, "").replace("``", "") + default
            if kind == "bool":
                sub.add_argument(option, dest=param.name, action=argparse.BooleanOptionalAction, default=None,
                                 help=text)
            elif kind == "int":
                sub.add_argument(option, dest=param.name, type=int, metavar="N", help=text)
            elif kind == "text":
                sub.add_argument(option, dest=param.name, metavar="TEXT", help=text)
            else:
                sub.add_argument(option, dest=param.name, type=_json_option(option), metavar="JSON",
                                 help=f"{text} (JSON, or @FILE)")
        sub.set_defaults(fields=[p for p in inspect.signature(builder).parameters])


def fields_of(args: argparse.Namespace) -> dict[str, Any]:
    """The builder's keyword arguments given on the command line."""
    return {name: getattr(args, name) for name in args.fields if getattr(args, name, None) is not None}


def run(args: argparse.Namespace) -> int:
    event = build(args.kind, **fields_of(args))
    sys.stdout.write(json.dumps(event, indent=2) + "\n")
    return 0

