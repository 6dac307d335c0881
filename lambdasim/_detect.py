"""``lambdasim detect``: find results that depend on state a warm instance keeps.

On Lambda an invocation may land on a warm instance, whose module globals and /tmp still
hold what earlier invocations left, or on a fresh one. A handler whose result depends on
which is a bug waiting for production's routing. :func:`detect` runs the same events once
with ``routing="warm"`` (one instance, reused) and once with ``routing="fresh"`` (a new
instance for every invocation), compares the outcomes, and names every read of a /tmp
file that another invocation wrote (seen with ``Simulator(track_tmp_access=True)``).

An invocation that returns the same error in both runs is no warm/fresh difference, but
it is no success either: the report lists it apart (``failures``), and the verdict is
``ok`` only when every invocation succeeded, the same way, in both runs.

The execution models: a SnapStart function's fresh instances are all restored from one
snapshot of Init, so state made at Init (a uuid, ``random``'s state, a file in /tmp) is the
same in each, and warm and fresh agree. detect then runs the events a third time on fresh
instances that initialise each on their own (SnapStart off), and reports as ``clones`` the
invocations that return one result when restored where separately initialised environments
return different ones (verdict ``cloned``). A tenant-isolated function is invoked with
``tenant_id`` (one for every event, or one per event). With provisioned concurrency the warm
run starts on the provisioned environments and the fresh run on on-demand ones; on Managed
Instances the invocations run one at a time, so requests that share an environment at once
are not compared (``invoke_many`` and ``lambdasim chaos`` run those). The report's ``models``
says which applied.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from lambdasim._errors import LambdaSimError
from lambdasim._simulator import Function, Invocation, Simulator

ROUTINGS = ("warm", "fresh")
_SHOW_CHARS = 300
_RID = "<request-id>"
_SHOW_INDICES = 10
# The verdicts, and the exit status of ``lambdasim detect`` for each (2 is a usage error).
OK, DIFFERENT, CLONED, FAILED = "ok", "different", "cloned", "failed"
EXIT_STATUS = {OK: 0, DIFFERENT: 1, CLONED: 1, FAILED: 1}
INIT_RUN = "fresh-init"
"""The third run of a SnapStart function: fresh instances, each with its own Init (SnapStart off)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one invocation returned: its payload, or its error."""

    request_id: str
    instance: str | None
    cold_start: bool
    payload: Any
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: tuple[str, ...] = ()

    @classmethod
    def of(cls, inv: Invocation) -> Outcome:
        rid = inv.request_id
        if inv.error is not None:
            stack = inv.error.get("stackTrace")
            return cls(rid, inv.instance_id, inv.cold_start, None, str(inv.error.get("errorType")),
                       str(inv.error.get("errorMessage", "")),
                       tuple(str(frame) for frame in stack) if isinstance(stack, list) else ())
        return cls(rid, inv.instance_id, inv.cold_start, inv.payload)

    @property
    def ok(self) -> bool:
        return self.error_type is None

    def key(self) -> tuple[str, str]:
        """What is compared: the error type and message, or the payload; the invocation's own
        request id (Lambda's messages name it: "RequestId: ... Error: Task timed out") set aside."""
        if self.error_type is not None:
            return self.error_type, str(self.error_message).replace(self.request_id, _RID)
        return "ok", _json(_plain(self.payload)).replace(self.request_id, _RID)

    def same_as(self, other: Outcome) -> bool:
        return self.key() == other.key()

    def describe(self) -> str:
        if self.error_type is not None:
            return _clip(f"{self.error_type}: {self.error_message}")
        return "returned " + _clip(_json(self.payload))

    def raised_at(self) -> list[str]:
        """The innermost frame of the error's stack trace, as lines (none without one); when that
        frame is in a library, the innermost frame of the function's own code (/var/task, /opt) before it."""
        if not self.stack_trace:
            return []
        frames = [self.stack_trace[-1]]
        own = [f for f in self.stack_trace if f.lstrip().startswith(('File "/var/task/', 'File "/opt/'))]
        if own and own[-1] is not self.stack_trace[-1]:
            frames.insert(0, own[-1])
        return [line.strip() for frame in frames for line in frame.splitlines() if line.strip()]

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "instance": self.instance, "cold_start": self.cold_start,
                "ok": self.ok, "payload": _plain(self.payload), "errorType": self.error_type,
                "errorMessage": self.error_message, "stackTrace": list(self.stack_trace)}


@dataclasses.dataclass(frozen=True)
class Difference:
    """An invocation (``index`` into the events) whose outcome differs between warm and fresh."""

    index: int
    event: Any
    warm: Outcome
    fresh: Outcome

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event": self.event, "warm": self.warm.to_dict(), "fresh": self.fresh.to_dict()}


@dataclasses.dataclass(frozen=True)
class Failure:
    """An invocation (``index`` into the events) that returned the same error warm and fresh."""

    index: int
    event: Any
    warm: Outcome
    fresh: Outcome

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event": self.event, "warm": self.warm.to_dict(), "fresh": self.fresh.to_dict()}


@dataclasses.dataclass(frozen=True)
class CrossRead:
    """Invocation ``reader_index`` read ``path``, which invocation ``writer_index`` wrote last."""

    routing: str
    path: str
    instance: str | None
    writer_request_id: str
    writer_index: int | None
    reader_request_id: str
    reader_index: int | None
    during_init: bool = False

    def describe(self) -> str:
        writer = f"#{self.writer_index}" if self.writer_index is not None else "another invocation"
        reader = f"#{self.reader_index}" if self.reader_index is not None else "an invocation"
        during = " during Init" if self.during_init else ""
        return f"{reader} read {self.path}{during}, which {writer} wrote"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Clone:
    """Invocations ``indices`` ran on different environments restored from one SnapStart snapshot and returned
    the same result, where environments that ran Init each on their own returned different ones: state made
    during Init is cloned into every restored environment."""

    indices: tuple[int, ...]
    restored: tuple[Outcome, ...]
    initialised: tuple[Outcome, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"indices": list(self.indices), "restored": [o.to_dict() for o in self.restored],
                "initialised": [o.to_dict() for o in self.initialised]}


@dataclasses.dataclass
class DetectReport:
    """The outcome of :func:`detect`.

    ``differences``: invocations whose outcome differs between warm and fresh; ``failures``:
    invocations that returned the same error in both runs; ``clones`` (SnapStart): invocations
    whose result is the same on every restored environment and not on separately initialised ones.
    ``verdict`` is ``"different"`` when there is a difference, else ``"cloned"`` when there is a
    clone, else ``"failed"`` when there is a failure, else ``"ok"``; ``ok`` is true for ``"ok"``
    only, and ``exit_status`` is ``lambdasim detect``'s. ``models`` names the execution models that
    applied and what they change in the comparison.
    """

    function: str
    handler: str
    events: list[Any]
    warm: list[Outcome]
    fresh: list[Outcome]
    differences: list[Difference]
    cross_reads: list[CrossRead]
    traces: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict, repr=False)
    failures: list[Failure] = dataclasses.field(default_factory=list)
    clones: list[Clone] = dataclasses.field(default_factory=list)
    models: list[str] = dataclasses.field(default_factory=list)
    initialised: list[Outcome] = dataclasses.field(default_factory=list)
    """SnapStart: the outcomes of the third run (fresh instances, each with its own Init)."""

    @property
    def verdict(self) -> str:
        return DIFFERENT if self.differences else CLONED if self.clones else FAILED if self.failures else OK

    @property
    def ok(self) -> bool:
        return self.verdict == OK

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        """Plain data; its ``runs`` (one trace per routing) are what ``lambdasim._report.render`` draws,
        with the ``verdict`` and its ``verdict_text`` (the last line of :meth:`render`)."""
        return {
            "function": self.function, "handler": self.handler, "ok": self.ok, "verdict": self.verdict,
            "verdict_text": self.verdict_text(), "exit_status": self.exit_status, "events": self.events,
            "differences": [d.to_dict() for d in self.differences],
            "failures": [f.to_dict() for f in self.failures], "clones": [c.to_dict() for c in self.clones],
            "cross_reads": [r.to_dict() for r in self.cross_reads], "models": list(self.models),
            "warm": [o.to_dict() for o in self.warm], "fresh": [o.to_dict() for o in self.fresh],
            **({"initialised": [o.to_dict() for o in self.initialised]} if self.initialised else {}),
            "runs": {_RUN_NAMES.get(routing, f"routing={routing}"): {"trace": trace}
                     for routing, trace in self.traces.items()},
        }

    def render(self) -> str:
        """A report for people."""
        n = len(self.events)
        lines = [f"lambdasim detect: {self.handler} ({self.function}), {n} invocation{'s' * (n != 1)} in order, "
                 "once on warm instances (reused) and once on fresh ones (new each time)"]
        lines += [f"  {note}" for note in self.models]
        reads_by_reader: dict[int | None, list[CrossRead]] = {}
        for read in self.cross_reads:
            reads_by_reader.setdefault(read.reader_index, []).append(read)
        if self.differences:
            lines.append("")
            lines.append(f"DIFFERENT: {len(self.differences)} of {n} invocations differ between warm and fresh:")
            for d in self.differences:
                lines.append(f"  #{d.index}  event {_clip(_json(d.event))}")
                lines.append(f"      warm:  {d.warm.describe()}  (instance {d.warm.instance}, "
                             f"{'cold' if d.warm.cold_start else 'warm'})")
                lines.append(f"      fresh: {d.fresh.describe()}  (instance {d.fresh.instance}, "
                             f"{'cold' if d.fresh.cold_start else 'warm'})")
                for read in reads_by_reader.get(d.index, []):
                    lines.append(f"      warm #{d.index} read {read.path}"
                                 f"{' during Init' if read.during_init else ''}, written by "
                                 f"#{read.writer_index} ({read.writer_request_id})")
                if d.index not in reads_by_reader:
                    lines.append("      no /tmp read explains it: look for module-level (global) state kept "
                                 "between invocations")
        if self.clones:
            lines.append("")
            cloned = sum(len(c.indices) for c in self.clones)
            lines.append(f"CLONED: {cloned} of {n} invocations return the same result "
                         "on different environments restored from one SnapStart snapshot, where environments that "
                         "ran Init each on their own return different ones:")
            for clone in self.clones:
                lines.append(f"  {', '.join(f'#{i}' for i in clone.indices[:_SHOW_INDICES])}")
                lines.append(f"      restored:    {clone.restored[0].describe()}  (instances "
                             f"{', '.join(str(o.instance) for o in clone.restored[:3])}"
                             f"{', ...' if len(clone.restored) > 3 else ''})")
                for outcome in clone.initialised[:3]:
                    lines.append(f"      initialised: {outcome.describe()}  (instance {outcome.instance})")
        if self.failures:
            lines.append("")
            lines.append(f"FAILED: {len(self.failures)} of {n} invocations returned an error in both runs, the same "
                         "warm and fresh:")
            lines += self._failure_lines()
        if self.cross_reads:
            lines.append("")
            lines.append(f"/tmp files read by an invocation that another invocation wrote ({len(self.cross_reads)}):")
            for read in self.cross_reads:
                lines.append(f"  {read.routing}: {read.describe()}")
                lines.append(f"      reader {read.reader_request_id}, writer {read.writer_request_id}, "
                             f"instance {read.instance}")
        lines.append("")
        lines.append(self.verdict_text())
        return "\n".join(lines)

    def verdict_text(self) -> str:
        """The last line of :meth:`render`: what detect found, in one sentence."""
        n, failed = len(self.events), len(self.failures)
        if self.differences:
            text = (f"FAIL: {len(self.differences)} invocation(s) give another result on a fresh instance: "
                    "the handler depends on what a warm instance kept (/tmp or globals).")
            if failed:
                text += f" {failed} other invocation(s) returned an error in both runs (FAILED above)."
            return text
        if self.clones:
            return ("FAIL: state made during Init (a uuid, random's state, a file in /tmp) is the same in every "
                    "environment restored from the SnapStart snapshot: make it per invocation, or again in an "
                    "after-restore hook (snapshot_restore_py.register_after_restore).")
        if failed == n:
            return (f"FAIL: all {n} invocations returned an error in both runs (FAILED above), so detect compared "
                    "errors only: fix the error (or give events the handler accepts) and run detect again.")
        if failed:
            return (f"FAIL: {failed} of {n} invocations returned an error in both runs (FAILED above); the other "
                    f"{n - failed} succeed and give the same result warm and fresh. What the failing ones return "
                    "once they succeed was not compared: fix the error (or give events the handler accepts) and "
                    "run detect again.")
        if self.cross_reads:
            return (f"OK: all {n} invocations succeed and give the same result warm and fresh; the /tmp reads above "
                    "cross invocations without changing a result (a cache that is safe to lose?).")
        return (f"OK: all {n} invocations succeed and give the same result warm and fresh, and none read a /tmp "
                "file another invocation wrote.")

    def _failure_lines(self) -> list[str]:
        """The failures, those with the same error together: their indices, the error, where it was raised."""
        groups: dict[tuple[str, str], list[Failure]] = {}
        for failure in self.failures:
            groups.setdefault(failure.warm.key(), []).append(failure)
        lines = []
        for group in groups.values():
            first = group[0]
            indices = ", ".join(f"#{f.index}" for f in group[:_SHOW_INDICES])
            if len(group) > _SHOW_INDICES:
                indices += f" and {len(group) - _SHOW_INDICES} more"
            if len(group) == 1:
                lines.append(f"  {indices}  event {_clip(_json(first.event))}")
            else:
                lines.append(f"  {indices} ({len(group)} invocations)  first event {_clip(_json(first.event))}")
            lines.append(f"      {first.warm.describe()}")
            lines += [f"      {_clip(line)}" for line in first.warm.raised_at()]
        return lines


def detect(handler: str | None, code_dir: str | os.PathLike[str] | None, events: Sequence[Any], *,
           template: str | os.PathLike[str] | None = None, function: str | None = None,
           services: Any = None, sandbox: str = "auto", seed: int = 0, network: str = "isolated",
           package: str = "host", setup: Callable[[Simulator], None] | None = None,
           tenant_id: str | Sequence[str] | None = None,
           **config: Any) -> DetectReport:
    """Run ``events`` in order under warm routing, then under fresh routing, and compare.

    Args:
        handler: ``module.function``; with ``template``, None takes the template's.
        code_dir: the function's code folder; with ``template``, None takes the template's.
        events: the events, invoked one at a time in this order in each run.
        template, function: deploy ``function`` from a SAM template or Serverless config instead.
        services: backing services, as for :class:`Simulator`; each run starts its own, so the
            fresh run does not see the warm run's data (a shared ``Services`` is flushed instead).
        sandbox, seed, network, package: as for :class:`Simulator` (both runs use the same seed).
        setup: called with each run's Simulator before the deploy (create buckets, tables, ...).
        tenant_id: the tenant id of every invocation, or one per event (a tenant-isolated function needs them).
        config: settings of :meth:`Simulator.deploy` (``memory_mb=``, ``environment=``, ...),
            or overrides of the template's (and ``parameters=``) with ``template``.
    """
    events = list(events)
    if template is None and (handler is None or code_dir is None):
        raise LambdaSimError("detect() needs a handler and a code_dir, or a template and a function.")
    if template is not None and not function:
        raise LambdaSimError("detect() with a template needs function= (the function's logical ID or key).")

    tenants = _tenants(tenant_id, len(events))

    def deploy(sim: Simulator, **changes: Any) -> Function:
        if template is not None:
            assert function is not None
            overrides = {**config, **changes}
            if handler is not None:
                overrides["handler"] = handler
            if code_dir is not None:
                overrides["code_dir"] = code_dir
            return sim.deploy_from_template(template, function, **overrides)
        assert handler is not None and code_dir is not None
        return sim.deploy(handler, code_dir=code_dir, **{**config, **changes})

    outcomes: dict[str, list[Outcome]] = {}
    traces: dict[str, list[dict[str, Any]]] = {}
    names = ("", "")
    models: list[str] = []
    runs_to_do: list[tuple[str, str, dict[str, Any]]] = [(routing, routing, {}) for routing in ROUTINGS]
    while runs_to_do:
        run, routing, changes = runs_to_do.pop(0)
        _flush_shared(services)
        with Simulator(sandbox=sandbox, routing=routing, seed=seed, services=services, track_tmp=True,
                       track_tmp_access=True, network=network, package=package) as sim:
            if setup is not None:
                setup(sim)
            fn = deploy(sim, **changes)
            if run == "warm":
                names = (fn.name, fn.config.handler)
                models = _models(fn, tenants)
            outcomes[run] = [Outcome.of(fn.invoke(event, tenant_id=tenant))
                             for event, tenant in zip(events, tenants, strict=True)]
            traces[run] = [e.to_dict() for e in sim.trace]
            if run == "warm" and fn.config.snap_start:
                # Warm and fresh environments of one version are restored from one snapshot: the fresh run
                # takes new environments of this deploy, not of another one (whose Init drew other values).
                fn.scale_down(keep=0)
                sim.routing = "fresh"
                start = len(sim.trace)
                outcomes["fresh"] = [Outcome.of(fn.invoke(event, tenant_id=tenant))
                                     for event, tenant in zip(events, tenants, strict=True)]
                traces["fresh"] = [e.to_dict() for e in sim.trace[start:]]
                runs_to_do = [(INIT_RUN, "fresh", {"snap_start": False})]

    warm, fresh = outcomes["warm"], outcomes["fresh"]
    runs = list(enumerate(zip(events, warm, fresh, strict=True)))
    differences = [Difference(i, event, w, f) for i, (event, w, f) in runs if not w.same_as(f)]
    failures = [Failure(i, event, w, f) for i, (event, w, f) in runs if w.same_as(f) and not w.ok]
    cross_reads = [read for routing in ROUTINGS for read in _cross_reads(routing, traces[routing], outcomes[routing])]
    initialised = outcomes.get(INIT_RUN, [])
    clones = _clones(fresh, initialised) if initialised else []
    return DetectReport(names[0], names[1], events, warm, fresh, differences, cross_reads, traces, failures,
                        clones, models, initialised)


_RUN_NAMES = {INIT_RUN: "routing=fresh, SnapStart off (Init in each environment)"}


def _tenants(tenant_id: str | Sequence[str] | None, count: int) -> list[str | None]:
    if tenant_id is None or isinstance(tenant_id, str):
        return [tenant_id] * count
    tenants: list[object] = list(tenant_id)  # from users' code: check the types too
    if len(tenants) != count or not all(isinstance(t, str) and t for t in tenants):
        raise LambdaSimError(f"detect(tenant_id=...): give one tenant id for every event, or a list of {count} "
                             f"(one per event), not {tenant_id!r}.")
    return [str(t) for t in tenants]


def _models(fn: Function, tenants: list[str | None]) -> list[str]:
    """What the function's execution models change in the comparison, for the report."""
    config = fn.config
    notes = []
    if config.tenant_isolation:
        if tenants[0] is None:
            raise LambdaSimError(f"{fn.name} has tenant isolation: every invocation needs a tenant id; give "
                                 "tenant_id= (lambdasim detect --tenant-id ID).")
        shown = sorted({t for t in tenants if t is not None})
        notes.append(f"tenant isolation: invoked as tenant {', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''}"
                     "; each tenant has its own instances")
    if config.snap_start:
        notes.append("SnapStart: every instance is restored from the snapshot of one Init; a third run on fresh "
                     "instances that each run Init (SnapStart off) finds state the snapshot clones")
    if config.provisioned_concurrency:
        notes.append(f"provisioned concurrency {config.provisioned_concurrency}: the warm run starts on the "
                     "environments initialised at deploy, the fresh run on on-demand ones, as requests beyond them "
                     "on Lambda")
    if config.managed:
        notes.append("Lambda Managed Instances: the invocations run one at a time, so requests that run at once in "
                     "one environment (its worker processes share /tmp) are not compared here: invoke_many() and "
                     "lambdasim chaos run those")
    return notes


def _clones(restored: list[Outcome], initialised: list[Outcome]) -> list[Clone]:
    """The invocations that return one result on different restored environments where environments
    initialised each on their own return several."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, outcome in enumerate(restored):
        if outcome.ok:
            groups.setdefault(outcome.key(), []).append(i)
    clones = []
    for indices in groups.values():
        if len({restored[i].instance for i in indices}) < 2:
            continue
        if len({initialised[i].key() for i in indices}) > 1:
            clones.append(Clone(tuple(indices), tuple(restored[i] for i in indices),
                                tuple(initialised[i] for i in indices)))
    return clones


def _flush_shared(services: Any) -> None:
    from lambdasim._services.service import Services

    if isinstance(services, Services):
        for service in services.values():
            if service.running:
                service.flush()


def _cross_reads(routing: str, trace: list[dict[str, Any]], outcomes: list[Outcome]) -> list[CrossRead]:
    index = {o.request_id: i for i, o in enumerate(outcomes)}
    found: list[CrossRead] = []
    for event in trace:
        if event["kind"] != "invoke":
            continue
        for read in event["detail"].get("tmp_reads_from", ()):
            reader = event["request_id"]
            found.append(CrossRead(routing, read["path"], event["instance"], read["writer"], index.get(read["writer"]),
                                   reader, index.get(reader), read.get("during") == "init"))
    return found


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=False, default=repr)
    except ValueError:
        return repr(value)


def _plain(value: Any) -> Any:
    """JSON-safe: bytes payloads (a handler that returned bytes) become text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _clip(text: str, limit: int = _SHOW_CHARS) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
