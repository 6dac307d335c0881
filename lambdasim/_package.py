"""The deployment package as Lambda sees it: its limits at deploy, and what an instance may import.

The deploy-time half (:func:`check_limits`) runs in the simulator; the import half
(:class:`ImportWatch`) runs inside instances, where ``_runtime`` installs it before Init: it
notes every top-level module the function imports from outside the package (``/var/task``),
the layers (``/opt``) and what Lambda's Python runtime provides (the standard library, and
``boto3``/``botocore`` with their dependencies), and under ``package="strict"`` refuses it
as Lambda would (``No module named 'requests'``). Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lambdasim._errors import ConfigError, SettingError

if TYPE_CHECKING:
    from lambdasim._model import FunctionConfig

UNZIPPED_LIMIT = 262_144_000
"""Lambda's limit on a function's code and all its layers, unzipped (250 MB)."""
MAX_LAYERS = 5
"""The layers a function may have."""

PACKAGE_VIEWS = ("host", "strict")
"""``Simulator(package=...)``: ``host`` notes imports from outside the package (the host's other
packages stay importable, as before); ``strict`` makes them fail as on Lambda."""

RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
"""What Lambda's Python runtime bundles besides the standard library: the AWS SDK and its dependencies."""
_HARNESS = frozenset({"lambdasim", "pytest_lambdasim", "pyfakefs", "coverage", "_distutils_hack"})
"""lambdasim's own code and what it runs instances with: already loaded when the function's code starts."""


def package_view(package: object) -> str:
    """``package`` if it is one of :data:`PACKAGE_VIEWS`, else a ConfigError saying what to pass."""
    if package not in PACKAGE_VIEWS:
        raise ConfigError(f"package={package!r} is not a package view lambdasim knows; use 'host' (the host's "
                          "packages stay importable, each import from outside the package noted; the default) or "
                          "'strict' (only the package, its layers and Lambda's runtime, as on Lambda).")
    return str(package)


# -- deploy-time limits --------------------------------------------------------------------------

def tree_size(path: str) -> int:
    """The bytes of the files under ``path`` (as they would be unzipped), symbolic links not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def prepare(config: FunctionConfig) -> None:
    """At deploy: build the function's requirements.txt (:func:`build`) and check Lambda's limits."""
    built = build(config)
    check_limits(config, built)


def check_limits(config: FunctionConfig, built: str | None = None) -> None:
    """Refuse, with Lambda's message, a function whose layers or unzipped size Lambda refuses
    (``built``: its built dependencies, part of the package)."""
    layers: Sequence[str] = config.layers
    if len(layers) > MAX_LAYERS:
        shown = ", ".join(layers)
        raise SettingError(config.name, "layers", f"1 validation error detected: Value '[{shown}]' at 'layers' "
                                                  f"failed to satisfy constraint: Member must have length less "
                                                  f"than or equal to {MAX_LAYERS}")
    code = tree_size(config.code_dir) + (tree_size(built) if built else 0)
    if code > UNZIPPED_LIMIT:
        raise SettingError(config.name, "code_dir", f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes "
                                                    f"(code_dir {config.code_dir} holds {code} bytes).")
    in_layers = sum(tree_size(layer) for layer in layers)
    if in_layers > UNZIPPED_LIMIT:
        raise SettingError(config.name, "layers", f"Layers consume more than the available size of "
                                                  f"{UNZIPPED_LIMIT} bytes")
    if code + in_layers > UNZIPPED_LIMIT:
        raise SettingError(config.name, "layers", "Function code combined with layers exceeds the maximum allowed "
                                                  f"size of {UNZIPPED_LIMIT} bytes. The actual size is "
                                                  f"{code + in_layers} bytes.")



# -- building requirements.txt -------------------------------------------------------------------

REQUIREMENTS = "requirements.txt"
BUILD_PLATFORM = "manylinux2014_x86_64"
"""What AWS documents for a Python function's dependencies on x86_64 (``pip install --platform``)."""


def builds_dir() -> str:
    """Where built dependencies are kept: ``$XDG_CACHE_HOME/lambdasim/builds`` (``~/.cache`` without it)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "lambdasim", "builds")


def build_python(config: FunctionConfig) -> str | None:
    """The ``3.X`` a function's dependencies are built for: the Python it runs on (its runtime's where that is
    installed, else lambdasim's: see _interpreters), None for a runtime that is not Python's."""
    return config.python_version if config.runtime.startswith("python3.") else None


def _keep(work: str, final: str) -> None:
    """Move the finished folder ``work`` to ``final``, unless another process got there first (its is kept)."""
    try:
        os.rename(work, final)
    except OSError:
        if not os.path.isdir(final):
            raise


def inline_code(source: str) -> str:
    """A folder holding ``index.py`` with ``source``: what Lambda makes of a Python function's inline code
    (CloudFormation's ``Code: {ZipFile: ...}``, SAM's ``InlineCode``), kept by content under ``builds_dir()``."""
    data = source.encode()
    final = os.path.join(builds_dir(), "inline-" + hashlib.sha256(data).hexdigest()[:32])
    if not os.path.isdir(final):
        os.makedirs(builds_dir(), exist_ok=True)
        work = tempfile.mkdtemp(prefix=".inline-", dir=builds_dir())
        try:
            os.chmod(work, 0o755)
            with open(os.path.join(work, "index.py"), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(work, "index.py"), 0o644)
            _keep(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def _key(requirements: bytes, python: str) -> str:
    text = b"\0".join([requirements, python.encode(), BUILD_PLATFORM.encode(), b"cp", b"only-binary"])
    return hashlib.sha256(text).hexdigest()[:32]


def build(config: FunctionConfig) -> str | None:
    """The layer-like directory (``python/`` inside) of the dependencies the function's ``requirements.txt``
    names, built as AWS documents for Lambda (``pip install --target ... --platform manylinux2014_x86_64
    --implementation cp --python-version 3.X --only-binary=:all:``), once per content; None without one."""
    python = build_python(config)
    path = os.path.join(config.code_dir, REQUIREMENTS)
    if python is None or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        requirements = f.read()
    try:
        return pip_build(_key(requirements, python), python, ["-r", path], config.code_dir, config.interpreter)
    except OSError as e:
        raise SettingError(config.name, "code_dir", f"building {path} for Lambda (pip install --platform "
                                                    f"{BUILD_PLATFORM} --python-version {python} "
                                                    f"--only-binary=:all:) failed: {e}") from None


def pip_build(key: str, python: str, requirements: list[str], cwd: str, interpreter: str = "") -> str:
    """``builds_dir()/key``, holding (under ``python/``) what ``pip install requirements`` gives for Lambda's
    platform and Python ``python``: built once (an OSError says why pip failed). The pip of ``interpreter``
    (that Python itself, see _interpreters) where it has one: ``--python-version`` does not make another
    Python's pip read environment markers (``python_version < "3.10"``) for that version."""
    final = os.path.join(builds_dir(), key)
    if os.path.isdir(final):
        return final
    os.makedirs(builds_dir(), exist_ok=True)
    work = tempfile.mkdtemp(prefix=".build-", dir=builds_dir())
    pip = sys.executable
    if interpreter and subprocess.run([interpreter, "-m", "pip", "--version"], capture_output=True,
                                      check=False).returncode == 0:
        pip = interpreter
    try:
        done = subprocess.run(
            [pip, "-m", "pip", "install", "--target", os.path.join(work, "python"),
             "--platform", BUILD_PLATFORM, "--implementation", "cp", "--python-version", python,
             "--only-binary=:all:", "--no-compile", "--quiet", "--disable-pip-version-check", "--no-input",
             *requirements], capture_output=True, text=True, cwd=cwd, check=False)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()
                     and not line.startswith("WARNING: Running pip as")]
            raise OSError(" / ".join(lines[-3:]) or f"pip exited with {done.returncode}")
        _keep(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def powertools_layer(major: int, python: str, interpreter: str = "") -> str:
    """A layer folder (``python/`` inside) with what the AWS Lambda Powertools for Python layer of ``major``
    version bundles: ``aws-lambda-powertools[all]`` of that major version from PyPI (the package and its
    extras' dependencies; boto3 is the runtime's), built as requirements are (:func:`pip_build`) for Python
    ``python``, once per content. An OSError says why pip failed."""
    spec = f"aws-lambda-powertools[all]>={major},<{major + 1}"
    return pip_build(_key(f"{spec} (the Powertools layer)".encode(), python), python, [spec], os.getcwd(),
                     interpreter)


# -- inside an instance: imports from outside the package ------------------------------------------

def _top(module_name: object) -> str:
    return module_name.partition(".")[0] if isinstance(module_name, str) else ""


# The watch runs inside runtimes, under the fakefs sandbox too, where pyfakefs replaces this module's
# `os.path` (and functions taken from it) with its fakes: these string functions, kept where pyfakefs
# does not look, stay the real ones (a fake normpath costs ~60 us; the watch calls it per module).
_PATH = types.SimpleNamespace(normpath=os.path.normpath, dirname=os.path.dirname, isabs=os.path.isabs)


class ImportWatch:
    """The ``sys.meta_path`` finder, in front of the others, that sees each top-level module the function's
    code imports for the first time: one from outside ``roots`` (the package and the layers), the standard
    library and :data:`RUNTIME_PACKAGES` is noted (:meth:`take`) and, when ``strict``, not found, as
    Lambda's runtime would not find it. Imports made by lambdasim itself are let through, and those by
    packages that are themselves from outside are not noted (only the first of a chain is)."""

    def __init__(self, roots: Sequence[str], strict: bool) -> None:
        self.roots = tuple(_PATH.normpath(r) for r in roots)
        self.strict = strict
        self.stdlib = _PATH.dirname(os.__file__)
        self.noted: list[str] = []
        self.finders: list[Any] = []

    def allowed(self, path: str) -> bool:
        """Whether a module at ``path`` is in the package, a layer or the standard library."""
        path = _PATH.normpath(path)
        if any(path == r or path.startswith(r + "/") for r in self.roots):
            return True
        if path.startswith(self.stdlib + "/"):
            first = path[len(self.stdlib) + 1:].split("/", 1)[0]
            return first not in ("site-packages", "dist-packages")
        return False

    def _outside(self, name: str, spec: Any) -> bool:
        if (name in RUNTIME_PACKAGES or name in _HARNESS or name in sys.builtin_module_names
                or name.startswith("__editable__")):
            return False
        origin = getattr(spec, "origin", None)
        if origin in ("built-in", "frozen"):
            return False
        places = [origin] if isinstance(origin, str) else list(getattr(spec, "submodule_search_locations", None) or ())
        return bool(places) and not any(self.allowed(p) for p in places)

    def _importer(self) -> str:
        """Who imports: ``function`` (the function's code, a layer's, the standard library's), ``harness``
        (lambdasim), ``runtime`` (the runtime's bundled packages) or ``outside`` (a package from outside,
        importing its own)."""
        frame: Any = sys._getframe(2)
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if not (isinstance(name, str) and (name.startswith(("importlib", "_frozen_importlib")))):
                break
            frame = frame.f_back
        if frame is None:
            return "harness"
        top = _top(frame.f_globals.get("__name__"))
        if top in _HARNESS:
            return "harness"
        if top in RUNTIME_PACKAGES:
            return "runtime"
        path = frame.f_code.co_filename
        return "outside" if _PATH.isabs(path) and not self.allowed(path) else "function"

    def _find(self, name: str, path: Any, target: Any) -> Any:
        for finder in self.finders:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                return spec
        return None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        spec = self._find(name, path, target)
        if spec is None or path is not None or "." in name or not self._outside(name, spec):
            return spec
        importer = self._importer()
        if importer == "harness":
            return spec
        if importer == "function" and name not in self.noted:
            self.noted.append(name)
        # Strict: not found, as on Lambda: the import raises Python's own ModuleNotFoundError, and
        # importlib.util.find_spec() says None.
        return None if self.strict else spec

    def invalidate_caches(self) -> None:
        for finder in self.finders:
            invalidate = getattr(finder, "invalidate_caches", None)
            if invalidate is not None:
                invalidate()

    def install(self) -> None:
        """Take the place of ``sys.meta_path``'s finders (they find through the watch); modules from
        outside that are loaded already (lambdasim's own imports) are dropped from ``sys.modules``, so
        that the function's import of one is seen too (lambdasim keeps the module objects it holds)."""
        for name in [n for n in sys.modules if "." not in n]:
            module = sys.modules[name]
            if self._outside(name, getattr(module, "__spec__", None)):
                for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                    del sys.modules[key]
        self.finders = list(sys.meta_path)
        sys.meta_path[:] = [self]

    def take(self) -> list[str] | None:
        """The modules noted since the last take (None: none)."""
        noted, self.noted = self.noted, []
        return noted or None
