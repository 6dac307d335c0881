"""Lifecycle semantics: Init, warm reuse, scaling, resets, scale-down, reaping, redeploy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from lambdasim import InstanceGone, Simulator
from tests.conftest import Code

BOTH_SANDBOXES = True

COUNTER = """
import os
INITS = 0
INITS += 1
CALLS = 0
def handler(event, context):
    global CALLS
    CALLS += 1
    if event and event.get("sleep"):
        import time
        time.sleep(event["sleep"])
    if event and event.get("write"):
        with open("/tmp/" + event["write"], "w") as f:
            f.write(context.aws_request_id)
    return {"inits": INITS, "calls": CALLS, "tmp": sorted(os.listdir("/tmp")), "pid": os.getpid()}
"""


def test_init_runs_once_per_instance_and_globals_stay(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(COUNTER))
    first, second, third = fn.invoke({}), fn.invoke({}), fn.invoke({})
    assert (first.cold_start, second.cold_start, third.cold_start) == (True, False, False)
    assert [i.payload["calls"] for i in (first, second, third)] == [1, 2, 3]
    assert {i.payload["inits"] for i in (first, second, third)} == {1}
    assert first.init_duration_ms is not None and first.init_duration_ms > 0
    assert second.init_duration_ms is None
    assert first.instance_id == second.instance_id == third.instance_id
    assert len(fn.instances) == 1 and fn.instances[0].invocations == 3


def test_concurrent_invocations_scale_out_one_at_a_time_per_instance(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(COUNTER))
    invs = fn.invoke_many([{"sleep": 0.3, "n": i} for i in range(4)], concurrency=4)
    assert [i.error for i in invs] == [None] * 4
    assert len({i.instance_id for i in invs}) == 4, "four concurrent requests need four instances"
    assert all(i.cold_start for i in invs)
    assert {i.payload["calls"] for i in invs} == {1}, "each instance ran exactly one invocation"
    # Module globals are per instance: each one counts its own calls.
    again = fn.invoke_many([{}] * 4, concurrency=1)
    assert all(not i.cold_start for i in again)
    assert len({i.instance_id for i in again}) == 1, "sequential calls reuse the most recently used instance"
    assert again[-1].payload["calls"] == 5


def test_invoke_many_keeps_input_order(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("def handler(e, c):\n    return e\n"))
    events = [{"i": i} for i in range(12)]
    assert [i.payload for i in fn.invoke_many(events, concurrency=3)] == events


def test_reserved_concurrency_throttles(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(COUNTER), reserved_concurrency=2)
    invs = fn.invoke_many([{"sleep": 0.5}] * 3, concurrency=3)
    throttled = [i for i in invs if i.status_code == 429]
    assert len(throttled) == 1
    assert [i.status_code for i in invs] == [200, 200, 429], "the last of the wave is turned away"
    assert throttled[0].error == {
        "errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded.",
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
    }
    assert throttled[0].instance_id is None and throttled[0].payload is None
    assert len(fn.instances) == 2
    zero = sim.deploy("app.handler", code_dir=code(COUNTER), name="zero", reserved_concurrency=0)
    assert zero.invoke({}).status_code == 429


def test_unhandled_exception_keeps_instance(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os
        N = 0
        def handler(event, context):
            global N
            N += 1
            if event.get("fail"):
                open("/tmp/before-failure", "w").close()
                raise ValueError("boom")
            return {"n": N, "tmp": os.listdir("/tmp")}
    """))
    fn.invoke({})
    failed = fn.invoke({"fail": True})
    assert failed.error is not None and failed.error["errorType"] == "ValueError"
    after = fn.invoke({})
    assert not after.cold_start and after.instance_id == failed.instance_id
    assert after.payload == {"n": 3, "tmp": ["before-failure"]}
    assert fn.instances[0].resets == 0


RESET_HANDLER = """
import os, signal, sys, time
N = 0
INIT_PID = os.getpid()
def handler(event, context):
    global N
    N += 1
    action = event.get("action")
    if action == "write":
        with open("/tmp/kept.txt", "w") as f:
            f.write("still here")
    elif action == "sleep":
        time.sleep(event["seconds"])
    elif action == "exit":
        sys.exit(event.get("code", 1))
    elif action == "os_exit":
        os._exit(event.get("code", 3))
    elif action == "signal":
        os.kill(os.getpid(), getattr(signal, event["name"]))
        time.sleep(5)
    elif action == "abort":
        os.abort()
    elif action == "oom":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    return {"n": N, "tmp": sorted(os.listdir("/tmp"))}
"""


@pytest.mark.parametrize(
    ("event", "error_type", "message"),
    [
        ({"action": "sleep", "seconds": 5}, "Sandbox.Timedout", "Task timed out after 1.00 seconds"),
        ({"action": "exit", "code": 1}, "Runtime.ExitError", "Runtime exited with error: exit status 1"),
        ({"action": "os_exit", "code": 3}, "Runtime.ExitError", "Runtime exited with error: exit status 3"),
        ({"action": "signal", "name": "SIGKILL"}, "Runtime.ExitError", "Runtime exited with error: signal: killed"),
        ({"action": "signal", "name": "SIGSEGV"}, "Runtime.ExitError",
         "Runtime exited with error: signal: segmentation fault"),
        ({"action": "abort"}, "Runtime.ExitError", "Runtime exited with error: signal: aborted"),
        ({"action": "oom"}, "Runtime.OutOfMemory", "Runtime exited with error: signal: killed"),
    ],
    ids=["timeout", "sys.exit", "os._exit", "SIGKILL", "SIGSEGV", "abort", "out-of-memory"],
)
def test_reset_replaces_runtime_and_keeps_tmp(
    sim: Simulator, code: Code, event: dict[str, object], error_type: str, message: str
) -> None:
    timeout = 1 if error_type == "Sandbox.Timedout" else 60
    fn = sim.deploy("app.handler", code_dir=code(RESET_HANDLER), timeout_s=timeout, memory_mb=256)
    first = fn.invoke({"action": "write"})
    assert first.payload == {"n": 1, "tmp": ["kept.txt"]}
    failed = fn.invoke(event)
    assert failed.error is not None
    assert failed.error["errorType"] == error_type
    assert failed.error["errorMessage"] == f"RequestId: {failed.request_id} Error: {message}"
    assert failed.function_error == "Unhandled"
    after = fn.invoke({})
    assert after.instance_id == first.instance_id, "a reset keeps the execution environment"
    assert after.cold_start, "Init runs again after a reset"
    assert after.payload == {"n": 1, "tmp": ["kept.txt"]}, "globals are new, /tmp is kept"
    assert fn.instances[0].resets == 1


def test_timeout_report_and_duration(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(RESET_HANDLER), timeout_s=0.5)
    started = time.monotonic()
    inv = fn.invoke({"action": "sleep", "seconds": 10})
    assert time.monotonic() - started < 5
    assert inv.error == {"errorType": "Sandbox.Timedout",
                         "errorMessage": f"RequestId: {inv.request_id} Error: Task timed out after 0.50 seconds"}
    assert inv.duration_ms == 500.0
    assert "\tStatus: timeout" in inv.logs.splitlines()[-1]


def test_inst_crash_resets_idle_instance(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(RESET_HANDLER))
    fn.invoke({"action": "write"})
    inst = fn.instances[0]
    inst.crash()
    after = fn.invoke({})
    assert after.cold_start and after.instance_id == inst.id
    assert after.payload == {"n": 1, "tmp": ["kept.txt"]}
    assert inst.resets == 1


def test_inst_crash_during_invocation(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(RESET_HANDLER), timeout_s=10)
    fn.invoke({})
    inst = fn.instances[0]
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(fn.invoke({"action": "sleep", "seconds": 5})))
    worker.start()
    deadline = time.monotonic() + 5
    while inst.state != "busy" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    inst.crash()
    worker.join(10)
    (inv,) = result
    assert inv.error is not None and inv.error["errorType"] == "Runtime.ExitError"  # type: ignore[attr-defined]
    assert "signal: killed" in inv.error["errorMessage"]  # type: ignore[attr-defined]
    assert fn.invoke({}).cold_start


@pytest.mark.parametrize("how", ["scale_down", "idle", "destroy", "redeploy"])
def test_losing_the_instance_loses_tmp_and_globals(sim: Simulator, code: Code, how: str) -> None:
    src = code(COUNTER)
    fn = sim.deploy("app.handler", code_dir=src, keepalive_s=600)
    first = fn.invoke({"write": "state.json"})
    assert first.payload["tmp"] == ["state.json"]
    inst = fn.instances[0]
    if how == "scale_down":
        assert fn.scale_down(keep=0) == 1
    elif how == "idle":
        sim.clock.advance(seconds=599)
        assert len(fn.instances) == 1, "not idle for longer than keepalive_s yet"
        sim.clock.advance(seconds=2)
    elif how == "destroy":
        inst.destroy()
    else:
        assert fn.redeploy(code_dir=src) == "2"
    assert fn.instances == []
    assert inst.state == "dead"
    with pytest.raises(InstanceGone):
        inst.tmp.listdir()
    after = fn.invoke({})
    assert after.cold_start and after.instance_id != first.instance_id
    assert after.payload == {"inits": 1, "calls": 1, "tmp": [], "pid": after.payload["pid"]}
    assert after.version == ("2" if how == "redeploy" else "1")


def test_scale_down_keeps_most_recent(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(COUNTER))
    fn.invoke_many([{"sleep": 0.2}] * 3, concurrency=3)
    assert len(fn.instances) == 3
    last = fn.invoke({}).instance_id
    assert fn.scale_down(keep=1) == 2
    assert [i.id for i in fn.instances] == [last]


def test_redeploy_lets_running_invocations_finish_on_old_version(sim: Simulator, code: Code) -> None:
    v1 = code("""
        import time
        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return "v1"
    """)
    v2 = code("def handler(event, context):\n    return 'v2'\n")
    fn = sim.deploy("app.handler", code_dir=v1, timeout_s=10)
    fn.invoke({})
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(fn.invoke({"sleep": 1.0})))
    worker.start()
    time.sleep(0.3)
    old = fn.instances[0]
    assert old.state == "busy"
    assert fn.redeploy(code_dir=v2, environment={"STAGE": "prod"}) == "2"
    during = fn.invoke({})
    assert during.payload == "v2" and during.version == "2" and during.cold_start
    assert old.state == "busy", "the old instance finishes its invocation"
    worker.join(10)
    (inv,) = results
    assert inv.payload == "v1" and inv.version == "1"  # type: ignore[attr-defined]
    assert old.state == "dead", "then it is retired"
    assert {i.version for i in fn.instances} == {"2"}
    assert fn.config.environment == {"STAGE": "prod"}


def test_fresh_routing_uses_a_new_instance_every_time(make_sim: Callable[..., Simulator], code: Code) -> None:
    sim = make_sim(routing="fresh")
    fn = sim.deploy("app.handler", code_dir=code(COUNTER))
    invs = [fn.invoke({"write": f"f{i}"}) for i in range(3)]
    assert all(i.cold_start for i in invs)
    assert len({i.instance_id for i in invs}) == 3
    assert [i.payload["tmp"] for i in invs] == [["f0"], ["f1"], ["f2"]]
    assert fn.instances == [], "the previous instance is destroyed"


def test_random_routing_is_reproducible(make_sim: Callable[..., Simulator], code: Code) -> None:
    src = code(COUNTER)

    def run(seed: int) -> list[tuple[str | None, bool]]:
        sim = make_sim(routing="random", seed=seed)
        fn = sim.deploy("app.handler", code_dir=src)
        out = [(i.instance_id, i.cold_start) for i in (fn.invoke({}) for _ in range(12))]
        sim.close()
        return out

    first = run(7)
    assert first == run(7)
    assert any(not cold for _, cold in first) and sum(cold for _, cold in first) > 1


def test_a_runtime_exit_is_seen_at_once_after_a_scale_out(sim: Simulator, code: Code) -> None:
    """No other process may hold an instance's channel (it would hide the runtime's exit)."""
    fn = sim.deploy("app.handler", code_dir=code(RESET_HANDLER), timeout_s=20)
    fn.invoke_many([{"action": "sleep", "seconds": 0.3}] * 4, concurrency=4)
    started = time.monotonic()
    invs = fn.invoke_many([{"action": "os_exit", "code": 3}] * 4, concurrency=4)
    assert [i.error["errorType"] if i.error else None for i in invs] == ["Runtime.ExitError"] * 4
    assert time.monotonic() - started < 5


def test_destroy_during_an_invocation(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(RESET_HANDLER), timeout_s=10)
    fn.invoke({})
    inst = fn.instances[0]
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(fn.invoke({"action": "sleep", "seconds": 5})))
    worker.start()
    while inst.state != "busy":
        time.sleep(0.01)
    time.sleep(0.2)
    inst.destroy()
    worker.join(10)
    (inv,) = result
    assert inv.error is not None and inv.error["errorType"] == "Runtime.ExitError"  # type: ignore[attr-defined]
    assert inv.error["errorMessage"].endswith("signal: killed")  # type: ignore[attr-defined]
    assert inst.state == "dead" and fn.instances == []


def test_crash_of_an_idle_instance_during_redeploy_retires_it(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(RESET_HANDLER))
    fn.invoke({})
    inst = fn.instances[0]
    crasher = threading.Thread(target=inst.crash)
    crasher.start()
    deadline = time.monotonic() + 5
    while inst.state != "busy" and time.monotonic() < deadline:
        time.sleep(0.001)
    fn.redeploy()
    crasher.join(10)
    assert inst.state == "dead"
    assert fn.instances == [], "the old version's instance is retired"


def test_services_membership_starts_nothing(sim: Simulator) -> None:
    assert "redis" not in sim.services and sim.services.get("redis") is None
    assert "sqs" not in sim.services
    assert list(sim.services) == []


TMP_TREE = """
import os, time
def handler(event, context):
    if event.get("build"):
        os.makedirs("/tmp/a/b", exist_ok=True)
        with open("/tmp/a/b/data.bin", "wb") as f:
            f.write(bytes(range(256)) * 4)
        with open("/tmp/gone.txt", "w") as f:
            f.write("soon removed")
        os.remove("/tmp/gone.txt")
        with open("/tmp/old-name", "w") as f:
            f.write("renamed")
        os.rename("/tmp/old-name", "/tmp/new-name")
        os.symlink("/tmp/a/b/data.bin", "/tmp/link")
        os.link("/tmp/new-name", "/tmp/hard")
        os.chmod("/tmp/new-name", 0o600)
        open("/tmp/unclosed.txt", "w").write("written without close()")
    if event.get("then_hang"):
        with open("/tmp/before-timeout.txt", "w") as f:
            f.write("kept")
        time.sleep(30)
    tree = {}
    for base, dirs, files in os.walk("/tmp"):
        for name in sorted(dirs + files):
            path = os.path.join(base, name)
            st = os.lstat(path)
            if os.path.islink(path):
                tree[path] = ["link", os.readlink(path)]
            elif os.path.isdir(path):
                tree[path] = ["dir"]
            else:
                with open(path, "rb") as f:
                    tree[path] = ["file", len(f.read()), oct(st.st_mode & 0o777), st.st_nlink]
    return tree
"""


def test_tmp_keeps_every_kind_of_change_across_a_reset(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code(TMP_TREE), timeout_s=1)
    built = fn.invoke({"build": True})
    assert built.payload["/tmp/unclosed.txt"][:2] == ["file", 23]
    assert built.payload["/tmp/link"] == ["link", "/tmp/a/b/data.bin"]
    assert "/tmp/gone.txt" not in built.payload and "/tmp/old-name" not in built.payload
    assert built.payload["/tmp/new-name"] == ["file", 7, "0o600", 2]
    hung = fn.invoke({"then_hang": True})
    assert hung.error is not None and hung.error["errorType"] == "Sandbox.Timedout"
    after = fn.invoke({})
    assert after.instance_id == built.instance_id and after.cold_start
    # What the timed-out invocation wrote before it was stopped stays, as on Lambda.
    assert after.payload.pop("/tmp/before-timeout.txt")[:2] == ["file", 4]
    assert after.payload == built.payload
    view = fn.instances[0].tmp
    assert sorted(view.listdir()) == ["a", "before-timeout.txt", "hard", "link", "new-name", "unclosed.txt"]
    assert view.read_bytes("a/b/data.bin") == bytes(range(256)) * 4
    assert view.read_text("unclosed.txt") == "written without close()"


def test_a_descriptor_opened_in_one_invocation_stays_open_for_the_next(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os
        FD = None
        def handler(event, context):
            global FD
            if FD is None:
                FD = os.open("/tmp/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.write(FD, b"x")
            return os.path.getsize("/tmp/log")
    """))
    assert [fn.invoke({}).payload for _ in range(3)] == [1, 2, 3]
