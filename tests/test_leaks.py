"""Nothing the simulator starts outlives it: processes, mounts, temp files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import lambdasim
from lambdasim import Simulator
from tests.conftest import Code

pytestmark = pytest.mark.sandbox

SLEEPER = """
import os, subprocess, sys, time
def handler(event, context):
    if event.get("daemon"):
        # A background process the handler leaves behind, as real code sometimes does.
        if "lambdasim._sandbox._fakeroot" not in sys.modules:
            subprocess.Popen(["sleep", "300"], start_new_session=True)
        elif os.fork() == 0:  # the fakefs sandbox refuses subprocesses and new sessions
            try:
                time.sleep(300)
            finally:
                os._exit(0)
    if event.get("raise"):
        raise RuntimeError("boom")
    return "ok"
"""

BOTH_SANDBOXES = True


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, found through /proc's children lists."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):  # the task exited meanwhile
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[-1][0] != "Z":
                    alive.add(pid)
        except (FileNotFoundError, ProcessLookupError):  # gone before or while its stat was read
            pass
    return alive


def _wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pids)


def _mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def _tmp_entries() -> set[str]:
    return set(os.listdir("/tmp"))


def _leftovers(before: set[str], pids: set[int]) -> set[str]:
    """/tmp entries made since ``before``, pytest's own aside. Under pytest-xdist other workers
    make entries meanwhile, so there only those named after one of ``pids`` count."""
    new = {p for p in _tmp_entries() - before if not p.startswith("pytest-")}
    if os.environ.get("PYTEST_XDIST_WORKER"):
        new = {p for p in new if any(f"-{pid}-" in p for pid in pids)}
    return new


def _start(sim: Simulator, code: Code) -> set[int]:
    fn = sim.deploy("app.handler", code_dir=code(SLEEPER), name="leaky")
    fn.invoke_many([{"daemon": True}] * 3, concurrency=3)
    pids = _descendants(os.getpid())
    assert len(pids) >= 1 + 3 * 3, "zygote, and per instance a keeper, a runtime and a sleep"
    return pids


def _instances(sim: Simulator) -> set[int]:
    """The processes of the simulator's instances: keepers and what runs under them."""
    keepers = {inst._live.sbx.pid for fn in sim.functions.values() for inst in fn.instances}
    return keepers | {p for k in keepers for p in _descendants(k)}


def test_nothing_left_after_exit(code: Code, sandbox_kind: str) -> None:
    mounts, tmp = _mounts(), _tmp_entries()
    with Simulator(sandbox=sandbox_kind) as sim:
        pids = _start(sim, code)
        instances = _instances(sim)
        helper = sim._sandbox._helper._proc.pid  # type: ignore[attr-defined]
    assert len(instances) == 9, "per instance a keeper, a runtime and the handler's sleep"
    assert _wait_gone(instances) == set(), "the instances end with their simulator"
    # The sandbox's helper stays for the next Simulator of the process; shutdown() (or the exit) ends it.
    assert _alive({helper}) == {helper}
    lambdasim.shutdown()
    assert _wait_gone(pids) == set()
    assert _mounts() == mounts
    assert _leftovers(tmp, pids) == set()


def test_nothing_left_after_a_normal_exit(tmp_path: Path, code: Code, sandbox_kind: str) -> None:
    """The helper kept for later simulators ends with the process, and takes its spare keeper along."""
    src = code(SLEEPER)
    tmp_before = _tmp_entries()
    script = tmp_path / "done.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.getcwd()!r})
        from lambdasim import Simulator
        for _ in range(2):
            with Simulator(sandbox={sandbox_kind!r}) as sim:
                sim.deploy("app.handler", code_dir={str(src)!r}).invoke_many([{{"daemon": True}}] * 2, concurrency=2)
        print(sim._sandbox._helper._proc.pid, flush=True)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    helper = int(done.stdout.split()[0])
    assert _wait_gone({helper}) == set()
    assert not [line for line in _mounts().splitlines() if "lambda" in line]
    assert _leftovers(tmp_before, {helper}) == set()


def test_nothing_left_after_exception_in_with(code: Code, sandbox_kind: str) -> None:
    instances: set[int] = set()

    def fail_inside() -> None:
        nonlocal instances
        with Simulator(sandbox=sandbox_kind) as sim:
            _start(sim, code)
            instances = _instances(sim)
            raise RuntimeError("test failure")

    with pytest.raises(RuntimeError, match="test failure"):
        fail_inside()
    assert instances and _wait_gone(instances) == set()


def test_nothing_left_after_destroy_and_scale_down(code: Code, sandbox_kind: str) -> None:
    tmp = _tmp_entries()
    with Simulator(sandbox=sandbox_kind) as sim:
        fn = sim.deploy("app.handler", code_dir=code(SLEEPER))
        fn.invoke_many([{"daemon": True}] * 2, concurrency=2)
        keepers = {inst._live.sbx.pid for inst in fn.instances}
        doomed = keepers | {p for k in keepers for p in _descendants(k)}
        assert len(doomed) == 6, "per instance a keeper, a runtime and the handler's sleep"
        helper = sim._sandbox._helper._proc.pid  # type: ignore[attr-defined]
        sandbox = ({helper} | _descendants(helper)) - doomed
        fn.instances[0].destroy()
        fn.scale_down(keep=0)
        assert _wait_gone(doomed) == set()
        assert _alive(sandbox) == sandbox, "the sandbox itself stays up for later instances"
        if sandbox_kind == "fakefs":  # each instance's /tmp is a directory of the zygote's
            (base,) = [p for p in os.listdir("/tmp") if p.startswith(f"lambdasim-fakefs-{helper}-")]
            assert os.listdir(f"/tmp/{base}") == []
    assert _leftovers(tmp, sandbox | doomed) == set()


def test_nothing_left_after_sigkill(tmp_path: Path, code: Code, sandbox_kind: str) -> None:
    src = code(SLEEPER)
    tmp_before = _tmp_entries()
    script = tmp_path / "victim.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from lambdasim import Simulator
        sim = Simulator(sandbox={sandbox_kind!r})
        fn = sim.deploy("app.handler", code_dir={str(src)!r})
        fn.invoke_many([{{"daemon": True}}] * 3, concurrency=3)
        print("ready", flush=True)
        time.sleep(600)
    """))
    victim = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "ready"
        pids = _descendants(victim.pid)
        assert len(pids) >= 10
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert _wait_gone(pids) == set(), "the zygote, keepers, runtimes and their children all die"
        assert _leftovers(tmp_before, pids | {victim.pid}) == set()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_a_simulator_outlives_the_thread_that_made_it(code: Code, sandbox_kind: str) -> None:
    made: list[Simulator] = []
    thread = threading.Thread(target=lambda: made.append(Simulator(sandbox=sandbox_kind)))
    thread.start()
    thread.join()
    (sim,) = made
    try:
        time.sleep(0.2)  # give a wrongly parent-death-signalled helper the time to die
        fn = sim.deploy("app.handler", code_dir=code("def handler(e, c):\n    return 'alive'\n"))
        assert fn.invoke({}).payload == "alive"
    finally:
        sim.close()
