"""GraphiQL in a real browser (headless Chromium), with no network but 127.0.0.1: it loads from
the package, signs in from the URL fragment or a pasted token, and answers `{ viewer { email } }`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import session_factory
from db.models import Admin
from db.queries.admins import issue_token
from graph.app import create_app
from tests.browser import (
    ThreadedServer,
    requested_urls,
    require_browser,
    start_chromium,
    stop_chromium,
)
from tests.conftest import NOW, make_settings
from tests.databases import Database
from tests.helpers import Factory

# The browser tests the page, its sign-in and the network it uses; what the server answers on
# each backend is tested through the ASGI app (tests/test_auth.py, tests/test_graphiql.py).
# One backend keeps the browser's part of `make test` within about 20 s.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="session")

VIEWER_EMAIL = "{ viewer { email } }"
WAIT_SECONDS = 15


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    driver = start_chromium()
    try:
        yield driver
    finally:
        stop_chromium(driver)


@pytest.fixture
async def served(fresh_database: Database) -> AsyncIterator[tuple[ThreadedServer, dict[str, str]]]:
    """The app over a database with two Acme admins, served on a free loopback port, and a
    token for each admin."""
    await fresh_database.empty()
    factory = Factory(fresh_database.engine)
    partner = await factory.partner()
    await factory.admin(partner, "full@acme.example", "FULL_ADMIN")
    await factory.admin(partner, "readonly@acme.example", "READ_ONLY_ADMIN")
    tokens = {}
    async with session_factory(fresh_database.engine)() as session:
        for admin in (await session.execute(select(Admin))).scalars():
            assert admin.id is not None
            tokens[admin.email] = await issue_token(session, admin_id=admin.id, now=NOW)
        await session.commit()
    # The server's own engine, opened and disposed in the server's event loop.
    app = create_app(make_settings(fresh_database))
    with ThreadedServer(app, on_shutdown=app.state.hub.stop) as server:
        yield server, tokens


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_in_graphiql(driver: Any, query: str) -> str:
    """Types ``query`` into GraphiQL's editor, presses its run button, returns the result pane."""
    wait_for(
        lambda: driver.execute_script(
            "return document.querySelector('.graphiql-query-editor .CodeMirror') !== null"
        ),
        "GraphiQL's editor",
    )
    driver.execute_script(
        "const editor = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;"
        "editor.setValue(arguments[0]);"
        "const result = document.querySelector('.result-window .CodeMirror');"
        "if (result) result.CodeMirror.setValue('');",
        query,
    )
    driver.execute_script("document.querySelector('.graphiql-execute-button').click()")
    return str(
        wait_for(
            lambda: driver.execute_script(
                "const r = document.querySelector('.result-window .CodeMirror');"
                "return r ? r.CodeMirror.getValue() : ''"
            ),
            "a result in GraphiQL's result pane",
        )
    )


def status_text(driver: Any) -> str:
    return str(driver.execute_script("return document.getElementById('ph-token-status').innerText"))


def console_problems(driver: Any) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] in ("SEVERE", "WARNING") or "Content Security Policy" in entry["message"]
    ]


async def test_graphiql_signs_in_from_the_fragment_and_runs_a_query_offline(
    browser: Any, served: tuple[ThreadedServer, dict[str, str]]
) -> None:
    # given: a fresh tab, a token for full@acme.example in the URL fragment
    server, tokens = served
    token = tokens["full@acme.example"]
    browser.get("about:blank")
    browser.get_log("browser")
    browser.get_log("performance")

    # when
    browser.get(f"{server.base_url}/graphql#token={token}")
    result = run_in_graphiql(browser, VIEWER_EMAIL)

    # then: the answer is in the result pane
    assert json.loads(result)["data"] == {"viewer": {"email": "full@acme.example"}}
    wait_for(lambda: "full@acme.example" in status_text(browser), "the signed-in status")
    # the token left the address bar, and stays for the tab only
    assert browser.execute_script("return window.location.href") == f"{server.base_url}/graphql"
    assert browser.execute_script("return sessionStorage.length") == 1
    assert token not in json.dumps(browser.execute_script("return Object.assign({}, localStorage)"))
    # the fragment reached no server: no request line or header of any request carries it
    received = server.recorder.requests
    for request in received:
        assert token not in request.path
        assert token not in request.query_string.decode("latin-1")
        assert all(token not in v for k, v in request.headers.items() if k != "authorization")
    # every POST, the schema's introspection included, carried the token
    posts = [r for r in received if r.method == "POST"]
    assert any(b"IntrospectionQuery" in r.body for r in posts), [r.body[:80] for r in posts]
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in posts)
    # nothing was asked of any other host, and the console is clean
    urls = requested_urls(browser)
    assert urls and all(u.startswith(server.base_url + "/") or u.startswith("data:") for u in urls)
    assert console_problems(browser) == []


async def test_graphiql_takes_a_pasted_token_and_signs_out(
    browser: Any, served: tuple[ThreadedServer, dict[str, str]]
) -> None:
    # given: a tab with no token
    server, tokens = served
    browser.get(f"{server.base_url}/graphql")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait_for(lambda: "Not signed in" in status_text(browser), "the signed-out status")
    browser.get_log("browser")

    # when: a token is pasted into the field
    field = browser.find_element("id", "ph-token-input")
    field.send_keys(tokens["readonly@acme.example"])
    browser.find_element("id", "ph-token-use").click()
    wait_for(lambda: "readonly@acme.example" in status_text(browser), "the pasted token's admin")
    result = run_in_graphiql(browser, VIEWER_EMAIL)

    # then
    assert json.loads(result)["data"] == {"viewer": {"email": "readonly@acme.example"}}
    assert field.get_attribute("type") == "password"

    # when: signed out
    browser.find_element("id", "ph-sign-out").click()
    wait_for(lambda: "Not signed in" in status_text(browser), "the signed-out status")
    result = run_in_graphiql(browser, VIEWER_EMAIL)

    # then: the server is asked without a token, and says so
    assert json.loads(result)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert browser.execute_script("return sessionStorage.length") == 0
    last = server.recorder.requests[-1]
    assert last.method == "POST" and "authorization" not in last.headers
    # a 401 answer is logged by the browser as a failed resource: nothing else
    assert [p for p in console_problems(browser) if "401" not in p] == []
