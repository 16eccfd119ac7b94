"""Who is alerted when the audit ledger fails verification: active admins and auditors."""

from __future__ import annotations

from accounts.models import User
from audit.integrity import ALERTED_PERMISSIONS


def security_alert_recipients() -> list[str]:
    users = User.objects.filter(is_active=True, roles__grants__permission__in=ALERTED_PERMISSIONS).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))
