"""``/metrics`` for Prometheus, answered only to a configured source range or a bearer token.

The decision uses the socket's peer address (``REMOTE_ADDR``), never a forwarded header, and
anything else gets the same 404 as an unknown URL. The public proxy does not route it at all.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_prometheus.exports import ExportToDjangoView

from caspix.access import gated


def _from_allowed_network(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = settings.METRICS_ALLOWED_NETWORKS
    return any(address in network for network in networks)


def _has_token(request: HttpRequest) -> bool:
    token: str | None = settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode())


@gated("source range or bearer token")
@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not (_from_allowed_network(request) or _has_token(request)):
        raise Http404
    response: HttpResponse = ExportToDjangoView(request)
    return response
