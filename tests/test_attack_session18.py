"""Session 18's attack on the reads moved onto the driver connection carrying a provisional
request's token lookup (``DrivenRecords``): ``quickLinks``, ``featuredResources``, ``roles`` and
the ``admins`` page. A token's principal changing between requests (revoked, deactivated, a new
role, another partner), empty answers (the lookup must still run), another partner's cursors,
paging both ways against a reference, page sizes at and beyond their bounds, and many requests
at once while the principal changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

from db.models import Admin, ApiToken, CustomRole
from db.seed import seed_resources
from db.seed.resources import catalogue
from tests.conftest import NOW, Api, api_over
from tests.databases import Database
from tests.helpers import Factory, data_of, error_codes, token_for
from tests.test_auth import new_token

QUICK = "{ quickLinks { slug title url } }"
FEATURED = "{ featuredResources { slug title } }"
ROLES = "{ roles { name builtIn } }"
ADMINS = "{ admins(first: 5) { nodes { name email } } }"
FIELDS = """nodes { id email }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
PAGED = "query($first: Int!, $after: String) { admins(first: $first, after: $after) { " + FIELDS
BACK = "query($last: Int, $before: String) { admins(last: $last, before: $before) { " + FIELDS

COUNTED = "{ admins(first: 1) { totalCount nodes { name } } }"
EVERY = (
    "{ roles { name } admins(first: 10) { nodes { email } } quickLinks { slug } "
    "featuredResources { slug } }"
)
# each read several times in one request (siblings resolved at once, on the same connection)
ALIASED = (
    "{ a: admins(first: 1) { nodes { name } } b: admins(first: 10) { nodes { name } } "
    "r: roles { name } s: roles { name } q: quickLinks { slug } p: quickLinks { slug } "
    "f: featuredResources { slug } }"
)
FULL = "full@acme.example"
DOCUMENTS = [QUICK, FEATURED, ROLES, ADMINS]
IDS = ["quickLinks", "featuredResources", "roles", "admins"]


@asynccontextmanager
async def over(db: Database, cached: bool) -> AsyncIterator[Api]:
    await db.empty()
    async with api_over(db, **({} if cached else {"response_cache_seconds": 0})) as api:
        yield api


async def post(api: Api, query: str, token: str, **variables: Any) -> httpx.Response:
    return await api.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )


async def world(api: Api) -> dict[str, Any]:
    """Acme (two admins, the role ACME_ROLE) and Beta (one admin, the role BETA_ROLE), the
    resources' catalogue."""
    f = Factory(api.engine)
    acme = await f.partner("Acme Partners", "acme.example")
    beta = await f.partner("Beta Partners", "beta.example")
    admin = await f.admin(acme, FULL, "FULL_ADMIN", name="Fiona Full")
    await f.admin(beta, "boss@beta.example", "FULL_ADMIN", name="Bea Boss")
    await f.admin(acme, "olga@acme.example", "FULL_ADMIN", name="Olga Other")
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(CustomRole),
            [
                {"partner_id": acme, "name": "ACME_ROLE", "description": "", "created_at": NOW},
                {"partner_id": beta, "name": "BETA_ROLE", "description": "", "created_at": NOW},
            ],
        )
    await seed_resources(api.engine, now=NOW)
    return {"acme": acme, "beta": beta, "admin": admin}


ACME_SECRETS = ("ACME_ROLE", "Olga Other", "olga@acme.example")
BETA_SECRETS = ("BETA_ROLE", "Bea Boss", "boss@beta.example")


async def change(api: Api, w: dict[str, Any], how: str) -> None:
    async with api.engine.begin() as conn:
        if how == "revoked":
            await conn.execute(update(ApiToken).values(revoked_at=NOW))
        elif how == "deactivated":
            await conn.execute(update(Admin).where(Admin.id == w["admin"]).values(active=False))  # type: ignore[arg-type]
        elif how == "role":
            await conn.execute(
                update(Admin).where(Admin.id == w["admin"]).values(role="READ_ONLY_ADMIN")  # type: ignore[arg-type]
            )
        else:  # moved to Beta
            await conn.execute(
                update(Admin).where(Admin.id == w["admin"]).values(partner_id=w["beta"])  # type: ignore[arg-type]
            )


@pytest.mark.parametrize("how", ["revoked", "deactivated", "role", "moved"])
@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
@pytest.mark.parametrize(
    "document", [*DOCUMENTS, COUNTED, EVERY, ALIASED], ids=[*IDS, "counted", "every", "aliased"]
)
async def test_a_changed_principal_is_honoured_by_the_next_read(
    fresh_database: Database, document: str, cached: bool, how: str
) -> None:
    async with over(fresh_database, cached) as api:
        await changed_principal(api, document, how)


async def changed_principal(api: Api, document: str, how: str) -> None:
    # given: the token seen (twice: the document known, the principal memoised)
    w = await world(api)
    token = await token_for(api, FULL)
    for _ in range(2):
        assert (await post(api, document, token)).status_code == 200

    # when
    await change(api, w, how)
    response = await post(api, document, token)

    # then: 401, or the very answer a token never seen (no provisional run) gets
    if how in ("revoked", "deactivated"):
        assert response.status_code == 401, response.text
        assert error_codes(response.json()) == ["UNAUTHENTICATED"]
        assert "data" not in response.json() or response.json()["data"] is None
        return
    fresh = await new_token(api, w["admin"])
    reference = await post(api, document, fresh)
    assert response.status_code == reference.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "extensions"} == {
        k: v for k, v in reference.json().items() if k != "extensions"
    }
    if how == "moved" and document in (ROLES, ADMINS, EVERY, ALIASED):
        for secret in ACME_SECRETS:
            assert secret not in response.text
        assert any(secret in response.text for secret in BETA_SECRETS), response.text


@pytest.mark.parametrize("document", DOCUMENTS, ids=IDS)
async def test_an_empty_answer_still_looks_the_token_up(uncached_api: Api, document: str) -> None:
    # given: nothing for the read to return (no resources, no custom role, an admins page past
    # the last admin), the token seen
    api = uncached_api
    f = Factory(api.engine)
    partner = await f.partner("Acme Partners", "acme.example")
    await f.admin(partner, FULL, "FULL_ADMIN", name="Fiona Full")
    token = await token_for(api, FULL)
    variables: dict[str, Any] = {}
    if document == ADMINS:
        document = PAGED
        first = data_of((await post(api, PAGED, token, first=1)).json())["admins"]
        variables = {"first": 1, "after": first["pageInfo"]["endCursor"]}
    for _ in range(2):
        seen = await post(api, document, token, **variables)
        assert seen.status_code == 200, seen.text
    data = data_of(seen.json())
    if document in (QUICK, FEATURED):
        assert all(not v for v in data.values())
    if document == PAGED:
        assert data["admins"]["nodes"] == []
    if document == ROLES:
        assert all(r["builtIn"] for r in data["roles"])

    # when: the token is revoked
    async with api.engine.begin() as conn:
        await conn.execute(update(ApiToken).values(revoked_at=NOW))
    with api.counter.counting() as statements:
        response = await post(api, document, token, **variables)

    # then: 401 (the empty read answered nothing of the check: the lookup ran after it)
    assert response.status_code == 401, response.text
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    assert any("api_token" in sql for sql in statements)


async def test_another_partners_admins_cursor_is_refused(api: Api) -> None:
    # given: a cursor of Beta's admins page
    await world(api)
    beta = await token_for(api, "boss@beta.example")
    acme = await token_for(api, FULL)
    cursor = data_of((await post(api, PAGED, beta, first=1)).json())["admins"]["pageInfo"]
    await post(api, PAGED, acme, first=1)  # the Acme token seen

    for document, variables in (
        (PAGED, {"first": 1, "after": cursor["endCursor"]}),
        (BACK, {"last": 1, "before": cursor["startCursor"]}),
    ):
        for _ in range(2):  # (once seen, the second provisional)
            # when
            body = (await post(api, document, acme, **variables)).json()

            # then
            assert error_codes(body) == ["INVALID_CURSOR"], body
            assert not body.get("data") or body["data"].get("admins") is None
            assert "beta" not in str(body.get("data")).lower()


async def reference_admins(api: Api, partner: int) -> list[int]:
    async with api.engine.connect() as conn:
        rows = await conn.execute(
            select(Admin.id).where(Admin.partner_id == partner).order_by(Admin.id)  # type: ignore[arg-type]
        )
        return [r[0] for r in rows]


def id_of(node: dict[str, Any]) -> int:
    from graph.ids import from_global_id

    return int(from_global_id(node["id"])[1])


@pytest.mark.parametrize("size", [1, 2, 3, 100])
async def test_admins_paged_both_ways_match_the_reference(api: Api, size: int) -> None:
    # given: Acme's admins interleaved with Beta's (ids not contiguous)
    w = await world(api)
    f = Factory(api.engine)
    for n in range(6):
        await f.admin(w["acme"], f"a{n}@acme.example", "READ_ONLY_ADMIN")
        await f.admin(w["beta"], f"b{n}@beta.example", "READ_ONLY_ADMIN")
    expected = await reference_admins(api, w["acme"])
    token = await token_for(api, FULL)

    # when: walked forward, then backward from the end
    forward: list[int] = []
    after = None
    pages = 0
    while True:
        page = data_of((await post(api, PAGED, token, first=size, after=after)).json())["admins"]
        ids = [id_of(n) for n in page["nodes"]]
        forward += ids
        info = page["pageInfo"]
        assert info["hasPreviousPage"] == (after is not None)
        assert info["hasNextPage"] == (len(forward) < len(expected))
        assert len(ids) == min(size, len(expected) - len(forward) + len(ids))
        pages += 1
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    backward: list[int] = []
    before = None
    while True:
        page = data_of((await post(api, BACK, token, last=size, before=before)).json())["admins"]
        ids = [id_of(n) for n in page["nodes"]]
        assert ids == sorted(ids)
        backward = ids + backward
        info = page["pageInfo"]
        assert info["hasNextPage"] == (before is not None)
        assert info["hasPreviousPage"] == (len(backward) < len(expected))
        if not info["hasPreviousPage"]:
            break
        before = info["startCursor"]

    # then
    assert forward == expected
    assert backward == expected
    assert pages == -(-len(expected) // size)


@pytest.mark.parametrize(
    ("variables", "ok"),
    [
        ({"first": 0}, False),
        ({"first": -1}, False),
        ({"first": 1}, True),
        ({"first": 100}, True),
        ({"first": 101}, False),
        ({"last": 0}, False),
        ({"last": 1}, True),
        ({"last": 100}, True),
        ({"last": 101}, False),
    ],
)
async def test_admins_page_sizes(api: Api, variables: dict[str, Any], ok: bool) -> None:
    w = await world(api)
    token = await token_for(api, FULL)
    expected = await reference_admins(api, w["acme"])
    for _ in range(2):  # the second provisional
        document = PAGED if "first" in variables else BACK
        body = (await post(api, document, token, **variables)).json()
        if not ok:
            assert error_codes(body) == ["INVALID_PAGE_SIZE"], body
            continue
        page = data_of(body)["admins"]
        size = variables.get("first", variables.get("last"))
        ids = [id_of(n) for n in page["nodes"]]
        if "first" in variables:
            assert ids == expected[:size]
            assert page["pageInfo"]["hasNextPage"] == (size < len(expected))
            assert page["pageInfo"]["hasPreviousPage"] is False
        else:
            assert ids == expected[-size:]
            assert page["pageInfo"]["hasPreviousPage"] == (size < len(expected))
            assert page["pageInfo"]["hasNextPage"] is False


async def test_the_lists_and_roles_hold_exactly_their_bound(api: Api) -> None:
    # given: more custom roles than the answer holds, and the catalogue
    w = await world(api)
    names = [f"R{n:03d}" for n in range(120)]
    async with api.engine.begin() as conn:
        await conn.execute(
            insert(CustomRole),
            [
                {"partner_id": w["acme"], "name": n, "description": "", "created_at": NOW}
                for n in names
            ],
        )
    token = await token_for(api, FULL)
    for _ in range(2):
        # when
        roles = data_of((await post(api, ROLES, token)).json())["roles"]
        quick = data_of((await post(api, QUICK, token)).json())["quickLinks"]

        # then
        assert len(roles) == 100
        custom = [r["name"] for r in roles if not r["builtIn"]]
        assert custom == sorted([*names, "ACME_ROLE"])[: len(custom)]
        assert "BETA_ROLE" not in custom
        flagged = sum(bool(e["quick_link"]) for e in catalogue())
        assert len(quick) == min(api.settings.max_page_size, flagged)


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
async def test_many_reads_at_once_while_the_admin_moves_then_is_revoked(
    fresh_database: Database, cached: bool
) -> None:
    async with over(fresh_database, cached) as api:
        await many_reads(api)


async def many_reads(api: Api) -> None:
    # given: the token seen on every read
    w = await world(api)
    token = await token_for(api, FULL)
    every = "{ roles { name } admins(first: 10) { nodes { email } } quickLinks { slug } }"
    documents = (*DOCUMENTS, every) * 3
    for document in (*DOCUMENTS, every):
        assert (await post(api, document, token)).status_code == 200

    async def batch() -> list[httpx.Response]:
        return list(await asyncio.gather(*(post(api, d, token) for d in documents)))

    async def during(how: str) -> list[httpx.Response]:
        async def changed() -> None:
            await asyncio.sleep(0.001)
            await change(api, w, how)

        answers, _ = await asyncio.gather(batch(), changed())
        return answers

    # when: many reads at once, the admin moved to Beta amid them, then its token revoked
    before = await batch()
    amid_move = await during("moved")
    moved = await batch() + await batch()
    amid_revocation = await during("revoked")
    revoked = await batch()

    # then: before the move Acme's; amid a change either side of it; after the move nothing of
    # Acme's (Beta's instead); after the revocation 401
    for response in before + amid_move + moved + amid_revocation + revoked:
        assert response.status_code in (200, 401), response.text
        if response.status_code == 200:
            assert "INTERNAL_SERVER_ERROR" not in error_codes(response.json())
            assert not (
                any(s in response.text for s in ACME_SECRETS)
                and any(s in response.text for s in BETA_SECRETS)
            ), response.text
    assert all(r.status_code == 200 for r in before + amid_move + moved)
    assert any("Olga Other" in r.text for r in before)
    for response in moved:
        assert not any(s in response.text for s in ACME_SECRETS), response.text
    assert any("Bea Boss" in r.text for r in moved)
    assert all(r.status_code == 401 for r in revoked)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("FULL_ADMIN", "SALES_ADMIN"),
        ("FULL_ADMIN", "PARTNER_ADMIN"),
        ("READ_ONLY_ADMIN", "FULL_ADMIN"),
        ("SALES_ADMIN", "FULL_ADMIN"),
    ],
)
@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
@pytest.mark.parametrize("document", DOCUMENTS, ids=IDS)
async def test_a_new_role_is_answered_as_a_fresh_token_is(
    fresh_database: Database, document: str, cached: bool, before: str, after: str
) -> None:
    # given: the token seen with its old role (with the response cache on or off)
    async with over(fresh_database, cached) as api:
        await role_changed(api, document, before, after)


async def role_changed(api: Api, document: str, before: str, after: str) -> None:
    w = await world(api)
    async with api.engine.begin() as conn:
        await conn.execute(update(Admin).where(Admin.id == w["admin"]).values(role=before))  # type: ignore[arg-type]
    token = await token_for(api, FULL)
    for _ in range(2):
        assert (await post(api, document, token)).status_code == 200

    # when: its role changes
    async with api.engine.begin() as conn:
        await conn.execute(update(Admin).where(Admin.id == w["admin"]).values(role=after))  # type: ignore[arg-type]
    response = await post(api, document, token)

    # then: the answer of a token never seen
    reference = await post(api, document, await new_token(api, w["admin"]))
    assert response.status_code == reference.status_code == 200

    def bare(r: httpx.Response) -> dict[str, Any]:
        return {k: v for k, v in r.json().items() if k != "extensions"}

    assert bare(response) == bare(reference)


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
async def test_a_cursor_from_before_a_move_is_refused_after_it(
    fresh_database: Database, cached: bool
) -> None:
    async with over(fresh_database, cached) as api:
        await cursor_after_move(api)


async def cursor_after_move(api: Api) -> None:
    # given: a cursor of Acme's admins page, the token seen
    w = await world(api)
    token = await token_for(api, FULL)
    page = data_of((await post(api, PAGED, token, first=1)).json())["admins"]
    cursor = page["pageInfo"]["endCursor"]
    assert data_of((await post(api, PAGED, token, first=1, after=cursor)).json())["admins"]

    # when: the admin moves to Beta, then pages on with the cursor (both ways)
    await change(api, w, "moved")
    forward = (await post(api, PAGED, token, first=1, after=cursor)).json()
    backward = (await post(api, BACK, token, last=1, before=cursor)).json()

    # then: refused, nothing of Acme
    for body in (forward, backward):
        assert error_codes(body) == ["INVALID_CURSOR"], body
        for secret in ACME_SECRETS:
            assert secret not in str(body)


async def test_roles_created_by_another_admin_show_on_the_next_read(api: Api) -> None:
    # given: Acme's roles read (and cached) by one admin
    await world(api)
    reader = await token_for(api, FULL)
    writer = await token_for(api, "olga@acme.example")

    def customs(body: dict[str, Any]) -> list[str]:
        return [r["name"] for r in data_of(body)["roles"] if not r["builtIn"]]

    for _ in range(2):
        assert customs((await post(api, ROLES, reader)).json()) == ["ACME_ROLE"]

    # when: another admin of Acme defines a role
    rule = '{object: "audit", action: "read", scope: "all"}'
    create = (
        'mutation { createRole(input: {name: "AUDITOR", rules: [' + rule + "]}) { role { name } } }"
    )
    created = data_of((await post(api, create, writer)).json())["createRole"]
    assert created["role"] == {"name": "AUDITOR"}

    # then
    assert customs((await post(api, ROLES, reader)).json()) == ["ACME_ROLE", "AUDITOR"]
    beta = await token_for(api, "boss@beta.example")
    assert customs((await post(api, ROLES, beta)).json()) == ["BETA_ROLE"]


RESOURCE_FIELDS = (
    "slug title summary body url type products audiences quickLink featured popularity updatedAt"
)


async def test_the_lists_rows_are_those_other_reads_give(uncached_api: Api) -> None:
    # given: the catalogue, the token seen
    api = uncached_api
    await world(api)
    token = await token_for(api, FULL)
    lists = f"{{ quickLinks {{ {RESOURCE_FIELDS} }} featuredResources {{ {RESOURCE_FIELDS} }} }}"
    every = f"{{ resources(first: 100) {{ nodes {{ {RESOURCE_FIELDS} }} }} }}"
    reference = {
        r["slug"]: r for r in data_of((await post(api, every, token)).json())["resources"]["nodes"]
    }
    for _ in range(2):  # the second provisional
        # when
        data = data_of((await post(api, lists, token)).json())

        # then: field for field (types, lists and times read as SQLAlchemy reads them)
        assert data["quickLinks"] and data["featuredResources"]
        for resource in data["quickLinks"] + data["featuredResources"]:
            assert resource == reference[resource["slug"]]


async def test_the_admins_rows_are_those_other_reads_give(uncached_api: Api) -> None:
    # given: Acme's admins, one of them deactivated, the token seen
    api = uncached_api
    w = await world(api)
    async with api.engine.begin() as conn:
        await conn.execute(
            update(Admin)
            .where(Admin.email == "olga@acme.example")  # type: ignore[arg-type]
            .values(active=False, deactivated_at=NOW)
        )
    token = await token_for(api, FULL)
    fields = "id email name role active createdAt roles partner { name }"
    viewer = data_of((await post(api, f"{{ viewer {{ {fields} }} }}", token)).json())["viewer"]
    for _ in range(2):  # the second provisional
        # when
        page = f"{{ admins(first: 10) {{ nodes {{ {fields} }} }} }}"
        nodes = data_of((await post(api, page, token)).json())["admins"]["nodes"]

        # then
        assert [id_of(n) for n in nodes] == await reference_admins(api, w["acme"])
        assert nodes[0] == viewer
        assert [n["active"] for n in nodes] == [True, False]
        assert nodes[1]["createdAt"] == viewer["createdAt"]


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (PAGED, {"first": 101}),
        (PAGED, {"first": 0}),
        (BACK, {"last": 0}),
        (PAGED, {"first": 1, "after": "not-a-cursor"}),
        (BACK, {"last": 1, "before": "beta"}),
        (ROLES, {}),
        (QUICK, {}),
    ],
)
async def test_a_refusal_or_empty_answer_for_a_revoked_token_is_401(
    uncached_api: Api, document: str, variables: dict[str, Any]
) -> None:
    # given: the token seen on this very request (refused or answered)
    api = uncached_api
    await world(api)
    token = await token_for(api, FULL)
    if variables.get("before") == "beta":
        beta = await token_for(api, "boss@beta.example")
        page = data_of((await post(api, PAGED, beta, first=1)).json())["admins"]
        variables = {**variables, "before": page["pageInfo"]["endCursor"]}
    for _ in range(2):
        assert (await post(api, document, token, **variables)).status_code == 200

    # when: revoked
    async with api.engine.begin() as conn:
        await conn.execute(update(ApiToken).values(revoked_at=NOW))
    response = await post(api, document, token, **variables)

    # then: 401, not the refusal (nor anything else) computed as the token's last principal
    assert response.status_code == 401, response.text
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_before_alone_pages_back_by_the_default_size(api: Api) -> None:
    # given: Acme's admins and the cursor of its last
    w = await world(api)
    f = Factory(api.engine)
    for n in range(3):
        await f.admin(w["acme"], f"a{n}@acme.example", "READ_ONLY_ADMIN")
    expected = await reference_admins(api, w["acme"])
    token = await token_for(api, FULL)
    last = data_of((await post(api, BACK, token, last=1)).json())["admins"]
    assert [id_of(n) for n in last["nodes"]] == expected[-1:]
    before_only = "query($b: String) { admins(before: $b) { " + FIELDS
    both = "query($b: String) { admins(first: 1, before: $b) { " + FIELDS

    for _ in range(2):
        # when
        page = data_of(
            (await post(api, before_only, token, b=last["pageInfo"]["startCursor"])).json()
        )
        refused = (await post(api, both, token, b=last["pageInfo"]["startCursor"])).json()

        # then
        assert [id_of(n) for n in page["admins"]["nodes"]] == expected[:-1]
        assert page["admins"]["pageInfo"]["hasPreviousPage"] is False
        assert page["admins"]["pageInfo"]["hasNextPage"] is True
        assert error_codes(refused) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=IDS)
async def test_an_unusual_name_still_confirms_the_provisional_run(
    uncached_api: Api, document: str
) -> None:
    """The lookup riding along comes back as JSON text: a name JSON escapes (quotes, a
    backslash, a tab, non-ASCII, an emoji) must still read as the principal the run assumed,
    or every request of that admin would run twice."""
    # given: an admin so named, its token seen
    api = uncached_api
    w = await world(api)
    name = 'Zoë "Q" \\ \t ünï 🚀 \u2028 end '
    async with api.engine.begin() as conn:
        await conn.execute(update(Admin).where(Admin.id == w["admin"]).values(name=name))  # type: ignore[arg-type]
    token = await token_for(api, FULL)
    first = await post(api, document, token)
    assert first.status_code == 200

    # when
    with api.counter.counting() as statements:
        again = await post(api, document, token)

    # then: the same answer, in one statement on PostgreSQL (no rerun)
    assert again.status_code == 200
    assert again.json()["data"] == first.json()["data"]
    if document == ADMINS:
        assert name in [n["name"] for n in again.json()["data"]["admins"]["nodes"]]
    if api.db.backend == "postgresql":
        assert len(statements) == 1, statements


GRANT = """mutation($input: GrantRoleInput!) {
  grantRole(input: $input) { userErrors { code } } }"""
UNGRANT = """mutation($input: RevokeRoleInput!) {
  revokeRole(input: $input) { userErrors { code } } }"""
ROLES_OF_ADMINS = "{ admins(first: 10) { nodes { email roles } } }"


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
async def test_a_granted_role_shows_on_the_admins_page_of_a_seen_token(
    fresh_database: Database, cached: bool
) -> None:
    async with over(fresh_database, cached) as api:
        await granted_role(api)


async def granted_role(api: Api) -> None:
    # given: Olga's token seen on the admins page, Fiona granting and taking roles
    await world(api)
    olga = await token_for(api, "olga@acme.example")
    fiona = await token_for(api, FULL)

    async def olgas_roles() -> list[str]:
        response = await post(api, ROLES_OF_ADMINS, olga)
        nodes = data_of(response.json())["admins"]["nodes"]
        return next(n["roles"] for n in nodes if n["email"] == "olga@acme.example")

    for _ in range(2):
        assert await olgas_roles() == ["FULL_ADMIN"]
    olga_id = next(
        n["id"]
        for n in data_of((await post(api, PAGED, fiona, first=10)).json())["admins"]["nodes"]
        if n["email"] == "olga@acme.example"
    )
    grant = {"input": {"adminId": olga_id, "role": "SALES_ADMIN"}}

    # when: granted, then taken away
    granted = (await post(api, GRANT, fiona, **grant)).json()
    after_grant = await olgas_roles()
    taken = (await post(api, UNGRANT, fiona, **grant)).json()
    after_revoke = await olgas_roles()

    # then
    assert data_of(granted)["grantRole"]["userErrors"] == []
    assert data_of(taken)["revokeRole"]["userErrors"] == []
    assert after_grant == ["FULL_ADMIN", "SALES_ADMIN"]
    assert after_revoke == ["FULL_ADMIN"]
