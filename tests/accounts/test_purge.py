"""Sign-in's working records are purged once they cannot matter; the ledger keeps the history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from accounts.models import SamlRequest, SeenAssertion, StuffingAlarm, User, UserSession
from accounts.tasks import purge_sign_in_records

pytestmark = pytest.mark.django_db


def test_it_purges_what_has_served_and_keeps_the_rest(manager: User) -> None:
    now = timezone.now()
    long_ago = now - timedelta(days=500)
    UserSession.objects.create(user=manager, session_key="old", tier="standard", ended_at=long_ago)
    UserSession.objects.create(user=manager, session_key="recent", tier="standard", ended_at=now - timedelta(days=30))
    UserSession.objects.create(user=manager, session_key="live", tier="standard")
    SamlRequest.objects.bulk_create(
        [SamlRequest(request_id="old", created_at=long_ago), SamlRequest(request_id="fresh")]
    )
    SeenAssertion.objects.bulk_create(
        [
            SeenAssertion(issuer="i", assertion_id="old", seen_at=long_ago, not_on_or_after=long_ago),
            SeenAssertion(issuer="i", assertion_id="valid", seen_at=long_ago, not_on_or_after=now + timedelta(days=9)),
        ]
    )
    StuffingAlarm.objects.bulk_create(
        [StuffingAlarm(source="10.0.0.1", window=1, raised_at=long_ago), StuffingAlarm(source="10.0.0.1", window=2)]
    )
    AccessAttempt.objects.create(username="x", ip_address="10.0.0.1", user_agent="", failures_since_start=3)
    AccessAttempt.objects.update(attempt_time=long_ago)
    AccessAttempt.objects.create(username="y", ip_address="10.0.0.2", user_agent="", failures_since_start=1)

    assert purge_sign_in_records() == {
        "sessions": 1,
        "saml_requests": 1,
        "assertions": 1,
        "stuffing_alarms": 1,
        "failed_attempts": 1,
    }
    assert sorted(UserSession.objects.values_list("session_key", flat=True)) == ["live", "recent"]
    assert list(SeenAssertion.objects.values_list("assertion_id", flat=True)) == ["valid"]
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["y"]
    assert set(purge_sign_in_records().values()) == {0}  # idempotent
