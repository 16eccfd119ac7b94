"""A software WebAuthn authenticator: real P-256 keys, real CBOR, real signatures.

It answers the options Caspix's ceremony endpoints hand out the way a security key would, and can
be told to misbehave (another origin, another relying party, no user verification, a stale
counter, a broken signature) so the refusals are tested against genuine responses, not mocks.
The browser tests use Chromium's own virtual authenticator instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

USER_PRESENT = 0x01
USER_VERIFIED = 0x04
ATTESTED = 0x40
ORIGIN = "http://localhost:8000"  # the test profile's pinned origin
RP_ID = "localhost"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftAuthenticator:
    def __init__(self, *, user_verifying: bool = True) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.counter = 0
        self.user_verifying = user_verifying
        self.user_handle: str | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _flags(self, verified: bool | None) -> int:
        verified = self.user_verifying if verified is None else verified
        return USER_PRESENT | (USER_VERIFIED if verified else 0)

    def register(
        self, options: dict[str, Any], *, origin: str = ORIGIN, rp_id: str = RP_ID, verified: bool | None = None
    ) -> dict[str, Any]:
        """The answer to ``navigator.credentials.create`` for these options."""
        self.user_handle = options["user"]["id"]
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin, "crossOrigin": False}
        ).encode()
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(verified) | ATTESTED])
            + self.counter.to_bytes(4, "big")
            + bytes(16)  # AAGUID: none, as a software key has
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {"credProps": {"rk": True}},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["usb"],
            },
        }

    def assertion(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str = RP_ID,
        verified: bool | None = None,
        counter: int | None = None,
        tamper: bool = False,
    ) -> dict[str, Any]:
        """The answer to ``navigator.credentials.get``: signed over the authenticator data and
        the hash of the client data, with the counter moved on (unless told which to send)."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin, "crossOrigin": False}
        ).encode()
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest() + bytes([self._flags(verified)]) + counter.to_bytes(4, "big")
        )
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        if tamper:
            auth_data = auth_data[:-1] + bytes([auth_data[-1] ^ 0xFF])
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": self.user_handle,
            },
        }
