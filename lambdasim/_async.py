"""``Event`` invocations (the Invoke API's ``X-Amz-Invocation-Type: Event``): Lambda's queue for asynchronous
invocations, and the rules by which it runs and retries them.

Lambda answers 202 at once and keeps the event in a queue; the simulator's one worker thread (started with the
first event) takes the events in arrival order and runs each as :meth:`Function.invoke` runs an invocation, on
the same instances. Then, as on Lambda:

- a function error (the handler raised, timed out, ran out of memory, the runtime exited) is retried
  ``max_retry_attempts`` times (``EventInvokeConfig``, default 2), one minute after the first attempt and two
  minutes after the second;
- a throttle (reserved concurrency, 429) does not count as an attempt: the event goes back to the queue and is
  tried again after a delay that doubles from 1 second to at most 5 minutes;
- an event older than ``max_event_age_s`` (default 6 hours) when its turn comes, or whose retries are used up,
  is dropped (``async_dropped`` in the trace, with ``reason``).

Every attempt keeps the event's request id; its ``invoke`` (or ``throttled``) event in the trace has
``invocation_type: "Event"`` and ``attempt`` (1, 2, ...). Minutes of real time are no use in a test, so all of
these times run ``Simulator(async_time_scale=...)`` times Lambda's (``0.001``: the retries after 60 ms and
120 ms, an event age of 60 s lasts 60 ms); the trace gives Lambda's seconds (``async_retry``'s ``delay_s``
before attempt ``attempt``, ``async_dropped``'s ``age_s``).

Events wait for one another: the worker runs one invocation at a time (Lambda runs queued events side by
side, up to the function's concurrency). :meth:`AsyncQueue.wait` waits until the queue is empty and nothing
runs; :meth:`AsyncQueue.close` (``Simulator.close()``) stops the worker without waiting for the retries that
are due later, and traces each event it leaves (``reason: "simulator closed"``).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from lambdasim._errors import ConfigError, LambdaSimError

if TYPE_CHECKING:
    from lambdasim._simulator import Function, Simulator

log = logging.getLogger("lambdasim")

RETRY_DELAYS_S = (60.0, 120.0)
"""Lambda's wait before the first and the second retry of an event whose function failed."""
THROTTLE_FIRST_S, THROTTLE_MAX_S = 1.0, 300.0
"""The wait after a throttled attempt: 1 s, doubling each time, at most 5 minutes."""
_JOIN_S = 5.0


def time_scale(value: object) -> float:
    """``Simulator(async_time_scale=)``, checked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"async_time_scale={value!r}: use a number > 0, the factor by which Lambda's waits for "
                          "Event invocations are multiplied (1: Lambda's own, a minute before the first retry; "
                          "0.001: 60 ms).")
    return float(value)


@dataclasses.dataclass(order=True)
class _Event:
    due: float
    """When its next attempt may run (``time.monotonic()``)."""
    seq: int
    """Arrival order, among events that are due together."""
    function: str = dataclasses.field(compare=False)
    payload: bytes = dataclasses.field(compare=False)
    tenant: str | None = dataclasses.field(compare=False)
    request_id: str = dataclasses.field(compare=False)
    caller: dict[str, str] | None = dataclasses.field(compare=False)
    arrived: float = dataclasses.field(compare=False)
    attempt: int = dataclasses.field(default=1, compare=False)
    """The number of its next attempt (throttled ones count)."""
    failures: int = dataclasses.field(default=0, compare=False)
    """How often the function failed on it."""
    backoff_s: float = dataclasses.field(default=0.0, compare=False)
    """The last wait after a throttle, in Lambda's seconds."""


class AsyncQueue:
    """One simulator's queue of Event invocations and the worker thread that runs them."""

    def __init__(self, sim: Simulator, scale: float) -> None:
        self._sim = sim
        self.scale = scale
        self._cond = threading.Condition()
        self._queue: list[_Event] = []
        self._seq = 0
        self._running = 0
        self._stopping = False
        self._worker: threading.Thread | None = None

    def submit(self, fn: Function, payload: bytes, tenant: str | None, caller: dict[str, str] | None) -> str:
        """Queue an event for ``fn``; its request id (the 202's ``x-amzn-RequestId``)."""
        sim = self._sim
        with sim._lock:
            sim._check_open()
            request_id = sim._new_id()
            detail: dict[str, Any] = {"invocation_type": "Event"}
            if caller is not None:
                detail["caller"] = dict(caller)
            sim._event("async_queued", fn.name, request_id=request_id, **detail)
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                raise LambdaSimError("This Simulator is closed; create a new one.")
            self._seq += 1
            heapq.heappush(self._queue, _Event(now, self._seq, fn.name, payload, tenant, request_id, caller, now))
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="lambdasim-async", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        return request_id

    def wait(self, timeout_s: float) -> None:
        """Wait until no event is queued or running; TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"wait_async(): {len(self._queue)} Event invocation(s) still queued and "
                                       f"{self._running} running after {timeout_s:g} s (retries wait "
                                       f"{RETRY_DELAYS_S[0] * self.scale:g} s and {RETRY_DELAYS_S[1] * self.scale:g} s "
                                       "at this async_time_scale)")
                self._cond.wait(left)

    def close(self) -> None:
        """Stop the worker: the events still queued are dropped (and traced), the one running finishes."""
        with self._cond:
            self._stopping = True
            left, self._queue = sorted(self._queue), []
            self._cond.notify_all()
        sim = self._sim
        with sim._lock:
            for event in left:
                self._dropped(event, "simulator closed", time.monotonic())

    def join(self) -> None:
        """After :meth:`close` and the instances' end: wait for the worker's last attempt to return."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(_JOIN_S)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                    self._cond.wait(self._queue[0].due - time.monotonic() if self._queue else None)
                if self._stopping:
                    return
                event = heapq.heappop(self._queue)
                self._running += 1
            try:
                self._attempt(event)
            except LambdaSimError:  # closed meanwhile
                pass
            except Exception as e:  # one event's harness failure must not stop the queue
                log.exception("lambdasim: an Event invocation of %s failed in the simulator", event.function)
                with self._sim._lock:
                    self._dropped(event, f"lambdasim error: {type(e).__name__}: {e}", time.monotonic())
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

    def _age_s(self, event: _Event, now: float) -> float:
        """How long the event has waited, in Lambda's seconds."""
        return (now - event.arrived) / self.scale

    def _attempt(self, event: _Event) -> None:
        sim = self._sim
        now = time.monotonic()
        fn = sim.functions.get(event.function)
        if fn is None:
            with sim._lock:
                self._dropped(event, "function not found", now)
            return
        config = fn.config
        if self._age_s(event, now) > config.max_event_age_s:
            with sim._lock:
                self._dropped(event, "event age exceeded", now, max_event_age_s=config.max_event_age_s)
            return
        detail: dict[str, Any] = {"invocation_type": "Event", "attempt": event.attempt}
        if event.caller is not None:
            detail["caller"] = dict(event.caller)
        inv = sim._invoke(fn, event.payload, None, None, event.tenant, detail, event.request_id)
        event.attempt += 1
        if inv.status_code == 429 or inv.status_code >= 500:  # throttled: back in the queue, not an attempt
            event.backoff_s = THROTTLE_FIRST_S if not event.backoff_s else min(event.backoff_s * 2, THROTTLE_MAX_S)
            self._again(event, event.backoff_s, "throttled")
        elif inv.status_code != 200:  # refused (a tenant id, a size): trying again changes nothing
            with sim._lock:
                self._dropped(event, f"refused: {(inv.error or {}).get('errorType')}", time.monotonic())
        elif inv.error is not None:
            event.failures += 1
            if event.failures > config.max_retry_attempts:
                with sim._lock:
                    self._dropped(event, "retries exhausted", time.monotonic(),
                                  max_retry_attempts=config.max_retry_attempts, error=inv.error.get("errorType"))
            else:
                self._again(event, RETRY_DELAYS_S[min(event.failures, len(RETRY_DELAYS_S)) - 1], "function error")

    def _again(self, event: _Event, delay_s: float, why: str) -> None:
        """Queue the event's next attempt ``delay_s`` (Lambda's seconds) from now (``async_retry`` in the trace)."""
        with self._sim._lock:
            self._sim._event("async_retry", event.function, request_id=event.request_id, reason=why,
                             attempt=event.attempt, delay_s=delay_s)
        event.due = time.monotonic() + delay_s * self.scale
        with self._cond:
            if self._stopping:  # closed while it ran: left, as the queued ones are
                with self._sim._lock:
                    self._dropped(event, "simulator closed", time.monotonic())
                return
            heapq.heappush(self._queue, event)
            self._cond.notify_all()

    def _dropped(self, event: _Event, reason: str, now: float, **extra: Any) -> None:
        """Trace a dropped event (under the simulator's lock)."""
        detail: dict[str, Any] = {"reason": reason, "attempts": event.attempt - 1,
                                  "age_s": round(self._age_s(event, now), 3), **extra}
        if event.caller is not None:
            detail["caller"] = dict(event.caller)
        self._sim._event("async_dropped", event.function, request_id=event.request_id, **detail)
