"""``Simulator.deploy_from_template()``: a template's function deployed with its resources (kept out of
:mod:`lambdasim._simulator`, which calls it)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from lambdasim._errors import ConfigError, SettingError
from lambdasim._model import FunctionConfig

if TYPE_CHECKING:
    from lambdasim._simulator import Function, Simulator

_ALLOWED = frozenset({
    "handler", "code_dir", "name", "function_name", "memory_mb", "timeout_s", "ephemeral_storage_mb", "environment",
    "reserved_concurrency", "keepalive_s", "layers", "parameters", "runtime", "entry_point", "snap_start",
    "provisioned_concurrency", "tenant_isolation", "capacity_provider", "max_concurrency", "min_environments",
    "max_environments", "max_retry_attempts", "max_event_age_s",
})
_LAMBDA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_function_name(config: FunctionConfig) -> None:
    """Refuse a Lambda function name that Lambda's CreateFunction would refuse."""
    name: object = config.function_name  # a caller's, not always a str
    if name is not None and not (isinstance(name, str) and _LAMBDA_NAME.fullmatch(name)):
        raise SettingError(config.name, "function_name", f"function_name={name!r} is not valid; use 1 to 64 "
                                                         "letters, digits, '-' or '_'.")


def deploy_from_template(sim: Simulator, path: str | os.PathLike[str], function: str, overrides: dict[str, Any],
                         ) -> Function:
    """See :meth:`lambdasim.Simulator.deploy_from_template`."""
    from lambdasim._template_resources import create_resources
    from lambdasim._templates import load_function

    unknown = sorted(set(overrides) - _ALLOWED)
    if unknown:
        raise ConfigError(f"deploy_from_template(): no setting {', '.join(unknown)}; the settings are those of "
                          "Simulator.deploy(), and parameters=.")
    resources = create_resources(sim, path, overrides.get("parameters"))  # the template's tables, buckets...
    template = load_function(path, function, environment=overrides.pop("environment", None),
                             layers=overrides.pop("layers", None), parameters=overrides.pop("parameters", None),
                             region=sim.region, resources=resources)
    kwargs = template.deploy_kwargs()
    if "name" in overrides:
        kwargs["function_name"] = None  # another name given: the function is named that on Lambda too
    fn = sim.deploy(**{**kwargs, **overrides})
    fn._template_events = template.events
    fn._function_url = template.function_url
    return fn
