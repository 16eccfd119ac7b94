"""The auditors' area. The ledger knows permissions only by name: it imports no other app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_safe

from audit.integrity import last_result
from audit.ledger import published_keys
from audit.models import Checkpoint, Event, PendingEvent
from caspix.access import public, requires

VIEW_LEDGER = "audit.view_ledger"


@requires(VIEW_LEDGER)
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    context = {
        "verification": last_result(),
        "checkpoint": Checkpoint.objects.order_by("-size").first(),
        "size": Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0,
        "pending": PendingEvent.objects.count(),
    }
    return render(request, "audit/home.html", context)


@public
@require_safe
@cache_page(300)
def ledger_keys(request: HttpRequest) -> JsonResponse:
    """The ledger's public keys: anyone may verify a checkpoint, so anyone may read them."""
    return JsonResponse(published_keys())
