"""The runner of many scenario files (``lambdasim run``): validates every file first, runs
each in a Simulator of its own with a progress display, prints each result once (as it
finishes) and the totals, writes JUnit XML, and sets the exit status (0 all passed, 1 any
failed, 2 a file is not valid or the sandbox cannot start)."""

from __future__ import annotations

import datetime
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

from lambdasim._errors import LambdaSimError, SandboxUnavailable
from lambdasim._scenario import ScenarioError, ScenarioFailure, ScenarioResult, load_scenario, run_file, step_where
from lambdasim._simulator import Simulator

_WORDS = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR", "invalid": "INVALID", "skipped": "NOT RUN"}
_STYLES = {"passed": "green", "failed": "red", "error": "red", "invalid": "red", "skipped": "yellow"}
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class _Outcome:
    """What became of one scenario file."""

    file: str
    name: str
    status: str = "skipped"  # passed, failed, error, invalid, skipped (not run)
    steps_run: int = 0
    steps_total: int = 0
    duration_s: float = 0.0
    message: str = ""  # why it did not pass; the first line starts with file:line
    kind: str = ""  # the exception's type
    line: int | None = None
    step_lines: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return self.message.split("\n", 1)[0]

    def steps_text(self) -> str:
        if self.status == "passed":
            return f"{self.steps_run} step{'s' if self.steps_run != 1 else ''}"
        if self.status in ("failed", "error") and self.steps_run:
            return f"step {self.steps_run} of {self.steps_total}"
        return f"{self.steps_total} steps" if self.steps_total else "no steps run"

    def line_text(self) -> str:
        named = f" ({self.name})" if self.name != os.path.splitext(os.path.basename(self.file))[0] else ""
        timing = f", {self.duration_s:.2f}s" if self.status not in ("invalid", "skipped") else ""
        return f"{_WORDS[self.status]:<8} {self.file}{named}: {self.steps_text()}{timing}"


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Display:
    """A rich progress bar on a terminal, plain lines elsewhere; each scenario's result is one line
(with why it did not pass, indented), written once, as the scenario finishes; with --quiet only
those that did not pass."""

    def __init__(self, stream: TextIO, total: int, quiet: bool) -> None:
        self.stream = stream
        self.total = total
        self.quiet = quiet
        self.console: Any = None
        self._progress: Any = None
        self._task: Any = None
        self.shown: set[int] = set()  # the outcomes already written, by id
        if _isatty(stream):
            try:
                from rich.console import Console
            except ImportError:  # pragma: no cover - rich is a dependency; plain lines will do
                return
            self.console = Console(file=stream, highlight=False)

    def __enter__(self) -> _Display:
        if self.console is not None and not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                      transient=True)
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def write(self, text: str, style: str | None = None) -> None:
        """One line (or several) of output, coloured on a terminal."""
        if self.console is not None:
            from rich.text import Text

            self.console.print(Text(text, style=style or ""), soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def starting(self, index: int, outcome: _Outcome) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"running {outcome.file}")

    def finished(self, index: int, outcome: _Outcome) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
        if not self.quiet:
            self.result(outcome, f"[{index}/{self.total}] ")
        elif outcome.status != "passed":
            self.result(outcome)

    def result(self, outcome: _Outcome, prefix: str = "") -> None:
        """The line of one scenario's result, and why it did not pass; each result is shown once."""
        self.write(prefix + outcome.line_text(), _STYLES[outcome.status])
        if outcome.message and outcome.status != "skipped":
            self.write("\n".join("    " + line for line in outcome.message.splitlines()))
        self.shown.add(id(outcome))


def _error_message(e: BaseException) -> tuple[str, int | None]:
    """``file:line: step N (kind): Type: message`` for an error that is not a failed expectation."""
    text = f"{type(e).__name__}: {e}"
    where = step_where(e)
    return (f"{where}: {text}", where.line) if where is not None else (text, None)


def _run_one(path: str, outcome: _Outcome, simulator_factory: Callable[..., Simulator]) -> None:
    started = time.perf_counter()
    result: ScenarioResult | None = None
    try:
        result = run_file(path, simulator_factory, display=path)
        outcome.status = "passed"
    except ScenarioFailure as e:
        outcome.status, outcome.message, outcome.line, outcome.kind = "failed", str(e), e.line, "ScenarioFailure"
        result = e.result
    except ScenarioError as e:  # the Simulator rejected a setting
        outcome.status, outcome.message, outcome.line, outcome.kind = "invalid", str(e), e.line, "ScenarioError"
    except SandboxUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - an error in a step: report it, run the other scenarios
        outcome.status, outcome.kind = "error", type(e).__name__
        outcome.message, outcome.line = _error_message(e)
    finally:
        outcome.duration_s = time.perf_counter() - started
    if result is not None:
        outcome.steps_run = len(result.steps)
        outcome.step_lines = [
            f"step {s.index + 1} {s.kind} (line {s.line}): {s.outcome} in {s.duration_s:.3f}s"
            + (f": {s.summary or s.message}" if s.summary or s.message else "")
            for s in result.steps]


def _tally(outcomes: Sequence[_Outcome], seconds: float) -> str:
    count = {status: sum(1 for o in outcomes if o.status == status) for status in _WORDS}
    parts = [f"{count['passed']} passed", f"{count['failed']} failed"]
    parts += [f"{count[s]} {w}" for s, w in (("error", "error"), ("invalid", "invalid"), ("skipped", "not run"))
              if count[s]]
    return f"{', '.join(parts)} in {seconds:.2f}s"


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _write_junit(path: str, outcomes: Sequence[_Outcome], seconds: float) -> None:
    failures = sum(1 for o in outcomes if o.status == "failed")
    errors = sum(1 for o in outcomes if o.status in ("error", "invalid"))
    skipped = sum(1 for o in outcomes if o.status == "skipped")
    counts = {"tests": str(len(outcomes)), "failures": str(failures), "errors": str(errors),
              "skipped": str(skipped), "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", {"name": "lambdasim", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "lambdasim", **counts,
                                              "timestamp": datetime.datetime.now().isoformat(timespec="seconds")})
    for o in outcomes:
        classname = os.path.splitext(os.path.normpath(o.file))[0].lstrip("./").replace(os.sep, ".")
        case = ET.SubElement(suite, "testcase", classname=classname, name=_xml_text(o.name), file=o.file,
                             time=f"{o.duration_s:.3f}")
        if o.line is not None:
            case.set("line", str(o.line))
        if o.status == "failed":
            tag = "failure"
        elif o.status in ("error", "invalid"):
            tag = "error"
        elif o.status == "skipped":
            tag = "skipped"
        else:
            tag = ""
        if tag:
            detail = ET.SubElement(case, tag, message=_xml_text(o.headline))
            if o.kind:
                detail.set("type", o.kind)
            if o.message and o.message != o.headline:
                detail.text = _xml_text(o.message)
        if o.step_lines:
            ET.SubElement(case, "system-out").text = _xml_text("\n".join(o.step_lines))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def with_services(services: Mapping[str, Any],
                  simulator: Callable[..., Simulator] = Simulator) -> Callable[..., Simulator]:
    """A simulator factory that also starts ``services`` (name -> provider or settings).

    A scenario's own ``simulator: services`` setting wins for a service it lists; a list
    of names there means those services with their default settings.
    """
    if not services:
        return simulator

    def factory(**settings: Any) -> Simulator:
        merged: dict[str, Any] = dict(services)
        own = settings.get("services")
        if own is not None:
            merged.update(own if isinstance(own, Mapping) else {str(name): {} for name in own})
        return simulator(**{**settings, "services": merged})

    return factory


def run_files(paths: Sequence[str], *, junit_xml: str | None = None, quiet: bool = False,
              services: Mapping[str, Any] | None = None, network: str | None = None,
              package: str | None = None) -> int:
    """Run the scenario files ``paths``, print each result and the totals, optionally write JUnit XML.

    ``services`` (name -> provider or settings) are started in every scenario's Simulator
    besides its own (see :func:`with_services`); ``network``, given, replaces each scenario's
    ``simulator: network`` (``package`` its ``simulator: package``). Returns the exit status of ``lambdasim run``:
    0 when all pass, 1 when any fails, 2 when a file is not valid or the sandbox cannot start.
    """
    factory = with_services(services or {})
    replaced = {k: v for k, v in (("network", network), ("package", package)) if v is not None}
    if replaced:
        scenario_factory = factory

        def factory(**settings: Any) -> Simulator:
            return scenario_factory(**{**settings, **replaced})

    started = time.perf_counter()
    out = sys.stdout
    outcomes: list[_Outcome] = []
    # Every file is validated before anything runs: a typo fails in a second, not after the others ran.
    for path in paths:
        outcome = _Outcome(path, os.path.splitext(os.path.basename(path))[0])
        try:
            scenario = load_scenario(path, display=path)
        except ScenarioError as e:
            outcome.status, outcome.message, outcome.line, outcome.kind = "invalid", str(e), e.line, "ScenarioError"
        else:
            outcome.name, outcome.steps_total = scenario.name, len(scenario.steps)
            outcome.line = scenario.steps[0].line if scenario.steps else None
        outcomes.append(outcome)
    invalid = [o for o in outcomes if o.status == "invalid"]
    display = _Display(out, len(outcomes), quiet)
    fatal: str | None = None
    if invalid:
        for o in outcomes:
            if o.status == "skipped":
                o.message = f"not run: {len(invalid)} scenario file(s) are not valid"
    else:
        with display:
            for index, outcome in enumerate(outcomes, 1):
                display.starting(index, outcome)
                try:
                    _run_one(outcome.file, outcome, factory)
                except SandboxUnavailable as e:
                    fatal = str(e)
                    outcome.status, outcome.kind = "error", "SandboxUnavailable"
                    outcome.message = f"{outcome.file}: {e}"
                    for rest in outcomes[index:]:
                        rest.message = "not run: the sandbox is unavailable"
                    display.finished(index, outcome)
                    break
                display.finished(index, outcome)
    seconds = time.perf_counter() - started

    failing = any(o.status != "passed" for o in outcomes)
    # What did not run (every file when one is not valid, the rest after the sandbox failed) has not been
    # shown yet; each result is written once, then the totals.
    for o in outcomes:
        if id(o) not in display.shown and not (quiet and o.status == "passed"):
            display.result(o)
    if not quiet and display.shown:
        display.write("")
    display.write(_tally(outcomes, seconds), "bold red" if failing else "bold green")
    if fatal is not None:
        sys.stderr.write(f"lambdasim: error: {fatal}\n")
    if junit_xml:
        try:
            _write_junit(junit_xml, outcomes, seconds)
        except OSError as e:
            raise LambdaSimError(f"--junit-xml {junit_xml}: cannot write it: {e.strerror or e}") from None
    if fatal is not None or any(o.status == "invalid" for o in outcomes):
        return 2
    return 1 if failing else 0
