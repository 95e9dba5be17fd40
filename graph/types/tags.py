"""Tags a partner defines to group customers and subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from graph.ids import to_global_id
from graph.types.common import Node, made


@strawberry.type(description="A label a partner defines to group customers and subscriptions.")
class Tag(Node):
    name: str = strawberry.field(description="1-25 characters, unique per partner (any case).")
    description: str | None = strawberry.field(description="What the tag is for.")
    created_at: datetime = strawberry.field(description="When the tag was created.")
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Any) -> Tag:
        return made(
            cls,
            {
                "id": strawberry.ID(to_global_id("Tag", row.id)),
                "name": row.name,
                "description": row.description,
                "created_at": row.created_at,
                "pk": row.id,
            },
        )
