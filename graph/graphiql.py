"""GraphiQL served from the package: no request leaves the machine.

The page (``GET /graphql`` from a browser) loads React, GraphiQL and its explorer plugin from
``graph/static/graphiql/vendor/`` (pinned builds vendored by ``tools/vendor_graphiql.sh``, with
their licences) and our sign-in script from ``graph/static/graphiql/``. Each file is served at
``/static/graphiql/<digest>/<name>``, the digest being the start of its SHA-256: the URL names
one content for ever, so browsers keep it a year without asking again (``immutable``), and a
new version of a file is a new URL that the page, never cached, points to.

The page's Content-Security-Policy allows scripts from this origin only (no inline script, no
eval), requests to this origin only, and fonts and images from the page's own data: URLs;
styles also inline, since GraphiQL's components inject ``<style>`` elements (a style cannot run
code). Sign-in (``partner-hub-token.js``, ``partner-hub-graphiql.js``): a token in the URL fragment
(``/graphql#token=...``, which browsers never send) is kept in the tab's ``sessionStorage``,
removed from the address bar, and sent as ``Authorization: Bearer`` on every request.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

STATIC = Path(__file__).parent / "static" / "graphiql"
PREFIX = "/static/graphiql"
# First, in <head>: takes the token out of the address bar before anything else loads.
HEAD_SCRIPT = "partner-hub-token.js"
SCRIPTS = (
    "vendor/react-18.3.1.production.min.js",
    "vendor/react-dom-18.3.1.production.min.js",
    "vendor/graphiql-3.9.0.min.js",
    "vendor/plugin-explorer-3.2.6.umd.js",
    "partner-hub-graphiql.js",
)
STYLES = (
    "vendor/graphiql-3.9.0.min.css",
    "vendor/plugin-explorer-3.2.6.css",
    "partner-hub-graphiql.css",
)
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    digest: str
    media_type: str

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


@cache
def assets() -> dict[str, Asset]:
    """Every file the page loads, by name; read and compressed once per process."""
    found = {}
    for name in (HEAD_SCRIPT, *SCRIPTS, *STYLES):
        body = (STATIC / name).read_bytes()
        found[name] = Asset(
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            digest=hashlib.sha256(body).hexdigest()[:16],
            media_type=MEDIA_TYPES[Path(name).suffix],
        )
    return found


def asset_url(name: str) -> str:
    return f"{PREFIX}/{assets()[name].digest}/{name}"


@cache
def page_html() -> str:
    styles = "\n".join(
        f'    <link rel="stylesheet" href="{escape(asset_url(n))}" />' for n in STYLES
    )
    scripts = "\n".join(f'    <script src="{escape(asset_url(n))}"></script>' for n in SCRIPTS)
    head = f'    <script src="{escape(asset_url(HEAD_SCRIPT))}"></script>'
    return PAGE.format(head=head, styles=styles, scripts=scripts)


def graphiql_page() -> Response:
    return HTMLResponse(page_html(), headers=PAGE_HEADERS)


async def serve_asset(request: Request) -> Response:
    """A vendored or own file at its content's URL; 404 for any other name or digest."""
    name = request.path_params["name"]
    asset = assets().get(name)
    if asset is None or request.path_params["digest"] != asset.digest:
        return Response("Not Found", status_code=404, media_type="text/plain")
    headers = {
        "Cache-Control": IMMUTABLE,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="referrer" content="no-referrer" />
    <title>Partner Hub GraphiQL</title>
    <link rel="icon" href="data:," />
{head}
{styles}
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL...</div>
    <noscript>GraphiQL needs JavaScript. Without it, POST to /graphql with
      an Authorization: Bearer header.</noscript>
{scripts}
  </body>
</html>
"""
