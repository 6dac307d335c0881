"""Active tracing (``Tracing: Active``, ``deploy(tracing=True)``): sampled trace headers and a local
X-Ray daemon address whose segments ``Simulator.xray_segments()`` returns; without it tracing stays off."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

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


@pytest.mark.skipif(importlib.util.find_spec("aws_xray_sdk") is None, reason="aws-xray-sdk is not installed")
def test_the_xray_sdk_reports_to_the_sink(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code(SDK), tracing=True)
    first, second = fn.invoke({"order": "o-1"}), fn.invoke({"order": "o-2"})
    assert first.ok and second.ok, (first.error, first.logs)
    segments = sim.xray_segments()
    assert [s["name"] for s in segments] == ["work", "work"], segments
    assert [s["annotations"]["order"] for s in segments] == ["o-1", "o-2"]
    assert segments[0]["type"] == "subsegment" and segments[0]["trace_id"] != segments[1]["trace_id"]


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
