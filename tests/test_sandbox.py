"""The namespace sandbox: Lambda's filesystem, enforced by the kernel."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lambdasim import ConfigError, SandboxError, SandboxUnavailable, Simulator
from lambdasim._sandbox import InstanceSpec, SandboxFallbackWarning, _confine, fakefs, namespace
from tests.conftest import Code, namespace_only, simulator_or_skip

pytestmark = pytest.mark.sandbox
BOTH_SANDBOXES = True

PROBE = """
import errno, os
def handler(event, context):
    out = {}
    for path in event["paths"]:
        try:
            with open(path, "w") as f:
                f.write("x")
            out[path] = "written"
        except OSError as e:
            out[path] = str(e)
    return out
"""


def _snapshot(root: Path) -> dict[str, tuple[int, int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime)
            for p in sorted(root.rglob("*"))}


def test_everything_outside_tmp_is_read_only(sim: Simulator, code: Code) -> None:
    src = code(PROBE)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    paths = ["/var/task/app.py", "/var/task/new.json", "/opt/x", "/etc/x", "/usr/x", "/x", "/var/x",
             "/var/runtime/x", os.path.join(site, "evil.pth"), os.path.join(sys.prefix, "x"), "/tmp/ok"]
    before = _snapshot(src)
    result = sim.deploy("app.handler", code_dir=src).invoke({"paths": paths}).payload
    assert result.pop("/tmp/ok") == "written"
    for path, outcome in result.items():
        assert outcome == f"[Errno 30] Read-only file system: '{path}'", path
    assert _snapshot(src) == before
    assert not os.path.exists(os.path.join(site, "evil.pth"))


def test_home_is_read_only_as_on_lambda(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os
        def handler(event, context):
            try:
                os.makedirs(os.path.expanduser("~/.cache/matplotlib"))
            except OSError as e:
                return [os.path.expanduser("~"), e.errno, str(e)]
    """))
    assert fn.invoke({}).payload == ["/home/sbx_user1051", 30, "[Errno 30] Read-only file system: '/home/sbx_user1051'"]


def test_unhandled_erofs_error_shape(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        def handler(event, context):
            open("/var/task/x", "w")
    """))
    error = fn.invoke({}).error
    assert error is not None
    assert (error["errorType"], error["errorMessage"]) == ("OSError", "[Errno 30] Read-only file system: '/var/task/x'")


def test_tmp_is_sized_per_instance(make_sim: object, code: Code) -> None:
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, shutil
        def handler(event, context):
            chunk = b"x" * (1024 * 1024)
            written = 0
            try:
                with open("/tmp/fill", "wb") as f:
                    while True:
                        f.write(chunk)
                        written += 1
                        if written % event["flush_every"] == 0:
                            f.flush()
            except OSError as e:
                return [written, e.errno, str(e), shutil.disk_usage("/tmp").total // (1024 * 1024)]
    """), ephemeral_storage_mb=600, timeout_s=60)
    # pyfakefs rebuilds a file's contents at every flush: flushing each MiB of 600 would take minutes.
    flush_every = 1 if sim.sandbox == "namespace" else 16
    written, errno_, message, total = fn.invoke({"flush_every": flush_every}).payload
    assert (errno_, message) == (28, "[Errno 28] No space left on device")
    # Under fakefs a full /tmp is found at the flush: up to flush_every MiB later than the write.
    assert total == 600 and 590 <= written <= 600 + (flush_every if flush_every > 1 else 0)
    inst = fn.instances[0]
    assert inst.tmp.usage_bytes() >= 580 * 1024 * 1024
    assert inst.tmp.listdir() == ["fill"]


def test_tmp_is_private_to_each_instance(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, time
        def handler(event, context):
            with open("/tmp/" + event["name"], "w") as f:
                f.write(event["name"])
            time.sleep(0.3)
            return {"tmp": sorted(os.listdir("/tmp"))}
    """))
    a, b = fn.invoke_many([{"name": "a"}, {"name": "b"}], concurrency=2)
    assert a.instance_id != b.instance_id
    assert a.payload["tmp"] == ["a"] and b.payload["tmp"] == ["b"]
    views = {i.id: i.tmp for i in fn.instances}
    assert views[a.instance_id or ""].read_text("a") == "a"
    assert not views[a.instance_id or ""].exists("b")


@namespace_only("no PID namespaces: under fakefs an instance is a host process and /proc is empty")
def test_each_instance_sees_only_its_own_processes(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os, time
        def handler(event, context):
            time.sleep(0.3)
            return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    """))
    a, b = fn.invoke_many([{}, {}], concurrency=2)
    assert a.instance_id != b.instance_id
    # Each instance has a PID namespace of its own: its /proc shows only itself.
    assert a.payload == b.payload == [1, 2]


def test_host_files_and_credentials_are_invisible(
    make_sim: object, code: Code, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key=host-secret\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    sim = make_sim()  # type: ignore[operator]
    fn = sim.deploy("app.handler", code_dir=code("""
        import os
        def handler(event, context):
            return {
                "seen": [p for p in event["paths"] if os.path.exists(p)],
                "env": {k: v for k, v in os.environ.items() if "host-secret" in v or k == "AWS_PROFILE"},
                "root": sorted(os.listdir("/")),
            }
    """))
    paths = [str(home), str(home / ".aws" / "credentials"), str(tmp_path), os.getcwd() + "/pyproject.toml"]
    result = fn.invoke({"paths": paths}).payload
    assert result["seen"] == []
    assert result["env"] == {}
    assert {"var", "tmp", "opt", "etc", "usr", "proc", "dev", "home"} <= set(result["root"])


ESCAPES = r'''
import ctypes, ctypes.util, errno, io, os, posix, sqlite3, subprocess, sys, tokenize

class _Libc:
    """libc through ctypes, loaded at first use (the fakefs sandbox refuses the loading)."""
    def __getattr__(self, name):
        return getattr(ctypes.CDLL(None, use_errno=True), name)

libc = _Libc()

def attempt(fn):
    try:
        fn()
        return "no error"
    except Exception as e:
        return f"{type(e).__name__}: {e}"

def c_write():
    fd = libc.open(b"/var/task/ctypes.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    if fd < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

def c_remount():
    if libc.mount(None, b"/var/task", None, ctypes.c_ulong(32 | 4096), None) != 0:  # MS_REMOUNT|MS_BIND
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

def c_umount_tmp():
    if libc.umount2(b"/tmp", 2) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

def nested_namespace():
    # A user namespace of its own gives capabilities there, but inherited mounts stay locked.
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if libc.unshare(0x10000000 | 0x20000) != 0:
                os._exit(2)
            if libc.mount(None, b"/var/task", None, ctypes.c_ulong(32 | 4096), None) == 0:
                code = 3
            with open("/var/task/nested.txt", "w") as f:
                f.write("x")
            code = 4
        except OSError:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WEXITSTATUS(status) in (3, 4):
        return
    raise PermissionError(f"blocked (exit status {os.WEXITSTATUS(status)})")

def sub(cmd):
    return lambda: subprocess.run(["sh", "-c", cmd], check=True, capture_output=True)

def system(cmd):
    def run():
        if os.system(cmd) != 0:
            raise OSError("the command failed")
    return run

def exec_in_child():
    pid = os.fork()
    if pid == 0:
        try:
            os.execv("/bin/sh", ["sh", "-c", "touch /var/task/exec.txt"])
        except BaseException as e:
            os._exit(3 if type(e).__name__ == "SandboxLimitError" else 2)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    raise OSError("exec refused (SandboxLimitError in the child)" if code == 3 else f"exec'd touch failed ({code})")

def pause_pyfakefs():
    # Under fakefs: stop pyfakefs' patching and write with the real functions.
    patcher = sys.modules["lambdasim._sandbox._fakeroot"]._state["patcher"]
    patcher.pause()
    try:
        with open("/var/task/paused.txt", "w") as f:
            f.write("x")
    finally:
        patcher.resume()

ATTEMPTS = {
    "open": lambda: open("/var/task/python.txt", "w"),
    "rename_out": lambda: os.rename("/var/task/app.py", "/tmp/app.py"),
    "rename_in": lambda: (open("/tmp/in.txt", "w").close(), os.rename("/tmp/in.txt", "/var/task/in.txt")),
    "hardlink": lambda: os.link("/var/task/app.py", "/tmp/hard.py"),
    "symlink_write": lambda: (os.symlink("/var/task/linked.txt", "/tmp/link"), open("/tmp/link", "w")),
    "symlink_in_code": lambda: os.symlink("/tmp", "/var/task/tmp-link"),
    "chmod": lambda: os.chmod("/var/task/app.py", 0o777),
    "utime": lambda: os.utime("/var/task/app.py", (0, 0)),
    "truncate": lambda: os.truncate("/var/task/app.py", 0),
    "unlink": lambda: os.unlink("/var/task/app.py"),
    "mkdir": lambda: os.mkdir("/var/task/dir"),
    "sqlite": lambda: sqlite3.connect("/var/task/db.sqlite").execute("create table t (x)"),
    "subprocess": sub("echo x > /var/task/sub.txt"),
    "subprocess_touch_etc": sub("touch /etc/lambdasim-escape"),
    "posix_open": lambda: posix.open("/var/task/posix.txt", os.O_WRONLY | os.O_CREAT, 0o644),
    "io_fileio": lambda: io.FileIO("/var/task/fileio.txt", "w"),
    "tokenize_open": lambda: tokenize._builtin_open("/var/task/builtin.txt", "w"),
    "os_system": system("echo x > /var/task/system.txt"),
    "os_exec": exec_in_child,
    "pause_pyfakefs": pause_pyfakefs,
    "ctypes_open": c_write,
    "ctypes_remount": c_remount,
    "ctypes_umount_tmp": c_umount_tmp,
    # PID 1 is the instance's own keeper: its root is this same read-only tree.
    "proc_root": lambda: open("/proc/1/root/var/task/via-proc.txt", "w"),
    "proc_root_etc": lambda: open("/proc/1/root/etc/via-proc", "w"),
    "nested_namespace": nested_namespace,
}

def handler(event, context):
    return {name: attempt(fn) for name, fn in ATTEMPTS.items()}
'''


# What each sandbox does with each technique; README's table of escapes says the same.
_PYTHON_LEVEL = ("open", "rename_out", "rename_in", "hardlink", "symlink_write", "symlink_in_code", "chmod",
                 "utime", "truncate", "unlink", "mkdir", "proc_root", "proc_root_etc")
_REFUSED_UNDER_FAKEFS = ("sqlite", "subprocess", "subprocess_touch_etc", "posix_open", "io_fileio", "tokenize_open",
                         "os_system", "ctypes_open", "ctypes_remount", "ctypes_umount_tmp", "pause_pyfakefs")


def test_no_technique_writes_to_the_host(sim: Simulator, code: Code) -> None:
    _no_technique_writes_to_the_host(sim, code)


def test_no_technique_writes_to_the_host_under_fakefs_without_landlock(
        code: Code, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same outcomes where the kernel has no Landlock (macOS, older kernels): the Python layer's."""
    monkeypatch.setenv("LAMBDASIM_FAKEFS_LANDLOCK", "0")
    with simulator_or_skip(sandbox="fakefs") as sim:
        _no_technique_writes_to_the_host(sim, code)


def _no_technique_writes_to_the_host(sim: Simulator, code: Code) -> None:
    src = code(ESCAPES)
    before = _snapshot(src)
    etc_before = sorted(os.listdir("/etc"))
    fn = sim.deploy("app.handler", code_dir=src)
    result = fn.invoke({}).payload
    assert fn.invoke({}).ok, "the instance still works"
    if sim.sandbox == "namespace":
        del result["pause_pyfakefs"]  # there is no pyfakefs to pause
    blocked = {name: outcome for name, outcome in result.items() if outcome != "no error"}
    assert blocked == result, f"not blocked: {sorted(set(result) - set(blocked))}"
    assert "Read-only file system" in result["open"]
    if sim.sandbox == "namespace":
        assert "Read-only file system" in result["sqlite"] or "readonly" in result["sqlite"] or \
            "unable to open" in result["sqlite"]
        assert result["ctypes_open"] == "OSError: [Errno 30] Read-only file system"
        assert result["ctypes_remount"] == "PermissionError: [Errno 1] Operation not permitted"
        assert "Read-only file system" in result["proc_root"]
        assert result["nested_namespace"].startswith("PermissionError: blocked")
    else:
        for name in _PYTHON_LEVEL:
            assert result[name].startswith(("OSError: [Errno 30]", "OSError: [Errno 18]", "FileNotFoundError",
                                            "PermissionError: [Errno 1]")), (name, result[name])
        for name in _REFUSED_UNDER_FAKEFS:
            assert result[name].startswith("SandboxLimitError: lambdasim's fakefs sandbox refused "), \
                (name, result[name])
            assert "sandbox='namespace'" in result[name]
        assert "sqlite3.connect('/var/task/db.sqlite')" in result["sqlite"]
        assert result["os_exec"] == "OSError: exec refused (SandboxLimitError in the child)"
        assert result["nested_namespace"].startswith("PermissionError: blocked")
    time.sleep(0.2)  # let a forked child that was not stopped finish its write
    assert _snapshot(src) == before
    assert sorted(os.listdir("/etc")) == etc_before


@pytest.mark.parametrize("kind", ["namespace", "fakefs"])
def test_python_environment_and_code_under_host_tmp(tmp_path: Path, code: Code, kind: str) -> None:
    """A virtualenv under the host's /tmp still serves the handler its packages, from where
    Lambda keeps Python: its frames in tracebacks show /var/lang, not the host's path."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*")) / "site-packages"
    (site / "only_in_venv").mkdir()
    (site / "only_in_venv" / "__init__.py").write_text(
        "VALUE = 'from the venv'\n\ndef fail():\n    raise ValueError('in a package')\n")
    # lambdasim itself may be installed editable from a checkout: keep it importable.
    root = os.path.dirname(os.path.dirname(os.path.abspath(namespace.__file__)))
    src = code("""
        import logging, only_in_venv, os, subprocess, sys
        def handler(event, context):
            if event.get("fail"):
                try:
                    only_in_venv.fail()
                except ValueError:
                    logging.exception("logged")
                only_in_venv.fail()
            if event.get("subprocess"):
                # The interpreter still finds itself, e.g. for a subprocess.
                out = subprocess.run([sys.executable, "-c", "import only_in_venv; print(only_in_venv.VALUE)"],
                                     capture_output=True, text=True).stdout.strip()
                assert out == only_in_venv.VALUE, out
            return [only_in_venv.VALUE, os.listdir("/tmp"), only_in_venv.__file__, sys.prefix, sys.executable]
    """)
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {os.path.dirname(root)!r})
        from lambdasim import Simulator
        with Simulator(sandbox={kind!r}) as sim:
            fn = sim.deploy("app.handler", code_dir={str(src)!r})
            inv = fn.invoke({{"subprocess": {kind == "namespace"}}})
            failed = fn.invoke({{"fail": True}})
            print(json.dumps([inv.payload, inv.error, failed.error, failed.logs]))
    """)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    payload, error, failed, logs = __import__("json").loads(out.stdout.splitlines()[-1])
    assert error is None
    assert payload[0] == "from the venv"
    # The venv is mounted elsewhere: the instance's /tmp holds nothing of the host's.
    assert payload[1] == []
    lang = f"/var/lang/lib/{site.parent.name}/site-packages"
    assert payload[2:] == [f"{lang}/only_in_venv/__init__.py", "/var/lang", "/var/lang/bin/python"]
    frame = f'  File "{lang}/only_in_venv/__init__.py", line 4, in fail\n    raise ValueError(\'in a package\')\n'
    assert failed["stackTrace"][-1] == frame
    assert frame in logs, "logging's traceback too"
    assert str(tmp_path) not in logs + str(failed)


def test_layers_are_mounted_at_opt(sim: Simulator, code: Code) -> None:
    layer1 = code(files={"python/shared.py": "WHO = 'layer1'\n", "python/only1.py": "X = 1\n", "bin/tool": "1"})
    layer2 = code(files={"python/shared.py": "WHO = 'layer2'\n"})
    src = code("""
        import os, shared, only1
        def handler(event, context):
            return [shared.WHO, only1.X, sorted(os.listdir("/opt"))]
    """)
    assert sim.deploy("app.handler", code_dir=src, name="one", layers=[layer1]).invoke({}).payload == \
        ["layer1", 1, ["bin", "python"]]
    assert sim.deploy("app.handler", code_dir=src, name="two", layers=[layer1, layer2]).invoke({}).payload == \
        ["layer2", 1, ["bin", "python"]]


def test_namespace_explains_when_namespaces_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lambdasim._sandbox.namespace.sys.platform", "darwin")
    with pytest.raises(SandboxUnavailable, match=r"runs on Linux only .*user namespaces"):
        Simulator(sandbox="namespace")
    with pytest.raises(ConfigError, match="sandbox='chroot'"):
        Simulator(sandbox="chroot")


def test_auto_falls_back_to_fakefs_with_a_one_line_notice(monkeypatch: pytest.MonkeyPatch, code: Code) -> None:
    monkeypatch.setattr("lambdasim._sandbox.namespace.sys.platform", "darwin")
    monkeypatch.setattr("lambdasim._sandbox._fallback_warned", set())
    with pytest.warns(SandboxFallbackWarning) as notices:
        sim = Simulator(sandbox="auto")
    with sim:
        assert sim.sandbox == "fakefs"
        fn = sim.deploy("app.handler", code_dir=code("def handler(e, c):\n    return open('/tmp/x', 'w').write('1')\n"))
        assert fn.invoke({}).payload == 1
    (notice,) = notices
    message = str(notice.message)
    assert "\n" not in message
    assert message.startswith("lambdasim: using the fakefs sandbox, since the namespace sandbox cannot run here "
                              "(The namespace sandbox runs on Linux only (this is darwin))")


def test_auto_on_a_host_whose_apparmor_restricts_user_namespaces_says_what_to_do(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    """Ubuntu 23.10+: unshare works for an unprivileged user, mounting in the namespace does not."""
    import lambdasim._sandbox as sandboxes

    def refused(self: object, network: str = "isolated") -> None:
        raise SandboxUnavailable("Cannot create namespaces here: mount: [Errno 1] Operation not permitted. "
                                 + namespace._HINT)

    monkeypatch.setattr(namespace.NamespaceSandbox, "__init__", refused)
    sysctl = tmp_path / "apparmor_restrict_unprivileged_userns"
    sysctl.write_text("1\n")
    monkeypatch.setattr(sandboxes, "APPARMOR_USERNS", str(sysctl))
    monkeypatch.setattr(sandboxes, "_fallback_warned", set())
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    for _ in range(3):
        with Simulator(sandbox="auto") as sim:
            assert sim.sandbox == "fakefs"
    (notice,) = [w for w in recwarn if issubclass(w.category, SandboxFallbackWarning)]  # once per process
    message = str(notice.message)
    assert "\n" not in message and "Operation not permitted" in message
    assert "kernel.apparmor_restrict_unprivileged_userns=1" in message
    for advice in ("as root", "in a Docker container", "AppArmor profile", "keep fakefs"):
        assert advice in message
    assert ("Landlock backstop (ABI" in message) == bool(_confine.abi())
    sysctl.write_text("0\n")
    monkeypatch.setattr(sandboxes, "_fallback_warned", set())
    with pytest.warns(SandboxFallbackWarning) as plain:
        Simulator(sandbox="auto").close()
    assert "AppArmor" not in str(plain[0].message), "no such advice where AppArmor does not restrict them"


@pytest.mark.skipif(os.environ.get("LAMBDASIM_EXPECT_FALLBACK") != "1",
                    reason="for a machine that refuses user namespaces (.ci/container-fakefs.sh runs it in one)")
def test_auto_picks_fakefs_where_user_namespaces_are_refused(
        recwarn: pytest.WarningsRecorder, code: Code, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lambdasim._sandbox._fallback_warned", set())  # as in a new process
    src = code("def handler(e, c):\n    return 1\n")
    for _ in range(2):
        with Simulator(sandbox="auto") as sim:
            assert sim.sandbox == "fakefs"
            assert sim.deploy("app.handler", code_dir=src).invoke({}).payload == 1
    (notice,) = [str(w.message) for w in recwarn if issubclass(w.category, SandboxFallbackWarning)]
    assert "unshare" in notice and "Landlock backstop" in notice, notice
    assert _confine.abi() > 0, "Landlock works under Docker's default seccomp profile"


def test_auto_takes_the_namespace_sandbox_where_it_runs(recwarn: pytest.WarningsRecorder) -> None:
    with Simulator(sandbox="auto") as sim:
        assert sim.sandbox == "namespace"
    assert not [w for w in recwarn if issubclass(w.category, SandboxFallbackWarning)]


def test_missing_code_dir_is_a_clear_harness_error(sim: Simulator, code: Code) -> None:
    src = code("def handler(e, c):\n    return 1\n")
    fn = sim.deploy("app.handler", code_dir=src)
    (src / "app.py").unlink()
    src.rmdir()
    with pytest.raises(SandboxError, match=rf"{src}: No such file or directory.*code_dir"):
        fn.invoke({})
    assert fn.instances == []


# -- the instance spec: one TypedDict lists every key -------------------------------------

LAMBDASIM = Path(__file__).resolve().parent.parent / "lambdasim"
# Where the spec is read: the runtime and the sandboxes (and the engine's view of an instance).
SPEC_READERS = [LAMBDASIM / "_runtime.py", LAMBDASIM / "_rapi.py", LAMBDASIM / "_invoke.py",
                *sorted((LAMBDASIM / "_sandbox").glob("*.py"))]


def _spec_keys_read(path: Path) -> set[str]:
    """Keys read as ``spec["k"]``, ``spec.get("k")`` (or ``self.spec...``) in ``path``."""
    def is_spec(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id == "spec") or (
            isinstance(node, ast.Attribute) and node.attr == "spec")

    keys: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and is_spec(node.value) and isinstance(node.slice, ast.Constant):
            keys.add(str(node.slice.value))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and is_spec(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)):
            keys.add(str(node.args[0].value))
    return keys


NETWORK_KEYS = {"network", "forward"}  # what the engine adds under network="isolated", the default


def test_every_key_of_the_instance_spec_is_declared_and_read() -> None:
    declared = InstanceSpec.__required_keys__ | InstanceSpec.__optional_keys__
    read = set().union(*(_spec_keys_read(p) for p in SPEC_READERS))
    assert read == declared
    assert InstanceSpec.__optional_keys__ == {"track_tmp_access", "real_cwd", "extra_memory_mb", "memory_by_use",
                                              "tasks_rlimit", "network", "forward", "refuse_network",
                                              "runtime_kind", "command", "api_address", "own_network", "snapshot",
                                              "package", "python_home", "runtime_sdk", "landlock"}


def test_the_engine_provides_every_required_key_of_the_instance_spec(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("def handler(event, context):\n    return 1\n"))
    assert fn.invoke({}).ok
    (live,) = fn._live.values()
    assert set(live.spec) == InstanceSpec.__required_keys__ | NETWORK_KEYS
    # The fakefs sandbox adds its three keys on its way to the runtime.
    fakefs_spawn = ast.parse(textwrap.dedent(inspect.getsource(fakefs.FakefsSandbox.spawn)))
    added = {k.value for node in ast.walk(fakefs_spawn) if isinstance(node, ast.Dict)
             for k in node.keys if isinstance(k, ast.Constant)}
    assert added == {"real_cwd", "extra_memory_mb", "landlock"}


@namespace_only("track_tmp_access needs the namespace sandbox")
def test_tracking_tmp_access_is_in_the_instance_spec(make_sim: Callable[..., Simulator], code: Code) -> None:
    sim = make_sim(track_tmp_access=True)
    fn = sim.deploy("app.handler", code_dir=code("def handler(event, context):\n    return 1\n"))
    assert fn.invoke({}).ok
    (live,) = fn._live.values()
    assert set(live.spec) == InstanceSpec.__required_keys__ | NETWORK_KEYS | {"track_tmp_access"}
