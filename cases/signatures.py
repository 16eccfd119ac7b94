"""RFC 9421 HTTP Message Signatures for the alert intake API: verify one ``hmac-sha256`` signature.

Pure: no Django, no database, no clock and no replay store of its own. The caller passes the request's
method, path, header fields and exact body bytes, a lookup of the client's active secrets, the time and
an atomic "seen this nonce?" store, and gets :class:`Verified` back or :class:`SignatureError` with a
stable :class:`Failure` code. ``clients/python/caspix_client.py`` is the signing side, written
separately from this one so that each checks the other.

What a request must carry
    ``Content-Digest`` (RFC 9530, ``sha-256`` or ``sha-512``) over the body as sent, and one signature::

        Content-Digest: sha-256=:<base64 SHA-256 of the body>:
        Signature-Input: sig1=("@method" "@path" "content-digest")
            ;created=1618884473;keyid="tms-1";nonce="…";alg="hmac-sha256"    (one line on the wire)
        Signature: sig1=:<base64 HMAC-SHA256 of the signature base>:

Policy
    * Exactly one signature: one label in ``Signature-Input``, the same one in ``Signature``. Several
      would leave open which one vouches for the request, and an intermediary could add its own.
    * ``@method``, ``@path`` and ``content-digest`` must be covered. Other covered components may only be
      header fields the request carries; other derived components (``@query``, ``@authority``, …) and
      component parameters (``;sf``, ``;key``, ``;bs``, ``;req``, ``;tr``) are refused, not guessed at.
    * ``created``, ``keyid`` and ``nonce`` are required; ``alg`` may be absent but if present must be
      ``hmac-sha256``; ``expires`` is honoured; ``tag`` is allowed; any other parameter is refused.
    * ``created`` may lie at most ``window_seconds`` in the past and :data:`CLOCK_SKEW_SECONDS` in the future.
    * In ``Content-Digest`` every supported algorithm present must match, at least one must be present, and
      unsupported ones (``md5``, ``sha``, …) are ignored, never accepted alone (RFC 9530 section 2 lets a
      recipient ignore any digest).
    * During key rotation a client has two active secrets: the signature is accepted if either matches.

Order of checks
    Format first, then time and digest (local and cheap), then the key lookup, then the HMAC, and only
    after the signature verified the replay store: an unsigned request can never burn a client's nonce.

Secrets, signatures and bodies are never logged and never appear in an error's detail; this module logs
nothing at all. The caller logs the code and the keyid.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeAlias

from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item
from http_sfv.types import BareItemType

ALGORITHM = "hmac-sha256"
REQUIRED_COMPONENTS = ("@method", "@path", "content-digest")
"""Covered by every intake signature: what is done, to which resource, with which body."""

CLOCK_SKEW_SECONDS = 30
"""How far in the future ``created`` may lie: clocks of upstream systems drift a little."""

MAX_NONCE_LENGTH = 128
MAX_KEYID_LENGTH = 128

DIGEST_ALGORITHMS: Mapping[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda body: hashlib.sha256(body).digest(),
    "sha-512": lambda body: hashlib.sha512(body).digest(),
}
"""RFC 9530 algorithms accepted in ``Content-Digest``."""

_PARAMETERS = frozenset({"created", "expires", "nonce", "alg", "keyid", "tag"})
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_OWS = " \t"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
"""Header fields by name (any case), or ``(name, value)`` lines where a field may repeat."""

KeyLookup: TypeAlias = Callable[[str], Iterable[bytes]]
"""``keys(keyid)``: the client's active secrets, none for an unknown or revoked key."""

NonceSeen: TypeAlias = Callable[[str, str, int], bool]
"""``nonce_seen(keyid, nonce, expires_at)``: record the nonce until ``expires_at`` (Unix seconds) and
say whether it was already there. Must be atomic (Redis ``SET NX EXAT``, an insert on a unique key)."""


class Failure(StrEnum):
    """Why a request was refused: stable codes for API answers, logs and metrics."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    MULTIPLE_SIGNATURES = "multiple_signatures"
    LABEL_MISMATCH = "label_mismatch"
    MISSING_COMPONENT = "missing_component"
    UNSUPPORTED_COMPONENT = "unsupported_component"
    DUPLICATE_COMPONENT = "duplicate_component"
    MISSING_PARAMETER = "missing_parameter"
    MALFORMED_PARAMETER = "malformed_parameter"
    ALG_MISMATCH = "alg_mismatch"
    CREATED_STALE = "created_stale"
    CREATED_IN_FUTURE = "created_in_future"
    EXPIRED = "expired"
    NONCE_MISSING = "nonce_missing"
    NONCE_TOO_LONG = "nonce_too_long"
    NONCE_REPLAYED = "nonce_replayed"
    DIGEST_MISSING = "digest_missing"
    DIGEST_UNSUPPORTED = "digest_unsupported"
    DIGEST_MISMATCH = "digest_mismatch"
    UNKNOWN_KEY = "unknown_key"
    SIGNATURE_MISMATCH = "signature_mismatch"


class SignatureError(Exception):
    """The request is not signed as the intake API requires; ``code`` says which check failed.

    ``detail`` is for the client's developers and the log: it names fields and parameters, never a
    secret, a signature or the body.
    """

    def __init__(self, code: Failure, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Verified:
    """Who signed the request (``keyid``), and the values the caller records with the alert."""

    keyid: str
    label: str
    created: datetime
    nonce: str


@dataclass(frozen=True)
class SignatureFields:
    """One signature as ``Signature-Input`` and ``Signature`` state it, parsed but not yet judged."""

    label: str
    components: tuple[str, ...]
    params: Mapping[str, BareItemType]
    signature_params: str
    """The inner list re-serialised (RFC 8941 section 4): the value of ``"@signature-params"``."""
    signature: bytes


def verify_request(
    *,
    method: str,
    path: str,
    headers: Headers,
    body: bytes,
    keys: KeyLookup,
    now: datetime | float,
    window_seconds: int,
    nonce_seen: NonceSeen,
) -> Verified:
    """Verify the request's signature and record its nonce, or raise :class:`SignatureError`.

    ``path`` is the target URI's path exactly as on the request line (percent-encoding untouched, no
    query); ``body`` the bytes as received, before any decoding. ``now`` is a timezone-aware datetime or
    Unix seconds.
    """
    fields = field_values(headers)
    signed = read_signature(fields)
    _check_components(signed.components)
    keyid, created, nonce = _check_params(signed.params, now=_seconds(now), window_seconds=window_seconds)
    _check_digest(fields.get("content-digest"), body)

    derived = {"@method": method, "@path": path or "/"}
    covered = []
    for name in signed.components:
        value = derived.get(name, fields.get(name))
        if value is None:
            raise SignatureError(Failure.MISSING_COMPONENT, f"covered field {name!r} is not in the request")
        covered.append((name, value))
    base = signature_base(covered, signed.signature_params)

    secrets = list(keys(keyid))
    if not secrets:
        raise SignatureError(Failure.UNKNOWN_KEY, f"no active key {keyid!r}")
    if not any(hmac.compare_digest(_hmac(secret, base), signed.signature) for secret in secrets):
        raise SignatureError(Failure.SIGNATURE_MISMATCH, f"signature {signed.label!r} does not verify")

    # Only now, with the signature verified, may the nonce be spent; it need not outlive the window.
    if nonce_seen(keyid, nonce, created + window_seconds + 1):
        raise SignatureError(Failure.NONCE_REPLAYED, f"nonce already used with key {keyid!r}")
    return Verified(keyid=keyid, label=signed.label, created=datetime.fromtimestamp(created, UTC), nonce=nonce)


def field_values(headers: Headers) -> dict[str, str]:
    """Lower-cased field names to values, as RFC 9421 section 2.1 reads them.

    Each line's value is trimmed of surrounding whitespace and repeated fields are joined with ``", "``
    in the order received.
    """
    lines = headers.items() if isinstance(headers, Mapping) else headers
    values: dict[str, list[str]] = {}
    for name, value in lines:
        values.setdefault(name.lower(), []).append(value.strip(_OWS))
    return {name: ", ".join(parts) for name, parts in values.items()}


def read_signature(headers: Headers) -> SignatureFields:
    """Parse the one signature that ``Signature-Input`` and ``Signature`` describe.

    Checks form only (labels, an inner list of strings, a byte sequence); which components and parameters
    are acceptable is :func:`verify_request`'s business.
    """
    fields = field_values(headers)
    inputs = _dictionary(fields, "signature-input")
    signatures = _dictionary(fields, "signature")
    if len(inputs) != 1 or len(signatures) != 1:
        raise SignatureError(Failure.MULTIPLE_SIGNATURES, "exactly one signature label is accepted")
    [(label, member)] = inputs.items()
    if label not in signatures:
        raise SignatureError(Failure.LABEL_MISMATCH, "Signature-Input and Signature name different labels")

    if not isinstance(member, InnerList):
        raise SignatureError(Failure.MALFORMED_HEADER, "Signature-Input is not an inner list")
    components = []
    for item in member:
        if type(item.value) is not str:
            raise SignatureError(Failure.MALFORMED_HEADER, "a component identifier is not a string")
        if item.params:
            raise SignatureError(Failure.UNSUPPORTED_COMPONENT, f"component parameters on {item.value!r}")
        components.append(item.value)

    signature = signatures[label]
    if not isinstance(signature, Item) or type(signature.value) is not bytes:
        raise SignatureError(Failure.MALFORMED_HEADER, "Signature is not a byte sequence")
    return SignatureFields(
        label=label,
        components=tuple(components),
        params=dict(member.params),
        signature_params=_serialise(member),
        signature=signature.value,
    )


def signature_base(components: Sequence[tuple[str, str]], signature_params: str) -> bytes:
    """The signature base of RFC 9421 section 2.5 for component values already resolved.

    One line per covered component, ``"name": value``, in the order covered, the identifier serialised as
    a structured-field string; then ``"@signature-params": ``; lines joined by LF with no trailing newline.
    A value must be printable ASCII: a line feed in one could forge another line (no HTTP parser lets
    one through, but this function may not rely on its caller's).
    """
    lines = []
    for name, value in components:
        if not value.isascii() or _CONTROL.search(value):
            raise SignatureError(Failure.MALFORMED_HEADER, f"the value of {name!r} is not printable ASCII")
        lines.append(f"{_serialise(Item(name))}: {value}")
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii")


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The ``Content-Digest`` field value (RFC 9530) for ``body``."""
    return f"{algorithm}={_serialise(Item(DIGEST_ALGORITHMS[algorithm](body)))}"


def _check_components(components: tuple[str, ...]) -> None:
    if len(set(components)) != len(components):
        raise SignatureError(Failure.DUPLICATE_COMPONENT, "a component is covered twice")
    for name in components:
        if name not in REQUIRED_COMPONENTS and not _FIELD_NAME.fullmatch(name):
            raise SignatureError(Failure.UNSUPPORTED_COMPONENT, f"component {name!r} is not supported")
    missing = [name for name in REQUIRED_COMPONENTS if name not in components]
    if missing:
        raise SignatureError(Failure.MISSING_COMPONENT, f"not covered: {', '.join(missing)}")


def _check_params(params: Mapping[str, BareItemType], *, now: float, window_seconds: int) -> tuple[str, int, str]:
    """The signature parameters' keyid, created and nonce, once each is present, typed and timely."""
    unknown = sorted(set(params) - _PARAMETERS)
    if unknown:
        raise SignatureError(Failure.MALFORMED_PARAMETER, f"unknown parameters: {', '.join(unknown)}")
    if "alg" in params and (type(params["alg"]) is not str or params["alg"] != ALGORITHM):
        raise SignatureError(Failure.ALG_MISMATCH, f"alg must be {ALGORITHM!r}")
    for name in ("keyid", "created"):
        if name not in params:
            raise SignatureError(Failure.MISSING_PARAMETER, f"no {name!r} parameter")

    keyid, created, expires, nonce = params["keyid"], params["created"], params.get("expires"), params.get("nonce")
    if type(keyid) is not str or not 0 < len(keyid) <= MAX_KEYID_LENGTH:
        raise SignatureError(Failure.MALFORMED_PARAMETER, "keyid must be a short string")
    # bool is an int to Python, but ?1 is no time.
    if type(created) is not int or (expires is not None and type(expires) is not int):
        raise SignatureError(Failure.MALFORMED_PARAMETER, "created and expires must be integers")
    if nonce is None or nonce == "":
        raise SignatureError(Failure.NONCE_MISSING, "no nonce parameter")
    if type(nonce) is not str:
        raise SignatureError(Failure.MALFORMED_PARAMETER, "nonce must be a string")
    if len(nonce) > MAX_NONCE_LENGTH:
        raise SignatureError(Failure.NONCE_TOO_LONG, f"nonce longer than {MAX_NONCE_LENGTH} characters")

    if created < now - window_seconds:
        raise SignatureError(Failure.CREATED_STALE, f"created more than {window_seconds} s ago")
    if created > now + CLOCK_SKEW_SECONDS:
        raise SignatureError(Failure.CREATED_IN_FUTURE, "created lies in the future")
    if expires is not None and now > expires:
        raise SignatureError(Failure.EXPIRED, "the signature has expired")
    return keyid, created, nonce


def _check_digest(value: str | None, body: bytes) -> None:
    if not value:
        raise SignatureError(Failure.DIGEST_MISSING, "no Content-Digest header")
    digests = _dictionary({"content-digest": value}, "content-digest")
    supported = [(algorithm, digests[algorithm]) for algorithm in DIGEST_ALGORITHMS if algorithm in digests]
    if not supported:
        raise SignatureError(Failure.DIGEST_UNSUPPORTED, f"Content-Digest needs one of {', '.join(DIGEST_ALGORITHMS)}")
    for algorithm, member in supported:
        if not isinstance(member, Item) or type(member.value) is not bytes:
            raise SignatureError(Failure.MALFORMED_HEADER, f"Content-Digest {algorithm} is not a byte sequence")
        if not hmac.compare_digest(DIGEST_ALGORITHMS[algorithm](body), member.value):
            raise SignatureError(Failure.DIGEST_MISMATCH, f"Content-Digest {algorithm} does not match the body")


def _dictionary(fields: Mapping[str, str], name: str) -> Dictionary:
    value = fields.get(name)
    if not value:
        raise SignatureError(Failure.MISSING_HEADER, f"no {name} header")
    parsed = Dictionary()
    try:
        parsed.parse(value.encode("ascii"))
    except ValueError as error:  # UnicodeEncodeError included
        raise SignatureError(Failure.MALFORMED_HEADER, f"{name} is not a structured-field dictionary") from error
    return parsed


def _serialise(value: Item | InnerList) -> str:
    try:
        return str(value)
    except ValueError as error:  # a component name outside printable ASCII, an integer out of range
        raise SignatureError(Failure.MALFORMED_HEADER, "a value cannot be serialised as a structured field") from error


def _seconds(now: datetime | float) -> float:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return now


def _hmac(secret: bytes, base: bytes) -> bytes:
    return hmac.new(secret, base, hashlib.sha256).digest()


def sign_request(
    method: str, path: str, body: bytes, keyid: str, secret: bytes, *, created: int | None = None
) -> dict[str, str]:
    """The headers that sign an outbound request (a webhook delivery) as :func:`verify_request`
    verifies it: ``Content-Digest``, ``Signature-Input`` and ``Signature``, label ``sig1``."""
    digest = content_digest(body)
    inner = InnerList([Item(name) for name in REQUIRED_COMPONENTS])
    inner.params["created"] = int(time.time()) if created is None else created
    inner.params["keyid"] = keyid
    inner.params["nonce"] = secrets.token_urlsafe(24)
    inner.params["alg"] = ALGORITHM
    params = _serialise(inner)
    base = signature_base([("@method", method.upper()), ("@path", path or "/"), ("content-digest", digest)], params)
    signature = _serialise(Item(_hmac(secret, base)))
    return {"Content-Digest": digest, "Signature-Input": f"sig1={params}", "Signature": f"sig1={signature}"}
