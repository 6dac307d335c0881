"""The lambdasim command line: invoke a handler, run scenario files, search a function's
lifecycles for a broken invariant (chaos), compare warm and fresh instances (detect), and
write the HTML report of a trace."""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any, TextIO

from lambdasim._errors import LambdaSimError, SandboxUnavailable
from lambdasim._simulator import Simulator
from lambdasim._source import env_argument, read_json_argument
from lambdasim.examples import HELLO_DIR


def _event(text: str) -> Any:
    return read_json_argument(text, "--event")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambdasim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    inv = sub.add_parser("invoke", help="invoke a handler once in a simulated Lambda instance",
                         description="Invoke a handler once, like `sam local invoke`: the response JSON goes to "
                                     "stdout, the function's logs to stderr. Without a handler, runs the bundled "
                                     "example.")
    inv.add_argument("handler", nargs="?", help="module.function, e.g. app.main.handler (default: bundled example)")
    inv.add_argument("--code-dir", help="the folder with the handler's code (default: bundled example)")
    inv.add_argument("--event", "-e", default="{}", help="the event as JSON, or @FILE (default: {})")
    inv.add_argument("--name", help="function name (default: from the handler)")
    inv.add_argument("--memory", type=int, default=128, help="memory in MB (default: 128)")
    inv.add_argument("--timeout", type=float, default=3.0, help="timeout in seconds (default: 3)")
    inv.add_argument("--ephemeral-storage", type=int, default=512, help="/tmp size in MB (default: 512)")
    inv.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable")
    inv.add_argument("--layer", action="append", default=[], metavar="DIR", help="a layer folder, mounted at /opt")
    inv.add_argument("--sandbox", default="auto", help="sandbox: auto or namespace (default: auto)")
    inv.add_argument("--quiet", "-q", action="store_true", help="do not print the logs")

    run = sub.add_parser("run", help="run YAML scenario files",
                         description="Run scenario files (format: scenarios/README.md), each in a Simulator of its "
                                     "own, and print a summary. Exit status: 0 when all pass, 1 when any fails, 2 "
                                     "when a file is not valid or the sandbox cannot start.")
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="a scenario file (.yaml)")
    run.add_argument("--junit-xml", metavar="PATH", help="also write the results as JUnit XML")
    run.add_argument("--quiet", "-q", action="store_true", help="print only failures and the totals")

    chaos = sub.add_parser(
        "chaos", help="search random lifecycles for an invocation that breaks an invariant",
        description="Drive one function through random sequences of invocations, concurrent bursts, scale-downs, "
                    "idle timeouts, crashes, redeploys and service faults (Hypothesis stateful testing), check the "
                    "invariants after every invocation, and write the shortest failing sequence found as a "
                    "scenario file. Exit status: 0 when none is found, 1 when one is, 2 on a usage error.",
        epilog="An --invariant expression is your own Python code: it runs in this process, unsandboxed, with inv "
               "(the Invocation), payload and error bound, like an assertion in a test.")
    what = chaos.add_argument_group("the function (one of)")
    what.add_argument("--handler", help="module.function, with --code-dir")
    what.add_argument("--code-dir", help="the folder with the handler's code (default: .)")
    what.add_argument("--template", metavar="T.yaml", help="an AWS SAM template or serverless.yml, with --function")
    what.add_argument("--function", metavar="F", help="the function's logical ID (SAM) or key (Serverless)")
    chaos.add_argument("--name", help="function name with --handler (default: from the handler)")
    chaos.add_argument("--memory", type=int, help="memory in MB")
    chaos.add_argument("--timeout", type=float, help="timeout in seconds")
    chaos.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable")
    events = chaos.add_mutually_exclusive_group()
    events.add_argument("--events", metavar="FILE.json", help="a JSON list of events to draw from")
    events.add_argument("--event", action="append", metavar="JSON",
                        help="an event as JSON or @FILE; repeat for more (default: {})")
    chaos.add_argument("--invariant", action="append", metavar="no-error|EXPR",
                       help="no-error (the default), or a Python expression over inv, payload and error that must "
                            "be true after every invocation; repeat for more")
    chaos.add_argument("--seed", type=int, default=0, help="random seed: for a function that behaves the same "
                                                           "each time, the same seed finds the same sequence "
                                                           "(default: 0)")
    chaos.add_argument("--examples", type=int, default=25, help="sequences to try (default: 25)")
    chaos.add_argument("--steps", type=int, default=8, help="most steps per sequence (default: 8)")
    chaos.add_argument("--concurrency", type=int, default=3,
                       help="most invocations in flight in one burst; 1: invocations one at a time (default: 3)")
    chaos.add_argument("--shrink-runs", type=int, default=100,
                       help="most runs spent shrinking a failing sequence; each run starts a Simulator "
                            "(default: 100)")
    chaos.add_argument("--out", "-o", metavar="FILE.yaml", help="where to write a failing sequence "
                                                              "(default: chaos-failure.yaml)")
    chaos.add_argument("--services", metavar="redis,aws", help="backing services to run, and to fault")
    chaos.add_argument("--sandbox", default="auto", help="sandbox: auto or namespace (default: auto)")
    chaos.add_argument("--no-verify", action="store_true", help="do not re-run the written scenario")

    report = sub.add_parser("report", help="write the HTML report of a trace",
                            description="Write the HTML report (a timeline per instance) of a trace JSON file: "
                                        "pytest --lambda-sim-report's, lambdasim detect --json's, or a list of "
                                        "events.")
    report.add_argument("trace", metavar="TRACE.json", help="the trace JSON file")
    report.add_argument("--output", "-o", metavar="OUT.html", help="the HTML file (default: TRACE.html)")

    # `detect` takes its options from lambdasim._detect (see _detect below); listed here for --help.
    sub.add_parser("detect", help="compare warm and fresh instances: find results that depend on warm state "
                                  "(lambdasim detect --help)", add_help=False)
    return parser


def _invoke(args: argparse.Namespace) -> int:
    handler = args.handler or "app.handler"
    code_dir = args.code_dir or (HELLO_DIR if args.handler is None else ".")
    event = _event(args.event)
    with Simulator(sandbox=args.sandbox) as sim:
        fn = sim.deploy(handler, code_dir=code_dir, name=args.name, memory_mb=args.memory, timeout_s=args.timeout,
                        ephemeral_storage_mb=args.ephemeral_storage, environment=env_argument(args.env),
                        layers=args.layer)
        inv = fn.invoke(event)
    if not args.quiet:
        sys.stderr.write(inv.logs)
    if inv.error is not None:
        sys.stdout.write(json.dumps(inv.error) + "\n")
        return 1
    raw = inv.raw_payload or b"null"
    sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
    return 0


# -- lambdasim run ---------------------------------------------------------------------------

_WORDS = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR", "invalid": "INVALID", "skipped": "NOT RUN"}
_STYLES = {"passed": "green", "failed": "red", "error": "red", "invalid": "red", "skipped": "yellow"}
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOTE = re.compile(r"^in (?P<where>.+?:(?P<line>\d+): step \d+ \([^)]*\))$")


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
    """A rich progress bar on a terminal; plain lines (or nothing, with --quiet) elsewhere."""

    def __init__(self, stream: TextIO, total: int, quiet: bool) -> None:
        self.stream = stream
        self.total = total
        self.quiet = quiet
        self.console: Any = None
        self._progress: Any = None
        self._task: Any = None
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
            self.write(f"[{index}/{self.total}] {outcome.line_text()}", _STYLES[outcome.status])


def _error_message(e: BaseException) -> tuple[str, int | None]:
    """``file:line: step N (kind): Type: message`` for an error that is not a failed expectation."""
    text = f"{type(e).__name__}: {e}"
    for note in getattr(e, "__notes__", ()):
        match = _NOTE.match(str(note))
        if match:
            return f"{match['where']}: {text}", int(match["line"])
    return text, None


def _run_one(path: str, outcome: _Outcome) -> None:
    from lambdasim._scenario import ScenarioError, ScenarioFailure, ScenarioResult, run_file

    started = time.perf_counter()
    result: ScenarioResult | None = None
    try:
        result = run_file(path, display=path)
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


def _run(args: argparse.Namespace) -> int:
    from lambdasim._scenario import ScenarioError, load_scenario

    started = time.perf_counter()
    out = sys.stdout
    outcomes: list[_Outcome] = []
    # Every file is validated before anything runs: a typo fails in a second, not after the others ran.
    for path in args.scenarios:
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
    display = _Display(out, len(outcomes), args.quiet)
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
                    _run_one(outcome.file, outcome)
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
    if not args.quiet:
        display.write("")
        display.write("summary", "bold")
    for o in outcomes:
        if args.quiet and o.status == "passed":
            continue
        display.write(o.line_text(), _STYLES[o.status])
        if o.message and o.status != "skipped":
            display.write("\n".join("    " + line for line in o.message.splitlines()))
    display.write(_tally(outcomes, seconds), "bold red" if failing else "bold green")
    if fatal is not None:
        sys.stderr.write(f"lambdasim: error: {fatal}\n")
    if args.junit_xml:
        try:
            _write_junit(args.junit_xml, outcomes, seconds)
        except OSError as e:
            raise LambdaSimError(f"--junit-xml {args.junit_xml}: cannot write it: {e.strerror or e}") from None
    if fatal is not None or any(o.status == "invalid" for o in outcomes):
        return 2
    return 1 if failing else 0


class _Unavailable(LambdaSimError):
    """A subcommand whose module is not part of this build."""


def _optional(module: str, attr: str, command: str) -> tuple[ModuleType, Callable[..., Any]]:
    """``module`` and its ``attr``, imported now; _Unavailable when this build does not have them."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise _Unavailable(f"{command} needs the package {e.name}, which is not installed: {e}") from None
        raise _Unavailable(f"{command} is not available in this build (there is no {module})") from None
    func = getattr(mod, attr, None)
    if not callable(func):
        raise _Unavailable(f"{command} is not available in this build ({module} has no {attr}())")
    return mod, func


def _report(args: argparse.Namespace) -> int:
    _, write_report = _optional("lambdasim._report", "write_report", "lambdasim report")
    output = args.output or os.path.splitext(args.trace)[0] + ".html"
    try:
        write_report(args.trace, output)
    except OSError as e:
        raise LambdaSimError(f"{e.filename or args.trace}: {e.strerror or e}") from None
    except ValueError as e:  # a trace that is not valid JSON, or not a trace
        raise LambdaSimError(f"{args.trace}: {e}") from None
    sys.stdout.write(f"report written to {output}\n")
    return 0


def _detect(rest: Sequence[str]) -> int:
    """``lambdasim detect ...``: options are lambdasim._detect's.

    When the module defines ``add_arguments(parser)``, the arguments are parsed with it and
    ``run_detect`` gets that namespace; otherwise it gets ``Namespace(argv=[...])``. Either way
    the namespace also carries ``command="detect"`` and ``argv``. An int returned is the exit
    status (None: 0).
    """
    module, run_detect = _optional("lambdasim._detect", "run_detect", "lambdasim detect")
    add_arguments = getattr(module, "add_arguments", None)
    if callable(add_arguments):
        parser = argparse.ArgumentParser(prog="lambdasim detect", description=module.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(parser)
        namespace = parser.parse_args(list(rest))
    else:
        namespace = argparse.Namespace()
    namespace.command = "detect"
    namespace.argv = list(rest)
    status = run_detect(namespace)
    return status if isinstance(status, int) else 0


def _chaos(args: argparse.Namespace) -> int:
    try:
        from lambdasim._chaos import chaos_main
    except ModuleNotFoundError as e:
        if e.name in ("hypothesis", "hypothesis.stateful"):
            raise LambdaSimError("lambdasim chaos needs Hypothesis: pip install 'lambdasim[chaos]'") from None
        raise
    return chaos_main(args, sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["detect"]:
            return _detect(argv[1:])
        args = _parser().parse_args(argv)
        if args.command == "invoke":
            return _invoke(args)
        if args.command == "run":
            return _run(args)
        if args.command == "chaos":
            return _chaos(args)
        if args.command == "report":
            return _report(args)
    except LambdaSimError as e:
        sys.stderr.write(f"lambdasim: error: {e}\n")
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
