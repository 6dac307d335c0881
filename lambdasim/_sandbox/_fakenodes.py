"""FIFOs, device nodes and Unix sockets in the fakefs sandbox (see ``_fakeroot``).

pyfakefs fakes neither ``os.mkfifo`` nor a Unix socket's ``bind``, and ``os.mkfifo`` and
``os.mknod`` raise no audit event: left alone, they make real files on the host (the host's
/tmp for ``/tmp/x``, the host's ``/`` for a relative path, the runtime's real working
directory). Here the fake filesystem decides instead, with the errors Lambda's kernel gives:
errno 30 outside /tmp, EEXIST (EADDRINUSE for a socket) for a name taken, ENOENT for a
missing directory. What Lambda allows in /tmp (a FIFO, a socket file) cannot live in a /tmp
held in pyfakefs' memory, so it is refused with :class:`SandboxLimitError`. Abstract Unix
addresses (``"\\0name"``) and autobind (``""``) make no file and pass.

Nor does pyfakefs fake ``os.pread``, ``os.pwrite`` and ``os.posix_fallocate``: on a fake
descriptor the real calls would act on the host descriptor of that number. They are done on
the fake file here (:func:`install_positional_io`). SQLite's ``ATTACH`` and ``VACUUM INTO`` open
files in C on a connection the audit hook let through (``:memory:``): :func:`guard_sqlite`.
"""

from __future__ import annotations

import errno
import os
import posix
import socket
import stat
import sys
from collections.abc import Callable
from typing import Any, cast

from pyfakefs import fake_file, fake_filesystem, fake_os

from lambdasim._errors import SandboxLimitError

TMP = "/tmp"
NAMESPACE_HINT = ("The namespace sandbox (Linux, sandbox='namespace') enforces Lambda's filesystem for it "
                  "with the kernel; under the fakefs sandbox pyfakefs cannot see it.")
_NO_FILE_HINT = ("its /tmp lives in the runtime's memory and cannot hold {what}, which the "
                 "kernel would make in the host's filesystem. {instead}, or use the namespace sandbox (Linux, "
                 "sandbox='namespace'), whose /tmp is a real filesystem as on Lambda.")


def in_tmp(path: str) -> bool:
    return path == TMP or path.startswith(TMP + "/")


def refused(what: str) -> SandboxLimitError:
    return SandboxLimitError(f"lambdasim's fakefs sandbox refused {what}")


def _fake_path(fs: fake_filesystem.FakeFilesystem, path: Any, dir_fd: int | None) -> str:
    """``path`` (relative to the fake directory ``dir_fd`` if given) as a fake-filesystem path."""
    name = os.fsdecode(os.fspath(path))
    if dir_fd is not None and not os.path.isabs(name):
        directory: Any = fs.get_open_file(dir_fd).get_object()
        name = os.path.join(str(directory.path), name)
    return name


def _creating(fs: Any, path: str) -> tuple[str, int]:
    """The entry that creating ``path`` would add (its last symlink not followed), and the errno
    Lambda's kernel refuses it with (0: it would succeed). ``fs`` is a LambdaFilesystem."""
    try:
        entry: str = fs._entry(path)
    except OSError as e:
        return path, e.errno or errno.ENOENT
    parent = os.path.dirname(entry)
    if fs.lexists(entry):
        return entry, errno.EEXIST
    if not fs.exists(parent):
        return entry, errno.ENOENT
    if not fs.isdir(parent):
        return entry, errno.ENOTDIR
    return entry, 0 if in_tmp(entry) else errno.EROFS


def make_node(fs: Any, path: Any, mode: int, device: int = 0, *, dir_fd: int | None = None,
              call: str = "os.mknod") -> None:
    """``os.mknod``/``os.mkfifo`` in the fake filesystem, as Linux decides for sbx_user1051 (no
    CAP_MKNOD): a regular file is made; a FIFO or a socket file in /tmp is refused as the
    sandbox cannot hold one; a device fails with EPERM."""
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFDIR:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), os.fspath(path))
    if kind not in (0, stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), os.fspath(path))
    entry, code = _creating(fs, _fake_path(fs, path, dir_fd))
    if code:
        raise OSError(code, os.strerror(code), os.fspath(path))
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), os.fspath(path))
    if kind in (stat.S_IFIFO, stat.S_IFSOCK):
        what = "a FIFO" if kind == stat.S_IFIFO else "a socket file"
        raise refused(f"{call}({os.fspath(path)!r}): " + _NO_FILE_HINT.format(
            what=what, instead="Use os.pipe() (or multiprocessing.Pipe()) between processes"))
    head, tail = os.path.split(entry)
    fs.add_object(head, fake_file.FakeFile(tail, stat.S_IFREG | (stat.S_IMODE(mode) & ~fs.umask), filesystem=fs))


def unix_address(fs: Any, event: str, sock: Any, address: Any) -> None:
    """Raise what Lambda's kernel would for the socket event (bind, connect, sendto, sendmsg)
    on a Unix socket's filesystem ``address``, decided in the fake filesystem; return for
    anything else. Nothing there can be a listening socket: binding one in /tmp is refused."""
    if getattr(sock, "family", None) != socket.AF_UNIX or address is None or isinstance(address, tuple):
        return
    try:
        raw = os.fsencode(address) if isinstance(address, str) else bytes(memoryview(address))
    except TypeError:
        return  # the call itself refuses it
    if not raw or raw[:1] == b"\0":
        return  # autobind or the abstract namespace: no file
    path = os.fsdecode(raw.split(b"\0", 1)[0])  # the kernel reads a path up to its first NUL
    if event == "socket.bind":
        _entry, code = _creating(fs, path)
        if code == errno.EEXIST:
            code = errno.EADDRINUSE
        if code:
            raise OSError(code, os.strerror(code))
        raise refused(f"binding a Unix socket to {path!r}: " + _NO_FILE_HINT.format(
            what="a socket file", instead="Use an abstract address (a name that starts with '\\0'), "
                                          "which makes no file"))
    try:
        code = errno.ECONNREFUSED if fs.exists(fs._target(path)) else errno.ENOENT
    except OSError as e:
        code = e.errno or errno.ENOENT
    raise OSError(code, os.strerror(code))


def install_node_guards(fs: fake_filesystem.FakeFilesystem) -> None:
    """os.mkfifo (which pyfakefs does not fake) and posix' mkfifo and mknod (which code can call
    around the fake os) would make host files, unseen by the audit hook: they use the fake filesystem."""

    def mkfifo(path: Any, mode: int = 0o666, *, dir_fd: int | None = None) -> None:
        make_node(fs, path, stat.S_IFIFO | stat.S_IMODE(mode), dir_fd=dir_fd, call="os.mkfifo")

    def mknod(path: Any, mode: int = 0o600, device: int = 0, *, dir_fd: int | None = None) -> None:
        make_node(fs, path, mode, device, dir_fd=dir_fd)

    os.mkfifo = posix.mkfifo = mkfifo
    os.mknod = posix.mknod = mknod


def install_positional_io(fs: fake_filesystem.FakeFilesystem) -> None:
    """os.pread, os.pwrite and os.posix_fallocate, which pyfakefs does not fake, on its descriptors: the
    real calls would act on whatever host descriptor has the same number (the runtime's log)."""
    fake = fake_os.FakeOsModule(fs)
    lseek, read, write, fstat = (getattr(fake_os.FakeOsModule, n).__wrapped__
                                 for n in ("lseek", "read", "write", "fstat"))

    def at(fd: int, offset: int, act: Callable[[], Any]) -> Any:
        handle = fs.get_open_file(fd)
        if not isinstance(handle, fake_file.FakeFileWrapper):  # EBADF for what is not fake
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if offset < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        here = handle.tell()
        lseek(fake, fd, offset, os.SEEK_SET)
        try:
            return act()
        finally:
            lseek(fake, fd, here, os.SEEK_SET)

    def pread(fd: int, length: int, offset: int) -> bytes:
        return cast(bytes, at(fd, offset, lambda: read(fake, fd, length)))

    def pwrite(fd: int, data: Any, offset: int) -> int:
        return cast(int, at(fd, offset, lambda: write(fake, fd, bytes(data))))

    def posix_fallocate(fd: int, offset: int, length: int) -> None:
        if length <= 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        size = fstat(fake, fd).st_size
        if offset + length > size:
            pwrite(fd, bytes(offset + length - size), size)

    os.pread = posix.pread = pread
    os.pwrite = posix.pwrite = pwrite
    os.posix_fallocate = posix.posix_fallocate = posix_fallocate


def guard_sqlite() -> None:
    """SQLite's ATTACH and VACUUM INTO open files in C: every connection gets an authorizer that refuses
    any but in-memory ones (a handler's own set_authorizer() replaces it; the kernel's backstop, where
    there is one, still refuses the host's files). ``sqlite3`` takes ``connect`` from ``_sqlite3``
    when it is imported, which the zygote has loaded (``fakefs.main``)."""
    _sqlite3: Any = sys.modules.get("_sqlite3")
    if _sqlite3 is None:
        return
    real = _sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        connection = real(*args, **kwargs)
        connection.set_authorizer(_sqlite_authorizer)
        return connection

    _sqlite3.connect = connect
    if "sqlite3" in sys.modules:  # imported before (by the zygote or a layer's .pth): both names
        for name in ("sqlite3", "sqlite3.dbapi2"):
            setattr(sys.modules[name], "connect", connect)  # noqa: B010 - typed as the module's own


def in_memory_database(database: str) -> bool:
    return database in (":memory:", "") or database.startswith("file::memory:")


def _sqlite_authorizer(action: int, arg1: str | None, *_: Any) -> int:
    _attach, deny, ok = 24, 1, 0  # SQLITE_ATTACH (its file is arg1, None when bound later), SQLITE_DENY, SQLITE_OK
    return deny if action == _attach and (arg1 is None or not in_memory_database(arg1)) else ok


def wrap_os_method(name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]], module: Any = fake_os) -> None:
    """Put ``wrap(method)`` in place of one of pyfakefs' os (or, with ``module=fake_path``, os.path)
    functions, inside pyfakefs' own decorator: it decides, by the first caller outside pyfakefs,
    whether a call is faked at all (not for lambdasim's runtime), so the wrapper must not stand
    between it and that caller."""
    cls = module.FakeOsModule if module is fake_os else module.FakePathModule
    decorated = getattr(cls, name, None)
    if decorated is None:
        return
    wrapper = wrap(getattr(decorated, "__wrapped__", decorated))
    wrapper.__name__ = name  # the decorator calls os.<name> for callers it does not fake
    setattr(cls, name, module.handle_original_call(wrapper))
