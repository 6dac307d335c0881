"""What both sandboxes share: the simulator's side of their helper process and keepers.
Portable (no Linux-only calls)."""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from lambdasim import _wire as wire
from lambdasim._errors import SandboxError, SandboxUnavailable
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._wire import Channel, ChannelClosed

_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The helper imports lambdasim from this file's checkout, then takes that directory off
# sys.path again so that the project around it is not visible to instances.
_BOOT = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from {module} import main; sys.path.remove({root!r}); main({fd}{args})"
)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def left_by_dead_owner(name: str, prefix: str) -> bool:
    """Whether ``name`` is ``<prefix><pid>-...`` (or ``<prefix><pid>``) of a process that is gone: what
    a sweep removes after its owner was killed outright."""
    pid = name[len(prefix):].split("-", 1)[0] if name.startswith(prefix) else ""
    return pid.isdigit() and not pid_alive(int(pid))


class KeeperLink:
    """The simulator's end of one instance's keeper: it starts, kills and reaps runtimes,
    and freezes and thaws the instance where the keeper can (``freezes``)."""

    freezes = False

    def __init__(self, ctrl: Channel) -> None:
        self.pid = 0
        self._ctrl = ctrl
        self._lock = threading.Lock()
        self._gone = False
        self.frozen = False

    def freeze(self) -> bool:
        """Have the keeper freeze the instance; False where this sandbox does not freeze.
        Returns at once: the keeper freezes it meanwhile, and thaws it only after that."""
        if not self.freezes:
            return False
        with self._lock, contextlib.suppress(OSError):
            self._ctrl.send((wire.FREEZE,))
            self.frozen = True
        return self.frozen

    def thaw(self) -> bool:
        """Have the keeper thaw the instance, if frozen (True then). A message sent to the
        runtime afterwards waits in its socket until the runtime runs again."""
        if not self.frozen:
            return False
        with self._lock, contextlib.suppress(OSError):
            self._ctrl.send((wire.THAW,))
        self.frozen = False
        return True

    def start_runtime(self) -> Channel:
        mine, theirs = socket.socketpair()
        try:
            with self._lock:
                self._ctrl.send((wire.START,), fds=[theirs.fileno()])
        finally:
            theirs.close()
        return Channel(mine)

    def kill_runtime(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._ctrl.send((wire.KILL,))
            self.frozen = False  # the keeper thaws what it kills

    def wait_runtime_exit(self, timeout: float) -> int:
        while True:
            try:
                msg = self._ctrl.recv(timeout)
            except (ChannelClosed, OSError, ValueError):  # closed by destroy() meanwhile: killed with it
                return -signal.SIGKILL
            if msg[0] == wire.EXITED:
                return int(wire.Exited._make(msg).code)


class Helper:
    """A sandbox's helper process (its zygote), which forks a keeper per spawn request.

    ``module`` is where its ``main(fd, *args)`` is (``args``: plain data, written as literals).
    When it starts but cannot serve, ``refused`` turns its reason into the message of the
    :class:`SandboxUnavailable` raised; ``hint`` ends the message when it does not start at all.
    """

    def __init__(self, name: str, module: str, ready_timeout: float, refused: Callable[[str], str],
                 hint: str = "", args: tuple[Any, ...] = ()) -> None:
        self.name = name
        mine, theirs = socket.socketpair()
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT.format(root=_PKG_ROOT, module=module, fd=theirs.fileno(),
                                                             args="".join(f", {a!r}" for a in args))],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self._chan = Channel(mine)
        try:
            msg = self._chan.recv(ready_timeout)
        except (ChannelClosed, TimeoutError):
            self.close()
            raise SandboxUnavailable(
                f"The {name} sandbox's helper process did not start (exit status {self._proc.poll()}); "
                f"its error output is above. {hint}".rstrip()
            ) from None
        if msg[0] != wire.READY:
            self.close()
            raise SandboxUnavailable(refused(wire.Refusal._make(msg).reason))
        ready = wire.HelperReady._make(msg)
        self.ready: list[str] = ready.python_paths
        self.limits = ready.limits

    def spawn(self, spec: InstanceSpec) -> tuple[Channel, Channel]:
        """Have the helper fork a keeper for ``spec``: the keeper's control channel and the
        channel of its first runtime."""
        ctrl_mine, ctrl_theirs = socket.socketpair()
        rt_mine, rt_theirs = socket.socketpair()
        try:
            with self._lock:
                self._chan.send(wire.pack_spawn(spec=spec), fds=[ctrl_theirs.fileno(), rt_theirs.fileno()])
                self._chan.recv(30.0)  # SPAWNED: the fork happened
        except (ChannelClosed, TimeoutError, OSError) as e:
            ctrl_mine.close()
            rt_mine.close()
            raise SandboxError(f"The {self.name} sandbox's helper process is gone ({e!r}).") from None
        finally:
            ctrl_theirs.close()
            rt_theirs.close()
        return Channel(ctrl_mine), Channel(rt_mine)

    def send(self, message: Any) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._chan.send(message)

    def alive(self) -> bool:
        """Whether the helper still serves: its process runs and its socket is open, with nothing
        unread on it (an idle helper says nothing; EOF or a message means it is gone or confused)."""
        if self._proc.poll() is not None or self._chan.sock.fileno() < 0:
            return False
        readable, _, _ = select.select([self._chan.sock], [], [], 0)
        return not readable

    def close(self, timeout: float = 5.0) -> None:
        self._chan.close()  # the helper cleans up and exits on EOF
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


# -- helpers shared by the sandboxes of one process ---------------------------------------------------
# Starting a helper (a Python interpreter that imports the runtime, the zygote's namespaces) costs
# ~200 ms; a test suite makes a Simulator per test. A closed sandbox hands its helper back here, emptied
# of its instances, and the next sandbox of the same kind in this process takes it. Helpers never hold
# a simulator's state beyond its instances but what RESET drops (the services' forwarded addresses).

_KEEP_IDLE = 2  # per kind: two simulators alive at once, then both closed, keep both
_pool_lock = threading.Lock()
_idle: dict[tuple[Any, ...], list[Helper]] = {}


def shared_helper(key: tuple[Any, ...], make: Callable[[], Helper]) -> Helper:
    """An idle helper of ``key`` (the sandbox's kind and settings) that an earlier sandbox of this process
    released, or a new one from ``make`` where there is none alive (one killed meanwhile is replaced)."""
    dead: list[Helper] = []
    found: Helper | None = None
    with _pool_lock:
        helpers = _idle.get(key, [])
        while helpers and found is None:
            helper = helpers.pop()
            if helper.alive():
                found = helper
            else:
                dead.append(helper)
    for helper in dead:
        helper.close(1.0)
    return found if found is not None else make()


def release_helper(key: tuple[Any, ...], helper: Helper) -> None:
    """Hand ``helper`` back once its sandbox has destroyed its instances: kept for the next sandbox of
    ``key`` in this process (told to forget the last one's requests), or closed if it died or enough wait."""
    if helper.alive():
        helper.send((wire.RESET,))
        with _pool_lock:
            helpers = _idle.setdefault(key, [])
            if len(helpers) < _KEEP_IDLE:
                helpers.append(helper)
                return
    helper.close()


# Destroying an instance ends it at once (its keeper is told, or killed) but waiting for the keeper to
# exit and removing its cgroup take milliseconds: a thread of the process does that meanwhile.
_reaps: queue.Queue[Callable[[], None]] = queue.Queue()
_reaper_started = False


def reap_later(job: Callable[[], None]) -> None:
    """Run ``job`` (the end of an instance's removal) on the process's reaper thread; :func:`shutdown`
    and the process's exit wait for every job."""
    global _reaper_started
    with _pool_lock:
        if not _reaper_started:
            threading.Thread(target=_reaper, name="lambdasim-reaper", daemon=True).start()
            _reaper_started = True
    _reaps.put(job)


def _reaper() -> None:
    while True:
        job = _reaps.get()
        try:
            job()
        except Exception:  # noqa: BLE001 - nobody waits for the answer; the keeper is killed either way
            pass
        finally:
            _reaps.task_done()


def wait_reaped() -> None:
    """Return once every instance destroyed so far in this process is gone (keepers exited, cgroups removed)."""
    _reaps.join()


def shutdown() -> None:
    """Wait until every destroyed instance is gone, then stop the helper processes kept for later simulators
    of this process (run at exit; or call it where a test must see that nothing of lambdasim's runs). A
    later Simulator starts new ones."""
    wait_reaped()
    with _pool_lock:
        helpers = [h for kind in _idle.values() for h in kind]
        _idle.clear()
    for helper in helpers:
        helper.close(15.0)  # a fakefs zygote waits up to 5 s for its keepers, then cleans up


def _forget_in_child() -> None:
    # A forked child must not use (or wait for) its parent's helpers: the parent's zygote would serve
    # two masters. Closing the child's copies of their sockets leaves the parent's open. The lock may
    # have been held by another thread of the parent at the fork.
    global _pool_lock, _reaps, _reaper_started
    _pool_lock = threading.Lock()
    _reaps = queue.Queue()  # the parent's jobs are the parent's; no reaper thread runs here
    _reaper_started = False
    for kind in _idle.values():
        for helper in kind:
            with contextlib.suppress(OSError):
                helper._chan.close()
    _idle.clear()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_in_child)
