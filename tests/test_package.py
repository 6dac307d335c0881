"""The deployment package as Lambda sees it (issue 15, point 2): deploy-time limits, imports from
outside the package, layers and runtime (noted, or refused under ``package="strict"``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambdasim import Simulator
from lambdasim._errors import SettingError
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
