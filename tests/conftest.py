from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lambdasim import SandboxUnavailable, Simulator

pytest_plugins = ["pytester"]

# CI sets this so that a sandbox that cannot start fails the run instead of skipping.
REQUIRE_SANDBOX = os.environ.get("LAMBDASIM_REQUIRE_SANDBOX") == "1"

Code = Callable[..., Path]


@pytest.fixture
def code(tmp_path: Path) -> Code:
    """Write a function's code: ``code("print(1)")`` -> a code dir with app.py."""
    counter = iter(range(1000))

    def make(source: str = "", files: dict[str, str] | None = None, module: str = "app") -> Path:
        root = tmp_path / f"code{next(counter)}"
        root.mkdir()
        if source:
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        for name, text in (files or {}).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return root

    return make


def _simulator(**kwargs: object) -> Simulator:
    try:
        return Simulator(**kwargs)  # type: ignore[arg-type]
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with _simulator() as s:
        yield s


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    made: list[Simulator] = []

    def make(**kwargs: object) -> Simulator:
        s = _simulator(**kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
