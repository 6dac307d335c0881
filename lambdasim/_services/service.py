"""``sim.services[...]``: one running backing service, its provider, and its faults."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdasim._errors import ServiceError, ServiceSettingError
from lambdasim._services import KINDS, PROVIDERS, Endpoint, Provider, ProviderUnavailable
from lambdasim._services.probe import flush as flush_server
from lambdasim._services.providers import ENV_URL, BinaryProvider, EmbeddedProvider, UrlProvider, configured_url

log = logging.getLogger("lambdasim")


@dataclass(frozen=True)
class ServiceConfig:
    """How one service is run and wired.

    Args:
        kind: ``aws``, ``redis`` or ``memcached``.
        provider: ``auto``, ``url``, ``binary``, ``docker`` or ``embedded``.
        url: the endpoint for ``url`` (else the usual environment variable is read).
        image: the container image for ``docker``.
        env: the environment variable that tells instances where the service is.
        faults: put a fault proxy between instances and the service.
    """

    kind: str
    provider: str = "auto"
    url: str | None = None
    image: str | None = None
    env: str = ""
    faults: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ServiceSettingError(None, f"{self.kind!r} is not a service lambdasim runs; use {', '.join(KINDS)}.")
        if self.provider not in ("auto", *PROVIDERS):
            raise ServiceSettingError(self.kind, f"provider={self.provider!r} is not known; use auto, "
                                                 f"{', '.join(PROVIDERS)}.")

    @property
    def env_var(self) -> str:
        return self.env or ENV_URL[self.kind]


def parse_services(services: Any) -> dict[str, ServiceConfig]:
    """``["aws", "redis"]`` or ``{"redis": {"provider": "binary"}, "aws": "embedded"}`` -> configs."""
    if services is None:
        return {}
    items: dict[str, Any]
    if isinstance(services, str):
        items = {services: {}}
    elif isinstance(services, Mapping):
        items = dict(services)
    else:
        items = {str(kind): {} for kind in services}
    configs: dict[str, ServiceConfig] = {}
    for kind, value in items.items():
        if isinstance(value, ServiceConfig):
            config = value
        elif isinstance(value, str):
            config = ServiceConfig(kind=kind, provider=value)
        elif isinstance(value, Mapping):
            known = {"provider", "url", "image", "env", "faults"}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ServiceSettingError(kind, f"unknown setting(s) {', '.join(unknown)}; "
                                                f"use {', '.join(sorted(known))}.")
            config = ServiceConfig(kind=kind, **value)
        else:
            raise ServiceSettingError(kind, f"use a provider name or a dict of settings, not {value!r}.")
        config.validate()
        configs[kind] = config
    return configs


def _make_provider(kind: str, name: str, config: ServiceConfig) -> Provider:
    if name == "url":
        return UrlProvider(kind, config.url)
    if name == "binary":
        return BinaryProvider(kind)
    if name == "embedded":
        return EmbeddedProvider(kind)
    from lambdasim._services.docker import DockerProvider

    return DockerProvider(kind, image=config.image)


def _start_provider(config: ServiceConfig) -> tuple[Provider, Endpoint]:
    """Start the provider ``config`` asks for; for ``auto`` the first of url, binary,
    docker, embedded that can run here (a Docker engine that refuses us counts as none)."""
    kind = config.kind
    wanted = [config.provider] if config.provider != "auto" else (
        (["url"] if configured_url(kind, config.url) else []) + ["binary", "docker", "embedded"])
    reasons: list[str] = []
    for name in wanted:
        provider: Provider | None = None
        try:
            provider = _make_provider(kind, name, config)
            return provider, provider.start()
        except ProviderUnavailable as e:
            if provider is not None:
                provider.close()
            reasons.append(f"{name}: {e}")
        except BaseException:
            if provider is not None:
                provider.close()
            raise
    raise ServiceError(f"No provider can run {kind} here:\n  " + "\n  ".join(reasons))


# Credentials that look like a role's session but open nothing real: moto accepts them, test-side
# clients use them and instances get them as AWS_ACCESS_KEY_ID & co. (AWS_CREDENTIALS_ENV).
AWS_CREDENTIALS = {"aws_access_key_id": "ASIALAMBDASIMTESTING", "aws_secret_access_key": "lambdasim-not-a-secret",
                   "aws_session_token": "lambdasim-session-token"}
AWS_CREDENTIALS_ENV = {key.upper(): value for key, value in AWS_CREDENTIALS.items()}


def _aws_client(endpoint: Endpoint, service_name: str, **kwargs: Any) -> Any:
    try:
        import boto3
    except ImportError:
        raise ServiceError("a client of the aws service needs boto3: pip install boto3") from None
    settings: dict[str, Any] = {"endpoint_url": f"http://{endpoint.host}:{endpoint.port}", "region_name": "us-east-1",
                                **AWS_CREDENTIALS, **kwargs}
    return boto3.client(service_name, **settings)


def _redis_client(endpoint: Endpoint, **kwargs: Any) -> Any:
    try:
        import redis
    except ImportError:
        raise ServiceError("a client of the redis service needs redis-py: pip install redis") from None
    return redis.Redis(host=endpoint.host, port=endpoint.port, **kwargs)


def _memcached_client(endpoint: Endpoint, **kwargs: Any) -> Any:
    try:
        from pymemcache.client.base import Client
    except ImportError:
        raise ServiceError("a client of the memcached service needs pymemcache: pip install pymemcache") from None
    return Client((endpoint.host, endpoint.port), **kwargs)


_CLIENTS: dict[str, Callable[..., Any]] = {"aws": _aws_client, "redis": _redis_client,
                                           "memcached": _memcached_client}


class Service:
    """One backing service shared by every instance of a Simulator.

    Instances reach it at :attr:`url` (through a fault proxy when faults are on);
    the test reaches the server directly at :attr:`endpoint`.
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.kind = config.kind
        self._lock = threading.RLock()
        self._provider: Provider | None = None
        self._proxy: Any = None
        self.endpoint: Endpoint | None = None
        self.instance_endpoint: Endpoint | None = None
        self.running = False
        self.paused = False
        self.ready = threading.Event()  # set once the first start() has finished, well or not
        # Called with (kind, action, detail) after each fault, so simulators can trace it.
        self.listeners: list[Callable[[str, str, dict[str, Any]], None]] = []

    def _notify(self, action: str, **detail: Any) -> None:
        for listener in list(self.listeners):
            listener(self.kind, action, detail)

    @property
    def provider(self) -> str:
        """Which provider runs it: ``url``, ``binary``, ``docker`` or ``embedded``."""
        return self._provider.name if self._provider is not None else "not started"

    @property
    def env_var(self) -> str:
        return self.config.env_var

    @property
    def url(self) -> str:
        """The URL instances are given."""
        ep = self.instance_endpoint
        if ep is None:
            raise ServiceError(f"{self.kind} is not started.")
        if self.kind == "aws":
            return f"http://{ep.host}:{ep.port}"
        if self.kind == "redis":
            return f"redis://{ep.host}:{ep.port}/0"
        return f"{ep.host}:{ep.port}"

    def environment(self) -> dict[str, str]:
        return {self.env_var: self.url}

    def start(self) -> Service:
        """Start the server (a restart after stop() gives an empty one) and wait until it answers."""
        with self._lock:
            restarted = self.endpoint is not None and not self.running
            if self._provider is None:
                self._provider, endpoint = _start_provider(self.config)
            else:
                try:
                    endpoint = self._provider.start()
                except ProviderUnavailable as e:
                    raise ServiceError(f"{self.kind} via {self._provider.name}: {e}") from None
            if self.endpoint is not None and endpoint != self.endpoint and self._proxy is not None:
                self._proxy.retarget((endpoint.host, endpoint.port))
            self.endpoint = endpoint
            if self.config.faults and self._proxy is None:
                from lambdasim._services.proxy import FaultProxy

                self._proxy = FaultProxy((endpoint.host, endpoint.port))
                host, port = self._proxy.start()
                self.instance_endpoint = Endpoint(host, port)
            elif self._proxy is None:
                self.instance_endpoint = endpoint
            self.running = True
            if restarted:
                self._notify("start")
            log.info("lambdasim: %s runs on provider %s at %s:%s%s", self.kind, self.provider, endpoint.host,
                     endpoint.port, " (instances go through a fault proxy)" if self._proxy is not None else "")
            return self

    def _needs_provider(self) -> Provider:
        if self._provider is None:
            raise ServiceError(f"{self.kind} is not started; call start() first.")
        return self._provider

    def stop(self) -> None:
        """Stop the server: clients get connection errors; its data is lost."""
        with self._lock:
            provider = self._needs_provider()
            try:
                provider.stop()
            except NotImplementedError:
                # A server lambdasim does not run: look stopped from the instances' side.
                self._require_proxy("stop")
                self._proxy.cut()
            self.running = False
        self._notify("stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def flush(self) -> None:
        """Delete all data (keys, buckets, tables) without stopping the server."""
        with self._lock:
            if self.endpoint is None or not flush_server(self.kind, self.endpoint):
                raise ServiceError(f"{self.kind}: flushing failed at {self.endpoint}.\n{self.log_tail()}")
        self._notify("flush")

    def _require_proxy(self, what: str) -> None:
        if self._proxy is None:
            raise ServiceError(
                f"{self.kind}.{what}() needs the fault proxy, which is off for this service; "
                f"enable it with services={{{self.kind!r}: {{'faults': True}}}}.")

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing is answered, so clients time out."""
        with self._lock:
            try:
                self._needs_provider().pause()
            except NotImplementedError:
                self._require_proxy("pause")
                self._proxy.pause()
            self.paused = True
        self._notify("pause")

    def resume(self) -> None:
        with self._lock:
            try:
                self._needs_provider().resume()
            except NotImplementedError:
                self._require_proxy("resume")
                self._proxy.resume()
            self.paused = False
        self._notify("resume")

    def set_latency(self, seconds: float) -> None:
        """Delay everything between instances and the service by ``seconds`` each way (0: off)."""
        self._require_proxy("set_latency")
        self._proxy.set_latency(seconds)
        self._notify("latency", seconds=seconds)

    def cut(self) -> None:
        """Break the network between instances and the service: open connections are reset."""
        self._require_proxy("cut")
        self._proxy.cut()
        self._notify("cut")

    def heal(self) -> None:
        """Undo cut(); for a ``url`` service also undoes stop()."""
        self._require_proxy("heal")
        self._proxy.heal()
        if self._provider is not None and self._provider.name == "url":
            self.running = True
        self._notify("heal")

    def reset_faults(self) -> None:
        """Undo every fault (stopped, paused, latency, cut) and keep the data; e.g. between tests."""
        with self._lock:
            if self._provider is None:
                return
            if not self.running and self._provider.name != "url":
                self.start()
            if self.paused:
                self.resume()
            if self._proxy is not None:
                self._proxy.resume()
                self._proxy.set_latency(0)
                self._proxy.heal()
            self.running = True

    def client(self, *args: Any, **kwargs: Any) -> Any:
        """A client connected straight to the server (not through the fault proxy), for the test side.

        ``aws``: ``client("s3")`` is a boto3 client for that AWS service on moto (``region_name``
        defaults to us-east-1; other keyword arguments go to ``boto3.client``). ``redis``: a
        redis-py ``Redis``; ``memcached``: a pymemcache ``Client``; keyword arguments go to them.
        """
        endpoint = self.endpoint
        if endpoint is None:
            raise ServiceError(f"{self.kind} is not started; call start() first.")
        return _CLIENTS[self.kind](endpoint, *args, **kwargs)

    def log_tail(self, lines: int = 40) -> str:
        return self._provider.log_tail(lines) if self._provider is not None else ""

    def close(self) -> None:
        with self._lock:
            if self._proxy is not None:
                self._proxy.close()
                self._proxy = None
            if self._provider is not None:
                self._provider.close()
                self._provider = None
            self.running = False

    def __repr__(self) -> str:
        return f"<Service {self.kind} provider={self.provider} endpoint={self.endpoint}>"


class Services(Mapping[str, Service]):
    """The services of one Simulator; a service not configured starts on first use (provider auto)."""

    def __init__(self, configs: Mapping[str, ServiceConfig]) -> None:
        self._configs = dict(configs)
        self._services: dict[str, Service] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.listeners: list[Callable[[str, str, dict[str, Any]], None]] = []

    def start_configured(self) -> None:
        for kind in self._configs:
            self[kind]

    def __getitem__(self, kind: str) -> Service:
        with self._lock:
            service = self._services.get(kind)
            new = service is None
            if service is None:
                if self._closed:
                    raise ServiceError("The Simulator is closed; its services are gone.")
                config = self._configs.get(kind) or ServiceConfig(kind=kind)
                config.validate()
                service = Service(config)
                service.listeners = self.listeners
                self._services[kind] = service
        if not new:
            service.ready.wait()  # another thread may still be starting it
            if service.endpoint is None:
                raise ServiceError(f"{kind} could not be started (see the error of the first attempt).")
            return service
        try:
            service.start()
        except BaseException:
            with self._lock:
                self._services.pop(kind, None)
            raise
        finally:
            service.ready.set()
        return service

    def __contains__(self, kind: object) -> bool:
        """Whether ``kind`` runs; unlike ``services[kind]``, this starts nothing."""
        return kind in self._services

    def get(self, kind: str, default: Any = None) -> Any:
        """The running service, or ``default``; starts nothing."""
        return self._services.get(kind, default)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._services))

    def __len__(self) -> int:
        return len(self._services)

    def environment(self) -> dict[str, str]:
        """What every new instance is told: endpoints of the running services."""
        env: dict[str, str] = {}
        for service in list(self._services.values()):
            if service.instance_endpoint is not None:
                env.update(service.environment())
        return env

    def close(self) -> None:
        with self._lock:
            self._closed = True
            services, self._services = list(self._services.values()), {}
        errors = []
        for service in services:
            try:
                service.close()
            except Exception as e:  # noqa: BLE001 - close the others, report the first
                errors.append(e)
        if errors:
            raise ServiceError(f"Could not stop {len(errors)} service(s): {errors[0]}") from errors[0]
