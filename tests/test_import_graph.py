"""The package's import graph: no cycles (lazy and type-checking imports included), and no
private module or private name imported from another package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import llmrouter_integrations

ROOT = Path(llmrouter_integrations.__file__).parent
PACKAGE = "llmrouter_integrations"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([PACKAGE, *parts])] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module of this package, line) for every import statement in `name`."""
    path = MODULES[name]
    base = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                source = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import submodule` imports the submodule too
            targets = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                yield target, node.lineno
                # importing a.b.c runs a/__init__ and a/b/__init__ first (not the root's,
                # which every module of the package is already inside)
                parts = target.split(".")
                for end in range(2, len(parts)):
                    parent = ".".join(parts[:end])
                    if parent != name and parent in MODULES and not name.startswith(parent + "."):
                        yield parent, node.lineno


GRAPH = {name: sorted({target for target, _ in _imports(name)}) for name in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
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
            if len(component) > 1:
                found.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    return found


def test_the_package_has_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_checker_sees_a_cycle_when_there_is_one() -> None:
    GRAPH["llmrouter_integrations.types"] = [
        *GRAPH["llmrouter_integrations.types"],
        PACKAGE + ".router",
    ]
    try:
        assert any(PACKAGE + ".types" in cycle for cycle in _cycles())
    finally:
        GRAPH["llmrouter_integrations.types"].remove(PACKAGE + ".router")


def _subpackage(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or _is_package(name) else PACKAGE


def test_private_modules_stay_in_their_package() -> None:
    crossings = []
    for name in MODULES:
        for target, line in _imports(name):
            private = target.rpartition(".")[2].startswith("_")
            top_level = target.count(".") == 1  # _inputs, _assemble: shared by the whole package
            if private and not top_level and _subpackage(target) != _subpackage(name):
                crossings.append(f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}")
    assert crossings == []


def test_private_names_stay_in_their_package() -> None:
    crossings = []
    for name, path in MODULES.items():
        base = name if _is_package(name) else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            anchor = base.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            source = ".".join(anchor + ([node.module] if node.module else []))
            if source in MODULES and _subpackage(source) != _subpackage(name):
                crossings += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {source}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert crossings == []


# A module past this size holds more than one job: split it along a real seam (DESIGN 2).
MAX_LINES = 500


def test_no_module_is_past_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text("utf-8").splitlines())
        for path in MODULES.values()
    }
    too_big = {path: lines for path, lines in sizes.items() if lines > MAX_LINES}
    assert too_big == {}, "split these along a real seam"
