"""Lambda's platform lines (system logs) in the function's log format.

In the Text format they are the ``INIT_START`` / ``START`` / ``END`` / ``REPORT`` lines of
:mod:`lambdasim._lambda_errors`. In the JSON format (``LoggingConfig: {LogFormat: JSON}``) Lambda
writes them as JSON events, one object a line, with the names and records of the Telemetry API:
``{"time": ..., "type": "platform.start", "record": {"requestId": ..., "version": ...}}``; and
``SystemLogLevel`` filters them: ``platform.initStart``, ``platform.start`` and ``platform.report`` are
INFO, ``platform.runtimeDone`` (the JSON counterpart of ``END``) is DEBUG, so at the default INFO a JSON
stream has no END line, and at WARN none of them. SnapStart's ``RESTORE_START`` / ``RESTORE_REPORT`` are
``platform.restoreStart`` / ``platform.restoreReport`` (INFO), with ``platform.restoreRuntimeDone`` (DEBUG)
between; the ``INIT_REPORT`` of a version's Init is ``platform.initReport``. Managed Instances always write
JSON, and their ``platform.report`` has ``durationMs`` alone and no ``platform.runtimeDone`` (the Telemetry
API's schema reference). Under active tracing the text REPORT gains an ``XRAY TraceId: ...`` line and the
JSON records a ``tracing`` object (:func:`trace_context`).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from lambdasim import _lambda_errors as lambda_errors

_RANK = {"DEBUG": 0, "INFO": 1, "WARN": 2}


def _shown(event_level: str, system_level: str) -> bool:
    """Whether an event of ``event_level`` passes the function's ``SystemLogLevel``."""
    return _RANK[event_level] >= _RANK.get(system_level, 1)


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def event(kind: str, record: dict[str, Any]) -> str:
    """One platform event as Lambda writes it in the JSON format (a line)."""
    return json.dumps({"time": _now(), "type": kind, "record": record}, separators=(",", ":")) + "\n"


def init_start(system_level: str | None, text_line: str, *, initialization_type: str, runtime_version: str,
               region: str, function: str, version: str) -> str:
    """The ``INIT_START`` line (``system_level`` None: the Text format, so ``text_line`` itself)."""
    if system_level is None:
        return text_line
    if not _shown("INFO", system_level):
        return ""
    return event("platform.initStart", {
        "initializationType": initialization_type, "phase": "init",
        "runtimeVersion": f"{runtime_version}.lambdasim",
        "runtimeVersionArn": f"arn:aws:lambda:{region}::runtime:lambdasim",
        "functionName": function, "functionVersion": version,
    })


def _runtime_record(runtime_version: str, region: str, function: str, version: str) -> dict[str, Any]:
    return {"runtimeVersion": f"{runtime_version}.lambdasim",
            "runtimeVersionArn": f"arn:aws:lambda:{region}::runtime:lambdasim",
            "functionName": function, "functionVersion": version}


def restore_start(system_level: str | None, text_line: str, *, runtime_version: str, region: str, function: str,
                  version: str) -> str:
    """SnapStart's ``RESTORE_START`` line (``system_level`` None: the Text format, so ``text_line``)."""
    if system_level is None:
        return text_line
    if not _shown("INFO", system_level):
        return ""
    return event("platform.restoreStart", _runtime_record(runtime_version, region, function, version))


def restore_report(system_level: str | None, text_line: str, restore_ms: float, report_status: str) -> str:
    """SnapStart's ``RESTORE_REPORT`` line; in JSON ``platform.restoreRuntimeDone`` (DEBUG) then
    ``platform.restoreReport``. ``report_status``: the text line's status field ("" on success)."""
    if system_level is None:
        return text_line
    status = _status(report_status)
    done = event("platform.restoreRuntimeDone", dict(status)) if _shown("DEBUG", system_level) else ""
    report = event("platform.restoreReport", {**status, "metrics": {"durationMs": round(restore_ms, 3)}}) \
        if _shown("INFO", system_level) else ""
    return done + report


def init_report(system_level: str | None, text_line: str, init_ms: float, report_status: str, *,
                initialization_type: str) -> str:
    """The ``INIT_REPORT`` line (a SnapStart version's Init); in JSON ``platform.initReport``."""
    if system_level is None:
        return text_line
    if not _shown("INFO", system_level):
        return ""
    return event("platform.initReport", {"initializationType": initialization_type, "phase": "init",
                                         **_status(report_status), "metrics": {"durationMs": round(init_ms, 3)}})


def _trace_fields(trace: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in trace.split(";") if "=" in part)


def trace_context(trace: str) -> dict[str, Any]:
    """The Telemetry API's ``TraceContext`` of an invocation traced with ``trace`` (its ``_X_AMZN_TRACE_ID``):
    ``spanId`` is the function's segment, the one the header names as ``Parent`` (the X-Ray SDK's segment in
    the function takes that id, and the subsegments it sends name it as their ``parent_id``)."""
    fields = _trace_fields(trace)
    return {"spanId": fields.get("Parent", ""), "type": "X-Amzn-Trace-Id",
            "value": f"Root={fields.get('Root', '')};Parent={fields.get('Parent', '')};"
                     f"Sampled={fields.get('Sampled', '1')}"}


def xray_line(trace: str) -> str:
    """The line Lambda adds to REPORT under active tracing (the same ids as :func:`trace_context`)."""
    fields = _trace_fields(trace)
    sampled = "true" if fields.get("Sampled") == "1" else "false"
    return f"XRAY TraceId: {fields.get('Root', '')}\tSegmentId: {fields.get('Parent', '')}\tSampled: {sampled}\t\n"


def _status(report_status: str) -> dict[str, Any]:
    """The REPORT line's status field (``Status: error\\tError Type: X``) as a record's fields."""
    if not report_status:
        return {"status": "success"}
    fields = dict(part.split(": ", 1) for part in report_status.split("\t") if ": " in part)
    status: dict[str, Any] = {"status": fields.get("Status", "error")}
    if "Error Type" in fields:
        status["errorType"] = fields["Error Type"]
    return status


def frame(system_level: str, request_id: str, version: str | None, report: dict[str, Any],
          trace: str | None = None, managed: bool = False) -> tuple[str, str, str]:
    """(start, end, report) of one invocation in the JSON format, filtered by ``system_level``;
    ``report`` holds what the REPORT line shows (see :func:`report_metrics`). ``trace``: the invocation's
    trace header under active tracing (each record then carries :func:`trace_context`). ``managed``: a
    Managed Instances invocation, whose report has ``durationMs`` alone and which has no runtimeDone."""
    status = _status(report.pop("status"))
    tracing = {"tracing": trace_context(trace)} if trace is not None else {}
    start = event("platform.start", {"requestId": request_id, "version": version, **tracing}) \
        if _shown("INFO", system_level) else ""
    end = event("platform.runtimeDone", {"requestId": request_id, **status,
                                         "metrics": {"durationMs": report["durationMs"]}, **tracing}) \
        if _shown("DEBUG", system_level) and not managed else ""
    metrics = {"durationMs": report["durationMs"]} if managed else report
    record: dict[str, Any] = {"requestId": request_id, **status, "metrics": metrics, **tracing}
    done = event("platform.report", record) if _shown("INFO", system_level) else ""
    return start, end, done


def report_metrics(duration_ms: float, memory_mb: int, max_memory_mb: int, init_ms: float | None, status: str,
                   billed_init: bool = False, restore_ms: float | None = None,
                   billed_restore_ms: float | None = None) -> dict[str, Any]:
    """The ``platform.report`` metrics of what :func:`lambdasim._lambda_errors.report_line` writes as text
    (with ``status``, the REPORT status field, for :func:`frame`)."""
    billed = duration_ms + ((init_ms or 0.0) if billed_init else 0.0)
    metrics: dict[str, Any] = {"durationMs": round(duration_ms, 3), "billedDurationMs": math.ceil(billed),
                               "memorySizeMB": memory_mb, "maxMemoryUsedMB": max_memory_mb}
    if restore_ms is not None:
        metrics["restoreDurationMs"] = round(restore_ms, 3)
        metrics["billedRestoreDurationMs"] = math.ceil(billed_restore_ms or 0.0)
    elif init_ms is not None:
        metrics["initDurationMs"] = round(init_ms, 3)
    metrics["status"] = status
    return metrics


def runtime_version(python: str, runtime: str | None) -> str:
    """What INIT_START names the runtime: ``python:3.12`` (or ``runtime``'s, e.g. ``provided:al2023``)."""
    return lambda_errors.runtime_version(runtime) if runtime is not None else f"python:{python}"
