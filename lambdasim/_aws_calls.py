"""Calls of any boto3 API on the simulator's AWS (moto), as a file writes them: ``{service: dynamodb,
call: put_item, args: {...}}``. A scenario's ``aws:`` step takes one (seeding data), ``--setup FILE`` of
``lambdasim invoke``, ``detect`` and ``chaos`` a list (of calls, or of ``aws:`` steps). One generic form,
checked against botocore's service models when the file is read: the service, the operation (``put_item``
or ``PutItem``) and the arguments."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdasim._source import Node, did_you_mean, load_yaml, read_text

if TYPE_CHECKING:
    from lambdasim._simulator import Simulator

__all__ = ["CALL_KEYS", "SETUP_HELP", "AwsCall", "load_setup", "parse_call", "setup_function"]

CALL_KEYS = ("service", "call", "args")
SETUP_HELP = ("a YAML or JSON list of boto3 calls made on the simulator's AWS before the function is invoked, each "
              "{service: dynamodb, call: put_item, args: {...}} or, as a scenario's step, aws: {service: ...} (to "
              "seed the template's tables and buckets)")


@functools.cache
def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def _operations(service: str) -> dict[str, str]:
    """boto3's method names of ``service``'s operations: ``{"put_item": "PutItem", ...}``."""
    from botocore import xform_name

    model = _session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


@dataclass(frozen=True)
class AwsCall:
    """``sim.boto3_client(service).<method>(**args)``; ``node`` is where the file writes it."""

    service: str
    method: str
    args: dict[str, Any]
    node: Node

    def run(self, sim: Simulator) -> Any:
        """Make the call; a failure (the service's error) is the file's mistake, at its line."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = sim.boto3_client(self.service)
        try:
            return getattr(client, self.method)(**self.args)
        except (ClientError, BotoCoreError) as e:
            raise self.node.error(f"{self.service}.{self.method} failed: {e}") from None

    def __str__(self) -> str:
        return f"{self.service}.{self.method}"


def parse_call(node: Node) -> AwsCall:
    """``{service, call, args}`` checked against botocore: errors name the key, with botocore's lists."""
    f = node.fields(CALL_KEYS, required=("service", "call"))
    service = f["service"].as_str("use a boto3 service name, e.g. dynamodb, s3, sqs")
    services = _session().get_available_services()
    if service not in services:
        raise f["service"].error(f"{service!r} is not a service boto3 knows{did_you_mean(service, services)}; "
                                 f"botocore's services are: {', '.join(services)}")
    operations = _operations(service)
    call = f["call"].as_str("use a boto3 method of the service, e.g. put_item")
    method = call if call in operations else next((m for m, name in operations.items() if name == call), None)
    if method is None:
        raise f["call"].error(f"{call!r} is not an operation of {service}{did_you_mean(call, list(operations))}; "
                              f"its operations are: {', '.join(operations)}")
    args: dict[str, Any] = {}
    if "args" in f and f["args"].value is not None:
        args_node = f["args"]
        value = args_node.as_json()
        if not isinstance(value, dict):
            raise args_node.error(f"expected a mapping of {service}.{method}'s parameters, e.g. {{TableName: t}}")
        args = value
        from botocore.validate import ParamValidator

        shape = _session().get_service_model(service).operation_model(operations[method]).input_shape
        report = ParamValidator().validate(args, shape) if shape is not None else None
        if report is not None and report.has_errors():
            raise args_node.error(f"not valid for {service}.{method}: {report.generate_report()}")
    return AwsCall(service, method, args, node)


def load_setup(path: str | os.PathLike[str], option: str = "--setup") -> list[AwsCall]:
    """The calls of a YAML or JSON file holding a list of ``{service, call, args}``."""
    display = os.fspath(path)
    text = read_text(display, display, f"the {option} file")
    doc = load_yaml(text, display)
    root = Node(doc, display, 1, "", Path(display).parent)
    if not isinstance(doc, list):
        raise root.error(f"expected a list of calls, each {{{', '.join(CALL_KEYS)}}} (or aws: {{...}}, as a "
                         "scenario's step), e.g. - {service: dynamodb, call: put_item, args: {TableName: t, Item: "
                         "{id: {S: '1'}}}}")
    return [_setup_call(item) for item in root.items()]


def _setup_call(item: Node) -> AwsCall:
    """A call of a setup file: ``{service, call, args}``, or a scenario's step ``aws: {service, call, args}``
    (so that steps copied from a scenario work as they are)."""
    if isinstance(item.value, dict) and "aws" in item.value:
        item = item.fields(("aws",), required=("aws",))["aws"]
    return parse_call(item)


def setup_function(calls: Sequence[AwsCall], template: str | os.PathLike[str] | None = None,
                   parameters: Any = None) -> Callable[[Simulator], None]:
    """What runs the calls in a Simulator: the template's resources are created first, so the calls can fill
    them (deploying the function then reuses them)."""

    def setup(sim: Simulator) -> None:
        if template is not None:
            from lambdasim._template_resources import create_resources

            create_resources(sim, template, parameters)
        for call in calls:
            call.run(sim)

    return setup

