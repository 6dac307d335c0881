"""Lambda's execution models in the HTML report (:mod:`lambdasim._report`): what the trace says of
SnapStart (``snapshot`` and ``restored`` events), provisioned concurrency (``provisioned``), Managed
Instances (``worker`` events, the invoke detail ``worker``) and tenant isolation (the detail ``tenant``),
as lane tags, badges, markers, invocation details and legend entries."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

SNAPSHOT = "#00695c"
RESTORE = "#26a69a"
PROVISIONED = "#3949ab"
WORKER = "#6d4c41"
TENANT = "#ad1457"
COUNTED = (("snapshots", "snapshot", "snapshots"), ("restores", "restore", "restores"),
           ("provisioned", "provisioned environment", "provisioned environments"),
           ("workers", "worker process started", "worker processes started"))
"""The counts a run's line adds (key, one, many), when not 0."""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def note(tags: dict[str, Any], counts: dict[str, int], kind: str, detail: Mapping[str, Any]) -> None:
    """Fold one event of an instance (``tags``: its lane's) into the lane's tags and the run's counts."""
    if kind == "instance_created":
        for key in ("init_type", "tenant"):
            if detail.get(key) is not None:
                tags[key] = detail[key]
    elif kind == "restored":
        tags["restore_ms"] = detail.get("restore_ms")
        counts["restores"] = counts.get("restores", 0) + 1
    elif kind == "provisioned":
        tags["provisioned"] = True
        counts["provisioned"] = counts.get("provisioned", 0) + 1
    elif kind == "worker":
        live: set[Any] = tags.setdefault("workers", set())
        if detail.get("action") in ("started", "replaced"):
            live.add(detail.get("worker"))
            counts["workers"] = counts.get("workers", 0) + 1
        elif detail.get("action") == "exited":
            live.discard(detail.get("worker"))
    elif kind == "invoke" and detail.get("tenant") is not None:
        tags.setdefault("tenant", detail["tenant"])


def count_function_event(counts: dict[str, int], kind: str) -> None:
    if kind == "snapshot":
        counts["snapshots"] = counts.get("snapshots", 0) + 1


def label(instance: str, tags: Mapping[str, Any]) -> str:
    """The lane's label: the instance, and its tenant."""
    return f"{instance} [{tags['tenant']}]" if tags.get("tenant") is not None else instance


def title(tags: Mapping[str, Any]) -> str:
    """What the lane's title adds: how the environment started, its tenant, its workers."""
    parts = []
    if tags.get("restore_ms") is not None or tags.get("init_type") == "snap-start":
        ms = tags.get("restore_ms")
        parts.append("restored from its version's SnapStart snapshot" + (f" in {ms:.2f} ms" if isinstance(
            ms, (int, float)) else ""))
    if tags.get("provisioned"):
        parts.append("initialised ahead of requests (provisioned concurrency)")
    if tags.get("tenant") is not None:
        parts.append(f"tenant {tags['tenant']}: it serves no other")
    if "workers" in tags:
        parts.append(f"Lambda Managed Instances: {len(tags['workers'])} worker process(es) alive at the end")
    return "".join(f"; {p}" for p in parts)


def badges(tags: Mapping[str, Any], x: float, y: float) -> str:
    """Letters at the start of the lane: S (restored from a snapshot), P (provisioned), W (worker processes)."""
    letters = []
    if tags.get("restore_ms") is not None or tags.get("init_type") == "snap-start":
        letters.append(("S", RESTORE, "snapstart", "restored from the SnapStart snapshot"))
    if tags.get("provisioned"):
        letters.append(("P", PROVISIONED, "provisioned", "provisioned: initialised ahead of requests"))
    if "workers" in tags:
        letters.append((f"W{len(tags['workers'])}", WORKER, "workers", "Managed Instances worker processes"))
    if tags.get("tenant") is not None:
        letters.append(("T", TENANT, "tenant", f"tenant {tags['tenant']}"))
    out = []
    for i, (text, colour, kind, what) in enumerate(letters):
        bx = x + 8 + 16 * i
        out.append(f'<g class="badge" data-badge="{kind}"><title>{_e(what)}</title>'
                   f'<rect x="{bx:.1f}" y="{y + 7}" width="{6 + 6 * len(text)}" height="13" rx="3" fill="{colour}"/>'
                   f'<text class="marker-text" x="{bx + 3 + 3 * len(text):.1f}" y="{y + 17}">{_e(text)}</text></g>')
    return "".join(out)


def marker(kind: str, step: int, detail: Mapping[str, Any], x: float, cy: float) -> str | None:
    """The marker of a model's event on a lane (or, for ``snapshot``, on the function's row); None for others."""
    if kind == "snapshot":
        what = (f"snapshot (step {step}): Init ran once for this version ({detail.get('init_ms', '?')} ms), "
                f"/tmp held {detail.get('tmp_bytes', '?')} bytes; every environment is restored from it")
        return (f'<g class="marker" data-marker="snapshot"><title>{_e(what)}</title>'
                f'<rect x="{x - 6:.1f}" y="{cy - 5:.1f}" width="12" height="10" rx="2" fill="{SNAPSHOT}"/>'
                f'<circle cx="{x:.1f}" cy="{cy:.1f}" r="2.5" fill="#fff"/></g>')
    if kind == "restored":
        what = f"restored (step {step}) from the snapshot in {detail.get('restore_ms', '?')} ms: no Init of its own"
        return (f'<g class="marker" data-marker="restored"><title>{_e(what)}</title>'
                f'<circle cx="{x:.1f}" cy="{cy:.1f}" r="6" fill="{RESTORE}" stroke="#fff"/></g>')
    if kind == "provisioned":
        what = f"provisioned (step {step}): Init ran ahead of requests ({detail.get('init_ms', '?')} ms)"
        return (f'<g class="marker" data-marker="provisioned"><title>{_e(what)}</title>'
                f'<rect x="{x - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="{PROVISIONED}"/></g>')
    if kind == "worker":
        action = detail.get("action", "?")
        reason = f" ({detail['reason']})" if detail.get("reason") else ""
        what = f"worker {detail.get('worker', '?')} {action}{reason} (step {step})"
        colour = "#d32f2f" if action == "exited" else WORKER
        return (f'<g class="marker" data-marker="worker" data-action="{_e(action)}"><title>{_e(what)}</title>'
                f'<rect x="{x - 2:.1f}" y="{cy - 7:.1f}" width="4" height="14" fill="{colour}"/></g>')
    return None


def invocation_fields(detail: Mapping[str, Any]) -> dict[str, Any]:
    """What an invocation's details show of the models: its tenant, worker, restore and init type."""
    return {key: detail.get(key) for key in ("tenant", "worker", "restore_ms", "init_type")}


def legend_items(chip: Callable[[str], str]) -> list[tuple[str, str]]:
    return [
        (chip(f'<rect x="7" y="3" width="12" height="10" rx="2" fill="{SNAPSHOT}"/><circle cx="13" cy="8" r="2.5" '
              'fill="#fff"/>'), "SnapStart snapshot of a version"),
        (chip(f'<circle cx="13" cy="8" r="6" fill="{RESTORE}"/>'), "restored from the snapshot (badge S)"),
        (chip(f'<rect x="8" y="3" width="10" height="10" fill="{PROVISIONED}"/>'),
         "provisioned ahead of requests (badge P)"),
        (chip(f'<rect x="11" y="1" width="4" height="14" fill="{WORKER}"/>'),
         "Managed Instances worker started / exited (badge W: workers)"),
        (chip(f'<rect x="6" y="2" width="14" height="12" rx="3" fill="{TENANT}"/>'),
         "tenant isolation: the lane's tenant (badge T, [tenant] in the label)"),
    ]
