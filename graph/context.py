"""The typed per-request context: who is calling, the clock, the database and the loaders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info as _Info

from db.clock import Clock
from db.queries.admins import Principal
from db.settings import Settings

if TYPE_CHECKING:
    from graph.auth.permissions import Authorizer
    from graph.cost import CostLimiter
    from graph.loaders import Loaders


@dataclass
class Services:
    """Process-wide objects shared by every request (built once by ``create_app``)."""

    settings: Settings
    clock: Clock
    secret: bytes
    authorizer: Authorizer
    limiter: CostLimiter


@dataclass
class Context:
    services: Services
    principal: Principal
    session: AsyncSession
    request_id: str
    now: datetime
    request: Any = None
    response: Any = None
    cost: dict[str, int] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        """The request's session, one user at a time (sibling resolvers run concurrently)."""
        async with self._lock:
            yield self.session

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @cached_property
    def loaders(self) -> Loaders:
        from graph.loaders import Loaders

        return Loaders(self)


Info = _Info[Context, None]


def new_context(
    services: Services, principal: Principal, session: AsyncSession, request_id: str
) -> Context:
    # One 'now' per request: every status and figure in a response agrees on the same instant.
    return Context(
        services=services,
        principal=principal,
        session=session,
        request_id=request_id,
        now=services.clock.now(),
    )


def clock_from(settings: Settings) -> Clock:
    return Clock(settings.now)
