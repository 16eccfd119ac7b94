"""The auditors' area. The ledger knows permissions only by name: it imports no other app.

What the ledger browser shows, and why that is within an auditor's view: the events themselves,
whole — type, time, the actor's id with the name and role copied when they acted, the source
address and request id, the object's type and id, the reason code, before/after — with their
hashes, chain links and inclusion proofs. That record is what the auditor role exists to read
("read-only audit ledger, integrity status"). Nothing protected is in it: ``audit.canonical``
refuses decrypted values at recording time, so a body names a protected value only by its blind
index or a mask. The browser joins in nothing else: no case, party or user row is read, so it
shows no more than the ledger holds.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_safe

from audit import merkle, proofs
from audit.events import EventType
from audit.integrity import last_result
from audit.ledger import published_keys
from audit.models import Checkpoint, DeliveryCursor, Event, PendingEvent, Verification
from audit.verify import note_problem
from caspix.access import public, requires
from caspix.crypto.keys import KeyName, key_service
from caspix.crypto.models import IntegrityIncident

VIEW_LEDGER = "audit.view_ledger"
PAGE_SIZE = 50
_BIGINT = 2**63 - 1
_DATE_ONLY = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request for part of a page; a boosted navigation or a history restore wants it whole."""
    htmx = getattr(request, "htmx", None)  # django-htmx's middleware sets it; falsy unless HX-Request
    if not htmx:
        return False
    return not htmx.boosted and not htmx.history_restore_request


def render_page_or_fragment(request: HttpRequest, page: str, fragment: str, context: dict[str, Any]) -> HttpResponse:
    response = render(request, fragment if wants_fragment(request) else page, context)
    patch_vary_headers(response, ["HX-Request"])  # a cached fragment must never stand in for the page
    return response


RECENT = 10


@requires(VIEW_LEDGER)
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """The integrity status: what the scheduled verifications found, the checkpoints, how far the
    copies of the ledger (SIEM, sealed segments) have got, and the integrity incidents."""
    user = request.user
    runs = Verification.objects.restrict(user, "view").filter(finished_at__isnull=False).order_by("-started_at")
    checkpoint = Checkpoint.objects.restrict(user, "view").order_by("-size").first()
    size = Event.objects.restrict(user, "view").order_by("-seq").values_list("seq", flat=True).first() or 0
    copies = [
        {
            "target": cursor.target,
            "label": "SIEM forwarding" if cursor.target == "siem" else f"Sealed segments ({cursor.target})",
            "position": cursor.position,
            "behind": (size if cursor.target == "siem" else (checkpoint.size if checkpoint else 0)) - cursor.position,
            "updated_at": cursor.updated_at,
        }
        for cursor in DeliveryCursor.objects.restrict(user, "view").order_by("target")
    ]
    context = {
        "verification": last_result(),
        "last_full": runs.filter(scope=Verification.Scope.FULL).first(),
        "runs": list(runs[:RECENT]),
        "checkpoint": checkpoint,
        "checkpoints": Checkpoint.objects.restrict(user, "view").count(),
        "size": size,
        "pending": PendingEvent.objects.restrict(user, "view").count(),
        "copies": copies,
        "incidents": list(IntegrityIncident.objects.restrict(user, "view").order_by("-occurred_at")[:RECENT]),
    }
    return render(request, "audit/home.html", context)


# --- the ledger browser ------------------------------------------------------------------------


class UTCDateTimeField(forms.DateTimeField):
    """An ISO 8601 date or date and time; one without an offset is UTC, whatever the server's zone."""

    def to_python(self, value: Any) -> datetime.datetime | None:
        with timezone.override(datetime.UTC):
            return super().to_python(value)


class EventFilterForm(forms.Form):
    """The browser's GET parameters. ``to`` comes out as an exclusive bound (see :meth:`clean`)."""

    actor = forms.IntegerField(
        label="Actor id",
        required=False,
        min_value=0,
        max_value=_BIGINT,
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),  # keeps a mistyped value on show, with its error
    )
    object_type = forms.CharField(label="Object type", required=False, max_length=64)
    object_id = forms.CharField(label="Object id", required=False, max_length=64)
    event_type = forms.TypedChoiceField(
        label="Event type",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Any type"), *((str(int(t)), f"{t.name} ({int(t)})") for t in EventType)],
    )
    # pagination: not shown in the form, so that a new filter starts again from the newest event
    before = forms.IntegerField(
        label="Older than seq", required=False, min_value=1, max_value=_BIGINT, widget=forms.HiddenInput
    )
    after = forms.IntegerField(
        label="Newer than seq", required=False, min_value=1, max_value=_BIGINT, widget=forms.HiddenInput
    )

    field_order = ["actor", "object_type", "object_id", "event_type", "from", "to"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        invalid = "Enter a date (2026-11-24) or a date and time (2026-11-24T12:00), in UTC."
        # "from" is a Python keyword, so these two are added here rather than declared above.
        self.fields["from"] = UTCDateTimeField(
            label="From", required=False, help_text="UTC, from this moment on", error_messages={"invalid": invalid}
        )
        self.fields["to"] = UTCDateTimeField(
            label="To",
            required=False,
            help_text="UTC, to this moment or the end of this day",
            error_messages={"invalid": invalid},
        )
        self.order_fields(self.field_order)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("before") is not None and data.get("after") is not None:
            raise forms.ValidationError("Ask for the events before a seq or after one, not both.")
        end = data.get("to")
        if end is not None:
            # A date alone includes its whole day; a time includes itself (stored to the microsecond).
            whole_day = _DATE_ONLY.fullmatch(self.data.get("to", ""))
            try:
                data["to"] = end + (datetime.timedelta(days=1) if whole_day else datetime.timedelta(microseconds=1))
            except OverflowError:
                data["to"] = None  # the end of year 9999 bounds nothing
        start = data.get("from")
        if start is not None and data.get("to") is not None and start >= data["to"]:
            self.add_error("to", "The end of the time range comes before its start.")
        return data


@dataclass(frozen=True)
class EventRow:
    seq: int
    time: datetime.datetime
    name: str
    actor_name: str
    actor_role: str
    object_type: str
    object_id: str
    reason: str


@dataclass(frozen=True)
class EventPage:
    rows: list[EventRow]
    newer: str | None  # the query string of the page of newer events, if there are any
    older: str | None


def filtered_events(user: Any, filters: dict[str, Any]) -> QuerySet[Event]:
    events = Event.objects.restrict(user, "view")
    if filters["actor"] is not None:
        events = events.filter(actor_id=filters["actor"])
    if filters["object_type"]:
        events = events.filter(object_type=filters["object_type"])
    if filters["object_id"]:
        events = events.filter(object_id=filters["object_id"])
    if filters["event_type"] is not None:
        events = events.filter(event_type=filters["event_type"])
    if filters["from"] is not None:
        events = events.filter(occurred_at__gte=filters["from"])
    if filters["to"] is not None:
        events = events.filter(occurred_at__lt=filters["to"])
    return events


def _page_link(query: QueryDict, key: str, seq: int) -> str:
    link = query.copy()
    for name in ("before", "after"):
        link.pop(name, None)
    link[key] = str(seq)
    return link.urlencode()


def event_page(user: Any, filters: dict[str, Any], query: QueryDict) -> EventPage:
    """Keyset pagination by seq, newest first: one query for the page, one more off the first page."""
    events = filtered_events(user, filters)
    columns = ("seq", "occurred_at", "body")
    before, after = filters["before"], filters["after"]
    if after is not None:
        found = list(events.filter(seq__gt=after).order_by("seq").values_list(*columns)[: PAGE_SIZE + 1])
        has_newer = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE][::-1]
        has_older = events.filter(seq__lte=after).exists()
    else:
        window = events if before is None else events.filter(seq__lt=before)
        found = list(window.order_by("-seq").values_list(*columns)[: PAGE_SIZE + 1])
        has_older = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE]
        has_newer = before is not None and events.filter(seq__gte=before).exists()
    rows = [_row(seq, occurred_at, bytes(body)) for seq, occurred_at, body in found]
    # An empty page (a seq given by hand beyond the ends) still links back towards the events.
    newest = rows[0].seq if rows else (before - 1 if before is not None else 0)
    oldest = rows[-1].seq if rows else (after + 1 if after is not None else 1)
    return EventPage(
        rows=rows,
        newer=_page_link(query, "after", newest) if has_newer else None,
        older=_page_link(query, "before", oldest) if has_older else None,
    )


def _row(seq: int, occurred_at: datetime.datetime, body: bytes) -> EventRow:
    document = json.loads(body)
    return EventRow(
        seq=seq,
        time=occurred_at,
        name=document["name"],
        actor_name=document["actor"]["name"],
        actor_role=document["actor"]["role"],
        object_type=document["object"]["type"],
        object_id=document["object"]["id"],
        reason=document["reason"],
    )


@requires(VIEW_LEDGER)
@require_safe
def events(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    # Invalid filters show the errors and no events: never a list filtered other than asked.
    page = event_page(request.user, form.cleaned_data, request.GET) if form.is_valid() else None
    context = {"form": form, "page": page, "page_size": PAGE_SIZE}
    return render_page_or_fragment(request, "audit/events.html", "audit/partials/_events.html", context)


@dataclass(frozen=True)
class CheckedProof:
    """An event's inclusion proof against the latest checkpoint, and what checking it here found."""

    proof: dict[str, Any] | None  # as audit_proof prints it; None while no checkpoint covers the event
    problem: str | None = None  # why the proof cannot be built or does not verify; None when it verifies
    signature_problem: str | None = None  # why the checkpoint's signature does not verify; None when it does


def checked_inclusion(user: Any, event: Event) -> CheckedProof:
    checkpoint = Checkpoint.objects.restrict(user, "view").order_by("-size").first()
    if checkpoint is None or checkpoint.size < event.seq:
        return CheckedProof(None)  # it awaits the next checkpoint
    try:
        proof = proofs.inclusion(event.seq, checkpoint)
    except LookupError as exc:  # a tree node is missing: the ledger is damaged (audit_verify says where)
        return CheckedProof(None, problem=str(exc))
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(bytes(event.body)),  # from the body itself, not from the stored leaf
            proof["leaf_index"],
            proof["tree_size"],
            [base64.b64decode(value) for value in proof["inclusion_proof"]],
            base64.b64decode(proof["root"]),
        )
    except merkle.ProofError as exc:
        problem: str | None = str(exc)
    else:
        problem = None
    signature = note_problem(checkpoint, key_service().public_keys(KeyName.LEDGER))
    return CheckedProof(proof, problem=problem, signature_problem=signature)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@requires(VIEW_LEDGER)
@require_safe
def event(request: HttpRequest, seq: int) -> HttpResponse:
    event = get_object_or_404(Event.objects.restrict(request.user, "view"), seq=seq)
    body = bytes(event.body)
    document = json.loads(body)
    context = {
        "event": event,
        "document": document,
        "body": body.decode(),
        "before": None if document["before"] is None else _pretty(document["before"]),
        "after": None if document["after"] is None else _pretty(document["after"]),
        "leaf": bytes(event.leaf).hex(),
        "chain": bytes(event.chain).hex(),
        "checked": checked_inclusion(request.user, event),
        "ledger": settings.LEDGER,
    }
    return render(request, "audit/event.html", context)


@public
@require_safe
@cache_page(300)
def ledger_keys(request: HttpRequest) -> JsonResponse:
    """The ledger's public keys: anyone may verify a checkpoint, so anyone may read them."""
    return JsonResponse(published_keys())
