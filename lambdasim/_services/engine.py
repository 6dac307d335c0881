"""The connection to a Docker engine, shared by the ``docker`` provider and the local image
builder (:mod:`lambdasim._services.docker`, :mod:`lambdasim._services.images`), so that
neither imports the other for it.

The docker SDK is imported lazily: importing lambdasim never imports docker.
"""

from __future__ import annotations

import os
from typing import Any

from lambdasim._services import ProviderUnavailable

CONNECT_TIMEOUT_S = 3.0  # how long to wait for an engine to answer at all
API_TIMEOUT_S = 60.0  # any later engine call

ENGINE_HINT = (
    "start dockerd (nohup dockerd >/tmp/dockerd.log 2>&1 &) or install docker.io (apt-get install -y docker.io)")


def one_line(error: BaseException | str) -> str:
    text = str(error).strip().replace("\r", " ")
    return " ".join(text.split()) or type(error).__name__


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A docker SDK client whose engine has answered a ping; ProviderUnavailable (with a hint) otherwise."""
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise ProviderUnavailable("the Python docker SDK is not installed: pip install docker") from None
    address = _engine_address()
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:  # noqa: BLE001 - every failure here means the same: no usable engine
        reason = one_line(e)
        if "permission denied" in reason.lower():
            raise ProviderUnavailable(
                f"the Docker engine at {address} refuses this user ({reason}): run as root or join the docker group"
            ) from None
        raise ProviderUnavailable(f"no Docker engine answers at {address} ({reason}): {ENGINE_HINT}") from None
    client.api.timeout = API_TIMEOUT_S
    return client
