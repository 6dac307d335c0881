"""Errors of the harness itself (never of the simulated function)."""

from __future__ import annotations


class LambdaSimError(Exception):
    """Base class of every error lambdasim raises about its own use."""


class ConfigError(LambdaSimError, ValueError):
    """An argument or a configuration value is not valid; the message says which and why."""


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
