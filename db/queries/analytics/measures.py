"""Calendar and rounding rules shared by every license figure (DESIGN.md section 3): weeks
from Sunday 00:00 UTC, whole days and months between dates, size bands, and percentages rounded
half up to one decimal with exact integer arithmetic (in Python and, for sorting, in SQL).
"""

from __future__ import annotations

from calendar import monthrange
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, case, cast

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# Size bands by purchased licenses of the product (the last one is open-ended).
SIZE_BANDS: tuple[tuple[int, int | None], ...] = (
    (1, 10),
    (11, 50),
    (51, 250),
    (251, 1000),
    (1001, None),
)


# --- weeks --------------------------------------------------------------------------------------


def week_start_of(instant: datetime) -> datetime:
    """Sunday 00:00 UTC of the week holding ``instant``."""
    midnight = instant.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=(midnight.weekday() + 1) % 7)  # weekday(): Sunday is 6


def closed_weeks(now: datetime, count: int) -> list[datetime]:
    """Starts of the ``count`` latest weeks that closed at or before ``now``, oldest first; the
    last one is "last week"."""
    current = week_start_of(now)
    return [current - WEEK * k for k in range(count, 0, -1)]


# --- exact arithmetic shared by every figure -----------------------------------------------------


def one_decimal(numerator: int, denominator: int) -> float:
    """numerator / denominator rounded half up to one decimal (exact integer arithmetic); 0.0
    for an empty denominator."""
    if denominator <= 0:
        return 0.0
    return ((20 * numerator + denominator) // (2 * denominator)) / 10


def percent(numerator: int, denominator: int) -> float:
    """100 * numerator / denominator rounded half up to one decimal; 0.0 for an empty
    denominator."""
    return one_decimal(100 * numerator, denominator)


def tenths_sql(numerator: Any, denominator: Any) -> Any:
    """``percent`` in tenths, in SQL: integer arithmetic, identical on SQLite and PostgreSQL,
    in 64 bits (PostgreSQL's int4 overflowed at 1.07 million licences times 2000)."""
    wide = cast(numerator, BigInteger)
    return case(
        (denominator > 0, (wide * 2000 + denominator) // (cast(denominator, BigInteger) * 2)),
        else_=0,
    )


def whole_days(delta: timedelta) -> int:
    """Whole days in a non-negative span, rounded down."""
    return max(delta // DAY, 0)


def days_until(instant: datetime, now: datetime) -> int:
    """Days from now until ``instant``, rounded up (an end 1 hour away is 1 day away)."""
    return max(-((now - instant) // DAY), 0)


def add_months(value: datetime, months: int) -> datetime:
    """The same day and time ``months`` later; the day is clamped to the month's length."""
    years, month0 = divmod(value.month - 1 + months, 12)
    year, month = value.year + years, month0 + 1
    return value.replace(year=year, month=month, day=min(value.day, monthrange(year, month)[1]))


def whole_months(start: datetime, end: datetime) -> int:
    """The largest m >= 0 with add_months(start, m) <= end."""
    if end < start:
        return 0
    months = (end.year - start.year) * 12 + end.month - start.month
    if add_months(start, months) > end:
        months -= 1
    return max(months, 0)


def band_label(band: int) -> str:
    low, high = SIZE_BANDS[band - 1]
    return f"{low}-{high}" if high is not None else f"{low}+"


def size_band_sql(purchased: Any) -> Any:
    whens = [(purchased <= high, i) for i, (_, high) in enumerate(SIZE_BANDS, 1) if high]
    return case(*whens, else_=len(SIZE_BANDS))
