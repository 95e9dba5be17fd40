"""Calling analytics and call-record ingestion (issue 7): filled in by its implementation."""

from __future__ import annotations

import strawberry


@strawberry.type
class CallingQueries:
    pass


@strawberry.type
class CallingMutations:
    pass
