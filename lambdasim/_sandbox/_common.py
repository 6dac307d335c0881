"""What both sandboxes share: the simulator's side of their helper process and keepers.
Portable (no Linux-only calls)."""

from __future__ import annotations

import contextlib
import os
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

    def close(self, timeout: float = 5.0) -> None:
        self._chan.close()  # the helper cleans up and exits on EOF
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
