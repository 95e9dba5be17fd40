"""``Date`` and ``DateTime`` with a supported range, refused at parse when outside it.

Python's dates end at year 9999 and week arithmetic (a week's end, a trend of up to 52 weeks
back) steps outside whatever is given, so an input at year 1 or 9999 made ``OverflowError``
masked as an internal error. Every date and instant the API accepts lies in 1970-01-01 through
9998-12-31 (UTC for a ``DateTime`` with an offset): a year of margin on either side keeps any
arithmetic the resolvers do well inside both Python's and the databases' ranges. A value
outside, or not ISO 8601, is ``BAD_USER_INPUT`` before any resolver runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dateutil.parser
from strawberry.types.scalar import ScalarDefinition

from graph.errors import ApiError, ErrorCode

MIN_DATE = dt.date(1970, 1, 1)
MAX_DATE = dt.date(9998, 12, 31)
RANGE = f"{MIN_DATE.isoformat()} to {MAX_DATE.isoformat()}"


def _refuse(kind: str, value: object, why: str) -> ApiError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    return ApiError(f"{kind} cannot represent {shown}: {why}.", ErrorCode.BAD_USER_INPUT)


def parse_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise _refuse("Date", value, "expected a string YYYY-MM-DD")
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise _refuse("Date", value, "expected an ISO 8601 date YYYY-MM-DD") from None
    if not MIN_DATE <= parsed <= MAX_DATE:
        raise _refuse("Date", value, f"supported dates are {RANGE}")
    return parsed


def parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise _refuse("DateTime", value, "expected an ISO 8601 string")
    try:
        parsed = dateutil.parser.isoparse(value)
        day = parsed.astimezone(dt.UTC).date() if parsed.tzinfo is not None else parsed.date()
    except (ValueError, OverflowError):
        raise _refuse("DateTime", value, "expected an ISO 8601 date and time") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise _refuse("DateTime", value, f"supported instants are in {RANGE} (UTC)")
    return parsed


def _isoformat(value: dt.date) -> str:
    return value.isoformat()


# RFC 3339 is the public profile of ISO 8601 these follow: ``full-date`` and ``date-time``.
RFC_3339 = "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"

DATE = ScalarDefinition(
    name="Date",
    description=f"A calendar date, YYYY-MM-DD (RFC 3339 full-date, ISO 8601), {RANGE}.",
    specified_by_url=RFC_3339,
    serialize=_isoformat,
    parse_value=parse_date,
    parse_literal=None,
    origin=dt.date,
)
DATE_TIME = ScalarDefinition(
    name="DateTime",
    description=(
        "An instant: RFC 3339 date-time (ISO 8601), emitted in UTC with its offset "
        f"(2026-12-06T08:00:00+00:00); input without an offset is read as UTC. {RANGE} in UTC."
    ),
    specified_by_url=RFC_3339,
    serialize=_isoformat,
    parse_value=parse_datetime,
    parse_literal=None,
    origin=dt.datetime,
)
SCALAR_OVERRIDES: dict[object, Any] = {dt.date: DATE, dt.datetime: DATE_TIME}
