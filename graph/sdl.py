"""The SDL as ``schema.graphql`` holds it: the printed schema with its root operation types named.

graphql-core's and strawberry's printers leave the ``schema { ... }`` block out when the roots
are called ``Query``/``Mutation``/``Subscription``, because the spec then lets a reader infer
them. Partner Hub has a data type called ``Subscription`` (a customer's product subscription)
and no subscription root, so a tool that infers roots from the file (graphql-core's
``build_schema``, graphql-codegen) would take that type as the subscription root and accept
``subscription { id }``, which the server refuses. The block is therefore always printed, from
the roots the running schema really has.
"""

from __future__ import annotations

import re

from graphql import GraphQLSchema

_SCHEMA_DEFINITION = re.compile(r"^schema\b", re.MULTILINE)


def schema_block(schema: GraphQLSchema) -> str:
    """``schema { query: ... }`` naming exactly the server's root operation types."""
    roots = [
        ("query", schema.query_type),
        ("mutation", schema.mutation_type),
        ("subscription", schema.subscription_type),
    ]
    lines = [f"  {operation}: {root.name}" for operation, root in roots if root is not None]
    return "schema {\n" + "\n".join(lines) + "\n}"


def with_schema_block(printed: str, schema: GraphQLSchema) -> str:
    """``printed`` with the explicit schema block first, unless the printer already wrote one."""
    if _SCHEMA_DEFINITION.search(printed):
        return printed
    return schema_block(schema) + "\n\n" + printed
