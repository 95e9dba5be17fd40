"""The SQL statements per request that the README quotes for issue 8's workloads.

The benchmark documents themselves (``bench/queries/``) run here against a small data set: the
count is a constant of a document's shape, never of its rows, so 2 and 50 customers cost the
same, and the README's figures cannot drift from the code without this failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graph import detail
from tests.conftest import Api, api_over
from tests.databases import Database
from tests.helpers import data_of, post_graphql, with_lookup
from tests.test_n_plus_one import FULL, build_customers

QUERIES = Path(__file__).parents[1] / "bench" / "queries"
# the page with its customers' statuses, tags, subscriptions with their license lines and
# assigned admins as JSON columns of the page's own statement (db/queries/customer_pages.py,
# graph/detail.py page_plans), and the token's lookup (``with_lookup``: on PostgreSQL it rides
# along). It was 7 (one per relationship), then 3 (lookup, page, the page's relationships). A page
# filtered by one tag or status walks it (db/queries/customer_pages.py), in one statement too.
DIRECTORY_STATEMENTS = 1
WALKED_STATEMENTS = 1
# the customer with every relationship as JSON (graph/detail.py), and the token's lookup (as
# the directory's); it was 12 (one per relationship)
DETAIL_STATEMENTS = 1
# token lookup, the partner's license figures (top KPIs, every section's KPIs, low allocation's
# with them: graph/resolvers/license_figures.py), trend and five pages (see
# db/queries/analytics); it was 12 with the top KPIs, the four kept section KPIs and low
# allocation's KPIs as three statements. The deployment's low-allocation medians (stale rows
# with the ratio superbuckets, the middle superbuckets' buckets, the middle buckets' ratios)
# add three when read, and the window they hold in one more: the first dashboard after a
# licence write anywhere (MediansMemo), or every one with PARTNER_HUB_MEDIANS_MEMO off.
DASHBOARD_STATEMENTS = 8
MEDIANS_STATEMENTS = 3


async def statements_of(api: Api, document: str, variables: dict[str, Any]) -> tuple[Any, int]:
    """The answer and statement count of ``document`` sent a second time (a client repeats its
    documents: a known query runs outside a transaction, provisionally: graph/endpoint.py)."""
    data_of(await post_graphql(api, document, variables, as_=FULL))
    with api.counter.counting() as statements:
        data = data_of(await post_graphql(api, document, variables, as_=FULL))
    return data, len(statements)


@pytest.mark.parametrize("size", [2, 50])
async def test_directory_workloads_cost_the_same_statements_at_any_page_size(
    uncached_api: Api, size: int
) -> None:
    api = uncached_api
    await build_customers(api, 60)
    document = (QUERIES / "directory_page.graphql").read_text()
    tags = data_of(await post_graphql(api, "{ tags { id name } }", as_=FULL))["tags"]
    page, count = await statements_of(api, document, {"first": size})
    assert len(page["customers"]["nodes"]) == size
    assert all(n["subscriptions"][0]["licenses"] for n in page["customers"]["nodes"])
    assert all(n["partnerAdmins"] and n["tags"] for n in page["customers"]["nodes"])
    assert count == with_lookup(api, DIRECTORY_STATEMENTS)
    flt = {"statuses": ["LICENSE_OVERAGE"], "products": ["CALLING"], "tagIds": [tags[0]["id"]]}
    filtered, count = await statements_of(api, document, {"first": size, "filter": flt})
    assert 0 < len(filtered["customers"]["nodes"]) <= size
    assert count == with_lookup(api, WALKED_STATEMENTS)


async def test_customer_detail_costs_one_statement_and_the_lookup(uncached_api: Api) -> None:
    api = uncached_api
    await build_customers(api, 3)
    first = data_of(await post_graphql(api, "{ customers(first: 1) { nodes { id } } }", as_=FULL))
    customer = first["customers"]["nodes"][0]["id"]
    document = (QUERIES / "customer_detail.graphql").read_text()
    detail, count = await statements_of(api, document, {"id": customer})
    subscriptions = detail["customer"]["subscriptions"]
    assert len(subscriptions) == 2 and all(s["licenses"] and s["invoices"] for s in subscriptions)
    assert all(s["orders"] and s["tags"] for s in subscriptions)
    assert detail["customer"]["tags"] and detail["customer"]["partnerAdmins"]
    assert count == with_lookup(api, DETAIL_STATEMENTS)


async def test_the_relationship_statements_answer_what_the_loaders_answer(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-statement detail (JSON built by the database) against the per-relationship
    loaders, which answer a directory page with the detail's selection, and which answer the
    detail too when graph.detail leaves every field to them: every value, type and order."""
    api = uncached_api
    await build_customers(api, 4)
    document = (QUERIES / "customer_detail.graphql").read_text()
    selection = document[document.index("customer(id: $id) {") + len("customer(id: $id) ") :]
    selection = selection[: selection.rindex("}")].strip()
    page_document = "{ customers(first: 10) { nodes " + selection + " } }"

    async def answers() -> tuple[Any, list[Any], list[int]]:
        page, _ = await statements_of(api, page_document, {})
        nodes = page["customers"]["nodes"]
        details = [await statements_of(api, document, {"id": n["id"]}) for n in nodes]
        return nodes, [d for d, _ in details], [count for _, count in details]

    await post_graphql(api, "{ tags { id } }", as_=FULL)  # the first request starts the app
    nodes, details, statements = await answers()
    assert len(nodes) == 4 and statements == [with_lookup(api, DETAIL_STATEMENTS)] * 4
    assert all(n["subscriptions"] and n["tags"] and n["partnerAdmins"] for n in nodes)
    assert [d["customer"] for d in details] == nodes

    def to_the_loaders(ctx: Any, fields: Any, relations: Any, parts: Any) -> Any:
        return [], [], [f for f in parts if any(s.name == f for s in fields)]

    monkeypatch.setattr(detail, "_plan", to_the_loaders)
    monkeypatch.setattr(detail, "_plans", detail._make_plans)  # not the plans kept from above
    loaded_nodes, loaded_details, loaded_statements = await answers()
    assert all(count > 10 for count in loaded_statements)  # the loaders did answer
    assert loaded_nodes == nodes
    assert loaded_details == details


async def test_a_cached_directory_page_costs_only_the_token_lookup(api: Api) -> None:
    await build_customers(api, 10)
    document = (QUERIES / "directory_page.graphql").read_text()
    await statements_of(api, document, {"first": 10})
    _, count = await statements_of(api, document, {"first": 10})
    assert count == 1


async def test_the_license_dashboard_costs_a_constant_eight_statements(uncached_api: Api) -> None:
    api = uncached_api
    await build_customers(api, 5)
    document = (QUERIES / "license_dashboard.graphql").read_text()
    # the first also starts the app, and reads the medians and their window
    await statements_of(api, document, {"product": "CALLING"})
    dashboard, count = await statements_of(api, document, {"product": "MEETINGS"})
    assert dashboard["licenseKpis"]["totalCustomers"] == 5
    assert len(dashboard["licenseAnalytics"]["distributionTrend"]) == 13
    assert count == DASHBOARD_STATEMENTS


async def test_without_the_medians_memo_the_dashboard_reads_them_each_time(
    fresh_database: Database,
) -> None:
    await fresh_database.empty()
    async with api_over(fresh_database, response_cache_seconds=0, medians_memo=False) as api:
        await build_customers(api, 5)
        document = (QUERIES / "license_dashboard.graphql").read_text()
        await statements_of(api, document, {"product": "CALLING"})
        for _ in range(2):
            _, count = await statements_of(api, document, {"product": "MEETINGS"})
            assert count == DASHBOARD_STATEMENTS + MEDIANS_STATEMENTS
