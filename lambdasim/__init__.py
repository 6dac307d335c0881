"""lambdasim: run Python Lambda handlers locally in execution environments that
behave like AWS Lambda's: a read-only filesystem, a sized /tmp per instance, and a
lifecycle (cold starts, resets, scale-downs, redeploys) that tests can drive.

Names are imported on first use, so that the sandbox's helper process, which imports
a module of this package, does not load the whole library (and PyYAML) into every instance.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lambdasim._errors import (
        ConfigError,
        InstanceGone,
        LambdaSimError,
        SandboxError,
        SandboxUnavailable,
        ServiceError,
    )
    from lambdasim._interpreters import RuntimeVersionWarning
    from lambdasim._invoke import Invocation
    from lambdasim._model import (
        FunctionConfig,
        TraceEvent,
        VirtualClock,
    )
    from lambdasim._provision import ProvisioningFailed
    from lambdasim._sandbox._common import shutdown
    from lambdasim._scenario import (
        Scenario,
        ScenarioError,
        ScenarioFailure,
        ScenarioResult,
        load_scenario,
        run_file,
    )
    from lambdasim._services.service import (
        Service,
        ServiceConfig,
    )
    from lambdasim._simulator import (
        Function,
        Instance,
        Simulator,
    )
    from lambdasim._snapstart import SnapshotFailed
    from lambdasim._templates import (
        TemplateFunction,
        TemplateWarning,
        load_function,
    )
    from lambdasim._tmpview import TmpView

__version__ = "0.1.0"

_WHERE = {
    "ConfigError": "lambdasim._errors",
    "Function": "lambdasim._simulator",
    "FunctionConfig": "lambdasim._model",
    "Instance": "lambdasim._simulator",
    "InstanceGone": "lambdasim._errors",
    "Invocation": "lambdasim._invoke",
    "LambdaSimError": "lambdasim._errors",
    "ProvisioningFailed": "lambdasim._provision",
    "RuntimeVersionWarning": "lambdasim._interpreters",
    "SandboxError": "lambdasim._errors",
    "SandboxUnavailable": "lambdasim._errors",
    "Scenario": "lambdasim._scenario",
    "ScenarioError": "lambdasim._scenario",
    "ScenarioFailure": "lambdasim._scenario",
    "ScenarioResult": "lambdasim._scenario",
    "Service": "lambdasim._services.service",
    "ServiceConfig": "lambdasim._services.service",
    "ServiceError": "lambdasim._errors",
    "Simulator": "lambdasim._simulator",
    "SnapshotFailed": "lambdasim._snapstart",
    "TemplateFunction": "lambdasim._templates",
    "TemplateWarning": "lambdasim._templates",
    "TmpView": "lambdasim._tmpview",
    "TraceEvent": "lambdasim._model",
    "VirtualClock": "lambdasim._model",
    "load_function": "lambdasim._templates",
    "load_scenario": "lambdasim._scenario",
    "run_file": "lambdasim._scenario",
    "shutdown": "lambdasim._sandbox._common",
}

__all__ = [
    "ConfigError",
    "Function",
    "FunctionConfig",
    "Instance",
    "InstanceGone",
    "Invocation",
    "LambdaSimError",
    "ProvisioningFailed",
    "RuntimeVersionWarning",
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
    "SnapshotFailed",
    "TemplateFunction",
    "TemplateWarning",
    "TmpView",
    "TraceEvent",
    "VirtualClock",
    "__version__",
    "load_function",
    "load_scenario",
    "run_file",
    "shutdown",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lambdasim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
