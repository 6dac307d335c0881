"""Benchmark lambdasim's invoke path against its floors and against python-lambda-local.

Run from anywhere::

    python benchmarks/bench_invoke.py            # full run (1,000 instances in the memory test)
    python benchmarks/bench_invoke.py --quick    # fewer iterations, 100 instances
    python benchmarks/bench_invoke.py --json out.json
    python benchmarks/bench_invoke.py --sandbox fakefs   # one sandbox only (default: both)

It measures, in one run on one machine (items 3, 4 and 6 for each sandbox asked for,
``Simulator(sandbox="namespace")`` and ``Simulator(sandbox="fakefs")``, side by side):

1. a direct in-process call of the no-op handler;
2. a raw pipe round trip between two Python processes (the floor for any
   cross-process invoke), unpinned and pinned to one CPU and to two CPUs;
3. a warm lambdasim invoke of the no-op handler (the instance frozen between invokes,
   as by default; row 3d the same with ``Simulator(freeze=False)``), likewise unpinned and pinned (the
   target is judged unpinned and on two CPUs; on one CPU the floor is a direct hand-off
   of 2-3 us, reported but not judged). Unpinned, the figure depends mostly on whether
   the scheduler puts the host process and the runtime on the same CPU (both poll for
   each other's message for a while); the share of samples in which it did is reported;
4. cold start to first response (``scale_down(keep=0)`` then ``invoke()``, the
   scale-down not timed), and an invoke under ``routing="fresh"`` (a new instance per
   invoke, destroyed inside the same call); row 4d the same for a SnapStart function whose
   Init leaves a small /tmp (a restore from its snapshot), against that function's normal
   cold start (target: at most 2x);
5. the same handler through python-lambda-local (``pip install python-lambda-local``
   or ``pip install -e '.[bench]'``);
6. memory: N instances alive at once, the PSS of every keeper and runtime process
   (each attempt in a fresh process; if N fails, a bisection finds the largest N that works).
   Both sandboxes have the same process tree under the simulator (zygote -> keeper per
   instance -> runtime), and both are measured the same way: keepers and runtimes count,
   the one zygote is reported apart. ``--memory-sandbox`` limits the test to one sandbox;
7. a warm invoke of a function behind the Runtime API (namespace sandbox, ``--skip-api`` leaves
   it out): a minimal Python ``bootstrap`` on ``http.client`` and awslambdaric (``python -m
   awslambdaric``), against a target of 250 us median, with the time spent inside the instance
   (the invocation's duration, from the event handed over to the response) beside it;
8. a Lambda Managed Instances burst (namespace sandbox, ``--skip-managed`` leaves it out): 64
   requests at once (``invoke_many(concurrency=64)``) on ``max_concurrency=16`` environments (4 of
   them, 16 worker processes each) against the same burst on standard Lambda (64 environments): the
   first burst (the environments start) and warm bursts, as requests per second.

and prints each figure next to its target. The targets were set for the namespace
sandbox and are judged on its figures only. The fakefs sandbox had none set; its figures
are printed unjudged, except its warm invoke, which is judged against the same floor
(<= 2x the raw pipe round trip): the warm path is the same host-to-runtime exchange in
both sandboxes, and the floor does not depend on the sandbox. Its cold start is not
judged against the 5 ms: each fakefs runtime builds a pyfakefs filesystem before Init.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from lambdasim import Function, Simulator

# How long the simulator and the runtime poll for each other's next message (lambdasim-internal).
_SPIN_S = float(getattr(importlib.import_module("lambdasim._invoke"), "_SPIN_S", 0.0002))

HERE = Path(__file__).resolve().parent
NOOP_DIR = HERE / "noop"
SLEEP_DIR = HERE / "sleep"
SNAPSTART_DIR = HERE / "snapstart"  # a no-op handler whose Init leaves 8 files of 4 KiB in /tmp
HANDLER = "app.handler"

TARGET_WARM_VS_PIPE = 2.0  # warm invoke <= 2x raw pipe round trip
TARGET_COLD_MS = 5.0  # cold start to first response, median
TARGET_SPEEDUP = 50.0  # vs python-lambda-local, per invoke
TARGET_INSTANCES = 1000  # alive at once ...
TARGET_PSS_MB = 10.0  # ... with at most this PSS each
TARGET_SANDBOX = "namespace"  # the sandbox the targets above were set for
TARGET_RESTORE_VS_COLD = 2.0  # SnapStart: a restored environment's cold start <= 2x a normal one (issue 14)

SANDBOXES = ("namespace", "fakefs")
# What the sandboxes' helper processes (zygotes) have on their command lines.
_ZYGOTE_MARKS = (b"lambdasim._sandbox._zygote", b"lambdasim._sandbox.fakefs")


# -- statistics -----------------------------------------------------------------------


@dataclasses.dataclass
class Stats:
    """Summary of a list of samples, in nanoseconds."""

    n: int
    median_ns: float
    p99_ns: float
    mean_ns: float
    min_ns: float
    max_ns: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        return cls(
            n=len(ordered),
            median_ns=float(statistics.median(ordered)),
            p99_ns=float(percentile(ordered, 99.0)),
            mean_ns=float(statistics.fmean(ordered)),
            min_ns=float(ordered[0]),
            max_ns=float(ordered[-1]),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "n": self.n,
            "median_us": self.median_ns / 1e3,
            "p99_us": self.p99_ns / 1e3,
            "mean_us": self.mean_ns / 1e3,
            "min_us": self.min_ns / 1e3,
            "max_us": self.max_ns / 1e3,
        }


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted samples."""
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt_time(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


# -- processes ------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's, as /proc lists them per thread)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        found.extend(int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split())
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children(child))
    return out


def pss_kb(pid: int) -> int:
    """The ``Pss:`` line of /proc/<pid>/smaps_rollup, in kB (0 if the process is gone)."""
    for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def mem_available_kb() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _is_alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return False
    # The state is the field after the parenthesised command name; a zombie is as good as gone.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def zygote_pids() -> list[int]:
    """This process's lambdasim sandbox helpers (zygotes), of either sandbox."""
    return [p for p in children(os.getpid())
            if any(mark in _read(f"/proc/{p}/cmdline").encode() for mark in _ZYGOTE_MARKS)]


# Processes of closed simulators that outlived their close(), across the run.
_LEFTOVERS: list[int] = []


@contextmanager
def simulator(routing: str, sandbox: str, freeze: bool = True, network: str = "isolated") -> Iterator[Simulator]:
    """A Simulator of ``sandbox`` that is closed on exit, even after a failure, and whose
    processes are waited for until they are gone (so one measurement does not disturb the next)."""
    before = set(zygote_pids())
    sim = Simulator(sandbox=sandbox, routing=routing, seed=0, freeze=freeze, network=network)
    if sim.sandbox != sandbox:
        sim.close()
        raise RuntimeError(f"asked for the {sandbox} sandbox, got {sim.sandbox}")
    mine = [p for p in zygote_pids() if p not in before]
    tree: list[int] = []
    try:
        yield sim
    finally:
        for z in mine:
            tree += [z, *descendants(z)]
        try:
            sim.close()
        except Exception as e:  # noqa: BLE001 - report, then make sure the processes are gone anyway
            print(f"  (Simulator.close() raised {type(e).__name__}: {e})", file=sys.stderr)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline and any(_is_alive(p) for p in tree):
            time.sleep(0.02)
        _LEFTOVERS.extend(p for p in tree if _is_alive(p))


def load_noop() -> Callable[[Any, Any], Any]:
    spec = importlib.util.spec_from_file_location("bench_noop_app", NOOP_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn: Callable[[Any, Any], Any] = module.handler
    return fn


# -- 1. direct call -------------------------------------------------------------------


def bench_direct(batches: int, per_batch: int) -> Stats:
    """ns per call of the handler, each sample the mean of one batch (loop overhead included)."""
    handler = load_noop()
    event: dict[str, Any] = {}
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(batches):
        t0 = clock()
        for _ in range(per_batch):
            handler(event, None)
        samples.append((clock() - t0) / per_batch)
    return Stats.of(samples)


# -- 2. raw pipe round trip -----------------------------------------------------------


def cpu_pair() -> tuple[int, int] | None:
    """Two CPUs this process may run on, for the pinned variants (None on one CPU)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def bench_pipe(iterations: int, warmup: int, cpus: tuple[int, int] | None = None) -> Stats:
    """Parent writes 16 bytes on one pipe; a forked child reads them and writes 16 back on another.

    With ``cpus``, the parent is pinned to ``cpus[0]`` and the child to ``cpus[1]``.
    """
    old_affinity = os.sched_getaffinity(0)
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: echo until the parent closes its end
        code = 0
        try:
            if cpus is not None:
                os.sched_setaffinity(0, {cpus[1]})
            os.close(down_w)
            os.close(up_r)
            reply = b"pong" * 4
            while os.read(down_r, 64):
                os.write(up_w, reply)
        except BaseException:  # noqa: BLE001 - a forked child must never return into the parent's code
            code = 1
        os._exit(code)
    os.close(down_r)
    os.close(up_w)
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[0]})
    message = b"ping" * 4
    clock = time.perf_counter_ns
    samples: list[float] = []
    try:
        for i in range(warmup + iterations):
            t0 = clock()
            os.write(down_w, message)
            os.read(up_r, 64)
            if i >= warmup:
                samples.append(clock() - t0)
    finally:
        os.close(down_w)
        os.close(up_r)
        os.waitpid(pid, 0)
        os.sched_setaffinity(0, old_affinity)
    return Stats.of(samples)


# -- 3. warm invoke -------------------------------------------------------------------


@dataclasses.dataclass
class WarmResult:
    wall: Stats
    handler_duration_ms_median: float  # Invocation.duration_ms, as the runtime measured the handler
    instances: int
    same_cpu: Stats | None = None  # host process and runtime pinned to one CPU
    two_cpus: Stats | None = None  # host process and runtime pinned to two different CPUs
    # Unpinned: the share of samples (between invokes) in which the scheduler had the host
    # process and the runtime on the same CPU. Both poll for up to _SPIN_S for the other's
    # message when more than one CPU is usable, which costs dearly on a shared CPU, so the
    # unpinned figure depends mostly on this placement.
    colocated_share: float | None = None


def last_cpu(pid: int) -> int:
    """The CPU ``pid`` last ran on (field 39 of /proc/<pid>/stat), or -1."""
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    return int(fields[36]) if len(fields) > 36 else -1


def _time_warm(fn: Function, iterations: int, durations: list[float] | None = None,
               placement: tuple[int, list[bool]] | None = None) -> Stats:
    """``placement``: (runtime pid, list) to append, every 50 invokes and outside the timed
    part, whether the host process and the runtime last ran on the same CPU."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    me = os.getpid()
    gc.collect()
    for i in range(iterations):
        t0 = clock()
        inv = fn.invoke({})
        samples.append(clock() - t0)
        if durations is not None:
            durations.append(inv.duration_ms)
        if inv.cold_start or not inv.ok:
            raise RuntimeError(f"a warm invoke was cold or failed: {inv!r}")
        if placement is not None and i % 50 == 0:
            placement[1].append(last_cpu(me) == last_cpu(placement[0]))
    return Stats.of(samples)


def bench_warm(sandbox: str, iterations: int, warmup: int, cpus: tuple[int, int] | None,
               freeze: bool = True, network: str = "isolated") -> WarmResult:
    with simulator("warm", sandbox, freeze, network) as sim:
        fn = sim.deploy(HANDLER, code_dir=NOOP_DIR, name="noop", memory_mb=128, timeout_s=3.0)
        for _ in range(warmup):
            inv = fn.invoke({})
            if not inv.ok:
                raise RuntimeError(f"the no-op handler failed: {inv.error}")
        durations: list[float] = []
        keeper = fn.instances[0]._live.sbx.pid
        runtimes = children(keeper)
        colocated: list[bool] = []
        wall = _time_warm(fn, iterations, durations, (runtimes[0], colocated) if len(runtimes) == 1 else None)
        result = WarmResult(wall, statistics.median(durations), len(fn.instances),
                            colocated_share=sum(colocated) / len(colocated) if colocated else None)
        if cpus is None or len(runtimes) != 1:
            return result
        # The same again with both processes pinned, once to one CPU and once to two: which
        # the scheduler picks by itself changes from run to run, and the figure with it.
        host_affinity = os.sched_getaffinity(0)
        try:
            rt_affinity = os.sched_getaffinity(runtimes[0])
            os.sched_setaffinity(0, {cpus[0]})
            os.sched_setaffinity(runtimes[0], {cpus[0]})
            _time_warm(fn, warmup)
            result.same_cpu = _time_warm(fn, max(iterations // 2, 100))
            os.sched_setaffinity(runtimes[0], {cpus[1]})
            _time_warm(fn, warmup)
            result.two_cpus = _time_warm(fn, max(iterations // 2, 100))
            os.sched_setaffinity(runtimes[0], rt_affinity)
        except OSError as e:
            print(f"  (could not pin the runtime process: {e})", file=sys.stderr)
        finally:
            os.sched_setaffinity(0, host_affinity)
        return result


# -- 7. warm invoke through the Runtime API ------------------------------------------------------

TARGET_API_WARM_US = 250.0  # warm invoke through the Runtime API, median

# The least a Runtime API client can do: one keep-alive connection, next, then a response.
_MINIMAL_BOOTSTRAP = """\
import http.client, os
api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
while True:
    api.request("GET", "/2018-06-01/runtime/invocation/next")
    got = api.getresponse()
    got.read()
    rid = got.getheader("Lambda-Runtime-Aws-Request-Id")
    api.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", b"null")
    api.getresponse().read()
"""


@dataclasses.dataclass
class ApiWarmResult:
    label: str
    wall: Stats | None
    duration_ms_median: float | None  # Invocation.duration_ms: from the event handed over to the response
    note: str = ""


def bench_api_warm(kind: str, iterations: int, warmup: int) -> ApiWarmResult:
    """A warm invoke of a function behind the Runtime API (namespace sandbox): ``kind`` is
    ``http.client`` (a minimal Python bootstrap) or ``awslambdaric`` (AWS's runtime client)."""
    import tempfile

    from lambdasim._simulator import _instance_python

    label = "minimal http.client bootstrap" if kind == "http.client" else "awslambdaric 'python -m awslambdaric'"
    if kind == "awslambdaric" and importlib.util.find_spec("awslambdaric") is None:
        return ApiWarmResult(label, None, None, "awslambdaric is not installed (pip install awslambdaric)")
    with tempfile.TemporaryDirectory() as tmp, simulator("warm", "namespace") as sim:
        if kind == "http.client":
            boot = Path(tmp) / "bootstrap"
            boot.write_text(f"#!{_instance_python()}\n{_MINIMAL_BOOTSTRAP}")
            boot.chmod(0o755)
            fn = sim.deploy(HANDLER, code_dir=tmp, name="api-minimal", runtime="provided.al2023")
        else:
            fn = sim.deploy(HANDLER, code_dir=NOOP_DIR, name="api-ric", runtime="provided.al2023",
                            entry_point=[_instance_python(), "-m", "awslambdaric"])
        for _ in range(warmup):
            inv = fn.invoke({})
            if not inv.ok:
                return ApiWarmResult(label, None, None, f"the function failed: {inv.error}")
        durations: list[float] = []
        wall = _time_warm(fn, iterations, durations)
        return ApiWarmResult(label, wall, statistics.median(durations))


# -- 4. cold start --------------------------------------------------------------------


@dataclasses.dataclass
class ColdResult:
    to_first_response: Stats  # warm routing: scale_down(keep=0) (not timed), then invoke()
    init_duration_ms_median: float  # Invocation.init_duration_ms: Init inside the runtime
    fresh_invoke: Stats  # fresh routing: invoke() = new instance + Init + invoke + destroy of it


def bench_cold(sandbox: str, iterations: int, warmup: int, network: str = "isolated") -> ColdResult:
    clock = time.perf_counter_ns
    to_first: list[float] = []
    inits: list[float] = []
    with simulator("warm", sandbox, network=network) as sim:
        fn = sim.deploy(HANDLER, code_dir=NOOP_DIR, name="noop", memory_mb=128, timeout_s=3.0)
        for i in range(warmup + iterations):
            fn.scale_down(keep=0)
            t0 = clock()
            inv = fn.invoke({})
            elapsed = clock() - t0
            if not inv.cold_start or not inv.ok:
                raise RuntimeError(f"an invoke after scale_down(keep=0) was not a cold start: {inv!r}")
            if i >= warmup:
                to_first.append(elapsed)
                inits.append(inv.init_duration_ms or 0.0)
        fn.scale_down(keep=0)
    fresh: list[float] = []
    with simulator("fresh", sandbox, network=network) as sim:
        fn = sim.deploy(HANDLER, code_dir=NOOP_DIR, name="noop", memory_mb=128, timeout_s=3.0)
        for i in range(warmup + iterations):
            t0 = clock()
            inv = fn.invoke({})
            elapsed = clock() - t0
            if not inv.cold_start or not inv.ok:
                raise RuntimeError(f"a fresh-routing invoke was not a cold start: {inv!r}")
            if i >= warmup:
                fresh.append(elapsed)
    return ColdResult(Stats.of(to_first), statistics.median(inits), Stats.of(fresh))


# -- 8. a Managed Instances burst -----------------------------------------------------

BURST_REQUESTS = 64
BURST_CONCURRENCY = 16  # PerExecutionEnvironmentMaxConcurrency: 4 environments for the burst


@dataclasses.dataclass
class BurstResult:
    label: str
    environments: int
    first_ns: float  # the first burst: every environment starts (Init of all its workers) within it
    warm: Stats  # later bursts, on the same environments


def bench_burst(managed: bool, bursts: int) -> BurstResult:
    """Wall time of ``invoke_many`` of BURST_REQUESTS no-op requests at once, on Managed Instances
    (``managed``) or standard Lambda (an environment per request)."""
    clock = time.perf_counter_ns
    settings: dict[str, Any] = ({"capacity_provider": "bench", "max_concurrency": BURST_CONCURRENCY,
                                "runtime": "python3.13"} if managed else {})
    with simulator("warm", "namespace") as sim:
        fn = sim.deploy(HANDLER, code_dir=SLEEP_DIR, name="burst", timeout_s=10.0, **settings)
        events = [{"sleep_s": 0.0}] * BURST_REQUESTS
        walls: list[float] = []
        for _ in range(bursts + 1):
            t0 = clock()
            invs = fn.invoke_many(events, concurrency=BURST_REQUESTS)
            walls.append(clock() - t0)
            failed = [inv for inv in invs if not inv.ok]
            if failed:
                raise RuntimeError(f"a burst request failed: {failed[0].error}")
        label = (f"Managed Instances, max_concurrency {BURST_CONCURRENCY}" if managed
                 else "standard Lambda, an environment per request")
        return BurstResult(label, len(fn.instances), walls[0], Stats.of(walls[1:]))


def burst_rate(wall_ns: float) -> str:
    return f"{BURST_REQUESTS / (wall_ns / 1e9):,.0f} req/s"


@dataclasses.dataclass
class RestoreResult:
    """SnapStart: cold starts of the same function restored from its snapshot and initialised as usual."""

    restored: Stats  # scale_down(keep=0) (not timed), then invoke(): a restore (a fork and a copy of /tmp)
    normal: Stats  # the same without snap_start: a new instance and Init
    restore_duration_ms_median: float  # Invocation.restore_duration_ms

    @property
    def ratio(self) -> float:
        return self.restored.median_ns / self.normal.median_ns


def bench_restore(sandbox: str, iterations: int, warmup: int) -> RestoreResult:
    clock = time.perf_counter_ns
    samples: dict[bool, list[float]] = {True: [], False: []}
    restores: list[float] = []
    for snap in (False, True):
        with simulator("warm", sandbox) as sim:
            fn = sim.deploy(HANDLER, code_dir=SNAPSTART_DIR, name="snap" if snap else "plain", snap_start=snap,
                            runtime="python3.12")
            for i in range(warmup + iterations):
                fn.scale_down(keep=0)
                t0 = clock()
                inv = fn.invoke({})
                elapsed = clock() - t0
                if not inv.cold_start or not inv.ok:
                    raise RuntimeError(f"an invoke after scale_down(keep=0) was not a cold start: {inv!r}")
                if i >= warmup:
                    samples[snap].append(elapsed)
                    if snap:
                        restores.append(inv.restore_duration_ms or 0.0)
            fn.scale_down(keep=0)
    return RestoreResult(Stats.of(samples[True]), Stats.of(samples[False]), statistics.median(restores))


# -- 5. python-lambda-local -----------------------------------------------------------


@dataclasses.dataclass
class LambdaLocalResult:
    available: bool
    version: str
    stats: Stats | None
    note: str


def bench_lambda_local(iterations: int, warmup: int) -> LambdaLocalResult:
    try:
        version = importlib.metadata.version("python-lambda-local")
        from lambda_local.context import Context
        from lambda_local.main import call
    except ImportError:
        return LambdaLocalResult(False, "", None, "not installed: pip install python-lambda-local (or '.[bench]')")
    handler = load_noop()
    # Importing lambda_local.main runs logging.basicConfig(stdout, INFO), and call() logs
    # five INFO lines per invoke. They are silenced here, which only makes it faster.
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.WARNING)
    clock = time.perf_counter_ns
    samples: list[float] = []
    try:
        for i in range(warmup + iterations):
            context = Context(3)
            t0 = clock()
            _result, err_type = call(handler, {}, context)
            elapsed = clock() - t0
            if err_type is not None:
                raise RuntimeError(f"python-lambda-local reported an error: {_result}")
            if i >= warmup:
                samples.append(elapsed)
    finally:
        root.setLevel(old_level)
    return LambdaLocalResult(
        True, version, Stats.of(samples),
        "lambda_local.main.call(handler, {}, Context(3)): one fork()ed multiprocessing.Process per invoke; "
        "its INFO logging silenced",
    )


# -- 6. memory ------------------------------------------------------------------------


@dataclasses.dataclass
class MemoryProbe:
    requested: int
    ok: bool
    error: str = ""
    instances: int = 0
    processes: int = 0
    keeper_pss_kb: int = 0
    runtime_pss_kb: int = 0
    zygote_pss_kb: int = 0
    mem_available_drop_kb: int = 0
    host_fds_per_instance: float = 0.0
    start_s: float = 0.0  # invoke_many() call to the last handler starting
    wall_s: float = 0.0  # the whole invoke_many() call (includes the handler's sleep)

    @property
    def total_pss_kb(self) -> int:
        return self.keeper_pss_kb + self.runtime_pss_kb

    @property
    def pss_per_instance_mb(self) -> float:
        return self.total_pss_kb / 1024.0 / self.instances if self.instances else 0.0


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _describe(exc: BaseException) -> str:
    root = _root_cause(exc)
    frames = traceback.extract_tb(root.__traceback__)
    where = ""
    if frames:
        f = frames[-1]
        lambdasim_frames = [fr for fr in frames if "lambdasim" in fr.filename]
        where = f" at {Path(f.filename).name}:{f.lineno} {f.name}()"
        if lambdasim_frames and lambdasim_frames[-1] is not f:
            lf = lambdasim_frames[-1]
            where += f", called from {Path(lf.filename).name}:{lf.lineno} {lf.name}()"
    return f"{type(root).__name__}: {root}{where}"


def probe_memory(n: int, sleep_s: float, sandbox: str) -> MemoryProbe:
    probe = MemoryProbe(requested=n, ok=False)
    gc.collect()
    avail_before = mem_available_kb()
    fds_before = open_fds()
    try:
        with simulator("warm", sandbox) as sim:
            fn = sim.deploy(HANDLER, code_dir=SLEEP_DIR, name="sleepy", memory_mb=128,
                            timeout_s=max(30.0, sleep_s + 30.0))
            t_wall = time.time()
            t0 = time.perf_counter()
            invs = fn.invoke_many([{"sleep_s": sleep_s}] * n, concurrency=n)
            probe.wall_s = time.perf_counter() - t0
            failed = [inv for inv in invs if not inv.ok]
            distinct = {inv.instance_id for inv in invs}
            if failed:
                probe.error = f"{len(failed)} of {n} invocations failed, e.g. {failed[0].error}"
                return probe
            started = [float(inv.payload) for inv in invs]
            probe.start_s = max(started) - t_wall
            live = fn.instances
            if len(distinct) != n or len(live) != n:
                probe.error = f"only {len(distinct)} distinct instances ran ({len(live)} alive); raise --sleep"
                return probe
            probe.host_fds_per_instance = (open_fds() - fds_before) / n
            zygotes: set[int] = set()
            for inst in live:
                keeper = inst._live.sbx.pid
                probe.keeper_pss_kb += pss_kb(keeper)
                probe.processes += 1
                for rt in children(keeper):
                    probe.runtime_pss_kb += pss_kb(rt)
                    probe.processes += 1
                for line in _read(f"/proc/{keeper}/status").splitlines():
                    if line.startswith("PPid:"):
                        zygotes.add(int(line.split()[1]))
            probe.zygote_pss_kb = sum(pss_kb(z) for z in zygotes)
            probe.mem_available_drop_kb = avail_before - mem_available_kb()
            probe.instances = n
            probe.ok = True
            fn.scale_down(keep=0)
    except Exception as e:  # noqa: BLE001 - any failure at this size is what the limit search looks for
        probe.ok = False
        probe.error = _describe(e)
    return probe


def probe_memory_isolated(n: int, sleep_s: float, sandbox: str) -> MemoryProbe:
    """:func:`probe_memory` in a new Python process of this script.

    A failed probe can leave file descriptors behind in the process that ran it (see the
    report), which would make every later probe in that process fail early.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(n), "--sleep", str(sleep_s),
           "--sandbox", sandbox]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return MemoryProbe(requested=n, ok=False, error="the probe process did not finish within 600 s")
    lines = proc.stdout.strip().splitlines()
    try:
        return MemoryProbe(**json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError):
        return MemoryProbe(requested=n, ok=False,
                           error=f"the probe process exited with status {proc.returncode} and no result")


@dataclasses.dataclass
class MemoryResult:
    sandbox: str
    requested: int
    nofile_soft: int
    nofile_hard: int
    best: MemoryProbe | None
    first_failure: MemoryProbe | None
    probes: list[MemoryProbe]


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def bench_memory(n: int, sleep_s: float, sandbox: str, verbose: bool) -> MemoryResult:
    """Start ``n`` instances at once; if that fails, bisect for the largest count that works."""
    soft, hard = raise_nofile()
    probes: list[MemoryProbe] = []

    def run(count: int) -> MemoryProbe:
        p = probe_memory_isolated(count, sleep_s, sandbox)
        probes.append(p)
        if verbose:
            state = "ok" if p.ok else f"FAILED: {p.error}"
            print(f"  memory probe ({sandbox}): {count} instances at once: {state}", file=sys.stderr)
        return p

    first = run(n)
    if first.ok:
        return MemoryResult(sandbox, n, soft, hard, first, None, probes)
    best: MemoryProbe | None = None
    lo, hi = 0, n  # lo works (0 trivially), hi fails
    resolution = max(1, n // 100)
    while hi - lo > resolution:
        mid = (lo + hi) // 2
        p = run(mid)
        if p.ok:
            lo, best = mid, p
        else:
            hi = mid
    return MemoryResult(sandbox, n, soft, hard, best, first, probes)


# -- report ---------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    name: str
    median: str
    p99: str
    target: str = ""
    met: str = ""


def yes_no(ok: bool) -> str:
    return "yes" if ok else "NO"


def machine_info() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 0
    model = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        lambdasim_version = importlib.metadata.version("lambdasim")
    except importlib.metadata.PackageNotFoundError:
        lambdasim_version = "?"
    return {
        "nproc": affinity,
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "mem_total_mb": round(int(_read("/proc/meminfo").split()[1]) / 1024),
        "lambdasim": lambdasim_version,
    }


def print_grid(lines: Sequence[Sequence[str]], right: Sequence[int]) -> None:
    """Columns padded to their widest cell; ``right`` are right-aligned; a rule under the first line."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for k, line in enumerate(lines):
        print("  ".join(v.rjust(w) if i in right else v.ljust(w)
                        for i, (v, w) in enumerate(zip(line, widths, strict=True))).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def print_table(rows: Sequence[Row]) -> None:
    headers = Row("measurement", "median", "p99", "target", "met")
    print_grid([[str(v) for v in dataclasses.astuple(r)] for r in [headers, *rows]], right=(1, 2))


# -- per sandbox ----------------------------------------------------------------------

# Milliseconds per instance that the memory test's handler sleeps by default: starting
# every instance must take less, so that each invoke gets an instance of its own. A fakefs
# instance takes longer to start (on 2 CPUs, 1,000 of them took 45-55 s).
_SLEEP_MS_PER_INSTANCE = {"namespace": 10.0, "fakefs": 70.0}
# Roughly what an instance costs the machine (PSS plus kernel memory), to skip a memory
# test that would exhaust it.
_MB_PER_INSTANCE = {"namespace": 6.0, "fakefs": 14.0}


def default_sleep(n: int, sandbox: str) -> float:
    return max(0.5, _SLEEP_MS_PER_INSTANCE[sandbox] / 1000.0 * n)


@dataclasses.dataclass
class SandboxResult:
    name: str
    warm: WarmResult
    cold: ColdResult

    def warm_ratios(self, pipe: Stats, pipe_same: Stats | None,
                    pipe_two: Stats | None) -> tuple[float, float | None, float | None]:
        """Warm invoke / pipe round trip: unpinned, on one CPU, on two CPUs."""
        w = self.warm
        return (w.wall.median_ns / pipe.median_ns,
                w.same_cpu.median_ns / pipe_same.median_ns if w.same_cpu and pipe_same else None,
                w.two_cpus.median_ns / pipe_two.median_ns if w.two_cpus and pipe_two else None)


def warm_target_met(unpinned: float, two_cpus: float | None) -> bool:
    """Judged unpinned and on two CPUs; on one CPU the floor is a direct hand-off (not judged)."""
    return unpinned <= TARGET_WARM_VS_PIPE and (two_cpus is None or two_cpus <= TARGET_WARM_VS_PIPE)


def memory_json(memory: MemoryResult) -> dict[str, Any]:
    best = memory.best
    return {
        "requested": memory.requested,
        "nofile": [memory.nofile_soft, memory.nofile_hard],
        "first_failure": memory.first_failure.error if memory.first_failure else None,
        "probes": [dataclasses.asdict(p) for p in memory.probes],
        "best": None if best is None else {
            **dataclasses.asdict(best), "total_pss_kb": best.total_pss_kb,
            "pss_per_instance_mb": best.pss_per_instance_mb},
    }


def print_memory(memory: MemoryResult, sleep_s: float) -> None:
    print(f"memory, {memory.sandbox}: RLIMIT_NOFILE raised to {memory.nofile_soft} (hard {memory.nofile_hard}); "
          f"the handler slept {sleep_s:g} s")
    if memory.first_failure is not None:
        print(f"  {memory.requested} at once FAILED: {memory.first_failure.error}")
        tried = ", ".join(f"{p.requested}:{'ok' if p.ok else 'fail'}" for p in memory.probes)
        print(f"  bisected for the largest count that works: {tried}")
        if "out of range in select()" in memory.first_failure.error:
            print("  why: lambdasim waits with select.select(), which cannot watch a file descriptor numbered "
                  "1024 (FD_SETSIZE) or above, whatever RLIMIT_NOFILE says; the host process holds about 4 "
                  "descriptors per instance (runtime socket, keeper socket, pidfd, log memfd), so one Simulator "
                  "tops out near (1024 - descriptors already open) / 4 instances")
    best = memory.best
    if best is None:
        print("  no instance count worked")
        return
    print(f"  {best.instances} instances ({best.processes} processes) alive at once: "
          f"total PSS {best.total_pss_kb / 1024:.1f} MB "
          f"(keepers {best.keeper_pss_kb / 1024:.1f} MB, runtimes {best.runtime_pss_kb / 1024:.1f} MB), "
          f"{best.pss_per_instance_mb:.2f} MB per instance; "
          f"plus the shared zygote {best.zygote_pss_kb / 1024:.1f} MB")
    print(f"  started in {best.start_s:.2f} s (invoke_many() call to the last handler starting; "
          f"{best.start_s / best.instances * 1000:.2f} ms per instance); whole invoke_many() "
          f"{best.wall_s:.2f} s incl. the {sleep_s:g} s sleep")
    print(f"  MemAvailable dropped by {best.mem_available_drop_kb / 1024:.1f} MB "
          f"({best.mem_available_drop_kb / 1024 / best.instances:.2f} MB per instance, incl. kernel memory, "
          f"page tables and the host's own growth); the host holds {best.host_fds_per_instance:.1f} "
          f"file descriptors per instance")


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer iterations and 100 instances in the memory test")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--sandbox", choices=[*SANDBOXES, "both"], default="both",
                        help="the sandbox(es) to measure warm invoke, cold start and memory on (default: both)")
    parser.add_argument("--instances", type=int, default=None,
                        help=f"instances alive at once in the memory test (default {TARGET_INSTANCES}, --quick 100)")
    parser.add_argument("--sleep", type=float, default=None,
                        help="seconds the memory test's handler sleeps, so that every invoke gets its own instance "
                             "(default: 10 ms per instance under namespace, 70 ms under fakefs, at least 0.5 s: "
                             "starting them all takes a while)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the memory test")
    parser.add_argument("--skip-api", action="store_true", help="leave out the warm invokes through the Runtime API")
    parser.add_argument("--skip-managed", action="store_true", help="leave out the Managed Instances burst")
    parser.add_argument("--memory-sandbox", choices=[*SANDBOXES, "both"], default=None,
                        help="the sandbox(es) the memory test runs on (default: those of --sandbox)")
    parser.add_argument("--memory-probe", type=int, metavar="N", help=argparse.SUPPRESS)  # internal: one probe
    args = parser.parse_args(argv)
    if args.memory_probe is not None:
        if args.sandbox == "both":
            parser.error("--memory-probe needs --sandbox namespace or --sandbox fakefs")
        sleep_s = args.sleep if args.sleep is not None else default_sleep(args.memory_probe, args.sandbox)
        raise_nofile()
        print(json.dumps(dataclasses.asdict(probe_memory(args.memory_probe, sleep_s, args.sandbox))))
        return 0

    quick: bool = args.quick
    n_instances: int = args.instances if args.instances is not None else (100 if quick else TARGET_INSTANCES)
    if n_instances < 1:
        parser.error("--instances must be 1 or more")
    sandboxes = list(SANDBOXES) if args.sandbox == "both" else [args.sandbox]
    memory_choice: str = args.memory_sandbox or args.sandbox
    memory_sandboxes = [] if args.skip_memory else list(SANDBOXES) if memory_choice == "both" else [memory_choice]
    sleeps = {sb: args.sleep if args.sleep is not None else default_sleep(n_instances, sb) for sb in SANDBOXES}
    warm_n = 1000 if quick else 5000
    cold_n = 50 if quick else 300
    pipe_n = 5000 if quick else 50000
    ll_n = 30 if quick else 200

    info = machine_info()
    print(f"machine: nproc={info['nproc']} ({info['cpu'] or 'cpu ?'}), {info['mem_total_mb']} MB RAM, "
          f"kernel {info['kernel']}, {info['implementation']} {info['python']}, lambdasim {info['lambdasim']}"
          + (" [--quick]" if quick else "") + f"; sandbox: {', '.join(sandboxes)}")
    sys.stdout.flush()

    def step(label: str) -> None:
        print(f"  ... {label}", file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    step("direct call")
    direct = bench_direct(batches=200 if quick else 1000, per_batch=1000)
    step("raw pipe round trip")
    pipe = bench_pipe(iterations=pipe_n, warmup=1000)
    cpus = cpu_pair()
    pipe_same = bench_pipe(iterations=pipe_n // 2, warmup=1000, cpus=(cpus[0], cpus[0])) if cpus else None
    pipe_two = bench_pipe(iterations=pipe_n // 2, warmup=1000, cpus=cpus) if cpus else None
    # python-lambda-local fork()s this process per invoke: run it before any Simulator
    # exists, while this process is small and has no helper threads or sockets.
    step("python-lambda-local")
    ll = bench_lambda_local(iterations=ll_n, warmup=5)
    results: dict[str, SandboxResult] = {}
    for sb in sandboxes:
        step(f"lambdasim warm invoke ({sb})")
        warm = bench_warm(sb, iterations=warm_n, warmup=500, cpus=cpus)
        step(f"lambdasim cold start ({sb})")
        results[sb] = SandboxResult(sb, warm, bench_cold(sb, iterations=cold_n, warmup=10))
    restores: dict[str, RestoreResult] = {}
    for sb in sandboxes:
        step(f"lambdasim SnapStart restore cold start ({sb})")
        restores[sb] = bench_restore(sb, iterations=cold_n, warmup=10)
    # What freezing between invocations costs the warm path (namespace: fakefs does not freeze).
    unfrozen: WarmResult | None = None
    if "namespace" in results:
        step("lambdasim warm invoke (namespace, freeze=False)")
        unfrozen = bench_warm("namespace", iterations=warm_n, warmup=500, cpus=cpus, freeze=False)
    # What the instances' own network namespace costs (the default, network="isolated"), against the host's.
    host_net: SandboxResult | None = None
    if "namespace" in results:
        step("lambdasim warm invoke and cold start (namespace, network='host')")
        host_net = SandboxResult("namespace", bench_warm("namespace", iterations=warm_n, warmup=500, cpus=None,
                                                         network="host"),
                                 bench_cold("namespace", iterations=cold_n, warmup=10, network="host"))
    api_warm: list[ApiWarmResult] = []
    if "namespace" in results and not args.skip_api:
        for kind in ("http.client", "awslambdaric"):
            step(f"lambdasim warm invoke through the Runtime API ({kind})")
            try:
                api_warm.append(bench_api_warm(kind, iterations=warm_n, warmup=200))
            except Exception as e:  # noqa: BLE001 - reported in its row, the other figures stand
                api_warm.append(ApiWarmResult(kind, None, None, f"{type(e).__name__}: {e}"))
    bursts: list[BurstResult] = []
    if "namespace" in results and not args.skip_managed:
        step(f"Managed Instances burst ({BURST_REQUESTS} requests at once), and the same on standard Lambda")
        bursts = [bench_burst(managed, bursts=5 if quick else 20) for managed in (True, False)]
    memories: dict[str, MemoryResult] = {}
    memory_skipped: dict[str, str] = {}
    for sb in memory_sandboxes:
        need_mb = _MB_PER_INSTANCE[sb] * n_instances
        avail_mb = mem_available_kb() / 1024
        if need_mb > 0.9 * avail_mb:
            memory_skipped[sb] = (f"skipped: {n_instances} {sb} instances need about {need_mb:,.0f} MB, "
                                  f"{avail_mb:,.0f} MB available (--instances sets fewer)")
            step(f"memory ({sb}): {memory_skipped[sb]}")
            continue
        step(f"memory ({sb}): {n_instances} instances at once")
        memories[sb] = bench_memory(n_instances, sleeps[sb], sb, verbose=True)
    elapsed = time.perf_counter() - t_start

    # The floor depends on where the scheduler puts the two processes (one CPU: a direct
    # hand-off; two CPUs: a cross-CPU wake-up). The target is judged as users run it
    # (unpinned) and with the two processes on two CPUs; squeezed onto one CPU the floor is
    # a 2-3 us hand-off that no Python-to-Python invoke with JSON can come near, so that
    # row is reported, not judged. The fakefs sandbox had no target set; its warm invoke
    # is judged against the same floor (the same exchange with the runtime), nothing else.
    ratios = {sb: r.warm_ratios(pipe, pipe_same, pipe_two) for sb, r in results.items()}
    warm_met = {sb: warm_target_met(u, two) for sb, (u, _one, two) in ratios.items()}
    speedups = {sb: ll.stats.median_ns / r.warm.wall.median_ns if ll.stats is not None else None
                for sb, r in results.items()}
    ns = results.get(TARGET_SANDBOX)
    cold_ms = ns.cold.to_first_response.median_ns / 1e6 if ns is not None else None
    speedup = speedups.get(TARGET_SANDBOX)

    def judged(sb: str, ok: bool) -> str:
        return yes_no(ok) if sb == TARGET_SANDBOX else "not judged"

    rows = [
        Row("1. direct in-process call of the no-op handler", fmt_time(direct.median_ns), fmt_time(direct.p99_ns)),
        Row("2. raw pipe round trip, 2 Python processes, 16 B each way, unpinned", fmt_time(pipe.median_ns),
            fmt_time(pipe.p99_ns)),
    ]
    if pipe_same is not None and pipe_two is not None and cpus is not None:
        rows += [
            Row(f"2b. raw pipe round trip, both pinned to CPU {cpus[0]}", fmt_time(pipe_same.median_ns),
                fmt_time(pipe_same.p99_ns)),
            Row(f"2c. raw pipe round trip, pinned to CPUs {cpus[0]} and {cpus[1]}", fmt_time(pipe_two.median_ns),
                fmt_time(pipe_two.p99_ns)),
        ]
    for sb, r in results.items():
        unpinned = ratios[sb][0]
        rows.append(Row(f"3. lambdasim warm invoke, no-op, unpinned, {sb} ({r.warm.wall.n} invokes)",
                        fmt_time(r.warm.wall.median_ns), fmt_time(r.warm.wall.p99_ns),
                        f"<= {TARGET_WARM_VS_PIPE:g}x row 2: is {unpinned:.2f}x"
                        + ("" if sb == TARGET_SANDBOX else " (same floor)"),
                        yes_no(unpinned <= TARGET_WARM_VS_PIPE)))
    for sb, r in results.items():
        one_cpu = ratios[sb][1]
        if r.warm.same_cpu is not None and one_cpu is not None and cpus is not None:
            rows.append(Row(f"3b. warm invoke, host and runtime pinned to CPU {cpus[0]}, {sb}",
                            fmt_time(r.warm.same_cpu.median_ns), fmt_time(r.warm.same_cpu.p99_ns),
                            f"(row 2b: is {one_cpu:.2f}x)", "not judged"))
    for sb, r in results.items():
        two_cpus = ratios[sb][2]
        if r.warm.two_cpus is not None and two_cpus is not None and cpus is not None:
            rows.append(Row(f"3c. warm invoke, pinned to CPUs {cpus[0]} and {cpus[1]}, {sb}",
                            fmt_time(r.warm.two_cpus.median_ns), fmt_time(r.warm.two_cpus.p99_ns),
                            f"<= {TARGET_WARM_VS_PIPE:g}x row 2c: is {two_cpus:.2f}x"
                            + ("" if sb == TARGET_SANDBOX else " (same floor)"),
                            yes_no(two_cpus <= TARGET_WARM_VS_PIPE)))
    if unfrozen is not None:
        frozen = results["namespace"].warm
        rows.append(Row("3d. warm invoke, no-op, unpinned, namespace, freeze=False", fmt_time(unfrozen.wall.median_ns),
                        fmt_time(unfrozen.wall.p99_ns),
                        f"freeze on (row 3) costs {(frozen.wall.median_ns - unfrozen.wall.median_ns) / 1e3:+.1f} µs"))
        if unfrozen.two_cpus is not None and frozen.two_cpus is not None and cpus is not None:
            rows.append(Row(f"3e. warm invoke, pinned to CPUs {cpus[0]} and {cpus[1]}, namespace, freeze=False",
                            fmt_time(unfrozen.two_cpus.median_ns), fmt_time(unfrozen.two_cpus.p99_ns),
                            f"freeze on (row 3c) costs "
                            f"{(frozen.two_cpus.median_ns - unfrozen.two_cpus.median_ns) / 1e3:+.1f} µs"))
    for sb, r in results.items():
        median_ms = r.cold.to_first_response.median_ns / 1e6
        rows.append(Row(f"4. COLD START TO FIRST RESPONSE, {sb} (scale_down(keep=0) untimed, then invoke)",
                        fmt_time(r.cold.to_first_response.median_ns), fmt_time(r.cold.to_first_response.p99_ns),
                        f"<= {TARGET_COLD_MS:g} ms median" if sb == TARGET_SANDBOX else "no target set",
                        judged(sb, median_ms <= TARGET_COLD_MS)))
    for sb, r in results.items():
        rows.append(Row(f"4b. routing='fresh' invoke, {sb} (new instance + Init + invoke + its destroy)",
                        fmt_time(r.cold.fresh_invoke.median_ns), fmt_time(r.cold.fresh_invoke.p99_ns)))
    for sb, restore in restores.items():
        rows.append(Row(f"4d. SnapStart restore cold start, {sb} (a small /tmp copied; normal cold start of the "
                        f"same function {fmt_time(restore.normal.median_ns)}, {restore.ratio:.2f}x)",
                        fmt_time(restore.restored.median_ns), fmt_time(restore.restored.p99_ns),
                        f"<= {TARGET_RESTORE_VS_COLD:g}x normal cold start" if sb == TARGET_SANDBOX
                        else "no target set", judged(sb, restore.ratio <= TARGET_RESTORE_VS_COLD)))
    if host_net is not None:
        isolated = results["namespace"]
        extra_ms = (isolated.cold.to_first_response.median_ns - host_net.cold.to_first_response.median_ns) / 1e6
        rows.append(Row("4c. the same on network='host' (rows 3, 4, 4b without the instances' network namespace)",
                        "", "", f"warm {fmt_time(host_net.warm.wall.median_ns)}, "
                        f"cold {fmt_time(host_net.cold.to_first_response.median_ns)}, "
                        f"fresh {fmt_time(host_net.cold.fresh_invoke.median_ns)}; "
                        f"the namespace costs cold {extra_ms:+.2f} ms"))
    for api in api_warm:
        if api.wall is None:
            rows.append(Row(f"7. warm invoke through the Runtime API, {api.label}", "-", "-", api.note, "n/a"))
            continue
        inside = api.duration_ms_median * 1000 if api.duration_ms_median is not None else 0.0
        rows.append(Row(f"7. warm invoke through the Runtime API, {api.label}, namespace ({api.wall.n} invokes)",
                        fmt_time(api.wall.median_ns), fmt_time(api.wall.p99_ns),
                        f"<= {TARGET_API_WARM_US:g} µs median (in the instance: {inside:.0f} µs)",
                        yes_no(api.wall.median_ns / 1e3 <= TARGET_API_WARM_US)))
    if ll.stats is not None and speedups:
        against = TARGET_SANDBOX if speedup is not None else sandboxes[0]
        x = speedups[against] or 0.0
        rows.append(Row(f"5. python-lambda-local {ll.version} invoke, no-op ({ll.stats.n} invokes)",
                        fmt_time(ll.stats.median_ns), fmt_time(ll.stats.p99_ns),
                        f">= {TARGET_SPEEDUP:g}x slower than 3 ({against}): is {x:.1f}x"
                        if against == TARGET_SANDBOX else f"is {x:.1f}x slower than 3 ({against})",
                        judged(against, x >= TARGET_SPEEDUP)))
    else:
        rows.append(Row("5. python-lambda-local", "-", "-", ll.note, "n/a"))
    for burst in bursts:
        versus = "" if burst is bursts[-1] else f"; standard Lambda {burst_rate(bursts[-1].warm.median_ns)}"
        rows.append(Row(f"8. burst of {BURST_REQUESTS} requests at once, {burst.label} ({burst.environments} "
                        f"environments, {burst.warm.n} warm bursts)", fmt_time(burst.warm.median_ns),
                        fmt_time(burst.warm.p99_ns), f"{burst_rate(burst.warm.median_ns)}{versus}; first burst "
                        f"{fmt_time(burst.first_ns)} ({burst_rate(burst.first_ns)})", "no target set"))
    for sb, memory in memories.items():
        best = memory.best
        reached = best.instances if best is not None else 0
        per = best.pss_per_instance_mb if best is not None else 0.0
        count_ok = reached >= TARGET_INSTANCES
        pss_ok = best is not None and per <= TARGET_PSS_MB
        if sb != TARGET_SANDBOX:
            met = "not judged"
        elif memory.requested < TARGET_INSTANCES and best is not None and best.instances == memory.requested:
            met = f"PSS {yes_no(pss_ok)}; 1,000 not tried"
        else:
            met = yes_no(count_ok and pss_ok)
        on_target = sb == TARGET_SANDBOX
        rows.append(Row(f"6. instances alive at once, {sb} (asked for {memory.requested})", str(reached), "",
                        f">= {TARGET_INSTANCES:,} at once" if on_target else "no target set", ""))
        rows.append(Row(f"6. PSS per instance (keeper + runtime), {sb}", f"{per:.2f} MB" if best else "-", "",
                        f"<= {TARGET_PSS_MB:g} MB each, 1,000 at once" if on_target else "no target set", met))
    for sb, why in memory_skipped.items():
        rows.append(Row(f"6. memory, {sb}", "-", "", why, "n/a"))

    print()
    print_table(rows)
    if len(results) > 1 or memories:
        # The same figures, one line per sandbox.
        grid = [["sandbox", "warm median", "warm p99", "warm 2 CPUs", "cold median", "cold p99", "fresh median",
                 "fresh p99", "PSS/instance"]]
        for sb, r in results.items():
            best = memories[sb].best if sb in memories else None
            grid.append([sb, fmt_time(r.warm.wall.median_ns), fmt_time(r.warm.wall.p99_ns),
                         fmt_time(r.warm.two_cpus.median_ns if r.warm.two_cpus else None),
                         fmt_time(r.cold.to_first_response.median_ns), fmt_time(r.cold.to_first_response.p99_ns),
                         fmt_time(r.cold.fresh_invoke.median_ns), fmt_time(r.cold.fresh_invoke.p99_ns),
                         f"{best.pss_per_instance_mb:.2f} MB" if best else "-"])
        if len(results) == 2:
            a, b = results["fakefs"], results["namespace"]
            pa, pb = (memories[s].best if s in memories else None for s in ("fakefs", "namespace"))
            grid.append(["fakefs/namespace", ratio(a.warm.wall.median_ns, b.warm.wall.median_ns),
                         ratio(a.warm.wall.p99_ns, b.warm.wall.p99_ns),
                         ratio(a.warm.two_cpus.median_ns if a.warm.two_cpus else None,
                               b.warm.two_cpus.median_ns if b.warm.two_cpus else None),
                         ratio(a.cold.to_first_response.median_ns, b.cold.to_first_response.median_ns),
                         ratio(a.cold.to_first_response.p99_ns, b.cold.to_first_response.p99_ns),
                         ratio(a.cold.fresh_invoke.median_ns, b.cold.fresh_invoke.median_ns),
                         ratio(a.cold.fresh_invoke.p99_ns, b.cold.fresh_invoke.p99_ns),
                         ratio(pa.pss_per_instance_mb if pa else None, pb.pss_per_instance_mb if pb else None)])
        print()
        print_grid(grid, right=range(1, 9))
    print()
    if ns is not None:
        unpinned, one_cpu, two_cpus = ratios[TARGET_SANDBOX]
        print(f"targets ({TARGET_SANDBOX} sandbox): warm invoke <= 2x pipe round trip: "
              + ("met" if warm_met[TARGET_SANDBOX] else "NOT met")
              + (f" (unpinned {unpinned:.2f}x, on two CPUs {two_cpus:.2f}x; on one CPU {one_cpu:.2f}x "
                 "of a direct hand-off, not judged)"
                 if one_cpu is not None and two_cpus is not None else f" (unpinned {unpinned:.2f}x)"))
        assert cold_ms is not None
        print(f"         cold start to first response <= {TARGET_COLD_MS:g} ms median: "
              + ("met" if cold_ms <= TARGET_COLD_MS else "NOT met") + f" ({cold_ms:.2f} ms)")
        if speedup is not None and ll.stats is not None:
            print(f"         >= {TARGET_SPEEDUP:g}x faster than python-lambda-local: "
                  + ("met" if speedup >= TARGET_SPEEDUP else "NOT met") + f" ({speedup:.1f}x unpinned"
                  + (f"; {ll.stats.median_ns / ns.warm.same_cpu.median_ns:.1f}x with lambdasim pinned to one CPU"
                     if ns.warm.same_cpu is not None else "") + ")")
        if TARGET_SANDBOX in memories:
            memory = memories[TARGET_SANDBOX]
            best = memory.best
            print(f"         {TARGET_INSTANCES:,} instances alive at once with <= {TARGET_PSS_MB:g} MB PSS each: "
                  + ("met" if best is not None and best.instances >= TARGET_INSTANCES
                     and best.pss_per_instance_mb <= TARGET_PSS_MB
                     else f"not tried (asked for {memory.requested})" if memory.requested < TARGET_INSTANCES
                     else "NOT met")
                  + (f" ({best.instances} at once, {best.pss_per_instance_mb:.2f} MB each)" if best else ""))
    else:
        print(f"targets: set for the {TARGET_SANDBOX} sandbox, which was not measured (--sandbox {args.sandbox})")
    ff = results.get("fakefs")
    if ff is not None:
        unpinned, one_cpu, two_cpus = ratios["fakefs"]
        line = ("fakefs sandbox (no targets set): warm invoke <= 2x pipe round trip, the same floor as namespace's: "
                + ("met" if warm_met["fakefs"] else "NOT met") + f" (unpinned {unpinned:.2f}x"
                + (f", on two CPUs {two_cpus:.2f}x" if two_cpus is not None else "") + ")")
        print(line)
        vs_ns = ratio(ff.cold.to_first_response.median_ns, ns.cold.to_first_response.median_ns) if ns else ""
        print(f"         cold start to first response {ff.cold.to_first_response.median_ns / 1e6:.2f} ms median, "
              "not judged" + (f" ({vs_ns} namespace's)" if ns else ""))
        if speedups.get("fakefs") is not None:
            print(f"         {speedups['fakefs']:.1f}x faster than python-lambda-local, not judged")
    print()
    print(f"direct call: per-call mean of {direct.n} batches of 1000 calls (loop overhead included)")
    print(f"raw pipe: {pipe.n} round trips, os.write/os.read on two os.pipe()s to a fork()ed child; "
          f"2x = {fmt_time(2 * pipe.median_ns)}")
    for sb, r in results.items():
        warm = r.warm
        print(f"warm invoke, {sb}: wall time of fn.invoke({{}}) on the host; the handler itself took "
              f"{warm.handler_duration_ms_median * 1000:.1f} µs (Invocation.duration_ms, median), "
              f"{warm.instances} instance(s); mean {fmt_time(warm.wall.mean_ns)}, max {fmt_time(warm.wall.max_ns)}; "
              f"{warm.wall.median_ns / direct.median_ns:,.0f}x the direct call, "
              f"{warm.wall.median_ns - pipe.median_ns:,.0f} ns over one pipe round trip"
              + (f"; unpinned, host and runtime shared a CPU in {warm.colocated_share:.0%} of samples"
                 if warm.colocated_share is not None else ""))
    if results:
        print(f"  (both sides poll {_SPIN_S * 1e6:.0f} µs for the other's message when more than one CPU is usable: "
              "on a CPU of their own a warm invoke is tens of µs, sharing one it is about twice the poll; "
              "which one the scheduler picks is luck, so compare sandboxes on rows 3b and 3c as well)")
    for sb, r in results.items():
        cold = r.cold
        print(f"cold start, {sb}: {cold.to_first_response.n} cold invokes each; Init inside the runtime "
              f"(Invocation.init_duration_ms) median {cold.init_duration_ms_median:.2f} ms; "
              f"'fresh' destroys the instance inside the timed invoke(), so it also pays for the destroy")
    if ll.stats is not None and speedups:
        print(f"python-lambda-local: {ll.note}; lambdasim warm is "
              + ", ".join(f"{x:.1f}x ({sb})" for sb, x in speedups.items() if x is not None) + " faster per invoke")
    else:
        print(f"python-lambda-local: {ll.note}")
    for sb, memory in memories.items():
        print_memory(memory, sleeps[sb])
    for sb, why in memory_skipped.items():
        print(f"memory, {sb}: {why}")
    if _LEFTOVERS:
        print(f"WARNING: sandbox processes still alive after close(): {_LEFTOVERS}")
    print(f"total benchmark time {elapsed:.1f} s")

    if args.json:
        targets: dict[str, Any] = {"sandbox": TARGET_SANDBOX}
        if ns is not None:
            unpinned, one_cpu, two_cpus = ratios[TARGET_SANDBOX]
            targets["warm_vs_pipe"] = {"target_max": TARGET_WARM_VS_PIPE, "value": unpinned, "one_cpu": one_cpu,
                                       "two_cpus": two_cpus, "met": warm_met[TARGET_SANDBOX]}
            targets["cold_start_median_ms"] = {"target_max": TARGET_COLD_MS, "value": cold_ms,
                                               "met": cold_ms is not None and cold_ms <= TARGET_COLD_MS}
            targets["speedup_vs_python_lambda_local"] = {"target_min": TARGET_SPEEDUP, "value": speedup,
                                                         "met": speedup is not None and speedup >= TARGET_SPEEDUP}
        if TARGET_SANDBOX in restores:
            restore_ratio = restores[TARGET_SANDBOX].ratio
            targets["snapstart_restore_vs_cold_start"] = {"target_max": TARGET_RESTORE_VS_COLD,
                                                          "value": restore_ratio,
                                                          "met": restore_ratio <= TARGET_RESTORE_VS_COLD}
        if TARGET_SANDBOX in memories:
            best = memories[TARGET_SANDBOX].best
            targets["instances_alive_at_once"] = {
                "target_min": TARGET_INSTANCES, "value": best.instances if best else 0,
                "met": best is not None and best.instances >= TARGET_INSTANCES}
            targets["pss_per_instance_mb"] = {
                "target_max": TARGET_PSS_MB, "value": best.pss_per_instance_mb if best else None,
                "met": best is not None and best.pss_per_instance_mb <= TARGET_PSS_MB}
        if ff is not None:
            unpinned, one_cpu, two_cpus = ratios["fakefs"]
            targets["fakefs_warm_vs_pipe"] = {
                "target_max": TARGET_WARM_VS_PIPE, "value": unpinned, "one_cpu": one_cpu, "two_cpus": two_cpus,
                "met": warm_met["fakefs"],
                "note": "no fakefs target was set; judged against the same floor as the namespace sandbox"}
        per_sandbox: dict[str, Any] = {}
        for sb in SANDBOXES:
            if sb not in results and sb not in memories and sb not in memory_skipped:
                continue
            entry: dict[str, Any] = {}
            if sb in results:
                r = results[sb]
                unpinned, one_cpu, two_cpus = ratios[sb]
                entry.update({
                    "warm_invoke": {**r.warm.wall.as_dict(),
                                    "handler_duration_ms_median": r.warm.handler_duration_ms_median,
                                    "colocated_share": r.warm.colocated_share},
                    "warm_invoke_one_cpu": r.warm.same_cpu.as_dict() if r.warm.same_cpu else None,
                    "warm_invoke_two_cpus": r.warm.two_cpus.as_dict() if r.warm.two_cpus else None,
                    "warm_vs_pipe": {"unpinned": unpinned, "one_cpu": one_cpu, "two_cpus": two_cpus},
                    "cold_start_to_first_response": {**r.cold.to_first_response.as_dict(),
                                                     "init_duration_ms_median": r.cold.init_duration_ms_median},
                    "fresh_routing_invoke": r.cold.fresh_invoke.as_dict(),
                    "snapstart_restore_cold_start": {**restores[sb].restored.as_dict(),
                                                     "normal_cold_start": restores[sb].normal.as_dict(),
                                                     "ratio": restores[sb].ratio,
                                                     "restore_duration_ms_median":
                                                         restores[sb].restore_duration_ms_median},
                    "speedup_vs_python_lambda_local": speedups[sb],
                })
            entry["memory"] = memory_json(memories[sb]) if sb in memories else None
            if sb in memory_skipped:
                entry["memory_skipped"] = memory_skipped[sb]
            if sb in memories:
                entry["memory_sleep_s"] = sleeps[sb]
            if sb == "namespace" and unfrozen is not None:
                entry["warm_invoke_freeze_off"] = unfrozen.wall.as_dict()
                entry["warm_invoke_two_cpus_freeze_off"] = unfrozen.two_cpus.as_dict() if unfrozen.two_cpus else None
            per_sandbox[sb] = entry
        out: dict[str, Any] = {
            "machine": info,
            "quick": quick,
            "direct_call": direct.as_dict(),
            "pipe_round_trip": pipe.as_dict(),
            "pipe_round_trip_one_cpu": pipe_same.as_dict() if pipe_same else None,
            "pipe_round_trip_two_cpus": pipe_two.as_dict() if pipe_two else None,
            "pinned_cpus": list(cpus) if cpus else None,
            "python_lambda_local": {"version": ll.version, **(ll.stats.as_dict() if ll.stats else {}),
                                    "note": ll.note},
            "sandboxes": per_sandbox,
            "managed_instances_burst": [{"label": b.label, "requests": BURST_REQUESTS, "environments": b.environments,
                                         "first_burst_ms": b.first_ns / 1e6,
                                         "warm_burst": b.warm.as_dict(),
                                         "warm_requests_per_s": BURST_REQUESTS / (b.warm.median_ns / 1e9)}
                                        for b in bursts],
            "runtime_api_warm_invoke": [{"client": a.label, **(a.wall.as_dict() if a.wall else {}),
                                         "duration_ms_median": a.duration_ms_median, "note": a.note}
                                        for a in api_warm],
            "targets": targets,
            "leftover_pids": _LEFTOVERS,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
