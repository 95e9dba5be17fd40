"""The cost model (issue 15, findings 1 and 2): fragments walked like fields, depth counted through
spreads, variable defaults read, unpaged lists bounded by their caps, introspection and
analytics priced by what they compute, and actualQueryCost never above requestedQueryCost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, get_introspection_query
from sqlalchemy import insert

from db.models import Invoice, Order, SubscriptionTag, Tag
from db.settings import Settings
from graph import cost_model as cm
from graph.ids import to_global_id
from graph.schema import build_schema
from tests.conftest import NOW, Api, api_over
from tests.helpers import Factory, data_of, error_codes, post_graphql, token_for

FULL = "full@acme.example"
BENCH = Path(__file__).resolve().parent.parent / "bench" / "queries"
# A customer with everything below it: 1 + subscriptions 10 * (1 + licenses 10 + invoices 10
# + orders 10 + tags 20) + tags 20 + partner admins 10 * (1 + admin 1).
DEEP = (
    "nodes { name subscriptions { subscriptionId licenses { product } invoices { status } "
    "orders { status } tags { name } } tags { name } partnerAdmins { role admin { name } } }"
)
PER_CUSTOMER = 1 + 10 * (1 + 10 + 10 + 10 + 20) + 20 + 10 * 2


async def world(api: Api, subscriptions: int = 2) -> dict[str, int]:
    """Acme with a full admin and two customers: Zeta with ``subscriptions`` subscriptions (each
    with a line, an invoice, an order and a tag) and the admin assigned, Yara with nothing."""
    f = Factory(api.engine)
    partner = await f.partner()
    admin = await f.admin(partner, FULL, "FULL_ADMIN")
    zeta = await f.customer(partner, "Zeta Corp")
    await f.customer(partner, "Yara Ltd")
    await f.assign(zeta, admin)
    async with api.engine.begin() as conn:
        tag = (
            await conn.execute(
                insert(Tag).values(partner_id=partner, name="vip", name_key="vip", created_at=NOW)
            )
        ).inserted_primary_key[0]
    for n in range(subscriptions):
        sub = await f.subscription(zeta, start=NOW - timedelta(days=100 + n))
        async with api.engine.begin() as conn:
            await conn.execute(
                insert(Invoice).values(
                    partner_id=partner,
                    subscription_id=sub,
                    invoice_number=f"INV-{n}",
                    issued_at=NOW,
                    due_at=NOW,
                    amount_cents=100,
                    currency="USD",
                    status="PAID",
                )
            )
            await conn.execute(
                insert(Order).values(
                    partner_id=partner,
                    subscription_id=sub,
                    order_number=f"ORD-{n}",
                    placed_at=NOW,
                    action="NEW",
                    description="New",
                    status="COMPLETED",
                )
            )
            await conn.execute(
                insert(SubscriptionTag).values(
                    subscription_id=sub, tag_id=tag, partner_id=partner, created_at=NOW
                )
            )
    return {"partner": partner, "admin": admin, "zeta": zeta}


def cost_of(body: dict[str, Any]) -> dict[str, Any]:
    cost: dict[str, Any] = body["extensions"]["cost"]
    return cost


def aliases(count: int, field: str) -> str:
    return " ".join(f"a{i}: {field}" for i in range(count))


# --- Finding 1: fragments -------------------------------------------------------------------


async def test_nested_fragments_are_priced_like_the_same_selection_inline(api: Api) -> None:
    # given: the attack of finding 1: 52 nested spreads on Query around 20 aliases of 100
    # customers with everything below them, and the same selection written inline
    await world(api)
    selection = aliases(20, f"customers(first: 100) {{ {DEEP} }}")
    inline = f"query Inline {{ {selection} }}"
    nested = (
        "query Nested { ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(52))
        + f" fragment F52 on Query {{ {selection} }}"
    )
    # when
    plain = await post_graphql(api, inline, as_=FULL)
    with api.counter.counting() as statements:
        through = await post_graphql(api, nested, as_=FULL)
    # then: both refused at the same price, before any resolver (only the token lookup ran)
    assert error_codes(plain) == ["QUERY_TOO_COSTLY"]
    assert error_codes(through) == ["QUERY_TOO_COSTLY"]
    price = 20 * (1 + 100 * PER_CUSTOMER)
    assert plain["errors"][0]["extensions"]["cost"] == price
    assert through["errors"][0]["extensions"]["cost"] == price
    assert through.get("data") is None
    assert len(statements) == 1, statements


async def test_inline_fragments_and_spreads_inside_fields_count(api: Api) -> None:
    # given: the same page written three ways
    await world(api)
    flat = "query A { customers(first: 7) { nodes { tags { name } } } }"
    inline = (
        "query B { customers(first: 7) { ... on CustomerConnection { nodes { ... { tags { name } } "
        "} } } }"
    )
    spread = (
        "query C { customers(first: 7) { ...Page } } "
        "fragment Page on CustomerConnection { nodes { ...Row } } "
        "fragment Row on Customer { tags { name } }"
    )
    # when
    costs = [
        cost_of(await post_graphql(api, q, as_=FULL))["requestedQueryCost"]
        for q in (flat, inline, spread)
    ]
    # then: 1 page + 7 * (customer 1 + 20 tags)
    assert costs == [1 + 7 * 21] * 3


async def test_doubling_spreads_are_priced_without_expanding_them(api: Api) -> None:
    # given: each fragment spreads the next one twice: 2**40 copies of the field once expanded
    await world(api)
    document = (
        "query Doubling { ...D0 } "
        + " ".join(f"fragment D{i} on Query {{ ...D{i + 1} ...D{i + 1} }}" for i in range(40))
        + " fragment D40 on Query { viewer { partner { name } } }"
    )
    # when
    body = await post_graphql(api, document, as_=FULL)
    # then: priced (and refused) at the expanded price rather than walked copy by copy
    assert error_codes(body) == ["QUERY_TOO_COSTLY"]
    assert body["errors"][0]["extensions"]["cost"] == 2**40 * 2
    # and 80 levels (2**81 objects) are reported at the largest cost JSON carries exactly
    document = (
        "query Doubling { ...D0 } "
        + " ".join(f"fragment D{i} on Query {{ ...D{i + 1} ...D{i + 1} }}" for i in range(80))
        + " fragment D80 on Query { viewer { partner { name } } }"
    )
    body = await post_graphql(api, document, as_=FULL)
    assert error_codes(body) == ["QUERY_TOO_COSTLY"]
    assert body["errors"][0]["extensions"]["cost"] == cm.MAX_COST


async def test_fragment_cycles_and_unknown_fragments_get_coded_errors(api: Api) -> None:
    await world(api)
    cyclic = (
        "query C { ...A } fragment A on Query { viewer { id } ...B } fragment B on Query { ...A }"
    )
    unknown = "query U { viewer { ...Missing } }"
    for document in (cyclic, unknown):
        body = await post_graphql(api, document, as_=FULL)
        assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
        assert body.get("data") is None


async def test_depth_counts_fields_reached_through_fragments(api: Api) -> None:
    # given: a depth limit of 3
    await world(api)
    deep = (
        "query Deep { ...A } fragment A on Query { customers(first: 1) { ...B } } "
        "fragment B on CustomerConnection { nodes { ... on Customer { subscriptions { ...C } } } } "
        "fragment C on Subscription { licenses { product } }"
    )
    within = (
        "query Ok { ...A } fragment A on Query { viewer { ...B } } "
        "fragment B on Admin { partner { name } }"
    )
    async with api_over(api.db, max_query_depth=3) as limited:
        data_of(await post_graphql(limited, "query Warm { viewer { id } }", as_=FULL))
        # when
        with limited.counter.counting() as statements:
            refused = await post_graphql(limited, deep, as_=FULL)
        allowed = await post_graphql(limited, within, as_=FULL)
        # then: customers > nodes > subscriptions > licenses is depth 4
        assert error_codes(refused) == ["QUERY_TOO_COMPLEX"]
        assert "depth of 3" in refused["errors"][0]["message"]
        assert "depth 4" in refused["errors"][0]["message"]
        assert refused.get("data") is None
        assert len(statements) <= 1
        assert data_of(allowed)["viewer"]["partner"]["name"] == "Acme Partners"


# --- Finding 2: defaults, lists, introspection, analytics --------------------------------------


async def test_a_variables_default_is_read(api: Api) -> None:
    await world(api)
    by_default = "query D($n: Int = 100) { customers(first: $n) { nodes { id } } }"
    explicit = "query E { customers(first: 100) { nodes { id } } }"
    given = await post_graphql(api, by_default, {"n": 3}, as_=FULL)
    defaulted = await post_graphql(api, by_default, as_=FULL)
    literal = await post_graphql(api, explicit, as_=FULL)
    assert cost_of(defaulted)["requestedQueryCost"] == 1 + 100
    assert cost_of(literal)["requestedQueryCost"] == 1 + 100
    assert cost_of(given)["requestedQueryCost"] == 1 + 3


async def test_thirty_aliases_of_a_defaulted_page_are_refused(api: Api) -> None:
    await world(api)
    document = (
        "query D($n: Int = 100) { "
        + aliases(30, "customers(first: $n) { nodes { subscriptions { licenses { used } } } }")
        + " }"
    )
    body = await post_graphql(api, document, as_=FULL)
    assert error_codes(body) == ["QUERY_TOO_COSTLY"]
    assert body["errors"][0]["extensions"]["cost"] == 30 * (1 + 100 * (1 + 10 * (1 + 10)))


async def test_each_unpaged_list_is_priced_by_its_cap(api: Api) -> None:
    # given
    await world(api)
    lists = {
        "tags { name }": 20,  # max_tags_per_customer
        "subscriptions { id }": 10,
        "trials { id }": 10,
        "partnerAdmins { role }": 10,
        "subscriptions { licenses { product } }": 10 * (1 + 10),
        "subscriptions { invoices { status } }": 10 * (1 + 10),
        "subscriptions { orders { status } }": 10 * (1 + 10),
        "subscriptions { tags { name } }": 10 * (1 + 20),
    }
    for selection, below in lists.items():
        # when: 3 aliases of a page of 2
        document = (
            "query L { " + aliases(3, f"customers(first: 2) {{ nodes {{ {selection} }} }}") + " }"
        )
        body = await post_graphql(api, document, as_=FULL)
        # then
        assert cost_of(body)["requestedQueryCost"] == 3 * (1 + 2 * (1 + below)), selection


async def test_the_tag_cap_follows_the_setting(api: Api) -> None:
    await world(api)
    async with api_over(api.db, max_tags_per_customer=5) as limited:
        body = await post_graphql(
            limited, "query T { customers(first: 4) { nodes { tags { id } } } }", as_=FULL
        )
        assert cost_of(body)["requestedQueryCost"] == 1 + 4 * (1 + 5)


async def test_a_list_longer_than_its_cap_returns_the_cap(api: Api) -> None:
    # given: Zeta has 12 subscriptions, 2 more than MAX_SUBSCRIPTIONS_PER_CUSTOMER
    ids = await world(api, subscriptions=12)
    customer = to_global_id("Customer", ids["zeta"])
    document = "query C($id: ID!) { customer(id: $id) { subscriptions { subscriptionId } } }"
    listed = "query P { customers(first: 5) { nodes { name subscriptions { subscriptionId } } } }"
    # when
    one = await post_graphql(api, document, {"id": customer}, as_=FULL)
    page = await post_graphql(api, listed, as_=FULL)
    # then: the newest 10 on either path (the loader or the page's prefetch)
    subs = data_of(one)["customer"]["subscriptions"]
    assert len(subs) == cm.MAX_SUBSCRIPTIONS_PER_CUSTOMER
    zeta = next(n for n in data_of(page)["customers"]["nodes"] if n["name"] == "Zeta Corp")
    assert zeta["subscriptions"] == subs
    assert cost_of(one)["actualQueryCost"] == 1 + 10 <= cost_of(one)["requestedQueryCost"]


async def test_introspection_is_priced_by_what_it_enumerates(api: Api) -> None:
    # given: every field of every type with its arguments and type references
    await world(api)
    walk = (
        "__schema { types { name fields { name args { name } "
        "type { name ofType { name ofType { name } } } } } }"
    )
    # when
    full = await post_graphql(api, get_introspection_query(), as_=FULL)
    one = await post_graphql(api, f"query One {{ {walk} }}", as_=FULL)
    with api.counter.counting() as statements:
        many = await post_graphql(api, "query Many { " + aliases(30, walk) + " }", as_=FULL)
    # then: the usual introspection passes, priced at least one per type and field it lists
    assert "errors" not in full
    types = full["data"]["__schema"]["types"]
    fields = sum(len(t["fields"] or ()) for t in types)
    assert len(types) + fields < cost_of(full)["requestedQueryCost"] <= 50_000
    assert cost_of(full)["actualQueryCost"] <= cost_of(full)["requestedQueryCost"]
    # and one walk is priced by the types, fields and references it returns
    assert "errors" not in one
    assert cost_of(one)["requestedQueryCost"] >= len(types) + 3 * fields
    assert cost_of(one)["actualQueryCost"] <= cost_of(one)["requestedQueryCost"]
    # and 30 of them are refused before executing
    assert error_codes(many) == ["QUERY_TOO_COSTLY"]
    assert many.get("data") is None and len(statements) == 1


async def test_thirty_aliases_of_analytics_are_refused(api: Api) -> None:
    await world(api)
    license_section = (
        "licenseAnalytics(product: MEETINGS) { aboutToExpire { kpis { expiringCustomers } } }"
    )
    calling = "callingAnalytics { usage { calls } }"
    for field in (license_section, calling, "licenseKpis { totalCustomers }"):
        one = await post_graphql(api, f"query One {{ {field} }}", as_=FULL)
        with api.counter.counting() as statements:
            many = await post_graphql(api, "query Many { " + aliases(30, field) + " }", as_=FULL)
        assert "errors" not in one, one
        assert cost_of(one)["requestedQueryCost"] >= cm.AGGREGATE
        assert error_codes(many) == ["QUERY_TOO_COSTLY"], field
        assert len(statements) == 1


# --- actualQueryCost ------------------------------------------------------------------------

DOCUMENTS = [
    "query A { viewer { id partner { name } } }",
    f"query B {{ customers(first: 10) {{ totalCount pageInfo {{ hasNextPage }} {DEEP} }} }}",
    "query C { customers(first: 1) { edges { cursor node { id tags { id } } } } }",
    "query D { x: customers(first: 3) { nodes { ...N } } "
    "y: customers(first: 1) { nodes { ...N } } } "
    "fragment N on Customer { name subscriptions { ... on Subscription { licenses { used } } } }",
    "query E { tags { name } roles { name rules { object } } policyRules { role } }",
    "query F { quickLinks { slug } featuredResources { slug } "
    "resources(first: 5) { nodes { slug } } }",
    "query G { licenseKpis { totalCustomers } licenseAnalytics(product: MEETINGS) { "
    "distributionTrend(weeks: 4) { weekStart } "
    "overage { rows(first: 3) { nodes { customerId } } } } }",
    "query H { callingAnalytics { usage { daily { calls } } qualityByEndpoint { poorCalls } "
    "featureUsage { calls } qualityTrend(weeks: 3) { poorCalls } } }",
    "query I { auditLog(first: 5) { nodes { id before after } } "
    "admins { nodes { email partner { name } } } }",
    'query J { __type(name: "Customer") { fields { name type { name ofType { name } } } } }',
]


async def test_actual_cost_never_exceeds_the_requested_cost(api: Api) -> None:
    # given: data under most lists
    await world(api, subscriptions=3)
    await post_graphql(
        api, 'mutation { createTag(input: {name: "Gold"}) { tag { id } } }', as_=FULL
    )
    for document in DOCUMENTS:
        # when
        body = await post_graphql(api, document, as_=FULL)
        # then
        assert "errors" not in body, (document, body.get("errors"))
        cost = cost_of(body)
        assert 0 < cost["actualQueryCost"] <= cost["requestedQueryCost"], (document, cost)


async def test_actual_cost_counts_the_objects_returned(api: Api) -> None:
    await world(api, subscriptions=2)
    body = await post_graphql(
        api, "query P { customers(first: 10) { nodes { name subscriptions { id } } } }", as_=FULL
    )
    # the page, two customers, Zeta's two subscriptions
    assert cost_of(body)["actualQueryCost"] == 1 + 2 + 2
    assert cost_of(body)["requestedQueryCost"] == 1 + 10 * (1 + 10)


async def test_mutations_report_their_cost(api: Api) -> None:
    await world(api)
    body = await post_graphql(
        api,
        'mutation { createTag(input: {name: "Gold"}) { tag { name } userErrors { code } } }',
        as_=FULL,
    )
    cost = cost_of(body)
    assert data_of(body)["createTag"]["tag"] == {"name": "Gold"}
    assert cost["actualQueryCost"] == 2 <= cost["requestedQueryCost"]


# --- Ordinary documents ---------------------------------------------------------------------


async def test_the_benchmarked_pages_pass_the_default_limit(api: Api) -> None:
    ids = await world(api)
    runs = {
        "directory_page": {"first": 50},
        "directory_page_full": {"first": 50},
        "customer_detail": {"id": to_global_id("Customer", ids["zeta"])},
        "license_dashboard": {"product": "MEETINGS"},
    }
    for name, variables in runs.items():
        body = await post_graphql(api, (BENCH / f"{name}.graphql").read_text(), variables, as_=FULL)
        assert "errors" not in body, (name, body.get("errors"))
        cost = cost_of(body)
        assert cost["actualQueryCost"] <= cost["requestedQueryCost"] <= api.settings.max_query_cost


def test_every_list_of_objects_has_a_bound() -> None:
    schema = build_schema(Settings())._schema
    missing = []
    for type_name, type_ in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(type_, GraphQLObjectType):
            continue
        for field_name, field in type_.fields.items():
            inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if not isinstance(inner, GraphQLList):
                continue
            named = (
                inner.of_type.of_type
                if isinstance(inner.of_type, GraphQLNonNull)
                else inner.of_type
            )
            qualified = f"{type_name}.{field_name}"
            if not isinstance(named, GraphQLObjectType):
                continue  # scalars and enums cost nothing
            if field_name in ("nodes", "edges") and type_name.endswith("Connection"):
                continue  # the page size
            if field_name == "userErrors" or qualified in cm.LIST_BOUNDS:
                continue
            missing.append(qualified)
    assert missing == []


async def test_a_cached_response_reports_the_same_costs(api: Api) -> None:
    await world(api, subscriptions=2)
    token = await token_for(api, FULL)
    document = {"query": "query P { customers(first: 5) { nodes { subscriptions { id } } } }"}
    responses = [
        await api.client.post(
            "/graphql", json=document, headers={"Authorization": f"Bearer {token}"}
        )
        for _ in range(2)
    ]
    assert [r.headers["x-partner-hub-cache"] for r in responses] == ["miss", "hit"]
    first, second = (cost_of(r.json()) for r in responses)
    assert first["actualQueryCost"] == second["actualQueryCost"] == 1 + 2 + 2
    assert first["requestedQueryCost"] == second["requestedQueryCost"] == 1 + 5 * 11


async def test_selections_nested_beyond_the_walk_are_refused(api: Api) -> None:
    # given: type references nested 120 deep (introspection is outside the depth limit)
    await world(api)
    nested = "name"
    for _ in range(120):
        nested = f"ofType {{ {nested} }}"
    document = f'query Deep {{ __type(name: "Customer") {{ {nested} }} }}'
    # when
    body = await post_graphql(api, document, as_=FULL)
    # then: refused with a code rather than priced at 0
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body.get("data") is None
