"""The ledger browser: /audit/events/ and /audit/events/<seq>/, read-only, for holders of audit.view_ledger."""

from __future__ import annotations

import base64
import contextlib
import datetime
import re
from collections.abc import Mapping
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from audit import ledger, proofs
from audit.events import EventType
from audit.ledger import Actor, integrate, record
from audit.models import Checkpoint
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

LIST = "/audit/events/"
ALICE = Actor(7, "alice", "admin")
OPERATOR = Actor(None, "ops (manage.py)", "operator")
SCRIPT = "<script>alert(1)</script>"


def add(
    count: int = 1,
    *,
    event_type: EventType = EventType.KEY_ROTATED,
    actor: Actor = ALICE,
    object_type: str = "key",
    object_id: str = "data",
    reason: str = "",
    after: Mapping[str, Any] | None = None,
    at: datetime.datetime | None = None,
    seal: bool = True,
) -> None:
    """Record ``count`` events, sequence them and (unless ``seal=False``) sign a checkpoint.

    The tests run inside a transaction, so the on-commit integration never runs: do it here.
    """
    clock = mock.patch("django.utils.timezone.now", return_value=at) if at else contextlib.nullcontext()
    with clock, transaction.atomic():
        for _ in range(count):
            record(event_type, actor=actor, object_type=object_type, object_id=object_id, reason=reason, after=after)
    integrate()
    if seal:
        ledger.seal(force=True)


def seqs(html: str) -> list[int]:
    """The sequence numbers of the rows listed, in the order shown."""
    return [int(seq) for seq in re.findall(r'<a href="/audit/events/(\d+)/">', html)]


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


# --- who may see it ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [LIST, "/audit/events/1/"])
def test_it_sends_anonymous_visitors_to_sign_in(url: str) -> None:
    add()
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/login/?next={url}")


@pytest.mark.parametrize("persona", ["analyst", "lead", "manager", "roleless"])
@pytest.mark.parametrize("url", [LIST, "/audit/events/1/"])
def test_it_refuses_roles_without_the_ledger_permission(request: pytest.FixtureRequest, persona: str, url: str) -> None:
    add()
    user: User = request.getfixturevalue(persona)
    assert client_for(user).get(url).status_code == 403


@pytest.mark.parametrize("persona", ["auditor", "admin"])
@pytest.mark.parametrize("url", [LIST, "/audit/events/1/"])
def test_it_opens_the_ledger_to_auditors_and_admins(request: pytest.FixtureRequest, persona: str, url: str) -> None:
    add()
    user: User = request.getfixturevalue(persona)
    assert client_for(user).get(url).status_code == 200


def test_it_lists_the_events_for_auditors_newest_first(auditor: User) -> None:
    add(3, reason="scheduled")
    response = client_for(auditor).get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert seqs(html) == [3, 2, 1]
    assert "<caption>" in html
    assert '<th scope="col">Actor</th>' in html
    assert "KEY_ROTATED" in html
    assert "alice" in html
    assert "scheduled" in html
    assert link(html, "next") is None
    assert link(html, "prev") is None


def test_it_labels_every_filter_input(auditor: User) -> None:
    html = client_for(auditor).get(LIST).content.decode()
    for name in ("actor", "object_type", "object_id", "event_type", "from", "to"):
        assert f'<label for="id_{name}">' in html
        assert f'id="id_{name}"' in html
    assert '<form class="panel filters" method="get"' in html


def test_it_is_linked_from_the_audit_home(auditor: User) -> None:
    html = client_for(auditor).get("/audit/").content.decode()
    assert f'<a href="{LIST}">Browse the ledger</a>' in html


# --- filters -----------------------------------------------------------------------------------


def test_it_filters_by_actor(auditor: User) -> None:
    add(actor=ALICE)
    add(actor=Actor(8, "bob", "analyst"))
    add(actor=OPERATOR)
    assert seqs(client_for(auditor).get(LIST, {"actor": 8}).content.decode()) == [2]


def test_it_filters_by_object(auditor: User) -> None:
    add(object_type="key", object_id="data")
    add(object_type="key", object_id="ledger")
    add(object_type="backup", object_id="data")
    client = client_for(auditor)
    assert seqs(client.get(LIST, {"object_type": "key", "object_id": "data"}).content.decode()) == [1]
    assert seqs(client.get(LIST, {"object_type": "key"}).content.decode()) == [2, 1]
    assert seqs(client.get(LIST, {"object_id": "data"}).content.decode()) == [3, 1]
    assert seqs(client.get(LIST, {"object_id": "dat"}).content.decode()) == []  # exact, not a prefix


def test_it_filters_by_event_type(auditor: User) -> None:
    add(event_type=EventType.KEY_ROTATED)
    add(event_type=EventType.BACKUP_WRITTEN)
    add(event_type=EventType.KEY_ROTATED)
    html = client_for(auditor).get(LIST, {"event_type": int(EventType.BACKUP_WRITTEN)}).content.decode()
    assert seqs(html) == [2]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"from": "2026-01-11"}, [3, 2]),
        ({"to": "2026-01-11"}, [2, 1]),  # a date alone includes its whole day
        ({"to": "2026-01-11T09:30:00Z"}, [2, 1]),  # a time includes itself
        ({"from": "2026-01-11T09:30", "to": "2026-01-11T09:30"}, [2]),  # no offset: UTC
        ({"from": "2026-01-11T10:30+01:00"}, [3, 2]),
        ({"from": "2026-01-10T12:00:01Z", "to": "2026-01-11T23:59:59Z"}, [2]),
    ],
)
def test_it_filters_by_time(auditor: User, window: dict[str, str], expected: list[int]) -> None:
    for moment in ("2026-01-10T12:00:00", "2026-01-11T09:30:00", "2026-01-12T00:00:00"):
        add(at=datetime.datetime.fromisoformat(moment).replace(tzinfo=datetime.UTC))
    assert seqs(client_for(auditor).get(LIST, window).content.decode()) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"actor": "alice"}, "Enter a whole number."),
        ({"actor": str(2**64)}, "Ensure this value is less than or equal to"),
        ({"event_type": "999"}, "Select a valid choice."),
        ({"from": "yesterday"}, "Enter a date (2026-11-24) or a date and time (2026-11-24T12:00), in UTC."),
        ({"from": "2026-01-12", "to": "2026-01-11"}, "The end of the time range comes before its start."),
        ({"object_id": "x" * 65}, "Ensure this value has at most 64 characters"),
        ({"before": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"before": "5", "after": "2"}, "not both"),
    ],
)
def test_it_explains_invalid_filters_and_lists_nothing(auditor: User, query: dict[str, str], message: str) -> None:
    add(3)
    response = client_for(auditor).get(LIST, query)
    assert response.status_code == 200
    html = response.content.decode()
    assert "The filters need correcting" in html
    assert message in html
    assert seqs(html) == []


# --- pagination --------------------------------------------------------------------------------


def test_it_pages_by_seq_without_overlap_or_gap(auditor: User) -> None:
    add(120, seal=False)
    client = client_for(auditor)
    first = client.get(LIST).content.decode()
    assert seqs(first) == list(range(120, 70, -1))
    assert link(first, "prev") is None
    older = link(first, "next")
    assert older == f"{LIST}?before=71"

    second = client.get(older).content.decode()
    assert seqs(second) == list(range(70, 20, -1))
    third_url = link(second, "next")
    assert third_url == f"{LIST}?before=21"
    third = client.get(third_url).content.decode()
    assert seqs(third) == list(range(20, 0, -1))
    assert link(third, "next") is None

    newer = link(third, "prev")
    assert newer == f"{LIST}?after=20"
    assert seqs(client.get(newer).content.decode()) == list(range(70, 20, -1))
    back_to_first = link(second, "prev")
    assert back_to_first == f"{LIST}?after=70"
    newest = client.get(back_to_first).content.decode()
    assert seqs(newest) == list(range(120, 70, -1))
    assert link(newest, "prev") is None


def test_it_keeps_the_filters_across_pages(auditor: User) -> None:
    add(60, object_id="data", seal=False)
    add(5, object_id="other", seal=False)
    client = client_for(auditor)
    first = client.get(LIST, {"object_id": "data"}).content.decode()
    assert seqs(first) == list(range(60, 10, -1))
    older = link(first, "next")
    assert older == f"{LIST}?object_id=data&before=11"
    assert seqs(client.get(older).content.decode()) == list(range(10, 0, -1))


# --- htmx and queries --------------------------------------------------------------------------


def test_it_answers_htmx_with_the_table_fragment_only(auditor: User) -> None:
    add(3)
    response = client_for(auditor).get(LIST, {"actor": 7}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "<form" not in html
    assert seqs(html) == [3, 2, 1]
    assert "HX-Request" in response["Vary"]
    full = client_for(auditor).get(LIST, {"actor": 7}, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in full.content.decode()


def test_it_progressively_enhances_the_form_and_the_page_links(auditor: User) -> None:
    add(51, seal=False)
    html = client_for(auditor).get(LIST).content.decode()
    assert 'hx-target="#events" hx-push-url="true"' in html
    assert f'method="get" action="{LIST}" hx-get="{LIST}"' in html
    assert f'href="{LIST}?before=2" hx-get="{LIST}?before=2"' in html


@pytest.mark.parametrize("count", [3, 60])
def test_it_lists_in_a_fixed_number_of_queries(auditor: User, count: int) -> None:
    add(count)
    client = client_for(auditor)
    client.get(LIST)  # warm the session
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST, {"object_type": "key"})
    assert response.status_code == 200
    # session, user, the verified factor, the user's permissions, the page of events, the
    # ledger-alert check
    assert len(queries) == 6, [query["sql"] for query in queries.captured_queries]
    assert len(seqs(response.content.decode())) == min(count, 50)
    with CaptureQueriesContext(connection) as queries:
        client.get(LIST, {"object_type": "key", "before": str(count)})
    assert len(queries) == 7  # off the first page, one more: are there newer events?


# --- event detail ------------------------------------------------------------------------------


def test_it_shows_an_event_with_its_verified_inclusion_proof(auditor: User) -> None:
    add(5, reason="scheduled", after={"version": 3, "previous": 2})
    response = client_for(auditor).get("/audit/events/3/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Event 3: KEY_ROTATED" in html
    assert "user id 7" in html
    assert "role admin" in html
    assert "scheduled" in html
    assert "&quot;previous&quot;: 2,\n  &quot;version&quot;: 3" in html  # pretty JSON, escaped
    assert "Proof verified" in html
    assert "Checkpoint signature verified" in html
    assert "<dt>Tree size</dt><dd>5</dd>" in html
    assert f"{ledger.origin()}\n5\n" in html  # the signed note
    assert "python manage.py audit_proof --seq 3" in html
    assert "docs/LEDGER.md" in html


def test_it_says_when_a_proof_does_not_verify(auditor: User, monkeypatch: pytest.MonkeyPatch) -> None:
    add(4)
    genuine = proofs.inclusion

    def tampered(seq: int, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
        proof = genuine(seq, checkpoint)
        proof["inclusion_proof"][0] = base64.b64encode(bytes(32)).decode()
        return proof

    monkeypatch.setattr(proofs, "inclusion", tampered)
    html = client_for(auditor).get("/audit/events/2/").content.decode()
    assert "The proof does not verify" in html
    assert "Proof verified" not in html


def test_it_says_plainly_when_an_event_awaits_a_checkpoint(auditor: User) -> None:
    add(2)
    add(1, seal=False)
    response = client_for(auditor).get("/audit/events/3/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "This event awaits a checkpoint" in html
    assert "Proof verified" not in html
    assert "Proof verified" in client_for(auditor).get("/audit/events/2/").content.decode()


def test_it_answers_404_for_an_unknown_seq(auditor: User) -> None:
    add(1)
    assert client_for(auditor).get("/audit/events/2/").status_code == 404


def test_it_escapes_what_the_bodies_hold(auditor: User) -> None:
    add(reason=SCRIPT, after={"note": SCRIPT}, object_id=SCRIPT[:20])
    client = client_for(auditor)
    for html in (client.get(LIST).content.decode(), client.get("/audit/events/1/").content.decode()):
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
