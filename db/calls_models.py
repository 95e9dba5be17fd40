"""The calling detail aggregate beside ``call_weekly_aggregate`` (DESIGN.md section 3, "Calling").

``call_weekly_detail`` holds, per customer and week (Sunday 00:00 UTC), what the calling charts
need beyond ``call_weekly_aggregate``: calls and talk time per day of the week, calls and poor
calls per endpoint type, calls per advanced feature, and users by the number of calls they made.
One wide row per customer and week (rather than a row per day, endpoint or feature) because the
vocabularies are fixed by the product (``db.enums``) and every figure then is one ``SUM`` over
the rows of the customers a caller may see; a new endpoint type or feature is a migration that
adds its columns.

Ingestion (``db.ingest``) recomputes the row from ``call_record`` for every customer and week it
touched, so re-ingesting a file rewrites the same numbers. Analytics read only the aggregates.

This module does not import ``db.models`` (the foreign key names its target), so ``db.models``
may import it at its end to register the table with the same metadata.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer, Table
from sqlmodel import SQLModel

from db.enums import CallFeature, EndpointType
from db.types import UTCDateTime

__all__ = [
    "CALL_WEEKLY_DETAIL",
    "DAYS",
    "DETAIL_COLUMNS",
    "VOLUME_COLUMNS",
    "CallDirection",
    "day_calls",
    "day_seconds",
    "endpoint_calls",
    "endpoint_poor_calls",
    "feature_calls",
]


class CallDirection(StrEnum):
    """Direction of a call leg as seen from the customer's organization."""

    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"
    INTERNAL = "INTERNAL"


DAYS = range(7)  # day of the week: 0 is Sunday, the first day of a week


def day_calls(day: int) -> str:
    return f"day_{day}_calls"


def day_seconds(day: int) -> str:
    return f"day_{day}_seconds"


def endpoint_calls(endpoint: str) -> str:
    return f"{endpoint.lower()}_calls"


def endpoint_poor_calls(endpoint: str) -> str:
    return f"{endpoint.lower()}_poor_calls"


def feature_calls(feature: str) -> str:
    return f"{feature.lower()}_calls"


VOLUME_COLUMNS = ("users_1_to_10", "users_11_to_50", "users_51_plus")
DETAIL_COLUMNS: tuple[str, ...] = (
    *(day_calls(d) for d in DAYS),
    *(day_seconds(d) for d in DAYS),
    *(name for e in EndpointType for name in (endpoint_calls(e), endpoint_poor_calls(e))),
    *(feature_calls(f) for f in CallFeature),
    *VOLUME_COLUMNS,
)

CALL_WEEKLY_DETAIL = Table(
    "call_weekly_detail",
    SQLModel.metadata,
    Column(
        "customer_id",
        Integer,
        ForeignKey("customer.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("week_start", UTCDateTime(), primary_key=True),
    # No foreign key: the customer's (ON DELETE CASCADE) already ties the row to its partner.
    Column("partner_id", Integer, nullable=False),
    *(Column(name, Integer, nullable=False, default=0) for name in DETAIL_COLUMNS),
    Index("ix_call_weekly_detail_partner_week", "partner_id", "week_start"),
)
