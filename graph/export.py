"""``GET /export/customers.csv``: the directory as CSV, streamed page by page.

Takes the directory's filter and search as query-string arguments (lists comma-separated or
repeated) and the caller's bearer token; authorization and filtering are the API's own, and the
body is produced one keyset page at a time, so memory stays flat whatever the partner's size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import strawberry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from db.enums import CustomerStatus, ManagedBy, Product, SubscriptionKind
from db.queries import customers as q
from db.scope import plan_scope
from graph.auth.permissions import Act, Obj, require
from graph.context import new_context
from graph.errors import ApiError, ErrorCode, bad_input
from graph.resolvers.customers import customer_query
from graph.types.customers import CustomerFilter

if TYPE_CHECKING:
    from graph.app import PartnerHub

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


def export_customers_csv(
    hub: PartnerHub,
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    from graph.app import authenticate

    async def endpoint(request: Request) -> Response:
        services = await hub.start()
        session = hub.sessions()  # closed when the stream ends (or on every early answer)
        outcome = await authenticate(request, session)
        if isinstance(outcome, Response):
            await session.close()
            return outcome
        await hub.sync_policies(outcome.policy_version)
        ctx = new_context(services, outcome, session, request.scope["state"].get("request_id", "-"))
        try:
            scope = require(ctx, Obj.CUSTOMER, Act.READ)
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

        async def rows() -> AsyncIterator[str]:
            planned = await plan_scope(session, scope)
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(COLUMNS)
            after = None
            try:
                while True:
                    page = await q.customers_page(
                        session,
                        scope=planned,
                        query=query,
                        order=order,
                        now=ctx.now,
                        first=PAGE,
                        after=after,
                    )
                    ids = [row.id for row in page.rows]
                    if ids:
                        statuses = await q.statuses_by_customer_ids(session, ids=ids, now=ctx.now)
                        products = await q.products_by_customer_ids(session, ids=ids)
                        tags = await q.tags_by_customer_ids(session, ids=ids)
                        totals = await q.in_force_totals_by_customer_ids(
                            session, ids=ids, now=ctx.now
                        )
                    for row in page.rows:
                        end, purchased, assigned = totals.get(row.id, (None, 0, 0))
                        writer.writerow(
                            [
                                row.name,
                                row.external_id,
                                row.managed_by,
                                ";".join(statuses.get(row.id, [])),
                                ";".join(products.get(row.id, [])),
                                ";".join(t.name for t in tags.get(row.id, [])),
                                end.isoformat() if end else "",
                                purchased,
                                assigned,
                                row.created_at.isoformat(),
                            ]
                        )
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
                    if not page.has_next:
                        break
                    after = page.keys[-1]
            finally:
                await session.close()

        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="customers.csv"'},
        )

    return endpoint
