"""Error pages that say what happened in plain words and leak nothing else.

Django's default handlers already avoid exception details when DEBUG is off; these exist so the
CSRF failure page (which by default explains the check it failed) says no more than a 403 does.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(request, "403.html", status=403)
