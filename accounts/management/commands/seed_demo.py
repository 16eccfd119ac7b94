"""Create one demo user per shipped role, each with an authenticator enrolled, and the card-fraud
team of the analyst and the lead; refused outside the embedded default.

The demo users' passwords and TOTP secrets go to ``var/demo-users.json`` (mode 0600) so that a
person trying the demo can add the secret to an authenticator app, or compute codes with
``oathtool --totp -b SECRET``.

Idempotent: a second run keeps the users and passwords it finds in ``var/demo-users.json``.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Membership, Role, RoleAssignment, Team, TOTPDevice, User

DEMO_ROLES = ("admin", "analyst", "lead", "manager", "auditor")
DEMO_TEAM_MEMBERS = ("analyst", "lead")


class Command(BaseCommand):
    help = "Create the demo users (one per role) and write their credentials to var/demo-users.json."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO:
            raise CommandError("seed_demo runs only when CASPIX_ENV=demo: it creates accounts with known passwords.")
        known = self._read_known()
        credentials = []
        with transaction.atomic():
            for slug in DEMO_ROLES:
                role = Role.objects.get(slug=slug)
                password = known.get(slug) or secrets.token_urlsafe(12)
                user, created = User.objects.get_or_create(username=slug, defaults={"first_name": role.name})
                if created or not user.check_password(password):
                    user.set_password(password)
                    user.save(update_fields=["password"])
                RoleAssignment.objects.get_or_create(user=user, role=role)
                device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
                if device is None:
                    device = TOTPDevice.objects.create(user=user, name="Demo authenticator", confirmed=True)
                secret = device.base32_key()
                if slug in DEMO_TEAM_MEMBERS:
                    team, _ = Team.objects.get_or_create(slug="card-fraud", defaults={"name": "Card fraud"})
                    Membership.objects.get_or_create(team=team, user=user)
                credentials.append({"username": slug, "password": password, "role": role.name, "totp_secret": secret})
        self._write(credentials)
        width = max(len(c["username"]) for c in credentials)
        self.stdout.write("Demo users (also in var/demo-users.json), with their authenticator secrets:")
        for c in credentials:
            self.stdout.write(f"  {c['username']:<{width}}  {c['password']}  {c['totp_secret']}  ({c['role']})")

    def _read_known(self) -> dict[str, str]:
        try:
            entries = json.loads(settings.DEMO_USERS_FILE.read_text(encoding="utf-8"))
            return {entry["username"]: entry["password"] for entry in entries}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _write(self, credentials: list[dict[str, str]]) -> None:
        path = settings.DEMO_USERS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(credentials, handle, indent=2)
        tmp.replace(path)
