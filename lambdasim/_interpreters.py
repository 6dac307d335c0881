"""Which Python a function's ``Runtime: python3.X`` asks for, whether this machine has it, and a warning
when the function does not run on it.

lambdasim runs every Python function on the interpreter that runs lambdasim (its instances are forked
from it): a function whose runtime names another version runs on this one. That is never silent: a
:class:`RuntimeVersionWarning` names the function, its runtime, the Python it runs on, and where the
asked-for interpreter is installed (``PATH``, pyenv's or uv's managed Pythons) or how to install it.
"""

from __future__ import annotations

import glob
import os
import shutil
import warnings

from lambdasim._model import PYTHON_VERSION, FunctionConfig
from lambdasim._template_props import TemplateWarning, _outside_lambdasim


class RuntimeVersionWarning(TemplateWarning):
    """A function's ``python3.X`` runtime is not the Python lambdasim runs it on."""


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


def runtime_message(config: FunctionConfig) -> str | None:
    """What to warn about ``config``'s runtime (None: it runs on the Python it names, or is a custom one)."""
    if config.custom_runtime or config.runtime == f"python{PYTHON_VERSION}":
        return None
    version = config.runtime.removeprefix("python")
    found = find_python(version)
    where = (f"Python {version} is installed ({found}), but lambdasim does not run instances on another "
             "interpreter yet" if found else
             f"Python {version} is not installed here (install it with `uv python install {version}` or "
             f"`pyenv install {version}`)")
    return (f"function {config.name!r}: Runtime {config.runtime} runs on this machine's Python {PYTHON_VERSION}, "
            f"the one that runs lambdasim; {where}. Code that depends on the version (syntax, the standard "
            "library, compiled packages) behaves as on Python " + PYTHON_VERSION + ".")


def warn_runtime(config: FunctionConfig) -> None:
    """Warn (:class:`RuntimeVersionWarning`) when ``config``'s function runs on another Python than its runtime."""
    message = runtime_message(config)
    if message is not None:
        warnings.warn(RuntimeVersionWarning(message), stacklevel=_outside_lambdasim())
