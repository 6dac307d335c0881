"""YAML scenarios: validation with file:line:key messages, and runs through the Simulator.

a. every kind of mistake in a file is a ScenarioError naming the file, line and key;
b. YAML is read as JSON reads it, `{i}` numbers the invocations, code_dir is relative
   to the file, and step types plug into a registry;
c. (sandbox) scenarios run: passing, failing at an expect with its line and message,
   `as` names, and the shipped scenarios/lost_tmp.yaml passes.
"""

from __future__ import annotations

import os
import pickle
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from lambdasim import ConfigError, LambdaSimError, SandboxUnavailable, Simulator
from lambdasim._scenario import (
    STEPS,
    Deploy,
    Invoke,
    Node,
    Redeploy,
    RunContext,
    ScenarioError,
    ScenarioFailure,
    Step,
    load_scenario,
    run_file,
    step,
)
from tests.conftest import REQUIRE_SANDBOX

REPO = Path(__file__).resolve().parent.parent
LOST_TMP = REPO / "scenarios" / "lost_tmp.yaml"

ECHO = """\
import time

def handler(event, context):
    print("event", event)
    time.sleep(event.get("sleep", 0))
    for n in range(event.get("lines", 0)):
        print("line", n)
    if event.get("fail"):
        raise ValueError("no such order")
    return event
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    """A scenario file next to code/app.py (the echo handler)."""
    code = tmp_path / "code"
    if not code.exists():
        code.mkdir()
        (code / "app.py").write_text(ECHO)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def factory(**settings: Any) -> Simulator:
    try:
        return Simulator(**settings)
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")


DEPLOY = "  - deploy: {handler: app.handler, code_dir: code}\n"

# (name, file text, line, key, reason)
MISTAKES: list[tuple[str, str, int, str | None, str]] = [
    ("not a whole number",
     "steps:\n" + DEPLOY + "  - invoke:\n      event: {a: 1}\n      count: three\n",
     5, "steps[1].invoke.count", "'three' is not a whole number; use a number >= 1"),
    ("too small",
     "steps:\n" + DEPLOY + "  - invoke: {concurrency: 0}\n",
     3, "steps[1].invoke.concurrency", "0 is too small; use a number >= 1"),
    ("unknown step",
     "steps:\n" + DEPLOY + "  - invok: {}\n",
     3, "steps[1].invok",
     "unknown step 'invok' (did you mean 'invoke'?); known steps: deploy, expect, invoke, redeploy, scale_down"),
    ("unknown key",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, memroy_mb: 256}\n",
     2, "steps[0].deploy.memroy_mb",
     "unknown key 'memroy_mb' (did you mean 'memory_mb'?); allowed keys: handler, code_dir, name, memory_mb, "
     "timeout_s, ephemeral_storage_mb, environment, reserved_concurrency, keepalive_s, layers"),
    ("unknown top-level key",
     "name: x\nstep: []\n",
     2, "step", "unknown key 'step' (did you mean 'steps'?); allowed keys: name, description, simulator, steps"),
    ("missing key",
     "steps:\n  - deploy: {handler: app.handler}\n",
     2, "steps[0].deploy", "missing key 'code_dir'; required: handler, code_dir"),
    ("missing steps",
     "name: x\n",
     1, None, "missing key 'steps'; required: steps"),
    ("no steps",
     "steps: []\n",
     1, "steps", "there are no steps; add at least one"),
    ("steps not a list",
     "steps: {deploy: {}}\n",
     1, "steps", "{'deploy': {}} is not a list; write one item per line, each after '- '"),
    ("empty file",
     "",
     1, None, "the file is empty; a scenario needs at least steps:"),
    ("a key twice",
     "steps:\n  - deploy:\n      handler: app.handler\n      code_dir: code\n      handler: x.y\n",
     5, "steps[0].deploy.handler", "the key 'handler' is given twice (first on line 3); keep one"),
    ("settings not indented under the step",
     "steps:\n  - deploy:\n    handler: app.handler\n    code_dir: code\n",
     2, "steps[0]",
     "a step has one key, its type, but this one has 3: deploy, handler, code_dir; are the settings meant to be "
     "indented under 'deploy:'?"),
    ("a step that is not a mapping",
     "steps:\n  - deploy\n",
     2, "steps[0]",
     "'deploy' is not a step; write a step as '- name: {settings}' with name one of deploy, expect, invoke, "
     "redeploy, scale_down"),
    ("a bad handler",
     "steps:\n  - deploy: {handler: app, code_dir: code}\n",
     2, "steps[0].deploy.handler", "'app' is not module.function; use e.g. app.handler"),
    ("a setting Lambda rejects",
     "steps:\n  - deploy:\n      handler: app.handler\n      code_dir: code\n      memory_mb: 64\n",
     5, "steps[0].deploy.memory_mb", "memory_mb=64 is not valid; Lambda allows 128 to 10240 MB."),
    ("a redeploy setting Lambda rejects",
     "steps:\n" + DEPLOY + "  - redeploy: {timeout_s: 1000}\n",
     3, "steps[1].redeploy.timeout_s",
     "timeout_s=1000.0 is not valid; Lambda allows more than 0 and at most 900 seconds."),
    ("an environment value that is not a string",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, environment: {PORT: 8080}}\n",
     2, "steps[0].deploy.environment.PORT", "8080 is not a string; environment values are strings: quote it, '8080'"),
    ("a reserved environment variable",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, environment: {AWS_REGION: x}}\n",
     2, "steps[0].deploy.environment",
     "Lambda was unable to configure your environment variables because the environment variables you have "
     "provided contains reserved keys that are currently not supported for modification. Reserved keys used in "
     "this request: AWS_REGION"),
    ("a function deployed twice",
     "steps:\n" + DEPLOY + DEPLOY,
     3, "steps[1].deploy",
     "a function named 'app' is already deployed; use redeploy for a new version of it, or give this one another "
     "name:"),
    ("an unknown function",
     "steps:\n" + DEPLOY + "  - invoke: {function: ap}\n",
     3, "steps[1].invoke.function",
     "no function 'ap' is deployed by an earlier step (did you mean 'app'?); deployed: app"),
    ("no function yet",
     "steps:\n  - invoke: {}\n",
     2, "steps[0].invoke", "no function is deployed yet; add a deploy step before this one"),
    ("which function",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, name: a}\n"
     "  - deploy: {handler: app.handler, code_dir: code, name: b}\n  - scale_down:\n",
     4, "steps[2].scale_down", "2 functions are deployed (a, b); say which with function:"),
    ("an unknown invocation",
     "steps:\n" + DEPLOY + "  - invoke: {as: first}\n  - expect: {invocation: frist, payload: 1}\n",
     4, "steps[2].expect.invocation",
     "no earlier invoke step has as: frist (did you mean 'first'?); named: first"),
    ("a name given twice",
     "steps:\n" + DEPLOY + "  - invoke: {as: a}\n  - invoke: {as: a}\n",
     4, "steps[2].invoke.as", "'a' already names the invocation of step 2; use another name"),
    ("no invocation to check",
     "steps:\n" + DEPLOY + "  - expect: {payload: 1}\n",
     3, "steps[1].expect", "there is no invocation to check yet; add an invoke step before this one"),
    ("nothing to check",
     "steps:\n" + DEPLOY + "  - expect: {}\n",
     3, "steps[1].expect",
     "nothing to check; use one or more of payload, payload_contains, error, cold_start, status_code, "
     "logs_contain, instances"),
    ("an invocation and a function in one expect",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {payload: 1, instances: 1}\n",
     4, "steps[2].expect", "payload checks an invocation and instances a function; split them into two expects"),
    ("an error that is not a mapping",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {error: Boom}\n",
     4, "steps[2].expect.error",
     "'Boom' is not a mapping of error keys; use e.g. {errorType: Runtime.ImportModuleError}, or null for no error"),
    ("not true or false",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {cold_start: yes}\n",
     4, "steps[2].expect.cold_start", "'yes' is not true or false"),
    ("an event that is not JSON",
     "steps:\n" + DEPLOY + "  - invoke: {event: {data: !!binary aGk=}}\n",
     3, "steps[1].invoke.event.data",
     "b'hi' is not a JSON value; use strings, numbers, true, false, null, lists and mappings"),
    ("a key that is not a string",
     "steps:\n" + DEPLOY + "  - invoke:\n      event:\n        1: one\n",
     5, "steps[1].invoke.event[1]", "the key 1 is not a string; quote it: '1'"),
    ("an unknown routing",
     "simulator: {routing: hot}\nsteps:\n" + DEPLOY,
     1, "simulator.routing", "'hot' is not a routing policy; use one of warm, fresh, random"),
    ("an unknown service",
     "simulator:\n  services: [redis, postgres]\nsteps:\n" + DEPLOY,
     2, "simulator.services[1]", "'postgres' is not a service lambdasim runs; use aws, redis, memcached."),
    ("not YAML",
     "steps:\n  - deploy: {handler: app.handler\n  - x\n",
     4, None, "not valid YAML: expected ',' or '}', but got '<stream end>' (while parsing a flow mapping on line 2)"),
]


@pytest.mark.parametrize(("text", "line", "key", "reason"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_each_mistake_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str | None,
                                               reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    e = info.value
    assert (e.file, e.line, e.key, e.reason) == (str(path), line, key, reason)
    assert str(e) == (f"{path}:{line}: {key}: {reason}" if key else f"{path}:{line}: {reason}")


def test_code_dir_that_is_not_a_directory(tmp_path: Path) -> None:
    path = write(tmp_path, "steps:\n  - deploy: {handler: app.handler, code_dir: ../nope}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == (f"{path}:2: steps[0].deploy.code_dir: '../nope' is not a directory (looked for "
                               f"{tmp_path.parent / 'nope'}); code_dir is relative to the scenario file")


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.line, info.value.key) == (None, None)
    assert str(info.value) == f"{path}: cannot read the scenario: No such file or directory"


def test_the_path_is_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "steps:\n" + DEPLOY + "  - invoke:\n      event: {a: 1}\n      count: three\n", "x.yaml")
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(ScenarioError) as info:
        load_scenario(f"{tmp_path.name}/x.yaml")
    assert str(info.value) == (f"{tmp_path.name}/x.yaml:5: steps[1].invoke.count: 'three' is not a whole number; "
                               "use a number >= 1")
    # A plugin can name the file as the user knows it, wherever the process runs.
    monkeypatch.chdir("/")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "x.yaml", display="scenarios/x.yaml")
    assert (info.value.file, info.value.line) == ("scenarios/x.yaml", 5)
    assert str(info.value).startswith("scenarios/x.yaml:5: steps[1].invoke.count: 'three'")
    scenario = load_scenario(write(tmp_path, "steps:\n" + DEPLOY, "ok.yaml"), display="ok.yaml")
    assert scenario.file == "ok.yaml" and scenario.name == "ok"
    deploy = scenario.steps[0]
    assert isinstance(deploy, Deploy) and deploy.code_dir == tmp_path / "code"


def test_errors_are_config_errors_and_survive_pickling() -> None:
    assert issubclass(ScenarioError, ConfigError) and issubclass(ScenarioError, LambdaSimError)
    assert issubclass(ScenarioFailure, AssertionError)
    error = ScenarioError("s.yaml", 3, "steps[0]", "bad")
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.file, again.line, again.key) == ("s.yaml:3: steps[0]: bad", "s.yaml", 3, "steps[0]")
    failure = ScenarioFailure("s.yaml", 7, 2, "expect", "payload: expected 1, got 2")
    again_f = pickle.loads(pickle.dumps(failure))
    assert (str(again_f), again_f.line, again_f.step_index) == ("s.yaml:7: step 3 (expect): payload: expected 1, "
                                                                "got 2", 7, 2)


def test_values_are_read_as_json_reads_them(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke:
              event: {country: NO, on: off, day: 2024-01-01, mode: 0777, at: 1:20, t: true, n: 12, x: 1.5,
                      e: 1e3, z: null, s: "3"}
        """)
    (_, invoke) = load_scenario(path).steps
    assert isinstance(invoke, Invoke)
    assert invoke.event == {"country": "NO", "on": "off", "day": "2024-01-01", "mode": "0777", "at": "1:20",
                            "t": True, "n": 12, "x": 1.5, "e": 1000.0, "z": None, "s": "3"}


def test_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: &base {handler: app.handler, code_dir: code, memory_mb: 256}
          - deploy: {<<: *base, name: other, memory_mb: 512}
        """)
    first, second = load_scenario(path).steps
    assert isinstance(first, Deploy) and isinstance(second, Deploy)
    assert (first.name, first.settings.memory_mb) == ("app", 256)
    assert (second.name, second.settings.memory_mb, second.handler) == ("other", 512, "app.handler")


def test_i_numbers_the_invocations_of_a_step(tmp_path: Path) -> None:
    path = write(tmp_path, "steps:\n" + DEPLOY + textwrap.indent(textwrap.dedent("""\
        - invoke:
            event: {order: "{i}", id: "order-{i}", "{i}": ["{i}", "x{i}y{i}", 7], text: "{j} {}"}
            count: 3
        """), "  "))
    invoke = load_scenario(path).steps[1]
    assert isinstance(invoke, Invoke)
    assert invoke.events() == [
        {"order": i, "id": f"order-{i}", str(i): [i, f"x{i}y{i}", 7], "text": "{j} {}"} for i in range(3)
    ]


def test_code_dir_is_relative_to_the_file_not_the_working_directory(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "project" / "src").mkdir(parents=True)
    (tmp_path / "project" / "scenarios").mkdir()
    path = tmp_path / "project" / "scenarios" / "s.yaml"
    path.write_text("steps:\n  - deploy: {handler: app.handler, code_dir: ../src, layers: [../src]}\n"
                    "  - redeploy: {code_dir: .}\n")
    monkeypatch.chdir(tmp_path)
    deploy, redeploy = load_scenario(path).steps
    assert isinstance(deploy, Deploy) and isinstance(redeploy, Redeploy)
    assert deploy.code_dir == tmp_path / "project" / "src"
    assert deploy.settings.layers == (tmp_path / "project" / "src",)
    assert redeploy.code_dir == tmp_path / "project" / "scenarios"


def test_defaults_and_settings(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: my scenario
        description: what it shows
        simulator: {routing: fresh, seed: 7, services: {redis: embedded}}
        steps:
          - deploy: {handler: app.handler, code_dir: code, reserved_concurrency: null}
          - invoke:
          - scale_down:
        """)
    scenario = load_scenario(path)
    assert (scenario.name, scenario.description) == ("my scenario", "what it shows")
    assert scenario.settings == {"routing": "fresh", "seed": 7, "services": {"redis": "embedded"}}
    deploy, invoke, _ = scenario.steps
    assert isinstance(deploy, Deploy) and isinstance(invoke, Invoke)
    assert deploy.settings.kwargs() == {"reserved_concurrency": None}
    assert (invoke.event, invoke.count, invoke.concurrency, invoke.name, invoke.function) == ({}, 1, 1, None, None)
    assert [s.kind for s in scenario.steps] == ["deploy", "invoke", "scale_down"]
    assert [s.line for s in scenario.steps] == [5, 6, 7]
    assert load_scenario(write(tmp_path, "steps:\n" + DEPLOY, "unnamed.yaml")).name == "unnamed"


def test_a_new_step_type_plugs_into_the_registry(tmp_path: Path) -> None:
    @step("note")
    @dataclass(frozen=True)
    class Note(Step):
        text: str = ""

        @classmethod
        def from_yaml(cls, node: Node) -> Note:
            f = node.fields(("text",), required=("text",))
            return cls(text=f["text"].as_str("write a note"), at=node)

        def run(self, ctx: RunContext) -> str:
            if self.text == "fail":
                ctx.fail("the note says fail")
            return self.text

    class FakeSimulator:
        def __init__(self) -> None:
            self.trace: list[Any] = []

        def __enter__(self) -> FakeSimulator:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    fake = cast(Any, FakeSimulator)
    try:
        result = load_scenario(write(tmp_path, "steps:\n  - note: {text: hello}\n")).run(fake)
        assert (result.passed, [s.summary for s in result.steps]) == (True, ["hello"])
        path = write(tmp_path, "steps:\n  - note: {text: hi}\n  - note: {text: fail}\n", "fail.yaml")
        with pytest.raises(ScenarioFailure) as info:
            load_scenario(path).run(fake)
        assert str(info.value) == f"{path}:3: step 2 (note): the note says fail"
        with pytest.raises(ScenarioError, match=r"s\.yaml:2: steps\[0\]\.note: missing key 'text'"):
            load_scenario(write(tmp_path, "steps:\n  - note: {}\n"))
    finally:
        del STEPS["note"]


def test_a_setting_the_simulator_rejects_points_at_the_simulator_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsimulator:\n  sandbox: chroot\nsteps:\n" + DEPLOY)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path).run()
    assert str(info.value) == (f"{path}:3: simulator: sandbox='chroot' is not a sandbox lambdasim knows; use "
                               "'auto' or 'namespace'.")


# -- runs in the sandbox --------------------------------------------------------------------


@pytest.mark.sandbox
def test_a_passing_scenario_records_every_step(tmp_path: Path) -> None:
    (tmp_path / "code_v2").mkdir()
    (tmp_path / "code_v2" / "app.py").write_text(
        "import os\ndef handler(event, context):\n    return {'v': 2, 'stage': os.environ.get('STAGE')}\n")
    path = write(tmp_path, """\
        name: everything
        simulator: {routing: warm}
        steps:
          - deploy: {handler: app.handler, code_dir: code, name: orders, memory_mb: 256, timeout_s: 2}
          - invoke: {event: {n: "{i}"}, count: 2, as: first}
          - expect: {invocation: first, payload: {n: 1}, cold_start: false, status_code: 200, error: null}
          - invoke: {function: orders, event: {sleep: 0.3}, count: 3, concurrency: 3}
          - expect: {function: orders, instances: 3}
          - scale_down: {keep: 1}
          - expect: {instances: 1}
          - invoke: {event: {fail: true}, as: failed}
          - expect:
              invocation: failed
              error: {errorType: ValueError, errorMessage: no such order}
              logs_contain: "event {'fail': True}"
          - redeploy: {code_dir: code_v2, environment: {STAGE: test}}
          - expect: {instances: 0}
          - invoke: {}
          - expect: {payload_contains: {v: 2}, cold_start: true}
          - expect: {payload: {v: 2, stage: test}}
          - expect: {invocation: first, payload: {n: 1}}
        """)
    result = run_file(path, factory)
    assert result.passed and result.name == "everything" and result.file == str(path)
    assert [s.kind for s in result.steps] == ["deploy", "invoke", "expect", "invoke", "expect", "scale_down",
                                              "expect", "invoke", "expect", "redeploy", "expect", "invoke", "expect",
                                              "expect", "expect"]
    assert [s.line for s in result.steps] == [4, 5, 6, 7, 8, 9, 10, 11, 12, 16, 17, 18, 19, 20, 21]
    assert all(s.outcome == "passed" and s.duration_s >= 0 and s.message is None for s in result.steps)
    assert result.steps[5].summary == "removed 2 instance(s) of orders"
    assert result.steps[9].summary == "redeployed orders as version 2"
    assert sorted(result.invocations) == ["failed", "first"]
    assert result.invocations["first"].payload == {"n": 1}
    assert result.duration_s >= sum(s.duration_s for s in result.steps)
    assert {e["kind"] for e in result.trace} >= {"deploy", "invoke", "redeploy", "destroyed"}


@pytest.mark.sandbox
def test_a_failed_expect_names_its_line_step_and_the_difference(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {event: {found: false, items: [1, 2]}, as: first}
          - invoke: {event: {other: 1}}
          - expect:
              invocation: first
              payload: {found: false, items: [1, 3]}
          - expect: {payload: {never: checked}}
        """)
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    e = info.value
    assert (e.file, e.line, e.step_index, e.step) == (str(path), 5, 3, "expect")
    first, *rest = str(e).splitlines()
    assert first == (f"{path}:5: step 4 (expect): invocation 'first' payload: expected "
                     '{"found": false, "items": [1, 3]}, got {"found": false, "items": [1, 2]} '
                     "(first difference: items[1] is 2, not 3)")
    assert rest[0] == "  its logs (last 5 lines):"  # a cold start: INIT_START, START, the print, END, REPORT
    assert rest[1].startswith("    INIT_START Runtime Version: python:")
    assert rest[3] == "    event {'found': False, 'items': [1, 2]}"
    assert rest[-1].startswith("    REPORT RequestId: ")
    assert e.result is not None and not e.result.passed
    assert [(s.kind, s.outcome) for s in e.result.steps] == [("deploy", "passed"), ("invoke", "passed"),
                                                               ("invoke", "passed"), ("expect", "failed")]
    assert e.result.steps[-1].message == e.reason


@pytest.mark.sandbox
def test_a_failed_expect_shows_the_error_and_the_log_tail(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {event: {fail: true, lines: 5}}
          - expect: {payload: {ok: true}, cold_start: false}
        """)
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    lines = str(info.value).splitlines()
    assert lines[0] == (f"{path}:4: step 3 (expect): the last invocation (step 2) payload: expected "
                        '{"ok": true}, got an error (ValueError: no such order); cold_start: expected false, got '
                        "true (instance app-1)")
    assert lines[1] == "  its error: ValueError: no such order"
    # 14 lines: INIT_START, START, the event, 5 lines, the error and traceback (4), END, REPORT
    assert lines[2] == "  its logs (last 10 lines):"
    assert len(lines) == 13 and lines[3] == "    line 1"
    assert any(line.endswith('raise ValueError("no such order")') for line in lines)  # awslambdaric's traceback
    assert lines[-1].startswith("    REPORT RequestId: ") and "Init Duration" in lines[-1]


@pytest.mark.sandbox
def test_expect_error_and_instances_failures(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {event: {x: 1}, as: ok}
          - expect: {function: app, instances: 2}
        """)
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    assert str(info.value) == f"{path}:4: step 3 (expect): function 'app' instances: expected 2, got 1 (app-1 idle)"
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {event: {x: 1}, as: ok}
          - expect: {invocation: ok, error: {errorType: Sandbox.Timedout}}
        """, "error.yaml")
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    assert str(info.value).splitlines()[0] == (f"{path}:4: step 3 (expect): invocation 'ok' error: expected "
                                               '{"errorType": "Sandbox.Timedout"}, got none (payload {"x": 1})')


@pytest.mark.sandbox
def test_i_and_as_across_steps(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {event: {order: "{i}", id: "order-{i}"}, count: 3, as: orders}
          - invoke: {event: {order: "{i}"}, count: 2, concurrency: 2, as: pair}
          - invoke: {event: {last: true}}
          - expect: {invocation: orders, payload: {order: 2, id: order-2}, cold_start: false}
          - expect: {invocation: pair, payload: {order: 1}}
          - expect: {payload: {last: true}}
        """)
    result = run_file(path, factory)
    assert result.passed
    assert result.invocations["orders"].payload == {"order": 2, "id": "order-2"}


@pytest.mark.sandbox
def test_relative_code_dir_runs_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "steps:\n" + DEPLOY + "  - invoke: {event: {a: 1}}\n  - expect: {payload: {a: 1}}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_file(os.path.relpath(path), factory).passed


@pytest.mark.sandbox
def test_the_shipped_lost_tmp_scenario_passes() -> None:
    result = run_file(LOST_TMP, factory)
    assert result.passed
    assert result.name == "state in /tmp is lost on another instance"
    put, get = result.invocations["put"], result.invocations["get"]
    assert put.instance_id != get.instance_id
    assert get.payload == {"found": False}
