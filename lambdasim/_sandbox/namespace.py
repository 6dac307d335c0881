"""Host side of the Linux namespace sandbox (see ``_zygote`` for the inside)."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading

from lambdasim._errors import SandboxError, SandboxUnavailable
from lambdasim._sandbox import InstanceSpec
from lambdasim._wire import Channel, ChannelClosed

_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The zygote imports lambdasim from this file's checkout, then takes that directory
# off sys.path again so that the project around it is not mounted into instances.
_BOOT = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from lambdasim._sandbox._zygote import main; sys.path.remove({root!r}); main({fd})"
)

_HINT = (
    "The namespace sandbox needs Linux 5.12 or newer with user and mount namespaces "
    "(as root, or with unprivileged user namespaces enabled: "
    "sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone=1 or "
    "kernel.apparmor_restrict_unprivileged_userns=0 where those exist)."
)


def _wait_pidfd(pidfd: int, timeout: float) -> bool:
    poll = select.poll()
    poll.register(pidfd, select.POLLIN)
    return bool(poll.poll(int(timeout * 1000)))


def _pid_of(pidfd: int) -> int:
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise SandboxError("the kernel did not say which process a pidfd refers to (Linux 5.x or newer is needed)")


class NamespaceInstance:
    """An instance, held by its keeper process (see ``_zygote.Keeper``)."""

    def __init__(self, ctrl: Channel) -> None:
        self.pid = 0
        self._ctrl = ctrl
        self._lock = threading.Lock()
        self._pidfd = -1
        self._gone = False

    def tmp_root(self) -> str:
        return f"/proc/{self.pid}/root/tmp"

    def tmp_usage_bytes(self) -> int:
        st = os.statvfs(self.tmp_root())
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def start_runtime(self) -> Channel:
        mine, theirs = socket.socketpair()
        try:
            with self._lock:
                self._ctrl.send(("start",), fds=[theirs.fileno()])
        finally:
            theirs.close()
        return Channel(mine)

    def kill_runtime(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._ctrl.send(("kill",))

    def wait_runtime_exit(self, timeout: float) -> int:
        while True:
            try:
                msg = self._ctrl.recv(timeout)
            except (ChannelClosed, OSError, ValueError):  # closed by destroy() meanwhile: killed with it
                return -signal.SIGKILL
            if msg[0] == "exited":
                return int(msg[1])

    def wait_ready(self, timeout: float) -> None:
        try:
            msg = self._ctrl.recv(timeout, fds=True)
        except (ChannelClosed, TimeoutError):
            msg = ("error", "the instance's keeper process died while building its filesystem")
        if msg[0] != "ready":
            self.destroy()
            hint = _HINT if "Operation not permitted" in msg[1] or "Invalid argument" in msg[1] else (
                "Check that the function's code_dir and layers still exist.")
            raise SandboxError(f"Could not create the instance's filesystem: {msg[1]}. {hint}")
        (self._pidfd,) = self._ctrl.take_fds(1)
        self.pid = _pid_of(self._pidfd)

    def destroy(self) -> None:
        if self._gone:
            return
        self._gone = True
        self._ctrl.close()  # the keeper exits on EOF, taking its PID namespace with it
        if self._pidfd < 0:
            return
        try:
            if not _wait_pidfd(self._pidfd, 5.0):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                if not _wait_pidfd(self._pidfd, 5.0):
                    raise SandboxError(f"The keeper process {self.pid} did not exit after SIGKILL.")
        finally:
            os.close(self._pidfd)


def _raise_fd_limit() -> None:
    # The simulator holds four descriptors per instance; the usual soft limit of 1024
    # would stop it near 250 instances although the hard limit allows far more.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class NamespaceSandbox:
    """Instances in Linux mount, PID and user namespaces; see the module docs."""

    name = "namespace"

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise SandboxUnavailable(
                f"The namespace sandbox runs on Linux only (this is {sys.platform}). {_HINT}"
            )
        _raise_fd_limit()
        mine, theirs = socket.socketpair()
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT.format(root=_PKG_ROOT, fd=theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self._chan = Channel(mine)
        try:
            msg = self._chan.recv(30.0)
        except (ChannelClosed, TimeoutError):
            self.close()
            raise SandboxUnavailable(
                f"The namespace sandbox's helper process did not start (exit status {self._proc.poll()}); "
                f"its error output is above. {_HINT}"
            ) from None
        if msg[0] != "ready":
            self.close()
            raise SandboxUnavailable(f"Cannot create namespaces here: {msg[1]}. {_HINT}")
        self.python_paths: list[str] = msg[1]

    def spawn(self, spec: InstanceSpec) -> tuple[NamespaceInstance, Channel]:
        ctrl_mine, ctrl_theirs = socket.socketpair()
        rt_mine, rt_theirs = socket.socketpair()
        try:
            with self._lock:
                self._chan.send(("spawn", spec), fds=[ctrl_theirs.fileno(), rt_theirs.fileno()])
                self._chan.recv(30.0)  # "spawned": the fork happened
        except (ChannelClosed, TimeoutError, OSError) as e:
            ctrl_mine.close()
            rt_mine.close()
            raise SandboxError(f"The namespace sandbox's helper process is gone ({e!r}).") from None
        finally:
            ctrl_theirs.close()
            rt_theirs.close()
        instance = NamespaceInstance(Channel(ctrl_mine))
        try:
            instance.wait_ready(30.0)
        except BaseException:
            rt_mine.close()
            raise
        return instance, Channel(rt_mine)

    def refill(self) -> None:
        """Say that a cold start is over: a good moment to prepare the next instance."""
        with self._lock, contextlib.suppress(OSError):
            self._chan.send(("refill",))

    def close(self) -> None:
        self._chan.close()  # the zygote exits on EOF; its keepers die with it
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
