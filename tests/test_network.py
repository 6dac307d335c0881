"""The instances' network: isolated by default (the simulator's services only), the internet through a
user-mode stack, or the host's; refused addresses on the Invocation, in the trace and in the plugin's summary."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lambdasim import ConfigError, SandboxUnavailable, ServiceError, Simulator
from lambdasim._sandbox._network import STACK_ENV, STACKS
from tests.conftest import REQUIRE_SANDBOX, Code, PingServer

pytestmark = pytest.mark.sandbox

# CI installs passt and slirp4netns and sets this, so that network="internet" is tested, not skipped.
REQUIRE_NETSTACK = os.environ.get("LAMBDASIM_REQUIRE_NETSTACK") == "1"
REQUIRE_SERVICES = os.environ.get("LAMBDASIM_REQUIRE_SERVICES") == "1"

PROBE = """
import errno, os, socket, time

def connect(target, talk=True, timeout=2):
    host, port = target
    family = socket.AF_UNIX if port is None else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    began = time.monotonic()
    try:
        s.connect(host if port is None else (host, port))
        if not talk:
            return {"ok": "connected", "s": time.monotonic() - began}
        s.sendall(b"PING\\r\\n")
        return {"ok": s.recv(100).decode(), "s": time.monotonic() - began}
    except TimeoutError:
        return {"errno": "timeout", "s": time.monotonic() - began}
    except OSError as e:
        return {"errno": e.errno, "s": time.monotonic() - began}
    finally:
        s.close()

LISTENER = None

def handler(event, context):
    global LISTENER
    out = {"connect": [connect(t) for t in event.get("connect", [])]}
    if event.get("listen"):
        LISTENER = socket.socket()
        LISTENER.bind(("0.0.0.0", 0))
        LISTENER.listen()
        out["port"] = LISTENER.getsockname()[1]
    if event.get("lookup"):
        try:
            socket.getaddrinfo(event["lookup"], 443)
            out["lookup"] = "resolved"
        except socket.gaierror as e:
            out["lookup"] = e.errno
    if event.get("self"):  # a listener of its own, on loopback: always reachable
        own = socket.socket()
        own.bind(("127.0.0.1", 0))
        own.listen()
        out["self"] = connect(("127.0.0.1", own.getsockname()[1]), talk=False)
        own.close()
    out["netns"] = os.readlink("/proc/self/ns/net") if os.path.exists("/proc/self/ns/net") else None
    for name in ("hosts", "resolv.conf"):
        try:
            with open("/etc/" + name) as f:
                out[name] = f.read()
        except OSError:
            out[name] = None
    return out
"""


@pytest.fixture
def server() -> Iterator[Callable[..., PingServer]]:
    made: list[PingServer] = []

    def make(family: int = socket.AF_INET, address: object = ("127.0.0.1", 0)) -> PingServer:
        made.append(PingServer(family, address))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def net_sim() -> Iterator[Callable[..., Simulator]]:
    made: list[Simulator] = []

    def make(**kwargs: object) -> Simulator:
        kwargs.setdefault("sandbox", "namespace")
        try:
            sim = Simulator(**kwargs)  # type: ignore[arg-type]
        except SandboxUnavailable as e:
            if "network stack" in str(e) or "user-mode network stack" in str(e):
                if REQUIRE_NETSTACK:
                    raise
                pytest.skip(f"no user-mode network stack here: {e}")
            if REQUIRE_SANDBOX:
                raise
            pytest.skip(f"namespace sandbox unavailable here: {e}")
        except ServiceError as e:
            if REQUIRE_SERVICES:
                raise
            pytest.skip(f"a service is not available here: {e}")
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


def _abstract_name() -> bytes:
    return f"\0lambdasim-test-{os.getpid()}-{time.monotonic_ns()}".encode()


def _host_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (eth0's, say), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                return address
    return None


# -- network="isolated", the default ---------------------------------------------------------------


def test_host_listeners_are_unreachable_from_an_isolated_instance(
        net_sim: Callable[..., Simulator], code: Code, server: Callable[..., PingServer]) -> None:
    tcp = server()
    abstract = server(socket.AF_UNIX, _abstract_name())
    sim = net_sim()
    assert sim.network == "isolated"
    fn = sim.deploy("app.handler", code_dir=code(PROBE))
    inv = fn.invoke({"connect": [tcp.target(), abstract.target()], "self": True})
    assert inv.ok, inv.logs
    out = inv.payload
    assert [c.get("errno") for c in out["connect"]] == [errno.ECONNREFUSED, errno.ECONNREFUSED]
    assert out["self"]["ok"] == "connected", "its own loopback listener is reachable"
    assert out["netns"] != os.readlink("/proc/self/ns/net")


def test_every_instance_of_a_simulator_shares_one_network_namespace(
        net_sim: Callable[..., Simulator], code: Code) -> None:
    sim = net_sim()
    fn = sim.deploy("app.handler", code_dir=code(PROBE))
    invs = fn.invoke_many([{}] * 3, concurrency=3)
    assert len({inv.instance_id for inv in invs}) == 3
    assert len({inv.payload["netns"] for inv in invs}) == 1, "made once by the zygote, not per instance"
    assert invs[0].payload["netns"] != os.readlink("/proc/self/ns/net")


def test_a_listener_of_an_isolated_instance_is_unreachable_from_the_host(
        net_sim: Callable[..., Simulator], code: Code) -> None:
    for network, reachable in (("isolated", False), ("host", True)):
        sim = net_sim(network=network, freeze=False)
        fn = sim.deploy("app.handler", code_dir=code(PROBE))
        port = fn.invoke({"listen": True}).payload["port"]
        with socket.socket() as s:
            s.settimeout(5)
            code_ = s.connect_ex(("127.0.0.1", port))
        assert (code_ == 0) is reachable, (network, code_)
        if not reachable:
            assert code_ == errno.ECONNREFUSED
        sim.close()


def test_outbound_traffic_fails_at_once_with_the_kernels_error(net_sim: Callable[..., Simulator], code: Code) -> None:
    sim = net_sim()
    fn = sim.deploy("app.handler", code_dir=code(PROBE))
    began = time.monotonic()
    inv = fn.invoke({"connect": [["192.0.2.1", 443], ["8.8.8.8", 53]], "lookup": "example.com"})
    assert time.monotonic() - began < 1.0
    (a, b) = inv.payload["connect"]
    assert (a["errno"], b["errno"]) == (errno.ENETUNREACH, errno.ENETUNREACH)
    assert a["s"] < 0.1 and b["s"] < 0.1
    assert inv.payload["lookup"] == socket.EAI_AGAIN  # "Temporary failure in name resolution", at once
    # What Lambda's images have: localhost, and no resolver to reach.
    assert "127.0.0.1   localhost" in inv.payload["hosts"] and "::1" in inv.payload["hosts"]
    assert "nameserver 127.0.0.1" in inv.payload["resolv.conf"]


def test_refused_addresses_are_on_the_invocation_and_in_the_trace(
        net_sim: Callable[..., Simulator], code: Code, server: Callable[..., PingServer]) -> None:
    tcp = server()
    sim = net_sim()
    fn = sim.deploy("app.handler", code_dir=code(PROBE))
    inv = fn.invoke({"connect": [["192.0.2.1", 443], ["192.0.2.1", 443], tcp.target()], "lookup": "example.com",
                     "self": True})
    host, port = tcp.address
    assert inv.refused_addresses == ("192.0.2.1:443", f"{host}:{port}", "example.com:443")
    assert inv.refused_counts == {"192.0.2.1:443": 2, f"{host}:{port}": 1, "example.com:443": 1}
    (event,) = [e for e in sim.trace if e.kind == "invoke"]
    assert event.detail["refused"] == inv.refused_counts
    quiet = fn.invoke({"self": True})
    assert quiet.refused_addresses == () and "refused" not in sim.trace[-1].detail


def test_refused_addresses_of_init_belong_to_the_cold_invocation(net_sim: Callable[..., Simulator],
                                                                   code: Code) -> None:
    source = PROBE + "\nconnect(('192.0.2.7', 80))\n"
    fn = net_sim().deploy("app.handler", code_dir=code(source))
    assert fn.invoke({}).refused_addresses == ("192.0.2.7:80",)
    assert fn.invoke({}).refused_addresses == ()


def _redis_sim(net_sim: Callable[..., Simulator], **kwargs: object) -> Simulator:
    return net_sim(services={"redis": "binary" if shutil.which("redis-server") else "auto"}, **kwargs)


def _redis_port(sim: Simulator) -> int:
    url = sim.services["redis"].url  # what instances are given: redis://127.0.0.1:PORT/0
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.mark.parametrize("faults", [True, False], ids=["through-the-fault-proxy", "direct"])
def test_services_are_reachable_at_the_addresses_instances_are_given(
        net_sim: Callable[..., Simulator], code: Code, faults: bool) -> None:
    sim = net_sim(services={"redis": {"provider": "binary" if shutil.which("redis-server") else "auto",
                                      "faults": faults}})
    fn = sim.deploy("app.handler", code_dir=code(PROBE + """
def redis(event, context):
    import os
    host, port = os.environ["REDIS_URL"].split("//")[1].split("/")[0].split(":")
    return connect((host, int(port)))
"""))
    handler = sim.deploy("app.redis", code_dir=fn.config.code_dir, name="redis-user")
    inv = handler.invoke({})
    assert inv.payload["ok"].startswith("+PONG"), inv.payload
    assert inv.refused_addresses == ()
    if faults:  # the fault proxy's cut reaches the instance through the relay as a reset
        sim.services["redis"].cut()
        assert handler.invoke({}).payload.get("errno") in (errno.ECONNRESET, errno.EPIPE, None)
        sim.services["redis"].heal()
        assert handler.invoke({}).payload["ok"].startswith("+PONG")


def test_a_service_started_after_the_simulator_is_reachable_by_later_instances(
        net_sim: Callable[..., Simulator], code: Code) -> None:
    sim = net_sim()
    fn = sim.deploy("app.handler", code_dir=code(PROBE))
    assert fn.invoke({}).ok  # an instance from before the service
    try:
        sim.services["redis"]
    except ServiceError as e:
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"redis is not available here: {e}")
    port = _redis_port(sim)
    fn.scale_down(keep=0)
    out = fn.invoke({"connect": [["127.0.0.1", port]]}).payload["connect"][0]
    assert out["ok"].startswith("+PONG"), out


def test_a_large_exchange_with_a_half_close_crosses_the_relay(net_sim: Callable[..., Simulator], code: Code) -> None:
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen()
    received: list[int] = []

    def serve() -> None:
        conn, _ = echo.accept()
        total = 0
        while chunk := conn.recv(1 << 16):
            total += len(chunk)
        received.append(total)
        conn.sendall(b"x" * 3_000_000)  # after the client's half-close: the other way still works
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    sim = net_sim()
    # As a service endpoint would be: the relay forwards what the spec names.
    sim._forwarded = lambda: [echo.getsockname()]  # type: ignore[method-assign]
    fn = sim.deploy("app.handler", code_dir=code("""
import socket
def handler(event, context):
    s = socket.create_connection(tuple(event["to"]), timeout=10)
    s.sendall(b"y" * 5_000_000)
    s.shutdown(socket.SHUT_WR)
    got = 0
    while chunk := s.recv(1 << 16):
        got += len(chunk)
    return got
"""), timeout_s=20)
    inv = fn.invoke({"to": list(echo.getsockname())})
    thread.join(10)
    echo.close()
    assert inv.payload == 3_000_000, inv.error
    assert received == [5_000_000]


# -- network="host" ---------------------------------------------------------------------------------


def test_network_host_is_the_hosts_network(net_sim: Callable[..., Simulator], code: Code,
                                           server: Callable[..., PingServer]) -> None:
    tcp = server()
    abstract = server(socket.AF_UNIX, _abstract_name())
    sim = net_sim(network="host")
    fn = sim.deploy("app.handler", code_dir=code(PROBE))
    inv = fn.invoke({"connect": [tcp.target(), abstract.target()]})
    assert [c.get("ok") for c in inv.payload["connect"]] == ["PONG", "PONG"]
    assert inv.payload["netns"] == os.readlink("/proc/self/ns/net")
    assert inv.refused_addresses == ()
    with open("/etc/resolv.conf") as f:
        assert inv.payload["resolv.conf"] == f.read(), "the host's resolver"
    assert inv.payload["hosts"].startswith("127.0.0.1   localhost localhost.localdomain"), "Lambda's, always"


# -- network="internet" -----------------------------------------------------------------------------


@pytest.fixture(params=list(STACKS))
def stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name = str(request.param)
    if shutil.which(name) is None:
        if REQUIRE_NETSTACK:
            pytest.fail(f"{name} is not installed (apt-get install {STACKS[name]})")
        pytest.skip(f"{name} is not installed: apt-get install {STACKS[name]}")
    monkeypatch.setenv(STACK_ENV, name)
    return name


def test_internet_reaches_beyond_the_host_but_not_its_loopback(
        net_sim: Callable[..., Simulator], code: Code, server: Callable[..., PingServer], stack: str) -> None:
    address = _host_address()
    if address is None:
        pytest.skip("this machine has no IPv4 address besides loopback to stand in for the internet")
    outside = server(address=(address, 0))  # never the real internet: an address of this machine
    loopback = server()
    for network in ("isolated", "internet"):
        sim = net_sim(network=network, freeze=False)
        fn = sim.deploy("app.handler", code_dir=code(PROBE), timeout_s=15)
        # The stack's gateway (10.0.2.2) must not lead to the host's loopback either.
        inv = fn.invoke({"connect": [outside.target(), loopback.target(), ["10.0.2.2", loopback.address[1]]],
                         "listen": True})
        far, near, gateway = inv.payload["connect"]
        if network == "isolated":
            assert far.get("errno") == errno.ENETUNREACH
        else:
            assert far.get("ok") == "PONG", far
            assert "nameserver 10.0.2.3" in inv.payload["resolv.conf"]
            assert inv.refused_addresses == ()
        assert near.get("errno") == errno.ECONNREFUSED
        assert "ok" not in gateway, "the stack's gateway does not lead to the host's loopback"
        with socket.socket() as s:  # no inbound connections either way
            s.settimeout(2)
            assert s.connect_ex(("127.0.0.1", inv.payload["port"])) == errno.ECONNREFUSED
        sim.close()


def test_internet_without_a_network_stack_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(STACK_ENV, raising=False)
    with pytest.raises(SandboxUnavailable, match=r"apt-get install passt or slirp4netns"):
        Simulator(sandbox="namespace", network="internet")


def _descendants(pid: int) -> set[int]:
    from tests.test_leaks import _descendants as descendants

    return descendants(pid)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def test_the_network_stack_and_relay_end_with_the_simulator_even_after_kill_9(
        tmp_path: Path, code: Code, stack: str) -> None:
    from tests.test_leaks import _wait_gone

    src = code(PROBE)
    script = tmp_path / "victim.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from lambdasim import Simulator
        sim = Simulator(sandbox="namespace", network="internet")
        fn = sim.deploy("app.handler", code_dir={str(src)!r})
        assert fn.invoke({{}}).ok
        print("ready", flush=True)
        if sys.argv[1] == "close":
            pids = sys.stdin.readline()
            sim.close()
            import lambdasim
            lambdasim.shutdown()  # the helper and its network stack are kept for the next Simulator till then
            print("closed", flush=True)
        time.sleep(600)
    """))
    for how in ("close", "kill"):
        victim = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE,
                                  stdin=subprocess.PIPE, text=True)
        try:
            assert victim.stdout is not None and victim.stdin is not None
            line = victim.stdout.readline().strip()
            if line != "ready":
                pytest.skip("no network stack could start here") if not REQUIRE_NETSTACK else pytest.fail(line)
            pids = _descendants(victim.pid)
            names = {_comm(p) for p in pids}
            assert any(n.startswith(("pasta", "passt", "slirp4netns")) for n in names), names
            if how == "close":
                victim.stdin.write("go\n")
                victim.stdin.flush()
                assert victim.stdout.readline().strip() == "closed"
            else:
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
            assert _wait_gone(pids) == set(), f"after {how}: {[_comm(p) for p in pids]}"
        finally:
            if victim.poll() is None:
                victim.kill()
                victim.wait()


# -- the fakefs sandbox: no network namespace, Python's connections refused ----------------------------


def test_fakefs_refuses_what_an_isolated_namespace_refuses(
        code: Code, server: Callable[..., PingServer]) -> None:
    try:
        sim = Simulator(sandbox="fakefs")
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"fakefs sandbox unavailable here: {e}")
    tcp = server()
    with sim:
        fn = sim.deploy("app.handler", code_dir=code(PROBE))
        inv = fn.invoke({"connect": [["192.0.2.1", 443], tcp.target()], "lookup": "example.com", "self": True})
        assert [c.get("errno") for c in inv.payload["connect"]] == [errno.ENETUNREACH, errno.ECONNREFUSED]
        assert inv.payload["lookup"] == socket.EAI_AGAIN
        assert "ok" in inv.payload["self"], "its own listener is reachable"
        assert inv.payload["hosts"].startswith("127.0.0.1   localhost localhost.localdomain"), "Lambda's"
        assert inv.refused_addresses == ("192.0.2.1:443", f"{tcp.address[0]}:{tcp.address[1]}", "example.com:443")
    with Simulator(sandbox="fakefs", network="host") as sim:
        fn = sim.deploy("app.handler", code_dir=code(PROBE))
        assert fn.invoke({"connect": [tcp.target()]}).payload["connect"][0].get("ok") == "PONG"


# -- the option, everywhere ------------------------------------------------------------------------------


def test_a_network_lambdasim_does_not_know_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"network='vpc' is not a network lambdasim knows; use 'isolated'.*"
                                          r"'internet'.*'host'"):
        Simulator(network="vpc")


def test_the_network_names_agree_everywhere() -> None:
    from lambdasim._sandbox import NETWORKS, network_names
    from pytest_lambdasim.options import NETWORKS as PLUGIN_NETWORKS

    # The plugin may import nothing of lambdasim at load time, so it spells them; they must agree.
    assert NETWORKS == PLUGIN_NETWORKS == ("isolated", "internet", "host")
    assert network_names() == "isolated, internet or host"


def test_the_cli_takes_network(capsys: pytest.CaptureFixture[str], code: Code) -> None:
    from lambdasim.cli import main

    for command in ("invoke", "run", "chaos", "detect"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--network {isolated,internet,host}" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as exit_info:
        main(["invoke", "--network", "vpc"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'vpc'" in capsys.readouterr().err
    src = code("import socket\ndef handler(e, c):\n    return socket.socket().connect_ex(('192.0.2.1', 80))\n")
    for network, expected in (("isolated", str(errno.ENETUNREACH)),):
        assert main(["invoke", "app.handler", "--code-dir", str(src), "--sandbox", "namespace", "--network", network,
                     "-q"]) == 0
        assert capsys.readouterr().out.strip() == expected


PLUGIN_TEST = """
import pytest

@pytest.mark.lambda_sim(network="isolated")
def test_isolated(lambda_sim, lambda_function):
    fn = lambda_function("app.handler", code_dir="src")
    assert lambda_sim.network == "isolated"
    fn.invoke({"to": ["192.0.2.1", 443]})
    fn.invoke({"to": ["192.0.2.1", 443]})

@pytest.mark.lambda_sim(network="host")
def test_host(lambda_sim):
    assert lambda_sim.network == "host"

def test_default(lambda_sim):
    assert lambda_sim.network == EXPECTED
"""


def test_the_plugin_takes_network_and_names_refused_addresses(pytester: pytest.Pytester) -> None:
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "app.py").write_text(
        "import socket\ndef handler(event, context):\n    return socket.socket().connect_ex(tuple(event['to']))\n")
    pytester.makepyfile(test_x=PLUGIN_TEST.replace("EXPECTED", "'isolated'"))
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_sandbox = namespace\n")
    result = pytester.runpytest("--lambda-sim")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(['lambdasim: network="isolated" refused 192.0.2.1:443 (2x) in '
                                 'test_x.py::test_isolated *pass network="internet"*--lambda-sim-network=internet*'])
    assert "in test_x.py::test_host" not in result.stdout.str()
    # The option and the ini key set the default; the marker still wins.
    pytester.makepyfile(test_x=PLUGIN_TEST.replace("EXPECTED", "'host'"))
    pytester.runpytest("--lambda-sim", "--lambda-sim-network=host").assert_outcomes(passed=3)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_sandbox = namespace\n"
                     "lambda_sim_network = host\n")
    pytester.runpytest("--lambda-sim").assert_outcomes(passed=3)
    result = pytester.runpytest("--lambda-sim", "--lambda-sim-network=vpc")
    result.stderr.fnmatch_lines(["*--lambda-sim-network*invalid choice*'vpc'*"])
