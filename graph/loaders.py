"""Per-request dataloaders: every relationship field resolves through one of these.

Each loader is one ``WHERE key IN (...)`` statement from ``db.queries`` and returns its values in
key order; a fresh set is built for every request (``Context.loaders``), so the cache never
outlives the request nor crosses between callers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries import admins as admin_q
from db.queries import customers as q

if TYPE_CHECKING:
    from graph.context import Context

V = TypeVar("V")


def _loader(
    ctx: Context,
    fetch: Callable[[AsyncSession, Sequence[int]], Awaitable[Mapping[int, V]]],
    default: Callable[[], Any],
) -> DataLoader[int, V]:
    async def batch(keys: list[int]) -> list[V]:
        async with ctx.db() as session:
            found = await fetch(session, keys)
        return [found.get(key, default()) for key in keys]

    return DataLoader(batch_load_fn=batch, max_batch_size=1000)


class Loaders:
    """The request's loaders, each created on first use."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @cached_property
    def statuses_by_customer_id(self) -> DataLoader[int, list[str]]:
        now = self._ctx.now
        return _loader(
            self._ctx,
            lambda s, ids: q.statuses_by_customer_ids(s, ids=ids, now=now),
            list,
        )

    @cached_property
    def products_by_customer_id(self) -> DataLoader[int, list[str]]:
        return _loader(self._ctx, lambda s, ids: q.products_by_customer_ids(s, ids=ids), list)

    @cached_property
    def tags_by_customer_id(self) -> DataLoader[int, list[Any]]:
        return _loader(self._ctx, lambda s, ids: q.tags_by_customer_ids(s, ids=ids), list)

    @cached_property
    def subscriptions_by_customer_id(self) -> DataLoader[int, list[Any]]:
        return _loader(self._ctx, lambda s, ids: q.subscriptions_by_customer_ids(s, ids=ids), list)

    @cached_property
    def trials_by_customer_id(self) -> DataLoader[int, list[Any]]:
        return _loader(
            self._ctx,
            lambda s, ids: q.subscriptions_by_customer_ids(s, ids=ids, kind="TRIAL"),
            list,
        )

    @cached_property
    def license_lines_by_subscription_id(self) -> DataLoader[int, list[Any]]:
        return _loader(
            self._ctx, lambda s, ids: q.license_lines_by_subscription_ids(s, ids=ids), list
        )

    @cached_property
    def invoices_by_subscription_id(self) -> DataLoader[int, list[Any]]:
        return _loader(self._ctx, lambda s, ids: q.invoices_by_subscription_ids(s, ids=ids), list)

    @cached_property
    def orders_by_subscription_id(self) -> DataLoader[int, list[Any]]:
        return _loader(self._ctx, lambda s, ids: q.orders_by_subscription_ids(s, ids=ids), list)

    @cached_property
    def tags_by_subscription_id(self) -> DataLoader[int, list[Any]]:
        return _loader(self._ctx, lambda s, ids: q.tags_by_subscription_ids(s, ids=ids), list)

    @cached_property
    def assigned_admins_by_customer_id(self) -> DataLoader[int, list[Any]]:
        return _loader(
            self._ctx, lambda s, ids: q.assigned_admins_by_customer_ids(s, ids=ids), list
        )

    @cached_property
    def partner_by_id(self) -> DataLoader[int, Any]:
        return _loader(self._ctx, lambda s, ids: admin_q.partners_by_ids(s, ids=ids), lambda: None)
