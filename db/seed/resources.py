"""The help-resource catalogue: quick links, featured resources and the searchable catalogue.

The catalogue lives in ``resources.json`` next to this module. ``products`` and ``audiences`` are
stored as comma-separated enum values (``"MEETINGS,CALLING"``; audiences are ``Role`` values);
an empty ``products`` means the resource is not specific to a product. Resources are shared by
every partner.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.enums import Product, Role
from db.models import Resource
from db.seed.common import normalize_now
from db.seed.writer import table_of

CATALOGUE = Path(__file__).with_name("resources.json")
BASE_URL = "https://help.partner-hub.example"
RESOURCE_TYPES = ("ARTICLE", "VIDEO", "GUIDE", "TRAINING", "API_DOC")
_PATHS = {
    "ARTICLE": "articles",
    "VIDEO": "videos",
    "GUIDE": "guides",
    "TRAINING": "training",
    "API_DOC": "developer",
}
R = table_of(Resource).c


@lru_cache(maxsize=1)
def catalogue() -> tuple[dict[str, Any], ...]:
    """The resources of ``resources.json``, validated."""
    entries = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    products, roles = {p.value for p in Product}, {r.value for r in Role}
    for entry in entries:
        if entry["type"] not in RESOURCE_TYPES:
            raise ValueError(f"resource {entry['slug']}: unknown type {entry['type']!r}")
        if not set(entry["products"]) <= products or not set(entry["audiences"]) <= roles:
            raise ValueError(f"resource {entry['slug']}: unknown product or audience")
    return tuple(entries)


def resource_row(entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "slug": entry["slug"],
        "title": entry["title"],
        "summary": entry["summary"],
        "body": entry["body"],
        "url": f"{BASE_URL}/{_PATHS[entry['type']]}/{entry['slug']}",
        "type": entry["type"],
        "products": ",".join(entry["products"]),
        "audiences": ",".join(entry["audiences"]),
        "quick_link": bool(entry["quick_link"]),
        "featured": bool(entry["featured"]),
        "popularity": int(entry["popularity"]),
        "updated_at": now - timedelta(days=int(entry["age_days"])),
    }


async def seed_resources(engine: AsyncEngine, *, now: datetime) -> int:
    """Insert the catalogue resources that are missing (by slug); return how many were added.

    Existing resources are left as they are, so running it again changes nothing.
    """
    now = normalize_now(now).replace(hour=0, minute=0, second=0, microsecond=0)
    async with engine.begin() as conn:
        present = set((await conn.execute(select(R.slug))).scalars())
        rows = [resource_row(e, now) for e in catalogue() if e["slug"] not in present]
        if rows:
            await conn.execute(insert(table_of(Resource)), rows)
    return len(rows)
