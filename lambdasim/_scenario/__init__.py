"""Declarative YAML scenarios: loaded and validated with the file and line of every
mistake, then run step by step through the public :class:`Simulator` API.

::

    name: lost-tmp state
    simulator: {routing: fresh, services: [redis]}
    steps:
      - deploy: {handler: app.handler, code_dir: handlers/lost_tmp/fixed}
      - invoke: {event: {action: put, items: [apple]}, as: put}
      - expect: {invocation: put, cold_start: true}
      - service: {name: redis, action: restart}
      - expect: {redis_key: {key: cart, exists: false}}

Steps: deploy (also from a SAM template or serverless.yml), invoke, scale_down, redeploy,
advance_clock, crash, destroy, fill_tmp, service and expect; expect checks an invocation
(:data:`INVOCATION_CHECKS`) or the state of functions and services (:data:`STATE_CHECKS`).

The package follows ``scenarios/README.md``: :mod:`.base` (errors, the Step base class and
its registry, Scope, RunContext), :mod:`.steps` (the steps that act), :mod:`.checks` (``expect``
and its checks), :mod:`.runner` (loading and running one file) and :mod:`.suite` (running many
files, with progress, summary and JUnit XML). Each step type is a frozen dataclass registered
under its YAML name with ``@step("name")``. ``from_yaml(node)`` validates the step's settings and builds it;
``check(scope)`` validates, still at load time, what it refers to in earlier steps
(functions, named invocations); ``run(ctx)`` does it, and raises
:class:`ExpectationFailed` (or calls ``ctx.fail``) when what it checks is not so.
The format is documented in ``scenarios/README.md``.
"""

from lambdasim._scenario.base import (
    LOG_TAIL_LINES,
    STEPS,
    ExpectationFailed,
    RunContext,
    ScenarioError,
    ScenarioFailure,
    Scope,
    Step,
    StepWhere,
    step,
    step_where,
)
from lambdasim._scenario.checks import (
    INVOCATION_CHECKS,
    STATE_CHECKS,
    ColdStart,
    ColdStartCount,
    DynamoDBItem,
    ErrorMatches,
    Expect,
    Holds,
    InstancesCount,
    InvocationCheck,
    LogsContain,
    PayloadContains,
    PayloadEquals,
    RedisKey,
    S3Count,
    S3Object,
    StateCheck,
    StatusCode,
    TmpFile,
    check,
)
from lambdasim._scenario.models import InstancesPerTenant, Restore, RestoreDuration, Tenant, Worker, Workers
from lambdasim._scenario.runner import Scenario, ScenarioResult, StepResult, load_scenario, run_file
from lambdasim._scenario.steps import (
    SERVICE_ACTIONS,
    SERVICE_NAMES,
    AdvanceClock,
    Crash,
    Deploy,
    Destroy,
    FillTmp,
    FunctionSettings,
    Invoke,
    Redeploy,
    ScaleDown,
    ServiceFault,
)
from lambdasim._source import Fields, Node

__all__ = [
    "INVOCATION_CHECKS",
    "LOG_TAIL_LINES",
    "SERVICE_ACTIONS",
    "SERVICE_NAMES",
    "STATE_CHECKS",
    "STEPS",
    "AdvanceClock",
    "ColdStart",
    "ColdStartCount",
    "Crash",
    "Deploy",
    "Destroy",
    "DynamoDBItem",
    "ErrorMatches",
    "Expect",
    "ExpectationFailed",
    "Fields",
    "FillTmp",
    "FunctionSettings",
    "Holds",
    "InstancesCount",
    "InstancesPerTenant",
    "InvocationCheck",
    "Invoke",
    "LogsContain",
    "Node",
    "PayloadContains",
    "PayloadEquals",
    "Redeploy",
    "RedisKey",
    "Restore",
    "RestoreDuration",
    "RunContext",
    "S3Count",
    "S3Object",
    "ScaleDown",
    "Scenario",
    "ScenarioError",
    "ScenarioFailure",
    "ScenarioResult",
    "Scope",
    "ServiceFault",
    "StateCheck",
    "StatusCode",
    "Step",
    "StepResult",
    "StepWhere",
    "Tenant",
    "TmpFile",
    "Worker",
    "Workers",
    "check",
    "load_scenario",
    "run_file",
    "step",
    "step_where",
]
