"""``GET /export/customers.csv``: the directory as CSV, streamed page by page.

Takes the directory's filter and search as query-string arguments (lists comma-separated or
repeated) and the caller's bearer token; authorization and filtering are the API's own, and the
body is produced one keyset page at a time, so memory stays flat whatever the partner's size.

Authorization per column: each column mirrors a field of the GraphQL ``Customer`` (``MIRRORS``)
and is filled only for the rows where that field is readable, by the very decision the field
takes (``graph.prefetch.allowed_under`` over the field's ``Relation``); elsewhere the cell is
empty. The header never changes (the column list is a contract).

Spreadsheet safety: every text cell is quoted, and one that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return gets a leading single quote (OWASP, "CSV Injection"), so a
name or tag planted by one admin does not run as a formula in another's spreadsheet. The
licence totals are numbers the export computes (never negative), written unquoted as numbers.

Metering: a page of rows costs what GraphQL charges for as many customers with the fields the
row mirrors (``ROW_COST`` each), spent from the token's cost budget before the page is read.
When the first page is refused the answer is 429 with ``Retry-After`` and nothing is streamed;
when the budget runs out later the stream pauses until the token's bucket holds the next page
(holding no database connection meanwhile), so a long export runs at the token's rate and is
never cut short. A page never costs more than the whole budget (pages shrink to fit), so a
single export always finishes; the client may disconnect at any time.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import strawberry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from db.enums import CustomerStatus, ManagedBy, Product, SubscriptionKind
from db.queries import customer_children as kids
from db.queries import customer_pages as q
from db.scope import Scope, plan_scope
from db.settings import Settings
from graph.auth.permissions import Act, Obj, require
from graph.context import Context, new_context
from graph.cost import wait_tenths
from graph.cost_model import MAX_LICENSE_LINES_PER_SUBSCRIPTION, MAX_SUBSCRIPTIONS_PER_CUSTOMER
from graph.errors import ApiError, ErrorCode, bad_input
from graph.input_limits import check_values
from graph.prefetch import allowed_under
from graph.resolvers.customers import customer_query
from graph.types.customers import CUSTOMER_RELATIONS, CustomerFilter

if TYPE_CHECKING:
    from graph.hub import PartnerHub

COLUMNS = [
    "name",
    "external_id",
    "managed_by",
    "statuses",
    "products",
    "tags",
    "nearest_end_date",
    "licenses_purchased",
    "licenses_assigned",
    "created_at",
]
PAGE = 500

# The field of the GraphQL Customer whose authorization each column follows: None for the
# customer's own scalar fields (customer read), else the relationship field's name in
# CUSTOMER_RELATIONS. nearest_end_date and the licence totals are figures over the customer's
# in-force ``subscriptions`` and their license lines, so they follow that field (subscription
# read, ``assigned`` sub-scope included); statuses and products are Customer fields in GraphQL.
MIRRORS: dict[str, str | None] = {
    "name": None,
    "external_id": None,
    "managed_by": None,
    "statuses": "statuses",
    "products": "products",
    "tags": "tags",
    "nearest_end_date": "subscriptions",
    "licenses_purchased": "subscriptions",
    "licenses_assigned": "subscriptions",
    "created_at": None,
}

# What GraphQL's cost model (graph.cost_model) charges per customer of a ``customers`` page
# selecting the fields a row mirrors: nodes { name externalId managedBy statuses products
# createdAt tags { name } subscriptions { state startDate endDate licenses { purchased assigned
# } } } is the customer 1 + its tags (max_tags_per_customer, 20 by default) + its subscriptions
# 10 * (1 + their license lines 10) = 131; scalars cost nothing.
ROW_COST = (
    1
    + Settings.model_fields["max_tags_per_customer"].default
    + MAX_SUBSCRIPTIONS_PER_CUSTOMER * (1 + MAX_LICENSE_LINES_PER_SUBSCRIPTION)
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
pause = asyncio.sleep  # how a metered stream waits for its budget (replaced in tests)


def neutral(text: str) -> str:
    """``text`` as a spreadsheet shows it as text: a leading single quote when it would start a
    formula (OWASP's recommendation against CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def page_rows(settings: Settings) -> int:
    """Rows per page: ``PAGE``, fewer when a page would cost more than a minute's budget."""
    return max(1, min(PAGE, settings.cost_per_minute // ROW_COST))


def page_cost(settings: Settings, rows: int) -> int:
    return min(rows * ROW_COST, settings.cost_per_minute)


def rate_limited(settings: Settings, wait: float) -> JSONResponse:
    seconds = max(1, math.ceil(wait))
    error = {
        "message": f"Rate limit: this token may spend {settings.cost_per_minute} cost points a "
        f"minute and an export page costs {ROW_COST} per row; retry in {wait_tenths(wait):.1f} s.",
        "extensions": {
            "code": ErrorCode.RATE_LIMITED.value,
            "retryAfterSeconds": wait_tenths(wait),
        },
    }
    return JSONResponse({"errors": [error]}, status_code=429, headers={"Retry-After": str(seconds)})


def _list(request: Request, name: str, enum: type[Any]) -> list[Any] | None:
    raw = [v for item in request.query_params.getlist(name) for v in item.split(",") if v]
    if not raw and name not in request.query_params:
        return None
    try:
        return [enum(v.strip()) for v in raw]
    except ValueError:
        raise bad_input(
            f"Unknown value in {name}: expected {', '.join(e.value for e in enum)}.",
            argument=name,
        ) from None


def _split(request: Request, name: str) -> list[str]:
    return [v for item in request.query_params.getlist(name) for v in item.split(",") if v]


def _one(request: Request, name: str, enum: type[Any]) -> Any:
    values = _list(request, name, enum)
    if not values:
        return None
    if len(values) > 1:
        raise bad_input(f"{name} takes one value.", argument=name)
    return values[0]


def _filter(request: Request) -> CustomerFilter:
    tag_ids = [v for item in request.query_params.getlist("tagIds") for v in item.split(",") if v]
    return CustomerFilter(
        managed_by=_one(request, "managedBy", ManagedBy),
        products=_list(request, "products", Product),
        statuses=_list(request, "statuses", CustomerStatus),
        subscription_type=_one(request, "subscriptionType", SubscriptionKind),
        tag_ids=[strawberry.ID(t) for t in tag_ids] if "tagIds" in request.query_params else None,
    )


async def _readable(ctx: Context, ids: list[int]) -> dict[str, set[int] | None]:
    """Per mirrored relationship, the rows where the caller may read it (None: all of them)."""
    names = {name for name in MIRRORS.values() if name is not None}
    return {name: await allowed_under(ctx, CUSTOMER_RELATIONS[name], ids) for name in names}


def _only(allowed: set[int] | None, ids: list[int]) -> list[int]:
    return ids if allowed is None else [pk for pk in ids if pk in allowed]


def _shown(readable: dict[str, set[int] | None], column: str, pk: int) -> bool:
    field = MIRRORS[column]
    if field is None:
        return True
    allowed = readable[field]
    return allowed is None or pk in allowed


async def _cells(ctx: Context, session: Any, scope: Scope, rows: list[Any]) -> list[list[Any]]:
    """The page's CSV rows; a cell is empty where the field its column mirrors is not readable
    (and its figures are not even read for those rows)."""
    ids = [row.id for row in rows]
    if not ids:
        return []
    readable = await _readable(ctx, ids)
    # The rows come from ``scope`` (customer read); the columns' own rules are in ``readable``.
    statuses = await kids.statuses_by_customer_ids(
        session, scope=scope, ids=_only(readable["statuses"], ids), now=ctx.now
    )
    products = await kids.products_by_customer_ids(
        session, scope=scope, ids=_only(readable["products"], ids)
    )
    tags = await kids.tags_by_customer_ids(session, scope=scope, ids=_only(readable["tags"], ids))
    totals = await kids.in_force_totals_by_customer_ids(
        session, scope=scope, ids=_only(readable["subscriptions"], ids), now=ctx.now
    )
    out = []
    for row in rows:
        end, purchased, assigned = totals.get(row.id, (None, 0, 0))
        values = {
            "name": neutral(row.name),
            "external_id": neutral(row.external_id),
            "managed_by": neutral(row.managed_by),
            "statuses": neutral(";".join(statuses.get(row.id, []))),
            "products": neutral(";".join(products.get(row.id, []))),
            "tags": neutral(";".join(neutral(t.name) for t in tags.get(row.id, []))),
            "nearest_end_date": end.isoformat() if end else "",
            "licenses_purchased": purchased,
            "licenses_assigned": assigned,
            "created_at": row.created_at.isoformat(),
        }
        out.append([values[c] if _shown(readable, c, row.id) else "" for c in COLUMNS])
    return out


async def _pay(ctx: Context, session: Any, cost: int) -> None:
    """Spend ``cost`` from the token's budget, waiting (with no connection held) until it can."""
    while True:
        allowed, _, wait = await ctx.services.limiter.spend(ctx.principal.token_id, cost)
        if allowed:
            return
        await session.rollback()  # ends the read transaction: the connection goes back
        await pause(wait)


async def _stream(
    ctx: Context, session: Any, scope: Scope, query: Any, order: q.CustomerOrder, size: int
) -> AsyncIterator[str]:
    """The CSV, a page at a time; the first page is paid for already."""
    try:
        planned = await plan_scope(session, scope)
        buffer = io.StringIO()
        csv.writer(buffer).writerow(COLUMNS)  # the header's bytes as they always were
        writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC)
        after = None
        while True:
            page = await q.customers_page(
                session,
                scope=planned,
                query=query,
                order=order,
                now=ctx.now,
                first=size,
                after=after,
            )
            writer.writerows(await _cells(ctx, session, scope, page.rows))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not page.has_next:
                break
            after = page.keys[-1]
            await _pay(ctx, session, page_cost(ctx.settings, size))
    finally:
        await session.close()


def export_customers_csv(
    hub: PartnerHub,
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    from graph.hub import authenticate

    async def endpoint(request: Request) -> Response:
        services = await hub.start()
        session = hub.sessions()  # closed when the stream ends (or on every early answer)
        outcome = await authenticate(request, session)
        if isinstance(outcome, Response):
            await session.close()
            return outcome
        await hub.sync_policies(outcome.policy_version, session)
        ctx = new_context(services, outcome, session, request.scope["state"].get("request_id", "-"))
        try:
            scope = require(ctx, Obj.CUSTOMER, Act.READ)
            # NUL bytes, overlong strings and lists: BAD_USER_INPUT as in GraphQL
            params = {k: request.query_params.getlist(k) for k in request.query_params}
            values = {k: v[0] if len(v) == 1 else v for k, v in params.items()}
            check_values(ctx.settings, {**values, "tagIds": _split(request, "tagIds")})
            query = customer_query(ctx, _filter(request), request.query_params.get("search"))
            order = q.CustomerOrder(request.query_params.get("orderBy", "NAME_ASC"))
        except ApiError as error:
            await session.close()
            status = 403 if error.code is ErrorCode.FORBIDDEN else 400
            return JSONResponse({"errors": [error.formatted]}, status_code=status)
        except ValueError:
            await session.close()
            return JSONResponse(
                {
                    "errors": [
                        {"message": "Unknown orderBy.", "extensions": {"code": "BAD_USER_INPUT"}}
                    ]
                },
                status_code=400,
            )
        size = page_rows(ctx.settings)
        cost = page_cost(ctx.settings, size)
        allowed, _, wait = await services.limiter.spend(outcome.token_id, cost)
        if not allowed:
            await session.close()
            return rate_limited(ctx.settings, wait)
        return StreamingResponse(
            _stream(ctx, session, scope, query, order, size),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="customers.csv"'},
        )

    return endpoint
