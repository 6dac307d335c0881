"""Events as AWS's event sources send them to a function, for tests and ``lambdasim event``.

Each builder returns a plain, JSON-serialisable dict shaped like the samples AWS documents for its
source (and ``sam local generate-event`` prints), with the fields a test cares about as keywords::

    from lambdasim import events

    events.api("GET", "/person/{id}", path_parameters={"id": "1"})   # API Gateway REST API (v1)
    events.http_api("POST", "/orders", body={"item": "book"})         # HTTP API (v2)
    events.sqs(records=["first", {"n": 2}])                           # one SQS record per body

The sources: :func:`api` (API Gateway REST, payload 1.0), :func:`http_api` (HTTP API, payload 2.0),
:func:`alb`, :func:`function_url`, :func:`sqs`, :func:`sns`, :func:`s3`, :func:`eventbridge`,
:func:`schedule` (an EventBridge rule's or EventBridge Scheduler's scheduled event),
:func:`dynamodb` (DynamoDB Streams) and :func:`kinesis`. :data:`KINDS` maps the names of
``lambdasim event KIND`` to them.

Conventions shared by the builders:

- ``body`` is text as it is, ``bytes`` base64-encoded (``isBase64Encoded: true``), anything else
  JSON-encoded (with ``content-type: application/json`` unless ``headers`` give one).
- A ``path`` with ``{name}`` (or greedy ``{name+}``) segments is a route: ``path_parameters`` fill them
  in, and the route stays in ``resource`` / ``routeKey``, as API Gateway sends it.
- ``query`` values may be lists (a repeated parameter), as may ``headers`` values. The HTTP sources add
  the headers their front end adds (``Host``, ``X-Forwarded-For``/``-Port``/``-Proto``) unless given.
- Identifiers (request and message ids) are new for every event, as each delivery's are on AWS;
  times are now. The account is lambdasim's (``123456789012``), the region ``us-east-1`` unless given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus

from lambdasim._errors import ConfigError

__all__ = [
    "KINDS",
    "EventError",
    "alb",
    "api",
    "build",
    "dynamodb",
    "eventbridge",
    "function_url",
    "http_api",
    "kinesis",
    "s3",
    "schedule",
    "sns",
    "sqs",
]

ACCOUNT_ID = "123456789012"  # lambdasim's account (lambdasim._model.ACCOUNT_ID); kept here so the module stands alone
DEFAULT_REGION = "us-east-1"

Body = str | bytes | Mapping[str, Any] | Sequence[Any] | int | float | bool | None
"""A request or message body: text as it is, bytes base64-encoded, anything else as JSON."""
Query = Mapping[str, str | Sequence[str]]
Headers = Mapping[str, str | Sequence[str]]


class EventError(ConfigError):
    """A builder's field is not valid (a path parameter missing, a record of the wrong shape); the
    message names the field and what to give."""


# -- shared pieces ------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"\{([^{}/]+?)(\+?)\}")


def _request_id() -> str:
    return str(uuid.uuid4())


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int, millis: bool = True) -> str:
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000))
    return f"{text}.{ms % 1000:03d}Z" if millis else f"{text}Z"


def _clf(ms: int) -> str:
    """API Gateway's requestTime: ``09/Apr/2015:12:34:56 +0000``."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ms / 1000))


def _text(value: Any) -> str:
    """A message's text: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return json.dumps(value)


def _body(body: Body, headers: dict[str, list[str]]) -> tuple[str | None, bool]:
    """(the body as the event carries it, whether it is base64); adds a JSON content type to ``headers``."""
    if body is None:
        return None, False
    if isinstance(body, bytes):
        return base64.b64encode(body).decode(), True
    if isinstance(body, str):
        return body, False
    if not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = ["application/json"]
    return json.dumps(body), False


def _multi(values: Mapping[str, Any] | None, what: str) -> dict[str, list[str]]:
    """``values`` with every value a list of strings."""
    out: dict[str, list[str]] = {}
    for key, value in (values or {}).items():
        if isinstance(value, str):
            out[str(key)] = [value]
        elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            out[str(key)] = list(value)
        else:
            raise EventError(f"{what}[{key!r}] = {value!r}: give a string, or a list of strings for a repeated one.")
    return out


def _route(path: str, path_parameters: Mapping[str, str] | None) -> tuple[str, str, dict[str, str]]:
    """(the route, the request path, the path parameters) of ``path``, whose ``{name}`` segments
    ``path_parameters`` fill in."""
    if not path.startswith("/"):
        path = "/" + path
    given = {str(k): str(v) for k, v in (path_parameters or {}).items()}
    names = [m.group(1) for m in _SEGMENT.finditer(path)]
    missing = [name for name in names if name not in given]
    if missing:
        raise EventError(f"the route {path} has {', '.join('{' + n + '}' for n in missing)}: give "
                         f"path_parameters={{{', '.join(f'{n!r}: ...' for n in missing)}}}.")
    unknown = sorted(set(given) - set(names))
    if unknown and names:
        raise EventError(f"path_parameters {', '.join(map(repr, unknown))}: the route {path} has no such segment "
                         f"(its parameters: {', '.join(names)}).")
    if not names:
        return path, path, given
    # Greedy {proxy+} takes the rest as it is; other segments are URL-encoded, as clients send them.
    actual = _SEGMENT.sub(lambda m: given[m.group(1)] if m.group(2) else quote(given[m.group(1)], safe=""), path)
    return path, actual, {name: given[name] for name in names}


def _query_string(query: dict[str, list[str]]) -> str:
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, values in query.items() for v in values)


def _region(region: str | None) -> str:
    return region or DEFAULT_REGION


def _name(value: str) -> str:
    """The resource name in ``value``, an ARN or a name."""
    if value.startswith("arn:"):
        return value.split(":", 5)[-1].rsplit("/", 1)[-1]
    return value


def _arn(value: str, service: str, region: str, resource: Callable[[str], str] = lambda name: name) -> str:
    """``value`` if it is an ARN, else the ARN of the ``service`` resource named ``value``."""
    if value.startswith("arn:"):
        return value
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource(value)}"


# -- HTTP sources -------------------------------------------------------------------------------------------

def api(method: str = "GET", path: str = "/", *, body: Body = None, headers: Headers | None = None,
        query: Query | None = None, path_parameters: Mapping[str, str] | None = None, stage: str = "Prod",
        stage_variables: Mapping[str, str] | None = None, api_id: str = "1234567890",
        source_ip: str = "127.0.0.1", authorizer: Mapping[str, Any] | None = None,
        region: str | None = None) -> dict[str, Any]:
    """An API Gateway REST API proxy integration's event (payload format 1.0, SAM's ``Api`` event).

    Args:
        method: the HTTP method.
        path: the route, e.g. ``/person/{id}`` (its ``{id}`` filled from ``path_parameters``), or a path.
        body: the request body (see the module's conventions).
        headers: request headers; a list value is a repeated header (``multiValueHeaders``).
        query: query string parameters; a list value is a repeated one.
        path_parameters: the values of the route's ``{name}`` segments.
        stage: the API's stage (SAM's implicit API: ``Prod``).
        stage_variables: the stage's variables.
        api_id: the REST API's id.
        source_ip: the caller's address (``requestContext.identity.sourceIp``).
        authorizer: ``requestContext.authorizer`` (a Lambda authorizer's context, Cognito claims ...).
        region: the API's region (default ``us-east-1``).
    """
    method = method.upper()
    resource, actual, params = _route(path, path_parameters)
    multi_headers = _multi(headers, "headers")
    content, encoded = _body(body, multi_headers)
    host = f"{api_id}.execute-api.{_region(region)}.amazonaws.com"
    multi_headers = {**_forwarded(host, source_ip, str.title, multi_headers), **multi_headers}
    multi_query = _multi(query, "query")
    ms = _now_ms()
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID, "apiId": api_id, "domainName": host, "domainPrefix": api_id,
        "extendedRequestId": _request_id(), "httpMethod": method,
        "identity": {"accessKey": None, "accountId": None, "caller": None, "cognitoAuthenticationProvider": None,
                     "cognitoAuthenticationType": None, "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                     "principalOrgId": None, "sourceIp": source_ip, "user": None,
                     "userAgent": _first(multi_headers, "user-agent") or "Custom User Agent String", "userArn": None},
        "path": f"/{stage}{actual}", "protocol": "HTTP/1.1", "requestId": _request_id(), "requestTime": _clf(ms),
        "requestTimeEpoch": ms, "resourceId": "abcdef", "resourcePath": resource, "stage": stage,
    }
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    return {
        "resource": resource, "path": actual, "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()}, "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": params or None, "stageVariables": dict(stage_variables) if stage_variables else None,
        "requestContext": context, "body": content, "isBase64Encoded": encoded,
    }


def _forwarded(host: str, source_ip: str, case: Callable[[str], str], given: Mapping[str, list[str]],
               port: str = "443", proto: str = "https") -> dict[str, list[str]]:
    """The headers the front end adds (Host, X-Forwarded-For/-Port/-Proto) that ``given`` does not have,
    named in ``case`` (API Gateway REST keeps the client's case; HTTP APIs and load balancers lower-case)."""
    have = {k.lower() for k in given}
    added = {"host": host, "x-forwarded-for": source_ip, "x-forwarded-port": port, "x-forwarded-proto": proto}
    return {case(k): [v] for k, v in added.items() if k not in have}


def _first(headers: Mapping[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name and values:
            return values[0]
    return None


def _v2(method: str, path: str, route_key: str | None, body: Body, headers: Headers | None, query: Query | None,
        path_parameters: Mapping[str, str] | None, cookies: Sequence[str] | None, stage: str, api_id: str,
        domain: str, source_ip: str) -> dict[str, Any]:
    """The payload format 2.0 that HTTP APIs and function URLs share."""
    method = method.upper()
    route, actual, params = _route(path, path_parameters)
    multi_headers = {k.lower(): v for k, v in _multi(headers, "headers").items()}
    content, encoded = _body(body, multi_headers)
    multi_headers = {**_forwarded(domain, source_ip, str.lower, multi_headers), **multi_headers}
    multi_query = _multi(query, "query")
    ms = _now_ms()
    key = route_key if route_key is not None else f"{method} {route}"
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": key, "rawPath": actual, "rawQueryString": _query_string(multi_query),
    }
    if cookies:
        event["cookies"] = list(cookies)
    event["headers"] = {k: ",".join(v) for k, v in multi_headers.items()}
    if multi_query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in multi_query.items()}
    event["requestContext"] = {
        "accountId": ACCOUNT_ID, "apiId": api_id, "domainName": domain,
        "domainPrefix": domain.split(".")[0],
        "http": {"method": method, "path": actual, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                 "userAgent": multi_headers.get("user-agent", ["Custom User Agent String"])[0]},
        "requestId": _request_id(), "routeKey": key, "stage": stage, "time": _clf(ms), "timeEpoch": ms,
    }
    if params:
        event["pathParameters"] = params
    if content is not None:
        event["body"] = content
    event["isBase64Encoded"] = encoded
    return event


def http_api(method: str = "GET", path: str = "/", *, body: Body = None, headers: Headers | None = None,
             query: Query | None = None, path_parameters: Mapping[str, str] | None = None,
             cookies: Sequence[str] | None = None, route_key: str | None = None, stage: str = "$default",
             stage_variables: Mapping[str, str] | None = None, api_id: str = "abcdefghij",
             source_ip: str = "127.0.0.1", authorizer: Mapping[str, Any] | None = None,
             region: str | None = None) -> dict[str, Any]:
    """An HTTP API's event (payload format 2.0, SAM's ``HttpApi`` event).

    Args:
        method: the HTTP method.
        path: the route, e.g. ``/orders/{id}`` (filled from ``path_parameters``), or a path.
        body: the request body (see the module's conventions).
        headers: request headers (lower-cased, repeated ones joined with commas, as HTTP APIs send them).
        query: query string parameters; a list value is a repeated one (joined with commas).
        path_parameters: the values of the route's ``{name}`` segments.
        cookies: the ``Cookie`` header's cookies, ``name=value`` each.
        route_key: the route (default ``METHOD path``; ``$default`` for the default route).
        stage: the stage (default ``$default``).
        stage_variables: the stage's variables.
        api_id: the HTTP API's id.
        source_ip: the caller's address.
        authorizer: ``requestContext.authorizer`` (e.g. ``{"jwt": {"claims": {...}, "scopes": [...]}}``).
        region: the API's region (default ``us-east-1``).
    """
    event = _v2(method, path, route_key, body, headers, query, path_parameters, cookies, stage, api_id,
                f"{api_id}.execute-api.{_region(region)}.amazonaws.com", source_ip)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = dict(authorizer)
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    return event


def function_url(method: str = "GET", path: str = "/", *, body: Body = None, headers: Headers | None = None,
                 query: Query | None = None, cookies: Sequence[str] | None = None,
                 url_id: str = "abcdefghijklmnopqrstuvwxyz012345", source_ip: str = "127.0.0.1",
                 iam: bool = False, region: str | None = None) -> dict[str, Any]:
    """A Lambda function URL's event (payload format 2.0, route ``$default``, stage ``$default``).

    Args:
        method: the HTTP method.
        path: the request path (a function URL has no routes: ``{}`` segments are taken literally).
        body: the request body (see the module's conventions).
        headers: request headers (lower-cased, repeated ones joined with commas).
        query: query string parameters; a list value is a repeated one.
        cookies: the ``Cookie`` header's cookies.
        url_id: the URL's id (its host is ``<url_id>.lambda-url.<region>.on.aws``).
        source_ip: the caller's address.
        iam: whether the URL's auth type is ``AWS_IAM`` (adds ``requestContext.authorizer.iam``).
        region: the function's region (default ``us-east-1``).
    """
    if _SEGMENT.search(path):
        raise EventError(f"path {path!r}: a function URL has no routes; give the request path itself.")
    event = _v2(method, path, "$default", body, headers, query, None, cookies, "$default", url_id,
                f"{url_id}.lambda-url.{_region(region)}.on.aws", source_ip)
    if not iam:
        event["requestContext"]["accountId"] = "anonymous"  # AuthType NONE: no caller's account
    else:
        event["requestContext"]["authorizer"] = {"iam": {
            "accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": ACCOUNT_ID, "callerId": "AIDACKCEVSQ6C2EXAMPLE",
            "cognitoIdentity": None, "principalOrgId": None, "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/tester",
            "userId": "AIDACKCEVSQ6C2EXAMPLE"}}
    return event


def alb(method: str = "GET", path: str = "/", *, body: Body = None, headers: Headers | None = None,
        query: Query | None = None, multi_value_headers: bool = False, target_group: str = "lambda-target",
        source_ip: str = "127.0.0.1", region: str | None = None) -> dict[str, Any]:
    """An Application Load Balancer's event for a Lambda target.

    Args:
        method: the HTTP method.
        path: the request path.
        body: the request body (see the module's conventions).
        headers: request headers (lower-cased, as the load balancer sends them).
        query: query string parameters; a list value is a repeated one.
        multi_value_headers: the target group's ``lambda.multi_value_headers.enabled``: headers and query
            come as ``multiValueHeaders`` / ``multiValueQueryStringParameters`` instead.
        target_group: the target group's name or ARN.
        source_ip: the caller's address (``x-forwarded-for``).
        region: the load balancer's region (default ``us-east-1``).
    """
    multi_headers = {k.lower(): v for k, v in _multi(headers, "headers").items()}
    content, encoded = _body(body, multi_headers)
    host = f"lambda-alb-123456789.{_region(region)}.elb.amazonaws.com"
    multi_headers = {**_forwarded(host, source_ip, str.lower, multi_headers, port="80", proto="http"),
                     **multi_headers}
    # The load balancer passes the query string as the client sent it: URL-encoded.
    multi_query = {quote_plus(k): [quote_plus(v) for v in values] for k, values in _multi(query, "query").items()}
    arn = _arn(target_group, "elasticloadbalancing", _region(region), lambda n: f"targetgroup/{n}/0123456789abcdef")
    event: dict[str, Any] = {"requestContext": {"elb": {"targetGroupArn": arn}}, "httpMethod": method.upper(),
                             "path": path if path.startswith("/") else "/" + path}
    if multi_value_headers:
        event["multiValueQueryStringParameters"] = multi_query
        event["multiValueHeaders"] = multi_headers
    else:
        event["queryStringParameters"] = {k: v[-1] for k, v in multi_query.items()}
        event["headers"] = {k: v[-1] for k, v in multi_headers.items()}
    event["body"] = content if content is not None else ""
    event["isBase64Encoded"] = encoded
    return event


# -- messaging sources ---------------------------------------------------------------------------------------

def _bodies(first: Any, records: Sequence[Any] | None, default: Any) -> list[Any]:
    if records is not None and first is not None:
        raise EventError("give either one message (body=, message=, data=, key=) or records=[...], not both.")
    if records is not None:
        if isinstance(records, str | bytes) or not isinstance(records, Sequence):
            raise EventError(f"records={records!r}: give a list, one item per record.")
        if not records:
            raise EventError("records=[]: an event source sends at least one record.")
        return list(records)
    return [default if first is None else first]


def sqs(body: Body = None, *, records: Sequence[Body] | None = None, queue: str = "MyQueue",
        message_attributes: Mapping[str, str] | None = None, group_id: str | None = None,
        receive_count: int = 1, region: str | None = None) -> dict[str, Any]:
    """An SQS event source mapping's event: one record per message.

    Args:
        body: the one message's body (text, or JSON of anything else); default ``Hello from SQS!``.
        records: the bodies of several messages, one record each (instead of ``body``).
        queue: the queue's name or ARN (a ``.fifo`` queue gets sequence numbers and ``group_id``).
        message_attributes: string message attributes.
        group_id: a FIFO queue's message group id (default ``group-1`` on a ``.fifo`` queue).
        receive_count: ``ApproximateReceiveCount`` (above 1 on a retried message).
        region: the queue's region (default ``us-east-1``).
    """
    region = _region(region)
    arn = _arn(queue, "sqs", region)
    fifo = arn.endswith(".fifo")
    out = []
    ms = _now_ms()
    for index, item in enumerate(_bodies(body, records, "Hello from SQS!")):
        text = _text(item)
        attributes = {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": str(ms),
                      "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": str(ms + 1)}
        if fifo:
            attributes |= {"SequenceNumber": str(18849496460467696128 + index),
                           "MessageGroupId": group_id or "group-1", "MessageDeduplicationId": _md5(text)}
        out.append({
            "messageId": _request_id(), "receiptHandle": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
            "body": text, "attributes": attributes,
            "messageAttributes": {k: {"stringValue": v, "stringListValues": [], "binaryListValues": [],
                                      "dataType": "String"} for k, v in (message_attributes or {}).items()},
            "md5OfBody": _md5(text), "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": region,
        })
    return {"Records": out}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def sns(message: Body = None, *, records: Sequence[Body] | None = None, subject: str | None = None,
        topic: str = "ExampleTopic", message_attributes: Mapping[str, str] | None = None,
        region: str | None = None) -> dict[str, Any]:
    """An SNS subscription's event (SNS sends one record per invocation; ``records`` makes several).

    Args:
        message: the notification's message (text, or JSON of anything else); default ``example message``.
        records: several messages, one record each (instead of ``message``).
        subject: the notification's subject (``None``: none, as when the publisher gives none).
        topic: the topic's name or ARN.
        message_attributes: string message attributes.
        region: the topic's region (default ``us-east-1``).
    """
    region = _region(region)
    arn = _arn(topic, "sns", region)
    out = []
    for item in _bodies(message, records, "example message"):
        out.append({
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": f"{arn}:{uuid.uuid4()}",
            "Sns": {
                "Type": "Notification", "MessageId": _request_id(), "TopicArn": arn, "Subject": subject,
                "Message": _text(item), "Timestamp": _iso(_now_ms()), "SignatureVersion": "1",
                "Signature": "EXAMPLE", "SigningCertUrl": f"https://sns.{region}.amazonaws.com/SimpleNotificationService"
                                                          "-0000000000000000000000.pem",
                "UnsubscribeUrl": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={arn}",
                "MessageAttributes": {k: {"Type": "String", "Value": v}
                                      for k, v in (message_attributes or {}).items()},
            },
        })
    return {"Records": out}


def s3(key: str | None = None, *, records: Sequence[str] | None = None, bucket: str = "example-bucket",
       event_name: str = "ObjectCreated:Put", size: int = 1024, region: str | None = None) -> dict[str, Any]:
    """An S3 event notification: one record per object.

    Args:
        key: the object's key, as stored (the event carries it URL-encoded, as S3 sends it); default
            ``test/key``.
        records: several keys, one record each (instead of ``key``).
        bucket: the bucket's name or ARN.
        event_name: the event, without ``s3:`` (``ObjectCreated:Put``, ``ObjectRemoved:Delete`` ...).
        size: the object's size in bytes (not in ``ObjectRemoved`` events).
        region: the bucket's region (default ``us-east-1``).
    """
    region = _region(region)
    name = _name(bucket)
    event_name = event_name.removeprefix("s3:")
    out = []
    for index, item in enumerate(_bodies(key, records, "test/key")):
        if not isinstance(item, str):
            raise EventError(f"records[{index}] = {item!r}: an S3 record is an object's key, a string.")
        obj: dict[str, Any] = {"key": quote_plus(item, safe="/"), "sequencer": f"{_now_ms():016X}"}
        if event_name.startswith("ObjectCreated"):
            obj |= {"size": size, "eTag": _md5(item)}
        out.append({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": _iso(_now_ms()),
            "eventName": event_name, "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                                 "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes * 3).decode()},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "lambdasim",
                   "bucket": {"name": name, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                              "arn": f"arn:aws:s3:::{name}"},
                   "object": obj},
        })
    return {"Records": out}


# -- EventBridge -------------------------------------------------------------------------------------------------

def eventbridge(detail: Mapping[str, Any] | None = None, *, detail_type: str = "Example Event",
                source: str = "com.example", resources: Sequence[str] | None = None,
                region: str | None = None) -> dict[str, Any]:
    """An EventBridge event as a rule's target receives it.

    Args:
        detail: the event's ``detail`` (default ``{}``).
        detail_type: ``detail-type``.
        source: ``source``.
        resources: the ARNs the event is about.
        region: the bus's region (default ``us-east-1``).
    """
    return {"version": "0", "id": _request_id(), "detail-type": detail_type, "source": source,
            "account": ACCOUNT_ID, "time": _iso(_now_ms(), millis=False), "region": _region(region),
            "resources": list(resources or []), "detail": dict(detail or {})}


def schedule(rule: str = "ExampleRule", *, scheduler: bool = False, region: str | None = None) -> dict[str, Any]:
    """A scheduled event: an EventBridge rule's (SAM ``Schedule``), or with ``scheduler=True`` EventBridge
    Scheduler's default notification (SAM ``ScheduleV2`` without ``Input``).

    Args:
        rule: the rule's (or schedule's) name or ARN.
        scheduler: EventBridge Scheduler (source ``aws.scheduler``) instead of a rule (``aws.events``).
        region: the rule's region (default ``us-east-1``).
    """
    region = _region(region)
    if scheduler:
        arn = _arn(rule, "scheduler", region, lambda n: f"schedule/default/{n}")
        return {**eventbridge(detail_type="Scheduled Event", source="aws.scheduler", resources=[arn], region=region),
                "detail": "{}"}
    arn = _arn(rule, "events", region, lambda n: f"rule/{n}")
    return eventbridge(detail_type="Scheduled Event", source="aws.events", resources=[arn], region=region)


# -- streams ---------------------------------------------------------------------------------------------------

def _attribute(value: Any, where: str) -> dict[str, Any]:
    """``value`` as a DynamoDB attribute value (``{"S": "text"}``, ``{"N": "1"}`` ...)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, bytes):
        return {"B": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {"M": {str(k): _attribute(v, f"{where}[{k!r}]") for k, v in value.items()}}
    if isinstance(value, set | frozenset) and value:
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in value):
            return {"NS": sorted(str(v) for v in value)}
        if all(isinstance(v, bytes) for v in value):
            return {"BS": sorted(base64.b64encode(v).decode() for v in value)}
    if isinstance(value, list | tuple):
        return {"L": [_attribute(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise EventError(f"{where} = {value!r}: DynamoDB has no type for it (give str, number, bool, None, bytes, "
                     "dict, list, or a non-empty set of one of str, number, bytes).")


_CHANGE_KEYS = ("event_name", "keys", "new_image", "old_image")
_VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")


def dynamodb(*, keys: Mapping[str, Any] | None = None, new_image: Mapping[str, Any] | None = None,
             old_image: Mapping[str, Any] | None = None, event_name: str | None = None,
             records: Sequence[Mapping[str, Any]] | None = None, table: str = "ExampleTable",
             stream_view_type: str = "NEW_AND_OLD_IMAGES", region: str | None = None) -> dict[str, Any]:
    """A DynamoDB Streams event: one record per item change. Items are plain Python values (``str``,
    numbers, ``bool``, ``None``, ``bytes``, ``dict``, ``list``, sets), typed as the stream carries them.

    Args:
        keys: the item's key attributes (default: ``{"Id": 101}``).
        new_image: the item after the change (INSERT, MODIFY).
        old_image: the item before the change (MODIFY, REMOVE).
        event_name: ``INSERT``, ``MODIFY`` or ``REMOVE`` (default: from which images are given).
        records: several changes, each a dict of ``event_name``, ``keys``, ``new_image``, ``old_image``
            (instead of the one change above).
        table: the table's name, or its ARN or stream ARN.
        stream_view_type: what the stream holds: ``KEYS_ONLY``, ``NEW_IMAGE``, ``OLD_IMAGE`` or
            ``NEW_AND_OLD_IMAGES`` (images it does not hold are left out, as DynamoDB leaves them).
        region: the table's region (default ``us-east-1``).
    """
    region = _region(region)
    if stream_view_type not in _VIEW_TYPES:
        raise EventError(f"stream_view_type={stream_view_type!r}: give one of {', '.join(_VIEW_TYPES)}.")
    one = {"event_name": event_name, "keys": keys, "new_image": new_image, "old_image": old_image}
    if records is not None and any(v is not None for v in one.values()):
        raise EventError("give either one change (keys=, new_image=, old_image=, event_name=) or records=[...].")
    changes = _bodies(None, records, {k: v for k, v in one.items() if v is not None})
    if "/stream/" in table:
        stream_arn = table
    else:
        table_arn = _arn(table, "dynamodb", region, lambda n: f"table/{n}")
        stream_arn = f"{table_arn}/stream/2024-01-01T00:00:00.000"
    out = []
    for index, change in enumerate(changes):
        if not isinstance(change, Mapping) or set(change) - set(_CHANGE_KEYS):
            raise EventError(f"records[{index}] = {change!r}: a change is a dict of {', '.join(_CHANGE_KEYS)}.")
        new, old = change.get("new_image"), change.get("old_image")
        name = change.get("event_name") or ("MODIFY" if new is not None and old is not None
                                            else "REMOVE" if old is not None else "INSERT")
        if name not in ("INSERT", "MODIFY", "REMOVE"):
            raise EventError(f"event_name={name!r}: give INSERT, MODIFY or REMOVE.")
        item_keys = change.get("keys") or {"Id": 101}
        record: dict[str, Any] = {"ApproximateCreationDateTime": int(time.time()),
                                  "Keys": _attribute(item_keys, "keys")["M"]}
        if new is not None and stream_view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            record["NewImage"] = _attribute({**item_keys, **new}, "new_image")["M"]
        if old is not None and stream_view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            record["OldImage"] = _attribute({**item_keys, **old}, "old_image")["M"]
        record |= {"SequenceNumber": str(4421584500000000017450439091 + index),
                   "SizeBytes": len(json.dumps(record, default=str)), "StreamViewType": stream_view_type}
        out.append({"eventID": uuid.uuid4().hex, "eventName": name, "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb", "awsRegion": region, "dynamodb": record,
                    "eventSourceARN": stream_arn})
    return {"Records": out}


def kinesis(data: Body = None, *, records: Sequence[Body] | None = None, stream: str = "ExampleStream",
            partition_key: str = "partitionKey-03", region: str | None = None) -> dict[str, Any]:
    """A Kinesis Data Streams event: one record per data blob (base64-encoded, as Kinesis sends it).

    Args:
        data: the one record's data (bytes, text, or JSON of anything else); default
            ``Hello, this is a test 123.``.
        records: several records' data (instead of ``data``).
        stream: the stream's name or ARN.
        partition_key: the records' partition key.
        region: the stream's region (default ``us-east-1``).
    """
    region = _region(region)
    arn = _arn(stream, "kinesis", region, lambda n: f"stream/{n}")
    out = []
    for index, item in enumerate(_bodies(data, records, "Hello, this is a test 123.")):
        raw = item if isinstance(item, bytes) else _text(item).encode()
        sequence = str(49545115243490985018280067714973144582180062593244200961 + index)
        out.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": partition_key, "sequenceNumber": sequence,
                        "data": base64.b64encode(raw).decode(), "approximateArrivalTimestamp": time.time()},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{sequence}",
            "eventName": "aws:kinesis:record", "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT_ID}:role/lambda-role",
            "awsRegion": region, "eventSourceARN": arn,
        })
    return {"Records": out}


KINDS: dict[str, Callable[..., dict[str, Any]]] = {
    "api": api, "http-api": http_api, "alb": alb, "function-url": function_url, "sqs": sqs, "sns": sns, "s3": s3,
    "eventbridge": eventbridge, "schedule": schedule, "dynamodb": dynamodb, "kinesis": kinesis,
}
"""The builders by the name ``lambdasim event KIND`` knows them by."""


def build(kind: str, **fields: Any) -> dict[str, Any]:
    """The event of ``kind`` (a name of :data:`KINDS`, or its builder's name) with ``fields``."""
    builder = KINDS.get(kind) or KINDS.get(kind.replace("_", "-"))
    if builder is None:
        raise EventError(f"no event kind {kind!r}; the kinds are: {', '.join(KINDS)}.")
    try:
        return builder(**fields)
    except TypeError as e:
        if "keyword argument" not in str(e) and "positional argument" not in str(e):
            raise
        raise EventError(f"{kind}: {e}; see help(lambdasim.events.{builder.__name__}).") from None
