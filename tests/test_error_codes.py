"""Every error a client gets carries a machine-readable ``extensions.code``."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.helpers import Factory, error_codes, post_graphql

CASES = [
    ("{ customers(filter: {statuses: [NOPE]}) { totalCount } }", None, "GRAPHQL_VALIDATION_FAILED"),
    (
        "query($s: [CustomerStatus!]) { customers(filter: {statuses: $s}) { totalCount } }",
        {"s": ["NOPE"]},
        "BAD_USER_INPUT",
    ),
    ("{ viewer { ", None, "GRAPHQL_PARSE_FAILED"),
    ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED"),
    (
        "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(40)) + " }",
        None,
        "QUERY_TOO_COMPLEX",
    ),
    ("query($f: Int!) { customers(first: $f) { totalCount } }", {"f": 0}, "INVALID_PAGE_SIZE"),
]


@pytest.mark.parametrize(("document", "variables", "code"), CASES)
async def test_errors_carry_a_code(
    api: Api, document: str, variables: dict[str, object] | None, code: str
) -> None:
    # given
    factory = Factory(api.engine)
    partner = await factory.partner()
    await factory.admin(partner, "full@acme.example", "FULL_ADMIN")
    # when
    body = await post_graphql(api, document, variables, as_="full@acme.example")
    # then
    assert error_codes(body) == [code], body
