"""SnapStart (issue 14, point 1): Init once per version, environments restored from its snapshot."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

import lambdasim
from lambdasim import Function, Simulator, TmpView
from lambdasim import _lambda_errors as lambda_errors
from lambdasim._errors import SettingError
from lambdasim._snapstart import SnapshotFailed
from tests.conftest import Code, namespace_only
from tests.test_leaks import _alive, _descendants, _instances, _leftovers, _mounts, _tmp_entries, _wait_gone

pytestmark = pytest.mark.sandbox

BOTH_SANDBOXES = True

APP = """
import os, random, uuid
from snapshot_restore_py import register_after_restore, register_before_snapshot

ORDER = []
ID = str(uuid.uuid4())
SEED = random.random()
COUNT = 0
print("init ran")
with open("/tmp/init.txt", "w") as f:
    f.write(ID)

@register_before_snapshot
def first():
    ORDER.append("before-1")

def second(tag, *, suffix):
    ORDER.append(tag + suffix)

register_before_snapshot(second, "before-2", suffix="!")

@register_after_restore
def restored():
    ORDER.append("after-1")
    print("after restore")

register_after_restore(second, "after-2", suffix="?")

def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("write"):
        with open("/tmp/" + event["write"], "w") as f:
            f.write("mine")
    if event.get("exit"):
        os._exit(3)
    return {"id": ID, "seed": SEED, "next": random.random(), "order": ORDER, "count": COUNT,
            "tmp": sorted(os.listdir("/tmp")), "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
            "stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")}
"""


def _deploy(sim: Simulator, code: Code, source: str = APP, **kwargs: Any) -> Function:
    return sim.deploy("app.handler", code(source), snap_start=True, runtime="python3.12", **kwargs)


def test_init_runs_once_and_every_environment_is_restored_from_it(sim: Simulator, code: Code) -> None:
    fn = _deploy(sim, code)
    snapshots = [e for e in sim.trace if e.kind == "snapshot"]
    assert len(snapshots) == 1 and snapshots[0].instance is None and snapshots[0].version == "1"
    assert snapshots[0].detail["init_ms"] > 0 and snapshots[0].detail["tmp_bytes"] > 0
    assert fn.instances == [], "the snapshot is not an environment that takes invocations"
    first, second, third = fn.invoke_many([{}, {}, {}], concurrency=3)
    payloads = [first.payload, second.payload, third.payload]
    assert len({inv.instance_id for inv in (first, second, third)}) == 3
    # The same memory: ids and seeds made at Init, and random's state (a fork reseeds it; a restore does not).
    assert len({(p["id"], p["seed"], p["next"]) for p in payloads}) == 1
    # Before-snapshot hooks once, last registered first; after-restore hooks in each environment, in order.
    assert all(p["order"] == ["before-2!", "before-1", "after-1", "after-2?"] for p in payloads)
    assert all(p["init_type"] == "snap-start" and p["stream"] is None for p in payloads)
    assert all("init ran" not in inv.logs for inv in (first, second, third)), "Init ran at publishing only"
    assert [e.kind for e in sim.trace].count("snapshot") == 1


def test_each_environment_has_its_own_copy_of_the_tmp_init_left(sim: Simulator, code: Code) -> None:
    fn = _deploy(sim, code)
    a, b = fn.invoke_many([{"write": "a"}, {"write": "b"}], concurrency=2)
    assert a.payload["tmp"] == ["a", "init.txt"] and b.payload["tmp"] == ["b", "init.txt"]
    views: dict[str | None, TmpView] = {inst.id: inst.tmp for inst in fn.instances}
    assert views[a.instance_id].read_text("init.txt") == a.payload["id"]
    assert not views[a.instance_id].exists("b") and not views[b.instance_id].exists("a")
    again = fn.invoke({})
    assert again.payload["tmp"] in (["a", "init.txt"], ["b", "init.txt"]), "writes after the restore stay"


def test_first_invocation_of_a_restored_environment_reports_restore_duration(sim: Simulator, code: Code) -> None:
    fn = _deploy(sim, code)
    cold = fn.invoke({})
    assert cold.cold_start and cold.init_duration_ms is None
    assert cold.restore_duration_ms is not None and cold.restore_duration_ms > 0
    report = cold.logs.splitlines()[-1]
    assert "\tRestore Duration: " in report and "\tBilled Restore Duration: " in report
    assert "Init Duration" not in report
    assert cold.logs.startswith("RESTORE_START Runtime Version: ")
    assert "after restore\nRESTORE_REPORT Restore Duration: " in cold.logs
    warm = fn.invoke({})
    assert not warm.cold_start and warm.restore_duration_ms is None and "Restore" not in warm.logs
    restored = [e for e in sim.trace if e.kind == "restored"]
    assert [(e.instance, e.request_id) for e in restored] == [(cold.instance_id, cold.request_id)]
    invokes = [e.detail for e in sim.trace if e.kind == "invoke"]
    assert invokes[0]["restore_ms"] == restored[0].detail["restore_ms"] > 0 and "restore_ms" not in invokes[1]


def _platform(logs: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.splitlines() if line.startswith('{"time"')]


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_restore_lines_are_json_records_in_the_json_format(sim: Simulator, code: Code, level: str) -> None:
    """LogFormat JSON: RESTORE_START and RESTORE_REPORT are platform.restoreStart and platform.restoreReport
    (platform.restoreRuntimeDone between them at DEBUG), as the Telemetry API's schema gives them."""
    fn = _deploy(sim, code, log_format="JSON", system_log_level=level)
    cold = fn.invoke({})
    assert cold.ok and cold.restore_duration_ms is not None, cold.logs
    assert "RESTORE_" not in cold.logs and "REPORT RequestId" not in cold.logs
    events = _platform(cold.logs)
    kinds = [e["type"] for e in events]
    restore = ["platform.restoreStart", "platform.restoreRuntimeDone", "platform.restoreReport"] if level == "DEBUG" \
        else ["platform.restoreStart", "platform.restoreReport"]
    assert kinds[:len(restore)] == restore and "platform.initStart" not in kinds, kinds
    start = events[0]["record"]
    assert start["functionName"] == "app" and start["functionVersion"] == "$LATEST"
    assert start["runtimeVersion"].startswith("python:") and start["runtimeVersionArn"].startswith("arn:aws:lambda:")
    assert "after restore" in cold.logs.split(events[1]["type"])[0], "the hooks' output comes before the report"
    (report,) = [e["record"] for e in events if e["type"] == "platform.restoreReport"]
    assert report == {"status": "success", "metrics": {"durationMs": round(cold.restore_duration_ms, 3)}}
    (invoked,) = [e["record"] for e in events if e["type"] == "platform.report"]
    assert invoked["metrics"]["restoreDurationMs"] == round(cold.restore_duration_ms, 3)
    assert not [e for e in _platform(fn.invoke({}).logs) if e["type"].startswith("platform.restore")]


def test_restore_lines_are_filtered_by_the_system_log_level(sim: Simulator, code: Code) -> None:
    cold = _deploy(sim, code, log_format="JSON", system_log_level="WARN").invoke({})
    assert cold.ok and _platform(cold.logs) == [] and "RESTORE_" not in cold.logs


def test_restore_timeout_in_the_json_format(sim: Simulator, code: Code, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lambda_errors, "RESTORE_TIMEOUT_S", 0.5)
    late = _deploy(sim, code, SLOW_AFTER_RESTORE, log_format="JSON").invoke({})
    assert late.status_code == 408
    kinds = [e["type"] for e in _platform(late.logs)]
    assert kinds == ["platform.restoreStart", "platform.start", "platform.report"], late.logs
    report = _platform(late.logs)[-1]["record"]
    assert (report["status"], report["errorType"]) == ("error", "SnapStartTimeoutException")


def test_a_failed_snapshot_init_logs_json_records_in_the_json_format(sim: Simulator, code: Code) -> None:
    with pytest.raises(SnapshotFailed) as failed:
        _deploy(sim, code, FAILING_BEFORE_SNAPSHOT, log_format="JSON")
    logs = failed.value.logs
    assert "INIT_START" not in logs and "INIT_REPORT" not in logs
    events = _platform(logs)
    assert [e["type"] for e in events] == ["platform.initStart", "platform.initReport"], logs
    assert events[0]["record"]["initializationType"] == "snap-start"
    report = events[1]["record"]
    assert (report["initializationType"], report["phase"], report["status"], report["errorType"]) == \
        ("snap-start", "init", "error", "Runtime.BeforeSnapshotError")
    assert report["metrics"]["durationMs"] > 0


def test_report_line_of_a_restore() -> None:
    assert lambda_errors.report_line("r", 1.5, 128, 40, None, "", restore_ms=402.544, billed_restore_ms=135.2) == (
        "REPORT RequestId: r\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\tRestore Duration: 402.54 ms\tBilled Restore Duration: 136 ms\t\n")


FAILING_AFTER_RESTORE = """
import os
from snapshot_restore_py import register_after_restore

@register_after_restore
def reconnect():
    if not os.path.exists("/tmp/failed-once"):
        open("/tmp/failed-once", "w").close()
        raise ConnectionError("database unreachable")

def handler(event, context):
    return "ok"
"""


def test_an_after_restore_hook_that_raises_fails_the_invocation(sim: Simulator, code: Code) -> None:
    fn = _deploy(sim, code, FAILING_AFTER_RESTORE)
    failed = fn.invoke({})
    assert failed.error is not None and failed.payload is None and failed.function_error == "Unhandled"
    assert failed.error["errorType"] == "Runtime.AfterRestoreError"
    assert failed.error["errorMessage"] == "database unreachable"
    assert any("raise ConnectionError" in frame for frame in failed.error["stackTrace"])
    assert not any("lambdasim" in frame for frame in failed.error["stackTrace"]), "the function's frames only"
    assert "[ERROR] ConnectionError: database unreachable" in failed.logs  # awslambdaric's record
    assert failed.logs.splitlines()[-1].endswith("Status: error\tError Type: Runtime.AfterRestoreError")
    assert failed.restore_duration_ms is not None
    # The environment is restored again from the snapshot; its /tmp stays (the hook's mark is there).
    ok = fn.invoke({})
    assert ok.payload == "ok" and ok.cold_start and ok.restore_duration_ms is not None
    assert ok.instance_id == failed.instance_id and fn.instances[0].resets == 1


SLOW_AFTER_RESTORE = """
import os, time
from snapshot_restore_py import register_after_restore

@register_after_restore
def slow():
    if not os.path.exists("/tmp/slow-once"):
        open("/tmp/slow-once", "w").close()
        print("waiting for a connection")
        time.sleep(3)

def handler(event, context):
    return "ok"
"""


def test_an_after_restore_hook_over_the_limit_is_a_snapstart_timeout(sim: Simulator, code: Code,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lambda_errors, "RESTORE_TIMEOUT_S", 0.5)  # Lambda's is 10 s
    fn = _deploy(sim, code, SLOW_AFTER_RESTORE)
    started = time.monotonic()
    late = fn.invoke({})
    assert time.monotonic() - started < 2.5, "the restore is stopped at its limit"
    assert late.status_code == 408 and late.function_error is None
    assert late.error == {"errorType": "SnapStartTimeoutException",
                          "errorMessage": "Lambda couldn't restore the snapshot within the timeout limit."}
    assert late.logs.startswith("RESTORE_START ") and "Error Type: SnapStartTimeoutException" in late.logs
    ok = fn.invoke({})
    assert ok.payload == "ok" and ok.restore_duration_ms is not None and ok.instance_id == late.instance_id


FAILING_BEFORE_SNAPSHOT = """
from snapshot_restore_py import register_before_snapshot

@register_before_snapshot
def flush():
    raise RuntimeError("cannot flush the cache")

def handler(event, context):
    return "never"
"""


def test_a_before_snapshot_hook_that_raises_fails_the_deploy(sim: Simulator, code: Code) -> None:
    with pytest.raises(SnapshotFailed, match=r"Runtime\.BeforeSnapshotError: cannot flush the cache") as failed:
        _deploy(sim, code, FAILING_BEFORE_SNAPSHOT)
    assert failed.value.error["errorType"] == "Runtime.BeforeSnapshotError"
    assert failed.value.error["errorMessage"] == "cannot flush the cache"
    assert "[ERROR] RuntimeError: cannot flush the cache" in failed.value.logs
    assert "INIT_REPORT Init Duration: " in failed.value.logs
    assert "app" not in sim.functions, "the version failed: there is no function to invoke"
    assert [e.detail.get("error") for e in sim.trace if e.kind == "snapshot"] == ["Runtime.BeforeSnapshotError"]


def test_a_failed_redeploy_leaves_the_function_on_its_version(sim: Simulator, code: Code) -> None:
    fn = _deploy(sim, code)
    before = fn.invoke({}).payload
    with pytest.raises(SnapshotFailed, match="stays on version 1") as failed:
        fn.redeploy(code("import json\njson.loads('{')\ndef handler(e, c):\n    return 1\n"))
    assert failed.value.error["errorType"] == "JSONDecodeError"  # an Init error of the import, as Lambda's
    assert fn.version == "1"
    assert fn.invoke({}).payload["id"] == before["id"], "still the version 1 environment"
    assert fn.redeploy(code(APP)) == "3", "the failed version keeps its number"


def test_an_init_error_fails_the_deploy(sim: Simulator, code: Code) -> None:
    with pytest.raises(SnapshotFailed) as failed:
        _deploy(sim, code, "raise ValueError('bad config')\n")
    assert failed.value.error["errorType"] == "ValueError"
    assert "Function 'app': version 1 could not be published with SnapStart" in str(failed.value)


def test_a_reset_restores_the_environment_again_and_keeps_its_tmp(sim: Simulator, code: Code) -> None:
    fn = _deploy(sim, code)
    assert fn.invoke({}).payload["count"] == 1
    assert fn.invoke({"write": "kept"}).payload["count"] == 2
    crashed = fn.invoke({"exit": True})
    assert crashed.error is not None and crashed.error["errorType"] == "Runtime.ExitError"
    again = fn.invoke({})
    assert again.cold_start and again.restore_duration_ms is not None and again.init_duration_ms is None
    assert again.payload["count"] == 1, "the snapshot's memory, not the crashed runtime's"
    assert again.payload["order"][-2:] == ["after-1", "after-2?"] and len(again.payload["order"]) == 4
    assert "kept" in again.payload["tmp"], "/tmp outlives a reset"
    fn.instances[0].crash()
    assert fn.invoke({}).restore_duration_ms is not None


RESET_APP = APP.replace('    if event.get("exit"):', """    if event.get("sleep"):
        import time
        time.sleep(event["sleep"])
    if event.get("allocate_mb"):
        hog = bytearray(event["allocate_mb"] << 20)
        hog[::4096] = b"x" * len(hog[::4096])
    if event.get("exit"):""")


def test_a_timeout_or_running_out_of_memory_restores_the_environment_again(sim: Simulator, code: Code,
                                                                            sandbox_kind: str) -> None:
    fn = _deploy(sim, code, RESET_APP, timeout_s=1.0)
    assert fn.invoke({"write": "kept"}).payload["count"] == 1
    slow = fn.invoke({"sleep": 5})
    assert slow.error is not None and slow.error["errorType"] == "Sandbox.Timedout"
    again = fn.invoke({})
    assert again.cold_start and again.restore_duration_ms is not None and again.init_duration_ms is None
    assert again.payload["count"] == 1 and "kept" in again.payload["tmp"], "the snapshot's memory; /tmp stays"
    if sandbox_kind != "namespace":
        return  # fakefs limits memory per process with RLIMIT_DATA: a MemoryError, not the kernel's kill
    big = fn.invoke({"allocate_mb": 400})  # of 128 MB
    assert big.error is not None and big.error["errorType"] == "Runtime.OutOfMemory"
    after = fn.invoke({})
    assert after.cold_start and after.restore_duration_ms is not None and after.payload["count"] == 1
    assert [e.detail["reason"] for e in sim.trace if e.kind == "reset"] == ["timeout", "out of memory"]


def _holder_pids(sim: Simulator, name: str, version: str) -> set[int]:
    pid = sim._snapstart._snapshots[(name, version)].live.sbx.pid
    return {pid} | _descendants(pid)


def test_redeploy_takes_a_new_snapshot_and_removes_the_old_one(sim: Simulator, code: Code,
                                                                sandbox_kind: str) -> None:
    fn = _deploy(sim, code)
    v1 = fn.invoke({}).payload
    old = _holder_pids(sim, "app", "1")
    assert _alive(old) == old
    assert fn.redeploy() == "2"
    assert _wait_gone(old) == set(), "version 1 has no environments left: its snapshot goes"
    assert list(sim._snapstart._snapshots) == [("app", "2")]
    v2 = fn.invoke({}).payload
    assert v2["id"] != v1["id"], "a new Init for the new version"
    assert [e.version for e in sim.trace if e.kind == "snapshot"] == ["1", "2"]
    # Scale-down and reaping remove restored environments as any other; the snapshot stays for new ones.
    fn.scale_down(0)
    assert fn.instances == [] and fn.invoke({}).restore_duration_ms is not None
    sim.clock.advance(minutes=11)
    assert fn.instances == [] and fn.invoke({}).payload["id"] == v2["id"]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            line = f.read().replace(b"\0", b" ").decode(errors="replace")
        return f"{pid}: {line[:200]}"
    except OSError:
        return f"{pid}: gone"


def test_nothing_is_left_after_close(code: Code, make_sim: Callable[..., Simulator], sandbox_kind: str) -> None:
    mounts, tmp = _mounts(), _tmp_entries()
    sim = make_sim()
    fn = _deploy(sim, code)
    fn.invoke_many([{"write": "x"}] * 3, concurrency=3)
    pids = _descendants(os.getpid())
    assert len(pids) >= 1 + 2 + 3 * 2, "the zygote, the snapshot's keeper and runtime, the restored ones"
    instances = _instances(sim) | _holder_pids(sim, "app", "1")
    assert len(instances) >= 2 + 3 * 2
    sim.close()
    assert _wait_gone(instances) == set(), "the snapshot and the environments restored from it end with close()"
    lambdasim.shutdown()  # and the helper kept for the next Simulator with its spare
    left = _wait_gone(pids)
    assert left == set(), [_cmdline(p) for p in left]
    assert _mounts() == mounts
    # Named after this simulator's processes: other simulators on the machine make entries meanwhile.
    assert {p for p in _leftovers(tmp, pids) if any(f"-{pid}-" in p for pid in pids)} == set()


def test_snapstart_is_refused_where_lambdasim_cannot_restore(sim: Simulator, code: Code) -> None:
    with pytest.raises(SettingError, match="managed Python runtime without a wrapper script"):
        _deploy(sim, code, environment={"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap"})


@namespace_only("coverage.py set on by hand here does not start under pyfakefs (a runtime of any function exits)")
def test_coverage_counts_the_lines_init_ran_in_the_snapshot(sim: Simulator, code: Code) -> None:
    sim._coverage.settings = {"branch": False}  # as when coverage.py measures the test process
    # The restored runtime's coverage.py is the snapshot's (forked): its data holds Init's lines too.
    src = code("X = 1\nY = X + 1\n\ndef handler(event, context):\n    return Y\n")
    fn = sim.deploy("app.handler", src, snap_start=True, runtime="python3.12")
    assert fn.invoke({}).payload == 2
    assert {1, 2, 4, 5} <= sim._coverage._lines[str(src / "app.py")], "Init's lines (1, 2) ran in the snapshot"
