"""Failed sign-ins: lockout per account and per source with back-off, and credential stuffing."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.lockout import cool_off
from accounts.models import User
from tests.accounts.test_login import without_tokens
from tests.factories import PASSWORD, make_user
from tests.recorded import events, names, sequenced_and_pending

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed sign-ins. Please try again later."


WRONG = "wrong password 123"


def actor(event: dict[str, object]) -> dict[str, object]:
    who = event["actor"]
    assert isinstance(who, dict)
    return who


def attempt(username: str, password: str = WRONG, source: str = "10.0.0.7") -> int:
    response = Client(REMOTE_ADDR=source).post("/login/", {"username": username, "password": password})
    return int(response.status_code)


def page(username: str, source: str = "10.0.0.7") -> str:
    response = Client(REMOTE_ADDR=source).post("/login/", {"username": username, "password": "wrong password 123"})
    return without_tokens(response.content.decode())


def test_it_locks_an_account_at_the_fifth_failure_even_for_the_right_password(manager: User) -> None:
    assert [attempt("dana") for _ in range(5)] == [200] * 4 + [429]
    assert attempt("dana", PASSWORD) == 429
    response = Client(REMOTE_ADDR="10.0.0.7").post("/login/", {"username": "dana", "password": PASSWORD})
    assert LOCKED in response.content.decode()
    locked = [event for event in events() if event["name"] == "SIGN_IN_LOCKED_OUT"]
    assert actor(locked[-1])["id"] == manager.pk


def test_it_locks_the_account_from_every_source(manager: User) -> None:
    for n in range(5):
        attempt("dana", source=f"10.0.1.{n}")  # five sources, one failure each
    assert attempt("dana", PASSWORD, source="10.0.2.1") == 429


def test_it_locks_a_source_that_fails_on_many_accounts(manager: User) -> None:
    for n in range(5):
        attempt(f"someone{n}")
    assert attempt("dana", PASSWORD) == 429  # the right password, from the locked source
    assert attempt("dana", PASSWORD, source="10.0.0.8") == 302  # elsewhere, dana is fine


def test_it_answers_a_locked_unknown_account_as_a_locked_real_one(manager: User) -> None:
    for _ in range(5):
        attempt("dana", source="10.0.3.1")
        attempt("nobody-by-this-name", source="10.0.3.2")
    assert page("dana", source="10.0.3.1") == page("nobody-by-this-name", source="10.0.3.2")
    unknown = [e for e in events() if e["name"] == "SIGN_IN_LOCKED_OUT" and actor(e)["id"] is None]
    assert unknown
    assert unknown[-1]["object"] == {"type": "", "id": ""}


def test_it_backs_off_doubling_up_to_an_hour() -> None:
    waits = [cool_off(SimpleNamespace(axes_failures_since_start=n)) for n in (5, 6, 7, 10, 40)]  # type: ignore[arg-type]
    assert waits == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=32),
        timedelta(hours=1),
    ]


def test_it_lets_the_account_in_once_the_cool_off_is_over(manager: User) -> None:
    for _ in range(5):
        attempt("dana")
    assert attempt("dana", PASSWORD) == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(hours=2))
    assert attempt("dana", PASSWORD) == 302
    assert not AccessAttempt.objects.filter(username="dana").exists()  # a success resets the count


def test_it_raises_credential_stuffing_once_and_mails_the_security_recipients(
    admin: User, auditor: User, django_capture_on_commit_callbacks: Any
) -> None:
    User.objects.filter(pk__in=[admin.pk, auditor.pk]).update(email="security@bank.example")
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(12):
            attempt(f"victim{n}", source="10.0.9.9")
    raised = [e for e in sequenced_and_pending() if e["name"] == "CREDENTIAL_STUFFING_SUSPECTED"]
    assert len(raised) == 1
    assert raised[0]["object"] == {"type": "source", "id": "10.0.9.9"}
    assert actor(raised[0])["role"] == "system"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["security@bank.example"]
    assert "10.0.9.9" not in mail.outbox[0].body  # the ledger names the source; the mail does not


def test_it_leaves_account_and_address_out_of_the_logs(manager: User, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for _ in range(7):
            attempt("dana", source="10.0.4.4")
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "dana" not in text
    assert "10.0.4.4" not in text
    assert "SIGN_IN_LOCKED_OUT" in names()


def test_it_resets_the_count_on_success(manager: User) -> None:
    for _ in range(4):
        attempt("dana")
    assert attempt("dana", PASSWORD) == 302
    assert [attempt("dana") for _ in range(4)] == [200] * 4  # four more before a lock, not one


def test_it_refuses_before_checking_the_password(manager: User) -> None:
    make_user("eve", roles=["manager"])
    for _ in range(5):
        attempt("eve")
    before = User.objects.get(username="eve").last_login
    assert attempt("eve", PASSWORD) == 429
    assert User.objects.get(username="eve").last_login == before
