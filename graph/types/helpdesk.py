"""Partner helpdesk: cases a partner opens with its own support, their comments and inputs.

The case's relationship fields (comments, customer, who opened it, comment authors) resolve
through per-request loaders kept on the context (``helpdesk_loaders``), one ``WHERE key IN
(...)`` statement each, so a page of cases costs the same number of statements at any size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

import strawberry
from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import HelpdeskSeverity, HelpdeskState, Product
from db.queries import admins as admin_q
from db.queries import customers as customer_q
from db.queries import helpdesk as helpdesk_q
from graph.auth.permissions import Act, Obj, scope_or_none
from graph.context import Context, Info
from graph.cost_model import MAX_COMMENTS_PER_CASE
from graph.ids import to_global_id
from graph.loaders import Loader
from graph.mutations import UserError
from graph.pagination import PageInfo
from graph.types.admins import Admin
from graph.types.common import Node
from graph.types.customers import Customer

__all__ = [
    "AddHelpdeskCaseCommentInput",
    "AddHelpdeskCaseCommentPayload",
    "CloseHelpdeskCaseInput",
    "CloseHelpdeskCasePayload",
    "HelpdeskCase",
    "HelpdeskCaseConnection",
    "HelpdeskCaseEdge",
    "HelpdeskCaseFilter",
    "HelpdeskComment",
    "HelpdeskLoaders",
    "HelpdeskSeverity",
    "HelpdeskState",
    "OpenHelpdeskCaseInput",
    "OpenHelpdeskCasePayload",
    "helpdesk_loaders",
]

# The GraphQL enums are the domain enums themselves (``strawberry.enum`` registers the class and
# returns it), so annotations name real classes; ``Product`` is registered by graph.types.common.
strawberry.enum(
    HelpdeskSeverity,
    description="How badly the partner is affected: LOW (question, no impact), MEDIUM (degraded, "
    "workaround exists), HIGH (a service is impaired for users), CRITICAL (a service is down).",
)
strawberry.enum(
    HelpdeskState,
    description="OPEN: being worked on; CLOSED: resolved (no more comments).",
)

# --- per-request loaders ------------------------------------------------------------------------

V = TypeVar("V")


def _loader(
    ctx: Context,
    fetch: Callable[[AsyncSession, Sequence[int]], Awaitable[Mapping[int, V]]],
    default: Callable[[], Any],
) -> DataLoader[int, V]:
    async def batch(keys: list[int]) -> list[V]:
        async with ctx.db() as session:
            found = await fetch(session, keys)
        return [found.get(key, default()) for key in keys]

    return Loader(batch)  # its futures are shielded (see graph.loaders)


class HelpdeskLoaders:
    """The helpdesk loaders of one request, each created on first use.

    The customer and admin loaders apply the caller's scope in their one statement: a customer
    the caller may not see, or any admin when the caller may not read admins, loads as None.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @cached_property
    def comments_by_case_id(self) -> DataLoader[int, list[Any]]:
        return _loader(self._ctx, lambda s, ids: helpdesk_q.comments_by_case_ids(s, ids=ids), list)

    @cached_property
    def admin_by_id(self) -> DataLoader[int, Any]:
        scope = scope_or_none(self._ctx, Obj.ADMIN, Act.READ)

        async def fetch(session: AsyncSession, ids: Sequence[int]) -> Mapping[int, Any]:
            if scope is None:
                return {}
            return await admin_q.admin_rows_by_ids(session, partner_id=scope.partner_id, ids=ids)

        return _loader(self._ctx, fetch, lambda: None)

    @cached_property
    def customer_by_id(self) -> DataLoader[int, Any]:
        scope = scope_or_none(self._ctx, Obj.CUSTOMER, Act.READ)

        async def fetch(session: AsyncSession, ids: Sequence[int]) -> Mapping[int, Any]:
            if scope is None:
                return {}
            return await customer_q.customers_by_ids(session, scope=scope, ids=ids)

        return _loader(self._ctx, fetch, lambda: None)


def helpdesk_loaders(ctx: Context) -> HelpdeskLoaders:
    """The request's helpdesk loaders (kept in the context's cache: they live one request and
    are dropped after every write)."""
    loaders: HelpdeskLoaders | None = ctx.cache.get("helpdesk_loaders")
    if loaders is None:
        loaders = ctx.cache["helpdesk_loaders"] = HelpdeskLoaders(ctx)
    return loaders


# --- objects ------------------------------------------------------------------------------------


@strawberry.type(description="A message on a helpdesk case, by the partner or its support.")
class HelpdeskComment:
    body: str = strawberry.field(description="The text (1-10,000 characters).")
    created_at: datetime = strawberry.field(description="When it was written.")
    author_pk: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: Any) -> HelpdeskComment:
        return cls(body=row.body, created_at=row.created_at, author_pk=row.admin_id)

    @strawberry.field(
        description="The administrator who wrote it; null when deleted or when the caller may "
        "not read admins."
    )
    async def author(self, info: Info) -> Admin | None:
        if self.author_pk is None:
            return None
        row = await helpdesk_loaders(info.context).admin_by_id.load(self.author_pk)
        return Admin.from_row(row) if row is not None else None


@strawberry.type(
    description="A request for help a partner opens with the Partner Helpdesk (for example "
    "about Webex Calling or Contact Center). Cases belong to the partner: every admin allowed "
    "to read the helpdesk sees all of them."
)
class HelpdeskCase(Node):
    case_number: str = strawberry.field(
        description="Reference to quote to support, e.g. CS-000042; numbered per partner."
    )
    product: Product = strawberry.field(description="The product the case is about.")
    subject: str = strawberry.field(description="One-line summary (1-200 characters).")
    description: str = strawberry.field(description="The problem in detail (1-10,000 characters).")
    severity: HelpdeskSeverity = strawberry.field(description="How badly the partner is affected.")
    state: HelpdeskState = strawberry.field(description="OPEN or CLOSED.")
    created_at: datetime = strawberry.field(description="When the case was opened.")
    closed_at: datetime | None = strawberry.field(description="When it was closed, if it was.")
    pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int | None]
    opened_by_pk: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: Any) -> HelpdeskCase:
        return cls(
            id=strawberry.ID(to_global_id("HelpdeskCase", row.id)),
            case_number=f"CS-{row.number:06d}",
            product=row.product,
            subject=row.subject,
            description=row.description,
            severity=row.severity,
            state=row.state,
            created_at=row.created_at,
            closed_at=row.closed_at,
            pk=row.id,
            customer_pk=row.customer_id,
            opened_by_pk=row.opened_by_admin_id,
        )

    @strawberry.field(
        description="The customer the case is about, if any; null when there is none or the "
        "caller may not see that customer."
    )
    async def customer(self, info: Info) -> Customer | None:
        if self.customer_pk is None:
            return None
        row = await helpdesk_loaders(info.context).customer_by_id.load(self.customer_pk)
        return Customer.from_row(row) if row is not None else None

    @strawberry.field(
        description="The administrator who opened the case; null when deleted or when the "
        "caller may not read admins."
    )
    async def opened_by(self, info: Info) -> Admin | None:
        if self.opened_by_pk is None:
            return None
        row = await helpdesk_loaders(info.context).admin_by_id.load(self.opened_by_pk)
        return Admin.from_row(row) if row is not None else None

    @strawberry.field(
        description="The conversation, oldest first (the latest 200 comments); a resolution "
        "given when closing is the last comment."
    )
    async def comments(self, info: Info) -> list[HelpdeskComment]:
        rows = await helpdesk_loaders(info.context).comments_by_case_id.load(self.pk)
        # The latest MAX_COMMENTS_PER_CASE, the bound the query cost prices the list by.
        return [HelpdeskComment.from_row(r) for r in rows[-MAX_COMMENTS_PER_CASE:]]


@strawberry.type(description="A helpdesk case in a list, with its cursor.")
class HelpdeskCaseEdge:
    node: HelpdeskCase = strawberry.field(description="The case.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this case.")


@strawberry.type(description="A keyset page of helpdesk cases, newest first.")
class HelpdeskCaseConnection:
    edges: list[HelpdeskCaseEdge] = strawberry.field(description="Cases with cursors.")
    nodes: list[HelpdeskCase] = strawberry.field(description="Cases of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Cases matching the filter, over all pages.")
    async def total_count(self) -> int:
        return await self.count()


# --- inputs and payloads ------------------------------------------------------------------------


@strawberry.input(
    description="Helpdesk case filters: inside one list any value matches; fields combine with AND."
)
class HelpdeskCaseFilter:
    states: list[HelpdeskState] | None = strawberry.field(
        default=None, description="In any of these states."
    )
    products: list[Product] | None = strawberry.field(
        default=None, description="About any of these products."
    )
    severities: list[HelpdeskSeverity] | None = strawberry.field(
        default=None, description="Of any of these severities."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="About this customer (matches nothing when the caller may not see it).",
    )


@strawberry.input(description="A new helpdesk case.")
class OpenHelpdeskCaseInput:
    product: Product = strawberry.field(description="The product the case is about.")
    subject: str = strawberry.field(description="One-line summary: 1-200 characters, trimmed.")
    description: str = strawberry.field(
        description="The problem in detail: 1-10,000 characters, trimmed."
    )
    severity: HelpdeskSeverity = strawberry.field(description="How badly the partner is affected.")
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="The customer affected, if any (one the caller may see)."
    )


@strawberry.type(description="Result of openHelpdeskCase.")
class OpenHelpdeskCasePayload:
    case: HelpdeskCase | None = strawberry.field(description="The new case; null on userErrors.")
    user_errors: list[UserError] = strawberry.field(
        description="Why nothing was written: SUBJECT_REQUIRED, SUBJECT_TOO_LONG, "
        "DESCRIPTION_REQUIRED, DESCRIPTION_TOO_LONG, INVALID_ID, NOT_FOUND (customerId)."
    )


@strawberry.input(description="A comment to add to an open helpdesk case.")
class AddHelpdeskCaseCommentInput:
    case_id: strawberry.ID = strawberry.field(description="The case.")
    body: str = strawberry.field(description="The comment: 1-10,000 characters, trimmed.")


@strawberry.type(description="Result of addHelpdeskCaseComment.")
class AddHelpdeskCaseCommentPayload:
    case: HelpdeskCase | None = strawberry.field(description="The case; null on userErrors.")
    comment: HelpdeskComment | None = strawberry.field(
        description="The new comment; null on userErrors."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why nothing was written: COMMENT_REQUIRED, COMMENT_TOO_LONG, CASE_CLOSED, "
        "INVALID_ID, NOT_FOUND."
    )


@strawberry.input(description="The helpdesk case to close.")
class CloseHelpdeskCaseInput:
    case_id: strawberry.ID = strawberry.field(description="The case.")
    resolution: str | None = strawberry.field(
        default=None,
        description="How it was resolved (up to 10,000 characters); kept as the case's last "
        "comment. Blank means none.",
    )


@strawberry.type(description="Result of closeHelpdeskCase.")
class CloseHelpdeskCasePayload:
    case: HelpdeskCase | None = strawberry.field(description="The closed case; null on userErrors.")
    user_errors: list[UserError] = strawberry.field(
        description="Why nothing was written: CASE_CLOSED, RESOLUTION_TOO_LONG, INVALID_ID, "
        "NOT_FOUND."
    )
