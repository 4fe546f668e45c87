"""The package's layout holds: imports point down the layers, no circles, the mock stands apart."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.paths import ROOT

PACKAGE = ROOT / "proxy"
# Each layer may import only from layers before it (and from itself).
LAYERS = (
    "core",
    "config",
    "observability",
    "cluster",
    "access",
    "sources",
    "connect",
    "availability",
    "web",
    "run",
)
# What core (values, rules, ports) may not touch: HTTP, msal, anything that does I/O for us.
CORE_FORBIDDEN = ("aiohttp", "msal", "requests", "prometheus_client", "cryptography", "proxy.mock")
# The only places that may start the mock: the demo, and the mock-graph command.
MOCK_USERS = {"proxy.run.demo": None, "proxy.run.cli": "_mock_graph"}

Graph = Mapping[str, set[str]]


def module_name(path: Path) -> str:
    """The dotted name of a module file of the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> Iterator[tuple[str, str | None]]:
    """(imported module, enclosing function or None) for every import in a file, any depth."""
    tree = ast.parse(path.read_text())

    def visit(node: ast.AST, function: str | None) -> Iterator[tuple[str, str | None]]:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else None
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, function
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    # "from proxy.web import probes" imports the module proxy.web.probes.
                    candidate = f"{child.module}.{alias.name}"
                    yield (candidate if candidate in known else child.module), function
            yield from visit(child, function or inner)

    yield from visit(tree, None)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    found = modules()
    known = set(found)
    return {
        name: {target for target, _ in imports(path, known) if target in known}
        for name, path in found.items()
    }


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def layer(module: str) -> str | None:
    """The layer a module of the package belongs to (None: the package root or the mock)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_cycle_finder_finds_cycles() -> None:
    """The checker itself: a circle of three and a self-import are found, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle() -> None:
    """No module of the package reaches itself through its imports, mock included."""
    assert cycles(import_graph()) == []


def test_imports_point_down_the_layers() -> None:
    """A layer imports only from layers below it: core, config, observability, access, …, run."""
    wrong = []
    for module, targets in import_graph().items():
        here = layer(module)
        for target in targets:
            there = layer(target)
            if here and there and LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_core_does_no_io() -> None:
    """proxy.core imports nothing that speaks HTTP, runs msal or encrypts: values and rules only."""
    found = modules()
    known = set(found)
    wrong = [
        f"{name} -> {target}"
        for name, path in found.items()
        if layer(name) == "core"
        for target, _ in imports(path, known)
        if target.startswith(CORE_FORBIDDEN)
    ]
    assert wrong == []


def test_the_mock_imports_nothing_else_of_the_package() -> None:
    """The mock is a separate program that happens to ship with the proxy."""
    wrong = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module.startswith("proxy.mock")
        for target in targets
        if not target.startswith("proxy.mock")
    ]
    assert wrong == []


def test_only_the_demo_and_the_mock_command_start_the_mock() -> None:
    """Outside the mock, only the demo and the mock-graph command import it (the latter lazily)."""
    found = modules()
    known = set(found)
    wrong = []
    for name, path in found.items():
        if name.startswith("proxy.mock"):
            continue
        for target, function in imports(path, known):
            if not target.startswith("proxy.mock"):
                continue
            if name not in MOCK_USERS or MOCK_USERS[name] not in (None, function):
                wrong.append(f"{name} ({function or 'module level'}) -> {target}")
    assert wrong == []


def test_no_module_name_repeats() -> None:
    """Each module's own name says its job once: no two modules share a file name."""
    names: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            names.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
