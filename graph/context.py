"""The typed per-request context: who is calling, the clock, the database and the loaders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info as _Info

from db.clock import Clock
from db.queries.admins import Principal, principal_of_token
from db.queries.analytics.medians import MediansMemo
from db.settings import Settings

if TYPE_CHECKING:
    from db.token_check import TokenCheck
    from graph.auth.permissions import Authorizer
    from graph.cost_store import Budget
    from graph.loaders import Loaders

T = TypeVar("T")


@dataclass
class Services:
    """Process-wide objects shared by every request (built once by ``create_app``)."""

    settings: Settings
    clock: Clock
    secret: bytes
    authorizer: Authorizer
    limiter: Budget
    # The deployment's low-allocation medians, kept between requests (None: recomputed each).
    medians: MediansMemo | None = None
    # The shapes of rendered relationships admitted so far (``graph.render.admitted``).
    rendered_shapes: dict[Hashable, None] = field(default_factory=dict)


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
    principal_gone: bool = False
    # A mutation of the request committed: a later failure must not say that nothing was
    # written (``graph.extensions.unexpected_error``'s DATABASE_BUSY).
    committed: bool = False
    # The response must not be cached (it reads what moves no data version: the audit log).
    no_store: bool = False
    # A provisional request's pending token lookup (db.token_check), settled before answering.
    token_check: TokenCheck | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Values a domain keeps for the request (its loaders, say): dropped by ``forget``.
    cache: dict[str, Any] = field(default_factory=dict)
    _shared: dict[Hashable, asyncio.Task[Any]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        """The request's session, one user at a time (sibling resolvers run concurrently)."""
        async with self._lock:
            yield self.session

    def shared(self, key: Hashable, make: Callable[[], Coroutine[Any, Any, T]]) -> Awaitable[T]:
        """Work several fields await (one statement answering many figures), started by the
        first to ask and kept for the request under ``key``. Each awaiter gets its own shield:
        graphql-core cancels the pending siblings of a field that failed, and cancelling an
        awaiter must not cancel the work the other awaiters still wait for."""
        task = self._shared.get(key)
        if task is None:
            task = self._shared[key] = asyncio.ensure_future(make())
            self._tasks.append(task)
        return asyncio.shield(task)

    async def reload_principal(self, session: AsyncSession) -> None:
        """Read the caller again after a write: a later mutation of the document runs with the
        role it has now; once deactivated (or its token revoked) it may write nothing more."""
        current = await principal_of_token(session, token_id=self.principal.token_id)
        if current is None:
            self.principal_gone = True
        else:
            self.principal = current

    def forget(self) -> None:
        """Drop every value read so far (loaders and shared work): called after each write,
        so that the next field, or the next mutation of the document, reads the new state."""
        self.__dict__.pop("loaders", None)
        self.cache.clear()
        self._shared.clear()

    async def settle(self) -> None:
        """End shared work nobody awaits any more (its awaiters were cancelled) before the
        request's session closes under it."""
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()

    def close(self) -> None:
        """The request is answered: drop what it read. The loaders refer back to the context
        (their batch functions close over it), a cycle that kept every row the request loaded
        alive until the cyclic garbage collector ran; breaking it here lets reference counting
        free them at once (see ``graph.app``)."""
        self.forget()
        self.request = self.response = None

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
