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
from lambdasim._report import LEFT, detect_verdict, render, runs_of, write_report
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


def _fresh_trace(n: int, function: str = "OrdersFunctionWithAVeryLongName", tmp_bytes: int = 100_000,
                 error_every: int = 0) -> list[dict[str, Any]]:
    """What fresh routing leaves: one instance per invocation, each ending with the same /tmp use."""
    def event(kind: str, instance: str | None = None, rid: str | None = None, **detail: Any) -> dict[str, Any]:
        return {"t": 0.0, "kind": kind, "function": function, "instance": instance, "version": "1",
                "request_id": rid, "detail": detail}

    trace = [event("deploy")]
    for i in range(1, n + 1):
        instance = f"{function}-{i}"
        failed = bool(error_every) and i % error_every == 0
        error = {"error_detail": {"errorType": "ValueError", "errorMessage": f"bad {i}"}} if failed else {}
        trace += [event("instance_created", instance),
                  event("invoke", instance, f"rid-{i}", cold_start=True, duration_ms=1.0, tmp_bytes=tmp_bytes,
                        error="ValueError" if failed else None, **error),
                  event("destroyed", instance, reason="scale_down")]
    return trace


def _badges(page: str) -> list[tuple[str, str, str, str]]:
    """(run, badge kind, class, text) of every badge in the page."""
    found = []
    for run, summary in re.findall(r'<details class="run" id="(run-\d+)"[^>]*><summary>(.*?)</summary>', page):
        found += [(run, kind, cls, text) for cls, kind, text in
                  re.findall(r'<span class="badge ([^"]*)" data-badge="([^"]+)"[^>]*>([^<]*)</span>', summary)]
    return found


def test_badges_tell_the_test_outcome_from_function_errors() -> None:
    report = {"summary": {"tests": 3}, "tests": {
        "t.py::test_expects_errors": {"outcome": "passed", "trace": _fresh_trace(4, "f", error_every=2)},
        "t.py::test_fails": {"outcome": "failed", "trace": _fresh_trace(1, "g")},
        "t.py::test_xfail": {"outcome": "xfailed", "trace": _fresh_trace(1, "h", error_every=1)},
    }}
    page = render(report)
    assert _badges(page) == [
        ("run-0", "outcome", "good", "passed"), ("run-0", "function-errors", "warn", "2 function errors"),
        ("run-1", "outcome", "bad", "failed"),
        ("run-2", "outcome", "muted", "xfailed"), ("run-2", "function-errors", "warn", "1 function error")]
    assert "3 tests \u00b7 1 passed, 1 failed, 1 xfailed \u00b7 3 runs" in page
    assert re.search(r"\d+ failed \u00b7", page.split("<main>")[1]) is None, "no invocation count says 'failed'"
    assert "2 function errors" in page
    assert 'data-outcome="passed"' in page and 'data-outcome="failed"' in page
    # A plain trace has no test: its badge counts function errors only, never as a failure.
    assert _badges(render(_fresh_trace(2, error_every=1))) == [
        ("run-0", "function-errors", "warn", "2 function errors")]
    assert _badges(render(_fresh_trace(2))) == [("run-0", "function-errors", "good", "no function errors")]
    # Among many runs only failed tests unfold; a passing test with function errors stays folded.
    many = {"tests": {f"t.py::test_{i}": {"outcome": "failed" if i == 3 else "passed",
                                          "trace": _fresh_trace(1, "f", error_every=1)} for i in range(20)}}
    unfolded = re.findall(r'<details class="run" id="(run-\d+)"[^>]* open>', render(many))
    assert unfolded == ["run-3"]


@pytest.mark.sandbox
def test_the_plugin_report_carries_each_test_outcome(pytester: pytest.Pytester) -> None:
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "app.py").write_text(
        "def handler(event, context):\n"
        "    if event.get('bad'):\n"
        "        raise ValueError('bad order')\n"
        "    return 'ok'\n")
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    pytester.makepyfile(test_x="""
        import pytest
        def test_rejects_bad_orders(lambda_function):
            fn = lambda_function("app.handler", code_dir="src")
            assert fn.invoke({"bad": 1}).error["errorType"] == "ValueError"
            assert fn.invoke({"bad": 2}).error["errorType"] == "ValueError"
        def test_fails(lambda_function):
            assert lambda_function("app.handler", code_dir="src").invoke({}).payload == "nope"
        @pytest.mark.xfail(reason="known")
        def test_known_bug(lambda_function):
            assert lambda_function("app.handler", code_dir="src").invoke({"bad": 1}).error is None
        @pytest.fixture
        def broken_teardown(lambda_function):
            yield lambda_function("app.handler", code_dir="src")
            raise RuntimeError("teardown broke")
        def test_teardown_error(broken_teardown):
            assert broken_teardown.invoke({}).payload == "ok"
    """)
    trace = pytester.path / "trace.json"
    result = pytester.runpytest("--lambda-sim", f"--lambda-sim-report={trace}")
    result.assert_outcomes(passed=2, failed=1, xfailed=1, errors=1)
    data = json.loads(trace.read_text())
    assert {name.split("::")[1]: test["outcome"] for name, test in data["tests"].items()} == {
        "test_rejects_bad_orders": "passed", "test_fails": "failed", "test_known_bug": "xfailed",
        "test_teardown_error": "error"}
    badges = {(run, kind): (cls, text) for run, kind, cls, text in _badges(render(data))}
    assert badges[("run-0", "outcome")] == ("good", "passed")
    assert badges[("run-0", "function-errors")] == ("warn", "2 function errors")
    assert badges[("run-1", "outcome")] == ("bad", "failed") and ("run-1", "function-errors") not in badges
    assert badges[("run-2", "outcome")] == ("muted", "xfailed")
    assert badges[("run-3", "outcome")] == ("bad", "error")


def test_a_detect_report_shows_its_verdict() -> None:
    ok = {"payload": {"n": 1}, "ok": True}
    error = {"ok": False, "payload": None, "errorType": "ValueError", "errorMessage": "order 7 is invalid"}
    report: dict[str, Any] = {
        "function": "app", "handler": "app.handler", "events": [{"n": 0}, {"bad": 7}, {"n": 2}],
        "verdict": "different", "verdict_text": "FAIL: 1 invocation(s) give another result on a fresh instance.",
        "differences": [{"index": 2, "event": {"n": 2}, "warm": {**ok, "payload": "cached"},
                         "fresh": {**ok, "payload": "computed"}}],
        "failures": [{"index": 1, "event": {"bad": 7}, "warm": error, "fresh": error}],
        "cross_reads": [{"path": "/tmp/x"}], "warm": [], "fresh": [],
        "runs": {"routing=warm": {"trace": _fresh_trace(1, "app")}, "routing=fresh": {"trace": _fresh_trace(3, "app")}},
    }
    page = render(report)
    verdict = page[page.index('<section class="verdict'):page.index("</section>")]
    assert 'data-verdict="different"' in verdict and ">DIFFERENT</span>" in verdict
    assert '<li data-difference="2">#2 event <code>{&quot;n&quot;: 2}</code>: warm returned &quot;cached&quot;; ' \
           "fresh returned &quot;computed&quot;</li>" in verdict
    assert "FAILED: returned an error in both runs (1)" in verdict
    assert '<li data-failure="1">#1 event' in verdict and "ValueError: order 7 is invalid" in verdict
    assert verdict.endswith("FAIL: 1 invocation(s) give another result on a fresh instance.</p>")
    assert page.index("</section>") < page.index("<main>"), "the verdict comes before the timelines"
    # Other traces have no verdict.
    assert detect_verdict({"tests": {}}) is None and 'class="verdict' not in render(_fresh_trace(1))
    # A report written before detect had verdicts: derived from its outcomes (#1 failed warm and fresh alike).
    old = {k: v for k, v in report.items() if k not in ("verdict", "verdict_text", "failures")}
    old["differences"], old["warm"], old["fresh"] = [], [ok, error, ok], [ok, error, ok]
    derived = detect_verdict(old)
    assert derived is not None and derived["verdict"] == "failed" and [f["index"] for f in derived["failures"]] == [1]
    assert 'data-verdict="failed"' in render(old) and "returned an error in both runs." in render(old)
    old["warm"] = old["fresh"] = [ok, ok, ok]
    assert 'data-verdict="ok"' in render(old)


def _event(kind: str, instance: str | None = "f-1", request_id: str | None = None, **detail: Any) -> dict[str, Any]:
    return {"t": 0.0, "kind": kind, "function": "f", "instance": instance, "version": "1", "request_id": request_id,
            "detail": detail}


def test_the_execution_models_are_drawn() -> None:
    trace = [
        _event("deploy", None), _event("snapshot", None, init_ms=120.0, tmp_bytes=4096),
        _event("instance_created", init_type="snap-start"), _event("restored", restore_ms=3.5),
        _event("invoke", request_id="r-1", cold_start=True, duration_ms=1.0, error=None, restore_ms=3.5,
               init_type="snap-start"),
        _event("instance_created", "f-2", init_type="provisioned-concurrency"),
        _event("provisioned", "f-2", init_ms=80.0),
        _event("instance_created", "f-3", init_type="lambda-managed-instances"),
        _event("worker", "f-3", action="started", worker=1), _event("worker", "f-3", action="started", worker=2),
        _event("worker", "f-3", action="exited", worker=2, reason="crash"),
        _event("invoke", "f-3", "r-2", cold_start=True, duration_ms=1.0, error=None, worker=1),
        _event("instance_created", "f-4", init_type="on-demand", tenant="acme"),
        _event("invoke", "f-4", "r-3", cold_start=True, duration_ms=1.0, error=None, tenant="acme"),
    ]
    page = render(trace)
    for kind in ("snapshot", "restored", "provisioned", "worker"):
        assert f'data-marker="{kind}"' in page, kind
    assert 'data-marker="worker" data-action="exited"' in page and "worker 2 exited (crash)" in page
    for badge in ("snapstart", "provisioned", "workers", "tenant"):
        assert f'data-badge="{badge}"' in page, badge
    assert ">W1</text>" in page, "one worker process alive at the end"
    assert ">f-4 [acme]</text>" in page, "the lane's label names its tenant"
    assert "restored from its version&#x27;s SnapStart snapshot in 3.50 ms" in page
    assert "tenant acme: it serves no other" in page
    assert "1 snapshot \u00b7 1 restore \u00b7 1 provisioned environment \u00b7 2 worker processes started" in page
    assert "SnapStart snapshot of a version" in page and "badge T" in page, "the legend"
    data = json.loads(re.search(r'<script type="application/json" id="lsim-data">(.*?)</script>', page,
                                re.DOTALL).group(1))  # type: ignore[union-attr]
    invocations = {inv["request_id"]: inv for inv in data["runs"][0]["invocations"]}
    assert (invocations["r-1"]["restore_ms"], invocations["r-1"]["init_type"]) == (3.5, "snap-start")
    assert (invocations["r-2"]["worker"], invocations["r-3"]["tenant"]) == (1, "acme")
    assert 'row(dl, "tenant", inv.tenant)' in page, "the details show them"


def test_a_detect_report_shows_what_snapstart_cloned() -> None:
    ok = {"ok": True, "payload": {"id": "a"}}
    report: dict[str, Any] = {
        "function": "app", "handler": "app.handler", "events": [{}, {}], "verdict": "cloned",
        "verdict_text": "FAIL: state made during Init ...", "differences": [], "failures": [], "cross_reads": [],
        "clones": [{"indices": [0, 1], "restored": [ok, ok],
                    "initialised": [ok, {"ok": True, "payload": {"id": "b"}}]}],
        "warm": [], "fresh": [], "runs": {"routing=warm": {"trace": _fresh_trace(1, "app")}},
    }
    page = render(report)
    verdict = page[page.index('<section class="verdict'):page.index("</section>")]
    assert 'data-verdict="cloned"' in verdict and ">CLONED</span>" in verdict
    assert ("CLONED: #0, #1 on every restored environment: returned {&quot;id&quot;: &quot;a&quot;}; each with its "
            "own Init: returned {&quot;id&quot;: &quot;a&quot;}; returned {&quot;id&quot;: &quot;b&quot;}") in verdict
    derived = detect_verdict({k: v for k, v in report.items() if k != "verdict"})
    assert derived is not None and derived["verdict"] == "cloned"


def test_tmp_chart_labels_keep_apart() -> None:
    # Nine instances that end with the same /tmp use, one step apart: the labels stack in rows.
    page = render(_fresh_trace(9))
    chart = page[page.index('<svg class="tmpchart"'):]
    chart = chart[:chart.index("</svg>")]
    labels = [(float(x), float(y), text) for x, y, text in
              re.findall(r'<text class="series-label" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]+)</text>', chart)]
    assert len(labels) == 9 and len({y for _, y, _ in labels}) > 1
    boxes = [(x, y - 11, x + lambdasim._report._label_width(text), y + 3.5) for x, y, text in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    # Each label that left its point's row has a leader line to its point (all points are at the peak).
    point_y = float(re.search(r'<circle cx="[\d.]+" cy="([\d.]+)"', chart).group(1))  # type: ignore[union-attr]
    moved = sum(1 for _, y, _ in labels if y != point_y + 4)
    assert moved and chart.count('class="label-leader"') == moved
    height = float(re.search(r'height="(\d+)"', chart).group(1))  # type: ignore[union-attr]
    assert max(b[3] for b in boxes) <= height, "the chart is tall enough for its labels"
    # Lane labels fit their column: a long instance id keeps its start and its number.
    lane_labels = re.findall(r'<text class="lane-label" x="18" y="[\d.]+">([^<]+)</text>', page)
    assert lane_labels[0] == "OrdersFunc\u2026LongName-1" and len(set(lane_labels)) == 9


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


# Run in the page by the browser tests (not part of the report): the bounding boxes of the /tmp charts'
# texts (labels, axis labels) against each other and against every data point, lane labels against the
# lanes, and each badge's text and computed background colour.
_CHECK_JS = """
(function () {
  function hit(a, b) {
    return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  }
  var overlaps = [], checked = 0;
  document.querySelectorAll("svg.tmpchart").forEach(function (svg) {
    var texts = Array.prototype.slice.call(svg.querySelectorAll("text"));
    var dots = Array.prototype.slice.call(svg.querySelectorAll("circle")).map(function (d) { return d.getBBox(); });
    var boxes = texts.map(function (t) { return t.getBBox(); });
    checked += texts.length;
    for (var i = 0; i < texts.length; i++) {
      for (var j = i + 1; j < texts.length; j++) {
        if (hit(boxes[i], boxes[j])) overlaps.push(texts[i].textContent + " / " + texts[j].textContent);
      }
      dots.forEach(function (d) { if (hit(boxes[i], d)) overlaps.push(texts[i].textContent + " / a point"); });
    }
  });
  document.querySelectorAll("svg.timeline .lane-label").forEach(function (t) {
    var b = t.getBBox();
    checked += 1;
    if (b.x + b.width > LEFT) overlaps.push(t.textContent + " / the lanes");
  });
  var badges = Array.prototype.slice.call(document.querySelectorAll("[data-badge]")).map(function (b) {
    return [b.closest("details").id, b.getAttribute("data-badge"), b.textContent, getComputedStyle(b).backgroundColor];
  });
  document.body.setAttribute("data-overlaps", JSON.stringify(overlaps));
  document.body.setAttribute("data-labels-checked", String(checked));
  document.body.setAttribute("data-badges", JSON.stringify(badges));
})();
""".replace("LEFT", str(LEFT))


def _checked(page: str) -> str:
    return page.replace("</body>", f"<script>{_CHECK_JS}</script></body>")


def _body_data(dom: str, name: str) -> Any:
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    found = re.search(f'{name}="([^"]*)"', body.group(0))
    assert found is not None, f"{name} not set: {body.group(0)}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.sandbox
def test_the_report_runs_in_a_headless_browser(chromium: str, scenario: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(_checked(render(scenario["trace"])))
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
    assert _body_data(dom, "data-overlaps") == []
    assert _body_data(dom, "data-labels-checked") >= lanes + 3

    shot = tmp_path / "report.png"
    result = _browse(chromium, page.as_uri(), tmp_path / "profile", f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-3000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
    assert int.from_bytes(png[16:20], "big") == 1400
    keep = os.environ.get("LAMBDASIM_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


GREEN, RED = "rgb(46, 125, 50)", "rgb(211, 47, 47)"


@pytest.mark.sandbox
def test_in_the_browser_a_passing_test_is_green_and_labels_keep_apart(
    chromium: str, scenario: dict[str, Any], tmp_path: Path
) -> None:
    report = {"summary": {"tests": 3}, "tests": {
        "t.py::test_expects_its_errors": {"outcome": "passed", "trace": scenario["trace"]},
        "t.py::test_fails": {"outcome": "failed", "trace": _fresh_trace(2, "g")},
        "t.py::test_fresh_instances": {"outcome": "passed", "trace": _fresh_trace(9, error_every=4)},
    }}
    page = tmp_path / "tests.html"
    page.write_text(_checked(render(report)))
    result = _browse(chromium, page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _body_data(result.stdout, "data-overlaps") == []
    assert _body_data(result.stdout, "data-labels-checked") > 9 + 9 + 3
    badges = {(run, kind): (text, colour) for run, kind, text, colour in _body_data(result.stdout, "data-badges")}
    assert badges[("run-0", "outcome")] == ("passed", GREEN)
    text, colour = badges[("run-0", "function-errors")]
    assert text == "2 function errors" and colour not in (RED, GREEN)
    assert badges[("run-1", "outcome")] == ("failed", RED)
    assert badges[("run-2", "outcome")] == ("passed", GREEN)
    assert badges[("run-2", "function-errors")][0] == "2 function errors"
    shot = tmp_path / "tests.png"
    result = _browse(chromium, page.as_uri(), tmp_path / "profile", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("LAMBDASIM_REPORT_TESTS_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
