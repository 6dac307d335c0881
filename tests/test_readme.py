"""The README's examples run as tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.sandbox


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_example_test_passes(tmp_path: Path) -> None:
    (block,) = [b for b in _blocks() if "def test_cache_is_per_instance" in b]
    namespace: dict[str, Any] = {}
    exec(compile("from lambdasim import Simulator\n" + block, str(README), "exec"), namespace)
    namespace["test_cache_is_per_instance"](tmp_path)


def test_readme_set_up_commands() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README.read_text().split("## Use")[0], flags=re.DOTALL)
    assert commands == ["pip install -e . && lambdasim invoke", "pip install -e '.[test]' && python -m pytest"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "\n" + commands[1] + "\n" in ci, ".ci/run runs the README's test command"


def test_readme_pytest_example(pytester: pytest.Pytester) -> None:
    """The plugin example runs as shown, with the output the README shows."""
    text = README.read_text()
    handler = next(b for b in _blocks() if "def handler(event, context):\n    cache" in b)
    test = next(b for b in _blocks() if "test_orders_survive" in b)
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
