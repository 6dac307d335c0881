"""``lambdasim run``, ``report``, ``detect`` and the help texts, run in-process through ``main(argv)``."""

from __future__ import annotations

import io
import json
import sys
import textwrap
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from lambdasim._scenario import STEPS, run_file
from lambdasim.cli import main

ADD_ONE = "def handler(event, context):\n    return {'n': event.get('n', 0) + 1}\n"


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A handler in handlers/add_one and three scenarios: one passes, one fails at line 5, one is invalid."""
    _write(tmp_path, "handlers/add_one/app.py", ADD_ONE)
    _write(tmp_path, "passes.yaml", """
        name: adds one
        steps:
          - deploy: {handler: app.handler, code_dir: handlers/add_one}
          - invoke: {event: {n: 1}}
          - expect: {payload: {n: 2}}
    """)
    _write(tmp_path, "fails.yaml", """
        steps:
          - deploy: {handler: app.handler, code_dir: handlers/add_one}
          - invoke: {event: {n: 1}, as: first}
          - expect: {invocation: first, payload: {n: 3}}
          - expect: {function: app, instances: 1}
    """)
    _write(tmp_path, "invalid.yaml", """
        steps:
          - deploy: {handler: app.handler, code_dir: handlers/add_one}
          - invok: {event: {n: 1}}
    """)
    return tmp_path


@pytest.fixture
def chdir(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


@pytest.mark.sandbox
def test_passing_scenario_exits_0_with_a_summary(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "passes.yaml"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("[1/1] PASSED   passes.yaml (adds one): 3 steps, ")
    assert out.count("passes.yaml") == 1  # the result is shown once, not again in a summary
    assert lines[1:-1] == [""]
    assert lines[-1].startswith("1 passed, 0 failed in ")


@pytest.mark.sandbox
def test_failing_scenario_exits_1_naming_file_and_line(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "passes.yaml", "fails.yaml"]) == 1
    out = capsys.readouterr().out
    assert "[2/2] FAILED   fails.yaml: step 3 of 4, " in out
    failure = out[out.index("[2/2] FAILED"):]
    assert failure.splitlines()[1] == ("    fails.yaml:4: step 3 (expect): invocation 'first' payload: expected "
                                       "{\"n\": 3}, got {\"n\": 2} (first difference: n is 2, not 3)")
    assert "\n      its logs (last" in failure  # the failure's detail follows, indented
    assert out.count("FAILED") == 1 and out.count("fails.yaml:4:") == 1  # once, not again in a summary
    assert out.rstrip().splitlines()[-1].startswith("1 passed, 1 failed in ")


def test_invalid_scenario_exits_2_and_nothing_runs(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Every file is validated first: with one invalid, none runs (so no sandbox is needed here).
    assert main(["run", "passes.yaml", "invalid.yaml", "no-such.yaml"]) == 2
    out = capsys.readouterr().out
    assert "[1/" not in out
    assert "NOT RUN  passes.yaml (adds one): 3 steps" in out
    assert "INVALID  invalid.yaml: no steps run" in out
    assert out.count("invalid.yaml") == 2  # its line, and its error under it
    assert "    invalid.yaml:3: steps[1].invok: unknown step 'invok' (did you mean 'invoke'?)" in out
    assert "    no-such.yaml: cannot read the scenario: No such file or directory" in out
    assert out.rstrip().splitlines()[-1].startswith("0 passed, 0 failed, 2 invalid, 1 not run in ")


@pytest.mark.sandbox
def test_junit_xml_has_one_testcase_per_scenario(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "passes.yaml", "fails.yaml", "--junit-xml", "reports/junit.xml"]) == 1
    root = ET.parse(chdir / "reports" / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("2", "1", "0",
                                                                                                     "0")
    passed, failed = suite.findall("testcase")
    assert (passed.get("name"), passed.get("classname"), passed.get("file")) == ("adds one", "passes", "passes.yaml")
    assert passed.find("failure") is None
    assert "step 2 invoke (line 4): passed" in (passed.findtext("system-out") or "")
    assert (failed.get("name"), failed.get("line")) == ("fails", "4")
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("type") == "ScenarioFailure"
    message = failure.get("message") or ""
    assert message.startswith("fails.yaml:4: step 3 (expect): invocation 'first' payload: expected")
    assert "\n" not in message and "its logs" in (failure.text or "")
    assert float(failed.get("time") or "-1") >= 0


def test_junit_xml_reports_invalid_files_as_errors(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "invalid.yaml", "passes.yaml", "--junit-xml", "junit.xml"]) == 2
    suite = ET.parse(chdir / "junit.xml").getroot()[0]
    assert (suite.get("tests"), suite.get("errors"), suite.get("skipped")) == ("2", "1", "1")
    invalid, not_run = suite.findall("testcase")
    error = invalid.find("error")
    assert error is not None and error.get("type") == "ScenarioError"
    assert (error.get("message") or "").startswith("invalid.yaml:3: steps[1].invok: unknown step 'invok'")
    assert invalid.get("line") == "3"
    skipped = not_run.find("skipped")
    assert skipped is not None and "not run" in (skipped.get("message") or "")


@pytest.mark.sandbox
def test_quiet_prints_only_failures_and_totals(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-q", "passes.yaml", "fails.yaml"]) == 1
    out = capsys.readouterr().out
    assert "passes.yaml" not in out and "[1/2]" not in out
    assert out.startswith("FAILED   fails.yaml: step 3 of 4, ")
    assert out.count("FAILED") == 1
    assert out.rstrip().splitlines()[-1].startswith("1 passed, 1 failed in ")


@pytest.mark.sandbox
def test_a_step_the_simulator_rejects_is_reported_with_its_line(chdir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    if "crash" not in STEPS:
        pytest.skip("the crash step is not in this build's scenario format yet")
    _write(chdir, "no_instance.yaml", """
        steps:
          - deploy: {handler: app.handler, code_dir: handlers/add_one}
          - crash: {instance: 2}
    """)
    assert main(["run", "no_instance.yaml"]) == 2
    out = capsys.readouterr().out
    assert "INVALID  no_instance.yaml: " in out
    assert "    no_instance.yaml:3: steps[1].crash.instance: function 'app' has 0 live instance(s)" in out


def test_an_error_of_another_kind_is_reported_at_its_step(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a scenario's own error (e.g. a service that breaks mid-run): the step it came from is named, read
    from the error's StepWhere, not from its message."""
    from dataclasses import dataclass

    from lambdasim._scenario import Node, RunContext, Step, step, step_where

    @step("boom")
    @dataclass(frozen=True)
    class Boom(Step):
        @classmethod
        def from_yaml(cls, node: Node) -> Boom:
            node.fields(())
            return cls(at=node)

        def run(self, ctx: RunContext) -> str:
            raise RuntimeError("the service went away")

    try:
        _write(chdir, "boom.yaml", "name: boom\nsteps:\n  - boom: {}\n")
        assert main(["run", "boom.yaml"]) == 1
        out = capsys.readouterr().out
        assert "boom.yaml:3: step 1 (boom): RuntimeError: the service went away" in out
        with pytest.raises(RuntimeError) as info:
            run_file(chdir / "boom.yaml", display="boom.yaml")
        where = step_where(info.value)
        assert where is not None and (where.file, where.line, where.step_index, where.kind) == (
            "boom.yaml", 3, 0, "boom")
        assert info.value.__notes__ == ["in boom.yaml:3: step 1 (boom)"]
    finally:
        del STEPS["boom"]


SEES_SERVICES = """
import os
def handler(event, context):
    return sorted(name for name in ("REDIS_URL", "MEMCACHED_URL") if name in os.environ)
"""


@pytest.mark.sandbox
@pytest.mark.services
def test_run_services_are_started_in_every_scenario(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(chdir, "handlers/sees/app.py", SEES_SERVICES)
    _write(chdir, "both.yaml", """
        simulator: {services: [redis]}
        steps:
          - deploy: {handler: app.handler, code_dir: handlers/sees}
          - invoke: {}
          - expect: {payload: [MEMCACHED_URL, REDIS_URL]}
    """)
    _write(chdir, "memcached_only.yaml", """
        steps:
          - deploy: {handler: app.handler, code_dir: handlers/sees}
          - invoke: {}
          - expect: {payload: [MEMCACHED_URL]}
    """)
    assert main(["run", "both.yaml", "memcached_only.yaml", "--services", "memcached=binary"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("2 passed, 0 failed in ")
    assert main(["run", "memcached_only.yaml"]) == 1  # without --services: no memcached
    capsys.readouterr()
    assert main(["run", "both.yaml", "--services", "postgres"]) == 2
    assert "--services: services: 'postgres' is not a service lambdasim runs" in capsys.readouterr().err


def test_run_services_add_to_the_scenarios_own_which_win() -> None:
    from lambdasim._scenario.suite import with_services

    seen: list[dict[str, Any]] = []

    def simulator(**settings: Any) -> Any:
        seen.append(settings)
        return settings

    factory = with_services({"redis": "binary", "aws": "auto"}, simulator)
    factory(routing="fresh")
    factory(services=["redis"])
    factory(services={"redis": "embedded", "memcached": {"provider": "binary"}})
    assert seen == [
        {"routing": "fresh", "services": {"redis": "binary", "aws": "auto"}},
        {"services": {"redis": {}, "aws": "auto"}},
        {"services": {"redis": "embedded", "aws": "auto", "memcached": {"provider": "binary"}}},
    ]
    assert with_services({}, simulator) is simulator


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.sandbox
def test_on_a_terminal_progress_uses_rich(chdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["run", "passes.yaml", "fails.yaml"]) == 1
    text = terminal.getvalue()
    assert "\x1b[" in text  # rich's colours
    assert "PASSED   passes.yaml (adds one): 3 steps" in text
    assert "fails.yaml:4: step 3 (expect): invocation 'first' payload" in text
    assert text.count("PASSED   passes.yaml") == 1 and text.count("fails.yaml:4:") == 1  # each result once here too
    assert "1 passed, 1 failed in " in text


@pytest.mark.sandbox
def test_piped_output_shows_each_result_once(chdir: Path) -> None:
    """As in CI, or `lambdasim run ... | tee log`: stdout is a pipe, not a terminal."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "lambdasim.cli", "run", "passes.yaml", "fails.yaml"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines if "passes.yaml" in line] == ["[1/2]"]
    assert [line.split(" ", 1)[0] for line in lines if line.lstrip().startswith("fails.yaml:4:")] == [""]
    assert sum("fails.yaml" in line for line in lines) == 2  # its result line and its failure under it
    assert "\x1b[" not in done.stdout
    assert lines[-1].startswith("1 passed, 1 failed in ")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: SCENARIO" in capsys.readouterr().err


def test_invoke_still_parses_after_the_new_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "--env", "NOEQUALS"]) == 2
    assert "--env 'NOEQUALS': write it as KEY=VALUE" in capsys.readouterr().err


# -- report and detect: delegated to lambdasim._report and lambdasim._detect -------------------


@pytest.mark.parametrize(("argv", "module"), [(["report", "t.json", "-o", "t.html"], "lambdasim._report"),
                                              (["detect", "app.handler"], "lambdasim._detect")])
def test_missing_modules_are_not_available_in_this_build(argv: list[str], module: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"lambdasim: error: lambdasim {argv[0]} is not available in this build (there is no {module})" in err


def test_a_module_without_the_function_is_not_available(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "lambdasim._report", types.ModuleType("lambdasim._report"))
    assert main(["report", "t.json"]) == 2
    assert "not available in this build (lambdasim._report has no write_report())" in capsys.readouterr().err


def test_report_delegates_to_write_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, str]] = []
    fake = types.ModuleType("lambdasim._report")
    fake.write_report = lambda trace, out: calls.append((trace, out))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lambdasim._report", fake)
    assert main(["report", "trace.json", "-o", "out.html"]) == 0
    assert main(["report", "dir/trace.json"]) == 0
    assert calls == [("trace.json", "out.html"), ("dir/trace.json", "dir/trace.html")]
    assert capsys.readouterr().out == "report written to out.html\nreport written to dir/trace.html\n"


def test_detect_parses_its_options_once_and_calls_detect(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[Any, ...]] = []
    fake = types.ModuleType("lambdasim._detect")

    def detect(handler: str, code_dir: str, events: list[Any], **options: Any) -> Any:
        seen.append((handler, code_dir, events, options))
        return types.SimpleNamespace(ok=False, exit_status=1, render=lambda: "the report")

    fake.detect = detect  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lambdasim._detect", fake)
    assert main(["detect", "app.handler", "--repeat", "4"]) == 1
    ((handler, code_dir, events, options),) = seen
    assert (handler, code_dir, events, options["sandbox"]) == ("app.handler", ".", [{}] * 4, "auto")
    assert capsys.readouterr().out == "the report\n"


@pytest.mark.sandbox
def test_report_of_a_scenario_trace(chdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report: Any = pytest.importorskip("lambdasim._report", reason="lambdasim._report is not in this build")
    if not callable(getattr(report, "write_report", None)):
        pytest.skip("lambdasim._report has no write_report() in this build")
    trace = run_file(chdir / "passes.yaml").trace
    (chdir / "trace.json").write_text(json.dumps(trace))
    assert main(["report", "trace.json", "-o", "trace.html"]) == 0
    assert capsys.readouterr().out == "report written to trace.html\n"
    assert "<svg" in (chdir / "trace.html").read_text()
    assert main(["report", "missing.json"]) == 2
    assert "missing.json" in capsys.readouterr().err


@pytest.mark.sandbox
def test_detect_finds_a_warm_only_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    detect: Any = pytest.importorskip("lambdasim._detect", reason="lambdasim._detect is not in this build")
    if not callable(getattr(detect, "detect", None)):
        pytest.skip("lambdasim._detect has no detect() in this build")
    _write(tmp_path, "code/app.py", """
        import os
        def handler(event, context):
            if os.path.exists("/tmp/seen"):
                return "warm"
            open("/tmp/seen", "w").close()
            return "cold"
    """)
    assert main(["detect", "app.handler", "--code-dir", str(tmp_path / "code"), "--event", "{}"]) == 1
    assert capsys.readouterr().out.strip()


# -- help texts ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["invoke", "chaos", "detect"])
def test_sandbox_help_names_every_sandbox(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "sandbox: auto, namespace or fakefs (default: auto)" in help_text


def test_the_sandbox_names_are_the_ones_create_sandbox_accepts() -> None:
    from lambdasim._errors import ConfigError
    from lambdasim._sandbox import SANDBOXES, create_sandbox, sandbox_names
    from pytest_lambdasim.options import SANDBOX_NAMES

    with pytest.raises(ConfigError) as error:
        create_sandbox("nope")
    assert "use 'auto', 'namespace' or 'fakefs'" in str(error.value)
    assert SANDBOXES == ("auto", "namespace", "fakefs")
    # The plugin may import nothing of lambdasim at load time, so it spells them; they must agree.
    assert SANDBOX_NAMES == sandbox_names() == "auto, namespace or fakefs"


def test_detect_help_is_plain_text_in_paragraphs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and ":class:" not in out
    assert "\n\nOn Lambda an invocation may land on a warm instance" in out
    assert "\n\nExit status: 0 when every invocation succeeds" in out  # its own paragraph, after the options
    assert ("1 when an outcome differs between warm and fresh (DIFFERENT), when a SnapStart function's restored "
            "instances share what Init made (CLONED), or when invocations return an error in both runs (FAILED); 2 "
            "on a usage error") in " ".join(out.split())
    assert "\n\nA SnapStart function (--snap-start" in out, "a paragraph of its own"
    assert "is run a third time on fresh instances that each run Init (SnapStart off)" in " ".join(out.split())
    assert "--repeat N" in out and "--services" in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("invoke", "run", "chaos", "detect", "report"):
        assert f"    {command} " in out
