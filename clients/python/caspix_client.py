"""Send alerts to Caspix's intake API, each request signed as Caspix verifies it.

Standard library only, and nothing from Caspix itself: copy this one file into the monitoring system
that sends alerts. Every request carries

* ``Content-Digest``: the SHA-256 of the exact body bytes (RFC 9530);
* ``Signature-Input`` and ``Signature``: one HMAC-SHA256 signature (RFC 9421, ``hmac-sha256``) over the
  method, the path and that digest, with ``created``, ``keyid``, a fresh random ``nonce`` and ``alg``.

Caspix refuses a request whose ``created`` is too old or too far ahead of its own clock (keep the
sender's clock on NTP), and any nonce it has seen before: a retry is a new request, signed anew, and
the ``Idempotency-Key`` is what makes it create no second alert.

Usage::

    from caspix_client import CaspixClient, CaspixError

    client = CaspixClient("https://caspix.bank.example", keyid="tms-prod-2025", secret=secret)
    try:
        created = client.post_alert(
            {"source": "tms", "external_id": "A-1001", "scenario": "rapid-cash-out", "score": 87},
            idempotency_key="tms-A-1001",
        )
        alert = client.get_alert(created["id"])
    except CaspixError as error:
        print(error.status, error.body)  # e.g. 401 and the signature failure code

    # Or sign a request sent another way (the headers to add; send ``body`` byte for byte):
    headers = sign("POST", "https://caspix.bank.example/api/v1/alerts", body, "tms-prod-2025", secret)

``secret`` is the raw key (bytes) issued with the key id. During a rotation, switch to the new key id
and secret at any time: Caspix accepts both while the old one is still active.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

ALERTS_PATH = "/api/v1/alerts"
BULK_ALERTS_PATH = "/api/v1/alerts/bulk"
LABEL = "sig1"
COVERED = ("@method", "@path", "content-digest")


class CaspixError(Exception):
    """Caspix answered with an error status; ``body`` is its decoded JSON (or text) answer."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"Caspix answered {status}: {body!r}")
        self.status = status
        self.body = body


def sign(
    method: str,
    url_or_path: str,
    body: bytes,
    keyid: str,
    secret: bytes,
    nonce: str | None = None,
    created: int | None = None,
) -> dict[str, str]:
    """The ``Content-Digest``, ``Signature-Input`` and ``Signature`` headers for one request.

    ``url_or_path`` is the URL or the path the request goes to (the query is not signed); ``nonce``
    and ``created`` default to a fresh random value and the current time, and are given only by tests.
    """
    method = method.upper()
    path = urlsplit(url_or_path).path or "/"
    digest = f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"
    nonce = secrets.token_urlsafe(24) if nonce is None else nonce
    created = int(time.time()) if created is None else created
    params = (
        f"({' '.join(_sf_string(name) for name in COVERED)})"
        f";created={created};keyid={_sf_string(keyid)};nonce={_sf_string(nonce)};alg={_sf_string('hmac-sha256')}"
    )
    # RFC 9421 section 2.5: one line per covered component in the order covered, then the parameters;
    # LF between lines, none after the last.
    base = "\n".join(
        [
            f'"@method": {method}',
            f'"@path": {path}',
            f'"content-digest": {digest}',
            f'"@signature-params": {params}',
        ]
    )
    signature = hmac.new(secret, base.encode("ascii"), hashlib.sha256).digest()
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{_b64(signature)}:",
    }


class CaspixClient:
    """A signed JSON client for the intake API of one Caspix installation, as one API key."""

    def __init__(self, base_url: str, keyid: str, secret: bytes, *, timeout: float = 30.0) -> None:
        if urlsplit(base_url).scheme not in {"https", "http"}:
            raise ValueError("base_url must be an https:// (or, on loopback, http://) URL")
        self.base_url = base_url.rstrip("/")
        self.keyid = keyid
        self._secret = secret
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"CaspixClient({self.base_url!r}, keyid={self.keyid!r})"  # never the secret

    def post_alert(self, payload: Mapping[str, Any], idempotency_key: str) -> Any:
        """Submit one alert; the same ``idempotency_key`` on a retry never creates a second one."""
        return self._send("POST", ALERTS_PATH, payload, idempotency_key)

    def post_alerts_bulk(self, payloads: Sequence[Mapping[str, Any]], idempotency_key: str) -> Any:
        """Submit several alerts in one request, under one idempotency key for the whole batch."""
        return self._send("POST", BULK_ALERTS_PATH, list(payloads), idempotency_key)

    def get_alert(self, alert_id: int | str) -> Any:
        """One alert as Caspix holds it."""
        return self._send("GET", f"{ALERTS_PATH}/{quote(str(alert_id), safe='')}", None, None)

    def _send(self, method: str, path: str, payload: Any, idempotency_key: str | None) -> Any:
        url = self.base_url + path
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode("utf-8")
        headers = {"Accept": "application/json", **sign(method, url, body, self.keyid, self._secret)}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked in __init__)
            url, data=body if payload is not None else None, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (as above)
                return _decode(response.read())
        except urllib.error.HTTPError as error:
            with error:
                raise CaspixError(error.code, _decode(error.read())) from None


def _decode(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def _sf_string(value: str) -> str:
    """An RFC 8941 sf-string: printable ASCII in double quotes, with ``\\`` and ``"`` escaped."""
    if not all(" " <= char <= "~" for char in value):
        raise ValueError("structured-field strings hold printable ASCII only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
