"""Column types shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Result
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text, which sorts and compares
    correctly as long as every value goes through this type.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """Per column of a result: nothing on asyncpg, which decodes ``timestamptz`` as aware UTC
        datetimes already; on SQLite the stored text straight to an aware datetime. Both skip
        the generic decorator's two calls a value (a directory page reads ~500 of them)."""
        if dialect.name == "postgresql" and dialect.driver == "asyncpg":
            return None
        if dialect.name == "sqlite":
            parse = datetime.fromisoformat
            general = self.process_result_value

            def from_text(value: Any) -> datetime | None:
                if type(value) is str:
                    # Parsing the offset costs ~40 ns; datetime.replace(tzinfo=...) ~600.
                    try:
                        return parse(value + "+00:00")
                    except ValueError:  # text that carries its own offset
                        pass
                return general(value, dialect)

            return from_text
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        tzinfo = value.tzinfo
        if tzinfo is UTC:  # what asyncpg returns
            return value
        if tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Open ends of validity spans: comparable on both backends, far from any real date.
BEGINNING_OF_TIME = datetime(1900, 1, 1, tzinfo=UTC)
END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (``execute`` is typed as returning a plain Result)."""
    return int(cast(CursorResult[Any], result).rowcount)


def inserted_id(result: Result[Any]) -> int:
    """The primary key of the row a single-row INSERT created."""
    key = cast(CursorResult[Any], result).inserted_primary_key
    assert key is not None
    return int(key[0])
