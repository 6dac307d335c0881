"""Hidden warm-state dependencies: /tmp provenance, ``detect()``, its command line and ``--lambda-sim-detect``."""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lambdasim import Simulator
from lambdasim._commands.detect import load_events
from lambdasim._commands.detect import run as run_detect
from lambdasim._detect import DetectReport, Outcome, _clones, detect
from lambdasim._errors import LambdaSimError
from lambdasim._report import render
from lambdasim._runtime import TmpAccess
from lambdasim._simulator import Invocation
from lambdasim._source import services_text
from lambdasim.cli import main
from tests.conftest import REQUIRE_SANDBOX, Code

# A /tmp cache that changes the result: warm instances answer "cached", fresh ones "computed".
HIDDEN = """
import json, os
def handler(event, context):
    if os.path.exists("/tmp/rates.json"):
        with open("/tmp/rates.json") as f:
            return {"rate": json.load(f)["usd"], "source": "cached"}
    with open("/tmp/rates.json", "w") as f:
        json.dump({"usd": 1.1}, f)
    return {"rate": 1.1, "source": "computed"}
"""

# Uses /tmp only within one invocation, and returns its own request id: no difference.
CORRECT = """
import os
def handler(event, context):
    path = f"/tmp/work-{context.aws_request_id}"
    with open(path, "w") as f:
        f.write(str(event["n"] * 2))
    with open(path) as f:
        result = int(f.read())
    os.remove(path)
    return {"double": result, "request": context.aws_request_id}
"""

# Module-level state: a difference that no /tmp read explains.
GLOBAL = """
CALLS = 0
def handler(event, context):
    global CALLS
    CALLS += 1
    return {"calls": CALLS}
"""


def _detect(code_dir: Path, events: list[Any], **kwargs: Any) -> DetectReport:
    from lambdasim import SandboxUnavailable

    try:
        return detect("app.handler", code_dir, events, **kwargs)
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")


# -- detect() ---------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_detect_finds_the_differing_invocations_and_the_cross_invocation_reads(code: Code) -> None:
    events = [{"n": 0}, {"n": 1}, {"n": 2}]
    report = _detect(code(HIDDEN), events)
    assert not report.ok
    assert [d.index for d in report.differences] == [1, 2]
    first = report.differences[0]
    assert first.event == {"n": 1}
    assert first.warm.payload == {"rate": 1.1, "source": "cached"} and not first.warm.cold_start
    assert first.fresh.payload == {"rate": 1.1, "source": "computed"} and first.fresh.cold_start
    assert first.warm.instance != first.fresh.instance

    warm_ids = [o.request_id for o in report.warm]
    assert [(r.routing, r.path, r.writer_index, r.reader_index) for r in report.cross_reads] == [
        ("warm", "/tmp/rates.json", 0, 1), ("warm", "/tmp/rates.json", 0, 2)]
    assert [(r.writer_request_id, r.reader_request_id) for r in report.cross_reads] == [
        (warm_ids[0], warm_ids[1]), (warm_ids[0], warm_ids[2])]
    assert not report.cross_reads[0].during_init

    text = report.render()
    assert "DIFFERENT: 2 of 3 invocations differ" in text
    assert '#1  event {"n": 1}' in text
    assert 'warm:  returned {"rate": 1.1, "source": "cached"}' in text
    assert 'fresh: returned {"rate": 1.1, "source": "computed"}' in text
    assert f"warm #1 read /tmp/rates.json, written by #0 ({warm_ids[0]})" in text
    assert f"reader {warm_ids[1]}, writer {warm_ids[0]}" in text
    assert text.rstrip().splitlines()[-1].startswith("FAIL: 2 invocation(s)")

    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and [d["index"] for d in data["differences"]] == [1, 2]
    assert (data["verdict"], data["exit_status"], data["failures"]) == ("different", 1, [])
    assert data["verdict_text"] == text.rstrip().splitlines()[-1]
    assert data["cross_reads"][0]["writer_request_id"] == warm_ids[0]
    assert set(data["runs"]) == {"routing=warm", "routing=fresh"}
    # The JSON report draws as an HTML timeline: one instance warm, one per invocation fresh.
    page = render(data)
    assert 'data-runs="2"' in page and page.count('<g class="lane" data-lane=') == 1 + 3
    assert page.count('data-marker="tmp-read"') == 2
    assert 'data-verdict="different"' in page and '<li data-difference="1">' in page


@pytest.mark.sandbox
def test_a_correct_handler_shows_nothing(code: Code) -> None:
    report = _detect(code(CORRECT), [{"n": i} for i in range(3)])
    assert report.ok, report.render()
    assert report.differences == [] and report.cross_reads == []
    # The payloads name their own request ids (which may differ between the runs): no difference.
    assert all(o.payload["request"] == o.request_id for o in report.warm + report.fresh)
    assert "OK: all 3 invocations succeed and give the same result warm and fresh, and none read a /tmp" in (
        report.render())
    assert (report.verdict, report.exit_status, report.failures) == ("ok", 0, [])


@pytest.mark.sandbox
def test_global_state_differs_without_a_tmp_read(code: Code) -> None:
    report = _detect(code(GLOBAL), [{}, {}], memory_mb=256, environment={"STAGE": "test"})
    assert [d.index for d in report.differences] == [1]
    assert report.differences[0].warm.payload == {"calls": 2}
    assert report.differences[0].fresh.payload == {"calls": 1}
    assert report.cross_reads == []
    assert "no /tmp read explains it: look for module-level (global) state" in report.render()


# Fails for some events, in both runs alike; the others return the same thing warm and fresh.
FAILING = """
def handler(event, context):
    if "bad" in event:
        raise ValueError(f"order {event['bad']} is invalid")
    return {"double": event["n"] * 2}
"""


@pytest.mark.sandbox
def test_errors_in_both_runs_are_failures_not_ok(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    events = [{"n": 1}, {"bad": 7}, {"n": 2}, {"bad": 8}]
    report = _detect(code(FAILING), events)
    assert report.differences == [] and not report.ok
    assert (report.verdict, report.exit_status) == ("failed", 1)
    assert [(f.index, f.event, f.warm.error_type, f.fresh.error_type) for f in report.failures] == [
        (1, {"bad": 7}, "ValueError", "ValueError"), (3, {"bad": 8}, "ValueError", "ValueError")]
    text = report.render()
    assert "OK" not in text and "DIFFERENT" not in text
    assert "FAILED: 2 of 4 invocations returned an error in both runs, the same warm and fresh:" in text
    assert '  #1  event {"bad": 7}\n      ValueError: order 7 is invalid\n      File "/var/task/app.py", line 4, ' \
           "in handler\n" in text
    assert text.rstrip().splitlines()[-1].startswith(
        "FAIL: 2 of 4 invocations returned an error in both runs (FAILED above); the other 2 succeed")
    data = json.loads(json.dumps(report.to_dict()))
    assert (data["verdict"], data["exit_status"], data["ok"]) == ("failed", 1, False)
    assert [f["index"] for f in data["failures"]] == [1, 3] and data["differences"] == []
    assert data["failures"][0]["warm"]["stackTrace"][-1].startswith('  File "/var/task/app.py", line 4')
    page = render(data)  # the HTML report shows the verdict, and the failures apart from any difference
    assert 'data-verdict="failed"' in page and ">FAILED</span>" in page and 'data-difference=' not in page
    assert '<li data-failure="1">#1 event' in page and '<li data-failure="3">#3 event' in page

    # The same error everywhere: one entry names every invocation; the command exits 1, not 0.
    code_dir = code(FAILING)
    assert main(["detect", "app.handler", "--code-dir", str(code_dir), "--event", '{"bad": 1}']) == 1
    printed = capsys.readouterr().out
    assert '  #0, #1, #2 (3 invocations)  first event {"bad": 1}\n      ValueError: order 1 is invalid\n' in printed
    assert printed.rstrip().splitlines()[-1].startswith("FAIL: all 3 invocations returned an error in both runs")
    # --help says so.
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("Exit status: 0 when every invocation succeeds and gives the same result warm and fresh (OK); 1 when an "
            "outcome differs between warm and fresh (DIFFERENT), when a SnapStart function's restored instances share "
            "what Init made (CLONED), or when invocations return an error in both runs (FAILED); 2 on a usage "
            "error") in help_text


MIXED = """
import os
def handler(event, context):
    if "bad" in event:
        raise ValueError(f"order {event['bad']} is invalid")
    if os.path.exists("/tmp/seen"):
        return "cached"
    open("/tmp/seen", "w").close()
    return "computed"
"""


@pytest.mark.sandbox
def test_a_difference_and_errors_in_both_runs_are_reported_apart(code: Code) -> None:
    report = _detect(code(MIXED), [{}, {"bad": 1}, {}])
    assert [d.index for d in report.differences] == [2] and [f.index for f in report.failures] == [1]
    assert (report.verdict, report.exit_status) == ("different", 1)
    text = report.render()
    assert "DIFFERENT: 1 of 3 invocations differ" in text
    assert "FAILED: 1 of 3 invocations returned an error in both runs" in text
    assert text.index("DIFFERENT:") < text.index("FAILED:")
    assert text.rstrip().splitlines()[-1].endswith("1 other invocation(s) returned an error in both runs "
                                                   "(FAILED above).")


# -- /tmp provenance in the Simulator ------------------------------------------------------------


def _reads(sim: Simulator, inv: Invocation) -> list[dict[str, Any]]:
    (event,) = [e for e in sim.trace if e.kind == "invoke" and e.request_id == inv.request_id]
    reads: list[dict[str, Any]] = event.detail["tmp_reads_from"]
    return reads


PROVENANCE = """
import os, pathlib, shutil
with open("/tmp/model.bin", "w") as f:   # Init: every instance (and every reset) writes it again
    f.write("weights")
def handler(event, context):
    op = event["op"]
    if op == "write":
        with open("/tmp/a.txt", "w") as f:
            f.write(context.aws_request_id)
    elif op == "atomic":
        pathlib.Path("/tmp/b.part").write_text("b")
        os.replace("/tmp/b.part", "/tmp/b.txt")
    elif op == "read":
        found = {}
        for name in ("a.txt", "b.txt", "model.bin"):
            if os.path.exists("/tmp/" + name):
                found[name] = open("/tmp/" + name).read()
        return found
    elif op == "append":
        with open("/tmp/a.txt", "a+") as f:
            f.seek(0)
            f.read()
            f.write("!")
    elif op == "remove":
        os.remove("/tmp/a.txt")
    elif op == "crash":
        os._exit(1)
    return op
"""


@pytest.mark.sandbox
def test_tmp_reads_name_their_writer_and_survive_a_reset(make_sim: Any, code: Code) -> None:
    sim = make_sim(track_tmp_access=True)
    fn = sim.deploy("app.handler", code_dir=code(PROVENANCE))
    write = fn.invoke({"op": "write"})
    atomic = fn.invoke({"op": "atomic"})
    own = fn.invoke({"op": "write"})
    assert _reads(sim, write) == [] and _reads(sim, own) == []  # writing is no read
    crash = fn.invoke({"op": "crash"})
    assert crash.error is not None and crash.error["errorType"] == "Runtime.ExitError"
    # A new runtime (Init again): the simulator still knows who wrote what.
    read = fn.invoke({"op": "read"})
    assert read.cold_start and read.instance_id == write.instance_id
    assert read.payload == {"a.txt": own.request_id, "b.txt": "b", "model.bin": "weights"}
    assert _reads(sim, read) == [{"path": "/tmp/a.txt", "writer": own.request_id},
                                 {"path": "/tmp/b.txt", "writer": atomic.request_id}]
    append = fn.invoke({"op": "append"})  # a+ reads what was there, then writes
    assert _reads(sim, append) == [{"path": "/tmp/a.txt", "writer": own.request_id}]
    again = fn.invoke({"op": "read"})
    assert {r["path"]: r["writer"] for r in _reads(sim, again)}["/tmp/a.txt"] == append.request_id
    fn.invoke({"op": "remove"})
    gone = fn.invoke({"op": "read"})
    assert [r["path"] for r in _reads(sim, gone)] == ["/tmp/b.txt"]


@pytest.mark.sandbox
def test_without_tracking_there_is_no_tmp_access_detail(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(HIDDEN))
    fn.invoke({})
    fn.invoke({})
    details = [e.detail for e in sim.trace if e.kind == "invoke"]
    assert details and all("tmp_reads_from" not in d for d in details)


def test_tmp_access_classifies_opens_renames_and_removals() -> None:
    access = TmpAccess()
    access._open(("/tmp/r", "r", os.O_RDONLY))
    access._open(("/tmp/w", "w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
    access._open(("/tmp/rw", "r+", os.O_RDWR))
    access._open((b"/tmp/x/../bytes", "a", os.O_WRONLY | os.O_APPEND | os.O_CREAT))
    access._open(("/tmp", "w+", os.O_RDWR | os.O_DIRECTORY))  # O_TMPFILE's probe: no name
    access._open(("/var/task/app.py", "r", os.O_RDONLY))  # not /tmp
    access._open((3, "r", os.O_RDONLY))  # a descriptor
    access._open(("/tmp/w", "r", os.O_RDONLY))  # its own write: no read of another's
    access._rename(("/tmp/new.part", "/tmp/new", -1, -1))
    reads, changes = access.take()
    assert reads == ["/tmp/r", "/tmp/rw"]
    assert changes == {"/tmp/w": True, "/tmp/rw": True, "/tmp/bytes": True, "/tmp/new.part": False,
                       "/tmp/new": True}
    assert access.take() == ([], {})


# -- command line -----------------------------------------------------------------------------


def _args(**kwargs: Any) -> argparse.Namespace:
    base: dict[str, Any] = {"handler": "app.handler", "code_dir": None, "events": None, "event": None,
                            "template": None, "function": None, "services": None, "json": None}
    return argparse.Namespace(**{**base, **kwargs})


def test_events_come_from_a_file_or_one_repeated_event(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text('[{"n": 1}, {"n": 2}]')
    assert load_events(_args(events=str(path))) == [{"n": 1}, {"n": 2}]
    path.write_text('{"n": 1}')
    assert load_events(_args(events=str(path), repeat=2)) == [{"n": 1}, {"n": 1}]
    assert load_events(_args(event='{"a": 1}')) == [{"a": 1}] * 3
    assert load_events(_args(event=f"@{path}", repeat=1)) == [{"n": 1}]
    assert load_events(_args()) == [{}, {}, {}]
    with pytest.raises(LambdaSimError, match=r"--event: not valid JSON at line 1"):
        load_events(_args(event="{nope"))
    with pytest.raises(LambdaSimError, match=r"--events .*missing.json: cannot read it"):
        load_events(_args(events=str(tmp_path / "missing.json")))
    path.write_text("[]")
    with pytest.raises(LambdaSimError, match="the list is empty"):
        load_events(_args(events=str(path)))
    # --services has the one grammar (lambdasim._source.services_text): no services is None for detect().
    assert services_text("aws, redis=binary") == {"aws": "auto", "redis": "binary"}
    assert services_text("aws") == {"aws": "auto"} and services_text("") == {}
    with pytest.raises(LambdaSimError, match=r"--services: services: 'postgres' is not a service"):
        services_text("postgres")


def test_outcomes_compare_without_their_request_ids() -> None:
    a = Outcome("rid-a", "f-1", True, None, "Sandbox.Timedout", "RequestId: rid-a Error: Task timed out")
    b = Outcome("rid-b", "f-2", True, None, "Sandbox.Timedout", "RequestId: rid-b Error: Task timed out")
    assert a.same_as(b)
    assert Outcome("rid-a", None, False, {"id": "rid-a"}).same_as(Outcome("rid-b", None, True, {"id": "rid-b"}))
    assert not Outcome("r", None, False, {"n": 1}).same_as(Outcome("r", None, False, {"n": 2}))
    assert not Outcome("r", None, False, None).same_as(Outcome("r", None, False, None, "ValueError", "x"))
    assert a.describe() == "Sandbox.Timedout: RequestId: rid-a Error: Task timed out"


@pytest.mark.sandbox
def test_run_detect_prints_the_report_and_sets_the_exit_status(
    code: Code, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"n": 0}, {"n": 1}]))
    out = tmp_path / "report.json"
    try:
        status = run_detect(_args(code_dir=str(code(HIDDEN)), events=str(events), json=str(out)))
    except LambdaSimError as e:
        if REQUIRE_SANDBOX or "sandbox" not in str(e).lower():
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")
    printed = capsys.readouterr().out
    assert status == 1
    assert "DIFFERENT: 1 of 2 invocations differ" in printed and "#1 read /tmp/rates.json, which #0 wrote" in printed
    assert f"report written to {out}" in printed
    assert json.loads(out.read_text())["differences"][0]["index"] == 1

    assert main(["detect", "app.handler", "--code-dir", str(code(CORRECT)), "--event", '{"n": 3}', "--repeat",
                 "2"]) == 0
    assert "OK: all 2 invocations succeed and give the same result" in capsys.readouterr().out
    assert main(["detect", "app.handler", "--code-dir", str(tmp_path / "nowhere")]) == 2
    assert "lambdasim: error: code_dir=" in capsys.readouterr().err
    with pytest.raises(LambdaSimError, match="needs a handler"):
        run_detect(_args(handler=None))


# -- the execution models ----------------------------------------------------------------------

# A uuid made at Init: unique per environment on-demand, the same in every environment SnapStart restores.
INIT_ID = """
import uuid
ID = str(uuid.uuid4())
def handler(event, context):
    return {"id": ID}
"""

# Returns its tenant and a per-instance counter.
TENANT = """
CALLS = 0
def handler(event, context):
    global CALLS
    CALLS += 1
    return {"tenant": context.tenant_id, "calls": CALLS}
"""


def test_clones_are_results_shared_by_restored_environments_only() -> None:
    def outcomes(*rows: tuple[str, Any]) -> list[Outcome]:
        return [Outcome(f"r{i}", instance, True, payload) for i, (instance, payload) in enumerate(rows)]

    restored = outcomes(("f-1", {"id": "a"}), ("f-2", {"id": "a"}), ("f-3", {"id": "a"}))
    initialised = outcomes(("f-4", {"id": "x"}), ("f-5", {"id": "y"}), ("f-6", {"id": "z"}))
    [clone] = _clones(restored, initialised)
    assert clone.indices == (0, 1, 2) and clone.initialised == tuple(initialised)
    assert _clones(restored, outcomes(*[("f-9", {"id": "x"})] * 3)) == [], "the same when initialised too"
    assert _clones(outcomes(*[("f-1", {"id": "a"})] * 3), initialised) == [], "one environment: nothing cloned"
    report = DetectReport("fn", "app.handler", [{}, {}, {}], restored, restored, [], [], failures=[],
                          clones=[clone], models=["SnapStart: ..."], initialised=initialised)
    assert (report.verdict, report.ok, report.exit_status) == ("cloned", False, 1)
    text = report.render()
    assert "CLONED: 3 of 3 invocations return the same result on different environments restored from one " \
           "SnapStart snapshot" in text
    assert "restored:    returned {\"id\": \"a\"}  (instances f-1, f-2, f-3)" in text
    assert "initialised: returned {\"id\": \"x\"}  (instance f-4)" in text
    assert text.splitlines()[-1].startswith("FAIL: state made during Init (a uuid, random's state, a file in /tmp)")
    assert "  SnapStart: ..." in text.splitlines()[1]
    data = report.to_dict()
    assert data["verdict"] == "cloned" and data["clones"][0]["indices"] == [0, 1, 2]
    assert len(data["initialised"]) == 3 and data["models"] == ["SnapStart: ..."]


@pytest.mark.sandbox
def test_detect_runs_a_snapstart_function_a_third_time_with_init_in_each_environment(code: Code) -> None:
    report = _detect(code(INIT_ID), [{}] * 3, snap_start=True, runtime="python3.12")
    assert len(report.initialised) == 3 and report.initialised[0].ok
    assert len({o.payload["id"] for o in report.initialised}) == 3, "SnapStart off: an Init, a uuid, each"
    assert len({o.instance for o in report.initialised}) == 3
    assert any(note.startswith("SnapStart: every instance is restored") for note in report.models)
    assert set(report.to_dict()["runs"]) == {"routing=warm", "routing=fresh",
                                             "routing=fresh, SnapStart off (Init in each environment)"}
    assert not _detect(code(INIT_ID), [{}] * 2).initialised, "no third run without SnapStart"


@pytest.mark.sandbox
def test_detect_flags_an_init_uuid_that_snapstart_clones(code: Code) -> None:
    report = _detect(code(INIT_ID), [{}] * 3, snap_start=True, runtime="python3.12")
    assert report.differences == [], "restored from one snapshot, warm and fresh return the same uuid"
    assert report.verdict == "cloned", report.render()
    assert [c.indices for c in report.clones] == [(0, 1, 2)]


@pytest.mark.sandbox
def test_detect_invokes_a_tenant_isolated_function_as_its_tenants(code: Code) -> None:
    with pytest.raises(LambdaSimError, match="has tenant isolation: every invocation needs a tenant id; give "
                                             r"tenant_id= \(lambdasim detect --tenant-id ID\)"):
        _detect(code(TENANT), [{}] * 2, tenant_isolation=True)
    report = _detect(code(TENANT), [{}] * 2, tenant_isolation=True, tenant_id="acme")
    assert [o.payload for o in report.warm] == [{"tenant": "acme", "calls": 1}, {"tenant": "acme", "calls": 2}]
    assert [d.index for d in report.differences] == [1], "globals kept for the tenant: warm differs from fresh"
    assert report.models == ["tenant isolation: invoked as tenant acme; each tenant has its own instances"]
    with pytest.raises(LambdaSimError, match=r"give one tenant id for every event, or a list of 2"):
        _detect(code(TENANT), [{}] * 2, tenant_isolation=True, tenant_id=["a"])


@pytest.mark.sandbox
def test_detect_gives_each_event_its_tenant(code: Code) -> None:
    report = _detect(code(TENANT), [{}] * 2, tenant_isolation=True, tenant_id=["a", "b"])
    assert [o.payload for o in report.warm] == [{"tenant": "a", "calls": 1}, {"tenant": "b", "calls": 1}]
    assert report.ok, "each tenant its own instance: warm is as fresh"


@pytest.mark.sandbox
def test_detect_command_takes_the_models_and_a_tenant_id(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    src = str(code(TENANT))
    assert main(["detect", "app.handler", "--code-dir", src, "--tenant-isolation", "--tenant-id", "acme",
                 "--repeat", "2"]) == 1
    printed = capsys.readouterr().out
    assert "  tenant isolation: invoked as tenant acme" in printed and "DIFFERENT: 1 of 2" in printed
    assert main(["detect", "app.handler", "--code-dir", src, "--capacity-provider", "fleet", "--runtime", "python3.13",
                 "--repeat", "1"]) == 0
    assert "  Lambda Managed Instances: the invocations run one at a time" in capsys.readouterr().out
    assert main(["detect", "app.handler", "--code-dir", src, "--tenant-isolation"]) == 2
    assert "needs a tenant id" in capsys.readouterr().err


# -- pytest --lambda-sim-detect -----------------------------------------------------------------

COUNTER = """
import os
def handler(event, context):
    path = "/tmp/count"
    count = int(open(path).read()) if os.path.exists(path) else 0
    with open(path, "w") as f:
        f.write(str(count + 1))
    return count + 1
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "app.py").write_text(textwrap.dedent(COUNTER))
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester


@pytest.mark.sandbox
def test_detect_option_flags_tests_that_only_pass_warm(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        import pytest
        def test_counts_up(lambda_function):
            fn = lambda_function("app.handler", code_dir="src")
            assert [fn.invoke({}).payload for _ in range(2)] == [1, 2]
        def test_first_call(lambda_sim, lambda_function):
            assert lambda_function("app.handler", code_dir="src").invoke({}).payload == 1
        @pytest.mark.parametrize("n", [1, 2])
        def test_parametrized(lambda_function, n):
            fn = lambda_function("app.handler", code_dir="src")
            assert [fn.invoke({}).payload for _ in range(n)][-1] == n
        @pytest.mark.lambda_sim(routing="fresh")
        def test_chose_fresh(lambda_sim):
            assert lambda_sim.routing == "fresh"
        def test_plain():
            pass
    """)
    result = project.runpytest("--lambda-sim-detect", "-v")
    # counts_up and parametrized[2] fail fresh; the test that chose its routing runs once.
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines([
        "*test_x.py::test_counts_up?warm? PASSED*",
        "*test_x.py::test_counts_up?fresh? FAILED*",
        "*= lambda-sim detect: warm vs fresh =*",
        "4 tests run warm and fresh: 2 pass both ways, 2 only pass warm, 0 only pass fresh, 0 fail both ways",
        "only passes warm: hidden /tmp or global state dependency (2):",
        "  test_x.py::test_counts_up[fresh] (fails; test_x.py::test_counts_up[warm] passes)",
        "    the warm run read a /tmp file another invocation wrote: /tmp/count (written by request *, read by *",
        "  test_x.py::test_parametrized[[]*2*[]] (fails; test_x.py::test_parametrized[[]*2*[]] passes)",
    ])
    assert "test_first_call[fresh] (fails" not in result.stdout.str()
    assert "test_chose_fresh[" not in result.stdout.str()


@pytest.mark.sandbox
def test_detect_ini_key_and_a_clean_run(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_detect = true\n")
    project.makepyfile(test_x="""
        def test_once(lambda_function):
            assert lambda_function("app.handler", code_dir="src").invoke({}).payload == 1
    """)
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["1 tests run warm and fresh: 1 pass both ways, 0 only pass warm, 0 only pass fresh, "
                                 "0 fail both ways"])
    assert "only passes warm:" not in result.stdout.str() and "fails warm and fresh" not in result.stdout.str()


@pytest.mark.sandbox
def test_detect_option_lists_tests_that_fail_both_ways_apart(project: pytest.Pytester) -> None:
    (project.path / "src" / "broken.py").write_text("def handler(event, context):\n    raise KeyError('price')\n")
    project.makepyfile(test_x="""
        import pytest
        def test_broken(lambda_function):
            assert lambda_function("broken.handler", code_dir="src").invoke({}).payload == {"price": 1}
        def test_expects_the_error(lambda_function):
            inv = lambda_function("broken.handler", code_dir="src").invoke({})
            assert inv.error["errorType"] == "KeyError"
        @pytest.fixture
        def bad_setup(lambda_function):
            raise RuntimeError("no table")
        def test_setup_fails(bad_setup):
            pass
        @pytest.mark.skip(reason="later")
        def test_skipped(lambda_function):
            pass
    """)
    result = project.runpytest("--lambda-sim-detect")
    result.assert_outcomes(passed=2, failed=2, errors=2, skipped=2)
    result.stdout.fnmatch_lines([
        "4 tests run warm and fresh: 1 pass both ways, 0 only pass warm, 0 only pass fresh, 2 fail both ways, "
        "1 skipped",
        "fails warm and fresh: no warm/fresh difference, but no pass either (see the failures above) (2):",
        "  test_x.py::test_broken[[]warm[]] and test_x.py::test_broken[[]fresh[]] fail",
        "    both: AssertionError: assert None == {'price': 1}",
        "  test_x.py::test_setup_fails[[]warm[]] and test_x.py::test_setup_fails[[]fresh[]] fail",
        "    both: error in setup: RuntimeError: no table",
    ])
    assert "test_expects_the_error[warm] and" not in result.stdout.str()


def test_where_a_failure_was_raised_names_the_functions_own_frame_too() -> None:
    """An error raised in a library (requests, boto3) also shows the handler's line that called it."""
    own = '  File "/var/task/app.py", line 17, in handler\n    return fetch()\n'
    library = '  File "/var/lang/lib/python3.11/site-packages/requests/adapters.py", line 729, in send\n    raise X\n'
    outcome = Outcome("r", "i", False, None, "ConnectionError", "no", (own, library))
    assert outcome.raised_at() == ['File "/var/task/app.py", line 17, in handler', "return fetch()",
                                   'File "/var/lang/lib/python3.11/site-packages/requests/adapters.py", line 729, '
                                   "in send", "raise X"]
    assert Outcome("r", "i", False, None, "KeyError", "k", (own,)).raised_at() == [
        'File "/var/task/app.py", line 17, in handler', "return fetch()"]


@pytest.mark.sandbox
def test_detect_takes_the_strict_package_view(code: Code) -> None:
    outside = code("import yaml\n\ndef handler(event, context):\n    return 1\n")
    report = _detect(outside, [{}], package="strict")
    assert report.verdict == "failed" and report.failures[0].warm.error_type == "Runtime.ImportModuleError"
    assert _detect(outside, [{}]).ok, "the host's packages by default"


# -- a template's options, as invoke takes them ------------------------------------------------------

NEEDS_OPTIONS = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Runtime: python3.11
      CodeUri: src
      Layers: [shared-layer]
      Environment: {Variables: {STAGE: !Ref Stage}}
"""

NEEDS_STAGE = """\
service: todos
provider: {name: aws, runtime: python3.11}
functions:
  create: {handler: app.handler}
resources:
  Resources:
    Table:
      Type: AWS::DynamoDB::Table
      Properties: {TableName: "todos-${opt:stage}"}
"""


@pytest.mark.sandbox
def test_detect_takes_the_template_options_invoke_takes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("import os\ndef handler(event, context):\n"
                                             "    return os.environ['STAGE']\n")
    (tmp_path / "template.yaml").write_text(NEEDS_OPTIONS)
    argv = ["detect", "-t", str(tmp_path), "--repeat", "1"]  # --function: its only one
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pass --parameter-overrides Stage=VALUE" in err and "parameters=" not in err
    assert main([*argv, "--parameter-overrides", "Stage=dev"]) == 2
    err = capsys.readouterr().err
    assert "pass --layer FOLDER (once for each layer) or --no-layers to replace" in err and "layers=" not in err
    assert main([*argv, "--parameter-overrides", "Stage=dev", "--no-layers", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["warm"][0]["payload"] == "dev"
    # The function named as invoke and sam local invoke take it: a name without a dot after the template.
    assert main(["detect", "-t", str(tmp_path), "Fn", "--repeat", "1", "--parameter-overrides", "Stage=dev",
                 "--no-layers", "--json", str(tmp_path / "r2.json")]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r2.json").read_text())["warm"][0]["payload"] == "dev"
    # A Serverless option the resources need: the error is in the command line's words too.
    (tmp_path / "sls").mkdir()
    (tmp_path / "sls" / "serverless.yml").write_text(NEEDS_STAGE)
    assert main(["detect", "-t", str(tmp_path / "sls"), "--repeat", "1"]) == 2
    err = capsys.readouterr().err
    assert "the option stage is not given (pass --parameter-overrides stage=VALUE)" in err, err
    assert "load_function" not in err
