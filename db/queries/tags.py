"""Tags of a partner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, literal, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Customer, CustomerTag, Subscription, SubscriptionTag, Tag
from db.queries.customers import DrivenRecords
from db.scope import Scope
from db.types import affected, inserted_id
from db.webhooks.events import WebhookEventName
from db.webhooks.outbox import subscribers
from db.webhooks.tag_events import emit_tag_changes, links_of_tag

TAGS_CHANGED = WebhookEventName.CUSTOMER_TAGS_CHANGED

T = Tag.__table__.c  # type: ignore[attr-defined]


# Every tag of the partner (the ``tags`` query, a filter bar's first read), on the request's
# driver connection, carrying a provisional request's token lookup (``DrivenRecords``): one
# statement where it took two, the lookup alone and then this one.
_TAGS_OF_PARTNER = DrivenRecords(
    select(*T)
    .where(T.partner_id == bindparam("partner_id"))
    .order_by(T.name_key, T.id)
    .limit(bindparam("limit"))
)


async def tags_of_partner(session: AsyncSession, *, partner_id: int, limit: int) -> list[Any]:
    """The partner's first ``limit`` tags by name (the limit in the statement: a partner with
    more tags than a response holds is never read whole)."""
    params = {"partner_id": partner_id, "limit": limit}
    rows: list[Any] = await _TAGS_OF_PARTNER.read(session, params)
    return rows


async def tags_by_ids(
    session: AsyncSession, *, partner_id: int, ids: Sequence[int], share: bool = False
) -> dict[int, Row[Any]]:
    """The partner's tags among ``ids``; with ``share`` (attaching them) share-locked on
    PostgreSQL until the transaction ends, so a rename or delete (``lock_tag``) waits for the
    attach, or the attach for it (and then finds the tag gone rather than failing on the key)."""
    stmt = select(*T).where(T.partner_id == partner_id, T.id.in_(list(ids)))
    if share:
        stmt = stmt.order_by(T.id).with_for_update(read=True)
    return {row.id: row for row in await session.execute(stmt)}


# --- writes ----------------------------------------------------------------------------------


async def lock_tag(session: AsyncSession, *, partner_id: int, tag_id: int) -> Row[Any] | None:
    """The tag, row-locked on PostgreSQL until the transaction ends (SQLite: one writer anyway).

    A concurrent attach share-locks its tags (``tags_by_ids(share=True)``), and its links' foreign
    key would key-share-lock the tag anyway: so no link appears between ``tag_reaches_outside``
    and the rename or delete. The attach waits (and then finds the tag gone or renamed), or it
    came first and its links are seen."""
    stmt = select(*T).where(T.partner_id == partner_id, T.id == tag_id).with_for_update()
    return (await session.execute(stmt)).first()


async def tag_reaches_outside(session: AsyncSession, *, tag_id: int, scope: Scope) -> bool:
    """Whether the tag is on a customer, or a subscription of a customer, outside ``scope``.

    One statement that stops at the first such link: the tag's links come from the indexes led
    by ``tag_id`` (``ix_customer_tag_name``, ``ix_subscription_tag_tag``), each tested against
    the scope's indexed assignment and provisioning lookups."""
    ct, st = CustomerTag.__table__.c, SubscriptionTag.__table__.c  # type: ignore[attr-defined]
    s = Subscription.__table__.c  # type: ignore[attr-defined]
    on_customer = select(literal(1)).where(
        ct.tag_id == tag_id, not_(scope.customers(ct.customer_id))
    )
    on_subscription = (
        select(literal(1))
        .select_from(SubscriptionTag)
        .join(Subscription, s.id == st.subscription_id)
        .where(st.tag_id == tag_id, not_(scope.customers(s.customer_id)))
    )
    stmt = select(or_(on_customer.exists(), on_subscription.exists()))
    return bool((await session.execute(stmt)).scalar_one())


async def tag_name_taken(
    session: AsyncSession, *, partner_id: int, name_key: str, except_id: int | None = None
) -> bool:
    conditions = [T.partner_id == partner_id, T.name_key == name_key]
    if except_id is not None:
        conditions.append(T.id != except_id)
    row = (await session.execute(select(T.id).where(*conditions).limit(1))).first()
    return row is not None


async def create_tag(
    session: AsyncSession, *, partner_id: int, name: str, description: str | None, now: datetime
) -> Row[Any]:
    result = await session.execute(
        insert(Tag).values(
            partner_id=partner_id,
            name=name,
            name_key=name.lower(),
            description=description,
            created_at=now,
        )
    )
    tag_id = inserted_id(result)
    return (await tags_by_ids(session, partner_id=partner_id, ids=[tag_id]))[tag_id]


async def update_tag(session: AsyncSession, *, tag_id: int, values: dict[str, Any]) -> None:
    if "name" in values:
        values = {**values, "name_key": values["name"].lower()}
    await session.execute(update(Tag).where(T.id == tag_id).values(**values))


async def delete_tag(session: AsyncSession, *, tag_id: int, now: datetime | None = None) -> None:
    """Delete a tag and detach it from every customer and subscription (customers losing it
    are told by webhook when ``now`` is given)."""
    ct = CustomerTag.__table__.c  # type: ignore[attr-defined]
    st = SubscriptionTag.__table__.c  # type: ignore[attr-defined]
    partner_id, links = await links_of_tag(session, tag_id) if now else (None, [])
    await session.execute(delete(CustomerTag).where(ct.tag_id == tag_id))
    await session.execute(delete(SubscriptionTag).where(st.tag_id == tag_id))
    await session.execute(delete(Tag).where(T.id == tag_id))
    if partner_id is not None and now is not None:
        await emit_tag_changes(session, partner_id, removed=links, now=now)


def _link(kind: str) -> tuple[Any, Any, Any]:
    """(table, its column table, the owner column) for 'customer' or 'subscription' links."""
    if kind == "customer":
        c = CustomerTag.__table__.c  # type: ignore[attr-defined]
        return CustomerTag, c, c.customer_id
    c = SubscriptionTag.__table__.c  # type: ignore[attr-defined]
    return SubscriptionTag, c, c.subscription_id


async def tag_counts_after(
    session: AsyncSession,
    *,
    scope: Scope,
    kind: str,
    owner_ids: Sequence[int],
    tag_ids: Sequence[int],
) -> dict[int, int]:
    """How many tags each owner would carry once ``tag_ids`` are attached."""
    _, c, owner = _link(kind)
    rows = await session.execute(
        select(owner, c.tag_id).where(c.partner_id == scope.partner_id, owner.in_(list(owner_ids)))
    )
    current: dict[int, set[int]] = {i: set() for i in owner_ids}
    for owner_id, tag_id in rows:
        current[owner_id].add(tag_id)
    return {i: len(tags | set(tag_ids)) for i, tags in current.items()}


async def attach_tags(
    session: AsyncSession,
    *,
    kind: str,
    partner_id: int,
    owner_ids: Sequence[int],
    tag_ids: Sequence[int],
    now: datetime,
) -> int:
    """Attach every tag to every owner; pairs already attached stay as they are."""
    table, c, owner = _link(kind)
    existing = {
        (o, t)
        for o, t in await session.execute(
            select(owner, c.tag_id).where(owner.in_(list(owner_ids)), c.tag_id.in_(list(tag_ids)))
        )
    }
    key = "customer_id" if kind == "customer" else "subscription_id"
    rows = [
        {key: o, "tag_id": t, "partner_id": partner_id, "created_at": now}
        for o in owner_ids
        for t in tag_ids
        if (o, t) not in existing
    ]
    if rows and kind == "customer":
        # A customer's link carries its name key, for walking a tag's customers in name order.
        cu = Customer.__table__.c  # type: ignore[attr-defined]
        found = await session.execute(select(cu.id, cu.name_key).where(cu.id.in_(list(owner_ids))))
        names: dict[Any, str] = {customer_id: name_key for customer_id, name_key in found}
        for row in rows:
            row["name_key"] = names[row[key]]
    if rows:
        await session.execute(insert(table), rows)
        if kind == "customer":
            pairs = [(int(row[key]), int(row["tag_id"])) for row in rows]  # type: ignore[call-overload]
            await emit_tag_changes(session, partner_id, added=pairs, now=now)
    return len(rows)


async def detach_tags(
    session: AsyncSession,
    *,
    scope: Scope,
    kind: str,
    owner_ids: Sequence[int],
    tag_ids: Sequence[int],
    now: datetime | None = None,
) -> int:
    table, c, owner = _link(kind)
    where = (
        c.partner_id == scope.partner_id,
        owner.in_(list(owner_ids)),
        c.tag_id.in_(list(tag_ids)),
    )
    endpoints: list[int] = []
    if kind == "customer" and now is not None:
        endpoints = await subscribers(session, scope.partner_id, TAGS_CHANGED)
    pairs = (
        [tuple(r) for r in await session.execute(select(owner, c.tag_id).where(*where))]
        if (endpoints)
        else []
    )
    result = await session.execute(delete(table).where(*where))
    if pairs and now is not None:
        await emit_tag_changes(
            session, scope.partner_id, removed=pairs, now=now, endpoint_ids=endpoints
        )
    return affected(result)
