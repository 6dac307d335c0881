"""Events: the builders of lambdasim.events, ``lambdasim event KIND``, and a template's ``Events`` as
``fn.event(name, **fields)``. Every built event is read back through aws-lambda-powertools' event source
data classes (written against AWS's real events), through their typed properties."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    ALBEvent,
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    DynamoDBStreamEvent,
    EventBridgeEvent,
    KinesisStreamEvent,
    LambdaFunctionUrlEvent,
    S3Event,
    SNSEvent,
    SQSEvent,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName

from lambdasim import ConfigError, Simulator, events
from lambdasim._templates import load_function
from lambdasim.cli import main

# -- every kind, read back by powertools ----------------------------------------------------------------


def check_api() -> None:
    e = APIGatewayProxyEvent(events.api("post", "/person/{id}", path_parameters={"id": "7"}, body={"name": "Ada"},
                                        query={"tag": ["a", "b"], "page": "2"}, headers={"X-Trace": "t1"},
                                        stage_variables={"env": "test"}))
    assert (e.http_method, e.path, e.resource) == ("POST", "/person/7", "/person/{id}")
    assert e.path_parameters == {"id": "7"}
    assert e.query_string_parameters == {"tag": "b", "page": "2"}
    assert e.multi_value_query_string_parameters == {"tag": ["a", "b"], "page": ["2"]}
    assert e.json_body == {"name": "Ada"} and not e.is_base64_encoded
    assert e.headers["content-type"] == "application/json" and e.headers["x-trace"] == "t1"
    assert e.headers["X-Forwarded-For"] == "127.0.0.1" and e.headers["Host"] == "1234567890.execute-api.us-east-1" \
                                                                               ".amazonaws.com"
    assert e.stage_variables == {"env": "test"}
    ctx = e.request_context
    assert (ctx.stage, ctx.resource_path, ctx.http_method, ctx.account_id) == ("Prod", "/person/{id}", "POST",
                                                                               "123456789012")
    assert ctx.path == "/Prod/person/7" and ctx.identity.source_ip == "127.0.0.1" and ctx.request_id


def check_http_api() -> None:
    e = APIGatewayProxyEventV2(events.http_api("GET", "/orders/{id}", path_parameters={"id": "a b"},
                                               query={"q": ["x", "y z"]}, cookies=["s=1"], body=b"\x00\xff",
                                               headers={"User-Agent": "curl"}))
    assert (e.route_key, e.raw_path, e.path) == ("GET /orders/{id}", "/orders/a%20b", "/orders/a%20b")
    assert e.path_parameters == {"id": "a b"}
    assert e.raw_query_string == "q=x&q=y+z" and e.query_string_parameters == {"q": "x,y z"}
    assert e.cookies == ["s=1"] and e.headers["user-agent"] == "curl"
    assert e.raw_event["headers"]["x-forwarded-proto"] == "https", "an HTTP API lower-cases header names"
    assert e.is_base64_encoded and base64.b64decode(e.body or "") == b"\x00\xff"
    http = e.request_context.http
    assert (http.method, http.path, http.user_agent) == ("GET", "/orders/a%20b", "curl")
    assert e.request_context.stage == "$default" and e.request_context.route_key == "GET /orders/{id}"


def check_function_url() -> None:
    e = LambdaFunctionUrlEvent(events.function_url("PUT", "/items", body="plain", iam=True, query={"a": "1"}))
    assert (e.route_key, e.raw_path, e.body, e.raw_query_string) == ("$default", "/items", "plain", "a=1")
    assert e.request_context.domain_name.endswith(".lambda-url.us-east-1.on.aws")
    assert e.request_context.http.method == "PUT"
    assert e.request_context.authorizer is not None
    assert e.request_context.authorizer.iam.account_id == "123456789012"
    assert e.request_context.account_id == "123456789012"
    assert LambdaFunctionUrlEvent(events.function_url()).request_context.account_id == "anonymous", "AuthType NONE"


def check_alb() -> None:
    e = ALBEvent(events.alb("post", "/submit", body={"a": 1}, query={"q": "a b"}))
    assert (e.http_method, e.path, e.json_body) == ("POST", "/submit", {"a": 1})
    assert e.query_string_parameters == {"q": "a+b"}, "an ALB passes the query string URL-encoded"
    assert e.request_context.elb_target_group_arn.startswith("arn:aws:elasticloadbalancing:us-east-1:")
    assert e.headers["x-forwarded-proto"] == "http" and e.headers["x-forwarded-port"] == "80"
    multi = ALBEvent(events.alb("GET", "/", headers={"Accept": ["a", "b"]}, multi_value_headers=True))
    assert multi.multi_value_headers["accept"] == ["a", "b"] and "headers" not in multi.raw_event


def check_sqs() -> None:
    e = SQSEvent(events.sqs(records=["first", {"n": 2}], queue="orders.fifo", message_attributes={"k": "v"}))
    first, second = e.records
    assert (first.body, second.json_body) == ("first", {"n": 2})
    assert first.event_source == "aws:sqs" and first.event_source_arn.endswith(":123456789012:orders.fifo")
    assert first.queue_url == "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo"
    assert first.attributes.approximate_receive_count == "1" and first.attributes.message_group_id == "group-1"
    attribute = first.message_attributes["k"]
    assert attribute is not None and attribute.string_value == "v"
    assert first.md5_of_body == "8b04d5e3775d298e78455efc5ca404d5"  # md5("first"), as SQS computes it
    assert first.message_id != second.message_id


def check_sns() -> None:
    e = SNSEvent(events.sns({"order": 1}, subject="New order", topic="orders", message_attributes={"k": "v"}))
    assert json.loads(e.sns_message) == {"order": 1} and e.record.sns.subject == "New order"
    assert e.record.sns.topic_arn == "arn:aws:sns:us-east-1:123456789012:orders"
    assert e.record.event_source == "aws:sns" and e.record.sns.message_attributes["k"].value == "v"


def check_s3() -> None:
    e = S3Event(events.s3("uploads/my photo+1.jpg", bucket="media", size=5))
    assert e.object_key == "uploads/my photo+1.jpg", "the key travels URL-encoded and decodes back"
    assert e.record.s3.get_object.key == "uploads/my+photo%2B1.jpg"
    assert e.bucket_name == "media" and e.record.s3.bucket.arn == "arn:aws:s3:::media"
    assert e.record.event_name == "ObjectCreated:Put" and e.record.s3.get_object.size == 5
    removed = S3Event(events.s3(records=["a", "b"], event_name="s3:ObjectRemoved:Delete"))
    assert [r.s3.get_object.key for r in removed.records] == ["a", "b"]
    assert removed.record.event_name == "ObjectRemoved:Delete" and "size" not in removed.record.s3.get_object.raw_event


def check_eventbridge() -> None:
    e = EventBridgeEvent(events.eventbridge({"id": 3}, detail_type="OrderPlaced", source="com.shop",
                                            resources=["arn:aws:x"]))
    assert (e.detail, e.detail_type, e.source, e.resources) == ({"id": 3}, "OrderPlaced", "com.shop", ["arn:aws:x"])
    assert e.account == "123456789012" and e.region == "us-east-1" and e.version == "0" and e.time.endswith("Z")


def check_schedule() -> None:
    e = EventBridgeEvent(events.schedule("nightly"))
    assert (e.detail_type, e.source, e.detail) == ("Scheduled Event", "aws.events", {})
    assert e.resources == ["arn:aws:events:us-east-1:123456789012:rule/nightly"]
    v2 = EventBridgeEvent(events.schedule("nightly", scheduler=True))
    assert v2.source == "aws.scheduler"
    assert v2.resources == ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightly"]


def check_dynamodb() -> None:
    item = {"Name": "Ada", "Age": 36, "Score": 1.5, "Admin": True, "Nick": None, "Raw": b"\x01",
            "Tags": {"a", "b"}, "Nums": {1, 2}, "Address": {"City": "London"}, "List": ["x", 1]}
    e = DynamoDBStreamEvent(events.dynamodb(
        records=[{"keys": {"Id": "1"}, "new_image": item}, {"keys": {"Id": "1"}, "old_image": {"Age": 1},
                                                             "new_image": {"Age": 2}},
                 {"keys": {"Id": "1"}, "old_image": {"Age": 2}}], table="people"))
    insert, modify, remove = e.records
    assert [r.event_name for r in e.records] == [DynamoDBRecordEventName.INSERT, DynamoDBRecordEventName.MODIFY,
                                                  DynamoDBRecordEventName.REMOVE]
    assert insert.dynamodb is not None and insert.dynamodb.keys == {"Id": "1"}
    image = insert.dynamodb.new_image
    assert image["Name"] == "Ada" and image["Age"] == Decimal(36) and image["Score"] == Decimal("1.5")
    assert image["Admin"] is True and image["Nick"] is None and image["Raw"] == "AQ==", "binary: base64 in JSON"
    assert image["Tags"] == {"a", "b"} and image["Nums"] == {Decimal(1), Decimal(2)}
    assert image["Address"] == {"City": "London"} and image["List"] == ["x", Decimal(1)]
    assert modify.dynamodb is not None and modify.dynamodb.old_image == {"Id": "1", "Age": Decimal(1)}
    assert remove.dynamodb is not None and remove.dynamodb.new_image == {}
    assert (insert.event_source_arn or "").startswith("arn:aws:dynamodb:us-east-1:123456789012:table/people/stream/")
    keys_only = next(DynamoDBStreamEvent(events.dynamodb(new_image={"a": 1}, stream_view_type="KEYS_ONLY")).records)
    assert keys_only.dynamodb is not None and keys_only.dynamodb.new_image == {}


def check_kinesis() -> None:
    e = KinesisStreamEvent(events.kinesis(records=[{"a": 1}, b"\x00raw", "text"], stream="clicks"))
    first, second, third = e.records
    assert first.kinesis.data_as_json() == {"a": 1} and third.kinesis.data_as_text() == "text"
    assert base64.b64decode(second.kinesis.data) == b"\x00raw"
    assert first.event_source_arn == "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
    assert first.kinesis.partition_key == "partitionKey-03" and first.kinesis.sequence_number


CHECKS: dict[str, Callable[[], None]] = {
    "api": check_api, "http-api": check_http_api, "function-url": check_function_url, "alb": check_alb,
    "sqs": check_sqs, "sns": check_sns, "s3": check_s3, "eventbridge": check_eventbridge,
    "schedule": check_schedule, "dynamodb": check_dynamodb, "kinesis": check_kinesis,
}


def test_every_kind_is_proved_by_powertools() -> None:
    assert set(CHECKS) == set(events.KINDS), "a new kind needs its powertools check here"


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_built_events_read_back_through_powertools(kind: str) -> None:
    CHECKS[kind]()


@pytest.mark.parametrize("kind", sorted(events.KINDS))
def test_every_default_event_is_json_and_parses(kind: str) -> None:
    event = events.build(kind)
    assert json.loads(json.dumps(event)) == event
    parser: dict[str, Any] = {
        "api": APIGatewayProxyEvent, "http-api": APIGatewayProxyEventV2, "function-url": LambdaFunctionUrlEvent,
        "alb": ALBEvent, "sqs": SQSEvent, "sns": SNSEvent, "s3": S3Event, "eventbridge": EventBridgeEvent,
        "schedule": EventBridgeEvent, "dynamodb": DynamoDBStreamEvent, "kinesis": KinesisStreamEvent,
    }
    parsed = parser[kind](event)
    records = getattr(parsed, "records", None)
    if records is not None:
        assert len(list(records)) == 1
    else:
        assert parsed.raw_event == event


# -- the builders' rules --------------------------------------------------------------------------------


def test_a_route_needs_its_path_parameters() -> None:
    with pytest.raises(events.EventError, match=r"the route /person/\{id\} has \{id\}: give path_parameters="):
        events.api("GET", "/person/{id}")
    with pytest.raises(events.EventError, match=r"path_parameters 'nope': the route /p/\{id\} has no such segment"):
        events.http_api("GET", "/p/{id}", path_parameters={"id": "1", "nope": "2"})


def test_a_greedy_segment_takes_the_rest_of_the_path() -> None:
    e = APIGatewayProxyEvent(events.api("GET", "/files/{proxy+}", path_parameters={"proxy": "a/b c.txt"}))
    assert (e.resource, e.path, e.path_parameters) == ("/files/{proxy+}", "/files/a/b c.txt", {"proxy": "a/b c.txt"})


def test_a_request_without_query_or_body_carries_nulls_as_api_gateway_does() -> None:
    v1 = events.api()
    assert v1["queryStringParameters"] is None and v1["body"] is None and v1["pathParameters"] is None
    v2 = events.http_api()
    assert "queryStringParameters" not in v2 and "body" not in v2 and v2["rawQueryString"] == ""


def test_bad_fields_are_named() -> None:
    with pytest.raises(events.EventError, match=r"headers\['X'\] = 1: give a string"):
        events.api(headers={"X": 1})  # type: ignore[dict-item]
    with pytest.raises(events.EventError, match="either one message"):
        events.sqs("a", records=["b"])
    with pytest.raises(events.EventError, match="at least one record"):
        events.kinesis(records=[])
    with pytest.raises(events.EventError, match=r"keys\['Id'\] = <object .*DynamoDB has no type for it"):
        events.dynamodb(keys={"Id": object()})
    with pytest.raises(events.EventError, match="no event kind 'sqss'; the kinds are: api, http-api"):
        events.build("sqss")
    with pytest.raises(events.EventError, match=r"sqs: .*unexpected keyword argument 'bodyy'"):
        events.build("sqs", bodyy="x")
    assert isinstance(events.EventError("x"), ConfigError)


# -- lambdasim event KIND ---------------------------------------------------------------------------------


def test_cli_prints_the_event(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["event", "api", "--method", "GET", "--path", "/person/{id}", "--path-parameters", '{"id": "1"}',
                   "--query", '{"q": "x"}', "--body", '{"a": 1}', "--stage", "dev"])
    assert status == 0
    e = APIGatewayProxyEvent(json.loads(capsys.readouterr().out))
    assert (e.path, e.resource, e.query_string_parameters, e.json_body) == ("/person/1", "/person/{id}",
                                                                            {"q": "x"}, {"a": 1})
    assert e.request_context.stage == "dev"


def test_cli_reads_records_and_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = tmp_path / "records.json"
    records.write_text('["one", "two"]')
    assert main(["event", "sqs", "--records", f"@{records}", "--receive-count", "3"]) == 0
    e = SQSEvent(json.loads(capsys.readouterr().out))
    assert [r.body for r in e.records] == ["one", "two"]
    assert next(e.records).attributes.approximate_receive_count == "3"
    assert main(["event", "schedule", "--rule", "r", "--scheduler"]) == 0
    assert EventBridgeEvent(json.loads(capsys.readouterr().out)).source == "aws.scheduler"


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["event", "api", "--path", "/p/{id}"]) == 2
    assert "the route /p/{id} has {id}: give path_parameters=" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["event", "sqs", "--records", "[1,"])
    assert exited.value.code == 2
    assert "--records: not valid JSON at line 1" in capsys.readouterr().err
    assert main(["event", "nope"]) == 2
    assert "no event kind 'nope'; the kinds are: api, http-api, alb" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["event", "sqs", "--path", "/x"])
    assert "unrecognized arguments: --path /x" in capsys.readouterr().err


def test_cli_help_lists_every_builder_keyword(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["event", "dynamodb", "--help"])
    out = capsys.readouterr().out
    for option in ("--keys JSON", "--new-image JSON", "--old-image JSON", "--event-name TEXT", "--records JSON",
                   "--table TEXT", "--stream-view-type TEXT", "--region TEXT"):
        assert option in out
    assert "the item after the change" in out, "the help is the builder's docstring"


# -- a template's Events -------------------------------------------------------------------------------------

TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  People:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: app/
      Handler: app.handler
      Runtime: python3.11
      Events:
        GetPerson:
          Type: Api
          Properties:
            Path: /person/{id}
            Method: get
            RestApiId: !Ref PeopleApi
        Anything:
          Type: HttpApi
        AnyOrder:
          Type: HttpApi
          Properties: {Path: /orders, Method: ANY}
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt JobQueue.Arn
        Alerts:
          Type: SNS
          Properties:
            Topic: arn:aws:sns:us-east-1:123456789012:alerts
        Uploads:
          Type: S3
          Properties:
            Bucket: !Ref Media
            Events: s3:ObjectCreated:*
            Filter:
              S3Key:
                Rules: [{Name: prefix, Value: uploads/}, {Name: suffix, Value: .jpg}]
        Nightly:
          Type: Schedule
          Properties:
            Schedule: rate(1 day)
        WithInput:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 hour)
            Input: '{"job": "hourly"}'
        Paid:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [com.shop]
              detail-type: [OrderPaid]
              detail: {currency: [EUR], amount: [{numeric: [">", 0]}]}
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt PeopleTable.StreamArn
            StartingPosition: LATEST
        Clicks:
          Type: Kinesis
          Properties:
            Stream: !GetAtt ClickStream.Arn
            StartingPosition: LATEST
        Things:
          Type: IoTRule
          Properties:
            Sql: SELECT * FROM 'things'
  PeopleApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
  JobQueue:
    Type: AWS::SQS::Queue
  Media:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: my-media
  PeopleTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: people
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  ClickStream:
    Type: AWS::Kinesis::Stream
    Properties:
      ShardCount: 1
"""

APP = """\
import json


def handler(event, context):
    seen = {"id": event["pathParameters"]["id"], "method": event["httpMethod"],
            "stage": event["requestContext"]["stage"]}
    return {"statusCode": 200, "body": json.dumps(seen)}
"""


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.py").write_text(APP)
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return path


def test_a_templates_events_are_read_with_their_source(template: Path) -> None:
    fn = load_function(template, "People")
    assert list(fn.events) == ["GetPerson", "Anything", "AnyOrder", "Jobs", "Alerts", "Uploads", "Nightly",
                               "WithInput", "Paid", "Changes", "Clicks", "Things"]
    get = fn.events["GetPerson"]
    line = TEMPLATE.splitlines().index("        GetPerson:") + 1
    assert (get.type, get.kind, get.source) == ("Api", "api", f"{template}:{line}")
    assert get.fields == {"region": "us-east-1", "path": "/person/{id}", "method": "GET", "stage": "v1"}
    assert "events" not in fn.deploy_kwargs()


def test_each_event_type_builds_its_sources_event(template: Path) -> None:
    fn = load_function(template, "People")
    ev = fn.events
    api = APIGatewayProxyEvent(ev["GetPerson"].event(path_parameters={"id": "1"}))
    assert (api.http_method, api.path, api.resource, api.request_context.stage) == ("GET", "/person/1",
                                                                                    "/person/{id}", "v1")
    anything = APIGatewayProxyEventV2(ev["Anything"].event(method="DELETE", path="/x"))
    assert (anything.route_key, anything.raw_path, anything.request_context.http.method) == ("$default", "/x",
                                                                                              "DELETE")
    assert APIGatewayProxyEventV2(ev["AnyOrder"].event()).route_key == "ANY /orders"
    sqs = next(SQSEvent(ev["Jobs"].event(body="job")).records)
    assert sqs.event_source_arn == "arn:aws:sqs:us-east-1:123456789012:JobQueue", "unnamed: its logical ID"
    assert SNSEvent(ev["Alerts"].event()).record.sns.topic_arn == "arn:aws:sns:us-east-1:123456789012:alerts"
    s3 = S3Event(ev["Uploads"].event())
    assert (s3.bucket_name, s3.object_key, s3.record.event_name) == ("my-media", "uploads/example.jpg",
                                                                    "ObjectCreated:Put")
    nightly = EventBridgeEvent(ev["Nightly"].event())
    assert nightly.resources == ["arn:aws:events:us-east-1:123456789012:rule/PeopleNightly"]
    assert ev["WithInput"].event() == {"job": "hourly"}, "EventBridge sends the constant Input instead"
    paid = EventBridgeEvent(ev["Paid"].event())
    assert (paid.source, paid.detail_type, paid.detail) == ("com.shop", "OrderPaid", {"currency": "EUR"})
    change = next(DynamoDBStreamEvent(ev["Changes"].event(new_image={"Name": "Ada"})).records)
    assert (change.event_source_arn or "").startswith("arn:aws:dynamodb:us-east-1:123456789012:table/people/stream/")
    click = next(KinesisStreamEvent(ev["Clicks"].event(data="c")).records)
    assert click.event_source_arn == "arn:aws:kinesis:us-east-1:123456789012:stream/ClickStream"


def test_template_event_errors_name_the_event(template: Path) -> None:
    fn = load_function(template, "People")
    line = TEMPLATE.splitlines().index("        Things:") + 1
    with pytest.raises(ConfigError, match=rf"event 'Things' \(IoTRule, {template}:{line}\): lambdasim has no "
                                          r"builder for IoTRule events \(it builds Api, HttpApi, SQS"):
        fn.events["Things"].event()
    with pytest.raises(events.EventError, match=r"event 'GetPerson' \(Api, .*\): the route /person/\{id\} has"):
        fn.events["GetPerson"].event()
    with pytest.raises(ConfigError, match="its Input is the event the function receives, so there is nothing for "
                                          "rule to change"):
        fn.events["WithInput"].event(rule="x")


def test_a_broken_events_section_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: app/
              Handler: app.handler
              Runtime: python3.11
              Events:
                NoType:
                  Properties: {Path: /x}
        """))
    with pytest.raises(ConfigError, match=r"template.yaml:10.*NoType.Type.*missing; set the event's Type, one of Api"):
        load_function(path, "Fn")


@pytest.mark.sandbox
def test_fn_event_invokes_with_the_routes_method_and_path(sim: Simulator, template: Path) -> None:
    fn = sim.deploy_from_template(template, "People")
    inv = fn.invoke(fn.event("GetPerson", path_parameters={"id": "1"}))
    assert inv.error is None
    assert json.loads(inv.payload["body"]) == {"id": "1", "method": "GET", "stage": "v1"}
    with pytest.raises(ConfigError, match=r"Function 'People' has no event 'GetPeople'; its events are: GetPerson "
                                          rf"\(Api, {template}:\d+\), Anything \(HttpApi, "):
        fn.event("GetPeople")


def test_a_deployed_templates_events_name_its_resources_as_created(sim: Simulator, template: Path) -> None:
    fn = sim.deploy_from_template(template, "People")
    sqs = sim.boto3_client("sqs")
    (url,) = sqs.list_queues()["QueueUrls"]  # JobQueue has no QueueName: CloudFormation's generated one
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert next(SQSEvent(fn.event("Jobs", body="job")).records).event_source_arn == queue_arn
    assert ":JobQueue" not in queue_arn
    stream_arn = sim.boto3_client("dynamodb").describe_table(TableName="people")["Table"]["LatestStreamArn"]
    assert next(DynamoDBStreamEvent(fn.event("Changes", new_image={"Name": "Ada"})).records).event_source_arn == \
        stream_arn
    (stream,) = sim.boto3_client("kinesis").list_streams()["StreamNames"]
    click = next(KinesisStreamEvent(fn.event("Clicks", data="c")).records)
    assert click.event_source_arn == f"arn:aws:kinesis:us-east-1:123456789012:stream/{stream}" != \
        "arn:aws:kinesis:us-east-1:123456789012:stream/ClickStream"
    assert S3Event(fn.event("Uploads")).bucket_name == "my-media"  # BucketName is kept


def test_a_serverless_event_names_the_queue_as_created(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    path = tmp_path / "serverless.yml"
    path.write_text(textwrap.dedent("""\
        service: shop
        provider: {name: aws, runtime: python3.11}
        functions:
          worker:
            handler: app.handler
            events:
              - sqs: {arn: !GetAtt Jobs.Arn}
              - sns: {arn: !Ref Alerts, topicName: alerts}
        resources:
          Resources:
            Jobs: {Type: AWS::SQS::Queue}
            Alerts: {Type: AWS::SNS::Topic}
        """))
    fn = sim.deploy_from_template(path, "worker")
    sqs = sim.boto3_client("sqs")
    (url,) = sqs.list_queues()["QueueUrls"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert next(SQSEvent(fn.event("sqs")).records).event_source_arn == queue_arn
    (topic,) = sim.boto3_client("sns").list_topics()["Topics"]
    assert SNSEvent(fn.event("sns")).record.sns.topic_arn == topic["TopicArn"]
    # Read without the created resources (lambdasim event --template): the logical ID stands in.
    alone = load_function(path, "worker").events["sqs"].event()
    assert alone["Records"][0]["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:Jobs"


@pytest.mark.sandbox
def test_a_function_deployed_without_a_template_has_no_events(sim: Simulator, template: Path) -> None:
    fn = sim.deploy("app.handler", template.parent / "app", name="plain")
    with pytest.raises(ConfigError, match="Function 'plain' has no event 'GetPerson'; it has no template Events"):
        fn.event("GetPerson")


SERVERLESS = """\
service: shop
provider:
  name: aws
  runtime: python3.11
  stage: test
functions:
  api:
    handler: app.handler
    events:
      - http:
          path: person/{id}
          method: get
      - http: POST orders
      - httpApi: '*'
      - httpApi: {method: '*', path: /any}
      - alb: {listenerArn: arn:aws:x, priority: 1, conditions: {path: /alb, method: [PUT]}}
      - sqs: {arn: !GetAtt Jobs.Arn, batchSize: 10}
      - sns: alerts
      - s3: {bucket: photos, event: 's3:ObjectRemoved:*', rules: [{prefix: in/}, {suffix: .png}]}
      - schedule: {rate: rate(1 day), input: {job: daily}}
      - schedule: rate(1 hour)
      - eventBridge: {pattern: {source: [com.shop], detail-type: [Paid]}}
      - stream: {type: dynamodb, arn: !GetAtt People.StreamArn}
      - stream: arn:aws:kinesis:us-east-1:123456789012:stream/clicks
      - websocket: $connect
resources:
  Resources:
    Jobs:
      Type: AWS::SQS::Queue
      Properties: {QueueName: shop-jobs}
    People:
      Type: AWS::DynamoDB::Table
"""


def test_a_serverless_functions_events_are_named_by_their_key(tmp_path: Path) -> None:
    path = tmp_path / "serverless.yml"
    path.write_text(SERVERLESS)
    ev = load_function(path, "api").events
    assert list(ev) == ["http-1", "http-2", "httpApi-1", "httpApi-2", "alb", "sqs", "sns", "s3", "schedule-1",
                        "schedule-2", "eventBridge", "stream-1", "stream-2", "websocket"]
    person = APIGatewayProxyEvent(ev["http-1"].event(path_parameters={"id": "5"}))
    assert (person.http_method, person.path, person.request_context.stage) == ("GET", "/person/5", "test")
    assert APIGatewayProxyEvent(ev["http-2"].event()).resource == "/orders"
    assert APIGatewayProxyEventV2(ev["httpApi-1"].event()).route_key == "$default"
    assert APIGatewayProxyEventV2(ev["httpApi-2"].event()).route_key == "ANY /any"
    alb_event = ALBEvent(ev["alb"].event())
    assert (alb_event.http_method, alb_event.path) == ("PUT", "/alb")
    assert next(SQSEvent(ev["sqs"].event()).records).event_source_arn.endswith(":shop-jobs")
    assert SNSEvent(ev["sns"].event()).record.sns.topic_arn.endswith(":alerts")
    s3 = S3Event(ev["s3"].event())
    assert (s3.bucket_name, s3.object_key, s3.record.event_name) == ("photos", "in/example.png", "ObjectRemoved:Delete")
    assert ev["schedule-1"].event() == {"job": "daily"}
    assert EventBridgeEvent(ev["schedule-2"].event()).resources[0].endswith(":rule/api-schedule-2")
    assert EventBridgeEvent(ev["eventBridge"].event()).detail_type == "Paid"
    assert (next(DynamoDBStreamEvent(ev["stream-1"].event()).records).event_source_arn or "").startswith(
        "arn:aws:dynamodb:us-east-1:123456789012:table/People/stream/")
    clicks = next(KinesisStreamEvent(ev["stream-2"].event()).records)
    assert clicks.event_source_arn == "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
    with pytest.raises(ConfigError, match="lambdasim has no builder for websocket events"):
        ev["websocket"].event()


def test_cli_prints_a_templates_event(capsys: pytest.CaptureFixture[str], template: Path) -> None:
    # The template's options go before or after the event's name, among the builder's.
    assert main(["event", "GetPerson", "--template", str(template), "--path-parameters", '{"id": "3"}']) == 0
    e = APIGatewayProxyEvent(json.loads(capsys.readouterr().out))
    assert (e.http_method, e.path, e.request_context.stage) == ("GET", "/person/3", "v1")
    assert main(["event", "--template", str(template), "--function", "People", "Jobs", "--body", "hi"]) == 0
    record = next(SQSEvent(json.loads(capsys.readouterr().out)).records)
    assert (record.body, record.event_source_arn) == ("hi", "arn:aws:sqs:us-east-1:123456789012:JobQueue")
    assert main(["event", "Nope", "--template", str(template)]) == 2
    assert "Function 'People' has no event 'Nope'; its events are: GetPerson (Api, " in capsys.readouterr().err
    assert main(["event", "Things", "--template", str(template)]) == 2
    assert "lambdasim has no builder for IoTRule events" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["event", "Jobs", "--template", str(template), "--help"])
    assert "--records JSON" in capsys.readouterr().out, "the options of the event's kind"


def test_cli_template_errors_name_the_cli_flags(capsys: pytest.CaptureFixture[str], template: Path) -> None:
    text = template.read_text().replace("      Runtime: python3.11\n",
                                        "      Runtime: python3.11\n      Environment:\n        Variables:\n"
                                        "          QUEUE: !GetAtt JobQueue.Arn\n")
    template.write_text(text)
    assert main(["event", "Jobs", "--template", str(template)]) == 2
    assert "set the value with --env QUEUE=VALUE" in capsys.readouterr().err
    assert main(["event", "Jobs", "--template", str(template), "--env", "QUEUE=q"]) == 0
    assert json.loads(capsys.readouterr().out)["Records"][0]["eventSource"] == "aws:sqs"


TODOS = """\
service: todos
provider:
  name: aws
  runtime: python3.11
  stage: ${opt:stage}
functions:
  create:
    handler: app.handler
    events:
      - http: POST todos
  list:
    handler: app.handler
    events:
      - http: GET todos
      - sqs: arn:aws:sqs:us-east-1:123456789012:jobs
  broken:
    handler: app.handler
    environment: {TABLE: !GetAtt Nope.Arn}
    events:
      - sqs: arn:aws:sqs:us-east-1:123456789012:other
"""


def test_cli_template_options_in_any_order_and_the_function_by_its_event(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "app.py").write_text(APP)
    path = tmp_path / "serverless.yml"
    path.write_text(TODOS)
    # --parameter-overrides before KIND: its values end at the first one without "=" (nargs="+" took KIND).
    assert main(["event", "-t", str(path), "--function", "create", "--parameter-overrides", "stage=dev", "http",
                 "--body", "x"]) == 0, capsys.readouterr().err
    e = APIGatewayProxyEvent(json.loads(capsys.readouterr().out))
    assert (e.http_method, e.body, e.request_context.stage) == ("POST", "x", "dev")
    # sqs is an event of list alone (broken cannot be read without --env, so it is not the one meant).
    assert main(["event", "sqs", "-t", str(path), "--parameter-overrides", "stage=dev", "--body", "hi"]) == 0
    record = next(SQSEvent(json.loads(capsys.readouterr().out)).records)
    assert (record.body, record.event_source_arn) == ("hi", "arn:aws:sqs:us-east-1:123456789012:jobs")
    assert main(["event", "http", "-t", str(path), "--parameter-overrides", "stage=dev"]) == 2
    assert "the event 'http' is in 2 functions: create, list; name one with --function LOGICAL_ID." in \
        capsys.readouterr().err
    assert main(["event", "nope", "-t", str(path), "--parameter-overrides", "stage=dev"]) == 2
    assert "which function? There are 3 in functions" in capsys.readouterr().err
