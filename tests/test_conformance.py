"""The built-in Python runtime, proven against AWS's own: awslambdaric 4.2.2.

Each handler in ``tests/conformance/handlers/`` (a case; its ``CASE`` dict, read without importing
it, gives the handler string, extra files, environment, event, client context, identity, tenant
and timeout) is deployed twice in one Simulator: (a) with the built-in runtime and (b) as a container
image would start awslambdaric (``runtime="provided.al2023"``, ``entry_point=[python, "-m",
"awslambdaric"]``), through lambdasim's Runtime API. Both are invoked twice, and these must be equal:
the payload's bytes, the error (``errorType``, ``errorMessage``, ``requestId``, ``stackTrace``), the
log (START/END/REPORT/INIT_START dropped; ids, names, timestamps, addresses and the runtimes' own
frames masked) and whether each invocation was a cold start. A difference that remains is listed
in ``tests/conformance/DIFFERENCES.md`` (case, aspect, reason), and the list is exact: an unlisted
difference fails, and so does a listed one that is gone.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdasim import Simulator
from lambdasim._simulator import _instance_python
from tests.conftest import _simulator

HERE = Path(__file__).parent / "conformance"
HANDLERS = HERE / "handlers"
DIFFERENCES = HERE / "DIFFERENCES.md"
ASPECTS = ("payload", "error", "logs", "cold")
INVOCATIONS = 2
EVENT = {"key": "value"}

HAVE_RIC = importlib.util.find_spec("awslambdaric") is not None
REQUIRE_RUNTIMES = os.environ.get("LAMBDASIM_REQUIRE_RUNTIMES") == "1"


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    handler: str
    files: dict[str, str]
    env: dict[str, str]
    event: Any
    client_context: dict[str, Any] | None
    identity: dict[str, Any] | None
    tenant_id: str | None
    timeout_s: float


def _case(path: Path) -> Case:
    source = path.read_text()
    meta: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["CASE"]:
            meta = ast.literal_eval(node.value)
    return Case(name=path.stem, handler=meta.get("handler", f"{path.stem}.handler"),
                files={path.name: source, **meta.get("files", {})}, env=meta.get("env", {}),
                event=meta.get("event", EVENT), client_context=meta.get("client_context"),
                identity=meta.get("identity"), tenant_id=meta.get("tenant_id"),
                timeout_s=float(meta.get("timeout_s", 3)))


CASES = [_case(p) for p in sorted(HANDLERS.glob("*.py"))]


def _listed() -> dict[tuple[str, str], str]:
    """The table's rows: (case, aspect) -> reason."""
    rows: dict[tuple[str, str], str] = {}
    for line in DIFFERENCES.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[1] in ASPECTS:
            rows[(cells[0].strip("`"), cells[1])] = cells[3]
    return rows


# -- what is compared ----------------------------------------------------------------------------

_PLATFORM_LINE = re.compile(r"^(START|END|REPORT|INIT_START|INIT_REPORT) ")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")
_STREAM = re.compile(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}")
_ADDRESS = re.compile(r"0x[0-9a-f]{6,}")
# A frame of either runtime's own code (JSON records keep the whole traceback, escaped or not).
_RUNTIME_FRAME = re.compile(r'  File \\?"[^"\\]*(?:awslambdaric/bootstrap\.py|lambdasim/_runtime\.py)\\?", '
                            r"line \d+, in \w+(?:\\n|\n)    (?:[^\\\n]|\\[^n])*(?:\\n|\n)")


@dataclasses.dataclass(frozen=True)
class Seen:
    payload: bytes | None
    error: str | None
    logs: str
    cold: bool


def _masker(names: list[str], request_ids: list[str]) -> Any:
    def mask(text: str) -> str:
        for rid in request_ids:
            text = text.replace(rid, "<request-id>")
        for name in names:
            text = text.replace(name, "<function>")
        text = _RUNTIME_FRAME.sub("<runtime frame>", text)
        return _ADDRESS.sub("0x<address>", _STREAM.sub("<stream>", _TIME.sub("<time>", text)))
    return mask


def _seen(inv: Any, name: str) -> Seen:
    mask = _masker([name], [inv.request_id])
    kept = "\n".join(line for line in inv.logs.split("\n") if not _PLATFORM_LINE.match(line))
    payload = inv.raw_payload
    if payload is not None and len(payload) < 10_000:
        payload = mask(payload.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    error = mask(json.dumps(inv.error, ensure_ascii=False)) if inv.error is not None else None
    return Seen(payload, error, mask(kept), inv.cold_start)


# -- the two runtimes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conf_sim() -> Iterator[Simulator]:
    with _simulator("namespace") as sim:
        yield sim


def _code(case: Case, root: Path) -> Path:
    code = root / case.name
    if code.exists():
        shutil.rmtree(code)
    code.mkdir(parents=True)
    for name, text in case.files.items():
        (code / name).write_text(text)
    return code


def _invoke_all(fn: Any, case: Case) -> list[Any]:
    return [fn.invoke(case.event, client_context=case.client_context, identity=case.identity,
                      tenant_id=case.tenant_id) for _ in range(INVOCATIONS)]


def run_builtin(sim: Simulator, case: Case, root: Path, prefix: str = "a") -> list[Seen]:
    name = f"{prefix}-{case.name}".replace("_", "-")
    fn = sim.deploy(case.handler, _code(case, root / prefix), name=name, timeout_s=case.timeout_s,
                    environment=case.env, tenant_isolation=case.tenant_id is not None)
    try:
        return [_seen(inv, name) for inv in _invoke_all(fn, case)]
    finally:
        fn.scale_down(keep=0)


def run_ric(sim: Simulator, case: Case, root: Path) -> list[Seen]:
    name = f"b-{case.name}".replace("_", "-")
    # As an image starts it; AWS_EXECUTION_ENV as the managed runtime's (which (a) has).
    execution_env = f"AWS_EXECUTION_ENV={sim_execution_env()}"
    fn = sim.deploy(case.handler, _code(case, root / "b"), name=name, timeout_s=case.timeout_s,
                    environment=case.env, runtime="provided.al2023", tenant_isolation=case.tenant_id is not None,
                    entry_point=["/usr/bin/env", execution_env, _instance_python(), "-m", "awslambdaric"])
    try:
        return [_seen(inv, name) for inv in _invoke_all(fn, case)]
    finally:
        fn.scale_down(keep=0)  # one API instance at a time, wherever they share a network namespace


def run_builtin_http(sim: Simulator, case: Case, root: Path) -> list[Seen]:
    """The built-in runtime as a Runtime API client (``lambdasim._runtime_http``), as lambdasim
    starts it behind an ``AWS_LAMBDA_EXEC_WRAPPER`` (here a layer's ``exec "$@"``)."""
    name = f"c-{case.name}".replace("_", "-")
    layer = root / "c-layer"
    if not layer.exists():
        layer.mkdir(parents=True)
        (layer / "wrapper").write_text('#!/bin/sh\nexec "$@"\n')
        (layer / "wrapper").chmod(0o755)
    env = {**case.env, "AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper"}
    fn = sim.deploy(case.handler, _code(case, root / "c"), name=name, timeout_s=case.timeout_s, environment=env,
                    layers=[layer], tenant_isolation=case.tenant_id is not None)
    try:
        return [_seen(inv, name) for inv in _invoke_all(fn, case)]
    finally:
        fn.scale_down(keep=0)


def sim_execution_env() -> str:
    import sys

    return f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"


def _differing(a: list[Seen], b: list[Seen]) -> dict[str, tuple[Any, Any]]:
    found: dict[str, tuple[Any, Any]] = {}
    for aspect in ASPECTS:
        left = [getattr(s, aspect) for s in a]
        right = [getattr(s, aspect) for s in b]
        if left != right:
            found[aspect] = (left, right)
    return found


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_builtin_runtime_matches_awslambdaric(conf_sim: Simulator, case: Case, tmp_path: Path) -> None:
    if not HAVE_RIC:
        if REQUIRE_RUNTIMES:
            pytest.fail("awslambdaric is not installed (LAMBDASIM_REQUIRE_RUNTIMES=1): pip install awslambdaric==4.2.2")
        pytest.skip("awslambdaric is not installed: pip install awslambdaric==4.2.2")
    builtin = run_builtin(conf_sim, case, tmp_path)
    ric = run_ric(conf_sim, case, tmp_path)
    found = _differing(builtin, ric)
    listed = {aspect for (name, aspect) in _listed() if name == case.name}
    unlisted = {k: v for k, v in found.items() if k not in listed}
    vanished = listed - set(found)
    assert not unlisted, (f"{case.name}: the built-in runtime differs from awslambdaric in "
                          f"{sorted(unlisted)} (fix it, or list it in {DIFFERENCES.name}):\n"
                          + "\n".join(f"{k}:\n  built-in:     {v[0]!r}\n  awslambdaric: {v[1]!r}"
                                      for k, v in unlisted.items()))
    assert not vanished, f"{case.name}: listed in {DIFFERENCES.name} but now equal: {sorted(vanished)}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_builtin_runtime_over_the_runtime_api_is_the_same(conf_sim: Simulator, case: Case, tmp_path: Path) -> None:
    """Behind a wrapper the built-in runtime talks HTTP to the Runtime API: everything the function
    and its caller see is as on the framed channel."""
    found = _differing(run_builtin(conf_sim, case, tmp_path, "d"), run_builtin_http(conf_sim, case, tmp_path))
    assert not found, f"{case.name}: the built-in runtime differs over the Runtime API:\n" + "\n".join(
        f"{k}:\n  framed: {v[0]!r}\n  http:   {v[1]!r}" for k, v in found.items())


def test_differences_table_names_real_cases() -> None:
    names = {c.name for c in CASES}
    assert len(CASES) >= 30
    for (name, aspect), reason in _listed().items():
        assert name in names, f"{DIFFERENCES.name} lists {name!r}, which is no case in {HANDLERS}"
        assert reason, f"{DIFFERENCES.name}: {name} {aspect} has no reason"


# -- the encoder and the JSON formatter against awslambdaric's own, in this process -------------

def _values() -> dict[str, Any]:
    import collections
    import decimal
    import enum

    class Color(enum.IntEnum):
        RED = 1

    class Thing:
        pass

    class Record:
        def _asdict(self) -> dict[str, Any]:
            return {"z": (1, Point(2, 3))}

    Point = collections.namedtuple("Point", "x y")
    loop: list[Any] = []
    loop.append(loop)
    return {
        "decimals": [decimal.Decimal(s) for s in ("5", "1.10", "1E+2", "NaN", "-NaN", "sNaN", "-0", "Infinity")],
        "top decimal": decimal.Decimal("3.000"), "namedtuple": Point(1, (2, Point(3, 4))), "_asdict": [Record()],
        "bytes": {"v": b"text", b"k": 1}, "bad bytes": [b"\xff"], "keys": {1: 1, None: 2, False: 3, 2.5: 4},
        "more keys": {True: 1, Color.RED: 2},
        "decimal key": {decimal.Decimal("1"): 1}, "tuple key": {(1,): 1}, "object key": {Thing(): 1},
        "set": {1}, "circular": loop, "object": Thing(), "complex": 1j, "floats": [float("nan"), float("inf"), 1e300],
        "text": "h\u00e9llo \u2028 \U0001f600", "lone surrogate": "\ud800",
        "nested": {"a": [{"b": (decimal.Decimal("2.50"),)}]},
    }


@pytest.mark.parametrize("execution_env", ["AWS_Lambda_python3.11", "AWS_Lambda_python3.12", "AWS_Lambda_python3.13",
                                           "AWS_Lambda_python3.15", None])
def test_encoder_writes_what_awslambdaric_writes(execution_env: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value in awslambdaric's JSON, with its error messages; non-ASCII escaped but for 3.12+."""
    marshaller = pytest.importorskip("awslambdaric.lambda_runtime_marshaller")
    from lambdasim._runtime import Encoder

    if execution_env is None:
        monkeypatch.delenv("AWS_EXECUTION_ENV", raising=False)
    else:
        monkeypatch.setenv("AWS_EXECUTION_ENV", execution_env)
    theirs, ours = marshaller.LambdaMarshaller(), Encoder(execution_env)
    for label, value in _values().items():
        try:
            expected = theirs.marshal_response(value)[0]
        except Exception as e:  # noqa: BLE001 - their FaultException
            expected = f"error: {e.msg}"  # type: ignore[attr-defined]
        try:
            got = ours.encode(value)
        except Exception as e:  # noqa: BLE001 - the runtime makes any of these a MarshalError
            got = f"error: Unable to marshal response: {e}"
        assert got == expected, label


def test_json_log_records_are_awslambdaric_s(monkeypatch: pytest.MonkeyPatch) -> None:
    log_utils = pytest.importorskip("awslambdaric.lambda_runtime_log_utils")
    import logging
    import sys

    from lambdasim._runtime import JsonFormatter

    def records() -> list[logging.LogRecord]:
        try:
            raise KeyError("k")
        except KeyError:
            exc = sys.exc_info()
        made = [
            logging.LogRecord("app", 25, "/var/task/app.py", 3, "custom %s", ("level",), None, "fn"),
            logging.LogRecord("root", logging.INFO, "/var/task/app.py", 4, {"a": 1}, None, None, "fn"),
            logging.LogRecord("root", logging.INFO, "/var/task/app.py", 5, {"a": "%s"}, ("x",), None, "fn"),
            logging.LogRecord("db", logging.ERROR, "/var/task/db.py", 6, "failed", None, exc, "query"),
            logging.LogRecord("root", 60, "/var/task/app.py", 7, "beyond critical \u00e9", None, None, "fn"),
        ]
        for i, r in enumerate(made):
            r.aws_request_id = "rid"
            r.tenant_id = "t" if i == 1 else None
            r.user, r.odd, r.none = "ada", {1, 2}, None
            r.created, r.msecs = 1_700_000_000.25, 250.0
        return made

    monkeypatch.setattr(logging.Formatter, "converter", __import__("time").gmtime)
    for theirs, ours in zip(records(), records(), strict=True):
        assert JsonFormatter().format(ours) == log_utils.JsonFormatter().format(theirs)
