"""Rendered parts passed through as PostgreSQL wrote them (``graph.response_json``).

A relationship PostgreSQL renders reaches the response as its JSON text, never decoded, and its
objects are counted by the statement. So the text must be orjson's own writing of the values
(no whitespace, the same escapes) and the count the walk's: every answer here is compared byte
for byte, and its ``actualQueryCost`` number for number, with rendering on and off
(``tests.test_render.answers``), for the benchmark's documents, user strings made of JSON's
own punctuation, escapes and control characters, empty and capped relationships, aliases, the
response cache, persisted GETs and errors. SQLite renders nothing and answers the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Integer, delete, insert, literal_column, select, update

from db.models import (
    Admin,
    Customer,
    CustomerAssignment,
    CustomerTag,
    Invoice,
    LicenseLine,
    Order,
    Subscription,
    SubscriptionTag,
    Tag,
)
from db.queries.customer_render import EMPTY, RenderedJSON, concat
from graph import render
from graph.cost import count_objects
from graph.response_json import dumps, encode_json
from tests.conftest import NOW, Api, instance_beside, postgresql_only
from tests.helpers import data_of, post_graphql, token_for
from tests.test_n_plus_one import FULL, build_customers
from tests.test_render import (
    EVERY_FIELD,
    answers,
    made_objects,  # noqa: F401  (fixture)
    raw_answer,
    uncached,  # noqa: F401  (fixture)
)

QUERIES = Path(__file__).resolve().parent.parent / "bench" / "queries"
DIRECTORY = (QUERIES / "directory_page.graphql").read_text()
FULL_PAGE = (QUERIES / "directory_page_full.graphql").read_text()
DETAIL = (QUERIES / "customer_detail.graphql").read_text()
EVERY_PAGE = "query P($first: Int) { customers(first: $first) { nodes {" + EVERY_FIELD + "} } }"
# JSON's punctuation, its escapes, control characters (the short escapes and \u00XX ones),
# DEL, non-ASCII, astral and line-separator characters: PostgreSQL's ``to_json`` must write
# each as orjson does.
# A tag's name holds 25 characters.
SHORT = '{"}:\\\x01\t\u2028ñ😀'
ODD = '{"a": [1]}, :2: \\ \\" \\u0041 \x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f ñ — 😀 \u2028 }{'.replace(
    "\x00", ""
)  # PostgreSQL text holds no NUL


def _same(plain: bytes, rendered: bytes) -> bytes:
    assert b'"errors"' not in plain, plain[:300]
    assert rendered == plain
    return rendered


async def _tag_ids(api: Api) -> dict[str, str]:
    tags = data_of(await post_graphql(api, "{ tags { id name } }", as_=FULL))["tags"]
    return {tag["name"]: tag["id"] for tag in tags}


async def _odd_strings(api: Api) -> None:
    """User strings with JSON's punctuation, escapes and control characters in every rendered
    text column the documents read: tag names and descriptions, admin names and emails, an
    order's description, a license type."""
    async with api.engine.begin() as conn:
        for i, tag in enumerate((await conn.execute(select(Tag.id).order_by(Tag.id))).scalars()):
            await conn.execute(
                update(Tag)
                .where(Tag.id == tag)
                .values(name=f"{SHORT}{i}", description=f"{i}:{ODD}" if i else None)
            )
        await conn.execute(
            update(Admin).where(Admin.role == "PARTNER_ADMIN").values(name=Admin.name + ODD)
        )
        await conn.execute(update(Order).values(description=ODD))
        await conn.execute(update(LicenseLine).values(license_type="Std " + ODD))


async def _rendered_here(api: Api, made: list[str], document: str, variables: Any) -> None:
    """On PostgreSQL, the page's tags and license lines were rendered: no API object made."""
    made.clear()
    body = await post_graphql(api, document, variables, as_=FULL)
    assert not body.get("errors"), body
    if api.db.backend == "postgresql":
        assert "Tag" not in made and "LicenseLine" not in made, made
    else:
        assert "Tag" in made


@pytest.mark.parametrize("odd", [False, True])
async def test_the_benchmark_documents_answer_the_same_bytes_and_cost(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    made_objects: list[str],  # noqa: F811
    odd: bool,
) -> None:
    api = uncached
    await build_customers(api, 12)
    if odd:
        await _odd_strings(api)
    gold = (await _tag_ids(api))[f"{SHORT}0" if odd else "gold"]
    filtered = {"statuses": ["ACTIVE"], "products": ["CALLING"], "tagIds": [gold]}
    cases = [
        (DIRECTORY, {"first": 10}),
        (DIRECTORY, {"first": 10, "filter": filtered}),
        (FULL_PAGE, {"first": 12}),
        (EVERY_PAGE, {"first": 12}),
    ]
    for document, variables in cases:
        page = _same(*await answers(api, monkeypatch, document, variables))
        nodes = orjson.loads(page)["data"]["customers"]["nodes"]
        assert nodes or variables.get("filter"), document
        if odd and not variables.get("filter"):
            assert orjson.dumps(ODD)[1:-1] in page
    await _rendered_here(api, made_objects, DIRECTORY, {"first": 10})
    customers = orjson.loads(page)["data"]["customers"]["nodes"]
    for customer in customers[:3]:
        _same(*await answers(api, monkeypatch, DETAIL, {"id": customer["id"]}))


async def test_empty_relationships_and_a_customer_without_subscriptions(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = uncached
    await build_customers(api, 4)
    async with api.engine.begin() as conn:
        first, second = list(
            (await conn.execute(select(Customer.id).order_by(Customer.id).limit(2))).scalars()
        )
        subs = select(Subscription.id).where(Subscription.customer_id == first)
        for table in (LicenseLine, Invoice, Order, SubscriptionTag):
            await conn.execute(delete(table).where(table.subscription_id.in_(subs)))
        await conn.execute(delete(Subscription).where(Subscription.customer_id == first))
        for table in (CustomerTag, CustomerAssignment):
            await conn.execute(delete(table).where(table.customer_id.in_([first, second])))
        # the second keeps its subscriptions, without license lines, invoices, orders, tags
        subs = select(Subscription.id).where(Subscription.customer_id == second)
        for table in (LicenseLine, Invoice, Order, SubscriptionTag):
            await conn.execute(delete(table).where(table.subscription_id.in_(subs)))
    for document in (DIRECTORY, FULL_PAGE, EVERY_PAGE):
        page = _same(*await answers(api, monkeypatch, document, {"first": 4}))
        nodes = orjson.loads(page)["data"]["customers"]["nodes"]
        empty = [n for n in nodes if n.get("subscriptions") == [] and n.get("tags") == []]
        assert empty and all(n["partnerAdmins"] == [] for n in empty)
        for node in nodes:
            _same(*await answers(api, monkeypatch, DETAIL, {"id": node["id"]}))


async def test_capped_relationships_answer_their_cap(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """12 subscriptions (cap 10), 12 license lines, invoices and orders on one of them (10)."""
    api = uncached
    await build_customers(api, 3)
    async with api.engine.begin() as conn:
        customer = (await conn.execute(select(Customer).order_by(Customer.id).limit(1))).one()
        sub = (
            await conn.execute(select(Subscription).where(Subscription.customer_id == customer.id))
        ).first()
        assert sub is not None
        values = {c: getattr(sub, c) for c in ("partner_id", "customer_id", "kind", "state")}
        await conn.execute(
            insert(Subscription),
            [
                values
                | {
                    "subscription_id": f"MORE-{i}",
                    "start_date": NOW - timedelta(days=100),  # older: the cap keeps ``sub``
                    "end_date": NOW,
                    "auto_renew": False,
                    "created_at": NOW,
                }
                for i in range(10)
            ],
        )
        common = {"partner_id": sub.partner_id, "subscription_id": sub.id}
        await conn.execute(
            insert(LicenseLine),
            [
                common
                | {"product": "MEETINGS", "license_type": f"T{i:02d}", "purchased": i}
                | {"assigned": 0, "used": 0}
                for i in range(10)
            ],
        )
        await conn.execute(
            insert(Invoice),
            [
                common
                | {"invoice_number": f"X-{i}", "issued_at": NOW, "due_at": NOW}
                | {"amount_cents": i, "currency": "EUR", "status": "OPEN"}
                for i in range(11)
            ],
        )
        await conn.execute(
            insert(Order),
            [
                common
                | {"order_number": f"O-{i}", "placed_at": NOW, "action": "NEW"}
                | {"description": "", "status": "COMPLETED"}
                for i in range(11)
            ],
        )
    for document in (FULL_PAGE, EVERY_PAGE):
        page = _same(*await answers(api, monkeypatch, document, {"first": 3}))
        nodes = orjson.loads(page)["data"]["customers"]["nodes"]
        capped = [n for n in nodes if len(n["subscriptions"]) == 10]
        assert capped, "the cap applies"
        lines = [s for n in nodes for s in n["subscriptions"] if len(s["licenses"]) == 10]
        assert lines and any(len(s["invoices"]) == 10 for s in lines)
        _same(*await answers(api, monkeypatch, DETAIL, {"id": capped[0]["id"]}))


ALIASED = [
    # keys of a tag many times under aliases (a document takes at most 30), __typename too
    "tags { " + " ".join(f"{f[0]}{i}: {f}" for i in range(12) for f in ("name", "id")) + " }",
    "tags { " + " ".join(f"a{i}: name" for i in range(26)) + " t: __typename __typename } statuses",
    "s: subscriptions { l: licenses { p: product o: overage } i: invoices { n: invoiceNumber } }"
    " p: partnerAdmins { a: admin { n: name, e: email, t: __typename } r: role }",
]


@pytest.mark.parametrize("shape", range(len(ALIASED)))
async def test_aliases_answer_the_same_bytes_and_cost(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    shape: int,
) -> None:
    api = uncached
    await build_customers(api, 3)
    await _odd_strings(api)
    document = "query { customers(first: 3) { nodes { id " + ALIASED[shape] + " } } }"
    _same(*await answers(api, monkeypatch, document, {}))


async def test_errors_and_null_propagation_answer_the_same(
    uncached: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A customer whose non-null ``managedBy`` the enum refuses: its error nulls the customer,
    and on a page the page (``nodes`` is a list of non-null customers, ``customers`` non-null):
    its rendered siblings go with them, rendered or not. A sibling customer answers."""
    api = uncached
    await build_customers(api, 3)
    nodes = "{ customers(first: 3) { nodes { id } } }"
    first, second = [
        n["id"] for n in data_of(await post_graphql(api, nodes, as_=FULL))["customers"]["nodes"][:2]
    ]
    async with api.engine.begin() as conn:
        await conn.execute(
            update(Customer).where(Customer.name == "Customer 000").values(managed_by="NOPE")
        )
    node = "managedBy tags { name } subscriptions { licenses { product } } partnerAdmins { role }"
    detail = (
        f'query {{ a: customer(id: "{first}") {{ {node} }}'
        f' b: customer(id: "{second}") {{ {node.replace("managedBy", "")} }} }}'
    )
    for document in ("query { customers(first: 3) { nodes { " + node + " } } }", detail):
        plain, rendered = await answers(api, monkeypatch, document, {})
        assert _unnumbered(rendered) == _unnumbered(plain), document
        assert b'"errors"' in plain and b'"managedBy"]' in plain
    assert b'{"data":{"a":null,"b":{"tags":[{' in plain


def _unnumbered(answer: bytes) -> bytes:
    """``answer`` without its errors' request ids (each request's own)."""
    return re.sub(rb"request id [0-9a-f]+|\"requestId\":\"[0-9a-f]+\"", b"", answer)


async def test_the_response_cache_and_persisted_gets_answer_the_same_bytes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached answer is the bytes the rendered one was written as, with its counted cost; a
    persisted GET answers what a POST does."""
    await build_customers(api, 4)
    await _odd_strings(api)
    monkeypatch.setattr(render, "RENDER", False)
    async with instance_beside(api, response_cache_seconds=0) as uncached_api:
        plain, plain_cost = await raw_answer(uncached_api, DIRECTORY, {"first": 4})
    monkeypatch.setattr(render, "RENDER", True)
    token = await token_for(api, FULL)
    headers = {"Authorization": f"Bearer {token}"}
    payload = {"query": DIRECTORY, "variables": {"first": 4}}
    missed = await api.client.post("/graphql", json=payload, headers=headers)
    hit = await api.client.post("/graphql", json=payload, headers=headers)
    assert missed.headers["X-Partner-Hub-Cache"] == "miss"
    assert hit.headers["X-Partner-Hub-Cache"] == "hit"
    for response in (missed, hit):
        body = orjson.loads(response.content)
        assert orjson.dumps(body) == response.content  # orjson's own writing, byte for byte
        cost = body.pop("extensions")["cost"]
        assert orjson.dumps(body) == plain
        assert cost["actualQueryCost"] == plain_cost["actualQueryCost"]
    # persisted: registered by a POST, then read by GET (the cache answers it, then not)
    digest = hashlib.sha256(DIRECTORY.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    registered = await api.client.post(
        "/graphql", json={**payload, "extensions": extensions}, headers=headers
    )
    assert registered.status_code == 200
    async with instance_beside(api, response_cache_seconds=0) as uncached_api:
        for client in (api.client, uncached_api.client):
            await client.post(
                "/graphql", json={**payload, "extensions": extensions}, headers=headers
            )
            params = {
                "extensions": json.dumps(extensions),
                "variables": json.dumps({"first": 4}),
                "operationName": "DirectoryPage",
            }
            got = await client.get("/graphql", params=params, headers=headers)
            assert got.status_code == 200, got.text
            body = orjson.loads(got.content)
            assert orjson.dumps(body) == got.content
            body.pop("extensions")
            assert orjson.dumps(body) == plain


def test_the_serialiser_writes_a_rendered_part_as_it_is() -> None:
    part = RenderedJSON('[{"n":"a\\"b","m":[]}]', 1)
    data = {"tags": part, "none": EMPTY, "x": [1, "é"]}
    assert dumps(data) == b'{"tags":[{"n":"a\\"b","m":[]}],"none":[],"x":[1,"\xc3\xa9"]}'
    assert encode_json({"data": data}) == b'{"data":' + dumps(data) + b"}"
    # a lone surrogate (echoed from a request): the standard library's fallback decodes it
    fallback = encode_json({"data": data, "errors": [{"message": "\ud800"}]})
    assert json.loads(fallback) == {
        "data": {"tags": [{"n": 'a"b', "m": []}], "none": [], "x": [1, "é"]},
        "errors": [{"message": "\ud800"}],
    }
    # a response's whole data as the bytes the response cache keeps (``graph.view``)
    written = RenderedJSON(dumps(data), 0)
    assert encode_json({"data": written}) == b'{"data":' + dumps(data) + b"}"
    assert json.loads(encode_json({"data": written, "e": "\ud800"}))["data"]["none"] == []
    with pytest.raises(orjson.JSONEncodeError):
        dumps({"x": object()})  # anything else is still refused
    assert encode_json({"x": object()}).startswith(b'{"x": "<object object')  # as before


def test_a_rendered_part_counts_what_its_statement_counted() -> None:
    framed = RenderedJSON('[{"a":"1:2{"},{"a":"}"}]', 3)
    plan = (("nodes", (("tags", ()), ("subscriptions", (("licenses", ()),)))),)
    data = {"nodes": [{"tags": framed, "subscriptions": EMPTY}, {"tags": EMPTY}]}
    assert count_objects(data, plan) == 1 + 2 + 3


@postgresql_only
async def test_a_long_concat_is_written_as_nested_concats(api: Api) -> None:
    """PostgreSQL's functions take 100 arguments: a longer ``concat`` is one of concats (an
    object of many keys, its nested objects inlined), and constant pieces are merged."""
    values: list[Any] = []
    for i in range(230):
        values += [f',"k{i}":', literal_column(str(i), Integer()), "" if i % 7 else "[]"]
    async with api.engine.connect() as conn:
        written = (await conn.execute(select(concat(values)))).scalar()
    assert written == "".join(f',"k{i}":{i}' + ("" if i % 7 else "[]") for i in range(230))
    with pytest.raises(ValueError):
        concat(["it's"])  # only names and JSON's punctuation are written into a statement
