"""A template's HTTP routes and function URLs, served (lambdasim._serve._routes), and the template settings they
come from (function URLs, EventInvokeConfig, an HTTP API's payload format).

The served tests talk plain HTTP (http.client) to ``sim.serve()``: as a client of API Gateway would.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from lambdasim import ConfigError, Simulator
from lambdasim._serve._http import Request
from lambdasim._serve._routes import Routes, RouteWarning
from lambdasim._template_events import TemplateEvent
from lambdasim._templates import TemplateWarning, load_function

SAM_HEAD = 'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\n'
BOTH_SANDBOXES = True
PATTERNS = Path("/work/.mirror/aws-samples+serverless-patterns/repo")


def write(folder: Path, text: str, name: str = "template.yaml") -> Path:
    (folder / "src").mkdir(parents=True, exist_ok=True)
    path = folder / name
    head = SAM_HEAD if text.startswith(SAM_HEAD) else ""  # a SAM template: its body dedented
    path.write_text(head + textwrap.dedent(text.removeprefix(head)).lstrip("\n"))
    return path


def request(base: str, method: str, target: str, body: bytes | None = None,
            headers: list[tuple[str, str]] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of one request; ``headers`` may repeat a name."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for key, value in headers or []:
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


# -- the template's settings -----------------------------------------------------------------------------------


def test_sam_function_url_and_event_invoke_config_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, SAM_HEAD + """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: python3.12
              CodeUri: src
              FunctionUrlConfig:
                AuthType: AWS_IAM
                Cors: {AllowOrigins: ["https://example.com"], AllowMethods: [GET]}
              EventInvokeConfig:
                MaximumRetryAttempts: 1
                MaximumEventAgeInSeconds: 120
          Plain:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src}
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TemplateWarning)  # both are modelled: no "does not model" warning
        fn = load_function(path, "Fn")
    assert fn.function_url is not None
    assert (fn.function_url.auth_type, fn.function_url.invoke_mode) == ("AWS_IAM", "BUFFERED")
    assert fn.function_url.cors == {"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET"]}
    assert fn.function_url.source == f"{path}:10"
    assert (fn.max_retry_attempts, fn.max_event_age_s) == (1, 120)
    kwargs = fn.deploy_kwargs()
    assert (kwargs["max_retry_attempts"], kwargs["max_event_age_s"]) == (1, 120)
    plain = load_function(path, "Plain")
    assert plain.function_url is None
    assert "max_retry_attempts" not in plain.deploy_kwargs()  # passed to deploy() only when the template sets it
    assert "max_event_age_s" not in plain.deploy_kwargs()


def test_cloudformation_url_and_event_invoke_config_resources(tmp_path: Path) -> None:
    path = write(tmp_path, SAM_HEAD + """
        Resources:
          Fn:
            Type: AWS::Lambda::Function
            Properties:
              FunctionName: orders
              Handler: app.handler
              Runtime: python3.12
              Role: arn:aws:iam::123456789012:role/r
              Code: src
          Url:
            Type: AWS::Lambda::Url
            Properties:
              TargetFunctionArn: !GetAtt Fn.Arn
              AuthType: NONE
              InvokeMode: RESPONSE_STREAM
          Retries:
            Type: AWS::Lambda::EventInvokeConfig
            Properties:
              FunctionName: orders
              Qualifier: $LATEST
              MaximumRetryAttempts: 0
              DestinationConfig: {OnFailure: {Destination: arn:aws:sqs:us-east-1:123456789012:dlq}}
    """)
    with pytest.warns(TemplateWarning) as caught:
        fn = load_function(path, "Fn")
    messages = [str(w.message) for w in caught]
    assert any("RESPONSE_STREAM: lambdasim serves the function URL buffered" in m for m in messages)
    assert any("does not model DestinationConfig" in m for m in messages)
    assert fn.function_url is not None and fn.function_url.invoke_mode == "RESPONSE_STREAM"
    assert (fn.max_retry_attempts, fn.max_event_age_s) == (0, None)


def test_serverless_url_and_retries(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: shop
        provider: {name: aws, runtime: python3.12}
        functions:
          open:
            handler: app.handler
            url: true
          signed:
            handler: app.handler
            url: {authorizer: aws_iam, cors: true}
            maximumRetryAttempts: 2
            maximumEventAge: 3600
          bad:
            handler: app.handler
            maximumRetryAttempts: 3
    """, name="serverless.yml")
    opened = load_function(path, "open")
    assert opened.function_url is not None and opened.function_url.auth_type == "NONE"
    assert opened.function_url.cors is None
    signed = load_function(path, "signed")
    assert signed.function_url is not None and signed.function_url.auth_type == "AWS_IAM"
    assert signed.function_url.cors is not None and signed.function_url.cors["AllowOrigins"] == ["*"]
    assert (signed.max_retry_attempts, signed.max_event_age_s) == (2, 3600)
    with pytest.raises(ConfigError, match=r"maximumRetryAttempts: 3 is out of range; Lambda allows 0 to 2"):
        load_function(path, "bad")


def test_an_http_api_payload_1_0_route_gets_the_rest_event(tmp_path: Path) -> None:
    path = write(tmp_path, SAM_HEAD + """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: python3.12
              CodeUri: src
              Events:
                Old:
                  Type: HttpApi
                  Properties: {Path: "/old/{id}", Method: GET, PayloadFormatVersion: "1.0"}
                New:
                  Type: HttpApi
                  Properties: {Path: /new, Method: GET}
    """)
    fn = load_function(path, "Fn")
    old = fn.events["Old"].event(path_parameters={"id": "7"})
    assert "version" not in old and old["httpMethod"] == "GET" and old["pathParameters"] == {"id": "7"}
    assert old["requestContext"]["stage"] == "$default"
    assert fn.events["New"].event()["version"] == "2.0"
    sls = write(tmp_path / "sls", """
        service: shop
        provider: {name: aws, runtime: python3.12, httpApi: {payload: '1.0'}}
        functions:
          fn:
            handler: app.handler
            events:
              - httpApi: GET /orders
    """, name="serverless.yml")
    assert "httpMethod" in load_function(sls, "fn").events["httpApi"].event()


# -- matching, without a sandbox --------------------------------------------------------------------------------


def _table(*functions: tuple[str, list[tuple[str, dict[str, Any]]]]) -> Routes:
    """Routes over stand-in functions: (name, [(type, fields)])."""
    kinds = {"Api": "api", "HttpApi": "http-api", "http": "api", "httpApi": "http-api"}
    fns = {name: SimpleNamespace(_template_events={
        f"E{i}": TemplateEvent(f"E{i}", kind, kinds[kind], fields, f"template.yaml:{i + 1}")
        for i, (kind, fields) in enumerate(entries)}) for name, entries in functions}
    return Routes.from_simulator(SimpleNamespace(functions=fns, region="us-east-1"))  # type: ignore[arg-type]


def _found(routes: Routes, method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    found = routes.find(method, path)
    return None if found is None else (found[0].function, found[0].shown, found[1])


def test_literal_beats_parameter_beats_greedy_and_a_method_beats_any() -> None:
    routes = _table(
        ("Greedy", [("HttpApi", {"path": "/{proxy+}", "route_key": "ANY /{proxy+}"})]),
        ("Param", [("HttpApi", {"path": "/items/{id}", "method": "GET"})]),
        ("AnyParam", [("HttpApi", {"path": "/items/{id}", "route_key": "ANY /items/{id}"})]),
        ("Literal", [("HttpApi", {"path": "/items/special", "method": "GET"})]),
        ("Nested", [("HttpApi", {"path": "/items/{id}/parts/{proxy+}", "method": "GET"})]),
    )
    assert _found(routes, "GET", "/items/special") == ("Literal", "GET /items/special", {})
    assert _found(routes, "GET", "/items/a%2Fb%20c") == ("Param", "GET /items/{id}", {"id": "a/b c"})
    assert _found(routes, "DELETE", "/items/1") == ("AnyParam", "ANY /items/{id}", {"id": "1"})
    assert _found(routes, "GET", "/items/1/") == ("Param", "GET /items/{id}", {"id": "1"})  # a trailing slash
    assert _found(routes, "GET", "/items/1/parts/x/y%20z") == ("Nested", "GET /items/{id}/parts/{proxy+}",
                                                               {"id": "1", "proxy": "x/y z"})
    assert _found(routes, "POST", "/other/deep/path") == ("Greedy", "ANY /{proxy+}", {"proxy": "other/deep/path"})
    assert _found(routes, "GET", "/") is None  # a greedy parameter takes at least one segment
    assert _found(routes, "GET", "/items/1/parts") == ("Greedy", "ANY /{proxy+}", {"proxy": "items/1/parts"})


def test_the_default_route_takes_the_rest_and_the_first_of_a_route_wins() -> None:
    with pytest.warns(RouteWarning, match=r"template.yaml:1: GET /items/\{key\} of Second is also the route of "
                                          r"First \(template.yaml:1, GET /items/\{id\}\); lambdasim serves First's"):
        routes = _table(("First", [("Api", {"path": "/items/{id}", "method": "GET"})]),
                        ("Second", [("Api", {"path": "/items/{key}", "method": "GET"})]),
                        ("Default", [("HttpApi", {"route_key": "$default"})]))
    assert _found(routes, "GET", "/items/1") == ("First", "GET /items/{id}", {"id": "1"})
    assert _found(routes, "PUT", "/anything") == ("Default", "ANY $default", {})
    assert routes.describe()[0] == "GET /items/{id} -> First (template.yaml:1)"


def test_no_route_answers_as_the_api_would() -> None:
    def no_route(routes: Routes, method: str, path: str) -> tuple[int, bytes]:
        response = routes.handle(SimpleNamespace(method=method, path=path, too_large=False))  # type: ignore[arg-type]
        return response.status, response.body

    rest = _table(("Fn", [("Api", {"path": "/items/{id}", "method": "GET"})]))
    http_api = _table(("Fn", [("HttpApi", {"path": "/items/{id}", "method": "GET"})]))
    both = _table(("Fn", [("Api", {"path": "/items/{id}", "method": "GET"}),
                          ("HttpApi", {"path": "/v2/items", "method": "GET"})]))
    token = (403, b'{"message":"Missing Authentication Token"}')
    not_found = (404, b'{"message":"Not Found"}')
    assert no_route(rest, "GET", "/nothing") == token
    assert no_route(rest, "POST", "/items/1") == token
    assert no_route(http_api, "GET", "/nothing") == not_found
    assert no_route(http_api, "POST", "/items/1") == not_found
    assert no_route(both, "POST", "/items/1") == token  # a REST route's path: the REST API's answer
    assert no_route(both, "GET", "/nothing") == not_found
    assert no_route(_table(), "GET", "/") == not_found


# -- served ------------------------------------------------------------------------------------------------------

APP = '''
import base64, json, os, uuid

def echo(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}

def shaped(event, context):
    mode = event["pathParameters"]["mode"]
    if mode == "fail":
        raise ValueError("boom")
    results = {
        "status": {"statusCode": 201, "headers": {"X-One": "1", "X-Num": 5},
                   "multiValueHeaders": {"X-Many": ["a", "b"], "X-One": ["1"]}, "body": "made"},
        "cookies": {"statusCode": 200, "cookies": ["a=1; Path=/", "b=2"], "body": "ok"},
        "bare": {"hello": "world"},
        "binary": {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                   "isBase64Encoded": True, "body": event.get("body") or ""},
        "no-status": {"body": "x"},
        "not-dict": "text",
        "body-not-string": {"statusCode": 200, "body": {"a": 1}},
        "bad-header": {"statusCode": 200, "headers": {"X": ["list"]}, "body": ""},
        "bad-base64": {"statusCode": 200, "isBase64Encoded": True, "body": "%%%"},
    }
    return results[mode]

def counter(event, context):
    path = "/tmp/count"
    count = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as f:
        f.write(str(count))
    return {"statusCode": 200, "body": str(count)}
'''

TEMPLATE = SAM_HEAD + """
Resources:
  Items:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.echo
      Runtime: python3.12
      CodeUri: src
      Events:
        GetItem:
          Type: Api
          Properties: {Path: "/items/{id}", Method: get}
        PostItem:
          Type: Api
          Properties: {Path: /items, Method: post}
        Files:
          Type: HttpApi
          Properties: {Path: "/files/{proxy+}", Method: ANY}
  Shapes:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.shaped
      Runtime: python3.12
      CodeUri: src
      Events:
        Rest:
          Type: Api
          Properties: {Path: "/rest/{mode}", Method: any}
        Http:
          Type: HttpApi
          Properties: {Path: "/http/{mode}", Method: any}
  Counter:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.counter
      Runtime: python3.12
      CodeUri: src
      Events:
        Count:
          Type: HttpApi
          Properties: {Path: /count, Method: get}
  Urled:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.echo
      Runtime: python3.12
      CodeUri: src
      FunctionUrlConfig:
        AuthType: AWS_IAM
        Cors: {AllowOrigins: ["https://app.example"], AllowMethods: [GET, POST], ExposeHeaders: [x-id], MaxAge: 60}
  Failing:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.shaped
      Runtime: python3.12
      CodeUri: src
      FunctionUrlConfig: {AuthType: NONE}
"""


@pytest.fixture
def served(sim: Simulator, tmp_path: Path) -> Any:
    path = write(tmp_path, TEMPLATE)
    (tmp_path / "src" / "app.py").write_text(APP)
    for name in ("Items", "Shapes", "Counter", "Urled", "Failing"):
        sim.deploy_from_template(path, name)
    with sim.serve() as url:
        yield url


def test_a_rest_route_with_path_parameters_repeated_headers_and_query(served: Any) -> None:
    status, headers, body = request(served, "GET", "/items/a%20b?tag=x&tag=y&one=1",
                                    headers=[("X-Rep", "1"), ("X-Rep", "2"), ("User-Agent", "tester")])
    assert status == 200, body
    event = json.loads(body)
    assert event["resource"] == "/items/{id}" and event["path"] == "/items/a%20b"
    assert event["pathParameters"] == {"id": "a b"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["x", "y"], "one": ["1"]}
    assert event["queryStringParameters"] == {"tag": "y", "one": "1"}
    assert event["multiValueHeaders"]["X-Rep"] == ["1", "2"] and event["headers"]["X-Rep"] == "2"
    assert event["requestContext"]["stage"] == "Prod" and event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert values(headers, "x-amzn-RequestId") == [event["requestContext"]["requestId"]]


def test_a_post_with_a_json_body(served: Any) -> None:
    status, _, body = request(served, "POST", "/items", json.dumps({"name": "book"}).encode(),
                              headers=[("Content-Type", "application/json")])
    assert status == 200, body
    event = json.loads(body)
    assert event["httpMethod"] == "POST" and json.loads(event["body"]) == {"name": "book"}
    assert event["isBase64Encoded"] is False


def test_an_http_api_greedy_route_cookies_and_a_binary_body(served: Any) -> None:
    raw = bytes(range(256))
    status, headers, body = request(served, "PUT", "/files/a/b%20c.bin?x=1&x=2", raw,
                                    headers=[("Content-Type", "application/octet-stream"),
                                             ("Cookie", "session=abc; theme=dark"), ("X-Rep", "1"), ("X-Rep", "2")])
    assert status == 200, body
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "ANY /files/{proxy+}"
    assert event["rawPath"] == "/files/a/b%20c.bin" and event["pathParameters"] == {"proxy": "a/b c.bin"}
    assert event["rawQueryString"] == "x=1&x=2" and event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["session=abc", "theme=dark"] and "cookie" not in event["headers"]
    assert event["headers"]["x-rep"] == "1,2"
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == raw
    assert values(headers, "apigw-requestid") == [event["requestContext"]["requestId"]]
    # Text that is not UTF-8 is binary too; UTF-8 text of a textual type stays text.
    _, _, body = request(served, "POST", "/files/t", b"\xff\xfe", headers=[("Content-Type", "text/plain")])
    assert json.loads(body)["isBase64Encoded"] is True
    _, _, body = request(served, "POST", "/files/t", "héllo".encode(), headers=[("Content-Type", "text/plain")])
    assert (json.loads(body)["body"], json.loads(body)["isBase64Encoded"]) == ("héllo", False)


def test_a_binary_body_round_trips(served: Any) -> None:
    raw = bytes(range(255, -1, -1))
    for prefix in ("/rest", "/http"):
        status, headers, body = request(served, "POST", f"{prefix}/binary", raw,
                                        headers=[("Content-Type", "application/octet-stream")])
        assert (status, body) == (200, raw), prefix
        assert values(headers, "Content-Type") == ["application/octet-stream"]


def test_status_headers_and_cookies_from_the_result(served: Any) -> None:
    status, headers, body = request(served, "GET", "/rest/status")
    assert (status, body) == (201, b"made")
    assert values(headers, "X-One") == ["1"] and values(headers, "X-Num") == ["5"]
    assert values(headers, "X-Many") == ["a", "b"]
    assert values(headers, "Content-Type") == ["application/json"]  # a REST API's default
    status, headers, body = request(served, "GET", "/http/cookies")
    assert (status, body) == (200, b"ok")
    assert values(headers, "Set-Cookie") == ["a=1; Path=/", "b=2"]
    # Payload 2.0: a result without statusCode is a 200 with the result as a JSON body.
    status, headers, body = request(served, "GET", "/http/bare")
    assert (status, json.loads(body)) == (200, {"hello": "world"})
    assert values(headers, "Content-Type") == ["application/json"]
    assert request(served, "GET", "/http/not-dict")[::2] == (200, b'"text"')


@pytest.mark.parametrize("mode", ["no-status", "not-dict", "body-not-string", "bad-header", "bad-base64", "bare"])
def test_malformed_results_are_api_gateways_internal_error(served: Any, mode: str) -> None:
    status, headers, body = request(served, "GET", f"/rest/{mode}")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
    assert values(headers, "x-amzn-ErrorType") == ["InternalServerErrorException"]
    if mode not in ("no-status", "not-dict", "bare"):  # those are a 200 in payload 2.0
        assert request(served, "GET", f"/http/{mode}")[::2] == (500, b'{"message":"Internal Server Error"}')


def test_a_function_error(served: Any) -> None:
    assert request(served, "GET", "/rest/fail")[::2] == (502, b'{"message": "Internal server error"}')
    assert request(served, "GET", "/http/fail")[::2] == (500, b'{"message":"Internal Server Error"}')


def test_missing_routes_and_methods(served: Any) -> None:
    # This server has both kinds: a REST route's path answers as the REST API, others as the HTTP API.
    assert request(served, "DELETE", "/items/1")[::2] == (403, b'{"message":"Missing Authentication Token"}')
    assert request(served, "GET", "/nowhere")[::2] == (404, b'{"message":"Not Found"}')
    assert request(served, "POST", "/count")[::2] == (404, b'{"message":"Not Found"}')


def test_tmp_is_kept_between_requests_of_a_warm_instance(served: Any, sim: Simulator) -> None:
    counts = [request(served, "GET", "/count")[2] for _ in range(3)]
    assert counts == [b"1", b"2", b"3"]
    (instance,) = sim.functions["Counter"].instances
    assert request(served, "GET", "/count")[2] == b"4"
    assert [i.id for i in sim.functions["Counter"].instances] == [instance.id]


def test_a_function_url(served: Any) -> None:
    assert set(served.function_urls) == {"Urled", "Failing"}
    base = served.function_urls["Urled"]
    status, headers, body = request(base, "POST", "/any/path?q=1", b"hi",
                                    headers=[("Origin", "https://app.example"), ("Cookie", "c=1"),
                                             ("Content-Type", "text/plain")])
    assert status == 200, body
    event = json.loads(body)
    assert event["routeKey"] == "$default" and event["rawPath"] == "/any/path" and event["rawQueryString"] == "q=1"
    assert event["requestContext"]["domainName"].endswith(".lambda-url.us-east-1.on.aws")
    assert "iam" in event["requestContext"]["authorizer"]  # AWS_IAM (the signature is not checked)
    assert (event["body"], event["cookies"]) == ("hi", ["c=1"])
    assert values(headers, "Access-Control-Allow-Origin") == ["https://app.example"]
    assert values(headers, "Access-Control-Expose-Headers") == ["x-id"]
    # A preflight is Lambda's to answer; an origin not allowed gets no CORS headers.
    status, headers, body = request(base, "OPTIONS", "/x", headers=[("Origin", "https://app.example"),
                                                                    ("Access-Control-Request-Method", "POST")])
    assert (status, body) == (200, b"")
    assert values(headers, "Access-Control-Allow-Methods") == ["GET,POST"]
    assert values(headers, "Access-Control-Max-Age") == ["60"]
    _, headers, _ = request(base, "GET", "/", headers=[("Origin", "https://evil.example")])
    assert values(headers, "Access-Control-Allow-Origin") == []
    # A function error: Lambda's 502.
    failing = served.function_urls["Failing"]
    status, _, body = request(failing, "GET", "/")
    assert (status, body) == (502, b"Internal Server Error")


def test_a_serverless_config(sim: Simulator, tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: shop
        provider: {name: aws, runtime: python3.12, stage: test}
        functions:
          rest:
            handler: app.echo
            events:
              - http: {path: "orders/{id}", method: get}
          http:
            handler: app.echo
            url: true
            events:
              - httpApi: 'POST /orders'
    """, name="serverless.yml")
    (tmp_path / "app.py").write_text(APP)
    sim.deploy_from_template(path, "rest")
    sim.deploy_from_template(path, "http")
    with sim.serve() as url:
        status, _, body = request(url, "GET", "/orders/42")
        assert status == 200, body
        event = json.loads(body)
        assert event["pathParameters"] == {"id": "42"} and event["requestContext"]["stage"] == "test"
        status, _, body = request(url, "POST", "/orders", b"{}", headers=[("Content-Type", "application/json")])
        assert status == 200 and json.loads(body)["routeKey"] == "POST /orders"
        status, _, body = request(url.function_urls["http"], "GET", "/")
        assert status == 200 and json.loads(body)["routeKey"] == "$default"


def _pattern(name: str, into: Path) -> Path:
    """One folder of aws-samples/serverless-patterns, unmodified, copied into ``into``."""
    if not (PATTERNS / "HEAD").exists():
        pytest.skip(f"aws-samples/serverless-patterns is not mirrored at {PATTERNS}")
    git = ["git", f"--git-dir={PATTERNS}"]
    files = subprocess.run([*git, "ls-tree", "-r", "--name-only", "HEAD", name], capture_output=True, text=True,
                           check=True).stdout.split()
    for file in files:
        target = into / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(subprocess.run([*git, "show", f"HEAD:{file}"], capture_output=True, check=True).stdout)
    return into / name


def test_a_public_project_apigw_lambda_dynamodb(sim: Simulator, tmp_path: Path) -> None:
    # aws-samples/serverless-patterns' apigw-lambda-dynamodb: POST / puts an item into its SimpleTable.
    folder = _pattern("apigw-lambda-dynamodb", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Policies are not modelled; python3.14 may run on another Python
        sim.deploy_from_template(folder / "template.yaml", "LambdaFunction")
    with sim.serve() as url:
        assert request(url, "POST", "/", b"{}")[::2] == (200, b"Successfully inserted data!")
        assert request(url, "GET", "/")[0] == 403  # a REST API: no GET route
    items = sim.boto3_client("dynamodb").scan(TableName="WeatherData")["Items"]
    assert items == [{"id": {"S": "1"}, "Weather": {"S": "Sunny"}}]
    assert os.path.isdir(folder / "src")


def test_throttled_and_oversized_requests(sim: Simulator, tmp_path: Path) -> None:
    path = write(tmp_path, TEMPLATE)
    (tmp_path / "src" / "app.py").write_text(APP)
    sim.deploy_from_template(path, "Shapes", reserved_concurrency=0)  # every invocation throttled (429)
    sim.deploy_from_template(path, "Failing", reserved_concurrency=0)
    sim.deploy_from_template(path, "Items")
    big = b"x" * (7 * 1024 * 1024)  # under API Gateway's 10 MB, over Lambda's 6 MB once in the event
    with sim.serve() as url:
        # Lambda refused the invocation: API Gateway's 500 (not the 502 of a function error).
        assert request(url, "GET", "/rest/status")[::2] == (500, b'{"message": "Internal server error"}')
        assert request(url, "GET", "/http/status")[::2] == (500, b'{"message":"Internal Server Error"}')
        assert request(url, "POST", "/items", big, headers=[("Content-Type", "text/plain")])[0] == 500
        # Over 10 MB the server does not read the body (lambdasim._serve._http): the routes answer 413.
        huge = Routes.from_simulator(sim).handle(
            Request("POST", "/items", (), b"", "127.0.0.1", too_large=True))
        assert (huge.status, huge.body) == (413, b'{"message":"Request Too Long"}')
        # A function URL passes Lambda's refusal on.
        status, headers, body = request(url.function_urls["Failing"], "GET", "/")
        assert status == 429 and json.loads(body)["Message"] == "Rate Exceeded."
        assert values(headers, "x-amzn-ErrorType") == ["TooManyRequestsException"]
