"""``lambdasim serve`` as a user runs it: a template's functions behind one port, stopped with Ctrl-C or SIGTERM,
its trace written for ``lambdasim report``; and its refusals (a taken port, a template without functions)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lambdasim._services.service import AWS_CREDENTIALS

REPO = Path(__file__).resolve().parent.parent
SHOP = REPO / "examples" / "serve-shop"

pytestmark = [pytest.mark.sandbox, pytest.mark.services]


def _start(*args: str, cwd: Path = SHOP) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``lambdasim serve ARGS`` started; (the process, its URL, the banner's lines) once it says it is ready."""
    proc = subprocess.Popen([sys.executable, "-m", "lambdasim", "serve", "--port", "0", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "160"})  # the live view's width off a terminal
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("ready"):
            (url,) = [m.group(1) for m in map(re.compile(r"Invoke API\s+(http://127\.0\.0\.1:\d+)").search, lines)
                      if m]
            return proc, url, lines
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"lambdasim serve did not start: {lines} {err}")


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_serve_answers_routes_and_the_invoke_api_and_writes_the_trace(tmp_path: Path) -> None:
    import boto3

    report = tmp_path / "trace.json"
    proc, url, banner = _start("--template", "template.yaml", "--no-live", "--report", str(report))
    try:
        assert any("POST" in line and "/orders" in line and "OrdersFunction" in line for line in banner), banner
        post = urllib.request.Request(f"{url}/orders", method="POST", data=b'{"item": "pen", "quantity": 2}')
        with urllib.request.urlopen(post, timeout=60) as response:
            order = json.load(response)
        assert response.status == 201 and order["total_cents"] == 398
        client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1", **AWS_CREDENTIALS)
        out = client.invoke(FunctionName="PricingFunction", Payload=b'{"item": "book", "quantity": 1}')
        assert json.load(out["Payload"]) == {"item": "book", "total_cents": 1250}
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert re.search(r"POST /orders 201 [\d.]+ ms", out), out  # the access log, one line per request
    assert "/2015-03-31/functions/PricingFunction/invocations 200" in out
    trace = json.loads(report.read_text())["trace"]
    kinds = [(e["kind"], e["function"]) for e in trace if e["kind"] in ("invoke", "instance_destroyed")]
    assert ("invoke", "OrdersFunction") in kinds and kinds.count(("invoke", "PricingFunction")) == 2
    html = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "lambdasim", "report", str(report), "-o", str(html)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "PricingFunction" in html.read_text()


def test_sigterm_stops_it_too_and_nothing_is_left_listening() -> None:
    proc, url, _ = _start("--template", "template.yaml", "--no-live")
    port = int(url.rsplit(":", 1)[1])
    code, _, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_second_ctrl_c_does_not_cut_the_stop_short() -> None:
    """A terminal's Ctrl-C reaches every process of the group (a wrapper such as `timeout` passes it on too): the
    second one, while everything stops, used to raise KeyboardInterrupt in the middle of the clean-up."""
    proc, url, _ = _start("--template", "template.yaml", "--no-live")
    port = int(url.rsplit(":", 1)[1])
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_the_live_view_shows_each_function() -> None:
    proc, url, _ = _start("--template", "template.yaml", "--live")
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/orders/nope", timeout=60)
        assert missing.value.code == 404  # the function's own answer: no such order
        time.sleep(0.6)  # a refresh or two
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    for text in ("OrdersFunction", "PricingFunction", "cold starts", "/tmp used", "requests"):
        assert text in out, out[-2000:]


RETRIED = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Caller:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: app.call
      Runtime: python3.11
  Failing:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: failing
      CodeUri: code/
      Handler: app.fail
      Runtime: python3.11
"""
RETRIED_CODE = """\
import boto3, json

def call(event, context):
    boto3.client("lambda").invoke(FunctionName="failing", InvocationType="Event", Payload=json.dumps(event))
    return "queued"

def fail(event, context):
    raise ValueError("always")
"""


def test_event_retries_follow_the_async_time_scale(tmp_path: Path) -> None:
    """An Event invocation from inside a function, failing every time: 1 + 2 attempts, one and two minutes
    apart on Lambda, 60 and 120 ms with --async-time-scale 0.001 (the trace keeps Lambda's seconds)."""
    import boto3

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(RETRIED_CODE)
    (tmp_path / "template.yaml").write_text(RETRIED)
    report = tmp_path / "trace.json"
    proc, url, _ = _start("--no-live", "--async-time-scale", "0.001", "--report", str(report), cwd=tmp_path)
    try:
        client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1", **AWS_CREDENTIALS)
        assert json.load(client.invoke(FunctionName="Caller", Payload=b"{}")["Payload"]) == "queued"
        time.sleep(2)
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err
    trace = json.loads(report.read_text())["trace"]
    attempts = [e["detail"]["attempt"] for e in trace if e["kind"] == "invoke" and e["function"] == "Failing"]
    assert attempts == [1, 2, 3]
    assert [e["detail"]["delay_s"] for e in trace if e["kind"] == "async_retry"] == [60.0, 120.0]
    assert [e["detail"]["reason"] for e in trace if e["kind"] == "async_dropped"] == ["retries exhausted"]


def test_a_taken_port_is_refused_with_what_to_do() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "lambdasim", "serve", "--template", "template.yaml",
                               "--port", str(port)], cwd=SHOP, capture_output=True, text=True, timeout=120,
                              env={**os.environ})
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr


def test_a_template_without_functions_is_refused(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Transform: AWS::Serverless-2016-10-31\nResources: {}\n")
    done = subprocess.run([sys.executable, "-m", "lambdasim", "serve"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "defines no function to serve" in done.stderr
