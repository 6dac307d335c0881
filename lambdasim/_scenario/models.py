"""The checks of ``expect`` for Lambda's execution models, registered with the others of
:mod:`lambdasim._scenario.checks`:

- on one invocation: ``restore: true | false`` (its environment was restored from a SnapStart
  snapshot, and it reported ``Restore Duration``), ``restore_duration_ms: {max, min}``,
  ``tenant: ID | null`` (its tenant id) and ``worker: N | null`` (the Managed Instances worker
  process that ran it);
- on a function: ``instances_per_tenant: {ID: N, ...}`` (the live instances of each tenant; every
  tenant that has one is listed) and ``workers: N`` (live worker processes, over its live
  Managed Instances environments).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdasim._scenario.base import RunContext, _json
from lambdasim._scenario.checks import InvocationCheck, StateCheck, check
from lambdasim._simulator import Invocation
from lambdasim._source import Node, show


@check("restore")
@dataclass(frozen=True)
class Restore(InvocationCheck):
    """``restore: true``: the invocation was the first of an environment restored from its version's SnapStart
    snapshot (it reports ``Restore Duration``, not ``Init Duration``); ``false``: it was not."""

    expected: bool

    @classmethod
    def from_node(cls, node: Node) -> Restore:
        return cls(node.as_bool())

    def verify(self, inv: Invocation) -> str | None:
        restored = inv.restore_duration_ms is not None
        if restored is self.expected:
            return None
        got = (f"a restore of {inv.restore_duration_ms:g} ms" if restored
               else "an Init" if inv.cold_start else "a warm start")
        return f"restore: expected {_json(self.expected)}, got {got} (instance {inv.instance_id})"


@check("restore_duration_ms")
@dataclass(frozen=True)
class RestoreDuration(InvocationCheck):
    """``restore_duration_ms: {max: 500}`` (and/or ``min``): the invocation's Restore Duration, in ms."""

    low: float | None
    high: float | None

    @classmethod
    def from_node(cls, node: Node) -> RestoreDuration:
        f = node.fields(("min", "max"))
        if "min" not in f and "max" not in f:
            raise node.error("give max (and/or min) in milliseconds, e.g. restore_duration_ms: {max: 500}")
        hint = "use a number of milliseconds >= 0"

        def ms(n: Node) -> float:
            value = n.as_number(hint)
            if value < 0:
                raise n.error(f"{show(n.value)} is negative; {hint}")
            return value

        low, high = f.optional("min", ms), f.optional("max", ms)
        if low is not None and high is not None and low > high:
            raise f["min"].error(f"min {low:g} is more than max {high:g}")
        return cls(low, high)

    def verify(self, inv: Invocation) -> str | None:
        duration = inv.restore_duration_ms
        bounds = " and ".join(part for part in (f"at least {self.low:g} ms" if self.low is not None else "",
                                                f"at most {self.high:g} ms" if self.high is not None else "") if part)
        if duration is None:
            return (f"restore_duration_ms: expected {bounds}, but the invocation was no restore "
                    f"({'an Init' if inv.cold_start else 'a warm start'} on instance {inv.instance_id})")
        if (self.low is None or duration >= self.low) and (self.high is None or duration <= self.high):
            return None
        return f"restore_duration_ms: expected {bounds}, got {duration:g} ms"


@check("tenant")
@dataclass(frozen=True)
class Tenant(InvocationCheck):
    """``tenant: acme``: the invocation ran for tenant ``acme`` (tenant isolation); ``null``: for none."""

    expected: str | None

    @classmethod
    def from_node(cls, node: Node) -> Tenant:
        return cls(None if node.value is None else node.as_str("use a tenant id, or null for none"))

    def verify(self, inv: Invocation) -> str | None:
        if inv.tenant_id == self.expected:
            return None
        return f"tenant: expected {_json(self.expected)}, got {_json(inv.tenant_id)} (instance {inv.instance_id})"


@check("worker")
@dataclass(frozen=True)
class Worker(InvocationCheck):
    """``worker: 1``: the Managed Instances worker process that ran the invocation; ``null``: no worker (not
    on Managed Instances)."""

    expected: int | None

    @classmethod
    def from_node(cls, node: Node) -> Worker:
        return cls(None if node.value is None else node.as_whole(0, hint="use a worker number, or null"))

    def verify(self, inv: Invocation) -> str | None:
        if inv.worker == self.expected:
            return None
        return f"worker: expected {_json(self.expected)}, got {_json(inv.worker)} (instance {inv.instance_id})"


@check("instances_per_tenant")
@dataclass(frozen=True)
class InstancesPerTenant(StateCheck):
    """``instances_per_tenant: {acme: 1, globex: 2}``: the function's live instances of each tenant; a tenant
    not listed has none (instances without a tenant are not counted)."""

    of_function = True
    needs_function = True
    expected: Mapping[str, int]

    @classmethod
    def from_node(cls, node: Node) -> InstancesPerTenant:
        hint = "use a mapping of tenant ids to numbers of instances, e.g. {acme: 1, globex: 2}"
        return cls({key: node.child(key).as_whole(0, hint=hint) for key in node.mapping(hint)})

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        fn = ctx.function(function)
        counts: dict[str, int] = {}
        for instance in fn.instances:
            tenant = getattr(instance, "tenant", None)
            if tenant is not None:
                counts[tenant] = counts.get(tenant, 0) + 1
        expected = {k: v for k, v in self.expected.items() if v}
        if counts == expected:
            return None
        listed = ", ".join(f"{i.id} {_tenant_of(i)}" for i in fn.instances) or "no instance"
        return (f"function {fn.name!r} instances_per_tenant: expected {_json(expected)}, got {_json(counts)} "
                f"({listed})")


def _tenant_of(instance: Any) -> str:
    tenant = getattr(instance, "tenant", None)
    return "(no tenant)" if tenant is None else f"tenant {tenant}"


def _live_workers(instance: Any) -> int:
    workers = getattr(instance, "workers", 0)
    return workers if isinstance(workers, int) else len(workers)


@check("workers")
@dataclass(frozen=True)
class Workers(StateCheck):
    """``workers: N``: the live worker processes of the function's Managed Instances environments, all
    together."""

    of_function = True
    needs_function = True
    expected: int

    @classmethod
    def from_node(cls, node: Node) -> Workers:
        return cls(node.as_whole(0))

    def verify(self, ctx: RunContext, function: str | None) -> str | None:
        fn = ctx.function(function)
        per = [(instance.id, _live_workers(instance)) for instance in fn.instances]
        total = sum(n for _, n in per)
        if total == self.expected:
            return None
        listed = ", ".join(f"{name}: {n}" for name, n in per) or "no instance"
        return f"function {fn.name!r} workers: expected {self.expected}, got {total} ({listed})"
