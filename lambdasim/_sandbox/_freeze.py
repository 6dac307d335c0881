"""Freezing an instance between invocations, as Lambda freezes an execution environment.

Once an invocation has returned, every process of the instance except its keeper (the
runtime and all it started) stops until the next invocation thaws it: background
threads and child processes make no progress in between, while wall-clock time goes on.
Three ways, the first that works here:

- ``cgroup2``: a cgroup of its own for the instance's processes, frozen with
  ``cgroup.freeze`` (needs a cgroup v2 hierarchy at /sys/fs/cgroup that this user may
  write: root, or a delegated subtree);
- ``freezer``: the same with the cgroup v1 freezer (``freezer.state``) at
  /sys/fs/cgroup/freezer (root);
- ``signals``: SIGSTOP to every process of the instance's PID namespace (the keeper is
  its PID 1, which ``kill(-1, ...)`` spares), SIGCONT to thaw. Observable where a cgroup
  is not: a parent that waits with ``WUNTRACED`` sees its child stop, and a process the
  function stopped itself is continued by the thaw.

The zygote makes one parent cgroup (:func:`parent_cgroup`); each keeper makes its
instance's cgroup below it while the host's /sys is still in view and keeps only
descriptors of it (:class:`Freezer`). A keeper ends its instance with SIGKILL to every
process, then a thaw, so that nothing of the function runs again (a frozen task of
the v1 freezer cannot die before it is thawed, and dies before it runs any code once it
is), reaps them and removes the cgroup. Standard library only; Linux only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time

_V2_ROOT = "/sys/fs/cgroup"
_V1_ROOT = "/sys/fs/cgroup/freezer"
_PREFIX = "lambdasim-"


def _own_cgroup(hierarchy: str) -> str | None:
    """This process's cgroup path in the hierarchy named ``hierarchy`` ("" for v2)."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                if (hierarchy == "" and names == "") or hierarchy in names.split(","):
                    return path
    except OSError:
        return None
    return None


def parent_cgroup() -> tuple[str, str] | None:
    """Make the zygote's parent cgroup: ``(kind, path)``, or None where no cgroup can be had.

    ``kind`` is ``"cgroup2"`` or ``"freezer"``; instances' cgroups go below ``path``.
    """
    candidates: list[tuple[str, str, str]] = []
    if os.path.exists(f"{_V2_ROOT}/cgroup.controllers"):  # a pure v2 hierarchy
        candidates.append(("cgroup2", _V2_ROOT, ""))
    if os.path.exists(f"{_V1_ROOT}/cgroup.procs"):
        candidates.append(("freezer", _V1_ROOT, "freezer"))
    for kind, root, hierarchy in candidates:
        own = _own_cgroup(hierarchy)
        if own is None:
            continue
        path = os.path.join(root + own.rstrip("/"), _PREFIX + secrets.token_hex(6))
        try:
            os.mkdir(path)
        except OSError:
            continue  # not ours to write (an unprivileged user without delegation)
        if kind == "freezer":
            # The v1 freezer switches a static key (code patched on every CPU: ~0.2 ms in a
            # VM) each time the number of freezing cgroups goes from 0 to 1 and back, which
            # would be on every warm invocation. An empty cgroup that stays frozen while the
            # zygote lives keeps it switched on: a freeze or thaw is then ~1 us.
            with contextlib.suppress(OSError):
                os.mkdir(f"{path}/{_PREFIX}hold")
                with open(f"{path}/{_PREFIX}hold/freezer.state", "w") as f:
                    f.write("FROZEN")
        return kind, path
    return None


def cgroup_dir(kind: str, state_fd: int) -> str:
    """The host path of the cgroup whose freeze file ``state_fd`` is. The keeper opened it before
    its root changed, so the kernel names it from the hierarchy's root, not from /sys/fs/cgroup."""
    linked = os.path.dirname(os.readlink(f"/proc/self/fd/{state_fd}"))
    if linked.startswith("/sys/fs/cgroup/"):
        return linked
    return (_V1_ROOT if kind == "freezer" else _V2_ROOT) + linked


def remove_parent(path: str, timeout: float = 2.0) -> None:
    """Remove the zygote's parent cgroup once its keepers have removed theirs."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            for name in os.listdir(path):
                if name.startswith(_PREFIX):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(path, name))  # empty: its keeper was killed first
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def write_state(fd: int, kind: str, frozen: bool) -> None:
    """Freeze or thaw through a descriptor of the cgroup's freeze file (see :meth:`Freezer.state_fd`)."""
    if kind == "cgroup2":
        os.write(fd, b"1" if frozen else b"0")
    else:
        os.write(fd, b"FROZEN" if frozen else b"THAWED")


class Freezer:
    """A keeper's means to freeze and thaw its instance: everything in its PID namespace but itself."""

    def __init__(self, parent: tuple[str, str] | None) -> None:
        self.kind = "signals"
        self.frozen = False
        self._procs = self._state = self._dir = -1
        self._name = ""
        if parent is None:
            return
        kind, path = parent
        name = _PREFIX + secrets.token_hex(6)
        try:
            os.mkdir(os.path.join(path, name))
        except OSError:
            return  # e.g. the zygote's cgroup is gone: signals still work
        self._name = name
        flags = os.O_WRONLY | os.O_CLOEXEC
        self._dir = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._procs = os.open(f"{name}/cgroup.procs", flags, dir_fd=self._dir)
        self._state = os.open(f"{name}/{'cgroup.freeze' if kind == 'cgroup2' else 'freezer.state'}",
                              flags, dir_fd=self._dir)
        self._frozen_word, self._thawed_word = (b"1", b"0") if kind == "cgroup2" else (b"FROZEN", b"THAWED")
        self.kind = kind

    def state_fd(self) -> int:
        """The descriptor of the cgroup's freeze file (-1 under ``signals``): the simulator
        gets a copy and freezes and thaws with it (see :func:`write_state`), without a
        round trip through the keeper on the warm path."""
        return self._state

    def join(self, pid: int = 0) -> None:
        """Put process ``pid`` of this PID namespace (0: the caller) into the instance's cgroup."""
        if self._procs >= 0:
            os.write(self._procs, str(pid).encode())

    def close_in_child(self) -> None:
        """A runtime must not hold these: it could thaw itself."""
        for fd in (self._procs, self._state, self._dir):
            if fd >= 0:
                os.close(fd)
        self._procs = self._state = self._dir = -1

    def freeze(self) -> None:
        self.frozen = True
        if self._state >= 0:
            os.write(self._state, self._frozen_word)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGSTOP)

    def thaw(self) -> None:
        self.frozen = False
        if self._state >= 0:
            os.write(self._state, self._thawed_word)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGCONT)

    def kill_all(self) -> None:
        """SIGKILL every process of the instance but the keeper, without letting any of them run again."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        if self._state >= 0:
            # A task in the v1 freezer dies only once thawed; with SIGKILL pending it
            # leaves the kernel straight into death, running nothing of its own. (The
            # simulator freezes through its own descriptor: the keeper cannot know.)
            self.thaw()

    def kill_runtime(self, pid: int) -> None:
        """SIGKILL the runtime only (a reset): thawed, so that it can die; /tmp and the rest stay."""
        os.kill(pid, signal.SIGKILL)
        if self._state >= 0 or self.frozen:
            self.thaw()

    def end(self) -> None:
        """Kill everything (see :meth:`kill_all`), reap it and remove the cgroup. For the keeper's last moments."""
        self.kill_all()
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
        if self._dir >= 0:
            for _ in range(100):
                try:
                    os.rmdir(self._name, dir_fd=self._dir)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)  # the last task is still leaving the cgroup
        self.close_in_child()
