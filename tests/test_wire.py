"""The runtime channel's message layouts: named once in _wire, packed and read by those names."""

from __future__ import annotations

import ast
import inspect
import marshal
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lambdasim import _invoke, _runtime, _wire
from lambdasim._wire import Channel, Fatal, Init, Invoke, Result, SandboxFailure

SAMPLES: dict[str, Any] = {
    "request_id": "8f5c0c3e-1111-4222-8333-444455556666", "event": b'{"a": 1}', "deadline_ms": 1_700_000_000_123,
    "trace_id": "Root=1-0-0", "client_context": {"custom": {"k": "v"}}, "identity": {"cognitoIdentityId": "i"},
    "tenant_id": "t1", "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:f", "spin": 0.0002,
    "error": {"errorMessage": "m", "errorType": "ValueError"}, "init_ms": 12.5, "max_memory_kb": 40960,
    "coverage": {"lines": {"/var/task/app.py": [1, 2]}}, "payload": b"[1]", "duration_ms": 1.25,
    "error_type": "Runtime.OutOfMemory", "reason": "PermissionError: no",
    "python_paths": ["/usr/lib/python3.11"], "spec": {"handler": "app.handler"}, "code": -9, "pid": 4242,
    "tmp_dir": "/tmp/lambdasim-fakefs-1/1", "limits": "cgroup v1", "freezer": "freezer", "cgroup_version": 1,
    "cgroup_paths": {"pids": "/sys/fs/cgroup/pids/lambdasim-1-2/i0"}, "refused": {"example.com:443": 2},
    "outside_imports": ["requests"],
}
LAYOUTS: list[tuple[type[tuple[Any, ...]], Callable[..., tuple[Any, ...]], str | None]] = [
    (Invoke, _wire.pack_invoke, None),
    (Init, _wire.pack_init, _wire.INIT),
    (Result, _wire.pack_result, _wire.RESULT),
    (Fatal, _wire.pack_fatal, _wire.FATAL),
    (SandboxFailure, _wire.pack_sandbox_failure, _wire.SANDBOX_ERROR),
    (_wire.HelperReady, _wire.pack_helper_ready, _wire.READY),
    (_wire.Refusal, _wire.pack_refusal, _wire.ERROR),
    (_wire.Spawn, _wire.pack_spawn, _wire.SPAWN),
    (_wire.Exited, _wire.pack_exited, _wire.EXITED),
    (_wire.FakefsKeeperReady, _wire.pack_fakefs_keeper_ready, _wire.READY),
    (_wire.KeeperReady, _wire.pack_keeper_ready, _wire.READY),
]
LAMBDASIM = Path(__file__).resolve().parent.parent / "lambdasim"


@pytest.mark.parametrize(("layout", "pack", "kind"), LAYOUTS, ids=lambda x: getattr(x, "__name__", None))
def test_each_layout_is_packed_and_read_by_the_same_names(
        layout: type[tuple[Any, ...]], pack: Callable[..., tuple[Any, ...]], kind: str | None) -> None:
    fields: tuple[str, ...] = layout._fields  # type: ignore[attr-defined]
    given = [f for f in fields if f not in ("kind", "tmp_access")]
    assert [p for p in inspect.signature(pack).parameters if p != "kind"] == given  # Spawn's may be SPEC
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(pack).parameters.values())
    values = {name: SAMPLES[name] for name in given}
    message = marshal.loads(marshal.dumps(pack(**values)))  # a plain tuple: marshal takes it
    assert type(message) is tuple
    read = layout(*message)._asdict()  # type: ignore[attr-defined]
    assert {k: v for k, v in read.items() if k in values} == values
    assert read.get("kind") == kind
    if "tmp_access" in fields:
        assert read["tmp_access"] is None  # only a tracking runtime adds it
        assert fields[-1] == "tmp_access"


def test_a_reader_takes_named_fields_in_the_order_asked() -> None:
    message = _wire.pack_result(payload=b"1", error=None, duration_ms=2.0, max_memory_kb=3, coverage=None)
    assert _wire.reader(Result, "max_memory_kb", "payload", "duration_ms")(message) == (3, b"1", 2.0)
    with pytest.raises(ValueError, match="not in tuple"):
        _wire.reader(Result, "paylod")


def test_the_warm_path_readers_name_their_fields() -> None:
    invoke = _wire.pack_invoke(**{name: SAMPLES[name] for name in Invoke._fields})
    assert _runtime._read_invoke(invoke) == tuple(SAMPLES[name] for name in Invoke._fields)
    result = _wire.pack_result(payload=b"x", error=None, duration_ms=1.0, max_memory_kb=7, coverage=None)
    assert _invoke._read_result(result) == (b"x", None, 1.0, 7, None, None, None)


def test_a_tracking_runtime_adds_its_tmp_access_to_init_and_result_only() -> None:
    mine, theirs = socket.socketpair()
    access = _runtime.TmpAccess()
    sender, receiver = _runtime.TmpAccessChannel(theirs, access), Channel(mine)
    try:
        access.change("/tmp/a")
        sender.send(_wire.pack_result(payload=b"1", error=None, duration_ms=1.0, max_memory_kb=1, coverage=None))
        assert Result(*receiver.recv(5.0)).tmp_access == ([], {"/tmp/a": True})
        access.read("/tmp/b")
        sender.send(_wire.pack_init(error=None, init_ms=1.0, max_memory_kb=1, coverage=None))
        assert Init(*receiver.recv(5.0)).tmp_access == (["/tmp/b"], {})
        sender.send(_wire.pack_fatal(error_type="Runtime.OutOfMemory", duration_ms=1.0, max_memory_kb=1))
        assert Fatal._make(receiver.recv(5.0)).error_type == "Runtime.OutOfMemory"
    finally:
        mine.close()
        theirs.close()


def test_the_spawn_layout_also_carries_the_spec_to_a_first_runtime() -> None:
    message = _wire.pack_spawn(spec={"handler": "a.b"}, kind=_wire.SPEC)
    assert _wire.Spawn._make(message) == (_wire.SPEC, {"handler": "a.b"})


def test_no_message_is_spelled_outside_wire() -> None:
    """Every message sent between the processes starts with one of _wire's kinds, not a literal."""
    literal_kinds = []
    for path in [LAMBDASIM / "_runtime.py", LAMBDASIM / "_invoke.py", *(LAMBDASIM / "_sandbox").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "send"
                    and node.args and isinstance(node.args[0], ast.Tuple) and node.args[0].elts
                    and isinstance(node.args[0].elts[0], ast.Constant)):
                literal_kinds.append(f"{path.name}:{node.lineno}")
            if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Subscript)
                    and isinstance(node.left.value, ast.Name) and node.left.value.id in ("msg", "reply", "message")
                    and isinstance(node.left.slice, ast.Constant) and node.left.slice.value == 0
                    and any(isinstance(c, ast.Constant) and isinstance(c.value, str) for c in node.comparators)):
                literal_kinds.append(f"{path.name}:{node.lineno}")
    assert literal_kinds == []


def test_a_guarded_channel_refuses_oversized_frames_and_lengths_that_do_not_fit() -> None:
    mine, theirs = socket.socketpair()
    receiver = Channel(mine)
    receiver.guard(1 << 20, 1)
    try:
        # A tuple that claims 10**8 items: unchecked, marshal would allocate 800 MB for it.
        body = b"(" + struct.pack("<i", 10**8) + b"N" * 4000
        theirs.sendall(struct.pack("<I", len(body)) + body)
        with pytest.raises(_wire.ProtocolError, match="container of 100000000 items"):
            receiver.recv(5.0)
        theirs.sendall(struct.pack("<I", 1 << 30))
        with pytest.raises(_wire.ProtocolError, match="over the limit"):
            receiver.recv(5.0)
    finally:
        receiver.close()
        theirs.close()
    big = ("result", b"x" * 5000, {"errorType": "E", "errorMessage": "m", "stackTrace": ["f"]}, 1.5, 1 << 70,
           {"arcs": {"/var/task/a.py": [(1, 2), (-1, 3)] * 500}}, (["/tmp/a"] * 300, {"/tmp/b": True}))
    for version in (2, 3, 4):
        _wire.check_plain_marshal(marshal.dumps(big, version))  # plain data of every size passes
    with pytest.raises(ValueError, match="not plain data"):
        _wire.check_plain_marshal(marshal.dumps(test_a_reader_takes_named_fields_in_the_order_asked.__code__))


def test_runtime_messages_are_checked_against_their_layouts() -> None:
    good = _wire.pack_result(payload=b"1", error=None, duration_ms=1.0, max_memory_kb=3, coverage=None)
    assert _wire.check_runtime_message(good, _wire.RESULT) is good
    for bad in [("result",), ("result", 1, None, 1.0, 3, None), {"kind": "result"}, ("init", None, 1.0, 1, None),
                ("result", b"1", None, float("nan"), 3, None, None),
                ("result", b"1", None, 1.0, 3, None, None, (["x"], {1: 2})),
                ("result", b"1", None, 1.0, 3, None, {"a:1": -1}), ("result", b"1", None, 1.0, 3, None, ["a:1"])]:
        with pytest.raises(_wire.ProtocolError):
            _wire.check_runtime_message(bad, _wire.RESULT, _wire.FATAL)
