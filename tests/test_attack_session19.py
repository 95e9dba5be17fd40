"""Session 19's attack on the relationships PostgreSQL renders as the response's JSON
(``graph.render``, ``db.queries.customer_render``): whatever the data and the document, the answer
rendered must be the bytes (and the ``actualQueryCost``) of the answer with rendering off, valid
JSON, with no user string breaking out of its JSON string and no field the caller may not read.

Tried: values the API's schema does not have (an enum's unknown name, an instant Python cannot
hold, a count past GraphQL's Int: written past the API, or by a newer version during a rolling
deploy), instants at the edges (microseconds, years 1 and 9999) under several session time
zones, numbers at and past Int's ends, arbitrary Unicode through the mutations and into every
rendered text column, NUL and lone surrogates, generated selections (aliases, fragments,
``__typename``, directives, a relationship twice, nested parts), caps and ties in every order,
many customers, every role and a narrow custom one beside another partner's data, the response
cache and persisted GETs.

Found: a stored value the ordinary path refuses (``'VOID'`` as an invoice's status, ``infinity``
as an instant, a status span's unknown status...) was written by the rendered path as it was
stored, an undeclared enum name or ``null`` in a non-null ``DateTime!``, where the ordinary path
answers an error. The statement now checks each rendered row's values (``checks``) and a part it
cannot vouch for is read again the ordinary way, which answers what rendering off answers.

Rendering exists on PostgreSQL only; the cases about it run there alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from graphql import GraphQLEnumType, GraphQLObjectType, get_named_type
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text, update

from db.engine import create_engine
from db.models import (
    Admin,
    Customer,
    CustomerAssignment,
    Invoice,
    LicenseLine,
    Order,
    Subscription,
    Tag,
)
from db.queries import customer_parts
from graph import cost_model as cm
from graph import render
from graph.ids import from_global_id, to_global_id
from tests.authz_support import (
    AuthzFactory,
    assert_nothing_written,
    create_admin,
    create_role,
    snapshot,
)
from tests.conftest import NOW, Api, app_client, instance_beside, postgresql_only
from tests.helpers import data_of, error_codes, post_graphql, token_for
from tests.test_n_plus_one import FULL, build_customers
from tests.test_render import EVERY_FIELD, answers
from tests.test_render import uncached as uncached
from tests.test_render_json import (
    DETAIL,
    DIRECTORY,
    EVERY_PAGE,
    _odd_strings,
    _unnumbered,
)
from tests.test_role_matrix_nested import CUSTOM_RULES, email
from tests.test_role_matrix_nested import schema as graphql_schema

PROPERTY = settings(
    max_examples=25,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


async def both(
    api: Api, monkeypatch: pytest.MonkeyPatch, document: str, variables: dict[str, Any], **as_: Any
) -> tuple[bytes, bytes]:
    """The answer with rendering off, then on (their errors' request ids aside); the same
    ``actualQueryCost`` both ways (``tests.test_render.answers``)."""
    plain, rendered = await answers(api, monkeypatch, document, variables, **as_)
    return _unnumbered(plain), _unnumbered(rendered)


async def same(
    api: Api, monkeypatch: pytest.MonkeyPatch, document: str, variables: dict[str, Any], **as_: Any
) -> bytes:
    """The answer, the same bytes rendered or not."""
    plain, rendered = await both(api, monkeypatch, document, variables, **as_)
    assert rendered == plain, (document, variables)
    return rendered


async def first_customer(api: Api) -> str:
    body = await post_graphql(api, "{ customers(first: 1) { nodes { id } } }", as_=FULL)
    return str(data_of(body)["customers"]["nodes"][0]["id"])


async def warm(api: Api) -> None:
    """A read that brings the derived rows (status spans, products) up to date, so that the two
    answers compared next read the same rows."""
    await post_graphql(api, "{ customers(first: 50) { nodes { statuses products } } }", as_=FULL)


# --- values the API does not have --------------------------------------------------------------

# What is written; a text that must not reach a response; whether the ordinary path refuses
# it in EVERY_PAGE and in DETAIL (which selects no tag's creation, invoice's due date or admin's
# creation: an unknown value in a column no field selected is no error either way).
UNKNOWN: dict[str, tuple[Any, str, tuple[bool, bool]]] = {
    "invoice status": (update(Invoice).values(status="VOID"), "VOID", (True, True)),
    "order action": (update(Order).values(action="DOWNGRADE"), "DOWNGRADE", (True, True)),
    "order status": (update(Order).values(status="on hold"), "on hold", (True, True)),
    "subscription kind": (update(Subscription).values(kind="FREE"), "FREE", (True, True)),
    "subscription state": (update(Subscription).values(state="active"), '"active"', (True, True)),
    "license product": (
        update(LicenseLine).where(LicenseLine.product == "MEETINGS").values(product="MEETINGS "),
        "MEETINGS ",
        (True, True),
    ),
    "customer product": (
        text("UPDATE customer_product SET product = 'Calling' WHERE product = 'CALLING'"),
        "Calling",
        (True, True),
    ),
    "status": (
        text("UPDATE customer_status_span SET status = 'WEIRD' WHERE status = 'TRIAL'"),
        "WEIRD",
        (True, True),
    ),
    "infinite renewal": (
        text("UPDATE subscription SET renewal_date = 'infinity' WHERE renewal_date IS NOT NULL"),
        "infinity",
        (True, True),
    ),
    "-infinite tag": (text("UPDATE tag SET created_at = '-infinity'"), "infinity", (True, False)),
    "BC invoice": (
        text("UPDATE invoice SET due_at = '0044-03-15 BC'"),
        "0044-03-15",
        (True, False),
    ),
    "year 10000 order": (
        text("UPDATE subscription_order SET placed_at = '10000-01-01 UTC'"),
        "10000-",
        (True, True),
    ),
    # held by Python, in the day at either end the statement does not vouch for: read as rows
    "last day of 9999": (
        text("UPDATE admin SET created_at = '9999-12-31 12:00:00.5 UTC'"),
        "9999-12-31T12:00:00.500000+00:00",
        (False, False),
    ),
    "first day of year 1": (
        text("UPDATE customer_assignment SET assigned_at = '0001-01-01 06:00 UTC'"),
        "0001-01-01T06:00:00+00:00",
        (False, False),
    ),
}


def read_as_rows(statements: list[str]) -> list[str]:
    """The statements reading a customer's parts as rows (``json_agg``), not rendered."""
    return [statement for statement in statements if "json_agg(" in statement]


@postgresql_only
@pytest.mark.parametrize("case", list(UNKNOWN))
async def test_a_value_the_api_does_not_have_is_not_written_as_stored(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """A stored value the ordinary path refuses (an enum's unknown name, an instant Python
    cannot hold) was written by the rendered path as stored (an undeclared enum name, ``null``
    in a ``DateTime!``). The statement now checks the values it renders; a part it cannot
    vouch for is read again as rows, answering what rendering off does: the same bytes, the
    same error at the same field, never the stored value."""
    api = uncached
    await build_customers(api, 3)
    await warm(api)
    customer = await first_customer(api)
    with api.counter.counting() as statements:
        await post_graphql(api, EVERY_PAGE, {"first": 3}, as_=FULL)
    assert not read_as_rows(statements)  # every part rendered
    statement, shown, refused = UNKNOWN[case]
    async with api.engine.begin() as conn:
        await conn.execute(statement)
    held = not any(refused)  # a value the ordinary path answers: ``shown`` is in the page
    cases = ((EVERY_PAGE, {"first": 3}), (DETAIL, {"id": customer}))
    for (document, variables), refuses in zip(cases, refused, strict=True):
        answer = await same(api, monkeypatch, document, variables)
        assert (b'"errors"' in answer) is refuses, answer[:400]
        assert b"INTERNAL_SERVER_ERROR" in answer if refuses else b'"data":{' in answer
        if not held:
            assert shown.encode() not in answer
        elif document is EVERY_PAGE:
            assert shown.encode() in answer
    with api.counter.counting() as statements:
        await post_graphql(api, EVERY_PAGE, {"first": 3}, as_=FULL)
    assert read_as_rows(statements)  # read again as rows, only for such data


# --- instants ----------------------------------------------------------------------------------

INSTANTS = """
query P($first: Int) { customers(first: $first) { nodes {
  tags { createdAt }
  subscriptions {
    startDate endDate renewalDate
    invoices { issuedAt dueAt } orders { placedAt } tags { createdAt }
  }
  trials { startDate endDate renewalDate }
  partnerAdmins { assignedAt admin { createdAt } }
} } }
"""
EDGES = [
    datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),  # in the first day: read as rows
    datetime(1, 1, 2, tzinfo=UTC),
    datetime(1850, 6, 1, 12, 0, 0, 100_000, tzinfo=UTC),  # before standard time zones
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # a daylight saving change in Europe
    datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_998, tzinfo=UTC),  # in the last day: read as rows
]
# Not datetime.min or .max, which asyncpg writes as -infinity and infinity.
ANY_INSTANT = st.datetimes(
    min_value=datetime(1, 1, 1, 0, 0, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59, 999_998),
    timezones=st.just(UTC),
)
MICROS = st.sampled_from([0, 1, 100_000, 500_000, 999_999])


async def write_instants(api: Api, values: list[datetime]) -> None:
    """``values`` (cycled) into every rendered instant column of the data."""
    cells = [
        (Subscription, "start_date"),
        (Subscription, "end_date"),
        (Subscription, "renewal_date"),
        (Tag, "created_at"),
        (Invoice, "issued_at"),
        (Invoice, "due_at"),
        (Order, "placed_at"),
        (CustomerAssignment, "assigned_at"),
        (Admin, "created_at"),
    ]
    async with api.engine.begin() as conn:
        for i, (table, column) in enumerate(cells):
            await conn.execute(update(table).values({column: values[i % len(values)]}))


def instants_in(answer: bytes) -> set[str]:
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key.endswith(("At", "Date")) and isinstance(inner, str):
                    found.add(inner)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(orjson.loads(answer))
    return found


@postgresql_only
async def test_instants_at_the_edges_answer_as_python_writes_them(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every instant column at microseconds 0, 1, .1 and .999999, years 1 to 9999: the bytes of
    ``datetime.isoformat()`` both ways."""
    api = uncached
    await build_customers(api, 2)
    await warm(api)
    for shift in range(len(EDGES)):
        values = EDGES[shift:] + EDGES[:shift]
        await write_instants(api, values)
        answer = await same(api, monkeypatch, INSTANTS, {"first": 2})
        assert b'"errors"' not in answer
        written = {value.isoformat() for value in values[:9]}
        assert written <= instants_in(answer), written - instants_in(answer)


@postgresql_only
@PROPERTY
@given(values=st.lists(ANY_INSTANT, min_size=9, max_size=9), micros=MICROS)
async def test_any_instant_answers_the_same_rendered_or_not(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
    values: list[datetime],
    micros: int,
) -> None:
    api = uncached
    if not await has_customers(api):
        await build_customers(api, 2)
        await warm(api)
    values = [values[0].replace(microsecond=micros), *values[1:]]
    await write_instants(api, values)
    answer = await same(api, monkeypatch, INSTANTS, {"first": 2})
    assert b'"errors"' not in answer
    assert {value.isoformat() for value in values} <= instants_in(answer)


async def has_customers(api: Api) -> bool:
    async with api.engine.connect() as conn:
        return (await conn.execute(select(Customer.id).limit(1))).first() is not None


@asynccontextmanager
async def zoned(api: Api, zone: str) -> AsyncIterator[Api]:
    """An instance over ``api``'s database whose connections' sessions are in ``zone``: the
    ordinary path reads PostgreSQL's JSON text of an instant in the session's zone (an offset in
    seconds before 1900 in many), the rendered one writes it in UTC."""
    engine = create_engine(api.db.url, pool_size=2, max_overflow=0)

    @event.listens_for(engine.sync_engine, "connect")
    def _zone(connection: Any, _record: Any) -> None:
        connection.run_async(lambda driver: driver.execute(f"SET TIME ZONE '{zone}'"))

    async def session_zone() -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(text("SHOW TimeZone"))).scalar()

    settings = api.settings.model_copy(update={"response_cache_seconds": 0})
    try:
        assert await session_zone() == zone
        async with app_client(settings, engine) as (_, client):
            yield Api(db=api.db, settings=api.settings, client=client, counter=api.counter)
        assert await session_zone() == zone  # kept by the pooled connections the app used
    finally:
        await engine.dispose()


@postgresql_only
@pytest.mark.parametrize("zone", ["Europe/Paris", "Asia/Kathmandu", "America/St_Johns"])
async def test_instants_answer_the_same_in_any_session_time_zone(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
    zone: str,
) -> None:
    """The ordinary path reads PostgreSQL's JSON text of the instants, written in the session's
    time zone (offsets in seconds before 1900), the rendered one writes UTC: the same bytes.
    Within a day of year 1 or 9999 the session's text may fall out of Python's years (0, 10000:
    an error at the field where the ordinary path reads one, rendered or not); elsewhere none."""
    api = uncached
    await build_customers(api, 2)
    await warm(api)
    inner = EDGES[1:-1]
    async with zoned(api, zone) as local:
        for values in (inner, inner[3:] + inner[:3], EDGES):
            await write_instants(api, values)
            answer = await same(local, monkeypatch, INSTANTS, {"first": 2})
            if values is not EDGES:
                assert b'"errors"' not in answer
                assert {value.isoformat() for value in values[:9]} <= instants_in(answer)
            else:  # the session's zone is the ordinary path's: a local year 0 or 10000
                assert b'"errors"' in answer


# --- numbers -----------------------------------------------------------------------------------

INT = st.one_of(
    st.sampled_from([-(2**31), -(2**31) + 1, -1, 0, 1, 2**30, 2**31 - 2, 2**31 - 1]),
    st.integers(-(2**31), 2**31 - 1),
)
NUMBERS = """
query P($first: Int) { customers(first: $first) { nodes { id
  subscriptions {
    licenses { product purchased assigned used available overage }
    invoices { invoiceNumber amountCents }
  }
  trials { licenses { overage available } }
} } }
"""


@postgresql_only
@PROPERTY
@given(lines=st.lists(st.tuples(INT, INT, INT), min_size=2, max_size=2), amount=INT)
@example(lines=[(2**31 - 1, 0, 0), (2**31 - 1, -1, 5)], amount=2**31 - 1)  # 2^31 available
@example(lines=[(-5, 3, -1), (0, 2**31 - 1, 0)], amount=-(2**31))
async def test_any_count_answers_the_same_rendered_or_not(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
    lines: list[tuple[int, int, int]],
    amount: int,
) -> None:
    """Counts anywhere in PostgreSQL's integers (the license totals' triggers, which refuse a
    line whose difference leaves them, off): ``available`` and ``overage`` as the ordinary path
    computes them, the same error where they pass GraphQL's Int (never PostgreSQL's "integer
    out of range" for the whole page), negative counts as they are. (An overage past the
    integers is refused by the overage index's ``assigned - purchased`` even so.)"""
    assume(all(a - p <= 2**31 - 1 for p, a, _ in lines))
    api = uncached
    if not await has_customers(api):
        await build_customers(api, 2)
        await warm(api)
    async with api.engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        products = ("MEETINGS", "CALLING")
        for product, (purchased, assigned, used) in zip(products, lines, strict=True):
            await conn.execute(
                update(LicenseLine)
                .where(LicenseLine.product == product)
                .values(purchased=purchased, assigned=assigned, used=used)
            )
        await conn.execute(update(Invoice).values(amount_cents=amount))
    answer = await same(api, monkeypatch, NUMBERS, {"first": 2})
    past_int = any(abs(p - a) > 2**31 - 1 for p, a, _ in lines)
    assert (b'"errors"' in answer) is past_int, answer[:300]
    if not past_int:
        for purchased, assigned, used in lines:
            line = {
                "purchased": purchased,
                "assigned": assigned,
                "used": used,
                "available": max(purchased - assigned, 0),
                "overage": max(assigned - purchased, 0),
            }
            assert orjson.dumps(line)[1:-1] in answer
        assert f'"amountCents":{amount}'.encode() in answer


# --- user strings ------------------------------------------------------------------------------

# JSON's and HTML's punctuation, escapes spelled out, control characters, DEL and C1, the line
# and paragraph separators, byte-order marks and non-characters, combining marks, joined emoji,
# the last code point.
SPECIALS = [
    '","admin":{"x":"',
    '"}]},{"id":"x',
    "</script><script>alert(1)</script>",
    "\\",
    '"',
    "\\u0000 \\ud800 \\n",
    "\x01\x08\t\n\x0b\x0c\r\x1b\x1f",
    "\x7f\x80\x85\x9f\xa0",
    "\u2028\u2029",
    "\ufeff\ufffe\uffff",
    "e\u0301\u0327\u20dd",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0010ffff\U000e0001",
    "'; DROP TABLE tag; --",
    " padded ",
]
CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def texts(longest: int) -> st.SearchStrategy[str]:
    """Strings of 1 to ``longest`` characters, the column's limit: odd ones, any, and the
    longest of the characters JSON escapes or that take four bytes."""
    filled = st.sampled_from(["\U0001f600", "\\", '"', "\u2028", "\x1f", "\u00e9"]).map(
        lambda c: c * longest
    )
    return st.one_of(
        st.sampled_from(SPECIALS).map(lambda s: s[:longest]),
        st.text(CHARACTERS, min_size=1, max_size=longest),
        filled,
    )


UPDATE_TAG = (
    "mutation($input: UpdateTagInput!) { updateTag(input: $input) { tag { id }"
    " userErrors { code } } }"
)
UPDATE_ADMIN = (
    "mutation($input: UpdateAdminInput!) { updateAdmin(input: $input) { admin { id }"
    " userErrors { code } } }"
)
# The response keys of EVERY_PAGE, DIRECTORY and DETAIL (and their other words: a superset)
KEYS = {"data", *re.findall(r"[_A-Za-z]+", EVERY_PAGE + DIRECTORY + DETAIL)}


async def mutate(api: Api, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = await post_graphql(api, document, variables, as_=FULL)
    assert not body.get("errors"), body
    return body["data"]


async def strings_world(api: Api) -> dict[str, str]:
    """Three customers; a tag made, put on each customer and subscription, and an admin made
    and assigned to each customer, through the mutations. Their ids."""
    await build_customers(api, 3)
    body = await mutate(
        api,
        'mutation { createTag(input: {name: "probe"}) { tag { id } userErrors { code } } }',
        {},
    )
    tag = body["createTag"]["tag"]["id"]
    nodes = "{ customers(first: 3) { nodes { id subscriptions { id } } } }"
    customers = data_of(await post_graphql(api, nodes, as_=FULL))["customers"]["nodes"]
    subscriptions = [s["id"] for c in customers for s in c["subscriptions"]]
    ids = [c["id"] for c in customers]
    tagged = await mutate(
        api,
        "mutation($c: [ID!]!, $s: [ID!]!, $t: [ID!]!) {"
        " a: addTagsToCustomers(input: {customerIds: $c, tagIds: $t}) { userErrors { code } }"
        " b: addTagsToSubscriptions(input: {subscriptionIds: $s, tagIds: $t})"
        " { userErrors { code } } }",
        {"c": ids, "s": subscriptions, "t": [tag]},
    )
    assert tagged["a"]["userErrors"] == tagged["b"]["userErrors"] == [], tagged
    made = await mutate(
        api,
        'mutation { createAdmin(input: {email: "odd@acme.example", name: "Odd",'
        ' role: "PARTNER_ADMIN"}) { admin { id } userErrors { code } } }',
        {},
    )
    admin = made["createAdmin"]["admin"]["id"]
    for customer in ids:
        assigned = await mutate(
            api,
            "mutation($c: ID!, $a: ID!) { assignPartnerAdmin(input: {customerId: $c,"
            " adminId: $a}) { userErrors { code } } }",
            {"c": customer, "a": admin},
        )
        assert assigned["assignPartnerAdmin"]["userErrors"] == [], assigned
    return {"tag": tag, "admin": admin, "customer": ids[0]}


def strings_of(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, str):
        found.add(value)
    elif isinstance(value, dict):
        assert set(value) <= KEYS, set(value) - KEYS  # no key but the document's
        for inner in value.values():
            strings_of(inner, found)
    elif isinstance(value, list):
        for inner in value:
            strings_of(inner, found)
    return found


WORLDS: dict[str, dict[str, str]] = {}


@postgresql_only
@PROPERTY
@given(
    tag_name=texts(25),
    description=texts(500),
    admin_name=texts(200),
    order=texts(500),
    license_type=texts(64),
    number=texts(64),
    email=texts(254),
    currency=texts(3),
)
async def test_any_user_string_answers_the_same_rendered_or_not(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
    tag_name: str,
    description: str,
    admin_name: str,
    order: str,
    license_type: str,
    number: str,
    email: str,
    currency: str,
) -> None:
    """Any Unicode (all planes, no NUL, no lone surrogate: PostgreSQL's text holds neither) up
    to each column's limit, written through updateTag and updateAdmin and straight into the
    other rendered text columns: the same bytes rendered or not, each string read back whole
    as the value of its own key (nothing breaks out of a JSON string) and no key but the
    document's."""
    api = uncached
    world = WORLDS.get(str(api.engine.url))
    if world is None or not await has_customers(api):
        world = WORLDS[str(api.engine.url)] = await strings_world(api)
    await mutate(
        api,
        UPDATE_TAG,
        {"input": {"id": world["tag"], "name": tag_name, "description": description}},
    )
    await mutate(api, UPDATE_ADMIN, {"input": {"id": world["admin"], "name": admin_name}})
    async with api.engine.begin() as conn:
        await conn.execute(update(Order).values(description=order))
        await conn.execute(update(LicenseLine).values(license_type=license_type))
        # unique per partner: one row each
        first_invoice = select(func.min(Invoice.id)).scalar_subquery()
        await conn.execute(
            update(Invoice)
            .where(Invoice.id == first_invoice)
            .values(invoice_number=number, currency=currency)
        )
        first = select(func.min(Subscription.id)).scalar_subquery()
        await conn.execute(
            update(Subscription).where(Subscription.id == first).values(subscription_id=number)
        )
        await conn.execute(
            update(Admin).where(Admin.email == "odd@acme.example").values(email=email)
        )
        stored = {
            *(
                await conn.execute(
                    select(Tag.name, Tag.description).where(
                        Tag.id == from_global_id(world["tag"])[1]
                    )
                )
            ).one(),
            (await conn.execute(select(Admin.name).where(Admin.email == email))).scalar_one(),
        }
    await warm(api)
    for document, variables in (
        (EVERY_PAGE, {"first": 3}),
        (DIRECTORY, {"first": 3}),
        (DETAIL, {"id": world["customer"]}),
    ):
        answer = await same(api, monkeypatch, document, variables)
        assert b'"errors"' not in answer, answer[:300]
        found = strings_of(orjson.loads(answer), set())
        if document is EVERY_PAGE:
            expected = (stored - {None}) | {order, license_type, number, currency, email}
            assert expected <= found, expected - found
    async with api.engine.begin() as conn:  # the email back, for the next example's lookup
        await conn.execute(
            update(Admin).where(Admin.email == email).values(email="odd@acme.example")
        )


# --- NUL and lone surrogates -------------------------------------------------------------------

REFUSED_WRITES = [
    ("createTag", "CreateTagInput", {"name": "a\x00b"}),
    ("createTag", "CreateTagInput", {"name": "ok", "description": "x\x00"}),
    ("updateTag", "UpdateTagInput", {"id": "TAG", "description": "\x00"}),
    ("createAdmin", "CreateAdminInput", {"email": "n@acme.example", "name": "N\x00", "role": "X"}),
    ("updateAdmin", "UpdateAdminInput", {"id": "ADMIN", "name": "\ud800"}),
    ("updateTag", "UpdateTagInput", {"id": "TAG", "name": "\udfff lone"}),
]


@pytest.mark.parametrize("case", range(len(REFUSED_WRITES)))
async def test_nul_and_lone_surrogates_are_refused_with_a_code_and_nothing_written(
    api: Api, case: int
) -> None:
    """PostgreSQL's text holds no NUL, and no driver encodes a lone surrogate: each is refused
    as BAD_USER_INPUT before anything runs (in a variable, escaped in the request's JSON, or
    spelled in the document), never an internal error, and nothing is written."""
    await build_customers(api, 1)
    tags = data_of(await post_graphql(api, "{ tags { id } }", as_=FULL))["tags"]
    admins = data_of(await post_graphql(api, "{ admins(first: 1) { nodes { id } } }", as_=FULL))
    ids = {"TAG": tags[0]["id"], "ADMIN": admins["admins"]["nodes"][0]["id"]}
    field, input_type, values = REFUSED_WRITES[case]
    values = {key: ids.get(value, value) for key, value in values.items()}
    document = (
        f"mutation($input: {input_type}!) {{ {field}(input: $input) {{ userErrors {{ code }} }} }}"
    )
    literal = ", ".join(f"{key}: {json.dumps(value)}" for key, value in values.items())
    spelled = f"mutation {{ {field}(input: {{{literal}}}) {{ userErrors {{ code }} }} }}"
    token = await token_for(api, FULL)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    before = await snapshot(api.engine)
    # a lone surrogate escaped in a GraphQL string is the parser's to refuse
    lone = any("\ud800" <= c <= "\udfff" for value in values.values() for c in value)
    for payload, code in (
        ({"query": document, "variables": {"input": values}}, "BAD_USER_INPUT"),
        ({"query": spelled}, "GRAPHQL_PARSE_FAILED" if lone else "BAD_USER_INPUT"),
    ):
        # json.dumps escapes NUL and lone surrogates (orjson refuses the latter)
        response = await api.client.post("/graphql", content=json.dumps(payload), headers=headers)
        assert response.status_code in (200, 400), response.text
        body = response.json()
        assert error_codes(body) == [code], body
        assert body.get("data") is None, body
    await assert_nothing_written(api, before, field)


# --- generated selections ----------------------------------------------------------------------

# The renderable types' fields, and their relationships (type of the elements).
LEAVES = {
    "Tag": ["id", "name", "description", "createdAt"],
    "Subscription": [
        "id",
        "subscriptionId",
        "kind",
        "state",
        "startDate",
        "endDate",
        "autoRenew",
        "renewalDate",
    ],
    "LicenseLine": [
        "product",
        "licenseType",
        "purchased",
        "assigned",
        "used",
        "available",
        "overage",
    ],
    "Invoice": ["invoiceNumber", "issuedAt", "dueAt", "amountCents", "currency", "status"],
    "Order": ["orderNumber", "placedAt", "action", "description", "status"],
    "AssignedAdmin": ["role", "assignedAt"],
    "Admin": ["id", "email", "name", "role", "active", "createdAt"],
}
OBJECTS = {
    "Customer": {
        "tags": "Tag",
        "subscriptions": "Subscription",
        "trials": "Subscription",
        "partnerAdmins": "AssignedAdmin",
    },
    "Subscription": {
        "licenses": "LicenseLine",
        "invoices": "Invoice",
        "orders": "Order",
        "tags": "Tag",
    },
    "AssignedAdmin": {"admin": "Admin"},
    "Admin": {},
}
NODES = {"Tag", "Subscription", "Admin"}


@st.composite
def selections(draw: st.DrawFn, type_name: str, depth: int = 0) -> str:
    """A selection on ``type_name``: fields, aliases (an alias always names the same field, so
    selections merge), ``__typename``, inline fragments on the type or on Node, a directive,
    a relationship twice (under one name or two)."""
    leaves = LEAVES.get(type_name, [])
    objects = OBJECTS.get(type_name, {})
    parts: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["leaf", "leaf", "object", "typename", "fragment", "node"]))
        if type_name == "Customer" and i == 0:
            kind = "object"  # at least one relationship
        alias = draw(st.sampled_from(["", "", "a_", "b_"]))
        directive = draw(
            st.sampled_from(
                [
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    " @include(if: $v)",
                    " @skip(if: $v)",
                    " @skip(if: false)",
                ]
            )
        )
        if kind == "leaf" and leaves:
            name = draw(st.sampled_from(leaves))
            parts.append(f"{alias + name + ': ' if alias else ''}{name}{directive}")
        elif kind == "object" and objects and depth < 2:
            name = draw(st.sampled_from(sorted(objects)))
            inner = draw(selections(objects[name], depth + 1))
            parts.append(f"{alias + name + ': ' if alias else ''}{name}{directive} {{ {inner} }}")
        elif kind == "typename":
            parts.append(f"{alias + 'typename: ' if alias else ''}__typename")
        elif kind == "fragment" and type_name != "Customer":
            inner = draw(selections(type_name, depth + 1)) if depth < 2 else "__typename"
            parts.append(f"... on {type_name}{directive} {{ {inner} }}")
        elif kind == "node" and type_name in NODES:
            parts.append(f"... on Node {{ id{directive} }}")
        elif leaves:
            parts.append(leaves[0])
        else:
            parts.append("__typename")
    return " ".join(parts)


SELECTED = "query Q({}$first: Int) {{ customers(first: $first) {{ nodes {{ {} }} }} }}"
SELECTED_ONE = "query Q({}$id: ID!) {{ customer(id: $id) {{ {} }} }}"


@postgresql_only
@PROPERTY
@given(node=selections("Customer"), v=st.booleans())
async def test_generated_selections_answer_the_same_rendered_or_not(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
    node: str,
    v: bool,
) -> None:
    """Any selection of the rendered relationships on a page of 12 customers (JSON's punctuation
    in their strings, a customer over the subscription cap) and on one customer: the same bytes
    and cost rendered or not."""
    api = uncached
    if not await has_customers(api):
        await build_customers(api, 12)
        await _odd_strings(api)
        await over_the_caps(api)
        await warm(api)
    customer = await first_customer(api)
    declared, given_v = ("$v: Boolean!, ", {"v": v}) if "$v" in node else ("", {})
    for document, variables in (
        (SELECTED.format(declared, node), {**given_v, "first": 12}),
        (SELECTED_ONE.format(declared, node), {**given_v, "id": customer}),
    ):
        answer = await same(api, monkeypatch, document, variables)
        assert b'"errors"' not in answer, (document, answer[:300])


async def over_the_caps(api: Api) -> None:
    """The first customer: 12 more subscriptions (the cap is 10), every one starting at the same
    instant as another (ties broken by id), 12 invoices and orders more on the newest, each
    issued or placed at one instant, and 12 more assigned admins of one name: ties in every
    order the parts are read in."""
    async with api.engine.begin() as conn:
        customer = (await conn.execute(select(Customer).order_by(Customer.id).limit(1))).one()
        sub = (
            await conn.execute(
                select(Subscription)
                .where(Subscription.customer_id == customer.id)
                .order_by(Subscription.id)
            )
        ).first()
        assert sub is not None
        start = NOW - timedelta(days=3)
        await conn.execute(
            Subscription.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "partner_id": sub.partner_id,
                    "customer_id": customer.id,
                    "subscription_id": f"TIE-{i:02d}",
                    "kind": "TRIAL" if i % 3 == 0 else "PAID",
                    "state": "ACTIVE",
                    "start_date": start - timedelta(days=i // 2),
                    "end_date": NOW + timedelta(days=30),
                    "auto_renew": False,
                    "created_at": NOW,
                }
                for i in range(12)
            ],
        )
        newest = (
            await conn.execute(
                select(Subscription.id).where(Subscription.subscription_id == "TIE-01")
            )
        ).scalar_one()
        common = {"partner_id": sub.partner_id, "subscription_id": newest}
        await conn.execute(
            Invoice.__table__.insert(),  # type: ignore[attr-defined]
            [
                common
                | {"invoice_number": f"T-{i:02d}", "issued_at": start, "due_at": start}
                | {"amount_cents": i, "currency": "EUR", "status": "OPEN"}
                for i in range(12)
            ],
        )
        await conn.execute(
            Order.__table__.insert(),  # type: ignore[attr-defined]
            [
                common
                | {"order_number": f"TO-{i:02d}", "placed_at": start, "action": "NEW"}
                | {"description": f"tie {i}", "status": "COMPLETED"}
                for i in range(12)
            ],
        )
        await conn.execute(
            Admin.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "partner_id": sub.partner_id,
                    "email": f"same{i}@acme.example",
                    "name": "Same Name",
                    "role": "PARTNER_ADMIN",
                    "active": i % 2 == 0,
                    "created_at": NOW,
                }
                for i in range(12)
            ],
        )
        admins = (await conn.execute(select(Admin.id).where(Admin.name == "Same Name"))).scalars()
        await conn.execute(
            CustomerAssignment.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "customer_id": customer.id,
                    "admin_id": admin,
                    "partner_id": sub.partner_id,
                    "assigned_at": start,
                }
                for admin in admins
            ],
        )


# --- roles and another partner -----------------------------------------------------------------

SECRET = "BETA-SECRET"
# custom roles: the role matrix's narrow ones, and customers read only where assigned with
# everything below them read everywhere
CUSTOM = {
    "NARROW_VIEWER": CUSTOM_RULES["NARROW_VIEWER"],
    "CUSTOMER_VIEWER": CUSTOM_RULES["CUSTOMER_VIEWER"],
    "ASSIGNED_ONLY": [
        ("customer", "read", "assigned"),
        ("subscription", "read", "all"),
        ("trial", "read", "all"),
        ("tag", "read", "all"),
        ("assignment", "read", "all"),
    ],
}
CALLERS = ["FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY_ADMIN", "SALES_ADMIN", *CUSTOM]


async def two_partners(api: Api) -> dict[str, Any]:
    """Acme: a caller of each role, four customers (two assigned to every caller but the full
    admin), each with a subscription, a trial, a tag on both, an invoice and an order. Beta: the
    same, every string of it holding SECRET."""
    f = AuthzFactory(api.engine)
    ids: dict[str, Any] = {"acme": [], "beta": []}
    for which, domain in (("acme", "acme.example"), ("beta", "beta.example")):
        partner = await f.partner(f"{which.title()} Partners", domain)
        mark = "" if which == "acme" else SECRET
        boss = await f.admin(partner, f"full@{domain}", "FULL_ADMIN", name=f"{mark}Boss")
        other = await f.admin(partner, f"pa@{domain}", "PARTNER_ADMIN", name=f"{mark}Pat")
        callers = []
        if which == "acme":
            for role in CALLERS[1:4]:
                callers.append(await f.admin(partner, email(role), role))
            for role, rules in CUSTOM.items():
                body = await create_role(api, FULL, role, rules)
                assert body["data"]["createRole"]["userErrors"] == [], body
                made = await create_admin(api, FULL, email(role), role)
                callers.append(from_global_id(made)[1])
        for i in range(4):
            customer = await f.customer(partner, f"{mark}Customer {i}")
            ids[which].append(customer)
            await f.assign(customer, other)
            if i < 2:
                for caller in callers:
                    await f.assign(customer, caller)
            sub = await f.subscription(customer)
            await f.trial(customer)
            tag = await f.tag(partner, f"{mark}T{i}")
            await f.tag_customer(partner, customer, tag)
            await f.tag_subscription(partner, sub, tag)
            async with api.engine.begin() as conn:
                await conn.execute(
                    Invoice.__table__.insert().values(  # type: ignore[attr-defined]
                        partner_id=partner,
                        subscription_id=sub,
                        invoice_number=f"{mark}INV-{i}",
                        issued_at=NOW,
                        due_at=NOW,
                        amount_cents=100,
                        currency="EUR",
                        status="OPEN",
                    )
                )
                await conn.execute(
                    Order.__table__.insert().values(  # type: ignore[attr-defined]
                        partner_id=partner,
                        subscription_id=sub,
                        order_number=f"{mark}ORD-{i}",
                        placed_at=NOW,
                        action="NEW",
                        description=f"{mark} order",
                        status="COMPLETED",
                    )
                )
                await conn.execute(
                    update(LicenseLine)
                    .where(LicenseLine.subscription_id == sub)
                    .values(license_type=f"{mark}Standard")
                )
        ids[f"{which}_boss"] = boss
    return ids


@postgresql_only
async def test_every_role_reads_the_same_and_nothing_of_another_partner(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every built-in role and three custom ones (customers read everywhere but what hangs from
    them only where assigned, customers alone, customers only where assigned and everything
    below them everywhere), beside another partner whose every string holds SECRET: the same
    bytes and cost rendered or not, for a page and each customer's detail (another partner's
    too, by its id), and nothing of the other partner's in any answer."""
    api = uncached
    ids = await two_partners(api)
    await warm(api)
    details = [to_global_id("Customer", pk) for pk in ids["acme"] + ids["beta"]]
    for role in CALLERS:
        who = FULL if role == "FULL_ADMIN" else email(role)
        page = await same(api, monkeypatch, EVERY_PAGE, {"first": 20}, as_=who)
        assert SECRET.encode() not in page and b"beta.example" not in page
        nodes = orjson.loads(page)["data"]["customers"]["nodes"]
        assigned_only = role in ("PARTNER_ADMIN", "SALES_ADMIN", "ASSIGNED_ONLY")
        assert len(nodes) == (2 if assigned_only else 4), (role, len(nodes))
        for customer in details:
            answer = await same(api, monkeypatch, EVERY_DETAIL, {"id": customer}, as_=who)
            assert SECRET.encode() not in answer and b"beta.example" not in answer
    beta = await same(api, monkeypatch, EVERY_PAGE, {"first": 20}, as_="full@beta.example")
    assert beta.count(SECRET.encode()) > 20 and b"acme.example" not in beta


EVERY_DETAIL = "query D($id: ID!) { customer(id: $id) {" + EVERY_FIELD + "} }"


# --- the response cache and persisted reads ----------------------------------------------------


async def sent(api: Api, who: str, document: str, variables: dict[str, Any]) -> tuple[bytes, str]:
    """The answer's bytes but for its extensions (request ids aside), and whether the response
    cache answered it."""
    token = await token_for(api, who)
    response = await api.client.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = orjson.loads(response.content)
    assert orjson.dumps(body) == response.content
    body.pop("extensions", None)
    return _unnumbered(orjson.dumps(body)), response.headers.get("X-Partner-Hub-Cache", "")


@postgresql_only
async def test_cached_answers_are_each_callers_rendered_or_not(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the response cache on, rendered: a page the full admin read, then a partner admin
    (who sees two of the customers), then the full admin again (from the cache), each the
    bytes rendering off answers uncached; with an unknown invoice status stored since (a part
    read again as rows), the same again; and persisted GETs of it."""
    ids = await two_partners(api)
    await warm(api)
    who = [FULL, email("PARTNER_ADMIN"), FULL]
    document, variables = EVERY_PAGE, {"first": 20}
    for corrupt in (False, True):
        if corrupt:
            async with api.engine.begin() as conn:
                await conn.execute(update(Invoice).values(status="VOID"))
        monkeypatch.setattr(render, "RENDER", False)
        async with instance_beside(api, response_cache_seconds=0) as plain_api:
            expected = [(await sent(plain_api, caller, document, variables))[0] for caller in who]
        monkeypatch.setattr(render, "RENDER", True)
        found = [await sent(api, caller, document, variables) for caller in who]
        assert [answer for answer, _ in found] == expected
        assert all((b'"errors"' in answer) is corrupt for answer in expected)
        assert not any(b"VOID" in answer for answer in expected)
        if not corrupt:
            assert expected[0] != expected[1]  # each caller's own
            assert [cache for _, cache in found] == ["miss", "miss", "hit"]
    # a persisted read of the detail, by GET, from the cache and not
    detail = {"id": to_global_id("Customer", ids["acme"][0])}
    digest = hashlib.sha256(EVERY_DETAIL.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    token = await token_for(api, FULL)
    headers = {"Authorization": f"Bearer {token}"}
    posted = await api.client.post(
        "/graphql",
        json={"query": EVERY_DETAIL, "variables": detail, "extensions": extensions},
        headers=headers,
    )
    assert posted.status_code == 200
    monkeypatch.setattr(render, "RENDER", False)
    async with instance_beside(api, response_cache_seconds=0) as plain_api:
        plain, _ = await sent(plain_api, FULL, EVERY_DETAIL, detail)
    monkeypatch.setattr(render, "RENDER", True)
    assert b"VOID" not in plain and b'"errors"' in plain
    params = {"extensions": json.dumps(extensions), "variables": json.dumps(detail)}
    for _ in range(2):
        got = await api.client.get("/graphql", params=params, headers=headers)
        assert got.status_code == 200, got.text
        body = orjson.loads(got.content)
        body.pop("extensions", None)
        assert _unnumbered(orjson.dumps(body)) == plain


# --- caps and ties -----------------------------------------------------------------------------

TIES = """
query T($first: Int) { customers(first: $first) { nodes { id
  subscriptions { subscriptionId invoices { invoiceNumber } orders { orderNumber } }
  trials { subscriptionId }
  partnerAdmins { admin { email } }
} } }
"""


async def capped_orders(api: Api, customer: int) -> dict[str, Any]:
    """What the API's documented orders and caps keep of the customer's rows, computed here:
    subscriptions and trials newest first (equal starts: the later id first), the first
    subscription's invoices and orders the same way, assigned admins by name then id."""
    async with api.engine.connect() as conn:
        subs = (
            await conn.execute(
                select(
                    Subscription.id,
                    Subscription.subscription_id,
                    Subscription.kind,
                    Subscription.start_date,
                ).where(Subscription.customer_id == customer)
            )
        ).all()
        newest = sorted(subs, key=lambda s: (s.start_date, s.id), reverse=True)
        kept = newest[: cm.MAX_SUBSCRIPTIONS_PER_CUSTOMER]
        children: dict[str, Any] = {}
        for table, number, moment in (
            (Invoice, Invoice.invoice_number, Invoice.issued_at),
            (Order, Order.order_number, Order.placed_at),
        ):
            rows = (
                await conn.execute(
                    select(
                        table.id,
                        number.label("number"),
                        moment.label("moment"),
                        table.subscription_id,
                    )
                )
            ).all()
            children[table.__name__] = {
                sub.subscription_id: [
                    row.number
                    for row in sorted(
                        (r for r in rows if r.subscription_id == sub.id),
                        key=lambda r: (r.moment, r.id),
                        reverse=True,
                    )[: cm.MAX_INVOICES_PER_SUBSCRIPTION]
                ]
                for sub in kept
            }
        admins = (
            await conn.execute(
                select(Admin.id, Admin.name, Admin.email)
                .join(CustomerAssignment, CustomerAssignment.admin_id == Admin.id)
                .where(CustomerAssignment.customer_id == customer)
            )
        ).all()
    return {
        "subscriptions": [s.subscription_id for s in kept],
        "trials": [s.subscription_id for s in newest if s.kind == "TRIAL"][:10],
        "invoices": children["Invoice"],
        "orders": children["Order"],
        "admins": [
            a.email
            for a in sorted(admins, key=lambda a: (a.name, a.id))[
                : cm.MAX_ASSIGNED_ADMINS_PER_CUSTOMER
            ]
        ],
    }


async def test_caps_keep_the_first_rows_of_the_documented_order_ties_by_id(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past each cap, with ties in every sort key (subscriptions starting together, invoices
    issued and orders placed at one instant, a dozen admins of one name): the rows kept and
    their order are the documented ones, ties broken by id, rendered or not, for a page and
    for the customer's detail."""
    api = uncached
    await build_customers(api, 3)
    await over_the_caps(api)
    await warm(api)
    async with api.engine.connect() as conn:
        customer = (await conn.execute(select(func.min(Customer.id)))).scalar_one()
    expected = await capped_orders(api, customer)
    assert len(expected["subscriptions"]) == 10 and len(expected["admins"]) == 10
    page = orjson.loads(await same(api, monkeypatch, TIES, {"first": 3}))
    gid = to_global_id("Customer", customer)
    node = next(n for n in page["data"]["customers"]["nodes"] if n["id"] == gid)
    detail = (
        TIES.replace("customers(first: $first) { nodes {", "customer(id: $id) {")
        .replace("} } }\n", "} }\n")
        .replace("$first: Int", "$id: ID!")
    )
    one = orjson.loads(await same(api, monkeypatch, detail, {"id": gid}))["data"]["customer"]
    for found in (node, one):
        assert [s["subscriptionId"] for s in found["subscriptions"]] == expected["subscriptions"]
        assert [s["subscriptionId"] for s in found["trials"]] == expected["trials"]
        assert [a["admin"]["email"] for a in found["partnerAdmins"]] == expected["admins"]
        for sub in found["subscriptions"]:
            invoices = [i["invoiceNumber"] for i in sub["invoices"]]
            assert invoices == expected["invoices"][sub["subscriptionId"]]
            orders = [o["orderNumber"] for o in sub["orders"]]
            assert orders == expected["orders"][sub["subscriptionId"]]
    capped = [s for s in one["subscriptions"] if len(s["invoices"]) == 10]
    assert capped, "an invoice list over its cap"


# --- what may be rendered ----------------------------------------------------------------------


def test_every_enum_and_instant_field_rendered_is_checked() -> None:
    """An enum field rendered as a plain column would write a stored name the enum does not
    have, and an instant one an instant Python cannot hold: each enum field of the rendered
    types is an ``enum`` entry naming exactly its GraphQL enum's values, each ``DateTime`` a
    ``time`` entry, and each ``Int`` a column of integers or an ``excess`` (checked against
    Int's range). A field added to ``graph.render.FIELDS`` without its check fails here."""
    schema = graphql_schema()
    for type_name, fields in render.FIELDS.items():
        graphql_type = schema.get_type(type_name)
        assert isinstance(graphql_type, GraphQLObjectType)
        for field, how in fields.items():
            leaf = get_named_type(graphql_type.fields[field].type)
            if isinstance(leaf, GraphQLEnumType):
                assert how[0] == "enum", (type_name, field)
                assert set(how[2]) == set(leaf.values), (type_name, field)
            elif leaf.name == "DateTime":
                assert how[0] == "time", (type_name, field)
            elif leaf.name == "Int":
                assert how[0] in ("col", "excess"), (type_name, field)
            else:
                assert how[0] in ("col", "gid", "obj"), (type_name, field, how)
    for name in ("statuses", "products"):
        part = customer_parts._CUSTOMER_PARTS[name]
        customer = schema.get_type("Customer")
        assert isinstance(customer, GraphQLObjectType)
        enum_type = get_named_type(customer.fields[name].type)
        assert isinstance(enum_type, GraphQLEnumType)
        assert set(part.names) == set(enum_type.values), name


# --- every order, paging backward, filtered and searched ---------------------------------------

PAGED = (
    "query P($first: Int, $last: Int, $before: String, $after: String, $order: CustomerOrder!,"
    " $filter: CustomerFilter, $search: String) { customers(first: $first, last: $last,"
    " before: $before, after: $after, orderBy: $order, filter: $filter, search: $search) {"
    " pageInfo { endCursor startCursor } nodes {" + EVERY_FIELD + "} } }"
)


@postgresql_only
async def test_every_order_and_direction_answers_the_same_one_customer_read_again(
    uncached: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pages in every order (the ones PostgreSQL walks included), forward and backward, after a
    cursor, filtered and searched, over customers one of which holds an invoice status the API
    does not have and the others JSON's punctuation: the same bytes rendered or not; the pages
    without that customer answer without an error."""
    api = uncached
    await build_customers(api, 6)
    await _odd_strings(api)
    await warm(api)
    async with api.engine.begin() as conn:
        customer = (await conn.execute(select(func.max(Customer.id)))).scalar_one()
        subs = select(Subscription.id).where(Subscription.customer_id == customer)
        await conn.execute(
            update(Invoice).where(Invoice.subscription_id.in_(subs)).values(status="VOID")
        )
    corrupt = to_global_id("Customer", customer).encode()
    clean = pages = 0
    for order in ("NAME_ASC", "NAME_DESC", "CREATED_AT_ASC", "CREATED_AT_DESC", "END_DATE_ASC"):
        searched = [{"first": 3, "search": "customer 00"}] if order == "NAME_DESC" else []
        for paging in ({"first": 2}, {"last": 2}, *searched):
            variables = {"order": order, **paging}
            answer = await same(api, monkeypatch, PAGED, variables)
            assert b"VOID" not in answer
            pages += 1
            if b'"errors"' not in answer:
                assert corrupt not in answer
                clean += 1
                cursors = orjson.loads(answer)["data"]["customers"]["pageInfo"]
                further = (
                    {"first": 2, "after": cursors["endCursor"]}
                    if "first" in paging
                    else {"last": 2, "before": cursors["startCursor"]}
                )
                await same(api, monkeypatch, PAGED, {"order": order, **further})
    assert 3 <= clean < pages  # pages both with and without that customer
    filtered = {"statuses": ["ACTIVE"], "products": ["CALLING"], "subscriptionType": "PAID"}
    await same(api, monkeypatch, PAGED, {"order": "END_DATE_ASC", "first": 6, "filter": filtered})
