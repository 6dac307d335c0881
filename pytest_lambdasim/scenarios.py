"""YAML scenarios collected as tests: the files matching the ``lambda_sim_scenarios``
globs that have a scenario's shape, each one test run by lambdasim's scenario interpreter.

A file has a scenario's shape when its top level is a mapping with a ``steps`` key (or that
key misspelt only by case or a missing ``s``: ``step``, ``Steps``, so that such a scenario
fails with its line rather than vanishing). Other YAML files that match the globs, such as
``scenarios/seed-users.yaml`` holding data, are not collected; ``-v`` lists them. A file
that does not parse as YAML (or cannot be read) is collected and fails with its line: it
cannot be told apart from a broken scenario.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lambdasim.options import SKIP_REASON, enabled, simulator_settings
from pytest_lambdasim.summary import TEST_TRACE

if TYPE_CHECKING:
    from lambdasim import Simulator


def _glob_match(path: str, pattern: str) -> bool:
    """Whole-path glob match: ``*`` and ``?`` within a folder, ``**`` across folders."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    config = parent.config
    root = config.rootpath
    try:
        rel = file_path.relative_to(root).as_posix()
    except ValueError:
        return None
    patterns: list[str] = config.getini("lambda_sim_scenarios")
    # Glob rules: "*" stays within one folder, "**" crosses folders.
    if not any(_glob_match(rel, p) for p in patterns):
        return None
    not_one = _not_a_scenario(file_path, rel)
    if not_one is not None:
        config.stash.setdefault(NOT_SCENARIOS, []).append(f"{rel}: {not_one}")
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


# The files that matched the globs but are not scenarios, with why, for the -v note.
NOT_SCENARIOS = pytest.StashKey[list[str]]()
_STEPS_KEYS = frozenset({"steps", "step"})  # compared case-insensitively


def _any_tag(suffix: str, value: Any, mark: Any) -> Any:
    return value


def _not_a_scenario(path: Path, display: str) -> str | None:
    """Why ``path`` does not have a scenario's shape, or None when it does (see the module's docstring)."""
    from lambdasim._source import SourceError, load_yaml

    try:
        text = path.read_text(encoding="utf-8")
        # Local tags are accepted here, so that a template with !Ref (say) is not taken for a broken scenario.
        data = load_yaml(text, display, tags=_any_tag)
    except (OSError, UnicodeDecodeError, SourceError):
        return None  # the scenario runner reports it, with the line where there is one
    if isinstance(data, dict):
        if any(isinstance(key, str) and key.casefold() in _STEPS_KEYS for key in data):
            return None
        return "a mapping without a steps: key"
    if data is None:
        return "empty"
    return f"a {'list' if isinstance(data, list) else 'single value'} at the top, not a mapping with steps:"


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    skipped = config.stash.get(NOT_SCENARIOS, [])
    if not skipped or config.getoption("verbose") < 1:
        return []
    return [f"lambda-sim: not collected, not scenarios (a scenario is a YAML mapping with steps:): {note}"
            for note in skipped]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if enabled(config):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if isinstance(item, ScenarioItem):
            item.add_marker(skip)


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    """One YAML scenario, run by lambdasim's scenario interpreter."""

    trace: list[dict[str, Any]] | None = None

    def runtest(self) -> None:
        from lambdasim._scenario import ScenarioFailure, run_file

        display = self.path.relative_to(self.config.rootpath).as_posix()
        try:
            result = run_file(self.path, simulator_factory=self._factory, display=display)
        except ScenarioFailure as failure:
            if failure.result is not None:
                self.trace = failure.result.trace
            raise
        self.trace = result.trace

    def _factory(self, **settings: Any) -> Simulator:
        from lambdasim import Simulator

        sim = Simulator(**{**simulator_settings(self.config), **settings, "track_tmp": True})
        self._sims.append(sim)
        return sim

    def setup(self) -> None:
        self._sims: list[Simulator] = []

    def teardown(self) -> None:
        if self._sims and self.trace is None:
            self.trace = [e.to_dict() for sim in self._sims for e in sim.trace]
        if self.trace is not None:
            self.stash[TEST_TRACE] = self.trace

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from lambdasim._errors import ConfigError

        if isinstance(excinfo.value, (AssertionError, ConfigError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.name}"
