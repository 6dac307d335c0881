"""``Simulator.serve()`` under load: thousands of requests from several threads against an HTTP route whose
function keeps a count in ``/tmp``. No request is lost (the counts of every instance add up to the requests
answered), no instance is leaked, and the instances follow Lambda's scaling rule: a new one only when every
other is busy, so never more than the requests in flight, and at reserved concurrency 429s instead."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

from lambdasim import Simulator
from tests.conftest import simulator_or_skip

BOTH_SANDBOXES = True

COUNTER = """
import json, os

def handler(event, context):
    path = "/tmp/count"
    n = int(open(path).read()) if os.path.exists(path) else 0
    n += 1
    with open(path, "w") as f:
        f.write(str(n))
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"instance": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"], "count": n})}
"""


def _template(tmp_path: Path, reserved: int | None = None) -> Path:
    code = tmp_path / "counter"
    code.mkdir()
    (code / "app.py").write_text(COUNTER)
    extra = f"\n      ReservedConcurrentExecutions: {reserved}" if reserved is not None else ""
    template = tmp_path / "template.yaml"
    template.write_text(f"""\
Transform: AWS::Serverless-2016-10-31
Resources:
  CounterFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: counter/
      Handler: app.handler
      Runtime: python3.11{extra}
      Events:
        Count:
          Type: HttpApi
          Properties: {{Path: /count, Method: get}}
""")
    return template


def _hammer(url: str, threads: int, per_thread: int) -> list[tuple[int, bytes]]:
    """``threads`` clients, each sending ``per_thread`` requests one after another on a kept-alive connection."""
    parts = urlsplit(url)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def client() -> None:
        conn = http.client.HTTPConnection(str(parts.hostname), parts.port, timeout=60)
        mine: list[tuple[int, bytes]] = []
        try:
            for _ in range(per_thread):
                conn.request("GET", "/count")
                response = conn.getresponse()
                mine.append((response.status, response.read()))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failures.append(e)
        finally:
            conn.close()
            with lock:
                results.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not failures, failures
    return results


def test_thousands_of_requests_lose_nothing_and_scale_as_lambda_does(sandbox_kind: str, tmp_path: Path) -> None:
    threads, per_thread = 6, 350
    sim: Simulator = simulator_or_skip(sandbox=sandbox_kind)
    with sim:
        fn = sim.deploy_from_template(_template(tmp_path), "CounterFunction")
        with sim.serve() as url:
            results = _hammer(url, threads, per_thread)
        assert not [t for t in threading.enumerate() if t.name.startswith("lambdasim-serve")]  # the server stopped
        instances = {i.id for i in fn.instances}
        created = [e for e in sim.trace if e.kind == "instance_created"]
    assert len(results) == threads * per_thread
    assert {status for status, _ in results} == {200}
    answers = [json.loads(body) for _, body in results]
    # Each instance counted its own requests in its own /tmp: together they are every request, none twice.
    last: dict[str, int] = {}
    for a in answers:
        last[a["instance"]] = max(last.get(a["instance"], 0), a["count"])
    assert sum(last.values()) == threads * per_thread
    assert sorted(a["count"] for a in answers if a["instance"] == next(iter(last))) == list(
        range(1, last[next(iter(last))] + 1))
    # Never more instances than requests in flight (a new one only when all are busy), and warm reuse.
    assert 1 <= len(created) <= threads
    assert len(last) == len(created)
    assert len(instances) == len(created), "the instances stay warm while the simulator is open"
    assert sum(1 for e in sim.trace if e.kind == "invoke" and e.detail["cold_start"]) == len(created)
    assert fn.instances == []  # closed: every instance ended


def test_reserved_concurrency_throttles_under_load_and_the_server_keeps_serving(
        sandbox_kind: str, tmp_path: Path) -> None:
    threads, per_thread = 6, 100
    sim: Simulator = simulator_or_skip(sandbox=sandbox_kind)
    with sim:
        sim.deploy_from_template(_template(tmp_path, reserved=2), "CounterFunction")
        with sim.serve() as url:
            results = _hammer(url, threads, per_thread)
            after = _hammer(url, 1, 5)  # alone: nothing is throttled
        created = [e for e in sim.trace if e.kind == "instance_created"]
        throttled = [e for e in sim.trace if e.kind == "throttled"]
    statuses = [status for status, _ in results]
    assert len(statuses) == threads * per_thread
    (refused,) = set(statuses) - {200}  # the gateway's one answer to Lambda's 429
    assert statuses.count(refused) == len(throttled) > 0  # 6 clients against 2 environments
    assert len(created) <= 2
    counted = [json.loads(body)["count"] for status, body in results if status == 200]
    assert len(counted) == statuses.count(200)
    assert [s for s, _ in after] == [200] * 5
