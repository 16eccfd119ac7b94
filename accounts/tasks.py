"""Housekeeping tasks for accounts, run by Celery beat."""

from __future__ import annotations

from celery import shared_task
from django.contrib.sessions.models import Session
from django.db import OperationalError
from django.utils import timezone


# A database outage (OperationalError) is retried with jittered back-off; anything else is a bug.
@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, retry_jitter=True, max_retries=5)
def clear_expired_sessions() -> int:
    """Delete expired sessions (idempotent: a second run finds nothing to delete)."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


@shared_task(ignore_result=True)
def expire_approvals() -> int:
    """Mark pending four-eyes requests past their expiry as expired (each a ledger event)."""
    from accounts.approvals import expire_overdue

    return expire_overdue()
