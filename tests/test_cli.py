"""``lambdasim invoke``, run in-process through ``main(argv)``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdasim.cli import main
from tests.conftest import Code

pytestmark = pytest.mark.sandbox


def test_invoke_bundled_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke"]) == 0
    out, err = capsys.readouterr()
    response = json.loads(out)
    assert response["message"] == "Hello, world!"
    assert response["write_to_code_dir"] == "[Errno 30] Read-only file system: '/var/task/cache.json'"
    assert "START RequestId:" in err and "REPORT RequestId:" in err and "hello world" in err


def test_invoke_with_event_and_file(code: Code, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("def handler(event, context):\n    print('got', event)\n    return {'sum': event['a'] + 1}\n")
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--event", '{"a": 1}']) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"sum": 2}
    assert "got {'a': 1}" in err
    event_file = tmp_path / "event.json"
    event_file.write_text('{"a": 41}')
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--event", f"@{event_file}", "-q"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"sum": 42} and err == ""


def test_invoke_function_error_exits_non_zero(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("def handler(event, context):\n    raise ValueError('bad input')\n")
    assert main(["invoke", "app.handler", "--code-dir", str(src)]) == 1
    out, err = capsys.readouterr()
    error = json.loads(out)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad input")
    assert "[ERROR] ValueError: bad input" in err


def test_invoke_options_reach_the_function(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("""
        import os, shutil
        def handler(event, context):
            return [context.function_name, context.memory_limit_in_mb, os.environ["STAGE"],
                    shutil.disk_usage("/tmp").total // 2**20, context.get_remaining_time_in_millis() > 4000]
    """)
    argv = ["invoke", "app.handler", "--code-dir", str(src), "--name", "orders", "--memory", "256",
            "--timeout", "5", "--env", "STAGE=test", "--ephemeral-storage", "1024", "-q"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == ["orders", "256", "test", 1024, True]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invoke", "--event", "{not json"], "--event: not valid JSON at line 1, column 2"),
        (["invoke", "--event", "@/no/such/file.json"], "cannot read /no/such/file.json"),
        (["invoke", "--env", "NOEQUALS"], "--env 'NOEQUALS': write it as KEY=VALUE"),
        (["invoke", "--memory", "64"], "memory_mb=64 is not valid; Lambda allows 128 to 10240 MB"),
        (["invoke", "app.handler", "--code-dir", "/no/such/dir"], "code_dir='/no/such/dir' is not a directory"),
    ],
)
def test_harness_errors_say_what_to_fix(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err



@pytest.mark.services
def test_invoke_starts_the_services_it_is_given(code: Code, capsys: pytest.CaptureFixture[str]) -> None:
    src = code("""
        import os
        def handler(event, context):
            return {name: name in os.environ for name in ("REDIS_URL", "MEMCACHED_URL", "AWS_ENDPOINT_URL")}
    """)
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--services", "redis=binary,memcached", "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"REDIS_URL": True, "MEMCACHED_URL": True, "AWS_ENDPOINT_URL": False}
    assert main(["invoke", "app.handler", "--code-dir", str(src), "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == {"REDIS_URL": False, "MEMCACHED_URL": False,
                                                   "AWS_ENDPOINT_URL": False}
    assert main(["invoke", "app.handler", "--code-dir", str(src), "--services", "redis=kubernetes"]) == 2
    assert "--services: services['redis']: provider='kubernetes' is not known" in capsys.readouterr().err
