"""Active tracing (``Tracing: Active``, ``deploy(tracing=True)``): sampled trace headers and a local
X-Ray daemon address whose segments ``Simulator.xray_segments()`` returns; without it tracing stays off."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from lambdasim import Simulator
from lambdasim._services.xray import XRaySink, parse_datagram
from lambdasim._templates import load_function
from tests.conftest import Code
from tests.test_templates import error, sam_function, where, write

BOTH_SANDBOXES = True

ENV = """
import os
def handler(event, context):
    return {k: os.environ.get(k) for k in ("_X_AMZN_TRACE_ID", "AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT",
                                           "AWS_XRAY_CONTEXT_MISSING")}
"""

RAW = """
import json, os, socket
def handler(event, context):
    host, port = os.environ["AWS_XRAY_DAEMON_ADDRESS"].split(":")
    header = dict(p.split("=", 1) for p in os.environ["_X_AMZN_TRACE_ID"].split(";"))
    segment = {"name": "raw", "id": "0123456789abcdef", "trace_id": header["Root"],
               "parent_id": header["Parent"], "type": "subsegment", "start_time": 1.0, "end_time": 2.0}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"not a segment", (host, int(port)))
        s.sendto(b'{"format": "json", "version": 1}\\n' + json.dumps(segment).encode(), (host, int(port)))
    return header
"""

SDK = """
from aws_xray_sdk.core import xray_recorder
def handler(event, context):
    with xray_recorder.in_subsegment("work") as sub:
        sub.put_annotation("order", event["order"])
    return 1
"""


def header(value: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in value.split(";"))


def test_without_active_tracing_it_stays_off(sim: Simulator, code: Code) -> None:
    env = sim.deploy("app.handler", code(ENV)).invoke({}).payload
    assert header(env["_X_AMZN_TRACE_ID"])["Sampled"] == "0"
    assert (env["AWS_XRAY_DAEMON_ADDRESS"], env["_AWS_XRAY_DAEMON_PORT"], env["AWS_XRAY_CONTEXT_MISSING"]) == \
        (None, None, None)
    assert sim.xray_segments() == []
    assert sim._xray is None  # no sink is started for functions that do not trace


def test_active_tracing_samples_and_points_at_the_sink(sim: Simulator, code: Code) -> None:
    env = sim.deploy("app.handler", code(ENV), tracing=True).invoke({}).payload
    trace = header(env["_X_AMZN_TRACE_ID"])
    assert trace["Sampled"] == "1" and trace["Root"].startswith("1-") and len(trace["Parent"]) == 16
    host, port = env["AWS_XRAY_DAEMON_ADDRESS"].split(":")
    assert host == "127.0.0.1" and port == env["_AWS_XRAY_DAEMON_PORT"] and int(port) > 0
    assert env["AWS_XRAY_CONTEXT_MISSING"] == "LOG_ERROR"


def test_segments_sent_to_the_daemon_address_are_read(sim: Simulator, code: Code) -> None:
    inv = sim.deploy("app.handler", code(RAW), tracing=True).invoke({})
    assert inv.ok, inv.error
    segments = sim.xray_segments()
    assert [s["name"] for s in segments] == ["raw"]  # the datagram that was not a segment is left out
    assert segments[0]["trace_id"] == inv.payload["Root"] and segments[0]["parent_id"] == inv.payload["Parent"]
    assert sim._xray is not None and sim._xray.ignored == 1


def test_report_names_the_trace_under_active_tracing(sim: Simulator, code: Code) -> None:
    """Lambda's REPORT line ends with ``XRAY TraceId: ... SegmentId: ... Sampled: true`` under active tracing:
    the trace of the function's header, and its segment, the one the function's subsegments name as parent."""
    inv = sim.deploy("app.handler", code(RAW), tracing=True).invoke({})
    assert inv.ok, inv.error
    (segment,) = sim.xray_segments()
    lines = inv.logs.splitlines(keepends=True)
    assert lines[-2].startswith(f"REPORT RequestId: {inv.request_id}\t") and lines[-2].endswith("\t\n")
    assert lines[-1] == f"XRAY TraceId: {segment['trace_id']}\tSegmentId: {segment['parent_id']}\tSampled: true\t\n"
    assert (segment["trace_id"], segment["parent_id"]) == (inv.payload["Root"], inv.payload["Parent"])


def test_report_of_a_timed_out_traced_invocation_names_the_trace_after_its_status(sim: Simulator,
                                                                                  code: Code) -> None:
    source = "import time\ndef handler(e, c):\n    time.sleep(5)\n"
    inv = sim.deploy("app.handler", code(source), tracing=True, timeout_s=0.5).invoke({})
    lines = inv.logs.splitlines()
    assert lines[-2].startswith("REPORT RequestId: ") and lines[-2].endswith("\tStatus: timeout"), lines
    assert lines[-1].startswith("XRAY TraceId: 1-") and lines[-1].endswith("\tSampled: true\t")


def test_without_active_tracing_report_has_no_xray_line(sim: Simulator, code: Code) -> None:
    inv = sim.deploy("app.handler", code(ENV)).invoke({})
    assert inv.logs.splitlines()[-1].startswith("REPORT RequestId: ") and "XRAY" not in inv.logs
    json_inv = sim.deploy("app.handler", code(ENV), name="json", log_format="JSON", system_log_level="DEBUG").invoke({})
    assert all("tracing" not in event["record"] for event in platform_events(json_inv.logs))


def platform_events(logs: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.splitlines() if line.startswith('{"time"')]


def test_json_platform_records_carry_the_trace_context(sim: Simulator, code: Code) -> None:
    """In the JSON format the records of the invocation carry the Telemetry API's ``TraceContext``:
    ``{"spanId", "type": "X-Amzn-Trace-Id", "value": "Root=...;Parent=...;Sampled=1"}``."""
    fn = sim.deploy("app.handler", code(RAW), tracing=True, log_format="JSON", system_log_level="DEBUG")
    inv = fn.invoke({})
    assert inv.ok, inv.error
    (segment,) = sim.xray_segments()
    expected = {"spanId": segment["parent_id"], "type": "X-Amzn-Trace-Id",
                "value": f"Root={segment['trace_id']};Parent={segment['parent_id']};Sampled=1"}
    events = {e["type"]: e["record"] for e in platform_events(inv.logs)}
    assert set(events) == {"platform.initStart", "platform.start", "platform.runtimeDone", "platform.report"}
    assert events["platform.report"]["tracing"] == expected
    assert events["platform.start"]["tracing"] == events["platform.runtimeDone"]["tracing"] == expected
    assert "tracing" not in events["platform.initStart"] and "XRAY" not in inv.logs


@pytest.mark.skipif(importlib.util.find_spec("aws_xray_sdk") is None, reason="aws-xray-sdk is not installed")
def test_the_xray_sdk_reports_to_the_sink(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(SDK), tracing=True)
    first, second = fn.invoke({"order": "o-1"}), fn.invoke({"order": "o-2"})
    assert first.ok and second.ok, (first.error, first.logs)
    segments = sim.xray_segments()
    assert [s["name"] for s in segments] == ["work", "work"], segments
    assert [s["annotations"]["order"] for s in segments] == ["o-1", "o-2"]
    assert segments[0]["type"] == "subsegment" and segments[0]["trace_id"] != segments[1]["trace_id"]
    for inv, segment in ((first, segments[0]), (second, segments[1])):  # REPORT names each one's trace and parent
        assert inv.logs.splitlines()[-1] == (f"XRAY TraceId: {segment['trace_id']}\tSegmentId: {segment['parent_id']}"
                                             "\tSampled: true\t")


def test_the_sink_parses_daemon_datagrams_only() -> None:
    assert parse_datagram(b'{"format": "json", "version": 1}\n{"name": "a"}') == {"name": "a"}
    assert parse_datagram(b'{"name": "a"}') is None
    assert parse_datagram(b'{"format": "json", "version": 1}\n[1]') is None
    sink = XRaySink()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b'{"format": "json", "version": 1}\n' + json.dumps({"name": "b"}).encode(),
                     ("127.0.0.1", sink.port))
        assert sink.segments() == [{"name": "b"}]
        sink.clear()
        assert sink.segments() == []
    finally:
        sink.close()


def test_close_closes_the_sink(code: Code) -> None:
    with Simulator() as sim:
        sim.deploy("app.handler", code(ENV), tracing=True)
        sim.functions["app"].invoke({})
        sink = sim._xray
        assert sink is not None
    assert sink._sock.fileno() == -1


# -- templates -------------------------------------------------------------------------------------------


def test_sam_tracing_with_globals(tmp_path: Path) -> None:
    assert load_function(sam_function(tmp_path, "Tracing: Active\n"), "Fn").tracing is True
    path = sam_function(tmp_path, "", head="Globals:\n  Function:\n    Tracing: Active\n")
    assert load_function(path, "Fn").tracing is True
    path = sam_function(tmp_path, "Tracing: PassThrough\n", head="Globals:\n  Function:\n    Tracing: Active\n")
    assert load_function(path, "Fn").tracing is False
    assert load_function(sam_function(tmp_path), "Fn").tracing is False
    path = sam_function(tmp_path, "Tracing: On\n")
    assert error(path, "Fn").startswith(where(path, "Resources.Fn.Properties.Tracing", "Tracing"))


def test_cloudformation_tracing_config(tmp_path: Path) -> None:
    path = write(tmp_path, """
        AWSTemplateFormatVersion: "2010-09-09"
        Resources:
          Fn:
            Type: AWS::Lambda::Function
            Properties: {Handler: app.handler, Runtime: python3.12, Code: src, TracingConfig: {Mode: Active}}
    """)
    fn = load_function(path, "Fn")
    assert fn.tracing is True and fn.deploy_kwargs()["tracing"] is True


def test_serverless_tracing(tmp_path: Path) -> None:
    path = write(tmp_path, """
        service: orders
        provider: {name: aws, runtime: python3.12, tracing: {lambda: true, apiGateway: true}}
        functions:
          traced: {handler: app.handler}
          passthrough: {handler: app.handler, tracing: PassThrough}
    """, name="serverless.yml", dirs=())
    assert (load_function(path, "traced").tracing, load_function(path, "passthrough").tracing) == (True, False)


def test_template_tracing_reaches_the_instance(sim: Simulator, tmp_path: Path) -> None:
    path = sam_function(tmp_path, "Tracing: Active\n")
    (tmp_path / "src" / "app.py").write_text(ENV)
    env = sim.deploy_from_template(path, "Fn").invoke({}).payload
    assert header(env["_X_AMZN_TRACE_ID"])["Sampled"] == "1" and env["AWS_XRAY_DAEMON_ADDRESS"]
