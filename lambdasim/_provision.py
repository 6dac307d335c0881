"""The engine's parts for provisioned concurrency (a version's environments initialised ahead of any
request, at deploy and at redeploy before traffic moves to the version, and again after a reset) and
for tenant isolation (the tenant ids given to invocations)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lambdasim import _lambda_errors as lambda_errors
from lambdasim._errors import ConfigError, LambdaSimError
from lambdasim._invoke import Invocation, Live
from lambdasim._model import InstanceState

if TYPE_CHECKING:
    from lambdasim._simulator import Function, Simulator

PROVISIONED_INIT_TIMEOUT_S = 900.0
"""How long Init may take in a provisioned environment: 15 minutes, where an on-demand Init has the
simulator's ``init_timeout_s`` (10 s, then one retry under the function's timeout)."""
STATUS_FAILED = "FAILED"
INIT_FAILURE = "FUNCTION_ERROR_INIT_FAILURE"
"""The ``StatusReason`` of a provisioned concurrency configuration whose environments' Init failed."""
_LOG_LINES = 40
_MAX_THREADS = 64


class ProvisioningFailed(LambdaSimError):
    """Provisioned concurrency could not be allocated: an environment's Init failed (raised, timed out,
    or its runtime exited), as Lambda reports it (``Status: FAILED``, ``StatusReason:
    FUNCTION_ERROR_INIT_FAILURE``; CloudFormation: "Provisioned Concurrency configuration failed to be
    applied. Reason: FUNCTION_ERROR_INIT_FAILURE"). ``error`` is Init's error, ``logs`` its log; the
    environments made for the version are gone."""

    status = STATUS_FAILED
    status_reason = INIT_FAILURE

    def __init__(self, function: str, version: str, instance: str, error: dict[str, Any], logs: str,
                 redeploy: bool) -> None:
        self.function, self.version, self.instance, self.error, self.logs = function, version, instance, error, logs
        self.redeploy = redeploy
        after = (f"the function stays on its current version (version {version} is published and gets no traffic)"
                 if redeploy else "the function is not deployed")
        super().__init__(
            f"Function {function!r} version {version}: Provisioned Concurrency configuration failed to be "
            f"applied. Reason: {INIT_FAILURE}. The Init of environment {instance} failed with "
            f"{error.get('errorType')}: {error.get('errorMessage')}; {after}. Fix the Init (the code that runs "
            "at import) or deploy without provisioned_concurrency to see the error in an invocation.")
        tail = "\n".join(logs.splitlines()[-_LOG_LINES:])
        if tail:
            self.add_note(f"The Init's log (last {_LOG_LINES} lines):\n{tail}")

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.function, self.version, self.instance, self.error, self.logs, self.redeploy)


def _detail(inv: Invocation) -> dict[str, Any]:
    detail: dict[str, Any] = {"init_ms": inv.init_duration_ms}
    if inv.error is not None:
        detail["error"] = inv.error.get("errorType")
        detail["error_detail"] = {"errorType": inv.error.get("errorType"),
                                  "errorMessage": inv.error.get("errorMessage"),
                                  "logs": "\n".join(inv._init_logs.splitlines()[-_LOG_LINES:])}
    return detail


def provision(sim: Simulator, fn: Function, version: str, redeploy: bool = False) -> None:
    """Make and initialise, side by side, the ``provisioned_concurrency`` environments of ``fn``'s
    ``version``; returns when every one is ready (idle, frozen when the simulator freezes). Raises
    :class:`ProvisioningFailed` when an Init fails, after destroying them all. They are routed to only
    once ready, and only while ``version`` is the function's current one."""
    config = fn._model.versions[version]
    count = config.provisioned_concurrency
    if not count:
        return
    with sim._lock:
        sim._check_open()
        lives: list[Live] = []
        ids: list[str] = []
        for record in fn._model.provision(count, sim.clock.now(), version):
            live = Live(record, config, sim._spec(fn, record, config))
            fn._live[record.id] = live
            lives.append(live)
            ids.append(sim._new_id())  # drawn here, in order, so that a seed repeats them
            sim._event("instance_created", fn.name, record.id, version, init_type=record.init_type)

    def start(live: Live, request_id: str) -> Invocation:
        sim._start(live)
        return sim._invoker.initialize(live, request_id, PROVISIONED_INIT_TIMEOUT_S, sim.region)

    outcomes: list[Invocation | BaseException] = []
    with ThreadPoolExecutor(max_workers=min(count, _MAX_THREADS), thread_name_prefix="lambdasim-provision") as pool:
        futures = [pool.submit(start, live, request_id) for live, request_id in zip(lives, ids, strict=True)]
        for future in futures:
            try:
                outcomes.append(future.result())
            except BaseException as e:  # noqa: BLE001 - every environment is waited for, then the first raised
                outcomes.append(e)
    sim._sandbox.refill()
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    failed = next(((live, o) for live, o in zip(lives, outcomes, strict=True)
                   if isinstance(o, Invocation) and o.error is not None), None)
    with sim._lock:
        for live, outcome in zip(lives, outcomes, strict=True):
            if isinstance(outcome, Invocation):
                live.init_logs = outcome._init_logs
                sim._event("provisioned", fn.name, live.record.id, version, **_detail(outcome))
    if failure is not None or failed is not None:
        sim._destroy(lives, "provisioning failed")
        if failure is not None:
            raise failure
        assert failed is not None and failed[1].error is not None
        raise ProvisioningFailed(fn.name, version, failed[0].record.id, failed[1].error, failed[1]._init_logs,
                                 redeploy)
    _ready(sim, lives)


def _ready(sim: Simulator, lives: Sequence[Live]) -> None:
    """Frozen (as Lambda freezes an idle environment), then idle: routable."""
    for live in lives:
        if sim.freeze and live.record.state is not InstanceState.DEAD:
            live.sbx.freeze()
    with sim._lock:
        for live in lives:
            if live.record.state is InstanceState.STARTING:
                live.record.state = InstanceState.IDLE


def reinitialize(sim: Simulator, live: Live, idle: bool = False) -> None:
    """Run Init again in a provisioned environment whose runtime was reset (a timeout, a crash, out of
    memory), at once, before it takes another request: Lambda replaces such an environment, so the next
    request finds one initialised. When this Init fails too, the environment stays to be initialised by
    its next invocation (a cold start). Traced as ``provisioned`` with ``reinit``. ``idle``: it is not
    running an invocation (Instance.crash()), so it is thawed for Init and frozen again after."""
    record = live.record
    if not record.provisioned or not record.needs_init or record.state is InstanceState.DEAD:
        return
    was_frozen = idle and live.sbx.thaw()
    # Not from the seeded ids: this runs in an invocation's thread, in no order the seed could repeat.
    outcome = sim._invoker.initialize(live, str(uuid.uuid4()), PROVISIONED_INIT_TIMEOUT_S, sim.region)
    if was_frozen:
        live.sbx.freeze()
    with sim._lock:
        live.init_logs = outcome._init_logs
        sim._event("provisioned", record.function, record.id, record.version, reinit=True, **_detail(outcome))


def tenant_ids(tenant_id: object, count: int, where: str = "invoke_many") -> list[str | None]:
    """The ``tenant_id`` of :meth:`Function.invoke` (``count`` 1) or of ``invoke_many``: one tenant id (or
    None) for the ``count`` events, or a sequence of them, one per event. Whether Lambda takes each is the
    Invoke API's affair (see :func:`lambdasim._lambda_errors.refusal`); here only the types are checked."""
    given = [tenant_id] * count if tenant_id is None or isinstance(tenant_id, str) else tenant_id
    if (not isinstance(given, Sequence) or len(given) != count
            or not all(t is None or isinstance(t, str) for t in given)):
        one = "a string, or None" if where == "invoke" else (
            f"one string for every event, or a list of {count} (one per event: a string, or None)")
        raise ConfigError(f"{where}(tenant_id={tenant_id!r}): a tenant id is {one}.")
    return list(given)


TENANT_ID_MAX = 256
_TENANT_ID = re.compile(r"[a-zA-Z0-9\._:\/=+\-@ ]+")
"""The Invoke API's ``TenantId`` (header ``X-Amz-Tenant-Id``): 1 to 256 characters of this pattern (botocore's
model of the Lambda API)."""


def refusal(request_bytes: int, tenant_isolation: bool, tenant_id: str | None) -> tuple[int, dict[str, Any]] | None:
    """How the Invoke API turns a request away before the function runs, as (HTTP status, error), in the order
    it checks: a tenant id outside the API's constraints, a tenant id missing or not expected, a request too
    large; None when it takes the request."""
    if tenant_id is not None:
        broken = []
        if not tenant_id or len(tenant_id) > TENANT_ID_MAX:
            broken.append(f"Member must have length less than or equal to {TENANT_ID_MAX}" if tenant_id
                          else "Member must have length greater than or equal to 1")
        if tenant_id and not _TENANT_ID.fullmatch(tenant_id):
            broken.append(f"Member must satisfy regular expression pattern: {_TENANT_ID.pattern}")
        if broken:
            return 400, lambda_errors.validation_error(tenant_id, "tenantId", broken)
    if tenant_isolation != (tenant_id is not None):
        return 400, lambda_errors.tenant_mismatch()
    if request_bytes > lambda_errors.MAX_REQUEST_BYTES:
        return 413, lambda_errors.request_too_large()
    return None
