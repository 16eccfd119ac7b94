"""Housekeeping tasks for accounts, run by Celery beat."""

from __future__ import annotations

from datetime import timedelta

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


# How long the records of sign-in are kept once they have served. Ended sessions stay for the
# access reviews (13 months); the rest only as long as they can matter.
KEEP_ENDED_SESSIONS = timedelta(days=400)
KEEP_SAML_REQUESTS = timedelta(days=1)  # a request is answerable for ten minutes
KEEP_SEEN_ASSERTIONS = timedelta(days=1)  # past the assertion's own expiry: replay is impossible then
KEEP_STUFFING_ALARMS = timedelta(days=90)
KEEP_FAILED_ATTEMPTS = timedelta(days=2)  # far past the longest cool-off (an hour)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, retry_jitter=True, max_retries=5)
def purge_sign_in_records() -> dict[str, int]:
    """Delete what sign-in keeps once it can no longer matter (idempotent: a rerun finds nothing).

    The ledger keeps every sign-in, lockout and ended session for good; these tables are working
    state, not evidence.
    """
    from axes.models import AccessAttempt

    from accounts.models import SamlRequest, SeenAssertion, StuffingAlarm, UserSession

    now = timezone.now()
    return {
        "sessions": UserSession.objects.filter(ended_at__lt=now - KEEP_ENDED_SESSIONS).delete()[0],
        "saml_requests": SamlRequest.objects.filter(created_at__lt=now - KEEP_SAML_REQUESTS).delete()[0],
        "assertions": SeenAssertion.objects.filter(
            seen_at__lt=now - KEEP_SEEN_ASSERTIONS, not_on_or_after__lt=now - KEEP_SEEN_ASSERTIONS
        ).delete()[0],
        "stuffing_alarms": StuffingAlarm.objects.filter(raised_at__lt=now - KEEP_STUFFING_ALARMS).delete()[0],
        "failed_attempts": AccessAttempt.objects.filter(attempt_time__lt=now - KEEP_FAILED_ATTEMPTS).delete()[0],
    }
