"""Who is calling the intake API: a signed request from an active client, from where it may call.

:class:`SignedRequest` verifies the RFC 9421 signature (``cases.signatures``) with the client's
active keys, spends the nonce in the cache (Redis in production: ``SET NX`` until the signature
window closes), and checks the source address against the client's networks. Every refusal is a
ledger event (``API_REQUEST_REFUSED``: the failure code, the key id given and the source
address; never the signature or the body) and a 401 (403 for a source outside the networks).
:class:`HasScope` demands the scope a view names; :class:`ClientRate` holds each client to its
rate limit.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils.encoding import escape_uri_path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from audit.events import EventType
from audit.ledger import Actor, record
from cases.models import ApiClient, ApiKey
from cases.signatures import SignatureError, read_signature, verify_request
from caspix.problems import Problem
from caspix.requestcontext import client_address

logger = logging.getLogger(__name__)

ACTOR = Actor.system("intake API")


def raw_path(request: HttpRequest) -> str:
    """The path as the client sent it (what it signed): the server's raw URI when it gives one."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        return str(raw).split("?", 1)[0]
    return escape_uri_path(request.path)


def refuse(request: HttpRequest, code: str, keyid: str | None, status: int = 401) -> Problem:
    """Record a refused request in the ledger and the log; the problem to answer with."""
    with transaction.atomic():
        record(
            EventType.API_REQUEST_REFUSED,
            actor=ACTOR,
            object_type="api-key",
            object_id=keyid or "",
            reason=code,
            after={"method": request.method, "path": request.path[:200]},
        )
    logger.warning("intake request refused: %s", code, extra={"keyid": keyid})
    if status == 403:
        return Problem(403, "source-not-allowed", "The client may not call from this address", "source not allowed")
    return Problem(401, "unauthenticated", "The request is not signed as required", code)


class SignedRequest(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        """The key that signed the request, as ``request.auth`` (its client: ``request.auth.client``).

        ``request.user`` stays anonymous: DRF hands it to Django's request, where the session
        middleware would take a machine for a person."""
        django_request: HttpRequest = request._request
        keys: dict[str, ApiKey] = {}

        def secrets_of(keyid: str) -> list[bytes]:
            key = ApiKey.objects.active().select_related("client").filter(key_id=keyid).first()
            if key is None:
                return []
            keys[keyid] = key
            return [key.secret_bytes()]

        def nonce_seen(keyid: str, nonce: str, expires_at: int) -> bool:
            timeout = max(1, expires_at - int(time.time()))
            return not cache.add(f"caspix:intake:nonce:{keyid}:{nonce}", 1, timeout=timeout)

        try:
            verified = verify_request(
                method=django_request.method or "",
                path=raw_path(django_request),
                headers=django_request.headers,
                body=django_request.body,
                keys=secrets_of,
                now=time.time(),
                window_seconds=settings.INTAKE["SIGNATURE_WINDOW"],
                nonce_seen=nonce_seen,
            )
        except SignatureError as error:
            raise refuse(django_request, str(error.code), _keyid(django_request)) from None
        key = keys[verified.keyid]
        client = key.client
        if not _allowed(client, client_address(django_request)):
            raise refuse(django_request, "source_not_allowed", verified.keyid, status=403)
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return 'Signature realm="caspix"'


def _keyid(request: HttpRequest) -> str | None:
    """The key id the request names, if it can be read at all (for the record of a refusal)."""
    try:
        value = read_signature(request.headers).params.get("keyid")
    except SignatureError:
        return None
    return value[:64] if isinstance(value, str) else None


def _allowed(client: ApiClient, address: str | None) -> bool:
    if not client.networks:
        return True
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(network) for network in client.networks)


class HasScope(BasePermission):
    """The signed client holds the scope the view names (``required_scope``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        return isinstance(key, ApiKey) and key.client.allows(view.required_scope)


class ClientRate(BaseThrottle):
    """At most ``client.rate_limit`` requests a minute per client, counted in the shared cache."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        client = request.auth.client
        window = int(time.time() // 60)
        # The database's name too: clients of two databases sharing one cache (test runs) never mix.
        key = f"caspix:intake:rate:{connection.settings_dict['NAME']}:{client.pk}:{window}"
        cache.add(key, 0, timeout=120)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=120)
            count = 1
        self.wait_seconds = 60 - time.time() % 60
        return count <= client.rate_limit

    def wait(self) -> float:
        return float(self.wait_seconds)


class SignedRequestScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """How the OpenAPI description names the signature (drf-spectacular)."""

    target_class = SignedRequest
    name = "httpMessageSignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Signature",
            "description": "RFC 9421 HTTP Message Signature (hmac-sha256) over @method, @path and content-digest, "
            "with Signature-Input and Content-Digest: see docs/API.md",
        }
