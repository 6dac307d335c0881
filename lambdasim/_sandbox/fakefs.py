"""The fakefs sandbox: Lambda's filesystem made with pyfakefs, for machines without namespaces.

Process tree (plain processes; nothing here needs Linux)::

    simulator ──socket── zygote (pre-imports the runtime and pyfakefs; owns a host
                           │      directory that holds every instance's /tmp)
                           └─ keeper, one per instance, in a process group of its own:
                              holds the instance's /tmp directory, forks runtimes
                                └─ runtime (lambdasim._runtime inside _fakeroot.enter)

A runtime keeps /tmp in pyfakefs' memory and mirrors it to the keeper's directory (see
``_fakeroot``); a reset replaces only the runtime, which loads /tmp back. When the
simulator goes away every socket to it closes: keepers kill their process group and
remove their directory, the zygote removes its own. A zygote killed outright leaves its
directory behind; the next sandbox removes directories whose zygote is gone.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import select
import shutil
import signal
import socket
import tempfile
import time
from typing import Any

from lambdasim import _wire as wire
from lambdasim._errors import ConfigError, SandboxError, SandboxUnavailable
from lambdasim._sandbox import _confine
from lambdasim._sandbox._common import Helper, KeeperLink, left_by_dead_owner, reap_later, release_helper, shared_helper
from lambdasim._sandbox._layout import FAKEFS_CLONES as CLONES
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._wire import Channel, ChannelClosed, close_all_but

_PREFIX = "lambdasim-fakefs-"
# The runtime asks for this much more than the function's memory: /tmp lives in its memory,
# and pyfakefs copies a file's contents when it flushes.
TMP_MEMORY_FACTOR = 3
_KILL_GRACE_S = 1.0
_REFILL_AFTER_S = 0.005  # a new spare this long after the last request, if none came since


def runtime_api_refusal(what: str) -> str:
    """Why the fakefs sandbox refuses a function whose runtime talks to the Runtime API (``what`` it is,
    e.g. "runtime provided.al2023 (a bootstrap)"), and what to do."""
    return (f"the fakefs sandbox cannot run this function: its {what} runs as processes of their own that talk "
            "to Lambda's Runtime API, and fakefs confines only lambdasim's built-in Python runtime (pyfakefs "
            "replaces Python's file functions inside it; a bootstrap, awslambdaric's C client, a wrapper script "
            "or an extension does not go through them, so it would read and write the host's files). Use the "
            "namespace sandbox, where the kernel confines every process: Simulator(sandbox='namespace') or "
            "--sandbox namespace (Linux with user namespaces).")


class FakefsInstance(KeeperLink):
    """An instance, held by its keeper process."""

    _tmp = ""

    def tmp_root(self) -> str:
        return self._tmp

    def tmp_usage_bytes(self) -> int:
        """Bytes of the files in /tmp as the runtime last mirrored them."""
        total = 0
        for base, _dirs, files in os.walk(self._tmp):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(base, name)).st_size
        return total

    def wait_ready(self, timeout: float) -> None:
        try:
            msg = self._ctrl.recv(timeout)
        except (ChannelClosed, TimeoutError):
            msg = wire.pack_refusal(reason="the instance's keeper process died while starting")
        if msg[0] != wire.READY:
            self.destroy()
            raise SandboxError(f"Could not create the instance: {wire.Refusal._make(msg).reason}. "
                               "Check that the function's code_dir and layers still exist.")
        ready = wire.FakefsKeeperReady._make(msg)
        self.pid, self._tmp = ready.pid, ready.tmp_dir

    def destroy(self) -> None:
        if self._gone:
            return
        self._gone = True
        with self._lock, contextlib.suppress(OSError):
            self._ctrl.send((wire.DESTROY,))
        # The keeper kills the runtime at once, then removes /tmp and answers GONE: the reaper waits.
        reap_later(self._wait_gone)

    def _wait_gone(self) -> None:
        deadline = time.monotonic() + 10.0
        try:
            while True:
                msg = self._ctrl.recv(max(deadline - time.monotonic(), 0.0))
                if msg[0] == wire.GONE:
                    break
        except (ChannelClosed, OSError):
            pass
        except TimeoutError:
            raise SandboxError(f"The keeper process {self.pid} did not remove its instance within 10 s.") from None
        finally:
            self._ctrl.close()


class FakefsSandbox:
    """Instances as processes whose Python sees Lambda's filesystem through pyfakefs."""

    name = "fakefs"

    def __init__(self) -> None:
        try:
            import pyfakefs  # noqa: F401
        except ImportError:
            raise SandboxUnavailable(
                "The fakefs sandbox needs pyfakefs: pip install 'lambdasim[fakefs]' (or pip install pyfakefs)."
            ) from None
        self._helper = shared_helper((self.name,), self._make)
        self._spawned = False
        self.python_paths: list[str] = self._helper.ready
        self.landlock = _confine.abi()
        """The Landlock ABI each runtime is confined with (the kernel's backstop), 0 where there is none."""

    def _make(self) -> Helper:
        return Helper(self.name, __name__, 60.0, lambda why: f"The fakefs sandbox cannot start: {why}")

    def spawn(self, spec: InstanceSpec) -> tuple[FakefsInstance, Channel]:
        if spec.get("runtime_kind") == "api":  # the Simulator refuses it at deploy(): this is the backstop
            raise ConfigError(runtime_api_refusal(f"runtime ({' '.join(spec.get('command') or ['bootstrap'])})"))
        # The runtime's real working directory is not the function's (that one is fake).
        spec = {**spec, "real_cwd": "/", "extra_memory_mb": TMP_MEMORY_FACTOR * spec["tmp_mb"],
                "landlock": self.landlock}
        if spec.get("network") == "isolated":
            # No network namespace here: the runtime's audit hook refuses what the kernel would.
            spec["refuse_network"] = True
        try:
            ctrl, rt = self._helper.spawn(spec)
        except SandboxError:
            if self._spawned or self._helper.alive():
                raise
            self._helper.close(1.0)  # the shared helper died before this sandbox used it: a new one
            self._helper = self._make()
            ctrl, rt = self._helper.spawn(spec)
        self._spawned = True
        instance = FakefsInstance(ctrl)
        try:
            instance.wait_ready(30.0)
        except BaseException:
            rt.close()
            raise
        return instance, rt

    def refill(self) -> None:
        """Say that a cold start is over: a good moment to prepare the next spare."""
        self._helper.send((wire.REFILL,))

    def close(self) -> None:
        """Hand the zygote back for the next sandbox of this process (the Simulator has destroyed its
        instances); at the process's end it waits up to 5 s for its keepers, then cleans up."""
        release_helper((self.name,), self._helper)


# -- inside: zygote, keeper, runtime ----------------------------------------------------------


def _reap(keepers: set[int], wait: float = 0.0) -> set[int]:
    """Reap the keepers that have exited, waiting up to ``wait`` seconds for all of them;
    returns the ones still running."""
    deadline = time.monotonic() + wait
    while keepers:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            keepers.clear()
            break
        if pid:
            keepers.discard(pid)
        elif time.monotonic() < deadline:
            time.sleep(0.01)
        else:
            break
    return keepers


def _sweep(parent: str) -> None:
    """Remove directories left by zygotes that were killed outright."""
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            if left_by_dead_owner(name, _PREFIX):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _runtime_main(rt_fd: int, spec: InstanceSpec, tmp_dir: str, layout: dict[str, Any]) -> None:
    from lambdasim import _runtime
    from lambdasim._sandbox import _fakeroot, _restore

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, _fakeroot.on_kill_request)
    close_all_but([rt_fd])
    _runtime.run(socket.socket(fileno=rt_fd), spec,
                 enter=lambda: _fakeroot.enter(spec, tmp_dir, layout), checkpoint=_fakeroot.checkpoint,
                 snapshot=_restore.FAKEFS if spec.get("snapshot") else None)  # SnapStart: see _restore


def _prepared_runtime_main(keeper_fd: int, layout: dict[str, Any]) -> None:
    """A spare keeper's runtime: pyfakefs set up ahead of demand, then the function's part once the
    keeper hands over the spec and the runtime's channel. After ``prepare`` this module's ``os`` is
    pyfakefs': only the channel (``_wire``, which pyfakefs leaves alone) and ``signal`` are used."""
    from lambdasim._sandbox import _fakeroot

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, _fakeroot.on_kill_request)
    keeper = Channel(socket.socket(fileno=keeper_fd))
    _fakeroot.prepare(layout)
    try:
        msg = keeper.recv(fds=True)
    except ChannelClosed:
        return  # the spare was never used
    (rt_fd,) = keeper.take_fds(1)
    keeper.close()
    _runtime_main(rt_fd, msg[1], msg[2], layout)


class _Keeper:
    def __init__(self, ctrl: Channel, spec: InstanceSpec, tmp_dir: str, layout: dict[str, Any]) -> None:
        self.ctrl = ctrl
        self.spec = spec
        self.tmp_dir = tmp_dir
        self.layout = layout
        self.runtime = 0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def fork_runtime(self, rt_fd: int) -> None:
        pid = os.fork()
        if pid == 0:
            try:
                os.close(self.wake_r)
                os.close(self.wake_w)
                signal.set_wakeup_fd(-1)
                self.ctrl.close()
                _runtime_main(rt_fd, self.spec, self.tmp_dir, self.layout)
            finally:
                os._exit(70)
        os.close(rt_fd)
        self.runtime = pid

    def hand_over(self, prepared: tuple[int, Channel], rt_fd: int) -> None:
        """Give the runtime a spare prepared (``prepared``: its pid and channel) the function; a new
        runtime if that one is gone."""
        pid, chan = prepared
        try:
            chan.send((wire.SPAWN, self.spec, self.tmp_dir), fds=[rt_fd])
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.fork_runtime(rt_fd)
            return
        finally:
            chan.close()
        os.close(rt_fd)
        self.runtime = pid
        os.write(self.wake_w, b"\0")  # it may have died before SIGCHLD was ours to see: look

    def reap(self, block: bool = False) -> int | None:
        if not self.runtime:
            return None
        try:
            pid, status = os.waitpid(self.runtime, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self.runtime, 0
        if pid == 0:
            return None
        self.runtime = 0
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def kill(self) -> None:
        """Let the runtime keep /tmp (it mirrors it on SIGUSR1), then SIGKILL it if it must."""
        if not self.runtime:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.runtime, signal.SIGUSR1)
        deadline = time.monotonic() + _KILL_GRACE_S
        while time.monotonic() < deadline:
            if os.waitpid(self.runtime, os.WNOHANG)[0] == 0:
                select.select([self.wake_r], [], [], 0.01)
                continue
            # Reaped here: report it as killed, which is what it did to itself.
            self.runtime = 0
            self.ctrl.send(wire.pack_exited(code=-signal.SIGKILL))
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.runtime, signal.SIGKILL)

    def serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.ctrl.fileno(), self.wake_r], [], []) \
                if not self.ctrl.has_buffered() else ([self.ctrl.fileno()], [], [])
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
                code = self.reap()
                if code is not None:
                    self.ctrl.send(wire.pack_exited(code=code))
            if self.ctrl.fileno() not in ready:
                continue
            try:
                msg = self.ctrl.recv(fds=True)
            except ChannelClosed:
                return
            if msg[0] == wire.KILL:
                self.kill()
            elif msg[0] == wire.START and not self.runtime:
                (fd,) = self.ctrl.take_fds(1)
                self.fork_runtime(fd)
            elif msg[0] == wire.DESTROY:
                return

    def end(self) -> None:
        """Kill the runtime (and whatever it started), remove /tmp, say so."""
        if self.runtime:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.runtime, signal.SIGKILL)
            self.reap(block=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        shutil.rmtree(self.tmp_dir + CLONES, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.ctrl.send((wire.GONE,))


def _spare_keeper_main(zygote: Channel, layout: dict[str, Any]) -> None:
    """A keeper made ahead of demand, with its runtime's pyfakefs set up: a cold start then pays only for
    the function's part (as the namespace sandbox's spare)."""
    os.setpgid(0, 0)
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            close_all_but([theirs.fileno()])
            _prepared_runtime_main(theirs.detach(), layout)
        finally:
            os._exit(70)
    theirs.close()
    try:
        msg = zygote.recv(fds=True)
    except ChannelClosed:
        os.killpg(0, signal.SIGKILL)  # the spare was never used; this keeper goes with it
        os._exit(0)
    ctrl_fd, rt_fd = zygote.take_fds(2)
    zygote.close()
    _keeper_main(ctrl_fd, rt_fd, msg[1], msg[2], layout, prepared=(pid, Channel(mine)))


def _keeper_main(ctrl_fd: int, rt_fd: int, spec: InstanceSpec, tmp_dir: str, layout: dict[str, Any],
                 prepared: tuple[int, Channel] | None = None) -> None:
    # A process group of its own: Ctrl-C in the terminal is the simulator's to handle, and
    # killing the group at the end takes anything the function started with it.
    os.setpgid(0, 0)  # a spare keeper made itself one already: then this changes nothing
    ctrl = Channel(socket.socket(fileno=ctrl_fd))
    keeper = _Keeper(ctrl, spec, tmp_dir, layout)
    signal.set_wakeup_fd(keeper.wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    try:
        for path in (spec["code_dir"], *spec["layers"]):
            if not os.path.isdir(path):
                ctrl.send(wire.pack_refusal(reason=f"{path}: {os.strerror(errno.ENOENT)}"))
                os._exit(1)
        os.mkdir(tmp_dir, 0o700)
        if spec.get("snapshot"):
            os.mkdir(tmp_dir + CLONES, 0o700)
        if prepared is None:
            keeper.fork_runtime(rt_fd)
        else:
            keeper.hand_over(prepared, rt_fd)
    except OSError as e:
        ctrl.send(wire.pack_refusal(reason=f"{type(e).__name__}: {e}"))
        os._exit(1)
    ctrl.send(wire.pack_fakefs_keeper_ready(pid=os.getpid(), tmp_dir=tmp_dir))
    try:
        keeper.serve()
    except (ChannelClosed, OSError):
        pass
    finally:
        keeper.end()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(OSError):
            os.killpg(0, signal.SIGKILL)  # children the function left behind, and this keeper
        os._exit(0)


def main(fd: int) -> None:
    """Serve spawn requests on the socket ``fd`` until the simulator closes it."""
    from lambdasim import _runtime  # noqa: F401 - loaded once here, shared by every instance
    from lambdasim._sandbox import _fakeroot, _restore  # noqa: F401

    with contextlib.suppress(ImportError):  # for its guard in each runtime (see _fakenodes.guard_sqlite)
        import _sqlite3  # noqa: F401
    import grp  # noqa: F401 - each runtime's sbx_user1051 entries wrap them (see _fakeroot)
    import pwd  # noqa: F401

    from lambdasim._sandbox._layout import host_view

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the simulator's to handle
    chan = Channel(socket.socket(fileno=fd))
    parent = tempfile.gettempdir()
    _sweep(parent)
    try:
        base = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent)
    except OSError as e:
        chan.send(wire.pack_refusal(reason=f"cannot create a directory for /tmp of instances in {parent}: {e}"))
        return
    binds, links, python = host_view()
    layout = {"binds": binds, "links": links}
    _fakeroot.prescan()
    _fakeroot.prebuild(layout)
    # What the zygote holds now is every runtime's, read-only: out of the collector's reach, so that
    # a collection in a runtime does not write to (and copy) every page of it.
    gc.collect()
    gc.freeze()
    # Keepers are this process's children, reaped here: a pid in this set is never another
    # process's, so the group kill at the end cannot reach one that reused it.
    keepers: set[int] = set()
    chan.send(wire.pack_helper_ready(python_paths=python, limits="rlimit"))
    seq = 0

    def prefork() -> Channel:
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                close_all_but([theirs.fileno()])
                _spare_keeper_main(Channel(theirs), layout)
            finally:
                os._exit(70)
        theirs.close()
        keepers.add(pid)
        return Channel(mine)

    spare: Channel | None = prefork()
    try:
        while True:
            try:
                # The spare is replaced once things are quiet, so that making it does not compete
                # with the cold start that used the last one.
                msg = chan.recv(timeout=None if spare is not None else _REFILL_AFTER_S, fds=True)
            except TimeoutError:
                msg = (wire.REFILL,)
            if msg[0] == wire.REFILL:
                if spare is None:
                    spare = prefork()
                continue
            if msg[0] != wire.SPAWN:
                continue
            ctrl_fd, rt_fd = chan.take_fds(2)
            seq += 1
            if spare is None:
                spare = prefork()
            # If the spare died, the simulator hears of it on the instance's channels.
            with contextlib.suppress(OSError):
                spare.send((wire.SPAWN, wire.Spawn._make(msg).spec, os.path.join(base, str(seq))),
                           fds=[ctrl_fd, rt_fd])
            spare.close()
            spare = None
            os.close(ctrl_fd)
            os.close(rt_fd)
            _reap(keepers)
            chan.send((wire.SPAWNED,))
    except (ChannelClosed, OSError):
        pass
    finally:
        if spare is not None:
            spare.close()  # the spare keeper ends on it, its runtime with it
        # Keepers notice the simulator's end themselves (their sockets close); wait for them.
        for k in _reap(keepers, 5.0):
            with contextlib.suppress(OSError):
                os.killpg(k, signal.SIGKILL)
        _reap(keepers, 5.0)
        shutil.rmtree(base, ignore_errors=True)

