"""What the ledger recorded in a test: the pending events' canonical bodies, oldest first."""

from __future__ import annotations

import json

from audit.models import PendingEvent


def events() -> list[dict[str, object]]:
    return [json.loads(bytes(body)) for body in PendingEvent.objects.order_by("id").values_list("body", flat=True)]


def names() -> list[str]:
    return [str(event["name"]) for event in events()]
