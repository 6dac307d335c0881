"""A suite run in shards (pytest-xdist workers, pytest-split CI jobs) gives one HTML report, each shard's
tests and instances kept apart: run the way users run it (pytester), then ``lambdasim report``."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambdasim._report_merge import shard_labels
from lambdasim.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"

ORDERS = """
    def test_create(lambda_function):
        assert lambda_function("app.handler", code_dir="src").invoke({"n": 1}).payload == {"n": 1}

    def test_read_twice(lambda_function):
        fn = lambda_function("app.handler", code_dir="src")
        assert fn.invoke({"n": 2}).payload == {"n": 2} and fn.invoke({"n": 3}).payload == {"n": 3}
"""
USERS = """
    def test_signup(lambda_function):
        fn = lambda_function("app.handler", code_dir="src")
        fn.invoke_many([{"n": 4}, {"n": 5}], concurrency=2)  # two instances
        assert len(fn.instances) == 2

    def test_login(lambda_function):
        assert lambda_function("app.handler", code_dir="src").invoke({"n": 6}).payload == {"n": 6}
"""
TESTS = {"test_orders.py::test_create", "test_orders.py::test_read_twice", "test_users.py::test_signup",
         "test_users.py::test_login"}
INSTANCES = {"test_orders.py::test_create": 1, "test_orders.py::test_read_twice": 1, "test_users.py::test_signup": 2,
             "test_users.py::test_login": 1}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "app.py").write_text("def handler(event, context):\n    return event\n")
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    pytester.makepyfile(test_orders=ORDERS, test_users=USERS)
    return pytester


def _shards(page: str) -> dict[str, dict[str, int]]:
    """Each shard section of a merged page: its label -> {the name of each of its runs: the run's lanes}."""
    found: dict[str, dict[str, int]] = {}
    for label, body in re.findall(r'<section class="shard" id="shard-\d+" data-shard="([^"]+)">(.*?)</section>'
                                  r'(?=<section class="shard"|</main>)', page, flags=re.DOTALL):
        runs = re.split(r'<details class="run"', body)[1:]
        found[label] = {re.search(r'<h2 style="display:inline">([^<]*)</h2>', run).group(1):  # type: ignore[union-attr]
                        run.count("data-lane=") for run in runs}
    return found


def _page_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="lsim-data">(.*?)</script>', page)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


# -- the plugin, sharded ---------------------------------------------------------------------------


@pytest.mark.sandbox
def test_pytest_split_shards_merge_into_one_report(suite: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    shards = {}
    for group in (1, 2):
        report = suite.path / f"shard-{group}.json"
        result = suite.runpytest("--lambda-sim", "--splits", "2", "--group", str(group),
                                 f"--lambda-sim-report={report}")
        result.assert_outcomes(passed=2, deselected=2)
        shards[report.name] = set(json.loads(report.read_text())["tests"])
    one, two = shards["shard-1.json"], shards["shard-2.json"]
    assert one | two == TESTS and not one & two

    out = suite.path / "report.html"
    assert main(["report", str(suite.path / "shard-1.json"), str(suite.path / "shard-2.json"), "-o", str(out)]) == 0
    assert capsys.readouterr().out.endswith(f"\nreport written to {out}\n")
    page = out.read_text()
    drawn = _shards(page)
    assert {name: set(runs) for name, runs in drawn.items()} == shards
    assert {test: lanes for runs in drawn.values() for test, lanes in runs.items()} == INSTANCES
    assert 'data-runs="4"' in page and "2 shards \u00b7 4 tests \u00b7 4 passed" in page
    # The details panel says which shard a run came from.
    assert {(run["shard"], run["name"]) for run in _page_data(page)["runs"]} == {
        (name, f"{name} \u00b7 {test}") for name, tests in shards.items() for test in tests}


@pytest.mark.sandbox
def test_xdist_workers_leave_the_report_to_the_controller(suite: pytest.Pytester, tmp_path: Path) -> None:
    # What each worker finds at the path once it is done: before the fix, each wrote its own tests there.
    suite.makeconftest("""
        from pathlib import Path
        def pytest_unconfigure(config):
            if hasattr(config, "workerinput"):
                Path(config.workerinput["workerid"] + ".saw").write_text(str(Path("trace.json").exists()))
    """)
    result = suite.runpytest_subprocess("--lambda-sim", "-n", "2", "--lambda-sim-report=trace.json")
    result.assert_outcomes(passed=4)
    assert {p.name: p.read_text() for p in suite.path.glob("*.saw")} == {"gw0.saw": "False", "gw1.saw": "False"}
    assert not list(suite.path.glob(".trace.json.*"))  # the temporary file is renamed into place
    report = json.loads((suite.path / "trace.json").read_text())
    assert set(report["tests"]) == TESTS and report["summary"]["tests"] == 4
    out = tmp_path / "trace.html"
    assert main(["report", str(suite.path / "trace.json"), "-o", str(out)]) == 0
    page = out.read_text()
    assert sorted(re.findall(r'<h2 style="display:inline">([^<]*)</h2>', page)) == sorted(TESTS)
    assert page.count("data-lane=") == sum(INSTANCES.values())


def _readme_workflow() -> dict[str, Any]:
    (block,) = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.DOTALL)
    workflow: dict[str, Any] = yaml.safe_load(block)
    return workflow


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.sandbox
def test_the_readme_ci_matrix_runs_as_written(suite: pytest.Pytester) -> None:
    """The README's GitHub Actions jobs: each matrix job's commands (the artifacts all land in one folder,
    as download-artifact's merge-multiple puts them), then the report job's."""
    jobs = _readme_workflow()["jobs"]
    groups = jobs["test"]["strategy"]["matrix"]["group"]
    runs = {name: [step["run"] for step in job["steps"] if "run" in step] for name, job in jobs.items()}
    for command in runs["test"][:1] + runs["report"][:1]:  # the packages it installs are the ones installed here
        words = command.split()
        assert words[:2] == ["pip", "install"]
        for package in words[2:]:
            assert importlib.metadata.version(package)
    (test_command,) = runs["test"][1:]
    assert f"--splits {len(groups)}" in test_command
    for group in groups:
        done = _shell(test_command.replace("${{ matrix.group }}", str(group)), suite.path)
        assert done.returncode == 0, f"{test_command}\n{done.stdout}\n{done.stderr}"
    (report_command,) = runs["report"][1:]
    done = _shell(report_command, suite.path)
    assert done.returncode == 0, f"{report_command}\n{done.stderr}"
    drawn = _shards((suite.path / "report.html").read_text())
    assert sorted(drawn) == [f"shard-{group}.json" for group in groups]
    assert sorted(test for runs_ in drawn.values() for test in runs_) == sorted(TESTS)
    assert {test: lanes for runs_ in drawn.values() for test, lanes in runs_.items()} == INSTANCES


# -- merging, from traces made here ------------------------------------------------------------------


def _plugin_report(tests: dict[str, str]) -> dict[str, Any]:
    """The plugin's report of tests (node id -> the one instance each ran), each with one invocation."""
    def trace(instance: str) -> list[dict[str, Any]]:
        def event(kind: str, **detail: Any) -> dict[str, Any]:
            return {"t": 0.0, "kind": kind, "function": "orders", "instance": None if kind == "deploy" else instance,
                    "version": "1", "request_id": "rid-1" if kind == "invoke" else None, "detail": detail}
        return [event("deploy"), event("instance_created"), event("invoke", cold_start=True, duration_ms=1.0)]

    return {"summary": {"tests": len(tests)},
            "tests": {test: {"outcome": "passed", "trace": trace(instance)} for test, instance in tests.items()}}


def test_a_test_two_shards_ran_is_drawn_in_each(tmp_path: Path) -> None:
    # A matrix over Python versions: every job runs the same tests, with the same instance ids.
    paths = []
    for job in ("py311", "py312"):
        (tmp_path / job).mkdir()
        path = tmp_path / job / "shard.json"
        path.write_text(json.dumps(_plugin_report({"test_a.py::test_one": "orders-1", "test_a.py::test_two":
                                                   "orders-1"})))
        paths.append(str(path))
    out = tmp_path / "report.html"
    assert main(["report", *paths, "-o", str(out)]) == 0
    page = out.read_text()
    # The file name twice: the path, as given, tells the two apart.
    assert _shards(page) == {os.path.normpath(p): {"test_a.py::test_one": 1, "test_a.py::test_two": 1}
                             for p in paths}
    assert 'data-runs="4"' in page and [m for m in re.findall(r'id="run-(\d+)"', page)] == ["0", "1", "2", "3"]
    assert len({run["name"] for run in _page_data(page)["runs"]}) == 4


def test_shard_labels() -> None:
    assert shard_labels(["ci/shard-1.json", "ci/shard-2.json"]) == ["shard-1.json", "shard-2.json"]
    assert shard_labels(["a/t.json", "b/t.json", "c.json", "./c.json"]) == ["a/t.json", "b/t.json", "c.json",
                                                                           "c.json (2)"]


def test_a_detect_report_and_an_event_list_are_shards_too(tmp_path: Path) -> None:
    events = _plugin_report({"t": "orders-1"})["tests"]["t"]["trace"]
    detect = {"runs": {"warm": {"trace": events}, "fresh": {"trace": events}}, "differences": [], "events": [{}],
              "verdict": "ok", "handler": "app.handler"}
    (tmp_path / "events.json").write_text(json.dumps(events))
    (tmp_path / "detect.json").write_text(json.dumps(detect))
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "events.json"), str(tmp_path / "detect.json"), "-o", str(out)]) == 0
    page = out.read_text()
    assert _shards(page) == {"events.json": {"trace": 1}, "detect.json": {"warm": 1, "fresh": 1}}
    assert re.search(r'data-shard="detect.json">.*data-verdict="ok"', page, flags=re.DOTALL)


def test_several_traces_need_o(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a.json", "b.json", "c.json"):
        (tmp_path / name).write_text(json.dumps(_plugin_report({"t": "orders-1"})))
    monkeypatch.chdir(tmp_path)
    assert main(["report", "a.json", "b.json", "c.json"]) == 2
    assert capsys.readouterr().err == ("lambdasim: error: 3 traces make one report: name its file with -o, e.g. "
                                       "lambdasim report a.json b.json ... -o report.html\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "c.json"]
    # One trace still gets its own name by default.
    assert main(["report", "a.json"]) == 0 and (tmp_path / "a.html").exists()


@pytest.mark.parametrize(("text", "error"), [
    (None, "cannot read it: No such file or directory"),
    ("{not json", "not a JSON trace"),
    ('{"not": "a trace"}', "render() takes a list of trace events"),
])
def test_an_error_names_the_file_that_was_wrong(text: str | None, error: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "shard-1.json", tmp_path / "shard-2.json"
    good.write_text(json.dumps(_plugin_report({"t": "orders-1"})))
    if text is not None:
        bad.write_text(text)
    assert main(["report", str(good), str(bad), "-o", str(tmp_path / "report.html")]) == 2
    assert capsys.readouterr().err.startswith(f"lambdasim: error: {bad}: {error}")
    assert not (tmp_path / "report.html").exists()
