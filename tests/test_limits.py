"""Lambda's limits inside an execution environment: processes and threads, memory by use,
and the peaks each invocation reports (issue 12, section 3).

As root the namespace sandbox counts through a cgroup per instance; as an unprivileged
user without cgroup delegation through RLIMIT_NPROC and procfs: CI runs this file both ways.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import lambdasim
from lambdasim import Simulator
from lambdasim._sandbox import _cgroup
from tests.conftest import Code, namespace_only

BOTH_SANDBOXES = True

FAKEFS = ("the fakefs sandbox limits memory with RLIMIT_DATA per process and does not count "
          "processes, threads or descriptors (README: sandboxes table)")

HANDLER = """
import atexit, mmap, os, threading, time
KEPT = []

def handler(event, context):
    action = event.get("action")
    if action == "threads":
        stop = threading.Event()
        started = []
        try:
            while True:
                t = threading.Thread(target=stop.wait)
                t.start()
                started.append(t)
        except RuntimeError as e:
            error = str(e)
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            forked = "forked"
        except OSError as e:
            forked = f"{type(e).__name__}: {e}"
        time.sleep(0.1)  # at the peak for a while: the simulator samples it
        stop.set()
        for t in started:
            t.join()
        return [len(started), error, forked]
    if action == "64 threads":
        threads = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(threads)
    if action == "shared":
        with open("/tmp/before", "w") as f:
            f.write("kept")
        atexit.register(lambda: open("/tmp/atexit", "w").close())
        try:
            if event.get("memfd"):
                fd = os.memfd_create("hog")
                os.ftruncate(fd, event["mb"] << 20)
                m = mmap.mmap(fd, event["mb"] << 20)
            else:
                m = mmap.mmap(-1, event["mb"] << 20)
            for i in range(0, len(m), 4096):
                m[i] = 1
            time.sleep(0.05)
            return "survived"
        finally:
            open("/tmp/finally", "w").close()
    if action == "tmp":
        with open("/tmp/big", "wb") as f:
            for _ in range(event["mb"]):
                f.write(b"x" * (1 << 20))
        return os.path.getsize("/tmp/big") >> 20
    if action == "keep":
        KEPT.append(bytearray(event["mb"] << 20))
        KEPT.extend(open("/var/task/app.py") for _ in range(event.get("files", 0)))
        return "kept"
    if action == "free":
        for f in KEPT:
            if hasattr(f, "close"):
                f.close()
        KEPT.clear()
    return sorted(os.listdir("/tmp"))
"""


@namespace_only(FAKEFS)
def test_1024_processes_and_threads_per_environment(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(HANDLER), timeout_s=30)
    inv = fn.invoke({"action": "threads"})
    # The runtime's main thread and 1,023 more make Lambda's 1,024; then neither a thread nor a process starts.
    assert inv.payload == [1023, "can't start new thread",
                           "BlockingIOError: [Errno 11] Resource temporarily unavailable"]
    assert inv.max_tasks == 1024
    after = fn.invoke({"action": "threads"})
    assert after.payload == inv.payload, "threads that ended no longer count"
    assert fn.invoke({}).max_tasks == 1


@namespace_only(FAKEFS)
def test_the_task_limit_is_per_environment(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(HANDLER), timeout_s=30)
    both = fn.invoke_many([{"action": "threads"}] * 2, concurrency=2)
    assert len({inv.instance_id for inv in both}) == 2
    assert [inv.payload[0] for inv in both] == [1023, 1023]


@namespace_only(FAKEFS)
def test_64_threads_start_in_128_mb(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(HANDLER), memory_mb=128)
    inv = fn.invoke({"action": "64 threads"})
    assert inv.payload == 64
    assert inv.max_tasks == 65
    assert inv.max_memory_used_mb < 128, "untouched thread stacks are not memory in use"


@namespace_only(FAKEFS)
@pytest.mark.parametrize("memfd", [False, True], ids=["mmap(-1)", "memfd"])
def test_touched_shared_memory_is_an_out_of_memory_kill(sim: Simulator, code: Code, memfd: bool) -> None:
    fn = sim.deploy("app.handler", code_dir=code(HANDLER), memory_mb=128, timeout_s=30)
    assert fn.invoke({"action": "shared", "mb": 64, "memfd": memfd}).payload == "survived"
    small = fn.invoke({})
    assert small.payload == ["before", "finally"]
    os.remove(os.path.join(fn.instances[0].tmp._root(), "finally"))
    inv = fn.invoke({"action": "shared", "mb": 512, "memfd": memfd})
    killed = f"RequestId: {inv.request_id} Error: Runtime exited with error: signal: killed"
    assert inv.error == {"errorType": "Runtime.OutOfMemory", "errorMessage": killed}
    assert inv.logs.splitlines()[-1].endswith("Status: error\tError Type: Runtime.OutOfMemory")
    assert inv.max_memory_used_mb > 128
    after = fn.invoke({})
    assert after.cold_start and after.instance_id == inv.instance_id, "Init runs again in the same environment"
    # /tmp is kept; the killed runtime ran neither its finally block nor its atexit handler.
    assert after.payload == ["before"]


@namespace_only(FAKEFS)
def test_tmp_is_storage_not_memory(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(HANDLER), memory_mb=128, ephemeral_storage_mb=512, timeout_s=30)
    inv = fn.invoke({"action": "tmp", "mb": 400})
    assert inv.payload == 400
    assert inv.max_memory_used_mb < 64


@namespace_only(FAKEFS)
def test_peaks_are_reported_in_invocation_report_and_trace(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(HANDLER), memory_mb=256)
    fn.invoke({})  # Init may hold more descriptors for a moment (its imports)
    base = fn.invoke({})
    kept = fn.invoke({"action": "keep", "mb": 100, "files": 40})
    assert 100 <= kept.max_memory_used_mb < 128
    assert f"Max Memory Used: {kept.max_memory_used_mb} MB" in kept.logs
    assert base.max_fds is not None and kept.max_fds is not None
    assert kept.max_fds == base.max_fds + 40
    freed = fn.invoke({"action": "free"})
    assert freed.max_fds == base.max_fds and freed.max_memory_used_mb < 100
    events = [e.detail for e in sim.trace if e.kind == "invoke"]
    assert [(d["max_memory_used_mb"], d["max_tasks"], d["max_fds"]) for d in events[-3:]] == [
        (inv.max_memory_used_mb, inv.max_tasks, inv.max_fds) for inv in (base, kept, freed)]


def _places(pid: int) -> list[str]:
    """The cgroup directories of the simulators of process ``pid``."""
    found = []
    for hierarchies in _cgroup.find_hierarchies(frozenset({"pids", "memory"})):
        for h in hierarchies:
            found += [os.path.join(h.base, n) for n in os.listdir(h.base) if n.startswith(f"lambdasim-{pid}-")]
    return found


@namespace_only("the fakefs sandbox makes no cgroups")
def test_cgroups_are_removed_with_the_simulator_and_after_kill_9(sandbox_kind: str, code: Code) -> None:
    src = code(HANDLER)
    with Simulator(sandbox="namespace") as sim:
        fn = sim.deploy("app.handler", code_dir=src)
        fn.invoke({})
        inside = bool(_places(os.getpid()))
        fn.scale_down(0)
    lambdasim.shutdown()  # the zygote, kept for the next simulator of the process, removes its place as it ends
    assert not _places(os.getpid())
    script = textwrap.dedent(f"""
        import os, signal
        from lambdasim import Simulator
        sim = Simulator(sandbox="namespace")
        sim.deploy("app.handler", code_dir={str(src)!r}).invoke({{}})
        print(os.getpid(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    dead = int(proc.stdout.split()[0])
    # The zygote outlives the simulator only to see its socket close: it removes the place then.
    deadline = time.monotonic() + 10
    while _places(dead):
        assert time.monotonic() < deadline, "the cgroups of a simulator killed with SIGKILL are removed"
        time.sleep(0.05)
    if not inside:
        return
    # Where the zygote was killed outright as well, the next sandbox on the machine sweeps its place.
    for hierarchies in _cgroup.find_hierarchies(frozenset({"pids", "memory"})):
        for h in hierarchies:
            os.makedirs(os.path.join(h.base, f"lambdasim-{dead}-1", "i0"))
    assert _places(dead)
    lambdasim.shutdown()  # a new zygote sweeps; a kept one swept when it started
    Simulator(sandbox="namespace").close()
    assert not _places(dead)
