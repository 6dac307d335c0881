"""``LoggingConfig`` (log format, application and system log levels): from SAM/CloudFormation templates
(with Globals) and Serverless configs, or ``deploy(log_format=...)``, to the runtime's environment, its
records and Lambda's platform lines (``platform.start`` ... in the JSON format)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambdasim import ConfigError, Simulator, _platform_log
from lambdasim import _lambda_errors as lambda_errors
from lambdasim._templates import load_function
from tests.conftest import Code
from tests.test_templates import error, line_of, sam_function, where, write

HANDLER = """
import json, logging, os
def handler(event, context):
    logging.getLogger().debug("debug record")
    logging.getLogger().info("info record")
    logging.getLogger().warning("warning record")
    return {k: os.environ.get(k) for k in ("AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL")}
"""


def records(logs: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in logs.splitlines() if line.startswith("{")]


# -- templates -------------------------------------------------------------------------------------------


def test_sam_logging_config_and_globals(tmp_path: Path) -> None:
    path = sam_function(tmp_path, "LoggingConfig:\n  ApplicationLogLevel: DEBUG\n",
                        head="Globals:\n  Function:\n    LoggingConfig:\n      LogFormat: JSON\n"
                             "      SystemLogLevel: WARN\n")
    fn = load_function(path, "Fn")
    # SAM's Globals: maps merge, the function's keys winning.
    assert (fn.log_format, fn.application_log_level, fn.system_log_level) == ("JSON", "DEBUG", "WARN")
    kwargs = fn.deploy_kwargs()
    assert kwargs["log_format"] == fn.log_format and kwargs["application_log_level"] == "DEBUG"


def test_cloudformation_logging_config(tmp_path: Path) -> None:
    path = write(tmp_path, """
        AWSTemplateFormatVersion: "2010-09-09"
        Resources:
          Fn:
            Type: AWS::Lambda::Function
            Properties:
              Handler: app.handler
              Runtime: python3.12
              Code: src
              LoggingConfig: {LogFormat: JSON, ApplicationLogLevel: ERROR, SystemLogLevel: DEBUG}
    """)
    fn = load_function(path, "Fn")
    assert (fn.log_format, fn.application_log_level, fn.system_log_level) == ("JSON", "ERROR", "DEBUG")


def test_template_defaults_are_text_without_levels(tmp_path: Path) -> None:
    fn = load_function(sam_function(tmp_path), "Fn")
    assert (fn.log_format, fn.application_log_level, fn.system_log_level) == ("Text", None, None)


def test_template_log_values_are_checked_where_written(tmp_path: Path) -> None:
    path = sam_function(tmp_path, "LoggingConfig:\n  LogFormat: json\n")
    assert error(path, "Fn").startswith(where(path, "Resources.Fn.Properties.LoggingConfig.LogFormat", "LogFormat"))
    path = sam_function(tmp_path, "LoggingConfig:\n  ApplicationLogLevel: INFO\n")
    message = error(path, "Fn")
    assert message.startswith(where(path, "Resources.Fn.Properties.LoggingConfig.ApplicationLogLevel",
                                    "ApplicationLogLevel"))
    assert "set LogFormat: JSON too" in message
    path = sam_function(tmp_path, "LoggingConfig:\n  LogFormat: JSON\n  SystemLogLevel: ERROR\n")
    assert "Lambda allows DEBUG or INFO or WARN" in error(path, "Fn")


def test_serverless_logs_provider_and_function(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: orders
        provider:
          name: aws
          runtime: python3.12
          logs:
            restApi: true
            lambda:
              logFormat: JSON
              applicationLogLevel: INFO
              systemLogLevel: WARN
        functions:
          quiet:
            handler: app.handler
          chatty:
            handler: app.handler
            logs:
              applicationLogLevel: DEBUG
              systemLogLevel: DEBUG
    """, name="serverless.yml", dirs=())
    quiet, chatty = load_function(path, "quiet"), load_function(path, "chatty")
    assert (quiet.log_format, quiet.application_log_level, quiet.system_log_level) == ("JSON", "INFO", "WARN")
    assert (chatty.log_format, chatty.application_log_level, chatty.system_log_level) == ("JSON", "DEBUG", "DEBUG")


def test_serverless_levels_need_json(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: orders
        provider: {name: aws, runtime: python3.12}
        functions:
          fn:
            handler: app.handler
            logs: {applicationLogLevel: DEBUG}
    """, name="serverless.yml", dirs=())
    message = error(path, "fn")
    assert message.startswith(f"{path}:{line_of(path, 'applicationLogLevel')}: functions.fn.logs.applicationLogLevel")
    assert "set logFormat: JSON too" in message


# -- deploy() --------------------------------------------------------------------------------------------


def test_deploy_checks_log_settings(sim: Simulator, code: Code) -> None:
    folder = code("def handler(e, c):\n    return 1\n")
    with pytest.raises(ConfigError, match="log_format='text' is not valid; Lambda allows 'Text' or 'JSON'"):
        sim.deploy("app.handler", folder, log_format="text")
    with pytest.raises(ConfigError, match="application_log_level filters JSON logs only"):
        sim.deploy("app.handler", folder, application_log_level="DEBUG")
    with pytest.raises(ConfigError, match="system_log_level='ERROR' is not valid"):
        sim.deploy("app.handler", folder, log_format="JSON", system_log_level="ERROR")


def test_json_format_reaches_runtime_and_platform_lines(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(HANDLER), log_format="JSON")
    inv = fn.invoke({})
    assert inv.payload == {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    lines = records(inv.logs)
    assert len(lines) == len(inv.logs.splitlines()), inv.logs  # every line is JSON
    kinds = [r.get("type") or r.get("level") for r in lines]
    # At INFO (the default): initStart, start, the INFO and WARNING records, report; no END (runtimeDone: DEBUG).
    assert kinds == ["platform.initStart", "platform.start", "INFO", "WARNING", "platform.report"], kinds
    init, start, report = lines[0], lines[1], lines[-1]
    assert init["record"] == {"initializationType": "on-demand", "phase": "init",
                              "runtimeVersion": init["record"]["runtimeVersion"],  # type: ignore[index]
                              "runtimeVersionArn": "arn:aws:lambda:us-east-1::runtime:lambdasim",
                              "functionName": "app", "functionVersion": "$LATEST"}
    assert start["record"] == {"requestId": inv.request_id, "version": "$LATEST"}
    metrics = report["record"]["metrics"]  # type: ignore[index]
    assert report["record"]["requestId"] == inv.request_id and report["record"]["status"] == "success"  # type: ignore[index]
    assert set(metrics) == {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"}
    assert metrics["memorySizeMB"] == 128 and metrics["billedDurationMs"] >= 1
    assert all(str(r["time"]).endswith("Z") for r in (init, start, report))
    warm = records(fn.invoke({}).logs)
    assert "initDurationMs" not in warm[-1]["record"]["metrics"]  # type: ignore[index]
    assert warm[0]["type"] == "platform.start"


def test_system_log_level_filters_platform_lines(sim: Simulator, code: Code) -> None:
    debug = sim.deploy("app.handler", code(HANDLER), "debug", log_format="JSON", application_log_level="DEBUG",
                       system_log_level="DEBUG")
    inv = debug.invoke({})
    kinds = [r.get("type") or r.get("level") for r in records(inv.logs)]
    assert kinds == ["platform.initStart", "platform.start", "DEBUG", "INFO", "WARNING", "platform.runtimeDone",
                     "platform.report"], kinds
    done = records(inv.logs)[-2]["record"]
    assert done["requestId"] == inv.request_id and done["status"] == "success"  # type: ignore[index]
    warn = sim.deploy("app.handler", code(HANDLER), "warn", log_format="JSON", application_log_level="WARN",
                      system_log_level="WARN")
    kinds = [r.get("type") or r.get("level") for r in records(warn.invoke({}).logs)]
    assert kinds == ["WARNING"], kinds


def test_json_report_carries_errors(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code("import time\ndef handler(e, c):\n    time.sleep(5)\n"), log_format="JSON",
                    timeout_s=1)
    report = records(fn.invoke({}).logs)[-1]
    assert report["type"] == "platform.report"
    assert report["record"]["status"] == "timeout"  # type: ignore[index]


def test_text_format_is_unchanged(sim: Simulator, code: Code) -> None:
    inv = sim.deploy("app.handler", code(HANDLER)).invoke({})
    assert inv.payload == {"AWS_LAMBDA_LOG_FORMAT": None, "AWS_LAMBDA_LOG_LEVEL": None}
    assert inv.logs.startswith("INIT_START Runtime Version: ")
    assert f"\nSTART RequestId: {inv.request_id} Version: $LATEST\n" in inv.logs
    assert f"\nEND RequestId: {inv.request_id}\nREPORT RequestId: {inv.request_id}\t" in inv.logs


def test_template_logging_reaches_the_runtime(sim: Simulator, tmp_path: Path) -> None:
    path = sam_function(tmp_path, "LoggingConfig: {LogFormat: JSON, ApplicationLogLevel: WARN}\n")
    (tmp_path / "src" / "app.py").write_text(HANDLER)
    inv = sim.deploy_from_template(path, "Fn").invoke({})
    assert inv.payload == {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN"}
    assert [r.get("level") for r in records(inv.logs) if "level" in r] == ["WARNING"]


# -- the platform lines' helpers (_platform_log) -------------------------------------------------------------

TRACE = "Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1;Lineage=1:aa:0"


def _record(line: str) -> dict[str, Any]:
    event = json.loads(line)
    assert set(event) == {"time", "type", "record"} and event["time"].endswith("Z")
    return dict(event)


def test_restore_lines_in_each_format() -> None:
    text_start = lambda_errors.phase_line("RESTORE_START", python="3.12", region="eu-west-1")
    failed = lambda_errors.error_status(lambda_errors.RUNTIME_AFTER_RESTORE_ERROR)
    text_report = lambda_errors.phase_line("RESTORE_REPORT", 15.194, failed)
    assert _platform_log.restore_start(None, text_start, runtime_version="python:3.12", region="eu-west-1",
                                       function="fn", version="$LATEST") == text_start
    assert _platform_log.restore_report(None, text_report, 15.194, "x") == text_report
    start = _record(_platform_log.restore_start("INFO", text_start, runtime_version="python:3.12", region="eu-west-1",
                                                function="fn", version="$LATEST"))
    assert start["type"] == "platform.restoreStart"
    assert start["record"] == {"runtimeVersion": "python:3.12.lambdasim",
                               "runtimeVersionArn": "arn:aws:lambda:eu-west-1::runtime:lambdasim",
                               "functionName": "fn", "functionVersion": "$LATEST"}
    (report,) = _platform_log.restore_report("INFO", text_report, 15.194, failed).splitlines()
    assert _record(report) | {"time": ""} == {"time": "", "type": "platform.restoreReport", "record": {
        "status": "error", "errorType": lambda_errors.RUNTIME_AFTER_RESTORE_ERROR, "metrics": {"durationMs": 15.194}}}
    done, report = _platform_log.restore_report("DEBUG", text_report, 15.194, "").splitlines()
    assert _record(done)["type"] == "platform.restoreRuntimeDone" and _record(done)["record"] == {"status": "success"}
    assert _record(report)["record"] == {"status": "success", "metrics": {"durationMs": 15.194}}
    assert _platform_log.restore_report("WARN", text_report, 15.194, "") == ""


def test_init_report_in_each_format() -> None:
    text = lambda_errors.phase_line("INIT_REPORT", 247.88, "")
    assert _platform_log.init_report(None, text, 247.88, "", initialization_type="snap-start") == text
    record = _record(_platform_log.init_report("INFO", text, 247.88, "", initialization_type="snap-start"))
    assert record["type"] == "platform.initReport" and record["record"] == {
        "initializationType": "snap-start", "phase": "init", "status": "success", "metrics": {"durationMs": 247.88}}


def test_trace_context_and_xray_line_name_the_same_ids() -> None:
    assert _platform_log.trace_context(TRACE) == {
        "spanId": "0efbd19962d95b05", "type": "X-Amzn-Trace-Id",
        "value": "Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1"}
    assert _platform_log.xray_line(TRACE) == \
        "XRAY TraceId: 1-62e900b2-710d76f009d6e7785905449a\tSegmentId: 0efbd19962d95b05\tSampled: true\t\n"


def test_frame_of_a_traced_and_a_managed_invocation() -> None:
    metrics = _platform_log.report_metrics(693.92, 128, 84, 397.68, "")
    start, end, done = _platform_log.frame("DEBUG", "r", "$LATEST", dict(metrics), TRACE)
    context = _platform_log.trace_context(TRACE)
    assert [_record(line)["record"]["tracing"] for line in (start, end, done)] == [context] * 3
    start, end, done = _platform_log.frame("DEBUG", "r", "$LATEST.PUBLISHED", dict(metrics), managed=True)
    assert end == "" and "tracing" not in _record(start)["record"]
    assert _record(done)["record"] == {"requestId": "r", "status": "success", "metrics": {"durationMs": 693.92}}
