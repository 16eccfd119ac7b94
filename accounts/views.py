"""The landing router (signing in and out: :mod:`accounts.signin`)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import approvals
from accounts.context_processors import areas_for
from caspix.access import requires


@requires()
def home(request: HttpRequest) -> HttpResponse:
    """Send a signed-in user to the first area their roles open."""
    areas = areas_for(request)
    if not areas:
        return render(request, "accounts/no_role.html", status=403)
    return HttpResponseRedirect(areas[0]["url"])


@requires()
@require_POST
def approval_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    """The maker takes back their own request, nobody having decided it yet, saying why; then
    goes back to the page they came from (a case, a report)."""
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("accounts:home")
    try:
        approvals.withdraw(pk, acting_user=request.user, reason=request.POST.get("reason", ""))  # type: ignore[arg-type]
    except (approvals.ApprovalRefusedError, ValidationError) as error:
        messages.error(request, "; ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(request, f"Request {pk} is withdrawn.")
    return HttpResponseRedirect(back)
