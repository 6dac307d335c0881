"""Run a handler in the test process, for debuggers.

An instance has no terminal: ``breakpoint()`` inside one reads end-of-file from
stdin and pdb quits (the invocation fails with ``BdbQuit``), and ``pytest --pdb``
stops in the test, not in the handler. :meth:`Function.debug_invoke` runs the
handler here instead, so both work; the price is that nothing of Lambda's
filesystem or lifecycle applies.

The function's code and layers are importable during the call, in Lambda's order
(``/var/task``, then each layer's ``python/lib/pythonX.Y/site-packages`` and ``python``,
the last layer first, as it wins in ``/opt``), and hide the test process's modules of
the same top-level names (a vendored ``flask`` is the one the handler gets). Afterwards
the test process is as it was: ``sys.path`` is restored, every module imported from the
code or the layers (or under one of their names) is gone from ``sys.modules``, and the
modules that were hidden are back.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from lambdasim import _runtime
from lambdasim._model import PYTHON_VERSION


@contextlib.contextmanager
def _patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def import_roots(code_dir: str, layers: Sequence[str] = ()) -> list[str]:
    """The sys.path entries of the code and its layers, in the order Lambda's runtime searches them."""
    last_first = list(reversed(layers))
    return [code_dir,
            *(os.path.join(layer, "python", "lib", f"python{PYTHON_VERSION}", "site-packages") for layer in last_first),
            *(os.path.join(layer, "python") for layer in last_first)]


def _top_level_names(roots: Sequence[str]) -> set[str]:
    """The top-level module and package names the folders ``roots`` provide (``flask/``, ``six.py``, ``_x.so``)."""
    names: set[str] = set()
    for root in roots:
        with contextlib.suppress(OSError):
            for entry in os.listdir(root):
                name = entry.split(".", 1)[0]
                if name.isidentifier():
                    names.add(name)
    return names


def _from_roots(module: ModuleType, roots: Sequence[str]) -> bool:
    """Whether ``module`` was loaded from one of the folders ``roots`` (a package: any of its paths)."""
    try:
        places = [getattr(module, "__file__", None), *list(getattr(module, "__path__", None) or ())]
    except Exception:  # noqa: BLE001 - an odd module object (a lazy module's __getattr__): not ours to judge
        return False
    prefixes = tuple(os.path.join(root, "") for root in roots)
    return any(isinstance(place, str) and place.startswith(prefixes) for place in places)


@contextlib.contextmanager
def _imports_from(roots: Sequence[str], also: str) -> Iterator[None]:
    """``roots`` first on sys.path, and the modules of their top-level names (and ``also``) imported afresh
    from them; on exit sys.path and sys.modules are as they were."""
    names = _top_level_names(roots) | {also}

    def shadowed(name: str) -> bool:
        return name.split(".", 1)[0] in names

    hidden = {name: module for name, module in sys.modules.items() if shadowed(name)}
    for name in hidden:
        del sys.modules[name]
    before = dict(sys.modules)
    saved_path = list(sys.path)
    sys.path[:0] = roots
    importlib.invalidate_caches()  # the code may have changed since a finder last listed its folder
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name, module in list(sys.modules.items()):
            if before.get(name) is not module and (shadowed(name) or _from_roots(module, roots)):
                del sys.modules[name]
        for name, module in {**before, **hidden}.items():
            sys.modules.setdefault(name, module)
        prefixes = tuple(os.path.join(root, "") for root in roots)
        for key in [k for k in sys.path_importer_cache if k in roots or k.startswith(prefixes)]:
            del sys.path_importer_cache[key]


def debug_invoke(handler: str, code_dir: str, env: Mapping[str, str], timeout_s: float, event: Any,
                 request_id: str, arn: str, layers: Sequence[str] = ()) -> Any:
    """Import the handler from ``code_dir`` (and ``layers``) afresh, call it, and return its JSON-decoded result.

    Exceptions from Init or the handler propagate unchanged, so a debugger sees them.
    """
    modname, fname = handler.rsplit(".", 1)
    modname = modname.replace("/", ".")
    with _imports_from(import_roots(code_dir, layers), modname.split(".")[0]), _patched_environ(env):
        module = __import__(modname, fromlist=[fname])
        saved_context_env = _runtime._CONTEXT_ENV
        _runtime._CONTEXT_ENV = tuple(os.environ.get(k) for k in (
            "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"))
        try:
            deadline = int((time.time() + timeout_s) * 1000)
            context = _runtime.LambdaContext(request_id, arn, deadline, None, None, None)
            result = getattr(module, fname)(json.loads(json.dumps(event)), context)
        finally:
            _runtime._CONTEXT_ENV = saved_context_env
        return json.loads(_runtime._ENCODER.encode(result)) if not isinstance(result, bytes) else result
