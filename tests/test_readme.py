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
