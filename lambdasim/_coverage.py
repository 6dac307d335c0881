"""Coverage of the function's code run inside instances, added to the test process's coverage.py data."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from lambdasim._model import FunctionConfig


class CoverageSink:
    """Handler lines run inside instances, for the coverage.py run measuring this process.

    When coverage.py is measuring the test process (pytest-cov, ``coverage run``),
    instances measure the function's code too; their data arrives with each reply,
    under /var/task and /opt, and is added at close(), with the host's paths, to the
    data of the Coverage measuring this process. Its data then holds the lines the
    instances ran, as if this process had run them: its save() does not warn "No data
    was collected" when only instances ran the measured code (a warning that
    ``-W error::coverage.exceptions.CoverageWarning`` turns into pytest-cov's
    INTERNALERROR), the lines fall in the context current at close() (``test|teardown``
    with ``--cov-context=test``), and no data file is left for a ``combine`` to find.
    """

    def __init__(self) -> None:
        self.settings: dict[str, Any] | None = None
        self._host: Any = None
        if "coverage" in sys.modules:
            import coverage

            current = coverage.Coverage.current()
            if current is not None:
                self._host = current
                self.settings = {"branch": bool(current.config.branch)}
        self._lines: dict[str, set[int]] = {}
        self._arcs: dict[str, set[tuple[int, int]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _host_path(config: FunctionConfig, path: str) -> str | None:
        if path.startswith("/var/task/"):
            return os.path.join(config.code_dir, path[len("/var/task/"):])
        for layer in reversed(config.layers):  # the last layer wins, as in /opt
            candidate = os.path.join(layer, path[len("/opt/"):])
            if path.startswith("/opt/") and os.path.exists(candidate):
                return candidate
        return None

    def add(self, config: FunctionConfig, measured: dict[str, Any] | None) -> None:
        if not measured:
            return
        with self._lock:
            for path, lines in measured.get("lines", {}).items():
                host = self._host_path(config, path)
                if host is not None:
                    self._lines.setdefault(host, set()).update(lines)
            for path, arcs in measured.get("arcs", {}).items():
                host = self._host_path(config, path)
                if host is not None:
                    self._arcs.setdefault(host, set()).update(map(tuple, arcs))

    def save(self) -> None:
        if self._host is None or not (self._lines or self._arcs):
            return
        from coverage import CoverageData
        from coverage.files import abs_file, relative_filename

        # The paths as the host's own collector records them ([run] relative_files).
        mapped = relative_filename if self._host.config.relative_files else abs_file
        lines = {mapped(path): set(lines) for path, lines in self._lines.items()}
        arcs = {mapped(path): set(arcs) for path, arcs in self._arcs.items()}
        # The Coverage's own data: public API has no way to reach it that does not first
        # flush it and warn about it (get_data()), so its attribute is read where it exists.
        data = getattr(self._host, "_data", None)
        if not isinstance(data, CoverageData):
            # Another coverage.py: a parallel data file, which ``coverage combine`` (and pytest-cov) merges.
            data = CoverageData(basename=self._host.config.data_file, suffix=True)
        if arcs:
            data.add_arcs(arcs)
        else:
            data.add_lines(lines)
        if data is not getattr(self._host, "_data", None):
            data.write()
        self._lines.clear()
        self._arcs.clear()
