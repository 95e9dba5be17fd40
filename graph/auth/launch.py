"""Signed launch tokens: ``<payload>.<signature>``, both base64url, HMAC-SHA256.

The payload binds the token to one admin, the role it acts with and one organization, with an
expiry; the database row (``launch_token``) makes it single use and audits the launch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson


@dataclass(frozen=True, slots=True)
class LaunchClaims:
    jti: str
    admin_id: int
    role: str
    organization_type: str  # CUSTOMER or PARTNER
    organization_id: int
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret + b":launch", payload.encode(), hashlib.sha256).digest())


def new_jti() -> str:
    return secrets.token_urlsafe(24)


def sign_launch(secret: bytes, claims: LaunchClaims) -> str:
    payload = _b64(
        orjson.dumps(
            {
                "jti": claims.jti,
                "adm": claims.admin_id,
                "role": claims.role,
                "org": f"{claims.organization_type}:{claims.organization_id}",
                "exp": int(claims.expires_at.timestamp()),
            }
        )
    )
    return f"{payload}.{_sign(secret, payload)}"


def read_launch(secret: bytes, token: str) -> LaunchClaims | None:
    """The claims of an untampered token (expiry not checked here), or None."""
    if (
        not isinstance(token, str)
        or len(token) > 1024
        or not token.isascii()  # compare_digest refuses other strings (TypeError: a 500)
        or token.count(".") != 1
    ):
        return None
    payload, signature = token.split(".")
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    try:
        data = orjson.loads(_unb64(payload))
        kind, _, pk = data["org"].partition(":")
        return LaunchClaims(
            jti=str(data["jti"]),
            admin_id=int(data["adm"]),
            role=str(data["role"]),
            organization_type=kind,
            organization_id=int(pk),
            expires_at=datetime.fromtimestamp(int(data["exp"]), UTC),
        )
    except (KeyError, ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        return None
