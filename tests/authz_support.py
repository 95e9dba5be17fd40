"""Shared by the authorization tests: table snapshots, a richer factory, response helpers.

``snapshot`` reads every row of every table, so "nothing was written" is checked on content,
not only on row counts (an UPDATE changes no count). A refused mutation writes exactly one
thing, the audit entry of its refusal (``graph.mutations.audit_refusal``; an audit entry moves no
data version): snapshots leave those out, and the tests of refusals check them apart. Every
request, written or not, spends from its token's cost budget (``cost_budget``, on PostgreSQL):
that bookkeeping is no data, and snapshots leave it out too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import CustomerTag, HelpdeskCase, SubscriptionTag, Tag
from db.queries.counters import HELPDESK_CASE, next_number
from graph.ids import to_global_id
from graph.mutations import REFUSAL
from tests.conftest import NOW, Api
from tests.helpers import Factory, name_key_of, post_graphql

Snapshot = dict[str, str]
_SNAPSHOT_SQL: dict[str, str] = {}
NOT_DATA = {"alembic_version", "cost_budget"}  # migrations' and the rate limit's bookkeeping
# What a refusal writes, left out of snapshots (the WHERE of each table's rows).
_REFUSAL_TRACES = {"audit_log": f" WHERE object_type <> '{REFUSAL}'"}


def refusal_trace(table: str, row: Any) -> bool:
    """Whether ``row`` of ``table`` is what a refused mutation writes (its audit entry)."""
    return table == "audit_log" and bool(row["object_type"] == REFUSAL)


async def _snapshot_sql(engine: AsyncEngine) -> str:
    """One statement giving, per table, its rows rendered as text in a stable order."""
    key = str(engine.url)
    if key not in _SNAPSHOT_SQL:
        async with engine.connect() as conn:
            tables = await conn.run_sync(
                lambda c: {
                    name: [col["name"] for col in inspect(c).get_columns(name)]
                    for name in inspect(c).get_table_names()
                    if name not in NOT_DATA
                }
            )
        parts = []
        for name, columns in sorted(tables.items()):
            where = _REFUSAL_TRACES.get(name, "")
            if engine.dialect.name == "postgresql":
                rows = f"string_agg(x::text, '|' ORDER BY x::text) FROM \"{name}\" x{where}"
            else:
                row = " || ',' || ".join(f'quote("{c}")' for c in columns)
                inner = f'SELECT {row} AS r FROM "{name}"{where} ORDER BY r'
                rows = f"group_concat(r, '|') FROM ({inner})"
            parts.append(f"SELECT '{name}' AS name, (SELECT {rows}) AS content")
        _SNAPSHOT_SQL[key] = " UNION ALL ".join(parts)
    return _SNAPSHOT_SQL[key]


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Every row of every table, as text per table (one statement)."""
    statement = await _snapshot_sql(engine)
    async with engine.connect() as conn:
        rows = (await conn.execute(text(statement))).all()
    return {name: content or "" for name, content in rows}


def changed_tables(before: Snapshot, after: Snapshot) -> list[str]:
    """Names of the tables whose content differs between two snapshots."""
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))


async def assert_nothing_written(api: Api, before: Snapshot, what: str = "") -> None:
    changed = changed_tables(before, await snapshot(api.engine))
    assert not changed, f"{what}: tables written: {changed}"


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """The body without ``extensions.cost`` (its rate-limit balance differs per request)."""
    extensions = {k: v for k, v in (body.get("extensions") or {}).items() if k != "cost"}
    trimmed = {k: v for k, v in body.items() if k != "extensions"}
    if extensions:
        trimmed["extensions"] = extensions
    return trimmed


def user_error_codes(body: dict[str, Any], field: str) -> list[str]:
    """Codes of the ``userErrors`` of mutation payload ``field``."""
    payload = (body.get("data") or {}).get(field) or {}
    return [e["code"] for e in payload.get("userErrors") or []]


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


class AuthzFactory(Factory):
    """``Factory`` plus tags, tagging, trials and helpdesk cases, written to the database."""

    async def tag(self, partner_id: int, name: str | None = None) -> int:
        name = name or f"Tag {self._next()}"
        return await self._insert(
            Tag, partner_id=partner_id, name=name, name_key=name.lower(), created_at=NOW
        )

    async def tag_customer(self, partner_id: int, customer_id: int, tag_id: int) -> None:
        await self._insert_link(
            CustomerTag,
            partner_id=partner_id,
            customer_id=customer_id,
            tag_id=tag_id,
            name_key=name_key_of(customer_id),
        )

    async def tag_subscription(self, partner_id: int, subscription_id: int, tag_id: int) -> None:
        await self._insert_link(
            SubscriptionTag, partner_id=partner_id, subscription_id=subscription_id, tag_id=tag_id
        )

    async def _insert_link(self, table: Any, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(table).values(created_at=NOW, **values))

    async def trial(self, customer_id: int, product: str = "MEETINGS") -> int:
        """A trial in force, ending in 10 days (so it can be extended by 30)."""
        return await self.subscription(
            customer_id,
            kind="TRIAL",
            start=NOW - timedelta(days=5),
            end=NOW + timedelta(days=10),
            auto_renew=False,
            lines=[(product, 10, 2, 1)],
        )

    async def helpdesk_case(
        self,
        partner_id: int,
        admin_id: int,
        *,
        customer_id: int | None = None,
        created_at: datetime | None = None,
    ) -> int:
        async with self.engine.begin() as conn:
            number = await next_number(conn, partner_id=partner_id, name=HELPDESK_CASE)
        return await self._insert(
            HelpdeskCase,
            partner_id=partner_id,
            number=number,
            opened_by_admin_id=admin_id,
            customer_id=customer_id,
            product="CALLING",
            subject=f"Case {self._next()}",
            description="Calls drop after a minute.",
            severity="HIGH",
            state="OPEN",
            created_at=created_at or NOW,
        )


CREATE_ROLE = """
mutation CreateRole($input: CreateRoleInput!) {
  createRole(input: $input) {
    role { name builtIn rules { object action scope builtIn } }
    userErrors { field message code }
  }
}
"""

CREATE_ADMIN = """
mutation CreateAdmin($input: CreateAdminInput!) {
  createAdmin(input: $input) {
    admin { id email name role roles active }
    userErrors { field message code }
  }
}
"""


async def create_role(
    api: Api, as_: str, name: str, rules: list[tuple[str, str, str]], description: str = ""
) -> dict[str, Any]:
    """createRole through the API; the response body."""
    variables = {
        "input": {
            "name": name,
            "description": description,
            "rules": [{"object": o, "action": a, "scope": s} for o, a, s in rules],
        }
    }
    return await post_graphql(api, CREATE_ROLE, variables, as_=as_)


async def create_admin(api: Api, as_: str, email: str, role: str, name: str = "") -> str:
    """createAdmin through the API; the new admin's global ID (fails on user errors)."""
    variables = {"input": {"email": email, "name": name or email.split("@")[0], "role": role}}
    body = await post_graphql(api, CREATE_ADMIN, variables, as_=as_)
    payload = body["data"]["createAdmin"]
    assert payload["userErrors"] == [], payload
    return str(payload["admin"]["id"])


def mutation_document(field: str, input_type: str, selection: str) -> str:
    """``mutation M($input: T!) { field(input: $input) { selection userErrors {...} } }``."""
    call = f"{field}(input: $input) {{ {selection} userErrors {{ field message code }} }}"
    return f"mutation M($input: {input_type}!) {{ {call} }}"
