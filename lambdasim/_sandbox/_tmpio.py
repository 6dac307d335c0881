"""Inside the fakefs sandbox: writes to ``/tmp`` files in time linear in their size.

pyfakefs keeps an open file's data in a buffer of its own and copies all of it into the file
object whenever more than a buffer's worth (8 KiB) is pending: a file written in 1 MiB pieces
was copied whole on every write, so writing 600 MB took quadratic time (15 s against 0.2 s).
Each flush also costs fresh memory for the whole file (page faults dominate on a VM). Here a
handle's data is flushed only where the difference could show, and on close:

- a write that would not fit in ``/tmp`` flushes at once, so ``ENOSPC`` comes from that write,
  as on Lambda, and the write is undone;
- anything that looks the file up by path (``os.stat``, ``getsize``, another ``open``), reads
  it through another handle, or ``fstat``s it sees the pending data flushed first;
- the mirror of ``/tmp`` to the host (``_fakeroot.checkpoint``) flushes every handle first.
"""

from __future__ import annotations

import weakref
from typing import Any

from pyfakefs import fake_file, fake_filesystem, fake_open

from lambdasim._sandbox._fakenodes import wrap_os_method

_NEVER = 1 << 62
_pending: weakref.WeakSet[Any] = weakref.WeakSet()  # handles holding more than a buffer unflushed


def flush_for(file_object: Any) -> None:
    """Flush every handle with pending data for ``file_object`` (every handle, if None)."""
    for handle in list(_pending):
        if file_object is None or handle.file_object is file_object:
            try:
                handle.flush()
            except OSError:
                _pending.discard(handle)  # its own write reports it (ENOSPC is checked before)


def flush_all() -> None:
    flush_for(None)


class TmpFile(fake_file.FakeFileWrapper):
    """pyfakefs' handle of a ``/tmp`` file, with the flush policy above (mixed into the class
    pyfakefs chose: its binary and text handles route unknown names to ``__getattr__``)."""

    @property
    def _buffer_size(self) -> int:
        asked: int = self.__dict__["_buffer_size"]
        return asked if asked <= 0 else _NEVER  # flushed when looked at (above), not by size

    @_buffer_size.setter
    def _buffer_size(self, value: int) -> None:
        self.__dict__["_buffer_size"] = value

    def flush(self) -> None:
        _pending.discard(self)
        super().flush()

    def _write(self, data: Any) -> int:
        old = self._io.tell()
        flushed = self._flush_pos
        result: int = fake_file.FakeFileWrapper.__getattr__(self, "write")(data)
        if self._flush_pos != flushed or self.is_stream:
            return result  # pyfakefs flushed
        here = self._io.tell()
        if here - self._flush_pos <= self.__dict__["_buffer_size"]:
            return result
        fs = self.filesystem
        growth = here - (self.file_object.st_size or 0)
        if growth > 0 and growth > fs.get_disk_usage(self.file_path)[2]:
            self._try_flush(old)  # raises ENOSPC and undoes this write
        else:
            _pending.add(self)
        return result

    def __getattr__(self, name: str) -> Any:
        if name == "write" and not self.file_object.is_large_file():
            self._check_open_file()
            if self.allow_update or self.opened_as_fd:
                return lambda data: TmpFile._write(self, data)
        if _pending and (name.startswith("read") or name == "next"):
            flush_for(self.file_object)
        return super().__getattr__(name)


_classes: dict[type, type] = {}


def _tmp_class(cls: type) -> type:
    made = _classes.get(cls)
    if made is None:
        made = _classes[cls] = type(f"Tmp{cls.__name__}", (TmpFile, cls), {"__module__": __name__})
    return made


def install(fs: fake_filesystem.FakeFilesystem, under_tmp: Any) -> None:
    """Give the handles of files ``under_tmp(path)`` says are in /tmp the policy above (once per runtime)."""
    inner_call = fake_open.FakeFileOpen.call

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        handle = inner_call(self, *args, **kwargs)
        if (isinstance(handle, fake_file.FakeFileWrapper) and not isinstance(handle, TmpFile)
                and self.filesystem is fs and under_tmp(handle.file_path)):
            handle.__class__ = _tmp_class(type(handle))
        return handle

    fake_open.FakeFileOpen.call = call  # type: ignore[method-assign]

    cls: Any = type(fs)
    inner_resolve = cls.resolve

    def resolve(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = inner_resolve(self, *args, **kwargs)
        if _pending:
            flush_for(found)
        return found

    cls.resolve = resolve

    def fstat(inner: Any) -> Any:
        def wrapper(self: Any, fd: int) -> Any:
            if _pending:
                for handle in list(_pending):
                    if handle.filedes == fd:
                        flush_for(handle.file_object)
            return inner(self, fd)
        return wrapper

    wrap_os_method("fstat", fstat)
