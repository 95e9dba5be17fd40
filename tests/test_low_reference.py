"""The low-allocation spans kept at a reference threshold per size band (migration 0033).

A whole partner's low-allocation figures (``licenseKpis.lowAllocation``, the section's KPIs and
``totalCount``) are the kept spans read at ``now`` plus a correction to the current medians.
Oracles: the answers of the same API with no reference at all (the correction then computes
every figure from the flagged rows, as before 0033), and ``tests/test_license_totals.py``'s
recomputation (its property test moves and sets the reference between random writes).
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

from sqlalchemy import text

from db.engine import session_factory
from db.license_kpis import figures_params, figures_statement
from db.low_reference import (
    LOW_KPIS,
    rebase_low_reference,
    reference_halves,
    set_low_reference,
)
from db.queries.analytics.common import BoundMedians, BoundScope, Times
from db.queries.analytics.low_kept import ANY_LOW, low_corrections, low_kpi
from db.queries.analytics.medians import low_allocation_medians
from graph.app import create_app
from graph.auth.permissions import system_scope
from graph.ids import to_global_id
from graph.low_rebase import rebase_turn
from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql, token_for
from tests.test_cli import Workspace
from tests.test_medians_memo import FULL_DASHBOARD, QUANTITY, world

EMAILS = ("full@acme.example", "full@globex.example")


async def answers(api: Api) -> dict[str, Any]:
    out = {}
    for email in EMAILS:
        for product in ("MEETINGS", "CALLING"):
            body = await post_graphql(api, FULL_DASHBOARD, {"product": product}, as_=email)
            out[f"{email} {product}"] = data_of(body)
    return out


async def kept_spans(api: Api) -> int:
    kpis = ", ".join(f"'{k}'" for k in LOW_KPIS)
    async with api.engine.connect() as conn:
        found = await conn.scalar(
            text(f"SELECT COUNT(*) FROM license_kpi_span WHERE kpi IN ({kpis})")
        )
    return int(found or 0)


async def corrections(api: Api, partner_id: int) -> dict[str, tuple[int, ...]]:
    """The correction rows alone (no kept figure) of a partner's low-allocation names."""
    async with session_factory(api.engine)() as session:
        medians = await low_allocation_medians(session, now=NOW)
        bands = tuple(sorted(medians))
        m = BoundMedians.of(bands)
        scope = system_scope(partner_id)
        names = [ANY_LOW, low_kpi("MEETINGS"), low_kpi("CALLING")]
        rows = low_corrections(
            BoundScope(BoundScope.shape(scope)), Times.bound(), names, m.halves, m.bounds
        )
        statement = figures_statement(
            (), partner_id=partner_id, day=0, midnight=NOW, now=NOW, also=rows
        )
        params = {
            **Times.params(NOW),
            **BoundScope.params(scope),
            **figures_params(NOW),
            **BoundMedians.params(medians, bands),
        }
        result = await session.execute(statement, params)
        return {kpi: tuple(int(v) for v in values) for kpi, *values in result}


async def test_the_figures_are_the_same_at_any_reference(api: Api) -> None:
    # given: two partners' subscriptions over bands and ratios, no reference yet
    f = Factory(api.engine)
    subs = await world(f)
    for email in EMAILS:
        await token_for(api, email)
    before = await answers(api)
    assert await kept_spans(api) == 0
    flagged = before["full@acme.example MEETINGS"]["licenseKpis"]["lowAllocation"]
    assert flagged > 0, "the world flags some customers"

    # when: the reference is the current medians
    async with session_factory(api.engine)() as session, session.begin():
        result = await rebase_low_reference(session, now=NOW)
    # then: the spans are kept, the answers unchanged, and the correction is empty
    assert result.halves and result.written and result.customers > 0
    assert await kept_spans(api) > 0
    async with session_factory(api.engine)() as session:
        assert await reference_halves(session) == result.halves
    assert await answers(api) == before
    partners = await _partners(api)
    for partner in partners:
        assert set((await corrections(api, partner)).values()) == {(0, 0, 0, 0, 0)}

    # when: any other thresholds (none, all zero, everything flagged, a mix)
    mixed = {key: (0.05 if key[1] % 2 else 2.0) for key in result.halves}
    for halves in ({}, dict.fromkeys(result.halves, 0.0), dict.fromkeys(result.halves, 9.0), mixed):
        async with session_factory(api.engine)() as session, session.begin():
            await set_low_reference(session, halves)
        # then: the same answers, the correction answering for the rows between the two
        assert await answers(api) == before, halves
        found = [await corrections(api, p) for p in partners]
        assert any(any(values) for rows in found for values in rows.values()), (halves, found)

    # when: a licence write moves the medians away from the reference (taken again first)
    async with session_factory(api.engine)() as session, session.begin():
        await rebase_low_reference(session, now=NOW)
    variables = {
        "input": {
            "subscriptionId": to_global_id("Subscription", subs["globex"][2]),
            "product": "MEETINGS",
            "purchased": 400,
        }
    }
    body = await post_graphql(api, QUANTITY, variables, as_="full@globex.example")
    assert not data_of(body)["changeLicenseQuantity"]["userErrors"], body
    moved = await answers(api)
    # (the medians moved across some subscriptions: the correction answers for them)
    # then: the answers are those of a server with no reference at all
    async with session_factory(api.engine)() as session, session.begin():
        await set_low_reference(session, {})
    assert await answers(api) == moved


async def _partners(api: Api) -> list[int]:
    async with api.engine.connect() as conn:
        return list((await conn.execute(text("SELECT id FROM partner ORDER BY id"))).scalars())


async def test_rebase_low_allocation_command(tmp_path: Path) -> None:
    """The command moves the reference and reports it; without a database it is a one-line
    error and creates none."""
    workspace = Workspace(cwd=tmp_path, url=f"sqlite+aiosqlite:///{tmp_path}/hub.db")
    missing = await workspace.run("rebase-low-allocation")
    assert missing.code == 1 and missing.error_lines[0].startswith(
        "partner-hub: error: no database"
    )
    assert not workspace.db_file.exists()
    seeded = await workspace.run("seed", "--customers", "60", "--no-progress")
    assert seeded.code == 0, seeded
    # seed took the reference at its end: no flag changes, nothing is written
    again = await workspace.run("rebase-low-allocation")
    assert again.code == 0 and "nothing written" in again.stdout, again
    # --full rebuilds every customer's spans
    full = await workspace.run("rebase-low-allocation", "--full")
    assert full.code == 0, full
    assert "size bands with a median" in full.stdout and "spans rebuilt" in full.stdout, full


async def _versions(api: Api) -> tuple[Any, ...]:
    async with api.engine.connect() as conn:
        epoch = await conn.scalar(text("SELECT value FROM app_meta WHERE key = 'data_version'"))
        rows = await conn.execute(
            text("SELECT partner_id, version FROM partner_data_version ORDER BY partner_id")
        )
        return epoch, tuple(tuple(r) for r in rows)


async def test_a_turn_moves_the_reference_once_and_then_writes_nothing(api: Api) -> None:
    await world(Factory(api.engine))
    epoch, partners = await _versions(api)
    first = await rebase_turn(api.engine, NOW)
    assert first.written and first.customers > 0
    # the move declared the partners whose spans it rebuilt: their versions moved, not the epoch
    moved_epoch, moved_partners = await _versions(api)
    assert moved_epoch == epoch and moved_partners != partners
    async with session_factory(api.engine)() as session:
        medians = await low_allocation_medians(session, now=NOW)
        assert await reference_halves(session) == {k: v / 2 for k, v in medians.items()}
    before = await _versions(api)
    again = await rebase_turn(api.engine, NOW)
    assert not again.written and again.customers == 0
    assert await _versions(api) == before


async def test_a_serving_app_moves_the_reference_on_its_own(api: Api) -> None:
    await world(Factory(api.engine))
    settings = api.settings.model_copy(update={"low_rebase_seconds": 0.05})
    app = create_app(settings, engine=api.engine)
    thresholds = gc.get_threshold()
    try:
        async with app.router.lifespan_context(app):
            for _ in range(200):
                async with session_factory(api.engine)() as session:
                    if await reference_halves(session):
                        break
                await asyncio.sleep(0.05)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    async with session_factory(api.engine)() as session:
        medians = await low_allocation_medians(session, now=NOW)
        assert medians
        assert await reference_halves(session) == {k: v / 2 for k, v in medians.items()}
