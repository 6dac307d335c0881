"""The Runtime and Extensions API end to end: custom runtimes (``provided.al2023``) and extensions in
the namespace sandbox, through ``Simulator``: a bash + curl bootstrap as in AWS's tutorial, a Python
``http.client`` loop, and the lifecycle rules of the built-in runtime (timeouts, resets, crashes,
memory, freezing) holding behind the HTTP API too."""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lambdasim import Simulator
from tests.conftest import Code

REQUIRE_RUNTIMES = os.environ.get("LAMBDASIM_REQUIRE_RUNTIMES") == "1"


def needs(program: str) -> None:
    if shutil.which(program) is None:
        if REQUIRE_RUNTIMES:
            pytest.fail(f"{program} is required here (LAMBDASIM_REQUIRE_RUNTIMES=1)")
        pytest.skip(f"{program} is not installed")


CURL_BOOTSTRAP = """\
#!/bin/bash
# AWS's tutorial bootstrap (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-walkthrough.html)
set -euo pipefail
echo "bootstrap for $_HANDLER in $LAMBDA_TASK_ROOT"
while true
do
  HEADERS="$(mktemp)"
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  echo "handling $EVENT_DATA"
  RESPONSE="{\\"echo\\": $EVENT_DATA, \\"id\\": \\"$REQUEST_ID\\"}"
  curl -sS "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response" -d "$RESPONSE" \\
    -o /dev/null
done
"""

PY_BOOTSTRAP = """\
#!{python} -S
# A minimal custom runtime: the handler (_HANDLER, in /var/task) is called with the event and the
# next answer's headers; what it returns is posted as JSON, what it raises as Lambda's error.
import http.client, importlib, json, os, sys
sys.path.insert(0, "/var/task")
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
module, name = os.environ["_HANDLER"].rsplit(".", 1)
try:
    handler = getattr(importlib.import_module(module), name)
except Exception as e:
    conn.request("POST", "/2018-06-01/runtime/init/error",
                 body=json.dumps({{"errorMessage": str(e), "errorType": type(e).__name__}}),
                 headers={{"Lambda-Runtime-Function-Error-Type": "Runtime.UnknownReason"}})
    conn.getresponse().read()
    sys.exit(1)
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    headers = {{k.lower(): v for k, v in r.getheaders()}}
    rid = headers["lambda-runtime-aws-request-id"]
    try:
        result = handler(event, headers)
        path, body = "response", result if isinstance(result, bytes) else json.dumps(result).encode()
    except Exception as e:
        path, body = "error", json.dumps({{"errorMessage": str(e), "errorType": type(e).__name__}}).encode()
    conn.request("POST", f"/2018-06-01/runtime/invocation/{{rid}}/{{path}}", body=body)
    r = conn.getresponse()
    answer = r.read()
    if r.status != 202:
        print("post answered", r.status, answer.decode(), flush=True)
"""


def bootstrap(root: Path, text: str, name: str = "bootstrap", mode: int = 0o755) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def py_function(code: Code, handler: str) -> Path:
    """Code with the Python loop as its bootstrap and ``handler`` as app.py."""
    root = code(handler)
    bootstrap(root, PY_BOOTSTRAP.format(python=sys.executable))
    return root


def test_a_bash_and_curl_bootstrap_as_in_aws_tutorial(sim: Simulator, code: Code) -> None:
    needs("curl")
    root = code()
    bootstrap(root, CURL_BOOTSTRAP)
    fn = sim.deploy("function.handler", root, name="tutorial", runtime="provided.al2023")
    big = {"data": "x" * 5000}  # curl sends Expect: 100-continue for a body this size
    first, second = fn.invoke({"n": 1}), fn.invoke(big)
    assert first.error is None and first.payload == {"echo": {"n": 1}, "id": first.request_id}
    assert first.cold_start and not second.cold_start
    assert second.payload["echo"] == big
    assert "bootstrap for function.handler in /var/task" in first.logs
    assert 'handling {"n": 1}' in first.logs


HEADERS_HANDLER = """
import os
import re
def handler(event, headers):
    return {"headers": headers, "api": os.environ["AWS_LAMBDA_RUNTIME_API"], "handler": os.environ["_HANDLER"],
            "root": os.environ["LAMBDA_TASK_ROOT"], "cwd": os.getcwd()}
"""


def test_a_python_bootstrap_sees_lambdas_headers_and_environment(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", py_function(code, HEADERS_HANDLER), name="headers", runtime="provided.al2023",
                    timeout_s=5, tenant_isolation=True)
    inv = fn.invoke({}, client_context={"custom": {"a": 1}},
                    identity={"cognitoIdentityId": "i", "cognitoIdentityPoolId": "p"}, tenant_id="tenant-1")
    assert inv.error is None, inv.logs
    got = inv.payload
    headers = got["headers"]
    assert headers["lambda-runtime-aws-request-id"] == inv.request_id
    deadline = int(headers["lambda-runtime-deadline-ms"])
    assert 0 < deadline - time.time() * 1000 <= 5000
    assert headers["lambda-runtime-invoked-function-arn"].endswith(":function:headers")
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    assert '"custom": {"a": 1}' in headers["lambda-runtime-client-context"]
    assert '"cognitoIdentityPoolId": "p"' in headers["lambda-runtime-cognito-identity"]
    assert headers["lambda-runtime-aws-tenant-id"] == "tenant-1"
    assert len(headers["lambda-runtime-invocation-id"]) == 36
    assert got["api"] == "127.0.0.1:9001"  # Lambda's address, in the instance's own network
    assert (got["handler"], got["root"], got["cwd"]) == ("app.handler", "/var/task", "/var/task")


def test_init_error_is_the_functions_error(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", py_function(code, "raise KeyError('config')\n"), name="initerr",
                    runtime="provided.al2023")
    inv = fn.invoke({})
    assert inv.error == {"errorMessage": "'config'", "errorType": "KeyError"}
    assert inv.logs.splitlines()[-1].endswith("Status: error\tError Type: KeyError")
    assert fn.invoke({}).cold_start  # Init runs again


@pytest.mark.parametrize("mode", [None, 0o644, "dir"])
def test_a_missing_or_unusable_bootstrap(sim: Simulator, code: Code, mode: int | str | None) -> None:
    root = code("x = 1\n")
    if mode == "dir":
        (root / "bootstrap").mkdir()
    elif mode is not None:
        bootstrap(root, "#!/bin/sh\necho hi\n", mode=int(mode))
    fn = sim.deploy("app.handler", root, name="noboot", runtime="provided.al2023")
    inv = fn.invoke({})
    # As Lambda answers it: the platform's error names the request.
    assert inv.error == {"errorType": "Runtime.InvalidEntrypoint",
                         "errorMessage": f"RequestId: {inv.request_id} Error: Couldn't find valid bootstrap(s): "
                                         "[/var/task/bootstrap /opt/bootstrap]"}


def test_a_bootstrap_from_a_layer(sim: Simulator, code: Code, tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    bootstrap(layer, PY_BOOTSTRAP.format(python=sys.executable))
    fn = sim.deploy("app.handler", code("def handler(event, headers):\n    return 'from /opt'\n"), name="layered",
                    runtime="provided.al2", layers=[layer])
    assert fn.invoke({}).payload == "from /opt"


EXITING = """\
#!/bin/bash
echo "about to fail" >&2
curl -sS "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next" -o /dev/null
echo "leaving with 3"
exit 3
"""


def test_a_bootstrap_that_exits(sim: Simulator, code: Code) -> None:
    needs("curl")
    root = code()
    bootstrap(root, EXITING)
    fn = sim.deploy("function.handler", root, name="exits", runtime="provided")
    inv = fn.invoke({})
    assert inv.error == {"errorType": "Runtime.ExitError",
                         "errorMessage": f"RequestId: {inv.request_id} Error: Runtime exited with error: exit status 3"}
    assert "about to fail" in inv.logs and "leaving with 3" in inv.logs
    assert fn.invoke({}).cold_start


def test_a_bootstrap_that_exits_during_init_leaves_its_output(sim: Simulator, code: Code) -> None:
    root = code()
    bootstrap(root, "#!/bin/sh\necho missing libfoo.so >&2\nexit 127\n")
    fn = sim.deploy("function.handler", root, name="initexit", runtime="provided.al2023")
    inv = fn.invoke({})
    assert inv.error == {"errorType": "Runtime.ExitError", "errorMessage":
                         f"RequestId: {inv.request_id} Error: Runtime exited with error: exit status 127"}
    assert "missing libfoo.so" in inv.logs
    assert inv.logs.rstrip().endswith("Status: error\tError Type: Runtime.ExitError")
    assert fn.invoke({}).cold_start


STATEFUL = """
import os, threading, time
count = 0
ticks = 0
def tick():
    global ticks
    while True:
        time.sleep(0.002)
        ticks += 1
def handler(event, headers):
    global count
    count += 1
    if event.get("ticker"):
        threading.Thread(target=tick, daemon=True).start()
    if event.get("write"):
        with open("/tmp/kept", "w") as f:
            f.write(event["write"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("allocate_mb"):
        blocks = [bytearray(1 << 20) for _ in range(event["allocate_mb"])]
    if event.get("size"):
        return b'"' + b"x" * (event["size"] - 2) + b'"'
    kept = open("/tmp/kept").read() if os.path.exists("/tmp/kept") else None
    return {"count": count, "kept": kept, "ticks": ticks}
"""


def test_a_timeout_resets_the_environment_and_keeps_tmp(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", py_function(code, STATEFUL), name="slow", runtime="provided.al2023",
                    timeout_s=1)
    assert fn.invoke({"write": "kept"}).payload["count"] == 1
    timed_out = fn.invoke({"sleep": 5})
    assert timed_out.error is not None and timed_out.error["errorType"] == "Sandbox.Timedout"
    after = fn.invoke({})
    assert after.cold_start and after.payload == {"count": 1, "kept": "kept", "ticks": 0}


def test_the_environment_is_frozen_between_invocations(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", py_function(code, STATEFUL), name="frozen", runtime="provided.al2023")
    first = fn.invoke({"ticker": True}).payload["ticks"]
    before = fn.invoke({}).payload["ticks"]
    time.sleep(0.5)  # a ticker running would count ~250 here
    after = fn.invoke({}).payload["ticks"]
    assert after - before < 50, (first, before, after)


def test_out_of_memory(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", py_function(code, STATEFUL), name="hungry", runtime="provided.al2023",
                    memory_mb=128, timeout_s=30)
    inv = fn.invoke({"allocate_mb": 400})
    assert inv.error is not None and inv.error["errorType"] == "Runtime.OutOfMemory", inv.error
    assert fn.invoke({}).cold_start


def test_a_6_mb_response_passes_and_one_byte_more_is_refused(sim: Simulator, code: Code) -> None:
    fn = sim.deploy("app.handler", py_function(code, STATEFUL), name="big", runtime="provided.al2023",
                    timeout_s=30)
    limit = 6_291_556
    ok = fn.invoke({"size": limit})
    assert ok.error is None and ok.raw_payload is not None and len(ok.raw_payload) == limit
    over = fn.invoke({"size": limit + 1})
    assert over.error == {"errorMessage": "Response payload size (6291557 bytes) exceeded maximum allowed payload "
                                          "size (6291556 bytes).", "errorType": "Function.ResponseSizeTooLarge"}
    assert "post answered 413" in over.logs and "RequestEntityTooLarge" in over.logs
    assert not fn.invoke({}).cold_start  # this runtime lives on after a 413


EXTENSION = """\
#!{python} -S
# An external extension: registers, then handles events; writes to /tmp, which the function shares.
import http.client, json, os, sys, time
name = os.path.basename(__file__)
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
c = http.client.HTTPConnection(host, int(port))
c.request("POST", "/2020-01-01/extension/register", body=json.dumps({{"events": ["INVOKE", "SHUTDOWN"]}}),
          headers={{"Lambda-Extension-Name": name}})
r = c.getresponse()
body = r.read()
if r.status != 200:
    print(name, "refused:", r.status, body.decode(), flush=True)
    sys.exit(1)
ext = r.getheader("Lambda-Extension-Identifier")
print(name, "registered for", json.loads(body)["functionName"], "with", os.environ.get("SHARED"), flush=True)
while True:
    c.request("GET", "/2020-01-01/extension/event/next", headers={{"Lambda-Extension-Identifier": ext}})
    event = json.loads(c.getresponse().read())
    if event["eventType"] == "SHUTDOWN":
        break
    print(name, "saw", event["requestId"], flush=True)
    with open("/tmp/" + name, "a") as f:
        f.write(event["requestId"] + "\\n")
    time.sleep({linger})
    if os.path.exists("/tmp/crash-" + name):  # (removed: /tmp outlives the reset that follows)
        os.remove("/tmp/crash-" + name)
        os._exit(7)
"""

TMP_READER = """
import os
import re
def handler(event, headers):
    if event.get("crash"):
        open("/tmp/crash-" + event["crash"], "w").close()
    return sorted((n, open("/tmp/" + n).read().split()) for n in os.listdir("/tmp") if not n.startswith("crash"))
"""


def extension_layer(tmp_path: Path, names: list[str], linger: float = 0.0) -> Path:
    layer = tmp_path / "ext-layer"
    for name in names:
        bootstrap(layer / "extensions", EXTENSION.format(python=sys.executable, linger=linger), name=name)
    return layer


def test_extensions_share_tmp_and_environment_and_log(sim: Simulator, code: Code, tmp_path: Path) -> None:
    fn = sim.deploy("app.handler", py_function(code, TMP_READER), name="withext", runtime="provided.al2023",
                    layers=[extension_layer(tmp_path, ["ext-a", "ext-b"])], environment={"SHARED": "yes"})
    first, second = fn.invoke({}), fn.invoke({})
    assert first.error is None, first.logs
    # The extensions' notes in /tmp, as the function sees them at its next invocation.
    notes = dict((n, ids) for n, ids in second.payload)
    assert notes["ext-a"][0] == notes["ext-b"][0] == first.request_id
    assert "ext-a registered for withext with yes" in first.logs
    assert f"ext-b saw {first.request_id}" in first.logs
    assert not second.cold_start


def test_extension_time_after_the_response_counts_in_the_duration(sim: Simulator, code: Code,
                                                                  tmp_path: Path) -> None:
    fn = sim.deploy("app.handler", py_function(code, TMP_READER), name="lingers", runtime="provided.al2023",
                    layers=[extension_layer(tmp_path, ["slow"], linger=0.3)])
    fn.invoke({})
    inv = fn.invoke({})
    assert inv.error is None and inv.duration_ms >= 300.0


def test_an_extension_that_crashes_at_init(sim: Simulator, code: Code, tmp_path: Path) -> None:
    layer = tmp_path / "crash-layer"
    bootstrap(layer / "extensions", "#!/bin/sh\necho extension dying\nexit 4\n", name="dies")
    fn = sim.deploy("app.handler", py_function(code, TMP_READER), name="extcrash", runtime="provided.al2023",
                    layers=[layer])
    inv = fn.invoke({})
    assert inv.error == {"errorType": "Extension.Crash",
                         "errorMessage": f"RequestId: {inv.request_id} Error: Extension dies exited with error: "
                                         "exit status 4"}
    assert "extension dying" in inv.logs


def test_an_extension_that_crashes_during_an_invocation(sim: Simulator, code: Code, tmp_path: Path) -> None:
    fn = sim.deploy("app.handler", py_function(code, TMP_READER), name="extcrash2", runtime="provided.al2023",
                    layers=[extension_layer(tmp_path, ["ext-a"])])
    assert fn.invoke({}).error is None
    # The handler plants the file while the extension handles the same INVOKE: it sees it at this
    # invocation or the next one, whichever; then the environment is reset and starts afresh.
    planted = fn.invoke({"crash": "ext-a"})
    after = fn.invoke({})
    crashed = planted if planted.error is not None else after
    assert crashed.error is not None and crashed.error["errorType"] == "Extension.Crash", crashed.error
    following = after if crashed is planted else fn.invoke({})
    assert following.cold_start and following.error is None


def test_the_eleventh_extension_is_refused(sim: Simulator, code: Code, tmp_path: Path) -> None:
    names = [f"e{i:02d}" for i in range(11)]
    fn = sim.deploy("app.handler", py_function(code, TMP_READER), name="eleven", runtime="provided.al2023",
                    layers=[extension_layer(tmp_path, names)], timeout_s=10)
    inv = fn.invoke({})
    # The eleventh to register is refused, whichever that is: they start at once.
    refused = re.findall(r'^(e\d\d) refused: 403 \{"errorMessage": "Extension limit \(10\) reached", '
                         r'"errorType": "Extension.TooManyExtensions"\}$', inv.logs, re.M)
    assert len(refused) == 1, inv.logs
    assert inv.error == {"errorType": "Extension.Crash",
                         "errorMessage": f"RequestId: {inv.request_id} Error: Extension {refused[0]} exited with "
                                         "error: exit status 1"}


def test_concurrent_instances_each_have_their_api(make_sim: Callable[..., Simulator], code: Code) -> None:
    # Until each instance has a network namespace of its own, several API instances in one network
    # namespace would all want 127.0.0.1:9001: network="host" gives each a free port instead.
    sim = make_sim(network="host")
    fn = sim.deploy("app.handler", py_function(code, STATEFUL + "\nimport time\n"), name="many",
                    runtime="provided.al2023")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: fn.invoke({"sleep": 0.3}), range(4)))
    assert all(r.error is None for r in results), [r.error for r in results]
    assert len({r.instance_id for r in results}) == 4


def test_the_api_answers_curl_with_lambdas_errors(sim: Simulator, code: Code) -> None:
    needs("curl")
    root = code()
    bootstrap(root, textwrap.dedent("""\
        #!/bin/bash
        API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
        curl -sS -D /tmp/h "$API/invocation/next" -o /tmp/event
        ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id /tmp/h | tr -d '[:space:]' | cut -d: -f2)
        echo "wrong id: $(curl -sS -w ' %{http_code}' "$API/invocation/nope/response" -d 1)"
        echo "first: $(curl -sS -w ' %{http_code}' "$API/invocation/$ID/response" -d '"done"')"
        echo "second: $(curl -sS -w ' %{http_code}' "$API/invocation/$ID/response" -d 2)"
        echo "late init error: $(curl -sS -w ' %{http_code}' "$API/init/error" -d '{}')"
        echo "unknown: $(curl -sS -w ' %{http_code}' "$API/restore/next")"
        curl -sS "$API/invocation/next" -o /dev/null
        """))
    fn = sim.deploy("x.y", root, name="curlerrors", runtime="provided.al2023")
    first = fn.invoke({})
    assert first.payload == "done"
    second = fn.invoke({})  # its logs hold what the bootstrap printed after its first reply
    logs = first.logs + second.logs
    assert 'wrong id: {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"} 400' in logs
    assert 'first: {"status":"OK"} 202' in logs
    assert "second: " in logs and "RuntimeResponseSentState to InvocationResponse" in logs and " 403" in logs
    assert "late init error: " in logs and "to InitError failed" in logs
    assert "unknown: " in logs and " 404" in logs


def test_a_wrapper_starts_the_managed_runtime_as_on_lambda(sim: Simulator, code: Code, tmp_path: Path) -> None:
    # A tracing vendor's wrapper (from a layer): Lambda runs it with the runtime's start as its arguments.
    layer = tmp_path / "wrapper-layer"
    bootstrap(layer, '#!/bin/bash\necho "wrapper got: $*" >&2\nexport WRAPPED=yes\nexec "$@"\n', name="wrap")
    root = code("import os, sys\ndef handler(event, context):\n"
                "    return [os.environ.get('WRAPPED'), '/var/runtime' in sys.path]\n")
    fn = sim.deploy("app.handler", root, name="wrapped", layers=[layer],
                    environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrap"})
    inv = fn.invoke({})
    assert inv.error is None and inv.payload == ["yes", True]
    assert "wrapper got: /var/runtime/bootstrap\n" in inv.logs
    assert not fn.invoke({}).cold_start


NODE_HANDLER = """\
import { existsSync, readFileSync, writeFileSync } from "node:fs";
let count = 0;
export const handler = async (event, context) => {
  if (event.fail) throw new TypeError("no such order");
  count += 1;
  const seen = existsSync("/tmp/seen") ? readFileSync("/tmp/seen", "utf8") : "";
  writeFileSync("/tmp/seen", seen + "x");
  console.log("node handler", context.awsRequestId, context.getRemainingTimeInMillis() > 0);
  return { count, tmp: seen.length, got: event };
};
"""


def node_ric() -> Path:
    """AWS's Node.js runtime client (npm ``aws-lambda-ric``), built: ``LAMBDASIM_NODE_RIC`` names its folder."""
    where = os.environ.get("LAMBDASIM_NODE_RIC", "")
    if where and (Path(where) / "rapid-client.node").is_file() and shutil.which("node"):
        return Path(where)
    if REQUIRE_RUNTIMES:
        pytest.fail("LAMBDASIM_REQUIRE_RUNTIMES=1 and LAMBDASIM_NODE_RIC does not name a built aws-lambda-ric "
                    "(npm install aws-lambda-ric; .ci/run does) or node is missing")
    pytest.skip("set LAMBDASIM_NODE_RIC to a built npm aws-lambda-ric to run a Node.js function")


def test_nodejs_through_awss_runtime_client(sim: Simulator, code: Code) -> None:
    # As a Node.js container image starts it: ENTRYPOINT node <aws-lambda-ric>, CMD index.handler.
    ric = node_ric()
    root = code()
    (root / "index.mjs").write_text(NODE_HANDLER)
    package = root / "node_modules" / "aws-lambda-ric"
    package.mkdir(parents=True)
    for name in ("index.mjs", "package.json", "rapid-client.node"):
        shutil.copy2(ric / name, package / name)
    node = shutil.which("node")
    assert node is not None
    fn = sim.deploy("index.handler", root, name="node", runtime="provided.al2023",
                    entry_point=[node, "/var/task/node_modules/aws-lambda-ric/index.mjs"])
    first, second = fn.invoke({"n": 1}), fn.invoke({"n": 2})
    assert (first.cold_start, first.error, first.payload) == (True, None, {"count": 1, "tmp": 0, "got": {"n": 1}})
    assert (second.cold_start, second.payload) == (False, {"count": 2, "tmp": 1, "got": {"n": 2}})
    assert f"\t{second.request_id}\tINFO\tnode handler {second.request_id} true\n" in second.logs
    failed = fn.invoke({"fail": True})
    assert failed.error is not None
    assert (failed.error["errorType"], failed.error["errorMessage"]) == ("TypeError", "no such order")
    assert not fn.invoke({"n": 3}).cold_start  # a handler's exception keeps the environment


def test_a_runtime_that_ends_after_its_answer_makes_the_next_invocation_cold(sim: Simulator, code: Code) -> None:
    # One invocation, then the process ends (as awslambdaric after a refused response): the
    # invocation completes when it ends (it never asks for its next event, after which Lambda would
    # freeze it), and the next one finds it gone and starts the environment afresh, without an error.
    root = code()
    bootstrap(root, f"""#!{sys.executable} -S
import http.client, os
api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
api.request("GET", "/2018-06-01/runtime/invocation/next")
got = api.getresponse()
got.read()
rid = got.getheader("Lambda-Runtime-Aws-Request-Id")
api.request("POST", f"/2018-06-01/runtime/invocation/{{rid}}/response", b'"once"')
api.getresponse().read()
print("leaving after one", flush=True)
""")
    fn = sim.deploy("function.handler", root, name="once", runtime="provided.al2023")
    first = fn.invoke({})
    assert (first.error, first.payload, first.cold_start) == (None, "once", True)
    time.sleep(0.2)  # it has gone by now
    second = fn.invoke({})
    assert (second.error, second.payload, second.cold_start) == (None, "once", True)
    assert first.logs.count("leaving after one\n") == 1  # written after its answer, seen with it
    assert [e.detail.get("reason") for e in sim.trace if e.kind == "reset"] == ["exit", "exit"]
