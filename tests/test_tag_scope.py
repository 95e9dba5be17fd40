"""Tag writes under a scope (issue 14, finding 5).

Under an ``assigned`` tag write scope (the partner admin's), renaming or deleting a tag that is
on a customer, or on a subscription of a customer, outside the caller's customers is
``FORBIDDEN`` and writes nothing: those customers keep the tag as it was. Attaching and
detaching reach only customers (and subscriptions) the caller may write tags on *and* read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import update

from db.models import Customer
from graph.ids import from_global_id
from tests.authz_support import AuthzFactory, create_admin, create_role
from tests.conftest import Api
from tests.helpers import data_of, error_codes, post_graphql, token_for
from tests.test_tags import (
    ADD_TO_CUSTOMERS,
    ADD_TO_SUBSCRIPTIONS,
    DELETE_TAG,
    FULL,
    PARTNER,
    REMOVE_FROM_CUSTOMERS,
    REMOVE_FROM_SUBSCRIPTIONS,
    TAGS,
    UPDATE_TAG,
    World,
    assert_each_forbidden,
    assert_each_refused,
    build_world,
    codes,
    gid,
    mutate,
    ok,
    sub_tag_names,
    tag_names,
)


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


def factory(api: Api) -> AuthzFactory:
    return AuthzFactory(api.engine)


def changes(tag: int) -> list[tuple[str, dict[str, Any]]]:
    """Every way to change a tag itself: rename, describe, delete."""
    tag_id = gid("Tag", tag)
    return [
        (UPDATE_TAG, {"id": tag_id, "name": "Renamed"}),
        (UPDATE_TAG, {"id": tag_id, "description": "Changed"}),
        (UPDATE_TAG, {"id": tag_id}),
        (DELETE_TAG, {"id": tag_id}),
    ]


async def tag_list(api: Api) -> dict[str, str | None]:
    tags = data_of(await post_graphql(api, TAGS, as_=FULL))["tags"]
    return {t["name"]: t["description"] for t in tags}


async def test_a_partner_admin_cannot_rename_or_delete_a_tag_on_a_customer_it_cannot_see(
    api: Api, world: World
) -> None:
    # given: Gold is on the partner admin's customer and on one it is not assigned to
    f = factory(api)
    gold = await f.tag(world.acme, "Gold")
    for customer in (world.assigned, world.unassigned):
        await f.tag_customer(world.acme, customer, gold)
    # when / then: FORBIDDEN, nothing written
    await assert_each_forbidden(api, changes(gold), as_=PARTNER)
    # then: the other customer keeps the tag, name and all
    assert await tag_names(api, world.unassigned) == ["Gold"]
    assert await tag_names(api, world.assigned) == ["Gold"]
    assert (await tag_list(api))["Gold"] is None


async def test_a_tag_on_an_invisible_customers_subscription_is_out_of_reach_too(
    api: Api, world: World
) -> None:
    # given: Silver is on no customer, only on a subscription of an unassigned customer
    f = factory(api)
    silver = await f.tag(world.acme, "Silver")
    await f.tag_subscription(world.acme, world.unassigned_sub, silver)
    # when / then
    await assert_each_forbidden(api, changes(silver), as_=PARTNER)
    # then
    assert await sub_tag_names(api, world.unassigned, world.unassigned_sub) == ["Silver"]


async def test_a_partner_admin_changes_tags_that_stay_within_its_customers(
    api: Api, world: World
) -> None:
    # given: tags on its assigned customer, on a customer it provisioned, on a subscription of
    # its customer, on nothing, and another partner's use of a same-named tag
    f = factory(api)
    provisioned = await f.customer(world.acme, "Provisioned Co")
    async with api.engine.begin() as conn:
        await conn.execute(
            update(Customer)
            .where(Customer.id == provisioned)  # type: ignore[arg-type]
            .values(provisioned_by_admin_id=world.admins[PARTNER])
        )
    mine, made, on_sub, bare = [
        await f.tag(world.acme, name) for name in ("Mine", "Made", "OnSub", "Bare")
    ]
    await f.tag_customer(world.acme, world.assigned, mine)
    await f.tag_customer(world.acme, provisioned, made)
    await f.tag_subscription(world.acme, world.assigned_sub, on_sub)
    foreign = await f.tag(world.globex, "Mine")
    await f.tag_customer(world.globex, world.foreign, foreign)
    # when: renamed and described
    for tag, name in ((mine, "Mine 2"), (made, "Made 2"), (on_sub, "OnSub 2"), (bare, "Bare 2")):
        payload = ok(
            await mutate(api, UPDATE_TAG, {"id": gid("Tag", tag), "name": name}, as_=PARTNER)
        )
        # then
        assert payload["tag"]["name"] == name
    assert await tag_names(api, world.assigned) == ["Mine 2"]
    assert await tag_names(api, provisioned) == ["Made 2"]
    # when: deleted
    for tag in (mine, made, on_sub, bare):
        ok(await mutate(api, DELETE_TAG, {"id": gid("Tag", tag)}, as_=PARTNER))
    # then
    assert await tag_names(api, world.assigned) == []
    assert await sub_tag_names(api, world.assigned, world.assigned_sub) == []
    assert await tag_list(api) == {}


async def test_a_full_admin_still_renames_and_deletes_any_tag(api: Api, world: World) -> None:
    # given
    f = factory(api)
    gold = await f.tag(world.acme, "Gold")
    await f.tag_customer(world.acme, world.unassigned, gold)
    await f.tag_subscription(world.acme, world.unassigned_sub, gold)
    # when / then
    ok(await mutate(api, UPDATE_TAG, {"id": gid("Tag", gold), "name": "Platinum"}, as_=FULL))
    assert await tag_names(api, world.unassigned) == ["Platinum"]
    ok(await mutate(api, DELETE_TAG, {"id": gid("Tag", gold)}, as_=FULL))
    assert await tag_names(api, world.unassigned) == []


async def test_the_scope_check_is_one_statement_however_many_customers_carry_the_tag(
    api: Api, world: World
) -> None:
    """The check stops at the first link outside the scope; it does not load the links."""
    f = factory(api)
    counts = []
    for n, spread in enumerate((1, 40)):
        tag = await f.tag(world.acme, f"Spread {n}")
        for i in range(spread):
            customer = await f.customer(world.acme, f"Spread {n} {i:02d}")
            await f.assign(customer, world.admins[PARTNER])
            await f.tag_customer(world.acme, customer, tag)
        input = {"id": gid("Tag", tag), "name": f"Wide {n}"}
        with api.counter.counting() as statements:
            ok(await mutate(api, UPDATE_TAG, input, as_=PARTNER))
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


async def test_a_role_that_writes_tags_on_all_but_reads_few_customers_tags_only_those(
    api: Api, world: World
) -> None:
    # given: a custom role with tag write on all customers but customer read on its own only,
    # and no subscription read at all
    rules = [("customer", "read", "assigned"), ("tag", "write", "all")]
    body = await create_role(api, FULL, "TAGGER", rules, "Tags, reads its own customers.")
    assert body["data"]["createRole"]["userErrors"] == [], body
    email = "tagger@acme.example"
    tagger = from_global_id(await create_admin(api, FULL, email, "TAGGER"))[1]
    f = factory(api)
    own = await f.customer(world.acme, "Tagger Own")
    await f.assign(own, tagger)
    gold = await f.tag(world.acme, "Gold")
    await f.tag_customer(world.acme, world.unassigned, gold)
    tags = [gid("Tag", gold)]
    await token_for(api, email)  # issued now, so the refused calls below write nothing
    unseen = {"customerIds": [gid("Customer", world.unassigned)], "tagIds": tags}
    unseen_sub = {"subscriptionIds": [gid("Subscription", world.unassigned_sub)], "tagIds": tags}
    # when / then: a customer it cannot read does not exist for it, nor do subscriptions
    await assert_each_refused(
        api,
        [
            (ADD_TO_CUSTOMERS, unseen, "NOT_FOUND"),
            (REMOVE_FROM_CUSTOMERS, unseen, "NOT_FOUND"),
            (ADD_TO_SUBSCRIPTIONS, unseen_sub, "NOT_FOUND"),
            (REMOVE_FROM_SUBSCRIPTIONS, unseen_sub, "NOT_FOUND"),
        ],
        as_=email,
    )
    assert await tag_names(api, world.unassigned) == ["Gold"]
    # then: its own customer it tags
    mine = {"customerIds": [gid("Customer", own)], "tagIds": tags}
    payload = ok(await mutate(api, ADD_TO_CUSTOMERS, mine, as_=email))
    assert payload["changed"] == 1
    # then: with tag write on all customers, renaming a shared tag is its right
    ok(await mutate(api, UPDATE_TAG, {"id": tags[0], "name": "Gold 2"}, as_=email))
    assert await tag_names(api, world.unassigned) == ["Gold 2"]


async def test_a_delete_racing_an_attach_elsewhere_never_strips_another_customer(
    api: Api, world: World
) -> None:
    """The partner admin deletes a tag of its own customer while a full admin attaches it to a
    customer the partner admin cannot see: one of them goes first, never both, never a 500."""
    f = factory(api)
    for n in range(5):
        # given
        tag = await f.tag(world.acme, f"Race {n}")
        await f.tag_customer(world.acme, world.assigned, tag)
        elsewhere = await f.customer(world.acme, f"Elsewhere {n}")
        attach = {"customerIds": [gid("Customer", elsewhere)], "tagIds": [gid("Tag", tag)]}
        # when
        deleted, attached = await asyncio.gather(
            post_graphql(api, DELETE_TAG, {"input": {"id": gid("Tag", tag)}}, as_=PARTNER),
            post_graphql(api, ADD_TO_CUSTOMERS, {"input": attach}, as_=FULL),
        )
        # then: the delete went first (the attach finds no tag), or the attach did (the delete
        # is refused and the new link stays)
        assert not attached.get("errors"), attached  # the attach never fails on the key
        if not deleted.get("errors"):
            assert deleted["data"]["deleteTag"]["userErrors"] == []
            assert codes(attached["data"]["addTagsToCustomers"]) == ["NOT_FOUND"]
            assert await tag_names(api, elsewhere) == []
        else:
            assert error_codes(deleted) == ["FORBIDDEN"], deleted
            assert attached["data"]["addTagsToCustomers"]["userErrors"] == []
            assert await tag_names(api, elsewhere) == [f"Race {n}"]
