"""What an instance of the namespace sandbox uses: memory, processes and threads, descriptors.

Lambda counts an environment's memory as what it really uses (resident memory, not
address space), and limits it to 1,024 processes and threads. lambdasim measures the
same two ways, whichever the machine allows (see :mod:`lambdasim._sandbox._cgroup`):

- **cgroup**: the instance's group counts its tasks (``pids.current``, and the kernel
  refuses the 1,025th: ``pids.max``) and its memory (anonymous plus shared: tmpfs, shm,
  ``mmap(-1, ...)``, memfds). Its /tmp and the log lambdasim keeps for it are tmpfs and
  memfd pages charged to the group too; they are storage on Lambda (a disk), not memory,
  so their size is taken off. The group's own hard limit is the function's memory *plus*
  its /tmp size (and a margin for the harness): what an instance can ever cost the host.
- **procfs** (no group to be had: an unprivileged user without cgroup delegation): the
  processes of the instance are read in its own /proc (its PID namespace); memory is the sum of their
  proportional resident anonymous and shared memory (``Pss_Anon + Pss_Shmem`` in
  ``smaps_rollup``), tasks the sum of their threads. It misses shared memory no process
  maps (a memfd or a POSIX shm file that is only written, never mapped).

Either way the simulator samples while an invocation (or Init) runs, every
:data:`SAMPLE_S` seconds, and once at its end; it ends the invocation as Lambda does (a
SIGKILL of the runtime: ``Runtime.OutOfMemory``) when a sample is over the function's
memory. A peak shorter than a sample interval is not seen, and memory allocated faster
than the host samples may overshoot before the kill (by at most what the function can
touch in :data:`SAMPLE_S`, and never beyond the group's hard limit where there is one).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from lambdasim._sandbox._cgroup import InstanceCgroup

SAMPLE_S = 0.005
"""How often memory is sampled while an invocation runs."""
HARNESS_MARGIN = 64 * 1024 * 1024
"""On top of memory and /tmp in the group's hard limit: the keeper, page tables, the log."""
TASKS_LIMIT = 1024
"""Lambda's limit on processes and threads per execution environment."""


@dataclass(frozen=True)
class Usage:
    """One sample of what an instance uses; the keeper (lambdasim's own process) is left out."""

    memory: int
    """Bytes of resident anonymous and shared memory, /tmp and the captured log not counted."""
    tasks: int
    """Processes and threads of the function (the runtime counts 1)."""
    fds: int
    """Open file descriptors of all of the function's processes."""


def _instance_procs(keeper: int) -> list[str]:
    """The /proc directories of the instance's processes but its keeper, through the instance's
    own /proc (its PID namespace: PID 1 is the keeper)."""
    root = f"/proc/{keeper}/root/proc"
    try:
        return [f"{root}/{name}" for name in os.listdir(root) if name.isdigit() and name != "1"]
    except OSError:
        return []


def _fds(proc: str) -> int:
    try:
        return len(os.listdir(f"{proc}/fd"))
    except OSError:
        return 0


def _pss(proc: str) -> tuple[int, int]:
    """(memory in bytes, threads) of one process, from procfs; (0, 0) once it is gone."""
    memory = threads = 0
    with contextlib.suppress(OSError, ValueError):
        with open(f"{proc}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                    memory += int(line.split()[1]) * 1024
        with open(f"{proc}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
                    break
    return memory, threads


class Meter:
    """Samples one instance, held by the keeper process ``keeper`` (a host PID).

    ``storage`` returns the bytes of tmpfs and memfd pages the instance holds that are not
    memory on Lambda (its /tmp); it is taken off the group's count. ``cgroup`` is None
    where no group could be made (procfs is walked instead).
    """

    def __init__(self, keeper: int, cgroup: InstanceCgroup | None, storage: Callable[[], int]) -> None:
        self.keeper = keeper
        self.cgroup = cgroup
        self.storage = storage

    @property
    def how(self) -> str:
        return f"cgroup v{self.cgroup.version}" if self.cgroup is not None else "procfs"

    def sample(self, log_bytes: int = 0) -> Usage:
        """What the instance uses now; ``log_bytes``: the captured output lambdasim holds for it."""
        group = self.cgroup
        if group is not None:
            try:
                pids = [p for p in group.pids() if p != self.keeper]
                memory = group.memory() - self.storage() - log_bytes
                tasks = group.tasks() - 1
            except (OSError, ValueError):  # the group is being removed with the instance
                return Usage(0, 0, 0)
            return Usage(max(memory, 0), max(tasks, 0), sum(_fds(f"/proc/{p}") for p in pids))
        memory = tasks = fds = 0
        for proc in _instance_procs(self.keeper):
            m, t = _pss(proc)
            memory += m
            tasks += t
            fds += _fds(proc)
        return Usage(memory, tasks, fds)

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer ended in the instance so far (0 where it cannot say)."""
        return self.cgroup.oom_kills() if self.cgroup is not None else 0
