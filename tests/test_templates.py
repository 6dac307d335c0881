"""Functions read from AWS SAM templates and Serverless Framework configs (lambdasim._templates).

Pure parsing, except the one sandbox test at the end that deploys a SAM function and invokes it.
"""

from __future__ import annotations

import inspect
import os
import re
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from lambdasim import ConfigError, Simulator, _templates
from lambdasim._model import PYTHON_VERSION
from lambdasim._template_events import TemplateEvent
from lambdasim._templates import PYTHON_HINTS, Hints, TemplateFunction, TemplateWarning, load_function

TEMPLATES = Path(__file__).parent / "templates"
SAM = TEMPLATES / "sam" / "template.yaml"
SLS = TEMPLATES / "serverless" / "serverless.yml"
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders-dev"


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """The 1-based number of the ``nth`` line of ``path`` that contains ``needle``."""
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line][nth - 1]


def write(folder: Path, text: str, name: str = "template.yaml", dirs: tuple[str, ...] = ("src",)) -> Path:
    for sub in dirs:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error(path: Path | str, function: str | None, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_function(path, function, **kwargs)
    return str(info.value)


def where(path: Path, key: str, needle: str, nth: int = 1) -> str:
    """How an error message starts: ``file:line: key.path: ``."""
    return f"{path}:{line_of(path, needle, nth)}: {key}: "


SAM_HEAD = 'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\n'


def sam_function(folder: Path, properties: str = "", *, head: str = "", more: str = "") -> Path:
    """A SAM template with one function, ``Fn``: Handler, Runtime and CodeUri, plus ``properties``."""
    text = (
        textwrap.dedent(SAM_HEAD) + textwrap.dedent(head)
        + "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        + "      Handler: app.handler\n      Runtime: python3.12\n      CodeUri: src\n"
        + textwrap.indent(textwrap.dedent(properties), "      ") + textwrap.indent(textwrap.dedent(more), "  ")
    )
    return write(folder, text)


# -- the SAM fixture: every property --------------------------------------------------------


def test_sam_template_gives_every_property() -> None:
    fn = load_function(SAM, "OrdersFunction", environment={"TABLE_ARN": TABLE_ARN})
    assert fn == TemplateFunction(
        name="OrdersFunction",
        handler="orders.handler",
        code_dir=str(TEMPLATES / "sam" / "src"),
        runtime="python3.12",
        memory_mb=512,  # the function's MemorySize wins over Globals' 256
        timeout_s=10.0,  # from Globals
        ephemeral_storage_mb=1024,
        environment={
            "STAGE": "dev",  # Globals, !Ref to a parameter's Default
            "LOG_LEVEL": "debug",  # the function's value wins over Globals' "info"
            "TABLE_NAME": "orders-dev",
            "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
            "TABLE_ARN": TABLE_ARN,  # the override: the template's !GetAtt is not resolved
        },
        reserved_concurrency=5,
        layers=(str(TEMPLATES / "sam" / "layers" / "shared"),),
        source=f"{SAM}:{line_of(SAM, '  OrdersFunction:')}",
        events={"Create": TemplateEvent("Create", "Api", "api", {"region": "us-east-1", "path": "/orders",
                                                                  "method": "POST"},
                                        f"{SAM}:{line_of(SAM, '        Create:')}")},
    )


def test_sam_fixture_without_the_override_names_the_getatt() -> None:
    message = error(SAM, "OrdersFunction")
    assert message.startswith(where(SAM, "Resources.OrdersFunction.Properties.Environment.Variables.TABLE_ARN",
                                    "TABLE_ARN:"))
    assert "!GetAtt OrdersTable.Arn cannot be resolved locally" in message
    assert "environment={'TABLE_ARN': '...'}" in message


def test_deploy_kwargs_are_exactly_the_arguments_of_deploy() -> None:
    fn = load_function(SAM, "OrdersFunction", environment={"TABLE_ARN": TABLE_ARN})
    kwargs = fn.deploy_kwargs()
    deploy = inspect.signature(Simulator.deploy)
    # EventInvokeConfig's settings are passed only where the template sets them (this one does not).
    assert set(kwargs) == set(deploy.parameters) - {"self", "keepalive_s", "max_retry_attempts", "max_event_age_s"}
    deploy.bind(None, **kwargs)  # every one is accepted as a keyword
    assert kwargs == {
        "handler": "orders.handler", "code_dir": fn.code_dir, "name": "OrdersFunction", "memory_mb": 512,
        "timeout_s": 10.0, "ephemeral_storage_mb": 1024, "environment": fn.environment,
        "reserved_concurrency": 5, "layers": list(fn.layers), "runtime": "python3.12", "entry_point": [],
        "snap_start": False, "provisioned_concurrency": 0, "tenant_isolation": False, "capacity_provider": None,
        "max_concurrency": None, "min_environments": 0, "max_environments": None, "log_format": "Text",
        "application_log_level": None, "system_log_level": None, "tracing": False,
        "function_name": None,  # no FunctionName: CloudFormation's, known once the stack is created
    }
    kwargs["environment"]["EXTRA"] = "x"
    assert "EXTRA" not in fn.environment, "deploy_kwargs() hands out a copy"


def test_a_folder_stands_for_the_template_in_it() -> None:
    fn = load_function(TEMPLATES / "sam", "OrdersFunction", environment={"TABLE_ARN": TABLE_ARN})
    assert fn.source == f"{SAM}:{line_of(SAM, '  OrdersFunction:')}"
    assert load_function(TEMPLATES / "serverless", "createOrder").handler == "src/orders.handler"


def test_sam_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, SAM_HEAD + textwrap.dedent("""
        Resources:
          Minimal:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: python3.11
    """), dirs=())
    fn = load_function(path, "Minimal")
    assert (fn.code_dir, fn.memory_mb, fn.timeout_s, fn.ephemeral_storage_mb) == (str(tmp_path), 128, 3.0, 512)
    assert (fn.environment, fn.reserved_concurrency, fn.layers) == ({}, None, ())
    assert fn.source == f"{path}:{line_of(path, 'Minimal:')}"


def test_globals_merge_as_sam_merges_them(tmp_path: Path) -> None:
    (tmp_path / "layers" / "a").mkdir(parents=True)
    (tmp_path / "layers" / "b").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    path = write(tmp_path, SAM_HEAD + textwrap.dedent("""
        Globals:
          Function:
            Handler: common.handler
            Runtime: python3.10
            CodeUri: shared
            MemorySize: 1024
            Timeout: 30
            EphemeralStorage: {Size: 2048}
            ReservedConcurrentExecutions: 2
            Environment:
              Variables: {AA: global, BB: global}
            Layers: [!Ref LayerA]
          Api:
            Cors: "'*'"
        Resources:
          LayerA:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: layers/a}
          LayerB:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: layers/b}
          Inherits:
            Type: AWS::Serverless::Function
          Overrides:
            Type: AWS::Serverless::Function
            Properties:
              Handler: own.handler
              Runtime: python3.13
              CodeUri: src
              MemorySize: 256
              Timeout: 5
              EphemeralStorage: {Size: 600}
              ReservedConcurrentExecutions: 7
              Environment:
                Variables: {BB: function, CC: function}
              Layers: [!Ref LayerB]
    """))
    inherits = load_function(path, "Inherits")
    assert (inherits.handler, inherits.runtime, inherits.code_dir) == ("common.handler", "python3.10",
                                                                       str(tmp_path / "shared"))
    assert (inherits.memory_mb, inherits.timeout_s, inherits.ephemeral_storage_mb) == (1024, 30.0, 2048)
    assert inherits.reserved_concurrency == 2
    assert inherits.environment == {"AA": "global", "BB": "global"}
    assert inherits.layers == (str(tmp_path / "layers" / "a"),)
    overrides = load_function(path, "Overrides")
    assert (overrides.handler, overrides.runtime, overrides.code_dir) == ("own.handler", "python3.13",
                                                                          str(tmp_path / "src"))
    assert (overrides.memory_mb, overrides.timeout_s, overrides.ephemeral_storage_mb) == (256, 5.0, 600)
    assert overrides.reserved_concurrency == 7
    assert overrides.environment == {"AA": "global", "BB": "function", "CC": "function"}, "Variables merge"
    assert overrides.layers == (str(tmp_path / "layers" / "a"), str(tmp_path / "layers" / "b")), "lists add up"


def test_a_plain_lambda_function_reads_code_and_ignores_globals(tmp_path: Path) -> None:
    (tmp_path / "layer").mkdir()
    path = write(tmp_path, """
        AWSTemplateFormatVersion: "2010-09-09"
        Globals:
          Function:
            Timeout: 30
            Environment: {Variables: {FROM_GLOBALS: "yes"}}
        Resources:
          Layer:
            Type: AWS::Lambda::LayerVersion
            Properties: {Content: layer}
          Plain:
            Type: AWS::Lambda::Function
            Properties:
              Handler: app.handler
              Runtime: python3.12
              Code: src
              MemorySize: 2048
              Environment: {Variables: {OWN: value}}
              Layers: [!Ref Layer]
    """)
    fn = load_function(path, "Plain")
    assert (fn.code_dir, fn.memory_mb, fn.timeout_s) == (str(tmp_path / "src"), 2048, 3.0)
    assert fn.environment == {"OWN": "value"}
    assert fn.layers == (str(tmp_path / "layer"),)


@pytest.mark.parametrize(("code", "expected"), [
    ("Code: {S3Bucket: my-bucket, S3Key: app.zip}", "is in S3; lambdasim mounts local folders: set Code"),
    ("Code: {ImageUri: 123.dkr.ecr.us-east-1.amazonaws.com/app:latest}",
     "Metadata.DockerContext: missing; lambdasim does not build or pull images"),
    ("Description: no code", "missing; set Code to the folder"),
])
def test_a_plain_lambda_function_needs_local_code(tmp_path: Path, code: str, expected: str) -> None:
    path = write(tmp_path, f"""
        Resources:
          Plain:
            Type: AWS::Lambda::Function
            Properties:
              Handler: app.handler
              Runtime: python3.12
              {code}
    """)
    message = error(path, "Plain")
    assert expected in message
    assert message.startswith(f"{path}:"), message


# -- intrinsic functions ------------------------------------------------------------------------

INTRINSICS_HEAD = """
    Parameters:
      Stage: {Type: String, Default: dev}
      Count: {Type: Number, Default: 3}
      Zones: {Type: CommaDelimitedList, Default: "us-east-1a, us-east-1b"}
      Required: {Type: String}
    Mappings:
      StageConfig:
        dev: {Level: debug}
        prod: {Level: warn}
    Conditions:
      IsProd: !Equals [!Ref Stage, prod]
      IsNotProd: !Not [!Condition IsProd]
      InUsEast: !Equals [!Ref "AWS::Region", us-east-1]
      DevInUsEast: !And [!Condition IsNotProd, !Condition InUsEast]
      EitherWay: !Or [!Condition IsProd, {Condition: InUsEast}]
      Loop: !Not [!Condition Loop]
      Remote: !Equals [!GetAtt Table.Arn, x]
"""
TABLE = """
    Table:
      Type: AWS::DynamoDB::Table
"""


def env_value(folder: Path, value: str, **kwargs: Any) -> str:
    path = sam_function(folder, f"Environment:\n  Variables:\n    VALUE: {value}\n", head=INTRINSICS_HEAD, more=TABLE)
    return load_function(path, "Fn", **kwargs).environment["VALUE"]


@pytest.mark.parametrize(("value", "expected"), [
    ("!Ref Stage", "dev"),
    ("!Ref Count", "3"),
    ("{Ref: Stage}", "dev"),
    ("!Ref AWS::Region", "us-east-1"),
    ("!Ref AWS::AccountId", "123456789012"),
    ("!Ref AWS::Partition", "aws"),
    ("!Ref AWS::URLSuffix", "amazonaws.com"),
    ("!Ref AWS::StackName", "lambdasim"),
    ("!Sub '${AWS::Region}:${AWS::AccountId}'", "us-east-1:123456789012"),
    ("!Sub 'arn:${AWS::Partition}:s3:::${Stage}-bucket/*'", "arn:aws:s3:::dev-bucket/*"),
    ("!Sub ['${Name}.${AWS::URLSuffix}', {Name: !Ref Stage}]", "dev.amazonaws.com"),
    ("!Sub 'literal ${!NotAVariable}'", "literal ${NotAVariable}"),
    ("{'Fn::Sub': '${Stage}-x'}", "dev-x"),
    ("!Join [',', [a, !Ref Stage, 1]]", "a,dev,1"),
    ("!Join ['', [!Ref 'AWS::Region', !Sub '-${Stage}']]", "us-east-1-dev"),
    ("!Select [1, !Split [',', 'a,b,c']]", "b"),
    ("!Select [0, !Ref Zones]", "us-east-1a"),
    ("!FindInMap [StageConfig, !Ref Stage, Level]", "debug"),
    ("!Base64 hello", "aGVsbG8="),
    ("!If [IsProd, big, small]", "small"),
    ("!If [IsNotProd, dev-only, other]", "dev-only"),
    ("!If [DevInUsEast, both, other]", "both"),
    ("!If [EitherWay, either, other]", "either"),
])
def test_intrinsics_that_resolve_locally(tmp_path: Path, value: str, expected: str) -> None:
    assert env_value(tmp_path, value) == expected


def test_parameters_and_region_change_what_intrinsics_resolve_to(tmp_path: Path) -> None:
    assert env_value(tmp_path / "a", "!If [IsProd, big, small]", parameters={"Stage": "prod"}) == "big"
    assert env_value(tmp_path / "b", "!FindInMap [StageConfig, !Ref Stage, Level]",
                     parameters={"Stage": "prod"}) == "warn"
    assert env_value(tmp_path / "c", "!Ref Required", parameters={"Required": "given"}) == "given"
    assert env_value(tmp_path / "z", "!Select [1, !Ref Zones]", parameters={"Zones": "a,b"}) == "b"
    assert env_value(tmp_path / "d", "!Sub '${AWS::Region}'", region="eu-west-1") == "eu-west-1"
    assert env_value(tmp_path / "e", "!Sub '${AWS::Partition}.${AWS::URLSuffix}'",
                     region="cn-north-1") == "aws-cn.amazonaws.com.cn"


@pytest.mark.parametrize(("value", "expected"), [
    ("!GetAtt Table.Arn", "!GetAtt Table.Arn cannot be resolved locally: it is an attribute of a resource"),
    ("!GetAtt [Table, StreamArn]", "!GetAtt Table.StreamArn cannot be resolved locally"),
    ("{'Fn::GetAtt': [Table, Arn]}", "{'Fn::GetAtt': ['Table', 'Arn']} cannot be resolved locally"),
    ("!ImportValue shared-table", "!ImportValue shared-table cannot be resolved locally: it is an export"),
    ("!Ref Table", "'Table' is a resource (AWS::DynamoDB::Table), whose name or ARN exists only once deployed"),
    ("!Ref Nope", "there is no parameter or resource 'Nope' in the template"),
    ("!Ref Required", "parameter 'Required' has no Default (give it one, or pass parameters={'Required': ...}"),
    ("!Sub '${Table.Arn}/index/*'", "${Table.Arn} is an attribute of a resource"),
    ("!Sub 'name-${Table}'", "'Table' is a resource"),
    ("!Select [0, !GetAZs '']", "the availability zones come from AWS"),
    ("!Select [0, !Cidr ['10.0.0.0/16', 2, 8]]", "not Cidr"),
    ("!Join [',', [a, !GetAtt Table.Arn]]", "!Join [',', ['a', !GetAtt Table.Arn]] cannot be resolved locally"),
    ("!If [Remote, a, b]", "!GetAtt Table.Arn"),
])
def test_intrinsics_that_cannot_resolve_name_the_variable_and_the_override(tmp_path: Path, value: str,
                                                                           expected: str) -> None:
    path = sam_function(tmp_path, f"Environment:\n  Variables:\n    VALUE: {value}\n", head=INTRINSICS_HEAD,
                        more=TABLE)
    message = error(path, "Fn")
    assert message.startswith(where(path, "Resources.Fn.Properties.Environment.Variables.VALUE", "VALUE:")), message
    assert expected in message
    assert "set the value with environment={'VALUE': '...'}" in message


@pytest.mark.parametrize(("value", "expected"), [
    ("!If [Loop, a, b]", "the conditions Loop -> Loop form a loop"),
    ("!If [Missing, a, b]", "there is no condition 'Missing' in Conditions"),
    ("!FindInMap [StageConfig, qa, Level]", "Mappings.StageConfig has no key 'qa'"),
    ("!Select [5, [a, b]]", "index 5 is out of range for 2 values"),
    ("!Join only-one-argument", "expected !Join [delimiter, [values]]"),
    ("!Sub [a, b, c]", "expected !Sub 'text' or !Sub ['text', {Name: value}]"),
    ("!Ref AWS::NotificationARNs", "is a list; environment variables are strings"),
])
def test_malformed_intrinsics_name_the_variable(tmp_path: Path, value: str, expected: str) -> None:
    path = sam_function(tmp_path, f"Environment:\n  Variables:\n    VALUE: {value}\n", head=INTRINSICS_HEAD,
                        more=TABLE)
    message = error(path, "Fn")
    assert message.startswith(where(path, "Resources.Fn.Properties.Environment.Variables.VALUE", "VALUE:")), message
    assert expected in message


def test_the_environment_override_replaces_and_adds_variables(tmp_path: Path) -> None:
    path = sam_function(tmp_path, """
        Environment:
          Variables:
            TABLE: !GetAtt Table.Arn
            KEPT: kept
            REPLACED: template
    """, more=TABLE)
    fn = load_function(path, "Fn", environment={"TABLE": "orders", "REPLACED": "override", "ADDED": "added"})
    assert fn.environment == {"KEPT": "kept", "TABLE": "orders", "REPLACED": "override", "ADDED": "added"}


def test_variable_values_become_strings_as_cloudformation_makes_them(tmp_path: Path) -> None:
    path = sam_function(tmp_path, """
        Environment:
          Variables:
            FLAG: true
            DISABLED: false
            COUNT: 5
            RATIO: 1.5
            DAY: 2024-01-31
            QUOTED: "007"
            EMPTY: ''
            DROPPED: !If [IsProd, kept, !Ref AWS::NoValue]
    """, head=INTRINSICS_HEAD)
    assert load_function(path, "Fn").environment == {
        "FLAG": "true", "DISABLED": "false", "COUNT": "5", "RATIO": "1.5", "DAY": "2024-01-31", "QUOTED": "007",
        "EMPTY": "",
    }


@pytest.mark.parametrize(("variables", "key", "expected"), [
    ("AWS_REGION: eu-west-1", "AWS_REGION", "AWS_REGION is reserved by Lambda"),
    ("1ST: x", "1ST", "'1ST' is not a valid variable name"),
    ("X: single-letter", "X", "'X' is not a valid variable name"),
    ("UNSET:", "UNSET", "has no value; write '' for an empty string"),
    ("NESTED: {a: b}", "NESTED", "{'a': 'b'} is a mapping; environment variables are strings"),
])
def test_bad_variables_are_named(tmp_path: Path, variables: str, key: str, expected: str) -> None:
    path = sam_function(tmp_path, f"Environment:\n  Variables:\n    {variables}\n")
    message = error(path, "Fn")
    assert message.startswith(where(path, f"Resources.Fn.Properties.Environment.Variables.{key}", f"{key}:"))
    assert expected in message


def test_the_yaml_loader_reads_every_short_form_tag(tmp_path: Path) -> None:
    path = sam_function(tmp_path, more="""
        Everything:
          Type: AWS::CloudFormation::WaitConditionHandle
          Metadata:
            Ref: !Ref X
            Sub: !Sub "${X}"
            GetAtt: !GetAtt A.B
            GetAttList: !GetAtt [A, B]
            Join: !Join [",", [a, b]]
            If: !If [C, 1, 2]
            Select: !Select [0, [a]]
            Split: !Split [",", "a,b"]
            FindInMap: !FindInMap [M, a, b]
            ImportValue: !ImportValue x
            Base64: !Base64 x
            Cidr: !Cidr [10.0.0.0/16, 2, 8]
            Equals: !Equals [a, b]
            And: !And [!Condition C, !Condition D]
            Or: !Or [!Condition C, !Condition D]
            Not: !Not [!Condition C]
            Condition: !Condition C
            GetAZs: !GetAZs ""
            Transform: !Transform {Name: "AWS::Include", Parameters: {Location: s3://b/k}}
            Anchored: &anchor {a: 1}
            Alias: *anchor
    """)
    assert load_function(path, "Fn").handler == "app.handler"


# -- properties and their errors ------------------------------------------------------------------


def test_the_runtime_error_reads_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, """
        AWSTemplateFormatVersion: "2010-09-09"
        Transform: AWS::Serverless-2016-10-31
        Description: Orders

        Resources:
          OrdersFunction:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              CodeUri: src
              MemorySize: 256
              Runtime: nodejs20.x
    """)
    monkeypatch.chdir(tmp_path)
    assert error("template.yaml", "OrdersFunction") == (
        "template.yaml:12: Resources.OrdersFunction.Properties.Runtime: 'nodejs20.x' is not a Python runtime or "
        "a custom one; lambdasim runs Python functions (python3.9 ... python3.14) and custom runtimes "
        "(provided.al2023, provided.al2, provided: an executable bootstrap in the code or a layer)."
    )


def test_a_runtime_from_globals_is_reported_where_it_is_written(tmp_path: Path) -> None:
    path = write(tmp_path, SAM_HEAD + textwrap.dedent("""
        Globals:
          Function:
            Runtime: java21
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, CodeUri: src}
    """))
    message = error(path, "Fn")
    assert message.startswith(where(path, "Globals.Function.Runtime", "Runtime: java21"))
    assert "'java21' is not a Python runtime" in message


def test_a_runtime_from_a_parameter_shows_both(tmp_path: Path) -> None:
    path = sam_function(tmp_path, head="Parameters:\n  Rt: {Type: String, Default: ruby3.3}\n")
    path.write_text(path.read_text().replace("Runtime: python3.12", "Runtime: !Ref Rt"))
    assert "!Ref Rt ('ruby3.3') is not a Python runtime" in error(path, "Fn")
    assert load_function(path, "Fn", parameters={"Rt": "python3.9"}).runtime == "python3.9"


P = "Resources.Fn.Properties"


@pytest.mark.parametrize(("properties", "key", "needle", "expected"), [
    ("Handler: null", f"{P}.Handler", "Handler: null", "missing; set it to module.function, e.g. app.handler"),
    ("Handler: app", f"{P}.Handler", "Handler: app", "'app' is not a handler; write it as module.function"),
    ("Runtime: null", f"{P}.Runtime", "Runtime: null", "missing; set it to a Python runtime"),
    ("MemorySize: 64", f"{P}.MemorySize", "MemorySize", "64 is out of range; Lambda allows 128 to 10240 MB"),
    ("MemorySize: lots", f"{P}.MemorySize", "MemorySize", "'lots' is not a whole number; Lambda allows 128 to 10240"),
    ("Timeout: 901", f"{P}.Timeout", "Timeout", "901 is out of range; Lambda allows 1 to 900 seconds"),
    ("Timeout: 2.5", f"{P}.Timeout", "Timeout", "2.5 is not a whole number"),
    ("Timeout: true", f"{P}.Timeout", "Timeout", "True is not a whole number"),
    ("EphemeralStorage: 1024", f"{P}.EphemeralStorage", "Ephemeral", "expected {Size: megabytes}, found 1024"),
    ("EphemeralStorage: {Size: 256}", f"{P}.EphemeralStorage.Size", "Ephemeral",
     "256 is out of range; Lambda allows 512 to 10240 MB"),
    ("ReservedConcurrentExecutions: -1", f"{P}.ReservedConcurrentExecutions", "Reserved",
     "-1 is out of range; use a whole number >= 0"),
    ("Environment: [A, B]", f"{P}.Environment", "Environment", "expected a mapping, found a list"),
    ("Environment: {Variables: [A]}", f"{P}.Environment.Variables", "Environment", "expected a mapping, found a list"),
    ("Layers: !Ref Thing", f"{P}.Layers", "Layers", "expected a list of layers, found !Ref Thing"),
    # A container image function needs its handler in ImageConfig.Command (lambdasim does not read the image).
    ("PackageType: Image", f"{P}.ImageConfig.Command", "Properties:", "missing; lambdasim does not read the "
     "image's CMD: set Command to the handler, e.g. [app.handler]"),
    ("ImageUri: 123.dkr.ecr.us-east-1.amazonaws.com/app:1", f"{P}.ImageConfig.Command", "Properties:",
     "set Command to the handler"),
    ("PackageType: Image\nImageConfig: {Command: [a.b, c]}", f"{P}.ImageConfig.Command", "ImageConfig",
     "lambdasim passes the entry point one argument, the handler; write Command: [handler]."),
    ("PackageType: Image\nImageConfig: {Command: [a.b], Cmd: [x]}", f"{P}.ImageConfig.Cmd", "ImageConfig",
     "not an ImageConfig key; ImageConfig takes EntryPoint, Command and WorkingDirectory."),
    ("PackageType: Image\nImageConfig: {Command: [a.b], EntryPoint: python3}", f"{P}.ImageConfig.EntryPoint",
     "ImageConfig", "'python3' is not an entry point: write a list of strings"),
    ("PackageType: Image\nImageConfig: {Command: [a.b], WorkingDirectory: /app}",
     f"{P}.ImageConfig.WorkingDirectory", "ImageConfig", "lambdasim mounts the image's code at /var/task"),
    ("InlineCode: [1, 2]", f"{P}.InlineCode", "InlineCode", "expected the function's code as a string, found"),
])
def test_bad_properties_are_named(tmp_path: Path, properties: str, key: str, needle: str, expected: str) -> None:
    path = sam_function(tmp_path, properties + "\n")
    name = properties.split(":")[0]
    if name in ("Handler", "Runtime"):  # replace the one sam_function() writes
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:5] + [line for line in lines[5:8] if name not in line] + lines[8:]))
    message = error(path, "Fn")
    assert message.startswith(f"{path}:{line_of(path, needle.rstrip())}: {key}: "), message
    assert expected in message


def test_a_missing_property_is_reported_at_its_parent(tmp_path: Path) -> None:
    path = sam_function(tmp_path)
    path.write_text(path.read_text().replace("Handler: app.handler", "Description: no handler"))
    assert error(path, "Fn").startswith(where(path, f"{P}.Handler", "Properties:"))


def test_numbers_may_be_written_as_strings_or_parameters(tmp_path: Path) -> None:
    path = sam_function(tmp_path, """
        MemorySize: "256"
        Timeout: !Ref Count
        ReservedConcurrentExecutions: !If [IsProd, 100, !Ref AWS::NoValue]
    """, head=INTRINSICS_HEAD)
    fn = load_function(path, "Fn")
    assert (fn.memory_mb, fn.timeout_s, fn.reserved_concurrency) == (256, 3.0, None)
    assert load_function(path, "Fn", parameters={"Stage": "prod"}).reserved_concurrency == 100


@pytest.mark.parametrize(("code_uri", "expected"), [
    ("missing", "'missing': no such folder ({folder}/missing)."),
    ("app.zip", "'app.zip' is a file ({folder}/app.zip); lambdasim mounts folders"),
    ("s3://bucket/app.zip", "'s3://bucket/app.zip' is in S3; lambdasim mounts local folders"),
    ("{Bucket: bucket, Key: app.zip}", "{'Bucket': 'bucket', 'Key': 'app.zip'} is in S3"),
])
def test_code_uri_must_be_a_local_folder(tmp_path: Path, code_uri: str, expected: str) -> None:
    (tmp_path / "app.zip").write_bytes(b"PK")
    path = sam_function(tmp_path)
    path.write_text(path.read_text().replace("CodeUri: src", f"CodeUri: {code_uri}"))
    message = error(path, "Fn")
    assert message.startswith(where(path, "Resources.Fn.Properties.CodeUri", "CodeUri:"))
    assert expected.replace("{folder}", str(tmp_path)) in message


# -- layers ------------------------------------------------------------------------------------------


LAYERS = """
    Local:
      Type: AWS::Serverless::LayerVersion
      Properties: {ContentUri: layer}
    NoContent:
      Type: AWS::Serverless::LayerVersion
      Properties: {Description: none}
    Gone:
      Type: AWS::Serverless::LayerVersion
      Properties: {ContentUri: gone}
"""


@pytest.mark.parametrize(("entry", "expected"), [
    ("!Ref Table", "!Ref Table names Resources.Table (line {table}), which is AWS::DynamoDB::Table, not a layer"),
    ("not-an-arn", "'not-an-arn' is neither a layer ARN nor a !Ref to a layer in this template"),
])
def test_only_local_layers_can_be_mounted(tmp_path: Path, entry: str, expected: str) -> None:
    (tmp_path / "layer").mkdir()
    path = sam_function(tmp_path, f"Layers:\n  - !Ref Local\n  - {entry}\n", more=LAYERS + TABLE)
    message = error(path, "Fn")
    assert message.startswith(where(path, "Resources.Fn.Properties.Layers[1]", entry.split()[-1]))
    assert expected.format(table=line_of(path, "  Table:")) in message
    # The override replaces the template's layers.
    assert load_function(path, "Fn", layers=[tmp_path / "layer"]).layers == (str(tmp_path / "layer"),)


@pytest.mark.parametrize("entry", [
    "arn:aws:lambda:us-east-1:123456789012:layer:deps:1",
    "!Sub 'arn:aws:lambda:${AWS::Region}:017000801446:layer:Powertools:7'",
    "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV1:7",
])
def test_another_layer_arn_is_not_mounted_with_a_warning(tmp_path: Path, entry: str) -> None:
    (tmp_path / "layer").mkdir()
    path = sam_function(tmp_path, f"Layers:\n  - !Ref Local\n  - {entry}\n", more=LAYERS)
    with pytest.warns(TemplateWarning) as caught:
        fn = load_function(path, "Fn")
    assert fn.layers == (str(tmp_path / "layer"),), "deployed without it"
    message = str(caught[0].message)
    arn = entry.split()[-1].strip("'").replace("${AWS::Region}", "us-east-1")
    assert message.startswith(f"{path}:{line_of(path, entry)}: Resources.Fn.Properties.Layers[1]: "), message
    assert f"{arn!r}" in message and "not mounted: what it provides is missing" in message
    assert "to mount it, put its content in a folder and give the function's layers as local folders" in message
    with pytest.warns(TemplateWarning) as marked:
        load_function(path, "Fn", hints=MARKED)
    assert [str(w.message) for w in marked] == [message], "the same words whoever asks: said once"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the override replaces the ARNs: nothing to warn about
        assert load_function(path, "Fn", layers=[tmp_path / "layer"]).layers == (str(tmp_path / "layer"),)


@pytest.mark.parametrize(("arn", "major"), [
    ("arn:aws:lambda:${AWS::Region}:017000801446:layer:AWSLambdaPowertoolsPythonV2:32", 2),
    ("arn:aws:lambda:${AWS::Region}:017000801446:layer:AWSLambdaPowertoolsPythonV2-Arm64:32", 2),
    ("arn:aws:lambda:${AWS::Region}:094274105915:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7", 3),
])
def test_the_powertools_layer_is_built_and_mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arn: str,
                                                  major: int) -> None:
    built = tmp_path / "built"
    built.mkdir()
    calls: list[tuple[Any, ...]] = []

    def build(*args: Any) -> str:
        calls.append(args)
        return str(built)

    monkeypatch.setattr(_templates, "powertools_layer", build)
    monkeypatch.setattr(_templates, "find_python", lambda version: None)  # runs on lambdasim's Python
    (tmp_path / "layer").mkdir()
    path = sam_function(tmp_path, f"Layers:\n  - !Ref Local\n  - !Sub {arn}\n", more=LAYERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TemplateWarning)
        assert load_function(path, "Fn").layers == (str(tmp_path / "layer"), str(built))
    assert calls == [(major, PYTHON_VERSION, "")]
    monkeypatch.setattr(_templates, "find_python", lambda version: f"/opt/py/bin/python{version}")
    load_function(path, "Fn")
    assert calls[-1] == (major, "3.12", "/opt/py/bin/python3.12"), "built for the runtime's Python, installed"
    (tmp_path / "sls").mkdir()
    sls = sls_function(tmp_path / "sls", f"layers: ['{arn.replace('${AWS::Region}', 'eu-west-1')}']\n")
    assert load_function(sls, "fn").layers == (str(built),)

    def fail(*args: Any) -> str:
        raise OSError("No matching distribution found")

    monkeypatch.setattr(_templates, "powertools_layer", fail)
    message = error(path, "Fn")
    assert message.startswith(f"{path}:{line_of(path, 'Powertools')}: Resources.Fn.Properties.Layers[1]: ")
    assert "the AWS Lambda Powertools layer, which lambdasim builds from PyPI" in message
    assert "No matching distribution found; pass layers=[folder, ...] to replace the template's layers" in message


def test_the_powertools_layer_holds_the_package_of_its_major_version() -> None:
    from lambdasim._package import powertools_layer

    layer = Path(powertools_layer(3, PYTHON_VERSION))
    versions = [p.name for p in (layer / "python").glob("aws_lambda_powertools-*.dist-info")]
    assert len(versions) == 1 and versions[0].startswith("aws_lambda_powertools-3."), versions
    assert (layer / "python" / "pydantic").is_dir(), "the layer bundles the extras' dependencies (parser ...)"


@pytest.mark.parametrize(("layer", "key", "expected"), [
    ("NoContent", "Resources.NoContent.Properties.ContentUri", "missing; set ContentUri to the layer's folder"),
    ("Gone", "Resources.NoContent.Properties.ContentUri", "'gone': no such folder"),
])
def test_a_local_layer_needs_its_folder(tmp_path: Path, layer: str, key: str, expected: str) -> None:
    path = sam_function(tmp_path, f"Layers: [!Ref {layer}]\n", more=LAYERS)
    message = error(path, "Fn")
    needle = "Description: none" if layer == "NoContent" else "ContentUri: gone"
    assert message.startswith(f"{path}:{line_of(path, needle)}: Resources.{layer}.Properties.ContentUri: ")
    assert expected in message


# -- finding the function and the file -----------------------------------------------------------------


def test_a_missing_function_lists_the_functions(tmp_path: Path) -> None:
    path = sam_function(tmp_path, more="""
        Other:
          Type: AWS::Lambda::Function
          Properties: {Handler: app.handler, Runtime: python3.12, Code: src}
        Table:
          Type: AWS::DynamoDB::Table
    """)
    message = error(path, "Fun")
    assert message == (f"{path}: no function 'Fun' in Resources; the functions are: Fn (line {line_of(path, 'Fn:')}), "
                       f"Other (line {line_of(path, 'Other:')}). Did you mean 'Fn'?")
    message = error(path, "Table")
    assert message.startswith(where(path, "Resources.Table", "  Table:"))
    assert "it is AWS::DynamoDB::Table, not a function" in message and "the functions are: Fn, Other" in message


def test_a_template_without_functions_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n")
    assert error(path, "Fn") == f"{path}: no function 'Fn': Resources defines no functions."


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert error(missing, "Fn") == (f"{missing}: no such file (looked for {missing}); pass the path of a SAM "
                                    "template.yaml or a serverless.yml.")
    assert "this folder holds none of template.yaml, template.yml, serverless.yml" in error(tmp_path, "Fn")
    write(tmp_path, "service: x\n", name="serverless.yml")
    write(tmp_path, "Resources: {}\n", name="template.yml")
    assert error(tmp_path, "Fn") == (f"{tmp_path}: this folder holds template.yml and serverless.yml; pass the path "
                                     "of the one to use.")


@pytest.mark.parametrize(("text", "line", "expected"), [
    ("Resources:\n  Fn:\n    Type: [unclosed\n", 4, "not valid YAML"),
    ("Resources:\n  Fn: {a: 1}\n bad: indentation\n", 3, "not valid YAML"),
    ("- a list\n", None, "expected a mapping (a SAM template or a Serverless config) at the top, found a list"),
    ("", None, "found nothing"),
    ("Description: what is this\n", None, "cannot tell whether this is an AWS SAM/CloudFormation template"),
    ("Resources: {}\nfunctions: {}\n", None, "it has both Resources and functions"),
    ("Resources: [a]\n", 1, "Resources: expected a mapping, found a list"),
])
def test_files_that_are_not_templates(tmp_path: Path, text: str, line: int | None, expected: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(text)
    message = error(path, "Fn")
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    assert expected in message


# -- the Serverless Framework ----------------------------------------------------------------------------


def test_serverless_config_gives_every_property() -> None:
    fn = load_function(SLS, "createOrder")
    assert fn == TemplateFunction(
        name="createOrder",
        handler="src/orders.handler",  # as written: lambdasim imports src/orders.py, as Lambda does
        code_dir=str(SLS.parent),
        runtime="python3.12",
        memory_mb=512,  # ${self:custom.memory.${self:provider.stage}}, stage dev
        timeout_s=30.0,  # the function's, over the provider's 20
        ephemeral_storage_mb=1024,
        environment={
            "TABLE_NAME": "orders-dev",
            "LOG_LEVEL": "debug",  # the function's, over the provider's
            "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
        },
        reserved_concurrency=5,
        layers=(str(SLS.parent / "deps"),),
        source=f"{SLS}:{line_of(SLS, 'createOrder:')}",
        events={"httpApi": TemplateEvent("httpApi", "httpApi", "http-api", {"region": "us-east-1", "path": "/orders",
                                                                            "method": "POST"},
                                         f"{SLS}:{line_of(SLS, '- httpApi:')}")},
        function_name="orders-dev-createOrder",  # the Serverless Framework's service-stage-function
    )
    other = load_function(SLS, "listOrders", parameters={"stage": "prod"})
    assert (other.memory_mb, other.timeout_s, other.ephemeral_storage_mb, other.layers) == (2048, 20.0, 512, ())
    assert other.function_name == "orders-prod-listOrders"
    assert other.environment == {"TABLE_NAME": "orders-prod", "LOG_LEVEL": "info"}


def test_serverless_reads_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDASIM_TEST_LOG_LEVEL", "warning")
    assert load_function(SLS, "listOrders").environment["LOG_LEVEL"] == "warning"


def test_serverless_defaults_and_yaml_merge_keys(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: shop
        provider:
          name: aws
          runtime: python3.11
        custom:
          defaults: &defaults
            timeout: 15
        functions:
          plain:
            handler: app.handler
          merged:
            <<: *defaults
            handler: app.other
    """, name="serverless.yml", dirs=())
    plain = load_function(path, "plain")
    # The Serverless Framework's defaults, not Lambda's: 1024 MB, 6 seconds.
    assert (plain.memory_mb, plain.timeout_s, plain.ephemeral_storage_mb) == (1024, 6.0, 512)
    assert (plain.environment, plain.reserved_concurrency, plain.layers, plain.runtime) == ({}, None, (), "python3.11")
    assert load_function(path, "merged").timeout_s == 15.0


SLS_HEAD = """
    service: shop
    custom:
      table: ${self:service}-orders
      numbers: {memory: 256}
      stages: {dev: blue, prod: green}
      list: [first, second]
      loopA: ${self:custom.loopB}
      loopB: ${self:custom.loopA}
    provider:
      name: aws
      runtime: python3.12
      stage: ${opt:stage, 'dev'}
    functions:
      fn:
        handler: app.handler
"""


def sls_function(folder: Path, settings: str) -> Path:
    text = textwrap.dedent(SLS_HEAD) + textwrap.indent(textwrap.dedent(settings), "    ") + """
resources:
  Resources:
    OrdersTable:
      Type: AWS::DynamoDB::Table
"""
    return write(folder, text, name="serverless.yml", dirs=())


@pytest.mark.parametrize(("value", "options", "expected"), [
    ("${self:service}", {}, "shop"),
    ("${self:custom.table}", {}, "shop-orders"),
    ("${self:custom.list.1}", {}, "second"),
    ("${self:custom.stages.${self:provider.stage}}", {}, "blue"),
    ("${self:custom.stages.${self:provider.stage}}", {"stage": "prod"}, "green"),
    ("${sls:stage}", {}, "dev"),
    ("${sls:stage}", {"stage": "qa"}, "qa"),
    ("${opt:stage, 'dev'}", {}, "dev"),
    ('${opt:region, "eu-west-1"}', {}, "eu-west-1"),
    ("${opt:color, 'red'}", {"color": "blue"}, "blue"),
    ("${env:LAMBDASIM_TEST_SET}", {}, "from-env"),
    ("${env:LAMBDASIM_TEST_UNSET, 'fallback'}", {}, "fallback"),
    ("${env:LAMBDASIM_TEST_UNSET, ${self:service}}", {}, "shop"),
    ("${env:LAMBDASIM_TEST_UNSET, ${env:LAMBDASIM_TEST_UNSET_TOO}, 'last'}", {}, "last"),
    ("${env:LAMBDASIM_TEST_UNSET, 42}", {}, "42"),
    ("${aws:region}/${aws:accountId}", {}, "us-east-1/123456789012"),
    ("prefix-${self:service}-${sls:stage}-suffix", {}, "prefix-shop-dev-suffix"),
    ("'${NotAServerlessVariable}'", {}, "${NotAServerlessVariable}"),
    ("!Sub '${AWS::Region}-${self:service}'", {}, "us-east-1-shop"),
    ("!Join ['-', ['${self:service}', !Ref 'AWS::AccountId']]", {}, "shop-123456789012"),
    ("{'Fn::Join': ['', [a, '${sls:stage}']]}", {}, "adev"),
])
def test_serverless_variables_that_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str,
                                           options: dict[str, str], expected: str) -> None:
    monkeypatch.setenv("LAMBDASIM_TEST_SET", "from-env")
    monkeypatch.delenv("LAMBDASIM_TEST_UNSET", raising=False)
    monkeypatch.delenv("LAMBDASIM_TEST_UNSET_TOO", raising=False)
    path = sls_function(tmp_path, f"environment:\n  VALUE: {value}\n")
    assert load_function(path, "fn", parameters=options).environment == {"VALUE": expected}


def test_a_whole_variable_keeps_its_type_and_may_be_a_mapping(tmp_path: Path) -> None:
    path = sls_function(tmp_path, """
        memorySize: ${self:custom.numbers.memory}
        timeout: ${env:LAMBDASIM_TEST_UNSET, 12}
        environment: ${self:custom.stages}
    """)
    fn = load_function(path, "fn")
    assert (fn.memory_mb, fn.timeout_s, fn.environment) == (256, 12.0, {"dev": "blue", "prod": "green"})


@pytest.mark.parametrize(("value", "expected", "resolvable_hint"), [
    ("${ssm:/orders/secret}", "${ssm:/orders/secret} cannot be resolved locally: lambdasim resolves ${self:...}, "
                              "${env:...}, ${opt:...}, ${sls:stage}, ${aws:region|accountId}, not ssm:", True),
    ("${file(./secrets.yml):token}", "not file(./secrets.yml):", True),
    ("${cf:other-stack.Output}", "not cf:", True),
    ("${sls:instanceId}", "not sls:", True),
    ("${strToBool(${env:LAMBDASIM_TEST_UNSET})}", "not strToBool(${env:LAMBDASIM_TEST_UNSET})", True),
    ("${env:LAMBDASIM_TEST_UNSET}", "${env:LAMBDASIM_TEST_UNSET} has no value: the environment variable "
                                    "LAMBDASIM_TEST_UNSET is not set; give a fallback "
                                    "(${env:LAMBDASIM_TEST_UNSET, 'default'})", False),
    ("${opt:color}", "the option color is not given (pass parameters={'color': ...} to load_function())", False),
    ("${self:custom.nope}", "there is no custom.nope in this file", False),
    ("${self:custom.loopA}", "the variables refer to each other in a loop", False),
    ("${self:custom.numbers}", "is a mapping; environment variables are strings", False),
    ("a-${self:custom.list}", "${self:custom.list} is a list, which cannot be part of text", False),
    ("!GetAtt OrdersTable.Arn", "!GetAtt OrdersTable.Arn cannot be resolved locally", True),
    ("!Ref OrdersTable", "'OrdersTable' is a resource (AWS::DynamoDB::Table)", True),
])
def test_serverless_variables_that_cannot_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str,
                                                  expected: str, resolvable_hint: bool) -> None:
    monkeypatch.delenv("LAMBDASIM_TEST_UNSET", raising=False)
    path = sls_function(tmp_path, f"environment:\n  VALUE: {value}\n")
    message = error(path, "fn")
    assert message.startswith(where(path, "functions.fn.environment.VALUE", "VALUE:")), message
    assert expected in message
    if resolvable_hint or "has no value" in message:
        assert "set the value with environment={'VALUE': '...'}" in message
    # The override stands in for what cannot be resolved.
    assert load_function(path, "fn", environment={"VALUE": "given"}).environment == {"VALUE": "given"}


def test_serverless_provider_stage_and_region_have_the_frameworks_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: shop
        provider:
          name: aws
          runtime: python3.12
          environment:
            STAGE: ${opt:stage, self:provider.stage}
            REGION: ${self:provider.region}
            BOTH: ${self:provider.stage}-${self:provider.region}
        functions:
          fn:
            handler: app.handler
    """, name="serverless.yml", dirs=())
    assert load_function(path, "fn").environment == {"STAGE": "dev", "REGION": "us-east-1", "BOTH": "dev-us-east-1"}
    assert load_function(path, "fn", parameters={"stage": "prod"}).environment["STAGE"] == "prod"
    (tmp_path / "given").mkdir()
    given = write(tmp_path / "given", path.read_text().replace("  runtime:", "  stage: qa\n  region: eu-west-1\n"
                                                                               "  runtime:"),
                  name="serverless.yml", dirs=())
    assert load_function(given, "fn").environment == {"STAGE": "qa", "REGION": "eu-west-1", "BOTH": "qa-eu-west-1"}


@pytest.mark.parametrize(("settings", "key", "needle", "expected"), [
    ("runtime: nodejs20.x", "functions.fn.runtime", "runtime: nodejs", "'nodejs20.x' is not a Python runtime"),
    ("image: my-image", "functions.fn.image", "image:", "container image functions are not supported"),
    ("memorySize: ${self:custom.nope}", "functions.fn.memorySize", "memorySize",
     "${self:custom.nope} has no value: there is no custom.nope in this file; give a fallback "
     "(${self:custom.nope, 'default'}) or write the value itself in the config."),
    ("timeout: 0", "functions.fn.timeout", "timeout", "0 is out of range; Lambda allows 1 to 900 seconds"),
    ("ephemeralStorageSize: 20000", "functions.fn.ephemeralStorageSize", "ephemeral", "20000 is out of range"),
    ("reservedConcurrency: many", "functions.fn.reservedConcurrency", "reserved", "'many' is not a whole number"),
    ("environment: [A]", "functions.fn.environment", "environment", "expected a mapping of variables, found a list"),
    ("layers:\n  - {Ref: NopeLambdaLayer}", "functions.fn.layers[0]", "NopeLambdaLayer",
     "{'Ref': 'NopeLambdaLayer'} names no layer under layers"),
    ("layers: deps", "functions.fn.layers", "layers:", "expected a list of layers, found 'deps'"),
])
def test_bad_serverless_settings_are_named(tmp_path: Path, settings: str, key: str, needle: str,
                                          expected: str) -> None:
    path = sls_function(tmp_path, settings + "\n")
    message = error(path, "fn")
    assert message.startswith(where(path, key, needle)), message
    assert expected in message


def test_serverless_layers_by_reference(tmp_path: Path) -> None:
    for name in ("deps", "more"):
        (tmp_path / name).mkdir()
    path = write(tmp_path, """
        service: shop
        provider:
          name: aws
          runtime: python3.12
          layers:
            - !Ref PythonDashdepsLambdaLayer
        layers:
          python-deps: {path: deps}
          more_libs: {path: more}
          broken: {description: no path}
        functions:
          inherits:
            handler: app.handler
          replaces:
            handler: app.handler
            layers:
              - {Ref: MoreUnderscorelibsLambdaLayer}
          broken:
            handler: app.handler
            layers: [{Ref: BrokenLambdaLayer}]
    """, name="serverless.yml", dirs=())
    assert load_function(path, "inherits").layers == (str(tmp_path / "deps"),)
    assert load_function(path, "replaces").layers == (str(tmp_path / "more"),), "a function's layers replace"
    message = error(path, "broken")
    assert message.startswith(f"{path}:{line_of(path, 'broken: {')}: layers.broken.path: missing")


def test_serverless_runtime_is_required_and_a_missing_function_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: shop
        provider:
          name: aws
        functions:
          hello:
            handler: app.handler
          empty:
          world:
            handler: app.handler
            runtime: python3.13
    """, name="serverless.yml", dirs=())
    message = error(path, "hello")
    assert message.startswith(where(path, "provider.runtime", "provider:"))
    assert "missing; set provider.runtime (or the function's runtime) to a Python runtime" in message
    assert load_function(path, "world").runtime == "python3.13"
    assert error(path, "empty").startswith(where(path, "functions.empty.handler", "empty:"))
    assert error(path, "helo") == (f"{path}: no function 'helo' in functions; the functions are: hello (line 5), "
                                   "empty (line 7), world (line 8). Did you mean 'hello'?")


# -- who is asking: the "what to do" of an error in the caller's words ------------------------------------

MARKED = Hints(environment="ENV<{name}>", parameter="PARAM<{name}>", layers="LAYERS<>", function="FUNCTION<>")
ARN = "arn:aws:lambda:us-east-1:017000801446:layer:Powertools:7"


def hint_cases(tmp_path: Path) -> list[tuple[Path, str, str, str]]:
    """(file, function, the Python hint in its error, the same hint in MARKED's words), one for each hint."""
    for folder in ("opt", "sls-layer", "two"):
        (tmp_path / folder).mkdir()
    sam = sam_function(tmp_path / "sam", f"Layers: [{ARN}]\nEnvironment:\n  Variables:\n    TABLE: !GetAtt T.Arn\n",
                       head="Parameters:\n  Stage: {Type: String}\n", more="T: {Type: AWS::DynamoDB::Table}\n")
    param = sam_function(tmp_path / "param", "Environment:\n  Variables:\n    STAGE: !Ref Stage\n",
                         head="Parameters:\n  Stage: {Type: String}\n")
    sls_opt = sls_function(tmp_path / "opt", "environment:\n  COLOR: ${opt:color}\n")
    two = write(tmp_path / "two", "service: s\nprovider: {name: aws, runtime: python3.12}\n"
                                  "functions:\n  a: {handler: app.a}\n  b: {handler: app.b}\n",
                name="serverless.yml", dirs=())
    return [
        (sam, "Fn", "set the value with environment={'TABLE': '...'} (an override for load_function() or "
                    "Simulator.deploy_from_template())", "ENV<TABLE>"),
        (param, "Fn", "pass parameters={'Stage': ...} to load_function()", "PARAM<Stage>"),
        (sls_opt, "fn", "the option color is not given (pass parameters={'color': ...} to load_function())",
         "the option color is not given (PARAM<color>)"),
        (two, "", "which function? There are 2 in functions: a (line 4), b (line 5); name one: "
                  "load_function(path, 'LogicalId').", "; FUNCTION<>."),
    ]


def test_errors_say_what_to_do_in_the_words_of_who_asks(tmp_path: Path) -> None:
    for path, function, python, marked in hint_cases(tmp_path):
        name = function or None
        assert python in error(path, name), "the default hints, for Python, are as they were"
        assert python in error(path, name, hints=PYTHON_HINTS)
        message = error(path, name, hints=MARKED)
        assert marked in message and python not in message, message
        assert "load_function" not in message and "=[" not in message and "={" not in message, message


def test_the_function_may_be_left_out_when_there_is_one(tmp_path: Path) -> None:
    assert load_function(sam_function(tmp_path / "one"), None).name == "Fn"
    assert load_function(TEMPLATES / "sam", None, environment={"TABLE_ARN": TABLE_ARN}).name == "OrdersFunction"
    assert error(SLS, None) == (f"{SLS}: which function? There are 2 in functions: createOrder (line "
                                f"{line_of(SLS, 'createOrder:')}), listOrders (line {line_of(SLS, 'listOrders:')}); "
                                "name one: load_function(path, 'LogicalId').")
    none = write(tmp_path / "none", SAM_HEAD + "Resources:\n  T: {Type: AWS::DynamoDB::Table}\n")
    assert error(none, None) == f"{none}: no function to read: Resources defines no functions."


# -- execution models: SnapStart, provisioned concurrency, tenant isolation, Managed Instances -----------

SAM_MODELS = TEMPLATES / "sam-models" / "template.yaml"
SLS_MODELS = TEMPLATES / "serverless-models" / "serverless.yml"
MODEL_KEYS = ("snap_start", "provisioned_concurrency", "tenant_isolation", "capacity_provider", "max_concurrency",
              "min_environments", "max_environments")


def models(path: Path, function: str, **kwargs: Any) -> dict[str, Any]:
    """The execution-model settings ``load_function`` reads, those that differ from deploy()'s defaults."""
    kwargs_ = load_function(path, function, **kwargs).deploy_kwargs()
    defaults = {key: inspect.signature(Simulator.deploy).parameters[key].default for key in MODEL_KEYS}
    return {key: kwargs_[key] for key in MODEL_KEYS if kwargs_[key] != defaults[key]}


FLEET_ARN = "arn:aws:lambda:us-east-1:123456789012:capacity-provider:fleet"


@pytest.mark.parametrize(("function", "expected"), [
    ("SnapFunction", {"snap_start": True}),  # from Globals, with AutoPublishAlias
    ("OnDemandFunction", {}),  # ApplyOn: None over Globals
    ("ProvisionedFunction", {"provisioned_concurrency": 2}),  # !Ref a parameter's Default
    ("TenantFunction", {"tenant_isolation": True}),
    ("ManagedFunction", {"capacity_provider": FLEET_ARN, "max_concurrency": 4, "min_environments": 1,
                         "max_environments": 3}),
    # CloudFormation: !Ref gives the capacity provider's name (its logical ID stands for a generated one).
    ("PlainManagedFunction", {"capacity_provider": "PlainFleet", "max_concurrency": 8}),
    ("PlainProvisionedFunction", {"provisioned_concurrency": 3}),  # from the AWS::Lambda::Version
    ("PlainSnapFunction", {"snap_start": True}),
])
def test_sam_and_cloudformation_execution_models(function: str, expected: dict[str, Any]) -> None:
    assert models(SAM_MODELS, function) == expected


def test_execution_models_follow_parameters_and_region(tmp_path: Path) -> None:
    assert models(SAM_MODELS, "ProvisionedFunction", parameters={"Environments": "5"}) == {
        "provisioned_concurrency": 5}
    fn = load_function(SAM_MODELS, "ManagedFunction", region="eu-west-1")
    assert fn.capacity_provider == "arn:aws:lambda:eu-west-1:123456789012:capacity-provider:fleet"


@pytest.mark.parametrize(("function", "expected"), [
    ("snap", {"snap_start": True}),
    ("provisioned", {"provisioned_concurrency": 2}),
    ("provisionedAlias", {"provisioned_concurrency": 3}),
    ("perTenant", {"tenant_isolation": True}),
    ("managed", {"capacity_provider": "highMem"}),
    ("managedTuned", {"capacity_provider": "highMem", "max_concurrency": 8, "min_environments": 1,
                      "max_environments": 5}),
    ("managedElsewhere", {"capacity_provider": "arn:aws:lambda:us-east-1:123456789012:capacity-provider:external"}),
])
def test_serverless_execution_models(function: str, expected: dict[str, Any]) -> None:
    assert models(SLS_MODELS, function) == expected


FLEET = """
Fleet:
  Type: AWS::Serverless::CapacityProvider
Table:
  Type: AWS::DynamoDB::Table
"""


@pytest.mark.parametrize(("properties", "key", "needle", "expected"), [
    ("SnapStart: true", f"{P}.SnapStart", "SnapStart", "expected {ApplyOn: PublishedVersions}, found True"),
    ("SnapStart: {ApplyOn: Always}", f"{P}.SnapStart.ApplyOn", "SnapStart",
     "'Always' is not valid; Lambda allows PublishedVersions or None."),
    ("SnapStart: {}", f"{P}.SnapStart.ApplyOn", "SnapStart", "missing; set it to PublishedVersions or None."),
    ("TenancyConfig: {TenantIsolationMode: SHARED}", f"{P}.TenancyConfig.TenantIsolationMode", "Tenancy",
     "'SHARED' is not valid; Lambda allows PER_TENANT."),
    ("TenancyConfig: {Mode: PER_TENANT}", f"{P}.TenancyConfig.Mode", "Tenancy",
     "not a key of this setting; it takes TenantIsolationMode."),
    ("ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: -1}",
     f"{P}.ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions", "Provisioned",
     "-1 is out of range; use a whole number >= 0."),
    ("ProvisionedConcurrencyConfig: {}", f"{P}.ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions",
     "Provisioned", "missing; set it to the number of environments"),
    ("CapacityProviderConfig: {Arn: !GetAtt Nope.Arn}", f"{P}.CapacityProviderConfig.Arn", "Capacity",
     "!GetAtt Nope.Arn names no resource of this template; the capacity providers here are Fleet."),
    ("CapacityProviderConfig: {Arn: !GetAtt Table.Arn}", f"{P}.CapacityProviderConfig.Arn", "Capacity",
     "!GetAtt Table.Arn names Resources.Table (line {line}), which is AWS::DynamoDB::Table, not a capacity "
     "provider; the capacity providers here are Fleet."),
    ("CapacityProviderConfig: {Arn: !Ref Nope}", f"{P}.CapacityProviderConfig.Arn", "Capacity",
     "!Ref Nope names no resource of this template"),
    ("CapacityProviderConfig: {Arn: !GetAtt Fleet.Name}", f"{P}.CapacityProviderConfig.Arn", "Capacity",
     "a capacity provider's attribute here is Arn (!GetAtt Fleet.Arn)."),
    ("CapacityProviderConfig: {PerExecutionEnvironmentMaxConcurrency: 4}", f"{P}.CapacityProviderConfig.Arn",
     "Capacity", "missing; set it to the capacity provider"),
    ("CapacityProviderConfig: {Arn: !GetAtt Fleet.Arn, PerExecutionEnvironmentMaxConcurrency: 2000}",
     f"{P}.CapacityProviderConfig.PerExecutionEnvironmentMaxConcurrency", "Capacity",
     "2000 is out of range; Lambda allows 1 to 1600 concurrent requests per execution environment."),
    ("CapacityProviderConfig: {Arn: !GetAtt Fleet.Arn, ExecutionEnvironmentMemoryGiBPerVCpu: 3}",
     f"{P}.CapacityProviderConfig.ExecutionEnvironmentMemoryGiBPerVCpu", "Capacity",
     "3 is not valid; Lambda allows 2, 4 or 8 GiB per vCPU."),
    ("CapacityProviderConfig: {Arn: !GetAtt Fleet.Arn, MaxConcurrency: 4}",
     f"{P}.CapacityProviderConfig.MaxConcurrency", "Capacity",
     "not a key of this setting; it takes Arn, PerExecutionEnvironmentMaxConcurrency, "
     "ExecutionEnvironmentMemoryGiBPerVCpu."),
    # CloudFormation's layout in a SAM function: SAM's is flat.
    ("CapacityProviderConfig: {LambdaManagedInstancesCapacityProviderConfig: {CapacityProviderArn: x}}",
     f"{P}.CapacityProviderConfig.LambdaManagedInstancesCapacityProviderConfig", "Capacity",
     "not a key of this setting; it takes Arn,"),
    ("FunctionScalingConfig: {MinExecutionEnvironments: 1}", f"{P}.FunctionScalingConfig", "Scaling",
     "a setting of Lambda Managed Instances; add CapacityProviderConfig, or remove it."),
    ("CapacityProviderConfig: {Arn: !GetAtt Fleet.Arn}\nFunctionScalingConfig: {MaxExecutionEnvironments: 20000}",
     f"{P}.FunctionScalingConfig.MaxExecutionEnvironments", "Scaling",
     "20000 is out of range; Lambda allows 0 to 15000 execution environments."),
])
def test_bad_execution_models_are_named(tmp_path: Path, properties: str, key: str, needle: str,
                                        expected: str) -> None:
    path = sam_function(tmp_path, properties + "\n", more=FLEET)
    message = error(path, "Fn")
    assert message.startswith(f"{path}:{line_of(path, needle)}: {key}: "), message
    assert expected.replace("{line}", str(line_of(path, "Table:"))) in message


def test_cloudformation_execution_models_in_their_own_layout(tmp_path: Path) -> None:
    def plain(properties: str, more: str = "") -> Path:
        text = SAM_HEAD + "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n" + (
            "      Handler: app.handler\n      Runtime: python3.12\n      Code: src\n"
            + textwrap.indent(textwrap.dedent(properties), "      ") + textwrap.indent(textwrap.dedent(more), "  "))
        return write(tmp_path, text)

    path = plain("ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 2}\n")
    assert error(path, "Fn").startswith(where(path, f"{P}.ProvisionedConcurrencyConfig", "Provisioned") + (
        "not a property of AWS::Lambda::Function; CloudFormation sets ProvisionedConcurrencyConfig on an "
        "AWS::Lambda::Alias or AWS::Lambda::Version of the function: move it there."))
    path = plain("CapacityProviderConfig: {Arn: x}\n")
    assert "not a key of this setting; it takes LambdaManagedInstancesCapacityProviderConfig." in error(path, "Fn")
    path = plain("CapacityProviderConfig: {LambdaManagedInstancesCapacityProviderConfig: {Arn: x}}\n")
    assert error(path, "Fn").startswith(where(
        path, f"{P}.CapacityProviderConfig.LambdaManagedInstancesCapacityProviderConfig.Arn", "Capacity"))
    alias = """
    Live:
      Type: AWS::Lambda::Alias
      Properties:
        FunctionName: !GetAtt Fn.Arn
        ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 4}
    Other:
      Type: AWS::Lambda::Alias
      Properties:
        FunctionName: !Ref Elsewhere
        ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 9}
    """
    assert models(plain("", alias), "Fn") == {"provisioned_concurrency": 4}, "the alias of Fn, not of Elsewhere"
    twice = alias + """
    Version:
      Type: AWS::Lambda::Version
      Properties:
        FunctionName: !Ref Fn
        ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}
    """
    path = plain("", twice)
    assert error(path, "Fn").startswith(where(
        path, "Resources.Version.Properties.ProvisionedConcurrencyConfig", "ProvisionedConcurrencyConfig", 3) + (
        f"provisioned concurrency is set twice for Fn (also at Resources.Live.Properties."
        f"ProvisionedConcurrencyConfig, line {line_of(path, 'ProvisionedConcurrencyConfig')})"))


@pytest.mark.parametrize(("settings", "key", "needle", "expected"), [
    ("snapStart: yes please", "functions.fn.snapStart", "snapStart", "'yes please' is not true or false."),
    ("provisionedConcurrency: {alias: live}", "functions.fn.provisionedConcurrency.executions", "provisioned",
     "missing; set it to the number of environments"),
    ("provisionedConcurrency: -2", "functions.fn.provisionedConcurrency", "provisioned", "-2 is out of range"),
    ("tenancy: {mode: shared}", "functions.fn.tenancy.mode", "tenancy",
     "'shared' is not valid; Lambda allows per_tenant."),
    ("capacityProvider: lowMem", "functions.fn.capacityProvider", "capacity",
     "'lowMem' names no capacity provider under provider.capacityProviders; name one of them, default, or give an "
     "ARN."),
    ("capacityProvider: {maxConcurrency: 2}", "functions.fn.capacityProvider.name", "capacity", "missing;"),
    ("capacityProvider: {name: default, maxConcurrency: 0}", "functions.fn.capacityProvider.maxConcurrency",
     "capacity", "0 is out of range; Lambda allows 1 to 1600"),
    ("capacityProvider: {name: default, scaling: {least: 1}}", "functions.fn.capacityProvider.scaling.least",
     "capacity", "not a key of this setting; it takes min, max."),
    ("capacityProvider: !GetAtt OrdersTable.Arn", "functions.fn.capacityProvider", "capacity",
     "names Resources.OrdersTable"),
])
def test_bad_serverless_execution_models_are_named(tmp_path: Path, settings: str, key: str, needle: str,
                                                  expected: str) -> None:
    path = sls_function(tmp_path, settings + "\n")
    message = error(path, "fn")
    assert message.startswith(where(path, key, needle)), message
    assert expected in message
    assert models(sls_function(tmp_path, "tenancy: {mode: PER_TENANT}\n"), "fn") == {"tenant_isolation": True}


# -- the one that runs: a SAM function deployed from its template --------------------------------------


@pytest.mark.sandbox
def test_a_sam_function_deploys_and_runs(sim: Simulator) -> None:
    fn = load_function(SAM, "OrdersFunction", environment={"TABLE_ARN": TABLE_ARN})
    deployed = sim.deploy(**fn.deploy_kwargs())
    inv = deployed.invoke({"name": "sam"})
    assert inv.error is None, inv.error
    assert inv.payload["greeting"] == "hello, sam", "the SharedLayer is mounted at /opt"
    assert inv.payload["env"] == {
        "STAGE": "dev", "LOG_LEVEL": "debug", "TABLE_NAME": "orders-dev", "TABLE_ARN": TABLE_ARN,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    }
    assert inv.payload["function_name"] == "OrdersFunction"
    assert 9000 < inv.payload["remaining_ms"] <= 10000, "Timeout: 10 from Globals"
    assert inv.memory_size_mb == 512
    assert deployed.config.ephemeral_storage_mb == 1024 and deployed.config.reserved_concurrency == 5


@pytest.mark.sandbox
def test_a_template_deploys_its_execution_models(sim: Simulator) -> None:
    for function, setting, value in (("SnapFunction", "snap_start", True), ("TenantFunction", "tenant_isolation", True),
                                     ("ManagedFunction", "capacity_provider", FLEET_ARN)):
        fn = sim.deploy_from_template(SAM_MODELS, function)
        assert getattr(fn.config, setting) == value
    assert sim.functions["ManagedFunction"].config.concurrency_per_environment == 4


@pytest.mark.sandbox
def test_a_templates_provisioned_environments_start_at_deploy(sim: Simulator) -> None:
    fn = sim.deploy_from_template(SAM_MODELS, "ProvisionedFunction")
    assert len(fn.instances) == 2, "ProvisionedConcurrentExecutions: 2 environments, initialised at deploy"
    inv = fn.invoke({})
    assert inv.payload == {"initialization_type": "provisioned-concurrency", "tenant_id": None}


@pytest.mark.sandbox
def test_every_execution_model_sees_the_functions_name_on_lambda(sim: Simulator, tmp_path: Path) -> None:
    path = write(tmp_path, """
        Transform: AWS::Serverless-2016-10-31
        Globals:
          Function: {Handler: app.handler, CodeUri: src, Runtime: python3.13}
        Resources:
          Managed:
            Type: AWS::Serverless::Function
            Properties:
              FunctionName: managed-fn
              CapacityProviderConfig: {Arn: !GetAtt Fleet.Arn}
          Snap:
            Type: AWS::Serverless::Function
            Properties: {FunctionName: snap-fn, SnapStart: {ApplyOn: PublishedVersions}}
          Provisioned:
            Type: AWS::Serverless::Function
            Properties:
              ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}
          Fleet:
            Type: AWS::Serverless::CapacityProvider
            Properties:
              CapacityProviderName: fleet
              VpcConfig: {SubnetIds: [subnet-0123456789abcdef0], SecurityGroupIds: [sg-0123456789abcdef0]}
        """)
    (tmp_path / "src" / "app.py").write_text(textwrap.dedent("""\
        import os
        def handler(event, context):
            return [context.function_name, context.invoked_function_arn, os.environ["AWS_LAMBDA_FUNCTION_NAME"]]
        """))
    stack = tmp_path.name.replace("_", "-")  # the folder's name, as a stack name
    names = {"Managed": "managed-fn", "Snap": "snap-fn", "Provisioned": rf"{stack}-Provisioned-[A-Z0-9]{{12}}"}
    for function, named in names.items():
        fn = sim.deploy_from_template(path, function)
        name = str(fn.config.function_name)
        assert re.fullmatch(named, name), (function, name)
        inv = fn.invoke({})
        assert inv.error is None, inv.logs
        assert inv.payload == [name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}", name], function


INLINE = "import os\n\ndef handler(event, context):\n    return [__file__, os.environ['AWS_LAMBDA_FUNCTION_NAME']]\n"


def test_inline_code_is_index_py_in_the_package_as_on_lambda(sim: Simulator, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    def body(indent: int) -> str:
        return "\n".join(" " * indent + line for line in INLINE.splitlines())

    path = write(tmp_path, f"""
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Sam:
            Type: AWS::Serverless::Function
            Properties:
              Handler: index.handler
              Runtime: python3.12
              InlineCode: |
{body(16)}
          Plain:
            Type: AWS::Lambda::Function
            Properties:
              FunctionName: plain
              Handler: index.handler
              Runtime: python3.12
              Role: arn:aws:iam::123456789012:role/r
              Code:
                ZipFile: |
{body(18)}
          Wrong:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: python3.12
              InlineCode: "def handler(e, c):\\n    return 1\\n"
    """)
    sam = sim.deploy_from_template(path, "Sam")
    assert sam.invoke({}).payload[0] == "/var/task/index.py"
    plain = sim.deploy_from_template(path, "Plain")
    assert plain.invoke({}).payload == ["/var/task/index.py", "plain"]
    assert sam.config.code_dir == plain.config.code_dir  # the same code: one folder, by content
    assert sorted(os.listdir(sam.config.code_dir)) == ["index.py"]
    # The file is index.py whatever the handler says, as on Lambda: app.handler is not found.
    wrong = sim.deploy_from_template(path, "Wrong").invoke({})
    assert wrong.error is not None and wrong.error["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'app'" in wrong.error["errorMessage"]
