"""GraphiQL's page and files over HTTP: from the package, immutable at content URLs, under a
strict Content-Security-Policy. (In a real browser: tests/test_graphiql_browser.py.)"""

from __future__ import annotations

import gzip
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from graph.graphiql import HEAD_SCRIPT, SCRIPTS, STATIC, STYLES, assets
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[1]
HTML = {"Accept": "text/html"}


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def test_the_page_loads_only_files_of_this_origin_under_a_strict_policy(api: Api) -> None:
    # when
    response = await api.client.get("/graphql", headers=HTML)

    # then
    assert response.status_code == 200
    urls = asset_urls(response.text)
    assert len(urls) == 1 + len(SCRIPTS) + len(STYLES) + 1  # and the favicon, an empty data: URL
    assert all(u.startswith("/static/graphiql/") or u == "data:," for u in urls), urls
    assert "<script>" not in response.text  # no inline script: the policy forbids it
    assert "cookie" not in response.text.lower()
    policy = dict(
        d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_files_are_immutable_at_their_content_address(api: Api) -> None:
    # given
    page = (await api.client.get("/graphql", headers=HTML)).text
    url = next(u for u in asset_urls(page) if u.endswith("graphiql-3.9.0.min.js"))

    # when
    plain = await api.client.get(url, headers={"Accept-Encoding": "identity"})
    zipped = await api.client.get(url, headers={"Accept-Encoding": "gzip"})
    again = await api.client.get(url, headers={"If-None-Match": plain.headers["etag"]})

    # then
    assert plain.status_code == 200
    assert plain.content == (STATIC / "vendor/graphiql-3.9.0.min.js").read_bytes()
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plain.headers["content-type"].startswith("text/javascript")
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decoded it
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3
    assert again.status_code == 304


async def test_a_file_under_another_digest_or_name_is_not_found(api: Api) -> None:
    # given
    name = "vendor/react-18.3.1.production.min.js"
    digest = assets()[name].digest

    # when
    responses = [
        await api.client.get(f"/static/graphiql/{'0' * len(digest)}/{name}"),
        await api.client.get(f"/static/graphiql/{digest}/vendor/VERSIONS.txt"),
        await api.client.get(f"/static/graphiql/{digest}/../../app.py"),
        await api.client.get(f"/static/graphiql/{digest}/{name}"),
    ]

    # then
    assert [r.status_code for r in responses] == [404, 404, 404, 200]


def test_every_served_file_is_package_data_with_its_licence() -> None:
    # given
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["graph"]

    # then: a wheel carries every file the page loads, and the licences
    shipped = [
        p.relative_to(STATIC.parent.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()
    ]
    for name in (HEAD_SCRIPT, *SCRIPTS, *STYLES):
        assert any(fnmatch(f"static/graphiql/{name}", p) for p in patterns), name
    for path in shipped:
        assert any(fnmatch(path, p) for p in patterns), path
    licences = {p.name for p in (STATIC / "licenses").iterdir()}
    assert {
        "react.LICENSE.txt",
        "react-dom.LICENSE.txt",
        "graphiql.LICENSE.txt",
        "graphiql-plugin-explorer.LICENSE.txt",
        "THIRD_PARTY_LICENSES.txt",
    } <= licences
    # the versions in the file names are the ones the vendoring script pins
    script = (ROOT / "tools/vendor_graphiql.sh").read_text()
    for package, version in re.findall(r"^(REACT|GRAPHIQL|EXPLORER)=(\S+)", script, re.M):
        assert any(version in name for name in SCRIPTS), (package, version)


def test_no_vendored_file_names_an_outside_host_it_would_load() -> None:
    # GraphiQL's bundle mentions URLs (docs, licences) but must not load one: no CDN fallback.
    for name in (*SCRIPTS, *STYLES):
        text = (STATIC / name).read_text(errors="replace")
        assert "unpkg.com" not in text and "cdn.jsdelivr" not in text, name
        assert "fonts.googleapis" not in text, name
    css = (STATIC / "vendor/graphiql-3.9.0.min.css").read_text()
    assert all(u.startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css))
    assert gzip.decompress(assets()[STYLES[0]].gzipped) == assets()[STYLES[0]].body


def test_make_run_prints_a_graphiql_url_holding_a_demo_token() -> None:
    # given: the run target's recipe (tests/test_cli.py runs the CLI it calls)
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]

    # then: a token for full@acme.example, in the fragment of the printed URL
    assert "token issue full@acme.example" in recipe
    assert "/graphql#token=$$TOKEN" in recipe
    assert recipe.rstrip().endswith("serve --host $(HOST) --port $(PORT)")
    for target in ("run", "test", "install", "lint", "types", "pytest", "bench", "schema", "clean"):
        assert f"\n{target}:" in makefile, target
