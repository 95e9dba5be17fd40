"""A failing field fails alone (issue 15, finding 5).

Sections of ``licenseAnalytics`` share one summary statement. graphql-core cancels the pending
siblings of a field whose error propagates, and that cancellation used to reach the shared work
itself: the other awaiters got ``CancelledError``, which escaped execution as an HTTP 500 in
plain text. Shared work is now awaited through a shield (``Context.shared``, loaders), fields
whose arguments can be refused are nullable, and whatever still escapes execution is answered
as JSON with the request id.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from db.queries import analytics as analytics_queries
from graph.loaders import Loader
from tests.conftest import NOW, Api
from tests.helpers import Factory, error_codes, token_for

DAY = timedelta(days=1)
FULL = "full@acme.example"
PA = "partner@acme.example"
EXPIRE_FIRST = """{ licenseAnalytics(product: MEETINGS) {
  aboutToExpire { kpis { expiringCustomers } rows(first: 0) { totalCount } }
  aboutToRenew { kpis { renewingCustomers } } } }"""
RENEW_FIRST = """{ licenseAnalytics(product: MEETINGS) {
  aboutToRenew { kpis { renewingCustomers } }
  aboutToExpire { kpis { expiringCustomers } rows(first: 0) { totalCount } } } }"""
ALIASES = """{
  a: licenseAnalytics(product: MEETINGS) { aboutToRenew { kpis { renewingCustomers } } }
  b: licenseAnalytics(product: MEETINGS) {
    aboutToExpire { rows(first: 101) { totalCount } }
    overage { rows(after: "forged") { totalCount } }
  }
  c: licenseAnalytics(product: MEETINGS) { aboutToExpire { kpis { expiringCustomers } } }
}"""
CALLING = """{ callingAnalytics {
  qualityTrend(weeks: 0) { weekStart }
  quality { totalCalls }
  usersByVolumeTrend(weeks: 53) { weekStart }
  customersUsage(first: 0) { totalCount }
  customersQuality(first: 2) { totalCount }
} }"""


async def seed(api: Api) -> None:
    """Two customers renewing within 90 days and one expiring without auto-renew."""
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    await f.admin(partner, PA, "PARTNER_ADMIN")
    for n, auto_renew in enumerate([True, True, False]):
        await f.subscription(
            await f.customer(partner, f"C{n}"),
            start=NOW - 40 * DAY,
            end=NOW + 30 * DAY,
            auto_renew=auto_renew,
        )


async def post(api: Api, query: str) -> tuple[int, str, dict[str, Any]]:
    token = await token_for(api, FULL)
    response = await api.client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.headers["content-type"], response.json()


@pytest.mark.parametrize("query", [EXPIRE_FIRST, RENEW_FIRST], ids=["expire", "renew"])
async def test_a_refused_section_page_leaves_its_siblings_answering(api: Api, query: str) -> None:
    # given
    await seed(api)
    # when
    status, media, body = await post(api, query)
    # then: the page alone is null, with its coded error; every KPI answers
    assert (status, media) == (200, "application/json"), body
    assert error_codes(body) == ["INVALID_PAGE_SIZE"]
    assert body["errors"][0]["path"] == ["licenseAnalytics", "aboutToExpire", "rows"]
    analytics = body["data"]["licenseAnalytics"]
    assert analytics["aboutToRenew"] == {"kpis": {"renewingCustomers": 2}}
    assert analytics["aboutToExpire"] == {"kpis": {"expiringCustomers": 1}, "rows": None}


async def test_aliases_share_their_summaries_and_fail_alone(api: Api) -> None:
    # given
    await seed(api)
    # when
    status, _, body = await post(api, ALIASES)
    # then
    assert status == 200, body
    assert sorted(error_codes(body)) == ["INVALID_CURSOR", "INVALID_PAGE_SIZE"]
    data = body["data"]
    assert data["a"] == {"aboutToRenew": {"kpis": {"renewingCustomers": 2}}}
    assert data["b"] == {"aboutToExpire": {"rows": None}, "overage": {"rows": None}}
    assert data["c"] == {"aboutToExpire": {"kpis": {"expiringCustomers": 1}}}


async def test_refused_calling_arguments_null_only_their_fields(api: Api) -> None:
    # given
    await seed(api)
    # when
    status, _, body = await post(api, CALLING)
    # then
    assert status == 200, body
    assert sorted(error_codes(body)) == ["BAD_USER_INPUT", "BAD_USER_INPUT", "INVALID_PAGE_SIZE"]
    calling = body["data"]["callingAnalytics"]
    assert calling["quality"] == {"totalCalls": 0}
    assert calling["customersQuality"] == {"totalCount": 0}
    assert [calling[k] for k in ("qualityTrend", "usersByVolumeTrend", "customersUsage")] == [
        None,
        None,
        None,
    ]


async def test_an_error_escaping_execution_is_answered_as_json_with_the_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the shared license figures statement (one per request for the whole partner) is
    # cancelled from inside (as a cancelled sibling's shared task used to be)
    await seed(api)

    async def cancelled(*_: Any, **__: Any) -> Any:
        raise asyncio.CancelledError

    monkeypatch.setattr(analytics_queries, "partner_figures", cancelled)
    token = await token_for(api, FULL)
    # when
    response = await api.client.post(
        "/graphql",
        json={"query": RENEW_FIRST},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "escaped-1"},
    )
    # then
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert body["errors"][0]["extensions"]["requestId"] == "escaped-1"
    assert response.headers["x-request-id"] == "escaped-1"
    # and the next request is served normally
    monkeypatch.undo()
    status, _, body = await post(api, RENEW_FIRST)
    assert status == 200 and body["data"]["licenseAnalytics"]["aboutToRenew"], body


async def test_a_loader_value_survives_the_cancellation_of_one_awaiter() -> None:
    # given: two fields wait for the same key of one loader
    release = asyncio.Event()

    async def batch(keys: list[int]) -> list[str]:
        await release.wait()
        return [f"value {k}" for k in keys]

    loader: Loader[str] = Loader(batch)

    async def field() -> str:
        return await loader.load(1)

    cancelled, surviving = asyncio.ensure_future(field()), asyncio.ensure_future(field())
    await asyncio.sleep(0)
    # when: graphql-core cancels one (a failing sibling), then the statement answers
    cancelled.cancel()
    await asyncio.sleep(0)
    release.set()
    # then
    assert await surviving == "value 1"
    assert cancelled.cancelled()
    assert await loader.load(1) == "value 1"


REFUSED_ROOT_WITH_BUSY_SIBLINGS = """{
  callingAnalytics { quality { poorPercent } qualityByEndpoint { poorCalls } }
  policyRules { builtIn }
  licenseAnalytics(product: CALLING) {
    aboutToRenew { a: rows(first: 2) { totalCount } b: rows { totalCount } }
  }
}"""


async def test_a_refused_root_field_lets_its_siblings_finish_their_statements(api: Api) -> None:
    """Found by the generated-document leg: a refused non-null root field nulls ``data`` and
    graphql-core cancelled the siblings mid-statement on the request's one session, which broke
    the connection (PostgreSQL: the session's close failed after the answer was sent)."""
    # given: a partner admin, who may not read policy rules, and busy siblings
    await seed(api)
    token = await token_for(api, PA)
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        # when
        response = await api.client.post(
            "/graphql", json={"query": REFUSED_ROOT_WITH_BUSY_SIBLINGS}, headers=headers
        )
        # then: an ordinary answer (nothing escapes the app), and the next request works
        assert response.status_code == 200, response.text
        assert error_codes(response.json()) == ["FORBIDDEN"]
        follow = await api.client.post(
            "/graphql", json={"query": "{ viewer { email } }"}, headers=headers
        )
        assert follow.json()["data"]["viewer"]["email"] == PA


def test_sibling_fields_settle_instead_of_being_cancelled() -> None:
    from graphql.execution import executor

    from graph.settle import gather_settling

    assert executor.gather_with_cancel is gather_settling

    async def scenario() -> list[str]:
        finished: list[str] = []

        async def fails() -> None:
            await asyncio.sleep(0)
            raise ValueError("refused")

        async def busy() -> None:
            await asyncio.sleep(0.01)
            finished.append("busy")

        with pytest.raises(ValueError, match="refused"):
            await gather_settling(fails(), busy())
        return finished

    assert asyncio.run(scenario()) == ["busy"]
