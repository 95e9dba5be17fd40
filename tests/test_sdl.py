"""``schema.graphql`` read by an SDL tool is the schema the server runs, roots included.

graphql-core's ``build_schema`` stands for every SDL-reading tool (graphql-codegen, IDE
plugins): the schema it builds from the committed file must introspect exactly like the
running server does through the ASGI app, with the same root operation types (no subscription
root, although a data type is named ``Subscription``), and both must refuse a subscription.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphql import (
    GraphQLSchema,
    build_client_schema,
    build_schema,
    get_introspection_query,
    introspection_from_schema,
    lexicographic_sort_schema,
    parse,
    validate,
)

from tests.conftest import Api
from tests.helpers import Factory, data_of, error_codes, post_graphql

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"
ADMIN = "readonly@acme.example"
# Everything graphql-core's introspection can say, as graphql-codegen asks for it.
OPTIONS: dict[str, Any] = {
    "descriptions": True,
    "specified_by_url": True,
    "directive_is_repeatable": True,
    "input_value_deprecation": True,
}
ROOTS = "{ __schema { queryType { name } mutationType { name } subscriptionType { name } } }"
SUBSCRIPTION = "subscription S { id }"
SCALARS = ("Date", "DateTime", "JSON")


def file_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))


def comparable(schema: GraphQLSchema) -> dict[str, Any]:
    """The full introspection of ``schema``, types and fields in name order."""
    return dict(introspection_from_schema(lexicographic_sort_schema(schema), **OPTIONS))


async def signed_in(api: Api) -> None:
    factory = Factory(api.engine)
    await factory.admin(await factory.partner(), ADMIN, "READ_ONLY_ADMIN")


async def test_the_file_names_the_root_operation_types() -> None:
    # when
    text = SCHEMA_FILE.read_text(encoding="utf-8")

    # then: explicit, so no tool infers a subscription root from the data type `Subscription`
    assert text.startswith("schema {\n  query: Query\n  mutation: Mutation\n}\n\n")
    schema = file_schema()
    assert schema.subscription_type is None
    assert schema.get_type("Subscription") is not None


async def test_the_file_builds_the_schema_the_server_introspects(api: Api) -> None:
    # given
    await signed_in(api)

    # when
    body = await post_graphql(api, get_introspection_query(**OPTIONS), as_=ADMIN)

    # then: every type, field, argument, description, default, deprecation and specifiedByURL
    served = build_client_schema(data_of(body))  # type: ignore[arg-type]
    assert comparable(file_schema()) == comparable(served)


async def test_the_root_types_agree(api: Api) -> None:
    # given
    await signed_in(api)

    # when
    body = await post_graphql(api, ROOTS, as_=ADMIN)

    # then
    schema = file_schema()
    assert data_of(body)["__schema"] == {
        "queryType": {"name": schema.query_type.name if schema.query_type else None},
        "mutationType": {"name": schema.mutation_type.name if schema.mutation_type else None},
        "subscriptionType": None,
    }
    assert data_of(body)["__schema"]["mutationType"] == {"name": "Mutation"}


async def test_a_subscription_is_refused_by_the_file_and_by_the_server(api: Api) -> None:
    # given
    await signed_in(api)

    # when
    file_errors = validate(file_schema(), parse(SUBSCRIPTION))
    body = await post_graphql(api, SUBSCRIPTION, as_=ADMIN)

    # then
    assert [e.message for e in file_errors] == [
        "The subscription operation is not supported by the schema."
    ]
    assert body.get("data") is None
    assert [e["message"] for e in body["errors"]] == [m.message for m in file_errors]
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_custom_scalars_say_where_they_are_specified(api: Api) -> None:
    # given
    await signed_in(api)
    fields = " ".join(f'{n}: __type(name: "{n}") {{ specifiedByURL }}' for n in SCALARS)
    query = "{ " + fields + " }"

    # when
    body = await post_graphql(api, query, as_=ADMIN)

    # then
    urls = {name: t["specifiedByURL"] for name, t in data_of(body).items()}
    assert (
        urls["Date"]
        == urls["DateTime"]
        == ("https://datatracker.ietf.org/doc/html/rfc3339#section-5.6")
    )
    assert urls["JSON"].startswith("https://")


def test_the_codegen_sample_operations_are_valid_against_the_file() -> None:
    # given: the documents tools/codegen generates TypeScript for (npm is not needed here)
    operations = sorted((SCHEMA_FILE.parent / "tools" / "codegen" / "operations").glob("*.graphql"))

    # when
    errors = {op.name: validate(file_schema(), parse(op.read_text())) for op in operations}

    # then
    assert operations
    assert all(not e for e in errors.values()), errors
