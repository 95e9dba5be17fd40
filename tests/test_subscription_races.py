"""Two changes of one licence line at once (issue 19): one after the other, the second decides
on what the first committed, or it gets a coded error; never a lost update.

``changeLicenseQuantity`` locks the customer (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
has one writer) and reads the line again; its ``UPDATE`` is conditional on the purchased count
it read, so a writer that bypassed the lock is detected (``LICENSE_LINE_CHANGED``) rather than
overwritten. The PostgreSQL tests hold a second connection of their own across the mutation.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy import select, text

from db.models import AuditLog, Customer, LicenseLine
from tests.conftest import Api, postgresql_only
from tests.helpers import data_of, post_graphql
from tests.test_subscriptions import FULL, QUANTITY, World, codes, gid
from tests.test_subscriptions import w as w

ROUNDS = 5


async def change(api: Api, sub: str, purchased: int, as_: str = FULL) -> dict[str, Any]:
    body = await post_graphql(
        api,
        QUANTITY,
        {"input": {"subscriptionId": sub, "product": "MEETINGS", "purchased": purchased}},
        as_=as_,
    )
    return data_of(body)["changeLicenseQuantity"]  # type: ignore[no-any-return]


async def purchased_of(api: Api, sub_pk: int) -> int:
    async with api.engine.connect() as conn:
        found = await conn.execute(
            select(LicenseLine.purchased).where(LicenseLine.subscription_id == sub_pk)  # type: ignore[arg-type]
        )
        return int(found.scalar_one())


def steps(payload: dict[str, Any]) -> tuple[int, int]:
    """(before, after) of the order a change wrote, from its description ("10 -> 20")."""
    found = re.search(r"\((\d+) -> (\d+)\)", payload["order"]["description"])
    assert found, payload
    return int(found[1]), int(found[2])


async def test_two_changes_of_one_line_at_once_chain(w: World) -> None:
    for n in range(ROUNDS):
        # given: 10 purchased, 5 assigned
        pk = await w.subscription(lines=[("MEETINGS", 10, 5, 3)])
        sub = gid("Subscription", pk)

        # when: one admin sets 20, another 15, at the same time
        first, second = await asyncio.gather(change(w.api, sub, 20), change(w.api, sub, 15))

        # then: both applied, one on top of the other
        assert codes(first) == codes(second) == [], (first, second)
        chain = sorted([steps(first), steps(second)], key=lambda s: s[0] != 10)
        assert chain[0][0] == 10 and chain[1][0] == chain[0][1], chain
        assert await purchased_of(w.api, pk) == chain[1][1], f"round {n}: lost update"
        # the invoices bill exactly the licences added
        invoices = [p for p in (first, second) if p["order"]["action"] == "ADD_LICENSES"]
        assert len(invoices) == sum(1 for a, b in chain if b > a)


# A second connection holding locks is PostgreSQL's case (SQLite: one writer at a time).
@postgresql_only
async def test_a_change_waits_for_a_concurrent_one_and_decides_on_its_result(w: World) -> None:
    # given: a second connection that locked the customer and raised the line to 30
    customer = await w.customer()
    pk = await w.subscription(customer, lines=[("MEETINGS", 10, 5, 3)])
    async with w.api.engine.connect() as other:
        await other.execute(select(Customer.id).where(Customer.id == customer).with_for_update())  # type: ignore[arg-type]
        await other.execute(
            text("UPDATE license_line SET purchased = 30 WHERE subscription_id = :s"), {"s": pk}
        )

        # when: the API is asked for 20 meanwhile
        pending = asyncio.create_task(change(w.api, gid("Subscription", pk), 20))
        await asyncio.sleep(0.5)
        assert not pending.done(), "the change did not wait for the customer's lock"
        await other.commit()
        payload = await pending

    # then: it saw 30, so 20 is a decrease, not an increase invoiced from 10
    assert codes(payload) == []
    assert steps(payload) == (30, 20) and payload["order"]["action"] == "REMOVE_LICENSES"
    assert payload["subscription"]["invoices"] == []
    assert await purchased_of(w.api, pk) == 20


@postgresql_only
async def test_a_writer_that_bypassed_the_lock_is_detected_not_overwritten(w: World) -> None:
    # given: a second connection changing the line without the customer's lock
    pk = await w.subscription(lines=[("MEETINGS", 10, 5, 3)])
    async with w.api.engine.connect() as other:
        await other.execute(
            text("UPDATE license_line SET purchased = 30 WHERE subscription_id = :s"), {"s": pk}
        )

        # when: the API is asked for 20 (it read 10: the other change is not committed yet)
        pending = asyncio.create_task(change(w.api, gid("Subscription", pk), 20))
        await asyncio.sleep(0.5)
        await other.commit()
        payload = await pending

    # then: a coded error, the other writer's 30 kept, nothing else written
    assert codes(payload) == ["LICENSE_LINE_CHANGED"], payload
    assert await purchased_of(w.api, pk) == 30
    async with w.api.engine.connect() as conn:
        entries = (
            await conn.execute(
                select(AuditLog.object_type).where(AuditLog.operation == "changeLicenseQuantity")  # type: ignore[arg-type]
            )
        ).scalars()
        assert list(entries) == ["refusal"]
