"""Error pages that say what happened in plain words and leak nothing else.

Django's default handlers already avoid exception details when DEBUG is off; these exist so the
CSRF failure page (which by default explains the check it failed) says no more than a 403 does,
and so a key service that cannot answer gives a 503 that says so (the action's transaction has
rolled back by then: nothing is half-written).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from caspix.crypto.keys import IntegrityError, KeyServiceError

logger = logging.getLogger(__name__)


CsrfListener = Callable[[HttpRequest], None]
_csrf_listeners: list[CsrfListener] = []


def on_csrf_failure(listener: CsrfListener) -> None:
    """Call ``listener`` on every request refused as forged (the domain records it: this floor
    knows no ledger)."""
    _csrf_listeners.append(listener)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    for listener in _csrf_listeners:
        try:
            listener(request)
        except Exception:  # a failing listener must not turn the refusal into a 500
            logger.exception("a CSRF-failure listener failed")
    logger.warning("request refused: CSRF check failed")
    return render(request, "403.html", status=403)


class KeyServiceErrorMiddleware:
    """A key service that cannot answer is a 503; a ciphertext that fails authentication, a 500.

    Integrity failures have already been recorded as incidents by the code that found them.
    htmx and API clients get the same status with a short text body.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, IntegrityError):
            logger.error("request refused: stored data failed its integrity check")
            return _page(request, "integrity.html", 500, "A stored value failed its integrity check.")
        if isinstance(exception, KeyServiceError):
            logger.error("request refused: the key service cannot answer (%s)", exception)
            response = _page(request, "503.html", 503, "The key service cannot be reached; nothing was saved.")
            response["Retry-After"] = "30"
            return response
        return None


def _page(request: HttpRequest, template: str, status: int, text: str) -> HttpResponse:
    if request.headers.get("HX-Request") or "text/html" not in request.headers.get("Accept", "text/html"):
        return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    return render(request, template, status=status)
