"""Scheduled verification: the status auditors see, and the alarm when the ledger is damaged."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test import Client

from accounts.models import User
from audit import integrity, ledger, tasks
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint, Event, PendingEvent, Verification
from caspix.crypto.models import IntegrityIncident
from tests.audit.test_windows import not_at_a_window_end
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)  # incidents are stored on their own connection

SYSTEM = Actor.system("test")


def grow(count: int) -> None:
    with transaction.atomic():
        for n in range(count):
            record(EventType.KEY_ROTATED, actor=SYSTEM, object_id=n)  # sequenced and sealed on commit


def damage(seq: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_event DROP CONSTRAINT IF EXISTS audit_event_columns_match_body")
        cursor.execute("ALTER TABLE audit_event DISABLE TRIGGER USER")
        cursor.execute("UPDATE audit_event SET body = %s WHERE seq = %s", [b'{"v":1}', seq])
        cursor.execute("ALTER TABLE audit_event ENABLE TRIGGER USER")


def test_it_verifies_incrementally_from_the_last_intact_checkpoint() -> None:
    grow(4)
    first = integrity.run(Verification.Scope.INCREMENTAL)
    assert (first.intact, first.size, first.checkpoint_size) == (True, 4, 4)
    grow(3)
    second = integrity.run(Verification.Scope.INCREMENTAL)
    # 3 more events are not yet due a checkpoint: the last verified one is still at size 4
    assert (second.intact, second.size, second.checkpoint_size) == (True, 7, 4)
    assert json.loads(second.report)["events_verified"] == 3


def test_it_raises_the_alarm_when_the_ledger_is_damaged(admin: User, auditor: User, analyst: User) -> None:
    for user in (admin, auditor, analyst):
        user.email = f"{user.username}@bank.example"
        user.save()
    grow(5)
    damage(3)
    assert tasks.verify_ledger("full") is False
    result = integrity.last_result()
    assert result is not None
    assert (result.intact, result.first_bad_seq) == (False, 3)
    incident = IntegrityIncident.objects.get()
    assert (incident.kind, incident.row) == ("ledger", "3")
    (message,) = mail.outbox
    assert sorted(message.to) == ["alice@bank.example", "erin@bank.example"]
    assert "event 3" in message.body
    failed = json.loads(bytes(Event.objects.order_by("-seq").values_list("body", flat=True)[0]))
    assert failed["name"] == "LEDGER_VERIFICATION_FAILED"
    assert failed["after"]["first_bad_seq"] == 3
    for user, page in ((admin, "/administration/"), (auditor, "/audit/")):
        assert "The audit ledger failed verification" in client_for(user).get(page).content.decode()
    assert "failed verification" not in client_for(analyst).get("/work/").content.decode()


def test_it_shows_auditors_the_integrity_status(auditor: User) -> None:
    grow(2)
    assert Client().get("/audit/").status_code == 302  # to the login page
    page = client_for(auditor).get("/audit/").content.decode()
    assert "Not verified yet" in page
    integrity.run(Verification.Scope.FULL)
    page = client_for(auditor).get("/audit/").content.decode()
    assert "Intact" in page
    assert "size 2" in page
    assert "2 sequenced" in page


def test_it_sequences_in_the_background_task(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.integrate_ledger, "apply_async", lambda **options: queued.append(options))
    monkeypatch.setattr(ledger, "_scheduler", ledger._Scheduler(uuid.uuid4().hex))
    settings.LEDGER = {**settings.LEDGER, "INTEGRATE": "task", "SCHEDULE_WINDOW": 30.0}
    not_at_a_window_end(30.0)
    for _ in range(3):
        grow(1)  # three transactions
    # asked for on commit: at once for the first, at the window's end for the others
    assert [options["countdown"] is None for options in queued] == [True, False]
    assert all(options["kwargs"] == {"seal_when_idle": False} for options in queued)
    assert PendingEvent.objects.count() == 3
    assert tasks.integrate_ledger() == 3
    assert not PendingEvent.objects.exists()
    assert ledger.head().size == 3


def test_a_run_asked_for_by_a_commit_leaves_the_checkpoint_to_the_beat_when_idle(settings: Any) -> None:
    settings.LEDGER = {**settings.LEDGER, "CHECKPOINT_EVENTS": 1}
    settings.LEDGER = {**settings.LEDGER, "INTEGRATE": "task"}
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=SYSTEM, object_id="x")
    assert tasks.integrate_ledger(seal_when_idle=False) == 1  # it sequenced: it checks the checkpoint
    assert Checkpoint.objects.count() == 1
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=SYSTEM, object_id="y")
    ledger.integrate()  # another run sequenced it, and was stopped before its checkpoint
    assert tasks.integrate_ledger(seal_when_idle=False) == 0
    assert Checkpoint.objects.count() == 1  # nothing of its own: the beat's run seals
    assert tasks.integrate_ledger() == 0
    assert Checkpoint.objects.count() == 2
