"""The deployment package as Lambda sees it (issue 15, point 2): deploy-time limits, imports from
outside the package, layers and runtime (noted, or refused under ``package="strict"``)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lambdasim import Simulator
from lambdasim._errors import ConfigError, SettingError
from lambdasim._package import UNZIPPED_LIMIT
from tests.conftest import Code

BOTH_SANDBOXES = True


def _sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk space."""
    with open(path, "wb") as f:
        f.truncate(size)


# -- 1. deploy-time limits ------------------------------------------------------------------------

def test_code_over_the_unzipped_limit_is_refused_at_deploy(sim: Simulator, code: Code) -> None:
    root = code("def handler(e, c):\n    return 1\n")
    _sparse(root / "model.bin", UNZIPPED_LIMIT + 1)
    with pytest.raises(SettingError) as caught:
        sim.deploy("app.handler", root)
    assert caught.value.setting == "code_dir"
    assert caught.value.reason.startswith("Unzipped size must be smaller than 262144000 bytes")
    assert "app" not in sim.functions


def test_code_at_the_limit_deploys(sim: Simulator, code: Code) -> None:
    root = code("def handler(e, c):\n    return 1\n")
    _sparse(root / "model.bin", UNZIPPED_LIMIT - os.path.getsize(root / "app.py"))
    assert sim.deploy("app.handler", root).invoke({}).payload == 1


def test_code_and_layers_over_the_limit_are_refused(sim: Simulator, code: Code, tmp_path: Path) -> None:
    root = code("def handler(e, c):\n    return 1\n")
    _sparse(root / "half.bin", UNZIPPED_LIMIT // 2)
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    _sparse(layer / "python" / "half.bin", UNZIPPED_LIMIT // 2 + 10)
    with pytest.raises(SettingError) as caught:
        sim.deploy("app.handler", root, layers=[layer])
    assert caught.value.setting == "layers"
    assert caught.value.reason.startswith(
        "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes. "
        "The actual size is ")


def test_layers_alone_over_the_limit_are_refused(sim: Simulator, code: Code, tmp_path: Path) -> None:
    root = code("def handler(e, c):\n    return 1\n")
    layer = tmp_path / "big"
    layer.mkdir()
    _sparse(layer / "blob", UNZIPPED_LIMIT + 1)
    with pytest.raises(SettingError) as caught:
        sim.deploy("app.handler", root, layers=[layer])
    assert caught.value.reason == "Layers consume more than the available size of 262144000 bytes"


def test_more_than_five_layers_are_refused(sim: Simulator, code: Code, tmp_path: Path) -> None:
    root = code("def handler(e, c):\n    return 1\n")
    layers = []
    for i in range(6):
        (tmp_path / f"l{i}").mkdir()
        layers.append(tmp_path / f"l{i}")
    with pytest.raises(SettingError) as caught:
        sim.deploy("app.handler", root, layers=layers)
    assert caught.value.setting == "layers"
    assert "Member must have length less than or equal to 5" in caught.value.reason
    sim.deploy("app.handler", root, layers=layers[:5])  # five are allowed


def test_redeploy_over_the_limits_is_refused_and_keeps_the_version(sim: Simulator, code: Code,
                                                                   tmp_path: Path) -> None:
    fn = sim.deploy("app.handler", code("def handler(e, c):\n    return 1\n"))
    big = code("def handler(e, c):\n    return 2\n")
    _sparse(big / "model.bin", UNZIPPED_LIMIT + 1)
    with pytest.raises(SettingError, match="Unzipped size must be smaller than 262144000 bytes"):
        fn.redeploy(big)
    layers = []
    for i in range(6):
        (tmp_path / f"l{i}").mkdir()
        layers.append(tmp_path / f"l{i}")
    with pytest.raises(SettingError, match="less than or equal to 5"):
        fn.redeploy(layers=layers)
    assert fn.version == "1"
    assert fn.invoke({}).payload == 1


# -- 2. imports from outside the package ----------------------------------------------------------

OUTSIDE = """
import json, boto3, botocore
import yaml
import helper

def handler(event, context):
    if event.get("late"):
        import pytest
    return {"ok": True}
"""


def test_imports_from_outside_the_package_are_noted(make_sim: object, code: Code) -> None:
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", code(OUTSIDE, files={"helper.py": "X = 1\n"}))
    first = fn.invoke({})
    assert first.payload == {"ok": True}  # package="host": the host's packages still import
    assert first.outside_imports == ("yaml",)  # not json (stdlib), boto3/botocore (Lambda's), helper (package)
    late = fn.invoke({"late": True})
    assert late.outside_imports == ("pytest",)
    assert fn.invoke({"late": True}).outside_imports == ()  # imported once per instance
    details = [e.detail.get("outside_imports") for e in sim.trace if e.kind == "invoke"]
    assert details == [["yaml"], ["pytest"], None]


def test_strict_package_fails_an_outside_import_as_lambda_does(make_sim: object, code: Code) -> None:
    sim = make_sim(package="strict")  # type: ignore[operator]
    fn = sim.deploy("app.handler", code(OUTSIDE, files={"helper.py": "X = 1\n"}))
    inv = fn.invoke({})
    assert inv.error is not None
    assert inv.error["errorType"] == "Runtime.ImportModuleError"
    assert inv.error["errorMessage"] == "Unable to import module 'app': No module named 'yaml'"
    assert inv.outside_imports == ("yaml",)


def test_strict_package_keeps_the_runtime_the_package_and_layers(make_sim: object, code: Code,
                                                                  tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "fromlayer.py").write_text("Y = 2\n")
    sim = make_sim(package="strict")  # type: ignore[operator]
    source = """
import importlib.util, json, sqlite3, boto3, botocore, dateutil, jmespath, s3transfer, urllib3, six
import helper, fromlayer
PROBE = importlib.util.find_spec("yaml")
try:
    import yaml
except ImportError as e:
    MISSING = str(e)

def handler(event, context):
    boto3.client("s3", region_name="us-east-1")
    return {"x": helper.X + fromlayer.Y, "missing": MISSING, "probe": PROBE is None}
"""
    fn = sim.deploy("app.handler", code(source, files={"helper.py": "X = 1\n"}), layers=[layer],
                    timeout_s=30)  # boto3.client under fakefs takes seconds on a loaded machine
    inv = fn.invoke({})
    assert inv.error is None, inv.error
    assert inv.payload == {"x": 3, "missing": "No module named 'yaml'", "probe": True}
    assert inv.outside_imports == ("yaml",)


def test_a_module_lambdasim_loaded_already_is_noted_and_refused_too(make_sim: object, code: Code) -> None:
    # certifi is loaded in the instance before Init (by lambdasim's own imports), yet the function's
    # import of it is seen: on Lambda it is not there.
    source = "import certifi\n\ndef handler(e, c):\n    return 1\n"
    sim = make_sim()  # type: ignore[operator]
    assert sim.deploy("app.handler", code(source)).invoke({}).outside_imports == ("certifi",)
    strict = make_sim(package="strict")  # type: ignore[operator]
    inv = strict.deploy("app.handler", code(source)).invoke({})
    assert inv.error is not None and inv.error["errorMessage"] == (
        "Unable to import module 'app': No module named 'certifi'")


def test_an_unknown_package_view_is_refused() -> None:
    with pytest.raises(ConfigError, match="package='loose' is not a package view"):
        Simulator(package="loose")


PLUGIN_TEST = """
import pytest

def test_host(lambda_function):
    assert lambda_function("app.handler", "src").invoke({}).payload == "ok"

@pytest.mark.lambda_sim(package="strict")
def test_strict(lambda_function):
    inv = lambda_function("app.handler", "src").invoke({})
    assert inv.error["errorMessage"] == "Unable to import module 'app': No module named 'yaml'"

def test_clean(lambda_function, tmp_path):
    (tmp_path / "ok.py").write_text("import json\\ndef handler(e, c):\\n    return 1\\n")
    assert lambda_function("ok.handler", str(tmp_path)).invoke({}).payload == 1
"""


def test_the_plugin_lists_outside_imports_and_takes_the_strict_setting(pytester: pytest.Pytester) -> None:
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "app.py").write_text("import yaml\n\ndef handler(event, context):\n    return 'ok'\n")
    pytester.makepyfile(test_x=PLUGIN_TEST)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_sandbox = namespace\n")
    result = pytester.runpytest("--lambda-sim")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["lambdasim: app in test_x.py::test_host imported from outside its package: yaml "
                                 "\u2014 would fail on Lambda: No module named 'yaml' (add it to the package*"])
    assert "test_x.py::test_clean imported" not in result.stdout.str()
    # The option and the ini key make every test strict.
    result = pytester.runpytest("--lambda-sim", "--lambda-sim-package=strict")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_x.py::test_host*"])
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_sandbox = namespace\n"
                     "lambda_sim_package = strict\n")
    pytester.runpytest("--lambda-sim").assert_outcomes(passed=2, failed=1)


def test_the_cli_names_outside_imports_and_takes_strict_package(code: Code,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from lambdasim.cli import main

    src = code("import yaml\n\ndef handler(event, context):\n    return 'ok'\n")
    assert main(["invoke", "app.handler", "--code-dir", str(src), "-q", "--sandbox", "namespace"]) == 0
    out, err = capsys.readouterr()
    assert out == '"ok"\n'
    assert ("lambdasim: app imported from outside its package: yaml \u2014 would fail on Lambda: "
            "No module named 'yaml' (--strict-package makes it fail here too)") in err
    assert main(["invoke", "app.handler", "--code-dir", str(src), "-q", "--sandbox", "namespace",
                 "--strict-package"]) == 1
    out, _ = capsys.readouterr()
    assert json.loads(out)["errorMessage"] == "Unable to import module 'app': No module named 'yaml'"


# -- 3. building requirements.txt ----------------------------------------------------------------

BUILT = """
import text_unidecode

def handler(event, context):
    try:
        import yaml  # on the host, not in the package
    except ImportError as e:
        host = str(e)
    return {"text": text_unidecode.unidecode("caf\\u00e9"), "file": text_unidecode.__file__, "host": host}
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "lambdasim" / "builds"


def test_requirements_are_built_for_lambda_and_mounted_with_the_code(make_sim: object, code: Code,
                                                                      cache: Path) -> None:
    pytest.importorskip("pip")
    assert importlib.util.find_spec("text_unidecode") is None  # not on the host: only the build has it
    src = code(BUILT, files={"requirements.txt": "text-unidecode==1.3\n"})
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", src)
    inv = fn.invoke({})
    assert inv.error is None, inv.error
    assert inv.payload["text"] == "cafe"
    assert inv.payload["file"].startswith("/opt/python/text_unidecode/")
    # With a build the view is strict: the host's other packages are not there, as on Lambda.
    assert inv.payload["host"] == "No module named 'yaml'"
    assert inv.outside_imports == ("yaml",)
    [built] = os.listdir(cache)
    assert (cache / built / "python" / "text_unidecode-1.3.dist-info").is_dir()
    # Cached by content: a second function with the same requirements reuses the build, /var/task is untouched.
    stamp = (cache / built).stat().st_mtime_ns
    sim.deploy("app.handler", code(BUILT, files={"requirements.txt": "text-unidecode==1.3\n"}), name="again")
    assert os.listdir(cache) == [built] and (cache / built).stat().st_mtime_ns == stamp
    assert sorted(os.listdir(src)) == ["app.py", "requirements.txt"]


def test_a_requirement_pip_cannot_build_is_refused_at_deploy(sim: Simulator, code: Code, cache: Path) -> None:
    src = code(BUILT, files={"requirements.txt": "no-such-package-lambdasim-test==0.0.1\n"})
    with pytest.raises(SettingError) as caught:
        sim.deploy("app.handler", src)
    assert caught.value.setting == "code_dir"
    assert "--platform manylinux2014_x86_64" in caught.value.reason
    assert "no-such-package-lambdasim-test" in caught.value.reason
    assert not [p for p in os.listdir(cache) if not p.startswith(".")]


def _mac_wheel(requirement: str, platform: str, into: Path, tmp_path: Path) -> None:
    """Unpack PyPI's macOS wheel of ``requirement`` into the package ``into``, as a build on a Mac leaves it."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(wheels), "--platform",
                    platform, "--implementation", "cp", "--python-version", "3.11", "--only-binary=:all:",
                    requirement, "--quiet", "--disable-pip-version-check"], check=True, capture_output=True)
    [wheel] = wheels.iterdir()
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into)
    shutil.rmtree(wheels)


def test_a_macos_extension_module_is_not_found_as_on_lambda(make_sim: object, code: Code, cache: Path,
                                                            tmp_path: Path) -> None:
    # ujson.cpython-311-darwin.so: not a suffix Linux's Python loads, so the import looks on and fails.
    src = code("import ujson\n\ndef handler(e, c):\n    return ujson.dumps(e)\n",
               files={"requirements.txt": "text-unidecode==1.3\n"})
    _mac_wheel("ujson==5.10.0", "macosx_11_0_arm64", src, tmp_path)
    assert [p.name for p in src.glob("ujson*.so")] == ["ujson.cpython-311-darwin.so"]
    inv = make_sim().deploy("app.handler", src).invoke({})  # type: ignore[operator]
    assert inv.error is not None
    assert inv.error["errorType"] == "Runtime.ImportModuleError"
    assert inv.error["errorMessage"] == "Unable to import module 'app': No module named 'ujson'"


def test_a_macos_abi3_extension_fails_to_load_as_on_lambda(make_sim: object, sandbox_kind: str, code: Code,
                                                           tmp_path: Path) -> None:
    # bcrypt/_bcrypt.abi3.so (Mach-O): a suffix Linux loads, so the loader itself refuses it.
    src = code("import bcrypt\n\ndef handler(e, c):\n    return 1\n")
    _mac_wheel("bcrypt==4.2.0", "macosx_10_12_universal2", src, tmp_path)
    inv = make_sim().deploy("app.handler", src).invoke({})  # type: ignore[operator]
    assert inv.error is not None
    assert inv.error["errorType"] == "Runtime.ImportModuleError"
    # The fakefs sandbox's loader opens the host's file: its path is the host's (README: sandboxes table).
    where = "/var/task" if sandbox_kind == "namespace" else str(src)
    assert inv.error["errorMessage"] == (
        f"Unable to import module 'app': {where}/bcrypt/_bcrypt.abi3.so: invalid ELF header")
