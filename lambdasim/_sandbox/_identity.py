"""Who an instance's processes are, what they see of the test process, and their limits.

Used by the namespace sandbox's zygote (``_zygote``); Linux only.

- The handler runs as ``sbx_user1051`` (uid 993, gid 990) of a user namespace of its own.
  That uid maps to a host uid holding no privilege: as an ordinary user, the user's own (the
  instance sees only what its root is assembled from); as root, ``nobody`` (65534), so host
  files that are not world-readable stay unreadable and nothing in ``/proc/sys`` is writable.
  Everything an instance must read is mounted into its root while the keeper is still root,
  so the host directories above it (``/tmp/pytest-of-root`` is 0700) need no permission,
  and the top directories of code and layers are shown 0755 (:func:`open_to_sandbox_user`);
  below them the files' own modes count, as Lambda's runtime user needs a world-readable
  deployment package.
- Hostname and System V IPC are the instance's own (UTS and IPC namespaces, owned by its
  user namespace).
- The zygote's environment and command line, inherited by every process it forks, are the
  test process's: they are wiped from its memory before the first fork, so that no
  ``/proc/<pid>/environ`` or ``cmdline`` of an instance shows them; the keeper's standard
  streams (the test process's stderr) are replaced by the instance's /dev/null.
- 1,024 descriptors per process, soft and hard; /tmp has one inode per 16 KiB.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import socket
import stat
import sys

from lambdasim._sandbox import _linux as L
from lambdasim._sandbox._layout import SANDBOX_GID, SANDBOX_UID, instance_path

NOBODY = 65534
"""The host uid and gid the sandbox user maps to when the tests run as root (``nobody`` and
``nogroup``): one that owns no files and has no capabilities."""

HOSTNAME = "169.254.100.1"
"""What ``socket.gethostname()`` returns in an instance (Lambda's hosts are reported to be
named by a link-local address)."""

FD_LIMIT = 1024
"""RLIMIT_NOFILE, soft and hard, of every process of an instance: Lambda's 1,024 descriptors,
the runtime's own included."""

TMP_BYTES_PER_INODE = 16 * 1024
"""/tmp gets one inode per 16 KiB of its size: the ratio mke2fs gives an ext4 filesystem of
512 MiB or more (Lambda's smallest /tmp). A tmpfs inode costs the host about 1 KiB of kernel
memory that its ``size=`` does not count: with this ratio, 800,000 empty files no longer fit
in a 512 MB /tmp (32,768 do, then ``[Errno 28]``), and the inodes of a full /tmp add at most
1/16 of its size."""

# The host ids of the sandbox user, as the zygote's user namespace numbers them (its uid 0 is
# the ordinary user who runs the tests); set by hide_test_process() in the zygote.
_outer = (0, 0)


def tmp_inodes(tmp_mb: int) -> int:
    return tmp_mb * 1024 * 1024 // TMP_BYTES_PER_INODE


def tmp_mount_options(tmp_mb: int) -> str:
    return f"mode=1777,size={tmp_mb}m,nr_inodes={tmp_inodes(tmp_mb)}"


def _stat_fields() -> list[int]:
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    # Fields after the command name (which may hold spaces), from field 3 on.
    return [int(x) if x.lstrip(b"-").isdigit() else 0 for x in stat[stat.rindex(b")") + 2:].split()]


def hide_test_process(host_uid: int) -> None:
    """Run first in the zygote, before it forks anything: choose the host ids of the sandbox
    user, drop root's supplementary groups, and wipe the environment and command line the
    zygote has from the test process.

    ``/proc/<pid>/environ`` and ``cmdline`` show the memory where the kernel put them at
    exec, which forked processes share: so that memory is overwritten (the kernel offers no
    unprivileged way to point elsewhere). ``os.environ`` is emptied too: the runtime fills
    it with the function's variables, and what it starts inherits only those.
    """
    global _outer
    _outer = (NOBODY, NOBODY) if host_uid == 0 else (os.getuid(), os.getgid())
    if host_uid == 0:
        os.setgroups([])
    os.environ.clear()  # unsetenv() each: the C environment (and posix.environ) is empty too
    fields = _stat_fields()
    # Fields 48-51 of /proc/self/stat: arg_start, arg_end, env_start, env_end.
    arg_start, arg_end, env_start, env_end = fields[45:49]
    if env_end > env_start:
        ctypes.memset(env_start, 0, env_end - env_start)
    if arg_end > arg_start:
        ctypes.memset(arg_start, 0, arg_end - arg_start)
        # What ps shows for every process of an instance: the Python it runs.
        name = instance_path(os.path.realpath(sys.executable)).encode()[: arg_end - arg_start - 1]
        ctypes.memmove(arg_start, name, len(name))
        sys.orig_argv = [name.decode()]


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def open_to_sandbox_user(mount_points: list[str], scratch: str) -> None:
    """Let sbx_user1051 into the top directories of the function's code and layers when,
    as root, it could not: a code dir made by ``tmp_path_factory.mktemp`` is 0700 and
    root's. Lambda's ``/var/task`` is 0755 whatever the package holds, so each such mount
    point is covered by a read-only overlay whose top is an empty 0755 directory (on a
    tmpfs at ``scratch``, detached at once: the overlay keeps it). Below the top, every
    file and directory keeps its own mode, as in Lambda's: a file that is not
    world-readable stays unreadable to the function."""
    if _outer[0] != NOBODY:
        return  # as an ordinary user the code is the user's own, and so sbx_user1051's
    for path in mount_points:
        if stat.S_IMODE(os.stat(path).st_mode) & 0o005 == 0o005:
            continue
        L.mount("lambda-top", scratch, "tmpfs", L.MS_NOSUID | L.MS_NODEV, "mode=0755,size=4k,nr_inodes=4")
        try:
            os.mkdir(f"{scratch}/top", 0o755)
            os.chmod(f"{scratch}/top", 0o755)
            L.mount("lambda-code", path, "overlay", L.MS_RDONLY, f"lowerdir={scratch}/top:{path}")
        finally:
            with contextlib.suppress(OSError):
                L.umount2(scratch, L.MNT_DETACH)


def enter_user_namespace() -> None:
    """In a keeper whose root is finished: become the host ids of the sandbox user, move into
    a new user namespace (and mount namespace, which locks every mount made so far) where
    they are sbx_user1051's, and let go of the test process's standard streams.

    The instance's UTS and IPC namespaces are made here too, so that the new user namespace
    owns them: their files in /proc/sys (the hostname, System V IPC limits) then belong to
    its root, which is no one in the instance, rather than to the user who runs the tests."""
    uid, gid = _outer
    if (os.getuid(), os.getgid()) != (uid, gid):
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        # A change of uid makes the process undumpable, and its /proc/self files root's:
        # it could not write its own uid_map.
        L.prctl(L.PR_SET_DUMPABLE, 1)
    limit_descriptors()
    L.unshare(L.CLONE_NEWUSER | L.CLONE_NEWNS | L.CLONE_NEWUTS | L.CLONE_NEWIPC)
    L.write_file("/proc/self/setgroups", "deny")
    L.write_file("/proc/self/uid_map", f"{SANDBOX_UID} {uid} 1")
    L.write_file("/proc/self/gid_map", f"{SANDBOX_GID} {gid} 1")
    socket.sethostname(HOSTNAME)
    # The keeper's stdin, stdout and stderr were the test process's: the instance's /dev/null
    # instead (opened in the new mount namespace, so that /proc/1/fd shows it by its name).
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def become_sandbox_user() -> None:
    """In a runtime that has just joined its keeper's user and mount namespaces: join its
    UTS and IPC namespaces too, and take sbx_user1051's ids (as root, it still held host
    uid 0, which that user namespace does not map)."""
    for kind, flag in (("uts", L.CLONE_NEWUTS), ("ipc", L.CLONE_NEWIPC)):
        fd = os.open(f"/proc/1/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            L.setns(fd, flag)
        finally:
            os.close(fd)
    os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
    os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    limit_descriptors()
