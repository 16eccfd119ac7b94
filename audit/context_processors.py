"""The ledger-integrity banner, on every page an admin or auditor opens while it is damaged."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from audit.integrity import ALERTED_PERMISSIONS, last_result


def ledger_alert(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not any(user.has_perm(p) for p in ALERTED_PERMISSIONS):
        return {}
    result = last_result()
    if result is None or result.intact:
        return {}
    return {"ledger_alert": result, "ledger_alert_browsable": user.has_perm("audit.view_ledger")}
