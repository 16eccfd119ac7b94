"""The cases app's background work: relaying the outbox to the webhooks, forgetting old idempotent answers."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def relay_outbox() -> int:
    """Deliver the outbound events each due webhook has not acknowledged (idempotent: a cursor
    per webhook, moved only after a 2xx; a webhook being delivered to is skipped)."""
    from cases import outbox

    return outbox.relay()


@shared_task(ignore_result=True)
def purge_idempotency_records() -> int:
    """Forget the idempotent answers older than ``INTAKE["IDEMPOTENCY_HOURS"]`` (daily)."""
    from cases.api import idempotency

    return idempotency.purge()
