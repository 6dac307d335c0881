"""Host side of the Linux namespace sandbox (see ``_zygote`` for the inside)."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import sys

from lambdasim import _wire as wire
from lambdasim._errors import SandboxError, SandboxUnavailable
from lambdasim._sandbox._cgroup import InstanceCgroup
from lambdasim._sandbox._common import Helper, KeeperLink, reap_later, release_helper, shared_helper
from lambdasim._sandbox._freeze import write_state
from lambdasim._sandbox._network import OWN_NETWORK_REFUSED as _OWN_NETWORK_REFUSED
from lambdasim._sandbox._network import find_stack, stack_missing_message
from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._sandbox._usage import Meter, Usage
from lambdasim._wire import Channel, ChannelClosed

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


class NamespaceInstance(KeeperLink):
    """An instance, held by its keeper process (see ``_zygote.Keeper``)."""

    _pidfd = -1
    cgroup: InstanceCgroup | None = None
    meter: Meter | None = None
    _state_fd = -1  # the cgroup's freeze file: frozen and thawed from here (the keeper under "signals")
    _freezer = "signals"
    freezes = True

    def usage(self, log_bytes: int = 0) -> Usage | None:
        """What the instance uses now (see ``_usage``); None before it is ready."""
        return self.meter.sample(log_bytes) if self.meter is not None else None

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer ended in the instance so far."""
        return self.meter.oom_kills() if self.meter is not None else 0

    def freeze(self) -> bool:
        if self._state_fd < 0:
            return super().freeze()
        with self._lock:
            if not self._gone:
                write_state(self._state_fd, self._freezer, True)
                self.frozen = True
        return self.frozen

    def thaw(self) -> bool:
        if self._state_fd < 0 or not self.frozen:
            return super().thaw()
        with self._lock:
            self.frozen = False
            if not self._gone:
                write_state(self._state_fd, self._freezer, False)
        return True

    def tmp_root(self) -> str:
        return f"/proc/{self.pid}/root/tmp"

    def tmp_usage_bytes(self) -> int:
        st = os.statvfs(self.tmp_root())
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def wait_ready(self, timeout: float) -> None:
        try:
            msg = self._ctrl.recv(timeout, fds=True)
        except (ChannelClosed, TimeoutError):
            msg = wire.pack_refusal(reason="the instance's keeper process died while building its filesystem")
        if msg[0] != wire.READY:
            self.destroy()
            reason = wire.Refusal._make(msg).reason
            if reason.startswith(_OWN_NETWORK_REFUSED):  # the spec asked what this sandbox's network cannot give
                raise SandboxError(f"Could not create the instance: {reason}.")
            hint = _HINT if "Operation not permitted" in reason or "Invalid argument" in reason else (
                "Check that the function's code_dir and layers still exist.")
            raise SandboxError(f"Could not create the instance's filesystem: {reason}. {hint}")
        ready = wire.KeeperReady._make(msg)
        (self._pidfd,) = self._ctrl.take_fds(1)
        self.pid = _pid_of(self._pidfd)
        self._freezer = ready.freezer
        if self._freezer != "signals":
            (self._state_fd,) = self._ctrl.take_fds(1)
        if ready.cgroup_paths:
            self.cgroup = InstanceCgroup(ready.cgroup_version, ready.cgroup_paths)
        self.meter = Meter(self.pid, self.cgroup if self.cgroup and self.cgroup.limits else None,
                           self.tmp_usage_bytes)

    def destroy(self) -> None:
        with self._lock:
            if self._gone:
                return
            self._gone = True
        # The keeper exits on EOF: it kills everything in the instance (frozen or not: no
        # thaw first), reaps it and removes its freezer cgroup; its PID namespace ends with it.
        # Nothing of the instance runs its code any more once the keeper has read the EOF; the
        # waiting (milliseconds, longer with cgroups v1) is the reaper's.
        self._ctrl.close()
        reap_later(self._reap)

    def _reap(self) -> None:
        try:
            if self._pidfd < 0:
                return
            try:
                if not _wait_pidfd(self._pidfd, 5.0):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                    if self._state_fd >= 0:  # the kernel's SIGKILLs reach tasks of the v1 freezer once thawed
                        with contextlib.suppress(OSError):
                            write_state(self._state_fd, self._freezer, False)
                    if not _wait_pidfd(self._pidfd, 5.0):
                        raise SandboxError(f"The keeper process {self.pid} did not exit after SIGKILL.")
            finally:
                os.close(self._pidfd)
                if self._state_fd >= 0:
                    os.close(self._state_fd)
        finally:
            # Empty once the keeper's PID namespace is gone (the keeper, as nobody by then, could not
            # remove them: see _identity); what stays is removed with the sandbox's place.
            if self.cgroup is not None:
                self.cgroup.remove()


def _refused(why: str) -> str:
    if "network stack" in why:
        return f"Cannot give instances network='internet': {why}."
    return f"Cannot create namespaces here: {why}. {_HINT}"


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

    def __init__(self, network: str = "isolated") -> None:
        if not sys.platform.startswith("linux"):
            raise SandboxUnavailable(
                f"The namespace sandbox runs on Linux only (this is {sys.platform}). {_HINT}"
            )
        stack = find_stack() if network == "internet" else None
        if network == "internet" and stack is None:
            raise SandboxUnavailable(stack_missing_message())
        _raise_fd_limit()
        self.network = network
        self._key = (self.name, network, tuple(stack or ()))
        self._stack = stack
        self._helper = shared_helper(self._key, self._make)
        self._spawned = False
        self.python_paths: list[str] = self._helper.ready
        # Lambda's limits on processes and memory are counted by the kernel where the zygote
        # could make cgroups; elsewhere RLIMIT_NPROC and sampling through procfs (see _usage).
        self.limits: str = self._helper.limits
        """How processes and memory are limited: ``cgroup v1``, ``cgroup v2`` or ``rlimit+procfs``."""

    def _make(self) -> Helper:
        return Helper(self.name, "lambdasim._sandbox._zygote", 30.0, _refused, _HINT, args=(self.network, self._stack))

    def spawn(self, spec: InstanceSpec) -> tuple[NamespaceInstance, Channel]:
        spec = InstanceSpec(**spec, memory_by_use=True)
        try:
            ctrl, rt = self._helper.spawn(spec)
        except SandboxError:
            if self._spawned or self._helper.alive():
                raise
            # The shared helper died before this sandbox used it (e.g. a test before killed it): a new one.
            self._helper.close(1.0)
            self._helper = self._make()
            ctrl, rt = self._helper.spawn(spec)
        self._spawned = True
        instance = NamespaceInstance(ctrl)
        try:
            instance.wait_ready(30.0)
        except BaseException:
            rt.close()
            raise
        return instance, rt

    def refill(self) -> None:
        """Say that a cold start is over: a good moment to prepare the next instance."""
        self._helper.send((wire.REFILL,))

    def close(self) -> None:
        """Hand the zygote back for the next sandbox of this process (the Simulator has destroyed its
        instances); it exits on EOF when the process ends (see ``_common.shutdown``), its keepers with it."""
        release_helper(self._key, self._helper)
