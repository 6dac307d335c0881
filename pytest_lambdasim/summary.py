"""The terminal summary: what every lambdasim test did, and the JSON trace report.

Each test's counts and trace travel on its teardown report, so the summary is the same
under pytest-xdist, where the tests run in workers and the reports reach the controller.
The JSON report gives each test its ``outcome`` as pytest counts it (``passed``, ``failed``,
``error``, ``skipped``, ``xfailed``, ``xpassed``), which the HTML report shows: a test that
passes while its function returns errors it expects is a passing test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_lambdasim.detect import detect_summary
from pytest_lambdasim.options import setting

_STATS_KEY = pytest.StashKey["SessionStats"]()
# A test's simulator trace, left on its item by the lambda_sim fixture or the scenario.
TEST_TRACE = pytest.StashKey[list[dict[str, Any]]]()


def pytest_configure(config: pytest.Config) -> None:
    stats = SessionStats()
    config.stash[_STATS_KEY] = stats
    config.pluginmanager.register(_Reporter(config, stats), "lambda-sim-reporter")


class SessionStats:
    """What every lambdasim test did, gathered from reports (so pytest-xdist works too)."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}
        # node id -> the test's outcome so far (its teardown report, the last, settles it)
        self.outcomes: dict[str, str] = {}
        # --lambda-sim-detect: test (without its routing) -> routing -> {"nodeid", "outcome"}
        self.detect: dict[str, dict[str, dict[str, str]]] = {}

    def add(self, nodeid: str, summary: dict[str, Any]) -> None:
        self.tests[nodeid] = summary

    def add_report(self, report: pytest.TestReport) -> str:
        """Fold one phase's report into its test's outcome; returns the outcome so far."""
        outcome = outcome_after(self.outcomes.get(report.nodeid), report)
        if report.when == "teardown":
            self.outcomes.pop(report.nodeid, None)
        else:
            self.outcomes[report.nodeid] = outcome
        return outcome

    def add_detect_run(self, detect: dict[str, str], report: pytest.TestReport) -> None:
        run = self.detect.setdefault(detect["test"], {}).setdefault(
            detect["routing"], {"nodeid": report.nodeid, "outcome": "passed"})
        if report.failed:
            run["outcome"] = "failed"
            message = _failure_message(report)
            if message and "message" not in run:
                run["message"] = message
        elif report.skipped and run["outcome"] == "passed":
            run["outcome"] = "skipped"

    def totals(self) -> dict[str, Any]:
        total: dict[str, Any] = {"tests": len(self.tests), "instances": 0, "cold_starts": 0, "resets": 0,
                                 "invocations": {}, "peak_tmp_bytes": {}, "read_only_errors": [], "refused": {},
                                 "outside_imports": {}, **dict.fromkeys(MODEL_COUNTS, 0)}
        for nodeid, s in self.tests.items():
            total["instances"] += s["instances"]
            total["cold_starts"] += s["cold_starts"]
            total["resets"] += s["resets"]
            for key in MODEL_COUNTS:
                total[key] += s.get(key, 0)
            for outcome, n in s["invocations"].items():
                total["invocations"][outcome] = total["invocations"].get(outcome, 0) + n
            for fn, peak in s["peak_tmp_bytes"].items():
                total["peak_tmp_bytes"][fn] = max(total["peak_tmp_bytes"].get(fn, 0), peak)
            total["read_only_errors"] += [{**e, "test": nodeid} for e in s["read_only_errors"]]
            if s.get("refused"):
                total["refused"][nodeid] = s["refused"]
            if s.get("outside_imports"):
                total["outside_imports"][nodeid] = s["outside_imports"]
        return total


def outcome_after(previous: str | None, report: pytest.TestReport) -> str:
    """A test's outcome after ``report`` (setup, call or teardown), ``previous`` being the one before it,
    in pytest's words: a failing setup or teardown is an ``error``, and xfail marks make ``xfailed``/``xpassed``."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "xpassed" if xfail else "passed"
        if report.failed:
            return "failed"
        return "xfailed" if xfail else "skipped"
    if report.failed:
        return "failed" if previous == "failed" else "error"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    return previous or "passed"


def _failure_message(report: pytest.TestReport) -> str | None:
    """The first line of what made ``report`` fail (pytest's "E" line), clipped."""
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if not message:
        return None
    line = str(message).strip().splitlines()[0] if str(message).strip() else ""
    if report.when != "call":
        line = f"error in {report.when}: {line}"
    return line if len(line) <= 200 else line[:199] + "\u2026"


MODEL_COUNTS = ("snapshots", "restores", "provisioned", "workers", "tenants")
"""The execution models' counts of a test: SnapStart snapshots taken and environments restored from them,
environments provisioned ahead of requests, Managed Instances worker processes started, tenants."""
_MODEL_WORDS = (("restores", "restore", "restores"), ("snapshots", "snapshot", "snapshots"),
                ("provisioned", "provisioned environment", "provisioned environments"),
                ("workers", "worker process", "worker processes"), ("tenants", "tenant", "tenants"))


def summarize(trace: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for one simulator's trace."""
    summary: dict[str, Any] = {"instances": 0, "cold_starts": 0, "resets": 0, "invocations": {},
                               "peak_tmp_bytes": {}, "read_only_errors": [], "refused": {},
                               "outside_imports": {}, **dict.fromkeys(MODEL_COUNTS, 0)}
    tenants: set[str] = set()
    for event in trace:
        kind, detail = event["kind"], event["detail"]
        if detail.get("tenant") is not None:
            tenants.add(str(detail["tenant"]))
        if kind == "snapshot":
            summary["snapshots"] += 1
        elif kind == "restored":
            summary["restores"] += 1
        elif kind == "provisioned":
            summary["provisioned"] += 1
        elif kind == "worker" and detail.get("action") in ("started", "replaced"):
            summary["workers"] += 1
        elif kind == "instance_created":
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
            for where, n in detail.get("refused", {}).items():  # network="isolated"
                summary["refused"][where] = summary["refused"].get(where, 0) + n
            for name in detail.get("outside_imports", ()):  # imports from outside the package
                noted = summary["outside_imports"].setdefault(event["function"], [])
                if name not in noted:
                    noted.append(name)
    summary["tenants"] = len(tenants)
    return summary


def models_line(counts: dict[str, Any]) -> str:
    """The execution models' part of a summary line (empty when the tests used none): ``; 3 restores,
    1 snapshot, 2 tenants``."""
    parts = [f"{counts[key]} {one if counts[key] == 1 else many}" for key, one, many in _MODEL_WORDS
             if counts.get(key)]
    return f"; {', '.join(parts)}" if parts else ""


def refused_line(nodeid: str, refused: dict[str, int]) -> str:
    """The summary's line for a test whose functions were refused addresses under network="isolated"."""
    addresses = ", ".join(f"{where} ({n}x)" if n > 1 else where for where, n in refused.items())
    return (f'lambdasim: network="isolated" refused {addresses} in {nodeid} \u2014 pass network="internet" '
            '(@pytest.mark.lambda_sim(network="internet"), --lambda-sim-network=internet or ini '
            'lambda_sim_network) if the function needs to reach them')


def outside_imports_line(nodeid: str, function: str, names: list[str]) -> str:
    """The summary's line for a function that imported modules from outside its package, layers and runtime."""
    return (f"lambdasim: {function} in {nodeid} imported from outside its package: {', '.join(names)} \u2014 "
            f"would fail on Lambda: No module named {names[0]!r} (add it to the package, a layer or "
            "requirements.txt; package=\"strict\", --lambda-sim-package=strict or ini lambda_sim_package "
            "makes it fail here too)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "teardown":
        trace = item.stash.get(TEST_TRACE, None)
        if trace is not None:
            # Plain data on the report travels to the xdist controller with it.
            report.lambda_sim = {"summary": summarize(trace), "trace": trace}  # type: ignore[attr-defined]
    return report


class _Reporter:
    """Gathers every test's lambdasim summary (also from pytest-xdist workers) and reports it."""

    def __init__(self, config: pytest.Config, stats: SessionStats) -> None:
        self.config = config
        self.stats = stats
        self.template_warnings: dict[str, None] = {}  # each once, in order

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = self.stats.add_report(report)
        data = getattr(report, "lambda_sim", None)
        if data is not None:
            self.stats.add(report.nodeid, {**data["summary"], "outcome": outcome, "trace": data["trace"]})
        detect = getattr(report, "lambda_sim_detect", None)
        if detect is not None:
            self.stats.add_detect_run(detect, report)

    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        # lambdasim.TemplateWarning (and RuntimeVersionWarning), by name: the plugin does not import lambdasim
        # before a test uses it.
        if any(c.__name__ == "TemplateWarning" for c in getattr(warning_message.category, "__mro__", ())):
            self.template_warnings.setdefault(str(warning_message.message), None)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        _terminal_summary(terminalreporter, self.config, self.stats)
        detect_summary(terminalreporter, self.stats.detect, self.stats.tests)
        if self.template_warnings:
            terminalreporter.write_sep("=", "lambda-sim: template settings not modelled")
            for message in self.template_warnings:
                terminalreporter.write_line(message)


def _terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config, stats: SessionStats) -> None:
    if not stats.tests:
        return
    tr = terminalreporter
    total = stats.totals()
    tr.write_sep("=", "lambda-sim summary")
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(total["invocations"].items())) or "none"
    tr.write_line(f"{total['tests']} tests: {total['instances']} instances started, {total['cold_starts']} cold "
                  f"starts, {total['resets']} resets; invocations: {outcomes}{models_line(total)}")
    if total["peak_tmp_bytes"]:
        from lambdasim._report import fmt_bytes  # only once a test has run instances: lambdasim is loaded

        for fn, peak in sorted(total["peak_tmp_bytes"].items()):
            tr.write_line(f"peak /tmp use of {fn}: {fmt_bytes(peak)}")
    if total["read_only_errors"]:
        tr.write_line(f"read-only filesystem errors ({len(total['read_only_errors'])}):")
        for e in total["read_only_errors"]:
            tr.write_line(f"  {e['test']}: {e['function']} tried to write {e['path']}")
    for nodeid, refused in total["refused"].items():
        tr.write_line(refused_line(nodeid, refused))
    for nodeid, functions in total["outside_imports"].items():
        for function, names in functions.items():
            tr.write_line(outside_imports_line(nodeid, function, names))
    if config.getoption("verbose") > 0:
        for nodeid, s in sorted(stats.tests.items()):
            outcome = ", ".join(f"{n} {k}" for k, n in sorted(s["invocations"].items())) or "no invocations"
            tr.write_line(f"{nodeid}: {s['instances']} instances, {s['cold_starts']} cold starts, "
                          f"{s['resets']} resets; {outcome}{models_line(s)}")
    path = setting(config, "lambda_sim_report")
    # An xdist worker holds only its own tests: the controller, which gets every worker's, writes the file.
    if path and not hasattr(config, "workerinput"):
        _write_report(Path(path), {"summary": total, "tests": stats.tests})
        tr.write_line(f"lambda-sim trace written to {path}")


def _write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` whole or not at all: a CI job that uploads it, or ``lambdasim report`` merging
    shards, never reads half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(report, indent=1, default=str))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
