"""The ``docker`` provider: each server in its own container, published on 127.0.0.1 only.

The image is the official one (``redis:7``, ``memcached:1.6``, ``motoserver/moto:latest``)
when the engine has it or can pull it; otherwise a local image built from this
machine's binaries (:mod:`lambdasim._services.images`). Docker picks a free host port at
the first start; later starts reuse it (the old container is gone, so a new one is
made with the port fixed). Containers carry the labels ``lambdasim=1`` and
``lambdasim.owner=<pid>``, so that :func:`remove_stale_containers` can remove those
that a dead process left behind; it runs at the first start in each process.

The docker SDK is imported lazily: importing lambdasim never imports docker.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from lambdasim._errors import ServiceError
from lambdasim._sandbox._common import pid_alive
from lambdasim._services import KINDS, Endpoint, ProviderUnavailable
from lambdasim._services.engine import connect, one_line
from lambdasim._services.probe import answers

log = logging.getLogger("lambdasim")

PULL_TIMEOUT_S = 20.0  # a pull that makes no progress for this long is given up
READY_TIMEOUT_S = 30.0
HOST = "127.0.0.1"

@dataclass(frozen=True)
class _KindSpec:
    image: str
    port: int
    command: tuple[str, ...] | None  # None: the image's own command


_SPECS = {
    # No persistence; protected mode off since clients come through Docker's port mapping, not loopback.
    "redis": _KindSpec("redis:7", 6379, ("redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no")),
    "memcached": _KindSpec("memcached:1.6", 11211, None),
    "aws": _KindSpec("motoserver/moto:latest", 5000, None),
}

_pull_failures: dict[str, str] = {}  # image -> why it could not be pulled (tried once per process)
_swept: set[str] = set()  # labels whose stale containers this process already removed
_state_lock = threading.Lock()
_names = itertools.count(1)
_open: weakref.WeakSet[DockerProvider] = weakref.WeakSet()  # closed at exit if their owner forgot


@atexit.register
def _close_forgotten() -> None:
    for provider in list(_open):
        with contextlib.suppress(Exception):
            provider.close()


def _pid_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), to tell a reused pid from its owner."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _owner_alive(labels: dict[str, str], label: str) -> bool:
    try:
        pid = int(labels.get(f"{label}.owner", ""))
    except ValueError:
        return False
    if pid <= 0 or not pid_alive(pid):
        return False
    started = labels.get(f"{label}.owner-start")
    if started:
        now = _pid_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by another process
    return True


def remove_stale_containers(label: str = "lambdasim", client: Any | None = None) -> list[str]:
    """Remove the containers labelled ``<label>=1`` whose owner process is gone; return their names.

    Containers made in another PID namespace (another container, another machine's
    engine) are left alone: whether their owner lives cannot be told from here.
    """
    import docker  # type: ignore[import-untyped, unused-ignore]

    own = client is None
    client = client if client is not None else connect()
    removed: list[str] = []
    namespace = _pid_namespace()
    try:
        for container in client.containers.list(all=True, filters={"label": f"{label}=1"}):
            labels: dict[str, str] = container.labels or {}
            their_namespace = labels.get(f"{label}.pidns")
            if their_namespace and namespace and their_namespace != namespace:
                continue
            if _owner_alive(labels, label):
                continue
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as e:
                log.warning("lambdasim: could not remove the stale container %s: %s", container.name, one_line(e))
                continue
            log.info("lambdasim: removed the stale container %s (owner pid %s is gone)", container.name,
                     labels.get(f"{label}.owner"))
            removed.append(container.name)
    finally:
        if own:
            client.close()
    return removed


def _has_image(client: Any, image: str) -> bool:
    import docker  # type: ignore[import-untyped, unused-ignore]

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: Any, image: str) -> str | None:
    """Pull ``image`` once per process; None when it worked, else why not."""
    import docker  # type: ignore[import-untyped, unused-ignore]

    if image in _pull_failures:
        return _pull_failures[image]
    api = client.api
    timeout, api.timeout = api.timeout, PULL_TIMEOUT_S
    reason: str | None = None
    try:
        for chunk in api.pull(image, stream=True, decode=True):  # the SDK splits name, tag and digest
            if isinstance(chunk, dict) and "error" in chunk:
                reason = one_line(str(chunk["error"]))
                break
    except docker.errors.APIError as e:
        reason = one_line(e.explanation or e)
    except Exception as e:  # noqa: BLE001 - a read timeout or a dropped connection: no pull
        reason = one_line(e)
    finally:
        api.timeout = timeout
    if reason is None and not _has_image(client, image):
        reason = "the engine reported no error but has no such image"
    if reason is not None:
        _pull_failures[image] = reason
    return reason


class DockerProvider:
    """Runs a redis, memcached or moto (aws) server in a container; see the module's docstring.

    ``command`` replaces the container's command and ``ready_timeout`` the 30 s that
    :meth:`start` waits for the server to answer its protocol.
    """

    name = "docker"

    def __init__(
        self,
        kind: str,
        image: str | None = None,
        label: str = "lambdasim",
        *,
        command: list[str] | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown service kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.label = label
        self._spec = _SPECS[kind]
        self._image = image
        self._command = list(command) if command is not None else None
        self._ready_timeout = ready_timeout
        self._lock = threading.RLock()
        self._client: Any | None = None
        self._container: Any | None = None
        self._port: int | None = None  # the host port, kept across stop()/start()
        self._last_logs = ""
        self._closed = False
        self.image: str | None = None  # the image the containers run, once resolved

    def __repr__(self) -> str:
        return f"DockerProvider({self.kind!r}, image={self.image or self._image!r}, port={self._port})"

    # --- protocol -------------------------------------------------------------------------------------------------

    def start(self) -> Endpoint:
        with self._lock:
            if self._closed:
                raise ServiceError(f"docker {self.kind}: this provider is closed")
            client = self._connect()
            if self._container is not None:
                if self._status() in ("running", "paused"):
                    assert self._port is not None
                    return Endpoint(HOST, self._port)
                self._remove()
            with _state_lock:
                sweep = self.label not in _swept
                _swept.add(self.label)
            if sweep:
                try:
                    remove_stale_containers(self.label, client)
                except Exception as e:  # noqa: BLE001 - a cleanup of others' leftovers must not stop this start
                    log.warning("lambdasim: could not look for stale containers: %s", one_line(e))
            if self.image is None:
                self.image = self._resolve_image(client)
            self._container = self._run(client, self.image)
            _open.add(self)
            try:
                port = self._read_port()
                self._wait_ready(Endpoint(HOST, port))
            except BaseException:
                self._last_logs = self._logs(200)
                self._remove()
                raise
            self._port = port
            return Endpoint(HOST, port)

    def stop(self) -> None:
        with self._lock:
            if self._container is not None:
                self._last_logs = self._logs(200)
                self._remove()

    def pause(self) -> None:
        import docker  # type: ignore[import-untyped, unused-ignore]

        with self._lock:
            container = self._require()
            try:
                container.pause()
            except docker.errors.APIError as e:
                if "already paused" in str(e):
                    return
                # E.g. no cgroup freezer: the service then pauses its proxy instead.
                raise NotImplementedError(f"docker {self.kind}: the engine cannot pause it: {one_line(e)}") from e

    def resume(self) -> None:
        import docker  # type: ignore[import-untyped, unused-ignore]

        with self._lock:
            container = self._require()
            try:
                container.unpause()
            except docker.errors.APIError as e:
                if "is not paused" in str(e):
                    return
                raise ServiceError(f"docker {self.kind}: cannot resume it: {one_line(e)}") from e

    def log_tail(self, lines: int = 40) -> str:
        with self._lock:
            if self._container is not None:
                return self._logs(lines)
            return "\n".join(self._last_logs.splitlines()[-lines:])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _open.discard(self)
            try:
                if self._container is not None:
                    self._remove()
            finally:
                if self._client is not None:
                    self._client.close()
                    self._client = None

    # --- internals ------------------------------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._client is None:
            self._client = connect()
        return self._client

    def _require(self) -> Any:
        if self._container is None:
            raise ServiceError(f"docker {self.kind} is not started; call start() first")
        return self._container

    def _resolve_image(self, client: Any) -> str:
        image = self._image or self._spec.image
        if _has_image(client, image):
            return image
        reason = _pull(client, image)
        if reason is None:
            log.info("lambdasim: pulled the image %s for %s", image, self.kind)
            return image
        if self._image is not None:
            raise ProviderUnavailable(
                f"the image {image} is not in the Docker engine and cannot be pulled ({reason}): "
                f"docker load it, or leave the image unset to use a local build")
        from lambdasim._services.images import ensure_image

        tag = ensure_image(self.kind, client)
        log.info("lambdasim: %s cannot be pulled (%s); %s runs the local image %s built from this machine",
                 image, reason, self.kind, tag)
        return str(tag)

    def _labels(self) -> dict[str, str]:
        pid = os.getpid()
        labels = {self.label: "1", f"{self.label}.owner": str(pid), f"{self.label}.kind": self.kind,
                  f"{self.label}.pidns": _pid_namespace()}
        started = _pid_start(pid)
        if started is not None:
            labels[f"{self.label}.owner-start"] = started
        return labels

    def _run(self, client: Any, image: str) -> Any:
        """Create and start the container, on the kept host port when there is one."""
        import docker  # type: ignore[import-untyped, unused-ignore]

        command = self._command if self._command is not None else self._spec.command
        for port in (self._port, None) if self._port is not None else (None,):
            name = f"{self.label}-{self.kind}-{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:6]}"
            try:
                container = client.containers.create(
                    image, command=list(command) if command is not None else None, name=name,
                    labels=self._labels(), ports={f"{self._spec.port}/tcp": (HOST, port)}, detach=True)
            except docker.errors.APIError as e:
                raise ServiceError(f"docker {self.kind}: cannot create a container from {image}: {one_line(e)}") from e
            try:
                container.start()
            except docker.errors.APIError as e:
                container.remove(force=True)
                text = one_line(e).lower()
                if port is not None and ("already allocated" in text or "address already in use" in text):
                    log.warning("lambdasim: %s's port %d is taken now; Docker picks another", self.kind, port)
                    continue
                raise ServiceError(
                    f"docker {self.kind}: cannot start a container from {image}: {one_line(e)}") from e
            return container
        raise AssertionError("unreachable")

    def _read_port(self) -> int:
        container = self._require()
        key = f"{self._spec.port}/tcp"
        deadline = time.monotonic() + 5.0
        while True:
            container.reload()
            bindings = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
            for binding in bindings.get(key) or []:
                if binding.get("HostIp") in (HOST, "") and binding.get("HostPort"):
                    return int(binding["HostPort"])
            if container.status not in ("created", "running"):
                raise self._failure(f"the container stopped before it was given a port ({self._state()})")
            if time.monotonic() > deadline:
                raise self._failure(f"Docker gave the container no host port for {key}")
            time.sleep(0.02)  # polls the engine for the binding

    def _status(self) -> str:
        import docker  # type: ignore[import-untyped, unused-ignore]

        if self._container is None:
            return "gone"
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return "gone"
        return str(self._container.status)

    def _state(self) -> str:
        if self._container is None:
            return "gone"
        state = self._container.attrs.get("State") or {}
        status = state.get("Status", "?")
        if status in ("exited", "dead"):
            return f"{status} with code {state.get('ExitCode')}"
        return str(status)

    def _wait_ready(self, endpoint: Endpoint) -> None:
        """Poll the server's own protocol until it answers, its container stops, or the deadline passes."""
        deadline = time.monotonic() + self._ready_timeout
        delay = 0.01
        while True:
            remaining = deadline - time.monotonic()
            if answers(self.kind, endpoint, timeout=min(1.0, max(remaining, 0.05))):
                return
            status = self._status()
            if status not in ("running", "created", "restarting"):
                raise self._failure(f"the container stopped before the server answered ({self._state()})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failure(
                    f"the server did not answer at {endpoint.host}:{endpoint.port} within {self._ready_timeout:g} s",
                    f"the server must listen on port {self._spec.port} in the container (published at "
                    f"{endpoint.port}); on a slow machine give it more time (ready_timeout)")
            # Back off between attempts: this polls readiness, it does not guess a start-up time.
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.2)

    def _failure(self, what: str, hint: str = "") -> ServiceError:
        tail = self._logs(40) or "(the container wrote no log)"
        hint = hint or f"the server's log below says why; check the image {self.image} and its command"
        return ServiceError(f"docker {self.kind} did not start: {what}\nhint: {hint}\n--- log tail ---\n{tail}")

    def _logs(self, lines: int) -> str:
        if self._container is None:
            return ""
        try:
            data = self._container.logs(tail=lines)
        except Exception:  # noqa: BLE001 - the logs only help; the container may be gone
            return ""
        return bytes(data).decode(errors="replace").rstrip()

    def _remove(self) -> None:
        import docker  # type: ignore[import-untyped, unused-ignore]

        container, self._container = self._container, None
        if container is None:
            return
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
