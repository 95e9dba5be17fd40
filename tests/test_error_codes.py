"""Every error a client gets carries a machine-readable ``extensions.code``."""

from __future__ import annotations

import logging

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


def _defaulted_non_null_arguments() -> list[tuple[str, str, str, bool]]:
    """(root field, argument, argument type, whether the field is a leaf) of every root query
    field's non-null argument that has a default, the field's other arguments all optional."""
    from graphql import GraphQLNonNull, Undefined, get_named_type, is_leaf_type

    from graph.schema import build_schema

    found = []
    root = build_schema()._schema.query_type
    assert root is not None
    for name, field in root.fields.items():
        args = field.args.items()
        if any(
            isinstance(d.type, GraphQLNonNull) and d.default_value is Undefined for _, d in args
        ):
            continue
        leaf = is_leaf_type(get_named_type(field.type))
        for arg, definition in args:
            if (
                isinstance(definition.type, GraphQLNonNull)
                and definition.default_value is not Undefined
            ):
                found.append((name, arg, str(definition.type.of_type), leaf))
    return found


async def test_an_explicit_null_for_a_defaulted_non_null_argument_is_the_clients_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """``first: $first`` with ``$first: Int`` is valid (the argument has a default); sent
    ``null``, graphql-core refuses the argument while executing. It was masked as an
    INTERNAL_SERVER_ERROR and logged with a traceback, for every such argument."""
    factory = Factory(api.engine)
    partner = await factory.partner()
    await factory.admin(partner, "full@acme.example", "FULL_ADMIN")
    cases = _defaulted_non_null_arguments()
    assert any(f == "customers" and a == "first" for f, a, _, _ in cases), cases
    for field, arg, type_, leaf in cases:
        selection = "" if leaf else " { __typename }"
        document = f"query($v: {type_}) {{ {field}({arg}: $v){selection} }}"
        caplog.clear()
        with caplog.at_level(logging.INFO):
            body = await post_graphql(api, document, {"v": None}, as_="full@acme.example")
        assert error_codes(body) == ["BAD_USER_INPUT"], (document, body)
        assert f"'{arg}'" in body["errors"][0]["message"], body
        assert body["errors"][0]["path"] == [field], body
        unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not unexpected, (document, [r.getMessage() for r in unexpected])
