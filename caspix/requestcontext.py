"""Request and user ids for every log line, and the ``X-Request-ID`` header.

A well-formed incoming ``X-Request-ID`` (a UUID, with or without hyphens, as load balancers and
nginx's ``$request_id`` produce) is kept so a request can be followed across systems; anything
else is replaced by a fresh id and never logged as received.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
client_address_var: ContextVar[str | None] = ContextVar("client_address", default=None)
user_id_var: ContextVar[int | None] = ContextVar("user_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"\A[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z", re.IGNORECASE)


def accept_request_id(value: str | None) -> str:
    """The incoming id, lower-cased, when well-formed; otherwise a fresh random one."""
    if value is not None and _WELL_FORMED.match(value):
        return value.lower()
    return uuid.uuid4().hex


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address: behind the deployment's own proxy, the one it appended last to
    ``X-Forwarded-For`` (earlier entries are the client's to forge); otherwise the socket peer."""
    candidate = request.META.get("REMOTE_ADDR", "")
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            candidate = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        request_token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        address_token = client_address_var.set(client_address(request))
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)
            client_address_var.reset(address_token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class UserContextMiddleware:
    """Puts the authenticated user's id (never their name) into the log context."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            user_id_var.set(user.pk)
        return self.get_response(request)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``user_id`` to every record (``-`` and null outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        return True
