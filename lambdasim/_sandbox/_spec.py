"""The instance spec: what the engine hands a sandbox to make one instance of a function.

A leaf module (standard library only): the engine, the sandboxes and the runtime inside
each instance all import it.
"""

# No ``from __future__ import annotations`` here: TypedDict tells NotRequired keys apart
# only from evaluated annotations (before Python 3.13 / typing_extensions).
import sys
from typing import TYPE_CHECKING, Any, TypedDict

if sys.version_info >= (3, 11):  # noqa: UP036 - the runtime also runs on 3.9 and 3.10 (see below)
    from typing import NotRequired


if sys.version_info >= (3, 11) or TYPE_CHECKING:
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
        memory_by_use: NotRequired[bool]
        """The namespace sandbox's: memory is measured and limited by use (see ``_usage``), not by RLIMIT_DATA."""
        network: NotRequired[str]
        """``isolated`` or ``internet`` (absent: the host's network); see ``_sandbox._network``."""
        forward: NotRequired[list[tuple[str, int] | tuple[str, int, str]]]
        """With ``network``: the loopback addresses of the simulator's services (and fault proxies),
        reachable from the instance at the same address; ``(host, port, "udp")`` for a UDP one (X-Ray's)."""
        refuse_network: NotRequired[bool]
        """The fakefs sandbox's, under ``isolated``: its runtime refuses Python's connections elsewhere."""
        package: NotRequired[str]
        """``strict``: imports from outside the package, layers and runtime fail, as on Lambda (``_package``);
        absent: they are noted only."""
        tasks_rlimit: NotRequired[int]
        """The namespace sandbox's, where it has no pids cgroup: RLIMIT_NPROC of the runtime."""
        runtime_kind: NotRequired[str]
        """``api``: the instance's runtime process is ``lambdasim._rapi``, which serves Lambda's Runtime and
        Extensions API at ``api_address`` and starts ``command`` and ``/opt/extensions/*``. ``managed``: Lambda
        Managed Instances, ``lambdasim._managed_rt`` runs ``AWS_LAMBDA_MAX_CONCURRENCY`` built-in runtimes at once.
        Absent: the built-in Python runtime (``lambdasim._runtime``) on the framed channel."""
        command: NotRequired[list[str]]
        """With ``api``: the runtime's command line inside the instance; empty for a custom runtime
        (``provided*``), whose ``bootstrap`` is looked for in /var/task, then /opt."""
        api_address: NotRequired[str]
        """With ``api``: where the API listens, ``127.0.0.1:9001`` in a network namespace of the instance's
        own; port 0 elsewhere (a free port is taken, and ``AWS_LAMBDA_RUNTIME_API`` says which)."""
        own_network: NotRequired[bool]
        """The namespace sandbox's: the instance gets a network namespace of its own (``lo``, and the
        ``forward`` addresses relayed), so that only it reaches its Runtime API."""
        python_home: NotRequired[str]
        """Another Python than lambdasim's (``Runtime: python3.X``, see ``_interpreters``): the host installation
        the namespace sandbox mounts at /var/lang, where the Runtime API command finds it."""
        runtime_sdk: NotRequired[str]
        """With ``python_home``: the host directory of the AWS SDK built for that Python, seen at /var/runtime/sdk."""
        snapshot: NotRequired[bool]
        """SnapStart: the instance is a version's snapshot; after Init its runtime serves restores (``_restore``)."""
        landlock: NotRequired[int]
        """The fakefs sandbox's: the Landlock ABI its runtime confines itself with, 0 for none (``_confine``)."""
else:
    # A function's runtime on an older Python (Runtime python3.9, python3.10: see _interpreters) only
    # reads specs, as plain dicts; these annotations do not evaluate there.
    InstanceSpec = dict
