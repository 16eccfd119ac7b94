"""Sign-in, sign-out and the landing router."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from accounts.context_processors import areas_for
from caspix.access import public, requires

login = public(auth_views.LoginView.as_view(template_name="accounts/login.html", redirect_authenticated_user=True))
logout = public(auth_views.LogoutView.as_view())


@requires()
def home(request: HttpRequest) -> HttpResponse:
    """Send a signed-in user to the first area their roles open."""
    areas = areas_for(request)
    if not areas:
        return render(request, "accounts/no_role.html", status=403)
    return HttpResponseRedirect(areas[0]["url"])
