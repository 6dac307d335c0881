"""The deployment package as Lambda sees it: its limits at deploy, and what an instance may import.

The deploy-time half (:func:`check_limits`) runs in the simulator; the import half
(:class:`ImportWatch`) runs inside instances, where ``_runtime`` installs it before Init: it
notes every top-level module the function imports from outside the package (``/var/task``),
the layers (``/opt``) and what Lambda's Python runtime provides (the standard library, and
``boto3``/``botocore`` with their dependencies), and under ``package="strict"`` refuses it
as Lambda would (``No module named 'requests'``). Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lambdasim._errors import SettingError

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


def check_limits(config: FunctionConfig) -> None:
    """Refuse, with Lambda's message, a function whose layers or unzipped size Lambda refuses."""
    layers: Sequence[str] = config.layers
    if len(layers) > MAX_LAYERS:
        shown = ", ".join(layers)
        raise SettingError(config.name, "layers", f"1 validation error detected: Value '[{shown}]' at 'layers' "
                                                  f"failed to satisfy constraint: Member must have length less "
                                                  f"than or equal to {MAX_LAYERS}")
    code = tree_size(config.code_dir)
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
