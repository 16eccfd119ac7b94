"""Every page, form and report reaches rows through ``restrict(user, action)`` (STYLE.md principle 4).

The modules that serve people (views, administration pages, forms, reports) may not start a
query from a model's manager anywhere but ``restrict``, nor hand a bare model class to
``get_object_or_404``. Actions and the ledger's internals are not people-facing and are not
checked here; they are reached only through these modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_architecture import ROOT

PEOPLE_FACING = (
    *("views.py", "administration.py", "forms.py", "api.py"),
    *("access_review.py", "access_review_views.py", "dashboard.py"),
    *("export_views.py", "export_forms.py", "packs.py"),
)
ALLOWED = {"restrict", "none"}


def people_facing_modules() -> list[Path]:
    return sorted(
        path
        for package in ("accounts", "cases", "audit", "reporting")
        for path in (ROOT / package).rglob("*.py")
        if path.name in PEOPLE_FACING
    )


def doors_left_open(path: Path) -> list[str]:
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "objects"
            and node.attr not in ALLOWED
        ):
            found.append(f"{name}:{node.lineno} .objects.{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "get_object_or_404"
            and node.args
            and isinstance(node.args[0], ast.Name)
        ):
            found.append(f"{name}:{node.lineno} get_object_or_404({node.args[0].id}, ...)")
    return found


def test_it_finds_the_people_facing_modules() -> None:
    names = {str(path.relative_to(ROOT)) for path in people_facing_modules()}
    assert {
        "accounts/administration.py",
        "cases/views.py",
        "audit/views.py",
        "reporting/access_review.py",
        "reporting/dashboard.py",
        "reporting/packs.py",
    } <= names


@pytest.mark.parametrize("path", people_facing_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_it_starts_every_query_at_restrict(path: Path) -> None:
    assert doors_left_open(path) == []


def test_it_would_see_a_door_left_open(tmp_path: Path) -> None:
    sample = tmp_path / "views.py"
    sample.write_text("def v(r):\n    Case.objects.filter(pk=1)\n    get_object_or_404(Case, pk=1)\n")
    assert len(doors_left_open(sample)) == 2
