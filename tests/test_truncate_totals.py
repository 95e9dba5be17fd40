"""An operator's TRUNCATE keeps the license totals right (migration 0026).

PostgreSQL fires no row or DELETE trigger for TRUNCATE: the kept totals, the ratio histogram
and what is kept from them (KPI spans, ratio buckets, week totals) must still follow it, or the
dashboard keeps counting licences that are gone. SQLite has no TRUNCATE (its DELETE fires the
row triggers, which the property tests cover).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select, text

from db.license_kpis import LICENSE_KPI_SPAN
from db.license_totals import (
    LICENSE_PRODUCT_TOTAL,
    LICENSE_RATIO_BUCKET,
    LICENSE_RATIO_COUNT,
    LICENSE_RATIO_DELTA,
    LICENSE_WEEK_TOTAL,
    RATIO_FOLD_LOCK,
)
from db.models import LicenseLine, LicenseSnapshot
from tests.conftest import NOW, Api, postgresql_only
from tests.helpers import Factory, data_of, post_graphql
from tests.test_license_totals import histograms

FULL = "full@acme.example"
DASHBOARD = """{
  licenseKpis { totalCustomers aboutToExpire aboutToRenew lowAllocation overLicenseLimit }
  licenseAnalytics(product: MEETINGS) {
    distributionTrend(weeks: 2) { purchased assigned used }
  }
}"""


async def _world(api: Api) -> None:
    factory = Factory(api.engine)
    acme = await factory.partner()
    await factory.admin(acme, FULL, "FULL_ADMIN")
    for n, lines in enumerate(
        ([("MEETINGS", 10, 12, 3)], [("MEETINGS", 10, 2, 2)], [("MEETINGS", 40, 30, 9)])
    ):
        customer = await factory.customer(acme, f"Customer {n}")
        await factory.subscription(customer, lines=lines, auto_renew=n != 1)
    async with api.engine.begin() as conn:
        lines = (await conn.execute(select(LicenseLine.__table__))).mappings().all()  # type: ignore[attr-defined]
        for week in (NOW.replace(day=8), NOW.replace(day=15)):
            await conn.execute(
                insert(LicenseSnapshot.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "partner_id": line["partner_id"],
                        "license_line_id": line["id"],
                        "subscription_id": line["subscription_id"],
                        "product": line["product"],
                        "week_start": week,
                        "purchased": line["purchased"],
                        "assigned": line["assigned"],
                        "used": line["used"],
                    }
                    for line in lines
                ],
            )


async def _kept(api: Api) -> dict[str, int]:
    async with api.engine.connect() as conn:
        return {
            "totals": await conn.scalar(select(func.count()).select_from(LICENSE_PRODUCT_TOTAL)),
            "spans": await conn.scalar(select(func.count()).select_from(LICENSE_KPI_SPAN)),
            "ratios": await conn.scalar(select(func.coalesce(func.sum(LICENSE_RATIO_COUNT.c.n), 0)))
            + await conn.scalar(select(func.coalesce(func.sum(LICENSE_RATIO_DELTA.c.n), 0))),
            "pending": await conn.scalar(select(func.count()).select_from(LICENSE_RATIO_DELTA)),
            "buckets": await conn.scalar(
                select(func.coalesce(func.sum(LICENSE_RATIO_BUCKET.c.n), 0))
            ),
            "week_snapshots": await conn.scalar(
                select(func.coalesce(func.sum(LICENSE_WEEK_TOTAL.c.snapshots), 0))
            ),
        }


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    ["TRUNCATE license_line CASCADE", "TRUNCATE subscription CASCADE"],
)
async def test_truncating_licences_empties_every_kept_total(api: Api, statement: str) -> None:
    await _world(api)
    before = data_of(await post_graphql(api, DASHBOARD, as_=FULL))
    assert before["licenseKpis"]["totalCustomers"] == 3
    kept = await _kept(api)
    assert kept["totals"] == 3 and kept["spans"] > 0 and kept["ratios"] == 3
    assert kept["buckets"] == 3
    async with api.engine.begin() as conn:
        await conn.execute(text(statement))
    after = data_of(await post_graphql(api, DASHBOARD, as_=FULL))
    assert after["licenseKpis"] == {k: 0 for k in after["licenseKpis"]}, after
    kept = await _kept(api)
    assert (kept["totals"], kept["spans"], kept["ratios"], kept["buckets"]) == (0, 0, 0, 0)
    # (the snapshots reference the lines: a cascade empties them and their week totals too)
    assert kept["week_snapshots"] == 0
    assert all(
        w == {"purchased": 0, "assigned": 0, "used": 0}
        for w in after["licenseAnalytics"]["distributionTrend"]
    )


@postgresql_only
async def test_truncating_snapshots_empties_the_week_totals_only(api: Api) -> None:
    await _world(api)
    before = data_of(await post_graphql(api, DASHBOARD, as_=FULL))
    assert before["licenseAnalytics"]["distributionTrend"][-1]["purchased"] == 60, before
    async with api.engine.begin() as conn:
        await conn.execute(text("TRUNCATE license_snapshot"))
    after = data_of(await post_graphql(api, DASHBOARD, as_=FULL))
    assert all(
        w == {"purchased": 0, "assigned": 0, "used": 0}
        for w in after["licenseAnalytics"]["distributionTrend"]
    )
    assert after["licenseKpis"] == before["licenseKpis"]
    assert (await _kept(api))["week_snapshots"] == 0


@postgresql_only
async def test_truncating_the_totals_empties_the_ratio_histogram(api: Api) -> None:
    """An operator's TRUNCATE of ``license_product_total`` itself: the histogram counts those
    rows, so it is emptied with them, both levels (migration 0027; before, it kept counting)."""
    await _world(api)
    kept = await _kept(api)
    assert (kept["ratios"], kept["buckets"]) == (3, 3)
    async with api.engine.begin() as conn:
        await conn.execute(text("TRUNCATE license_product_total"))
    kept = await _kept(api)
    assert (kept["totals"], kept["spans"], kept["ratios"], kept["buckets"]) == (0, 0, 0, 0)
    async with api.engine.connect() as conn:
        for table in ("license_ratio_count", "license_ratio_bucket"):
            assert await conn.scalar(text(f"SELECT COUNT(*) FROM {table}")) == 0


async def _pending_change(api: Api) -> None:
    """Every licence line raised to 20 purchased while another transaction holds the
    histogram's fold lock: the change waits in the pending deltas (migration 0027)."""
    async with api.engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RATIO_FOLD_LOCK})
        async with api.engine.begin() as conn:
            await conn.execute(text("UPDATE license_line SET purchased = 20"))
        await holder.rollback()
    assert (await _kept(api))["pending"] > 0


@postgresql_only
async def test_truncating_the_totals_empties_the_pending_deltas_too(api: Api) -> None:
    await _world(api)
    await _pending_change(api)
    async with api.engine.begin() as conn:
        await conn.execute(text("TRUNCATE license_product_total"))
    kept = await _kept(api)
    assert (kept["totals"], kept["ratios"], kept["buckets"], kept["pending"]) == (0, 0, 0, 0)


@postgresql_only
async def test_truncating_the_pending_deltas_recomputes_the_histogram(api: Api) -> None:
    """The deltas thrown away by an operator's TRUNCATE are in the totals: the base is
    recomputed from them, and the medians read the same histogram as before."""
    await _world(api)
    await _pending_change(api)
    async with api.engine.connect() as conn:
        before = await histograms(conn)
    async with api.engine.begin() as conn:
        await conn.execute(text("TRUNCATE license_ratio_delta"))
    kept = await _kept(api)
    assert (kept["pending"], kept["ratios"], kept["buckets"]) == (0, 3, 3)
    async with api.engine.connect() as conn:
        assert await histograms(conn) == before  # (histograms: kept == recomputed)
