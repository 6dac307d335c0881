"""``fn.debug_invoke()``: the handler runs in the test process, importing the function's code and
layers as Lambda's runtime would, and leaves the test process as it found it."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from lambdasim import Function, Simulator
from lambdasim._model import PYTHON_VERSION

APP = """
import sys
import dup, flask, helpers, layerlib, shadowed, sitelib
from flask import sub
CALLS = 0
def handler(event, context):
    global CALLS
    CALLS += 1
    sys.path.append("/added/by/the/handler")
    if event.get("fail"):
        raise ValueError("boom")
    return {"calls": CALLS, "flask": flask.VERSION, "sub": sub.NAME, "helpers": helpers.X, "layer": layerlib.X,
            "site": sitelib.X, "dup": dup.WHO, "shadowed": shadowed.VALUE}
"""

OURS = ("app", "flask", "flask.sub", "helpers", "layerlib", "sitelib", "dup", "shadowed")


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def function(tmp_path: Path, sim: Simulator) -> Function:
    code = _write(tmp_path / "code", {
        "app.py": APP,
        "flask/__init__.py": "VERSION = 'vendored'\n",  # a vendored copy, as `pip install -t .` leaves it
        "flask/sub.py": "NAME = 'vendored sub'\n",
        "helpers.py": "X = 'helpers'\n",
        "shadowed.py": "VALUE = 'vendored'\n",
    })
    first = _write(tmp_path / "layer1", {
        "python/layerlib.py": "X = 'layer'\n",
        "python/dup.py": "WHO = 'first layer'\n",
        f"python/lib/python{PYTHON_VERSION}/site-packages/sitelib.py": "X = 'site-packages of a layer'\n",
    })
    second = _write(tmp_path / "layer2", {"python/dup.py": "WHO = 'second layer'\n"})
    return sim.deploy("app.handler", code_dir=code, layers=[first, second])


def test_debug_invoke_imports_like_lambda_and_leaves_no_module_behind(
        function: Function, monkeypatch: pytest.MonkeyPatch) -> None:
    host = types.ModuleType("shadowed")
    host.VALUE = "host"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shadowed", host)
    host_flask = sys.modules.get("flask")  # a real flask the test process may have imported
    path = list(sys.path)

    for _ in range(2):  # imported afresh each time: module state starts over
        assert function.debug_invoke({}) == {
            "calls": 1, "flask": "vendored", "sub": "vendored sub", "helpers": "helpers", "layer": "layer",
            "site": "site-packages of a layer", "dup": "second layer", "shadowed": "vendored"}
        assert sys.path == path
        assert sys.modules["shadowed"] is host
        assert sys.modules.get("flask") is host_flask
        assert [name for name in OURS if name in sys.modules and name not in ("flask", "shadowed")] == []


def test_debug_invoke_cleans_up_when_the_handler_raises(function: Function) -> None:
    path = list(sys.path)
    host_flask = sys.modules.get("flask")
    with pytest.raises(ValueError, match="boom"):
        function.debug_invoke({"fail": True})
    assert sys.path == path
    assert sys.modules.get("flask") is host_flask
    assert [name for name in OURS if name in sys.modules and name != "flask"] == []


def test_a_vendored_package_does_not_stay_imported(tmp_path: Path, sim: Simulator) -> None:
    code = _write(tmp_path / "code", {
        "web.py": "import flask, helpers\ndef handler(event, context):\n    return flask.VERSION\n",
        "flask/__init__.py": "VERSION = 'vendored'\n",
        "helpers.py": "",
    })
    host_flask = sys.modules.get("flask")
    fn = sim.deploy("web.handler", code_dir=code)
    assert fn.debug_invoke({}) == "vendored"
    assert sys.modules.get("flask") is host_flask  # not the vendored one, nor any
    assert "helpers" not in sys.modules and "web" not in sys.modules
