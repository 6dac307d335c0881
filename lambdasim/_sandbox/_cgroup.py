"""Control groups for instances: one small layer over cgroup v1 and v2.

The namespace sandbox gives every instance a group of its own, where lambdasim can make
one: the kernel counts and limits what the instance uses there (``pids``, ``memory``), and
freezes its processes between invocations (the v1 ``freezer``; ``cgroup.freeze`` in v2).

Where groups are made (:meth:`CgroupPlace.find`, called by the sandbox's zygote):

- cgroup v1 (one hierarchy per controller, as on this project's CI machine): under the
  group the simulator itself is in, in each hierarchy of a wanted controller, where that
  directory is writable (as root, usually). Controllers found are used, the others fall back.
- cgroup v2 (laptops, most CI runners): in the nearest group above the simulator's own
  whose ``cgroup.procs`` is writable and that has the controllers, or can have them
  (systemd's delegation of ``user@<uid>.service`` to its user gives exactly this).

Each :class:`CgroupPlace` is a directory ``lambdasim-<simulator pid>-<zygote pid>`` (per
hierarchy), with one group per instance in it (:class:`InstanceCgroup`). The instance's
keeper makes its group and joins it while it is prepared ahead of demand, so that no
cold start waits for the kernel to move a process between groups (a v1 attach waits for
an RCU grace period: milliseconds). The keeper is in the ``pids`` and ``memory`` groups,
and its runtime is born there; only the runtime and what it starts are in the freezing
group (v1: ``freezer/<place>/<instance>``; v2: ``<place>/<instance>/fn``, below the
keeper's), so that the keeper keeps running while the function is frozen.

The zygote removes its place as it ends; the simulator removes an instance's groups after
its keeper is gone; a place whose processes were all killed outright is removed by the
next one made on the machine (:func:`sweep`), as the fakefs sandbox sweeps its directories.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time
from dataclasses import dataclass

from lambdasim._sandbox._common import left_by_dead_owner
from lambdasim._sandbox._linux import write_file

PREFIX = "lambdasim-"
_PROC_CGROUP = "/proc/self/cgroup"
_MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Hierarchy:
    """Where lambdasim makes groups for some controllers: ``base`` is a group directory."""

    version: int  # 1 or 2
    base: str
    controllers: frozenset[str]


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount point, root inside the hierarchy, super options) of every cgroup mount."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
                found.append((rfields[0], fields[4].replace("\\040", " "), fields[3], set(rfields[2].split(","))))
    return found


def _own_groups(proc_cgroup: str) -> dict[str, str]:
    """The simulator's group per v1 controller, and per ``""`` its v2 group."""
    groups: dict[str, str] = {}
    with open(proc_cgroup) as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                groups[name] = path
    return groups


def _inside(mount: str, mount_root: str, path: str) -> str | None:
    if mount_root == "/":
        return mount + path.rstrip("/") if path != "/" else mount
    if path == mount_root or path.startswith(mount_root + "/"):
        return mount + path[len(mount_root):]
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


LIMITS = frozenset({"pids", "memory"})
FREEZER = "freezer"  # a v1 controller; in v2 every group but the root has cgroup.freeze
WANTED = LIMITS | {FREEZER}


def find_hierarchies(wanted: frozenset[str] = WANTED, mountinfo: str = _MOUNTINFO,
                     proc_cgroup: str = _PROC_CGROUP) -> list[list[Hierarchy]]:
    """Where groups with the ``wanted`` controllers might be made, best first; [] where nowhere.

    Candidates with all of :data:`LIMITS` come first (v1, then v2 groups from the simulator's
    own upwards), then those with less (a v1 freezer alone, a v2 group without controllers,
    which can still freeze); a mix of v1 and v2 is not attempted.
    """
    try:
        mounts, own = _mounts(mountinfo), _own_groups(proc_cgroup)
    except OSError:
        return []
    v1: list[Hierarchy] = []
    for name in sorted(wanted):
        for fstype, mount, root, options in mounts:
            if fstype == "cgroup" and name in options and name in own:
                base = _inside(mount, root, own[name])
                if base and os.access(base, os.W_OK | os.X_OK):
                    v1.append(Hierarchy(1, base, frozenset({name})))
                    break
    full: list[list[Hierarchy]] = []
    partial: list[list[Hierarchy]] = []
    if v1:
        (full if LIMITS & wanted <= {n for h in v1 for n in h.controllers} else partial).append(v1)
    for fstype, mount, root, _ in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        group = _inside(mount, root, own[""])
        while group and (group == mount or group.startswith(mount + "/")):
            try:
                available = set(_read(f"{group}/cgroup.controllers").split())
            except OSError:
                break
            if os.access(f"{group}/cgroup.procs", os.W_OK) and os.access(group, os.W_OK):
                has = (wanted & available) | (wanted & {FREEZER})
                (full if LIMITS & wanted <= has else partial).append([Hierarchy(2, group, frozenset(has))])
            if group == mount:
                break
            group = os.path.dirname(group)
    return full + partial


def _remove_tree(path: str, wait: float = 0.0) -> bool:
    """rmdir a group and the groups in it (groups hold no files to delete); True when gone.
    A group whose last process is still exiting is busy for a moment: ``wait`` for it."""
    deadline = time.monotonic() + wait
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                _remove_tree(entry.path, wait)
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def sweep(hierarchies: list[Hierarchy]) -> None:
    """Remove the places of simulators that were killed outright (keyed by their pid)."""
    for h in hierarchies:
        with contextlib.suppress(OSError):
            for name in os.listdir(h.base):
                if left_by_dead_owner(name, PREFIX):
                    _remove_tree(os.path.join(h.base, name))


class CgroupPlace:
    """A directory per hierarchy where one sandbox makes its instances' groups."""

    def __init__(self, hierarchies: list[Hierarchy], owner: int) -> None:
        self.version = hierarchies[0].version
        self.controllers = frozenset().union(*(h.controllers for h in hierarchies))
        name = f"{PREFIX}{owner}-{os.getpid()}"
        self._dirs: dict[str, str] = {}
        made: list[str] = []
        try:
            for h in hierarchies:
                path = os.path.join(h.base, name)
                os.mkdir(path)
                made.append(path)
                if h.version == 2 and h.controllers & LIMITS:
                    enable = " ".join(f"+{c}" for c in sorted(h.controllers & LIMITS))
                    base_enabled = set(_read(f"{h.base}/cgroup.subtree_control").split())
                    if not h.controllers & LIMITS <= base_enabled:
                        write_file(f"{h.base}/cgroup.subtree_control", enable)
                    write_file(f"{path}/cgroup.subtree_control", enable)
                if h.version == 1 and FREEZER in h.controllers:
                    # The v1 freezer switches a static key (code patched on every CPU: ~0.2 ms in a
                    # VM) each time the number of freezing cgroups goes from 0 to 1 and back, which
                    # would be on every warm invocation. An empty group that stays frozen while the
                    # place lives keeps it switched on: a freeze or thaw is then ~1 us.
                    with contextlib.suppress(OSError):
                        os.mkdir(f"{path}/hold")
                        write_file(f"{path}/hold/freezer.state", "FROZEN")
                for c in h.controllers:
                    self._dirs[c] = path
        except OSError:
            for path in made:
                _remove_tree(path)
            raise

    @property
    def limits(self) -> str:
        """How processes and memory are limited: ``cgroup v1``, ``cgroup v2`` or ``rlimit+procfs``."""
        return f"cgroup v{self.version}" if self.controllers >= LIMITS else "rlimit+procfs"

    @classmethod
    def find(cls, owner: int, wanted: frozenset[str] = WANTED) -> CgroupPlace | None:
        """A place with (some of) the ``wanted`` controllers, named after process ``owner`` (the
        simulator: see :func:`sweep`), or None where lambdasim cannot make one."""
        candidates = find_hierarchies(wanted)
        for hierarchies in candidates:
            sweep(hierarchies)
        for hierarchies in candidates:
            with contextlib.suppress(OSError):  # e.g. a v2 group with processes of its own
                return cls(hierarchies, owner)
        return None

    def create(self) -> InstanceCgroup:
        """A new, empty group for one instance (made by its keeper)."""
        name = f"i{secrets.token_hex(6)}"
        paths: dict[str, str] = {}
        try:
            for controller, parent in sorted(self._dirs.items()):
                path = os.path.join(parent, name)
                if path not in paths.values():
                    os.mkdir(path)
                paths[controller] = path
            if self.version == 2 and FREEZER in paths:
                paths[FREEZER] = os.path.join(paths[FREEZER], "fn")
                os.mkdir(paths[FREEZER])
        except OSError:
            for path in set(paths.values()):
                _remove_tree(path)
            raise
        return InstanceCgroup(self.version, paths)

    def close(self, wait: float = 5.0) -> None:
        """Remove the place; groups whose last processes are still exiting are waited for."""
        for path in set(self._dirs.values()):
            _remove_tree(path, wait=wait)


class InstanceCgroup:
    """One instance's group: what its processes are counted, limited and frozen by.

    ``paths`` maps each controller to the group's directory for it (in v2 one directory for
    ``pids`` and ``memory``, and its ``fn`` subgroup for ``freezer``). The keeper makes and
    joins it (:meth:`join_keeper`, :meth:`open_for_keeper`); the simulator reads and removes it.
    """

    def __init__(self, version: int, paths: dict[str, str]) -> None:
        self.version = version
        self.paths = paths
        self._open: dict[str, int] = {}  # files read while the instance runs, kept open (pread is cheaper)

    @property
    def limits(self) -> bool:
        """Whether the kernel counts and limits the instance's processes and memory here."""
        return self.paths.keys() >= LIMITS

    def _read(self, path: str) -> bytes:
        fd = self._open.get(path)
        if fd is None:
            fd = self._open[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return os.pread(fd, 65536, 0)

    def _file(self, controller: str, name: str) -> str:
        return f"{self.paths[controller]}/{name}"

    # -- the keeper's side: it joins the group and sets its limits through descriptors opened
    # while the host's /sys is in view (its root changes before it knows the function's memory).

    def join_keeper(self) -> None:
        """Move the calling process into the counting groups (not the freezing one)."""
        for path in sorted({p for c, p in self.paths.items() if c != FREEZER}):
            write_file(f"{path}/cgroup.procs", "0")

    def open_for_keeper(self) -> dict[str, int]:
        """Write-only descriptors: ``procs`` and ``state`` of the freezing group, ``pids.max`` and the
        memory limit of the counting one, as far as the group has them."""
        files = {}
        if FREEZER in self.paths:
            files["procs"] = self._file(FREEZER, "cgroup.procs")
            files["state"] = self._file(FREEZER, "freezer.state" if self.version == 1 else "cgroup.freeze")
        if self.limits:
            files["pids.max"] = self._file("pids", "pids.max")
            files["memory.max"] = self._file("memory", "memory.limit_in_bytes" if self.version == 1 else "memory.max")
            if self.version == 2:
                with contextlib.suppress(OSError):  # no swap beyond it, where swap is accounted
                    write_file(self._file("memory", "memory.swap.max"), "0")
        return {key: os.open(path, os.O_WRONLY | os.O_CLOEXEC) for key, path in files.items()}

    # -- the simulator's side

    def tasks(self) -> int:
        """Processes and threads in the group now."""
        return int(self._read(self._file("pids", "pids.current")))

    def memory(self) -> int:
        """Resident anonymous and shared memory (tmpfs, shm, memfds) charged to the group, in bytes."""
        stat = b"\n" + self._read(self._file("memory", "memory.stat"))
        keys = (b"\ntotal_rss ", b"\ntotal_shmem ") if self.version == 1 else (b"\nanon ", b"\nshmem ")
        total = 0
        for key in keys:
            start = stat.find(key) + len(key)
            total += int(stat[start:stat.index(b"\n", start)])
        return total

    def oom_kills(self) -> int:
        """How many processes of the group the kernel's OOM killer ended (where the kernel says)."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        key = b"\noom_kill "
        with contextlib.suppress(OSError, ValueError):
            text = b"\n" + self._read(self._file("memory", name))
            start = text.find(key)
            if start >= 0:
                start += len(key)
                return int(text[start:text.index(b"\n", start)])
        return 0

    def pids(self) -> list[int]:
        """The processes in the counting group (host PIDs, as the simulator sees them)."""
        return [int(p) for p in self._read(self._file("pids", "cgroup.procs")).split()]

    def remove(self) -> bool:
        """Remove the group (its processes must have exited); True when it is gone."""
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
        gone = True
        for path in sorted(set(self.paths.values()), key=len, reverse=True):
            gone = _remove_tree(path, wait=2.0) and gone
        return gone
