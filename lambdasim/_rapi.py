"""Lambda's Runtime API and Extensions API, served inside an instance (being written: issue 13)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from lambdasim._sandbox._spec import InstanceSpec
from lambdasim._wire import Channel, pack_sandbox_failure


def run(sock: socket.socket, spec: InstanceSpec, enter: Callable[[], None] | None = None,
        logs: Any = None) -> None:
    """Serve the Runtime API for ``spec["command"]`` (not written yet: the sandbox says so)."""
    Channel(sock).send(pack_sandbox_failure(reason="the Runtime API is not available yet"))
    os._exit(70)
