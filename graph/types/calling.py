"""Calling analytics and call records: enums, figures, customer tables and the ingest mutation.

Definitions (DESIGN.md section 3, "Calling"): weeks run from Sunday 00:00 UTC to the next
Sunday; minutes are total call duration / 60; a call is poor when packet loss > 5 %, jitter >
150 ms or round-trip latency > 400 ms (strictly greater); figures with a decimal are rounded half
up to one decimal, and a percentage or average with nothing to divide by is 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

import strawberry

from db import enums
from db.calls_models import CallDirection as _CallDirection
from db.queries import calls as q
from graph.mutations import UserError
from graph.pagination import PageInfo
from graph.types.customers import Customer

EndpointType = strawberry.enum(
    enums.EndpointType,
    description="Kind of device or client a call leg ran on: DESK_PHONE, DESKTOP_APP, "
    "MOBILE_APP, BROWSER, OTHER.",
)
CallFeature = strawberry.enum(
    enums.CallFeature, description="An advanced calling feature a call used."
)
CallDirection = strawberry.enum(
    _CallDirection,
    description="Direction of a call leg seen from the customer organization: INBOUND, "
    "OUTBOUND, or INTERNAL (between two of its users).",
)
# strawberry.enum registers the db enums themselves (and returns them), so annotations below
# name the db classes, which type checkers understand.
CallingCustomerUsageOrder = strawberry.enum(
    q.CustomerUsageOrder,
    name="CallingCustomerUsageOrder",
    description="Order of the customers usage table (ties by customer, in the same direction). "
    "CALLS_CHANGE: calls minus the previous week's calls.",
)
CallingCustomerQualityOrder = strawberry.enum(
    q.CustomerQualityOrder,
    name="CallingCustomerQualityOrder",
    description="Order of the customers quality table (ties by customer, in the same direction).",
)
CallQueueCustomerOrder = strawberry.enum(
    q.QueueCustomerOrder,
    name="CallQueueCustomerOrder",
    description="Order of the call queue customers table (ties by customer, same direction).",
)


# --- figures ---------------------------------------------------------------------------------


@strawberry.type(description="Calls of one UTC day.")
class CallingDailyUsage:
    date: date = strawberry.field(description="The UTC day.")
    calls: int = strawberry.field(description="Calls that started that day.")
    minutes: float = strawberry.field(description="Their total duration in minutes.")


@strawberry.type(description="Call volume of the week.")
class CallingUsage:
    calls: int = strawberry.field(description="Calls that started in the week.")
    minutes: float = strawberry.field(description="Their total duration / 60, one decimal.")
    active_users: int = strawberry.field(
        description="Users who made at least one call (counted per customer, summed)."
    )
    daily: list[CallingDailyUsage] = strawberry.field(
        description="The seven days of the week, Sunday first (days without calls give 0)."
    )

    @classmethod
    def of(cls, usage: q.Usage) -> CallingUsage:
        return cls(
            calls=usage.calls,
            minutes=q.minutes(usage.duration_seconds),
            active_users=usage.active_users,
            daily=[
                CallingDailyUsage(date=d.day, calls=d.calls, minutes=q.minutes(d.duration_seconds))
                for d in usage.daily
            ],
        )


@strawberry.type(description="Users of one week by the number of calls each made.")
class CallingUserVolumeWeek:
    week_start: date = strawberry.field(description="Sunday the week starts on (UTC).")
    users_1_to_10: int = strawberry.field(description="Users who made 1-10 calls.")
    users_11_to_50: int = strawberry.field(description="Users who made 11-50 calls.")
    users_51_plus: int = strawberry.field(description="Users who made 51 calls or more.")
    licensed_users_without_calls: int = strawberry.field(
        description="Per customer: licenses assigned on CALLING lines of its in-force "
        "subscriptions (at the server's now) minus its users who made calls that week, floored "
        "at 0; summed over customers."
    )

    @classmethod
    def of(cls, week: q.VolumeWeek) -> CallingUserVolumeWeek:
        return cls(
            week_start=week.week.date(),
            users_1_to_10=week.users_1_to_10,
            users_11_to_50=week.users_11_to_50,
            users_51_plus=week.users_51_plus,
            licensed_users_without_calls=week.licensed_without_calls,
        )


@strawberry.type(description="Call quality of a week: poor calls among all calls.")
class CallQuality:
    total_calls: int = strawberry.field(description="Calls of the week.")
    poor_calls: int = strawberry.field(
        description="Calls with packet loss > 5 %, jitter > 150 ms or latency > 400 ms."
    )
    poor_percent: float = strawberry.field(description="100 * poorCalls / totalCalls.")


@strawberry.type(description="Call quality of one week of a trend.")
class CallQualityWeek(CallQuality):
    week_start: date = strawberry.field(description="Sunday the week starts on (UTC).")


@strawberry.type(description="Call quality on one kind of endpoint.")
class CallEndpointQuality(CallQuality):
    endpoint_type: enums.EndpointType = strawberry.field(description="The kind of endpoint.")


@strawberry.type(description="How many calls used an advanced feature.")
class CallFeatureUsage:
    feature: enums.CallFeature = strawberry.field(description="The feature.")
    calls: int = strawberry.field(description="Calls of the week that used it.")


def queue_figures(
    queue_calls: int, answered: int, abandoned: int, answered_wait: int, abandoned_wait: int
) -> dict[str, Any]:
    return {
        "queue_calls": queue_calls,
        "answered_calls": answered,
        "abandoned_calls": abandoned,
        "average_time_to_answer_seconds": q.ratio_tenths(answered_wait, answered),
        "average_wait_before_abandon_seconds": q.ratio_tenths(abandoned_wait, abandoned),
        "abandoned_rate_percent": q.percent(abandoned, queue_calls),
    }


@strawberry.type(description="Call queue figures of the week (calls that went through a queue).")
class CallQueueKpis:
    queue_calls: int = strawberry.field(description="Calls that went through a call queue.")
    answered_calls: int = strawberry.field(description="Queue calls an agent answered.")
    abandoned_calls: int = strawberry.field(description="Queue calls the caller abandoned.")
    average_time_to_answer_seconds: float = strawberry.field(
        description="Mean wait of answered queue calls, seconds."
    )
    average_wait_before_abandon_seconds: float = strawberry.field(
        description="Mean wait of abandoned queue calls, seconds."
    )
    abandoned_rate_percent: float = strawberry.field(
        description="100 * abandoned queue calls / all queue calls."
    )


# --- customer tables -------------------------------------------------------------------------


@strawberry.type(description="A customer's calling usage in the week.")
class CallingCustomerUsage:
    customer: Customer = strawberry.field(description="The customer.")
    calls: int = strawberry.field(description="Calls in the week.")
    minutes: float = strawberry.field(description="Their total duration in minutes.")
    active_users: int = strawberry.field(description="Users who made at least one call.")
    licensed_users: int = strawberry.field(
        description="Licenses assigned on CALLING lines of in-force subscriptions (now)."
    )
    calls_change: int = strawberry.field(description="Calls minus the previous week's.")
    minutes_change: float = strawberry.field(description="Minutes minus the previous week's.")
    active_users_change: int = strawberry.field(
        description="Active users minus the previous week's."
    )

    @classmethod
    def from_row(cls, row: Any) -> CallingCustomerUsage:
        return cls(
            customer=Customer.from_row(row),
            calls=row.calls,
            minutes=q.minutes(row.duration_seconds),
            active_users=row.active_users,
            licensed_users=int(row.licensed_users),
            calls_change=row.calls - row.previous_calls,
            minutes_change=round(
                q.minutes(row.duration_seconds) - q.minutes(row.previous_duration_seconds), 1
            ),
            active_users_change=row.active_users - row.previous_active_users,
        )


@strawberry.type(description="A customer's call quality in the week.")
class CallingCustomerQuality(CallQuality):
    customer: Customer = strawberry.field(description="The customer.")

    @classmethod
    def from_row(cls, row: Any) -> CallingCustomerQuality:
        return cls(
            customer=Customer.from_row(row),
            total_calls=row.total_calls,
            poor_calls=row.poor_calls,
            poor_percent=q.percent(row.poor_calls, row.total_calls),
        )


@strawberry.type(description="A customer's call queue figures in the week.")
class CallQueueCustomer(CallQueueKpis):
    customer: Customer = strawberry.field(description="The customer.")

    @classmethod
    def from_row(cls, row: Any) -> CallQueueCustomer:
        return cls(
            customer=Customer.from_row(row),
            **queue_figures(
                row.queue_calls,
                row.answered_calls,
                row.abandoned_calls,
                row.answered_wait_seconds,
                row.abandoned_wait_seconds,
            ),
        )


Count = Callable[[], Awaitable[int]]


@strawberry.type(description="A row of the customers usage table, with its cursor.")
class CallingCustomerUsageEdge:
    node: CallingCustomerUsage = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of the customers usage table.")
class CallingCustomerUsageConnection:
    edges: list[CallingCustomerUsageEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[CallingCustomerUsage] = strawberry.field(description="Rows of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Count]

    @strawberry.field(description="Rows over all pages.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.type(description="A row of the customers quality table, with its cursor.")
class CallingCustomerQualityEdge:
    node: CallingCustomerQuality = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of the customers quality table.")
class CallingCustomerQualityConnection:
    edges: list[CallingCustomerQualityEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[CallingCustomerQuality] = strawberry.field(description="Rows of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Count]

    @strawberry.field(description="Rows over all pages.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.type(description="A row of the call queue customers table, with its cursor.")
class CallQueueCustomerEdge:
    node: CallQueueCustomer = strawberry.field(description="The row.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this row.")


@strawberry.type(description="A keyset page of the call queue customers table.")
class CallQueueCustomerConnection:
    edges: list[CallQueueCustomerEdge] = strawberry.field(description="Rows with cursors.")
    nodes: list[CallQueueCustomer] = strawberry.field(description="Rows of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Count]

    @strawberry.field(description="Rows over all pages.")
    async def total_count(self) -> int:
        return await self.count()


# --- ingestion -------------------------------------------------------------------------------


@strawberry.input(description="One call record (one call leg), as in the CSV contract.")
class CallRecordInput:
    call_id: str = strawberry.field(
        description="Id of the call leg, unique within the partner (1-64 characters); a stored "
        "id is never rewritten."
    )
    customer_id: strawberry.ID = strawberry.field(
        description="The customer's global ID, or its external id (within the caller's partner)."
    )
    user_id: str = strawberry.field(description="The customer's user who made the call.")
    started_at: datetime = strawberry.field(
        description="Start, ISO 8601 with a UTC offset; not after now."
    )
    duration_seconds: int = strawberry.field(description="Duration, 0-86400 seconds.")
    direction: _CallDirection = strawberry.field(description="Direction of the call leg.")
    endpoint_type: enums.EndpointType = strawberry.field(description="Endpoint the leg ran on.")
    packet_loss_percent: float = strawberry.field(description="Packet loss, 0-100 %.")
    jitter_ms: float = strawberry.field(description="Jitter in milliseconds (>= 0).")
    latency_ms: float = strawberry.field(description="Round-trip latency, ms (>= 0).")
    features: list[enums.CallFeature] = strawberry.field(
        default_factory=list, description="Advanced features the call used."
    )
    queue_id: str | None = strawberry.field(
        default=None, description="The call queue it went through; null for non-queue calls."
    )
    wait_seconds: int | None = strawberry.field(
        default=None, description="Queue calls only: seconds waited in the queue."
    )
    answered: bool | None = strawberry.field(
        default=None, description="Queue calls only: an agent answered."
    )
    abandoned: bool | None = strawberry.field(
        default=None, description="Queue calls only: the caller hung up while waiting."
    )


@strawberry.input(description="Call records to load (at most 1,000 per call).")
class IngestCallRecordsInput:
    records: list[CallRecordInput] = strawberry.field(description="The records.")


@strawberry.type(description="A record that was not loaded, and why.")
class RejectedCallRecord:
    index: int = strawberry.field(description="0-based position in `input.records`.")
    call_id: str | None = strawberry.field(description="Its call id, when readable.")
    field: str | None = strawberry.field(
        description="The record field at fault (camelCase), when one is."
    )
    code: str = strawberry.field(
        description="UNKNOWN_CUSTOMER, INVALID_STARTED_AT, STARTED_AT_IN_FUTURE, "
        "INVALID_DURATION_SECONDS, INVALID_QUALITY_METRIC, MISSING_QUEUE_FIELD, "
        "UNEXPECTED_QUEUE_FIELD, INVALID_QUEUE_OUTCOME, ..."
    )
    message: str = strawberry.field(description="What is wrong, for people.")


@strawberry.type(
    description="Result of ingestCallRecords. All or nothing: when any record is invalid, "
    "nothing is written, `rejected` and `userErrors` list every invalid record, and `inserted` "
    "and `duplicates` are 0."
)
class IngestCallRecordsPayload:
    inserted: int = strawberry.field(description="Records stored by this call.")
    duplicates: int = strawberry.field(
        description="Valid records whose call id the partner had already stored (or repeated): "
        "unchanged."
    )
    rejected: list[RejectedCallRecord] = strawberry.field(description="Invalid records.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")
