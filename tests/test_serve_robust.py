"""``Simulator.serve()`` keeps serving whatever a client does: a body cut short, a client that goes away while
its function runs, a request line that is not HTTP; and it listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from lambdasim import Simulator
from tests.conftest import simulator_or_skip

SLOW = """
import json, time

def handler(event, context):
    time.sleep(float(event.get("queryStringParameters", {}).get("sleep", "0")))
    return {"statusCode": 200, "body": json.dumps({"path": event["rawPath"]})}
"""

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Slow:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: app.handler
      Runtime: python3.11
      Events:
        Any:
          Type: HttpApi
"""


def _deploy(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(SLOW)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    sim.deploy_from_template(tmp_path / "template.yaml", "Slow")


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return str(parts.hostname), int(parts.port or 80)


def _get(url: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*_address(url), timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _invokes(sim: Simulator) -> int:
    return sum(1 for e in sim.trace if e.kind == "invoke")


def test_it_listens_on_loopback_by_default(tmp_path: Path) -> None:
    with simulator_or_skip() as sim:
        _deploy(sim, tmp_path)
        with sim.serve() as url:
            assert url.startswith("http://127.0.0.1:")
            _, port = _address(url)
            # The kernel's table of TCP sockets: the listener is bound to 127.0.0.1 alone, not 0.0.0.0.
            listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                         if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")]
            assert listening == [f"0100007F:{port:04X}"]
            assert _get(url, "/a")[0] == 200


def test_a_body_cut_short_runs_nothing_and_the_next_request_is_served(tmp_path: Path) -> None:
    with simulator_or_skip() as sim:
        _deploy(sim, tmp_path)
        with sim.serve() as url:
            with socket.create_connection(_address(url)) as s:
                s.sendall(b"POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
            time.sleep(0.3)
            assert _invokes(sim) == 0  # the function never saw half a request
            assert _get(url, "/after")[0] == 200


def test_a_client_that_leaves_while_its_function_runs_frees_the_instance(tmp_path: Path) -> None:
    with simulator_or_skip() as sim:
        _deploy(sim, tmp_path)
        with sim.serve() as url:
            with socket.create_connection(_address(url)) as s:
                s.sendall(b"GET /slow?sleep=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 30
            while _invokes(sim) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _invokes(sim) == 1  # it ran to its end; its answer went nowhere
            status, body = _get(url, "/next")
            assert status == 200 and b"/next" in body
            fn = sim.functions["Slow"]
            assert len(fn.instances) == 1, "the instance was freed and taken again, not left busy"
            assert [e.detail["cold_start"] for e in sim.trace if e.kind == "invoke"] == [True, False]


def test_what_is_not_http_gets_400_and_the_server_goes_on(tmp_path: Path) -> None:
    with simulator_or_skip() as sim:
        _deploy(sim, tmp_path)
        with sim.serve() as url:
            for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03"):
                with socket.create_connection(_address(url), timeout=10) as s:
                    s.sendall(garbage)
                    s.shutdown(socket.SHUT_WR)
                    answer = s.recv(200)
                assert answer[:9] in (b"HTTP/1.0 ", b"HTTP/1.1 ") and answer[9:12] in (b"400", b"505"), answer
            assert _invokes(sim) == 0
            assert _get(url, "/still")[0] == 200
