"""What a seed run reports, and the error it raises instead of duplicating data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import Admin, Customer, LicenseLine, LicenseSnapshot, Subscription, Tag
from db.seed.writer import table_of


class SeedError(Exception):
    """The requested seed cannot run (for instance its partners already exist)."""


@dataclass(frozen=True)
class SeedReport:
    """Row counts of the seeded partners; ``created`` is False when nothing had to be inserted."""

    partners: int
    customers: int
    subscriptions: int
    license_lines: int
    snapshots: int
    admins: int
    tags: int
    created: bool


async def count_partner_rows(
    conn: AsyncConnection, partner_ids: Sequence[int], *, created: bool
) -> SeedReport:
    """A report of what the partners ``partner_ids`` hold in the database."""
    counts = []
    for model in (Customer, Subscription, LicenseLine, LicenseSnapshot, Admin, Tag):
        table = table_of(model)
        statement = select(func.count()).select_from(table)
        counts.append(
            int(
                (
                    await conn.execute(statement.where(table.c.partner_id.in_(partner_ids)))
                ).scalar_one()
            )
        )
    customers, subscriptions, lines, snapshots, admins, tags = counts
    return SeedReport(
        partners=len(partner_ids),
        customers=customers,
        subscriptions=subscriptions,
        license_lines=lines,
        snapshots=snapshots,
        admins=admins,
        tags=tags,
        created=created,
    )
