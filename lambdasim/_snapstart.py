"""SnapStart, the engine's side: one snapshot per published version, and restores from it.

Lambda initialises a SnapStart version once, when the version is published, snapshots the
environment's memory and disk, and starts every environment of that version from the snapshot. Here
each deploy and redeploy of a ``snap_start`` function publishes a version: its Init (and the
before-snapshot hooks) runs at once in a *snapshot*, an instance of its own that is never invoked
(``snapshot`` event). A new environment of the version is then *restored*: a clone of the snapshot's
runtime process with a copy of its /tmp (see ``_sandbox._restore``), whose after-restore hooks run
before its first invocation, which reports ``Restore Duration`` (``restored`` event). A snapshot lives
as long as its version is the current one or still has environments.

When Init fails (the handler's import raises, a before-snapshot hook raises), Lambda leaves the new
version in state ``Failed`` and traffic stays where it was: :meth:`Simulator.deploy` and
:meth:`Function.redeploy` raise :class:`SnapshotFailed`, with Lambda's error and the Init's logs, and
a failed redeploy leaves the function on its current version.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambdasim import _lambda_errors as lambda_errors
from lambdasim import _platform_log
from lambdasim._errors import LambdaSimError, SandboxError, SettingError
from lambdasim._invoke import Live
from lambdasim._model import PYTHON_VERSION, FunctionConfig, InstanceRecord
from lambdasim._sandbox._layout import FAKEFS_CLONES
from lambdasim._sandbox._usage import TASKS_LIMIT
from lambdasim._wire import OUT_OF_MEMORY_AT_INIT, Channel, ChannelClosed, ProtocolError, pack_restore

if TYPE_CHECKING:
    from lambdasim._simulator import Function, Simulator

SNAPSHOT_INIT_MAX_S = 900.0
_HIDDEN_ENV = ("AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME")
"""Not set in SnapStart functions (Lambda's SnapStart monitoring docs)."""


class SnapshotFailed(LambdaSimError):
    """Publishing a SnapStart version failed: its Init (the handler's import, or a before-snapshot hook)
    raised. ``error`` is Lambda's error (``errorType``, ``errorMessage``, ...), ``logs`` the Init's log."""

    def __init__(self, function: str, version: str, error: dict[str, Any], logs: str, current: str | None) -> None:
        self.function = function
        self.version = version
        self.error = error
        self.logs = logs
        where = (f" The function stays on version {current}." if current is not None
                 else " The function is not deployed.")
        tail = "\n".join(logs.rstrip("\n").splitlines()[-20:])
        super().__init__(
            f"Function {function!r}: version {version} could not be published with SnapStart: its Init failed with "
            f"{error.get('errorType')}: {error.get('errorMessage')}. Lambda leaves such a version in state Failed "
            f"and invocations are not routed to it.{where} Fix the handler's module or its before-snapshot hooks "
            f"and deploy again.\nInit logs:\n{tail}")


@dataclass
class Snapshot:
    """A version's snapshot: the instance whose runtime ran Init and now serves restores."""

    live: Live
    init_ms: float
    logs: str
    restores: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def refusal(config: FunctionConfig) -> str | None:
    """Why lambdasim cannot simulate SnapStart for ``config`` (None: it can)."""
    wrapper = config.environment.get("AWS_LAMBDA_EXEC_WRAPPER")
    if not config.snap_start or not (config.entry_point or wrapper or _has_extensions(config)):
        return None
    return ("lambdasim simulates SnapStart for the managed Python runtime without a wrapper script, extensions or "
            "an image entry point (its restores clone the built-in runtime's process); deploy without snap_start "
            "to test the rest.")


def _has_extensions(config: FunctionConfig) -> bool:
    from lambdasim._invoke import has_extensions

    return has_extensions(config.layers)


class SnapStart:
    """The snapshots of one Simulator's SnapStart versions."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._snapshots: dict[tuple[str, str], Snapshot] = {}
        self._lock = threading.Lock()

    def check(self, config: FunctionConfig) -> None:
        why = refusal(config)
        if why is not None:
            raise SettingError(config.name, "snap_start", why)

    # -- publishing ------------------------------------------------------------------------

    def take(self, fn: Function, version: str, current: str | None) -> None:
        """Run Init of ``version`` (published, not yet active) and keep its snapshot; raises SnapshotFailed
        (``current``: the version traffic stays on) when Init fails."""
        sim = self._sim
        config = fn._model.versions[version]
        record = InstanceRecord(id=f"{fn.name}-snapshot-v{version}", function=fn.name, version=version,
                                created_at=sim.clock.now(), init_type="snap-start")
        spec = sim._spec(fn, record, config)
        for key in _HIDDEN_ENV:
            spec["env"].pop(key, None)
        spec["snapshot"] = True
        live = Live(record, config, spec)
        try:
            live.sbx, live.rt = sim._sandbox.spawn(spec)
            error, init_ms = self._init(live, config)
            status = lambda_errors.error_status(error["errorType"]) if error is not None else ""
            system_log = config.json_system_level
            logs = (_platform_log.init_start(
                        system_log, lambda_errors.init_start_line(PYTHON_VERSION, sim.region),
                        initialization_type="snap-start", runtime_version=_platform_log.runtime_version(
                            PYTHON_VERSION, None), region=sim.region, function=fn.name, version=lambda_errors.LATEST)
                    + live.take_logs() + _platform_log.init_report(
                        system_log, lambda_errors.phase_line("INIT_REPORT", init_ms, status), init_ms, status,
                        initialization_type="snap-start"))
            if error is None:
                tmp_bytes = _quiet_usage(live)
                _unlimit(live)
        except BaseException:
            self._remove(live)
            raise
        with sim._lock:
            sim._event("snapshot", fn.name, None, version, init_ms=round(init_ms, 3),
                       **({"tmp_bytes": tmp_bytes} if error is None else {"error": error["errorType"]}))
        if error is not None:
            self._remove(live)
            raise SnapshotFailed(fn.name, version, error, logs, current)
        with self._lock:
            self._snapshots[(fn.name, version)] = Snapshot(live, init_ms, logs)

    def _init(self, live: Live, config: FunctionConfig) -> tuple[dict[str, Any] | None, float]:
        """Wait for the snapshot runtime's Init: (its error or None, its duration in ms)."""
        limit = min(max(lambda_errors.SNAPSHOT_INIT_MIN_S, config.timeout_s), SNAPSHOT_INIT_MAX_S)
        started = time.monotonic()
        try:
            msg = self._sim._invoker.wait_init(live, limit)
        except TimeoutError:
            return ({"errorType": lambda_errors.SANDBOX_TIMEDOUT,
                     "errorMessage": f"Init timed out after {limit:.2f} seconds"}, limit * 1000.0)
        except (ChannelClosed, ProtocolError):
            code = live.sbx.wait_runtime_exit(10.0)
            return ({"errorType": lambda_errors.RUNTIME_EXIT_ERROR,
                     "errorMessage": f"Error: {lambda_errors.exit_reason(code)}"}, (time.monotonic() - started) * 1e3)
        error = msg.error
        if error == OUT_OF_MEMORY_AT_INIT:
            error = {"errorType": lambda_errors.RUNTIME_OUT_OF_MEMORY,
                     "errorMessage": "Error: Runtime exited with error: signal: killed"}
        return error, msg.init_ms

    # -- restoring -------------------------------------------------------------------------

    def restore(self, live: Live) -> None:
        """Make ``live``'s sandbox: a restore from its version's snapshot (in place of ``Sandbox.spawn``)."""
        record = live.record
        with self._lock:
            snap = self._snapshots.get((record.function, record.version))
        if snap is None or snap.live.rt is None:
            raise SandboxError(f"Instance {record.id}: version {record.version} of {record.function!r} has no "
                               "snapshot to restore from (it was removed).")
        options: dict[str, Any] = {"tmp_mb": live.config.ephemeral_storage_mb, "tasks_rlimit": TASKS_LIMIT + 1}
        kind = self._sim._sandbox.name
        ctrl_mine, ctrl_theirs = socket.socketpair()
        rt_mine, rt_theirs = socket.socketpair()
        try:
            with snap.lock:
                snap.restores += 1
                if kind == "fakefs":
                    options["tmp_dir"] = f"{snap.live.sbx.tmp_root()}{FAKEFS_CLONES}/{snap.restores}"
                live.restore_started = time.monotonic()
                snap.live.rt.send(pack_restore(options=options), fds=[ctrl_theirs.fileno(), rt_theirs.fileno()])
        except OSError as e:
            ctrl_mine.close()
            rt_mine.close()
            raise SandboxError(f"Instance {record.id}: the snapshot of version {record.version} "
                               f"is gone ({e}).") from None
        finally:
            ctrl_theirs.close()
            rt_theirs.close()
        sbx: Any
        if kind == "fakefs":
            from lambdasim._sandbox.fakefs import FakefsInstance

            sbx = FakefsInstance(Channel(ctrl_mine))
        else:
            from lambdasim._sandbox.namespace import NamespaceInstance

            sbx = NamespaceInstance(Channel(ctrl_mine))
        try:
            sbx.wait_ready(30.0)
        except BaseException:
            rt_mine.close()
            raise
        live.sbx, live.rt = sbx, Channel(rt_mine)

    # -- removing ----------------------------------------------------------------------------

    def collect(self) -> None:
        """Remove the snapshots of versions that are no longer current and have no environments left."""
        sim = self._sim
        with sim._lock, self._lock:
            doomed = []
            for key in list(self._snapshots):
                name, version = key
                fn = sim.functions.get(name)
                if fn is not None and (fn.version == version or any(
                        r.version == version for r in fn._model.live())):
                    continue
                doomed.append(self._snapshots.pop(key))
        for snap in doomed:
            self._remove(snap.live)

    def close(self) -> None:
        with self._lock:
            doomed, self._snapshots = list(self._snapshots.values()), {}
        for snap in doomed:
            self._remove(snap.live)

    @staticmethod
    def _remove(live: Live) -> None:
        try:
            if live.sbx is not None:
                live.sbx.destroy()
        finally:
            live.drop_runtime()


def _quiet_usage(live: Live) -> int:
    with contextlib.suppress(OSError):
        return live.sbx.tmp_usage_bytes()
    return 0


def _unlimit(live: Live) -> None:
    """The restored instances run in the snapshot's cgroup (a process cannot leave its group without
    privileges): its limits go, and each restored instance is measured through its own /proc instead."""
    group = getattr(live.sbx, "cgroup", None)
    if group is None or not group.limits:
        return
    files = [(group.paths["pids"], "pids.max", "max")]
    files.append((group.paths["memory"], "memory.limit_in_bytes", "-1") if group.version == 1
                 else (group.paths["memory"], "memory.max", "max"))
    for directory, name, value in files:
        with contextlib.suppress(OSError):
            fd = os.open(f"{directory}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
