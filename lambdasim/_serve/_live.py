"""What ``lambdasim serve`` shows while it runs: per function, its instances (busy and idle), cold starts,
warm reuse, errors and ``/tmp`` use, then the requests answered and the last errors; drawn with rich's
``Live`` on a terminal, else one access-log line per request.

The figures come from the simulator's trace (read from where the last look ended, so each refresh costs the
new events only) and its live instances: the same state every other front end reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from lambdasim._report import fmt_bytes

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lambdasim._serve._http import Request, Response
    from lambdasim._serve._served import Served
    from lambdasim._simulator import Simulator


@dataclasses.dataclass
class FunctionFigures:
    cold_starts: int = 0
    warm: int = 0
    errors: int = 0
    throttled: int = 0
    last_error: str = ""


class Figures:
    """Counts per function, from the simulator's trace."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.functions: dict[str, FunctionFigures] = {}
        self._seen = 0

    def update(self) -> dict[str, FunctionFigures]:
        trace = self.sim.trace
        new = trace[self._seen:len(trace)]
        self._seen += len(new)
        for event in new:
            figures = self.functions.setdefault(event.function, FunctionFigures())
            if event.kind == "invoke":
                detail = event.detail
                if detail.get("cold_start"):
                    figures.cold_starts += 1
                else:
                    figures.warm += 1
                if detail.get("error"):
                    figures.errors += 1
                    figures.last_error = str(detail["error"])
            elif event.kind == "throttled":
                figures.throttled += 1
        return self.functions


def _tmp_bytes(instance: Any) -> int | None:
    with contextlib.suppress(Exception):  # an instance that ends while we look
        return int(instance.tmp.usage_bytes())
    return None


def render(sim: Simulator, served: Served, figures: Figures, started: float) -> RenderableType:
    """The view, as a rich renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counts = figures.update()
    table = Table(title=f"lambdasim serve  {served.url}", title_justify="left", expand=False)
    for column in ("function", "instances", "busy", "cold starts", "warm", "errors", "/tmp used", "last error"):
        table.add_column(column, justify="left" if column in ("function", "last error") else "right")
    for name, fn in list(sim.functions.items()):
        instances = fn.instances
        busy = sum(1 for i in instances if i.state == "busy")
        used = [b for b in (_tmp_bytes(i) for i in instances) if b is not None]
        f = counts.get(fn.name, FunctionFigures())
        table.add_row(name, str(len(instances)), str(busy), str(f.cold_starts), str(f.warm),
                      str(f.errors + f.throttled), fmt_bytes(sum(used)) if used else "-", f.last_error)
    c = served.counters
    with c.lock:
        requests, statuses, errors = c.requests, dict(c.by_status), list(c.errors)
    elapsed = max(time.monotonic() - started, 1e-9)
    summary = Text(f"{requests} requests ({requests / elapsed:.1f}/s); "
                   + ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items())))
    parts: list[RenderableType] = [table, summary]
    if errors:
        parts.append(Text("last errors:\n" + "\n".join(f"  {e}" for e in errors), style="red"))
    parts.append(Text("Ctrl-C stops.", style="dim"))
    return Group(*parts)


def access_line(request: Request, response: Response, seconds: float) -> str:
    """One request as the access log prints it."""
    error = next((v for k, v in response.headers if k.lower() == "x-amz-function-error"), "")
    return (f"{time.strftime('%H:%M:%S')} {request.method} {request.path} {response.status}"
            f"{' ' + error if error else ''} {seconds * 1000:.1f} ms\n")


def run(sim: Simulator, served: Served, out: TextIO, live: bool, stop: threading.Event) -> None:
    """Show the view (``live``) or the access log on ``out`` until ``stop`` is set."""
    started = time.monotonic()
    if not live:
        lock = threading.Lock()

        def log(request: Request, response: Response, seconds: float) -> None:
            with lock:
                out.write(access_line(request, response, seconds))
                out.flush()

        served.counters.listeners.append(log)
        try:
            stop.wait()
        finally:
            served.counters.listeners.remove(log)
        return
    from rich.console import Console
    from rich.live import Live

    figures = Figures(sim)
    console = Console(file=out)
    with Live(render(sim, served, figures, started), console=console, refresh_per_second=4,
              transient=False) as view:
        while not stop.wait(0.25):
            view.update(render(sim, served, figures, started))
