"""The HTML trace report: rendered from real traces, checked as text and in a headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lambdasim._report
from lambdasim._errors import LambdaSimError
from lambdasim._report import render, runs_of, write_report
from lambdasim.cli import main
from tests.conftest import _simulator

REQUIRE_BROWSER = os.environ.get("LAMBDASIM_REQUIRE_BROWSER") == "1"

APP = """
import os, sys
def handler(event, context):
    if event.get("write"):
        with open("/tmp/data-" + str(event["write"]), "wb") as f:
            f.write(b"x" * event.get("size", 100000))
    if event.get("read"):
        with open("/tmp/data-" + str(event["read"]), "rb") as f:
            f.read()
    if event.get("noise"):
        for i in range(event["noise"]):
            print(f"noise line {i}")
    if event.get("fail"):
        print("about to fail </script><b>not markup</b>")
        raise ValueError("bad order " + str(event["fail"]))
    if event.get("exit"):
        sys.stdout.flush()
        os._exit(3)
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real trace with a redeploy, a crash, a failure, a runtime exit, /tmp use and a scale-out."""
    code = tmp_path_factory.mktemp("report-code")
    (code / "app.py").write_text(textwrap.dedent(APP))
    sim = _simulator("namespace", track_tmp=True, track_tmp_access=True)
    try:
        fn = sim.deploy("app.handler", code_dir=code, name="orders")
        ok = fn.invoke({"write": 1, "size": 300000})
        read = fn.invoke({"read": 1})
        failed = fn.invoke({"fail": 1, "noise": 80})
        fn.instances[0].crash()
        sim.record_service_event("redis", "cut")  # what a fault on a backing service leaves in the trace
        after_crash = fn.invoke({"read": 1})
        fn.redeploy()
        v2 = fn.invoke({"write": 2, "size": 600000})
        exited = fn.invoke({"exit": 1})
        many = fn.invoke_many([{"write": 3}, {"write": 4}], concurrency=2)
        fn.scale_down(keep=0)
        invocations = [ok, read, failed, after_crash, v2, exited, *many]
        yield {"trace": [e.to_dict() for e in sim.trace], "events": list(sim.trace), "failed": failed,
               "exited": exited, "read": read, "ok": ok, "invocations": invocations}
    finally:
        sim.close()


def _invoke_events(trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in trace if e["kind"] == "invoke"]


# -- the trace carries errors and logs ----------------------------------------------------------


@pytest.mark.sandbox
def test_failed_invocations_carry_their_error_and_last_log_lines(scenario: dict[str, Any]) -> None:
    by_request = {e["request_id"]: e["detail"] for e in _invoke_events(scenario["trace"])}
    failed = by_request[scenario["failed"].request_id]
    assert failed["error"] == "ValueError"
    detail = failed["error_detail"]
    assert detail["errorType"] == "ValueError" and detail["errorMessage"] == "bad order 1"
    lines = detail["logs"].splitlines()
    assert len(lines) == 50, "the last 50 lines only"
    assert lines[-1].startswith("REPORT RequestId: ") and "noise line 79" in detail["logs"]
    assert "[ERROR] ValueError: bad order 1" in detail["logs"] and "noise line 0\n" not in detail["logs"]
    exited = by_request[scenario["exited"].request_id]["error_detail"]
    assert exited["errorType"] == "Runtime.ExitError" and "exit status 3" in exited["errorMessage"]
    assert "error_detail" not in by_request[scenario["ok"].request_id]
    assert by_request[scenario["read"].request_id]["tmp_reads_from"] == [
        {"path": "/tmp/data-1", "writer": scenario["ok"].request_id}]


# -- rendering --------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_render_draws_lanes_versions_markers_and_failures(scenario: dict[str, Any]) -> None:
    trace = scenario["trace"]
    page = render(trace)
    instances = sorted({e["instance"] for e in trace if e["kind"] == "instance_created"})
    assert len(instances) >= 3
    assert sorted(re.findall(r'<g class="lane" data-lane="([^"]+)"', page)) == instances
    assert set(re.findall(r'data-lane="[^"]+" data-version="(\d+)"', page)) == {"1", "2"}
    assert "redis cut" in page
    for marker in ("deploy", "redeploy", "crash", "reset", "destroyed", "created", "init", "tmp-read", "service"):
        assert f'data-marker="{marker}"' in page, marker
    failures = [e for e in _invoke_events(trace) if e["detail"]["error"]]
    assert page.count('data-failed="1"') == len(failures) == 2
    assert len(re.findall(r'<g class="inv[^"]*" data-run="0" data-inv="\d+"', page)) == len(_invoke_events(trace))
    assert 'class="tmpchart"' in page and 'data-tmp-lane="orders-1"' in page
    # The failures list, the error and the logs (escaped) are in the page.
    assert "ValueError: bad order 1" in page
    assert page.count("</script>") == 2, "logs cannot close the page's script elements"
    assert "\\u003c/script\\u003e\\u003cb\\u003enot markup" in page
    # Self-contained: nothing is fetched.
    assert not re.search(r'<link|<img|src=|url\(|@import|href="(?!#)', page)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}


@pytest.mark.sandbox
def test_render_accepts_trace_events_and_the_plugin_report(scenario: dict[str, Any], tmp_path: Path) -> None:
    assert render(scenario["events"]) == render(scenario["trace"])
    trace = scenario["trace"]
    second = [e for e in trace if e["function"] == "orders"][:6]
    # The shape of pytest --lambda-sim-report's JSON (each test also has the plugin's counts).
    report: dict[str, Any] = {"summary": {"tests": 2}, "tests": {
        "tests/test_a.py::test_one": {"instances": 3, "trace": trace},
        "tests/test_a.py::test_two": {"instances": 1, "trace": second},
        "tests/test_a.py::test_none": {"instances": 0, "trace": []},
    }}
    page = render(report)
    assert 'data-runs="3"' in page and "2 tests \u00b7 3 runs" in page
    assert "tests/test_a.py::test_one" in page and 'id="run-1"' in page
    assert "This run has no trace events." in page
    runs, summary = runs_of(report)
    assert [r.name for r in runs] == list(report["tests"]) and summary == {"tests": 2}

    # From files: the plugin's report, and a plain list of events.
    source = tmp_path / "trace.json"
    source.write_text(json.dumps(report))
    write_report(source, tmp_path / "out.html")
    assert (tmp_path / "out.html").read_text().startswith("<!DOCTYPE html>")
    source.write_text(json.dumps(trace))
    assert main(["report", str(source)]) == 0 and (tmp_path / "trace.html").exists()
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    # One parser, the command line's: -o names the page (README); lambdasim._report parses no arguments.
    assert main(["report", str(source), "-o", str(tmp_path / "named.html")]) == 0
    assert (tmp_path / "named.html").read_text().startswith("<!DOCTYPE html>")
    assert not hasattr(lambdasim._report, "main")
    source.write_text('{"not": "a trace"}')
    with pytest.raises(LambdaSimError, match=r"trace.json: render\(\) takes a list of trace events"):
        write_report(source, tmp_path / "out.html")


def test_render_draws_service_events_and_unknown_kinds() -> None:
    trace = [
        {"t": 0.0, "kind": "deploy", "function": "f", "instance": None, "version": "1", "request_id": None,
         "detail": {}},
        {"t": 0.0, "kind": "instance_created", "function": "f", "instance": "f-1", "version": "1",
         "request_id": None, "detail": {}},
        {"t": 0.0, "kind": "invoke", "function": "f", "instance": "f-1", "version": "1", "request_id": "r-1",
         "detail": {"cold_start": True, "duration_ms": 1.5, "error": None}},
        {"t": 5.0, "kind": "service", "function": "", "instance": None, "version": None, "request_id": None,
         "detail": {"service": "redis", "action": "cut"}},
        {"t": 5.0, "kind": "throttled", "function": "f", "instance": None, "version": None, "request_id": "r-2",
         "detail": {"status": 429}},
        {"t": 5.0, "kind": "something_new", "function": "f", "instance": "f-1", "version": "1",
         "request_id": None, "detail": {"x": 1}},
    ]
    page = render(trace, title="t <&>")
    assert 'data-marker="service"' in page and "redis cut" in page
    assert 'data-marker="throttled"' in page and 'data-marker="something_new"' in page
    assert "t=5s" in page and "<title>t &lt;&amp;&gt;</title>" in page
    assert "No /tmp usage in this trace" in page
    with pytest.raises(ValueError, match="takes a list of trace events"):
        render({"nothing": 1})
    with pytest.raises(TypeError):
        render("trace.json")


# -- in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (apt-get install -y chromium); skipped without it unless LAMBDASIM_REQUIRE_BROWSER=1."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if REQUIRE_BROWSER:
        pytest.fail("LAMBDASIM_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install -y chromium)")
    pytest.skip("chromium is not installed (apt-get install -y chromium); set LAMBDASIM_REQUIRE_BROWSER=1 to fail")


def _browse(chromium: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1400,1000",
               *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.sandbox
def test_the_report_runs_in_a_headless_browser(chromium: str, scenario: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(scenario["trace"]))
    failed = scenario["failed"]
    lanes = len({e["instance"] for e in scenario["trace"] if e["kind"] == "instance_created"})

    # The deep link clicks the failed invocation the way a user would (the same handler runs).
    result = _browse(chromium, f"{page.as_uri()}#inv={failed.request_id}", tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-3000:]
    dom = result.stdout
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    assert f'data-lsim-ready="{lanes}"' in body.group(0), body.group(0)
    assert "data-lsim-error" not in body.group(0)
    assert len(re.findall(r'<g class="lane" data-lane="', dom)) == lanes
    details = dom[dom.index('id="lsim-details"'):]
    assert f'data-open="{failed.request_id}"' in details[:200]
    assert f"Failed invocation {failed.request_id}" in details
    assert "bad order 1" in details and "[ERROR] ValueError: bad order 1" in details
    assert 'class="inv failed selected"' in dom

    shot = tmp_path / "report.png"
    result = _browse(chromium, page.as_uri(), tmp_path / "profile", f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-3000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
    assert int.from_bytes(png[16:20], "big") == 1400
    keep = os.environ.get("LAMBDASIM_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
