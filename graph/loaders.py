"""Per-request dataloaders: every relationship field resolves through one of these.

Each loader is one ``WHERE key IN (...)`` statement from ``db.queries`` and returns its values in
key order; a fresh set is built for every request (``Context.loaders``), so the cache never
outlives the request nor crosses between callers.
"""

from __future__ import annotations

from asyncio import Future, shield
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries import admins as admin_q
from db.queries import customer_children as kids
from db.scope import Scope
from graph import cost_model as cm
from graph.auth.permissions import Act, Obj, scope_or_none, visible_under

if TYPE_CHECKING:
    from graph.context import Context

V = TypeVar("V")


class Loader(DataLoader[int, V]):
    """A DataLoader that can also load many keys ahead of the fields that will ask for them.

    ``load_many`` makes a future per key and gathers them, which for a page's prefetch
    (``graph.prefetch``) cost more than the statement itself; ``load_ahead`` runs the same batch
    function for the keys not loaded yet and keeps the values, so a later ``load`` of any of
    them is answered without a statement. The values are kept as they are: a future per key
    (what ``prime`` makes) cost about 1.5 us each, five to a customer on a directory page, and is
    only needed by the rare ``load`` that follows.
    """

    def __init__(
        self,
        batch: Callable[[list[int]], Coroutine[Any, Any, list[V]]],
        rule: tuple[Obj, Obj] = (Obj.CUSTOMER, Obj.CUSTOMER),
        cap: int | None = None,
    ) -> None:
        # (kind loaded, kind of the parents): the rule the batch applies (see ``_loader``), and
        # how many items of each key's list it keeps (None: all).
        self.rule, self.cap = rule, cap
        self._futures: dict[int, Future[V]] = {}
        self._values: dict[int, V] = {}
        super().__init__(batch_load_fn=batch, max_batch_size=1000, cache_map=self._futures)
        self._batch = batch

    async def load_ahead(self, keys: Sequence[int]) -> list[V]:
        values, futures = self._values, self._futures
        missing = [key for key in dict.fromkeys(keys) if key not in values and key not in futures]
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            values.update(zip(chunk, await self._batch(chunk), strict=True))
        return [values[key] if key in values else await shield(futures[key]) for key in keys]

    def load(self, key: int) -> Future[V]:
        if key in self._values:
            future: Future[V] = self.loop.create_future()
            future.set_result(self._values[key])
            return future
        # The key's future is shared by every field that loads the key; graphql-core cancels
        # the pending siblings of a failed field, and an awaiter's cancellation must not
        # cancel the value the others wait for.
        return shield(super().load(key))

    def clear(self, key: int) -> Loader[V]:
        self._values.pop(key, None)
        return super().clear(key)

    def clear_all(self) -> Loader[V]:
        self._values.clear()
        return super().clear_all()


Fetch = Callable[[AsyncSession, Scope, Sequence[int]], Awaitable[Mapping[int, V]]]


def _loader(
    ctx: Context,
    rule: tuple[Obj, Obj],
    fetch: Fetch[V],
    default: Callable[[], Any],
    cap: int | None = None,
) -> Loader[V]:
    """A loader of ``rule[0]`` objects hanging from ``rule[1]`` parents (customers or
    subscriptions the caller already sees). Its batch cannot run without the caller's read
    scope for the object: a refused kind loads nothing, and parents whose objects the caller
    may not read (an ``assigned`` scope narrower than the parent's) are left out before the
    statement; the statement itself is bound to the scope's partner.

    ``cap``: keep at most that many items of each key's list (the bound the query cost prices
    it by, ``graph.cost_model``), the first ones in the list's order."""
    obj, parent = rule

    async def batch(keys: list[int]) -> list[V]:
        scope = scope_or_none(ctx, obj, Act.READ)
        if scope is None:
            return [default() for _ in keys]
        allowed = await visible_under(ctx, obj, Act.READ, keys, parent=parent)
        shown = keys if allowed is None else [key for key in keys if key in allowed]
        found: Mapping[int, V] = {}
        if shown:
            async with ctx.db() as session:
                found = await fetch(session, scope, shown)
        if cap is not None:
            return [found.get(key, default())[:cap] for key in keys]
        return [found.get(key, default()) for key in keys]

    return Loader(batch, rule, cap)


ON_CUSTOMER, ON_SUBSCRIPTION = Obj.CUSTOMER, Obj.SUBSCRIPTION


class Loaders:
    """The request's loaders, each created on first use; each declares the rule it applies."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @cached_property
    def statuses_by_customer_id(self) -> Loader[list[str]]:
        now = self._ctx.now
        return _loader(
            self._ctx,
            (Obj.CUSTOMER, ON_CUSTOMER),
            lambda s, scope, ids: kids.statuses_by_customer_ids(s, scope=scope, ids=ids, now=now),
            list,
        )

    @cached_property
    def products_by_customer_id(self) -> Loader[list[str]]:
        return _loader(
            self._ctx,
            (Obj.CUSTOMER, ON_CUSTOMER),
            lambda s, scope, ids: kids.products_by_customer_ids(s, scope=scope, ids=ids),
            list,
        )

    @cached_property
    def tags_by_customer_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.TAG, ON_CUSTOMER),
            lambda s, scope, ids: kids.tags_by_customer_ids(s, scope=scope, ids=ids),
            list,
            self._ctx.settings.max_tags_per_customer,
        )

    @cached_property
    def subscriptions_by_customer_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.SUBSCRIPTION, ON_CUSTOMER),
            lambda s, scope, ids: kids.subscriptions_by_customer_ids(s, scope=scope, ids=ids),
            list,
            cm.MAX_SUBSCRIPTIONS_PER_CUSTOMER,
        )

    @cached_property
    def trials_by_customer_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.TRIAL, ON_CUSTOMER),
            lambda s, scope, ids: kids.subscriptions_by_customer_ids(
                s, scope=scope, ids=ids, kind="TRIAL"
            ),
            list,
            cm.MAX_SUBSCRIPTIONS_PER_CUSTOMER,
        )

    @cached_property
    def license_lines_by_subscription_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.SUBSCRIPTION, ON_SUBSCRIPTION),
            lambda s, scope, ids: kids.license_lines_by_subscription_ids(s, scope=scope, ids=ids),
            list,
            cm.MAX_LICENSE_LINES_PER_SUBSCRIPTION,
        )

    @cached_property
    def invoices_by_subscription_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.SUBSCRIPTION, ON_SUBSCRIPTION),
            lambda s, scope, ids: kids.invoices_by_subscription_ids(s, scope=scope, ids=ids),
            list,
            cm.MAX_INVOICES_PER_SUBSCRIPTION,
        )

    @cached_property
    def orders_by_subscription_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.SUBSCRIPTION, ON_SUBSCRIPTION),
            lambda s, scope, ids: kids.orders_by_subscription_ids(s, scope=scope, ids=ids),
            list,
            cm.MAX_ORDERS_PER_SUBSCRIPTION,
        )

    @cached_property
    def tags_by_subscription_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.TAG, ON_SUBSCRIPTION),
            lambda s, scope, ids: kids.tags_by_subscription_ids(s, scope=scope, ids=ids),
            list,
            self._ctx.settings.max_tags_per_customer,
        )

    @cached_property
    def assigned_admins_by_customer_id(self) -> Loader[list[Any]]:
        return _loader(
            self._ctx,
            (Obj.ASSIGNMENT, ON_CUSTOMER),
            lambda s, scope, ids: kids.assigned_admins_by_customer_ids(s, scope=scope, ids=ids),
            list,
            cm.MAX_ASSIGNED_ADMINS_PER_CUSTOMER,
        )

    @cached_property
    def partner_by_id(self) -> Loader[Any]:
        """The caller's own partner (``Admin.partner``): any authenticated admin reads it."""
        ctx = self._ctx

        async def batch(keys: list[int]) -> list[Any]:
            own = [key for key in keys if key == ctx.principal.partner_id]
            async with ctx.db() as session:
                found = await admin_q.partners_by_ids(session, ids=own) if own else {}
            return [found.get(key) for key in keys]

        return Loader(batch)
