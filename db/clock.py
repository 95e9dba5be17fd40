"""The injectable clock: every 'now' of the service comes from here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    """Returns the current time in UTC; pinned when ``fixed`` is given."""

    def __init__(self, fixed: datetime | None = None) -> None:
        self._fixed = fixed.astimezone(UTC) if fixed is not None else None
        self._source: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def pinned(self) -> bool:
        return self._fixed is not None

    def now(self) -> datetime:
        return self._fixed if self._fixed is not None else self._source()
