"""``--lambda-sim-detect``: every ``lambda_sim`` test runs warm, then fresh, and the
summary lists the tests that pass only one way (with the /tmp reads that explain it),
and, apart from them, the tests that fail both ways (no warm/fresh difference, but no
pass either: their failures are in pytest's report above).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pytest_lambdasim.options import detect_enabled

DETECT_PARAM = "_lambda_sim_routing"
ROUTINGS = ("warm", "fresh")
ONLY_WARM = "only passes warm: hidden /tmp or global state dependency"
ONLY_FRESH = "only passes fresh: state a warm instance keeps breaks it"
BOTH_FAIL = "fails warm and fresh: no warm/fresh difference, but no pass either (see the failures above)"
_DETECT_READS_SHOWN = 5


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if DETECT_PARAM not in metafunc.fixturenames or not detect_enabled(metafunc.config):
        return
    marker = metafunc.definition.get_closest_marker("lambda_sim")
    if marker is not None and "routing" in marker.kwargs:
        return  # the test chose its routing
    metafunc.parametrize(DETECT_PARAM, list(ROUTINGS), indirect=True, ids=list(ROUTINGS))


@pytest.fixture
def _lambda_sim_routing(request: pytest.FixtureRequest) -> str | None:
    """Under --lambda-sim-detect, the routing of this run of the test (None otherwise)."""
    return getattr(request, "param", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    detect = detect_run(item)
    if detect is not None:
        # Plain data on the report travels to the xdist controller with it.
        report.lambda_sim_detect = detect  # type: ignore[attr-defined]
    return report


def detect_run(item: pytest.Item) -> dict[str, str] | None:
    """Which test (its node id without the routing) and which of its two runs ``item`` is."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or DETECT_PARAM not in callspec.params:
        return None
    routing = str(callspec.params[DETECT_PARAM])
    # The test's parameter ids without ours (ids, not values: they are the same on every xdist worker).
    # pytest has no public list of a callspec's ids: ``callspec.id`` joins them with "-", which an id
    # may contain, so the private ``_idlist`` is read while it exists and ``id`` split otherwise.
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


def detect_summary(terminalreporter: pytest.TerminalReporter, runs_of: dict[str, dict[str, dict[str, str]]],
                   tests: dict[str, dict[str, Any]]) -> None:
    """The warm-vs-fresh section: ``runs_of`` is test -> routing -> {"nodeid", "outcome"} (and
    "message" when it failed); ``tests`` holds each run's trace by node id."""
    if not runs_of:
        return
    tr = terminalreporter
    only: dict[str, list[dict[str, dict[str, str]]]] = {"warm": [], "fresh": []}
    both_fail: list[dict[str, dict[str, str]]] = []
    both_pass = 0
    for runs in runs_of.values():
        outcomes = (runs.get("warm", {}).get("outcome"), runs.get("fresh", {}).get("outcome"))
        if outcomes == ("passed", "failed"):
            only["warm"].append(runs)
        elif outcomes == ("failed", "passed"):
            only["fresh"].append(runs)
        elif outcomes == ("failed", "failed"):
            both_fail.append(runs)
        elif outcomes == ("passed", "passed"):
            both_pass += 1
    other = len(runs_of) - both_pass - len(only["warm"]) - len(only["fresh"]) - len(both_fail)
    tr.write_sep("=", "lambda-sim detect: warm vs fresh")
    tr.write_line(f"{len(runs_of)} tests run warm and fresh: {both_pass} pass both ways, {len(only['warm'])} only "
                  f"pass warm, {len(only['fresh'])} only pass fresh, {len(both_fail)} fail both ways"
                  + (f", {other} skipped" if other else ""))
    for good, title in (("warm", ONLY_WARM), ("fresh", ONLY_FRESH)):
        if not only[good]:
            continue
        tr.write_line(f"{title} ({len(only[good])}):")
        bad = "fresh" if good == "warm" else "warm"
        for runs in sorted(only[good], key=lambda r: r[bad]["nodeid"]):
            tr.write_line(f"  {runs[bad]['nodeid']} (fails; {runs[good]['nodeid']} passes)")
            reads = _tmp_reads(tests.get(runs["warm"]["nodeid"], {}).get("trace", []))
            for read in reads[:_DETECT_READS_SHOWN]:
                tr.write_line(f"    the warm run read a /tmp file another invocation wrote: {read}")
            if len(reads) > _DETECT_READS_SHOWN:
                tr.write_line(f"    ... and {len(reads) - _DETECT_READS_SHOWN} more such reads")
    if both_fail:
        tr.write_line(f"{BOTH_FAIL} ({len(both_fail)}):")
        for runs in sorted(both_fail, key=lambda r: r["warm"]["nodeid"]):
            tr.write_line(f"  {runs['warm']['nodeid']} and {runs['fresh']['nodeid']} fail")
            messages = list(dict.fromkeys(runs[r].get("message") for r in ROUTINGS if runs[r].get("message")))
            for message in messages:
                tr.write_line(f"    {'both' if len(messages) == 1 else 'one'}: {message}")
