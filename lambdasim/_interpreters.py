"""Which Python a function's ``Runtime: python3.X`` runs on.

A function whose runtime names the Python that runs lambdasim runs on the built-in runtime, forked from
lambdasim's own process. One that names another version runs on that version where this machine has it
(pyenv's, uv's managed Pythons, ``python3.X`` on ``PATH``) and the sandbox can start it: the namespace
sandbox mounts that installation where Lambda keeps Python (``/var/lang``) and runs lambdasim's runtime
on it as a Runtime API client (``/var/lang/bin/python3.X /var/runtime/bootstrap``), with the AWS SDK
that Lambda's runtime bundles built for that Python (:func:`runtime_sdk`). Where it cannot, the function
runs on lambdasim's Python, never silently: a :class:`RuntimeVersionWarning` names the function, its
runtime, the Python it runs on and why (not installed: how to install it); ``interpreter="strict"``
makes that an error.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import warnings

from lambdasim._errors import ConfigError, SettingError
from lambdasim._model import PYTHON_VERSION, FunctionConfig
from lambdasim._package import _key, builds_dir, pip_build
from lambdasim._sandbox._layout import LAMBDA_PYTHON_HOME
from lambdasim._template_props import TemplateWarning, _outside_lambdasim

INTERPRETER_MODES = ("fallback", "strict")
"""``Simulator(interpreter=...)``: ``fallback`` runs a function whose Python is not here on lambdasim's, with a
warning; ``strict`` refuses to deploy it."""

RUNTIME_BOOTSTRAP = "/var/runtime/bootstrap"
"""lambdasim's Python runtime as a Runtime API client, in every namespace instance (see ``_zygote``)."""


class RuntimeVersionWarning(TemplateWarning):
    """A function's ``python3.X`` runtime is not the Python lambdasim runs it on."""


def interpreter_mode(mode: object) -> str:
    """``mode`` if it is one of :data:`INTERPRETER_MODES`, else a ConfigError saying what to pass."""
    if mode not in INTERPRETER_MODES:
        raise ConfigError(f"interpreter={mode!r} is not a mode lambdasim knows; use 'fallback' (a function whose "
                          "Python is not installed runs on lambdasim's own, with a RuntimeVersionWarning; the "
                          "default) or 'strict' (such a function is refused at deploy).")
    return str(mode)


def _pyenv_root() -> str:
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def _uv_root() -> str:
    return os.environ.get("UV_PYTHON_INSTALL_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "uv", "python")


def find_python(version: str) -> str | None:
    """An installed interpreter of Python ``version`` (``3.9``): pyenv's, uv's, or ``python3.9`` on PATH
    (not a pyenv shim, which may point at no such version); None where there is none."""
    candidates = sorted(glob.glob(os.path.join(_pyenv_root(), "versions", f"{version}.*", "bin", f"python{version}")))
    candidates += sorted(glob.glob(os.path.join(_uv_root(), f"cpython-{version}.*", "bin", f"python{version}")))
    on_path = shutil.which(f"python{version}")
    if on_path is not None and f"{os.sep}shims{os.sep}" not in on_path:
        candidates.append(on_path)
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return None


def python_home(interpreter: str) -> str:
    """The installation an interpreter belongs to (``.../3.9.18`` for ``.../3.9.18/bin/python3.9``)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(interpreter)))


def _why_not(config: FunctionConfig, sandbox: str, version: str, found: str | None) -> str | None:
    """Why ``config`` cannot run on its Python ``version`` here (None: it can)."""
    if found is None:
        return (f"Python {version} is not installed here (install it with `uv python install {version}` or "
                f"`pyenv install {version}`, or put python{version} on PATH)")
    if sandbox != "namespace":
        return (f"Python {version} is installed ({found}), but the {sandbox} sandbox runs every function on "
                "lambdasim's own Python (the namespace sandbox runs it on its own)")
    if config.snap_start:
        return (f"Python {version} is installed ({found}), but a SnapStart snapshot is a fork of lambdasim's own "
                "runtime")
    if config.managed:
        return (f"Python {version} is installed ({found}), but Managed Instances' workers are forks of lambdasim's "
                "own runtime")
    if os.path.realpath(sys.prefix).startswith("/tmp/"):  # seen at /var/lang itself (see _layout.host_view)
        return (f"Python {version} is installed ({found}), but lambdasim's own Python, under /tmp, is seen at "
                f"{LAMBDA_PYTHON_HOME} already")
    return None


def choose(config: FunctionConfig, sandbox: str, mode: str) -> FunctionConfig:
    """``config`` with :attr:`~FunctionConfig.interpreter` set to the host Python its runtime names, where it can
    run on it in ``sandbox``; else on lambdasim's Python, with a :class:`RuntimeVersionWarning`,
    or, under ``mode`` ``strict``, a SettingError that says how to get that Python."""
    if config.custom_runtime or not config.runtime.startswith("python") or config.runtime == f"python{PYTHON_VERSION}":
        return dataclasses.replace(config, interpreter="") if config.interpreter else config
    version = config.runtime.removeprefix("python")
    found = find_python(version)
    why = _why_not(config, sandbox, version, found)
    if why is None:
        assert found is not None
        runtime_sdk(version, found)  # built now, at deploy, rather than when the first instance starts
        return dataclasses.replace(config, interpreter=found)
    if mode == "strict":
        raise SettingError(config.name, "runtime", f"Runtime {config.runtime} cannot run on Python {version} here: "
                                                   f"{why}; interpreter='strict' refuses to run it on lambdasim's "
                                                   f"Python {PYTHON_VERSION}.")
    message = (f"function {config.name!r}: Runtime {config.runtime} runs on this machine's Python "
               f"{PYTHON_VERSION}, the one that runs lambdasim; {why}. Code that depends on the version "
               f"(syntax, the standard library, compiled packages) behaves as on Python {PYTHON_VERSION}.")
    warnings.warn(RuntimeVersionWarning(message), stacklevel=_outside_lambdasim())
    return dataclasses.replace(config, interpreter="") if config.interpreter else config


_sdks: dict[tuple[str, str], str | None] = {}  # (builds_dir(), version): not tried again in this process


def runtime_sdk(version: str, interpreter: str) -> str | None:
    """A directory holding (under ``python/``) the AWS SDK that Lambda's Python runtime bundles (``boto3`` with
    ``botocore`` and their dependencies), built for Python ``version`` as a function's dependencies are
    (``_package.pip_build``, once per version and machine). None, after a warning, where pip cannot build it
    (no package index): the function's ``import boto3`` then fails."""
    memo = (builds_dir(), version)
    if memo not in _sdks:
        try:
            built = pip_build(_key(b"boto3 (the runtime's SDK)", version), version, ["boto3"], os.getcwd(),
                              interpreter)
            # Compiled by that Python now: an instance cannot write its caches there (it is read-only), and
            # compiling boto3 and botocore at every Init costs about a second. (Lambda's runtime ships them so.)
            subprocess.run([interpreter, "-m", "compileall", "-q", os.path.join(built, "python")],
                           capture_output=True, check=False)
            _sdks[memo] = built
        except OSError as e:
            _sdks[memo] = None
            warnings.warn(RuntimeVersionWarning(f"the AWS SDK that Lambda's runtime bundles could not be built for "
                                                f"Python {version} (pip install boto3 --python-version {version}: "
                                                f"{e}); functions on Python {version} cannot import boto3."),
                          stacklevel=_outside_lambdasim())
    return _sdks[memo]


def api_command(config: FunctionConfig, has_extensions: bool) -> list[str] | None:
    """The command line of a function whose runtime talks to the Runtime API, or None for the built-in
    Python runtime on its framed channel."""
    if config.entry_point:
        return [*config.entry_point, config.handler]
    if config.custom_runtime:
        return []  # the bootstrap, found in /var/task or /opt inside the instance
    wrapper = config.environment.get("AWS_LAMBDA_EXEC_WRAPPER")
    # The managed runtime's own start: lambdasim's Python runtime as a Runtime API client, on the function's
    # Python where that is not lambdasim's (as Lambda's: /var/lang/bin/python3.X and its bootstrap).
    start = ([f"{LAMBDA_PYTHON_HOME}/bin/python{config.python_version}", RUNTIME_BOOTSTRAP] if config.interpreter
             else [RUNTIME_BOOTSTRAP] if wrapper or has_extensions else None)
    if start is None:
        return None
    return [wrapper, *start] if wrapper else start
