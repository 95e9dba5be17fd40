"""Session 14's attack on provisional queries (``db.token_check``): a query whose token this
process has seen runs as the principal last seen with it, its lookup riding along its first
statement. Pinned here: a revoked token, a deactivated admin, a new role, partner or policy is
honoured by the very next query of every kind (a page, a walked page, the detail, a node, a
field whose first statement is no driver query, no statement at all, a cached answer, a
refusal), on this instance or after another instance changed it; a rerun charges the token's
budget once and logs no unexpected error; a seen token's query sends no lookup of its own."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import delete, update

from db.engine import session_factory
from db.models import Admin, ApiToken, CasbinRule
from db.queries.policies import bump_policy_version
from graph.ids import to_global_id
from tests.conftest import NOW, Api, api_over, instance_beside
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for
from tests.test_auth import new_token

FULL = "full@acme.example"
OTHER = "other@acme.example"
PAGE = "query Page { customers(first: 2) { nodes { name } pageInfo { endCursor } } }"
WALKED = (
    "query Walked($after: String) { customers(first: 2, after: $after, "
    "filter: {statuses: [ACTIVE]}) { nodes { name } } }"
)
DETAIL = "query Detail($id: ID!) { customer(id: $id) { name subscriptions { subscriptionId } } }"
NODE = "query Node($id: ID!) { node(id: $id) { ... on Customer { name } } }"
TAGS = "query Tags { tags { name } }"
ADMINS = "query Admins { admins(first: 5) { nodes { email role } } }"
VIEWER = "query Viewer { viewer { email role partner { name } } }"
TYPENAME = "query Typename { __typename }"
INTROSPECT = "query Introspect { __schema { queryType { name } } }"


async def acme(api: Api) -> dict[str, Any]:
    """Two partners, each with customers; Acme's full admin and a second admin."""
    factory = Factory(api.engine)
    acme_id = await factory.partner("Acme Partners", "acme.example")
    beta_id = await factory.partner("Beta Partners", "beta.example")
    admin = await factory.admin(acme_id, FULL, "FULL_ADMIN", name="Fiona Full")
    other = await factory.admin(acme_id, OTHER, "FULL_ADMIN", name="Olga Other")
    customers = []
    for name in ("Alpha", "Bravo", "Charlie"):
        customer = await factory.customer(acme_id, f"Acme {name}")
        await factory.subscription(customer)
        customers.append(customer)
    for name in ("Delta", "Echo"):
        await factory.subscription(await factory.customer(beta_id, f"Beta {name}"))
    return {"acme": acme_id, "beta": beta_id, "admin": admin, "other": other, "ids": customers}


def cases(world: dict[str, Any], cursor: str | None) -> list[tuple[str, dict[str, Any]]]:
    customer = to_global_id("Customer", world["ids"][0])
    return [
        (PAGE, {}),
        (WALKED, {"after": cursor}),
        (DETAIL, {"id": customer}),
        (NODE, {"id": customer}),
        (TAGS, {}),
        (ADMINS, {}),
        (VIEWER, {}),
        (TYPENAME, {}),
        (INTROSPECT, {}),
    ]


async def seen(api: Api, world: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every case asked twice (the second a cached answer where the cache is on)."""
    first = data_of(
        await post_graphql(
            api,
            WALKED.replace("nodes {", "pageInfo { endCursor } nodes {"),
            {"after": None},
            as_=FULL,
        )
    )
    every = cases(world, first["customers"]["pageInfo"]["endCursor"])
    for document, variables in every * 2:
        data_of(await post_graphql(api, document, variables, as_=FULL))
    return every


async def change(api: Api, world: dict[str, Any], how: str) -> None:
    async with api.engine.begin() as conn:
        if how == "revoke":
            await conn.execute(update(ApiToken).values(revoked_at=NOW))
        elif how == "deactivate":
            await conn.execute(update(Admin).where(Admin.id == world["admin"]).values(active=False))


@pytest.mark.parametrize("how", ["revoke", "deactivate"])
@pytest.mark.parametrize("cached", [True, False])
async def test_a_revoked_token_is_401_on_the_very_next_query_of_every_kind(
    fresh_database: Any, how: str, cached: bool
) -> None:
    await fresh_database.empty()
    overrides = {} if cached else {"response_cache_seconds": 0}
    async with api_over(fresh_database, **overrides) as api:
        world = await acme(api)
        every = await seen(api, world)
        token = await token_for(api, FULL)
        for document, variables in every:
            # when: the token goes between two queries (each case on a token seen valid)
            await change(api, world, how)
            body = await post_graphql(api, document, variables, token=token, expect_status=401)
            # then
            assert error_codes(body) == ["UNAUTHENTICATED"] and "data" not in body, document
            # (valid again for the next case: the memo must have forgotten it, then relearn it)
            async with api.engine.begin() as conn:
                await conn.execute(update(ApiToken).values(revoked_at=None))
                await conn.execute(update(Admin).values(active=True))
            data_of(await post_graphql(api, document, variables, token=token))


async def test_revoked_through_another_instance_is_401_here_at_once(api: Api) -> None:
    world = await acme(api)
    every = await seen(api, world)
    token = await token_for(api, FULL)
    async with instance_beside(api) as beside:
        data_of(await post_graphql(beside, VIEWER, token=token))
        revoke = "mutation($id: ID!) { deactivateAdmin(input: {id: $id}) { admin { email } } }"
        other = await token_for(api, OTHER)
        done = await post_graphql(
            beside, revoke, {"id": to_global_id("Admin", world["admin"])}, token=other
        )
        assert not done.get("errors"), done
    for document, variables in every:
        body = await post_graphql(api, document, variables, token=token, expect_status=401)
        assert "data" not in body


async def test_a_role_that_cannot_read_customers_is_honoured_by_the_next_query(api: Api) -> None:
    world = await acme(api)
    every = await seen(api, world)
    token = await token_for(api, FULL)
    for role in ("SALES_ADMIN", "NO_SUCH_ROLE"):
        async with api.engine.begin() as conn:
            await conn.execute(update(Admin).where(Admin.id == world["admin"]).values(role=role))
        for document, variables in every[:4]:  # page, walked page, detail, node
            body = await post_graphql(api, document, variables, token=token)
            found = str(body.get("data"))
            assert "Acme" not in found and "Beta" not in found, (role, document, body)
        viewer = data_of(await post_graphql(api, VIEWER, token=token))["viewer"]
        assert viewer["role"] == role


async def test_a_removed_policy_rule_is_honoured_by_the_next_query(api: Api) -> None:
    world = await acme(api)
    every = await seen(api, world)
    token = await token_for(api, FULL)
    # when: another process withdraws the full admin's customer reads (and bumps the version)
    async with session_factory(api.engine)() as session:
        await session.execute(
            delete(CasbinRule).where(
                CasbinRule.v0 == "FULL_ADMIN",
                CasbinRule.v2 == "customer",  # type: ignore[arg-type]
            )
        )
        await bump_policy_version(session)
        await session.commit()
    for document, variables in every[:4]:
        body = await post_graphql(api, document, variables, token=token)
        assert "Acme" not in str(body.get("data")), (document, body)


async def test_an_admin_moved_to_another_partner_reads_that_partner_at_once(api: Api) -> None:
    world = await acme(api)
    every = await seen(api, world)
    token = await token_for(api, FULL)
    async with api.engine.begin() as conn:
        await conn.execute(
            update(Admin).where(Admin.id == world["admin"]).values(partner_id=world["beta"])
        )
    page = data_of(await post_graphql(api, PAGE, token=token))["customers"]["nodes"]
    assert {n["name"] for n in page} == {"Beta Delta", "Beta Echo"}
    for document, variables in every[1:4]:  # Acme's walked page, detail, node: nothing of Acme
        body = await post_graphql(api, document, variables, token=token)
        assert "Acme" not in str(body.get("data")), (document, body)


async def test_another_admins_write_shows_on_the_next_cached_read(api: Api) -> None:
    await acme(api)
    data_of(await post_graphql(api, TAGS, as_=FULL))
    data_of(await post_graphql(api, TAGS, as_=FULL))
    create = 'mutation { createTag(input: {name: "fresh"}) { tag { name } userErrors { code } } }'
    assert data_of(await post_graphql(api, create, as_=OTHER))["createTag"]["tag"]
    assert data_of(await post_graphql(api, TAGS, as_=FULL))["tags"] == [{"name": "fresh"}]


async def test_a_rerun_charges_the_tokens_budget_once(fresh_database: Any) -> None:
    # given: a budget of 100 points a minute, a page of cost 40, spent once
    await fresh_database.empty()
    async with api_over(
        fresh_database, cost_per_minute=100, cost_budget_store="process", response_cache_seconds=0
    ) as api:
        world = await acme(api)
        page = "query { customers(first: 39) { nodes { name } } }"
        data_of(await post_graphql(api, page, as_=FULL))
        # when: the admin's principal changes (a rename), then the same page once more
        async with api.engine.begin() as conn:
            await conn.execute(update(Admin).where(Admin.id == world["admin"]).values(name="N"))
        body = await post_graphql(api, page, as_=FULL)
        # then: 80 points spent, not 120 (a 429 for a request the client made once)
        assert data_of(body)["customers"]["nodes"]
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] >= 20


async def test_a_rerun_logs_no_unexpected_error(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    world = await acme(api)
    every = await seen(api, world)
    token = await token_for(api, FULL)
    for document, variables in every:
        async with api.engine.begin() as conn:
            await conn.execute(
                update(Admin).where(Admin.id == world["admin"]).values(name=document)
            )
        with caplog.at_level(logging.INFO):
            caplog.clear()
            body = await post_graphql(api, document, variables, token=token)
        assert not body.get("errors"), body
        unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not unexpected, (document, [r.getMessage() for r in unexpected])


async def test_a_seen_tokens_query_sends_no_lookup_of_its_own(uncached_api: Api) -> None:
    api = uncached_api
    world = await acme(api)
    customer = to_global_id("Customer", world["ids"][0])
    data_of(await post_graphql(api, VIEWER, as_=OTHER))  # the app's start, not counted
    for document, variables, carried in [(PAGE, {}, True), (DETAIL, {"id": customer}, True)]:
        token = await new_token(api, world["admin"])
        with api.counter.counting() as unseen:
            data_of(await post_graphql(api, document, variables, token=token))
        with api.counter.counting() as again:
            data_of(await post_graphql(api, document, variables, token=token))
        if api.db.backend == "postgresql" and carried:
            assert "partner_hub_token_check" not in unseen[0] and "api_token" in unseen[0]
            assert "partner_hub_token_check" in again[0], again
            assert len(again) == len(unseen) - 1, (unseen, again)
        else:
            assert not any("partner_hub_token_check" in s for s in unseen + again)
            assert len(again) == len(unseen)
