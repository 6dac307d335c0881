"""pytest plugin for lambdasim: ``pytest --lambda-sim``.

A thin front end over :class:`lambdasim.Simulator`: options and ini keys, the
``lambda_sim``, ``lambda_function`` and ``lambda_serve`` fixtures, the ``lambda_sim`` marker, YAML
scenarios collected as tests, and a terminal summary. Nothing heavy is imported
until a test asks for a simulator, so having the plugin installed costs nothing.

The plugin's parts, one module each (each is a pytest plugin of its own, registered
through ``pytest_plugins`` below when pytest loads this package from its ``pytest11``
entry point):

- ``options``: the command-line options, ini keys and the marker, and reading them;
- ``fixtures``: ``lambda_sim``, ``lambda_function``, ``lambda_serve``, ``lambda_sim_services``, the marker's
  settings, and skipping their tests without ``--lambda-sim``;
- ``summary``: the terminal summary and the JSON trace report (pytest-xdist too);
- ``detect``: ``--lambda-sim-detect``, every test warm and fresh;
- ``scenarios``: YAML scenarios collected as tests.

Each imports only pytest and the standard library; lambdasim itself is imported inside
the functions that need it.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

_PARTS = ("options", "fixtures", "summary", "detect", "scenarios")

# pytest imports each part as a plugin under its assertion rewriting; marking them all
# first (pytest's documented way for a plugin package) lets them import one another in
# any order without pytest warning that a part was imported too early to be rewritten.
pytest.register_assert_rewrite(*(f"pytest_lambdasim.{part}" for part in _PARTS))

pytest_plugins = [f"pytest_lambdasim.{part}" for part in _PARTS]

# The names this module had when it was one file, still importable from it.
_MOVED = {
    "SKIP_REASON": "options", "enabled": "options", "detect_enabled": "options",
    "parse_services_option": "options",
    "FIXTURES": "fixtures", "SIM_KEYS": "fixtures", "DEPLOY_KEYS": "fixtures",
    "SessionStats": "summary", "summarize": "summary",
    "DETECT_PARAM": "detect", "ONLY_WARM": "detect", "ONLY_FRESH": "detect",
    "ScenarioFile": "scenarios", "ScenarioItem": "scenarios",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(f"pytest_lambdasim.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
