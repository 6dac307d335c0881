"""Calls pyfakefs does not fake, or fakes wrongly, behave under the fakefs sandbox as under Lambda's
kernel (the namespace sandbox, run alongside), or are refused with SandboxLimitError where they
would reach the host: positional I/O on /tmp files, os.open of read-only files, new sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambdasim import Simulator
from tests.conftest import Code, simulator_or_skip

pytestmark = pytest.mark.sandbox

BOTH_SANDBOXES = True

POSITIONAL = """
import errno, os, posix

def handler(event, context):
    fd = os.open("/tmp/a", os.O_CREAT | os.O_RDWR, 0o600)
    os.write(fd, b"hello world")
    out = {"pwrite": os.pwrite(fd, b"HELLO", 0), "offset": os.lseek(fd, 0, os.SEEK_CUR),
           "pread": posix.pread(fd, 5, 6).decode()}
    posix.posix_fallocate(fd, 0, 100)
    out["size"] = os.fstat(fd).st_size
    os.close(fd)
    with open("/tmp/a", "rb") as f:
        out["content"] = f.read(11).decode()
    ro = os.open("/var/task/app.py", os.O_RDONLY)  # reading a read-only file by descriptor
    out["read_only"] = os.read(ro, 6).decode()
    try:
        os.pwrite(ro, b"x", 0)
    except OSError as e:
        out["pwrite_read_only"] = e.errno
    os.close(ro)
    out["mode"] = oct(os.stat("/var/task/app.py").st_mode & 0o777)
    return out
"""


def test_positional_io_and_read_only_opens_behave_as_on_lambda(sim: Simulator, code: Code) -> None:
    inv = sim.deploy("app.handler", code_dir=code(POSITIONAL)).invoke({})
    assert inv.ok, inv.error
    got = inv.payload
    assert got["pwrite"] == 5 and got["offset"] == 11, "pwrite leaves the file offset alone; lseek returns it"
    assert got["pread"] == "world" and got["size"] == 100 and got["content"] == "HELLO world"
    assert got["read_only"] == POSITIONAL[:6], "os.open(O_RDONLY) of the code works"
    assert got["pwrite_read_only"] == 9, "EBADF: the descriptor is not open for writing"
    assert got["mode"] != "0o777", "opening a file does not change its mode"


SESSION = """
import os, posix, subprocess

def handler(event, context):
    out = {}
    for name, call in (("posix.setsid", posix.setsid), ("os.setsid", os.setsid),
                       ("capture_output", lambda: subprocess.run(["true"], capture_output=True))):
        try:
            call()
            out[name] = "ran"
        except Exception as e:
            out[name] = type(e).__name__
    return out
"""


def test_a_new_session_or_program_is_refused_under_fakefs(sim: Simulator, code: Code, sandbox_kind: str) -> None:
    got = sim.deploy("app.handler", code_dir=code(SESSION)).invoke({}).payload
    if sandbox_kind == "namespace":
        assert got == {"posix.setsid": "ran", "os.setsid": "PermissionError", "capture_output": "ran"}
    else:  # a runtime in a session of its own would outlive its keeper's group kill
        assert got == {"posix.setsid": "SandboxLimitError", "os.setsid": "SandboxLimitError",
                       "capture_output": "SandboxLimitError"}


PYTHON_LEVEL = """
import _posixsubprocess, sqlite3

def handler(event, context):
    out = {}
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x)")
    for name, sql in (("attach", "ATTACH DATABASE ? AS host"), ("vacuum", "VACUUM INTO ?")):
        try:
            db.execute(sql, (event["path"],))
            out[name] = "done"
        except sqlite3.Error as e:
            out[name] = str(e)
    db.execute("ATTACH DATABASE ':memory:' AS scratch")
    try:
        _posixsubprocess.fork_exec(["/bin/sh", "-c", "true"])
    except Exception as e:
        out["fork_exec"] = type(e).__name__
    return out
"""


def test_sqlite_files_and_fork_exec_are_refused_without_the_kernel_backstop(
        code: Code, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python layer alone (as on macOS): SQLite's ATTACH and VACUUM INTO a host file, and
    _posixsubprocess (no audit event), are refused; ':memory:' attaches still work."""
    monkeypatch.setenv("LAMBDASIM_FAKEFS_LANDLOCK", "0")
    target = tmp_path / "host.db"
    with simulator_or_skip(sandbox="fakefs") as sim:
        got = sim.deploy("app.handler", code_dir=code(PYTHON_LEVEL)).invoke({"path": str(target)}).payload
    refused = {"not authorized", "authorization denied"}  # SQLite's words for SQLITE_DENY, by statement
    assert got["attach"] in refused and got["vacuum"] in refused and got["fork_exec"] == "SandboxLimitError"
    assert not target.exists()



DIR_FD = """
import os, posix

def handler(event, context):
    fd = posix.open(event["dir"], os.O_RDONLY)  # a directory of the view, by its host path
    try:
        return posix.read(posix.open(event["relative"], os.O_RDONLY, dir_fd=fd), 100).decode(errors="replace")
    except Exception as e:
        return type(e).__name__
"""


def _outside_the_view() -> tuple[str, str]:
    """A directory of the view (this Python's installation) and a host file outside it, relative to it
    (a file of a sibling installation, e.g. another pyenv version), or a skip."""
    import sys

    base = Path(sys.base_prefix)
    for sibling in sorted(base.parent.iterdir()):
        if sibling == base or not sibling.is_dir() or base.is_relative_to(sibling):
            continue
        for path in sorted(sibling.rglob("*.py"))[:1]:
            return str(base / "lib"), os.path.relpath(path, base / "lib")
    pytest.skip(f"no installation beside {base} to read from")


def test_a_real_open_relative_to_a_directory_descriptor_is_refused_without_the_kernel_backstop(
        code: Code, monkeypatch: pytest.MonkeyPatch) -> None:
    """posix.open("../x", dir_fd=<a directory of the view>): the audit event has no dir_fd, so the path it
    names ("/x") is not the one opened; a relative real open is refused (the kernel's backstop would refuse
    the read of a file outside the view)."""
    monkeypatch.setenv("LAMBDASIM_FAKEFS_LANDLOCK", "0")
    directory, relative = _outside_the_view()
    with simulator_or_skip(sandbox="fakefs") as sim:
        inv = sim.deploy("app.handler", code_dir=code(DIR_FD)).invoke({"dir": directory, "relative": relative})
    assert inv.ok, inv.error
    assert inv.payload == "SandboxLimitError"
