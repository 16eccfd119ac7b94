"""The auditors' area. The ledger knows permissions only by name: it imports no other app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from caspix.access import requires

VIEW_LEDGER = "audit.view_ledger"


@requires(VIEW_LEDGER)
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/home.html")
