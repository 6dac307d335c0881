"""A template's non-function resources, created in the simulator's moto at deploy (lambdasim._template_resources),
and ``!Ref``/``!GetAtt``/``!Sub``/``!Join`` of them resolved to what moto gave."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from lambdasim import ConfigError, Simulator
from lambdasim._template_resources import TemplateResourceWarning, covered_types, preview_resources
from lambdasim._templates import load_function

RESOURCES = Path(__file__).parent / "templates" / "resources"
SAM = RESOURCES / "sam" / "template.yaml"
SLS = RESOURCES / "serverless" / "serverless.yml"


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def deploy(sim: Simulator, path: Path, function: str, **overrides: Any) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn = sim.deploy_from_template(path, function, **overrides)
    return fn, [str(w.message) for w in caught if issubclass(w.category, TemplateResourceWarning)]


def test_the_required_types_are_covered() -> None:
    assert {"AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable", "AWS::S3::Bucket", "AWS::SQS::Queue",
            "AWS::SNS::Topic", "AWS::SSM::Parameter", "AWS::SecretsManager::Secret",
            "AWS::Events::EventBus"} <= covered_types()


def test_sam_resources_exist_and_refs_resolve_to_their_names_and_arns(sim: Simulator) -> None:
    fn, warned = deploy(sim, SAM, "OrdersFunction")
    inv = fn.invoke({"put": {"id": "1"}})
    assert inv.error is None, inv.logs
    env = inv.payload["env"]
    # Physical names given by TableName / BucketName / Name are kept; the others are moto's, as CloudFormation's.
    assert env["TABLE_NAME"] == "orders-dev"
    assert env["TABLE_ARN"] == "arn:aws:dynamodb:us-east-1:123456789012:table/orders-dev"
    assert env["GENERATED_TABLE"].startswith("sam-EventsTable-")
    assert env["SIMPLE_TABLE"].startswith("sam-Customers-")
    assert env["BUCKET"] == "uploads-dev" and env["BUCKET_ARN"] == "arn:aws:s3:::uploads-dev"
    queue_name = env["QUEUE_ARN"].rsplit(":", 1)[1]
    assert queue_name.startswith("sam-Jobs-")
    assert env["QUEUE_URL"] == f"https://sqs.us-east-1.amazonaws.com/123456789012/{queue_name}"
    assert env["TOPIC_ARN"] == f"arn:aws:sns:us-east-1:123456789012:{env['TOPIC_NAME']}"
    assert env["PARAMETER"] == "/app/setting" and env["PARAMETER_VALUE"] == "on-dev"
    assert env["SECRET"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key-")
    assert env["BUS"] == "bus-dev" and env["BUS_ARN"] == "arn:aws:events:us-east-1:123456789012:event-bus/bus-dev"
    assert env["JOINED"] == "orders-dev|uploads-dev"
    assert env["SUBBED"] == f"orders-dev/{queue_name}/sam"  # AWS::StackName: the stack's name
    # Another function: its literal FunctionName; a role: its ARN (IAM is not created, nor enforced).
    assert env["OTHER_FUNCTION"] == "reports-dev"
    assert env["OTHER_ARN"] == "arn:aws:lambda:us-east-1:123456789012:function:reports-dev"
    assert env["ROLE_ARN"] == "arn:aws:iam::123456789012:role/sam-WorkerRole"
    # The function's boto3 wrote to the table, which the test side's client sees.
    assert inv.payload["items"] == [{"id": "1"}]
    dynamodb = sim.boto3_client("dynamodb")
    assert dynamodb.scan(TableName="orders-dev")["Items"] == [{"id": {"S": "1"}}]
    simple = dynamodb.describe_table(TableName=env["SIMPLE_TABLE"])["Table"]
    assert simple["KeySchema"] == [{"AttributeName": "customer", "KeyType": "HASH"}]
    assert simple["AttributeDefinitions"] == [{"AttributeName": "customer", "AttributeType": "N"}]
    assert simple["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert sim.boto3_client("s3").head_bucket(Bucket="uploads-dev")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sim.boto3_client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"].endswith(queue_name)
    assert [t["TopicArn"] for t in sim.boto3_client("sns").list_topics()["Topics"]] == [env["TOPIC_ARN"]]
    secret = sim.boto3_client("secretsmanager").get_secret_value(SecretId="api-key")
    assert json.loads(secret["SecretString"]) == {"key": "s3cr3t"}
    assert sim.boto3_client("events").describe_event_bus(Name="bus-dev")["Arn"] == env["BUS_ARN"]
    # What is not covered is named with its file:line, not skipped silently.
    assert warned == [f"{SAM}:{line_of(SAM, '  Pool:')}: Resources.Pool: AWS::Cognito::UserPool is not created: "
                      "moto's CloudFormation does not cover the type; a !Ref or !GetAtt of it cannot be resolved"]


def test_a_template_function_has_the_name_lambda_gives_it(sim: Simulator) -> None:
    fn, _ = deploy(sim, SAM, "OrdersFunction")
    assert fn.name == "OrdersFunction" and sim.functions["OrdersFunction"] is fn  # the handle: its logical ID
    name = fn.config.function_name
    # No FunctionName: CloudFormation's <stack>-<LogicalId>-<RANDOM>, in the stack the resources were created in.
    assert name is not None and re.fullmatch(r"sam-OrdersFunction-[A-Z0-9]{12}", name), name
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    named = {"context": name, "arn": arn, "env": name, "log_group": f"/aws/lambda/{name}"}
    assert fn.invoke({}).payload["named"] == named
    assert fn.debug_invoke({})["named"] == named
    # Another function and another resource of the template refer to it by that name.
    reports, _ = deploy(sim, SAM, "ReportsFunction")
    payload = reports.invoke({}).payload
    assert payload["named"]["env"] == payload["named"]["context"] == "reports-dev", "its FunctionName is kept"
    assert (payload["env"]["ORDERS_FUNCTION"], payload["env"]["ORDERS_ARN"]) == (name, arn)
    assert sim.boto3_client("ssm").get_parameter(Name="/app/orders-function")["Parameter"]["Value"] == arn
    # Given another name, the function is named that on Lambda too.
    again, _ = deploy(sim, SAM, "OrdersFunction", name="OrdersAgain")
    assert again.invoke({}).payload["named"]["context"] == "OrdersAgain"
    with pytest.raises(ConfigError, match=r"function_name='no spaces' is not valid; use 1 to 64 letters"):
        sim.deploy_from_template(SAM, "OrdersFunction", name="Third", function_name="no spaces")


def test_function_names_follow_the_tools_rules(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    sls = tmp_path / "serverless.yml"
    sls.write_text(textwrap.dedent("""\
        service: svc
        provider: {name: aws, runtime: python3.12}
        functions:
          hello: {handler: src/app.handler}
          custom: {handler: src/app.handler, name: my-own-name}
          resolved: {handler: src/app.handler, name: "${self:service}-${sls:stage}-${opt:suffix, 'x'}"}
        """))
    assert load_function(sls, "hello").function_name == "svc-dev-hello"  # provider.stage's default: dev
    assert load_function(sls, "hello", parameters={"stage": "prod"}).function_name == "svc-prod-hello"
    assert load_function(sls, "custom").function_name == "my-own-name"
    assert load_function(sls, "resolved", parameters={"suffix": "y"}).function_name == "svc-dev-y"
    sam = tmp_path / "template.yaml"
    sam.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Name: {Type: String, Default: ok-name}
        Resources:
          Named:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src, FunctionName: !Ref Name}
          Generated:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src}
        """))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FunctionName is read: no "lambdasim does not model FunctionName"
        assert load_function(sam, "Named").function_name == "ok-name"
    assert load_function(sam, "Generated").function_name is None, "CloudFormation's name needs the stack"
    stack = tmp_path.name.replace("_", "-")
    generated = load_function(sam, "Generated", resources=preview_resources(sam)).function_name
    assert generated is not None and re.fullmatch(rf"{stack}-Generated-[A-Z0-9]{{12}}", generated), generated
    with pytest.raises(ConfigError) as info:
        load_function(sam, "Named", parameters={"Name": "not a name"})
    assert str(info.value) == (f"{sam}:7: Resources.Named.Properties.FunctionName: !Ref Name ('not a name') is not a "
                               "Lambda function name; Lambda wants 1 to 64 letters, digits, '-' or '_'.")


def test_a_second_function_of_the_template_reuses_its_resources(sim: Simulator) -> None:
    first, _ = deploy(sim, SAM, "OrdersFunction")
    first_env = first.invoke({}).payload["env"]
    second, warned = deploy(sim, SAM, "ReportsFunction")
    assert warned == []  # created once, warned once
    assert second.invoke({}).payload["items"] == []
    stacks = sim.boto3_client("cloudformation").list_stacks()["StackSummaries"]
    assert [s["StackName"] for s in stacks] == ["sam"]
    again, _ = deploy(sim, SAM, "OrdersFunction", name="OrdersAgain")
    assert again.invoke({}).payload["env"]["GENERATED_TABLE"] == first_env["GENERATED_TABLE"]


def test_generated_names_follow_the_seed() -> None:
    names = []
    for _ in range(2):
        with Simulator(sandbox="fakefs", seed=7) as sim:
            fn, _ = deploy(sim, SAM, "OrdersFunction")
            names.append(fn.config.environment["GENERATED_TABLE"])
            assert names[-1] in sim.boto3_client("dynamodb").list_tables()["TableNames"]
            names.append(str(fn.config.function_name))
    assert names[0] == names[2] and names[0].startswith("sam-EventsTable-") and len(names[0]) == 28
    assert names[1] == names[3] and names[1].startswith("sam-OrdersFunction-")


def test_parameters_reach_the_resources(sim: Simulator) -> None:
    fn, _ = deploy(sim, SAM, "ReportsFunction", parameters={"Stage": "prod"})
    assert fn.invoke({}).payload["env"]["TABLE_NAME"] == "orders-prod"
    assert "orders-prod" in sim.boto3_client("dynamodb").list_tables()["TableNames"]


def test_resources_are_created_again_once_moto_was_emptied(sim: Simulator) -> None:
    deploy(sim, SAM, "OrdersFunction")
    sim.services["aws"].flush()
    assert sim.boto3_client("dynamodb").list_tables()["TableNames"] == []
    fn, _ = deploy(sim, SAM, "ReportsFunction")
    assert fn.invoke({"put": {"id": "2"}}).payload["items"] == [{"id": "2"}]


def test_serverless_resources_and_function_names(sim: Simulator) -> None:
    fn, warned = deploy(sim, SLS, "cart")
    payload = fn.invoke({}).payload
    env = payload["env"]
    assert payload["named"]["env"] == payload["named"]["context"] == "shop-dev-cart"
    assert warned == []
    assert env["TABLE_NAME"] == "shop-dev-carts"
    assert env["QUEUE_ARN"] == "arn:aws:sqs:us-east-1:123456789012:shop-dev-orders"
    assert env["CHECKOUT"] == "shop-dev-checkout"  # a Serverless function is named service-stage-function
    staged, _ = deploy(sim, SLS, "checkout", parameters={"stage": "prod"})
    payload = staged.invoke({}).payload
    assert payload["env"]["TABLE_NAME"] == "shop-prod-carts"
    assert payload["env"]["CHECKOUT"] == payload["named"]["env"] == "shop-prod-checkout"
    assert sim.functions["checkout"] is staged
    assert sorted(s["StackName"] for s in sim.boto3_client("cloudformation").list_stacks()["StackSummaries"]) == [
        "shop-dev", "shop-prod"]


def test_a_template_of_functions_only_starts_no_aws(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("import os\ndef handler(e, c):\n    return os.environ['PEER']\n")
    (tmp_path / "template.yaml").write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src,
                         Environment: {Variables: {PEER: !Ref Peer}}}
          Peer:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src}
        """))
    fn = sim.deploy_from_template(tmp_path / "template.yaml", "Fn")
    stack = tmp_path.name.replace("_", "-")  # the folder's name, as a stack name
    assert re.fullmatch(rf"{stack}-Peer-[A-Z0-9]{{12}}", fn.invoke({}).payload), "!Ref Peer: the name Lambda has"
    assert "aws" not in sim.services


def test_a_ref_to_a_resource_not_created_says_why(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src,
                         Environment: {Variables: {POOL: !GetAtt Pool.Arn}}}
          Pool:
            Type: AWS::Cognito::UserPool
        """))
    with pytest.raises(ConfigError) as info:
        deploy(sim, path, "Fn")
    assert str(info.value) == (
        f"{path}:6: Resources.Fn.Properties.Environment.Variables.POOL: !GetAtt Pool.Arn cannot be resolved "
        "locally: 'Pool' is AWS::Cognito::UserPool, which lambdasim does not create (moto's CloudFormation does "
        "not cover the type); set the value with environment={'POOL': '...'} (an override for load_function() or "
        "Simulator.deploy_from_template()).")


def test_without_a_simulator_a_resource_still_cannot_be_resolved() -> None:
    with pytest.raises(ConfigError, match=r"!Ref OrdersTable cannot be resolved locally: .OrdersTable. is a resource"):
        load_function(SAM, "OrdersFunction")
    # Read before the services start (a command's checks): placeholders.
    fn = load_function(SAM, "OrdersFunction", resources=preview_resources(SAM))
    assert fn.environment["TABLE_ARN"] == "<OrdersTable.Arn: created at deploy>"
    assert fn.environment["OTHER_FUNCTION"] == "reports-dev"


def test_the_plugin_gives_every_test_fresh_resources(pytester: pytest.Pytester) -> None:
    shutil.copytree(RESOURCES / "sam", pytester.path / "app")
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    pytester.makepyfile(test_app="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_put(lambda_sim, n):
            fn = lambda_sim.deploy_from_template("app/template.yaml", "OrdersFunction")
            assert fn.invoke({"put": {"id": str(n)}}).payload["items"] == [{"id": str(n)}]
            assert lambda_sim.boto3_client("dynamodb").scan(TableName="orders-dev")["Count"] == 1
        """)
    pytester.runpytest("--lambda-sim", "-W", "ignore::UserWarning").assert_outcomes(passed=2)


# -- seeding: one generic boto3 call, in a scenario step and in --setup FILE ------------------------------------


def scenario(tmp_path: Path, steps: str, head: str = "") -> Path:
    path = tmp_path / "s.yaml"
    steps = textwrap.indent(textwrap.dedent(steps), "  ")
    path.write_text(f"{head}steps:\n  - deploy: {{template: {SAM}, function: OrdersFunction}}\n{steps}")
    return path


def test_a_scenario_seeds_the_templates_table(tmp_path: Path) -> None:
    from lambdasim._scenario.runner import run_file

    path = scenario(tmp_path, """\
          - aws: {service: dynamodb, call: put_item, args: {TableName: orders-dev, Item: {id: {S: seeded}}}}
          - aws: {service: s3, call: PutObject, args: {Bucket: uploads-dev, Key: a.txt, Body: hello}}
          - invoke: {event: {}, as: first}
          - expect: {invocation: first, payload_contains: {items: [{id: seeded}]}}
          - expect: {s3_object: {bucket: uploads-dev, key: a.txt, body_contains: hello}}
          - aws: stop
        """)  # s3_object and aws: stop need aws: the template's deploy starts it for its resources
    result = run_file(path)
    assert result.passed
    assert [s.summary for s in result.steps][1:3] == ["aws: dynamodb.put_item", "aws: s3.put_object"]


@pytest.mark.parametrize(("step", "key", "reason"), [
    ("{service: dynamo, call: put_item}", "steps[1].aws.service",
     "'dynamo' is not a service boto3 knows (did you mean 'dynamodb'?); botocore's services are: accessanalyzer, "),
    ("{service: dynamodb, call: put_items}", "steps[1].aws.call",
     "'put_items' is not an operation of dynamodb (did you mean 'put_item'?); its operations are: batch_execute_"),
    ("{service: dynamodb, call: put_item, args: {TableName: t}}", "steps[1].aws.args",
     "not valid for dynamodb.put_item: Missing required parameter in input: \"Item\""),
    ("{service: dynamodb, call: put_item, action: stop}", "steps[1].aws.action",
     "unknown key 'action'; allowed keys: service, call, args"),
])
def test_a_scenario_call_is_checked_against_botocore(tmp_path: Path, step: str, key: str, reason: str) -> None:
    from lambdasim._scenario.base import ScenarioError
    from lambdasim._scenario.runner import load_scenario

    path = scenario(tmp_path, f"  - aws: {step}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.file, info.value.line, info.value.key) == (str(path), 3, key)
    assert info.value.reason.startswith(reason), info.value.reason


def test_a_failing_call_names_its_line(tmp_path: Path) -> None:
    from lambdasim._scenario.base import ScenarioError
    from lambdasim._scenario.runner import run_file

    path = scenario(tmp_path, "- aws: {service: dynamodb, call: get_item, args: {TableName: no, Key: {id: {S: a}}}}\n")
    with pytest.raises(ScenarioError) as info:
        run_file(path)
    assert (info.value.line, info.value.key) == (3, "steps[1].aws")
    assert info.value.reason.startswith("dynamodb.get_item failed: An error occurred (ResourceNotFoundException)")


def test_invoke_setup_seeds_the_templates_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lambdasim.cli import main

    setup = tmp_path / "setup.yaml"
    setup.write_text("- {service: dynamodb, call: put_item, args: {TableName: orders-dev, Item: {id: {S: x}}}}\n")
    assert main(["invoke", "-t", str(SAM), "OrdersFunction", "--setup", str(setup), "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == [{"id": "x"}]
    setup.write_text("- {service: dynamodb, call: put_item, args: {TableName: orders-dev}}\n")
    assert main(["invoke", "-t", str(SAM), "OrdersFunction", "--setup", str(setup), "-q"]) == 2
    assert f"{setup}:1: [0].args: not valid for dynamodb.put_item" in capsys.readouterr().err


def test_invoke_takes_the_functions_name_on_lambda_too(capsys: pytest.CaptureFixture[str]) -> None:
    from lambdasim.cli import main

    assert main(["invoke", "-t", str(SLS), "--function", "shop-dev-checkout", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["named"]["env"] == "shop-dev-checkout"
    assert main(["invoke", "-t", str(SAM), "--function", "reports-dev", "-q"]) == 0  # its FunctionName
    assert json.loads(capsys.readouterr().out)["named"]["context"] == "reports-dev"
    assert main(["invoke", "-t", str(SAM), "--function", "reports-prod", "-q"]) == 2
    assert "no function 'reports-prod' in Resources; the functions are: OrdersFunction" in capsys.readouterr().err


def test_detect_setup_runs_in_each_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lambdasim.cli import main

    setup = tmp_path / "setup.json"
    setup.write_text(json.dumps([{"service": "dynamodb", "call": "put_item",
                                  "args": {"TableName": "shop-dev-carts", "Item": {"id": {"S": "x"}}}}]))
    out = tmp_path / "report.json"
    argv = ["detect", "--template", str(SLS), "--function", "cart", "--repeat", "2", "--setup", str(setup),
            "--json", str(out)]
    # The function reads the table: seeded in the warm run and in the fresh run alike, so the results agree.
    assert main(argv) == 0, capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["verdict"] == "ok"
    assert json.dumps(report).count('"items": [{"id": "x"}]') >= 4  # each invocation of both runs saw the item


def test_a_resource_moto_refuses_is_a_warning_and_its_ref_says_why(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src,
                         Environment: {Variables: {TABLE: !Ref Broken}}}
          Broken:
            Type: AWS::DynamoDB::Table
            Properties: {TableName: broken}
        """))
    with pytest.warns(TemplateResourceWarning, match="moto failed on it") as caught, pytest.raises(ConfigError) as info:
        sim.deploy_from_template(path, "Fn")
    assert str(caught[0].message).startswith(f"{path}:7: Resources.Broken: AWS::DynamoDB::Table was not created: "
                                             "moto failed on it")
    assert "!Ref Broken cannot be resolved locally: 'Broken' was not created: moto failed on it" in str(info.value)


def test_a_resource_moto_fails_on_is_named_and_the_others_are_created(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src,
                         Environment: {Variables: {QUEUE: !Ref Queue}}}
          Queue:
            Type: AWS::SQS::Queue
            Properties: {QueueName: kept}
          Broken:
            Type: AWS::DynamoDB::Table
            Properties: {TableName: broken}
          UsesBroken:
            Type: AWS::SSM::Parameter
            Properties: {Name: uses-broken, Type: String, Value: !Ref Broken}
        """))
    fn, messages = deploy(sim, path, "Fn")
    assert fn.config.environment["QUEUE"].endswith("/kept")
    assert len(messages) == 1 and messages[0].startswith(
        f"{path}:10: Resources.Broken: AWS::DynamoDB::Table was not created: moto failed on it"), messages
    assert "(UsesBroken, which use it, are left out too)" in messages[0]
    assert sim.boto3_client("dynamodb").list_tables()["TableNames"] == []
    assert [p["Name"] for p in sim.boto3_client("ssm").describe_parameters()["Parameters"]] == []


def test_past_three_failing_resources_the_template_is_not_created(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    broken = "".join(f"  Broken{i}:\n    Type: AWS::DynamoDB::Table\n    Properties: {{TableName: broken{i}}}\n"
                     for i in range(1, 5))
    path.write_text("Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
                    "    Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src}\n" + broken)
    _, messages = deploy(sim, path, "Fn")
    assert [m.split(": ")[1] for m in messages[:3]] == ["Resources.Broken1", "Resources.Broken2", "Resources.Broken3"]
    assert len(messages) == 4 and messages[3].startswith(f"{path}: the template's resources were not created: moto's "
                                                         "CloudFormation could not create the stack"), messages


def test_a_rule_on_the_templates_event_bus_is_created(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src,
                         Environment: {Variables: {BUS: !Ref Bus}}}
          Rule:
            Type: AWS::Events::Rule
            Properties:
              EventBusName: !Ref Bus
              EventPattern: {source: [orders]}
          Bus:
            Type: AWS::Events::EventBus
            Properties: {Name: !Sub "${AWS::StackName}-bus"}
        """))
    fn, messages = deploy(sim, path, "Fn")
    assert messages == []
    bus = fn.config.environment["BUS"]
    assert bus == f"{tmp_path.name.replace('_', '-')}-bus"
    rules = sim.boto3_client("events").list_rules(EventBusName=bus)["Rules"]
    assert [json.loads(r["EventPattern"]) for r in rules] == [{"source": ["orders"]}]


def test_secrets_properties_are_resolved_and_a_failing_secret_keeps_the_others(sim: Simulator,
                                                                               tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          User: {Type: String, Default: admin}
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src,
                         Environment: {Variables: {SECRET: !Ref Generated, TABLE: !Ref Table}}}
          Generated:
            Type: AWS::SecretsManager::Secret
            Properties:
              Name: !Sub "${AWS::StackName}-generated"
              GenerateSecretString:
                SecretStringTemplate: !Sub '{"username": "${User}"}'
                GenerateStringKey: password
          Given:
            Type: AWS::SecretsManager::Secret
            Properties:
              Name: given
              SecretString: !Sub '{"region": "${AWS::Region}", "fn": "${Fn}"}'
          Bad:
            Type: AWS::SecretsManager::Secret
            Properties:
              Name: bad
              SecretString: !GetAtt Table.Arn
          Table:
            Type: AWS::Serverless::SimpleTable
        """))
    fn, messages = deploy(sim, path, "Fn")
    sm = sim.boto3_client("secretsmanager")
    generated = json.loads(sm.get_secret_value(SecretId=fn.config.environment["SECRET"])["SecretString"])
    assert generated["username"] == "admin" and len(generated["password"]) == 32
    assert sm.describe_secret(SecretId=fn.config.environment["SECRET"])["Name"].endswith("-generated")
    given = json.loads(sm.get_secret_value(SecretId="given")["SecretString"])
    assert given == {"region": sim.region, "fn": fn.config.function_name}
    assert len(messages) == 1 and messages[0].startswith(
        f"{path}:{line_of(path, '  Bad:')}: Resources.Bad: AWS::SecretsManager::Secret was not created: "), messages
    assert "{'Fn::GetAtt': ['Table', 'Arn']} cannot be resolved locally" in messages[0]
    assert fn.config.environment["TABLE"] in sim.boto3_client("dynamodb").list_tables()["TableNames"]


@pytest.mark.parametrize(("generate", "expected"), [
    ("{SecretStringTemplate: '{\"user\": \"u\"}'}", "has SecretStringTemplate but no GenerateStringKey"),
    ("{GenerateStringKey: password}", "has GenerateStringKey but no SecretStringTemplate"),
    ("{SecretStringTemplate: 'user=u', GenerateStringKey: password}", "SecretStringTemplate 'user=u' is not JSON"),
])
def test_a_secret_template_that_cannot_be_used_is_named(sim: Simulator, tmp_path: Path, generate: str,
                                                        expected: str) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: src}
          Secret:
            Type: AWS::SecretsManager::Secret
            Properties:
              GenerateSecretString: GENERATE
        """).replace("GENERATE", generate))
    _, messages = deploy(sim, path, "Fn")
    assert len(messages) == 1 and messages[0].startswith(f"{path}:6: Resources.Secret: AWS::SecretsManager::Secret "
                                                         "was not created: "), messages
    assert expected in messages[0]
    assert sim.boto3_client("secretsmanager").list_secrets()["SecretList"] == []


def test_a_serverless_variable_in_resources_is_reported_at_its_line(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "serverless.yml"
    path.write_text(textwrap.dedent("""\
        service: svc
        provider: {name: aws, runtime: python3.12}
        functions:
          fn: {handler: app.handler}
        resources:
          Resources:
            Table:
              Type: AWS::DynamoDB::Table
              Properties:
                TableName: ${opt:stage, self:provider.stage}-table
                BillingMode: PAY_PER_REQUEST
                AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
                KeySchema: [{AttributeName: id, KeyType: HASH}]
            Queue:
              Type: AWS::SQS::Queue
              Properties:
                QueueName: ${env:LAMBDASIM_TEST_UNSET}
        """))
    with pytest.raises(ConfigError) as info:
        deploy(sim, path, "fn")
    assert str(info.value).startswith(f"{path}:17: resources.Resources.Queue.Properties.QueueName: "
                                      "${env:LAMBDASIM_TEST_UNSET} has no value"), str(info.value)


def test_chaos_setup_runs_in_every_run_and_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hypothesis")
    from lambdasim.cli import main

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(textwrap.dedent("""\
        import boto3

        def handler(event, context):
            items = boto3.client("dynamodb").scan(TableName="seeded")["Items"]
            assert not items, f"found {items}"
        """))
    setup = tmp_path / "setup.yaml"
    setup.write_text(textwrap.dedent("""\
        - service: dynamodb
          call: create_table
          args: {TableName: seeded, BillingMode: PAY_PER_REQUEST, KeySchema: [{AttributeName: id, KeyType: HASH}],
                 AttributeDefinitions: [{AttributeName: id, AttributeType: S}]}
        - {service: dynamodb, call: put_item, args: {TableName: seeded, Item: {id: {S: x}}}}
        """))
    out = tmp_path / "found.yaml"
    argv = ["chaos", "--handler", "app.handler", "--code-dir", str(tmp_path / "src"), "--services", "aws",
            "--setup", str(setup), "--examples", "2", "--steps", "2", "--out", str(out),
            "--hypothesis-dir", str(tmp_path / "hyp")]
    assert main(argv) == 1, capsys.readouterr()
    written = out.read_text()
    assert "  - aws: {service: dynamodb, call: create_table, args: {TableName: seeded" in written
    assert "  - aws: {service: dynamodb, call: put_item, args: {TableName: seeded, Item: {id: {S: x}}}}" in written
    assert written.index("- deploy:") < written.index("- aws:") < written.index("- invoke:")
