"""Small helpers for black-box tests through the ASGI app."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import session_factory
from db.models import (
    Admin,
    Customer,
    CustomerAssignment,
    LicenseLine,
    Partner,
    Subscription,
)
from db.queries.admins import issue_token
from db.status import StatusRules, refresh_status_spans
from graph.logging import JsonFormatter
from tests.conftest import NOW, Api

RULES = StatusRules(expiring_soon_days=7, inactivity_days=30)


async def token_for(api: Api, email: str) -> str:
    """A bearer token for the admin with ``email`` (cached per test)."""
    if email not in api.tokens:
        async with session_factory(api.engine)() as session:
            admin = (await session.execute(select(Admin).where(Admin.email == email))).scalar_one()
            assert admin.id is not None
            token = await issue_token(session, admin_id=admin.id, now=NOW)
            await session.commit()
        # Cached once committed: a concurrent caller must never get a token not yet visible.
        api.tokens.setdefault(email, token)
    return api.tokens[email]


async def post_graphql(
    api: Api,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    as_: str | None = None,
    token: str | None = None,
    expect_status: int = 200,
) -> dict[str, Any]:
    """POST a document with variables as admin ``as_`` (or with ``token``); return the JSON."""
    headers = {}
    if as_ is not None:
        token = await token_for(api, as_)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = await api.client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == expect_status, response.text
    body: dict[str, Any] = response.json()
    return body


def with_lookup(api: Api, statements: int) -> int:
    """A query's ``statements`` and its token's lookup: on PostgreSQL the lookup of a token seen
    before rides along the query's first statement when that one can carry it (a directory or
    walked page, a detail: db/token_check.py), on SQLite it runs alone first."""
    return statements if api.db.backend == "postgresql" else statements + 1


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


def assert_forbidden(body: dict[str, Any]) -> None:
    assert "FORBIDDEN" in error_codes(body), body


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


class Factory:
    """Builds small, explicit data sets for one test (ids are the database's)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    async def _insert(self, table: Any, **values: Any) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(table).values(**values))
            return int(result.inserted_primary_key[0])

    async def partner(self, name: str = "Acme Partners", domain: str = "acme.example") -> int:
        return await self._insert(
            Partner, name=name, domain=domain, setup_state="NOT_STARTED", created_at=NOW
        )

    async def admin(self, partner_id: int, email: str, role: str, name: str | None = None) -> int:
        return await self._insert(
            Admin,
            partner_id=partner_id,
            email=email,
            name=name or email.split("@")[0].title(),
            role=role,
            active=True,
            created_at=NOW,
        )

    async def customer(
        self,
        partner_id: int,
        name: str,
        *,
        managed_by: str = "EXTERNAL_ADMIN",
        created_at: datetime | None = None,
        last_sign_in: datetime | None = NOW - timedelta(days=1),
    ) -> int:
        n = self._next()
        return await self._insert(
            Customer,
            partner_id=partner_id,
            external_id=f"EXT-{n:05d}",
            name=name,
            name_key=name.lower(),
            created_at=created_at or NOW - timedelta(days=400 - n),
            managed_by=managed_by,
            last_admin_sign_in_at=last_sign_in,
        )

    async def subscription(
        self,
        customer_id: int,
        *,
        kind: str = "PAID",
        state: str = "ACTIVE",
        start: datetime | None = None,
        end: datetime | None = None,
        auto_renew: bool = True,
        lines: list[tuple[str, int, int, int]] = (("MEETINGS", 10, 5, 3),),  # type: ignore[assignment]
    ) -> int:
        async with self.engine.begin() as conn:
            partner_id = (
                await conn.execute(select(Customer.partner_id).where(Customer.id == customer_id))
            ).scalar_one()
        n = self._next()
        start = start or NOW - timedelta(days=100)
        end = end or NOW + timedelta(days=265)
        sub_id = await self._insert(
            Subscription,
            partner_id=partner_id,
            customer_id=customer_id,
            subscription_id=f"{'Trial' if kind == 'TRIAL' else 'Sub'}{n:06d}",
            kind=kind,
            state=state,
            start_date=start,
            end_date=end,
            auto_renew=auto_renew,
            renewal_date=end if auto_renew else None,
            created_at=start,
        )
        for product, purchased, assigned, used in lines:
            await self._insert(
                LicenseLine,
                partner_id=partner_id,
                subscription_id=sub_id,
                product=product,
                license_type="Standard",
                purchased=purchased,
                assigned=assigned,
                used=used,
            )
        await self.refresh(customer_id)
        return sub_id

    async def assign(self, customer_id: int, admin_id: int) -> None:
        async with self.engine.begin() as conn:
            partner_id = (
                await conn.execute(select(Customer.partner_id).where(Customer.id == customer_id))
            ).scalar_one()
            await conn.execute(
                insert(CustomerAssignment).values(
                    customer_id=customer_id,
                    admin_id=admin_id,
                    partner_id=partner_id,
                    assigned_at=NOW,
                )
            )

    async def refresh(self, *customer_ids: int) -> None:
        async with session_factory(self.engine)() as session:
            await refresh_status_spans(session, list(customer_ids), RULES)
            await session.commit()


def name_key_of(customer_id: int) -> Any:
    """The customer's name key, which a customer tag repeats (a subquery, for an insert)."""
    return select(Customer.name_key).where(Customer.id == customer_id).scalar_subquery()  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """The root logger's output through the JSON formatter, at INFO, as the server has it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
