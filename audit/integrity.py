"""Scheduled verification of the ledger, and what happens when it fails.

Every few minutes the ledger is verified from the last checkpoint a previous run found intact
(incremental); once a day, from the start (full). A failure:

* is an integrity incident (``crypto_integrity_incident``, an error log line, the metric);
* is recorded in the ledger itself (``LEDGER_VERIFICATION_FAILED``), which forwards it to the SIEM;
* is e-mailed to everyone the alert recipients name (admins and auditors: ``accounts``
  registers that list, since the ledger knows no user model);
* shows a banner on every page those people open until a later run finds the ledger intact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint, Verification
from audit.verify import Report, verify
from caspix.crypto import incidents
from caspix.crypto.models import IntegrityIncident

logger = logging.getLogger("caspix.security")

#: Permissions whose holders are alerted and see the banner (by name: the ledger imports no app).
ALERTED_PERMISSIONS = ("audit.view_ledger", "accounts.manage_users")

RecipientsProvider = Callable[[], Iterable[str]]
_recipient_providers: list[RecipientsProvider] = []


def add_recipients(provider: RecipientsProvider) -> None:
    """Register a source of e-mail addresses to alert (``accounts`` registers its users')."""
    if provider not in _recipient_providers:
        _recipient_providers.append(provider)


def last_result() -> Verification | None:
    return Verification.objects.filter(finished_at__isnull=False).order_by("-started_at").first()


def run(scope: str = Verification.Scope.INCREMENTAL) -> Verification:
    """Verify (incrementally from the last intact run's checkpoint, or fully) and act on the result."""
    since = None
    if scope == Verification.Scope.INCREMENTAL:
        previous = (
            Verification.objects.filter(intact=True, checkpoint_size__isnull=False).order_by("-started_at").first()
        )
        if previous is not None and previous.checkpoint_size is not None:
            since = Checkpoint.objects.filter(size=previous.checkpoint_size).first()
    result = Verification.objects.create(scope=scope)
    report = verify(since=since)
    result.finished_at = timezone.now()
    result.size = report.size
    result.checkpoint_size = report.last_checkpoint or (since.size if since is not None else None)
    result.intact = report.intact
    result.first_bad_seq = report.first_bad_seq
    result.report = json.dumps(report.as_dict())
    result.save()
    if not report.intact:
        _alert(result, report)
    return result


def _alert(result: Verification, report: Report) -> None:
    detail = str(report.damage[0])
    incident = incidents.record(
        IntegrityIncident.Kind.LEDGER, table="audit_event", row=str(report.first_bad_seq), detail=detail
    )
    with transaction.atomic():
        record(
            EventType.LEDGER_VERIFICATION_FAILED,
            actor=Actor.system("ledger verifier"),
            object_type="ledger",
            object_id=str(report.first_bad_seq),
            reason="integrity",
            after={"first_bad_seq": report.first_bad_seq, "damage": detail, "incident": incident},
        )
    recipients = sorted({address for provider in _recipient_providers for address in provider() if address})
    if recipients:
        send_mail(
            subject="[Caspix] The audit ledger failed verification",
            message=(
                f"The {result.scope} verification of the audit ledger found damage from event "
                f"{report.first_bad_seq}: {detail}.\n\nIntegrity incident {incident}. Run "
                "`python manage.py audit_verify` for the full report and keep the database as it is "
                "for investigation.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
            fail_silently=True,  # the incident, the log line and the banner stand even if mail fails
        )
    logger.error("the audit ledger failed verification", extra={"event": "ledger_verification_failed"})
