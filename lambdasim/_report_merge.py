"""Several traces in one HTML report: ``lambdasim report shard-1.json shard-2.json -o report.html``.

A suite sharded over pytest-split jobs (or CI matrix jobs of any kind) leaves one
``--lambda-sim-report`` file per job. Each file becomes a *shard* of the page, a section
labelled with its file name that holds its own runs: nothing is merged by name, so a test
(or an instance id) that two shards both have is drawn twice, once in each, never as one lane.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lambdasim import _report as report
from lambdasim._errors import LambdaSimError


@dataclass
class Shard:
    """One trace file of a merged report: its label, its runs, and what its file says of them."""

    label: str
    runs: list[report.Run]
    summary: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def shard_labels(paths: Sequence[str]) -> list[str]:
    """Each path's label: its file name; the path itself where two files have one name (CI artifacts in
    folders of their own), and ``(2)``, ``(3)``... for a file given again."""
    names = [os.path.basename(p) for p in paths]
    labels = [name if names.count(name) == 1 else os.path.normpath(p) for name, p in zip(names, paths, strict=True)]
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def shard_of(label: str, trace: Any) -> Shard:
    """The shard of one trace (any kind :func:`lambdasim._report.render` takes); TypeError or ValueError
    when it is not a trace."""
    runs, summary = report.runs_of(trace)
    return Shard(label, runs, summary, report.detect_verdict(trace))


def render_shards(shards: Sequence[Shard], *, title: str = "lambdasim report") -> str:
    """The HTML page of several shards: a section per shard, in the order given, each with its own
    line of counts (and detect's verdict, for a ``detect --json`` file) and its runs."""
    built = [(shard, [report.model_of(run) for run in shard.runs]) for shard in shards]
    every = [m for _, ms in built for m in ms]
    open_all = len(every) <= report.OPEN_RUNS
    sections: list[str] = []
    data: list[dict[str, Any]] = []
    for k, (shard, ms) in enumerate(built):
        out = [f'<section class="shard" id="shard-{k}" data-shard="{_e(shard.label)}">'
               f'<h2 class="shard-title">{_e(shard.label)}</h2>'
               f'<p class="meta">{_e(report.sub_line(ms, shard.summary))}</p>']
        if shard.verdict:
            out.append(report.verdict_section(shard.verdict))
        for m in ms:
            out.append(report.run_section(m, len(data), open_all))
            # The details panel names the run with its shard: two shards may hold runs of one name.
            data.append({**report.run_data(m), "name": f"{shard.label} \u00b7 {m.run.name}", "shard": shard.label})
        if not ms:
            out.append('<p class="none">No traces in this file.</p>')
        sections.append("".join(out) + "</section>")
    tests = [s.summary["tests"] for s in shards if s.summary and isinstance(s.summary.get("tests"), int)]
    sub = report.sub_line(every, {"tests": sum(tests)} if tests else None)
    return report.page(title, f"{len(shards)} shards \u00b7 {sub}", "", "".join(sections), data)


def write_merged_report(trace_paths: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str]) -> None:
    """Read several trace JSON files and write one HTML report of them, a shard per file. Raises
    LambdaSimError naming the file that cannot be read, is not a trace, or cannot be written."""
    sources = [os.fspath(p) for p in trace_paths]
    shards = []
    for source, label in zip(sources, shard_labels(sources), strict=True):
        trace = report.read_trace(source)
        try:
            shards.append(shard_of(label, trace))
        except (TypeError, ValueError) as e:
            raise LambdaSimError(f"{source}: {e}") from None
    report.write_page(render_shards(shards, title=f"lambdasim report: {len(shards)} traces"), os.fspath(out_path))
