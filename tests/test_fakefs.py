"""What is particular to the fakefs sandbox (the engine's tests run on it too)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import lambdasim
from lambdasim import ConfigError, Simulator
from tests.conftest import Code


@pytest.fixture
def fsim() -> Iterator[Simulator]:
    with Simulator(sandbox="fakefs") as s:
        yield s


def test_c_level_and_host_access_is_refused_with_its_reason(fsim: Simulator, code: Code, tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("host-secret")
    fn = fsim.deploy("app.handler", code_dir=code("""
        import io, os, sqlite3
        def attempt(fn):
            try:
                return ["ok", fn()]
            except Exception as e:
                return [type(e).__name__, str(e)]
        def handler(event, context):
            return {
                "memory_db": attempt(lambda: sqlite3.connect(":memory:").execute("select 41 + 1").fetchone()[0]),
                "tmp_db": attempt(lambda: sqlite3.connect("/tmp/cache.db")),
                "real_read": attempt(lambda: io.FileIO(event["secret"]).read().decode()),
                "fake_read": attempt(lambda: open(event["secret"]).read()),
                "setsid": attempt(os.setsid),
                "devnull": attempt(lambda: open("/dev/null", "w").write("x")),
                "uid": [os.getuid(), os.path.expanduser("~")],
            }
    """))
    out = fn.invoke({"secret": str(secret)}).payload
    assert out["memory_db"] == ["ok", 42]
    assert out["tmp_db"][0] == "SandboxLimitError" and "sqlite3.connect('/tmp/cache.db')" in out["tmp_db"][1]
    assert out["real_read"][0] == "SandboxLimitError" and "outside the function's view" in out["real_read"][1]
    assert out["fake_read"][0] == "FileNotFoundError"
    assert out["setsid"][0] == "SandboxLimitError"
    assert out["devnull"] == ["ok", 1]
    assert out["uid"] == [993, "/home/sbx_user1051"]


def test_imports_keep_lambda_paths_and_read_package_data(fsim: Simulator, code: Code) -> None:
    layer = code(files={"python/shared/__init__.py": "", "python/shared/util.py": "WHERE = __file__\n"})
    src = code("""
        import importlib.resources, json, os, yaml
        import pkg.sub.mod, nspkg.part, shared.util
        def handler(event, context):
            here = os.path.dirname(__file__)
            return {
                "files": [pkg.sub.mod.__file__, nspkg.part.__file__, shared.util.WHERE],
                "data": json.load(open(os.path.join(here, "pkg", "data.json"))),
                "resource": importlib.resources.files("pkg").joinpath("data.json").read_text(),
                "site_packages": open(yaml.__file__).read(10) != "",
            }
    """, files={"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/mod.py": "",
                "pkg/data.json": '{"a": 1}', "nspkg/part.py": ""})
    out = fsim.deploy("app.handler", code_dir=src, layers=[layer]).invoke({}).payload
    assert out["files"] == ["/var/task/pkg/sub/mod.py", "/var/task/nspkg/part.py", "/opt/python/shared/util.py"]
    assert out["data"] == {"a": 1} and out["resource"] == '{"a": 1}'
    assert out["site_packages"] is True
    assert not (src / "pkg" / "__pycache__").exists(), "no bytecode is written into the code"


@pytest.mark.parametrize("call", ['open("/var/task/out.json", "w")', 'os.mkfifo("/var/task/out.json")'])
def test_error_traces_show_the_functions_frames_only(fsim: Simulator, code: Code, call: str) -> None:
    fn = fsim.deploy("app.handler", code_dir=code(f"""
        import os
        def handler(event, context):
            {call}
    """))
    error = fn.invoke({}).error
    assert error is not None
    assert error["errorMessage"] == "[Errno 30] Read-only file system: '/var/task/out.json'"
    assert [line.split(",")[0] for line in error["stackTrace"]] == ['  File "/var/task/app.py"']


def test_tmp_access_tracking_needs_the_namespace_sandbox() -> None:
    with pytest.raises(ConfigError, match="track_tmp_access needs the namespace sandbox"):
        Simulator(sandbox="fakefs", track_tmp_access=True)


def test_directories_of_a_killed_sandbox_are_removed_by_the_next(tmp_path: Path) -> None:
    # A zygote killed outright (with its keepers) leaves its directory; the next one sweeps it.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Path(tempfile.gettempdir()) / f"lambdasim-fakefs-{dead.stdout.strip()}-test"
    (stale / "1").mkdir(parents=True)
    lambdasim.shutdown()  # a new zygote sweeps as it starts; one kept from an earlier test started before
    try:
        with Simulator(sandbox="fakefs"):
            assert not stale.exists()
    finally:
        if stale.exists():
            os.rename(stale, tmp_path / "stale")


def test_fifos_and_unix_sockets_get_lambdas_errors_in_the_fake_filesystem(
        fsim: Simulator, code: Code, tmp_path: Path) -> None:
    # A host listener the handler must not reach: its path is not in the function's view.
    host = socket.socket(socket.AF_UNIX)
    host.bind(str(tmp_path / "h.sock"))
    host.listen()
    host.setblocking(False)
    fn = fsim.deploy("app.handler", code_dir=code("""
        import os, socket, stat
        def attempt(make):
            try:
                return ["ok", make()]
            except OSError as e:
                return [type(e).__name__, e.errno, str(e)]
        def unix(kind=socket.SOCK_STREAM):
            return socket.socket(socket.AF_UNIX, kind)
        def handler(event, context):
            open("/tmp/file", "w").close()
            abstract = unix()
            abstract.bind(b"\\0lambdasim-test-" + os.urandom(8).hex().encode())
            abstract.listen()
            return {
                "fifo": attempt(lambda: os.mkfifo("/tmp/fifo")),
                "fifo_taken": attempt(lambda: os.mkfifo("/tmp/file")),
                "fifo_no_dir": attempt(lambda: os.mkfifo("/tmp/no/fifo")),
                "fifo_dir_fd": attempt(lambda: os.mkfifo("fifo", dir_fd=os.open("/tmp", os.O_RDONLY))),
                "node_file": attempt(lambda: os.mknod("/tmp/node", stat.S_IFREG | 0o640)),
                "node_device": attempt(lambda: os.mknod("/tmp/null", stat.S_IFCHR | 0o600, os.makedev(1, 3))),
                "bind": attempt(lambda: unix().bind("/tmp/sock")),
                "bind_taken": attempt(lambda: unix().bind("/tmp/file")),
                "bind_code": attempt(lambda: unix().bind(b"/var/task/sock")),
                "connect_host": attempt(lambda: unix().connect(event["host"])),
                "connect_file": attempt(lambda: unix().connect("/tmp/file")),
                "sendto_host": attempt(lambda: unix(socket.SOCK_DGRAM).sendto(b"x", event["host"])),
                "abstract": attempt(lambda: unix().connect(abstract.getsockname()) or "connected"),
                "node_mode": oct(os.stat("/tmp/node").st_mode),
            }
    """))
    out = fn.invoke({"host": str(tmp_path / "h.sock")}).payload
    for key in ("fifo", "fifo_dir_fd"):
        assert out[key][0] == "SandboxLimitError", out[key]
    assert "os.mkfifo('/tmp/fifo')" in out["fifo"][2] and "os.pipe()" in out["fifo"][2]
    assert out["fifo_taken"] == ["FileExistsError", errno.EEXIST, "[Errno 17] File exists: '/tmp/file'"]
    assert out["fifo_no_dir"][:2] == ["FileNotFoundError", errno.ENOENT]
    assert out["node_file"] == ["ok", None] and out["node_mode"] == "0o100640"
    assert out["node_device"][:2] == ["PermissionError", errno.EPERM], "sbx_user1051 has no CAP_MKNOD"
    assert out["bind"][0] == "SandboxLimitError" and "abstract address" in out["bind"][2]
    assert out["bind_taken"] == ["OSError", errno.EADDRINUSE, "[Errno 98] Address already in use"]
    assert out["bind_code"] == ["OSError", errno.EROFS, "[Errno 30] Read-only file system"]
    assert out["connect_host"][:2] == out["sendto_host"][:2] == ["FileNotFoundError", errno.ENOENT]
    assert out["connect_file"][:2] == ["ConnectionRefusedError", errno.ECONNREFUSED]
    assert out["abstract"] == ["ok", "connected"]
    with pytest.raises(BlockingIOError):
        host.accept()  # nobody connected
    host.close()
    assert fn.instances[0].tmp.read_bytes("node") == b"", "mirrored as the regular file it is"
