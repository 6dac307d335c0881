"""lambdasim._sandbox._landlock: what a Landlock domain refuses and allows, on this kernel.

A domain cannot be left, so each case restricts a forked child (:func:`in_domain`) and
brings back what it saw. Rights newer than the running ABI are checked both ways: refused
where the kernel has them, still possible where it has not (so the test shows what an older
kernel leaves open).
"""

from __future__ import annotations

import errno
import os
import pickle
import secrets
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdasim._sandbox import _landlock
from lambdasim._sandbox._landlock import LandlockError, LandlockUnavailable, Policy, restrict

ABI = _landlock.abi()
REQUIRE_SANDBOX = os.environ.get("LAMBDASIM_REQUIRE_SANDBOX") == "1"
needs_landlock = pytest.mark.skipif(ABI == 0 and not REQUIRE_SANDBOX,
                                    reason=f"no Landlock here: {_landlock.unavailable_reason()}")


def in_child(body: Callable[[], Any]) -> Any:
    """``body()``'s result in a forked child (its exception is raised here)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            try:
                result: tuple[str, Any] = ("ok", body())
            except BaseException as e:  # noqa: BLE001 - carried to the parent, which raises it
                result = ("error", e)
            try:
                data = pickle.dumps(result)
            except Exception as e:  # noqa: BLE001 - an unpicklable result or exception: its repr
                data = pickle.dumps(("error", RuntimeError(f"{result!r} ({e})")))
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    kind, value = pickle.loads(data)
    if kind == "error":
        raise value
    return value


def in_domain(policy: Policy, body: Callable[[], Any]) -> Any:
    """``body()``'s result in a forked child restricted by ``policy``."""
    used, result = in_child(lambda: (restrict(policy), body()))
    assert used == min(ABI, _landlock.LATEST_ABI)
    return result


def errno_of(fn: Callable[[], object]) -> int:
    """0 if ``fn()`` worked, else the errno of its OSError."""
    try:
        fn()
    except OSError as e:
        return e.errno or -1
    return 0


def outcomes(ops: dict[str, Callable[[], object]]) -> dict[str, str]:
    """Each operation's result as a name: "ok" or its errno's (EACCES...)."""
    return {name: errno.errorcode.get(code, str(code)) if code else "ok"
            for name, fn in ops.items() for code in [errno_of(fn)]}


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry below ``root`` with its contents (None for directories and other kinds)."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() and not p.is_symlink() else None
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """``ro`` (read-only, with files and a directory), ``rw`` (read-write, the same) and
    ``out`` (outside every rule, the same and a secret)."""
    made = {name: tmp_path / name for name in ("ro", "rw", "out")}
    for path in made.values():
        path.mkdir()
        for name in ("file", "unlink-me", "rename-me"):
            (path / name).write_text("contents\n")
        (path / "sub").mkdir()
    (made["out"] / "secret").write_text("aws_secret_access_key = x\n")
    return made


def policy_for(dirs: dict[str, Path], **kwargs: Any) -> Policy:
    return Policy(read_only=[str(dirs["ro"])], read_write=[str(dirs["rw"])], **kwargs)


# -- the filesystem ---------------------------------------------------------------------------


@needs_landlock
def test_reads_outside_the_read_only_paths_fail_with_eacces(dirs: dict[str, Path]) -> None:
    ro, out = dirs["ro"], dirs["out"]
    seen = in_domain(policy_for(dirs), lambda: outcomes({
        "read ro": lambda: (ro / "file").read_text(),
        "list ro": lambda: os.listdir(ro),
        "read rw": lambda: (dirs["rw"] / "file").read_text(),
        "read out": lambda: (out / "secret").read_text(),
        "list out": lambda: os.listdir(out),
        "read /etc/passwd": lambda: Path("/etc/passwd").read_text(),
        # The test process's environment, which a fakefs runtime once read through /proc.
        "read parent's environ": lambda: Path(f"/proc/{os.getppid()}/environ").read_bytes(),
    }))
    assert seen == {"read ro": "ok", "list ro": "ok", "read rw": "ok", "read out": "EACCES", "list out": "EACCES",
                    "read /etc/passwd": "EACCES", "read parent's environ": "EACCES"}


def _changes(base: Path, rw: Path) -> dict[str, Callable[[], object]]:
    """Every kind of change, in ``base``; the links and renames go between it and ``rw``."""
    return {
        "open w": lambda: open(base / "new", "w").close(),
        "open a": lambda: open(base / "file", "a").close(),
        "mkdir": lambda: os.mkdir(base / "dir"),
        "mkfifo": lambda: os.mkfifo(base / "fifo"),
        "mknod": lambda: os.mknod(base / "node", stat.S_IFREG | 0o600),
        "symlink": lambda: os.symlink("/etc", base / "link"),
        "unlink": lambda: os.unlink(base / "unlink-me"),
        "rmdir": lambda: os.rmdir(base / "sub"),
        "rename within": lambda: os.rename(base / "rename-me", base / "renamed"),
        "truncate": lambda: os.truncate(base / "file", 0),
        "unix bind": lambda: socket.socket(socket.AF_UNIX).bind(str(base / "sock")),
        # Reparenting: a read-only file linked into the writable directory would be writable there.
        "link into rw": lambda: os.link(base / "file", rw / "linked-in"),
        "link out of rw": lambda: os.link(rw / "file", base / "linked-out"),
        "rename into rw": lambda: os.rename(base / "rename-me", rw / "moved-in"),
        "rename out of rw": lambda: os.rename(rw / "rename-me", base / "moved-out"),
    }


@needs_landlock
@pytest.mark.parametrize("where", ["ro", "out"])
def test_writes_outside_the_read_write_paths_fail(dirs: dict[str, Path], where: str) -> None:
    base, rw = dirs[where], dirs["rw"]
    before, rw_before = tree(base), tree(rw)
    seen = in_domain(policy_for(dirs), lambda: outcomes(_changes(base, rw)))
    # Linking a file into another directory is a reparenting (REFER): EXDEV, on every ABI.
    expected = {name: "EXDEV" if name == "link into rw" else "EACCES" for name in seen}
    if ABI < 3:
        expected["truncate"] = "ok"  # truncate(2) is a Landlock right from ABI 3
    assert seen == expected
    assert tree(base) == before and tree(rw) == rw_before


@needs_landlock
def test_writes_inside_the_read_write_paths_work(dirs: dict[str, Path]) -> None:
    rw = dirs["rw"]
    (rw / "a").mkdir()
    (rw / "b").mkdir()
    (rw / "a" / "moving").write_text("m")
    ops = {name: fn for name, fn in _changes(rw, rw / "b").items() if "into" not in name and "out of" not in name}
    ops["write"] = lambda: (rw / "new").write_text("written")  # after "open w" made it
    ops["link between rw dirs"] = lambda: os.link(rw / "a" / "moving", rw / "b" / "linked")
    ops["rename between rw dirs"] = lambda: os.rename(rw / "a" / "moving", rw / "b" / "moved")
    seen = in_domain(policy_for(dirs), lambda: outcomes(ops))
    expected = dict.fromkeys(ops, "ok")
    if ABI < 2:  # Landlock 1 refuses every reparenting
        expected["link between rw dirs"] = expected["rename between rw dirs"] = "EXDEV"
    assert seen == expected
    assert (rw / "new").read_text() == "written" and (rw / "renamed").read_text() == "contents\n"
    assert (rw / "file").read_text() == "" and not (rw / "unlink-me").exists() and not (rw / "sub").exists()
    assert stat.S_ISFIFO((rw / "fifo").lstat().st_mode) and os.readlink(rw / "link") == "/etc"
    if ABI >= 2:
        assert (rw / "b" / "moved").read_text() == "m" and (rw / "b" / "linked").samefile(rw / "b" / "moved")


@needs_landlock
def test_a_file_rule_gives_file_rights_and_missing_paths_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("old")
    policy = Policy(read_write=[str(tmp_path / "data"), "/dev/null", str(tmp_path / "missing" / "x")],
                    read_only=[str(tmp_path / "nothing-here")], executable=[str(tmp_path / "gone")])
    seen = in_domain(policy, lambda: outcomes({
        "write the file": lambda: (tmp_path / "data").write_text("new"),
        "read the file": lambda: (tmp_path / "data").read_text(),
        "write /dev/null": lambda: Path("/dev/null").write_text("x"),
        "make a sibling": lambda: (tmp_path / "sibling").write_text("x"),
        "list its directory": lambda: os.listdir(tmp_path),
    }))
    assert seen == {"write the file": "ok", "read the file": "ok", "write /dev/null": "ok",
                    "make a sibling": "EACCES", "list its directory": "EACCES"}
    assert (tmp_path / "data").read_text() == "new" and not (tmp_path / "sibling").exists()


@needs_landlock
def test_sqlite_cannot_attach_or_vacuum_into_a_path_outside(dirs: dict[str, Path]) -> None:
    rw, ro, out = dirs["rw"], dirs["ro"], dirs["out"]
    before = tree(ro), tree(out)

    def body() -> dict[str, str]:
        con = sqlite3.connect(rw / "db.sqlite")  # inside: works, journal and all
        con.execute("create table t (x)")
        con.execute("insert into t values (1)")
        con.commit()
        seen = {}
        for name, sql in (("attach ro", f"attach database '{ro}/a.db' as a"),
                          ("attach out", f"attach database '{out}/a.db' as a"),
                          ("vacuum into ro", f"vacuum into '{ro}/copy.db'"),
                          ("read out's secret", f"attach database '{out}/secret' as s")):
            try:
                con.execute(sql)
                if name.startswith("read"):
                    con.execute("select * from s.sqlite_master")
                seen[name] = "ok"
            except sqlite3.DatabaseError as e:
                seen[name] = str(e)
        return seen

    seen = in_domain(policy_for(dirs), body)
    assert all(message.startswith("unable to open database") for message in seen.values()), seen
    assert (tree(ro), tree(out)) == before


# -- processes, network and signals -------------------------------------------------------------


@needs_landlock
def test_a_program_started_after_restrict_is_in_the_domain(dirs: dict[str, Path]) -> None:
    """The kernel, not Python, confines it: a new interpreter has no audit hook and no pyfakefs."""
    python = [os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, os.path.dirname(sys.executable))]
    system = ["/usr", "/lib", "/lib64", "/bin"]  # the dynamic loader and the libraries Python links
    policy = Policy(read_only=[str(dirs["ro"])], read_write=[str(dirs["rw"])], executable=python + system)
    script = (
        "import sys\n"
        "for name, path, mode in (('write ro', sys.argv[1] + '/x', 'w'), ('write rw', sys.argv[2] + '/x', 'w'),\n"
        "                         ('read out', sys.argv[3] + '/secret', 'r')):\n"
        "    try:\n"
        "        open(path, mode).close()\n"
        "        print(name, 'ok')\n"
        "    except OSError as e:\n"
        "        print(name, e.errno)\n"
    )
    args = [sys.executable, "-I", "-S", "-c", script, str(dirs["ro"]), str(dirs["rw"]), str(dirs["out"])]
    shell = ["/bin/sh", "-c", f"echo x > {dirs['ro']}/by-shell"]

    def body() -> tuple[str, str, int]:
        ran = subprocess.run(args, capture_output=True, text=True, check=False)
        return ran.stdout, ran.stderr, subprocess.run(shell, capture_output=True, check=False).returncode

    stdout, stderr, shell_code = in_domain(policy, body)
    assert stdout.splitlines() == ["write ro 13", "write rw ok", "read out 13"], stderr
    assert shell_code != 0 and not (dirs["ro"] / "by-shell").exists() and (dirs["rw"] / "x").exists()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server of the test process, on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


@needs_landlock
def test_tcp_bind_is_refused_and_connect_only_when_asked(dirs: dict[str, Path], listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    def body() -> dict[str, str]:
        return outcomes({
            "bind": lambda: socket.socket().bind(("127.0.0.1", 0)),
            # Not create_connection: its getaddrinfo imports the idna codec, unreadable here.
            "connect": lambda: socket.socket().connect(("127.0.0.1", port)),
        })

    refused = "EACCES" if ABI >= 4 else "ok"  # network rules are ABI 4's
    assert in_domain(policy_for(dirs), body) == {"bind": refused, "connect": "ok"}
    assert in_domain(policy_for(dirs, deny_tcp_connect=True), body) == {"bind": refused, "connect": refused}
    assert in_domain(policy_for(dirs, deny_tcp_connect=True, tcp_connect_ports=[port]), body) == \
        {"bind": refused, "connect": "ok"}
    assert in_domain(policy_for(dirs, deny_tcp_bind=False), body) == {"bind": "ok", "connect": "ok"}


@needs_landlock
def test_signals_to_processes_outside_the_domain_fail_with_eperm(dirs: dict[str, Path]) -> None:
    outside = subprocess.Popen(["sleep", "60"])
    try:
        def body() -> dict[str, str]:
            inside = os.fork()  # the domain's own child
            if inside == 0:  # pragma: no cover
                signal.pause()
                os._exit(0)
            seen = outcomes({"outside": lambda: os.kill(outside.pid, signal.SIGTERM),
                             "the test process": lambda: os.kill(os.getppid(), 0),
                             "its own child": lambda: os.kill(inside, signal.SIGKILL)})
            os.waitpid(inside, 0)
            return seen

        if ABI >= 6:  # scopes are ABI 6's (an older kernel lets the signal through)
            assert in_domain(policy_for(dirs), body) == {"outside": "EPERM", "the test process": "EPERM",
                                                         "its own child": "ok"}
            assert outside.poll() is None
        assert in_domain(policy_for(dirs, scope_signals=False), body) == \
            {"outside": "ok", "the test process": "ok", "its own child": "ok"}
        assert outside.wait(5) == -signal.SIGTERM
    finally:
        outside.kill()
        outside.wait()


@needs_landlock
def test_abstract_unix_sockets_made_outside_the_domain_are_unreachable(dirs: dict[str, Path]) -> None:
    name = f"\0ll-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(name)
        server.listen()

        def body() -> dict[str, str]:
            own = socket.socket(socket.AF_UNIX)
            own.bind(name + "-own")
            own.listen()
            return outcomes({"outside": lambda: socket.socket(socket.AF_UNIX).connect(name),
                             "its own": lambda: socket.socket(socket.AF_UNIX).connect(name + "-own")})

        refused = "EPERM" if ABI >= 6 else "ok"
        assert in_domain(policy_for(dirs), body) == {"outside": refused, "its own": "ok"}
        assert in_domain(policy_for(dirs, scope_abstract_unix=False), body) == {"outside": "ok", "its own": "ok"}


# -- errors -----------------------------------------------------------------------------------------


@needs_landlock
def test_a_refused_rule_raises_landlock_error_and_leaves_the_thread_free(dirs: dict[str, Path]) -> None:
    too_long = "/" + "x" * 5000

    def body() -> tuple[str, int, str]:
        try:
            restrict(Policy(read_only=[too_long]))
        except LandlockError as e:
            return str(e), e.errno or 0, (dirs["out"] / "secret").read_text()
        raise AssertionError("restrict() accepted a path it cannot open")

    message, code, secret = in_domain(Policy(read_only=["/"], read_write=[str(dirs["rw"])]), body)
    assert code == errno.ENAMETOOLONG and too_long[:20] in message and secret.startswith("aws_secret")
    if ABI >= 4:
        with pytest.raises(LandlockError, match="not a TCP port: 70000"):
            in_domain(policy_for(dirs, deny_tcp_connect=True, tcp_connect_ports=[70000]), lambda: None)


def test_without_landlock_restrict_raises_landlock_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_landlock, "_probe", lambda: (0, "the kernel has no Landlock"))
    assert _landlock.abi() == 0 and _landlock.unavailable_reason() == "the kernel has no Landlock"
    with pytest.raises(LandlockUnavailable, match="Landlock is unavailable: the kernel has no Landlock"):
        restrict(Policy())


@needs_landlock
def test_restrict_works_under_pyfakefs(dirs: dict[str, Path]) -> None:
    """The fakefs runtime may restrict inside ``_fakeroot.enter``, with pyfakefs' os in place."""
    from pyfakefs.fake_filesystem_unittest import Patcher

    def body() -> dict[str, str]:
        with Patcher():
            assert not os.path.exists(dirs["ro"])  # the fake filesystem is empty
            restrict(policy_for(dirs))
        return outcomes({"read ro": lambda: (dirs["ro"] / "file").read_text(),
                         "read out": lambda: (dirs["out"] / "secret").read_text()})

    assert in_child(body) == {"read ro": "ok", "read out": "EACCES"}


def test_a_policy_takes_lists_of_paths() -> None:
    with pytest.raises(TypeError, match="read_only is a list of paths, not one path"):
        Policy(read_only="/usr")
