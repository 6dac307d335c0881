"""Lambda's execution models as templates configure them: SnapStart, provisioned concurrency, tenant
isolation and Lambda Managed Instances, read into :class:`Models` for :mod:`lambdasim._templates`.

AWS SAM / CloudFormation (``AWS::Serverless::Function`` with Globals, ``AWS::Lambda::Function``):

- ``SnapStart: {ApplyOn: PublishedVersions | None}``;
- ``ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: N}`` on a SAM function, or on an
  ``AWS::Lambda::Alias`` / ``AWS::Lambda::Version`` of the function in the same template (where
  CloudFormation has it);
- ``TenancyConfig: {TenantIsolationMode: PER_TENANT}``;
- ``CapacityProviderConfig``: SAM's ``{Arn, PerExecutionEnvironmentMaxConcurrency,
  ExecutionEnvironmentMemoryGiBPerVCpu}``, CloudFormation's ``{LambdaManagedInstancesCapacityProviderConfig:
  {CapacityProviderArn, ...}}``; ``!Ref`` / ``!GetAtt X.Arn`` of an ``AWS::Serverless::CapacityProvider`` or
  ``AWS::Lambda::CapacityProvider`` of the template resolve to its name / ARN;
  ``FunctionScalingConfig: {MinExecutionEnvironments, MaxExecutionEnvironments}``.

The Serverless Framework: ``snapStart: true``, ``provisionedConcurrency: N`` (or ``{executions: N}``),
``tenancy: {mode: per_tenant}``, ``capacityProvider: NAME`` or ``{name, maxConcurrency, memoryPerVCpu,
scaling: {min, max}}`` (NAME one of ``provider.capacityProviders``, ``default``, an ARN or ``!GetAtt X.Arn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lambdasim._cfn import _Context, _intrinsic, _kind, _Loc, _Resolver, _section, _show
from lambdasim._model import ACCOUNT_ID
from lambdasim._source import YamlMap

_CAPACITY_PROVIDERS = ("AWS::Serverless::CapacityProvider", "AWS::Lambda::CapacityProvider")
_MAX_CONCURRENCY = (1, 1600, "Lambda allows 1 to 1600 concurrent requests per execution environment")
_ENVIRONMENTS = (0, 15000, "Lambda allows 0 to 15000 execution environments")
_PROVISIONED = (0, 2**31 - 1, "use a whole number >= 0")
_GIB_PER_VCPU = (2, 4, 8)


@dataclass(frozen=True)
class Models:
    """The execution-model settings of one function, named as ``Simulator.deploy()`` names them."""

    snap_start: bool = False
    provisioned_concurrency: int = 0
    tenant_isolation: bool = False
    capacity_provider: str | None = None
    max_concurrency: int | None = None
    min_environments: int = 0
    max_environments: int | None = None


class Values(Protocol):
    """What the template readers of :mod:`lambdasim._templates` offer: values resolved and checked."""

    ctx: _Context
    resolver: _Resolver

    def value(self, value: Any, loc: _Loc) -> Any: ...

    def whole(self, value: Any, loc: _Loc, limits: tuple[int, int, str]) -> int: ...


def _mapping(reader: Values, found: tuple[Any, _Loc], form: str, keys: tuple[str, ...]) -> YamlMap | None:
    """The mapping at ``found`` (None when absent), with only ``keys``."""
    value, loc = found
    if value is None:
        return None
    value = reader.value(value, loc)
    if not isinstance(value, YamlMap):
        reader.ctx.fail(loc, f"expected {form}, found {_kind(value)}.")
    unknown = [k for k in value if k not in keys]
    if unknown:
        reader.ctx.fail(loc.child(value, str(unknown[0])), f"not a key of this setting; it takes {', '.join(keys)}.")
    return value


def _choice(reader: Values, container: YamlMap, key: str, loc: _Loc, allowed: tuple[str, ...],
            fold: bool = False) -> str:
    where = loc.child(container, key)
    if key not in container:
        reader.ctx.fail(where, f"missing; set it to {' or '.join(allowed)}.")
    value = reader.value(container[key], where)
    if isinstance(value, str) and fold:
        value = {a.lower(): a for a in allowed}.get(value.lower(), value)
    if value not in allowed:
        reader.ctx.fail(where, f"{_show(container[key])} is not valid; Lambda allows {' or '.join(allowed)}.")
    assert isinstance(value, str)
    return value


def sam_models(reader: Values, get: Callable[[str], tuple[Any, _Loc]], function: str, sam: bool) -> Models:
    """The models of the SAM (``sam``) or CloudFormation function ``function``; ``get`` gives a property
    (with SAM's Globals) and where it is."""
    snap = _mapping(reader, get("SnapStart"), "{ApplyOn: PublishedVersions}", ("ApplyOn",))
    snap_start = snap is not None and _choice(reader, snap, "ApplyOn", get("SnapStart")[1],
                                              ("PublishedVersions", "None")) == "PublishedVersions"
    tenancy = _mapping(reader, get("TenancyConfig"), "{TenantIsolationMode: PER_TENANT}", ("TenantIsolationMode",))
    if tenancy is not None:
        _choice(reader, tenancy, "TenantIsolationMode", get("TenancyConfig")[1], ("PER_TENANT",))
    provisioned = _provisioned(reader, get, function, sam)
    capacity: tuple[str | None, int | None] = (None, None)
    if sam:
        cap = _mapping(reader, get("CapacityProviderConfig"), "{Arn: ..., PerExecutionEnvironmentMaxConcurrency: N}",
                       ("Arn", "PerExecutionEnvironmentMaxConcurrency", "ExecutionEnvironmentMemoryGiBPerVCpu"))
        if cap is not None:
            capacity = _capacity(reader, cap, get("CapacityProviderConfig")[1], "Arn")
    else:
        outer = _mapping(reader, get("CapacityProviderConfig"),
                         "{LambdaManagedInstancesCapacityProviderConfig: {CapacityProviderArn: ...}}",
                         ("LambdaManagedInstancesCapacityProviderConfig",))
        if outer is not None:
            where = get("CapacityProviderConfig")[1]
            inner_loc = where.child(outer, "LambdaManagedInstancesCapacityProviderConfig")
            inner = _mapping(reader, (outer.get("LambdaManagedInstancesCapacityProviderConfig"), inner_loc),
                             "{CapacityProviderArn: ..., PerExecutionEnvironmentMaxConcurrency: N}",
                             ("CapacityProviderArn", "PerExecutionEnvironmentMaxConcurrency",
                              "ExecutionEnvironmentMemoryGiBPerVCpu"))
            if inner is None:
                reader.ctx.fail(inner_loc, "missing; set it to {CapacityProviderArn: ...}.")
            capacity = _capacity(reader, inner, inner_loc, "CapacityProviderArn")
    scaling = _mapping(reader, get("FunctionScalingConfig"),
                       "{MinExecutionEnvironments: N, MaxExecutionEnvironments: N}",
                       ("MinExecutionEnvironments", "MaxExecutionEnvironments"))
    low, high = 0, None
    if scaling is not None:
        where = get("FunctionScalingConfig")[1]
        if capacity[0] is None:
            reader.ctx.fail(where, "a setting of Lambda Managed Instances; add CapacityProviderConfig, or remove it.")
        if "MinExecutionEnvironments" in scaling:
            low = reader.whole(scaling["MinExecutionEnvironments"], where.child(scaling, "MinExecutionEnvironments"),
                               _ENVIRONMENTS)
        if "MaxExecutionEnvironments" in scaling:
            high = reader.whole(scaling["MaxExecutionEnvironments"], where.child(scaling, "MaxExecutionEnvironments"),
                                _ENVIRONMENTS)
    return Models(snap_start=snap_start, provisioned_concurrency=provisioned, tenant_isolation=tenancy is not None,
                  capacity_provider=capacity[0], max_concurrency=capacity[1], min_environments=low,
                  max_environments=high)


def _provisioned(reader: Values, get: Callable[[str], tuple[Any, _Loc]], function: str, sam: bool) -> int:
    """``ProvisionedConcurrentExecutions`` of the function (SAM) or of an alias or version of it."""
    ctx = reader.ctx
    value, loc = get("ProvisionedConcurrencyConfig")
    if value is not None and not sam:
        ctx.fail(loc, "not a property of AWS::Lambda::Function; CloudFormation sets ProvisionedConcurrencyConfig "
                      "on an AWS::Lambda::Alias or AWS::Lambda::Version of the function: move it there.")
    found: list[tuple[YamlMap, _Loc]] = []
    config = _mapping(reader, (value, loc), "{ProvisionedConcurrentExecutions: N}",
                      ("ProvisionedConcurrentExecutions",))
    if config is not None:
        found.append((config, loc))
    resources = reader.resolver.resources
    for name, resource in resources.items():
        if not isinstance(resource, YamlMap) or resource.get("Type") not in ("AWS::Lambda::Alias",
                                                                              "AWS::Lambda::Version"):
            continue
        res_loc = _Loc(f"Resources.{name}", resources.key_line(name, resources.line))
        props, props_loc = _section(ctx, resource, "Properties", res_loc)
        target = _intrinsic(props.get("FunctionName"))
        if target is None or not (target == ("Ref", function) or (
                target[0] == "Fn::GetAtt" and list(target[1]) == [function, "Arn"])):
            continue
        where = props_loc.child(props, "ProvisionedConcurrencyConfig")
        config = _mapping(reader, (props.get("ProvisionedConcurrencyConfig"), where),
                          "{ProvisionedConcurrentExecutions: N}", ("ProvisionedConcurrentExecutions",))
        if config is not None:
            found.append((config, where))
    if len(found) > 1:
        first = found[0][1]
        ctx.fail(found[1][1], f"provisioned concurrency is set twice for {function} (also at {first.key}, line "
                              f"{first.line}); lambdasim runs one version of it: keep one.")
    if not found:
        return 0
    config, where = found[0]
    key = where.child(config, "ProvisionedConcurrentExecutions")
    if "ProvisionedConcurrentExecutions" not in config:
        ctx.fail(key, "missing; set it to the number of environments to initialise ahead of requests.")
    return reader.whole(config["ProvisionedConcurrentExecutions"], key, _PROVISIONED)


def _capacity(reader: Values, config: YamlMap, loc: _Loc, arn_key: str) -> tuple[str, int | None]:
    """(the capacity provider, PerExecutionEnvironmentMaxConcurrency) of a CapacityProviderConfig."""
    where = loc.child(config, arn_key)
    if arn_key not in config:
        reader.ctx.fail(where, "missing; set it to the capacity provider: !GetAtt <CapacityProvider>.Arn of one in "
                               "this template, or its ARN.")
    provider = capacity_provider(reader, config[arn_key], where)
    ratio_key = "ExecutionEnvironmentMemoryGiBPerVCpu"
    if ratio_key in config:
        ratio = reader.value(config[ratio_key], loc.child(config, ratio_key))
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio not in _GIB_PER_VCPU:
            reader.ctx.fail(loc.child(config, ratio_key), f"{_show(config[ratio_key])} is not valid; Lambda allows "
                                                          "2, 4 or 8 GiB per vCPU.")
    concurrency = None
    key = "PerExecutionEnvironmentMaxConcurrency"
    if key in config:
        concurrency = reader.whole(config[key], loc.child(config, key), _MAX_CONCURRENCY)
    return provider, concurrency


def capacity_provider(reader: Values, value: Any, loc: _Loc) -> str:
    """The capacity provider ``value`` names: ``!Ref X`` (its name) or ``!GetAtt X.Arn`` (its ARN) of a
    capacity provider of the template, or a name or ARN written out."""
    ctx = reader.ctx
    call = _intrinsic(value)
    resources = reader.resolver.resources
    target: str | None = None
    if call is not None and call[0] == "Fn::GetAtt":
        arg = call[1]
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            ctx.fail(loc, f"{_show(value)}: expected !GetAtt <CapacityProvider>.Arn.")
        target = arg[0]
        if arg[1] != "Arn" and target in resources:
            ctx.fail(loc, f"{_show(value)}: a capacity provider's attribute here is Arn (!GetAtt {target}.Arn).")
    elif call is not None and call[0] == "Ref" and isinstance(call[1], str) and call[1] not in reader.resolver.pseudo \
            and call[1] not in reader.resolver.parameters and call[1] not in ctx.parameters:
        target = call[1]
    if target is not None:
        providers = [n for n, r in resources.items() if isinstance(r, YamlMap) and r.get("Type") in _CAPACITY_PROVIDERS]
        known = f"the capacity providers here are {', '.join(providers)}" if providers else (
            "this template defines none (AWS::Serverless::CapacityProvider or AWS::Lambda::CapacityProvider)")
        if target not in resources:
            ctx.fail(loc, f"{_show(value)} names no resource of this template; {known}.")
        resource = resources[target]
        kind = resource.get("Type") if isinstance(resource, YamlMap) else None
        line = resources.key_line(target, resources.line)
        if kind not in _CAPACITY_PROVIDERS:
            ctx.fail(loc, f"{_show(value)} names Resources.{target} (line {line}), which is {kind}, not a capacity "
                          f"provider; {known}.")
        assert isinstance(resource, YamlMap)
        props, props_loc = _section(ctx, resource, "Properties", _Loc(f"Resources.{target}", line))
        name = target  # CloudFormation would generate a name; the logical ID stands for it
        if props.get("CapacityProviderName") is not None:
            where = props_loc.child(props, "CapacityProviderName")
            name = reader.value(props["CapacityProviderName"], where)
            if not isinstance(name, str) or not name:
                ctx.fail(where, f"{_show(props['CapacityProviderName'])} is not a name.")
        if call is not None and call[0] == "Ref":
            return name
        pseudo = reader.resolver.pseudo
        return f"arn:{pseudo['AWS::Partition']}:lambda:{pseudo['AWS::Region']}:{ACCOUNT_ID}:capacity-provider:{name}"
    resolved = reader.value(value, loc)
    if not isinstance(resolved, str) or not resolved:
        ctx.fail(loc, f"{_show(value)} is not a capacity provider: give !GetAtt <CapacityProvider>.Arn of one in this "
                      "template, or its ARN.")
    return resolved


def serverless_models(reader: Values, get: Callable[[str], tuple[Any, _Loc]], provider: YamlMap,
                      provider_loc: _Loc) -> Models:
    """The models of a Serverless Framework function; ``get`` gives one of its settings and where it is."""
    ctx = reader.ctx
    snap_start = False
    value, loc = get("snapStart")
    if value is not None:
        resolved = reader.value(value, loc)
        if not isinstance(resolved, bool):
            ctx.fail(loc, f"{_show(value)} is not true or false.")
        snap_start = resolved
    provisioned = 0
    value, loc = get("provisionedConcurrency")
    if value is not None:
        resolved = reader.value(value, loc)
        if isinstance(resolved, YamlMap):
            config = _mapping(reader, (resolved, loc), "{executions: N}", ("executions", "alias"))
            assert config is not None
            if "executions" not in config:
                ctx.fail(loc.child(config, "executions"), "missing; set it to the number of environments to "
                                                          "initialise ahead of requests.")
            provisioned = reader.whole(config["executions"], loc.child(config, "executions"), _PROVISIONED)
        else:
            provisioned = reader.whole(value, loc, _PROVISIONED)
    tenancy = _mapping(reader, get("tenancy"), "{mode: per_tenant}", ("mode",))
    if tenancy is not None:
        _choice(reader, tenancy, "mode", get("tenancy")[1], ("per_tenant",), fold=True)
    capacity: str | None = None
    concurrency, low, high = None, 0, None
    value, loc = get("capacityProvider")
    if value is not None:
        resolved = reader.value(value, loc) if _intrinsic(value) is None else value
        name, name_loc = resolved, loc
        if isinstance(resolved, YamlMap) and _intrinsic(resolved) is None:
            config = _mapping(reader, (resolved, loc), "{name: ..., maxConcurrency: N}",
                              ("name", "maxConcurrency", "memoryPerVCpu", "scaling"))
            assert config is not None
            name_loc = loc.child(config, "name")
            if "name" not in config:
                ctx.fail(name_loc, "missing; set it to a capacity provider under provider.capacityProviders, "
                                   "default, or an ARN.")
            name = config["name"]
            if "maxConcurrency" in config:
                concurrency = reader.whole(config["maxConcurrency"], loc.child(config, "maxConcurrency"),
                                           _MAX_CONCURRENCY)
            if "memoryPerVCpu" in config:
                ratio = reader.value(config["memoryPerVCpu"], loc.child(config, "memoryPerVCpu"))
                if isinstance(ratio, bool) or ratio not in _GIB_PER_VCPU:
                    ctx.fail(loc.child(config, "memoryPerVCpu"), f"{_show(config['memoryPerVCpu'])} is not valid; "
                                                                 "Lambda allows 2, 4 or 8 GiB per vCPU.")
            scaling = _mapping(reader, (config.get("scaling"), loc.child(config, "scaling")), "{min: N, max: N}",
                               ("min", "max"))
            if scaling is not None:
                where = loc.child(config, "scaling")
                if "min" in scaling:
                    low = reader.whole(scaling["min"], where.child(scaling, "min"), _ENVIRONMENTS)
                if "max" in scaling:
                    high = reader.whole(scaling["max"], where.child(scaling, "max"), _ENVIRONMENTS)
        capacity = _serverless_provider(reader, name, name_loc, provider, provider_loc)
    return Models(snap_start=snap_start, provisioned_concurrency=provisioned, tenant_isolation=tenancy is not None,
                  capacity_provider=capacity, max_concurrency=concurrency, min_environments=low,
                  max_environments=high)


def _serverless_provider(reader: Values, name: Any, loc: _Loc, provider: YamlMap, provider_loc: _Loc) -> str:
    if _intrinsic(name) is not None:
        return capacity_provider(reader, name, loc)
    resolved = reader.value(name, loc)
    defined, _ = _section(reader.ctx, provider, "capacityProviders", provider_loc)
    if isinstance(resolved, str) and (resolved.startswith("arn:") or resolved == "default" or resolved in defined):
        return resolved
    known = f" (they are {', '.join(map(str, defined))})" if defined else ""
    reader.ctx.fail(loc, f"{_show(name)} names no capacity provider under provider.capacityProviders{known}; name one "
                         "of them, default, or give an ARN.")
