"""Inside the fakefs sandbox: Lambda's filesystem for one runtime process, made with pyfakefs.

:func:`enter` runs in the runtime process before Init. It builds a fake filesystem:
host directories the handler may read (the Python installation, ``/usr``, ``/etc``)
appear at their paths, the function's code at ``/var/task`` and its layers at ``/opt``,
all read-only; ``/tmp`` is a mount of ``ephemeral_storage_mb``. pyfakefs refuses nothing
by itself, so :class:`LambdaFilesystem` refuses every change outside ``/tmp`` with
errno 30, as Lambda's read-only root does. Imports from ``/var/task`` and ``/opt`` go
through a path hook that reads the host's files, so modules keep their Lambda paths
(``_fakepaths``). The part every function shares is built once, in the zygote (:func:`prebuild`),
and pyfakefs' patcher is set up before the function is known (:func:`prepare`, in a spare).
Reads of the read-only view skip pyfakefs where Landlock backs them (``_readthrough``), and
``/tmp`` handles flush only where it could show (``_tmpio``).

``/tmp`` must outlive the runtime process (a reset keeps it), so its contents are
mirrored to a host directory owned by the instance's keeper: after Init, after each
invocation and on every way out the runtime can still act on (``os._exit``, signals it
sends itself, the keeper's request before a kill). The next runtime loads it back.

pyfakefs sees Python-level file access only. An audit hook turns what would reach the
host around it (real opens for writing, C-level file changes, subprocesses, ``ctypes``,
``sqlite3`` on a file) into a :class:`SandboxLimitError`. FIFOs, device nodes and Unix
socket paths, which pyfakefs does not fake and no audit event names, are decided in the fake
filesystem (``_fakenodes``).
"""

from __future__ import annotations

import _posixsubprocess
import contextlib
import errno
import os
import posix
import signal
import socket
import stat
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

from pyfakefs import fake_file, fake_filesystem, fake_open, fake_os, helpers
from pyfakefs.fake_filesystem_unittest import Patcher

from lambdasim import _runtime
from lambdasim._errors import SandboxLimitError
from lambdasim._runtime import host_tmp_path
from lambdasim._sandbox import _confine, _fakenodes, _fakepaths, _readthrough, _tmpio
from lambdasim._sandbox._fakenodes import NAMESPACE_HINT as _NAMESPACE_HINT
from lambdasim._sandbox._fakenodes import TMP, make_node, unix_address, wrap_os_method
from lambdasim._sandbox._fakepaths import PathMap
from lambdasim._sandbox._layout import ETC_FILES, FAKEFS_CLONES, SANDBOX_GID, SANDBOX_HOME, SANDBOX_UID
from lambdasim._sandbox._spec import InstanceSpec

# Modules of the runtime itself: pyfakefs leaves them (and calls made from them) on the real filesystem.
SKIP_NAMES = ["lambdasim._runtime", "lambdasim._wire", "lambdasim._sandbox._fakeroot", "lambdasim._sandbox._restore",
              "lambdasim._sandbox._fakepaths"]

_real_exit = os._exit
_real_kill = os.kill
_real_killpg = os.killpg
_real_abort = os.abort
_real_raise_signal = signal.raise_signal
real_setpgid = posix.setpgid  # for a restored instance's keeper (see _restore); the runtime's refuses


def _under_tmp(path: str) -> bool:
    """Whether ``path`` may change: it is in /tmp (or it is /dev/null)."""
    return path == TMP or path.startswith(TMP + "/") or path == "/dev/null"


def _deny(path: Any, path2: Any = None, code: int = errno.EROFS) -> OSError:
    if path2 is None:
        return OSError(code, os.strerror(code), path)
    return OSError(code, os.strerror(code), path, None, path2)


class LambdaFilesystem(fake_filesystem.FakeFilesystem):
    """pyfakefs' filesystem with Lambda's mounts: only ``/tmp`` may change.

    Installed by changing the class of the Patcher's filesystem, so that everything
    pyfakefs routes through it (os, open, pathlib, shutil) is checked here.
    """

    building = 0  # > 0 while lambdasim (or pyfakefs' lazy reads of host directories) adds entries
    _user = 0

    def _entry(self, path: Any) -> str:
        """The absolute path of the directory entry ``path`` names (its last symlink not followed)."""
        p = self.absnormpath(self.make_string_path(path))
        head, tail = os.path.split(p)
        return os.path.join(self.resolve_path(head), tail) if head != p else p

    def _target(self, path: Any) -> str:
        """The absolute path ``path`` leads to, every symlink followed."""
        return str(self.resolve_path(self.make_string_path(path)))

    def _parent_exists(self, entry: str) -> bool:
        return self.isdir(os.path.dirname(entry))

    def _check_new(self, path: Any) -> None:
        """Creating the entry ``path``: errno 30 unless it is in /tmp (or pyfakefs will refuse anyway)."""
        if self.building or isinstance(path, int):
            return
        entry = self._entry(path)
        if not _under_tmp(entry) and self._parent_exists(entry) and not self.lexists(entry):
            raise _deny(path)

    def _check_entry(self, path: Any) -> None:
        """Removing or replacing the entry ``path``."""
        if self.building:
            return
        entry = self._entry(path)
        if not _under_tmp(entry) and self.lexists(entry):
            raise _deny(path)

    def _check_change(self, path: Any, follow: bool = True) -> None:
        """Changing what ``path`` leads to (contents, mode, times)."""
        if self.building:
            return
        if isinstance(path, int):
            target = str(getattr(self.get_open_file(path).get_object(), "path", ""))
        else:
            target = self._target(path) if follow else self._entry(path)
        if not _under_tmp(target) and self.lexists(target):
            raise _deny(path)

    def lexists(self, path: Any) -> bool:
        return bool(self.exists(path, check_link=True))

    # -- what pyfakefs routes changes through --------------------------------------------

    def makedir(self, dir_path: Any, mode: int = 0o777) -> None:
        self._check_new(dir_path)
        super().makedir(dir_path, mode)

    def makedirs(self, dir_name: Any, mode: int = 0o777, exist_ok: bool = False) -> None:
        if not self.building:
            # os.makedirs fails at the first directory it has to create, naming that one.
            missing = self.absnormpath(self.make_string_path(dir_name))
            while not self.exists(os.path.dirname(missing)) and os.path.dirname(missing) != missing:
                missing = os.path.dirname(missing)
            if not self.exists(missing):
                self._check_new(missing)
        super().makedirs(dir_name, mode, exist_ok)

    def create_file_internally(self, file_path: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("read_from_real_fs"):
            self._check_new(file_path)
        return super().create_file_internally(file_path, *args, **kwargs)

    def create_symlink(self, file_path: Any, link_target: Any, create_missing_dirs: bool = True) -> Any:
        self._check_new(file_path)
        return super().create_symlink(file_path, link_target, create_missing_dirs)

    def link(self, old_path: Any, new_path: Any, follow_symlinks: bool = True) -> Any:
        if not self.building and self.lexists(old_path) and self._parent_exists(self._entry(new_path)):
            old = self._target(old_path) if follow_symlinks else self._entry(old_path)
            if _under_tmp(old) != _under_tmp(self._entry(new_path)):
                raise _deny(old_path, new_path, errno.EXDEV)
            if not _under_tmp(old) and not self.lexists(new_path):
                raise _deny(old_path, new_path)
        return super().link(old_path, new_path, follow_symlinks)

    def rename(self, old_file_path: Any, new_file_path: Any, force_replace: bool = False) -> None:
        if not self.building and self.lexists(old_file_path) and self._parent_exists(self._entry(new_file_path)):
            old, new = self._entry(old_file_path), self._entry(new_file_path)
            if _under_tmp(old) != _under_tmp(new):
                raise _deny(old_file_path, new_file_path, errno.EXDEV)
            if not _under_tmp(old):
                raise _deny(old_file_path, new_file_path)
        super().rename(old_file_path, new_file_path, force_replace)

    def remove_object(self, file_path: Any) -> None:
        self._check_entry(file_path)
        super().remove_object(file_path)

    def remove(self, path: Any) -> None:
        self._check_entry(path)
        super().remove(path)

    def rmdir(self, target_directory: Any, allow_symlink: bool = False) -> None:
        self._check_entry(target_directory)
        super().rmdir(target_directory, allow_symlink)

    def chmod(self, path: Any, mode: int, follow_symlinks: bool = True, force_unix_mode: bool = False) -> None:
        if _in_os_open_without_create():
            return  # pyfakefs' os.open applies its mode to a file it opens: open(2) only to one it creates
        self._check_change(path, follow_symlinks)
        super().chmod(path, mode, follow_symlinks, force_unix_mode)

    def utime(self, path: Any, times: Any = None, *, ns: Any = None, follow_symlinks: bool = True) -> None:
        self._check_change(path, follow_symlinks)
        super().utime(path, times, ns=ns, follow_symlinks=follow_symlinks)

    def change_disk_usage(self, usage_change: int, file_path: Any, st_dev: int) -> None:
        try:
            super().change_disk_usage(usage_change, file_path, st_dev)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            # write() reports no file name; pyfakefs adds one.
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None

    @contextlib.contextmanager
    def adding(self) -> Iterator[None]:
        """Let lambdasim (or pyfakefs on its behalf) add entries anywhere.

        pyfakefs checks that the user may write to each directory it adds to; a user other
        than root owns few host directories (/usr, the Python installation), and pyfakefs adds
        host entries lazily, when a directory is first listed. That check is bookkeeping, not
        the function's access, so entries are added as root; host entries keep their owner
        and mode, and the function's own access is checked as its user's.
        """
        if not self.building:
            self._user = helpers.get_uid()
            helpers.set_uid(0)
        self.building += 1
        try:
            yield
        finally:
            self.building -= 1
            if not self.building:
                helpers.set_uid(self._user)

    # pyfakefs reads host directories lazily, adding their entries when first listed.
    def add_real_file(self, *args: Any, **kwargs: Any) -> Any:
        with self.adding():
            return super().add_real_file(*args, **kwargs)

    def add_real_directory(self, *args: Any, **kwargs: Any) -> Any:
        with self.adding():
            return super().add_real_directory(*args, **kwargs)

    def add_real_symlink(self, *args: Any, **kwargs: Any) -> Any:
        with self.adding():
            return super().add_real_symlink(*args, **kwargs)


_OS_OPEN = fake_os.FakeOsModule.open.__wrapped__.__code__  # type: ignore[attr-defined]


def _in_os_open_without_create() -> bool:
    frame: Any = sys._getframe(2)  # past LambdaFilesystem.chmod and FakeOsModule.chmod
    for _ in range(4):  # the decorator's frame may stand between
        if frame is None:
            return False
        if frame.f_code is _OS_OPEN:
            return not frame.f_locals.get("flags", 0) & os.O_CREAT
        frame = frame.f_back
    return False


def _dead(handle: Any) -> bool:
    """A weak proxy whose file is gone."""
    if not isinstance(handle, weakref.ProxyTypes):
        return False
    try:
        handle.__class__  # noqa: B018 - any use of a dead proxy raises ReferenceError
    except ReferenceError:
        return True
    return False


def _install_pyfakefs_guards() -> None:
    """Checks at the entry points pyfakefs does not route through the filesystem's methods.

    Called once per runtime process; patches classes of this process only.
    """
    real_call = fake_open.FakeFileOpen.call

    def call(self: Any, file_: Any, mode: str = "r", *args: Any, open_modes: Any = None, **kwargs: Any) -> Any:
        fs = self.filesystem
        if isinstance(fs, LambdaFilesystem) and not fs.building and not isinstance(file_, int):
            writes = (open_modes.can_write or open_modes.truncate or open_modes.append
                      or not open_modes.must_exist) if open_modes is not None else any(c in mode for c in "wax+")
            if writes:
                target = fs._target(file_)
                if not _under_tmp(target):
                    exclusive = open_modes.must_not_exist if open_modes is not None else "x" in mode
                    if (fs.lexists(target) and not exclusive) or (not fs.lexists(target) and fs._parent_exists(target)):
                        raise _deny(file_)
        handle = real_call(self, file_, mode, *args, open_modes=open_modes, **kwargs)  # type: ignore[misc]
        if open_modes is None and isinstance(handle, fake_file.FakeFileWrapper) and handle.filedes is not None:
            # open(), not os.open(): CPython closes (and flushes) a file once nothing refers to it, so
            # `open(p, "w").write(s)` writes at once. pyfakefs' table of descriptors would keep it
            # alive; it holds a weak proxy instead, and the file closes itself when dropped.
            handles = fs.open_files[handle.filedes]
            handles[:] = [weakref.proxy(h) if h is handle else h for h in handles]
        return handle

    def close_when_dropped(self: Any) -> None:
        try:
            if not self.closed:
                self.close()
        except Exception as e:  # noqa: BLE001 - as CPython does for a file closed by the collector
            with contextlib.suppress(Exception):
                sys.stderr.write(f"Exception ignored while closing a dropped file: {e!r}\n")
        finally:
            # A close that failed (e.g. no space left) leaves the proxy behind: take it out.
            with contextlib.suppress(Exception):
                fd, fs = self.filedes, self.filesystem
                mine = {id(r) for r in weakref.getweakrefs(self)}
                handles = fs.open_files[fd] if fd is not None and fd < len(fs.open_files) else None
                if handles:
                    handles[:] = [h for h in handles if id(h) not in mine and not _dead(h)]
                    if not handles:
                        fs.close_open_file(fd)

    fake_open.FakeFileOpen.call = call  # type: ignore[method-assign]
    fake_file.FakeFileWrapper.__del__ = close_when_dropped  # type: ignore[attr-defined]

    def truncate(inner: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, path: Any, length: int) -> Any:
            self.filesystem._check_change(path)
            return inner(self, path, length)
        return wrapper

    wrap_os_method("truncate", truncate)

    for name in ("chown", "lchown", "setxattr", "removexattr"):
        def guarded(inner: Callable[..., Any], _name: str = name) -> Callable[..., Any]:
            def wrapper(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
                self.filesystem._check_change(path, _name != "lchown" and kwargs.get("follow_symlinks", True))
                return inner(self, path, *args, **kwargs)
            return wrapper

        wrap_os_method(name, guarded)

    def mknod(_inner: Callable[..., Any]) -> Callable[..., Any]:
        # pyfakefs' mknod would keep a FIFO (as root) that the mirror writes as a regular file.
        def wrapper(self: Any, path: Any, mode: int = 0o600, device: int = 0, *, dir_fd: int | None = None) -> None:
            make_node(self.filesystem, path, mode, device, dir_fd=dir_fd)
        return wrapper

    wrap_os_method("mknod", mknod)

    # A last line for whatever adds, removes or rewrites outside /tmp by another route.
    real_add, real_remove = fake_file.FakeDirectory.add_entry, fake_file.FakeDirectory.remove_entry
    real_set = fake_file.FakeFile.set_contents

    def _net(obj: Any, name: str = "") -> None:
        fs = obj.filesystem
        if not isinstance(fs, LambdaFilesystem) or fs.building or (obj.parent_dir is None and not name):
            return  # a file not in the tree yet
        path = str(obj.path)
        full = os.path.join(path, name) if name else path
        if not _under_tmp(full):
            raise _deny(full)

    def add_entry(self: Any, path_object: Any) -> None:
        _net(self, str(path_object.name))
        real_add(self, path_object)

    def remove_entry(self: Any, pathname_name: str, recursive: bool = True) -> None:
        _net(self, pathname_name)
        real_remove(self, pathname_name, recursive)

    def set_contents(self: Any, contents: Any, encoding: str | None = None) -> bool:
        _net(self)
        return bool(real_set(self, contents, encoding))

    fake_file.FakeDirectory.add_entry = add_entry  # type: ignore[method-assign]
    fake_file.FakeDirectory.remove_entry = remove_entry  # type: ignore[method-assign]
    fake_file.FakeFile.set_contents = set_contents  # type: ignore[method-assign]

    # pyfakefs' os.write/os.read on the standard streams fail (they are not fake files).
    for name, real_fn in (("write", os.write), ("read", os.read), ("fstat", os.fstat)):
        def std(inner: Callable[..., Any], _real: Callable[..., Any] = real_fn) -> Callable[..., Any]:
            def wrapper(self: Any, fd: Any, *args: Any) -> Any:
                if isinstance(fd, int) and fd in (0, 1, 2):
                    return _real(fd, *args)
                return inner(self, fd, *args)
            return wrapper

        wrap_os_method(name, std)

    def lseek(inner: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, fd: int, pos: int, whence: int) -> int:
            inner(self, fd, pos, whence)  # pyfakefs' returns None: os.lseek returns the new offset
            return cast(int, self.filesystem.get_open_file(fd).tell())
        return wrapper

    wrap_os_method("lseek", lseek)


# -- /tmp kept on the host ---------------------------------------------------------------------


class TmpMirror:
    """Mirrors the fake /tmp to a host directory, writing only what changed since the last time."""

    def __init__(self, fs: LambdaFilesystem, backing: str) -> None:
        self.fs = fs
        self.backing = backing
        self.known: dict[str, tuple[Any, ...]] = {}
        self.broken = False
        self.active = False  # the audit hook lets these writes (to the backing directory) through

    def _walk(self) -> Iterator[tuple[str, Any]]:
        stack = [("", self.fs.get_object(TMP))]
        while stack:
            rel, directory = stack.pop()
            for name, obj in list(directory.entries.items()):
                path = f"{rel}/{name}" if rel else name
                yield path, obj
                if stat.S_ISDIR(obj.st_mode):
                    stack.append((path, obj))

    def _state(self) -> dict[str, tuple[Any, ...]]:
        state: dict[str, tuple[Any, ...]] = {}
        first: dict[int, str] = {}
        for path, obj in self._walk():
            mode = obj.st_mode
            if stat.S_ISDIR(mode):
                state[path] = ("d", stat.S_IMODE(mode))
            elif stat.S_ISLNK(mode):
                state[path] = ("l", obj.contents)
            elif id(obj) in first:  # a hard link to a file seen before
                state[path] = ("h", first[id(obj)])
            else:
                first[id(obj)] = path
                # The contents object changes whenever pyfakefs stores new contents.
                state[path] = ("f", stat.S_IMODE(mode), obj.byte_contents or b"", obj.st_mtime)
        return state

    def load(self) -> None:
        """Fill the fake /tmp from the host directory (a runtime after a reset)."""
        inodes: dict[tuple[int, int], str] = {}
        with self.fs.adding():
            for base, dirs, files in os.walk(self.backing):
                rel_base = os.path.relpath(base, self.backing)
                for name in sorted(dirs + files):
                    real = os.path.join(base, name)
                    rel = name if rel_base == "." else f"{rel_base}/{name}"
                    fake = f"{TMP}/{rel}"
                    st = os.lstat(real)
                    if stat.S_ISLNK(st.st_mode):
                        self.fs.create_symlink(fake, os.readlink(real))
                    elif stat.S_ISDIR(st.st_mode):
                        self.fs.create_dir(fake, stat.S_IMODE(st.st_mode), apply_umask=False)
                    elif (st.st_dev, st.st_ino) in inodes:
                        self.fs.link(f"{TMP}/{inodes[(st.st_dev, st.st_ino)]}", fake)
                    elif stat.S_ISREG(st.st_mode):
                        inodes[(st.st_dev, st.st_ino)] = rel
                        with open(real, "rb") as f:
                            data = f.read()
                        obj = self.fs.create_file(fake, stat.S_IFREG | stat.S_IMODE(st.st_mode), contents=data,
                                                  apply_umask=False)
                        obj.st_mtime = st.st_mtime
        self.known = self._state()

    def sync(self) -> None:
        """Write what changed in the fake /tmp since the last sync to the host directory."""
        _tmpio.flush_all()  # what open handles hold is on Lambda's disk already
        state = self._state()
        if state == self.known:
            return
        join = os.path.join
        self.active = True
        try:
            if self.broken:  # an earlier sync failed half-way: write everything again
                for name in posix.listdir(self.backing):
                    self._remove(join(self.backing, name))
                self.known = {}
                self.broken = False
            # Remove what went away or changed kind, deepest first.
            for path in sorted(self.known, reverse=True):
                was, now = self.known[path], state.get(path)
                if now == was or (now is not None and now[0] == was[0] and was[0] in "df"):
                    continue
                self._remove(join(self.backing, path))
            # Hard links last: the file they name may come later in this order.
            for path in sorted(state, key=lambda p: (state[p][0] == "h", p)):
                new: tuple[Any, ...] = state[path]
                old: tuple[Any, ...] | None = self.known.get(path)
                if new == old:
                    continue
                real = join(self.backing, path)
                kind = new[0]
                if kind == "d":
                    if old is None or old[0] != "d":
                        posix.mkdir(real, 0o700)
                    posix.chmod(real, new[1] | 0o700)
                elif kind == "l":
                    with contextlib.suppress(FileNotFoundError):
                        posix.unlink(real)
                    posix.symlink(new[1], real)
                elif kind == "h":
                    with contextlib.suppress(FileNotFoundError):
                        posix.unlink(real)
                    posix.link(join(self.backing, new[1]), real)
                else:
                    if old is not None and old[0] == "f" and old[2] is new[2]:  # same contents: mode, times
                        posix.chmod(real, new[1])
                        posix.utime(real, (new[3], new[3]))
                        continue
                    fd = posix.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                    try:
                        view = memoryview(new[2])
                        while view:
                            view = view[posix.write(fd, view):]
                    finally:
                        posix.close(fd)
                    posix.chmod(real, new[1])
                    posix.utime(real, (new[3], new[3]))
        except BaseException:
            self.broken = True
            raise
        finally:
            self.active = False
        self.known = state

    @staticmethod
    def _remove(real: str) -> None:
        try:
            if stat.S_ISDIR(posix.lstat(real).st_mode):
                for base, dirs, files in os.walk(real, topdown=False):
                    for name in files:
                        posix.unlink(os.path.join(base, name))
                    for name in dirs:
                        d = os.path.join(base, name)
                        (posix.unlink if os.path.islink(d) else posix.rmdir)(d)
                posix.rmdir(real)
            else:
                posix.unlink(real)
        except FileNotFoundError:
            pass


# -- the audit hook: what pyfakefs cannot see ------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# os.mkfifo and os.mknod raise no audit event: _install_node_guards replaces them.
_CHANGES = frozenset({
    "os.chmod", "os.chown", "os.chflags", "os.link", "os.mkdir", "os.remove", "os.rename", "os.rmdir",
    "os.setxattr", "os.removexattr", "os.symlink", "os.truncate", "os.utime",
})
_PROCESSES = {
    "subprocess.Popen": "subprocess.Popen", "os.system": "os.system", "os.exec": "os.exec*",
    "os.posix_spawn": "os.posix_spawn", "os.spawn": "os.spawn*", "os.startfile": "os.startfile",
}
_NETWORK = frozenset({"socket.connect", "socket.getaddrinfo", "socket.bind"})
_UNIX_ADDRESSED = frozenset({"socket.bind", "socket.connect", "socket.sendto", "socket.sendmsg"})
_CTYPES = {"ctypes.dlopen": "loading a library with ctypes", "ctypes.dlsym": "looking up a C function with ctypes",
           "ctypes.call_function": "calling a C function through ctypes"}


def install_audit_hook(readable: list[str], mirror: TmpMirror) -> None:
    """Refuse what would reach the host around pyfakefs. Audit hooks cannot be removed:
    this runs only in runtime processes of the fakefs sandbox."""
    roots = tuple(r.rstrip("/") + "/" for r in readable)

    def backing() -> str:  # read each time: a restored instance's keeper moves it (see moved_tmp)
        return mirror.backing.rstrip("/") + "/"

    def refuse(what: str) -> SandboxLimitError:
        return SandboxLimitError(f"lambdasim's fakefs sandbox refused {what}. {_NAMESPACE_HINT}")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            if not isinstance(path, (str, bytes)):
                return  # a descriptor
            path = os.fsdecode(path)
            if not path.startswith("/"):
                # The event does not say which directory a relative path is from: with a descriptor of a
                # directory in the view (dir_fd), "../.." would reach any host file. lambdasim's own real
                # opens are absolute (the runtime's real working directory is "/").
                raise refuse(f"a real open({path!r}) of a relative path, made below pyfakefs (by C code or "
                             "posix.open with dir_fd)")
            if mirror.active and (path + "/").startswith(backing()):
                return
            writes = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (isinstance(mode, str) and any(
                c in mode for c in "wax+"))
            if writes:
                raise refuse(f"a real open({path!r}, {mode or flags!r}) for writing, made below pyfakefs "
                             "(by C code or the io/posix modules directly)")
            if not path.startswith(roots) and path not in ("/dev/null", "/dev/urandom") and os.path.exists(path):
                raise refuse(f"a real open({path!r}) of a host file outside the function's view")
        elif event in _CHANGES:
            # os.symlink and os.link name the new entry second.
            paths = [os.fsdecode(a) for a in args[:2] if isinstance(a, (str, bytes))]
            if mirror.active and any((p + "/").startswith(backing()) for p in paths):
                return
            raise refuse(f"{event}({', '.join(map(repr, paths))}) on the host's filesystem, made below pyfakefs")
        elif event == "sqlite3.connect":
            database = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else str(args[0])
            if not _fakenodes.in_memory_database(database):
                raise refuse(f"sqlite3.connect({database!r}): SQLite reads and writes files in C, below pyfakefs "
                             "(use ':memory:' here)")
        elif event in _PROCESSES:
            raise refuse(f"{_PROCESSES[event]}({args[0]!r}): a new program runs outside the fake filesystem")
        elif event in _CTYPES:
            raise refuse(f"{_CTYPES[event]} ({args[0]!r}): C code reaches the host's files directly")
        elif event in _UNIX_ADDRESSED or event in _NETWORK:
            if event != "socket.getaddrinfo":
                # A Unix socket's path is looked up by the kernel on the host: decide it in the fake one.
                unix_address(mirror.fs, event, args[0], args[1])
            if event not in _NETWORK or _runtime.network_watch is None:
                return
            # network="isolated" on the host's network: refused as the namespace sandbox's kernel refuses.
            code = _runtime.network_watch.check(event, args)
            if code and event == "socket.getaddrinfo":
                raise socket.gaierror(code, "Temporary failure in name resolution")
            if code:
                raise OSError(code, os.strerror(code))

    sys.addaudithook(hook)

    def fork_exec(*args: Any) -> None:  # below subprocess, with no audit event of its own
        raise refuse(f"_posixsubprocess.fork_exec({args[0]!r}): a new program runs outside the fake filesystem")

    setattr(_posixsubprocess, "fork_exec", fork_exec)  # noqa: B010 - typeshed types its 23 arguments
    _fakenodes.guard_sqlite()


# -- entering the fake root ---------------------------------------------------------------------

_state: dict[str, Any] = {}


def _passwd_entries() -> None:
    import grp
    import pwd

    real_getpwuid, real_getpwnam, real_getgrgid = pwd.getpwuid, pwd.getpwnam, grp.getgrgid
    me = pwd.struct_passwd(("sbx_user1051", "x", SANDBOX_UID, SANDBOX_GID, "", SANDBOX_HOME, "/sbin/nologin"))
    group = grp.struct_group(("sbx_user1051", "x", SANDBOX_GID, []))

    def getpwuid(uid: int) -> pwd.struct_passwd:
        return me if uid == SANDBOX_UID else real_getpwuid(uid)

    def getpwnam(name: str) -> pwd.struct_passwd:
        return me if name == "sbx_user1051" else real_getpwnam(name)

    def getgrgid(gid: int) -> grp.struct_group:
        return group if gid == SANDBOX_GID else real_getgrgid(gid)

    pwd.getpwuid, pwd.getpwnam, grp.getgrgid = getpwuid, getpwnam, getgrgid  # type: ignore[assignment]
    # The function runs as sbx_user1051, as on Lambda; pyfakefs keeps checking permissions
    # as the host user, who owns the code.
    for module in (os, fake_os.FakeOsModule):
        for name, value in (("getuid", SANDBOX_UID), ("geteuid", SANDBOX_UID), ("getgid", SANDBOX_GID),
                            ("getegid", SANDBOX_GID)):
            setattr(module, name, lambda *_, _value=value: _value)


def _build_host(fs: LambdaFilesystem, layout: dict[str, Any], paths: PathMap) -> list[str]:
    """Add what every function sees of the host; returns the host directories it may read."""
    readable: list[str] = []
    for target, link in layout["links"].items():
        fs.create_symlink("/" + target, link)
    for real in layout["binds"]:
        if real == "/etc":
            continue
        readable.append(real)
        fake = host_tmp_path(real)
        if fs.exists(fake):
            continue
        fs.add_real_directory(real, read_only=True, target_path=fake)
        if fake != real:
            paths.add(fake, [real])
    fs.create_dir("/etc")
    for name in sorted(os.listdir("/etc")):
        real = f"/etc/{name}"
        if name in ETC_FILES:
            continue
        if os.path.islink(real):
            fs.add_real_symlink(real)
        elif os.path.isdir(real):
            fs.add_real_directory(real, read_only=True)
        elif os.path.isfile(real) and os.access(real, os.R_OK):
            fs.add_real_file(real, read_only=True)
    readable.append("/etc")
    for name, text in ETC_FILES.items():
        fs.create_file(f"/etc/{name}", contents=text)
    for d in ("/var/runtime", "/var/lang", "/home", "/proc", "/dev"):
        if not fs.exists(d):
            fs.create_dir(d)
    return readable


def _build(fs: LambdaFilesystem, spec: InstanceSpec, paths: PathMap, readable: list[str]) -> list[str]:
    """Add the function's directories and /tmp; returns the host directories it may read."""
    fs.add_real_directory(spec["code_dir"], read_only=True, target_path="/var/task")
    paths.add("/var/task", [spec["code_dir"]])
    readable.append(spec["code_dir"])
    layers: list[str] = list(reversed(spec["layers"]))  # the last layer wins, as when Lambda extracts them
    fs.create_dir("/opt")
    for layer in layers:
        readable.append(layer)
        for base, dirs, files in os.walk(layer):
            rel = os.path.relpath(base, layer)
            fake_base = "/opt" if rel == "." else f"/opt/{rel}"
            for name in dirs:
                if not fs.exists(f"{fake_base}/{name}"):
                    fs.create_dir(f"{fake_base}/{name}")
            for name in files:
                if not fs.lexists(f"{fake_base}/{name}"):
                    real = os.path.join(base, name)
                    if os.path.islink(real):
                        fs.add_real_symlink(real, f"{fake_base}/{name}")
                    else:
                        fs.add_real_file(real, read_only=True, target_path=f"{fake_base}/{name}")
    if layers:
        paths.add("/opt", layers)
    fs.add_mount_point(TMP, total_size=spec["tmp_mb"] * 1024 * 1024, can_exist=True)
    return readable


def _patcher() -> Patcher:
    # use_cache: pyfakefs keeps, per process, which loaded modules refer to file functions; a module not
    # seen yet is scanned at setUp. The zygote scans once (prescan), so that a runtime scans only what was
    # loaded after its fork.
    return Patcher(additional_skip_names=[*SKIP_NAMES], allow_root_user=True, use_cache=True)


def prescan() -> None:
    """In the zygote, before its first fork: find the file-system references of every module loaded so far
    (a third of a runtime's way into the fake filesystem otherwise); nothing stays patched."""
    patcher = _patcher()
    patcher.setUp()
    patcher.tearDown()


_prebuilt: dict[str, Any] = {}


def prebuild(layout: dict[str, Any]) -> None:
    """In the zygote, before its first fork: the part of the fake filesystem that is the same for every
    function (the host's directories, /etc, the top-level links: 60 to 100 ms of pyfakefs calls, most of
    a cold start otherwise). Each runtime forks with a copy and adds the function's part."""
    fs = cast(LambdaFilesystem, fake_filesystem.FakeFilesystem())
    fs.__class__ = LambdaFilesystem
    paths = PathMap()
    with fs.adding():
        fs.create_dir(TMP)
        readable = _build_host(fs, layout, paths)
    _prebuilt.update(fs=fs, paths=paths, readable=readable)


@contextlib.contextmanager
def _prebuilt_filesystem(layout: dict[str, Any]) -> Iterator[tuple[PathMap, list[str]]]:
    """While the Patcher sets up: hand it the zygote's filesystem (built now where this process was not
    forked from a zygote that built it) instead of a new one."""
    if "fs" not in _prebuilt:
        prebuild(layout)
    fs = _prebuilt.pop("fs")
    make = fake_filesystem.FakeFilesystem

    def handed(*_: Any, patcher: Any = None, **__: Any) -> Any:
        fs._patcher = weakref.ref(patcher) if patcher is not None else None
        return fs

    fake_filesystem.FakeFilesystem = handed  # type: ignore[misc, assignment]
    try:
        yield _prebuilt.pop("paths"), _prebuilt.pop("readable")
    finally:
        fake_filesystem.FakeFilesystem = make  # type: ignore[misc]


def prepare(layout: dict[str, Any]) -> None:
    """The part of :func:`enter` that needs no function (a spare runtime does it ahead of demand): pyfakefs'
    patcher on the zygote's filesystem, the host's part of Lambda's view."""
    if "patcher" in _state:
        return
    # tempfile must not probe the host for a writable directory: on Lambda it is /tmp.
    tempfile.tempdir = TMP
    sys.dont_write_bytecode = True
    _readthrough.install_fast_skip_check()
    patcher = _patcher()
    with _prebuilt_filesystem(layout) as (paths, readable):
        patcher.setUp()
    fs = cast(LambdaFilesystem, patcher.fs)
    # Tracebacks show the function's frames, not pyfakefs' or ours: on Lambda those calls are C.
    _runtime.HIDDEN_FRAMES = (os.path.dirname(fake_filesystem.__file__) + "/", __file__, _fakenodes.__file__,
                              _fakepaths.__file__, _readthrough.__file__, _tmpio.__file__)
    _state.update(patcher=patcher, fs=fs, paths=paths, readable=readable)


def enter(spec: InstanceSpec, backing: str, layout: dict[str, Any]) -> None:
    """Put this process into Lambda's filesystem (see the module docs). Called once, before Init."""
    prepare(layout)
    fs: LambdaFilesystem = _state["fs"]
    paths: PathMap = _state["paths"]
    with fs.adding():
        readable = _build(fs, spec, paths, _state["readable"])
        mirror = TmpMirror(fs, backing)
        mirror.load()
        fs.cwd = spec["cwd"]
    # Built as root (see LambdaFilesystem.adding): /tmp and what was loaded into it are the user's.
    for _path, obj in [("", fs.get_object(TMP)), *mirror._walk()]:
        obj.st_uid, obj.st_gid = helpers.get_uid(), helpers.get_gid()
    _install_pyfakefs_guards()
    _fakenodes.install_node_guards(fs)
    _fakenodes.install_positional_io(fs)
    _tmpio.install(fs, lambda path: _under_tmp(fs.absnormpath(path)))
    _passwd_entries()
    sys.path_hooks.insert(0, paths.path_hook)
    sys.path_importer_cache.clear()
    _state.update(mirror=mirror)
    # The kernel's backstop, before the audit hook (which refuses the ctypes calls it makes).
    if _confine.confine(spec, readable, [backing, backing + FAKEFS_CLONES] if spec.get("snapshot") else [backing]):
        _readthrough.install(_readthrough.ReadThrough(fs, paths.read_through(spec["code_dir"], layout["binds"])))
    install_audit_hook(readable, mirror)
    _install_exits()


def checkpoint() -> None:
    """Mirror /tmp to the host now (after Init, after each invocation, before exits)."""
    mirror: TmpMirror | None = _state.get("mirror")
    if mirror is not None:
        try:
            mirror.sync()
        except Exception as e:  # noqa: BLE001 - a failed mirror must not fail the invocation; say so
            sys.stderr.write(f"lambdasim: could not keep /tmp for the next runtime: {type(e).__name__}: {e}\n")


def _install_exits() -> None:
    """Mirror /tmp before every way out the runtime can still act on."""
    me = os.getpid()

    def _exit(code: int) -> None:
        checkpoint()
        _real_exit(code)

    def abort() -> None:
        checkpoint()
        _real_abort()

    def kill(pid: int, sig: int) -> None:
        if pid in (0, me) and sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGTERM, signal.SIGBUS):
            checkpoint()
        _real_kill(pid, sig)

    def killpg(pgid: int, sig: int) -> None:
        if pgid in (0, os.getpgid(0)):
            checkpoint()
        _real_killpg(pgid, sig)

    def raise_signal(sig: int) -> None:
        checkpoint()
        _real_raise_signal(sig)

    os._exit, os.abort, os.kill, os.killpg = _exit, abort, kill, killpg  # type: ignore[assignment]
    signal.raise_signal = raise_signal

    def new_group(*_: Any) -> None:
        raise SandboxLimitError(
            "lambdasim's fakefs sandbox refused a new session or process group: the sandbox ends an "
            f"instance by killing its process group. {_NAMESPACE_HINT}")

    # posix' too: a runtime in a session of its own would outlive its keeper's group kill.
    os.setsid = os.setpgrp = os.setpgid = posix.setsid = posix.setpgrp = posix.setpgid = new_group


def on_kill_request(signum: int, frame: Any) -> None:
    """The keeper is about to kill this runtime (timeout, crash()): keep /tmp, then die as killed."""
    checkpoint()
    _real_kill(os.getpid(), signal.SIGKILL)


# -- SnapStart: a restored instance's /tmp (see _restore) ----------------------------------------


def moved_tmp(backing: str) -> TmpMirror:
    """In a restored instance's keeper (a fork of the snapshot's runtime): mirror /tmp, which is the
    snapshot's, to the instance's own host directory ``backing`` from now on; returns the mirror."""
    mirror: TmpMirror = _state["mirror"]
    mirror.backing = backing
    mirror.active = True
    try:
        posix.mkdir(backing, 0o700)
    finally:
        mirror.active = False
    mirror.known = {}
    mirror.broken = False
    mirror.sync()
    return mirror


def reload_tmp(mirror: TmpMirror) -> None:
    """In a new runtime of a restored instance (after a reset): /tmp as the instance's directory holds it."""
    fs = mirror.fs
    with fs.adding():
        tmp = fs.get_object(TMP)
        for name in list(tmp.entries):
            tmp.remove_entry(name)
    mirror.active = True  # the audit hook lets it read the instance's directory
    try:
        mirror.load()
    finally:
        mirror.active = False
    for _path, obj in mirror._walk():
        obj.st_uid, obj.st_gid = helpers.get_uid(), helpers.get_gid()
