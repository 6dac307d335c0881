"""An HTML report of a simulator's trace: one self-contained file (inline CSS, JS and SVG).

Each run (a Simulator's trace, or each test of the pytest plugin's ``--lambda-sim-report``
JSON, or each routing of ``lambdasim detect --json``) gets a timeline with one lane per
instance (created, Init, invocations, resets, crashes, the Shutdown phase, destroyed), versions colour-coded,
deploys, redeploys, throttles and service events as markers, and its /tmp usage over time
(``tmp_bytes``, from ``Simulator(track_tmp=True)``). A click on an invocation shows its
details; failed ones carry their error and the last lines of their logs (``error_detail``).

The x axis is the order of events: the virtual clock often stands still, so its time is
shown where it moves.

Two things are kept apart: *function errors*, invocations that returned an error (which a
passing test may well expect), and a test's *outcome*, which the pytest plugin's report
carries per test (``outcome``: passed, failed, error, skipped, xfailed, xpassed) and each
run's badge shows. A ``detect --json`` report gets detect's verdict at the top.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from typing import Any

from lambdasim import _report_models as models
from lambdasim._errors import LambdaSimError

VERSION_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")
INSTANCE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
FAIL = "#d32f2f"
RESET = "#f57c00"
INIT = "#f2b705"
READ = "#7b1fa2"
SERVICE = "#6a1b9a"
SHUTDOWN = "#455a64"
LEFT = 190  # the lane labels
TOP = 30  # the clock axis
LANE_H = 30
FUNC_H = 26
TMP_H = 110
OPEN_RUNS = 12  # runs shown unfolded (more: only failed tests, or runs with function errors)
LABEL_ROW = 14  # the height of a /tmp chart label's row (11px text)
# pytest's outcomes (the plugin's report), and the badge class of each
OUTCOME_CLASS = {"passed": "good", "failed": "bad", "error": "bad", "xpassed": "warn", "skipped": "muted",
                 "xfailed": "muted"}
VERDICT_WORD = {"ok": "OK", "different": "DIFFERENT", "cloned": "CLONED", "failed": "FAILED"}


# -- reading traces ---------------------------------------------------------------------------


@dataclass
class Run:
    """One simulator's trace, named."""

    name: str
    events: list[dict[str, Any]]
    outcome: str | None = None


def _event_dict(event: Any) -> dict[str, Any]:
    if isinstance(event, dict):
        return event
    to_dict = getattr(event, "to_dict", None)
    if callable(to_dict):
        result: dict[str, Any] = to_dict()
        return result
    raise TypeError(f"not a trace event: {event!r}")


def runs_of(trace: Any) -> tuple[list[Run], dict[str, Any] | None]:
    """The runs in ``trace`` (see :func:`render`), and the pytest plugin's summary if it has one."""
    if isinstance(trace, (list, tuple)):
        return [Run("trace", [_event_dict(e) for e in trace])], None
    if not isinstance(trace, dict):
        raise TypeError(f"render() takes a list of trace events or a report dict, not {type(trace).__name__}")
    for key in ("tests", "runs"):
        if isinstance(trace.get(key), dict):
            runs = [Run(str(name), [_event_dict(e) for e in entry.get("trace") or ()],
                        str(entry["outcome"]) if isinstance(entry.get("outcome"), str) else None)
                    for name, entry in trace[key].items() if isinstance(entry, dict)]
            summary = trace.get("summary")
            return runs, summary if isinstance(summary, dict) else None
    if isinstance(trace.get("trace"), list):
        return [Run(str(trace.get("name", "trace")), [_event_dict(e) for e in trace["trace"]])], None
    raise ValueError("render() takes a list of trace events, or a dict with 'tests' (pytest --lambda-sim-report), "
                     "'runs' (lambdasim detect --json) or 'trace'")


def detect_verdict(trace: Any) -> dict[str, Any] | None:
    """The verdict of a ``lambdasim detect --json`` report (None for other traces): ``verdict`` (ok,
    different, failed), ``text``, ``differences``, ``failures``, ``cross_reads``, ``handler`` and ``events``.
    Reports written before detect had a verdict get one from their outcomes."""
    if not (isinstance(trace, dict) and isinstance(trace.get("runs"), dict) and "differences" in trace):
        return None
    differences = [d for d in trace.get("differences") or () if isinstance(d, dict)]
    failures = [f for f in trace.get("failures") or () if isinstance(f, dict)]
    if "failures" not in trace:  # older reports: an invocation that failed warm, and does not differ
        differing = {d.get("index") for d in differences}
        failures = [{"index": i, "event": event, "warm": w, "fresh": f} for i, (event, w, f) in
                    enumerate(zip(trace.get("events") or (), trace.get("warm") or (), trace.get("fresh") or (),
                                  strict=False))
                    if isinstance(w, dict) and not w.get("ok", True) and i not in differing]
    verdict = trace.get("verdict")
    if verdict not in VERDICT_WORD:
        verdict = "different" if differences else "cloned" if trace.get("clones") else "failed" if failures else "ok"
    text = trace.get("verdict_text")
    return {"verdict": verdict, "text": str(text) if text else None, "differences": differences,
            "failures": failures, "cross_reads": [r for r in trace.get("cross_reads") or () if isinstance(r, dict)],
            "clones": [c for c in trace.get("clones") or () if isinstance(c, dict)],
            "handler": trace.get("handler"), "function": trace.get("function"),
            "events": len(trace.get("events") or ())}


# -- the model of one run -------------------------------------------------------------------


@dataclass
class Lane:
    instance: str
    function: str
    version: str | None
    start: int
    end: int | None = None
    end_reason: str | None = None
    frozen: list[tuple[int, int | None]] = field(default_factory=list)
    """Spans (from step, to step; None: to the lane's end) in which the instance was frozen."""
    items: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    tmp: list[tuple[int, int]] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)
    """The execution models' facts of the environment (see :mod:`lambdasim._report_models`)."""


@dataclass
class Model:
    run: Run
    functions: list[str] = field(default_factory=list)
    lanes: dict[str, Lane] = field(default_factory=dict)
    function_events: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    global_events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    clock: list[tuple[int, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    drawn: int = 0
    """Events that take a step of the timeline (frozen and thawed draw spans, not steps)."""

    @property
    def steps(self) -> int:
        return max(self.drawn, 1)


def model_of(run: Run) -> Model:
    """What ``run``'s events say, laid out for drawing: lanes, markers, invocations, clock, counts."""
    m = Model(run)
    counts = {"instances": 0, "invocations": 0, "failed": 0, "cold_starts": 0, "resets": 0, "redeploys": 0,
              "crashes": 0, "throttled": 0}
    last_t: float | None = None
    step = -1
    for event in run.events:
        kind = str(event.get("kind", "?"))
        function = str(event.get("function") or "")
        instance = event.get("instance")
        detail = event.get("detail") or {}
        if kind in ("frozen", "thawed"):
            # Frozen from just after the step before (its invocation) to the next step of its own.
            spans = m.lanes[instance].frozen if instance in m.lanes else []
            if kind == "frozen":
                spans.append((step, None))
            elif spans and spans[-1][1] is None:
                spans[-1] = (spans[-1][0], step + 1)
            continue
        step += 1
        t = event.get("t")
        if isinstance(t, (int, float)) and t != last_t:
            m.clock.append((step, float(t)))
            last_t = float(t)
        if function and function not in m.functions:
            m.functions.append(function)
        if kind == "service" or not function:
            m.global_events.append((step, event))
            continue
        if instance is None:
            m.function_events.setdefault(function, []).append((step, event))
            models.count_function_event(counts, kind)
            counts["redeploys"] += kind == "redeploy"
            counts["throttled"] += kind in ("throttled", "rejected")
            continue
        lane = m.lanes.get(instance)
        if lane is None:
            lane = m.lanes[instance] = Lane(str(instance), function, event.get("version"), step)
            counts["instances"] += 1
        models.note(lane.tags, counts, kind, detail)
        if kind == "destroyed":
            lane.end, lane.end_reason = step, str(detail.get("reason", ""))
            if lane.frozen and lane.frozen[-1][1] is None:
                lane.frozen[-1] = (lane.frozen[-1][0], step)  # destroyed as it was, frozen
        elif kind == "invoke":
            index = len(m.invocations)
            error_detail = detail.get("error_detail") or {}
            inv = {
                "index": index, "step": step, "t": t, "request_id": event.get("request_id"), "function": function,
                "instance": instance, "version": event.get("version"), "cold_start": bool(detail.get("cold_start")),
                "duration_ms": detail.get("duration_ms"), "error": detail.get("error"),
                "errorMessage": error_detail.get("errorMessage"), "logs": error_detail.get("logs"),
                "tmp_bytes": detail.get("tmp_bytes"), "tmp_reads_from": detail.get("tmp_reads_from") or [],
                "erofs": detail.get("erofs") or [], **models.invocation_fields(detail),
            }
            m.invocations.append(inv)
            lane.items.append((step, {"kind": "invoke", "inv": inv}))
            counts["invocations"] += 1
            counts["failed"] += inv["error"] is not None
            counts["cold_starts"] += inv["cold_start"]
            if isinstance(detail.get("tmp_bytes"), int):
                lane.tmp.append((step, detail["tmp_bytes"]))
        else:
            lane.items.append((step, event))
            counts["resets"] += kind == "reset"
            counts["crashes"] += kind == "crash"
    m.counts = counts
    m.drawn = step + 1
    return m


# -- drawing ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _version_colour(version: Any) -> str:
    try:
        return VERSION_COLOURS[(int(version) - 1) % len(VERSION_COLOURS)]
    except (TypeError, ValueError):
        return VERSION_COLOURS[-1]


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _fmt_ms(value: Any) -> str:
    return f"{value:.2f} ms" if isinstance(value, (int, float)) else "?"


def _short(request_id: Any) -> str:
    return str(request_id)[:8] if request_id else "?"


class _Svg:
    """The timeline of one run, and its /tmp chart, as SVG text."""

    def __init__(self, m: Model, run_index: int) -> None:
        self.m = m
        self.run = run_index
        self.step_w = max(12, min(40, 1100 // m.steps))
        self.width = LEFT + m.steps * self.step_w + 40
        self.rows: list[tuple[str, str, int]] = []  # (kind, key, y)
        y = TOP
        for function in m.functions:
            self.rows.append(("function", function, y))
            y += FUNC_H
            for lane in m.lanes.values():
                if lane.function == function:
                    self.rows.append(("lane", lane.instance, y))
                    y += LANE_H
        self.height = y + 14
        self.lane_y = {key: y for kind, key, y in self.rows if kind == "lane"}
        self.function_y = {key: y for kind, key, y in self.rows if kind == "function"}

    def x(self, step: int) -> float:
        return LEFT + step * self.step_w + self.step_w / 2

    def timeline(self) -> str:
        m, out = self.m, []
        out.append(f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                   f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
                   f'aria-label="timeline of {_e(m.run.name)}">')
        out.append(self._axis())
        for kind, key, y in self.rows:
            out.append(self._function_row(key, y) if kind == "function" else self._lane(m.lanes[key], y))
        for step, event in m.global_events:
            out.append(self._global_marker(step, event))
        out.append("</svg>")
        return "".join(out)

    def _axis(self) -> str:
        out = [f'<line class="axis" x1="{LEFT}" y1="{TOP - 6}" x2="{self.width - 30}" y2="{TOP - 6}"/>']
        label_every = max(1, 60 // self.step_w)
        last_label = -10**9
        for step, t in self.m.clock:
            x = self.x(step)
            out.append(f'<line class="tick" x1="{x:.1f}" y1="{TOP - 10}" x2="{x:.1f}" y2="{self.height - 10}"/>')
            if step - last_label >= label_every:
                out.append(f'<text class="clock" x="{x:.1f}" y="{TOP - 12}">t={t:g}s</text>')
                last_label = step
        out.append(f'<text class="axis-label" x="6" y="{TOP - 12}">virtual clock</text>')
        return "".join(out)

    def _function_row(self, function: str, y: int) -> str:
        out = [f'<g class="function-lane" data-function-lane="{_e(function)}">',
               f'<rect class="function-bg" x="0" y="{y}" width="{self.width}" height="{FUNC_H}"/>',
               f'<text class="lane-label function-label" x="6" y="{y + 17}">'
               f"{_e(_fit(chr(0x192) + ' ' + function, LEFT - 40, mono=True, bold=True))}"
               f"<title>{_e(function)}</title></text>"]
        for step, event in self.m.function_events.get(function, []):
            out.append(self._function_marker(function, step, event, y))
        out.append("</g>")
        return "".join(out)

    def _function_span(self, function: str) -> tuple[int, int]:
        top = self.function_y[function]
        lanes = [self.lane_y[lane.instance] for lane in self.m.lanes.values() if lane.function == function]
        return top, (max(lanes) + LANE_H if lanes else top + FUNC_H)

    def _function_marker(self, function: str, step: int, event: dict[str, Any], y: int) -> str:
        kind, x = str(event.get("kind")), self.x(step)
        version = event.get("version")
        detail = event.get("detail") or {}
        if kind in ("deploy", "redeploy"):
            colour = _version_colour(version)
            top, bottom = self._function_span(function)
            label = f"v{version}" if kind == "deploy" else f"\u21bb v{version}"
            title = f"{kind} of {function}: version {version} (step {step})"
            line = (f'<line class="redeploy-line" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" '
                    f'stroke="{colour}"/>' if kind == "redeploy" else "")
            return (f'<g class="marker" data-marker="{kind}"><title>{_e(title)}</title>{line}'
                    f'<rect x="{x - 15:.1f}" y="{y + 4}" width="30" height="17" rx="3" fill="{colour}"/>'
                    f'<text class="marker-text" x="{x:.1f}" y="{y + 16}">{_e(label)}</text></g>')
        if kind in ("throttled", "rejected"):
            title = (f"{kind}: {function} answered {detail.get('status', '?')} to request "
                     f"{event.get('request_id')} (step {step})")
            return (f'<g class="marker" data-marker="{kind}"><title>{_e(title)}</title>'
                    f'<path d="M{x - 6:.1f},{y + 6} L{x + 6:.1f},{y + 6} L{x:.1f},{y + 19} Z" fill="#757575"/></g>')
        return models.marker(kind, step, detail, x, y + FUNC_H / 2) or self._generic(kind, step, event, x,
                                                                                        y + FUNC_H / 2)

    def _generic(self, kind: str, step: int, event: dict[str, Any], x: float, y: float) -> str:
        title = f"{kind} (step {step}): {json.dumps(event.get('detail') or {}, default=str)[:300]}"
        return (f'<g class="marker" data-marker="{_e(kind)}"><title>{_e(title)}</title>'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#9e9e9e"/></g>')

    def _global_marker(self, step: int, event: dict[str, Any]) -> str:
        x = self.x(step)
        detail = event.get("detail") or {}
        name = detail.get("service") or event.get("function") or ""
        action = detail.get("action") or event.get("kind")
        label = f"{name} {action}".strip()
        title = f"{label} (step {step}): {json.dumps(detail, default=str)[:300]}"
        return (f'<g class="marker service" data-marker="service"><title>{_e(title)}</title>'
                f'<line class="service-line" x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{self.height - 10}"/>'
                f'<text class="service-text" x="{x + 3:.1f}" y="{self.height - 2}">{_e(label)}</text></g>')

    def _lane(self, lane: Lane, y: int) -> str:
        colour = _version_colour(lane.version)
        start = self.x(lane.start) - self.step_w / 2
        end = self.x(lane.end if lane.end is not None else self.m.steps - 1) + self.step_w / 2
        invs = sum(1 for _, item in lane.items if item.get("kind") == "invoke")
        ended = f"destroyed ({lane.end_reason})" if lane.end is not None else "still alive at the end"
        title = (f"instance {lane.instance} of {lane.function}, version {lane.version}: {invs} invocations; {ended}"
                 f"{models.title(lane.tags)}")
        out = [f'<g class="lane" data-lane="{_e(lane.instance)}" data-version="{_e(lane.version)}">',
               f'<title>{_e(title)}</title>',
               f'<text class="lane-label" x="18" y="{y + 19}">'
               f'{_e(_fit(models.label(lane.instance, lane.tags), LEFT - 26, mono=True))}</text>',
               f'<rect class="version-chip" x="6" y="{y + 9}" width="8" height="12" fill="{colour}"/>',
               f'<rect class="lifetime" x="{start:.1f}" y="{y + 5}" width="{max(end - start, 2):.1f}" '
               f'height="{LANE_H - 10}" fill="{colour}" stroke="{colour}"/>',
               f'<g class="marker" data-marker="created"><title>created (step {lane.start})</title>'
               f'<circle cx="{start + 3:.1f}" cy="{y + LANE_H / 2}" r="3" fill="#2e7d32"/></g>',
               models.badges(lane.tags, start, y)]
        for a, b in lane.frozen:
            x0 = self.x(a) + self.step_w * 0.4
            x1 = (self.x(b) - self.step_w * 0.4) if b is not None else end
            if x1 > x0:
                out.append(f'<rect class="frozen" data-marker="frozen" x="{x0:.1f}" y="{y + LANE_H / 2 - 3:.1f}" '
                           f'width="{x1 - x0:.1f}" height="6"><title>frozen between invocations: no process of '
                           'the instance ran</title></rect>')
        by_request = {item["inv"]["request_id"]: step for step, item in lane.items if item.get("kind") == "invoke"}
        for step, item in lane.items:
            if item.get("kind") == "invoke":
                out.append(self._invocation(item["inv"], step, y, colour, by_request))
            else:
                out.append(self._lane_marker(step, item, y))
        if lane.end is not None:
            x = self.x(lane.end)
            out.append(f'<g class="marker" data-marker="destroyed"><title>{_e(f"destroyed: {lane.end_reason}")}'
                       f'</title><rect x="{x - 4:.1f}" y="{y + 6}" width="8" height="{LANE_H - 12}" fill="#212121"/>'
                       "</g>")
        out.append("</g>")
        return "".join(out)

    def _invocation(self, inv: dict[str, Any], step: int, y: int, colour: str, by_request: dict[Any, int]) -> str:
        x, w = self.x(step), self.step_w * 0.8
        failed = inv["error"] is not None
        state = f"failed: {inv['error']}" if failed else "ok"
        title = (f"invocation {inv['request_id']} on {inv['instance']} (v{inv['version']}), "
                 f"{'cold start (Init), ' if inv['cold_start'] else ''}{_fmt_ms(inv['duration_ms'])}, {state}")
        if inv["tmp_reads_from"]:
            title += "; read /tmp another invocation wrote: " + ", ".join(
                f"{r.get('path')} (by {_short(r.get('writer'))})" for r in inv["tmp_reads_from"])
        fill = FAIL if failed else colour
        out = [f'<g class="inv{" failed" if failed else ""}" data-run="{self.run}" data-inv="{inv["index"]}" '
               f'data-rid="{_e(inv["request_id"])}" data-failed="{int(failed)}" tabindex="0" role="button" '
               f'aria-label="{_e(title)}"><title>{_e(title)}</title>',
               f'<rect class="inv-box" x="{x - w / 2:.1f}" y="{y + 7}" width="{w:.1f}" height="{LANE_H - 14}" '
               f'rx="2" fill="{fill}"/>']
        if inv["cold_start"]:
            out.append(f'<rect class="init" data-marker="init" x="{x - w / 2:.1f}" y="{y + 2}" width="{w:.1f}" '
                       f'height="5" fill="{INIT}"><title>Init (cold start)</title></rect>')
        if failed:
            out.append(f'<text class="fail-mark" x="{x:.1f}" y="{y + LANE_H / 2 + 4}">!</text>')
        for read in inv["tmp_reads_from"]:
            writer = by_request.get(read.get("writer"))
            if writer is not None and writer != step:
                wx = self.x(writer)
                out.append(f'<path class="read-arc" data-marker="tmp-read" d="M{wx:.1f},{y + 7} '
                           f'Q{(wx + x) / 2:.1f},{y - 6} {x:.1f},{y + 7}"/>')
        if inv["tmp_reads_from"]:
            out.append(f'<circle class="read-dot" cx="{x + w / 2 - 1:.1f}" cy="{y + 8}" r="2.5" fill="{READ}"/>')
        out.append("</g>")
        return "".join(out)

    def _lane_marker(self, step: int, event: dict[str, Any], y: int) -> str:
        kind, x = str(event.get("kind")), self.x(step)
        detail = event.get("detail") or {}
        cy = y + LANE_H / 2
        if kind == "reset":
            title = f"reset (step {step}): {detail.get('reason', '')}: the runtime was replaced; /tmp stays"
            return (f'<g class="marker" data-marker="reset"><title>{_e(title)}</title>'
                    f'<path d="M{x:.1f},{cy - 8} L{x + 7:.1f},{cy} L{x:.1f},{cy + 8} L{x - 7:.1f},{cy} Z" '
                    f'fill="{RESET}" stroke="#fff"/></g>')
        if kind == "crash":
            title = f"crash (step {step}): the runtime was killed"
            return (f'<g class="marker" data-marker="crash"><title>{_e(title)}</title>'
                    f'<path d="M{x - 6:.1f},{cy - 6} L{x + 6:.1f},{cy + 6} M{x + 6:.1f},{cy - 6} L{x - 6:.1f},{cy + 6}"'
                    f' stroke="{FAIL}" stroke-width="3"/></g>')
        if kind == "shutdown":
            return _shutdown_marker(step, detail, x, y)
        if kind == "instance_created":
            return ""
        return models.marker(kind, step, detail, x, cy) or self._generic(kind, step, event, x, cy)

    def tmp_chart(self) -> str:
        lanes = [lane for lane in self.m.lanes.values() if lane.tmp]
        if not lanes:
            return ""
        peak = max(b for lane in lanes for _, b in lane.tmp) or 1
        top, bottom = 12, 12 + TMP_H

        def y_of(b: int) -> float:
            return bottom - (b / peak) * (TMP_H - 6)

        series, ends, points_at = [], [], []
        for i, lane in enumerate(lanes):
            colour = INSTANCE_COLOURS[i % len(INSTANCE_COLOURS)]
            points = " ".join(f"{self.x(step):.1f},{y_of(b):.1f}" for step, b in lane.tmp)
            out = [f'<g class="tmp-series" data-tmp-lane="{_e(lane.instance)}">',
                   f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>']
            for step, b in lane.tmp:
                out.append(f'<circle cx="{self.x(step):.1f}" cy="{y_of(b):.1f}" r="3" fill="{colour}">'
                           f'<title>{_e(f"{lane.instance}: {fmt_bytes(b)} in /tmp after step {step}")}</title>'
                           "</circle>")
            series.append(out)
            points_at += [(self.x(step), y_of(b)) for step, b in lane.tmp]
            last_step, last_b = lane.tmp[-1]
            ends.append((self.x(last_step), y_of(last_b), lane.instance, colour))
        labels, height, width = _place_labels(ends, points_at, top)
        for out, label in zip(series, labels, strict=True):
            out.append(label + "</g>")
        height, width = max(height, bottom + 24), max(width, self.width)
        head = [f'<svg class="tmpchart" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
                f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
                f'aria-label="/tmp usage of {_e(self.m.run.name)}">',
                f'<text class="axis-label" x="6" y="{top + 10}">/tmp used</text>',
                f'<text class="axis-label" x="6" y="{top + 26}">peak {_e(fmt_bytes(peak))}</text>',
                f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{self.width - 30}" y2="{bottom}"/>',
                f'<line class="axis" x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}"/>']
        return "".join(head + [part for out in series for part in out] + ["</svg>"])


def shutdown_text(detail: dict[str, Any]) -> str:
    """What a ``shutdown`` event says: the Shutdown phase of an instance with extensions (SIGTERM to the
    runtime, the SHUTDOWN event), its duration and what had to be SIGKILLed."""
    reason = detail.get("reason", "spindown")
    if detail.get("error"):
        return f"Shutdown ({reason}): {detail['error']}"
    killed = detail.get("killed") or []
    ended = f"SIGKILLed: {', '.join(map(str, killed))}" if killed else "everything exited in time"
    return (f"Shutdown ({reason}): {_fmt_ms(detail.get('duration_ms'))} of its {detail.get('budget_ms', 2000)} ms; "
            f"{ended}")


def _shutdown_marker(step: int, detail: dict[str, Any], x: float, y: int) -> str:
    title = f"{shutdown_text(detail)} (step {step})"
    if detail.get("logs"):
        title += "\n" + str(detail["logs"])[-2000:]
    killed = bool(detail.get("killed")) or bool(detail.get("error"))
    edge = f' stroke="{FAIL}" stroke-width="2"' if killed else ""
    return (f'<g class="marker" data-marker="shutdown" data-killed="{int(killed)}"><title>{_e(title)}</title>'
            f'<rect x="{x - 7:.1f}" y="{y + 8}" width="14" height="{LANE_H - 16}" rx="3" fill="{SHUTDOWN}"{edge}/>'
            "</g>")


def _fit(text: str, width: float, *, mono: bool = False, bold: bool = False) -> str:
    """``text``, or its start and end around an ellipsis, no wider than ``width`` in the 12px label font
    (the end of an instance id, its number, is what tells two apart)."""
    per_char = (8.0 if bold else 7.5) if mono else 8.5
    most = max(int(width // per_char), 5)
    if len(text) <= most:
        return text
    tail = (most - 1) // 2
    return text[: most - 1 - tail] + "\u2026" + text[len(text) - tail:]


def _label_width(text: str) -> float:
    """A width no less than that of ``text`` in the chart's 11px sans-serif (DejaVu Sans and the like)."""
    return 2 + sum(11.0 if c in "mwMW@%" else 9.0 if c.isupper() else 4.0 if c in "ijlI.,:;!|'" else 7.5
                   for c in text)


def _place_labels(ends: list[tuple[float, float, str, str]], points: list[tuple[float, float]],
                  top: int) -> tuple[list[str], float, float]:
    """A label for each series, right of its last point (x, y), moved up or down a row at a time until it
    covers no label placed before it and no point of any series (a leader line then joins it to its
    point); with the height and width the labels need."""
    placed: list[tuple[float, float, float, float]] = [(x - 4, y - 4, x + 4, y + 4) for x, y in points]
    labels = [""] * len(ends)
    height = width = 0.0
    for i in sorted(range(len(ends)), key=lambda i: (ends[i][0], ends[i][1])):
        x, y, text, colour = ends[i]
        x0, w = x + 6, _label_width(text)
        for shift in (0, *(sign * k * LABEL_ROW for k in range(1, 4 * len(ends) + 2) for sign in (-1, 1))):
            base = y + 4 + shift
            box = (x0, base - 11, x0 + w, base + 3.5)
            if box[1] >= top - 10 and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                                              for b in placed):
                break
        placed.append(box)
        height, width = max(height, box[3] + 6), max(width, box[2] + 10)
        leader = (f'<line class="label-leader" x1="{x + 3:.1f}" y1="{y:.1f}" x2="{x0 - 1:.1f}" y2="{base - 4:.1f}" '
                  f'stroke="{colour}"/>' if shift else "")
        labels[i] = (f'{leader}<text class="series-label" x="{x0:.1f}" y="{base:.1f}" fill="{colour}">'
                     f"{_e(text)}</text>")
    return labels, height, width


# -- the page -----------------------------------------------------------------------------------

_CSS = """
:root { --fg: #212121; --muted: #616161; --line: #e0e0e0; --bg: #fafafa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); padding-bottom: 44vh; }
header { padding: 16px 24px 8px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
.sub, .meta { color: var(--muted); margin: 2px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 8px 0 4px; padding: 0; list-style: none;
          color: var(--muted); font-size: 13px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.legend svg { flex: none; }
main { padding: 12px 24px; }
details.run { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 0 0 14px;
              padding: 10px 14px; }
details.run > summary { cursor: pointer; list-style-position: outside; }
details.run > summary .badge { display: inline-block; margin-left: 8px; padding: 0 7px; border-radius: 9px;
                               font-size: 12px; color: #fff; background: #2e7d32; vertical-align: 2px; }
details.run > summary .badge.bad { background: #d32f2f; }
details.run > summary .badge.warn { background: #fff3e0; color: #e65100; border: 1px solid #ffb74d; }
details.run > summary .badge.muted { background: #9e9e9e; }
.list-title { margin: 8px 0 0; color: var(--muted); }
section.verdict { margin: 10px 0 4px; padding: 8px 12px; border-radius: 6px; border-left: 6px solid #2e7d32;
                  background: #e8f5e9; }
section.verdict.different { border-left-color: #d32f2f; background: #ffebee; }
section.verdict.failed { border-left-color: #e65100; background: #fff3e0; }
section.verdict.cloned { border-left-color: #d32f2f; background: #ffebee; }
section.verdict h2 { font-size: 15px; }
section.shard { margin: 0 0 22px; padding-left: 10px; border-left: 4px solid #90a4ae; }
section.shard > h2.shard-title { font-size: 18px; margin: 0 0 2px; }
section.verdict p { margin: 4px 0; }
section.verdict .verdict-text { font-weight: 600; }
section.verdict ul { margin: 2px 0 4px; padding-left: 20px; }
section.verdict code { font-size: 12px; }
.scroll { overflow-x: auto; margin-top: 8px; border-top: 1px solid var(--line); padding-top: 4px; }
svg { display: block; }
svg text { font: 12px system-ui, "DejaVu Sans", sans-serif; fill: var(--fg); }
.lane-label { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.function-label { font-weight: 600; }
.function-bg { fill: #f1f3f6; }
.lifetime { fill-opacity: .13; stroke-opacity: .55; }
.frozen { fill: #78909c; fill-opacity: .35; }
.axis { stroke: #9e9e9e; }
.tick { stroke: #bdbdbd; stroke-dasharray: 2 4; }
.clock, .axis-label { fill: var(--muted); font-size: 11px; }
.marker-text { fill: #fff; font-size: 11px; font-weight: 600; text-anchor: middle; }
.redeploy-line { stroke-width: 2; stroke-dasharray: 5 3; }
.service-line { stroke: """ + SERVICE + """; stroke-width: 2; stroke-dasharray: 6 3; }
.service-text { fill: """ + SERVICE + """; font-size: 11px; font-weight: 600; }
.inv { cursor: pointer; outline: none; }
.inv:hover .inv-box, .inv:focus .inv-box { stroke: #000; stroke-width: 1.5; }
.inv.selected .inv-box { stroke: #000; stroke-width: 2.5; }
.inv.failed .inv-box { stroke: #7f0000; stroke-width: 1; }
.fail-mark { fill: #fff; font-weight: 700; text-anchor: middle; pointer-events: none; }
.read-arc { fill: none; stroke: """ + READ + """; stroke-width: 1.3; stroke-dasharray: 3 2; opacity: .8; }
.series-label { font-size: 11px; }
.label-leader { stroke-width: 1; stroke-dasharray: 2 2; opacity: .7; }
ul.failures { margin: 8px 0 0; padding-left: 20px; }
ul.failures a { color: #b71c1c; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
.none { color: var(--muted); font-style: italic; margin: 6px 0 0; }
#lsim-details { position: fixed; left: 0; right: 0; bottom: 0; max-height: 42vh; overflow: auto; background: #fff;
                border-top: 3px solid #455a64; box-shadow: 0 -2px 10px rgba(0,0,0,.12); padding: 10px 24px 14px; }
#lsim-details h3 { margin: 0 0 6px; font-size: 15px; }
#lsim-details .hint { color: var(--muted); margin: 0; }
#lsim-details dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 8px; }
#lsim-details dt { color: var(--muted); }
#lsim-details dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
#lsim-details .error { color: #b71c1c; font-weight: 600; }
#lsim-details pre { background: #263238; color: #eceff1; padding: 8px 10px; border-radius: 4px; overflow: auto;
                    max-height: 24vh; margin: 4px 0 0; font-size: 12px; white-space: pre-wrap; }
#lsim-close { float: right; border: 1px solid var(--line); background: #fff; border-radius: 4px; cursor: pointer; }
"""

_JS = r"""
(function () {
  "use strict";
  var body = document.body;
  window.addEventListener("error", function (e) {
    body.setAttribute("data-lsim-error", String(e.message || e));
  });
  var data = JSON.parse(document.getElementById("lsim-data").textContent);
  var panel = document.getElementById("lsim-details");
  var hint = panel.innerHTML;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function row(dl, name, value, cls) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(el("dt", null, name));
    dl.appendChild(el("dd", cls || null, value));
  }
  function bytes(n) {
    var units = ["B", "KB", "MB", "GB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  function close() {
    panel.innerHTML = hint;
    panel.removeAttribute("data-open");
    document.querySelectorAll(".inv.selected").forEach(function (n) { n.classList.remove("selected"); });
  }
  function show(runIndex, invIndex) {
    var run = data.runs[runIndex], inv = run && run.invocations[invIndex];
    if (!inv) return;
    document.querySelectorAll(".inv.selected").forEach(function (n) { n.classList.remove("selected"); });
    var box = document.querySelector('.inv[data-run="' + runIndex + '"][data-inv="' + invIndex + '"]');
    if (box) box.classList.add("selected");
    panel.innerHTML = "";
    var shut = el("button", null, "close");
    shut.id = "lsim-close";
    shut.addEventListener("click", close);
    panel.appendChild(shut);
    panel.appendChild(el("h3", null, (inv.error ? "Failed invocation " : "Invocation ") + inv.request_id));
    var dl = el("dl");
    row(dl, "run", run.name + (run.outcome ? " (test " + run.outcome + ")" : ""));
    row(dl, "function", inv["function"] + " (version " + inv.version + ")");
    row(dl, "instance", inv.instance);
    row(dl, "start", typeof inv.restore_ms === "number" ? "restored from the SnapStart snapshot in " +
      inv.restore_ms.toFixed(2) + " ms" : inv.cold_start ? "cold (Init ran first)" : "warm");
    row(dl, "initialization type", inv.init_type);
    row(dl, "tenant", inv.tenant);
    row(dl, "worker", inv.worker === null || inv.worker === undefined ? null : "worker process " + inv.worker);
    row(dl, "duration", typeof inv.duration_ms === "number" ? inv.duration_ms.toFixed(2) + " ms" : null);
    row(dl, "virtual time", typeof inv.t === "number" ? inv.t + " s" : null);
    row(dl, "/tmp used after", typeof inv.tmp_bytes === "number" ? bytes(inv.tmp_bytes) : null);
    row(dl, "error", inv.error, "error");
    row(dl, "message", inv.errorMessage, "error");
    (inv.tmp_reads_from || []).forEach(function (r) {
      row(dl, "read /tmp", r.path + " written by " + r.writer + (r.during ? " (during " + r.during + ")" : ""));
    });
    (inv.erofs || []).forEach(function (p) { row(dl, "read-only write", p, "error"); });
    panel.appendChild(dl);
    if (inv.logs) {
      panel.appendChild(el("div", null, "Logs (last lines)"));
      panel.appendChild(el("pre", "logs", inv.logs));
    } else if (inv.error) {
      panel.appendChild(el("p", "hint", "No logs in the trace for this invocation."));
    }
    panel.setAttribute("data-open", inv.request_id);
  }
  function activate(target) {
    var node = target && target.closest ? target.closest("[data-inv]") : null;
    if (!node) return false;
    show(Number(node.getAttribute("data-run")), Number(node.getAttribute("data-inv")));
    try { history.replaceState(null, "", "#inv=" + encodeURIComponent(node.getAttribute("data-rid"))); }
    catch (err) { /* a file: URL may refuse it */ }
    return true;
  }
  document.addEventListener("click", function (e) { if (activate(e.target)) e.preventDefault(); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") close();
    else if ((e.key === "Enter" || e.key === " ") && activate(e.target)) e.preventDefault();
  });
  function fromHash() {
    var m = /^#inv=(.+)$/.exec(location.hash);
    if (!m) return;
    var rid = decodeURIComponent(m[1]);
    var node = document.querySelector('.inv[data-rid="' + CSS.escape(rid) + '"]');
    if (node) {
      var details = node.closest("details");
      if (details) details.open = true;
      node.dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true}));
    }
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  body.setAttribute("data-lsim-ready", String(document.querySelectorAll("[data-lane]").length));
})();
"""


def _legend() -> str:
    def chip(svg: str) -> str:
        return f'<svg width="26" height="16" viewBox="0 0 26 16" aria-hidden="true">{svg}</svg>'

    items = [
        (chip(f'<rect x="2" y="3" width="10" height="10" fill="{VERSION_COLOURS[0]}"/>'
              f'<rect x="14" y="3" width="10" height="10" fill="{VERSION_COLOURS[1]}"/>'), "invocation, by version"),
        (chip(f'<rect x="8" y="3" width="10" height="10" fill="{FAIL}"/>'
              '<text x="13" y="12" font-size="10" fill="#fff" text-anchor="middle">!</text>'),
         "function error: the invocation returned an error (click)"),
        (chip(f'<rect x="8" y="2" width="10" height="4" fill="{INIT}"/>'
              f'<rect x="8" y="6" width="10" height="8" fill="{VERSION_COLOURS[0]}"/>'), "Init (cold start)"),
        (chip(f'<path d="M13,1 L20,8 L13,15 L6,8 Z" fill="{RESET}"/>'), "reset (timeout, crash, OOM)"),
        (chip(f'<path d="M7,2 L19,14 M19,2 L7,14" stroke="{FAIL}" stroke-width="3"/>'), "crash"),
        (chip(f'<rect x="6" y="3" width="14" height="10" rx="3" fill="{SHUTDOWN}"/>'),
         "Shutdown phase (extensions: the SHUTDOWN event); red edge: something was SIGKILLed"),
        (chip('<rect x="9" y="2" width="8" height="12" fill="#212121"/>'), "destroyed"),
        (chip(f'<line x1="13" y1="0" x2="13" y2="16" stroke="{VERSION_COLOURS[1]}" stroke-width="2" '
              'stroke-dasharray="4 2"/>'), "redeploy"),
        (chip('<path d="M7,3 L19,3 L13,14 Z" fill="#757575"/>'), "throttled / rejected"),
        (chip(f'<line x1="13" y1="0" x2="13" y2="16" stroke="{SERVICE}" stroke-width="2" stroke-dasharray="4 2"/>'),
         "service event"),
        (chip(f'<path d="M3,13 Q13,0 23,13" fill="none" stroke="{READ}" stroke-dasharray="3 2"/>'),
         "read of a /tmp file another invocation wrote"),
        *models.legend_items(chip),
    ]
    return '<ul class="legend">' + "".join(f"<li>{svg}<span>{_e(text)}</span></li>" for svg, text in items) + "</ul>"


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _counts_line(counts: dict[str, int]) -> str:
    parts = [_n(counts["instances"], "instance", "instances"), _n(counts["invocations"], "invocation", "invocations")]
    if counts["failed"]:
        parts.append(_n(counts["failed"], "function error", "function errors"))
    parts.append(_n(counts["cold_starts"], "cold start", "cold starts"))
    for key, one, many in (("resets", "reset", "resets"), ("crashes", "crash", "crashes"),
                           ("redeploys", "redeploy", "redeploys"), ("throttled", "throttled or rejected",
                                                                    "throttled or rejected"), *models.COUNTED):
        if counts.get(key):
            parts.append(_n(counts[key], one, many))
    return " \u00b7 ".join(parts)


def _badges(m: Model) -> str:
    """The test's outcome (from the pytest plugin's report), then its function errors, which a passing
    test may expect: a count, never the colour of a failure."""
    out = []
    outcome = m.run.outcome
    if outcome:
        out.append(f'<span class="badge {OUTCOME_CLASS.get(outcome, "muted")}" data-badge="outcome" '
                   f'title="the test {_e(outcome)}">{_e(outcome)}</span>')
    errors = m.counts["failed"]
    if errors:
        out.append(f'<span class="badge warn" data-badge="function-errors" title="invocations that returned an '
                   f'error (a test may expect them)">{_e(_n(errors, "function error", "function errors"))}</span>')
    elif not outcome and m.counts["invocations"]:
        out.append('<span class="badge good" data-badge="function-errors" title="no invocation returned an error">'
                   "no function errors</span>")
    return "".join(out)


def _needs_a_look(m: Model) -> bool:
    """Unfolded among many runs: a test that did not pass, or (without an outcome) function errors."""
    if m.run.outcome:
        return OUTCOME_CLASS.get(m.run.outcome) == "bad"
    return m.counts["failed"] > 0


def run_section(m: Model, index: int, open_: bool) -> str:
    """A run's folding section: its badges, counts, timeline, /tmp chart and function errors (``index``: its
    ``data-run``, its place in the page's list of runs)."""
    svg = _Svg(m, index)
    counts = m.counts
    outcome = f' data-outcome="{_e(m.run.outcome)}"' if m.run.outcome else ""
    out = [f'<details class="run" id="run-{index}" data-run="{index}"{outcome}'
           f'{" open" if open_ or _needs_a_look(m) else ""}>',
           f"<summary><h2 style=\"display:inline\">{_e(m.run.name)}</h2>{_badges(m)}</summary>",
           f'<p class="meta">{_e(_counts_line(counts))}</p>']
    if not m.run.events:
        out.append('<p class="none">This run has no trace events.</p></details>')
        return "".join(out)
    out.append('<div class="scroll">')
    out.append(svg.timeline())
    chart = svg.tmp_chart()
    out.append(chart)
    out.append("</div>")
    if not chart:
        out.append('<p class="none">No /tmp usage in this trace (it is recorded with Simulator(track_tmp=True), '
                   "as the pytest plugin does).</p>")
    failures = [inv for inv in m.invocations if inv["error"] is not None]
    if failures:
        out.append('<p class="list-title">Function errors (invocations that returned an error):</p>')
        out.append('<ul class="failures">')
        for inv in failures:
            text = f"{inv['error']}: {inv['errorMessage'] or ''}"
            text = text if len(text) <= 160 else text[:159] + "\u2026"
            out.append(f'<li><a href="#inv={_e(inv["request_id"])}" data-run="{index}" data-inv="{inv["index"]}" '
                       f'data-rid="{_e(inv["request_id"])}">{_e(inv["instance"])} \u00b7 '
                       f"{_e(_short(inv['request_id']))} \u00b7 {_e(text)}</a></li>")
        out.append("</ul>")
    out.append("</details>")
    return "".join(out)


def verdict_section(verdict: dict[str, Any]) -> str:
    """detect's verdict: what it found, the invocations that differ, those that failed in both runs."""
    word = VERDICT_WORD[verdict["verdict"]]
    n = verdict["events"]
    text = verdict["text"] or {
        "ok": f"OK: all {n} invocations succeed and give the same result warm and fresh.",
        "different": f"FAIL: {len(verdict['differences'])} invocation(s) give another result on a fresh instance.",
        "failed": f"FAIL: {len(verdict['failures'])} of {n} invocations returned an error in both runs.",
        "cloned": "FAIL: restored environments return what their one snapshot's Init made."}[
            verdict["verdict"]]
    out = [f'<section class="verdict {_e(verdict["verdict"])}" data-verdict="{_e(verdict["verdict"])}">',
           f'<h2>detect: <span class="verdict-word">{word}</span> \u00b7 {_e(verdict["handler"] or "")} '
           f'({_e(_n(n, "invocation", "invocations"))}, warm and fresh)</h2>']

    def outcome(o: Any) -> str:
        if not isinstance(o, dict):
            return "?"
        if o.get("ok", True):
            return "returned " + _clip(json.dumps(o.get("payload"), default=str))
        return _clip(f"{o.get('errorType')}: {o.get('errorMessage') or ''}")

    if verdict["differences"]:
        out.append(f'<p class="list-title">DIFFERENT warm and fresh ({len(verdict["differences"])}):</p><ul>')
        for d in verdict["differences"]:
            out.append(f'<li data-difference="{_e(d.get("index"))}">#{_e(d.get("index"))} event '
                       f'<code>{_e(_clip(json.dumps(d.get("event"), default=str)))}</code>: warm '
                       f'{_e(outcome(d.get("warm")))}; fresh {_e(outcome(d.get("fresh")))}</li>')
        out.append("</ul>")
    for c in verdict["clones"]:
        out.append(f'<p class="list-title" data-clone="{_e(c.get("indices"))}">CLONED: '
                   f'{_e(", ".join(f"#{i}" for i in c.get("indices") or ()))} on every restored environment: '
                   f'{_e(outcome((c.get("restored") or [None])[0]))}; each with its own Init: '
                   f'{_e("; ".join(outcome(o) for o in (c.get("initialised") or [])[:3]))}</p>')
    if verdict["failures"]:
        out.append(f'<p class="list-title">FAILED: returned an error in both runs ({len(verdict["failures"])}):</p>'
                   "<ul>")
        for f in verdict["failures"]:
            out.append(f'<li data-failure="{_e(f.get("index"))}">#{_e(f.get("index"))} event '
                       f'<code>{_e(_clip(json.dumps(f.get("event"), default=str)))}</code>: '
                       f'{_e(outcome(f.get("warm")))}</li>')
        out.append("</ul>")
    reads = verdict["cross_reads"]
    if reads:
        out.append(f'<p class="meta">{_e(_n(len(reads), "read", "reads"))} of a /tmp file another invocation '
                   "wrote (arcs in the timelines below).</p>")
    out.append(f'<p class="verdict-text">{_e(text)}</p></section>')
    return "".join(out)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _outcomes_line(models: list[Model]) -> str:
    """How the tests came out, in pytest's words ("2 passed, 1 failed"); empty without outcomes."""
    counts: dict[str, int] = {}
    for m in models:
        if m.run.outcome:
            counts[m.run.outcome] = counts.get(m.run.outcome, 0) + 1
    order = list(OUTCOME_CLASS)
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (order.index(kv[0])
                                                                                 if kv[0] in order else 99)))


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(trace: Any, *, title: str = "lambdasim trace") -> str:
    """The HTML page for ``trace``.

    ``trace`` is a list of trace events (``Simulator.trace``, as TraceEvents or their
    ``to_dict()``), the pytest plugin's report (``{"summary": ..., "tests": {nodeid: {"trace":
    [...]}}}``), or ``lambdasim detect --json``'s report (``{"runs": {name: {"trace": [...]}}}``).
    """
    runs, summary = runs_of(trace)
    verdict = detect_verdict(trace)
    models = [model_of(run) for run in runs]
    open_all = len(models) <= OPEN_RUNS
    sections = "".join(run_section(m, i, open_all) for i, m in enumerate(models))
    if not models:
        sections = '<p class="none">No traces in this report.</p>'
    return page(title, sub_line(models, summary), verdict_section(verdict) if verdict else "", sections,
                [run_data(m) for m in models])


def sub_line(models: list[Model], summary: dict[str, Any] | None) -> str:
    """The line under a title: the plugin's test count, the tests' outcomes, the runs and their counts."""
    totals = {key: sum(m.counts.get(key, 0) for m in models) for key in
              ("instances", "invocations", "failed", "cold_starts", "resets", "crashes", "redeploys", "throttled")}
    sub = f"{len(models)} run{'s' * (len(models) != 1)} \u00b7 {_counts_line(totals)}"
    outcomes = _outcomes_line(models)
    if outcomes:
        sub = f"{outcomes} \u00b7 " + sub
    if summary and isinstance(summary.get("tests"), int):
        sub = f"{summary['tests']} tests \u00b7 " + sub
    return sub


def run_data(m: Model) -> dict[str, Any]:
    """What the page's script knows of a run (its ``data-run`` index is its place in the page's list)."""
    return {"name": m.run.name, "outcome": m.run.outcome, "invocations": m.invocations}


def page(title: str, sub: str, header: str, sections: str, runs: list[dict[str, Any]]) -> str:
    """The whole HTML page: ``header`` (HTML) after the legend, ``sections`` (HTML) holding the runs whose
    :func:`run_data` ``runs`` lists, in their ``data-run`` order."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f'<body data-runs="{len(runs)}"><header><h1>{_e(title)}</h1><p class="sub">{_e(sub)}</p>{_legend()}'
        f"{header}</header><main>{sections}</main>"
        '<aside id="lsim-details" aria-live="polite"><p class="hint">Click an invocation (or a failure in a list) '
        "to see its details: failed ones show their error and last log lines. Hover for a summary.</p></aside>"
        f'<script type="application/json" id="lsim-data">{_script_json({"runs": runs})}</script>'
        f"<script>{_JS}</script></body></html>\n"
    )


def read_trace(path: str) -> Any:
    """The JSON of the trace file ``path``; LambdaSimError naming it when it cannot be read or is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise LambdaSimError(f"{path}: cannot read it: {e.strerror}") from None
    except ValueError as e:  # JSONDecodeError, or text that is not UTF-8
        raise LambdaSimError(f"{path}: not a JSON trace: {e}") from None


def write_page(page_text: str, out: str) -> None:
    """Write the page to ``out``; LambdaSimError naming it when it cannot be written."""
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(page_text)
    except OSError as e:
        raise LambdaSimError(f"{out}: cannot write it: {e.strerror}") from None


def write_report(trace_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> None:
    """Read a trace JSON file (a list of events, the pytest plugin's report or ``lambdasim detect --json``'s)
    and write its HTML report. Raises LambdaSimError naming the file that cannot be read or written."""
    source = os.fspath(trace_path)
    trace = read_trace(source)
    try:
        page_text = render(trace, title=f"lambdasim trace: {os.path.basename(source)}")
    except (TypeError, ValueError) as e:
        raise LambdaSimError(f"{source}: {e}") from None
    write_page(page_text, os.fspath(out_path))
