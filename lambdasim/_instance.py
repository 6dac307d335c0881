"""The test's live view of one execution environment (``Function.instances``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdasim import _managed
from lambdasim._invoke import Live
from lambdasim._tmpview import TmpView

if TYPE_CHECKING:
    from lambdasim._simulator import Function


class Instance:
    """A live view of one execution environment."""

    def __init__(self, function: Function, live: Live) -> None:
        self._function = function
        self._live = live

    @property
    def id(self) -> str:
        return self._live.record.id

    @property
    def version(self) -> str:
        return self._live.record.version

    @property
    def state(self) -> str:
        """``starting``, ``idle``, ``busy`` or ``dead``."""
        return self._live.record.state.value

    @property
    def invocations(self) -> int:
        return self._live.record.invocations

    @property
    def resets(self) -> int:
        """How often the runtime was replaced (timeout, crash, out of memory)."""
        return self._live.record.resets

    @property
    def tenant(self) -> str | None:
        """Tenant isolation: the one tenant whose invocations it serves (None without tenant isolation)."""
        return self._live.record.tenant

    @property
    def init_type(self) -> str:
        """Its ``AWS_LAMBDA_INITIALIZATION_TYPE`` (``on-demand``, ``provisioned-concurrency``, ...)."""
        return self._live.record.init_type

    @property
    def provisioned(self) -> bool:
        """Initialised ahead of requests (provisioned concurrency): not reaped when idle, nor scaled down."""
        return self._live.record.provisioned

    @property
    def restored(self) -> bool:
        """SnapStart: restored from its version's snapshot rather than initialised itself."""
        return self._live.record.restored

    @property
    def inflight(self) -> int:
        """Invocations running in it now (more than 1 only on Lambda Managed Instances)."""
        return self._live.record.inflight

    @property
    def init_logs(self) -> str:
        """The log (``INIT_START`` and what Init wrote) of its latest Init run ahead of requests (provisioned
        concurrency); empty when Init ran with its first invocation (that invocation's ``logs`` have it)."""
        return self._live.init_logs

    @property
    def tmp(self) -> TmpView:
        return TmpView(self)

    @property
    def workers(self) -> int:
        """Lambda Managed Instances: the environment's live worker processes (0 for other functions)."""
        return _managed.workers(self._live)

    def crash(self) -> None:
        """Kill the runtime process, as a crash would: the next invocation runs Init again; /tmp stays."""
        self._function._sim._crash(self._live)

    def destroy(self) -> None:
        """Remove the execution environment: its processes, globals and /tmp are gone."""
        self._function._sim._destroy([self._live], "destroy")

    def __repr__(self) -> str:
        return f"<Instance {self.id} version={self.version} state={self.state} invocations={self.invocations}>"
