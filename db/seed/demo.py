"""The demo data set: "Acme Partners" and "Globex Reseller" (DESIGN.md section 6).

Loaded once: when the demo partners exist, nothing is written. Every customer status, product,
managed-by value, subscription kind and state and admin role is present at ``now``; the data is
the same for the same ``now`` (fixed random seeds, dates relative to ``now``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.enums import Role, SetupState
from db.models import Partner
from db.seed.activity import ActivityMaker
from db.seed.calls import seed_demo_calls
from db.seed.common import AdminSpec, add_partner, normalize_now
from db.seed.customers import CustomerFactory
from db.seed.report import SeedReport, count_partner_rows
from db.seed.resources import seed_resources
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


@dataclass(frozen=True)
class DemoPartner:
    name: str
    domain: str
    code: str
    currency: str
    setup_state: SetupState
    customers: int
    admins: tuple[AdminSpec, ...]
    random_seed: str


DEMO_PARTNERS = (
    DemoPartner(
        name="Acme Partners",
        domain="acme.example",
        code="ACM",
        currency="USD",
        setup_state=SetupState.READY,
        customers=300,
        admins=(
            AdminSpec("full", "Alex Morgan", Role.FULL_ADMIN),
            AdminSpec("partner", "Priya Sharma", Role.PARTNER_ADMIN, 0.3),
            AdminSpec("readonly", "Sam Reed", Role.READ_ONLY_ADMIN),
            AdminSpec("sales", "Diego Lopez", Role.SALES_ADMIN, 0.15),
            AdminSpec("maria.garcia", "Maria Garcia", Role.PARTNER_ADMIN, 0.1),
            AdminSpec("li.wei", "Li Wei", Role.PARTNER_ADMIN, 0.1),
            AdminSpec("tom.baker", "Tom Baker", Role.PARTNER_ADMIN, 0.05),
        ),
        random_seed="demo:acme.example",
    ),
    DemoPartner(
        name="Globex Reseller",
        domain="globex.example",
        code="GLX",
        currency="EUR",
        setup_state=SetupState.NOT_STARTED,
        customers=220,
        admins=(
            AdminSpec("full", "Hannah Vogel", Role.FULL_ADMIN),
            AdminSpec("partner", "Omar Nasser", Role.PARTNER_ADMIN, 0.3),
            AdminSpec("readonly", "Ingrid Larsen", Role.READ_ONLY_ADMIN),
            AdminSpec("sales", "Chloe Dupont", Role.SALES_ADMIN, 0.15),
            AdminSpec("aisha.khan", "Aisha Khan", Role.PARTNER_ADMIN, 0.1),
            AdminSpec("jonas.berg", "Jonas Berg", Role.PARTNER_ADMIN, 0.1),
        ),
        random_seed="demo:globex.example",
    ),
)


async def _present(conn: AsyncConnection) -> dict[str, int]:
    """Demo partners already in the database (matched by name or domain): name -> id."""
    rows = await conn.execute(
        select(P.id, P.name, P.domain).where(
            or_(
                P.name.in_([d.name for d in DEMO_PARTNERS]),
                P.domain.in_([d.domain for d in DEMO_PARTNERS]),
            )
        )
    )
    present = {}
    for partner_id, name, domain in rows:
        for demo in DEMO_PARTNERS:
            if name == demo.name or domain == demo.domain:
                present[demo.name] = partner_id
    return present


async def seed_demo(
    engine: AsyncEngine, *, now: datetime, rules: StatusRules, progress: bool = True
) -> SeedReport:
    """Load the demo partners unless present; report what the demo partners hold."""
    now = normalize_now(now)
    await seed_resources(engine, now=now)
    async with bulk_connection(engine) as conn:
        present = await _present(conn)
        missing = [d for d in DEMO_PARTNERS if d.name not in present]
        if missing:
            had_customers = await any_customers(conn)
            ids = await Ids.load(conn)
            total = sum(d.customers for d in missing)
            with progress_bar("Demo customers", total, enabled=progress) as advance:
                for demo in missing:
                    rng = random.Random(demo.random_seed)
                    batch = Batch()
                    context = add_partner(
                        batch,
                        ids,
                        rng,
                        name=demo.name,
                        domain=demo.domain,
                        code=demo.code,
                        currency=demo.currency,
                        setup_state=demo.setup_state,
                        admins=demo.admins,
                        now=now,
                    )
                    factory = CustomerFactory(
                        rng=rng, ids=ids, now=now, rules=rules, bind_datetime=datetime_binder(conn)
                    )
                    factory.build(batch, context, first_index=0, count=demo.customers)
                    # Its own generator: the customers stay what they were without activity.
                    activity = random.Random(f"{demo.random_seed}:activity")
                    ActivityMaker(activity, ids, now).build(batch, context)
                    await write_batch(conn, batch)
                    present[demo.name] = context.partner_id
                    advance(demo.customers)
            await fix_sequences(conn)
            await record_status_rules(conn, rules, had_customers=had_customers)
        report = await count_partner_rows(conn, sorted(present.values()), created=bool(missing))
    # Eight weeks and more of call records for the customers with Calling (idempotent too).
    await seed_demo_calls(engine, now=now, progress=progress)
    return report
