"""`GET /export/customers.csv` under the rules of GraphQL (issue 14 finding 2, issue 15).

Each column is compared with what the same role reads through GraphQL for the same customers:
a column that mirrors a relationship field the role may not read (for some or all customers) is
empty exactly where GraphQL shows an empty list. Cells that would start a spreadsheet formula
are neutralised. Every page is charged to the token's cost budget: 429 with ``Retry-After``
before anything streams, a paced stream when the budget runs out midway.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import insert, select

import graph.export
from db.models import Admin, Customer
from graph.app import PartnerHub
from graph.auth.permissions import Obj
from graph.ids import to_global_id
from graph.loaders import Loaders
from graph.types.customers import CUSTOMER_RELATIONS
from tests.authz_support import AuthzFactory, create_admin, create_role
from tests.conftest import NOW, Api, StatementCounter, app_client, make_settings
from tests.helpers import data_of, post_graphql, token_for
from tests.test_export import API_QUERY, COLUMNS
from tests.test_tags import ADD_TO_CUSTOMERS, CREATE_TAG
from tests.test_trials import START_TRIAL, for_new

FULL = "full@acme.example"
DAY = timedelta(days=1)
SUBSCRIPTION_COLUMNS = ("nearest_end_date", "licenses_purchased", "licenses_assigned")

# Custom roles that allow a kind but deny (or narrow) a sub-kind, and the built-in ones.
CUSTOM_ROLES: dict[str, list[tuple[str, str, str]]] = {
    "CUSTOMERS_ONLY": [("customer", "read", "all")],
    "SUBSCRIPTIONS_ASSIGNED": [
        ("customer", "read", "all"),
        ("tag", "read", "all"),
        ("subscription", "read", "assigned"),
    ],
    "TAGS_ASSIGNED": [
        ("customer", "read", "all"),
        ("tag", "read", "assigned"),
        ("subscription", "read", "all"),
    ],
}
ROLES = [*CUSTOM_ROLES, "FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY_ADMIN", "SALES_ADMIN"]
ASSIGNED = ("Able Corp", "Charlie Ltd")  # assigned to every admin below


def email_of(role: str) -> str:
    return FULL if role == "FULL_ADMIN" else f"{role.lower()}@acme.example"


@pytest.fixture
async def acme(api: Api) -> dict[str, int]:
    """Acme: four customers, each with tags and an in-force subscription, two of them assigned
    to an admin of each role; Globex beside it."""
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(globex, "full@globex.example", "FULL_ADMIN")
    gold, silver = await f.tag(partner, "gold"), await f.tag(partner, "silver")
    customers: dict[str, int] = {}
    plan = {
        "Able Corp": ([gold], [(100, [("MEETINGS", 10, 5, 3)])]),
        "Baker Inc": ([silver], [(30, [("CALLING", 20, 7, 1)])]),
        "Charlie Ltd": ([gold, silver], [(60, [("MEETINGS", 4, 4, 4)]), (200, [])]),
        "Delta Co": ([gold], [(10, [("CALLING", 3, 1, 0), ("MEETINGS", 2, 2, 2)])]),
    }
    for name, (tags, subs) in plan.items():
        pk = customers[name] = await f.customer(partner, name)
        for tag in tags:
            await f.tag_customer(partner, pk, tag)
        for days, lines in subs:
            await f.subscription(pk, end=NOW + days * DAY, lines=lines)
    for name, rules in CUSTOM_ROLES.items():
        assert data_of(await create_role(api, FULL, name, rules))["createRole"]["userErrors"] == []
    for role in ROLES[len(CUSTOM_ROLES) :]:
        if role != "FULL_ADMIN":
            await f.admin(partner, email_of(role), role)
    for role in CUSTOM_ROLES:
        await create_admin(api, FULL, email_of(role), role)
    async with api.engine.connect() as conn:
        admins = dict((await conn.execute(select(Admin.email, Admin.id))).all())
    for role in ROLES:
        for name in ASSIGNED:
            await f.assign(customers[name], admins[email_of(role)])
    return customers


async def export(api: Api, as_: str, params: Any = None) -> httpx.Response:
    token = await token_for(api, as_)
    return await api.client.get(
        "/export/customers.csv", params=params, headers={"Authorization": f"Bearer {token}"}
    )


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def by_name(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in rows}


async def graphql_view(api: Api, as_: str) -> dict[str, dict[str, str]]:
    """The columns as the role reads them through GraphQL: a relationship the role may not read
    is an empty list there, an empty cell here (every customer has tags and subscriptions)."""
    variables = {"first": 100, "after": None, "filter": None, "search": None, "orderBy": "NAME_ASC"}
    nodes = data_of(await post_graphql(api, API_QUERY, variables, as_=as_))["customers"]["nodes"]
    out = {}
    for c in nodes:
        in_force = [
            s
            for s in c["subscriptions"]
            if s["state"] == "ACTIVE"
            and datetime.fromisoformat(s["startDate"]) <= NOW < datetime.fromisoformat(s["endDate"])
        ]
        lines = [line for s in in_force for line in s["licenses"]]
        ends = [datetime.fromisoformat(s["endDate"]) for s in in_force]
        readable = bool(c["subscriptions"])
        out[c["name"]] = {
            "name": c["name"],
            "external_id": c["externalId"],
            "managed_by": c["managedBy"],
            "statuses": ";".join(c["statuses"]),
            "products": ";".join(c["products"]),
            "tags": ";".join(t["name"] for t in c["tags"]),
            "nearest_end_date": min(ends).isoformat() if readable and ends else "",
            "licenses_purchased": str(sum(x["purchased"] for x in lines)) if readable else "",
            "licenses_assigned": str(sum(x["assigned"] for x in lines)) if readable else "",
            "created_at": datetime.fromisoformat(c["createdAt"]).isoformat(),
        }
    return out


# --- finding 2: each column under its GraphQL field's rule -----------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_every_column_is_what_the_same_role_reads_through_graphql(
    api: Api, acme: dict[str, int], role: str
) -> None:
    # when
    response = await export(api, email_of(role))

    # then
    assert response.status_code == 200, response.text
    header, *rows = parse(response.text)
    assert header == COLUMNS
    assert by_name(rows) == await graphql_view(api, email_of(role))
    assert len(rows) == (2 if role in ("PARTNER_ADMIN", "SALES_ADMIN") else 4)


async def test_customer_read_without_tag_or_subscription_read_leaves_those_columns_empty(
    api: Api, acme: dict[str, int]
) -> None:
    # given: what a full admin gets (every one of those cells filled)
    full = by_name(parse((await export(api, FULL)).text)[1:])
    assert all(row[c] for row in full.values() for c in ("tags", *SUBSCRIPTION_COLUMNS))

    # when
    rows = by_name(parse((await export(api, email_of("CUSTOMERS_ONLY"))).text)[1:])

    # then: tags and the subscription figures are empty, the customer's own fields are not
    assert set(rows) == set(full)
    for name, row in rows.items():
        assert [row[c] for c in ("tags", *SUBSCRIPTION_COLUMNS)] == ["", "", "", ""], name
        kept = ("name", "external_id", "managed_by", "statuses", "products", "created_at")
        assert {c: row[c] for c in kept} == {c: full[name][c] for c in kept}


async def test_an_assigned_subscription_scope_fills_those_columns_for_assigned_customers_only(
    api: Api, acme: dict[str, int]
) -> None:
    # given
    full = by_name(parse((await export(api, FULL)).text)[1:])

    # when: customer read all, subscription read assigned
    rows = by_name(parse((await export(api, email_of("SUBSCRIPTIONS_ASSIGNED"))).text)[1:])

    # then
    assert set(rows) == set(full)
    for name, row in rows.items():
        expected = full[name] if name in ASSIGNED else dict.fromkeys(SUBSCRIPTION_COLUMNS, "")
        assert {c: row[c] for c in SUBSCRIPTION_COLUMNS} == {
            c: expected[c] for c in SUBSCRIPTION_COLUMNS
        }, name
        assert row["tags"] == full[name]["tags"]
    assert rows["Charlie Ltd"]["licenses_purchased"] == "4"


async def test_an_assigned_tag_scope_fills_tags_for_assigned_customers_only(
    api: Api, acme: dict[str, int]
) -> None:
    # when
    rows = by_name(parse((await export(api, email_of("TAGS_ASSIGNED"))).text)[1:])

    # then
    assert {name: row["tags"] for name, row in rows.items()} == {
        "Able Corp": "gold",
        "Baker Inc": "",
        "Charlie Ltd": "gold;silver",
        "Delta Co": "",
    }
    assert rows["Baker Inc"]["licenses_purchased"] == "20"


async def test_every_column_names_the_graphql_field_whose_rule_it_follows() -> None:
    # A column added without an entry, or naming a field that is not a relationship of
    # Customer, would be produced without its field's authorization.
    assert list(graph.export.MIRRORS) == COLUMNS == graph.export.COLUMNS
    for field in graph.export.MIRRORS.values():
        assert field is None or field in CUSTOMER_RELATIONS, field
    # The rule each relationship's loader applies (graph.loaders), which the columns follow (built
    # inside a running loop, as the app builds them: a DataLoader asks for the current loop).
    settings = SimpleNamespace(max_tags_per_customer=50)
    loaders = Loaders(cast(Any, SimpleNamespace(settings=settings)))
    assert CUSTOMER_RELATIONS["tags"].loader(loaders).rule[0] is Obj.TAG
    assert CUSTOMER_RELATIONS["subscriptions"].loader(loaders).rule[0] is Obj.SUBSCRIPTION


async def test_a_role_without_customer_read_gets_403_and_spends_nothing(
    api: Api, acme: dict[str, int]
) -> None:
    # given
    assert data_of(await create_role(api, FULL, "TAGS_ONLY", [("tag", "read", "all")]))
    await create_admin(api, FULL, "tags@acme.example", "TAGS_ONLY")
    async with metered(api, per_minute=100) as (limited, _hub):
        # when
        refused = [await export(limited, "tags@acme.example") for _ in range(3)]

        # then: refused for authorization every time, never for the rate
        assert [r.status_code for r in refused] == [403, 403, 403]
        assert refused[-1].json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# --- CSV injection ---------------------------------------------------------------------------

PLANTED = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]


async def test_cells_that_would_start_a_formula_are_neutralised(api: Api) -> None:
    # given: customer names and tags planted through the API, and cells starting with a tab or a
    # carriage return written below it (the API trims those)
    f = AuthzFactory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    for i, name in enumerate(PLANTED):
        body = await post_graphql(
            api, START_TRIAL, {"input": for_new(name, f"a{i}@x.example", ("MEETINGS", 5))}, as_=FULL
        )
        assert data_of(body)["startTrial"]["userErrors"] == []
    plain = await f.customer(partner, "Plain = Corp")
    for raw in ("\tTabbed", "\rReturned"):
        await f.customer(partner, raw)
    tag_ids = []
    for name in ["plain", *PLANTED]:
        body = await post_graphql(api, CREATE_TAG, {"input": {"name": name[:25]}}, as_=FULL)
        tag_ids.append(data_of(body)["createTag"]["tag"]["id"])
    await post_graphql(
        api,
        ADD_TO_CUSTOMERS,
        {"input": {"customerIds": [to_global_id("Customer", plain)], "tagIds": tag_ids}},
        as_=FULL,
    )
    raw_tab = await f.tag(partner, "\tcmd")
    await f.tag_customer(partner, plain, raw_tab)

    # when
    response = await export(api, FULL)

    # then: no cell, and no tag inside the tags cell, starts like a formula
    header, *rows = parse(response.text)
    assert header == COLUMNS
    for row in rows:
        for column, cell in zip(COLUMNS, row, strict=True):
            assert not cell.startswith(graph.export.FORMULA_STARTS), (column, cell)
        for tag in row[COLUMNS.index("tags")].split(";"):
            assert not tag.startswith(graph.export.FORMULA_STARTS), tag
    names = sorted(row[0] for row in rows)
    assert names == sorted(
        ["Plain = Corp", "'\tTabbed", "'\rReturned", *("'" + n for n in PLANTED)]
    )
    plain_row = next(row for row in rows if row[0] == "Plain = Corp")
    tags = plain_row[COLUMNS.index("tags")].split(";")
    assert sorted(tags) == sorted(["plain", "'\tcmd", *("'" + n[:25] for n in PLANTED)])
    # the header is unchanged bytes; text cells are quoted, the numbers the export computes not
    lines = response.text.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert all(line.startswith('"') for line in response.text.split("\r\n")[1:] if line)
    trial_rows = [line for line in response.text.split("\r\n") if line.startswith("\"'=HYP")]
    assert len(trial_rows) == 1 and re.search(r',5,\d+,"\d{4}-', trial_rows[0]), trial_rows


# --- metering (issue 15 finding 2) ----------------------------------------------------------

COST_QUERY = """
query($n: Int!) { customers(first: $n) { nodes {
  name externalId managedBy statuses products createdAt
  tags { name }
  subscriptions { state startDate endDate licenses { purchased assigned } }
} } }
"""


# A minute's budget: one page of 6 rows (6 * ROW_COST points) and 4 points to spare.
BUDGET = 6 * graph.export.ROW_COST + 4


@asynccontextmanager
async def metered(api: Api, per_minute: int) -> AsyncIterator[tuple[Api, PartnerHub]]:
    """The app over the same database with a small ``cost_per_minute``, and its hub."""
    settings = make_settings(api.db, cost_per_minute=per_minute)
    async with app_client(settings, api.engine) as (app, client):
        counter = StatementCounter(api.engine)
        try:
            yield Api(db=api.db, settings=settings, client=client, counter=counter), app.state.hub
        finally:
            counter.close()


async def test_a_row_costs_what_graphql_charges_for_the_customer_it_mirrors(
    api: Api, acme: dict[str, int]
) -> None:
    # when: the calculated cost of one and of two customers with the row's fields
    costs = []
    for n in (1, 2):
        body = await post_graphql(api, COST_QUERY, {"n": n}, as_=FULL)
        costs.append(body["extensions"]["cost"]["requestedQueryCost"])

    # then
    assert costs[1] - costs[0] == graph.export.ROW_COST


async def test_exports_beyond_the_budget_get_429_with_retry_after(
    api: Api, acme: dict[str, int]
) -> None:
    async with metered(api, per_minute=BUDGET) as (limited, _hub):
        # given: a page (BUDGET // ROW_COST rows) costs nearly the whole minute's budget
        assert graph.export.page_rows(limited.settings) == BUDGET // graph.export.ROW_COST

        # when
        first = await export(limited, FULL)
        second = await export(limited, FULL)
        other = await export(limited, email_of("READ_ONLY_ADMIN"))

        # then: the first is served, the second refused before any byte of CSV
        assert first.status_code == 200 and len(parse(first.text)) == 5
        assert second.status_code == 429
        assert second.headers["content-type"].startswith("application/json")
        retry = int(second.headers["retry-after"])
        assert 1 <= retry <= 60
        error = second.json()["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 0 < error["extensions"]["retryAfterSeconds"] <= retry
        assert "name,external_id" not in second.text
        # the budget is the token's: another admin's token is not affected
        assert other.status_code == 200
        # and GraphQL spends from the same bucket
        throttled = await limited.client.post(
            "/graphql",
            json={"query": COST_QUERY, "variables": {"n": 5}},
            headers={"Authorization": f"Bearer {await token_for(limited, FULL)}"},
        )
        assert throttled.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


class SteppedClock:
    """``CostLimiter``'s contract (``spend``) over a clock that only ``sleep`` moves."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.now = 0.0
        self.levels: dict[int, tuple[float, float]] = {}
        self.spent: list[int] = []
        self.sleeps: list[float] = []

    async def spend(self, token_id: int, cost: int) -> tuple[bool, float, float]:
        level, stamp = self.levels.get(token_id, (self.capacity, self.now))
        level = min(self.capacity, level + (self.now - stamp) * self.rate)
        if cost > level:
            self.levels[token_id] = (level, self.now)
            return False, level, (cost - level) / self.rate
        self.levels[token_id] = (level - cost, self.now)
        self.spent.append(cost)
        return True, level - cost, 0.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def close(self) -> None:
        """Nothing to close (the hub's ``stop`` closes its budget)."""


async def test_a_stream_that_runs_out_of_budget_waits_and_completes(
    api: Api, acme: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with metered(api, per_minute=BUDGET) as (limited, hub):
        # given: pages of 6 rows at 6 * ROW_COST points, a budget of that + 4 a minute,
        # 4 customers + 10 more
        async with api.engine.begin() as conn:
            partner = (
                await conn.execute(
                    select(Customer.partner_id).where(Customer.id == acme["Able Corp"])
                )
            ).scalar_one()
            await conn.execute(
                insert(Customer),
                [
                    {
                        "partner_id": partner,
                        "external_id": f"EXTRA-{i:02d}",
                        "name": f"Extra {i:02d}",
                        "name_key": f"extra {i:02d}",
                        "created_at": NOW,
                        "managed_by": "EXTERNAL_ADMIN",
                    }
                    for i in range(10)
                ],
            )
            extra = (
                await conn.execute(select(Customer.id).where(Customer.name.like("Extra%")))
            ).scalars()
        await AuthzFactory(api.engine).refresh(*extra)
        clock = SteppedClock(BUDGET)
        services = await hub.start()
        await services.limiter.close()  # the budget replaced: the hub's stop closes the clock
        monkeypatch.setattr(services, "limiter", clock)
        monkeypatch.setattr(graph.export, "pause", clock.sleep)

        # when
        response = await export(limited, FULL)

        # then: three pages, each paid for in full; the second and third waited for the budget
        assert response.status_code == 200
        names = [row[0] for row in parse(response.text)[1:]]
        assert names == sorted([*acme, *(f"Extra {i:02d}" for i in range(10))])
        page = 6 * graph.export.ROW_COST
        assert clock.spent == [page, page, page]
        # (page - 4) / (BUDGET / 60) s, then page / (BUDGET / 60) s; float rounding may add
        # a retry after a wait of a few nanoseconds
        waits = [(page - 4) / (BUDGET / 60), page / (BUDGET / 60)]
        assert [round(s, 1) for s in clock.sleeps if s > 0.001] == [round(w, 1) for w in waits]
        assert round(sum(clock.sleeps), 3) == round(sum(waits), 3)
