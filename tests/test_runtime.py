"""What a handler sees and what an invocation reports: errors, payloads, context, env, logs."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Callable
from typing import cast

import pytest

from lambdasim import ConfigError, Simulator, _runtime
from lambdasim._sandbox import InstanceSpec
from lambdasim._wire import Channel
from tests.conftest import Code

BOTH_SANDBOXES = True

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize(
    ("handler", "files", "error_type", "message"),
    [
        ("app.handler", {"app.py": "import not_a_module_anywhere\n"}, "Runtime.ImportModuleError",
         "Unable to import module 'app': No module named 'not_a_module_anywhere'"),
        ("missing.handler", {}, "Runtime.ImportModuleError",
         "Unable to import module 'missing': No module named 'missing'"),
        ("app.handler", {"app.py": "def handler(e, c)\n    return 1\n"}, "Runtime.UserCodeSyntaxError",
         "Syntax error in module 'app': expected ':' (app.py, line 1)"),
        ("app.nope", {"app.py": "def handler(e, c):\n    return 1\n"}, "Runtime.HandlerNotFound",
         "Handler 'nope' missing on module 'app'"),
        ("handler", {"app.py": ""}, "Runtime.MalformedHandlerName",
         "Bad handler 'handler': not enough values to unpack (expected 2, got 1)"),
        ("sys.handler", {}, "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler module"),
        ("app.handler", {"app.py": "open('/var/task/cache', 'w')\n"}, "OSError",
         "[Errno 30] Read-only file system: '/var/task/cache'"),
        ("app.handler", {"app.py": "raise KeyError('CONFIG')\n"}, "KeyError", "'CONFIG'"),
    ],
    ids=["import-error", "no-module", "syntax-error", "handler-not-found", "malformed", "built-in",
         "init-oserror", "init-keyerror"],
)
def test_init_errors_look_like_lambda(
    sim: Simulator, code: Code, handler: str, files: dict[str, str], error_type: str, message: str
) -> None:
    fn = sim.deploy(handler, code_dir=code(files=files), name="f")
    inv = fn.invoke({})
    assert inv.error is not None
    assert inv.error["errorType"] == error_type
    assert inv.error["errorMessage"] == message
    assert inv.error["requestId"] == "", "awslambdaric reports Init errors without a request id"
    assert inv.function_error == "Unhandled" and inv.payload is None and inv.cold_start
    assert f"[ERROR] {error_type}: {message}" in inv.logs
    # Init failed, so the next invocation tries Init again on the same environment.
    again = fn.invoke({})
    assert again.cold_start and again.error == inv.error
    assert again.instance_id == inv.instance_id


def test_syntax_error_trace(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("x = (\n"))
    inv = fn.invoke({})
    assert inv.error is not None and inv.error["errorType"] == "Runtime.UserCodeSyntaxError"
    assert inv.error["stackTrace"] == ['  File "/var/task/app.py" Line 1\n    x = (\n']


def test_handler_exception_shape(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        class OrderRejected(Exception):
            pass

        def check(order):
            raise OrderRejected(f"order {order} rejected")

        def handler(event, context):
            check(event["order"])
    """))
    inv = fn.invoke({"order": 7})
    assert inv.error is not None
    assert list(inv.error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert inv.error["errorType"] == "OrderRejected"
    assert inv.error["errorMessage"] == "order 7 rejected"
    assert inv.error["requestId"] == inv.request_id
    assert inv.error["stackTrace"] == [
        '  File "/var/task/app.py", line 9, in handler\n    check(event["order"])\n',
        '  File "/var/task/app.py", line 6, in check\n    raise OrderRejected(f"order {order} rejected")\n',
    ]
    # The runtime's one log record for it: \r between lines, indentation as U+00A0.
    assert ("[ERROR] OrderRejected: order 7 rejected\rTraceback (most recent call last):\r"
            "\u00a0\u00a0File \"/var/task/app.py\", line 9, in handler\r") in inv.logs
    # A function error is not a runtime failure: the REPORT line carries no status.
    assert "Status" not in inv.logs.splitlines()[-1]


def test_payloads_travel_as_json(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import decimal
        def handler(event, context):
            kind = event["kind"]
            if kind == "echo":
                return event["value"]
            if kind == "tuple":
                return (1, 2, {"a": (3,)})
            if kind == "decimal":
                return {"int": decimal.Decimal("5"), "frac": decimal.Decimal("1.25")}
            if kind == "set":
                return {1, 2}
            if kind == "bytes":
                return b"raw"
            if kind == "nan":
                return float("nan")
            if kind == "types":
                return [type(v).__name__ for v in event["values"]]
    """))
    assert fn.invoke({"kind": "tuple"}).payload == [1, 2, {"a": [3]}]
    assert fn.invoke({"kind": "decimal"}).raw_payload == b'{"int": 5, "frac": 1.25}'
    assert fn.invoke({"kind": "echo", "value": "h\u00e9"}).raw_payload == b'"h\\u00e9"'
    assert fn.invoke({"kind": "types", "values": [1, 1.5, "s", None, True]}).payload == \
        ["int", "float", "str", "NoneType", "bool"]
    assert fn.invoke({"kind": "bytes"}).raw_payload == b"raw"
    assert fn.invoke({"kind": "nan"}).raw_payload == b"NaN"
    bad = fn.invoke({"kind": "set"})
    assert bad.error == {"errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
                         "errorType": "Runtime.MarshalError", "requestId": bad.request_id, "stackTrace": []}
    assert not fn.invoke({"kind": "echo", "value": None}).cold_start, "a marshal error does not reset"


def test_six_megabyte_limits(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        def handler(event, context):
            return "x" * event["n"]
    """))
    big = fn.invoke({"n": 1, "pad": "y" * (6 * 1024 * 1024)})
    assert big.status_code == 413
    assert big.error == {"errorType": "RequestEntityTooLargeException",
                         "errorMessage": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"}
    assert fn.instances == [], "a rejected request never reaches an instance"
    fits = fn.invoke({"n": 6 * 1024 * 1024 + 100 - 2})
    assert fits.error is None and len(fits.raw_payload or b"") == 6291556
    over = fn.invoke({"n": 6 * 1024 * 1024 + 100 - 1})
    assert over.error == {"errorMessage": "Response payload size (6291557 bytes) exceeded maximum allowed payload "
                                          "size (6291556 bytes).", "errorType": "Function.ResponseSizeTooLarge"}
    # As awslambdaric's, the runtime ends after it: the next invocation starts afresh, without an error.
    after = fn.invoke({"n": 1})
    assert after.error is None and after.cold_start


def test_event_must_be_json(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("def handler(e, c):\n    return e\n"))
    with pytest.raises(ConfigError, match="cannot be sent as JSON"):
        fn.invoke({"when": object()})


def test_context_object(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import time
        def handler(event, context):
            first = context.get_remaining_time_in_millis()
            time.sleep(0.2)
            return {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "aws_request_id": context.aws_request_id,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
                "client_context": None if context.client_context is None else context.client_context.custom,
                "tenant_id": context.tenant_id,
                "remaining": [first, context.get_remaining_time_in_millis()],
            }
    """), name="orders", memory_mb=256, timeout_s=2)
    inv = fn.invoke({})
    p = inv.payload
    assert p["function_name"] == "orders" and p["function_version"] == "$LATEST"
    assert p["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:orders"
    assert p["memory_limit_in_mb"] == "256", "a string, read from the environment"
    assert p["aws_request_id"] == inv.request_id
    assert p["log_group_name"] == "/aws/lambda/orders"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", p["log_stream_name"])
    assert p["identity"] == [None, None] and p["client_context"] is None and p["tenant_id"] is None
    first, second = p["remaining"]
    assert 1800 < first <= 2000 and 150 < first - second < 400
    # A tenant id goes to a function with tenant isolation only (Lambda refuses it elsewhere).
    tenanted = sim.deploy("app.handler", code_dir=fn.config.code_dir, name="orders-t", timeout_s=2,
                          tenant_isolation=True)
    ctx = tenanted.invoke({}, client_context={"custom": {"k": "v"}}, identity={"cognitoIdentityId": "id-1"},
                          tenant_id="t-1").payload
    assert ctx["client_context"] == {"k": "v"} and ctx["identity"] == ["id-1", None] and ctx["tenant_id"] == "t-1"


def test_an_unqualified_invocation_runs_latest(sim: Simulator, code: Code) -> None:
    """The function sees $LATEST, as on Lambda; lambdasim's count of deploys stays ``version``."""
    src = code("""
        import os
        def handler(event, context):
            return [os.environ["AWS_LAMBDA_FUNCTION_VERSION"], context.function_version, context.log_stream_name]
    """)
    fn = sim.deploy("app.handler", code_dir=src)
    first = fn.invoke({})
    fn.redeploy(code_dir=src)
    second = fn.invoke({})
    for inv, deploys in ((first, "1"), (second, "2")):
        env, ctx, stream = inv.payload
        assert env == ctx == inv.executed_version == "$LATEST"
        assert "/[$LATEST]" in stream
        assert f"START RequestId: {inv.request_id} Version: $LATEST\n" in inv.logs
        assert inv.version == deploys
    assert [e.version for e in sim.trace if e.kind == "invoke"] == ["1", "2"]


def test_request_ids_differ_between_runs_unless_the_seed_is_given(make_sim: Callable[..., Simulator],
                                                                 code: Code) -> None:
    src = code("def handler(event, context):\n    return [context.aws_request_id, context.log_stream_name]\n")

    def first_ids(**settings: object) -> tuple[int, list[str]]:
        sim = make_sim(**settings)
        inv = sim.deploy("app.handler", code_dir=src).invoke({})
        assert inv.payload[0] == inv.request_id
        return sim.seed, inv.payload

    (seed_a, run_a), (seed_b, run_b) = first_ids(), first_ids()
    assert seed_a != seed_b and run_a[0] != run_b[0] and run_a[1] != run_b[1], "a new seed for each simulator"
    assert first_ids(seed=seed_a) == (seed_a, run_a), "sim.seed repeats a run"
    assert first_ids(seed=0) == first_ids(seed=0)
    assert first_ids(seed=0)[1] != first_ids(seed=1)[1]


def test_the_plugin_draws_a_seed_unless_one_is_set() -> None:
    from pytest_lambdasim.options import simulator_settings

    class Config:
        def __init__(self, option: int | None, ini: str) -> None:
            self.option, self.ini = option, ini

        def getoption(self, name: str) -> object:
            return self.option if name == "lambda_sim_seed" else None

        def getini(self, name: str) -> str:
            return {"lambda_sim_seed": self.ini, "lambda_sim_sandbox": "auto", "lambda_sim_routing": "warm",
                    "lambda_sim_network": "isolated", "lambda_sim_package": "host",
                    "lambda_sim_interpreter": "fallback"}[name]

    def seed(option: int | None, ini: str) -> object:
        return simulator_settings(cast(pytest.Config, Config(option, ini)))["seed"]

    assert seed(None, "") is None
    assert seed(None, "7") == 7 and seed(3, "7") == 3 and seed(0, "") == 0


def test_environment_and_working_directory(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import os
        def handler(event, context):
            return {"env": dict(os.environ), "cwd": os.getcwd(), "home": os.path.expanduser("~")}
    """), name="orders", environment={"TABLE": "orders-table"})
    inv = fn.invoke({})
    env, cwd = inv.payload["env"], inv.payload["cwd"]
    assert cwd == "/var/task"
    assert inv.payload["home"] == "/home/sbx_user1051"
    assert "HOME" not in env
    expected = {
        "_HANDLER": "app.handler", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{PY}", "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
        "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime", "TZ": ":UTC",
        "LANG": "en_US.UTF-8", "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin", "TABLE": "orders-table",
    }
    assert {k: env.get(k) for k in expected} == expected
    for key in ("_X_AMZN_TRACE_ID", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "LD_LIBRARY_PATH"):
        assert env.get(key), key
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0;Lineage=.*",
                        env["_X_AMZN_TRACE_ID"])
    assert fn.invoke({}).payload["env"]["_X_AMZN_TRACE_ID"] != env["_X_AMZN_TRACE_ID"], "one per invocation"


def test_reserved_and_oversized_environment_rejected(sim: Simulator, code: Code) -> None:
    src = code("def handler(e, c):\n    return 1\n")
    with pytest.raises(ConfigError, match="Reserved keys used in this request: AWS_REGION"):
        sim.deploy("app.handler", code_dir=src, environment={"AWS_REGION": "eu-west-1"})
    with pytest.raises(ConfigError, match="exceeded the 4KB limit"):
        sim.deploy("app.handler", code_dir=src, environment={"BIG": "x" * 4100})
    with pytest.raises(ConfigError, match="ephemeral_storage_mb=100"):
        sim.deploy("app.handler", code_dir=src, ephemeral_storage_mb=100)
    with pytest.raises(ConfigError, match="code_dir="):
        sim.deploy("app.handler", code_dir=src / "nope")


def test_logs_are_framed_like_lambda(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import logging, os, subprocess, sys
        print("init output")
        logger = logging.getLogger()
        logger.setLevel(logging.INFO)
        def handler(event, context):
            print("from print")
            sys.stderr.write("from stderr\\n")
            logging.info("from logging")
            logging.debug("not shown")
            if event.get("subprocess"):
                subprocess.run(["sh", "-c", "echo from a subprocess"], check=True)
            os.write(1, b"from fd 1\\n")
            return None
    """), memory_mb=192)
    # The fakefs sandbox refuses subprocesses (see README's table of escapes).
    subprocesses = sim.sandbox == "namespace"
    cold = fn.invoke({"subprocess": subprocesses})
    lines = cold.logs.splitlines()
    if not subprocesses:
        lines.insert(6, "from a subprocess")
    rid = cold.request_id
    assert lines[0].startswith("INIT_START Runtime Version: python:")
    assert lines[1] == "init output"
    assert lines[2] == f"START RequestId: {rid} Version: $LATEST"
    assert lines[3:5] == ["from print", "from stderr"]
    assert re.fullmatch(rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{rid}\tfrom logging", lines[5])
    assert lines[6:8] == ["from a subprocess", "from fd 1"]
    assert lines[8] == f"END RequestId: {rid}"
    assert re.fullmatch(
        rf"REPORT RequestId: {rid}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 192 MB\t"
        r"Max Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms\t", lines[9])
    assert len(lines) == 10
    warm = fn.invoke({})
    assert warm.logs.splitlines()[0] == f"START RequestId: {warm.request_id} Version: $LATEST"
    assert "Init Duration" not in warm.logs and "init output" not in warm.logs


def test_log_records_keep_their_boundaries(sim: Simulator, code: Code) -> None:
    """Text written without a newline runs neither into a record nor into START or END; a
    record (``logging``'s, with its traceback, ``context.log``'s, the error's) ends its line."""
    fn = sim.deploy("app.handler", code_dir=code("""
        import logging, os
        print("init, no newline", end="")
        def handler(event, context):
            print("printed", end="")
            try:
                {}["key"]
            except KeyError:
                logging.exception("lookup failed")
            logging.error("next record")
            context.log("from context.log")
            context.log("again")
            os.write(1, b"from fd 1, no newline")
            if event.get("fail"):
                raise ValueError("bad")
            if event.get("exit"):
                os._exit(3)
            print("last", end="")
    """))
    inv = fn.invoke({})
    rid = inv.request_id
    lines = inv.logs.splitlines()
    assert lines[1] == "init, no newline" and lines[2].startswith(f"START RequestId: {rid} Version: ")
    assert lines[3] == "printed"
    assert re.fullmatch(rf"\[ERROR\]\t\S+\t{rid}\tlookup failed", lines[4])
    assert lines[5] == "Traceback (most recent call last):"
    assert lines[-7] == "KeyError: 'key'", "the traceback ends its own line"
    assert re.fullmatch(rf"\[ERROR\]\t\S+\t{rid}\tnext record", lines[-6])
    # What the function writes itself is one stream, as stdout is on Lambda: only records are apart.
    assert lines[-5:-1] == ["from context.log", "again", "from fd 1, no newlinelast", f"END RequestId: {rid}"]
    assert lines[-1].startswith("REPORT ")
    failed = fn.invoke({"fail": True}).logs
    assert "from fd 1, no newline\n[ERROR] ValueError: bad\r" in failed
    exited = fn.invoke({"exit": True})
    assert f"from fd 1, no newline\nRequestId: {exited.request_id} Error: Runtime exited with error: exit status 3\n" \
        in exited.logs


def test_logging_default_level_is_warning(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("""
        import logging
        def handler(event, context):
            logging.info("hidden")
            logging.warning("shown")
    """))
    logs = fn.invoke({}).logs
    assert "hidden" not in logs and "[WARNING]" in logs
    debug = sim.deploy("app.handler", code_dir=code("import logging\ndef handler(e, c):\n    logging.debug('dbg')\n"),
                       name="debug", environment={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    assert "[DEBUG]" in debug.invoke({}).logs


def test_trace_records_lifecycle(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("def handler(e, c):\n    return 1\n"))
    fn.invoke({})
    fn.scale_down()
    kinds = [e.kind for e in sim.trace]
    # The namespace sandbox freezes an instance between invocations; a frozen one is destroyed as it is.
    frozen = ["frozen"] if sim.sandbox == "namespace" else []
    assert kinds == ["deploy", "instance_created", "invoke", *frozen, "destroyed"]
    assert json.loads(json.dumps([e.to_dict() for e in sim.trace]))[2]["detail"]["cold_start"] is True


@pytest.mark.parametrize("handler", ["app.orders.main.handler", "app/orders/main.handler"])
def test_handler_in_a_package(sim: Simulator, code: Code, handler: str) -> None:
    src = code(files={"app/__init__.py": "", "app/orders/__init__.py": "",
                      "app/orders/main.py": "def handler(event, context):\n    return __name__\n"})
    assert sim.deploy(handler, code_dir=src, name="orders").invoke({}).payload == "app.orders.main"


def test_error_record_without_message(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", code_dir=code("def handler(e, c):\n    raise ValueError()\n"))
    inv = fn.invoke({})
    assert inv.error is not None and inv.error["errorMessage"] == ""
    assert "[ERROR] ValueError\rTraceback (most recent call last):\r" in inv.logs


def test_a_sandbox_that_cannot_enter_reports_why() -> None:
    """A failure to build the instance is the harness's, said with its cause, not an exit status."""
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child ends in os._exit
        try:
            mine.close()

            def enter() -> None:
                raise PermissionError(13, "Permission denied", "/etc/redis")

            # Only what the runtime reads before it enters the instance.
            _runtime.run(theirs, cast(InstanceSpec, {"env": {}, "sys_path_prefix": []}), enter=enter)
        finally:
            os._exit(1)
    theirs.close()
    try:
        assert Channel(mine).recv(10.0) == (
            "sandbox_error", "PermissionError: [Errno 13] Permission denied: '/etc/redis'")
    finally:
        _, status = os.waitpid(pid, 0)
        mine.close()
    assert os.waitstatus_to_exitcode(status) == 70
