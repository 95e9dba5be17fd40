"""Synthetic data at scale: ``seed --customers N [--partners P] [--random-seed S]``.

N customers spread evenly over P partners ("Synthetic Partner 1..P", domains
``synth1.example``...), with the demo's mix of profiles. The output depends only on (N, P, S,
``now``): every draw comes from ``random.Random`` instances seeded from S, and ids continue from
the largest id in each table, so two fresh databases receive identical rows. Rows are written
with bulk Core inserts, a few thousand customers at a time, in one transaction.
"""

from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.enums import SetupState
from db.models import Partner
from db.seed.common import add_partner, normalize_now, standard_admins
from db.seed.customers import CustomerFactory
from db.seed.report import SeedError, SeedReport
from db.seed.writer import (
    Batch,
    Ids,
    any_customers,
    bulk_connection,
    datetime_binder,
    fix_sequences,
    progress_bar,
    record_status_rules,
    table_of,
    write_batch,
)
from db.status import StatusRules

P = table_of(Partner).c
CUSTOMERS_PER_BATCH = 2000
_SETUP_STATES = (SetupState.READY, SetupState.TERMS_ACCEPTED, SetupState.NOT_STARTED)
_CURRENCIES = ("USD", "EUR", "GBP")


def synthetic_partner(number: int) -> tuple[str, str]:
    """Name and domain of the synthetic partner ``number`` (1-based)."""
    return f"Synthetic Partner {number}", f"synth{number}.example"


async def _existing(conn: AsyncConnection, names: list[tuple[str, str]]) -> list[str]:
    """Names of up to three partners that clash with ``names`` (by name or domain)."""
    clash = or_(P.name.in_([n for n, _ in names]), P.domain.in_([d for _, d in names]))
    rows = await conn.execute(select(P.name).where(clash).order_by(P.id).limit(3))
    return list(rows.scalars())


async def seed_synthetic(
    engine: AsyncEngine,
    *,
    customers: int,
    partners: int,
    random_seed: int,
    now: datetime,
    rules: StatusRules,
    progress: bool = True,
) -> SeedReport:
    """Load ``customers`` customers over ``partners`` new partners; refuse if they exist."""
    if customers < 0 or partners < 1:
        raise SeedError("need customers >= 0 and partners >= 1")
    now = normalize_now(now)
    names = [synthetic_partner(n) for n in range(1, partners + 1)]
    counts = dict.fromkeys(
        ("customer", "subscription", "license_line", "license_snapshot", "admin", "tag"), 0
    )
    async with bulk_connection(engine) as conn:
        clash = await _existing(conn, names)
        if clash:
            raise SeedError(
                f"synthetic partners already exist ({', '.join(clash)}): load synthetic data "
                "into a database that has none"
            )
        had_customers = await any_customers(conn)
        ids = await Ids.load(conn)
        with progress_bar("Synthetic customers", customers, enabled=progress) as advance:
            for index, (name, domain) in enumerate(names):
                share = customers // partners + (1 if index < customers % partners else 0)
                rng = random.Random(f"synthetic:{random_seed}:{index + 1}")
                batch = Batch()
                context = add_partner(
                    batch,
                    ids,
                    rng,
                    name=name,
                    domain=domain,
                    code=f"S{index + 1:03d}",
                    currency=_CURRENCIES[index % len(_CURRENCIES)],
                    setup_state=_SETUP_STATES[index % len(_SETUP_STATES)],
                    admins=standard_admins(rng, extra_partner_admins=2),
                    now=now,
                )
                factory = CustomerFactory(
                    rng=rng, ids=ids, now=now, rules=rules, bind_datetime=datetime_binder(conn)
                )
                for first in range(0, max(share, 1), CUSTOMERS_PER_BATCH):
                    count = min(CUSTOMERS_PER_BATCH, share - first)
                    factory.build(batch, context, first_index=first, count=count)
                    for table in counts:
                        counts[table] += batch.count(table)
                    await write_batch(conn, batch)
                    batch = Batch()
                    advance(count)
        await fix_sequences(conn)
        await record_status_rules(conn, rules, had_customers=had_customers)
    return SeedReport(
        partners=partners,
        customers=counts["customer"],
        subscriptions=counts["subscription"],
        license_lines=counts["license_line"],
        snapshots=counts["license_snapshot"],
        admins=counts["admin"],
        tags=counts["tag"],
        created=True,
    )
