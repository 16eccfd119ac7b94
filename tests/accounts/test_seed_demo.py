"""Demo users exist only under the embedded default, one per role, and survive a second run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.models import User


def test_it_refuses_outside_the_demo(db: None) -> None:
    with pytest.raises(CommandError, match="seed_demo runs only when CASPIX_ENV=demo"):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_it_creates_one_user_per_role_and_keeps_them(db: None, tmp_path: Path) -> None:
    users_file = tmp_path / "demo-users.json"
    with override_settings(DEMO=True, DEMO_USERS_FILE=users_file):
        call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
        first = json.loads(users_file.read_text(encoding="utf-8"))
        call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
        second = json.loads(users_file.read_text(encoding="utf-8"))
    assert first == second
    assert [entry["username"] for entry in first] == ["admin", "analyst", "lead", "manager", "auditor"]
    assert users_file.stat().st_mode & 0o777 == 0o600
    for entry in first:
        user = User.objects.get(username=entry["username"])
        assert user.check_password(entry["password"])
        assert [r.slug for r in user.roles.all()] == [entry["username"]]
