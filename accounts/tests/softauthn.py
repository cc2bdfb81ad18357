"""A software WebAuthn authenticator for tests: real P-256 keys, real CBOR, real signatures.

It answers the server's options as a browser and a platform authenticator
would (attestation "none"), so the server's checks run on genuine data; the
arguments `origin` and `rp_id` let a test answer as the wrong site.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


@dataclass
class SoftKey:
    user_handle: bytes
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})


class SoftAuthenticator:
    """Holds passkeys; `create` and `get` answer options as JSON credentials, the way browsers serialise them."""

    def __init__(self, origin: str = "http://testserver", *, user_verified: bool = True) -> None:
        self.origin = origin
        self.user_verified = user_verified
        self.keys: list[SoftKey] = []

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def _flags(self, attested: bool = False) -> int:
        return FLAG_UP | (FLAG_UV if self.user_verified else 0) | (FLAG_AT if attested else 0)

    def create(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None) -> dict[str, Any]:
        key = SoftKey(user_handle=from_b64url(options["user"]["id"]))
        rp_hash = hashlib.sha256((rp_id or options["rp"]["id"]).encode()).digest()
        attested = (
            bytes(16)  # AAGUID: none
            + struct.pack(">H", len(key.credential_id))
            + key.credential_id
            + key.cose_public_key()
        )
        auth_data = rp_hash + bytes([self._flags(attested=True)]) + struct.pack(">I", key.sign_count) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.keys.append(key)
        return {
            "id": b64url(key.credential_id),
            "rawId": b64url(key.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(self._client_data("webauthn.create", options["challenge"], origin)),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        key: SoftKey | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
    ) -> dict[str, Any]:
        allowed = {item["id"] for item in options.get("allowCredentials", [])}
        if key is None:
            key = next(k for k in reversed(self.keys) if not allowed or b64url(k.credential_id) in allowed)
        key.sign_count += 1
        rp_hash = hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
        auth_data = rp_hash + bytes([self._flags()]) + struct.pack(">I", key.sign_count)
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = key.private_key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(key.credential_id),
            "rawId": b64url(key.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(key.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
