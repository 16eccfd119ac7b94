"""The auditors' integrity status page: verifications, checkpoints, the copies of the ledger and
the integrity incidents, each as the ledger's own records have them."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.events import EventType
from audit.ledger import Actor, integrate, record, seal
from audit.models import DeliveryCursor, Verification
from caspix.crypto.models import IntegrityIncident
from tests.conftest import client_for
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def page() -> str:
    response = client_for(make_user("erin", ("auditor",))).get(reverse("audit:home"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_fresh_ledger_says_nothing_has_run_yet() -> None:
    IntegrityIncident.objects.all().delete()  # other tests' incidents are committed on their own connection
    shown = page()
    assert "Not verified yet" in shown
    assert "No verification has finished yet." in shown
    assert "None recorded." in shown
    assert "No SIEM or segment store is configured" in shown


def test_it_shows_the_runs_the_checkpoint_the_copies_and_the_incidents() -> None:
    from django.db import transaction

    for n in range(5):
        with transaction.atomic():
            record(EventType.LEDGER_VERIFIED, actor=Actor.system("test"), object_id=n)
    integrate()
    seal(force=True)
    now = timezone.now()
    Verification.objects.create(
        scope="full",
        started_at=now - datetime.timedelta(hours=3),
        finished_at=now,
        size=5,
        checkpoint_size=5,
        intact=True,
    )
    Verification.objects.create(
        scope="incremental",
        started_at=now - datetime.timedelta(minutes=1),
        finished_at=now,
        size=5,
        checkpoint_size=5,
        intact=False,
        first_bad_seq=3,
    )
    DeliveryCursor.objects.create(target="siem", position=2)
    DeliveryCursor.objects.create(target="segments:dir", position=5)
    IntegrityIncident.objects.create(kind="ledger", table="audit_event", row="3", detail="payload changed")
    shown = page()
    assert "Damaged from event 3" in shown  # the latest run
    assert shown.count("status-ok") >= 2  # the last full run, and its row in the history
    assert "size 5, signed" in shown
    assert "1 checkpoint in all" in shown
    assert "SIEM forwarding" in shown
    assert "3 events" in shown
    assert "Sealed segments (segments:dir)" in shown
    assert "audit ledger failed verification" in shown
    assert "audit_event row 3" in shown


def test_it_is_refused_to_those_without_the_ledger() -> None:
    response = client_for(make_user("dana", ("manager",))).get(reverse("audit:home"))
    assert response.status_code == 403
