"""The execution environment beyond the filesystem: identity, visibility and limits (issue 12)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambdasim import Simulator
from tests.conftest import Code, namespace_only

pytestmark = pytest.mark.sandbox
BOTH_SANDBOXES = True

IDENTITY = """
import os

def attempt(path, mode):
    try:
        with open(path, mode):
            return "opened"
    except OSError as e:
        return str(e)

def handler(event, context):
    return {
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
        "groups": os.getgroups(),
        "read": {p: attempt(p, "r") for p in event["read"]},
        "write": {p: attempt(p, "w") for p in event["write"]},
    }
"""


@namespace_only("under fakefs the handler is a host process with the test process's uid")
def test_the_function_holds_no_privilege_of_the_test_process(sim: Simulator, code: Code) -> None:
    src = code(IDENTITY, files={"private.txt": "not for the function"})
    (src / "private.txt").chmod(0o600)
    proc_sys = ["/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname", "/proc/sys/vm/drop_caches",
                "/proc/sys/kernel/core_pattern"]
    result = sim.deploy("app.handler", code_dir=src).invoke(
        {"read": ["/etc/shadow", "/etc/gshadow", "/var/task/private.txt", "/var/task/app.py"],
         "write": proc_sys}).payload
    assert result["ids"] == [993, 993, 990, 990]  # sbx_user1051, as on Lambda
    assert 0 not in result["groups"]
    assert result["read"]["/var/task/app.py"] == "opened"
    for path in ("/etc/shadow", "/etc/gshadow"):
        assert result["read"][path] == f"[Errno 13] Permission denied: '{path}'", path
    # A package file that is not world-readable: Lambda's runtime user cannot read it
    # either. As an ordinary user the file is the user's own, and the function's.
    private = result["read"]["/var/task/private.txt"]
    if os.getuid() == 0:
        assert private == "[Errno 13] Permission denied: '/var/task/private.txt'"
    else:
        assert private == "opened"
    for path in proc_sys:
        assert result["write"][path] == f"[Errno 13] Permission denied: '{path}'", path


@namespace_only("under fakefs the handler is a host process: it shares the host's hostname and IPC")
def test_own_hostname_and_system_v_ipc(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, socket
        def handler(event, context):
            try:
                socket.sethostname("changed")
                changed = "changed"
            except OSError as e:
                changed = str(e)
            return {
                "hostname": socket.gethostname(),
                "uts": os.readlink("/proc/self/ns/uts"),
                "ipc": os.readlink("/proc/self/ns/ipc"),
                "sethostname": changed,
                "sysvipc": [open(f"/proc/sysvipc/{k}").read().splitlines()[1:] for k in ("shm", "msg", "sem")],
            }
    """))
    a, b = fn.invoke_many([{}, {}], concurrency=2)
    assert a.instance_id != b.instance_id
    for r in (a.payload, b.payload):
        assert r["uts"] != os.readlink("/proc/self/ns/uts")
        assert r["ipc"] != os.readlink("/proc/self/ns/ipc")
        assert r["hostname"] != os.uname().nodename
        assert r["hostname"].startswith("169.254.")
        assert r["sethostname"] == "[Errno 1] Operation not permitted"
        assert r["sysvipc"] == [[], [], []]
    assert a.payload["uts"] != b.payload["uts"] and a.payload["ipc"] != b.payload["ipc"]


@namespace_only("under fakefs the handler is a host process: its /proc is the host's")
def test_test_process_environment_and_command_line_are_invisible(
    make_sim: object, code: Code, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDASIM_TEST_SECRET", "host-secret-8f3a")
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, subprocess
        def read(path):
            try:
                with open(path, "rb") as f:
                    return f.read().decode("utf-8", "replace")
            except OSError as e:
                return str(e)
        def handler(event, context):
            child = subprocess.Popen(["sleep", "5"])
            try:
                return {f"{pid}/{what}": read(f"/proc/{pid}/{what}")
                        for pid in os.listdir("/proc") if pid.isdigit()
                        for what in ("environ", "cmdline")}
            finally:
                child.kill()
    """))
    seen = fn.invoke({}).payload
    assert {key.split("/")[0] for key in seen} >= {"1", "2", "3"}  # keeper, runtime, its child
    host_cmdline = Path("/proc/self/cmdline").read_bytes().decode().split("\0")
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for key, text in seen.items():
        assert "host-secret-8f3a" not in text, key
        assert "LAMBDASIM_TEST_SECRET" not in text, key
        assert checkout not in text and "_zygote" not in text and "pytest" not in text, (key, text)
        if key.endswith("/cmdline"):
            assert not any(arg in text for arg in host_cmdline[1:] if len(arg) > 3), (key, text)
    # The function's own variables are there, where Lambda puts them.
    child_env = next(text for key, text in seen.items() if key.endswith("/environ") and "AWS_REGION" in text)
    assert "LAMBDA_TASK_ROOT=/var/task" in child_env


@namespace_only("under fakefs the handler is a host process with the test process's descriptor limit")
def test_1024_file_descriptors_in_every_process(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, resource, subprocess, sys
        def handler(event, context):
            opened = []
            try:
                while True:
                    opened.append(os.open("/var/task/app.py", os.O_RDONLY))
            except OSError as e:
                error = str(e)
            finally:
                for fd in opened:
                    os.close(fd)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
                raised = "raised"
            except (ValueError, OSError) as e:
                raised = type(e).__name__
            child = subprocess.run([sys.executable, "-c", "import resource; print(resource.getrlimit(7))"],
                                   capture_output=True, text=True, check=True).stdout.strip()
            return {"highest": max(opened), "error": error, "limit": resource.getrlimit(7),
                    "raised": raised, "child": child}
    """))
    for _ in range(2):  # warm: the descriptors were closed again, the limit is the same
        r = fn.invoke({}).payload
        # Lambda's 1,024 counts the runtime's own descriptors: the highest is 1023.
        assert r["highest"] == 1023
        assert r["error"] == "[Errno 24] Too many open files: '/var/task/app.py'"
        assert r["limit"] == [1024, 1024]
        assert r["raised"] == "ValueError"
        assert r["child"] == "(1024, 1024)"


@namespace_only("the fakefs sandbox's /tmp is pyfakefs' memory, with no inode table to bound")
def test_tmp_inodes_are_bounded_in_proportion_to_its_size(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os
        def handler(event, context):
            made = 0
            try:
                while made < 1_000_000:
                    os.close(os.open(f"/tmp/f{made}", os.O_CREAT | os.O_WRONLY, 0o600))
                    made += 1
            except OSError as e:
                error = str(e)
            st = os.statvfs("/tmp")
            for i in range(made):
                os.unlink(f"/tmp/f{i}")
            with open("/tmp/again", "w") as f:  # freed inodes are usable again
                f.write("x")
            return {"made": made, "error": error, "inodes": st.f_files}
    """), ephemeral_storage_mb=512, timeout_s=60)
    r = fn.invoke({}).payload
    # One inode per 16 KiB of /tmp, the ratio mke2fs gives an ext4 filesystem of 512 MiB or more.
    assert r["inodes"] == 512 * 1024 // 16
    assert r["error"].startswith("[Errno 28] No space left on device")
    assert r["inodes"] - 4 <= r["made"] < r["inodes"]

