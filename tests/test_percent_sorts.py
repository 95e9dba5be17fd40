"""Percent columns sort in 64-bit integer arithmetic: a subscription holding millions of
licences (an operator's import, beyond the API's 100,000 a line) sorts and shows without an
overflow on PostgreSQL's int4 (a 500 before)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NOW, Api
from tests.helpers import Factory, data_of, post_graphql

FULL = "full@acme.example"
QUERY = """
query Q($field: ExpiringColumn!) {
  licenseAnalytics(product: MEETINGS) {
    aboutToExpire {
      rows(orderBy: {field: $field, direction: DESC}) {
        nodes { customerName allocationPercent usagePercent }
      }
    }
  }
}
"""


@pytest.mark.parametrize("field", ["ALLOCATION_PERCENT", "USAGE_PERCENT"])
async def test_millions_of_licences_sort_by_percent(api: Api, field: str) -> None:
    f = Factory(api.engine)
    acme = await f.partner()
    await f.admin(acme, FULL, "FULL_ADMIN")
    end = NOW + timedelta(days=10)
    for name, line in (
        ("Huge", ("MEETINGS", 3_000_000, 2_900_000, 2_000_000)),
        ("Small", ("MEETINGS", 10, 5, 1)),
    ):
        customer = await f.customer(acme, name)
        await f.subscription(customer, end=end, auto_renew=False, lines=[line])

    body = data_of(await post_graphql(api, QUERY, {"field": field}, as_=FULL))

    nodes = body["licenseAnalytics"]["aboutToExpire"]["rows"]["nodes"]
    assert nodes == [
        {"customerName": "Huge", "allocationPercent": 96.7, "usagePercent": 66.7},
        {"customerName": "Small", "allocationPercent": 50.0, "usagePercent": 10.0},
    ]
