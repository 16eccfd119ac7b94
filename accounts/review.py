"""Who changed whose roles, read back from the audit ledger (the source an auditor trusts)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from audit.events import EventType
from audit.models import Event

ROLE_EVENTS = (EventType.ROLE_GRANTED, EventType.ROLE_REVOKED)


@dataclass(frozen=True)
class RoleChange:
    seq: int
    at: datetime
    user_id: int
    role: str
    change: str  # "grant" or "revoke"
    maker_id: int | None
    approver_id: int | None  # None: a direct change of a role that is not privileged
    approval_id: int | None


def role_history(user_ids: Iterable[int] | None = None) -> dict[int, list[RoleChange]]:
    """Every role grant and revocation in the ledger, per user, oldest first."""
    events = Event.objects.filter(event_type__in=[int(t) for t in ROLE_EVENTS], object_type="user")
    if user_ids is not None:
        events = events.filter(object_id__in=[str(pk) for pk in user_ids])
    history: dict[int, list[RoleChange]] = defaultdict(list)
    for seq, body in events.order_by("seq").values_list("seq", "body").iterator():
        document = json.loads(bytes(body))
        after = document.get("after") or {}
        user_id = int(document["object"]["id"])
        history[user_id].append(
            RoleChange(
                seq=seq,
                at=datetime.fromisoformat(document["time"]),
                user_id=user_id,
                role=after.get("role", ""),
                change="grant" if document["type"] == EventType.ROLE_GRANTED else "revoke",
                maker_id=after.get("maker"),
                approver_id=after.get("approver"),
                approval_id=after.get("approval"),
            )
        )
    return dict(history)
