"""Every "is not a directory" error names the absolute path it tried (outside pytest's fixtures a relative
path is taken from the working directory, as Python users expect; the plugin's fixtures take it from the
rootdir: tests/test_plugin.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdasim import ConfigError, Simulator
from lambdasim.cli import main


def test_deploy_names_the_folder_it_looked_for(sim: Simulator, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        sim.deploy("app.handler", code_dir="src")
    assert str(info.value) == (f"code_dir='src' is not a directory (looked for {tmp_path}/src); pass the folder "
                               "that holds the handler's module, as it would be zipped for Lambda.")
    (tmp_path / "src").mkdir()
    fn = sim.deploy("app.handler", code_dir="src")  # relative to the working directory
    assert fn.config.code_dir == str(tmp_path / "src")
    with pytest.raises(ConfigError, match=f"'lib' is not a directory \\(looked for {tmp_path}/lib\\)"):  # a layer
        sim.deploy("app.handler", code_dir="src", name="two", layers=["lib"])


def test_chaos_names_the_folder_it_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hypothesis")
    monkeypatch.chdir(tmp_path)
    assert main(["chaos", "--handler", "app.handler", "--code-dir", "src"]) == 2
    assert f"--code-dir 'src' is not a directory (looked for {tmp_path}/src)" in capsys.readouterr().err
