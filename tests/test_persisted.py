"""Persisted queries (issue 18): Apollo's automatic persisted queries, GET reads with ETags and
304, the registered-only mode and ``partner-hub persisted register``; bad input is coded and
stores nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.engine import session_factory
from db.queries.persisted import Registration, register, registered
from tests.conftest import NOW, Api, api_over
from tests.databases import Database
from tests.helpers import Factory, error_codes, token_for
from tests.test_cli import Workspace, assert_one_line_error, migrated, workspace  # noqa: F401

VIEWER = "query Viewer { viewer { email role } }"
TAGS = "query Tags { tags { name } }"
CREATE_TAG = (
    "mutation CreateTag($name: String!) { createTag(input: {name: $name}) { tag { name } } }"
)


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def apq(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


async def world(api: Api) -> dict[str, str]:
    factory = Factory(api.engine)
    acme = await factory.partner()
    globex = await factory.partner("Globex", "globex.example")
    await factory.admin(acme, "full@acme.example", "FULL_ADMIN")
    await factory.admin(acme, "ro@acme.example", "READ_ONLY_ADMIN")
    await factory.admin(globex, "full@globex.example", "FULL_ADMIN")
    return {
        email: await token_for(api, email)
        for email in ("full@acme.example", "ro@acme.example", "full@globex.example")
    }


async def post(api: Api, token: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await api.client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {token}", **headers}
    )


async def get(
    api: Api, token: str | None, params: dict[str, Any], **headers: str
) -> httpx.Response:
    encoded = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await api.client.get("/graphql", params=encoded, headers=headers)


# --- automatic persisted queries -------------------------------------------------------------


async def test_unknown_hash_then_register_then_by_hash_alone(api: Api) -> None:
    tokens = await world(api)
    token = tokens["full@acme.example"]
    first = await post(api, token, {"extensions": apq(sha(VIEWER))})
    assert first.status_code == 200
    body = first.json()
    assert error_codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"  # Apollo's link matches it
    assert "data" not in body

    registered_now = await post(api, token, {"query": VIEWER, "extensions": apq(sha(VIEWER))})
    assert registered_now.json()["data"]["viewer"]["email"] == "full@acme.example"

    # Another caller, another partner, sends the hash alone: the document is code, the answer
    # is still the caller's own.
    again = await post(api, tokens["full@globex.example"], {"extensions": apq(sha(VIEWER))})
    assert again.json()["data"]["viewer"]["email"] == "full@globex.example"


async def test_hash_mismatch_is_coded_and_stores_nothing(api: Api) -> None:
    token = (await world(api))["full@acme.example"]
    wrong = sha(TAGS)
    refused = await post(api, token, {"query": VIEWER, "extensions": apq(wrong)})
    body = refused.json()
    assert error_codes(body) == ["PERSISTED_QUERY_HASH_MISMATCH"] and "data" not in body
    # Neither the document under the wrong hash nor under its own was kept.
    for digest in (wrong, sha(VIEWER)):
        alone = await post(api, token, {"extensions": apq(digest)})
        assert error_codes(alone.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    # The newer media type tells by its status that nothing ran.
    strict = await post(
        api,
        token,
        {"query": VIEWER, "extensions": apq(wrong)},
        Accept="application/graphql-response+json",
    )
    assert strict.status_code == 400
    missing = await post(
        api, token, {"extensions": apq(wrong)}, Accept="application/graphql-response+json"
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": "abc"},
        {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
        {"persistedQuery": {"version": 1}},
        {"persistedQuery": {"version": 1, "sha256Hash": 7}},
    ],
)
async def test_malformed_extension_is_bad_request(api: Api, extensions: dict[str, Any]) -> None:
    token = (await world(api))["full@acme.example"]
    response = await post(api, token, {"extensions": extensions})
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]


@pytest.mark.parametrize("digest", ["", "zz", "0" * 64, "A" * 64, "\x00" * 64, "0" * 10_000])
async def test_odd_hashes_are_not_found(api: Api, digest: str) -> None:
    token = (await world(api))["full@acme.example"]
    response = await post(api, token, {"extensions": apq(digest)})
    assert error_codes(response.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_persisted_requests_need_a_token_first(api: Api) -> None:
    await world(api)
    response = await api.client.post("/graphql", json={"extensions": apq(sha(VIEWER))})
    assert response.status_code == 401
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    read = await get(api, None, {"extensions": apq(sha(VIEWER))})
    assert read.status_code == 401


async def test_a_document_that_does_not_parse_is_reported_and_not_kept(api: Api) -> None:
    token = (await world(api))["full@acme.example"]
    broken = "{ viewer { email "
    response = await post(api, token, {"query": broken, "extensions": apq(sha(broken))})
    assert error_codes(response.json()) == ["GRAPHQL_PARSE_FAILED"]
    alone = await post(api, token, {"extensions": apq(sha(broken))})
    assert error_codes(alone.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


# --- GET reads, ETag and 304 ---------------------------------------------------------------------


async def test_get_reads_revalidate_with_etags(api: Api) -> None:
    tokens = await world(api)
    token = tokens["full@acme.example"]
    await post(api, token, {"query": TAGS, "extensions": apq(sha(TAGS))})
    params = {"extensions": apq(sha(TAGS)), "operationName": "Tags"}

    first = await get(api, token, params)
    assert first.status_code == 200, first.text
    assert first.json()["data"] == {"tags": []}
    tag = first.headers["etag"]
    assert tag.startswith('W/"')
    assert first.headers["cache-control"] == "private, no-cache"
    assert "Authorization" in first.headers["vary"]

    unchanged = await get(api, token, params, **{"If-None-Match": tag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == tag

    # Another admin of the same partner, another role: another answer, another tag.
    other = await get(api, tokens["ro@acme.example"], params, **{"If-None-Match": tag})
    assert other.status_code == 200 and other.headers["etag"] != tag

    # Other variables: another tag.
    variables = {**params, "variables": {"unused": 1}}
    assert (await get(api, token, variables)).headers["etag"] != tag

    # A write of the partner moves its data version: the old tag no longer matches.
    created = await post(api, token, {"query": CREATE_TAG, "variables": {"name": "Gold"}})
    assert created.json()["data"]["createTag"]["tag"]["name"] == "Gold"
    after = await get(api, token, params, **{"If-None-Match": tag})
    assert after.status_code == 200
    assert after.json()["data"] == {"tags": [{"name": "Gold"}]}
    assert after.headers["etag"] != tag


async def test_get_never_runs_a_mutation(api: Api) -> None:
    token = (await world(api))["full@acme.example"]
    variables = {"name": "Sneaky"}
    await post(api, token, {"query": CREATE_TAG, "variables": variables})  # known by hash now?
    body = {"query": CREATE_TAG, "extensions": apq(sha(CREATE_TAG)), "variables": {"name": "X"}}
    registered_now = await post(api, token, body)
    assert registered_now.json()["data"]["createTag"]["tag"]["name"] == "X"
    response = await get(
        api, token, {"extensions": apq(sha(CREATE_TAG)), "variables": {"name": "Y"}}
    )
    assert response.status_code == 405
    assert error_codes(response.json()) == ["METHOD_NOT_ALLOWED"]
    tags = await post(api, token, {"query": TAGS})
    assert {t["name"] for t in tags.json()["data"]["tags"]} == {"Sneaky", "X"}


async def test_get_runs_persisted_reads_only(api: Api) -> None:
    token = (await world(api))["full@acme.example"]
    plain = await get(api, token, {"query": VIEWER})
    assert plain.status_code == 405
    assert error_codes(plain.json()) == ["METHOD_NOT_ALLOWED"]
    bad_json = await api.client.get(
        "/graphql",
        params={"extensions": "{not json"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad_json.status_code == 400 and error_codes(bad_json.json()) == ["BAD_REQUEST"]
    # GET may also carry the document with its hash (Apollo's retry): it registers and runs.
    both = await get(api, token, {"query": VIEWER, "extensions": apq(sha(VIEWER))})
    assert both.json()["data"]["viewer"]["email"] == "full@acme.example"
    # The IDE is still served to a browser.
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()


async def test_a_failed_read_is_not_revalidated(api: Api) -> None:
    token = (await world(api))["full@acme.example"]
    failing = 'query Bad { customer(id: "nope") { id } }'
    await post(api, token, {"query": failing, "extensions": apq(sha(failing))})
    response = await get(api, token, {"extensions": apq(sha(failing))})
    assert response.json().get("errors")
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "no-store"


# --- registered-only mode ------------------------------------------------------------------------


@pytest.fixture
async def locked_api(fresh_database: Database) -> AsyncIterator[Api]:
    await fresh_database.empty()
    async with api_over(fresh_database, persisted_queries="registered") as value:
        yield value


async def _register(api: Api, *documents: str) -> None:
    async with session_factory(api.engine)() as session:
        await register(session, [Registration(sha(d), d, None) for d in documents], NOW)
        await session.commit()


async def test_registered_mode_runs_registered_documents_only(locked_api: Api) -> None:
    api = locked_api
    token = (await world(api))["full@acme.example"]
    await _register(api, VIEWER)

    by_hash = await post(api, token, {"extensions": apq(sha(VIEWER))})
    assert by_hash.json()["data"]["viewer"]["email"] == "full@acme.example"
    in_full = await post(api, token, {"query": VIEWER})
    assert in_full.json()["data"]["viewer"]["role"] == "FULL_ADMIN"
    read = await get(api, token, {"extensions": apq(sha(VIEWER))})
    assert read.status_code == 200 and read.headers["etag"]

    outside = await post(api, token, {"query": TAGS})
    assert error_codes(outside.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]
    assert "data" not in outside.json()
    # A client cannot register: refused, and nothing is stored.
    attempt = await post(api, token, {"query": TAGS, "extensions": apq(sha(TAGS))})
    assert error_codes(attempt.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]
    alone = await post(api, token, {"extensions": apq(sha(TAGS))})
    assert error_codes(alone.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    async with session_factory(api.engine)() as session:
        assert [row[0] for row in await registered(session)] == [sha(VIEWER)]
    # Introspection too must be registered to run.
    schema = await post(api, token, {"query": "{ __schema { queryType { name } } }"})
    assert error_codes(schema.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]


async def test_off_mode_ignores_the_extension(fresh_database: Database) -> None:
    await fresh_database.empty()
    async with api_over(fresh_database, persisted_queries="off") as api:
        token = (await world(api))["full@acme.example"]
        alone = await post(api, token, {"extensions": apq(sha(VIEWER))})
        assert alone.status_code == 400 and error_codes(alone.json()) == ["BAD_REQUEST"]
        full = await post(api, token, {"query": VIEWER, "extensions": apq(sha(TAGS))})
        assert full.json()["data"]["viewer"]["email"] == "full@acme.example"


# --- the command line ----------------------------------------------------------------------------


def test_check_documents_reads_every_format(tmp_path: Path) -> None:
    from db.settings import Settings
    from graph.cli_persisted import check_documents

    (tmp_path / "viewer.graphql").write_text(VIEWER)
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha(TAGS), "name": "Tags", "type": "query", "body": TAGS}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    other = "query Me { viewer { id } }"
    (tmp_path / "map.json").write_text(json.dumps({sha(other): other}))
    found = check_documents(
        [str(tmp_path / n) for n in ("viewer.graphql", "manifest.json", "map.json")],
        Settings(database_url="sqlite+aiosqlite:///unused.db"),
    )
    assert {(r.sha256, r.operation_name) for r in found} == {
        (sha(VIEWER), "Viewer"),
        (sha(TAGS), "Tags"),
        (sha(other), "Me"),
    }


async def test_cli_registers_all_or_nothing(
    migrated: Workspace,  # noqa: F811
    tmp_path: Path,
) -> None:
    good = tmp_path / "viewer.graphql"
    good.write_text(VIEWER)
    bad = tmp_path / "bad.graphql"
    bad.write_text("query Nope { noSuchField }")
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps({sha(TAGS): VIEWER}))
    for files in ([str(good), str(bad)], [str(good), str(lying)], [str(tmp_path / "none.gql")]):
        run = await migrated.run("persisted", "register", *files)
        assert_one_line_error(run)
        assert (await migrated.row_counts())["persisted_query"] == 0
    assert (
        "PERSISTED_QUERY_HASH_MISMATCH"
        in (await migrated.run("persisted", "register", str(lying))).stderr
    )

    run = await migrated.run("persisted", "register", str(good), str(good))
    assert run.code == 0, run.stderr
    assert run.stdout.split() == [sha(VIEWER), "new", "Viewer"]
    again = await migrated.run("persisted", "register", str(good))
    assert again.stdout.split() == [sha(VIEWER), "known", "Viewer"]
    listing = await migrated.run("persisted", "list")
    assert listing.stdout.split()[0] == sha(VIEWER)
    assert (await migrated.row_counts())["persisted_query"] == 1
