"""The README's and the examples' code blocks run as written.

Every ``python`` and ``sh`` block of README.md and examples/**/README.md is claimed by one
test below (or by tests/test_examples.py for the examples' snippets), which runs it verbatim;
where a block needs files, the test makes them as the README tells the reader to (from the
README's own blocks). A new block that no test runs fails ``test_every_block_is_run``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdasim import SandboxUnavailable, ServiceError
from tests.conftest import REQUIRE_SANDBOX

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
REQUIRE_SERVICES = os.environ.get("LAMBDASIM_REQUIRE_SERVICES") == "1"


@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository
    line: int
    lang: str
    text: str


def _blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(str(path.relative_to(REPO)), line, match.group(1), match.group(2)))
    return found


def _docs() -> list[Path]:
    return [README, *sorted((REPO / "examples").rglob("README.md"))]


def _block(path: Path, contains: str, lang: str = "python") -> str:
    return _find(path, contains, lang).text


def _find(path: Path, contains: str, lang: str = "python") -> Block:
    (block,) = [b for b in _blocks(path) if b.lang == lang and contains in b.text]
    return block


def _code(block: Block, prefix: str = "") -> Any:
    """``block`` compiled with the README's line numbers, so a failure points at its line there."""
    # The block's text starts on the line after its ``` (block.line); a prefix takes the ``` line.
    return compile("\n" * (block.line - 1) + prefix + "\n" + block.text, str(REPO / block.file), "exec")


# Which test runs each block: (file, a text only that block holds) -> test.
CLAIMS: dict[tuple[str, str], str] = {
    ("README.md", 'cache = "/tmp/cache.json"'): "test_readme_use_block",
    ("README.md", 'with Simulator(sandbox="auto"'): "test_readme_use_block",
    ("README.md", "def test_cache_is_per_instance"): "test_readme_example_test_passes",
    ("README.md", 'runtime="provided.al2023"'): "test_readme_custom_runtime_block",
    ("README.md", 'runtime="python3.12", snap_start=True'): "test_readme_execution_model_block",
    ("README.md", 'capacity_provider="fleet", max_concurrency=2'): "test_readme_execution_model_block",
    ("README.md", 'name="isolated", tenant_isolation=True'): "test_readme_execution_model_block",
    ("README.md", "provisioned_concurrency=2)"): "test_readme_execution_model_block",
    ("README.md", "from lambdasim import events"): "test_readme_events_block",
    ("README.md", "lambdasim.shutdown()  # waits"): "test_readme_shutdown_block",
    ("README.md", "lambdasim serve --template examples/serve-shop"): "test_readme_serve_blocks",
    ("README.md", "-X POST localhost:3000/orders"): "test_readme_serve_blocks",
    ("README.md", "def test_an_order_is_priced_by_the_other_function"): "test_readme_serve_app_block",
    ("README.md", "def test_an_order_can_be_created_and_read_back"): "test_readme_sam_app_block",
    ("README.md", "import boto3, redis"): "test_readme_services_block",
    ("README.md", 'with Simulator(services=["aws", "redis", "memcached"])'): "test_readme_services_block",
    ("README.md", 'cache = "/tmp/seen.json"'): "test_readme_pytest_example",
    ("README.md", "def test_orders_survive_scale_down_but_tmp_does_not"): "test_readme_pytest_example",
    ("README.md", "pip install -e . && lambdasim invoke"): "test_readme_set_up_commands",
    ("README.md", "pip install -e '.[test]' && python -m pytest"): "test_readme_set_up_commands",
    ("README.md", "lambdasim invoke app.main.handler --code-dir src"): "test_readme_shell_invoke",
    ("README.md", "lambdasim invoke --template template.yaml"): "test_readme_shell_invoke_template",
    ("README.md", "lambdasim run scenarios/*.yaml --junit-xml"): "test_readme_shell_chaos_section",
    ("examples/pregenerated_cache/README.md", "build_cache.py --check"): "test_examples_shell_blocks",
    ("examples/pregenerated_cache/README.md", "from lambdasim import Simulator"): "test_examples.py",
    ("examples/tmp_cache/README.md", "from lambdasim import Simulator"): "test_examples.py",
    ("examples/distributed_cache/README.md", "from lambdasim import Simulator"): "test_examples.py",
    ("examples/s3_app_data/README.md", "from lambdasim import Simulator"): "test_examples.py",
    ("examples/shell-curl/README.md", "from lambdasim import Simulator"): "test_examples.py",
    ("examples/php-bootstrap/README.md", "from lambdasim import Simulator"): "test_examples.py",
    ("examples/extension-tmp/README.md", "from lambdasim import Simulator"): "test_examples.py",
}


def test_every_block_is_run() -> None:
    unclaimed, claimed = [], set()
    for path in _docs():
        for block in _blocks(path):
            if block.lang not in ("python", "sh"):
                continue  # console output and tables of text are checked by the tests that make them
            owners = [key for key in CLAIMS if key[0] == block.file and key[1] in block.text]
            if not owners:
                unclaimed.append(f"{block.file}:{block.line} ({block.lang})")
            claimed.update(owners)
    assert not unclaimed, f"blocks no test runs (add each to CLAIMS with the test that runs it): {unclaimed}"
    assert set(CLAIMS) == claimed, f"claims that match no block: {set(CLAIMS) - claimed}"
    here = globals()
    for test in set(CLAIMS.values()):
        if test == "test_examples.py":
            assert "def test_readme_happy_path" in (REPO / "tests" / "test_examples.py").read_text()
        else:
            assert callable(here.get(test)), test


def _run_snippet(code: Any, where: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> dict[str, Any]:
    monkeypatch.chdir(where)
    # The snippets make their code folders with tempfile.mkdtemp(), as a reader would: under the test's
    # own folder, so that no run leaves them in /tmp.
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    namespace: dict[str, Any] = {"__name__": name}
    try:
        exec(code, namespace)
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"sandbox unavailable here: {e}")
    except ServiceError as e:
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"a service of the snippet is not available here: {e}")
    return namespace


def _use_project(root: Path) -> Path:
    """src/app/main.py as the README shows it, and a second version in src-v2."""
    handler = _block(README, 'cache = "/tmp/cache.json"')
    for folder, text in (("src", handler), ("src-v2", handler + "\n# version 2\n")):
        (root / folder / "app").mkdir(parents=True)
        (root / folder / "app" / "main.py").write_text(text)
    return root


@pytest.mark.sandbox
def test_readme_use_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_snippet(_code(_find(README, 'with Simulator(sandbox="auto"')), _use_project(tmp_path), monkeypatch, "use")


@pytest.mark.sandbox
def test_readme_custom_runtime_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("curl") is None:
        if os.environ.get("LAMBDASIM_REQUIRE_RUNTIMES") == "1":
            pytest.fail("curl is required here (LAMBDASIM_REQUIRE_RUNTIMES=1)")
        pytest.skip("the snippet's bootstrap uses curl, which is not installed")
    _run_snippet(_code(_find(README, 'runtime="provided.al2023"')), tmp_path, monkeypatch, "custom")


@pytest.mark.sandbox
@pytest.mark.parametrize("marker", ['runtime="python3.12", snap_start=True',
                                    'capacity_provider="fleet", max_concurrency=2',
                                    'name="isolated", tenant_isolation=True', "provisioned_concurrency=2)"],
                         ids=["snapstart", "managed", "tenants", "provisioned"])
def test_readme_execution_model_block(marker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_snippet(_code(_find(README, marker)), tmp_path, monkeypatch, "models")


def test_readme_events_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_snippet(_code(_find(README, "from lambdasim import events")), tmp_path, monkeypatch, "events")


@pytest.mark.sandbox
def test_readme_shutdown_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_leaks import _wait_gone

    namespace = _run_snippet(_code(_find(README, "lambdasim.shutdown()  # waits")), tmp_path, monkeypatch, "shutdown")
    helper = namespace["sim"]._sandbox._helper._proc.pid
    assert _wait_gone({helper}, 5.0) == set(), "the zygote the closed Simulator handed back is stopped"


@pytest.mark.sandbox
@pytest.mark.services
def test_readme_sam_app_block(pytester: pytest.Pytester) -> None:
    """The README's test of examples/sam-orders passes under ``pytest --lambda-sim`` with nothing else."""
    block = _block(README, "def test_an_order_can_be_created_and_read_back")
    example = REPO / "examples" / "sam-orders"
    assert (example / "tests" / "test_orders.py").read_text() == block, "the example's test is the README's"
    shutil.copytree(example, pytester.path, dirs_exist_ok=True)
    # The dependency is built from PyPI (once: the build is cached by content).
    pytester.runpytest_subprocess("--lambda-sim", "-p", "no:cacheprovider", "tests").assert_outcomes(passed=2)


@pytest.mark.sandbox
@pytest.mark.services
def test_readme_serve_blocks() -> None:
    """``lambdasim serve`` as the README starts it, then the README's curl commands against it, verbatim."""
    serve = _block(README, "lambdasim serve --template examples/serve-shop", "sh")
    calls = _block(README, "-X POST localhost:3000/orders", "sh")
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(["bash", "-c", serve], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("ready"):
                break
        assert "Invoke API  http://127.0.0.1:3000" in "".join(banner), banner
        done = _shell(calls, REPO)
        assert done.returncode == 0, done.stderr
        order, priced = done.stdout.splitlines()
        assert json.loads(order)["total_cents"] == 2500
        assert json.loads(priced) == {"item": "pen", "total_cents": 597}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


@pytest.mark.sandbox
@pytest.mark.services
def test_readme_serve_app_block(pytester: pytest.Pytester) -> None:
    """The README's test of examples/serve-shop passes under ``pytest --lambda-sim`` with nothing else."""
    block = _block(README, "def test_an_order_is_priced_by_the_other_function")
    example = REPO / "examples" / "serve-shop"
    assert (example / "tests" / "test_shop.py").read_text() == block, "the example's test is the README's"
    shutil.copytree(example, pytester.path, dirs_exist_ok=True)
    pytester.runpytest_subprocess("--lambda-sim", "-p", "no:cacheprovider", "tests").assert_outcomes(passed=1)


@pytest.mark.sandbox
def test_readme_example_test_passes(tmp_path: Path) -> None:
    block = _find(README, "def test_cache_is_per_instance")
    namespace: dict[str, Any] = {}
    exec(_code(block, "from lambdasim import Simulator"), namespace)
    namespace["test_cache_is_per_instance"](tmp_path)


@pytest.mark.sandbox
@pytest.mark.services
def test_readme_services_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(_block(README, "import boto3, redis"))
    block = _find(README, 'with Simulator(services=["aws", "redis", "memcached"])')
    _run_snippet(_code(block, "from lambdasim import Simulator"), tmp_path, monkeypatch, "services")


def test_readme_set_up_commands() -> None:
    """Both set-up commands are the README's first two blocks, and CI runs both verbatim."""
    commands = re.findall(r"```sh\n(.*?)\n```", README.read_text().split("## Use")[0], flags=re.DOTALL)
    assert commands == ["pip install -e . && lambdasim invoke", "pip install -e '.[test]' && python -m pytest"]
    ci = (REPO / ".ci" / "run").read_text()
    for command in commands:
        assert "\n" + command + "\n" in ci, f".ci/run runs the README's command {command!r}"


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.sandbox
@pytest.mark.services
def test_readme_shell_invoke(tmp_path: Path) -> None:
    """Each ``lambdasim invoke`` line of the README, in a folder laid out as it says."""
    _use_project(tmp_path)
    (tmp_path / "event.json").write_text(json.dumps({"order": 7}))
    lines = [line for line in _block(README, "lambdasim invoke app.main.handler", "sh").splitlines() if line]
    assert len(lines) >= 3
    for line in lines:
        done = _shell(line, tmp_path)
        if done.returncode != 0 and not REQUIRE_SANDBOX and "sandbox" in done.stderr.lower():
            pytest.skip(f"sandbox unavailable here: {done.stderr.strip()}")
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        assert "seen_here" in json.loads(done.stdout), line
        assert "START RequestId:" in done.stderr and "REPORT RequestId:" in done.stderr


SAM_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  OrdersFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.main.handler
      CodeUri: src/
      Runtime: python3.11
      Environment:
        Variables:
          TABLE: orders
"""


@pytest.mark.sandbox
def test_readme_shell_invoke_template(tmp_path: Path) -> None:
    """The README's template lines, with a template.yaml as it describes (OrdersFunction: app.main.handler in src/)."""
    _use_project(tmp_path)
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE)
    (tmp_path / "event.json").write_text(json.dumps({"order": 7}))
    lines = [line for line in _block(README, "lambdasim invoke --template", "sh").splitlines() if line]
    tables = []
    for line in lines:
        done = _shell(line, tmp_path)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        tables.append(json.loads(done.stdout)["table"])
    assert tables == ["orders", "orders-test"]  # the template's variable, then --env's


@pytest.mark.sandbox
@pytest.mark.services
def test_readme_shell_chaos_section(tmp_path: Path) -> None:
    """run from a copy of the repository's scenarios; chaos, detect and report in the Use project."""
    shutil.copytree(REPO / "scenarios", tmp_path / "repo" / "scenarios")
    project = _use_project(tmp_path / "project")
    (project / "events.json").write_text(json.dumps([{"order": 1}, {"order": 2}, {"order": 3}]))
    run, chaos, detect, report = [line for line in _block(README, "lambdasim run scenarios", "sh").splitlines()
                                  if line]
    expected = [(run, tmp_path / "repo", 0), (chaos, project, 0), (detect, project, 1), (report, project, 0)]
    for line, cwd, status in expected:
        done = _shell(line, cwd)
        assert done.returncode == status, f"{line}\n{done.stdout}\n{done.stderr}"
    assert ET.parse(tmp_path / "repo" / "scenarios.xml").getroot().get("failures") == "0"
    assert "<svg" in (project / "report.html").read_text()
    assert "DIFFERENT" in _shell(detect.split("#")[0].replace("--json trace.json", ""), project).stdout


def test_examples_shell_blocks(tmp_path: Path) -> None:
    """The pre-generated cache's build commands, verbatim, in a copy of the repository's examples."""
    shutil.copytree(REPO / "examples" / "pregenerated_cache", tmp_path / "examples" / "pregenerated_cache")
    shipped = (tmp_path / "examples" / "pregenerated_cache" / "function" / "vat_rates.json").read_bytes()
    for line in _block(REPO / "examples" / "pregenerated_cache" / "README.md", "build_cache.py", "sh").splitlines():
        command = line.split("#")[0].strip()
        done = _shell(command, tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
    assert (tmp_path / "examples" / "pregenerated_cache" / "function" / "vat_rates.json").read_bytes() == shipped


@pytest.mark.sandbox
def test_readme_pytest_example(pytester: pytest.Pytester) -> None:
    """The plugin example runs as shown, with the output the README shows."""
    text = README.read_text()
    handler = _block(README, 'cache = "/tmp/seen.json"')
    test = _block(README, "def test_orders_survive_scale_down_but_tmp_does_not")
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "orders.py").write_text(handler)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_orders.py").write_text(test)
    console = re.search(r"```console\n\$ (pytest .*?)\n(.*?)```", text, flags=re.DOTALL)
    assert console is not None
    args = console.group(1).split()[1:]
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    expected = [line for line in console.group(2).splitlines() if "passed in" not in line]
    result.stdout.fnmatch_lines(expected)
