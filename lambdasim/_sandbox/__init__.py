"""Sandboxes: how an instance's process and filesystem are made.

A sandbox turns an :class:`InstanceSpec` into a running instance whose first
runtime is already starting. The engine talks to the runtime over the returned
channel and manages the instance through the :class:`SandboxInstance` protocol.
"""

# No ``from __future__ import annotations`` here: TypedDict tells NotRequired keys apart
# only from evaluated annotations (before Python 3.13 / typing_extensions).
import warnings
from typing import Any, NotRequired, Protocol, TypedDict

from lambdasim._wire import Channel


class InstanceSpec(TypedDict):
    """What an instance is made of: the engine builds it (``Simulator._spec``), the sandbox
    builds the instance's filesystem from it and hands it to the runtime (``_runtime.run``).
    It crosses processes as a plain dict (``marshal``)."""

    handler: str
    """``module.function``, imported at Init."""
    code_dir: str
    """Host directory mounted read-only at /var/task."""
    layers: list[str]
    """Host directories that make up /opt, in order (later ones win)."""
    tmp_mb: int
    """Size of /tmp (the function's ephemeral storage)."""
    memory_mb: int
    """The function's memory: the runtime's limit on its data."""
    env: dict[str, str]
    """The runtime's whole environment."""
    cwd: str
    """The function's working directory (/var/task)."""
    sys_path_prefix: list[str]
    """Put in front of the runtime's sys.path."""
    coverage: dict[str, Any] | None
    """Settings for coverage.py inside the instance, when the host process is measured."""
    track_tmp_access: NotRequired[bool]
    """Present (and true) when the runtime reports its /tmp reads and writes."""
    real_cwd: NotRequired[str]
    """The fakefs sandbox's: the runtime's working directory on the host (``cwd`` is the fake one)."""
    extra_memory_mb: NotRequired[int]
    """The fakefs sandbox's: memory the runtime may use on top of ``memory_mb`` (its /tmp lives there)."""


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


def create_sandbox(kind: str) -> Sandbox:
    """Return a started sandbox of ``kind``: ``"auto"``, ``"namespace"`` or ``"fakefs"``.

    ``"auto"`` takes the namespace sandbox where it runs and otherwise falls back to
    fakefs, with a one-line warning that says why.
    """
    from lambdasim._errors import ConfigError, SandboxUnavailable

    if kind not in ("auto", "namespace", "fakefs"):
        raise ConfigError(f"sandbox={kind!r} is not a sandbox lambdasim knows; use 'auto', 'namespace' or 'fakefs'.")
    if kind == "fakefs":
        from lambdasim._sandbox.fakefs import FakefsSandbox

        return FakefsSandbox()
    from lambdasim._sandbox.namespace import NamespaceSandbox

    if kind == "namespace":
        return NamespaceSandbox()
    try:
        return NamespaceSandbox()
    except SandboxUnavailable as e:
        why = " ".join(str(e).split(". ")[0].split())
        try:
            from lambdasim._sandbox.fakefs import FakefsSandbox

            sandbox = FakefsSandbox()
        except SandboxUnavailable as fallback:
            raise SandboxUnavailable(f"{e} The fakefs fallback is unavailable too: {fallback}") from None
        warnings.warn(
            f"lambdasim: using the fakefs sandbox, since the namespace sandbox cannot run here ({why}); "
            "fakefs sees Python-level file access only.",
            SandboxFallbackWarning, stacklevel=4)
        return sandbox
