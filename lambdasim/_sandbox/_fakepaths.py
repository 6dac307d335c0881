"""Inside the fakefs sandbox: imports from ``/var/task`` and ``/opt``, whose files are on the host.

A path hook finds modules in the host directories behind those Lambda paths (the code, the
layers) and loads them from there, while ``__file__`` and tracebacks show the Lambda path.
pyfakefs leaves this module alone (``_fakeroot.SKIP_NAMES``): it works on host paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
    SourcelessFileLoader,
)
from importlib.util import spec_from_file_location
from typing import Any

from lambdasim._runtime import host_tmp_path


class _MappedSourceLoader(SourceFileLoader):
    """Loads a module from a host file while ``__file__`` and tracebacks show its Lambda path."""

    def __init__(self, fullname: str, path: str, real: Callable[[str], str]) -> None:
        super().__init__(fullname, path)
        self._real = real

    def get_data(self, path: str) -> bytes:
        return super().get_data(self._real(path))

    def path_stats(self, path: str) -> dict[str, Any]:
        return dict(super().path_stats(self._real(path)))

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:
        """Bytecode is not written: on Lambda the code is read-only."""


class _MappedSourcelessLoader(SourcelessFileLoader):
    def __init__(self, fullname: str, path: str, real: Callable[[str], str]) -> None:
        super().__init__(fullname, path)
        self._real = real

    def get_data(self, path: str) -> bytes:
        return super().get_data(self._real(path))


_LOADERS = [(ExtensionFileLoader, EXTENSION_SUFFIXES), (SourceFileLoader, SOURCE_SUFFIXES),
            (SourcelessFileLoader, BYTECODE_SUFFIXES)]


class PathMap:
    """Lambda paths that show host directories: ``/var/task`` -> code_dir, ``/opt`` -> layers, ..."""

    def __init__(self) -> None:
        self.roots: dict[str, list[str]] = {}  # fake prefix -> host directories, highest precedence first

    def add(self, fake: str, real: list[str]) -> None:
        self.roots[fake.rstrip("/") or "/"] = real

    def candidates(self, fake: str) -> list[tuple[str, str]]:
        """(host directory, fake prefix) pairs that ``fake`` maps to."""
        for prefix, reals in self.roots.items():
            if fake == prefix or fake.startswith(prefix + "/"):
                rest = fake[len(prefix):]
                return [(real + rest, prefix) for real in reals]
        return []

    def real(self, fake: str) -> str:
        for real, _prefix in self.candidates(fake):
            if os.path.lexists(real):
                return real
        return fake

    def read_through(self, code_dir: str, binds: list[str]) -> dict[str, str]:
        """Lambda prefix -> host directory, for the view's directories that show one host directory each."""
        roots = {host_tmp_path(real): real for real in binds if real != "/etc"}
        roots.update((fake, reals[0]) for fake, reals in self.roots.items() if len(reals) == 1)
        return roots

    def path_hook(self, entry: str) -> _MappedFinder:
        if not self.candidates(entry):
            raise ImportError("not a Lambda path of lambdasim's fakefs sandbox")
        return _MappedFinder(entry, self)


class _MappedFinder:
    """A sys.path entry such as ``/var/task``: finds modules in the host directories behind it."""

    def __init__(self, entry: str, paths: PathMap) -> None:
        self.entry = entry
        self.paths = paths
        self.finders = [(real, FileFinder(real, *_LOADERS))
                        for real, _ in paths.candidates(entry) if os.path.isdir(real)]

    def invalidate_caches(self) -> None:
        for _, finder in self.finders:
            finder.invalidate_caches()

    def find_spec(self, fullname: str, target: Any = None) -> ModuleSpec | None:
        namespace = False
        for real_dir, finder in self.finders:
            spec = finder.find_spec(fullname, target)
            if spec is None:
                continue
            if spec.loader is None:  # a namespace portion: a regular package elsewhere wins
                namespace = True
                continue
            origin = spec.origin or ""
            fake = self.entry + origin[len(real_dir):]
            package = spec.submodule_search_locations is not None
            locations = [os.path.dirname(fake)] if package else None
            if isinstance(spec.loader, SourceFileLoader):
                loader: Any = _MappedSourceLoader(fullname, fake, self.paths.real)
            elif isinstance(spec.loader, SourcelessFileLoader):
                loader = _MappedSourcelessLoader(fullname, fake, self.paths.real)
            else:
                return spec  # a C extension is loaded from its host path, and says so in __file__
            return spec_from_file_location(fullname, fake, loader=loader, submodule_search_locations=locations)
        if namespace:
            spec = ModuleSpec(fullname, None)
            spec.submodule_search_locations = [os.path.join(self.entry, fullname.rpartition(".")[2])]
            return spec
        return None
