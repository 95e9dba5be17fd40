"""Calculated query cost, checked before execution, and a per-token rate limit on it.

The cost of a document is the number of objects it may return, computed from the page sizes it
asks for (as GitHub's node limit and Shopify's calculated cost do): a field that takes ``first``
multiplies the cost of its selection by that page size (its default when omitted), every other
field costs one. A document over ``max_query_cost`` is refused with ``QUERY_TOO_COSTLY`` and no
resolver runs; each token may spend ``cost_per_minute`` (a token bucket per API instance),
beyond which requests get ``RATE_LIMITED`` with the seconds to wait. The response's
``extensions.cost`` reports the figures either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    value_from_ast,
)
from strawberry.extensions import SchemaExtension

from db.settings import Settings
from graph.errors import ErrorCode


@dataclass
class _Walk:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    depth: int = 0

    def selection(self, parent: GraphQLNamedType | None, node: SelectionSetNode | None) -> int:
        if node is None or self.depth > 50:
            return 0
        total = 0
        for sel in node.selections:
            if isinstance(sel, FieldNode):
                total += self.field(parent, sel)
            elif isinstance(sel, InlineFragmentNode):
                target = (
                    self.schema.get_type(sel.type_condition.name.value)
                    if sel.type_condition
                    else parent
                )
                total += self.selection(target, sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = self.fragments.get(sel.name.value)
                if fragment is not None:
                    self.depth += 1
                    total += self.selection(
                        self.schema.get_type(fragment.type_condition.name.value),
                        fragment.selection_set,
                    )
                    self.depth -= 1
        return total

    def field(self, parent: GraphQLNamedType | None, node: FieldNode) -> int:
        name = node.name.value
        if name == "__typename":
            return 0
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 1
        definition = parent.fields.get(name)
        if definition is None:  # introspection meta fields and the like
            return 1
        child = get_named_type(definition.type)
        self.depth += 1
        inner = self.selection(child, node.selection_set)
        self.depth -= 1
        first_arg = definition.args.get("first")
        if first_arg is None:
            return 1 + inner
        page = first_arg.default_value if isinstance(first_arg.default_value, int) else 50
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = value_from_ast(argument.value, first_arg.type, self.variables)
                # A variable is read uncoerced: past Int's 32 bits graphql-core refuses it,
                # and the figure would not even serialise.
                if isinstance(value, int) and -(2**31) <= value < 2**31:
                    page = max(value, 0)
        return 1 + page * max(inner, 1)


def query_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any] | None,
) -> int:
    root = schema.get_root_type(operation.operation)
    return _Walk(schema, fragments, variables or {}).selection(root, operation.selection_set)


class CostLimiter:
    """Token buckets of query cost per API token, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def spend(self, token_id: int, cost: int) -> tuple[bool, float, float]:
        """(allowed, remaining, seconds to wait when refused)."""
        now = time.monotonic()
        with self._lock:
            level, stamp = self._buckets.get(token_id, (self.capacity, now))
            level = min(self.capacity, level + (now - stamp) * self.rate)
            if cost > level:
                self._buckets[token_id] = (level, now)
                return False, level, (cost - level) / self.rate
            self._buckets[token_id] = (level - cost, now)
            return True, level - cost, 0.0


def selected_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation a request runs: the one named ``operation_name``, or the only one."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return operations[0] if len(operations) == 1 else None


def cost_report(settings: Settings, cost: int, remaining: float) -> dict[str, Any]:
    """``extensions.cost`` of an executed (or cached) query that spent ``cost``."""
    return {
        "requestedQueryCost": cost,
        "maximumAvailable": settings.max_query_cost,
        "throttleStatus": {
            "currentlyAvailable": int(remaining),
            "maximumAvailable": settings.cost_per_minute,
            "restoreRatePerSecond": round(settings.cost_per_minute / 60, 1),
        },
    }


class QueryCost(SchemaExtension):
    def __init__(self) -> None:
        self.report: dict[str, Any] = {}

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        ctx = ec.context
        document = ec.graphql_document
        if document is None or ctx is None or ec.result is not None:
            yield  # nothing to price, or refused already (graph.input_limits): nothing spent
            return
        operation = selected_operation(document, ec.operation_name)
        if operation is None:
            yield
            return
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        cost = query_cost(ec.schema._schema, operation, fragments, ec.variables)
        settings = ctx.settings
        limit = settings.max_query_cost
        self.report = {"requestedQueryCost": cost, "maximumAvailable": limit}
        if cost > limit:
            ec.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        f"Query cost {cost} exceeds the limit of {limit}: ask for smaller pages.",
                        extensions={
                            "code": ErrorCode.QUERY_TOO_COSTLY.value,
                            "cost": cost,
                            "limit": limit,
                        },
                    )
                ],
            )
        else:
            allowed, remaining, wait = ctx.services.limiter.spend(ctx.principal.token_id, cost)
            self.report = cost_report(settings, cost, remaining)
            if not allowed:
                ec.result = ExecutionResult(
                    data=None,
                    errors=[
                        GraphQLError(
                            f"Rate limit: this token may spend {settings.cost_per_minute} "
                            f"cost points a minute; retry in {wait:.1f} s.",
                            extensions={
                                "code": ErrorCode.RATE_LIMITED.value,
                                "retryAfterSeconds": round(wait, 1),
                            },
                        )
                    ],
                )
        yield

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.report} if self.report else {}
