"""A test identity provider: its own key pair and certificate, and SAML responses signed with
xmlsec (through python3-saml's signer), well-formed or deliberately broken."""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils

SP_BASE = "https://caspix.test"
ACS = f"{SP_BASE}/saml/acs/"
SP_ENTITY = f"{SP_BASE}/saml/metadata/"
IDP = "https://idp.bank.test/saml"


@functools.cache
def key_pair(name: str) -> tuple[str, str]:
    """(private key PEM, self-signed certificate PEM) for ``name``, made once per test run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


MULTI_FACTOR = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract"


def configuration() -> dict[str, object]:
    _idp_key, idp_cert = key_pair("idp")
    sp_key, sp_cert = key_pair("sp")
    return {
        "idp_entity_id": IDP,
        "idp_sso_url": f"{IDP}/sso",
        "idp_cert": idp_cert,
        "sp_base_url": SP_BASE,
        "sp_cert": sp_cert,
        "sp_key": sp_key,
        "roles_attribute": "caspixRoles",
        "teams_attribute": "caspixTeams",
        "mfa": "caspix",
        "mfa_contexts": [MULTI_FACTOR],
    }


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def assertion(
    *,
    in_response_to: str,
    subject: str = "alice-0001",
    roles: Iterable[str] = ("analyst",),
    teams: Iterable[str] = (),
    assertion_id: str | None = None,
    audience: str = SP_ENTITY,
    lifetime: timedelta = timedelta(minutes=5),
    issuer: str = IDP,
    extra: str = "",
    authn_context: str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
) -> str:
    now = datetime.now(UTC)
    expiry = _time(now + lifetime)
    values = "".join(f"<saml:AttributeValue>{role}</saml:AttributeValue>" for role in roles)
    team_values = "".join(f"<saml:AttributeValue>{team}</saml:AttributeValue>" for team in teams)
    identifier = assertion_id or "_a" + uuid.uuid4().hex
    return (
        f'<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{identifier}" '
        f'Version="2.0" IssueInstant="{_time(now)}">'
        f"<saml:Issuer>{issuer}</saml:Issuer>"
        "<saml:Subject>"
        f'<saml:NameID Format="{C.NAMEID_PERSISTENT}">{subject}</saml:NameID>'
        '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<saml:SubjectConfirmationData NotOnOrAfter="{expiry}" Recipient="{ACS}" InResponseTo="{in_response_to}"/>'
        "</saml:SubjectConfirmation>"
        "</saml:Subject>"
        f'<saml:Conditions NotBefore="{_time(now - timedelta(minutes=1))}" NotOnOrAfter="{expiry}">'
        f"<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>"
        "</saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{_time(now)}" SessionIndex="_s{uuid.uuid4().hex}">'
        f"<saml:AuthnContext><saml:AuthnContextClassRef>{authn_context}</saml:AuthnContextClassRef></saml:AuthnContext>"
        "</saml:AuthnStatement>"
        "<saml:AttributeStatement>"
        f'<saml:Attribute Name="caspixRoles">{values}</saml:Attribute>'
        f'<saml:Attribute Name="caspixTeams">{team_values}</saml:Attribute>'
        "</saml:AttributeStatement>"
        f"{extra}"
        "</saml:Assertion>"
    )


def sign(xml: str, *, algorithm: str = C.RSA_SHA256, digest: str = C.SHA256) -> str:
    key, cert = key_pair("idp")
    signed = OneLogin_Saml2_Utils.add_sign(xml, key, cert, sign_algorithm=algorithm, digest_algorithm=digest)
    text = signed.decode() if isinstance(signed, bytes) else str(signed)
    return text.split("?>", 1)[1] if text.startswith("<?xml") else text


def response(*assertions: str, in_response_to: str, destination: str = ACS, before: str = "") -> str:
    """A Response around the given assertions (signed or not), ``before`` them if asked."""
    return (
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_r{uuid.uuid4().hex}" Version="2.0" IssueInstant="{_time(datetime.now(UTC))}" '
        f'Destination="{destination}" InResponseTo="{in_response_to}">'
        f"<saml:Issuer>{IDP}</saml:Issuer>"
        f'<samlp:Status><samlp:StatusCode Value="{C.STATUS_SUCCESS}"/></samlp:Status>'
        f"{before}{''.join(assertions)}"
        "</samlp:Response>"
    )


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()
