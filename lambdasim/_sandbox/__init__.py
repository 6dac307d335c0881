"""Sandboxes: how an instance's process and filesystem are made.

A sandbox turns an :class:`InstanceSpec` into a running instance whose first
runtime is already starting. The engine talks to the runtime over the returned
channel and manages the instance through the :class:`SandboxInstance` protocol.
"""

from __future__ import annotations

import warnings
from typing import Protocol

from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._wire import Channel

__all__ = ["NETWORKS", "SANDBOXES", "InstanceSpec", "Sandbox", "SandboxFallbackWarning", "SandboxInstance",
           "create_sandbox", "network_names", "sandbox_names"]

SANDBOXES = ("auto", "namespace", "fakefs")
"""The sandboxes :func:`create_sandbox` makes; every help text and hint that lists them is made from this."""


NETWORKS = ("isolated", "internet", "host")
"""The values of ``Simulator(network=...)`` (see ``_network``); every help text that lists them is made from this."""


def network_names(quoted: bool = False) -> str:
    """``isolated, internet or host`` (``'isolated', 'internet' or 'host'`` when ``quoted``)."""
    names = [repr(name) if quoted else name for name in NETWORKS]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def sandbox_names(quoted: bool = False) -> str:
    """``auto, namespace or fakefs`` (``'auto', 'namespace' or 'fakefs'`` when ``quoted``)."""
    names = [repr(name) if quoted else name for name in SANDBOXES]
    return f"{', '.join(names[:-1])} or {names[-1]}"


class SandboxInstance(Protocol):
    """One execution environment, as the sandbox keeps it."""

    pid: int

    def tmp_root(self) -> str:
        """A host path through which the instance's /tmp can be read."""

    def tmp_usage_bytes(self) -> int:
        """Bytes in use on the instance's /tmp."""

    def start_runtime(self) -> Channel:
        """Start a new runtime process (Init follows); return its channel."""

    def kill_runtime(self) -> None:
        """SIGKILL the runtime process; /tmp stays."""

    def wait_runtime_exit(self, timeout: float) -> int:
        """Wait until the runtime has exited; its exit code, or -signal."""

    def destroy(self) -> None:
        """Remove the instance and everything in it; returns when it is gone."""

    frozen: bool
    """Whether :meth:`freeze` came last (and no thaw or kill since)."""

    def freeze(self) -> bool:
        """Freeze every process of the instance (between invocations); False where the sandbox cannot."""

    def thaw(self) -> bool:
        """Thaw it before the next invocation's request is sent; False when it was not frozen."""


class Sandbox(Protocol):
    """Makes instances; one per Simulator."""

    name: str

    def spawn(self, spec: InstanceSpec) -> tuple[SandboxInstance, Channel]:
        """Create an instance and start its first runtime."""

    def refill(self) -> None:
        """A cold start has finished: the sandbox may prepare ahead for the next one."""

    def close(self) -> None:
        """Destroy everything this sandbox started."""


class SandboxFallbackWarning(UserWarning):
    """``sandbox="auto"`` could not use the namespace sandbox and uses the fakefs sandbox."""


def create_sandbox(kind: str, network: str = "isolated") -> Sandbox:
    """Return a started sandbox of ``kind``: ``"auto"``, ``"namespace"`` or ``"fakefs"``, whose
    instances are on ``network`` (see ``_network``; already validated).

    ``"auto"`` takes the namespace sandbox where it runs and otherwise falls back to
    fakefs, with a one-line warning that says why.
    """
    from lambdasim._errors import ConfigError, SandboxUnavailable

    if kind not in SANDBOXES:
        raise ConfigError(f"sandbox={kind!r} is not a sandbox lambdasim knows; use {sandbox_names(quoted=True)}.")
    if kind == "fakefs":
        from lambdasim._sandbox.fakefs import FakefsSandbox

        return FakefsSandbox()
    from lambdasim._sandbox.namespace import NamespaceSandbox

    if kind == "namespace":
        return NamespaceSandbox(network)
    try:
        return NamespaceSandbox(network)
    except SandboxUnavailable as e:
        why = " ".join(str(e).split(". ")[0].split())
        try:
            from lambdasim._sandbox.fakefs import FakefsSandbox

            sandbox = FakefsSandbox()
        except SandboxUnavailable as fallback:
            raise SandboxUnavailable(f"{e} The fakefs fallback is unavailable too: {fallback}") from None
        backstop = (f"with the kernel's Landlock backstop (ABI {sandbox.landlock})" if sandbox.landlock
                    else "without a kernel backstop (no Landlock here)")
        message = (f"lambdasim: using the fakefs sandbox, since the namespace sandbox cannot run here ({why}); "
                   f"fakefs sees Python-level file access only, {backstop}.{_restricted_userns_hint()}")
        if message not in _fallback_warned:  # once per process: a suite makes a Simulator per test
            _fallback_warned.add(message)
            warnings.warn(message, SandboxFallbackWarning, stacklevel=4)
        return sandbox


_fallback_warned: set[str] = set()
APPARMOR_USERNS = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
"""Ubuntu 23.10+: 1 when AppArmor takes the capabilities of unprivileged user namespaces (unshare works,
mounting in it does not)."""


def _restricted_userns_hint() -> str:
    import os

    try:
        with open(APPARMOR_USERNS) as f:
            restricted = f.read().strip() == "1"
    except OSError:
        return ""
    if not restricted or os.geteuid() == 0:
        return ""
    return (" This host restricts unprivileged user namespaces through AppArmor "
            "(kernel.apparmor_restrict_unprivileged_userns=1): run the tests as root or in a Docker container, "
            "allow user namespaces to this Python with an AppArmor profile (README, 'How the sandbox works'), "
            "or keep fakefs.")
