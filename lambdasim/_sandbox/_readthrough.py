"""Inside the fakefs sandbox: reads of the read-only view go to the host, around pyfakefs.

pyfakefs answers every ``stat`` and ``listdir`` in Python, and builds its copy of a host
directory, entry by entry, the first time a path crosses it: botocore's first client (it
lists ``botocore/data`` and probes each service's directory) took seconds that way. The
view's directories (the Python installation, ``/usr``, the code at ``/var/task``, a single
layer at ``/opt``) cannot change, and where the runtime is in a Landlock domain the kernel
guarantees that and confines what any real call can read to the view. There, lookups, listings
and opens for reading of those directories are made by real system calls on the host path the
Lambda path stands for. Results name the Lambda path (a file's ``name``, an error's
``filename``). ``/tmp``, ``/etc`` (whose account files are lambdasim's) and everything the
function could change stay in pyfakefs.

Real descriptors and pyfakefs' share one number space here: a number a real file holds is
reserved in pyfakefs' table while it is open, and pyfakefs' calls on descriptors (``os.fstat``,
``os.read``, ``os.lseek``, ``os.close``) act on the real file for those numbers.
"""

from __future__ import annotations

import _io
import errno
import fcntl
import heapq
import os
import posix
import posixpath
import stat
import sys
import types
from collections.abc import Callable
from typing import Any

from pyfakefs import fake_filesystem, fake_open, fake_path, helpers

from lambdasim._sandbox._fakenodes import wrap_os_method

# pyfakefs replaces this module's `os` and `os.path` with its fakes (only the runtime's own modules are
# skipped, and calls from those would skip the fakes too): what this module needs of them it keeps here,
# where pyfakefs does not look.
_F = types.SimpleNamespace(PathLike=os.PathLike, normpath=posixpath.normpath, join=posixpath.join,
                           splitext=posixpath.splitext, strerror=posix.strerror, fcntl=fcntl.fcntl)
_real_fds: set[int] = set()  # descriptors of open read-through files, reserved in pyfakefs' table
_real_pread = posix.pread  # before _fakenodes.install_positional_io puts pyfakefs' in its place


class ReadThrough:
    """Lambda prefixes of the read-only view and the host directory each one shows."""

    def __init__(self, fs: fake_filesystem.FakeFilesystem, roots: dict[str, str]) -> None:
        self.fs = fs
        # Longest first: a root inside another (a package directory inside /usr) wins.
        self.roots = sorted(((k.rstrip("/") or "/", v.rstrip("/") or "/") for k, v in roots.items()),
                            key=lambda kv: -len(kv[0]))

    def real(self, path: Any) -> tuple[str, str] | None:
        """(host path, ``path`` as given) for ``path`` inside the view, else None (pyfakefs answers)."""
        if isinstance(path, str):
            p = path
        elif isinstance(path, _F.PathLike):
            p = path.__fspath__()
            if not isinstance(p, str):
                return None
        else:
            return None  # bytes and descriptors: pyfakefs
        if not p:
            return None
        given = p
        if p[0] != "/":
            p = _F.join(str(self.fs.cwd), p)
        trailing = p.endswith("/") and len(p) > 1
        p = _F.normpath(p)
        if p.startswith("//"):
            p = "/" + p.lstrip("/")
        for fake, host in self.roots:
            if p == fake or p.startswith(fake + "/") or fake == "/":
                rest = p[len(fake):] if fake != "/" else p
                return host + rest + ("/" if trailing else ""), given
        return None

    def on_host(self, path: Any, call: Callable[[str], Any]) -> Any:
        """``call(host path)`` for ``path`` inside the view, its errors naming ``path`` as given;
        :data:`UNMAPPED` for a path pyfakefs answers."""
        mapped = self.real(path)
        if mapped is None:
            return UNMAPPED
        try:
            return call(mapped[0])
        except OSError as e:
            raise _renamed(e, mapped[1]) from None


UNMAPPED = object()


def _renamed(e: OSError, fake: str) -> OSError:
    """The host's error, naming the path as the function gave it."""
    return OSError(e.errno, e.strerror, fake) if e.errno is not None else e


def install(rt: ReadThrough) -> None:
    """Route the read-only view's reads through ``rt`` (once per runtime process)."""
    fs = rt.fs

    def active() -> bool:
        return not getattr(fs, "building", 0)

    def bool_query(name: str, real_check: Callable[[str], bool]) -> None:
        inner = getattr(fake_filesystem.FakeFilesystem, name)

        def query(self: Any, path: Any, *args: Any, **kwargs: Any) -> bool:
            if self is fs and active() and not args and not kwargs:
                mapped = rt.real(path)
                if mapped is not None:
                    return real_check(mapped[0])
            return bool(inner(self, path, *args, **kwargs))

        setattr(type(fs), name, query)

    def _stat_mode(host: str, follow: bool = True) -> int | None:
        try:
            return (posix.stat(host) if follow else posix.lstat(host)).st_mode
        except (OSError, ValueError):
            return None

    def isdir(host: str) -> bool:
        mode = _stat_mode(host)
        return mode is not None and stat.S_ISDIR(mode)

    def isfile(host: str) -> bool:
        mode = _stat_mode(host)
        return mode is not None and stat.S_ISREG(mode)

    def islink(host: str) -> bool:
        mode = _stat_mode(host, follow=False)
        return mode is not None and stat.S_ISLNK(mode)

    for name, check in (("isdir", isdir), ("isfile", isfile), ("islink", islink)):
        bool_query(name, check)

    real_exists = fake_filesystem.FakeFilesystem.exists

    def fs_exists(self: Any, file_path: Any, check_link: bool = False) -> bool:
        if self is fs and active():
            mapped = rt.real(file_path)
            if mapped is not None:
                return _stat_mode(mapped[0], follow=not check_link) is not None
        return bool(real_exists(self, file_path, check_link))

    type(fs).exists = fs_exists  # type: ignore[method-assign]

    real_listdir = fake_filesystem.FakeFilesystem.listdir

    def fs_listdir(self: Any, target_directory: Any) -> list[Any]:
        if self is fs and active():
            names = rt.on_host(target_directory, posix.listdir)
            if names is not UNMAPPED:
                return list(names)
        return list(real_listdir(self, target_directory))

    type(fs).listdir = fs_listdir  # type: ignore[method-assign]

    def os_stat(follow_default: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(inner: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(self: Any, path: Any, *, dir_fd: int | None = None, **kwargs: Any) -> Any:
                if isinstance(path, int) and path in _real_fds:
                    return posix.fstat(path)
                if dir_fd is None and active():
                    found = rt.on_host(path, posix.stat if kwargs.get("follow_symlinks", follow_default)
                                       else posix.lstat)
                    if found is not UNMAPPED:
                        return found
                return inner(self, path, dir_fd=dir_fd, **kwargs)
            return wrapper
        return wrap

    wrap_os_method("stat", os_stat(True))
    wrap_os_method("lstat", os_stat(False))

    def getsize(inner: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, path: Any) -> int:
            if active():
                found = rt.on_host(path, posix.stat)
                if found is not UNMAPPED:
                    return int(found.st_size)
            return int(inner(self, path))
        return wrapper

    wrap_os_method("getsize", getsize, fake_path)
    _install_descriptors(fs)
    _install_open(fs, rt)


# -- descriptors ----------------------------------------------------------------------------------


def _reserve(fs: Any, fd: int) -> bool:
    """Keep pyfakefs from handing out ``fd``, which a real file holds; False if pyfakefs uses it."""
    table: list[Any] = fs.open_files
    if fd < len(table):
        if table[fd]:
            return False
        if fd in fs._free_fd_heap:
            fs._free_fd_heap.remove(fd)
            heapq.heapify(fs._free_fd_heap)
        table[fd] = None
    else:
        for free in range(len(table), fd):
            table.append(None)
            heapq.heappush(fs._free_fd_heap, free)
        table.append(None)
    _real_fds.add(fd)
    return True


def _release(fs: Any, fd: int) -> None:
    if fd in _real_fds:
        _real_fds.discard(fd)
        if fd < len(fs.open_files) and not fs.open_files[fd]:
            heapq.heappush(fs._free_fd_heap, fd)


def _install_descriptors(fs: Any) -> None:
    """pyfakefs' descriptor calls on a real file's number act on the real file."""
    for name, real in (("fstat", posix.fstat), ("read", posix.read), ("lseek", posix.lseek),
                       ("isatty", posix.isatty), ("fsync", posix.fsync), ("close", None)):
        def wrap(inner: Callable[..., Any], _real: Any = real) -> Callable[..., Any]:
            def wrapper(self: Any, fd: Any, *args: Any) -> Any:
                if isinstance(fd, int) and fd in _real_fds:
                    if _real is None:  # close
                        _release(fs, fd)
                        return posix.close(fd)
                    return _real(fd, *args)
                return inner(self, fd, *args)
            return wrapper

        wrap_os_method(name, wrap)

    fake_pread = posix.pread

    def pread(fd: int, length: int, offset: int) -> bytes:
        if fd in _real_fds:
            return _real_pread(fd, length, offset)
        return fake_pread(fd, length, offset)

    real_os: Any = sys.modules["os"]  # the real module: this one's `os` is pyfakefs'
    real_os.pread = posix.pread = pread


class _HostFile(_io.FileIO):
    """A real file of the view, opened for reading; its descriptor is reserved in pyfakefs' table."""

    _fs: Any = None

    def close(self) -> None:
        fd = -1 if self.closed else self.fileno()
        try:
            super().close()
        finally:
            if fd >= 0 and self._fs is not None:
                _release(self._fs, fd)


def _open_host(fs: Any, host: str, fake: str, mode: str, buffering: int, encoding: str | None,
               errors: str | None, newline: str | None) -> Any:
    try:
        fd = posix.open(host, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise _renamed(e, fake) from None
    try:
        if stat.S_ISDIR(posix.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, _F.strerror(errno.EISDIR), fake)
        if not _reserve(fs, fd):
            # pyfakefs has a file at this number: move the real one above its table.
            moved = _F.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, len(fs.open_files))
            posix.close(fd)
            fd = moved
            _reserve(fs, fd)
    except BaseException:
        posix.close(fd)
        raise
    try:
        raw = _HostFile(fd, "r", closefd=True)
    except BaseException:
        _release(fs, fd)
        posix.close(fd)
        raise
    raw._fs = fs
    raw.name = fake  # the path as given, as open(...).name says on Lambda
    binary = "b" in mode
    if buffering == 0:
        if not binary:
            raw.close()
            raise ValueError("can't have unbuffered text I/O")
        return raw
    size = buffering if buffering > 1 else _io.DEFAULT_BUFFER_SIZE
    buffered = _io.BufferedReader(raw, size)
    if binary:
        return buffered
    return _io.TextIOWrapper(buffered, encoding, errors, newline, line_buffering=buffering == 1)


def _install_open(fs: Any, rt: ReadThrough) -> None:
    inner = fake_open.FakeFileOpen.call

    def call(self: Any, file_: Any, mode: str = "r", buffering: int = -1, encoding: str | None = None,
             errors: str | None = None, newline: str | None = None, closefd: bool = True,
             opener: Any = None, open_modes: Any = None, **kwargs: Any) -> Any:
        if (self.filesystem is fs and open_modes is None and opener is None and not kwargs and closefd
                and not getattr(fs, "building", 0)
                and not any(c in mode for c in "wax+")):
            mapped = rt.real(file_)
            if mapped is not None:
                if "b" in mode and encoding is not None:
                    raise ValueError("binary mode doesn't take an encoding argument")
                return _open_host(fs, mapped[0], mapped[1], mode, buffering, encoding, errors, newline)
        return inner(self, file_, mode, buffering, encoding, errors, newline, closefd, opener,
                     open_modes=open_modes, **kwargs)

    fake_open.FakeFileOpen.call = call  # type: ignore[method-assign]


# -- pyfakefs' check for calls from lambdasim's own modules ---------------------------------------


def install_fast_skip_check() -> None:
    """pyfakefs asks, on every faked call, whether it comes from a module it skips (lambdasim's
    runtime), by formatting the stack with its source lines; this asks the frames directly."""
    skipped_files: dict[str, bool] = {}
    stdlib, own = helpers.STDLIB_PATH, helpers.PYFAKEFS_PATH
    original = helpers.is_called_from_skipped_module
    if getattr(original, "lambdasim", False):
        return

    def is_called_from_skipped_module(skip_names: Any, case_sensitive: bool, check_open_code: bool = False) -> bool:
        if not skip_names and not check_open_code:
            return False
        frame: Any = sys._getframe(1)
        frames: list[Any] = []
        while frame is not None and len(frames) < 5:  # pyfakefs looks at 6 frames, its own included
            frames.append(frame)
            frame = frame.f_back
        if check_open_code:
            if len(frames) >= 3 and frames[2].f_code.co_name == "open_code" and \
                    frames[2].f_code.co_filename.startswith(own):
                return True  # pyfakefs' open_code calling the real one
            if not skip_names:
                return False
        for f in frames:
            name = f.f_code.co_filename
            if name.startswith("<frozen ") or name.startswith(stdlib) or name.startswith(own):
                continue
            hit = skipped_files.get(name)
            if hit is None:
                module = _F.splitext(name)[0].replace("/", ".")
                hit = any(module == sn or module.endswith("." + sn) for sn in skip_names)
                skipped_files[name] = hit
            return hit
        return False

    is_called_from_skipped_module.lambdasim = True  # type: ignore[attr-defined]
    from pyfakefs import fake_io, fake_os, fake_pathlib

    for module in (helpers, fake_os, fake_path, fake_open, fake_io, fake_pathlib):
        if getattr(module, "is_called_from_skipped_module", None) is original:
            module.is_called_from_skipped_module = is_called_from_skipped_module  # type: ignore[attr-defined]
