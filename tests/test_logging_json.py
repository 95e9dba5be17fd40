"""Every log line is one JSON object (issue 15, finding 8).

Expected (coded) errors log no traceback; an unexpected error is logged once, its traceback
inside the line; strawberry's own error log is silent; ``partner-hub serve`` configures uvicorn's
loggers (and every other) with the JSON formatter.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from graph.resolvers import admins as admin_resolvers
from tests.conftest import Api
from tests.helpers import Factory, error_codes, token_for
from tests.helpers import json_log as json_log_output

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "full@acme.example"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger's output through the JSON formatter, at INFO, as the server has it."""
    with json_log_output() as stream:
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    parsed = []
    for line in stream.getvalue().splitlines():
        entry = json.loads(line)  # fails the test on any line that is not JSON
        assert isinstance(entry, dict) and {"ts", "level", "logger", "msg"} <= set(entry)
        parsed.append(entry)
    return parsed


async def test_expected_errors_log_no_traceback_and_an_unexpected_one_logs_it_once(
    api: Api, json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    factory = Factory(api.engine)
    await factory.admin(await factory.partner(), EMAIL, "FULL_ADMIN")
    headers = {"Authorization": f"Bearer {await token_for(api, EMAIL)}"}
    expected = [
        # strawberry's variable coercion, a resolver's own refusal, validation, parsing
        ("query($f: Int!) { customers(first: $f) { totalCount } }", {"f": "x"}),
        ("query($f: Int!) { customers(first: $f) { totalCount } }", {"f": 0}),
        ("{ viewer { nope } }", {}),
        ("{ viewer { ", {}),
    ]

    # when
    codes = []
    for document, variables in expected:
        response = await api.client.post(
            "/graphql", json={"query": document, "variables": variables}, headers=headers
        )
        codes += error_codes(response.json())

    async def broken(*_: Any, **__: Any) -> NoReturn:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(admin_resolvers, "admin_row", broken)
    failed = await api.client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={**headers, "X-Request-ID": "r-1"}
    )

    # then: every line parses; only the unexpected error has a traceback, in one line
    assert codes == [
        "BAD_USER_INPUT",
        "INVALID_PAGE_SIZE",
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
    ]
    assert error_codes(failed.json()) == ["INTERNAL_SERVER_ERROR"]
    entries = lines(json_log)
    with_traceback = [e for e in entries if "exc" in e]
    assert len(with_traceback) == 1, with_traceback
    (unexpected,) = with_traceback
    assert unexpected["request_id"] == "r-1" and unexpected["level"] == "error"
    assert "Traceback" in unexpected["exc"] and "secret detail" in unexpected["exc"]
    assert not [e for e in entries if e["logger"].startswith("strawberry")]
    access = [e for e in entries if e["logger"] == "partner_hub.access"]
    assert len(access) == len(expected) + 1
    assert [e.get("error_codes") for e in access] == [[c] for c in codes] + [
        ["INTERNAL_SERVER_ERROR"]
    ]


async def test_lines_carry_the_request_id_and_a_bad_client_id_is_not_logged(
    api: Api, json_log: io.StringIO
) -> None:
    # given
    factory = Factory(api.engine)
    await factory.admin(await factory.partner(), EMAIL, "FULL_ADMIN")
    headers = {"Authorization": f"Bearer {await token_for(api, EMAIL)}"}
    forged = 'x", "level": "critical'

    # when
    response = await api.client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={**headers, "X-Request-ID": forged}
    )

    # then
    (access,) = [e for e in lines(json_log) if e["logger"] == "partner_hub.access"]
    assert access["request_id"] == response.headers["x-request-id"] != forged
    assert forged not in json_log.getvalue()


SERVE = textwrap.dedent(
    """
    import asyncio, logging
    import uvicorn

    def run(self, sockets=None):
        logging.getLogger("uvicorn.error").warning("Started server process [1]")
        try:
            raise RuntimeError("boom\\nsecond line")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        logging.getLogger("asyncio").error("Task exception was never retrieved")
        logging.getLogger("strawberry.execution").error("an error")
        logging.getLogger("partner_hub.errors").error("unexpected error")
        logging.getLogger("some.library").warning("plain %s", "text")

    uvicorn.Server.run = run
    from graph.serving import serve
    serve("graph.asgi:app", host="127.0.0.1", port=0, workers=1)
    """
)


def test_partner_hub_serve_configures_every_logger_with_the_json_formatter(
    tmp_path: Path,
) -> None:
    # given: `serve` with uvicorn's server loop replaced by one that logs as uvicorn does
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PARTNER_HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
    }

    # when
    done = subprocess.run(
        [sys.executable, "-c", SERVE], env=env, capture_output=True, text=True, timeout=60
    )

    # then
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    loggers = {e["logger"] for e in entries}
    assert {"uvicorn.error", "asyncio", "partner_hub.errors", "some.library"} <= loggers, entries
    (crash,) = [e for e in entries if "exc" in e]
    assert crash["logger"] == "uvicorn.error" and "boom\nsecond line" in crash["exc"]
