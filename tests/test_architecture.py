"""The shape of the code: no import circles between lambdasim's modules, and no module too long to read.

Imports are read with ``ast``, so nothing is imported to check them. An import inside a
function counts (it is still a dependency; a lazy import only hides a circle); one under
``if TYPE_CHECKING:`` does not (it never runs). ``from a.b import c`` depends on ``a.b``, and
on ``a.b.c`` instead when that is a module, never on ``a``'s ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lambdasim", "pytest_lambdasim")
MAX_LINES = 1000


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        folder = ROOT / package
        for path in sorted(folder.rglob("*.py")):
            if "examples" in path.relative_to(ROOT).parts:
                continue  # function code for users, not part of the library's import graph
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports anywhere but under ``if TYPE_CHECKING:``."""
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # ``from pkg import mod`` depends on pkg.mod; ``from pkg import name`` on pkg itself.
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in known else source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {t for t in targets if t in known and t != module}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known)
            for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_walker_sees_imports_and_circles() -> None:
    """The checker itself: lazy, relative and from-imports count; TYPE_CHECKING ones do not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from .c import thing\n"
        "from p import a_name\n"
        "if TYPE_CHECKING:\n"
        "    from p import d\n"
        "def later():\n"
        "    import p.e\n"
    )
    known = {"p", "p.a", "p.b", "p.c", "p.d", "p.e"}
    assert _imports(ast.parse(source), "p.a", False, known) == {"p", "p.b", "p.c", "p.e"}
    assert _imports(ast.parse("from . import b\n"), "p.a", False, known) == {"p.b"}
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_the_walker_finds_lambdasims_modules() -> None:
    graph = _graph()
    assert "lambdasim._simulator" in graph and "lambdasim._source" in graph
    assert "lambdasim._model" in graph["lambdasim._simulator"]


def test_no_import_circles() -> None:
    circles = _circles(_graph())
    assert not circles, "import circles (break each by moving what both need to a module both can import): " + \
        "; ".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_is_too_long(name: str) -> None:
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concern (at most {MAX_LINES})"
