"""Outbound business events: written with the change, relayed to webhooks in order, signed.

:func:`emit` adds an event in the acting transaction (the transactional outbox): it exists if
and only if the change committed. :func:`relay` first gives the committed events their sequence
numbers (:func:`release`), then delivers, per webhook, the events after its cursor in batches of
``BATCH``, signed as the intake API verifies (RFC 9421 ``hmac-sha256`` over
method, path and ``Content-Digest``, key id = the webhook's id), and moves the cursor only after
a 2xx: at least once, in order. A failed delivery waits 2ⁿ seconds (capped at an hour, with
jitter) before the next attempt. :func:`replay` moves a webhook's cursor back, for a receiver
that lost what it received.

Event types (the families of seed 000): ``alert.ingested``, ``case.created`` and
``case.status-changed`` (an analyst takes a case; the workspace's workflow adds the rest).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import random
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cases.models import OutboxEvent, Webhook
from cases.signatures import sign_request
from caspix.bulk import copy_in

logger = logging.getLogger(__name__)

EVENT_TYPES = ("alert.ingested", "case.created", "case.status-changed")
BATCH = 100
TIMEOUT = 10
MAX_BACKOFF = 3600
RELEASE_LOCK = int.from_bytes(hashlib.sha256(b"caspix-outbox-release").digest()[:8], "big", signed=True)


def status_changed(case: Any, before: object) -> None:
    """``case.status-changed`` for a case whose status moved from ``before`` (nothing if it stayed)."""
    if case.status != before:
        emit(
            "case.status-changed",
            {"case": case.reference, "queue": case.queue.slug, "from": before, "to": case.status},
        )


def emit(event_type: str, data: dict[str, Any]) -> None:
    emit_many([(event_type, data)])


def emit_many(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Add events in the acting transaction; ask for a relay once it commits."""
    if not events:
        return
    now = timezone.now()
    copy_in(OutboxEvent, [OutboxEvent(event_type=kind, data=data, occurred_at=now) for kind, data in events])
    transaction.on_commit(_schedule, robust=True)


def _schedule() -> None:
    if settings.OUTBOX_RELAY == "inline":
        relay()
        return
    from cases.tasks import relay_outbox

    relay_outbox.delay()


def release() -> int:
    """Give the committed events that have none the next sequence numbers, in id order; how many.

    Ids are drawn from a database sequence as events are written, so a transaction committing
    after another can hold lower ids than events already delivered, and a cursor over ids would
    skip them. Sequence numbers are handed out here instead, one release at a time, to events
    that have committed: they only grow, and every event gets one.
    """
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # elsewhere the database has a single writer
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RELEASE_LOCK])
        cursor.execute(
            f"UPDATE {table} SET sequence = top.last + pending.position"  # noqa: S608 (our own table)
            f" FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS position FROM {table}"
            f" WHERE sequence IS NULL) AS pending, (SELECT COALESCE(MAX(sequence), 0) AS last FROM {table}) AS top"
            f" WHERE {table}.id = pending.id"
        )
        return int(cursor.rowcount)


def relay(now: datetime.datetime | None = None) -> int:
    """Deliver what each due webhook has not acknowledged; how many events were delivered."""
    due = list(
        Webhook.objects.filter(is_active=True, next_attempt_at__lte=now or timezone.now()).values_list("pk", flat=True)
    )
    if not due:
        return 0  # what is not released yet will be when a webhook is due
    release()
    delivered = 0
    for webhook_id in due:
        delivered += _relay_one(webhook_id)
    return delivered


def _relay_one(webhook_id: Any) -> int:
    """One webhook, locked for the delivery (another relay skips it), batch after batch."""
    delivered = 0
    while True:
        with transaction.atomic():
            webhook = Webhook.objects.select_for_update(skip_locked=True).filter(pk=webhook_id).first()
            if webhook is None or not webhook.is_active:
                return delivered
            events = OutboxEvent.objects.filter(sequence__gt=webhook.delivered_through)
            if webhook.event_types:
                events = events.filter(event_type__in=webhook.event_types)
            batch = list(events.order_by("sequence")[:BATCH])
            if not batch:
                return delivered
            if not _deliver(webhook, batch):
                webhook.failures += 1
                wait = min(MAX_BACKOFF, 2**webhook.failures) * random.uniform(0.5, 1.0)  # noqa: S311 (jitter)
                webhook.next_attempt_at = timezone.now() + datetime.timedelta(seconds=wait)
                webhook.save(update_fields=["failures", "next_attempt_at"])
                return delivered
            webhook.delivered_through = batch[-1].sequence or 0
            webhook.failures = 0
            webhook.save(update_fields=["delivered_through", "failures"])
            delivered += len(batch)


def body_of(events: list[OutboxEvent]) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "id": e.pk,
                    "sequence": e.sequence,
                    "type": e.event_type,
                    "occurred_at": e.occurred_at.isoformat(),
                    "data": e.data,
                }
                for e in events
            ]
        },
        separators=(",", ":"),
    ).encode()


def _deliver(webhook: Webhook, events: list[OutboxEvent]) -> bool:
    body = body_of(events)
    path = urlsplit(webhook.url).path or "/"
    headers = {
        "Content-Type": "application/json",
        **sign_request("POST", path, body, str(webhook.pk), webhook.secret_bytes()),
    }
    request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")  # noqa: S310 (http(s) only)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (as above)
            ok = bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError, ValueError) as error:
        logger.warning("webhook delivery failed: %s", type(error).__name__, extra={"webhook": str(webhook.pk)})
        return False
    if not ok:
        logger.warning("webhook refused the delivery", extra={"webhook": str(webhook.pk)})
    return ok


def replay(webhook: Webhook, after: int) -> None:
    """Deliver again every event after sequence number ``after`` (an action: see
    ``cases.actions.replay_webhook``)."""
    Webhook.objects.filter(pk=webhook.pk).update(delivered_through=after, failures=0, next_attempt_at=timezone.now())
