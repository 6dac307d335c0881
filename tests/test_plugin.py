"""The pytest plugin, tested the way users run it (pytester)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

pytestmark = pytest.mark.sandbox

HANDLER = """
import os
CALLS = 0
def handler(event, context):
    global CALLS
    CALLS += 1
    if event.get("write"):
        with open("/tmp/" + event["write"], "w") as f:
            f.write("x" * event.get("size", 10))
    if event.get("erofs"):
        open("/var/task/" + event["erofs"], "w")
    return {"calls": CALLS, "tmp": sorted(os.listdir("/tmp"))}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "src").mkdir()
    (pytester.path / "src" / "app.py").write_text(textwrap.dedent(HANDLER))
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester


def test_without_the_flag_lambda_sim_tests_are_skipped(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        import pytest
        def test_fixture(lambda_sim): pass
        def test_factory(lambda_function): pass
        @pytest.mark.lambda_sim(routing="fresh")
        def test_marker(): pass
        def test_plain(): pass
    """)
    result = project.runpytest("-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.stdout.str().count("needs --lambda-sim") >= 2


def test_importing_the_plugin_costs_nothing(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        import sys
        def test_nothing_heavy_loaded():
            heavy = [m for m in ("lambdasim", "lambdasim._simulator", "docker", "boto3", "moto", "redis")
                     if m in sys.modules]
            assert heavy == []
    """)
    # No warnings either: pytest loads the plugin's parts without "imported too early to be rewritten".
    project.runpytest_subprocess().assert_outcomes(passed=1, warnings=0)


def test_ini_key_switches_it_on(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim = true\n")
    project.makepyfile(test_x="""
        def test_invoke(lambda_function):
            fn = lambda_function("app.handler", code_dir="src")
            assert fn.invoke({}).payload == {"calls": 1, "tmp": []}
    """)
    project.runpytest().assert_outcomes(passed=1)


def test_each_test_gets_a_fresh_simulator(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        from lambdasim import Simulator
        def test_one(lambda_sim):
            assert isinstance(lambda_sim, Simulator)
            fn = lambda_sim.deploy("app.handler", code_dir="src")
            assert fn.invoke({"write": "one"}).payload == {"calls": 1, "tmp": ["one"]}
            lambda_sim.clock.advance(seconds=30)
        def test_two(lambda_sim, lambda_function):
            assert lambda_sim.clock.now() == 0.0 and lambda_sim.functions == {}
            fn = lambda_function("app.handler", code_dir="src")
            assert fn.invoke({"write": "two"}).payload == {"calls": 1, "tmp": ["two"]}
    """)
    project.runpytest("--lambda-sim").assert_outcomes(passed=2)


def test_options_reach_the_simulator(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        def test_settings(lambda_sim, lambda_function):
            assert (lambda_sim.routing, lambda_sim.sandbox) == ("fresh", "namespace")
            fn = lambda_function("app.handler", code_dir="src")
            assert [fn.invoke({}).cold_start for _ in range(2)] == [True, True]
    """)
    project.runpytest("--lambda-sim", "--lambda-sim-routing=fresh", "--lambda-sim-sandbox=namespace",
                      "--lambda-sim-seed=7").assert_outcomes(passed=1)
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim = true\nlambda_sim_routing = fresh\n"
                    "lambda_sim_sandbox = namespace\nlambda_sim_seed = 7\n")
    project.runpytest().assert_outcomes(passed=1)


def test_bad_option_values_are_usage_errors(project: pytest.Pytester) -> None:
    result = project.runpytest("--lambda-sim", "--lambda-sim-routing=sticky")
    result.stderr.fnmatch_lines(["*--lambda-sim-routing*invalid choice*'sticky'*"])
    project.makepyfile(test_x="def test_x(lambda_sim): pass\n")
    result = project.runpytest("--lambda-sim", "--lambda-sim-services=postgres")
    result.stdout.fnmatch_lines(["*'postgres' is not a service*"])
    result.assert_outcomes(errors=1)
    # The message names where the services text came from: the option, the ini key or the marker.
    result.stdout.fnmatch_lines(["*--lambda-sim-services: services: 'postgres' is not a service*"])
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_services = redis=sqlite\n")
    result = project.runpytest("--lambda-sim")
    result.stdout.fnmatch_lines(["*ini lambda_sim_services: services[[]'redis'[]]: provider='sqlite' is not known*"])
    result.assert_outcomes(errors=1)
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    project.makepyfile(test_x="""
        import pytest
        @pytest.mark.lambda_sim(services=["aws", "postgres"])
        def test_x(lambda_sim): pass
    """)
    result = project.runpytest("--lambda-sim")
    result.stdout.fnmatch_lines(["*lambda_sim marker services: services: 'postgres' is not a service*"])
    result.assert_outcomes(errors=1)


def test_marker_overrides_per_test(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        import shutil
        import pytest
        @pytest.mark.lambda_sim(routing="fresh", ephemeral_storage_mb=1024, memory_mb=256, freeze=False)
        def test_marked(lambda_sim, lambda_function):
            fn = lambda_function("app.handler", code_dir="src")
            assert lambda_sim.routing == "fresh" and lambda_sim.freeze is False
            assert (fn.config.ephemeral_storage_mb, fn.config.memory_mb) == (1024, 256)
            # An explicit argument still wins over the marker's default.
            assert lambda_function("app.handler", code_dir="src", name="b", memory_mb=512).config.memory_mb == 512
        def test_unmarked(lambda_sim, lambda_function):
            assert lambda_sim.routing == "warm" and lambda_sim.freeze is True
            assert lambda_function("app.handler", code_dir="src").config.ephemeral_storage_mb == 512
        @pytest.mark.lambda_sim(colour="blue")
        def test_typo(lambda_sim): pass
    """)
    result = project.runpytest("--lambda-sim", "--strict-markers")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*lambda_sim does not know colour*"])


def test_services_start_once_per_session_and_are_emptied_between_tests(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        PORTS = []
        def test_first(lambda_sim):
            PORTS.append(lambda_sim.services["redis"].endpoint.port)
            lambda_sim.redis_client().set("left-over", "1")
        def test_second(lambda_sim):
            PORTS.append(lambda_sim.services["redis"].endpoint.port)
            assert lambda_sim.redis_client().get("left-over") is None
            assert PORTS[0] == PORTS[1], "one server for the whole session"
    """)
    project.runpytest("--lambda-sim", "--lambda-sim-services=redis=embedded").assert_outcomes(passed=2)


@pytest.mark.parametrize("given", ['["redis"]', '"redis"', '"redis=embedded, aws"'])
def test_marker_services_start_on_demand(project: pytest.Pytester, given: str) -> None:
    # A string is the services text, as Simulator(services="redis") takes one (not its letters).
    project.makepyfile(test_x=f"""
        import pytest
        @pytest.mark.lambda_sim(services={given})
        def test_redis(lambda_sim, lambda_function):
            assert lambda_sim.services["redis"].running
            fn = lambda_function("app.handler", code_dir="src")
    """)
    project.runpytest("--lambda-sim").assert_outcomes(passed=1)


def test_summary_and_report(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        def test_a(lambda_function):
            fn = lambda_function("app.handler", code_dir="src", name="orders")
            fn.invoke({"write": "big", "size": 300000})
            fn.invoke({"erofs": "cache.json"})
            fn.instances[0].crash()
            fn.invoke({})
        def test_b(lambda_function):
            fn = lambda_function("app.handler", code_dir="src", name="orders")
            fn.invoke_many([{}, {}], concurrency=2)
    """)
    report = project.path / "trace.json"
    result = project.runpytest("--lambda-sim", f"--lambda-sim-report={report}", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*= lambda-sim summary =*",
        "2 tests: * instances started, * cold starts, 1 resets; invocations: 1 OSError, 4 ok",
        "peak /tmp use of orders: 29?.? KB",
        "read-only filesystem errors (1):",
        "  test_x.py::test_a: orders tried to write /var/task/cache.json",
        "test_x.py::test_a: 1 instances, 2 cold starts, 1 resets; 1 OSError, 2 ok",
        f"lambda-sim trace written to {report}",
    ])
    data = json.loads(report.read_text())
    assert data["summary"]["tests"] == 2
    kinds = [e["kind"] for e in data["tests"]["test_x.py::test_a"]["trace"]]
    assert kinds[:3] == ["deploy", "instance_created", "invoke"] and "crash" in kinds and "reset" in kinds


def test_works_with_xdist(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        import pytest
        @pytest.mark.parametrize("n", range(6))
        def test_many(lambda_sim, lambda_function, n):
            fn = lambda_function("app.handler", code_dir="src")
            assert fn.invoke({"write": f"f{n}"}).payload == {"calls": 1, "tmp": [f"f{n}"]}
            lambda_sim.redis_client().set(f"k{n}", n)
    """)
    report = project.path / "trace.json"
    result = project.runpytest_subprocess("--lambda-sim", "-n", "2", "--lambda-sim-services=redis",
                                          f"--lambda-sim-report={report}")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["6 tests: 6 instances started, 6 cold starts, 0 resets; invocations: 6 ok"])
    assert json.loads(report.read_text())["summary"]["tests"] == 6


def test_breakpoint_debug_path(project: pytest.Pytester) -> None:
    (project.path / "src" / "where.py").write_text("import os\ndef handler(event, context):\n    return os.getpid()\n")
    project.makepyfile(test_y="""
        import os
        import pytest
        def test_runs_in_this_process(lambda_function):
            fn = lambda_function("where.handler", code_dir="src")
            assert fn.debug_invoke({}) == os.getpid()
            assert fn.invoke({}).payload == 2, "in its instance it is the runtime, PID 2"
        def test_exception_reaches_the_debugger(lambda_function):
            fn = lambda_function("app.handler", code_dir="src")
            with pytest.raises(FileNotFoundError, match="cache.json"):
                fn.debug_invoke({"erofs": "cache.json"})
    """)
    project.runpytest("--lambda-sim").assert_outcomes(passed=2)


def test_coverage_counts_handler_lines_run_in_instances(project: pytest.Pytester) -> None:
    (project.path / "src" / "branches.py").write_text(
        "def handler(event, context):\n"
        "    if event.get('left'):\n"
        "        return 'left'\n"
        "    return 'right'\n"
        "\n"
        "def never_called():\n"
        "    return 'untested'\n")
    project.makepyfile(test_x="""
        def test_left(lambda_function):
            assert lambda_function("branches.handler", code_dir="src").invoke({"left": True}).payload == "left"
    """)
    # Only instances ran src: the lines they ran are this process's data, so coverage.py has no
    # "No data was collected" to warn about (which -W error would turn into an INTERNALERROR).
    strict = "-W", "error::coverage.exceptions.CoverageWarning"
    result = project.runpytest_subprocess("--lambda-sim", "--cov=src", "--cov-report=term-missing", *strict)
    result.assert_outcomes(passed=1)
    # Lines 1-3 and 6 ran (module body and the left branch, inside an instance); 4 and 7 did not.
    result.stdout.fnmatch_lines(["src/branches.py * 6 * 2 * 67% * 4, 7"])
    output = result.stdout.str() + result.stderr.str()
    assert "No data was collected" not in output and "INTERNALERROR" not in output
    assert sorted(p.name for p in project.path.glob(".coverage*")) == [".coverage"], "no data file left uncombined"
    # Branch coverage: the arcs the instance ran (the left branch taken, the right one not).
    result = project.runpytest_subprocess("--lambda-sim", "--cov=src", "--cov-branch", "--cov-report=term-missing",
                                          *strict)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["src/branches.py * 6 * 2 * 2 * 1 * 62% * 4, 7"])
    assert "No data was collected" not in result.stdout.str() + result.stderr.str()


def test_coverage_in_an_instance_never_writes_to_the_function_logs(project: pytest.Pytester) -> None:
    # Init fails before a line of the code runs: the instance's coverage.py has no data, and its
    # warning about that would land in the function's stderr (its logs) with a host path.
    (project.path / "src" / "broken.py").write_text("def handler(event, context)\n    return 1\n")
    project.makepyfile(test_x="""
        def test_syntax_error(lambda_function):
            inv = lambda_function("broken.handler", code_dir="src").invoke({})
            assert inv.error["errorType"] == "Runtime.UserCodeSyntaxError"
            assert "Syntax error in module 'broken'" in inv.logs
            assert "Warning" not in inv.logs and "coverage" not in inv.logs, inv.logs
    """)
    project.runpytest_subprocess("--lambda-sim", "--cov=src", "--cov-report=").assert_outcomes(passed=1)


SCENARIO = """
name: tmp is per instance
simulator: {routing: fresh}
steps:
  - deploy: {handler: app.handler, code_dir: ../src, name: orders}
  - invoke: {event: {write: state}, as: first}
  - invoke: {event: {}, as: second}
  - expect: {invocation: first, payload: {calls: 1, tmp: [state]}}
  - expect: {invocation: second, payload: {calls: 1, tmp: [%s]}}
"""


def test_scenarios_are_collected_as_tests(project: pytest.Pytester) -> None:
    (project.path / "scenarios").mkdir()
    (project.path / "scenarios" / "good.yaml").write_text(SCENARIO % "")
    (project.path / "scenarios" / "bad.yaml").write_text(SCENARIO % "state")
    (project.path / "scenarios" / "broken.yaml").write_text("steps:\n  - invoke: {count: three}\n")
    junit = project.path / "junit.xml"
    result = project.runpytest("--lambda-sim", f"--junitxml={junit}", "-rA")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*scenarios/bad.yaml:9: step 5 (expect): invocation 'second' payload: expected*",
        "*scenarios/broken.yaml:2: steps[[]0[]].invoke*",
    ])
    # The scenarios that ran count in the summary (broken.yaml never started a simulator).
    result.stdout.fnmatch_lines(["2 tests: 4 instances started, 4 cold starts, 0 resets; invocations: 4 ok"])
    xml = junit.read_text()
    assert 'name="good"' in xml and 'name="bad"' in xml and "scenarios/bad.yaml:9" in xml
    # Without the flag they are skipped like any lambdasim test.
    project.runpytest().assert_outcomes(skipped=3)


def test_scenario_glob_is_an_ini_key(project: pytest.Pytester) -> None:
    (project.path / "chaos").mkdir()
    (project.path / "chaos" / "one.yml").write_text(SCENARIO.replace("../src", "../src") % "")
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_scenarios =\n    chaos/*.yml\n")
    project.runpytest("--lambda-sim").assert_outcomes(passed=1)


def test_deploy_from_a_sam_template(project: pytest.Pytester) -> None:
    project.path.joinpath("template.yaml").write_text(textwrap.dedent("""
        AWSTemplateFormatVersion: "2010-09-09"
        Transform: AWS::Serverless-2016-10-31
        Globals:
          Function:
            Timeout: 5
            Environment:
              Variables: {STAGE: test}
        Resources:
          OrdersFunction:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.12
              MemorySize: 256
              EphemeralStorage: {Size: 1024}
    """))
    project.makepyfile(test_x="""
        import pytest
        from lambdasim import ConfigError
        def test_template(lambda_sim):
            fn = lambda_sim.deploy_from_template("template.yaml", "OrdersFunction")
            c = fn.config
            assert (fn.name, c.memory_mb, c.timeout_s, c.ephemeral_storage_mb) == ("OrdersFunction", 256, 5.0, 1024)
            assert c.environment == {"STAGE": "test"}
            assert fn.invoke({}).payload == {"calls": 1, "tmp": []}
            with pytest.raises(ConfigError, match=r"template.yaml.*PaymentsFunction.*OrdersFunction"):
                lambda_sim.deploy_from_template("template.yaml", "PaymentsFunction")
    """)
    project.runpytest("--lambda-sim").assert_outcomes(passed=1)


def test_services_and_report_as_ini_keys(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim = true\n"
                    "lambda_sim_services = redis=embedded\nlambda_sim_report = out/trace.json\n")
    (project.path / "out").mkdir()
    project.makepyfile(test_x="""
        def test_session_service(lambda_sim):
            assert lambda_sim.services["redis"].provider == "embedded"
    """)
    project.runpytest().assert_outcomes(passed=1)
    assert json.loads((project.path / "out" / "trace.json").read_text())["summary"]["tests"] == 1


def test_a_crashing_handler_does_not_take_pytest_down(project: pytest.Pytester) -> None:
    (project.path / "src" / "crash.py").write_text(
        "import os\ndef handler(event, context):\n    os.kill(os.getpid(), 11)\n")
    project.makepyfile(test_x="""
        def test_crash(lambda_function):
            inv = lambda_function("crash.handler", code_dir="src").invoke({})
            assert inv.error["errorType"] == "Runtime.ExitError"
            assert inv.error["errorMessage"].endswith("signal: segmentation fault")
    """)
    result = project.runpytest_subprocess("--lambda-sim")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["1 tests: 1 instances started, 1 cold starts, 1 resets; invocations: 1 Runtime.ExitError"])


def test_scenario_glob_does_not_cross_folders(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "handlers").mkdir(parents=True)
    (project.path / "scenarios" / "top.yaml").write_text(SCENARIO % "")
    (project.path / "scenarios" / "handlers" / "template.yaml").write_text("Resources: {}\n")
    project.runpytest("--lambda-sim").assert_outcomes(passed=1)
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\nlambda_sim_scenarios =\n    scenarios/**/*.yaml\n")
    (project.path / "scenarios" / "handlers" / "template.yaml").unlink()
    (project.path / "scenarios" / "handlers" / "deep.yaml").write_text(SCENARIO.replace("../src", "../../src") % "")
    project.runpytest("--lambda-sim").assert_outcomes(passed=2)


def test_faults_do_not_leak_into_the_next_test(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        def test_leaves_faults_behind(lambda_sim):
            redis = lambda_sim.services["redis"]
            redis.set_latency(0.5)
            redis.cut()
            redis.pause()
        def test_sees_a_healthy_service(lambda_sim, lambda_function):
            import time
            fn = lambda_function("ping.handler", code_dir="src")
            started = time.monotonic()
            assert fn.invoke({}).payload is True
            assert time.monotonic() - started < 0.5
    """)
    (project.path / "src" / "ping.py").write_text(
        "import os, redis\ndef handler(event, context):\n"
        "    return redis.Redis.from_url(os.environ['REDIS_URL'], socket_timeout=2).ping()\n")
    project.runpytest("--lambda-sim", "--lambda-sim-services=redis=binary").assert_outcomes(passed=2)


def test_only_yaml_files_with_a_scenario_shape_are_collected(project: pytest.Pytester) -> None:
    scenarios = project.path / "scenarios"
    scenarios.mkdir()
    (scenarios / "good.yaml").write_text(SCENARIO % "")
    # Data next to the scenarios: not a mapping with steps:, so not a test.
    (scenarios / "seed-users.yaml").write_text("- name: alice\n  steps_taken: 3\n- name: bob\n")
    (scenarios / "settings.yaml").write_text("users: [alice, bob]\nname: seed data\n")
    (scenarios / "template.yaml").write_text("Resources:\n  Fn: {Properties: {CodeUri: !Ref Code}}\n")
    (scenarios / "empty.yaml").write_text("# nothing yet\n")
    # Scenarios with mistakes still fail, with the file and line.
    (scenarios / "broken.yaml").write_text("steps:\n  - invoke: {count: three}\n")
    (scenarios / "typo.yaml").write_text("name: x\nstep:\n  - invoke: {}\n")
    (scenarios / "not-yaml.yaml").write_text("steps:\n  - deploy: {handler: app.handler\n")
    result = project.runpytest("--lambda-sim", "-v")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random([
        "*scenarios/broken.yaml:2: steps[[]0[]].invoke*",
        "*scenarios/typo.yaml:2: step: unknown key 'step' (did you mean 'steps'?)*",
        "*scenarios/not-yaml.yaml:3: not valid YAML*",
        "lambda-sim: not collected, not scenarios (a scenario is a YAML mapping with steps:): "
        "scenarios/empty.yaml: empty",
        "lambda-sim: not collected, * scenarios/seed-users.yaml: a list at the top, not a mapping with steps:",
        "lambda-sim: not collected, * scenarios/settings.yaml: a mapping without a steps: key",
        "lambda-sim: not collected, * scenarios/template.yaml: a mapping without a steps: key",
    ])
    quiet = project.runpytest("--lambda-sim")
    quiet.assert_outcomes(passed=1, failed=3)
    assert "not collected" not in quiet.stdout.str()  # the note is for -v
    project.runpytest().assert_outcomes(skipped=4)  # without the flag, the four scenarios are skipped


def test_relative_paths_are_taken_from_the_rootdir(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cd tests && pytest --lambda-sim` deploys what `pytest --lambda-sim` deploys from the rootdir."""
    root = project.path
    (root / "layer" / "python").mkdir(parents=True)
    (root / "layer" / "python" / "shared.py").write_text("WHERE = 'layer'\n")
    (root / "src" / "uses_layer.py").write_text("import shared\ndef handler(event, context):\n"
                                                "    return shared.WHERE\n")
    # The runtime of the Python that runs the tests: no RuntimeVersionWarning among the warnings counted below.
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (root / "template.yaml").write_text(textwrap.dedent(f"""
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {{CodeUri: src/, Handler: app.handler, Runtime: python{py}}}
    """))
    (root / "tests").mkdir()
    (root / "tests" / "test_paths.py").write_text(textwrap.dedent(f"""
        import os
        import re
        import pytest
        from lambdasim import ConfigError
        ROOT = {str(root)!r}
        def test_cwd_is_not_the_rootdir():
            assert os.getcwd() == os.path.join(ROOT, "tests")
        def test_lambda_function_and_deploy(lambda_sim, lambda_function):
            fn = lambda_function("app.handler", code_dir="src")
            assert fn.config.code_dir == os.path.join(ROOT, "src")
            assert fn.invoke({{}}).payload == {{"calls": 1, "tmp": []}}
            fn.redeploy(code_dir="src", layers=["layer"])
            assert fn.config.layers == (os.path.join(ROOT, "layer"),)
            other = lambda_sim.deploy("uses_layer.handler", code_dir="src", layers=["layer"])
            assert other.invoke({{}}).payload == "layer"
        def test_templates(lambda_sim):
            fn = lambda_sim.deploy_from_template("template.yaml", "Fn", layers=["layer"])
            assert (fn.config.code_dir, fn.config.layers) == (os.path.join(ROOT, "src"), (os.path.join(ROOT, "layer"),))
        @pytest.mark.lambda_sim(layers=["layer"])
        def test_marker_defaults(lambda_function):
            assert lambda_function("uses_layer.handler", code_dir="src").invoke({{}}).payload == "layer"
        def test_a_missing_folder_names_the_path_tried(lambda_sim, lambda_function):
            with pytest.raises(ConfigError) as info:
                lambda_function("app.handler", code_dir="nope")
            assert str(info.value).startswith(
                f"code_dir='nope' is not a directory (looked for {{ROOT}}/nope); in a test a relative path is taken "
                f"from pytest's rootdir ({{ROOT}}), not the working directory; pass the folder that holds")
            gone = re.escape(f"layers[1]='gone' is not a directory (looked for {{ROOT}}/gone); in a test")
            with pytest.raises(ConfigError, match="^" + gone):
                lambda_sim.deploy("app.handler", code_dir="src", layers=["layer", "gone"])
            with pytest.raises(ConfigError, match=re.escape(f"no such file (looked for {{ROOT}}/missing.yaml)")):
                lambda_sim.deploy_from_template("missing.yaml", "Fn")
    """))
    monkeypatch.chdir(root / "tests")
    project.runpytest("--lambda-sim").assert_outcomes(passed=5, warnings=0)


# -- the execution models ---------------------------------------------------------------------------


def test_the_summary_counts_restores_workers_tenants_and_provisioned_environments() -> None:
    from pytest_lambdasim.summary import SessionStats, models_line, summarize

    def event(kind: str, **detail: object) -> dict[str, object]:
        return {"kind": kind, "function": "fn", "instance": "fn-1", "request_id": None, "detail": detail}

    trace = [event("snapshot", init_ms=5.0, tmp_bytes=0), event("instance_created", init_type="snap-start"),
             event("restored", restore_ms=3.0), event("instance_created", init_type="snap-start"),
             event("restored", restore_ms=2.0), event("provisioned", init_ms=4.0),
             event("worker", action="started", worker=1), event("worker", action="started", worker=2),
             event("worker", action="exited", worker=2, reason="crash"), event("worker", action="replaced", worker=2),
             event("instance_created", init_type="on-demand", tenant="acme"),
             event("invoke", cold_start=True, tenant="acme"), event("invoke", cold_start=True, tenant="globex")]
    summary = summarize(trace)
    assert {k: summary[k] for k in ("snapshots", "restores", "provisioned", "workers", "tenants")} == {
        "snapshots": 1, "restores": 2, "provisioned": 1, "workers": 3, "tenants": 2}
    assert models_line(summary) == ("; 2 restores, 1 snapshot, 1 provisioned environment, 3 worker processes, "
                                    "2 tenants")
    assert models_line(summarize([event("invoke", cold_start=True)])) == "", "no model: the line is as it was"
    stats = SessionStats()
    stats.add("a", {**summary, "outcome": "passed"})
    stats.add("b", {**summary, "outcome": "passed"})
    assert stats.totals()["restores"] == 4 and stats.totals()["tenants"] == 4


def test_the_marker_takes_the_execution_models(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        import pytest
        @pytest.mark.lambda_sim(tenant_isolation=True)
        def test_tenants(lambda_function):
            assert lambda_function("app.handler", code_dir="src").config.tenant_isolation is True
        @pytest.mark.lambda_sim(capacity_provider="fleet", max_concurrency=4, max_environments=2, runtime="python3.13")
        def test_managed(lambda_function):
            config = lambda_function("app.handler", code_dir="src").config
            assert (config.managed, config.concurrency_per_environment, config.max_environments) == (True, 4, 2)
        @pytest.mark.lambda_sim(snap_start=True, runtime="python3.12")
        def test_snap(lambda_function):
            assert lambda_function("app.handler", code_dir="src").config.snap_start is True
    """)
    result = project.runpytest("--lambda-sim")
    result.assert_outcomes(passed=3)


def test_the_summary_line_names_the_tenants(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="""
        import pytest
        @pytest.mark.lambda_sim(tenant_isolation=True)
        def test_tenants(lambda_function):
            fn = lambda_function("app.handler", code_dir="src")
            fn.invoke({}, tenant_id="acme")
            fn.invoke({}, tenant_id="globex")
    """)
    result = project.runpytest("--lambda-sim")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 tests: 2 instances started, 2 cold starts, 0 resets; invocations: 2 ok; "
                                 "2 tenants"])
