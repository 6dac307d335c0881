"""The docker provider against a real Docker engine, with the clients users use.

Each test skips with the reason when no engine (or no binary to build a local image
from) is here, unless LAMBDASIM_REQUIRE_SERVICES=1, which makes it fail instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lambdasim._errors import ServiceError
from lambdasim._services import Endpoint, ProviderUnavailable
from lambdasim._services.docker import DockerProvider, remove_stale_containers
from lambdasim._services.engine import connect

pytestmark = pytest.mark.docker

REQUIRE_SERVICES = os.environ.get("LAMBDASIM_REQUIRE_SERVICES") == "1"
LABEL = "lambdasim-test"  # a label of the tests' own, so that what they look for is theirs
KINDS = ["redis", "memcached", "aws"]
NO_SUCH_PID = 4194305  # above the largest pid_max Linux allows: no process has it
BUCKET = "lambdasim-test"


def _unavailable(e: ProviderUnavailable) -> NoReturn:
    if REQUIRE_SERVICES:
        pytest.fail(f"the docker provider cannot run here (LAMBDASIM_REQUIRE_SERVICES=1): {e}")
    pytest.skip(f"the docker provider cannot run here: {e}")


def _start(provider: DockerProvider) -> Endpoint:
    try:
        return provider.start()
    except ProviderUnavailable as e:
        _unavailable(e)


@pytest.fixture
def engine() -> Iterator[Any]:
    try:
        client = connect()
    except ProviderUnavailable as e:
        _unavailable(e)
    yield client
    client.close()


@pytest.fixture
def make_provider(engine: Any) -> Iterator[Callable[..., DockerProvider]]:
    made: list[DockerProvider] = []

    def make(kind: str, **kwargs: Any) -> DockerProvider:
        kwargs.setdefault("label", LABEL)
        provider = DockerProvider(kind, **kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()
    assert _ours(engine) == []


def _ours(engine: Any, label: str = LABEL) -> list[str]:
    """Names of the containers (running or not) that this process made under ``label``: docker ps -a."""
    filters = {"label": [f"{label}=1", f"{label}.owner={os.getpid()}"]}
    return [c.name for c in engine.containers.list(all=True, filters=filters)]


# --- real clients -----------------------------------------------------------------------------------------------------


def _s3(endpoint: Endpoint, timeout: float | None = None) -> Any:
    import boto3  # type: ignore[import-untyped, unused-ignore]
    from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]

    config = Config(read_timeout=timeout, connect_timeout=timeout, retries={"max_attempts": 0}) if timeout else None
    return boto3.client("s3", endpoint_url=f"http://{endpoint.host}:{endpoint.port}", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing", config=config)


def _memcached(endpoint: Endpoint, timeout: float = 5.0) -> Any:
    from pymemcache.client.base import Client  # type: ignore[import-untyped, unused-ignore]

    return Client((endpoint.host, endpoint.port), timeout=timeout, connect_timeout=timeout)


def _put(kind: str, endpoint: Endpoint, value: bytes) -> None:
    if kind == "redis":
        assert redis.Redis(host=endpoint.host, port=endpoint.port, socket_timeout=5).set("k", value)
    elif kind == "memcached":
        assert _memcached(endpoint).set("k", value, noreply=False)
    else:
        s3 = _s3(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="k", Body=value)


def _get(kind: str, endpoint: Endpoint, timeout: float = 5.0) -> bytes | None:
    if kind == "redis":
        # No retries: redis-py would otherwise try 3 more times with back-off before giving up.
        value = redis.Redis(host=endpoint.host, port=endpoint.port, socket_timeout=timeout,
                            socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)).get("k")
        assert value is None or isinstance(value, bytes)
        return value
    if kind == "memcached":
        got = _memcached(endpoint, timeout).get("k")
        assert got is None or isinstance(got, bytes)
        return got
    from botocore.exceptions import ClientError  # type: ignore[import-untyped, unused-ignore]

    try:
        body = _s3(endpoint, timeout).get_object(Bucket=BUCKET, Key="k")["Body"].read()
    except ClientError as e:
        if e.response["Error"]["Code"] in ("NoSuchBucket", "NoSuchKey"):
            return None
        raise
    assert isinstance(body, bytes)
    return body


def _timeout_error(kind: str) -> type[BaseException]:
    """The exception each client raises when the server does not answer in time."""
    if kind == "redis":
        return redis.exceptions.TimeoutError
    if kind == "memcached":
        return TimeoutError  # socket.timeout
    from botocore.exceptions import ReadTimeoutError  # type: ignore[import-untyped, unused-ignore]

    return ReadTimeoutError  # type: ignore[no-any-return, unused-ignore]


# --- tests ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_start_serves_real_clients(make_provider: Callable[..., DockerProvider], engine: Any, kind: str) -> None:
    provider = make_provider(kind)
    endpoint = _start(provider)
    assert endpoint.host == "127.0.0.1"
    _put(kind, endpoint, b"v1")
    assert _get(kind, endpoint) == b"v1"
    # Published on the loopback interface only, with the labels that tell whose it is.
    (name,) = _ours(engine)
    container = engine.containers.get(name)
    bindings = [b for ports in container.attrs["NetworkSettings"]["Ports"].values() for b in ports or []]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(endpoint.port)}]
    assert container.labels[f"{LABEL}.kind"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_stop_then_start_keeps_the_port_and_empties_the_server(
        make_provider: Callable[..., DockerProvider], engine: Any, kind: str) -> None:
    provider = make_provider(kind)
    first = _start(provider)
    _put(kind, first, b"old")
    (before,) = _ours(engine)
    provider.stop()
    assert _ours(engine) == []
    if kind != "memcached":  # memcached logs nothing unless asked to
        assert provider.log_tail()  # the stopped server's log is still there to read
    second = _start(provider)
    assert second == first
    assert _ours(engine) != [before]  # a new container ...
    assert _get(kind, second) is None  # ... and no persistence
    _put(kind, second, b"new")
    assert _get(kind, second) == b"new"


@pytest.mark.parametrize("kind", KINDS)
def test_pause_hangs_clients_until_resume(make_provider: Callable[..., DockerProvider], kind: str) -> None:
    provider = make_provider(kind)
    endpoint = _start(provider)
    _put(kind, endpoint, b"v")
    provider.pause()
    started = time.monotonic()
    with pytest.raises(_timeout_error(kind)):
        _get(kind, endpoint, timeout=1.0)
    assert 0.9 <= time.monotonic() - started < 10
    provider.resume()
    assert _get(kind, endpoint) == b"v"


@pytest.mark.parametrize("kind", KINDS)
def test_close_removes_the_container(make_provider: Callable[..., DockerProvider], engine: Any, kind: str) -> None:
    provider = make_provider(kind)
    _start(provider)
    assert len(_ours(engine)) == 1
    provider.close()
    assert _ours(engine) == []
    provider.close()  # twice is fine
    with pytest.raises(ServiceError, match="closed"):
        provider.start()


def test_close_after_a_paused_server(make_provider: Callable[..., DockerProvider], engine: Any) -> None:
    provider = make_provider("redis")
    _start(provider)
    provider.pause()
    provider.pause()  # pausing (and resuming) twice is fine
    provider.close()
    assert _ours(engine) == []


def test_default_labels_name_the_owner(make_provider: Callable[..., DockerProvider], engine: Any) -> None:
    provider = make_provider("memcached", label="lambdasim")
    _start(provider)
    (name,) = _ours(engine, "lambdasim")
    labels = engine.containers.get(name).labels
    assert labels["lambdasim"] == "1"
    assert labels["lambdasim.owner"] == str(os.getpid())


def test_remove_stale_containers(make_provider: Callable[..., DockerProvider], engine: Any) -> None:
    from docker import errors as docker_errors  # type: ignore[import-untyped, unused-ignore]

    provider = make_provider("redis")
    _start(provider)  # also resolves the image
    image = provider.image
    live = _ours(engine)
    made: list[Any] = []
    try:
        for owner, extra in [(NO_SUCH_PID, {}), (os.getpid(), {f"{LABEL}.owner-start": "1"}), (os.getpid(), {})]:
            labels = {LABEL: "1", f"{LABEL}.owner": str(owner), **extra}
            made.append(engine.containers.create(image, labels=labels, name=f"{LABEL}-stale-{len(made)}-{os.getpid()}"))
        removed = remove_stale_containers(LABEL, engine)
        # The dead owner's and the reused pid's go; a live owner's stay (the running one too).
        assert sorted(removed) == sorted([made[0].name, made[1].name])
        assert sorted(_ours(engine)) == sorted([*live, made[2].name])
    finally:
        for container in made:
            with contextlib.suppress(docker_errors.NotFound):
                container.remove(force=True)


def test_readiness_timeout_carries_the_log_tail(make_provider: Callable[..., DockerProvider], engine: Any) -> None:
    # A server that listens on another port than the one published never answers there.
    provider = make_provider("redis", ready_timeout=2.0,
                             command=["redis-server", "--port", "7777", "--save", "", "--appendonly", "no"])
    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        _start(provider)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "did not answer" in message and "within 2 s" in message
    assert "port=7777" in message  # redis's own log line
    assert "hint:" in message
    assert _ours(engine) == []  # a failed start leaves nothing behind
    assert "port=7777" in provider.log_tail()
    provider.close()


def test_a_server_that_exits_fails_fast_with_its_log(make_provider: Callable[..., DockerProvider], engine: Any) -> None:
    provider = make_provider("redis", command=["redis-server", "--no-such-option"])
    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        _start(provider)
    assert time.monotonic() - started < 10  # not the 30 s readiness deadline
    message = str(caught.value)
    assert "exited with code 1" in message
    assert "Bad directive" in message
    assert _ours(engine) == []
    provider.close()
    provider.close()


def test_no_engine_is_provider_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    provider = DockerProvider("redis", label=LABEL)
    with pytest.raises(ProviderUnavailable) as caught:
        provider.start()
    message = str(caught.value)
    assert "\n" not in message
    if "SDK is not installed" not in message:
        assert "no Docker engine answers at unix:///nonexistent/docker.sock" in message
        assert "dockerd" in message and "docker.io" in message
    provider.close()


def test_a_missing_binary_is_provider_unavailable_with_the_apt_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdasim._services import images

    monkeypatch.setattr(images, "_BINARY", {"redis": "no-such-redis-server", "memcached": "no-such-memcached"})
    for kind, package in [("redis", "redis-server"), ("memcached", "memcached")]:
        with pytest.raises(ProviderUnavailable, match=f"apt-get install -y {package}"):
            images.recipe_for(kind)


def test_a_stale_local_image_is_rebuilt(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdasim._services import images

    def key_of(tag: str) -> str:
        return str(engine.images.get(tag).labels[images.KEY_LABEL])

    try:
        tag = images.ensure_image("memcached", engine)
    except ProviderUnavailable as e:
        _unavailable(e)
    current = key_of(tag)
    assert current == images.image_key("memcached")
    assert images.ensure_image("memcached", engine) == tag and key_of(tag) == current  # up to date: kept
    monkeypatch.setattr(images, "BUILDER_VERSION", images.BUILDER_VERSION + "-test")
    images.ensure_image("memcached", engine)
    assert key_of(tag) == images.image_key("memcached") != current
    monkeypatch.undo()
    images.ensure_image("memcached", engine)
    assert key_of(tag) == current
