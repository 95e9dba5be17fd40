"""Two admins at once (issue 5): exactly one wins, the other gets a user error, no duplicates.

The ASGI app serves concurrent requests over one httpx client; ``asyncio.gather`` sends both
before either answers. Each race runs several rounds on fresh objects, on both backends, and
must never end in a 500 or a "database is locked" error (``post_graphql`` wants HTTP 200 and
``data_of`` no GraphQL error).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from db.models import CustomerTag, Subscription, Tag
from tests.conftest import NOW, Api
from tests.helpers import data_of, post_graphql
from tests.test_tags import (
    ADD_TO_CUSTOMERS,
    CREATE_TAG,
    FULL,
    FULL2,
    World,
    audit_count,
    audit_since,
    build_world,
    codes,
    count_rows,
    gid,
    link_tags,
    seed_tags,
)
from tests.test_trials import CONVERT_TRIAL, EXTEND_TRIAL, START_TRIAL, for_customer

ROUNDS = 5
DAY = timedelta(days=1)


async def race(api: Api, document: str, *inputs: tuple[str, dict[str, Any]]) -> list[Any]:
    """Send the calls at the same time; their payloads, in order."""
    bodies = await asyncio.gather(
        *(post_graphql(api, document, {"input": input}, as_=email) for email, input in inputs)
    )
    return [next(iter(data_of(body).values())) for body in bodies]


def one_winner(payloads: list[dict[str, Any]], loser_code: str) -> dict[str, Any]:
    """Exactly one call succeeded and the other got ``loser_code``; the winner's payload."""
    outcomes = sorted(tuple(codes(p)) for p in payloads)
    assert outcomes == [(), (loser_code,)], payloads
    (winner,) = [p for p in payloads if not p["userErrors"]]
    return winner


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def test_two_create_tag_with_one_name(api: Api, world: World) -> None:
    for n in range(ROUNDS):
        # given
        count = await audit_count(api)
        # when
        payloads = await race(
            api, CREATE_TAG, (FULL, {"name": f"Race {n}"}), (FULL2, {"name": f"RACE {n} "})
        )
        # then
        winner = one_winner(payloads, "TAG_NAME_TAKEN")
        assert winner["tag"]["name"].lower() == f"race {n}"
        assert await count_rows(api, Tag, Tag.name_key == f"race {n}") == 1  # type: ignore[arg-type]
        assert [e["operation"] for e in await audit_since(api, count)] == ["createTag"]
    assert await count_rows(api, Tag) == ROUNDS


async def test_two_start_trial_for_one_customer_and_product(api: Api, world: World) -> None:
    for n in range(ROUNDS):
        # given: a customer without trials
        customer = await world.factory.customer(world.acme, f"Trial race {n}")
        count = await audit_count(api)
        # when
        payloads = await race(
            api,
            START_TRIAL,
            (FULL, for_customer(customer, ("MEETINGS", 10))),
            (FULL2, for_customer(customer, ("CALLING", 5), ("MEETINGS", 20), days=60)),
        )
        # then
        one_winner(payloads, "TRIAL_ALREADY_ACTIVE")
        trials = (Subscription.customer_id == customer, Subscription.kind == "TRIAL")
        assert await count_rows(api, Subscription, *trials) == 1
        assert [e["operation"] for e in await audit_since(api, count)] == ["startTrial"]


async def test_two_add_tags_onto_a_customer_one_tag_short_of_the_limit(
    api: Api, world: World
) -> None:
    for n in range(ROUNDS):
        # given: a customer with 19 tags, and two more tags
        customer = await world.factory.customer(world.acme, f"Tag race {n}")
        nineteen = await seed_tags(api, world.acme, [f"R{n}-{i:02d}" for i in range(19)])
        await link_tags(api, world.acme, nineteen, customer=customer)
        first, second = await seed_tags(api, world.acme, [f"R{n}-first", f"R{n}-second"])
        ids = [gid("Customer", customer)]
        count = await audit_count(api)
        # when
        payloads = await race(
            api,
            ADD_TO_CUSTOMERS,
            (FULL, {"customerIds": ids, "tagIds": [gid("Tag", first)]}),
            (FULL2, {"customerIds": ids, "tagIds": [gid("Tag", second)]}),
        )
        # then
        one_winner(payloads, "TOO_MANY_TAGS")
        assert await count_rows(api, CustomerTag, CustomerTag.customer_id == customer) == 20  # type: ignore[arg-type]
        assert [e["operation"] for e in await audit_since(api, count)] == ["addTagsToCustomers"]


async def test_two_extend_or_convert_trial_of_one_trial(api: Api, world: World) -> None:
    """Both calls read the trial before either writes: the second must see the first's change."""
    for n in range(ROUNDS):
        # given: a 60-day trial; only one 30-day step fits in 90 days from now
        customer = await world.factory.customer(world.acme, f"Extend race {n}")
        trial = await trial_ending(world, customer, NOW + 60 * DAY)
        # when
        payloads = await race(
            api, EXTEND_TRIAL, (FULL, {"trialId": trial}), (FULL2, {"trialId": trial})
        )
        # then
        one_winner(payloads, "TRIAL_EXTENSION_TOO_LONG")
        assert await end_of(api, trial) == NOW + 90 * DAY
        # when: both convert it
        convert = {"trialId": trial, "autoRenew": True, "termMonths": 12}
        payloads = await race(api, CONVERT_TRIAL, (FULL, convert), (FULL2, convert))
        # then: one paid subscription, not two
        one_winner(payloads, "TRIAL_NOT_ACTIVE")
        paid = (Subscription.customer_id == customer, Subscription.kind == "PAID")
        assert await count_rows(api, Subscription, *paid) == 1


async def trial_ending(world: World, customer: int, end: datetime) -> str:
    sub = await world.factory.subscription(
        customer,
        kind="TRIAL",
        start=NOW - DAY,
        end=end,
        auto_renew=False,
        lines=[("MEETINGS", 10, 0, 0)],
    )
    return gid("Subscription", sub)


async def end_of(api: Api, trial: str) -> datetime:
    query = "query Trial($id: ID!) { node(id: $id) { ... on Subscription { endDate } } }"
    body = await post_graphql(api, query, {"id": trial}, as_=FULL)
    return datetime.fromisoformat(data_of(body)["node"]["endDate"])
