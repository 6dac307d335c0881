"""A network namespace per instance (``own_network``: what an instance serving Lambda's Runtime API at
127.0.0.1:9001 gets), and resets that end every process of the instance but its keeper."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import lambdasim
from lambdasim import SandboxError, SandboxUnavailable, Simulator
from lambdasim._sandbox import InstanceSpec
from lambdasim._sandbox.namespace import NamespaceSandbox
from tests.conftest import REQUIRE_SANDBOX, Code, PingServer, simulator_or_skip

pytestmark = pytest.mark.sandbox

PROBE = """
import errno, os, socket

HELD = []

def connect(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        if port != 9001:
            s.sendall(b"PING")
            return s.recv(100).decode()
        return "connected"
    except OSError as e:
        return e.errno
    finally:
        s.close()

def handler(event, context):
    out = {"netns": os.readlink("/proc/self/ns/net"), "listened": [], "bind_errors": {}}
    out["before"] = {str(p): connect(p) for p in event.get("connect", [])}
    for port in event.get("listen", []):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            HELD.append(s)
            out["listened"].append(port)
        except OSError as e:
            out["bind_errors"][str(port)] = e.errno
            s.close()
    out["after"] = {str(p): connect(p) for p in event.get("then_connect", [])}
    return out
"""


class OwnNetworkSimulator(Simulator):
    """Every instance gets a network namespace of its own, as an instance of a Runtime API function does."""

    def _spec(self, *args: Any) -> InstanceSpec:
        spec = super()._spec(*args)
        spec["own_network"] = True
        return spec


@pytest.fixture
def own_sim() -> Iterator[Callable[..., Simulator]]:
    made: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        sim = simulator_or_skip(OwnNetworkSimulator, sandbox="namespace", **kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


@pytest.fixture
def pong() -> Iterator[PingServer]:
    """A listener of the test process that answers PING with PONG (as a service endpoint would)."""
    server = PingServer()
    yield server
    server.close()


def _reserved_port() -> socket.socket:
    """A port of the host's loopback bound and not listened on: a connection there is refused, whatever
    else runs on this machine, unless something in the host's namespace answers for an instance."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


# -- isolation ------------------------------------------------------------------------------------------


def test_a_listener_at_9001_is_reachable_only_from_its_own_instance(own_sim: Callable[..., Simulator],
                                                                     code: Code) -> None:
    sim = own_sim()
    app = code(PROBE)
    a = sim.deploy("app.handler", code_dir=app, name="a")
    b = sim.deploy("app.handler", code_dir=app, name="b")
    with _reserved_port() as reserved:
        port = reserved.getsockname()[1]
        got_a = a.invoke({"listen": [9001, port], "then_connect": [9001]}).payload
        assert got_a["listened"] == [9001, port], got_a
        assert got_a["after"] == {"9001": "connected"}, "its own listener is reachable"

        got_b = b.invoke({"connect": [9001, port], "listen": [9001]}).payload
        assert got_b["before"] == {"9001": errno.ECONNREFUSED, str(port): errno.ECONNREFUSED}, "A's is not"
        assert got_b["listened"] == [9001], f"both instances hold 127.0.0.1:9001 at once: {got_b['bind_errors']}"

        with socket.socket() as s:
            s.settimeout(5)
            assert s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED, "nor from the host"

    host = os.readlink("/proc/self/ns/net")
    assert len({got_a["netns"], got_b["netns"], host}) == 3
    again = a.invoke({"then_connect": [9001]}).payload
    assert again["netns"] == got_a["netns"] and again["after"] == {"9001": "connected"}, "a warm instance keeps it"


def test_instances_of_one_function_each_have_their_own(own_sim: Callable[..., Simulator], code: Code) -> None:
    fn = own_sim().deploy("app.handler", code_dir=code(PROBE + """
import time
_handler = handler
def handler(event, context):
    out = _handler(event, context)
    time.sleep(0.3)  # so that the three run at once, on three instances
    return out
"""))
    invs = fn.invoke_many([{"listen": [9001]}] * 3, concurrency=3)
    assert len({inv.instance_id for inv in invs}) == 3
    assert len({inv.payload["netns"] for inv in invs}) == 3
    assert [inv.payload["listened"] for inv in invs] == [[9001]] * 3


def test_the_simulators_services_are_reachable_from_an_own_network(own_sim: Callable[..., Simulator],
                                                                   code: Code, pong: PingServer) -> None:
    sim = own_sim()
    sim._forwarded = lambda: [pong.address]  # type: ignore[method-assign]  # as a service endpoint is
    app = code(PROBE)
    a = sim.deploy("app.handler", code_dir=app, name="a")
    b = sim.deploy("app.handler", code_dir=app, name="b")
    port = pong.address[1]
    seen = set()
    for fn in (a, b):
        got = fn.invoke({"connect": [port]}).payload
        assert got["before"] == {str(port): "PONG"}, got
        seen.add(got["netns"])
    assert len(seen) == 2, "from two namespaces of their own"
    assert a.invoke({"connect": [port]}).payload["before"] == {str(port): "PONG"}, "and again, warm"
    assert a.invoke({}).refused_addresses == ()


def test_own_network_is_refused_where_the_network_is_not_isolated(code: Code) -> None:
    try:
        sandbox = NamespaceSandbox(network="host")
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")
    try:
        spec = InstanceSpec(handler="app.handler", code_dir=str(code(PROBE)), layers=[], tmp_mb=16, memory_mb=128,
                            env={}, cwd="/var/task", sys_path_prefix=[], coverage=None, own_network=True)
        with pytest.raises(SandboxError, match=r"network namespace of its own .* only under network='isolated' "
                                               r"\(this simulator's instances are on network='host'\)"):
            sandbox.spawn(spec)
        del spec["own_network"]
        instance, rt = sandbox.spawn(spec)  # the spare was kept for the next request
        instance.destroy()
        rt.close()
    finally:
        sandbox.close()


def _zygote(sim: Simulator) -> int:
    helper = sim._sandbox._helper._proc.pid  # type: ignore[attr-defined]
    (zygote,) = _children()[helper]
    return zygote


def _namespaces_held(pid: int) -> list[str]:
    """The network namespaces process ``pid`` holds descriptors of."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("net:["):
                found.append(link)
    return found


def test_the_next_own_network_is_made_ahead_of_demand(own_sim: Callable[..., Simulator],
                                                      make_sim: Callable[..., Simulator], code: Code) -> None:
    app = code(PROBE)
    lambdasim.shutdown()  # a zygote of its own: one that served an earlier test may hold a namespace ahead
    plain = make_sim()
    plain.deploy("app.handler", code_dir=app).invoke({})
    zygote = _zygote(plain)
    assert _namespaces_held(zygote) == [_netns(zygote)], "a simulator without own networks pays nothing"

    plain.close()
    lambdasim.shutdown()
    sim = own_sim()
    fn = sim.deploy("app.handler", code_dir=app)
    first = fn.invoke({}).payload["netns"]
    zygote = _zygote(sim)
    assert _eventually(lambda: len(_namespaces_held(zygote)) == 2), "the shared one, and the next instance's"
    (ahead,) = set(_namespaces_held(zygote)) - {_netns(zygote)}
    assert ahead != first
    fn.scale_down(keep=0)
    assert fn.invoke({}).payload["netns"] == ahead


# -- nothing is left behind --------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        tree.setdefault(ppid, []).append(int(name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        below = tree.get(todo.pop(), [])
        found.extend(below)
        todo.extend(below)
    return found


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _relay(sim: Simulator) -> int:
    """The zygote's relay: the process of the sandbox's tree left in the host's network namespace."""
    helper = sim._sandbox._helper._proc.pid  # type: ignore[attr-defined]
    host = os.readlink("/proc/self/ns/net")
    (relay,) = [p for p in _descendants(helper) if _netns(p) == host]
    return relay


def _shared_netns(sim: Simulator) -> str | None:
    """The namespace instances share, the zygote's (the helper's only child)."""
    return _netns(_zygote(sim))


def _relay_fds(relay: int) -> int:
    return len(os.listdir(f"/proc/{relay}/fd"))


def _holders(netns: str) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _netns(int(p)) == netns]


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_instances_network_and_its_relayed_listeners_go_with_it(own_sim: Callable[..., Simulator],
                                                                    code: Code, pong: PingServer) -> None:
    sim = own_sim()
    sim._forwarded = lambda: [pong.address]  # type: ignore[method-assign]
    fn = sim.deploy("app.handler", code_dir=code(PROBE))
    relay = _relay(sim)
    before = _relay_fds(relay)
    first = fn.invoke({"connect": [pong.address[1]]}).payload
    assert first["before"] == {str(pong.address[1]): "PONG"}
    assert _holders(first["netns"]), "the instance's processes are in it"
    # Once the relayed connection of the probe has closed on both sides (the relay sees that a moment later).
    assert _eventually(lambda: _relay_fds(relay) == before + 2), "its listener, and the pidfd of its keeper"

    fn.scale_down(keep=0)
    assert _eventually(lambda: _relay_fds(relay) == before), "the relay dropped the instance's listener"
    assert _eventually(lambda: not _holders(first["netns"])), "no process is left in its namespace"

    second = fn.invoke({}).payload  # a new instance, a new namespace
    assert second["netns"] != first["netns"]
    helper = sim._sandbox._helper._proc.pid  # type: ignore[attr-defined]
    tree = [helper, *_descendants(helper)]
    sim.close()
    lambdasim.shutdown()  # the zygote outlives its simulator, for the next one in the process, until then
    assert _eventually(lambda: not any(os.path.exists(f"/proc/{p}") for p in tree)), "the zygote, relay, keepers"
    assert not _holders(second["netns"])


# -- a reset ends every process of the instance but the keeper ------------------------------------------------

RESET = """
import os, time

def processes():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

def handler(event, context):
    if event.get("start"):
        pid = os.fork()
        if pid == 0:  # a background process the handler leaves, in a session of its own
            os.setsid()
            if os.fork():
                os._exit(0)
            while True:
                time.sleep(0.01)
        os.waitpid(pid, 0)
        time.sleep(0.05)
    if event.get("then") == "sleep":
        time.sleep(5)
    if event.get("then") == "exit":
        os._exit(3)
    if event.get("then") == "memory":
        hog = [bytearray(1 << 20) for _ in range(400)]
    return {"processes": processes(), "me": os.getpid(), "netns": os.readlink("/proc/self/ns/net")}
"""


@pytest.mark.parametrize(("how", "own"), [("timeout", False), ("crash", False), ("exit", False),
                                          ("memory", False), ("timeout", True)])
def test_a_reset_kills_what_the_function_started(own_sim: Callable[..., Simulator],
                                                  make_sim: Callable[..., Simulator], code: Code,
                                                  how: str, own: bool) -> None:
    sim = own_sim() if own else make_sim()
    fn = sim.deploy("app.handler", code_dir=code(RESET), timeout_s=1, memory_mb=128)
    started = fn.invoke({"start": True}).payload
    assert len(started["processes"]) == 3, f"the keeper, the runtime and the handler's: {started}"
    if how == "crash":
        fn.instances[0].crash()
    else:
        failed = fn.invoke({"then": {"timeout": "sleep", "exit": "exit", "memory": "memory"}[how]})
        assert not failed.ok
    assert fn.instances[0].resets == 1
    after = fn.invoke({}).payload
    assert after["me"] != started["me"], "a new runtime"
    assert after["processes"] == sorted([1, after["me"]]), "only the keeper and the new runtime are left"
    assert after["netns"] == started["netns"], "the new runtime is where the keeper is"
    assert (after["netns"] != _shared_netns(sim)) is own
