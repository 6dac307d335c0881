"""Backing services: every provider of every service, wiring into instances, and faults."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdasim import ConfigError, ServiceError, Simulator
from lambdasim._services.service import Service, ServiceConfig, Services, parse_services
from tests.conftest import Code

pytestmark = pytest.mark.services

# CI sets this so that a provider that cannot run fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("LAMBDASIM_REQUIRE_SERVICES") == "1"

PROVIDERS = {
    "aws": ["binary", "docker", "embedded"],
    "redis": ["binary", "docker", "embedded"],
    "memcached": ["binary", "docker"],
}
CASES = [pytest.param((kind, provider), id=f"{kind}-{provider}",
                      marks=[pytest.mark.docker] if provider == "docker" else [])
         for kind, providers in PROVIDERS.items() for provider in providers]

# One handler that talks to every service with the client libraries users use.
CLIENT_HANDLER = """
import os
import boto3
import redis
from botocore.config import Config
from pymemcache.client.base import Client

def handler(event, context):
    kind, op = event["kind"], event["op"]
    if kind == "aws":
        timeout = event.get("timeout")
        config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 0}) if timeout else None
        s3 = boto3.client("s3", config=config)
        if op == "put":
            s3.create_bucket(Bucket="data")
            s3.put_object(Bucket="data", Key="k", Body=event["value"].encode())
            return "ok"
        return s3.get_object(Bucket="data", Key="k")["Body"].read().decode()
    if kind == "redis":
        r = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=event.get("timeout", 5))
        if op == "put":
            r.set("k", event["value"])
            return "ok"
        value = r.get("k")
        return value.decode() if value is not None else None
    host, port = os.environ["MEMCACHED_URL"].split(":")
    mc = Client((host, int(port)), timeout=event.get("timeout", 5), connect_timeout=event.get("timeout", 5))
    if op == "put":
        mc.set("k", event["value"], noreply=False)  # stored before the test pauses the server
        return "ok"
    value = mc.get("k")
    return value.decode() if value is not None else None
"""


def _start(kind: str, provider: str, **settings: object) -> Simulator:
    try:
        return Simulator(services={kind: {"provider": provider, **settings}})
    except ServiceError as e:
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"{kind} via {provider} is not available here: {e}")


@pytest.fixture
def service_sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    kind, provider = request.param
    sim = _start(kind, provider)
    yield sim
    sim.close()


def _put_get(sim: Simulator, code: Code, kind: str) -> tuple[str, str]:
    fn = sim.deploy("app.handler", code_dir=code(CLIENT_HANDLER), name=f"client-{kind}", timeout_s=30)
    put = fn.invoke({"kind": kind, "op": "put", "value": "from an instance"})
    assert put.error is None, put.error
    return put.instance_id or "", fn.name


@pytest.mark.parametrize("service_sim", CASES, indirect=True)
def test_instances_and_tests_share_the_service(service_sim: Simulator, code: Code) -> None:
    sim = service_sim
    (kind,) = list(sim.services)
    service = sim.services[kind]
    assert service.provider in PROVIDERS[kind]
    assert service.endpoint is not None and service.endpoint.host == "127.0.0.1"
    first, name = _put_get(sim, code, kind)
    fn = sim.functions[name]
    # Another instance (the first is gone) reads what the first one wrote.
    fn.scale_down(keep=0)
    got = fn.invoke({"kind": kind, "op": "get"})
    assert got.instance_id != first and got.payload == "from an instance", got.error
    # The test side sees the same data through its own client.
    if kind == "aws":
        body = sim.boto3_client("s3").get_object(Bucket="data", Key="k")["Body"].read()
    elif kind == "redis":
        body = sim.redis_client().get("k")
    else:
        body = sim.memcached_client().get("k")
    assert body == b"from an instance"
    # ... and through the client the service itself hands out.
    own = service.client("s3").get_object(Bucket="data", Key="k")["Body"].read() if kind == "aws" else (
        service.client().get("k"))
    assert own == b"from an instance"
    # flush() empties it.
    service.flush()
    after = fn.invoke({"kind": kind, "op": "get"})
    if kind == "aws":
        assert after.error is not None and after.error["errorType"] == "NoSuchBucket"
    else:
        assert after.payload is None


@pytest.mark.parametrize("service_sim", CASES, indirect=True)
def test_stop_start_loses_data_and_clients_see_real_errors(service_sim: Simulator, code: Code) -> None:
    sim = service_sim
    (kind,) = list(sim.services)
    service = sim.services[kind]
    _, name = _put_get(sim, code, kind)
    fn = sim.functions[name]
    service.stop()
    down = fn.invoke({"kind": kind, "op": "get", "timeout": 2})
    assert down.error is not None
    expected = {"aws": {"EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError"},
                "redis": {"ConnectionError", "TimeoutError"},
                "memcached": {"ConnectionResetError", "ConnectionRefusedError", "MemcacheUnexpectedCloseError",
                              "BrokenPipeError", "TimeoutError"}}[kind]
    assert down.error["errorType"] in expected, down.error
    service.start()
    up = fn.invoke({"kind": kind, "op": "get"})
    if kind == "aws":
        assert up.error is not None and up.error["errorType"] == "NoSuchBucket", "a restart loses the data"
    else:
        assert up.error is None and up.payload is None, "a restart loses the data"


@pytest.mark.parametrize("service_sim", CASES, indirect=True)
def test_pause_makes_clients_time_out(service_sim: Simulator, code: Code) -> None:
    sim = service_sim
    (kind,) = list(sim.services)
    service = sim.services[kind]
    _, name = _put_get(sim, code, kind)
    fn = sim.functions[name]
    service.pause()
    try:
        started = time.monotonic()
        hung = fn.invoke({"kind": kind, "op": "get", "timeout": 0.5})
        assert time.monotonic() - started >= 0.5
        assert hung.error is not None
        assert hung.error["errorType"] in {"TimeoutError", "timeout", "ReadTimeoutError"}, hung.error
    finally:
        service.resume()
    assert fn.invoke({"kind": kind, "op": "get"}).payload == "from an instance"


def test_url_provider_uses_a_running_server(code: Code, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = _start("redis", "auto")
    try:
        ep = owner.services["redis"].endpoint
        assert ep is not None
        monkeypatch.setenv("REDIS_URL", f"redis://{ep.host}:{ep.port}/0")
        with Simulator(services=["redis"]) as sim:
            service = sim.services["redis"]
            assert service.provider == "url"
            _, name = _put_get(sim, code, "redis")
            assert owner.redis_client().get("k") == b"from an instance"
            # lambdasim does not control this server: stop() cuts the instances off from it.
            service.stop()
            down = sim.functions[name].invoke({"kind": "redis", "op": "get", "timeout": 2})
            assert down.error is not None and down.error["errorType"] == "ConnectionError"
            service.heal()
            assert sim.functions[name].invoke({"kind": "redis", "op": "get"}).payload == "from an instance"
    finally:
        owner.close()


def test_auto_picks_url_then_binary_then_docker_then_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with Simulator(services={"redis": {"provider": "auto", "faults": False}}) as sim:
        assert sim.services["redis"].provider in ("docker", "embedded")


def test_memcached_has_no_embedded_provider() -> None:
    with pytest.raises(ServiceError, match=r"memcached has no embedded server.*apt-get install -y memcached"):
        Simulator(services={"memcached": "embedded"})


def test_service_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="'postgres' is not a service"):
        parse_services(["postgres"])
    with pytest.raises(ConfigError, match=r"provider='kubernetes' is not known"):
        parse_services({"redis": "kubernetes"})
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_services({"redis": {"port": 1}})


def test_env_var_names_are_configurable(code: Code) -> None:
    sim = _start("redis", "embedded", env="CACHE_URL")
    try:
        src = code("import os\ndef handler(e, c):\n    return os.environ.get('CACHE_URL')\n")
        fn = sim.deploy("app.handler", code_dir=src)
        url = fn.invoke({}).payload
        assert url == sim.services["redis"].url and url.startswith("redis://127.0.0.1:")
    finally:
        sim.close()


def test_faults_latency_and_cut(code: Code) -> None:
    sim = _start("redis", "embedded")
    try:
        _, name = _put_get(sim, code, "redis")
        fn = sim.functions[name]
        service = sim.services["redis"]
        service.set_latency(0.3)
        slow = fn.invoke({"kind": "redis", "op": "get"})
        assert slow.payload == "from an instance" and slow.duration_ms >= 300
        service.set_latency(0)
        service.cut()
        cut = fn.invoke({"kind": "redis", "op": "get", "timeout": 2})
        assert cut.error is not None and cut.error["errorType"] in {"ConnectionError", "TimeoutError"}, cut.error
        assert sim.redis_client().get("k") == b"from an instance", "the test side reaches the server directly"
        service.heal()
        assert fn.invoke({"kind": "redis", "op": "get"}).payload == "from an instance"
    finally:
        sim.close()


def test_services_leave_nothing_behind(tmp_path: Path) -> None:
    sim = _start("redis", "binary")
    service = sim.services["redis"]
    port = service.endpoint.port if service.endpoint else 0
    sim.close()
    from lambdasim._services import Endpoint
    from lambdasim._services.probe import answers

    assert not answers("redis", Endpoint("127.0.0.1", port))
    assert not [p for p in os.listdir("/tmp") if p.startswith(f"lambdasim-redis-{os.getpid()}-")]



def test_binary_servers_die_with_a_killed_test_process(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed: apt-get install -y redis-server")
    script = tmp_path / "victim.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from lambdasim import Simulator
        sim = Simulator(services={{"redis": "binary", "memcached": "binary"}})
        print(sim.services["redis"].endpoint.port, sim.services["memcached"].endpoint.port, flush=True)
        time.sleep(600)
    """))
    victim = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout is not None
        ports = [int(p) for p in victim.stdout.readline().split()]
        assert len(ports) == 2
        from lambdasim._services import Endpoint
        from lambdasim._services.probe import answers

        assert answers("redis", Endpoint("127.0.0.1", ports[0]))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (answers("redis", Endpoint("127.0.0.1", ports[0]), 0.2)
                                               or answers("memcached", Endpoint("127.0.0.1", ports[1]), 0.2)):
            time.sleep(0.05)
        assert not answers("redis", Endpoint("127.0.0.1", ports[0]), 0.2)
        assert not answers("memcached", Endpoint("127.0.0.1", ports[1]), 0.2)
        assert not [p for p in os.listdir(tempfile.gettempdir()) if f"-{victim.pid}-" in p], "no data folder left"
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_a_server_that_does_not_come_up_fails_with_its_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot open the config (for this test)'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(ServiceError) as info:
        Simulator(services={"redis": "binary"})
    message = str(info.value)
    assert "exited with status 3" in message
    assert "FATAL: cannot open the config (for this test)" in message
    assert "Hint:" in message


def test_the_choice_of_provider_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="lambdasim"):
        sim = _start("redis", "embedded")
        sim.close()
    assert any("redis runs on provider embedded at 127.0.0.1:" in r.getMessage() for r in caplog.records)



def test_service_faults_are_in_every_simulators_trace() -> None:
    sim = _start("redis", "embedded")
    try:
        service = sim.services["redis"]
        service.set_latency(0.01)
        service.cut()
        service.heal()
        service.stop()
        service.start()
        service.flush()
        events = [(e.detail["service"], e.detail["action"]) for e in sim.trace if e.kind == "service"]
        assert events == [("redis", a) for a in ("latency", "cut", "heal", "stop", "start", "flush")]
    finally:
        sim.close()
    assert sim.services.listeners == [], "a closed simulator stops listening"


def test_a_service_owns_its_client() -> None:
    services = Services(parse_services({"redis": "embedded", "memcached": "binary", "aws": "embedded"}))
    try:
        redis_service = services["redis"]
        assert redis_service.endpoint is not None and redis_service.instance_endpoint is not None
        assert redis_service.endpoint != redis_service.instance_endpoint  # instances go through the fault proxy
        with redis_service.client(socket_timeout=5) as r:
            assert r.connection_pool.connection_kwargs["port"] == redis_service.endpoint.port  # the test side: direct
            r.set("k", "v")
            assert r.get("k") == b"v"
        redis_service.cut()  # a fault between instances and the server does not reach the test side
        with redis_service.client(socket_timeout=5) as r:
            assert r.get("k") == b"v"
        redis_service.heal()
        memcached = services["memcached"].client()
        memcached.set("k", b"v")
        assert memcached.get("k") == b"v"
        memcached.close()
        s3 = services["aws"].client("s3")
        assert s3.meta.region_name == "us-east-1"
        s3.create_bucket(Bucket="data")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["data"]
        assert services["aws"].client("sqs", region_name="eu-west-1").meta.region_name == "eu-west-1"
    finally:
        services.close()
    with pytest.raises(ServiceError, match="redis is not started; call start"):
        Service(ServiceConfig(kind="redis")).client()


def _count_concurrently(dynamodb: object, workers: int = 8, each: int = 10) -> list[int]:
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    client: Any = dynamodb
    table = f"counters-{uuid.uuid4().hex[:8]}"  # moto's state is per process: embedded servers share it
    client.create_table(TableName=table, KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")

    def add(_: int) -> list[int]:
        got = []
        for _ in range(each):
            item = client.update_item(TableName=table, Key={"name": {"S": "invoice"}},
                                      UpdateExpression="ADD last_value :one",
                                      ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
            got.append(int(item["Attributes"]["last_value"]["N"]))
        return got

    with ThreadPoolExecutor(workers) as pool:
        return sorted(n for numbers in pool.map(add, range(workers)) for n in numbers)


@pytest.mark.parametrize("provider", ["binary", "embedded"])
def test_dynamodb_add_is_atomic_under_concurrent_requests(provider: str) -> None:
    """On AWS a single-item UpdateItem is atomic, so an ADD counter never hands out a number twice;
    moto takes no locks, so lambdasim serves its requests one at a time."""
    sim = _start("aws", provider)
    try:
        from botocore.config import Config

        dynamodb = sim.services["aws"].client("dynamodb", config=Config(max_pool_connections=16))
        # In this process (embedded) threads switch as often as they can, so that an operation moto does not
        # lock is interrupted halfway: without lambdasim's serialization that gives duplicates every run.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6 if provider == "embedded" else interval)
        try:
            numbers = _count_concurrently(dynamodb)
        finally:
            sys.setswitchinterval(interval)
        assert numbers == list(range(1, 81))
    finally:
        sim.close()
