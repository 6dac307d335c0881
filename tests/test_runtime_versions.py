"""``Runtime: python3.X``: a function runs on the Python its runtime names (lambdasim._interpreters).

Where this machine has that Python (pyenv's, uv's, PATH), the namespace sandbox runs the function on it,
at /var/lang as on Lambda, with the AWS SDK built for it; where not, on lambdasim's Python with a
RuntimeVersionWarning, or refused under interpreter="strict". The real-interpreter tests run on the
machine's pyenv Pythons (CI requires them: LAMBDASIM_REQUIRE_INTERPRETERS=1)."""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path

import pytest

from lambdasim import RuntimeVersionWarning, Simulator, TemplateWarning
from lambdasim._errors import ConfigError, SettingError
from lambdasim._interpreters import find_python
from lambdasim._model import PYTHON_VERSION
from tests.conftest import Code, simulator_or_skip

OTHER = "3.9" if PYTHON_VERSION != "3.9" else "3.10"
REQUIRE = os.environ.get("LAMBDASIM_REQUIRE_INTERPRETERS") == "1"
VERSIONS = [v for v in ("3.9", "3.10", "3.11", "3.12", "3.13") if v != PYTHON_VERSION]


def caught(action: object) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        action()  # type: ignore[operator]
    return [str(w.message) for w in seen if issubclass(w.category, RuntimeVersionWarning)]


def fake_python(root: Path, relative: str) -> str:
    path = root / relative
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def no_pythons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine with no other Python: pyenv's and uv's roots empty, nothing on PATH."""
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path


def python_or_skip(version: str) -> str:
    found = find_python(version)
    if found is None:
        if REQUIRE:
            pytest.fail(f"Python {version} is not installed (pyenv, uv or PATH), and LAMBDASIM_REQUIRE_INTERPRETERS=1")
        pytest.skip(f"no Python {version} installed here (pyenv, uv or PATH)")
    return found


def test_find_python_looks_at_pyenv_and_uv(no_pythons: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_python("3.9") is None
    uv = fake_python(no_pythons, "uv/cpython-3.13.1-linux-x86_64-gnu/bin/python3.13")
    assert find_python("3.13") == uv
    pyenv = fake_python(no_pythons, "pyenv/versions/3.9.18/bin/python3.9")
    assert find_python("3.9") == pyenv
    shim = fake_python(no_pythons, "bin/shims/python3.12")  # a pyenv shim may point at nothing: not taken
    monkeypatch.setenv("PATH", os.path.dirname(shim))
    assert find_python("3.12") is None


def test_a_python_not_installed_warns_once_at_deploy_and_runs_on_lambdasims(sim: Simulator, code: Code,
                                                                           no_pythons: Path) -> None:
    folder = code("import sys\ndef handler(e, c):\n    return '%d.%d' % sys.version_info[:2]\n")
    messages = caught(lambda: sim.deploy("app.handler", folder, "old", runtime=f"python{OTHER}"))
    assert messages == [
        f"function 'old': Runtime python{OTHER} runs on this machine's Python {PYTHON_VERSION}, the one that runs "
        f"lambdasim; Python {OTHER} is not installed here (install it with `uv python install {OTHER}` or "
        f"`pyenv install {OTHER}`, or put python{OTHER} on PATH). Code that depends on the version (syntax, the "
        f"standard library, compiled packages) behaves as on Python {PYTHON_VERSION}."]
    inv = sim.functions["old"].invoke({})
    assert inv.payload == PYTHON_VERSION  # what the warning says
    assert f"INIT_START Runtime Version: python:{PYTHON_VERSION}." in inv.logs
    # Its own Python's runtime, a custom runtime, and a redeploy that keeps the runtime: no warning.
    assert caught(lambda: sim.deploy("app.handler", folder, "same", runtime=f"python{PYTHON_VERSION}")) == []
    assert caught(lambda: sim.functions["old"].redeploy(memory_mb=256)) == []
    assert len(caught(lambda: sim.functions["same"].redeploy(runtime=f"python{OTHER}"))) == 1


def test_strict_refuses_a_python_that_is_not_installed_and_says_how_to_install_it(code: Code,
                                                                                 no_pythons: Path) -> None:
    with simulator_or_skip(interpreter="strict") as sim:
        with pytest.raises(SettingError) as refused:
            sim.deploy("app.handler", code("def handler(e, c):\n    return 1\n"), "old", runtime=f"python{OTHER}")
        assert refused.value.setting == "runtime"
        assert str(refused.value) == (
            f"Function 'old': Runtime python{OTHER} cannot run on Python {OTHER} here: Python {OTHER} is not "
            f"installed here (install it with `uv python install {OTHER}` or `pyenv install {OTHER}`, or put "
            f"python{OTHER} on PATH); interpreter='strict' refuses to run it on lambdasim's Python {PYTHON_VERSION}.")
        assert "old" not in sim.functions
        # lambdasim's own Python is always there.
        assert sim.deploy("app.handler", code("def handler(e, c):\n    return 1\n"), "own").invoke({}).payload == 1
    with pytest.raises(ConfigError, match="interpreter='exact' is not a mode lambdasim knows; use 'fallback'"):
        Simulator(interpreter="exact")


def test_it_is_a_template_warning_the_plugin_lists(sim: Simulator, code: Code, no_pythons: Path) -> None:
    assert issubclass(RuntimeVersionWarning, TemplateWarning)
    with pytest.warns(RuntimeVersionWarning, match=f"Runtime python{OTHER} runs on this machine's Python") as seen:
        sim.deploy("app.handler", code("def handler(e, c):\n    return 1\n"), runtime=f"python{OTHER}")
    assert seen[0].filename == __file__  # attributed to the caller, not to lambdasim


# -- on the machine's other Pythons ------------------------------------------------------------

REPORTS = """
import json, os, sys
import boto3, botocore

def handler(event, context):
    return {"version": "%d.%d" % sys.version_info[:2], "executable": sys.executable,
            "stdlib": os.__file__, "env": os.environ["AWS_EXECUTION_ENV"], "boto3": boto3.__file__,
            "botocore": botocore.__version__, "path": sys.path[:4],
            "host_packages": [p for p in sys.path if "site-packages" in p and "%d.%d" % sys.version_info[:2] not in p]}
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_a_function_runs_on_the_python_its_runtime_names(make_sim: object, code: Code, version: str) -> None:
    python_or_skip(version)
    sim = make_sim()  # type: ignore[operator]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeVersionWarning)  # none: it runs on that Python
        fn = sim.deploy("app.handler", code(REPORTS), runtime=f"python{version}")
    assert fn.config.interpreter == find_python(version)
    inv = fn.invoke({})
    assert inv.error is None, inv.logs
    got = inv.payload
    assert got["version"] == version
    # Where Lambda keeps Python, with its standard library there too.
    assert got["executable"] == f"/var/lang/bin/python{version}"
    assert got["stdlib"] == f"/var/lang/lib/python{version}/os.py"
    assert got["env"] == f"AWS_Lambda_python{version}"
    # The SDK Lambda's runtime bundles, built for that Python; the package first, as on Lambda.
    assert got["boto3"].startswith("/var/runtime/sdk/boto3/")
    assert got["path"][:3] == ["/var/task", f"/opt/python/lib/python{version}/site-packages", "/opt/python"]
    assert got["host_packages"] == []  # lambdasim's Python's packages are not on this one's path
    assert f"INIT_START Runtime Version: python:{version}." in inv.logs
    # Warm: the same process serves the next invocation.
    assert fn.invoke({}).instance_id == inv.instance_id


MATCH = """
def handler(event, context):
    match event:
        case {"n": n}:
            return n
    return None
"""


def test_match_under_python39_is_a_syntax_error_at_init_as_on_lambda(make_sim: object, code: Code) -> None:
    python_or_skip("3.9")
    sim = make_sim()  # type: ignore[operator]
    inv = sim.deploy("app.handler", code(MATCH), runtime="python3.9").invoke({"n": 1})
    assert inv.error is not None
    assert inv.error["errorType"] == "Runtime.UserCodeSyntaxError"
    assert inv.error["errorMessage"].startswith("Syntax error in module 'app': invalid syntax (app.py, line 3)")
    assert "INIT_REPORT" in inv.logs or "Runtime.UserCodeSyntaxError" in inv.logs


def test_match_under_python310_runs(make_sim: object, code: Code) -> None:
    python_or_skip("3.10")
    sim = make_sim()  # type: ignore[operator]
    inv = sim.deploy("app.handler", code(MATCH), runtime="python3.10").invoke({"n": 7})
    assert inv.error is None, inv.logs
    assert inv.payload == 7


def test_errors_and_logs_on_another_python_are_lambdas(make_sim: object, code: Code) -> None:
    python_or_skip(OTHER)
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", code("""
        import logging
        logging.getLogger().setLevel(logging.INFO)

        def handler(event, context):
            logging.info("about %s", event["id"])
            print("printed", context.aws_request_id)
            raise KeyError("missing")
    """), runtime=f"python{OTHER}")
    inv = fn.invoke({"id": 5})
    assert inv.error is not None and inv.error["errorType"] == "KeyError"
    assert inv.error["errorMessage"] == "'missing'"
    assert "[INFO]\t" in inv.logs and f"\t{inv.request_id}\tabout 5" in inv.logs
    assert f"printed {inv.request_id}" in inv.logs
    assert f"REPORT RequestId: {inv.request_id}" in inv.logs


def test_the_requirements_are_built_for_the_runtimes_python(make_sim: object, code: Code) -> None:
    # simplejson's C speedups are built per Python: a build for lambdasim's Python would not load on 3.9.
    python_or_skip("3.9")
    pytest.importorskip("pip")
    sim = make_sim()  # type: ignore[operator]
    src = code("""
        import simplejson._speedups as speedups

        def handler(event, context):
            return speedups.__file__
    """, files={"requirements.txt": "simplejson==3.19.3\n"})
    inv = sim.deploy("app.handler", src, runtime="python3.9").invoke({})
    assert inv.error is None, inv.logs
    assert inv.payload.startswith("/opt/python/simplejson/_speedups.cpython-39-x86_64-linux-gnu")


def test_the_fakefs_sandbox_runs_it_on_lambdasims_python_and_says_why(code: Code) -> None:
    found = python_or_skip(OTHER)
    with simulator_or_skip(sandbox="fakefs") as sim:
        folder = code("import sys\ndef handler(e, c):\n    return '%d.%d' % sys.version_info[:2]\n")
        [message] = caught(lambda: sim.deploy("app.handler", folder, "fn", runtime=f"python{OTHER}"))
        assert (f"Python {OTHER} is installed ({found}), but the fakefs sandbox runs every function on lambdasim's "
                "own Python (the namespace sandbox runs it on its own)") in message
        assert sim.functions["fn"].invoke({}).payload == PYTHON_VERSION
    with simulator_or_skip(sandbox="fakefs", interpreter="strict") as sim, pytest.raises(SettingError):
        sim.deploy("app.handler", folder, "fn", runtime=f"python{OTHER}")


def test_a_redeploy_moves_a_function_to_another_python(make_sim: object, code: Code) -> None:
    python_or_skip(OTHER)
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", code("import sys\ndef handler(e, c):\n    return '%d.%d' % sys.version_info[:2]\n"))
    assert fn.invoke({}).payload == PYTHON_VERSION
    fn.redeploy(runtime=f"python{OTHER}")
    assert fn.invoke({}).payload == OTHER
    fn.redeploy(runtime=f"python{PYTHON_VERSION}")
    assert fn.invoke({}).payload == PYTHON_VERSION and fn.config.interpreter == ""


def test_the_template_runtime_is_the_python(make_sim: object, tmp_path: Path) -> None:
    python_or_skip("3.9")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("import sys\ndef handler(e, c):\n    return list(sys.version_info[:2])\n")
    (tmp_path / "template.yaml").write_text(json.dumps({
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {
            "CodeUri": "src/", "Handler": "app.handler", "Runtime": "python3.9"}}}}))
    sim = make_sim()  # type: ignore[operator]
    assert sim.deploy_from_template(tmp_path / "template.yaml", "Fn").invoke({}).payload == [3, 9]


# -- the front ends' strict setting -----------------------------------------------------------

def test_the_plugin_spells_the_modes_as_lambdasim_does() -> None:
    from lambdasim._interpreters import INTERPRETER_MODES
    from pytest_lambdasim.options import INTERPRETER_MODES as PLUGIN_MODES

    assert PLUGIN_MODES == INTERPRETER_MODES


def test_the_plugin_takes_strict_from_the_marker_the_option_and_ini(pytester: pytest.Pytester,
                                                                     no_pythons: Path) -> None:
    pytester.makepyfile(app="def handler(event, context):\n    return 1\n", test_it=f"""
        import pytest

        @pytest.mark.lambda_sim(runtime="python{OTHER}", interpreter="strict")
        def test_marker(lambda_function):
            lambda_function("app.handler", ".")

        @pytest.mark.lambda_sim(runtime="python{OTHER}")
        def test_setting(lambda_function):
            assert lambda_function("app.handler", ".").invoke({{}}).payload == 1
    """)
    result = pytester.runpytest("--lambda-sim", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*Runtime python{OTHER} cannot run on Python {OTHER} here*interpreter='strict'*"])
    pytester.runpytest("--lambda-sim", "--lambda-sim-interpreter=strict", "-p", "no:cacheprovider"
                       ).assert_outcomes(failed=2)
    pytester.makeini("[pytest]\nlambda_sim_interpreter = strict\n")
    pytester.runpytest("--lambda-sim", "-p", "no:cacheprovider").assert_outcomes(failed=2)


def test_the_cli_and_scenarios_take_strict(code: Code, no_pythons: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lambdasim import ScenarioError, run_file
    from lambdasim.cli import main

    folder = code("def handler(event, context):\n    return 1\n")
    argv = ["invoke", "app.handler", "--code-dir", str(folder), "--runtime", f"python{OTHER}"]
    assert main(argv) == 0
    assert main([*argv, "--strict-interpreter"]) != 0
    assert f"Runtime python{OTHER} cannot run on Python {OTHER} here" in capsys.readouterr().err
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: s\nsimulator: {{interpreter: strict}}\nsteps:\n"
                        f"  - deploy: {{name: fn, handler: app.handler, code_dir: {folder}, runtime: python{OTHER}}}\n")
    with pytest.raises(ScenarioError, match=f"s.yaml:4: steps\\[0\\].deploy: Function 'fn': Runtime python{OTHER} "
                                            f"cannot run on Python {OTHER} here"):
        run_file(scenario)


def test_without_that_python_the_requirements_are_built_for_the_one_it_runs_on(make_sim: object, code: Code,
                                                                               no_pythons: Path) -> None:
    # A compiled wheel built for the template's Python would not load on lambdasim's, where it runs.
    pytest.importorskip("pip")
    monkeypatch_path = os.environ["PATH"]
    os.environ["PATH"] = os.defpath  # pip and its build need a PATH; no python3.9 is on it here
    try:
        sim = make_sim()  # type: ignore[operator]
        src = code("""
            import simplejson._speedups as speedups

            def handler(event, context):
                return speedups.__file__
        """, files={"requirements.txt": "simplejson==3.19.3\n"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeVersionWarning)
            inv = sim.deploy("app.handler", src, runtime=f"python{OTHER}").invoke({})
    finally:
        os.environ["PATH"] = monkeypatch_path
    assert inv.error is None, inv.logs
    tag = PYTHON_VERSION.replace(".", "")
    assert inv.payload.startswith(f"/opt/python/simplejson/_speedups.cpython-{tag}-x86_64-linux-gnu")
