"""Template properties lambdasim does not model: each named once in a TemplateWarning with its file:line,
never dropped silently (lambdasim._template_props); and the plugin's summary lists them."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from lambdasim import TemplateWarning, load_function
from lambdasim._template_props import SAM_MODELLED, SERVERLESS_MODELLED
from lambdasim._templates import TemplateFunction
from tests.test_templates import SAM, SLS, TABLE_ARN, line_of, sam_function, write


def unmodelled(path: Path, function: str, **kwargs: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_function(path, function, **kwargs)  # type: ignore[arg-type]
    return [str(w.message) for w in caught if issubclass(w.category, TemplateWarning)]


def test_each_unmodelled_property_is_named_once_with_its_line(tmp_path: Path) -> None:
    path = sam_function(tmp_path, """
        Description: not warned about, it changes nothing
        Architectures: [arm64]
        Role: arn:aws:iam::123456789012:role/x
        LoggingConfig: {LogFormat: JSON, LogGroup: my-group}
        Events:
          Api: {Type: Api, Properties: {Path: /, Method: get}}
    """, head="Globals:\n  Function:\n    Architectures: [x86_64]\n    VpcConfig: {SubnetIds: [a]}\n")
    messages = unmodelled(path, "Fn")
    key = "Resources.Fn.Properties"
    assert messages == [
        f"{path}:{line_of(path, 'VpcConfig')}: Globals.Function.VpcConfig: lambdasim does not model VpcConfig; the "
        "function runs without it (network='isolated' is the closest: no way out but the simulator's services).",
        # Architectures in Globals and in the function: once, where it takes effect.
        f"{path}:{line_of(path, 'arm64')}: {key}.Architectures: lambdasim does not model Architectures; the "
        "function runs without it (it runs on this machine's architecture).",
        f"{path}:{line_of(path, 'Role:')}: {key}.Role: lambdasim does not model Role; the function runs without "
        "it (IAM permissions are not checked).",
        f"{path}:{line_of(path, 'LogGroup')}: {key}.LoggingConfig.LogGroup: lambdasim does not model LogGroup; "
        "the function runs without it (the log is the invocation's logs).",
    ]  # Events are read: fn.event(NAME) builds each source's event


def test_a_function_of_modelled_properties_warns_nothing(tmp_path: Path) -> None:
    path = sam_function(tmp_path, "MemorySize: 256\nTimeout: 5\nTracing: Active\nDescription: d\n")
    assert unmodelled(path, "Fn") == []


def test_serverless_function_and_provider_keys(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: orders
        provider:
          name: aws
          runtime: python3.12
          stage: dev
          architecture: arm64
          logs: {lambda: {logFormat: JSON, logGroup: shared}}
        functions:
          fn:
            handler: app.handler
            description: d
            events:
              - httpApi: GET /
            url: true
            destinations: {onFailure: arn:aws:sqs:us-east-1:123456789012:dlq}
    """, name="serverless.yml", dirs=())
    messages = unmodelled(path, "fn")
    assert [m.split(": ")[1] for m in messages] == ["provider.architecture", "provider.logs.lambda.logGroup",
                                                     "functions.fn.destinations"]
    assert messages[2] == (f"{path}:{line_of(path, 'destinations:')}: functions.fn.destinations: lambdasim does "
                           "not model destinations; the function runs without it.")


def test_the_modelled_lists_cover_what_the_readers_read() -> None:
    # Every field of TemplateFunction comes from a property the lists name (or from the function's key).
    fields = set(TemplateFunction.__dataclass_fields__) - {"name", "code_dir", "source"}
    sam_names = {"handler": "Handler", "runtime": "Runtime", "memory_mb": "MemorySize", "timeout_s": "Timeout",
                 "ephemeral_storage_mb": "EphemeralStorage", "environment": "Environment",
                 "reserved_concurrency": "ReservedConcurrentExecutions", "layers": "Layers",
                 "entry_point": "ImageConfig", "snap_start": "SnapStart",
                 "provisioned_concurrency": "ProvisionedConcurrencyConfig", "tenant_isolation": "TenancyConfig",
                 "capacity_provider": "CapacityProviderConfig", "max_concurrency": "CapacityProviderConfig",
                 "min_environments": "FunctionScalingConfig", "max_environments": "FunctionScalingConfig",
                 "log_format": "LoggingConfig", "application_log_level": "LoggingConfig",
                 "system_log_level": "LoggingConfig", "tracing": "Tracing", "events": "Events",
                 "function_name": "FunctionName", "function_url": "FunctionUrlConfig",
                 "max_retry_attempts": "EventInvokeConfig", "max_event_age_s": "EventInvokeConfig"}
    assert set(sam_names) == fields
    assert set(sam_names.values()) <= SAM_MODELLED
    assert {"handler", "runtime", "memorySize", "logs", "tracing", "url", "maximumRetryAttempts",
            "maximumEventAge"} <= SERVERLESS_MODELLED


def test_the_fixture_templates_name_what_they_leave_out() -> None:
    sam = unmodelled(SAM, "OrdersFunction", environment={"TABLE_ARN": TABLE_ARN})
    assert [m.split(": ")[1] for m in sam] == ["Resources.OrdersFunction.Properties.Policies"]
    assert unmodelled(SLS, "createOrder") == [], "its events are read (fn.event)"


def test_the_plugin_summary_lists_them(pytester: pytest.Pytester, tmp_path: Path) -> None:
    sam_function(pytester.path, "Architectures: [arm64]\n")
    (pytester.path / "src" / "app.py").write_text("def handler(e, c):\n    return 1\n")
    pytester.makepyfile(test_x=textwrap.dedent("""
        from lambdasim import load_function
        def test_one():
            load_function("template.yaml", "Fn")
        def test_two():
            load_function("template.yaml", "Fn")
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    section = out.split("lambda-sim: template settings not modelled", 1)[1]
    assert section.count("Resources.Fn.Properties.Architectures: lambdasim does not model Architectures") == 1
