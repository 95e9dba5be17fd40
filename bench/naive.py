"""The naive baseline of issue 8: the same Strawberry schema, relationship fields per row.

What a team gets by hand-writing a Strawberry + SQLModel service without the batching work: the
same types, resolvers, authorization and SQL as Partner Hub, but every relationship field runs
its own ``WHERE key IN (<one key>)`` statement for its own parent (no dataloader batching, no
page-wide prefetch) and graphql-core's stock execution path (no plain-field path). Kept in
``bench/`` and never imported by the product: it patches the product's modules in its own
process, so serve it on its own:

    PARTNER_HUB_DATABASE_URL=... .venv/bin/uvicorn bench.naive:create_naive_app --factory
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import strawberry
from starlette.applications import Starlette
from strawberry.schema.config import StrawberryConfig


class PerRowLoader:
    """The product's loader (its rule and scope applied as always), answering one key at a
    time with one statement per key: the N+1 a naive resolver makes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.rule, self.cap = inner.rule, inner.cap

    async def load(self, key: int) -> Any:
        return (await self._inner._batch([key]))[0]

    async def load_many(self, keys: Sequence[int]) -> list[Any]:
        return [await self.load(key) for key in keys]

    async def load_ahead(self, keys: Sequence[int]) -> list[Any]:
        return await self.load_many(keys)


def naive_schema() -> strawberry.Schema:
    from db.settings import get_settings
    from graph.extensions import limit_extensions
    from graph.schema import Mutation, Query
    from graph.types.admins import Admin, Partner
    from graph.types.customers import Customer, Subscription
    from graph.types.tags import Tag

    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[Customer, Subscription, Tag, Admin, Partner],
        extensions=limit_extensions(get_settings()),
        config=StrawberryConfig(auto_camel_case=True),
    )


def _apply() -> tuple[Any, ...]:
    """Patch the product's modules into the naive baseline; returns what was there before."""
    import graph.detail
    import graph.endpoint
    import graph.loaders
    from db.queries.customer_parts import DetailPlan

    async def no_prefetch(*_: Any) -> None:
        return None

    def nothing_ahead(*_: Any) -> Any:
        # No relationship read with the page or the detail: each field loads its own.
        return DetailPlan(parts=()), ([], [], []), {}

    schema = naive_schema()
    saved = (
        graph.loaders._loader,
        graph.detail.prefetch,
        graph.detail._plans,
        graph.endpoint.build_schema,
    )
    product_loader = graph.loaders._loader

    def per_row_loader(*args: Any, **kwargs: Any) -> Any:
        return PerRowLoader(product_loader(*args, **kwargs))

    graph.loaders._loader = per_row_loader
    graph.detail.prefetch = no_prefetch  # type: ignore[assignment]
    graph.detail._plans = nothing_ahead  # type: ignore[assignment]
    graph.endpoint.build_schema = lambda *_: schema
    return saved


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """The naive baseline for the duration of the block (loaders answer per key, pages
    prefetch nothing, ``create_app`` gets the stock schema), then the product again."""
    import graph.detail
    import graph.endpoint
    import graph.loaders

    saved = _apply()
    try:
        yield
    finally:
        (
            graph.loaders._loader,
            graph.detail.prefetch,
            graph.detail._plans,
            graph.endpoint.build_schema,
        ) = saved


def create_naive_app() -> Starlette:
    """The baseline as a served app: its process stays patched for its whole life. (Not through
    ``patched()``: a context manager entered and dropped is closed by the garbage collector,
    which would quietly restore the product.)"""
    import graph.app

    _apply()
    return graph.app.create_app()
