"""Partner helpdesk cases and their comments.

Cases belong to the partner as a whole (``partner_id``), not to the admin who opened them; a case
may name one of the partner's customers. Lists page newest first by id (ids only grow, so the
order is stable and the keyset is the primary key). The batch functions return their rows keyed
by the parent id, for per-request loaders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, false, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import HelpdeskState
from db.models import HelpdeskCase, HelpdeskComment
from db.queries.counters import HELPDESK_CASE, next_number
from db.scope import Scope
from db.webhooks.events import WebhookEventName, global_id
from db.webhooks.outbox import emit

HC = HelpdeskCase.__table__.c  # type: ignore[attr-defined]
HM = HelpdeskComment.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class HelpdeskCaseQuery:
    """Which cases to list: every field optional; lists match any value, fields combine (AND).

    ``customer_id`` only matches customers inside ``customer_scope`` (the caller's customer
    scope): filtering by a customer the caller may not see finds nothing, so the filter cannot
    be used to probe other customers.
    """

    states: tuple[str, ...] | None = None
    products: tuple[str, ...] | None = None
    severities: tuple[str, ...] | None = None
    customer_id: int | None = None
    customer_scope: Scope | None = None


def _conditions(partner_id: int, query: HelpdeskCaseQuery) -> list[Any]:
    conditions: list[Any] = [HC.partner_id == partner_id]
    for column, values in (
        (HC.state, query.states),
        (HC.product, query.products),
        (HC.severity, query.severities),
    ):
        if values is not None:
            # An empty list has no value to match.
            conditions.append(column.in_(list(values)) if values else false())
    if query.customer_id is not None:
        conditions.append(HC.customer_id == query.customer_id)
        if query.customer_scope is None:
            conditions.append(false())
        else:
            conditions.append(query.customer_scope.customers(HC.customer_id))
    return conditions


async def helpdesk_cases_page(
    session: AsyncSession,
    *,
    partner_id: int,
    query: HelpdeskCaseQuery,
    first: int,
    before_id: int | None,
    backward: bool = False,
) -> tuple[list[Row[Any]], bool]:
    """Newest first (keyset on id), and whether more rows follow; ``backward``: the ``first``
    newer than ``before_id``, nearest first."""
    conditions = _conditions(partner_id, query)
    if before_id is not None:
        conditions.append(HC.id > before_id if backward else HC.id < before_id)
    order = HC.id.asc() if backward else HC.id.desc()
    rows = (
        await session.execute(select(*HC).where(and_(*conditions)).order_by(order).limit(first + 1))
    ).all()
    return list(rows[:first]), len(rows) > first


async def count_helpdesk_cases(
    session: AsyncSession, *, partner_id: int, query: HelpdeskCaseQuery
) -> int:
    stmt = (
        select(func.count()).select_from(HelpdeskCase).where(and_(*_conditions(partner_id, query)))
    )
    return int((await session.execute(stmt)).scalar_one())


async def helpdesk_cases_by_ids(
    session: AsyncSession, *, partner_id: int, ids: Sequence[int]
) -> dict[int, Row[Any]]:
    rows = await session.execute(
        select(*HC).where(HC.partner_id == partner_id, HC.id.in_(list(ids)))
    )
    return {row.id: row for row in rows}


async def helpdesk_case_for_update(
    session: AsyncSession, *, partner_id: int, case_id: int
) -> Row[Any] | None:
    """The case, locked until the transaction ends (PostgreSQL; SQLite serialises writers)."""
    stmt = select(*HC).where(HC.partner_id == partner_id, HC.id == case_id).with_for_update()
    return (await session.execute(stmt)).one_or_none()


async def create_helpdesk_case(
    session: AsyncSession,
    *,
    partner_id: int,
    admin_id: int,
    customer_id: int | None,
    product: str,
    subject: str,
    description: str,
    severity: str,
    now: datetime,
) -> Row[Any]:
    """A new open case, numbered per partner (the partner's counter stays locked until the
    transaction ends: ``db.queries.counters``)."""
    number = await next_number(session, partner_id=partner_id, name=HELPDESK_CASE)
    stmt = (
        insert(HelpdeskCase)
        .values(
            partner_id=partner_id,
            number=number,
            opened_by_admin_id=admin_id,
            customer_id=customer_id,
            product=product,
            subject=subject,
            description=description,
            severity=severity,
            state=HelpdeskState.OPEN.value,
            created_at=now,
        )
        .returning(*HC)
    )
    row = (await session.execute(stmt)).one()
    await emit_case(session, row, "OPENED", now)
    return row


async def add_helpdesk_comment(
    session: AsyncSession,
    *,
    case_id: int,
    admin_id: int,
    body: str,
    now: datetime,
    case: Row[Any] | None = None,
) -> Row[Any]:
    """A comment on a case; with ``case`` (its row) the change is told by webhook."""
    stmt = (
        insert(HelpdeskComment)
        .values(case_id=case_id, admin_id=admin_id, body=body, created_at=now)
        .returning(*HM)
    )
    row = (await session.execute(stmt)).one()
    if case is not None:
        await emit_case(session, case, "COMMENTED", now)
    return row


async def emit_case(session: AsyncSession, case: Row[Any], change: str, now: datetime) -> None:
    """HELPDESK_CASE_UPDATED for a case that was opened, commented on or closed."""
    await emit(
        session,
        case.partner_id,
        WebhookEventName.HELPDESK_CASE_UPDATED,
        {
            "caseId": global_id("HelpdeskCase", case.id),
            "caseNumber": f"CS-{case.number:06d}",
            "change": change,
            "state": case.state,
            "product": case.product,
            "severity": case.severity,
            "subject": case.subject,
            "customerId": global_id("Customer", case.customer_id) if case.customer_id else None,
        },
        customer_id=case.customer_id,
        now=now,
    )


async def close_helpdesk_case(
    session: AsyncSession, *, partner_id: int, case_id: int, now: datetime
) -> Row[Any] | None:
    """Close an open case; None when it is not open (closed meanwhile, or missing)."""
    stmt = (
        update(HelpdeskCase)
        .where(
            HC.partner_id == partner_id,
            HC.id == case_id,
            HC.state == HelpdeskState.OPEN.value,
        )
        .values(state=HelpdeskState.CLOSED.value, closed_at=now)
        .returning(*HC)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is not None:
        await emit_case(session, row, "CLOSED", now)
    return row


async def comments_by_case_ids(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, list[Row[Any]]]:
    """Comments of each case, oldest first."""
    rows = await session.execute(
        select(*HM).where(HM.case_id.in_(list(ids))).order_by(HM.case_id, HM.created_at, HM.id)
    )
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        out[row.case_id].append(row)
    return out
