"""``partner-hub webhooks listen --port N --secret S``: a local receiver for development.

It verifies each request with the ``standardwebhooks`` package exactly as a partner's system
would (signature, timestamp within five minutes), prints the event and answers 204; a request
that does not verify is printed as refused and answered 400, so the delivery is retried.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def receiver_app(secret: str, out: TextIO | None = None) -> Starlette:
    verifier = Webhook(secret)

    def emit(line: str) -> None:
        stream = out or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    async def receive(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            payload = verifier.verify(body, headers)
        except (WebhookVerificationError, ValueError) as e:
            emit(f"REFUSED {headers.get('webhook-id', '-')}: {e}")
            return PlainTextResponse(f"refused: {e}\n", status_code=400)
        emit(
            f"{payload.get('timestamp')} {payload.get('type')} {headers['webhook-id']}\n"
            + json.dumps(payload.get("data"), indent=2, sort_keys=True)
        )
        return Response(status_code=204)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


def cmd_listen(args: argparse.Namespace) -> None:
    import uvicorn

    try:
        app = receiver_app(args.secret)
    except Exception as e:  # a secret that is not whsec_ + base64
        raise SystemExit(f"partner-hub: error: bad --secret: {e}") from None
    print(
        f"Listening on http://{args.host}:{args.port}/ — verifying with the endpoint's secret; "
        "Ctrl-C stops.",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def register(sub: Any) -> None:
    """Add ``webhooks listen`` to the command line's subcommands."""
    webhooks = sub.add_parser("webhooks", help="webhook tools")
    inner = webhooks.add_subparsers(
        dest="webhooks_command", required=True, parser_class=type(webhooks)
    )
    listen = inner.add_parser("listen", help="run a local receiver that verifies and prints events")
    listen.add_argument("--port", type=int, default=9000, help="port (default 9000)")
    listen.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    listen.add_argument("--secret", required=True, help="the endpoint's whsec_ signing secret")
    listen.set_defaults(func=cmd_listen)
