"""A template's non-function resources, created in the simulator's moto when a function is deployed from it.

:func:`create_resources` takes the resources of a SAM/CloudFormation template (or of a Serverless
config's ``resources:`` section) that are not functions, and creates them as one CloudFormation stack
in moto (``sim.services["aws"]``, started for it), through moto's own CloudFormation implementation,
wherever that covers the type. What moto's CloudFormation does not do is done here:
``AWS::Serverless::SimpleTable`` becomes the ``AWS::DynamoDB::Table`` SAM makes of it, and
``AWS::SecretsManager::Secret`` is created with ``CreateSecret`` (its intrinsic functions evaluated here);
a ``!Ref`` of an event bus is given to moto as the bus's name (moto 5 fails on a rule's
``EventBusName: !Ref Bus``). Any other type is not created, with a warning naming it and its line. A
resource that moto fails on (found by trying each in a stack of its own) or a secret that cannot be
created is left out, with a warning naming it, its type and line, with those that use it; the others are
created.

The returned :class:`_Stack` is what ``!Ref``, ``!GetAtt`` and ``${X.Attribute}`` of the template's
resources resolve to (see :class:`lambdasim._cfn.Stack`): the physical ids moto gave, and attributes
that moto's CloudFormation computed (as stack outputs). A second function of the same template
reuses the stack, while it exists in moto (a flush of moto, as between two tests, empties it: the
next deploy creates it again).

Not created as resources: functions (they are what lambdasim deploys; a ``!Ref`` to one gives its name
on Lambda: its ``FunctionName``, else CloudFormation's ``<stack>-<LogicalId>-<RANDOM>`` (from the seed), or
the Serverless Framework's ``service-stage-function``), layers, IAM roles and policies (lambdasim
does not enforce IAM: a ``!Ref``/``!GetAtt .Arn`` of a role gives a role's name/ARN), API Gateway APIs
and routes, capacity providers, and a function's permissions, versions, aliases, URLs and event source
mappings.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import string
import tomllib
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambdasim._cfn import _NO_VALUE, _Context, _Intrinsic, _intrinsic, _Loc, _Resolver
from lambdasim._errors import ConfigError, ServiceError
from lambdasim._model import ACCOUNT_ID
from lambdasim._source import SourceError, YamlMap, YamlSeq
from lambdasim._templates import _SAM_KEYS, PYTHON_HINTS, Hints, _find_file, _read_yaml, _Serverless, sls_logical_id

if TYPE_CHECKING:
    from lambdasim._simulator import Simulator

__all__ = ["TemplateResourceWarning", "create_resources", "preview_resources"]


class TemplateResourceWarning(UserWarning):
    """A resource of a template that lambdasim does not create (its type, file:line)."""


_FUNCTIONS = ("AWS::Serverless::Function", "AWS::Lambda::Function")
_SIMPLE_TABLE = "AWS::Serverless::SimpleTable"
_SECRET = "AWS::SecretsManager::Secret"
_ROLE = "AWS::IAM::Role"
# Parts of functions (or of what invokes them), not resources a function's code uses: not created.
_NOT_RESOURCES = (
    "AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion", "AWS::Serverless::CapacityProvider",
    "AWS::Lambda::CapacityProvider", "AWS::Serverless::Api", "AWS::Serverless::HttpApi", "AWS::Lambda::Permission",
    "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Version", "AWS::Lambda::Alias", "AWS::Lambda::Url",
    "AWS::Lambda::EventInvokeConfig",
)
_NOT_RESOURCE_PREFIXES = ("AWS::IAM::", "AWS::ApiGateway::", "AWS::ApiGatewayV2::")
# The types moto's CloudFormation covers, where moto is not importable here (a moto in Docker).
_MOTO_FALLBACK = frozenset({"AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SNS::Topic",
                            "AWS::SSM::Parameter", "AWS::Events::EventBus", "AWS::Kinesis::Stream",
                            "AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::Events::Rule"})
# Attributes moto's CloudFormation does not give (or fails on), and how they are found here instead.
_REF_IS = {("AWS::SQS::Queue", "QueueUrl"), ("AWS::SNS::Topic", "TopicArn")}
_OWN = {("AWS::SSM::Parameter", "Value"), ("AWS::SSM::Parameter", "Type")}
# The property that names a resource: where the template gives none, lambdasim gives the name CloudFormation
# would (<stack>-<LogicalId>-<12 random characters>), drawn from the simulator's seed, so that a run repeats.
_NAME_PROPERTY = {"AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName", "AWS::SQS::Queue": "QueueName",
                  "AWS::SNS::Topic": "TopicName", "AWS::Kinesis::Stream": "Name", "AWS::Logs::LogGroup": "LogGroupName",
                  "AWS::SSM::Parameter": "Name"}
# moto gives these no physical id: their Ref is this attribute.
_REF_BY_ATTRIBUTE = {"AWS::Events::EventBus": "Name"}


def covered_types() -> frozenset[str]:
    """The resource types lambdasim creates: those of moto's CloudFormation, SimpleTable and Secret."""
    try:
        from moto.cloudformation.parsing import get_model_map
    except ImportError:  # pragma: no cover - moto runs elsewhere
        moto = _MOTO_FALLBACK
    else:
        moto = frozenset(k for k in get_model_map() if k.count("::") == 2 and k != "AWS::SERVICE::RESOURCE")
    return moto | {_SIMPLE_TABLE, _SECRET}


def _moto_attribute(kind: str, attribute: str) -> bool:
    try:
        from moto.cloudformation.parsing import get_model_map
    except ImportError:  # pragma: no cover
        return True
    model = get_model_map().get(kind)
    return model is not None and bool(model.has_cfn_attr(attribute))


@dataclass
class _Stack:
    """The created resources: what !Ref and !GetAtt of them give (implements lambdasim._cfn.Stack)."""

    name: str
    kinds: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    stack_id: str | None = None
    creates_resources: bool = False
    """Whether the template has resources to create in moto (a preview's answer too)."""

    def ref(self, logical_id: str) -> str | None:
        return self.refs.get(logical_id)

    def attribute(self, logical_id: str, attribute: str) -> str | None:
        return self.attributes.get((logical_id, attribute))

    def why(self, logical_id: str, attribute: str | None) -> str:
        if logical_id in self.reasons:
            return self.reasons[logical_id]
        kind = self.kinds.get(logical_id)
        if kind is None:
            return f"there is no parameter or resource {logical_id!r} in the template"
        if attribute is None:
            return (f"moto's CloudFormation created no {logical_id!r} ({kind}): its Condition is false, or moto "
                    "gave it no physical id")
        known = sorted(a for (r, a) in self.attributes if r == logical_id)
        return (f"lambdasim does not know the attribute {attribute!r} of {logical_id!r} ({kind}): moto's "
                f"CloudFormation does not give it" + (f" (it gives {', '.join(known)})" if known else ""))


@dataclass
class _Plan:
    """A template's resources, sorted by what becomes of them, and the stack template for moto."""

    display: str
    stack_name: str
    region: str
    kinds: dict[str, str]
    lines: dict[str, int]
    functions: dict[str, str | None]  # logical id: the function's name (None: CloudFormation generates it)
    moto: dict[str, Any]  # logical id: the resource for moto's CloudFormation, JSON
    secrets: dict[str, dict[str, Any]]  # logical id: properties
    others: dict[str, str]  # logical id: why it is not created
    roles: dict[str, str]  # logical id: role name
    template: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    prefix: str = "Resources"
    """Where the resources are in the file (``resources.Resources`` in a Serverless config)."""
    resolver: _Resolver | None = None
    """The template's intrinsic functions (and Serverless variables), for what lambdasim creates itself."""

    def function_name(self, logical_id: str) -> str:
        """The function's name on Lambda: its own, or the one CloudFormation generates in the (final) stack."""
        name = self.functions[logical_id]
        return name if name is not None else _generated_name(self.stack_name, logical_id, _FUNCTIONS[1], {},
                                                             self.seed)

    def stack(self) -> _Stack:
        """The values known without creating anything (functions, roles) and the reasons."""
        stack = _Stack(self.stack_name, dict(self.kinds), reasons=dict(self.others))
        for logical_id in self.functions:
            name = self.function_name(logical_id)
            stack.refs[logical_id] = name
            stack.attributes[(logical_id, "Arn")] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
        for logical_id, name in self.roles.items():
            stack.refs[logical_id] = name
            stack.attributes[(logical_id, "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        return stack


def _json(value: Any, text: Callable[[str, _Loc], Any] | None = None, loc: _Loc | None = None) -> Any:
    """A template's value as CloudFormation's JSON: tags in their long form, Serverless variables resolved
    (``text``, told where each string is: ``loc`` is the value's)."""
    loc = loc or _Loc("", 0)
    if isinstance(value, _Intrinsic):
        arg = _json(value.value, text, _Loc(loc.key, value.line or loc.line))
        return {"Condition": arg} if value.name == "Condition" else {value.name: arg}
    if isinstance(value, dict):
        return {str(k): _json(v, text, loc.child(value, str(k)) if isinstance(value, YamlMap)
                              else _Loc(f"{loc.key}.{k}", loc.line)) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v, text, loc.item(value, i) if isinstance(value, YamlSeq) else loc)
                for i, v in enumerate(value)]
    if isinstance(value, str) and text is not None:
        resolved = text(value, loc)
        return resolved if isinstance(resolved, str) else _json(resolved)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # a date


_SUB_ATTRIBUTE = re.compile(r"\$\{([A-Za-z0-9]+)\.([A-Za-z0-9.]+)\}")
_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, _Intrinsic):
        yield from _walk(value.value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _attributes_used(doc: Any) -> set[tuple[str, str]]:
    """Every (resource, attribute) a !GetAtt or a ${X.Attribute} of the template names."""
    used: set[tuple[str, str]] = set()
    for value in _walk(doc):
        call = _intrinsic(value)
        if call is not None and call[0] == "Fn::GetAtt":
            arg = call[1].split(".", 1) if isinstance(call[1], str) else call[1]
            if isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg):
                used.add((arg[0], arg[1]))
        elif isinstance(value, str):
            used.update((m.group(1), m.group(2)) for m in _SUB_ATTRIBUTE.finditer(value))
    return used


def _substitute(value: Any, known: Callable[[str, str | None], str | None]) -> Any:
    """``value`` (JSON) with !Ref / !GetAtt / ${...} of resources moto does not create replaced by their values."""
    if isinstance(value, list):
        return [_substitute(v, known) for v in value]
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            attribute = match.group(2) if match.lastindex == 2 else None
            found = known(match.group(1), attribute)
            return match.group(0) if found is None else found

        return _SUB_NAME.sub(sub, _SUB_ATTRIBUTE.sub(sub, value))
    if not isinstance(value, dict):
        return value
    if list(value) == ["Ref"] and isinstance(value["Ref"], str):
        found = known(value["Ref"], None)
        return value if found is None else found
    if list(value) == ["Fn::GetAtt"] and isinstance(value["Fn::GetAtt"], list) and len(value["Fn::GetAtt"]) == 2:
        name, attribute = value["Fn::GetAtt"]
        found = known(name, attribute) if isinstance(name, str) and isinstance(attribute, str) else None
        return value if found is None else found
    if list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        return {"Fn::Sub": _substitute(value["Fn::Sub"], known)}
    return {k: _substitute(v, known) for k, v in value.items()}


def _simple_table(props: dict[str, Any]) -> dict[str, Any]:
    """An ``AWS::Serverless::SimpleTable``'s properties as the ``AWS::DynamoDB::Table`` SAM makes of it."""
    key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
    kind = {"String": "S", "Number": "N", "Binary": "B"}.get(str(key.get("Type", "String")), "S")
    table: dict[str, Any] = {
        "AttributeDefinitions": [{"AttributeName": key.get("Name", "id"), "AttributeType": kind}],
        "KeySchema": [{"AttributeName": key.get("Name", "id"), "KeyType": "HASH"}],
    }
    if "ProvisionedThroughput" in props:
        table["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    else:
        table["BillingMode"] = "PAY_PER_REQUEST"
    for name in ("TableName", "SSESpecification", "Tags"):
        if name in props:
            table[name] = ([{"Key": k, "Value": v} for k, v in props[name].items()]
                           if name == "Tags" and isinstance(props[name], dict) else props[name])
    return table


def _sam_stack_name(folder: str) -> str:
    """The stack's name: samconfig.toml's stack_name, else the project folder's name (as sam init names it)."""
    config = os.path.join(folder, "samconfig.toml")
    if os.path.isfile(config):
        try:
            with open(config, "rb") as f:
                data = tomllib.load(f)
            for command in ("deploy", "global"):
                name = data.get("default", {}).get(command, {}).get("parameters", {}).get("stack_name")
                if isinstance(name, str) and name:
                    return name
        except (OSError, tomllib.TOMLDecodeError):
            pass
    name = re.sub(r"[^A-Za-z0-9-]+", "-", os.path.basename(os.path.abspath(folder))).strip("-")
    return name if re.match(r"[A-Za-z]", name) else f"lambdasim-{name}".rstrip("-")


def _generated_name(stack: str, logical_id: str, kind: str, props: dict[str, Any], seed: int | None) -> str:
    """The physical name CloudFormation gives a resource the template does not name."""
    rng = random.Random(f"{seed}:{stack}:{logical_id}") if seed is not None else random.SystemRandom()
    suffix = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(12))
    if kind == "AWS::SSM::Parameter":
        return f"CFN-{logical_id}-{suffix}"
    if kind == _FUNCTIONS[1]:  # Lambda's names have at most 64 characters: the stack's and the logical ID's give way
        return f"{f'{stack}-{logical_id}'[:64 - len(suffix) - 1]}-{suffix}"
    name = f"{stack}-{logical_id}-{suffix}"
    if kind == "AWS::S3::Bucket":
        return name.lower()[:63]
    if kind == "AWS::SQS::Queue" and str(props.get("FifoQueue")).lower() == "true":
        return name[:75] + ".fifo"
    return name[:80] if kind in ("AWS::SQS::Queue", "AWS::SNS::Topic") else name


def _plan(path: str | os.PathLike[str], parameters: Mapping[str, Any] | None, region: str,
          seed: int | None = None, hints: Hints = PYTHON_HINTS) -> _Plan:
    display, file = _find_file(os.fspath(path))
    doc = _read_yaml(display, file)
    folder = os.path.dirname(file)
    params = dict(parameters or {})
    sam = any(k in doc for k in _SAM_KEYS)
    text: Callable[[str, _Loc], Any] | None = None
    functions: dict[str, str | None] = {}
    if sam:
        found = doc.get("Resources")
        resources = found if isinstance(found, YamlMap) else YamlMap()
        prefix, stack_name = "Resources", _sam_stack_name(folder)
        ctx = _Context(display, folder, doc, region, params, None, None, hints)
        resolver = _Resolver(ctx)
        resolver.pseudo["AWS::StackName"] = stack_name  # a FunctionName of !Sub "${AWS::StackName}-..."
        for logical_id, resource in resources.items():
            if isinstance(resource, YamlMap) and resource.get("Type") in _FUNCTIONS:
                props = resource.get("Properties")
                name = props.get("FunctionName") if isinstance(props, YamlMap) else None
                if name is not None:
                    try:
                        name = resolver.resolve(name, _Loc(f"Resources.{logical_id}.Properties.FunctionName", 0))
                    except ConfigError:
                        name = None
                functions[str(logical_id)] = name if isinstance(name, str) and name else None
    else:
        ctx = _Context(display, folder, doc, region, params, None, None, hints)
        reader = _Serverless(ctx)
        section = doc.get("resources")
        found = section.get("Resources") if isinstance(section, YamlMap) else None
        prefix = "resources.Resources"
        if section is not None and not isinstance(found, YamlMap):
            warnings.warn(TemplateResourceWarning(
                f"{display}:{doc.key_line('resources', 0)}: resources: lambdasim reads a mapping with Resources "
                "(a list of files, ${file(...)}, is not read): no resources are created"), stacklevel=4)
        resources = found if isinstance(found, YamlMap) else YamlMap()
        service = reader.value(doc.get("service"), _Loc("service", doc.key_line("service", 0)))
        if isinstance(service, dict):
            service = service.get("name")
        stage = reader.stage(_Loc("provider.stage", 0))
        stack_name = f"{service}-{stage}"
        defined = doc.get("functions")
        for key, definition in (defined if isinstance(defined, YamlMap) else YamlMap()).items():
            try:
                functions[sls_logical_id(str(key))] = reader.function_name(str(key), definition)
            except ConfigError:  # said when that function is read; here its name is only for !Ref of it
                functions[sls_logical_id(str(key))] = f"{stack_name}-{key}"

        text = reader.text
        resolver = reader.resolver

    covered = covered_types()
    plan = _Plan(display, stack_name, region, {}, {}, functions, {}, {}, {}, {}, seed=seed, prefix=prefix,
                 resolver=resolver)
    plan.kinds.update(dict.fromkeys(functions, "AWS::Lambda::Function"))
    for logical_id, resource in resources.items():
        logical_id = str(logical_id)
        line = resources.key_line(logical_id, resources.line)
        kind = resource.get("Type") if isinstance(resource, YamlMap) else None
        if not isinstance(kind, str):
            continue  # the function's reader reports what is wrong with it, if it is read
        plan.kinds[logical_id], plan.lines[logical_id] = kind, line
        if kind in _FUNCTIONS:
            continue
        if kind == _ROLE:
            props = resource.get("Properties")
            role = props.get("RoleName") if isinstance(props, YamlMap) else None
            plan.roles[logical_id] = role if isinstance(role, str) else f"{stack_name}-{logical_id}"
            continue
        if kind in _NOT_RESOURCES or kind.startswith(_NOT_RESOURCE_PREFIXES):
            plan.others[logical_id] = (f"{logical_id!r} is {kind}, which lambdasim does not create (it creates the "
                                       "resources that functions use, not functions' parts or IAM)")
            continue
        if kind not in covered:
            why = (f"{logical_id!r} is {kind}, which lambdasim does not create (moto's CloudFormation does not "
                   "cover the type)")
            plan.others[logical_id] = why
            warnings.warn(TemplateResourceWarning(f"{display}:{line}: {prefix}.{logical_id}: {kind} is not "
                                                  "created: moto's CloudFormation does not cover the type; a !Ref "
                                                  "or !GetAtt of it cannot be resolved"), stacklevel=4)
            continue
        res_loc = _Loc(f"{prefix}.{logical_id}", line)
        converted = {str(k): _json(v, text, res_loc.child(resource, str(k))) for k, v in resource.items()
                     if k in ("Type", "Properties", "Condition", "DependsOn")}
        props = converted.get("Properties") or {}
        if kind == _SECRET:
            plan.secrets[logical_id] = props
            continue
        if kind == _SIMPLE_TABLE:
            converted = {**converted, "Type": "AWS::DynamoDB::Table", "Properties": _simple_table(props)}
        name_property = _NAME_PROPERTY.get(converted["Type"])
        if name_property is not None and name_property not in converted.get("Properties", {}):
            props = converted.setdefault("Properties", {})
            props[name_property] = _generated_name(stack_name, logical_id, converted["Type"], props, seed)
        plan.moto[logical_id] = converted
    if sam:
        plan.template = {k: _json(doc[k]) for k in ("Mappings", "Conditions") if isinstance(doc.get(k), YamlMap)}
        declared = doc.get("Parameters")
        plan.template["Parameters"] = {}
        for name, spec in (declared if isinstance(declared, YamlMap) else YamlMap()).items():
            spec = _json(spec) if isinstance(spec, dict) else {}
            if name in params:
                plan.parameters[str(name)] = ",".join(map(str, params[name])) if isinstance(
                    params[name], list) else str(params[name])
            elif "Default" not in spec:
                continue  # not given and no Default: the resources cannot use it (moto would want a value)
            plan.template["Parameters"][str(name)] = spec
    outputs: dict[str, Any] = {}
    for logical_id, attribute in sorted(_attributes_used(doc)):
        kind = str(plan.moto.get(logical_id, {}).get("Type", ""))
        if kind and (kind, attribute) not in _REF_IS | _OWN and _moto_attribute(kind, attribute):
            outputs[f"A{len(outputs)}"] = {"Value": {"Fn::GetAtt": [logical_id, attribute]},
                                           "Description": f"{logical_id}.{attribute}"}
    for logical_id, resource in plan.moto.items():
        by = _REF_BY_ATTRIBUTE.get(resource["Type"])
        if by is not None:
            outputs[f"A{len(outputs)}"] = {"Value": {"Fn::GetAtt": [logical_id, by]},
                                           "Description": f"{logical_id}.{by}"}
    plan.template["Outputs"] = outputs
    return plan


def preview_resources(path: str | os.PathLike[str], parameters: Mapping[str, Any] | None = None,
                      region: str = "us-east-1", hints: Hints = PYTHON_HINTS) -> _Stack:
    """The template's resources as they will be, without creating them: for reading a template before the
    services start (a command's or a scenario's checks; ``hints`` as for load_function()). A resource's values
    are placeholders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TemplateResourceWarning)  # said again when they are created
        plan = _plan(path, parameters, region, hints=hints)
    stack = plan.stack()
    stack.creates_resources = bool(plan.moto or plan.secrets)
    for logical_id in [*plan.moto, *plan.secrets]:
        stack.refs[logical_id] = f"<{logical_id}: created at deploy>"
        for attribute in ("Arn", "StreamArn", "QueueUrl", "QueueName", "TopicArn", "TopicName", "Name", "Id",
                          "Value", "Type", "DomainName", "RegionalDomainName", "WebsiteURL"):
            stack.attributes[(logical_id, attribute)] = f"<{logical_id}.{attribute}: created at deploy>"
    return stack


_stacks: weakref.WeakKeyDictionary[Simulator, dict[tuple[str, str], _Stack]] = weakref.WeakKeyDictionary()


def create_resources(sim: Simulator, path: str | os.PathLike[str],
                     parameters: Mapping[str, Any] | None = None) -> _Stack:
    """The template's resources, created in ``sim``'s moto (once per template and parameters, while moto keeps
    them); see the module's docstring."""
    file = os.path.realpath(_find_file(os.fspath(path))[1])
    key = (file, json.dumps(dict(parameters or {}), sort_keys=True, default=str))
    made = _stacks.setdefault(sim, {})
    stack = made.get(key)
    if stack is not None and (stack.stack_id is None or _exists(sim, stack)):
        return stack
    plan = _plan(path, parameters, sim.region, sim.seed)
    taken = {s.name for k, s in made.items() if k[0] != file}
    base, n = plan.stack_name, 1
    while plan.stack_name in taken:
        n += 1
        plan.stack_name = f"{base}-{n}"
    stack = plan.stack()
    stack.creates_resources = bool(plan.moto or plan.secrets)
    if stack.creates_resources:
        try:
            _create(sim, plan, stack)
        except (ServiceError, _NotCreated) as e:
            # The function may not use them: it is deployed, and a !Ref to them says why it cannot be resolved.
            for logical_id in [*plan.moto, *(s for s in plan.secrets if s not in stack.refs)]:
                stack.refs.pop(logical_id, None)
                stack.reasons.setdefault(logical_id, f"{logical_id!r} was not created: {e}")
            warnings.warn(TemplateResourceWarning(f"{plan.display}: the template's resources were not created: {e}"),
                          stacklevel=3)
            stack.stack_id = None
    made[key] = stack
    return stack


class _NotCreated(Exception):
    """moto refused a resource."""


def _exists(sim: Simulator, stack: _Stack) -> bool:
    assert stack.stack_id is not None
    try:
        if stack.stack_id.startswith("secret:"):
            sim.boto3_client("secretsmanager").describe_secret(SecretId=stack.stack_id.removeprefix("secret:"))
            return True
        found = sim.boto3_client("cloudformation").describe_stacks(StackName=stack.name)["Stacks"]
    except Exception:  # noqa: BLE001 - moto was emptied (ValidationError: the stack does not exist)
        return False
    return any(s.get("StackId") == stack.stack_id and s.get("StackStatus") == "CREATE_COMPLETE" for s in found)


def _create(sim: Simulator, plan: _Plan, stack: _Stack) -> None:
    """Create the secrets (moto's CloudFormation does not), then the stack, and read what they are. A secret
    or a resource that cannot be created is left out with a warning naming it; the others are created."""
    sm = sim.boto3_client("secretsmanager")
    for secret, props in plan.secrets.items():
        try:
            arn = _create_secret(sm, plan, stack, secret, props)
        except _NotCreated as e:
            _left_out(plan, stack, [secret], str(e))
            continue
        stack.refs[secret] = stack.attributes[(secret, "Id")] = arn
        stack.stack_id = stack.stack_id or f"secret:{arn}"
    resources = {logical_id: _substitute(_after_buses(resource, plan),
                                         lambda name, attribute: _known(stack, plan, name, attribute))
                 for logical_id, resource in plan.moto.items()}
    client = sim.boto3_client("cloudformation")
    left_out = 0
    while resources:
        try:
            created, described, listed = _create_stack(client, plan, _stack_template(plan, resources))
            break
        except _NotCreated as e:
            _delete_stack(client, plan.stack_name)  # what moto created before it failed
            # Past a few, it is the template that moto fails on (its Parameters, Conditions ...), not a resource.
            culprit = _culprit(client, plan, resources) if left_out < _MAX_LEFT_OUT else None
            if culprit is None:
                raise
            left_out += 1
            reason = str(e).partition("): ")[2] or str(e)
            out = [culprit, *_dependents(resources, culprit)]
            _left_out(plan, stack, out, reason)
            resources = {k: v for k, v in resources.items() if k not in out}
    else:
        return
    stack.stack_id = created["StackId"]
    for resource in listed:
        logical_id, physical = resource.get("LogicalResourceId"), resource.get("PhysicalResourceId")
        if logical_id in plan.moto and physical:
            stack.refs[logical_id] = physical
    for output in described.get("Outputs") or []:
        logical_id, _, attribute = str(output.get("Description", "")).partition(".")
        stack.attributes[(logical_id, attribute)] = str(output["OutputValue"])
    for logical_id, resource in plan.moto.items():
        kind = resource["Type"]
        if kind in _REF_BY_ATTRIBUTE and (logical_id, _REF_BY_ATTRIBUTE[kind]) in stack.attributes:
            stack.refs[logical_id] = stack.attributes[(logical_id, _REF_BY_ATTRIBUTE[kind])]
        if logical_id not in stack.refs:
            continue
        for pair in _REF_IS:
            if pair[0] == kind:
                stack.attributes[(logical_id, pair[1])] = stack.refs[logical_id]
        if kind == "AWS::SSM::Parameter":
            found = sim.boto3_client("ssm").get_parameter(Name=stack.refs[logical_id])["Parameter"]
            stack.attributes[(logical_id, "Value")] = found["Value"]
            stack.attributes[(logical_id, "Type")] = found["Type"]


_MAX_LEFT_OUT = 3
"""The resources moto fails on that are left out, each found by trying them one by one, before giving up."""


def _left_out(plan: _Plan, stack: _Stack, logical_ids: list[str], reason: str) -> None:
    """Warn that ``logical_ids`` (the first failed, the others use it) are not created, and why."""
    first, reason = logical_ids[0], reason.rstrip(".")
    others = f" ({', '.join(logical_ids[1:])}, which use it, are left out too)" if logical_ids[1:] else ""
    for logical_id in logical_ids:
        stack.reasons[logical_id] = (f"{logical_id!r} was not created: {reason}" if logical_id == first
                                     else f"{logical_id!r} was not created: it uses {first!r}, which failed: {reason}")
        stack.refs.pop(logical_id, None)
    warnings.warn(TemplateResourceWarning(
        f"{plan.display}:{plan.lines.get(first, 0)}: {plan.prefix}.{first}: {plan.kinds.get(first)} was not "
        f"created: {reason}{others}; the template's other resources are created, and a !Ref or !GetAtt of it "
        "cannot be resolved"), stacklevel=4)


def _resolved(resolver: _Resolver, value: Any, loc: _Loc) -> Any:
    """``value`` (JSON) with every intrinsic function in it evaluated (``!Ref AWS::NoValue`` leaves it out)."""
    if _intrinsic(value) is not None:
        value = resolver.resolve(value, loc)
    if isinstance(value, dict):
        items = {k: _resolved(resolver, v, _Loc(f"{loc.key}.{k}", loc.line)) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not _NO_VALUE}
    if isinstance(value, list):
        return [v for v in (_resolved(resolver, item, loc) for item in value) if v is not _NO_VALUE]
    return value


def _create_secret(sm: Any, plan: _Plan, stack: _Stack, logical_id: str, props: dict[str, Any]) -> str:
    """CreateSecret of the secret ``logical_id`` (its properties' !Sub, !Ref ... evaluated): its ARN."""
    loc = _Loc(f"{plan.prefix}.{logical_id}.Properties", plan.lines.get(logical_id, 0))
    if plan.resolver is not None:
        plan.resolver.ctx.stack = stack  # !Ref / !GetAtt of what is created already (functions, roles, secrets)
        plan.resolver.pseudo["AWS::StackName"] = plan.stack_name
        try:
            props = _resolved(plan.resolver, props, loc)
        except SourceError as e:
            raise _NotCreated(e.reason) from None
    name = props.get("Name") or f"{logical_id}-{secrets.token_urlsafe(9)[:12]}"
    args: dict[str, Any] = {"Name": name}
    if "Description" in props:
        args["Description"] = props["Description"]
    if "SecretString" in props:
        args["SecretString"] = props["SecretString"]
    elif isinstance(props.get("GenerateSecretString"), dict):
        args["SecretString"] = _generate(sm, props["GenerateSecretString"])
    try:
        return str(sm.create_secret(**args)["ARN"])
    except Exception as e:  # noqa: BLE001 - moto's error says what is wrong
        raise _NotCreated(f"CreateSecret failed: {e}") from None


def _bus_names(resource: Any, plan: _Plan) -> Any:
    """``resource`` with each ``!Ref`` of an event bus of the template replaced by the bus's Name (its Ref on
    AWS): moto's CloudFormation gives a rule its bus object instead, and fails on it (moto 5)."""
    if isinstance(resource, list):
        return [_bus_names(v, plan) for v in resource]
    if not isinstance(resource, dict):
        return resource
    if list(resource) == ["Ref"] and isinstance(resource["Ref"], str):
        bus = plan.moto.get(resource["Ref"])
        if isinstance(bus, dict) and bus.get("Type") == "AWS::Events::EventBus":
            name = (bus.get("Properties") or {}).get("Name")
            if name is not None:
                return name
    return {k: _bus_names(v, plan) for k, v in resource.items()}


def _after_buses(resource: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    """``resource`` with its !Ref of event buses replaced by their names (:func:`_bus_names`), still created
    after those buses (DependsOn)."""
    buses = sorted(k for k in _named(resource) if plan.moto.get(k, {}).get("Type") == "AWS::Events::EventBus")
    found: dict[str, Any] = _bus_names(resource, plan)
    if buses:
        depends = found.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else list(depends)
        found["DependsOn"] = depends + [b for b in buses if b not in depends]
    return found


def _named(value: Any) -> set[str]:
    """The logical ids a resource (JSON) names: !Ref, !GetAtt, ${X} and ${X.Attribute} of !Sub, DependsOn."""
    found: set[str] = set()
    for item in _walk(value):
        call = _intrinsic(item)
        if call is not None and call[0] == "Ref" and isinstance(call[1], str):
            found.add(call[1])
        elif call is not None and call[0] == "Fn::GetAtt" and isinstance(call[1], list) and call[1]:
            found.add(str(call[1][0]))
        elif isinstance(item, str):
            found.update(m.group(1) for m in _SUB_ATTRIBUTE.finditer(item))
            found.update(m.group(1) for m in _SUB_NAME.finditer(item))
    depends = value.get("DependsOn") if isinstance(value, dict) else None
    found.update([depends] if isinstance(depends, str) else depends or [])
    return found


def _dependents(resources: dict[str, Any], logical_id: str) -> list[str]:
    """The resources that use ``logical_id``, directly or through others."""
    out: list[str] = []
    changed = True
    while changed:
        changed = False
        for other, resource in resources.items():
            if other != logical_id and other not in out and _named(resource) & {logical_id, *out}:
                out.append(other)
                changed = True
    return out


def _stack_template(plan: _Plan, resources: dict[str, Any]) -> dict[str, Any]:
    """The template for moto's CloudFormation: ``resources``, and the outputs of theirs."""
    template = {**plan.template, "Resources": json.loads(json.dumps(resources))}
    for resource in template["Resources"].values():
        depends = resource.get("DependsOn")
        if depends is not None:
            depends = [d for d in ([depends] if isinstance(depends, str) else depends) if d in resources]
            resource["DependsOn"] = depends
    outputs = {k: v for k, v in (plan.template.get("Outputs") or {}).items()
               if str(v.get("Description", "")).partition(".")[0] in resources}
    if outputs:
        template["Outputs"] = outputs
    else:
        template.pop("Outputs", None)
    return template


def _create_stack(client: Any, plan: _Plan, template: dict[str, Any], name: str | None = None,
                  ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(CreateStack's answer, the stack described, its resources); _NotCreated says why moto refused it."""
    try:
        created = client.create_stack(StackName=name or plan.stack_name, TemplateBody=json.dumps(template),
                                      Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                                  for k, v in plan.parameters.items()])
        described = client.describe_stacks(StackName=created["StackId"])["Stacks"][0]
        listed = client.describe_stack_resources(StackName=created["StackId"])["StackResources"]
    except Exception as e:  # noqa: BLE001 - moto's errors, whatever they are, say what went wrong
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "invalid XML received" in reason or "500" in reason:  # moto's server failed inside the resource's model
            reason = "moto failed on it (an internal error: is a property its type requires missing?)"
        raise _NotCreated(f"moto's CloudFormation could not create the stack {plan.stack_name!r} "
                          f"({', '.join(template['Resources'])}): {reason}") from None
    return created, described, listed


def _delete_stack(client: Any, name: str) -> None:
    with contextlib.suppress(Exception):  # nothing was left to delete
        client.delete_stack(StackName=name)


def _culprit(client: Any, plan: _Plan, resources: dict[str, Any]) -> str | None:
    """The first resource that moto cannot create with what it uses (each tried in a stack of its own,
    deleted after), or None when each can."""
    tried: set[str] = set()
    order: list[str] = []
    while len(order) < len(resources):  # what a resource uses is tried before it
        ready = [k for k in resources if k not in tried
                 and (_named(resources[k]) & set(resources)) - {k} <= tried] or [
            next(k for k in resources if k not in tried)]
        tried.add(ready[0])
        order.append(ready[0])
    probe = f"{plan.stack_name}-lambdasim-probe"
    for logical_id in order:
        uses, more = {logical_id}, True
        while more:
            found = set().union(*(_named(resources[k]) for k in uses)) & set(resources)
            more = not found <= uses
            uses |= found
        try:
            _create_stack(client, plan, _stack_template(plan, {k: v for k, v in resources.items() if k in uses}),
                          probe)
        except _NotCreated:
            return logical_id
        finally:
            _delete_stack(client, probe)
    return None


def _known(stack: _Stack, plan: _Plan, name: str, attribute: str | None) -> str | None:
    """The value of a !Ref / !GetAtt in a resource for moto, when moto does not know it (it is not in the
    stack): a function's name, a role's ARN, a secret's ARN; the logical id of what is not created."""
    if name in plan.moto:
        return None
    if name in stack.refs and attribute is None:
        return stack.refs[name]
    if attribute is not None and (name, attribute) in stack.attributes:
        return stack.attributes[(name, attribute)]
    if name in plan.others:
        return name
    return None


def _generate(sm: Any, spec: dict[str, Any]) -> str:
    """A GenerateSecretString's secret, with GetRandomPassword."""
    args = {k: spec[k] for k in ("PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation",
                                 "ExcludeUppercase", "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType")
            if k in spec}
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if (template is None) != (key is None):
        given, missing = ("SecretStringTemplate", "GenerateStringKey") if key is None else (
            "GenerateStringKey", "SecretStringTemplate")
        raise _NotCreated(f"GenerateSecretString has {given} but no {missing}; CloudFormation takes both or "
                          "neither")
    try:
        fields = json.loads(template) if isinstance(template, str) else template
    except ValueError as e:
        raise _NotCreated(f"GenerateSecretString.SecretStringTemplate {template!r} is not JSON: {e}") from None
    if template is not None and (not isinstance(fields, dict) or not isinstance(key, str)):
        raise _NotCreated(f"GenerateSecretString.SecretStringTemplate {template!r} is not a JSON object (with a "
                          "GenerateStringKey string)")
    password = str(sm.get_random_password(**args)["RandomPassword"])
    return password if not isinstance(fields, dict) else json.dumps({**fields, str(key): password})
