"""The medians' three reads (superbuckets of 1/16, their buckets of 1/256, the ratios of the
middle buckets) against the reference where the levels matter: a band's two middle positions in
different superbuckets, in two buckets of one superbucket, ratios above 1 (assigned over
purchased), exactly on bucket and superbucket edges, and stale rows (ACTIVE but ended or not yet
started) inside the middle bucket, which count in the histogram and must be taken back out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from db.engine import session_factory
from db.queries.analytics.medians import low_allocation_medians
from tests import test_license_totals as lt
from tests.conftest import NOW, Api
from tests.helpers import Factory

DAY = timedelta(days=1)

# (purchased, assigned) per subscription, all in the 1-10 band unless said; ratios noted.
CASES = {
    "two superbuckets": [(10, 0), (10, 9)],  # 0.0 and 0.9: positions 1 and 2 far apart
    "one superbucket, two buckets": [(10, 1), (10, 1), (8, 1), (8, 1)],  # .1 .1 .125 .125
    "edges": [(8, 1), (4, 1), (16, 1), (2, 1), (1, 1)],  # 1/8 1/4 1/16 1/2 1: exact edges
    "above one": [(4, 6), (4, 5), (4, 4), (2, 3)],  # 1.5 1.25 1.0 1.5
    "odd count": [(10, 3), (10, 7), (10, 5)],
    "two bands": [(10, 2), (10, 4), (50, 10), (50, 30), (50, 40)],
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stale", [False, True])
async def test_medians_equal_the_reference_across_levels(api: Api, case: str, stale: bool) -> None:
    f = Factory(api.engine)
    partner = await f.partner()
    for i, (purchased, assigned) in enumerate(CASES[case]):
        customer = await f.customer(partner, f"C{i}")
        await f.subscription(customer, lines=[("MEETINGS", purchased, assigned, 0)])
    if stale:
        # ACTIVE rows not in force at NOW, with the ratios of the middle: counted by the
        # histogram, taken back out by the first read and by the middle buckets' reads.
        for i, (purchased, assigned) in enumerate(CASES[case]):
            customer = await f.customer(partner, f"Stale {i}")
            ended = {"start": NOW - 400 * DAY, "end": NOW - DAY}
            later = {"start": NOW + DAY, "end": NOW + 400 * DAY}
            dates = ended if i % 2 else later
            line = ("MEETINGS", purchased, assigned, 0)
            await f.subscription(customer, **dates, lines=[line])
    async with api.engine.connect() as conn:
        reference = lt.ref.medians(await lt.world(conn, 0, NOW))
    async with session_factory(api.engine)() as session:
        medians = await low_allocation_medians(session, now=NOW)
    assert medians == reference
    assert medians  # every case has a median
