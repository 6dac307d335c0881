"""YAML scenarios: validation with file:line:key messages, and runs through the Simulator.

a. every kind of mistake in a file is a ScenarioError naming the file, line and key,
   for every step and every check (templates, sizes and services included);
b. YAML is read as JSON reads it, `{i}` numbers the invocations, code_dir is relative
   to the file, and step types plug into a registry (the README's example too);
c. (sandbox) scenarios run: passing, failing at an expect with its line and message,
   `as` names; crash, destroy, advance_clock, fill_tmp, service faults and deploys from
   templates do what they say; each state check (instances, cold_starts, tmp_file,
   s3_object, s3_count, redis_key, dynamodb_item) holds or fails saying what it
   expected and saw;
d. every shipped scenarios/*.yaml passes, and each reproduction has a fixed twin.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from lambdasim import ConfigError, Invocation, LambdaSimError, SandboxUnavailable, Simulator
from lambdasim._scenario import (
    INVOCATION_CHECKS,
    STATE_CHECKS,
    STEPS,
    ColdStartCount,
    Deploy,
    DynamoDBItem,
    Expect,
    InstancesCount,
    InvocationCheck,
    Invoke,
    Node,
    Redeploy,
    RedisKey,
    RunContext,
    S3Count,
    S3Object,
    ScenarioError,
    ScenarioFailure,
    StateCheck,
    Step,
    TmpFile,
    check,
    load_scenario,
    run_file,
    step,
)
from lambdasim._services.service import Services, parse_services
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
     "unknown step 'invok' (did you mean 'invoke'?); known steps: advance_clock, aws, crash, deploy, destroy, "
     "expect, fill_tmp, invoke, memcached, redeploy, redis, scale_down, service"),
    ("unknown key",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, memroy_mb: 256}\n",
     2, "steps[0].deploy.memroy_mb",
     "unknown key 'memroy_mb' (did you mean 'memory_mb'?); allowed keys: handler, code_dir, name, memory_mb, "
     "timeout_s, ephemeral_storage_mb, environment, reserved_concurrency, keepalive_s, layers, runtime, snap_start, "
     "provisioned_concurrency, tenant_isolation, capacity_provider, max_concurrency, min_environments, "
     "max_environments, template, function, parameters"),
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
     "'deploy' is not a step; write a step as '- name: {settings}' with name one of advance_clock, aws, crash, "
     "deploy, destroy, expect, fill_tmp, invoke, memcached, redeploy, redis, scale_down, service"),
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
     "logs_contain, holds, restore, restore_duration_ms, tenant, worker, instances, cold_starts, tmp_file, "
     "s3_object, s3_count, redis_key, dynamodb_item, instances_per_tenant, workers"),
    ("holds that is not Python",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect:\n      holds: payload ===\n",
     5, "steps[2].expect.holds",
     "'payload ===' is not a Python expression (invalid syntax); write one over inv, payload, error, history, e.g. "
     "\"error is None and payload['n'] < 3\""),
    ("holds that is not a string",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {holds: true}\n",
     4, "steps[2].expect.holds",
     "true is not a non-empty string; use a Python expression over inv, payload and error, e.g. "
     "\"payload['n'] < 3\""),
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
    # -- deploy from a template
    ("a template without its function",
     "steps:\n  - deploy: {template: template.yaml}\n",
     2, "steps[0].deploy", "missing key 'function'; required: template, function"),
    ("function without a template",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, function: OrdersFunction}\n",
     2, "steps[0].deploy.function",
     "function belongs to a deploy from a template; add template: path/to/template.yaml (to name the function, "
     "use name:)"),
    ("parameters without a template",
     "steps:\n  - deploy:\n      handler: app.handler\n      code_dir: code\n      parameters: {Stage: prod}\n",
     5, "steps[0].deploy.parameters",
     "parameters belongs to a deploy from a template; add template: path/to/template.yaml (to name the function, "
     "use name:)"),
    # -- invoke
    ("event and event_template",
     "steps:\n" + DEPLOY + "  - invoke:\n      event: {a: 1}\n      event_template: {a: '{i}'}\n",
     5, "steps[1].invoke.event_template",
     'event_template is another name for event, which is given too; keep one (both replace "{i}" with the number '
     "of the invocation)"),
    ("an event_template that is not JSON",
     "steps:\n" + DEPLOY + "  - invoke: {event_template: {data: !!binary aGk=}}\n",
     3, "steps[1].invoke.event_template.data",
     "b'hi' is not a JSON value; use strings, numbers, true, false, null, lists and mappings"),
    # -- advance_clock
    ("advance_clock without a duration",
     "steps:\n  - advance_clock: {}\n",
     2, "steps[0].advance_clock", "how far? give seconds, minutes or hours, e.g. advance_clock: {minutes: 15}"),
    ("advance_clock with no settings",
     "steps:\n  - advance_clock:\n",
     2, "steps[0].advance_clock", "how far? give seconds, minutes or hours, e.g. advance_clock: {minutes: 15}"),
    ("advance_clock backwards",
     "steps:\n  - advance_clock: {minutes: -5}\n",
     2, "steps[0].advance_clock.minutes", "-5 would go back in time; use a number >= 0"),
    ("advance_clock by text",
     "steps:\n  - advance_clock:\n      hours: one\n",
     3, "steps[0].advance_clock.hours", "'one' is not a number; use a number of hours >= 0"),
    ("advance_clock with an unknown unit",
     "steps:\n  - advance_clock: {secs: 5}\n",
     2, "steps[0].advance_clock.secs",
     "unknown key 'secs' (did you mean 'seconds'?); allowed keys: seconds, minutes, hours"),
    # -- crash and destroy
    ("crash an instance by name",
     "steps:\n" + DEPLOY + "  - crash: {instance: first}\n",
     3, "steps[1].crash.instance",
     "'first' is not an instance; use the index of a live instance (0 is the oldest) or all"),
    ("crash a negative instance",
     "steps:\n" + DEPLOY + "  - crash: {instance: -1}\n",
     3, "steps[1].crash.instance", "-1 is too small; use the index of a live instance (0 is the oldest) or all"),
    ("crash before a deploy",
     "steps:\n  - crash: {instance: all}\n",
     2, "steps[0].crash", "no function is deployed yet; add a deploy step before this one"),
    ("destroy an unknown function",
     "steps:\n" + DEPLOY + "  - destroy: {function: ap, instance: all}\n",
     3, "steps[1].destroy.function",
     "no function 'ap' is deployed by an earlier step (did you mean 'app'?); deployed: app"),
    ("destroy with an unknown key",
     "steps:\n" + DEPLOY + "  - destroy: {instances: all}\n",
     3, "steps[1].destroy.instances",
     "unknown key 'instances' (did you mean 'instance'?); allowed keys: function, instance"),
    # -- fill_tmp
    ("fill_tmp without bytes",
     "steps:\n" + DEPLOY + "  - fill_tmp: {instance: 0}\n",
     3, "steps[1].fill_tmp", "missing key 'bytes'; required: bytes"),
    ("fill_tmp with an unknown unit",
     "steps:\n" + DEPLOY + "  - fill_tmp: {bytes: 400 XB}\n",
     3, "steps[1].fill_tmp.bytes",
     "'400 XB' is not a size; use a number of bytes, or a size such as 512KB, 400MB or 1GB (powers of 1024)"),
    ("fill_tmp with a fraction of a byte",
     "steps:\n" + DEPLOY + "  - fill_tmp: {bytes: 1.5}\n",
     3, "steps[1].fill_tmp.bytes",
     "1.5 is not a size; use a number of bytes, or a size such as 512KB, 400MB or 1GB (powers of 1024)"),
    ("fill_tmp with a negative size",
     "steps:\n" + DEPLOY + "  - fill_tmp: {bytes: -1}\n",
     3, "steps[1].fill_tmp.bytes",
     "-1 is too small; use a number of bytes, or a size such as 512KB, 400MB or 1GB (powers of 1024)"),
    ("fill_tmp beyond ephemeral storage",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, ephemeral_storage_mb: 1024}\n"
     "  - fill_tmp:\n      bytes: 1.5GB\n",
     4, "steps[1].fill_tmp.bytes",
     "1.5 GB is more than the /tmp of function 'app' holds (ephemeral_storage_mb: 1024); use a smaller size, or "
     "allow_partial: true to fill /tmp up"),
    ("fill_tmp beyond the redeployed ephemeral storage",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, ephemeral_storage_mb: 1024}\n"
     "  - redeploy: {ephemeral_storage_mb: 512}\n  - fill_tmp: {bytes: 600MB}\n",
     4, "steps[2].fill_tmp.bytes",
     "600 MB is more than the /tmp of function 'app' holds (ephemeral_storage_mb: 512); use a smaller size, or "
     "allow_partial: true to fill /tmp up"),
    ("fill_tmp allow_partial not a boolean",
     "steps:\n" + DEPLOY + "  - fill_tmp: {bytes: 1MB, allow_partial: yes}\n",
     3, "steps[1].fill_tmp.allow_partial", "'yes' is not true or false"),
    # -- service
    ("an unknown service",
     "simulator: {services: [redis]}\nsteps:\n  - service: {name: postgres, action: stop}\n",
     3, "steps[0].service.name", "'postgres' is not a service; use one of aws, redis, memcached"),
    ("an unknown service action",
     "simulator: {services: [redis]}\nsteps:\n  - service: {name: redis, action: stpo}\n",
     3, "steps[0].service.action",
     "'stpo' is not an action (did you mean 'stop'?); use one of stop, start, restart, flush, pause, resume, "
     "latency, cut, heal"),
    ("a service step without an action",
     "simulator: {services: [redis]}\nsteps:\n  - service: {name: redis}\n",
     3, "steps[0].service", "missing key 'action'; required: name, action"),
    ("latency without seconds",
     "simulator: {services: [redis]}\nsteps:\n  - service: {name: redis, action: latency}\n",
     3, "steps[0].service",
     "missing key 'seconds'; latency needs the delay each way, e.g. seconds: 0.2 (0 turns it off)"),
    ("negative latency",
     "simulator: {services: [redis]}\nsteps:\n  - service: {name: redis, action: latency, seconds: -1}\n",
     3, "steps[0].service.seconds", "-1 is too small; use a number of seconds >= 0"),
    ("seconds for another action",
     "simulator: {services: [redis]}\nsteps:\n  - service:\n      name: redis\n      action: stop\n"
     "      seconds: 1\n",
     6, "steps[0].service.seconds", "seconds is the delay of action: latency; stop takes none"),
    ("a service the scenario does not start",
     "simulator: {services: [aws]}\nsteps:\n  - service: {name: redis, action: stop}\n",
     3, "steps[0].service.name",
     "service: {action: stop} needs the redis service, but this scenario does not start it (it starts aws); add "
     "it to the simulator settings: simulator: {services: [aws, redis]}"),
    # -- expect on the state
    ("cold_starts not a number",
     "steps:\n" + DEPLOY + "  - expect: {cold_starts: two}\n",
     3, "steps[1].expect.cold_starts", "'two' is not a whole number; use a number >= 0"),
    ("cold_starts of an unknown function",
     "steps:\n" + DEPLOY + "  - expect: {function: ap, cold_starts: 1}\n",
     3, "steps[1].expect.function",
     "no function 'ap' is deployed by an earlier step (did you mean 'app'?); deployed: app"),
    ("tmp_file without a path",
     "steps:\n" + DEPLOY + "  - expect: {tmp_file: {instance: 0}}\n",
     3, "steps[1].expect.tmp_file", "missing key 'path'; required: path"),
    ("tmp_file outside /tmp",
     "steps:\n" + DEPLOY + "  - expect: {tmp_file: {path: ../etc/passwd}}\n",
     3, "steps[1].expect.tmp_file.path",
     "'../etc/passwd' is not a path in /tmp; use e.g. cache/rates.json or /tmp/cache/rates.json"),
    ("tmp_file with an absolute path elsewhere",
     "steps:\n" + DEPLOY + "  - expect: {tmp_file: {path: /var/task/app.py}}\n",
     3, "steps[1].expect.tmp_file.path",
     "'/var/task/app.py' is not a path in /tmp; use e.g. cache/rates.json or /tmp/cache/rates.json"),
    ("tmp_file contents of a file that must not exist",
     "steps:\n" + DEPLOY + "  - expect:\n      tmp_file: {path: x, exists: false,\n                 contains: y}\n",
     5, "steps[1].expect.tmp_file.contains",
     "contains checks the contents, but exists: false says there is none; remove one of them"),
    ("tmp_file before a deploy",
     "steps:\n  - expect: {tmp_file: {path: x}}\n",
     2, "steps[0].expect", "no function is deployed yet; add a deploy step before this one"),
    ("s3_object without aws",
     "steps:\n  - expect:\n      s3_object: {bucket: b, key: k}\n",
     3, "steps[0].expect.s3_object",
     "s3_object needs the aws service, but this scenario does not start it (it starts none); add it to the "
     "simulator settings: simulator: {services: [aws]}"),
    ("s3_object without a key",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {s3_object: {bucket: b}}\n",
     3, "steps[0].expect.s3_object", "missing key 'key'; required: bucket, key"),
    ("s3_object body of an object that must not exist",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {s3_object: {bucket: b, key: k, exists: false, "
     "body_contains: x}}\n",
     3, "steps[0].expect.s3_object.body_contains",
     "body_contains checks the contents, but exists: false says there is none; remove one of them"),
    ("s3_count without a count",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {s3_count: {bucket: b, prefix: x/}}\n",
     3, "steps[0].expect.s3_count", "missing key 'count'; required: bucket, count"),
    ("s3_count negative",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {s3_count: {bucket: b, count: -1}}\n",
     3, "steps[0].expect.s3_count.count", "-1 is too small; use a number >= 0"),
    ("redis_key without redis",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {redis_key: {key: k}}\n",
     3, "steps[0].expect.redis_key",
     "redis_key needs the redis service, but this scenario does not start it (it starts aws); add it to the "
     "simulator settings: simulator: {services: [aws, redis]}"),
    ("redis_key value that is not a string",
     "simulator: {services: [redis]}\nsteps:\n  - expect: {redis_key: {key: k, value: 5}}\n",
     3, "steps[0].expect.redis_key.value", "5 is not a non-empty string; use the whole value, as a string"),
    ("redis_key value of a key that must not exist",
     "simulator: {services: {redis: binary}}\nsteps:\n  - expect: {redis_key: {key: k, exists: false, "
     "value: v}}\n",
     3, "steps[0].expect.redis_key.value",
     "value checks the contents, but exists: false says there is none; remove one of them"),
    ("dynamodb_item with an untyped key",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {dynamodb_item: {table: t, key: {id: '1'}}}\n",
     3, "steps[0].expect.dynamodb_item.key.id",
     "'1' is not a mapping; use DynamoDB's JSON for the key attributes, e.g. {id: {S: \"1\"}} or "
     "{pk: {S: a}, sk: {N: \"2\"}}"),
    ("dynamodb_item with an unknown key type",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {dynamodb_item: {table: t, key: {id: {SS: ['1']}}}}\n",
     3, "steps[0].expect.dynamodb_item.key.id",
     "{'SS': ['1']} is not a typed key value; give one of S, N, B: use DynamoDB's JSON for the key attributes, "
     "e.g. {id: {S: \"1\"}} or {pk: {S: a}, sk: {N: \"2\"}}"),
    ("dynamodb_item without a table",
     "simulator: {services: [aws]}\nsteps:\n  - expect: {dynamodb_item: {key: {id: {S: '1'}}}}\n",
     3, "steps[0].expect.dynamodb_item", "missing key 'table'; required: table, key"),
    ("a state check named by invocation",
     "steps:\n" + DEPLOY + "  - invoke: {as: a}\n  - expect: {invocation: a, cold_starts: 1}\n",
     4, "steps[2].expect.invocation", "cold_starts checks a function; name it with function:, not invocation:"),
    ("a service check named by invocation",
     "simulator: {services: [aws]}\nsteps:\n" + DEPLOY
     + "  - invoke: {as: a}\n  - expect: {invocation: a, s3_count: {bucket: b, count: 1}}\n",
     5, "steps[2].expect.invocation", "s3_count checks the aws service, not an invocation; leave invocation: out"),
    ("a service check named by function",
     "simulator: {services: [redis]}\nsteps:\n" + DEPLOY + "  - expect: {function: app, redis_key: {key: k}}\n",
     4, "steps[1].expect.function", "redis_key checks the redis service, not a function; leave function: out"),
    ("an invocation and a service in one expect",
     "simulator: {services: [aws]}\nsteps:\n" + DEPLOY
     + "  - invoke: {}\n  - expect: {payload: 1, s3_object: {bucket: b, key: k}}\n",
     5, "steps[2].expect",
     "payload checks an invocation and s3_object the aws service; split them into two expects"),
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


def test_a_new_check_plugs_into_expect_with_the_same_idiom(tmp_path: Path) -> None:
    @check("deployed")
    @dataclass(frozen=True)
    class Deployed(StateCheck):
        of_function = True
        needs_function = True
        expected: bool

        @classmethod
        def from_node(cls, node: Node) -> Deployed:
            return cls(node.as_bool())

        def verify(self, ctx: RunContext, function: str | None) -> str | None:
            return None if (function in ctx.sim.functions) is self.expected else f"deployed: not {self.expected}"

    @check("slow")
    @dataclass(frozen=True)
    class Slow(InvocationCheck):
        expected: float

        @classmethod
        def from_node(cls, node: Node) -> Slow:
            return cls(node.as_number("use seconds"))

        def verify(self, inv: Invocation) -> str | None:
            return None

    try:
        assert STATE_CHECKS["deployed"] is Deployed and Deployed.key == "deployed"
        assert INVOCATION_CHECKS["slow"] is Slow
        steps = load_scenario(write(tmp_path, "steps:\n" + DEPLOY + "  - invoke: {}\n"
                                    "  - expect: {deployed: true}\n  - expect: {slow: 0.5}\n")).steps
        assert isinstance(steps[2], Expect) and steps[2].state == (Deployed(True),)
        assert isinstance(steps[3], Expect) and steps[3].checks == (Slow(0.5),)
        with pytest.raises(ValueError, match="'slow' is already registered"):
            check("slow")(Slow)
        with pytest.raises(ScenarioError, match=r"unknown key 'deployd' \(did you mean 'deployed'\?\)"):
            load_scenario(write(tmp_path, "steps:\n" + DEPLOY + "  - expect: {deployd: true}\n", "typo.yaml"))
    finally:
        del STATE_CHECKS["deployed"], INVOCATION_CHECKS["slow"]


def test_a_setting_the_simulator_rejects_points_at_the_simulator_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsimulator:\n  sandbox: chroot\nsteps:\n" + DEPLOY)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path).run()
    assert str(info.value) == (f"{path}:3: simulator: sandbox='chroot' is not a sandbox lambdasim knows; use "
                               "'auto', 'namespace' or 'fakefs'.")


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
def test_expect_holds_evaluates_a_python_expression(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {event: {n: 2}, as: two}
          - expect: {invocation: two, holds: "error is None and payload['n'] < 3 and not inv.cold_start is False"}
          - invoke: {event: {fail: true}, as: failed}
          - expect: {holds: "error['errorType'] == 'ValueError' and payload is None"}
          - expect: {invocation: two, holds: "payload['n'] > 2"}
        """)
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    assert str(info.value).splitlines()[0] == (
        f"{path}:7: step 6 (expect): invocation 'two' holds \"payload['n'] > 2\": it is false (payload {{\"n\": 2}}, "
        "error null)")
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {event: {fail: true}}
          - expect: {holds: "payload['n'] < 3"}
        """, "raises.yaml")
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    assert str(info.value).splitlines()[0] == (
        f"{path}:4: step 3 (expect): the last invocation (step 2) holds \"payload['n'] < 3\": evaluating it raised "
        "TypeError: 'NoneType' object is not subscriptable")


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


# -- the new steps and checks: loading ------------------------------------------------------------

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    Runtime: python3.11
    MemorySize: 256
Resources:
  OrdersFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: env.handler
      CodeUri: code/
      Runtime: %s
      Environment:
        Variables:
          STAGE: !Ref Stage
"""

ENV_HANDLER = """\
import os

def handler(event, context):
    return {"stage": os.environ.get("STAGE"), "extra": os.environ.get("EXTRA"),
            "memory": int(context.memory_limit_in_mb), "function": context.function_name}
"""


def with_template(tmp_path: Path, runtime: str = "python3.11") -> None:
    """template.yaml next to the scenario, for code/env.py."""
    write(tmp_path, "steps: []\n", "unused.yaml")
    (tmp_path / "code" / "env.py").write_text(ENV_HANDLER)
    (tmp_path / "template.yaml").write_text(TEMPLATE % runtime)


def test_deploy_from_a_template_is_read_at_load_time(tmp_path: Path) -> None:
    with_template(tmp_path)
    path = write(tmp_path, """\
        steps:
          - deploy: {template: template.yaml, function: OrdersFunction}
          - deploy:
              template: template.yaml
              function: OrdersFunction
              name: orders
              memory_mb: 512
              environment: {EXTRA: x}
              parameters: {Stage: prod}
          - invoke: {function: OrdersFunction}
          - invoke: {function: orders}
        """)
    plain, custom, *_ = load_scenario(path).steps
    assert isinstance(plain, Deploy) and isinstance(custom, Deploy)
    assert (plain.name, plain.handler, plain.code_dir) == ("OrdersFunction", "env.handler", tmp_path / "code")
    assert (plain.template, plain.function, plain.overrides) == (tmp_path / "template.yaml", "OrdersFunction",
                                                                 frozenset())
    assert plain.template_settings["memory_mb"] == 256
    assert plain.template_settings["environment"] == {"STAGE": "dev"}
    assert (custom.name, custom.overrides, custom.parameters) == ("orders", frozenset({"name"}), {"Stage": "prod"})
    assert custom.template_settings["environment"] == {"STAGE": "prod", "EXTRA": "x"}
    assert custom.settings.kwargs() == {"memory_mb": 512, "environment": {"EXTRA": "x"}}


def test_deploy_from_a_template_mistakes(tmp_path: Path) -> None:
    with_template(tmp_path)
    template = tmp_path / "template.yaml"

    def error(text: str) -> ScenarioError:
        with pytest.raises(ScenarioError) as info:
            load_scenario(write(tmp_path, text))
        return info.value

    e = error("steps:\n  - deploy:\n      template: template.yaml\n      function: Orders\n")
    assert (e.line, e.key) == (4, "steps[0].deploy.function")
    assert e.reason.startswith(f"{template}: no function 'Orders' in Resources")
    assert "OrdersFunction" in e.reason
    e = error("steps:\n  - deploy: {template: nope.yaml, function: OrdersFunction}\n")
    assert (e.line, e.key, e.reason) == (2, "steps[0].deploy.template",
                                         f"'nope.yaml' does not exist (looked for {tmp_path / 'nope.yaml'}); template "
                                         "is relative to the scenario file")
    e = error("steps:\n  - deploy:\n      function: OrdersFunction\n      memory_mb: 64\n"
              "      template: template.yaml\n")
    assert (e.line, e.key, e.reason) == (4, "steps[0].deploy.memory_mb",
                                         "memory_mb=64 is not valid; Lambda allows 128 to 10240 MB.")
    e = error("steps:\n  - deploy: {template: template.yaml, function: OrdersFunction, parameters: [1]}\n")
    assert (e.key, e.reason) == ("steps[0].deploy.parameters", "[1] is not a mapping of parameter names to "
                                                               "values; use e.g. {Stage: prod}")
    e = error("steps:\n  - deploy: {template: template.yaml, function: OrdersFunction}\n"
              "  - deploy:\n      template: template.yaml\n      function: OrdersFunction\n")
    assert (e.line, e.key) == (3, "steps[1].deploy")
    assert e.reason.startswith("a function named 'OrdersFunction' is already deployed")
    (tmp_path / "template.yaml").write_text(TEMPLATE % "nodejs20.x")
    e = error("steps:\n  - deploy:\n      function: OrdersFunction\n      template: template.yaml\n")
    assert (e.line, e.key) == (4, "steps[0].deploy.template")
    assert e.reason.startswith(f"{template}:17: Resources.OrdersFunction.Properties.Runtime: 'nodejs20.x'")


def test_template_errors_name_the_deploy_steps_keys(tmp_path: Path) -> None:
    with_template(tmp_path)
    template = tmp_path / "template.yaml"
    text = TEMPLATE % "python3.11"

    def reason(template_text: str, deploy: str = "") -> str:
        template.write_text(template_text)
        with pytest.raises(ScenarioError) as info:
            load_scenario(write(tmp_path, f"steps:\n  - deploy: {{template: template.yaml, function: OrdersFunction"
                                          f"{deploy}}}\n"))
        assert info.value.key == "steps[0].deploy.template"
        return info.value.reason

    no_default = reason(text.replace("    Default: dev\n", ""))
    assert "parameter 'Stage' has no Default (give it one, or set parameters: {Stage: ...} in the deploy step)" \
        in no_default
    assert no_default.endswith("set the value with environment: {STAGE: ...} in the deploy step."), no_default
    # A resource lambdasim creates resolves (tests/test_template_resources.py); one it does not, cannot.
    getatt = text + "          TABLE: !GetAtt Table.Arn\n  Table: {Type: AWS::Cognito::UserPool}\n"
    assert reason(getatt).endswith("'Table' is AWS::Cognito::UserPool, which lambdasim does not create (moto's "
                                   "CloudFormation does not cover the type); set the value with "
                                   "environment: {TABLE: ...} in the deploy step.")
    arn = text + "      Layers: [shared-layer]\n"  # neither an ARN (only warned about) nor a !Ref to a layer
    assert reason(arn).endswith("set layers: [folder, ...] in the deploy step to replace the template's layers.")
    for message in (no_default, reason(getatt), reason(arn)):
        assert "load_function" not in message and "environment={" not in message and "layers=[" not in message


def test_sizes_and_instances(tmp_path: Path) -> None:
    sizes = {"1048576": 1 << 20, "'1048576'": 1 << 20, "0": 0, "512KB": 512 << 10, "400MB": 400 << 20,
             "400 mb": 400 << 20, "1GB": 1 << 30, "1.5GB": 3 << 29, "2MiB": 2 << 20, "10b": 10, "0.5KB": 512}
    steps = "".join(f"  - fill_tmp: {{bytes: {text}, allow_partial: true, instance: all}}\n" for text in sizes)
    path = write(tmp_path, "steps:\n" + DEPLOY + steps + "  - crash:\n  - destroy: {instance: 2}\n")
    _, *fills, crash, destroy = load_scenario(path).steps
    assert [cast(Any, f).size for f in fills] == list(sizes.values())
    assert all(cast(Any, f).instance is None and cast(Any, f).allow_partial for f in fills)
    assert (cast(Any, crash).instance, cast(Any, destroy).instance) == (0, 2)
    assert [s.kind for s in (crash, destroy)] == ["crash", "destroy"]


def test_expect_state_checks_are_built(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        simulator: {services: {aws: binary, redis: binary}}
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - expect: {instances: 1, cold_starts: 1, tmp_file: {path: /tmp/a/b.json, contains: x}}
          - expect:
              s3_object: {bucket: b, key: k/1, body_contains: hello}
              s3_count: {bucket: b, count: 3}
              redis_key: {key: "user:1", exists: false}
              dynamodb_item: {table: t, key: {pk: {S: a}, sk: {N: 2}}}
          - expect: {function: app, cold_starts: 0}
        """)
    _, first, second, third = load_scenario(path).steps
    assert isinstance(first, Expect) and isinstance(second, Expect) and isinstance(third, Expect)
    assert first.instances == 1 and first.checks == ()
    assert first.state == (InstancesCount(1), ColdStartCount(1), TmpFile(path="a/b.json", contains="x"))
    assert second.state == (S3Object("b", "k/1", body_contains="hello"), S3Count("b", 3),
                            RedisKey("user:1", exists=False),
                            DynamoDBItem("t", {"pk": {"S": "a"}, "sk": {"N": "2"}}))
    assert (third.function, third.state) == ("app", (ColdStartCount(0),))
    assert set(STATE_CHECKS) == {"instances", "cold_starts", "tmp_file", "s3_object", "s3_count", "redis_key",
                                 "dynamodb_item", "instances_per_tenant", "workers"}


def test_the_readme_step_type_example_plugs_in(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "README.md").read_text()
    (block,) = re.findall(r"```python\n(from __future__ import annotations\n.*?)```", text, flags=re.DOTALL)
    module = types.ModuleType("scenarios_readme")  # dataclasses look their module up in sys.modules
    sys.modules[module.__name__] = module
    try:
        exec(compile(block, "scenarios/README.md", "exec"), module.__dict__)
        assert STEPS["wait"] is module.Wait
        (wait,) = load_scenario(write(tmp_path, "steps:\n  - wait: {seconds: 0.01}\n")).steps
        assert wait.kind == "wait" and cast(Any, wait).seconds == 0.01
    finally:
        STEPS.pop("wait", None)
        del sys.modules[module.__name__]


def test_the_readme_format_example_loads(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "README.md").read_text().split("## Format")[1]
    example = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)[0]
    for folder in ("handlers/x", "handlers/x_v2", "sam/code"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "sam" / "template.yaml").write_text(TEMPLATE.replace("CodeUri: code/", "CodeUri: code") %
                                                    "python3.11")
    (tmp_path / "s.yaml").write_text(example)
    scenario = load_scenario(tmp_path / "s.yaml")
    kinds = [s.kind for s in scenario.steps]
    # aws: and memcached: are the same shorthand as the redis: the example shows.
    assert set(kinds) == set(STEPS) - {"aws", "memcached"}, "the example shows every step type"
    checks = {c.key for s in scenario.steps if isinstance(s, Expect) for c in s.state}
    assert checks == set(STATE_CHECKS) - {"s3_count", "dynamodb_item"}


def test_event_template_is_event_by_another_name(tmp_path: Path) -> None:
    path = write(tmp_path, "steps:\n" + DEPLOY + "  - invoke: {event_template: {key: 'k-{i}', n: '{i}'}, count: 2}\n")
    invoke = load_scenario(path).steps[1]
    assert isinstance(invoke, Invoke)
    assert invoke.events() == [{"key": "k-0", "n": 0}, {"key": "k-1", "n": 1}]


# -- the new steps and checks: runs ------------------------------------------------------------------

COUNTER = """\
import os
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    path = "/tmp/count.txt"
    n = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as f:
        f.write(str(n))
    if event.get("write_mb"):
        with open(f"/tmp/{event.get('file', 'big.bin')}", "wb") as f:
            for _ in range(event["write_mb"]):
                f.write(b"x" * (1 << 20))
    return {"n": n}
"""
COUNTER_DEPLOY = "  - deploy: {handler: app.handler, code_dir: counter}\n"


def counter(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    """A scenario file next to counter/app.py, which counts its invocations in /tmp/count.txt."""
    code = tmp_path / "counter"
    if not code.exists():
        code.mkdir()
        (code / "app.py").write_text(COUNTER)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.sandbox
def test_crash_destroy_and_advance_clock(tmp_path: Path) -> None:
    path = counter(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: counter, keepalive_s: 600}
          - invoke: {count: 2}
          - crash: {}
          - invoke: {as: after_crash}
          - expect: {invocation: after_crash, cold_start: true, payload: {n: 3}}
          - expect: {instances: 1, cold_starts: 2, tmp_file: {path: count.txt, contains: "3"}}
          - advance_clock: {minutes: 5}
          - expect: {instances: 1}
          - advance_clock: {seconds: 301}
          - expect: {instances: 0}
          - invoke: {event: {sleep: 0.3}, count: 3, concurrency: 3}
          - expect: {instances: 3, cold_starts: 5}
          - destroy: {instance: 1}
          - expect: {instances: 2}
          - crash: {instance: all}
          - invoke: {event: {sleep: 0.3}, count: 2, concurrency: 2, as: after_crashes}
          - expect: {invocation: after_crashes, cold_start: true, payload: {n: 2}}
          - expect: {function: app, cold_starts: 7, instances: 2}
          - destroy: {instance: all}
          - crash: {instance: all}
          - expect: {instances: 0}
          - advance_clock: {hours: 1, minutes: 1, seconds: 1}
        """)
    result = run_file(path, factory)
    summaries = {s.index: s.summary for s in result.steps}
    assert summaries[2] == "crashed app-1"
    assert summaries[6] == "advanced the clock by 300 s to 300 s; reaped 0 idle instance(s)"
    assert summaries[8] == "advanced the clock by 301 s to 601 s; reaped 1 idle instance(s): app-1"
    assert re.fullmatch(r"destroyed app-\d+", str(summaries[12]))
    assert re.fullmatch(r"crashed app-\d+, app-\d+", str(summaries[14]))
    assert re.fullmatch(r"destroyed app-\d+, app-\d+", str(summaries[18]))
    assert summaries[19] == "crashed no instance (none is live)"
    assert summaries[21] == "advanced the clock by 3661 s to 4262 s; reaped 0 idle instance(s)"


@pytest.mark.sandbox
def test_fill_tmp_takes_space_in_the_instance_tmp(tmp_path: Path) -> None:
    path = counter(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: counter, ephemeral_storage_mb: 512}
          - invoke: {}
          - fill_tmp: {bytes: 100MB}
          - fill_tmp: {bytes: 1048576, instance: all}
          - expect: {tmp_file: {path: .lambdasim-fill-0}}
          - expect: {tmp_file: {path: /tmp/.lambdasim-fill-1}}
          - invoke: {event: {write_mb: 300}, as: fits}
          - expect: {invocation: fits, error: null, cold_start: false, payload: {n: 2}}
          - fill_tmp: {bytes: 1GB, allow_partial: true}
          - invoke: {event: {write_mb: 1, file: more.bin}, as: full}
          - expect:
              invocation: full
              error: {errorType: OSError, errorMessage: "[Errno 28] No space left on device"}
          - expect: {tmp_file: {path: count.txt, contains: "3"}}
        """)
    result = run_file(path, factory)
    assert result.invocations["full"].error is not None
    assert [s.summary for s in result.steps if s.kind == "fill_tmp"][:2] == ["filled /tmp of app-1: 100 MB",
                                                                            "filled /tmp of app-1: 1 MB"]
    partial = result.steps[8].summary
    assert partial is not None and re.fullmatch(r"filled /tmp of app-1: 1[01]\d(\.\d)? MB \(/tmp is full\)", partial)


@pytest.mark.sandbox
def test_fill_tmp_that_does_not_fit_is_an_error_of_the_scenario(tmp_path: Path) -> None:
    path = counter(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: counter}
          - invoke: {event: {write_mb: 100}}
          - fill_tmp:
              bytes: 450MB
        """)
    with pytest.raises(ScenarioError) as info:
        run_file(path, factory)
    e = info.value
    assert (e.line, e.key) == (5, "steps[2].fill_tmp.bytes")
    assert re.fullmatch(r"\[Errno 28\] No space left on device: 450 MB do not fit in /tmp of instance app-1, which "
                        r"has 41\d(\.\d)? MB free; use a smaller size, or allow_partial: true to fill it up", e.reason)
    assert str(e).startswith(f"{path}:5: steps[2].fill_tmp.bytes: [Errno 28]")


@pytest.mark.sandbox
@pytest.mark.parametrize(("steps", "line", "key", "reason"), [
    ("  - invoke: {}\n  - crash: {instance: 3}\n", 4, "steps[2].crash.instance",
     "function 'app' has 1 live instance(s), so there is no instance 3 (live: 0: app-1 idle)"),
    ("  - fill_tmp: {bytes: 1MB}\n", 3, "steps[1].fill_tmp",
     "function 'app' has 0 live instance(s), so there is no instance 0 (live: none)"),
    ("  - invoke: {}\n  - destroy: {}\n  - destroy: {}\n", 5, "steps[3].destroy",
     "function 'app' has 0 live instance(s), so there is no instance 0 (live: none)"),
], ids=["crash", "fill_tmp", "destroy"])
def test_an_instance_that_is_not_there(tmp_path: Path, steps: str, line: int, key: str, reason: str) -> None:
    path = counter(tmp_path, "steps:\n" + COUNTER_DEPLOY + steps)
    with pytest.raises(ScenarioError) as info:
        run_file(path, factory)
    assert (info.value.line, info.value.key, info.value.reason) == (line, key, reason)


TWO_INSTANCES = "steps:\n" + COUNTER_DEPLOY + "  - invoke: {event: {sleep: 0.3}, count: 2, concurrency: 2}\n"
FUNCTION_FAILURES: list[tuple[str, str, str]] = [
    ("cold_starts", "{cold_starts: 1}",
     "cold_starts (every function): expected 1, got 2 (of 2 invocation(s) so far: on app-1, app-2)"),
    ("cold_starts of a function", "{function: app, cold_starts: 3}",
     "function 'app' cold_starts: expected 3, got 2 (of 2 invocation(s) so far: on app-1, app-2)"),
    ("instances and cold_starts", "{instances: 1, cold_starts: 0}",
     "function 'app' instances: expected 1, got 2 (app-1 idle, app-2 idle); cold_starts (every function): "
     "expected 0, got 2 (of 2 invocation(s) so far: on app-1, app-2)"),
    ("tmp_file missing in a missing folder", "{tmp_file: {path: cache/x.json}}",
     "tmp_file /tmp/cache/x.json of function 'app' instance 0 (app-1): expected it to exist, but it does not "
     "(/tmp/cache does not exist either)"),
    ("tmp_file that exists", "{tmp_file: {path: count.txt, exists: false, instance: 1}}",
     "tmp_file /tmp/count.txt of function 'app' instance 1 (app-2): expected it not to exist, but it does"),
    ("tmp_file contents", "{tmp_file: {path: count.txt, contains: '5'}}",
     "tmp_file /tmp/count.txt of function 'app' instance 0 (app-1): expected it to contain \"5\", got \"1\" "
     "(1 bytes)"),
    ("tmp_file of no instance", "{tmp_file: {path: count.txt, instance: 2}}",
     "tmp_file /tmp/count.txt of function 'app' instance 2: there is no such instance (live instances: 0: app-1, "
     "1: app-2)"),
]


@pytest.mark.sandbox
@pytest.mark.parametrize(("expect", "reason"), [f[1:] for f in FUNCTION_FAILURES],
                         ids=[f[0] for f in FUNCTION_FAILURES])
def test_a_failed_function_check_says_what_it_expected_and_saw(tmp_path: Path, expect: str, reason: str) -> None:
    path = counter(tmp_path, TWO_INSTANCES + f"  - expect: {expect}\n")
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    assert str(info.value) == f"{path}:4: step 3 (expect): {reason}"


@pytest.mark.sandbox
def test_a_missing_tmp_file_lists_the_folder(tmp_path: Path) -> None:
    path = counter(tmp_path, TWO_INSTANCES + "  - expect: {tmp_file: {path: /tmp/cont.txt}}\n")
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, factory)
    assert info.value.reason.startswith("tmp_file /tmp/cont.txt of function 'app' instance 0 (app-1): expected it "
                                        "to exist, but it does not (/tmp holds ")
    assert "count.txt" in info.value.reason


# -- checks of the services, against services shared by these tests ------------------------------------


@pytest.fixture(scope="module")
def shared_services() -> Iterator[Services]:
    services = Services(parse_services(["aws", "redis"]))
    try:
        services.start_configured()
        yield services
    finally:
        services.close()


def with_data(shared: Services) -> Callable[..., Simulator]:
    """A simulator factory on the shared services, emptied and then filled with known data."""
    for kind in ("aws", "redis"):
        shared[kind].flush()

    def make(**settings: Any) -> Simulator:
        sim = factory(**{**settings, "services": shared})
        s3 = sim.boto3_client("s3")
        for bucket in ("bkt", "other"):
            s3.create_bucket(Bucket=bucket)
        for key, body in (("k", b"hello world"), ("logs/1", b"one"), ("logs/2", b"two")):
            s3.put_object(Bucket="bkt", Key=key, Body=body)
        dynamodb = sim.boto3_client("dynamodb")
        dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        dynamodb.put_item(TableName="t", Item={"id": {"S": "1"}, "v": {"S": "x"}})
        with sim.redis_client() as redis:
            redis.set("k", "v")
            redis.rpush("list", "a")
        return sim

    return make


SERVICES = "simulator: {services: [aws, redis]}\nsteps:\n"


@pytest.mark.sandbox
@pytest.mark.services
def test_service_checks_that_hold(tmp_path: Path, shared_services: Services) -> None:
    path = write(tmp_path, SERVICES + textwrap.dedent("""\
          - expect: {s3_object: {bucket: bkt, key: k}}
          - expect: {s3_object: {bucket: bkt, key: k, body_contains: lo wo}, s3_count: {bucket: bkt, count: 3}}
          - expect: {s3_object: {bucket: bkt, key: nope, exists: false}, s3_count: {bucket: other, count: 0}}
          - expect: {s3_count: {bucket: bkt, prefix: logs/, count: 2}}
          - expect: {redis_key: {key: k}}
          - expect: {redis_key: {key: k, value: v}}
          - expect: {redis_key: {key: list}}
          - expect: {redis_key: {key: nope, exists: false}}
          - expect: {dynamodb_item: {table: t, key: {id: {S: "1"}}}}
          - expect: {dynamodb_item: {table: t, key: {id: {S: "2"}}, exists: false}}
        """))
    result = run_file(path, with_data(shared_services))
    assert result.passed
    assert result.steps[1].summary == "s3_object, s3_count as expected"


SERVICE_FAILURES: list[tuple[str, str, str]] = [
    ("s3_object missing", "{s3_object: {bucket: bkt, key: nope}}",
     "s3_object s3://bkt/nope: expected it to exist, but it does not (the bucket holds 3 object(s): k, logs/1, "
     "logs/2)"),
    ("s3_object in a missing bucket", "{s3_object: {bucket: bkts, key: k}}",
     "s3_object s3://bkts/k: the bucket 'bkts' does not exist (did you mean 'bkt'?); buckets: bkt, other"),
    ("s3_object that exists", "{s3_object: {bucket: bkt, key: k, exists: false}}",
     "s3_object s3://bkt/k: expected it not to exist, but it does (11 bytes)"),
    ("s3_object body", "{s3_object: {bucket: bkt, key: k, body_contains: bye}}",
     's3_object s3://bkt/k: expected its body to contain "bye", got "hello world" (11 bytes)'),
    ("s3_count", "{s3_count: {bucket: bkt, prefix: logs/, count: 3}}",
     "s3_count s3://bkt/logs/*: expected 3 object(s), got 2 (logs/1, logs/2)"),
    ("s3_count of an empty bucket", "{s3_count: {bucket: other, count: 1}}",
     "s3_count s3://other/*: expected 1 object(s), got 0"),
    ("s3_count of a missing bucket", "{s3_count: {bucket: missing, count: 0}}",
     "s3_count s3://missing/*: the bucket 'missing' does not exist; buckets: bkt, other"),
    ("redis_key missing", "{redis_key: {key: nope}}", "redis_key 'nope': expected it to exist, but it does not"),
    ("redis_key value", "{redis_key: {key: k, value: w}}",
     "redis_key 'k': expected the value \"w\", got \"v\" (1 bytes)"),
    ("redis_key that exists", "{redis_key: {key: k, exists: false}}",
     "redis_key 'k': expected it not to exist, but it does: \"v\" (1 bytes)"),
    ("redis_key list that exists", "{redis_key: {key: list, exists: false}}",
     "redis_key 'list': expected it not to exist, but it does (a list)"),
    ("redis_key of another type", "{redis_key: {key: list, value: a}}",
     "redis_key 'list': expected the value \"a\", but the key holds a list, not a string"),
    ("dynamodb_item missing", "{dynamodb_item: {table: t, key: {id: {S: '2'}}}}",
     "dynamodb_item {\"id\": {\"S\": \"2\"}} in table 't': expected it to exist, but it does not"),
    ("dynamodb_item that exists", "{dynamodb_item: {table: t, key: {id: {S: '1'}}, exists: false}}",
     "dynamodb_item {\"id\": {\"S\": \"1\"}} in table 't': expected it not to exist, but it does: "
     "{\"id\": {\"S\": \"1\"}, \"v\": {\"S\": \"x\"}}"),
    ("dynamodb_item in a missing table", "{dynamodb_item: {table: tt, key: {id: {S: '1'}}}}",
     "dynamodb_item {\"id\": {\"S\": \"1\"}} in table 'tt': the table 'tt' does not exist (did you mean 't'?); "
     "tables: t"),
    ("two at once", "{s3_count: {bucket: other, count: 1}, redis_key: {key: nope}}",
     "s3_count s3://other/*: expected 1 object(s), got 0; redis_key 'nope': expected it to exist, but it does not"),
]


@pytest.mark.sandbox
@pytest.mark.services
@pytest.mark.parametrize(("expect", "reason"), [f[1:] for f in SERVICE_FAILURES], ids=[f[0] for f in SERVICE_FAILURES])
def test_a_failed_service_check_says_what_it_expected_and_saw(tmp_path: Path, shared_services: Services,
                                                              expect: str, reason: str) -> None:
    path = write(tmp_path, SERVICES + "  - expect: {s3_count: {bucket: bkt, count: 3}}\n"
                 f"  - expect: {expect}\n")
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, with_data(shared_services))
    assert str(info.value) == f"{path}:4: step 2 (expect): {reason}"


@pytest.mark.sandbox
@pytest.mark.services
def test_a_dynamodb_key_that_does_not_fit_the_table(tmp_path: Path, shared_services: Services) -> None:
    path = write(tmp_path, SERVICES + "  - expect: {dynamodb_item: {table: t, key: {name: {S: x}}}}\n")
    with pytest.raises(ScenarioFailure) as info:
        run_file(path, with_data(shared_services))
    assert info.value.reason.startswith("dynamodb_item {\"name\": {\"S\": \"x\"}} in table 't': cannot read it: "
                                        "ClientError: An error occurred (ValidationException)")


# -- service faults ---------------------------------------------------------------------------------

REDIS_HANDLER = """\
import os

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

r = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=0.3, socket_connect_timeout=0.3,
                         retry=Retry(NoBackoff(), 1))

def handler(event, context):
    if "set" in event:
        r.set("k", event["set"])
    return {"value": (r.get("k") or b"").decode()}
"""


@pytest.mark.sandbox
@pytest.mark.services
def test_service_steps_act_on_the_service(tmp_path: Path) -> None:
    (tmp_path / "redis_code").mkdir()
    (tmp_path / "redis_code" / "app.py").write_text(REDIS_HANDLER)
    path = write(tmp_path, """\
        simulator: {services: {redis: binary}}
        steps:
          - deploy: {handler: app.handler, code_dir: redis_code, timeout_s: 5}
          - invoke: {event: {set: v1}}
          - service: {name: redis, action: latency, seconds: 0.2}
          - invoke: {as: slow}
          - service: {name: redis, action: latency, seconds: 0}
          - invoke: {as: fast}
          - service: {name: redis, action: cut}
          - invoke: {as: cut}
          - expect: {invocation: cut, error: {errorType: ConnectionError}}
          - service: {name: redis, action: heal}
          - invoke: {as: healed}
          - expect: {invocation: healed, payload: {value: v1}}
          - service: {name: redis, action: pause}
          - invoke: {as: paused}
          - expect: {invocation: paused, error: {errorType: TimeoutError}}
          - service: {name: redis, action: resume}
          - invoke: {as: resumed}
          - expect: {invocation: resumed, payload: {value: v1}}
          - service: {name: redis, action: restart}
          - invoke: {as: restarted}
          - expect: {invocation: restarted, payload: {value: ""}}
          - invoke: {event: {set: v2}}
          - expect: {redis_key: {key: k, value: v2}}
          - service: {name: redis, action: flush}
          - expect: {redis_key: {key: k, exists: false}}
          - service: {name: redis, action: stop}
          - invoke: {as: stopped}
          - expect: {invocation: stopped, error: {errorType: ConnectionError}}
          - service: {name: redis, action: start}
          - invoke: {as: started}
          - expect: {invocation: started, payload: {value: ""}}
        """)
    result = run_file(path, factory)
    assert result.invocations["slow"].duration_ms >= 400  # 0.2 s each way
    assert result.invocations["fast"].duration_ms < 200
    assert [s.summary for s in result.steps if s.kind == "service"] == [
        "redis: latency 0.2 s each way", "redis: latency off", "redis: cut", "redis: heal", "redis: pause",
        "redis: resume", "redis: restart", "redis: flush", "redis: stop", "redis: start"]


@pytest.mark.sandbox
@pytest.mark.services
def test_a_service_action_the_service_cannot_do(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        simulator: {services: {redis: {provider: binary, faults: false}}}
        steps:
          - service:
              name: redis
              action: latency
              seconds: 0.1
        """)
    with pytest.raises(ScenarioError) as info:
        run_file(path, factory)
    assert (info.value.line, info.value.key) == (5, "steps[0].service.action")
    assert info.value.reason.startswith("redis.set_latency() needs the fault proxy, which is off for this service")


# -- deploy from a template ------------------------------------------------------------------------


@pytest.mark.sandbox
def test_deploy_from_a_template_runs(tmp_path: Path) -> None:
    with_template(tmp_path)
    path = write(tmp_path, """\
        steps:
          - deploy: {template: template.yaml, function: OrdersFunction}
          - invoke: {function: OrdersFunction}
          - expect: {payload_contains: {stage: dev, extra: null, memory: 256}}
          - expect: {holds: "'-OrdersFunction-' in payload['function']"}
          - deploy:
              template: .
              function: OrdersFunction
              name: orders
              memory_mb: 512
              environment: {EXTRA: x}
              parameters: {Stage: prod}
          - invoke: {function: orders}
          - expect: {payload: {stage: prod, extra: x, memory: 512, function: orders}}
        """)
    result = run_file(path, factory)
    assert result.steps[0].summary == "deployed OrdersFunction version 1 from template.yaml (OrdersFunction)"


# -- the shipped scenarios ---------------------------------------------------------------------------

SCENARIOS = REPO / "scenarios"


def _shipped() -> list[Any]:
    params = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        marks = [pytest.mark.sandbox]
        try:
            if load_scenario(path).settings.get("services"):
                marks.append(pytest.mark.services)
        except ScenarioError:
            pass  # the test reports it
        params.append(pytest.param(path, marks=marks, id=path.stem))
    return params


@pytest.mark.parametrize("path", _shipped())
def test_every_shipped_scenario_passes(path: Path) -> None:
    result = run_file(path, factory, display=path.relative_to(REPO).as_posix())
    assert result.passed
    assert all(s.outcome == "passed" for s in result.steps)
    assert result.duration_s < 30


def test_every_shipped_reproduction_has_a_fixed_twin_and_handlers() -> None:
    names = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    bugs = [n for n in names if not n.endswith("_fixed")]
    assert bugs == ["lost_tmp", "managed_tmp", "provisioned_init", "redeploy_cache_format", "redis_outage",
                    "scale_out_s3", "snapstart_ids", "tenant_tmp", "tmp_fills_up", "write_outside_tmp"]
    assert names == sorted([*bugs, *(f"{n}_fixed" for n in bugs)])
    readme = (SCENARIOS / "README.md").read_text()
    for name in bugs:
        handlers = SCENARIOS / "handlers" / name
        assert (handlers / "buggy").is_dir() and (handlers / "fixed").is_dir(), name
        code_dirs = {str(getattr(s, "code_dir", "")) for n in (name, f"{name}_fixed")
                     for s in load_scenario(SCENARIOS / f"{n}.yaml").steps}
        assert str(handlers / "buggy") in code_dirs and str(handlers / "fixed") in code_dirs, name
        assert f"[`{name}`]({name}.yaml)" in readme and f"({name}_fixed.yaml)" in readme, name


@pytest.mark.sandbox
@pytest.mark.services
def test_service_shorthand_steps(tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "app.py").write_text(
        "import os, redis\n"
        "def handler(event, context):\n"
        "    return redis.Redis.from_url(os.environ['REDIS_URL'], socket_timeout=2).ping()\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        "simulator: {services: {redis: embedded}}\n"
        "steps:\n"
        "  - deploy: {handler: app.handler, code_dir: h}\n"
        "  - redis: stop\n"
        "  - invoke: {event: {}, as: down}\n"
        "  - expect: {invocation: down, error: {errorType: ConnectionError}}\n"
        "  - redis: {action: latency, seconds: 0.05}\n"
        "  - redis: start\n"
        "  - invoke: {event: {}}\n"
        "  - expect: {payload: true}\n")
    scenario = load_scenario(path)
    assert [type(s).__name__ for s in scenario.steps][1] == "RedisFault"
    assert scenario.run().passed
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulator: {services: [redis]}\nsteps:\n  - redis: latency\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml:3: steps\[0\].redis: latency needs the delay"):
        load_scenario(bad)


# -- the execution models: deploy settings, tenant ids, and their checks ------------------------------

MODEL_MISTAKES: list[tuple[str, str, int, str, str]] = [
    ("snap_start not a bool",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, snap_start: 'yes'}\n",
     2, "steps[0].deploy.snap_start", "'yes' is not true or false"),
    ("snap_start on a runtime without it",
     "steps:\n  - deploy:\n      handler: app.handler\n      code_dir: code\n      runtime: python3.11\n"
     "      snap_start: true\n",
     6, "steps[0].deploy.snap_start",
     "SnapStart is not supported for python3.11; Lambda offers it for python3.12, python3.13, python3.14."),
    ("SnapStart with provisioned concurrency",
     "steps:\n  - deploy:\n      handler: app.handler\n      code_dir: code\n      runtime: python3.12\n"
     "      snap_start: true\n      provisioned_concurrency: 2\n",
     6, "steps[0].deploy.snap_start", "SnapStart is not supported with provisioned concurrency."),
    ("a Managed Instances setting without a capacity provider",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, max_concurrency: 4}\n",
     2, "steps[0].deploy.max_concurrency",
     "max_concurrency is a setting of Lambda Managed Instances; give capacity_provider= too, or leave it out."),
    ("provisioned_concurrency negative",
     "steps:\n  - deploy: {handler: app.handler, code_dir: code, provisioned_concurrency: -1}\n",
     2, "steps[0].deploy.provisioned_concurrency", "-1 is too small; use a whole number of environments >= 0"),
    ("a redeploy that changes tenant isolation",
     "steps:\n" + DEPLOY + "  - redeploy: {tenant_isolation: true}\n",
     3, "steps[1].redeploy.tenant_isolation",
     "Tenant isolation is set when a function is created and cannot be changed; deploy a new function."),
    ("tenant ids that do not match the count",
     "steps:\n" + DEPLOY + "  - invoke: {count: 3, tenant_id: [a, b]}\n",
     3, "steps[1].invoke.tenant_id",
     "2 tenant id(s) for count: 3 invocation(s); give one per invocation, or one tenant id for all"),
    ("a tenant id that is not a string",
     "steps:\n" + DEPLOY + "  - invoke: {tenant_id: 7}\n",
     3, "steps[1].invoke.tenant_id", "7 is not a non-empty string; use a tenant id (\"{i}\" numbers the "
     "invocations, e.g. tenant-{i}), or a list of one per invocation"),
    ("restore not a bool",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {restore: 1}\n",
     4, "steps[2].expect.restore", "1 is not true or false"),
    ("restore_duration_ms without bounds",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {restore_duration_ms: {}}\n",
     4, "steps[2].expect.restore_duration_ms",
     "give max (and/or min) in milliseconds, e.g. restore_duration_ms: {max: 500}"),
    ("restore_duration_ms bounds the wrong way round",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {restore_duration_ms: {min: 5, max: 1}}\n",
     4, "steps[2].expect.restore_duration_ms.min", "min 5 is more than max 1"),
    ("a worker that is not a number",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {worker: first}\n",
     4, "steps[2].expect.worker", "'first' is not a whole number; use a worker number, or null"),
    ("instances_per_tenant not a mapping",
     "steps:\n" + DEPLOY + "  - expect: {instances_per_tenant: [acme]}\n",
     3, "steps[1].expect.instances_per_tenant",
     "['acme'] is not a mapping; use a mapping of tenant ids to numbers of instances, e.g. {acme: 1, globex: 2}"),
    ("workers negative",
     "steps:\n" + DEPLOY + "  - expect: {workers: -1}\n",
     3, "steps[1].expect.workers", "-1 is too small; use a number >= 0"),
    ("a model check on an invocation named by function",
     "steps:\n" + DEPLOY + "  - invoke: {}\n  - expect: {function: app, tenant: acme}\n",
     4, "steps[2].expect.function", "tenant checks an invocation; name it with invocation: (the `as` of its invoke "
     "step), or leave it out for the last invocation"),
]


@pytest.mark.parametrize(("text", "line", "key", "reason"), [m[1:] for m in MODEL_MISTAKES],
                         ids=[m[0] for m in MODEL_MISTAKES])
def test_each_execution_model_mistake_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str,
                                                              reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    e = info.value
    assert (e.file, e.line, e.key, e.reason) == (str(path), line, key, reason)


def test_deploy_and_invoke_steps_take_the_execution_models(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code, name: snap, runtime: python3.12, snap_start: true}
          - deploy: {handler: app.handler, code_dir: code, name: pc, provisioned_concurrency: 2}
          - deploy: {handler: app.handler, code_dir: code, name: tenants, tenant_isolation: true}
          - deploy:
              handler: app.handler
              code_dir: code
              name: mi
              runtime: python3.13
              capacity_provider: fleet
              max_concurrency: 4
              min_environments: 1
              max_environments: null
          - redeploy: {function: mi, max_concurrency: 8}
          - invoke: {function: tenants, count: 2, tenant_id: "t-{i}"}
          - invoke: {function: tenants, count: 2, tenant_id: [acme, globex], concurrency: 2}
          - invoke: {function: snap}
        """)
    steps = load_scenario(path).steps
    kwargs = [cast(Deploy, s).settings.kwargs() for s in steps[:4]]
    assert kwargs == [{"runtime": "python3.12", "snap_start": True}, {"provisioned_concurrency": 2},
                      {"tenant_isolation": True},
                      {"runtime": "python3.13", "capacity_provider": "fleet", "max_concurrency": 4,
                       "min_environments": 1, "max_environments": None}]
    assert cast(Redeploy, steps[4]).settings.kwargs() == {"max_concurrency": 8}
    assert cast(Invoke, steps[5]).tenants() == ["t-0", "t-1"]
    assert cast(Invoke, steps[6]).tenants() == ["acme", "globex"]
    assert cast(Invoke, steps[7]).tenants() == [None]


def test_a_template_deploy_checks_its_models_with_the_steps_settings(tmp_path: Path) -> None:
    src = Path(__file__).parent / "templates" / "sam-models"
    path = write(tmp_path, f"""\
        steps:
          - deploy: {{template: {src / 'template.yaml'}, function: SnapFunction}}
          - deploy:
              template: {src / 'template.yaml'}
              function: SnapFunction
              name: snap_and_pc
              provisioned_concurrency: 1
        """)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.line, info.value.key, info.value.reason) == (
        4, "steps[1].deploy.template", "SnapStart is not supported with provisioned concurrency.")
    path.write_text(path.read_text().replace("provisioned_concurrency: 1", "snap_start: false\n"
                                             "      provisioned_concurrency: 1"))
    snap, pc = load_scenario(path).steps
    assert cast(Deploy, snap).template_settings["snap_start"] is True
    assert cast(Deploy, pc).settings.kwargs() == {"snap_start": False, "provisioned_concurrency": 1}


@pytest.mark.sandbox
def test_model_checks_of_an_on_demand_invocation(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {}
          - expect: {restore: false, tenant: null, worker: null}
          - expect: {workers: 0, instances_per_tenant: {}}
        """)
    run_file(path, factory)
    for expect, reason in (
        ("{restore: true}", "restore: expected true, got an Init (instance app-1)"),
        ("{restore_duration_ms: {max: 500}}", "restore_duration_ms: expected at most 500 ms, but the invocation was "
                                              "no restore (an Init on instance app-1)"),
        ("{tenant: acme}", 'tenant: expected "acme", got null (instance app-1)'),
        ("{worker: 1}", "worker: expected 1, got null (instance app-1)"),
        ("{instances_per_tenant: {acme: 1}}", "function 'app' instances_per_tenant: expected {\"acme\": 1}, got "
                                              "{} (app-1 (no tenant))"),
        ("{workers: 2}", "function 'app' workers: expected 2, got 0 (app-1: 0)"),
    ):
        failing = write(tmp_path, "steps:\n" + DEPLOY + f"  - invoke: {{}}\n  - expect: {expect}\n", "f.yaml")
        with pytest.raises(ScenarioFailure) as info:
            run_file(failing, factory)
        assert reason in str(info.value), (expect, str(info.value))


@pytest.mark.sandbox
def test_a_tenant_scenario_runs(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code, tenant_isolation: true}
          - invoke: {tenant_id: acme, as: first}
          - expect: {invocation: first, tenant: acme, cold_start: true}
          - invoke: {count: 2, tenant_id: "t-{i}", concurrency: 2}
          - invoke: {tenant_id: acme}
          - expect: {tenant: acme, cold_start: false}
          - expect: {instances_per_tenant: {acme: 1, t-0: 1, t-1: 1}}
        """)
    run_file(path, factory)


@pytest.mark.sandbox
def test_a_snapstart_scenario_checks_restores(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code, runtime: python3.12, snap_start: true}
          - invoke: {}
          - expect: {restore: true, cold_start: true, restore_duration_ms: {max: 60000}}
          - invoke: {}
          - expect: {restore: false, cold_start: false}
        """)
    run_file(path, factory)


@pytest.mark.sandbox
def test_a_managed_instances_scenario_checks_workers(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        steps:
          - deploy: {handler: app.handler, code_dir: code, capacity_provider: fleet, max_concurrency: 2,
                     runtime: python3.13}
          - invoke: {event: {sleep: 0.3}, count: 2, concurrency: 2}
          - expect: {instances: 1, workers: 2}
          - invoke: {}
          - expect: {worker: 0}
        """)
    run_file(path, factory)


OUTSIDE = "import yaml  # the host's PyYAML, not in the package\n\ndef handler(event, context):\n    return 1\n"


@pytest.mark.sandbox
def test_a_strict_package_scenario_fails_an_import_from_outside_the_package(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        simulator: {package: strict}
        steps:
          - deploy: {handler: app.handler, code_dir: code}
          - invoke: {}
          - expect: {error: {errorType: Runtime.ImportModuleError,
                             errorMessage: "Unable to import module 'app': No module named 'yaml'"}}
        """)
    (tmp_path / "code" / "app.py").write_text(OUTSIDE)
    assert load_scenario(path).settings["package"] == "strict"
    run_file(path, factory)
    # And the same file under the host's packages, as `lambdasim run` gives without --strict-package:
    path.write_text(path.read_text().replace("simulator: {package: strict}\n", ""))
    with pytest.raises(AssertionError, match=r"Runtime\.ImportModuleError"):
        run_file(path, factory)


def test_a_package_view_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "simulator: {package: loose}\nsteps:\n  - deploy: {handler: app.handler, code_dir: code}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:1: simulator\.package: 'loose' is not a package view; use host "
                                          r"or strict"):
        load_scenario(path)


ROUTE_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Items:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: route/
      Handler: app.handler
      Runtime: python3.11
      Events:
        GetItem:
          Type: Api
          Properties: {Path: "/items/{id}", Method: get}
"""


def test_an_invoke_step_sends_the_event_of_a_template_events_entry(tmp_path: Path) -> None:
    (tmp_path / "route").mkdir()
    (tmp_path / "route" / "app.py").write_text(
        "def handler(event, context):\n"
        "    return {'method': event['httpMethod'], 'path': event['path'], 'id': event['pathParameters']['id'],\n"
        "            'resource': event['resource']}\n")
    (tmp_path / "template.yaml").write_text(ROUTE_TEMPLATE)
    path = write(tmp_path, """\
        steps:
          - deploy: {template: template.yaml, function: Items}
          - invoke: {function: Items, template_event: {name: GetItem, path_parameters: {id: "{i}"}}, count: 2}
          - expect: {payload: {method: GET, path: /items/1, id: "1", resource: "/items/{id}"}}
          - invoke: {function: Items, template_event: GetItem}
        """)
    # The route has {id}: the event's builder says what to give, where.
    with pytest.raises(ScenarioError, match=r"s.yaml:5: steps\[3\]\.invoke: event 'GetItem' \(Api, "
                                            r".*template.yaml:10\): the route /items/\{id\} has \{id\}: give "
                                            r"path_parameters"):
        run_file(path, factory)
    path.write_text(path.read_text().rsplit("  - invoke", 1)[0])
    result = run_file(path, factory)
    assert result.passed and str(result.steps[1].summary).startswith("2 invocation(s) of Items")
    bad = write(tmp_path, """\
        steps:
          - deploy: {template: template.yaml, function: Items}
          - invoke: {function: Items, template_event: GetThing}
        """, "bad.yaml")
    with pytest.raises(ScenarioError, match=r"bad.yaml:3: steps\[1\]\.invoke: .*GetThing.*GetItem"):
        run_file(bad, factory)
    both = write(tmp_path, """\
        steps:
          - deploy: {template: template.yaml, function: Items}
          - invoke: {function: Items, template_event: GetItem, event: {}}
        """, "both.yaml")
    with pytest.raises(ScenarioError, match="template_event builds the event, and event is given too"):
        load_scenario(both)
