"""Search: exact, through blind indexes, restricted to what the user may see, and recorded."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.urls import reverse

from cases import search
from cases.models import Account, Alert, ApiClient, Case, Party, Transaction
from tests.conftest import client_for
from tests.personas import World, build_world
from tests.recorded import events

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC)


@pytest.fixture
def world(db: None) -> World:
    world = build_world()
    source = ApiClient.objects.create(name="Monitoring", source="tms", scopes=[])
    for persona in ("analyst", "other_analyst"):  # a subject on a case of each team
        case = world.cases[persona]["team"]
        party = Party.objects.create(
            customer_id="CUST-1" if persona == "analyst" else "CUST-2",
            name="Erika  Mustermann" if persona == "analyst" else "Max Mustermann",
            national_id="T22000129" if persona == "analyst" else "L01X00T47",
        )
        Case.objects.filter(pk=case.pk).update(party=party)
        account = Account.objects.create(party=party, number="DE89 3704 0044 0532 0130 00", currency="EUR")
        alert = Alert.objects.create(
            client=source, external_id=f"A-{persona}", scenario="x", occurred_at=NOW, party=party, case=case
        )
        Transaction.objects.create(
            alert=alert, account=account, occurred_at=NOW, amount=5, currency="EUR", minor_units=2,
            direction="debit", channel="transfer", counterparty_account="GB82 WEST 1234 5698 7654 32",
        )  # fmt: skip
    return world


def found(world: World, persona: str, kind: str, text: str) -> list[int]:
    cases, _ = search.search(world.users[persona], search.Kind(kind), text)
    return [case.pk for case in cases]


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("customer_id", "cust-1"),  # letter case does not matter
        ("national_id", "t22 000 129"),
        ("account", "de89370400440532013000"),  # the subject's account, without its spaces
        ("name", "erika mustermann"),  # case and runs of spaces normalised; the whole name
    ],
)
def test_it_finds_the_case_of_ones_team_by_an_identifier_of_its_subject(world: World, kind: str, text: str) -> None:
    own = world.cases["analyst"]["team"].pk
    assert found(world, "analyst", kind, text) == [own]
    assert own not in found(world, "other_analyst", kind, text)  # another team's case stays hidden


def test_it_finds_both_teams_cases_only_for_whoever_may_see_both(world: World) -> None:
    account = "DE89370400440532013000"  # both subjects hold it
    assert found(world, "analyst", "account", account) == [world.cases["analyst"]["team"].pk]
    assert found(world, "other_analyst", "account", account) == [world.cases["other_analyst"]["team"].pk]


def test_it_finds_a_counterparty_account(world: World) -> None:
    assert world.cases["analyst"]["team"].pk in found(world, "analyst", "account", "GB82WEST12345698765432")


def test_it_matches_whole_values_only(world: World) -> None:
    assert found(world, "analyst", "name", "Mustermann") == []
    assert found(world, "analyst", "account", "DE8937040044") == []


def test_it_finds_a_case_by_reference(world: World) -> None:
    own = world.cases["analyst"]["team"]
    assert found(world, "analyst", "case", own.reference) == [own.pk]
    assert found(world, "analyst", "case", str(own.pk)) == [own.pk]
    assert found(world, "analyst", "case", world.cases["other_analyst"]["team"].reference) == []


def test_it_records_the_search_by_blind_index_never_the_text(world: World) -> None:
    found(world, "analyst", "national_id", "T22000129")
    searched = events()[-1]
    assert searched["name"] == "CASES_SEARCHED"
    assert "T22000129" not in json.dumps(searched)
    after: Any = searched["after"]
    assert (after["kind"], after["found"]) == ("national_id", 1)
    assert after["term"] == Party.objects.get(customer_id_index__matches="CUST-1").national_id_index


def test_the_page_searches_and_names_what_is_wrong(world: World) -> None:
    browser = client_for(world.users["analyst"])
    page = reverse("cases:search")
    assert browser.get(page).status_code == 200
    response = browser.get(page, {"kind": "customer_id", "q": "CUST-1"})
    assert response.status_code == 200
    assert world.cases["analyst"]["team"].reference.encode() in response.content
    assert b"1 case found" in response.content
    refused = browser.get(page, {"kind": "customer_id", "q": "CUST#1"})
    assert refused.status_code == 400
    assert b"only letters and digits" in refused.content
    assert browser.get(page, {"kind": "case", "q": "the big one"}).status_code == 400
    assert b"No case you may see matches" in browser.get(page, {"kind": "name", "q": "Nobody"}).content
