"""Endpoint signing secrets: made, and sealed at rest with the service secret.

A signing secret must be readable to sign (HMAC needs the key itself, unlike a token that is
stored hashed). It is stored sealed: HMAC-SHA256 as a keyed stream (counter mode over a random
nonce) plus an HMAC tag (encrypt-then-MAC), with keys derived from the service secret. With
``PARTNER_HUB_SECRET_KEY`` set outside the database, a copy of the database alone does not
reveal endpoint secrets; when the service secret is generated into the database it protects
only against reading the column by itself (documented in the README).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SEALED = "s1:"


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _keys(service_secret: bytes) -> tuple[bytes, bytes]:
    return (
        hmac.new(service_secret, b"webhook-secret:encrypt", hashlib.sha256).digest(),
        hmac.new(service_secret, b"webhook-secret:mac", hashlib.sha256).digest(),
    )


def _stream(key: bytes, nonce: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hmac.new(key, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:size])


def seal(plain: str, service_secret: bytes) -> str:
    enc, mac = _keys(service_secret)
    nonce = secrets.token_bytes(16)
    data = plain.encode()
    cipher = bytes(a ^ b for a, b in zip(data, _stream(enc, nonce, len(data)), strict=True))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()[:16]
    return SEALED + base64.b64encode(nonce + tag + cipher).decode()


def unseal(stored: str, service_secret: bytes) -> str:
    """The secret; ValueError when the stored value was altered or sealed with another key."""
    if not stored.startswith(SEALED):
        raise ValueError("not a sealed secret")
    raw = base64.b64decode(stored[len(SEALED) :])
    nonce, tag, cipher = raw[:16], raw[16:32], raw[32:]
    enc, mac = _keys(service_secret)
    if not hmac.compare_digest(tag, hmac.new(mac, nonce + cipher, hashlib.sha256).digest()[:16]):
        raise ValueError("sealed secret does not match the service secret")
    return bytes(
        a ^ b for a, b in zip(cipher, _stream(enc, nonce, len(cipher)), strict=True)
    ).decode()
