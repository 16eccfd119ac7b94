"""What the ledger recorded in a test: the pending events' canonical bodies, oldest first."""

from __future__ import annotations

import json
from collections import Counter

from audit.models import Event, PendingEvent


def events() -> list[dict[str, object]]:
    return [json.loads(bytes(body)) for body in PendingEvent.objects.order_by("id").values_list("body", flat=True)]


def names() -> list[str]:
    return [str(event["name"]) for event in events()]


def sequenced_and_pending() -> list[dict[str, object]]:
    """Every event of the ledger, sequenced ones first: for tests that run on-commit callbacks,
    the ledger's integration among them.

    Two queries, each its own snapshot, while a worker may be moving events: the pending ones
    are read first, so that an event moved in between is found among the sequenced ones (and
    counted once), never in neither."""
    pending = [bytes(body) for body in PendingEvent.objects.order_by("id").values_list("body", flat=True)]
    sequenced = [bytes(body) for body in Event.objects.order_by("seq").values_list("body", flat=True)]
    moved = Counter(sequenced)
    still_pending = []
    for body in pending:
        if moved[body]:
            moved[body] -= 1
        else:
            still_pending.append(body)
    return [json.loads(body) for body in sequenced + still_pending]
