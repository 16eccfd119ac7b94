"""Demo users exist only under the embedded default, one per role, and survive a second run."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_otp.oath import TOTP

from accounts.models import TOTPDevice, User


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


def test_it_enrols_an_authenticator_whose_secret_it_writes_down(db: None, tmp_path: Path) -> None:
    users_file = tmp_path / "demo-users.json"
    with override_settings(DEMO=True, DEMO_USERS_FILE=users_file):
        call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
        call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115 - the secret survives a rerun
    for entry in json.loads(users_file.read_text(encoding="utf-8")):
        device = TOTPDevice.objects.get(user__username=entry["username"], confirmed=True)
        key = base64.b32decode(entry["totp_secret"] + "=" * (-len(entry["totp_secret"]) % 8))
        assert key == device.bin_key
        totp = TOTP(key, device.step, device.t0, device.digits)
        totp.time = time.time()
        assert device.verify_token(f"{totp.token():06d}")
