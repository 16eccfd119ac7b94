"""What the ledger recorded in a test: the pending events' canonical bodies, oldest first."""

from __future__ import annotations

import json

from audit.models import Event, PendingEvent


def events() -> list[dict[str, object]]:
    return [json.loads(bytes(body)) for body in PendingEvent.objects.order_by("id").values_list("body", flat=True)]


def names() -> list[str]:
    return [str(event["name"]) for event in events()]


def sequenced_and_pending() -> list[dict[str, object]]:
    """Every event of the ledger, sequenced ones first: for tests that run on-commit callbacks,
    the ledger's integration among them."""
    sequenced = [json.loads(bytes(body)) for body in Event.objects.order_by("seq").values_list("body", flat=True)]
    return sequenced + events()
