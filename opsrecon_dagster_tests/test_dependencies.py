"""Everything the project imports is declared in ``pyproject.toml`` (the package's own
dependencies, or the dev extra for tests and benchmarks), not only present in the lock."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = {"opsrecon_dagster", "opsrecon_dagster_tests", "seeding", "reconcile_backlog", "tasks"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(group: list[str]) -> set[str]:
    return {_normalized(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0]) for spec in group}


def _imported(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - OWN - {"__future__"}


def _undeclared(modules: set[str], declared: set[str]) -> dict[str, list[str]]:
    distributions = packages_distributions()
    missing: dict[str, list[str]] = {}
    for module in sorted(modules):
        dists = distributions.get(module, [])
        if not any(_normalized(d) in declared for d in dists):
            missing[module] = dists
    return missing


def test_every_import_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _declared(project["dependencies"])
    dev = runtime | _declared(project["optional-dependencies"]["dev"])
    package = _imported(list((ROOT / "opsrecon_dagster").rglob("*.py")))
    assert _undeclared(package, runtime) == {}
    others = [*(ROOT / "opsrecon_dagster_tests").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    assert _undeclared(_imported(others), dev) == {}
