"""Backing services (AWS via moto, Redis, Memcached) shared by every instance.

A *provider* is the I/O edge that runs one server: an endpoint the user already runs
(``url``), a binary on PATH (``binary``), a container (``docker``) or an in-process
server (``embedded``). Providers implement :class:`Provider`; :class:`Service`
(``sim.services["redis"]``) adds the rest: choosing a provider, the endpoint
instances see, flushing, and faults through a proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

KINDS = ("aws", "redis", "memcached")
PROVIDERS = ("url", "binary", "docker", "embedded")


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens: always on the loopback interface."""

    host: str
    port: int


class ProviderUnavailable(Exception):
    """This provider cannot run here (binary missing, no Docker engine, ...).

    The message says why and how to make it available; ``auto`` then tries the next.
    """


class Provider(Protocol):
    """Runs one server for one service kind.

    ``start`` blocks until the server answers (never by sleeping a fixed time) and
    raises :class:`lambdasim.ServiceError` with the server's log tail and a hint if
    it does not come up. ``stop`` ends the server; a later ``start`` gives an empty
    one (no persistence), on the same port when the provider can. ``pause``/``resume``
    freeze and thaw the server process so that clients hang; providers that cannot
    (``url``, ``embedded``) raise NotImplementedError and the service pauses its
    proxy instead. ``close`` removes everything the provider made, also after a
    failed ``start``.
    """

    name: str  # "url", "binary", "docker" or "embedded"

    def start(self) -> Endpoint: ...

    def stop(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def log_tail(self, lines: int = 40) -> str: ...

    def close(self) -> None: ...
