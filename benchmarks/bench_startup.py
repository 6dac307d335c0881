"""Benchmark lambdasim's start-up costs against issue 16's targets.

Run from anywhere::

    python benchmarks/bench_startup.py            # full run
    python benchmarks/bench_startup.py --quick    # fewer samples; 1,000 invocations for the turnover figure
    python benchmarks/bench_startup.py --json out.json
    python benchmarks/bench_startup.py --sandbox fakefs   # one sandbox only (default: both)
    python benchmarks/bench_startup.py --profile  # also cProfile one Simulator cycle per sandbox

For each sandbox asked for it measures:

1. pytest, one run of N tests that deploy the no-op handler with the ``lambda_function``
   fixture and invoke it once, beside N tests that do not use the plugin: each test's set-up +
   tear-down, from pytest's own per-phase durations (a conftest hook records every report);
   target <= 5 ms median for the plugin's tests. The difference per test is printed too;
2. the same suite (both halves) under ``pytest -n 2`` against ``-n 0``: wall time and speed-up;
3. ``with Simulator() as sim: sim.deploy(...).invoke({})``: the first one in a fresh process
   (one sample per process) and later ones in a process that has made one (target <= 10 ms
   median), with the share of Simulator(), deploy, first invoke and close;
4. ``lambdasim chaos`` on the no-op handler with the default rules: examples per second of the
   whole command (target >= 20), and of Hypothesis's search alone (runs counted by lambdasim);
5. 200 events arriving together (``invoke_many(concurrency=200)``) -> 200 instances: the call to
   the last response (an upper bound of first response to last; target <= 1 s);
6. 10,000 invocations with ``scale_down(keep=0)`` after every 10th (1,000 instance turnovers),
   target <= 5 s (``--quick``: 1,000 invocations, the figure scaled by 10 and marked so).

Every measurement runs in a fresh process of this script (``--probe``), so that one figure's
process-level state (imports, a sandbox's helper processes) does not carry into another's; the
children import the lambdasim next to this file.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOOP_DIR = HERE / "noop"
HANDLER = "app.handler"
SANDBOXES = ("namespace", "fakefs")

TARGET_PYTEST_MS = 5.0  # set-up + tear-down per test with the fixtures, median
TARGET_CYCLE_MS = 10.0  # Simulator() + deploy + invoke + close, a process's later ones, median
TARGET_CHAOS_PER_S = 20.0  # lambdasim chaos examples per second
TARGET_BURST_S = 1.0  # 200 events arriving together
BURST = 200
TARGET_TURNOVER_S = 5.0  # 10,000 invocations, a scale-down every 10
TURNOVER_INVOCATIONS = 10_000
TURNOVER_EVERY = 10


# -- statistics and printing ---------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, p90, min and max of samples (any unit), and how many."""
    return {"n": len(samples), "median": statistics.median(samples), "p90": percentile(samples, 90.0),
            "min": min(samples), "max": max(samples)}


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1.0 else f"{seconds:.2f} s"


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def print_grid(lines: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, a rule under the first line."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for k, line in enumerate(lines):
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def machine_info() -> dict[str, Any]:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), "cores": cores,
            "load_average": list(os.getloadavg()), "kernel": platform.release(),
            "python": platform.python_version(), "ci_busy": os.path.exists("/work/ci-busy")}


# -- probes: each runs in a process of its own and prints one JSON object -----------------------


def _cycle(sandbox: str) -> dict[str, float]:
    """One ``with Simulator() as sim: sim.deploy(...).invoke({})``, timed per part (seconds)."""
    from lambdasim import Simulator

    t0 = time.perf_counter()
    sim = Simulator(sandbox=sandbox)
    t1 = time.perf_counter()
    try:
        fn = sim.deploy(HANDLER, code_dir=NOOP_DIR)
        t2 = time.perf_counter()
        inv = fn.invoke({})
        t3 = time.perf_counter()
    finally:
        sim.close()
    t4 = time.perf_counter()
    if inv.error is not None:
        raise RuntimeError(f"the no-op handler failed: {inv.error}")
    return {"simulator": t1 - t0, "deploy": t2 - t1, "invoke": t3 - t2, "close": t4 - t3, "total": t4 - t0}


def probe_cycles(sandbox: str, count: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    # Timed apart, so that the first cycle's figure is without it (lambdasim imports Simulator lazily).
    importlib.import_module("lambdasim").Simulator  # noqa: B018
    imported = time.perf_counter() - t0
    return {"import_s": imported, "cycles": [_cycle(sandbox) for _ in range(count)]}


def probe_profile(sandbox: str) -> dict[str, Any]:
    """cProfile of one cycle after a first one: where this process spends the time (waits on the
    sandbox's helper processes show up as the calls that block)."""
    _cycle(sandbox)
    profile = cProfile.Profile()
    profile.enable()
    _cycle(sandbox)
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
    return {"text": text.getvalue()}


def probe_chaos(sandbox: str, examples: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    from lambdasim._chaos import config_from_args, find_counterexample
    from lambdasim.cli import _parser

    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
        args = _parser().parse_args(["chaos", "--handler", HANDLER, "--code-dir", str(NOOP_DIR),
                                     "--examples", str(examples), "--sandbox", sandbox, "--hypothesis-dir", tmp,
                                     "--out", os.path.join(tmp, "failure.yaml"), "--no-verify"])
        cfg = config_from_args(args)
        t1 = time.perf_counter()
        outcome = find_counterexample(cfg)
        t2 = time.perf_counter()
    return {"examples": examples, "runs": outcome.runs, "found": outcome.violation is not None,
            "setup_s": t1 - t0, "search_s": t2 - t1}


def probe_burst(sandbox: str, repeats: int) -> dict[str, Any]:
    from lambdasim import Simulator

    walls: list[float] = []
    for _ in range(repeats):
        with Simulator(sandbox=sandbox) as sim:
            fn = sim.deploy(HANDLER, code_dir=NOOP_DIR)
            t = time.perf_counter()
            invs = fn.invoke_many([{}] * BURST, concurrency=BURST)
            walls.append(time.perf_counter() - t)
            instances = len({inv.instance_id for inv in invs})
            errors = [inv.error for inv in invs if inv.error is not None]
            if instances != BURST or errors:
                raise RuntimeError(f"{BURST} events gave {instances} instances and {len(errors)} errors "
                                   f"(first: {errors[:1]})")
    return {"walls": walls}


def probe_turnover(sandbox: str, invocations: int) -> dict[str, Any]:
    from lambdasim import Simulator

    with Simulator(sandbox=sandbox) as sim:
        fn = sim.deploy(HANDLER, code_dir=NOOP_DIR)
        turnovers = 0
        t = time.perf_counter()
        for i in range(invocations):
            inv = fn.invoke({})
            if inv.error is not None:
                raise RuntimeError(f"invocation {i} failed: {inv.error}")
            if i % TURNOVER_EVERY == TURNOVER_EVERY - 1:
                turnovers += fn.scale_down(keep=0)
        wall = time.perf_counter() - t
    return {"invocations": invocations, "turnovers": turnovers, "wall_s": wall}


PROBES = {"cycles": probe_cycles, "profile": probe_profile, "chaos": probe_chaos, "burst": probe_burst,
          "turnover": probe_turnover}


def child_env() -> dict[str, str]:
    """The environment of the children: the lambdasim next to this file first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_probe(kind: str, sandbox: str, *args: int) -> dict[str, Any]:
    """Run one probe in a fresh process; its JSON, with ``wall_process_s`` (the child's whole life), or
    ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", kind, "--sandbox", sandbox,
           *(["--probe-arg", str(args[0])] if args else [])]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_process_s"] = wall
    return result


# -- the pytest runs ------------------------------------------------------------------------------

_CONFTEST = '''\
"""Records every test report's phase and duration, and the session's time, for bench_startup.py."""
import json
import os
import time

_reports = []
_start = []


def pytest_sessionstart(session):
    _start.append(time.perf_counter())


def pytest_runtest_logreport(report):
    _reports.append([report.nodeid, report.when, report.duration, report.outcome])


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: the controller gets its reports
        return
    with open(os.environ["BENCH_STARTUP_REPORTS"], "w") as f:
        json.dump({"session_s": time.perf_counter() - _start[0], "reports": _reports}, f)
'''

_PLUGIN_TESTS = '''\
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_noop(lambda_function, i):
    assert lambda_function("{handler}", code_dir={code_dir!r}).invoke({{}}).error is None
'''

_PLAIN_TESTS = '''\
import pytest


def handler(event, context):
    return None


@pytest.mark.parametrize("i", range({n}))
def test_plain(i):
    assert handler({{}}, None) is None
'''


def write_suite(folder: Path, n: int) -> None:
    (folder / "pytest.ini").write_text("[pytest]\n")  # not the repo's settings (testpaths, addopts)
    (folder / "conftest.py").write_text(_CONFTEST)
    (folder / "test_plain.py").write_text(_PLAIN_TESTS.format(n=n))
    (folder / "test_plugin.py").write_text(_PLUGIN_TESTS.format(n=n, handler=HANDLER, code_dir=str(NOOP_DIR)))


def run_pytest(folder: Path, sandbox: str, workers: int) -> dict[str, Any]:
    """One pytest run of the suite in ``folder``; per test and phase, the durations pytest reports."""
    out = folder / f"reports-{sandbox}-{workers}.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--lambda-sim",
           f"--lambda-sim-sandbox={sandbox}", "-n", str(workers), str(folder)]
    env = {**child_env(), "BENCH_STARTUP_REPORTS": str(out)}
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, env=env, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return {"error": f"pytest exit status {done.returncode}: {' | '.join(tail)}"}
    data = json.loads(out.read_text())
    tests: dict[str, dict[str, float]] = {}
    for nodeid, when, duration, _outcome in data["reports"]:
        tests.setdefault(nodeid, {})[when] = duration
    return {"wall_s": wall, "session_s": data["session_s"], "tests": tests}


def phase_stats(tests: dict[str, dict[str, float]], file: str) -> dict[str, dict[str, float]]:
    """Per phase (and set-up + tear-down), over the tests of ``file``: summary in seconds."""
    mine = [t for nodeid, t in tests.items() if nodeid.split("::")[0].endswith(file)]
    return {"setup": summary([t["setup"] for t in mine]), "call": summary([t.get("call", 0.0) for t in mine]),
            "teardown": summary([t["teardown"] for t in mine]),
            "setup+teardown": summary([t["setup"] + t["teardown"] for t in mine]),
            "first_setup": {"s": mine[0]["setup"]} if mine else {}}


# -- the run ---------------------------------------------------------------------------------------


def measure(sandbox: str, quick: bool, profile: bool, suite: Path, rows: list[list[str]]) -> dict[str, Any]:
    """Every figure for one sandbox; appends its table rows."""
    res: dict[str, Any] = {}

    def step(label: str) -> None:
        print(f"  ... {label} ({sandbox})", file=sys.stderr, flush=True)

    def failed(name: str, error: str) -> None:
        rows.append([name, sandbox, "FAILED", "", "", error[:100]])

    # 1 and 2: pytest.
    step("pytest -n 0")
    serial = run_pytest(suite, sandbox, 0)
    res["pytest_n0"] = serial
    if "error" in serial:
        failed("pytest set-up + tear-down", serial["error"])
    else:
        plugin = phase_stats(serial["tests"], "test_plugin.py")
        plain = phase_stats(serial["tests"], "test_plain.py")
        res["pytest_phases"] = {"plugin": plugin, "plain": plain}
        st, base = plugin["setup+teardown"], plain["setup+teardown"]
        rows.append(["pytest set-up + tear-down, lambda_function", sandbox, ms(st["median"]), ms(st["p90"]),
                     f"<= {TARGET_PYTEST_MS:g} ms", verdict(st["median"] * 1e3 <= TARGET_PYTEST_MS)])
        for phase in ("setup", "teardown", "call"):
            rows.append([f"  {phase}", sandbox, ms(plugin[phase]["median"]), ms(plugin[phase]["p90"]), "", ""])
        rows.append(["  first test's set-up (session, imports)", sandbox, ms(plugin["first_setup"]["s"]), "", "", ""])
        rows.append(["pytest set-up + tear-down, plain test", sandbox, ms(base["median"]), ms(base["p90"]), "", ""])
        rows.append(["  difference per test (medians)", sandbox, ms(st["median"] - base["median"]), "", "", ""])
    step("pytest -n 2")
    parallel = run_pytest(suite, sandbox, 2)
    res["pytest_n2"] = {k: v for k, v in parallel.items() if k != "tests"}
    if "error" in parallel:
        failed("pytest -n 2", parallel["error"])
    elif "error" not in serial:
        speedup = serial["wall_s"] / parallel["wall_s"]
        res["xdist_speedup"] = speedup
        rows.append(["pytest wall, -n 0 -> -n 2", sandbox, f"{serial['wall_s']:.2f} s -> {parallel['wall_s']:.2f} s",
                     "", "", f"{speedup:.2f}x"])

    # 3: Simulator cycles; the first of each process apart.
    processes, per_process = (3, 10) if quick else (5, 20)
    step(f"Simulator cycles, {processes} processes")
    runs = [run_probe("cycles", sandbox, per_process + 1) for _ in range(processes)]
    errors = [r["error"] for r in runs if "error" in r]
    res["cycles"] = runs
    if errors:
        failed("Simulator cycle", errors[0])
    else:
        first = [r["cycles"][0] for r in runs]
        later = [c for r in runs for c in r["cycles"][1:]]
        s_first, s_later = summary([c["total"] for c in first]), summary([c["total"] for c in later])
        rows.append(["Simulator cycle, first in a process", sandbox, ms(s_first["median"]), ms(s_first["p90"]), "", ""])
        rows.append(["Simulator cycle, later in the process", sandbox, ms(s_later["median"]), ms(s_later["p90"]),
                     f"<= {TARGET_CYCLE_MS:g} ms", verdict(s_later["median"] * 1e3 <= TARGET_CYCLE_MS)])
        for part in ("simulator", "deploy", "invoke", "close"):
            a, b = summary([c[part] for c in first]), summary([c[part] for c in later])
            rows.append([f"  {part} (first / later)", sandbox, f"{ms(a['median'])} / {ms(b['median'])}",
                         f"- / {ms(b['p90'])}", "", ""])
        imports = summary([r["import_s"] for r in runs])
        rows.append(["  import lambdasim (before the first)", sandbox, ms(imports["median"]), "", "", ""])
    if profile:
        step("cProfile of one cycle")
        res["profile"] = run_probe("profile", sandbox)

    # 4: chaos.
    examples = 10 if quick else 25
    step(f"lambdasim chaos, {examples} examples")
    chaos = run_probe("chaos", sandbox, examples)
    res["chaos"] = chaos
    if "error" in chaos:
        failed("lambdasim chaos", chaos["error"])
    else:
        whole = examples / chaos["wall_process_s"]
        search = chaos["runs"] / chaos["search_s"]
        rows.append([f"lambdasim chaos, {examples} examples, whole command", sandbox, f"{whole:.1f} /s", "",
                     f">= {TARGET_CHAOS_PER_S:g} /s", verdict(whole >= TARGET_CHAOS_PER_S)])
        rows.append([f"  search only ({chaos['runs']} runs in {chaos['search_s']:.2f} s)", sandbox,
                     f"{search:.1f} /s", "", "", ""])

    # 5: the burst.
    repeats = 1 if quick else 3
    step(f"{BURST} events together, {repeats}x")
    burst = run_probe("burst", sandbox, repeats)
    res["burst"] = burst
    if "error" in burst:
        failed(f"{BURST} events together", burst["error"])
    else:
        s = summary(burst["walls"])
        rows.append([f"{BURST} events together -> {BURST} instances", sandbox, ms(s["median"]),
                     ms(s["max"]) if repeats > 1 else "", f"<= {TARGET_BURST_S:g} s",
                     verdict(s["median"] <= TARGET_BURST_S)])

    # 6: turnovers.
    invocations = TURNOVER_INVOCATIONS // 10 if quick else TURNOVER_INVOCATIONS
    step(f"{invocations} invocations, a scale-down every {TURNOVER_EVERY}")
    turn = run_probe("turnover", sandbox, invocations)
    res["turnover"] = turn
    if "error" in turn:
        failed("instance turnovers", turn["error"])
    else:
        scaled = turn["wall_s"] * TURNOVER_INVOCATIONS / invocations
        label = f"{TURNOVER_INVOCATIONS:,} invocations, {turn['turnovers']:,} turnovers"
        if invocations != TURNOVER_INVOCATIONS:
            label = f"{invocations:,} invocations x{TURNOVER_INVOCATIONS // invocations} (projected)"
        rows.append([label, sandbox, f"{scaled:.2f} s", "", f"<= {TARGET_TURNOVER_S:g} s",
                     verdict(scaled <= TARGET_TURNOVER_S)])
        rows.append(["  per turnover (10 invocations + scale-down)", sandbox,
                     ms(turn["wall_s"] / max(1, turn["turnovers"])), "", "", ""])
    return res


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples, 30 tests per pytest half, "
                                                             "1,000 invocations in the turnover figure")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--sandbox", choices=[*SANDBOXES, "both"], default="both",
                        help="the sandbox(es) to measure (default: both)")
    parser.add_argument("--tests", type=int, default=None, help="tests per pytest half (default 100, --quick 30)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one Simulator cycle")
    parser.add_argument("--probe", choices=sorted(PROBES), help=argparse.SUPPRESS)  # internal: one measurement
    parser.add_argument("--probe-arg", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe is not None:
        if args.sandbox == "both":
            parser.error("--probe needs --sandbox namespace or --sandbox fakefs")
        probe: Any = PROBES[args.probe]
        extra = [] if args.probe_arg is None else [args.probe_arg]
        print(json.dumps(probe(args.sandbox, *extra)))
        return 0

    quick: bool = args.quick
    n_tests: int = args.tests if args.tests is not None else (30 if quick else 100)
    sandboxes = list(SANDBOXES) if args.sandbox == "both" else [args.sandbox]
    info = machine_info()
    print(f"machine: {info['cores']} cores, load average {' '.join(f'{x:.2f}' for x in info['load_average'])} "
          f"at start, kernel {info['kernel']}, Python {info['python']}; {info['date']}"
          + (" [--quick]" if quick else "") + f"; {n_tests} tests per pytest half; sandbox: {', '.join(sandboxes)}")
    if info["ci_busy"]:
        print("warning: /work/ci-busy exists: CI is running, the figures are not comparable")
    sys.stdout.flush()

    t_start = time.perf_counter()
    rows: list[list[str]] = [["measurement", "sandbox", "median", "p90", "target", "met"]]
    results: dict[str, Any] = {"machine": info, "quick": quick, "tests": n_tests, "sandboxes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        suite = Path(tmp)
        write_suite(suite, n_tests)
        for sb in sandboxes:
            results["sandboxes"][sb] = measure(sb, quick, args.profile, suite, rows)
    results["elapsed_s"] = time.perf_counter() - t_start

    print()
    print_grid(rows)
    print(f"\n(total {results['elapsed_s']:.0f} s; load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    for sb in sandboxes:
        prof = results["sandboxes"][sb].get("profile")
        if prof:
            print(f"\ncProfile of one Simulator cycle ({sb}), the host process:\n"
                  + prof.get("text", prof.get("error", "")))
    if args.json:
        for sb in sandboxes:  # the per-test durations are bulky: keep the summaries
            results["sandboxes"][sb].get("pytest_n0", {}).pop("tests", None)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
