"""Attacks on session 12's caches that outlive a request (``Authorizer.scope``, the detail's
plans in ``Authorizer.derived``, the per-operation memos of ``graph.memo``) and on the token
lookup on the driver connection: each change of what a caller may see must show on its very
next request, through the same parsed document."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from db.engine import read_from_one_snapshot, session_factory
from db.models import Admin
from db.queries.admins import revoke_token
from db.queries.policies import add_policy_line, load_policies, remove_policy_line
from graph.ids import to_global_id
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql, token_for

DETAIL = """query($id: ID!) { customer(id: $id) {
  id name subscriptions { id } trials { id } tags { name } } }"""
AUDITOR = "AUDITOR"
CUSTOMER_READ = ("p", AUDITOR, "*", "customer", "read", "all", "allow")
SUBSCRIPTION_READ = ("p", AUDITOR, "*", "subscription", "read", "all", "allow")


async def _lines(api: Api, add: list[Any], remove: list[Any] = ()) -> None:  # type: ignore[assignment]
    """A policy change written straight to the database, as the CLI or another instance does
    (the version moves; this process learns it only through the token lookup's sync)."""
    async with session_factory(api.engine)() as session:
        for line in remove:
            await remove_policy_line(session, line=tuple(line))
        for line in add:
            await add_policy_line(session, line=tuple(line))
        await session.commit()


async def _world(api: Api) -> tuple[Factory, int, int, int]:
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, "auditor@acme.example", AUDITOR)
    sales = await f.admin(partner, "sales@acme.example", "SALES_ADMIN")
    customer = await f.customer(partner, "Globex")
    await f.subscription(customer)
    # The app seeds the default policies on its first start, only into an empty table: start
    # it before any line of these tests is written.
    data_of(await post_graphql(api, "{ __typename }", as_="sales@acme.example"))
    return f, partner, sales, customer


async def _detail(api: Api, email: str, customer: int) -> Any:
    body = await post_graphql(api, DETAIL, {"id": to_global_id("Customer", customer)}, as_=email)
    return data_of(body)["customer"]


async def test_policy_changed_elsewhere_shows_on_next_detail(uncached_api: Api) -> None:
    api = uncached_api
    _, _, _, customer = await _world(api)
    await _lines(api, [CUSTOMER_READ, SUBSCRIPTION_READ])
    first = await _detail(api, "auditor@acme.example", customer)
    assert len(first["subscriptions"]) == 1
    # Another instance takes the subscriptions away: the kept scope and plan must go.
    await _lines(api, [], [SUBSCRIPTION_READ])
    assert (await _detail(api, "auditor@acme.example", customer))["subscriptions"] == []
    # ... and gives them back.
    await _lines(api, [SUBSCRIPTION_READ])
    assert len((await _detail(api, "auditor@acme.example", customer))["subscriptions"]) == 1
    # The customer itself taken away: not found.
    await _lines(api, [], [CUSTOMER_READ])
    assert await _detail(api, "auditor@acme.example", customer) is None


async def test_granted_role_elsewhere_shows_on_next_detail(uncached_api: Api) -> None:
    api = uncached_api
    _, partner, sales, customer = await _world(api)
    assert await _detail(api, "sales@acme.example", customer) is None  # not its customer
    grant = ("g", f"admin:{sales}", "READ_ONLY_ADMIN", f"partner:{partner}")
    await _lines(api, [grant])
    assert (await _detail(api, "sales@acme.example", customer))["name"] == "Globex"
    await _lines(api, [], [grant])
    assert await _detail(api, "sales@acme.example", customer) is None


async def test_assignment_between_requests_is_not_frozen(uncached_api: Api) -> None:
    api = uncached_api
    f, _, sales, customer = await _world(api)
    assert await _detail(api, "sales@acme.example", customer) is None
    await f.assign(customer, sales)  # no policy change: the kept Scope names the admin only
    found = await _detail(api, "sales@acme.example", customer)
    assert found["name"] == "Globex" and len(found["subscriptions"]) == 1


async def test_same_document_two_partners_and_roles(uncached_api: Api) -> None:
    api = uncached_api
    f, _, _, customer = await _world(api)
    other = await f.partner("Other", "other.example")
    await f.admin(other, "full@other.example", "FULL_ADMIN")
    await _lines(api, [CUSTOMER_READ])
    # The auditor reads the customer but no subscription; then the other partner's full admin
    # (same document, same kept selections) sees nothing of it.
    seen = await _detail(api, "auditor@acme.example", customer)
    assert seen["name"] == "Globex" and seen["subscriptions"] == []
    assert await _detail(api, "full@other.example", customer) is None
    again = await _detail(api, "auditor@acme.example", customer)
    assert again["subscriptions"] == []


async def test_admin_role_change_shows_on_next_detail(uncached_api: Api) -> None:
    api = uncached_api
    _, _, sales, customer = await _world(api)
    assert await _detail(api, "sales@acme.example", customer) is None
    async with api.engine.begin() as conn:
        await conn.execute(update(Admin).where(Admin.id == sales).values(role="READ_ONLY_ADMIN"))  # type: ignore[arg-type]
    assert len((await _detail(api, "sales@acme.example", customer))["subscriptions"]) == 1


async def test_revoked_token_refused_on_next_request(uncached_api: Api) -> None:
    api = uncached_api
    _, _, _, customer = await _world(api)
    await _lines(api, [CUSTOMER_READ])
    token = await token_for(api, "auditor@acme.example")
    await post_graphql(api, "{ __typename }", token=token)
    async with session_factory(api.engine)() as session:
        assert await revoke_token(session, token=token, now=NOW)
        await session.commit()
    await post_graphql(api, "{ __typename }", token=token, expect_status=401)
    await post_graphql(
        api, DETAIL, {"id": to_global_id("Customer", customer)}, token=token, expect_status=401
    )


INCLUDED = """query($id: ID!, $subs: Boolean!) { customer(id: $id) {
  name ...Parts subscriptions @include(if: $subs) { id } } }
fragment Parts on Customer { n: name tags { name } }"""
FRAGMENTED = """query($id: ID!) { node(id: $id) { ...C ... on Subscription { id } } }
fragment C on Customer { name subscriptions { id } }"""


async def test_same_document_with_directive_and_other_variables(uncached_api: Api) -> None:
    api = uncached_api
    f, partner, _, customer = await _world(api)
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    cid = to_global_id("Customer", customer)
    for subs in (True, False, True, False):
        body = await post_graphql(api, INCLUDED, {"id": cid, "subs": subs}, as_="full@acme.example")
        found = data_of(body)["customer"]
        assert found["n"] == "Globex" and found["tags"] == []
        assert ("subscriptions" in found) is subs, found
        if subs:
            assert len(found["subscriptions"]) == 1


async def test_shared_plans_by_runtime_type_and_caller(uncached_api: Api) -> None:
    api = uncached_api
    f, partner, _, customer = await _world(api)
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    await _lines(api, [CUSTOMER_READ])
    sub = await f.subscription(customer)
    ids = [to_global_id("Customer", customer), to_global_id("Subscription", sub)]
    for _ in range(2):
        for id_ in ids:
            full = await post_graphql(api, FRAGMENTED, {"id": id_}, as_="full@acme.example")
            seen = await post_graphql(api, FRAGMENTED, {"id": id_}, as_="auditor@acme.example")
            if id_ == ids[0]:
                node = data_of(full)["node"]
                assert node is not None, (full, id_, ids)
                assert node["name"] == "Globex" and len(node["subscriptions"]) == 2
                assert data_of(seen)["node"] == {"name": "Globex", "subscriptions": []}
            else:
                assert data_of(full)["node"] == {"id": id_}
                assert data_of(seen)["node"] is None


async def test_deactivated_admin_refused_on_next_request(uncached_api: Api) -> None:
    api = uncached_api
    _, _, sales, customer = await _world(api)
    token = await token_for(api, "sales@acme.example")
    async with api.engine.begin() as conn:
        await conn.execute(update(Admin).where(Admin.id == sales).values(active=False))  # type: ignore[arg-type]
    await post_graphql(
        api, DETAIL, {"id": to_global_id("Customer", customer)}, token=token, expect_status=401
    )


async def test_odd_authorization_headers_get_their_401(uncached_api: Api) -> None:
    """An empty, a repeated or a non-bearer header neither passes nor reaches a statement."""
    api = uncached_api
    await _world(api)
    token = await token_for(api, "sales@acme.example")
    query = {"query": "{ __typename }"}
    for headers in (
        [("Authorization", "")],
        [("Authorization", "Basic eDp5")],
        [("Authorization", ""), ("Authorization", f"Bearer {token}")],
        [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {token}")],
    ):
        response = await api.client.post("/graphql", json=query, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # GET of a persisted read without the header: 401 before anything is looked up.
    response = await api.client.get(
        "/graphql", params={"extensions": '{"persistedQuery":{"version":1,"sha256Hash":"00"}}'}
    )
    assert response.status_code == 401, response.text


async def test_an_older_snapshot_never_rolls_the_policies_back(uncached_api: Api) -> None:
    """On SQLite a request reads one snapshot, its token lookup included: one that began before
    a policy change and syncs after this process learned it must not load its older policies
    into the process's authorizer, under the feet of the requests already on the new ones (a
    revoked permission granted again to them until the next sync)."""
    api = uncached_api
    _, _, _, customer = await _world(api)
    await _lines(api, [CUSTOMER_READ, SUBSCRIPTION_READ])
    assert len((await _detail(api, "auditor@acme.example", customer))["subscriptions"]) == 1
    hub = api.client._transport.app.state.hub  # type: ignore[attr-defined]
    async with hub.sessions() as old:
        read_from_one_snapshot(old)
        _, before = await load_policies(old)  # the older request's snapshot opens here
        await _lines(api, [], [SUBSCRIPTION_READ])  # committed after it began
        # A newer request learns the change first.
        assert (await _detail(api, "auditor@acme.example", customer))["subscriptions"] == []
        after = hub.services.authorizer.version
        assert int(after) > int(before)
        await hub.sync_policies(before, old)  # the older request syncs now
        assert hub.services.authorizer.version == after
    assert (await _detail(api, "auditor@acme.example", customer))["subscriptions"] == []
