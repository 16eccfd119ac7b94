"""The landing router (signing in and out: :mod:`accounts.signin`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from accounts.context_processors import areas_for
from caspix.access import requires


@requires()
def home(request: HttpRequest) -> HttpResponse:
    """Send a signed-in user to the first area their roles open."""
    areas = areas_for(request)
    if not areas:
        return render(request, "accounts/no_role.html", status=403)
    return HttpResponseRedirect(areas[0]["url"])
