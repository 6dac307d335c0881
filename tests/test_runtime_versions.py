"""``Runtime: python3.X`` other than the Python that runs lambdasim: never silent (lambdasim._interpreters).

lambdasim runs every Python function on its own interpreter; a function whose runtime names another
version gets a RuntimeVersionWarning saying so, where that Python is installed or how to install it."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import pytest

from lambdasim import RuntimeVersionWarning, Simulator, TemplateWarning
from lambdasim._interpreters import find_python
from lambdasim._model import PYTHON_VERSION
from tests.conftest import Code

OTHER = "3.9" if PYTHON_VERSION != "3.9" else "3.10"


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


def test_find_python_looks_at_pyenv_and_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_python("3.9") is None
    uv = fake_python(tmp_path, "uv/cpython-3.13.1-linux-x86_64-gnu/bin/python3.13")
    assert find_python("3.13") == uv
    pyenv = fake_python(tmp_path, "pyenv/versions/3.9.18/bin/python3.9")
    assert find_python("3.9") == pyenv
    shim = fake_python(tmp_path, "bin/shims/python3.12")  # a pyenv shim may point at nothing: not taken
    monkeypatch.setenv("PATH", os.path.dirname(shim))
    assert find_python("3.12") is None


def test_another_runtime_warns_once_at_deploy(sim: Simulator, code: Code, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    folder = code("import sys\ndef handler(e, c):\n    return '%d.%d' % sys.version_info[:2]\n")
    messages = caught(lambda: sim.deploy("app.handler", folder, "old", runtime=f"python{OTHER}"))
    assert messages == [
        f"function 'old': Runtime python{OTHER} runs on this machine's Python {PYTHON_VERSION}, the one that runs "
        f"lambdasim; Python {OTHER} is not installed here (install it with `uv python install {OTHER}` or "
        f"`pyenv install {OTHER}`). Code that depends on the version (syntax, the standard library, compiled "
        f"packages) behaves as on Python {PYTHON_VERSION}."]
    assert sim.functions["old"].invoke({}).payload == PYTHON_VERSION  # what the warning says
    found = fake_python(tmp_path, f"pyenv/versions/{OTHER}.1/bin/python{OTHER}")
    messages = caught(lambda: sim.deploy("app.handler", folder, "found", runtime=f"python{OTHER}"))
    assert len(messages) == 1 and f"Python {OTHER} is installed ({found}), but lambdasim does not run " \
        "instances on another interpreter yet" in messages[0]
    # Its own Python's runtime, a custom runtime, and a redeploy that keeps the runtime: no warning.
    assert caught(lambda: sim.deploy("app.handler", folder, "same", runtime=f"python{PYTHON_VERSION}")) == []
    assert caught(lambda: sim.functions["old"].redeploy(memory_mb=256)) == []
    assert len(caught(lambda: sim.functions["same"].redeploy(runtime=f"python{OTHER}"))) == 1


def test_it_is_a_template_warning_the_plugin_lists(sim: Simulator, code: Code) -> None:
    assert issubclass(RuntimeVersionWarning, TemplateWarning)
    with pytest.warns(RuntimeVersionWarning, match=f"Runtime python{OTHER} runs on this machine's Python") as seen:
        sim.deploy("app.handler", code("def handler(e, c):\n    return 1\n"), runtime=f"python{OTHER}")
    assert seen[0].filename == __file__  # attributed to the caller, not to lambdasim


@pytest.mark.skipif(find_python("3.9") is None, reason="no Python 3.9 installed (pyenv, uv or PATH)")
def test_the_machines_pyenv_python_is_named() -> None:
    path = find_python("3.9")
    assert path is not None and os.access(path, os.X_OK) and path.endswith("python3.9")
