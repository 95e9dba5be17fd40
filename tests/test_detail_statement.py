"""The detail's statements are executed as text compiled once (``db.engine.frozen``):
the text must be exactly the SQL of the statement it was made from, with the same parameters in
the same order and the same result columns, on both drivers' dialects."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite

from db.queries import customer_detail as cd
from db.queries.customer_parts import CUSTOMER_PARTS, SUBSCRIPTION_PARTS, DetailPlan
from graph.auth.permissions import _issue

DIALECTS = {"postgresql": asyncpg.dialect(), "sqlite": aiosqlite.dialect()}
EVERYTHING = DetailPlan(
    parts=tuple((p, None if p in ("statuses", "products") else 50) for p in CUSTOMER_PARTS),
    subscription_parts=tuple((p, 25) for p in SUBSCRIPTION_PARTS),
    trial_parts=(("invoices", 10), ("tags", None)),
)
PLANS = [EVERYTHING, DetailPlan(parts=()), DetailPlan(parts=(("subscriptions", 100),))]


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("plan", PLANS, ids=["everything", "nothing", "subscriptions"])
@pytest.mark.parametrize("assigned", [None, 7])
def test_frozen_text_is_the_statement(dialect: str, plan: DetailPlan, assigned: int | None):
    scope = _issue(3, assigned)
    driver = DIALECTS[dialect]
    for select, frozen in (
        (cd._scoped_select(dialect, plan, scope), cd._scoped_statement(dialect, plan, scope)),
        (cd._page_select(dialect, plan, scope), cd._page_statement(dialect, plan, scope)),
    ):
        expected, got = select.compile(dialect=driver), frozen.compile(dialect=driver)
        assert got.string == expected.string
        assert got.positiontup == expected.positiontup
        params = {"partner_id": 3, "now": None, "customer_id": 5, "ids": [5]}
        assert got.construct_params(params) == expected.construct_params(params)
        assert [(c.name, type(c.type)) for c in frozen.selected_columns] == [
            (c.name, type(c.type)) for c in select.selected_columns
        ]
