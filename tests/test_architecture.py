"""Dependencies point one way, floor by floor (STYLE.md, "The house")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ["caspix", "audit", "accounts", "cases", "reporting"]


def imported_top_levels(package: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            found.update((str(path.relative_to(ROOT)), name.split(".")[0]) for name in names)
    return found


@pytest.mark.parametrize("floor", FLOORS)
def test_it_imports_only_from_the_floors_below(floor: str) -> None:
    above = set(FLOORS[FLOORS.index(floor) + 1 :])
    offending = sorted(f"{path} imports {name}" for path, name in imported_top_levels(floor) if name in above)
    assert offending == []


def test_it_keeps_the_root_urlconf_free_of_domain_imports() -> None:
    imports = {name for _, name in imported_top_levels("caspix")}
    assert imports.isdisjoint({"audit", "accounts", "cases", "reporting"})
