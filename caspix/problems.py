"""Every API error as RFC 9457 problem details (``application/problem+json``).

A problem names its ``type`` (a relative URI that ``docs/API.md`` documents), a fixed
``title`` for the type, the HTTP ``status``, a ``detail`` for this occurrence, the request id as
``instance``, and, for invalid input, ``errors``: one ``{"field", "message"}`` per fault, the
field as a JSON path into the request body (``alerts[2].transactions[0].amount``). Nothing in a
problem repeats a submitted value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from caspix.requestcontext import request_id_var

MEDIA_TYPE = "application/problem+json"
TYPES = "/api/v1/problems/"


class Problem(exceptions.APIException):
    """An API error of a named type: raise it anywhere below a view."""

    def __init__(
        self, status_code: int, kind: str, title: str, detail: str, *, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.kind = kind
        self.title = title
        self.errors = errors or []
        self.headers: dict[str, str] = {}


# The types the API answers with, by the exception DRF raises.
_KINDS: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.ParseError: ("malformed-request", "The request body is not valid JSON"),
    exceptions.AuthenticationFailed: ("unauthenticated", "The request is not signed as required"),
    exceptions.NotAuthenticated: ("unauthenticated", "The request is not signed as required"),
    exceptions.PermissionDenied: ("forbidden", "The client may not do this"),
    exceptions.NotFound: ("not-found", "No such resource"),
    exceptions.MethodNotAllowed: ("method-not-allowed", "The method is not allowed here"),
    exceptions.NotAcceptable: ("not-acceptable", "The API answers in JSON only"),
    exceptions.UnsupportedMediaType: ("unsupported-media-type", "The body must be application/json"),
    exceptions.Throttled: ("rate-limited", "Too many requests"),
    exceptions.ValidationError: ("invalid-request", "The request does not follow the schema"),
}


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: every error below a view as a problem; anything else is a 500."""
    from rest_framework.views import set_rollback  # here: DRF's views import the parser, which imports this

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    if isinstance(exc, Problem):
        kind, title, errors = exc.kind, exc.title, exc.errors
    else:
        kind, title = next(
            (value for cls, value in _KINDS.items() if isinstance(exc, cls)), ("error", "The request failed")
        )
        errors = field_errors(exc.detail) if isinstance(exc, exceptions.ValidationError) else []
    if isinstance(exc, exceptions.ValidationError) and not isinstance(exc, Problem):
        exc.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    detail = _detail(exc, errors)
    body: dict[str, Any] = {"type": TYPES + kind, "title": title, "status": exc.status_code, "detail": detail}
    request_id = request_id_var.get()
    if request_id != "-":
        body["instance"] = f"urn:caspix:request:{request_id}"
    if errors:
        body["errors"] = errors
    headers = dict(getattr(exc, "headers", None) or {})
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    if wait is not None:
        headers["Retry-After"] = str(int(wait) + 1)
    if exc.status_code == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Signature realm="caspix"'
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers, content_type=MEDIA_TYPE)


def field_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail flattened to ``{"field": JSON path, "message": text}`` entries."""
    if isinstance(detail, Mapping):
        found = []
        for key, value in detail.items():
            name = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            found += field_errors(value, name)
        return found
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"field": path or "(body)", "message": str(item)} for item in detail]
        found = []
        for index, item in enumerate(detail):
            if item:  # DRF leaves an empty entry for each valid element of a list
                found += field_errors(item, f"{path}[{index}]")
        return found
    return [{"field": path or "(body)", "message": str(detail)}]


def _detail(exc: exceptions.APIException, errors: list[dict[str, str]]) -> str:
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{first['field']}: {first['message']}{more}"
    detail = exc.detail
    return str(detail) if isinstance(detail, str) else str(exc.default_detail)
