"""The auditors' area. The ledger knows permissions only by name: it imports no other app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_safe

from audit.ledger import published_keys
from caspix.access import public, requires

VIEW_LEDGER = "audit.view_ledger"


@requires(VIEW_LEDGER)
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/home.html")


@public
@require_safe
@cache_page(300)
def ledger_keys(request: HttpRequest) -> JsonResponse:
    """The ledger's public keys: anyone may verify a checkpoint, so anyone may read them."""
    return JsonResponse(published_keys())
