"""``lambdasim detect``: compare warm and fresh instances (the comparison is :mod:`lambdasim._detect`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lambdasim._aws_calls import SETUP_HELP, load_setup, setup_function
from lambdasim._commands import (
    add_env_argument,
    add_layer_arguments,
    add_model_arguments,
    add_network_argument,
    add_package_argument,
    add_parameter_overrides_argument,
    add_sandbox_argument,
    model_settings,
    optional,
    read_template_function,
    services_help,
    template_overrides,
)
from lambdasim._errors import LambdaSimError
from lambdasim._source import env_argument, read_json_argument, services_text

HELP = "compare warm and fresh instances: find results that depend on warm state"
DESCRIPTION = """\
Find results that depend on state a warm instance keeps.

On Lambda an invocation may land on a warm instance, whose module globals and /tmp still hold what earlier \
invocations left, or on a fresh one. A handler whose result depends on which is a bug waiting for production's \
routing. detect runs the same events once with warm routing (one instance, reused) and once with fresh routing (a new \
instance for every invocation), compares the outcomes, and names every read of a /tmp file that another invocation \
wrote.

An invocation that returns an error in both runs (the same error warm and fresh) is no warm/fresh difference, but no \
success either: it is listed apart, under FAILED, with its error and where it was raised."""
EPILOG = """\
Exit status: 0 when every invocation succeeds and gives the same result warm and fresh (OK); 1 when an outcome \
differs between warm and fresh (DIFFERENT), when a SnapStart function's restored instances share what Init made \
(CLONED), or when invocations return an error in both runs (FAILED); 2 on a usage error (bad arguments, code, \
template or events). The last line of the report, and the JSON's "verdict" (ok, different, cloned or failed), tell \
which.

A SnapStart function (--snap-start, or the template's SnapStart) is run a third time on fresh instances that each \
run Init (SnapStart off): results that are the same on every restored instance but differ between separately \
initialised ones are state the snapshot clones (CLONED). A function with tenant isolation needs --tenant-id."""

_DEFAULT_REPEAT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("handler", nargs="?", help="module.function, e.g. app.main.handler (or from --template)")
    parser.add_argument("--code-dir", help="the folder with the handler's code (default: . or from --template)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--events", metavar="FILE", help="a JSON file with a list of events, invoked in order "
                                                         "('-': stdin)")
    source.add_argument("--event", "-e", help=f"one event as JSON or @FILE (@-: stdin), invoked --repeat times "
                                              f"(default: {{}} {_DEFAULT_REPEAT} times)")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help=f"how often to invoke --event (default: {_DEFAULT_REPEAT})")
    parser.add_argument("--template", "-t", metavar="FILE",
                        help="deploy from this SAM template or serverless.yml (or its folder)")
    parser.add_argument("--function", metavar="LOGICAL_ID",
                        help="the function in --template: its logical ID (SAM) or key (Serverless), or its name on "
                             "Lambda; may be left out when the template defines one function")
    add_parameter_overrides_argument(parser)
    add_layer_arguments(parser)
    parser.add_argument("--services", metavar="LIST",
                        help=services_help("backing services (each run starts its own)"))
    parser.add_argument("--memory", type=int, help="memory in MB")
    parser.add_argument("--timeout", type=float, help="timeout in seconds")
    parser.add_argument("--ephemeral-storage", type=int, help="/tmp size in MB")
    parser.add_argument("--runtime", help="the function's runtime, e.g. python3.12 (for --snap-start on an older "
                                          "Python)")
    parser.add_argument("--tenant-id", metavar="ID", help="the tenant id of every invocation (a function with "
                                                          "tenant isolation needs one)")
    add_model_arguments(parser)
    add_env_argument(parser)
    add_sandbox_argument(parser)
    add_network_argument(parser)
    add_package_argument(parser)
    parser.add_argument("--setup", metavar="FILE", help=SETUP_HELP + " (in each run)")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids (default: 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the report, with both traces, as JSON")


def _read_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LambdaSimError(f"{where}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def _read_file(path: str, option: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise LambdaSimError(f"{option} {path}: cannot read it: {e.strerror}") from None


def load_events(args: argparse.Namespace) -> list[Any]:
    """The events a ``detect`` namespace asks for: ``events`` (a file) or ``event`` (JSON or @FILE)."""
    path = getattr(args, "events", None)
    repeat = getattr(args, "repeat", None)
    if path:
        loaded = _read_json(_read_file(path, "--events"), path)
        events = loaded if isinstance(loaded, list) else [loaded] * (repeat or _DEFAULT_REPEAT)
    else:
        text = getattr(args, "event", None) or "{}"
        events = [read_json_argument(text, "--event")] * (repeat or _DEFAULT_REPEAT)
    if repeat is not None and repeat < 1:
        raise LambdaSimError(f"--repeat {repeat}: use 1 or more.")
    if not events:
        raise LambdaSimError(f"--events {path}: the list is empty; give at least one event.")
    return events


def _deploy_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for attr, key in (("memory", "memory_mb"), ("timeout", "timeout_s"), ("ephemeral_storage", "ephemeral_storage_mb"),
                      ("name", "name"), ("runtime", "runtime")):
        value = getattr(args, attr, None)
        if value is not None:
            config[key] = value
    env = env_argument(getattr(args, "env", None) or ())
    if env:
        config["environment"] = env
    layers = getattr(args, "layer", None)
    if layers:
        config["layers"] = list(layers)
    config.update(template_overrides(args))  # --no-layers, --parameter-overrides
    config.update(model_settings(args))
    return config


def run(args: argparse.Namespace) -> int:
    """``lambdasim detect``: print the report; 0 when every invocation succeeds the same way warm and fresh,
    1 when an outcome differs or invocations fail in both runs (see EPILOG).

    Reads ``handler``, ``code_dir``, ``events`` or ``event``, and optionally ``repeat``,
    ``template``, ``function``, ``services``, ``memory``, ``timeout``, ``ephemeral_storage``,
    ``env``, ``layer``, ``no_layers``, ``parameter_overrides``, ``name``, ``runtime``, ``tenant_id``, the
    execution models' settings (``snap_start`` ...),
    ``sandbox``, ``network``, ``seed`` and ``json`` (see :func:`add_arguments`).
    Bad input raises LambdaSimError (cli.main prints it and exits 2).
    """
    _, detect = optional("lambdasim._detect", "detect", "lambdasim detect")
    template = getattr(args, "template", None)
    handler = getattr(args, "handler", None)
    code_dir = getattr(args, "code_dir", None)
    config = _deploy_config(args)
    function = getattr(args, "function", None)
    if template is not None and function is None and handler is not None and "." not in handler:
        handler, function = None, handler  # `detect -t template.yaml Fn`, as invoke: a handler always has a dot
    if template is None:
        if not handler:
            raise LambdaSimError("detect needs a handler (module.function), or --template (and --function).")
        code_dir = code_dir or "."
    else:
        # Read here, so that its errors name this command's flags, before anything starts.
        function = read_template_function(template, function, environment=config.get("environment"),
                                          layers=config.get("layers"), parameters=config.get("parameters")).name
    events = load_events(args)
    setup_file = getattr(args, "setup", None)
    # Each run's template resources are created first, so that the calls can fill them.
    setup = setup_function(load_setup(setup_file), template, config.get("parameters")) if setup_file else None
    report = detect(handler, code_dir, events, template=template, function=function,
                    setup=setup,
                    services=services_text(getattr(args, "services", None)) or None,
                    sandbox=getattr(args, "sandbox", None) or "auto", seed=getattr(args, "seed", None) or 0,
                    network=getattr(args, "network", None) or "isolated",
                    package="strict" if getattr(args, "strict_package", False) else "host",
                    tenant_id=getattr(args, "tenant_id", None), **config)
    sys.stdout.write(report.render() + "\n")
    out = getattr(args, "json", None)
    if out:
        try:
            with open(out, "w", encoding="utf-8") as f:
                json.dump(report.to_dict(), f, indent=1, default=repr)
        except OSError as e:
            raise LambdaSimError(f"--json {out}: cannot write it: {e.strerror}") from None
        sys.stdout.write(f"report written to {out}\n")
    status: int = report.exit_status
    return status
