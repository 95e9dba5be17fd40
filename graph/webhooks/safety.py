"""Outbound safety: which URLs an endpoint may have, and which addresses may be connected to.

Only ``https`` (``http`` too with ``PARTNER_HUB_WEBHOOK_ALLOW_HTTP=1``); the host is resolved
once and every address it resolves to must be public (not loopback, private, link-local — the
cloud metadata address 169.254.169.254 is one —, shared, multicast, reserved or unspecified)
unless ``PARTNER_HUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS=1``. The sender connects to the address
checked here (never resolving again), so a name cannot be rebound between check and connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from db.settings import Settings
from db.webhook_models import URL_MAX

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_SECONDS = 5.0


class UnsafeUrl(Exception):
    """A URL refused; ``code`` is the user error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # as written (for Host and SNI)
    port: int
    path: str  # path and query


def parse_url(url: str, settings: Settings) -> Target:
    if len(url) > URL_MAX:
        raise UnsafeUrl("URL_TOO_LONG", f"A URL is at most {URL_MAX} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("INVALID_URL", "Not a valid URL.") from None
    allowed = ("https", "http") if settings.webhook_allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl(
            "INVALID_URL",
            "Only https URLs are allowed."
            if not settings.webhook_allow_http
            else "Only http and https URLs are allowed.",
        )
    if not parts.hostname or parts.username or parts.password or any(c in url for c in " \r\n"):
        raise UnsafeUrl("INVALID_URL", "A URL needs a host (and no user or spaces).")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, path)


def forbidden(ip: IP) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def resolve(target: Target, settings: Settings) -> IP:
    """The one address to connect to; UnsafeUrl when the host does not resolve or any of its
    addresses is forbidden (a name with one public and one private address is refused)."""
    try:
        literal: IP | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM),
                RESOLVE_SECONDS,
            )
        except (OSError, TimeoutError):
            raise UnsafeUrl("UNRESOLVABLE_HOST", f"{target.host} does not resolve.") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise UnsafeUrl("UNRESOLVABLE_HOST", f"{target.host} does not resolve.")
    if not settings.webhook_allow_private_networks and any(forbidden(a) for a in addresses):
        raise UnsafeUrl(
            "FORBIDDEN_ADDRESS",
            "The URL resolves to a loopback, private, link-local or otherwise non-public address.",
        )
    return addresses[0]


async def check_url(url: str, settings: Settings) -> Target:
    """Refuse a URL an endpoint may not have (UnsafeUrl with the user error code)."""
    target = parse_url(url, settings)
    await resolve(target, settings)
    return target
