"""Errors of the harness itself (never of the simulated function)."""

from __future__ import annotations


class LambdaSimError(Exception):
    """Base class of every error lambdasim raises about its own use."""


class ConfigError(LambdaSimError, ValueError):
    """An argument or a configuration value is not valid; the message says which and why."""


class SettingError(ConfigError):
    """A function's setting is not valid: ``setting`` names it (``memory_mb``, ``environment``),
    ``reason`` says why; the message is ``Function 'name': reason``."""

    def __init__(self, function: str, setting: str, reason: str) -> None:
        self.function = function
        self.setting = setting
        self.reason = reason
        super().__init__(f"Function {function!r}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.function, self.setting, self.reason)


class ServiceSettingError(ConfigError):
    """A ``services`` setting is not valid: ``service`` names the entry (None when the name itself is
    not a service), ``reason`` says why; the message is ``services['redis']: reason``."""

    def __init__(self, service: str | None, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"services[{service!r}]: {reason}" if service is not None else f"services: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.service, self.reason)


class SandboxUnavailable(LambdaSimError):
    """The requested sandbox cannot run on this machine; the message says why and what to do."""


class SandboxError(LambdaSimError):
    """The sandbox failed while creating or managing an instance."""


class InstanceGone(LambdaSimError):
    """The instance has been destroyed (scale-down, reaping, redeploy, destroy())."""


class ServiceError(LambdaSimError):
    """A backing service did not start, or cannot do what was asked; the message carries its log tail."""


class SandboxLimitError(LambdaSimError, PermissionError):
    """Raised inside a function run by the fakefs sandbox when it tries something that sandbox
    cannot contain (a C extension writing files, a subprocess, ctypes); the namespace sandbox
    enforces Lambda's filesystem for these too."""
