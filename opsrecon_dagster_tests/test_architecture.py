"""The layers, checked from the source: the domain core never imports Dagster, ``db`` never
imports ``operations``, no module imports itself back through others, and imports sit at
the top of their module (the CLI's lazy Dagster imports excepted, named below)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import opsrecon_dagster

PACKAGE = Path(opsrecon_dagster.__file__).parent
# Plain Python: models, lifecycle service, catalog, artifact families, proof rules,
# reconciliation, providers. None of it may import Dagster, directly or through another
# module of the package.
DOMAIN = (
    "opsrecon_dagster.db",
    "opsrecon_dagster.operations",
    "opsrecon_dagster.artifacts",
    "opsrecon_dagster.reconciliation",
    "opsrecon_dagster.providers",
    "opsrecon_dagster.alerts.ledger",
    "opsrecon_dagster.tenancy",
    "opsrecon_dagster.enums",
    "opsrecon_dagster.access",
    "opsrecon_dagster.entitlements",
)
# Function-level imports allowed, and why: `opsrecon --help` and the read-only commands
# stay fast because Dagster (about a second to import) loads only for commands that use it.
LAZY_IMPORTS_ALLOWED = {
    "opsrecon_dagster.cli.operations",
    "opsrecon_dagster.cli.reconcile",
    "opsrecon_dagster.cli.demo",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module of the package, or a third-party name)
    top_level: bool
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` imports the module; `from module import name` not.
            targets = [base] + [
                f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES
            ]
        else:
            continue
        for target in targets:
            yield Import(name, target, id(node) in top, node.lineno)


IMPORTS = [i for name, path in MODULES.items() for i in _imports(name, path)]


def _internal(target: str) -> str | None:
    """The package module an import names (the longest module prefix), or None."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


GRAPH: dict[str, set[str]] = {name: set() for name in MODULES}
for _imp in IMPORTS:
    _target = _internal(_imp.target)
    if _target is not None and _target != _imp.module:
        GRAPH[_imp.module].add(_target)


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_domain_core_never_imports_dagster() -> None:
    offenders = []
    for name in MODULES:
        if not _in(name, DOMAIN):
            continue
        for module in {name} | _reachable(name):
            for imp in IMPORTS:
                if imp.module == module and imp.target.split(".")[0].startswith("dagster"):
                    offenders.append(f"{name} (through {module}:{imp.line})")
    assert offenders == []


def test_db_never_imports_operations() -> None:
    offenders = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if _in(i.module, ("opsrecon_dagster.db",))
        and _in(i.target, ("opsrecon_dagster.operations",))
    ]
    assert offenders == []


def test_no_import_cycles() -> None:
    cycles = [name for name in MODULES if name in _reachable(name)]
    assert cycles == []


def test_no_package_imports_back_the_package_that_imports_it() -> None:
    """Between the top-level packages too: e.g. operations -> db, never db -> operations."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges = {(package(a), package(b)) for a, targets in GRAPH.items() for b in targets} - {
        (p, p) for p in map(package, MODULES)
    }
    two_way = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
    assert two_way == []


def test_imports_sit_at_the_top_of_their_module() -> None:
    inner = [
        f"{i.module}:{i.line} {i.target}"
        for i in IMPORTS
        if not i.top_level
        and i.module not in LAZY_IMPORTS_ALLOWED
        and not i.target.startswith("__future__")
    ]
    assert inner == []
