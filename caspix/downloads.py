"""A file handed to the browser to save, never to render: one response for every download, and
one rule for the CSV cells in it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.http import content_disposition_header


def attachment(
    body: bytes | Iterable[bytes],
    *,
    content_type: str,
    filename: str,
    size: int | None = None,
    sha256: str | None = None,
) -> HttpResponseBase:
    """``body`` (bytes, or chunks streamed as they come) as an attachment named ``filename``:
    never cached, sandboxed by its own CSP should a browser render it anyway, with its length and
    SHA-256 (``Digest``) when known."""
    response: HttpResponseBase
    if isinstance(body, bytes):
        response = HttpResponse(body, content_type=content_type)
        size = len(body) if size is None else size
    else:
        response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename) or ""
    if size is not None:
        response["Content-Length"] = str(size)
    response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    if sha256:
        response["Digest"] = f"sha-256={sha256}"
    return response


#: What a spreadsheet may take a cell for a formula by (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet shows as text and never runs: a cell that would start a
    formula gets a quote before it (names come from people and from the banks' systems)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
