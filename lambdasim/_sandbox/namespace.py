"""Host side of the Linux namespace sandbox (see ``_zygote`` for the inside)."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
import signal
import sys
import time

from lambdasim import _wire as wire
from lambdasim._errors import SandboxError, SandboxUnavailable
from lambdasim._sandbox import _usage
from lambdasim._sandbox._cgroup import CgroupPlace, InstanceCgroup
from lambdasim._sandbox._common import Helper, KeeperLink
from lambdasim._sandbox._freeze import cgroup_dir, write_state
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
            hint = _HINT if "Operation not permitted" in reason or "Invalid argument" in reason else (
                "Check that the function's code_dir and layers still exist.")
            raise SandboxError(f"Could not create the instance's filesystem: {reason}. {hint}")
        (self._pidfd,) = self._ctrl.take_fds(1)
        self.pid = _pid_of(self._pidfd)
        self._freezer = msg[1]
        if self._freezer != "signals":
            (self._state_fd,) = self._ctrl.take_fds(1)
        self.meter = Meter(self.pid, self.cgroup, self.tmp_usage_bytes)

    def destroy(self) -> None:
        with self._lock:
            if self._gone:
                return
            self._gone = True
        # The keeper exits on EOF: it kills everything in the instance (frozen or not: no
        # thaw first), reaps it and removes its freezer cgroup; its PID namespace ends with it.
        self._ctrl.close()
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
                    # The keeper removes its freezer cgroup as it ends, but as root it has become nobody
                    # (see _identity) by then: what it could not remove, this process can.
                    with contextlib.suppress(OSError):
                        _remove_cgroup(cgroup_dir(self._freezer, self._state_fd))
                    os.close(self._state_fd)
        finally:
            # Empty once the keeper's PID namespace is gone; what stays is swept with the sandbox.
            if self.cgroup is not None:
                self.cgroup.remove()

def _refused(why: str) -> str:
    if "network stack" in why:
        return f"Cannot give instances network='internet': {why}."
    return f"Cannot create namespaces here: {why}. {_HINT}"


def _remove_cgroup(path: str, timeout: float = 2.0) -> None:
    """rmdir a cgroup once its killed tasks have left it (they leave as the kernel reaps them)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


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
        self._helper = Helper(self.name, "lambdasim._sandbox._zygote", 30.0, _refused, _HINT, args=(network, stack))
        self.python_paths: list[str] = self._helper.ready
        # Lambda's limits on processes and memory, counted by the kernel where lambdasim can
        # have a cgroup; elsewhere RLIMIT_NPROC and sampling through procfs (see _usage).
        self._cgroups = CgroupPlace.find(frozenset({"pids", "memory"}))

    @property
    def limits(self) -> str:
        """How processes and memory are limited: ``cgroup v1``, ``cgroup v2`` or ``rlimit+procfs``."""
        return f"cgroup v{self._cgroups.version}" if self._cgroups is not None else "rlimit+procfs"

    def spawn(self, spec: InstanceSpec) -> tuple[NamespaceInstance, Channel]:
        spec = InstanceSpec(**spec, memory_by_use=True)
        group = None
        if self._cgroups is not None:
            group = self._cgroups.create()
            try:
                # The keeper is lambdasim's process, not the function's: one more than Lambda's limit.
                group.set_pids_max(_usage.TASKS_LIMIT + 1)
                group.set_memory_max((spec["memory_mb"] + spec["tmp_mb"]) * 1024 * 1024 + _usage.HARNESS_MARGIN)
            except BaseException:
                group.remove()
                raise
            spec["cgroup_procs"] = group.procs_files()
        else:
            # RLIMIT_NPROC counts tasks per user and user namespace (each instance has its own);
            # the keeper is one of them.
            spec["tasks_rlimit"] = _usage.TASKS_LIMIT + 1
        try:
            ctrl, rt = self._helper.spawn(spec)
        except BaseException:
            if group is not None:
                group.remove()
            raise
        instance = NamespaceInstance(ctrl)
        instance.cgroup = group
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
        try:
            self._helper.close()  # the zygote exits on EOF; its keepers die with it
        finally:
            if self._cgroups is not None:
                self._cgroups.close()
