"""One delivery attempt: sign per Standard Webhooks and POST to the address checked once.

Headers ``webhook-id`` (the message id, stable across retries), ``webhook-timestamp`` (the
wall clock at this attempt, which receivers check against theirs) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``, made by the ``standardwebhooks``
package). The request goes to the resolved IP with the URL's host in ``Host`` and in TLS SNI
(certificate checked against the host name); redirects are not followed; 2xx is success,
anything else or no answer within the timeout is a failure; at most 1 KB of the answer is kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from db.settings import Settings
from db.webhook_models import RESPONSE_KEPT
from db.webhooks.deliveries import Outcome
from graph.webhooks.safety import UnsafeUrl, parse_url, resolve

USER_AGENT = "PartnerHub-Webhooks/1.0"


def signed_headers(secret: str, message_id: str, body: bytes, when: datetime) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, when, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


async def send(
    client: httpx.AsyncClient,
    settings: Settings,
    *,
    url: str,
    secret: str,
    message_id: str,
    body: str,
) -> Outcome:
    try:
        target = parse_url(url, settings)
        address = await resolve(target, settings)
    except UnsafeUrl as e:
        return Outcome(ok=False, status=None, body=None, error=f"{e.code}: {e.message}")
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    default = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default else f"{target.host}:{target.port}"
    if ":" in target.host and target.port == default:
        host_header = f"[{target.host}]"
    payload = body.encode()
    headers = signed_headers(secret, message_id, payload, datetime.now(UTC))
    headers["host"] = host_header
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    request = client.build_request(
        "POST",
        f"{target.scheme}://{host}:{target.port}{target.path}",
        content=payload,
        headers=headers,
        extensions=extensions,
    )
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                kept = bytearray()
                async for chunk in response.aiter_raw():
                    kept += chunk
                    if len(kept) >= RESPONSE_KEPT:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return Outcome(ok=False, status=None, body=None, error="timeout")
    except httpx.HTTPError as e:
        return Outcome(ok=False, status=None, body=None, error=f"{type(e).__name__}: {e}"[:500])
    text = bytes(kept[:RESPONSE_KEPT]).decode("utf-8", "replace")
    return Outcome(
        ok=200 <= response.status_code < 300, status=response.status_code, body=text, error=None
    )


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,  # never through a proxy from the environment: the address is ours
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
