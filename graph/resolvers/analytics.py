"""License analytics (issue 6): filled in by its implementation."""

from __future__ import annotations

import strawberry


@strawberry.type
class AnalyticsQueries:
    pass
