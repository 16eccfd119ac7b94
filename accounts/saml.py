"""SAML 2.0 service provider (python3-saml): metadata, signed AuthnRequests, the assertion consumer.

python3-saml is strict here, with the defaults that bite changed (security-notes.md): signed
assertions required, SHA-1 refused, AuthnRequests signed, responses bound to the request this
session sent. What it leaves to the application is done before or after it:

* before: a response larger than ``CASPIX_SAML_MAX_BYTES`` or carrying an XSLT transform is refused
  unparsed (python3-saml#447), and anything that is not one XML document with no DTD;
* around: the response must answer an AuthnRequest this SP sent, once, within ten minutes, to the
  browser that carries that request's signed cookie;
* after: the assertion id is stored with a unique constraint, so a replay is refused
  (python3-saml#350); the user is found by (issuer, NameID) only, never by e-mail; roles and
  teams are taken from the configured attributes, privileged roles excepted (those only change
  through four-eyes inside Caspix).

Every refusal is a 400 page with a generic message, a ledger event and a log line without
identifiers; nothing here answers 500 to a malformed response.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.core.signing import BadSignature
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from accounts import federation
from accounts.actions import actor_of
from accounts.models import SamlRequest, SeenAssertion, User
from audit.events import EventType
from audit.ledger import record
from caspix.access import public

logger = logging.getLogger(__name__)

REQUEST_COOKIE = "caspix_saml_request"
REQUEST_SALT = "caspix.accounts.saml.request"
REQUEST_LIFETIME = timedelta(minutes=10)
XSLT = b"http://www.w3.org/1999/XSL/Transform"


class SamlRefusedError(Exception):
    """Why a response is refused, in words for the ledger (never shown to the user)."""


def configuration() -> dict[str, Any]:
    config: dict[str, Any] | None = settings.CASPIX_SAML
    if not config:
        raise Http404("SAML is not configured")
    return config


def saml_settings() -> dict[str, Any]:
    config = configuration()
    base = str(config["sp_base_url"]).rstrip("/")
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": f"{base}{reverse('accounts:saml_metadata')}",
            "assertionConsumerService": {
                "url": f"{base}{reverse('accounts:saml_acs')}",
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
            },
            "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_PERSISTENT,
            "x509cert": config["sp_cert"],
            "privateKey": config["sp_key"],
        },
        "idp": {
            "entityId": config["idp_entity_id"],
            "singleSignOnService": {
                "url": config["idp_sso_url"],
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            },
            "x509cert": config["idp_cert"],
        },
        "security": {
            "authnRequestsSigned": True,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,  # many IdPs sign the assertion only; that one is required
            "wantNameId": True,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
            "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
            "rejectUnsolicitedResponsesWithInResponseTo": True,
            "allowRepeatAttributeName": False,
            "requestedAuthnContext": False,
        },
    }


def _request_data(request: HttpRequest) -> dict[str, Any]:
    base = str(configuration()["sp_base_url"])
    return {
        "https": "on" if base.startswith("https://") else "off",
        "http_host": base.split("://", 1)[1].rstrip("/"),
        "script_name": request.path,
        "get_data": request.GET.copy(),
        "post_data": request.POST.copy(),
    }


@public
@require_safe
def metadata(request: HttpRequest) -> HttpResponse:
    """The SP metadata an IdP administrator loads: entity id, ACS, signing certificate."""
    sp = OneLogin_Saml2_Settings(saml_settings(), sp_validation_only=True)
    xml = sp.get_sp_metadata()
    errors = sp.validate_metadata(xml)
    if errors:
        raise RuntimeError(f"the SP metadata does not validate: {', '.join(errors)}")
    return HttpResponse(xml, content_type="application/samlmetadata+xml")


@public
@require_safe
def start(request: HttpRequest) -> HttpResponseBase:
    """Send the browser to the IdP with a signed AuthnRequest; remember its id in the session."""
    auth = OneLogin_Saml2_Auth(_request_data(request), old_settings=saml_settings())
    url = auth.login(return_to=request.GET.get("next", ""))
    request_id = auth.get_last_request_id()
    SamlRequest.objects.create(request_id=request_id)
    response = HttpResponseRedirect(url)
    response.set_signed_cookie(
        REQUEST_COOKIE,
        request_id,
        salt=REQUEST_SALT,
        max_age=int(REQUEST_LIFETIME.total_seconds()),
        path=reverse("accounts:saml_acs"),
        secure=True,
        httponly=True,
        samesite="None",  # it must come back with the IdP's cross-site POST
    )
    return response


def _answered_request(request: HttpRequest) -> str:
    """The id of the request this browser sent, spent now: once, and within its lifetime."""
    try:
        request_id = request.get_signed_cookie(
            REQUEST_COOKIE, salt=REQUEST_SALT, max_age=int(REQUEST_LIFETIME.total_seconds())
        )
    except (KeyError, BadSignature) as error:
        raise SamlRefusedError("no request from this browser") from error
    spent = SamlRequest.objects.filter(
        request_id=request_id, answered_at__isnull=True, created_at__gte=timezone.now() - REQUEST_LIFETIME
    ).update(answered_at=timezone.now())
    if not spent:
        raise SamlRefusedError("request unknown, answered already or expired")
    return str(request_id)


def _screen(encoded: str) -> None:
    """Refuse before python3-saml parses: oversize, not base64, not one plain XML document, XSLT."""
    if not encoded:
        raise SamlRefusedError("no SAMLResponse")
    if len(encoded) > settings.CASPIX_SAML_MAX_BYTES * 4 // 3 + 4:
        raise SamlRefusedError("response too large")
    try:
        xml = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SamlRefusedError("response is not base64") from error
    if len(xml) > settings.CASPIX_SAML_MAX_BYTES:
        raise SamlRefusedError("response too large")
    if XSLT in xml:
        raise SamlRefusedError("response carries an XSLT transform")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        document = etree.fromstring(xml, parser=parser)
    except etree.XMLSyntaxError as error:
        raise SamlRefusedError("response is not well-formed XML") from error
    if document.getroottree().docinfo.internalDTD is not None or b"<!DOCTYPE" in xml:
        raise SamlRefusedError("response carries a DTD")


@public
@csrf_exempt  # the IdP posts it; the response is bound to this session's request id instead
@require_POST
def acs(request: HttpRequest) -> HttpResponse:
    """The assertion consumer: screen, validate, refuse replays, find the user, sign them in."""
    configuration()  # 404 where SAML is off
    try:
        _screen(request.POST.get("SAMLResponse", ""))
        request_id = _answered_request(request)
        auth = OneLogin_Saml2_Auth(_request_data(request), old_settings=saml_settings())
        auth.process_response(request_id=request_id)
        if auth.get_errors() or not auth.is_authenticated():
            raise SamlRefusedError(f"invalid response: {auth.get_last_error_reason() or ', '.join(auth.get_errors())}")
        user = _sign_in(request, auth)
    except SamlRefusedError as refusal:
        return federation.refused(request, "saml", str(refusal))
    relay = request.POST.get("RelayState", "")
    target = relay if relay.startswith("/") and not relay.startswith("//") else reverse("accounts:home")
    federation.complete(request, user, provider_mfa=provider_mfa(auth), authenticated_at=None)
    response = HttpResponseRedirect(target)
    response.delete_cookie(REQUEST_COOKIE, path=reverse("accounts:saml_acs"), samesite="None")
    return response


def provider_mfa(auth: OneLogin_Saml2_Auth) -> bool:
    """Whether the policy lets the IdP's second factor stand for ours: ``CASPIX_SAML_MFA=idp``
    and the assertion's AuthnContextClassRef is one the bank lists as multi-factor."""
    config = configuration()
    contexts = auth.get_last_authn_contexts() or []
    return config["mfa"] == "idp" and any(context in config["mfa_contexts"] for context in contexts)


def _sign_in(request: HttpRequest, auth: OneLogin_Saml2_Auth) -> User:
    config = configuration()
    issuer = str(config["idp_entity_id"])
    subject = auth.get_nameid()
    assertion_id = auth.get_last_assertion_id()
    if not subject or not assertion_id:
        raise SamlRefusedError("no NameID or assertion id")
    expiry = auth.get_last_assertion_not_on_or_after()
    attributes = auth.get_attributes()
    try:
        with transaction.atomic(durable=True):
            SeenAssertion.objects.create(
                issuer=issuer,
                assertion_id=assertion_id,
                not_on_or_after=datetime.fromtimestamp(expiry, tz=UTC) if expiry else None,
            )
            user = federation.user_for(issuer, subject, preferred=subject, source="SAML federation")
            federation.sync(
                user,
                attributes.get(str(config["roles_attribute"]), []),
                attributes.get(str(config["teams_attribute"]), []),
                source="SAML federation",
            )
            record(
                EventType.SIGNED_IN,
                actor=actor_of(user),
                object_type="user",
                object_id=user.pk,
                reason="saml",
                after={"issuer": issuer, "provider_mfa": provider_mfa(auth)},
            )
    except IntegrityError as error:
        raise SamlRefusedError("assertion replayed") from error
    except federation.RefusedError as refusal:
        raise SamlRefusedError(str(refusal)) from refusal
    login(request, user, backend="accounts.backends.RoleBackend")
    return user
