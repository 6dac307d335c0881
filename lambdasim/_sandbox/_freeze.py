"""Freezing an instance between invocations, as Lambda freezes an execution environment.

Once an invocation has returned, every process of the instance except its keeper (the
runtime and all it started) stops until the next invocation thaws it: background
threads and child processes make no progress in between, while wall-clock time goes on.
Three ways, the first that works here:

- ``cgroup2``: the instance's freezing group (see ``_cgroup``), frozen with ``cgroup.freeze``
  (a cgroup v2 hierarchy this user may write: root, or a delegated subtree);
- ``freezer``: the same with the cgroup v1 freezer (``freezer.state``; root);
- ``signals``: SIGSTOP to every process of the instance's PID namespace (the keeper is
  its PID 1, which ``kill(-1, ...)`` spares), SIGCONT to thaw. Observable where a cgroup
  is not: a parent that waits with ``WUNTRACED`` sees its child stop, and a process the
  function stopped itself is continued by the thaw.

The keeper holds descriptors of its group's files only (:class:`Freezer`); the simulator
gets a copy of the freeze file's and freezes and thaws through it (:func:`write_state`),
with no round trip through the keeper on the warm path. A keeper ends its instance with
SIGKILL to every process, then a thaw, so that nothing of the function runs again (a
frozen task of the v1 freezer cannot die before it is thawed, and dies before it runs any
code once it is), and reaps them. A reset (the runtime ended: killed by the simulator, or it
exited) kills every process of the instance but the keeper the same way. Standard library only;
Linux only.
"""

from __future__ import annotations

import contextlib
import os
import signal

_WORDS = {"cgroup2": (b"1", b"0"), "freezer": (b"FROZEN", b"THAWED")}


def write_state(fd: int, kind: str, frozen: bool) -> None:
    """Freeze or thaw through a descriptor of the group's freeze file (see :meth:`Freezer.state_fd`)."""
    os.write(fd, _WORDS[kind][0 if frozen else 1])


class Freezer:
    """A keeper's means to freeze and thaw its instance: everything in its PID namespace but itself.

    ``files`` are the group's descriptors from ``InstanceCgroup.open_for_keeper`` (``procs`` and
    ``state`` make it a cgroup freezer of ``version``); without them it uses signals.
    """

    def __init__(self, files: dict[str, int] | None = None, version: int = 0) -> None:
        self.frozen = False
        self._files = dict(files or {})
        self._procs = self._files.get("procs", -1)
        self._state = self._files.get("state", -1)
        self.kind = "signals" if self._state < 0 else ("freezer" if version == 1 else "cgroup2")

    def state_fd(self) -> int:
        """The descriptor of the group's freeze file (-1 under ``signals``)."""
        return self._state

    def join(self, pid: int = 0) -> None:
        """Put process ``pid`` of this PID namespace (0: the caller) into the instance's freezing group."""
        if self._procs >= 0:
            os.write(self._procs, str(pid).encode())

    def close_in_child(self) -> None:
        """A runtime must not hold these: it could thaw itself, or lift its limits."""
        for fd in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
        self._procs = self._state = -1

    def freeze(self) -> None:
        self.frozen = True
        if self._state >= 0:
            write_state(self._state, self.kind, True)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGSTOP)

    def thaw(self) -> None:
        self.frozen = False
        if self._state >= 0:
            write_state(self._state, self.kind, False)
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
        self.frozen = False  # nothing is left to thaw

    def reset(self) -> None:
        """Once the runtime has ended (and was reaped: its status is the keeper's to report), a reset,
        as Lambda restarts the whole environment: every other process the function started is killed
        (see :meth:`kill_all`) and reaped; the keeper, and with it /tmp, stays."""
        self.kill_all()
        _reap_all()

    def end(self) -> None:
        """Kill everything (see :meth:`kill_all`) and reap it. For the keeper's last moments; the
        groups are removed by the simulator (or the zygote) once the keeper is gone."""
        self.reset()
        self.close_in_child()


def _reap_all() -> None:
    """Wait for every child of this process (the keeper, PID 1: every process of the instance)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
