"""Custom runtimes (``provided.al2023``, ``provided.al2``, ``provided``) and container entry points, through
every front end: deploy(), redeploy(), templates (SAM, Serverless), the CLI; their configuration errors;
the fakefs sandbox's refusal; awslambdaric as a container image starts it; Lambda's words for them
(INIT_START, REPORT, Runtime.InvalidEntrypoint)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdasim import Simulator
from lambdasim import _lambda_errors as E
from lambdasim._errors import ConfigError, SettingError
from lambdasim._model import PYTHON_VERSION
from lambdasim._simulator import _instance_python
from lambdasim._source import SourceError
from lambdasim._templates import load_function
from lambdasim.cli import main
from tests.conftest import REQUIRE_SANDBOX

pytestmark = pytest.mark.sandbox

REQUIRE_RUNTIMES = os.environ.get("LAMBDASIM_REQUIRE_RUNTIMES") == "1"
SHELL_CURL = Path(__file__).resolve().parent.parent / "examples" / "shell-curl"

# A bootstrap in Python (the instance sees the host's /usr/bin/python3), standard library only.
PY_BOOTSTRAP = """\
#!/usr/bin/env python3
import http.client, json, os, sys
print("bootstrap for", os.environ["_HANDLER"], "in", os.getcwd(), flush=True)
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
api = http.client.HTTPConnection(host, int(port))
while True:
    api.request("GET", "/2018-06-01/runtime/invocation/next")
    r = api.getresponse()
    event, rid = json.loads(r.read()), r.getheader("Lambda-Runtime-Aws-Request-Id")
    if event.get("exit") is not None:
        print("exiting with", event["exit"], flush=True)
        sys.exit(event["exit"])
    body = json.dumps({"handler": os.environ["_HANDLER"], "event": event, "runtime_api": host + ":" + port,
                       "execution_env": os.environ.get("AWS_EXECUTION_ENV")})
    api.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body)
    api.getresponse().read()
"""


def needs(program: str) -> None:
    if shutil.which(program) is None:
        if REQUIRE_RUNTIMES:
            pytest.fail(f"LAMBDASIM_REQUIRE_RUNTIMES=1 and {program} is not installed")
        pytest.skip(f"{program} is not installed here")


def executable(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    path.chmod(0o755)
    return path


@pytest.fixture
def bootstrap_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fn"
    executable(folder, "bootstrap", PY_BOOTSTRAP)
    return folder


@pytest.fixture
def host_sim() -> Iterator[Simulator]:
    """A namespace Simulator whose API instances take free ports (several can run at once without a
    network namespace each)."""
    try:
        sim = Simulator(sandbox="namespace", network="host")
    except Exception as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")
    yield sim
    sim.close()


# -- Lambda's words --------------------------------------------------------------------------------


def test_runtime_versions_and_billed_init_are_lambdas() -> None:
    assert E.runtime_version("python3.12") == "python:3.12"
    assert E.runtime_version("provided.al2023") == "provided:al2023"
    assert E.runtime_version("provided") == "provided:al1"
    assert E.init_start_line("3.11", "eu-west-1", "provided.al2").startswith(
        "INIT_START Runtime Version: provided:al2.lambdasim\tRuntime Version ARN: arn:aws:lambda:eu-west-1::")
    # Custom runtimes and images bill their Init with the first invocation.
    assert "Billed Duration: 12 ms" in E.report_line("r", 1.5, 128, 10, 10.2, "", billed_init=True)
    assert "Billed Duration: 2 ms" in E.report_line("r", 1.5, 128, 10, 10.2, "")
    assert E.platform_error("r", "Extension.Crash", "exit status 1") == {
        "errorType": "Extension.Crash", "errorMessage": "RequestId: r Error: exit status 1"}
    assert E.is_platform_error("Runtime.InvalidEntrypoint") and E.is_platform_error("Extension.Crash")
    assert E.is_platform_error("Runtime.ExitError")  # a runtime that ends during Init (see _rapi)
    assert not E.is_platform_error("Runtime.Unknown") and not E.is_platform_error("ValueError")


# -- deploy, redeploy, the instance ----------------------------------------------------------------


def test_a_bootstrap_runs_with_lambdas_environment(host_sim: Simulator, bootstrap_dir: Path) -> None:
    fn = host_sim.deploy("anything-at-all", bootstrap_dir, name="custom", runtime="provided.al2023")
    inv = fn.invoke({"a": 1})
    assert inv.error is None, inv.error
    assert inv.payload["handler"] == "anything-at-all" and inv.payload["event"] == {"a": 1}
    assert inv.payload["execution_env"] is None  # Lambda sets AWS_EXECUTION_ENV for managed runtimes only
    assert "bootstrap for anything-at-all in /var/task" in inv.logs
    assert inv.logs.startswith("INIT_START Runtime Version: provided:al2023.lambdasim")
    report = inv.logs.splitlines()[-1]
    billed = int(report.split("Billed Duration: ")[1].split(" ms")[0])
    assert billed >= inv.duration_ms + (inv.init_duration_ms or 0.0) - 1  # Init is billed
    warm = fn.invoke({"b": 2})
    assert not warm.cold_start and warm.payload["event"] == {"b": 2}


def test_a_bootstrap_from_a_layer_and_the_missing_bootstrap(host_sim: Simulator, tmp_path: Path,
                                                            bootstrap_dir: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    fn = host_sim.deploy("h", code, name="layered", runtime="provided.al2", layers=[bootstrap_dir])
    assert fn.invoke({}).payload["handler"] == "h"  # /opt/bootstrap
    none = host_sim.deploy("h", code, name="none", runtime="provided")
    inv = none.invoke({})
    assert inv.error == {"errorType": "Runtime.InvalidEntrypoint", "errorMessage":
                         f"RequestId: {inv.request_id} Error: Couldn't find valid bootstrap(s): "
                         "[/var/task/bootstrap /opt/bootstrap]"}
    assert "Couldn't find valid bootstrap(s)" in inv.logs
    assert "Status: error\tError Type: Runtime.InvalidEntrypoint" in inv.logs
    assert inv.logs.startswith("INIT_START Runtime Version: provided:al1.lambdasim")
    executable(code, "bootstrap", "#!/bin/sh\necho 'no loop here'\nexit 3\n")
    exited = none.invoke({})
    assert exited.error["errorType"] == "Runtime.ExitError"  # type: ignore[index]
    assert exited.error["errorMessage"].endswith("exit status 3")  # type: ignore[index]
    stops = host_sim.deploy("h", bootstrap_dir, name="stops", runtime="provided.al2023")
    assert stops.invoke({}).ok
    stopped = stops.invoke({"exit": 4})
    assert stopped.error["errorMessage"].endswith("Error: Runtime exited with error: exit status 4")  # type: ignore[index]
    assert "exiting with 4" in stopped.logs and "Status: error\tError Type: Runtime.ExitError" in stopped.logs
    assert stops.invoke({}).cold_start and stops.instances[0].resets == 1


def test_redeploy_changes_the_runtime(host_sim: Simulator, bootstrap_dir: Path) -> None:
    app = bootstrap_dir / "app.py"
    app.write_text("def handler(event, context):\n    return {'python': True}\n")
    fn = host_sim.deploy("app.handler", bootstrap_dir, name="switch")
    assert fn.invoke({}).payload == {"python": True}
    assert fn.redeploy(runtime="provided.al2023") == "2"
    assert fn.invoke({}).payload["handler"] == "app.handler"
    fn.redeploy(runtime=f"python{PYTHON_VERSION}")
    assert fn.invoke({}).payload == {"python": True}
    with pytest.raises(SettingError, match=r"runtime='nodejs20.x' is not valid; use python3.9 ... python3.14 or one "
                                           r"of provided.al2023, provided.al2, provided"):
        fn.redeploy(runtime="nodejs20.x")
    with pytest.raises(SettingError, match="entry_point"):
        fn.redeploy(entry_point=["python3", ""])
    assert fn.version == "3"


def test_the_fakefs_sandbox_refuses_what_it_cannot_confine(bootstrap_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyfakefs")
    with Simulator(sandbox="fakefs") as sim:
        with pytest.raises(SettingError, match=r"fakefs sandbox cannot run this function: its runtime "
                                               r"provided.al2023 \(a bootstrap\) runs as processes of their own"
                                               r".*Use the namespace sandbox") as caught:
            sim.deploy("h", bootstrap_dir, runtime="provided.al2023")
        assert caught.value.setting == "runtime" and "the kernel confines every process" in str(caught.value)
        with pytest.raises(SettingError, match=r"its entry point \(python3 -m awslambdaric\)"):
            sim.deploy("app.handler", bootstrap_dir, entry_point=["python3", "-m", "awslambdaric"])
        layer = tmp_path / "layer"
        executable(layer, "extensions/ext", "#!/bin/sh\n")
        with pytest.raises(SettingError, match=r"its layers' extensions"):
            sim.deploy("app.handler", bootstrap_dir, layers=[layer])
        fn = sim.deploy("app.handler", bootstrap_dir, name="plain")
        with pytest.raises(SettingError, match="fakefs sandbox cannot run this function"):
            fn.redeploy(runtime="provided")
        assert fn.version == "1" and list(sim.functions) == ["plain"]


# -- templates ----------------------------------------------------------------------------------------


def _template(folder: Path, body: str) -> Path:
    path = folder / "template.yaml"
    path.write_text('AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\n'
                    + textwrap.dedent(body))
    return path


def test_sam_provided_runtime_with_layers_holding_bootstrap_and_extensions(host_sim: Simulator,
                                                                           tmp_path: Path) -> None:
    executable(tmp_path / "runtime", "bootstrap", PY_BOOTSTRAP)
    executable(tmp_path / "ext", "extensions/noop", """\
        #!/usr/bin/env python3
        import json, os, urllib.request
        api = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2020-01-01/extension"
        req = urllib.request.Request(f"{api}/register", json.dumps({"events": ["SHUTDOWN"]}).encode(),
                                     {"Lambda-Extension-Name": "noop"})
        ident = urllib.request.urlopen(req).headers["Lambda-Extension-Identifier"]
        urllib.request.urlopen(urllib.request.Request(f"{api}/event/next",
                                                      headers={"Lambda-Extension-Identifier": ident}))
        print("noop: shutting down", flush=True)
    """)
    (tmp_path / "code").mkdir()
    path = _template(tmp_path, """\
        Resources:
          RuntimeLayer:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: runtime/}
          ExtLayer:
            Type: AWS::Lambda::LayerVersion
            Properties: {Content: ext/}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Runtime: provided.al2023
              Handler: bootstrap-reads-this
              CodeUri: code/
              Layers: [!Ref RuntimeLayer, !Ref ExtLayer]
    """)
    loaded = load_function(path, "Fn")
    assert (loaded.runtime, loaded.handler, loaded.entry_point) == ("provided.al2023", "bootstrap-reads-this", ())
    fn = host_sim.deploy_from_template(path, "Fn")
    assert fn.config.runtime == "provided.al2023"
    assert fn.invoke({"x": 1}).payload["handler"] == "bootstrap-reads-this"
    fn.scale_down()
    (shutdown,) = [e for e in host_sim.trace if e.kind == "shutdown"]
    assert shutdown.detail["killed"] == [] and "noop: shutting down" in shutdown.detail["logs"]


def test_serverless_provided_runtime(tmp_path: Path) -> None:
    (tmp_path / "serverless.yml").write_text(textwrap.dedent("""\
        service: php
        provider: {name: aws, runtime: provided.al2023}
        functions:
          web: {handler: public/index.php}
    """))
    fn = load_function(tmp_path, "web")
    assert (fn.runtime, fn.handler, fn.deploy_kwargs()["runtime"]) == ("provided.al2023", "public/index.php",
                                                                       "provided.al2023")


def test_template_errors_name_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    path = _template(tmp_path, """\
        Resources:
          Img:
            Type: AWS::Serverless::Function
            Metadata: {DockerContext: ctx/, Dockerfile: Dockerfile}
            Properties:
              PackageType: Image
              ImageConfig:
                EntryPoint: [python3, -m, awslambdaric]
                Command: [app.handler]
                WorkingDirectory: /var/task
          Handlerless:
            Type: AWS::Serverless::Function
            Properties: {Runtime: provided.al2023, CodeUri: ctx/}
    """)
    img = load_function(path, "Img")
    assert (img.code_dir, img.handler, img.entry_point) == (str(tmp_path / "ctx"), "app.handler",
                                                           ("python3", "-m", "awslambdaric"))
    assert img.deploy_kwargs()["entry_point"] == ["python3", "-m", "awslambdaric"]
    with pytest.raises(SourceError) as caught:
        load_function(path, "Handlerless")
    assert (caught.value.line, caught.value.key) == (15, "Resources.Handlerless.Properties.Handler")
    assert "for a custom runtime: what its bootstrap reads in _HANDLER" in str(caught.value)
    path.write_text(path.read_text().replace("DockerContext: ctx/", "DockerContext: nowhere/"))
    with pytest.raises(SourceError, match=r"template.yaml:6: Resources.Img.Metadata.DockerContext: 'nowhere/': "
                                          r"no such folder"):
        load_function(path, "Img")


def test_awslambdaric_as_a_container_image_starts_it(host_sim: Simulator, tmp_path: Path) -> None:
    """PackageType: Image with ImageConfig.EntryPoint [python, -m, awslambdaric]: AWS's own runtime client
    serves the handler through lambdasim's Runtime API."""
    if importlib.util.find_spec("awslambdaric") is None:
        if REQUIRE_RUNTIMES:
            pytest.fail("LAMBDASIM_REQUIRE_RUNTIMES=1 and awslambdaric is not installed")
        pytest.skip("awslambdaric is not installed here (pip install awslambdaric==4.2.2)")
    context = tmp_path / "image"
    context.mkdir()
    (context / "app.py").write_text(textwrap.dedent("""\
        import sys
        def handler(event, context):
            print("awslambdaric ran me", flush=True)
            return {"doubled": event["n"] * 2, "request_id": context.aws_request_id,
                    "ric": "awslambdaric" in sys.modules}
    """))
    path = _template(tmp_path, """\
        Parameters:
          Python: {Type: String, Default: python3}
        Resources:
          ImageFunction:
            Type: AWS::Serverless::Function
            Metadata: {DockerContext: image/, Dockerfile: Dockerfile}
            Properties:
              PackageType: Image
              ImageConfig:
                EntryPoint: [!Ref Python, -m, awslambdaric]
                Command: [app.handler]
    """)
    fn = host_sim.deploy_from_template(path, "ImageFunction", parameters={"Python": _instance_python()})
    assert fn.config.entry_point == (_instance_python(), "-m", "awslambdaric")
    inv = fn.invoke({"n": 21})
    assert inv.error is None, inv.logs
    assert inv.payload == {"doubled": 42, "request_id": inv.request_id, "ric": True}
    assert "awslambdaric ran me" in inv.logs
    assert not fn.invoke({"n": 1}).cold_start


# -- the command line ---------------------------------------------------------------------------------


def test_cli_runtime_and_entry_point(capsys: pytest.CaptureFixture[str], bootstrap_dir: Path) -> None:
    try:
        Simulator(sandbox="namespace").close()
    except Exception as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")
    status = main(["invoke", "--sandbox", "namespace", "--runtime", "provided.al2023", "--code-dir",
                   str(bootstrap_dir), "--event", '{"k": "v"}', "my.handler"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert '"handler": "my.handler"' in out and '"event": {"k": "v"}' in out
    assert "INIT_START Runtime Version: provided:al2023" in err
    status = main(["invoke", "--sandbox", "namespace", "--runtime", "provided.al2023", "--code-dir",
                   str(bootstrap_dir), "--entry-point", '["/usr/bin/env", "python3", "bootstrap"]', "x.y"])
    out, err = capsys.readouterr()
    assert status == 0 and '"handler": "x.y"' in out, err


def test_cli_flags_are_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["invoke", "--runtime", "nodejs20.x", "--code-dir", str(tmp_path), "a.b"]) == 2
    assert "--runtime 'nodejs20.x': lambdasim runs python3.9 ... python3.14 and the custom runtimes " \
           "provided.al2023, provided.al2, provided" in capsys.readouterr().err
    assert main(["invoke", "--entry-point", "python3 'unclosed", "--code-dir", str(tmp_path), "a.b"]) == 2
    assert "--entry-point \"python3 'unclosed\": No closing quotation" in capsys.readouterr().err
    assert main(["invoke", "--entry-point", "[1]", "--code-dir", str(tmp_path), "a.b"]) == 2
    assert "give a command, e.g. 'python3 -m awslambdaric'" in capsys.readouterr().err


def test_deploy_from_template_takes_runtime_overrides(host_sim: Simulator, tmp_path: Path,
                                                      bootstrap_dir: Path) -> None:
    fn = host_sim.deploy_from_template(SHELL_CURL / "template.yaml", "EchoFunction", code_dir=bootstrap_dir,
                                       runtime="provided.al2", handler="over.ridden")
    assert fn.config.runtime == "provided.al2" and fn.invoke({}).payload["handler"] == "over.ridden"
    with pytest.raises(ConfigError, match="no setting command"):
        host_sim.deploy_from_template(SHELL_CURL / "template.yaml", "EchoFunction", command=["x"])
