"""Every name in the API is described: types, fields, arguments, input fields, enum values.

GraphiQL, IDEs and generated TypeScript show these descriptions where a front-end developer
types; a name without one is a question they have to ask. The walk runs over the schema the
server builds (and so over ``schema.graphql``, which tests/test_schema.py keeps equal to it);
deprecated names must also say why and what replaces them.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    is_specified_scalar_type,
)

from graph.schema import build_schema

# A description shorter than this is a placeholder ("TODO", "ID"), not documentation.
SHORTEST = 8


def described_names(schema: GraphQLSchema) -> Iterator[tuple[str, str | None]]:
    """(coordinate, description) for every name of the API, built-ins and introspection aside."""
    for name, kind in schema.type_map.items():
        if name.startswith("__") or is_specified_scalar_type(kind):
            continue
        yield name, kind.description
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in kind.fields.items():
                yield f"{name}.{field_name}", field.description
                for arg_name, arg in field.args.items():
                    yield f"{name}.{field_name}({arg_name}:)", arg.description
        elif isinstance(kind, GraphQLInputObjectType):
            for field_name, input_field in kind.fields.items():
                yield f"{name}.{field_name}", input_field.description
        elif isinstance(kind, GraphQLEnumType):
            for value_name, value in kind.values.items():
                yield f"{name}.{value_name}", value.description


def deprecations(schema: GraphQLSchema) -> Iterator[tuple[str, str]]:
    for name, kind in schema.type_map.items():
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in kind.fields.items():
                if field.deprecation_reason is not None:
                    yield f"{name}.{field_name}", field.deprecation_reason
        elif isinstance(kind, GraphQLEnumType):
            for value_name, value in kind.values.items():
                if value.deprecation_reason is not None:
                    yield f"{name}.{value_name}", value.deprecation_reason


def test_every_name_is_described() -> None:
    # given
    schema = build_schema()._schema

    # when
    names = dict(described_names(schema))
    undocumented = sorted(n for n, d in names.items() if not (d and len(d.strip()) >= SHORTEST))

    # then
    assert len(names) > 900  # the walk reached arguments and enum values
    assert undocumented == [], f"{len(undocumented)} names without a description"


def test_the_walk_finds_what_is_missing() -> None:
    # given: a schema with one undescribed name of each kind
    from graphql import build_schema as from_sdl

    schema = from_sdl(
        '"""Roots."""\ntype Query {\n  """A field."""\n  f(a: Int, i: In): E\n}\n'
        "enum E { V }\ninput In { x: Int }\nscalar S\n"
    )

    # when
    undocumented = sorted(n for n, d in described_names(schema) if not d)

    # then
    assert undocumented == ["E", "E.V", "In", "In.x", "Query.f(a:)", "Query.f(i:)", "S"]


def test_deprecated_names_say_why_and_what_replaces_them() -> None:
    # given
    schema = build_schema()._schema

    # when
    reasons = dict(deprecations(schema))

    # then: none today; one added later names its replacement and its removal date
    for coordinate, reason in reasons.items():
        assert "Use " in reason and "removed" in reason, (coordinate, reason)
