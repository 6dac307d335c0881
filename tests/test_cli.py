"""``lambdasim invoke``, run in-process through ``main(argv)``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lambdasim.cli import main
from tests.conftest import Code

TEMPLATES = Path(__file__).parent / "templates"
SAM = TEMPLATES / "sam" / "template.yaml"
SLS = TEMPLATES / "serverless" / "serverless.yml"
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = pytest.mark.sandbox


def test_invoke_bundled_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke"]) == 0
    out, err = capsys.readouterr()
    response = json.loads(out)
    assert response["message"] == "Hello, world!"
    assert response["write_to_code_dir"] == "[Errno 30] Read-only file system: '/var/task/cache.json'"
    assert "START RequestId:" in err and "REPORT RequestId:" in err and "hello world" in err


def test_invoke_with_event_and_file(code: Code, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("def handler(event, context):\n    print('got', event)\n    return {'sum': event['a'] + 1}\n")
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--event", '{"a": 1}']) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"sum": 2}
    assert "got {'a': 1}" in err
    event_file = tmp_path / "event.json"
    event_file.write_text('{"a": 41}')
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--event", f"@{event_file}", "-q"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"sum": 42} and err == ""


def test_invoke_function_error_exits_non_zero(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("def handler(event, context):\n    raise ValueError('bad input')\n")
    assert main(["invoke", "app.handler", "--code-dir", str(src)]) == 1
    out, err = capsys.readouterr()
    error = json.loads(out)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad input")
    assert "[ERROR] ValueError: bad input" in err


def test_invoke_options_reach_the_function(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("""
        import os, shutil
        def handler(event, context):
            return [context.function_name, context.memory_limit_in_mb, os.environ["STAGE"],
                    shutil.disk_usage("/tmp").total // 2**20, context.get_remaining_time_in_millis() > 4000]
    """)
    argv = ["invoke", "app.handler", "--code-dir", str(src), "--name", "orders", "--memory", "256",
            "--timeout", "5", "--env", "STAGE=test", "--ephemeral-storage", "1024", "-q"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == ["orders", "256", "test", 1024, True]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invoke", "--event", "{not json"], "--event: not valid JSON at line 1, column 2"),
        (["invoke", "--event", "@/no/such/file.json"], "cannot read /no/such/file.json"),
        (["invoke", "--env", "NOEQUALS"], "--env 'NOEQUALS': write it as KEY=VALUE"),
        (["invoke", "--memory", "64"], "memory_mb=64 is not valid; Lambda allows 128 to 10240 MB"),
        (["invoke", "app.handler", "--code-dir", "/no/such/dir"], "code_dir='/no/such/dir' is not a directory"),
        (["invoke", "--function", "Fn"], "--function names what to read from a template; add --template"),
        (["invoke", "--parameter-overrides", "Stage=prod"], "--parameter-overrides names what to read from a "
                                                            "template; add --template"),
        (["invoke", "-t", str(SAM), "--parameter-overrides", "Stage"],
         "--parameter-overrides 'Stage': write it as KEY=VALUE (or ParameterKey=KEY,ParameterValue=VALUE)"),
        (["invoke", "-t", "/no/such/template.yaml"], "/no/such/template.yaml: no such file"),
        (["invoke", "-t", str(SAM), "--function", "Orders", "--env", "TABLE_ARN=x"],
         "no function 'Orders' in Resources; the functions are: OrdersFunction"),
    ],
)
def test_harness_errors_say_what_to_fix(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err



@pytest.mark.services
def test_invoke_starts_the_services_it_is_given(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("""
        import os
        def handler(event, context):
            return {name: name in os.environ for name in ("REDIS_URL", "MEMCACHED_URL", "AWS_ENDPOINT_URL")}
    """)
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--services", "redis=binary,memcached", "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"REDIS_URL": True, "MEMCACHED_URL": True, "AWS_ENDPOINT_URL": False}
    assert main(["invoke", "app.handler", "--code-dir", str(src), "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"REDIS_URL": False, "MEMCACHED_URL": False,
                                                   "AWS_ENDPOINT_URL": False}
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--services", "redis=kubernetes"]) == 2
    assert "--services: services['redis']: provider='kubernetes' is not known" in capsys.readouterr().err


def test_invoke_a_function_from_a_sam_template(capsys: pytest.CaptureFixture[str]) -> None:
    # Like `sam local invoke -t template.yaml OrdersFunction -e event.json`: the template's settings.
    argv = ["invoke", "--template", str(SAM), "--function", "OrdersFunction", "-e", '{"name": "sam"}']
    assert main([*argv, "--env", "TABLE_ARN=arn:table"]) == 0
    out, err = capsys.readouterr()
    assert main(["invoke", "-t", str(SAM), "OrdersFunction", *argv[5:], "--env", "TABLE_ARN=arn:table"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["env"] == json.loads(out)["env"], "sam's way: the function's logical ID as the positional argument"
    # No FunctionName: named as CloudFormation names it, <stack>-<LogicalId>-<RANDOM> (the stack: the folder's name).
    assert re.fullmatch(r"sam-OrdersFunction-[A-Z0-9]{12}", same["function_name"]), same["function_name"]
    assert json.loads(out)["greeting"] == "hello, sam", "the template's SharedLayer is mounted at /opt"
    assert json.loads(out)["env"] == {"STAGE": "dev", "LOG_LEVEL": "debug", "TABLE_NAME": "orders-dev",
                                      "TABLE_ARN": "arn:table", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}
    assert re.fullmatch(r"sam-OrdersFunction-[A-Z0-9]{12}", json.loads(out)["function_name"])
    assert 9000 < json.loads(out)["remaining_ms"] <= 10000, "Timeout: 10 from the template's Globals"
    assert "REPORT RequestId:" in err and "Memory Size: 512 MB" in err
    # The options given replace the template's settings; --function may go when there is one function.
    assert main(["invoke", "-t", str(SAM), "--env", "TABLE_ARN=arn:table", "--memory", "1024", "--timeout", "5",
                 "--name", "orders", "-q", "--parameter-overrides", "ParameterKey=Stage,ParameterValue=prod",
                 "TableName='big sales'"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["env"]["STAGE"], out["env"]["TABLE_NAME"], out["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) == \
        ("prod", "big sales-prod", "1024")
    assert out["function_name"] == "orders" and 4000 < out["remaining_ms"] <= 5000


def test_template_errors_name_the_flag_to_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # POOL_ARN is !GetAtt of a resource lambdasim does not create (a table it would: test_template_resources.py):
    # --env sets it.
    (tmp_path / "src").mkdir()
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      Handler: app.handler\n      Runtime: python3.12\n      CodeUri: ../src\n"
        "      Environment: {Variables: {POOL_ARN: !GetAtt Pool.Arn}}\n  Pool: {Type: AWS::Cognito::UserPool}\n")
    assert main(["invoke", "--template", str(tmp_path / "pool"), "--function", "Fn"]) == 2
    err = capsys.readouterr().err
    assert "Variables.POOL_ARN: !GetAtt Pool.Arn cannot be resolved locally" in err
    assert err.rstrip().endswith("set the value with --env POOL_ARN=VALUE."), err
    assert "environment=" not in err and "load_function" not in err
    (tmp_path / "template.yaml").write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\n'
        "Parameters:\n  Stage: {Type: String}\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      Handler: app.handler\n      Runtime: python3.12\n      CodeUri: src\n"
        "      Layers: [arn:aws:lambda:us-east-1:017000801446:layer:Powertools:7]\n"
        "      Environment: {Variables: {STAGE: !Ref Stage}}\n")
    assert main(["invoke", "--template", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "parameter 'Stage' has no Default (give it one, or pass --parameter-overrides Stage=VALUE)" in err
    # A layer ARN lambdasim cannot fetch is a warning, not an error: the function runs without it (and fails
    # here for want of app.py, with Lambda's error, exit 1).
    assert main(["invoke", "--template", str(tmp_path), "--parameter-overrides", "Stage=dev"]) == 1
    err = capsys.readouterr().err
    assert "lambdasim: warning: " in err and "is a layer ARN, which lambdasim cannot fetch" in err
    assert "Runtime.ImportModuleError" in err
    assert main(["invoke", "-t", str(SLS)]) == 2
    err = capsys.readouterr().err
    assert main(["invoke", "-t", str(SLS), "createOrde"]) == 2, "a name without a dot, as sam takes the function"
    assert "no function 'createOrde' in functions" in capsys.readouterr().err
    assert "which function? There are 2 in functions: createOrder" in err
    assert err.rstrip().endswith("; name one with --function LOGICAL_ID."), err


def test_invoke_a_function_from_a_serverless_config(capsys: pytest.CaptureFixture[str]) -> None:
    # serverless.yml's createOrder: handler src/orders.handler; its pythonDeps layer is an empty folder, so
    # the code and the layer of the SAM fixture stand in for them (a handler or --code-dir replaces the config's).
    argv = ["invoke", "-t", str(SLS), "--function", "createOrder", "--code-dir", str(TEMPLATES / "sam"),
            "--layer", str(TEMPLATES / "sam" / "layers" / "shared"), "-q"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["greeting"] == "hello, world" and out["function_name"] == "orders-dev-createOrder"  # service-stage-fn
    assert (out["env"]["TABLE_NAME"], out["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) == ("orders-dev", "512")
    assert 29000 < out["remaining_ms"] <= 30000, "the function's timeout: 30"
    # ${opt:stage} from --parameter-overrides, as `serverless invoke local --stage prod` would.
    assert main([*argv, "--parameter-overrides", "stage=prod"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["env"]["TABLE_NAME"], out["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) == ("orders-prod", "2048")
    # A handler given replaces the config's: here one that the module does not define.
    assert main([*argv[:1], "src/orders.nope", *argv[1:]]) == 1
    assert json.loads(capsys.readouterr().out)["errorType"] == "Runtime.HandlerNotFound"


SAM_MODELS = TEMPLATES / "sam-models" / "template.yaml"
MODELS_CODE = str(TEMPLATES / "sam-models" / "src")


def invoked(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    assert main(["invoke", *argv, "-q"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_invoke_takes_a_tenant_id_and_the_execution_models(capsys: pytest.CaptureFixture[str]) -> None:
    # The handler returns AWS_LAMBDA_INITIALIZATION_TYPE and context.tenant_id.
    assert invoked(["app.handler", "--code-dir", MODELS_CODE, "--tenant-isolation", "--tenant-id", "acme"],
                   capsys) == {"initialization_type": "on-demand", "tenant_id": "acme"}
    assert invoked(["app.handler", "--code-dir", MODELS_CODE, "--capacity-provider", "fleet", "--runtime", "python3.13",
                    "--max-concurrency", "2", "--min-environments", "0", "--max-environments", "3"],
                   capsys)["initialization_type"] == "lambda-managed-instances"
    assert invoked(["app.handler", "--code-dir", MODELS_CODE, "--snap-start", "--runtime", "python3.12"],
                   capsys)["initialization_type"] == "snap-start"
    # From a template: its models, and the flags replace them.
    assert invoked(["-t", str(SAM_MODELS), "TenantFunction", "--tenant-id", "t1"], capsys)["tenant_id"] == "t1"
    assert invoked(["-t", str(SAM_MODELS), "ManagedFunction"], capsys)["initialization_type"] == \
        "lambda-managed-instances"
    assert invoked(["-t", str(SAM_MODELS), "SnapFunction"], capsys)["initialization_type"] == "snap-start"
    assert invoked(["-t", str(SAM_MODELS), "SnapFunction", "--no-snap-start"], capsys)["initialization_type"] == \
        "on-demand"


@pytest.mark.sandbox
def test_a_tenant_mistake_says_which_it_was(capsys: pytest.CaptureFixture[str]) -> None:
    # Lambda's one message fits both mistakes; the CLI adds which one it was.
    assert main(["invoke", "app.handler", "--code-dir", MODELS_CODE, "--tenant-isolation", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["errorType"] == "InvalidParameterValueException"
    assert "lambdasim: app has tenant isolation: pass --tenant-id ID" in err
    assert main(["invoke", "app.handler", "--code-dir", MODELS_CODE, "--tenant-id", "acme", "--quiet"]) == 1
    assert "app has no tenant isolation: leave out --tenant-id, or add --tenant-isolation" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--max-concurrency", "4"], "max_concurrency is a setting of Lambda Managed Instances"),
    (["--snap-start", "--provisioned-concurrency", "1", "--runtime", "python3.12"],
     "SnapStart is not supported with provisioned concurrency"),
    (["--provisioned-concurrency", "many"], "--provisioned-concurrency: invalid int value: 'many'"),
])
def test_invoke_refuses_models_lambda_refuses(argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with contextlib.suppress(SystemExit):  # argparse's own errors exit
        assert main(["invoke", "app.handler", "--code-dir", MODELS_CODE, *argv]) == 2
    assert message in capsys.readouterr().err


def test_invoke_with_provisioned_concurrency_runs_on_a_provisioned_environment(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert invoked(["app.handler", "--code-dir", MODELS_CODE, "--provisioned-concurrency", "1"],
                   capsys)["initialization_type"] == "provisioned-concurrency"
    assert invoked(["-t", str(SAM_MODELS), "ProvisionedFunction"], capsys)["initialization_type"] == \
        "provisioned-concurrency"


def test_python_m_lambdasim_is_the_command_line(code: Code) -> None:
    """``python -m lambdasim`` runs the CLI with this interpreter, e.g. a virtualenv's that has the function's
    packages, where a ``lambdasim`` script on PATH may belong to another Python."""
    src = code("def handler(event, context):\n    return {'got': event}\n")
    done = subprocess.run([sys.executable, "-m", "lambdasim", "invoke", "app.handler", "--code-dir", str(src),
                           "--event", '{"a": 1}'], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "Sandbox" in done.stderr and not os.environ.get("LAMBDASIM_REQUIRE_SANDBOX"):
        pytest.skip(done.stderr)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"got": {"a": 1}}


@pytest.mark.parametrize("spelling", ["@-", "-"])
def test_event_at_dash_reads_stdin(spelling: str, code: Code, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    # `lambdasim event sqs --body hi | lambdasim invoke --event @-`, as `lambdasim event --help` says.
    import io

    src = code("def handler(event, context):\n    return {'got': event}\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"Records": [{"body": "hi"}]}'))
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--event", spelling, "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"got": {"Records": [{"body": "hi"}]}}
    monkeypatch.setattr(sys, "stdin", io.StringIO("{nope"))
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--event", spelling, "-q"]) == 2
    assert f"--event {spelling} (stdin): not valid JSON at line 1, column 2" in capsys.readouterr().err


def test_warnings_are_one_line_each_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Python's format would name bin/lambdasim:8 and repeat `sys.exit(main())`; the template is read twice
    # (checked, then deployed), and the warning is said once.
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        f"    Properties:\n      Handler: app.handler\n      CodeUri: src\n      Runtime: {RUNTIME}\n"
        "      Policies: [AWSLambdaBasicExecutionRole]\n")
    assert main(["invoke", "-t", str(tmp_path), "-q"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Policies" in line]
    assert lines == [f"lambdasim: warning: {tmp_path / 'template.yaml'}:9: Resources.Fn.Properties.Policies: "
                     "lambdasim does not model Policies; the function runs without it (IAM permissions are not "
                     "checked)."], err
    assert "TemplateWarning" not in err and "main(" not in err


def test_warnings_of_other_packages_keep_pythons_format(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from lambdasim._commands import invoke
    from lambdasim._templates import TemplateWarning

    shown: list[str] = []

    def mine(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        shown.append(str(message))

    monkeypatch.setattr(warnings, "showwarning", mine)

    def run(args: Any) -> int:
        warnings.warn("from elsewhere", DeprecationWarning, stacklevel=1)
        warnings.warn(TemplateWarning("t.yaml:1: Resources: ours"), stacklevel=1)
        return 0

    monkeypatch.setattr(invoke, "run", run)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["invoke"]) == 0
    assert shown == ["from elsewhere"]
    assert capsys.readouterr().err == "lambdasim: warning: t.yaml:1: Resources: ours\n"
    assert warnings.showwarning is mine, "put back after the command"


def test_parameter_overrides_end_at_the_first_value_without_an_equals_sign(
        capsys: pytest.CaptureFixture[str]) -> None:
    from lambdasim._commands import split_overrides

    # nargs="+" would take the function's logical ID (or `lambdasim event`'s KIND) as one more KEY=VALUE.
    argv = ["invoke", "-t", str(SAM), "--parameter-overrides", "Stage=prod", "TableName=big", "OrdersFunction",
            "--env", "TABLE_ARN=arn:table", "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert (out["env"]["STAGE"], out["env"]["TABLE_NAME"]) == ("prod", "big-prod")
    assert split_overrides(["--parameter-overrides", "A=1", "B='x y'", "Fn", "--parameter-overrides", "C=3"]) == \
        ["--parameter-overrides=A=1", "--parameter-overrides=B='x y'", "Fn", "--parameter-overrides=C=3"]
    assert split_overrides(["--parameter-overrides", "Fn"]) == ["--parameter-overrides", "Fn"], "argparse refuses it"
    assert split_overrides(["--", "--parameter-overrides", "A=1"]) == ["--", "--parameter-overrides", "A=1"]
    assert main(["invoke", "-t", str(SAM), "--parameter-overrides", "Stage"]) == 2
    assert "--parameter-overrides 'Stage'" in capsys.readouterr().err


def test_setup_takes_calls_and_scenario_aws_steps(tmp_path: Path) -> None:
    from lambdasim._aws_calls import load_setup
    from lambdasim._errors import ConfigError

    setup = tmp_path / "setup.yaml"
    setup.write_text("- aws: {service: s3, call: create_bucket, args: {Bucket: b}}\n"
                     "- {service: s3, call: PutObject, args: {Bucket: b, Key: k, Body: x}}\n")
    assert [(c.service, c.method, c.args["Bucket"]) for c in load_setup(setup)] == \
        [("s3", "create_bucket", "b"), ("s3", "put_object", "b")]
    setup.write_text("- aws: {service: s3, call: create_bucket, args: {Bucket: b}}\n  expect: 1\n")
    with pytest.raises(ConfigError, match=r"setup.yaml:2: \[0\].expect: unknown key 'expect'; allowed keys: aws"):
        load_setup(setup)
    setup.write_text("- aws: {service: s3, call: create_bukket}\n")
    with pytest.raises(ConfigError, match=r"setup.yaml:1: \[0\].aws.call: 'create_bukket' is not an operation of s3"):
        load_setup(setup)


def test_no_layers_drops_the_templates_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("import os\ndef handler(event, context):\n"
                                             "    return sorted(os.listdir('/opt')) if os.path.isdir('/opt') else []\n")
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        f"    Properties:\n      Handler: app.handler\n      CodeUri: src\n      Runtime: {RUNTIME}\n"
        "      Layers: [arn:aws:lambda:us-east-1:017000801446:layer:Powertools:7]\n")
    assert main(["invoke", "-t", str(tmp_path), "-q"]) == 0
    assert "is a layer ARN, which lambdasim cannot fetch" in capsys.readouterr().err
    assert main(["invoke", "-t", str(tmp_path), "--no-layers", "-q"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and "layer ARN" not in err
    assert main(["invoke", "app.handler", "--code-dir", str(tmp_path / "src"), "--no-layers"]) == 2
    assert "--no-layers names what to read from a template; add --template" in capsys.readouterr().err
