"""A SAM function's ``Events``: each entry read into a :class:`TemplateEvent`, which makes the event the
source would send with :mod:`lambdasim.events` (``fn.event("GetPerson", path_parameters={"id": "1"})``).

The SAM event types read: ``Api`` (Path, Method, the stage of a ``RestApiId`` in the template),
``HttpApi`` (Path, Method: the route; none of them: ``$default``; ``PayloadFormatVersion: "1.0"``, or a
serverless.yml's ``provider.httpApi.payload: '1.0'``, gives the REST API's event,
:func:`~lambdasim.events.api`), ``SQS`` (Queue), ``SNS`` (Topic),
``S3`` (Bucket, Events, Filter's prefix/suffix), ``Schedule`` and ``ScheduleV2`` (Name, Input),
``EventBridgeRule`` and ``CloudWatchEvent`` (Pattern's source, detail-type and detail, Input),
``DynamoDB`` and ``Kinesis`` (Stream). A queue, topic, bucket, table or stream of the same template
(``!GetAtt Queue.Arn``, ``!Ref Bucket``, ``!GetAtt Table.StreamArn``) is named as it was created (the
stack of :mod:`lambdasim._template_resources`, given to the reader); without one, by its name property
(``QueueName``, ``TableName`` ...) or else its logical ID. An ``Input`` is the event itself, as
EventBridge sends a rule's or schedule's constant input instead of the event. Other types (``IoTRule``,
``Cognito``, ``MSK`` ...) are kept, and asking for their event says lambdasim has no builder for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambdasim._cfn import _Context, _intrinsic, _kind, _Loc, _Resolver, _section
from lambdasim._errors import ConfigError
from lambdasim._source import SourceError, YamlMap, YamlSeq
from lambdasim.events import EventError, build

# SAM's event type -> the lambdasim.events kind that builds its event.
SAM_KINDS = {
    "Api": "api", "HttpApi": "http-api", "SQS": "sqs", "SNS": "sns", "S3": "s3", "Schedule": "schedule",
    "ScheduleV2": "schedule", "EventBridgeRule": "eventbridge", "CloudWatchEvent": "eventbridge",
    "DynamoDB": "dynamodb", "Kinesis": "kinesis",
}

# A resource's property that holds its physical name, by type.
_NAME_PROPERTY = {
    "AWS::SQS::Queue": "QueueName", "AWS::SNS::Topic": "TopicName", "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName", "AWS::Serverless::SimpleTable": "TableName",
    "AWS::Kinesis::Stream": "Name",
}


@dataclass(frozen=True)
class TemplateEvent:
    """One entry of a function's ``Events``."""

    name: str
    """The entry's key (``GetPerson``)."""
    type: str
    """Its ``Type`` (``Api``, ``SQS`` ...)."""
    kind: str | None
    """The :mod:`lambdasim.events` kind that builds it; None when lambdasim has none for the type."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """The builder's keywords the template fixes (the route's method and path, the queue ...)."""
    source: str = ""
    """``file:line`` of the entry."""
    input: str | None = None
    """A rule's or schedule's ``Input`` (JSON): the event the function receives instead."""

    def event(self, **fields: Any) -> Any:
        """The event, with ``fields`` replacing the template's (see :mod:`lambdasim.events`)."""
        where = f"event {self.name!r} ({self.type}, {self.source})"
        if self.kind is None:
            raise ConfigError(f"{where}: lambdasim has no builder for {self.type} events (it builds "
                              f"{', '.join(SAM_KINDS)}; in a serverless.yml {', '.join(SERVERLESS_KINDS)}); write "
                              "the event yourself.")
        if self.input is not None:
            if fields:
                raise ConfigError(f"{where}: its Input is the event the function receives, so there is nothing for "
                                  f"{', '.join(sorted(fields))} to change; edit the template's Input instead.")
            try:
                return json.loads(self.input)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: its Input is not valid JSON ({e.msg} at column {e.colno}); EventBridge "
                                  "passes a Lambda target only JSON.") from None
        try:
            return build(self.kind, **{**self.fields, **fields})
        except EventError as e:
            raise EventError(f"{where}: {e}") from None


def event_of(function: str, events: Mapping[str, TemplateEvent], name: str, fields: Mapping[str, Any]) -> Any:
    """``Function.event(name, **fields)`` of the function ``function`` with the template's ``events``."""
    if name not in events:
        known = (f"its events are: {', '.join(f'{e.name} ({e.type}, {e.source})' for e in events.values())}"
                 if events else "it has no template Events (deploy it with deploy_from_template() from a template "
                                "whose function has an Events section, or build the event with lambdasim.events)")
        raise ConfigError(f"Function {function!r} has no event {name!r}; {known}.")
    return events[name].event(**fields)


class Values(Protocol):
    """What the template reader of :mod:`lambdasim._templates` offers."""

    ctx: _Context
    resolver: _Resolver

    def value(self, value: Any, loc: _Loc) -> Any: ...


def sam_events(reader: Values, function: str, props: YamlMap, props_loc: _Loc) -> dict[str, TemplateEvent]:
    """The ``Events`` of the SAM function ``function``'s ``props``."""
    ctx = reader.ctx
    if props.get("Events") is None:
        return {}
    section, section_loc = _section(ctx, props, "Events", props_loc)
    out: dict[str, TemplateEvent] = {}
    for name, entry in section.items():
        loc = section_loc.child(section, name)
        if not isinstance(entry, YamlMap):
            ctx.fail(loc, f"expected an event ({{Type: ..., Properties: {{...}}}}), found {_kind(entry)}.")
        kind = reader.value(entry.get("Type"), loc.child(entry, "Type"))
        if not isinstance(kind, str):
            ctx.fail(loc.child(entry, "Type"), f"missing; set the event's Type, one of {', '.join(SAM_KINDS)} "
                                               "(or another SAM event type).")
        properties, properties_loc = _section(ctx, entry, "Properties", loc)
        source = f"{ctx.display}:{loc.line}"
        reading = _Event(reader, properties, properties_loc)
        fields, given_input = reading.fields(kind)
        if kind in ("Schedule", "ScheduleV2"):  # unnamed, SAM names the rule after the function and the event
            fields.setdefault("rule", f"{function}{name}")
        builder = SAM_KINDS.get(kind)
        if kind == "HttpApi" and _payload_v1(reading.get("PayloadFormatVersion")):
            builder = _as_v1(fields)
        out[str(name)] = TemplateEvent(str(name), kind, builder, fields, source, given_input)
    return out


def _payload_v1(version: Any) -> bool:
    """Whether an HTTP API's ``PayloadFormatVersion`` (SAM) or ``payload`` (Serverless) is 1.0."""
    return str(version).strip() in ("1.0", "1")


def _as_v1(fields: dict[str, Any]) -> str:
    """An HTTP API route's builder keywords made those of the 1.0 payload (the REST API's event, ``api``)."""
    fields.pop("route_key", None)
    fields.setdefault("stage", "$default")
    return "api"


class _Event:
    def __init__(self, reader: Values, props: YamlMap, loc: _Loc) -> None:
        self.reader = reader
        self.props = props
        self.loc = loc
        self.region = reader.resolver.pseudo["AWS::Region"]

    def get(self, key: str) -> Any:
        """The property ``key``, resolved (None when absent or not resolvable locally)."""
        if key not in self.props:
            return None
        try:
            return self.reader.value(self.props[key], self.loc.child(self.props, key))
        except SourceError:
            return None  # e.g. an !ImportValue: the builder's default stands in

    def text(self, key: str) -> str | None:
        value = self.get(key)
        return value if isinstance(value, str) and value else None

    def resource(self, key: str) -> tuple[str, YamlMap, Any] | None:
        """(logical ID, properties, type) of the template's resource that ``key`` refers to (Ref or GetAtt)."""
        call = _intrinsic(self.props.get(key))
        target: Any = None
        if call is not None and call[0] == "Ref":
            target = call[1]
        elif call is not None and call[0] == "Fn::GetAtt":  # !GetAtt Queue.Arn, or [Queue, Arn]
            target = call[1].split(".")[0] if isinstance(call[1], str) else call[1][0] if call[1] else None
        resources = self.reader.resolver.resources
        if not isinstance(target, str) or not isinstance(resources.get(target), YamlMap):
            return None
        props = resources[target].get("Properties")
        return target, props if isinstance(props, YamlMap) else YamlMap(resources.file), resources[target].get("Type")

    def named(self, key: str) -> str | None:
        """The name or ARN of the queue, topic, bucket, table or stream property ``key`` gives: of a resource of
        the template, the one it was created with (a stack's), else its name property or its logical ID."""
        found = self.resource(key)
        if found is not None:
            logical, props, kind = found
            created = self.created(key, kind)
            if created is not None:
                return created
            prop = _NAME_PROPERTY.get(kind) if isinstance(kind, str) else None
            if prop and prop in props:
                try:
                    name = self.reader.value(props[prop], self.loc)
                except SourceError:
                    name = None
                if isinstance(name, str) and name:
                    return name
            return logical
        return self.text(key)

    def created(self, key: str, kind: Any) -> str | None:
        """What the property ``key`` (a !Ref or !GetAtt of a resource) gives in the created stack, as the
        builders take it (a name or an ARN); None without a stack, or where the resource was not created."""
        if self.reader.ctx.stack is None:
            return None
        try:
            value = self.reader.value(self.props[key], self.loc.child(self.props, key))
        except SourceError:
            return None  # not created: the stack says why when the function's settings use it
        if not isinstance(value, str) or not value or value.startswith("<"):
            return None  # a preview's placeholder (lambdasim._template_resources.preview_resources)
        if kind == "AWS::SQS::Queue" and value.startswith("https://"):
            return value.rsplit("/", 1)[-1]  # !Ref Queue is its URL; the builder takes the name (or the ARN)
        return value

    def fields(self, kind: str) -> tuple[dict[str, Any], str | None]:
        """The builder's keywords for an event of SAM type ``kind``, and its constant Input."""
        fields: dict[str, Any] = {"region": self.region}
        method, path = self.text("Method"), self.text("Path")
        if kind == "ALB":
            self.put(fields, "path", path)
            self.put(fields, "method", method.upper() if method else None)
        elif kind in ("Api", "HttpApi"):
            if path is not None:
                fields["path"] = path
            if method is not None and method.upper() not in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD"):
                fields["method"] = method.upper()
            stage = self.stage("RestApiId" if kind == "Api" else "ApiId")
            if stage is not None:
                fields["stage"] = stage
            if kind == "HttpApi" and (path is None or method is None or method.upper() == "ANY"):
                fields["route_key"] = "$default" if path is None else f"ANY {path}"
        elif kind == "SQS":
            self.put(fields, "queue", self.named("Queue"))
        elif kind == "SNS":
            self.put(fields, "topic", self.named("Topic"))
        elif kind == "S3":
            self.put(fields, "bucket", self.named("Bucket"))
            self.s3(fields)
        elif kind in ("DynamoDB", "Kinesis"):
            self.put(fields, "table" if kind == "DynamoDB" else "stream", self.named("Stream"))
        elif kind in ("Schedule", "ScheduleV2"):
            self.put(fields, "rule", self.text("Name"))
            if kind == "ScheduleV2":
                fields["scheduler"] = True
        elif kind in ("EventBridgeRule", "CloudWatchEvent"):
            self.pattern(fields)
        given = self.get("Input")
        if kind in ("Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent") and given is not None:
            return fields, given if isinstance(given, str) else json.dumps(given)
        return fields, None

    @staticmethod
    def put(fields: dict[str, Any], key: str, value: str | None) -> None:
        if value is not None:
            fields[key] = value

    def stage(self, key: str) -> str | None:
        """The StageName of the API (in this template) that ``key`` refers to."""
        found = self.resource(key)
        if found is None:
            return None
        _, props, _ = found
        try:
            stage = self.reader.value(props.get("StageName"), self.loc) if "StageName" in props else None
        except SourceError:
            return None
        return stage if isinstance(stage, str) and stage else None

    def s3(self, fields: dict[str, Any]) -> None:
        events = self.get("Events")
        first = events[0] if isinstance(events, list) and events else events
        if isinstance(first, str):
            name = first.removeprefix("s3:")
            fields["event_name"] = {"ObjectCreated:*": "ObjectCreated:Put",
                                    "ObjectRemoved:*": "ObjectRemoved:Delete"}.get(name, name)
        rules = self.get("Filter")
        rules = rules.get("S3Key", {}).get("Rules") if isinstance(rules, Mapping) else None
        affixes = {str(r.get("Name", "")).lower(): str(r.get("Value", ""))
                   for r in rules if isinstance(r, Mapping)} if isinstance(rules, list) else {}
        if affixes:
            fields["key"] = f"{affixes.get('prefix', '')}example{affixes.get('suffix', '')}"

    def pattern(self, fields: dict[str, Any]) -> None:
        pattern = self.get("Pattern")
        if not isinstance(pattern, Mapping):
            return
        for key, field_name in (("source", "source"), ("detail-type", "detail_type")):
            value = _sample(pattern.get(key))
            if isinstance(value, str):
                fields[field_name] = value
        detail = _sample(pattern.get("detail"))
        if isinstance(detail, dict):
            fields["detail"] = detail


# The Serverless Framework's event keys -> the SAM type read the same way, and the builder.
SERVERLESS_KINDS = {
    "http": ("Api", "api"), "httpApi": ("HttpApi", "http-api"), "alb": ("ALB", "alb"), "sqs": ("SQS", "sqs"),
    "sns": ("SNS", "sns"), "s3": ("S3", "s3"), "schedule": ("Schedule", "schedule"),
    "eventBridge": ("EventBridgeRule", "eventbridge"), "cloudwatchEvent": ("CloudWatchEvent", "eventbridge"),
    "stream": ("DynamoDB", "dynamodb"),
}


def serverless_events(reader: Values, function: str, definition: YamlMap, fn_loc: _Loc,
                      stage: str) -> dict[str, TemplateEvent]:
    """The ``events`` of a Serverless function ``definition``. Named by their key (``http``), numbered
    from 1 (``http-1``, ``http-2``) when the function has several of one key."""
    ctx = reader.ctx
    entries = definition.get("events")
    if entries is None:
        return {}
    loc = fn_loc.child(definition, "events")
    if not isinstance(entries, YamlSeq):
        ctx.fail(loc, f"expected a list of events (- http: ..., - sqs: ...), found {_kind(entries)}.")
    keys = [next(iter(e)) if isinstance(e, YamlMap) and len(e) == 1 else None for e in entries]
    out: dict[str, TemplateEvent] = {}
    for index, (entry, key) in enumerate(zip(entries, keys, strict=True)):
        where = loc.item(entries, index)
        if key is None:
            ctx.fail(where, f"expected one event, e.g. {{http: {{path: users, method: get}}}}, found {_kind(entry)}.")
        name = str(key) if keys.count(key) == 1 else f"{key}-{keys[:index + 1].count(key)}"
        sam_type, kind = SERVERLESS_KINDS.get(str(key), (str(key), None))
        props = _serverless_props(reader, str(key), entry[key], where)
        if key == "stream" and not _is_dynamodb(entry[key]):
            sam_type, kind = "Kinesis", "kinesis"
        fields, given_input = _Event(reader, props, where).fields(sam_type)
        if sam_type == "Api":
            fields["stage"] = stage
        if sam_type == "HttpApi" and _payload_v1(_http_api_payload(ctx.doc)):
            kind = _as_v1(fields)
        if sam_type == "Schedule":
            fields.setdefault("rule", f"{function}-{name}")
        out[name] = TemplateEvent(name, str(key), kind, fields, f"{ctx.display}:{where.line}", given_input)
    return out


def _http_api_payload(doc: YamlMap) -> Any:
    """A serverless.yml's ``provider.httpApi.payload`` (the payload format of its HTTP API's routes)."""
    provider = doc.get("provider")
    http_api = provider.get("httpApi") if isinstance(provider, YamlMap) else None
    return http_api.get("payload") if isinstance(http_api, YamlMap) else None


def _is_dynamodb(value: Any) -> bool:
    """Whether a Serverless ``stream`` event is a DynamoDB stream (``type: dynamodb``, or a table's stream ARN)."""
    if isinstance(value, YamlMap):
        if "type" in value:
            return str(value["type"]).lower() == "dynamodb"
        value = value.get("arn")
    call = _intrinsic(value)
    if call is not None:  # !GetAtt Table.StreamArn
        return "StreamArn" in str(call[1])
    return ":dynamodb:" in str(value)


def _serverless_props(reader: Values, key: str, value: Any, loc: _Loc) -> YamlMap:
    """The SAM-style properties of the Serverless event ``key: value``."""
    props = YamlMap(reader.ctx.display)
    value = reader.value(value, loc) if isinstance(value, str) else value
    given = value if isinstance(value, YamlMap) else YamlMap()
    if key in ("http", "httpApi") and isinstance(value, str):
        method, _, path = value.partition(" ")
        if value.strip() != "*":
            props["Method"], props["Path"] = method, path.strip()
    elif key in ("http", "httpApi"):
        for source, target in (("method", "Method"), ("path", "Path")):
            if source in given:
                props[target] = given[source]
    if key in ("http", "httpApi") and isinstance(props.get("Path"), str) and not props["Path"].startswith("/"):
        props["Path"] = "/" + props["Path"]
    if key in ("http", "httpApi") and str(props.get("Method", "")) == "*":
        props["Method"] = "ANY"
    if key == "alb":
        conditions = given.get("conditions")
        for source, target in (("path", "Path"), ("method", "Method")):
            found = conditions.get(source) if isinstance(conditions, YamlMap) else None
            if isinstance(found, list):
                found = found[0] if found else None
            if found is not None:
                props[target] = found
    target_key = {"sqs": "Queue", "sns": "Topic", "stream": "Stream", "s3": "Bucket"}.get(key)
    if target_key is not None:
        names = {"sqs": ("arn",), "sns": ("arn", "topicName"), "stream": ("arn",), "s3": ("bucket",)}[key]
        chosen = value if not isinstance(value, YamlMap) else next((given[k] for k in names if k in given), None)
        if chosen is not None:
            props[target_key] = chosen
    if key == "s3":
        if "event" in given:
            props["Events"] = given["event"]
        rules = given.get("rules")
        if isinstance(rules, list):
            props["Filter"] = {"S3Key": {"Rules": [{"Name": k, "Value": v} for rule in rules
                                                   if isinstance(rule, dict) for k, v in rule.items()]}}
    if key in ("schedule", "eventBridge", "cloudwatchEvent"):
        for source, target in (("name", "Name"), ("input", "Input"), ("pattern", "Pattern"), ("event", "Pattern")):
            if source in given:
                props[target] = given[source]
    return props


def _sample(pattern: Any) -> Any:
    """A value that an event pattern's ``pattern`` matches: the first of each list of values (content
    filters such as ``{"prefix": ...}`` are left out)."""
    if isinstance(pattern, Mapping):
        out = {str(k): _sample(v) for k, v in pattern.items()}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(pattern, list | YamlSeq):
        plain = [v for v in pattern if isinstance(v, str | int | float | bool) or v is None]
        return plain[0] if plain else None
    return pattern
