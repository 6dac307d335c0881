"""SnapStart inside a sandbox: a version's snapshot, and the environments restored from it.

A SnapStart version runs Init once, in a *snapshot runtime* (an instance of its own that is never
invoked); after Init and the before-snapshot hooks it serves RESTORE requests (:func:`hold_namespace`,
:func:`hold_fakefs`). Each restore forks it: the clone's memory is the snapshot's (copy on write:
globals, ``random``'s state, ids made at Init), and it gets a copy of the /tmp that Init left.
Process tree of a restored instance in the namespace sandbox, inside the snapshot's PID namespace::

    snapshot runtime T ──fork── C: a user, mount, PID, IPC and UTS namespace of its own (unprivileged
                                 │   namespaces nest), a new tmpfs over the locked /tmp, filled with a
                                 │   copy of T's; waits for G
                                 └─ G, PID 1 of the new PID namespace: its own /proc; the instance's
                                    keeper (``START``, ``KILL``, ``FREEZE``/``THAW`` with signals, ``EXITED``)
                                      └─ H, the runtime: ``random`` set back to the snapshot's state
                                         (a fork reseeds it), its own log, the after-restore hooks
                                         (in ``_runtime.run``), then invocations

G forks every runtime of the instance, so a reset (timeout, crash, out of memory) restores the
instance again from the snapshot's memory while its /tmp stays, as Lambda keeps /tmp across
resets. The snapshot's processes hold the restored ones (they are in its PID namespace and its
cgroup): the simulator keeps a snapshot until its version has no instances left. Threads started
during Init do not survive the fork (only the thread that forks does), where Lambda's microVM
snapshot keeps them: a known difference.

In the fakefs sandbox /tmp lives in the runtime's memory (pyfakefs): T's fork G is the keeper, with
a host directory of its own that it fills from the snapshot's /tmp, and each runtime H it forks
loads /tmp from there (see ``_fakeroot.TmpMirror``).
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _wire as wire
from lambdasim._lambda_errors import ErrorDict
from lambdasim._runtime import LogCapture, _user_frames, log_error
from lambdasim._wire import Channel, ChannelClosed

MakeChannel = Callable[[socket.socket], Channel]


class _Restored(BaseException):
    """Raised in a new runtime process H to leave the keeper's loop (its frames are G's) for the runtime's."""

    def __init__(self, rt_fd: int) -> None:
        super().__init__()
        self.rt_fd = rt_fd
        self.prepare: Callable[[], None] | None = None  # what the runtime must do first (fakefs: reload /tmp)


def _reap_children() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _requests(chan: Channel) -> Any:
    """The snapshot runtime's loop: each RESTORE request (its options and two fds) as it comes; exits
    once the simulator closes the channel (the snapshot is removed)."""
    while True:
        try:
            msg = chan.recv(fds=True)
        except (ChannelClosed, OSError):
            os._exit(0)
        _reap_children()  # the clones of instances that are gone
        if msg[0] != wire.RESTORE:
            chan.discard_fds()
            continue
        try:
            ctrl_fd, rt_fd = chan.take_fds(2)
        except ChannelClosed:
            continue
        yield wire.Restore._make(msg).options, ctrl_fd, rt_fd


def _refuse(ctrl_fd: int, why: BaseException) -> None:
    with contextlib.suppress(OSError):
        Channel(socket.socket(fileno=ctrl_fd)).send(wire.pack_refusal(reason=f"{type(why).__name__}: {why}"))


def _leave_snapshot(chan: Channel, logs: LogCapture, null: bool = True) -> None:
    """In a clone: let go of the snapshot runtime's channel and log (its fds 1 and 2 are that log, given
    /dev/null instead where ``null``: fakefs refuses the real open, and its keeper writes nothing)."""
    os.close(chan.sock.detach())  # detached: the socket object must not close a reused number later
    with contextlib.suppress(OSError):
        os.close(logs.fd)
    if not null:
        return
    null_fd = os.open("/dev/null", os.O_RDWR)
    for fd in (1, 2):
        os.dup2(null_fd, fd)
    os.close(null_fd)


def _become_runtime(restored: _Restored, state: Any, make_channel: MakeChannel) -> tuple[Channel, LogCapture]:
    """H: the restored runtime's own log and channel, and ``random`` as the snapshot left it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    chan = make_channel(socket.socket(fileno=restored.rt_fd))
    try:
        if restored.prepare is not None:
            restored.prepare()
        random.setstate(state)  # the fork reseeded it (random's os.register_at_fork): a restore does not
        logs = LogCapture()
        from lambdasim import _runtime

        _runtime._capture = logs
    except Exception as e:  # noqa: BLE001 - the sandbox failed, not the function: the simulator says so
        with contextlib.suppress(OSError):
            chan.send(wire.pack_sandbox_failure(reason=f"{type(e).__name__}: {e}"))
        os._exit(70)
    return chan, logs


# -- the runtime hooks (snapshot_restore_py) --------------------------------------------------

def _run_hooks(error_type: str, before: bool) -> ErrorDict | None:
    """SnapStart's runtime hooks, registered with ``snapshot_restore_py`` (if the function imported it), as
    awslambdaric runs them: before the snapshot last registered first (it pops them), after a restore in
    the order of registration. A hook that raises stops the rest: its error (logged) under ``error_type``."""
    hooks_module = sys.modules.get("snapshot_restore_py")
    if hooks_module is None:
        return None
    try:
        if before:
            hooks = hooks_module.get_before_snapshot()
            while hooks:
                func, args, kwargs = hooks.pop()
                func(*args, **kwargs)
        else:
            for func, args, kwargs in hooks_module.get_after_restore():
                func(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - awslambdaric's bare except: any hook failure is the phase's
        tb = e.__traceback__
        # The trace from the hook on: awslambdaric leaves its own frames out too.
        error = lambda_errors.hook_error(error_type, str(e), _user_frames(tb.tb_next if tb is not None else None))
        log_error({**error, "errorType": type(e).__name__})  # awslambdaric logs the exception's own type
        return error
    return None


class Snapshotter:
    """What ``_runtime.run`` does for a SnapStart snapshot: the hooks, and ``hold`` (the sandbox's restores)."""

    def __init__(self, hold: Callable[[Channel, LogCapture, MakeChannel], tuple[Channel, LogCapture]]) -> None:
        self.hold = hold

    @staticmethod
    def before_snapshot() -> ErrorDict | None:
        return _run_hooks(lambda_errors.RUNTIME_BEFORE_SNAPSHOT_ERROR, before=True)

    @staticmethod
    def after_restore() -> ErrorDict | None:
        return _run_hooks(lambda_errors.RUNTIME_AFTER_RESTORE_ERROR, before=False)


# -- copying /tmp -----------------------------------------------------------------------------


def copy_tree(src: int, dst: int) -> int:
    """Copy the directory ``src`` into the directory ``dst`` (descriptors): directories, regular files
    and symlinks with their modes and times (hard links become copies; FIFOs and sockets are left
    out, as no process holds them open in the copy). Returns the bytes of file data copied."""
    copied = 0
    for entry in os.scandir(src):
        name = entry.name
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            inner_src = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src)
            inner_dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dst)
            try:
                copied += copy_tree(inner_src, inner_dst)
            finally:
                os.close(inner_src)
                os.close(inner_dst)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            continue  # a symlink's own times are not worth a call
        elif stat.S_ISREG(st.st_mode):
            fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src)
            try:
                fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dst)
                try:
                    offset = 0
                    while offset < st.st_size:
                        sent = os.sendfile(fout, fin, offset, st.st_size - offset)
                        if not sent:
                            break
                        offset += sent
                    copied += offset
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
        else:
            continue
        os.chmod(name, mode, dir_fd=dst)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst)
    return copied


# -- the keeper of a restored instance ---------------------------------------------------------


class RestoredKeeper:
    """G: holds a restored instance and forks its runtimes from the snapshot's memory (a small variant of
    ``_zygote.Keeper.serve``, which fakefs uses too). ``kill`` ends the running runtime (a reset);
    ``reset`` runs once a runtime has ended; ``end`` as the instance is removed."""

    def __init__(self, ctrl: Channel, kill: Callable[[int], None], reset: Callable[[], None],
                 end: Callable[[], None]) -> None:
        self.ctrl = ctrl
        self.kill = kill
        self.reset = reset
        self.end = end
        self.runtime_pid = 0
        self.started = 0

    def start(self, rt_fd: int) -> None:
        pid = os.fork()
        if pid == 0:
            self.ctrl.close()
            raise _Restored(rt_fd)
        os.close(rt_fd)
        self.runtime_pid = pid
        self.started += 1

    def _exited(self) -> int | None:
        pid, status = os.waitpid(self.runtime_pid, os.WNOHANG)
        if not pid:
            return None
        self.runtime_pid = 0
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def serve(self, freeze: Callable[[bool], None] | None = None) -> None:
        ctrl = self.ctrl
        while True:
            pidfd = -1
            if self.runtime_pid and hasattr(os, "pidfd_open"):
                pidfd = os.pidfd_open(self.runtime_pid)
            try:
                while True:
                    watch = [ctrl.fileno()] + ([pidfd] if pidfd >= 0 else [])
                    ready = ([ctrl.fileno()] if ctrl.has_buffered() else
                             select.select(watch, [], [], None if pidfd >= 0 or not self.runtime_pid else 0.02)[0])
                    if self.runtime_pid and (pidfd in ready or (pidfd < 0 and ctrl.fileno() not in ready)):
                        code = self._exited()
                        if code is not None:
                            self.reset()
                            ctrl.send(wire.pack_exited(code=code))
                            break
                        continue
                    if ctrl.fileno() not in ready:
                        continue
                    msg = ctrl.recv(fds=True)
                    if msg[0] == wire.KILL and self.runtime_pid:
                        self.kill(self.runtime_pid)
                        if not self.runtime_pid:  # reaped (and reported) by kill itself
                            break
                    elif msg[0] == wire.START and not self.runtime_pid:
                        (fd,) = ctrl.take_fds(1)
                        self.start(fd)
                        break
                    elif msg[0] in (wire.FREEZE, wire.THAW) and freeze is not None:
                        freeze(msg[0] == wire.FREEZE)
                    elif msg[0] == wire.DESTROY:
                        return
            finally:
                if pidfd >= 0:
                    os.close(pidfd)


# -- the namespace sandbox ----------------------------------------------------------------------


def _hold(chan: Channel, logs: LogCapture, make_channel: MakeChannel, null: bool,
          clone: Callable[[int, int, dict[str, Any]], None]) -> tuple[Channel, LogCapture]:
    """The snapshot runtime T, after Init: fork and ``clone`` an instance per RESTORE request (the sandbox's
    way). Returns only in a restored instance's runtime H: its channel to the simulator and its log."""
    for options, ctrl_fd, rt_fd in _requests(chan):
        state = random.getstate()
        pid = os.fork()
        if pid:
            os.close(ctrl_fd)
            os.close(rt_fd)
            continue
        try:
            _leave_snapshot(chan, logs, null=null)
            clone(ctrl_fd, rt_fd, options)
        except _Restored as restored:
            return _become_runtime(restored, state, make_channel)
        except BaseException as e:  # noqa: BLE001 - said to the simulator, which fails the invocation with it
            _refuse(ctrl_fd, e)
        os._exit(70)
    raise AssertionError("unreachable")  # _requests exits the process


def hold_namespace(chan: Channel, logs: LogCapture, make_channel: MakeChannel) -> tuple[Channel, LogCapture]:
    """The snapshot runtime T (namespace sandbox), after Init: restore an instance per RESTORE request."""
    return _hold(chan, logs, make_channel, True, _clone_namespace)


def _clone_namespace(ctrl_fd: int, rt_fd: int, options: dict[str, Any]) -> None:
    """C: new namespaces and a copy of /tmp; then G. Raises _Restored in each runtime G forks."""
    from lambdasim._sandbox import _identity
    from lambdasim._sandbox import _linux as L

    snapshot_tmp = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    uid, gid = os.getuid(), os.getgid()
    L.unshare(L.CLONE_NEWUSER | L.CLONE_NEWNS | L.CLONE_NEWPID | L.CLONE_NEWIPC | L.CLONE_NEWUTS)
    L.write_file("/proc/self/setgroups", "deny")
    L.write_file("/proc/self/uid_map", f"{uid} {uid} 1")
    L.write_file("/proc/self/gid_map", f"{gid} {gid} 1")
    # Over the snapshot's locked /tmp (allowed: it is mounted on, not changed); the root stays read-only.
    L.mount("lambda-tmp", "/tmp", "tmpfs", L.MS_NOSUID | L.MS_NODEV, _identity.tmp_mount_options(options["tmp_mb"]))
    tmp = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy_tree(snapshot_tmp, tmp)
    finally:
        os.close(tmp)
        os.close(snapshot_tmp)
    pid = os.fork()
    if pid:
        os.close(ctrl_fd)
        os.close(rt_fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        os._exit(0)
    _keep_namespace(ctrl_fd, rt_fd, options)


def _keep_namespace(ctrl_fd: int, rt_fd: int, options: dict[str, Any]) -> None:
    """G, PID 1 of the restored instance's PID namespace."""
    import resource

    from lambdasim._sandbox import _linux as L
    from lambdasim._sandbox._freeze import Freezer

    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)  # C, then the snapshot's keeper, take it along
    L.mount("proc", "/proc", "proc", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
    L.drop_all_capabilities()
    L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
    L.prctl(L.PR_SET_DUMPABLE, 1)  # the simulator reads /tmp through /proc/<pid>/root
    tasks = int(options.get("tasks_rlimit") or 0)
    if tasks:  # counted per user and user namespace: this instance's own
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    ctrl = Channel(socket.socket(fileno=ctrl_fd))
    freezer = Freezer()  # signals: the instance has no cgroup of its own (it is in the snapshot's)
    keeper = RestoredKeeper(ctrl, kill=lambda _pid: freezer.kill_all(), reset=freezer.reset, end=freezer.end)
    me = os.pidfd_open(os.getpid())
    ctrl.send(wire.pack_keeper_ready(freezer=freezer.kind, cgroup_version=0, cgroup_paths={}), fds=[me])
    os.close(me)
    keeper.start(rt_fd)
    with contextlib.suppress(ChannelClosed, OSError):
        keeper.serve(lambda frozen: freezer.freeze() if frozen else freezer.thaw())
    freezer.end()
    os._exit(0)  # as PID 1: the kernel ends everything else in the instance


# -- the fakefs sandbox --------------------------------------------------------------------------


def hold_fakefs(chan: Channel, logs: LogCapture, make_channel: MakeChannel) -> tuple[Channel, LogCapture]:
    """The snapshot runtime T (fakefs sandbox), after Init. Returns only in a restored runtime H."""
    from lambdasim._sandbox import _fakeroot

    return _hold(chan, logs, make_channel, False,
                 lambda ctrl_fd, rt_fd, options: _keep_fakefs(ctrl_fd, rt_fd, options["tmp_dir"], _fakeroot))


def _keep_fakefs(ctrl_fd: int, rt_fd: int, tmp_dir: str, fakeroot: Any) -> None:
    """G in the fakefs sandbox: a keeper in a process group of its own, its /tmp in ``tmp_dir``."""
    fakeroot.real_setpgid(0, 0)  # the runtime's setpgid refuses (see _fakeroot): ended as a group, as keepers are
    mirror = fakeroot.moved_tmp(tmp_dir)  # the snapshot's /tmp, written to this instance's directory
    ctrl = Channel(socket.socket(fileno=ctrl_fd))

    def kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)  # it keeps /tmp, then kills itself (see _fakeroot.on_kill_request)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    time.sleep(0.005)
                    continue
            keeper.runtime_pid = 0
            ctrl.send(wire.pack_exited(code=-signal.SIGKILL))
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    keeper = RestoredKeeper(ctrl, kill=kill, reset=lambda: None, end=lambda: None)
    ctrl.send(wire.pack_fakefs_keeper_ready(pid=os.getpid(), tmp_dir=tmp_dir))
    try:
        keeper.start(rt_fd)
        with contextlib.suppress(ChannelClosed, OSError):
            keeper.serve()
    except _Restored as restored:
        if keeper.started:  # a reset (the count is the parent's, before this fork): /tmp as the instance kept it
            restored.prepare = lambda: fakeroot.reload_tmp(mirror)
        raise
    if keeper.runtime_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(keeper.runtime_pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(keeper.runtime_pid, 0)
    mirror.active = True  # the audit hook lets the keeper remove its own directory
    _rmtree(tmp_dir)
    with contextlib.suppress(OSError):
        ctrl.send((wire.GONE,))
    with contextlib.suppress(OSError):
        os.killpg(0, signal.SIGKILL)
    os._exit(0)


def _rmtree(path: str) -> None:
    """shutil.rmtree without shutil (pyfakefs patches it in the runtime this keeper was forked from)."""
    with contextlib.suppress(OSError):
        for base, dirs, files in os.walk(path, topdown=False):
            for name in files:
                os.unlink(os.path.join(base, name))
            for name in dirs:
                d = os.path.join(base, name)
                (os.unlink if os.path.islink(d) else os.rmdir)(d)
        os.rmdir(path)


NAMESPACE = Snapshotter(hold_namespace)
FAKEFS = Snapshotter(hold_fakefs)
