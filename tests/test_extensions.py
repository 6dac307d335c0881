"""Extensions and Lambda's Shutdown phase: an environment whose layers bring extensions gets the SHUTDOWN
event on scale-down, reaping, redeploy and close (the runtime SIGTERM, then SIGKILL; 2,000 ms in all),
in parallel across instances; an extension that crashes resets the environment (Extension.Crash);
without extensions nothing changes (killed at once)."""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdasim import Simulator, TraceEvent
from lambdasim._report import render
from tests.conftest import simulator_or_skip

pytestmark = pytest.mark.sandbox

EXAMPLE_LAYER = Path(__file__).resolve().parent.parent / "examples" / "extension-tmp" / "layer"
REQUIRE_SERVICES = os.environ.get("LAMBDASIM_REQUIRE_SERVICES") == "1"

# A runtime (standard-library Python, the instance's /usr/bin/python3) that spools each event to /tmp as
# the extension-tmp example's function does, and says when SIGTERM reaches it.
BOOTSTRAP = """\
#!/usr/bin/env python3
import http.client, json, os, signal, sys, time

def on_term(signum, frame):
    print("runtime: SIGTERM", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("IGNORE_SIGTERM") else on_term)
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
api = http.client.HTTPConnection(host, int(port))
while True:
    api.request("GET", "/2018-06-01/runtime/invocation/next")
    r = api.getresponse()
    event, rid = json.loads(r.read()), r.getheader("Lambda-Runtime-Aws-Request-Id")
    time.sleep(event.get("sleep", 0))
    os.makedirs("/tmp/spool", exist_ok=True)
    with open("/tmp/spool/records.jsonl", "a") as f:
        f.write(json.dumps(event) + "\\n")
    api.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps({"pid": os.getpid()}))
    api.getresponse().read()
"""


def extension(name: str, events: str = '["INVOKE", "SHUTDOWN"]', on_invoke: str = "pass",
              on_shutdown: str = "pass") -> str:
    """An external extension: registers for ``events``, runs ``on_invoke`` for each INVOKE and
    ``on_shutdown`` at SHUTDOWN (then exits)."""
    return textwrap.dedent(f"""\
        #!/usr/bin/env python3
        import json, os, sys, time, urllib.request
        api = f"http://{{os.environ['AWS_LAMBDA_RUNTIME_API']}}/2020-01-01/extension"
        req = urllib.request.Request(f"{{api}}/register", json.dumps({{"events": {events}}}).encode(),
                                     {{"Lambda-Extension-Name": "{name}"}})
        ident = urllib.request.urlopen(req).headers["Lambda-Extension-Identifier"]
        while True:
            with urllib.request.urlopen(urllib.request.Request(
                    f"{{api}}/event/next", headers={{"Lambda-Extension-Identifier": ident}})) as answer:
                event = json.loads(answer.read())
            if event["eventType"] == "SHUTDOWN":
                print("{name}: SHUTDOWN", event["shutdownReason"], "deadline in",
                      event["deadlineMs"] - int(time.time() * 1000), "ms", flush=True)
                {on_shutdown}
                sys.exit(0)
            {on_invoke}
    """)


def layer(folder: Path, **extensions: str) -> Path:
    for name, text in extensions.items():
        path = folder / "extensions" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    return folder


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "bootstrap").write_text(BOOTSTRAP)
    (folder / "bootstrap").chmod(0o755)
    return folder


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """Instances on free ports (network="host"): several API instances at once without a network
    namespace each."""
    s = simulator_or_skip(sandbox="namespace", network="host")
    yield s
    s.close()


def shutdowns(sim: Simulator) -> list[TraceEvent]:
    return [e for e in sim.trace if e.kind == "shutdown"]


def test_shutdown_event_flushes_tmp_to_s3(code: Path) -> None:
    """The example's extension, sharing /tmp with the runtime, uploads what is spooled there at SHUTDOWN."""
    with simulator_or_skip(sandbox="namespace", network="host", services=["aws"]) as sim:
        s3 = sim.boto3_client("s3")
        s3.create_bucket(Bucket="spool")
        fn = sim.deploy("h", code, runtime="provided.al2023", layers=[EXAMPLE_LAYER],
                        environment={"FLUSH_BUCKET": "spool"})
        for n in range(3):
            assert fn.invoke({"n": n}).ok
        assert "Contents" not in s3.list_objects_v2(Bucket="spool")
        (instance,) = fn.instances
        assert instance.tmp.read_text("spool/records.jsonl").count("\n") == 3
        assert fn.scale_down() == 1
        (obj,) = s3.list_objects_v2(Bucket="spool")["Contents"]
        body = s3.get_object(Bucket="spool", Key=obj["Key"])["Body"].read()
        assert body.splitlines() == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
        (event,) = shutdowns(sim)
        assert event.detail["reason"] == "spindown" and event.detail["killed"] == []
        assert "[tmp-flusher] SHUTDOWN (spindown)" in event.detail["logs"]
        assert f"flushed 3 records to {obj['Key']}" in event.detail["logs"]
        assert event.detail["thawed"] is True  # it was frozen between invocations
        assert 0 < event.detail["duration_ms"] < 2000


def test_sigterm_reaches_the_runtime_then_extensions_get_shutdown(sim: Simulator, code: Path,
                                                                   tmp_path: Path) -> None:
    fn = sim.deploy("h", code, runtime="provided.al2023", layers=[layer(tmp_path / "l", watcher=extension("watcher"))])
    assert fn.invoke({}).ok
    fn.scale_down()
    (event,) = shutdowns(sim)
    logs = event.detail["logs"]
    assert "runtime: SIGTERM" in logs and "watcher: SHUTDOWN spindown deadline in" in logs
    assert logs.index("runtime: SIGTERM") < logs.index("watcher: SHUTDOWN")
    deadline_ms = int(logs.split("deadline in ")[1].split(" ms")[0])
    assert 1000 < deadline_ms <= 2000  # deadlineMs: the end of the 2,000 ms budget
    assert event.detail["killed"] == []
    kinds = [e.kind for e in sim.trace if e.instance == event.instance]
    assert kinds[-2:] == ["shutdown", "destroyed"]


def test_the_budget_is_enforced(sim: Simulator, code: Path, tmp_path: Path) -> None:
    """A runtime that ignores SIGTERM is SIGKILLed after 300 ms; an extension still busy when the 2,000 ms
    are over is SIGKILLed; the phase ends then, not when they would have."""
    stubborn = extension("stubborn", on_shutdown="time.sleep(30)")
    fn = sim.deploy("h", code, runtime="provided.al2023", environment={"IGNORE_SIGTERM": "1"},
                    layers=[layer(tmp_path / "l", stubborn=stubborn)])
    assert fn.invoke({}).ok
    started = time.monotonic()
    fn.scale_down()
    took = time.monotonic() - started
    (event,) = shutdowns(sim)
    assert sorted(event.detail["killed"]) == ["runtime", "stubborn"]
    assert 1900 <= event.detail["duration_ms"] <= 2500
    assert took < 3.5
    assert "stubborn: SHUTDOWN" in event.detail["logs"]
    # The HTML report draws the phase on the instance's lane, with a red edge: something was SIGKILLed.
    page = render(sim.trace)
    (marker,) = re.findall(r'<g class="marker" data-marker="shutdown" data-killed="1"><title>([^<]*)</title>', page)
    assert marker.startswith("Shutdown (spindown): ") and "of its 2000 ms; SIGKILLed: " in marker
    assert "stubborn" in marker and "runtime" in marker


def test_instances_shut_down_in_parallel(code: Path, tmp_path: Path) -> None:
    """close() sends SHUTDOWN to every instance, then waits: 3 instances whose extension takes 1 s take about
    1 s, not 3."""
    slow = extension("slow", on_shutdown="time.sleep(1)")
    sim = simulator_or_skip(sandbox="namespace", network="host")
    fn = sim.deploy("h", code, runtime="provided.al2023", layers=[layer(tmp_path / "l", slow=slow)])
    assert all(inv.ok for inv in fn.invoke_many([{"sleep": 0.2}] * 3, concurrency=3))
    assert len(fn.instances) == 3
    started = time.monotonic()
    sim.close()
    took = time.monotonic() - started
    events = shutdowns(sim)
    assert len(events) == 3 and all(e.detail["killed"] == [] for e in events)
    assert all(1000 <= e.detail["duration_ms"] < 2000 for e in events)
    assert took < 2.6, f"close() took {took:.2f} s: the instances were shut down one after another"


def test_reaping_and_redeploy_shut_down_too(sim: Simulator, code: Path, tmp_path: Path) -> None:
    fn = sim.deploy("h", code, runtime="provided.al2023", layers=[layer(tmp_path / "l", ext=extension("ext"))])
    fn.invoke({})
    sim.clock.advance(seconds=601)  # past the keep-alive: reaped
    assert fn.instances == []
    fn.invoke({})
    fn.redeploy()
    fn.invoke({})
    fn.instances[0].destroy()
    reasons = [e.detail.get("reason") for e in shutdowns(sim)]
    destroyed = [e.detail["reason"] for e in sim.trace if e.kind == "destroyed"]
    assert reasons == ["spindown"] * 3 and destroyed == ["idle", "redeploy", "destroy"]


def test_without_extensions_the_runtime_is_killed_at_once(sim: Simulator, code: Path) -> None:
    fn = sim.deploy("h", code, runtime="provided.al2023")
    fn.invoke({})
    started = time.monotonic()
    fn.scale_down()
    assert time.monotonic() - started < 1.0
    assert shutdowns(sim) == []


def test_an_extension_that_crashes_resets_the_environment(sim: Simulator, code: Path, tmp_path: Path) -> None:
    # It exits at its second INVOKE event.
    crasher = extension("crasher", on_invoke="seen = globals().get('seen', 0) + 1; globals()['seen'] = seen; "
                                             "sys.exit(5) if seen == 2 else None")
    fn = sim.deploy("h", code, runtime="provided.al2023", layers=[layer(tmp_path / "l", crasher=crasher)])
    first = fn.invoke({})
    assert first.ok, first.error
    crashed = fn.invoke({})
    assert crashed.error is not None and crashed.error["errorType"] == "Extension.Crash"
    assert crashed.error["errorMessage"].startswith(f"RequestId: {crashed.request_id} Error: ")
    assert "Status: error\tError Type: Extension.Crash" in crashed.logs
    (instance,) = fn.instances
    assert instance.resets == 1
    again = fn.invoke({})  # Init again, the extension too (its first INVOKE again); /tmp kept
    assert again.ok and again.cold_start and again.instance_id == first.instance_id
    assert instance.tmp.read_text("spool/records.jsonl").count("\n") == 3
