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

def write_back(path):
    try:
        with open(path) as f:
            value = f.read()
        with open(path, "w") as f:
            f.write(value)
        return "written"
    except OSError as e:
        return str(e)

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
        "writable": [os.path.join(d, f) for d, _, files in os.walk("/proc/sys") for f in files
                     if os.access(os.path.join(d, f), os.W_OK)],
        "write_back": {p: write_back(p) for p in ("/proc/sys/kernel/ns_last_pid", "/proc/sys/kernel/pid_max")},
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
    # Only files of the instance's own PID namespace pass the mode check: ns_last_pid is 0666 on
    # every Linux (writing it needs a capability the function lacks), and on Linux 6.14+ the
    # pid_max of a PID namespace an ordinary user made is the user's, so the function's: it
    # limits the instance's own processes only. As root no namespace is the function's.
    last_pid, pid_max = "/proc/sys/kernel/ns_last_pid", "/proc/sys/kernel/pid_max"
    assert result["write_back"][last_pid] == "[Errno 1] Operation not permitted"
    if os.getuid() == 0:
        assert result["writable"] == [last_pid]
        assert result["write_back"][pid_max] == f"[Errno 13] Permission denied: '{pid_max}'"
    else:
        assert set(result["writable"]) <= {last_pid, pid_max}, result["writable"]


def test_code_and_layers_in_private_directories_are_readable(sim: Simulator, code: Code) -> None:
    """A code dir made by tmp_path_factory.mktemp is 0700: as root, sbx_user1051 still reads it,
    with /var/task and /opt 0755 as on Lambda; below them each file keeps its own mode."""
    layer1 = code(files={"python/shared.py": "WHO = 'layer1'\n", "python/only1.py": "X = 1\n"})
    layer2 = code(files={"python/shared.py": "WHO = 'layer2'\n"})
    src = code("""
        import os, shared, only1
        def handler(event, context):
            try:
                os.listdir("/var/task/private")
                private = "listed"
            except OSError as e:
                private = str(e)
            return [shared.WHO, only1.X, oct(os.stat("/var/task").st_mode & 0o777),
                    oct(os.stat("/opt").st_mode & 0o777), sorted(os.listdir("/var/task")), private]
    """, files={"private/x.py": ""})
    for path in (src, layer1, layer2, src / "private"):
        path.chmod(0o700)
    expected_private = "[Errno 13] Permission denied: '/var/task/private'" \
        if os.getuid() == 0 and sim.sandbox == "namespace" else "listed"
    for name, layers, who in (("one", [layer1], "layer1"), ("two", [layer1, layer2], "layer2")):
        result = sim.deploy("app.handler", code_dir=src, name=name, layers=layers).invoke({}).payload
        assert result[:2] == [who, 1]
        if sim.sandbox == "namespace":
            assert result[2:4] == (["0o755", "0o755"] if os.getuid() == 0 else ["0o700", "0o700"])
        assert result[4:] == [["app.py", "private"], expected_private]


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


@namespace_only("under fakefs /proc is empty to Python code, and C code or a subprocess would read the host's")
def test_test_process_environment_and_command_line_are_invisible(
    make_sim: object, code: Code, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDASIM_TEST_SECRET", "host-secret-8f3a")
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, posix, subprocess, sys, time
        def read(path):
            try:
                with open(path, "rb") as f:
                    return f.read().decode("utf-8", "replace")
            except OSError as e:
                return str(e)
        def handler(event, context):
            child = subprocess.Popen(["sleep", "5"])
            try:
                # Until it has exec'd, the child shows the runtime's start (the fork's copy), not its own.
                for _ in range(2000):
                    if read(f"/proc/{child.pid}/cmdline").startswith("sleep"):
                        break
                    time.sleep(0.001)
                seen = {f"{pid}/{what}": read(f"/proc/{pid}/{what}")
                        for pid in os.listdir("/proc") if pid.isdigit()
                        for what in ("environ", "cmdline")}
                # What Python kept of its start: the C environment's copy, the command line.
                seen["python/environ"] = repr(posix.environ)
                seen["python/cmdline"] = repr(sys.orig_argv)
                return seen
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
        if key.endswith("cmdline"):
            assert not any(arg in text for arg in host_cmdline[1:] if len(arg) > 3), (key, text)
    # The function's own variables are where Lambda puts them: in what the runtime starts.
    child_env = [text for key, text in seen.items() if key[0].isdigit() and "AWS_REGION=" in text]
    assert len(child_env) == 1 and "LAMBDA_TASK_ROOT=/var/task\0" in child_env[0], seen


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
    for i in range(3):  # warm, then after a reset (a new runtime forked by the instance's keeper)
        if i == 2:
            fn.instances[0].crash()
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



@namespace_only("under fakefs the handler is a host process: it shares the test process's descriptors")
def test_no_descriptor_of_the_test_process_is_open_in_the_instance(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, subprocess, time
        def handler(event, context):
            child = subprocess.Popen(["sleep", "5"])
            try:
                # Once it sleeps: while the loader maps its libraries it holds them open for a moment.
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    with open(f"/proc/{child.pid}/stat") as f:
                        name, _, rest = f.read().partition(" (")[2].rpartition(") ")
                    if name == "sleep" and rest.split()[0] == "S":
                        break
                    time.sleep(0.001)
                out = {}
                for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                    for fd in os.listdir(f"/proc/{pid}/fd"):
                        try:
                            out[f"{pid}/{fd}"] = os.readlink(f"/proc/{pid}/fd/{fd}")
                        except OSError:
                            pass  # the listing's own descriptor, closed meanwhile
                return out
            finally:
                child.kill()
    """))
    seen = fn.invoke({}).payload
    assert {key.split("/")[0] for key in seen} >= {"1", "2", "3"}
    # Sockets, pipes and memfds of the instance's own, its /dev/null, and the listing itself.
    # The keeper's (PID 1) freezer cgroup files are the instance's own too: the kernel names them from
    # the cgroup hierarchy's root (/lambdasim-...), since they were opened before the root changed.
    own = ("socket:[", "pipe:[", "anon_inode:", "/memfd:lambda-log", "/dev/null", "/proc/", "/lambdasim-")
    assert {key: target for key, target in seen.items() if not target.startswith(own)} == {}
    assert [seen[f"1/{fd}"] for fd in (0, 1, 2)] == ["/dev/null"] * 3
