"""Validating call records: the CSV / JSON-lines contract of issue 7.

Every record becomes a tuple of typed values (``ParsedRecord``) or a ``RowError`` naming the
field at fault. The parser is the hot path of a million-row load, so it works on plain strings
with dictionary look-ups for the vocabularies and raises only for bad rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from db.calls_models import CallDirection
from db.enums import CallFeature, EndpointType

CSV_COLUMNS: tuple[str, ...] = (
    "call_id",
    "customer_id",
    "user_id",
    "started_at",
    "duration_seconds",
    "direction",
    "endpoint_type",
    "packet_loss_percent",
    "jitter_ms",
    "latency_ms",
    "features",
    "queue_id",
    "wait_seconds",
    "answered",
    "abandoned",
)
QUEUE_COLUMNS = ("queue_id", "wait_seconds", "answered", "abandoned")
MAX_ID_LENGTH = 64
MAX_DURATION_SECONDS = 86_400  # a call leg longer than a day is a broken record
MAX_WAIT_SECONDS = 86_400
MAX_METRIC = 1_000_000.0  # jitter and latency in ms; anything above is a broken probe


class IngestError(ValueError):
    """The input as a whole cannot be read (no header, wrong columns, not UTF-8, ...)."""


class RowError(Exception):
    """Why one record was rejected; ``field`` is a contract column name, when one is at fault."""

    def __init__(self, field: str | None, code: str, message: str) -> None:
        super().__init__(field, code, message)
        self.field = field
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


# call_id, customer key, user_id, started_at (UTC), week_start, duration_seconds, direction,
# endpoint_type, packet_loss_percent, jitter_ms, latency_ms, features, queue_id, wait_seconds,
# answered, abandoned
ParsedRecord = tuple[
    str,
    str,
    str,
    datetime,
    datetime,
    int,
    str,
    str,
    float,
    float,
    float,
    str,
    str | None,
    int | None,
    bool | None,
    bool | None,
]


def _variants(values: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        for variant in (value, value.lower(), value.title()):
            out[variant] = value
    return out


_DIRECTIONS = _variants(d.value for d in CallDirection)
_ENDPOINTS = _variants(e.value for e in EndpointType)
_FEATURE_ORDER = {f.value: i for i, f in enumerate(CallFeature)}
_BOOLEANS = {"true": True, "false": False, "True": True, "False": False}
_BOOLEANS.update({"TRUE": True, "FALSE": False})
_WEEK_STARTS: dict[date, datetime] = {}
_FEATURE_CACHE: dict[str, str | tuple[str, str]] = {}


def week_start_of(moment: datetime) -> datetime:
    """Sunday 00:00 UTC of the week holding ``moment`` (weeks run Sunday to Sunday, UTC)."""
    day = moment.astimezone(UTC).date()
    start = _WEEK_STARTS.get(day)
    if start is None:
        sunday = day - timedelta(days=(day.weekday() + 1) % 7)  # weekday(): Monday 0, Sunday 6
        start = datetime(sunday.year, sunday.month, sunday.day, tzinfo=UTC)
        if len(_WEEK_STARTS) < 100_000:
            _WEEK_STARTS[day] = start
    return start


def canonical_features(raw: str) -> str:
    """Known features, de-duplicated, in ``CallFeature`` order, joined by ``;``."""
    cached = _FEATURE_CACHE.get(raw)
    if cached is None:
        cached = _features(raw)
        if len(_FEATURE_CACHE) < 10_000:
            _FEATURE_CACHE[raw] = cached
    if isinstance(cached, tuple):
        raise RowError("features", *cached)
    return cached


def _features(raw: str) -> str | tuple[str, str]:
    """The canonical list, or (code, message) when a name is unknown (cached, so no exception
    object is kept: a re-raised one would keep growing its traceback)."""
    names = {part.strip().upper() for part in raw.split(";")} - {""}
    unknown = sorted(n for n in names if n not in _FEATURE_ORDER)
    if unknown:
        return (
            "UNKNOWN_FEATURE",
            f"unknown feature {unknown[0][:40]!r} (known: {', '.join(_FEATURE_ORDER)})",
        )
    return ";".join(sorted(names, key=_FEATURE_ORDER.__getitem__))


def _text(value: str, field: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_ID_LENGTH:
        raise RowError(field, f"INVALID_{field.upper()}", f"required, 1-{MAX_ID_LENGTH} characters")
    return value


def _int(value: str, field: str, maximum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise RowError(
            field, f"INVALID_{field.upper()}", f"not a whole number: {value[:40]!r}"
        ) from None
    if not 0 <= number <= maximum:
        raise RowError(field, f"INVALID_{field.upper()}", f"must be 0-{maximum}, got {number}")
    return number


def _float(value: str, field: str, maximum: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise RowError(field, "INVALID_QUALITY_METRIC", f"not a number: {value[:40]!r}") from None
    if not 0.0 <= number <= maximum:  # also false for NaN
        raise RowError(field, "INVALID_QUALITY_METRIC", f"must be 0-{maximum:g}, got {value!r}")
    return number


def _bool(value: str, field: str) -> bool:
    result = _BOOLEANS.get(value.strip())
    if result is None:
        raise RowError(field, "INVALID_BOOLEAN", f"must be true or false, got {value[:20]!r}")
    return result


def parse_started_at(value: str, now: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError(
            "started_at", "INVALID_STARTED_AT", f"not an ISO 8601 date-time: {value[:40]!r}"
        ) from None
    if moment.tzinfo is None:
        raise RowError(
            "started_at", "INVALID_STARTED_AT", f"needs a UTC offset (e.g. Z): {value[:40]!r}"
        )
    moment = moment.astimezone(UTC)
    if moment > now:
        raise RowError("started_at", "STARTED_AT_IN_FUTURE", f"is after now ({now.isoformat()})")
    return moment


_UTC_WEEK_STARTS: dict[str, datetime] = {}
_FAST_FEATURES: dict[str, str] = {}
_fromisoformat = datetime.fromisoformat


def parse_values(values: Sequence[str], now: datetime) -> ParsedRecord:
    """Validate one record given as strings in ``CSV_COLUMNS`` order.

    The fast path handles well-formed records with straight look-ups; anything it does not
    accept outright (including every bad record) goes through ``_parse_checked``, which either
    returns the same result or raises the ``RowError`` that explains the problem.
    """
    try:
        (
            call_id,
            customer,
            user_id,
            started,
            duration,
            direction,
            endpoint,
            loss,
            jitter,
            latency,
            features,
            queue_id,
            wait,
            answered,
            abandoned,
        ) = values
        if not (0 < len(call_id) <= 64 and 0 < len(user_id) <= 64 and 0 < len(customer) <= 64):
            raise ValueError
        if call_id[0] <= " " or call_id[-1] <= " " or customer[0] <= " " or customer[-1] <= " ":
            raise ValueError
        if user_id[0] <= " " or user_id[-1] <= " ":
            raise ValueError
        started_at = _fromisoformat(started)
        if started_at.tzinfo is UTC:
            week = _UTC_WEEK_STARTS.get(started[:10])
            if week is None:
                week = week_start_of(started_at)
                _UTC_WEEK_STARTS[started[:10]] = week
        elif started_at.tzinfo is None:
            raise ValueError
        else:
            started_at = started_at.astimezone(UTC)
            week = week_start_of(started_at)
        seconds = int(duration)
        packet_loss = float(loss)
        jitter_ms = float(jitter)
        latency_ms = float(latency)
        if (
            started_at > now
            or not 0 <= seconds <= MAX_DURATION_SECONDS
            or not 0.0 <= packet_loss <= 100.0
            or not 0.0 <= jitter_ms <= MAX_METRIC
            or not 0.0 <= latency_ms <= MAX_METRIC
        ):
            raise ValueError
        feature_list = _FAST_FEATURES[features] if features else ""
        if queue_id:
            if len(queue_id) > MAX_ID_LENGTH or queue_id[0] <= " " or queue_id[-1] <= " ":
                raise ValueError
            wait_seconds: int | None = int(wait)
            was_answered: bool | None = _BOOLEANS[answered]
            was_abandoned: bool | None = _BOOLEANS[abandoned]
            if not 0 <= wait_seconds <= MAX_WAIT_SECONDS or (was_answered and was_abandoned):  # type: ignore[operator]
                raise ValueError
            queue: str | None = queue_id
        elif wait or answered or abandoned:
            raise ValueError
        else:
            queue = wait_seconds = was_answered = was_abandoned = None
        return (
            call_id,
            customer,
            user_id,
            started_at,
            week,
            seconds,
            _DIRECTIONS[direction],
            _ENDPOINTS[endpoint],
            packet_loss,
            jitter_ms,
            latency_ms,
            feature_list,
            queue,
            wait_seconds,
            was_answered,
            was_abandoned,
        )
    except (ValueError, KeyError, TypeError, IndexError):
        record = _parse_checked(values, now)
        if record[11] and len(_FAST_FEATURES) < 10_000:
            _FAST_FEATURES[values[10]] = record[11]
        return record


def _parse_checked(values: Sequence[str], now: datetime) -> ParsedRecord:
    """Validate one record field by field; raise the ``RowError`` of the first bad field."""
    if len(values) != 15:
        raise RowError(None, "MALFORMED_ROW", f"expected 15 fields, got {len(values)}")
    (
        call_id,
        customer,
        user_id,
        started,
        duration,
        direction,
        endpoint,
        loss,
        jitter,
        latency,
        features,
        queue_id,
        wait,
        answered,
        abandoned,
    ) = values
    call_id = _text(call_id, "call_id")
    customer = customer.strip()
    if not customer or len(customer) > 200:
        raise RowError("customer_id", "UNKNOWN_CUSTOMER", "required")
    user_id = _text(user_id, "user_id")
    started_at = parse_started_at(started, now)
    duration_seconds = _int(duration, "duration_seconds", MAX_DURATION_SECONDS)
    direction_value = _DIRECTIONS.get(direction.strip())
    if direction_value is None:
        raise RowError(
            "direction",
            "INVALID_DIRECTION",
            f"unknown direction {direction[:40]!r} (known: {', '.join(CallDirection)})",
        )
    endpoint_value = _ENDPOINTS.get(endpoint.strip())
    if endpoint_value is None:
        raise RowError(
            "endpoint_type",
            "UNKNOWN_ENDPOINT_TYPE",
            f"unknown endpoint type {endpoint[:40]!r} (known: {', '.join(EndpointType)})",
        )
    packet_loss = _float(loss, "packet_loss_percent", 100.0)
    jitter_ms = _float(jitter, "jitter_ms", MAX_METRIC)
    latency_ms = _float(latency, "latency_ms", MAX_METRIC)
    feature_list = canonical_features(features) if features else ""
    queue = queue_id.strip()
    if queue:
        if len(queue) > MAX_ID_LENGTH:
            raise RowError("queue_id", "INVALID_QUEUE_ID", f"1-{MAX_ID_LENGTH} characters")
        for name, value in (("wait_seconds", wait), ("answered", answered)):
            if not value.strip():
                raise RowError(name, "MISSING_QUEUE_FIELD", "required for a queue call")
        if not abandoned.strip():
            raise RowError("abandoned", "MISSING_QUEUE_FIELD", "required for a queue call")
        wait_seconds: int | None = _int(wait, "wait_seconds", MAX_WAIT_SECONDS)
        was_answered: bool | None = _bool(answered, "answered")
        was_abandoned: bool | None = _bool(abandoned, "abandoned")
        if was_answered and was_abandoned:
            raise RowError(
                "abandoned", "INVALID_QUEUE_OUTCOME", "a call cannot be answered and abandoned"
            )
    else:
        if wait.strip() or answered.strip() or abandoned.strip():
            field = "wait_seconds" if wait.strip() else "answered" if answered.strip() else None
            raise RowError(
                field or "abandoned",
                "UNEXPECTED_QUEUE_FIELD",
                "queue columns must be empty when queue_id is empty",
            )
        wait_seconds = was_answered = was_abandoned = None
    return (
        call_id,
        customer,
        user_id,
        started_at,
        week_start_of(started_at),
        duration_seconds,
        direction_value,
        endpoint_value,
        packet_loss,
        jitter_ms,
        latency_ms,
        feature_list,
        queue or None,
        wait_seconds,
        was_answered,
        was_abandoned,
    )
