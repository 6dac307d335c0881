"""The fakefs sandbox's kernel backstop: what C code does around pyfakefs and the audit hook is
refused by each runtime's Landlock domain, and only where the kernel has Landlock.

Each technique here gets past the Python-level guards (checked with the backstop turned off,
``LAMBDASIM_FAKEFS_LANDLOCK=0``), so these tests fail without the domain.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdasim._sandbox import _confine, _landlock
from tests.conftest import REQUIRE_SANDBOX, Code, simulator_or_skip

pytestmark = pytest.mark.sandbox

ESCAPES = """
import os, socket, sqlite3

def handler(event, context):
    out = {}
    db = sqlite3.connect(":memory:")
    db.set_authorizer(None)  # past the Python layer's guard (see test_fakefs_routes): only the kernel's is left
    try:  # SQLite opens the attached file in C: pyfakefs never sees it
        db.execute("ATTACH DATABASE ? AS host", (event["write"],))
        db.execute("CREATE TABLE host.t (x)")
        db.commit()
        out["write"] = "written"
    except sqlite3.Error as e:
        out["write"] = str(e)
    try:
        db.execute("ATTACH DATABASE ? AS secret", (event["read"],))
        db.execute("SELECT * FROM secret.sqlite_master").fetchall()
        out["read"] = "read"
    except sqlite3.Error as e:
        out["read"] = str(e)
    try:
        os.kill(event["pid"], 0)
        out["signal"] = "sent"
    except OSError as e:
        out["signal"] = e.errno
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(event["abstract"])
        out["abstract"] = "connected"
    except OSError as e:
        out["abstract"] = e.errno
    return out
"""


@pytest.fixture
def landlock() -> int:
    if _landlock.abi() == 0:
        if REQUIRE_SANDBOX and os.uname().sysname == "Linux":
            pytest.fail(f"no Landlock here: {_landlock.unavailable_reason()}")
        pytest.skip(f"no Landlock here: {_landlock.unavailable_reason()}")
    return _landlock.abi()


@pytest.fixture
def abstract_listener() -> Iterator[bytes]:
    name = f"\0lambdasim-test-{os.getpid()}".encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(name)
        s.listen(8)
        yield name


def _escape(code: Code, tmp_path: Path, name: bytes) -> tuple[dict[str, object], Path]:
    secret = tmp_path / "credentials"
    secret.write_text("[default]\naws_secret_access_key = not-for-handlers\n")
    target = tmp_path / "written.db"
    with simulator_or_skip(sandbox="fakefs") as sim:
        inv = sim.deploy("app.handler", code_dir=code(ESCAPES)).invoke(
            {"write": str(target), "read": str(secret), "pid": os.getpid(), "abstract": name.decode("latin-1")})
    assert inv.ok, inv.error
    return inv.payload, target


def test_c_code_cannot_write_or_read_the_host_or_reach_outside_processes(
        code: Code, tmp_path: Path, landlock: int, abstract_listener: bytes) -> None:
    got, target = _escape(code, tmp_path, abstract_listener)
    assert not target.exists(), "nothing is written outside the instance's /tmp"
    assert str(got["write"]).startswith("unable to open database")
    assert str(got["read"]).startswith("unable to open database"), "a host file outside the view is not opened"
    if landlock >= 6:
        assert got["signal"] == 1, "EPERM: no signal to a process outside the domain (the test process)"
        assert got["abstract"] == 1, "EPERM: no abstract socket of a process outside the domain"


def test_without_the_backstop_those_routes_are_open(
        code: Code, tmp_path: Path, landlock: int, abstract_listener: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the domain stops: the same handler with it turned off (so the test above would fail)."""
    monkeypatch.setenv(_confine.ENV, "0")
    got, target = _escape(code, tmp_path, abstract_listener)
    assert target.exists() and got["write"] == "written"
    assert got["read"] == "file is not a database", "SQLite read the host file"
    assert got["signal"] == "sent" and got["abstract"] == "connected"


def test_the_sandbox_says_which_abi_it_uses(landlock: int, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from lambdasim._sandbox.fakefs import FakefsSandbox

    def used() -> int:
        sandbox = FakefsSandbox()
        sandbox.close()  # hands its zygote back
        return sandbox.landlock

    assert used() == landlock
    monkeypatch.setenv(_confine.ENV, "0")
    assert used() == 0
    monkeypatch.setattr(_confine, "_logged", False)
    with caplog.at_level("INFO", logger="lambdasim"):
        _confine.abi()
    assert f"no Landlock ({_confine.ENV}=0)" in caplog.text
    monkeypatch.delenv(_confine.ENV)
    monkeypatch.setattr(_confine, "_logged", False)
    with caplog.at_level("INFO", logger="lambdasim"):
        _confine.abi()
    assert f"Landlock domain (ABI {landlock})" in caplog.text
