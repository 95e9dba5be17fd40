"""One statement per request for the license figures of a scope over the whole partner.

``licenseKpis`` and the KPIs of every section of ``licenseAnalytics`` (any product, aliases
included) each ask ``figures`` for the names they need. The asks made before the statement runs
are answered together by one ``q.partner_figures`` statement: the statement starts only once
every field already scheduled has run up to its first wait (graphql-core starts sibling fields
together) and, when a low-allocation figure is asked, once the request's medians are in. A
name asked after the statement has gone out opens a new batch: every ask is answered, sharing
is only an economy. Nothing is kept across requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from db.license_kpis import KpiFigures
from db.queries import analytics as q
from db.scope import Scope
from graph.context import Context


@dataclass
class _Batch:
    scope: Scope
    serial: int = 0
    kpis: set[str] = field(default_factory=set)
    low: set[str] = field(default_factory=set)
    closed: bool = False

    async def load(
        self, ctx: Context, medians_of: Callable[[], Awaitable[q.Medians]]
    ) -> dict[str, KpiFigures]:
        # Let the sibling fields scheduled with the first asker make their asks.
        await asyncio.sleep(0)
        medians: q.Medians = {}
        if self.low:
            medians = await medians_of()
        self.closed = True  # later asks go to a new batch
        async with ctx.db() as session:
            return await q.partner_figures(
                session,
                scope=self.scope,
                now=ctx.now,
                kpis=sorted(self.kpis),
                low=sorted(self.low),
                medians=medians,
            )


def figures(
    ctx: Context,
    scope: Scope,
    *,
    kpis: Iterable[str] = (),
    low: Iterable[str] = (),
    medians_of: Callable[[], Awaitable[q.Medians]],
) -> Awaitable[dict[str, KpiFigures]]:
    """The figures of ``kpis`` (maintained spans) and ``low`` (``q.LOW_KPI`` or
    ``q.section_kpi(LOW_ALLOCATION, product)``) for ``scope``, a scope over the whole partner,
    batched with the request's other asks; ``medians_of``: the request's shared medians.
    Await it outside ``ctx.db()``."""
    key = f"license_partner_figures:{scope.key}"
    batch = ctx.cache.get(key)
    if not isinstance(batch, _Batch):
        batch = ctx.cache[key] = _Batch(scope)
    elif batch.closed:
        batch = ctx.cache[key] = _Batch(scope, serial=batch.serial + 1)
    batch.kpis.update(kpis)
    batch.low.update(low)
    # Keyed by the batch's serial: a closed batch's successor is new work.
    chosen = batch
    return ctx.shared((key, batch.serial), lambda: chosen.load(ctx, medians_of))
