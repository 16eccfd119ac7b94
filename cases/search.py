"""Find cases by what analysts are told on the phone: a case reference, a customer id, a national
id, an account number or a name.

Identifiers are stored encrypted, so the search is exact, through their blind indexes: the text
is normalised as it was when stored (``caspix.crypto.blind``: spaces and separators in account
numbers, letter case, runs of spaces in names) and compared by keyed hash, under every live
index key. A name matches the whole normalised name, never a part of it. Every result passes
through ``restrict(user, "view")``.

Each search is recorded in the ledger (``CASES_SEARCHED``): what kind of identifier, its blind
index (never the text) and how many cases were found, as banks must be able to say who looked
a customer up.
"""

from __future__ import annotations

import re

from django.db import models, transaction
from django.db.models import Q

from accounts.actions import actor_of, require
from accounts.models import User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import record
from cases.models import Account, Action, Case, CaseQuerySet, Party, Transaction
from caspix.crypto import blind

LIMIT = 100
_REFERENCE = re.compile(r"\A(?:C-?)?0*([0-9]{1,12})\Z", re.IGNORECASE)


class Kind(models.TextChoices):
    CASE = "case", "Case reference"
    CUSTOMER_ID = "customer_id", "Customer id"
    NATIONAL_ID = "national_id", "National id"
    ACCOUNT = "account", "Account number"
    NAME = "name", "Full name"


_BLIND = {
    Kind.CUSTOMER_ID: blind.Kind.CUSTOMER_ID,
    Kind.NATIONAL_ID: blind.Kind.NATIONAL_ID,
    Kind.ACCOUNT: blind.Kind.ACCOUNT_NUMBER,
    Kind.NAME: blind.Kind.NAME,
}


class SearchError(ValueError):
    """The text cannot be what was asked for; the message says why, never what the text was."""


def search(user: User, kind: Kind, text: str) -> tuple[list[Case], int]:
    """The cases ``user`` may see that match, most recent first, at most ``LIMIT``; and how many
    there are in all."""
    require(user, Perm.WORK_CASES)
    cases = Case.objects.restrict(user, Action.VIEW)
    matching, term = _matching(cases, kind, text.strip())
    with transaction.atomic():
        total = matching.count()
        found = list(matching.select_related("queue", "assignee").order_by("-opened_at", "-pk")[:LIMIT])
        record(
            EventType.CASES_SEARCHED,
            actor=actor_of(user),
            object_type="search",
            after={"kind": kind.value, "term": term, "found": total},
        )
    return found, total


def _matching(cases: CaseQuerySet, kind: Kind, text: str) -> tuple[CaseQuerySet, str]:
    """The matching cases and the term the ledger keeps (a reference, or a blind index)."""
    if kind is Kind.CASE:
        reference = _REFERENCE.match(text)
        if reference is None:
            raise SearchError("a case reference is C- and its number, e.g. C-000042")
        return cases.filter(pk=int(reference.group(1))), f"C-{int(reference.group(1)):06d}"
    try:
        term = blind.digest(_BLIND[kind], text)
    except blind.NormalisationError as error:
        raise SearchError(str(error)) from None
    if kind is Kind.ACCOUNT:  # held by a subject, or named as a transaction's counterparty
        holders = Account.objects.filter(number_index__matches=text).values("party")
        counterparty = Transaction.objects.filter(counterparty_account_index__matches=text).values("alert__case")
        where = Q(party__in=holders) | Q(alerts__party__in=holders) | Q(pk__in=counterparty)
    else:
        field = {Kind.CUSTOMER_ID: "customer_id_index", Kind.NATIONAL_ID: "national_id_index"}.get(kind, "name_index")
        parties = Party.objects.filter(**{f"{field}__matches": text}).values("pk")
        where = Q(party__in=parties) | Q(alerts__party__in=parties)
    return cases.filter(pk__in=Case.objects.filter(where).values("pk")), term
