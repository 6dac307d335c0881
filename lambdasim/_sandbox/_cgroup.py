"""Control groups for instances: one small layer over cgroup v1 and v2.

The namespace sandbox gives every instance a group of its own, where lambdasim can make
one, and asks the kernel to count and limit what the instance uses there (pids, memory).

Where groups are made (:meth:`CgroupPlace.find`):

- cgroup v1 (one hierarchy per controller, as on this project's CI machine): under the
  group the simulator itself is in, in each hierarchy of a wanted controller, where that
  directory is writable (as root, usually).
- cgroup v2 (laptops, most CI runners): in the nearest group above the simulator's own
  whose ``cgroup.procs`` is writable and that has the controllers, or can have them
  (systemd's delegation of ``user@<uid>.service`` to its user gives exactly this).

Each :class:`CgroupPlace` is a directory ``lambdasim-<pid>-<n>`` (per hierarchy), with one
group per instance in it. :meth:`CgroupPlace.close` removes it; a place whose process was
killed outright is removed by the next one made on the machine (:func:`sweep`), as the
fakefs sandbox sweeps its directories.

A controller is a set of files in a group: :class:`InstanceCgroup` reads and writes them
by controller name, so another controller (the freezer: ``freezer.state`` in v1,
``cgroup.freeze`` in v2) is a matter of adding it to ``wanted`` and a method that writes its file.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import time
from dataclasses import dataclass

from lambdasim._sandbox._linux import write_file

PREFIX = "lambdasim-"
_PROC_CGROUP = "/proc/self/cgroup"
_MOUNTINFO = "/proc/self/mountinfo"
_counter = itertools.count(1)


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


def find_hierarchies(wanted: frozenset[str], mountinfo: str = _MOUNTINFO,
                     proc_cgroup: str = _PROC_CGROUP) -> list[list[Hierarchy]]:
    """Where groups with the ``wanted`` controllers might be made, best first; [] where nowhere.

    v1 is taken when every wanted controller has a writable v1 hierarchy, else v2 groups
    that hold them all, from the simulator's own upwards; a mix of the two is not attempted.
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
    if len(v1) == len(wanted):
        return [v1]
    candidates: list[list[Hierarchy]] = []
    for fstype, mount, root, _ in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        group = _inside(mount, root, own[""])
        while group and (group == mount or group.startswith(mount + "/")):
            try:
                available = set(_read(f"{group}/cgroup.controllers").split())
            except OSError:
                break
            if wanted <= available and os.access(f"{group}/cgroup.procs", os.W_OK) and os.access(group, os.W_OK):
                candidates.append([Hierarchy(2, group, wanted)])
            if group == mount:
                break
            group = os.path.dirname(group)
    return candidates


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
                pid = name[len(PREFIX):].split("-", 1)[0] if name.startswith(PREFIX) else ""
                if pid.isdigit() and not _alive(int(pid)):
                    _remove_tree(os.path.join(h.base, name))


class CgroupPlace:
    """A directory per hierarchy where one sandbox makes its instances' groups."""

    def __init__(self, hierarchies: list[Hierarchy]) -> None:
        self.version = hierarchies[0].version
        self.controllers = frozenset().union(*(h.controllers for h in hierarchies))
        name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self._dirs: dict[str, str] = {}
        made: list[str] = []
        try:
            for h in hierarchies:
                path = os.path.join(h.base, name)
                os.mkdir(path)
                made.append(path)
                if h.version == 2:
                    enable = " ".join(f"+{c}" for c in sorted(h.controllers))
                    base_enabled = set(_read(f"{h.base}/cgroup.subtree_control").split())
                    if not h.controllers <= base_enabled:
                        write_file(f"{h.base}/cgroup.subtree_control", enable)
                    write_file(f"{path}/cgroup.subtree_control", enable)
                for c in h.controllers:
                    self._dirs[c] = path
        except OSError:
            for path in made:
                _remove_tree(path)
            raise
        self._count = itertools.count(1)

    @classmethod
    def find(cls, wanted: frozenset[str]) -> CgroupPlace | None:
        """A place with the ``wanted`` controllers, or None where lambdasim cannot make one."""
        for hierarchies in find_hierarchies(wanted):
            sweep(hierarchies)
            with contextlib.suppress(OSError):  # e.g. a v2 group with processes of its own
                return cls(hierarchies)
        return None

    def create(self) -> InstanceCgroup:
        """A new, empty group for one instance."""
        n = next(self._count)
        paths: dict[str, str] = {}
        try:
            for controller, parent in sorted(self._dirs.items()):
                path = paths.get(controller) or os.path.join(parent, f"i{n}")
                if path not in paths.values():
                    os.mkdir(path)
                paths[controller] = path
        except OSError:
            for path in set(paths.values()):
                _remove_tree(path)
            raise
        return InstanceCgroup(self.version, paths)

    def close(self) -> None:
        for path in set(self._dirs.values()):
            _remove_tree(path, wait=1.0)


class InstanceCgroup:
    """One instance's group: what its processes are counted and limited by."""

    def __init__(self, version: int, paths: dict[str, str]) -> None:
        self.version = version
        self.paths = paths  # controller -> group directory (one directory in v2)
        self._open: dict[str, int] = {}  # files read while the instance runs, kept open (pread is cheaper)

    def _read(self, path: str) -> str:
        fd = self._open.get(path)
        if fd is None:
            fd = self._open[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return os.pread(fd, 65536, 0).decode()

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process is written to, to join the group (every hierarchy)."""
        return [f"{path}/cgroup.procs" for path in sorted(set(self.paths.values()))]

    def _file(self, controller: str, name: str) -> str:
        return f"{self.paths[controller]}/{name}"

    def set_pids_max(self, count: int) -> None:
        write_file(self._file("pids", "pids.max"), str(count))

    def set_memory_max(self, size: int) -> None:
        if self.version == 1:
            write_file(self._file("memory", "memory.limit_in_bytes"), str(size))
        else:
            write_file(self._file("memory", "memory.max"), str(size))
            with contextlib.suppress(OSError):  # no swap beyond it, where swap is accounted
                write_file(self._file("memory", "memory.swap.max"), "0")

    def tasks(self) -> int:
        """Processes and threads in the group now."""
        return int(self._read(self._file("pids", "pids.current")))

    def memory(self) -> int:
        """Resident anonymous and shared memory (tmpfs, shm, memfds) charged to the group, in bytes."""
        stat = dict(line.split() for line in self._read(self._file("memory", "memory.stat")).splitlines())
        if self.version == 1:
            return int(stat["total_rss"]) + int(stat["total_shmem"])
        return int(stat["anon"]) + int(stat["shmem"])

    def oom_kills(self) -> int:
        """How many processes of the group the kernel's OOM killer ended (where the kernel says)."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError, ValueError):
            for line in self._read(self._file("memory", name)).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def pids(self) -> list[int]:
        """The processes in the group (host PIDs, as the simulator sees them)."""
        return [int(p) for p in self._read(self.procs_files()[0]).split()]

    def remove(self) -> bool:
        """Remove the group (its processes must have exited); True when it is gone."""
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
        gone = True
        for path in set(self.paths.values()):
            gone = _remove_tree(path, wait=2.0) and gone
        return gone


def join(procs_files: list[str], pids: list[int]) -> None:
    """Move ``pids`` (as the caller's PID namespace numbers them; 0 is the caller) into a group.

    Called by the instance's keeper, before the function's code can run: what it and the
    runtime start afterwards is born in the group.
    """
    for path in procs_files:
        for pid in pids:
            write_file(path, str(pid))
