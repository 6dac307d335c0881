"""``lambdasim chaos``: Hypothesis drives a function through lifecycles and writes the shortest failing
sequence it finds as a scenario file, which must load and fail when run."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lambdasim import ConfigError
from lambdasim._scenario import STEPS, Deploy, Invoke, ScenarioError, ScenarioFailure, load_scenario, run_file
from lambdasim.cli import main

pytest.importorskip("hypothesis", reason="lambdasim chaos needs Hypothesis: pip install 'lambdasim[chaos]'")

from lambdasim._chaos import flow

# Small budgets keep each search to a few seconds; the seeds are fixed, so are the results.
BUDGET = ["--examples", "15", "--steps", "5", "--shrink-runs", "40"]

# A warm-only bug: /tmp says "initialised", but the module global that initialisation set is gone
# once the runtime restarted (a crash, a timeout, an out-of-memory reset); /tmp survives that.
CRASH_BUG = """
import os
TOKEN = None
def handler(event, context):
    global TOKEN
    if not os.path.exists("/tmp/ready"):
        TOKEN = "secret"
        open("/tmp/ready", "w").close()
    return {"token": TOKEN.upper()}
"""

# "get" reads the session a "put" wrote to /tmp: it works while both land on one warm instance.
SESSION_BUG = """
def handler(event, context):
    if event.get("action") == "put":
        with open("/tmp/session", "w") as f:
            f.write("s1")
        return {"stored": True}
    with open("/tmp/session") as f:
        return {"session": f.read()}
"""

# Counts its invocations in /tmp and copes with /tmp being empty: correct under any lifecycle.
CORRECT = """
import os
def handler(event, context):
    n = int(open("/tmp/n").read()) if os.path.exists("/tmp/n") else 0
    with open("/tmp/n", "w") as f:
        f.write(str(n + 1))
    return {"n": n + 1}
"""

SESSION_EVENTS = [{"action": "put"}, {"action": "get"}]


def _project(tmp_path: Path, source: str, events: list[Any] | None = None) -> Path:
    code = tmp_path / "src"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(source).lstrip("\n"))
    if events is not None:
        (tmp_path / "events.json").write_text(json.dumps(events))
    return tmp_path


def _chaos(root: Path, *extra: str, out: str = "scenarios/chaos-failure.yaml") -> list[str]:
    return ["chaos", "--handler", "app.handler", "--code-dir", str(root / "src"), "--out", str(root / out),
            *BUDGET, *extra]


def _kinds(path: Path) -> list[str]:
    return [step.kind for step in load_scenario(path).steps]


@pytest.mark.sandbox
def test_finds_a_crash_only_bug_and_writes_a_scenario_that_reproduces_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "crash" not in STEPS:
        pytest.skip("the crash step is not in this build's scenario format yet")
    root = _project(tmp_path, CRASH_BUG)
    out = root / "scenarios" / "chaos-failure.yaml"
    assert main(_chaos(root, "--seed", "1")) == 1
    printed = capsys.readouterr().out
    assert "Invariant no-error does not hold: the invocation failed with AttributeError: 'NoneType' object has " \
           "no attribute 'upper'" in printed
    assert f"Wrote {out}; run it with: lambdasim run {out}" in printed
    assert "Re-ran it: it fails" in printed

    scenario = load_scenario(out)
    kinds = [step.kind for step in scenario.steps]
    assert kinds == ["deploy", "invoke", "crash", "invoke", "expect"]  # shrunk to the three steps that matter
    lifecycle = kinds[1:-1]
    assert len(lifecycle) <= 4
    assert "code_dir: ../src" in out.read_text()  # relative to the scenario file, ready to commit
    with pytest.raises(ScenarioFailure, match=r"step 5 \(expect\): invocation 'failing' error: expected none"):
        run_file(out)
    assert main(["run", str(out)]) == 1  # and the same through `lambdasim run`


@pytest.mark.sandbox
def test_finds_a_session_in_tmp_with_the_core_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, SESSION_BUG, SESSION_EVENTS)
    out = root / "scenarios" / "chaos-failure.yaml"
    assert main(_chaos(root, "--events", str(root / "events.json"), "--seed", "0")) == 1
    printed = capsys.readouterr().out
    assert "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/session'" in printed
    kinds = _kinds(out)
    assert kinds[0] == "deploy" and kinds[-2:] == ["invoke", "expect"]
    assert len(kinds) - 2 <= 4
    text = out.read_text()
    assert "- invoke: {event: {action: get}, as: failing}" in text
    assert text.rstrip().endswith("- expect: {invocation: failing, error: null}")
    with pytest.raises(ScenarioFailure, match="FileNotFoundError"):
        run_file(out)


@pytest.mark.sandbox
def test_a_correct_handler_has_no_counterexample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, CORRECT)
    assert main(_chaos(root, "--examples", "8", "--steps", "4")) == 0
    assert "No counterexample: the invariant(s) held in all 8 examples." in capsys.readouterr().out
    assert not (root / "scenarios").exists()


@pytest.mark.sandbox
def test_the_same_seed_gives_the_same_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, SESSION_BUG, SESSION_EVENTS)
    argv = _chaos(root, "--events", str(root / "events.json"), "--seed", "7", "--concurrency", "1")
    outputs = []
    for _ in range(2):
        assert main(argv) == 1
        outputs.append((capsys.readouterr().out, (root / "scenarios" / "chaos-failure.yaml").read_text()))
    assert outputs[0] == outputs[1]


@pytest.mark.sandbox
def test_an_expression_invariant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, CORRECT)
    out = root / "scenarios" / "chaos-failure.yaml"
    argv = _chaos(root, "--seed", "0", "--concurrency", "1", "--invariant", "no-error",
                  "--invariant", "payload['n'] < 3")
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "Invariant payload['n'] < 3 does not hold: it is false (payload {\"n\": 3}, error null)" in printed
    assert "Re-ran it: it fails, as it should until the bug is fixed." in printed
    assert _kinds(out) == ["deploy", "invoke", "invoke", "invoke", "expect"]  # the third warm invocation counts 3
    text = out.read_text()
    assert text.rstrip().endswith("- expect: {invocation: failing, holds: \"payload['n'] < 3\"}")
    assert f"Run it with: lambdasim run {out}" in text
    # The file states the invariant, so it is ready to commit: it fails until the bug is fixed.
    with pytest.raises(ScenarioFailure, match=r"step 5 \(expect\): invocation 'failing' holds \"payload\['n'\] < 3\": "
                                              r"it is false \(payload \{\"n\": 3\}, error null\)"):
        run_file(out)
    assert main(["run", str(out)]) == 1
    assert "1 passed, 0 failed" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chaos"], "say what to test: --handler module.function --code-dir DIR, or --template FILE --function NAME"),
        (["chaos", "--handler", "app"], "--handler 'app' is not module.function"),
        (["chaos", "--handler", "app.handler", "--code-dir", "/no/such/dir"], "--code-dir '/no/such/dir' is not a "
                                                                             "directory (looked for /no/such/dir)"),
        (["chaos", "--handler", "app.handler", "--function", "F"], "--function goes with --template"),
        (["chaos", "--template", "t.yaml", "--handler", "app.handler"], "give either --template and --function"),
        (["chaos", "--handler", "app.handler", "--invariant", "payload ==="], "--invariant 'payload ===': not a "
                                                                              "Python expression"),
        (["chaos", "--handler", "app.handler", "--event", "{nope"], "--event: not valid JSON at line 1, column 2"),
        (["chaos", "--handler", "app.handler", "--examples", "0"], "--examples 0: use a whole number >= 1"),
        (["chaos", "--handler", "app.handler", "--services", "postgres"], "postgres"),
        (["chaos", "--handler", "app.handler", "--memory", "64"], "memory_mb=64 is not valid"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_events_must_be_a_json_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "events.json").write_text('{"action": "put"}')
    assert main(["chaos", "--handler", "app.handler", "--code-dir", str(tmp_path),
                 "--events", str(tmp_path / "events.json")]) == 2
    assert "write a JSON list with at least one event" in capsys.readouterr().err


TRICKY: list[Any] = [
    {"s": "yes", "n": "null", "t": "true", "f": "1e5", "o": "0777", "c": "a: b", "h": "# x", "d": "2024-01-01"},
    {"unicode": "café ☕ \U0001f600", "ctrl": "\x00\x07\x1b\x7f\x85\u2028\u2029\ufeff"},
    {"quote": "it's \"q\"", "bs": "a\\b"},
    [1, 1.0, -0.5, 1e100, 2**70, True, False, None, [], {}],
    {"": "empty key", "key with space": ["x", {"nested": [None]}], "-dash": ".inf", "~": "~"},
    "plain", ".hidden/path-1", "", " lead", "tab\there",
]


@pytest.mark.parametrize("event", TRICKY, ids=range(len(TRICKY)))
def test_events_round_trip_through_the_written_yaml(event: Any, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "s.yaml"
    path.write_text(f"steps:\n  - deploy: {flow({'handler': 'app.handler', 'code_dir': 'src'})}\n"
                    f"  - invoke: {flow({'event': event})}\n", encoding="utf-8")
    invoke = load_scenario(path).steps[1]
    assert isinstance(invoke, Invoke)
    assert json.dumps(invoke.event) == json.dumps(event)  # as JSON: 1.0 stays a float, True a boolean


def _config(tmp_path: Path, *extra: str) -> Any:
    from lambdasim._chaos import config_from_args
    from lambdasim.cli import _parser

    (tmp_path / "src").mkdir(exist_ok=True)
    args = _parser().parse_args(["chaos", "--handler", "app.handler", "--code-dir", str(tmp_path / "src"),
                                 "--out", str(tmp_path / "out.yaml"), *extra])
    return config_from_args(args)


def test_services_take_providers_as_everywhere_else(tmp_path: Path) -> None:
    # The one grammar of the services text: chaos used to reject redis=binary.
    cfg = _config(tmp_path, "--services", "redis=binary,aws")
    assert cfg.services == {"redis": "binary", "aws": "auto"}
    settings = cfg.simulator_settings()
    assert settings == {"services": {"redis": "binary", "aws": "auto"}}
    # The scenario file chaos writes keeps the providers, and loads.
    path = tmp_path / "out.yaml"
    path.write_text(f"simulator: {flow(settings)}\nsteps:\n  - deploy: {flow(cfg.deploy)}\n")
    assert load_scenario(path).settings["services"] == {"redis": "binary", "aws": "auto"}
    # Names alone are written as a list, as before.
    assert _config(tmp_path, "--services", "redis, aws").simulator_settings() == {"services": ["redis", "aws"]}
    assert _config(tmp_path).simulator_settings() == {}


@pytest.mark.sandbox
@pytest.mark.services
def test_the_simulator_of_each_run_gets_the_providers(tmp_path: Path) -> None:
    from lambdasim._chaos import Run

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(textwrap.dedent(CORRECT))
    with Run(_config(tmp_path, "--services", "redis=binary")) as run:
        assert run.sim.services["redis"].provider == "binary"


def _hypothesis_home() -> Any:
    from hypothesis import configuration

    return getattr(configuration, "__hypothesis_home_directory", None)


@pytest.mark.sandbox
def test_hypothesis_files_go_to_the_cache_folder_not_the_working_directory(tmp_path: Path) -> None:
    """Hypothesis caches the constants of local source files; by default in ./.hypothesis/. A new process, as a
    user runs it: in this one Hypothesis has cached those constants already and would write nothing."""
    import os
    import subprocess

    root = _project(tmp_path, CORRECT)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env.update(PYTHONPATH=os.pathsep.join(sys.path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "lambdasim.cli", "chaos", "--handler", "app.handler", "--code-dir",
                           str(root / "src"), "--seed", "0"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "cache" / "lambdasim" / "hypothesis"
    assert f"(Hypothesis keeps its files in {folder}; --hypothesis-dir to change)" in done.stdout
    assert list(work.iterdir()) == []  # no .hypothesis/ where the user ran it
    assert any(folder.rglob("*")), "Hypothesis wrote nothing, so this test would prove nothing"


@pytest.mark.sandbox
def test_hypothesis_dir_is_an_option_and_the_previous_home_comes_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import hypothesis.configuration

    root = _project(tmp_path, CORRECT)
    monkeypatch.chdir(tmp_path)
    seen: list[Any] = []
    original = hypothesis.configuration.set_hypothesis_home_dir

    def recording(path: Any) -> None:
        seen.append(path)
        original(path)

    monkeypatch.setattr(hypothesis.configuration, "set_hypothesis_home_dir", recording)
    before = _hypothesis_home()
    assert main(["chaos", "--handler", "app.handler", "--code-dir", "src", "--examples", "2", "--steps", "2",
                 "--hypothesis-dir", "hyp"]) == 0
    assert f"(Hypothesis keeps its files in {root / 'hyp'}; " in capsys.readouterr().out
    assert seen == [str(root / "hyp"), before]
    assert _hypothesis_home() == before  # Hypothesis in this process keeps its own folder


def test_the_default_hypothesis_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lambdasim._chaos import default_hypothesis_dir

    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_hypothesis_dir() == str(tmp_path / "lambdasim" / "hypothesis")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = "Library/Caches" if sys.platform == "darwin" else ".cache"
    assert default_hypothesis_dir() == str(tmp_path / "home" / cache / "lambdasim" / "hypothesis")
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path / "mine"))
    assert default_hypothesis_dir() == str(tmp_path / "mine")  # Hypothesis' own setting is respected


# -- the execution models ----------------------------------------------------------------------------

# Says which tenant and initialisation type it ran with.
MODEL_ECHO = """
import os
def handler(event, context):
    return {"tenant": context.tenant_id, "init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""


def _invocation(instance: str | None, tenant: str | None) -> Any:
    from lambdasim import Invocation

    return Invocation("r", "fn", "1", instance, False, None, b"{}", 1.0, None, tenant_id=tenant)


def test_each_model_deploys_as_a_scenario_step(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "--model", "on-demand", "--model", "snap-start", "--model", "tenant-isolation",
                  "--model", "managed", "--model", "provisioned", "--concurrency", "4", "--tenant-id", "acme")
    base = {"handler": "app.handler", "code_dir": "src", "name": "app"}
    assert cfg.deploys() == [base, {**base, "snap_start": True, "runtime": "python3.12"},
                             {**base, "tenant_isolation": True},
                             {**base, "capacity_provider": "chaos", "max_concurrency": 4, "runtime": "python3.13"},
                             {**base, "provisioned_concurrency": 1}]
    assert cfg.tenants == ["acme"]
    assert _config(tmp_path).tenants == ["tenant-a", "tenant-b"] and _config(tmp_path).deploys() == [base]
    for body in cfg.deploys():  # each loads (and validates) as the deploy step of the scenario chaos writes
        path = tmp_path / "model.yaml"
        path.write_text(f"steps:\n  - deploy: {flow(body)}\n")
        load_scenario(path)
    # The models' flags configure the one deploy, as --memory does.
    flagged = _config(tmp_path, "--tenant-isolation", "--runtime", "python3.12")
    assert flagged.deploy == {**base, "runtime": "python3.12", "tenant_isolation": True}


@pytest.mark.parametrize(("argv", "message"), [
    (["--snap-start", "--runtime", "python3.11"], "SnapStart is not supported for python3.11"),
    (["--max-concurrency", "4"], "max_concurrency is a setting of Lambda Managed Instances"),
])
def test_models_lambda_refuses_are_usage_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, *argv)


def test_the_tenant_isolated_invariant_reads_the_history() -> None:
    from lambdasim._chaos import TENANT_ISOLATED, Invariant
    from lambdasim._scenario import INVOCATION_CHECKS, Node

    invariant = Invariant.parse("tenant-isolated")
    assert (invariant.text, invariant.expression) == ("tenant-isolated", TENANT_ISOLATED)
    a1, b1, b2 = _invocation("fn-1", "a"), _invocation("fn-1", "b"), _invocation("fn-2", "b")
    assert invariant.violation(b2, [a1, b2]) is None
    assert invariant.violation(b1, [a1, b1]) == "instance fn-1 served the tenants a, b"
    assert invariant.violation(_invocation(None, "a"), [a1, b1]) is None, "a throttled invocation has no instance"
    # The scenario chaos writes states it with holds, over the same history.
    holds = INVOCATION_CHECKS["holds"].from_node(Node(TENANT_ISOLATED, "s.yaml", 1, "holds", Path("."),
                                                      ScenarioError))
    assert holds.verify_in(b2, [a1, b2]) is None
    assert "it is false" in str(holds.verify_in(b1, [a1, b1]))


@pytest.mark.sandbox
def test_a_search_deploys_the_models_and_invokes_as_tenants(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, MODEL_ECHO)
    out = root / "scenarios" / "chaos-failure.yaml"
    # Only a tenant-isolated deploy, invoked as a tenant, breaks this invariant.
    assert main(_chaos(root, "--model", "on-demand", "--model", "tenant-isolation", "--tenant-id", "acme",
                       "--invariant", "payload['tenant'] is None", "--invariant", "tenant-isolated")) == 1
    printed = capsys.readouterr().out
    assert "Invariant payload['tenant'] is None does not hold" in printed
    steps = load_scenario(out).steps
    assert isinstance(steps[0], Deploy) and steps[0].settings.kwargs() == {"tenant_isolation": True}
    assert isinstance(steps[-2], Invoke) and steps[-2].tenants()[0] == "acme"
    with pytest.raises(ScenarioFailure, match=r"holds \"payload\['tenant'\] is None\""):
        run_file(out)
    # With no tenant-isolated deploy to pick, nothing breaks it.
    assert main(_chaos(root, "--model", "on-demand", "--invariant", "payload['tenant'] is None",
                       "--invariant", "tenant-isolated", out="none.yaml")) == 0


def test_strict_package_reaches_the_runs_and_the_written_scenario(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "--strict-package")
    assert cfg.package == "strict" and cfg.simulator_settings() == {"package": "strict"}
    path = tmp_path / "out.yaml"
    path.write_text(f"simulator: {flow(cfg.simulator_settings())}\nsteps:\n  - deploy: {flow(cfg.deploy)}\n")
    assert load_scenario(path).settings["package"] == "strict"
    assert _config(tmp_path).package == "host"


@pytest.mark.sandbox
def test_a_templates_function_gets_its_resources_in_each_run_and_in_the_scenario(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    # The function scans and fills the template's table (orders-dev): it fails unless the table was created.
    shutil.copytree(Path(__file__).parent / "templates" / "resources" / "sam", tmp_path / "app")
    template = tmp_path / "app" / "template.yaml"
    out = tmp_path / "scenarios" / "found.yaml"
    argv = ["chaos", "--template", str(template), "--function", "OrdersFunction", "--out", str(out),
            "--examples", "2", "--steps", "2", "--shrink-runs", "0", "--hypothesis-dir", str(tmp_path / "hyp")]
    assert main(argv) == 0, capsys.readouterr().out  # no-error holds: the table exists in every run
    assert main([*argv, "--event", '{"put": {"id": "1"}}', "--invariant", "payload['items'] == []"]) == 1
    printed = capsys.readouterr().out
    assert "Invariant payload['items'] == [] does not hold: it is false (payload {\"env\": " in printed
    assert "Re-ran it: it fails, as it should until the bug is fixed." in printed
    text = out.read_text()
    assert "  - deploy: {template: ../app/template.yaml, function: OrdersFunction}\n" in text
    # Replayed, the deploy creates the table again: the invariant fails, not the function.
    with pytest.raises(ScenarioFailure, match=r"invocation 'failing' holds \"payload\['items'\] == \[\]\": it is "
                                              r"false \(payload \{\"env\": .*, error null\)"):
        run_file(out)
    # --name: the function's name on Lambda too (the invariant breaks when it sees it), written into the deploy step.
    assert main([*argv, "--name", "orders", "--event", '{"put": {"id": "1"}}', "--invariant",
                 "payload['named']['context'] != 'orders'"]) == 1
    assert "Re-ran it: it fails, as it should until the bug is fixed." in capsys.readouterr().out
    assert "  - deploy: {template: ../app/template.yaml, function: OrdersFunction, name: orders}\n" in out.read_text()


@pytest.mark.sandbox
def test_a_templates_parameters_and_layers_as_invoke_takes_them(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "app" / "src").mkdir(parents=True)
    (tmp_path / "app" / "src" / "app.py").write_text("import os\ndef handler(event, context):\n"
                                                     "    return [os.environ['STAGE'], os.path.isdir('/opt/python')]\n")
    (tmp_path / "app" / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nParameters:\n  Stage: {Type: String}\nResources:\n  Fn:\n"
        "    Type: AWS::Serverless::Function\n    Properties:\n      Handler: app.handler\n      Runtime: python3.11\n"
        "      CodeUri: src\n      Layers: [shared-layer]\n"  # neither a layer ARN nor a !Ref
        "      Environment: {Variables: {STAGE: !Ref Stage}}\n")
    out = tmp_path / "scenarios" / "found.yaml"
    argv = ["chaos", "-t", str(tmp_path / "app"), "--out", str(out), "--examples", "1", "--steps", "1",
            "--shrink-runs", "0", "--hypothesis-dir", str(tmp_path / "hyp")]  # --function: the only one
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pass --parameter-overrides Stage=VALUE" in err and "parameters=" not in err
    assert main([*argv, "--parameter-overrides", "Stage=dev"]) == 2
    err = capsys.readouterr().err
    assert "pass --layer FOLDER (once for each layer) or --no-layers to replace" in err and "layers=" not in err
    assert main([*argv, "--parameter-overrides", "Stage=dev", "--no-layers", "--invariant", "payload[0] != 'dev'"]) \
        == 1, capsys.readouterr()
    assert "Re-ran it: it fails, as it should until the bug is fixed." in capsys.readouterr().out
    assert ("  - deploy: {template: ../app, function: Fn, layers: [], parameters: {Stage: dev}}\n"
            in out.read_text()), out.read_text()
    # A layer folder instead: written relative to the scenario, as a handler's code_dir is.
    (tmp_path / "layer" / "python").mkdir(parents=True)
    assert main([*argv, "--parameter-overrides", "Stage=dev", "--layer", str(tmp_path / "layer"), "--invariant",
                 "payload != ['dev', True]"]) == 1
    assert "Re-ran it: it fails, as it should until the bug is fixed." in capsys.readouterr().out
    assert "layers: [../layer]" in out.read_text()
    # The function named after the template, as invoke and sam local invoke take it; not with --function too.
    assert main([*argv, "Fn", "--parameter-overrides", "Stage=dev", "--no-layers", "--invariant",
                 "payload[0] != 'dev'"]) == 1
    assert "function: Fn" in out.read_text()
    capsys.readouterr()
    assert main([*argv, "Fn", "--function", "Fn"]) == 2
    assert "goes with --template (and not with --function too)" in capsys.readouterr().err


def test_a_serverless_option_its_resources_need_is_asked_for_as_a_flag(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "serverless.yml").write_text(
        "service: todos\nprovider: {name: aws, runtime: python3.11}\nfunctions:\n  create: {handler: app.handler}\n"
        "resources:\n  Resources:\n    Table:\n      Type: AWS::DynamoDB::Table\n"
        "      Properties: {TableName: \"todos-${opt:stage}\"}\n")
    assert main(["chaos", "--template", str(tmp_path), "--function", "create"]) == 2
    err = capsys.readouterr().err
    assert "the option stage is not given (pass --parameter-overrides stage=VALUE)" in err
    assert "load_function" not in err
    assert main(["chaos", "--handler", "app.handler", "--parameter-overrides", "stage=dev"]) == 2
    assert "--parameter-overrides names what to read from a template" in capsys.readouterr().err
