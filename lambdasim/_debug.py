"""Run a handler in the test process, for debuggers.

An instance has no terminal: ``breakpoint()`` inside one reads end-of-file from
stdin and pdb quits (the invocation fails with ``BdbQuit``), and ``pytest --pdb``
stops in the test, not in the handler. :meth:`Function.debug_invoke` runs the
handler here instead, so both work; the price is that nothing of Lambda's
filesystem or lifecycle applies.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from lambdasim import _runtime


@contextlib.contextmanager
def _patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def debug_invoke(handler: str, code_dir: str, env: Mapping[str, str], timeout_s: float, event: Any,
                 request_id: str, arn: str) -> Any:
    """Import the handler from ``code_dir`` afresh, call it, and return its JSON-decoded result.

    Exceptions from Init or the handler propagate unchanged, so a debugger sees them.
    """
    modname, fname = handler.rsplit(".", 1)
    modname = modname.replace("/", ".")
    top = modname.split(".")[0]
    saved_modules = {k: v for k, v in sys.modules.items() if k == top or k.startswith(top + ".")}
    for name in saved_modules:
        del sys.modules[name]
    sys.path.insert(0, code_dir)
    try:
        with _patched_environ(env):
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
    finally:
        sys.path.remove(code_dir)
        for name in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
            del sys.modules[name]
        sys.modules.update(saved_modules)
