"""The analysts' workspace."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.permissions import Perm
from caspix.access import requires


@requires(Perm.WORK_CASES)
def workspace(request: HttpRequest) -> HttpResponse:
    return render(request, "cases/workspace.html")
