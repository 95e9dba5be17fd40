"""Help resources: quick links, featured resources and the catalogue (shared by every partner)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry

import graph.types.common  # noqa: F401  (registers Product as a GraphQL enum)
from db.enums import Product
from db.queries.resources import ResourceType
from graph.pagination import PageInfo

__all__ = [
    "Resource",
    "ResourceAudience",
    "ResourceConnection",
    "ResourceEdge",
    "ResourceFilter",
    "ResourceType",
]

# ``strawberry.enum`` registers the class and returns it: annotations name the domain enum.
strawberry.enum(
    ResourceType,
    description="Kind of help content: ARTICLE, VIDEO, GUIDE (step by step), TRAINING (course or "
    "webinar), API_DOC (developer documentation).",
)


@strawberry.enum(description="Who a resource is written for: a partner administrator role.")
class ResourceAudience(StrEnum):
    FULL_ADMIN = "FULL_ADMIN"
    PARTNER_ADMIN = "PARTNER_ADMIN"
    READ_ONLY_ADMIN = "READ_ONLY_ADMIN"
    SALES_ADMIN = "SALES_ADMIN"


def _split(values: str) -> list[str]:
    return [v for v in values.split(",") if v]


@strawberry.type(description="A help resource: an article, video, guide, training or API doc.")
class Resource:
    slug: str = strawberry.field(description="Stable, unique identifier (used in its URL).")
    title: str = strawberry.field(description="The resource's title, as shown in lists.")
    summary: str = strawberry.field(description="One or two sentences about it.")
    body: str = strawberry.field(
        description="The full text (searched, with the title and the summary)."
    )
    url: str = strawberry.field(description="Where to read or watch it.")
    type: ResourceType = strawberry.field(description="Kind of content.")
    products: list[Product] = strawberry.field(
        description="Products it is about; empty when it is not specific to a product."
    )
    audiences: list[ResourceAudience] = strawberry.field(description="Roles it is written for.")
    quick_link: bool = strawberry.field(description="Listed among the quick links.")
    featured: bool = strawberry.field(description="Listed among the featured resources.")
    popularity: int = strawberry.field(
        description="How often partners open it (relative; higher is more popular)."
    )
    updated_at: datetime = strawberry.field(description="Last update of the content.")

    @classmethod
    def from_row(cls, row: Any) -> Resource:
        return cls(
            slug=row.slug,
            title=row.title,
            summary=row.summary,
            body=row.body,
            url=row.url,
            type=row.type,
            products=[Product(p) for p in _split(row.products)],
            audiences=[ResourceAudience(a) for a in _split(row.audiences)],
            quick_link=row.quick_link,
            featured=row.featured,
            popularity=row.popularity,
            updated_at=row.updated_at,
        )


@strawberry.input(
    description="Resource filters: inside one list any value matches; fields combine with AND."
)
class ResourceFilter:
    types: list[ResourceType] | None = strawberry.field(
        default=None, description="Of any of these kinds."
    )
    products: list[Product] | None = strawberry.field(
        default=None, description="About any of these products."
    )
    audiences: list[ResourceAudience] | None = strawberry.field(
        default=None, description="Written for any of these roles."
    )


@strawberry.type(description="A resource in a list, with its cursor.")
class ResourceEdge:
    node: Resource = strawberry.field(description="The resource.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after it.")


@strawberry.type(
    description="A keyset page of resources: by relevance when searching, else by popularity."
)
class ResourceConnection:
    edges: list[ResourceEdge] = strawberry.field(description="Resources with cursors.")
    nodes: list[Resource] = strawberry.field(description="Resources of this page.")
    page_info: PageInfo = strawberry.field(description="Paging information.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Resources matching the search and filter, over all pages.")
    async def total_count(self) -> int:
        return await self.count()
