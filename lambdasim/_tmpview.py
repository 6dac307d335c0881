"""The test's read-only view of an instance's /tmp (``Instance.tmp``)."""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from lambdasim._errors import InstanceGone, LambdaSimError
from lambdasim._model import InstanceState
from lambdasim._sandbox import SandboxInstance

if TYPE_CHECKING:
    from lambdasim._instance import Instance


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFLNK: "a symbolic link"}


def _only_plain(path: str, st: os.stat_result) -> None:
    """Refuse, with OSError, what is not a directory or a regular file (not followed, not opened)."""
    kind = stat.S_IFMT(st.st_mode)
    if kind not in (stat.S_IFREG, stat.S_IFDIR):
        code = errno.ELOOP if kind == stat.S_IFLNK else errno.EINVAL
        raise OSError(code, f"/tmp/{path.strip('/')} is {_KINDS.get(kind, 'not a regular file')}; the test's view "
                            "of an instance's /tmp opens only directories and regular files")


class TmpView:
    """Read-only access, from the test, to one instance's /tmp."""

    def __init__(self, instance: Instance) -> None:
        self._instance = instance

    def _sbx(self) -> SandboxInstance:
        live = self._instance._live
        if live.record.state is InstanceState.DEAD:
            raise InstanceGone(f"Instance {live.record.id} is gone, and its /tmp with it.")
        if live.sbx is None:
            raise LambdaSimError(f"Instance {live.record.id} is still starting; its /tmp is not there yet.")
        return live.sbx

    def _root(self) -> str:
        return self._sbx().tmp_root()

    def _open(self, path: str, flags: int) -> int:
        # Walk without following symlinks: a link in /tmp must not lead the test
        # process to a file of the host. Only directories and regular files are opened:
        # opening a FIFO would wait for a writer, a device would run its driver.
        parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ValueError(f"{path!r}: '..' is not allowed in an instance /tmp path")
        fd = os.open(self._root(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if last:
                    _only_plain(path, os.stat(part, dir_fd=fd, follow_symlinks=False))
                # O_DIRECTORY fails on anything else before opening it; O_NONBLOCK keeps a FIFO
                # put in place after the check from blocking, and the check is made again below.
                nfd = os.open(part, (flags | os.O_NONBLOCK if last else os.O_RDONLY | os.O_DIRECTORY)
                              | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
            if parts:
                _only_plain(path, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def listdir(self, path: str = "") -> list[str]:
        """Names in the directory ``path`` (relative to /tmp), sorted."""
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        try:
            os.close(self._open(path, os.O_RDONLY | os.O_NONBLOCK))
        except FileNotFoundError:
            return False
        except OSError:
            return True  # e.g. a symlink: it exists, but is not followed
        return True

    def read_bytes(self, path: str) -> bytes:
        fd = self._open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(f"/tmp/{path} is not a regular file")
            vfs = os.fstatvfs(fd)
            if st.st_size > vfs.f_blocks * vfs.f_frsize:
                # A sparse file (os.truncate) may claim more than /tmp holds: it is not read.
                raise OSError(errno.EFBIG, f"/tmp/{path} claims {st.st_size} bytes, more than the instance's "
                                           f"/tmp holds ({vfs.f_blocks * vfs.f_frsize}): it is sparse, not read")
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(path).decode(encoding)

    def usage_bytes(self) -> int:
        """Bytes in use on the instance's /tmp filesystem."""
        return self._sbx().tmp_usage_bytes()
