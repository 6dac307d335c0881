"""pytest plugin for lambdasim: ``pytest --lambda-sim``.

A thin front end over :class:`lambdasim.Simulator`: options and ini keys, the
``lambda_sim`` and ``lambda_function`` fixtures, the ``lambda_sim`` marker, YAML
scenarios collected as tests, and a terminal summary. Nothing heavy is imported
until a test asks for a simulator, so having the plugin installed costs nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lambdasim import Function, Simulator
    from lambdasim._services.service import Services

SKIP_REASON = "needs --lambda-sim"
FIXTURES = frozenset({"lambda_sim", "lambda_function"})
# Marker keywords that configure the Simulator; every other keyword is a deploy() default.
SIM_KEYS = frozenset({"sandbox", "routing", "seed", "services", "region", "init_timeout_s"})
DEPLOY_KEYS = frozenset({"memory_mb", "timeout_s", "ephemeral_storage_mb", "environment", "reserved_concurrency",
                         "keepalive_s", "layers"})
_STATS_KEY = pytest.StashKey["SessionStats"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lambda-sim", "lambdasim: Lambda execution environments")
    group.addoption("--lambda-sim", action="store_true", default=None, dest="lambda_sim",
                    help="run tests that use lambdasim's fixtures, marker or scenarios (ini: lambda_sim = true)")
    group.addoption("--lambda-sim-sandbox", dest="lambda_sim_sandbox", metavar="NAME",
                    help="sandbox for instances: auto or namespace (ini: lambda_sim_sandbox; default auto)")
    group.addoption("--lambda-sim-routing", dest="lambda_sim_routing", choices=("warm", "fresh", "random"),
                    help="which instance takes an invocation (ini: lambda_sim_routing; default warm)")
    group.addoption("--lambda-sim-seed", dest="lambda_sim_seed", type=int, metavar="N",
                    help="seed for random routing and ids (ini: lambda_sim_seed; default 0)")
    group.addoption("--lambda-sim-services", dest="lambda_sim_services", metavar="LIST",
                    help="services to start once per session, e.g. 'aws,redis=binary,memcached=docker' "
                         "(ini: lambda_sim_services; others start on first use)")
    group.addoption("--lambda-sim-report", dest="lambda_sim_report", metavar="PATH",
                    help="write the full trace of every test's simulator as JSON (ini: lambda_sim_report)")
    group.addoption("--lambda-sim-detect", action="store_true", default=None, dest="lambda_sim_detect",
                    help="run every lambda_sim test twice, with warm and with fresh routing, and list the tests "
                         "that pass only warm (implies --lambda-sim; ini: lambda_sim_detect)")
    parser.addini("lambda_sim", "switch lambdasim on, like --lambda-sim", type="bool", default=False)
    parser.addini("lambda_sim_sandbox", "sandbox for instances", default="auto")
    parser.addini("lambda_sim_routing", "routing policy: warm, fresh or random", default="warm")
    parser.addini("lambda_sim_seed", "seed for random routing and ids", default="0")
    parser.addini("lambda_sim_services", "services to start once per session, e.g. aws,redis=binary", default="")
    parser.addini("lambda_sim_report", "path of the JSON trace report", default="")
    parser.addini("lambda_sim_detect", "run lambda_sim tests warm and fresh, like --lambda-sim-detect", type="bool",
                  default=False)
    parser.addini("lambda_sim_scenarios", "glob(s) of YAML scenarios collected as tests", type="linelist",
                  default=["scenarios/*.yaml"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lambda_sim(**settings): per-test lambdasim settings, e.g. routing='fresh', services=['redis'], "
        "or deploy defaults such as ephemeral_storage_mb=1024",
    )
    stats = SessionStats()
    config.stash[_STATS_KEY] = stats
    config.pluginmanager.register(_Reporter(config, stats), "lambda-sim-reporter")


def enabled(config: pytest.Config) -> bool:
    flag = config.getoption("lambda_sim")
    return bool(flag) if flag is not None else bool(config.getini("lambda_sim")) or detect_enabled(config)


def _setting(config: pytest.Config, name: str) -> str:
    value = config.getoption(name)
    return str(value) if value is not None else str(config.getini(name))


def parse_services_option(text: str, source: str) -> dict[str, str]:
    """``"aws,redis=binary"`` -> ``{"aws": "auto", "redis": "binary"}``."""
    services: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.replace("\n", ",").split(","))):
        kind, _, provider = part.partition("=")
        services[kind.strip()] = provider.strip() or "auto"
    from lambdasim._services.service import parse_services

    try:
        parse_services(services)
    except ValueError as e:
        raise pytest.UsageError(f"{source}: {e}") from None
    return services


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if enabled(config):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        uses = FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses or item.get_closest_marker("lambda_sim") is not None or isinstance(item, ScenarioItem):
            item.add_marker(skip)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lambda_sim_services(request: pytest.FixtureRequest) -> Iterator[Services]:
    """The backing services of this session (of this worker, under pytest-xdist).

    Started once, shared by every test's simulator, emptied between tests.
    """
    from lambdasim._services.service import Services, parse_services

    config = request.config
    text = _setting(config, "lambda_sim_services")
    source = "--lambda-sim-services" if config.getoption("lambda_sim_services") else "ini lambda_sim_services"
    services = Services(parse_services(parse_services_option(text, source)))
    try:
        services.start_configured()
        yield services
    finally:
        services.close()


@pytest.fixture
def lambda_sim(request: pytest.FixtureRequest, lambda_sim_services: Services,
               _lambda_sim_routing: str | None) -> Iterator[Simulator]:
    """A :class:`lambdasim.Simulator` for this test: its instances, /tmp and clock are new."""
    if not enabled(request.config):
        pytest.skip(SKIP_REASON)
    from lambdasim import Simulator

    config = request.config
    settings: dict[str, Any] = {
        "sandbox": _setting(config, "lambda_sim_sandbox"),
        "routing": _setting(config, "lambda_sim_routing"),
        "seed": int(_setting(config, "lambda_sim_seed")),
    }
    marker = request.node.get_closest_marker("lambda_sim")
    overrides = dict(marker.kwargs) if marker is not None else {}
    unknown = sorted(set(overrides) - SIM_KEYS - DEPLOY_KEYS)
    if unknown:
        raise pytest.UsageError(
            f"{request.node.nodeid}: @pytest.mark.lambda_sim does not know {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(SIM_KEYS | DEPLOY_KEYS))}")
    wanted_services = overrides.pop("services", None)
    settings.update({k: v for k, v in overrides.items() if k in SIM_KEYS})
    if _lambda_sim_routing is not None:  # --lambda-sim-detect: this is the test's warm or its fresh run
        settings["routing"] = _lambda_sim_routing
    # Neither data nor faults may leak from one test to the next: undo what earlier tests left.
    for service in lambda_sim_services.values():
        service.reset_faults()
        service.flush()
    for kind in parse_services_option(",".join(wanted_services or []), "lambda_sim marker services"):
        lambda_sim_services[kind]  # started on first use, then shared
    sim = Simulator(services=lambda_sim_services, track_tmp=True, track_tmp_access=_lambda_sim_routing is not None,
                    **settings)
    sim.deploy_defaults = {k: v for k, v in overrides.items() if k in DEPLOY_KEYS}  # type: ignore[attr-defined]
    try:
        yield sim
    finally:
        sim.close()
        request.node.stash[_TEST_TRACE] = [event.to_dict() for event in sim.trace]


_TEST_TRACE = pytest.StashKey[list[dict[str, Any]]]()


@pytest.fixture
def lambda_function(lambda_sim: Simulator) -> Callable[..., Function]:
    """Deploy a function: ``lambda_function("app.main.handler", code_dir=..., **config)``."""

    def deploy(handler: str, code_dir: str | os.PathLike[str], **config: Any) -> Function:
        defaults = getattr(lambda_sim, "deploy_defaults", {})
        return lambda_sim.deploy(handler, code_dir=code_dir, **{**defaults, **config})

    return deploy


# -- reporting --------------------------------------------------------------------------


class SessionStats:
    """What every lambdasim test did, gathered from reports (so pytest-xdist works too)."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}
        # --lambda-sim-detect: test (without its routing) -> routing -> {"nodeid", "outcome"}
        self.detect: dict[str, dict[str, dict[str, str]]] = {}

    def add(self, nodeid: str, summary: dict[str, Any]) -> None:
        self.tests[nodeid] = summary

    def add_detect_run(self, detect: dict[str, str], report: pytest.TestReport) -> None:
        run = self.detect.setdefault(detect["test"], {}).setdefault(
            detect["routing"], {"nodeid": report.nodeid, "outcome": "passed"})
        if report.failed:
            run["outcome"] = "failed"
        elif report.skipped and run["outcome"] == "passed":
            run["outcome"] = "skipped"

    def totals(self) -> dict[str, Any]:
        total: dict[str, Any] = {"tests": len(self.tests), "instances": 0, "cold_starts": 0, "resets": 0,
                                 "invocations": {}, "peak_tmp_bytes": {}, "read_only_errors": []}
        for nodeid, s in self.tests.items():
            total["instances"] += s["instances"]
            total["cold_starts"] += s["cold_starts"]
            total["resets"] += s["resets"]
            for outcome, n in s["invocations"].items():
                total["invocations"][outcome] = total["invocations"].get(outcome, 0) + n
            for fn, peak in s["peak_tmp_bytes"].items():
                total["peak_tmp_bytes"][fn] = max(total["peak_tmp_bytes"].get(fn, 0), peak)
            total["read_only_errors"] += [{**e, "test": nodeid} for e in s["read_only_errors"]]
        return total


def summarize(trace: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for one simulator's trace."""
    summary: dict[str, Any] = {"instances": 0, "cold_starts": 0, "resets": 0, "invocations": {},
                               "peak_tmp_bytes": {}, "read_only_errors": []}
    for event in trace:
        kind, detail = event["kind"], event["detail"]
        if kind == "instance_created":
            summary["instances"] += 1
        elif kind == "reset":
            summary["resets"] += 1
        elif kind in ("invoke", "throttled", "rejected"):
            outcome = {"throttled": "throttled", "rejected": "rejected"}.get(kind) or detail.get("error") or "ok"
            summary["invocations"][outcome] = summary["invocations"].get(outcome, 0) + 1
            if detail.get("cold_start"):
                summary["cold_starts"] += 1
            if "tmp_bytes" in detail:
                fn = event["function"]
                summary["peak_tmp_bytes"][fn] = max(summary["peak_tmp_bytes"].get(fn, 0), detail["tmp_bytes"])
            for path in detail.get("erofs", ()):
                summary["read_only_errors"].append({"function": event["function"], "path": path,
                                                    "request_id": event["request_id"]})
    return summary


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "teardown":
        trace = item.stash.get(_TEST_TRACE, None)
        if trace is None and isinstance(item, ScenarioItem):
            trace = item.trace
        if trace is not None:
            # Plain data on the report travels to the xdist controller with it.
            report.lambda_sim = {"summary": summarize(trace), "trace": trace}  # type: ignore[attr-defined]
    detect = _detect_run(item)
    if detect is not None:
        report.lambda_sim_detect = detect  # type: ignore[attr-defined]
    return report


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class _Reporter:
    """Gathers every test's lambdasim summary (also from pytest-xdist workers) and reports it."""

    def __init__(self, config: pytest.Config, stats: SessionStats) -> None:
        self.config = config
        self.stats = stats

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "lambda_sim", None)
        if data is not None:
            self.stats.add(report.nodeid, {**data["summary"], "trace": data["trace"]})
        detect = getattr(report, "lambda_sim_detect", None)
        if detect is not None:
            self.stats.add_detect_run(detect, report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        _terminal_summary(terminalreporter, self.config, self.stats)
        _detect_summary(terminalreporter, self.stats)


def _terminal_summary(terminalreporter: Any, config: pytest.Config, stats: SessionStats) -> None:
    if not stats.tests:
        return
    tr = terminalreporter
    total = stats.totals()
    tr.write_sep("=", "lambda-sim summary")
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(total["invocations"].items())) or "none"
    tr.write_line(f"{total['tests']} tests: {total['instances']} instances started, {total['cold_starts']} cold "
                  f"starts, {total['resets']} resets; invocations: {outcomes}")
    for fn, peak in sorted(total["peak_tmp_bytes"].items()):
        tr.write_line(f"peak /tmp use of {fn}: {_fmt_bytes(peak)}")
    if total["read_only_errors"]:
        tr.write_line(f"read-only filesystem errors ({len(total['read_only_errors'])}):")
        for e in total["read_only_errors"]:
            tr.write_line(f"  {e['test']}: {e['function']} tried to write {e['path']}")
    if config.getoption("verbose") > 0:
        for nodeid, s in sorted(stats.tests.items()):
            outcome = ", ".join(f"{n} {k}" for k, n in sorted(s["invocations"].items())) or "no invocations"
            tr.write_line(f"{nodeid}: {s['instances']} instances, {s['cold_starts']} cold starts, "
                          f"{s['resets']} resets; {outcome}")
    path = _setting(config, "lambda_sim_report")
    if path:
        report = {"summary": total, "tests": stats.tests}
        Path(path).write_text(json.dumps(report, indent=1, default=str))
        tr.write_line(f"lambda-sim trace written to {path}")


# -- --lambda-sim-detect: every lambda_sim test warm, then fresh ------------------------

DETECT_PARAM = "_lambda_sim_routing"
ONLY_WARM = "only passes warm: hidden /tmp or global state dependency"
ONLY_FRESH = "only passes fresh: state a warm instance keeps breaks it"
_DETECT_READS_SHOWN = 5


def detect_enabled(config: pytest.Config) -> bool:
    flag = config.getoption("lambda_sim_detect")
    return bool(flag) if flag is not None else bool(config.getini("lambda_sim_detect"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if DETECT_PARAM not in metafunc.fixturenames or not detect_enabled(metafunc.config):
        return
    marker = metafunc.definition.get_closest_marker("lambda_sim")
    if marker is not None and "routing" in marker.kwargs:
        return  # the test chose its routing
    metafunc.parametrize(DETECT_PARAM, ["warm", "fresh"], indirect=True, ids=["warm", "fresh"])


@pytest.fixture
def _lambda_sim_routing(request: pytest.FixtureRequest) -> str | None:
    """Under --lambda-sim-detect, the routing of this run of the test (None otherwise)."""
    return getattr(request, "param", None)


def _detect_run(item: pytest.Item) -> dict[str, str] | None:
    """Which test (its node id without the routing) and which of its two runs ``item`` is."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or DETECT_PARAM not in callspec.params:
        return None
    routing = str(callspec.params[DETECT_PARAM])
    # The test's parameter ids without ours (ids, not values: they are the same on every xdist worker).
    ids = list(getattr(callspec, "_idlist", None) or str(callspec.id).split("-"))
    if routing in ids:
        ids.remove(routing)
    base = f"{item.parent.nodeid if item.parent else ''}::{getattr(item, 'originalname', item.name)}"
    return {"test": f"{base}[{'-'.join(ids)}]" if ids else base, "routing": routing}


def _tmp_reads(trace: list[dict[str, Any]]) -> list[str]:
    reads = []
    for event in trace:
        for read in event["detail"].get("tmp_reads_from", ()) if event["kind"] == "invoke" else ():
            reads.append(f"{read['path']} (written by request {read['writer']}, read by {event['request_id']})")
    return list(dict.fromkeys(reads))


def _detect_summary(terminalreporter: Any, stats: SessionStats) -> None:
    if not stats.detect:
        return
    tr = terminalreporter
    only: dict[str, list[dict[str, dict[str, str]]]] = {"warm": [], "fresh": []}
    for runs in stats.detect.values():
        outcomes = (runs.get("warm", {}).get("outcome"), runs.get("fresh", {}).get("outcome"))
        if outcomes == ("passed", "failed"):
            only["warm"].append(runs)
        elif outcomes == ("failed", "passed"):
            only["fresh"].append(runs)
    tr.write_sep("=", "lambda-sim detect: warm vs fresh")
    tr.write_line(f"{len(stats.detect)} tests run warm and fresh: {len(only['warm'])} only pass warm, "
                  f"{len(only['fresh'])} only pass fresh")
    for good, title in (("warm", ONLY_WARM), ("fresh", ONLY_FRESH)):
        if not only[good]:
            continue
        tr.write_line(f"{title} ({len(only[good])}):")
        bad = "fresh" if good == "warm" else "warm"
        for runs in sorted(only[good], key=lambda r: r[bad]["nodeid"]):
            tr.write_line(f"  {runs[bad]['nodeid']} (fails; {runs[good]['nodeid']} passes)")
            reads = _tmp_reads(stats.tests.get(runs["warm"]["nodeid"], {}).get("trace", []))
            for read in reads[:_DETECT_READS_SHOWN]:
                tr.write_line(f"    the warm run read a /tmp file another invocation wrote: {read}")
            if len(reads) > _DETECT_READS_SHOWN:
                tr.write_line(f"    ... and {len(reads) - _DETECT_READS_SHOWN} more such reads")


# -- scenarios --------------------------------------------------------------------------


def _glob_match(path: str, pattern: str) -> bool:
    """Whole-path glob match: ``*`` and ``?`` within a folder, ``**`` across folders."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    config = parent.config
    root = config.rootpath
    try:
        rel = file_path.relative_to(root).as_posix()
    except ValueError:
        return None
    patterns: list[str] = config.getini("lambda_sim_scenarios")
    # Glob rules: "*" stays within one folder, "**" crosses folders.
    if any(_glob_match(rel, p) for p in patterns):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    """One YAML scenario, run by lambdasim's scenario interpreter."""

    trace: list[dict[str, Any]] | None = None

    def runtest(self) -> None:
        from lambdasim._scenario import ScenarioFailure, run_file

        display = self.path.relative_to(self.config.rootpath).as_posix()
        try:
            result = run_file(self.path, simulator_factory=self._factory, display=display)
        except ScenarioFailure as failure:
            if failure.result is not None:
                self.trace = failure.result.trace
            raise
        self.trace = result.trace

    def _factory(self, **settings: Any) -> Simulator:
        from lambdasim import Simulator

        config = self.config
        base: dict[str, Any] = {"sandbox": _setting(config, "lambda_sim_sandbox"),
                                "routing": _setting(config, "lambda_sim_routing"),
                                "seed": int(_setting(config, "lambda_sim_seed"))}
        sim = Simulator(**{**base, **settings, "track_tmp": True})
        self._sims.append(sim)
        return sim

    def setup(self) -> None:
        self._sims: list[Simulator] = []

    def teardown(self) -> None:
        if self._sims and self.trace is None:
            self.trace = [e.to_dict() for sim in self._sims for e in sim.trace]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from lambdasim._errors import ConfigError

        if isinstance(excinfo.value, (AssertionError, ConfigError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.name}"

    def _prunetraceback(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        pass
