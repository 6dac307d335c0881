"""lambdasim: run Python Lambda handlers locally in execution environments that
behave like AWS Lambda's: a read-only filesystem, a sized /tmp per instance, and a
lifecycle (cold starts, resets, scale-downs, redeploys) that tests can drive.
"""

from lambdasim._errors import (
    ConfigError,
    InstanceGone,
    LambdaSimError,
    SandboxError,
    SandboxUnavailable,
    ServiceError,
)
from lambdasim._model import FunctionConfig, TraceEvent, VirtualClock
from lambdasim._scenario import Scenario, ScenarioError, ScenarioFailure, ScenarioResult, load_scenario, run_file
from lambdasim._services.service import Service, ServiceConfig
from lambdasim._simulator import Function, Instance, Invocation, Simulator, TmpView
from lambdasim._templates import TemplateFunction, load_function

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Function",
    "FunctionConfig",
    "Instance",
    "InstanceGone",
    "Invocation",
    "LambdaSimError",
    "SandboxError",
    "SandboxUnavailable",
    "Scenario",
    "ScenarioError",
    "ScenarioFailure",
    "ScenarioResult",
    "Service",
    "ServiceConfig",
    "ServiceError",
    "Simulator",
    "TemplateFunction",
    "TmpView",
    "TraceEvent",
    "VirtualClock",
    "__version__",
    "load_function",
    "load_scenario",
    "run_file",
]
