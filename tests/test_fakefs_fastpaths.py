"""The fakefs sandbox's fast paths behave as Lambda's kernel does (the namespace sandbox, run
alongside): reads of the read-only view made on the host (with Landlock), and /tmp writes
flushed only where they could show. Their speed is benchmarks/bench_fakefs.py's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lambdasim import Simulator
from lambdasim._sandbox import _confine, _landlock
from tests.conftest import Code

pytestmark = pytest.mark.sandbox

BOTH_SANDBOXES = True

READS = """
import json, os, shutil

def handler(event, context):
    out = {"cwd": os.getcwd(), "listing": sorted(os.listdir("/var/task")), "relative": sorted(os.listdir("."))}
    out["isdir"] = [os.path.isdir(p) for p in ("/var/task/pkg", "pkg", "/var/task/data.json", "/var/task/nope")]
    out["isfile"] = [os.path.isfile(p) for p in ("/var/task/data.json", "data.json", "/var/task/pkg", "pkg/")]
    out["exists"] = [os.path.exists(p) for p in ("/var/task/pkg/../data.json", "/var/task/nope", os.__file__,
                                                 "/var/task/data.json/")]
    out["links"] = [os.path.islink("/var/task/link"), os.path.lexists("/var/task/dangling"),
                    os.path.exists("/var/task/dangling"), open("/var/task/link").read() == open("data.json").read()]
    size = os.path.getsize("/var/task/data.json")
    out["sizes"] = size == os.stat("data.json").st_size == os.lstat("data.json").st_size
    with open("data.json") as f:
        out["name"], out["json"] = f.name, json.load(f)
    with open("/var/task/data.json", "rb") as f:
        fd = f.fileno()
        out["fstat"] = os.fstat(fd).st_size == os.path.getsize("data.json")
        out["pread"] = os.pread(fd, 4, 2).decode()
        os.lseek(fd, 0, os.SEEK_SET)
        out["read"] = os.read(fd, 3).decode()
        out["buffered"] = open("data.json", "rb", buffering=0).read(2).decode()
    errors = {"missing": lambda: open("/var/task/nope"), "dir": lambda: open("/var/task/pkg"),
              "write": lambda: open("/var/task/data.json", "w"), "stat": lambda: os.stat("/var/task/nope"),
              "listdir": lambda: os.listdir("/var/task/data.json"), "relative_missing": lambda: open("nope.txt")}
    for name, call in errors.items():
        try:
            call()
            out[name] = "opened"
        except OSError as e:
            out[name] = [type(e).__name__, e.errno, e.filename]
    # Host files and fake files open side by side keep apart.
    handles = []
    for i in range(20):
        handles.append(open("/var/task/data.json"))
        tmp = open(f"/tmp/f{i}", "w")
        tmp.write(str(i))
        handles.append(tmp)
    fds = [h.fileno() for h in handles]
    out["distinct_fds"] = len(set(fds)) == len(fds)
    for h in handles:
        h.close()
    out["tmp_files"] = all(open(f"/tmp/f{i}").read() == str(i) for i in range(20))
    shutil.copy("/var/task/data.json", "/tmp/copy.json")
    out["copy"] = json.load(open("/tmp/copy.json"))
    out["walk"] = sorted([os.path.relpath(b, "/var/task"), sorted(d), sorted(f)]
                         for b, d, f in os.walk("/var/task/pkg"))
    out["stdlib"] = len(open(os.path.join(os.path.dirname(os.__file__), "os.py")).read(100))
    out["inode"] = os.stat("/var/task/data.json").st_ino
    return out
"""


def _reads_code(code: Code) -> Path:
    root = code(READS, files={"data.json": '{"a": [1, 2, 3]}', "pkg/__init__.py": "", "pkg/sub/x.txt": "x"})
    (root / "link").symlink_to("data.json")
    (root / "dangling").symlink_to("nowhere")
    return root


def _expected_reads(root: Path) -> dict[str, Any]:
    return {
        "cwd": "/var/task", "listing": sorted(p.name for p in root.iterdir()),
        "relative": sorted(p.name for p in root.iterdir()),
        "isdir": [True, True, False, False], "isfile": [True, True, False, False],
        "exists": [True, False, True, False], "links": [True, True, False, True], "sizes": True,
        "name": "data.json", "json": {"a": [1, 2, 3]}, "fstat": True, "pread": "a\": ", "read": "{\"a",
        "buffered": "{\"",
        "missing": ["FileNotFoundError", 2, "/var/task/nope"], "dir": ["IsADirectoryError", 21, "/var/task/pkg"],
        "write": ["OSError", 30, "/var/task/data.json"], "stat": ["FileNotFoundError", 2, "/var/task/nope"],
        "listdir": ["NotADirectoryError", 20, "/var/task/data.json"],
        "relative_missing": ["FileNotFoundError", 2, "nope.txt"],
        "distinct_fds": True, "tmp_files": True, "copy": {"a": [1, 2, 3]},
        "walk": [["pkg", ["sub"], ["__init__.py"]], ["pkg/sub", [], ["x.txt"]]],
        "stdlib": 100,
    }


def test_reads_of_the_code_and_the_python_installation_behave_as_on_lambda(sim: Simulator, code: Code) -> None:
    root = _reads_code(code)
    inv = sim.deploy("app.handler", code_dir=root).invoke({})
    assert inv.ok, inv.error
    got = dict(inv.payload)
    got.pop("inode")
    assert got == _expected_reads(root)


@pytest.fixture
def landlock() -> int:
    if _landlock.abi() == 0:
        pytest.skip(f"no Landlock here: {_landlock.unavailable_reason()}")
    return _landlock.abi()


@pytest.mark.parametrize("backstop", ["landlock", "none"])
def test_under_fakefs_the_code_is_read_on_the_host_only_with_the_backstop(
        code: Code, landlock: int, backstop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Landlock the runtime reads the view's files on the host (their inode is the host's),
    with the same results as pyfakefs' copies, which it uses without Landlock."""
    from tests.conftest import simulator_or_skip

    if backstop == "none":
        monkeypatch.setenv(_confine.ENV, "0")
    root = _reads_code(code)
    with simulator_or_skip(sandbox="fakefs") as sim:
        inv = sim.deploy("app.handler", code_dir=root).invoke({})
    assert inv.ok, inv.error
    got = dict(inv.payload)
    host_inode = (root / "data.json").stat().st_ino
    assert (got.pop("inode") == host_inode) == (backstop == "landlock")
    assert got == _expected_reads(root)


WRITES = """
import errno, os, signal

held = {}

def handler(event, context):
    out = {}
    if event["step"] == "write":
        f = held["f"] = open("/tmp/open.bin", "wb")
        f.write(b"x" * 3_000_000)
        out["getsize"] = os.path.getsize("/tmp/open.bin")
        out["stat"] = os.stat("/tmp/open.bin").st_size
        out["fstat"] = os.fstat(f.fileno()).st_size
        with open("/tmp/open.bin", "rb") as r:
            out["other_handle"] = len(r.read())
            f.write(b"y" * 1_000_000)
            out["reread"] = len(r.read())
        f.write(b"z" * 100)  # less than a buffer: Python's own buffer holds it, here as on Lambda
        out["small_pending"] = os.path.getsize("/tmp/open.bin")
        if not event.get("fill"):
            return out
        chunk = b"w" * (1 << 20)
        written = 0
        try:
            with open("/tmp/fill.bin", "wb") as big:
                while True:
                    big.write(chunk)
                    written += 1
        except OSError as e:
            out["enospc"] = e.errno
        out["fill_mib"] = written
        out["fill_size"] = os.path.getsize("/tmp/fill.bin") // (1 << 20)
        os.remove("/tmp/fill.bin")
    elif event["step"] == "crash":
        held["f"] = open("/tmp/held.bin", "wb")
        held["f"].write(b"x" * 2_000_000)
        os.kill(os.getpid(), signal.SIGKILL)  # the handle is never closed
    else:
        out["after"] = os.path.getsize("/tmp/held.bin")
    return out
"""


def test_tmp_writes_show_at_once_and_fill_tmp_where_lambda_says_enospc(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(WRITES), ephemeral_storage_mb=512, memory_mb=2048)
    inv = fn.invoke({"step": "write", "fill": True})
    assert inv.ok, inv.error
    got = inv.payload
    assert got["getsize"] == got["stat"] == got["fstat"] == 3_000_000, "written data shows before close"
    assert got["other_handle"] == 3_000_000 and got["reread"] == 1_000_000, "another handle reads it"
    assert got["small_pending"] == 4_000_000
    assert got["enospc"] == 28
    assert 500 <= got["fill_mib"] <= 512 and got["fill_size"] == got["fill_mib"], \
        "ENOSPC from the write that does not fit; what fitted stays"


def test_data_written_to_a_handle_left_open_survives_a_crash(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(WRITES), ephemeral_storage_mb=512, memory_mb=2048)
    crashed = fn.invoke({"step": "crash"})
    assert not crashed.ok
    after = fn.invoke({"step": "read"})
    assert after.ok, after.error
    assert after.payload["after"] == 2_000_000, "on Lambda write() put it on the disk, which a crash keeps"


# -- the fakefs sandbox's spare: a keeper and a runtime with pyfakefs set up, ahead of demand ---------------


def _children(pid: int) -> list[int]:
    """Living children (a keeper that ended stays a zombie until the zygote's next spawn reaps it)."""
    def alive(child: str) -> bool:
        try:
            return Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if alive(p)]
    except FileNotFoundError:
        return []


def _settle(what: Any, want: Any, timeout: float = 10.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if want(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.01)


PID = """
import os

def handler(event, context):
    return os.getpid()
"""


def _spare(sim: Simulator, busy: set[int]) -> tuple[int, int]:
    """The zygote's spare keeper (not one of ``busy``) and its prepared runtime."""
    zygote = sim._sandbox._helper._proc.pid  # type: ignore[attr-defined]
    spares = _settle(lambda: [k for k in _children(zygote) if k not in busy], lambda ks: len(ks) == 1)
    assert len(spares) == 1, f"one spare keeper besides the instances' {busy}: {spares}"
    runtimes = _settle(lambda: _children(spares[0]), lambda rs: len(rs) == 1)
    assert len(runtimes) == 1, "the spare keeper's runtime is forked ahead of demand"
    return spares[0], runtimes[0]


def test_a_fakefs_cold_start_takes_the_prepared_spare_and_a_new_one_follows(code: Code) -> None:
    from tests.conftest import simulator_or_skip

    with simulator_or_skip(sandbox="fakefs") as sim:
        fn = sim.deploy("app.handler", code_dir=code(PID))
        keeper, runtime = _spare(sim, set())
        inv = fn.invoke({})
        assert inv.ok and inv.cold_start, inv.error
        assert fn.instances[0]._live.sbx.pid == keeper and inv.payload == runtime, "the spare ran the function"
        assert _spare(sim, {keeper})[0] != keeper, "a new spare is made after the cold start"


def test_a_spare_whose_runtime_died_still_starts_the_instance(code: Code) -> None:
    import signal

    from tests.conftest import simulator_or_skip

    with simulator_or_skip(sandbox="fakefs") as sim:
        fn = sim.deploy("app.handler", code_dir=code(PID))
        keeper, runtime = _spare(sim, set())
        os.kill(runtime, signal.SIGKILL)
        _settle(lambda: _children(keeper), lambda rs: runtime not in rs)
        inv = fn.invoke({})
        assert inv.ok and inv.cold_start, inv.error
        assert inv.payload != runtime and fn.instances[0]._live.sbx.pid == keeper
